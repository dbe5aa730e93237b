"""Finding 18.6: the metrics/health port allowed 64 connections in total for 10 s each with
no per-address cap, so ~70 idle sockets made `moat health` fail and an orchestrator would
pull a healthy replica. Idle sockets now give way to newcomers (per-address and total caps
make room by closing the oldest idle one) and the request head has a 2 s deadline."""

import socket
import subprocess

import moat_harness as h

IDLE_SOCKETS = 70
ROUNDS = 5


def _health(moat):
    r = subprocess.run([h.moat_bin(), "health", "-c", moat.config_path], capture_output=True,
                       timeout=20)
    return r.returncode, r.stdout.decode(errors="replace")


def _alive(s):
    """False once the server closed it."""
    try:
        s.setblocking(False)
        data = s.recv(1)
        return data != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _top_up(pool, moat, sources):
    """Keeps IDLE_SOCKETS open, idle connections (no request) to the metrics port."""
    pool[:] = [s for s in pool if _alive(s) or s.close()]
    i = 0
    while len(pool) < IDLE_SOCKETS:
        src = sources[i % len(sources)]
        i += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.bind((src, 0))
        s.connect((h.HOST, moat.metrics_port))
        pool.append(s)


def _starve(moat, sources):
    pool = []
    try:
        results = []
        for _ in range(ROUNDS):
            _top_up(pool, moat, sources)
            results.append(_health(moat))
        assert all(rc == 0 for rc, _ in results), results
    finally:
        for s in pool:
            s.close()
    # The endpoint still serves plain requests afterwards.
    assert moat.http_get("/healthz")[0] == 200


def test_idle_sockets_from_one_address_cannot_fail_the_health_check(moat):
    _starve(moat, ["127.0.0.1"])


def test_idle_sockets_from_many_addresses_cannot_fail_the_health_check(moat):
    _starve(moat, ["127.0.0.%d" % a for a in range(2, 12)])
