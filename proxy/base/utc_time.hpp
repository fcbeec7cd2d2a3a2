// Wall-clock times as pgflip prints them: UTC, ISO 8601 (header-only: pgflipctl uses it too).
#pragma once

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace pgflip::proxy {

/// "2025-01-31T12:34:56Z", or with `milliseconds` "2025-01-31T12:34:56.789Z".
[[nodiscard]] inline std::string iso8601_utc(std::chrono::system_clock::time_point at,
                                             bool milliseconds = false) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  const auto seconds = static_cast<std::time_t>(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  if (milliseconds) {
    n += static_cast<std::size_t>(std::snprintf(text + n, sizeof text - n, ".%03d",
                                                static_cast<int>((ms % 1000 + 1000) % 1000)));
  }
  return std::string(text, n) + "Z";
}

/// Now, to the second: "2025-01-31T12:34:56Z".
[[nodiscard]] inline std::string utc_now() { return iso8601_utc(std::chrono::system_clock::now()); }

}  // namespace pgflip::proxy
