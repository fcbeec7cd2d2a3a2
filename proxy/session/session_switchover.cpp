// A session's part in a switchover: pre-warm green, park, capture state, move or release.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdlib>

#include "protocol/messages.hpp"
#include "protocol/sql_quote.hpp"
#include "proxy/base/read_message.hpp"
#include "proxy/session/session.hpp"

namespace pgflip::proxy {

namespace proto = pgflip::protocol;
using proto::quote_ident;
using Clock = std::chrono::steady_clock;

/// How long the warm-up waits for the session to reach a transaction boundary.
constexpr std::chrono::milliseconds kWarmUpWait{1000};
/// How long a retiring blue connection's backend gets to exit before pgflip closes it anyway.
constexpr std::chrono::seconds kRetireExitWait{5};

/// What a parked session holds on its blue backend that must exist on green too.
struct Session::CapturedState {
  struct Setting {
    std::string name;
    std::string value;
    // Whether the session's current identity may set it. If not, a more privileged identity
    // set it before lowering itself (a superuser login, then SET ROLE): green sets it as the
    // login user, before the identity.
    bool identity_may_set = true;
  };
  std::vector<Setting> settings;  // pg_settings, source = session
  // role and session_authorization are GUC_NO_SHOW_ALL: never in pg_settings, read directly.
  std::string session_authorization;      // SET SESSION AUTHORIZATION target; empty: the login user
  std::string role;                       // SET ROLE target; empty: NONE
  std::vector<std::string> sql_prepares;  // full PREPARE statements
  std::vector<std::string> protocol_statements;  // names still prepared on blue
  std::vector<std::string> channels;             // LISTEN
  std::vector<std::string> advisory_locks;       // pg_try_advisory_lock... calls
  std::string unmovable;                         // why the session cannot move, or empty
  std::int32_t backend_pid = 0;
};

namespace {

/// Result sets of one simple Query, and the async messages met on the way.
struct QueryResult {
  std::vector<std::vector<std::vector<std::optional<std::string>>>> sets;
  std::string error;  // first ErrorResponse message, if any
  std::vector<proto::ParameterStatus> parameter_status;
  std::string passthrough;  // NotificationResponse / NoticeResponse bytes for the client
};

std::string dollar_quote(std::string_view value) {
  std::string tag = "$pgflip$";
  while (value.find(tag) != std::string_view::npos) tag.insert(tag.size() - 1, "x");
  return tag + std::string(value) + tag;
}

/// Sends `bytes` and reads until `ready_count` ReadyForQuery messages arrived.
awaitable<QueryResult> exchange(ServerStream& socket, const std::string& bytes, int ready_count) {
  QueryResult result;
  auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(bytes), use_nothrow);
  (void)wn;
  if (wec) {
    result.error = "write failed: " + wec.message();
    co_return result;
  }
  std::string buffer;
  bool in_set = false;
  while (ready_count > 0) {
    auto read = co_await read_message(
        socket, buffer,
        [](std::string_view bytes) { return proto::decode_backend(bytes, std::size_t{1} << 30); },
        8192);
    if (auto* error = std::get_if<proto::DecodeError>(&read)) {
      result.error = "invalid message from server: " + error->detail;
      co_return result;
    }
    if (auto* ec = std::get_if<error_code>(&read)) {
      result.error = "server connection lost: " + ec->message();
      co_return result;
    }
    std::visit(
        [&](auto& m) {
          using M = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<M, proto::RowDescription>) {
            result.sets.emplace_back();
            in_set = true;
          } else if constexpr (std::is_same_v<M, proto::DataRow>) {
            if (in_set) result.sets.back().push_back(m.columns);
          } else if constexpr (std::is_same_v<M, proto::ErrorResponse>) {
            if (result.error.empty()) result.error = std::string(m.message());
          } else if constexpr (std::is_same_v<M, proto::ReadyForQuery>) {
            --ready_count;
          } else if constexpr (std::is_same_v<M, proto::ParameterStatus>) {
            result.parameter_status.push_back(std::move(m));
          } else if constexpr (std::is_same_v<M, proto::NotificationResponse> ||
                               std::is_same_v<M, proto::NoticeResponse>) {
            proto::encode(m, result.passthrough);
          } else if constexpr (std::is_same_v<M, proto::CommandComplete>) {
            in_set = false;
          }
        },
        std::get<proto::BackendMessage>(read));
  }
  co_return result;
}

}  // namespace

void Session::join_switchover(std::shared_ptr<SwitchoverRun> run) {
  asio::co_spawn(
      client_.get_executor(),
      [self = shared_from_this(), run]() -> awaitable<void> { co_await self->take_part(run); },
      asio::detached);
}

void Session::decide(SwitchoverDecision decision, std::string reason) {
  asio::post(client_.get_executor(), [self = shared_from_this(), decision, reason] {
    self->decision_ = decision;
    if (!reason.empty()) self->terminate_message_ = reason;
    self->switch_event_.notify();
  });
}

awaitable<bool> Session::wait_switch(const std::function<bool()>& condition) {
  while (!condition()) {
    if (!relay_running_) co_return false;
    switch_event_.reset();
    if (condition()) break;
    co_await switch_event_.wait();
  }
  co_return relay_running_ || condition();
}

awaitable<std::string> Session::pause_server_reader() {
  pause_server_reader_ = true;
  error_code ignored;
  server_.cancel(ignored);
  if (!co_await wait_switch([this] { return server_reader_paused_; })) {
    co_return "session ended";
  }
  co_return std::string{};
}

void Session::resume_server_reader() {
  pause_server_reader_ = false;
  resume_event_.notify();
}

void Session::release_client() {
  park_requested_ = false;
  release_event_.notify();
}

void Session::terminate_for_switchover(std::string message) {
  terminate_message_ = std::move(message);
  terminate_requested_ = true;
  park_requested_ = false;
  release_event_.notify();
  resume_event_.notify();
  error_code ignored;
  client_.cancel(ignored);  // wakes a relay blocked reading the client
}

awaitable<std::string> Session::capture_state(CapturedState& state) {
  // Whether the session's identity may SET a parameter itself: GRANT SET ON PARAMETER exists
  // from PostgreSQL 15 (has_parameter_privilege); before it, only a superuser sets the
  // superuser-context ones.
  auto capture_sql = [](std::string_view may_set) {
    return "SELECT name, setting, context = 'user' OR " + std::string(may_set) +
           " FROM pg_catalog.pg_settings WHERE source = 'session' AND name NOT IN "
           "('transaction_isolation', 'transaction_read_only', 'transaction_deferrable');"
           "SELECT name, statement, from_sql FROM pg_catalog.pg_prepared_statements;"
           "SELECT pg_catalog.pg_listening_channels();"
           "SELECT classid, objid, objsubid, mode FROM pg_catalog.pg_locks WHERE locktype = "
           "'advisory' AND pid = pg_catalog.pg_backend_pid() AND granted;"
           "SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relpersistence = 't' AND "
           "relnamespace = pg_catalog.pg_my_temp_schema()), (SELECT count(*) FROM "
           "pg_catalog.pg_cursors WHERE is_holdable), pg_catalog.pg_backend_pid();"
           // session_user differs from the role pgflip logged in as only after SET SESSION
           // AUTHORIZATION; the role is 'none' unless a SET ROLE (or a default) is in force.
           "SELECT session_user, current_user, pg_catalog.current_setting('role') <> 'none';";
  };
  static const std::string kCaptureSql =
      capture_sql("pg_catalog.has_parameter_privilege(current_user, name, 'SET')");
  static const std::string kCaptureSqlBefore15 =
      capture_sql("(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)");
  const auto version = std::find_if(server_parameters_.begin(), server_parameters_.end(),
                                    [](const auto& p) { return p.first == "server_version"; });
  const bool before_15 =
      version != server_parameters_.end() && std::atoi(version->second.c_str()) < 15;
  std::string sql = before_15 ? kCaptureSqlBefore15 : kCaptureSql;
  // Custom settings (placeholders such as app.tenant) are in no catalog view: the names the
  // client's SQL used are asked for one by one.
  if (!custom_settings_.empty()) {
    sql += "SELECT n, pg_catalog.current_setting(n, true) FROM pg_catalog.unnest(ARRAY[";
    for (std::size_t i = 0; i < custom_settings_.size(); ++i) {
      sql += (i ? ", " : "") + proto::quote_literal(custom_settings_[i]);
    }
    sql += "]::text[]) AS n;";
  }
  const std::size_t sets = custom_settings_.empty() ? 6 : 7;
  std::string query;
  proto::encode(proto::Query{sql}, query);
  QueryResult result = co_await exchange(server_, query, 1);
  if (!result.passthrough.empty()) co_await write_client(std::move(result.passthrough));
  if (!result.error.empty()) co_return "state capture on blue failed: " + result.error;
  if (result.sets.size() != sets) co_return "state capture on blue returned unexpected results";

  for (const auto& row : result.sets[0]) {
    if (row.size() == 3 && row[0] && row[1]) {
      state.settings.push_back({*row[0], *row[1], !row[2] || *row[2] == "t"});
    }
  }
  for (const auto& row : result.sets[1]) {
    if (row.size() != 3 || !row[0] || !row[1] || !row[2]) continue;
    if (*row[2] == "t") {
      state.sql_prepares.push_back(*row[1]);
    } else {
      state.protocol_statements.push_back(*row[0]);
    }
  }
  for (const auto& row : result.sets[2]) {
    if (!row.empty() && row[0]) state.channels.push_back(*row[0]);
  }
  for (const auto& row : result.sets[3]) {
    if (row.size() != 4 || !row[0] || !row[1] || !row[2] || !row[3]) continue;
    const bool shared = *row[3] == "ShareLock";
    const std::string fn =
        shared ? "pg_catalog.pg_try_advisory_lock_shared(" : "pg_catalog.pg_try_advisory_lock(";
    if (*row[2] == "1") {  // one bigint key: classid holds the high half, objid the low half
      state.advisory_locks.push_back(fn + "((" + *row[0] + "::bigint << 32) | " + *row[1] +
                                     "::bigint))");
    } else {  // two int4 keys
      state.advisory_locks.push_back(fn + *row[0] + "::bigint::int4, " + *row[1] +
                                     "::bigint::int4)");
    }
  }
  if (!result.sets[4].empty() && result.sets[4][0].size() == 3) {
    const auto& row = result.sets[4][0];
    if (row[0] && *row[0] != "0") state.unmovable = "it holds temporary tables";
    if (row[1] && *row[1] != "0") {
      state.unmovable +=
          std::string(state.unmovable.empty() ? "it holds" : " and") + " WITH HOLD cursors";
    }
    if (row[2]) state.backend_pid = std::stoi(*row[2]);
  }
  // Without its identity a session would continue on green as its login role: never move it so.
  if (result.sets[5].size() != 1 || result.sets[5][0].size() != 3) {
    co_return "state capture on blue returned no session identity";
  }
  const auto& identity = result.sets[5][0];
  for (const auto& column : identity) {
    if (!column) co_return "state capture on blue returned no session identity";
  }
  if (*identity[0] != server_user_) state.session_authorization = *identity[0];
  if (sets == 7) {
    for (const auto& row : result.sets[6]) {
      if (row.size() != 2 || !row[0] || !row[1]) continue;  // never set in this session
      const bool known = std::any_of(state.settings.begin(), state.settings.end(),
                                     [&](const auto& s) { return s.name == *row[0]; });
      if (!known) state.settings.push_back({*row[0], *row[1], true});
    }
  }
  if (*identity[2] == "t") state.role = *identity[1];  // current_user is the role at top level
  co_return std::string{};
}

awaitable<void> Session::warm_up_capture() {
  // A backend's first read of pg_settings, pg_locks and the rest loads their catalog entries:
  // measured ~15 ms of CPU for the capture on a fresh backend, ~2 ms once warm. Paid here,
  // while clients run, it is not paid again while every client is held.
  bool timed_out = false;
  asio::steady_timer limit(client_.get_executor(), kWarmUpWait);
  limit.async_wait([this, &timed_out](const error_code& ec) {
    if (ec) return;
    timed_out = true;
    switch_event_.notify();
  });
  park_requested_ = true;
  const bool running =
      co_await wait_switch([&] { return idle() || timed_out || decision_.has_value(); });
  limit.cancel();
  if (!running || !idle() || decision_.has_value()) {
    release_client();
    co_return;
  }
  if (auto failure = co_await pause_server_reader(); !failure.empty()) {
    release_client();
    co_return;
  }
  CapturedState ignored;
  if (auto failure = co_await capture_state(ignored); !failure.empty()) {
    log::debug(log_conn(), "switchover warm-up: {}", failure);
  }
  resume_server_reader();
  release_client();
}

awaitable<std::string> Session::replay_state(ServerLogin& green, const CapturedState& state) {
  std::string sql;
  auto set = [&](const CapturedState::Setting& setting) {
    sql += "SELECT pg_catalog.set_config(" + dollar_quote(setting.name) + ", " +
           dollar_quote(setting.value) + ", false);";
  };
  // What the session's identity may not set was set by a more privileged one before it: set
  // it now, as the login user.
  for (const auto& setting : state.settings) {
    if (!setting.identity_may_set) set(setting);
  }
  // Identity next, SET SESSION AUTHORIZATION first (it ends any SET ROLE). NONE is said too:
  // green's login may have put a default role in force (ALTER ROLE ... SET role) that the
  // session left on blue.
  if (!state.session_authorization.empty()) {
    sql += "SET SESSION AUTHORIZATION " + quote_ident(state.session_authorization) + ";";
  }
  sql += state.role.empty() ? "SET ROLE NONE;" : "SET ROLE " + quote_ident(state.role) + ";";
  // The rest as the session's own identity, as on blue.
  for (const auto& setting : state.settings) {
    if (setting.identity_may_set) set(setting);
  }
  for (const auto& prepare : state.sql_prepares) sql += prepare + ";";
  for (const auto& channel : state.channels) sql += "LISTEN " + quote_ident(channel) + ";";
  if (!state.advisory_locks.empty()) {
    sql += "SELECT ";
    for (std::size_t i = 0; i < state.advisory_locks.size(); ++i) {
      sql += (i ? " AND " : "") + state.advisory_locks[i];
    }
    sql += ";";
  }
  std::string bytes;
  int ready = 0;
  if (!sql.empty()) {
    proto::encode(proto::Query{sql}, bytes);
    ++ready;
  }
  // Protocol-level statements: the client's own Parse messages, each with its own Sync so
  // one failure cannot hide another.
  for (const auto& name : state.protocol_statements) {
    auto it = prepared_.find(name);
    if (it == prepared_.end()) continue;
    const auto parse = proto::parse_frontend_as<proto::Parse>(it->second);
    if (!parse)
      co_return "restoring session state on green failed: statement " + name +
          " has a malformed Parse";
    proto::encode(*parse, bytes);
    proto::encode(proto::Sync{}, bytes);
    ++ready;
  }
  if (ready == 0) co_return std::string{};
  QueryResult result = co_await exchange(green.socket, bytes, ready);
  for (auto& status : result.parameter_status) {
    proto::record_parameter_status(green.parameters, std::move(status));
  }
  if (!result.error.empty()) co_return "restoring session state on green failed: " + result.error;
  if (!state.advisory_locks.empty()) {
    const auto& last =
        result.sets.empty() ? decltype(result.sets)::value_type{} : result.sets.back();
    if (last.empty() || last[0].empty() || !last[0][0] || *last[0][0] != "t") {
      co_return std::string("an advisory lock held on blue is taken on green");
    }
  }
  co_return std::string{};
}

awaitable<ServerStream> Session::move_to(ServerLogin green, const std::string& environment,
                                         const config::Endpoint& endpoint) {
  // Notifications that reached blue before the fence are still the client's: one empty query
  // round trip on blue brings every one queued before it (a backend delivers them before its
  // ReadyForQuery), over TLS as well as plain TCP.
  std::string flush;
  proto::encode(proto::Query{""}, flush);
  QueryResult pending = co_await exchange(server_, flush, 1);
  if (!pending.passthrough.empty()) co_await write_client(std::move(pending.passthrough));

  ServerStream old = std::move(server_);
  server_ = std::move(green.socket);
  environment_ = environment;
  green_ = environment == "green";
  prewarmed_ = false;
  publish();
  server_host_ = endpoint.host;
  server_port_ = endpoint.port;
  server_process_id_ = green.process_id;
  server_secret_key_ = green.secret_key;
  transaction_status_ = green.transaction_status;
  publish_info();
  context_.cancels.set_target(
      client_process_id_,
      CancelTarget{server_host_, server_port_, server_process_id_, server_secret_key_});
  // The client learns every reported parameter that differs on green (server_version...).
  std::string updates;
  for (const auto& [name, value] : green.parameters) {
    bool same = false;
    for (const auto& [known, current] : server_parameters_) {
      if (known == name) same = current == value;
    }
    if (!same) proto::encode(proto::ParameterStatus{name, value}, updates);
  }
  server_parameters_ = std::move(green.parameters);
  if (!updates.empty()) co_await write_client(std::move(updates));
  co_return old;
}

awaitable<void> Session::retire(std::shared_ptr<SwitchoverRun> run, ServerStream old) {
  const bool turn = co_await run->retire_turn(Clock::now() + kRetireWait);
  std::string terminate;
  proto::encode(proto::Terminate{}, terminate);
  co_await asio::async_write(old, asio::buffer(terminate), use_nothrow);
  // Until the backend has gone (its end of the socket closes), a few seconds at most: the
  // next session's turn waits for it.
  asio::steady_timer limit(old.get_executor(), kRetireExitWait);
  limit.async_wait([&old](const error_code& ec) {
    error_code ignored;
    if (!ec) old.cancel(ignored);
  });
  std::array<char, 256> discard;
  for (;;) {
    auto [ec, n] = co_await old.async_read_some(asio::buffer(discard), use_nothrow);
    if (ec) break;
  }
  limit.cancel();
  error_code ignored;
  old.close(ignored);
  if (turn) run->retired();
}

awaitable<void> Session::take_part(std::shared_ptr<SwitchoverRun> run) {
  decision_.reset();  // nothing from an earlier run counts
  if (state_ != State::kActive || !relay_running_) {
    run->report(id_, ParticipantPhase::kEnded, "not active");
    co_return;
  }
  // 1. Pre-warm: log in to green now, outside the pause.
  const config::Endpoint& green_endpoint = run->green();
  auto login =
      co_await connect_and_login(make_target(green_endpoint, "green"), run->connect_timeout());
  if (auto* error = std::get_if<ServerLoginError>(&login)) {
    run->report(id_, ParticipantPhase::kFailed, "green login failed: " + error->reason);
    co_return;
  }
  auto green = std::move(std::get<ServerLogin>(login));
  // Counted as a prewarmed green connection until it is used or dropped.
  prewarmed_ = true;
  publish();
  struct Unprewarm {
    Session* session;
    ~Unprewarm() {
      session->prewarmed_ = false;
      session->publish();
    }
  } unprewarm{this};
  co_await warm_up_capture();
  run->update(id_, [&](ParticipantState& s) { s.blue_pid = server_process_id_; });
  run->report(id_, ParticipantPhase::kPrewarmed);

  if (!co_await wait_switch([this] { return decision_.has_value(); })) {
    run->report(id_, ParticipantPhase::kEnded, "client disconnected");
    co_return;
  }
  if (*decision_ != SwitchoverDecision::kPark) {
    run->report(id_, ParticipantPhase::kReleased);
    co_return;
  }
  decision_.reset();

  // 2. Park at the next transaction boundary. The report's held times are this park's only
  // (not the warm-up's, nor a PAUSE's).
  had_held_request_ = false;
  held_ms_ = 0;
  park_requested_ = true;
  if (!co_await wait_switch([this] { return idle() || decision_.has_value(); })) {
    run->report(id_, ParticipantPhase::kEnded, "client disconnected");
    co_return;
  }
  if (decision_ && !idle()) {  // a straggler: abort releases it, terminate ends it
    park_requested_ = false;
    if (*decision_ == SwitchoverDecision::kTerminate) {
      terminate_for_switchover(terminate_message_);
      run->report(id_, ParticipantPhase::kEnded, "straggler terminated");
    } else {
      release_client();
      run->report(id_, ParticipantPhase::kReleased);
    }
    co_return;
  }
  run->report(id_, ParticipantPhase::kHeld);
  if (auto failure = co_await pause_server_reader(); !failure.empty()) {
    run->report(id_, ParticipantPhase::kEnded, failure);
    co_return;
  }
  CapturedState state;
  if (auto failure = co_await capture_state(state); !failure.empty()) {
    resume_server_reader();
    release_client();
    run->report(id_, ParticipantPhase::kFailed, failure);
    co_return;
  }
  // Restore it on green now, while the client is held and the other sessions still park: the
  // commit then only swaps connections. Nothing on green sees it before the commit, and an
  // abort drops the green connection with it. A state green refuses (a role missing there, an
  // advisory lock taken) makes the session unmovable: switchover.unmovable_sessions decides.
  if (state.unmovable.empty()) {
    if (auto failure = co_await replay_state(green, state); !failure.empty()) {
      state.unmovable = std::move(failure);
    }
  }
  run->update(id_, [&](ParticipantState& s) {
    s.unmovable = state.unmovable;
    if (state.backend_pid) s.blue_pid = state.backend_pid;
  });
  run->report(id_, ParticipantPhase::kParked);

  // 3. Wait for the outcome.
  if (!co_await wait_switch([this] { return decision_.has_value(); })) {
    run->report(id_, ParticipantPhase::kEnded, "client disconnected while parked");
    co_return;
  }
  const SwitchoverDecision outcome = *decision_;
  auto report_held = [&] {
    run->update(id_, [&](ParticipantState& s) {
      s.had_held_request = had_held_request_;
      s.held_ms =
          holding_ ? std::chrono::duration<double, std::milli>(Clock::now() - held_since_).count()
                   : held_ms_;
    });
  };
  if (outcome == SwitchoverDecision::kAbort) {
    report_held();
    resume_server_reader();
    release_client();
    run->report(id_, ParticipantPhase::kReleased);
    co_return;
  }
  if (outcome == SwitchoverDecision::kTerminate) {
    report_held();
    terminate_for_switchover(terminate_message_);
    run->report(id_, ParticipantPhase::kEnded, terminate_message_);
    co_return;
  }
  // 4. Commit: the decision is durable; this session moves to green (its state is there
  // already) or ends.
  if (!state.unmovable.empty()) {
    report_held();
    terminate_for_switchover("pgflip switched over to green; this session could not move because " +
                             state.unmovable);
    run->report(id_, ParticipantPhase::kEnded, "unmovable: " + state.unmovable);
    co_return;
  }
  ServerStream blue = co_await move_to(std::move(green), "green", green_endpoint);
  report_held();
  resume_server_reader();
  release_client();
  log::info(log_conn(), "moved to green (server pid {})", server_process_id_);
  run->report(id_, ParticipantPhase::kMoved);

  // 5. Its blue backend ends once every session is released, a few at a time.
  co_await retire(std::move(run), std::move(blue));
}

}  // namespace pgflip::proxy
