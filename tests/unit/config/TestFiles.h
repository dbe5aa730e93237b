#pragma once
// Test helpers: a private temporary folder holding the files a configuration names, and
// loading a YAML text as if it were <dir>/moat.yaml.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gateway/config/Config.h"

namespace moat::config::test {

class TempDir {
  public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string templ = std::string(base && *base ? base : "/tmp") + "/moat-config-XXXXXX";
        std::vector<char> buf(templ.begin(), templ.end());
        buf.push_back('\0');
        if (::mkdtemp(buf.data()) == nullptr) std::abort();
        path_ = std::filesystem::canonical(buf.data()).string();
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

    // Writes `content` to <dir>/<rel>, creating folders on the way.
    std::string write(const std::string& rel, const std::string& content = "x\n") const {
        std::string full = *this / rel;
        std::filesystem::create_directories(std::filesystem::path(full).parent_path());
        std::ofstream(full, std::ios::binary) << content;
        return full;
    }
    std::string mkdir(const std::string& rel) const {
        std::string full = *this / rel;
        std::filesystem::create_directories(full);
        return full;
    }

    // The files CONTRACT.md §2's example names.
    void writeContractFiles() const {
        write("certs/server.pem");
        write("certs/server.key");
        write("certs/ca.pem");
        write("certs/ca.crl");
        write("passwd", "ops-console:$7$101$c2FsdA==$aGFzaA==\n");
        mkdir("keys");
    }

    LoadResult load(const std::string& yaml) const {
        return loadConfigString(yaml, *this / "moat.yaml");
    }

    // The errors of `yaml` as "LINE: message", after checking each names <dir>/moat.yaml.
    std::vector<std::string> errors(const std::string& yaml) const {
        LoadResult r = load(yaml);
        std::vector<std::string> out;
        for (const auto& e : r.errors) {
            out.push_back(e.file == *this / "moat.yaml" ? std::to_string(e.line) + ": " + e.message
                                                        : "WRONG FILE " + e.toString());
        }
        if (!r.errors.empty() && r.config) out.push_back("BUG: config returned with errors");
        if (r.errors.empty() && !r.config) out.push_back("BUG: no config and no errors");
        return out;
    }

  private:
    std::string path_;
};

// Raw string literals start with a newline so that the YAML's first line is line 1.
inline std::string yaml(const char* text) {
    std::string s = text;
    if (!s.empty() && s.front() == '\n') s.erase(0, 1);
    return s;
}

// A minimal valid config: plaintext listener, broker, one role. Sections are appended.
inline std::string minimal(const std::string& extra = "") {
    return "listeners:\n"
           "  - name: plain\n"
           "    bind: 127.0.0.1:1884\n"
           "backend:\n"
           "  address: 127.0.0.1:1883\n"
           "policy:\n"
           "  roles:\n"
           "    device:\n"
           "      publish: [\"a/#\"]\n" +
           extra;
}

}  // namespace moat::config::test
