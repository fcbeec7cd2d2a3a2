"""Cancel requests through pgflip, and pgflip's own BackendKeyData."""

import threading
import time

from psycopg import errors

import harness


class CancelTest(harness.PgflipTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.proxy = cls.start_class_pgflip()

    def run_cancelled_sleep(self, conn, canceller):
        """Runs pg_sleep(30) on conn, cancels it once it is running; returns (error, seconds)."""
        server_pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        outcome = {}

        def sleeper():
            started = time.monotonic()
            try:
                conn.execute("select pg_sleep(30)")
            except Exception as exc:  # noqa: BLE001 - reported to the main thread
                outcome["error"] = exc
            outcome["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=sleeper)
        thread.start()
        with self.cluster.connect() as direct:
            harness.wait_until(lambda: direct.execute(
                "select wait_event = 'PgSleep' from pg_stat_activity where pid = %s",
                (server_pid,)).fetchone() == (True,), timeout=10, message="pg_sleep to start")
        sent = time.monotonic()
        canceller()
        thread.join(timeout=10)
        self.assertFalse(thread.is_alive(), "pg_sleep(30) was not cancelled")
        return outcome.get("error"), time.monotonic() - sent, server_pid

    def test_cancel_from_another_thread(self):
        conn = self.proxy.connect()
        self.addCleanup(conn.close)
        error, seconds, _ = self.run_cancelled_sleep(conn, conn.cancel)
        self.assertIsInstance(error, errors.QueryCanceled)
        self.assertEqual(error.sqlstate, "57014")
        self.assertLess(seconds, 2.0)
        # The session survives its cancelled query.
        self.assertEqual(conn.execute("select 'after cancel'").fetchone(), ("after cancel",))

    def test_cancel_inside_transaction(self):
        conn = self.proxy.connect(autocommit=False)
        self.addCleanup(conn.close)
        conn.execute("select 1")
        error, seconds, _ = self.run_cancelled_sleep(conn, conn.cancel)
        self.assertIsInstance(error, errors.QueryCanceled)
        self.assertLess(seconds, 2.0)
        conn.rollback()
        self.assertEqual(conn.execute("select 1").fetchone(), (1,))

    def test_cancel_hits_only_its_own_session(self):
        victim, bystander = self.proxy.connect(), self.proxy.connect()
        self.addCleanup(victim.close)
        self.addCleanup(bystander.close)
        bystander_result = {}

        def bystander_sleep():
            bystander_result["row"] = bystander.execute("select pg_sleep(1.5), 'done'").fetchone()

        thread = threading.Thread(target=bystander_sleep)
        thread.start()
        error, seconds, _ = self.run_cancelled_sleep(victim, victim.cancel)
        self.assertIsInstance(error, errors.QueryCanceled)
        thread.join(timeout=10)
        self.assertEqual(bystander_result.get("row"), ("", "done"))

    def test_backend_key_is_pgflips_own(self):
        self.skip_if_direct()
        conn = self.proxy.connect()
        self.addCleanup(conn.close)
        server_pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        self.assertNotEqual(conn.info.backend_pid, server_pid)
        raw = harness.RawClient(self.proxy.port)
        self.addCleanup(raw.close)
        self.assertIsNotNone(raw.backend_key)
        real_pid = int(raw.query("select pg_backend_pid()")[0][0])
        self.assertNotEqual(raw.backend_key[0], real_pid)
        # Keys are not reused between sessions.
        self.assertNotEqual(raw.backend_key[0], conn.info.backend_pid)


if __name__ == "__main__":
    harness.main()
