// FrameScanner: watched messages are reported whole, in order, however the stream is split.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "protocol/frame_scanner.hpp"

using pgflip::protocol::FrameScanner;
using pgflip::protocol::ScanStatus;

namespace {

std::string frame(char type, const std::string& body) {
  std::string out(1, type);
  const auto length = static_cast<std::uint32_t>(body.size() + 4);
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((length >> shift) & 0xff));
  return out + body;
}

using Seen = std::vector<std::pair<char, std::string>>;

Seen scan_in_chunks(const std::string& stream, const std::vector<std::size_t>& cuts,
                    bool& boundary_at_end) {
  FrameScanner scanner(1 << 20);
  scanner.watch('Z');
  scanner.watch('S');
  Seen seen;
  std::size_t from = 0;
  auto record = [&](char type, std::string_view body) {
    seen.emplace_back(type, std::string(body));
  };
  for (std::size_t cut : cuts) {
    REQUIRE(scanner.scan(std::string_view(stream).substr(from, cut - from), record) ==
            ScanStatus::kOk);
    from = cut;
  }
  REQUIRE(scanner.scan(std::string_view(stream).substr(from), record) == ScanStatus::kOk);
  boundary_at_end = scanner.at_boundary();
  return seen;
}

}  // namespace

TEST_CASE("watched messages are reported whole at every split offset") {
  const std::string big(70000, 'x');
  const std::string stream =
      frame('T', "rowdesc") + frame('D', big) + frame('S', std::string("TimeZone\0UTC\0", 13)) +
      frame('C', "SELECT 1") + frame('Z', "I") + frame('S', "") + frame('Z', "T");
  const Seen expected = {
      {'S', std::string("TimeZone\0UTC\0", 13)}, {'Z', "I"}, {'S', ""}, {'Z', "T"}};
  for (std::size_t cut = 0; cut <= stream.size();
       cut += (cut < 20 || stream.size() - cut < 80) ? 1 : 997) {
    bool boundary = false;
    CHECK(scan_in_chunks(stream, {cut}, boundary) == expected);
    CHECK(boundary);
  }
}

TEST_CASE("random chunkings give the same messages; partial streams are not at a boundary") {
  std::mt19937 rng(42);
  std::string stream;
  Seen expected;
  for (int i = 0; i < 200; ++i) {
    std::string body(rng() % 300, static_cast<char>('a' + i % 26));
    const char type = "DZSCT"[rng() % 5];
    stream += frame(type, body);
    if (type == 'Z' || type == 'S') expected.emplace_back(type, body);
  }
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> cuts;
    for (std::size_t pos = 0; pos < stream.size();) {
      pos += 1 + rng() % 64;
      if (pos < stream.size()) cuts.push_back(pos);
    }
    bool boundary = false;
    CHECK(scan_in_chunks(stream, cuts, boundary) == expected);
    CHECK(boundary);
  }
  bool boundary = true;
  scan_in_chunks(stream.substr(0, stream.size() - 1), {}, boundary);
  CHECK_FALSE(boundary);
  scan_in_chunks(stream + std::string("Z\0\0", 3), {}, boundary);
  CHECK_FALSE(boundary);
}

TEST_CASE("bad lengths are errors, also when the header is split") {
  for (std::size_t cut = 0; cut <= 5; ++cut) {
    FrameScanner scanner(1000);
    auto ignore = [](char, std::string_view) {};
    const std::string too_short("Q\0\0\0\3", 5);
    const std::string too_long("Q\x7f\xff\xff\xff", 5);
    const std::string huge("Q\x80\0\0\0", 5);
    for (const auto& [bytes, status] : {std::pair{too_short, ScanStatus::kInvalidLength},
                                        std::pair{too_long, ScanStatus::kMessageTooLarge},
                                        std::pair{huge, ScanStatus::kMessageTooLarge}}) {
      FrameScanner s(1000);
      // The error shows as soon as the whole header has been seen, not before.
      const ScanStatus first = s.scan(std::string_view(bytes).substr(0, cut), ignore);
      CHECK(first == (cut == 5 ? status : ScanStatus::kOk));
      if (cut < 5) CHECK(s.scan(std::string_view(bytes).substr(cut), ignore) == status);
    }
    // Exactly at the limit is fine.
    CHECK(scanner.scan(frame('d', std::string(1000, 'y')), ignore) == ScanStatus::kOk);
    CHECK(scanner.at_boundary());
  }
}
