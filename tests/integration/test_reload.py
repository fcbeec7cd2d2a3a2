"""Configuration reload: SIGHUP and `pgflipctl reload` re-read the file pgflip was started with.
A new user in the users file can log in afterwards while existing sessions carry on; a broken file
(syntax error, unknown key) is refused whole with a reason naming the file and key, and pgflip keeps
serving with the old configuration; limits and the log level change live; server.listen is
reported as needing a restart."""

import json
import pathlib
import shutil
import signal
import subprocess
import tempfile

import frontdoor
import harness
from harness import wait_until

DB = "app"


pgflipctl_binary = harness.pgflipctl_binary


class ReloadTest(harness.PgflipTestCase):
    pgflip_only = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pgflip-reload-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)

    # --- helpers ----------------------------------------------------------------------------

    def start(self, overrides):
        return self.start_pgflip(overrides).wait_admin_socket()

    def rewrite(self, proxy, section, **keys):
        """Changes keys of the running pgflip's config file (None removes a key)."""
        proxy.overrides.setdefault(section, {}).update(keys)
        proxy.config_path.write_text(proxy.config(proxy.port))

    def reload(self, proxy):
        """`pgflipctl --socket ... --json reload` (not --config: the file may be broken)."""
        cmd = [pgflipctl_binary(), "--socket", str(proxy.admin_dir / "admin.sock"), "--json",
               "reload"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        self.assertTrue(lines, f"no reply from pgflipctl: {proc.stderr}")
        return proc.returncode, lines[-1], proc.stderr

    def reload_ok(self, proxy):
        code, reply, stderr = self.reload(proxy)
        self.assertEqual(code, 0, f"{reply} {stderr}")
        self.assertTrue(reply["ok"], reply)
        return reply["result"]

    def log_count(self, proxy, text):
        return proxy.log_text().count(text)

    def can_log_in(self, proxy, user, password):
        try:
            frontdoor.AuthClient(proxy.port, user, password, database=DB).close()
            return True
        except harness.ServerError as e:
            self.assertEqual(e.sqlstate, "28P01", e.fields)
            return False

    # --- tests -----------------------------------------------------------------------------

    def test_sighup_adds_a_user_and_keeps_sessions(self):
        users = self.tmp / "sighup-userlist.txt"
        users.write_text(frontdoor.userlist({"app_trust": frontdoor.scram_secret("trust-pw")}))
        proxy = self.start({"auth": {"method": "scram-sha-256", "users_file": str(users)}})
        existing = frontdoor.AuthClient(proxy.port, "app_trust", "trust-pw", database=DB)
        existing.query("begin")
        existing.query("create temp table t (x int)")
        self.assertFalse(self.can_log_in(proxy, "app_password", "plain-secret"))

        users.write_text(frontdoor.userlist({"app_trust": frontdoor.scram_secret("trust-pw"),
                                             "app_password": "plain-secret"}))
        reloads = self.log_count(proxy, "configuration reloaded (SIGHUP)")
        proxy.signal(signal.SIGHUP)
        wait_until(lambda: self.log_count(proxy, "configuration reloaded (SIGHUP)") > reloads, 10,
                   message="the SIGHUP reload in the log")
        self.assertIn("changed: auth.users_file", proxy.log_text())
        wait_until(lambda: self.can_log_in(proxy, "app_password", "plain-secret"), 10,
                   message="the new user logging in")
        client = frontdoor.AuthClient(proxy.port, "app_password", "plain-secret", database=DB)
        self.assertEqual(client.query("select current_user"), [["app_password"]])
        client.close()
        # The session from before the reload is untouched, transaction and all.
        existing.query("insert into t values (1)")
        self.assertEqual(existing.query("select count(*) from t"), [["1"]])
        existing.query("commit")
        existing.close()
        self.assertTrue(proxy.running())

    def test_broken_config_is_refused_and_the_old_one_kept(self):
        users = self.tmp / "broken-userlist.txt"
        users.write_text(frontdoor.userlist({"app_trust": frontdoor.scram_secret("trust-pw")}))
        proxy = self.start({"auth": {"method": "scram-sha-256", "users_file": str(users)}})
        good = proxy.config_path.read_text()

        # A syntax error: named with the file, line and column.
        proxy.config_path.write_text(good + "\n[server\nmax_client_conn = 1\n")
        code, reply, stderr = self.reload(proxy)
        self.assertEqual(code, 1)
        self.assertFalse(reply["ok"])
        self.assertEqual(reply["error"]["code"], "config")
        message = reply["error"]["message"]
        self.assertIn(str(proxy.config_path), message)
        self.assertIn("syntax error", message)
        self.assertIn(message, stderr)
        wait_until(lambda: "configuration reload (admin) failed" in proxy.log_text(), 10,
                   message="the failure in the log")
        self.assertIn("the running configuration stays", proxy.log_text())

        # An unknown key: named in full, with its line.
        proxy.config_path.write_text(good.replace("[server]\n", "[server]\nmax_clients = 1\n"))
        code, reply, _ = self.reload(proxy)
        self.assertEqual(code, 1)
        self.assertRegex(reply["error"]["message"],
                         rf"^{proxy.config_path}:\d+:\d+: server\.max_clients: unknown key")

        # A broken users file: refused as well, the old users stay.
        proxy.config_path.write_text(good)
        users.write_text('"app_trust" "x"\nbroken line\n')
        code, reply, _ = self.reload(proxy)
        self.assertEqual(code, 1)
        self.assertIn(f"{users}:2", reply["error"]["message"])

        # Still serving, with the old users and settings: a new login works.
        self.assertTrue(self.can_log_in(proxy, "app_trust", "trust-pw"))
        users.write_text(frontdoor.userlist({"app_trust": frontdoor.scram_secret("trust-pw")}))
        result = self.reload_ok(proxy)
        self.assertEqual(result["needs_restart"], [])

    def test_limit_and_log_level_apply_live(self):
        proxy = self.start({"auth": {"method": "trust"}, "server": {"max_client_conn": 10},
                            "log": {"level": "info"}})
        clients = [harness.RawClient(proxy.port, database=DB) for _ in range(2)]
        self.assertNotIn("connection from", proxy.log_text())  # a debug line

        self.rewrite(proxy, "server", max_client_conn=2)
        self.rewrite(proxy, "log", level="debug")
        result = self.reload_ok(proxy)
        self.assertIn("server.max_client_conn", result["changed"])
        self.assertIn("log.level", result["changed"])
        self.assertEqual(result["needs_restart"], [])
        with self.assertRaises(harness.ServerError) as caught:
            harness.RawClient(proxy.port, database=DB).close()
        self.assertEqual(caught.exception.sqlstate, "53300")
        self.assertIn("max_client_conn = 2", caught.exception.fields["M"])
        # Existing clients are not cut off by the lower limit.
        for client in clients:
            self.assertEqual(client.query("select 1"), [["1"]])
        clients.pop().close()
        client = wait_until(lambda: self._connect(proxy), 10, message="a free slot")
        wait_until(lambda: "connection from" in proxy.log_text(), 10,
                   message="a debug line after the level changed")
        for c in [client, *clients]:
            c.close()

    def _connect(self, proxy):
        try:
            return harness.RawClient(proxy.port, database=DB)
        except harness.ServerError:
            return None

    def test_listen_change_needs_a_restart(self):
        proxy = self.start({"auth": {"method": "trust"}})
        old_port = proxy.port
        self.rewrite(proxy, "server", listen=f"127.0.0.1:{harness.free_port()}",
                     workers=1, client_idle_timeout_ms=60000)
        result = self.reload_ok(proxy)
        self.assertIn("server.listen", result["needs_restart"])
        self.assertIn("server.workers", result["needs_restart"])
        self.assertIn("server.client_idle_timeout_ms", result["changed"])
        self.assertNotIn("server.listen", result["changed"])
        # Still on the old address.
        client = harness.RawClient(old_port, database=DB)
        self.assertEqual(client.query("select 1"), [["1"]])
        client.close()
        self.assertIn("needs restart: server.listen, server.workers", proxy.log_text())
        # The text reply for people says the same.
        code, _, _ = self.reload(proxy)
        self.assertEqual(code, 0)
        plain = subprocess.run([pgflipctl_binary(), "--socket",
                                str(proxy.admin_dir / "admin.sock"), "reload"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(plain.returncode, 0, plain.stderr)
        self.assertIn("needs a restart (not used): server.listen, server.workers", plain.stdout)


if __name__ == "__main__":
    harness.main()
