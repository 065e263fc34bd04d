#!/usr/bin/env bash
# What TLS and authentication cost, measured side by side in one run:
# `skiff bench produce` against three local clusters (`skiff dev`, 3 nodes),
# started afresh for every measurement, in rounds that alternate the modes:
#
#   plain   skiff dev                      plaintext everywhere
#   tls     skiff dev --secure --auth=false TLS on every port, mTLS between nodes, encrypted gossip
#   auth    skiff dev --secure             the same, plus --auth: the benchmark runs as user
#                                          bench (password over TLS) holding exactly the ACL
#                                          bindings it needs, not as a super user
#
# Prints one line per measurement and a table of medians with the ratios
# tls/plain and auth/tls (the issues' goals: TLS costs at most 15% of
# throughput at 100 B records, authentication and ACLs at most 5%).
#
#   scripts/bench-security.sh [--rounds N] [--records N] [--record-size B]
#                             [--partitions N] [--concurrency N] [--out FILE]
#
# Everything listens on 127.0.0.1 (ports 19400-19433); each cluster is
# stopped before the next starts. Needs go and jq.
set -euo pipefail

ROUNDS=3
RECORDS=500000
RECORD_SIZE=100
PARTITIONS=6
CONCURRENCY=4
OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --records) RECORDS=${2:?}; shift 2 ;;
    --record-size) RECORD_SIZE=${2:?}; shift 2 ;;
    --partitions) PARTITIONS=${2:?}; shift 2 ;;
    --concurrency) CONCURRENCY=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v jq >/dev/null || { echo "bench-security: needs jq" >&2; exit 2; }
GO=${GO:-go}
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go
work=$(mktemp -d)
BIN=$work/skiff
dev_pid=""
cleanup() {
  if [ -n "$dev_pid" ]; then
    kill -INT "$dev_pid" 2>/dev/null || true
    wait "$dev_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$BIN" ./cmd/skiff)

BASE=19400
BROKERS=127.0.0.1:$BASE,127.0.0.1:$((BASE + 10)),127.0.0.1:$((BASE + 20))

# start_dev MODE: starts a fresh 3-node cluster; its export lines (secure
# modes) are in $work/dev.out.
start_dev() {
  local args=(dev --base-port "$BASE" --dir "$work/data")
  case $1 in
    tls) args+=(--secure --auth=false) ;;
    auth) args+=(--secure) ;;
  esac
  rm -rf "$work/data"
  "$BIN" "${args[@]}" >"$work/dev.out" 2>"$work/dev.err" &
  dev_pid=$!
  local deadline=$((SECONDS + 90))
  until grep -q '^brokers:' "$work/dev.out" 2>/dev/null; do
    if ! kill -0 "$dev_pid" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
      echo "bench-security: skiff dev ($1) did not start: $(tail -5 "$work/dev.err")" >&2
      exit 1
    fi
    sleep 0.2
  done
}

stop_dev() {
  kill -INT "$dev_pid" 2>/dev/null || true
  wait "$dev_pid" 2>/dev/null || true
  dev_pid=""
}

# env_for MODE: the environment the benchmark client runs with.
env_for() {
  unset SKIFF_TLS_CA_FILE SKIFF_TLS_CERT_FILE SKIFF_TLS_KEY_FILE SKIFF_USER SKIFF_PASSWORD
  export SKIFF_BROKERS=$BROKERS
  [ "$1" = plain ] && return
  eval "$(grep '^export SKIFF_' "$work/dev.out")"
  [ "$1" = tls ] && return
  # As the admin (super user, certificate): a user with exactly what the
  # benchmark needs. Then as that user, by password, without a certificate.
  local topic=$2
  printf 'bench-password-1\n' | "$BIN" user create bench --password-stdin >/dev/null
  "$BIN" acl add --principal User:bench --topic "$topic" --operation create,write,describe >/dev/null
  unset SKIFF_TLS_CERT_FILE SKIFF_TLS_KEY_FILE
  export SKIFF_USER=bench SKIFF_PASSWORD=bench-password-1
}

results=$work/results
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  for mode in plain tls auth; do
    topic=bench-$mode-$round
    start_dev "$mode"
    (
      env_for "$mode" "$topic"
      "$BIN" bench produce --topic "$topic" --records "$RECORDS" --record-size "$RECORD_SIZE" \
        --partitions "$PARTITIONS" --replication 3 --concurrency "$CONCURRENCY" -o json
    ) >"$work/bench.json" 2>"$work/bench.err" || {
      echo "bench-security: bench produce ($mode) failed: $(tail -5 "$work/bench.err")" >&2
      exit 1
    }
    stop_dev
    jq -c --arg mode "$mode" --argjson round "$round" \
      '{round: $round, mode: $mode, records_per_sec, mb_per_sec, latency_p50_ms, latency_p99_ms, errors}' \
      "$work/bench.json" | tee -a "$results"
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { jq -r --arg m "$1" "select(.mode == \$m) | .$2" "$results" | median; }
plain=$(med plain records_per_sec)
tls=$(med tls records_per_sec)
auth=$(med auth records_per_sec)
{
  echo
  echo "$ROUNDS rounds, $RECORDS records of $RECORD_SIZE B, $PARTITIONS partitions, RF 3, $CONCURRENCY producers; medians"
  printf '| mode | records/s | MB/s | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: | ---: |\n'
  for m in plain tls auth; do
    printf '| %s | %.0f | %.1f | %.1f | %.1f |\n' "$m" "$(med $m records_per_sec)" "$(med $m mb_per_sec)" \
      "$(med $m latency_p50_ms)" "$(med $m latency_p99_ms)"
  done
  awk -v p="$plain" -v t="$tls" -v a="$auth" 'BEGIN {
    printf "tls/plain = %.3f (TLS costs %.1f%%; goal <= 15%%)\n", t / p, (1 - t / p) * 100
    printf "auth/tls  = %.3f (authentication and ACLs cost %.1f%%; goal <= 5%%)\n", a / t, (1 - a / t) * 100
  }'
} | tee "${OUT:-/dev/null}"
