// Tests for SQL quoting: identifiers as PQescapeIdentifier, literals for standard strings.
#include <doctest/doctest.h>

#include "protocol/sql_quote.hpp"

using namespace pgflip::protocol;

TEST_CASE("quote_ident always quotes and doubles embedded quotes, like PQescapeIdentifier") {
  CHECK(quote_ident("t") == "\"t\"");
  CHECK(quote_ident("") == "\"\"");
  CHECK(quote_ident("Weird \"x\"") == "\"Weird \"\"x\"\"\"");
}

TEST_CASE("quote_literal doubles quotes and switches to E'' for backslashes") {
  CHECK(quote_literal("it's") == "'it''s'");
  CHECK(quote_literal("") == "''");
  CHECK(quote_literal("a\\b'c") == "E'a\\\\b''c'");
}
