// The admin console's language and results: SQL-like commands (SHOW CLIENTS, SWITCHOVER DRY
// RUN, ...) mapped onto admin commands, and admin replies shaped into PostgreSQL result sets.
// No sockets: the session (session_console.cpp) feeds it query text and sends what it returns.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proxy/admin/admin_server.hpp"

namespace pgflip::proxy::console {

/// One statement of a console query.
struct Command {
  enum class Kind {
    kAdmin,  // run `admin_command` through the admin command table
    kHelp,   // SHOW HELP: answered by the console itself
  };
  Kind kind = Kind::kAdmin;
  std::string admin_command;  // "show clients", "switchover", "pause"
  boost::json::object args;   // the admin command's arguments
  std::string display;        // "SHOW CLIENTS": for messages and logs
  std::string tag;            // CommandComplete tag: "SHOW", "SWITCHOVER", ...
  bool read_only = false;     // stats users may run it
  bool documented = false;    // part of the console's documented language (SHOW HELP)
};

/// A query the console cannot parse: ERROR 42601.
struct ParseError {
  std::string message;
  std::string hint;
};

/// Parses a simple Query's text: ';'-separated statements, keywords case-insensitive, `--`
/// and `/* */` comments ignored, empty statements skipped. The whole text is parsed before
/// anything runs, as PostgreSQL does.
///
///   SHOW <word>                       -> "show <word>" (read-only); SHOW HELP -> kHelp
///   SWITCHOVER [DRY RUN] [TIMEOUT <s>] [DRAIN_TIMEOUT <s>] [ON_STRAGGLER ABORT|CANCEL]
///                                     -> "switchover" {dry_run, timeout_s, drain_timeout_s,
///                                        on_straggler}
///   ABORT | PAUSE | RESUME | RELOAD   -> "abort" | "pause" | "resume" | "reload"
[[nodiscard]] std::variant<std::vector<Command>, ParseError> parse(std::string_view text);

/// The SHOW HELP table. `available(admin_command)` says whether this pgflip serves it.
[[nodiscard]] AdminReply help(const std::function<bool(std::string_view)>& available);

// PostgreSQL type OIDs the console's result columns use.
inline constexpr std::int32_t kBoolOid = 16;
inline constexpr std::int32_t kInt8Oid = 20;
inline constexpr std::int32_t kTextOid = 25;

struct Column {
  std::string name;
  std::int32_t type = kTextOid;
};

/// What a command's successful reply looks like as a result set.
struct ResultSet {
  std::vector<Column> columns;  // empty: no RowDescription, only CommandComplete
  std::vector<std::vector<std::optional<std::string>>> rows;
};

/// A tabular reply (an array of flat objects) gives its columns: int8 where every value is an
/// integer, bool where every value is a boolean, text otherwise; null is SQL NULL. Any other
/// reply gives its text, one row per line, in a single column named `column`.
[[nodiscard]] ResultSet result_set(const AdminReply& reply, std::string_view column);

/// The SQLSTATE of a failed admin reply, by its error_code:
///   unknown_command -> 0A000 for a documented command this pgflip lacks, else 42601;
///   bad_request -> 22023; busy -> 55006; permission -> 42501; internal -> XX000;
///   replication -> 58000; shutting_down -> 57P01; anything else (state, config, guardrail,
///   switchover_aborted, precheck, ...) -> 55000.
[[nodiscard]] std::string_view sqlstate_for(std::string_view error_code, bool documented);

/// RowDescription (when there are columns), DataRows and CommandComplete.
void encode_result(const ResultSet& result, std::string_view tag, std::string& out);
/// ErrorResponse: severity ERROR or FATAL, SQLSTATE, message, optional detail and hint.
void encode_error(std::string_view severity, std::string_view sqlstate, std::string_view message,
                  std::string_view detail, std::string_view hint, std::string& out);
/// NoticeResponse with severity NOTICE and SQLSTATE 00000.
void encode_notice(std::string_view message, std::string& out);

}  // namespace pgflip::proxy::console
