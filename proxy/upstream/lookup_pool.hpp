// Idle auth.query connections kept for the next lookup, per worker and per server login.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "proxy/base/asio.hpp"
#include "proxy/base/stream.hpp"

namespace pgflip::proxy {

/// auth.query connections between lookups (as PgBouncer keeps its auth_user connection), so a
/// login storm does not cost a second server login per client. A connection only ever serves
/// the worker (io_context) that opened it. Thread-safe.
class LookupPool {
 public:
  using Clock = std::chrono::steady_clock;
  /// How many idle connections a worker keeps per login, and for how long.
  static constexpr std::size_t kMaxIdle = 2;
  static constexpr std::chrono::seconds kMaxIdleTime{60};

  /// An idle connection of this worker for `key` (the server and login it was opened with),
  /// or nullopt. Connections idle longer than kMaxIdleTime, or with bytes waiting (the server
  /// said something unasked, such as a FATAL before closing), are closed instead.
  [[nodiscard]] std::optional<ServerStream> take(const asio::any_io_executor& executor,
                                                 const std::string& key);
  /// Keeps `stream`, which just finished a lookup and is at ReadyForQuery, for the next one;
  /// closes it when this worker already keeps kMaxIdle for `key`.
  void give_back(const asio::any_io_executor& executor, const std::string& key,
                 ServerStream stream);
  /// Idle connections now (all workers).
  [[nodiscard]] std::size_t size() const;
  /// Closes every idle connection. Only when no worker runs (at stop, after they joined).
  void clear();

 private:
  struct Idle {
    const asio::execution_context* worker;
    std::string key;
    std::optional<ServerStream> stream;
    Clock::time_point since;
  };
  mutable std::mutex mutex_;
  std::vector<Idle> idle_;
};

}  // namespace pgflip::proxy
