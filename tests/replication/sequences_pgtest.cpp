// Live test of the sequence copy: exact last_value and is_called for every kind of sequence.
#include <doctest/doctest.h>

#include <map>

#include "pgtest_support.hpp"

namespace pgflip::replication::test {
namespace {

/// schema.name -> "last_value/is_called", read from the sequence relations themselves.
std::map<std::string, std::string> sequence_states(PgConnection& c) {
  PgResult list = c.exec(
      "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
      "c.relnamespace WHERE c.relkind = 'S' AND n.nspname NOT IN ('pgflip') ORDER BY 1, 2",
      "test");
  std::map<std::string, std::string> out;
  for (int i = 0; i < list.rows(); ++i) {
    const std::string q = quote_qualified(list.text(i, 0), list.text(i, 1));
    PgResult v = c.exec("SELECT last_value || '/' || is_called FROM " + q, "test");
    out[list.text(i, 0) + "." + list.text(i, 1)] = v.text(0, 0);
  }
  return out;
}

}  // namespace

TEST_CASE("sequences: owned, unowned, identity, never used and is_called = false copy exactly") {
  TestDatabase db("repl_seq");
  PgConnection b = blue(db.name());
  b.run(
      "CREATE TABLE owned (id serial PRIMARY KEY, v int);"
      "CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int);"
      "CREATE SEQUENCE unowned_seq;"
      "CREATE SEQUENCE never_used START 100;"
      "CREATE SEQUENCE called_false;"
      "CREATE SEQUENCE \"Odd \"\"Seq\"\" Name\" INCREMENT -3 MINVALUE -1000 MAXVALUE 10 START 7;"
      "CREATE SEQUENCE cached CACHE 20;"
      "CREATE SCHEMA other; CREATE SEQUENCE other.s2;",
      "test");
  Manager m(settings_for({db.name()}));
  InitOptions options;
  options.copy_schema = true;  // creates the sequences on green, at their start values
  REQUIRE(m.init(options).synced);

  b.run(
      "INSERT INTO owned (v) SELECT generate_series(1, 5);"
      "INSERT INTO ident (v) SELECT generate_series(1, 7);"
      "SELECT nextval('unowned_seq') FROM generate_series(1, 3);"
      "SELECT setval('called_false', 42, false);"
      "SELECT nextval('\"Odd \"\"Seq\"\" Name\"') FROM generate_series(1, 2);"
      "SELECT nextval('cached');"
      "SELECT setval('other.s2', 1000);",
      "test");
  PgConnection g = green(db.name());
  const auto blue_states = sequence_states(b);
  CHECK(sequence_states(g) != blue_states);

  const SequenceCopyResult r = m.copy_sequences();
  MESSAGE(r.to_table());
  CHECK(r.count() == 8);
  std::map<std::string, const SequenceValue*> by_name;
  for (const auto& s : r.sequences) by_name[s.schema + "." + s.name] = &s;
  REQUIRE(by_name.contains("public.owned_id_seq"));
  CHECK(by_name["public.owned_id_seq"]->ownership == "owned");
  REQUIRE(by_name.contains("public.ident_id_seq"));
  CHECK(by_name["public.ident_id_seq"]->ownership == "identity");
  REQUIRE(by_name.contains("public.unowned_seq"));
  CHECK(by_name["public.unowned_seq"]->ownership == "unowned");
  REQUIRE(by_name.contains("public.called_false"));
  CHECK(by_name["public.called_false"]->last_value == 42);
  CHECK_FALSE(by_name["public.called_false"]->is_called);

  // Exactly equal on green, every sequence.
  CHECK(sequence_states(g) == blue_states);
  CHECK(blue_states.at("public.called_false") == "42/false");
  CHECK(blue_states.at("public.never_used") == "100/false");
  CHECK(blue_states.at("public.owned_id_seq") == "5/true");
  CHECK(blue_states.at("public.Odd \"Seq\" Name") == "4/true");
  // And they continue where blue stopped.
  CHECK(scalar(g, "SELECT nextval('owned_id_seq')") == 6);
  CHECK(scalar(g, "SELECT nextval('called_false')") == 42);
  CHECK(scalar(g, "SELECT nextval('never_used')") == 100);
}

}  // namespace pgflip::replication::test
