#include "gateway/token/StrictJson.h"

#include <set>
#include <vector>

namespace moat::token {

JsonResult parseStrictJson(std::string_view text) {
    using json = nlohmann::json;
    // One set of seen keys per open object; arrays push an empty marker so depths line up.
    std::vector<std::set<std::string>> open;
    std::string duplicate;
    bool tooDeep = false;
    auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
        switch (event) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                if (depth >= kMaxJsonDepth) tooDeep = true;
                open.emplace_back();
                break;
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                if (!open.empty()) open.pop_back();
                break;
            case json::parse_event_t::key:
                if (!open.empty() && parsed.is_string() &&
                    !open.back().insert(parsed.get_ref<const std::string&>()).second &&
                    duplicate.empty())
                    duplicate = parsed.get_ref<const std::string&>();
                break;
            case json::parse_event_t::value:
                break;
        }
        // Keep everything; the verdict is taken once the parse ends.
        return !tooDeep;
    };
    JsonResult out;
    json value = json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/false,
                             /*ignore_comments=*/false);
    if (tooDeep) {
        out.error = "too deeply nested";
        return out;
    }
    if (value.is_discarded()) {
        out.error = "not JSON";
        return out;
    }
    if (!duplicate.empty()) {
        out.error = "duplicate key";
        return out;
    }
    out.value = std::move(value);
    return out;
}

}  // namespace moat::token
