// The admin console as a session sees it: a layer above (admin/) serves a client that logged
// in to admin.console_database; the session only hands the client over.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "proxy/base/asio.hpp"
#include "proxy/base/stream.hpp"
#include "proxy/observe/log.hpp"

namespace pgflip::proxy {

/// A logged-in console client, lent to the console until serve() returns.
struct ConsoleClient {
  ClientStream& stream;  // read from it; write through `write`
  /// Writes to the client (bounded: a client that does not read cannot hold the session).
  std::function<awaitable<void>(std::string)> write;
  std::string pending;  // bytes the client sent after its startup packet
  std::string user;
  bool admin = false;  // in auth.admin_users; otherwise a stats user (SHOW only)
  std::uint64_t session_id = 0;
  std::size_t max_message_size = 0;  // server.max_message_size
  log::Conn log;
  /// pgflip is stopping; a read cancelled then ends the console with FATAL 57P01.
  const std::atomic<bool>& shutdown_requested;
};

class ConsolePort {
 public:
  virtual ~ConsolePort() = default;
  /// Serves the client's queries until it leaves, errs or pgflip stops. Returns why it ended.
  /// The caller keeps `client` alive until then.
  virtual awaitable<std::string> serve(ConsoleClient& client) = 0;
};

}  // namespace pgflip::proxy
