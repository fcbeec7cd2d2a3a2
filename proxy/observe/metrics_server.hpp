// The metrics endpoint: a small HTTP/1.1 server (Boost.Beast) on its own thread serving
// GET /metrics and GET /healthz.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "proxy/base/asio.hpp"

namespace pgflip::proxy {

class MetricsServer {
 public:
  /// `render` returns the exposition text; `healthy` false turns /healthz into 503. Both are
  /// called on the server's thread.
  MetricsServer(std::string host, std::uint16_t port, std::function<std::string()> render,
                std::function<bool()> healthy);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// Binds and listens (throws on failure, e.g. the port is in use), then serves on a thread.
  void start();
  /// Stops accepting, drops open connections, joins the thread. Idempotent.
  void stop();
  [[nodiscard]] tcp::endpoint local_endpoint() const { return endpoint_; }

  /// Limits, also for tests.
  static constexpr std::size_t kMaxHeaderBytes = std::size_t{8} * 1024;
  static constexpr std::chrono::seconds kReadTimeout{10};
  static constexpr std::chrono::seconds kWriteTimeout{10};
  static constexpr int kMaxConnections = 32;
  static constexpr int kMaxRequestsPerConnection = 100;

 private:
  awaitable<void> accept_loop();
  awaitable<void> serve(tcp::socket socket);

  std::string host_;
  std::uint16_t port_;
  std::function<std::string()> render_;
  std::function<bool()> healthy_;
  asio::io_context io_{1};
  tcp::acceptor acceptor_{io_};
  tcp::endpoint endpoint_;
  std::thread thread_;
  int connections_ = 0;  // on the server's thread only
};

}  // namespace pgflip::proxy
