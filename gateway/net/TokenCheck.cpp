// ClientConnection's token check (issue #24, CONTRACT §3 "Tokens"): the signature and claim
// checks run on the gateway's AuthPool like passwords (fair per address, bounded, banned
// addresses skipped), never on this loop. A token naming a kid no key carries may wait, on the
// pool thread, for one rate-limited JWKS refresh (at most kUnknownKidWait). The verdict goes to
// the pipeline (onJobDone), which decides: CONNECT accepted / refused, or for a v5 AUTH
// re-authentication AUTH 0x00 and a new deadline / DISCONNECT 0x87.
//
// Failures are charged (bans, identity guard) by the pipeline when the verdict arrives: a token
// check is cheap next to PBKDF2, so nothing is charged up front. The token is never logged.

#include <openssl/crypto.h>

#include <chrono>
#include <mutex>

#include "gateway/net/ClientConnection.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/JobStatus.h"
#include "gateway/net/Worker.h"

namespace moat::net {

namespace {

constexpr std::chrono::milliseconds kUnknownKidWait{2000};

int64_t wallSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

// Shared by the connection, its queued job and the completion posted to its worker; `conn`
// is cleared (under the mutex) when the connection lets go.
struct TokenTicket {
    std::mutex mutex;
    ClientConnection* conn = nullptr;
    Worker* worker = nullptr;
    uint64_t jobId = 0;
    bool reauth = false;
    token::TokenResult result;  // written by the pool thread before done()
    int64_t verifiedAt = 0;
};

void ClientConnection::startTokenCheck(inspect::Job job) {
    Gateway& gw = worker_.gateway();
    AuthPool& pool = gw.authPool();
    auto ticket = std::make_shared<TokenTicket>();
    ticket->conn = this;
    ticket->worker = &worker_;
    ticket->jobId = pool.nextId();
    ticket->reauth = job.reauth;

    AuthPool::Job work;
    work.id = ticket->jobId;
    work.ip = ip_;
    work.deadline = AuthPool::Clock::now() + config().limits.handshakeTimeout;
    work.work = [ticket, settings = worker_.snapshot()->token, fetcher = gw.jwksFetcher(),
                 text = std::move(job.token)]() mutable {
        token::TokenResult r;
        const int64_t now = wallSeconds();
        if (!settings) {
            r.reason = "token authentication is not configured";
        } else {
            auto verify = [&](const token::KeySet* urlKeys) {
                token::KeySet keys = settings->fileKeys;
                if (urlKeys) keys.addAll(*urlKeys);
                return token::TokenVerifier(settings->rules, keys, &settings->roleNames)
                    .verify(text, now);
            };
            auto urlKeys = fetcher ? fetcher->keys() : nullptr;
            r = verify(urlKeys.get());
            if (!r.ok() && r.unknownKid && fetcher) {
                bool fresh = false;
                urlKeys = fetcher->refreshForUnknownKid(kUnknownKidWait, fresh);
                if (fresh) r = verify(urlKeys.get());
            }
        }
        OPENSSL_cleanse(text.data(), text.size());
        std::lock_guard lock(ticket->mutex);
        ticket->result = std::move(r);
        ticket->verifiedAt = now;
        return AuthPool::Result::Ok;
    };
    work.done = [ticket](AuthPool::Result r) {
        std::lock_guard lock(ticket->mutex);
        if (ticket->conn == nullptr) return;
        ticket->worker->post([ticket, r](Worker&) {
            // Same thread as abandonTokenCheck(): no lock needed to read conn here.
            if (ticket->conn) ticket->conn->onTokenChecked(static_cast<int>(r));
        });
    };
    tokenTicket_ = ticket;
    pool.submit(std::move(work));
}

void ClientConnection::onTokenChecked(int result) {
    auto ticket = std::move(tokenTicket_);
    if (!ticket || state_ != State::Open) return;
    inspect::JobResult out;
    out.kind = inspect::Job::Kind::Token;
    out.reauth = ticket->reauth;
    {
        std::lock_guard lock(ticket->mutex);
        out.token = std::move(ticket->result);
        out.verifiedAt = ticket->verifiedAt;
    }
    setJobStatus(out, static_cast<AuthPool::Result>(result), "token", true);
    execute(pipeline_->onJobDone(std::move(out), now()));
}

void ClientConnection::abandonTokenCheck() {
    if (!tokenTicket_) return;
    auto ticket = std::move(tokenTicket_);
    {
        std::lock_guard lock(ticket->mutex);
        ticket->conn = nullptr;
    }
    worker_.gateway().authPool().cancel(ip_, ticket->jobId);
}

}  // namespace moat::net
