// ReplicationError: formatting of the what() string.
#include "replication/error.hpp"

#include <utility>

namespace pgflip::replication {
namespace {

std::string compose(const std::string& database, const std::string& step,
                    const std::string& message, const std::string& sqlstate,
                    const std::string& detail) {
  std::string out;
  if (!database.empty()) out += "[" + database + "] ";
  out += step + ": " + message;
  if (!sqlstate.empty()) out += " (SQLSTATE " + sqlstate + ")";
  if (!detail.empty()) out += "\n" + detail;
  return out;
}

}  // namespace

ReplicationError::ReplicationError(ErrorKind kind, std::string database, std::string step,
                                   std::string message, std::string sqlstate, std::string detail)
    : std::runtime_error(compose(database, step, message, sqlstate, detail)),
      kind_(kind),
      database_(std::move(database)),
      step_(std::move(step)),
      message_(std::move(message)),
      sqlstate_(std::move(sqlstate)),
      detail_(std::move(detail)) {}

}  // namespace pgflip::replication
