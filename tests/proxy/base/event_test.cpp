// The base layer's coroutine event and time formatting, driven on an in-process io_context.
#include <doctest/doctest.h>

#include <chrono>
#include <vector>

#include "proxy/base/event.hpp"
#include "proxy/base/utc_time.hpp"

using namespace pgflip::proxy;

TEST_CASE("an event wakes its waiter once notified, and stays set until reset") {
  asio::io_context io;
  Event event(io.get_executor());
  std::vector<int> order;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        order.push_back(1);
        co_await event.wait();
        order.push_back(3);
        co_await event.wait();  // still set: returns at once
        order.push_back(4);
      },
      asio::detached);
  asio::post(io, [&] {
    order.push_back(2);
    event.notify();
  });
  io.run();
  CHECK(order == std::vector<int>{1, 2, 3, 4});
  CHECK(event.is_set());
  event.reset();
  CHECK_FALSE(event.is_set());
}

TEST_CASE("a cancelled wait returns without the event being set") {
  asio::io_context io;
  Event event(io.get_executor());
  asio::cancellation_signal cancel;
  bool returned = false;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        co_await event.wait();
        returned = true;
      },
      asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
  io.run();
  CHECK(returned);
  CHECK_FALSE(event.is_set());
}

TEST_CASE("UTC timestamps are ISO 8601 to the second or the millisecond") {
  const auto at =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
  CHECK(iso8601_utc(at) == "2023-11-14T22:13:20Z");
  CHECK(iso8601_utc(at, true) == "2023-11-14T22:13:20.123Z");
}
