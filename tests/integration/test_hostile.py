"""Hostile input against a running pgflip while pgbench (reconnecting for every transaction, over
TLS with SCRAM) runs through it: random bytes, truncated and oversized messages, length fields of
2^31, invalid startup packets and parameters, garbage in the authentication exchange, TLS
garbage, clear-text bytes injected after SSLRequest, and 1,000 connections that send nothing
(all closed by the startup timeout). pgbench must finish with no error and pgflip keep serving."""

import pathlib
import random
import re
import resource
import selectors
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import psycopg

import frontdoor
import harness

DB = "it_hostile"
PASSWORD = "hostile-Pass-1"
# Generous enough for a pgbench login on a loaded two-core machine with a sanitized pgflip.
STARTUP_TIMEOUT_MS = 8000
SILENT = 1000
PGBENCH_SECONDS = 30


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_message(sock):
    """One whole message: (type, body)."""
    data = b""
    while len(data) < 5 or len(data) < 1 + struct.unpack("!I", data[1:5])[0]:
        chunk = sock.recv(1 + struct.unpack("!I", data[1:5])[0] - len(data) if len(data) >= 5
                          else 5 - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data[:1], data[5:]


def outcome(sock, timeout=15):
    """('error', fields) if pgflip answered with an ErrorResponse, else ('closed', None) once
    it closed; ('open', None) if it did neither within `timeout`."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        return "open", None
    pos = 0
    while pos + 5 <= len(data):
        kind = data[pos:pos + 1]
        (length,) = struct.unpack("!I", data[pos + 1:pos + 5])
        if kind == b"E":
            return "error", harness.parse_error_fields(data[pos + 5:pos + 1 + length])
        pos += 1 + length
    return "closed", None


class HostileInputTest(harness.PgflipTestCase):
    pgflip_only = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4 * SILENT:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * SILENT), hard))
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pgflip-hostile-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        ca = frontdoor.make_ca(cls.tmp)
        cert = frontdoor.make_server_cert(cls.tmp, ca, "pgflip")
        users = cls.tmp / "userlist.txt"
        users.write_text(frontdoor.userlist({"postgres": PASSWORD}))
        cls.cluster.recreate_database(DB)
        harness.run([cls.cluster.pgbench, "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p",
                     str(cls.cluster.blue_port), "-U", "postgres", DB])
        cls.proxy = cls.start_class_pgflip({
            "server": {"startup_timeout_ms": STARTUP_TIMEOUT_MS, "max_client_conn": 4 * SILENT,
                       "max_message_size": 1 << 20},
            "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])},
            "auth": {"method": "scram-sha-256", "users_file": str(users)},
            "log": {"level": "debug"},
        })
        cls.rng = random.Random(20261121)

    def port(self):
        return self.proxy.port

    def assert_refused_or_closed(self, sock, sqlstate=None):
        what, fields = outcome(sock)
        self.assertNotEqual(what, "open", "pgflip neither answered nor closed")
        if sqlstate:
            self.assertEqual(what, "error")
            self.assertEqual(fields["C"], sqlstate, fields)
            self.assertEqual(fields["S"], "FATAL")
        return fields

    # The attacks: each runs against the live pgflip and checks pgflip's reaction.

    def random_bytes(self):
        for _ in range(200):
            with connect(self.port()) as sock:
                sock.sendall(bytes(self.rng.randrange(256)
                                   for _ in range(self.rng.randrange(1, 3000))))
                self.assert_refused_or_closed(sock)

    def truncated(self):
        packet = frontdoor.startup_packet("postgres", DB)
        for cut in (1, 4, 7, len(packet) - 1):
            with connect(self.port()) as sock:  # then silent: the startup timeout ends it
                sock.sendall(packet[:cut])
                self.assert_refused_or_closed(sock)
        # Logged in, then half a message and gone.
        client = frontdoor.AuthClient(self.port(), "postgres", PASSWORD, database=DB)
        client.sock.sendall(b"Q" + struct.pack("!I", 1000) + b"select")
        client.sock.close()

    def oversized(self):
        for length in (1 << 31, 0xFFFFFFFF, 10005, 3):  # 10005: a body of 10001 bytes
            with connect(self.port()) as sock:
                sock.sendall(struct.pack("!II", length, 196608))
                self.assert_refused_or_closed(sock, "08P01")
        for length in (1 << 31, (1 << 20) + 5, 0xFFFFFFFF, 2):
            client = frontdoor.AuthClient(self.port(), "postgres", PASSWORD, database=DB)
            client.sock.sendall(b"Q" + struct.pack("!I", length) + b"x" * 100)
            fields = self.assert_refused_or_closed(client.sock, "08P01")
            self.assertIn("protocol violation", fields["M"])
            client.sock.close()

    def invalid_startup(self):
        cases = {
            "no user": (frontdoor.startup_packet("", DB), "08P01"),
            "protocol 2.0": (struct.pack("!II", 8, 2 << 16), "0A000"),
            "protocol 4.0": (struct.pack("!II", 8, 4 << 16), "0A000"),
            "no terminator": (struct.pack("!II", 17, 196608) + b"user\0bob\0", "08P01"),
            "odd parameter list": (struct.pack("!II", 13, 196608) + b"user\0", "08P01"),
            "replication": (frontdoor.startup_packet("postgres", DB, replication="true"), None),
            "cancel with a wrong size": (struct.pack("!III", 12, 80877102, 1), "08P01"),
        }
        for name, (packet, sqlstate) in cases.items():
            with self.subTest(startup=name), connect(self.port()) as sock:
                sock.sendall(packet)
                self.assert_refused_or_closed(sock, sqlstate)
        # A cancel request with a made-up key: silently ignored, connection closed.
        with connect(self.port()) as sock:
            sock.sendall(struct.pack("!IIII", 16, 80877102, 12345, 67890))
            self.assertEqual(outcome(sock)[0], "closed")

    def authentication_garbage(self):
        for body in (b"", b"\0" * 10, b"SCRAM-SHA-256\0\xff\xff\xff\xff",
                     b"SCRAM-SHA-256\0\0\0\0\x05n,,n=",
                     b"BOGUS\0\0\0\0\x03abc"):
            with connect(self.port()) as sock:
                sock.sendall(frontdoor.startup_packet("postgres", DB))
                self.assertEqual(read_message(sock)[0], b"R")
                sock.sendall(b"p" + struct.pack("!I", len(body) + 4) + body)
                self.assert_refused_or_closed(sock, "08P01")
        with connect(self.port()) as sock:  # a password message of 2^31 bytes
            sock.sendall(frontdoor.startup_packet("postgres", DB))
            self.assertEqual(read_message(sock)[0], b"R")
            sock.sendall(b"p" + struct.pack("!I", 1 << 31))
            self.assert_refused_or_closed(sock, "08P01")

    def tls_garbage(self):
        for how in range(3):
            with connect(self.port()) as sock:
                if how == 0:  # handshake garbage after 'S'
                    sock.sendall(frontdoor.SSL_REQUEST)
                    self.assertEqual(sock.recv(1), b"S")
                    sock.sendall(bytes(self.rng.randrange(256) for _ in range(5000)))
                elif how == 1:  # direct TLS garbage
                    sock.sendall(b"\x16\x03\x01\x02\x00" +
                                 bytes(self.rng.randrange(256) for _ in range(600)))
                else:  # clear text injected behind the SSLRequest
                    sock.sendall(frontdoor.SSL_REQUEST + frontdoor.startup_packet("postgres", DB))
                    self.assert_refused_or_closed(sock, "08P01")
                    continue
                self.assert_refused_or_closed(sock)

    def silent_connections(self):
        start = time.monotonic()
        socks = [connect(self.port()) for _ in range(SILENT)]
        opened = time.monotonic()
        selector = selectors.DefaultSelector()
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        closed_at = []
        deadline = opened + STARTUP_TIMEOUT_MS / 1000 + 20
        while len(closed_at) < SILENT and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(4096)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
                    closed_at.append(time.monotonic() - start)
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        self.assertEqual(len(closed_at), SILENT, "silent connections still open at the deadline")
        # Closed by the timeout, not before it.
        self.assertGreaterEqual(min(closed_at), STARTUP_TIMEOUT_MS / 1000 * 0.9)
        return max(closed_at)

    def test_hostile_input_while_pgbench_runs(self):
        env = self.proxy.libpq_env(dbname=DB)
        env.update(PGPASSWORD=PASSWORD, PGSSLMODE="require")
        pgbench = subprocess.Popen(
            [self.cluster.pgbench, "-n", "-C", "-S", "-c", "4", "-j", "2", "-R", "200", "-T",
             str(PGBENCH_SECONDS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            harness.wait_until(lambda: "connected to blue" in self.proxy.log_text(), 20,
                               message="pgbench's first connection")
            self.random_bytes()
            self.truncated()
            self.oversized()
            self.invalid_startup()
            self.authentication_garbage()
            self.tls_garbage()
            last_close = self.silent_connections()
            self.assertTrue(self.proxy.running())
        finally:
            out, err = pgbench.communicate(timeout=PGBENCH_SECONDS + 60)
        self.assertEqual(pgbench.returncode, 0, f"pgbench failed:\n{out}\n{err}")
        processed = re.search(r"number of transactions actually processed: (\d+)", out)
        self.assertIsNotNone(processed, out)
        self.assertGreater(int(processed.group(1)), 0)
        failed = re.search(r"number of failed transactions: (\d+)", out)
        if failed:
            self.assertEqual(failed.group(1), "0", out)
        self.assertLess(last_close, PGBENCH_SECONDS, "the attack outlasted pgbench")
        # Still serving, and nothing leaked: every silent connection's slot is free again.
        with psycopg.connect(self.proxy.dsn(dbname=DB, password=PASSWORD)) as conn:
            self.assertEqual(conn.execute("select count(*) from pgbench_branches").fetchone(), (1,))
        log = self.proxy.log_text()
        self.assertIn("startup timeout", log)
        self.assertNotIn(PASSWORD, log)


if __name__ == "__main__":
    harness.main()
