#include "gateway/net/JwksFetcher.h"

#include <curl/curl.h>

#include <mutex>
#include <vector>

namespace moat::net {

namespace {

struct Body {
    std::string text;
    bool tooLarge = false;
};

}  // namespace

JwksFetcher::JwksFetcher(Settings settings, Reporter reporter)
    : settings_(std::move(settings)),
      reporter_(std::move(reporter)),
      keys_(std::make_shared<const token::KeySet>()) {
    static std::once_flag curlInit;
    std::call_once(curlInit, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    thread_ = std::thread([this] { run(); });
}

JwksFetcher::~JwksFetcher() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    done_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const token::KeySet> JwksFetcher::keys() const {
    std::lock_guard lock(mutex_);
    return keys_;
}

std::shared_ptr<const token::KeySet> JwksFetcher::refreshForUnknownKid(
    std::chrono::milliseconds wait, bool& fresh) {
    std::unique_lock lock(mutex_);
    fresh = false;
    const auto now = Clock::now();
    // A fetch already running may carry the new kid: wait for it. Otherwise start one, unless
    // one was started for an unknown kid too recently.
    if (!fetching_ && !requested_) {
        if (lastUnknownKid_ != Clock::time_point{} &&
            now - lastUnknownKid_ < settings_.unknownKidInterval) {
            lock.unlock();
            if (reporter_) reporter_(Event::Skipped, "unknown kid: refresh rate-limited");
            return keys();
        }
        lastUnknownKid_ = now;
        requested_ = true;
        wake_.notify_all();
    }
    const uint64_t target = fetches_ + 1;
    const auto before = keys_;
    done_.wait_for(lock, wait, [&] { return stop_ || fetches_ >= target; });
    fresh = keys_ != before;
    return keys_;
}

int JwksFetcher::onProgress(void* self, long long, long long, long long, long long) {
    auto* f = static_cast<JwksFetcher*>(self);
    std::lock_guard lock(f->mutex_);
    return f->stop_ ? 1 : 0;  // non-zero aborts the transfer
}

size_t JwksFetcher::onBody(char* data, size_t size, size_t n, void* out) {
    auto* body = static_cast<Body*>(out);
    const size_t len = size * n;
    if (body->text.size() + len > token::kMaxJwksBytes) {
        body->tooLarge = true;
        return 0;  // aborts
    }
    body->text.append(data, len);
    return len;
}

bool JwksFetcher::fetch(std::string& text, std::string& error) {
    CURL* curl = curl_easy_init();
    if (!curl) {
        error = "curl_easy_init failed";
        return false;
    }
    Body body;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_URL, settings_.url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!settings_.caFile.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, settings_.caFile.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<int64_t>(settings_.timeout.count(), 3000)));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.timeout.count()));
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(token::kMaxJwksBytes));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &JwksFetcher::onBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &JwksFetcher::onProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, this);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "moat-jwks/1");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    if (body.tooLarge) {
        error = "JWKS larger than 1 MiB";
        return false;
    }
    if (rc != CURLE_OK) {
        error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        return false;
    }
    if (status != 200) {
        error = "HTTP status " + std::to_string(status);
        return false;
    }
    text = std::move(body.text);
    return true;
}

void JwksFetcher::run() {
    auto next = Clock::now();  // fetch at start
    std::unique_lock lock(mutex_);
    while (!stop_) {
        wake_.wait_until(lock, next, [&] { return stop_ || requested_; });
        if (stop_) break;
        if (!requested_ && Clock::now() < next) continue;
        requested_ = false;
        fetching_ = true;
        lock.unlock();

        std::string text, error;
        std::shared_ptr<const token::KeySet> fresh;
        std::string detail;
        if (fetch(text, error)) {
            auto ks = std::make_shared<token::KeySet>();
            std::vector<std::string> skipped;
            if (!ks->addJwks(text, settings_.url, error, skipped)) {
                // error set
            } else if (ks->size() == 0) {
                error = settings_.url + ": JWKS holds no usable signing key";
            } else {
                detail = std::to_string(ks->size()) + " keys";
                for (const auto& s : skipped) detail += "; skipped " + s;
                fresh = std::move(ks);
            }
        }
        if (reporter_) reporter_(fresh ? Event::Ok : Event::Failed, fresh ? detail : error);

        lock.lock();
        if (fresh) keys_ = std::move(fresh);
        fetching_ = false;
        ++fetches_;
        done_.notify_all();
        // A failing IdP is retried sooner than the refresh period, but not in a tight loop.
        const auto period = fresh ? settings_.refresh
                                  : std::min(settings_.refresh, std::chrono::milliseconds(30000));
        next = Clock::now() + period;
    }
    fetching_ = false;
    done_.notify_all();
}

}  // namespace moat::net
