// Tests for the untyped packets: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.
#include <doctest/doctest.h>

#include "protocol/startup.hpp"
#include "test_util.hpp"

using namespace pgflip::protocol;
using namespace pgflip::protocol::test;

namespace {

std::string encoded(const StartupPacket& packet) {
  std::string out;
  encode(packet, out);
  return out;
}

// An untyped packet with a correct length around `body`.
std::string packet(std::string_view body) {
  return be32(static_cast<std::uint32_t>(body.size() + 4)) + std::string(body);
}

DecodeError startup_error(std::string_view buf) {
  const auto result = decode_startup(buf);
  REQUIRE(error(result) != nullptr);
  return *error(result);
}

}  // namespace

TEST_CASE("known bytes of the fixed-size packets") {
  CHECK(encoded(SSLRequest{}) == bytes({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f}));
  CHECK(encoded(GSSENCRequest{}) == bytes({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x30}));
  CHECK(encoded(CancelRequest{1234, 5678}) ==
        bytes({0x00, 0x00, 0x00, 0x10, 0x04, 0xd2, 0x16, 0x2e, 0x00, 0x00, 0x04, 0xd2, 0x00, 0x00,
               0x16, 0x2e}));
}

TEST_CASE("known bytes of a StartupMessage") {
  StartupMessage startup;
  startup.parameters = {{"user", "alice"}, {"database", "shop"}};
  const std::string expected = bytes({0x00, 0x00, 0x00, 0x22, 0x00, 0x03, 0x00, 0x00}) +
                               z("user\0alice\0database\0shop\0\0");
  CHECK(encoded(startup) == expected);

  const auto result = decode_startup(expected);
  REQUIRE(decoded(result) != nullptr);
  CHECK(decoded(result)->consumed == expected.size());
  const auto* message = std::get_if<StartupMessage>(&decoded(result)->message);
  REQUIRE(message != nullptr);
  CHECK(*message == startup);
  REQUIRE(message->find("database") != nullptr);
  CHECK(*message->find("database") == "shop");
  CHECK(message->find("options") == nullptr);
}

TEST_CASE("startup packets round-trip and split at every offset") {
  StartupMessage with_options;
  with_options.minor = 2;
  with_options.parameters = {{"user", "bob"},
                             {"database", ""},
                             {"options", "-c search_path=x"},
                             {"application_name", "psql \xc3\xa9"},
                             {"_pq_.test", "1"}};
  const std::vector<StartupPacket> packets = {with_options, SSLRequest{}, GSSENCRequest{},
                                              CancelRequest{-1, 0x7fffffff}, CancelRequest{0, 0}};
  std::string all;
  for (const auto& p : packets) {
    const std::string wire = encoded(p);
    all += wire;
    for (std::size_t n = 0; n < wire.size(); ++n) {
      CAPTURE(n);
      CHECK(need_more(decode_startup(std::string_view(wire).substr(0, n))));
    }
    const auto result = decode_startup(wire + "trailing");
    REQUIRE(decoded(result) != nullptr);
    CHECK(decoded(result)->consumed == wire.size());
    CHECK(decoded(result)->message == p);
  }
  std::string_view rest = all;
  for (const auto& p : packets) {
    const auto result = decode_startup(rest);
    REQUIRE(decoded(result) != nullptr);
    CHECK(decoded(result)->message == p);
    rest.remove_prefix(decoded(result)->consumed);
  }
  CHECK(rest.empty());
}

TEST_CASE("the last of repeated parameters wins, as in PostgreSQL") {
  StartupMessage startup;
  startup.parameters = {{"user", "a"}, {"user", "b"}};
  REQUIRE(startup.find("user") != nullptr);
  CHECK(*startup.find("user") == "b");
}

TEST_CASE("startup length limits") {
  for (const std::uint32_t length : {0u, 4u, 7u}) {
    CAPTURE(length);
    CHECK(startup_error(be32(length)).code == ErrorCode::kInvalidLength);
  }
  // The limit is on the body, as PostgreSQL's MAX_STARTUP_PACKET_LENGTH: 10000 + 4 is fine.
  CHECK(need_more(decode_startup(be32(kMaxStartupPacketSize + 4))));
  for (const std::uint32_t length :
       {static_cast<std::uint32_t>(kMaxStartupPacketSize + 5), 0x7fffffffu, 0x80000000u}) {
    CAPTURE(length);
    CHECK(startup_error(be32(length)).code == ErrorCode::kMessageTooLarge);
  }
  CHECK(need_more(decode_startup(be32(100) + be32(196608), 200)));
  CHECK(error(decode_startup(be32(100) + be32(196608), 50)) != nullptr);
}

TEST_CASE("fixed-size packets must have their exact length") {
  CHECK(startup_error(packet(be32(SSLRequest::kCode) + be32(0))).code == ErrorCode::kInvalidLength);
  CHECK(startup_error(packet(be32(GSSENCRequest::kCode) + "x")).code == ErrorCode::kInvalidLength);
  CHECK(startup_error(packet(be32(CancelRequest::kCode) + be32(1))).code ==
        ErrorCode::kInvalidLength);
  CHECK(startup_error(packet(be32(CancelRequest::kCode) + be32(1) + be32(2) + be32(3))).code ==
        ErrorCode::kInvalidLength);
}

TEST_CASE("protocol versions") {
  const DecodeError v2 = startup_error(packet(be32(2 << 16) + z("user\0x\0\0")));
  CHECK(v2.code == ErrorCode::kUnsupportedProtocol);
  CHECK(v2.detail.starts_with("2.0"));
  CHECK(startup_error(packet(be32(4 << 16) + z("user\0x\0\0"))).code ==
        ErrorCode::kUnsupportedProtocol);
  // An unknown negotiation code (1234.5681) is not a protocol PostgreSQL speaks either.
  CHECK(startup_error(packet(be32(80877105))).code == ErrorCode::kUnsupportedProtocol);

  // A newer 3.x minor is accepted; the proxy answers NegotiateProtocolVersion.
  const auto v32 = decode_startup(packet(be32((3 << 16) | 2) + z("user\0x\0\0")));
  REQUIRE(decoded(v32) != nullptr);
  const auto& startup = std::get<StartupMessage>(decoded(v32)->message);
  CHECK(startup.major == 3);
  CHECK(startup.minor == 2);
}

TEST_CASE("malformed parameter lists") {
  const std::string v3 = be32(3 << 16);
  const char* const kNoUser = "no PostgreSQL user name specified in startup packet";
  SUBCASE("no user") {
    const DecodeError e = startup_error(packet(v3 + z("database\0shop\0\0")));
    CHECK(e.code == ErrorCode::kMalformed);
    CHECK(e.detail == kNoUser);
  }
  SUBCASE("empty user") {
    const DecodeError e = startup_error(packet(v3 + z("user\0\0\0")));
    CHECK(e.code == ErrorCode::kMalformed);
    CHECK(e.detail == kNoUser);
  }
  SUBCASE("no parameters at all") {
    CHECK(startup_error(packet(v3)).code == ErrorCode::kMalformed);
    CHECK(startup_error(packet(v3 + z("\0"))).detail == kNoUser);
  }
  SUBCASE("missing list terminator") {
    CHECK(startup_error(packet(v3 + z("user\0alice\0"))).code == ErrorCode::kMalformed);
  }
  SUBCASE("name without value") {
    CHECK(startup_error(packet(v3 + z("user\0alice\0database\0"))).code == ErrorCode::kMalformed);
    CHECK(startup_error(packet(v3 + z("user\0alice\0database"))).code == ErrorCode::kMalformed);
  }
  SUBCASE("empty name before the end") {
    CHECK(startup_error(packet(v3 + z("user\0alice\0\0x\0y\0\0"))).code == ErrorCode::kMalformed);
    CHECK(startup_error(packet(v3 + z("\0user\0alice\0\0"))).code == ErrorCode::kMalformed);
  }
  SUBCASE("bytes after the terminator") {
    CHECK(startup_error(packet(v3 + z("user\0alice\0\0\0"))).code == ErrorCode::kMalformed);
  }
}

TEST_CASE("the encoder cannot produce a list the decoder misreads") {
  StartupMessage startup;
  startup.parameters = {{"user", std::string("al\0ice", 6)}, {"", "dropped"}, {"x", "1"}};
  const auto result = decode_startup(encoded(startup));
  REQUIRE(decoded(result) != nullptr);
  const auto& back = std::get<StartupMessage>(decoded(result)->message);
  REQUIRE(back.parameters.size() == 2);
  CHECK(back.parameters[0].second == "al");
  CHECK(back.parameters[1].first == "x");
}
