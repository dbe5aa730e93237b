#!/usr/bin/python3
"""The soak's measured device, in a process of its own so that the fleet's event loop (busy
with thousands of TLS handshakes during a reconnect wave) is not part of the figure.

    soak_probe.py PORT CA CERTFILE OUT INTERVAL LIFETIME

A v5 certificate client "probe" with a persistent session, subscribed to probe/probe/#,
publishes QoS 1 to probe/probe/rtt every INTERVAL seconds and appends "SENT_UNIX RTT" lines
to OUT for each of its own messages received on the same connection. Exits by itself after
LIFETIME seconds (the soak also kills it)."""

import asyncio
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from soak_client import Peer  # noqa: E402


class Host:
    """What a Peer asks of the soak."""
    max_backoff = 2.0
    reconnect_spread = 0.5

    def __init__(self, port):
        self.port = port

    def pick_target(self, peer):
        return "127.0.0.1", self.port

    def note(self, msg):
        print(msg, file=sys.stderr)

    def on_connack(self, peer):
        pass


class Probe(Peer):
    def __init__(self, host, ctx, out):
        super().__init__(host, "probe", 5, ctx, "127.0.0.1")
        self.filters = [("probe/probe/#", 1)]
        self.out = out

    def on_message(self, topic, qos, payload):
        epoch, sent, wall = payload.decode().split("|")
        if int(epoch) == self.epoch:  # same connection: no reconnect inside the figure
            self.out.write("%s %.6f\n" % (wall, time.monotonic() - float(sent)))
            self.out.flush()

    async def produce(self, interval):
        while not self.stopping:
            await asyncio.sleep(interval)
            if self.online:
                self.publish("probe/probe/rtt", ("%d|%.6f|%.6f" % (
                    self.epoch, time.monotonic(), time.time())).encode(), 1, None)


async def main():
    port, ca, certfile, out, interval, lifetime = sys.argv[1:7]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(certfile)
    with open(out, "a") as f:
        p = Probe(Host(int(port)), ctx, f)
        asyncio.ensure_future(p.produce(float(interval)))
        try:
            await asyncio.wait_for(p.run(), float(lifetime))
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    asyncio.run(main())
