// The pgflip daemon: worker threads, the client listener, signals and graceful stop.
#include "proxy/app/daemon.hpp"

#include <spdlog/spdlog.h>

#include <csignal>
#include <optional>
#include <thread>
#include <vector>

#include "protocol/messages.hpp"
#include "proxy/admin/admin_server.hpp"
#include "proxy/admin/console_session.hpp"
#include "proxy/admin/control_plane.hpp"
#include "proxy/base/asio.hpp"
#include "proxy/frontdoor/front_door.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/observe/metrics_server.hpp"
#include "proxy/observe/sd_notify.hpp"
#include "proxy/session/proxy_context.hpp"
#include "proxy/session/session.hpp"

namespace pgflip::proxy {

namespace {
using Clock = std::chrono::steady_clock;
}

struct Daemon::Impl {
  /// One io_context per worker thread: a session lives on one worker and needs no locks.
  struct Worker {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    std::thread thread;
  };

  ProxyContext context;
  // Workers outlive `control`: an accept still queued there at exit holds a socket of a
  // worker's io_context, and destroying it needs that io_context's services.
  std::vector<std::unique_ptr<Worker>> workers;
  asio::io_context control{1};
  tcp::acceptor acceptor{control};
  std::size_t next_worker = 0;
  bool stopping = false;
  std::unique_ptr<ControlPlane> control_plane;
  std::unique_ptr<AdminServer> admin;
  std::unique_ptr<ConsoleService> console;  // serves console sessions through `admin`
  /// Installed first thing in run(): a signal during start-up (recovery may take seconds)
  /// waits in the set and is handled once the control loop runs.
  std::optional<asio::signal_set> signals;
  std::unique_ptr<MetricsServer> metrics;

  explicit Impl(std::shared_ptr<const config::Config> config) {
    context.set_config(std::move(config));
    context.metrics.watch_sessions(
        [&sessions = context.sessions](const std::function<void(const SessionView&)>& visit) {
          sessions.for_each([&](const std::shared_ptr<Session>& s) { visit(s->view()); });
        },
        [&router = context.router] { return router.active().name; });
    context.metrics.watch_certificates(
        [&front_door = context.front_door] { return front_door.certificate_expiries(); });
    control_plane = std::make_unique<ControlPlane>(context);
  }

  void start_metrics() {
    const auto snapshot = context.config();
    const auto& settings = snapshot->metrics;
    if (!settings.enabled()) return;
    metrics = std::make_unique<MetricsServer>(
        settings.listen_host, settings.listen_port, [this] { return context.metrics.render(); },
        [this] { return !context.stopping.load(); });
    metrics->start();
  }

  void listen() {
    const auto config = context.config();
    const auto& server = config->server;
    tcp::resolver resolver(control);
    const auto results = resolver.resolve(server.listen_host, std::to_string(server.listen_port),
                                          tcp::resolver::passive);
    const tcp::endpoint endpoint = results.begin()->endpoint();
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    spdlog::info("listening on {}:{} with {} worker(s); blue is {}:{}",
                 endpoint.address().to_string(), endpoint.port(), workers.size(), config->blue.host,
                 config->blue.port);
  }

  awaitable<void> accept_loop() {
    for (;;) {
      Worker& worker = *workers[next_worker++ % workers.size()];
      auto [ec, socket] = co_await acceptor.async_accept(worker.io.get_executor(), use_nothrow);
      if (ec) {
        if (stopping || ec == asio::error::operation_aborted) co_return;
        // Out of descriptors or memory: back off instead of spinning.
        spdlog::error("accept failed: {}", ec.message());
        asio::steady_timer timer(control, std::chrono::milliseconds(100));
        co_await timer.async_wait(use_nothrow);
        continue;
      }
      context.metrics.connection_accepted();
      // Read per connection: a reload changes it.
      const std::uint32_t max_clients = context.config()->server.max_client_conn;
      if (!context.front_door.limits.try_add_client(max_clients)) {
        spdlog::info("connection refused: server.max_client_conn ({}) reached", max_clients);
        context.metrics.connection_refused();
        asio::co_spawn(
            worker.io.get_executor(),
            refuse_connection(std::move(socket),
                              protocol::encode_error("FATAL", "53300",
                                                     "sorry, too many clients already (pgflip "
                                                     "server.max_client_conn = " +
                                                         std::to_string(max_clients) + ")")),
            asio::detached);
        continue;
      }
      const std::uint64_t id = context.next_session_id++;
      auto session = std::make_shared<Session>(std::move(socket), context, id);
      context.sessions.add(session, id);
      asio::co_spawn(worker.io.get_executor(), session->run(),
                     [this, session, id](const std::exception_ptr& error) {
                       if (error) {
                         try {
                           std::rethrow_exception(error);
                         } catch (const std::exception& e) {
                           log::error(log::Conn{id}, "session failed: {}", e.what());
                         }
                       }
                       context.sessions.remove(id);
                       context.front_door.limits.remove_client();
                     });
    }
  }

  awaitable<void> handle_signals() {
    for (;;) {
      auto [ec, signal] = co_await signals->async_wait(use_nothrow);
      if (ec) co_return;
      if (signal == SIGHUP) {
        spdlog::info("received SIGHUP: reloading the configuration");
        systemd::notify(systemd::reloading_state());
        (void)control_plane->reload("SIGHUP");  // logs what it did or why it failed
        systemd::notify("READY=1\n" + control_plane->service_status());
        continue;
      }
      spdlog::info("received {}: graceful stop", signal == SIGTERM ? "SIGTERM" : "SIGINT");
      systemd::notify(
          "STOPPING=1\nSTATUS=stopping: sessions end at their next transaction "
          "boundary");
      co_await graceful_stop();
      co_return;
    }
  }

  /// Returns once every session has left the registry, or at `deadline`.
  awaitable<void> sessions_gone(Clock::time_point deadline) {
    Notifier& changes = context.sessions.changes();
    for (;;) {
      const auto seen = changes.generation();
      if (context.sessions.size() == 0 || Clock::now() >= deadline) co_return;
      co_await changes.async_wait(seen, deadline);
    }
  }

  /// Stop accepting; every session ends at its next idle boundary (a transaction in
  /// progress may finish); whatever is left at server.shutdown_timeout_ms is closed.
  awaitable<void> graceful_stop() {
    stopping = true;
    context.stopping = true;  // the health check answers 503 from now on
    error_code ignored;
    acceptor.close(ignored);
    if (admin) admin->stop();
    context.sessions.for_each([](const std::shared_ptr<Session>& s) { s->request_shutdown(); });
    co_await sessions_gone(Clock::now() + context.config()->server.shutdown_timeout);
    if (const auto left = context.sessions.size(); left > 0) {
      spdlog::warn("shutdown timeout: closing {} session(s) still in a transaction", left);
      context.sessions.for_each([](const std::shared_ptr<Session>& s) { s->force_close(); });
      co_await sessions_gone(Clock::now() + std::chrono::seconds(2));
    }
    for (auto& worker : workers) worker->guard.reset();
    for (auto& worker : workers) worker->io.stop();
    spdlog::info("stopped");
  }
};

Daemon::Daemon(std::shared_ptr<const config::Config> config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

Daemon::~Daemon() = default;

int Daemon::run() {
  std::signal(SIGPIPE, SIG_IGN);
  impl_->signals.emplace(impl_->control, SIGTERM, SIGINT, SIGHUP);
  const auto config = impl_->context.config();
  unsigned count = config->server.workers;
  if (count == 0) count = std::max(1U, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < count; ++i) impl_->workers.push_back(std::make_unique<Impl::Worker>());
  try {
    impl_->context.front_door.load(*config);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  raise_file_limit(config->server.max_client_conn);
  try {
    impl_->listen();
  } catch (const std::exception& e) {
    spdlog::critical("cannot listen on {}:{}: {}", config->server.listen_host,
                     config->server.listen_port, e.what());
    return 1;
  }
  try {
    impl_->control_plane->recover();
  } catch (const std::exception& e) {
    spdlog::critical("cannot recover the active environment: {}", e.what());
    return 1;
  }
  try {
    impl_->admin = std::make_unique<AdminServer>(impl_->control, config->admin.socket);
    impl_->control_plane->register_commands(*impl_->admin);
    impl_->admin->start();
    impl_->console = std::make_unique<ConsoleService>(*impl_->admin);
    impl_->context.console = impl_->console.get();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  try {
    impl_->start_metrics();
  } catch (const std::exception& e) {
    const auto snapshot = impl_->context.config();
    const auto& settings = snapshot->metrics;
    spdlog::critical("cannot serve metrics on {}:{} (metrics.listen): {}", settings.listen_host,
                     settings.listen_port, e.what());
    return 1;
  }
  impl_->control_plane->start_replication_poller();
  impl_->control_plane->resume_cleanup();
  for (auto& worker : impl_->workers) {
    worker->thread = std::thread([&io = worker->io] { io.run(); });
  }
  asio::co_spawn(impl_->control, impl_->accept_loop(), asio::detached);
  asio::co_spawn(impl_->control, impl_->handle_signals(),
                 [this](const std::exception_ptr&) { impl_->control.stop(); });
  // Listening, recovered, admin socket and metrics up: `systemctl start` may return.
  systemd::notify("READY=1\n" + impl_->control_plane->service_status());
  impl_->control.run();
  impl_->control_plane->stop_replication_poller();
  if (impl_->metrics) impl_->metrics->stop();
  for (auto& worker : impl_->workers) {
    worker->guard.reset();
    worker->io.stop();
    if (worker->thread.joinable()) worker->thread.join();
  }
  // Its sockets belong to the workers' io_contexts: closed while those still exist.
  impl_->context.lookup_pool.clear();
  return 0;
}

}  // namespace pgflip::proxy
