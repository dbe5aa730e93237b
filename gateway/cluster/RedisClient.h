#pragma once
// An asynchronous Redis client on a libuv loop (hiredis async + its libuv adapter), made for
// state that is nice to share but never worth waiting for:
//
// - two connections: one for commands, one SUBSCRIBEd to one channel (a subscribed Redis
//   connection cannot run other commands); each sends AUTH first when a password is set,
//   and a refused AUTH fails like a refused connect (Redis's answer is the reason given);
// - "up" only when both are connected and the subscription is confirmed;
// - any failure (refused, reset, a PING unanswered for 3 s or a connection not up within
//   3 s — hiredis 0.14 has no command timeouts) drops both connections, fails every pending command
//   with a null reply, reports down once, and retries with exponential backoff (200 ms doubling to
//   5 s, ±20 % jitter so replicas do not reconnect in lockstep);
// - command() never queues while down: it returns false, and the caller decides (the cluster
//   state resynchronises everything on the next up instead of replaying a backlog).
//
// Loop thread only. The host is resolved by hiredis with a blocking getaddrinfo() on the
// loop that runs this client (the gateway's main loop, never a worker loop).

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

struct redisAsyncContext;
struct redisReply;

namespace moat::cluster {

// Redis AUTH, sent first on each connection when `password` is set (`username`: a Redis 6
// ACL user; empty = the legacy single password).
struct RedisAuth {
    std::string username;
    std::string password;
};

struct RedisCallbacks {
    std::function<void()> onUp;
    // `wasUp`: false when a connection attempt failed without ever being up.
    std::function<void(const std::string& why, bool wasUp)> onDown;
    std::function<void(std::string_view payload)> onMessage;  // a message on the channel
};

class RedisClient {
  public:
    // The reply, or nullptr when the command failed (connection lost, client closed).
    using ReplyFn = std::function<void(const redisReply*)>;

    RedisClient(uv_loop_t* loop, std::string host, uint16_t port, std::string channel,
                RedisAuth auth, RedisCallbacks callbacks);
    ~RedisClient();
    RedisClient(const RedisClient&) = delete;
    RedisClient& operator=(const RedisClient&) = delete;

    void start();
    // Drops the connections and closes the timers; the object may be destroyed once the
    // loop has run the close callbacks (or after uv_run returns).
    void close();
    bool up() const { return up_; }

    // Sends one command (binary-safe arguments). False when not up: `fn` is then not called.
    bool command(const std::vector<std::string>& argv, ReplyFn fn = nullptr);

    // The socket poll of a connection (hiredis' libuv adapter, with the reply size bounded).
    static void onPoll(uv_poll_t* handle, int status, int events);

  private:
    void connect();
    void fail(const std::string& why);
    void freeContexts();
    void scheduleReconnect();
    void maybeUp();
    static void onConnected(const redisAsyncContext* ac, int status);
    static void onDisconnected(const redisAsyncContext* ac, int status);
    void ready(const redisAsyncContext* ac);
    void failSoon(const std::string& why);
    static void onFailTimer(uv_timer_t* t);
    static void onAuth(redisAsyncContext* ac, void* reply, void* priv);
    static void onSubscription(redisAsyncContext* ac, void* reply, void* priv);
    static void onReply(redisAsyncContext* ac, void* reply, void* priv);
    static void onPong(redisAsyncContext* ac, void* reply, void* priv);
    static void onReconnectTimer(uv_timer_t* t);
    static void onPingTimer(uv_timer_t* t);

    uv_loop_t* loop_;
    std::string host_;
    uint16_t port_;
    std::string channel_;
    RedisAuth auth_;
    RedisCallbacks callbacks_;

    redisAsyncContext* cmd_ = nullptr;
    redisAsyncContext* sub_ = nullptr;
    bool cmdConnected_ = false;
    bool subscribed_ = false;
    bool up_ = false;
    bool closed_ = false;
    bool started_ = false;
    uint64_t backoffMs_ = 0;
    uint64_t pingSentAt_ = 0;        // uv_now of the PING in flight; 0 when none
    uint64_t connectStartedAt_ = 0;  // uv_now of the current connection attempt
    std::string pendingFailure_;     // failSoon()'s reason
    uint32_t generation_ = 0;        // bumped per connection attempt: stale replies are ignored

    uv_timer_t reconnectTimer_{};
    uv_timer_t pingTimer_{};
    uv_timer_t failTimer_{};
};

}  // namespace moat::cluster
