#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "policy/Base64.h"
#include "policy/PasswordFile.h"

using namespace moat::policy;

namespace {

class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/moat-policy-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

std::string readAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void writeAll(const std::string& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
}

std::string findTool(const std::string& name) {
    for (const char* dir : {"/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/"}) {
        const std::string p = dir + name;
        if (::access(p.c_str(), X_OK) == 0) return p;
    }
    return {};
}

int run(const std::string& command) {
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::optional<PasswordFile> parseOk(const std::string& content) {
    std::vector<std::string> errors;
    auto file = PasswordFile::parse(content, "pw", errors);
    INFO((errors.empty() ? std::string() : errors.front()));
    REQUIRE(errors.empty());
    REQUIRE(file);
    return file;
}

// A `$7$` line built independently of PasswordFile, e.g. in Mosquitto 2.1's layout.
std::string pbkdf2Line(const std::string& user, const std::string& password, int iterations,
                       const std::vector<unsigned char>& salt) {
    unsigned char hash[64];
    REQUIRE(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                              static_cast<int>(salt.size()), iterations, EVP_sha512(), 64,
                              hash) == 1);
    return user + ":$7$" + std::to_string(iterations) + "$" +
           base64Encode(salt.data(), salt.size()) + "$" + base64Encode(hash, 64);
}

}  // namespace

TEST_CASE("base64 round trip and strictness", "[password]") {
    std::vector<unsigned char> out;
    for (size_t n = 0; n < 70; ++n) {
        std::vector<unsigned char> data(n);
        for (size_t i = 0; i < n; ++i) data[i] = static_cast<unsigned char>(i * 37 + n);
        const std::string enc = base64Encode(data.data(), data.size());
        CHECK(enc.size() % 4 == 0);
        REQUIRE(base64Decode(enc, out));
        CHECK(out == data);
    }
    CHECK(base64Decode("TWFu", out));
    CHECK(std::string(out.begin(), out.end()) == "Man");
    CHECK(base64Decode("TWE=", out));
    CHECK(base64Decode("TWE", out));         // padding optional
    CHECK_FALSE(base64Decode("TWF=", out));  // non-zero tail bits
    CHECK_FALSE(base64Decode("T", out));
    CHECK_FALSE(base64Decode("TW E", out));
    CHECK_FALSE(base64Decode("TW=E", out));
    CHECK_FALSE(base64Decode("TWE==", out));
    CHECK_FALSE(base64Decode("TW-_", out));
}

TEST_CASE("PasswordFile: parse and verify", "[password]") {
    std::vector<unsigned char> salt12(12, 7), salt64(64);
    for (size_t i = 0; i < salt64.size(); ++i) salt64[i] = static_cast<unsigned char>(i);
    const std::string content = "# comment\n\n" + pbkdf2Line("alice", "secret", 101, salt12) +
                                "\r\n" + "  " + pbkdf2Line("bob", "hunter2", 1000, salt64) +
                                "  \n" + "carol:" + hashPassword("pw3", 5) + "\n";
    auto file = parseOk(content);
    REQUIRE(file->entries().size() == 3);
    CHECK(file->entries()[0].user == "alice");
    CHECK(file->entries()[0].kind == PasswordFile::Entry::Pbkdf2Sha512);
    CHECK(file->entries()[0].iterations == 101);
    CHECK(file->entries()[0].line == 3);
    CHECK(file->entries()[1].user == "bob");
    CHECK(file->entries()[1].iterations == 1000);
    CHECK(file->entries()[2].iterations == 5);

    CHECK(file->verify("alice", "secret") == PasswordFile::Verify::Ok);
    CHECK(file->verify("alice", "Secret") == PasswordFile::Verify::BadPassword);
    CHECK(file->verify("alice", "") == PasswordFile::Verify::BadPassword);
    // NUL never verifies (HMAC zero-pads keys, so PBKDF2 alone would accept "secret\0").
    CHECK(file->verify("alice", std::string_view("secret\0", 7)) ==
          PasswordFile::Verify::BadPassword);
    CHECK(file->verify("alice", std::string_view("secret\0x", 8)) ==
          PasswordFile::Verify::BadPassword);
    CHECK(file->verify("bob", "hunter2") == PasswordFile::Verify::Ok);
    CHECK(file->verify("carol", "pw3") == PasswordFile::Verify::Ok);
    CHECK(file->verify("dave", "secret") == PasswordFile::Verify::UnknownUser);
    CHECK(file->verify("", "") == PasswordFile::Verify::UnknownUser);
    CHECK(file->hasUser("bob"));
    CHECK_FALSE(file->hasUser("Bob"));
}

TEST_CASE("PasswordFile: $6$ (salted SHA-512)", "[password]") {
    const std::vector<unsigned char> salt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const std::string password = "legacy";
    unsigned char hash[64];
    unsigned int len = 0;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr);
    EVP_DigestUpdate(ctx, password.data(), password.size());
    EVP_DigestUpdate(ctx, salt.data(), salt.size());
    EVP_DigestFinal_ex(ctx, hash, &len);
    EVP_MD_CTX_free(ctx);
    const std::string line =
        "old:$6$" + base64Encode(salt.data(), salt.size()) + "$" + base64Encode(hash, 64) + "\n";
    auto file = parseOk(line);
    CHECK(file->entries()[0].kind == PasswordFile::Entry::Sha512);
    CHECK(file->verify("old", "legacy") == PasswordFile::Verify::Ok);
    CHECK(file->verify("old", "legacy2") == PasswordFile::Verify::BadPassword);
    CHECK(file->verify("new", "legacy") == PasswordFile::Verify::UnknownUser);
}

TEST_CASE("PasswordFile: malformed files are rejected with file:line messages", "[password]") {
    const std::string good = "ok:" + hashPassword("x", 3);
    struct Case {
        std::string line;
        std::string expect;
    };
    const Case cases[] = {
        {"nocolon", "expected user:hash"},
        {":" + good.substr(3), "empty user name"},
        {"u:plaintext", "not a Mosquitto password hash"},
        {"u:", "not a Mosquitto password hash"},
        {"u:$7$", "malformed $7$ hash"},
        {"u:$7$abc$AAAA$AAAA", "iteration count is not a positive integer"},
        {"u:$7$0$AAAA$AAAA", "iteration count is not a positive integer"},
        {"u:$7$-1$AAAA$AAAA", "iteration count is not a positive integer"},
        {"u:$7$99999999999$AAAA$AAAA", "iteration count is not a positive integer"},
        {"u:$7$10000001$AAAA$AAAA", "iteration count above"},
        {"u:$7$10$AAAA", "malformed hash"},
        {"u:$7$10$!!!!$AAAA", "bad base64 salt"},
        {"u:$7$10$$AAAA", "bad base64 salt"},
        {"u:$7$10$AAAA$AAAA", "hash is not 64 bytes"},
        {"u:$6$AAAA$" + std::string(84, 'A') + "==x", "hash is not 64 bytes"},
        {"u:$argon2id$v=19$m=47104,t=1,p=1$c2FsdA$aGFzaA", "argon2id hashes are not supported"},
        {"u:$5$AAAA$AAAA", "not a Mosquitto password hash"},
    };
    for (const Case& c : cases) {
        INFO(c.line);
        std::vector<std::string> errors;
        auto file = PasswordFile::parse(good + "\n#c\n" + c.line + "\n", "passwd", errors);
        CHECK_FALSE(file);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].rfind("passwd:3: ", 0) == 0);
        CHECK(errors[0].find(c.expect) != std::string::npos);
    }

    std::vector<std::string> errors;
    CHECK_FALSE(PasswordFile::parse(good + "\n" + good + "\n", "f", errors));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "f:2: user \"ok\" already defined on line 1");

    errors.clear();
    CHECK_FALSE(PasswordFile::load("/nonexistent/moat/passwd", errors));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].rfind("/nonexistent/moat/passwd: cannot read", 0) == 0);

    errors.clear();
    auto empty = PasswordFile::parse("", "e", errors);
    REQUIRE(empty);
    CHECK(empty->entries().empty());
    CHECK(empty->verify("a", "b") == PasswordFile::Verify::UnknownUser);
}

TEST_CASE("hashPassword writes verifiable $7$ strings", "[password]") {
    const std::string h = hashPassword("pa:ss word");
    REQUIRE(h.rfind("$7$" + std::to_string(kDefaultPbkdf2Iterations) + "$", 0) == 0);
    CHECK(h.size() == 3 + 4 + 1 + 16 + 1 + 88);  // 12-byte salt, 64-byte hash
    CHECK(hashPassword("pa:ss word") != h);      // fresh salt each time
    CHECK(hashPassword("x", 0).rfind("$7$" + std::to_string(kDefaultPbkdf2Iterations), 0) == 0);
    CHECK(hashPassword("x", kMaxPbkdf2Iterations + 1).empty());
    auto file = parseOk("u:" + h + "\n");
    CHECK(file->verify("u", "pa:ss word") == PasswordFile::Verify::Ok);
    CHECK(file->verify("u", "pa:ss word ") == PasswordFile::Verify::BadPassword);
}

TEST_CASE("PasswordFile: concurrent verify", "[password]") {
    std::string content;
    for (int i = 0; i < 8; ++i) {
        content += "u" + std::to_string(i) + ":" + hashPassword("p" + std::to_string(i), 50) + "\n";
    }
    const auto file = parseOk(content);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int n = 0; n < 40; ++n) {
                const int i = (n + t) % 8;
                const std::string user = "u" + std::to_string(i);
                if (file->verify(user, "p" + std::to_string(i)) != PasswordFile::Verify::Ok) {
                    ++failures;
                }
                if (file->verify(user, "wrong") != PasswordFile::Verify::BadPassword) ++failures;
                if (file->verify("ghost", "p") != PasswordFile::Verify::UnknownUser) ++failures;
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
}

TEST_CASE("setPasswordInFile", "[password]") {
    TempDir dir;
    const std::string path = dir.file("passwd");
    std::string error;

    REQUIRE(setPasswordInFile(path, "alice", "one", error));
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    // Keep comments, other users and their order; replace in place; drop later duplicates.
    const std::string bobLine = "bob:" + hashPassword("bob", 3);
    writeAll(path, "# users\n" + readAll(path) + bobLine + "\n\n  alice : $6$junk\n");
    REQUIRE(setPasswordInFile(path, "alice", "two", error));
    REQUIRE(setPasswordInFile(path, "carol", "three", error));
    const std::string content = readAll(path);
    CHECK(content.rfind("# users\nalice:$7$", 0) == 0);
    CHECK(content.find("\n" + bobLine + "\n\n") != std::string::npos);
    CHECK(content.find("junk") == std::string::npos);
    CHECK(content.find("\ncarol:$7$") != std::string::npos);
    CHECK(content.back() == '\n');

    std::vector<std::string> errors;
    auto file = PasswordFile::load(path, errors);
    REQUIRE(file);
    CHECK(file->entries().size() == 3);
    CHECK(file->verify("alice", "two") == PasswordFile::Verify::Ok);
    CHECK(file->verify("alice", "one") == PasswordFile::Verify::BadPassword);
    CHECK(file->verify("bob", "bob") == PasswordFile::Verify::Ok);
    CHECK(file->verify("carol", "three") == PasswordFile::Verify::Ok);

    for (std::string bad : {"", "a:b", " lead", "trail ", "#x", "a\nb"}) {
        INFO("user '" << bad << "'");
        CHECK_FALSE(setPasswordInFile(path, bad, "pw", error));
        CHECK_FALSE(error.empty());
    }
    CHECK_FALSE(setPasswordInFile(path, "dave", "", error));
    CHECK_FALSE(setPasswordInFile(path, "dave", std::string_view("a\0b", 3), error));
    CHECK_FALSE(setPasswordInFile(dir.file("missing-dir/passwd"), "dave", "pw", error));
    CHECK(readAll(path) == content);  // failures leave the file alone
}

namespace {

std::vector<std::string> folderEntries(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (const dirent* e = ::readdir(d))
            if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
                out.push_back(e->d_name);
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("setPasswordInFile: a symlinked file keeps its link, mode, owner and group",
          "[password]") {
    // Issue 18.9: the file was replaced by a 0600 regular file owned by the caller, in place
    // of the link: the gateway's group lost read access and the link its target.
    TempDir dir;
    REQUIRE(::mkdir(dir.file("real").c_str(), 0755) == 0);
    REQUIRE(::mkdir(dir.file("etc").c_str(), 0755) == 0);
    const std::string target = dir.file("real/passwd");
    writeAll(target, "bob:" + hashPassword("bob", 3) + "\n");
    REQUIRE(::chmod(target.c_str(), 0640) == 0);
    // A group the caller is in (root: any), so the group must be kept, not just allowed.
    const gid_t group = ::geteuid() == 0 ? 65534 : ::getegid();
    REQUIRE(::chown(target.c_str(), ::geteuid(), group) == 0);
    const std::string link = dir.file("etc/passwd");
    REQUIRE(::symlink("../real/passwd", link.c_str()) == 0);
    // A link to a link: the end of the chain is what gets replaced.
    const std::string link2 = dir.file("passwd-link");
    REQUIRE(::symlink("etc/passwd", link2.c_str()) == 0);

    std::string error;
    REQUIRE(setPasswordInFile(link, "alice", "one", error));
    REQUIRE(setPasswordInFile(link2, "carol", "two", error));

    struct stat st {};
    REQUIRE(::lstat(link.c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    char buf[256] = {};
    REQUIRE(::readlink(link.c_str(), buf, sizeof buf - 1) > 0);
    CHECK(std::string(buf) == "../real/passwd");
    REQUIRE(::lstat(link2.c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    REQUIRE(::stat(target.c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK((st.st_mode & 07777) == 0640);
    CHECK(st.st_uid == ::geteuid());
    CHECK(st.st_gid == group);
    std::vector<std::string> errors;
    auto file = PasswordFile::load(target, errors);
    REQUIRE(file);
    CHECK(file->verify("alice", "one") == PasswordFile::Verify::Ok);
    CHECK(file->verify("bob", "bob") == PasswordFile::Verify::Ok);
    CHECK(file->verify("carol", "two") == PasswordFile::Verify::Ok);
    // No temporary file left behind, in either folder.
    CHECK(folderEntries(dir.file("real")) == std::vector<std::string>{"passwd"});
    CHECK(folderEntries(dir.file("etc")) == std::vector<std::string>{"passwd"});

    // A dangling link is refused rather than creating a file wherever it points.
    const std::string dangling = dir.file("dangling");
    REQUIRE(::symlink("real/nothing", dangling.c_str()) == 0);
    CHECK_FALSE(setPasswordInFile(dangling, "alice", "x", error));
    CHECK(::access(dir.file("real/nothing").c_str(), F_OK) != 0);
}

TEST_CASE("setPasswordInFile: a caller who cannot keep the owner replaces nothing", "[password]") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root to act as another user");
        return;
    }
    TempDir dir;
    REQUIRE(::chmod(dir.file("").c_str(), 0777) == 0);  // anyone may create and rename here
    const std::string path = dir.file("passwd");
    writeAll(path, "bob:" + hashPassword("bob", 3) + "\n");
    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    const std::string content = readAll(path);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // As nobody: the folder lets it rename, but the file is root's.
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
        std::string err;
        ::_exit(setPasswordInFile(path, "mallory", "x", err) ? 1 : 0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // refused
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(st.st_uid == 0);
    CHECK((st.st_mode & 07777) == 0644);
    CHECK(readAll(path) == content);
    CHECK(folderEntries(dir.file("")) == std::vector<std::string>{"passwd"});
}

TEST_CASE("setPasswordInFile: concurrent writers never lose an update", "[password]") {
    TempDir dir;
    const std::string path = dir.file("passwd");
    constexpr int kWriters = 4, kUsers = 6;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kWriters; ++t) {
        threads.emplace_back([&, t] {
            std::string err;
            for (int u = 0; u < kUsers; ++u)
                if (!setPasswordInFile(path, "u" + std::to_string(t) + "-" + std::to_string(u),
                                       "pw", err))
                    ++failures;
        });
    }
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    std::vector<std::string> errors;
    auto file = PasswordFile::load(path, errors);
    REQUIRE(file);
    CHECK(file->entries().size() == size_t(kWriters * kUsers));
    CHECK(folderEntries(dir.file("")) == std::vector<std::string>{"passwd"});
}

TEST_CASE("PasswordFile: entries written by mosquitto_passwd", "[password][mosquitto]") {
    const std::string tool = findTool("mosquitto_passwd");
    if (tool.empty()) {
        WARN("mosquitto_passwd not installed: skipped");
        return;
    }
    TempDir dir;
    const std::string path = dir.file("passwd");
    REQUIRE(run(tool + " -c -b " + path + " alice 'al ice' 2>/dev/null") == 0);
    REQUIRE(run(tool + " -b " + path + " bob b0b 2>/dev/null") == 0);
    // Older (`$6$`) and tuned (`-I`) variants, where this mosquitto_passwd supports them.
    const bool sha512 = run(tool + " -H sha512 -b " + path + " carol c4rol >/dev/null 2>&1") == 0;
    const bool iters =
        run(tool + " -H sha512-pbkdf2 -I 2000 -b " + path + " dave d4ve >/dev/null 2>&1") == 0;

    std::vector<std::string> errors;
    auto file = PasswordFile::load(path, errors);
    INFO(readAll(path));
    REQUIRE(errors.empty());
    REQUIRE(file);
    CHECK(file->verify("alice", "al ice") == PasswordFile::Verify::Ok);
    CHECK(file->verify("alice", "alice") == PasswordFile::Verify::BadPassword);
    CHECK(file->verify("bob", "b0b") == PasswordFile::Verify::Ok);
    CHECK(file->entries()[0].kind == PasswordFile::Entry::Pbkdf2Sha512);
    if (sha512) {
        CHECK(file->verify("carol", "c4rol") == PasswordFile::Verify::Ok);
        CHECK(file->entries()[2].kind == PasswordFile::Entry::Sha512);
    }
    if (iters) {
        CHECK(file->verify("dave", "d4ve") == PasswordFile::Verify::Ok);
        CHECK(file->entries().back().iterations == 2000);
    }
}

namespace {

uint16_t freeLoopbackPort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

bool canConnect(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

// A mosquitto broker child process, killed (by its pid) when this goes out of scope.
class Broker {
  public:
    Broker(const std::string& binary, const std::string& config) {
        pid_ = ::fork();
        if (pid_ == 0) {
            // Quiet: as root it warns on stderr; its own logging is off in the config.
            if (FILE* null = std::freopen("/dev/null", "w", stderr)) (void)null;
            ::execl(binary.c_str(), binary.c_str(), "-c", config.c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    ~Broker() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
    }
    bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

  private:
    pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("hashPassword output is accepted by a real mosquitto broker", "[password][mosquitto]") {
    const std::string broker = findTool("mosquitto");
    const std::string pub = findTool("mosquitto_pub");
    if (broker.empty() || pub.empty()) {
        WARN("mosquitto / mosquitto_pub not installed: skipped");
        return;
    }
    TempDir dir;
    const std::string passwd = dir.file("passwd");
    std::string error;
    REQUIRE(setPasswordInFile(passwd, "moat-user", "s3cret pass", error));
    // Mosquitto 2.0 accepts any iteration count; also check a non-default one.
    writeAll(passwd, readAll(passwd) + "other:" + hashPassword("other", 101) + "\n");

    const uint16_t port = freeLoopbackPort();
    const std::string config = dir.file("mosquitto.conf");
    // `user root`: when the tests run as root, keep mosquitto from dropping privileges to an
    // account that could not read the 0600 password file.
    writeAll(config, "listener " + std::to_string(port) +
                         " 127.0.0.1\n"
                         "allow_anonymous false\n"
                         "password_file " +
                         passwd + "\n" + (::geteuid() == 0 ? "user root\n" : "") +
                         "persistence false\nlog_dest none\n");

    Broker b(broker, config);
    bool up = false;
    for (int i = 0; i < 200 && !up; ++i) {  // readiness wait, not a timing assertion
        up = canConnect(port);
        if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(25));
        if (!b.alive()) break;
    }
    REQUIRE(up);

    auto publish = [&](const std::string& user, const std::string& password) {
        return run(pub + " -h 127.0.0.1 -p " + std::to_string(port) + " -i moat-test -u '" + user +
                   "' -P '" + password + "' -t moat/test -m hello >/dev/null 2>&1");
    };
    CHECK(publish("moat-user", "s3cret pass") == 0);
    CHECK(publish("other", "other") == 0);
    CHECK(publish("moat-user", "wrong") != 0);
    CHECK(publish("nobody", "s3cret pass") != 0);
}
