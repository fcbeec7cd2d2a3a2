// The durable record of which environment is active: the switchover's commit point.
#include "proxy/control/state_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pgflip::proxy {

namespace json = boost::json;

namespace {
[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}
}  // namespace

std::optional<ActiveState> load_active_state(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read state file " + path);
  std::stringstream text;
  text << in.rdbuf();
  json::error_code jec;
  const json::value value = json::parse(text.str(), jec);
  if (jec || !value.is_object())
    throw std::runtime_error("state file " + path + " is not valid JSON");
  const json::object& o = value.as_object();
  ActiveState state;
  if (!o.contains("active") || !o.at("active").is_string()) {
    throw std::runtime_error("state file " + path + " has no \"active\"");
  }
  state.active = std::string(o.at("active").as_string());
  if (state.active != "blue" && state.active != "green") {
    throw std::runtime_error("state file " + path + ": active must be blue or green");
  }
  if (o.contains("epoch") && o.at("epoch").is_int64()) {
    state.epoch = static_cast<std::uint64_t>(o.at("epoch").as_int64());
  }
  if (o.contains("switchover_id") && o.at("switchover_id").is_string()) {
    state.switchover_id = std::string(o.at("switchover_id").as_string());
  }
  if (o.contains("committed_at") && o.at("committed_at").is_string()) {
    state.committed_at = std::string(o.at("committed_at").as_string());
  }
  return state;
}

void store_active_state(const std::string& path, const ActiveState& state) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path directory = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(directory, ec);
  const std::string body =
      json::serialize(json::object{{"version", 1},
                                   {"active", state.active},
                                   {"epoch", static_cast<std::int64_t>(state.epoch)},
                                   {"switchover_id", state.switchover_id},
                                   {"committed_at", state.committed_at}}) +
      "\n";
  const std::string temp = path + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("cannot create " + temp);
  std::size_t written = 0;
  while (written < body.size()) {
    const ssize_t n = ::write(fd, body.data() + written, body.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      fail("cannot write " + temp);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("cannot fsync " + temp);
  }
  ::close(fd);
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("cannot rename " + temp + " to " + path);
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) fail("cannot open directory " + directory.string());
  const int rc = ::fsync(dir);
  ::close(dir);
  if (rc != 0) fail("cannot fsync directory " + directory.string());
}

}  // namespace pgflip::proxy
