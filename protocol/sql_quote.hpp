// SQL identifier and literal quoting for the statements pgflip builds (replication, switchover).
#pragma once

#include <string>
#include <string_view>

namespace pgflip::protocol {

/// Identifier quoting as PQescapeIdentifier does it: always double-quoted, '"' doubled.
/// pgflip's connections run with client_encoding UTF8, where this is exact.
[[nodiscard]] std::string quote_ident(std::string_view name);

/// A string literal for a server with standard_conforming_strings on ('' doubled; E'' with
/// doubled backslashes when the value has a backslash).
[[nodiscard]] std::string quote_literal(std::string_view value);

}  // namespace pgflip::protocol
