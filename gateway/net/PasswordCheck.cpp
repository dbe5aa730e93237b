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

#include <openssl/crypto.h>

#include <mutex>

#include "gateway/mqtt/Types.h"
#include "gateway/net/ClientConnection.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/JobStatus.h"
#include "gateway/net/Worker.h"

namespace moat::net {

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

void ClientConnection::startPasswordCheck(inspect::Job job) {
    Gateway& gw = worker_.gateway();
    job_ = std::make_unique<inspect::Job>(std::move(job));
    authCharge_ = std::make_unique<AuthCharge>(gw.chargePasswordCheck(ip_, job_->user));
    if (gw.isIpBanned(ip_)) {
        // Banned since this connection was accepted (its address's other attempts failed):
        // not checked.
        authCharge_.reset();
        job_.reset();
        inspect::JobResult r;
        r.status = inspect::JobResult::Status::Banned;
        r.detail = "banned";
        execute(pipeline_->onJobDone(std::move(r), now()));
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
    if (self->state_ == State::Open && self->authCharge_ && self->job_) self->submitPasswordCheck();
}

void ClientConnection::submitPasswordCheck() {
    Gateway& gw = worker_.gateway();
    AuthPool& pool = gw.authPool();
    auto ticket = std::make_shared<PasswordTicket>();
    ticket->conn = this;
    ticket->worker = &worker_;
    ticket->jobId = pool.nextId();
    ticket->checked = job_->passwords;

    AuthPool::Job job;
    job.id = ticket->jobId;
    job.ip = ip_;
    job.user = std::move(job_->user);
    job.password = std::move(job_->password);  // the pool wipes it
    job.passwords = std::move(job_->passwords);
    job_.reset();
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
    inspect::JobResult out;
    if (passwordTicket_) out.checked = std::move(passwordTicket_->checked);
    passwordTicket_.reset();
    if (state_ != State::Open) return;
    setJobStatus(out, static_cast<AuthPool::Result>(result), "password", false);
    execute(pipeline_->onJobDone(std::move(out), now()));
}

void ClientConnection::abandonPasswordCheck() {
    if (authCharge_) {
        // Closed while the check was delayed: it never ran, it still counts.
        worker_.gateway().settlePasswordCheck(*authCharge_, false);
        authCharge_.reset();
        audit("auth_failure", "", "", "", "closed before the password check ran");
    }
    if (job_) {
        OPENSSL_cleanse(job_->password.data(), job_->password.size());
        job_.reset();
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
