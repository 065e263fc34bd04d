#!/usr/bin/env bash
# Clients inside and outside the compose network at once (named listeners).
#
#   scripts/listeners-check.sh [--keep]
#
# Starts the compose cluster with the demo applications (cluster.sh up
# --demo), then at the same time:
#   - a container on the compose network (bootstrapping from skiff-1:9400,
#     ...) creates a topic and produces 1,000 keyed records;
#   - the host produces 1,000 keyed records to the same topic through
#     127.0.0.1:9400, ...;
# then both read the topic back from every partition and must each see all
# 2,000 records, once. A client handed an address of the other listener
# would time out on it (a container cannot reach 127.0.0.1:9410 of the
# host, the host cannot resolve skiff-2). Last, the demo producer's and
# consumer's logs must show orders flowing. The cluster is removed at the
# end unless --keep.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"

KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
BIN=$SKIFF_ROOT/bin/skiff
TOPIC=listeners-check
INSIDE=skiff-1:9400,skiff-2:9400,skiff-3:9400
work=$(mktemp -d)

cleanup() {
  local rc=$?
  [ "$KEEP" -eq 1 ] || "$SKIFF_ROOT/scripts/cluster.sh" down >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

fail() { skiff_log "FAIL: $*"; exit 1; }

SKIFF_SECURE=0 "$SKIFF_ROOT/scripts/cluster.sh" up --demo >"$work/up.out"
OUTSIDE=$(sed -n 's/^brokers: //p' "$work/up.out")
[ -n "$OUTSIDE" ] || fail "cluster.sh up printed no brokers line"
skiff_log "inside the network: $INSIDE; on the host: $OUTSIDE"

inside() { docker run --rm -i --network skiff --read-only "$SKIFF_IMAGE" "$@" --brokers "$INSIDE" --timeout 60s; }

inside topic create "$TOPIC" --partitions 3 --replication 3 >/dev/null

seq 1 1000 | awk '{ printf "inside-%d:from inside %d\n", $1 % 50, $1 }' >"$work/inside.in"
seq 1 1000 | awk '{ printf "outside-%d:from outside %d\n", $1 % 50, $1 }' >"$work/outside.in"
inside produce "$TOPIC" --key-delim : <"$work/inside.in" >"$work/inside.produce" 2>&1 &
in_pid=$!
"$BIN" produce "$TOPIC" --key-delim : --brokers "$OUTSIDE" --timeout 60s <"$work/outside.in" >"$work/outside.produce" 2>&1 ||
  fail "host produce: $(cat "$work/outside.produce")"
wait "$in_pid" || fail "container produce: $(cat "$work/inside.produce")"

# Both sides read at the same time, as they produced.
inside consume "$TOPIC" --from earliest -o json >"$work/inside.read" 2>"$work/inside.err" &
in_pid=$!
"$BIN" consume "$TOPIC" --from earliest -o json --brokers "$OUTSIDE" --timeout 60s >"$work/outside.read" 2>"$work/outside.err" ||
  fail "host consume: $(cat "$work/outside.err")"
wait "$in_pid" || fail "container consume: $(cat "$work/inside.err")"
for side in inside outside; do
  total=$(jq -r .value "$work/$side.read" | wc -l)
  distinct=$(jq -r .value "$work/$side.read" | sort -u | wc -l)
  partitions=$(jq -r .partition "$work/$side.read" | sort -u | wc -l)
  skiff_log "$side read $total records ($distinct distinct) from $partitions partitions"
  [ "$total" -eq 2000 ] && [ "$distinct" -eq 2000 ] && [ "$partitions" -eq 3 ] ||
    fail "$side read $total records, $distinct distinct, from $partitions partitions: want 2000, 2000, 3"
  # Per key, records come back in the order each side produced them.
  for from in inside outside; do
    jq -r 'select(.key | startswith("'"$from"'-")) | .key + " " + .value' "$work/$side.read" |
      awk '{ n = $NF + 0; if ($1 in last && n <= last[$1]) { print "key " $1 ": " n " after " last[$1]; bad = 1 } last[$1] = n } END { exit bad }' ||
      fail "$side read the $from records of a key out of order"
  done
done

skiff_wait_for 60 "the demo applications to show orders flowing" sh -c \
  "docker logs skiff-demo-producer 2>&1 | grep -q -- '-> demo.orders/' &&
   docker logs skiff-demo-consumer 2>&1 | grep -q '\"topic\":\"demo.orders\"'" >/dev/null ||
  fail "demo logs: producer: $(docker logs --tail 5 skiff-demo-producer 2>&1); consumer: $(docker logs --tail 5 skiff-demo-consumer 2>&1)"
skiff_log "PASS: clients inside and outside the compose network, 2,000 records each way, demo flowing"
