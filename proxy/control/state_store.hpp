// The durable record of which environment is active: the switchover's commit point.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "replication/manager.hpp"

namespace pgflip::proxy {

/// One server as the state file knows it: which cluster, and where it was configured.
struct ServerIdentity {
  /// pg_control_system().system_identifier, decimal: tells one cluster from another whatever
  /// its address. Empty when it could not be read.
  std::string system_identifier;
  std::string host;  // blue/green.host as configured
  std::uint16_t port = 0;
  std::string database;  // blue/green.database as configured ("" = the client's)

  /// "host:port", "[v6]:port" or the socket file, as the logs write a server.
  [[nodiscard]] std::string address() const;
  bool operator==(const ServerIdentity&) const = default;
};

struct ActiveState {
  std::string active = "blue";  // "blue" or "green"
  std::uint64_t epoch = 0;
  std::string switchover_id;
  std::string committed_at;  // UTC, ISO 8601
  /// The servers the file speaks of; absent in files of pgflip before format version 2 (and
  /// a server that has never been reachable since).
  std::optional<ServerIdentity> blue;
  std::optional<ServerIdentity> green;
};

/// Reads the state file; nullopt when it does not exist. Throws std::runtime_error when it
/// exists but cannot be read or parsed (torn, garbage, unknown version): guessing would risk
/// routing to the wrong side.
[[nodiscard]] std::optional<ActiveState> load_active_state(const std::string& path);

/// Parses a state file's text; throws std::runtime_error naming `path` when it is not one.
[[nodiscard]] ActiveState parse_active_state(const std::string& text, const std::string& path);
[[nodiscard]] std::string serialize_active_state(const ActiveState& state);

/// Writes the state durably: a temp file in the same directory, fsync, rename over the old
/// one, fsync the directory. Throws std::runtime_error when it fails before the rename: the
/// old file is intact. Once renamed, the new state is what every reader (a restarted pgflip)
/// sees, so a failed directory fsync must not be rolled back from (after a commit that would
/// unfence blue under a file saying green): it is logged and returned as a note ("" when
/// durable). The test hook PGFLIP_TEST_STATE_DIR_FSYNC_FAILS=1 makes that fsync fail.
[[nodiscard]] std::string store_active_state(const std::string& path, const ActiveState& state);

/// What start-up makes of one server: the file's record of it against the configured one.
enum class IdentityOutcome {
  kMatch,       // same cluster, address and database
  kMoved,       // same cluster and database at a new address: accepted, file rewritten
  kAdopt,       // the file has no record of it (older pgflip): recorded now
  kUnverified,  // its system identifier could not be read (down, no admin login)
  kMismatch,    // another cluster, or another database: another deployment's file
};

/// A configured server with the system identifier read at start-up (empty, with `error`
/// saying why, when it could not be read).
struct ConfiguredServer {
  ServerIdentity identity;
  std::string error;
};

[[nodiscard]] IdentityOutcome check_server(const std::optional<ServerIdentity>& recorded,
                                           const ServerIdentity& configured);

/// The start-up decision (README, "The state file"): refuse, or route by the file after
/// rewriting it.
struct StartupDecision {
  /// Non-empty: pgflip must not start. Names the file, what it records, what is configured
  /// and how to fix it.
  std::string refusal;
  std::vector<std::string> warnings;   // moved, adopted, unverified: one log line each
  std::optional<ActiveState> rewrite;  // store this durably (a server moved or was adopted)
};

/// `green` is nullopt when no [green] is configured. Pure: reads and writes nothing.
[[nodiscard]] StartupDecision decide_startup(const std::string& path, const ActiveState& file,
                                             const ConfiguredServer& blue,
                                             const std::optional<ConfiguredServer>& green);

/// A configured server's identity without its system identifier (host, port, database).
[[nodiscard]] ServerIdentity configured_identity(const config::Endpoint& endpoint);

/// Both servers' identities as configured, system identifiers read over the manager's admin
/// logins: a switchover reads them before it parks anyone.
struct Identities {
  ServerIdentity blue;
  ServerIdentity green;
};

/// Start-up: loads the state file, checks it against the configured servers, rewrites it
/// when a server moved or the file predates identities. Throws std::runtime_error when the
/// file is unreadable or speaks of other servers; nullopt when there is no file.
[[nodiscard]] std::optional<ActiveState> load_verified_state(const config::Config& config);

}  // namespace pgflip::proxy
