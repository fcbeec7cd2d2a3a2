// Names of the objects the manager creates, derived from the configured prefix.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgflip::replication {

/// True when `prefix` can name a schema, slot and subscription unquoted: 1-40 characters of
/// [a-z0-9_], starting with a letter or '_'.
[[nodiscard]] bool valid_name_prefix(std::string_view prefix);

/// Every pgflip object name, for one prefix. Cleanup finds objects by these names only.
struct ObjectNames {
  std::string schema;              // <prefix>: heartbeat, ddl_log, fence tables, log_ddl()
  std::string publication;         // <prefix>_pub, in every replicated database on blue
  std::string event_trigger_end;   // <prefix>_ddl_end (ddl_command_end) on blue
  std::string event_trigger_drop;  // <prefix>_ddl_drop (sql_drop) on blue

  [[nodiscard]] static ObjectNames for_prefix(std::string_view prefix);

  /// Subscription on green and slot on blue for one database: `<prefix>_<db>_<oid>`, the
  /// database name folded to [a-z0-9_] and cut so the whole fits a slot name (63 bytes);
  /// the oid of the database on blue keeps it unique.
  [[nodiscard]] std::string subscription(std::string_view database, std::uint32_t blue_oid) const;
  /// Prefix that every subscription and slot name of this prefix starts with (`<prefix>_`).
  [[nodiscard]] std::string subscription_prefix() const { return prefix_ + "_"; }

 private:
  std::string prefix_;
};

}  // namespace pgflip::replication
