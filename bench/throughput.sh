#!/usr/bin/env bash
# Throughput benchmark: pgbench select-only through pgflip vs direct vs PgBouncer (session mode),
# interleaved in one run on the same blue server; prints TPS, ratios and each proxy's CPU cost.
#
#   bench/throughput.sh [--duration SECONDS] [--rounds N] [--scale N] [--no-tls] [--keep]
#   PGFLIP_BUILD_DIR=DIR bench/throughput.sh     (default build dir: build/)
#
# Workloads (each against every target, in every round):
#   S16   pgbench -S -c 16 -j 2          S64   pgbench -S -c 64 -j 2
#   P16   pgbench -S -M prepared -c 16 -j 2
# Targets: direct TCP to blue; pgflip with workers = 1 and workers = 2; PgBouncer (Debian's).
# Each target is run twice: clients in plain TCP, and clients over TLS (sslmode=require, the test
# CA's certificate; --no-tls skips these). The proxies talk to blue in plain TCP either way, so
# the TLS run measures the client side's TLS.
# All run on this machine: the proxy's CPU competes with PostgreSQL and pgbench, as it would on
# a shared host. Compare the ratios inside one run, never absolute numbers across runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

duration=15 rounds=2 scale=10 keep=0 tls=1
while (($#)); do
  case "$1" in
    --duration) duration="${2:?}"; shift ;;
    --rounds) rounds="${2:?}"; shift ;;
    --scale) scale="${2:?}"; shift ;;
    --keep) keep=1 ;;
    --no-tls) tls=0 ;;
    -h | --help) print_header_comment "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
for n in "$duration" "$rounds" "$scale"; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "options take positive integers"; done

"$PGFLIP_ROOT/scripts/install-deps" > /dev/null
build="${PGFLIP_BUILD_DIR:-$PGFLIP_ROOT/build}"
log "building pgflip ($build, RelWithDebInfo)"
cmake -S "$PGFLIP_ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPGFLIP_WERROR=ON > /dev/null || die "cmake configure failed"
cmake --build "$build" -j 2 --target pgflip > /dev/null || die "build failed"
pgflip="$build/bin/pgflip"

work="$(mktemp -d /tmp/pgflip-bench.XXXXXX)"
chmod 755 "$work"
declare -A proxy_pid=()
cleanup() {
  local rc=$? name
  set +e
  for name in "${!proxy_pid[@]}"; do
    kill -TERM "${proxy_pid[$name]}" 2> /dev/null
  done
  for name in "${!proxy_pid[@]}"; do
    # Not children of this shell (pgbouncer daemonizes): poll until gone.
    for _ in $(seq 100); do kill -0 "${proxy_pid[$name]}" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "${proxy_pid[$name]}" 2> /dev/null
  done
  "$PGFLIP_ROOT/scripts/pgcluster" stop "$work/cluster"
  if ((keep || rc != 0)); then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting blue (PostgreSQL 15) in $work/cluster"
"$PGFLIP_ROOT/scripts/pgcluster" start "$work/cluster"
# shellcheck source=/dev/null
source "$work/cluster/env"

log "pgbench -i -s $scale on blue"
"$PG15_BIN/psql" -X -q -h 127.0.0.1 -p "$BLUE_PORT" -U postgres -d postgres -c 'create database bench'
"$PG15_BIN/pgbench" -i -s "$scale" -q -h 127.0.0.1 -p "$BLUE_PORT" -U postgres bench 2> "$work/init.log" ||
  { cat "$work/init.log" >&2; die "pgbench -i failed"; }

declare -A port=([direct]="$BLUE_PORT")

start_pgflip() { # start_pgflip NAME WORKERS
  local name="$1" p
  p="$(free_port)"
  cat > "$work/$name.toml" <<EOF
[server]
listen = "127.0.0.1:$p"
workers = $2
[admin]
socket = "$work/$name-admin.sock"
[auth]
method = "trust"
[tls]
cert_file = "$TLS_SERVER_CERT"
key_file = "$TLS_SERVER_KEY"
client_tls = "allow"
[blue]
host = "127.0.0.1"
port = $BLUE_PORT
sslmode = "disable"
[green]
host = "127.0.0.1"
port = $GREEN_PORT
sslmode = "disable"
[log]
level = "warn"
EOF
  # Its own session, as a daemon or a systemd service has: with the kernel's autogroup
  # scheduling a proxy in the load generator's session shares that session's CPU share and
  # stalls clients for hundreds of milliseconds (PgBouncer -d gets a session of its own).
  setsid "$pgflip" --config "$work/$name.toml" > "$work/$name.log" 2>&1 &
  proxy_pid[$name]=$!
  port[$name]=$p
  wait_for_port 127.0.0.1 "$p" 30 || { tail -n 20 "$work/$name.log" >&2; die "$name did not start"; }
}

start_pgbouncer() { # Debian's PgBouncer in session mode, same backend path (TCP to blue)
  local p dir="$work/pgbouncer"
  p="$(free_port)"
  mkdir -p "$dir"
  echo '"postgres" ""' > "$dir/userlist.txt"
  cp "$TLS_SERVER_CERT" "$dir/server.crt"
  cp "$TLS_SERVER_KEY" "$dir/server.key"
  cat > "$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$BLUE_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $p
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = session
max_client_conn = 500
default_pool_size = 200
max_db_connections = 0
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
client_tls_sslmode = allow
client_tls_cert_file = $dir/server.crt
client_tls_key_file = $dir/server.key
server_tls_sslmode = disable
EOF
  chown -R "$PGFLIP_OS_USER:" "$dir"
  runuser -u "$PGFLIP_OS_USER" -- /usr/sbin/pgbouncer -d -q "$dir/pgbouncer.ini" ||
    { tail -n 20 "$dir/pgbouncer.log" >&2; die "pgbouncer did not start"; }
  wait_for_port 127.0.0.1 "$p" 30 || { tail -n 20 "$dir/pgbouncer.log" >&2; die "pgbouncer is not listening"; }
  proxy_pid[pgbouncer]="$(<"$dir/pgbouncer.pid")"
  port[pgbouncer]=$p
}

start_pgflip pgflip-w1 1
start_pgflip pgflip-w2 2
start_pgbouncer
targets=(direct pgflip-w1 pgflip-w2 pgbouncer)
((tls)) && targets+=(direct+tls pgflip-w1+tls pgflip-w2+tls pgbouncer+tls)
log "targets: direct :${port[direct]}, pgflip-w1 :${port[pgflip-w1]}, pgflip-w2 :${port[pgflip-w2]}, pgbouncer :${port[pgbouncer]}"

# CPU ticks (utime + stime, all threads) of a process.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
clk_tck="$(getconf CLK_TCK)"

declare -A workload=([S16]="-S -c 16 -j 2" [S64]="-S -c 64 -j 2" [P16]="-S -M prepared -c 16 -j 2")
results="$work/results.tsv"
printf 'round\tworkload\ttarget\ttps\ttxns\tcpu_s\n' > "$results"
for round in $(seq "$rounds"); do
  for w in S16 S64 P16; do
    for t in "${targets[@]}"; do
      # "NAME+tls": the same server, clients over TLS.
      base="${t%+tls}" sslmode=disable
      [[ "$t" == *+tls ]] && sslmode=require
      before=0
      [[ -n "${proxy_pid[$base]:-}" ]] && before="$(cpu_ticks "${proxy_pid[$base]}")"
      # shellcheck disable=SC2086 # workload options split on purpose
      out="$(PGSSLMODE="$sslmode" "$PG15_BIN/pgbench" -n ${workload[$w]} -T "$duration" -h 127.0.0.1 \
        -p "${port[$base]}" -U postgres bench 2> "$work/pgbench.err")" || { cat "$work/pgbench.err" >&2; die "pgbench failed against $t"; }
      cpu=""
      if [[ -n "${proxy_pid[$base]:-}" ]]; then
        cpu="$(awk -v a="$before" -v b="$(cpu_ticks "${proxy_pid[$base]}")" -v hz="$clk_tck" 'BEGIN { printf "%.3f", (b - a) / hz }')"
      fi
      tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<< "$out")"
      txns="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<< "$out")"
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$w" "$t" "$tps" "$txns" "$cpu" >> "$results"
      log "round $round $w $t: $tps tps${cpu:+, proxy cpu ${cpu}s}"
    done
  done
done

"$PGFLIP_PYTHON" - "$results" "$duration" "$rounds" <<'EOF'
import collections, csv, statistics, sys

path, duration, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
rows = list(csv.DictReader(open(path), delimiter="\t"))
tps = collections.defaultdict(list)
cost = collections.defaultdict(lambda: [0.0, 0])  # cpu seconds, transactions
for r in rows:
    key = (r["workload"], r["target"])
    tps[key].append(float(r["tps"]))
    if r["cpu_s"]:
        cost[key][0] += float(r["cpu_s"])
        cost[key][1] += int(r["txns"])
workloads = ["S16", "S64", "P16"]
names = {"S16": "-S -c 16", "S64": "-S -c 64", "P16": "-S -M prepared -c 16"}
mean = {k: statistics.mean(v) for k, v in tps.items()}
per10k = {k: c / n * 10000 for k, (c, n) in cost.items() if n}
# The pgflip configuration reported in the ratios: the one with the better geometric mean.
def geo(t):
    product = 1.0
    for w in workloads:
        product *= mean[(w, t)]
    return product ** (1 / len(workloads))
best = max(("pgflip-w1", "pgflip-w2"), key=geo)

print(f"\npgbench select-only, {duration} s per run, {rounds} round(s), mean TPS over rounds "
      f"(runs interleaved: direct, pgflip-w1, pgflip-w2, pgbouncer)\n")
head = (f"{'workload':<22}{'direct':>10}{'pgflip w1':>11}{'pgflip w2':>11}{'pgbouncer':>11}"
        f"{'pgflip/direct':>15}{'pgflip/pgbouncer':>18}")
print(head)
print("-" * len(head))
for w in workloads:
    d, f1, f2, b = (mean[(w, t)] for t in ("direct", "pgflip-w1", "pgflip-w2", "pgbouncer"))
    f = mean[(w, best)]
    print(f"{names[w]:<22}{d:>10.0f}{f1:>11.0f}{f2:>11.0f}{b:>11.0f}{f / d:>15.2f}{f / b:>18.2f}")
print(f"\nratios use pgflip with workers = {best[-1]} "
      f"(better geometric-mean TPS over the three workloads)")
print("\nproxy CPU seconds per 10,000 transactions (utime + stime from /proc/PID/stat):\n")
print(f"{'workload':<22}{'pgflip w1':>11}{'pgflip w2':>11}{'pgbouncer':>11}")
for w in workloads:
    print(f"{names[w]:<22}" + "".join(f"{per10k.get((w, t), float('nan')):>11.3f}"
                                       for t in ("pgflip-w1", "pgflip-w2", "pgbouncer")))
if ("S16", "pgbouncer+tls") in mean:
    tls_best = max(("pgflip-w1+tls", "pgflip-w2+tls"), key=geo)
    print(f"\nclients over TLS (sslmode=require; the proxies reach blue in plain TCP), mean TPS\n")
    head = (f"{'workload':<22}{'direct':>10}{'pgflip w1':>11}{'pgflip w2':>11}{'pgbouncer':>11}"
            f"{'pgflip/direct':>15}{'pgflip/pgb':>12}")
    print(head)
    print("-" * len(head))
    for w in workloads:
        d, f1, f2, b = (mean[(w, t + "+tls")] for t in ("direct", "pgflip-w1", "pgflip-w2",
                                                         "pgbouncer"))
        f = mean[(w, tls_best)]
        print(f"{names[w]:<22}{d:>10.0f}{f1:>11.0f}{f2:>11.0f}{b:>11.0f}{f / d:>15.2f}"
              f"{f / b:>12.2f}")
    ratio = (geo(tls_best) / geo("pgbouncer+tls"))
    print(f"\nTLS: pgflip (workers = {tls_best[-5]}) / PgBouncer, geometric mean over the three "
          f"workloads: {ratio:.2f} (goal >= 1.10)")
    print("\nproxy CPU seconds per 10,000 transactions, clients over TLS:\n")
    print(f"{'workload':<22}{'pgflip w1':>11}{'pgflip w2':>11}{'pgbouncer':>11}")
    for w in workloads:
        print(f"{names[w]:<22}" + "".join(f"{per10k.get((w, t + '+tls'), float('nan')):>11.3f}"
                                           for t in ("pgflip-w1", "pgflip-w2", "pgbouncer")))
spread = {k: (max(v) - min(v)) / statistics.mean(v) for k, v in tps.items() if len(v) > 1}
if spread:
    worst = max(spread, key=spread.get)
    print(f"\nlargest round-to-round spread: {spread[worst]:.0%} ({names[worst[0]]}, {worst[1]})")
EOF
