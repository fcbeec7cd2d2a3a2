// Unit tests of object naming and of the quoting helpers (no server).
#include <doctest/doctest.h>

#include "replication/manager.hpp"
#include "replication/names.hpp"
#include "replication/pg.hpp"

namespace pgflip::replication {

TEST_CASE("name prefixes must be usable unquoted as schema, slot and subscription names") {
  CHECK(valid_name_prefix("pgflip"));
  CHECK(valid_name_prefix("_p1"));
  CHECK_FALSE(valid_name_prefix(""));
  CHECK_FALSE(valid_name_prefix("PgFlip"));
  CHECK_FALSE(valid_name_prefix("1abc"));
  CHECK_FALSE(valid_name_prefix("pg-flip"));
  CHECK_FALSE(valid_name_prefix(std::string(41, 'a')));
}

TEST_CASE("a manager refuses settings that would make unsafe names") {
  Settings bad_prefix;
  bad_prefix.name_prefix = "Pg-Flip";
  CHECK_THROWS_AS(Manager{bad_prefix}, ReplicationError);
  Settings no_app_name;
  no_app_name.application_name.clear();
  CHECK_THROWS_AS(Manager{no_app_name}, ReplicationError);
  CHECK_NOTHROW(Manager{Settings{}});  // constructing connects to nothing
}

TEST_CASE("object names derive from the prefix") {
  const ObjectNames n = ObjectNames::for_prefix("pgflip");
  CHECK(n.schema == "pgflip");
  CHECK(n.publication == "pgflip_pub");
  CHECK(n.event_trigger_end == "pgflip_ddl_end");
  CHECK(n.event_trigger_drop == "pgflip_ddl_drop");
  CHECK(n.subscription_prefix() == "pgflip_");
}

TEST_CASE("subscription and slot names fold the database name and stay within 63 bytes") {
  const ObjectNames n = ObjectNames::for_prefix("pgflip");
  CHECK(n.subscription("app", 16384) == "pgflip_app_16384");
  CHECK(n.subscription("My-App DB", 5) == "pgflip_my_app_db_5");
  CHECK(n.subscription("ünï", 7) == "pgflip___n___7");  // each byte of ü and ï becomes _
  const std::string long_name = n.subscription(std::string(100, 'x'), 4294967295u);
  CHECK(long_name.size() == 63);
  CHECK(long_name.starts_with("pgflip_xxx"));
  CHECK(long_name.ends_with("_4294967295"));
  // Two databases whose names fold alike still differ by oid.
  CHECK(n.subscription("a-b", 1) != n.subscription("a_b", 2));
}

TEST_CASE("quote_qualified quotes both parts") {
  CHECK(quote_qualified("public", "T") == "\"public\".\"T\"");
  CHECK(quote_qualified("my \"s\"", "t") == "\"my \"\"s\"\"\".\"t\"");
}

TEST_CASE("conninfo_string quotes every value and skips empty ones") {
  CHECK(conninfo_string({{"host", "/tmp/x y"}, {"password", "p'w\\d"}, {"sslmode", ""}}) ==
        "host='/tmp/x y' password='p\\'w\\\\d'");
}

TEST_CASE("text_array_literal quotes elements for $n::text[]") {
  CHECK(text_array_literal({}) == "{}");
  CHECK(text_array_literal({"a", "b c", "q\"uote", "back\\slash", "NULL"}) ==
        "{\"a\",\"b c\",\"q\\\"uote\",\"back\\\\slash\",\"NULL\"}");
}

}  // namespace pgflip::replication
