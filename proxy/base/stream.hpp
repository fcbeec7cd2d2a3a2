// A connection that is plain (TCP or a Unix socket) or TLS over it, decided at run time.
#pragma once

#include <boost/asio/ssl.hpp>
#include <cstddef>
#include <memory>
#include <utility>

#include "proxy/base/asio.hpp"

namespace pgflip::proxy {

namespace ssl = asio::ssl;

/// Either the socket itself or a TLS stream that owns it. The read and write members have
/// the signatures of Asio's AsyncReadStream/AsyncWriteStream, so asio::async_write and
/// friends work on it; a plain connection costs one branch per operation and no copy.
/// Not thread-safe (one executor, one read and one write in flight at most, as for sockets).
/// Must not be moved while an operation is in flight.
template <class Socket>
class MaybeTlsStream {
 public:
  using executor_type = typename Socket::executor_type;
  using lowest_layer_type = typename Socket::lowest_layer_type;
  using TlsStream = ssl::stream<Socket>;

  explicit MaybeTlsStream(Socket socket) : socket_(std::move(socket)) {}
  explicit MaybeTlsStream(const executor_type& executor) : socket_(executor) {}
  MaybeTlsStream(MaybeTlsStream&&) noexcept = default;
  MaybeTlsStream& operator=(MaybeTlsStream&&) noexcept = default;
  MaybeTlsStream(const MaybeTlsStream&) = delete;
  MaybeTlsStream& operator=(const MaybeTlsStream&) = delete;

  [[nodiscard]] executor_type get_executor() { return socket().get_executor(); }

  /// The socket underneath (inside the TLS stream once TLS has started).
  [[nodiscard]] Socket& socket() { return tls_ ? tls_->next_layer() : socket_; }
  [[nodiscard]] lowest_layer_type& lowest_layer() { return socket().lowest_layer(); }

  [[nodiscard]] bool is_tls() const { return tls_ != nullptr; }
  /// The TLS stream; only after start_tls().
  [[nodiscard]] TlsStream& tls() { return *tls_; }
  /// OpenSSL's connection object, or nullptr for a plain connection.
  [[nodiscard]] SSL* native_tls() { return tls_ ? tls_->native_handle() : nullptr; }

  /// Moves the socket into a TLS stream using `context`; the handshake is the caller's.
  void start_tls(ssl::context& context) {
    tls_ = std::make_unique<TlsStream>(std::move(socket_), context);
    // Asio asks OpenSSL to free its buffers whenever they drain; a busy connection would then
    // allocate and free 16 KiB per record. Keep them.
    SSL_clear_mode(tls_->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (tls_) {
            tls_->async_read_some(b, std::move(handler));
          } else {
            socket_.async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (tls_) {
            tls_->async_write_some(b, std::move(handler));
          } else {
            socket_.async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  // Socket operations, applied to the socket underneath. close() and shutdown() do not send
  // TLS close_notify: PostgreSQL's peers treat a closed TCP connection as the end.
  void cancel(error_code& ec) { socket().cancel(ec); }
  void close(error_code& ec) { socket().close(ec); }
  void shutdown(asio::socket_base::shutdown_type what, error_code& ec) {
    socket().shutdown(what, ec);
  }
  [[nodiscard]] bool is_open() const {
    return tls_ ? tls_->next_layer().is_open() : socket_.is_open();
  }
  template <class Option>
  void set_option(const Option& option, error_code& ec) {
    socket().set_option(option, ec);
  }
  /// Bytes readable now without blocking. Over TLS always 0: the bytes on the socket are
  /// records, and decrypted data waiting inside the TLS stream cannot be read synchronously.
  [[nodiscard]] std::size_t available(error_code& ec) {
    if (tls_) return 0;
    return socket_.available(ec);
  }
  /// Synchronous read of what available() reported; plain connections only.
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, error_code& ec) {
    if (tls_) {
      ec = asio::error::operation_not_supported;
      return 0;
    }
    return socket_.read_some(buffers, ec);
  }
  [[nodiscard]] auto remote_endpoint(error_code& ec) const {
    return tls_ ? tls_->next_layer().remote_endpoint(ec) : socket_.remote_endpoint(ec);
  }

 private:
  Socket socket_;  // moved into tls_ (and left closed) once TLS starts
  std::unique_ptr<TlsStream> tls_;
};

/// A client's connection to pgflip.
using ClientStream = MaybeTlsStream<tcp::socket>;
/// pgflip's connection to a server (TCP or a Unix socket).
using ServerStream = MaybeTlsStream<StreamSocket>;

}  // namespace pgflip::proxy
