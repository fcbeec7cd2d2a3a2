// The users clients log in as: PgBouncer's userlist.txt format and the secrets it holds.
#include "proxy/frontdoor/users.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <utility>

#include "protocol/md5.hpp"

namespace pgflip::proxy {

namespace {

/// Reads one '"'-quoted field at `pos` ('""' is a quote); nullopt at a missing or
/// unterminated quote. `pos` ends after the closing quote.
std::optional<std::string> quoted_field(std::string_view line, std::size_t& pos) {
  if (pos >= line.size() || line[pos] != '"') return std::nullopt;
  std::string value;
  for (++pos; pos < line.size(); ++pos) {
    if (line[pos] != '"') {
      value += line[pos];
      continue;
    }
    if (pos + 1 < line.size() && line[pos + 1] == '"') {
      value += '"';
      ++pos;
      continue;
    }
    ++pos;
    return value;
  }
  return std::nullopt;
}

void skip_spaces(std::string_view line, std::size_t& pos) {
  while (pos < line.size() && std::isspace(static_cast<unsigned char>(line[pos]))) ++pos;
}

}  // namespace

UserSecret classify_secret(std::string text) {
  UserSecret secret;
  if (protocol::is_md5_secret(text)) {
    secret.kind = UserSecret::Kind::kMd5;
  } else if (auto scram = protocol::parse_scram_secret(text)) {
    secret.kind = UserSecret::Kind::kScram;
    secret.scram = std::move(*scram);
  }
  secret.text = std::move(text);
  return secret;
}

std::shared_ptr<UserStore> UserStore::parse(std::string_view text, std::string_view source) {
  auto store = std::make_shared<UserStore>();
  std::map<std::string, std::size_t, std::less<>> first_line;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    ++number;
    const auto error = [&](const std::string& reason) {
      return UsersFileError(std::string(source) + ":" + std::to_string(number) + ": " + reason);
    };
    std::size_t pos = 0;
    skip_spaces(line, pos);
    if (pos == line.size() || line[pos] == ';' || line[pos] == '#') continue;
    if (line.find('\0') != std::string_view::npos) throw error("contains a NUL character");
    if (line[pos] != '"') throw error("expected a user name in double quotes");
    auto user = quoted_field(line, pos);
    if (!user) throw error("the user name's closing '\"' is missing");
    if (user->empty()) throw error("the user name is empty");
    skip_spaces(line, pos);
    if (pos == line.size() || line[pos] != '"') {
      throw error("expected the secret in double quotes after the user name");
    }
    auto secret = quoted_field(line, pos);
    if (!secret) throw error("the secret's closing '\"' is missing");
    if (auto seen = first_line.find(*user); seen != first_line.end()) {
      throw error("user \"" + *user + "\" is listed twice (also line " +
                  std::to_string(seen->second) + ")");
    }
    first_line.emplace(*user, number);
    store->users_.emplace(std::move(*user), classify_secret(std::move(*secret)));
  }
  return store;
}

std::shared_ptr<UserStore> UserStore::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsersFileError(path + ": cannot read the users file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw UsersFileError(path + ": cannot read the users file: read error");
  return parse(text, path);
}

const UserSecret* UserStore::find(std::string_view user) const {
  const auto found = users_.find(user);
  return found == users_.end() ? nullptr : &found->second;
}

bool UserStore::same_users(const UserStore& other) const {
  return std::equal(users_.begin(), users_.end(), other.users_.begin(), other.users_.end(),
                    [](const auto& a, const auto& b) {
                      return a.first == b.first && a.second.text == b.second.text;
                    });
}

protocol::ScramSecret UserStore::scram_for_plaintext(const std::string& user,
                                                     const std::string& password) const {
  {
    std::lock_guard lock(derived_mutex_);
    if (auto found = derived_.find(user); found != derived_.end()) return found->second;
  }
  // Derived outside the lock: PBKDF2 takes milliseconds and other logins must not wait.
  protocol::ScramSecret secret = protocol::make_scram_secret(password);
  std::lock_guard lock(derived_mutex_);
  return derived_.emplace(user, std::move(secret)).first->second;
}

}  // namespace pgflip::proxy
