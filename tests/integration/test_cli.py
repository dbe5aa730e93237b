"""The command line (CONTRACT.md §1): check, version, and `run` refusing a bad config."""

import re
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
