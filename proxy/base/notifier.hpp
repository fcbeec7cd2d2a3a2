// A thread-safe wake-up call: any thread notifies; threads and coroutines on any executor wait.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "proxy/base/asio.hpp"

namespace pgflip::proxy {

/// Waiters read generation(), check their condition, then wait for a notify() after that
/// generation, so a notify() between the check and the wait is never missed:
///
///     for (;;) {
///       const auto seen = notifier.generation();
///       if (condition()) break;
///       notifier.wait_until(seen, deadline);  // or co_await notifier.async_wait(...)
///     }
///
/// A coroutine's wake-up is posted to its own executor, which must run one handler at a time
/// (pgflip's io_contexts each run on one thread).
class Notifier {
 public:
  using Clock = std::chrono::steady_clock;

  [[nodiscard]] std::uint64_t generation() const {
    std::lock_guard lock(mutex_);
    return generation_;
  }

  void notify() {
    std::vector<std::shared_ptr<asio::steady_timer>> waiters;
    {
      std::lock_guard lock(mutex_);
      ++generation_;
      waiters.swap(waiters_);
    }
    changed_.notify_all();
    for (auto& timer : waiters) {
      // An expiry in the past wakes a pending wait, and one that has not begun yet.
      asio::post(timer->get_executor(),
                 [timer] { timer->expires_at(asio::steady_timer::time_point::min()); });
    }
  }

  /// Blocks the calling thread until a notify() after `seen`, or `deadline`; returns whether
  /// one came.
  bool wait_until(std::uint64_t seen, Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return changed_.wait_until(lock, deadline, [&] { return generation_ != seen; });
  }

  /// Returns after a notify() after `seen`, at `deadline`, or when the waiting coroutine is
  /// cancelled (check for that).
  awaitable<void> async_wait(std::uint64_t seen, Clock::time_point deadline) {
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor, deadline);
    {
      std::lock_guard lock(mutex_);
      if (generation_ != seen) co_return;
      waiters_.push_back(timer);
    }
    co_await timer->async_wait(use_nothrow);
    std::lock_guard lock(mutex_);
    std::erase(waiters_, timer);
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t generation_ = 0;
  std::vector<std::shared_ptr<asio::steady_timer>> waiters_;
};

}  // namespace pgflip::proxy
