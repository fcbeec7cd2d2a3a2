#!/usr/bin/env bash
# Switchover stall under load: pgflip's switchover vs the do-it-yourself PgBouncer cutover, both
# moving pgbench -N (16 clients, or --sizes) from blue (PostgreSQL 15) to green (PostgreSQL 17).
#
#   bench/switchover.sh [--reps N] [--duration S] [--at S] [--clients N | --sizes N,N,...]
#                       [--scale N] [--rate TPS] [--keep]
#   PGFLIP_BUILD_DIR=DIR bench/switchover.sh     (default build dir: build/)
#
# Each repetition, for each method (interleaved: pgflip, then PgBouncer):
#   1. a fresh pgflip (own state file) runs `replication init --copy-schema` of database `bench`
#      (pgbench -i -s SCALE once at the start) from blue to green;
#   2. pgbench -N -c CLIENTS -j 2 -T DURATION --log runs through the proxy, and at AT seconds:
#      pgflip:    `pgflipctl switchover` (session mode: every session moves to green);
#      pgbouncer: Debian's PgBouncer 1.18 in transaction mode in front of blue, then PAUSE, a
#                 sentinel row written on blue after the PAUSE polled until green has it, setval
#                 of blue's sequences on green, [databases] rewritten to green, RELOAD, RESUME;
#   Two seconds before the cutover, a probe row written on blue is timed until green has it:
#   green's replication lag under this load (the floor of any lag-gated cutover).
#   3. from pgbench's per-transaction logs: the maximum and p99 latency of the transactions that
#      overlap the cutover window (the client-visible stall: pgflip's park..flip steps, by their
#      wall-clock start in the report; PgBouncer's PAUSE..RESUME) and of all of them,
#      failed transactions and aborted clients; pgflip's own report (parked ms, total ms);
#   4. reset: replication objects dropped, green's copy dropped, blue unfenced.
# Prints one row per repetition and a summary table. Goal: max stall <= 250 ms, 0 failed.
# --sizes 16,200,1000 runs the whole thing once per client count (smallest first) and ends with
# one table of stall against session count, both methods, with pgflip's per-session parked times
# (p50/p99/max from the report) and its park and flip steps. Both servers and both proxies are
# given room for the largest size (max_connections, max_client_conn, open files).
# --rate TPS runs pgbench with -R (same offered load for both methods; latencies then include
# pgbench's schedule lag). Everything runs on this machine (2 cores): compare the methods
# inside one run, and look at the load average printed with each cutover.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

reps=3 duration=30 at=10 sizes=16 scale=10 rate="" keep=0
while (($#)); do
  case "$1" in
    --reps) reps="${2:?}"; shift ;;
    --duration) duration="${2:?}"; shift ;;
    --at) at="${2:?}"; shift ;;
    --clients | --sizes) sizes="${2:?}"; shift ;;
    --scale) scale="${2:?}"; shift ;;
    --rate) rate="${2:?}"; shift ;;
    --keep) keep=1 ;;
    -h | --help) print_header_comment "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
IFS=, read -r -a size_list <<< "$sizes"
mapfile -t size_list < <(printf '%s\n' "${size_list[@]}" | sort -n -u)
for n in "$reps" "$duration" "$at" "$scale" ${rate:+"$rate"} "${size_list[@]}"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "options take positive integers"
done
((at >= 3 && at < duration)) || die "--at must be at least 3 and less than --duration"
largest="${size_list[-1]}"
((largest <= 2000)) || die "at most 2000 clients (each needs a server connection on both sides)"
clients="${size_list[0]}"
# pgbench, pgflip and PgBouncer each hold a socket per client (pgflip also one per server).
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
(($(ulimit -n) >= 3 * largest + 100)) || die "open-file limit $(ulimit -n) too low for $largest clients"

"$PGFLIP_ROOT/scripts/install-deps" > /dev/null
build="${PGFLIP_BUILD_DIR:-$PGFLIP_ROOT/build}"
log "building pgflip ($build, RelWithDebInfo)"
cmake -S "$PGFLIP_ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null ||
  die "cmake configure failed"
cmake --build "$build" -j 2 --target pgflip pgflipctl > /dev/null || die "build failed"
pgflip="$build/bin/pgflip"
pgflipctl="$build/bin/pgflipctl"
[[ -x /usr/sbin/pgbouncer ]] || die "pgbouncer missing (scripts/install-deps installs it)"

work="$(mktemp -d /tmp/pgflip-sobench.XXXXXX)"
chmod 755 "$work"
pgflip_pid="" bouncer_pid=""
stop_pgflip() {
  [[ -n "$pgflip_pid" ]] || return 0
  kill -TERM "$pgflip_pid" 2> /dev/null || true
  wait "$pgflip_pid" 2> /dev/null || true
  pgflip_pid=""
}
stop_pgbouncer() {
  [[ -n "$bouncer_pid" ]] || return 0
  kill -TERM "$bouncer_pid" 2> /dev/null || true
  # Not a child of this shell (it daemonizes): poll until gone.
  for _ in $(seq 100); do kill -0 "$bouncer_pid" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$bouncer_pid" 2> /dev/null || true
  bouncer_pid=""
}
cleanup() {
  local rc=$?
  set +e
  stop_pgflip
  stop_pgbouncer
  "$PGFLIP_ROOT/scripts/pgcluster" stop "$work/cluster"
  if ((keep || rc != 0)); then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting blue (PostgreSQL 15) and green (PostgreSQL 17) in $work/cluster"
# Blue holds every client's backend plus PgBouncer's pool; green the moved sessions.
PGFLIP_PG_MAX_CONNECTIONS=$((largest + 100)) "$PGFLIP_ROOT/scripts/pgcluster" start "$work/cluster"
# shellcheck source=/dev/null
source "$work/cluster/env"

psql_on() { # psql_on PORT DB SQL...: one psql per statement list, errors are fatal
  local port="$1" db="$2"
  shift 2
  PGOPTIONS='-c client_min_messages=warning' \
    "$PG15_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

log "pgbench -i -s $scale on blue"
psql_on "$BLUE_PORT" postgres -c 'CREATE DATABASE bench'
"$PG15_BIN/pgbench" -i -s "$scale" -q -h 127.0.0.1 -p "$BLUE_PORT" -U postgres bench \
  2> "$work/init.log" || { cat "$work/init.log" >&2; die "pgbench -i failed"; }
# pgbench_history has no key: insert-only is safe, but the precheck wants an identity.
# bench_sentinel: the do-it-yourself cutover's sentinel (its bigserial is a sequence to copy).
psql_on "$BLUE_PORT" bench \
  -c 'ALTER TABLE pgbench_history REPLICA IDENTITY FULL' \
  -c 'CREATE TABLE bench_sentinel (id bigserial PRIMARY KEY, label text NOT NULL)'

# --- pgflip -------------------------------------------------------------------------------

start_pgflip() { # start_pgflip DIR: a fresh pgflip (new state file) replicating `bench`
  local dir="$1" p
  p="$(free_port)"
  cat > "$dir/pgflip.toml" << EOF
[server]
listen = "127.0.0.1:$p"
workers = 2
max_client_conn = $((largest + 50))
[admin]
socket = "$dir/admin.sock"
[auth]
method = "trust"
[blue]
host = "127.0.0.1"
port = $BLUE_PORT
admin_user = "postgres"
# Plain TCP to the servers, as the PgBouncer side uses (the test clusters also accept TLS).
sslmode = "disable"
[green]
host = "127.0.0.1"
port = $GREEN_PORT
admin_user = "postgres"
sslmode = "disable"
[replication]
databases = ["bench"]
[switchover]
state_file = "$dir/state.json"
# Room for a thousand green logins before the commit point on a small machine (each forks a
# backend: ~30-40 ms of CPU on this 2-core VM); the default is 30 s.
timeout_ms = 300000
[log]
level = "info"
EOF
  # Its own session, as a daemon or a systemd service has: with the kernel's autogroup
  # scheduling a proxy in the load generator's session shares that session's CPU share and
  # stalls clients for hundreds of milliseconds (PgBouncer -d gets a session of its own).
  setsid "$pgflip" --config "$dir/pgflip.toml" > "$dir/pgflip.log" 2>&1 &
  pgflip_pid=$!
  pgflip_port=$p
  wait_for_port 127.0.0.1 "$p" 30 || { tail -n 20 "$dir/pgflip.log" >&2; die "pgflip did not start"; }
  for _ in $(seq 100); do [[ -S "$dir/admin.sock" ]] && break; sleep 0.05; done
  "$pgflipctl" --config "$dir/pgflip.toml" replication init --copy-schema > "$dir/init.txt" 2>&1 ||
    { cat "$dir/init.txt" >&2; die "replication init failed"; }
}

# reset: no replication objects left, green's copy dropped, blue unfenced (whatever happened).
reset_clusters() {
  local sub slot
  if [[ -n "$(psql_on "$GREEN_PORT" postgres -c "SELECT 1 FROM pg_database WHERE datname = 'bench'")" ]]; then
    for sub in $(psql_on "$GREEN_PORT" bench -c "SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = 'bench')"); do
      psql_on "$GREEN_PORT" bench -c "ALTER SUBSCRIPTION \"$sub\" DISABLE" \
        -c "ALTER SUBSCRIPTION \"$sub\" SET (slot_name = NONE)" -c "DROP SUBSCRIPTION \"$sub\""
    done
    psql_on "$GREEN_PORT" postgres -c 'DROP DATABASE bench WITH (FORCE)'
  fi
  psql_on "$BLUE_PORT" postgres -c 'SET default_transaction_read_only = off' \
    -c 'ALTER SYSTEM RESET default_transaction_read_only' -c 'SELECT pg_reload_conf()' \
    -c 'DROP SCHEMA IF EXISTS pgflip CASCADE' > /dev/null
  psql_on "$BLUE_PORT" bench -c 'SET default_transaction_read_only = off' \
    -c 'DROP PUBLICATION IF EXISTS pgflip_pub' -c 'DROP EVENT TRIGGER IF EXISTS pgflip_ddl_end' \
    -c 'DROP EVENT TRIGGER IF EXISTS pgflip_ddl_drop' -c 'DROP SCHEMA IF EXISTS pgflip CASCADE'
  for _ in $(seq 100); do
    slot="$(psql_on "$BLUE_PORT" postgres -c "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgflip\_%' LIMIT 1")"
    [[ -n "$slot" ]] || break
    psql_on "$BLUE_PORT" postgres -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '$slot' AND active_pid IS NOT NULL" > /dev/null
    psql_on "$BLUE_PORT" postgres -c "SELECT pg_drop_replication_slot('$slot')" > /dev/null 2>&1 || sleep 0.1
  done
  psql_on "$BLUE_PORT" bench -c 'VACUUM ANALYZE' > /dev/null
}

start_pgbench() { # start_pgbench DIR PORT: pgbench -N in the background, logs in DIR
  # shellcheck disable=SC2086 # the rate option is empty or two words
  "$PG15_BIN/pgbench" -n -N -c "$clients" -j 2 -T "$duration" ${rate:+-R $rate} -l --log-prefix "$1/txn" \
    -h 127.0.0.1 -p "$2" -U postgres bench > "$1/pgbench.out" 2> "$1/pgbench.err" &
  pgbench_pid=$!
  pgbench_started="$("$PGFLIP_PYTHON" -c 'import time; print(time.time())')"
}

wait_until_at() { # wait_until_at [OFFSET]: sleeps until AT (+ OFFSET) seconds after pgbench started
  "$PGFLIP_PYTHON" -c 'import sys, time; time.sleep(max(0, sum(map(float, sys.argv[1:])) - time.time()))' \
    "$pgbench_started" "$at" "${1:-0}"
}

lag_probe() { # lag_probe DIR: in the background, ms until a row written on blue 2 s before the
  # cutover is on green (green's lag under this load; it does not delay the cutover)
  wait_until_at -2
  "$PGFLIP_PYTHON" - "$BLUE_PORT" "$GREEN_PORT" > "$1/lag" << 'EOF' &
import sys, time
import psycopg
dsn = "host=127.0.0.1 user=postgres dbname=bench port="
blue = psycopg.connect(dsn + sys.argv[1], autocommit=True)
green = psycopg.connect(dsn + sys.argv[2], autocommit=True)
label = f"lag-{time.time()}"
blue.execute("INSERT INTO bench_sentinel (label) VALUES (%s)", (label,))
written = time.time()
while not green.execute("SELECT 1 FROM bench_sentinel WHERE label = %s", (label,)).fetchone():
    if time.time() - written > 15:
        print("nan")
        sys.exit()
    time.sleep(0.002)
print(f"{(time.time() - written) * 1000:.1f}")
EOF
  probe_pid=$!
  wait_until_at
}

finish_pgbench() { # finish_pgbench DIR: waits (and for the lag probe); records its exit code
  local rc=0
  wait "$probe_pid" || true
  wait "$pgbench_pid" || rc=$?
  echo "$rc" > "$1/pgbench.rc"
}

epoch() { "$PGFLIP_PYTHON" -c 'import time; print(f"{time.time():.6f}")'; }

run_pgflip() { # run_pgflip REP
  local dir="$work/pgflip-$1"
  mkdir -p "$dir"
  start_pgflip "$dir"
  start_pgbench "$dir" "$pgflip_port"
  lag_probe "$dir"
  cut -d' ' -f1 /proc/loadavg > "$dir/loadavg"
  epoch > "$dir/window"
  "$pgflipctl" --config "$dir/pgflip.toml" --json switchover > "$dir/switchover.json" \
    2> "$dir/switchover.err" || log "pgflip rep $1: switchover failed: $(cat "$dir/switchover.err")"
  epoch >> "$dir/window"
  finish_pgbench "$dir"
  "$PGFLIP_PYTHON" - "$dir/switchover.json" << 'EOF' >&2
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
r = (lines[-1].get("result") if lines else None) or {}
print(f"switchover.sh: pgflip: {r.get('outcome')}, {r.get('total_ms', 0):.0f} ms, "
      f"{(r.get('sessions') or {}).get('moved')} moved, max parked {r.get('max_parked_ms', 0):.1f} ms")
EOF
  stop_pgflip
  reset_clusters
}

# --- PgBouncer (transaction mode) ---------------------------------------------------------

write_bouncer_ini() { # write_bouncer_ini DIR PORT TARGET_PORT
  cat > "$1/pgbouncer.ini" << EOF
[databases]
bench = host=127.0.0.1 port=$3 dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $2
unix_socket_dir =
auth_type = trust
auth_file = $1/userlist.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = $((largest + 50))
default_pool_size = $((clients + 4))
max_db_connections = 0
server_reset_query =
logfile = $1/pgbouncer.log
pidfile = $1/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
EOF
}

# The do-it-yourself cutover, timed step by step; prints JSON with the window.
diy_cutover() { # diy_cutover BOUNCER_PORT INI
  "$PGFLIP_PYTHON" - "$1" "$BLUE_PORT" "$GREEN_PORT" "$2" << 'EOF'
import json, re, sys, time
import psycopg

bouncer, blue_port, green_port, ini = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
dsn = "host=127.0.0.1 user=postgres port={} dbname={}"
steps, t = {}, time.time()
start = t
admin = psycopg.connect(dsn.format(bouncer, "pgbouncer"), autocommit=True)
blue = psycopg.connect(dsn.format(blue_port, "bench"), autocommit=True)
green = psycopg.connect(dsn.format(green_port, "bench"), autocommit=True)

def mark(name):
    global t
    now = time.time()
    steps[name] = round((now - t) * 1000, 1)
    t = now

admin.execute("PAUSE")
mark("pause")
label = f"diy-{start}"
blue.execute("INSERT INTO bench_sentinel (label) VALUES (%s)", (label,))
while not green.execute("SELECT 1 FROM bench_sentinel WHERE label = %s", (label,)).fetchone():
    time.sleep(0.002)
mark("sentinel")
seqs = blue.execute(
    "SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences "
    "WHERE last_value IS NOT NULL").fetchall()
if seqs:
    green.execute("SELECT setval(s, v) FROM unnest(%s::text[], %s::int8[]) AS u(s, v)",
                  ([s for s, _ in seqs], [v for _, v in seqs]))
mark("sequences")
text = open(ini).read()
open(ini, "w").write(re.sub(r"port=\d+ dbname=bench", f"port={green_port} dbname=bench", text))
admin.execute("RELOAD")
mark("reload")
admin.execute("RESUME")
mark("resume")
end = time.time()
print(json.dumps({"start": start, "end": end, "total_ms": round((end - start) * 1000, 1),
                  "steps": steps, "sequences": len(seqs)}))
EOF
}

run_pgbouncer() { # run_pgbouncer REP
  local dir="$work/pgbouncer-$1" p
  mkdir -p "$dir"
  # pgflip only sets up the replication here; clients go through PgBouncer.
  start_pgflip "$dir"
  p="$(free_port)"
  echo '"postgres" ""' > "$dir/userlist.txt"
  write_bouncer_ini "$dir" "$p" "$BLUE_PORT"
  chown -R "$PGFLIP_OS_USER:" "$dir"
  runuser -u "$PGFLIP_OS_USER" -- /usr/sbin/pgbouncer -d -q "$dir/pgbouncer.ini" ||
    { tail -n 20 "$dir/pgbouncer.log" >&2; die "pgbouncer did not start"; }
  wait_for_port 127.0.0.1 "$p" 30 || { tail -n 20 "$dir/pgbouncer.log" >&2; die "pgbouncer is not listening"; }
  bouncer_pid="$(<"$dir/pgbouncer.pid")"
  start_pgbench "$dir" "$p"
  lag_probe "$dir"
  cut -d' ' -f1 /proc/loadavg > "$dir/loadavg"
  diy_cutover "$p" "$dir/pgbouncer.ini" > "$dir/cutover.json" 2> "$dir/cutover.err" ||
    log "pgbouncer rep $1: cutover failed: $(cat "$dir/cutover.err")"
  finish_pgbench "$dir"
  log "pgbouncer: $(cat "$dir/cutover.json"); now on $("$PG15_BIN/psql" -X -At -h 127.0.0.1 -p "$p" -U postgres -d bench -c 'SHOW server_version')"
  stop_pgbouncer
  stop_pgflip
  reset_clusters
}

for clients in "${size_list[@]}"; do
  for rep in $(seq "$reps"); do
    log "$clients clients, repetition $rep/$reps: pgflip switchover at ${at}s of ${duration}s"
    run_pgflip "$clients-$rep"
    log "$clients clients, repetition $rep/$reps: PgBouncer PAUSE/RELOAD/RESUME at ${at}s of ${duration}s"
    run_pgbouncer "$clients-$rep"
  done
done

# --- analysis -----------------------------------------------------------------------------
"$PGFLIP_PYTHON" - "$work" "$reps" "$(IFS=,; echo "${size_list[*]}")" "$duration" "$at" "$rate" << 'EOF'
import glob, json, math, re, statistics, sys

work, reps, sizes, duration, at, rate = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
sizes = [int(n) for n in sizes.split(",")]
rate = f" -R {rate}" if rate else ""

def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]

def analyse(dir, start, end):
    """Latencies (ms) from pgbench -l lines: client txn latency_us script epoch us [...]."""
    window, overall, failed_logged = [], [], 0
    for path in glob.glob(f"{dir}/txn.*"):
        for line in open(path):
            f = line.split()
            if len(f) < 6:
                continue
            if not f[2].isdigit():  # "failed", "skipped", "serialization", "deadlock"
                failed_logged += f[2] != "skipped"
                continue
            latency_us = int(f[2])
            done = int(f[4]) + int(f[5]) / 1e6
            begun = done - latency_us / 1e6
            overall.append(latency_us / 1000)
            if begun <= end and done >= start:
                window.append(latency_us / 1000)
    out = open(f"{dir}/pgbench.out").read()
    err = open(f"{dir}/pgbench.err").read()
    m = re.search(r"number of failed transactions: (\d+)", out)
    failed = int(m.group(1)) if m else failed_logged
    rc = int(open(f"{dir}/pgbench.rc").read())
    aborted = len(re.findall(r"client \d+ aborted", err)) + (rc != 0 and "aborted" not in err)
    tps = re.search(r"tps = ([\d.]+)", out)
    return {"txns": len(overall), "in_window": len(window), "failed": failed,
            "aborted": aborted, "rc": rc,
            "max_window": max(window, default=float("nan")), "p99_window": pct(window, 99),
            "max_all": max(overall, default=float("nan")), "p99_all": pct(overall, 99),
            "tps": float(tps.group(1)) if tps else float("nan")}

def pgflip_row(clients, rep):
    d = f"{work}/pgflip-{clients}-{rep}"
    start, end = (float(x) for x in open(f"{d}/window").read().split())
    lines = [json.loads(l) for l in open(f"{d}/switchover.json") if l.strip()]
    reply = lines[-1] if lines else {}
    r = reply.get("result") or {}
    # Clients are held only from the park step to the end of the flip (the catch-up before it
    # runs while they work): that is the window to compare with PgBouncer's PAUSE..RESUME.
    by_step = {s["step"]: s for s in r.get("steps", []) if "started_at" in s}
    if "park" in by_step:
        start = by_step["park"]["started_at"]
        last = by_step.get("flip") or max(by_step.values(), key=lambda s: s["started_at"])
        end = last["started_at"] + last["ms"] / 1000
    # Each session's parked time, from its park (state captured on blue and restored on green)
    # to its release, from the report.
    parked = [p["parked_ms"] for p in r.get("participants", []) if p.get("parked_ms")]
    row = {"method": "pgflip", "clients": clients, "rep": rep, "window_ms": (end - start) * 1000,
           "ok": bool(reply.get("ok")), "outcome": r.get("outcome", "?"),
           "held_max": r.get("max_parked_ms", float("nan")),
           "parked_p50": pct(parked, 50), "parked_p99": pct(parked, 99),
           "parked_max": max(parked, default=float("nan")),
           "total_ms": r.get("total_ms", float("nan")),
           "moved": (r.get("sessions") or {}).get("moved"),
           "steps": {s["step"]: round(s["ms"], 1) for s in r.get("steps", [])},
           "load": open(f"{d}/loadavg").read().strip(),
           "lag": open(f"{d}/lag").read().strip()}
    row.update(analyse(d, start, end))
    return row

def pgbouncer_row(clients, rep):
    d = f"{work}/pgbouncer-{clients}-{rep}"
    try:
        c = json.loads(open(f"{d}/cutover.json").read())
    except (OSError, ValueError):
        c = {"start": 0, "end": 0, "total_ms": float("nan"), "steps": {}}
    nan = float("nan")
    row = {"method": "pgbouncer", "clients": clients, "rep": rep,
           "window_ms": (c["end"] - c["start"]) * 1000,
           "ok": bool(c["end"]), "outcome": "done" if c["end"] else "failed",
           "held_max": nan, "parked_p50": nan, "parked_p99": nan, "parked_max": nan,
           "total_ms": c["total_ms"], "moved": None, "steps": c.get("steps"),
           "load": open(f"{d}/loadavg").read().strip(),
           "lag": open(f"{d}/lag").read().strip()}
    row.update(analyse(d, c["start"], c["end"]))
    return row

all_rows = []
for clients in sizes:
    rows = []
    for rep in range(1, reps + 1):
        rows += [pgflip_row(clients, rep), pgbouncer_row(clients, rep)]
    all_rows += rows
    print(f"\npgbench -N -c {clients} -j 2 -T {duration}{rate}, cutover at {at} s, blue PG15 -> "
          f"green PG17; latencies in ms from pgbench's per-transaction log\n")
    head = (f"{'method':<10}{'rep':>4}{'outcome':>11}{'window':>9}{'txns':>8}{'in win':>7}"
            f"{'failed':>7}{'abort':>6}{'max win':>9}{'p99 win':>9}{'p99 all':>9}{'max all':>9}"
            f"{'held max':>9}{'parked p50':>11}{'p99':>7}{'max':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['method']:<10}{r['rep']:>4}{r['outcome']:>11}{r['window_ms']:>9.0f}{r['txns']:>8}"
              f"{r['in_window']:>7}{r['failed']:>7}{r['aborted']:>6}{r['max_window']:>9.1f}"
              f"{r['p99_window']:>9.1f}{r['p99_all']:>9.1f}{r['max_all']:>9.1f}"
              f"{r['held_max']:>9.1f}{r['parked_p50']:>11.1f}{r['parked_p99']:>7.1f}"
              f"{r['parked_max']:>7.1f}")
    print("\ncutover steps (ms); green's lag 2 s before (ms); 1-minute load average at the cutover:")
    for r in rows:
        print(f"  {r['method']:<10} rep {r['rep']}: lag {r['lag']}, load {r['load']}; {r.get('steps')}")

    print(f"\nsummary, {clients} clients (max stall = the longest transaction overlapping the "
          "cutover window; worst and median over repetitions)\n")
    head = (f"{'method':<10}{'reps':>5}{'failed txns':>12}{'aborted':>8}{'max stall ms':>14}"
            f"{'median':>8}{'p99 in window':>14}{'pgflip held max':>16}{'goal':>6}")
    print(head)
    print("-" * len(head))
    for method in ("pgflip", "pgbouncer"):
        rs = [r for r in rows if r["method"] == method]
        failed = sum(r["failed"] for r in rs)
        aborted = sum(r["aborted"] for r in rs)
        stalls = [r["max_window"] for r in rs]
        p99 = max(r["p99_window"] for r in rs)
        held = max(r["held_max"] for r in rs) if method == "pgflip" else float("nan")
        complete = all(r["ok"] for r in rs)
        goal = complete and failed == 0 and aborted == 0 and max(stalls) <= 250
        held_text = f"{held:.1f}" if method == "pgflip" else "-"
        print(f"{method:<10}{len(rs):>5}{failed:>12}{aborted:>8}{max(stalls):>14.1f}"
              f"{statistics.median(stalls):>8.1f}{p99:>14.1f}{held_text:>16}"
              f"{'met' if goal else 'NOT':>6}")
    print("\ngoal: max client stall <= 250 ms with zero failed transactions (and every cutover done)")

if len(sizes) > 1:
    print(f"\nstall against session count (pgbench -N -j 2 -T {duration}{rate}; worst over "
          f"{reps} repetition(s); parked = each session's park to its release, from pgflip's "
          "report)\n")
    head = (f"{'clients':>8}{'pgflip stall':>13}{'failed':>7}{'moved':>7}{'parked p50':>11}"
            f"{'p99':>7}{'max':>7}{'park':>7}{'flip':>7}{'prewarm':>8}"
            f"{'PgBouncer stall':>16}{'failed':>7}")
    print(head)
    print("-" * len(head))
    for clients in sizes:
        f = [r for r in all_rows if r["method"] == "pgflip" and r["clients"] == clients]
        b = [r for r in all_rows if r["method"] == "pgbouncer" and r["clients"] == clients]
        step = lambda name: max((r["steps"] or {}).get(name, float("nan")) for r in f)
        moved = min((r["moved"] or 0) for r in f)
        print(f"{clients:>8}{max(r['max_window'] for r in f):>13.1f}"
              f"{sum(r['failed'] + r['aborted'] for r in f):>7}{moved:>7}"
              f"{max(r['parked_p50'] for r in f):>11.1f}{max(r['parked_p99'] for r in f):>7.1f}"
              f"{max(r['parked_max'] for r in f):>7.1f}{step('park'):>7.0f}{step('flip'):>7.0f}"
              f"{step('prewarm'):>8.0f}{max(r['max_window'] for r in b):>16.1f}"
              f"{sum(r['failed'] + r['aborted'] for r in b):>7}")
EOF
