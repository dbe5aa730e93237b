#pragma once
// One device connection and its broker connection, on one worker loop.
//
//   device --TLS--> client_ --TlsSession--> frames --Session--> backend_ --plain--> broker
//
// Life cycle: [ProxyHeader ->] TlsHandshake -> AwaitConnect -> Authenticating (password check on
// the gateway's AuthPool) -> ConnectingBackend -> Established -> Closing. No broker connection
// exists before the TLS handshake and the CONNECT packet have both passed.
//
// Memory: the object owns three libuv handles and is deleted when the last one has closed
// (a password check still running does not hold it: closeNow() lets go of it). Partial packets are
// kept in small per-side buffers that are freed when empty; socket reads go into the worker's
// scratch buffer.

#include <uv.h>

#include <memory>
#include <optional>
#include <string>

#include "gateway/inspect/Authenticator.h"
#include "gateway/inspect/KeepAlive.h"
#include "gateway/inspect/ReloadCheck.h"
#include "gateway/inspect/Session.h"
#include "gateway/inspect/WithheldDeliveries.h"
#include "gateway/inspect/limits/TokenBucket.h"
#include "gateway/metrics/PublishBaseline.h"
#include "gateway/mqtt/Frame.h"
#include "gateway/mqtt/Packets.h"
#include "gateway/net/ByteBuffer.h"
#include "gateway/net/Snapshot.h"
#include "gateway/proxy/ProxyProtocol.h"
#include "gateway/tls/TlsSession.h"

namespace moat::net {

class Worker;
struct WorkerListener;
struct AuthCharge;
struct PasswordTicket;

class ClientConnection : public inspect::SessionEvents {
  public:
    ClientConnection(Worker& worker, WorkerListener& listener);
    ~ClientConnection() override;

    // Accepts from `server`; false if the accept failed (the object then deletes itself).
    bool accept(uv_stream_t* server);

    // SIGTERM: v5 clients get DISCONNECT 0x8B, pending bytes are flushed, then close.
    void drain();
    // Drain deadline passed: close at once.
    void abort() { closeNow(); }
    // Reload: re-check this session against the worker's new snapshot.
    void applySnapshot(const Snapshot& snapshot);

    const std::string& remote() const { return remote_; }

    // Cluster kick (ClusterKick.cpp): closes this session when it is `identity`'s (and, when
    // `fingerprint` is set, its client certificate has that SHA-256). True when it closed.
    bool kick(const std::string& identity, const std::string& fingerprint, uint8_t v5Reason,
              const std::string& why);
    // Lowercase hex SHA-256 of the client certificate; empty without one.
    std::string certFingerprint() const;

  private:
    enum class State {
        ProxyHeader,
        TlsHandshake,
        AwaitConnect,
        Authenticating,
        ConnectingBackend,
        Established,
        Closing
    };
    // Why the client is not read. Backpressure: the broker's queue is full; ClientQueue: the
    // client's own (it does not read what it is sent, replies the gateway makes included);
    // Backlog: too many of its SUBSCRIBE filters await the broker's answer.
    enum Pause : uint8_t {
        kPauseBackpressure = 1,
        kPauseState = 2,
        kPauseThrottle = 4,
        kPauseClientQueue = 8,
        kPauseBacklog = 16
    };

    // Admission (limits, bans) for the device address, then TLS or plaintext MQTT.
    bool start();
    // proxy_protocol listeners: the header before TLS names the device address.
    void onProxyHeaderBytes(const uint8_t* data, size_t len);

    // --- client side
    static void onClientAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
    static void onClientRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
    static void onClientWritten(uv_stream_t* s, int status);
    void onClientBytes(const uint8_t* data, size_t len);  // ciphertext or plaintext
    void onClientPlaintext(const uint8_t* data, size_t len);
    size_t processClientPackets(const uint8_t* data, size_t len);
    void handleConnect(const mqtt::Frame& frame, const uint8_t* body, const uint8_t* whole);
    // --- password check on the gateway's AuthPool (PasswordCheck.cpp): charged as a failure
    // when started, maybe delayed (identity under attack), queued, settled with the result.
    void startPasswordCheck(inspect::Authenticator::Pending pending);
    void submitPasswordCheck();
    void onPasswordChecked(int result);  // AuthPool::Result
    // Closing: a queued check is cancelled, a running one's result ignored (still settled).
    void abandonPasswordCheck();
    static void onAuthDelayTimer(uv_timer_t* t);
    // passwordCharged: a failed password was already counted when its check started.
    void finishAuth(const inspect::AuthOutcome& outcome, bool passwordCharged = false);
    void refuseConnect(uint8_t v5Reason, const std::string& why);
    // The client certificate judged against `snapshot`'s CA bundle and CRL (one function:
    // TlsContext::verifyClientCertificate); X509_V_OK without a certificate.
    long certificateError(const Snapshot& snapshot) const;
    inspect::ConnStage stage() const;
    // Ends the connection the way its stage allows (ReloadCheck.h).
    void endForReload(inspect::ReloadOutcome outcome, uint8_t v5Reason, const std::string& why);
    void sendToClient(const uint8_t* data, size_t len);
    void flushTls();
    // After a write to the client: above the high-water mark, neither side is read.
    void checkClientQueue();
    void pauseClient(Pause why);
    void resumeClient(Pause why);

    // --- both directions: a run of packets forwarded unchanged leaves as one write
    using Send = void (ClientConnection::*)(const uint8_t* data, size_t len);
    struct ForwardRun {
        const uint8_t* data;
        Send send;
        size_t start = 0, end = 0;
        void extend(ClientConnection& c, size_t off, size_t size) {
            if (end != off) {
                flush(c);
                start = off;
            }
            end = off + size;
        }
        void flush(ClientConnection& c) {
            if (end > start) (c.*send)(data + start, end - start);
            start = end = 0;
        }
    };
    // Carries out a session verdict for the packet at [off, off + size): forward (extending
    // the run), replace (`onward`), reply (`back`), close. False: the connection is closing.
    bool follow(const inspect::Verdict& v, mqtt::PacketType type, size_t off, size_t size,
                ForwardRun& run, Send onward, Send back);
    // Broker -> client bytes encrypted but not yet flushed (plaintext listeners: sent).
    void queueToClient(const uint8_t* data, size_t len);

    // --- backend side
    void connectBackend();
    static void onBackendConnected(uv_connect_t* req, int status);
    static void onBackendAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
    static void onBackendRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
    static void onBackendWritten(uv_stream_t* s, int status);
    size_t processBrokerPackets(const uint8_t* data, size_t len);
    // The broker's answer to CONNECT: the session starts (audit `connect`, keepalive) or not.
    void onBrokerConnack(const mqtt::Frame& frame, const uint8_t* body);
    void sendToBackend(const uint8_t* data, size_t len);
    void pauseBackend();
    void resumeBackend();

    // --- per-client limits: publish_rate / publish_bytes_rate for PUBLISH, and a flood
    // limit for PINGREQ / SUBSCRIBE / UNSUBSCRIBE (control_packet_rate)
    bool admitPacket(mqtt::PacketType type, size_t bytes);  // false: throttled or closing
    void onDeniedTopic(std::string_view topic);
    static void onThrottleTimer(uv_timer_t* t);

    // --- timers and closing
    static void onTimer(uv_timer_t* t);
    void armTimer(uint64_t ms);
    void closeWithReason(uint8_t v5Reason);  // DISCONNECT (v5) then close
    void closeAfterFlush();                  // stop reading, flush writes to the client, close
    void closeNow();
    static void onHandleClosed(uv_handle_t* h);
    static void onClientShutdown(uv_shutdown_t* req, int status);
    static void onBackendShutdown(uv_shutdown_t* req, int status);
    void closeBackendAfterFlush();
    void maybeDelete();

    // --- SessionEvents (audit + metrics)
    void onAuthzDenied(const char* action, std::string_view topic,
                       const policy::Decision& decision) override;
    void onProtocolError(uint8_t reason, const char* detail) override;
    // A broker packet that cannot be decoded or checked: counted, and the client closed
    // (v5 DISCONNECT 0x80, or a CONNACK when it has none yet).
    void closeBackendMalformed(const char* detail);
    void onSubscriptionLimit(std::string_view filter) override;
    void onBackendMalformed(const char* detail) override;
    void onIntegrityDenied(std::string_view topic, std::string_view rule,
                           const char* reason) override;
    // integrity.rules for this client, its %u keys loaded now (not per message).
    std::shared_ptr<integrity::Checker> makeIntegrityChecker(const Snapshot& snapshot);

    void audit(const char* event, const char* action, std::string_view topic, std::string_view rule,
               std::string_view reason, std::optional<uint64_t> count = {});
    // A TLS handshake that failed or was abandoned (`why`): metrics and audit; a refused
    // certificate counts as a failed authentication, any other failure of a client that sent
    // bytes as a handshake failure towards its address's ban (Gateway::handshakeFailed).
    void onHandshakeFailed(const std::string& why);
    const config::Config& config() const { return *snapshot_->config; }
    bool v5() const { return connect_ && connect_->version == mqtt::ProtocolVersion::V5; }

    Worker& worker_;
    WorkerListener& listener_;
    std::shared_ptr<const Snapshot> snapshot_;
    uint64_t id_;
    State state_ = State::TlsHandshake;
    std::string remote_;  // "ip:port"
    std::string ip_;
    // The device and the address it connected to: the socket's, or a PROXY header's.
    // local_ is filled only when needed (PROXY header, backend.proxy_protocol: v2).
    proxy::Address peer_;
    proxy::Address local_;

    uv_tcp_t client_{};
    uv_tcp_t backend_{};
    uv_timer_t timer_{};
    uv_timer_t throttleTimer_{};  // resumes a client paused by a publish rate limit
    uv_connect_t connectReq_{};
    uv_shutdown_t shutdownReq_{};
    uv_shutdown_t backendShutdownReq_{};
    int openHandles_ = 0;
    bool backendOpen_ = false;
    bool backendConnected_ = false;
    bool workPending_ = false;
    bool clientReading_ = false;
    bool backendReading_ = false;
    uint8_t clientPause_ = 0;
    bool backendPaused_ = false;
    bool shutdownPending_ = false;
    bool backendShutdownPending_ = false;
    bool admitted_ = false;  // counted by admission control; released on delete

    std::unique_ptr<tls::TlsSession> tls_;
    uint64_t handshakeGeneration_ = 0;  // snapshot whose TLS context verified the certificate
    ByteBuffer clientIn_;               // partial client packet(s) between reads
    ByteBuffer backendIn_;              // partial broker packet(s)

    std::shared_ptr<PasswordTicket> passwordTicket_;  // a check queued or running
    std::unique_ptr<AuthCharge> authCharge_;          // charged, not yet handed to the pool
    std::unique_ptr<inspect::Authenticator::Pending> pendingAuth_;

    std::unique_ptr<mqtt::ConnectPacket> connect_;
    std::vector<uint8_t> connectBytes_;  // what goes to the broker as CONNECT
    std::string identity_;
    inspect::CertFactor certFactor_;
    std::unique_ptr<inspect::Session> session_;
    uint16_t keepAlive_ = 0;             // seconds, after clamping
    inspect::KeepAlive keepAliveClock_;  // refreshed by complete packets only
    // Established, CONNECT sent, the broker's CONNACK not yet seen: the timer is the
    // backend.connect_timeout deadline, not keepalive.
    bool connackPending_ = false;
    inspect::TokenBucket publishBucket_;                       // messages
    inspect::TokenBucket bytesBucket_;                         // PUBLISH bytes (whole packets)
    inspect::TokenBucket controlBucket_;                       // PINGREQ / SUBSCRIBE / UNSUBSCRIBE
    std::optional<metrics::PublishBaseline> publishBaseline_;  // publish_spike anomalies
    std::string anomalySubject_;                               // "client=<client id>"
    bool deniedAny_ = false;  // known to the topic-scan detector (forget it on close)
    // The will went to the broker unstamped with a client-supplied moat-identity (stamping was
    // off): a reload that turns stamp_identity on must not let the broker publish it.
    bool willForgedIdentity_ = false;
    inspect::WithheldDeliveries withheld_;  // audit summarising of withheld deliveries
};

}  // namespace moat::net
