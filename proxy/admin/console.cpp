// The admin console's language and results: SQL-like commands mapped onto admin commands,
// and admin replies shaped into PostgreSQL result sets.
#include "proxy/admin/console.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "protocol/messages.hpp"
#include "proxy/admin/admin_table.hpp"

namespace pgflip::proxy::console {

namespace json = boost::json;
namespace proto = pgflip::protocol;

namespace {

std::string upper(std::string_view word) {
  std::string out(word);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string lower(std::string_view word) {
  std::string out(word);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// The statements of a query: comments blanked out, split at ';' outside quotes.
std::vector<std::string> split_statements(std::string_view text) {
  std::vector<std::string> statements(1);
  int block_depth = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (block_depth > 0) {
      if (c == '*' && next == '/') {
        --block_depth;
        ++i;
      } else if (c == '/' && next == '*') {
        ++block_depth;  // PostgreSQL's block comments nest
        ++i;
      }
      continue;
    }
    if (c == '/' && next == '*') {
      block_depth = 1;
      ++i;
      statements.back() += ' ';
    } else if (c == '-' && next == '-') {
      while (i < text.size() && text[i] != '\n') ++i;
      statements.back() += ' ';
    } else if (c == '\'' || c == '"') {
      // Quoted text has no place in the language, but a ';' inside it ends nothing.
      const std::size_t end = text.find(c, i + 1);
      const std::size_t stop = end == std::string_view::npos ? text.size() : end + 1;
      statements.back().append(text.substr(i, stop - i));
      i = stop - 1;
    } else if (c == ';') {
      statements.emplace_back();
    } else {
      statements.back() += c;
    }
  }
  return statements;
}

std::vector<std::string> words(std::string_view statement) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < statement.size()) {
    while (i < statement.size() && std::isspace(static_cast<unsigned char>(statement[i]))) ++i;
    const std::size_t start = i;
    while (i < statement.size() && !std::isspace(static_cast<unsigned char>(statement[i]))) ++i;
    if (i > start) out.emplace_back(statement.substr(start, i - start));
  }
  return out;
}

bool is_identifier(std::string_view word) {
  if (word.empty() || std::isdigit(static_cast<unsigned char>(word.front()))) return false;
  return std::all_of(word.begin(), word.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

ParseError syntax_error(std::string_view near, std::string hint = {}) {
  return ParseError{"syntax error at or near \"" + std::string(near) + "\"",
                    hint.empty() ? "SHOW HELP lists the console's commands" : std::move(hint)};
}

/// A positive number of seconds, at most one day (the admin command checks it again).
std::optional<double> seconds(std::string_view word) {
  const std::string text(word);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value) || value <= 0 ||
      value > 86400) {
    return std::nullopt;
  }
  return value;
}

constexpr std::string_view kSwitchoverSyntax =
    "SWITCHOVER [DRY RUN] [TIMEOUT <seconds>] [DRAIN_TIMEOUT <seconds>] "
    "[ON_STRAGGLER ABORT|CANCEL]";

std::variant<Command, ParseError> parse_switchover(const std::vector<std::string>& w) {
  Command command;
  command.admin_command = "switchover";
  command.display = "SWITCHOVER";
  command.tag = "SWITCHOVER";
  command.documented = true;
  const std::string syntax = "syntax: " + std::string(kSwitchoverSyntax);
  for (std::size_t i = 1; i < w.size(); ++i) {
    const std::string option = upper(w[i]);
    const auto once = [&](std::string_view key) -> bool { return command.args.contains(key); };
    if (option == "DRY_RUN" || (option == "DRY" && i + 1 < w.size() && upper(w[i + 1]) == "RUN")) {
      if (once("dry_run")) return ParseError{"DRY RUN is given twice", syntax};
      command.args["dry_run"] = true;
      if (option == "DRY") ++i;
    } else if (option == "TIMEOUT" || option == "DRAIN_TIMEOUT") {
      const std::string key = option == "TIMEOUT" ? "timeout_s" : "drain_timeout_s";
      if (once(key)) return ParseError{option + " is given twice", syntax};
      if (i + 1 >= w.size()) return ParseError{option + " needs a number of seconds", syntax};
      const auto value = seconds(w[i + 1]);
      if (!value) {
        return ParseError{
            option + " must be a number of seconds in (0, 86400], got \"" + w[i + 1] + "\"",
            syntax};
      }
      command.args[key] = *value;
      ++i;
    } else if (option == "ON_STRAGGLER") {
      if (once("on_straggler")) return ParseError{"ON_STRAGGLER is given twice", syntax};
      const std::string policy = i + 1 < w.size() ? lower(w[i + 1]) : std::string();
      if (policy != "abort" && policy != "cancel") {
        return ParseError{"ON_STRAGGLER takes ABORT or CANCEL", syntax};
      }
      command.args["on_straggler"] = policy;
      ++i;
    } else {
      return syntax_error(w[i], syntax);
    }
  }
  if (command.args.contains("dry_run")) command.display += " DRY RUN";
  return command;
}

struct HelpEntry {
  std::string_view syntax;
  std::string_view admin_command;  // empty: the console answers itself
  bool read_only;
  std::string_view description;
};

constexpr HelpEntry kHelp[] = {
    {"SHOW CLIENTS", "show clients", true, "one row per client connection (consoles included)"},
    {"SHOW SERVERS", "show servers", true, "one row per server connection pgflip holds"},
    {"SHOW STATS", "show stats", true, "traffic and switchover counters"},
    {"SHOW CONFIG", "show config", true, "the loaded configuration, secrets masked"},
    {"SHOW STATE", "show state", true,
     "active environment, epoch, switchover, fence, uptime, version"},
    {"SHOW REPLICATION", "show replication", true,
     "blue -> green replication, one row per database"},
    {"SHOW SWITCHOVERS", "show switchovers", true,
     "the kept switchovers: id, start, outcome, durations, sessions, reason"},
    {"SHOW HELP", "", true, "this list"},
    {kSwitchoverSyntax, "switchover", false,
     "move every session to green; DRY RUN checks the guardrails only"},
    {"ABORT", "abort", false, "abort the running switchover (before its commit point)"},
    {"PAUSE", "pause", false, "hold every client at its next transaction boundary"},
    {"RESUME", "resume", false, "release the clients PAUSE holds"},
    {"RELOAD", "reload", false, "reload the configuration file"},
};

bool is_documented_show(std::string_view name) {
  return std::any_of(std::begin(kHelp), std::end(kHelp), [&](const HelpEntry& entry) {
    return entry.admin_command == "show " + std::string(name);
  });
}

std::variant<Command, ParseError> parse_statement(const std::vector<std::string>& w) {
  const std::string verb = upper(w[0]);
  Command command;
  if (verb == "SHOW") {
    if (w.size() < 2) return ParseError{"SHOW needs a subject", "e.g. SHOW CLIENTS; SHOW HELP"};
    if (w.size() > 2) return syntax_error(w[2]);
    if (!is_identifier(w[1])) return syntax_error(w[1]);
    const std::string subject = lower(w[1]);
    command.display = "SHOW " + upper(w[1]);
    command.tag = "SHOW";
    command.read_only = true;
    if (subject == "help") {
      command.kind = Command::Kind::kHelp;
      command.documented = true;
      return command;
    }
    command.admin_command = "show " + subject;
    command.documented = is_documented_show(subject);
    return command;
  }
  if (verb == "SWITCHOVER") return parse_switchover(w);
  if (verb == "ABORT" || verb == "PAUSE" || verb == "RESUME" || verb == "RELOAD") {
    if (w.size() > 1) return syntax_error(w[1], verb + " takes no arguments");
    command.admin_command = lower(verb);
    command.display = verb;
    command.tag = verb;
    command.documented = true;
    return command;
  }
  return ParseError{"unrecognized console command \"" + w[0] + "\"",
                    "SHOW HELP lists the console's commands"};
}

}  // namespace

std::variant<std::vector<Command>, ParseError> parse(std::string_view text) {
  std::vector<Command> commands;
  for (const std::string& statement : split_statements(text)) {
    const auto w = words(statement);
    if (w.empty()) continue;
    auto parsed = parse_statement(w);
    if (auto* error = std::get_if<ParseError>(&parsed)) return std::move(*error);
    commands.push_back(std::move(std::get<Command>(parsed)));
  }
  return commands;
}

AdminReply help(const std::function<bool(std::string_view)>& available) {
  AdminTable table({"command", "access", "available", "description"});
  for (const HelpEntry& entry : kHelp) {
    const bool here = entry.admin_command.empty() || available(entry.admin_command);
    table.add({json::string(entry.syntax), json::string(entry.read_only ? "stats" : "admin"), here,
               json::string(entry.description)});
  }
  return table.reply();
}

ResultSet result_set(const AdminReply& reply, std::string_view column) {
  ResultSet set;
  const json::array* rows = reply.result.if_array();
  const bool tabular =
      rows && (!reply.columns.empty() ||
               (!rows->empty() && std::all_of(rows->begin(), rows->end(),
                                              [](const json::value& v) { return v.is_object(); })));
  if (!tabular) {
    if (reply.text.empty()) return set;
    set.columns.push_back(Column{std::string(column), kTextOid});
    std::size_t start = 0;
    while (start < reply.text.size()) {
      std::size_t end = reply.text.find('\n', start);
      if (end == std::string::npos) end = reply.text.size();
      set.rows.push_back({reply.text.substr(start, end - start)});
      start = end + 1;
    }
    return set;
  }
  std::vector<std::string> names = reply.columns;
  for (const json::value& row : *rows) {
    for (const auto& [key, value] : row.as_object()) {
      (void)value;
      if (std::find(names.begin(), names.end(), key) == names.end()) names.emplace_back(key);
    }
  }
  for (const std::string& name : names) {
    bool all_int = true;
    bool all_bool = true;
    bool any = false;
    for (const json::value& row : *rows) {
      const json::value* value = row.as_object().if_contains(name);
      if (!value || value->is_null()) continue;
      any = true;
      all_int = all_int && (value->is_int64() || value->is_uint64());
      all_bool = all_bool && value->is_bool();
    }
    const std::int32_t type = !any ? kTextOid : all_int ? kInt8Oid : all_bool ? kBoolOid : kTextOid;
    set.columns.push_back(Column{name, type});
  }
  for (const json::value& row : *rows) {
    std::vector<std::optional<std::string>> cells;
    cells.reserve(set.columns.size());
    for (const Column& c : set.columns) {
      const json::value* value = row.as_object().if_contains(c.name);
      if (!value || value->is_null()) {
        cells.emplace_back(std::nullopt);
      } else if (c.type == kBoolOid) {
        cells.emplace_back(value->as_bool() ? "t" : "f");
      } else {
        cells.emplace_back(cell_text(*value));
      }
    }
    set.rows.push_back(std::move(cells));
  }
  return set;
}

std::string_view sqlstate_for(std::string_view error_code, bool documented) {
  if (error_code == "unknown_command") return documented ? "0A000" : "42601";
  if (error_code == "bad_request") return "22023";
  if (error_code == "busy") return "55006";
  if (error_code == "permission") return "42501";
  if (error_code == "internal") return "XX000";
  if (error_code == "replication") return "58000";
  if (error_code == "shutting_down") return "57P01";
  return "55000";
}

void encode_result(const ResultSet& result, std::string_view tag, std::string& out) {
  if (!result.columns.empty()) {
    proto::RowDescription description;
    for (const Column& column : result.columns) {
      proto::FieldDescription field;
      field.name = column.name;
      field.type = static_cast<proto::Oid>(column.type);
      field.type_size = static_cast<std::int16_t>(column.type == kInt8Oid   ? 8
                                                  : column.type == kBoolOid ? 1
                                                                            : -1);
      field.type_modifier = -1;
      description.fields.push_back(std::move(field));
    }
    proto::encode(description, out);
    for (const auto& row : result.rows) proto::encode(proto::DataRow{row}, out);
  }
  proto::encode(proto::CommandComplete{std::string(tag)}, out);
}

void encode_error(std::string_view severity, std::string_view sqlstate, std::string_view message,
                  std::string_view detail, std::string_view hint, std::string& out) {
  proto::ErrorResponse error;
  error.fields = {{proto::error_field::kSeverity, std::string(severity)},
                  {proto::error_field::kSeverityNonLocalized, std::string(severity)},
                  {proto::error_field::kCode, std::string(sqlstate)},
                  {proto::error_field::kMessage, std::string(message)}};
  if (!detail.empty()) error.fields.emplace_back(proto::error_field::kDetail, detail);
  if (!hint.empty()) error.fields.emplace_back(proto::error_field::kHint, hint);
  proto::encode(error, out);
}

void encode_notice(std::string_view message, std::string& out) {
  proto::NoticeResponse notice;
  notice.fields = {{proto::error_field::kSeverity, "NOTICE"},
                   {proto::error_field::kSeverityNonLocalized, "NOTICE"},
                   {proto::error_field::kCode, "00000"},
                   {proto::error_field::kMessage, std::string(message)}};
  proto::encode(notice, out);
}

}  // namespace pgflip::proxy::console
