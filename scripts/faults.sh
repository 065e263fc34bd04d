#!/usr/bin/env bash
# Fault injection for the compose cluster (docker-compose.yml), from the host
# only: the containers hold nothing but the skiff binary, so network faults
# run host tools (iptables, tc) inside a container's network namespace with
# `nsenter -t PID -n`.
#
# Use it as a command:
#
#   scripts/faults.sh kill NODE [SIGNAL]     docker kill (default SIGKILL; no auto-restart)
#   scripts/faults.sh stop NODE [SECS]       graceful stop (SIGTERM, hands leadership away)
#   scripts/faults.sh start NODE | restart NODE
#   scripts/faults.sh pause NODE | unpause NODE
#   scripts/faults.sh isolate NODE           disconnect from the compose network
#   scripts/faults.sh heal NODE              reconnect NODE, remove every fault on or against it
#   scripts/faults.sh partition A[,A..] B[,B..] [--ports P[,P..]]
#                                            drop all traffic between each a and each b
#                                            (only to/from the given ports with --ports)
#   scripts/faults.sh cut-gossip A[,A..] B[,B..]   partition on the gossip port only
#   scripts/faults.sh cut-clients NODE       drop client (gRPC :9400, :9404) traffic to NODE
#   scripts/faults.sh loss NODE PCT          drop PCT% of NODE's packets, each direction
#   scripts/faults.sh delay NODE MS [JITTER] tc netem; without sch_netem, a delaying proxy
#                                            (skiff chaos proxy) in front of NODE's Raft port
#   scripts/faults.sh throttle NODE KBIT     tc tbf egress rate limit
#   scripts/faults.sh clear NODE             remove our iptables rules and qdiscs on NODE
#   scripts/faults.sh heal-all               clear every node, reconnect, unpause
#   scripts/faults.sh start-all              heal-all, then start every stopped node
#   scripts/faults.sh list                   the faults in effect
#   scripts/faults.sh drops NODE             packets dropped by our rules on NODE
#   scripts/faults.sh leader-of-controller   id (= container) of the metadata controller
#   scripts/faults.sh leader-of TOPIC PARTITION
#   scripts/faults.sh netem-available        exit 0 if tc netem works on this kernel
#
# Disk faults, only on a node whose data directory is a small tmpfs of its
# own (cluster.sh up --small-disk), never on a volume of the host's disk:
#
#   scripts/faults.sh disk-nodes             the nodes fill-disk may fill
#   scripts/faults.sh fill-disk NODE [LEAVE] fill NODE's data disk until LEAVE bytes
#                                            (default 0) are free
#   scripts/faults.sh free-disk NODE         remove what fill-disk wrote
#
# Operations (docs/operations.md), as the admin client in secure mode:
#
#   scripts/faults.sh add-node               start the spare node (docker-compose.spare.yml),
#                                            print its id once it is healthy
#   scripts/faults.sh decommission NODE      skiff node decommission NODE --wait=false
#   scripts/faults.sh maintenance NODE on|off
#                                            skiff node maintenance (on: returns once NODE
#                                            leads nothing)
#   scripts/faults.sh remove NODE            stop NODE gracefully and remove its container
#   scripts/faults.sh recreate NODE          recreate NODE's container from the image, on
#                                            its old data (an upgrade in place)
#   scripts/faults.sh cluster-status         JSON: skiff node list plus the under-replicated
#                                            and offline partition counts
#
# or source it (`. scripts/faults.sh`) and call fault_<verb> (dashes become
# underscores: fault_heal_all, fault_leader_of_controller).
#
# Every iptables rule we add carries the comment "skiff-fault/<target>", so
# clear and heal-all remove ours and nothing else (Docker keeps its own DNS
# rules in each container's namespace). Our qdiscs use handle 5eed:. Delay
# proxies run on the host inside a node's network namespace; their pids are
# kept in $SKIFF_FAULT_STATE (default /tmp/skiff-faults-<project>).
# A node is a container name: skiff-1, skiff-2, ... (= its node id).

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FAULT_TAG=skiff-fault
FAULT_QDISC_HANDLE=5eed:
# Exit status of a fault this machine cannot inject (e.g. no sch_netem).
FAULT_UNSUPPORTED=3
SKIFF_FAULT_STATE=${SKIFF_FAULT_STATE:-/tmp/skiff-faults-$SKIFF_PROJECT}
# The Raft port inside a node and the port its delay proxy listens on.
FAULT_RAFT_PORT=9401
FAULT_PROXY_PORT=19401

_fault_pid() {
  local pid
  pid=$(docker inspect -f '{{.State.Pid}}' "$1" 2>/dev/null) || { skiff_die "no container $1"; return 1; }
  if [ -z "$pid" ] || [ "$pid" = 0 ]; then
    skiff_die "$1 is not running"
    return 1
  fi
  echo "$pid"
}

# _fault_ns NODE CMD...: run a host command inside NODE's network namespace.
_fault_ns() {
  local node=$1 pid
  shift
  pid=$(_fault_pid "$node") || return 1
  nsenter -t "$pid" -n "$@"
}

# _fault_ip NODE: NODE's address on the compose network ("" if disconnected).
_fault_ip() {
  docker inspect -f "{{with index .NetworkSettings.Networks \"$SKIFF_NETWORK\"}}{{.IPAddress}}{{end}}" "$1" 2>/dev/null
}

_fault_connected() { [ -n "$(_fault_ip "$1")" ]; }

# _fault_ifaces NODE: NODE's network interfaces except loopback.
_fault_ifaces() {
  _fault_ns "$1" ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | { grep -vx lo || true; }
}

_fault_iptables() {
  local node=$1
  shift
  _fault_ns "$node" iptables -w 5 "$@"
}

_fault_tools() {
  skiff_need nsenter util-linux && skiff_need iptables && skiff_need tc iproute2
}

# _fault_split LIST: "a,b c" -> one name a line.
_fault_split() { tr ', ' '\n\n' <<<"$*" | grep -v '^$' || true; }

fault_kill() {
  local node=${1:?kill NODE [SIGNAL]} sig=${2:-KILL}
  skiff_log "kill -$sig $node"
  docker kill -s "$sig" "$node" >/dev/null
}

fault_stop() {
  local node=${1:?stop NODE [SECS]} secs=${2:-35}
  skiff_log "stop $node (graceful, up to ${secs}s)"
  docker stop -t "$secs" "$node" >/dev/null
}

fault_start() {
  local node=${1:?start NODE}
  skiff_log "start $node"
  docker start "$node" >/dev/null
}

fault_restart() {
  local node=${1:?restart NODE}
  skiff_log "restart $node"
  docker restart -t 35 "$node" >/dev/null
}

fault_pause() {
  local node=${1:?pause NODE}
  skiff_log "pause $node"
  docker pause "$node" >/dev/null
}

fault_unpause() {
  local node=${1:?unpause NODE}
  skiff_log "unpause $node"
  docker unpause "$node" >/dev/null
}

fault_isolate() {
  local node=${1:?isolate NODE}
  skiff_log "isolate $node (disconnect from network $SKIFF_NETWORK)"
  docker network disconnect "$SKIFF_NETWORK" "$node"
}

# fault_connect NODE: undo isolate. The node may get a new address; peers
# resolve it by name (Raft, HTTP) and gossip accepts the node's new address
# (membership's DeadNodeReclaimTime).
fault_connect() {
  local node=${1:?connect NODE}
  _fault_connected "$node" && return 0
  skiff_log "reconnect $node to network $SKIFF_NETWORK"
  docker network connect --alias "$node" "$SKIFF_NETWORK" "$node"
}

# _fault_drop_between NODE PEER_NAME PEER_IP [PORTS]: on NODE, drop
# everything to and from PEER_IP (only packets whose source or destination
# port is in PORTS when given).
_fault_drop_between() {
  local node=$1 peer=$2 ip=$3 ports=${4:-} proto
  local tag="$FAULT_TAG/$peer"
  if [ -z "$ports" ]; then
    _fault_iptables "$node" -I INPUT -s "$ip" -m comment --comment "$tag" -j DROP &&
      _fault_iptables "$node" -I OUTPUT -d "$ip" -m comment --comment "$tag" -j DROP
    return
  fi
  for proto in tcp udp; do
    _fault_iptables "$node" -I INPUT -s "$ip" -p "$proto" -m multiport --ports "$ports" -m comment --comment "$tag" -j DROP &&
      _fault_iptables "$node" -I OUTPUT -d "$ip" -p "$proto" -m multiport --ports "$ports" -m comment --comment "$tag" -j DROP ||
      return 1
  done
}

# fault_partition A[,A..] B[,B..] [--ports P[,P..]]: every node of the first
# group loses contact with every node of the second (both directions, rules on
# both sides); links inside a group stay. Nodes outside both groups are not
# touched: `partition skiff-1 skiff-2` leaves skiff-3 talking to both.
fault_partition() {
  local left=${1:?partition A[,A..] B[,B..] [--ports P,..]} right=${2:?partition A B} ports=""
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      --ports) ports=${2:?--ports needs a list}; shift 2 ;;
      --ports=*) ports=${1#--ports=}; shift ;;
      *) skiff_die "partition: unknown argument $1"; return 1 ;;
    esac
  done
  _fault_tools || return 1
  local a b ipa ipb
  skiff_log "partition {$left} | {$right}${ports:+ on ports $ports}"
  for a in $(_fault_split "$left"); do
    ipa=$(_fault_ip "$a")
    [ -n "$ipa" ] || { skiff_die "$a has no address on $SKIFF_NETWORK"; return 1; }
    for b in $(_fault_split "$right"); do
      ipb=$(_fault_ip "$b")
      [ -n "$ipb" ] || { skiff_die "$b has no address on $SKIFF_NETWORK"; return 1; }
      _fault_drop_between "$a" "$b" "$ipb" "$ports" || return 1
      _fault_drop_between "$b" "$a" "$ipa" "$ports" || return 1
    done
  done
}

# fault_cut_gossip A B: gossip (UDP and TCP 9402) between the groups is cut,
# Raft (9401) and HTTP still flow. Nodes must not move replicas because of it.
fault_cut_gossip() {
  fault_partition "${1:?cut-gossip A[,A..] B[,B..]}" "${2:?cut-gossip A B}" --ports 9402
}

# fault_cut_clients NODE: clients (anything reaching NODE's gRPC port from
# outside the container) get no answer; peers are unaffected (they speak
# Raft, gossip and HTTP, never gRPC, to each other). The container's own
# healthcheck uses loopback and keeps passing.
fault_cut_clients() {
  local node=${1:?cut-clients NODE}
  _fault_tools || return 1
  skiff_log "cut clients from $node (drop tcp :9400 and :9404, its internal and external listeners)"
  _fault_iptables "$node" -I INPUT ! -i lo -p tcp -m multiport --dports 9400,9404 -m comment --comment "$FAULT_TAG/clients" -j DROP
}

# fault_loss NODE PCT: drop PCT percent (0-100, decimals allowed) of the
# packets NODE receives and of those it sends, loopback excepted.
fault_loss() {
  local node=${1:?loss NODE PCT} pct=${2:?loss NODE PCT} p
  _fault_tools || return 1
  p=$(awk -v pct="$pct" 'BEGIN { if (pct !~ /^[0-9.]+$/ || pct > 100) exit 1; printf "%.4f", pct / 100 }') ||
    { skiff_die "loss: PCT must be a number from 0 to 100, got $pct"; return 1; }
  skiff_log "loss $pct% on $node (each direction)"
  _fault_iptables "$node" -I INPUT ! -i lo -m statistic --mode random --probability "$p" -m comment --comment "$FAULT_TAG/loss" -j DROP &&
    _fault_iptables "$node" -I OUTPUT ! -o lo -m statistic --mode random --probability "$p" -m comment --comment "$FAULT_TAG/loss" -j DROP
}

# fault_netem_available: whether the kernel has sch_netem, probed in a
# throwaway network namespace so no container is touched.
fault_netem_available() {
  skiff_need tc iproute2 >/dev/null && skiff_need unshare util-linux >/dev/null || return 1
  unshare --net tc qdisc add dev lo root netem delay 1ms >/dev/null 2>&1
}

# fault_delay NODE MS [JITTER_MS]: delay NODE's traffic by MS (plus up to
# JITTER_MS). With sch_netem: every packet NODE sends (egress, so a round
# trip to NODE gains MS). Without it (this kernel): the Raft connections
# reaching NODE go through a delaying proxy, see _fault_delay_proxy.
fault_delay() {
  local node=${1:?delay NODE MS [JITTER]} ms=${2:?delay NODE MS} jitter=${3:-0} ifc
  _fault_tools || return 1
  if ! fault_netem_available; then
    _fault_delay_proxy "$node" "$ms" "$jitter"
    return
  fi
  skiff_log "delay ${ms}ms (jitter ${jitter}ms) on $node egress"
  for ifc in $(_fault_ifaces "$node"); do
    _fault_ns "$node" tc qdisc replace dev "$ifc" root handle "$FAULT_QDISC_HANDLE" netem delay "${ms}ms" "${jitter}ms" || return 1
  done
}

# _fault_delay_proxy NODE MS JITTER_MS: `skiff chaos proxy` runs on the host
# inside NODE's network namespace (the container holds only the server) and
# an iptables REDIRECT sends every Raft connection reaching NODE from a peer
# through it; the proxy delays both directions of each. Connections opened
# before the redirect are reset (REJECT on the original port, which only
# they still use), so hashicorp/raft redials through the proxy. The delay
# applies to every Raft link of NODE in which NODE accepted the connection;
# delay every node to slow every link.
_fault_delay_proxy() {
  local node=$1 ms=$2 jitter=$3 pid bin=${SKIFF_BIN:-$SKIFF_ROOT/bin/skiff} pidfile
  [ -x "$bin" ] || { skiff_die "delay: no sch_netem and no skiff binary at $bin for the proxy (make build)"; return "$FAULT_UNSUPPORTED"; }
  pid=$(_fault_pid "$node") || return 1
  pidfile="$SKIFF_FAULT_STATE/proxy-$node.pid"
  mkdir -p "$SKIFF_FAULT_STATE"
  _fault_stop_proxy "$node"
  skiff_log "delay ${ms}ms (jitter ${jitter}ms) on $node's Raft links (proxy :$FAULT_PROXY_PORT, no sch_netem)"
  setsid nsenter -t "$pid" -n "$bin" chaos proxy --listen "0.0.0.0:$FAULT_PROXY_PORT" \
    --target "127.0.0.1:$FAULT_RAFT_PORT" --delay "${ms}ms" --jitter "${jitter}ms" \
    </dev/null >"$SKIFF_FAULT_STATE/proxy-$node.log" 2>&1 &
  echo $! >"$pidfile"
  local i
  for i in $(seq 1 20); do
    grep -q '^proxy ' "$SKIFF_FAULT_STATE/proxy-$node.log" 2>/dev/null && break
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { skiff_die "delay proxy for $node exited: $(cat "$SKIFF_FAULT_STATE/proxy-$node.log")"; return 1; }
    sleep 0.1
  done
  _fault_iptables "$node" -t nat -I PREROUTING ! -i lo -p tcp --dport "$FAULT_RAFT_PORT" \
    -m comment --comment "$FAULT_TAG/delay" -j REDIRECT --to-ports "$FAULT_PROXY_PORT" &&
    _fault_iptables "$node" -I INPUT ! -i lo -p tcp --dport "$FAULT_RAFT_PORT" \
      -m comment --comment "$FAULT_TAG/delay" -j REJECT --reject-with tcp-reset
}

# _fault_stop_proxy NODE: stop NODE's delay proxy, if any.
_fault_stop_proxy() {
  local pidfile="$SKIFF_FAULT_STATE/proxy-$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  # Only our proxy: the pid file's process must still be a skiff chaos proxy.
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'chaos proxy'; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# fault_throttle NODE KBIT: cap NODE's egress at KBIT kbit/s with a token
# bucket (sch_tbf). Not a fixed delay, but under load queueing makes the node
# slow in the same way, and it works on kernels without netem.
fault_throttle() {
  local node=${1:?throttle NODE KBIT} kbit=${2:?throttle NODE KBIT} ifc
  _fault_tools || return 1
  skiff_log "throttle $node egress to ${kbit}kbit/s"
  for ifc in $(_fault_ifaces "$node"); do
    _fault_ns "$node" tc qdisc replace dev "$ifc" root handle "$FAULT_QDISC_HANDLE" tbf rate "${kbit}kbit" burst 32kbit latency 2s || return 1
  done
}

# _fault_clear_rules NODE [TAG_SUFFIX]: delete our iptables rules on NODE
# (only those tagged skiff-fault/TAG_SUFFIX when given).
_fault_clear_rules() {
  local node=$1 want="$FAULT_TAG/${2:-}" line table
  local -a rule
  # iptables-nft quotes comments, iptables-legacy does not; ours hold no
  # spaces, so dropping the quotes leaves a rule spec -D accepts.
  for table in filter nat; do
    _fault_iptables "$node" -t "$table" -S 2>/dev/null | tr -d '"' | { grep -F -- "--comment $want" || true; } | while read -r line; do
      [ "${line:0:3}" = "-A " ] || continue
      read -r -a rule <<<"${line#-A }"
      _fault_iptables "$node" -t "$table" -D "${rule[@]}" || skiff_log "could not delete rule on $node: $line"
    done
  done
}

_fault_clear_qdiscs() {
  local node=$1 ifc
  for ifc in $(_fault_ifaces "$node"); do
    if _fault_ns "$node" tc qdisc show dev "$ifc" | grep -q "qdisc [a-z]* $FAULT_QDISC_HANDLE "; then
      _fault_ns "$node" tc qdisc del dev "$ifc" root || return 1
    fi
  done
}

# fault_clear NODE: remove every iptables rule and qdisc we put on NODE
# (rules on other nodes against NODE stay; see fault_heal).
fault_clear() {
  local node=${1:?clear NODE}
  _fault_stop_proxy "$node"
  _fault_pid "$node" >/dev/null 2>&1 || return 0 # not running: its namespace is gone
  _fault_tools || return 1
  _fault_clear_rules "$node"
  _fault_clear_qdiscs "$node"
}

# fault_heal NODE: reconnect NODE if isolated, unpause it if paused, clear its
# own rules and qdiscs, and remove the rules other nodes hold against it.
fault_heal() {
  local node=${1:?heal NODE} other
  skiff_log "heal $node"
  [ "$(skiff_health "$node")" != paused ] || docker unpause "$node" >/dev/null
  if docker inspect -f '{{.State.Running}}' "$node" 2>/dev/null | grep -q true; then
    fault_connect "$node" || return 1
    fault_clear "$node" || return 1
  fi
  for other in $(skiff_nodes); do
    [ "$other" != "$node" ] || continue
    _fault_pid "$other" >/dev/null 2>&1 || continue
    _fault_clear_rules "$other" "$node"
  done
}

# fault_heal_all: no network fault left anywhere, no node paused. Stopped or
# killed nodes stay down (fault_start_all starts them).
fault_heal_all() {
  local node rc=0
  skiff_log "heal all"
  for node in $(skiff_nodes); do
    _fault_stop_proxy "$node"
    [ "$(skiff_health "$node")" != paused ] || docker unpause "$node" >/dev/null || rc=1
    _fault_pid "$node" >/dev/null 2>&1 || continue
    fault_connect "$node" || rc=1
    fault_clear "$node" || rc=1
  done
  return $rc
}

fault_start_all() {
  local node rc=0
  fault_heal_all || rc=1
  for node in $(skiff_nodes); do
    if [ "$(docker inspect -f '{{.State.Running}}' "$node")" != true ]; then
      fault_start "$node" || rc=1
    fi
  done
  return $rc
}

# fault_list prints the faults in effect, one a line.
fault_list() {
  local node st ifc
  for node in $(skiff_nodes); do
    st=$(skiff_health "$node")
    case $st in healthy|starting|unhealthy|running) ;; *) echo "$node: $st" ;; esac
    _fault_pid "$node" >/dev/null 2>&1 || continue
    _fault_connected "$node" || echo "$node: isolated (not on network $SKIFF_NETWORK)"
    _fault_iptables "$node" -S 2>/dev/null | tr -d '"' | grep -F -- "--comment $FAULT_TAG/" | sed "s/^/$node: iptables /" || true
    _fault_iptables "$node" -t nat -S 2>/dev/null | tr -d '"' | grep -F -- "--comment $FAULT_TAG/" | sed "s/^/$node: iptables -t nat /" || true
    [ ! -f "$SKIFF_FAULT_STATE/proxy-$node.pid" ] || echo "$node: delay proxy pid $(cat "$SKIFF_FAULT_STATE/proxy-$node.pid")"
    for ifc in $(_fault_ifaces "$node"); do
      _fault_ns "$node" tc qdisc show dev "$ifc" | grep " $FAULT_QDISC_HANDLE " | sed "s/^/$node: $ifc /" || true
    done
  done
}

# fault_drops NODE: packets our rules on NODE have dropped so far (evidence
# that a partition or loss is biting).
fault_drops() {
  local node=${1:?drops NODE}
  _fault_iptables "$node" -L -v -n -x 2>/dev/null | awk -v tag="$FAULT_TAG/" 'index($0, tag) && $3 == "DROP" { n += $1 } END { print n + 0 }'
}

# _fault_majority: most frequent non-empty input line (first seen wins ties).
_fault_majority() {
  awk 'NF { if (!($0 in n)) order[++k] = $0; n[$0]++ }
       END { for (i = 1; i <= k; i++) if (n[order[i]] > best) { best = n[order[i]]; w = order[i] } if (k) print w; else exit 1 }'
}

# fault_leader_of_controller prints the id (= container) of the metadata
# controller as most reachable nodes see it: an isolated node may still
# believe in an old controller for a while.
fault_leader_of_controller() {
  skiff_need jq >/dev/null || return 1
  local node
  for node in $(skiff_nodes); do
    # In parallel: a node cut off answers slowly or not at all.
    { skiff_http "$node" /v1/cluster 2>/dev/null | jq -r '.controller // empty' 2>/dev/null || true; } &
  done | _fault_majority
}

# fault_leader_of TOPIC PARTITION prints the id of the partition's leader.
fault_leader_of() {
  local topic=${1:?leader-of TOPIC PARTITION} part=${2:?leader-of TOPIC PARTITION} node
  skiff_need jq >/dev/null || return 1
  for node in $(skiff_nodes); do
    { skiff_http "$node" "/v1/topics/$topic" 2>/dev/null |
      jq -r --argjson p "$part" '.partitions[] | select(.partition == $p) | .leader // empty' 2>/dev/null || true; } &
  done | _fault_majority
}

# The data directory of a node (the image's SKIFF_DATA_DIR) and the file
# fill-disk writes into it; the node ignores files it does not know.
FAULT_DATA_DIR=/var/lib/skiff
FAULT_FILL_FILE=chaos-fill

# fault_disk_nodes prints the nodes whose data directory is a tmpfs mount of
# their own: the only ones fill-disk fills.
fault_disk_nodes() {
  local node
  for node in $(skiff_nodes); do
    docker inspect -f '{{range .Mounts}}{{if eq .Destination "'"$FAULT_DATA_DIR"'"}}{{.Type}}{{end}}{{end}}' "$node" 2>/dev/null |
      grep -qx tmpfs && echo "$node"
  done
  return 0
}

# _fault_disk_dir NODE: NODE's data directory as the host sees it, through
# the mount namespace of the container's process.
_fault_disk_dir() {
  local node=$1 pid
  fault_disk_nodes | grep -qx -- "$node" ||
    { skiff_die "$node's data directory is not a small disk of its own (scripts/cluster.sh up --small-disk); refusing to fill the machine's disk"; return 1; }
  pid=$(_fault_pid "$node") || return 1
  echo "/proc/$pid/root$FAULT_DATA_DIR"
}

# fault_fill_disk NODE [LEAVE]: write zeros into NODE's data disk until
# fewer than LEAVE bytes (default 0: none) are free. The node keeps writing
# meanwhile, so "full" is what the last write found.
# _fault_avail DIR: bytes free on DIR's file system (df cannot name a mount
# seen through /proc/PID/root; statfs can).
_fault_avail() {
  local s
  s=$(stat -f -c '%a %S' "$1") || return 1
  echo $((${s% *} * ${s#* }))
}

fault_fill_disk() {
  local node=${1:?fill-disk NODE [LEAVE_BYTES]} leave=${2:-0} dir avail
  dir=$(_fault_disk_dir "$node") || return 1
  avail=$(_fault_avail "$dir") || return 1
  skiff_log "fill the data disk of $node ($avail bytes free; leave $leave)"
  if [ "$leave" -gt 0 ]; then
    [ "$avail" -gt "$leave" ] || return 0
    head -c "$((avail - leave))" /dev/zero >>"$dir/$FAULT_FILL_FILE"
    return
  fi
  # To the last byte: the write that finds no space ends it (bounded by
  # the tmpfs size, and by time in case the node frees space as fast).
  timeout 60 dd if=/dev/zero of="$dir/$FAULT_FILL_FILE" bs=64k oflag=append conv=notrunc status=none 2>/dev/null || true
  skiff_log "$node: $(_fault_avail "$dir") bytes free"
}

fault_free_disk() {
  local node=${1:?free-disk NODE} dir
  dir=$(_fault_disk_dir "$node") || return 1
  skiff_log "free the data disk of $node"
  rm -f "$dir/$FAULT_FILL_FILE"
}

# _fault_skiff ARGS...: the skiff CLI against the running cluster, as the
# admin client in secure mode.
_fault_skiff() {
  local bin=${SKIFF_BIN:-$SKIFF_ROOT/bin/skiff}
  [ -x "$bin" ] || { skiff_die "no skiff binary at $bin (make build)"; return 1; }
  (skiff_use_tls && "$bin" --brokers "$(skiff_brokers)" "$@")
}

# fault_add_node: start the spare node and print its id once it is healthy.
fault_add_node() {
  local id
  id=$(skiff_spare_id)
  if docker inspect "$id" >/dev/null 2>&1; then
    skiff_die "$id exists already"
    return 1
  fi
  skiff_log "add node $id"
  SKIFF_SPARE=1 skiff_compose up -d --no-deps spare >&2 || return 1
  skiff_wait_for 120 "$id healthy" _fault_healthy "$id" >/dev/null || return 1
  echo "$id"
}

_fault_healthy() { [ "$(skiff_health "$1")" = healthy ]; }

fault_decommission() {
  local node=${1:?decommission NODE}
  skiff_log "decommission $node"
  _fault_skiff node decommission "$node" --wait=false >&2
}

fault_maintenance() {
  local node=${1:?maintenance NODE on|off} state=${2:?maintenance NODE on|off}
  skiff_log "maintenance $state $node"
  _fault_skiff node maintenance "$state" "$node" --wait-timeout 120s >&2
}

# fault_remove NODE: stop NODE gracefully and remove its container (its
# volume goes with `cluster.sh down`), as after a decommission.
fault_remove() {
  local node=${1:?remove NODE}
  skiff_log "remove $node"
  docker stop -t 35 "$node" >/dev/null && docker rm "$node" >/dev/null
}

# fault_recreate NODE: a new container from the image on the node's volume,
# after a graceful stop (stop_grace_period), as an upgrade does.
fault_recreate() {
  local node=${1:?recreate NODE} service=$1
  [ "$node" != "$(skiff_spare_id)" ] || service=spare
  skiff_log "recreate $node"
  skiff_compose up -d --no-deps --force-recreate "$service" >&2
}

fault_cluster_status() {
  skiff_need jq >/dev/null || return 1
  local nodes st
  nodes=$(_fault_skiff node list -o json --timeout 5s) || return 1
  st=$(_fault_skiff cluster status -o json --timeout 5s) || return 1
  jq -cn --argjson n "$nodes" --argjson s "$st" \
    '{nodes: $n, under_replicated: $s.under_replicated_partitions, offline: $s.offline_partitions}'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  verb=${1:-}
  if [ -z "$verb" ] || [ "$verb" = -h ] || [ "$verb" = --help ]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
  fi
  shift
  fn="fault_${verb//-/_}"
  if ! declare -F "$fn" >/dev/null; then
    echo "unknown fault: $verb (see $0 --help)" >&2
    exit 2
  fi
  "$fn" "$@"
fi
