// The admin socket: a Unix socket (mode 0600) serving JSON-line requests to command handlers.
#pragma once

#include <boost/json.hpp>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/admin/admin_protocol.hpp"
#include "proxy/base/asio.hpp"

namespace pgflip::proxy {

/// What a command returns. `text` is what pgflipctl prints.
struct AdminReply {
  bool ok = true;
  boost::json::value result = nullptr;
  std::string text;
  std::string error_code;  // set when !ok, e.g. "replication", "guardrail", "bad_request"
  std::string error_message;
  /// A tabular reply (`result` is an array of flat objects): the column order, also when
  /// there are no rows. Empty otherwise.
  std::vector<std::string> columns = {};

  static AdminReply success(boost::json::value result, std::string text) {
    return AdminReply{true, std::move(result), std::move(text), {}, {}, {}};
  }
  static AdminReply failure(std::string code, std::string message,
                            boost::json::value result = nullptr, std::string text = {}) {
    return AdminReply{false,           std::move(result),  std::move(text),
                      std::move(code), std::move(message), {}};
  }
};

/// Sends an interim event line (progress, a switchover step) to the requesting client.
using AdminEmit = std::function<void(std::string_view event, std::string_view text,
                                     const boost::json::value& data)>;
/// Handlers run on the connection's own thread and may block (libpq, waiting for sessions).
using AdminHandler = std::function<AdminReply(const AdminRequest&, const AdminEmit&)>;

class AdminServer {
 public:
  AdminServer(asio::io_context& control, std::string path);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  /// Registers a command. At start-up only, before start(): the table is read unlocked.
  void add(std::string command, std::string summary, AdminHandler handler);
  /// Whether a command of this name is registered.
  [[nodiscard]] bool has(std::string_view command) const;

  /// Runs a command in-process, on the calling thread, exactly as a socket request would
  /// (the admin console's way in). `origin` names the caller in the log.
  [[nodiscard]] AdminReply call(const AdminRequest& request, const AdminEmit& emit,
                                std::string_view origin = "socket");
  /// Runs call() on a thread of its own (handlers block), counted like a socket connection,
  /// so that stop() waits for it. `emit` and `done` are called on that thread. Returns false,
  /// calling neither, once the server is stopping.
  [[nodiscard]] bool call_async(AdminRequest request, AdminEmit emit, std::string origin,
                                std::function<void(AdminReply)> done);
  /// Binds the socket (refusing if another pgflip answers on it) and starts accepting.
  void start();
  /// Stops accepting, ends connections, removes the socket file.
  void stop();

 private:
  awaitable<void> accept_loop();
  void serve(asio::local::stream_protocol::socket socket);
  [[nodiscard]] AdminReply dispatch(const AdminRequest& request, const AdminEmit& emit);

  asio::io_context& control_;
  std::string path_;
  asio::local::stream_protocol::acceptor acceptor_;
  struct Command {
    std::string summary;
    AdminHandler handler;
  };
  std::map<std::string, Command, std::less<>> commands_;
  std::mutex mutex_;
  std::condition_variable idle_;
  int active_ = 0;  // connections being served, each on its own detached thread
  std::vector<std::weak_ptr<asio::local::stream_protocol::socket>> sockets_;
  bool stopped_ = false;
};

}  // namespace pgflip::proxy
