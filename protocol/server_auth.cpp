// Logging in to a PostgreSQL server, sans IO: fed the server's messages, answers with the
// bytes to send, the logged-in connection's state, or why the login failed.
#include "protocol/server_auth.hpp"

#include <array>
#include <type_traits>

#include "protocol/md5.hpp"
#include "protocol/startup.hpp"

namespace pgflip::protocol {

namespace {

char type_of(const BackendMessage& message) {
  return std::visit(
      [](const auto& m) {
        if constexpr (std::is_same_v<std::decay_t<decltype(m)>, UnknownMessage>) {
          return m.type;
        } else {
          return std::decay_t<decltype(m)>::kType;
        }
      },
      message);
}

}  // namespace

std::string ServerAuthError::error_response() const {
  std::string out;
  if (server_error) {
    encode(*server_error, out);
  } else {
    encode(make_error("FATAL", sqlstate, message), out);
  }
  return out;
}

ServerAuth::ServerAuth(ServerAuthSettings settings) : settings_(std::move(settings)) {}

std::string ServerAuth::startup_message() const {
  StartupMessage startup;
  startup.parameters.emplace_back("user", settings_.user);
  startup.parameters.emplace_back("database", settings_.database);
  for (const auto& parameter : settings_.parameters) startup.parameters.push_back(parameter);
  std::string out;
  encode(startup, out);
  return out;
}

ServerAuthStep ServerAuth::feed(const BackendMessage& message) {
  if (state_ == State::kEnded) {
    return fail("08P01", "server " + settings_.server_name + " sent a message after login ended",
                "message after the end of login");
  }
  if (const auto* error = std::get_if<ErrorResponse>(&message)) {
    // The server's own refusal (bad password, unknown database, too many clients) is what
    // the client should see.
    state_ = State::kEnded;
    return ServerAuthError{std::string(error->code()), std::string(error->message()),
                           settings_.server_name + " refused login: " + std::string(error->code()) +
                               " " + std::string(error->message()),
                           *error};
  }
  if (std::holds_alternative<NegotiateProtocolVersion>(message)) {
    return ServerAuthSend{};  // pgflip asks for 3.0, which every supported server speaks
  }
  if (state_ == State::kAuthenticating) {
    if (const auto* request = std::get_if<Authentication>(&message)) return authenticate(*request);
    return unexpected(message);
  }
  if (const auto* status = std::get_if<ParameterStatus>(&message)) {
    record_parameter_status(login_.parameters, *status);
  } else if (const auto* key = std::get_if<BackendKeyData>(&message)) {
    login_.process_id = key->process_id;
    login_.secret_key = key->secret_key;
  } else if (const auto* notice = std::get_if<NoticeResponse>(&message)) {
    encode(*notice, login_.notices);
  } else if (const auto* ready = std::get_if<ReadyForQuery>(&message)) {
    login_.transaction_status = ready->status;
    state_ = State::kEnded;
    return std::move(login_);
  } else {
    return unexpected(message);
  }
  return ServerAuthSend{};
}

// https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
ServerAuthStep ServerAuth::authenticate(const Authentication& request) {
  std::string out;
  switch (request.code) {
    case Authentication::kOk:
      state_ = State::kAuthenticated;
      return ServerAuthSend{};
    case Authentication::kCleartextPassword:
      if (settings_.password.empty()) return no_password();
      encode_password(settings_.password, out);
      return ServerAuthSend{std::move(out)};
    case Authentication::kMD5Password: {
      std::array<std::uint8_t, 4> salt{};  // the decoder checked there are 4 bytes
      for (std::size_t i = 0; i < salt.size(); ++i) {
        salt[i] = static_cast<std::uint8_t>(request.data[i]);
      }
      if (!settings_.md5_secret.empty()) {
        encode_password(md5_response_from_secret(settings_.md5_secret, salt), out);
      } else if (!settings_.password.empty()) {
        encode_password(md5_password_response(settings_.user, settings_.password, salt), out);
      } else {
        return no_password();
      }
      return ServerAuthSend{std::move(out)};
    }
    case Authentication::kSASL:
      return start_scram(request);
    case Authentication::kSASLContinue: {
      if (!scram_) return unexpected(request);
      auto reply = scram_->handle_server_first(request.data);
      if (const auto* error = std::get_if<ScramError>(&reply)) {
        return fail("28000",
                    "SCRAM authentication with server " + settings_.server_name + " failed",
                    "SCRAM: " + error->message);
      }
      encode_sasl_response(std::get<std::string>(reply), out);
      return ServerAuthSend{std::move(out)};
    }
    case Authentication::kSASLFinal:
      if (!scram_) return unexpected(request);
      if (const auto error = scram_->verify_server_final(request.data)) {
        return fail(
            "28000",
            "server " + settings_.server_name + " failed SCRAM verification (wrong server?)",
            "SCRAM final: " + error->message);
      }
      return ServerAuthSend{};  // AuthenticationOk follows
    default:
      return fail("08P01",
                  "server " + settings_.server_name +
                      " asked for an authentication method pgflip does not support",
                  "unsupported authentication request " + std::to_string(request.code));
  }
}

// https://www.postgresql.org/docs/current/sasl-authentication.html
ServerAuthStep ServerAuth::start_scram(const Authentication& request) {
  if (settings_.password.empty() && !settings_.scram_keys) return no_password();
  bool offered = false;
  bool offered_plus = false;
  for (const auto& name : sasl_mechanisms(request.data).value_or(std::vector<std::string>{})) {
    offered |= name == kScramSha256;
    offered_plus |= name == kScramSha256Plus;
  }
  if (!offered && !offered_plus) {
    return fail("08P01",
                "server " + settings_.server_name + " offers no SASL mechanism pgflip supports",
                "no SCRAM-SHA-256 in SASL mechanisms");
  }
  // The client's own keys first (pass-through), as they prove who the client is.
  if (settings_.scram_keys) {
    scram_.emplace(ScramSha256Client::from_keys(settings_.scram_keys->client_key,
                                                settings_.scram_keys->server_key));
  } else {
    scram_.emplace(settings_.password);
  }
  // Over TLS, bind the exchange to the server's certificate when it offers that, and
  // otherwise say we could have (so a downgrade is detectable), as libpq does.
  if (!settings_.tls_server_end_point.empty()) {
    if (offered_plus) {
      scram_->set_channel_binding(std::string(kTlsServerEndPoint), settings_.tls_server_end_point);
    } else {
      scram_->set_channel_binding_supported();
    }
  } else if (!offered) {
    return fail(
        "08P01",
        "server " + settings_.server_name + " offers only SCRAM-SHA-256-PLUS, which needs TLS",
        "SCRAM-SHA-256-PLUS without TLS");
  }
  std::string out;
  encode(SASLInitialResponse{std::string(scram_->mechanism()), scram_->client_first_message()},
         out);
  return ServerAuthSend{std::move(out)};
}

ServerAuthStep ServerAuth::fail(std::string sqlstate, std::string message, std::string reason) {
  state_ = State::kEnded;
  return ServerAuthError{std::move(sqlstate), std::move(message), std::move(reason), std::nullopt};
}

ServerAuthStep ServerAuth::unexpected(const BackendMessage& message) {
  const std::string name(backend_message_name(type_of(message)));
  return fail(
      "08P01", "server " + settings_.server_name + " sent an unexpected message during login",
      "unexpected " + name +
          (state_ == State::kAuthenticating ? " before AuthenticationOk" : " during login"));
}

ServerAuthStep ServerAuth::no_password() {
  return fail("28000",
              "server " + settings_.server_name + " asked for a password for user \"" +
                  settings_.user + "\" and pgflip has none (set " + settings_.password_setting +
                  ")",
              "no password configured for " + settings_.server_name);
}

}  // namespace pgflip::protocol
