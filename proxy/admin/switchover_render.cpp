// The switchover report as the admin socket, pgflipctl and the console show it.
#include "proxy/admin/switchover_render.hpp"

#include <cstdio>

namespace pgflip::proxy {

namespace json = boost::json;

json::object step_json(const StepRecord& step) {
  return json::object{{"step", step_name(step.step)},
                      {"ms", step.ms},
                      {"started_at", step.started_at},
                      {"detail", step.detail}};
}

std::string step_line(const StepRecord& step) {
  char line[64];
  std::snprintf(line, sizeof line, "%-11s %8.1f ms  ", std::string(step_name(step.step)).c_str(),
                step.ms);
  return line + step.detail;
}

json::object report_json(const SwitchoverReport& r) {
  json::array steps;
  for (const auto& step : r.steps) steps.push_back(step_json(step));
  json::array ended;
  for (const auto& e : r.ended) {
    ended.push_back(
        json::object{{"session", e.session}, {"phase", phase_name(e.phase)}, {"reason", e.reason}});
  }
  json::array stragglers;
  for (auto sid : r.stragglers) stragglers.push_back(sid);
  return json::object{{"switchover_id", r.id},
                      {"outcome", outcome_name(r.outcome)},
                      {"failed_step", r.failed_step ? step_name(*r.failed_step) : ""},
                      {"reason", r.reason},
                      {"total_ms", r.total_ms},
                      {"steps", std::move(steps)},
                      {"sessions", json::object{{"total", r.sessions},
                                                {"moved", r.moved},
                                                {"released_to_blue", r.released},
                                                {"ended", r.ended.size()}}},
                      {"ended", std::move(ended)},
                      {"stragglers", std::move(stragglers)},
                      {"parked_clients", r.parked_clients},
                      {"max_parked_ms", r.max_parked_ms},
                      {"p99_parked_ms", r.p99_parked_ms},
                      {"sequences_copied", r.sequences},
                      {"sentinel", r.id},
                      {"active", r.active}};
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
