// userlist.txt parsing: quoting, comments, secret kinds, and errors that name the line.
#include <doctest/doctest.h>

#include <string>

#include "protocol/md5.hpp"
#include "protocol/scram.hpp"
#include "proxy/frontdoor/users.hpp"

using pgflip::proxy::classify_secret;
using pgflip::proxy::UserSecret;
using pgflip::proxy::UsersFileError;
using pgflip::proxy::UserStore;
namespace proto = pgflip::protocol;

namespace {

std::string error_of(std::string_view text) {
  try {
    (void)UserStore::parse(text, "users.txt");
  } catch (const UsersFileError& e) {
    return e.what();
  }
  FAIL_CHECK("no UsersFileError for: " << text);
  return {};
}

}  // namespace

TEST_CASE("a userlist.txt with every kind of secret, comments and quoting") {
  const std::string scram =
      proto::format_scram_secret(proto::make_scram_secret("pw", "salt", 4096));
  const std::string md5 = proto::md5_secret("bob", "pw");
  const auto store = UserStore::parse(
      "; a comment\n"
      "# another\n"
      "\n"
      "  \"alice\" \"plain text\" anything after the second field is ignored\n"
      "\"bob\"\t\"" +
          md5 +
          "\"\r\n"
          "\"carol\" \"" +
          scram +
          "\"\n"
          "\"say \"\"hi\"\"\" \"a \"\"quoted\"\" secret\"\n"
          "\"empty\" \"\"",
      "users.txt");
  CHECK(store->size() == 5);
  const UserSecret* alice = store->find("alice");
  REQUIRE(alice != nullptr);
  CHECK(alice->kind == UserSecret::Kind::kPlaintext);
  CHECK(alice->text == "plain text");
  REQUIRE(store->find("bob") != nullptr);
  CHECK(store->find("bob")->kind == UserSecret::Kind::kMd5);
  CHECK(store->find("bob")->text == md5);
  const UserSecret* carol = store->find("carol");
  REQUIRE(carol != nullptr);
  CHECK(carol->kind == UserSecret::Kind::kScram);
  REQUIRE(carol->scram.has_value());
  CHECK(carol->scram->iterations == 4096);
  CHECK(carol->scram->salt == "salt");
  REQUIRE(store->find("say \"hi\"") != nullptr);
  CHECK(store->find("say \"hi\"")->text == "a \"quoted\" secret");
  REQUIRE(store->find("empty") != nullptr);
  CHECK(store->find("empty")->text.empty());
  CHECK(store->find("dave") == nullptr);
  CHECK(store->find("Alice") == nullptr);  // names are case-sensitive, as in PostgreSQL
}

TEST_CASE("secrets are sorted as PostgreSQL does") {
  CHECK(classify_secret("md5" + std::string(32, 'a')).kind == UserSecret::Kind::kMd5);
  // Not exactly "md5" + 32 lower-case hex digits: a (strange) plaintext password.
  CHECK(classify_secret("md5" + std::string(31, 'a')).kind == UserSecret::Kind::kPlaintext);
  CHECK(classify_secret("MD5" + std::string(32, 'a')).kind == UserSecret::Kind::kPlaintext);
  CHECK(classify_secret("SCRAM-SHA-256$4096:bad").kind == UserSecret::Kind::kPlaintext);
  CHECK(classify_secret("").kind == UserSecret::Kind::kPlaintext);
}

TEST_CASE("malformed lines are errors naming the file and line") {
  CHECK(error_of("\"a\" \"b\"\nalice secret\n") ==
        "users.txt:2: expected a user name in double quotes");
  CHECK(error_of("\"alice \"secret\"\n") ==
        "users.txt:1: expected the secret in double quotes after the user name");
  CHECK(error_of("\"alice\n") == "users.txt:1: the user name's closing '\"' is missing");
  CHECK(error_of("\"alice\" \"secret\n") == "users.txt:1: the secret's closing '\"' is missing");
  CHECK(error_of("\"alice\"\n") ==
        "users.txt:1: expected the secret in double quotes after the user name");
  CHECK(error_of("\"\" \"x\"\n") == "users.txt:1: the user name is empty");
  CHECK(error_of("\"a\" \"1\"\n; c\n\"a\" \"2\"\n") ==
        "users.txt:3: user \"a\" is listed twice (also line 1)");
  CHECK(error_of(std::string("\"a\" \"x\0y\"\n", 11)) == "users.txt:1: contains a NUL character");
}

TEST_CASE("a missing users file is an error naming it") {
  CHECK_THROWS_WITH_AS((void)UserStore::load("/nonexistent/userlist.txt"),
                       "/nonexistent/userlist.txt: cannot read the users file", UsersFileError);
}

TEST_CASE("the SCRAM secret of a plaintext password is derived once and verifies it") {
  const auto store = UserStore::parse("\"alice\" \"pencil\"\n", "users.txt");
  const proto::ScramSecret first = store->scram_for_plaintext("alice", "pencil");
  const proto::ScramSecret again = store->scram_for_plaintext("alice", "pencil");
  CHECK(first == again);  // cached: same salt, no second PBKDF2
  const proto::ScramKey salted =
      proto::scram_salted_password("pencil", first.salt, first.iterations);
  CHECK(proto::scram_stored_key(proto::scram_client_key(salted)) == first.stored_key);
  CHECK(proto::scram_server_key(salted) == first.server_key);
}
