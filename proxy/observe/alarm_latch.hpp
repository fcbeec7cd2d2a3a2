// Which alarms are on, so that a poller logs each alarm once when it trips and once when it
// clears, not at every poll.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace pgflip::proxy {

class AlarmLatch {
 public:
  struct Changes {
    std::vector<std::string> tripped;  // off (or unknown) at the last update, on now
    std::vector<std::string> cleared;  // on at the last update, off now (or no longer polled)
  };

  /// One poll's verdict: (key, on) for every key polled. A key that was on and is missing
  /// from `states` has cleared (what it watched is gone).
  [[nodiscard]] Changes update(const std::vector<std::pair<std::string, bool>>& states);

  [[nodiscard]] bool on(const std::string& key) const { return on_.contains(key); }

 private:
  std::set<std::string> on_;
};

}  // namespace pgflip::proxy
