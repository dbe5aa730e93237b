"""MQTT over WebSocket with JavaScript clients (issue 23): MQTT.js in Node over wss and ws, and
MQTT.js in a real headless browser (Debian's chromium driven by puppeteer-core) loading a page
that connects over wss, subscribes, publishes and shows what it received. Through Moat in front
of a real Mosquitto; the browser's page is served from a local http:// origin that the
listener's allowed_origins lists (another origin is refused with 403). The browser also logs in
with a JWT (auth.token) minted by npm `jose` as its MQTT password."""

import json
import os
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import js_harness as js
import moat_harness as h
from test_token import jose_missing, mint_jose, token_overrides
from test_websocket import ws_moat

pytestmark = pytest.mark.skipif(js.missing_reason() is not None,
                                reason=js.missing_reason() or "")

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


@pytest.fixture(scope="module")
def js_hub(tmp_path_factory):
    hub = js.Hub(str(tmp_path_factory.mktemp("hub")))
    yield hub
    hub.close()


@VERSIONS
@pytest.mark.parametrize("secure", [True, False], ids=["wss", "ws"])
def test_mqttjs_node_over_websocket(moat_factory, broker, js_hub, version, secure):
    moat = ws_moat(moat_factory)
    c = js.MqttJs(js_hub, moat, version=version, cert="device1" if secure else None,
                  protocol="wss" if secure else "ws", path="/mqtt",
                  port=moat.port if secure else moat.ws_port, host="localhost")
    try:
        ev = c.connect()
        assert ev["event"] == "connect" and ev["reasonCode"] == 0, ev
        assert c.subscribe({"js/ws/#": 1}) == [1]
        pub = c.publish("js/ws/a", b"over websocket", qos=1)
        assert pub["error"] is None, pub
        msg = c.message()
        assert (msg["topic"], msg["payload"]) == ("js/ws/a", b"over websocket")
        c.end()
    finally:
        c.close()
    ev = moat.wait_audit(lambda e: e.get("event") == "connect"
                         and e.get("client_id") == c.client_id)
    assert ev[0]["listener"] == ("wss" if secure else "ws")


def run_browser(http_port, url, client_id, version, username=None, password=None):
    login = [] if password is None else [username or "", password]
    out = subprocess.run(["node", os.path.join(js.JS_DIR, "browser.js"), str(http_port), url,
                          client_id, str(version)] + login, cwd=js.JS_DIR, capture_output=True,
                         timeout=90)
    lines = out.stdout.decode().strip().splitlines()
    assert lines, "browser.js printed nothing; stderr:\n" + out.stderr.decode()[-3000:]
    return json.loads(lines[-1])


NEEDS_CHROMIUM = pytest.mark.skipif(
    shutil.which("chromium") is None and not os.path.exists("/usr/bin/chromium"),
    reason="chromium is not installed (deploy/install-deps.sh installs it)")


@NEEDS_CHROMIUM
@VERSIONS
def test_mqttjs_in_a_headless_browser_over_wss(moat_factory, broker, version):
    http_port = h.free_port()
    origin = "http://127.0.0.1:%d" % http_port
    # No client_ca: a CertificateRequest makes a browser offer its certificates (a chooser on
    # the desktop; headless Chromium has none and aborts the handshake). Browsers log in with
    # passwords or tokens; here anonymously.
    moat = ws_moat(moat_factory, websocket={"allowed_origins": [origin]},
                   tls={"client_ca": None})
    url = "wss://localhost:%d/mqtt" % moat.port
    result = run_browser(http_port, url, "chromium-%d" % version, version)
    assert result["error"] is None, result
    assert result["connected"], result
    assert result["received"] == [["browser/hello", "hello from chromium"]], result
    ev = moat.wait_audit(lambda e: e.get("event") == "connect"
                         and e.get("client_id") == "chromium-%d" % version)
    assert ev[0]["listener"] == "wss"
    # The same page from an origin the listener does not list: 403, no session.
    other = h.free_port()
    moat2 = ws_moat(moat_factory, websocket={"allowed_origins": ["https://dashboard.example"]},
                    tls={"client_ca": None})
    result = run_browser(other, "wss://localhost:%d/mqtt" % moat2.port, "chromium-x", version)
    assert not result["connected"] and result["error"], result
    moat2.wait_audit(lambda e: e.get("event") == "protocol_error"
                     and "origin (HTTP 403)" in e.get("reason", ""))


@NEEDS_CHROMIUM
@pytest.mark.skipif(jose_missing() is not None, reason=jose_missing() or "")
@VERSIONS
def test_mqttjs_in_a_headless_browser_logs_in_with_a_jwt(moat_factory, broker, tmp_path,
                                                         version):
    """The way a browser dashboard logs in: MQTT.js over wss with a JWT (ES256, minted by npm
    `jose`, not by Moat's code or PyJWT) as the MQTT password; a token for another audience is
    refused with a CONNACK the page sees."""
    keys = {"ES256": ec.generate_private_key(ec.SECP256R1())}
    http_port = h.free_port()
    origin = "http://127.0.0.1:%d" % http_port
    over = token_overrides(tmp_path, keys)
    over["auth"]["anonymous"] = False
    moat = ws_moat(moat_factory, websocket={"allowed_origins": [origin]},
                   tls={"client_ca": None}, overrides=over)
    url = "wss://localhost:%d/mqtt" % moat.port
    cid = "chromium-jwt-%d" % version
    tok = mint_jose(keys, "ES256", sub="dash-%d" % version)
    result = run_browser(http_port, url, cid, version, username="ignored", password=tok)
    assert result["error"] is None, result
    assert result["connected"], result
    assert result["received"] == [["browser/hello", "hello from chromium"]], result
    ev = moat.wait_audit(lambda e: e.get("event") == "connect" and e.get("client_id") == cid)
    assert ev[0]["listener"] == "wss"
    # The broker sees the token's identity as the username.
    broker.wait_log(r"as %s .*u'dash-%d'" % (cid, version))
    assert moat.metric("moat_auth_total", method="token", result="success") >= 1

    bad_cid = "chromium-jwt-bad-%d" % version
    bad = mint_jose(keys, "ES256", sub="dash-%d" % version, aud="elsewhere")
    result = run_browser(http_port, url, bad_cid, version, username="ignored", password=bad)
    assert not result["connected"] and result["error"], result
    assert result["code"] == {4: 4, 5: 0x86}[version], result  # bad user name or password
    ev = moat.wait_audit(lambda e: e.get("event") == "auth_failure"
                         and e.get("client_id") == bad_cid)
    assert ev[0].get("reason") == "wrong audience", ev
    assert ("as %s " % bad_cid) not in broker.log()
    for text in (moat.stderr(), open(moat.audit_path).read()):
        assert tok not in text and bad not in text
