// Which alarms are on, so that a poller logs each alarm once when it trips and once when it
// clears, not at every poll.
#include "proxy/observe/alarm_latch.hpp"

namespace pgflip::proxy {

AlarmLatch::Changes AlarmLatch::update(const std::vector<std::pair<std::string, bool>>& states) {
  Changes changes;
  std::set<std::string> now;
  for (const auto& [key, alarm] : states) {
    if (!alarm) continue;
    if (!on_.contains(key)) changes.tripped.push_back(key);
    now.insert(key);
  }
  for (const auto& key : on_) {
    if (!now.contains(key)) changes.cleared.push_back(key);
  }
  on_ = std::move(now);
  return changes;
}

}  // namespace pgflip::proxy
