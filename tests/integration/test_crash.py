"""pgflip dies (as kill -9 would: the PGFLIP_TEST_EXIT_AT hook _exits with code 70 as a step
begins) in each step of a switchover under pgbench TPC-B load, and is started again with the
same configuration and state file. Each time: the clients are served by the right side (blue,
unfenced, before the commit point; green after it), no transaction pgbench saw committed is
lost (the TPC-B invariant, and the history count against pgbench's per-transaction log), and no
replication slot, subscription or publication is leaked on either server.

The hook fires before the step's work: `commit` dies before the state file is written, so blue
serves; `flip` and `cleanup` die after it, so green serves. A crash before the commit point
leaves replication intact and blue serving, so one setup carries the crashes at guardrails to
commit and then the one at flip; the crash at cleanup (which needs a switchover that got past
the flip) has a setup of its own.

Also: the state file's directory fsync fails after the rename (the file may already say
green): blue stays fenced, clients go to green, and a restart keeps it so."""

import json
import pathlib
import sys
import tempfile
import time

import psycopg

import harness
from harness import wait_until
from test_switchover import pgbench_counts
from test_switchover_failures import FailureCase

STEPS_BEFORE_COMMIT = ["guardrails", "catchup", "prewarm", "park", "fence", "drain", "sequences",
                       "commit"]
# The fence is in place from the fence step's end to the unfence (or for good, after the commit).
FENCED_AT = {"drain", "sequences", "commit", "flip", "cleanup"}
CLIENTS = 4
# Short steps: the test's time goes to the crashes, not to waiting.
CRASH_OVERRIDES = {"switchover": {"catchup_timeout_ms": 2000, "drain_timeout_ms": 3000,
                                  "sentinel_timeout_ms": 10000}}


class CrashTest(FailureCase):
    # --- one crash ------------------------------------------------------------------------

    def start_with_hook(self, proxy, step):
        """(Re)starts pgflip, same configuration and state file, dying as `step` begins (no
        hook when None)."""
        proxy.env = {"PGFLIP_TEST_EXIT_AT": step} if step else None
        return self.start_and_wait_admin(proxy)

    def crash_under_load(self, proxy, db, step):
        """pgbench TPC-B through pgflip, then a switchover during which pgflip dies as `step`
        begins. Returns the number of transactions pgbench saw committed (each one logged in
        its per-transaction log; an aborted client's transaction in flight is not)."""
        logs = pathlib.Path(tempfile.mkdtemp(prefix=f"crash-{step}-", dir=proxy.workdir))
        before = self.history_count(db)
        bench = self.start_pgbench(proxy, db, "-c", str(CLIENTS), "-j", "2", "-T", "120",
                                   "-l", f"--log-prefix={logs}/tx")
        self.wait_history(db, before + 100)  # the load runs through pgflip
        self.assertIsNone(bench.poll(), "pgbench ended before the switchover started")
        so = self.switchover(proxy, "--timeout", "20")
        self.assertNotEqual(so.returncode, 0, str(so))
        self.assertEqual(proxy.wait(20), 70,
                         f"pgflip did not die at {step}\n{so}\n{harness.tail(proxy.log_text())}")
        self.assertIn(f"PGFLIP_TEST_EXIT_AT={step}", proxy.log_text())
        returncode, out, err = self.finish_pgbench(bench, timeout=60)
        # Its clients lost their connection with pgflip: pgbench reports them aborted.
        self.assertEqual(returncode, 2, f"pgbench exit {returncode}\n{out}\n{harness.tail(err)}")
        self.assertRegex(err, r"client \d+ aborted", err)
        processed, _, failed = pgbench_counts(out)
        self.assertIn(failed, (0, None), out)
        logged = 0
        for log in logs.iterdir():
            for line in log.read_text().splitlines():
                fields = line.split()
                # client_id transaction_no time script_no time_epoch time_us: a time (not
                # "failed") means the transaction's END returned: it committed.
                if len(fields) >= 6 and fields[2].isdigit():
                    logged += 1
        self.assertEqual(logged, processed, f"per-transaction log against the summary\n{out}")
        self.assertGreater(processed, 0, out)
        return processed

    # --- what the servers hold ------------------------------------------------------------

    def replication_objects(self, db):
        """(slots on blue for `db`, publications in `db` on blue, subscriptions of `db` on
        green): every one, whoever made it."""
        with self.cluster.connect(dbname=db) as conn:
            slots = [r[0] for r in conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE database = %s ORDER BY 1",
                (db,))]
            publications = [r[0] for r in conn.execute(
                "SELECT pubname FROM pg_publication ORDER BY 1")]
        with self.cluster.connect("green", dbname=db) as conn:
            subscriptions = [r[0] for r in conn.execute(
                "SELECT subname FROM pg_subscription WHERE subdbid = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1")]
        return slots, publications, subscriptions

    def assert_replication_intact(self, db):
        """Exactly what replication init made: one slot, one publication, one subscription
        (the tablesync slots of the initial copy long gone)."""
        slots, publications, subscriptions = self.replication_objects(db)
        self.assertEqual(len(subscriptions), 1, subscriptions)
        self.assertTrue(subscriptions[0].startswith(self.prefix), subscriptions)
        self.assertEqual(slots, subscriptions, "blue's slots are the subscription's alone")
        self.assertEqual(len(publications), 1, publications)
        self.assertTrue(publications[0].startswith(self.prefix), publications)

    def fence_of(self, db):
        """(default_transaction_read_only, the database's connection limit, fence record rows)
        on blue."""
        with self.cluster.connect() as conn:
            read_only = conn.execute("SHOW default_transaction_read_only").fetchone()[0]
            limit = conn.execute("SELECT datconnlimit FROM pg_database WHERE datname = %s",
                                 (db,)).fetchone()[0]
            table = f'"{self.prefix}".fence'
            records = 0
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None:
                records = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return read_only, limit, records

    def serving_side(self, proxy, db):
        """Which server a new client of pgflip reaches, after one TPC-B-like write there."""
        with proxy.connect(dbname=db) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            conn.execute("UPDATE pgbench_branches SET bbalance = bbalance WHERE bid = 1")
        return "blue" if version.startswith("15") else "green"

    # --- after the restart ----------------------------------------------------------------

    def assert_blue_serves(self, proxy, db, step, committed):
        """Blue serves, unfenced exactly; everything committed is on blue; replication intact
        (the next switchover can run on it)."""
        self.assertEqual(self.fence_of(db), ("off", -1, 0), f"blue after a crash at {step}")
        status = self.status(proxy)
        self.assertEqual(status["active"], "blue", status)
        self.assertEqual(status["epoch"], 0, status)
        self.assertEqual(self.serving_side(proxy, db), "blue")
        self.assert_blue_unfenced(db)
        history = self.check_tpcb_invariant(db, "blue")
        self.assertGreaterEqual(history, committed,
                                f"crash at {step}: a committed transaction is missing on blue")
        self.assert_replication_intact(db)
        return history

    def assert_green_serves(self, proxy, db, step, committed):
        """Green serves (epoch 1); blue stays fenced; green has every transaction blue
        committed and every one pgbench saw committed; no replication object is left."""
        state = json.loads(pathlib.Path(proxy.overrides["switchover"]["state_file"]).read_text())
        self.assertEqual(state.get("active"), "green", state)
        status = self.status(proxy)
        self.assertEqual(status["active"], "green", status)
        self.assertEqual(status["epoch"], 1, status)
        self.assertEqual(self.serving_side(proxy, db), "green")
        read_only, limit, records = self.fence_of(db)
        self.assertEqual((read_only, limit), ("on", 0), f"blue unfenced after a crash at {step}")
        self.assertEqual(records, 1)
        on_blue = self.check_tpcb_invariant(db, "blue")
        on_green = self.check_tpcb_invariant(db, "green")
        self.assertGreaterEqual(on_green, on_blue, "a transaction committed on blue is missing "
                                                   "on green")
        self.assertGreaterEqual(on_green, committed,
                                f"crash at {step}: a committed transaction is missing on green")
        # The switchover's cleanup resumes after the restart: nothing is left to hold WAL on
        # blue or to keep green's apply worker reconnecting to it.
        wait_until(lambda: self.replication_objects(db) == ([], [], []), 30, interval=0.2,
                   message=f"the replication objects left by a crash at {step} to be dropped")
        # Roll forward only: a second switchover is refused.
        again = self.switchover(proxy)
        self.assertEqual(again.returncode, 1, str(again))
        return on_green

    # --- the tests ------------------------------------------------------------------------

    def test_crash_at_each_step_to_the_commit_then_at_flip(self):
        db = self.new_database("crash")
        self.pgbench_init(db)
        proxy = self.make_pgflip([db], CRASH_OVERRIDES)
        self.addCleanup(proxy.kill)
        self.start_with_hook(proxy, STEPS_BEFORE_COMMIT[0])
        self.replication_init(proxy)
        committed = 0  # every transaction pgbench saw committed, all runs together
        history = self.history_count(db)
        for step, after in zip(STEPS_BEFORE_COMMIT, STEPS_BEFORE_COMMIT[1:] + ["flip"]):
            started = time.monotonic()
            in_run = self.crash_under_load(proxy, db, step)
            committed += in_run
            read_only, limit, _ = self.fence_of(db)
            fenced = step in FENCED_AT
            self.assertEqual((read_only, limit), ("on", 0) if fenced else ("off", -1),
                             f"blue's fence at the crash at {step}")
            state_file = pathlib.Path(proxy.overrides["switchover"]["state_file"])
            if state_file.exists():
                self.assertNotEqual(json.loads(state_file.read_text()).get("active"), "green",
                                    f"crash at {step}")
            self.start_with_hook(proxy, after)
            now = self.assert_blue_serves(proxy, db, step, committed)
            # Each transaction pgbench saw committed is there, and at most one more per client
            # (its COMMIT reached blue, the answer never reached pgbench); serving_side()'s
            # probe is an UPDATE, no history row.
            self.assertLessEqual(now - history, in_run + CLIENTS, f"crash at {step}")
            sys.stderr.write(f"\n  crash at {step}: pgbench saw {in_run} committed, blue has "
                             f"{now - history} new history rows "
                             f"({time.monotonic() - started:.1f} s)")
            history = now
        in_run = self.crash_under_load(proxy, db, "flip")
        committed += in_run
        self.assertEqual(self.fence_of(db)[:2], ("on", 0))
        self.start_with_hook(proxy, None)
        self.addCleanup(proxy.stop)  # runs before kill: checks the exit code and the log
        on_green = self.assert_green_serves(proxy, db, "flip", committed)
        # Parked at the flip: nothing ran on green before the crash, blue saw it all.
        self.assertEqual(on_green, self.history_count(db, "blue"))
        self.assertLessEqual(on_green - history, in_run + CLIENTS)

    def test_crash_at_cleanup(self):
        db = self.new_database("crashclean")
        self.pgbench_init(db)
        proxy = self.make_pgflip([db], CRASH_OVERRIDES)
        self.addCleanup(proxy.kill)
        self.start_with_hook(proxy, "cleanup")
        self.replication_init(proxy)
        committed = self.crash_under_load(proxy, db, "cleanup")
        self.assertEqual(self.fence_of(db)[:2], ("on", 0))
        self.start_with_hook(proxy, None)
        self.addCleanup(proxy.stop)
        self.assert_green_serves(proxy, db, "cleanup", committed)


class CommitDurabilityTest(FailureCase):
    def test_directory_fsync_failure_after_the_rename_rolls_forward(self):
        """The state file is renamed into place, then its directory's fsync fails: the file
        says green, so blue must stay fenced and the clients go to green (rolling back would
        leave a writable blue under a file that sends a restarted pgflip to green)."""
        db = self.new_database("dirfsync")
        proxy = self.make_pgflip([db])
        proxy.env = {"PGFLIP_TEST_STATE_DIR_FSYNC_FAILS": "1"}
        self.addCleanup(proxy.stop)
        self.start_and_wait_admin(proxy)
        self.replication_init(proxy)
        client = proxy.connect(dbname=db)
        self.addCleanup(client.close)
        client.execute("INSERT INTO so_probe (note) VALUES ('before')")
        so = self.switchover(proxy, "--timeout", "20")
        self.assertEqual(so.returncode, 0, str(so))
        self.assertEqual(so.result.get("outcome"), "committed", str(so))
        commit = [e["data"] for e in so.events if e.get("event") == "step"
                  and isinstance(e.get("data"), dict) and e["data"].get("step") == "commit"]
        self.assertEqual(len(commit), 1, str(so))
        self.assertIn("fsync of directory", commit[0]["detail"])
        self.assertIn("fsync of directory", proxy.log_text())
        state = json.loads(pathlib.Path(proxy.overrides["switchover"]["state_file"]).read_text())
        self.assertEqual(state.get("active"), "green", state)
        self.assertEqual(self.status(proxy)["active"], "green")
        self.assertTrue(client.execute("SHOW server_version").fetchone()[0].startswith("17"))
        self.assert_blue_fenced(db)
        # pgflip dies now (the directory entry may or may not be durable; here it is there):
        # the restarted pgflip serves green and never unfences blue.
        proxy.kill()
        client.close()
        self.start_and_wait_admin(proxy)
        self.assertEqual(self.status(proxy)["active"], "green")
        with proxy.connect(dbname=db) as conn:
            self.assertTrue(conn.execute("SHOW server_version").fetchone()[0].startswith("17"))
            self.assertEqual(conn.execute("SELECT note FROM so_probe").fetchall(), [("before",)])
        self.assert_blue_fenced(db)

    def assert_blue_fenced(self, db):
        """Blue's fence whole: read-only by default, no non-superuser login, pgflip's record
        kept; a write straight to blue fails."""
        self.assertEqual(self.blue_read_only(), "on", "blue must stay fenced after the rename")
        with self.cluster.connect() as conn:
            self.assertEqual(conn.execute("SELECT datconnlimit FROM pg_database WHERE datname = "
                                          "%s", (db,)).fetchone()[0], 0)
            self.assertEqual(conn.execute(f'SELECT count(*) FROM "{self.prefix}".fence')
                             .fetchone()[0], 1)
        with self.cluster.connect(dbname=db) as conn:
            with self.assertRaises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO so_probe (note) VALUES ('direct write on blue')")


if __name__ == "__main__":
    harness.main()
