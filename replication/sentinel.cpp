// The drain sentinel (a row written on blue, awaited on green) and the exact sequence copy.
#include <algorithm>
#include <map>

#include "replication/detail.hpp"
#include "replication/manager.hpp"
#include "replication/sql.hpp"

namespace pgflip::replication {

using detail::Clock;
using detail::seconds_since;

namespace {
constexpr std::string_view kSentinelStep = "sentinel";
}  // namespace

SentinelWatch Manager::watch_sentinels() {
  SentinelWatch watch(quote_ident(names_.schema) + ".heartbeat",
                      connect_maintenance(Side::kBlue, kSentinelStep));
  for (const auto& db : database_infos(watch.maintenance_)) {
    watch.databases_.push_back({db.name,
                                connect(Side::kBlue, db.name, kSentinelStep),
                                connect(Side::kGreen, db.name, kSentinelStep),
                                0,
                                {},
                                {}});
  }
  return watch;
}

void SentinelWatch::write(std::string_view label) {
  label_ = std::string(label);
  for (auto& db : databases_) {
    // Autocommit: the row is committed when the INSERT returns. Logical replication applies
    // in commit order, so green showing it means everything committed before is applied.
    db.id =
        db.blue
            .exec("INSERT INTO " + table_ + " (kind, label) VALUES ('sentinel', $1) RETURNING id",
                  {label_}, kSentinelStep)
            .int64(0, 0);
    db.written = Clock::now();
    db.seen_after.reset();
  }
}

bool SentinelWatch::wait_until(Clock::time_point until, std::chrono::milliseconds poll_interval) {
  return detail::poll_until(until, poll_interval, [&] {
    bool done = true;
    for (auto& db : databases_) {
      if (db.seen_after) continue;
      if (db.green
              .exec("SELECT 1 FROM " + table_ + " WHERE id = $1::int8", {std::to_string(db.id)},
                    kSentinelStep)
              .rows() > 0) {
        db.seen_after = seconds_since(db.written);
      } else {
        done = false;
      }
    }
    return done;
  });
}

std::string SentinelWatch::missing() const {
  std::string names;
  for (const auto& db : databases_) {
    if (!db.seen_after) names += (names.empty() ? "" : ", ") + db.name;
  }
  return names;
}

SentinelResult SentinelWatch::result() const {
  SentinelResult result;
  result.label = label_;
  for (const auto& db : databases_) {
    const double seen = db.seen_after.value_or(0);
    result.databases.push_back({db.name, db.id, seen});
    result.seconds = std::max(result.seconds, seen);
  }
  return result;
}

SentinelResult Manager::write_sentinel_and_wait(std::string_view label,
                                                std::chrono::milliseconds timeout,
                                                std::chrono::milliseconds poll_interval) {
  const auto start = Clock::now();
  // Connections first, so connecting is not counted as waiting.
  SentinelWatch watch = watch_sentinels();
  const auto deadline = start + timeout;
  watch.write(label);
  if (!watch.wait_until(deadline, poll_interval)) {
    throw ReplicationError(ErrorKind::kTimeout, watch.missing(), std::string(kSentinelStep),
                           "green did not apply sentinel '" + std::string(label) + "' within " +
                               std::to_string(timeout.count()) + " ms");
  }
  SentinelResult result = watch.result();
  result.seconds = seconds_since(start);
  return result;
}

SequenceCopyResult Manager::copy_sequences() {
  SentinelWatch watch = watch_sentinels();
  return copy_sequences(watch);
}

SequenceCopyResult Manager::copy_sequences(SentinelWatch& watch) {
  constexpr std::string_view kStep = "sequences";
  const auto start = Clock::now();
  SequenceCopyResult result;
  // Read everything first (right after the fence), then write.
  std::map<std::string, std::vector<SequenceValue>> by_db;
  std::map<std::string, PgConnection*> green_of;
  for (auto& db : watch.databases_) {
    PgConnection& blue = db.blue;
    green_of[db.name] = &db.green;
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
    // One statement: every sequence of the database is set, or (on any error) none.
    const std::int64_t set =
        green_of.at(database)
            ->exec(sql::set_sequences_query(),
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
