#pragma once
// One result of `moat audit` (CONTRACT.md §6). Plain data: the checks produce them, the
// formatters print them, `moat audit` maps any High finding to exit status 4.

#include <string>
#include <vector>

namespace moat::audit {

struct Finding {
    enum class Severity { High, Medium, Low };

    Severity severity = Severity::Low;
    std::string id;       // stable kebab-case check id ("plaintext-listener"): scripts key on it
    std::string subject;  // what it is about: "listener mqtts", "role operator", "user bob"
    std::string message;  // what is wrong and why it matters
    std::string fix;      // one line: what to change
};

using Findings = std::vector<Finding>;

// "high" | "medium" | "low" (the words CONTRACT.md §6 uses).
const char* severityName(Finding::Severity severity);

}  // namespace moat::audit
