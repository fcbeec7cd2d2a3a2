// The drain sentinel (a row written on blue, awaited on green) and the exact sequence copy.
#include <map>

#include "replication/detail.hpp"
#include "replication/manager.hpp"
#include "replication/sql.hpp"

namespace pgflip::replication {

using detail::Clock;
using detail::seconds_since;

SentinelResult Manager::write_sentinel_and_wait(std::string_view label,
                                                std::chrono::milliseconds timeout,
                                                std::chrono::milliseconds poll_interval) {
  constexpr std::string_view kStep = "sentinel";
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  SentinelResult result;
  result.label = std::string(label);
  const std::string hb = quote_ident(names_.schema) + ".heartbeat";

  struct Pending {
    std::string database;
    PgConnection green;
    std::int64_t id = 0;
    Clock::time_point written;
    std::optional<double> seen_after;
  };
  std::vector<Pending> pending;
  std::vector<DatabaseInfo> dbs;
  {
    PgConnection maintenance = connect_maintenance(Side::kBlue, kStep);
    dbs = database_infos(maintenance);
  }
  // Green connections first, so connecting is not counted as waiting.
  for (const auto& db : dbs) {
    pending.push_back({db.name, connect(Side::kGreen, db.name, kStep), 0, {}, std::nullopt});
  }
  for (auto& p : pending) {
    PgConnection blue = connect(Side::kBlue, p.database, kStep);
    // Autocommit: the row is committed when the INSERT returns. Logical replication applies
    // in commit order, so green showing it means everything committed before is applied.
    p.id = blue.exec("INSERT INTO " + hb + " (kind, label) VALUES ('sentinel', $1) RETURNING id",
                     {std::string(label)}, kStep)
               .int64(0, 0);
    p.written = Clock::now();
  }
  const bool all_seen = detail::poll_until(deadline, poll_interval, [&] {
    bool done = true;
    for (auto& p : pending) {
      if (p.seen_after) continue;
      if (p.green
              .exec("SELECT 1 FROM " + hb + " WHERE id = $1::int8", {std::to_string(p.id)}, kStep)
              .rows() > 0) {
        p.seen_after = seconds_since(p.written);
      } else {
        done = false;
      }
    }
    return done;
  });
  if (!all_seen) {
    std::string missing;
    for (const auto& p : pending) {
      if (!p.seen_after) missing += (missing.empty() ? "" : ", ") + p.database;
    }
    throw ReplicationError(ErrorKind::kTimeout, missing, std::string(kStep),
                           "green did not apply sentinel '" + std::string(label) + "' within " +
                               std::to_string(timeout.count()) + " ms");
  }
  for (const auto& p : pending) result.databases.push_back({p.database, p.id, *p.seen_after});
  result.seconds = seconds_since(start);
  return result;
}

SequenceCopyResult Manager::copy_sequences() {
  constexpr std::string_view kStep = "sequences";
  const auto start = Clock::now();
  SequenceCopyResult result;
  std::vector<DatabaseInfo> dbs;
  {
    PgConnection maintenance = connect_maintenance(Side::kBlue, kStep);
    dbs = database_infos(maintenance);
  }
  // Read everything first (right after the fence), then write.
  std::map<std::string, std::vector<SequenceValue>> by_db;
  for (const auto& db : dbs) {
    PgConnection blue = connect(Side::kBlue, db.name, kStep);
    PgResult list = blue.exec(
        "SELECT n.nspname, c.relname, "
        "CASE (SELECT d.deptype FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "      AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass "
        "      AND d.deptype IN ('a', 'i') LIMIT 1) "
        "  WHEN 'i' THEN 'identity' WHEN 'a' THEN 'owned' ELSE 'unowned' END "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'S' AND c.relpersistence <> 't' "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1) "
        "AND n.nspname !~ '^pg_(toast|temp_)' ORDER BY 1, 2",
        {names_.schema}, kStep);
    if (list.rows() == 0) continue;
    std::vector<std::pair<std::string, std::string>> names;
    std::map<std::pair<std::string, std::string>, std::string> ownership;
    for (int i = 0; i < list.rows(); ++i) {
      names.emplace_back(list.text(i, 0), list.text(i, 1));
      ownership[names.back()] = list.text(i, 2);
    }
    PgResult values = blue.exec(sql::read_sequences_query(names), kStep);
    for (int i = 0; i < values.rows(); ++i) {
      SequenceValue v;
      v.database = db.name;
      v.schema = values.text(i, 0);
      v.name = values.text(i, 1);
      v.ownership = ownership[{v.schema, v.name}];
      v.last_value = values.int64(i, 2);
      v.is_called = values.boolean(i, 3);
      by_db[db.name].push_back(std::move(v));
    }
  }
  result.read_seconds = seconds_since(start);

  const auto write_start = Clock::now();
  for (auto& [database, seqs] : by_db) {
    std::vector<std::string> schemas, names, last_values, called;
    for (const auto& s : seqs) {
      schemas.push_back(s.schema);
      names.push_back(s.name);
      last_values.push_back(std::to_string(s.last_value));
      called.push_back(s.is_called ? "t" : "f");
    }
    PgConnection green = connect(Side::kGreen, database, kStep);
    // One statement: every sequence of the database is set, or (on any error) none.
    const std::int64_t set =
        green
            .exec(sql::set_sequences_query(),
                  {text_array_literal(schemas), text_array_literal(names),
                   text_array_literal(last_values), text_array_literal(called)},
                  kStep)
            .int64(0, 0);
    if (set != static_cast<std::int64_t>(seqs.size())) {
      throw ReplicationError(ErrorKind::kState, database, std::string(kStep),
                             "set " + std::to_string(set) + " sequences on green, expected " +
                                 std::to_string(seqs.size()));
    }
    for (auto& s : seqs) result.sequences.push_back(std::move(s));
  }
  result.write_seconds = seconds_since(write_start);
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace pgflip::replication
