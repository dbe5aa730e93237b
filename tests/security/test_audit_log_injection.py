"""Finding 18.4: a CONNECT username carrying newlines and a JSON object must not become a
line of its own in the text log, which shares stderr with the JSON audit log by default
(`audit.log: "-"`): such a line would parse as a genuine audit event."""

import json
import os
import re
import subprocess

import moat_harness as h
import mqtt_wire as w

V5 = 5
FORGED_CID = "forged-by-username"
TEXT_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (debug|info|warn|error) ")


def _passwd(tmp_path, user, password):
    path = str(tmp_path / "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", path, user, password], check=True,
                   capture_output=True, timeout=10)
    return path


def _stderr_lines(moat, strict=True):
    """strict: split wherever a reader may (str.splitlines: NEL, U+2028, VT, FF, …);
    otherwise only at "\n", as jq and most log shippers do."""
    with open(moat.stderr_path, "rb") as f:
        data = f.read()
    if strict:
        return data.decode("utf-8", errors="replace").splitlines()
    return [l.decode("utf-8", errors="replace") for l in data.split(b"\n")]


def _as_json_object(line):
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def test_username_cannot_forge_an_audit_line_on_stderr(moat_factory, tmp_path):
    pw = _passwd(tmp_path, "device1", "right-one")
    moat = moat_factory({"auth": {"methods": ["certificate", "password"], "password_file": pw},
                         "anomaly": {"auth_failures": 3, "window": "60s"},
                         "audit": {"log": "-", "max_events_per_second": 100000}})
    forged = {"ts": "2026-01-01T00:00:00.000Z", "event": "connect", "listener": "mqtts",
              "remote": "192.0.2.66:4242", "client_id": FORGED_CID, "identity": "admin",
              "protocol": "5.0"}
    # Every C0 control a terminal or a line splitter might act on, around the JSON object.
    username = "x\r\n" + json.dumps(forged) + "\n\x1b[2K\u2028\x0b\x0c\x85y"
    for i in range(3):
        c = moat.wire(version=V5)
        try:
            assert c.connect("inj-%d" % i, username=username, password="wrong") == 0x86
        finally:
            c.close()
    # The anomaly (whose subject is that username) is in the text log.
    h.wait_until(lambda: any("anomaly auth_failures" in l for l in _stderr_lines(moat)), 10,
                 message="the auth_failures anomaly in the text log")
    # The audit writer thread batches: wait for the three genuine events too.
    h.wait_until(lambda: len([l for l in _stderr_lines(moat)
                              if l.startswith("{") and '"auth_failure"' in l]) >= 3, 10,
                 message="the three auth_failure audit events")
    # As jq would read it: no line is the forged event.
    for line in _stderr_lines(moat, strict=False):
        obj = _as_json_object(line)
        if obj is not None:
            assert obj.get("client_id") != FORGED_CID, "forged audit line on stderr: %r" % line
            assert obj.get("remote") != forged["remote"], "forged audit line: %r" % line
    # As the strictest line splitter would: every line is a whole text line or a whole event.
    lines = _stderr_lines(moat)
    for line in lines:
        if not line.strip():
            continue
        if TEXT_LINE.match(line):
            continue  # a text log line: never a JSON object
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError("stderr line is neither a text log line nor JSON: %r" % line)
        assert isinstance(obj, dict), line
        # A genuine audit event: the forged one would carry the forged client id.
        assert obj.get("client_id") != FORGED_CID, "forged audit line on stderr: %r" % line
        assert obj.get("remote") != forged["remote"], "forged audit line on stderr: %r" % line
    # The genuine audit events are there, with the username escaped inside them.
    failures = [json.loads(l) for l in lines
                if l.startswith("{") and '"auth_failure"' in l]
    assert len(failures) == 3
    assert all(e["identity"] == username for e in failures)
