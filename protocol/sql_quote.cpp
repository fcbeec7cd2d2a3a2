// SQL identifier and literal quoting for the statements pgflip builds (replication, switchover).
#include "protocol/sql_quote.hpp"

namespace pgflip::protocol {

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string quote_literal(std::string_view value) {
  const bool has_backslash = value.find('\\') != std::string_view::npos;
  std::string out = has_backslash ? "E'" : "'";
  for (char c : value) {
    if (c == '\'' || (has_backslash && c == '\\')) out += c;
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace pgflip::protocol
