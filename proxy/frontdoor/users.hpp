// The users clients log in as: PgBouncer's userlist.txt format and the secrets it holds.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "protocol/scram.hpp"

namespace pgflip::proxy {

/// One user's secret, as in PgBouncer's auth_file or pg_authid.rolpassword.
struct UserSecret {
  enum class Kind {
    kPlaintext,  // the password itself (may be empty: then nobody can log in with it)
    kMd5,        // "md5" + md5(password + user)
    kScram,      // "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"
  };
  Kind kind = Kind::kPlaintext;
  std::string text;                            // exactly as written
  std::optional<protocol::ScramSecret> scram;  // parsed, for kScram
};

/// Sorts a secret the way PgBouncer and PostgreSQL do: an MD5 secret, a SCRAM secret, or
/// else a plaintext password.
[[nodiscard]] UserSecret classify_secret(std::string text);

/// A users file that cannot be used: what() is "<file>:<line>: <reason>".
class UsersFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The users of a userlist.txt. Thread-safe once built.
class UserStore {
 public:
  /// Parses userlist.txt text: per line `"user" "secret"` (a '"' inside a field is written
  /// '""'; anything after the second field is ignored), blank lines, and comment lines
  /// starting with ';' or '#'. Throws UsersFileError naming `source` and the line.
  [[nodiscard]] static std::shared_ptr<UserStore> parse(std::string_view text,
                                                        std::string_view source);
  /// Reads and parses the file at `path`. Throws UsersFileError.
  [[nodiscard]] static std::shared_ptr<UserStore> load(const std::string& path);

  /// The user's secret, or nullptr if the file does not list the user.
  [[nodiscard]] const UserSecret* find(std::string_view user) const;
  [[nodiscard]] std::size_t size() const { return users_.size(); }
  /// Whether `other` lists the same users with the same secrets (a reload compares them).
  [[nodiscard]] bool same_users(const UserStore& other) const;

  /// A SCRAM secret for a plaintext password, derived once per user (PBKDF2 is slow) with a
  /// random salt and cached.
  [[nodiscard]] protocol::ScramSecret scram_for_plaintext(const std::string& user,
                                                          const std::string& password) const;

 private:
  std::map<std::string, UserSecret, std::less<>> users_;
  mutable std::mutex derived_mutex_;
  mutable std::map<std::string, protocol::ScramSecret, std::less<>> derived_;
};

}  // namespace pgflip::proxy
