"""Failures on either side of pgflip: a server connection killed under a client, and a client
that vanishes mid-query."""

import psycopg

import harness

DB = "it_failures"


class FailureTest(harness.PgflipTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.recreate_database(DB)
        cls.proxy = cls.start_class_pgflip()

    def test_killed_server_connection(self):
        victim = self.proxy.connect(dbname=DB)
        other = self.proxy.connect(dbname=DB)
        self.addCleanup(victim.close)
        self.addCleanup(other.close)
        victim_pid = victim.execute("select pg_backend_pid()").fetchone()[0]
        other_pid = other.execute("select pg_backend_pid()").fetchone()[0]
        self.assertNotEqual(victim_pid, other_pid)

        with self.cluster.connect() as direct:
            self.assertTrue(direct.execute("select pg_terminate_backend(%s)", (victim_pid,))
                            .fetchone()[0])
            harness.wait_until(lambda: not self.cluster.backend_exists(victim_pid), timeout=10,
                               message="the terminated backend to exit")

        with self.assertRaises(psycopg.OperationalError) as caught:
            victim.execute("select 1")
        # Either the server's own FATAL (57P01 admin shutdown) or a lost connection (no SQLSTATE,
        # or pgflip's 08006).
        self.assertIn(caught.exception.sqlstate, (None, "57P01", "08006", "08003"),
                      str(caught.exception))
        self.assertTrue(victim.closed or victim.broken)

        # The other session on the same pgflip is untouched...
        self.assertEqual(other.execute("select pg_backend_pid()").fetchone()[0], other_pid)
        self.assertEqual(other.execute("select 'still here'").fetchone(), ("still here",))
        # ...and new sessions work.
        with self.proxy.connect(dbname=DB) as fresh:
            self.assertEqual(fresh.execute("select 1 + 1").fetchone(), (2,))

    def test_killed_server_connection_raw_error(self):
        """What exactly the client receives when its server connection is terminated."""
        raw = harness.RawClient(self.proxy.port, database=DB)
        self.addCleanup(raw.sock.close)
        pid = int(raw.query("select pg_backend_pid()")[0][0])
        with self.cluster.connect() as direct:
            direct.execute("select pg_terminate_backend(%s)", (pid,))
        harness.wait_until(lambda: not self.cluster.backend_exists(pid), timeout=10,
                           message="the terminated backend to exit")
        # The server sent FATAL 57P01 before closing; pgflip passes it on (or reports 08006),
        # then closes the client connection.
        try:
            raw.send_query("select 1")
            kind, body = raw.read_message()
        except (ConnectionError, OSError):
            self.fail("client connection closed without an ErrorResponse")
        self.assertEqual(kind, b"E")
        fields = harness.parse_error_fields(body)
        self.assertEqual(fields.get("S"), "FATAL", fields)
        self.assertIn(fields.get("C"), ("57P01", "08006"), fields)
        with self.assertRaises((ConnectionError, OSError)):
            while True:
                raw.read_message()

    def test_client_vanishing_mid_query_frees_server_connection(self):
        self.skip_if_direct("PostgreSQL alone notices a vanished client only when it writes")
        raw = harness.RawClient(self.proxy.port, database=DB, application_name="it-vanishing")
        pid = int(raw.query("select pg_backend_pid()")[0][0])
        raw.send_query("select pg_sleep(30)")
        with self.cluster.connect() as direct:
            harness.wait_until(lambda: direct.execute(
                "select wait_event from pg_stat_activity where pid = %s", (pid,)).fetchone()
                == ("PgSleep",), timeout=10, message="pg_sleep to start")
        raw.abort()  # TCP RST, no Terminate message
        harness.wait_until(lambda: not self.cluster.backend_exists(pid), timeout=5,
                           message=f"server backend {pid} to go away after the client vanished")
        with self.proxy.connect(dbname=DB) as conn:
            self.assertEqual(conn.execute("select 1").fetchone(), (1,))

    def test_client_closing_politely_mid_query(self):
        self.skip_if_direct("PostgreSQL alone notices a vanished client only when it writes")
        raw = harness.RawClient(self.proxy.port, database=DB)
        pid = int(raw.query("select pg_backend_pid()")[0][0])
        raw.send_query("select pg_sleep(30)")
        with self.cluster.connect() as direct:
            harness.wait_until(lambda: direct.execute(
                "select wait_event from pg_stat_activity where pid = %s", (pid,)).fetchone()
                == ("PgSleep",), timeout=10, message="pg_sleep to start")
        raw.sock.close()  # FIN
        harness.wait_until(lambda: not self.cluster.backend_exists(pid), timeout=5,
                           message=f"server backend {pid} to go away after the client closed")


if __name__ == "__main__":
    harness.main()
