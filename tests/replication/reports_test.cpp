// Unit tests of result rendering: text tables, byte formatting, JSON shapes.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "replication/error.hpp"
#include "replication/reports.hpp"

namespace pgflip::replication {
namespace json = boost::json;

TEST_CASE("format_bytes uses binary units with one decimal") {
  CHECK(format_bytes(0) == "0 B");
  CHECK(format_bytes(1023) == "1023 B");
  CHECK(format_bytes(1536) == "1.5 kB");
  CHECK(format_bytes(std::int64_t{3} << 30) == "3.0 GB");
}

TEST_CASE("render_table aligns columns and spreads multi-line cells over lines") {
  const std::string t =
      render_table({"A", "LONG HEADER", "C"}, {{"x", "1", "first\nsecond"}, {"wider", "", "z"}});
  CHECK(t ==
        "A      LONG HEADER  C\n"
        "-----  -----------  ------\n"
        "x      1            first\n"
        "                    second\n"
        "wider               z\n");
}

TEST_CASE("precheck report counts levels, finds rows and prints fixes") {
  PrecheckReport r;
  r.databases = {"app"};
  r.rows = {{"", "wal_level", CheckLevel::kPass, "blue", "wal_level = logical", ""},
            {"app", "replica_identity", CheckLevel::kFail, "public.t", "no primary key",
             "ALTER TABLE public.t REPLICA IDENTITY FULL;"},
            {"app", "unlogged_tables", CheckLevel::kWarn, "public.u", "not replicated", ""}};
  CHECK(r.has_failures());
  CHECK(r.count(CheckLevel::kWarn) == 1);
  CHECK(r.find("replica_identity", "app").size() == 1);
  CHECK(r.find("replica_identity", "other").empty());
  const std::string table = r.to_table();
  CHECK(table.find("(cluster)") != std::string::npos);
  CHECK(table.find("fix: ALTER TABLE public.t REPLICA IDENTITY FULL;") != std::string::npos);
  CHECK(table.find("1 FAIL, 1 WARN, 1 PASS") != std::string::npos);
  const json::value v = r.to_json();
  CHECK(v.at("fail").as_int64() == 1);
  CHECK(v.at("rows").as_array().size() == 3);
  CHECK(v.at("rows").at(1).at("result").as_string() == "FAIL");
  CHECK(v.at("rows").at(1).at("fix").as_string() == "ALTER TABLE public.t REPLICA IDENTITY FULL;");
}

TEST_CASE("status JSON has nulls for unknown lag and lists alarms") {
  StatusReport s;
  s.retained_wal_alarm_bytes = 1024;
  DatabaseStatus d;
  d.database = "app";
  d.state = "absent";
  s.databases.push_back(d);
  CHECK_FALSE(s.has_alarms());
  json::value v = s.to_json();
  CHECK(v.at("databases").at(0).at("lag_bytes").is_null());
  CHECK(v.at("databases").at(0).at("lag_seconds").is_null());
  d.state = "streaming";
  d.lag_bytes = 2048;
  d.lag_seconds = 0.25;
  d.table_states["r"] = 3;
  d.alarms.push_back("slot retains 2.0 kB of WAL on blue");
  s.databases = {d};
  CHECK(s.has_alarms());
  v = s.to_json();
  CHECK(v.at("databases").at(0).at("lag_bytes").as_int64() == 2048);
  CHECK(v.at("databases").at(0).at("table_states").at("r").as_int64() == 3);
  CHECK(v.at("alarm").as_bool());
  const std::string table = s.to_table();
  CHECK(table.find("ALARM [app] slot retains") != std::string::npos);
  CHECK(table.find("2.0 kB") != std::string::npos);
}

TEST_CASE("fence, sentinel, sequences, init and cleanup results render") {
  FenceResult f;
  f.action = FenceAction::kFenced;
  f.previous_setting = std::nullopt;
  f.terminated.push_back({42, "app", "appdb", "psql", "client backend"});
  f.databases.push_back({"appdb", 16384, 7});
  CHECK(f.to_json().at("action").as_string() == "fenced");
  CHECK(f.to_json().at("previous_setting").is_null());
  CHECK(f.to_json().at("databases").at(0).at("previous_connection_limit").as_int64() == 7);
  CHECK(f.to_json().at("terminated").at(0).at("backend_type").as_string() == "client backend");
  CHECK(f.to_table().find("psql") != std::string::npos);
  CHECK(f.to_table().find("CONNECTION LIMIT 0") != std::string::npos);

  SentinelResult s{"switchover-1", {{"app", 7, 0.0123}}, 0.02};
  CHECK(s.to_json().at("databases").at(0).at("id").as_int64() == 7);
  CHECK(s.to_table().find("12.3") != std::string::npos);

  SequenceCopyResult q;
  q.sequences.push_back({"app", "public", "s", "unowned", 42, false});
  CHECK(q.count() == 1);
  CHECK(q.to_json().at("sequences").at(0).at("is_called").as_bool() == false);
  CHECK(q.to_table().find("public.s") != std::string::npos);

  InitProgress p;
  p.tables_done = 3;
  p.tables_total = 7;
  p.bytes_copied = 1 << 20;
  p.bytes_total = 2 << 20;
  p.elapsed_seconds = 1.25;
  CHECK(p.to_line() == "tables 3/7, 1.0 MB of 2.0 MB, 1.2 s");

  InitReport i;
  i.synced = true;
  i.databases.push_back({"app", "pgflip_pub", "pgflip_app_1", 7, 1000, 2.5, true});
  CHECK(i.to_json().at("databases").at(0).at("subscription").as_string() == "pgflip_app_1");
  CHECK(i.to_table().find("synced in") != std::string::npos);

  CleanupReport c;
  CHECK(c.to_table() == "nothing to clean up\n");
  c.actions.push_back({"blue", "app", "publication pgflip_pub", "dropped"});
  c.actions.push_back({"blue", "postgres", "table pgflip.fence", "kept: blue is fenced"});
  CHECK(c.dropped() == 1);
  CHECK(c.to_json().at("actions").as_array().size() == 2);
}

TEST_CASE("ReplicationError names database, step and SQLSTATE") {
  const ReplicationError e(ErrorKind::kServer, "app", "init", "boom", "42P01", "DETAIL: x");
  CHECK(std::string(e.what()) == "[app] init: boom (SQLSTATE 42P01)\nDETAIL: x");
  CHECK(e.sqlstate() == "42P01");
  CHECK(e.kind() == ErrorKind::kServer);
  const ReplicationError c(ErrorKind::kTimeout, "", "sentinel", "late");
  CHECK(std::string(c.what()) == "sentinel: late");
}

}  // namespace pgflip::replication
