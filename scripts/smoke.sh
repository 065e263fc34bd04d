#!/usr/bin/env bash
# End-to-end check of the container path with one fault:
#
#   up -> every node healthy, /v1/cluster lists all nodes alive and a
#   controller -> docker kill the controller -> a new controller (bounded) ->
#   start the old one -> every node healthy and alive again -> down.
#
#   scripts/smoke.sh [--nodes 3|5] [--secure] [--no-build] [--keep]
#
# Exits non-zero on any failure; the cluster is always removed on exit
# (--keep or SKIFF_KEEP=1 leaves it running for a look). Prints timings.
set -euo pipefail
# shellcheck source=scripts/faults.sh
. "$(dirname "$0")/faults.sh"

NODES=3
UP_ARGS=()
KEEP=${SKIFF_KEEP:-0}
FAILOVER_TIMEOUT=${SKIFF_FAILOVER_TIMEOUT:-30}
RECOVER_TIMEOUT=${SKIFF_RECOVER_TIMEOUT:-90}
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES=${2:?}; shift 2 ;;
    --no-build) UP_ARGS+=(--no-build); shift ;;
    --secure) UP_ARGS+=(--secure); shift ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--nodes 3|5] [--secure] [--no-build] [--keep]" >&2; exit 2 ;;
  esac
done
export SKIFF_NODES=$NODES
CLUSTER="$SKIFF_ROOT/scripts/cluster.sh"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ]; then
    skiff_log "FAILED (exit $rc); cluster state and recent logs:"
    "$CLUSTER" status >&2 || true
    SKIFF_LOG_TAIL=30 "$CLUSTER" logs >&2 || true
  fi
  if [ "$KEEP" = 1 ]; then
    skiff_log "leaving the cluster up (--keep); remove it with: $CLUSTER down"
  else
    fault_heal_all >/dev/null 2>&1 || true
    "$CLUSTER" down >/dev/null 2>&1 || skiff_log "cluster down failed"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# new_controller OLD: the survivors agree on a controller other than OLD.
new_controller() {
  local c
  c=$(fault_leader_of_controller) && [ -n "$c" ] && [ "$c" != "$1" ]
}

skiff_need jq
skiff_need curl

t0=$(skiff_now_ms)
"$CLUSTER" up --nodes "$NODES" "${UP_ARGS[@]}"
up_ms=$(($(skiff_now_ms) - t0))

skiff_log "check: $NODES nodes healthy, all alive, a controller"
skiff_wait_for 10 "a formed cluster" skiff_cluster_ok "$NODES" >/dev/null
old=$(fault_leader_of_controller)
[ -n "$old" ] || skiff_die "no controller reported"
skiff_log "controller is $old"

t_kill=$(skiff_now_ms)
fault_kill "$old"
failover_ms=$(skiff_wait_since "$t_kill" "$FAILOVER_TIMEOUT" "a new controller after killing $old" new_controller "$old")
new=$(fault_leader_of_controller)
skiff_log "new controller $new after ${failover_ms}ms"

survivor=$(skiff_nodes | grep -vx "$old" | head -1)
detect_ms=$(skiff_wait_since "$t_kill" 30 "$survivor to see $old dead" skiff_sees_not_alive "$survivor" "$old")
skiff_log "$survivor sees $old dead ${detect_ms}ms after the kill"

# docker kill counts as a manual stop: the unless-stopped policy must not
# have brought it back by itself.
state=$(docker inspect -f '{{.State.Status}}' "$old")
[ "$state" = exited ] || skiff_die "$old is $state after docker kill, want exited (restart policy?)"

fault_start "$old"
recover_ms=$(skiff_wait_for "$RECOVER_TIMEOUT" "all $NODES nodes healthy and alive after restarting $old" skiff_cluster_ok "$NODES")
skiff_log "$old back, cluster whole again ${recover_ms}ms after start"

echo "smoke OK$(skiff_secure && echo " (secure)"): up ${up_ms}ms$(printf '%s\n' "${UP_ARGS[@]}" | grep -qx -- --no-build || echo " (incl. build)"), controller failover ${failover_ms}ms ($old -> $new), dead detected ${detect_ms}ms, rejoin ${recover_ms}ms"
