"""The admin console through real psql (and raw protocol): every console command, who may run
what, the SQLSTATEs of its errors; pgflipctl's show commands (--json) and status --watch; a
SWITCHOVER DRY RUN through the console after a real replication init."""

import json
import re
import socket

import psycopg

import frontdoor
import harness
import test_switchover
from harness import RawClient, ServerError, run, wait_until

ADMIN, STATS = "ops", "monitor"
DB = "it_console"  # replicated database (replication status only: nothing is set up)
BLUE_SECRET, QUERY_SECRET = "s3cret-blue-pw", "s3cret-lookup-pw"


def parse_table(stdout):
    """psql -A -F <tab> -P footer=off output → list of dicts (NULL and '' both read as '')."""
    lines = [line for line in stdout.splitlines() if line]
    if not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def admin_socket_accepts(proxy):
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(proxy.admin_dir / "admin.sock"))
            return True
        except OSError:
            return False


def next_error(client):
    """Reads messages until an ErrorResponse; returns it as ServerError."""
    while True:
        kind, body = client.read_message()
        if kind == b"E":
            return ServerError(harness.parse_error_fields(body))


class ConsoleMixin:
    def console(self, sql, user=ADMIN, proxy=None, check=True):
        """Runs `sql` on the console with psql; returns (CompletedProcess, rows)."""
        proxy = proxy or self.proxy
        proc = run([self.cluster.psql, "-X", "-A", "-F", "\t", "-P", "footer=off",
                    "-v", "VERBOSITY=verbose", "-c", sql],
                   env=proxy.libpq_env(user=user, dbname="pgflip"), check=check)
        return proc, parse_table(proc.stdout) if proc.returncode == 0 else []

    def console_error(self, sql, user=ADMIN, proxy=None):
        """Runs `sql` expecting an error; returns (SQLSTATE, stderr)."""
        proc, _ = self.console(sql, user=user, proxy=proxy, check=False)
        self.assertNotEqual(proc.returncode, 0, f"{sql} did not fail:\n{proc.stdout}")
        match = re.search(r"(?:ERROR|FATAL):\s+([0-9A-Z]{5}):", proc.stderr)
        self.assertIsNotNone(match, proc.stderr)
        return match.group(1), proc.stderr

    def pgflipctl(self, proxy, *args, check=True):
        cmd = [test_switchover.pgflipctl_binary(), "--config", str(proxy.config_path), *args]
        return run(cmd, check=check, timeout=60)

    def pgflipctl_json(self, proxy, *args):
        out = self.pgflipctl(proxy, "--json", *args).stdout
        reply = json.loads(out.strip().splitlines()[-1])
        self.assertTrue(reply["ok"], out)
        return reply["result"]


class ConsoleTest(ConsoleMixin, harness.PgflipTestCase):
    pgflip_only = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.recreate_database(DB)
        cls.proxy = cls.start_class_pgflip({
            "auth": {"method": "trust", "admin_users": [ADMIN], "stats_users": [STATS],
                     "query_password": QUERY_SECRET},
            "blue": {"admin_user": "postgres", "password": BLUE_SECRET},
            "green": {"admin_user": "postgres"},
            "replication": {"databases": [DB]},
        })
        # The admin socket appears just after the listener.
        wait_until(lambda: admin_socket_accepts(cls.proxy), 10, message="admin socket")

    def open_clients(self):
        """Three application connections through pgflip; their real blue backend pids."""
        conns = [
            self.proxy.connect(user="postgres", dbname="postgres", application_name="it_console_a"),
            self.proxy.connect(user="postgres", dbname="postgres", application_name="it_console_b"),
            self.proxy.connect(user="app_trust", dbname="app", application_name="it_console_c"),
        ]
        for conn in conns:
            self.addCleanup(conn.close)
        pids = [conn.execute("select pg_backend_pid()").fetchone()[0] for conn in conns]
        return conns, pids

    # --- SHOW ------------------------------------------------------------------------------

    def test_show_clients_lists_open_connections_and_the_console(self):
        _, pids = self.open_clients()
        _, rows = self.console("SHOW CLIENTS")
        clients = [r for r in rows if r["type"] == "client"]
        consoles = [r for r in rows if r["type"] == "console"]
        self.assertEqual(len(clients), 3, rows)
        self.assertEqual(sorted(r["user"] for r in clients), ["app_trust", "postgres", "postgres"])
        self.assertEqual(sorted(r["application_name"] for r in clients),
                         ["it_console_a", "it_console_b", "it_console_c"])
        self.assertEqual(sorted(int(r["server_pid"]) for r in clients), sorted(pids))
        for r in clients:
            self.assertEqual(r["state"], "active")
            self.assertEqual(r["environment"], "blue")
            self.assertEqual(r["tls"], "f")
            self.assertRegex(r["address"], r"^127\.0\.0\.1:\d+$")
            self.assertRegex(r["connected_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(len(consoles), 1, rows)  # this psql
        self.assertEqual((consoles[0]["user"], consoles[0]["database"], consoles[0]["state"],
                          consoles[0]["server_pid"]), (ADMIN, "pgflip", "console", ""))

    def test_show_servers(self):
        _, pids = self.open_clients()
        _, rows = self.console("SHOW SERVERS")
        self.assertEqual(sorted(int(r["server_pid"]) for r in rows), sorted(pids), rows)
        for r in rows:
            self.assertEqual(r["environment"], "blue")
            self.assertEqual(r["address"], f"127.0.0.1:{self.cluster.blue_port}")
            self.assertEqual(r["state"], "active")
        self.assertEqual(sorted(r["database"] for r in rows), ["app", "postgres", "postgres"])

    def test_show_config_masks_secrets(self):
        proc, rows = self.console("SHOW CONFIG")
        self.assertNotIn("s3cret", proc.stdout)
        config = {r["key"]: r for r in rows}
        self.assertEqual(config["server.listen"]["value"], f"127.0.0.1:{self.proxy.port}")
        self.assertEqual(config["server.listen"]["restart"], "t")
        self.assertEqual(config["blue.password"]["value"], "********")
        self.assertEqual(config["auth.query_password"]["value"], "********")
        self.assertEqual(config["auth.admin_users"]["value"], f"['{ADMIN}']")
        self.assertEqual(config["admin.console_database"]["value"], "pgflip")
        self.assertEqual(config["server.workers"]["changed"], "t")  # the harness sets 2
        self.assertEqual(config["switchover.timeout_ms"]["changed"], "f")
        # The same through pgflipctl, as JSON.
        result = self.pgflipctl_json(self.proxy, "show", "config")
        self.assertNotIn("s3cret", json.dumps(result))
        self.assertEqual({r["key"]: r["value"] for r in result}["blue.password"], "********")

    def test_show_state(self):
        self.open_clients()
        _, rows = self.console("SHOW STATE")
        state = {r["key"]: r["value"] for r in rows}
        self.assertEqual(state["active"], "blue")
        self.assertEqual(state["epoch"], "0")
        self.assertEqual(state["switchover"], "idle")
        self.assertEqual(state["clients"], "3")
        self.assertEqual(state["consoles"], "1")
        self.assertEqual(state["blue_fence"], "not fenced")
        self.assertEqual(state["green"], f"127.0.0.1:{self.cluster.green_port}")
        self.assertTrue(state["version"])

    def test_show_replication(self):
        _, rows = self.console("SHOW REPLICATION")
        self.assertEqual([r["database"] for r in rows], [DB], rows)
        self.assertEqual(rows[0]["state"], "absent")
        self.assertEqual(rows[0]["tables_total"], "0")

    def test_show_help(self):
        _, rows = self.console("show help")
        commands = {r["command"]: r for r in rows}
        for name in ("SHOW CLIENTS", "SHOW SERVERS", "SHOW CONFIG", "SHOW STATE",
                     "SHOW REPLICATION", "SHOW HELP", "ABORT", "PAUSE", "RESUME", "RELOAD"):
            self.assertIn(name, commands)
        self.assertEqual(commands["SHOW CLIENTS"]["access"], "stats")
        self.assertEqual(commands["SHOW CLIENTS"]["available"], "t")
        self.assertEqual(commands["ABORT"]["access"], "admin")
        self.assertTrue(any(c.startswith("SWITCHOVER [DRY RUN]") for c in commands))

    def test_several_commands_in_one_query_and_types(self):
        client = RawClient(self.proxy.port, user=ADMIN, database="pgflip")
        self.addCleanup(client.close)
        self.assertTrue(client.parameters["server_version"].startswith("pgflip "))
        self.assertEqual(client.parameters["client_encoding"], "UTF8")
        self.assertEqual(client.parameters["standard_conforming_strings"], "on")
        self.assertIsNotNone(client.backend_key)
        rows = client.query("SHOW STATE; SHOW HELP")
        self.assertIn(["active", "blue"], rows)
        self.assertTrue(any(r[0] == "SHOW HELP" for r in rows))
        # A syntax error anywhere stops the whole query before anything runs.
        with self.assertRaises(ServerError) as caught:
            client.query("SHOW STATE; DROP TABLE x")
        self.assertEqual(caught.exception.sqlstate, "42601")
        self.assertEqual(client.status, b"I")
        self.assertEqual(client.query(""), [])  # EmptyQueryResponse, then ready
        # Typed columns, via psycopg (which sends a query without parameters as a simple Query).
        with psycopg.connect(self.proxy.dsn(user=ADMIN, dbname="pgflip"), autocommit=True) as conn:
            cur = conn.execute("SHOW CLIENTS")
            names = [d.name for d in cur.description]
            row = dict(zip(names, cur.fetchall()[0]))
            self.assertIsInstance(row["id"], int)
            self.assertIsInstance(row["server_pid"], (int, type(None)))
            self.assertIsInstance(row["tls"], bool)
            self.assertIsInstance(row["user"], str)
            # The extended protocol (Parse/Bind/...) is refused, and the console stays usable.
            with self.assertRaises(psycopg.Error) as refused:
                conn.execute("SHOW CLIENTS", prepare=True)
            self.assertEqual(refused.exception.sqlstate, "0A000")
            self.assertTrue(conn.execute("SHOW STATE").fetchall())

    # --- who may run what -------------------------------------------------------------------

    def test_other_users_are_refused_at_login(self):
        with self.assertRaises(ServerError) as caught:
            RawClient(self.proxy.port, user="postgres", database="pgflip")
        self.assertEqual(caught.exception.sqlstate, "42501")
        self.assertEqual(caught.exception.fields["S"], "FATAL")
        self.assertIn('"postgres" is not an admin or stats user', str(caught.exception))
        proc, _ = self.console("SHOW CLIENTS", user="app_trust", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("is not an admin or stats user", proc.stderr)

    def test_stats_user_may_show_but_not_act(self):
        _, rows = self.console("SHOW STATE", user=STATS)
        self.assertIn("active", {r["key"] for r in rows})
        for command in ("SWITCHOVER DRY RUN", "ABORT", "PAUSE", "RESUME", "RELOAD"):
            with self.subTest(command=command):
                sqlstate, stderr = self.console_error(command, user=STATS)
                self.assertEqual(sqlstate, "42501", stderr)
                self.assertIn("needs an admin user", stderr)

    # --- errors -----------------------------------------------------------------------------

    def test_unknown_commands_are_syntax_errors(self):
        for sql in ("SELECT 1", "SHOW NONSENSE", "SWITCHOVER NOW", "SWITCHOVER TIMEOUT 0",
                    "ABORT EVERYTHING"):
            with self.subTest(sql=sql):
                sqlstate, stderr = self.console_error(sql)
                self.assertEqual(sqlstate, "42601", stderr)

    def test_abort_with_nothing_running(self):
        sqlstate, stderr = self.console_error("ABORT")
        self.assertEqual(sqlstate, "55000", stderr)
        self.assertIn("no switchover is running", stderr)

    def test_pause_resume_reload_reach_the_dispatcher(self):
        served = {r["command"] for r in self.pgflipctl_json(self.proxy, "help")}
        for verb in ("pause", "resume", "reload", "show stats"):
            with self.subTest(command=verb):
                if verb in served:
                    self.skipTest(f"'{verb}' is registered: tested by its own test")
                sqlstate, stderr = self.console_error(verb.upper())
                self.assertEqual(sqlstate, "0A000", stderr)
                self.assertIn("is not available in this pgflip", stderr)

    def test_switchover_dry_run_fails_guardrails_without_replication(self):
        sqlstate, stderr = self.console_error("SWITCHOVER DRY RUN")
        self.assertEqual(sqlstate, "55000", stderr)
        self.assertIn("aborted at guardrails", stderr)
        self.assertIn(f"[{DB}] replication is absent", stderr)
        self.assertRegex(stderr, r"NOTICE:\s+00000: aborted at guardrails")
        _, rows = self.console("SHOW STATE")
        state = {r["key"]: r["value"] for r in rows}
        self.assertEqual(state["last_switchover_outcome"], "aborted")
        self.assertIn("guardrails", state["last_switchover_reason"])
        self.assertEqual(state["active"], "blue")

    # --- pgflipctl ----------------------------------------------------------------------------

    def test_pgflipctl_show_json_and_tables(self):
        _, pids = self.open_clients()
        rows = self.pgflipctl_json(self.proxy, "show", "clients")
        clients = [r for r in rows if r["type"] == "client"]
        self.assertEqual(sorted(r["server_pid"] for r in clients), sorted(pids))
        keys = list(rows[0].keys())
        self.assertTrue(all(list(r.keys()) == keys for r in rows))  # same keys, same order
        servers = self.pgflipctl_json(self.proxy, "show", "servers")
        self.assertEqual(len(servers), 3)
        state = {r["key"]: r["value"] for r in self.pgflipctl_json(self.proxy, "show", "state")}
        self.assertEqual((state["active"], state["epoch"], state["clients"]), ("blue", 0, 3))
        replication = self.pgflipctl_json(self.proxy, "show", "replication")
        self.assertEqual(replication[0]["database"], DB)
        table = self.pgflipctl(self.proxy, "show", "clients").stdout
        self.assertRegex(table.splitlines()[0], r"^id\s+type\s+user\s+database")
        self.assertIn("it_console_c", table)
        self.assertIn("(3 rows)", table)  # no console: pgflipctl uses the admin socket

    def test_pgflipctl_status_watch(self):
        self.open_clients()
        out = self.pgflipctl(self.proxy, "status", "--watch", "--interval", "0.2", "--count", "2").stdout
        self.assertEqual(out.count("active:"), 2, out)
        self.assertIn("clients:     3 (blue 3, active 3)", out)
        self.assertIn(f"{DB}: absent", out)
        frames = [json.loads(line) for line in self.pgflipctl(
            self.proxy, "--json", "status", "--watch", "--interval", "0.1", "--count", "2"
        ).stdout.splitlines()]
        self.assertEqual(len(frames), 2)
        for frame in frames:
            self.assertEqual(frame["status"]["active"], "blue")
            self.assertEqual(frame["clients"]["total"], 3)
            self.assertEqual(frame["replication"][0]["database"], DB)
        bad = self.pgflipctl(self.proxy, "show", "clients", "--watch", check=False)
        self.assertEqual(bad.returncode, 2)


class ConsoleSetupTest(ConsoleMixin, harness.PgflipTestCase):
    """Each test with a pgflip of its own: login, the console database setting, shutdown."""

    pgflip_only = True

    def test_open_console_does_not_hold_up_shutdown(self):
        proxy = self.start_pgflip({"auth": {"admin_users": [ADMIN]}})
        client = RawClient(proxy.port, user=ADMIN, database="pgflip")
        self.addCleanup(client.close)
        self.assertTrue(client.query("SHOW STATE"))
        proxy.signal(15)
        self.assertEqual(proxy.wait(10), 0)
        self.assertEqual(next_error(client).sqlstate, "57P01")

    def test_console_database_is_configurable_and_can_be_off(self):
        proxy = self.start_pgflip({"admin": {"console_database": "bouncer"},
                                   "auth": {"admin_users": [ADMIN]}})
        client = RawClient(proxy.port, user=ADMIN, database="bouncer")
        self.addCleanup(client.close)
        self.assertIn(["active", "blue"], client.query("SHOW STATE"))
        off = self.start_pgflip({"admin": {"console_database": ""},
                                 "auth": {"admin_users": [ADMIN]}})
        # No console: "pgflip" is an ordinary (here: missing) server database.
        with self.assertRaises(ServerError) as caught:
            RawClient(off.port, user="postgres", database="pgflip")
        self.assertEqual(caught.exception.sqlstate, "3D000")

    def test_console_users_authenticate_like_any_client(self):
        users = self.cluster.dir / "runs" / "console-users.txt"
        users.write_text(frontdoor.userlist({ADMIN: frontdoor.scram_secret("right-pw"),
                                             STATS: "stats-pw"}))
        proxy = self.start_pgflip({"auth": {"method": "scram-sha-256", "users_file": str(users),
                                            "admin_users": [ADMIN], "stats_users": [STATS]}})
        env = proxy.libpq_env(user=ADMIN, dbname="pgflip")
        ok = run([self.cluster.psql, "-X", "-At", "-c", "SHOW STATE"],
                 env=dict(env, PGPASSWORD="right-pw"))
        self.assertIn("active|blue", ok.stdout.splitlines())
        wrong = run([self.cluster.psql, "-X", "-At", "-v", "VERBOSITY=verbose", "-c", "SHOW STATE"],
                    env=dict(env, PGPASSWORD="wrong-pw"), check=False)
        self.assertNotEqual(wrong.returncode, 0)
        self.assertIn("password authentication failed", wrong.stderr)
        stats = run([self.cluster.psql, "-X", "-At", "-c", "SHOW CLIENTS"],
                    env=dict(proxy.libpq_env(user=STATS, dbname="pgflip"), PGPASSWORD="stats-pw"))
        self.assertIn(f"{STATS}|pgflip", stats.stdout)


class ConsoleSwitchoverTest(ConsoleMixin, test_switchover.SwitchoverTestCase):
    """SWITCHOVER through the console once replication is really set up: a dry run, a real one."""

    def test_switchover_dry_run_passes_after_replication_init(self):
        db = self.new_database("console")
        proxy = self.make_pgflip([db], {"auth": {"admin_users": [ADMIN]}})
        self.addCleanup(proxy.stop)
        self.start_and_wait_admin(proxy)
        self.replication_init(proxy)
        _, rows = self.console("SHOW REPLICATION", proxy=proxy)
        self.assertEqual([(r["database"], r["state"]) for r in rows], [(db, "streaming")], rows)
        conn = proxy.connect(dbname=db)
        self.addCleanup(conn.close)
        proc, rows = self.console("SWITCHOVER DRY RUN TIMEOUT 60", proxy=proxy)
        self.assertEqual(rows[0]["switchover"],
                         f"dry run: guardrails pass; a switchover would move 1 session(s) to "
                         f"green (127.0.0.1:{self.cluster.green_port})", proc.stdout)
        self.assertRegex(proc.stderr, r"NOTICE:\s+00000: guardrails\s+[\d.]+ ms")
        _, rows = self.console("SHOW STATE", proxy=proxy)
        state = {r["key"]: r["value"] for r in rows}
        self.assertEqual((state["active"], state["last_switchover_outcome"]), ("blue", "dry-run"))
        # The application connection is untouched (a dry run parks nobody).
        self.assertEqual(conn.execute("select 1").fetchone()[0], 1)
        watch = self.pgflipctl(proxy, "--json", "status", "--watch", "--count", "1").stdout
        frame = json.loads(watch)
        self.assertEqual(frame["replication"][0]["state"], "streaming")
        self.assertIsNotNone(frame["replication"][0]["lag_bytes"])

    def test_switchover_through_the_console_moves_clients_not_consoles(self):
        db = self.new_database("console_so")
        proxy = self.make_pgflip([db], {"auth": {"admin_users": [ADMIN]}})
        self.addCleanup(proxy.stop)
        self.start_and_wait_admin(proxy)
        self.replication_init(proxy)
        app = proxy.connect(dbname=db)
        self.addCleanup(app.close)
        app.execute("INSERT INTO so_probe (note) VALUES ('before')")
        watcher = RawClient(proxy.port, user=ADMIN, database="pgflip")  # stays open throughout
        self.addCleanup(watcher.close)

        proc, rows = self.console("SWITCHOVER TIMEOUT 30", proxy=proxy)
        steps = re.findall(r"NOTICE:\s+00000: (\w+)\s+[\d.]+ ms", proc.stderr)
        self.assertEqual(steps, ["guardrails", "catchup", "prewarm", "park", "fence", "drain",
                                 "sequences", "commit", "flip", "cleanup"], proc.stderr)
        report = "\n".join(r["switchover"] for r in rows)
        self.assertIn("committed", report)
        self.assertIn("sessions: 1 total, 1 moved to green", report)  # the consoles are not in it

        # The application session moved; the console that watched is still there.
        self.assertTrue(app.execute("SHOW server_version").fetchone()[0].startswith("17"))
        app.execute("INSERT INTO so_probe (note) VALUES ('after')")
        state = dict(watcher.query("SHOW STATE"))
        self.assertEqual((state["active"], state["epoch"], state["last_switchover_outcome"]),
                         ("green", "1", "committed"))
        servers = watcher.query("SHOW SERVERS")
        self.assertEqual([(r[2], r[3]) for r in servers], [(db, "green")], servers)
        self.assertEqual(servers[0][4], f"127.0.0.1:{self.cluster.green_port}")
        # Green is active now: a second switchover is refused with 55000.
        sqlstate, stderr = self.console_error("SWITCHOVER", proxy=proxy)
        self.assertEqual(sqlstate, "55000", stderr)
        self.assertIn("green is already active", stderr)


if __name__ == "__main__":
    harness.main()
