"""PAUSE/RESUME: maintenance without a switchover. Every session holds its next request at a
transaction boundary (open transactions run to their end first) until RESUME; sessions that log
in meanwhile are held at their first request; a request held longer than
server.query_wait_timeout_ms ends its session with FATAL 57014; a switchover is refused while
paused. Under a pgbench TPC-B load no transaction fails and the totals add up."""

import json
import os
import re
import subprocess
import threading
import time

import psycopg

import harness
from harness import run, wait_until

DB = "it_pause"
CLIENTS = 8
TRANSACTIONS = 150


pgflipctl_binary = harness.pgflipctl_binary


class PauseTest(harness.PgflipTestCase):
    pgflip_only = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.recreate_database(DB)
        run([cls.cluster.pgbench, "-i", "-s", "1", "-q"],
            env={**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(cls.cluster.blue_port),
                 "PGUSER": "postgres", "PGDATABASE": DB})

    # --- helpers ----------------------------------------------------------------------------

    def ctl(self, proxy, *args, timeout=60):
        cmd = [pgflipctl_binary(), "--socket", str(proxy.admin_dir / "admin.sock"), "--json",
               *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        self.assertTrue(lines, f"no reply from pgflipctl {args}: {proc.stderr}")
        return proc.returncode, lines[-1]

    def ctl_ok(self, proxy, *args):
        code, reply = self.ctl(proxy, *args)
        self.assertEqual(code, 0, reply)
        return reply["result"]

    def start(self, **server):
        return self.start_pgflip({"server": server} if server else None).wait_admin_socket()

    def history_count(self):
        with self.cluster.connect(dbname=DB) as conn:
            return conn.execute("SELECT count(*) FROM pgbench_history").fetchone()[0]

    # --- tests --------------------------------------------------------------------------------

    def test_pause_resume_under_pgbench(self):
        proxy = self.start()
        with self.cluster.connect(dbname=DB) as conn:
            conn.execute("TRUNCATE pgbench_history")
            balance_before = conn.execute("SELECT sum(abalance) FROM pgbench_accounts").fetchone()[0]
        env = proxy.libpq_env(dbname=DB)
        bench = subprocess.Popen(
            [self.cluster.pgbench, "-n", "-c", str(CLIENTS), "-j", "2", "-t", str(TRANSACTIONS)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(bench.kill)
        wait_until(lambda: self.history_count() >= 100, 60, message="pgbench under way")

        paused = self.ctl_ok(proxy, "pause", "--timeout", "30")
        self.assertEqual(paused["sessions"], CLIENTS, paused)
        self.assertEqual(paused["at_boundary"], CLIENTS, paused)
        self.assertEqual(paused["in_transaction"], [], paused)
        state = self.ctl_ok(proxy, "status")
        self.assertTrue(state["paused"], state)
        # Nothing moves on the server while paused: every client is held.
        before = self.history_count()
        self.assertLess(before, CLIENTS * TRANSACTIONS)
        time.sleep(1.0)  # an interval to observe, not synchronisation
        self.assertEqual(self.history_count(), before, "transactions ran while paused")
        with self.cluster.connect(dbname=DB) as conn:
            active = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state <> 'idle' "
                "AND pid <> pg_backend_pid()", (DB,)).fetchone()[0]
        self.assertEqual(active, 0, "a backend was busy while paused")

        resumed = self.ctl_ok(proxy, "resume")
        self.assertEqual(resumed["sessions"], CLIENTS, resumed)
        out, err = bench.communicate(timeout=120)
        self.assertEqual(bench.returncode, 0, err)
        processed = int(re.search(r"number of transactions actually processed: (\d+)", out)[1])
        self.assertEqual(processed, CLIENTS * TRANSACTIONS, out)
        self.assertNotIn("failed", re.sub(r"number of failed transactions: 0\b", "", out))
        with self.cluster.connect(dbname=DB) as conn:
            balance, delta, n = conn.execute(
                "SELECT (SELECT sum(abalance) FROM pgbench_accounts), "
                "(SELECT coalesce(sum(delta), 0) FROM pgbench_history), "
                "(SELECT count(*) FROM pgbench_history)").fetchone()
        self.assertEqual(balance - balance_before, delta, "TPC-B invariant")
        self.assertEqual(n, CLIENTS * TRANSACTIONS)

    def test_open_transaction_runs_to_its_end_then_parks(self):
        proxy = self.start()
        busy = psycopg.connect(proxy.dsn(dbname=DB), autocommit=False)
        self.addCleanup(busy.close)
        busy.execute("SELECT 1")  # a transaction is open
        code, reply = self.ctl(proxy, "pause", "--timeout", "0.3")
        self.assertEqual(code, 0, reply)
        result = reply["result"]
        self.assertEqual(result["sessions"], 1)
        self.assertEqual(result["at_boundary"], 0)
        self.assertEqual(len(result["in_transaction"]), 1)
        # The transaction is not held: it runs to its end, then the session parks.
        busy.execute("SELECT 2")
        busy.commit()
        done = []
        t = threading.Thread(target=lambda: done.append(busy.execute("SELECT 3").fetchone()[0]))
        t.start()
        t.join(0.5)
        self.assertEqual(done, [], "a request after COMMIT ran while paused")
        self.ctl_ok(proxy, "resume")
        t.join(10)
        self.assertEqual(done, [3])

    def test_new_login_waits_for_resume(self):
        proxy = self.start()
        self.ctl_ok(proxy, "pause")
        results = []

        def client():
            with psycopg.connect(proxy.dsn(dbname=DB), autocommit=True) as conn:
                results.append(("connected", time.monotonic()))
                results.append(conn.execute("SELECT 42").fetchone()[0])

        t = threading.Thread(target=client)
        t.start()
        wait_until(lambda: results, 10, message="the login to finish while paused")
        t.join(0.5)
        self.assertEqual(len(results), 1, "the query ran while paused")
        self.ctl_ok(proxy, "resume")
        t.join(10)
        self.assertEqual(results[1], 42)

    def test_wait_timeout_gives_a_clear_error(self):
        proxy = self.start(query_wait_timeout_ms=800)
        held = harness.RawClient(proxy.port, database=DB)
        self.addCleanup(held.close)
        bystander = psycopg.connect(proxy.dsn(dbname=DB), autocommit=True)
        self.addCleanup(bystander.close)
        self.ctl_ok(proxy, "pause")
        started = time.monotonic()
        held.send_query("SELECT 1")
        kind, body = held.read_message()
        waited = time.monotonic() - started
        self.assertEqual(kind, b"E")
        error = harness.parse_error_fields(body)
        self.assertEqual((error["S"], error["C"]), ("FATAL", "57014"), error)
        self.assertIn("paused", error["M"])
        self.assertIn("query_wait_timeout_ms (800 ms)", error["M"])
        self.assertGreaterEqual(waited, 0.7)
        with self.assertRaises(ConnectionError):
            held.read_message()  # and the connection is closed
        # A client that sent nothing is not affected, and works after RESUME.
        self.ctl_ok(proxy, "resume")
        self.assertEqual(bystander.execute("SELECT 7").fetchone()[0], 7)
        self.assertIn("request held by PAUSE longer than server.query_wait_timeout_ms",
                      proxy.log_text())

    def test_refusals(self):
        proxy = self.start()
        code, reply = self.ctl(proxy, "resume")
        self.assertEqual(code, 1)
        self.assertIn("not paused", reply["error"]["message"])
        self.ctl_ok(proxy, "pause")
        code, reply = self.ctl(proxy, "pause")
        self.assertEqual(code, 1)
        self.assertIn("already paused", reply["error"]["message"])
        code, reply = self.ctl(proxy, "switchover", "--dry-run")
        self.assertEqual(code, 1)
        self.assertIn("paused", reply["error"]["message"])
        self.ctl_ok(proxy, "resume")
        self.assertFalse(self.ctl_ok(proxy, "status")["paused"])

    def test_console_pause_and_resume(self):
        proxy = self.start_pgflip({"auth": {"admin_users": ["postgres"]}}).wait_admin_socket()
        client = psycopg.connect(proxy.dsn(dbname=DB), autocommit=True)
        self.addCleanup(client.close)
        console = psycopg.connect(proxy.dsn(dbname="pgflip"), autocommit=True)
        self.addCleanup(console.close)
        console.execute("PAUSE")
        state = dict(console.execute("SHOW STATE").fetchall())
        self.assertIn(state.get("paused"), ("true", True, "t"), state)
        done = []
        t = threading.Thread(target=lambda: done.append(client.execute("SELECT 5").fetchone()[0]))
        t.start()
        t.join(0.5)
        self.assertEqual(done, [])
        console.execute("RESUME")  # the console itself is never paused
        t.join(10)
        self.assertEqual(done, [5])


if __name__ == "__main__":
    harness.main()
