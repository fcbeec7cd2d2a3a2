"""The metrics endpoint and `show stats`: pgbench workloads through pgflip move the query,
transaction and latency counters by exactly what pgbench reports; errors are counted by SQLSTATE;
client and server gauges follow open psycopg connections; /healthz answers; a switchover counts
as one committed run with a duration per step, and the replication lag is polled while blue
replicates to green.

Query and transaction counts are exact because pgbench runs its own scripts (-f) with -n: it
then sends nothing but the scripts' statements (no vacuum, no table-size probe)."""

import json
import re
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import psycopg

import harness
from harness import wait_until
from test_switchover import SwitchoverTestCase, pgbench_counts, pgflipctl_binary

DB = "it_metrics"

SELECT_SCRIPT = """\\set aid random(1, 100000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
"""
# Seven statements, one transaction: BEGIN ... END.
TPCB_SCRIPT = """\\set aid random(1, 100000)
\\set tid random(1, 10)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = 1;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
  VALUES (:tid, 1, :aid, :delta, CURRENT_TIMESTAMP);
END;
"""
STEPS = ["guardrails", "prewarm", "park", "fence", "drain", "sequences", "commit", "flip",
         "cleanup"]

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


class Scrape:
    """One /metrics scrape, parsed: samples by (name, labels), and the TYPE of each family."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
                continue
            if not line or line.startswith("#"):
                continue
            match = SAMPLE.match(line)
            if not match:
                raise AssertionError(f"malformed sample line: {line!r}")
            name, labels, value = match.groups()
            parsed = {}
            if labels:
                consumed = 0
                for item in LABEL.finditer(labels):
                    parsed[item.group(1)] = (item.group(2).replace('\\"', '"')
                                             .replace("\\n", "\n").replace("\\\\", "\\"))
                    consumed = item.end()
                if consumed != len(labels):
                    raise AssertionError(f"malformed labels: {line!r}")
            key = (name, frozenset(parsed.items()))
            if key in self.samples:
                raise AssertionError(f"duplicate sample: {line!r}")
            self.samples[key] = float(value)

    def get(self, name, default=None, **labels):
        return self.samples.get((name, frozenset(labels.items())), default)

    def value(self, name, **labels):
        value = self.get(name, **labels)
        if value is None:
            raise AssertionError(f"no sample {name}{labels} in:\n{self.text}")
        return value

    def total(self, name, **labels):
        """The sum over every sample of `name` whose labels include `labels`."""
        return sum(v for (n, ls), v in self.samples.items()
                   if n == name and set(labels.items()) <= set(ls))


def http_get(port, path, timeout=10):
    """(status, content type, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), error.read().decode()


def wait_listening(port):
    """pgflip accepts clients before its metrics endpoint listens (recovery and the admin
    socket come between): wait for the endpoint, not for time."""
    def accepting():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False
    wait_until(accepting, 30, message=f"the metrics endpoint to listen on port {port}")


class MetricsMixin:
    def scrape(self, proxy):
        status, content_type, body = http_get(proxy.metrics_port, "/metrics")
        self.assertEqual(status, 200, body)
        self.assertEqual(content_type, "text/plain; version=0.0.4; charset=utf-8")
        return Scrape(body)

    def ctl_json(self, proxy, *args):
        cmd = [pgflipctl_binary(), "--config", str(proxy.config_path), "--json", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, f"{cmd}: {proc.stdout}\n{proc.stderr}")
        reply = json.loads(proc.stdout.splitlines()[-1])
        self.assertTrue(reply["ok"], reply)
        return reply


class WorkloadMetricsTest(MetricsMixin, harness.PgflipTestCase):
    pgflip_only = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.recreate_database(DB)
        harness.run([cls.cluster.pgbench, "-i", "-q", "-s", "1", "-h", "127.0.0.1",
                     "-p", str(cls.cluster.blue_port), "-U", "postgres", DB], timeout=120)
        cls.metrics_port = harness.free_port()
        cls.proxy = cls.start_class_pgflip(
            {"metrics": {"listen": f"127.0.0.1:{cls.metrics_port}"}})
        cls.proxy.metrics_port = cls.metrics_port
        wait_listening(cls.metrics_port)
        for name, text in (("select.sql", SELECT_SCRIPT), ("tpcb.sql", TPCB_SCRIPT)):
            (cls.proxy.workdir / name).write_text(text)

    def pgbench(self, script, *args):
        out = harness.run([self.cluster.pgbench, "-n", "-f", str(self.proxy.workdir / script),
                           *args], env=self.proxy.libpq_env(dbname=DB), timeout=300)
        return out.stdout

    def wait_no_clients(self):
        wait_until(lambda: self.scrape(self.proxy).total("pgflip_clients") == 0, 15,
                   message="every client session to end")

    def test_healthz_and_other_paths(self):
        self.assertEqual(http_get(self.metrics_port, "/healthz")[::2], (200, "ok\n"))
        self.assertEqual(http_get(self.metrics_port, "/nothing-here")[0], 404)
        scrape = self.scrape(self.proxy)
        self.assertEqual(scrape.types["pgflip_query_duration_seconds"], "histogram")
        self.assertEqual(scrape.types["pgflip_queries_total"], "counter")
        self.assertEqual(scrape.types["pgflip_clients"], "gauge")
        self.assertEqual(scrape.value("pgflip_active_environment", environment="blue"), 1)
        self.assertEqual(scrape.value("pgflip_active_environment", environment="green"), 0)

    def test_pgbench_counts_exactly(self):
        self.wait_no_clients()
        before = self.scrape(self.proxy)
        out = self.pgbench("select.sql", "-M", "simple", "-c", "4", "-t", "250")
        self.assertEqual(pgbench_counts(out)[:2], (1000, 1000), out)
        middle = self.scrape(self.proxy)
        out = self.pgbench("tpcb.sql", "-M", "extended", "-c", "4", "-t", "100")
        self.assertEqual(pgbench_counts(out)[:2], (400, 400), out)
        after = self.scrape(self.proxy)

        def delta(name, first, second, **labels):
            return second.get(name, 0, **labels) - first.get(name, 0, **labels)

        db = {"database": DB}
        # select.sql: one statement, one autocommit transaction each.
        self.assertEqual(delta("pgflip_queries_total", before, middle, **db), 1000)
        self.assertEqual(delta("pgflip_transactions_total", before, middle, **db), 1000)
        self.assertEqual(delta("pgflip_query_duration_seconds_count", before, middle, **db), 1000)
        # tpcb.sql: seven statements (each Parse/Bind/Describe/Execute/Sync), one transaction.
        self.assertEqual(delta("pgflip_queries_total", middle, after, **db), 2800)
        self.assertEqual(delta("pgflip_transactions_total", middle, after, **db), 400)
        self.assertEqual(delta("pgflip_query_duration_seconds_count", middle, after, **db), 2800)
        self.assertEqual(after.value("pgflip_query_duration_seconds_bucket", le="+Inf", **db),
                         after.value("pgflip_query_duration_seconds_count", **db))
        self.assertGreater(delta("pgflip_query_duration_seconds_sum", before, after, **db), 0)
        buckets = sorted((float(dict(ls)["le"]), v) for (n, ls), v in after.samples.items()
                         if n == "pgflip_query_duration_seconds_bucket"
                         and dict(ls).get("database") == DB)
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets),
                         "buckets must be cumulative")
        for name in ("pgflip_client_bytes_received_total", "pgflip_client_bytes_sent_total"):
            self.assertGreater(delta(name, before, middle, **db), 1000 * 20, name)
            self.assertGreater(delta(name, middle, after, **db), 0, name)
        # pgbench opens one connection per client plus one of its own at start.
        self.assertGreaterEqual(delta("pgflip_client_connections_total", before, after), 8)

        # show stats agrees with the metrics (a JSON array of flat rows, same keys each).
        reply = self.ctl_json(self.proxy, "show", "stats")
        rows = reply["result"]
        self.assertIsInstance(rows, list)
        self.assertTrue(rows and all(list(r) == list(rows[0]) for r in rows), rows)
        self.assertEqual(list(rows[0]), ["database", "total_xact_count", "total_query_count",
                                         "total_received", "total_sent", "total_query_time_us",
                                         "avg_query_time_us", "total_errors"])
        self.assertTrue(all(not isinstance(v, (dict, list)) for r in rows for v in r.values()))
        row = next(r for r in rows if r["database"] == DB)
        now = self.scrape(self.proxy)
        self.assertEqual(row["total_xact_count"], now.value("pgflip_transactions_total", **db))
        self.assertEqual(row["total_query_count"], now.value("pgflip_queries_total", **db))
        self.assertEqual(row["total_received"],
                         now.value("pgflip_client_bytes_received_total", **db))
        self.assertGreater(row["total_query_time_us"], 0)
        self.assertEqual(row["avg_query_time_us"],
                         row["total_query_time_us"] // row["total_query_count"])
        text = subprocess.run([pgflipctl_binary(), "--config", str(self.proxy.config_path),
                               "show", "stats"], capture_output=True, text=True, timeout=60)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertRegex(text.stdout, r"DATABASE\s+TRANSACTIONS\s+QUERIES")
        self.assertRegex(text.stdout, rf"(?m)^{DB}\s+{row['total_xact_count']}\s+"
                                      rf"{row['total_query_count']}\s")

    def test_errors_by_sqlstate(self):
        before = self.scrape(self.proxy)
        with self.proxy.connect(dbname=DB) as conn:
            with self.assertRaises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1/0")
            with self.assertRaises(psycopg.errors.UndefinedTable):
                conn.execute("SELECT * FROM no_such_table")
            with self.assertRaises(psycopg.errors.UndefinedTable):
                conn.execute("SELECT * FROM no_such_table")
        after = self.scrape(self.proxy)

        def delta(**labels):
            return (after.get("pgflip_errors_total", 0, **labels)
                    - before.get("pgflip_errors_total", 0, **labels))

        self.assertEqual(delta(database=DB, sqlstate="22012"), 1)
        self.assertEqual(delta(database=DB, sqlstate="42P01"), 2)
        row = next(r for r in self.ctl_json(self.proxy, "show", "stats")["result"]
                   if r["database"] == DB)
        self.assertEqual(row["total_errors"], after.total("pgflip_errors_total", database=DB))

    def test_login_failures_and_connections(self):
        before = self.scrape(self.proxy)
        with self.assertRaises(psycopg.OperationalError):
            self.proxy.connect(dbname="it_metrics_no_such_database")
        # Counted once the session has ended, just after the client got its error.
        after = wait_until(
            lambda: (lambda s: s.value("pgflip_client_login_failures_total", reason="server")
                     > before.value("pgflip_client_login_failures_total", reason="server")
                     and s)(self.scrape(self.proxy)),
            10, message="the failed login to be counted")
        self.assertEqual(after.value("pgflip_client_login_failures_total", reason="server")
                         - before.value("pgflip_client_login_failures_total", reason="server"), 1)
        self.assertEqual(after.value("pgflip_client_connections_total")
                         - before.value("pgflip_client_connections_total"), 1)
        # A connection that closes without a word is no failed login.
        socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5).close()
        wait_until(lambda: self.scrape(self.proxy).value("pgflip_client_connections_total")
                   == after.value("pgflip_client_connections_total") + 1, 10,
                   message="the silent connection to be counted")
        self.wait_no_clients()
        final = self.scrape(self.proxy)
        self.assertEqual(final.total("pgflip_client_login_failures_total"),
                         after.total("pgflip_client_login_failures_total"))

    def test_client_and_server_gauges_follow_connections(self):
        self.wait_no_clients()
        conns = [self.proxy.connect(dbname=DB) for _ in range(3)]
        try:
            for conn in conns:
                conn.execute("SELECT 1")
            conns[2].execute("BEGIN")
            conns[2].execute("SELECT 1")

            def expected():
                s = self.scrape(self.proxy)
                return (s.value("pgflip_clients", state="idle") == 2
                        and s.value("pgflip_clients", state="idle_in_transaction") == 1
                        and s.total("pgflip_clients") == 3) and s
            scrape = wait_until(expected, 10, message="clients: 2 idle, 1 in a transaction")
            self.assertEqual(scrape.value("pgflip_server_connections", environment="blue",
                                          state="idle"), 2)
            self.assertEqual(scrape.value("pgflip_server_connections", environment="blue",
                                          state="idle_in_transaction"), 1)
            self.assertEqual(scrape.total("pgflip_server_connections", environment="green"), 0)
            self.assertEqual(scrape.value("pgflip_clients_parked"), 0)
            conns[2].execute("COMMIT")
            wait_until(lambda: self.scrape(self.proxy).value("pgflip_clients", state="idle") == 3,
                       10, message="three idle clients")
        finally:
            for conn in conns:
                conn.close()
        self.wait_no_clients()
        scrape = self.scrape(self.proxy)
        self.assertEqual(scrape.total("pgflip_server_connections"), 0)


class HealthTest(harness.PgflipTestCase):
    pgflip_only = True

    def test_healthz_turns_503_while_stopping(self):
        port = harness.free_port()
        proxy = self.start_pgflip({"metrics": {"listen": f"127.0.0.1:{port}"}})
        wait_listening(port)
        self.assertEqual(http_get(port, "/healthz")[::2], (200, "ok\n"))
        conn = proxy.connect(autocommit=False)  # a transaction keeps the graceful stop waiting
        self.addCleanup(conn.close)
        conn.execute("SELECT 1")
        proxy.signal(signal.SIGTERM)
        wait_until(lambda: http_get(port, "/healthz")[0] == 503, 10,
                   message="/healthz to answer 503 during the graceful stop")
        self.assertEqual(http_get(port, "/metrics")[0], 200)  # metrics still served meanwhile
        conn.commit()
        self.assertEqual(proxy.wait(15), 0)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


class CertificateMetricsTest(MetricsMixin, harness.PgflipTestCase):
    pgflip_only = True

    def test_certificate_expiry_is_exported(self):
        env = self.cluster.env
        port = harness.free_port()
        proxy = self.start_pgflip({
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "tls": {"cert_file": env["TLS_SERVER_CERT"], "key_file": env["TLS_SERVER_KEY"]},
            "blue": {"sslmode": "require", "sslcert": env["TLS_CLIENT_CERT"],
                     "sslkey": env["TLS_CLIENT_KEY"]}})
        proxy.metrics_port = port
        wait_listening(port)
        scrape = self.scrape(proxy)
        name = "pgflip_tls_certificate_expiry_timestamp_seconds"
        for label, path in (("tls.cert_file", env["TLS_SERVER_CERT"]),
                            ("blue.sslcert", env["TLS_CLIENT_CERT"])):
            with self.subTest(label):
                end = harness.run(["openssl", "x509", "-enddate", "-noout", "-in", path])
                not_after = end.stdout.strip().removeprefix("notAfter=")
                self.assertEqual(scrape.value(name, certificate=label),
                                 ssl.cert_time_to_seconds(not_after))
        self.assertIsNone(scrape.get(name, certificate="green.sslcert"))


class SwitchoverMetricsTest(MetricsMixin, SwitchoverTestCase):
    def test_retained_wal_alarm_gauge_and_log(self):
        """replication.retained_wal_alarm_bytes tripped: the alarm gauge says 1 and one warning
        is logged, however many polls follow; raised by a reload, the alarm clears (gauge 0, one
        info line)."""
        db = self.new_database("walalarm")
        port = harness.free_port()
        proxy = self.start_switchover_pgflip([db], {
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "replication": {"retained_wal_alarm_bytes": 1}})  # a slot always retains more
        proxy.metrics_port = port
        wait_listening(port)
        self.replication_init(proxy)
        name = "pgflip_replication_retained_wal_alarm"
        wait_until(lambda: self.scrape(proxy).get(name, database=db) == 1, 30, interval=0.2,
                   message="the retained-WAL alarm gauge to trip")
        tripped = f"replication [{db}]: blue retains "
        polls = self.scrape(proxy).value("pgflip_replication_poll_duration_seconds_count")
        wait_until(lambda: self.scrape(proxy).value(
            "pgflip_replication_poll_duration_seconds_count") >= polls + 3, 30, interval=0.2,
            message="three more polls")
        log = proxy.log_text()
        self.assertEqual(log.count(tripped), 1, harness.tail(log))
        self.assertIn("above replication.retained_wal_alarm_bytes (1 B)", log)
        self.assertEqual(self.scrape(proxy).value(name, database=db), 1)

        proxy.overrides["replication"]["retained_wal_alarm_bytes"] = 1 << 40
        proxy.config_path.write_text(proxy.config(proxy.port))
        self.ctl_ok(proxy, "reload")
        wait_until(lambda: self.scrape(proxy).get(name, database=db) == 0, 30, interval=0.2,
                   message="the retained-WAL alarm gauge to clear")
        cleared = f"replication [{db}]: retained WAL alarm cleared"
        wait_until(lambda: cleared in proxy.log_text(), 10, message="the alarm's info line")
        log = proxy.log_text()
        self.assertEqual(log.count(cleared), 1, harness.tail(log))
        self.assertEqual(log.count(tripped), 1, harness.tail(log))

    def test_switchover_and_replication_metrics(self):
        db = self.new_database("metrics")
        self.pgbench_init(db)
        port = harness.free_port()
        proxy = self.start_switchover_pgflip([db], {"metrics": {"listen": f"127.0.0.1:{port}"}})
        proxy.metrics_port = port
        wait_listening(port)
        first = self.scrape(proxy)
        self.assertIsNone(first.get("pgflip_replication_lag_bytes", database=db))
        self.assertEqual(first.value("pgflip_switchover_runs_total", outcome="committed"), 0)

        self.replication_init(proxy)
        # The poller polls right after init: lag and retained WAL of the new slot.
        scrape = wait_until(
            lambda: (lambda s: s.get("pgflip_replication_lag_bytes", database=db) is not None
                     and s.get("pgflip_replication_lag_seconds", database=db) is not None
                     and s)(self.scrape(proxy)),
            30, interval=0.2, message="replication lag metrics")
        self.assertGreaterEqual(scrape.value("pgflip_replication_lag_bytes", database=db), 0)
        self.assertGreaterEqual(scrape.value("pgflip_replication_lag_seconds", database=db), 0)
        self.assertGreater(scrape.value("pgflip_replication_retained_wal_bytes", database=db), 0)
        self.assertEqual(scrape.value("pgflip_replication_poll_ok"), 1)
        self.assertGreater(scrape.value("pgflip_replication_last_poll_timestamp_seconds"), 0)
        self.assertGreaterEqual(scrape.value("pgflip_replication_poll_duration_seconds_count"), 1)

        session = proxy.connect(dbname=db)
        self.addCleanup(session.close)
        session.execute("SELECT 1")
        so = self.switchover(proxy, "--timeout", "20")
        self.assertEqual(so.returncode, 0, str(so))
        self.assertEqual(so.result["outcome"], "committed", str(so))

        after = self.scrape(proxy)
        self.assertEqual(after.value("pgflip_switchover_runs_total", outcome="committed"), 1)
        self.assertEqual(after.value("pgflip_switchover_runs_total", outcome="aborted"), 0)
        self.assertEqual(after.value("pgflip_switchover_runs_total", outcome="failed"), 0)
        for step in STEPS:
            self.assertEqual(after.value("pgflip_switchover_step_duration_seconds_count",
                                         step=step), 1, step)
            self.assertEqual(after.value("pgflip_switchover_step_duration_seconds_bucket",
                                         step=step, le="+Inf"), 1, step)
        reported = {s["step"]: s["ms"] for e in so.events if e.get("event") == "step"
                    and isinstance(e.get("data"), dict) for s in [e["data"]]}
        self.assertAlmostEqual(after.value("pgflip_switchover_step_duration_seconds_sum",
                                           step="commit"), reported["commit"] / 1000, delta=0.05)
        self.assertEqual(after.value("pgflip_active_environment", environment="green"), 1)
        # The moved session now holds a green server connection.
        self.assertEqual(after.total("pgflip_server_connections", environment="green",
                                     state="idle"), 1)
        # The switchover dropped the replication it measured: its gauges go with it.
        wait_until(lambda: self.scrape(proxy).get("pgflip_replication_lag_bytes", database=db)
                   is None, 30, interval=0.2, message="lag gauges removed after the switchover")
        self.assertEqual(http_get(port, "/healthz")[0], 200)


if __name__ == "__main__":
    harness.main()
