// note_custom_settings: the dotted setting names a client's SQL can set, from SET, RESET and
// set_config, in any case, with comments and several statements; nothing from other SQL.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "protocol/custom_settings.hpp"

using pgflip::protocol::note_custom_settings;

namespace {
std::vector<std::string> names_in(std::string_view sql) {
  std::vector<std::string> names;
  note_custom_settings(sql, names);
  return names;
}
using Names = std::vector<std::string>;
}  // namespace

TEST_CASE("SET, SET SESSION, SET LOCAL and RESET of a dotted name, in any case") {
  CHECK(names_in("SET app.tenant = '42'") == Names{"app.tenant"});
  CHECK(names_in("set App.Tenant to 42") == Names{"app.tenant"});
  CHECK(names_in("SET SESSION app.tenant = 1") == Names{"app.tenant"});
  CHECK(names_in("SET LOCAL app.tenant = 1") == Names{"app.tenant"});
  CHECK(names_in("RESET app.tenant") == Names{"app.tenant"});
  CHECK(names_in("SET \"My App\".\"Tenant\" = 1") == Names{"My App.Tenant"});
  CHECK(names_in("SET a.b.c = 1") == Names{"a.b.c"});
}

TEST_CASE("every statement of a multi-statement query, after comments and whitespace") {
  CHECK(names_in("SELECT 1; SET app.a = 1;\n  -- note\n  /* x */ SET app.b = 2; RESET app.c") ==
        Names{"app.a", "app.b", "app.c"});
  CHECK(names_in("SET app.a = 1; SET app.a = 2") == Names{"app.a"});  // once each
}

TEST_CASE("set_config anywhere, schema-qualified or not, whatever its case") {
  CHECK(names_in("SELECT set_config('app.user_id', '7', false)") == Names{"app.user_id"});
  CHECK(names_in("SELECT pg_catalog.SET_CONFIG ( 'App.X', $1, false)") == Names{"app.x"});
  CHECK(names_in("SELECT x.y FROM t WHERE set_config('it''s.odd', 'v', true) IS NOT NULL") ==
        Names{"it's.odd"});
}

TEST_CASE("nothing from statements that set no custom setting") {
  CHECK(names_in("SELECT a.b FROM t AS a").empty());
  CHECK(names_in("UPDATE t SET x = 1 WHERE t.id = 2").empty());             // SET inside UPDATE
  CHECK(names_in("SET search_path = public, app.s").empty());               // not a dotted name
  CHECK(names_in("SET SESSION AUTHORIZATION app.user").empty());            // not a setting
  CHECK(names_in("SELECT my_set_config('a.b')").empty());                   // another function
  CHECK(names_in("SELECT set_config(name, 'v', false) FROM n.t").empty());  // not a literal
  CHECK(names_in("SET app = 1").empty());
  CHECK(names_in("SET app. = 1").empty());
  CHECK(names_in("SET").empty());
  CHECK(names_in("").empty());
  CHECK(names_in("SELECT set_config('a.b").empty());  // unterminated literal
}
