// Object names derived from the configured prefix; slot-safe database name folding.
#include "replication/names.hpp"

namespace pgflip::replication {
namespace {

constexpr std::size_t kMaxNameBytes = 63;  // NAMEDATALEN - 1: slot and subscription names

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

}  // namespace

bool valid_name_prefix(std::string_view prefix) {
  if (prefix.empty() || prefix.size() > 40) return false;
  if (!((prefix[0] >= 'a' && prefix[0] <= 'z') || prefix[0] == '_')) return false;
  for (char c : prefix) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

ObjectNames ObjectNames::for_prefix(std::string_view prefix) {
  ObjectNames names;
  names.prefix_ = std::string(prefix);
  names.schema = names.prefix_;
  names.publication = names.prefix_ + "_pub";
  names.event_trigger_end = names.prefix_ + "_ddl_end";
  names.event_trigger_drop = names.prefix_ + "_ddl_drop";
  return names;
}

std::string ObjectNames::subscription(std::string_view database, std::uint32_t blue_oid) const {
  const std::string oid = std::to_string(blue_oid);
  std::string folded;
  for (char c : database) {
    if (c >= 'A' && c <= 'Z') {
      folded += static_cast<char>(c - 'A' + 'a');
    } else {
      folded += is_name_char(c) ? c : '_';
    }
  }
  const std::size_t fixed = prefix_.size() + 1 + 1 + oid.size();  // "<prefix>_" + "_<oid>"
  const std::size_t room = kMaxNameBytes > fixed ? kMaxNameBytes - fixed : 0;
  if (folded.size() > room) folded.resize(room);
  return prefix_ + "_" + folded + "_" + oid;
}

}  // namespace pgflip::replication
