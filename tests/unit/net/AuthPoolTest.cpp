// The password-check pool: every job reports exactly once; bans and deadlines are re-checked
// when a job's turn comes; a full queue refuses; cancel takes a queued job out; a long queue
// is served iteratively (finding 19.3).

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "gateway/net/AuthPool.h"

using moat::net::AuthPool;
using moat::policy::PasswordFile;
using R = AuthPool::Result;

namespace {

std::shared_ptr<const PasswordFile> passwords(int iterations = 1) {
    std::vector<std::string> errors;
    std::string line = "alice:" + moat::policy::hashPassword("pw", iterations) + "\n";
    auto f = PasswordFile::parse(line, "test", errors);
    REQUIRE(f);
    return std::make_shared<const PasswordFile>(std::move(*f));
}

struct Results {
    std::mutex m;
    std::condition_variable cv;
    std::map<uint64_t, std::vector<R>> byId;
    size_t count = 0;
    std::function<void(R)> sink(uint64_t id) {
        return [this, id](R r) {
            std::lock_guard lock(m);
            byId[id].push_back(r);
            ++count;
            cv.notify_all();
        };
    }
    bool waitFor(size_t n) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, std::chrono::seconds(60), [&] { return count >= n; });
    }
};

AuthPool::Job job(AuthPool& pool, Results& res, std::string ip, std::string password,
                  std::shared_ptr<const PasswordFile> pw) {
    AuthPool::Job j;
    j.id = pool.nextId();
    j.ip = std::move(ip);
    j.user = "alice";
    j.password = std::move(password);
    j.passwords = std::move(pw);
    j.done = res.sink(j.id);
    return j;
}

}  // namespace

TEST_CASE("checks run and report their verdict once", "[authpool]") {
    AuthPool pool(2, 16, nullptr);
    Results res;
    auto pw = passwords();
    auto good = job(pool, res, "10.0.0.1", "pw", pw);
    auto bad = job(pool, res, "10.0.0.2", "nope", pw);
    const uint64_t g = good.id, b = bad.id;
    pool.submit(std::move(good));
    pool.submit(std::move(bad));
    REQUIRE(res.waitFor(2));
    CHECK(res.byId[g] == std::vector<R>{R::Ok});
    CHECK(res.byId[b] == std::vector<R>{R::BadPassword});
}

TEST_CASE("a ban in force when the job's turn comes drops it unrun", "[authpool]") {
    AuthPool pool(1, 16, [](const std::string& ip) { return ip == "10.6.6.6"; });
    Results res;
    auto j = job(pool, res, "10.6.6.6", "pw", passwords());
    const uint64_t id = j.id;
    pool.submit(std::move(j));
    REQUIRE(res.waitFor(1));
    CHECK(res.byId[id] == std::vector<R>{R::Banned});
}

TEST_CASE("a deadline passed while waiting drops the job", "[authpool]") {
    AuthPool pool(1, 16, nullptr);
    Results res;
    auto j = job(pool, res, "10.0.0.1", "pw", passwords());
    j.deadline = AuthPool::Clock::now() - std::chrono::seconds(1);
    const uint64_t id = j.id;
    pool.submit(std::move(j));
    REQUIRE(res.waitFor(1));
    CHECK(res.byId[id] == std::vector<R>{R::Expired});
}

TEST_CASE("full queue refuses; queued jobs can be cancelled; stop cancels the rest", "[authpool]") {
    // One thread held by a blocking ban callback, so the queue fills deterministically.
    std::mutex gate;
    std::unique_lock hold(gate);
    std::atomic<int> asked{0};
    AuthPool pool(1, 2, [&](const std::string&) {
        ++asked;
        std::lock_guard wait(gate);
        return false;
    });
    Results res;
    auto pw = passwords();
    auto first = job(pool, res, "10.0.0.1", "pw", pw);
    pool.submit(std::move(first));
    while (asked.load() == 0) std::this_thread::yield();  // the thread holds job 1
    auto a = job(pool, res, "10.0.0.1", "pw", pw);
    auto b = job(pool, res, "10.0.0.1", "pw", pw);
    auto c = job(pool, res, "10.0.0.1", "pw", pw);
    const uint64_t ida = a.id, idb = b.id, idc = c.id;
    pool.submit(std::move(a));
    pool.submit(std::move(b));
    pool.submit(std::move(c));  // capacity 2: refused at once
    CHECK(res.byId[idc] == std::vector<R>{R::Refused});
    CHECK(pool.queued() == 2);
    CHECK(pool.cancel("10.0.0.1", ida));
    CHECK(res.byId[ida] == std::vector<R>{R::Cancelled});
    CHECK_FALSE(pool.cancel("10.0.0.1", ida));
    hold.unlock();
    REQUIRE(res.waitFor(4));  // job 1 and b ran
    pool.stop();
    CHECK(res.byId[idb] == std::vector<R>{R::Ok});
}

TEST_CASE("thousands of waiters are served without recursion, fair per address", "[authpool]") {
    // The single thread waits (in the ban check of the first job) until all are queued.
    std::mutex gate;
    std::unique_lock hold(gate);
    AuthPool pool(1, 5000, [&](const std::string&) {
        std::lock_guard wait(gate);
        return false;
    });
    Results res;
    auto pw = passwords();
    std::mutex orderMutex;
    std::vector<std::string> order;
    for (int i = 0; i < 4000; ++i) {
        std::string ip = i < 3999 ? "10.0.0.1" : "10.0.0.2";
        auto j = job(pool, res, ip, "pw", pw);
        auto sink = std::move(j.done);
        j.done = [&, sink, ip](R r) {
            {
                std::lock_guard lock(orderMutex);
                order.push_back(ip);
            }
            sink(r);
        };
        pool.submit(std::move(j));
    }
    hold.unlock();
    REQUIRE(res.waitFor(4000));
    // The one job of the quiet address was not served last, behind 3,999 others.
    auto pos = std::find(order.begin(), order.end(), "10.0.0.2") - order.begin();
    CHECK(pos <= 2);
}
