#!/usr/bin/env bash
# Throughput benchmark: pgbench select-only through pgflip vs direct vs PgBouncer (session mode),
# interleaved in one run on the same blue server; prints TPS, ratios and each proxy's CPU cost.
#
#   bench/throughput.sh [--duration SECONDS] [--rounds N] [--scale N] [--paths tcp,unix]
#                       [--no-tls] [--keep]
#   PGFLIP_BUILD_DIR=DIR bench/throughput.sh     (default build dir: build/)
#
# Workloads (each against every target, in every round):
#   S16   pgbench -S -c 16 -j 2          S64   pgbench -S -c 64 -j 2
#   P16   pgbench -S -M prepared -c 16 -j 2
# Targets: direct TCP to blue; and for each backend path (how the proxies reach blue: TCP to
# 127.0.0.1, or blue's Unix socket as a proxy on the database host would), pgflip with
# workers = 1 and workers = 2, PgBouncer (Debian's) and null_relay (bench/null_relay.cpp: a
# relay that parses nothing, the cheapest any proxy could be; it shows what relaying through
# user space costs here). Clients always reach the proxies over TCP.
# Unless --no-tls, direct, pgflip and PgBouncer on the TCP path are run again with clients over
# TLS (sslmode=require, the test CA's certificate); the proxies reach blue in plain TCP either
# way, so those runs measure the client side's TLS.
# All run on this machine: the proxy's CPU competes with PostgreSQL and pgbench, as it would on
# a shared host. Compare the ratios inside one run, never absolute numbers across runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

duration=10 rounds=2 scale=10 keep=0 tls=1 paths=tcp,unix
while (($#)); do
  case "$1" in
    --duration) duration="${2:?}"; shift ;;
    --rounds) rounds="${2:?}"; shift ;;
    --scale) scale="${2:?}"; shift ;;
    --keep) keep=1 ;;
    --no-tls) tls=0 ;;
    --paths) paths="${2:?}"; shift ;;
    -h | --help) print_header_comment "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
for n in "$duration" "$rounds" "$scale"; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "options take positive integers"; done

IFS=, read -r -a backend_paths <<< "$paths"
for path in "${backend_paths[@]}"; do
  [[ "$path" == tcp || "$path" == unix ]] || die "--paths takes tcp, unix or tcp,unix"
done

"$PGFLIP_ROOT/scripts/install-deps" > /dev/null
build="${PGFLIP_BUILD_DIR:-$PGFLIP_ROOT/build}"
log "building pgflip ($build, RelWithDebInfo)"
cmake -S "$PGFLIP_ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPGFLIP_WERROR=ON > /dev/null || die "cmake configure failed"
cmake --build "$build" -j 2 --target pgflip null_relay > /dev/null || die "build failed"
pgflip="$build/bin/pgflip"
null_relay="$build/bin/null_relay"

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

# blue_host PATH: blue as the proxies reach it (TCP, or its Unix socket directory).
blue_host() { if [[ "$1" == unix ]]; then echo "$BLUE_SOCKET_DIR"; else echo 127.0.0.1; fi; }

start_pgflip() { # start_pgflip NAME WORKERS PATH
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
host = "$(blue_host "$3")"
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

start_pgbouncer() { # start_pgbouncer NAME PATH: Debian's PgBouncer in session mode
  local name="$1" p dir="$work/$1"
  p="$(free_port)"
  mkdir -p "$dir"
  echo '"postgres" ""' > "$dir/userlist.txt"
  cp "$TLS_SERVER_CERT" "$dir/server.crt"
  cp "$TLS_SERVER_KEY" "$dir/server.key"
  cat > "$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$(blue_host "$2") port=$BLUE_PORT

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
  proxy_pid[$name]="$(<"$dir/pgbouncer.pid")"
  port[$name]=$p
}

start_null_relay() { # start_null_relay NAME PATH
  local name="$1" p target="$BLUE_PORT"
  [[ "$2" == unix ]] && target="$BLUE_SOCKET_DIR/.s.PGSQL.$BLUE_PORT"
  p="$(free_port)"
  setsid "$null_relay" "$p" "$target" > "$work/$name.log" 2>&1 &
  proxy_pid[$name]=$!
  port[$name]=$p
  wait_for_port 127.0.0.1 "$p" 30 || { cat "$work/$name.log" >&2; die "$name did not start"; }
}

targets=(direct)
for path in "${backend_paths[@]}"; do
  start_pgflip "pgflip-w1@$path" 1 "$path"
  start_pgflip "pgflip-w2@$path" 2 "$path"
  start_pgbouncer "pgbouncer@$path" "$path"
  start_null_relay "relay@$path" "$path"
  targets+=("relay@$path" "pgflip-w1@$path" "pgflip-w2@$path" "pgbouncer@$path")
done
if ((tls)) && [[ -n "${port[pgbouncer@tcp]:-}" ]]; then
  targets+=(direct+tls pgflip-w1@tcp+tls pgflip-w2@tcp+tls pgbouncer@tcp+tls)
fi
for t in "${targets[@]}"; do [[ "$t" == *+tls ]] || log "target $t on port ${port[$t]}"; done

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
targets = {t for _, t in mean}


def geo(t):
    product = 1.0
    for w in workloads:
        product *= mean[(w, t)]
    return product ** (1 / len(workloads))


def best_pgflip(suffix):
    """The pgflip configuration reported in the ratios: the better geometric-mean TPS."""
    return max((f"pgflip-w1{suffix}", f"pgflip-w2{suffix}"), key=geo)


def cpu_table(suffix):
    print("\nproxy CPU seconds per 10,000 transactions (utime + stime from /proc/PID/stat):\n")
    columns = [c for c in ("relay", "pgflip-w1", "pgflip-w2", "pgbouncer")
               if (workloads[0], c + suffix) in per10k]
    print(f"{'workload':<22}" + "".join(f"{c.replace('-', ' '):>11}" for c in columns))
    for w in workloads:
        print(f"{names[w]:<22}" + "".join(f"{per10k[(w, c + suffix)]:>11.3f}" for c in columns))


print(f"\npgbench select-only, {duration} s per run, {rounds} round(s), mean TPS over rounds; "
      f"runs interleaved, direct = pgbench to blue over TCP")
summary = []
for backend, label in (("tcp", "TCP to 127.0.0.1"), ("unix", "blue's Unix socket")):
    s = "@" + backend
    if "pgbouncer" + s not in targets:
        continue
    best = best_pgflip(s)
    print(f"\n== proxies reach blue over {label} ==\n")
    head = (f"{'workload':<22}{'direct':>9}{'relay':>9}{'pgflip w1':>11}{'pgflip w2':>11}"
            f"{'pgbouncer':>11}{'pgflip/direct':>15}{'pgflip/pgb':>12}{'relay/direct':>14}"
            f"{'relay/pgb':>11}")
    print(head)
    print("-" * len(head))
    for w in workloads:
        d = mean[(w, "direct")]
        r, f1, f2, b = (mean[(w, t + s)] for t in ("relay", "pgflip-w1", "pgflip-w2",
                                                     "pgbouncer"))
        f = mean[(w, best)]
        print(f"{names[w]:<22}{d:>9.0f}{r:>9.0f}{f1:>11.0f}{f2:>11.0f}{b:>11.0f}{f / d:>15.2f}"
              f"{f / b:>12.2f}{r / d:>14.2f}{r / b:>11.2f}")
    print(f"\nratios use pgflip with workers = {best[8]} (better geometric-mean TPS); "
          f"relay = bench/null_relay.cpp, which parses nothing")
    cpu_table(s)
    summary.append((label, geo(best) / geo("direct"), geo(best) / geo("pgbouncer" + s),
                    geo("relay" + s) / geo("direct"), geo("relay" + s) / geo("pgbouncer" + s)))
if ("S16", "pgbouncer@tcp+tls") in mean:
    best = best_pgflip("@tcp+tls")
    print("\n== clients over TLS (sslmode=require); the proxies reach blue in plain TCP ==\n")
    head = (f"{'workload':<22}{'direct':>9}{'pgflip w1':>11}{'pgflip w2':>11}{'pgbouncer':>11}"
            f"{'pgflip/direct':>15}{'pgflip/pgb':>12}")
    print(head)
    print("-" * len(head))
    for w in workloads:
        d = mean[(w, "direct+tls")]
        f1, f2, b = (mean[(w, t + "@tcp+tls")] for t in ("pgflip-w1", "pgflip-w2", "pgbouncer"))
        f = mean[(w, best)]
        print(f"{names[w]:<22}{d:>9.0f}{f1:>11.0f}{f2:>11.0f}{b:>11.0f}{f / d:>15.2f}"
              f"{f / b:>12.2f}")
    cpu_table("@tcp+tls")
    summary.append(("TCP, clients over TLS", geo(best) / geo("direct+tls"),
                    geo(best) / geo("pgbouncer@tcp+tls"), None, None))
print("\ngeometric means over the three workloads (goals: pgflip/direct >= 0.85, "
      "pgflip/pgbouncer >= 1.10):\n")
for label, fd, fb, rd, rb in summary:
    line = f"  {label:<24} pgflip/direct {fd:.2f}   pgflip/pgbouncer {fb:.2f}"
    if rd is not None:
        line += f"   relay/direct {rd:.2f}   relay/pgbouncer {rb:.2f}"
    print(line)
spread = {k: (max(v) - min(v)) / statistics.mean(v) for k, v in tps.items() if len(v) > 1}
if spread:
    worst = max(spread, key=spread.get)
    print(f"\nlargest round-to-round spread: {spread[worst]:.0%} ({names[worst[0]]}, {worst[1]})")
EOF
