// The login gate: logins wait while a switchover holds it, and the orchestrator sees every pass.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <thread>

#include "proxy/base/asio.hpp"
#include "proxy/session/proxy_context.hpp"

using namespace pgflip::proxy;
using namespace std::chrono_literals;

namespace {
LoginGate::Clock::time_point soon() { return LoginGate::Clock::now() + 1ms; }
}  // namespace

TEST_CASE("an open gate gives a pass at once, and the orchestrator waits for it back") {
  LoginGate gate;
  asio::io_context io;
  std::optional<LoginGate::Pass> pass;
  asio::co_spawn(
      io, [&]() -> awaitable<void> { pass = co_await gate.enter(); }, asio::detached);
  io.run();
  REQUIRE(pass.has_value());
  gate.close();
  CHECK_FALSE(gate.wait_clear(soon()));  // a login past the gate is not relaying yet
  auto cleared = std::async(std::launch::async,
                            [&] { return gate.wait_clear(LoginGate::Clock::now() + 60s); });
  pass.reset();  // the login is relaying (or ended): its pass comes back
  CHECK(cleared.get());
}

TEST_CASE("a login waits at a closed gate until it opens, on its own thread") {
  LoginGate gate;
  gate.close();
  asio::io_context io;
  std::atomic<bool> passed{false};
  std::promise<void> started;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        started.set_value();
        auto pass = co_await gate.enter();
        passed = pass.has_value();
      },
      asio::detached);
  std::thread runner([&] { io.run(); });
  started.get_future().wait();
  // Held: the orchestrator sees no pass out while the login waits at the gate.
  CHECK(gate.wait_clear(LoginGate::Clock::now() + 60s));
  CHECK_FALSE(passed.load());
  gate.open();
  runner.join();
  CHECK(passed.load());
  CHECK(gate.wait_clear(soon()));  // the pass was dropped with the coroutine
}

TEST_CASE("a login cancelled while it waits at the gate gets no pass") {
  LoginGate gate;
  gate.close();
  asio::io_context io;
  asio::cancellation_signal cancel;
  bool returned = false;
  bool got_pass = true;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        auto pass = co_await gate.enter();
        got_pass = pass.has_value();
        returned = true;
      },
      asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
  io.run();
  CHECK(returned);
  CHECK_FALSE(got_pass);
  CHECK(gate.wait_clear(soon()));
}
