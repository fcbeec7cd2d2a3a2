// The admin socket: a Unix socket (mode 0600) serving JSON-line requests to command handlers.
#include "proxy/admin/admin_server.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>

namespace pgflip::proxy {

namespace json = boost::json;
using local = asio::local::stream_protocol;

AdminServer::AdminServer(asio::io_context& control, std::string path)
    : control_(control), path_(std::move(path)), acceptor_(control) {
  add("help", "list the admin commands", [this](const AdminRequest&, const AdminEmit&) {
    json::array list;
    std::string text;
    for (const auto& [name, command] : commands_) {
      list.push_back(json::object{{"command", name}, {"summary", command.summary}});
      text +=
          name + std::string(name.size() < 24 ? 24 - name.size() : 1, ' ') + command.summary + "\n";
    }
    return AdminReply::success(std::move(list), std::move(text));
  });
}

AdminServer::~AdminServer() { stop(); }

void AdminServer::add(std::string command, std::string summary, AdminHandler handler) {
  commands_[std::move(command)] = Command{std::move(summary), std::move(handler)};
}

bool AdminServer::has(std::string_view command) const {
  return commands_.find(command) != commands_.end();
}

AdminReply AdminServer::call(const AdminRequest& request, const AdminEmit& emit,
                             std::string_view origin) {
  // Read-only commands are polled (status --watch, monitoring): kept out of the info log.
  const bool read_only = request.command.starts_with("show ") || request.command == "status" ||
                         request.command == "help";
  spdlog::log(read_only ? spdlog::level::debug : spdlog::level::info, "admin ({}): {}", origin,
              request.command);
  AdminReply result = dispatch(request, emit);
  if (!result.ok) {
    spdlog::warn("admin ({}): {} failed: {}", origin, request.command, result.error_message);
  }
  return result;
}

bool AdminServer::call_async(AdminRequest request, AdminEmit emit, std::string origin,
                             std::function<void(AdminReply)> done) {
  std::lock_guard lock(mutex_);
  if (stopped_) return false;
  ++active_;
  std::thread([this, request = std::move(request), emit = std::move(emit),
               origin = std::move(origin), done = std::move(done)] {
    AdminReply reply = call(request, emit, origin);
    done(std::move(reply));
    std::lock_guard finished(mutex_);
    --active_;
    idle_.notify_all();
  }).detach();
  return true;
}

void AdminServer::start() {
  namespace fs = std::filesystem;
  std::error_code fec;
  if (fs::exists(fs::symlink_status(path_, fec))) {
    // A leftover socket from a crashed pgflip is removed; a live one means a second
    // pgflip would steal the operator's commands, so that is an error.
    local::socket probe(control_);
    error_code ec;
    probe.connect(local::endpoint(path_), ec);
    if (!ec) throw std::runtime_error("admin socket " + path_ + " is in use by a running pgflip");
    if (!fs::is_socket(fs::symlink_status(path_, fec))) {
      throw std::runtime_error("admin socket path " + path_ + " exists and is not a socket");
    }
    fs::remove(path_, fec);
  }
  fs::create_directories(fs::path(path_).parent_path(), fec);
  const mode_t old_mask = ::umask(0177);  // the socket is born 0600: no window for others
  error_code ec;
  acceptor_.open(local(), ec);
  if (!ec) acceptor_.bind(local::endpoint(path_), ec);
  ::umask(old_mask);
  if (!ec) acceptor_.listen(16, ec);
  if (ec) throw std::runtime_error("cannot listen on admin socket " + path_ + ": " + ec.message());
  ::chmod(path_.c_str(), 0600);
  spdlog::info("admin socket listening on {}", path_);
  asio::co_spawn(control_, accept_loop(), asio::detached);
}

void AdminServer::stop() {
  {
    std::unique_lock lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    error_code ec;
    acceptor_.close(ec);
    for (auto& weak : sockets_) {
      if (auto socket = weak.lock()) socket->shutdown(local::socket::shutdown_both, ec);
    }
    // A command in progress (a switchover) is given time to reach a safe end.
    idle_.wait_for(lock, std::chrono::seconds(30), [this] { return active_ == 0; });
  }
  std::error_code fec;
  std::filesystem::remove(path_, fec);
}

awaitable<void> AdminServer::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (ec) co_return;
    std::lock_guard lock(mutex_);
    if (stopped_) co_return;
    ++active_;
    std::thread([this, s = std::move(socket)]() mutable {
      serve(std::move(s));
      std::lock_guard done(mutex_);
      --active_;
      idle_.notify_all();
    }).detach();
  }
}

void AdminServer::serve(local::socket raw) {
  auto socket = std::make_shared<local::socket>(std::move(raw));
  {
    std::lock_guard lock(mutex_);
    std::erase_if(sockets_, [](const auto& weak) { return weak.expired(); });
    sockets_.push_back(socket);
  }
  std::string line;
  error_code ec;
  asio::read_until(*socket, asio::dynamic_buffer(line, kMaxAdminRequestSize + 1), '\n', ec);
  const auto end = line.find('\n');
  if (end == std::string::npos) {
    const std::string reply = admin_error_line(
        "bad_request", ec ? "no request line: " + ec.message() : "request too large");
    asio::write(*socket, asio::buffer(reply), ec);
    return;
  }
  line.resize(end);

  auto parsed = parse_admin_request(line);
  std::string reply;
  if (auto* reason = std::get_if<std::string>(&parsed)) {
    reply = admin_error_line("bad_request", *reason);
  } else {
    const auto& request = std::get<AdminRequest>(parsed);
    std::mutex write_mutex;
    AdminEmit emit = [&](std::string_view event, std::string_view text, const json::value& data) {
      const std::string out = admin_event_line(event, text, data);
      std::lock_guard lock(write_mutex);
      error_code wec;
      asio::write(*socket, asio::buffer(out), wec);  // a gone client does not stop the command
    };
    const AdminReply result = call(request, emit);
    reply = result.ok ? admin_ok_line(result.result, result.text)
                      : admin_error_line(result.error_code, result.error_message, result.result,
                                         result.text);
  }
  asio::write(*socket, asio::buffer(reply), ec);
  socket->shutdown(local::socket::shutdown_both, ec);
}

AdminReply AdminServer::dispatch(const AdminRequest& request, const AdminEmit& emit) {
  auto it = commands_.find(request.command);
  if (it == commands_.end()) {
    return AdminReply::failure("unknown_command",
                               "unknown admin command '" + request.command + "' (try 'help')");
  }
  try {
    return it->second.handler(request, emit);
  } catch (const std::exception& e) {
    return AdminReply::failure("internal", e.what());
  }
}

}  // namespace pgflip::proxy
