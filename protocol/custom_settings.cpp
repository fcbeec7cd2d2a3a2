// Finds the dotted setting names a statement can set, with a scanner that skips what it can.
#include "protocol/custom_settings.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>

namespace pgflip::protocol {

namespace {

bool ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

/// Skips whitespace and comments (`-- ...` to the line's end, `/* ... */`).
std::size_t skip_space(std::string_view sql, std::size_t at) {
  while (at < sql.size()) {
    const char c = sql[at];
    if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      ++at;
    } else if (sql.substr(at, 2) == "--") {
      at = sql.find('\n', at);
      if (at == std::string_view::npos) return sql.size();
    } else if (sql.substr(at, 2) == "/*") {
      at = sql.find("*/", at + 2);
      if (at == std::string_view::npos) return sql.size();
      at += 2;
    } else {
      break;
    }
  }
  return at;
}

/// Whether the keyword `word` (lower case) is at `at`, followed by a non-identifier character.
bool keyword_at(std::string_view sql, std::size_t at, std::string_view word) {
  if (sql.size() - at < word.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (lower(sql[at + i]) != word[i]) return false;
  }
  return at + word.size() == sql.size() || !ident_char(sql[at + word.size()]);
}

/// The text quoted at `at` (a '"' identifier or a '\'' literal, the quote doubled inside),
/// lower-cased if `fold`; moves `at` past the closing quote. None when it is not closed.
std::optional<std::string> read_quoted(std::string_view sql, std::size_t& at, bool fold) {
  const char quote = sql[at];
  std::string text;
  for (++at; at < sql.size(); ++at) {
    if (sql[at] != quote) {
      text += fold ? lower(sql[at]) : sql[at];
    } else if (at + 1 < sql.size() && sql[at + 1] == quote) {
      text += quote;
      ++at;
    } else {
      ++at;  // the closing quote
      return text;
    }
  }
  return std::nullopt;
}

/// A possibly qualified name (`a.b`, `"A".b`) at `at`: its parts joined with '.', bare parts
/// lower-cased as PostgreSQL folds them. Empty when there is none.
std::string read_name(std::string_view sql, std::size_t at) {
  std::string name;
  for (;;) {
    if (at < sql.size() && sql[at] == '"') {
      auto part = read_quoted(sql, at, /*fold=*/false);
      if (!part) return {};
      name += *part;
    } else {
      const std::size_t start = at;
      while (at < sql.size() && ident_char(sql[at])) name += lower(sql[at++]);
      if (at == start) return {};
    }
    if (at >= sql.size() || sql[at] != '.') return name;
    name += '.';
    ++at;
  }
}

void add(std::string name, std::vector<std::string>& names) {
  if (name.find('.') == std::string::npos || name.front() == '.' || name.back() == '.') return;
  if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
}

/// `SET [SESSION | LOCAL] name` or `RESET name` at the statement start `at`.
void note_statement(std::string_view sql, std::size_t at, std::vector<std::string>& names) {
  at = skip_space(sql, at);
  std::size_t after = 0;
  if (keyword_at(sql, at, "set")) {
    after = at + 3;
  } else if (keyword_at(sql, at, "reset")) {
    after = at + 5;
  } else {
    return;
  }
  at = skip_space(sql, after);
  for (std::string_view scope : {"session", "local"}) {
    if (keyword_at(sql, at, scope)) {
      const std::size_t next = skip_space(sql, at + scope.size());
      // "SET SESSION AUTHORIZATION", "SET SESSION CHARACTERISTICS": not a setting name.
      if (next < sql.size() && (ident_char(sql[next]) || sql[next] == '"')) at = next;
      break;
    }
  }
  add(read_name(sql, at), names);
}

/// `set_config ( 'name'` at each "set_config" in `sql`, whatever its case.
void note_set_config(std::string_view sql, std::vector<std::string>& names) {
  constexpr std::string_view kFunction = "set_config";
  for (std::size_t at = 0; at + kFunction.size() <= sql.size(); ++at) {
    if (lower(sql[at]) != 's' || !keyword_at(sql, at, kFunction)) continue;
    if (at > 0 && ident_char(sql[at - 1])) continue;
    std::size_t p = skip_space(sql, at + kFunction.size());
    if (p >= sql.size() || sql[p] != '(') continue;
    p = skip_space(sql, p + 1);
    if (p >= sql.size() || sql[p] != '\'') continue;
    if (auto name = read_quoted(sql, p, /*fold=*/true)) add(std::move(*name), names);
  }
}

}  // namespace

void note_custom_settings(std::string_view sql, std::vector<std::string>& names) {
  if (std::memchr(sql.data(), '.', sql.size()) == nullptr) return;
  note_statement(sql, 0, names);
  for (std::size_t semicolon = sql.find(';'); semicolon != std::string_view::npos;
       semicolon = sql.find(';', semicolon + 1)) {
    note_statement(sql, semicolon + 1, names);
  }
  note_set_config(sql, names);
}

}  // namespace pgflip::protocol
