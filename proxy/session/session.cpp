// One client session: startup, server login, and the relay between client and server.
#include "proxy/session/session.hpp"

#include <spdlog/spdlog.h>

#include "protocol/custom_settings.hpp"
#include "protocol/messages.hpp"
#include "proxy/base/read_message.hpp"
#include "proxy/upstream/server_connection.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;
using namespace asio::experimental::awaitable_operators;

namespace {

// Read sizes: requests are small; results can be large, so the server side reads more.
constexpr std::size_t kClientReadSize = std::size_t{16} * 1024;
constexpr std::size_t kServerReadSize = std::size_t{64} * 1024;
// The server may legitimately send rows up to 1 GB.
constexpr std::size_t kMaxServerMessageSize = std::size_t{1} << 30;

std::string_view state_name(Session::State state) {
  switch (state) {
    case Session::State::kStartup:
      return "startup";
    case Session::State::kAuth:
      return "authenticating";
    case Session::State::kLogin:
      return "login";
    case Session::State::kActive:
      return "active";
    case Session::State::kConsole:
      return "console";
    case Session::State::kClosing:
      return "closing";
  }
  return "?";
}

}  // namespace

Session::Session(tcp::socket client, ProxyContext& context, std::uint64_t id)
    : client_(std::move(client)),
      server_(client_.get_executor()),
      context_(context),
      id_(id),
      config_(context.config()),
      client_tls_(context.front_door.client_tls()),
      client_scanner_(config_->server.max_message_size),
      server_scanner_(kMaxServerMessageSize),
      switch_event_(client_.get_executor()),
      release_event_(client_.get_executor()),
      resume_event_(client_.get_executor()) {
  error_code ec;
  const auto endpoint = client_.remote_endpoint(ec);
  peer_ = ec ? "?" : endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  info_.id = id_;
  info_.peer = peer_;
  info_.connected_at = std::chrono::system_clock::now();
  info_.state_since = info_.connected_at;
  info_.state = state_name(state_);
  client_.set_option(tcp::no_delay(true), ec);
  // Requests and transaction boundaries; Parse/Bind/... mark an unfinished extended query.
  for (char type : {'Q', 'S', 'F', 'X', 'P', 'B', 'E', 'D', 'C', 'H'}) client_scanner_.watch(type);
  for (char type : {'Z', 'S', 'E'}) server_scanner_.watch(type);
}

void Session::uncount_login() { login_pass_.reset(); }

void Session::reached_pause_boundary() {
  paused_at_boundary_ = true;
  context_.sessions.changes().notify();  // PAUSE waits for every session to get here
}

Session::~Session() {
  uncount_login();
  if (cancel_key_allocated_) context_.cancels.release(client_process_id_);
}

log::Conn Session::log_conn() const {
  const std::string* user = startup_message_.find("user");
  const std::string* database = startup_message_.find("database");
  return log::Conn{id_, peer_, user ? std::string_view(*user) : std::string_view(),
                   database ? std::string_view(*database) : std::string_view()};
}

void Session::set_state(State state) {
  log::debug(log_conn(), "{} -> {}", state_name(state_), state_name(state));
  state_ = state;
  publish_info();
  publish();
}

void Session::publish_info() {
  const auto now = std::chrono::system_clock::now();
  const std::string* user = startup_message_.find("user");
  const std::string* database = startup_message_.find("database");
  const std::string* application = startup_message_.find("application_name");
  const bool has_server = server_process_id_ != 0 && state_ != State::kClosing;
  std::lock_guard lock(info_mutex_);
  const std::string_view name = state_name(state_);
  if (info_.state != name) {
    info_.state = std::string(name);
    info_.state_since = now;
  }
  info_.user = user ? *user : std::string();
  info_.database = database && !database->empty() ? *database : info_.user;
  info_.application_name = application ? *application : std::string();
  info_.console = console_.load();
  info_.client_tls = client_.is_tls();
  if (!has_server) {
    info_.environment.clear();
    info_.server_host.clear();
    info_.server_port = 0;
    info_.server_pid = 0;
    info_.server_tls = false;
    return;
  }
  if (info_.server_pid != server_process_id_ || info_.environment != environment_) {
    info_.server_since = now;
  }
  info_.environment = environment_;
  info_.server_host = server_host_;
  info_.server_port = server_port_;
  info_.server_pid = server_process_id_;
  info_.server_tls = server_.is_tls();
}

SessionInfo Session::info() const {
  std::lock_guard lock(info_mutex_);
  return info_;
}

// ---------------------------------------------------------------------------
// Metrics. The hot path only updates plain members; shared counters are touched once per
// server chunk that ends a query cycle (relaxed adds on this thread's shard).

namespace {
constexpr std::uint32_t kViewClientMask = 0x7;
constexpr std::uint32_t kViewHasServer = 0x8;
constexpr std::uint32_t kViewServerLogin = 0x10;
constexpr std::uint32_t kViewGreen = 0x20;
constexpr std::uint32_t kViewPrewarmed = 0x40;
}  // namespace

SessionView Session::view() const {
  const std::uint32_t bits = view_.load(std::memory_order_relaxed);
  SessionView view;
  view.client = static_cast<ClientState>(bits & kViewClientMask);
  view.has_server = (bits & kViewHasServer) != 0;
  view.server_login = (bits & kViewServerLogin) != 0;
  view.green = (bits & kViewGreen) != 0;
  view.prewarmed = (bits & kViewPrewarmed) != 0;
  return view;
}

void Session::publish() {
  ClientState client = ClientState::kLogin;
  bool has_server = false;
  switch (state_) {
    case State::kStartup:
    case State::kAuth:
      break;
    case State::kLogin:
      has_server = server_login_;
      break;
    case State::kActive:
      has_server = true;
      if (holding_) {
        client = ClientState::kParked;
      } else if (pending_responses_ > 0 || unsynced_ || !client_scanner_.at_boundary()) {
        client = ClientState::kActive;
      } else if (transaction_status_ != 'I') {
        client = ClientState::kIdleInTransaction;
      } else {
        client = ClientState::kIdle;
      }
      break;
    case State::kClosing:
      client = ClientState::kClosing;
      break;
    case State::kConsole:
      client = ClientState::kConsole;
      break;
  }
  std::uint32_t bits = static_cast<std::uint32_t>(client);
  if (has_server) bits |= kViewHasServer;
  if (server_login_) bits |= kViewServerLogin;
  if (green_) bits |= kViewGreen;
  if (prewarmed_) bits |= kViewPrewarmed;
  view_.store(bits, std::memory_order_relaxed);
}

void Session::end_cycle() {
  if (cycle_count_ < cycle_starts_.size()) {
    cycle_starts_[(cycle_head_ + cycle_count_) % cycle_starts_.size()] = cycle_first_;
    ++cycle_count_;
  }
  cycle_open_ = false;
}

void Session::on_ready_for_query() {
  if (server_chunk_time_ == Clock::time_point{}) server_chunk_time_ = Clock::now();
  if (cycle_count_ > 0) {
    last_cycle_start_ = cycle_starts_[cycle_head_];
    cycle_head_ = (cycle_head_ + 1) % cycle_starts_.size();
    --cycle_count_;
  }
  if (pending_latency_) pending_latency_->observe(server_chunk_time_ - last_cycle_start_);
  ++pending_queries_;
  if (transaction_status_ == 'I') ++pending_transactions_;
  flush_due_ = true;
}

void Session::flush_stats() {
  flush_due_ = false;
  if (stats_ == nullptr) return;
  if (pending_queries_ > 0) stats_->queries->add(std::exchange(pending_queries_, 0));
  if (pending_transactions_ > 0) {
    stats_->transactions->add(std::exchange(pending_transactions_, 0));
  }
  if (pending_bytes_in_ > 0) stats_->bytes_received->add(std::exchange(pending_bytes_in_, 0));
  if (pending_bytes_out_ > 0) stats_->bytes_sent->add(std::exchange(pending_bytes_out_, 0));
  if (pending_latency_) stats_->query_duration->merge(*pending_latency_);
}

void Session::count_error(std::string_view sqlstate) {
  if (stats_ != nullptr) stats_->errors.add(sqlstate);
}

bool Session::idle() const {
  return state_ == State::kActive && pending_responses_ == 0 && !unsynced_ &&
         transaction_status_ == 'I' && client_scanner_.at_boundary() &&
         server_scanner_.at_boundary() && !client_write_in_progress_;
}

void Session::request_shutdown() {
  asio::post(client_.get_executor(), [self = shared_from_this()] {
    self->shutdown_requested_ = true;
    // A held request is not forwarded any more: the session ends where it is.
    if (self->holding_) self->release_event_.notify();
    // An idle session is blocked reading the client: wake it so it can end now.
    if (self->state_ != State::kActive || self->idle()) {
      error_code ignored;
      self->client_.cancel(ignored);
    }
  });
}

void Session::pause() {
  asio::post(client_.get_executor(), [self = shared_from_this()] {
    if (self->state_ == State::kActive) self->start_pause();
  });
}

void Session::start_pause() {
  if (console_ || maintenance_paused_) return;
  maintenance_paused_ = true;
  pause_timed_out_ = false;
  park_requested_ = true;
  if (idle()) reached_pause_boundary();
}

void Session::resume() {
  asio::post(client_.get_executor(), [self = shared_from_this()] {
    if (!self->maintenance_paused_) return;
    self->maintenance_paused_ = false;
    self->paused_at_boundary_ = false;
    self->park_requested_ = false;
    self->release_event_.notify();
  });
}

void Session::force_close() {
  asio::post(client_.get_executor(), [self = shared_from_this()] {
    error_code ignored;
    self->client_.close(ignored);
    self->server_.close(ignored);
  });
}

awaitable<void> Session::run() {
  log::debug(log_conn(), "connection from {}", peer_);
  const bool ready = co_await startup();
  if (ready && console_) {
    co_await serve_console();
    co_return;
  }
  if (ready) {
    set_state(State::kActive);
    relay_running_ = true;
    if (context_.paused.load()) start_pause();
  }
  uncount_login();
  if (!ready) {
    if (count_login_failure_) context_.metrics.login_failed(login_failure_);
    error_code ignored;
    server_.close(ignored);
    // Lets a refusal (an ErrorResponse just written) reach the client before the close.
    co_await drain_and_close(client_.socket(), kRefusalGrace);
    co_return;
  }
  auto result = co_await (client_to_server() || server_to_client());
  relay_running_ = false;
  switch_event_.notify();  // a switchover participant must not wait for a finished relay
  const EndReason reason = std::visit([](EndReason r) { return r; }, result);
  co_await finish(reason);
}

// ---------------------------------------------------------------------------
// Startup: read the client's startup packet and log in to the server, bounded
// by server.startup_timeout_ms so silent or slow clients cannot pile up.

awaitable<bool> Session::startup() {
  asio::steady_timer timer(client_.get_executor());
  timer.expires_after(config_->server.startup_timeout);
  auto result = co_await ([this]() -> awaitable<bool> {
    if (!co_await read_startup_packet()) co_return false;
    co_return co_await login_to_server();
  }() || timer.async_wait(use_nothrow));
  if (result.index() == 0) co_return std::get<0>(result);
  login_failure_ = LoginFailure::kTimeout;
  if (state_ == State::kLogin) {
    co_await write_client(proto::encode_error(
        "FATAL", "08006",
        "pgflip could not log in to the server in time (server.startup_timeout_ms)"));
  }
  log::info(log_conn(), "{} closed: startup timeout in state {}", peer_, state_name(state_));
  co_return false;
}

awaitable<bool> Session::read_startup_packet() {
  std::string buffer;
  int negotiations = 0;
  // A TLS record where a length should be: PostgreSQL 17's direct TLS (no SSLRequest).
  struct DirectTls {};
  using Opening = std::variant<proto::StartupPacket, DirectTls>;
  const auto decode = [this](std::string_view bytes) -> proto::DecodeResult<Opening> {
    if (!bytes.empty() && bytes.front() == 0x16 && !client_.is_tls()) {
      return proto::Decoded<Opening>{DirectTls{}, 0};
    }
    auto result = proto::decode_startup(bytes);
    if (auto* decoded = std::get_if<proto::Decoded<proto::StartupPacket>>(&result)) {
      return proto::Decoded<Opening>{std::move(decoded->message), decoded->consumed};
    }
    if (auto* error = std::get_if<proto::DecodeError>(&result)) return std::move(*error);
    return proto::NeedMoreData{};
  };
  for (;;) {
    auto read = co_await read_message(client_, buffer, decode, 1024);
    if (auto* error = std::get_if<proto::DecodeError>(&read)) {
      const bool unsupported = error->code == proto::ErrorCode::kUnsupportedProtocol;
      // Built before the co_await: GCC 12 destroys temporaries of a conditional expression
      // inside a co_await twice (a double free on every bad startup packet).
      std::string reply =
          proto::encode_error("FATAL", unsupported ? "0A000" : "08P01",
                              unsupported ? "unsupported frontend protocol: " + error->detail
                                          : "invalid startup packet: " + error->detail);
      co_await write_client(std::move(reply));
      log::info(log_conn(), "{} closed: bad startup packet: {}", peer_, error->detail);
      co_return false;
    }
    if (auto* ec = std::get_if<error_code>(&read)) {
      // A connection that never said anything (a TCP health check) is no failed login.
      if (buffer.empty() && negotiations == 0 && !client_.is_tls()) count_login_failure_ = false;
      log::debug(log_conn(), "{} closed before startup: {}", peer_, ec->message());
      co_return false;
    }
    auto& opening = std::get<Opening>(read);
    if (std::holds_alternative<DirectTls>(opening)) {
      if (!co_await start_direct_tls(buffer)) co_return false;
      continue;
    }
    auto& packet = std::get<proto::StartupPacket>(opening);

    if (std::holds_alternative<proto::SSLRequest>(packet) ||
        std::holds_alternative<proto::GSSENCRequest>(packet)) {
      const bool tls = std::holds_alternative<proto::SSLRequest>(packet);
      if (!co_await answer_encryption_request(tls, buffer, negotiations)) co_return false;
      continue;
    }
    if (auto* cancel = std::get_if<proto::CancelRequest>(&packet)) {
      count_login_failure_ = false;
      co_return co_await handle_cancel_request(cancel->process_id, cancel->secret_key);
    }
    if (!co_await refuse_unencrypted()) co_return false;
    startup_message_ = std::move(std::get<proto::StartupMessage>(packet));
    client_pending_ = std::move(buffer);
    co_return true;
  }
}

awaitable<bool> Session::handle_cancel_request(std::int32_t process_id, std::int32_t secret_key) {
  if (auto target = context_.cancels.find(process_id, secret_key)) {
    log::info(log_conn(), "cancel request for client key {} forwarded to {}:{}", process_id,
              target->host, target->port);
    co_await send_cancel_request(target->host, target->port, target->process_id, target->secret_key,
                                 config_->server.connect_timeout, id_);
  } else {
    // Like PostgreSQL: an unknown key is ignored silently, so keys cannot be probed.
    log::info(log_conn(), "cancel request with unknown key ignored");
  }
  co_return false;  // a cancel connection never becomes a session
}

ServerTarget Session::make_target(const config::Endpoint& endpoint, std::string environment) const {
  const std::string* user = startup_message_.find("user");
  const std::string* database = startup_message_.find("database");
  ServerTarget target;
  target.environment = std::move(environment);
  target.host = endpoint.host;
  target.port = endpoint.port;
  target.user = endpoint.user.empty() ? *user : endpoint.user;
  target.password = endpoint.password;
  apply_front_door(target, endpoint);
  target.database = !endpoint.database.empty()         ? endpoint.database
                    : (database && !database->empty()) ? *database
                                                       : *user;
  for (const auto& [name, value] : startup_message_.parameters) {
    if (name == "user" || name == "database" || name.starts_with("_pq_.")) continue;
    target.parameters.emplace_back(name, value);
  }
  return target;
}

awaitable<bool> Session::login_to_server() {
  set_state(State::kLogin);
  std::vector<std::string> unsupported_options;
  for (const auto& [name, value] : startup_message_.parameters) {
    if (name.starts_with("_pq_.")) unsupported_options.push_back(name);
    if (name == "replication") {
      co_await write_client(proto::encode_error(
          "FATAL", "0A000",
          "pgflip does not proxy replication connections; connect to the server directly"));
      log::info(log_conn(), "{} refused: replication connection", peer_);
      co_return false;
    }
  }
  if (!co_await authenticate()) co_return false;
  if (wants_console()) co_return co_await start_console(unsupported_options);
  // While a switchover has clients parked, a new login waits for the outcome so that it
  // lands on the environment that serves from then on (bounded by the startup timeout).
  login_pass_ = co_await context_.login_gate.enter();
  if (!login_pass_) co_return false;
  const Router::Active active = context_.router.active();
  ServerTarget target = make_target(active.endpoint, active.name);

  server_login_ = true;
  green_ = target.environment == "green";
  publish();
  auto result = co_await connect_and_login(target, config_->server.connect_timeout);
  server_login_ = false;
  if (auto* error = std::get_if<ServerLoginError>(&result)) {
    login_failure_ = LoginFailure::kServer;
    log::warn(log_conn(), "{} user={} database={}: server login failed: {}", peer_, target.user,
              target.database, error->reason);
    co_await write_client(std::move(error->error_message));
    co_return false;
  }
  auto& login = std::get<ServerLogin>(result);
  server_ = std::move(login.socket);
  server_user_ = target.user;
  environment_ = target.environment;
  server_host_ = target.host;
  server_port_ = target.port;
  server_process_id_ = login.process_id;
  server_secret_key_ = login.secret_key;
  transaction_status_ = login.transaction_status;
  server_parameters_ = std::move(login.parameters);
  publish_info();
  stats_ = &context_.metrics.database(target.database);
  pending_latency_.emplace(*stats_->query_duration);

  const auto [client_pid, client_secret] = context_.cancels.allocate();
  client_process_id_ = client_pid;
  cancel_key_allocated_ = true;
  context_.cancels.set_target(
      client_pid, CancelTarget{server_host_, server_port_, server_process_id_, server_secret_key_});

  std::string out;
  if (startup_message_.minor != 0 || !unsupported_options.empty()) {
    proto::encode(proto::NegotiateProtocolVersion{0, unsupported_options}, out);
  }
  proto::encode(proto::Authentication{0, {}}, out);
  out += login.notices;
  for (const auto& [name, value] : server_parameters_) {
    proto::encode(proto::ParameterStatus{name, value}, out);
  }
  proto::encode(proto::BackendKeyData{client_pid, client_secret}, out);
  proto::encode(proto::ReadyForQuery{transaction_status_}, out);
  client_write_in_progress_ = true;
  auto [ec, n] = co_await asio::async_write(client_, asio::buffer(out), use_nothrow);
  (void)n;
  client_write_in_progress_ = false;
  if (ec) co_return false;
  log::info(log_conn(), "{} user={} database={} connected to {} (server pid {})", peer_,
            target.user, target.database, environment_, server_process_id_);
  co_return true;
}

// ---------------------------------------------------------------------------
// Relay. Each direction reads a chunk, walks its message headers (looking inside
// only the few messages it watches), and forwards the chunk untouched.

awaitable<Session::EndReason> Session::client_to_server() {
  std::vector<char> buffer(kClientReadSize);
  std::size_t have = client_pending_.size();
  if (have > buffer.size()) buffer.resize(have);
  std::copy(client_pending_.begin(), client_pending_.end(), buffer.begin());
  client_pending_.clear();
  client_pending_.shrink_to_fit();

  const auto cancellation = co_await asio::this_coro::cancellation_state;
  auto cancelled = [&] { return cancellation.cancelled() != asio::cancellation_type::none; };
  for (;;) {
    if (have == 0) {
      const bool timed = arm_idle_timer();
      auto [ec, n] = co_await client_.async_read_some(asio::buffer(buffer), use_nothrow);
      if (timed) disarm_idle_timer(ec);
      if (cancelled()) co_return EndReason::kCancelled;
      if (ec) {
        if (ec == asio::error::operation_aborted && idle_timed_out_) {
          co_return EndReason::kIdleClient;
        }
        if (ec == asio::error::operation_aborted && terminate_requested_) {
          co_return EndReason::kTerminated;
        }
        co_return (ec == asio::error::operation_aborted && shutdown_requested_)
            ? EndReason::kShutdown
            : EndReason::kClientGone;
      }
      have = n;
    }
    // A stopping pgflip forwards nothing that would start new work on the server.
    if (shutdown_requested_ && idle()) co_return EndReason::kShutdown;
    // A switchover holds the client's next request at its transaction boundary; it is
    // released to whichever server the session uses by then.
    if (park_requested_ && idle()) {
      holding_ = true;
      had_held_request_ = true;
      held_since_ = std::chrono::steady_clock::now();
      publish();
      release_event_.reset();
      switch_event_.notify();
      // PAUSE holds a request for at most server.query_wait_timeout_ms.
      std::optional<asio::steady_timer> wait_limit;
      if (maintenance_paused_) {
        reached_pause_boundary();
        if (config_->server.query_wait_timeout.count() > 0) {
          wait_limit.emplace(client_.get_executor(), config_->server.query_wait_timeout);
          wait_limit->async_wait([self = shared_from_this()](const error_code& ec) {
            if (ec || !self->holding_) return;
            self->pause_timed_out_ = true;
            self->release_event_.notify();
          });
        }
      }
      co_await release_event_.wait();
      if (wait_limit) wait_limit->cancel();
      holding_ = false;
      publish();
      if (cancelled()) co_return EndReason::kCancelled;
      if (pause_timed_out_) co_return EndReason::kPauseTimeout;
      if (shutdown_requested_) co_return EndReason::kShutdown;
      held_ms_ = std::max(held_ms_, std::chrono::duration<double, std::milli>(
                                        std::chrono::steady_clock::now() - held_since_)
                                        .count());
      if (terminate_requested_) co_return EndReason::kTerminated;
    }

    bool terminate = false;
    Clock::time_point chunk_time{};  // the clock is read at most once per chunk
    const auto open_cycle = [&] {
      if (cycle_open_) return;
      cycle_open_ = true;
      if (chunk_time == Clock::time_point{}) chunk_time = Clock::now();
      cycle_first_ = chunk_time;
    };
    const auto status =
        client_scanner_.scan({buffer.data(), have}, [&](char type, std::string_view body) {
          switch (type) {
            case 'Q':
              // A Query's text is its whole body but the closing '\0'.
              note_custom_settings(body.substr(0, body.empty() ? 0 : body.size() - 1));
              open_cycle();
              end_cycle();
              ++pending_responses_;
              break;
            case 'F':
              open_cycle();
              end_cycle();
              ++pending_responses_;
              break;
            case 'S':
              open_cycle();
              end_cycle();
              ++pending_responses_;
              unsynced_ = false;
              break;
            case 'X':
              terminate = true;
              break;
            case 'P':
            case 'C':
              open_cycle();
              unsynced_ = true;
              on_client_message(type, body);
              break;
            default:  // Bind, Execute, Describe, Flush
              open_cycle();
              unsynced_ = true;
              break;
          }
        });
    pending_bytes_in_ += have;
    publish();
    if (status != proto::ScanStatus::kOk) {
      protocol_error_ = status == proto::ScanStatus::kMessageTooLarge
                            ? "message exceeds server.max_message_size"
                            : "invalid message length";
      co_return EndReason::kClientProtocolError;
    }
    auto [ec, n] =
        co_await asio::async_write(server_, asio::buffer(buffer.data(), have), use_nothrow);
    (void)n;
    have = 0;
    if (cancelled()) co_return EndReason::kCancelled;
    if (ec) co_return EndReason::kServerGone;
    if (terminate) co_return EndReason::kClientTerminated;
  }
}

void Session::on_client_message(char type, std::string_view body) {
  // Named protocol-level prepared statements are remembered so that a switchover can
  // re-Parse them on green; the unnamed statement never outlives its Sync.
  if (type == 'P') {
    const auto end = body.find('\0');
    if (end == std::string_view::npos) return;
    const std::string_view query = body.substr(end + 1);
    note_custom_settings(query.substr(0, query.find('\0')));
    if (end == 0) return;
    prepared_[std::string(body.substr(0, end))] = std::string(body);
  } else if (type == 'C' && body.size() >= 2 && body.front() == 'S') {
    const std::string_view name = body.substr(1, body.find('\0', 1) - 1);
    if (!name.empty()) prepared_.erase(std::string(name));
  }
}

void Session::note_custom_settings(std::string_view sql) {
  if (custom_settings_.size() >= kMaxCustomSettings) return;
  proto::note_custom_settings(sql, custom_settings_);
  if (custom_settings_.size() > kMaxCustomSettings) custom_settings_.resize(kMaxCustomSettings);
}

void Session::on_server_message(char type, std::string_view body) {
  switch (type) {
    case 'Z':
      if (!body.empty()) transaction_status_ = body.front();
      if (pending_responses_ > 0) {
        --pending_responses_;
        on_ready_for_query();
      }
      break;
    case proto::ParameterStatus::kType:
      if (auto status = proto::parse_backend_as<proto::ParameterStatus>(body)) {
        proto::record_parameter_status(server_parameters_, std::move(*status));
      }
      break;
    case proto::ErrorResponse::kType: {
      // A malformed one is still an error the client sees: counted without a SQLSTATE.
      const auto error = proto::parse_backend_as<proto::ErrorResponse>(body);
      count_error(error ? error->code() : std::string_view{});
      const std::string_view severity = error ? error->severity() : std::string_view{};
      last_server_error_fatal_ = severity == "FATAL" || severity == "PANIC";
      break;
    }
    default:
      break;
  }
}

awaitable<Session::EndReason> Session::server_to_client() {
  std::vector<char> buffer(kServerReadSize);
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  auto cancelled = [&] { return cancellation.cancelled() != asio::cancellation_type::none; };
  for (;;) {
    if (pause_server_reader_) {
      // A switchover talks to the server itself (state capture) or swaps it.
      server_reader_paused_ = true;
      resume_event_.reset();
      switch_event_.notify();
      co_await resume_event_.wait();
      server_reader_paused_ = false;
      if (cancelled()) co_return EndReason::kCancelled;
      if (terminate_requested_) co_return EndReason::kTerminated;
      continue;
    }
    auto [ec, n] = co_await server_.async_read_some(asio::buffer(buffer), use_nothrow);
    if (cancelled()) co_return EndReason::kCancelled;
    if (ec == asio::error::operation_aborted && pause_server_reader_) continue;
    if (ec) co_return EndReason::kServerGone;
    server_chunk_time_ = {};
    const auto status = server_scanner_.scan(
        {buffer.data(), n},
        [this](char type, std::string_view body) { on_server_message(type, body); });
    if (status != proto::ScanStatus::kOk) {
      protocol_error_ = "invalid message from server";
      co_return EndReason::kServerProtocolError;
    }
    // Counted before the client can see the ReadyForQuery, so a client that read it finds
    // its query in the metrics.
    pending_bytes_out_ += n;
    if (flush_due_) flush_stats();
    publish();
    client_write_in_progress_ = true;
    auto [wec, wn] =
        co_await asio::async_write(client_, asio::buffer(buffer.data(), n), use_nothrow);
    (void)wn;
    client_write_in_progress_ = false;
    if (cancelled()) co_return EndReason::kCancelled;
    if (wec) co_return EndReason::kClientGone;
    if (shutdown_requested_ && idle()) co_return EndReason::kShutdown;
    if (park_requested_ && idle()) {
      if (maintenance_paused_) reached_pause_boundary();
      switch_event_.notify();
    }
  }
}

// ---------------------------------------------------------------------------
// Ending a session: tell the client why (only at a message boundary, never in the
// middle of a message it is receiving) and make sure the server stops working for it.

awaitable<void> Session::write_client(std::string bytes) {
  // pgflip's own errors to a logged-in client count like the server's.
  if (stats_ != nullptr && !bytes.empty() && bytes.front() == proto::ErrorResponse::kType) {
    const auto decoded = proto::decode_backend(bytes);
    const auto* message = std::get_if<proto::Decoded<proto::BackendMessage>>(&decoded);
    const auto* error = message ? std::get_if<proto::ErrorResponse>(&message->message) : nullptr;
    count_error(error ? error->code() : std::string_view{});
  }
  client_write_in_progress_ = true;
  asio::steady_timer timer(client_.get_executor());
  timer.expires_after(std::chrono::seconds(5));
  // A client that does not read must not hold the session open.
  co_await (asio::async_write(client_, asio::buffer(bytes), use_nothrow) ||
            timer.async_wait(use_nothrow));
  client_write_in_progress_ = false;
}

awaitable<void> Session::cancel_server_query() {
  if (server_process_id_ == 0) co_return;
  co_await send_cancel_request(server_host_, server_port_, server_process_id_, server_secret_key_,
                               config_->server.connect_timeout, id_);
}

awaitable<void> Session::finish(EndReason reason) {
  flush_stats();
  set_state(State::kClosing);
  const bool client_at_boundary = server_scanner_.at_boundary() && !client_write_in_progress_;
  const bool busy = pending_responses_ > 0 || unsynced_ || transaction_status_ != 'I';
  std::string why;
  error_code ignored;
  switch (reason) {
    case EndReason::kClientTerminated:
      why = "client terminated";
      break;
    case EndReason::kClientGone:
      why = busy ? "client disconnected during a query; cancelled it" : "client disconnected";
      // The server would otherwise run the query to its end before noticing.
      if (busy) co_await cancel_server_query();
      break;
    case EndReason::kServerGone:
      why = "server connection lost";
      if (client_at_boundary && !last_server_error_fatal_) {
        co_await write_client(proto::encode_error(
            "FATAL", "08006", "pgflip lost the connection to the server (" + environment_ + ")"));
      }
      break;
    case EndReason::kClientProtocolError:
      why = "protocol violation: " + protocol_error_;
      if (client_at_boundary) {
        co_await write_client(
            proto::encode_error("FATAL", "08P01", "protocol violation: " + protocol_error_));
      }
      if (busy) co_await cancel_server_query();
      break;
    case EndReason::kServerProtocolError:
      why = "server protocol violation";
      break;
    case EndReason::kTerminated:
      why = "ended by switchover: " + terminate_message_;
      if (client_at_boundary) {
        co_await write_client(proto::encode_error("FATAL", "57P01", terminate_message_));
      }
      break;
    case EndReason::kCancelled:
      why = "relay cancelled";
      break;
    case EndReason::kIdleClient:
      why = "idle longer than server.client_idle_timeout_ms";
      co_await write_client(proto::encode_error(
          "FATAL", "57P05", "terminating connection due to idle-session timeout (pgflip)"));
      break;
    case EndReason::kPauseTimeout:
      why = "request held by PAUSE longer than server.query_wait_timeout_ms";
      co_await write_client(proto::encode_error(
          "FATAL", "57014",
          "canceling request: pgflip is paused (PAUSE) and the request waited longer than "
          "server.query_wait_timeout_ms (" +
              std::to_string(config_->server.query_wait_timeout.count()) +
              " ms); the request was not run"));
      break;
    case EndReason::kShutdown:
      why = "pgflip shutting down";
      co_await write_client(proto::encode_error(
          "FATAL", "57P01", "terminating connection because pgflip is shutting down"));
      break;
  }
  if (reason != EndReason::kClientTerminated && reason != EndReason::kServerGone &&
      client_scanner_.at_boundary() && server_.is_open()) {
    // A polite Terminate lets the server end the backend without logging an error.
    std::string terminate;
    proto::encode(proto::Terminate{}, terminate);
    auto [ec, n] = co_await asio::async_write(server_, asio::buffer(terminate), use_nothrow);
    (void)ec;
    (void)n;
  }
  server_.shutdown(StreamSocket::shutdown_both, ignored);
  server_.close(ignored);
  client_.shutdown(tcp::socket::shutdown_both, ignored);
  client_.close(ignored);
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  log::info(log_conn(), "{} closed after {:.3f}s: {}", peer_, seconds, why);
}

}  // namespace pgflip::proxy
