"""Switchover under load: pgbench TPC-B through pgflip in simple, extended and prepared mode is
moved from blue (PostgreSQL 15) to green (PostgreSQL 17) in the middle of its run with no failed
transaction, and the TPC-B invariant holds on green; a psycopg session keeps its state (settings,
prepared statements of both kinds, LISTEN, advisory locks) and its identity (SET ROLE, SET SESSION
AUTHORIZATION, with the rows row-level security lets it see) across the switchover.

SwitchoverTestCase (also used by test_switchover_failures.py) gives each test its own database(s)
on the shared clusters, its own pgflip (own replication name prefix, own state file) and, after
the test, puts the clusters back as they were: replication objects gone, the databases dropped
on both sides, blue unfenced."""

import json
import pathlib
import re
import subprocess
import sys
import time
import uuid

import psycopg
from psycopg import sql

import harness
from harness import run, wait_until


pgflipctl_binary = harness.pgflipctl_binary


class CtlResult:
    """One pgflipctl --json run: exit code, the event lines and the final reply."""

    def __init__(self, cmd, returncode, stdout, stderr, elapsed):
        self.cmd, self.returncode, self.stdout, self.stderr = cmd, returncode, stdout, stderr
        self.elapsed = elapsed
        self.events, self.reply = [], None
        for line in stdout.splitlines():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "event" in message:
                self.events.append(message)
            else:
                self.reply = message

    @property
    def ok(self):
        return bool(self.reply and self.reply.get("ok"))

    @property
    def result(self):
        return (self.reply or {}).get("result") or {}

    def steps(self):
        return [e["data"]["step"] for e in self.events
                if e.get("event") == "step" and isinstance(e.get("data"), dict)]

    def __str__(self):
        return (f"{' '.join(self.cmd[1:])}: exit {self.returncode} in {self.elapsed:.1f}s\n"
                f"stdout:\n{harness.tail(self.stdout, 60)}\nstderr:\n{harness.tail(self.stderr)}")


def pgbench_counts(output):
    """(processed, expected, failed) from pgbench's summary (failed is None when not printed)."""
    processed = re.search(r"number of transactions actually processed: (\d+)(?:/(\d+))?", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    return (int(processed.group(1)) if processed else None,
            int(processed.group(2)) if processed and processed.group(2) else None,
            int(failed.group(1)) if failed else None)


class SwitchoverTestCase(harness.PgflipTestCase):
    pgflip_only = True

    # --- databases -------------------------------------------------------------------------

    def unique(self, label):
        """A short name unique to this test run: database names and the replication prefix."""
        return f"{label}_{uuid.uuid4().hex[:6]}"

    def new_database(self, label):
        """A fresh database on blue (absent on green); dropped on both sides after the test."""
        name = self.unique(f"it_so_{label}")
        self.cluster.recreate_database(name)
        self._databases.append(name)
        with self.cluster.connect(dbname=name) as conn:
            # For write probes: DDL on blue after replication init would stop the switchover.
            conn.execute("CREATE TABLE so_probe (id bigserial PRIMARY KEY, note text)")
        return name

    def pgbench_init(self, db, scale=1):
        """pgbench -i straight on blue, and REPLICA IDENTITY FULL for pgbench_history (no key)."""
        run([self.cluster.pgbench, "-i", "-q", "-s", str(scale), "-h", "127.0.0.1",
             "-p", str(self.cluster.blue_port), "-U", "postgres", db], timeout=120)
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("ALTER TABLE pgbench_history REPLICA IDENTITY FULL")

    # --- pgflip --------------------------------------------------------------------------

    def setUp(self):
        super().setUp()
        self._databases = []
        self.prefix = self.unique("so").replace("-", "_")
        # Registered before any pgflip starts, so it runs after they are stopped.
        self.addCleanup(self.reset_clusters)

    def make_pgflip(self, databases, overrides=None, name=None):
        """A Pgflip (not started) replicating `databases`, with its own prefix and state file."""
        sections = {
            "blue": {"admin_user": "postgres"},
            "green": {"admin_user": "postgres"},
            "replication": {"databases": list(databases), "name_prefix": self.prefix,
                            "heartbeat_interval_ms": 500},
            "switchover": {},
        }
        for section, keys in (overrides or {}).items():
            sections.setdefault(section, {}).update(keys)
        proxy = harness.Pgflip(self.cluster, sections,
                               name=name or self.id().rsplit(".", 1)[-1])
        proxy.overrides["switchover"].setdefault("state_file",
                                                 str(proxy.workdir / "state.json"))
        self._proxies.append(proxy)
        return proxy

    def start_switchover_pgflip(self, databases, overrides=None):
        proxy = self.make_pgflip(databases, overrides)
        self.addCleanup(proxy.stop)
        return self.start_and_wait_admin(proxy)

    def start_and_wait_admin(self, proxy):
        """Starts pgflip and waits for its admin socket too (it appears after the listener)."""
        return proxy.start().wait_admin_socket()

    def ctl(self, proxy, *args, timeout=90):
        cmd = [pgflipctl_binary(), "--config", str(proxy.config_path), "--json", *args]
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return CtlResult(cmd, proc.returncode, proc.stdout, proc.stderr,
                         time.monotonic() - started)

    def ctl_ok(self, proxy, *args, timeout=90):
        result = self.ctl(proxy, *args, timeout=timeout)
        self.assertEqual(result.returncode, 0, str(result))
        self.assertTrue(result.ok, str(result))
        return result

    def replication_init(self, proxy):
        return self.ctl_ok(proxy, "replication", "init", "--copy-schema", timeout=180)

    def status(self, proxy):
        return self.ctl_ok(proxy, "status").result

    def switchover(self, proxy, *args, timeout=90):
        return self.ctl(proxy, "switchover", *args, timeout=timeout)

    def start_ctl(self, proxy, *args):
        """pgflipctl --json in the background (stdout line-buffered for reading events)."""
        cmd = [pgflipctl_binary(), "--config", str(proxy.config_path), "--json", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                bufsize=1)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        proc.cmd, proc.started = cmd, time.monotonic()
        return proc

    def finish_ctl(self, proc, timeout):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.fail(f"{' '.join(proc.cmd[1:])} still running after {timeout}s:\n{out}\n{err}")
        return CtlResult(proc.cmd, proc.returncode, (getattr(proc, "early", "") + out), err,
                         time.monotonic() - proc.started)

    def read_events_until(self, proc, predicate, timeout):
        """Reads pgflipctl --json lines until predicate(message) holds (kept for the result)."""
        proc.early = getattr(proc, "early", "")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            proc.early += line
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if predicate(message):
                return message
        self.fail(f"pgflipctl did not report the awaited event within {timeout}s; got:\n"
                  f"{proc.early}")

    # --- clients -------------------------------------------------------------------------

    def start_pgbench(self, proxy, db, *args):
        cmd = [self.cluster.pgbench, "-n", *args]
        proc = subprocess.Popen(cmd, env=proxy.libpq_env(dbname=db), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        proc.cmd = cmd
        return proc

    def finish_pgbench(self, proc, timeout=120):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.fail(f"pgbench still running after {timeout}s\n{out}\n{harness.tail(err)}")
        return proc.returncode, out, err

    def assert_pgbench_clean(self, returncode, out, err, expected=None):
        detail = f"pgbench exit {returncode}\nstdout:\n{out}\nstderr:\n{harness.tail(err)}"
        self.assertEqual(returncode, 0, detail)
        processed, planned, failed = pgbench_counts(out)
        self.assertEqual(failed, 0, detail)
        if expected is not None:
            self.assertEqual(processed, expected, detail)
            self.assertEqual(planned, expected, detail)
        self.assertNotRegex(err, r"(?i)aborted|error", detail)
        return processed

    def history_count(self, db, env="blue"):
        with self.cluster.connect(env, dbname=db) as conn:
            return conn.execute("SELECT count(*) FROM pgbench_history").fetchone()[0]

    def wait_history(self, db, at_least, timeout=60):
        """Polls blue until pgbench has committed `at_least` transactions; closes its connection
        (the fence terminates other backends on blue)."""
        conn = self.cluster.connect(dbname=db)
        try:
            return wait_until(
                lambda: conn.execute("SELECT count(*) FROM pgbench_history").fetchone()[0]
                >= at_least, timeout, interval=0.05,
                message=f"{at_least} pgbench transactions on blue")
        finally:
            conn.close()

    def check_tpcb_invariant(self, db, env, expected_history=None):
        with self.cluster.connect(env, dbname=db) as conn:
            accounts, tellers, branches, history, count = conn.execute(
                "SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
                "       (SELECT sum(tbalance) FROM pgbench_tellers),"
                "       (SELECT sum(bbalance) FROM pgbench_branches),"
                "       (SELECT coalesce(sum(delta), 0) FROM pgbench_history),"
                "       (SELECT count(*) FROM pgbench_history)").fetchone()
        where = f"on {env} ({db})"
        if expected_history is not None:
            self.assertEqual(count, expected_history, f"pgbench_history rows {where}")
        self.assertEqual(accounts, history, f"sum(abalance) vs sum(delta) {where}")
        self.assertEqual(tellers, history, f"sum(tbalance) vs sum(delta) {where}")
        self.assertEqual(branches, history, f"sum(bbalance) vs sum(delta) {where}")
        return count

    # --- state of blue -------------------------------------------------------------------

    def blue_read_only(self):
        with self.cluster.connect() as conn:
            return conn.execute("SHOW default_transaction_read_only").fetchone()[0]

    def assert_blue_unfenced(self, db):
        """A new direct session on blue is read-write, and a write works."""
        self.assertEqual(self.blue_read_only(), "off", "blue is still fenced")
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("INSERT INTO so_probe (note) VALUES ('direct write on blue')")

    def restore_fenced_access(self, conn):
        """What a fence left (blue stays fenced after a committed switchover): each database's
        connection limit and each REPLICATION role's LOGIN back as the fence record says, so the
        other tests' non-superuser logins work."""
        table = f'"{self.prefix}".fence'
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            return
        row = conn.execute(f"SELECT to_jsonb(f) -> 'previous_access' FROM {table} f").fetchone()
        access = (row[0] if row else None) or {}
        for d in access.get("databases", []):
            name = conn.execute("SELECT datname FROM pg_database WHERE oid = %s",
                                (d["oid"],)).fetchone()
            if name:
                conn.execute(f'ALTER DATABASE "{name[0]}" CONNECTION LIMIT {int(d["limit"])}')
        for r in access.get("logins", []):
            name = conn.execute("SELECT rolname FROM pg_roles WHERE oid = %s",
                                (r["oid"],)).fetchone()
            if name:
                conn.execute(f'ALTER ROLE "{name[0]}" LOGIN')

    def reset_clusters(self):
        """Safety net after each test: no replication objects of this test left, databases
        dropped, blue unfenced. Works whatever state the test left."""
        like = self.prefix + "\\_%"
        for db in self._databases:
            try:
                with self.cluster.connect("green", dbname=db) as conn:
                    subs = [r[0] for r in conn.execute(
                        "SELECT subname FROM pg_subscription WHERE subdbid = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())")]
                    for sub in subs:
                        conn.execute(f'ALTER SUBSCRIPTION "{sub}" DISABLE')
                        conn.execute(f'ALTER SUBSCRIPTION "{sub}" SET (slot_name = NONE)')
                        conn.execute(f'DROP SUBSCRIPTION "{sub}"')
            except psycopg.OperationalError:
                pass  # no such database on green
            with self.cluster.connect("green") as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        with self.cluster.connect() as conn:
            conn.execute("SET default_transaction_read_only = off")
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            conn.execute("SELECT pg_reload_conf()")
            self.restore_fenced_access(conn)
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.prefix}" CASCADE')
            for _ in range(100):
                slots = conn.execute(
                    "SELECT slot_name, active_pid FROM pg_replication_slots "
                    "WHERE slot_name LIKE %s",
                    (like,)).fetchall()
                if not slots:
                    break
                for slot, pid in slots:
                    if pid:
                        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    else:
                        try:
                            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                        except psycopg.Error:
                            pass
                time.sleep(0.05)
            for db in self._databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        wait_until(lambda: self.blue_read_only() == "off", 10, message="blue unfenced")


class PgbenchSwitchoverTest(SwitchoverTestCase):
    CLIENTS, JOBS, TXNS = 16, 2, 1000  # about 6-10 s through pgflip on 2 cores

    def tpcb_switchover(self, mode):
        db = self.new_database(mode)
        self.pgbench_init(db)
        proxy = self.start_switchover_pgflip([db])
        self.replication_init(proxy)
        total = self.CLIENTS * self.TXNS
        bench = self.start_pgbench(proxy, db, "-M", mode, "-c", str(self.CLIENTS),
                                   "-j", str(self.JOBS), "-t", str(self.TXNS))
        self.wait_history(db, total // 8)
        self.assertIsNone(bench.poll(), "pgbench ended before the switchover started")
        so = self.switchover(proxy, "--timeout", "20")
        returncode, out, err = self.finish_pgbench(bench)
        self.assertEqual(so.returncode, 0, str(so))
        report = so.result
        self.assertEqual(report.get("outcome"), "committed", str(so))
        self.assertEqual(report["active"], "green")
        self.assertEqual(report["sessions"]["moved"], self.CLIENTS, str(so))
        self.assertEqual(report["sessions"]["ended"], 0, str(so))
        self.assertEqual(so.steps(), ["guardrails", "catchup", "prewarm", "park", "fence", "drain",
                                      "sequences", "commit", "flip", "cleanup"])
        self.assert_pgbench_clean(returncode, out, err, expected=total)
        self.assertRegex(out, rf"query mode: {mode}")
        tps = re.search(r"tps = ([\d.]+)", out)
        sys.stderr.write(f"\n  [{mode}] switchover {report['total_ms']:.0f} ms, "
                         f"{report['sessions']['moved']} moved, max parked "
                         f"{report['max_parked_ms']:.1f} ms; pgbench "
                         f"{tps.group(1) if tps else '?'} tps\n")
        status = self.status(proxy)
        self.assertEqual(status["active"], "green")
        self.assertEqual(status["epoch"], 1)
        wait_until(lambda: self.status(proxy)["sessions"] == 0, 10,
                   message="pgbench's sessions to end")
        # Every committed transaction is on green exactly once; blue saw only those before it.
        self.check_tpcb_invariant(db, "green", expected_history=total)
        on_blue = self.check_tpcb_invariant(db, "blue")
        self.assertLess(on_blue, total, "no transaction ran on green")
        self.assertGreater(on_blue, 0)
        with self.cluster.connect("green", dbname=db) as conn:
            self.assertEqual(conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchone()[0],
                0)
            self.assertEqual(conn.execute("SELECT count(*) FROM pg_subscription").fetchone()[0],
                             0, "the subscription should be dropped after the switchover")
        state = json.loads(pathlib.Path(proxy.overrides["switchover"]["state_file"]).read_text())
        self.assertEqual(state.get("active"), "green", state)
        # The commit records which servers it speaks of (read before clients were parked).
        for env in ("blue", "green"):
            with self.cluster.connect(env) as conn:
                system_identifier = str(conn.execute(
                    "SELECT system_identifier FROM pg_control_system()").fetchone()[0])
            self.assertEqual(state.get(env), {"system_identifier": system_identifier,
                                              "host": "127.0.0.1", "port": self.cluster.port(env),
                                              "database": ""}, state)

    def test_simple(self):
        self.tpcb_switchover("simple")

    def test_extended(self):
        self.tpcb_switchover("extended")

    def test_prepared(self):
        self.tpcb_switchover("prepared")


class SessionStateTest(SwitchoverTestCase):
    def test_session_state_moves(self):
        db = self.new_database("state")
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("CREATE SCHEMA app_s")
            conn.execute("CREATE TABLE app_s.t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO app_s.t VALUES (1, 'one'), (2, 'two')")
        proxy = self.start_switchover_pgflip([db])
        self.replication_init(proxy)

        session = proxy.connect(dbname=db)
        self.addCleanup(session.close)
        notes = []
        session.add_notify_handler(notes.append)
        session.execute("SET search_path = app_s, public")
        session.execute("SET application_name = 'so-state'")
        session.execute("PREPARE getv(int) AS SELECT v FROM t WHERE id = $1")
        self.assertEqual(session.execute("EXECUTE getv(1)").fetchone(), ("one",))
        protocol_sql = "SELECT v || '!' FROM t WHERE id = %s"
        for key in (1, 2):  # prepare=True: Parse of a named statement at once
            session.execute(protocol_sql, (key,), prepare=True)
        named = [r[0] for r in session.execute(
            "SELECT name FROM pg_prepared_statements WHERE NOT from_sql")]
        self.assertEqual(len(named), 1, named)
        session.execute("LISTEN ch")
        session.execute("SELECT pg_advisory_lock(42)")
        blue_pid = session.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.assertTrue(session.info.parameter_status("server_version").startswith("15"))

        so = self.switchover(proxy, "--timeout", "20")
        self.assertEqual(so.returncode, 0, str(so))
        self.assertEqual(so.result["sessions"]["moved"], 1, str(so))

        # Same connection, no reconnect: now served by green with the same state.
        self.assertTrue(session.execute("SHOW server_version").fetchone()[0].startswith("17"))
        self.assertTrue(session.info.parameter_status("server_version").startswith("17"),
                        "the client should get green's server_version as ParameterStatus")
        green_pid = session.execute("SELECT pg_backend_pid()").fetchone()[0]
        with self.cluster.connect("green", dbname=db) as other:
            self.assertEqual(other.execute(
                "SELECT application_name FROM pg_stat_activity WHERE pid = %s",
                (green_pid,)).fetchone(), ("so-state",))
        self.assertFalse(self.cluster.backend_exists(blue_pid), "blue backend still there")
        self.assertEqual(session.execute("SHOW search_path").fetchone()[0], "app_s, public")
        self.assertEqual(session.execute("SHOW application_name").fetchone()[0], "so-state")
        self.assertEqual(session.execute("EXECUTE getv(2)").fetchone(), ("two",))
        # psycopg sends Bind/Execute for its own statement name: no Parse, so green must have it.
        self.assertEqual(session.execute(protocol_sql, (2,), prepare=True).fetchone(),
                         ("two!",))
        self.assertEqual(sorted(r[0] for r in session.execute(
            "SELECT name FROM pg_prepared_statements WHERE NOT from_sql")), named)
        self.assertIn(("ch",), session.execute("SELECT pg_listening_channels()").fetchall())
        self.assertEqual(session.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND objid = 42").fetchone()[0], 1)
        with self.cluster.connect("green", dbname=db) as other:
            self.assertEqual(other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = %s AND objid = 42", (green_pid,)).fetchone()[0], 1)
            self.assertFalse(other.execute("SELECT pg_try_advisory_lock(42)").fetchone()[0])
            other.execute("NOTIFY ch, 'from green'")

        def notified():
            session.execute("SELECT 1")
            return [n for n in notes if n.channel == "ch" and n.payload == "from green"]
        wait_until(notified, 10, interval=0.05, message="NOTIFY on green to reach the session")
        # The session is still read-write on green and its lock is still its own.
        session.execute("INSERT INTO t VALUES (3, 'three')")
        self.assertTrue(session.execute("SELECT pg_advisory_unlock(42)").fetchone()[0])
        self.assertEqual(self.status(proxy)["active"], "green")

    HOLD_CURSOR = ("DECLARE held CURSOR WITH HOLD FOR "
                   "SELECT g FROM generate_series(1, 10) AS g")

    def unmovable_setup(self, label, overrides=None, holds="CREATE TEMP TABLE scratch (x int)"):
        db = self.new_database(label)
        proxy = self.start_switchover_pgflip([db], overrides)
        self.replication_init(proxy)
        movable = proxy.connect(dbname=db)
        self.addCleanup(movable.close)
        movable.execute("SELECT 1")
        holder = harness.RawClient(proxy.port, database=db)
        self.addCleanup(holder.close)
        holder.query(holds)
        return proxy, movable, holder

    def test_unmovable_session_ended_others_move(self):
        proxy, movable, holder = self.unmovable_setup("unmovable")
        so = self.switchover(proxy, "--timeout", "20")
        self.assertEqual(so.returncode, 0, str(so))
        sessions = so.result["sessions"]
        self.assertEqual((sessions["moved"], sessions["ended"]), (1, 1), str(so))
        self.assertRegex(so.result["ended"][0]["reason"], "temporary tables", str(so))
        self.assertTrue(movable.execute("SHOW server_version").fetchone()[0].startswith("17"))
        # The temp table cannot move: that session ends with FATAL 57P01 saying why.
        kind, body = holder.read_message()
        self.assertEqual(kind, b"E", body)
        fields = harness.parse_error_fields(body)
        self.assertEqual((fields.get("S"), fields.get("C")), ("FATAL", "57P01"), fields)
        self.assertIn("temporary tables", fields.get("M", ""))

    def test_unmovable_session_aborts_when_configured(self):
        proxy, movable, holder = self.unmovable_setup(
            "unmovabort", {"switchover": {"unmovable_sessions": "abort"}})
        so = self.switchover(proxy, "--timeout", "20")
        self.assertNotEqual(so.returncode, 0, str(so))
        self.assertEqual((so.result["outcome"], so.result["failed_step"]), ("aborted", "park"),
                         str(so))
        self.assertEqual(holder.query("SELECT count(*) FROM scratch"), [["0"]])
        self.assertTrue(movable.execute("SHOW server_version").fetchone()[0].startswith("15"))
        self.assertEqual(self.blue_read_only(), "off")

    def test_with_hold_cursor_session_ended_others_move(self):
        """A WITH HOLD cursor lives in its blue backend (its rows were materialised at COMMIT)
        and cannot be rebuilt on green: that session ends, saying why; the others move."""
        proxy, movable, holder = self.unmovable_setup("holdcursor", holds=self.HOLD_CURSOR)
        self.assertEqual(holder.query("FETCH 2 FROM held"), [["1"], ["2"]])
        so = self.switchover(proxy, "--timeout", "20")
        self.assertEqual(so.returncode, 0, str(so))
        sessions = so.result["sessions"]
        self.assertEqual((sessions["moved"], sessions["ended"]), (1, 1), str(so))
        self.assertEqual(len(so.result["ended"]), 1, str(so))
        self.assertRegex(so.result["ended"][0]["reason"], "WITH HOLD cursors", str(so))
        self.assertNotRegex(so.result["ended"][0]["reason"], "temporary tables", str(so))
        self.assertTrue(movable.execute("SHOW server_version").fetchone()[0].startswith("17"))
        kind, body = holder.read_message()
        self.assertEqual(kind, b"E", body)
        fields = harness.parse_error_fields(body)
        self.assertEqual((fields.get("S"), fields.get("C")), ("FATAL", "57P01"), fields)
        self.assertIn("WITH HOLD cursors", fields.get("M", ""))
        with self.assertRaises((ConnectionError, OSError)):
            holder.read_message()

    def test_with_hold_cursor_aborts_when_configured(self):
        proxy, movable, holder = self.unmovable_setup(
            "holdabort", {"switchover": {"unmovable_sessions": "abort"}}, holds=self.HOLD_CURSOR)
        so = self.switchover(proxy, "--timeout", "20")
        self.assertNotEqual(so.returncode, 0, str(so))
        self.assertEqual((so.result["outcome"], so.result["failed_step"]), ("aborted", "park"),
                         str(so))
        self.assertIn("WITH HOLD cursors", so.result["reason"], str(so))
        # The session stays on blue with its cursor where it was.
        self.assertEqual(holder.query("FETCH 2 FROM held"), [["1"], ["2"]])
        self.assertTrue(holder.query("SHOW server_version")[0][0].startswith("15"))
        self.assertTrue(movable.execute("SHOW server_version").fetchone()[0].startswith("15"))
        self.assertEqual(self.blue_read_only(), "off")



class CustomSettingsTest(SwitchoverTestCase):
    def test_custom_settings_move(self):
        """Custom settings (placeholders: app.tenant) are in no catalog view; pgflip moves the
        ones whose names went by in SET, RESET or set_config, so a row-level security policy
        keyed on one shows the same rows on green."""
        db = self.new_database("custom")
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("CREATE TABLE docs (id int PRIMARY KEY, tenant text NOT NULL)")
            conn.execute("INSERT INTO docs VALUES (1, 'acme'), (2, 'globex'), (3, 'acme')")
            conn.execute("GRANT SELECT ON docs TO app_trust")
            conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
            conn.execute("CREATE POLICY by_tenant ON docs "
                         "USING (tenant = current_setting('app.tenant', true))")
        proxy = self.start_switchover_pgflip([db])
        self.replication_init(proxy)

        simple = proxy.connect(user="app_trust", dbname=db)  # SET, simple protocol
        self.addCleanup(simple.close)
        simple.execute("SET app.tenant = 'acme'")
        simple.execute("SET app.Mode TO 'audit'")
        extended = proxy.connect(user="app_trust", dbname=db)  # set_config, extended protocol
        self.addCleanup(extended.close)
        extended.execute("SELECT set_config('app.tenant', %s, false)", ("globex",))
        extended.execute("SELECT pg_catalog.set_config('app.user_id', %s, false)", ("7",))
        cleared = proxy.connect(user="app_trust", dbname=db)  # set, then RESET
        self.addCleanup(cleared.close)
        cleared.execute("SET app.tenant = 'acme'")
        cleared.execute("RESET app.tenant")

        def state(session):
            return (session.execute("SELECT current_setting('app.tenant', true), "
                                    "current_setting('app.mode', true), "
                                    "current_setting('app.user_id', true)").fetchone(),
                    [r[0] for r in session.execute("SELECT id FROM docs ORDER BY id")])

        expected = {"simple": (simple, (("acme", "audit", None), [1, 3])),
                    "extended": (extended, (("globex", None, "7"), [2])),
                    "reset": (cleared, (("", None, None), []))}
        for what, (session, want) in expected.items():
            self.assertEqual(state(session), want, f"{what}, on blue")

        so = self.switchover(proxy, "--timeout", "20")
        self.assertEqual(so.returncode, 0, str(so))
        self.assertEqual(so.result["sessions"]["moved"], 3, str(so))
        for what, (session, want) in expected.items():
            with self.subTest(what):
                self.assertTrue(
                    session.execute("SHOW server_version").fetchone()[0].startswith("17"))
                self.assertEqual(state(session), want, f"{what}, on green")


class SessionIdentityTest(SwitchoverTestCase):
    """SET ROLE and SET SESSION AUTHORIZATION move with the session: PostgreSQL hides `role` and
    `session_authorization` from pg_settings, so a capture that reads only pg_settings would
    land the session on green as its login role (more privileges, other RLS rows)."""

    LOGIN = "app_trust"  # a trust login on both servers (scripts/pgcluster)

    def setUp(self):
        # Registered before SwitchoverTestCase's reset_clusters: runs after it, once the test's
        # databases (and so its grants and policies) are gone on both sides.
        self._roles = []
        self.addCleanup(self.drop_roles)
        super().setUp()

    def create_role(self, label, granted_to=()):
        """A NOLOGIN role on both servers (green's schema copy needs it for GRANTs and policies),
        granted to the roles `granted_to`; its name needs quoting (a space, double quotes)."""
        name = f"it {label} \"{uuid.uuid4().hex[:6]}\""
        self._roles.append(name)
        for env in ("blue", "green"):
            with self.cluster.connect(env) as conn:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
                for member in granted_to:
                    conn.execute(sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(name), sql.Identifier(member)))
        return name

    def drop_roles(self):
        for env in ("blue", "green"):
            with self.cluster.connect(env) as conn:
                for name in reversed(self._roles):
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    def rls_database(self, label, roles):
        """A database with table `notes` under a row-level security policy keyed on
        current_user: one row owned by each of `roles`, readable by all of them."""
        db = self.new_database(label)
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("CREATE TABLE notes (id int PRIMARY KEY, owner name NOT NULL, v text)")
            for i, role in enumerate(roles):
                conn.execute("INSERT INTO notes VALUES (%s, %s, %s)", (i, role, f"note {i}"))
                conn.execute(sql.SQL("GRANT SELECT ON notes TO {}").format(sql.Identifier(role)))
            conn.execute("ALTER TABLE notes ENABLE ROW LEVEL SECURITY")
            conn.execute("CREATE POLICY own_notes ON notes USING (owner = current_user)")
        return db

    def identity(self, session):
        return session.execute("SELECT session_user, current_user, "
                               "current_setting('role')").fetchone()

    def visible_notes(self, session):
        return [r[0] for r in session.execute("SELECT owner FROM notes ORDER BY id")]

    def switch_to_green(self, proxy, sessions):
        so = self.switchover(proxy, "--timeout", "20")
        self.assertEqual(so.returncode, 0, str(so))
        self.assertEqual(so.result["sessions"]["moved"], sessions, str(so))
        self.assertEqual(so.result["sessions"]["ended"], 0, str(so))
        return so

    def on_green(self, session):
        self.assertTrue(session.execute("SHOW server_version").fetchone()[0].startswith("17"))

    def test_role_and_session_authorization_move(self):
        reader = self.create_role("Reader", granted_to=[self.LOGIN])
        tenant = self.create_role("tenant")
        tenant_reader = self.create_role("tenant reader", granted_to=[tenant])
        db = self.rls_database("identity", [self.LOGIN, reader, tenant, tenant_reader])
        proxy = self.start_switchover_pgflip([db])
        self.replication_init(proxy)

        def session(user):
            s = proxy.connect(user=user, dbname=db)
            self.addCleanup(s.close)
            return s

        def set_role(s, role):
            s.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))

        def set_authorization(s, role):
            s.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(role)))

        # 1. A login that lowered itself with SET ROLE (PostgREST-style).
        with_role = session(self.LOGIN)
        set_role(with_role, reader)
        # 2. A superuser login that took another identity with SET SESSION AUTHORIZATION,
        #    after setting a parameter only a superuser may set.
        with_authorization = session("postgres")
        with_authorization.execute("SET log_min_duration_statement = 4321")
        set_authorization(with_authorization, tenant)
        # 3. Both: SET SESSION AUTHORIZATION, then SET ROLE to a role of the new session user.
        with_both = session("postgres")
        with_both.execute("SET search_path = public, pg_catalog")
        set_authorization(with_both, tenant)
        set_role(with_both, tenant_reader)
        # 4. SET ROLE undone by RESET ROLE: back to the login role.
        role_reset = session(self.LOGIN)
        set_role(role_reset, reader)
        role_reset.execute("RESET ROLE")

        expected = {
            "SET ROLE": (with_role, (self.LOGIN, reader, reader), [reader]),
            "SET SESSION AUTHORIZATION": (with_authorization, (tenant, tenant, "none"), [tenant]),
            "both": (with_both, (tenant, tenant_reader, tenant_reader), [tenant_reader]),
            "RESET ROLE": (role_reset, (self.LOGIN, self.LOGIN, "none"), [self.LOGIN]),
        }
        for what, (s, ident, rows) in expected.items():  # as they are on blue
            self.assertEqual(self.identity(s), ident, f"{what}, on blue")
            self.assertEqual(self.visible_notes(s), rows, f"{what}, on blue")

        self.switch_to_green(proxy, len(expected))

        for what, (s, ident, rows) in expected.items():
            with self.subTest(what):
                self.on_green(s)
                self.assertEqual(self.identity(s), ident, f"{what}: identity on green")
                self.assertEqual(self.visible_notes(s), rows, f"{what}: RLS rows on green")
        with self.subTest("settings"):
            # Replayed around the identity: the superuser-only one as the login user (the
            # tenant may not set it), the others as the session's own identity.
            self.assertEqual(with_authorization.execute(
                "SHOW log_min_duration_statement").fetchone()[0], "4321ms")
            self.assertEqual(with_both.execute("SHOW search_path").fetchone()[0],
                             "public, pg_catalog")
        with self.subTest("ParameterStatus"):  # the client's view matches green's
            self.assertEqual(
                with_authorization.info.parameter_status("session_authorization"), tenant)
            self.assertEqual(with_authorization.info.parameter_status("is_superuser"), "off")
        with self.subTest("RESET"):  # back to the login, on green as on blue
            with_role.execute("RESET ROLE")
            self.assertEqual(self.identity(with_role), (self.LOGIN, self.LOGIN, "none"))
            self.assertEqual(self.visible_notes(with_role), [self.LOGIN])
            with_authorization.execute("RESET SESSION AUTHORIZATION")
            self.assertEqual(self.identity(with_authorization)[:2], ("postgres", "postgres"))

    def test_role_none_over_a_default_role(self):
        """A default role from ALTER ROLE ... IN DATABASE ... SET role (source 'database user',
        not 'session'): green's login applies it too, so a session that left it with SET ROLE
        NONE must be told so again on green."""
        reader = self.create_role("default reader", granted_to=[self.LOGIN])
        db = self.rls_database("defrole", [self.LOGIN, reader])
        proxy = self.start_switchover_pgflip([db])
        self.replication_init(proxy)  # creates the database on green
        for env in ("blue", "green"):
            with self.cluster.connect(env) as conn:
                conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET role = {}").format(
                    sql.Identifier(self.LOGIN), sql.Identifier(db), sql.Literal(reader)))

        kept = proxy.connect(user=self.LOGIN, dbname=db)
        self.addCleanup(kept.close)
        left = proxy.connect(user=self.LOGIN, dbname=db)
        self.addCleanup(left.close)
        left.execute("SET ROLE NONE")
        self.assertEqual(self.identity(kept), (self.LOGIN, reader, reader))
        self.assertEqual(self.identity(left), (self.LOGIN, self.LOGIN, "none"))

        self.switch_to_green(proxy, 2)

        self.on_green(kept)
        self.assertEqual(self.identity(kept), (self.LOGIN, reader, reader))
        self.assertEqual(self.visible_notes(kept), [reader])
        self.on_green(left)
        self.assertEqual(self.identity(left), (self.LOGIN, self.LOGIN, "none"),
                         "SET ROLE NONE on blue: green's default role must not come back")
        self.assertEqual(self.visible_notes(left), [self.LOGIN])
        # RESET ROLE returns to the default on green as it would have on blue.
        left.execute("RESET ROLE")
        self.assertEqual(self.identity(left), (self.LOGIN, reader, reader))

    def blue_only_role_session(self, label, overrides=None):
        """A session that SET ROLE to a role that exists on blue only, and one that did not:
        green refuses the first one's identity."""
        name = f"it {label} \"{uuid.uuid4().hex[:6]}\""
        self._roles.append(name)
        with self.cluster.connect("blue") as conn:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
            conn.execute(sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(name), sql.Identifier(self.LOGIN)))
        db = self.new_database(label)
        proxy = self.start_switchover_pgflip([db], overrides)
        self.replication_init(proxy)
        movable = proxy.connect(user=self.LOGIN, dbname=db)
        self.addCleanup(movable.close)
        movable.execute("SELECT 1")
        lowered = harness.RawClient(proxy.port, user=self.LOGIN, database=db)
        self.addCleanup(lowered.close)
        lowered.query('SET ROLE "' + name.replace('"', '""') + '"')
        return proxy, movable, lowered, name

    def test_identity_green_refuses_ends_that_session(self):
        """Green lacks the role a session SET ROLE to: that session ends with FATAL 57P01 saying
        why (never continuing as its login role), the others move."""
        proxy, movable, lowered, role = self.blue_only_role_session("blueonly")
        so = self.switchover(proxy, "--timeout", "20")
        self.assertEqual(so.returncode, 0, str(so))
        self.assertEqual((so.result["sessions"]["moved"], so.result["sessions"]["ended"]), (1, 1),
                         str(so))
        self.assertIn("does not exist", so.result["ended"][0]["reason"], str(so))
        self.on_green(movable)
        kind, body = lowered.read_message()
        self.assertEqual(kind, b"E", body)
        fields = harness.parse_error_fields(body)
        self.assertEqual((fields.get("S"), fields.get("C")), ("FATAL", "57P01"), fields)
        self.assertIn("could not move", fields.get("M", ""))
        self.assertIn("does not exist", fields.get("M", ""))

    def test_identity_green_refuses_aborts_when_configured(self):
        """With unmovable_sessions = abort, a state green refuses stops the switchover before
        its commit point: it rolls back at park, and the session keeps its role on blue."""
        proxy, movable, lowered, role = self.blue_only_role_session(
            "blueabort", {"switchover": {"unmovable_sessions": "abort"}})
        so = self.switchover(proxy, "--timeout", "20")
        self.assertNotEqual(so.returncode, 0, str(so))
        self.assertEqual((so.result["outcome"], so.result["failed_step"]), ("aborted", "park"),
                         str(so))
        self.assertIn("does not exist", so.result["reason"], str(so))
        self.assertEqual(lowered.query("SELECT current_user"), [[role]])
        self.assertTrue(lowered.query("SHOW server_version")[0][0].startswith("15"))
        self.assertTrue(movable.execute("SHOW server_version").fetchone()[0].startswith("15"))
        self.assertEqual(self.blue_read_only(), "off")


if __name__ == "__main__":
    harness.main()
