// Tests for the typed message header decoder.
#include <doctest/doctest.h>

#include "protocol/codec.hpp"
#include "test_util.hpp"

using namespace pgflip::protocol;
using namespace pgflip::protocol::test;

TEST_CASE("decode_header needs five bytes") {
  const std::string header = bytes({'Q', 0, 0, 0, 13});
  for (std::size_t n = 0; n < kHeaderSize; ++n) {
    CHECK(need_more(decode_header(std::string_view(header).substr(0, n))));
  }
  const auto result = decode_header(header);
  REQUIRE(decoded(result) != nullptr);
  CHECK(decoded(result)->message.type == 'Q');
  CHECK(decoded(result)->message.length == 13);
  CHECK(decoded(result)->message.body_size() == 9);
  CHECK(decoded(result)->message.message_size() == 14);
  CHECK(decoded(result)->consumed == kHeaderSize);
}

TEST_CASE("decode_header reads the length big-endian and ignores the body") {
  const auto result = decode_header(bytes({'d', 0x01, 0x02, 0x03, 0x04}) + "xyz");
  REQUIRE(decoded(result) != nullptr);
  CHECK(decoded(result)->message.length == 0x01020304u);
}

TEST_CASE("decode_header rejects lengths below 4") {
  for (const std::uint32_t length : {0u, 1u, 3u}) {
    const auto result = decode_header(std::string("S") + be32(length));
    REQUIRE(error(result) != nullptr);
    CHECK(error(result)->code == ErrorCode::kInvalidLength);
  }
  CHECK(decoded(decode_header(std::string("S") + be32(4))) != nullptr);  // empty body
}

TEST_CASE("decode_header enforces the maximum body size") {
  CHECK(decoded(decode_header(std::string("d") + be32(14), 10)) != nullptr);
  const auto too_large = decode_header(std::string("d") + be32(15), 10);
  REQUIRE(error(too_large) != nullptr);
  CHECK(error(too_large)->code == ErrorCode::kMessageTooLarge);

  for (const std::uint32_t length : {0x7fffffffu, 0x80000000u, 0xffffffffu,
                                     static_cast<std::uint32_t>(kDefaultMaxMessageSize + 5)}) {
    CAPTURE(length);
    const auto result = decode_header(std::string("d") + be32(length));
    REQUIRE(error(result) != nullptr);
    CHECK(error(result)->code == ErrorCode::kMessageTooLarge);
  }
  CHECK(decoded(decode_header(std::string("d") + be32(static_cast<std::uint32_t>(
                                                     kDefaultMaxMessageSize + 4)))) != nullptr);
}

TEST_CASE("error details name the type byte readably") {
  const auto result = decode_header(bytes({0x01, 0, 0, 0, 0}));
  REQUIRE(error(result) != nullptr);
  CHECK(error(result)->detail.find("0x01") != std::string::npos);
  CHECK(printable_type('Q') == "'Q'");
  CHECK(printable_type('\xff') == "0xff");
  CHECK(error_code_name(ErrorCode::kMalformed) == "malformed message");
}
