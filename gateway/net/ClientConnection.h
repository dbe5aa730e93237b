#pragma once
// One device connection and its broker connection, on one worker loop. It moves bytes and
// carries out what its inspect::ConnectionPipeline decides (CONNECT rules, limits, reload
// re-checks, every packet's verdict); it decides nothing itself.
//
//   device --TCP--> [PROXY header] --> client transport (TLS or plain: transportIn /
//   transportOut) --> frame splitter --> ConnectionPipeline --> backend_ --plain--> broker
//
// Life cycle here: [ProxyHeader ->] TlsHandshake -> Open (the pipeline's stages: AwaitConnect,
// Authenticating, ConnectingBackend, Established) -> Closing. No broker connection exists
// before the TLS handshake and the CONNECT packet have both passed.
//
// Memory: the object owns four libuv handles and is deleted when the last one has closed (a
// password check still running does not hold it: closeNow() lets go of it). Partial packets
// are kept in small per-side buffers that are freed when empty; socket reads go into the
// worker's scratch buffer.

#include <uv.h>

#include <memory>
#include <optional>
#include <string>

#include "gateway/inspect/ConnectionPipeline.h"
#include "gateway/metrics/PublishBaseline.h"
#include "gateway/mqtt/Frame.h"
#include "gateway/net/ByteBuffer.h"
#include "gateway/net/Snapshot.h"
#include "gateway/proxy/ProxyProtocol.h"
#include "gateway/tls/TlsSession.h"

namespace moat::net {

class Worker;
struct WorkerListener;
struct AuthCharge;
struct PasswordTicket;
struct TokenTicket;
struct ClientWebSocket;

class ClientConnection : private inspect::PipelineEvents {
  public:
    ClientConnection(Worker& worker, WorkerListener& listener);
    ~ClientConnection() override;

    // Takes the socket the worker accepted from `peer` (`admitted`: admission control already
    // counted it); false if it could not be set up (the object then deletes itself).
    bool accept(int fd, const proxy::Address& peer, bool admitted);

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
    enum class State { ProxyHeader, TlsHandshake, Open, Closing };
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

    // --- client transport: the one seam between the socket and MQTT. transportIn takes what
    // the socket read (TLS records or plain MQTT) and hands MQTT bytes to onClientPlaintext;
    // transportOut takes MQTT bytes for the client (flush: write now, else at the next
    // flushClient). A WebSocket layer wraps these two.
    void transportIn(const uint8_t* data, size_t len);
    void transportOut(const uint8_t* data, size_t len, bool flush);
    // The same below the WebSocket layer (HTTP answers, control frames, wrapped MQTT).
    void transportOutRaw(const uint8_t* data, size_t len, bool flush);
    void flushClient();
    static void onClientAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
    static void onClientRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
    static void onClientWritten(uv_stream_t* s, int status);
    void onClientPlaintext(const uint8_t* data, size_t len);
    size_t processClientPackets(const uint8_t* data, size_t len);
    inspect::ConnectContext connectContext() const;
    void sendToClient(const uint8_t* data, size_t len) { transportOut(data, len, true); }
    void queueToClient(const uint8_t* data, size_t len) { transportOut(data, len, false); }
    // After a write to the client: above the high-water mark, neither side is read.
    void checkClientQueue();
    void pauseClient(Pause why);
    void resumeClient(Pause why);

    // --- carrying out the pipeline's decisions. False: the connection is closing.
    bool execute(inspect::Action action);
    using Send = void (ClientConnection::*)(const uint8_t* data, size_t len);

    // --- WebSocket listeners (ClientWebSocket.cpp): one more byte layer between the
    // transport (TLS plaintext or the socket) and the frame splitter. The upgrade head is
    // judged first (within handshake_timeout, no broker yet); then client frames are unmasked
    // into onClientPlaintext and client-bound MQTT leaves in binary frames. It decides no MQTT
    // rule: every packet goes through the same pipeline as on a raw listener.
    void onClientStream(const uint8_t* data, size_t len);
    // False: the connection is closing (refused or not admitted). `used`: head bytes taken.
    bool wsUpgrade(const uint8_t* data, size_t len, size_t& used);
    // transportOut on a WebSocket listener: MQTT bytes in one binary frame (none before the
    // upgrade or after the close frame).
    void wsOut(const uint8_t* data, size_t len, bool flush);
    // closeAfterFlush: the close frame (its code from the reason noted), once.
    void wsSendClose();
    // The MQTT reason the connection ends for (first one noted wins): the close code.
    void wsNoteReason(uint8_t v5Reason);
    // An action that closes: the reason its CONNACK / DISCONNECT for the client carries.
    void wsNoteAction(const inspect::Action& a);
    // Both directions: a run of packets forwarded unchanged leaves as one write.
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
    bool follow(const inspect::Verdict& v, size_t off, size_t size, ForwardRun& run, Send onward,
                Send back);
    void syncTimer();  // the timer follows the pipeline's deadline

    // --- password check on the gateway's AuthPool (PasswordCheck.cpp): charged as a failure
    // when started, maybe delayed (identity under attack), queued, settled with the result.
    void startPasswordCheck(inspect::Job job);
    void submitPasswordCheck();
    void onPasswordChecked(int result);  // AuthPool::Result
    // Closing: a queued check is cancelled, a running one's result ignored (still settled).
    void abandonPasswordCheck();
    static void onAuthDelayTimer(uv_timer_t* t);

    // --- token check on the AuthPool (TokenCheck.cpp): a CONNECT's token or a v5 AUTH
    // re-authentication (Job::Kind::Token), answered through the pipeline's onJobDone.
    void startTokenCheck(inspect::Job job);
    void onTokenChecked(int result);  // AuthPool::Result
    void abandonTokenCheck();

    // --- backend side
    void connectBackend();
    static void onBackendConnected(uv_connect_t* req, int status);
    void onClosingBackendRead(ssize_t n);
    void onCloseTimer();
    static void onBackendAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
    static void onBackendRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
    static void onBackendWritten(uv_stream_t* s, int status);
    size_t processBrokerPackets(const uint8_t* data, size_t len);
    void sendToBackend(const uint8_t* data, size_t len);
    void pauseBackend();
    void resumeBackend();

    // --- timers and closing
    static void onTimer(uv_timer_t* t);
    static void onThrottleTimer(uv_timer_t* t);
    void armTimer(uint64_t ms);
    void closeAfterFlush();  // flush writes to the client, discard what it still sends, close
    void closeNow();
    static void onHandleClosed(uv_handle_t* h);
    static void onClientShutdown(uv_shutdown_t* req, int status);
    static void onBackendShutdown(uv_shutdown_t* req, int status);
    void closeBackendAfterFlush();
    void onClosingClientRead(ssize_t n);
    void closeWhenBufferedHandled();
    void finishClose();
    void maybeDelete();
    uint64_t now() const;

    // --- PipelineEvents: Gateway / Worker, with this connection's listener and address
    void audit(const char* event, const char* action, std::string_view topic, std::string_view rule,
               std::string_view reason, std::optional<uint64_t> count = {}) override;
    void warn(const std::string& message) override;
    void authzDenied(std::string_view action) override;
    void rateLimited(std::string_view limit) override;
    void protocolError(std::string_view reason) override;
    void authCounted(std::string_view method, bool success) override;
    void backendUnreachable() override;
    void backendConnack(bool arrived) override;
    bool addressBanned() override;
    bool identityBanned(const std::string& identity) override;
    void authFailed(std::string_view method, const std::string& identity) override;
    void loggedIn(const std::string& identity) override;
    void deniedTopic(std::string_view topic) override;
    void publishAdmitted(uint64_t nowMs) override;
    void shareKick(const std::string& identity, KickWhy why) override;
    inspect::OwnershipTable::Claim claimClientId(const std::string& clientId,
                                                 const std::string& identity) override;
    void releaseClientId(const std::string& clientId, const std::string& identity,
                         std::optional<uint32_t> sessionExpiry,
                         std::vector<std::string> subscriptions) override;
    void clientIdRefused() override;

    // A TLS handshake that failed or was abandoned (`why`): metrics and audit; a refused
    // certificate counts as a failed authentication, any other failure of a client that sent
    // bytes as a handshake failure towards its address's ban (Gateway::handshakeFailed).
    void onHandshakeFailed(const std::string& why);
    // The client certificate judged against `snapshot`'s CA bundle and CRL; nullopt when valid
    // or absent, else the X509 error text.
    std::optional<std::string> certificateProblem(const Snapshot& snapshot) const;
    const config::Config& config() const { return *snapshot_->config; }

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
    uv_timer_t throttleTimer_{};  // resumes a throttled client; delays a password check
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
    bool awaitingBrokerEof_ = false;  // our last bytes reached the broker's kernel; its hang-up
                                      // says it read them (see closeBackendAfterFlush)
    bool brokerOnly_ = false;         // the client side is closed; the broker side still flushes
    bool peerFinished_ = false;       // it closed cleanly behind packets buffered while paused
    bool lingering_ = false;          // closing on a client that still sends: wait for its hang-up
    bool admitted_ = false;           // counted by admission control; released on delete
    bool deniedAny_ = false;          // known to the topic-scan detector (forget it on close)
    uint64_t armedDeadline_ = 0;

    std::unique_ptr<tls::TlsSession> tls_;
    std::unique_ptr<ClientWebSocket> ws_;  // WebSocket listeners only
    uint64_t handshakeGeneration_ = 0;     // snapshot whose TLS context verified the certificate
    ByteBuffer clientIn_;                  // partial client packet(s) between reads
    ByteBuffer backendIn_;                 // partial broker packet(s)

    std::unique_ptr<inspect::ConnectionPipeline> pipeline_;
    std::shared_ptr<PasswordTicket> passwordTicket_;  // a check queued or running
    std::unique_ptr<AuthCharge> authCharge_;          // charged, not yet handed to the pool
    std::unique_ptr<inspect::Job> job_;               // the check charged / delayed
    std::shared_ptr<TokenTicket> tokenTicket_;        // a token check queued or running
    std::optional<metrics::PublishBaseline> publishBaseline_;  // publish_spike anomalies
    std::string anomalySubject_;                               // "client=<client id>"
};

}  // namespace moat::net
