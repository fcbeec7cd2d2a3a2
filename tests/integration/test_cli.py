"""pgflip's command line: --check-config on good and bad files, --version, bad arguments."""

import socket
import subprocess

import harness

GOOD = """\
[server]
listen = "127.0.0.1:6432"
workers = 2
[admin]
socket = "/tmp/pgflip-it-admin.sock"
[auth]
method = "trust"
[blue]
host = "127.0.0.1"
port = 5432
user = ""
password = ""
[green]
host = "127.0.0.1"
port = 5433
[log]
level = "info"
"""


class CheckConfigTest(harness.PgflipTestCase):
    pgflip_only = True

    def setUp(self):
        super().setUp()
        self.binary = harness.Pgflip(self.cluster).binary
        self.dir = self.cluster.dir / "cli"
        self.dir.mkdir(exist_ok=True)

    def check(self, name, text):
        path = self.dir / name
        path.write_text(text)
        proc = subprocess.run([self.binary, "--check-config", str(path)], capture_output=True,
                              text=True, timeout=30)
        return proc, path

    def test_good_config_passes(self):
        proc, _ = self.check("good.toml", GOOD)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_bad_configs_fail_naming_the_key(self):
        cases = {  # file: (text, what the message must name)
            "unknown-key.toml": (GOOD.replace("workers = 2", "workerz = 2"), "workerz"),
            "wrong-type.toml": (GOOD.replace("workers = 2", 'workers = "two"'), "workers"),
            "bad-port.toml": (GOOD.replace("port = 5433", "port = 99999"), "port"),
            "bad-listen.toml": (GOOD.replace('"127.0.0.1:6432"', '"no-port-here"'), "listen"),
            "bad-method.toml": (GOOD.replace('method = "trust"', 'method = "telepathy"'),
                                "method"),
            "bad-level.toml": (GOOD.replace('level = "info"', 'level = "loud"'), "level"),
        }
        for name, (text, key) in cases.items():
            with self.subTest(name=name):
                proc, path = self.check(name, text)
                output = proc.stdout + proc.stderr
                self.assertNotEqual(proc.returncode, 0, output)
                self.assertIn(key, output)
                self.assertIn(name, output)  # names the file

    def test_unparsable_and_missing_files_fail(self):
        proc, path = self.check("syntax.toml", GOOD.replace("[blue]", "[blue"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("syntax.toml", proc.stdout + proc.stderr)
        missing = subprocess.run([self.binary, "--check-config", str(self.dir / "nope.toml")],
                                 capture_output=True, text=True, timeout=30)
        self.assertNotEqual(missing.returncode, 0)

    def test_check_config_does_not_start_serving(self):
        port = harness.free_port()
        proc, _ = self.check("serve.toml", GOOD.replace("6432", str(port)))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

    def test_version_and_bad_arguments(self):
        version = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                                 timeout=30)
        self.assertEqual(version.returncode, 0)
        self.assertIn("pgflip", version.stdout)
        bad = subprocess.run([self.binary, "--no-such-flag"], capture_output=True, text=True,
                             timeout=30)
        self.assertNotEqual(bad.returncode, 0)


if __name__ == "__main__":
    harness.main()
