"""Switchovers that do not go to plan: a drain that cannot finish (aborted at its deadline or by
the operator), and a client whose transaction stays open past the drain timeout (abort by
default, or cancel that client alone). pgflip dying in each step: test_crash.py."""

import contextlib
import time

import psycopg

import harness
from harness import wait_until
from test_switchover import SwitchoverTestCase

# Guardrails that tolerate green's apply being held back on purpose by the test.
PATIENT_GUARDRAILS = {"max_lag_ms": 600000, "max_lag_bytes": 1 << 34}
# Green held back: the catch-up gives up quickly and leaves the rest to the drain.
SHORT_CATCHUP = {"catchup_timeout_ms": 1000}


class FailureCase(SwitchoverTestCase):
    def hold_green_apply(self, db):
        """Holds green's apply worker back: a lock on pgflip's heartbeat table in `db` on green
        that blocks INSERT (the heartbeat and the sentinel) but not SELECT. Returns a function
        releasing it."""
        conn = psycopg.connect(self.cluster.dsn("green", dbname=db))  # a transaction
        conn.execute(f'LOCK TABLE "{self.prefix}".heartbeat IN EXCLUSIVE MODE')

        def release():
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            conn.close()
        self.addCleanup(release)
        return release

    def assert_aborted(self, so, step, reason_pattern=None):
        self.assertNotEqual(so.returncode, 0, str(so))
        self.assertFalse(so.ok, str(so))
        report = so.result
        self.assertEqual(report.get("outcome"), "aborted", str(so))
        self.assertEqual(report.get("failed_step"), step, str(so))
        self.assertEqual(report.get("active"), "blue", str(so))
        if reason_pattern:
            self.assertRegex(report.get("reason", ""), reason_pattern, str(so))
        return report

    def assert_serves_blue(self, proxy, db):
        self.assertEqual(self.status(proxy)["active"], "blue")
        with proxy.connect(dbname=db) as conn:
            self.assertTrue(conn.execute("SHOW server_version").fetchone()[0].startswith("15"))
            conn.execute("INSERT INTO so_probe (note) VALUES ('through pgflip')")


class AbortTest(FailureCase):
    def test_drain_deadline_aborts_and_blue_serves_on(self):
        db = self.new_database("abort")
        self.pgbench_init(db)
        proxy = self.start_switchover_pgflip(
            [db], {"switchover": {**PATIENT_GUARDRAILS, **SHORT_CATCHUP}})
        self.replication_init(proxy)
        bench = self.start_pgbench(proxy, db, "-c", "8", "-j", "2", "-T", "10")
        self.wait_history(db, 500)
        release = self.hold_green_apply(db)
        timeout = 5
        so = self.switchover(proxy, "--timeout", str(timeout), "--drain-timeout", "3")
        report = self.assert_aborted(so, "drain")
        catchup = [s for s in report["steps"] if s["step"] == "catchup"]
        self.assertEqual(len(catchup), 1, str(so))
        self.assertIn("had not applied the last sentinel", catchup[0]["detail"])
        self.assertLess(so.elapsed, timeout + 5, "the abort overran the switchover timeout")
        self.assertEqual(report["sessions"]["released_to_blue"], 8, str(so))
        self.assertEqual(report["sessions"]["moved"], 0, str(so))
        # Blue is writable again at once, before green catches up.
        self.assert_blue_unfenced(db)
        release()
        returncode, out, err = self.finish_pgbench(bench)
        processed = self.assert_pgbench_clean(returncode, out, err)
        self.assert_serves_blue(proxy, db)
        self.assertEqual(self.check_tpcb_invariant(db, "blue"), processed)
        # Replication is intact: green catches up with everything blue committed.
        wait_until(lambda: self.history_count(db, "green") == processed, 60,
                   interval=0.2, message="green to catch up after the abort")
        self.check_tpcb_invariant(db, "green", expected_history=processed)

    def test_operator_abort_during_sentinel_drain(self):
        db = self.new_database("opdrain")
        self.pgbench_init(db)
        proxy = self.start_switchover_pgflip(
            [db], {"switchover": {**PATIENT_GUARDRAILS, **SHORT_CATCHUP,
                                  "sentinel_timeout_ms": 30000}})
        self.replication_init(proxy)
        client = proxy.connect(dbname=db)
        self.addCleanup(client.close)
        client.execute("SELECT 1")
        self.hold_green_apply(db)
        running = self.start_ctl(proxy, "switchover", "--timeout", "60")
        self.read_events_until(
            running, lambda m: (m.get("data") or {}).get("step") == "fence", timeout=30)
        # The drain (sentinel wait) has begun and cannot finish.
        self.assertEqual(self.blue_read_only(), "on")
        asked = time.monotonic()
        self.ctl_ok(proxy, "abort")
        so = self.finish_ctl(running, timeout=60)
        took = time.monotonic() - asked
        self.assertLess(took, 5, f"pgflip took {took:.1f}s to act on abort during the drain "
                                 f"(sentinel_timeout_ms is 30 s)\n{so}")
        self.assert_aborted(so, "drain", r"operator")
        self.assert_blue_unfenced(db)
        self.assertTrue(client.execute("SHOW server_version").fetchone()[0].startswith("15"))
        client.execute("UPDATE pgbench_branches SET bbalance = bbalance WHERE bid = 1")
        self.assert_serves_blue(proxy, db)

    def test_operator_abort_during_park(self):
        db = self.new_database("oppark")
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
            conn.execute("INSERT INTO t VALUES (1, 0)")
        proxy = self.start_switchover_pgflip([db])
        self.replication_init(proxy)
        busy = proxy.connect(dbname=db, autocommit=False)
        self.addCleanup(busy.close)
        busy.execute("UPDATE t SET v = 1 WHERE id = 1")  # open transaction: park waits for it
        running = self.start_ctl(proxy, "switchover", "--drain-timeout", "30", "--timeout", "60")
        self.read_events_until(
            running, lambda m: (m.get("data") or {}).get("step") == "prewarm", timeout=30)
        self.assertTrue(self.status(proxy)["switching"])
        asked = time.monotonic()
        self.ctl_ok(proxy, "abort")
        so = self.finish_ctl(running, timeout=40)
        self.assertLess(time.monotonic() - asked, 5, str(so))
        self.assert_aborted(so, "park", r"operator")
        busy.commit()  # the transaction goes on, on blue
        self.assertTrue(busy.execute("SHOW server_version").fetchone()[0].startswith("15"))
        busy.commit()
        with self.cluster.connect(dbname=db) as conn:
            self.assertEqual(conn.execute("SELECT v FROM t WHERE id = 1").fetchone(), (1,))
        self.assert_blue_unfenced(db)
        self.assert_serves_blue(proxy, db)
        # Nothing is running any more: a second abort is refused.
        self.assertEqual(self.ctl(proxy, "abort").returncode, 1)


class StragglerTest(FailureCase):
    def straggler_database(self, label):
        db = self.new_database(label)
        self.pgbench_init(db)
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("CREATE TABLE straggle (id int PRIMARY KEY, v int)")
            conn.execute("INSERT INTO straggle VALUES (1, 0), (2, 0)")
        return db

    def open_straggler(self, proxy, db):
        straggler = proxy.connect(dbname=db, autocommit=False)
        self.addCleanup(straggler.close)
        straggler.execute("UPDATE straggle SET v = v + 1 WHERE id = 1")  # BEGIN ... no COMMIT
        return straggler

    def test_straggler_aborts_by_default(self):
        db = self.straggler_database("stragabort")
        proxy = self.start_switchover_pgflip([db])
        self.replication_init(proxy)
        idle = proxy.connect(dbname=db)
        self.addCleanup(idle.close)
        idle.execute("SELECT 1")
        straggler = self.open_straggler(proxy, db)
        so = self.switchover(proxy, "--drain-timeout", "1", "--timeout", "20")
        report = self.assert_aborted(so, "park", r"drain timeout")
        self.assertEqual(len(report["stragglers"]), 1, str(so))
        self.assertEqual(report["sessions"]["released_to_blue"], 2, str(so))
        self.assertLess(so.elapsed, 15)
        # The straggler's transaction carries on and commits on blue.
        straggler.execute("UPDATE straggle SET v = v + 1 WHERE id = 1")
        straggler.commit()
        self.assertTrue(straggler.execute("SHOW server_version").fetchone()[0].startswith("15"))
        straggler.commit()
        with self.cluster.connect(dbname=db) as conn:
            self.assertEqual(conn.execute("SELECT v FROM straggle WHERE id = 1").fetchone(), (2,))
        self.assertTrue(idle.execute("SHOW server_version").fetchone()[0].startswith("15"))
        self.assert_blue_unfenced(db)
        self.assert_serves_blue(proxy, db)

    def test_straggler_cancelled_others_move(self):
        db = self.straggler_database("stragcancel")
        proxy = self.start_switchover_pgflip([db])
        self.replication_init(proxy)
        clients, txns = 8, 1000
        bench = self.start_pgbench(proxy, db, "-c", str(clients), "-j", "2", "-t", str(txns))
        # A raw client, to see the exact ErrorResponse (libpq reports an error that arrives
        # while idle as "consuming input failed", without its SQLSTATE).
        straggler = harness.RawClient(proxy.port, database=db)
        self.addCleanup(straggler.close)
        straggler.query("BEGIN")
        straggler.query("UPDATE straggle SET v = v + 1 WHERE id = 1")
        # And one through libpq (psycopg), the way applications see it.
        straggler2 = proxy.connect(dbname=db, autocommit=False)
        self.addCleanup(straggler2.close)
        straggler2.execute("UPDATE straggle SET v = v + 1 WHERE id = 2")
        self.wait_history(db, clients * txns // 5)
        self.assertIsNone(bench.poll(), "pgbench ended before the switchover started")
        so = self.switchover(proxy, "--drain-timeout", "1", "--on-straggler", "cancel",
                             "--timeout", "20")
        self.assertEqual(so.returncode, 0, str(so))
        report = so.result
        self.assertEqual(report["outcome"], "committed", str(so))
        self.assertEqual(report["sessions"]["moved"], clients, str(so))
        self.assertEqual(report["sessions"]["ended"], 2, str(so))
        self.assertEqual(len(report["stragglers"]), 2, str(so))
        returncode, out, err = self.finish_pgbench(bench)
        self.assert_pgbench_clean(returncode, out, err, expected=clients * txns)
        # The stragglers alone gets FATAL 57P01 (sent at once, like pg_terminate_backend: a libpq
        # client sees it at its next statement), then the connection is closed.
        kind, body = straggler.read_message()
        self.assertEqual(kind, b"E", body)
        fields = harness.parse_error_fields(body)
        self.assertEqual((fields.get("S"), fields.get("C")), ("FATAL", "57P01"), fields)
        self.assertIn("switched over", fields.get("M", ""))
        with self.assertRaises((ConnectionError, OSError)):
            straggler.read_message()
        with self.assertRaisesRegex(psycopg.OperationalError, "switched over"):
            straggler2.execute("SELECT 1")
        self.assertTrue(straggler2.closed)
        # Its transaction was rolled back; every other transaction is on green exactly once.
        self.check_tpcb_invariant(db, "green", expected_history=clients * txns)
        with self.cluster.connect("green", dbname=db) as conn:
            self.assertEqual(conn.execute("SELECT sum(v) FROM straggle").fetchone(), (0,))
        with proxy.connect(dbname=db) as conn:
            self.assertTrue(conn.execute("SHOW server_version").fetchone()[0].startswith("17"))
            conn.execute("UPDATE straggle SET v = 5 WHERE id = 1")  # the rows are not locked


if __name__ == "__main__":
    harness.main()
