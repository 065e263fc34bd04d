#!/usr/bin/env bash
# Checks that each fault of scripts/faults.sh has the effect it claims on a
# live 3-node compose cluster, and that healing undoes it:
#
#   stop/start, pause (controller), isolate, partition (controller | rest),
#   partition of one pair (the third node bridges gossip), loss, cut-clients,
#   delay (netem, or "unsupported" when the kernel lacks it), throttle.
#
#   scripts/faults-selftest.sh [--no-build] [--secure] [--keep] [--only NAME[,NAME..]]
#
# Every wait is bounded; the cluster and every fault are removed on exit.
# Prints one line per fault with what was observed and how long it took.
# Exits 1 when a fault had no effect or the cluster did not become whole by
# itself within SKIFF_RECOVER_TIMEOUT (60s) after the heal; such a check
# restarts the nodes involved and the run goes on to the next fault.
# Ports: SKIFF_PORT_PREFIX (see scripts/cluster.sh).
set -euo pipefail
# shellcheck source=scripts/faults.sh
. "$(dirname "$0")/faults.sh"

UP_ARGS=()
KEEP=${SKIFF_KEEP:-0}
ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) UP_ARGS+=(--no-build); shift ;;
    --secure) UP_ARGS+=(--secure); shift ;;
    --keep) KEEP=1; shift ;;
    --only) ONLY=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--no-build] [--secure] [--keep] [--only NAME,..]" >&2; exit 2 ;;
  esac
done
export SKIFF_NODES=3
CLUSTER="$SKIFF_ROOT/scripts/cluster.sh"
SKIFF_BIN="$SKIFF_ROOT/bin/skiff"
# Gossip declares a silent node dead after ~5-6s (LAN profile); allow margin.
DETECT_TIMEOUT=${SKIFF_DETECT_TIMEOUT:-20}
RECOVER_TIMEOUT=${SKIFF_RECOVER_TIMEOUT:-60}
RESULTS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ]; then
    skiff_log "FAILED (exit $rc)"
    fault_list >&2 || true
    "$CLUSTER" status >&2 || true
    SKIFF_LOG_TAIL=30 "$CLUSTER" logs >&2 || true
  fi
  if [ "$KEEP" = 1 ]; then
    skiff_log "leaving the cluster up (--keep)"
  else
    fault_heal_all >/dev/null 2>&1 || true
    "$CLUSTER" down >/dev/null 2>&1 || skiff_log "cluster down failed"
  fi
  printf '%s\n' "${RESULTS[@]}"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FAILED=0
result() { RESULTS+=("$(printf '%-12s %s' "$1" "$2")"); skiff_log "RESULT $1: $2"; }
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
since() { echo $(($(skiff_now_ms) - $1)); }
whole() { skiff_wait_for "$RECOVER_TIMEOUT" "the cluster whole again" skiff_cluster_ok 3; }

# healed NODE...: after a heal, set HEALED to how long the cluster took to
# be whole again. When it does not get there within RECOVER_TIMEOUT the check
# fails (but the run goes on): restart NODEs so the next check starts from a
# whole cluster, and say so in HEALED.
healed() {
  local ms n
  if ms=$(whole 2>/dev/null); then
    HEALED="${ms}ms"
    return 0
  fi
  FAILED=1
  for n in "$@"; do fault_restart "$n" >/dev/null 2>&1; done
  ms=$(whole) || skiff_die "cluster not whole even after restarting $*"
  HEALED="NEVER within ${RECOVER_TIMEOUT}s (FAIL; restarting ${*:-nothing} made it whole in ${ms}ms)"
}
non_controller() { skiff_nodes | grep -vx "$(fault_leader_of_controller)" | head -1; }
others_than() { skiff_nodes | grep -vx "$1" | paste -sd, -; }

# every_other_sees_not_alive NODE: all other nodes have NODE dead/left.
every_other_sees_not_alive() {
  local o
  for o in $(skiff_nodes | grep -vx "$1"); do
    { skiff_sees_not_alive "$o" "$1" && echo ok || echo no; } &
  done | { ! grep -qx no; }
}
# sees_alone NODE: NODE's gossip view has no other node alive.
sees_alone() { [ "$(skiff_alive_count "$1")" = 1 ]; }
# elected_other_than OLD: a node other than OLD reports itself controller
# (metrics: fast, so the election time is measured to within a poll).
elected_other_than() { skiff_meta_leaders | grep -qvx "$1"; }
# majority_controller_not OLD: the nodes other than OLD all name a controller
# that is not OLD in /v1/cluster (asked in parallel).
majority_controller_not() {
  local o
  for o in $(skiff_nodes | grep -vx "$1"); do
    { echo "$o $(skiff_controller_seen_by "$o" 2>/dev/null)"; } &
  done | awk -v old="$1" 'NF < 2 || $2 == old { bad = 1 } END { exit bad }'
}
# http_fails N NODE: how many of N requests to NODE's published /healthz fail.
http_fails() {
  local i fails=0
  for i in $(seq "$1"); do SKIFF_HTTP_TIMEOUT=0.5 skiff_http "$2" /healthz >/dev/null 2>&1 || fails=$((fails + 1)); done
  echo "$fails"
}
# netns_http NODE IP: from inside NODE's network namespace, GET IP:9403/healthz
# (https in secure mode; -k: this checks reachability, and the certificates
# name the nodes, not their compose addresses).
netns_http() {
  if skiff_secure; then
    _fault_ns "$1" curl -fsSk -m 1 "https://$2:9403/healthz" >/dev/null 2>&1
  else
    _fault_ns "$1" curl -fsS -m 1 "http://$2:9403/healthz" >/dev/null 2>&1
  fi
}

skiff_need jq
skiff_need curl
_fault_tools

"$CLUSTER" up "${UP_ARGS[@]}"
skiff_use_tls # host-side `skiff health` speaks the cluster's mode
skiff_wait_for 10 "a formed cluster" skiff_cluster_ok 3 >/dev/null

if want stop; then
  n=$(non_controller)
  t=$(skiff_now_ms)
  fault_stop "$n"
  stop_ms=$(since "$t")
  seen_ms=$(skiff_wait_since "$t" "$DETECT_TIMEOUT" "peers to see $n gone" every_other_sees_not_alive "$n")
  state=$(skiff_http "$(others_than "$n" | cut -d, -f1)" /v1/cluster | jq -r --arg n "$n" '.nodes[] | select(.id == $n) | .state')
  t=$(skiff_now_ms)
  fault_start "$n"
  healed; back=$HEALED
  result stop "$n: graceful stop took ${stop_ms}ms, peers saw it '$state' at ${seen_ms}ms; start -> whole: $back"
fi

if want pause; then
  c=$(fault_leader_of_controller)
  t=$(skiff_now_ms)
  fault_pause "$c"
  elect_ms=$(skiff_wait_since "$t" 30 "a controller other than the paused $c" elected_other_than "$c")
  agree_ms=$(skiff_wait_since "$t" 30 "the others to name a controller other than $c" majority_controller_not "$c")
  dead_ms=$(skiff_wait_since "$t" "$DETECT_TIMEOUT" "peers to see paused $c dead" every_other_sees_not_alive "$c")
  newc=$(skiff_controller_seen_by "$(others_than "$c" | cut -d, -f1)")
  fault_unpause "$c"
  healed "$c"; back=$HEALED
  result pause "controller $c paused: $newc elected after ${elect_ms}ms (all others agree at ${agree_ms}ms), $c dead after ${dead_ms}ms; unpause -> whole: $back"
fi

if want isolate; then
  n=$(non_controller)
  t=$(skiff_now_ms)
  fault_isolate "$n"
  dead_ms=$(skiff_wait_since "$t" "$DETECT_TIMEOUT" "peers to see isolated $n dead" every_other_sees_not_alive "$n")
  host_fails=$(http_fails 3 "$n")
  [ "$host_fails" -eq 3 ] || skiff_die "isolated $n still answers on its published port ($host_fails/3 failed)"
  fault_heal "$n"
  healed "$n"; back=$HEALED
  host_fails=$(http_fails 5 "$n")
  [ "$host_fails" -eq 0 ] || skiff_die "healed $n: $host_fails/5 requests to its published port failed"
  result isolate "$n: peers saw it dead after ${dead_ms}ms, its published ports dead too; heal -> whole: $back; published ports back"
fi

if want partition; then
  c=$(fault_leader_of_controller)
  rest=$(others_than "$c")
  t=$(skiff_now_ms)
  fault_partition "$c" "$rest"
  elect_ms=$(skiff_wait_since "$t" 30 "the majority {$rest} to elect a controller other than $c" elected_other_than "$c")
  agree_ms=$(skiff_wait_since "$t" 30 "the majority to name a controller other than $c" majority_controller_not "$c")
  dead_ms=$(skiff_wait_since "$t" "$DETECT_TIMEOUT" "the majority to see $c dead" every_other_sees_not_alive "$c")
  # Hold the partition until $c has given up on the others too (its HTTP
  # port still answers the host): both sides have then declared the other
  # dead, as after any partition longer than ~10s.
  alone_ms=$(skiff_wait_since "$t" "$DETECT_TIMEOUT" "$c to see itself alone" sees_alone "$c")
  drops=$(fault_drops "$c")
  newc=$(skiff_controller_seen_by "$(others_than "$c" | cut -d, -f1)")
  fault_heal_all
  healed "$c"; back=$HEALED
  result partition "{$c} | {$rest}: majority elected $newc after ${elect_ms}ms (all agree at ${agree_ms}ms), saw $c dead after ${dead_ms}ms, $c alone after ${alone_ms}ms ($drops packets dropped on $c); heal -> whole: $back"
fi

if want pair; then
  read -r a b third < <(skiff_nodes | paste -sd' ')
  ipb=$(_fault_ip "$b")
  ip3=$(_fault_ip "$third")
  netns_http "$a" "$ipb" || skiff_die "$a cannot reach $b before the partition"
  fault_partition "$a" "$b"
  if netns_http "$a" "$ipb"; then skiff_die "$a still reaches $b across the partition"; fi
  netns_http "$a" "$ip3" || skiff_die "$a cannot reach $third, which is outside the partition"
  # Past the failure detection time: memberlist's indirect probes through
  # the third node keep both alive.
  sleep 8
  alive=$(skiff_alive_count "$a" 2>/dev/null || echo "?")
  drops=$(fault_drops "$a")
  fault_heal_all
  netns_http "$a" "$ipb" || skiff_die "$a cannot reach $b after heal"
  healed "$a" "$b"; back=$HEALED
  result pair "$a | $b: direct link cut ($drops packets dropped on $a), $third reachable; after 8s $a sees $alive/3 alive (indirect probes via $third); heal -> whole: $back"
fi

if want loss; then
  n=$(non_controller)
  before=$(http_fails 20 "$n")
  fault_loss "$n" 50
  during=$(http_fails 20 "$n")
  drops=$(fault_drops "$n")
  fault_clear "$n"
  after=$(http_fails 20 "$n")
  [ "$during" -gt "$before" ] && [ "$drops" -gt 0 ] || skiff_die "loss 50% on $n had no visible effect ($before -> $during failures, $drops drops)"
  [ "$after" -eq 0 ] || skiff_die "after clearing loss on $n, $after/20 requests failed"
  healed "$n"; back=$HEALED
  result loss "$n 50%: failed host requests (0.5s timeout) $before/20 -> $during/20, $drops packets dropped; clear -> $after/20; whole: $back"
fi

if want cut-clients; then
  n=$(non_controller)
  addr=$(skiff_grpc_addr "$n")
  "$SKIFF_BIN" health --addr "$addr" --timeout 2s >/dev/null || skiff_die "$n not healthy from the host before cut-clients"
  fault_cut_clients "$n"
  if "$SKIFF_BIN" health --addr "$addr" --timeout 2s >/dev/null 2>&1; then skiff_die "cut-clients: $addr still answers"; fi
  sleep 5 # a few docker healthchecks (every 2s, over loopback)
  dh=$(skiff_health "$n")
  alive=$(skiff_alive_count "$n" 2>/dev/null || echo "?")
  fault_clear "$n"
  "$SKIFF_BIN" health --addr "$addr" --timeout 2s >/dev/null || skiff_die "$addr not answering after clear"
  [ "$dh" = healthy ] && [ "$alive" = 3 ] || skiff_die "cut-clients disturbed the cluster: docker health $dh, $alive/3 alive"
  result cut-clients "$n: host gRPC health fails, docker health stays '$dh', peers $alive/3 alive; clear -> host gRPC answers"
fi

if want delay; then
  n=$(non_controller)
  rc=0
  fault_delay "$n" 100 || rc=$?
  if [ "$rc" -eq "$FAULT_UNSUPPORTED" ]; then
    result delay "unsupported: kernel $(uname -r) has no sch_netem (tc netem refused); exit $FAULT_UNSUPPORTED as designed"
  elif [ "$rc" -eq 0 ]; then
    t=$(skiff_now_ms)
    SKIFF_HTTP_TIMEOUT=5 skiff_http "$n" /healthz >/dev/null
    ms=$(since "$t")
    fault_clear "$n"
    result delay "$n +100ms egress: one HTTP request took ${ms}ms"
  else
    skiff_die "delay failed (exit $rc)"
  fi
fi

if want throttle; then
  n=$(non_controller)
  fault_throttle "$n" 256
  q=$(fault_list | grep -c "$n: .* tbf $FAULT_QDISC_HANDLE") || true
  t=$(skiff_now_ms)
  SKIFF_HTTP_TIMEOUT=20 skiff_http "$n" /metrics >/dev/null
  ms=$(since "$t")
  fault_clear "$n"
  t=$(skiff_now_ms)
  skiff_http "$n" /metrics >/dev/null
  ms_after=$(since "$t")
  [ "$q" -ge 1 ] || skiff_die "throttle: no tbf qdisc on $n"
  result throttle "$n 256kbit: GET /metrics took ${ms}ms throttled, ${ms_after}ms after clear"
fi

left=$(fault_list)
[ -z "$left" ] || skiff_die "faults left behind: $left"
skiff_cluster_ok 3 || skiff_die "cluster not whole at the end"
if [ "$FAILED" -ne 0 ]; then
  result all "FAIL: some faults did not heal by themselves (see NEVER above)"
  exit 1
fi
result all "OK"
