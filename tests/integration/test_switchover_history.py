"""The switchover history: a switchover refused by its guardrails and a committed one are both
kept beside the state file (one JSON line each) with their full reports, logged as one line
each, shown by `pgflipctl switchover history` (--json, text, --limit) and the console's SHOW
SWITCHOVERS, survive a restart of pgflip, and a torn last line is skipped, not fatal."""

import json
import math
import pathlib
import re

import harness
from test_console import ADMIN, ConsoleMixin
from test_switchover import SwitchoverTestCase

STEPS = ["guardrails", "catchup", "prewarm", "park", "fence", "drain", "sequences", "commit",
         "flip", "cleanup"]


def same_report(a, b):
    """Equal, numbers to 12 significant digits (the JSON text of a double may round its last)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_report(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_report(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    return a == b


class HistoryTest(ConsoleMixin, SwitchoverTestCase):
    def assert_same_report(self, kept, returned):
        self.assertTrue(same_report(kept, returned), f"kept:\n{kept}\nreturned:\n{returned}")

    def history(self, proxy, *args):
        return self.ctl_ok(proxy, "switchover", "history", *args).reply["result"]

    def test_refused_and_committed_switchovers_are_kept_across_a_restart(self):
        db = self.new_database("history")
        proxy = self.make_pgflip([db], {"auth": {"admin_users": [ADMIN]}})
        self.addCleanup(proxy.stop)
        self.start_and_wait_admin(proxy)
        state_file = pathlib.Path(proxy.overrides["switchover"]["state_file"])
        history_file = state_file.with_name(state_file.stem + ".history.jsonl")
        self.assertEqual(self.history(proxy), [])

        # Refused by its guardrails: replication is not set up yet. Nothing changes.
        refused = self.switchover(proxy, "--timeout", "30")
        self.assertEqual(refused.returncode, 1, str(refused))
        refused_id = refused.result["switchover_id"]
        self.assertTrue(history_file.exists(), "a refused switchover is kept too")
        self.assertFalse(state_file.exists(), "a refusal must not write the state file")

        self.replication_init(proxy)
        app = proxy.connect(dbname=db)
        app.execute("INSERT INTO so_probe (note) VALUES ('before')")
        committed = self.switchover(proxy, "--timeout", "30")
        self.assertEqual(committed.returncode, 0, str(committed))
        committed_id = committed.result["switchover_id"]
        self.assertTrue(app.execute("SHOW server_version").fetchone()[0].startswith("17"))
        app.close()
        # Not a run (nothing started): logged, not kept.
        again = self.switchover(proxy)
        self.assertEqual(again.returncode, 1, str(again))

        # --json: the full reports, oldest first, exactly as the switchovers returned them.
        kept = self.history(proxy)
        self.assertEqual([r["switchover_id"] for r in kept], [refused_id, committed_id], kept)
        first, second = kept
        self.assert_same_report(first, refused.result)
        self.assert_same_report(second, committed.result)
        self.assertEqual((first["outcome"], first["failed_step"]), ("aborted", "guardrails"))
        self.assertIn(f"[{db}] replication is", first["reason"])
        self.assertEqual((first["steps"], first["active"], first["window_ms"]), ([], "blue", 0))
        self.assertGreater(first["started_at"], 0)
        self.assertEqual((second["outcome"], second["reason"], second["active"]),
                         ("committed", "", "green"))
        self.assertEqual([s["step"] for s in second["steps"]], STEPS)
        starts = [s["started_at"] for s in second["steps"]]
        self.assertEqual(starts, sorted(starts))
        self.assertGreaterEqual(starts[0], second["started_at"])
        self.assertTrue(all(s["ms"] >= 0 for s in second["steps"]), second["steps"])
        self.assertEqual(second["sessions"]["moved"], 1)
        self.assertEqual(second["sentinel"], committed_id)
        self.assertIn("sequences_copied", second)
        [session] = second["participants"]
        self.assertEqual(session["phase"], "moved")
        self.assertGreater(session["parked_ms"], 0)
        self.assertGreater(second["window_ms"], 0)
        self.assertLessEqual(second["window_ms"], second["total_ms"])
        lines = history_file.read_text().splitlines()
        self.assertEqual([json.loads(line)["switchover_id"] for line in lines],
                         [refused_id, committed_id])

        self.assertEqual([r["switchover_id"] for r in self.history(proxy, "--limit", "1")],
                         [committed_id])

        # Text: one row per switchover.
        text = self.pgflipctl(proxy, "switchover", "history").stdout
        self.assertRegex(text, r"id\s+started\s+outcome\s+total_ms\s+window_ms")
        self.assertRegex(text, rf"{refused_id}\s+\S+Z\s+refused at guardrails\s")
        self.assertRegex(text, rf"{committed_id}\s+\S+Z\s+committed\s+[\d.]+\s+[\d.]+\s+1\s+1\s")

        # The console.
        _, rows = self.console("SHOW SWITCHOVERS", proxy=proxy)
        self.assertEqual([(r["id"], r["outcome"], r["moved"]) for r in rows],
                         [(refused_id, "refused at guardrails", "0"),
                          (committed_id, "committed", "1")], rows)

        # One log line each.
        log = proxy.log_text()
        self.assertRegex(log, rf"switchover {refused_id} refused at guardrails: [\d.]+ ms in "
                              r"all, clients held 0\.0 ms; sessions 0 moved, 0 released to "
                              r"blue, 0 ended; reason: .*replication is")
        self.assertRegex(log, rf"switchover {committed_id} committed: [\d.]+ ms in all, clients "
                              r"held [\d.]+ ms; sessions 1 moved, 0 released to blue, 0 ended")
        self.assertIn("switchover refused (state), nothing changed: green is already active",
                      log)

        # A restart keeps it; a torn last line (a crash mid-append) is skipped with a warning.
        proxy.stop()
        with open(history_file, "a") as f:
            f.write(lines[1][:40])
        self.start_and_wait_admin(proxy)
        self.assert_same_report(self.history(proxy), kept)
        text = self.pgflipctl(proxy, "switchover", "history").stdout
        self.assertIn(committed_id, text)
        self.assertRegex(text, r"warning: .* line 3 is torn")
        _, rows = self.console("SHOW SWITCHOVERS", proxy=proxy)
        self.assertEqual([r["id"] for r in rows], [refused_id, committed_id], rows)


if __name__ == "__main__":
    harness.main()
