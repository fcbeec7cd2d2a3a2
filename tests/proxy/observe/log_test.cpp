// The log line formatter: text and JSON lines, connection ids, escaping, masked secrets.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>

#include "proxy/observe/log.hpp"

namespace plog = pgflip::log;

namespace {

std::string json_string(std::string_view text) {
  std::string out;
  plog::append_json_string(text, out);
  return out;
}

// 2025-01-31T12:34:56.789Z
std::chrono::system_clock::time_point fixed_time() {
  using namespace std::chrono;
  return sys_days{year{2025} / January / 31} + hours{12} + minutes{34} + seconds{56} +
         milliseconds{789};
}

std::string line(plog::Format format, spdlog::level::level_enum level, std::string_view text,
                 const plog::Conn* conn) {
  spdlog::details::log_msg message(fixed_time(), spdlog::source_loc{}, "pgflip", level,
                                   spdlog::string_view_t(text.data(), text.size()));
  return plog::format_line(format, message, conn);
}

}  // namespace

TEST_CASE("JSON strings: quotes, backslashes and control characters are escaped") {
  CHECK(json_string("plain") == R"("plain")");
  CHECK(json_string(R"(say "hi")") == R"("say \"hi\"")");
  CHECK(json_string(R"(C:\dir)") == R"("C:\\dir")");
  CHECK(json_string("a\nb\rc\td") == R"("a\nb\rc\td")");
  CHECK(json_string("\b\f") == R"("\b\f")");
  CHECK(json_string(std::string_view("nul\0x", 5)) == R"("nul\u0000x")");
  CHECK(json_string("\x01\x1f\x7f") == R"("\u0001\u001f\u007f")");
  CHECK(json_string("") == R"("")");
}

TEST_CASE("JSON strings: UTF-8 passes through, invalid bytes become U+FFFD") {
  CHECK(json_string("caf\xc3\xa9") == "\"caf\xc3\xa9\"");                     // é
  CHECK(json_string("\xe2\x82\xac") == "\"\xe2\x82\xac\"");                   // €
  CHECK(json_string("\xf0\x9f\x90\x98") == "\"\xf0\x9f\x90\x98\"");           // 🐘
  CHECK(json_string("\xff") == R"("\ufffd")");                                // never UTF-8
  CHECK(json_string("a\xc3") == R"("a\ufffd")");                              // truncated
  CHECK(json_string("\xc0\xaf") == R"("\ufffd\ufffd")");                      // overlong '/'
  CHECK(json_string("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");            // surrogate
  CHECK(json_string("\xf4\x90\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");  // > U+10FFFF
  CHECK(json_string("\xc3\xa9\xff\xc3\xa9") == "\"\xc3\xa9\\ufffd\xc3\xa9\"");
}

TEST_CASE("a JSON line has ts (UTC, RFC 3339, ms), level, msg and the connection") {
  const plog::Conn conn(42, "127.0.0.1:5555", "alice", "shop");
  CHECK(line(plog::Format::kJson, spdlog::level::info, "closed", &conn) ==
        R"({"ts":"2025-01-31T12:34:56.789Z","level":"info","msg":"closed","conn":42,)"
        R"("peer":"127.0.0.1:5555","user":"alice","database":"shop"})"
        "\n");
  // Not about a session: no conn at all.
  CHECK(line(plog::Format::kJson, spdlog::level::warn, "a \"quote\"\nnext", nullptr) ==
        R"({"ts":"2025-01-31T12:34:56.789Z","level":"warn","msg":"a \"quote\"\nnext"})"
        "\n");
  // Fields not known yet are left out.
  const plog::Conn early(7);
  CHECK(line(plog::Format::kJson, spdlog::level::err, "x", &early) ==
        R"({"ts":"2025-01-31T12:34:56.789Z","level":"error","msg":"x","conn":7})"
        "\n");
}

TEST_CASE("a text line renders the connection as [cN]") {
  const plog::Conn conn(42, "127.0.0.1:5555");
  const std::string text = line(plog::Format::kText, spdlog::level::info, "closed", &conn);
  // Local time: check the shape, not the hour.
  REQUIRE(text.size() > 24);
  CHECK(text[4] == '-');
  CHECK(text[10] == ' ');
  CHECK(text.substr(19, 5) == ".789 ");
  CHECK(text.substr(24) == "info [c42] closed\n");
  CHECK(line(plog::Format::kText, spdlog::level::warn, "plain", nullptr).substr(24) ==
        "warning plain\n");
}

TEST_CASE("password= values are masked, in text and JSON lines") {
  CHECK(plog::mask_secrets("host=db password=s3cret user=x") == "host=db password=******** user=x");
  CHECK(plog::mask_secrets("host=db PASSWORD = 'two words' port=1") ==
        "host=db PASSWORD = ******** port=1");
  CHECK(plog::mask_secrets(R"(password='it\'s' x)") == "password=******** x");
  CHECK(plog::mask_secrets("PGPASSWORD=abc") == "PGPASSWORD=********");
  CHECK(plog::mask_secrets("a password=x, password=y") == "a password=********, password=********");
  // Nothing to mask.
  CHECK(plog::mask_secrets("password authentication failed for user \"a\"") ==
        "password authentication failed for user \"a\"");
  CHECK(plog::mask_secrets("password=") == "password=");
  CHECK(plog::mask_secrets("") == "");
  const std::string json =
      line(plog::Format::kJson, spdlog::level::info, "conninfo host=b password=hunter2", nullptr);
  CHECK(json.find("hunter2") == std::string::npos);
  CHECK(json.find("password=********") != std::string::npos);
  const std::string text =
      line(plog::Format::kText, spdlog::level::info, "conninfo host=b password=hunter2", nullptr);
  CHECK(text.find("hunter2") == std::string::npos);
}

TEST_CASE("the facade formats nothing below the level, and tags the line with the conn") {
  std::string captured;
  struct Sink final : spdlog::sinks::base_sink<spdlog::details::null_mutex> {
    explicit Sink(std::string& out) : out_(out) {}
    void sink_it_(const spdlog::details::log_msg& message) override {
      spdlog::memory_buf_t buffer;
      formatter_->format(message, buffer);
      out_.append(buffer.data(), buffer.size());
    }
    void flush_() override {}
    std::string& out_;
  };
  const auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("test", std::make_shared<Sink>(captured));
  spdlog::set_default_logger(logger);
  plog::set_format(plog::Format::kJson);
  plog::set_level("info");

  plog::debug(plog::Conn(5), "hidden {}", 1);
  CHECK(captured.empty());
  plog::info(plog::Conn(5), "shown {}", 1);
  CHECK(captured.find(R"("msg":"shown 1","conn":5)") != std::string::npos);
  captured.clear();
  spdlog::info("not a session line");
  CHECK(captured.find("conn") == std::string::npos);
  plog::set_format(plog::Format::kText);
  plog::warn(plog::Conn(9), "text now");
  CHECK(captured.find("warning [c9] text now\n") != std::string::npos);
  spdlog::set_default_logger(previous);
}
