"""Graceful stop on SIGTERM: stop accepting, end idle sessions, let a transaction finish, and
never wait longer than server.shutdown_timeout_ms."""

import signal
import time

import psycopg

import harness


def refused(port):
    """True if a new client cannot get a session: connection refused, or an error at startup."""
    try:
        client = harness.RawClient(port, timeout=3)
    except (OSError, ConnectionError, harness.ServerError):
        return True
    client.close()
    return False


class ShutdownTest(harness.PgflipTestCase):
    pgflip_only = True

    def test_idle_client_does_not_delay_exit(self):
        timeout_ms = 5000
        proxy = self.start_pgflip({"server": {"shutdown_timeout_ms": timeout_ms}})
        idle = proxy.connect()
        self.addCleanup(idle.close)
        self.assertEqual(idle.execute("select 1").fetchone(), (1,))
        started = time.monotonic()
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.wait(timeout_ms / 1000 + 2), 0)
        self.assertLess(time.monotonic() - started, timeout_ms / 1000)
        with self.assertRaises(psycopg.OperationalError):
            idle.execute("select 1")
        self.assertTrue(refused(proxy.port))

    def test_new_connections_refused_while_a_transaction_finishes(self):
        timeout_ms = 8000
        proxy = self.start_pgflip({"server": {"shutdown_timeout_ms": timeout_ms}})
        busy = proxy.connect(autocommit=False)
        self.addCleanup(busy.close)
        busy.execute("create temp table t (x int)")
        busy.execute("insert into t values (1)")  # inside a transaction now
        started = time.monotonic()
        proxy.signal(signal.SIGTERM)
        harness.wait_until(lambda: refused(proxy.port), timeout=3,
                           message="new connections to be refused after SIGTERM")
        self.assertTrue(proxy.running(), "pgflip should wait for the open transaction")
        # The transaction still completes: it ends at its boundary.
        self.assertEqual(busy.execute("select count(*) from t").fetchone(), (1,))
        busy.commit()
        self.assertEqual(proxy.wait(timeout_ms / 1000), 0)
        self.assertLess(time.monotonic() - started, timeout_ms / 1000)
        with self.assertRaises(psycopg.OperationalError):
            busy.execute("select 1")

    def test_stuck_transaction_bounded_by_shutdown_timeout(self):
        timeout_ms = 2000
        proxy = self.start_pgflip({"server": {"shutdown_timeout_ms": timeout_ms}})
        stuck = proxy.connect(autocommit=False)
        self.addCleanup(stuck.close)
        pid = stuck.execute("select pg_backend_pid()").fetchone()[0]  # transaction left open
        started = time.monotonic()
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.wait(timeout_ms / 1000 + 3), 0)
        elapsed = time.monotonic() - started
        # It waited for the transaction (graceful), but no longer than the timeout allows.
        self.assertGreater(elapsed, timeout_ms / 1000 - 0.3)
        with self.assertRaises(psycopg.OperationalError):
            stuck.execute("select 1")
        # The server session it held is gone too (its transaction rolled back).
        harness.wait_until(lambda: not self.cluster.backend_exists(pid), timeout=5,
                           message="the stuck session's backend to exit")


if __name__ == "__main__":
    harness.main()
