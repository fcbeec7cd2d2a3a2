"""systemd's notification protocol (Type=notify): with NOTIFY_SOCKET set, pgflip sends READY=1 with
its STATUS once it serves, RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a SIGHUP reload, a
new STATUS on PAUSE and RESUME, and STOPPING=1 at SIGTERM; and it exits 0."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

import harness


class SystemdNotifyTest(harness.PgflipTestCase):
    pgflip_only = True

    def notify_socket(self):
        directory = tempfile.mkdtemp(prefix="pgflip-sd-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        sock.settimeout(15)
        return sock, path

    def receive(self, sock):
        return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())

    def ctl(self, proxy, *args):
        proc = subprocess.run([harness.pgflipctl_binary(), "--socket",
                               str(proxy.admin_socket_path()), *args],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_ready_reload_status_and_stopping(self):
        sock, path = self.notify_socket()
        proxy = self.start_pgflip(env={"NOTIFY_SOCKET": path})
        ready = self.receive(sock)
        self.assertEqual(ready.get("READY"), "1", ready)
        self.assertRegex(ready.get("STATUS", ""), r"^serving from blue \(epoch \d+\)$")
        # Ready means serving: the admin socket is up too.
        self.assertTrue(proxy.admin_socket_path().exists())
        client = harness.RawClient(proxy.port, database="postgres")
        self.assertEqual(client.query("select 1"), [["1"]])

        proxy.signal(signal.SIGHUP)
        reloading = self.receive(sock)
        self.assertEqual(reloading.get("RELOADING"), "1", reloading)
        self.assertRegex(reloading.get("MONOTONIC_USEC", ""), r"^\d+$")
        self.assertEqual(self.receive(sock).get("READY"), "1")

        self.ctl(proxy, "pause")
        self.assertTrue(self.receive(sock)["STATUS"].endswith(", paused"))
        self.ctl(proxy, "resume")
        self.assertFalse(self.receive(sock)["STATUS"].endswith(", paused"))
        client.close()

        proxy.signal(signal.SIGTERM)
        stopping = self.receive(sock)
        self.assertEqual(stopping.get("STOPPING"), "1", stopping)
        self.assertEqual(proxy.wait(15), 0)

    def test_unusable_notify_socket_is_ignored(self):
        # Empty, relative, or naming no socket: pgflip starts, serves, reloads and stops as ever.
        for value in ("", "relative/notify", "/nonexistent/notify"):
            with self.subTest(NOTIFY_SOCKET=value):
                proxy = self.start_pgflip(env={"NOTIFY_SOCKET": value})
                client = harness.RawClient(proxy.port, database="postgres")
                proxy.signal(signal.SIGHUP)
                harness.wait_until(lambda: "configuration reloaded (SIGHUP)" in proxy.log_text(),
                                   10, message="the reload")
                self.assertEqual(client.query("select 1"), [["1"]])
                client.close()
                self.assertEqual(proxy.stop(), 0)


if __name__ == "__main__":
    harness.main()
