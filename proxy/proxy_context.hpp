// What every session shares: the configuration, the cancel-key map and the session list.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "config/config.hpp"
#include "proxy/cancel_registry.hpp"

namespace pgflip::proxy {

class Session;

/// Live sessions, for shutdown now and for parking and switchover later. Thread-safe.
class SessionRegistry {
 public:
  void add(const std::shared_ptr<Session>& session, std::uint64_t id);
  void remove(std::uint64_t id);
  [[nodiscard]] std::size_t size() const;
  /// Calls `visit` for every live session, outside the registry's lock.
  void for_each(const std::function<void(const std::shared_ptr<Session>&)>& visit) const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<Session>> sessions_;
};

struct ProxyContext {
  std::shared_ptr<const config::Config> config;
  CancelRegistry cancels;
  SessionRegistry sessions;
  std::atomic<std::uint64_t> next_session_id{1};
};

}  // namespace pgflip::proxy
