// Tests for the typed frontend and backend messages: known bytes, round trips, splits, bad bodies.
#include <doctest/doctest.h>

#include <set>
#include <vector>

#include "protocol/messages.hpp"
#include "test_util.hpp"

using namespace pgflip::protocol;
using namespace pgflip::protocol::test;

namespace {

template <class Msg>
std::string wire(const Msg& message) {
  std::string out;
  encode(message, out);
  return out;
}

std::vector<FrontendMessage> frontend_samples() {
  return {
      Bind{"", "", {}, {}, {}},
      Bind{"portal", "stmt", {1}, {std::string("\x00\x01", 2), std::nullopt, ""}, {0, 1}},
      Bind{"p", "s", {0, 1}, {std::string("42"), std::nullopt}, {1}},
      Close{'S', "stmt"},
      Close{'P', ""},
      CopyData{std::string("a\tb\n\0\xff", 6)},
      CopyData{""},
      CopyDone{},
      CopyFail{"client gave up"},
      Describe{'S', ""},
      Describe{'P', "portal"},
      Execute{"", 0},
      Execute{"portal", -1},
      Flush{},
      FunctionCall{1598, {}, {}, 0},
      FunctionCall{0xffffffffu, {1}, {std::string("x"), std::nullopt}, 1},
      Parse{"", "select 1", {}},
      Parse{"s1", "select $1::int, $2", {23, 0, 0xfffffffeu}},
      PasswordMessage{z("md5abc\0")},
      PasswordMessage{z("SCRAM-SHA-256\0\0\0\0\x05n,,n=")},
      Query{"select 1"},
      Query{""},
      Query{"select '\xc3\xa9t\xc3\xa9'"},
      Sync{},
      Terminate{},
      UnknownMessage{'z', "anything\0"},
      UnknownMessage{'\x01', ""},
  };
}

std::vector<BackendMessage> backend_samples() {
  return {
      Authentication{Authentication::kOk, {}},
      Authentication{Authentication::kKerberosV5, {}},
      Authentication{Authentication::kCleartextPassword, {}},
      Authentication{Authentication::kMD5Password, bytes({1, 2, 3, 4})},
      Authentication{Authentication::kGSS, {}},
      Authentication{Authentication::kGSSContinue, std::string("tok\0en", 6)},
      Authentication{Authentication::kSSPI, {}},
      make_sasl_authentication({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}),
      Authentication{Authentication::kSASLContinue, "r=abc,s=c2FsdA==,i=4096"},
      Authentication{Authentication::kSASLFinal, "v=c2ln"},
      Authentication{99, "future"},
      BackendKeyData{1234, -5678},
      BindComplete{},
      CloseComplete{},
      CommandComplete{"SELECT 1"},
      CommandComplete{"INSERT 0 5"},
      CopyData{std::string("\0\1\2", 3)},
      CopyDone{},
      CopyInResponse{0, {0, 0, 0}},
      CopyOutResponse{1, {1}},
      CopyBothResponse{0, {}},
      DataRow{{}},
      DataRow{{std::string("1"), std::nullopt, std::string(""), std::string(300, 'x')}},
      EmptyQueryResponse{},
      make_error("ERROR", "42P01", "relation \"t\" does not exist"),
      ErrorResponse{{{'S', "FATAL"}, {'C', "57P01"}, {'M', "terminating"}, {'x', "unknown"}}},
      ErrorResponse{{}},
      FunctionCallResponse{std::string("\x01\x02", 2)},
      FunctionCallResponse{std::nullopt},
      NegotiateProtocolVersion{0, {"_pq_.foo", "_pq_.bar"}},
      NegotiateProtocolVersion{2, {}},
      NoData{},
      NoticeResponse{{{'S', "WARNING"}, {'V', "WARNING"}, {'C', "01000"}, {'M', "careful"}}},
      NotificationResponse{42, "channel", "payload"},
      NotificationResponse{-1, "", ""},
      ParameterDescription{{}},
      ParameterDescription{{23, 25, 0xffffffffu}},
      ParameterStatus{"server_version", "17.2"},
      ParameterStatus{"application_name", ""},
      ParseComplete{},
      PortalSuspended{},
      ReadyForQuery{'I'},
      ReadyForQuery{'T'},
      ReadyForQuery{'E'},
      RowDescription{{}},
      RowDescription{{{"id", 16384, 1, 23, 4, -1, 0}, {"", 0, 0, 25, -1, -1, 1}}},
      UnknownMessage{'z', "raw"},
  };
}

template <class Variant>
std::set<std::size_t> covered(const std::vector<Variant>& samples) {
  std::set<std::size_t> indices;
  for (const auto& s : samples) indices.insert(s.index());
  return indices;
}

// Every sample: the whole message decodes back to itself and re-encodes to the same
// bytes; every strict prefix needs more data; bytes after it are left alone.
template <class Variant, class Decode>
void check_samples(const std::vector<Variant>& samples, Decode decode) {
  std::string all;
  for (const auto& sample : samples) {
    const std::string bytes = wire(sample);
    all += bytes;
    CAPTURE(bytes);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      CAPTURE(n);
      REQUIRE(need_more(decode(std::string_view(bytes).substr(0, n))));
    }
    const auto result = decode(bytes + z("Z\0\0\0\5I"));
    REQUIRE(decoded(result) != nullptr);
    CHECK(decoded(result)->consumed == bytes.size());
    CHECK(decoded(result)->message == sample);
    CHECK(wire(decoded(result)->message) == bytes);
  }
  // Back to back, as they arrive on a connection.
  std::string_view rest = all;
  for (const auto& sample : samples) {
    const auto result = decode(rest);
    REQUIRE(decoded(result) != nullptr);
    CHECK(decoded(result)->message == sample);
    rest.remove_prefix(decoded(result)->consumed);
  }
  CHECK(rest.empty());
}

DecodeResult<FrontendMessage> decode_f(std::string_view buf) { return decode_frontend(buf); }
DecodeResult<BackendMessage> decode_b(std::string_view buf) { return decode_backend(buf); }

}  // namespace

TEST_CASE("the samples cover every message type") {
  CHECK(covered(frontend_samples()).size() == std::variant_size_v<FrontendMessage>);
  CHECK(covered(backend_samples()).size() == std::variant_size_v<BackendMessage>);
}

TEST_CASE("frontend messages round-trip and split at every offset") {
  check_samples(frontend_samples(), decode_f);
}

TEST_CASE("backend messages round-trip and split at every offset") {
  check_samples(backend_samples(), decode_b);
}

TEST_CASE("known bytes") {
  CHECK(wire(Query{"select 1"}) == bytes({'Q', 0, 0, 0, 13}) + z("select 1\0"));
  CHECK(wire(ReadyForQuery{'I'}) == bytes({'Z', 0, 0, 0, 5, 'I'}));
  CHECK(wire(Sync{}) == bytes({'S', 0, 0, 0, 4}));
  CHECK(wire(Terminate{}) == bytes({'X', 0, 0, 0, 4}));
  CHECK(wire(Authentication{0, {}}) == bytes({'R', 0, 0, 0, 8, 0, 0, 0, 0}));
  CHECK(wire(Authentication{5, bytes({1, 2, 3, 4})}) ==
        bytes({'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4}));
  CHECK(wire(BackendKeyData{1, 2}) == bytes({'K', 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2}));
  CHECK(wire(ParameterStatus{"a", "b"}) == bytes({'S', 0, 0, 0, 8}) + z("a\0b\0"));
  CHECK(encode_error("ERROR", "42P01", "relation \"t\" does not exist") ==
        frame('E', z("SERROR\0VERROR\0C42P01\0Mrelation \"t\" does not exist\0\0")));
  CHECK(encode_error("FATAL", "08P01", "bad", "why") ==
        frame('E', z("SFATAL\0VFATAL\0C08P01\0Mbad\0Dwhy\0\0")));
  // PostgreSQL sends the whole version, 3 << 16 | minor.
  CHECK(wire(NegotiateProtocolVersion{0, {"_pq_.x"}}) ==
        frame('v', be32(0x00030000) + be32(1) + z("_pq_.x\0")));
  CHECK(wire(Bind{"", "s", {}, {std::nullopt, std::string("1")}, {}}) ==
        frame('B', z("\0s\0") + be16(0) + be16(2) + be32(0xffffffff) + be32(1) + "1" + be16(0)));
  CHECK(wire(DataRow{{std::string("7"), std::nullopt}}) ==
        frame('D', be16(2) + be32(1) + "7" + be32(0xffffffff)));
}

TEST_CASE("decoding known server bytes") {
  const std::string error =
      frame('E', z("SERROR\0VERROR\0C23505\0Mduplicate key\0Dkey (id)=(1)\0\0"));
  const auto result = decode_backend(error);
  REQUIRE(decoded(result) != nullptr);
  const auto* e = std::get_if<ErrorResponse>(&decoded(result)->message);
  REQUIRE(e != nullptr);
  CHECK(e->severity() == "ERROR");
  CHECK(e->code() == "23505");
  CHECK(e->message() == "duplicate key");
  CHECK(e->detail() == "key (id)=(1)");
  CHECK(e->field('H').empty());

  // A localized 'S' with the non-localized 'V': severity() is the stable one.
  const ErrorResponse localized{{{'S', "FEHLER"}, {'V', "ERROR"}, {'C', "42601"}}};
  CHECK(localized.severity() == "ERROR");
  CHECK(ErrorResponse{{{'S', "FATAL"}}}.severity() == "FATAL");

  // Old-style NegotiateProtocolVersion carrying only the minor version.
  const auto npv = decode_backend(frame('v', be32(0) + be32(0)));
  REQUIRE(decoded(npv) != nullptr);
  CHECK(std::get<NegotiateProtocolVersion>(decoded(npv)->message).newest_minor == 0);
  const auto npv2 = decode_backend(frame('v', be32(0x00030002) + be32(0)));
  REQUIRE(decoded(npv2) != nullptr);
  CHECK(std::get<NegotiateProtocolVersion>(decoded(npv2)->message).newest_minor == 2);
}

TEST_CASE("a Bind may carry more than 32767 parameters") {
  Bind bind;
  bind.parameters.assign(40000, std::string("1"));
  bind.parameter_formats = {0};
  const std::string bytes = wire(bind);
  const auto result = decode_frontend(bytes);
  REQUIRE(decoded(result) != nullptr);
  CHECK(std::get<Bind>(decoded(result)->message).parameters.size() == 40000);
}

TEST_CASE("header errors come before the body arrives") {
  for (const std::uint32_t length : {0u, 3u}) {
    const auto f = decode_frontend(std::string("Q") + be32(length));
    REQUIRE(error(f) != nullptr);
    CHECK(error(f)->code == ErrorCode::kInvalidLength);
    const auto b = decode_backend(std::string("Z") + be32(length));
    REQUIRE(error(b) != nullptr);
    CHECK(error(b)->code == ErrorCode::kInvalidLength);
  }
  for (const std::uint32_t length : {0x7fffffffu, 0x80000000u}) {
    const auto f = decode_frontend(std::string("Q") + be32(length) + "sel");
    REQUIRE(error(f) != nullptr);
    CHECK(error(f)->code == ErrorCode::kMessageTooLarge);
    const auto b = decode_backend(std::string("D") + be32(length));
    REQUIRE(error(b) != nullptr);
    CHECK(error(b)->code == ErrorCode::kMessageTooLarge);
  }
  const std::string query = wire(Query{std::string(100, 'x')});
  CHECK(decoded(decode_frontend(query, 101)) != nullptr);
  const auto small = decode_frontend(query, 100);
  REQUIRE(error(small) != nullptr);
  CHECK(error(small)->code == ErrorCode::kMessageTooLarge);
}

TEST_CASE("malformed frontend bodies") {
  struct Case {
    const char* name;
    char type;
    std::string body;
  };
  const std::vector<Case> cases = {
      {"Query without NUL", 'Q', "select 1"},
      {"Query with trailing bytes", 'Q', z("select 1\0x")},
      {"Query empty body", 'Q', ""},
      {"Bind truncated before result formats", 'B', z("\0\0") + be16(0) + be16(0)},
      {"Bind portal without NUL", 'B', "portal"},
      {"Bind negative parameter length", 'B',
       z("\0\0") + be16(0) + be16(1) + be32(static_cast<std::uint32_t>(-2)) + be16(0)},
      {"Bind parameter longer than body", 'B',
       z("\0\0") + be16(0) + be16(1) + be32(50) + "ab" + be16(0)},
      {"Bind format count neither 0, 1 nor N", 'B',
       z("\0\0") + be16(2) + be16(0) + be16(0) + be16(3) + be32(0) + be32(0) + be32(0) + be16(0)},
      {"Bind count larger than body", 'B', z("\0\0") + be16(0xffff) + be16(0)},
      {"Bind trailing bytes", 'B', z("\0\0") + be16(0) + be16(0) + be16(0) + "x"},
      {"Close bad target", 'C', z("Xname\0")},
      {"Close without name", 'C', "S"},
      {"Describe name without NUL", 'D', "Sname"},
      {"Describe empty", 'D', ""},
      {"Execute without max rows", 'E', z("portal\0")},
      {"Execute trailing bytes", 'E', z("\0") + be32(0) + "x"},
      {"FunctionCall truncated", 'F', be32(1598) + be16(0) + be16(1)},
      {"FunctionCall negative argument length", 'F',
       be32(1) + be16(0) + be16(1) + be32(static_cast<std::uint32_t>(-3)) + be16(0)},
      {"Parse fewer types than counted", 'P', z("\0select 1\0") + be16(2) + be32(23)},
      {"Parse query without NUL", 'P', z("\0select 1")},
      {"CopyFail without NUL", 'f', "oops"},
      {"Sync with a body", 'S', "x"},
      {"Flush with a body", 'H', "x"},
      {"Terminate with a body", 'X', "x"},
      {"CopyDone with a body", 'c', "x"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto result = decode_frontend(frame(c.type, c.body));
    REQUIRE(error(result) != nullptr);
    CHECK(error(result)->code == ErrorCode::kMalformed);
    const auto parsed = parse_frontend(c.type, c.body);
    CHECK(std::holds_alternative<DecodeError>(parsed));
  }
}

TEST_CASE("malformed backend bodies") {
  struct Case {
    const char* name;
    char type;
    std::string body;
  };
  const std::vector<Case> cases = {
      {"Authentication shorter than its code", 'R', bytes({0, 0})},
      {"AuthenticationOk with data", 'R', be32(0) + "x"},
      {"AuthenticationCleartextPassword with data", 'R', be32(3) + "x"},
      {"AuthenticationMD5Password 3-byte salt", 'R', be32(5) + "abc"},
      {"AuthenticationMD5Password 5-byte salt", 'R', be32(5) + "abcde"},
      {"AuthenticationSASL list not terminated", 'R', be32(10) + z("SCRAM-SHA-256\0")},
      {"AuthenticationSASL name without NUL", 'R', be32(10) + "SCRAM"},
      {"AuthenticationSASL bytes after the list", 'R', be32(10) + z("SCRAM-SHA-256\0\0x")},
      {"BackendKeyData short", 'K', be32(1)},
      {"BackendKeyData long (3.2 key)", 'K', be32(1) + be32(2) + be32(3)},
      {"CommandComplete without NUL", 'C', "SELECT 1"},
      {"CopyInResponse fewer formats than counted", 'G', bytes({0}) + be16(2) + be16(0)},
      {"CopyOutResponse missing count", 'H', bytes({0})},
      {"CopyBothResponse trailing bytes", 'W', bytes({0}) + be16(0) + "x"},
      {"DataRow negative length", 'D', be16(1) + be32(static_cast<std::uint32_t>(-2))},
      {"DataRow fewer columns than counted", 'D', be16(2) + be32(1) + "x"},
      {"DataRow column past the end", 'D', be16(1) + be32(10) + "abc"},
      {"DataRow count larger than body", 'D', be16(0xffff)},
      {"ErrorResponse missing terminator", 'E', z("SERROR\0")},
      {"ErrorResponse value without NUL", 'E', "SERROR"},
      {"ErrorResponse empty body", 'E', ""},
      {"ErrorResponse trailing bytes", 'E', z("SERROR\0\0x")},
      {"NoticeResponse missing terminator", 'N', z("SWARNING\0")},
      {"FunctionCallResponse negative length", 'V', be32(static_cast<std::uint32_t>(-5))},
      {"FunctionCallResponse short value", 'V', be32(4) + "ab"},
      {"NegotiateProtocolVersion negative count", 'v',
       be32(0x30000) + be32(static_cast<std::uint32_t>(-1))},
      {"NegotiateProtocolVersion fewer options than counted", 'v',
       be32(0x30000) + be32(2) + z("_pq_.a\0")},
      {"NegotiateProtocolVersion other major", 'v', be32(0x40000) + be32(0)},
      {"NegotiateProtocolVersion huge count", 'v', be32(0x30000) + be32(0x7fffffff)},
      {"NotificationResponse without payload", 'A', be32(1) + z("chan\0")},
      {"ParameterDescription fewer types than counted", 't', be16(3) + be32(23)},
      {"ParameterStatus without value", 'S', z("name\0")},
      {"ReadyForQuery unknown status", 'Z', "X"},
      {"ReadyForQuery empty", 'Z', ""},
      {"ReadyForQuery two bytes", 'Z', "II"},
      {"RowDescription truncated field", 'T', be16(1) + z("id\0") + be32(0) + be16(0)},
      {"RowDescription name without NUL", 'T', be16(1) + "id"},
      {"BindComplete with a body", '2', "x"},
      {"CloseComplete with a body", '3', "x"},
      {"ParseComplete with a body", '1', "x"},
      {"NoData with a body", 'n', "x"},
      {"PortalSuspended with a body", 's', "x"},
      {"EmptyQueryResponse with a body", 'I', "x"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto result = decode_backend(frame(c.type, c.body));
    REQUIRE(error(result) != nullptr);
    CHECK(error(result)->code == ErrorCode::kMalformed);
    CHECK(error(result)->detail.find(std::string(backend_message_name(c.type))) !=
          std::string::npos);
  }
}

TEST_CASE("unknown types pass through as raw bytes") {
  const std::string bytes = frame('y', z("opaque\0\1"));
  const auto f = decode_frontend(bytes);
  REQUIRE(decoded(f) != nullptr);
  const auto* unknown = std::get_if<UnknownMessage>(&decoded(f)->message);
  REQUIRE(unknown != nullptr);
  CHECK(unknown->type == 'y');
  CHECK(unknown->body == z("opaque\0\1"));
  CHECK(wire(decoded(f)->message) == bytes);
  // Types of the other direction are unknown here: 'Z' is backend only.
  const auto z_frontend = decode_frontend(frame('Z', "I"));
  REQUIRE(decoded(z_frontend) != nullptr);
  CHECK(std::holds_alternative<UnknownMessage>(decoded(z_frontend)->message));
}

TEST_CASE("the same type byte means different messages in each direction") {
  const std::string d = frame('D', z("Sstmt\0"));
  REQUIRE(decoded(decode_frontend(d)) != nullptr);
  CHECK(std::holds_alternative<Describe>(decoded(decode_frontend(d))->message));
  CHECK(error(decode_backend(d)) != nullptr);  // not a valid DataRow
  CHECK(frontend_message_name('E') == "Execute");
  CHECK(backend_message_name('E') == "ErrorResponse");
  CHECK(backend_message_name('!') == "unknown");
}

TEST_CASE("encoders never let a NUL in a string split a field") {
  const std::string bytes = wire(Query{std::string("select 1\0; drop table t", 24)});
  const auto result = decode_frontend(bytes);
  REQUIRE(decoded(result) != nullptr);
  CHECK(std::get<Query>(decoded(result)->message).query == "select 1");

  const std::string error = encode_error("ERROR", "XX000", std::string("a\0Cxxxxx", 8));
  const auto parsed = decode_backend(error);
  REQUIRE(decoded(parsed) != nullptr);
  const auto& e = std::get<ErrorResponse>(decoded(parsed)->message);
  CHECK(e.code() == "XX000");
  CHECK(e.message() == "a");
}

TEST_CASE("SASL and password bodies") {
  SUBCASE("SASLInitialResponse") {
    const SASLInitialResponse initial{"SCRAM-SHA-256", "n,,n=,r=abc"};
    const std::string bytes = wire(initial);
    CHECK(bytes == frame('p', z("SCRAM-SHA-256\0") + be32(11) + "n,,n=,r=abc"));
    const auto result = decode_frontend(bytes);
    REQUIRE(decoded(result) != nullptr);
    const auto& body = std::get<PasswordMessage>(decoded(result)->message).data;
    CHECK(parse_sasl_initial_response(body) == initial);

    const SASLInitialResponse no_data{"SCRAM-SHA-256", std::nullopt};
    CHECK(wire(no_data) == frame('p', z("SCRAM-SHA-256\0") + be32(0xffffffff)));
    CHECK(parse_sasl_initial_response(z("SCRAM-SHA-256\0") + be32(0xffffffff)) == no_data);

    CHECK_FALSE(parse_sasl_initial_response("SCRAM-SHA-256").has_value());
    CHECK_FALSE(parse_sasl_initial_response(z("SCRAM-SHA-256\0") + be32(5) + "abc").has_value());
    CHECK_FALSE(parse_sasl_initial_response(z("SCRAM-SHA-256\0") + be32(3) + "abcd").has_value());
    CHECK_FALSE(
        parse_sasl_initial_response(z("SCRAM-SHA-256\0") + be32(static_cast<std::uint32_t>(-2)))
            .has_value());
    CHECK_FALSE(parse_sasl_initial_response(z("\0") + be32(0)).has_value());
  }
  SUBCASE("SASLResponse") {
    std::string out;
    encode_sasl_response("c=biws,r=abc,p=xyz", out);
    CHECK(out == frame('p', "c=biws,r=abc,p=xyz"));
  }
  SUBCASE("password") {
    std::string out;
    encode_password("secret", out);
    CHECK(out == frame('p', z("secret\0")));
    CHECK(parse_password(z("secret\0")) == "secret");
    CHECK_FALSE(parse_password("secret").has_value());
    CHECK_FALSE(parse_password(z("secret\0x")).has_value());
  }
  SUBCASE("mechanism lists") {
    const Authentication sasl = make_sasl_authentication({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
    CHECK(sasl.data == z("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"));
    CHECK(sasl_mechanisms(sasl.data) ==
          std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
    CHECK_FALSE(sasl_mechanisms("SCRAM").has_value());
    CHECK_FALSE(sasl_mechanisms(z("A\0")).has_value());
  }
}
