// The control plane: admin commands, the replication manager and the switchover.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>

#include "proxy/admin/admin_server.hpp"
#include "proxy/control/switchover.hpp"
#include "proxy/session/proxy_context.hpp"
#include "replication/settings.hpp"

namespace pgflip::proxy {

class ControlPlane {
 public:
  explicit ControlPlane(ProxyContext& context);
  ~ControlPlane();

  /// Registers every admin command on `admin`.
  void register_commands(AdminServer& admin);

  /// At start-up: route by the durable state, undo a fence left by an interrupted switchover.
  void recover() { switchover_.recover(); }

  /// Re-reads the configuration file (SIGHUP, the `reload` command); see reload.hpp. Refused
  /// while a switchover runs. `trigger` names the cause in the log ("SIGHUP", "admin").
  AdminReply reload(std::string_view trigger);
  /// "STATUS=serving from blue (epoch 1)[, paused]" for systemd (systemctl status).
  [[nodiscard]] std::string service_status() const;
  /// Polls `replication status` in the background for the lag metrics (never on a scrape),
  /// when [green] and replication.databases are configured with admin logins on both sides.
  void start_replication_poller();
  void stop_replication_poller();
  /// After a start-up that found green active: finishes the switchover's replication cleanup
  /// in the background. A pgflip that died at the flip or during the cleanup step left green's
  /// subscription, blue's slot (it holds WAL) and publication; nothing else would drop them.
  /// Idempotent: with nothing left it only reads the catalogs.
  void resume_cleanup();

 private:
  AdminReply status(const AdminRequest& request);
  AdminReply replication_precheck(const AdminRequest& request);
  AdminReply replication_init(const AdminRequest& request, const AdminEmit& emit);
  AdminReply replication_status(const AdminRequest& request);
  AdminReply replication_cleanup(const AdminRequest& request);
  AdminReply switchover(const AdminRequest& request, const AdminEmit& emit);
  AdminReply pause(const AdminRequest& request, const AdminEmit& emit);
  AdminReply resume();

  // The tabular `show ...` commands (admin_commands.cpp).
  AdminReply show_clients();
  AdminReply show_servers();
  AdminReply show_config();
  AdminReply show_state();
  AdminReply show_replication();
  AdminReply show_stats(const AdminRequest& request);
  AdminReply show_switchovers();
  AdminReply switchover_history(const AdminRequest& request);

  void poll_replication(const std::stop_token& stop);
  /// Makes the poller poll now (after replication init, after a switchover).
  void request_poll();

  ProxyContext& context_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  /// Long operations (init, cleanup, switchover) change the servers: one at a time.
  std::timed_mutex long_operation_;
  /// A switchover and a reload both change the router's endpoint: never at the same time.
  std::mutex router_change_;
  Switchover switchover_;

  /// The switchover in progress or the last one, for SHOW STATE.
  struct SwitchoverRecord {
    bool running = false;
    std::string id;
    std::string outcome;  // committed, aborted, dry-run, failed
    std::string finished_at;
    std::string reason;
  };
  std::mutex record_mutex_;
  SwitchoverRecord record_;  // guarded by record_mutex_
  std::mutex poll_mutex_;
  std::condition_variable_any poll_wake_;
  bool poll_requested_ = false;
  std::jthread cleanup_;  // resume_cleanup()'s run
  std::jthread poller_;   // last: stopped and joined before the rest is destroyed
};

}  // namespace pgflip::proxy
