// Unit tests of the SQL builders and dump filters (no server): splitting, role and schema dumps.
#include <doctest/doctest.h>

#include <algorithm>

#include "replication/sql.hpp"

namespace pgflip::replication {
namespace {

// What pg_dumpall 15.20 --roles-only prints (shape copied from a real run).
constexpr const char* kRoleDump = R"(--
-- PostgreSQL database cluster dump
--

\restrict CZ1YpB2cjomkeJ6dG855QEvwtPJzgUXFTfMbG5PKnjV3AS5MnNmwWwc4tk0yxoG

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE "Weird ""Role";
ALTER ROLE "Weird ""Role" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:okbl1V3ZBjFZzBa8kr8Pvg==$9Cjw5x6LeJgA6QoyNcqNihvrxvVT8GYwrtw91Peu+Ag=:bvF2YXpymL9bUllfy/492efDNTk8iUBNX6s6xE5qnEY=';
COMMENT ON ROLE app IS 'it''s; app';
CREATE ROLE existing;
ALTER ROLE existing WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;

--
-- User Configurations
--

--
-- User Config "app"
--

ALTER ROLE app SET search_path TO '$user', 'public';
ALTER ROLE app IN DATABASE appdb SET work_mem TO '64MB';


--
-- Role memberships
--

GRANT app TO "Weird ""Role" GRANTED BY postgres;
GRANT existing TO postgres GRANTED BY postgres;
GRANT existing TO app WITH ADMIN OPTION GRANTED BY "Weird ""Role";




\unrestrict CZ1YpB2cjomkeJ6dG855QEvwtPJzgUXFTfMbG5PKnjV3AS5MnNmwWwc4tk0yxoG

--
-- PostgreSQL database cluster dump complete
--

)";

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("split_statements respects quotes, dollar quotes, comments and psql meta-commands") {
  const auto st = sql::split_statements(
      "\\restrict abc\n"
      "-- a comment; with a semicolon\n"
      "SELECT 'a;b', \"x;y\" FROM t; /* block; /* nested; */ still */ SELECT 2;\n"
      "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
      "SELECT $1::int; SELECT E'it\\'s;' ;\n"
      "\\unrestrict abc\n");
  REQUIRE(st.size() == 7);
  CHECK(st[0].meta);
  CHECK(st[0].text == "\\restrict abc");
  CHECK(st[1].text == "SELECT 'a;b', \"x;y\" FROM t");
  CHECK(st[2].text == "SELECT 2");
  CHECK(st[3].text == "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql");
  CHECK(st[4].text == "SELECT $1::int");
  CHECK(st[5].text == "SELECT E'it\\'s;'");
  CHECK(st[6].meta);
  for (std::size_t i = 1; i < 6; ++i) CHECK_FALSE(st[i].meta);
}

TEST_CASE("read_identifier folds unquoted names and unescapes quoted ones") {
  std::size_t pos = 0;
  CHECK(sql::read_identifier("  App rest", pos) == "app");
  CHECK(pos == 5);
  pos = 0;
  CHECK(sql::read_identifier("\"Weird \"\"Role\" x", pos) == "Weird \"Role");
  CHECK(pos == 14);
  pos = 0;
  CHECK(sql::read_identifier("  ;", pos).empty());
  CHECK(pos == 0);
}

TEST_CASE("filter_role_dump keeps only roles green lacks, with their password secrets") {
  const sql::RoleScript s =
      sql::filter_role_dump(kRoleDump, {"postgres", "existing"}, {"postgres"});
  CHECK(s.created_roles == std::vector<std::string>{"Weird \"Role", "app"});
  CHECK(s.skipped_roles == std::vector<std::string>{"existing", "postgres"});
  CHECK(contains(s.sql, "CREATE ROLE \"Weird \"\"Role\";"));
  CHECK(contains(s.sql, "CREATE ROLE app;"));
  CHECK(contains(s.sql, "PASSWORD 'SCRAM-SHA-256$4096:okbl1V3ZBjFZzBa8kr8Pvg==$9Cjw5x6"));
  CHECK(contains(s.sql, "COMMENT ON ROLE app IS 'it''s; app';"));
  CHECK(contains(s.sql, "ALTER ROLE app SET search_path TO '$user', 'public';"));
  CHECK(contains(s.sql, "SET standard_conforming_strings = on;"));
  // Existing roles are left alone.
  CHECK_FALSE(contains(s.sql, "CREATE ROLE existing"));
  CHECK_FALSE(contains(s.sql, "ALTER ROLE existing"));
  CHECK_FALSE(contains(s.sql, "ALTER ROLE postgres"));
  // Memberships involving a new role survive, without GRANTED BY.
  CHECK(contains(s.sql, "GRANT \"app\" TO \"Weird \"\"Role\";"));
  CHECK(contains(s.sql, "GRANT \"existing\" TO \"app\" WITH ADMIN OPTION;"));
  CHECK_FALSE(contains(s.sql, "GRANT \"existing\" TO \"postgres\""));
  CHECK_FALSE(contains(s.sql, "GRANTED BY"));
  // psql meta-commands and per-database settings are not run over libpq.
  CHECK_FALSE(contains(s.sql, "\\restrict"));
  CHECK_FALSE(contains(s.sql, "IN DATABASE"));
  CHECK(std::any_of(s.skipped_statements.begin(), s.skipped_statements.end(),
                    [](const std::string& t) { return contains(t, "IN DATABASE appdb"); }));
}

TEST_CASE("filter_role_dump with every role present produces only SET statements") {
  const sql::RoleScript s = sql::filter_role_dump(
      kRoleDump, {"postgres", "existing", "app", "Weird \"Role"}, {"postgres"});
  CHECK(s.created_roles.empty());
  for (const auto& st : sql::split_statements(s.sql)) CHECK(st.text.starts_with("SET "));
}

TEST_CASE("filter_schema_dump drops pgflip's own entries and keeps psql meta-commands") {
  const std::string dump =
      "--\n-- PostgreSQL database dump\n--\n\n\\restrict KEY\n\nSET lock_timeout = 0;\n\n"
      "--\n-- Name: t; Type: TABLE; Schema: public; Owner: postgres\n--\n\n"
      "CREATE TABLE public.t (id integer);\n\n"
      "--\n-- Name: heartbeat; Type: TABLE; Schema: pgflip; Owner: postgres\n--\n\n"
      "CREATE TABLE pgflip.heartbeat (id bigint);\n\n"
      "--\n-- Name: pgflip_ddl_end; Type: EVENT TRIGGER; Schema: -; Owner: postgres\n--\n\n"
      "CREATE EVENT TRIGGER pgflip_ddl_end ON ddl_command_end\n"
      "   EXECUTE FUNCTION pgflip.log_ddl();\n\n\n"
      "ALTER EVENT TRIGGER pgflip_ddl_end OWNER TO postgres;\n\n"
      "--\n-- Name: EVENT TRIGGER pgflip_ddl_end; Type: COMMENT; Schema: -; Owner: postgres\n"
      "--\n\nCOMMENT ON EVENT TRIGGER pgflip_ddl_end IS 'x';\n\n"
      "--\n-- Name: audit; Type: EVENT TRIGGER; Schema: -; Owner: postgres\n--\n\n"
      "CREATE EVENT TRIGGER audit ON ddl_command_end\n   EXECUTE FUNCTION public.audit();\n\n"
      "\\unrestrict KEY\n\n"
      "--\n-- PostgreSQL database dump complete\n--\n\n";
  const std::string out = sql::filter_schema_dump(dump, ObjectNames::for_prefix("pgflip"));
  CHECK(contains(out, "CREATE TABLE public.t (id integer);"));
  CHECK(contains(out, "CREATE EVENT TRIGGER audit"));
  CHECK(contains(out, "\\restrict KEY"));
  CHECK(contains(out, "\\unrestrict KEY"));
  CHECK(contains(out, "-- PostgreSQL database dump complete"));
  CHECK_FALSE(contains(out, "pgflip_ddl_end"));
  CHECK_FALSE(contains(out, "pgflip.heartbeat"));
}

TEST_CASE("sequence queries quote names and set everything in one statement") {
  const std::string read = sql::read_sequences_query({{"public", "s1"}, {"My Schema", "we\"ird"}});
  CHECK(read ==
        "SELECT 'public'::text, 's1'::text, last_value, is_called FROM \"public\".\"s1\"\n"
        "UNION ALL SELECT 'My Schema'::text, 'we\"ird'::text, last_value, is_called FROM "
        "\"My Schema\".\"we\"\"ird\"");
  CHECK(sql::read_sequences_query({}).empty());
  const std::string set = sql::set_sequences_query();
  CHECK(contains(set, "setval"));
  CHECK(contains(set, "unnest($1::text[], $2::text[], $3::int8[], $4::bool[])"));
  CHECK(sql::split_statements(set).size() == 1);
}

TEST_CASE("pgflip's DDL is built from the prefix and quoted") {
  const ObjectNames n = ObjectNames::for_prefix("pgflip");
  const std::string tables = sql::create_pgflip_tables(n);
  CHECK(contains(tables, "CREATE SCHEMA IF NOT EXISTS \"pgflip\""));
  CHECK(contains(tables, "CREATE TABLE IF NOT EXISTS \"pgflip\".heartbeat"));
  CHECK(contains(tables, "CREATE TABLE IF NOT EXISTS \"pgflip\".ddl_log"));
  CHECK(contains(tables, "CREATE TABLE IF NOT EXISTS \"pgflip\".fence"));
  CHECK(contains(sql::create_ddl_log_function(n), "SECURITY DEFINER"));
  CHECK(sql::create_event_trigger(n, false) ==
        "CREATE EVENT TRIGGER \"pgflip_ddl_end\" ON ddl_command_end EXECUTE FUNCTION "
        "\"pgflip\".log_ddl()");
  CHECK(contains(sql::create_event_trigger(n, true), "ON sql_drop"));
  // Every script splits into whole statements (the function body stays one).
  CHECK(sql::split_statements(sql::create_ddl_log_function(n)).size() == 1);
}

TEST_CASE("nonempty_tables_query checks every table in one statement") {
  CHECK(sql::nonempty_tables_query({}).empty());
  CHECK(sql::nonempty_tables_query({"public.a", "\"S\".\"it's\""}) ==
        "SELECT 'public.a'::text WHERE EXISTS (SELECT 1 FROM public.a)\n"
        "UNION ALL SELECT '\"S\".\"it''s\"'::text WHERE EXISTS (SELECT 1 FROM \"S\".\"it's\")");
}

TEST_CASE("like_prefix escapes LIKE wildcards") {
  CHECK(sql::like_prefix("pgflip_") == "pgflip\\_%");
  CHECK(sql::like_prefix("a%b\\") == "a\\%b\\\\%");
}

TEST_CASE("replica identity fixes prefer a usable unique index") {
  CHECK(sql::replica_identity_fix("public.t", "t_code_key") ==
        "ALTER TABLE public.t REPLICA IDENTITY USING INDEX t_code_key;");
  CHECK(sql::replica_identity_fix("public.t", "")
            .starts_with("ALTER TABLE public.t REPLICA IDENTITY FULL;"));
}

}  // namespace pgflip::replication
