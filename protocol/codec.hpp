// Decoder results shared by every pgflip::protocol decoder, and the 5-byte typed message header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace pgflip::protocol {

enum class ErrorCode {
  kMessageTooLarge,      // a length field above the caller's limit
  kInvalidLength,        // a length field that no message can have
  kMalformed,            // the body does not match its message format
  kUnsupportedProtocol,  // a startup packet asking for a protocol version other than 3.x
};

/// The buffer holds only part of a message; call again once more bytes arrived.
struct NeedMoreData {};

/// The bytes can never become a valid message; the connection should be closed.
struct DecodeError {
  ErrorCode code;
  std::string detail;
};

/// A whole message: `consumed` bytes from the front of the buffer (header included).
template <class Msg>
struct Decoded {
  Msg message;
  std::size_t consumed;
};

template <class Msg>
using DecodeResult = std::variant<NeedMoreData, Decoded<Msg>, DecodeError>;

inline constexpr std::size_t kHeaderSize = 5;
inline constexpr std::size_t kDefaultMaxMessageSize = std::size_t{256} * 1024 * 1024;

/// Header of a typed message.
struct Header {
  char type;
  std::uint32_t length;  // as on the wire: includes its own 4 bytes, not the type byte

  [[nodiscard]] std::size_t body_size() const { return length - 4; }
  [[nodiscard]] std::size_t message_size() const { return std::size_t{length} + 1; }
};

/// Reads the type byte and length of the message at the front of `buf`. NeedMoreData if
/// fewer than 5 bytes; DecodeError if the length is below 4 (kInvalidLength) or the body
/// (length - 4) is larger than `max_message_size` (kMessageTooLarge). On success
/// `consumed` is kHeaderSize. The body is not looked at.
[[nodiscard]] DecodeResult<Header> decode_header(
    std::string_view buf, std::size_t max_message_size = kDefaultMaxMessageSize);

/// The type byte for logs and error details: 'Q' when printable, else 0x05.
[[nodiscard]] std::string printable_type(char type);

/// A short name for an error code, for logs.
[[nodiscard]] std::string_view error_code_name(ErrorCode code);

}  // namespace pgflip::protocol
