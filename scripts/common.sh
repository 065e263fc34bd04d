# shellcheck shell=bash
# Helpers shared by scripts/cluster.sh, scripts/faults.sh and scripts/smoke.sh.
# Source it; it defines functions and variables only and changes no shell
# options of the caller.
#
# Conventions of the compose cluster (docker-compose.yml):
#   container = hostname = node id = skiff-<i>; compose project $SKIFF_PROJECT
#   (default "skiff"); network "skiff"; node i publishes gRPC on
#   127.0.0.1:94(i-1)0 and HTTP on 127.0.0.1:94(i-1)3 (SKIFF_PORT_PREFIX
#   replaces the 94).

SKIFF_ROOT=${SKIFF_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SKIFF_PROJECT=${SKIFF_PROJECT:-skiff}
SKIFF_NETWORK=${SKIFF_NETWORK:-skiff}
SKIFF_IMAGE=${SKIFF_IMAGE:-skiff:dev}
export SKIFF_IMAGE

# Secure mode (scripts/cluster.sh up --secure): TLS on every listener, mutual
# TLS between nodes, encrypted and labelled gossip. Everything lives under
# $SKIFF_SECURE_DIR (default $SKIFF_ROOT/.secure, git-ignored, mode 0700):
#   pki/                  `skiff certs create` output: ca.crt/ca.key, skiff-1..5
#                         and the host's client certificate admin.crt/.key (0600)
#   nodes/skiff-<i>/      what node i sees, mounted read-only at /certs: ca.crt,
#                         skiff-<i>.crt/.key and gossip.key
#   gossip.key, cluster-name
#   secure.<project>      marker: the running cluster of <project> is secure
# The marker makes every helper here (skiff_http, skiff_compose, ...) and so
# status/logs/down, faults.sh, smoke.sh and chaos.sh speak the cluster's mode.
# SKIFF_SECURE=1 or 0 overrides the marker (cluster.sh up sets it).
SKIFF_SECURE_DIR=${SKIFF_SECURE_DIR:-$SKIFF_ROOT/.secure}

# skiff_secure: the cluster is (to be) run in secure mode.
skiff_secure() {
  case ${SKIFF_SECURE:-} in
    1) return 0 ;;
    0) return 1 ;;
    *) [ -f "$SKIFF_SECURE_DIR/secure.$SKIFF_PROJECT" ] ;;
  esac
}

# skiff_demo: the running cluster has the example applications of
# docker-compose.demo.yml (`cluster.sh up --demo`); SKIFF_DEMO=1/0 forces
# the answer (as SKIFF_SECURE does for skiff_secure).
skiff_demo() {
  case ${SKIFF_DEMO:-} in
    1) return 0 ;;
    0) return 1 ;;
    *) [ -f "$SKIFF_SECURE_DIR/demo.$SKIFF_PROJECT" ] ;;
  esac
}

# skiff_small_disk: the running cluster's skiff-3 keeps its data on a small
# tmpfs of its own (`cluster.sh up --small-disk`, docker-compose.smalldisk.yml);
# SKIFF_SMALL_DISK=1/0 forces the answer.
skiff_small_disk() {
  case ${SKIFF_SMALL_DISK:-} in
    1) return 0 ;;
    0) return 1 ;;
    *) [ -f "$SKIFF_SECURE_DIR/smalldisk.$SKIFF_PROJECT" ] ;;
  esac
}

# skiff_spare_id prints the id of the spare node a running cluster of
# $SKIFF_NODES nodes may be given (docker-compose.spare.yml): skiff-4 or
# skiff-6.
skiff_spare_id() { echo "skiff-$((${SKIFF_NODES:-3} + 1))"; }

# skiff_spare: the spare node is wanted (SKIFF_SPARE=1) or exists.
skiff_spare() {
  [ "${SKIFF_SPARE:-0}" = 1 ] && return 0
  docker ps -aq --filter "label=com.docker.compose.project=$SKIFF_PROJECT" \
    --filter "label=com.docker.compose.service=spare" 2>/dev/null | grep -q .
}

# skiff_tls_exports prints the export lines a host shell needs to talk to
# the secure cluster as the admin client (nothing when not secure).
skiff_tls_exports() {
  skiff_secure || return 0
  echo "export SKIFF_TLS_CA_FILE=$SKIFF_SECURE_DIR/pki/ca.crt"
  echo "export SKIFF_TLS_CERT_FILE=$SKIFF_SECURE_DIR/pki/admin.crt"
  echo "export SKIFF_TLS_KEY_FILE=$SKIFF_SECURE_DIR/pki/admin.key"
}

# skiff_use_tls: in secure mode, export SKIFF_TLS_* (the admin client) so
# the host-side skiff commands this shell runs speak TLS; else unset them,
# so a plaintext cluster is not dialled with TLS.
skiff_use_tls() {
  if skiff_secure; then
    export SKIFF_TLS_CA_FILE="$SKIFF_SECURE_DIR/pki/ca.crt"
    export SKIFF_TLS_CERT_FILE="$SKIFF_SECURE_DIR/pki/admin.crt"
    export SKIFF_TLS_KEY_FILE="$SKIFF_SECURE_DIR/pki/admin.key"
  else
    unset SKIFF_TLS_CA_FILE SKIFF_TLS_CERT_FILE SKIFF_TLS_KEY_FILE SKIFF_TLS_SERVER_NAME
  fi
}

# skiff_log prints a timestamped line on stderr (stdout is kept for results).
skiff_log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
skiff_die() { skiff_log "error: $*"; return 1; }

# skiff_now_ms prints the wall clock in milliseconds.
skiff_now_ms() { date +%s%3N; }

# skiff_need CMD [DEBIAN_PACKAGE]: make sure CMD exists, installing the Debian
# package (default: CMD) with apt-get when it does not and we are root.
skiff_need() {
  local cmd=$1 pkg=${2:-$1}
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    skiff_die "$cmd not found (install the Debian package $pkg)"
    return 1
  fi
  skiff_log "installing $pkg (for $cmd)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"; } >/dev/null ||
    { skiff_die "apt-get install $pkg failed"; return 1; }
  command -v "$cmd" >/dev/null 2>&1 || skiff_die "$cmd still missing after installing $pkg"
}

# skiff_compose ARGS...: runs `docker compose` (v2) when the plugin exists,
# else `docker-compose` (v1), with the project name and the compose files
# for $SKIFF_NODES (3 or 5) nodes, plus those of the modes in effect
# (secure, demo, small disk, spare node).
skiff_compose() {
  local -a files=(-f "$SKIFF_ROOT/docker-compose.yml") compose_env=()
  if [ "${SKIFF_NODES:-3}" -eq 5 ]; then
    files+=(-f "$SKIFF_ROOT/docker-compose.5.yml")
  fi
  if skiff_secure; then
    files+=(-f "$SKIFF_ROOT/docker-compose.secure.yml")
    if [ "${SKIFF_NODES:-3}" -eq 5 ]; then
      files+=(-f "$SKIFF_ROOT/docker-compose.secure.5.yml")
    fi
    compose_env=("SKIFF_SECURE_DIR=$SKIFF_SECURE_DIR"
      "SKIFF_LAB_CLUSTER_NAME=$(cat "$SKIFF_SECURE_DIR/cluster-name" 2>/dev/null || echo skiff-lab)")
  fi
  if skiff_demo; then
    files+=(-f "$SKIFF_ROOT/docker-compose.demo.yml")
  fi
  if skiff_small_disk; then
    files+=(-f "$SKIFF_ROOT/docker-compose.smalldisk.yml")
  fi
  if skiff_spare; then
    files+=(-f "$SKIFF_ROOT/docker-compose.spare.yml")
    skiff_secure && files+=(-f "$SKIFF_ROOT/docker-compose.secure.spare.yml")
    compose_env+=("SKIFF_SPARE_ID=$(skiff_spare_id)" "SKIFF_SPARE_SLOT=${SKIFF_NODES:-3}" "SKIFF_NODES=${SKIFF_NODES:-3}")
  fi
  if [ -z "${SKIFF_COMPOSE_CMD:-}" ]; then
    if docker compose version >/dev/null 2>&1; then
      SKIFF_COMPOSE_CMD="docker compose"
    elif command -v docker-compose >/dev/null 2>&1; then
      SKIFF_COMPOSE_CMD="docker-compose"
    else
      skiff_die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
      return 1
    fi
  fi
  # shellcheck disable=SC2086 # the command is one or two words on purpose
  env "${compose_env[@]}" $SKIFF_COMPOSE_CMD -p "$SKIFF_PROJECT" --project-directory "$SKIFF_ROOT" "${files[@]}" "$@"
}

# skiff_nodes prints the cluster's containers (running or not), one a line,
# in node order.
skiff_nodes() {
  docker ps -a --filter "label=com.docker.compose.project=$SKIFF_PROJECT" --format '{{.Names}}' |
    { grep -E '^skiff-[0-9]+$' || true; } | sort -t- -k2 -n
}

# skiff_node_index NODE prints i for skiff-i.
skiff_node_index() {
  case $1 in
    skiff-[0-9]*) echo "${1#skiff-}" ;;
    *) skiff_die "not a node name: $1 (want skiff-<i>)"; return 1 ;;
  esac
}

# Node i publishes gRPC on 127.0.0.1:<prefix>(i-1)0 and HTTP on
# <prefix>(i-1)3; prefix 94 (default) gives 9400, 9410, ... like `skiff dev`.
SKIFF_PORT_PREFIX=${SKIFF_PORT_PREFIX:-94}
case $SKIFF_PORT_PREFIX in
  [1-9][0-9]) ;;
  *) echo "SKIFF_PORT_PREFIX must be two digits from 10 to 99, got '$SKIFF_PORT_PREFIX'" >&2; return 2 2>/dev/null || exit 2 ;;
esac
export SKIFF_PORT_PREFIX

# skiff_grpc_addr NODE / skiff_http_addr NODE: the published host addresses.
skiff_grpc_addr() { local i; i=$(skiff_node_index "$1") || return 1; echo "127.0.0.1:$((SKIFF_PORT_PREFIX * 100 + 10 * (i - 1)))"; }
skiff_http_addr() { local i; i=$(skiff_node_index "$1") || return 1; echo "127.0.0.1:$((SKIFF_PORT_PREFIX * 100 + 3 + 10 * (i - 1)))"; }

# skiff_brokers prints the comma-separated gRPC addresses of the running
# cluster's nodes as seen from the host.
skiff_brokers() {
  local n out=""
  for n in $(skiff_nodes); do out+="${out:+,}$(skiff_grpc_addr "$n")"; done
  echo "$out"
}

# skiff_http NODE PATH: GET from a node's published HTTP port (https,
# verified against the cluster CA, in secure mode). Bounded by
# SKIFF_HTTP_TIMEOUT (default 6s): /v1/cluster and /v1/topics ask every
# node gossip calls alive for its partitions, for up to 5s, so a node cut
# from a peer that gossip still sees alive answers slowly, not wrongly.
skiff_http() {
  local addr
  addr=$(skiff_http_addr "$1") || return 1
  if skiff_secure; then
    curl -fsS -m "${SKIFF_HTTP_TIMEOUT:-6}" --cacert "$SKIFF_SECURE_DIR/pki/ca.crt" "https://$addr$2"
  else
    curl -fsS -m "${SKIFF_HTTP_TIMEOUT:-6}" "http://$addr$2"
  fi
}

# skiff_health NODE: the container's docker health status (healthy,
# unhealthy, starting), or the container state when it is not running.
skiff_health() {
  docker inspect -f '{{if .State.Running}}{{if .State.Paused}}paused{{else if .State.Health}}{{.State.Health.Status}}{{else}}running{{end}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null ||
    echo missing
}

# skiff_wait_for SECONDS DESCRIPTION CMD...: run CMD every 0.5s until it
# succeeds; fail after SECONDS. Prints on stdout when (ms after the call) the
# successful attempt started: the state it saw held by then, even when the
# attempt itself was slow (a node cut off makes /v1/cluster take seconds).
skiff_wait_for() {
  local secs=$1 what=$2 start deadline attempt
  shift 2
  start=$(skiff_now_ms)
  deadline=$((start + secs * 1000))
  while :; do
    attempt=$(skiff_now_ms)
    "$@" >/dev/null 2>&1 && break
    if [ "$(skiff_now_ms)" -ge "$deadline" ]; then
      skiff_die "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
  echo $((attempt - start))
}

# skiff_alive_count NODE: how many nodes NODE's /v1/cluster shows alive.
skiff_alive_count() {
  skiff_http "$1" /v1/cluster | jq '[.nodes[] | select(.state == "alive")] | length'
}

# skiff_controller_seen_by NODE: the controller id in NODE's /v1/cluster.
skiff_controller_seen_by() {
  skiff_http "$1" /v1/cluster | jq -r '.controller // empty'
}

# skiff_sees_not_alive OBSERVER NODE: OBSERVER's gossip view has NODE dead
# or left (or not listed at all).
skiff_sees_not_alive() {
  skiff_http "$1" /v1/cluster |
    jq -e --arg d "$2" '[.nodes[] | select(.id == $d and .state == "alive")] | length == 0' >/dev/null
}

# skiff_cluster_ok N: exactly N nodes, each healthy and seeing N nodes alive
# and a controller.
skiff_cluster_ok() {
  local n=$1 node
  [ "$(skiff_nodes | wc -l)" -eq "$n" ] || return 1
  for node in $(skiff_nodes); do
    [ "$(skiff_health "$node")" = healthy ] || return 1
    [ "$(skiff_alive_count "$node")" = "$n" ] || return 1
    [ -n "$(skiff_controller_seen_by "$node")" ] || return 1
  done
}

# skiff_wait_since T0 SECONDS DESCRIPTION CMD...: skiff_wait_for, but prints
# the time from T0 (skiff_now_ms, e.g. when a fault was injected).
skiff_wait_since() {
  local t0=$1 called took
  shift
  called=$(skiff_now_ms)
  took=$(skiff_wait_for "$@") || return 1
  echo $((called - t0 + took))
}

# skiff_meta_leaders prints the nodes that report themselves meta (controller)
# leader in their /metrics (skiff_node_meta_leader 1). Fast, as /metrics asks
# no other node, but each node speaks for itself: a node cut off may still
# report 1 for a while after the others elected someone else.
skiff_meta_leaders() {
  local node
  for node in $(skiff_nodes); do
    { SKIFF_HTTP_TIMEOUT=2 skiff_http "$node" /metrics 2>/dev/null | grep -qx 'skiff_node_meta_leader 1' && echo "$node"; } &
  done
  wait
}
