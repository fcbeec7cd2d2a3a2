// The durable record of which environment is active: the switchover's commit point.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pgflip::proxy {

struct ActiveState {
  std::string active = "blue";  // "blue" or "green"
  std::uint64_t epoch = 0;
  std::string switchover_id;
  std::string committed_at;  // UTC, ISO 8601
};

/// Reads the state file; nullopt when it does not exist. Throws std::runtime_error when it
/// exists but cannot be read or parsed: guessing would risk routing to the wrong side.
[[nodiscard]] std::optional<ActiveState> load_active_state(const std::string& path);

/// Writes the state durably: a temp file in the same directory, fsync, rename over the
/// old one, fsync the directory. After it returns, a crash cannot bring the old state back.
void store_active_state(const std::string& path, const ActiveState& state);

}  // namespace pgflip::proxy
