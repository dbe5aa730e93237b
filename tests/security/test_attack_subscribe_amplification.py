"""Attack round: one SUBSCRIBE packet, thousands of copies of one filter.

`control_packet_rate` counts a SUBSCRIBE as one packet and `max_subscriptions` counts distinct
filters, so a SUBSCRIBE that names one allowed filter thousands of times passes both and is
forwarded whole. The broker handles every copy — and sends the topic's retained message once
per copy: a 1-byte retained message and one 256 KiB SUBSCRIBE become tens of thousands of
deliveries (and broker work) per packet, 50 packets a second under the default limits."""

import struct
import time

import moat_harness as h
import mqtt_wire as w
import sec_util as u


def test_duplicate_filters_in_one_subscribe_are_not_amplified(moat_factory, broker):
    moat = moat_factory({"limits": {"control_packet_rate": "50/s", "max_subscriptions": 100}})
    topic = "amp/" + u.unique("r")
    pub = u.connected_wire(moat, 4, u.unique("retainer"), cert="device2")
    pub.send(w.publish_packet(topic, b"R", qos=1, retain=True))
    pub.expect(w.PUBACK)
    pub.close()

    cid = u.unique("amp")
    c = u.connected_wire(moat, 4, cid)
    copies = 2000
    c.send(w.packet(w.SUBSCRIBE, 2, struct.pack("!H", 1) + (w.utf8(topic) + b"\x00") * copies))
    ack = c.expect(w.SUBACK, timeout=20)
    assert len(ack.body) - 2 == copies
    deliveries = len(c.pending_publishes) + len(c.publishes(1.0))
    c.close()
    assert deliveries <= 100, (
        "one SUBSCRIBE naming %s %d times made the broker send its retained message %d "
        "times" % (topic, copies, deliveries))
