// MD5 password hashing as PostgreSQL's AuthenticationMD5Password exchange expects it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgflip::protocol {

/// Lower-case hex MD5 of `data` (32 characters).
[[nodiscard]] std::string md5_hex(std::string_view data);

/// The stored secret PostgreSQL keeps for an MD5 password: "md5" + md5_hex(password + user).
[[nodiscard]] std::string md5_secret(std::string_view user, std::string_view password);

/// True for "md5" followed by 32 lower-case hex digits.
[[nodiscard]] bool is_md5_secret(std::string_view secret);

/// The answer to AuthenticationMD5Password:
/// "md5" + md5_hex(md5_hex(password + user) + salt).
[[nodiscard]] std::string md5_password_response(std::string_view user, std::string_view password,
                                                std::array<std::uint8_t, 4> salt);

/// The same answer computed from a stored "md5<32 hex>" secret instead of the password.
/// Returns an empty string if `md5_secret` is not of that form.
[[nodiscard]] std::string md5_response_from_secret(std::string_view md5_secret,
                                                   std::array<std::uint8_t, 4> salt);

/// Server side: whether `response` (the client's password message, without its NUL) is
/// the right answer for `md5_secret` and `salt`. Compares in constant time.
[[nodiscard]] bool verify_md5_response(std::string_view md5_secret,
                                       std::array<std::uint8_t, 4> salt, std::string_view response);

}  // namespace pgflip::protocol
