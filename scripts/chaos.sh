#!/usr/bin/env bash
# Chaos scenarios against the compose cluster, end to end:
#
#   build image -> cluster up -> `skiff chaos run` (workload through steady,
#   fault and recovery phases, the scenario's faults on its schedule, heal,
#   final read of every partition, history check) -> cluster down
#
#   scripts/chaos.sh SCENARIO [options]     one scenario
#   scripts/chaos.sh all [options]          every scenario, then a table
#   scripts/chaos.sh ci [options]           the short CI suite (SKIFF_CHAOS_CI)
#   scripts/chaos.sh list                   the scenarios
#
# Options:
#   --duration D     fault phase (default 30s; each scenario has a minimum)
#   --steady D       steady phase before the faults (default 10s)
#   --recovery D     recovery phase after healing (default 15s)
#   --out DIR        history, result and log files (default /tmp/skiff-chaos-<time>)
#   --no-build       use the existing bin/skiff and image
#   --insecure       plaintext cluster (default: secure, cluster.sh up --secure:
#                    TLS everywhere, mutual TLS between nodes, encrypted gossip;
#                    the workload connects as the admin client)
#   --keep           leave the last cluster running
#   --nodes 3|5      cluster size (default 3; scripts/cluster.sh up --nodes)
#
# A scenario that needs more than the faults of scripts/faults.sh says so
# (`skiff chaos scenarios -o json`, "needs"): disk-full gets a cluster whose
# skiff-3 keeps its data on a small tmpfs (cluster.sh up --small-disk).
# Scenarios that add a node start the spare one (docker-compose.spare.yml)
# themselves.
#
# Exits non-zero if any scenario's checker finds an anomaly (lost,
# duplicated, reordered ... writes) or a scenario could not run. The
# cluster, networks, volumes, iptables rules and delay proxies are removed on
# exit, whatever happens. Every wait is bounded. Ports: SKIFF_PORT_PREFIX
# (see scripts/cluster.sh).
set -euo pipefail
# shellcheck source=scripts/faults.sh
. "$(dirname "$0")/faults.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }

CI_SCENARIOS=${SKIFF_CHAOS_CI:-leader-kill minority-partition rolling-restart disk-full}
FAULT=30s
STEADY=10s
RECOVERY=15s
OUT=""
BUILD=1
KEEP=${SKIFF_KEEP:-0}
SECURE=1
NODES=3
target=${1:-}
case $target in ''|-h|--help) usage ;; esac
shift
while [ $# -gt 0 ]; do
  case $1 in
    --duration|--fault) FAULT=${2:?}; shift 2 ;;
    --steady) STEADY=${2:?}; shift 2 ;;
    --recovery) RECOVERY=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    --secure) SECURE=1; shift ;;
    --insecure) SECURE=0; shift ;;
    --nodes) NODES=${2:?--nodes needs 3 or 5}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
case $NODES in 3|5) ;; *) echo "--nodes must be 3 or 5" >&2; exit 2 ;; esac
export SKIFF_NODES=$NODES
CLUSTER="$SKIFF_ROOT/scripts/cluster.sh"
SKIFF_BIN="$SKIFF_ROOT/bin/skiff"
export SKIFF_BIN
OUT=${OUT:-/tmp/skiff-chaos-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

# secs D: a Go duration like 30s, 2m or 1m30s in whole seconds.
secs() {
  local d=$1 total=0 n
  while [ -n "$d" ]; do
    n=${d%%[a-z]*}
    d=${d#"$n"}
    case $d in
      h*) total=$((total + n * 3600)); d=${d#h} ;;
      ms*) d=${d#ms} ;;
      m*) total=$((total + n * 60)); d=${d#m} ;;
      s*) total=$((total + n)); d=${d#s} ;;
      *) echo "bad duration: $1" >&2; return 1 ;;
    esac
  done
  echo "$total"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$KEEP" = 1 ]; then
    skiff_log "leaving the cluster up (--keep); remove it with: $CLUSTER down"
  else
    fault_heal_all >/dev/null 2>&1 || true
    "$CLUSTER" down >/dev/null 2>&1 || skiff_log "cluster down failed"
  fi
  rm -rf "$SKIFF_FAULT_STATE"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ROWS=()
FAILED=0

# needs SCENARIO: what the scenario needs of the cluster, space-separated.
needs() {
  jq -r --arg sc "$1" '.[] | select(.name == $sc) | .needs // [] | join(" ")' <<<"$SCENARIOS_JSON"
}

# run_one SCENARIO: a fresh cluster, the run, the summary, the cluster down.
run_one() {
  local sc=$1 up_args=() result="$OUT/$1.json" hist="$OUT/$1.jsonl" log="$OUT/$1.log" bound rc=0
  local -a tls=()
  [ "$BUILD" -eq 1 ] || up_args+=(--no-build)
  [ "$SECURE" -eq 0 ] || up_args+=(--secure)
  up_args+=(--nodes "$NODES")
  case " $(needs "$sc") " in *" small-disk "*) up_args+=(--small-disk) ;; esac
  skiff_log "=== $sc: cluster up"
  "$CLUSTER" down >/dev/null 2>&1 || true
  if ! "$CLUSTER" up "${up_args[@]}" >"$OUT/$sc.up.log" 2>&1; then
    cat "$OUT/$sc.up.log" >&2
    ROWS+=("$(printf '%-27s %s' "$sc" "ERROR cluster did not come up")")
    FAILED=1
    return
  fi
  BUILD=0 # once is enough
  # Host-side skiff calls (the workload here, faults.sh's helpers through
  # the cluster's mode marker) speak the cluster's mode.
  skiff_use_tls
  if [ "$SECURE" -eq 1 ]; then
    tls=(--tls-ca-file "$SKIFF_TLS_CA_FILE" --tls-cert-file "$SKIFF_TLS_CERT_FILE" --tls-key-file "$SKIFF_TLS_KEY_FILE")
  fi
  # The run bounds its own phases and waits; this is the backstop.
  bound=$(($(secs "$STEADY") + $(secs "$FAULT") + $(secs "$RECOVERY") + 600))
  skiff_log "=== $sc: workload and faults ($([ "$SECURE" -eq 1 ] && echo secure || echo plaintext); steady $STEADY, fault $FAULT, recovery $RECOVERY; log $log)"
  timeout --kill-after 10 "$bound" "$SKIFF_BIN" chaos run "${tls[@]}" -o json --verbose \
    --brokers "$(skiff_brokers)" --scenario "$sc" --faults-script "$SKIFF_ROOT/scripts/faults.sh" \
    --steady "$STEADY" --fault "$FAULT" --recovery "$RECOVERY" --history "$hist" >"$result" 2>"$log" || rc=$?
  if [ ! -s "$result" ]; then
    tail -20 "$log" >&2
    ROWS+=("$(printf '%-27s %s' "$sc" "ERROR no result (exit $rc; see $log)")")
    FAILED=1
  else
    "$SKIFF_BIN" chaos check "${tls[@]}" --history "$hist" || true
    [ "$rc" -eq 0 ] || FAILED=1
    ROWS+=("$(jq -r --arg sc "$sc" --arg rc "$rc" '
      def ms: . / 1e6 | floor | tostring + "ms";
      [$sc,
       (if .skipped then "SKIP" elif ($rc != "0") then "FAIL" else "PASS" end),
       (.report.acked | tostring), (.report.lost_writes.count | tostring), (.report.duplicates.count | tostring),
       ([.report | .inconsistent_offsets, .aborted_reads, .unexpected_values, .non_dense_offsets,
         .nonmonotonic_sends, .poll_skips, .nonmonotonic_polls, .commit_regressions | .count] | add | tostring),
       (.report.indeterminate | tostring), (.unavailability_max_ns | ms), (.fault_gap_p99_ns | ms)]
      | "\(.[0] | . + " " * (27 - length)) \(.[1])  acked \(.[2])  lost \(.[3])  dup \(.[4])  other \(.[5])  indet \(.[6])  max-unavail \(.[7])  per-fault-p99 \(.[8])"' "$result")")
    if jq -e '.errors' "$result" >/dev/null 2>&1; then
      jq -r '.errors[]' "$result" | sed "s/^/  $sc error: /" >&2
    fi
  fi
  skiff_log "=== $sc: done (exit $rc)"
  if [ "$KEEP" != 1 ]; then
    fault_heal_all >/dev/null 2>&1 || true
    "$CLUSTER" down >/dev/null 2>&1 || true
  fi
}

skiff_need jq
skiff_need curl
skiff_need nsenter util-linux
skiff_need iptables
skiff_need timeout coreutils
if [ "$BUILD" -eq 1 ] || [ ! -x "$SKIFF_BIN" ]; then
  (cd "$SKIFF_ROOT" && PATH="/usr/local/go/bin:$PATH" CGO_ENABLED=0 go build -o bin/skiff ./cmd/skiff)
fi
SCENARIOS_JSON=$("$SKIFF_BIN" chaos scenarios -o json)
ALL=$(jq -r '.[].name' <<<"$SCENARIOS_JSON")

case $target in
  list) "$SKIFF_BIN" chaos scenarios; exit 0 ;;
  all) scenarios=$ALL ;;
  ci) scenarios=$CI_SCENARIOS ;;
  *)
    grep -qx -- "$target" <<<"$ALL" || { echo "unknown scenario: $target (scripts/chaos.sh list)" >&2; exit 2; }
    scenarios=$target
    ;;
esac

for sc in $scenarios; do
  run_one "$sc"
done

echo
echo "chaos results ($NODES nodes, $([ "$SECURE" -eq 1 ] && echo "secure cluster" || echo "plaintext cluster"); histories and logs in $OUT):"
printf '%s\n' "${ROWS[@]}"
exit "$FAILED"
