// Text and JSON renderings of audit findings.

#include <cstdio>

#include "gateway/audit/ConfigAudit.h"

namespace moat::audit {

const char* severityName(Finding::Severity severity) {
    switch (severity) {
        case Finding::Severity::High:
            return "high";
        case Finding::Severity::Medium:
            return "medium";
        case Finding::Severity::Low:
            return "low";
    }
    return "unknown";
}

namespace {

// Messages quote file paths and role names from the config: escape everything JSON requires
// (quotes, backslashes, control characters). Bytes >= 0x80 pass through: the config is UTF-8.
void appendJsonString(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

// Keeps one finding on one line in text output whatever a path or name contains.
void appendOneLine(std::string& out, const std::string& s) {
    for (char c : s) out += (c == '\n' || c == '\r') ? ' ' : c;
}

}  // namespace

std::string formatText(const std::vector<Finding>& findings) {
    std::string out;
    for (const auto& f : findings) {
        std::string sev = severityName(f.severity);
        sev.resize(6, ' ');  // aligns the id column: "high  ", "medium", "low   "
        out += sev;
        out += "  ";
        out += f.id;
        out += "  ";
        appendOneLine(out, f.subject);
        out += ": ";
        appendOneLine(out, f.message);
        if (!f.fix.empty()) {
            out += " (fix: ";
            appendOneLine(out, f.fix);
            out += ')';
        }
        out += '\n';
    }
    return out;
}

std::string formatJson(const std::vector<Finding>& findings) {
    std::string out = "[";
    bool first = true;
    for (const auto& f : findings) {
        out += first ? "\n  {" : ",\n  {";
        first = false;
        out += "\"severity\": ";
        appendJsonString(out, severityName(f.severity));
        out += ", \"id\": ";
        appendJsonString(out, f.id);
        out += ", \"subject\": ";
        appendJsonString(out, f.subject);
        out += ", \"message\": ";
        appendJsonString(out, f.message);
        out += ", \"fix\": ";
        appendJsonString(out, f.fix);
        out += '}';
    }
    out += first ? "]\n" : "\n]\n";
    return out;
}

}  // namespace moat::audit
