// The switchover orchestrator: guardrails, pre-warm, park, fence, drain, sequences, commit, flip.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>

#include "proxy/admin_server.hpp"
#include "proxy/proxy_context.hpp"
#include "proxy/utc_time.hpp"

namespace pgflip::proxy {

struct SwitchoverOptions {
  std::chrono::milliseconds timeout;        // everything before the commit point
  std::chrono::milliseconds drain_timeout;  // sessions reach a transaction boundary
  config::StragglerPolicy on_straggler;
  bool dry_run = false;
};

/// Runs switchovers; one at a time (the caller serializes). Blocking: call from an admin thread.
class Switchover {
 public:
  explicit Switchover(ProxyContext& context) : context_(context) {}

  /// Options from [switchover], overridden by the request's args (timeout_s, drain_timeout_s,
  /// on_straggler, dry_run). Returns the reason when an arg is invalid.
  [[nodiscard]] std::variant<SwitchoverOptions, std::string> options_from(
      const boost::json::object& args) const;

  /// Runs one switchover, emitting a "step" event per step; the reply holds the report.
  [[nodiscard]] AdminReply run(const SwitchoverOptions& options, const AdminEmit& emit);

  /// Thread-safe: asks a running switchover to abort at its next check (before the commit
  /// point only). Returns false when none is running or it is past the commit point.
  bool request_abort();

  /// Thread-safe: whether a switchover is running now.
  [[nodiscard]] bool running() const { return running_.load(); }

  /// At start-up: route by the state file, and unfence blue if a switchover died before its
  /// commit point. Throws when the state file is unreadable.
  void recover();

 private:
  ProxyContext& context_;
  std::atomic<bool> running_{false};
  std::atomic<bool> committed_{false};
  std::atomic<bool> abort_requested_{false};
};

}  // namespace pgflip::proxy
