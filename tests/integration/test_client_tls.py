"""TLS between clients and pgflip: psql and psycopg with sslmode=require and verify-full against a
test CA made here, SCRAM-SHA-256-PLUS channel binding, PostgreSQL 17's direct TLS (ALPN), and the
refusals: plain clients under client_tls = require, clear-text bytes sent before the handshake,
TLS garbage, TLS below 1.2."""

import pathlib
import shutil
import signal
import socket
import ssl
import tempfile

import psycopg

import frontdoor
import harness
from harness import run

PASSWORD = "tls-Secret-42"


class ClientTlsTest(harness.PgflipTestCase):
    pgflip_only = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pgflip-tls-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.ca = frontdoor.make_ca(cls.tmp)
        cls.cert = frontdoor.make_server_cert(cls.tmp, cls.ca, "pgflip")
        cls.other_ca = frontdoor.make_ca(cls.tmp, "other", "someone else's CA")
        cls.users = cls.tmp / "userlist.txt"
        # postgres logs in to blue by trust; the client still has to prove its password to pgflip.
        cls.users.write_text(frontdoor.userlist({"postgres": PASSWORD}))
        cls.proxy = cls.start_class_pgflip(cls.overrides())

    @classmethod
    def overrides(cls, **tls):
        return {"tls": {"cert_file": str(cls.cert[0]), "key_file": str(cls.cert[1]), **tls},
                "auth": {"method": "scram-sha-256", "users_file": str(cls.users)},
                "log": {"level": "debug"}}

    def dsn(self, proxy=None, **extra):
        parts = {"password": PASSWORD, "sslmode": "require"}
        parts.update(extra)
        return (proxy or self.proxy).dsn(**parts)

    def assert_serving(self, proxy=None):
        with psycopg.connect(self.dsn(proxy)) as conn:
            self.assertEqual(conn.execute("select 1").fetchone(), (1,))

    def test_psql_with_sslmode_require_and_verify_full(self):
        for mode, host, root in (("require", "127.0.0.1", None),
                                 ("verify-full", "127.0.0.1", self.ca[0]),
                                 ("verify-full", "localhost", self.ca[0])):
            with self.subTest(mode=mode, host=host):
                env = self.proxy.libpq_env()
                env.update(PGHOST=host, PGSSLMODE=mode, PGPASSWORD=PASSWORD)
                if root:
                    env["PGSSLROOTCERT"] = str(root)
                out = run([self.cluster.psql, "-X", "-c", r"\conninfo", "-c", "select 42"],
                          env=env).stdout
                self.assertIn("SSL connection (protocol: TLSv1.", out)
                self.assertIn("42", out)

    def test_psycopg_verify_full_with_channel_binding(self):
        dsn = self.dsn(sslmode="verify-full", sslrootcert=self.ca[0], channel_binding="require")
        with psycopg.connect(dsn) as conn:
            self.assertTrue(conn.pgconn.ssl_in_use)
            self.assertEqual(conn.execute("select current_user").fetchone(), ("postgres",))
        harness.wait_until(lambda: "authenticated with SCRAM-SHA-256-PLUS" in self.proxy.log_text(),
                           5, message="SCRAM-SHA-256-PLUS in pgflip's log")
        self.assertNotIn(PASSWORD, self.proxy.log_text())

    def test_wrong_ca_is_rejected_by_the_client(self):
        with self.assertRaises(psycopg.OperationalError) as caught:
            psycopg.connect(self.dsn(sslmode="verify-full", sslrootcert=self.other_ca[0])).close()
        self.assertIn("certificate verify failed", str(caught.exception))
        self.assert_serving()

    def test_channel_binding_needs_tls(self):
        with self.assertRaises(psycopg.OperationalError) as caught:
            psycopg.connect(self.dsn(sslmode="disable", channel_binding="require")).close()
        self.assertIn("channel binding", str(caught.exception))
        # Without TLS, SCRAM-SHA-256-PLUS is not even offered.
        client = frontdoor.AuthClient(self.proxy.port, "postgres", PASSWORD)
        self.assertEqual(client.mechanisms, ["SCRAM-SHA-256"])
        self.assertEqual(client.query("select 7"), [["7"]])
        client.close()

    def test_raw_scram_plus_over_tls(self):
        client = frontdoor.AuthClient(self.proxy.port, "postgres", PASSWORD, tls="request",
                                      ca=self.ca[0], channel_binding=True)
        self.assertEqual(client.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
        self.assertEqual(client.mechanism, "SCRAM-SHA-256-PLUS")
        self.assertEqual(client.query("select 'bound'"), [["bound"]])
        client.close()

    def test_certificate_renewed_in_place_is_served_after_sighup(self):
        # As certbot renews: new files at the same paths, then SIGHUP.
        first = frontdoor.make_server_cert(self.tmp, self.ca, "renew-first")
        second = frontdoor.make_server_cert(self.tmp, self.ca, "renew-second")
        cert, key = self.tmp / "renewed.crt", self.tmp / "renewed.key"
        shutil.copy(first[0], cert)
        shutil.copy(first[1], key)
        proxy = self.start_pgflip({**self.overrides(), "tls": {"cert_file": str(cert),
                                                               "key_file": str(key)}})
        der = lambda path: ssl.PEM_cert_to_DER_cert(pathlib.Path(path).read_text())

        def connect():
            return frontdoor.AuthClient(proxy.port, "postgres", PASSWORD, tls="request",
                                        ca=self.ca[0], channel_binding=True)

        before = connect()
        self.assertEqual(before.sock.getpeercert(binary_form=True), der(first[0]))
        before.query("begin")
        shutil.copy(second[0], cert)
        shutil.copy(second[1], key)
        proxy.signal(signal.SIGHUP)
        harness.wait_until(lambda: "changed: tls.cert_file" in proxy.log_text(), 10,
                           message="the reload reporting the new certificate")
        after = connect()
        self.assertEqual(after.sock.getpeercert(binary_form=True), der(second[0]))
        # Channel binding is computed from the certificate this client saw.
        self.assertEqual(after.mechanism, "SCRAM-SHA-256-PLUS")
        self.assertEqual(after.query("select 'renewed'"), [["renewed"]])
        # The session from before goes on over its handshake with the old certificate.
        self.assertEqual(before.query("select 'old'"), [["old"]])
        before.query("commit")
        for client in (before, after):
            client.close()

    def test_client_certificate_authentication(self):
        # auth.method = cert: the client's certificate (CN=app_cert, from the cluster's CA) is
        # its login; pgflip then logs in to blue with a certificate of its own (pg_hba `cert`).
        env = self.cluster.env
        client_cert, client_key = env.get("TLS_CLIENT_CERT"), env.get("TLS_CLIENT_KEY")
        self.assertTrue(client_cert, "DIR/env has no TLS_CLIENT_CERT: restart the cluster")
        cluster_ca = env["TLS_CA_CERT"]
        proxy = self.start_pgflip({
            "auth": {"method": "cert"},
            "tls": {"cert_file": str(self.cert[0]), "key_file": str(self.cert[1]),
                    "client_ca_file": cluster_ca},
            "blue": {"sslmode": "verify-full", "sslrootcert": cluster_ca,
                     "sslcert": client_cert, "sslkey": client_key}})

        def connect(user="app_cert", **extra):
            params = {"sslmode": "verify-full", "sslrootcert": str(self.ca[0]),
                      "sslcert": client_cert, "sslkey": client_key, **extra}
            params = {k: v for k, v in params.items() if v is not None}
            return psycopg.connect(proxy.dsn(user=user, dbname="app", **params))

        with connect() as conn:
            self.assertEqual(conn.execute("select current_user").fetchone(), ("app_cert",))
        refusals = {
            "another user's name": (dict(user="postgres"),
                                    'certificate authentication failed for user "postgres"'),
            "no certificate": (dict(sslcert=None, sslkey=None),
                               "connection requires a valid client certificate"),
            "no TLS": (dict(sslmode="disable", sslcert=None, sslkey=None, sslrootcert=None),
                       "connection requires a valid client certificate"),
        }
        for what, (extra, message) in refusals.items():
            with self.subTest(what):
                with self.assertRaises(psycopg.OperationalError) as caught:
                    connect(**extra).close()
                self.assertIn(message, str(caught.exception))
        self.assertIn("authentication failed: the certificate's common name is \"app_cert\"",
                      proxy.log_text())
        # A certificate from a CA pgflip does not trust fails the TLS handshake itself.
        stranger = frontdoor.make_server_cert(self.tmp, self.other_ca, "stranger",
                                              names=("app_cert",))
        with self.assertRaises(psycopg.OperationalError):
            connect(sslcert=str(stranger[0]), sslkey=str(stranger[1])).close()

    def test_direct_tls_with_alpn(self):
        client = frontdoor.AuthClient(self.proxy.port, "postgres", PASSWORD, tls="direct",
                                      ca=self.ca[0], channel_binding=True)
        self.assertEqual(client.sock.selected_alpn_protocol(), "postgresql")
        self.assertEqual(client.query("select 'direct'"), [["direct"]])
        client.close()

    def test_direct_tls_without_postgresql_alpn_is_refused(self):
        for alpn in ((), ("http/1.1",)):
            with self.subTest(alpn=alpn):
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                    frontdoor.AuthClient(self.proxy.port, "postgres", PASSWORD, tls="direct",
                                         alpn=alpn).close()
        self.assert_serving()

    def test_cleartext_bytes_after_sslrequest_are_refused(self):
        # A man in the middle could append a startup packet to the client's SSLRequest.
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as sock:
            sock.sendall(frontdoor.SSL_REQUEST + frontdoor.startup_packet("postgres", "postgres"))
            fields, data = frontdoor.read_error(sock)
        self.assertFalse(data.startswith(b"S"), data[:20])
        self.assertIsNotNone(fields, data[:100])
        self.assertEqual(fields["C"], "08P01")
        self.assertIn("unencrypted data", fields["M"])
        self.assert_serving()

    def test_tls_garbage_closes_the_connection(self):
        rng = harness.random.Random(7)
        for how in ("after SSLRequest", "direct"):
            with self.subTest(how=how), \
                    socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as sock:
                if how == "after SSLRequest":
                    sock.sendall(frontdoor.SSL_REQUEST)
                    self.assertEqual(sock.recv(1), b"S")
                    sock.sendall(bytes(rng.randrange(256) for _ in range(3000)))
                else:
                    sock.sendall(b"\x16\x03\x01" + bytes(rng.randrange(256) for _ in range(3000)))
                self.assertTrue(frontdoor.closed_within(sock, 10))
        self.assert_serving()

    def test_tls_below_1_2_is_refused(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError) as e:
            self.skipTest(f"this OpenSSL cannot offer TLS 1.1: {e}")
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as sock:
            sock.sendall(frontdoor.SSL_REQUEST)
            self.assertEqual(sock.recv(1), b"S")
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                context.wrap_socket(sock).close()
        self.assert_serving()

    def test_client_tls_require_refuses_plain_clients(self):
        proxy = self.start_pgflip(self.overrides(client_tls="require"))
        with self.assertRaises(harness.ServerError) as caught:
            frontdoor.AuthClient(proxy.port, "postgres", PASSWORD).close()
        self.assertEqual(caught.exception.sqlstate, "28000")
        self.assertEqual(caught.exception.fields["S"], "FATAL")
        # libpq's prefer tries TLS first, so it gets in; disable does not.
        with psycopg.connect(self.dsn(proxy, sslmode="prefer")) as conn:
            self.assertTrue(conn.pgconn.ssl_in_use)
        with self.assertRaises(psycopg.OperationalError) as refused:
            psycopg.connect(self.dsn(proxy, sslmode="disable")).close()
        self.assertIn("requires TLS", str(refused.exception))

    def test_without_a_certificate_sslrequest_is_answered_n(self):
        proxy = self.start_pgflip({"auth": {"method": "trust"}})
        with self.assertRaises(psycopg.OperationalError) as caught:
            psycopg.connect(proxy.dsn(sslmode="require")).close()
        self.assertIn("does not support SSL", str(caught.exception))
        with psycopg.connect(proxy.dsn(sslmode="prefer")) as conn:
            self.assertFalse(conn.pgconn.ssl_in_use)
        # A direct-TLS client gets no answer in the clear, only a closed connection.
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            frontdoor.AuthClient(proxy.port, "postgres", tls="direct").close()

    def test_graceful_stop_reaches_a_tls_client(self):
        proxy = self.start_pgflip(self.overrides())
        client = frontdoor.AuthClient(proxy.port, "postgres", PASSWORD, tls="request")
        self.assertEqual(client.query("select 1"), [["1"]])
        proxy.signal(signal.SIGTERM)
        kind, body = client.read_message()
        self.assertEqual(kind, b"E")
        self.assertEqual(harness.parse_error_fields(body)["C"], "57P01")
        self.assertEqual(proxy.wait(15), 0)
        client.sock.close()


if __name__ == "__main__":
    harness.main()
