#include "gateway/cluster/RedisClient.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <random>

#include "gateway/cluster/Backoff.h"

namespace moat::cluster {

namespace {

constexpr uint64_t kFirstBackoffMs = 200;
constexpr uint64_t kMaxBackoffMs = 5000;
constexpr uint64_t kPingEveryMs = 1000;
constexpr uint64_t kPingTimeoutMs = 3000;
// Connect + AUTH + SUBSCRIBE must complete within this (a Redis that accepts TCP and then
// says nothing would otherwise leave the client "connecting" forever).
constexpr uint64_t kConnectTimeoutMs = 3000;

// Redis is not trusted to answer small (a hostile or compromised server, or anything on the
// plaintext path to it): a reply larger than this, buffered unparsed, or an array with more
// elements, fails the connection instead of growing memory. Our largest legitimate replies
// are HGETALLs of another replica's connection hash (RemoteLimits: 200,000 pairs).
constexpr size_t kMaxBufferedReplyBytes = 64u << 20;
constexpr int kMaxReplyElements = 1 << 20;

// hiredis' own reply builders, with arrays bounded (a null object is a reader error: hiredis
// then drops the connection, and we reconnect).
redisReplyObjectFunctions* defaultReplyFunctions = nullptr;
void* boundedArray(const redisReadTask* task, int elements) {
    if (elements > kMaxReplyElements) return nullptr;
    return defaultReplyFunctions->createArray(task, elements);
}
redisReplyObjectFunctions boundedReplyFunctions;

void boundReplies(redisAsyncContext* ac) {
    if (defaultReplyFunctions == nullptr) {  // main loop only: no race
        defaultReplyFunctions = ac->c.reader->fn;
        boundedReplyFunctions = *defaultReplyFunctions;
        boundedReplyFunctions.createArray = boundedArray;
    }
    ac->c.reader->fn = &boundedReplyFunctions;
}

// hiredis' libuv adapter (hiredis/adapters/libuv.h, 0.14), but for the poll callback, which
// also bounds the unparsed bytes hiredis buffers (RedisClient::onPoll).
struct LibuvEvents {
    redisAsyncContext* context;
    uv_poll_t handle;
    int events;
};

void pollWith(LibuvEvents* p) {
    if (p->events)
        uv_poll_start(&p->handle, p->events, RedisClient::onPoll);
    else
        uv_poll_stop(&p->handle);
}
void addRead(void* d) {
    static_cast<LibuvEvents*>(d)->events |= UV_READABLE;
    pollWith(static_cast<LibuvEvents*>(d));
}
void delRead(void* d) {
    static_cast<LibuvEvents*>(d)->events &= ~UV_READABLE;
    pollWith(static_cast<LibuvEvents*>(d));
}
void addWrite(void* d) {
    static_cast<LibuvEvents*>(d)->events |= UV_WRITABLE;
    pollWith(static_cast<LibuvEvents*>(d));
}
void delWrite(void* d) {
    static_cast<LibuvEvents*>(d)->events &= ~UV_WRITABLE;
    pollWith(static_cast<LibuvEvents*>(d));
}
void cleanup(void* d) {
    auto* p = static_cast<LibuvEvents*>(d);
    p->context = nullptr;  // the context may no longer exist
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
             [](uv_handle_t* h) { delete static_cast<LibuvEvents*>(h->data); });
}

bool attach(redisAsyncContext* ac, uv_loop_t* loop) {
    if (ac->ev.data != nullptr) return false;
    auto* p = new LibuvEvents{ac, {}, 0};
    if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
        delete p;
        return false;
    }
    p->handle.data = p;
    ac->ev.addRead = addRead;
    ac->ev.delRead = delRead;
    ac->ev.addWrite = addWrite;
    ac->ev.delWrite = delWrite;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    boundReplies(ac);
    return true;
}

// What a command callback carries: the caller's function and the attempt it belongs to.
struct Pending {
    RedisClient::ReplyFn fn;
};

RedisClient* owner(const redisAsyncContext* ac) {
    return static_cast<RedisClient*>(ac->data);
}

// ms ± 20 % (withJitter), so replicas that lost Redis together do not return together.
uint64_t jittered(uint64_t ms) {
    static thread_local std::minstd_rand rng{std::random_device{}()};
    std::uniform_int_distribution<int> pct(-20, 20);
    return withJitter(ms, pct(rng));
}

}  // namespace

RedisClient::RedisClient(uv_loop_t* loop, std::string host, uint16_t port, std::string channel,
                         RedisAuth auth, RedisCallbacks callbacks)
    : loop_(loop),
      host_(std::move(host)),
      port_(port),
      channel_(std::move(channel)),
      auth_(std::move(auth)),
      callbacks_(std::move(callbacks)) {}

RedisClient::~RedisClient() {
    close();
}

void RedisClient::start() {
    if (started_) return;
    started_ = true;
    uv_timer_init(loop_, &reconnectTimer_);
    reconnectTimer_.data = this;
    uv_timer_init(loop_, &pingTimer_);
    pingTimer_.data = this;
    uv_timer_init(loop_, &failTimer_);
    failTimer_.data = this;
    uv_timer_start(&pingTimer_, onPingTimer, kPingEveryMs, kPingEveryMs);
    connect();
}

void RedisClient::close() {
    if (closed_) return;
    closed_ = true;
    up_ = false;
    freeContexts();
    if (started_) {
        for (auto* t : {&reconnectTimer_, &pingTimer_, &failTimer_}) {
            auto* h = reinterpret_cast<uv_handle_t*>(t);
            if (!uv_is_closing(h)) uv_close(h, nullptr);
        }
    }
}

void RedisClient::connect() {
    if (closed_) return;
    ++generation_;
    cmdConnected_ = subscribed_ = false;
    pingSentAt_ = 0;
    connectStartedAt_ = uv_now(loop_);
    for (redisAsyncContext** slot : {&cmd_, &sub_}) {
        redisAsyncContext* ac = redisAsyncConnect(host_.c_str(), port_);
        if (ac == nullptr) {
            fail("out of memory");
            return;
        }
        if (ac->err) {
            std::string why = ac->errstr;
            redisAsyncFree(ac);
            fail(why);
            return;
        }
        ac->data = this;
        *slot = ac;
        if (!attach(ac, loop_)) {
            fail("cannot attach to the event loop");
            return;
        }
        redisAsyncSetConnectCallback(ac, onConnected);
        redisAsyncSetDisconnectCallback(ac, onDisconnected);
    }
}

// Both connections go together: the state is only coherent with the subscription live.
void RedisClient::freeContexts() {
    for (redisAsyncContext** slot : {&cmd_, &sub_}) {
        redisAsyncContext* ac = *slot;
        if (!ac) continue;
        *slot = nullptr;
        // Callbacks that run during the free (null replies, the disconnect callback) see no
        // owner and do nothing but release what they carry.
        ac->data = nullptr;
        redisAsyncFree(ac);
    }
    cmdConnected_ = subscribed_ = false;
}

void RedisClient::fail(const std::string& why) {
    bool wasUp = up_;
    up_ = false;
    if (started_) uv_timer_stop(&failTimer_);  // a deferred failure of this attempt: done now
    pendingFailure_.clear();
    freeContexts();
    if (closed_) return;
    if (callbacks_.onDown) callbacks_.onDown(why, wasUp);
    scheduleReconnect();
}

void RedisClient::scheduleReconnect() {
    backoffMs_ = backoffMs_ == 0 ? kFirstBackoffMs : std::min(kMaxBackoffMs, backoffMs_ * 2);
    uv_timer_start(&reconnectTimer_, onReconnectTimer, jittered(backoffMs_), 0);
}

void RedisClient::onReconnectTimer(uv_timer_t* t) {
    auto* self = static_cast<RedisClient*>(t->data);
    if (!self->cmd_ && !self->sub_) self->connect();
}

void RedisClient::onConnected(const redisAsyncContext* ac, int status) {
    RedisClient* self = owner(ac);
    if (!self) return;
    if (status != REDIS_OK) {
        // hiredis frees this context after the callback returns.
        std::string why = ac->errstr[0] ? ac->errstr : "connect failed";
        if (self->cmd_ == ac) self->cmd_ = nullptr;
        if (self->sub_ == ac) self->sub_ = nullptr;
        const_cast<redisAsyncContext*>(ac)->data = nullptr;
        self->fail(why);
        return;
    }
    if (self->auth_.password.empty()) {
        self->ready(ac);
        return;
    }
    std::vector<const char*> argv{"AUTH"};
    std::vector<size_t> lens{4};
    if (!self->auth_.username.empty()) {
        argv.push_back(self->auth_.username.data());
        lens.push_back(self->auth_.username.size());
    }
    argv.push_back(self->auth_.password.data());
    lens.push_back(self->auth_.password.size());
    if (redisAsyncCommandArgv(const_cast<redisAsyncContext*>(ac), onAuth,
                              reinterpret_cast<void*>(static_cast<uintptr_t>(self->generation_)),
                              static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK)
        self->failSoon("AUTH failed");
}

void RedisClient::onAuth(redisAsyncContext* ac, void* r, void* priv) {
    RedisClient* self = owner(ac);
    auto generation = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(priv));
    auto* reply = static_cast<redisReply*>(r);
    if (!self || !reply || generation != self->generation_) return;
    if (reply->type == REDIS_REPLY_ERROR) {
        // e.g. "WRONGPASS invalid username-password pair or user is disabled"
        self->fail("AUTH refused: " + std::string(reply->str, reply->len));
        return;
    }
    self->ready(ac);
}

// Connected (and authenticated): the command connection is usable, the other subscribes.
void RedisClient::ready(const redisAsyncContext* ac) {
    if (ac == cmd_) {
        cmdConnected_ = true;
        maybeUp();
        return;
    }
    std::string subscribe = "SUBSCRIBE";
    const char* argv[] = {subscribe.c_str(), channel_.data()};
    size_t lens[] = {subscribe.size(), channel_.size()};
    if (redisAsyncCommandArgv(sub_, onSubscription, nullptr, 2, argv, lens) != REDIS_OK)
        failSoon("SUBSCRIBE failed");
}

void RedisClient::onPoll(uv_poll_t* handle, int status, int events) {
    auto* p = static_cast<LibuvEvents*>(handle->data);
    if (status != 0) return;
    if (p->context != nullptr && (events & UV_READABLE)) {
        redisAsyncHandleRead(p->context);
        const redisReader* r = p->context != nullptr ? p->context->c.reader : nullptr;
        if (r != nullptr && r->len - r->pos > kMaxBufferedReplyBytes) {
            RedisClient* self = owner(p->context);
            delRead(p);  // nothing more until the connection is dropped (next loop turn)
            if (self) self->failSoon("a Redis reply larger than 64 MiB");
            return;
        }
    }
    if (p->context != nullptr && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
}

// hiredis 0.14 runs the connect callback outside its "in a callback" guard, so freeing the
// context there (fail()) would free it under hiredis' feet: fail on the next loop turn.
void RedisClient::failSoon(const std::string& why) {
    if (closed_) return;
    pendingFailure_ = why;
    uv_timer_start(&failTimer_, onFailTimer, 0, 0);
}

void RedisClient::onFailTimer(uv_timer_t* t) {
    auto* self = static_cast<RedisClient*>(t->data);
    std::string why = std::move(self->pendingFailure_);
    if (self->cmd_ || self->sub_) self->fail(why);
}

void RedisClient::onDisconnected(const redisAsyncContext* ac, int) {
    RedisClient* self = owner(ac);
    if (!self) return;
    // hiredis frees this context after the callback returns.
    std::string why = ac->errstr[0] ? ac->errstr : "connection closed";
    if (self->cmd_ == ac) self->cmd_ = nullptr;
    if (self->sub_ == ac) self->sub_ = nullptr;
    const_cast<redisAsyncContext*>(ac)->data = nullptr;
    self->fail(why);
}

void RedisClient::onSubscription(redisAsyncContext* ac, void* r, void*) {
    RedisClient* self = owner(ac);
    auto* reply = static_cast<redisReply*>(r);
    if (!self || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply* kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING) return;
    std::string_view k(kind->str, kind->len);
    if (k == "subscribe") {
        self->subscribed_ = true;
        self->maybeUp();
    } else if (k == "message" && reply->element[2]->type == REDIS_REPLY_STRING) {
        if (self->up_ && self->callbacks_.onMessage)
            self->callbacks_.onMessage(
                std::string_view(reply->element[2]->str, reply->element[2]->len));
    }
}

void RedisClient::maybeUp() {
    if (up_ || !cmdConnected_ || !subscribed_) return;
    up_ = true;
    backoffMs_ = 0;
    if (callbacks_.onUp) callbacks_.onUp();
}

bool RedisClient::command(const std::vector<std::string>& argv, ReplyFn fn) {
    if (!up_ || !cmd_ || argv.empty()) return false;
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    ptrs.reserve(argv.size());
    lens.reserve(argv.size());
    for (const auto& a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
    }
    auto* pending = fn ? new Pending{std::move(fn)} : nullptr;
    if (redisAsyncCommandArgv(cmd_, pending ? onReply : nullptr, pending,
                              static_cast<int>(argv.size()), ptrs.data(),
                              lens.data()) != REDIS_OK) {
        delete pending;
        return false;
    }
    return true;
}

void RedisClient::onReply(redisAsyncContext* ac, void* r, void* priv) {
    std::unique_ptr<Pending> pending(static_cast<Pending*>(priv));
    // A null reply: the connection went away (or is being freed) before the answer came.
    auto* reply = owner(ac) ? static_cast<const redisReply*>(r) : nullptr;
    if (pending && pending->fn) pending->fn(reply);
}

void RedisClient::onPong(redisAsyncContext* ac, void* r, void* priv) {
    RedisClient* self = owner(ac);
    auto generation = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(priv));
    if (!self || !r || generation != self->generation_) return;
    self->pingSentAt_ = 0;
}

void RedisClient::onPingTimer(uv_timer_t* t) {
    auto* self = static_cast<RedisClient*>(t->data);
    uint64_t now = uv_now(self->loop_);
    if (!self->up_) {
        if ((self->cmd_ || self->sub_) && now - self->connectStartedAt_ >= kConnectTimeoutMs)
            self->fail("not connected within 3 s (connect, AUTH or SUBSCRIBE unanswered)");
        return;
    }
    if (!self->cmd_) return;
    if (self->pingSentAt_ != 0) {
        if (now - self->pingSentAt_ >= kPingTimeoutMs) self->fail("no answer to PING within 3 s");
        return;
    }
    self->pingSentAt_ = now;
    if (redisAsyncCommand(self->cmd_, onPong,
                          reinterpret_cast<void*>(static_cast<uintptr_t>(self->generation_)),
                          "PING") != REDIS_OK) {
        self->fail("PING failed");
    }
}

}  // namespace moat::cluster
