"""psycopg 3 through pgflip: parameters (extended protocol), server-side prepared statements,
COPY both ways, LISTEN/NOTIFY, transaction status, errors inside a transaction."""

import decimal

from psycopg import errors, pq

import harness

DB = "it_psycopg"


class PsycopgTest(harness.PgflipTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.recreate_database(DB)
        cls.proxy = cls.start_class_pgflip()

    def connect(self, **kw):
        conn = self.proxy.connect(dbname=DB, **kw)
        self.addCleanup(conn.close)
        return conn

    def test_parameters_extended_protocol(self):
        conn = self.connect()
        row = conn.execute("select %s::int + 1, %s::text || '!', %s::numeric * 2, %s::jsonb ->> 'k', "
                           "%s::int[]", (41, "héllo", decimal.Decimal("1.25"), '{"k": "v"}',
                                         [1, 2, 3])).fetchone()
        self.assertEqual(row, (42, "héllo!", decimal.Decimal("2.50"), "v", [1, 2, 3]))
        # NULLs and binary results.
        with conn.cursor(binary=True) as cur:
            cur.execute("select %s::text is null, %s::bytea", (None, b"\x00\xff\x01"))
            self.assertEqual(cur.fetchone(), (True, b"\x00\xff\x01"))
        # Many rows through one extended-protocol portal.
        rows = conn.execute("select i, md5(i::text) from generate_series(1, %s) i", (20000,)).fetchall()
        self.assertEqual(len(rows), 20000)
        self.assertEqual(rows[-1][0], 20000)

    def test_server_side_prepared_statements(self):
        conn = self.connect()
        conn.execute("drop table if exists prep_t; create table prep_t (id int, v text)")
        for i in range(20):
            conn.execute("insert into prep_t values (%s, %s)", (i, f"v{i}"), prepare=True)
        names = conn.execute("select count(*) from pg_prepared_statements "
                             "where statement like 'insert into prep_t%%' and not from_sql",
                             prepare=False).fetchone()[0]
        self.assertEqual(names, 1)  # one named statement on the server, reused 20 times
        for i in range(5):
            got = conn.execute("select v from prep_t where id = %s", (i,), prepare=True).fetchone()
            self.assertEqual(got, (f"v{i}",))
        # executemany pipelines Parse/Bind/Execute.
        with conn.cursor() as cur:
            cur.executemany("insert into prep_t values (%s, %s)", [(100 + i, "m") for i in range(50)])
        self.assertEqual(conn.execute("select count(*) from prep_t").fetchone()[0], 70)
        # A statement the server forgot: DEALLOCATE ALL then prepare again.
        conn.execute("deallocate all", prepare=False)
        conn.prepared_threshold = None  # no automatic preparing: keep the next check simple
        self.assertEqual(conn.execute("select 1").fetchone(), (1,))

    def test_copy_in_and_out(self):
        conn = self.connect()
        conn.execute("drop table if exists copy_t; create table copy_t (id int, txt text, b bytea)")
        rows = [(i, None if i % 50 == 0 else f"line {i}\twith\ttabs\nand newline é",
                 bytes([i % 256, 0, 255])) for i in range(3000)]
        with conn.cursor() as cur:
            with cur.copy("copy copy_t (id, txt, b) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
            self.assertEqual(cur.rowcount, 3000)
            got = []
            with cur.copy("copy (select id, txt, b from copy_t order by id) to stdout") as copy:
                copy.set_types(["int4", "text", "bytea"])
                got = list(copy.rows())
        self.assertEqual(got, rows)
        # Binary COPY in.
        with conn.cursor() as cur:
            with cur.copy("copy copy_t (id, txt, b) from stdin (format binary)") as copy:
                copy.set_types(["int4", "text", "bytea"])
                for i in range(1000):
                    copy.write_row((10000 + i, "bin", b"\x01"))
        self.assertEqual(conn.execute("select count(*) from copy_t").fetchone()[0], 4000)
        # A COPY that fails on the server leaves the session usable.
        with self.assertRaises(errors.InvalidTextRepresentation):
            with conn.cursor() as cur:
                with cur.copy("copy copy_t (id) from stdin") as copy:
                    copy.write("not-a-number\n")
        self.assertEqual(conn.execute("select 'alive'").fetchone(), ("alive",))

    def test_listen_notify(self):
        listener, notifier = self.connect(), self.connect()
        received = []
        listener.add_notify_handler(received.append)
        listener.execute("listen pgflip_it_channel")
        notifier.execute("notify pgflip_it_channel, 'hello through pgflip'")
        notifier.execute("select pg_notify('pgflip_it_channel', 'second')")

        def both_arrived():
            listener.execute("select 1")  # lets psycopg read what the server pushed
            return len(received) >= 2

        harness.wait_until(both_arrived, timeout=5, message="two notifications")
        self.assertEqual([n.payload for n in received], ["hello through pgflip", "second"])
        self.assertEqual(received[0].channel, "pgflip_it_channel")
        self.assertEqual(received[0].pid, notifier.execute("select pg_backend_pid()").fetchone()[0])

        # A notification raised inside a transaction arrives only at its commit.
        with notifier.transaction():
            notifier.execute("notify pgflip_it_channel, 'at commit'")
            listener.execute("select 1")
            self.assertEqual(len(received), 2)
        harness.wait_until(lambda: listener.execute("select 1") and len(received) == 3,
                           timeout=5, message="the committed notification")
        self.assertEqual(received[2].payload, "at commit")

    def test_transaction_status(self):
        conn = self.connect(autocommit=False)
        self.assertEqual(conn.info.transaction_status, pq.TransactionStatus.IDLE)
        conn.execute("select 1")
        self.assertEqual(conn.info.transaction_status, pq.TransactionStatus.INTRANS)
        conn.commit()
        self.assertEqual(conn.info.transaction_status, pq.TransactionStatus.IDLE)
        with conn.transaction():
            conn.execute("create temp table tt (x int)")
            self.assertEqual(conn.info.transaction_status, pq.TransactionStatus.INTRANS)
        self.assertEqual(conn.info.transaction_status, pq.TransactionStatus.IDLE)

    def test_error_in_transaction_then_rollback(self):
        conn = self.connect(autocommit=False)
        conn.execute("drop table if exists err_t; create table err_t (id int primary key)")
        conn.commit()
        conn.execute("insert into err_t values (1)")
        with self.assertRaises(errors.UniqueViolation) as caught:
            conn.execute("insert into err_t values (1)")
        self.assertEqual(caught.exception.sqlstate, "23505")
        self.assertEqual(conn.info.transaction_status, pq.TransactionStatus.INERROR)
        with self.assertRaises(errors.InFailedSqlTransaction):
            conn.execute("select 1")
        conn.rollback()
        self.assertEqual(conn.info.transaction_status, pq.TransactionStatus.IDLE)
        self.assertEqual(conn.execute("select count(*) from err_t").fetchone(), (0,))
        # A savepoint keeps the outer transaction.
        with conn.transaction():
            conn.execute("insert into err_t values (2)")
            with self.assertRaises(errors.DivisionByZero):
                with conn.transaction():
                    conn.execute("select 1/0")
            conn.execute("insert into err_t values (3)")
        self.assertEqual(conn.execute("select array_agg(id order by id) from err_t").fetchone(),
                         ([2, 3],))
        conn.commit()

    def test_pipeline_mode(self):
        conn = self.connect()
        with conn.pipeline():
            cursors = [conn.execute("select %s::int * 2", (i,)) for i in range(100)]
        self.assertEqual([c.fetchone()[0] for c in cursors], [i * 2 for i in range(100)])
        # An error in the middle of a pipeline aborts the rest, then the session goes on.
        with self.assertRaises(errors.DivisionByZero):
            with conn.pipeline():
                conn.execute("select 1")
                conn.execute("select 1/0")
                conn.execute("select 2")
        self.assertEqual(conn.execute("select 'after pipeline'").fetchone(), ("after pipeline",))

    def test_parameter_status_and_settings(self):
        conn = self.connect()
        self.assertEqual(conn.info.parameter_status("server_encoding"), "UTF8")
        self.assertTrue(conn.info.parameter_status("server_version").startswith("15."))
        conn.execute("set application_name = 'pgflip-it'")
        self.assertEqual(conn.info.parameter_status("application_name"), "pgflip-it")
        conn.execute("set TimeZone = 'Asia/Tokyo'")
        self.assertEqual(conn.info.parameter_status("TimeZone"), "Asia/Tokyo")
        self.assertEqual(conn.execute("show timezone").fetchone(), ("Asia/Tokyo",))


if __name__ == "__main__":
    harness.main()
