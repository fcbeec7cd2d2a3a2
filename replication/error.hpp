// ReplicationError: which database, which step, and what the server (or a tool) said.
#pragma once

#include <stdexcept>
#include <string>

namespace pgflip::replication {

enum class ErrorKind {
  kServer,      // the server answered with an error (sqlstate set)
  kConnection,  // could not connect, or the connection broke
  kTimeout,     // a deadline passed while waiting for a condition
  kProcess,     // pg_dump / pg_dumpall / psql failed
  kState,       // the servers are not in a state the step can work with
};

/// Thrown by every manager operation; what() reads "[db] step: message (SQLSTATE xxxxx)".
class ReplicationError : public std::runtime_error {
 public:
  ReplicationError(ErrorKind kind, std::string database, std::string step, std::string message,
                   std::string sqlstate = {}, std::string detail = {});

  [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }
  [[nodiscard]] const std::string& database() const noexcept { return database_; }
  [[nodiscard]] const std::string& step() const noexcept { return step_; }
  /// The server's (or tool's) primary message, without the database/step decoration.
  [[nodiscard]] const std::string& server_message() const noexcept { return message_; }
  [[nodiscard]] const std::string& sqlstate() const noexcept { return sqlstate_; }
  /// DETAIL and HINT lines of the server error, or a tool's stderr.
  [[nodiscard]] const std::string& detail() const noexcept { return detail_; }

 private:
  ErrorKind kind_;
  std::string database_;
  std::string step_;
  std::string message_;
  std::string sqlstate_;
  std::string detail_;
};

}  // namespace pgflip::replication
