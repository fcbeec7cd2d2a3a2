"""200 clients connected through pgflip at the same time, each with its own server session."""

import threading

import harness

DB = "it_concurrency"
CLIENTS = 200


class ConcurrencyTest(harness.PgflipTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.recreate_database(DB)
        cls.proxy = cls.start_class_pgflip()

    def server_sessions(self):
        with self.cluster.connect() as direct:
            return direct.execute("select count(*) from pg_stat_activity where datname = %s",
                                  (DB,)).fetchone()[0]

    def test_200_concurrent_clients(self):
        all_connected = threading.Barrier(CLIENTS + 1, timeout=120)
        release = threading.Event()
        results, failures = {}, []

        def client(n):
            try:
                with self.proxy.connect(dbname=DB, application_name=f"it-client-{n}") as conn:
                    total = 0
                    for i in range(5):
                        total += conn.execute("select %s::int * %s::int", (n, i)).fetchone()[0]
                    pid = conn.execute("select pg_backend_pid()").fetchone()[0]
                    name = conn.execute("show application_name").fetchone()[0]
                    all_connected.wait()
                    if not release.wait(timeout=120):
                        raise TimeoutError("never released")
                    self.assertEqual(conn.execute("select %s::text", (f"bye {n}",)).fetchone()[0],
                                     f"bye {n}")
                    results[n] = (total, pid, name)
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                failures.append((n, repr(exc)))
                all_connected.abort()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            all_connected.wait()
            # Every client has its own live server session right now.
            self.assertEqual(self.server_sessions(), CLIENTS)
        except threading.BrokenBarrierError:
            pass
        finally:
            release.set()
            for thread in threads:
                thread.join(timeout=120)
        self.assertEqual(failures, [])
        self.assertEqual(len(results), CLIENTS)
        self.assertEqual({n: r[0] for n, r in results.items()}, {n: n * 10 for n in range(CLIENTS)})
        self.assertEqual(len({r[1] for r in results.values()}), CLIENTS)  # distinct backends
        self.assertEqual({r[2] for r in results.values()}, {f"it-client-{n}" for n in range(CLIENTS)})
        # Closed clients free their server sessions.
        harness.wait_until(lambda: self.server_sessions() == 0, timeout=15,
                           message="server sessions to close")


if __name__ == "__main__":
    harness.main()
