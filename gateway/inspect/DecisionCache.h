#pragma once
// The last topic judged and the decision it got. Devices publish to the same few topics
// over and over, and a subscriber receives the same ones: most ACL checks on the data path
// repeat the previous one, and a string compare is far cheaper than validating the topic
// and walking the policy tries again. One entry per direction and per Session; cleared when
// the session's rights change (reload).

#include <string>
#include <string_view>

#include "policy/Decision.h"

namespace moat::inspect {

class DecisionCache {
  public:
    // `check()` runs only when `topic` differs from the last one.
    template <typename Check>
    const policy::Decision& get(std::string_view topic, Check&& check) {
        if (!valid_ || topic != topic_) {
            decision_ = check();
            topic_.assign(topic);  // reuses its capacity: no allocation for repeated sizes
            valid_ = true;
        }
        return decision_;
    }
    void clear() { valid_ = false; }

  private:
    std::string topic_;
    policy::Decision decision_;  // views the rights' policy: clear() before replacing them
    bool valid_ = false;
};

}  // namespace moat::inspect
