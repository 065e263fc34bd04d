#!/usr/bin/env bash
# Run a Skiff cluster in containers (docker-compose.yml).
#
#   scripts/cluster.sh up     [--nodes 3|5] [--secure] [--demo] [--observability] [--small-disk]
#                             [--no-build] [--timeout SECS]
#   scripts/cluster.sh down   [--purge]           containers, network and volumes
#                                                 (--purge: the secure dir too)
#   scripts/cluster.sh status                     containers, health, /v1/cluster
#   scripts/cluster.sh logs   [NODE...] [--follow]
#   scripts/cluster.sh rolling-upgrade [--no-build] [--timeout SECS]
#
# `rolling-upgrade` rebuilds bin/skiff and the image (unless --no-build),
# then replaces the nodes one at a time: `skiff node maintenance on` (its
# partition and meta leaderships move to other nodes), recreate its
# container on the new image, wait until it is healthy and every partition
# is fully in sync again, `skiff node maintenance off`. No partition loses
# its leader to a crash-style election on the way; a failure stops the
# upgrade with that node still in maintenance (say `skiff node maintenance
# off ID` once it is fixed, or run rolling-upgrade again).
#
# `up` builds bin/skiff (static, CGO_ENABLED=0) and the skiff:dev image FROM
# scratch (no registry needed), starts the nodes, waits until every node is
# healthy and /v1/cluster on each lists all nodes alive with a controller,
# then prints
#
#   brokers: 127.0.0.1:9400,127.0.0.1:9410,127.0.0.1:9420
#
# --secure adds docker-compose.secure.yml: TLS on every listener (mutual TLS
# between nodes), encrypted and labelled gossip. Certificates for skiff-1..5
# and the client "admin", a gossip key and a cluster name are made once
# under $SKIFF_SECURE_DIR (default .secure/; see scripts/common.sh) and
# reused while there; `up` then also prints the SKIFF_TLS_* exports a host
# shell needs. status, logs, down (and faults.sh, smoke.sh, chaos.sh) follow
# the mode of the running cluster. `down --purge` deletes the secure dir.
#
# Clients reach the nodes on two listeners: containers on the compose
# network through skiff-i:9400 (internal), the host through 127.0.0.1:94x0
# (external); each is given addresses of its own listener. --demo adds two
# example applications on the network (docker-compose.demo.yml): a producer
# writing a keyed order to demo.orders every 100 ms and a consumer-group
# member printing them; `logs skiff-demo-producer skiff-demo-consumer`
# shows the flow. (--demo runs on the plaintext cluster.)
#
# --small-disk puts skiff-3's data directory on a tmpfs of its own,
# SKIFF_SMALL_DISK_BYTES (default 512 MiB) large (docker-compose.smalldisk.yml),
# which `scripts/faults.sh fill-disk` may fill: the chaos scenario disk-full.
# A spare node (skiff-4, or skiff-6 next to five) can join a running cluster
# with `scripts/faults.sh add-node` (docker-compose.spare.yml); down removes
# it too.
#
# --observability adds Prometheus (docker-compose.observability.yml, its own
# compose project <project>-observability): an image built FROM scratch from
# the host's Debian prometheus binary (apt-get install prometheus) and the
# libraries ldd lists for it, scraping every node with the alert rules of
# deploy/prometheus/alerts.yml loaded, on 127.0.0.1:$SKIFF_PROMETHEUS_PORT
# (default 9090). `up` waits until every node is an "up" target and the
# rules are loaded; `down` removes it too.
#
# Works with `docker compose` (v2) and `docker-compose` (v1). Environment:
# SKIFF_PORT_PREFIX (host ports <prefix>00, <prefix>10, ...; default 94, the
# ports of `skiff dev`: use 95 to run both), SKIFF_PROJECT (compose project,
# default skiff), SKIFF_IMAGE (default skiff:dev), SKIFF_REPLACE_AFTER and
# SKIFF_LOG_LEVEL (passed to the nodes), GO (go command).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }

SKIFF_NODES=3
BUILD=1
UP_TIMEOUT=${SKIFF_UP_TIMEOUT:-120}
FOLLOW=()
NODES_ARGS=()
SECURE=0
DEMO=0
OBSERVABILITY=0
PURGE=0
SMALL_DISK=0
SKIFF_PROMETHEUS_PORT=${SKIFF_PROMETHEUS_PORT:-9090}
SKIFF_PROMETHEUS_IMAGE=${SKIFF_PROMETHEUS_IMAGE:-skiff-prometheus:dev}
export SKIFF_PROMETHEUS_PORT SKIFF_PROMETHEUS_IMAGE

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) SKIFF_NODES=${2:?--nodes needs 3 or 5}; shift 2 ;;
    --nodes=*) SKIFF_NODES=${1#--nodes=}; shift ;;
    --no-build) BUILD=0; shift ;;
    --secure) SECURE=1; shift ;;
    --demo) DEMO=1; shift ;;
    --observability) OBSERVABILITY=1; shift ;;
    --small-disk) SMALL_DISK=1; shift ;;
    --insecure) SECURE=0; shift ;;
    --purge) PURGE=1; shift ;;
    --timeout) UP_TIMEOUT=${2:?}; shift 2 ;;
    -f|--follow) FOLLOW=(--follow); shift ;;
    -h|--help) usage ;;
    skiff-demo-*) NODES_ARGS+=("${1#skiff-}"); shift ;; # container name -> compose service
    skiff-*|demo-*) NODES_ARGS+=("$1"); shift ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
case $SKIFF_NODES in 3|5) ;; *) echo "--nodes must be 3 or 5" >&2; exit 2 ;; esac
export SKIFF_NODES

build() {
  local go=${GO:-go}
  command -v "$go" >/dev/null 2>&1 || PATH="/usr/local/go/bin:$PATH"
  skiff_log "building bin/skiff (static)"
  (cd "$SKIFF_ROOT" && CGO_ENABLED=0 "$go" build -o bin/skiff ./cmd/skiff)
  skiff_log "building image $SKIFF_IMAGE"
  # The legacy builder and BuildKit both handle this Dockerfile. Quiet
  # unless it fails (the legacy builder prints a deprecation notice).
  local out
  if ! out=$(docker build -q -t "$SKIFF_IMAGE" "$SKIFF_ROOT" 2>&1); then
    echo "$out" >&2
    skiff_die "docker build failed"
    return 1
  fi
}

# ports_free: no one listens on the host ports the nodes will publish (a
# `skiff dev` on the same machine uses the same ones).
ports_free() {
  local i port busy=""
  for i in $(seq 1 "$SKIFF_NODES"); do
    for port in "$(skiff_grpc_addr "skiff-$i")" "$(skiff_http_addr "skiff-$i")"; do
      port=${port##*:}
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then busy+=" $port"; fi
    done
  done
  [ -z "$busy" ] && return 0
  skiff_die "host ports in use:$busy (a 'skiff dev'?); pick others with SKIFF_PORT_PREFIX=95"
}

# secure_prepare: certificates for skiff-1..6 (five nodes and a spare) and the admin client, a
# gossip key and a cluster name under $SKIFF_SECURE_DIR (made once, reused),
# and each node's mount directory refreshed from them.
secure_prepare() {
  local dir=$SKIFF_SECURE_DIR bin=$SKIFF_ROOT/bin/skiff pki i nd
  local -a missing=() args=()
  pki=$dir/pki
  [ -x "$bin" ] || { skiff_die "$bin is missing (run without --no-build)"; return 1; }
  mkdir -p "$pki" "$dir/nodes"
  chmod 0700 "$dir" "$pki"
  if [ ! -f "$pki/ca.crt" ] || [ ! -f "$pki/ca.key" ]; then
    # A new CA: every certificate signed by an old one goes.
    rm -f "$pki"/*.crt "$pki"/*.key
  fi
  for i in 1 2 3 4 5 6; do
    [ -f "$pki/skiff-$i.crt" ] && [ -f "$pki/skiff-$i.key" ] || missing+=("skiff-$i")
  done
  [ ${#missing[@]} -eq 0 ] || args+=(--nodes "$(IFS=,; echo "${missing[*]}")" --force)
  [ -f "$pki/admin.crt" ] && [ -f "$pki/admin.key" ] || args+=(--clients admin --force)
  if [ ${#args[@]} -gt 0 ]; then
    skiff_log "creating certificates in $pki"
    "$bin" certs create --dir "$pki" --hosts skiff-1,skiff-2,skiff-3,skiff-4,skiff-5,skiff-6,127.0.0.1,localhost "${args[@]}" >&2 ||
      { skiff_die "skiff certs create failed"; return 1; }
  fi
  if [ ! -s "$dir/gossip.key" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 >"$dir/gossip.key")
  fi
  if [ ! -s "$dir/cluster-name" ]; then
    echo "skiff-lab-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/cluster-name"
  fi
  # What node i mounts at /certs: its own key only. 0644 so that the
  # container's root (no CAP_DAC_OVERRIDE) reads it whoever owns the file:
  # lab only; the CA and admin keys under pki/ stay 0600 and unmounted.
  for i in 1 2 3 4 5 6; do
    nd=$dir/nodes/skiff-$i
    mkdir -p "$nd"
    chmod 0755 "$nd"
    install -m 0644 "$pki/ca.crt" "$pki/skiff-$i.crt" "$pki/skiff-$i.key" "$dir/gossip.key" "$nd/"
  done
}

up() {
  skiff_need curl
  skiff_need jq
  [ "$BUILD" -eq 0 ] || build
  local start running was=0
  start=$(skiff_now_ms)
  running=$(skiff_nodes | wc -l)
  if [ "$running" -gt 0 ] && [ "$running" -ne "$SKIFF_NODES" ]; then
    skiff_log "a $running-node cluster exists; run '$0 down' before asking for $SKIFF_NODES nodes"
    exit 1
  fi
  SKIFF_SECURE='' skiff_secure && was=1
  if [ "$running" -gt 0 ] && [ "$was" -ne "$SECURE" ]; then
    skiff_log "a $([ "$was" -eq 1 ] && echo secure || echo plaintext) cluster exists; run '$0 down' before asking for a $([ "$SECURE" -eq 1 ] && echo secure || echo plaintext) one"
    exit 1
  fi
  if [ "$running" -eq 0 ]; then
    ports_free || exit 1
  fi
  if [ "$DEMO" -eq 1 ] && [ "$SECURE" -eq 1 ]; then
    skiff_log "--demo runs on the plaintext cluster: its applications carry no client certificates; drop --secure or --demo"
    exit 2
  fi
  export SKIFF_SECURE=$SECURE
  mkdir -p "$SKIFF_SECURE_DIR"
  if [ "$DEMO" -eq 1 ]; then
    touch "$SKIFF_SECURE_DIR/demo.$SKIFF_PROJECT"
  elif [ "$running" -eq 0 ]; then
    rm -f "$SKIFF_SECURE_DIR/demo.$SKIFF_PROJECT"
  fi
  if [ "$SMALL_DISK" -eq 1 ]; then
    touch "$SKIFF_SECURE_DIR/smalldisk.$SKIFF_PROJECT"
  elif [ "$running" -eq 0 ]; then
    rm -f "$SKIFF_SECURE_DIR/smalldisk.$SKIFF_PROJECT"
  fi
  if [ "$SECURE" -eq 1 ]; then
    secure_prepare || exit 1
    touch "$SKIFF_SECURE_DIR/secure.$SKIFF_PROJECT"
  else
    rm -f "$SKIFF_SECURE_DIR/secure.$SKIFF_PROJECT"
  fi
  skiff_log "starting $SKIFF_NODES nodes (project $SKIFF_PROJECT, host ports ${SKIFF_PORT_PREFIX}x0/${SKIFF_PORT_PREFIX}x3$([ "$SECURE" -eq 1 ] && echo ", secure: TLS, certificates in $SKIFF_SECURE_DIR"))"
  if ! skiff_compose up -d --remove-orphans >&2; then
    skiff_log "compose up failed; '$0 down' removes what was created"
    exit 1
  fi
  local took
  if ! took=$(skiff_wait_for "$UP_TIMEOUT" "every node healthy with the cluster formed" skiff_cluster_ok "$SKIFF_NODES"); then
    status >&2 || true
    skiff_log "last logs of each node:"
    skiff_compose logs --tail 20 >&2 || true
    exit 1
  fi
  skiff_log "cluster ready in $(( ($(skiff_now_ms) - start) ))ms (containers started to ready: ${took}ms)"
  echo "brokers: $(skiff_brokers)"
  if skiff_secure; then
    echo "export SKIFF_BROKERS=$(skiff_brokers)"
    skiff_tls_exports
  fi
  [ "$OBSERVABILITY" -eq 0 ] || obs_up
}

# obs_build assembles Prometheus's image FROM scratch: the host's binary,
# plus (Debian's is dynamically linked) the loader and libraries ldd lists.
obs_build() {
  local bin ctx lib
  bin=$(command -v prometheus) || { skiff_die "--observability needs the prometheus binary: apt-get install prometheus"; return 1; }
  ctx=$(mktemp -d)
  mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/prometheus"
  cp -L "$bin" "$ctx/rootfs/bin/prometheus"
  if ldd "$bin" >/dev/null 2>&1; then
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
      cp -L --parents "$lib" "$ctx/rootfs/"
    done
  fi
  cp "$SKIFF_ROOT/deploy/prometheus/Dockerfile" "$ctx/"
  skiff_log "building image $SKIFF_PROMETHEUS_IMAGE from $bin"
  local out
  if ! out=$(docker build -q -t "$SKIFF_PROMETHEUS_IMAGE" "$ctx" 2>&1); then
    rm -rf "$ctx"
    echo "$out" >&2
    skiff_die "docker build of $SKIFF_PROMETHEUS_IMAGE failed"
    return 1
  fi
  rm -rf "$ctx"
}

# obs_config writes the Prometheus configuration for the running cluster:
# every node's HTTP port (https with the lab CA when secure) and the rules.
obs_config() {
  local file=$SKIFF_SECURE_DIR/prometheus.$SKIFF_PROJECT.yml i targets=""
  for i in $(seq 1 "$SKIFF_NODES"); do targets+="${targets:+, }'skiff-$i:9403'"; done
  {
    echo "# Generated by scripts/cluster.sh up --observability; do not edit."
    echo "global: {scrape_interval: 5s, evaluation_interval: 5s}"
    echo "rule_files: [/etc/prometheus/alerts.yml]"
    echo "scrape_configs:"
    echo "  - job_name: skiff"
    if skiff_secure; then
      echo "    scheme: https"
      echo "    tls_config: {ca_file: /etc/prometheus/ca.crt}"
    fi
    echo "    static_configs:"
    echo "      - targets: [$targets]"
  } >"$file"
  echo "$file"
}

obs_compose() {
  skiff_compose version >/dev/null 2>&1 || true # picks SKIFF_COMPOSE_CMD
  [ -n "${SKIFF_COMPOSE_CMD:-}" ] || { skiff_die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"; return 1; }
  local ca=/dev/null
  skiff_secure && ca=$SKIFF_SECURE_DIR/nodes/skiff-1/ca.crt
  # shellcheck disable=SC2086 # the command is one or two words on purpose
  env SKIFF_PROMETHEUS_CONFIG="$SKIFF_SECURE_DIR/prometheus.$SKIFF_PROJECT.yml" SKIFF_PROMETHEUS_CA="$ca" \
    $SKIFF_COMPOSE_CMD -p "$SKIFF_PROJECT-observability" --project-directory "$SKIFF_ROOT" \
    -f "$SKIFF_ROOT/docker-compose.observability.yml" "$@"
}

# obs_ready: Prometheus has every node as an "up" target and the rules.
obs_ready() {
  local base=http://127.0.0.1:$SKIFF_PROMETHEUS_PORT/api/v1 up rules
  up=$(curl -fsS "$base/targets" 2>/dev/null | jq '[.data.activeTargets[] | select(.health == "up")] | length' 2>/dev/null) || return 1
  rules=$(curl -fsS "$base/rules" 2>/dev/null | jq '[.data.groups[].rules[]] | length' 2>/dev/null) || return 1
  [ "$up" -eq "$1" ] && [ "$rules" -gt 0 ]
}

obs_up() {
  [ "$BUILD" -eq 0 ] || obs_build || exit 1
  obs_config >/dev/null
  skiff_log "starting Prometheus on 127.0.0.1:$SKIFF_PROMETHEUS_PORT (project $SKIFF_PROJECT-observability)"
  obs_compose up -d --remove-orphans >&2 || { skiff_log "compose up of Prometheus failed"; exit 1; }
  local took
  if ! took=$(skiff_wait_for 60 "Prometheus scraping every node with the rules loaded" obs_ready "$SKIFF_NODES"); then
    obs_compose logs --tail 20 >&2 || true
    exit 1
  fi
  skiff_log "Prometheus ready in ${took}ms"
  echo "prometheus: http://127.0.0.1:$SKIFF_PROMETHEUS_PORT"
}

down() {
  if docker ps -aq --filter "name=^skiff-prometheus$" | grep -q .; then
    obs_compose down --volumes --remove-orphans --timeout 10 >&2 || true
  fi
  rm -f "$SKIFF_SECURE_DIR/prometheus.$SKIFF_PROJECT.yml"
  # With the 5-node file when nodes 4 and 5 left anything behind, so they
  # go too (and a 3-node down does not complain about their volumes).
  # (A spare skiff-4 next to three nodes is service "spare", not skiff-4.)
  local n=3
  if docker ps -aq --filter "label=com.docker.compose.project=$SKIFF_PROJECT" --filter "label=com.docker.compose.service=skiff-4" | grep -q . ||
    docker ps -aq --filter "label=com.docker.compose.project=$SKIFF_PROJECT" --filter "label=com.docker.compose.service=skiff-5" | grep -q . ||
    docker volume ls -q --filter "name=^${SKIFF_PROJECT}_skiff-[45]-data$" | grep -q .; then
    n=5
  fi
  SKIFF_NODES=$n SKIFF_DEMO=1 SKIFF_SPARE=1 skiff_compose down --volumes --remove-orphans --timeout 10 >&2
  rm -f "$SKIFF_SECURE_DIR/secure.$SKIFF_PROJECT" "$SKIFF_SECURE_DIR/demo.$SKIFF_PROJECT" "$SKIFF_SECURE_DIR/smalldisk.$SKIFF_PROJECT"
  if [ "$PURGE" -eq 1 ]; then
    skiff_log "removing $SKIFF_SECURE_DIR (certificates, gossip key)"
    rm -rf "$SKIFF_SECURE_DIR"
  fi
}

status() {
  skiff_need jq
  local node
  if [ -z "$(skiff_nodes)" ]; then
    echo "no cluster (project $SKIFF_PROJECT)"
    return 0
  fi
  if skiff_secure; then
    echo "mode: secure (TLS, certificates in $SKIFF_SECURE_DIR)"
  else
    echo "mode: plaintext"
  fi
  printf '%-10s %-10s %-16s %-16s %s\n' NODE HEALTH GRPC HTTP "VIEW (alive/known, controller)"
  for node in $(skiff_nodes); do
    local view
    view=$(skiff_http "$node" /v1/cluster 2>/dev/null |
      jq -r '"\([.nodes[] | select(.state == "alive")] | length)/\(.nodes | length) alive, controller \(.controller // "-"), dead: \([.nodes[] | select(.state != "alive") | .id] | join(",") | if . == "" then "-" else . end)"' 2>/dev/null) ||
      view="(HTTP unreachable)"
    printf '%-10s %-10s %-16s %-16s %s\n' "$node" "$(skiff_health "$node")" "$(skiff_grpc_addr "$node")" "$(skiff_http_addr "$node")" "$view"
  done
  echo "brokers: $(skiff_brokers)"
}

logs() {
  SKIFF_NODES=5 skiff_compose logs --no-color --tail "${SKIFF_LOG_TAIL:-100}" "${FOLLOW[@]}" "${NODES_ARGS[@]}"
}

# in_sync NODE BROKERS: NODE's container is healthy, the cluster answers
# through BROKERS, every node is alive and no partition is under-replicated
# or offline.
in_sync() {
  local st
  [ "$(skiff_health "$1")" = healthy ] || return 1
  st=$("$SKIFF_BIN" cluster status -o json --brokers "$2" --timeout 5s 2>/dev/null) || return 1
  [ "$(jq -r '.under_replicated_partitions + .offline_partitions' <<<"$st")" = 0 ] &&
    [ "$(jq -r '[.brokers[] | select(.state != "alive")] | length' <<<"$st")" = 0 ]
}

rolling_upgrade() {
  skiff_need curl
  skiff_need jq
  [ -n "$(skiff_nodes)" ] || { skiff_log "no cluster running: '$0 up' first"; exit 1; }
  SKIFF_SECURE='' skiff_secure && export SKIFF_SECURE=1 || export SKIFF_SECURE=0
  skiff_use_tls
  SKIFF_BIN="$SKIFF_ROOT/bin/skiff"
  [ "$BUILD" -eq 0 ] || build
  local node id other took
  for node in $(skiff_nodes); do
    id=$node # compose nodes use their container name as node id (SKIFF_ID)
    other=$(skiff_brokers | tr ',' '\n' | grep -v "^$(skiff_grpc_addr "$node")\$" | paste -sd, -)
    skiff_log "$node: maintenance on (moving its leaderships away)"
    "$SKIFF_BIN" node maintenance on "$id" --brokers "$other" --wait-timeout "${UP_TIMEOUT}s" >&2 ||
      { skiff_log "$node: leadership did not drain; stopping the upgrade (node still in maintenance)"; exit 1; }
    skiff_log "$node: recreating the container on the new image"
    skiff_compose up -d --no-deps --force-recreate "$node" >&2
    if ! took=$(skiff_wait_for "$UP_TIMEOUT" "$node healthy and every partition in sync" in_sync "$node" "$other"); then
      skiff_log "$node: not back in sync after ${UP_TIMEOUT}s; stopping the upgrade (node still in maintenance)"
      skiff_compose logs --tail 20 "$node" >&2 || true
      exit 1
    fi
    skiff_log "$node: back and in sync after ${took}ms; maintenance off"
    "$SKIFF_BIN" node maintenance off "$id" --brokers "$other" >&2
  done
  skiff_log "rolling upgrade done"
  echo "brokers: $(skiff_brokers)"
}

case $cmd in
  up) up ;;
  rolling-upgrade) rolling_upgrade ;;
  down) down ;;
  status) status ;;
  logs) logs ;;
  *) usage ;;
esac
