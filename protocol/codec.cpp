// The typed message header decoder and error code names.
#include "protocol/codec.hpp"

#include "protocol/wire.hpp"

namespace pgflip::protocol {

// https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
DecodeResult<Header> decode_header(std::string_view buf, std::size_t max_message_size) {
  if (buf.size() < kHeaderSize) return NeedMoreData{};
  WireReader reader(buf.substr(0, kHeaderSize));
  const char type = static_cast<char>(reader.u8());
  const std::uint32_t length = reader.u32();
  if (length < 4) {
    return DecodeError{
        ErrorCode::kInvalidLength,
        "invalid message length " + std::to_string(length) + " for type " + printable_type(type)};
  }
  if (length - 4 > max_message_size) {
    return DecodeError{ErrorCode::kMessageTooLarge,
                       "message of type " + printable_type(type) +
                           " too large: " + std::to_string(length - 4) + " bytes, limit " +
                           std::to_string(max_message_size)};
  }
  return Decoded<Header>{Header{type, length}, kHeaderSize};
}

std::string printable_type(char type) {
  const auto byte = static_cast<unsigned char>(type);
  if (byte >= 0x21 && byte < 0x7f) return std::string{'\'', type, '\''};
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string{'0', 'x', kHex[byte >> 4], kHex[byte & 0xf]};
}

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMessageTooLarge:
      return "message too large";
    case ErrorCode::kInvalidLength:
      return "invalid length";
    case ErrorCode::kMalformed:
      return "malformed message";
    case ErrorCode::kUnsupportedProtocol:
      return "unsupported protocol";
  }
  return "unknown error";
}

}  // namespace pgflip::protocol
