"""pgflip logs in to the server as the server asks: SCRAM-SHA-256, MD5, cleartext password, trust;
a wrong configured password reaches the client as SQLSTATE 28P01."""

import harness

METHODS = {  # role: (password, how blue's pg_hba.conf authenticates it)
    "app_scram": ("scram-secret", "scram-sha-256"),
    "app_md5": ("md5-secret", "md5"),
    "app_password": ("plain-secret", "password"),
    "app_trust": ("", "trust"),
}


class ServerAuthTest(harness.PgflipTestCase):
    pgflip_only = True

    def proxy_as(self, user, password, host=None):
        blue = {"user": user, "password": password}
        if host:
            blue["host"] = host
        return self.start_pgflip({"blue": blue})

    def test_each_method_logs_in_as_configured_user(self):
        for role, (password, method) in METHODS.items():
            with self.subTest(role=role, method=method):
                proxy = self.proxy_as(role, password)
                # The client's own user name does not matter: pgflip logs in as blue.user.
                with proxy.connect(user="someone_else", dbname="app") as conn:
                    user, db = conn.execute("select current_user, current_database()").fetchone()
                    self.assertEqual((user, db), (role, "app"))
                    # The session is usable for real work under that role.
                    conn.execute("create temp table t (x int)")
                    conn.execute("insert into t select generate_series(1, 100)")
                    self.assertEqual(conn.execute("select sum(x) from t").fetchone(), (5050,))
                proxy.stop()

    def test_wrong_password_gives_28P01(self):
        for role in ("app_scram", "app_md5", "app_password"):
            with self.subTest(role=role):
                proxy = self.proxy_as(role, "not-the-password")
                with self.assertRaises(harness.ServerError) as caught:
                    harness.RawClient(proxy.port, user=role, database="app").close()
                self.assertEqual(caught.exception.sqlstate, "28P01", caught.exception.fields)
                self.assertEqual(caught.exception.fields.get("S"), "FATAL")
                # pgflip itself keeps running and serves the next client the same way.
                self.assertTrue(proxy.running())
                with self.assertRaises(harness.ServerError):
                    harness.RawClient(proxy.port, user=role, database="app").close()
                proxy.stop()

    def test_client_user_passes_through_when_blue_user_empty(self):
        proxy = self.start_pgflip()
        with proxy.connect(user="app_trust", dbname="app") as conn:
            self.assertEqual(conn.execute("select current_user").fetchone(), ("app_trust",))
        with proxy.connect(user="postgres", dbname="postgres") as conn:
            self.assertEqual(conn.execute("select current_user").fetchone(), ("postgres",))

    def test_blue_over_unix_socket(self):
        proxy = self.start_pgflip({"blue": {"host": self.cluster.blue_socket_dir}})
        with proxy.connect(user="postgres", dbname="app") as conn:
            # A Unix-socket backend has no client address.
            addr, user = conn.execute("select inet_client_addr(), current_user").fetchone()
            self.assertIsNone(addr)
            self.assertEqual(user, "postgres")


if __name__ == "__main__":
    harness.main()
