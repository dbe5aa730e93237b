"""Issue 18.2: a reload requested while a reload runs must not be dropped.

The reload that is running may already have read the file the second request is about, so
the gateway must run once more after it (any number of requests during a reload coalesce
into one). The running reload is held deterministically by serving the config file from a
FIFO: the loader blocks reading it until the test writes it."""

import errno
import os
import signal
import subprocess
import time

import yaml

import moat_harness as h
from moat_harness import V5


def _passwd(path, *users):
    subprocess.run(["mosquitto_passwd", "-c", "-b", path, users[0], users[0] + "-pass"],
                   check=True, capture_output=True, timeout=10)
    for u in users[1:]:
        subprocess.run(["mosquitto_passwd", "-b", path, u, u + "-pass"], check=True,
                       capture_output=True, timeout=10)


def _login(moat, user):
    c = moat.wire(cert=None, version=V5, timeout=5)
    try:
        return c.connect("coalesce-" + user, username=user, password=user + "-pass")
    finally:
        c.close()


def _reloads_ok(moat):
    return moat.metric("moat_config_reloads_total", result="ok")


def _open_fifo_writer(path):
    """Opens the FIFO's write end once a reader (the blocked reload) holds it open."""
    fds = []

    def attempt():
        try:
            fds.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            return True
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            return False

    h.wait_until(attempt, 10, message="the reload to open the config FIFO")
    os.set_blocking(fds[0], True)
    return fds[0]


def test_reload_requested_during_a_reload_runs_after_it(moat_factory, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    old_pw, new_pw = str(secrets / "passwd-old"), str(secrets / "passwd-new")
    _passwd(old_pw, "alice")
    _passwd(new_pw, "alice", "bob")
    moat = moat_factory({"auth": {"methods": ["password"], "password_file": old_pw}},
                        tls={"require_client_cert": False})
    assert _login(moat, "alice") == 0
    assert _login(moat, "bob") != 0

    # The config path becomes a symlink into a folder the file watch does not see, so only
    # the SIGHUPs below cause reloads. Swapping the link itself is seen: wait for that reload.
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    live = str(live_dir / "moat.yaml")
    old_yaml = yaml.safe_dump(moat.config, sort_keys=False)
    with open(live, "w") as f:
        f.write(old_yaml)
    before = _reloads_ok(moat)
    link = moat.config_path + ".link"
    os.symlink(live, link)
    os.replace(link, moat.config_path)
    h.wait_until(lambda: _reloads_ok(moat) > before, 10, message="the reload of the link swap")
    base = _reloads_ok(moat)

    # Reload 1 blocks reading the config (a FIFO) ...
    fifo = str(live_dir / "fifo")
    os.mkfifo(fifo)
    os.replace(fifo, live)
    moat.proc.send_signal(signal.SIGHUP)
    writer = _open_fifo_writer(live)
    try:
        # ... meanwhile the config changes (bob's password file) and reload 2 is asked for.
        new_cfg = dict(moat.config)
        new_cfg["auth"] = dict(moat.config["auth"], password_file=new_pw)
        tmp = live + ".tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump(new_cfg, f, sort_keys=False)
        os.replace(tmp, live)
        moat.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)  # ordering aid only: the main loop takes the signal while 1 is blocked
        # Reload 1 finishes with what it read: the old config.
        os.write(writer, old_yaml.encode())
    finally:
        os.close(writer)
    h.wait_until(lambda: _reloads_ok(moat) >= base + 1, 10, message="reload 1 to finish")

    # The request made during reload 1 ran after it: bob's password file is in force.
    h.wait_until(lambda: _login(moat, "bob") == 0, 15, interval=0.2,
                 message="the reload requested during a reload to run (bob accepted)")
    assert _reloads_ok(moat) >= base + 2
    assert _login(moat, "alice") == 0
