#pragma once
// The WebSocket state of one client connection on a `websocket:` listener (the rules live in
// gateway/websocket; this only holds where a connection stands).

#include <memory>
#include <string>

#include "gateway/net/Snapshot.h"
#include "gateway/websocket/Frames.h"

namespace moat::net {

struct ClientWebSocket {
    ClientWebSocket(std::shared_ptr<const Snapshot::ListenerWebSocket> l,
                    const proxy::Address& peer)
        : listener(std::move(l)), admitAfterHead(admitsAfterHead(*listener, peer)) {}

    // Whether admission must wait for the upgrade head: the TCP peer is a trusted balancer and
    // forwarded_for is on, so X-Forwarded-For will name the client.
    static bool admitsAfterHead(const Snapshot::ListenerWebSocket& l, const proxy::Address& peer) {
        return l.options.forwardedFor && l.trusted.contains(peer);
    }

    // The listener's upgrade rules as they were at accept (dropped once upgraded).
    std::shared_ptr<const Snapshot::ListenerWebSocket> listener;
    // The TCP peer is a trusted balancer and forwarded_for is on: admission (per-IP limits,
    // bans) waits for the client address X-Forwarded-For names.
    const bool admitAfterHead;
    std::string head;  // the upgrade head while it arrives in pieces (≤ 8 KiB)
    bool upgraded = false;
    bool closeSent = false;
    bool reasonNoted = false;
    uint8_t reason = 0;  // the MQTT reason the connection ends for (close code)
    websocket::Deframer deframer;
};

}  // namespace moat::net
