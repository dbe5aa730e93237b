"""A gateway out of file descriptors (EMFILE at accept).

Its own file, run in the Release stage (not the sanitizer stage): while a process has no free
descriptor, UBSan's vptr check reports false errors — it probes memory through a pipe it can
no longer create — so a sanitized gateway cannot be run out of descriptors. Skipped there."""

import os
import subprocess
import time

import pytest

import moat_harness as h
from test_limits import tcp, wait_idle, wire_from

pytestmark = pytest.mark.skipif(h.moat_is_asan(), reason="UBSan needs free descriptors")


def test_out_of_descriptors_pauses_accepting_and_recovers(moat_factory):
    """EMFILE at accept: the worker pauses accepting (the pending connections wait in the
    backlog) instead of spinning on a listener that stays readable, and takes them once
    descriptors are free again."""
    moat = moat_factory({"limits": {"max_connections_per_ip": 1000,
                                    "connection_rate_per_ip": "unlimited"}})
    wait_idle(moat)
    open_fds = len(os.listdir("/proc/%d/fd" % moat.pid))
    limit = open_fds + 8
    subprocess.run(["prlimit", "--pid", str(moat.pid), "--nofile=%d:%d" % (limit, limit)],
                   check=True)
    held = []
    try:
        for _ in range(20):  # more silent TCP connections than descriptors left
            held.append(tcp(moat=moat))
        h.wait_until(lambda: "accepting again in" in moat.stderr(), 10,
                     message="the EMFILE pause to be logged")
        cpu_before = sum(int(v) for v in open("/proc/%d/stat" % moat.pid).read()
                         .rsplit(")", 1)[1].split()[11:13])
        time.sleep(1)
        cpu_after = sum(int(v) for v in open("/proc/%d/stat" % moat.pid).read()
                        .rsplit(")", 1)[1].split()[11:13])
        # Not a timing bound: a spinning accept loop burns the whole second (100 ticks).
        assert cpu_after - cpu_before < 50, "the gateway spins on a readable listener"
    finally:
        for s in held:
            s.close()
    h.wait_until(lambda: len(os.listdir("/proc/%d/fd" % moat.pid)) <= open_fds + 1, 15,
                 message="the held connections to be released")
    c = wire_from(moat, "127.0.0.2")
    try:
        assert c.connect("after-emfile") == 0
    finally:
        c.close()
