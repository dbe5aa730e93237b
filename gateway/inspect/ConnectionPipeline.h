#pragma once
// Every decision about one device connection, sans I/O (issue 21; Envoy network-filter style:
// the pipeline decides, the connection only acts). No sockets, no event loop: the network
// layer (net/ClientConnection) feeds it whole MQTT packets, job results, timer ticks and
// reloads, with the time, and carries out what comes back.
//
//   stage              entered by                          left by
//   AwaitConnect       construction (transport is up)      onConnect
//   Authenticating     onConnect: Await{job} (password,     onJobDone
//                      token)
//   ConnectingBackend  Action::OpenBackend                  onBackendConnected / Failed
//   Established        onBackendConnected (CONNACK pending  close
//                      until onBrokerPacket sees it)
//   Closed             any Close / CloseNow                 -
//
// Per packet (hot path): Verdict (forward / drop / replace / reply / close / hold). Control
// events: Action (none / await / open backend / close / close now), with bytes for either side.
// Outward, one narrow interface: PipelineEvents (audit, metrics, bans, anomalies, cluster).
//
// Tokens (auth.token, issue 24): the verification is Job::Kind::Token; the token's exp +
// leeway is folded into deadline() and enforced in onTimer (v5 DISCONNECT 0xA0); a v5 AUTH
// re-authentication is decoded by the Session, queued as a Token job the transport takes after
// the packet (hasJob / takeJob) and answered through onJobDone (AUTH 0x00 or DISCONNECT 0x87).
//
// Extension points: other off-loop work (key fetches) is a new Job::Kind answered through
// onJobDone; a CONNECT rule that consults shared state (client-id ownership) asks through
// PipelineEvents from finishAuth; per-role publish rights (retain, max QoS) live in
// policy::ClientRights and are enforced by Session.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/inspect/Authenticator.h"
#include "gateway/inspect/KeepAlive.h"
#include "gateway/inspect/OwnershipTable.h"
#include "gateway/inspect/PipelineOptions.h"
#include "gateway/inspect/ReloadCheck.h"
#include "gateway/inspect/Session.h"
#include "gateway/inspect/Verdict.h"
#include "gateway/inspect/WithheldDeliveries.h"
#include "gateway/inspect/limits/PacketLimiter.h"
#include "gateway/mqtt/Frame.h"
#include "gateway/mqtt/Packets.h"

namespace moat::inspect {

// Work the pipeline needs done off the event loop; the answer comes back through onJobDone.
// New kinds (token verification, key fetches) add a Kind and their fields here.
struct Job {
    enum class Kind : uint8_t { Password, Token };
    Kind kind = Kind::Password;
    std::string user;
    std::string password;  // a copy: move it into the worker, which wipes it
    std::shared_ptr<const policy::PasswordFile> passwords;
    // Token (auth.token): the JWT from the CONNECT password, v5 Authentication Data, or an AUTH
    // re-authentication (`reauth`). Moved into the worker, which wipes it.
    std::string token;
    bool reauth = false;
};

struct JobResult {
    enum class Status : uint8_t {
        Ok,           // Password: verified
        BadPassword,  // Password: wrong password
        UnknownUser,  // Password: no such user
        Banned,       // the address got banned before / while the job waited
        QueueFull,    // refused or evicted by the bounded queue (CONNACK 0x89)
        Abandoned,    // expired or cancelled (CONNACK 0x89)
    };
    Job::Kind kind = Job::Kind::Password;
    Status status = Status::Abandoned;
    std::string detail;  // Banned / QueueFull / Abandoned: the refusal's audit reason
    // Password: the file the job checked against (a reload may have replaced it since).
    std::shared_ptr<const policy::PasswordFile> checked;
    // Token: the verifier's verdict (status Ok: it ran), the wall-clock second it was judged
    // at (exp is wall time; the pipeline's clock is not), and whether it was a re-authentication.
    token::TokenResult token;
    int64_t verifiedAt = 0;
    bool reauth = false;
};

// A control decision (CONNECT, job result, backend, timer, reload, kick, drain).
struct Action {
    enum class Kind : uint8_t {
        None,         // go on (toBroker may still hold a packet: a reload's UNSUBSCRIBE)
        Await,        // run `job` off the loop, answer with onJobDone; client reads paused
        OpenBackend,  // CONNECT accepted: connect to the broker, then onBackendConnected
        Close,        // send toBroker, toClient, then close once flushed
        CloseNow,     // close at once, nothing more sent
    };
    Kind kind = Kind::None;
    std::vector<uint8_t> toBroker;
    std::vector<uint8_t> toClient;  // CONNACK refusal, v5 DISCONNECT
    std::optional<Job> job;
    uint16_t tcpProbeSeconds = 0;  // v3 keepalive out of range: TCP probes at this idle time

    bool closes() const { return kind == Kind::Close || kind == Kind::CloseNow; }
};

// Where the pipeline reports, and the shared state it consults. The network layer implements it
// by forwarding to Gateway / Worker (it adds the listener, the address, the certificate).
class PipelineEvents {
  public:
    virtual ~PipelineEvents() = default;
    // Audit log (client id, identity and protocol: ConnectionPipeline's accessors).
    virtual void audit(const char* event, const char* action, std::string_view topic,
                       std::string_view rule, std::string_view reason,
                       std::optional<uint64_t> count = {}) = 0;
    virtual void warn(const std::string& message) = 0;
    // Metrics.
    virtual void authzDenied(std::string_view action) = 0;
    virtual void rateLimited(std::string_view limit) = 0;
    virtual void protocolError(std::string_view reason) = 0;
    virtual void authCounted(std::string_view method, bool success) = 0;
    virtual void backendUnreachable() = 0;          // TCP connect failed / timed out
    virtual void backendConnack(bool arrived) = 0;  // false: CONNACK timed out
    // Bans and identities.
    virtual bool addressBanned() = 0;
    virtual bool identityBanned(const std::string& identity) = 0;
    virtual void authFailed(std::string_view method, const std::string& identity) = 0;
    virtual void loggedIn(const std::string& identity) = 0;
    // Anomalies: a denied topic (topic_scan); an admitted PUBLISH (publish_spike, only with
    // PipelineOptions::publishSpike).
    virtual void deniedTopic(std::string_view topic) = 0;
    virtual void publishAdmitted(uint64_t nowMs) = 0;
    // Cluster: ask the other replicas to end this identity's sessions too.
    enum class KickWhy : uint8_t { Revoked, NoRights };
    virtual void shareKick(const std::string& identity, KickWhy why) = 0;
    // Client-id ownership (auth.protect_client_ids): the process-wide OwnershipTable. A claim
    // at CONNECT, after every other rule; its release when the connection ends, with the
    // session's expiry as last set (nullopt: the broker never accepted the connection).
    virtual OwnershipTable::Claim claimClientId(const std::string& clientId,
                                                const std::string& identity) {
        (void)clientId, (void)identity;
        OwnershipTable::Claim granted;
        granted.granted = true;
        return granted;
    }
    // `subscriptions`: the filters the broker holds for the session (OwnershipTable::release).
    virtual void releaseClientId(const std::string& clientId, const std::string& identity,
                                 std::optional<uint32_t> sessionExpiry,
                                 std::vector<std::string> subscriptions) {
        (void)clientId, (void)identity, (void)sessionExpiry, (void)subscriptions;
    }
    virtual void clientIdRefused() {}
};

// What the transport learned before CONNECT.
struct ConnectContext {
    CertFactor cert;  // the client certificate (presented, identity)
    // Set when the certificate the handshake verified fails the current CA / CRL (a reload
    // since the handshake): the X509 error text.
    std::optional<std::string> certificateProblem;
};

class ConnectionPipeline : private SessionEvents {
  public:
    enum class Stage : uint8_t {
        AwaitConnect,
        Authenticating,
        ConnectingBackend,
        Established,
        Closed
    };

    // nowMs: the accept time (handshake_timeout runs from it).
    ConnectionPipeline(std::shared_ptr<const PipelineOptions> options, PipelineEvents& events,
                       uint64_t nowMs);
    ~ConnectionPipeline() override;

    // ---- client -> gateway
    // The fixed header is known (the body may not be): max_packet_size. None or Close.
    Action onClientHeader(const mqtt::Frame& frame);
    Action onClientMalformed();  // a fixed header that cannot be parsed
    // The first whole packet (must be CONNECT). `whole`: header + body.
    Action onConnect(const mqtt::Frame& frame, const uint8_t* body, const uint8_t* whole,
                     const ConnectContext& context, uint64_t nowMs);
    // A whole packet after CONNECT (Established). Hold: the packet stays buffered.
    Verdict onClientPacket(const mqtt::Frame& frame, const uint8_t* body, uint64_t nowMs);
    Action onJobDone(JobResult result, uint64_t nowMs);
    // A job a client packet asked for (v5 AUTH re-authentication: verify the fresh token off
    // the loop, answer through onJobDone). The transport asks after each client packet.
    bool hasJob() const { return pendingJob_.has_value(); }
    std::optional<Job> takeJob() {
        std::optional<Job> j = std::move(pendingJob_);
        pendingJob_.reset();
        return j;
    }

    // ---- broker -> gateway
    // toBroker: the CONNECT (after whatever header the transport to the broker adds).
    Action onBackendConnected(uint64_t nowMs);
    // unreachable: the broker is down (metric), not merely unresolved.
    Action onBackendFailed(const std::string& why, bool unreachable);
    Verdict onBrokerPacket(const mqtt::Frame& frame, const uint8_t* body, uint64_t nowMs);
    Verdict onBrokerMalformed();  // a fixed header that cannot be parsed

    // ---- time
    // The absolute time (ms) the transport's timer must call onTimer at; 0: none. Changes only
    // on control events (a packet's keepalive activity moves the real deadline later, which
    // onTimer then finds and re-arms).
    uint64_t deadline() const { return deadline_; }
    // pausedByUs: the transport stopped reading the client for its own reasons (broker
    // back-pressure, throttle, pending acks): the client's silence is not its own.
    Action onTimer(uint64_t nowMs, bool pausedByUs = false);
    // The client showed life without a whole packet: it drains what it is sent, or a throttle
    // the gateway imposed ended.
    void noteActivity(uint64_t nowMs) { keepAlive_.packet(nowMs); }

    // ---- control
    // A reload: new options, and the certificate judged against the new CA / CRL.
    Action onReload(std::shared_ptr<const PipelineOptions> options,
                    std::optional<std::string> certificateProblem, uint64_t nowMs);
    // Options only (the transport has not finished its handshake: CONNECT re-verifies).
    void setOptions(std::shared_ptr<const PipelineOptions> options) {
        options_ = std::move(options);
    }
    // A cluster kick / identity ban: certificateNamed: the kick names a certificate,
    // certificateMatches: it is this connection's. None when it does not apply.
    Action onKick(const std::string& identity, bool certificateNamed, bool certificateMatches,
                  uint8_t v5Reason, const std::string& why);
    Action onDrain();  // SIGTERM: v5 DISCONNECT 0x8B when established
    // The transport is gone: last audit events (withheld summary, disconnect).
    void onClosed();

    // ---- queries
    Stage stage() const { return stage_; }
    bool awaitingConnack() const { return connackPending_; }
    bool backlogged() const { return session_ && session_->backlogged(); }
    const std::string& identity() const { return identity_; }
    std::string_view clientId() const;
    std::string_view protocolName() const;
    bool v5() const;
    const PipelineOptions& options() const { return *options_; }

  private:
    // CONNECT, after authentication: ban, will ACL, will integrity, credential rewrite.
    Action finishAuth(const AuthOutcome& outcome, bool passwordCharged, uint64_t nowMs);
    Action awaitPassword();
    Action awaitToken(std::string token);
    Action onReauthDone(JobResult result, uint64_t nowMs);
    void auditIgnoredRoles(const std::vector<std::string>& roles);
    Action applyOptions(std::optional<std::string> certificateProblem, std::string_view cause);
    // The token's session ends at exp + leeway (verifiedAt: the wall-clock second of nowMs).
    void setTokenDeadline(int64_t exp, int64_t verifiedAt, uint64_t nowMs);
    std::shared_ptr<const policy::ClientRights> rightsFor(const PipelineOptions& opt) const;
    Action refuse(uint8_t v5Reason, const std::string& why);
    Action closeWithReason(uint8_t v5Reason);
    // The client has no CONNACK yet (the broker's is still to come).
    bool beforeConnack() const;
    // What the client is told when the gateway ends its connection: a refusing CONNACK before
    // it has one, else (v5) DISCONNECT v5Reason.
    std::vector<uint8_t> farewell(uint8_t v5Reason) const;
    // A Close verdict on a client packet: before the CONNACK, a CONNACK refusal as its reply.
    void sayFarewell(Verdict& v) const;
    Action closeAfterFlush();
    Action closeNow();
    Action endForReload(ReloadOutcome outcome, uint8_t v5Reason, const std::string& why);
    Verdict brokerFailed(const char* detail);
    ConnStage connStage() const;
    std::shared_ptr<integrity::Checker> makeIntegrityChecker();
    // False: the broker refused (the client gets its CONNACK, then the connection ends).
    bool onBrokerConnack(const mqtt::Frame& frame, const uint8_t* body, uint64_t nowMs);

    // SessionEvents
    void onAuthzDenied(const char* action, std::string_view topic,
                       const policy::Decision& decision) override;
    void onProtocolError(uint8_t reason, const char* detail) override;
    void onSubscriptionLimit(std::string_view filter) override;
    void onBackendMalformed(const char* detail) override;
    void onIntegrityDenied(std::string_view topic, std::string_view rule,
                           const char* reason) override;
    void onReauthenticate(std::string token) override;
    void onRightsDenied(std::string_view topic, std::string_view rule, const char* reason) override;

    std::shared_ptr<const PipelineOptions> options_;
    PipelineEvents& events_;
    Stage stage_ = Stage::AwaitConnect;
    uint64_t deadline_ = 0;
    uint64_t nowMs_ = 0;  // of the last call (withheld-delivery summaries)

    std::unique_ptr<mqtt::ConnectPacket> connect_;
    std::vector<uint8_t> connectBytes_;  // what goes to the broker as CONNECT
    CertFactor cert_;
    std::unique_ptr<Authenticator::Pending> pendingAuth_;
    std::string identity_;
    uint16_t keepAliveSeconds_ = 0;  // after clamping
    KeepAlive keepAlive_;            // refreshed by whole packets only
    bool connackPending_ = false;
    PacketLimiter limiter_;
    std::unique_ptr<Session> session_;
    // The will went to the broker unstamped with a client-supplied moat-identity (stamping was
    // off): a reload that turns stamp_identity on must not let the broker publish it.
    bool willForgedIdentity_ = false;
    // This connection holds its client id (auth.protect_client_ids); the broker accepted it.
    bool ownsClientId_ = false;
    bool brokerAccepted_ = false;
    WithheldDeliveries withheld_;  // audit summarising of withheld deliveries
    // auth.token
    bool enhancedJwt_ = false;                 // v5 Authentication Method "jwt" at CONNECT
    int64_t tokenVerifiedAt_ = 0;              // wall-clock second of the CONNECT's verdict
    std::optional<uint64_t> tokenDeadlineMs_;  // exp + leeway on this pipeline's clock
    std::vector<std::string> tokenRoles_;      // roles_claim roles (replace users: / defaults)
    std::optional<Job> pendingJob_;            // AUTH re-authentication, for takeJob()
    bool reauthPending_ = false;               // asked, not yet answered
    bool reauthConflict_ = false;              // a second AUTH before the first was answered
};

}  // namespace moat::inspect
