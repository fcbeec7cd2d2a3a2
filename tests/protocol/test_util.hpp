// Small helpers shared by the protocol tests: byte literals and result inspection.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/codec.hpp"

namespace pgflip::protocol::test {

/// Bytes from a list of values 0-255.
inline std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) out.push_back(static_cast<char>(v));
  return out;
}

/// Big-endian Int32 as 4 bytes.
inline std::string be32(std::uint32_t v) {
  return bytes({static_cast<int>(v >> 24), static_cast<int>((v >> 16) & 0xff),
                static_cast<int>((v >> 8) & 0xff), static_cast<int>(v & 0xff)});
}

/// Big-endian Int16 as 2 bytes.
inline std::string be16(std::uint16_t v) {
  return bytes({static_cast<int>(v >> 8), static_cast<int>(v & 0xff)});
}

/// A typed message with a correct length field around `body`.
inline std::string frame(char type, std::string_view body) {
  return std::string(1, type) + be32(static_cast<std::uint32_t>(body.size() + 4)) +
         std::string(body);
}

/// A string with embedded NULs, e.g. z("user\0alice\0").
template <std::size_t N>
std::string z(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

template <class Msg>
bool need_more(const DecodeResult<Msg>& result) {
  return std::holds_alternative<NeedMoreData>(result);
}

template <class Msg>
const Decoded<Msg>* decoded(const DecodeResult<Msg>& result) {
  return std::get_if<Decoded<Msg>>(&result);
}

template <class Msg>
const DecodeError* error(const DecodeResult<Msg>& result) {
  return std::get_if<DecodeError>(&result);
}

}  // namespace pgflip::protocol::test
