// Pure SQL builders and dump filters of the replication manager (no server needed; unit-tested).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "replication/names.hpp"

namespace pgflip::replication::sql {

/// pgflip's schema and tables, identical on blue and green (the publication is FOR ALL
/// TABLES, so every table in it must exist on both sides): heartbeat (also carries the
/// sentinel rows), ddl_log, fence. Idempotent.
[[nodiscard]] std::string create_pgflip_tables(const ObjectNames& names);
/// The schema and the fence table only (blue's maintenance database, where the fence record
/// lives). Idempotent; adds the previous_access column to an older table.
[[nodiscard]] std::string create_fence_table(const ObjectNames& names);
/// The SECURITY DEFINER event-trigger function that records DDL into <schema>.ddl_log.
[[nodiscard]] std::string create_ddl_log_function(const ObjectNames& names);
/// CREATE EVENT TRIGGER statements (ddl_command_end and sql_drop) calling that function.
[[nodiscard]] std::string create_event_trigger(const ObjectNames& names, bool drop_event);

/// One statement of a SQL script, as split by split_statements().
struct Statement {
  std::string text;   // trimmed, without the terminating ';'
  bool meta = false;  // a psql backslash command (e.g. pg_dump's \restrict), not SQL
};
/// Splits a script at ';' outside quotes, dollar quotes and comments. Comments are kept
/// in the statement that follows them only if inside it; leading comments are dropped.
[[nodiscard]] std::vector<Statement> split_statements(std::string_view script);

/// Reads one SQL identifier at `pos` (quoted: "" unescaped; unquoted: folded to lower case);
/// advances `pos` past it. Empty when there is no identifier there.
[[nodiscard]] std::string read_identifier(std::string_view text, std::size_t& pos);

/// pg_dumpall --roles-only output, reduced to the roles green lacks.
struct RoleScript {
  std::string sql;                              // statements to run on green, ';'-terminated
  std::vector<std::string> created_roles;       // roles the script creates
  std::vector<std::string> skipped_roles;       // roles already on green (or excluded)
  std::vector<std::string> skipped_statements;  // statements left out on purpose
};
/// Keeps CREATE/ALTER/COMMENT/SECURITY LABEL of roles absent from `roles_on_green` and not in
/// `excluded` (password secrets included, so SCRAM logins work on green unchanged), and the
/// memberships that involve such a role (GRANTED BY dropped: the grantor may not exist on
/// green). Drops psql meta-commands and per-database role settings (ALTER ROLE ... IN DATABASE).
[[nodiscard]] RoleScript filter_role_dump(std::string_view dump,
                                          const std::set<std::string>& roles_on_green,
                                          const std::set<std::string>& excluded);

/// pg_dump --schema-only output minus the entries that are pgflip's own (the event triggers,
/// and anything in pgflip's schema), matched on pg_dump's "-- Name: ...; Type: ...; Schema:"
/// entry headers.
[[nodiscard]] std::string filter_schema_dump(std::string_view dump, const ObjectNames& names);

/// The query that reads last_value and is_called of each listed sequence from the sequence
/// relations themselves in one statement (pg_sequences hides last_value when is_called is
/// false, so it cannot tell setval(s, 42, false) from a fresh sequence).
[[nodiscard]] std::string read_sequences_query(
    const std::vector<std::pair<std::string, std::string>>& schema_and_name);
/// The one statement that sets every sequence on green: $1 schemas, $2 names, $3 values,
/// $4 is_called, as arrays. Returns the number of sequences set.
[[nodiscard]] std::string set_sequences_query();

/// One query listing which of `qualified_tables` (already quoted, "schema"."name" or
/// schema.name) have at least one row; empty when the list is.
[[nodiscard]] std::string nonempty_tables_query(const std::vector<std::string>& qualified_tables);

/// A LIKE pattern matching names that start with `prefix` ('_', '%' and '\\' escaped).
[[nodiscard]] std::string like_prefix(std::string_view prefix);

/// The printed fix for a table without replica identity: USING INDEX when the table has a
/// usable unique index (already quoted), otherwise FULL.
[[nodiscard]] std::string replica_identity_fix(std::string_view qualified_table,
                                               std::string_view unique_index);

}  // namespace pgflip::replication::sql
