// posix_spawn-based process runner: one poll() loop feeds stdin and drains stdout/stderr.
#include "replication/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <system_error>

extern char** environ;

namespace pgflip::replication {
namespace {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

void make_pipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe2");
  read_end.fd = fds[0];
  write_end.fd = fds[1];
}

/// write() that turns a closed reader into EPIPE without raising SIGPIPE in this process.
ssize_t write_no_sigpipe(int fd, std::string_view data) {
  sigset_t pipe_set;
  sigset_t old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  const ssize_t put = ::write(fd, data.data(), data.size());
  const int saved = errno;
  if (put < 0 && saved == EPIPE) {
    const timespec zero{0, 0};
    (void)sigtimedwait(&pipe_set, nullptr, &zero);  // consume the SIGPIPE we raised
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return put;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& extra_env,
                          std::string_view input, std::chrono::steady_clock::time_point deadline) {
  // Environment: ours, with extra_env overriding.
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : extra_env) env[k] = v;
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  argp.reserve(args.size() + 1);
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  Fd in_r, in_w, out_r, out_w, err_r, err_w;
  make_pipe(in_r, in_w);
  make_pipe(out_r, out_w);
  make_pipe(err_r, err_w);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_w.fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_w.fd, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "posix_spawn " + argv[0]);
  in_r.reset();
  out_w.reset();
  err_w.reset();

  // Non-blocking stdin: a large input must not stall the loop that drains the child's output.
  ::fcntl(in_w.fd, F_SETFL, ::fcntl(in_w.fd, F_GETFL) | O_NONBLOCK);
  std::size_t written = 0;
  if (input.empty()) in_w.reset();

  ProcessResult result;
  char buffer[65536];
  while (out_r.fd >= 0 || err_r.fd >= 0) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      ::kill(pid, SIGKILL);
      result.timed_out = true;
      break;
    }
    const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_r.fd >= 0) fds[out_i = n++] = {out_r.fd, POLLIN, 0};
    if (err_r.fd >= 0) fds[err_i = n++] = {err_r.fd, POLLIN, 0};
    if (in_w.fd >= 0) fds[in_i = n++] = {in_w.fd, POLLOUT, 0};
    const int ready = ::poll(fds, static_cast<nfds_t>(n),
                             static_cast<int>(std::min<long long>(wait_ms.count() + 1, 1000)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      ::kill(pid, SIGKILL);
      break;
    }
    auto drain = [&](int index, Fd& fd, std::string& sink) {
      if (index < 0 || fds[index].revents == 0) return;
      const ssize_t got = ::read(fd.fd, buffer, sizeof buffer);
      if (got > 0) {
        sink.append(buffer, static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        fd.reset();
      }
    };
    drain(out_i, out_r, result.out);
    drain(err_i, err_r, result.err);
    if (in_i >= 0 && fds[in_i].revents != 0) {
      if ((fds[in_i].revents & (POLLERR | POLLHUP)) != 0) {
        in_w.reset();
      } else {
        const ssize_t put = write_no_sigpipe(in_w.fd, input.substr(written));
        if (put > 0) written += static_cast<std::size_t>(put);
        if ((put < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
          in_w.reset();
        }
      }
    }
  }
  in_w.reset();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace pgflip::replication
