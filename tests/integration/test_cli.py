"""The command line (CONTRACT.md §1): check, version, `run` refusing a bad config, and
`moat passwd` on a deployed password file."""

import os
import re
import stat
import subprocess

import moat_harness as h


def run(*args, **kw):
    return subprocess.run([h.moat_bin()] + list(args), capture_output=True, text=True,
                          timeout=15, **kw)


def test_check_valid_config(moat_factory):
    moat = moat_factory(start=False)
    r = run("check", "-c", moat.config_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_unknown_key_reports_file_and_line(moat_factory):
    moat = moat_factory(start=False)
    with open(moat.config_path) as f:
        lines = f.read().splitlines()
    # Insert an unknown key inside the backend section, remember its 1-based line.
    idx = next(i for i, l in enumerate(lines) if l.startswith("backend:")) + 1
    lines.insert(idx, "  adress_typo: 127.0.0.1:1")
    with open(moat.config_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = run("check", "-c", moat.config_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert re.search(r"%s:%d: .*adress_typo" % (re.escape(moat.config_path), idx + 1), out), out
    # `run` refuses it too, with status 1, before listening.
    moat.expected_exit = True
    r = run("run", "-c", moat.config_path)
    assert r.returncode == 1
    assert "adress_typo" in r.stderr


def test_check_missing_file_reported(moat_factory, tmp_path):
    moat = moat_factory({"auth": {"password_file": str(tmp_path / "nope")}}, start=False)
    r = run("check", "-c", moat.config_path)
    assert r.returncode == 1
    assert re.search(r"%s:\d+: " % re.escape(moat.config_path), r.stdout + r.stderr)


def test_version():
    r = run("version")
    assert r.returncode == 0
    out = r.stdout.lower()
    assert "moat" in out and "openssl" in out and "libuv" in out


# ---------------------------------------------------------------------------------------------
# moat passwd on a deployed password file (issue 18.9)

def passwd_users(path):
    with open(path) as f:
        return sorted(line.split(":", 1)[0] for line in f
                      if line.strip() and not line.startswith("#"))


def test_passwd_keeps_symlink_mode_and_group(tmp_path):
    """A password file deployed as a symlink (a ConfigMap, /etc/moat -> /srv/...) with mode
    0640 and the gateway's group: `moat passwd` used to replace the link by a 0600 file owned
    by the caller, which the gateway (group member) could then no longer read."""
    real = tmp_path / "real"
    real.mkdir()
    conf = tmp_path / "etc"
    conf.mkdir()
    target = real / "passwd"
    target.write_text("")
    os.chmod(str(target), 0o640)
    group = 65534 if os.geteuid() == 0 else os.getegid()  # nogroup: not the caller's own
    os.chown(str(target), os.geteuid(), group)
    link = conf / "passwd"
    os.symlink("../real/passwd", str(link))

    r = run("passwd", str(link), "alice", input="s3cret\n")
    assert r.returncode == 0, r.stderr
    assert os.path.islink(str(link)) and os.readlink(str(link)) == "../real/passwd"
    st = os.stat(str(target))
    assert stat.S_ISREG(st.st_mode)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, os.geteuid(), group)
    assert passwd_users(str(target)) == ["alice"]
    assert sorted(os.listdir(str(conf))) == ["passwd"]
    assert sorted(os.listdir(str(real))) == ["passwd"]


def test_passwd_concurrent_runs_all_land(tmp_path):
    """Runs of `moat passwd` at the same time (provisioning scripts) each add their user: the
    file is read, edited and replaced under a lock. Several rounds of simultaneous runs; the
    previous code lost updates (each run renamed over the other's file)."""
    path = str(tmp_path / "passwd")
    expected = []
    for rnd in range(3):
        users = ["r%d-u%d" % (rnd, i) for i in range(12)]
        procs = [subprocess.Popen([h.moat_bin(), "passwd", path, u], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for u in users]
        for p in procs:  # all started before any is fed: they race for the file
            p.stdin.write(b"pw-%d\n" % rnd)
        for p in procs:
            p.stdin.close()
        for p in procs:
            assert p.wait(timeout=30) == 0, p.stderr.read()
            p.stdout.close()
            p.stderr.close()
        expected += users
    assert passwd_users(path) == sorted(expected)
    assert sorted(os.listdir(str(tmp_path))) == ["passwd"]
