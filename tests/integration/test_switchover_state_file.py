"""The state file knows which blue and green it speaks of (their system identifiers, addresses
and databases): a pgflip configured for other servers refuses another deployment's file, a
server that moved (same cluster, new address) is accepted and the file rewritten, an older file
without identities is adopted, and a green that cannot be verified is not served."""

import json
import pathlib
import subprocess

import harness
from harness import free_port
from test_switchover import SwitchoverTestCase


class StateFileTest(SwitchoverTestCase):
    def system_identifier(self, env):
        with self.cluster.connect(env) as conn:
            return str(conn.execute(
                "SELECT system_identifier FROM pg_control_system()").fetchone()[0])

    def server(self, env, system_identifier=None, port=None):
        """A state file's record of `env` as the test pgflip configures it (database unset)."""
        return {"system_identifier": system_identifier or self.system_identifier(env),
                "host": "127.0.0.1", "port": port or self.cluster.port(env), "database": ""}

    def write_state(self, proxy, active, blue=None, green=None, version=2):
        state = {"version": version, "active": active, "epoch": 4, "switchover_id": "so-other",
                 "committed_at": "2025-01-31T12:00:00Z"}
        if blue:
            state["blue"] = blue
        if green:
            state["green"] = green
        path = pathlib.Path(proxy.overrides["switchover"]["state_file"])
        path.write_text(json.dumps(state) + "\n")
        return path

    def start_expecting_refusal(self, proxy):
        """Runs pgflip on its config until it exits (it listens before it recovers, so the
        harness's start() cannot tell a refusal); returns (exit code, log)."""
        proxy.config_path.write_text(proxy.config(free_port()))
        with open(proxy.log_path, "ab") as log:
            proc = subprocess.run([proxy.binary, "--config", str(proxy.config_path)],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=60)
        return proc.returncode, proxy.log_text()

    def test_another_deployments_file_is_refused(self):
        proxy = self.make_pgflip([])
        # Deployment A's file: its blue and green are other clusters than this pgflip's.
        blue_a, green_a = "7000000000000000011", "7000000000000000022"
        path = self.write_state(proxy, "green", self.server("blue", blue_a),
                                self.server("green", green_a))
        before = path.read_text()
        code, log = self.start_expecting_refusal(proxy)
        self.assertEqual(code, 1, harness.tail(log))
        self.assertIn("cannot recover the active environment", log)
        self.assertIn(str(path), log)
        for named in (blue_a, green_a, self.system_identifier("blue"),
                      self.system_identifier("green"), "switchover.state_file",
                      f"blue.host/blue.port 127.0.0.1:{self.cluster.blue_port}",
                      f"green.host/green.port 127.0.0.1:{self.cluster.green_port}"):
            self.assertIn(named, log)
        self.assertEqual(path.read_text(), before, "a refused file must be left as it was")

    def test_moved_server_is_accepted_and_recorded(self):
        proxy = self.make_pgflip([])
        old_port = free_port()
        path = self.write_state(proxy, "green", self.server("blue"),
                                self.server("green", port=old_port))
        self.addCleanup(proxy.stop)
        self.start_and_wait_admin(proxy)
        self.assertEqual(self.status(proxy)["active"], "green")
        with proxy.connect() as conn:
            self.assertTrue(conn.execute("SHOW server_version").fetchone()[0].startswith("17"))
        log = proxy.log_text()
        self.assertIn(f"green moved: state file {path} recorded it at 127.0.0.1:{old_port}", log)
        state = json.loads(path.read_text())
        self.assertEqual(state["version"], 2)
        self.assertEqual(state["active"], "green")
        self.assertEqual(state["epoch"], 4)
        self.assertEqual(state["green"], self.server("green"))
        self.assertEqual(state["blue"], self.server("blue"))

    def test_older_file_is_adopted(self):
        proxy = self.make_pgflip([])
        path = self.write_state(proxy, "blue", version=1)
        self.addCleanup(proxy.stop)
        self.start_and_wait_admin(proxy)
        self.assertEqual(self.status(proxy)["active"], "blue")
        self.assertIn("predates server identities (written by an older pgflip): adopting it",
                      proxy.log_text())
        state = json.loads(path.read_text())
        self.assertEqual(state["version"], 2)
        self.assertEqual(state["active"], "blue")
        self.assertEqual(state["blue"], self.server("blue"))
        self.assertEqual(state["green"], self.server("green"))

    def test_green_that_cannot_be_verified_is_not_served(self):
        # Both servers configured where nothing answers; the file records exactly those
        # addresses, so only the system identifiers could tell, and they cannot be read.
        blue_port, green_port = free_port(), free_port()
        proxy = self.make_pgflip([], {"blue": {"port": blue_port},
                                      "green": {"port": green_port}})
        path = self.write_state(proxy, "green", self.server("blue", port=blue_port),
                                self.server("green", port=green_port))
        code, log = self.start_expecting_refusal(proxy)
        self.assertEqual(code, 1, harness.tail(log))
        self.assertIn(f"state file {path} says green is active", log)
        self.assertIn("cannot be verified", log)
        self.assertIn(f"green.host/green.port 127.0.0.1:{green_port}", log)


if __name__ == "__main__":
    harness.main()
