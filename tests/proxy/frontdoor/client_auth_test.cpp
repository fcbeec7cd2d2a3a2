// The client authentication exchange in-process: SCRAM and MD5 against each kind of secret,
// pass-through keys, wrong passwords and unknown users.
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>

#include "protocol/md5.hpp"
#include "protocol/messages.hpp"
#include "protocol/scram.hpp"
#include "proxy/base/read_message.hpp"
#include "proxy/frontdoor/client_auth.hpp"

namespace proto = pgflip::protocol;
using namespace pgflip::proxy;
using pgflip::config::AuthMethod;

namespace {

const std::string kScramSecret =
    proto::format_scram_secret(proto::make_scram_secret("scram-pw", "0123456789abcdef", 4096));

/// What the client side saw: the authentication requests, then an error or the end.
struct ClientSide {
  std::vector<std::int32_t> requests;
  std::optional<proto::ErrorResponse> error;
  std::optional<proto::ScramSha256Client> scram;
};

proto::DecodeResult<proto::BackendMessage> decode_backend(std::string_view bytes) {
  return proto::decode_backend(bytes);
}

awaitable<std::optional<proto::BackendMessage>> next(tcp::socket& socket, std::string& buffer) {
  auto read = co_await read_message(socket, buffer, decode_backend);
  if (auto* message = std::get_if<proto::BackendMessage>(&read)) co_return std::move(*message);
  co_return std::nullopt;
}

awaitable<void> send(tcp::socket& socket, const std::string& bytes) {
  co_await asio::async_write(socket, asio::buffer(bytes), use_nothrow);
}

/// Answers SCRAM or MD5 with `password` as user `user` until AuthenticationSASLFinal (or MD5's
/// answer is sent), an ErrorResponse, or the end of the connection.
awaitable<void> play_client(tcp::socket& socket, std::string user, std::string password,
                            ClientSide& seen) {
  std::string buffer;
  for (;;) {
    auto message = co_await next(socket, buffer);
    if (!message) co_return;
    if (auto* error = std::get_if<proto::ErrorResponse>(&*message)) {
      seen.error = *error;
      co_return;
    }
    auto* auth = std::get_if<proto::Authentication>(&*message);
    REQUIRE(auth != nullptr);
    seen.requests.push_back(auth->code);
    std::string out;
    if (auth->code == proto::Authentication::kMD5Password) {
      std::array<std::uint8_t, 4> salt{};
      for (std::size_t i = 0; i < 4; ++i) salt[i] = static_cast<std::uint8_t>(auth->data[i]);
      proto::encode_password(proto::md5_password_response(user, password, salt), out);
      co_await send(socket, out);
      continue;  // then an ErrorResponse, or the end of the connection
    }
    if (auth->code == proto::Authentication::kSASL) {
      seen.scram.emplace(password);
      proto::encode(proto::SASLInitialResponse{"SCRAM-SHA-256", seen.scram->client_first_message()},
                    out);
    } else if (auth->code == proto::Authentication::kSASLContinue) {
      auto reply = seen.scram->handle_server_first(auth->data);
      REQUIRE(std::holds_alternative<std::string>(reply));
      proto::encode_sasl_response(std::get<std::string>(reply), out);
    } else if (auth->code == proto::Authentication::kSASLFinal) {
      CHECK_FALSE(seen.scram->verify_server_final(auth->data).has_value());
      co_return;
    }
    co_await send(socket, out);
  }
}

struct Run {
  std::optional<ClientCredentials> credentials;
  ClientSide client;
};

Run authenticate(AuthMethod method, std::string users_file, std::string user,
                 std::string password) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto config = std::make_shared<pgflip::config::Config>();
  config->auth.method = method;
  config->auth.admin_users = {"alice"};
  ClientAuthRequest request;
  request.config = config;
  request.users = UserStore::parse(users_file, "users.txt");
  request.user = user;
  request.database = "db";
  Run run;
  bool server_done = false;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
        REQUIRE_FALSE(ec);
        ClientStream stream(std::move(socket));
        std::string pending;
        run.credentials = co_await authenticate_client(stream, pending, request);
        server_done = true;
        error_code ignored;
        stream.close(ignored);
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        tcp::socket socket(io);
        co_await socket.async_connect(acceptor.local_endpoint(), use_nothrow);
        co_await play_client(socket, user, password, run.client);
      },
      asio::detached);
  io.run_for(std::chrono::seconds(20));
  CHECK(server_done);
  return run;
}

std::string users() {
  return "\"alice\" \"" + kScramSecret + "\"\n\"bob\" \"" + proto::md5_secret("bob", "md5-pw") +
         "\"\n\"carol\" \"plain-pw\"\n";
}

}  // namespace

TEST_CASE("SCRAM against a SCRAM secret recovers the client's keys for pass-through") {
  const Run run = authenticate(AuthMethod::kScramSha256, users(), "alice", "scram-pw");
  REQUIRE(run.credentials.has_value());
  CHECK(run.client.requests == std::vector<std::int32_t>{10, 11, 12});
  CHECK(run.credentials->password.empty());
  REQUIRE(run.credentials->scram_keys.has_value());
  CHECK(run.credentials->scram_keys->client_key == run.client.scram->client_key());
  CHECK(run.credentials->scram_keys->server_key == run.client.scram->server_key());
  CHECK(run.credentials->admin);
}

TEST_CASE("SCRAM against a plaintext entry keeps the password for server logins") {
  const Run run = authenticate(AuthMethod::kScramSha256, users(), "carol", "plain-pw");
  REQUIRE(run.credentials.has_value());
  CHECK(run.credentials->password == "plain-pw");
  CHECK_FALSE(run.credentials->admin);
}

TEST_CASE("wrong passwords, unknown users and MD5-only users get 28P01 alike") {
  struct Case {
    AuthMethod method;
    const char* user;
    const char* password;
  };
  for (const Case& c :
       {Case{AuthMethod::kScramSha256, "alice", "wrong"},
        Case{AuthMethod::kScramSha256, "carol", "wrong"},
        Case{AuthMethod::kScramSha256, "nobody", "whatever"},
        Case{AuthMethod::kScramSha256, "bob", "md5-pw"}, Case{AuthMethod::kMd5, "bob", "wrong"},
        Case{AuthMethod::kMd5, "nobody", "whatever"}}) {
    CAPTURE(c.user);
    const Run run = authenticate(c.method, users(), c.user, c.password);
    CHECK_FALSE(run.credentials.has_value());
    REQUIRE(run.client.error.has_value());
    CHECK(run.client.error->code() == "28P01");
    CHECK(run.client.error->severity() == "FATAL");
    CHECK(run.client.error->message() ==
          "password authentication failed for user \"" + std::string(c.user) + "\"");
    // The exchange ran to the end (a mock one for unknown users): SASL did three steps.
    if (c.method == AuthMethod::kScramSha256) {
      CHECK(run.client.requests == std::vector<std::int32_t>{10, 11});
    } else {
      CHECK(run.client.requests == std::vector<std::int32_t>{5});
    }
  }
}

TEST_CASE("MD5 against an MD5 secret keeps the secret; md5 uses SCRAM for SCRAM secrets") {
  const Run md5 = authenticate(AuthMethod::kMd5, users(), "bob", "md5-pw");
  REQUIRE(md5.credentials.has_value());
  CHECK(md5.client.requests == std::vector<std::int32_t>{5});
  CHECK(md5.credentials->md5_secret == proto::md5_secret("bob", "md5-pw"));
  const Run plain = authenticate(AuthMethod::kMd5, users(), "carol", "plain-pw");
  REQUIRE(plain.credentials.has_value());
  CHECK(plain.credentials->password == "plain-pw");
  const Run scram = authenticate(AuthMethod::kMd5, users(), "alice", "scram-pw");
  REQUIRE(scram.credentials.has_value());
  CHECK(scram.client.requests == std::vector<std::int32_t>{10, 11, 12});
  CHECK(scram.credentials->scram_keys.has_value());
}

TEST_CASE("trust lets everyone in without a request") {
  const Run run = authenticate(AuthMethod::kTrust, users(), "nobody", "");
  REQUIRE(run.credentials.has_value());
  CHECK(run.client.requests.empty());
  CHECK(run.credentials->password.empty());
  CHECK_FALSE(run.credentials->scram_keys.has_value());
}
