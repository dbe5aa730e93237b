// Application data: both directions, many records, records split at every byte offset,
// close_notify in both directions.
#include <catch2/catch.hpp>

#include "tests/unit/tls/TlsTestUtil.h"

using namespace moat::tls;
using namespace moat::tls::test;
using Status = TlsSession::Status;

namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 31 + seed);
    return v;
}

struct Pair {
    std::shared_ptr<TlsContext> server;
    SslCtxPtr cctx;
    std::unique_ptr<Client> c;
    std::unique_ptr<TlsSession> s;

    explicit Pair(int version, std::shared_ptr<TlsContext> srv) : server(std::move(srv)) {
        cctx = makeClientCtx("device1", version);
        c = std::make_unique<Client>(cctx.get());
        s = std::make_unique<TlsSession>(server->native());
        REQUIRE(pumpHandshake(*c, *s) == Status::Ok);
    }
};

}  // namespace

TEST_CASE("data both directions, many records") {
    auto server = makeServer(serverConfig());
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        Pair p(version, server);
        // Client to server: 50 writes of assorted sizes, one of them over several records.
        std::vector<uint8_t> sent;
        for (int i = 0; i < 50; ++i) {
            const auto chunk = pattern(i == 25 ? 70000 : size_t(i * 37 + 1), uint8_t(i));
            p.c->write(chunk);
            sent.insert(sent.end(), chunk.begin(), chunk.end());
        }
        const auto cipher = p.c->takeOutput();
        p.s->feed(cipher.data(), cipher.size());
        std::vector<uint8_t> got;
        REQUIRE(p.s->read(got) == Status::Ok);
        CHECK(got == sent);
        std::vector<uint8_t> none;
        CHECK(p.s->read(none) == Status::WantMore);
        CHECK(none.empty());

        // Server to client.
        std::vector<uint8_t> back;
        for (int i = 0; i < 30; ++i) {
            const auto chunk = pattern(i == 10 ? 100000 : size_t(i * 53 + 1), uint8_t(i + 7));
            REQUIRE(p.s->write(chunk.data(), chunk.size()) == Status::Ok);
            back.insert(back.end(), chunk.begin(), chunk.end());
        }
        // Drain through the zero-copy interface this time.
        std::vector<uint8_t> out;
        while (p.s->pendingOutput()) {
            const auto view = p.s->outputView();
            const size_t n = std::min<size_t>(view.size(), 1000);
            out.insert(out.end(), view.begin(), view.begin() + long(n));
            p.s->consumeOutput(n);
        }
        p.c->feed(out);
        CHECK(p.c->readAll() == back);
        CHECK(p.s->write(nullptr, 0) == Status::Ok);
    }
}

TEST_CASE("records split at every byte offset, and byte by byte") {
    auto server = makeServer(serverConfig());
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        const std::vector<std::vector<uint8_t>> msgs = {pattern(1, 1), pattern(40, 2),
                                                        pattern(3, 3)};
        std::vector<uint8_t> expected;
        for (const auto& m : msgs) expected.insert(expected.end(), m.begin(), m.end());

        // Measure the ciphertext once to know how many offsets there are.
        size_t cipherSize = 0;
        {
            Pair p(version, server);
            for (const auto& m : msgs) p.c->write(m);
            cipherSize = p.c->takeOutput().size();
        }
        REQUIRE(cipherSize > 0);
        for (size_t cut = 0; cut <= cipherSize; ++cut) {
            Pair p(version, server);
            for (const auto& m : msgs) p.c->write(m);
            const auto cipher = p.c->takeOutput();
            REQUIRE(cipher.size() == cipherSize);
            std::vector<uint8_t> got;
            p.s->feed(cipher.data(), cut);
            const Status first = p.s->read(got);
            CHECK((first == Status::Ok || first == Status::WantMore));
            p.s->feed(cipher.data() + cut, cipher.size() - cut);
            const Status second = p.s->read(got);
            CHECK((second == Status::Ok || (second == Status::WantMore && cut == cipherSize)));
            if (got != expected) FAIL("split at " << cut);
        }
        // Byte by byte.
        Pair p(version, server);
        for (const auto& m : msgs) p.c->write(m);
        const auto cipher = p.c->takeOutput();
        std::vector<uint8_t> got;
        for (uint8_t b : cipher) {
            p.s->feed(&b, 1);
            REQUIRE(p.s->read(got) != Status::Error);
        }
        CHECK(got == expected);
    }
}

TEST_CASE("close_notify from the client, then from the server") {
    auto server = makeServer(serverConfig());
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        {
            Pair p(version, server);
            p.c->write(pattern(10, 9));
            REQUIRE(SSL_shutdown(p.c->ssl()) >= 0);
            const auto cipher = p.c->takeOutput();
            p.s->feed(cipher.data(), cipher.size());
            std::vector<uint8_t> got;
            // The data before close_notify is delivered with the Closed status.
            CHECK(p.s->read(got) == Status::Closed);
            CHECK(got == pattern(10, 9));
            CHECK(p.s->read(got) == Status::Closed);  // sticky
            CHECK(p.s->handshake() == Status::Closed);
        }
        {
            Pair p(version, server);
            p.s->shutdown();
            p.s->shutdown();  // once
            const auto alert = takeAll(*p.s);
            CHECK_FALSE(alert.empty());
            p.c->feed(alert);
            bool closed = false;
            CHECK(p.c->readAll(&closed).empty());
            CHECK(closed);
        }
    }
}

TEST_CASE("corrupted record is a fatal error") {
    auto server = makeServer(serverConfig());
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        Pair p(version, server);
        p.c->write(pattern(100, 4));
        auto cipher = p.c->takeOutput();
        cipher[cipher.size() - 3] ^= 0x01;  // flips a tag bit
        p.s->feed(cipher.data(), cipher.size());
        std::vector<uint8_t> got;
        CHECK(p.s->read(got) == Status::Error);
        CHECK(got.empty());
        CHECK_FALSE(p.s->lastError().empty());
        CHECK(p.s->pendingOutput() > 0);  // the alert to send
    }
}

TEST_CASE("fed ciphertext is borrowed only until the next call") {
    // feed() keeps a view of the caller's buffer; whatever the next SSL call leaves over (a
    // partial record) must be copied before the caller reuses the buffer. Feed every chunk
    // from one scratch buffer and scribble over it after each call: any byte read from the
    // caller's memory too late corrupts the records and fails the session.
    auto server = makeServer(serverConfig());
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        for (size_t step : {size_t(1), size_t(5), size_t(7), size_t(300), size_t(4099)}) {
            CAPTURE(step);
            Pair p(version, server);
            std::vector<uint8_t> sent;
            for (int i = 0; i < 20; ++i) {
                const auto chunk = pattern(size_t(i * 97 + 3), uint8_t(i));
                p.c->write(chunk);
                sent.insert(sent.end(), chunk.begin(), chunk.end());
            }
            const auto cipher = p.c->takeOutput();
            // Two scratch buffers used in turn: after each feed() the other one may change
            // (this feed copied what was left of it), after each read() both may.
            std::vector<uint8_t> scratch[2] = {std::vector<uint8_t>(step),
                                               std::vector<uint8_t>(step)};
            std::vector<uint8_t> got;
            size_t turn = 0;
            for (size_t off = 0; off < cipher.size(); off += step, ++turn) {
                const size_t n = std::min(step, cipher.size() - off);
                std::vector<uint8_t>& mine = scratch[turn % 2];
                std::copy_n(cipher.begin() + off, n, mine.begin());
                p.s->feed(mine.data(), n);
                std::fill(scratch[(turn + 1) % 2].begin(), scratch[(turn + 1) % 2].end(), 0xAA);
                if (turn % 3 == 2) continue;  // sometimes two feeds before a read
                REQUIRE(p.s->read(got) != Status::Error);
                std::fill(mine.begin(), mine.end(), 0xAA);
            }
            REQUIRE(p.s->read(got) != Status::Error);
            CHECK(got == sent);
            CHECK(p.s->bufferedInput() == 0);
        }
    }
}
