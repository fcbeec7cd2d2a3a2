"""pgflip's log: with log.format = "json" every line is one JSON object (ts, level, msg) and every
line about a client session carries its connection id (and the peer, user and database once
known); the text format shows the id as [cN]; a reload switches the format live."""

import json
import pathlib
import re
import subprocess

import harness
from harness import run, wait_until

DB = "app"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"trace", "debug", "info", "warn", "error", "critical"}
# Messages written only about a client session.
SESSION_MESSAGES = ("connection from", "connected to", "closed after", "authenticating",
                    "refused:", "closed:")


def parse_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class LogTest(harness.PgflipTestCase):
    pgflip_only = True

    def psql(self, proxy, sql, user="postgres"):
        env = proxy.libpq_env(user=user, dbname=DB)
        return run([self.cluster.psql, "-X", "-At", "-c", sql], env=env).stdout

    def test_json_lines_with_connection_ids(self):
        proxy = self.start_pgflip({"log": {"level": "debug", "format": "json"},
                                   "auth": {"method": "trust"},
                                   "server": {"max_client_conn_per_user": 1}})
        self.assertEqual(self.psql(proxy, "select 'a \"quoted\"\nvalue'").strip(),
                         'a "quoted"\nvalue')
        held = harness.RawClient(proxy.port, user="app_trust", database=DB)
        with self.assertRaises(harness.ServerError) as caught:  # per-user limit: a refusal line
            harness.RawClient(proxy.port, user="app_trust", database=DB).close()
        self.assertEqual(caught.exception.sqlstate, "53300")
        held.close()
        wait_until(lambda: proxy.log_text().count("closed after") >= 2, 10,
                   message="both sessions' last lines")
        proxy.stop()

        lines = parse_lines(proxy.log_text())  # every line must be JSON
        self.assertGreater(len(lines), 10)
        for line in lines:
            self.assertTrue(TS.match(line["ts"]), line)
            self.assertIn(line["level"], LEVELS, line)
            self.assertIsInstance(line["msg"], str, line)
            self.assertLessEqual(set(line), {"ts", "level", "msg", "conn", "peer", "user",
                                             "database"}, line)
        session_lines = [l for l in lines if any(m in l["msg"] for m in SESSION_MESSAGES)]
        self.assertGreater(len(session_lines), 6)
        for line in session_lines:
            self.assertIsInstance(line.get("conn"), int, line)
            self.assertGreater(line["conn"], 0)
            self.assertRegex(line["peer"], r"^127\.0\.0\.1:\d+$")
        # One psql session, start to end, under one id; user and database once known.
        connected = [l for l in lines if "connected to blue" in l["msg"]]
        self.assertEqual(len(connected), 2, connected)
        psql_conn = connected[0]["conn"]
        self.assertEqual((connected[0]["user"], connected[0]["database"]), ("postgres", DB))
        self.assertEqual(
            [l["msg"].rsplit(" ", 1)[1] for l in lines
             if l.get("conn") == psql_conn and "connection from" in l["msg"]],
            [connected[0]["peer"]])
        self.assertTrue(any(l.get("conn") == psql_conn and "closed after" in l["msg"]
                            for l in lines))
        refused = [l for l in lines if "refused: too many connections" in l["msg"]]
        self.assertEqual(len(refused), 1, refused)
        self.assertNotIn(refused[0]["conn"], {c["conn"] for c in connected})
        self.assertEqual(refused[0]["user"], "app_trust")
        # Lines about pgflip itself have no conn.
        listening = [l for l in lines if l["msg"].startswith("listening on")]
        self.assertEqual(len(listening), 1)
        self.assertNotIn("conn", listening[0])

    def test_text_lines_show_the_connection_id(self):
        proxy = self.start_pgflip({"log": {"level": "debug"}, "auth": {"method": "trust"}})
        self.psql(proxy, "select 1")
        wait_until(lambda: "closed after" in proxy.log_text(), 10, message="the session's end")
        session = [l for l in proxy.log_text().splitlines()
                   if any(m in l for m in SESSION_MESSAGES)]
        self.assertTrue(session)
        for line in session:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+ \[c\d+\] ")

    def test_reload_switches_to_json(self):
        proxy = self.start_pgflip({"auth": {"method": "trust"}})
        wait_until(lambda: (proxy.admin_dir / "admin.sock").exists(), 10, message="admin socket")
        before = len(proxy.log_text())
        proxy.overrides["log"] = {"level": "info", "format": "json"}
        proxy.config_path.write_text(proxy.config(proxy.port))
        ctl = str(pathlib.Path(proxy.binary).with_name("pgflipctl"))
        reply = subprocess.run([ctl, "--socket", str(proxy.admin_dir / "admin.sock"), "--json",
                                "reload"], capture_output=True, text=True, timeout=60)
        self.assertEqual(reply.returncode, 0, reply.stderr)
        self.assertIn("log.format", json.loads(reply.stdout.splitlines()[-1])["result"]["changed"])
        self.psql(proxy, "select 1")
        wait_until(lambda: "closed after" in proxy.log_text()[before:], 10,
                   message="a session line after the reload")
        after = proxy.log_text()[before:]
        # The reload's own line may still be text; everything after it is JSON.
        tail = after[after.index("configuration reloaded"):].split("\n", 1)[1]
        lines = parse_lines(tail)
        self.assertTrue(any("closed after" in l["msg"] and l["conn"] > 0 for l in lines), lines)


if __name__ == "__main__":
    harness.main()
