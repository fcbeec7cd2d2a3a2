"""Shared helpers for pgflip's integration tests: the test clusters, pgflip processes, a raw client.

Environment (set by tests/integration/CMakeLists.txt; defaults for running a test by hand):
  PGFLIP_TEST_DIR   directory of `scripts/pgcluster start` (holds `env`); default <repo>/build/pgtest
  PGFLIP_BIN        the pgflip executable; default <repo>/build/bin/pgflip
  PGFLIP_TEST_DIRECT=1  point every "through pgflip" connection straight at blue instead, to check
                    the tests themselves against a real server; pgflip-only tests are skipped.
"""

import contextlib
import os
import pathlib
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import psycopg

REPO = pathlib.Path(__file__).resolve().parents[2]
DIRECT = os.environ.get("PGFLIP_TEST_DIRECT") == "1"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ThreadSanitizer", "AddressSanitizer:DEADLYSIGNAL")


def wait_until(condition, timeout, interval=0.02, message="condition"):
    """Polls condition() until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(interval)


def pgflipctl_binary():
    """pgflipctl beside the pgflip under test ($PGFLIPCTL_BIN overrides)."""
    pgflip = os.environ.get("PGFLIP_BIN") or str(REPO / "build" / "bin" / "pgflip")
    return os.environ.get("PGFLIPCTL_BIN") or str(pathlib.Path(pgflip).with_name("pgflipctl"))


def free_port():
    """A loopback port nobody listens on, below the ephemeral range (no client holds it)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """The blue (PostgreSQL 15) and green (PostgreSQL 17) servers described by DIR/env."""

    def __init__(self, test_dir=None):
        self.dir = pathlib.Path(test_dir or os.environ.get("PGFLIP_TEST_DIR")
                                or REPO / "build" / "pgtest")
        env_file = self.dir / "env"
        if not env_file.exists():
            raise RuntimeError(f"{env_file} missing: run scripts/pgcluster start {self.dir}")
        self.env = {}
        for line in env_file.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                self.env[key.strip()] = value.strip()
        self.blue_port = int(self.env["BLUE_PORT"])
        self.green_port = int(self.env["GREEN_PORT"])
        self.blue_socket_dir = self.env["BLUE_SOCKET_DIR"]
        self.green_socket_dir = self.env["GREEN_SOCKET_DIR"]
        self.pg15_bin = pathlib.Path(self.env["PG15_BIN"])
        self.psql = str(self.pg15_bin / "psql")
        self.pgbench = str(self.pg15_bin / "pgbench")

    def port(self, env):
        return self.blue_port if env == "blue" else self.green_port

    def dsn(self, env="blue", user="postgres", dbname="postgres", **extra):
        """A libpq connection string straight to a server over TCP."""
        parts = {"host": "127.0.0.1", "port": self.port(env), "user": user, "dbname": dbname,
                 "connect_timeout": 10}
        parts.update(extra)
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def connect(self, env="blue", autocommit=True, **kw):
        return psycopg.connect(self.dsn(env, **kw), autocommit=autocommit)

    def recreate_database(self, name, env="blue"):
        """Drops (terminating its sessions) and creates a database on one server."""
        with self.connect(env) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def backend_exists(self, pid, env="blue"):
        with self.connect(env) as conn:
            return conn.execute("select count(*) from pg_stat_activity where pid = %s",
                                (pid,)).fetchone()[0] > 0


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def toml_text(sections):
    """{section: {key: value}} → TOML text (flat tables only, as pgflip's config is)."""
    out = []
    for section, keys in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {toml_value(value)}" for key, value in keys.items())
        out.append("")
    return "\n".join(out)


class Pgflip:
    """One pgflip process with a generated config, its log captured in a file.

    `overrides` is {section: {key: value}} merged into the default config (a value of None
    removes the key). In direct mode (PGFLIP_TEST_DIRECT=1) nothing is started and `port`
    is blue's.
    """

    def __init__(self, cluster, overrides=None, name="pgflip", env=None):
        self.cluster = cluster
        self.binary = os.environ.get("PGFLIP_BIN") or str(REPO / "build" / "bin" / "pgflip")
        runs = cluster.dir / "runs"  # emptied by the next `scripts/pgcluster start`
        runs.mkdir(exist_ok=True)
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"{name}-", dir=runs))
        self._admin_dir = None
        self.config_path = self.workdir / "pgflip.toml"
        self.log_path = self.workdir / "pgflip.log"
        self.proc = None
        self.port = cluster.blue_port if DIRECT else None
        self.returncode = None
        self.overrides = overrides or {}
        self.env = env  # extra environment variables for the process

    @property
    def admin_dir(self):
        """A short directory for the admin socket (Unix socket paths must stay under 108 bytes),
        made on first use and removed by stop()."""
        if self._admin_dir is None or not self._admin_dir.exists():
            self._admin_dir = pathlib.Path(tempfile.mkdtemp(prefix="pgflip-it-"))
        return self._admin_dir

    def config(self, port):
        sections = {
            "server": {"listen": f"127.0.0.1:{port}", "workers": 2, "shutdown_timeout_ms": 5000},
            "admin": {"socket": str(self.admin_dir / "admin.sock")},
            "auth": {"method": "trust"},
            "blue": {"host": "127.0.0.1", "port": self.cluster.blue_port},
            "green": {"host": "127.0.0.1", "port": self.cluster.green_port},
            "log": {"level": "info"},
        }
        for section, keys in self.overrides.items():
            target = sections.setdefault(section, {})
            for key, value in keys.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
        return toml_text(sections)

    def start(self, timeout=30):
        if DIRECT:
            return self
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"pgflip binary {self.binary} missing (set PGFLIP_BIN)")
        for _attempt in range(5):
            self.port = free_port()
            self.config_path.write_text(self.config(self.port))
            offset = len(self.log_text())
            log = open(self.log_path, "ab")
            # A session of its own, as a daemon has: the kernel's autogroup scheduling would
            # otherwise give pgflip and the test's load generators one shared CPU share.
            self.proc = subprocess.Popen([self.binary, "--config", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True,
                                         env={**os.environ, **self.env} if self.env else None)
            log.close()
            if self._wait_accepting(timeout):
                return self
            # Exited before accepting: retry only when the port was taken meanwhile.
            if "in use" not in self.log_text()[offset:]:
                break
        code, self.proc = self.proc.returncode, None  # nothing left for stop() to check
        raise AssertionError(f"pgflip did not start (exit {code}); log "
                             f"{self.log_path}:\n{tail(self.log_text())}")

    def _wait_accepting(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise AssertionError(f"pgflip did not accept connections within {timeout}s; log:\n"
                             f"{tail(self.log_text())}")

    def admin_socket_path(self):
        return pathlib.Path(self.overrides.get("admin", {}).get("socket")
                            or self.admin_dir / "admin.sock")

    def wait_admin_socket(self, timeout=10):
        """Waits until the admin socket accepts connections (it starts after the listener)."""
        path = self.admin_socket_path()

        def accepting():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(path))
                    return True
                except OSError:
                    return False
        wait_until(accepting, timeout, message=f"admin socket {path}")
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum):
        self.proc.send_signal(signum)

    def wait(self, timeout):
        """Waits for exit; returns the exit code or raises AssertionError at the deadline."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"pgflip (pid {self.proc.pid}) still running after "
                                 f"{timeout:.1f}s") from None
        return self.returncode

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout=15):
        """SIGTERM, then checks it exited cleanly (code 0, no sanitizer report)."""
        try:
            return self._stop(timeout)
        finally:
            if self._admin_dir is not None and not self.running():
                shutil.rmtree(self._admin_dir, ignore_errors=True)

    def _stop(self, timeout):
        if DIRECT or self.proc is None:
            return 0
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.wait(timeout)
            except AssertionError:
                self.kill()
                raise AssertionError(f"pgflip ignored SIGTERM for {timeout}s; log:\n"
                                     f"{tail(self.log_text())}") from None
        self.returncode = self.proc.returncode
        self.check_log()
        if self.returncode != 0:
            raise AssertionError(f"pgflip exited with {self.returncode}; log:\n"
                                 f"{tail(self.log_text())}")
        return self.returncode

    def check_log(self):
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                start = text.index(marker)
                raise AssertionError(f"sanitizer report in pgflip's log {self.log_path}:\n"
                                     f"{text[max(0, start - 200):start + 4000]}")

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def dsn(self, user="postgres", dbname="postgres", **extra):
        parts = {"host": "127.0.0.1", "port": self.port, "user": user, "dbname": dbname,
                 "connect_timeout": 10, "sslmode": "disable"}
        parts.update(extra)
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def connect(self, autocommit=True, **kw):
        return psycopg.connect(self.dsn(**kw), autocommit=autocommit)

    def libpq_env(self, user="postgres", dbname="postgres"):
        """Environment for psql/pgbench through pgflip."""
        env = dict(os.environ)
        env.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=user, PGDATABASE=dbname,
                   PGSSLMODE="disable", PGCONNECT_TIMEOUT="10", PGCLIENTENCODING="UTF8")
        for key in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS"):
            env.pop(key, None)
        return env


class PgflipTestCase(unittest.TestCase):
    """Base class: a Cluster per test class; pgflip instances are stopped and checked (exit code 0,
    no sanitizer report) after each test (start_pgflip) or after the class (start_class_pgflip),
    and their log tails are printed when a test fails."""

    pgflip_only = False  # skipped in direct mode
    _class_proxies = ()

    @classmethod
    def setUpClass(cls):
        if DIRECT and cls.pgflip_only:
            raise unittest.SkipTest("needs pgflip (PGFLIP_TEST_DIRECT=1)")
        cls.cluster = Cluster()
        cls._class_proxies = []

    @classmethod
    def start_class_pgflip(cls, overrides=None):
        proxy = Pgflip(cls.cluster, overrides, name=cls.__name__)
        cls._class_proxies.append(proxy)
        cls.addClassCleanup(proxy.stop)
        return proxy.start()

    def setUp(self):
        self._proxies = list(self._class_proxies)
        self.addCleanup(self._dump_logs_if_failed)  # registered first: runs after the stops

    def start_pgflip(self, overrides=None, env=None):
        proxy = Pgflip(self.cluster, overrides, name=self.id().rsplit(".", 1)[-1], env=env)
        self._proxies.append(proxy)
        self.addCleanup(proxy.stop)
        return proxy.start()

    def _dump_logs_if_failed(self):
        if DIRECT or getattr(getattr(self, "_outcome", None), "success", True):
            return
        for proxy in self._proxies:
            sys.stderr.write(f"\n--- {self.id()}: pgflip log {proxy.log_path} (tail) ---\n"
                             f"{tail(proxy.log_text(), 60)}\n")

    def skip_if_direct(self, why="checks pgflip itself"):
        if DIRECT:
            self.skipTest(f"{why} (PGFLIP_TEST_DIRECT=1)")


# --- A raw protocol 3.0 client: for what libpq hides (startup SQLSTATEs, abrupt disconnects) ---

class ServerError(Exception):
    def __init__(self, fields):
        self.fields = fields
        self.sqlstate = fields.get("C")
        super().__init__(f"{fields.get('S')} {self.sqlstate}: {fields.get('M')}")


def parse_error_fields(body):
    fields = {}
    for item in body.split(b"\0"):
        if item:
            fields[chr(item[0])] = item[1:].decode(errors="replace")
    return fields


class MessageStream:
    """A protocol 3.0 connection's message layer, shared by the test clients: framed reads, simple
    queries with their rows, Terminate. Subclasses set `sock` (a socket or an ssl.SSLSocket) and
    log in; `buffer` holds bytes read past the last message, `status` the last ReadyForQuery."""

    sock = None
    buffer = b""
    status = None

    def send(self, kind, body):
        self.sock.sendall(kind + struct.pack("!I", len(body) + 4) + body)

    def read_message(self):
        while len(self.buffer) < 5 or len(self.buffer) < 1 + struct.unpack("!I", self.buffer[1:5])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self.buffer += chunk
        length = struct.unpack("!I", self.buffer[1:5])[0]
        kind, body = self.buffer[:1], self.buffer[5:1 + length]
        self.buffer = self.buffer[1 + length:]
        return kind, body

    def send_query(self, sql):
        self.send(b"Q", sql.encode() + b"\0")

    def query(self, sql):
        """Runs one simple query; returns its rows as lists of str/None, raises ServerError."""
        self.send_query(sql)
        return self.read_rows()

    def read_rows(self):
        """Reads up to ReadyForQuery: the DataRows as lists of str/None; raises ServerError."""
        rows, error = [], None
        while True:
            kind, body = self.read_message()
            if kind == b"D":
                (count,) = struct.unpack("!H", body[:2])
                pos, row = 2, []
                for _ in range(count):
                    (size,) = struct.unpack("!i", body[pos:pos + 4])
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + size].decode())
                        pos += size
                rows.append(row)
            elif kind == b"E":
                error = ServerError(parse_error_fields(body))
            elif kind == b"Z":
                self.status = body[:1]
                if error:
                    raise error
                return rows

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.sendall(b"X\0\0\0\4")
        self.sock.close()


class RawClient(MessageStream):
    """Speaks just enough protocol 3.0 to log in (trust), run simple queries and vanish."""

    def __init__(self, port, user="postgres", database="postgres", host="127.0.0.1", timeout=10,
                 **params):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        self.parameters = {}
        self.backend_key = None
        self.status = None
        try:
            self._login(user, database, params)
        except BaseException:
            self.sock.close()  # a refused login leaves no socket behind
            raise

    def _login(self, user, database, params):
        payload = struct.pack("!I", 196608)
        for key, value in {"user": user, "database": database, **params}.items():
            payload += key.encode() + b"\0" + str(value).encode() + b"\0"
        payload += b"\0"
        self.sock.sendall(struct.pack("!I", len(payload) + 4) + payload)
        while True:
            kind, body = self.read_message()
            if kind == b"R":
                (code,) = struct.unpack("!I", body[:4])
                if code != 0:
                    raise RuntimeError(f"server asked for authentication {code}")
            elif kind == b"S":
                key, value = body.split(b"\0")[:2]
                self.parameters[key.decode()] = value.decode()
            elif kind == b"K":
                self.backend_key = struct.unpack("!II", body[:8])
            elif kind == b"E":
                raise ServerError(parse_error_fields(body))
            elif kind == b"Z":
                self.status = body[:1]
                return

    def abort(self):
        """Closes with a TCP RST, as a crashed client would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def run(cmd, env=None, timeout=120, check=True, input=None):
    """Runs a command, returns CompletedProcess (text); on failure the assertion shows its output."""
    proc = subprocess.run(cmd, env=env, timeout=timeout, input=input, capture_output=True,
                          text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd[0]} exited {proc.returncode}\nstdout:\n{tail(proc.stdout)}\n"
                             f"stderr:\n{tail(proc.stderr)}")
    return proc


def main():
    unittest.main(verbosity=2)


__all__ = ["Cluster", "Pgflip", "PgflipTestCase", "RawClient", "ServerError", "DIRECT", "run",
           "wait_until", "free_port", "tail", "main"]
