#!/usr/bin/env bash
# Produce throughput, server CPU and memory of a 3-node Skiff cluster next to
# a 3-node NATS JetStream cluster (R3, file storage), on this machine, in one
# run: the anchor of issue 15's before/after table.
#
#   scripts/bench-vs-jetstream.sh [--skiff [LABEL=]BIN ...] [--nats-server BIN] [--nats BIN]
#                                 [--records-100 N] [--records-1k N]
#                                 [--partitions "1 6"] [--no-jetstream] [--idle]
#                                 [--share N]
#
# Every case starts fresh servers in a temporary directory (loopback ports
# 196xx/197xx; SKIFF_BENCH_PORT_PREFIX=NNN moves Skiff's to NNNxx, so two
# runs can share a machine), runs one benchmark client, and prints one table
# row:
#
#   system  record  parts  records/s  MB/s  CPU-s/1M  peakRSS MB (each node)
#
# records/s and MB/s are what the benchmark client reports; CPU-s/1M is the
# user+system CPU of the three server processes (from /proc/PID/stat, taken
# just before and after the client ran) divided by millions of records; peak
# RSS is each server's VmHWM after the run. --idle instead starts Skiff,
# creates a topic of 100 partitions (RF 3), waits 30s, and prints each node's
# RSS and the CPU the three servers used over the last 20 of those seconds
# (in cores).
#
# --share N instead measures work queues (issue 14): N records of 100 B
# (1,000 keys, 6 partitions, RF 3) are produced, then 3 members take and
# acknowledge every one. Skiff: `skiff bench share --members 3 --keys 1000`
# with the share group key-ordered (its default: one record of a key in
# flight at a time) and unordered. JetStream: an R3 file stream filled with
# `nats bench js pub async`, then `nats bench js consume --acks=explicit
# --clients 3` on a durable consumer, once with the servers' default sync
# interval and once with `sync_interval: always` (an fsync per write, as
# Skiff's durability=fsync). records/s counts the consuming phase only.
#
# --skiff may be given several times (e.g. --skiff before=/tmp/skiff-main
# --skiff after=bin/skiff): every case then runs each binary in turn, one
# right after the other, so a before/after table shares the machine's
# conditions of the moment (another job's load shifts both columns alike).
#
# Skiff: `skiff server` x3 (--bootstrap-expect 3), `skiff bench produce`
# (4 producers, durability fsync, the topic created by the bench with RF 3).
# JetStream: nats-server x3 (cluster routes, -js), `nats bench js pub` with
# R3 file storage, async publishing (batch 100) and 4 clients.
#
# Install the JetStream anchor once, outside this module:
#   GOBIN=$HOME/bin go install github.com/nats-io/nats-server/v2@v2.15.2
#   GOBIN=$HOME/bin go install github.com/nats-io/natscli/nats@v0.5.0
# The skiff binary defaults to one built from this tree into a temp dir.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SP=${SKIFF_BENCH_PORT_PREFIX:-196} # Skiff's ports are ${SP}xx
SKIFFS=()
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || true)}
NATS=${NATS:-$(command -v nats || true)}
REC100=1000000
REC1K=300000
PARTS="1 6"
JETSTREAM=1
IDLE=0
SHARE=0
while [ $# -gt 0 ]; do
  case $1 in
    --skiff) SKIFFS+=("$2"); shift 2 ;;
    --nats-server) NATS_SERVER=$2; shift 2 ;;
    --nats) NATS=$2; shift 2 ;;
    --records-100) REC100=$2; shift 2 ;;
    --records-1k) REC1K=$2; shift 2 ;;
    --partitions) PARTS=$2; shift 2 ;;
    --no-jetstream) JETSTREAM=0; shift ;;
    --idle) IDLE=1; shift ;;
    --share) SHARE=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/skiff-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ ${#SKIFFS[@]} -eq 0 ]; then
  (cd "$ROOT" && go build -o "$WORK/skiff" ./cmd/skiff)
  SKIFFS=("skiff=$WORK/skiff")
fi
# use_skiff LABEL=BIN (or BIN) sets SKIFF and LABEL.
use_skiff() {
  case $1 in
    *=*) LABEL=${1%%=*}; SKIFF=${1#*=} ;;
    *) LABEL=skiff; SKIFF=$1 ;;
  esac
}
use_skiff "${SKIFFS[0]}"

TICKS=$(getconf CLK_TCK)
cpu_ticks() { # total utime+stime of the given pids, in clock ticks
  local t=0 p f
  for p in "$@"; do
    # fields after the command name (which may hold spaces): 14 utime, 15 stime
    f=$(sed 's/^.*) //' "/proc/$p/stat")
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo "$t"
}
hwm_mb() { awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }
rss_mb() { awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }

wait_http() { # wait_http URL SECS
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    [ $SECONDS -lt "$deadline" ] || { echo "timeout waiting for $1" >&2; return 1; }
    sleep 0.2
  done
}

start_skiff() {
  SERVERS=()
  local i
  # Another run on these ports would answer our readiness checks and take
  # our topics: refuse to share them.
  for i in 1 2 3; do
    if curl -fsS -o /dev/null "http://127.0.0.1:${SP}${i}3/readyz" 2>/dev/null; then
      echo "port ${SP}${i}3 already serves a Skiff node; set SKIFF_BENCH_PORT_PREFIX" >&2
      exit 1
    fi
  done
  for i in 1 2 3; do
    mkdir -p "$WORK/skiff-$i"
    "$SKIFF" server --id "n$i" --data-dir "$WORK/skiff-$i" --bootstrap-expect 3 \
      --grpc-addr "127.0.0.1:${SP}${i}0" --raft-addr "127.0.0.1:${SP}${i}1" \
      --gossip-addr "127.0.0.1:${SP}${i}2" --http-addr "127.0.0.1:${SP}${i}3" \
      --join "127.0.0.1:${SP}12,127.0.0.1:${SP}22,127.0.0.1:${SP}32" --log-level warn \
      >"$WORK/skiff-$i.log" 2>&1 &
    SERVERS+=($!)
    PIDS+=($!)
  done
  for i in 1 2 3; do wait_http "http://127.0.0.1:${SP}${i}3/readyz" 60; done
}

start_nats() { # start_nats [always]: always sets sync_interval: always
  SERVERS=()
  local i conf=()
  if [ "${1:-}" = always ]; then
    printf 'jetstream { sync_interval: always }\n' >"$WORK/nats-always.conf"
    conf=(-c "$WORK/nats-always.conf")
  fi
  for i in 1 2 3; do
    mkdir -p "$WORK/nats-$i"
    "$NATS_SERVER" "${conf[@]}" -n "n$i" -p "197${i}0" -cluster "nats://127.0.0.1:197${i}1" -cluster_name bench \
      -routes "nats://127.0.0.1:19711,nats://127.0.0.1:19721,nats://127.0.0.1:19731" \
      -js -sd "$WORK/nats-$i" -m "197${i}3" >"$WORK/nats-$i.log" 2>&1 &
    SERVERS+=($!)
    PIDS+=($!)
  done
  for i in 1 2 3; do wait_http "http://127.0.0.1:197${i}3/healthz?js-enabled-only=true" 60; done
}

stop_servers() {
  local p
  for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVERS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"/skiff-* "$WORK"/nats-*
}

row() { # row SYSTEM SIZE PARTS RECORDS RECS_PER_S MB_PER_S TICKS
  local cpu_s per_m hwm="" p
  cpu_s=$(awk -v t="$7" -v hz="$TICKS" 'BEGIN { printf "%.1f", t / hz }')
  per_m=$(awk -v t="$7" -v hz="$TICKS" -v n="$4" 'BEGIN { printf "%.1f", t / hz / (n / 1e6) }')
  for p in "${SERVERS[@]}"; do hwm="$hwm$(hwm_mb "$p") "; done
  printf '%-24s %5s %5s %10s %7s %9s %s(CPU %ss)\n' "$1" "$2" "$3" "$5" "$6" "$per_m" "$hwm" "$cpu_s"
}

skiff_case() { # skiff_case SIZE PARTS RECORDS
  start_skiff
  local t0 t1 out
  t0=$(cpu_ticks "${SERVERS[@]}")
  out=$("$SKIFF" bench produce --brokers 127.0.0.1:${SP}10,127.0.0.1:${SP}20,127.0.0.1:${SP}30 \
    --topic "bench-$1-$2" --partitions "$2" --replication 3 --record-size "$1" --records "$3" \
    --concurrency 4 2>&1 | tr '\r' '\n' | grep '^produce:' | tail -1)
  t1=$(cpu_ticks "${SERVERS[@]}")
  [ -n "$out" ] || { echo "skiff bench produced no result; logs in $WORK" >&2; tail -5 "$WORK"/skiff-1.log >&2; exit 1; }
  local rps mbs
  rps=$(sed -E 's/.* ([0-9]+) records\/s.*/\1/' <<<"$out")
  mbs=$(sed -E 's/.*, ([0-9.]+) MB\/s.*/\1/' <<<"$out")
  row "$LABEL" "$1" "$2" "$3" "$rps" "$mbs" $((t1 - t0))
  stop_servers
}

nats_case() { # nats_case SIZE RECORDS
  start_nats
  local t0 t1 out
  # The stream can only be created once the JetStream meta group has a
  # leader, which /healthz does not wait for.
  local deadline=$((SECONDS + 60))
  until "$NATS" --server nats://127.0.0.1:19710 stream add "bench$1" --subjects "bench$1" \
    --replicas 3 --storage file --max-bytes 8GB --defaults >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "JetStream stream could not be created" >&2; exit 1; }
    sleep 1
  done
  t0=$(cpu_ticks "${SERVERS[@]}")
  out=$("$NATS" --server nats://127.0.0.1:19710,nats://127.0.0.1:19720,nats://127.0.0.1:19730 \
    bench js pub async "bench$1" --stream "bench$1" \
    --size "$1" --msgs "$2" --clients 4 --batch 100 --no-progress 2>&1)
  t1=$(cpu_ticks "${SERVERS[@]}")
  local line rps mbs
  # The aggregate of all clients; the "[N] ... msgs/sec" lines above it
  # are one client's each.
  line=$(grep -E 'aggregated stats' <<<"$out" | tail -1 || true)
  [ -n "$line" ] || { echo "nats bench output not understood:" >&2; echo "$out" >&2; exit 1; }
  rps=$(sed -E 's/.* ([0-9,]+) msgs\/sec.*/\1/' <<<"$line" | tr -d ,)
  mbs=$(sed -E 's/.* ([0-9.]+) ([KMG]i?B)\/sec.*/\1 \2/' <<<"$line")
  row jetstream "$1" 1 "$2" "$rps" "$mbs" $((t1 - t0))
  stop_servers
}

share_skiff_case() { # share_skiff_case ORDERED RECORDS
  start_skiff
  local t0 t1 out rps lat
  t0=$(cpu_ticks "${SERVERS[@]}")
  out=$("$SKIFF" bench share --brokers 127.0.0.1:${SP}10,127.0.0.1:${SP}20,127.0.0.1:${SP}30 --topic benchq \
    --partitions 6 --replication 3 --record-size 100 --records "$2" --keys 1000 --members 3 \
    --key-ordered="$1" -o json 2>/dev/null | tail -1)
  t1=$(cpu_ticks "${SERVERS[@]}")
  rps=$(jq -r '.records_per_sec | floor' <<<"$out" 2>/dev/null || true)
  [ -n "$rps" ] && [ "$rps" != null ] || { echo "skiff bench share produced no result: $out; logs in $WORK" >&2; exit 1; }
  lat=$(jq -r '"p50 \(.latency_p50_ms)ms p99 \(.latency_p99_ms)ms, \(.redeliveries) redeliveries, \(.duplicates) duplicates"' <<<"$out")
  local label=key-ordered
  [ "$1" = true ] || label=unordered
  row "$LABEL $label" 100 6 "$2" "$rps" - $((t1 - t0))
  echo "             ($lat)"
  stop_servers
}

share_nats_case() { # share_nats_case default|always RECORDS
  start_nats "$1"
  local t0 t1 out line rps deadline=$((SECONDS + 60))
  local urls=nats://127.0.0.1:19710,nats://127.0.0.1:19720,nats://127.0.0.1:19730
  until "$NATS" --server nats://127.0.0.1:19710 stream add benchq --subjects benchq \
    --replicas 3 --storage file --max-bytes 8GB --defaults >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "JetStream stream could not be created" >&2; exit 1; }
    sleep 1
  done
  "$NATS" --server "$urls" bench js pub async benchq --stream benchq --size 100 --msgs "$2" \
    --clients 4 --batch 100 --no-progress >/dev/null 2>&1
  t0=$(cpu_ticks "${SERVERS[@]}")
  out=$("$NATS" --server "$urls" bench js consume --stream benchq --acks=explicit --clients 3 \
    --msgs "$2" --no-progress 2>&1)
  t1=$(cpu_ticks "${SERVERS[@]}")
  line=$(grep -E 'aggregated stats' <<<"$out" | tail -1 || true)
  [ -n "$line" ] || { echo "nats bench output not understood:" >&2; echo "$out" >&2; exit 1; }
  rps=$(sed -E 's/.* ([0-9,]+) msgs\/sec.*/\1/' <<<"$line" | tr -d ,)
  row "jetstream sync-$1" 100 1 "$2" "$rps" - $((t1 - t0))
  echo "             ($(sed -E 's/^[[:space:]]+//' <<<"$line"))"
  stop_servers
}

if [ "$SHARE" -gt 0 ]; then
  command -v jq >/dev/null || { echo "--share needs jq" >&2; exit 1; }
  printf '%-24s %5s %5s %10s %7s %9s %s\n' system record parts records/s MB/s CPU-s/1M "peak RSS MB per node"
  for s in "${SKIFFS[@]}"; do
    use_skiff "$s"
    share_skiff_case true "$SHARE"
    share_skiff_case false "$SHARE"
  done
  if [ "$JETSTREAM" = 1 ]; then
    [ -x "$NATS_SERVER" ] && [ -x "$NATS" ] || { echo "nats-server and nats not found (see --help)" >&2; exit 1; }
    share_nats_case default "$SHARE"
    share_nats_case always "$SHARE"
  fi
  exit 0
fi

if [ "$IDLE" = 1 ]; then
  for s in "${SKIFFS[@]}"; do
    use_skiff "$s"
    start_skiff
    "$SKIFF" topic create idle --brokers 127.0.0.1:${SP}10 --partitions 100 --replication 3 >/dev/null
    # Let elections and replica start-up settle before idle CPU is counted.
    sleep 10
    t0=$(cpu_ticks "${SERVERS[@]}")
    sleep 20
    t1=$(cpu_ticks "${SERVERS[@]}")
    printf '%s idle, 100 partitions RF 3, RSS MB per node: ' "$LABEL"
    for p in "${SERVERS[@]}"; do printf '%s ' "$(rss_mb "$p")"; done
    printf '; idle CPU (3 nodes, last 20 s): %s cores\n' \
      "$(awk -v t=$((t1 - t0)) -v hz="$TICKS" 'BEGIN { printf "%.2f", t / hz / 20 }')"
    stop_servers
  done
  exit 0
fi

printf '%-24s %5s %5s %10s %7s %9s %s\n' system record parts records/s MB/s CPU-s/1M "peak RSS MB per node"
for parts in $PARTS; do
  for s in "${SKIFFS[@]}"; do use_skiff "$s"; skiff_case 100 "$parts" "$REC100"; done
  for s in "${SKIFFS[@]}"; do use_skiff "$s"; skiff_case 1024 "$parts" "$REC1K"; done
done
if [ "$JETSTREAM" = 1 ]; then
  [ -x "$NATS_SERVER" ] && [ -x "$NATS" ] || { echo "nats-server and nats not found (see --help)" >&2; exit 1; }
  nats_case 100 "$REC100"
  nats_case 1024 "$REC1K"
fi
