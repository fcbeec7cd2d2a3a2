// A coroutine event for one executor: wait() returns once notify() has been called.
#pragma once

#include <chrono>

#include "proxy/base/asio.hpp"

namespace pgflip::proxy {

/// Not thread-safe: notify and wait on the executor the event belongs to.
class Event {
 public:
  explicit Event(const asio::any_io_executor& executor)
      : timer_(executor, asio::steady_timer::time_point::max()) {}

  void notify() {
    set_ = true;
    timer_.cancel();
  }
  void reset() { set_ = false; }
  [[nodiscard]] bool is_set() const { return set_; }

  /// Returns when set, or when the waiting coroutine is cancelled (check for that).
  awaitable<void> wait() {
    while (!set_) {
      auto [ec] = co_await timer_.async_wait(use_nothrow);
      if (ec != asio::error::operation_aborted) continue;
      auto state = co_await asio::this_coro::cancellation_state;
      if (state.cancelled() != asio::cancellation_type::none) co_return;
    }
  }

 private:
  asio::steady_timer timer_;
  bool set_ = false;
};

}  // namespace pgflip::proxy
