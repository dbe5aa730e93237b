// ClientConnection's token check (issue #24, CONTRACT §3 "Tokens"): the signature and claim
// checks run on the gateway's AuthPool like passwords (fair per address, bounded, banned
// addresses skipped), never on this loop. A token naming a kid no key carries may wait, on the
// pool thread, for one rate-limited JWKS refresh (at most kUnknownKidWait).
//
//   startTokenCheck   queue the verification (CONNECT, or a v5 AUTH re-authentication)
//   done (pool)       post the verdict to this connection if it still wants it
//   onTokenChecked    CONNECT: Authenticator::finishToken → finishAuth;
//                     AUTH: AUTH 0x00 and a new deadline, or DISCONNECT 0x87
//   abandonTokenCheck the connection closes first: a queued check is cancelled
//
// The token is never logged: refusals carry the verifier's fixed reason only.

#include <openssl/crypto.h>

#include <chrono>
#include <mutex>

#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/Types.h"
#include "gateway/net/ClientConnection.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"
#include "gateway/net/Worker.h"

namespace moat::net {

namespace rc = mqtt::reason;

namespace {
constexpr std::chrono::milliseconds kUnknownKidWait{2000};

int64_t wallSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}
}  // namespace

struct TokenTicket {
    std::mutex mutex;
    ClientConnection* conn = nullptr;
    Worker* worker = nullptr;
    uint64_t jobId = 0;
    bool reauth = false;
    token::TokenResult result;  // written by the pool thread before done()
};

void ClientConnection::startTokenCheck(std::string tokenText, bool reauth) {
    Gateway& gw = worker_.gateway();
    AuthPool& pool = gw.authPool();
    auto ticket = std::make_shared<TokenTicket>();
    ticket->conn = this;
    ticket->worker = &worker_;
    ticket->jobId = pool.nextId();
    ticket->reauth = reauth;

    AuthPool::Job job;
    job.id = ticket->jobId;
    job.ip = ip_;
    job.deadline = AuthPool::Clock::now() + config().limits.handshakeTimeout;
    job.work = [ticket, settings = snapshot_->token, fetcher = gw.jwksFetcher(),
                text = std::move(tokenText)]() mutable {
        token::TokenResult r;
        if (!settings) {
            r.reason = "token authentication is not configured";
        } else {
            auto verify = [&](const token::KeySet* urlKeys) {
                token::KeySet keys = settings->fileKeys;
                if (urlKeys) keys.addAll(*urlKeys);
                return token::TokenVerifier(settings->rules, keys, &settings->roleNames)
                    .verify(text, wallSeconds());
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
        return AuthPool::Result::Ok;
    };
    job.done = [ticket](AuthPool::Result r) {
        std::lock_guard lock(ticket->mutex);
        if (ticket->conn == nullptr) return;
        ticket->worker->post([ticket, r](Worker&) {
            if (ticket->conn) ticket->conn->onTokenChecked(static_cast<int>(r));
        });
    };
    tokenTicket_ = ticket;
    pool.submit(std::move(job));
}

void ClientConnection::onTokenChecked(int result) {
    auto ticket = std::move(tokenTicket_);
    if (!ticket) return;
    token::TokenResult verdict;
    {
        std::lock_guard lock(ticket->mutex);
        verdict = std::move(ticket->result);
    }
    Gateway& gw = worker_.gateway();
    using R = AuthPool::Result;
    const auto r = static_cast<R>(result);

    if (ticket->reauth) {
        if (state_ != State::Established) return;
        if (r != R::Ok) verdict.reason = AuthPool::resultName(r);
        gw.authCounted("token", verdict.ok());
        // The same identity only: a re-authentication extends a session, it never turns it into
        // someone else's (MQTT 5 §4.12.1 leaves this to the server).
        if (verdict.ok() && verdict.identity != identity_) {
            verdict.status = token::TokenStatus::Refused;
            verdict.reason = "re-authentication names another identity";
        }
        if (!verdict.ok()) {
            gw.authFailed(worker_, "token", ip_, identity_);
            audit("auth_failure", "", "", "", "re-authentication refused: " + verdict.reason);
            closeWithReason(rc::NotAuthorized);
            return;
        }
        setTokenDeadline(verdict.expiresAt);
        audit("connect", "", "", "", "re-authenticated");
        mqtt::AuthPacket ok;
        ok.reason = rc::Success;
        ok.properties.push_back(mqtt::Property::string(mqtt::prop::AuthenticationMethod, "jwt"));
        auto bytes = mqtt::encodeAuth(ok);
        sendToClient(bytes.data(), bytes.size());
        // Re-arm: the timer may sleep for the keepalive while the deadline is now later or
        // sooner; onTimer picks the nearer of the two.
        if (!connackPending_) armTimer(0);
        return;
    }

    if (state_ != State::Authenticating || !pendingAuth_) return;
    auto pending = std::move(*pendingAuth_);
    pendingAuth_.reset();
    OPENSSL_cleanse(pending.token.data(), pending.token.size());
    switch (r) {
        case R::Ok: {
            inspect::Authenticator auth(config().auth);
            finishAuth(auth.finishToken(std::move(pending), *connect_, certFactor_, verdict));
            return;
        }
        case R::Banned:
            refuseConnect(rc::Banned, "banned while the token check waited");
            return;
        case R::Refused:
        case R::Evicted:
            gw.rateLimited("auth_queue");
            refuseConnect(rc::ServerBusy, AuthPool::resultName(r));
            return;
        default:
            refuseConnect(rc::ServerBusy, AuthPool::resultName(r));
            return;
    }
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

void ClientConnection::onReauthenticate(std::string tokenText) {
    if (tokenTicket_) {
        // One re-authentication at a time: a second AUTH before the first is answered is a
        // protocol error (MQTT 5 §4.12.1: the client waits for the server's AUTH).
        OPENSSL_cleanse(tokenText.data(), tokenText.size());
        onProtocolError(rc::ProtocolError, "AUTH while a re-authentication is pending");
        closeWithReason(rc::ProtocolError);
        return;
    }
    startTokenCheck(std::move(tokenText), true);
}

void ClientConnection::setTokenDeadline(int64_t exp) {
    const int64_t leeway = config().auth.token ? config().auth.token->leeway.count() / 1000 : 0;
    const int64_t left = std::max<int64_t>(0, exp + leeway - wallSeconds());
    tokenDeadlineMs_ = uv_now(worker_.loop()) + static_cast<uint64_t>(left) * 1000;
}

std::optional<uint64_t> ClientConnection::tokenTimeLeft(uint64_t nowMs) const {
    if (!tokenDeadlineMs_) return std::nullopt;
    return *tokenDeadlineMs_ > nowMs ? *tokenDeadlineMs_ - nowMs : 0;
}

}  // namespace moat::net
