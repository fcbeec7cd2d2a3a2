// Asio aliases and completion tokens shared by the proxy's coroutines.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

namespace pgflip::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using asio::awaitable;
using error_code = boost::system::error_code;
/// The server side may be TCP or a Unix socket; the generic protocol covers both.
using StreamSocket = asio::generic::stream_protocol::socket;

/// Data-plane operations report errors as values, never as exceptions.
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace pgflip::proxy
