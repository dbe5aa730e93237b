#include "tests/bench/FloodProbe.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "tests/bench/Stats.h"

namespace moat::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kEchoTimeoutMs = 2000;  // a round trip slower than this is counted as lost
constexpr int kConnectTimeoutMs = 5000;

}  // namespace

bool FloodProbe::start(const Endpoint& ep, const std::string& topic, int intervalMs,
                       std::string& error) {
    ep_ = ep;
    topic_ = topic;
    intervalMs_ = intervalMs;
    clientId_ = "mb-probe-" + std::to_string(::getpid());
    session_ = mqtt::connectClient(ep_, clientId_, kConnectTimeoutMs, error);
    if (!session_) return false;
    if (!mqtt::subscribeAndWait(*session_, topic_, 0, kConnectTimeoutMs, error)) {
        session_.reset();
        return false;
    }
    stop_.store(false);
    thread_ = std::thread([this] { loop(); });
    return true;
}

void FloodProbe::stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    session_.reset();
}

bool FloodProbe::reconnect() {
    std::string error;
    session_ = mqtt::connectClient(ep_, clientId_, kConnectTimeoutMs, error);
    if (session_ && mqtt::subscribeAndWait(*session_, topic_, 0, kConnectTimeoutMs, error)) {
        std::lock_guard lock(mu_);
        ++reconnects_;
        return true;
    }
    session_.reset();
    return false;
}

void FloodProbe::loop() {
    std::vector<uint8_t> pkt;
    uint64_t seq = 0;
    auto next = Clock::now();
    while (!stop_.load()) {
        next += std::chrono::milliseconds(intervalMs_);
        int phase = phase_.load();
        if (!session_ && !reconnect()) {
            if (phase != kOff) {
                std::lock_guard lock(mu_);
                ++lost_[phase];
            }
        } else {
            ++seq;
            pkt.clear();
            size_t at = mqtt::appendPublish(pkt, topic_, 0, 0, sizeof seq);
            std::memcpy(pkt.data() + at, &seq, sizeof seq);
            auto sent = Clock::now();
            bool echoed = false;
            bool broken = !session_->conn->writeAll(pkt.data(), pkt.size());
            auto deadline = sent + std::chrono::milliseconds(kEchoTimeoutMs);
            mqtt::Frame f;
            while (!broken && !echoed) {
                while (session_->reader.next(f)) {
                    mqtt::PublishView pv;
                    if (f.type() == mqtt::kPublish && mqtt::parsePublish(f, pv) &&
                        pv.payloadLength == sizeof seq &&
                        !std::memcmp(pv.payload, &seq, sizeof seq))
                        echoed = true;
                }
                if (echoed) break;
                auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
                if (left.count() <= 0) break;
                ssize_t r = session_->reader.fill(*session_->conn, static_cast<int>(left.count()));
                if (r < 0 || session_->reader.malformed()) broken = true;
            }
            if (phase != kOff) {
                std::lock_guard lock(mu_);
                if (echoed) {
                    samples_[phase].push_back(
                        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent)
                            .count());
                } else {
                    ++lost_[phase];
                }
            }
            if (broken) session_.reset();
        }
        auto now = Clock::now();
        if (next < now) next = now;  // a slow round trip delays the schedule, never bunches it
        while (!stop_.load() && Clock::now() < next) {
            std::this_thread::sleep_for(
                std::min<Clock::duration>(next - Clock::now(), std::chrono::milliseconds(20)));
        }
    }
}

Json FloodProbe::report(Phase p) {
    std::lock_guard lock(mu_);
    auto& s = samples_[p];
    double p50 = percentile(s, 50), p99 = percentile(s, 99), mx = percentile(s, 100);
    const char* name = p == kBaseline ? "baseline" : "attack";
    std::printf(
        "  probe %-8s %5zu round trips, p50 %7.0f us, p99 %7.0f us, max %7.0f us, %lld lost\n",
        name, s.size(), p50, p99, mx, static_cast<long long>(lost_[p]));
    Json j;
    j.add("samples", static_cast<int64_t>(s.size())).add("p50_us", p50).add("p99_us", p99);
    j.add("max_us", mx).add("lost", lost_[p]);
    if (p == kAttack) j.add("reconnects", reconnects_);
    return j;
}

}  // namespace moat::bench
