// Logging: how a line looks (text or JSON lines), which session it concerns, and no secrets in it.
//
// Every line goes through spdlog's default logger, whose formatter this file installs. A line
// about a client session is written with log::info(log::Conn{id}, ...) and so on: the text format
// renders it "[c42] message", the JSON format {"ts":...,"level":"info","msg":"message","conn":42}.
// Lines not about a session may keep using spdlog::info() directly.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace pgflip::log {

enum class Format {
  kText,  // "2025-01-31 12:00:00.123 info [c42] message", local time
  kJson,  // one JSON object per line, ts in UTC (RFC 3339, milliseconds)
};

/// The client session a line concerns. The views must outlive the log call only.
struct Conn {
  explicit Conn(std::uint64_t conn_id, std::string_view conn_peer = {},
                std::string_view conn_user = {}, std::string_view conn_database = {})
      : id(conn_id), peer(conn_peer), user(conn_user), database(conn_database) {}

  std::uint64_t id;           // the connection id; 0 = none
  std::string_view peer;      // "address:port" of the client; empty = unknown
  std::string_view user;      // the startup packet's user; empty = not known yet
  std::string_view database;  // the database asked for; empty = not known yet
};

/// Installs pgflip's stderr logger as spdlog's default. `level` is one of log.level's values.
void setup(std::string_view level, Format format);
/// Thread-safe: a reload changes the level and the format of the running logger.
void set_level(std::string_view level);
void set_format(Format format);

/// Replaces the value of every `password=...` (conninfo style, also `PGPASSWORD=`, quoted or
/// not) with "********". Returns the text unchanged when there is nothing to mask.
[[nodiscard]] std::string mask_secrets(std::string_view text);

/// Appends `text` as a JSON string (with quotes): ", \ and control characters escaped, UTF-8
/// passed through, bytes that are not UTF-8 replaced by U+FFFD.
void append_json_string(std::string_view text, std::string& out);

/// One formatted line (with its newline), as the logger writes it. For tests and the sink.
[[nodiscard]] std::string format_line(Format format, const spdlog::details::log_msg& message,
                                      const Conn* conn);

namespace detail {
/// The session of the line being written on this thread (spdlog's sinks are synchronous).
extern thread_local const Conn* current_conn;

class ScopedConn {
 public:
  explicit ScopedConn(const Conn& conn) : previous_(current_conn) { current_conn = &conn; }
  ~ScopedConn() { current_conn = previous_; }
  ScopedConn(const ScopedConn&) = delete;
  ScopedConn& operator=(const ScopedConn&) = delete;

 private:
  const Conn* previous_;
};
}  // namespace detail

/// Logs a line about session `conn`; formats nothing when `level` is off.
template <class... Args>
void write(spdlog::level::level_enum level, const Conn& conn, fmt::format_string<Args...> format,
           Args&&... args) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  detail::ScopedConn scope(conn);
  logger->log(level, format, std::forward<Args>(args)...);
}

template <class... Args>
void trace(const Conn& conn, fmt::format_string<Args...> format, Args&&... args) {
  write(spdlog::level::trace, conn, format, std::forward<Args>(args)...);
}
template <class... Args>
void debug(const Conn& conn, fmt::format_string<Args...> format, Args&&... args) {
  write(spdlog::level::debug, conn, format, std::forward<Args>(args)...);
}
template <class... Args>
void info(const Conn& conn, fmt::format_string<Args...> format, Args&&... args) {
  write(spdlog::level::info, conn, format, std::forward<Args>(args)...);
}
template <class... Args>
void warn(const Conn& conn, fmt::format_string<Args...> format, Args&&... args) {
  write(spdlog::level::warn, conn, format, std::forward<Args>(args)...);
}
template <class... Args>
void error(const Conn& conn, fmt::format_string<Args...> format, Args&&... args) {
  write(spdlog::level::err, conn, format, std::forward<Args>(args)...);
}

}  // namespace pgflip::log
