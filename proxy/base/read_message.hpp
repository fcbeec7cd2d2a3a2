// Reading one whole protocol message from a stream: decode what is buffered, else read more.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "protocol/codec.hpp"
#include "proxy/base/asio.hpp"

namespace pgflip::proxy {

/// A whole message; or why there will be none: the buffered bytes can never decode
/// (DecodeError), or reading failed (the peer closed, the read was cancelled, ...).
template <class Msg>
using MessageRead = std::variant<Msg, protocol::DecodeError, error_code>;

namespace detail {
template <class Result>
struct DecodedMessage;
template <class Msg>
struct DecodedMessage<protocol::DecodeResult<Msg>> {
  using type = Msg;
};
}  // namespace detail

/// Returns the first message `decode` (string_view -> protocol::DecodeResult<Msg>, e.g.
/// protocol::decode_backend) finds at the front of `buffer`, reading from `stream` (at most
/// `chunk_size` bytes at a time) until there is one. The message's bytes are removed from
/// `buffer`; what follows them stays there for the next call. On a read error `buffer`
/// keeps every byte received.
template <class Stream, class Decode,
          class Msg = typename detail::DecodedMessage<
              std::invoke_result_t<Decode&, std::string_view>>::type>
[[nodiscard]] awaitable<MessageRead<Msg>> read_message(Stream& stream, std::string& buffer,
                                                       Decode decode,
                                                       std::size_t chunk_size = 4096) {
  for (;;) {
    auto result = decode(std::string_view(buffer));
    if (auto* decoded = std::get_if<protocol::Decoded<Msg>>(&result)) {
      Msg message = std::move(decoded->message);
      buffer.erase(0, decoded->consumed);
      co_return MessageRead<Msg>(std::in_place_index<0>, std::move(message));
    }
    if (auto* error = std::get_if<protocol::DecodeError>(&result)) {
      co_return MessageRead<Msg>(std::in_place_index<1>, std::move(*error));
    }
    const std::size_t have = buffer.size();
    buffer.resize(have + chunk_size);
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(buffer.data() + have, chunk_size),
                                                   use_nothrow);
    buffer.resize(have + n);
    if (ec) co_return MessageRead<Msg>(std::in_place_index<2>, ec);
  }
}

}  // namespace pgflip::proxy
