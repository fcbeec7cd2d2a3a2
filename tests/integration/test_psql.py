"""psql through pgflip: queries, errors that leave the session usable, \\copy both ways, a large result."""

import hashlib
import random

import harness
from harness import run

DB = "it_psql"


def copy_text_escape(value):
    """A value in COPY text format (the escapes PostgreSQL itself writes)."""
    if value is None:
        return "\\N"
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


class PsqlTest(harness.PgflipTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.recreate_database(DB)
        cls.proxy = cls.start_class_pgflip()

    def psql(self, *args, input=None, check=True, dbname=DB):
        return run([self.cluster.psql, "-X", "-v", "ON_ERROR_STOP=0", *args],
                   env=self.proxy.libpq_env(dbname=dbname), input=input, check=check)

    def test_queries(self):
        out = self.psql("-At", "-c", "select 40 + 2", "-c", "select current_user, current_database()",
                        "-c", "select string_agg(i::text, ',') from generate_series(1, 5) i").stdout
        self.assertEqual(out.splitlines(), ["42", f"postgres|{DB}", "1,2,3,4,5"])

    def test_errors_leave_session_usable(self):
        script = "\n".join([
            "select 'before' as marker;",
            "selec broken;",
            r"\echo sqlstate=:LAST_ERROR_SQLSTATE",
            "select 'after-syntax-error' as marker;",
            "select 1/0;",
            r"\echo sqlstate=:LAST_ERROR_SQLSTATE",
            "begin;",
            "select 1/0;",
            "select 'inside-aborted-txn';",
            r"\echo sqlstate=:LAST_ERROR_SQLSTATE",
            "rollback;",
            "select 'after-rollback' as marker;",
            "select pg_backend_pid() = pg_backend_pid() as same_session;",
        ]) + "\n"
        proc = self.psql("-At", input=script, check=False)
        lines = proc.stdout.splitlines()
        self.assertEqual(lines, ["before", "sqlstate=42601", "after-syntax-error", "sqlstate=22012",
                                 "BEGIN", "sqlstate=25P02", "ROLLBACK", "after-rollback", "t"],
                         proc.stderr)
        self.assertIn('syntax error at or near "selec"', proc.stderr)
        self.assertIn("division by zero", proc.stderr)
        self.assertIn("current transaction is aborted", proc.stderr)

    def test_copy_both_directions(self):
        rng = random.Random(7)
        alphabet = "abcxyz \t\\\n\r,;\"'é€😀"
        rows = []
        for i in range(1, 4001):
            text = None if i % 97 == 0 else "".join(rng.choice(alphabet)
                                                    for _ in range(rng.randrange(0, 40)))
            rows.append((str(i), text, f"{rng.randrange(-10**9, 10**9)}.{i % 100:02d}"))
        payload = "".join("\t".join(copy_text_escape(v) for v in row) + "\n" for row in rows)
        workdir = self.proxy.workdir
        src, out, direct_out = workdir / "copy-in.txt", workdir / "copy-out.txt", workdir / "direct.txt"
        src.write_text(payload, encoding="utf-8")

        self.psql("-q", "-v", "ON_ERROR_STOP=1", "-c",
                  "drop table if exists copy_rt; create table copy_rt (id int primary key, txt text, n numeric)")
        res = self.psql("-v", "ON_ERROR_STOP=1", "-c", rf"\copy copy_rt from '{src}'")
        self.assertIn("COPY 4000", res.stdout)
        res = self.psql("-v", "ON_ERROR_STOP=1", "-c",
                        rf"\copy (select * from copy_rt order by id) to '{out}'")
        self.assertIn("COPY 4000", res.stdout)
        self.assertEqual(out.read_text(encoding="utf-8"), payload)

        # The rows really are on blue, as sent.
        env = dict(self.proxy.libpq_env(dbname=DB), PGPORT=str(self.cluster.blue_port))
        run([self.cluster.psql, "-X", "-v", "ON_ERROR_STOP=1", "-c",
             rf"\copy (select * from copy_rt order by id) to '{direct_out}'"], env=env)
        self.assertEqual(direct_out.read_text(encoding="utf-8"), payload)

        # COPY ... TO STDOUT of a generated set, streamed to psql's stdout.
        res = self.psql("-At", "-c", r"\copy (select i, md5(i::text) from generate_series(1, 5000) i) to stdout")
        lines = res.stdout.splitlines()
        self.assertEqual(len(lines), 5000)
        self.assertEqual(lines[-1], f"5000\t{hashlib.md5(b'5000').hexdigest()}")

    def test_large_result(self):
        rows, width = 200_000, 250
        proc = self.psql("-At", "-c",
                         f"select i, repeat(chr(97 + i % 26), {width}) from generate_series(1, {rows}) i",
                         check=True)
        out = proc.stdout
        expected_len = sum(len(str(i)) + 1 + width + 1 for i in range(1, rows + 1))
        self.assertEqual(len(out), expected_len)  # about 51 MB, every byte arrived
        lines = out.splitlines()
        self.assertEqual(len(lines), rows)
        self.assertEqual(lines[0], "1|" + "b" * width)
        self.assertEqual(lines[-1], f"{rows}|" + chr(97 + rows % 26) * width)
        # And the session is still in sync afterwards.
        self.assertEqual(self.psql("-At", "-c", "select 'ok'").stdout.strip(), "ok")


if __name__ == "__main__":
    harness.main()
