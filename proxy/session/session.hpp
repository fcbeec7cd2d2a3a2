// One client session: startup, server login, and the relay between client and server.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/frame_scanner.hpp"
#include "protocol/startup.hpp"
#include "proxy/base/asio.hpp"
#include "proxy/base/event.hpp"
#include "proxy/frontdoor/client_auth.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/session/proxy_context.hpp"
#include "proxy/session/switchover_run.hpp"
#include "proxy/upstream/server_connection.hpp"

namespace pgflip::proxy {

/// A copy of what SHOW CLIENTS and SHOW SERVERS tell about a session, safe to read on another
/// thread. The session refreshes it when its state or server connection changes, never per
/// message.
struct SessionInfo {
  std::uint64_t id = 0;
  std::string peer;  // "address:port" of the client
  std::string user;
  std::string database;
  std::string application_name;
  std::string state;     // startup, authenticating, login, active, console, closing
  bool console = false;  // served by the admin console, not by a server
  bool client_tls = false;
  std::chrono::system_clock::time_point connected_at{};
  std::chrono::system_clock::time_point state_since{};
  // The server connection; `environment` is empty while there is none.
  std::string environment;
  std::string server_host;
  std::uint16_t server_port = 0;
  std::int32_t server_pid = 0;
  bool server_tls = false;
  std::chrono::system_clock::time_point server_since{};
};

class Session : public std::enable_shared_from_this<Session>, public SwitchoverParticipant {
 public:
  /// Each state says what the session waits for; changed only in set_state().
  enum class State {
    kStartup,  // waiting for the client's startup packet (SSLRequest, StartupMessage, cancel)
    kAuth,     // waiting for the client's password or SCRAM messages
    kLogin,    // logging in to the server on the client's behalf
    kActive,   // relaying bytes both ways
    kConsole,  // serving the admin console: pgflip answers the client's queries itself
    kClosing,  // telling the client why, releasing the server connection
  };

  /// How the relay ended; decides what the client and server are told.
  enum class EndReason {
    kClientTerminated,  // the client sent Terminate
    kClientGone,        // the client's socket closed or failed
    kServerGone,        // the server's socket closed or failed
    kClientProtocolError,
    kServerProtocolError,
    kShutdown,      // pgflip is stopping and the session reached an idle boundary
    kTerminated,    // a switchover ended the session (straggler, unmovable, replay failed)
    kCancelled,     // the other direction ended first
    kIdleClient,    // idle longer than server.client_idle_timeout_ms
    kPauseTimeout,  // a request held by PAUSE longer than server.query_wait_timeout_ms
  };

  Session(tcp::socket client, ProxyContext& context, std::uint64_t id);
  ~Session() override;

  /// Runs the session to its end; the caller keeps the session alive meanwhile.
  awaitable<void> run();

  /// Thread-safe. The session ends at its next idle boundary (immediately if idle),
  /// telling the client with FATAL 57P01; a transaction in progress runs to its end.
  void request_shutdown();
  /// Thread-safe. Closes both sockets now.
  void force_close();

  [[nodiscard]] std::uint64_t id() const override { return id_; }
  /// Thread-safe. A snapshot for SHOW CLIENTS / SHOW SERVERS.
  [[nodiscard]] SessionInfo info() const;
  /// Thread-safe. Whether the admin console serves this session (it never takes part in a
  /// switchover).
  [[nodiscard]] bool is_console() const { return console_.load(); }

  /// Thread-safe: the session's state as a metrics scrape counts it.
  [[nodiscard]] SessionView view() const;

  /// Thread-safe. Runs this session's part of a switchover (see switchover_run.hpp): open
  /// and authenticate a green connection now, then follow the orchestrator's decisions.
  void join_switchover(std::shared_ptr<SwitchoverRun> run) override;
  /// Thread-safe. Delivers the orchestrator's next decision to the session.
  void decide(SwitchoverDecision decision, std::string reason) override;

  /// Thread-safe. PAUSE: hold the client's next request once the session is at a transaction
  /// boundary, until resume(); a request held longer than server.query_wait_timeout_ms ends
  /// the session with FATAL 57014. Console sessions are never paused.
  void pause();
  /// Thread-safe. RESUME: forward the held request, if any, and carry on.
  void resume();
  /// Thread-safe. Paused and at a transaction boundary: nothing runs on the server for it.
  [[nodiscard]] bool paused_at_boundary() const { return paused_at_boundary_.load(); }

 private:
  void set_state(State state);
  /// What this session's log lines carry besides the message (log.hpp).
  [[nodiscard]] log::Conn log_conn() const;
  /// Refreshes info_ from the session's members (called on the session's executor).
  void publish_info();
  void uncount_login();
  /// Publishes view() after anything it depends on changed (one relaxed store).
  void publish();
  /// Idle: no request outstanding, not inside a transaction, at a message boundary
  /// in both directions. Only here may a session be held, ended or moved.
  [[nodiscard]] bool idle() const;

  awaitable<bool> startup();
  awaitable<bool> read_startup_packet();
  awaitable<bool> handle_cancel_request(std::int32_t process_id, std::int32_t secret_key);
  awaitable<bool> login_to_server();
  awaitable<EndReason> client_to_server();
  awaitable<EndReason> server_to_client();
  awaitable<void> finish(EndReason reason);
  awaitable<void> write_client(std::string bytes);
  awaitable<void> cancel_server_query();

  void on_server_message(char type, std::string_view body);
  void on_client_message(char type, std::string_view body);
  /// Remembers the custom settings (`app.tenant`) a client's SQL may set, for the switchover.
  void note_custom_settings(std::string_view sql);

  // Metrics: counted in plain members on the session's executor, added to the shared
  // (per-thread sharded) counters once per chunk that ends a query cycle, and at the end.
  using Clock = std::chrono::steady_clock;
  void end_cycle();
  void on_ready_for_query();
  void flush_stats();
  void count_error(std::string_view sqlstate);

  // Switchover (session_switchover.cpp).
  struct CapturedState;
  [[nodiscard]] ServerTarget make_target(const config::Endpoint& endpoint,
                                         std::string environment) const;
  awaitable<void> take_part(std::shared_ptr<SwitchoverRun> run);
  awaitable<bool> wait_switch(const std::function<bool()>& condition);
  awaitable<std::string> pause_server_reader();
  void resume_server_reader();
  void release_client();
  awaitable<std::string> capture_state(CapturedState& state);
  /// Before the window: runs the capture once at the session's next boundary (its client held
  /// for that round trip), so that the backend has the catalogs it reads cached when it is
  /// parked. Gives up after kWarmUpWait if the session stays inside a transaction.
  awaitable<void> warm_up_capture();
  awaitable<std::string> replay_state(ServerLogin& green, const CapturedState& state);
  /// Swaps the server connection for `green`; returns the old one, still open.
  awaitable<ServerStream> move_to(ServerLogin green, const std::string& environment,
                                  const config::Endpoint& endpoint);
  /// Ends the old server connection after a switchover, when the run gives its turn.
  awaitable<void> retire(std::shared_ptr<SwitchoverRun> run, ServerStream old);
  void terminate_for_switchover(std::string message);

  // Admin console (session_console.cpp).
  [[nodiscard]] bool wants_console() const;
  awaitable<bool> start_console(const std::vector<std::string>& unsupported_options);
  /// Lends the client to the admin console (context_.console) until it leaves.
  awaitable<void> serve_console();

  // Front door (session_front_door.cpp).
  awaitable<bool> answer_encryption_request(bool tls_request, std::string& buffer,
                                            int& negotiations);
  awaitable<bool> start_direct_tls(std::string& buffer);
  awaitable<bool> refuse_unencrypted();
  awaitable<bool> authenticate();
  void apply_front_door(ServerTarget& target, const config::Endpoint& endpoint) const;
  /// Before a client read: starts the idle timer if the session is idle and an idle timeout
  /// is configured. Returns whether it did; disarm_idle_timer() after the read.
  [[nodiscard]] bool arm_idle_timer();
  void disarm_idle_timer(const error_code& read_result);

  ClientStream client_;  // plain TCP, or TLS once negotiated
  ServerStream server_;
  ProxyContext& context_;
  const std::uint64_t id_;
  const std::shared_ptr<const config::Config> config_;
  // TLS towards the client as it was when the session began (null: not offered); a reload
  // does not change it under the handshake or the channel binding.
  const std::shared_ptr<ClientTlsContext> client_tls_;
  std::string peer_;
  State state_ = State::kStartup;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  protocol::StartupMessage startup_message_;
  std::string client_pending_;  // client bytes read with the startup packet, forwarded after login
  std::string environment_;     // which environment the server connection belongs to
  std::string server_user_;     // the role the server connection logged in as
  std::string server_host_;
  std::uint16_t server_port_ = 0;
  std::int32_t server_process_id_ = 0;
  std::int32_t server_secret_key_ = 0;
  std::int32_t client_process_id_ = 0;  // the BackendKeyData pgflip showed the client
  bool cancel_key_allocated_ = false;

  // Relay state, touched only on the session's executor.
  protocol::FrameScanner client_scanner_;
  protocol::FrameScanner server_scanner_;
  char transaction_status_ = 'I';
  std::uint32_t pending_responses_ = 0;  // Query/Sync/FunctionCall sent, ReadyForQuery not yet seen
  bool unsynced_ = false;                // extended-protocol messages sent since the last Sync
  bool client_write_in_progress_ = false;
  bool last_server_error_fatal_ = false;
  std::string protocol_error_;
  std::vector<std::pair<std::string, std::string>> server_parameters_;

  std::atomic<bool> shutdown_requested_{false};

  // Metrics state, touched only on the session's executor (view_ excepted).
  DatabaseStats* stats_ = nullptr;  // set once logged in
  std::uint64_t pending_queries_ = 0;
  std::uint64_t pending_transactions_ = 0;
  std::uint64_t pending_bytes_in_ = 0;
  std::uint64_t pending_bytes_out_ = 0;
  std::optional<metrics::Histogram::Local> pending_latency_;
  bool flush_due_ = false;
  bool cycle_open_ = false;        // client messages of a cycle not yet ended by Q/S/F
  Clock::time_point cycle_first_;  // when that cycle's first message was seen
  // Start times of the cycles sent and not yet answered, oldest first; a deeper pipeline
  // reuses the last start time popped.
  std::array<Clock::time_point, 8> cycle_starts_{};
  std::size_t cycle_head_ = 0;
  std::size_t cycle_count_ = 0;
  Clock::time_point last_cycle_start_;
  Clock::time_point server_chunk_time_;  // read once per server chunk, when needed
  LoginFailure login_failure_ = LoginFailure::kProtocol;
  bool count_login_failure_ = true;  // false for cancel requests and silent connections
  bool server_login_ = false;        // connecting and logging in to the server
  bool green_ = false;               // environment_ == "green"
  bool prewarmed_ = false;           // a switchover holds a green connection for this session
  std::atomic<std::uint32_t> view_{0};

  // Front door state.
  // What server logins may use for the client (its password, SCRAM keys or MD5 secret).
  ClientCredentials credentials_;
  // The client's per-user and per-database count while logged in.
  ConnectionLimits::Ticket login_ticket_;
  // server.client_idle_timeout_ms: armed for each client read while the session is idle.
  std::unique_ptr<asio::steady_timer> idle_timer_;
  bool idle_timed_out_ = false;

  // Switchover state, touched only on the session's executor.
  std::map<std::string, std::string>
      prepared_;  // protocol-level named statements: name -> Parse body
  // Custom setting names the client's SQL may have set (PostgreSQL lists them nowhere); a
  // switchover reads their values. At most kMaxCustomSettings.
  static constexpr std::size_t kMaxCustomSettings = 256;
  std::vector<std::string> custom_settings_;
  bool relay_running_ = false;
  std::optional<LoginGate::Pass> login_pass_;  // past the login gate, not relaying yet
  bool park_requested_ = false;                // hold the client's next request once idle
  bool holding_ = false;                       // c2s holds a client request until release
  bool pause_server_reader_ = false;
  bool server_reader_paused_ = false;
  bool terminate_requested_ = false;
  std::string terminate_message_;
  std::optional<SwitchoverDecision> decision_;
  std::chrono::steady_clock::time_point held_since_{};
  double held_ms_ = 0;
  bool had_held_request_ = false;
  Event switch_event_;   // anything the switchover participant waits for changed
  Event release_event_;  // c2s may forward its held request
  Event resume_event_;   // s2c may read again

  // PAUSE/RESUME (maintenance without a switchover); on the session's executor.
  void start_pause();
  void reached_pause_boundary();
  bool maintenance_paused_ = false;
  bool pause_timed_out_ = false;
  std::atomic<bool> paused_at_boundary_{false};

  // Admin console state, touched only on the session's executor (console_ also read elsewhere).
  std::atomic<bool> console_{false};
  bool console_admin_ = false;  // in auth.admin_users: may run more than SHOW

  mutable std::mutex info_mutex_;
  SessionInfo info_;  // guarded by info_mutex_
};

}  // namespace pgflip::proxy
