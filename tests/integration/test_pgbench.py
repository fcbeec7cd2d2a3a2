"""pgbench through pgflip: initialise, then TPC-B in simple, extended and prepared mode; the
TPC-B invariant (no transaction lost or applied twice) is checked on blue directly."""

import re

import harness
from harness import run

DB = "it_pgbench"
CLIENTS, JOBS, TXNS = 8, 2, 200


class PgbenchTest(harness.PgflipTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.recreate_database(DB)
        cls.proxy = cls.start_class_pgflip()

    def pgbench(self, *args):
        return run([self.cluster.pgbench, *args], env=self.proxy.libpq_env(dbname=DB), timeout=300)

    def check_invariants(self, expected_history):
        with self.cluster.connect(dbname=DB) as conn:
            accounts, tellers, branches, history, count = conn.execute(
                "select (select sum(abalance) from pgbench_accounts),"
                "       (select sum(tbalance) from pgbench_tellers),"
                "       (select sum(bbalance) from pgbench_branches),"
                "       (select coalesce(sum(delta), 0) from pgbench_history),"
                "       (select count(*) from pgbench_history)").fetchone()
            self.assertEqual(count, expected_history)
            self.assertEqual(accounts, history)
            self.assertEqual(tellers, history)
            self.assertEqual(branches, history)
            self.assertEqual(conn.execute("select count(*) from pgbench_accounts").fetchone()[0],
                             200_000)

    def test_tpcb_all_query_modes(self):
        init = self.pgbench("-i", "-s", "2", "-q")
        self.assertIn("done", init.stderr)
        self.check_invariants(0)
        done = 0
        for mode in ("simple", "extended", "prepared"):
            with self.subTest(mode=mode):
                # -n: no vacuum, which would also truncate pgbench_history between runs.
                out = self.pgbench("-n", "-M", mode, "-c", str(CLIENTS), "-j", str(JOBS),
                                   "-t", str(TXNS)).stdout
                total = CLIENTS * TXNS
                self.assertRegex(out, rf"query mode: {mode}")
                self.assertIn(f"number of transactions actually processed: {total}/{total}", out)
                failed = re.search(r"number of failed transactions: (\d+)", out)
                self.assertIsNotNone(failed, out)
                self.assertEqual(failed.group(1), "0", out)
                done += total
                self.check_invariants(done)


if __name__ == "__main__":
    harness.main()
