// The admin console's language (statements -> admin commands) and its result sets.
#include <doctest/doctest.h>

#include <string>
#include <variant>

#include "protocol/messages.hpp"
#include "proxy/admin/admin_table.hpp"
#include "proxy/admin/console.hpp"

namespace console = pgflip::proxy::console;
namespace json = boost::json;
namespace proto = pgflip::protocol;
using pgflip::proxy::AdminReply;
using pgflip::proxy::AdminTable;

namespace {

std::vector<console::Command> parse_ok(std::string_view text) {
  auto parsed = console::parse(text);
  if (auto* error = std::get_if<console::ParseError>(&parsed)) {
    FAIL_CHECK("parse error for '" << text << "': " << error->message);
    return {};
  }
  return std::get<std::vector<console::Command>>(parsed);
}

std::string parse_error(std::string_view text) {
  auto parsed = console::parse(text);
  if (auto* error = std::get_if<console::ParseError>(&parsed)) return error->message;
  FAIL_CHECK("no parse error for '" << text << "'");
  return {};
}

}  // namespace

TEST_CASE("console: SHOW subjects map to 'show <subject>', case-insensitively") {
  for (std::string_view text :
       {"SHOW CLIENTS", "show clients", "  Show   Clients  ", "SHOW CLIENTS;", "show clients ; ",
        "/* hi */ show -- comment\n clients"}) {
    CAPTURE(text);
    const auto commands = parse_ok(text);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0].kind == console::Command::Kind::kAdmin);
    CHECK(commands[0].admin_command == "show clients");
    CHECK(commands[0].tag == "SHOW");
    CHECK(commands[0].display == "SHOW CLIENTS");
    CHECK(commands[0].read_only);
    CHECK(commands[0].documented);
    CHECK(commands[0].args.empty());
  }
  for (std::string_view subject : {"servers", "stats", "config", "state", "replication"}) {
    const auto commands = parse_ok("SHOW " + std::string(subject));
    REQUIRE(commands.size() == 1);
    CHECK(commands[0].admin_command == "show " + std::string(subject));
    CHECK(commands[0].documented);
  }
  // Unknown subjects still go to the admin command table (a newer pgflip may serve them).
  const auto other = parse_ok("SHOW POOLS");
  REQUIRE(other.size() == 1);
  CHECK(other[0].admin_command == "show pools");
  CHECK_FALSE(other[0].documented);
  const auto help = parse_ok("show help");
  REQUIRE(help.size() == 1);
  CHECK(help[0].kind == console::Command::Kind::kHelp);
  CHECK(help[0].read_only);
}

TEST_CASE("console: several statements, empty ones skipped; ';' inside quotes or comments") {
  const auto commands = parse_ok("SHOW STATE; ;SHOW CLIENTS;;/* ; */ -- ;\n");
  REQUIRE(commands.size() == 2);
  CHECK(commands[0].admin_command == "show state");
  CHECK(commands[1].admin_command == "show clients");
  CHECK(parse_ok("").empty());
  CHECK(parse_ok(" ; ; -- nothing").empty());
  CHECK(parse_error("SHOW 'a;b'") == "syntax error at or near \"'a;b'\"");
}

TEST_CASE("console: SWITCHOVER options map to the switchover arguments") {
  auto c = parse_ok("SWITCHOVER");
  REQUIRE(c.size() == 1);
  CHECK(c[0].admin_command == "switchover");
  CHECK(c[0].tag == "SWITCHOVER");
  CHECK_FALSE(c[0].read_only);
  CHECK(c[0].args.empty());

  c = parse_ok("switchover dry run");
  REQUIRE(c.size() == 1);
  CHECK(c[0].args.at("dry_run").as_bool());
  CHECK(c[0].display == "SWITCHOVER DRY RUN");
  CHECK(parse_ok("SWITCHOVER DRY_RUN")[0].args.at("dry_run").as_bool());

  c = parse_ok("SWITCHOVER TIMEOUT 30 DRAIN_TIMEOUT 2.5 ON_STRAGGLER Cancel DRY RUN");
  REQUIRE(c.size() == 1);
  CHECK(c[0].args.at("timeout_s").as_double() == 30.0);
  CHECK(c[0].args.at("drain_timeout_s").as_double() == 2.5);
  CHECK(c[0].args.at("on_straggler").as_string() == "cancel");
  CHECK(c[0].args.at("dry_run").as_bool());
  CHECK(c[0].args.size() == 4);
}

TEST_CASE("console: bad SWITCHOVER options are syntax errors naming the problem") {
  CHECK(parse_error("SWITCHOVER TIMEOUT") == "TIMEOUT needs a number of seconds");
  CHECK(parse_error("SWITCHOVER TIMEOUT 0") ==
        "TIMEOUT must be a number of seconds in (0, 86400], got \"0\"");
  CHECK(parse_error("SWITCHOVER TIMEOUT -1") ==
        "TIMEOUT must be a number of seconds in (0, 86400], got \"-1\"");
  CHECK(parse_error("SWITCHOVER TIMEOUT 1e9") ==
        "TIMEOUT must be a number of seconds in (0, 86400], got \"1e9\"");
  CHECK(parse_error("SWITCHOVER TIMEOUT 5s") ==
        "TIMEOUT must be a number of seconds in (0, 86400], got \"5s\"");
  CHECK(parse_error("SWITCHOVER DRAIN_TIMEOUT nan") ==
        "DRAIN_TIMEOUT must be a number of seconds in (0, 86400], got \"nan\"");
  CHECK(parse_error("SWITCHOVER TIMEOUT 1 TIMEOUT 2") == "TIMEOUT is given twice");
  CHECK(parse_error("SWITCHOVER DRY RUN DRY_RUN") == "DRY RUN is given twice");
  CHECK(parse_error("SWITCHOVER ON_STRAGGLER wait") == "ON_STRAGGLER takes ABORT or CANCEL");
  CHECK(parse_error("SWITCHOVER ON_STRAGGLER") == "ON_STRAGGLER takes ABORT or CANCEL");
  CHECK(parse_error("SWITCHOVER DRY") == "syntax error at or near \"DRY\"");
  CHECK(parse_error("SWITCHOVER NOW") == "syntax error at or near \"NOW\"");
}

TEST_CASE("console: ABORT, PAUSE, RESUME, RELOAD take no arguments") {
  for (std::string_view verb : {"ABORT", "PAUSE", "RESUME", "RELOAD"}) {
    auto c = parse_ok(std::string(verb));
    REQUIRE(c.size() == 1);
    std::string lower(verb);
    for (char& ch : lower) ch = static_cast<char>(std::tolower(ch));
    CHECK(c[0].admin_command == lower);
    CHECK(c[0].tag == verb);
    CHECK_FALSE(c[0].read_only);
    CHECK(c[0].documented);
    CHECK(parse_error(std::string(verb) + " now") == "syntax error at or near \"now\"");
  }
}

TEST_CASE("console: what is not a console command is a syntax error") {
  CHECK(parse_error("SELECT 1") == "unrecognized console command \"SELECT\"");
  CHECK(parse_error("SHOW CLIENTS; DROP TABLE x") == "unrecognized console command \"DROP\"");
  CHECK(parse_error("SHOW") == "SHOW needs a subject");
  CHECK(parse_error("SHOW CLIENTS NOW") == "syntax error at or near \"NOW\"");
}

TEST_CASE("console: a tabular reply becomes typed columns, NULLs and rows") {
  AdminTable table({"id", "user", "tls", "ratio", "server_pid"});
  table.add({json::value(7), json::string("alice"), json::value(true), json::value(0.5),
             json::value(nullptr)});
  table.add(
      {json::value(8), json::string("bob"), json::value(false), json::value(2), json::value(1234)});
  const auto set = console::result_set(table.reply(), "x");
  REQUIRE(set.columns.size() == 5);
  CHECK(set.columns[0].name == "id");
  CHECK(set.columns[0].type == console::kInt8Oid);
  CHECK(set.columns[1].type == console::kTextOid);
  CHECK(set.columns[2].type == console::kBoolOid);
  CHECK(set.columns[3].type == console::kTextOid);  // mixed double and integer
  CHECK(set.columns[4].type == console::kInt8Oid);  // integers and NULL
  REQUIRE(set.rows.size() == 2);
  CHECK(set.rows[0][0] == "7");
  CHECK(set.rows[0][1] == "alice");
  CHECK(set.rows[0][2] == "t");
  CHECK(set.rows[0][3] == "0.5");
  CHECK_FALSE(set.rows[0][4].has_value());
  CHECK(set.rows[1][2] == "f");
  CHECK(set.rows[1][4] == "1234");

  // No rows: the columns still come from the table.
  const auto empty = console::result_set(AdminTable({"a", "b"}).reply(), "x");
  REQUIRE(empty.columns.size() == 2);
  CHECK(empty.columns[1].name == "b");
  CHECK(empty.rows.empty());
}

TEST_CASE("console: a non-tabular reply is its text, one row per line; none without text") {
  const auto set = console::result_set(
      AdminReply::success(json::object{{"outcome", "dry-run"}}, "line one\nline two\n"),
      "switchover");
  REQUIRE(set.columns.size() == 1);
  CHECK(set.columns[0].name == "switchover");
  REQUIRE(set.rows.size() == 2);
  CHECK(set.rows[1][0] == "line two");
  CHECK(console::result_set(AdminReply::success(nullptr, ""), "pause").columns.empty());
}

TEST_CASE("console: admin error codes map to SQLSTATEs") {
  CHECK(console::sqlstate_for("unknown_command", true) == "0A000");
  CHECK(console::sqlstate_for("unknown_command", false) == "42601");
  CHECK(console::sqlstate_for("state", true) == "55000");
  CHECK(console::sqlstate_for("switchover_aborted", true) == "55000");
  CHECK(console::sqlstate_for("config", true) == "55000");
  CHECK(console::sqlstate_for("busy", true) == "55006");
  CHECK(console::sqlstate_for("bad_request", true) == "22023");
  CHECK(console::sqlstate_for("permission", true) == "42501");
  CHECK(console::sqlstate_for("replication", true) == "58000");
  CHECK(console::sqlstate_for("internal", true) == "XX000");
}

TEST_CASE("console: encoded results decode as a server's would") {
  console::ResultSet set;
  set.columns = {{"name", console::kTextOid}, {"n", console::kInt8Oid}};
  set.rows = {{std::string("a"), std::string("1")}, {std::nullopt, std::string("2")}};
  std::string out;
  console::encode_result(set, "SHOW", out);
  console::encode_notice("step one", out);
  console::encode_error("ERROR", "42501", "denied", "why", "what to do", out);

  std::string_view rest = out;
  auto next = [&]() {
    auto decoded = proto::decode_backend(rest);
    auto* message = std::get_if<proto::Decoded<proto::BackendMessage>>(&decoded);
    REQUIRE(message != nullptr);
    rest.remove_prefix(message->consumed);
    return message->message;
  };
  const auto description = std::get<proto::RowDescription>(next());
  REQUIRE(description.fields.size() == 2);
  CHECK(description.fields[1].name == "n");
  CHECK(description.fields[1].type == 20);
  CHECK(std::get<proto::DataRow>(next()).columns[0] == "a");
  CHECK_FALSE(std::get<proto::DataRow>(next()).columns[0].has_value());
  CHECK(std::get<proto::CommandComplete>(next()).tag == "SHOW");
  CHECK(std::get<proto::NoticeResponse>(next()).field('M') == "step one");
  const auto error = std::get<proto::ErrorResponse>(next());
  CHECK(error.code() == "42501");
  CHECK(error.severity() == "ERROR");
  CHECK(error.detail() == "why");
  CHECK(error.field('H') == "what to do");
  CHECK(rest.empty());
}

TEST_CASE("console: SHOW HELP lists every command with who may run it") {
  const auto reply = console::help([](std::string_view name) { return name != "pause"; });
  REQUIRE(reply.ok);
  const auto& rows = reply.result.as_array();
  bool saw_pause = false;
  bool saw_switchover = false;
  for (const auto& row : rows) {
    const auto& r = row.as_object();
    const std::string command(r.at("command").as_string());
    if (command == "PAUSE") {
      saw_pause = true;
      CHECK_FALSE(r.at("available").as_bool());
      CHECK(r.at("access").as_string() == "admin");
    }
    if (command.starts_with("SWITCHOVER")) saw_switchover = true;
    if (command.starts_with("SHOW")) CHECK(r.at("access").as_string() == "stats");
  }
  CHECK(saw_pause);
  CHECK(saw_switchover);
  CHECK(reply.text.find("SHOW CLIENTS") != std::string::npos);
}
