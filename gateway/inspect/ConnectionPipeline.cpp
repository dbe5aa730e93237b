#include "gateway/inspect/ConnectionPipeline.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdio>

#include "gateway/inspect/ForwardedCredentials.h"
#include "gateway/inspect/KeepAlivePolicy.h"
#include "gateway/inspect/WillRights.h"
#include "gateway/integrity/PublishRewrite.h"
#include "gateway/integrity/SignedPublish.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"

namespace moat::inspect {

namespace rc = mqtt::reason;
using mqtt::PacketType;

namespace {

SteadyTime steady(uint64_t ms) {
    return SteadyTime(std::chrono::milliseconds(ms));
}

}  // namespace

ConnectionPipeline::ConnectionPipeline(std::shared_ptr<const PipelineOptions> options,
                                       PipelineEvents& events, uint64_t nowMs)
    : options_(std::move(options)), events_(events), nowMs_(nowMs) {
    deadline_ = nowMs + options_->handshakeTimeoutMs;
}

ConnectionPipeline::~ConnectionPipeline() = default;

std::string_view ConnectionPipeline::clientId() const {
    return connect_ ? std::string_view(connect_->clientId) : std::string_view();
}

std::string_view ConnectionPipeline::protocolName() const {
    return connect_ ? std::string_view(mqtt::versionName(connect_->version)) : std::string_view();
}

bool ConnectionPipeline::v5() const {
    return connect_ && connect_->version == mqtt::ProtocolVersion::V5;
}

// ------------------------------------------------------------------ closing

Action ConnectionPipeline::closeNow() {
    stage_ = Stage::Closed;
    deadline_ = 0;
    return Action{Action::Kind::CloseNow};
}

Action ConnectionPipeline::closeAfterFlush() {
    stage_ = Stage::Closed;
    deadline_ = 0;
    return Action{Action::Kind::Close};
}

bool ConnectionPipeline::beforeConnack() const {
    return stage_ == Stage::ConnectingBackend || (stage_ == Stage::Established && connackPending_);
}

// MQTT 5 §3.14.0-1: no DISCONNECT before the CONNACK. A connection ended (kick, reload, drain,
// a pipelined packet's verdict) while the broker's CONNACK is still to come is told with a
// refusing CONNACK instead, in a code CONNACK has (v3: its return code); a v5 client with its
// CONNACK gets DISCONNECT v5Reason; a v3 one nothing.
std::vector<uint8_t> ConnectionPipeline::farewell(uint8_t v5Reason) const {
    if (beforeConnack()) {
        uint8_t code = rc::UnspecifiedError;
        switch (v5Reason) {
            case rc::AdministrativeAction:
                code = rc::NotAuthorized;
                break;
            case rc::ServerShuttingDown:
                code = rc::ServerUnavailable;
                break;
            case rc::MalformedPacket:
            case rc::ProtocolError:
            case rc::NotAuthorized:
            case rc::Banned:
            case rc::PacketTooLarge:
            case rc::QuotaExceeded:
                code = v5Reason;
                break;
            default:
                break;
        }
        if (v5()) return mqtt::encodeConnack(mqtt::ProtocolVersion::V5, false, code, {});
        return mqtt::encodeConnack(connect_->version, false, mqtt::v3ConnackCodeFor(code), {});
    }
    if (v5() && v5Reason != 0 &&
        (stage_ == Stage::Established || stage_ == Stage::ConnectingBackend))
        return mqtt::encodeDisconnect(mqtt::ProtocolVersion::V5, v5Reason, {});
    return {};
}

void ConnectionPipeline::sayFarewell(Verdict& v) const {
    if (!beforeConnack()) {
        if (!v5()) v.disconnectReason = 0;
        return;
    }
    const std::vector<uint8_t> bye = farewell(v.disconnectReason);
    v.reply.insert(v.reply.end(), bye.begin(), bye.end());
    v.disconnectReason = 0;
}

Action ConnectionPipeline::closeWithReason(uint8_t v5Reason) {
    std::vector<uint8_t> bye = farewell(v5Reason);
    Action a = closeAfterFlush();
    a.toClient = std::move(bye);
    return a;
}

Action ConnectionPipeline::refuse(uint8_t v5Reason, const std::string& why) {
    events_.audit("auth_failure", "", "", "", why);
    Action a = closeAfterFlush();
    if (v5())
        a.toClient = mqtt::encodeConnack(mqtt::ProtocolVersion::V5, false, v5Reason, {});
    else
        a.toClient = mqtt::encodeConnack(connect_ ? connect_->version : mqtt::ProtocolVersion::V311,
                                         false, mqtt::v3ConnackCodeFor(v5Reason), {});
    return a;
}

void ConnectionPipeline::onClosed() {
    stage_ = Stage::Closed;
    if (uint64_t n = withheld_.pending())
        events_.audit("authz_denied", "deliver", withheld_.lastTopic(), withheld_.lastRule(),
                      "withheld", n);
    if (session_ || connect_) events_.audit("disconnect", "", "", "", "");
    if (ownsClientId_) {
        ownsClientId_ = false;
        const bool accepted = brokerAccepted_ && session_;
        events_.releaseClientId(
            connect_->clientId, identity_,
            accepted ? std::optional<uint32_t>(session_->sessionExpiry()) : std::nullopt,
            accepted ? session_->subscriptions() : std::vector<std::string>{});
    }
}

Action ConnectionPipeline::onDrain() {
    if (stage_ == Stage::Closed) return {};
    std::vector<uint8_t> bye;
    if (stage_ == Stage::Established || stage_ == Stage::ConnectingBackend)
        bye = farewell(rc::ServerShuttingDown);
    Action a = closeAfterFlush();
    a.toClient = std::move(bye);
    return a;
}

// ------------------------------------------------------------------ client packets

Action ConnectionPipeline::onClientMalformed() {
    onProtocolError(rc::MalformedPacket, "bad fixed header");
    return closeWithReason(rc::MalformedPacket);
}

Action ConnectionPipeline::onClientHeader(const mqtt::Frame& frame) {
    // Judged from the fixed header, before the body is buffered.
    if (frame.totalSize() <= options_->maxPacketSize) return {};
    onProtocolError(rc::PacketTooLarge, "packet exceeds max_packet_size");
    events_.rateLimited("max_packet_size");
    return closeWithReason(rc::PacketTooLarge);
}

Verdict ConnectionPipeline::onClientPacket(const mqtt::Frame& frame, const uint8_t* body,
                                           uint64_t nowMs) {
    nowMs_ = nowMs;
    // A whole packet: this, not a byte of one, is keepalive activity (SlowITe).
    keepAlive_.packet(nowMs);
    if (stage_ != Stage::Established || !session_) return Verdict::close(0);
    const LimitDecision d = limiter_.admit(frame.type(), frame.totalSize(), steady(nowMs));
    if (d.kind == LimitDecision::Kind::Admit) {
        // The spike baseline counts a publish once, when admitted: a held one is judged again.
        if (d.publishAdmitted && options_->publishSpike) events_.publishAdmitted(nowMs);
    } else {
        events_.rateLimited(d.limit);
        events_.audit("rate_limited", frame.type() == PacketType::Publish ? "publish" : "", "", "",
                      d.limit);
        if (d.kind == LimitDecision::Kind::Hold) return Verdict::hold(d.holdMs);
        Verdict v = Verdict::close(d.v5Reason);
        sayFarewell(v);
        stage_ = Stage::Closed;
        return v;
    }
    // v5 AUTH (re-authentication with a fresh token): the Session decodes it and hands the
    // token to onReauthenticate, which queues the job the transport takes (takeJob()).
    Verdict v = session_->onClientPacket(frame, body);
    if (reauthConflict_) {
        // MQTT 5 §4.12.1: the client waits for the server's AUTH before sending another.
        reauthConflict_ = false;
        onProtocolError(rc::ProtocolError, "AUTH while a re-authentication is pending");
        v = Verdict::close(rc::ProtocolError);
    }
    if (v.kind == Verdict::Kind::Close) {
        sayFarewell(v);
        stage_ = Stage::Closed;
    } else if (frame.type() == PacketType::Disconnect) {
        v.endAfter = true;
        stage_ = Stage::Closed;
    }
    return v;
}

// ------------------------------------------------------------------ CONNECT

Action ConnectionPipeline::onConnect(const mqtt::Frame& frame, const uint8_t* body,
                                     const uint8_t* whole, const ConnectContext& context,
                                     uint64_t nowMs) {
    nowMs_ = nowMs;
    keepAlive_.packet(nowMs);
    if (stage_ != Stage::AwaitConnect) return {};
    if (frame.type() != PacketType::Connect) {
        onProtocolError(rc::ProtocolError, "first packet is not CONNECT");
        return closeNow();
    }
    connect_ = std::make_unique<mqtt::ConnectPacket>();
    const uint8_t r = mqtt::decodeConnect(body, frame.remainingLength, *connect_);
    if (r != rc::Success) {
        onProtocolError(r, "malformed CONNECT");
        if (r == rc::UnsupportedProtocolVersion) {
            // Answer in the oldest format every version understands (v3 return code 1).
            connect_->version = mqtt::ProtocolVersion::V311;
            return refuse(rc::UnsupportedProtocolVersion, "unsupported protocol version");
        }
        if (connect_->version == mqtt::ProtocolVersion::V5) return refuse(r, "malformed CONNECT");
        return closeNow();
    }
    // The handshake verified the certificate against the CRL of its snapshot; a reload since
    // may have revoked it (onReload re-verifies open connections, this closes the gap).
    if (context.certificateProblem) {
        events_.authFailed("certificate", "");
        return refuse(rc::NotAuthorized,
                      "certificate no longer valid: " + *context.certificateProblem);
    }
    connectBytes_.assign(whole, whole + frame.totalSize());
    stage_ = Stage::Authenticating;

    // Keepalive (KeepAlivePolicy.h): v5 clients are told the Server Keep Alive; a v3 keepalive
    // out of range goes on unchanged with TCP probes reaping dead peers, or is refused.
    const uint64_t maxKa = options_->maxKeepaliveSeconds;
    const KeepAliveDecision ka =
        decideKeepAlive(connect_->version, connect_->keepAlive, maxKa, options_->refuseV3Keepalive);
    if (ka.refuse) return refuse(rc::ClientIdentifierNotValid, "keepalive outside max_keepalive");
    keepAliveSeconds_ = ka.effective;
    const uint16_t probes =
        ka.tcpProbes ? static_cast<uint16_t>(std::min<uint64_t>(maxKa, 0xFFFF)) : 0;

    cert_ = context.cert;
    Authenticator auth(*options_->auth);
    Authenticator::Pending pending = auth.begin(*connect_, cert_, options_->passwords.get());
    Action a;
    if (pending.done) {
        a = finishAuth(pending.outcome, false, nowMs);
    } else if (events_.addressBanned()) {
        a = refuse(rc::Banned, "banned");
    } else if (pending.needToken) {
        enhancedJwt_ = pending.enhancedJwt;
        std::string tokenText = std::move(pending.token);
        pendingAuth_ = std::make_unique<Authenticator::Pending>(std::move(pending));
        a = awaitToken(std::move(tokenText));
    } else {
        pendingAuth_ = std::make_unique<Authenticator::Pending>(std::move(pending));
        a = awaitPassword();
    }
    a.tcpProbeSeconds = probes;
    return a;
}

Action ConnectionPipeline::awaitPassword() {
    Action a{Action::Kind::Await};
    Job job;
    job.kind = Job::Kind::Password;
    job.user = connect_->username.value_or("");
    // On the heap from the start (past the small-string buffer): the moves that carry it to the
    // worker leave no copy behind, and the worker wipes the one it holds.
    job.password.reserve(std::max<size_t>(32, connect_->password ? connect_->password->size() : 0));
    if (connect_->password) job.password.assign(*connect_->password);
    job.passwords = options_->passwords;
    a.job = std::move(job);
    return a;
}

Action ConnectionPipeline::awaitToken(std::string tokenText) {
    Action a{Action::Kind::Await};
    Job job;
    job.kind = Job::Kind::Token;
    job.token = std::move(tokenText);
    a.job = std::move(job);
    return a;
}

void ConnectionPipeline::setTokenDeadline(int64_t exp, int64_t verifiedAt, uint64_t nowMs) {
    const auto& token = options_->auth->token;
    const int64_t leeway = token ? token->leeway.count() / 1000 : 0;
    const int64_t left = std::max<int64_t>(0, exp + leeway - verifiedAt);
    tokenDeadlineMs_ = nowMs + static_cast<uint64_t>(left) * 1000;
}

std::shared_ptr<const policy::ClientRights> ConnectionPipeline::rightsFor(
    const PipelineOptions& opt) const {
    // auth.token roles_claim: roles the token names (and the policy defines) replace the
    // identity's users: / default_roles, on reloads too.
    return tokenRoles_.empty()
               ? opt.policy->rightsFor(identity_, connect_->clientId)
               : opt.policy->rightsForRoles(identity_, connect_->clientId, tokenRoles_);
}

void ConnectionPipeline::auditIgnoredRoles(const std::vector<std::string>& roles) {
    for (const auto& role : roles)
        events_.audit("authz_denied", "role", "", role,
                      "token role not defined in policy.roles: ignored");
}

void ConnectionPipeline::onReauthenticate(std::string tokenText) {
    if (reauthPending_) {
        OPENSSL_cleanse(tokenText.data(), tokenText.size());
        reauthConflict_ = true;
        return;
    }
    Job job;
    job.kind = Job::Kind::Token;
    job.token = std::move(tokenText);
    job.reauth = true;
    pendingJob_ = std::move(job);
    reauthPending_ = true;
}

Action ConnectionPipeline::onReauthDone(JobResult result, uint64_t nowMs) {
    reauthPending_ = false;
    if (stage_ != Stage::Established) return {};
    token::TokenResult verdict = std::move(result.token);
    if (result.status != JobResult::Status::Ok) {
        verdict.status = token::TokenStatus::Refused;
        verdict.reason = result.detail.empty() ? "not checked" : result.detail;
    }
    // A re-authentication extends a session; it never turns it into someone else's.
    if (verdict.ok() && verdict.identity != identity_) {
        verdict.status = token::TokenStatus::Refused;
        verdict.reason = "re-authentication names another identity";
    }
    events_.authCounted("token", verdict.ok());
    if (!verdict.ok()) {
        events_.authFailed("token", identity_);
        events_.audit("auth_failure", "", "", "", "re-authentication refused: " + verdict.reason);
        return closeWithReason(rc::NotAuthorized);
    }
    setTokenDeadline(verdict.expiresAt, result.verifiedAt, nowMs);
    events_.audit("connect", "", "", "", "re-authenticated");
    Action a;
    if (verdict.roles != tokenRoles_) {
        // The identity provider now grants other roles (roles_claim): they apply from here on,
        // as a reload's policy would: subscriptions they no longer allow are removed at the
        // broker, a will they no longer allow is discarded, no rights at all end the session.
        auditIgnoredRoles(verdict.ignoredRoles);
        tokenRoles_ = std::move(verdict.roles);
        a = applyOptions(std::nullopt, "re-authentication");
        if (a.closes()) return a;
    }
    mqtt::AuthPacket ok;
    ok.reason = rc::Success;
    ok.properties.push_back(
        mqtt::Property::string(mqtt::prop::AuthenticationMethod, std::string(kJwtAuthMethod)));
    a.toClient = mqtt::encodeAuth(ok);
    // onTimer folds the moved deadline with keepalive's.
    if (!connackPending_) deadline_ = nowMs;
    return a;
}

Action ConnectionPipeline::onJobDone(JobResult result, uint64_t nowMs) {
    nowMs_ = nowMs;
    if (result.kind == Job::Kind::Token && result.reauth)
        return onReauthDone(std::move(result), nowMs);
    if (stage_ != Stage::Authenticating || !pendingAuth_) return {};
    if (result.kind == Job::Kind::Token) {
        Authenticator::Pending pending = std::move(*pendingAuth_);
        pendingAuth_.reset();
        OPENSSL_cleanse(pending.token.data(), pending.token.size());
        switch (result.status) {
            case JobResult::Status::Ok: {
                Authenticator auth(*options_->auth);
                tokenVerifiedAt_ = result.verifiedAt;
                return finishAuth(
                    auth.finishToken(std::move(pending), *connect_, cert_, result.token), false,
                    nowMs);
            }
            case JobResult::Status::Banned:
                return refuse(rc::Banned, result.detail);
            case JobResult::Status::QueueFull:
                events_.rateLimited("auth_queue");
                return refuse(rc::ServerBusy, result.detail);
            default:
                return refuse(rc::ServerBusy, result.detail);
        }
    }
    // A reload replaced the password file while this check waited or ran (a password changed, a
    // user removed): the old file's verdict does not count, check the current one.
    if (result.checked && options_->passwords && options_->passwords != result.checked)
        return awaitPassword();
    Authenticator::Pending pending = std::move(*pendingAuth_);
    pendingAuth_.reset();
    using S = JobResult::Status;
    using V = policy::PasswordFile::Verify;
    switch (result.status) {
        case S::Ok:
        case S::BadPassword:
        case S::UnknownUser: {
            Authenticator auth(*options_->auth);
            const V verdict = result.status == S::Ok            ? V::Ok
                              : result.status == S::BadPassword ? V::BadPassword
                                                                : V::UnknownUser;
            return finishAuth(auth.finish(std::move(pending), *connect_, cert_, verdict), true,
                              nowMs);
        }
        case S::Banned:
            return refuse(rc::Banned, result.detail);
        case S::QueueFull:
            events_.rateLimited("auth_queue");
            return refuse(rc::ServerBusy, result.detail);
        case S::Abandoned:
            return refuse(rc::ServerBusy, result.detail);
    }
    return refuse(rc::ServerBusy, result.detail);
}

std::shared_ptr<integrity::Checker> ConnectionPipeline::makeIntegrityChecker() {
    if (!options_->integrity) return nullptr;
    std::vector<std::string> problems;
    auto checker = options_->integrity->checkerFor(identity_, connect_->clientId, problems);
    // Not fatal: the client may never publish under these rules; if it does, each publish is
    // refused with reason "no key".
    for (const auto& p : problems)
        events_.warn("integrity key for identity " + identity_ + " unusable: " + p);
    return checker;
}

Action ConnectionPipeline::finishAuth(const AuthOutcome& authOutcome, bool passwordCharged,
                                      uint64_t nowMs) {
    // Rights, limits and credentials rules come from the options current now, not those
    // authentication started with (a reload during the password check may have narrowed them).
    const PipelineOptions& opt = *options_;
    const AuthOutcome outcome =
        checkForwardedUsername(opt.credentials, authOutcome, connect_->username);
    bool passwordFailed = false;
    const char* failedMethod = outcome.factors.empty() ? "" : "password";
    for (const auto& f : outcome.factors) {
        const char* name = f.method == config::AuthMethod::Certificate ? "certificate"
                           : f.method == config::AuthMethod::Token     ? "token"
                                                                       : "password";
        events_.authCounted(name, f.success);
        passwordFailed |= f.method == config::AuthMethod::Password && !f.success;
        if (f.method == config::AuthMethod::Token && !f.success) failedMethod = "token";
    }
    if (!outcome.ok) {
        std::string who = connect_->username.value_or("");
        if (!(passwordCharged && passwordFailed)) events_.authFailed(failedMethod, who);
        identity_ = who;
        return refuse(outcome.v5Reason, outcome.reason);
    }
    identity_ = outcome.identity;
    if (events_.addressBanned()) return refuse(rc::Banned, "banned");
    events_.loggedIn(identity_);
    if (outcome.tokenExpiresAt) setTokenDeadline(*outcome.tokenExpiresAt, tokenVerifiedAt_, nowMs);
    auditIgnoredRoles(outcome.ignoredRoles);
    tokenRoles_ = outcome.tokenRoles;
    auto rights = rightsFor(opt);
    if (connect_->willFlag) {
        policy::Decision d = rights->checkPublish(connect_->willTopic);
        if (!d.allowed) {
            events_.authzDenied("will");
            events_.audit("authz_denied", "will", connect_->willTopic, d.describe(),
                          "will topic not allowed");
            events_.deniedTopic(connect_->willTopic);
            return refuse(rc::NotAuthorized, "will topic not allowed");
        }
        // The will's retain / QoS rights (v5 0x9B / 0x9A, v3 0x05).
        const WillRightsDecision w =
            checkWillRights(*rights, connect_->willTopic, connect_->willQos, connect_->willRetain);
        if (!w.allowed) {
            events_.authzDenied("will");
            events_.audit("authz_denied", "will", connect_->willTopic, w.rule, w.reason);
            return refuse(w.v5Reason, w.reason);
        }
    }
    // The broker publishes the will for the client, later, when nothing can be refused any
    // more: integrity.rules apply to it here (v5: signature in the will properties; v3: trailer
    // at the end of the will payload, stripped below).
    std::shared_ptr<integrity::Checker> integrityChecker = makeIntegrityChecker();
    size_t willTrailer = 0;
    if (connect_->willFlag && integrityChecker) {
        integrity::Checker::Outcome o =
            integrity::checkWill(*integrityChecker, connect_->willTopic, connect_->willPayload,
                                 connect_->willProperties, v5());
        if (o.matched() && o.failure != integrity::Failure::None) {
            onIntegrityDenied(connect_->willTopic, integrityChecker->rule(o.rule).name,
                              integrity::failureReason(o.failure));
            return refuse(rc::NotAuthorized, "will not validly signed");
        }
        willTrailer = o.trailer;
    }

    // What the broker sees (backend.credentials); re-encode only when something changes.
    bool rewrite = keepAliveSeconds_ != connect_->keepAlive;
    mqtt::ConnectPacket onward = *connect_;
    onward.keepAlive = keepAliveSeconds_;
    if (willTrailer) {
        onward.willPayload.resize(onward.willPayload.size() - willTrailer);
        rewrite = true;
    }
    // stamp_identity holds for the will too: subscribers must not get a forged moat-identity.
    if (connect_->willFlag && v5() && opt.stampIdentity) {
        integrity::stampWillProperties(onward.willProperties, identity_);
        rewrite = true;
    } else if (connect_->willFlag && v5()) {
        willForgedIdentity_ = std::any_of(
            connect_->willProperties.begin(), connect_->willProperties.end(),
            [](const mqtt::Property& p) {
                return p.id == mqtt::prop::UserProperty && p.str == integrity::kIdentityProperty;
            });
    }
    switch (opt.credentials) {
        case config::BackendCredentials::Identity:
            if (identity_ != "anonymous" || connect_->username) {
                rewrite |= onward.username != identity_ || onward.password.has_value();
                onward.username = identity_;
            }
            if (onward.password) rewrite = true;
            onward.password.reset();
            break;
        case config::BackendCredentials::Passthrough:
            break;
        case config::BackendCredentials::Strip:
            rewrite |= onward.username.has_value() || onward.password.has_value();
            onward.username.reset();
            onward.password.reset();
            break;
    }
    // The jwt method is the gateway's business: the broker sees neither the method nor the
    // token (CONTRACT §3: authentication properties of the jwt method removed).
    if (enhancedJwt_) {
        auto& props = onward.properties;
        for (auto& p : props)
            if (p.id == mqtt::prop::AuthenticationData) OPENSSL_cleanse(p.str.data(), p.str.size());
        props.erase(std::remove_if(props.begin(), props.end(),
                                   [](const mqtt::Property& p) {
                                       return p.id == mqtt::prop::AuthenticationMethod ||
                                              p.id == mqtt::prop::AuthenticationData;
                                   }),
                    props.end());
        rewrite = true;
        // connect_ lives as long as the connection: no token left in it either.
        for (auto& p : connect_->properties)
            if (p.id == mqtt::prop::AuthenticationData) OPENSSL_cleanse(p.str.data(), p.str.size());
    }
    if (rewrite) connectBytes_ = mqtt::encodeConnect(onward);
    if (onward.password) OPENSSL_cleanse(onward.password->data(), onward.password->size());
    // The password is not needed any more: do not keep it in memory.
    if (connect_->password) {
        OPENSSL_cleanse(connect_->password->data(), connect_->password->size());
        connect_->password.reset();
    }

    SessionOptions so;
    so.onPublishDenied = opt.onPublishDenied;
    so.checkDeliveries = opt.checkDeliveries;
    so.maxSubscriptions = opt.maxSubscriptions;
    so.maxUserProperties = opt.maxUserProperties;
    so.maxInflight = opt.maxInflight;
    if (v5() && keepAliveSeconds_ != connect_->keepAlive) so.serverKeepAlive = keepAliveSeconds_;
    so.connectSessionExpiryZero = connect_->sessionExpiry().value_or(0) == 0;
    so.integrity = std::move(integrityChecker);
    if (opt.stampIdentity) so.stampIdentity = identity_;
    if (enhancedJwt_) so.authMethod = std::string(kJwtAuthMethod);
    so.sessionExpiry = v5() ? connect_->sessionExpiry().value_or(0)
                            : (connect_->cleanStart ? 0 : OwnershipTable::kNeverExpires);
    // Client-id ownership, last of the CONNECT rules: nothing refuses after the claim but the
    // broker, and a connection the broker never accepted gives its claim back unchanged.
    if (opt.auth && opt.auth->protectClientIds) {
        const OwnershipTable::Claim claim = events_.claimClientId(connect_->clientId, identity_);
        if (!claim.granted) {
            events_.clientIdRefused();
            events_.audit("authz_denied", "client_id", "", "protect_client_ids",
                          "client id owned by another identity");
            return refuse(rc::ClientIdentifierNotValid, "client id owned by another identity");
        }
        ownsClientId_ = true;
        so.storedSubscriptions = claim.subscriptions;
    }
    limiter_ = PacketLimiter(opt.limiter);
    SessionEvents& sessionEvents = *this;
    session_ = std::make_unique<Session>(connect_->version, std::move(rights), so, sessionEvents);
    stage_ = Stage::ConnectingBackend;
    // backend.connect_timeout covers TCP connect + CONNACK.
    deadline_ = nowMs + opt.connectTimeoutMs;
    return Action{Action::Kind::OpenBackend};
}

// ------------------------------------------------------------------ broker side

Action ConnectionPipeline::onBackendConnected(uint64_t nowMs) {
    nowMs_ = nowMs;
    if (stage_ != Stage::ConnectingBackend) return {};
    stage_ = Stage::Established;
    // The session starts when the broker accepts (onBrokerPacket): until then the deadline
    // stays backend.connect_timeout's.
    connackPending_ = true;
    Action a;
    a.toBroker = std::move(connectBytes_);
    connectBytes_ = {};
    return a;
}

Action ConnectionPipeline::onBackendFailed(const std::string& why, bool unreachable) {
    if (stage_ != Stage::ConnectingBackend) return {};
    if (unreachable) events_.backendUnreachable();
    return refuse(rc::ServerUnavailable, why);
}

// A broker packet that cannot be decoded or checked: counted, and the client closed (v5
// DISCONNECT 0x80, or a CONNACK when it has none yet).
Verdict ConnectionPipeline::brokerFailed(const char* detail) {
    onBackendMalformed(detail);
    if (!connackPending_) {
        Action a = closeWithReason(rc::UnspecifiedError);
        Verdict v = Verdict::close(0);
        v.onward = std::move(a.toClient);
        return v;
    }
    const bool isV5 = v5();
    stage_ = Stage::Closed;
    Verdict v = Verdict::close(0);
    v.onward = mqtt::encodeConnack(
        connect_->version, false,
        isV5 ? rc::UnspecifiedError : mqtt::v3ConnackCodeFor(rc::UnspecifiedError), {});
    return v;
}

Verdict ConnectionPipeline::onBrokerMalformed() {
    return brokerFailed("bad fixed header");
}

bool ConnectionPipeline::onBrokerConnack(const mqtt::Frame& frame, const uint8_t* body,
                                         uint64_t nowMs) {
    connackPending_ = false;
    events_.backendConnack(true);
    // Byte 2 of CONNACK is the v3 return code / v5 reason code (0: accepted).
    const uint8_t code = frame.remainingLength >= 2 ? body[1] : rc::UnspecifiedError;
    if (code != rc::Success) {
        char why[64];
        std::snprintf(why, sizeof why, "broker refused the connection (code 0x%02x)", code);
        events_.audit("auth_failure", "", "", "", why);
        deadline_ = 0;
        // Forwarded to the client, then the gateway closes (MQTT: the server closes after a
        // refusing CONNACK): not the broker's job alone, a broker that stalls would otherwise
        // leave the refused client connected without any deadline, its packets still forwarded.
        return false;
    }
    events_.audit("connect", "", "", "", "");
    brokerAccepted_ = true;
    // Keepalive enforcement replaces the connect deadline: 1.5 x keepalive of silence.
    keepAlive_.start(keepAliveSeconds_, nowMs);
    deadline_ = keepAlive_.enabled() ? nowMs + keepAlive_.limitMs() : 0;
    if (tokenDeadlineMs_ && (deadline_ == 0 || *tokenDeadlineMs_ < deadline_))
        deadline_ = std::max(*tokenDeadlineMs_, nowMs);
    return true;
}

Verdict ConnectionPipeline::onBrokerPacket(const mqtt::Frame& frame, const uint8_t* body,
                                           uint64_t nowMs) {
    nowMs_ = nowMs;
    if (stage_ != Stage::Established || !session_) return Verdict::drop();
    if (connackPending_) {
        if (frame.type() != PacketType::Connack)
            return brokerFailed("broker packet before its CONNACK");
        mqtt::ConnackPacket ack;
        if (mqtt::decodeConnack(body, frame.remainingLength, connect_->version, ack) !=
                rc::Success &&
            !(v5() && mqtt::isV311ConnackRefusal(body, frame.remainingLength)))
            return brokerFailed("malformed CONNACK from the broker");
        if (!onBrokerConnack(frame, body, nowMs)) {
            Verdict v = session_->onBrokerPacket(frame, body);
            if (v.kind != Verdict::Kind::Close) v.endAfter = true;
            if (!v5()) v.disconnectReason = 0;
            stage_ = Stage::Closed;
            return v;
        }
    }
    Verdict v = session_->onBrokerPacket(frame, body);
    if (v.kind == Verdict::Kind::Close) {
        stage_ = Stage::Closed;
        if (!v5()) v.disconnectReason = 0;
    } else if (frame.type() == PacketType::Disconnect) {
        v.endAfter = true;
        stage_ = Stage::Closed;
    }
    return v;
}

// ------------------------------------------------------------------ timers

Action ConnectionPipeline::onTimer(uint64_t nowMs, bool pausedByUs) {
    nowMs_ = nowMs;
    switch (stage_) {
        case Stage::AwaitConnect:
        case Stage::Authenticating:
            events_.rateLimited("handshake_timeout");
            events_.audit("disconnect", "", "", "", "handshake_timeout");
            return closeNow();
        case Stage::ConnectingBackend:
            events_.backendUnreachable();
            return refuse(rc::ServerUnavailable, "backend connect timeout");
        case Stage::Established: {
            if (connackPending_) {
                // The broker took the TCP connection and CONNECT but does not answer.
                events_.backendConnack(false);
                return refuse(rc::ServerUnavailable, "backend CONNACK timeout");
            }
            // The token's exp (+ leeway) ends the session unless a re-authentication moved it;
            // checked before keepalive and folded into deadline_.
            if (tokenDeadlineMs_ && nowMs >= *tokenDeadlineMs_) {
                events_.audit("disconnect", "", "", "", "token expired");
                return closeWithReason(rc::MaximumConnectTime);
            }
            if (pausedByUs) keepAlive_.packet(nowMs);
            if (!keepAlive_.enabled()) {
                deadline_ = tokenDeadlineMs_.value_or(0);
                return {};
            }
            const uint64_t left = keepAlive_.remaining(nowMs);
            if (left == 0) {
                events_.audit("disconnect", "", "", "", "keepalive_timeout");
                return closeWithReason(rc::KeepAliveTimeout);
            }
            deadline_ = nowMs + left;
            if (tokenDeadlineMs_) deadline_ = std::min(deadline_, *tokenDeadlineMs_);
            return {};
        }
        case Stage::Closed:
            return {};
    }
    return {};
}

// ------------------------------------------------------------------ reload, kick

ConnStage ConnectionPipeline::connStage() const {
    switch (stage_) {
        case Stage::AwaitConnect:
            return ConnStage::AwaitConnect;
        case Stage::Authenticating:
            return ConnStage::Authenticating;
        case Stage::ConnectingBackend:
            return ConnStage::ConnectingBackend;
        case Stage::Established:
            return ConnStage::Established;
        case Stage::Closed:
            return ConnStage::BeforeCertificate;
    }
    return ConnStage::BeforeCertificate;
}

Action ConnectionPipeline::endForReload(ReloadOutcome outcome, uint8_t v5Reason,
                                        const std::string& why) {
    switch (endBy(connStage())) {
        case EndBy::Nothing:
            return {};
        case EndBy::Close:
            events_.audit("disconnect", "", "", "", why);
            return closeAfterFlush();
        case EndBy::ConnackRefusal:
            // CONNACK has no 0x98; a revoked certificate is "not authorized".
            return refuse(outcome == ReloadOutcome::Banned ? rc::Banned : rc::NotAuthorized, why);
        case EndBy::Disconnect:
            events_.audit("disconnect", "", "", "", why);
            // The same certificate / identity is disconnected at the other replicas (cluster).
            if (outcome == ReloadOutcome::CertificateInvalid)
                events_.shareKick(identity_, PipelineEvents::KickWhy::Revoked);
            else if (outcome == ReloadOutcome::NoRights)
                events_.shareKick(identity_, PipelineEvents::KickWhy::NoRights);
            return closeWithReason(v5Reason);
    }
    return {};
}

Action ConnectionPipeline::onReload(std::shared_ptr<const PipelineOptions> options,
                                    std::optional<std::string> certificateProblem, uint64_t nowMs) {
    // Connections keep their TLS session; everything else follows the new options: limits,
    // CRL and policy, in every stage (ReloadCheck.h). A password check already running keeps
    // its own reference to the password file it started with (onJobDone compares).
    nowMs_ = nowMs;
    options_ = std::move(options);
    return applyOptions(std::move(certificateProblem), "reload");
}

// The current options_ and rights (tokenRoles_) applied to a live connection: after a reload,
// or after a re-authentication whose token names other roles. `cause` names it in the audit.
Action ConnectionPipeline::applyOptions(std::optional<std::string> certificateProblem,
                                        std::string_view cause) {
    const PipelineOptions& opt = *options_;
    const ConnStage st = connStage();
    if (st == ConnStage::BeforeCertificate) return {};

    ReloadFacts facts;
    facts.certificateInvalid = certificateProblem.has_value();
    std::shared_ptr<const policy::ClientRights> rights;
    policy::Decision willDecision;
    bool willForgedStamp = false;
    if (hasSessionRights(st) && session_) {
        facts.identityBanned = !identity_.empty() && events_.identityBanned(identity_);
        rights = rightsFor(opt);
        facts.hasRights = rights->hasAnyRights();
        if (connect_->willFlag) {
            willDecision = rights->checkPublish(connect_->willTopic);
            facts.willAllowed =
                willDecision.allowed && checkWillRights(*rights, connect_->willTopic,
                                                        connect_->willQos, connect_->willRetain)
                                            .allowed;
            // Stamping turned on: a will the broker holds with a client-supplied moat-identity
            // would reach subscribers that now trust the property.
            if (willForgedIdentity_ && opt.stampIdentity) {
                facts.willAllowed = false;
                willDecision.allowed = false;
                willForgedStamp = true;
            }
        }
    }
    const ReloadOutcome outcome = judgeReload(st, facts);
    switch (outcome) {
        case ReloadOutcome::Keep:
            break;
        case ReloadOutcome::CertificateInvalid:
            return endForReload(
                outcome, rc::AdministrativeAction,
                "certificate no longer valid after reload: " + certificateProblem.value_or(""));
        case ReloadOutcome::Banned:
            return endForReload(outcome, rc::Banned, "banned");
        case ReloadOutcome::NoRights:
            return endForReload(outcome, rc::AdministrativeAction,
                                "identity has no rights after " + std::string(cause));
        case ReloadOutcome::WillDenied: {
            // The broker publishes a will when the connection drops; a normal DISCONNECT (0x00)
            // makes it discard the will instead.
            events_.authzDenied("will");
            events_.audit("authz_denied", "will", connect_->willTopic,
                          willForgedStamp ? "stamp_identity" : willDecision.describe(),
                          willForgedStamp ? "will carries a client-supplied moat-identity and "
                                            "stamp_identity is now on"
                                          : "will topic not allowed after " + std::string(cause));
            const bool connected = stage_ == Stage::Established;
            Action a = endForReload(outcome, rc::NotAuthorized,
                                    "will topic not allowed after " + std::string(cause));
            if (connected) a.toBroker = mqtt::encodeDisconnect(connect_->version, rc::Success, {});
            return a;
        }
    }
    if (!rights) return {};  // no session yet: finishAuth takes rights from the options then

    limiter_.reconfigure(opt.limiter);
    // Keys and stamp_identity follow the reload (the new key cache starts empty).
    session_->replaceIntegrity(makeIntegrityChecker());
    session_->setStampIdentity(opt.stampIdentity ? std::optional<std::string>(identity_)
                                                 : std::nullopt);
    // Subscriptions the new policy no longer allows are removed at the broker.
    session_->setCheckDeliveries(opt.checkDeliveries);
    std::vector<std::string> revoked = session_->replaceRights(std::move(rights));
    if (revoked.empty()) return {};
    for (const auto& f : revoked)
        events_.audit("authz_denied", "subscribe", f, std::string(cause),
                      "subscription revoked by " + std::string(cause));
    events_.authzDenied("subscribe");
    Action a;
    a.toBroker = session_->makeUnsubscribe(revoked);
    if (a.toBroker.empty()) {
        // No free packet id to unsubscribe with: end the session rather than leave the revoked
        // subscriptions at the broker.
        events_.audit("disconnect", "", "", "", "revoked subscriptions could not be unsubscribed");
        return closeWithReason(rc::AdministrativeAction);
    }
    return a;
}

Action ConnectionPipeline::onKick(const std::string& identity, bool certificateNamed,
                                  bool certificateMatches, uint8_t v5Reason,
                                  const std::string& why) {
    // Before authentication finishes there is no identity yet, but the certificate is known: a
    // revocation (it names the certificate) also ends a connection still waiting for CONNECT or
    // checking its password, which would otherwise get in after the kick.
    if ((stage_ == Stage::AwaitConnect || stage_ == Stage::Authenticating) && certificateNamed &&
        certificateMatches)
        return endForReload(ReloadOutcome::CertificateInvalid, v5Reason, why);
    // Only sessions that passed authentication carry an identity worth matching.
    if (stage_ != Stage::Established && stage_ != Stage::ConnectingBackend) return {};
    if (identity_ != identity) return {};
    if (certificateNamed && !certificateMatches) return {};
    events_.audit("disconnect", "", "", "", why);
    return closeWithReason(v5Reason);
}

// ------------------------------------------------------------------ session events

void ConnectionPipeline::onAuthzDenied(const char* action, std::string_view topic,
                                       const policy::Decision& decision) {
    events_.authzDenied(action);
    if (std::string_view(action) == "deliver") {
        // A withheld delivery is the broker's traffic on a branch the client may not read, not
        // the client probing: summarised, and never fed to topic_scan.
        const std::string rule = decision.describe();
        if (auto n = withheld_.record(nowMs_, topic, rule))
            events_.audit("authz_denied", action, topic, rule, "withheld", *n);
        return;
    }
    events_.audit("authz_denied", action, topic, decision.describe(), "");
    events_.deniedTopic(topic);
}

void ConnectionPipeline::onProtocolError(uint8_t reason, const char* detail) {
    events_.protocolError(mqtt::reasonName(reason));
    events_.audit("protocol_error", "", "", "", detail);
}

void ConnectionPipeline::onSubscriptionLimit(std::string_view filter) {
    events_.rateLimited("max_subscriptions");
    events_.audit("rate_limited", "subscribe", filter, "", "max_subscriptions");
}

void ConnectionPipeline::onBackendMalformed(const char* detail) {
    events_.warn(std::string("broker sent a packet it cannot inspect (") + detail + "); closing");
    events_.protocolError("backend_malformed");
    events_.audit("protocol_error", "", "", "", std::string("broker: ") + detail);
}

void ConnectionPipeline::onIntegrityDenied(std::string_view topic, std::string_view rule,
                                           const char* reason) {
    events_.authzDenied("integrity");
    events_.audit("authz_denied", "integrity", topic, rule, reason);
}

void ConnectionPipeline::onRightsDenied(std::string_view topic, std::string_view rule,
                                        const char* reason) {
    events_.authzDenied("publish");
    events_.audit("authz_denied", "publish", topic, rule, reason);
    events_.deniedTopic(topic);
}

}  // namespace moat::inspect
