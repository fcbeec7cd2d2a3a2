// Tests for SCRAM-SHA-256: RFC 7677 vectors, exchanges, channel binding, pass-through.
#include <doctest/doctest.h>

#include "protocol/scram.hpp"

using namespace pgflip::protocol;

namespace {

// RFC 7677 section 3.
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
// The same password and salt as PostgreSQL would store them (computed independently with
// Python's hashlib).
constexpr std::string_view kPencilSecret =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

ScramSecret rfc_secret() {
  const auto secret = parse_scram_secret(kPencilSecret);
  REQUIRE(secret.has_value());
  return *secret;
}

template <class T>
const T& ok(const std::variant<T, ScramError>& result) {
  if (const auto* error = std::get_if<ScramError>(&result)) FAIL(error->message);
  return std::get<T>(result);
}

template <class T>
ScramError failed(const std::variant<T, ScramError>& result) {
  REQUIRE(std::holds_alternative<ScramError>(result));
  return std::get<ScramError>(result);
}

struct Exchange {
  std::variant<std::string, ScramError> server_first;
  std::variant<std::string, ScramError> client_final;
  std::variant<std::string, ScramError> server_final;
  std::optional<ScramError> client_verdict;
};

// Runs client and server against each other as far as they both agree.
Exchange run(ScramSha256Client& client, ScramSha256Server& server) {
  Exchange e{ScramError{"not run"}, ScramError{"not run"}, ScramError{"not run"}, std::nullopt};
  e.server_first = server.handle_client_first(client.mechanism(), client.client_first_message());
  if (!std::holds_alternative<std::string>(e.server_first)) return e;
  e.client_final = client.handle_server_first(std::get<std::string>(e.server_first));
  if (!std::holds_alternative<std::string>(e.client_final)) return e;
  e.server_final = server.handle_client_final(std::get<std::string>(e.client_final));
  if (!std::holds_alternative<std::string>(e.server_final)) return e;
  e.client_verdict = client.verify_server_final(std::get<std::string>(e.server_final));
  return e;
}

}  // namespace

TEST_CASE("base64 (RFC 4648 vectors)") {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    CHECK(base64_encode(plain) == encoded);
    CHECK(base64_decode(encoded) == std::string(plain));
  }
  CHECK(base64_decode(std::string_view("\xff\x00", 2)) == std::nullopt);
  CHECK(base64_encode(std::string("\xff\x00\x7f", 3)) == "/wB/");
  for (const std::string_view bad :
       {"Zg=", "Zg", "Zg=a", "Z===", "====", " Zg==", "Zg==\n", "Zm$v", "Zm9v=", "=m9v"}) {
    CAPTURE(bad);
    CHECK_FALSE(base64_decode(bad).has_value());
  }
}

TEST_CASE("RFC 7677 example: key derivation") {
  const auto salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  REQUIRE(salt.has_value());
  const ScramSecret made = make_scram_secret("pencil", *salt, 4096);
  CHECK(format_scram_secret(made) == kPencilSecret);
  CHECK(made == rfc_secret());
}

TEST_CASE("RFC 7677 example: client side") {
  ScramSha256Client client("pencil", std::string(kRfcClientNonce));
  client.set_username("user");
  CHECK(client.mechanism() == kScramSha256);
  CHECK(client.client_first_message() == kRfcClientFirst);
  CHECK(ok(client.handle_server_first(kRfcServerFirst)) == kRfcClientFinal);
  CHECK_FALSE(client.verify_server_final(kRfcServerFinal).has_value());
}

TEST_CASE("RFC 7677 example: server side") {
  ScramSha256Server server(rfc_secret(), std::string(kRfcServerNonce));
  CHECK(server.mechanisms() == std::vector<std::string>{"SCRAM-SHA-256"});
  CHECK(ok(server.handle_client_first(kScramSha256, kRfcClientFirst)) == kRfcServerFirst);
  CHECK(server.username() == "user");
  CHECK_FALSE(server.authenticated());
  CHECK(ok(server.handle_client_final(kRfcClientFinal)) == kRfcServerFinal);
  CHECK(server.authenticated());

  // The recovered ClientKey is the real one.
  ScramSha256Client client("pencil", std::string(kRfcClientNonce));
  client.set_username("user");
  (void)ok(client.handle_server_first(kRfcServerFirst));
  REQUIRE(server.recovered_client_key().has_value());
  CHECK(*server.recovered_client_key() == client.client_key());
}

TEST_CASE("PostgreSQL-style exchange with an empty user name and random nonces") {
  ScramSha256Client client("correct horse");
  const std::string first = client.client_first_message();
  CHECK(first.starts_with("n,,n=,r="));
  CHECK(first.size() == std::string_view("n,,n=,r=").size() + 24);  // 18 bytes in base64

  ScramSha256Server server(make_scram_secret("correct horse"));
  const Exchange e = run(client, server);
  CHECK(std::holds_alternative<std::string>(e.server_final));
  CHECK_FALSE(e.client_verdict.has_value());
  CHECK(server.authenticated());
  CHECK(server.username().empty());

  // Two clients never share a nonce.
  CHECK(ScramSha256Client("x").client_first_message() !=
        ScramSha256Client("x").client_first_message());
}

TEST_CASE("a wrong password fails on the server") {
  ScramSha256Client client("wrong");
  ScramSha256Server server(make_scram_secret("right"));
  const Exchange e = run(client, server);
  const ScramError error = failed(e.server_final);
  CHECK(error.kind == ScramErrorKind::kAuthenticationFailed);
  CHECK_FALSE(server.authenticated());
  CHECK_FALSE(server.recovered_client_key().has_value());
  // The exchange is over.
  CHECK(std::holds_alternative<ScramError>(server.handle_client_final("c=biws,r=x,p=AAAA")));
}

TEST_CASE("a tampered or wrong server signature fails on the client") {
  const auto tamper = [](std::string_view server_final) {
    std::string out(server_final);
    out[5] = out[5] == 'A' ? 'B' : 'A';
    return out;
  };
  ScramSha256Client client("pencil", std::string(kRfcClientNonce));
  client.set_username("user");
  (void)ok(client.handle_server_first(kRfcServerFirst));
  const auto error = client.verify_server_final(tamper(kRfcServerFinal));
  REQUIRE(error.has_value());
  CHECK(error->kind == ScramErrorKind::kAuthenticationFailed);

  // A server that stole StoredKey can check the client but cannot sign without ServerKey.
  ScramSecret stolen = rfc_secret();
  stolen.server_key = make_scram_secret("something else").server_key;
  ScramSha256Client client2("pencil");
  ScramSha256Server impostor(stolen);
  const Exchange e = run(client2, impostor);
  CHECK(std::holds_alternative<std::string>(e.server_final));
  REQUIRE(e.client_verdict.has_value());
  CHECK(e.client_verdict->kind == ScramErrorKind::kAuthenticationFailed);

  ScramSha256Client client3("pencil", "abc");
  (void)ok(client3.handle_server_first("r=abcdef,s=c2FsdHNhbHQ=,i=4096"));
  const auto e3 = client3.verify_server_final("e=invalid-proof");
  REQUIRE(e3.has_value());
  CHECK(e3->message.find("invalid-proof") != std::string::npos);
}

TEST_CASE("client rejects malformed server messages") {
  const auto first_error = [](std::string_view server_first) {
    ScramSha256Client client("pencil", "abc");
    return std::holds_alternative<ScramError>(client.handle_server_first(server_first));
  };
  CHECK_FALSE(first_error("r=abcdef,s=c2FsdA==,i=1"));
  CHECK(first_error("r=abcdef,s=c2FsdA==,i=0"));
  CHECK(first_error("r=abcdef,s=c2FsdA==,i=-1"));
  CHECK(first_error("r=abcdef,s=c2FsdA==,i=x"));
  CHECK(first_error("r=abcdef,s=c2FsdA==,i=99999999999"));
  CHECK(first_error("r=abcdef,s=c2FsdA==,i="));
  CHECK(first_error("r=abcdef,s=c2FsdA==,i=4096,x=ext"));
  CHECK(first_error("r=abcdef,s=c2FsdA=,i=4096"));
  CHECK(first_error("r=abcdef,s=,i=4096"));
  CHECK(first_error("r=xyzdef,s=c2FsdA==,i=4096"));  // not our nonce
  CHECK(first_error("r=abc,s=c2FsdA==,i=4096"));     // no server part
  CHECK(first_error("m=ext,r=abcdef,s=c2FsdA==,i=4096"));
  CHECK(first_error("s=c2FsdA==,r=abcdef,i=4096"));
  CHECK(first_error(""));

  // Out of order, or twice: any misstep ends the exchange.
  ScramSha256Client early("pencil", "abc");
  CHECK(early.verify_server_final("v=AAAA").has_value());
  CHECK(std::holds_alternative<ScramError>(early.handle_server_first("r=abcdef,s=c2FsdA==,i=1")));
  ScramSha256Client client("pencil", "abc");
  (void)ok(client.handle_server_first("r=abcdef,s=c2FsdA==,i=1"));
  CHECK(std::holds_alternative<ScramError>(client.handle_server_first("r=abcdef,s=c2FsdA==,i=1")));
}

TEST_CASE("server rejects malformed or unsupported client messages") {
  const auto first_error = [](std::string_view mechanism, std::string_view client_first) {
    ScramSha256Server server(rfc_secret(), "srv");
    return std::holds_alternative<ScramError>(server.handle_client_first(mechanism, client_first));
  };
  CHECK_FALSE(first_error(kScramSha256, "n,,n=,r=abc"));
  CHECK_FALSE(first_error(kScramSha256, "y,,n=,r=abc"));  // we do not offer binding here
  CHECK_FALSE(first_error(kScramSha256, "n,,n=,r=abc,x=future"));
  CHECK(first_error("SCRAM-SHA-1", "n,,n=,r=abc"));
  CHECK(first_error(kScramSha256Plus, "p=tls-server-end-point,,n=,r=abc"));  // not offered
  CHECK(first_error(kScramSha256, "p=tls-server-end-point,,n=,r=abc"));
  CHECK(first_error(kScramSha256, "n,a=admin,n=,r=abc"));
  CHECK(first_error(kScramSha256, "x,,n=,r=abc"));
  CHECK(first_error(kScramSha256, "n,,m=ext,n=,r=abc"));
  CHECK(first_error(kScramSha256, "n,,n=,r="));
  CHECK(first_error(kScramSha256, "n,,n=,r=a\x01"));
  CHECK(first_error(kScramSha256, "n,,n=bad=escape,r=abc"));
  CHECK(first_error(kScramSha256, "n,,n=,r=abc,"));
  CHECK(first_error(kScramSha256, "n,,r=abc"));
  CHECK(first_error(kScramSha256, ""));

  const auto final_error = [](std::string_view client_final) {
    ScramSha256Server server(rfc_secret(), std::string(kRfcServerNonce));
    (void)ok(server.handle_client_first(kScramSha256, kRfcClientFirst));
    const auto result = server.handle_client_final(client_final);
    return std::holds_alternative<ScramError>(result);
  };
  CHECK_FALSE(final_error(kRfcClientFinal));
  CHECK(
      final_error("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
  CHECK(
      final_error("c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                  "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));  // "y,," not what was sent
  CHECK(final_error("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
  CHECK(final_error("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA"));
  CHECK(
      final_error("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                  "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1"));
  CHECK(
      final_error("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                  "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
  CHECK(final_error(""));

  ScramSha256Server server(rfc_secret());
  CHECK(std::holds_alternative<ScramError>(server.handle_client_final(kRfcClientFinal)));
}

TEST_CASE("channel binding") {
  const std::string hash(32, '\x5a');
  ScramSecret secret = make_scram_secret("pencil");

  SUBCASE("round trip with SCRAM-SHA-256-PLUS") {
    ScramSha256Server server(secret);
    server.set_channel_binding(std::string(kTlsServerEndPoint), hash);
    CHECK(server.mechanisms() == std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
    ScramSha256Client client("pencil");
    client.set_channel_binding(std::string(kTlsServerEndPoint), hash);
    CHECK(client.mechanism() == kScramSha256Plus);
    CHECK(client.client_first_message().starts_with("p=tls-server-end-point,,n=,r="));
    const Exchange e = run(client, server);
    const std::string& final_message = ok(e.client_final);
    CHECK(
        final_message.starts_with("c=" + base64_encode("p=tls-server-end-point,," + hash) + ",r="));
    CHECK(std::holds_alternative<std::string>(e.server_final));
    CHECK_FALSE(e.client_verdict.has_value());
  }
  SUBCASE("different certificate hashes fail") {
    ScramSha256Server server(secret);
    server.set_channel_binding(std::string(kTlsServerEndPoint), hash);
    ScramSha256Client client("pencil");
    client.set_channel_binding(std::string(kTlsServerEndPoint), std::string(32, '\x11'));
    const Exchange e = run(client, server);
    CHECK(failed(e.server_final).message.find("channel binding") != std::string::npos);
  }
  SUBCASE("a binding-capable client told there is no binding reveals a downgrade") {
    ScramSha256Server server(secret);
    server.set_channel_binding(std::string(kTlsServerEndPoint), hash);
    ScramSha256Client client("pencil");
    client.set_channel_binding_supported();
    CHECK(client.client_first_message().starts_with("y,,"));
    const Exchange e = run(client, server);
    CHECK(failed(e.server_first).message.find("negotiation") != std::string::npos);
  }
  SUBCASE("'y' against a server without binding succeeds") {
    ScramSha256Server server(secret);
    ScramSha256Client client("pencil");
    client.set_channel_binding_supported();
    const Exchange e = run(client, server);
    CHECK(std::holds_alternative<std::string>(e.server_final));
    CHECK_FALSE(e.client_verdict.has_value());
  }
  SUBCASE("PLUS without binding data, and plain SCRAM with binding data, are refused") {
    ScramSha256Server server(secret);
    server.set_channel_binding(std::string(kTlsServerEndPoint), hash);
    CHECK(std::holds_alternative<ScramError>(
        server.handle_client_first(kScramSha256Plus, "n,,n=,r=abc")));
    ScramSha256Server server2(secret);
    server2.set_channel_binding(std::string(kTlsServerEndPoint), hash);
    CHECK(std::holds_alternative<ScramError>(
        server2.handle_client_first(kScramSha256, "p=tls-server-end-point,,n=,r=abc")));
    ScramSha256Server server3(secret);
    server3.set_channel_binding(std::string(kTlsServerEndPoint), hash);
    CHECK(std::holds_alternative<ScramError>(
        server3.handle_client_first(kScramSha256Plus, "p=tls-unique,,n=,r=abc")));
  }
}

TEST_CASE("pass-through: a client built from recovered keys proves the same thing") {
  const ScramSecret secret = make_scram_secret("s3cret", "0123456789abcdef", 4096);

  // The application logs in to pgflip with its password.
  ScramSha256Client app("s3cret", "appnonce");
  ScramSha256Server pgflip(secret, "server-part");
  const Exchange e = run(app, pgflip);
  CHECK_FALSE(e.client_verdict.has_value());
  REQUIRE(pgflip.recovered_client_key().has_value());

  // pgflip logs in to the real server with the recovered ClientKey, never the password.
  ScramSha256Client relay =
      ScramSha256Client::from_keys(*pgflip.recovered_client_key(), secret.server_key, "appnonce");
  ScramSha256Server postgres(secret, "server-part");
  const Exchange relayed = run(relay, postgres);
  CHECK(ok(relayed.client_final) == ok(e.client_final));  // byte for byte the same proof
  CHECK(std::holds_alternative<std::string>(relayed.server_final));
  CHECK_FALSE(relayed.client_verdict.has_value());

  // With fresh nonces it still works.
  ScramSha256Client relay2 =
      ScramSha256Client::from_keys(*pgflip.recovered_client_key(), secret.server_key);
  ScramSha256Server postgres2(secret);
  CHECK_FALSE(run(relay2, postgres2).client_verdict.has_value());
  CHECK(postgres2.authenticated());
}

TEST_CASE("stored secrets") {
  const ScramSecret secret = rfc_secret();
  CHECK(secret.iterations == 4096);
  CHECK(base64_encode(secret.salt) == "W22ZaJ0SNY7soEsUEjb6gQ==");
  CHECK(parse_scram_secret(format_scram_secret(secret)) == secret);

  const ScramSecret fresh = make_scram_secret("pw");
  CHECK(fresh.salt.size() == 16);
  CHECK(fresh.iterations == 4096);
  CHECK(make_scram_secret("pw").salt != fresh.salt);

  for (const std::string_view bad : {
           "",
           "md532e12f215ba27cb750c9e093ce4b5127",
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==",
           "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
           "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
           "SCRAM-SHA-256$x:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
           "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
           "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
           "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
           "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY:"
           "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$Zm9v:"
           "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
           "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
       }) {
    CAPTURE(bad);
    CHECK_FALSE(parse_scram_secret(bad).has_value());
  }
}

TEST_CASE("passwords are SASLprep'd before hashing, as PostgreSQL does") {
  // U+00AD SOFT HYPHEN maps to nothing and U+2168 ROMAN NUMERAL NINE normalizes to "IX".
  ScramSecret secret = make_scram_secret("IX", "0123456789abcdef", 4096);
  CHECK(make_scram_secret("I\xc2\xadX", "0123456789abcdef", 4096) == secret);
  CHECK(make_scram_secret("\xe2\x85\xa8", "0123456789abcdef", 4096) == secret);
  ScramSha256Client client("I\xc2\xadX");
  ScramSha256Server server(secret);
  CHECK_FALSE(run(client, server).client_verdict.has_value());
  // Invalid UTF-8 is hashed as raw bytes.
  CHECK(make_scram_secret("\xff", "0123456789abcdef", 16) !=
        make_scram_secret("", "0123456789abcdef", 16));
}
