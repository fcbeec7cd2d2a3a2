"""A switchover at fleet scale: 500 sessions through one pgflip, idle and busy, holding session
state of every kind pgflip moves (settings, SQL and protocol-level prepared statements, LISTEN),
all moved to green in one switchover. Every session's state is then checked on green, and every
transaction the busy sessions committed is there."""

import struct
import threading

import harness
from test_switchover import SwitchoverTestCase

SESSIONS = 500
BUSY_EVERY = 10  # one session in ten runs transactions throughout


def parse_named(client, name, sql):
    """A protocol-level Parse of a named statement, then Sync (as drivers prepare)."""
    client.send(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))
    client.send(b"S", b"")
    client.read_rows()


def execute_named(client, name):
    """Bind/Execute/Sync of a named statement without parameters; returns its rows (text)."""
    client.send(b"B", b"\0" + name.encode() + b"\0" + struct.pack("!HHH", 0, 0, 0))
    client.send(b"E", b"\0" + struct.pack("!I", 0))
    client.send(b"S", b"")
    return client.read_rows()


class Busy(threading.Thread):
    """Runs BEGIN / UPDATE its own counter row / COMMIT, one round trip each, until stopped:
    the switchover parks it between transactions. Counts its commits and keeps its errors."""

    def __init__(self, client, row):
        super().__init__(daemon=True)
        self.client, self.row = client, row
        self.commits, self.errors = 0, []
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                self.client.query("BEGIN")
                self.client.query(f"UPDATE counters SET n = n + 1 WHERE id = {self.row}")
                self.client.query("COMMIT")
                self.commits += 1
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(error))


class SwitchoverScaleTest(SwitchoverTestCase):
    def test_500_sessions_move_with_their_state(self):
        db = self.new_database("scale")
        busy_count = SESSIONS // BUSY_EVERY
        with self.cluster.connect(dbname=db) as conn:
            conn.execute("CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL)")
            conn.execute("INSERT INTO counters SELECT g, 0 FROM generate_series(0, %s) AS g",
                         (busy_count - 1,))
        proxy = self.start_switchover_pgflip(
            [db], {"server": {"max_client_conn": SESSIONS + 50}})
        self.replication_init(proxy)

        # Each session holds one kind of state; the busy ones also a setting.
        sessions, busy = [], []
        for i in range(SESSIONS):
            client = harness.RawClient(proxy.port, database=db, timeout=60)
            self.addCleanup(client.close)
            kind = "busy" if i % BUSY_EVERY == BUSY_EVERY - 1 else ("setting", "sql prepare",
                                                                   "listen", "parse")[i % 4]
            if kind in ("setting", "busy"):
                client.query(f"SET application_name = 'tag-{i}'")
            elif kind == "sql prepare":
                client.query(f"PREPARE p_{i}(int) AS SELECT $1 * {i}")
            elif kind == "listen":
                client.query(f"LISTEN ch_{i}")
            else:
                parse_named(client, f"s_{i}", f"SELECT {i} + 1")
            sessions.append((i, kind, client))
            if kind == "busy":
                busy.append(Busy(client, len(busy)))
        for thread in busy:
            thread.start()
        self.addCleanup(lambda: [t.stop.set() for t in busy])
        harness.wait_until(lambda: all(t.commits > 0 or t.errors for t in busy), 60,
                           message="every busy session to commit once")

        so = self.switchover(proxy, "--timeout", "60", timeout=180)
        for thread in busy:
            thread.stop.set()
        for thread in busy:
            thread.join(60)
        self.assertEqual(so.returncode, 0, str(so))
        self.assertEqual(so.result["outcome"], "committed", str(so))
        self.assertEqual((so.result["sessions"]["moved"], so.result["sessions"]["ended"]),
                         (SESSIONS, 0), str(so))
        self.assertEqual([t.errors for t in busy if t.errors], [])

        # Every session is on green with its own state.
        wrong = []
        for i, kind, client in sessions:
            version = client.query("SELECT current_setting('server_version_num')::int / 10000")
            if version != [["17"]]:
                wrong.append((i, kind, "server", version))
            if kind in ("setting", "busy"):
                got = client.query("SELECT current_setting('application_name')")
                expected = [[f"tag-{i}"]]
            elif kind == "sql prepare":
                got, expected = client.query(f"EXECUTE p_{i}(2)"), [[str(2 * i)]]
            elif kind == "listen":
                got, expected = client.query("SELECT pg_listening_channels()"), [[f"ch_{i}"]]
            else:
                got, expected = execute_named(client, f"s_{i}"), [[str(i + 1)]]
            if got != expected:
                wrong.append((i, kind, got, expected))
        self.assertEqual(wrong[:10], [], f"{len(wrong)} session(s) without their state on green")

        # Every transaction a busy session committed, through blue or green, is on green.
        with self.cluster.connect("green", dbname=db) as conn:
            counts = dict(conn.execute("SELECT id, n FROM counters").fetchall())
        self.assertEqual(counts, {row: t.commits for row, t in enumerate(busy)})


if __name__ == "__main__":
    harness.main()
