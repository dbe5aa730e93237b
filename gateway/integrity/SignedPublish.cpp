#include "gateway/integrity/SignedPublish.h"

#include "gateway/mqtt/PropertyWalker.h"

namespace moat::integrity {

const char* failureReason(Failure f) {
    switch (f) {
        case Failure::None:
            return "";
        case Failure::MissingSignature:
            return "missing signature";
        case Failure::BadSignature:
            return "bad signature";
        case Failure::MissingTimestamp:
            return "missing timestamp";
        case Failure::BadTimestamp:
            return "bad timestamp";
        case Failure::StaleTimestamp:
            return "stale timestamp";
        case Failure::NoKey:
            return "no key";
        case Failure::Replayed:
            return "replayed signature";
        case Failure::ReplayCacheFull:
            return "replay cache full";
    }
    return "";
}

std::optional<uint64_t> parseDecimal(std::string_view s) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        const uint64_t d = uint64_t(c - '0');
        if (v > (UINT64_MAX - d) / 10) return std::nullopt;
        v = v * 10 + d;
    }
    return v;
}

namespace {

int base64Value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

}  // namespace

std::optional<size_t> base64DecodeInto(std::string_view text, std::span<uint8_t> out) {
    // Padding: only at the end, only to complete the last group of four.
    size_t len = text.size();
    size_t pad = 0;
    while (len > 0 && text[len - 1] == '=' && pad < 2) {
        --len;
        ++pad;
    }
    if (pad && (len + pad) % 4 != 0) return std::nullopt;
    if (len % 4 == 1) return std::nullopt;
    const size_t size = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (size > out.size()) return std::nullopt;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        const int v = base64Value(text[i]);
        if (v < 0) return std::nullopt;
        acc = acc << 6 | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = uint8_t(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical tail
    return n;
}

Failure extractV5(std::span<const uint8_t> properties, std::string_view payload,
                  std::array<uint8_t, kEd25519Size>& sigBuf, SignatureFields& out) {
    out = SignatureFields{};
    out.payload = payload;
    std::string_view sig, ts;
    int sigs = 0, tss = 0;
    mqtt::detail::walkProperties(properties.data(), properties.size(), mqtt::PropertyScope::Publish,
                                 [&](const mqtt::PropertyView& v) {
                                     if (v.id != mqtt::prop::UserProperty) return;
                                     if (v.str == kSigProperty) {
                                         sig = v.str2;
                                         ++sigs;
                                     } else if (v.str == kTsProperty) {
                                         ts = v.str2;
                                         ++tss;
                                     }
                                 });
    if (sigs == 0) return Failure::MissingSignature;
    // Two signatures or timestamps: which one a downstream verifier reads is anyone's guess.
    if (sigs > 1) return Failure::BadSignature;
    if (tss > 1) return Failure::BadTimestamp;
    if (tss == 1) {
        out.timestamp = parseDecimal(ts);
        if (!out.timestamp) return Failure::BadTimestamp;
    }
    auto n = base64DecodeInto(sig, sigBuf);
    if (!n) return Failure::BadSignature;
    out.signature = std::span<const uint8_t>(sigBuf.data(), *n);
    return Failure::None;
}

Failure extractV3(std::string_view payload, Algorithm algorithm, bool withTimestamp,
                  SignatureFields& out) {
    out = SignatureFields{};
    const size_t sigSize = signatureSize(algorithm);
    const size_t trailer = sigSize + (withTimestamp ? kTimestampSize : 0);
    if (payload.size() < trailer) {
        out.payload = payload;
        return Failure::MissingSignature;
    }
    const size_t body = payload.size() - trailer;
    const auto* p = reinterpret_cast<const uint8_t*>(payload.data()) + body;
    if (withTimestamp) {
        out.timestamp = getTimestamp(p);
        p += kTimestampSize;
    }
    out.signature = std::span<const uint8_t>(p, sigSize);
    out.payload = payload.substr(0, body);
    out.trailer = trailer;
    return Failure::None;
}

}  // namespace moat::integrity
