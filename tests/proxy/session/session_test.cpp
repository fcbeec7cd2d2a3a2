// Session against a scripted in-process server: login, key mapping, relay, server loss.
#include <doctest/doctest.h>

#include <array>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/md5.hpp"
#include "protocol/messages.hpp"
#include "protocol/startup.hpp"
#include "proxy/base/asio.hpp"
#include "proxy/base/read_message.hpp"
#include "proxy/session/proxy_context.hpp"
#include "proxy/session/session.hpp"

namespace proto = pgflip::protocol;
using namespace pgflip::proxy;

namespace {

/// Reads whole messages of one kind from a socket (read_message), keeping leftovers between
/// calls; nullopt when none can come.
struct MessageReader {
  std::string buffer;

  awaitable<std::optional<proto::BackendMessage>> backend(tcp::socket& socket) {
    co_return whole(co_await read_message(socket, buffer, decode_backend));
  }

  awaitable<std::optional<proto::FrontendMessage>> frontend(tcp::socket& socket) {
    co_return whole(co_await read_message(socket, buffer, decode_frontend));
  }

  awaitable<std::optional<proto::StartupMessage>> startup(tcp::socket& socket) {
    auto packet = whole(co_await read_message(socket, buffer, decode_startup));
    if (auto* startup = packet ? std::get_if<proto::StartupMessage>(&*packet) : nullptr) {
      co_return std::move(*startup);
    }
    co_return std::nullopt;
  }

 private:
  static proto::DecodeResult<proto::BackendMessage> decode_backend(std::string_view bytes) {
    return proto::decode_backend(bytes);
  }
  static proto::DecodeResult<proto::FrontendMessage> decode_frontend(std::string_view bytes) {
    return proto::decode_frontend(bytes);
  }
  static proto::DecodeResult<proto::StartupPacket> decode_startup(std::string_view bytes) {
    return proto::decode_startup(bytes);
  }
  template <class Msg>
  static std::optional<Msg> whole(MessageRead<Msg> read) {
    if (auto* message = std::get_if<Msg>(&read)) return std::move(*message);
    return std::nullopt;
  }
};

awaitable<void> send(tcp::socket& socket, const std::string& bytes) {
  co_await asio::async_write(socket, asio::buffer(bytes), use_nothrow);
}

template <class Msg>
std::string wire(const Msg& message) {
  std::string out;
  proto::encode(message, out);
  return out;
}

struct Fixture {
  asio::io_context io;
  tcp::acceptor server_acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  tcp::acceptor proxy_acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  ProxyContext context;

  Fixture() {
    auto config = std::make_shared<pgflip::config::Config>();
    config->blue.host = "127.0.0.1";
    config->blue.port = server_acceptor.local_endpoint().port();
    config->blue.user = "app";
    config->blue.password = "s3cret";
    config->server.startup_timeout = std::chrono::seconds(5);
    // The scripted server speaks neither TLS nor client authentication.
    config->auth.method = pgflip::config::AuthMethod::kTrust;
    config->blue.sslmode = pgflip::config::SslMode::kDisable;
    context.set_config(config);
    context.router.set_active(Router::Active{"blue", config->blue, 0});
  }

  /// Accepts one client on the proxy side and runs a Session for it.
  void start_proxy() {
    asio::co_spawn(
        io,
        [this]() -> awaitable<void> {
          auto [ec, socket] = co_await proxy_acceptor.async_accept(use_nothrow);
          REQUIRE_FALSE(ec);
          auto session = std::make_shared<Session>(std::move(socket), context, 1);
          co_await session->run();
        },
        asio::detached);
  }

  /// The scripted server's side of a trust login: accepts pgflip's connection, reads its
  /// startup packet and answers AuthenticationOk, BackendKeyData and ReadyForQuery('I').
  awaitable<tcp::socket> accept_trusted_login(MessageReader& reader) {
    auto [ec, socket] = co_await server_acceptor.async_accept(use_nothrow);
    REQUIRE_FALSE(ec);
    REQUIRE((co_await reader.startup(socket)).has_value());
    const std::string ready = wire(proto::Authentication{0, {}}) +
                              wire(proto::BackendKeyData{1, 2}) + wire(proto::ReadyForQuery{'I'});
    co_await send(socket, ready);
    co_return std::move(socket);
  }

  /// A client connected to pgflip that has sent its StartupMessage with `parameters`.
  awaitable<tcp::socket> connect_client(
      std::vector<std::pair<std::string, std::string>> parameters) {
    tcp::socket socket(io);
    auto [ec] = co_await socket.async_connect(proxy_acceptor.local_endpoint(), use_nothrow);
    REQUIRE_FALSE(ec);
    proto::StartupMessage startup;
    startup.parameters = std::move(parameters);
    const std::string startup_bytes = wire(startup);
    co_await send(socket, startup_bytes);
    co_return std::move(socket);
  }

  /// Runs the scripted server and the client until both finish (at most 10 s). Both must
  /// finish, and an exception from either fails the test: a broken script is a failure too.
  void run(std::function<awaitable<void>()> client, std::function<awaitable<void>()> server) {
    bool client_done = false, server_done = false;
    std::string server_error;
    asio::co_spawn(io, server(), [&](std::exception_ptr e) {
      server_done = true;
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& error) {
        server_error = error.what();
      } catch (...) {
        server_error = "an exception that is no std::exception";
      }
    });
    asio::co_spawn(io, client(), [&](std::exception_ptr e) {
      client_done = true;
      if (e) std::rethrow_exception(e);
    });
    io.run_for(std::chrono::seconds(10));
    if (!server_error.empty()) FAIL_CHECK("the scripted server threw: " << server_error);
    CHECK(server_done);
    CHECK(client_done);
  }
};

}  // namespace

TEST_CASE("MD5 login, own BackendKeyData, relay, and a FATAL when the server dies") {
  Fixture f;
  f.start_proxy();
  std::vector<std::string> server_log;

  auto server = [&]() -> awaitable<void> {
    auto [ec, socket] = co_await f.server_acceptor.async_accept(use_nothrow);
    REQUIRE_FALSE(ec);
    MessageReader reader;
    auto startup = co_await reader.startup(socket);
    REQUIRE(startup.has_value());
    CHECK(*startup->find("user") == "app");  // configured server user replaces the client's
    CHECK(*startup->find("database") == "shop");
    CHECK(*startup->find("application_name") == "unit");
    const std::array<std::uint8_t, 4> salt{1, 2, 3, 4};
    const std::string md5_request = wire(proto::Authentication{5, std::string("\1\2\3\4", 4)});
    co_await send(socket, md5_request);
    auto password = co_await reader.frontend(socket);
    REQUIRE(password.has_value());
    auto* p = std::get_if<proto::PasswordMessage>(&*password);
    REQUIRE(p != nullptr);
    CHECK(p->data.substr(0, p->data.find('\0')) ==
          proto::md5_password_response("app", "s3cret", salt));
    std::string out = wire(proto::Authentication{0, {}});
    out += wire(proto::ParameterStatus{"server_version", "15.18"});
    out += wire(proto::BackendKeyData{1234, 5678});
    out += wire(proto::ReadyForQuery{'I'});
    co_await send(socket, out);

    auto query = co_await reader.frontend(socket);
    REQUIRE(query.has_value());
    REQUIRE(std::holds_alternative<proto::Query>(*query));
    server_log.push_back(std::get<proto::Query>(*query).query);
    const std::string reply =
        wire(proto::CommandComplete{"SELECT 1"}) + wire(proto::ReadyForQuery{'I'});
    co_await send(socket, reply);
    auto second = co_await reader.frontend(socket);
    REQUIRE(second.has_value());
    socket.close();  // the server dies mid-query
  };

  auto client = [&]() -> awaitable<void> {
    const std::vector<std::pair<std::string, std::string>> parameters = {
        {"user", "alice"}, {"database", "shop"}, {"application_name", "unit"}};
    tcp::socket socket = co_await f.connect_client(parameters);
    MessageReader reader;
    bool saw_ok = false, saw_version = false, saw_key = false;
    for (;;) {
      auto message = co_await reader.backend(socket);
      REQUIRE(message.has_value());
      if (auto* auth = std::get_if<proto::Authentication>(&*message)) saw_ok = auth->code == 0;
      if (auto* ps = std::get_if<proto::ParameterStatus>(&*message)) {
        saw_version = ps->name == "server_version" && ps->value == "15.18";
      }
      if (auto* key = std::get_if<proto::BackendKeyData>(&*message)) {
        saw_key = true;
        CHECK(key->process_id != 1234);  // clients never see the server's key
        CHECK(key->secret_key != 5678);
      }
      if (std::holds_alternative<proto::ReadyForQuery>(*message)) break;
    }
    CHECK(saw_ok);
    CHECK(saw_version);
    CHECK(saw_key);

    const std::string query1 = wire(proto::Query{"select 1"});
    co_await send(socket, query1);
    auto complete = co_await reader.backend(socket);
    REQUIRE(complete.has_value());
    CHECK(std::holds_alternative<proto::CommandComplete>(*complete));
    auto ready = co_await reader.backend(socket);
    REQUIRE(ready.has_value());
    CHECK(std::holds_alternative<proto::ReadyForQuery>(*ready));

    const std::string query2 = wire(proto::Query{"select pg_sleep(10)"});
    co_await send(socket, query2);
    auto error = co_await reader.backend(socket);
    REQUIRE(error.has_value());
    auto* e = std::get_if<proto::ErrorResponse>(&*error);
    REQUIRE(e != nullptr);
    CHECK(e->severity() == "FATAL");
    CHECK(e->code() == "08006");
    CHECK_FALSE((co_await reader.backend(socket)).has_value());  // then the connection closes
  };

  f.run(client, server);
  CHECK(server_log == std::vector<std::string>{"select 1"});
}

TEST_CASE("the server's refusal reaches the client unchanged") {
  Fixture f;
  f.start_proxy();
  auto server = [&]() -> awaitable<void> {
    auto [ec, socket] = co_await f.server_acceptor.async_accept(use_nothrow);
    REQUIRE_FALSE(ec);
    MessageReader reader;
    REQUIRE((co_await reader.startup(socket)).has_value());
    const std::string refusal =
        proto::encode_error("FATAL", "3D000", "database \"shop\" does not exist");
    co_await send(socket, refusal);
    socket.close();
  };
  auto client = [&]() -> awaitable<void> {
    const std::vector<std::pair<std::string, std::string>> parameters = {{"user", "alice"},
                                                                         {"database", "shop"}};
    tcp::socket socket = co_await f.connect_client(parameters);
    MessageReader reader;
    auto message = co_await reader.backend(socket);
    REQUIRE(message.has_value());
    auto* e = std::get_if<proto::ErrorResponse>(&*message);
    REQUIRE(e != nullptr);
    CHECK(e->code() == "3D000");
    CHECK_FALSE((co_await reader.backend(socket)).has_value());
  };
  f.run(client, server);
  // Metrics: a refused server login counts as a login failure, not as a session.
  const std::string text = f.context.metrics.render();
  CHECK(text.find("pgflip_client_login_failures_total{reason=\"server\"} 1\n") !=
        std::string::npos);
  CHECK(f.context.metrics.databases().empty());  // no per-database series for a failed login
}

TEST_CASE("an oversized client message is a protocol violation (08P01)") {
  Fixture f;
  auto config = std::make_shared<pgflip::config::Config>(*f.context.config());
  config->server.max_message_size = 1024;
  f.context.set_config(config);
  f.context.router.set_active(Router::Active{"blue", config->blue, 0});
  f.start_proxy();
  auto server = [&]() -> awaitable<void> {
    MessageReader reader;
    tcp::socket socket = co_await f.accept_trusted_login(reader);
    auto next = co_await reader.frontend(socket);
    // The oversized query never reaches the server; a Terminate does.
    REQUIRE(next.has_value());
    CHECK(std::holds_alternative<proto::Terminate>(*next));
  };
  auto client = [&]() -> awaitable<void> {
    const std::vector<std::pair<std::string, std::string>> parameters = {{"user", "alice"}};
    tcp::socket socket = co_await f.connect_client(parameters);
    MessageReader reader;
    for (;;) {
      auto message = co_await reader.backend(socket);
      REQUIRE(message.has_value());
      if (std::holds_alternative<proto::ReadyForQuery>(*message)) break;
    }
    const std::string big = wire(proto::Query{std::string(5000, 'x')});
    co_await send(socket, big);
    auto message = co_await reader.backend(socket);
    REQUIRE(message.has_value());
    auto* e = std::get_if<proto::ErrorResponse>(&*message);
    REQUIRE(e != nullptr);
    CHECK(e->code() == "08P01");
  };
  f.run(client, server);
}

TEST_CASE("metrics: queries, transactions, errors, latency and state of a session") {
  Fixture f;
  f.start_proxy();
  bool server_done = false;
  auto server = [&]() -> awaitable<void> {
    MessageReader reader;
    tcp::socket socket = co_await f.accept_trusted_login(reader);
    // Answers each Query or Sync in turn: BEGIN, an error inside, ROLLBACK, then two
    // pipelined extended-protocol cycles.
    const std::vector<std::string> replies = {
        wire(proto::CommandComplete{"BEGIN"}) + wire(proto::ReadyForQuery{'T'}),
        proto::encode_error("ERROR", "22012", "division by zero") + wire(proto::ReadyForQuery{'E'}),
        wire(proto::CommandComplete{"ROLLBACK"}) + wire(proto::ReadyForQuery{'I'}),
        wire(proto::CommandComplete{"SELECT 1"}) + wire(proto::ReadyForQuery{'I'}),
        wire(proto::CommandComplete{"SELECT 1"}) + wire(proto::ReadyForQuery{'I'}),
    };
    std::size_t answered = 0;
    while (answered < replies.size()) {
      auto message = co_await reader.frontend(socket);
      REQUIRE(message.has_value());
      if (std::holds_alternative<proto::Query>(*message) ||
          std::holds_alternative<proto::Sync>(*message)) {
        co_await send(socket, replies[answered++]);
      }
    }
    auto terminate = co_await reader.frontend(socket);
    CHECK((terminate && std::holds_alternative<proto::Terminate>(*terminate)));
    server_done = true;
  };
  auto client = [&]() -> awaitable<void> {
    const std::vector<std::pair<std::string, std::string>> parameters = {{"user", "alice"},
                                                                         {"database", "shop"}};
    tcp::socket socket = co_await f.connect_client(parameters);
    MessageReader reader;
    auto until_ready = [&]() -> awaitable<char> {
      for (;;) {
        auto message = co_await reader.backend(socket);
        REQUIRE(message.has_value());
        if (auto* r = std::get_if<proto::ReadyForQuery>(&*message)) co_return r->status;
      }
    };
    co_await until_ready();
    std::string statuses;
    for (const char* sql : {"BEGIN", "SELECT 1/0", "ROLLBACK"}) {
      const std::string query = wire(proto::Query{sql});
      co_await send(socket, query);
      statuses += co_await until_ready();
    }
    CHECK(statuses == "TEI");
    // Two extended-protocol cycles in one write: each Sync is one query.
    std::string pipeline = wire(proto::Parse{"", "SELECT 1", {}}) + wire(proto::Bind{}) +
                           wire(proto::Execute{}) + wire(proto::Sync{});
    pipeline += pipeline;
    co_await send(socket, pipeline);
    CHECK(co_await until_ready() == 'I');
    CHECK(co_await until_ready() == 'I');
    const std::string terminate = wire(proto::Terminate{});
    co_await send(socket, terminate);
    CHECK_FALSE((co_await reader.backend(socket)).has_value());
  };
  f.run(client, server);
  CHECK(server_done);
  const auto databases = f.context.metrics.databases();
  REQUIRE(databases.size() == 1);
  const DatabaseStats& shop = *databases[0];
  CHECK(shop.name == "shop");
  CHECK(shop.queries->value() == 5);
  CHECK(shop.transactions->value() == 3);  // ROLLBACK and the two autocommit Syncs
  CHECK(shop.query_duration->snapshot().count() == 5);
  CHECK(shop.bytes_received->value() > 0);
  CHECK(shop.bytes_sent->value() > 0);
  using Row = std::pair<std::string, std::uint64_t>;
  CHECK(shop.errors.snapshot() == std::vector<Row>{{"22012", 1}});
  const std::string text = f.context.metrics.render();
  CHECK(text.find("pgflip_queries_total{database=\"shop\"} 5\n") != std::string::npos);
}
