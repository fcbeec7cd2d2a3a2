// A counting semaphore for coroutines on any executor, first come first served.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>

#include "proxy/base/asio.hpp"

namespace pgflip::proxy {

/// acquire() takes a permit or waits its turn; release() gives the permit straight to the
/// oldest waiter (posted to the waiter's executor, which must run one handler at a time, as
/// pgflip's io_contexts do). Thread-safe.
class AsyncSemaphore {
 public:
  using Clock = std::chrono::steady_clock;

  explicit AsyncSemaphore(std::size_t permits) : permits_(permits) {}

  /// Returns true holding a permit (give it back with release()), false when `deadline`
  /// passed first.
  awaitable<bool> acquire(Clock::time_point deadline) {
    auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor, deadline);
    {
      std::lock_guard lock(mutex_);
      if (permits_ > 0) {
        --permits_;
        co_return true;
      }
      waiters_.push_back(waiter);
    }
    (void)co_await waiter->timer.async_wait(use_nothrow);
    std::lock_guard lock(mutex_);
    if (waiter->granted) co_return true;
    std::erase(waiters_, waiter);
    co_return false;
  }

  void release() {
    std::lock_guard lock(mutex_);
    if (waiters_.empty()) {
      ++permits_;
      return;
    }
    auto next = std::move(waiters_.front());
    waiters_.pop_front();
    next->granted = true;
    // An expiry in the past wakes its wait, pending or about to begin.
    asio::post(next->timer.get_executor(),
               [next] { next->timer.expires_at(asio::steady_timer::time_point::min()); });
  }

  [[nodiscard]] std::size_t waiting() const {
    std::lock_guard lock(mutex_);
    return waiters_.size();
  }

 private:
  struct Waiter {
    Waiter(const asio::any_io_executor& executor, Clock::time_point deadline)
        : timer(executor, deadline) {}
    asio::steady_timer timer;
    bool granted = false;  // guarded by mutex_
  };

  mutable std::mutex mutex_;
  std::size_t permits_;
  std::deque<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace pgflip::proxy
