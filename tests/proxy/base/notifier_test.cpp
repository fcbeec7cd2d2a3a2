// The base layer's Notifier: threads and coroutines on other threads woken by notify().
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "proxy/base/notifier.hpp"

using namespace pgflip::proxy;
using namespace std::chrono_literals;

TEST_CASE("a thread's wait returns once notified after the generation it saw") {
  Notifier notifier;
  const auto seen = notifier.generation();
  auto waiter = std::async(std::launch::async,
                           [&] { return notifier.wait_until(seen, Notifier::Clock::now() + 60s); });
  notifier.notify();
  CHECK(waiter.get());
  CHECK(notifier.generation() == seen + 1);
}

TEST_CASE("a notify between reading the generation and waiting is not missed") {
  Notifier notifier;
  const auto seen = notifier.generation();
  notifier.notify();
  // The deadline is already past: only the missed-notify check can make this true.
  CHECK(notifier.wait_until(seen, Notifier::Clock::now()));
  CHECK_FALSE(notifier.wait_until(notifier.generation(), Notifier::Clock::now() + 1ms));
}

TEST_CASE("a coroutine on another thread's io_context is woken by notify") {
  Notifier notifier;
  asio::io_context io;
  std::atomic<bool> woken{false};
  std::promise<void> waiting;
  const auto seen = notifier.generation();
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        waiting.set_value();
        co_await notifier.async_wait(seen, Notifier::Clock::time_point::max());
        woken = true;
      },
      asio::detached);
  std::thread runner([&] { io.run(); });
  waiting.get_future().wait();
  notifier.notify();
  runner.join();  // io.run() returns only once the coroutine finished
  CHECK(woken);
}

TEST_CASE("a coroutine's wait returns at its deadline, and at once if notified before") {
  Notifier notifier;
  asio::io_context io;
  int returned = 0;
  const auto seen = notifier.generation();
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        co_await notifier.async_wait(seen, Notifier::Clock::now() + 1ms);  // nobody notifies
        ++returned;
        notifier.notify();
        co_await notifier.async_wait(seen, Notifier::Clock::time_point::max());  // already past
        ++returned;
      },
      asio::detached);
  io.run();
  CHECK(returned == 2);
}
