// The live-session list.
#include "proxy/session/proxy_context.hpp"

#include <vector>

namespace pgflip::proxy {

void SessionRegistry::add(const std::shared_ptr<Session>& session, std::uint64_t id) {
  std::lock_guard lock(mutex_);
  sessions_.emplace(id, session);
}

void SessionRegistry::remove(std::uint64_t id) {
  {
    std::lock_guard lock(mutex_);
    sessions_.erase(id);
  }
  changes_.notify();
}

std::size_t SessionRegistry::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

void SessionRegistry::for_each(
    const std::function<void(const std::shared_ptr<Session>&)>& visit) const {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(mutex_);
    live.reserve(sessions_.size());
    for (const auto& [id, weak] : sessions_) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
  }
  for (const auto& session : live) visit(session);
}

}  // namespace pgflip::proxy
