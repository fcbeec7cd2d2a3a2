// AsyncSemaphore: permits taken at once while they last, then handed to waiters in order,
// across threads; a waiter whose deadline passes leaves the queue.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "proxy/base/async_semaphore.hpp"

using namespace pgflip::proxy;
using namespace std::chrono_literals;

namespace {
AsyncSemaphore::Clock::time_point in(std::chrono::milliseconds ms) {
  return AsyncSemaphore::Clock::now() + ms;
}
}  // namespace

TEST_CASE("permits are taken at once, then waiters are served first come first served") {
  AsyncSemaphore semaphore(2);
  asio::io_context io;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> awaitable<void> {
          if (!co_await semaphore.acquire(in(60s))) co_return;
          order.push_back(i);
          asio::steady_timer pause(co_await asio::this_coro::executor, 1ms);
          co_await pause.async_wait(use_nothrow);
          semaphore.release();
        },
        asio::detached);
  }
  io.run();
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(semaphore.waiting() == 0);
}

TEST_CASE("a waiter whose deadline passes gives up and leaves the queue") {
  AsyncSemaphore semaphore(1);
  asio::io_context io;
  bool first = false, second = true, third = false;
  asio::co_spawn(
      io, [&]() -> awaitable<void> { first = co_await semaphore.acquire(in(60s)); },
      asio::detached);
  asio::co_spawn(
      io, [&]() -> awaitable<void> { second = co_await semaphore.acquire(in(5ms)); },
      asio::detached);
  io.run();
  CHECK(first);
  CHECK_FALSE(second);
  CHECK(semaphore.waiting() == 0);
  semaphore.release();  // the first one's permit comes back: the next one takes it at once
  asio::co_spawn(
      io, [&]() -> awaitable<void> { third = co_await semaphore.acquire(in(1ms)); },
      asio::detached);
  io.restart();
  io.run();
  CHECK(third);
}

TEST_CASE("coroutines on several threads never hold more permits than there are") {
  constexpr int kThreads = 4, kPerThread = 200, kPermits = 2;
  AsyncSemaphore semaphore(kPermits);
  std::atomic<int> holding{0}, most{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      asio::io_context io;
      for (int i = 0; i < kPerThread; ++i) {
        asio::co_spawn(
            io,
            [&]() -> awaitable<void> {
              if (!co_await semaphore.acquire(in(60s))) co_return;
              const int now = ++holding;
              for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
              }
              co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
              --holding;
              ++done;
              semaphore.release();
            },
            asio::detached);
      }
      io.run();
    });
  }
  for (auto& t : threads) t.join();
  CHECK(done == kThreads * kPerThread);
  CHECK(most <= kPermits);
  CHECK(most >= 1);
}
