// libFuzzer target (PGFLIP_FUZZ=ON, clang): protocol decoders and SCRAM parsers on any bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/frame_scanner.hpp"
#include "protocol/messages.hpp"
#include "protocol/saslprep.hpp"
#include "protocol/scram.hpp"
#include "protocol/startup.hpp"

using namespace pgflip::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view buf(reinterpret_cast<const char*>(data), size);
  (void)decode_header(buf, 1 << 20);
  (void)decode_startup(buf);
  (void)decode_frontend(buf, 1 << 20);
  (void)decode_backend(buf, 1 << 20);

  // The relay's hot-path scanner, fed in chunks whose sizes come from the first byte; every
  // watched body it hands over must lie inside the input.
  FrameScanner scanner(1 << 16);
  for (char type : {'Z', 'S', 'E', 'Q', 'X'}) scanner.watch(type);
  const std::size_t step = size == 0 ? 1 : 1 + data[0] % 17;
  for (std::size_t at = 0; at < size; at += step) {
    const auto status = scanner.scan(buf.substr(at, step), [&](char, std::string_view body) {
      if (body.size() > size) __builtin_trap();
    });
    if (status != ScanStatus::kOk) break;
  }
  (void)parse_sasl_initial_response(buf);
  (void)sasl_mechanisms(buf);
  (void)saslprep(buf);
  (void)parse_scram_secret(buf);

  static const ScramSecret secret = make_scram_secret("pencil", "0123456789abcdef", 1);
  ScramSha256Server server(secret, "srv");
  if (std::holds_alternative<std::string>(server.handle_client_first(kScramSha256, buf))) {
    (void)server.handle_client_final(buf);
  }
  ScramSha256Client client("pencil", "r");
  // At most 4 digits of iteration count, so PBKDF2 cannot stall the fuzzer.
  const std::size_t iterations_at = buf.rfind(",i=");
  if (iterations_at == std::string_view::npos || buf.size() - iterations_at <= 3 + 4) {
    (void)client.handle_server_first(buf);
  }
  (void)client.verify_server_final(buf);
  return 0;
}
