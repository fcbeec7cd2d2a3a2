"""Helpers for the front-door tests: certificates made with openssl at run time, secrets in
PgBouncer's userlist.txt format, and a raw protocol client that speaks TLS (SSLRequest or direct),
SCRAM-SHA-256[-PLUS] and MD5, for what libpq hides (SQLSTATEs, mechanisms, salts, raw bytes)."""

import base64
import hashlib
import hmac
import os
import pathlib
import socket
import ssl
import struct
import subprocess

import harness


# --- Certificates -----------------------------------------------------------------------------

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, name="ca", subject="pgflip front-door test CA"):
    """A self-signed EC P-256 CA: returns (cert path, key path)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key,
             cwd=directory)
    _openssl("req", "-x509", "-new", "-key", key, "-sha256", "-days", "30", "-subj", f"/CN={subject}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", cert, cwd=directory)
    return cert, key


def make_server_cert(directory, ca, name="server", names=("localhost",),
                     addresses=("127.0.0.1",)):
    """A server certificate signed by `ca` = (cert, key) for the given DNS names and IPs."""
    directory = pathlib.Path(directory)
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    ext = directory / f"{name}.ext"
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{a}" for a in addresses])
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key,
             cwd=directory)
    _openssl("req", "-new", "-key", key, "-subj", f"/CN={names[0] if names else addresses[0]}",
             "-out", csr, cwd=directory)
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-days", "30", "-sha256", "-extfile", ext, "-out", cert, cwd=directory)
    os.chmod(key, 0o600)
    return cert, key


# --- Secrets ----------------------------------------------------------------------------------

def scram_secret(password, salt=None, iterations=4096):
    """PostgreSQL's SCRAM-SHA-256 secret for a password (as in pg_authid.rolpassword)."""
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def md5_secret(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def userlist(entries):
    """{user: secret} -> userlist.txt text ('"' doubled, as PgBouncer reads it)."""
    quote = lambda s: '"' + s.replace('"', '""') + '"'  # noqa: E731
    return "".join(f"{quote(u)} {quote(s)}\n" for u, s in entries.items())


# --- Raw client ------------------------------------------------------------------------------

def startup_packet(user, database, **params):
    payload = struct.pack("!I", 196608)
    for key, value in {"user": user, "database": database, **params}.items():
        payload += key.encode() + b"\0" + str(value).encode() + b"\0"
    payload += b"\0"
    return struct.pack("!I", len(payload) + 4) + payload


SSL_REQUEST = struct.pack("!II", 8, 80877103)


def client_tls_context(ca=None, alpn=("postgresql",)):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        context.load_verify_locations(cafile=str(ca))
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


class AuthClient(harness.MessageStream):
    """Logs in with TLS (tls = None | "request" | "direct"), answering SCRAM (with channel
    binding if `channel_binding`) or MD5 with `password`. Records the mechanisms offered and
    the one used; raises harness.ServerError with the server's fields on an ErrorResponse."""

    def __init__(self, port, user, password=None, database="postgres", tls=None, ca=None,
                 channel_binding=False, host="127.0.0.1", timeout=10, alpn=("postgresql",),
                 **params):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        try:
            self._start(port, user, password, database, tls, ca, channel_binding, host, alpn,
                        params)
        except BaseException:
            self.sock.close()
            raise

    def _start(self, port, user, password, database, tls, ca, channel_binding, host, alpn,
               params):
        self.buffer = b""
        self.mechanisms = []
        self.mechanism = None
        self.salts = []
        self.auth_codes = []
        self.status = None
        if tls == "request":
            self.sock.sendall(SSL_REQUEST)
            answer = self.sock.recv(1)
            if answer != b"S":
                self.sock.close()
                raise ConnectionError(f"TLS refused: {answer!r}")
        if tls:
            self.sock = client_tls_context(ca, alpn).wrap_socket(
                self.sock, server_hostname=host if ca else None)
        self.sock.sendall(startup_packet(user, database, **params))
        self._login(user, password, channel_binding)

    def _login(self, user, password, channel_binding):
        while True:
            kind, body = self.read_message()
            if kind == b"E":
                raise harness.ServerError(harness.parse_error_fields(body))
            if kind == b"Z":
                self.status = body[:1]
                return
            if kind != b"R":
                continue
            (code,) = struct.unpack("!I", body[:4])
            self.auth_codes.append(code)
            if code == 5:  # MD5
                salt = body[4:8]
                self.salts.append(salt)
                inner = hashlib.md5((password + user).encode()).hexdigest()
                answer = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
                self.send(b"p", answer.encode() + b"\0")
            elif code == 10:  # SASL
                self.mechanisms = [m.decode() for m in body[4:].split(b"\0") if m]
                self._scram(password, channel_binding)
                return self._login_rest()
            elif code != 0:
                raise RuntimeError(f"unexpected authentication request {code}")

    def _scram(self, password, channel_binding):
        plus = channel_binding and "SCRAM-SHA-256-PLUS" in self.mechanisms
        if channel_binding and not plus:
            raise RuntimeError(f"channel binding asked, mechanisms {self.mechanisms}")
        self.mechanism = "SCRAM-SHA-256-PLUS" if plus else "SCRAM-SHA-256"
        cbind_data = b""
        if plus:
            gs2 = b"p=tls-server-end-point,,"
            cbind_data = hashlib.sha256(self.sock.getpeercert(binary_form=True)).digest()
        else:
            # "y" (could bind, server cannot) only when the server offers no -PLUS over TLS.
            tls = isinstance(self.sock, ssl.SSLSocket)
            gs2 = b"y,," if tls and "SCRAM-SHA-256-PLUS" not in self.mechanisms else b"n,,"
        nonce = base64.b64encode(os.urandom(18))
        first_bare = b"n=,r=" + nonce
        first = gs2 + first_bare
        self.send(b"p", self.mechanism.encode() + b"\0" + struct.pack("!I", len(first)) + first)
        kind, body = self.read_message()
        if kind == b"E":
            raise harness.ServerError(harness.parse_error_fields(body))
        assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 11, (kind, body)
        server_first = body[4:]
        attrs = dict(item.split(b"=", 1) for item in server_first.split(b","))
        salt = base64.b64decode(attrs[b"s"])
        self.salts.append(salt)
        salted = hashlib.pbkdf2_hmac("sha256", (password or "").encode(), salt, int(attrs[b"i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        final_bare = b"c=" + base64.b64encode(gs2 + cbind_data) + b",r=" + attrs[b"r"]
        auth_message = first_bare + b"," + server_first + b"," + final_bare
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.send(b"p", final_bare + b",p=" + base64.b64encode(proof))
        kind, body = self.read_message()
        if kind == b"E":
            raise harness.ServerError(harness.parse_error_fields(body))
        assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 12, (kind, body)
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        expected = b"v=" + base64.b64encode(hmac.digest(server_key, auth_message, "sha256"))
        if body[4:] != expected:
            raise RuntimeError("server signature mismatch")

    def _login_rest(self):
        while True:
            kind, body = self.read_message()
            if kind == b"E":
                raise harness.ServerError(harness.parse_error_fields(body))
            if kind == b"Z":
                self.status = body[:1]
                return


def read_error(sock, timeout=10):
    """Reads until EOF; returns the fields of the first ErrorResponse (or None) and all bytes."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    pos = 0
    while pos + 5 <= len(data):
        kind = data[pos:pos + 1]
        (length,) = struct.unpack("!I", data[pos + 1:pos + 5])
        if kind == b"E":
            return harness.parse_error_fields(data[pos + 5:pos + 1 + length]), data
        pos += 1 + length
    return None, data


def closed_within(sock, timeout):
    """True if the peer closes `sock` (EOF or reset) within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
