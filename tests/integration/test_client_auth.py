"""Client authentication to pgflip and the server logins it makes for the client: SCRAM and MD5
against a PgBouncer-style users file (plaintext, md5 and SCRAM secrets) and against auth.query on
blue; SCRAM pass-through of the client's keys; wrong passwords and unknown users (28P01, alike);
connection limits (53300); the startup and idle timeouts; no secret in pgflip's log."""

import json
import pathlib
import shutil
import socket
import struct
import tempfile
import time

import psycopg

import frontdoor
import harness
from harness import run

DB = "app"
# Roles of scripts/pgcluster, with the passwords it gave them and blue's pg_hba.conf method.
PASSWORDS = {"app_scram": "scram-secret", "app_md5": "md5-secret", "app_password": "plain-secret"}


class ClientAuthTest(harness.PgflipTestCase):
    pgflip_only = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pgflip-auth-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        with cls.cluster.connect() as conn:
            secrets = dict(conn.execute(
                "select rolname, rolpassword from pg_authid where rolname in "
                "('app_scram', 'app_md5')").fetchall())
        cls.blue_scram_secret = secrets["app_scram"]
        assert cls.blue_scram_secret.startswith("SCRAM-SHA-256$"), cls.blue_scram_secret
        assert secrets["app_md5"].startswith("md5"), secrets["app_md5"]
        cls.users = cls.tmp / "userlist.txt"
        cls.users.write_text(
            "; PgBouncer's format: comments, blank lines, quoted fields\n\n" +
            frontdoor.userlist({
                "app_scram": cls.blue_scram_secret,         # the server's own SCRAM secret
                "app_md5": secrets["app_md5"],              # the server's own MD5 secret
                "app_password": PASSWORDS["app_password"],  # plaintext
                "app_trust": frontdoor.scram_secret("trust-pw"),
                'odd"name': "odd-pw",
            }))
        cls.scram_proxy = cls.start_class_pgflip(cls.auth("scram-sha-256"))
        cls.md5_proxy = cls.start_class_pgflip(cls.auth("md5"))

    @classmethod
    def auth(cls, method, **extra):
        return {"auth": {"method": method, "users_file": str(cls.users), **extra},
                "log": {"level": "debug"}}

    def login(self, proxy, user, password, **kw):
        return frontdoor.AuthClient(proxy.port, user, password, database=DB, **kw)

    def assert_refused(self, sqlstate, proxy, user, password, **kw):
        with self.assertRaises(harness.ServerError) as caught:
            self.login(proxy, user, password, **kw).close()
        self.assertEqual(caught.exception.sqlstate, sqlstate, caught.exception.fields)
        self.assertEqual(caught.exception.fields["S"], "FATAL")
        return caught.exception

    def assert_no_secret_logged(self, proxy):
        text = proxy.log_text()
        for secret in [*PASSWORDS.values(), "trust-pw", "odd-pw", "wrong-password",
                       self.blue_scram_secret.split("$", 2)[2]]:
            self.assertNotIn(secret, text)

    def test_json_debug_log_has_no_secrets(self):
        # Every kind of login at debug level, logged as JSON: no configured password, client
        # password or SCRAM key appears, and every line is a JSON object.
        proxy = self.start_pgflip({
            "auth": {"method": "scram-sha-256", "users_file": str(self.users),
                     "query_user": "postgres", "query_password": "query-secret-pw"},
            "blue": {"password": "blue-secret-pw", "admin_password": "admin-secret-pw"},
            "replication": {"blue_conninfo_for_green": "host=x password=conninfo-secret-pw"},
            "log": {"level": "trace", "format": "json"}})
        for user, password in (("app_scram", PASSWORDS["app_scram"]),
                               ("app_password", PASSWORDS["app_password"]),
                               ("app_trust", "trust-pw")):
            client = self.login(proxy, user, password)
            self.assertEqual(client.query("select current_user"), [[user]])
            client.close()
        self.assert_refused("28P01", proxy, "app_scram", "wrong-password")
        self.assert_refused("28P01", proxy, "nobody", "whatever")  # looked up with auth.query
        env = proxy.libpq_env(user="app_password", dbname=DB)
        env["PGPASSWORD"] = PASSWORDS["app_password"]
        run([self.cluster.psql, "-X", "-At", "-c", "select 1"], env=env)
        harness.wait_until(lambda: proxy.log_text().count("closed after") >= 4, 10,
                           message="the sessions' last lines")
        proxy.stop()
        self.assert_no_secret_logged(proxy)
        text = proxy.log_text()
        for secret in ("query-secret-pw", "blue-secret-pw", "admin-secret-pw",
                       "conninfo-secret-pw"):
            self.assertNotIn(secret, text)
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        failures = [l for l in lines if "authentication failed" in l["msg"]]
        self.assertEqual(len(failures), 2, failures)
        self.assertTrue(all(isinstance(l.get("conn"), int) for l in failures), failures)

    # --- SCRAM --------------------------------------------------------------------------------

    def test_scram_pass_through_logs_in_to_blue_without_the_password(self):
        # pgflip holds only blue's SCRAM secret; blue checks SCRAM too: only the client's keys,
        # recovered during pgflip's own SCRAM exchange, can log in there.
        dsn = self.scram_proxy.dsn(user="app_scram", dbname=DB, password="scram-secret")
        with psycopg.connect(dsn) as conn:
            self.assertEqual(conn.execute("select current_user").fetchone(), ("app_scram",))
        client = self.login(self.scram_proxy, "app_scram", "scram-secret")
        self.assertEqual(client.mechanism, "SCRAM-SHA-256")
        self.assertEqual(client.query("select current_user"), [["app_scram"]])
        client.close()
        self.assert_no_secret_logged(self.scram_proxy)

    def test_plaintext_entry_logs_in_with_the_password(self):
        # Blue asks app_password for a cleartext password: only the plaintext entry can answer.
        env = self.scram_proxy.libpq_env(user="app_password", dbname=DB)
        env["PGPASSWORD"] = PASSWORDS["app_password"]
        out = run([self.cluster.psql, "-X", "-At", "-c", "select current_user"], env=env).stdout
        self.assertEqual(out.strip(), "app_password")
        self.assert_no_secret_logged(self.scram_proxy)

    def test_quoted_user_name_from_the_users_file(self):
        # Listed as "odd""name": pgflip accepts the password, then blue (no such role) refuses.
        with self.assertRaises(harness.ServerError) as caught:
            self.login(self.scram_proxy, 'odd"name', "odd-pw").close()
        self.assertEqual(caught.exception.sqlstate, "28P01")
        log = self.scram_proxy.log_text()
        self.assertIn('user=odd"name database=app: server login failed', log)
        self.assertNotIn('user=odd"name database=app authentication failed', log)

    def test_wrong_password_is_28P01(self):
        for proxy, user in ((self.scram_proxy, "app_scram"), (self.scram_proxy, "app_password"),
                            (self.md5_proxy, "app_md5"), (self.md5_proxy, "app_password")):
            with self.subTest(user=user, port=proxy.port):
                error = self.assert_refused("28P01", proxy, user, "wrong-password")
                self.assertEqual(error.fields["M"],
                                 f'password authentication failed for user "{user}"')
        env = self.scram_proxy.libpq_env(user="app_scram", dbname=DB)
        env["PGPASSWORD"] = "wrong-password"
        psql = run([self.cluster.psql, "-X", "-c", "select 1"], env=env, check=False)
        self.assertEqual(psql.returncode, 2)
        self.assertIn('password authentication failed for user "app_scram"', psql.stderr)
        self.assert_no_secret_logged(self.scram_proxy)
        self.assertIn("wrong password", self.scram_proxy.log_text())

    def test_unknown_user_looks_like_a_wrong_password(self):
        known = self.assert_refused("28P01", self.scram_proxy, "app_scram", "wrong-password")
        first = self.assert_refused("28P01", self.scram_proxy, "nobody", "whatever")
        self.assertEqual(first.fields["M"], 'password authentication failed for user "nobody"')
        self.assertEqual(set(known.fields), set(first.fields))
        # Same mechanisms, and a salt that stays the same, as a real user's would.
        a = self._mechanisms_and_salt("nobody")
        b = self._mechanisms_and_salt("nobody")
        self.assertEqual(a, b)
        self.assertEqual(a[0], self._mechanisms_and_salt("app_scram")[0])
        self.assertIn("no such user", self.scram_proxy.log_text())
        # MD5: the same answer after a (mock) MD5 challenge.
        error = self.assert_refused("28P01", self.md5_proxy, "nobody", "whatever")
        self.assertEqual(error.fields["M"], 'password authentication failed for user "nobody"')

    def _mechanisms_and_salt(self, user):
        """The SASL mechanisms, salt and iteration count pgflip shows `user`."""
        with socket.create_connection(("127.0.0.1", self.scram_proxy.port), timeout=10) as sock:
            sock.sendall(frontdoor.startup_packet(user, DB))
            mechanisms = [m for m in self._read(sock)[4:].split(b"\0") if m]
            first = b"n,,n=,r=abcdefghijklmnopqrstuvwx"
            body = b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first
            sock.sendall(b"p" + struct.pack("!I", len(body) + 4) + body)
            attrs = dict(item.split(b"=", 1) for item in self._read(sock)[4:].split(b","))
            return mechanisms, attrs[b"s"], attrs[b"i"]

    @staticmethod
    def _read(sock):
        """The body of the next message (an Authentication request here)."""
        data = b""
        while len(data) < 5 or len(data) < 1 + struct.unpack("!I", data[1:5])[0]:
            data += sock.recv(4096)
        assert data[:1] == b"R", data
        return data[5:1 + struct.unpack("!I", data[1:5])[0]]

    def test_scram_refuses_a_user_with_only_an_md5_secret(self):
        self.assert_refused("28P01", self.scram_proxy, "app_md5", PASSWORDS["app_md5"])
        self.assertIn("MD5 hash", self.scram_proxy.log_text())

    # --- MD5 ----------------------------------------------------------------------------------

    def test_md5_login_with_md5_pass_through(self):
        client = self.login(self.md5_proxy, "app_md5", PASSWORDS["app_md5"])
        self.assertEqual(client.auth_codes[0], 5)  # AuthenticationMD5Password
        self.assertEqual(client.query("select current_user"), [["app_md5"]])
        client.close()
        env = self.md5_proxy.libpq_env(user="app_md5", dbname=DB)
        env["PGPASSWORD"] = PASSWORDS["app_md5"]
        out = run([self.cluster.psql, "-X", "-At", "-c", "select current_user"], env=env).stdout
        self.assertEqual(out.strip(), "app_md5")
        # A different salt every time.
        again = self.login(self.md5_proxy, "app_md5", PASSWORDS["app_md5"])
        self.assertNotEqual(client.salts, again.salts)
        again.close()
        self.assert_no_secret_logged(self.md5_proxy)

    def test_md5_method_uses_scram_for_a_scram_secret(self):
        client = self.login(self.md5_proxy, "app_scram", PASSWORDS["app_scram"])
        self.assertEqual(client.auth_codes[0], 10)  # AuthenticationSASL, as PostgreSQL does
        self.assertEqual(client.query("select current_user"), [["app_scram"]])
        client.close()

    # --- auth.query -----------------------------------------------------------------------------

    def test_auth_query_on_blue(self):
        proxy = self.start_pgflip({"auth": {"method": "scram-sha-256", "query_user": "postgres",
                                            "query_database": "postgres"}})
        client = self.login(proxy, "app_scram", PASSWORDS["app_scram"])
        self.assertEqual(client.query("select current_user"), [["app_scram"]])
        client.close()
        self.assert_refused("28P01", proxy, "app_scram", "wrong-password")
        self.assert_refused("28P01", proxy, "no_such_role", "whatever")
        # The lookup ran as postgres with the name as a parameter: a quote cannot inject SQL.
        self.assert_refused("28P01", proxy, "x' or 'a'='a", "whatever")
        self.assert_no_secret_logged(proxy)

    def test_auth_query_connections_are_reused(self):
        # Lookups run in their own database here, so its backends are the lookups' alone.
        self.cluster.recreate_database("authq_reuse")
        proxy = self.start_pgflip({"auth": {"method": "scram-sha-256", "query_user": "postgres",
                                            "query_database": "authq_reuse"}})

        def lookup_backends():
            with self.cluster.connect() as conn:
                return {pid for (pid,) in conn.execute(
                    "select pid from pg_stat_activity where datname = 'authq_reuse' "
                    "and application_name = 'pgflip auth_query'").fetchall()}

        def logins(count):
            for _ in range(count):
                client = self.login(proxy, "app_scram", PASSWORDS["app_scram"])
                self.assertEqual(client.query("select current_user"), [["app_scram"]])
                client.close()

        logins(6)
        kept = lookup_backends()
        # Sequential logins: one idle lookup connection per worker (2) at most, not one each.
        self.assertTrue(1 <= len(kept) <= 2, kept)
        logins(6)
        self.assertEqual(lookup_backends(), kept)  # the same backends served again

        # The server ends them (a restart, idle_session_timeout): the next lookups open anew.
        with self.cluster.connect() as conn:
            conn.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                         "where datname = 'authq_reuse'")
        logins(4)
        self.assertFalse(lookup_backends() & kept)
        self.assert_refused("28P01", proxy, "app_scram", "wrong-password")

    def test_auth_query_failure_is_reported(self):
        proxy = self.start_pgflip({"auth": {"method": "scram-sha-256", "query_user": "postgres",
                                            "query": "select * from no_such_table where $1 = ''"}})
        error = self.assert_refused("08006", proxy, "app_scram", PASSWORDS["app_scram"])
        self.assertIn("could not look up", error.fields["M"])
        self.assertIn("no_such_table", proxy.log_text())

    def test_check_config_reads_the_users_file_and_certificates(self):
        binary = harness.Pgflip(self.cluster).binary
        broken = self.tmp / "broken-userlist.txt"
        broken.write_text('"alice" "secret"\nbob secret\n')
        base = ('[admin]\nsocket = "/tmp/pgflip-it-check.sock"\n[blue]\nhost = "127.0.0.1"\n'
                '[auth]\nmethod = "scram-sha-256"\n')
        cases = {
            "users": (f'users_file = "{broken}"\n', f"{broken}:2: expected a user name"),
            "missing users": ('users_file = "/nonexistent/userlist.txt"\n',
                              "/nonexistent/userlist.txt: cannot read the users file"),
            "certificate": ('[tls]\ncert_file = "/nonexistent/c.pem"\nkey_file = "/nonexistent/k.pem"\n',
                            "tls.cert_file /nonexistent/c.pem: cannot load the certificate"),
        }
        for name, (extra, message) in cases.items():
            with self.subTest(name):
                path = self.tmp / "check.toml"
                path.write_text(base + extra)
                proc = run([binary, "--check-config", str(path)], check=False)
                self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
                self.assertIn(message, proc.stderr)
        path = self.tmp / "check.toml"
        path.write_text(base + f'users_file = "{self.users}"\n')
        self.assertEqual(run([binary, "--check-config", str(path)]).returncode, 0)

    # --- Limits and timeouts --------------------------------------------------------------------

    def trust_proxy(self, **server):
        return self.start_pgflip({"auth": {"method": "trust"}, "server": server})

    def test_max_client_conn(self):
        proxy = self.trust_proxy(max_client_conn=3)
        clients = [harness.RawClient(proxy.port, database=DB) for _ in range(3)]
        with self.assertRaises(harness.ServerError) as caught:
            harness.RawClient(proxy.port, database=DB).close()
        self.assertEqual(caught.exception.sqlstate, "53300")
        self.assertIn("max_client_conn", caught.exception.fields["M"])
        # Silent connections count too, until the startup timeout closes them.
        clients.pop().close()
        harness.wait_until(lambda: self._can_connect(proxy), 10, message="a free slot")
        for client in clients:
            client.close()

    def _can_connect(self, proxy):
        try:
            harness.RawClient(proxy.port, database=DB).close()
            return True
        except harness.ServerError:
            return False

    def test_per_user_and_per_database_limits(self):
        proxy = self.trust_proxy(max_client_conn_per_user=2, max_client_conn_per_database=3)
        a = [harness.RawClient(proxy.port, user="app_trust", database=DB) for _ in range(2)]
        with self.assertRaises(harness.ServerError) as user_limit:
            harness.RawClient(proxy.port, user="app_trust", database=DB).close()
        self.assertEqual(user_limit.exception.sqlstate, "53300")
        self.assertIn('role "app_trust"', user_limit.exception.fields["M"])
        b = harness.RawClient(proxy.port, user="postgres", database=DB)
        with self.assertRaises(harness.ServerError) as db_limit:
            harness.RawClient(proxy.port, user="postgres", database=DB).close()
        self.assertEqual(db_limit.exception.sqlstate, "53300")
        self.assertIn(f'database "{DB}"', db_limit.exception.fields["M"])
        harness.RawClient(proxy.port, user="postgres", database="postgres").close()
        a.pop().close()
        harness.wait_until(lambda: self._user_can_connect(proxy), 10, message="user slot freed")
        for client in [*a, b]:
            client.close()

    def _user_can_connect(self, proxy):
        try:
            harness.RawClient(proxy.port, user="app_trust", database="postgres").close()
            return True
        except harness.ServerError:
            return False

    def test_idle_client_timeout(self):
        proxy = self.trust_proxy(client_idle_timeout_ms=300)
        # Taken before the idle client exists: its idle timer can only start later, so the
        # error must come at least 0.3 s after this (never early), however slow the machine.
        start = time.monotonic()
        idle = harness.RawClient(proxy.port, database=DB)
        busy = harness.RawClient(proxy.port, database=DB)
        busy.query("begin")  # inside a transaction: not idle, not closed
        kind, body = idle.read_message()
        self.assertEqual(kind, b"E")
        self.assertEqual(harness.parse_error_fields(body)["C"], "57P05")
        self.assertGreaterEqual(time.monotonic() - start, 0.25)
        self.assertTrue(frontdoor.closed_within(idle.sock, 5))
        self.assertEqual(busy.query("select 1"), [["1"]])
        busy.query("commit")
        busy.close()
        idle.sock.close()

    def test_startup_timeout_closes_silent_and_slow_clients(self):
        proxy = self.start_pgflip({"server": {"startup_timeout_ms": 500},
                                   **self.auth("scram-sha-256")})
        silent = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        partial = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        partial.sendall(frontdoor.startup_packet("app_scram", DB)[:7])
        mid_auth = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        mid_auth.sendall(frontdoor.startup_packet("app_scram", DB))
        self.assertEqual(mid_auth.recv(1), b"R")  # AuthenticationSASL, never answered
        start = time.monotonic()
        for sock in (silent, partial, mid_auth):
            self.assertTrue(frontdoor.closed_within(sock, 5))
            sock.close()
        self.assertLess(time.monotonic() - start, 4)
        self.assertIn("startup timeout in state authenticating", proxy.log_text())


if __name__ == "__main__":
    harness.main()
