"""TLS from pgflip to the servers, per environment, with libpq's sslmode meanings: blue runs with a
certificate from the test CA that scripts/pgcluster made (DIR/tls); verify-full and verify-ca
accept it, a CA made here does not; disable and prefer do what libpq does; SCRAM logins (and
SCRAM pass-through) work over TLS, where the server offers SCRAM-SHA-256-PLUS; a client certificate
(blue.sslcert/sslkey) logs in where pg_hba asks for `cert`."""

import pathlib
import shutil
import socket
import tempfile
import threading

import psycopg

import frontdoor
import harness

DB = "app"


class Forwarder:
    """Relays TCP connections from a listening address to blue, byte for byte: blue reached
    under an address its certificate does not name (it names localhost, 127.0.0.1 and ::1)."""

    def __init__(self, host, target):
        self.target = target
        self.listener = socket.create_server((host, 0))
        self.host, self.port = self.listener.getsockname()[:2]
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()
        for s in self.sockets:
            s.close()


class ServerTlsTest(harness.PgflipTestCase):
    pgflip_only = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ca_cert = cls.cluster.env.get("TLS_CA_CERT")
        if not cls.ca_cert:
            raise AssertionError("DIR/env has no TLS_CA_CERT: restart the cluster with "
                                 "scripts/pgcluster start")
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pgflip-srvtls-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.other_ca = frontdoor.make_ca(cls.tmp, "other", "not blue's CA")

    def proxy_with(self, **blue):
        return self.start_pgflip({"auth": {"method": "trust"}, "blue": blue})

    def server_ssl(self, proxy, user="postgres"):
        """(ssl, version) of the blue backend serving a session through `proxy`."""
        with proxy.connect(user=user, dbname=DB) as conn:
            return conn.execute("select ssl, version from pg_stat_ssl "
                                "where pid = pg_backend_pid()").fetchone()

    def test_verify_full_and_verify_ca_with_the_cluster_ca(self):
        for mode, host in (("verify-full", "127.0.0.1"), ("verify-full", "localhost"),
                           ("verify-ca", "127.0.0.1"), ("require", "127.0.0.1")):
            with self.subTest(mode=mode, host=host):
                proxy = self.proxy_with(host=host, sslmode=mode, sslrootcert=self.ca_cert)
                ssl_in_use, version = self.server_ssl(proxy)
                self.assertTrue(ssl_in_use)
                self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
                proxy.stop()

    def test_verify_full_refuses_a_certificate_that_does_not_name_the_host(self):
        # Blue's own certificate from the right CA, reached as 127.0.0.2 (a loopback address
        # the certificate does not name): verify-full refuses it, verify-ca accepts it.
        forwarder = Forwarder("127.0.0.2", ("127.0.0.1", self.cluster.blue_port))
        self.addCleanup(forwarder.close)
        blue = {"host": forwarder.host, "port": forwarder.port, "sslrootcert": self.ca_cert}
        proxy = self.proxy_with(sslmode="verify-full", **blue)
        with self.assertRaises(harness.ServerError) as caught:
            harness.RawClient(proxy.port, database=DB).close()
        self.assertEqual(caught.exception.sqlstate, "08006")
        message = caught.exception.fields["M"]
        self.assertIn(f"TLS handshake with server blue ({forwarder.host}:{forwarder.port}) failed",
                      message)
        self.assertIn("IP address mismatch", message)
        self.assertIn("the server's certificate does not name 127.0.0.2 (blue.host, checked by "
                      "sslmode verify-full)", message)
        self.assertIn("IP address mismatch", proxy.log_text())
        with self.assertRaises(psycopg.OperationalError):  # as libpq clients see it
            proxy.connect(dbname=DB).close()
        proxy.stop()

        proxy = self.proxy_with(sslmode="verify-ca", **blue)
        self.assertTrue(self.server_ssl(proxy)[0])
        proxy.stop()

    def test_a_certificate_from_another_ca_is_refused(self):
        for mode in ("verify-full", "verify-ca", "require"):  # require + rootcert = verify-ca
            with self.subTest(mode=mode):
                proxy = self.proxy_with(sslmode=mode, sslrootcert=str(self.other_ca[0]))
                with self.assertRaises(harness.ServerError) as caught:
                    harness.RawClient(proxy.port, database=DB).close()
                self.assertEqual(caught.exception.sqlstate, "08006")
                self.assertIn("certificate verify failed", caught.exception.fields["M"])
                self.assertIn("TLS handshake with blue", proxy.log_text())
                proxy.stop()

    def test_disable_prefer_and_require_without_a_ca(self):
        expected = {"disable": False, "prefer": True, "require": True}
        for mode, tls in expected.items():
            with self.subTest(mode=mode):
                proxy = self.proxy_with(sslmode=mode)
                self.assertEqual(self.server_ssl(proxy)[0], tls)
                proxy.stop()

    def test_client_certificate_for_pg_hba_cert(self):
        # pg_hba: `hostssl all app_cert 127.0.0.1/32 cert` (scripts/pgcluster); the CN names the
        # role. Clients log in to pgflip by trust; pgflip proves itself to blue with the cert.
        cert, key = self.cluster.env.get("TLS_CLIENT_CERT"), self.cluster.env.get("TLS_CLIENT_KEY")
        self.assertTrue(cert and key, "DIR/env has no TLS_CLIENT_CERT: restart the cluster")
        proxy = self.proxy_with(sslmode="verify-full", sslrootcert=self.ca_cert, sslcert=cert,
                                sslkey=key)
        with proxy.connect(user="app_cert", dbname=DB) as conn:
            user, dn = conn.execute("select current_user, client_dn from pg_stat_ssl "
                                    "where pid = pg_backend_pid()").fetchone()
        self.assertEqual(user, "app_cert")
        self.assertIn("CN=app_cert", dn)
        proxy.stop()

        # Without the certificate blue refuses the login; the client gets blue's reason.
        proxy = self.proxy_with(sslmode="verify-full", sslrootcert=self.ca_cert)
        with self.assertRaises(harness.ServerError) as caught:
            harness.RawClient(proxy.port, user="app_cert", database=DB).close()
        self.assertEqual(caught.exception.sqlstate, "28000")
        self.assertIn("certificate", caught.exception.fields["M"])

    def test_default_is_prefer(self):
        proxy = self.start_pgflip({"auth": {"method": "trust"}})
        self.assertTrue(self.server_ssl(proxy)[0])

    def test_unix_socket_never_uses_tls(self):
        proxy = self.proxy_with(host=self.cluster.blue_socket_dir, sslmode="prefer")
        with proxy.connect(dbname=DB) as conn:
            self.assertEqual(conn.execute("select count(*) from pg_stat_ssl "
                                          "where pid = pg_backend_pid() and ssl").fetchone(), (0,))

    def test_scram_login_over_verified_tls(self):
        # Blue offers SCRAM-SHA-256-PLUS over TLS; pgflip binds the exchange to its certificate.
        proxy = self.proxy_with(sslmode="verify-full", sslrootcert=self.ca_cert, user="app_scram",
                                password="scram-secret")
        self.assertTrue(self.server_ssl(proxy, user="anyone")[0])

    def test_scram_pass_through_over_verified_tls(self):
        with self.cluster.connect() as conn:
            (secret,) = conn.execute("select rolpassword from pg_authid "
                                     "where rolname = 'app_scram'").fetchone()
        users = self.tmp / "userlist.txt"
        users.write_text(frontdoor.userlist({"app_scram": secret}))
        proxy = self.start_pgflip({"auth": {"method": "scram-sha-256", "users_file": str(users)},
                                   "blue": {"sslmode": "verify-full",
                                            "sslrootcert": self.ca_cert}})
        dsn = proxy.dsn(user="app_scram", dbname=DB, password="scram-secret")
        with psycopg.connect(dsn) as conn:
            row = conn.execute("select current_user, ssl from pg_stat_ssl "
                               "where pid = pg_backend_pid()").fetchone()
        self.assertEqual(row, ("app_scram", True))


if __name__ == "__main__":
    harness.main()
