#pragma once
// Keeps the keys of `auth.token.jwks_url` (issue #24): fetched with libcurl on its own
// thread (a blocking HTTPS fetch must hold neither an event loop nor a libuv pool thread),
// at start, every `jwks_refresh`, and when a token names a kid no key carries. TLS is
// verified (peer and host name; `jwks_ca` or the system store), https only, no redirects,
// bounded time and size. A fetch that fails — network, HTTP status, TLS, a document that is
// not a usable JWKS — keeps the last good keys; it is logged and counted by the reporter.
//
// Thread-safe: keys() and refreshForUnknownKid() are called from AuthPool threads.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/token/KeySet.h"

namespace moat::net {

class JwksFetcher {
  public:
    using Clock = std::chrono::steady_clock;
    struct Settings {
        std::string url;
        std::string caFile;  // empty: the system store
        std::chrono::milliseconds refresh{600000};
        std::chrono::milliseconds timeout{5000};
        // At most one unknown-kid refresh per this interval (a stream of made-up kids must not
        // turn into a stream of requests to the IdP).
        std::chrono::milliseconds unknownKidInterval{10000};
        bool operator==(const Settings& o) const {
            return url == o.url && caFile == o.caFile && refresh == o.refresh;
        }
    };
    enum class Event { Ok, Failed, Skipped };
    // Called on the fetcher's thread (Ok/Failed) or a pool thread (Skipped); never holds the
    // token. `detail`: the error, or the number of keys and skipped entries.
    using Reporter = std::function<void(Event, const std::string& detail)>;

    JwksFetcher(Settings settings, Reporter reporter);
    ~JwksFetcher();  // stops the thread (an in-flight fetch is aborted)
    JwksFetcher(const JwksFetcher&) = delete;
    JwksFetcher& operator=(const JwksFetcher&) = delete;

    const Settings& settings() const { return settings_; }
    // The last good keys (empty before the first good fetch).
    std::shared_ptr<const token::KeySet> keys() const;
    // A token named an unknown kid: ask for one refresh (rate-limited) and wait for it at
    // most `wait`. Returns the keys after; `fresh` says whether a newer set arrived.
    std::shared_ptr<const token::KeySet> refreshForUnknownKid(std::chrono::milliseconds wait,
                                                              bool& fresh);

  private:
    void run();
    bool fetch(std::string& body, std::string& error);
    static int onProgress(void* self, long long, long long, long long, long long);
    static size_t onBody(char* data, size_t size, size_t n, void* out);

    const Settings settings_;
    Reporter reporter_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;  // the thread: stop or an unknown-kid request
    std::condition_variable done_;  // waiters: a fetch finished
    std::shared_ptr<const token::KeySet> keys_;
    uint64_t fetches_ = 0;  // completed fetches (good or not)
    bool requested_ = false;
    bool fetching_ = false;
    bool stop_ = false;
    Clock::time_point lastUnknownKid_{};
    std::thread thread_;
};

}  // namespace moat::net
