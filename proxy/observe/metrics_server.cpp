// The metrics endpoint: GET /metrics (Prometheus text format 0.0.4) and GET /healthz over
// HTTP/1.1 with keep-alive, bounded header size, read and write timeouts and a connection cap.
#include "proxy/observe/metrics_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace pgflip::proxy {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

http::response<http::string_body> make_response(http::status status, unsigned version,
                                                bool keep_alive, std::string_view content_type,
                                                std::string body, bool head) {
  http::response<http::string_body> response{status, version};
  response.set(http::field::server, "pgflip/" PGFLIP_VERSION);
  response.set(http::field::content_type, content_type);
  response.set(http::field::cache_control, "no-store");
  response.keep_alive(keep_alive);
  const std::size_t length = body.size();
  if (!head) response.body() = std::move(body);
  response.content_length(length);
  return response;
}

}  // namespace

MetricsServer::MetricsServer(std::string host, std::uint16_t port,
                             std::function<std::string()> render, std::function<bool()> healthy)
    : host_(std::move(host)),
      port_(port),
      render_(std::move(render)),
      healthy_(std::move(healthy)) {}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() {
  tcp::resolver resolver(io_);
  const auto results = resolver.resolve(host_, std::to_string(port_), tcp::resolver::passive);
  const tcp::endpoint endpoint = results.begin()->endpoint();
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  endpoint_ = acceptor_.local_endpoint();
  asio::co_spawn(io_, accept_loop(), asio::detached);
  thread_ = std::thread([this] { io_.run(); });
  spdlog::info("metrics on http://{}:{}/metrics", endpoint_.address().to_string(),
               endpoint_.port());
}

void MetricsServer::stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] {
    error_code ignored;
    acceptor_.close(ignored);
    io_.stop();  // open connections are dropped with the io_context's pending work
  });
  thread_.join();
}

awaitable<void> MetricsServer::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      spdlog::warn("metrics endpoint: accept failed: {}", ec.message());
      asio::steady_timer timer(io_, std::chrono::milliseconds(100));
      co_await timer.async_wait(use_nothrow);
      continue;
    }
    if (connections_ >= kMaxConnections) {
      error_code ignored;
      socket.close(ignored);  // a scraper needs one connection; many are abuse
      continue;
    }
    ++connections_;
    asio::co_spawn(io_, serve(std::move(socket)),
                   [this](const std::exception_ptr&) { --connections_; });
  }
}

awaitable<void> MetricsServer::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(kMaxHeaderBytes);
  for (int served = 0; served < kMaxRequestsPerConnection; ++served) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(0);  // GET and HEAD carry no body
    stream.expires_after(kReadTimeout);
    auto [rec, read] = co_await http::async_read(stream, buffer, parser, use_nothrow);
    (void)read;
    if (rec) {
      // A closed or silent client, or a request that is too large or malformed: the
      // connection goes, with a 400 for requests we could not parse.
      if (rec != http::error::end_of_stream && rec != beast::error::timeout &&
          rec != asio::error::operation_aborted && rec != asio::error::connection_reset) {
        auto response = make_response(http::status::bad_request, 11, false, "text/plain",
                                      "bad request\n", false);
        stream.expires_after(kWriteTimeout);
        co_await http::async_write(stream, response, use_nothrow);
      }
      break;
    }
    const auto& request = parser.get();
    std::string_view target(request.target().data(), request.target().size());
    target = target.substr(0, target.find('?'));
    const bool head = request.method() == http::verb::head;
    const bool get = request.method() == http::verb::get || head;
    const bool keep_alive = request.keep_alive();
    http::response<http::string_body> response;
    if (target != "/metrics" && target != "/healthz") {
      response = make_response(http::status::not_found, request.version(), keep_alive, "text/plain",
                               "not found\n", head);
    } else if (!get) {
      response = make_response(http::status::method_not_allowed, request.version(), keep_alive,
                               "text/plain", "method not allowed\n", false);
      response.set(http::field::allow, "GET, HEAD");
    } else if (target == "/metrics") {
      response = make_response(http::status::ok, request.version(), keep_alive, kMetricsContentType,
                               render_(), head);
    } else if (healthy_()) {
      response = make_response(http::status::ok, request.version(), keep_alive, "text/plain",
                               "ok\n", head);
    } else {
      response = make_response(http::status::service_unavailable, request.version(), keep_alive,
                               "text/plain", "stopping\n", head);
    }
    stream.expires_after(kWriteTimeout);
    auto [wec, written] = co_await http::async_write(stream, response, use_nothrow);
    (void)written;
    if (wec || !keep_alive) break;
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.close();
}

}  // namespace pgflip::proxy
