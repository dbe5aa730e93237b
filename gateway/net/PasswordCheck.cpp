// ClientConnection's password check (CONTRACT §3 "Bans and identities"): the PBKDF2 work
// runs on the gateway's AuthPool, never on this loop and never on libuv's thread pool.
//
//   startPasswordCheck  charge one failure to the address (BanTable) and to the claimed
//                       identity (IdentityGuard) before anything runs, so a check that never
//                       finishes still counts; wait first when the identity is under attack
//                       and this address has not logged in as it recently
//   submitPasswordCheck queue it (bounded, fair per address; full: CONNACK 0x89)
//   done (pool thread)  settle the charge (success withdraws it, anything else confirms it),
//                       then hand the result to this connection if it still wants it
//   abandonPasswordCheck the connection closes first: a queued check is cancelled (and
//                       counted), a running one is left to settle on its own

#include <mutex>

#include "gateway/mqtt/Types.h"
#include "gateway/net/ClientConnection.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Worker.h"

namespace moat::net {

namespace rc = mqtt::reason;

// Shared by the connection, its queued job and the completion posted to its worker. `conn` is
// cleared (under the mutex) when the connection lets go; nothing is posted after that, so a
// connection never waits for a hash before it can be deleted.
struct PasswordTicket {
    std::mutex mutex;
    ClientConnection* conn = nullptr;
    Worker* worker = nullptr;
    uint64_t jobId = 0;
    std::shared_ptr<const policy::PasswordFile> checked;  // the file the job checks against
};

void ClientConnection::startPasswordCheck(inspect::Authenticator::Pending pending) {
    Gateway& gw = worker_.gateway();
    pendingAuth_ = std::make_unique<inspect::Authenticator::Pending>(std::move(pending));
    authCharge_ = std::make_unique<AuthCharge>(gw.chargePasswordCheck(ip_, *connect_->username));
    if (gw.isIpBanned(ip_)) {
        // Banned since this connection was accepted (its address's other attempts failed):
        // not checked.
        authCharge_.reset();
        refuseConnect(rc::Banned, "banned");
        return;
    }
    if (authCharge_->delay.count() > 0) {
        gw.rateLimited("identity_delay");
        audit("rate_limited", "", "", "",
              "password check delayed " + std::to_string(authCharge_->delay.count()) +
                  " ms: failed logins for this identity, not from an address it logged in from");
        uv_timer_start(&throttleTimer_, onAuthDelayTimer,
                       static_cast<uint64_t>(authCharge_->delay.count()), 0);
        return;
    }
    submitPasswordCheck();
}

void ClientConnection::onAuthDelayTimer(uv_timer_t* t) {
    auto* self = static_cast<ClientConnection*>(t->data);
    if (self->state_ == State::Authenticating && self->authCharge_) self->submitPasswordCheck();
}

void ClientConnection::submitPasswordCheck() {
    Gateway& gw = worker_.gateway();
    AuthPool& pool = gw.authPool();
    auto ticket = std::make_shared<PasswordTicket>();
    ticket->conn = this;
    ticket->worker = &worker_;
    ticket->jobId = pool.nextId();
    ticket->checked = snapshot_->passwords;

    AuthPool::Job job;
    job.id = ticket->jobId;
    job.ip = ip_;
    job.user = *connect_->username;
    job.password.assign(connect_->password->begin(), connect_->password->end());
    job.passwords = snapshot_->passwords;
    // A backstop: the connection's own handshake timer cancels a queued job first.
    job.deadline = AuthPool::Clock::now() + config().limits.handshakeTimeout;
    AuthCharge charge = std::move(*authCharge_);
    authCharge_.reset();
    Gateway* gateway = &gw;
    job.done = [gateway, charge = std::move(charge), ticket](AuthPool::Result r) {
        gateway->settlePasswordCheck(charge, r == AuthPool::Result::Ok);
        std::lock_guard lock(ticket->mutex);
        if (ticket->conn == nullptr) return;
        ticket->worker->post([ticket, r](Worker&) {
            // Same thread as abandonPasswordCheck(): no lock needed to read conn here.
            if (ticket->conn) ticket->conn->onPasswordChecked(static_cast<int>(r));
        });
    };
    passwordTicket_ = ticket;
    pool.submit(std::move(job));
}

void ClientConnection::onPasswordChecked(int result) {
    std::shared_ptr<const policy::PasswordFile> checked;
    if (passwordTicket_) checked = std::move(passwordTicket_->checked);
    passwordTicket_.reset();
    if (state_ != State::Authenticating || !pendingAuth_) return;
    // A reload replaced the password file while this check waited or ran (a password
    // changed, a user removed): the old file's verdict does not count, check the current one.
    if (checked && snapshot_->passwords && snapshot_->passwords != checked) {
        auto again = std::move(*pendingAuth_);
        pendingAuth_.reset();
        startPasswordCheck(std::move(again));
        return;
    }
    auto pending = std::move(*pendingAuth_);
    pendingAuth_.reset();
    Gateway& gw = worker_.gateway();
    using R = AuthPool::Result;
    const auto r = static_cast<R>(result);
    switch (r) {
        case R::Ok:
        case R::BadPassword:
        case R::UnknownUser: {
            inspect::Authenticator auth(config().auth);
            const auto verdict = r == R::Ok            ? policy::PasswordFile::Verify::Ok
                                 : r == R::BadPassword ? policy::PasswordFile::Verify::BadPassword
                                                       : policy::PasswordFile::Verify::UnknownUser;
            finishAuth(auth.finish(std::move(pending), *connect_, certFactor_, verdict), true);
            return;
        }
        case R::Banned:
            refuseConnect(rc::Banned, "banned while the password check waited");
            return;
        case R::Refused:
        case R::Evicted:
            gw.rateLimited("auth_queue");
            refuseConnect(rc::ServerBusy, AuthPool::resultName(r));
            return;
        case R::Expired:
        case R::Cancelled:
            refuseConnect(rc::ServerBusy, AuthPool::resultName(r));
            return;
    }
}

void ClientConnection::abandonPasswordCheck() {
    if (authCharge_) {
        // Closed while the check was delayed: it never ran, it still counts.
        worker_.gateway().settlePasswordCheck(*authCharge_, false);
        authCharge_.reset();
        audit("auth_failure", "", "", "", "closed before the password check ran");
    }
    if (!passwordTicket_) return;
    auto ticket = std::move(passwordTicket_);
    {
        std::lock_guard lock(ticket->mutex);
        ticket->conn = nullptr;
    }
    // Queued: taken out and settled as a failure now. Running: settles when it ends (a
    // success is then withdrawn), and its result goes nowhere.
    if (worker_.gateway().authPool().cancel(ip_, ticket->jobId))
        audit("auth_failure", "", "", "", "closed before the password check ran");
}

}  // namespace moat::net
