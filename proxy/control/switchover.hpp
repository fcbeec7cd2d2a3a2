// Runs switchovers for the daemon: one at a time, each a SwitchoverMachine wired to the
// replication manager and the live sessions; recovers the active environment at start-up.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <variant>

#include "proxy/control/switchover_machine.hpp"
#include "proxy/session/proxy_context.hpp"

namespace pgflip::proxy {

/// Why a switchover did not start (nothing changed).
struct SwitchoverRefusal {
  std::string code;  // "config", "state", "busy"
  std::string message;
};

class Switchover {
 public:
  explicit Switchover(ProxyContext& context) : context_(context) {}

  /// Runs one switchover with the configuration in force when it starts. Blocking: call
  /// from a control thread. Refused when one is running or green is already active.
  [[nodiscard]] std::variant<SwitchoverReport, SwitchoverRefusal> run(
      const SwitchoverOptions& options, const SwitchoverObserver& observer);

  /// Thread-safe: asks a running switchover to roll back. False when none is running or it
  /// is past its commit point.
  bool request_abort();

  /// Thread-safe: whether a switchover is running now.
  [[nodiscard]] bool running() const { return running_.load(); }

  /// At start-up: route by the state file, and unfence blue if a switchover died before its
  /// commit point. Throws when the state file is unreadable.
  void recover();

 private:
  ProxyContext& context_;
  std::atomic<bool> running_{false};
  std::mutex machine_mutex_;
  SwitchoverMachine* machine_ = nullptr;  // the running one; guarded by machine_mutex_
};

}  // namespace pgflip::proxy
