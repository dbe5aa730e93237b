// policy_bench: decisions per second of the compiled policy (not a test; no thresholds).
// A policy of 10,000 rules in 40 roles (literal, `+`, `#` and %u / %c placeholder rules), one
// identity holding all of them; measures checkPublish, checkSubscribe, checkDelivery and
// rightsFor() (which expands the placeholder rules for each connection).
//
//   ./policy_bench [iterations]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "policy/Policy.h"

using namespace moat::policy;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kRoles = 40;
constexpr int kAllowPerRole = 120;  // per list (publish, subscribe)
constexpr int kDenyPerRole = 5;     // per list (deny_publish, deny_subscribe)

std::string allowRule(int role, int i) {
    const std::string s = std::to_string(role);
    const std::string d = std::to_string(i);
    switch (i % 6) {
        case 0:
        case 1:
            return "site" + s + "/dev" + d + "/telemetry";  // literal
        case 2:
            return "site" + s + "/+/status" + d;  // `+`
        case 3:
            return "site" + s + "/logs" + d + "/#";  // `#`
        case 4:
            return "users/%u/site" + s + "/" + d + "/#";  // identity placeholder
        default:
            return "clients/%c/" + s + "/" + d;  // client-id placeholder
    }
}

PolicySpec makeSpec() {
    PolicySpec spec;
    for (int r = 0; r < kRoles; ++r) {
        RoleSpec role;
        role.name = "role" + std::to_string(r);
        for (int i = 0; i < kAllowPerRole; ++i) {
            role.publish.push_back(allowRule(r, i));
            role.subscribe.push_back(allowRule(r, i + 1));
        }
        for (int i = 0; i < kDenyPerRole; ++i) {
            role.denyPublish.push_back("site" + std::to_string(r) + "/dev" + std::to_string(i * 7) +
                                       "/telemetry/#");
            role.denySubscribe.push_back("site" + std::to_string(r) + "/secret" +
                                         std::to_string(i) + "/#");
        }
        spec.defaultRoles.push_back(role.name);
        spec.roles.push_back(std::move(role));
    }
    return spec;
}

std::vector<std::string> makeTopics(std::mt19937& rng, size_t n) {
    std::vector<std::string> topics;
    std::uniform_int_distribution<int> role(0, kRoles - 1), idx(0, kAllowPerRole * 2);
    for (size_t k = 0; k < n; ++k) {
        const std::string s = std::to_string(role(rng));
        const std::string d = std::to_string(idx(rng));
        switch (k % 5) {
            case 0:
                topics.push_back("site" + s + "/dev" + d + "/telemetry");
                break;
            case 1:
                topics.push_back("site" + s + "/gw" + d + "/status" + d);
                break;
            case 2:
                topics.push_back("site" + s + "/logs" + d + "/a/b");
                break;
            case 3:
                topics.push_back("users/bench-user/site" + s + "/" + d + "/x");
                break;
            default:
                topics.push_back("nowhere/" + s + "/" + d);
                break;
        }
    }
    return topics;
}

std::vector<std::string> makeFilters(std::mt19937& rng, size_t n) {
    std::vector<std::string> filters;
    std::uniform_int_distribution<int> role(0, kRoles - 1), idx(0, kAllowPerRole * 2);
    for (size_t k = 0; k < n; ++k) {
        const std::string s = std::to_string(role(rng));
        const std::string d = std::to_string(idx(rng));
        switch (k % 5) {
            case 0:
                filters.push_back("site" + s + "/dev" + d + "/telemetry");
                break;
            case 1:
                filters.push_back("site" + s + "/+/status" + d);
                break;
            case 2:
                filters.push_back("site" + s + "/logs" + d + "/#");
                break;
            case 3:
                filters.push_back("$share/g/users/bench-user/site" + s + "/" + d + "/+");
                break;
            default:
                filters.push_back("site" + s + "/#");
                break;
        }
    }
    return filters;
}

template <typename F>
void measure(const char* name, size_t count, F&& f) {
    const auto start = Clock::now();
    size_t allowed = f();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("%-18s %12.0f decisions/s  (%zu in %.3f s, %zu allowed)\n", name, count / seconds,
                count, seconds, allowed);
}

}  // namespace

int main(int argc, char** argv) {
    const size_t iterations = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1'000'000;
    std::mt19937 rng(1);

    const PolicySpec spec = makeSpec();
    std::vector<std::string> errors;
    const auto compileStart = Clock::now();
    const auto policy = Policy::compile(spec, errors);
    const double compileSeconds =
        std::chrono::duration<double>(Clock::now() - compileStart).count();
    if (!policy) {
        std::fprintf(stderr, "compile failed: %s\n", errors.empty() ? "?" : errors[0].c_str());
        return 1;
    }
    const size_t rules = kRoles * (2 * kAllowPerRole + 2 * kDenyPerRole);
    std::printf("policy: %zu rules in %d roles, compiled in %.3f s\n", rules, kRoles,
                compileSeconds);

    const auto rights = policy->rightsFor("bench-user", "bench-client");
    const auto topics = makeTopics(rng, 4096);
    const auto filters = makeFilters(rng, 4096);

    measure("checkPublish", iterations, [&] {
        size_t allowed = 0;
        for (size_t i = 0; i < iterations; ++i)
            allowed += rights->checkPublish(topics[i & 4095]).allowed;
        return allowed;
    });
    measure("checkSubscribe", iterations, [&] {
        size_t allowed = 0;
        for (size_t i = 0; i < iterations; ++i) {
            allowed += rights->checkSubscribe(filters[i & 4095]).allowed;
        }
        return allowed;
    });
    measure("checkDelivery", iterations, [&] {
        size_t allowed = 0;
        for (size_t i = 0; i < iterations; ++i)
            allowed += rights->checkDelivery(topics[i & 4095]).allowed;
        return allowed;
    });
    const size_t connections = std::max<size_t>(iterations / 1000, 100);
    measure("rightsFor", connections, [&] {
        size_t any = 0;
        for (size_t i = 0; i < connections; ++i) {
            any += policy->rightsFor("user" + std::to_string(i), "client" + std::to_string(i))
                       ->hasAnyRights();
        }
        return any;
    });
    return 0;
}
