"""Switchovers the guardrails refuse: green too far behind (max_lag_bytes, max_lag_ms), DDL run on
blue since init, a transaction on blue older than max_transaction_age_ms, a precheck FAIL, green
unreachable. Each refusal must say what is wrong and how to fix it (the configuration key or the
pgflipctl command), and change nothing on either side: blue not fenced (read-only default,
connection limits, logins), no sentinel, slot, publication or subscription beyond what
replication init made, the state file untouched, and the clients still served by blue in the
same session."""

import contextlib
import pathlib

import psycopg

import harness
from harness import wait_until
from test_switchover import SwitchoverTestCase

# Limits that a healthy test replication never reaches: each test lowers only the one it trips.
LENIENT = {"max_lag_bytes": 1 << 34, "max_lag_ms": 600000, "max_transaction_age_ms": 600000}


class GuardrailTest(SwitchoverTestCase):
    # --- set-up ------------------------------------------------------------------------

    def replicated(self, label, switchover=None):
        """A database replicated by a fresh pgflip, and one client through it that wrote on
        blue. Returns (db, proxy, client, the client's blue backend pid)."""
        db = self.new_database(label)
        proxy = self.start_switchover_pgflip([db], {"switchover": {**LENIENT, **(switchover or {})}})
        self.replication_init(proxy)
        client = self.client(proxy, db)
        return db, proxy, client, client.execute("SELECT pg_backend_pid()").fetchone()[0]

    def client(self, proxy, db):
        client = proxy.connect(dbname=db)
        self.addCleanup(client.close)
        client.execute("INSERT INTO so_probe (note) VALUES ('through pgflip, before')")
        return client

    def hold_green_apply(self, db):
        """Green's apply worker blocks on so_probe (a lock on green that blocks INSERT but not
        SELECT) until the returned function releases it."""
        conn = psycopg.connect(self.cluster.dsn("green", dbname=db))  # a transaction
        conn.execute("LOCK TABLE so_probe IN EXCLUSIVE MODE")

        def release():
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            conn.close()
        self.addCleanup(release)
        return release

    def replication_status(self, proxy, db):
        status = self.ctl_ok(proxy, "replication", "status").result
        return next(d for d in status["databases"] if d["database"] == db)

    # --- what a switchover would change ------------------------------------------------

    def snapshot(self, db, proxy):
        """Everything a switchover changes on either side, as comparable values."""
        schema = self.prefix
        state = {}
        with self.cluster.connect() as conn:  # blue's maintenance database
            state["blue default_transaction_read_only"] = conn.execute(
                "SHOW default_transaction_read_only").fetchone()[0]
            state["blue ALTER SYSTEM"] = conn.execute(
                "SELECT name, setting FROM pg_file_settings "
                "WHERE name = 'default_transaction_read_only'").fetchall()
            state["blue connection limits"] = conn.execute(
                "SELECT datname, datconnlimit FROM pg_database ORDER BY 1").fetchall()
            state["blue logins"] = conn.execute(
                "SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles ORDER BY 1").fetchall()
            fence = f'"{schema}".fence'  # made by the first fence
            state["blue fence record"] = (
                conn.execute(f"SELECT count(*) FROM {fence}").fetchone()[0]
                if conn.execute("SELECT to_regclass(%s)", (fence,)).fetchone()[0] else 0)
            state["blue slots"] = conn.execute(
                "SELECT slot_name, slot_type, database FROM pg_replication_slots "
                "WHERE slot_name LIKE %s ORDER BY 1", (schema + "\\_%",)).fetchall()
        with self.cluster.connect(dbname=db) as conn:
            state["blue publications"] = conn.execute(
                "SELECT pubname FROM pg_publication ORDER BY 1").fetchall()
            state["blue sentinels"] = conn.execute(
                f"SELECT count(*) FROM \"{schema}\".heartbeat WHERE kind = 'sentinel'"
            ).fetchone()[0]
        with self.cluster.connect("green", dbname=db) as conn:
            state["green default_transaction_read_only"] = conn.execute(
                "SHOW default_transaction_read_only").fetchone()[0]
            state["green subscriptions"] = conn.execute(
                "SELECT subname, subenabled, subslotname FROM pg_subscription "
                "ORDER BY 1").fetchall()
            state["green sentinels"] = conn.execute(
                f"SELECT count(*) FROM \"{schema}\".heartbeat WHERE kind = 'sentinel'"
            ).fetchone()[0]
        path = pathlib.Path(proxy.overrides["switchover"]["state_file"])
        state["state file"] = path.read_text() if path.exists() else None
        status = self.status(proxy)
        state["pgflip active/epoch"] = (status["active"], status["epoch"])
        return state

    def assert_replication_as_init_left_it(self, before):
        """Exactly what replication init made: one slot, one publication, one subscription."""
        self.assertEqual(len(before["blue slots"]), 1, before)
        self.assertEqual(before["blue publications"], [(f"{self.prefix}_pub",)], before)
        ours = [s for s in before["green subscriptions"] if s[0].startswith(self.prefix + "_")]
        self.assertEqual(len(ours), 1, before)
        self.assertEqual(before["blue default_transaction_read_only"], "off", before)
        self.assertEqual(before["blue fence record"], 0, before)
        self.assertEqual(before["blue sentinels"], 0, before)
        self.assertIsNone(before["state file"], "no switchover has committed yet")
        self.assertEqual(before["pgflip active/epoch"], ("blue", 0), before)

    # --- the refusal ---------------------------------------------------------------------

    def refused(self, proxy, db, client, pid, *fixes, before=None):
        """Runs a switchover that the guardrails must refuse; checks that the reason names each
        of `fixes` (regular expressions), that nothing changed and that the client goes on
        on blue in its own session. Returns the reason."""
        before = before or self.snapshot(db, proxy)
        self.assert_replication_as_init_left_it(before)
        so = self.switchover(proxy, "--timeout", "20")
        self.assertEqual(so.returncode, 1, str(so))
        self.assertFalse(so.ok, str(so))
        report = so.result
        self.assertEqual(report.get("outcome"), "aborted", str(so))
        self.assertEqual(report.get("failed_step"), "guardrails", str(so))
        self.assertEqual(report.get("active"), "blue", str(so))
        self.assertEqual(so.steps(), [], f"no step may have run after the guardrails\n{so}")
        self.assertEqual(report["sessions"]["moved"], 0, str(so))
        reason = report.get("reason", "")
        for fix in fixes:
            self.assertRegex(reason, fix, str(so))
        self.assertIn(reason, proxy.log_text(), "the refusal is logged with its reason")
        self.assertEqual(self.snapshot(db, proxy), before, "the refused switchover changed state")
        # The same client, on the same blue backend (never parked, never reconnected).
        self.assertEqual(client.execute("SELECT pg_backend_pid()").fetchone()[0], pid)
        self.assertTrue(client.execute("SHOW server_version").fetchone()[0].startswith("15"))
        client.execute("INSERT INTO so_probe (note) VALUES ('through pgflip, after')")
        self.assertFalse(client.closed)
        # New clients too, and blue takes direct writes.
        with proxy.connect(dbname=db) as other:
            self.assertTrue(other.execute("SHOW server_version").fetchone()[0].startswith("15"))
        self.assert_blue_unfenced(db)
        return reason

    def assert_green_catches_up(self, db):
        """Replication still runs: green gets every so_probe row blue has."""
        with self.cluster.connect(dbname=db) as conn:
            rows = conn.execute("SELECT count(*) FROM so_probe").fetchone()[0]

        def green_rows():
            with self.cluster.connect("green", dbname=db) as conn:
                return conn.execute("SELECT count(*) FROM so_probe").fetchone()[0] == rows
        wait_until(green_rows, 60, interval=0.2, message="green to catch up with blue")

    # --- the guardrails -----------------------------------------------------------------

    def test_lag_in_bytes_over_max_lag_bytes(self):
        limit = 256 * 1024
        db, proxy, client, pid = self.replicated("lagbytes", {"max_lag_bytes": limit})
        release = self.hold_green_apply(db)
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("INSERT INTO so_probe (note) "
                         "SELECT repeat('x', 1000) FROM generate_series(1, 4000)")
        wait_until(lambda: (self.replication_status(proxy, db)["lag_bytes"] or 0) > 2 * limit,
                   30, interval=0.2, message="green to fall behind by more than max_lag_bytes")
        reason = self.refused(proxy, db, client, pid, rf"\[{db}\] green is \d+ bytes of WAL "
                              r"behind blue", rf"switchover\.max_lag_bytes \({limit}\)",
                              r"raise switchover\.max_lag_bytes")
        self.assertNotIn("max_lag_ms", reason)
        release()
        self.assert_green_catches_up(db)

    def test_lag_in_time_over_max_lag_ms(self):
        limit_ms = 300
        db, proxy, client, pid = self.replicated("lagms", {"max_lag_ms": limit_ms})
        release = self.hold_green_apply(db)
        with self.cluster.connect(dbname=db) as conn:  # blocks the apply worker on green
            conn.execute("INSERT INTO so_probe (note) VALUES ('held back on green')")
        wait_until(lambda: (self.replication_status(proxy, db)["lag_seconds"] or 0)
                   > 3 * limit_ms / 1000, 30, interval=0.2,
                   message="green's heartbeat lag to pass max_lag_ms")
        reason = self.refused(proxy, db, client, pid,
                              rf"\[{db}\] green applies blue's changes \d+ ms late",
                              rf"switchover\.max_lag_ms \({limit_ms}\)",
                              r"raise switchover\.max_lag_ms")
        self.assertNotIn("max_lag_bytes", reason)
        release()
        self.assert_green_catches_up(db)

    def test_ddl_on_blue_until_acknowledged(self):
        db, proxy, client, pid = self.replicated("ddl")
        ddl = "CREATE INDEX so_probe_note ON so_probe (note)"
        with self.cluster.connect(dbname=db) as conn:
            conn.execute(ddl)
        self.refused(proxy, db, client, pid, rf"\[{db}\] 1 DDL command\(s\) ran on blue",
                     r"apply them to green, then run 'pgflipctl replication ack-ddl'")
        # The fix the message gives, and the switchover may go ahead (checked by a dry run).
        with self.cluster.connect("green", dbname=db) as conn:
            conn.execute(ddl)
        self.ctl_ok(proxy, "replication", "ack-ddl")
        dry = self.ctl_ok(proxy, "switchover", "--dry-run")
        self.assertEqual(dry.result.get("outcome"), "dry-run", str(dry))

    def test_transaction_older_than_max_transaction_age(self):
        limit_ms = 500
        db, proxy, client, pid = self.replicated("oldxact", {"max_transaction_age_ms": limit_ms})
        old = psycopg.connect(self.cluster.dsn(dbname=db, application_name="it-old-xact"))
        self.addCleanup(old.close)
        old.execute("INSERT INTO so_probe (note) VALUES ('in a long transaction')")  # an xid
        old_pid = old.execute("SELECT pg_backend_pid()").fetchone()[0]

        def age():
            with self.cluster.connect() as conn:
                return conn.execute("SELECT extract(epoch FROM now() - xact_start) FROM "
                                    "pg_stat_activity WHERE pid = %s", (old_pid,)).fetchone()[0]
        wait_until(lambda: age() > 2 * limit_ms / 1000, 30, interval=0.1,
                   message="the transaction to grow older than max_transaction_age_ms")
        self.refused(proxy, db, client, pid,
                     rf"a transaction on blue has been open for [\d.]+ s",
                     rf"switchover\.max_transaction_age_ms \({limit_ms}\)",
                     rf"backend pid {old_pid} \(user postgres, database {db}, "
                     r"application it-old-xact\)",
                     rf"pg_terminate_backend\({old_pid}\)",
                     r"raise switchover\.max_transaction_age_ms")
        # The old transaction was left alone: it commits on blue.
        old.execute("INSERT INTO so_probe (note) VALUES ('still the same transaction')")
        old.commit()
        with self.cluster.connect(dbname=db) as conn:
            self.assertEqual(conn.execute("SELECT count(*) FROM so_probe WHERE note IN "
                                          "('in a long transaction', "
                                          "'still the same transaction')").fetchone()[0], 2)

    def test_precheck_fail(self):
        db, proxy, client, pid = self.replicated("precheck")
        # Large objects are not replicated: the precheck FAILs (creating one is not DDL).
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("SELECT lo_create(0)")
        reason = self.refused(proxy, db, client, pid,
                              rf"\[{db}\] precheck large_objects FAIL",
                              r"logical replication does not copy large objects",
                              r"fix: .*lo_unlink")
        self.assertNotIn("DDL", reason)

    def test_green_unreachable(self):
        db = self.new_database("nogreen")
        setup = self.start_switchover_pgflip([db], {"switchover": LENIENT})
        self.replication_init(setup)
        setup.stop()
        # Another pgflip of the same deployment whose green address has nobody listening (the
        # shared green keeps running for the other tests).
        dead = harness.free_port()
        proxy = self.make_pgflip([db], {"switchover": LENIENT, "green": {"port": dead}})
        self.addCleanup(proxy.stop)
        self.start_and_wait_admin(proxy)
        client = self.client(proxy, db)
        pid = client.execute("SELECT pg_backend_pid()").fetchone()[0]
        reason = self.refused(proxy, db, client, pid,
                              rf"green \(127\.0\.0\.1:{dead}\) cannot be reached",
                              r"start green, or fix green\.host/green\.port")
        self.assertNotIn("blue (", reason)

    def test_several_problems_are_all_named(self):
        db, proxy, client, pid = self.replicated("several", {"max_transaction_age_ms": 500})
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("CREATE INDEX so_probe_note ON so_probe (note)")
            conn.execute("SELECT lo_create(0)")
        old = psycopg.connect(self.cluster.dsn(dbname=db))
        self.addCleanup(old.close)
        old.execute("SELECT txid_current()")

        def old_enough():
            with self.cluster.connect() as conn:
                return conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                    "now() - xact_start > interval '1 second' AND pid <> pg_backend_pid()",
                    (db,)).fetchone()[0] > 0
        wait_until(old_enough, 30, interval=0.1, message="an old transaction")
        self.refused(proxy, db, client, pid, r"ack-ddl", r"lo_unlink",
                     r"max_transaction_age_ms")


class GreenLoginToBlueTest(SwitchoverTestCase):
    """Green's subscriptions log in to blue as blue.admin_user (or by
    replication.blue_conninfo_for_green): without either, green's libpq would pick the
    operating-system user green runs as."""

    def test_init_refuses_without_a_user_for_green(self):
        db = self.new_database("nouser")
        # No admin users: the manager's own logins take libpq's defaults on pgflip's side.
        proxy = self.make_pgflip([db], {"blue": {"admin_user": None},
                                        "green": {"admin_user": None}})
        proxy.env = {"PGUSER": "postgres"}
        self.addCleanup(proxy.stop)
        self.start_and_wait_admin(proxy)
        init = self.ctl(proxy, "replication", "init", "--copy-schema", timeout=180)
        self.assertEqual(init.returncode, 1, str(init))
        self.assertIn("set blue.admin_user (and blue.admin_password) to a superuser login on "
                      "blue, or set replication.blue_conninfo_for_green", init.stdout + init.stderr)
        self.assertNotIn("does not exist", init.stdout + init.stderr)
        # Refused before anything was made.
        with self.cluster.connect() as conn:
            self.assertEqual(conn.execute(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE %s",
                (self.prefix + "\\_%",)).fetchone()[0], 0)
        with self.cluster.connect(dbname=db) as conn:
            self.assertEqual(conn.execute("SELECT count(*) FROM pg_publication").fetchone()[0], 0)
            self.assertIsNone(conn.execute("SELECT to_regnamespace(%s)",
                                           (self.prefix,)).fetchone()[0])
        with self.cluster.connect("green") as conn:
            self.assertEqual(conn.execute("SELECT count(*) FROM pg_subscription WHERE subname "
                                          "LIKE %s", (self.prefix + "\\_%",)).fetchone()[0], 0)

    def test_check_config_names_the_key(self):
        proxy = self.make_pgflip(["postgres"], {"blue": {"admin_user": None}})
        proxy.config_path.write_text(proxy.config(harness.free_port()))
        checked = harness.run([proxy.binary, "--check-config", str(proxy.config_path)],
                              check=False)
        self.assertNotEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.assertIn("blue.admin_user: is empty while green.admin_user is set", checked.stderr)
        self.assertIn("or set replication.blue_conninfo_for_green", checked.stderr)


if __name__ == "__main__":
    harness.main()
