// Random-input robustness: decoders and SCRAM parsers must answer every buffer without crashing.
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "protocol/messages.hpp"
#include "protocol/scram.hpp"
#include "protocol/startup.hpp"
#include "test_util.hpp"

using namespace pgflip::protocol;
using namespace pgflip::protocol::test;

namespace {

// Valid messages to mutate, so that random bytes also reach deep into the body parsers.
std::vector<std::string> seeds() {
  std::vector<std::string> out;
  const auto add = [&](const auto& message) {
    std::string bytes;
    encode(message, bytes);
    out.push_back(std::move(bytes));
  };
  StartupMessage startup;
  startup.parameters = {{"user", "u"}, {"database", "d"}};
  add(startup);
  add(SSLRequest{});
  add(CancelRequest{1, 2});
  add(Bind{"p", "s", {1}, {std::string("ab"), std::nullopt}, {0, 1}});
  add(Parse{"s", "select $1", {23}});
  add(FunctionCall{1, {0}, {std::string("x")}, 0});
  add(Query{"select 1"});
  add(Execute{"p", 10});
  add(Close{'S', "s"});
  add(Authentication{10, z("SCRAM-SHA-256\0\0")});
  add(Authentication{5, "salt"});
  add(DataRow{{std::string("1"), std::nullopt, std::string("abc")}});
  add(RowDescription{{{"id", 1, 2, 23, 4, -1, 0}, {"n", 0, 0, 25, -1, -1, 0}}});
  add(make_error("ERROR", "42P01", "nope", "detail"));
  add(NegotiateProtocolVersion{0, {"_pq_.a"}});
  add(NotificationResponse{1, "c", "p"});
  add(CopyInResponse{0, {0, 1}});
  add(ParameterDescription{{23, 25}});
  add(ReadyForQuery{'I'});
  add(SASLInitialResponse{"SCRAM-SHA-256", "n,,n=,r=abc"});
  return out;
}

template <class Msg>
bool sane(const DecodeResult<Msg>& result, std::string_view buf) {
  if (result.valueless_by_exception()) return false;
  if (const auto* d = std::get_if<Decoded<Msg>>(&result)) {
    return d->consumed > 0 && d->consumed <= buf.size();
  }
  return true;
}

}  // namespace

TEST_CASE("200k random and mutated buffers through every decoder") {
  std::mt19937_64 rng(0x5eed'9f11'b0a7ULL);
  const auto seed_messages = seeds();
  const std::string types = "BCdcfDEHFPpQSXRK23GHWDIEVvnNAtS1sZTy";
  std::size_t insane = 0;
  std::size_t outcomes[3] = {0, 0, 0};

  for (int i = 0; i < 200'000; ++i) {
    std::string buf;
    switch (rng() % 4) {
      case 0: {  // pure noise
        buf.resize(rng() % 64);
        for (char& c : buf) c = static_cast<char>(rng());
        break;
      }
      case 1: {  // a plausible header with a small length and a noisy body
        const std::size_t body = rng() % 48;
        buf.push_back(types[rng() % types.size()]);
        buf += be32(static_cast<std::uint32_t>(body + 4 + (rng() % 8 == 0 ? rng() % 5 : 0)));
        for (std::size_t k = 0; k < body; ++k)
          buf.push_back(static_cast<char>(rng() % 4 == 0 ? 0 : rng()));
        break;
      }
      default: {  // a valid message with a few bytes changed, cut or added
        buf = seed_messages[rng() % seed_messages.size()];
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits && !buf.empty(); ++e) {
          switch (rng() % 4) {
            case 0:
              buf[rng() % buf.size()] = static_cast<char>(rng());
              break;
            case 1:
              buf.resize(rng() % buf.size());
              break;
            case 2:
              buf.insert(buf.begin() + static_cast<std::ptrdiff_t>(rng() % buf.size()),
                         static_cast<char>(rng()));
              break;
            default:
              buf[rng() % buf.size()] ^= static_cast<char>(1u << (rng() % 8));
              break;
          }
        }
        break;
      }
    }
    // Run the buffer through copies of exactly its size so ASan sees any overread.
    const std::vector<char> exact(buf.begin(), buf.end());
    const std::string_view view(exact.data(), exact.size());

    const auto header = decode_header(view, 1 << 16);
    const auto startup = decode_startup(view);
    const auto frontend = decode_frontend(view, 1 << 16);
    const auto backend = decode_backend(view, 1 << 16);
    insane +=
        !sane(header, view) + !sane(startup, view) + !sane(frontend, view) + !sane(backend, view);
    ++outcomes[frontend.index()];
    ++outcomes[backend.index()];

    if (view.size() > kHeaderSize) {
      const auto body = view.substr(kHeaderSize);
      (void)parse_sasl_initial_response(body);
      (void)parse_password(body);
      (void)sasl_mechanisms(body);
    }
  }
  CHECK(insane == 0);
  // The mix reaches all three outcomes often, or the test proves little.
  CHECK(outcomes[0] > 10'000);
  CHECK(outcomes[1] > 10'000);
  CHECK(outcomes[2] > 10'000);
}

TEST_CASE("random SCRAM messages never break the client or the server") {
  std::mt19937_64 rng(7677);
  const std::string alphabet = "nyp=,ra-zAZ09+/cvsieSCRAM";
  const ScramSecret secret = make_scram_secret("pencil", "0123456789abcdef", 16);
  int accepted = 0;
  for (int i = 0; i < 5'000; ++i) {
    std::string message;
    const std::size_t size = rng() % 40;
    for (std::size_t k = 0; k < size; ++k) {
      message.push_back(rng() % 8 == 0 ? static_cast<char>(rng())
                                       : alphabet[rng() % alphabet.size()]);
    }
    ScramSha256Server server(secret, "srv");
    const auto first = server.handle_client_first(kScramSha256, "n,,n=,r=" + message);
    accepted += std::holds_alternative<std::string>(first);
    (void)server.handle_client_final(message);

    ScramSha256Client client("pencil", "cli");
    (void)client.handle_server_first("r=cli" + message);
    (void)client.verify_server_final(message);
    (void)parse_scram_secret("SCRAM-SHA-256$" + message);
    (void)base64_decode(message);
  }
  CHECK(accepted > 0);
}
