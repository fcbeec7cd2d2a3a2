// Tests for ServerAuth, pgflip's login to a server: server messages in as bytes, the bytes it
// answers with, and how each way of failing ends (SQLSTATE, message).
#include <doctest/doctest.h>

#include <array>
#include <string>

#include "protocol/md5.hpp"
#include "protocol/messages.hpp"
#include "protocol/scram.hpp"
#include "protocol/server_auth.hpp"
#include "protocol/startup.hpp"

using namespace pgflip::protocol;

namespace {

ServerAuthSettings settings(std::string password = "s3cret") {
  ServerAuthSettings s;
  s.user = "app";
  s.database = "shop";
  s.parameters = {{"application_name", "psql"}};
  s.password = std::move(password);
  s.server_name = "blue (db1:5432)";
  s.password_setting = "blue.password";
  return s;
}

template <class Msg>
std::string wire(const Msg& message) {
  std::string out;
  encode(message, out);
  return out;
}

/// Decodes `bytes` as exactly one server message and feeds it.
ServerAuthStep feed(ServerAuth& auth, const std::string& bytes) {
  auto result = decode_backend(bytes);
  const auto* decoded = std::get_if<Decoded<BackendMessage>>(&result);
  REQUIRE(decoded != nullptr);
  REQUIRE(decoded->consumed == bytes.size());
  return auth.feed(decoded->message);
}

/// The bytes a step says to send (failing the test if it is not a ServerAuthSend).
std::string sent(const ServerAuthStep& step) {
  if (const auto* error = std::get_if<ServerAuthError>(&step)) FAIL(error->reason);
  REQUIRE(std::holds_alternative<ServerAuthSend>(step));
  return std::get<ServerAuthSend>(step).bytes;
}

/// The body of the one 'p' message in `bytes`.
std::string password_body(const std::string& bytes) {
  auto result = decode_frontend(bytes);
  const auto* decoded = std::get_if<Decoded<FrontendMessage>>(&result);
  REQUIRE(decoded != nullptr);
  REQUIRE(decoded->consumed == bytes.size());
  const auto* message = std::get_if<PasswordMessage>(&decoded->message);
  REQUIRE(message != nullptr);
  return message->data;
}

ServerAuthError failed(const ServerAuthStep& step) {
  REQUIRE(std::holds_alternative<ServerAuthError>(step));
  return std::get<ServerAuthError>(step);
}

/// The messages a server sends after AuthenticationOk, ending at ReadyForQuery.
ServerAuthDone finish(ServerAuth& auth) {
  CHECK(sent(feed(auth, wire(ParameterStatus{"server_version", "15.18"}))).empty());
  CHECK(sent(feed(auth, wire(ParameterStatus{"TimeZone", "UTC"}))).empty());
  CHECK(sent(feed(auth, wire(BackendKeyData{4242, -7}))).empty());
  const auto step = feed(auth, wire(ReadyForQuery{ReadyForQuery::kIdle}));
  REQUIRE(std::holds_alternative<ServerAuthDone>(step));
  return std::get<ServerAuthDone>(step);
}

/// A SASL exchange against ScramSha256Server: returns its step after AuthenticationSASLFinal.
struct ScramRun {
  std::string mechanism;
  std::string client_first;
  ServerAuthStep after_final;
};

ScramRun run_scram(ServerAuth& auth, ScramSha256Server& server) {
  ScramRun run{{}, {}, ServerAuthSend{}};
  const auto initial = parse_sasl_initial_response(
      password_body(sent(feed(auth, wire(make_sasl_authentication(server.mechanisms()))))));
  REQUIRE(initial.has_value());
  REQUIRE(initial->data.has_value());
  run.mechanism = initial->mechanism;
  run.client_first = *initial->data;
  const auto server_first = server.handle_client_first(initial->mechanism, *initial->data);
  REQUIRE(std::holds_alternative<std::string>(server_first));
  const std::string client_final =
      password_body(sent(feed(auth, wire(Authentication{Authentication::kSASLContinue,
                                                        std::get<std::string>(server_first)}))));
  const auto server_final = server.handle_client_final(client_final);
  if (const auto* error = std::get_if<ScramError>(&server_final)) FAIL(error->message);
  CHECK(server.authenticated());  // the server checked the client's proof
  run.after_final = feed(
      auth, wire(Authentication{Authentication::kSASLFinal, std::get<std::string>(server_final)}));
  return run;
}

}  // namespace

TEST_CASE("the startup message names user, database and the other parameters, in order") {
  const ServerAuth auth(settings());
  const std::string bytes = auth.startup_message();
  auto result = decode_startup(bytes);
  const auto* decoded = std::get_if<Decoded<StartupPacket>>(&result);
  REQUIRE(decoded != nullptr);
  CHECK(decoded->consumed == bytes.size());
  const auto& startup = std::get<StartupMessage>(decoded->message);
  CHECK(startup.minor == 0);
  CHECK(startup.parameters ==
        std::vector<std::pair<std::string, std::string>>{
            {"user", "app"}, {"database", "shop"}, {"application_name", "psql"}});
}

TEST_CASE("trust: parameters (a repeated one updated in place), key data, notices, status") {
  ServerAuth auth(settings(""));
  CHECK(sent(feed(auth, wire(Authentication{Authentication::kOk, {}}))).empty());
  const NoticeResponse notice{{{'S', "WARNING"}, {'C', "01000"}, {'M', "careful"}}};
  CHECK(sent(feed(auth, wire(notice))).empty());
  CHECK(sent(feed(auth, wire(ParameterStatus{"server_version", "15.18"}))).empty());
  CHECK(sent(feed(auth, wire(ParameterStatus{"DateStyle", "ISO"}))).empty());
  CHECK(sent(feed(auth, wire(ParameterStatus{"server_version", "15.19"}))).empty());
  CHECK(sent(feed(auth, wire(BackendKeyData{4242, -7}))).empty());
  const auto step = feed(auth, wire(ReadyForQuery{ReadyForQuery::kInTransaction}));
  REQUIRE(std::holds_alternative<ServerAuthDone>(step));
  const auto& done = std::get<ServerAuthDone>(step);
  CHECK(done.parameters == std::vector<std::pair<std::string, std::string>>{
                               {"server_version", "15.19"}, {"DateStyle", "ISO"}});
  CHECK(done.process_id == 4242);
  CHECK(done.secret_key == -7);
  CHECK(done.transaction_status == 'T');
  CHECK(done.notices == wire(notice));
  // Nothing may follow the end.
  CHECK(failed(feed(auth, wire(ReadyForQuery{}))).sqlstate == "08P01");
}

TEST_CASE("cleartext password") {
  ServerAuth auth(settings());
  const std::string bytes =
      sent(feed(auth, wire(Authentication{Authentication::kCleartextPassword, {}})));
  CHECK(bytes == std::string("p\0\0\0\x0bs3cret\0", 12));
  CHECK(sent(feed(auth, wire(Authentication{Authentication::kOk, {}}))).empty());
  CHECK(finish(auth).process_id == 4242);
}

TEST_CASE("MD5: from the password, or from the stored secret without it") {
  const std::string salt_bytes("\x01\x02\x03\xff", 4);
  const std::array<std::uint8_t, 4> salt{1, 2, 3, 255};
  const std::string expected = md5_password_response("app", "s3cret", salt);
  CHECK(expected.starts_with("md5"));

  SUBCASE("password") {
    ServerAuth auth(settings());
    const std::string bytes =
        sent(feed(auth, wire(Authentication{Authentication::kMD5Password, salt_bytes})));
    CHECK(password_body(bytes) == expected + std::string(1, '\0'));
    CHECK(sent(feed(auth, wire(Authentication{Authentication::kOk, {}}))).empty());
    CHECK(finish(auth).parameters.size() == 2);
  }
  SUBCASE("secret") {
    ServerAuthSettings s = settings("");
    s.md5_secret = md5_secret("app", "s3cret");
    ServerAuth auth(s);
    const std::string bytes =
        sent(feed(auth, wire(Authentication{Authentication::kMD5Password, salt_bytes})));
    CHECK(password_body(bytes) == expected + std::string(1, '\0'));
  }
}

TEST_CASE("no password for a server that asks for one names the setting to fill in") {
  for (const auto& request : {Authentication{Authentication::kCleartextPassword, {}},
                              Authentication{Authentication::kMD5Password, std::string("salt")},
                              make_sasl_authentication({"SCRAM-SHA-256"})}) {
    CAPTURE(request.code);
    ServerAuth auth(settings(""));
    const auto& error = failed(feed(auth, wire(request)));
    CHECK(error.sqlstate == "28000");
    CHECK(error.message ==
          "server blue (db1:5432) asked for a password for user \"app\" and pgflip has none "
          "(set blue.password)");
    CHECK_FALSE(error.server_error.has_value());
    // pgflip's own FATAL for the client.
    auto decoded = decode_backend(error.error_response());
    const auto* message = std::get_if<Decoded<BackendMessage>>(&decoded);
    REQUIRE(message != nullptr);
    const auto& response = std::get<ErrorResponse>(message->message);
    CHECK(response.severity() == "FATAL");
    CHECK(response.code() == "28000");
    CHECK(response.message() == error.message);
  }
}

TEST_CASE("SCRAM-SHA-256: a full exchange the server verifies, then the server's signature") {
  ScramSha256Server server(make_scram_secret("s3cret", "0123456789abcdef", 4096), "srv");
  ServerAuth auth(settings());
  const ScramRun run = run_scram(auth, server);
  CHECK(run.mechanism == "SCRAM-SHA-256");
  CHECK(run.client_first.starts_with("n,,n=,r="));  // as libpq: no binding, empty user name
  CHECK(sent(run.after_final).empty());
  CHECK(sent(feed(auth, wire(Authentication{Authentication::kOk, {}}))).empty());
  CHECK(finish(auth).secret_key == -7);
}

TEST_CASE("SCRAM-SHA-256 pass-through: the client's keys log in without the password") {
  const ScramSecret secret = make_scram_secret("s3cret", "0123456789abcdef", 4096);
  ScramSha256Client original("s3cret");
  ScramSha256Server front(secret);
  auto server_first = front.handle_client_first(kScramSha256, original.client_first_message());
  auto client_final = original.handle_server_first(std::get<std::string>(server_first));
  REQUIRE(std::holds_alternative<std::string>(
      front.handle_client_final(std::get<std::string>(client_final))));

  ServerAuthSettings s = settings("");
  s.scram_keys = ScramPassThrough{*front.recovered_client_key(), secret.server_key};
  ServerAuth auth(s);
  ScramSha256Server server(secret);
  CHECK(sent(run_scram(auth, server).after_final).empty());
}

TEST_CASE("SCRAM over TLS: binds to the certificate when offered, else says it could have") {
  const std::string hash(32, '\x5a');
  ServerAuthSettings s = settings();
  s.tls_server_end_point = hash;
  SUBCASE("SCRAM-SHA-256-PLUS") {
    ScramSha256Server server(make_scram_secret("s3cret"));
    server.set_channel_binding(std::string(kTlsServerEndPoint), hash);
    ServerAuth auth(s);
    const ScramRun run = run_scram(auth, server);
    CHECK(run.mechanism == "SCRAM-SHA-256-PLUS");
    CHECK(run.client_first.starts_with("p=tls-server-end-point,,"));
    CHECK(sent(run.after_final).empty());
  }
  SUBCASE("server without -PLUS") {
    ScramSha256Server server(make_scram_secret("s3cret"));
    ServerAuth auth(s);
    const ScramRun run = run_scram(auth, server);
    CHECK(run.mechanism == "SCRAM-SHA-256");
    CHECK(run.client_first.starts_with("y,,"));
  }
}

TEST_CASE("a wrong password: the server's ErrorResponse is the client's, SQLSTATE and all") {
  ScramSha256Server server(make_scram_secret("other"));
  ServerAuth auth(settings());
  const auto initial = parse_sasl_initial_response(
      password_body(sent(feed(auth, wire(make_sasl_authentication(server.mechanisms()))))));
  REQUIRE(initial.has_value());
  const auto server_first = server.handle_client_first(initial->mechanism, *initial->data);
  const std::string client_final =
      password_body(sent(feed(auth, wire(Authentication{Authentication::kSASLContinue,
                                                        std::get<std::string>(server_first)}))));
  const auto verdict = server.handle_client_final(client_final);
  REQUIRE(std::holds_alternative<ScramError>(verdict));
  CHECK(std::get<ScramError>(verdict).kind == ScramErrorKind::kAuthenticationFailed);

  const ErrorResponse refusal =
      make_error("FATAL", "28P01", "password authentication failed for user \"app\"");
  const auto& error = failed(feed(auth, wire(refusal)));
  CHECK(error.sqlstate == "28P01");
  CHECK(error.message == "password authentication failed for user \"app\"");
  CHECK(error.reason ==
        "blue (db1:5432) refused login: 28P01 password authentication failed for user \"app\"");
  REQUIRE(error.server_error.has_value());
  CHECK(error.error_response() == wire(refusal));  // passed on byte for byte
}

TEST_CASE("a server error before any authentication request keeps its SQLSTATE") {
  ServerAuth auth(settings());
  const ErrorResponse full = make_error("FATAL", "53300", "sorry, too many clients already");
  const auto& error = failed(feed(auth, wire(full)));
  CHECK(error.sqlstate == "53300");
  CHECK(error.error_response() == wire(full));
}

TEST_CASE("a server whose SCRAM signature is wrong is not trusted") {
  ScramSha256Server server(make_scram_secret("s3cret"));
  ServerAuth auth(settings());
  const auto initial = parse_sasl_initial_response(
      password_body(sent(feed(auth, wire(make_sasl_authentication(server.mechanisms()))))));
  REQUIRE(initial.has_value());
  const auto server_first = server.handle_client_first(initial->mechanism, *initial->data);
  (void)sent(feed(auth, wire(Authentication{Authentication::kSASLContinue,
                                            std::get<std::string>(server_first)})));
  const auto& error =
      failed(feed(auth, wire(Authentication{Authentication::kSASLFinal,
                                            "v=" + base64_encode(std::string(32, '\x01'))})));
  CHECK(error.sqlstate == "28000");
  CHECK(error.message == "server blue (db1:5432) failed SCRAM verification (wrong server?)");
}

TEST_CASE("a malformed server-first-message fails SCRAM") {
  ServerAuth auth(settings());
  (void)sent(feed(auth, wire(make_sasl_authentication({"SCRAM-SHA-256"}))));
  const auto& error =
      failed(feed(auth, wire(Authentication{Authentication::kSASLContinue, "garbage"})));
  CHECK(error.sqlstate == "28000");
  CHECK(error.reason.starts_with("SCRAM: "));
}

TEST_CASE("unsupported mechanisms and methods are refused with 08P01") {
  SUBCASE("no SCRAM-SHA-256 among the SASL mechanisms") {
    ServerAuth auth(settings());
    const auto& error = failed(feed(auth, wire(make_sasl_authentication({"OAUTHBEARER"}))));
    CHECK(error.sqlstate == "08P01");
    CHECK(error.message == "server blue (db1:5432) offers no SASL mechanism pgflip supports");
  }
  SUBCASE("only SCRAM-SHA-256-PLUS, without TLS") {
    ServerAuth auth(settings());
    const auto& error = failed(feed(auth, wire(make_sasl_authentication({"SCRAM-SHA-256-PLUS"}))));
    CHECK(error.sqlstate == "08P01");
    CHECK(error.reason == "SCRAM-SHA-256-PLUS without TLS");
  }
  SUBCASE("GSSAPI") {
    ServerAuth auth(settings());
    const auto& error = failed(feed(auth, wire(Authentication{Authentication::kGSS, {}})));
    CHECK(error.sqlstate == "08P01");
    CHECK(error.reason == "unsupported authentication request 7");
  }
}

TEST_CASE("unexpected messages end the login with 08P01") {
  SUBCASE("a row before AuthenticationOk") {
    ServerAuth auth(settings());
    const auto& error = failed(feed(auth, wire(DataRow{{std::string("x")}})));
    CHECK(error.sqlstate == "08P01");
    CHECK(error.reason == "unexpected DataRow before AuthenticationOk");
  }
  SUBCASE("SASL continuation without a SASL request") {
    ServerAuth auth(settings());
    const auto& error =
        failed(feed(auth, wire(Authentication{Authentication::kSASLContinue, "r=x,s=eA==,i=1"})));
    CHECK(error.sqlstate == "08P01");
  }
  SUBCASE("a command result after AuthenticationOk") {
    ServerAuth auth(settings());
    (void)sent(feed(auth, wire(Authentication{Authentication::kOk, {}})));
    const auto& error = failed(feed(auth, wire(CommandComplete{"SELECT 1"})));
    CHECK(error.sqlstate == "08P01");
    CHECK(error.message == "server blue (db1:5432) sent an unexpected message during login");
    CHECK(error.reason == "unexpected CommandComplete during login");
  }
  SUBCASE("an authentication request after AuthenticationOk") {
    ServerAuth auth(settings());
    (void)sent(feed(auth, wire(Authentication{Authentication::kOk, {}})));
    CHECK(
        failed(feed(auth, wire(Authentication{Authentication::kCleartextPassword, {}}))).sqlstate ==
        "08P01");
  }
}

TEST_CASE("NegotiateProtocolVersion is accepted: pgflip asks for 3.0") {
  ServerAuth auth(settings());
  CHECK(sent(feed(auth, wire(NegotiateProtocolVersion{0, {"_pq_.unknown"}}))).empty());
  (void)sent(feed(auth, wire(Authentication{Authentication::kCleartextPassword, {}})));
  CHECK(sent(feed(auth, wire(Authentication{Authentication::kOk, {}}))).empty());
  CHECK(finish(auth).transaction_status == 'I');
}
