// The replication manager's settings, mapped from the configuration's admin logins.
#include "proxy/control/replication_settings.hpp"

#include <openssl/x509.h>

#include <cstdlib>

namespace pgflip::proxy {

namespace {

/// sslrootcert for libpq: libpq before version 16 reads "system" as a file name, so it is
/// spelled out as the file of OpenSSL's default store (what pgflip's own connections use).
std::string libpq_sslrootcert(const std::string& sslrootcert) {
  if (sslrootcert != "system") return sslrootcert;
  if (const char* file = std::getenv(X509_get_default_cert_file_env())) return file;
  return X509_get_default_cert_file();
}

replication::ServerLogin admin_login(const config::Endpoint& endpoint) {
  replication::ServerLogin login;
  login.host = endpoint.host;
  login.port = endpoint.port;
  login.user = endpoint.admin_user;
  login.password = endpoint.admin_password;
  login.maintenance_db = endpoint.admin_database;
  // The manager's connections carry superuser credentials: they check the server as the
  // proxy's own connections do.
  login.sslmode = std::string(config::to_string(endpoint.sslmode));
  login.sslrootcert = libpq_sslrootcert(endpoint.sslrootcert);
  login.sslcert = endpoint.sslcert;
  login.sslkey = endpoint.sslkey;
  return login;
}

}  // namespace

replication::Settings replication_settings(const config::Config& config) {
  replication::Settings settings;
  settings.blue = admin_login(config.blue);
  if (config.green) settings.green = admin_login(*config.green);
  const auto& r = config.replication;
  settings.databases = r.databases;
  settings.blue_conninfo_for_green = r.blue_conninfo_for_green;
  settings.name_prefix = r.name_prefix;
  settings.retained_wal_alarm_bytes = r.retained_wal_alarm_bytes;
  settings.pg_bin_dir = r.pg_bin_dir;
  settings.statement_timeout = r.statement_timeout;
  settings.connect_timeout = config.server.connect_timeout;
  return settings;
}

}  // namespace pgflip::proxy
