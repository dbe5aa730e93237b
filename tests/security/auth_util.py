"""Helpers of the password-login security tests: plaintext MQTT from a chosen loopback source
address (bans are per address), and password files with a chosen PBKDF2 cost."""

import base64
import hashlib
import os
import socket
import ssl

import moat_harness as h
import mqtt_wire as w


def pbkdf2_line(user, password, iterations):
    """A mosquitto_passwd `$7$` line (PBKDF2-HMAC-SHA512, 12-byte salt) at `iterations`."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return "%s:$7$%d$%s$%s\n" % (user, iterations, base64.b64encode(salt).decode(),
                                 base64.b64encode(digest).decode())


def password_file(tmp_path, users):
    """users: {name: (password, iterations)} -> path of a password file."""
    path = str(tmp_path / "passwd")
    with open(path, "w") as f:
        for user, (password, iterations) in users.items():
            f.write(pbkdf2_line(user, password, iterations))
    return path


def password_moat(moat_factory, pw_file, bans=None, limits=None, listener=None, start=True):
    """A plaintext listener with password logins only (cheap connections: no TLS)."""
    overrides = {"auth": {"methods": ["password"], "anonymous": False, "password_file": pw_file}}
    if bans is not None:
        overrides["bans"] = bans
    if limits is not None:
        overrides["limits"] = limits
    return moat_factory(overrides, listener=dict({"tls": None}, **(listener or {})), start=start)


class SourceWire(w.WireClient):
    """Plain MQTT from a chosen loopback source address."""

    def __init__(self, moat, src, version=5, timeout=5.0):
        self.version = version
        self.timeout = timeout
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(timeout)
        try:
            raw.bind((src, 0))
            raw.connect((h.HOST, moat.port))
        except OSError:
            raw.close()
            raise
        self.sock = raw
        self.buf = bytearray()


def attempt(moat, src, cid, user, password, version=5, timeout=10.0, keep=False):
    """CONNACK code (None: closed before a CONNACK); with keep=True also the open client."""
    try:
        c = SourceWire(moat, src, version, timeout)
    except OSError:
        return (None, None) if keep else None
    try:
        code = c.connect(cid, username=user, password=password)
    except (OSError, EOFError, ssl.SSLError, w.WireError):
        c.close()
        return (None, None) if keep else None
    if keep and code == 0:
        return code, c
    c.close()
    return (code, None) if keep else code
