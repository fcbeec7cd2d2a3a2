// Tests for MD5 password hashing (expected values computed independently with Python's hashlib).
#include <doctest/doctest.h>

#include "protocol/md5.hpp"

using namespace pgflip::protocol;

TEST_CASE("md5_hex known answers (RFC 1321)") {
  CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
}

TEST_CASE("stored md5 secret") {
  CHECK(md5_secret("postgres", "password") == "md532e12f215ba27cb750c9e093ce4b5127");
  CHECK(is_md5_secret("md532e12f215ba27cb750c9e093ce4b5127"));
  CHECK_FALSE(is_md5_secret("md532E12f215ba27cb750c9e093ce4b5127"));
  CHECK_FALSE(is_md5_secret("md532e12f215ba27cb750c9e093ce4b512"));
  CHECK_FALSE(is_md5_secret("SCRAM-SHA-256$4096:abc"));
}

TEST_CASE("AuthenticationMD5Password response") {
  const std::array<std::uint8_t, 4> salt{0x01, 0x02, 0x03, 0x04};
  CHECK(md5_password_response("postgres", "password", salt) ==
        "md598511ceaec347a656f032c7f2a16ef17");
  CHECK(md5_response_from_secret("md532e12f215ba27cb750c9e093ce4b5127", salt) ==
        "md598511ceaec347a656f032c7f2a16ef17");
  CHECK(md5_password_response("app", "s3cret", {0xde, 0xad, 0xbe, 0xef}) ==
        "md5cdd3b56de8674e6ed2e779cd02f26f7e");
  CHECK(md5_response_from_secret("not a secret", salt).empty());
}

TEST_CASE("server-side check of an MD5 response") {
  const std::array<std::uint8_t, 4> salt{0x01, 0x02, 0x03, 0x04};
  const std::string secret = md5_secret("postgres", "password");
  CHECK(verify_md5_response(secret, salt, "md598511ceaec347a656f032c7f2a16ef17"));
  CHECK_FALSE(verify_md5_response(secret, salt, "md598511ceaec347a656f032c7f2a16ef18"));
  CHECK_FALSE(verify_md5_response(secret, {0, 0, 0, 0}, "md598511ceaec347a656f032c7f2a16ef17"));
  CHECK_FALSE(verify_md5_response(secret, salt, ""));
  CHECK_FALSE(verify_md5_response("bogus", salt, ""));
}
