#include "gateway/cluster/ClusterEvent.h"

#include <array>
#include <charconv>

namespace moat::cluster {

namespace {

constexpr std::string_view kVersion = "moat1";
constexpr char kHex[] = "0123456789ABCDEF";
// Ban durations and times left above this are refused (a year; bans.max_duration is far less).
constexpr uint64_t kMaxMillis = 366ull * 24 * 3600 * 1000;

bool plain(unsigned char c) {
    return c >= '!' && c <= '~' && c != '%';
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

const char* subjectKindName(SubjectKind k) {
    return k == SubjectKind::Ip ? "ip" : "id";
}

std::optional<SubjectKind> parseSubjectKind(std::string_view s) {
    if (s == "ip") return SubjectKind::Ip;
    if (s == "id") return SubjectKind::Identity;
    return std::nullopt;
}

std::optional<KickReason> parseKickReason(std::string_view s) {
    if (s == "banned") return KickReason::Banned;
    if (s == "revoked") return KickReason::Revoked;
    if (s == "no_rights") return KickReason::NoRights;
    return std::nullopt;
}

std::optional<uint64_t> parseNumber(std::string_view s, uint64_t max) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v > max) return std::nullopt;
    return v;
}

bool validFingerprint(std::string_view s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

// Splits on single spaces; false when there are more than N fields or an empty one.
template <size_t N>
bool split(std::string_view line, std::array<std::string_view, N>& out, size_t& count) {
    count = 0;
    size_t start = 0;
    while (true) {
        size_t sp = line.find(' ', start);
        std::string_view field = line.substr(start, sp == std::string_view::npos ? sp : sp - start);
        if (field.empty() || count == N) return false;
        out[count++] = field;
        if (sp == std::string_view::npos) return true;
        start = sp + 1;
    }
}

}  // namespace

const char* kickReasonName(KickReason reason) {
    switch (reason) {
        case KickReason::Banned:
            return "banned";
        case KickReason::Revoked:
            return "revoked";
        case KickReason::NoRights:
            return "no_rights";
    }
    return "banned";
}

std::string escapeField(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (unsigned char c : raw) {
        if (plain(c)) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
    return out;
}

std::optional<std::string> unescapeField(std::string_view field, size_t maxBytes) {
    std::string out;
    for (size_t i = 0; i < field.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(field[i]);
        if (c == '%') {
            if (i + 2 >= field.size()) return std::nullopt;
            int hi = hexValue(field[i + 1]), lo = hexValue(field[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (plain(c)) {
            out.push_back(static_cast<char>(c));
        } else {
            return std::nullopt;
        }
        if (out.size() > maxBytes) return std::nullopt;
    }
    return out;
}

std::string encodeEvent(const ClusterEvent& e) {
    std::string out(kVersion);
    auto add = [&out](std::string_view field) {
        out.push_back(' ');
        out.append(field);
    };
    switch (e.type) {
        case ClusterEvent::Type::Ban:
            add("ban");
            add(escapeField(e.replica));
            add(subjectKindName(e.kind));
            add(escapeField(e.subject));
            add(std::to_string(e.remaining.count()));
            add(std::to_string(e.duration.count()));
            break;
        case ClusterEvent::Type::Kick:
            add("kick");
            add(escapeField(e.replica));
            add(escapeField(e.subject));
            add(kickReasonName(e.reason));
            add(e.fingerprint.empty() ? std::string_view("-") : std::string_view(e.fingerprint));
            break;
        case ClusterEvent::Type::Conn:
            add("conn");
            add(escapeField(e.replica));
            add(escapeField(e.subject));
            add(std::to_string(e.connections));
            add(std::to_string(e.accepted));
            break;
        case ClusterEvent::Type::Heartbeat:
            add("hb");
            add(escapeField(e.replica));
            break;
        case ClusterEvent::Type::Owner:
            add("own");
            add(escapeField(e.replica));
            add(escapeField(e.subject));
            add(escapeField(e.owner));
            add(std::to_string(e.remaining.count()));
            break;
    }
    return out;
}

std::optional<ClusterEvent> decodeEvent(std::string_view line) {
    std::array<std::string_view, 7> f;
    size_t n = 0;
    if (!split(line, f, n) || n < 3 || f[0] != kVersion) return std::nullopt;
    ClusterEvent e;
    auto replica = unescapeField(f[2], kMaxReplicaBytes);
    if (!replica || replica->empty()) return std::nullopt;
    e.replica = std::move(*replica);

    if (f[1] == "hb") {
        if (n != 3) return std::nullopt;
        e.type = ClusterEvent::Type::Heartbeat;
        return e;
    }
    if (f[1] == "ban") {
        if (n != 7) return std::nullopt;
        auto kind = parseSubjectKind(f[3]);
        auto subject = unescapeField(f[4], kMaxSubjectBytes);
        auto remaining = parseNumber(f[5], kMaxMillis);
        auto duration = parseNumber(f[6], kMaxMillis);
        if (!kind || !subject || subject->empty() || !remaining || !duration) return std::nullopt;
        e.type = ClusterEvent::Type::Ban;
        e.kind = *kind;
        e.subject = std::move(*subject);
        e.remaining = std::chrono::milliseconds(*remaining);
        e.duration = std::chrono::milliseconds(*duration);
        return e;
    }
    if (f[1] == "kick") {
        if (n != 6) return std::nullopt;
        auto identity = unescapeField(f[3], kMaxSubjectBytes);
        auto reason = parseKickReason(f[4]);
        if (!identity || identity->empty() || !reason) return std::nullopt;
        if (f[5] != "-" && !validFingerprint(f[5])) return std::nullopt;
        e.type = ClusterEvent::Type::Kick;
        e.kind = SubjectKind::Identity;
        e.subject = std::move(*identity);
        e.reason = *reason;
        if (f[5] != "-") e.fingerprint = std::string(f[5]);
        return e;
    }
    if (f[1] == "own") {
        if (n != 6) return std::nullopt;
        auto clientId = unescapeField(f[3], kMaxSubjectBytes);
        auto owner = unescapeField(f[4], kMaxSubjectBytes);
        auto remaining = parseNumber(f[5], kMaxMillis);
        if (!clientId || clientId->empty() || !owner || owner->empty() || !remaining)
            return std::nullopt;
        e.type = ClusterEvent::Type::Owner;
        e.subject = std::move(*clientId);
        e.owner = std::move(*owner);
        e.remaining = std::chrono::milliseconds(*remaining);
        return e;
    }
    if (f[1] == "conn") {
        if (n != 6) return std::nullopt;
        auto ip = unescapeField(f[3], 64);
        auto connections = parseNumber(f[4], UINT32_MAX);
        auto accepted = parseNumber(f[5], UINT32_MAX);
        if (!ip || ip->empty() || !connections || !accepted) return std::nullopt;
        e.type = ClusterEvent::Type::Conn;
        e.subject = std::move(*ip);
        e.connections = static_cast<uint32_t>(*connections);
        e.accepted = static_cast<uint32_t>(*accepted);
        return e;
    }
    return std::nullopt;
}

// ------------------------------------------------------------------------------ keys

namespace {
std::string subjectKey(std::string_view prefix, std::string_view what, SubjectKind kind,
                       std::string_view subject) {
    std::string key(prefix);
    key.append(what);
    key.append(subjectKindName(kind));
    key.push_back(':');
    key.append(escapeField(subject));
    return key;
}
}  // namespace

std::string banKey(std::string_view prefix, SubjectKind kind, std::string_view subject) {
    return subjectKey(prefix, "ban:", kind, subject);
}

std::string failKey(std::string_view prefix, SubjectKind kind, std::string_view subject) {
    return subjectKey(prefix, "fail:", kind, subject);
}

std::string connKey(std::string_view prefix, std::string_view replica) {
    return std::string(prefix) + "conn:" + escapeField(replica);
}

std::string eventsChannel(std::string_view prefix) {
    return std::string(prefix) + "events";
}

std::optional<BanKey> parseBanKey(std::string_view prefix, std::string_view key) {
    std::string head = std::string(prefix) + "ban:";
    if (key.size() < head.size() + 4 || key.substr(0, head.size()) != head) return std::nullopt;
    key.remove_prefix(head.size());
    auto kind = parseSubjectKind(key.substr(0, 2));
    if (!kind || key[2] != ':') return std::nullopt;
    auto subject = unescapeField(key.substr(3), kMaxSubjectBytes);
    if (!subject || subject->empty()) return std::nullopt;
    return BanKey{*kind, std::move(*subject)};
}

std::optional<std::string> parseConnKey(std::string_view prefix, std::string_view key) {
    std::string head = std::string(prefix) + "conn:";
    if (key.size() <= head.size() || key.substr(0, head.size()) != head) return std::nullopt;
    auto replica = unescapeField(key.substr(head.size()), kMaxReplicaBytes);
    if (!replica || replica->empty()) return std::nullopt;
    return replica;
}

std::string ownerKey(std::string_view prefix, std::string_view clientId) {
    return std::string(prefix) + "owner:" + escapeField(clientId);
}

std::optional<std::string> parseOwnerKey(std::string_view prefix, std::string_view key) {
    std::string head = std::string(prefix) + "owner:";
    if (key.size() <= head.size() || key.substr(0, head.size()) != head) return std::nullopt;
    auto clientId = unescapeField(key.substr(head.size()), kMaxSubjectBytes);
    if (!clientId || clientId->empty()) return std::nullopt;
    return clientId;
}

std::string scanPattern(std::string_view prefix, std::string_view what) {
    std::string out;
    for (char c : prefix) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    out.append(what);
    out.push_back('*');
    return out;
}

}  // namespace moat::cluster
