// Fuzzes topic / filter validation (codec and policy must agree on what is a topic) and a
// compiled Policy's rights on fuzzed topics, identities and client ids.
// Input: "IDENTITY\nCLIENTID\nTOPIC_OR_FILTER". Invariants:
//   - codec-valid names/filters are policy-valid (the codec is stricter: UTF-8);
//   - publish is allowed only for valid topic names, subscribe only for valid filters;
//   - a decision never contradicts the rule lists: deny_publish hits are never allowed,
//     placeholder rules never match identities/client ids holding '+', '#' or '/';
//   - delivery of a topic implies some subscribe rule matches it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/mqtt/Utf8.h"
#include "policy/Policy.h"
#include "policy/TopicMatch.h"

using namespace moat;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

std::shared_ptr<const policy::Policy> makePolicy() {
    policy::PolicySpec spec;
    spec.defaultRoles = {"device"};
    spec.roles.push_back({"device",
                          {"devices/%u/telemetry/#", "devices/%u/status", "clients/%c/#"},
                          {"devices/%u/commands/#", "broadcast/+"},
                          {"devices/%u/telemetry/secret/#"},
                          {}});
    spec.roles.push_back({"operator",
                          {"devices/+/commands/#"},
                          {"devices/#", "$SYS/broker/clients/#"},
                          {"devices/+/commands/firmware/#"},
                          {"devices/+/secret/#"}});
    spec.users["ops"] = {"operator"};
    std::vector<std::string> errors;
    auto p = policy::Policy::compile(spec, errors);
    check(p != nullptr && errors.empty());
    return p;
}

bool unsafe(std::string_view v) {
    return v.empty() || v.find_first_of("+#/") != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto kPolicy = makePolicy();
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const size_t a = in.find('\n');
    const std::string_view identity = in.substr(0, a);
    const std::string_view rest =
        a == std::string_view::npos ? std::string_view() : in.substr(a + 1);
    const size_t b = rest.find('\n');
    const std::string_view clientId = rest.substr(0, b);
    const std::string_view topic =
        b == std::string_view::npos ? std::string_view() : rest.substr(b + 1);

    // Codec vs policy validation.
    if (mqtt::validTopicName(topic)) check(policy::isValidTopicName(topic));
    if (mqtt::validTopicFilter(topic)) {
        check(policy::isValidTopicFilter(policy::shareInnerFilter(topic)));
    }
    check(mqtt::isSharedSubscription(topic) == policy::isSharedFilter(topic));
    if (policy::isValidTopicName(topic)) check(policy::topicMatches("#", topic) || topic[0] == '$');

    auto rights = kPolicy->rightsFor(identity, clientId);
    check(rights != nullptr);
    const policy::Decision pub = rights->checkPublish(topic);
    const policy::Decision sub = rights->checkSubscribe(topic);
    const policy::Decision del = rights->checkDelivery(topic);
    if (pub.allowed) check(policy::isValidTopicName(topic) && pub.byRule);
    if (sub.allowed) check(sub.byRule);
    if (del.allowed) check(policy::isValidTopicName(topic));

    const bool isOps = identity == "ops";
    if (!isOps) {
        // device role: placeholders with unsafe values never match.
        if (unsafe(identity) && unsafe(clientId)) check(!pub.allowed);
        if (unsafe(identity)) {
            check(!sub.allowed ||
                  policy::filterCovers("broadcast/+", policy::shareInnerFilter(topic)));
        }
        if (pub.allowed && !unsafe(identity)) {
            const std::string secret = "devices/" + std::string(identity) + "/telemetry/secret/#";
            check(!policy::topicMatches(secret, topic));
        }
    } else {
        if (pub.allowed) check(!policy::topicMatches("devices/+/commands/firmware/#", topic));
        if (del.allowed) check(!policy::topicMatches("devices/+/secret/#", topic));
        if (sub.allowed) {
            check(!policy::filtersOverlap("devices/+/secret/#", policy::shareInnerFilter(topic)));
        }
    }
    return 0;
}
