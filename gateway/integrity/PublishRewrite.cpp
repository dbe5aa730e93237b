#include "gateway/integrity/PublishRewrite.h"

#include <algorithm>
#include <span>

#include "gateway/integrity/SignedPublish.h"
#include "gateway/mqtt/PropertyWalker.h"
#include "gateway/mqtt/Wire.h"

namespace moat::integrity {

std::vector<uint8_t> encodeIdentityProperty(std::string_view identity) {
    std::vector<uint8_t> out;
    if (identity.size() > 0xFFFF) return out;
    // Sized once: also keeps GCC 12 from a false -Warray-bounds on growing a 1-byte vector.
    out.reserve(1 + 2 + kIdentityProperty.size() + 2 + identity.size());
    out.push_back(mqtt::prop::UserProperty);
    mqtt::wire::putPrefixed(out, kIdentityProperty);
    mqtt::wire::putPrefixed(out, identity);
    return out;
}

bool hasUserProperty(std::span<const uint8_t> properties, std::string_view name) {
    bool found = false;
    mqtt::detail::walkProperties(properties.data(), properties.size(), mqtt::PropertyScope::Publish,
                                 [&](const mqtt::PropertyView& v) {
                                     if (v.id == mqtt::prop::UserProperty && v.str == name)
                                         found = true;
                                 });
    return found;
}

bool rewritePublish(const mqtt::Frame& frame, const mqtt::PublishView& pub, bool v5,
                    std::string_view payload, std::span<const uint8_t> stamp,
                    std::vector<uint8_t>& out) {
    out.reserve(out.size() + mqtt::wire::kHeaderReserve + 4 + pub.topic.size() + 4 +
                pub.properties.size() + stamp.size() + payload.size());
    const size_t start = mqtt::wire::beginPacket(out);
    bool ok = mqtt::wire::putPrefixed(out, pub.topic);
    if (pub.qos > 0) mqtt::wire::putU16(out, pub.packetId);
    if (v5) {
        // The kept properties are copied as raw runs between dropped moat-identity entries.
        // A user property is encoded as id(1) name-length(2) name value-length(2) value, so
        // its bytes run from name.data() - 3 to the end of its value.
        const uint8_t* base = pub.properties.data();
        const uint8_t* end = base + pub.properties.size();
        std::vector<std::pair<const uint8_t*, const uint8_t*>> dropped;
        if (!stamp.empty()) {
            mqtt::detail::walkProperties(
                base, pub.properties.size(), mqtt::PropertyScope::Publish,
                [&](const mqtt::PropertyView& v) {
                    if (v.id != mqtt::prop::UserProperty || v.str != kIdentityProperty) return;
                    const auto* from = reinterpret_cast<const uint8_t*>(v.str.data()) - 3;
                    const auto* to =
                        reinterpret_cast<const uint8_t*>(v.str2.data()) + v.str2.size();
                    dropped.emplace_back(from, to);
                });
        }
        size_t kept = pub.properties.size() + stamp.size();
        for (const auto& d : dropped) kept -= size_t(d.second - d.first);
        if (kept > mqtt::wire::kMaxVarint) ok = false;
        mqtt::wire::putVarint(out, uint32_t(kept));
        const uint8_t* cursor = base;
        for (const auto& d : dropped) {
            out.insert(out.end(), cursor, d.first);
            cursor = d.second;
        }
        out.insert(out.end(), cursor, end);
        out.insert(out.end(), stamp.begin(), stamp.end());
    }
    mqtt::wire::putBytes(out, payload);
    return mqtt::wire::finishPacket(out, start, frame.firstByte, ok);
}

Checker::Outcome checkWill(Checker& checker, std::string_view topic, std::string_view payload,
                           const std::vector<mqtt::Property>& willProperties, bool v5) {
    // Checker reads a PUBLISH properties block; only the user properties matter to it (and
    // Will Delay Interval, say, is not allowed in a PUBLISH block), so encode just those.
    std::vector<uint8_t> block;
    std::span<const uint8_t> body;
    if (v5) {
        std::vector<mqtt::Property> users;
        for (const auto& p : willProperties)
            if (p.id == mqtt::prop::UserProperty) users.push_back(p);
        // Strings decoded from a valid CONNECT always re-encode; the block goes without its
        // length prefix, as in a PUBLISH.
        mqtt::encodeProperties(users, block);
        mqtt::wire::Reader r(block.data(), block.size());
        uint32_t length = 0;
        if (r.varint(length)) body = std::span<const uint8_t>(r.pos(), r.remaining());
    }
    return checker.check(topic, payload, body, v5, /*remember=*/false);
}

void stampWillProperties(std::vector<mqtt::Property>& willProperties, std::string_view identity) {
    std::erase_if(willProperties, [](const mqtt::Property& p) {
        return p.id == mqtt::prop::UserProperty && p.str == kIdentityProperty;
    });
    willProperties.push_back(
        mqtt::Property::user(std::string(kIdentityProperty), std::string(identity)));
}

}  // namespace moat::integrity
