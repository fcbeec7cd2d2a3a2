// What every session shares: the configuration, the cancel-key map, the session list, metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "config/config.hpp"
#include "proxy/base/asio.hpp"
#include "proxy/base/notifier.hpp"
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
  /// Notified when a session leaves, and by a session whose PAUSE reached a transaction
  /// boundary: what shutdown and PAUSE wait for (Notifier's generation-then-wait protocol).
  [[nodiscard]] Notifier& changes() { return changes_; }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<Session>> sessions_;
  Notifier changes_;
};

/// Which environment new server connections go to. Thread-safe.
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

 private:
  mutable std::mutex mutex_;
  Active active_;
};

/// Holds new logins while a switchover has clients parked, so that each lands on the
/// environment that serves from then on. Thread-safe. The orchestrator closes the gate, then
/// waits until no login holds a pass; a session takes a pass before it picks its server and
/// returns it once it relays (or ends), so no login can slip past unseen.
class LoginGate {
 public:
  using Clock = std::chrono::steady_clock;

  /// A login past the gate; returned when destroyed.
  class Pass {
   public:
    Pass(Pass&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Pass& operator=(Pass&& other) noexcept {
      if (this != &other) {
        if (gate_ != nullptr) gate_->leave();
        gate_ = std::exchange(other.gate_, nullptr);
      }
      return *this;
    }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    ~Pass() {
      if (gate_ != nullptr) gate_->leave();
    }

   private:
    friend class LoginGate;
    explicit Pass(LoginGate* gate) : gate_(gate) {}
    LoginGate* gate_;
  };

  [[nodiscard]] bool closed() const { return closed_.load(); }
  void close() { closed_.store(true); }
  void open() {
    closed_.store(false);
    opened_.notify();
  }

  /// Waits while the gate is closed, then takes a pass. Empty when the waiting coroutine was
  /// cancelled (its startup timeout).
  awaitable<std::optional<Pass>> enter() {
    for (;;) {
      const auto seen = opened_.generation();
      // Count first, then look at the gate (both sequentially consistent): if close() came
      // first we see it, otherwise the orchestrator's wait_clear() sees our count.
      ++in_flight_;
      if (!closed_.load()) co_return Pass(this);
      leave();
      co_await opened_.async_wait(seen, Clock::time_point::max());
      auto state = co_await asio::this_coro::cancellation_state;
      if (state.cancelled() != asio::cancellation_type::none) co_return std::nullopt;
    }
  }

  /// Blocks until no login holds a pass, or until `deadline`; returns whether none does.
  bool wait_clear(Clock::time_point deadline) {
    for (;;) {
      const auto seen = cleared_.generation();
      if (in_flight_.load() == 0) return true;
      if (!cleared_.wait_until(seen, deadline)) return in_flight_.load() == 0;
    }
  }

 private:
  void leave() {
    if (--in_flight_ == 0) cleared_.notify();
  }

  std::atomic<bool> closed_{false};
  std::atomic<int> in_flight_{0};
  Notifier opened_;   // the gate opened: waiting logins look again
  Notifier cleared_;  // no login holds a pass: the orchestrator looks again
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
  /// Holds new logins while a switchover has clients parked.
  LoginGate login_gate;
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
