// Logging: pgflip's line formatter (text or JSON lines) with connection ids and masked secrets.
#include "proxy/observe/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

namespace pgflip::log {

namespace detail {
thread_local const Conn* current_conn = nullptr;
}  // namespace detail

namespace {

constexpr std::string_view kMask = "********";

bool is_space(char c) { return c == ' ' || c == '\t'; }

// Case-insensitive "password" at `text[at]`.
bool password_at(std::string_view text, std::size_t at) {
  constexpr std::string_view kWord = "password";
  if (text.size() - at < kWord.size()) return false;
  for (std::size_t i = 0; i < kWord.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[at + i])) != kWord[i]) return false;
  }
  return true;
}

// "warn" as in log.level (spdlog says "warning").
std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// The length of the UTF-8 sequence at text[at], or 0 if it is not valid UTF-8 (overlong forms,
// surrogates and code points above U+10FFFF included).
std::size_t utf8_length(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[at + i]); };
  const unsigned char lead = byte(0);
  std::size_t length = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
  } else {
    return 0;
  }
  if (text.size() - at < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
  }
  if (lead == 0xE0 && byte(1) < 0xA0) return 0;  // overlong
  if (lead == 0xED && byte(1) > 0x9F) return 0;  // UTF-16 surrogates
  if (lead == 0xF0 && byte(1) < 0x90) return 0;  // overlong
  if (lead == 0xF4 && byte(1) > 0x8F) return 0;  // above U+10FFFF
  return length;
}

std::tm broken_down(std::chrono::system_clock::time_point time, bool utc) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  if (utc) {
    gmtime_r(&seconds, &tm);
  } else {
    localtime_r(&seconds, &tm);
  }
  return tm;
}

int milliseconds_of(std::chrono::system_clock::time_point time) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  return static_cast<int>(ms < 0 ? ms + 1000 : ms);
}

void append_text_line(const spdlog::details::log_msg& message, const Conn* conn,
                      std::string_view text, std::string& out) {
  const std::tm tm = broken_down(message.time, /*utc=*/false);
  char stamp[40];
  const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  out.append(stamp, n);
  std::snprintf(stamp, sizeof stamp, ".%03d ", milliseconds_of(message.time));
  out += stamp;
  const auto level = spdlog::level::to_string_view(message.level);
  out.append(level.data(), level.size());
  out += ' ';
  if (conn != nullptr && conn->id != 0) {
    out += "[c";
    out += std::to_string(conn->id);
    out += "] ";
  }
  out += text;
  out += '\n';
}

void append_json_field(std::string_view key, std::string_view value, std::string& out) {
  out += ",\"";
  out += key;
  out += "\":";
  append_json_string(value, out);
}

void append_json_line(const spdlog::details::log_msg& message, const Conn* conn,
                      std::string_view text, std::string& out) {
  const std::tm tm = broken_down(message.time, /*utc=*/true);
  char stamp[40];
  const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  out += "{\"ts\":\"";
  out.append(stamp, n);
  std::snprintf(stamp, sizeof stamp, ".%03dZ\"", milliseconds_of(message.time));
  out += stamp;
  out += ",\"level\":\"";
  out += level_name(message.level);
  out += '"';
  append_json_field("msg", text, out);
  if (conn != nullptr && conn->id != 0) {
    out += ",\"conn\":";
    out += std::to_string(conn->id);
    if (!conn->peer.empty()) append_json_field("peer", conn->peer, out);
    if (!conn->user.empty()) append_json_field("user", conn->user, out);
    if (!conn->database.empty()) append_json_field("database", conn->database, out);
  }
  out += "}\n";
}

class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(Format format) : format_(format) {}

  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& dest) override {
    const std::string line = format_line(format_, message, detail::current_conn);
    dest.append(line.data(), line.data() + line.size());
  }

  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(format_);
  }

 private:
  Format format_;
};

}  // namespace

std::string mask_secrets(std::string_view text) {
  std::string out;
  std::size_t copied = 0;  // text[0, copied) is in `out` already
  for (std::size_t at = 0; at < text.size(); ++at) {
    if (!password_at(text, at)) continue;
    std::size_t i = at + 8;
    while (i < text.size() && is_space(text[i])) ++i;
    if (i >= text.size() || text[i] != '=') continue;
    ++i;
    while (i < text.size() && is_space(text[i])) ++i;
    std::size_t end = i;
    if (end < text.size() && (text[end] == '\'' || text[end] == '"')) {
      // A quoted conninfo value: up to the unescaped closing quote (or the end).
      const char quote = text[end++];
      while (end < text.size() && text[end] != quote) end += text[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, text.size());
    } else {
      while (end < text.size() && !is_space(text[end]) && text[end] != '\'' && text[end] != '"' &&
             text[end] != ',' && text[end] != ';' && text[end] != '\n') {
        ++end;
      }
    }
    if (end == i) continue;  // "password=" with nothing after it
    out.append(text.substr(copied, i - copied));
    out += kMask;
    copied = end;
    at = end - 1;
  }
  if (copied == 0) return std::string(text);
  out.append(text.substr(copied));
  return out;
}

void append_json_string(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    if (const std::size_t length = utf8_length(text, i); length > 0) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

std::string format_line(Format format, const spdlog::details::log_msg& message, const Conn* conn) {
  const std::string_view payload(message.payload.data(), message.payload.size());
  const std::string text = mask_secrets(payload);
  std::string line;
  line.reserve(text.size() + 96);
  if (format == Format::kJson) {
    append_json_line(message, conn, text, line);
  } else {
    append_text_line(message, conn, text, line);
  }
  return line;
}

void setup(std::string_view level, Format format) {
  auto logger = spdlog::stderr_logger_mt("pgflip");
  logger->set_formatter(std::make_unique<LineFormatter>(format));
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void set_level(std::string_view level) {
  spdlog::default_logger_raw()->set_level(spdlog::level::from_str(std::string(level)));
}

void set_format(Format format) {
  spdlog::default_logger_raw()->set_formatter(std::make_unique<LineFormatter>(format));
}

}  // namespace pgflip::log
