// Tests for SASLprep: RFC 4013 examples, NFKC cases, and PostgreSQL's fallbacks.
#include <doctest/doctest.h>

#include "protocol/saslprep.hpp"

using namespace pgflip::protocol;

namespace {

std::string prepared(std::string_view input) {
  const SaslprepResult result = saslprep(input);
  REQUIRE(result.status == SaslprepStatus::kSuccess);
  return result.output;
}

SaslprepStatus status(std::string_view input) { return saslprep(input).status; }

}  // namespace

TEST_CASE("RFC 4013 section 3 examples") {
  CHECK(prepared("I\xc2\xadX") == "IX");  // SOFT HYPHEN mapped to nothing
  CHECK(prepared("user") == "user");
  CHECK(prepared("USER") == "USER");
  CHECK(prepared("\xc2\xaa") == "a");                            // FEMININE ORDINAL INDICATOR
  CHECK(prepared("\xe2\x85\xa8") == "IX");                       // ROMAN NUMERAL NINE
  CHECK(status("\xd8\xa7\x31") == SaslprepStatus::kProhibited);  // bidi: must end in RandAL
  // The RFC prohibits U+0007, but PostgreSQL passes pure ASCII through untouched.
  CHECK(prepared("\x07") == "\x07");
}

TEST_CASE("ASCII passes unchanged, even when empty") {
  CHECK(prepared("") == "");
  CHECK(prepared("correct horse battery staple") == "correct horse battery staple");
}

TEST_CASE("NFKC normalization (expected values from Python's unicodedata)") {
  CHECK(prepared("\xef\xac\x81") == "fi");              // U+FB01 LATIN SMALL LIGATURE FI
  CHECK(prepared("\xef\xbc\xa1\xef\xbc\xa2") == "AB");  // fullwidth
  CHECK(prepared("e\xcc\x81") == "\xc3\xa9");           // e + COMBINING ACUTE -> é
  CHECK(prepared("\xe2\x84\xab") == "\xc3\x85");        // ANGSTROM SIGN -> Å
  CHECK(prepared("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8") == "\xea\xb0\x81");  // Hangul jamo -> 각
  CHECK(prepared("A\xcc\xa7\xcc\x81") == "\xc3\x81\xcc\xa7");     // reordered, then composed
  CHECK(prepared("q\xcc\x87\xcc\xa3") == "q\xcc\xa3\xcc\x87");    // reordered, nothing to compose
  CHECK(prepared("\xe1\xba\x9b\xcc\xa3") == "\xe1\xb9\xa9");      // U+1E9B U+0323 -> U+1E69
  CHECK(prepared("\xe0\xa5\x98") == "\xe0\xa4\x95\xe0\xa4\xbc");  // exclusion stays decomposed
  CHECK(prepared("P\xc3\xa4sw\xc3\xb6rd") == "P\xc3\xa4sw\xc3\xb6rd");  // already NFKC
}

TEST_CASE("mapping") {
  CHECK(prepared("\xe3\x80\x80x") == " x");  // IDEOGRAPHIC SPACE -> space
  CHECK(prepared("a\xe2\x80\x8b"
                 "b") == "a b");                             // ZERO WIDTH SPACE is a space in C.1.2
  CHECK(status("\xc2\xad") == SaslprepStatus::kProhibited);  // empty after mapping
}

TEST_CASE("prohibited and unassigned characters, bidi rules") {
  CHECK(status("a\xc2\x80") == SaslprepStatus::kProhibited);         // C.2.2 control
  CHECK(status("\xee\x80\x80") == SaslprepStatus::kProhibited);      // U+E000 private use
  CHECK(status("\xef\xbf\xbe") == SaslprepStatus::kProhibited);      // U+FFFE non-character
  CHECK(status("\xf0\x9f\x98\x80") == SaslprepStatus::kProhibited);  // emoji: unassigned in 3.2
  CHECK(status("\xc3\xa9\x07") == SaslprepStatus::kProhibited);      // ASCII control, not all ASCII
  CHECK(prepared("\xd8\xa7\x31\xd8\xa8") == "\xd8\xa7\x31\xd8\xa8");  // RandAL ... RandAL
  CHECK(status("\xd8\xa7"
               "a"
               "\xd8\xa8") == SaslprepStatus::kProhibited);  // with an L char
}

TEST_CASE("invalid UTF-8") {
  for (const std::string_view bad : {"\xff", "a\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                                     "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xc3\x28"}) {
    CAPTURE(bad);
    CHECK(status(bad) == SaslprepStatus::kInvalidUtf8);
  }
}

TEST_CASE("scram_prepare_password falls back to the raw bytes, as PostgreSQL does") {
  CHECK(scram_prepare_password("I\xc2\xadX") == "IX");
  CHECK(scram_prepare_password("\xff\xfe") == "\xff\xfe");
  CHECK(scram_prepare_password("\xee\x80\x80") == "\xee\x80\x80");
  CHECK(scram_prepare_password("\xc2\xad") == "\xc2\xad");
}
