// The switchover report as the admin socket, pgflipctl and the console show it, and the
// history of switchovers as a table.
#include "proxy/admin/switchover_render.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "proxy/base/utc_time.hpp"

namespace pgflip::proxy {

namespace json = boost::json;

std::string step_line(const StepRecord& step) {
  char line[64];
  std::snprintf(line, sizeof line, "%-11s %8.1f ms  ", std::string(step_name(step.step)).c_str(),
                step.ms);
  return line + step.detail;
}

std::string report_text(const SwitchoverReport& r) {
  if (r.outcome == SwitchoverOutcome::kDryRun) {
    return "dry run: guardrails pass; a switchover would move " + std::to_string(r.sessions) +
           " session(s) to green (" + r.green_address + ")\n";
  }
  char summary[512];
  std::snprintf(summary, sizeof summary,
                "switchover %s: %s in %.1f ms\nsessions: %zu total, %zu moved to green, %zu "
                "released to blue, %zu ended\nclients parked: %zu, max %.1f ms, p99 %.1f ms\n"
                "sequences copied: %zu, sentinel: %s\nactive environment: %s\n",
                r.id.c_str(), std::string(outcome_name(r.outcome)).c_str(), r.total_ms, r.sessions,
                r.moved, r.released, r.ended.size(), r.parked_clients, r.max_parked_ms,
                r.p99_parked_ms, r.sequences, r.id.c_str(), r.active.c_str());
  std::string text = summary;
  if (r.failed_step) {
    text += "failed at step " + std::string(step_name(*r.failed_step)) + ": " + r.reason + "\n";
  }
  for (const auto& e : r.ended) {
    text += "  ended c" + std::to_string(e.session) + ": " + e.reason + "\n";
  }
  return text;
}

AdminTable history_table(const std::vector<SwitchoverReport>& reports) {
  AdminTable table({"id", "started", "outcome", "total_ms", "window_ms", "sessions", "moved",
                    "released", "ended", "reason"});
  auto tenths = [](double ms) { return std::round(ms * 10) / 10; };
  for (const auto& r : reports) {
    const auto started = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(r.started_at)));
    table.add({json::string(r.id), json::string(iso8601_utc(started, true)),
               json::string(outcome_summary(r)), tenths(r.total_ms), tenths(r.window_ms),
               r.sessions, r.moved, r.released, r.ended.size(), json::string(r.reason)});
  }
  return table;
}

std::variant<SwitchoverOptions, std::string> switchover_options(const config::Config& config,
                                                                const json::object& args) {
  const auto& so = config.switchover;
  SwitchoverOptions options{so.timeout, so.drain_timeout, so.on_straggler, false};
  auto seconds = [&](std::string_view key, std::chrono::milliseconds& out) -> std::string {
    const json::value* v = args.if_contains(key);
    if (!v) return {};
    const double s = v->is_double() ? v->as_double() : v->is_int64() ? double(v->as_int64()) : -1;
    if (s <= 0 || s > 86400) return std::string(key) + " must be a number of seconds in (0, 86400]";
    out = std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
    return {};
  };
  if (auto e = seconds("timeout_s", options.timeout); !e.empty()) return e;
  if (auto e = seconds("drain_timeout_s", options.drain_timeout); !e.empty()) return e;
  if (const json::value* v = args.if_contains("on_straggler")) {
    if (!v->is_string()) return std::string("on_straggler must be \"abort\" or \"cancel\"");
    if (v->as_string() == "abort") {
      options.on_straggler = config::StragglerPolicy::kAbort;
    } else if (v->as_string() == "cancel") {
      options.on_straggler = config::StragglerPolicy::kCancel;
    } else {
      return std::string("on_straggler must be \"abort\" or \"cancel\"");
    }
  }
  if (const json::value* v = args.if_contains("dry_run"))
    options.dry_run = v->is_bool() && v->as_bool();
  return options;
}

}  // namespace pgflip::proxy
