// Entry points: file/string -> validated Config, or the full list of problems.
// yaml-cpp reports syntax errors by exception; they are caught here and turned into
// ConfigErrors, so nothing escapes the library.

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/config/Config.h"
#include "gateway/config/FileCheck.h"
#include "gateway/config/Parse.h"

namespace moat::config {
namespace {

namespace fs = std::filesystem;
using detail::Diagnostics;
using detail::Field;
using detail::LoadContext;
using detail::MapReader;

// A configuration is a few kilobytes; anything this large is a mistake (or /dev/zero).
constexpr std::streamoff kMaxConfigBytes = 16 * 1024 * 1024;

std::string absolutePath(const std::string& path) {
    std::error_code ec;
    fs::path abs = fs::absolute(fs::path(path), ec);
    if (ec) return path;
    return abs.lexically_normal().string();
}

// A required key absent from the top level: point at the first line of the file.
void missingTopLevel(Diagnostics& d, std::string_view key) {
    d.error(1, "missing required key '" + std::string(key) + "' at top level");
}

// Opens section `key` of the root mapping and hands it to `parse`; null sections read as
// empty ("metrics:" with everything commented out keeps the defaults).
template <class Fn>
bool withSection(LoadContext& ctx, MapReader& root, std::string_view key, Fn&& parse) {
    auto f = root.take(key);
    if (!f) return false;
    if (auto m = detail::openMap(ctx.diag, *f, true)) parse(*m);
    return true;
}

void parseRoot(LoadContext& ctx, const YAML::Node& root, Config& cfg) {
    Diagnostics& d = ctx.diag;
    if (!root.IsMap()) {
        if (root.IsNull()) {
            d.error(1,
                    "the configuration is empty (expected a mapping with listeners, backend "
                    "and policy)");
        } else {
            d.error(std::max(1, detail::lineOf(root)),
                    "the configuration must be a mapping of sections, not a list or a value");
        }
        return;
    }
    MapReader m(d, root, "", 1);
    if (auto f = m.take("listeners")) {
        detail::parseListeners(ctx, *f, cfg.listeners);
    } else {
        missingTopLevel(d, "listeners");
    }
    bool backend = withSection(ctx, m, "backend",
                               [&](MapReader& s) { detail::parseBackend(ctx, s, cfg.backend); });
    if (!backend) missingTopLevel(d, "backend");
    withSection(ctx, m, "auth", [&](MapReader& s) { detail::parseAuth(ctx, s, cfg.auth); });
    bool policy = withSection(ctx, m, "policy",
                              [&](MapReader& s) { detail::parsePolicy(ctx, s, cfg.policy); });
    if (!policy) missingTopLevel(d, "policy");
    withSection(ctx, m, "limits", [&](MapReader& s) { detail::parseLimits(ctx, s, cfg.limits); });
    withSection(ctx, m, "bans", [&](MapReader& s) { detail::parseBans(ctx, s, cfg.bans); });
    withSection(ctx, m, "integrity",
                [&](MapReader& s) { detail::parseIntegrity(ctx, s, cfg.integrity); });
    withSection(ctx, m, "cluster",
                [&](MapReader& s) { detail::parseCluster(ctx, s, cfg.cluster); });
    withSection(ctx, m, "metrics",
                [&](MapReader& s) { detail::parseMetrics(ctx, s, cfg.metrics); });
    withSection(ctx, m, "audit", [&](MapReader& s) { detail::parseAudit(ctx, s, cfg.audit); });
    withSection(ctx, m, "anomaly",
                [&](MapReader& s) { detail::parseAnomaly(ctx, s, cfg.anomaly); });
    withSection(ctx, m, "tuning", [&](MapReader& s) { detail::parseTuning(ctx, s, cfg.tuning); });
    m.finish();
    // Cross-section checks on a half-read config would mostly repeat earlier errors.
    if (d.count() == 0) detail::validateCrossSection(ctx, cfg);
}

LoadResult finish(Diagnostics& d, std::shared_ptr<Config> cfg) {
    LoadResult r;
    r.errors = d.take();
    if (r.errors.empty()) r.config = std::move(cfg);
    return r;
}

// Finds where a second YAML document starts, if there is one, by replaying the parser's
// events into nothing. YAML::LoadAll is not used: on some malformed input yaml-cpp 0.7 keeps
// reporting empty documents forever, and LoadAll collects them until memory runs out.
class DocumentCounter : public YAML::EventHandler {
  public:
    void OnDocumentStart(const YAML::Mark& mark) override { start_ = mark; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}

    // 1-based line of the second document, or 0 when the text holds at most one.
    static int secondDocumentLine(const std::string& yaml) {
        std::istringstream in(yaml);
        YAML::Parser parser(in);
        DocumentCounter counter;
        if (!parser.HandleNextDocument(counter)) return 0;
        if (!parser.HandleNextDocument(counter)) return 0;
        return counter.start_.line >= 0 ? counter.start_.line + 1 : 1;
    }

  private:
    YAML::Mark start_ = YAML::Mark::null_mark();
};

LoadResult loadImpl(const std::string& yaml, const std::string& absPath) {
    Diagnostics d(absPath);
    auto cfg = std::make_shared<Config>();
    cfg->path = absPath;
    LoadContext ctx{d, fs::path(absPath).parent_path().string()};
    YAML::Node root;
    try {
        root = YAML::Load(yaml);
        if (int line = DocumentCounter::secondDocumentLine(yaml)) {
            d.error(std::max(1, line),
                    "more than one YAML document ('---'): a configuration is a single document");
            return finish(d, nullptr);
        }
    } catch (const YAML::Exception& e) {
        // yaml-cpp's messages are lower-case phrases ("end of map not found"): prefix them.
        d.error(e.mark.line >= 0 ? e.mark.line + 1 : 0, "YAML syntax error: " + e.msg);
        return finish(d, nullptr);
    }
    parseRoot(ctx, root, *cfg);
    return finish(d, std::move(cfg));
}

}  // namespace

std::string ConfigError::toString() const {
    std::string out = file;
    out += ':';
    if (line > 0) {
        out += std::to_string(line);
        out += ':';
    }
    out += ' ';
    out += message;
    return out;
}

LoadResult loadConfigString(const std::string& yaml, const std::string& path) {
    const std::string absPath = absolutePath(path);
    // Readers catch what they expect; this is the last line so that no exception (yaml-cpp
    // internals, bad_alloc) ever leaves the library.
    try {
        return loadImpl(yaml, absPath);
    } catch (const std::exception& e) {
        return LoadResult{nullptr,
                          {ConfigError{absPath, 0, std::string("cannot load: ") + e.what()}}};
    } catch (...) {
        return LoadResult{nullptr, {ConfigError{absPath, 0, "cannot load: unknown error"}}};
    }
}

LoadResult loadConfigFile(const std::string& path) {
    const std::string absPath = absolutePath(path);
    auto fail = [&](const std::string& why) {
        return LoadResult{nullptr,
                          {ConfigError{absPath, 0, "cannot read the configuration: " + why}}};
    };
    std::string reason = detail::unreadableReason(absPath);
    if (!reason.empty()) return fail(reason);
    try {
        std::ifstream in(absPath, std::ios::binary);
        if (!in) return fail(std::strerror(errno));
        std::string text;
        char buf[64 * 1024];
        while (in.read(buf, sizeof buf) || in.gcount() > 0) {
            text.append(buf, static_cast<size_t>(in.gcount()));
            if (static_cast<std::streamoff>(text.size()) > kMaxConfigBytes) {
                return fail("larger than 16 MiB");
            }
        }
        if (in.bad()) return fail("read error");
        return loadConfigString(text, absPath);
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}

}  // namespace moat::config
