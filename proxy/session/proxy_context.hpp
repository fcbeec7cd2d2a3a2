// What every session shares: the configuration, the cancel-key map, the session list, metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "config/config.hpp"
#include "proxy/frontdoor/cancel_registry.hpp"
#include "proxy/frontdoor/front_door.hpp"
#include "proxy/observe/proxy_metrics.hpp"
#include "proxy/upstream/lookup_pool.hpp"

namespace pgflip::proxy {

class ConsolePort;
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

/// Which environment new server connections go to, and the gate that holds new logins
/// while a switchover has clients parked. Thread-safe.
class Router {
 public:
  struct Active {
    std::string name = "blue";  // "blue" or "green"
    config::Endpoint endpoint;
    std::uint64_t epoch = 0;  // bumped by every committed switchover
  };

  [[nodiscard]] Active active() const {
    std::lock_guard lock(mutex_);
    return active_;
  }
  void set_active(Active active) {
    std::lock_guard lock(mutex_);
    active_ = std::move(active);
  }
  [[nodiscard]] bool gate_closed() const { return gate_closed_.load(); }
  void set_gate_closed(bool closed) { gate_closed_.store(closed); }

 private:
  mutable std::mutex mutex_;
  Active active_;
  std::atomic<bool> gate_closed_{false};
};

struct ProxyContext {
  /// The configuration in force. A session takes a snapshot when it starts and keeps it; a
  /// reload swaps in a new one for the sessions that come after. Thread-safe.
  [[nodiscard]] std::shared_ptr<const config::Config> config() const { return config_.load(); }
  void set_config(std::shared_ptr<const config::Config> config) {
    config_.store(std::move(config));
  }

  Router router;
  CancelRegistry cancels;
  SessionRegistry sessions;
  /// TLS contexts, users and connection counts; loaded by the daemon at start.
  FrontDoor front_door;
  /// auth.query connections between lookups; the daemon clears it once the workers stopped.
  LookupPool lookup_pool;
  std::atomic<std::uint64_t> next_session_id{1};
  /// Sessions past the login gate that are not relaying yet; a switchover waits for 0.
  std::atomic<int> logins_in_flight{0};
  /// Counters and gauges for the metrics endpoint and `show stats`.
  ProxyMetrics metrics;
  /// Set when a graceful stop begins (the health check then answers 503).
  std::atomic<bool> stopping{false};
  /// PAUSE is in force: sessions (also those logging in now) hold requests at boundaries.
  std::atomic<bool> paused{false};
  /// The admin console (served by the admin layer); set at start, before any session runs.
  ConsolePort* console = nullptr;

 private:
  std::atomic<std::shared_ptr<const config::Config>> config_;
};

}  // namespace pgflip::proxy
