#!/usr/bin/env bash
# The compose demo's loader (docker/compose.yaml), as scripts/demo on the host: pgbench -i through
# pgflip, replication blue -> green (pgflipctl over the shared admin socket), pgbench through
# pgflip with a live switchover to green half-way, then a report and the invariant check on green.
# Environment: PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE (pgflip), GREEN_HOST, PGFLIP_ADMIN_SOCKET,
# DEMO_DURATION (seconds, default 20), DEMO_SCALE (default 5).
set -euo pipefail

duration="${DEMO_DURATION:-20}" scale="${DEMO_SCALE:-5}"
bin=/usr/lib/postgresql/15/bin
work="$(mktemp -d)"
step() { printf '\n== %s\n' "$*"; }
die() {
  printf 'pgflip-demo: error: %s\n' "$*" >&2
  exit 1
}
ctl() { pgflipctl "$@"; }  # --socket from $PGFLIP_ADMIN_SOCKET

step "pgflip: $(ctl status | head -n 2 | tr '\n' ' ')"

step "pgbench -i -s $scale through pgflip ($PGHOST:$PGPORT)"
"$bin/pgbench" -i -s "$scale" -q

step "replication precheck, then init blue -> green with schema copy"
ctl replication precheck || true
ctl replication init --copy-schema

step "pgbench -c 8 -j 2 -T $duration -P 2 through pgflip; switchover to green after $((duration / 2)) s"
"$bin/pgbench" -c 8 -j 2 -T "$duration" -P 2 > "$work/pgbench.out" 2>&1 &
bench_pid=$!
sleep "$((duration / 2))"  # a demo, not a test: switch over in the middle of the run
ctl replication status
switch_rc=0
ctl switchover | tee "$work/switchover.out" || switch_rc=$?
bench_rc=0
wait "$bench_pid" || bench_rc=$?
cat "$work/pgbench.out"
((switch_rc == 0)) || die "switchover failed (exit $switch_rc)"
((bench_rc == 0)) || die "pgbench failed (exit $bench_rc)"

green=(-h "$GREEN_HOST" -p "${GREEN_PORT:-5432}")
read -r accounts history tellers branches count < <("$bin/psql" -X -At -F ' ' "${green[@]}" \
  -c "select (select sum(abalance) from pgbench_accounts),
    (select coalesce(sum(delta), 0) from pgbench_history), (select sum(tbalance) from pgbench_tellers),
    (select sum(bbalance) from pgbench_branches), (select count(*) from pgbench_history)")
processed="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.out")"
tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$work/pgbench.out")"
failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/pgbench.out")"
version="$("$bin/psql" -X -At -c 'show server_version')"

ok=1
[[ "$accounts" == "$history" && "$tellers" == "$history" && "$branches" == "$history" ]] || ok=0
[[ "$count" == "$processed" && "${failed:-0}" == 0 ]] || ok=0

step "summary"
printf '  %-38s %s\n' "TPS through pgflip:" "$tps" \
  "transactions committed:" "$processed (pgbench_history rows on green: $count)" \
  "failed transactions:" "${failed:-0}" \
  "sum(abalance) = sum(delta) on green:" "$accounts = $history ($([[ $ok == 1 ]] && echo ok || echo MISMATCH))" \
  "a new client through pgflip now sees:" "PostgreSQL $version"
grep -E '^(switchover|sessions|clients parked)' "$work/switchover.out" | sed 's/^/  /' || true
((ok)) || die "invariant check failed: a transaction was lost or applied twice"
echo "demo passed"
