# shellcheck shell=bash
# scripts/lib/bench-rt.sh: part realtime-100k of scripts/bench (sourced by it, after the
# stack is up; uses its helpers: log die api kv rss_kb cpu_ticks worker_env_file
# in_worker_env raw_begin fact raw_end bridge_run bridge_keeps_up, and MQTT_PIDS, WORK,
# RAW, BASE, ROOT, TH_VAR_DIR, TH_BIN_DIR, TH_PORT_BASE, DURATION, WARMUP, MQTT_RATE,
# MQTT_SUBS). It launches and collects only: what the tools print goes into the part's
# raw result as it is (tests/bench/collect.mjs), and tests/bench/render-realtime.mjs
# sums, decides and writes the section from it.
#
# The real-time tier of issue 18 (fronts th-wsfront on BASE+4, edge brokers on
# BASE+10+i, the hub on BASE+3) holding BENCH_RT_CONNS authenticated WebSocket
# subscribers, beside one plain mosquitto (no plugin, its own WebSocket listener)
# holding what it can in the same run:
#   - clients held, connect rate, memory per connection (VmRSS summed over fronts,
#     edges and hub, before/after);
#   - fan-out p99 at MQTT_RATE msg/s to MQTT_SUBS subscribers while they are held
#     (th-mqtt_load fan), all on one user's edge and spread over users (so over edges),
#     straight to the fronts' port and through nginx /mqtt;
#   - one message to every held subscriber (one community): time until the last has it;
#   - chat persisted with two bridges (one $share group) at the highest step that keeps
#     up, ÷ the hub's own highest step with no bridge (th-bridge_load on the hub's port),
#     after the clients are gone;
#   - reconnect storm: SIGKILL of the edge holding most clients (the plain broker:
#     SIGKILL and restart); time until every client is back, ping round trips on a
#     surviving broker meanwhile (the longest is the longest stall), fan-out deliveries
#     missing meanwhile.
# Clients: tests/load/rt_hold.c (th-rt_hold), processes of at most BENCH_RT_PER_PROC
# each bound to two source addresses of 127.0.2.0/24, started and collected here.
# Users: BENCH_RT_CONNS users, each with one live session and a member of one
# community, seeded with SQL generate_series (one transaction), the membership mirror
# rebuilt by scripts/mirror-rebuild, tokens signed by th-rt_tokens with the stack's
# key (no logins).
# Kernel (as root, restored at exit; BENCH_RT_SYSCTL=0 leaves it alone):
#   net.ipv4.ip_local_port_range 32768 65000 (not lower: the stacks' listening ports live
#   below 32768 and an outgoing port there could take one), net.core.somaxconn 65535,
#   net.ipv4.tcp_max_syn_backlog 65535, net.ipv4.tcp_mem x4,
#   net.netfilter.nf_conntrack_max 1048576 (when conntrack is loaded),
#   net.core.netdev_max_backlog 65536: every loopback packet goes through the per-CPU
#   backlog, 1000 packets by default; a broadcast to 100k clients (two loopback hops
#   each) or a burst of TCP keepalive probes overflows it, and each packet dropped
#   there costs a retransmission (>= 200 ms) or, three probes in a row, a reset
#   connection. The drops are counted over each system's run (/proc/net/softnet_stat).
#
# Knobs:
#   BENCH_RT_CONNS        clients held by the tier (default 100000)
#   BENCH_RT_PER_PROC     clients per th-rt_hold process (default 16667, at most 19500)
#   BENCH_RT_PLAIN_CONNS  clients offered to the plain broker (default 19000: its
#                         20,000-descriptor cap, less room for the fan-out and ping clients)
#                         0: no plain broker (its column n/a; to iterate on the tier)
#   BENCH_RT_INFLIGHT     handshakes in flight per process (default 128)
#   BENCH_RT_READY_WAIT   at most this many s for the clients to connect (default 420)
#   BENCH_RT_STORM_WAIT   at most this many s for a storm's clients to come back (default 90)
#   BENCH_RT_SYSCTL       1: tune the kernel as above (default 1 as root)
#   BENCH_RT_BRIDGE_RATES offered msg/s of the persistence steps (default 2000,5000,10000,20000)
#   BENCH_RT_BRIDGE_STEP  seconds per step (default 10)
#   BENCH_RT_BRIDGE_REFINE steps between the highest kept up with and the first not (default 3)
#   BENCH_RT_IDLE_S       seconds the held clients idle while the servers' CPU is sampled
#                         (default 10): what idle connections cost
#   BENCH_RT_EDGES / BENCH_RT_FRONTS  TH_MQTT_EDGES / TH_WS_FRONTS of the stack (7 / 14;
#                         TH_WS_MAX_PER_ADDR 65535: scripts/bench, see why there)
#   BENCH_RT_PERF         a directory: system-wide profiles (perf record -a -g, 499 Hz) of
#                         the tier's fan-outs (one user, spread) and broadcast into it, kept after the
#                         run (unset: none; a profile costs the run some CPU)

RT_CONNS=${BENCH_RT_CONNS:-100000}
RT_PER_PROC=${BENCH_RT_PER_PROC:-16667}
RT_PLAIN_CONNS=${BENCH_RT_PLAIN_CONNS:-19000}
RT_INFLIGHT=${BENCH_RT_INFLIGHT:-128}
RT_READY_WAIT=${BENCH_RT_READY_WAIT:-420}
RT_STORM_WAIT=${BENCH_RT_STORM_WAIT:-90}
RT_SYSCTL=${BENCH_RT_SYSCTL:-1}
RT_BRIDGE_RATES=${BENCH_RT_BRIDGE_RATES:-2000,5000,10000,20000}
RT_BRIDGE_STEP=${BENCH_RT_BRIDGE_STEP:-10}
RT_BRIDGE_REFINE=${BENCH_RT_BRIDGE_REFINE:-3}
RT_IDLE_S=${BENCH_RT_IDLE_S:-10}
RT_PERF=${BENCH_RT_PERF:-}
RT_PERF_PID=
RT_SYSCTL_SAVED=()   # "key=value" to restore at exit
RT_PLAIN_PID=

# ---------------------------------------------------------------------------
# kernel settings

rt_sysctl_set() {
  local key=$1 val=$2 old
  old=$(sysctl -n "$key" 2>/dev/null | tr '\t' ' ') || return 0
  [ -n "$old" ] || return 0
  if sysctl -q -w "$key=$val" >/dev/null 2>&1; then
    RT_SYSCTL_SAVED+=("$key=$old")
    log "realtime-100k: sysctl $key: $old -> $val"
  else
    log "realtime-100k: sysctl $key could not be set (stays $old)"
  fi
}

rt_sysctl_apply() {
  local m
  if [ "$RT_SYSCTL" != 1 ] || [ "$(id -u)" != 0 ]; then
    log "realtime-100k: kernel left as it is"
    return 0
  fi
  rt_sysctl_set net.ipv4.ip_local_port_range "32768 65000"
  rt_sysctl_set net.core.somaxconn 65535
  rt_sysctl_set net.ipv4.tcp_max_syn_backlog 65535
  read -r -a m <<<"$(sysctl -n net.ipv4.tcp_mem 2>/dev/null)"
  (( ${#m[@]} == 3 )) && rt_sysctl_set net.ipv4.tcp_mem "$((m[0] * 4)) $((m[1] * 4)) $((m[2] * 4))"
  [ -e /proc/sys/net/netfilter/nf_conntrack_max ] &&
    (( $(sysctl -n net.netfilter.nf_conntrack_max) < 1048576 )) &&
    rt_sysctl_set net.netfilter.nf_conntrack_max 1048576
  rt_sysctl_set net.core.netdev_max_backlog 65536
}

# rt_softnet_drops: packets dropped by the per-CPU input backlogs since boot, summed
rt_softnet_drops() {
  local s=0 h
  while read -r _ h _; do s=$((s + 16#$h)); done </proc/net/softnet_stat
  echo "$s"
}

# called by scripts/bench's cleanup: the plain broker, then the kernel as it was
bench_rt_cleanup() {
  local kv
  [ -n "$RT_PLAIN_PID" ] && kill -9 "$RT_PLAIN_PID" 2>/dev/null
  for kv in "${RT_SYSCTL_SAVED[@]}"; do
    sysctl -q -w "$kv" >/dev/null 2>&1 && log "realtime-100k: sysctl restored ${kv%%=*}"
  done
  RT_SYSCTL_SAVED=()
}

# ---------------------------------------------------------------------------
# the tier's processes

# rt_edge_ports: the edges' TCP ports, one a line (none on a stack without edges)
rt_edge_ports() {
  local i
  for i in $(seq 0 15); do
    [ -f "$TH_VAR_DIR/run/mosquitto-e$i.pid" ] && echo $((TH_PORT_BASE + 10 + i))
  done
}

# rt_tier_pids: fronts (master and workers), edges and hub; the single broker of a
# stack without the tier
rt_tier_pids() {
  local f p
  if p=$(cat "$TH_VAR_DIR/run/wsfront.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; then
    echo "$p"
    pgrep -P "$p"
  fi
  for f in "$TH_VAR_DIR"/run/mosquitto-hub.pid "$TH_VAR_DIR"/run/mosquitto-e*.pid "$TH_VAR_DIR"/run/mosquitto.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null)
    [[ $p =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && echo "$p"
  done
}

# rt_rss PID...: VmRSS summed, KiB
rt_rss() {
  local p s=0
  for p in "$@"; do s=$((s + $(rss_kb "$p"))); done
  echo "$s"
}

# ---------------------------------------------------------------------------
# fixtures: RT_CONNS users with a session each, members of one community; 11 of
# them also of a second one (fan-out); credentials files for th-rt_hold and
# th-mqtt_load

rt_seed() {
  local owner cid chid fan_cid fan_chid conninfo t0 n
  read -r _ owner <<<"$(mqtt_register bench_rt_owner)"
  cid=$(api POST /api/communities "$owner" \
    '{"slug":"bench-rt-all","name":"Bench realtime 100k","visibility":"public"}' 201 | jq -r .id)
  chid=$(api GET "/api/communities/$cid/channels" "$owner" '' 200 | jq -r '.items[0].id')
  fan_cid=$(api POST /api/communities "$owner" \
    '{"slug":"bench-rt-fan","name":"Bench realtime fan-out","visibility":"public"}' 201 | jq -r .id)
  fan_chid=$(api GET "/api/communities/$fan_cid/channels" "$owner" '' 200 | jq -r '.items[0].id')
  [[ $chid =~ ^[0-9]+$ && $fan_chid =~ ^[0-9]+$ ]] || die "realtime-100k: communities without a channel"
  worker_env_file
  conninfo=$(wenv_get TH_DB_CONNINFO '')
  [ -n "$conninfo" ] || die "realtime-100k: no TH_DB_CONNINFO"
  log "realtime-100k: seeding $RT_CONNS users with sessions, members of community $cid"
  t0=$(date +%s.%N)
  # \copy takes no variables: the rows are staged in temp tables; files land in $WORK
  (cd "$WORK" && "$PG_BIN_DIR/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$conninfo" -v n="$RT_CONNS" \
    -v cid="$cid" -v fcid="$fan_cid" -v chid="$chid" -v fchid="$fan_chid") \
    >"$WORK/rt-seed.out" 2>"$WORK/rt-seed.err" <<'SQL' || die "realtime-100k: seeding failed: $(tail -3 "$WORK/rt-seed.err")"
BEGIN;
SET LOCAL synchronous_commit = off;
INSERT INTO users (email, username, display_name, password_hash)
SELECT 'rt' || g || '@bench.invalid', 'rt_' || g, 'RT user ' || g, '!seeded'
FROM generate_series(1, :n) g;
CREATE TEMP TABLE rt_u ON COMMIT DROP AS
SELECT id AS uid, (row_number() OVER (ORDER BY id))::int AS k FROM users WHERE username ~ '^rt_[0-9]+$';
INSERT INTO sessions (user_id, client_addr) SELECT uid, '127.0.0.1' FROM rt_u;
INSERT INTO memberships (community_id, user_id, role) SELECT :cid, uid, 'member' FROM rt_u;
INSERT INTO memberships (community_id, user_id, role) SELECT :fcid, uid, 'member' FROM rt_u WHERE k <= 11;
UPDATE communities SET member_count = member_count + :n WHERE id = :cid;
UPDATE communities SET member_count = member_count + 11 WHERE id = :fcid;
CREATE TEMP TABLE rt_s ON COMMIT DROP AS
SELECT u.k, u.uid, s.id AS sid, :chid::bigint AS chid, :fchid::bigint AS fchid
FROM rt_u u JOIN sessions s ON s.user_id = u.uid;
CREATE TEMP VIEW rt_all AS SELECT uid, sid, chid FROM rt_s ORDER BY k;
CREATE TEMP VIEW rt_fan AS SELECT uid, sid, fchid FROM rt_s WHERE k <= 11 ORDER BY k;
\copy (SELECT * FROM rt_all) TO 'rt-sessions' WITH (DELIMITER ' ')
\copy (SELECT * FROM rt_fan) TO 'rt-fan-sessions' WITH (DELIMITER ' ')
COMMIT;
ANALYZE users;
ANALYZE sessions;
ANALYZE memberships;
SQL
  n=$(wc -l <"$WORK/rt-sessions")
  (( n == RT_CONNS )) || die "realtime-100k: $n sessions seeded, not $RT_CONNS"
  log "  seeded in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  "$ROOT/scripts/mirror-rebuild" >"$WORK/rt-mirror.out" 2>&1 || die "realtime-100k: mirror-rebuild: $(tail -3 "$WORK/rt-mirror.out")"
  log "  mirror: $(tail -1 "$WORK/rt-mirror.out")"
  fact tokens.start "$(date +%s.%N)"
  in_worker_env "$TH_BIN_DIR/th-rt_tokens" <"$WORK/rt-sessions" >"$WORK/rt.creds" 2>"$WORK/rt-tokens.err" ||
    die "realtime-100k: th-rt_tokens: $(tail -3 "$WORK/rt-tokens.err")"
  in_worker_env "$TH_BIN_DIR/th-rt_tokens" <"$WORK/rt-fan-sessions" >"$WORK/rt-fan-spread.creds" 2>>"$WORK/rt-tokens.err" ||
    die "realtime-100k: th-rt_tokens: $(tail -3 "$WORK/rt-tokens.err")"
  fact tokens.end "$(date +%s.%N)"
  log "  $(wc -l <"$WORK/rt.creds") tokens signed"
  # one user: the publisher and every subscriber on that user's edge
  head -1 "$WORK/rt-fan-spread.creds" >"$WORK/rt-fan-one.creds"
}

# ---------------------------------------------------------------------------
# holders

# rt_hold_start LABEL PORT PATH N SUBNET: N clients in processes of RT_PER_PROC,
# process k bound to SUBNET.(2k+2) and SUBNET.(2k+3); pids in RT_HOLD_PIDS
rt_hold_start() {
  local label=$1 port=$2 path=$3 n=$4 net=$5 k=0 left=$4 per start=0
  RT_HOLD_PIDS=()
  rm -f "$WORK/rt-$label".*.out
  while (( left > 0 )); do
    per=$(( left < RT_PER_PROC ? left : RT_PER_PROC ))
    "$TH_BIN_DIR/th-rt_hold" -p "$port" -P "$path" -c "$WORK/rt.creds" \
      -b "$net.$((2 * k + 2)),$net.$((2 * k + 3))" -s "$start" -n "$per" -C "$RT_INFLIGHT" \
      -k 600 -t 60 -T 1800 -R >"$WORK/rt-$label.$k.out" 2>"$WORK/rt-$label.$k.err" &
    RT_HOLD_PIDS+=($!)
    MQTT_PIDS+=($!)
    start=$((start + per)); left=$((left - per)); k=$((k + 1))
  done
  RT_HOLD_PROCS=$k
}

# rt_last_stat LABEL KEY: KEY summed over each process's last complete stat line
rt_last_stat() {
  local f s=0 line
  for f in "$WORK/rt-$1".*.out; do
    line=$(grep -E '^stat .* ping_max_ms=' "$f" | tail -1)
    s=$((s + $(kv "$line" "$2" | sed 's/^$/0/')))
  done
  echo "$s"
}

# rt_hold_ready LABEL WAIT: waits until every process printed "ready" (or WAIT s)
rt_hold_ready() {
  local label=$1 wait=$2 t0=$SECONDS f
  while (( SECONDS - t0 < wait )); do
    (( $(cat "$WORK/rt-$label".*.out 2>/dev/null | grep -c '^ready ') == RT_HOLD_PROCS )) && break
    sleep 1
  done
  for f in "$WORK/rt-$label".*.out; do
    grep -q '^ready ' "$f" || log "  $(basename "$f"): not ready: $(grep '^stat' "$f" | tail -1)"
  done
}

# rt_snap LABEL NAME: each holder's last complete stat line now, kept as the raw record
# tool-snap_NAME_LABEL.K (the counters at that moment: held, drops, bcast, failures)
rt_snap() {
  local f k=0
  for f in "$WORK/rt-$1".*.out; do
    k=$((k + 1))
    grep -E '^stat .* ping_max_ms=' "$f" | tail -1 >"$RAW/tool-snap_$2_$1.$k.txt"
  done
}

# rt_hold_stop: TERM to the holders, waits; their "final" lines stay in the files
rt_hold_stop() {
  local p
  kill -TERM "${RT_HOLD_PIDS[@]}" 2>/dev/null
  for p in "${RT_HOLD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  RT_HOLD_PIDS=()
}

# rt_fan NAME PORT PATH CREDS: fan-out at MQTT_RATE to MQTT_SUBS subscribers (rate
# phase only); its lines in $RAW/tool-fan_NAME.1.txt
rt_fan() {
  local f=$RAW/tool-fan_$1.1.txt
  "$TH_BIN_DIR/th-mqtt_load" fan -p "$2" -P "$3" -c "$4" -n "$MQTT_SUBS" -u 0 -r "$MQTT_RATE" \
    -d "$DURATION" -w "$WARMUP" -W 0 -T 120 >"$f" 2>"$WORK/rt-fan-$1.err"
  log "  fan $1: $(grep -E '^(rate|fan) ' "$f" | head -1)"
}

# rt_quiet PID...: waits (30 s at most) until the servers use less than half a core
# over a second, so what a fan-out run left the edges to deliver after its load stopped
# is not measured by the next run; the seconds waited into RT_QUIET_S
rt_quiet() {
  local hz t0 t1 i
  hz=$(getconf CLK_TCK)
  for i in $(seq 1 30); do
    t0=$(cpu_ticks "$@")
    sleep 1
    t1=$(cpu_ticks "$@")
    if (( (t1 - t0) * 2 < hz )); then RT_QUIET_S=$i; return 0; fi
  done
  RT_QUIET_S=30
  log "  the servers were still busy 30 s after the run"
}

# rt_broadcast LABEL PORT PATH HELD: one chat message (a member, through PORT) to the
# community every holder subscribes to; waits until HELD deliveries or 60 s; prints
# the seconds waited
rt_broadcast() {
  local t0=$SECONDS
  "$TH_BIN_DIR/th-mqtt_load" pub -p "$2" -P "$3" -c "$WORK/rt.creds" -u 0 -T 30 \
    >"$WORK/rt-pub-$1.out" 2>&1 || log "realtime-100k: broadcast publisher failed: $(tail -2 "$WORK/rt-pub-$1.out")"
  while (( $(rt_last_stat "$1" bcast) < $4 && SECONDS - t0 < 60 )); do sleep 1; done
  sleep 2
  echo $((SECONDS - t0))
}

# rt_storm_proc LABEL K FROM_LINE: "drop_ns full_ns" of holder K after line FROM_LINE
# of its output (full_ns 0 while it is not whole again; both 0 when it lost nobody)
rt_storm_proc() {
  tail -n +"$3" "$WORK/rt-$1.$2.out" | awk '
    /^drop / && !d { sub(/.*t_ns=/, ""); d = $1 + 0; next }
    /^full / && d  { sub(/.*t_ns=/, ""); f = $1 + 0 }
    END { printf "%.0f %.0f\n", d, f }'
}

# rt_storm LABEL KILL_CMD...: runs KILL_CMD (in this shell), waits until every holder
# that lost clients is whole again (or RT_STORM_WAIT s); keeps each holder's lines from
# the kill on (tool-storm_LABEL.K: its drop and full lines) and the counters before and
# after (snap_prestorm, snap_poststorm)
rt_storm() {
  local label=$1 k d f complete t0
  local -a from=()
  shift
  rt_snap "$label" prestorm
  for k in $(seq 0 $((RT_HOLD_PROCS - 1))); do
    from[k]=$(( $(wc -l <"$WORK/rt-$label.$k.out") + 1 ))
  done
  "$@"
  t0=$SECONDS
  sleep 2
  while :; do
    complete=1
    for k in $(seq 0 $((RT_HOLD_PROCS - 1))); do
      read -r d f <<<"$(rt_storm_proc "$label" "$k" "${from[k]}")"
      (( d > 0 && f == 0 )) && complete=0
    done
    (( complete || SECONDS - t0 >= RT_STORM_WAIT )) && break
    sleep 1
  done
  rt_snap "$label" poststorm
  for k in $(seq 0 $((RT_HOLD_PROCS - 1))); do
    tail -n +"${from[k]}" "$WORK/rt-$label.$k.out" | grep -E '^(drop|full) ' >"$RAW/tool-storm_$label.$((k + 1)).txt"
  done
}

# rt_pinger LABEL PORT: one raw-TCP client (credentials line 0) pinging every 20 ms.
# Stop it no sooner than a moment later: a TERM between the fork and the exec would
# run this shell's traps in the child.
rt_pinger() {
  "$TH_BIN_DIR/th-rt_hold" -p "$2" -P - -c "$WORK/rt-fan-one.creds" -s 900000 -n 1 -I 20 \
    -T 600 -i 1000 >"$WORK/rt-ping-$1.out" 2>&1 &
  RT_PING_PID=$!
  MQTT_PIDS+=($!)
}

# rt_pinger_stop LABEL: its final line (pings, ping_max_ms) into $RAW/tool-ping_LABEL.1.txt
rt_pinger_stop() {
  kill -TERM "$RT_PING_PID" 2>/dev/null
  wait "$RT_PING_PID" 2>/dev/null
  grep '^final ' "$WORK/rt-ping-$1.out" >"$RAW/tool-ping_$1.1.txt"
}

# ---------------------------------------------------------------------------
# the plain reference: Debian's mosquitto, no plugin, anonymous, WebSocket on BASE+32
# and TCP on BASE+33 (BASE+30 is the bench pool's on TCP, BASE+31 the standby hub's)

rt_plain_start() {
  local ws=$((TH_PORT_BASE + 32)) tcp=$((TH_PORT_BASE + 33)) i
  mkdir -p "$WORK/rt-plain"
  cat >"$WORK/rt-plain/mosquitto.conf" <<EOF
# plain mosquitto for the realtime-100k bench: no plugin, anonymous
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
set_tcp_nodelay true
max_inflight_messages 100
max_queued_messages 1000
message_size_limit 16384
listener $ws 127.0.0.1
socket_domain ipv4
protocol websockets
listener $tcp 127.0.0.1
protocol mqtt
EOF
  mosquitto -c "$WORK/rt-plain/mosquitto.conf" >>"$WORK/rt-plain/log" 2>&1 &
  RT_PLAIN_PID=$!
  for i in $(seq 1 50); do
    ss -Htln "sport = :$ws" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  die "realtime-100k: plain mosquitto did not start: $(tail -3 "$WORK/rt-plain/log")"
}

rt_plain_restart() {
  kill -9 "$RT_PLAIN_PID" 2>/dev/null
  wait "$RT_PLAIN_PID" 2>/dev/null
  rt_plain_start
}

# ---------------------------------------------------------------------------
# chat persisted with two bridges (one $share group) vs the hub alone, on the hub's
# TCP port (th-bridge_load, scripts/bench's bridge_run and bridge_keeps_up)

# rt_bridge_pids: the live th-bridge processes of the stack and of this part
rt_bridge_pids() {
  local f p
  for f in "$TH_VAR_DIR"/run/bridge*.pid "$WORK"/rt-bridge2.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null)
    [[ $p =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && echo "$p"
  done
}

# rt_bridge_id PID: its TH_BRIDGE_ID
rt_bridge_id() {
  local v
  v=$(tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^TH_BRIDGE_ID=//p' | head -1)
  echo "${v:-th-bridge-1}"
}

# rt_bridge2_start: a second th-bridge (the first one's environment, its own id) when
# the stack runs only one
rt_bridge2_start() {
  local -a P wenv
  local i
  mapfile -t P < <(rt_bridge_pids)
  (( ${#P[@]} >= 2 )) && return 0
  (( ${#P[@]} == 1 )) || die "realtime-100k: th-bridge is not running"
  mapfile -d '' -t wenv < <(grep -zv '^TH_BRIDGE_ID=' "/proc/${P[0]}/environ")
  env -i "${wenv[@]}" TH_BRIDGE_ID=th-bridge-rt2 "$TH_BIN_DIR/th-bridge" >"$WORK/rt-bridge2.log" 2>&1 </dev/null &
  echo $! >"$WORK/rt-bridge2.pid"
  MQTT_PIDS+=("$!")
  for i in $(seq 1 100); do
    grep -q 'bridge: connected' "$WORK/rt-bridge2.log" && { log "realtime-100k: second bridge started (pid $!)"; return 0; }
    sleep 0.1
  done
  die "realtime-100k: the second bridge did not connect: $(tail -3 "$WORK/rt-bridge2.log")"
}

# rt_bridge_step LABEL RATE ARGS...: one persistence step (th-bridge_load ARGS at RATE
# msg/s); true when it kept up (bridge_keeps_up)
rt_bridge_step() {
  local label=$1 r=$2 n0 n1
  shift 2
  n0=$(cat "$WORK/bridge-$label.lines" 2>/dev/null | wc -l)
  bridge_run "$label" "$@" -r "$r" -d "$RT_BRIDGE_STEP" -g 20 -T $((RT_BRIDGE_STEP + 80))
  n1=$(cat "$WORK/bridge-$label.lines" 2>/dev/null | wc -l)
  # a run that wrote no step line did not keep up (not the step before it)
  (( n1 > n0 )) && [ "$(bridge_keeps_up "$(tail -1 "$WORK/bridge-$label.lines")")" = 1 ]
}

# rt_bridge_steps LABEL ARGS...: the steps of RT_BRIDGE_RATES up to the first that does
# not keep up, then RT_BRIDGE_REFINE more, each halving the gap between the highest rate
# kept up with and the lowest not (rounded down to 250 msg/s), after the servers are
# quiet again: the ratio is not read from steps 5,000 msg/s apart
rt_bridge_steps() {
  local label=$1 r kept=0 lost=0 i
  shift
  for r in ${RT_BRIDGE_RATES//,/ }; do
    if rt_bridge_step "$label" "$r" "$@"; then kept=$r; else lost=$r; break; fi
  done
  local -a T
  mapfile -t T < <(rt_tier_pids)
  for ((i = 0; i < RT_BRIDGE_REFINE && lost - kept > 500; i++)); do
    r=$(( (kept + lost) / 2 / 250 * 250 ))
    rt_quiet "${T[@]}"
    if rt_bridge_step "$label" "$r" "$@"; then kept=$r; else lost=$r; fi
  done
}

rt_bridge_ratio() {
  local r sent rows=0 dist=0 rows0 dist0 conninfo p id chid f
  local -a P
  cp "$WORK/rt-fan-spread.creds" "$WORK/bridge.creds"
  chid=$(awk 'NR == 1 { print $2 }' "$WORK/bridge.creds")
  conninfo=$(wenv_get TH_DB_CONNINFO '')
  rt_bridge2_start
  fact bridges "$(rt_bridge_pids | wc -l)"
  # the fan-out runs' messages in that channel are stored too: count from here on
  read -r rows0 dist0 < <("$PG_BIN_DIR/psql" -X -q -At -F ' ' -d "$conninfo" \
    -c "SELECT count(*), count(DISTINCT id) FROM messages WHERE channel_id = $chid")
  log "realtime-100k: chat persisted by $(rt_bridge_pids | wc -l) bridges, steps $RT_BRIDGE_RATES msg/s"
  # Users' chat reaches the hub through an edge (its bridge, which the hub's stamp
  # names, so the receipt goes back to that edge alone): the publishers connect to the
  # first edge's port, in both runs below
  local via=$((TH_PORT_BASE + 3))
  [ -f "$TH_VAR_DIR/run/mosquitto-e0.pid" ] && via=$((TH_PORT_BASE + 10))
  fact bridge_port "$via"
  bridge_run rt-bwarm -p "$via" -S receipts -M "$TH_PORT_BASE" -r 1000 -d "$WARMUP" -g 20 -T 120
  rt_bridge_steps rt-bsteps -p "$via" -S receipts -M "$TH_PORT_BASE"
  # every message stored once: the two bridges share one $share group
  sent=$(cat "$WORK"/bridge-rt-{bwarm,bsteps}.totals | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^sent=/) { sub(/sent=/, "", $i); s += $i } } END { print s + 0 }')
  for p in $(seq 1 60); do
    read -r rows dist < <("$PG_BIN_DIR/psql" -X -q -At -F ' ' -d "$conninfo" \
      -c "SELECT count(*), count(DISTINCT id) FROM messages WHERE channel_id = $chid")
    rows=$(( ${rows:-0} - ${rows0:-0} )) dist=$(( ${dist:-0} - ${dist0:-0} ))
    (( rows >= sent )) && break
    sleep 1
  done
  fact bridge_rows "$rows"
  fact bridge_distinct "$dist"
  log "  $sent sent, $rows rows, $dist distinct"
  # the hub alone: every bridge stopped and its persistent session discarded
  mapfile -t P < <(rt_bridge_pids)
  for p in "${P[@]}"; do
    id=$(rt_bridge_id "$p")
    kill -TERM "$p" 2>/dev/null
    for r in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    "$TH_BIN_DIR/th-bridge_load" -K "$id" -p "$((TH_PORT_BASE + 3))" -U th-service \
      -X "$(cat "$TH_VAR_DIR/keys/mqtt-service.secret")" >/dev/null 2>&1 || log "realtime-100k: -K $id failed"
  done
  # The sink on another edge than the publishers' (the last one): each message it counts
  # crossed e0, the hub and that edge, as chat between users of two edges does. (On e0
  # itself it counted e0's local deliveries, while the hub queued its copies to the other
  # edges and sent them tens of seconds late: 17,500 msg/s "kept up" at 09:55.)
  # (the storm's edge is dead by now: the highest-numbered live edge but e0)
  local far=$via i p
  for i in $(seq 1 15); do
    p=$(cat "$TH_VAR_DIR/run/mosquitto-e$i.pid" 2>/dev/null) || continue
    [[ $p =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && far=$((TH_PORT_BASE + 10 + i))
  done
  fact bridge_sink_port "$far"
  rt_bridge_steps rt-hub -p "$via" -s "$far" -S sub
  "$ROOT/scripts/stack" up >/dev/null 2>&1 || log "realtime-100k: scripts/stack up (bridges back) failed"
  for f in "$WORK"/bridge-rt-{bwarm,bsteps,hub}.*.txt; do
    [ -e "$f" ] && cp "$f" "$RAW/tool-${f#"$WORK"/bridge-}"
  done
}

# ---------------------------------------------------------------------------
# one system (tier or plain): hold, memory, rate, fan-out, broadcast, storm.
# rt_system LABEL PORT N SUBNET: results in RT_<field>[LABEL]
# rt_perf_start NAME: with BENCH_RT_PERF, a system-wide profile into $RT_PERF/NAME.data
# until rt_perf_stop
rt_perf_start() {
  [ -n "$RT_PERF" ] || return 0
  mkdir -p "$RT_PERF" || return 0
  perf record -a -g -F 499 -o "$RT_PERF/$1.data" >"$RT_PERF/$1.log" 2>&1 &
  RT_PERF_PID=$!
  MQTT_PIDS+=($!)
  sleep 1
}

rt_perf_stop() {
  [ -n "$RT_PERF_PID" ] || return 0
  kill -INT "$RT_PERF_PID" 2>/dev/null
  wait "$RT_PERF_PID" 2>/dev/null
  RT_PERF_PID=
}

# rt_idle_cpu LABEL PID...: the CPU ticks of the servers (and Redis) while the held
# clients idle for RT_IDLE_S s, into $RAW/tool-idle_LABEL.1.txt: a "proc" line per
# server process (a broker of the stack named by its pid file: hub, e0, ...), a
# "redis" line, a "span" line (clock rate, seconds)
rt_idle_cpu() {
  local label=$1 p rpid t0 t1 r0=0 r1=0 f=$RAW/tool-idle_$1.1.txt pf
  shift
  local -A c0 name
  for pf in "$TH_VAR_DIR"/run/mosquitto-*.pid; do
    [ -r "$pf" ] || continue
    p=$(cat "$pf")
    name[$p]=${pf##*/mosquitto-}
    name[$p]=${name[$p]%.pid}
  done
  rpid=$(cat "$TH_VAR_DIR/run/redis.pid" 2>/dev/null)
  for p in "$@"; do c0[$p]=$(cpu_ticks "$p"); done
  [ -n "$rpid" ] && r0=$(cpu_ticks "$rpid")
  t0=$(date +%s.%N)
  sleep "$RT_IDLE_S"
  t1=$(date +%s.%N)
  : >"$f"
  for p in "$@"; do
    echo "proc pid=$p comm=$(tr -d ' ' <"/proc/$p/comm" 2>/dev/null)${name[$p]:+ name=${name[$p]}} ticks=$(( $(cpu_ticks "$p") - ${c0[$p]} ))" >>"$f"
  done
  [ -n "$rpid" ] && r1=$(cpu_ticks "$rpid")
  echo "redis ticks=$((r1 - r0))" >>"$f"
  echo "span hz=$(getconf CLK_TCK) start=$t0 end=$t1" >>"$f"
}

# rt_system LABEL PORT N SUBNET: one system (tier or plain): hold, memory, rate,
# fan-out, broadcast, storm. Its raw records: the holders' lines (tool-hold_LABEL.K),
# snapshots of their counters (tool-snap_*_LABEL.K), the fan-out, ping and idle runs,
# the storm's lines, RSS and kernel drop counts before and after (facts LABEL.*)
rt_system() {
  local label=$1 port=$2 n=$3 net=$4 waited k f
  local -a P
  mapfile -t P < <(if [ "$label" = plain ]; then echo "$RT_PLAIN_PID"; else rt_tier_pids; fi)
  sleep 2
  fact "$label.offered" "$n"
  fact "$label.softnet_drops.before" "$(rt_softnet_drops)"
  fact "$label.rss_kb.before" "$(rt_rss "${P[@]}")"
  log "realtime-100k ($label): $n clients to port $port, ${#P[@]} server processes"
  rt_hold_start "$label" "$port" /mqtt "$n" "$net"
  rt_hold_ready "$label" "$RT_READY_WAIT"
  # the retries of the first failures: until all are held, or 60 s, or 15 s without gain
  local t0=$SECONDS h h_last=-1 t_gain=$SECONDS
  while (( SECONDS - t0 < 60 && SECONDS - t_gain < 15 )); do
    h=$(rt_last_stat "$label" held)
    (( h >= n )) && break
    (( h > h_last )) && { h_last=$h; t_gain=$SECONDS; }
    sleep 1
  done
  sleep 3
  mapfile -t P < <(if [ "$label" = plain ]; then echo "$RT_PLAIN_PID"; else rt_tier_pids; fi)
  fact "$label.rss_kb.after" "$(rt_rss "${P[@]}")"
  fact "$label.server_procs" "${#P[@]}"
  rt_snap "$label" held
  # how the fronts spread the clients over the edges
  [ "$label" = tier ] && curl -s "http://127.0.0.1:$port/metrics" >"$RAW/text-front_held.txt" 2>/dev/null
  log "  held $(rt_last_stat "$label" held) of $n"

  # idle: the clients only hold their connections; the servers' CPU meanwhile, once
  # the connects' aftermath (presence through the hub to every edge) has settled
  rt_quiet "${P[@]}"
  fact "$label.idle_quiet_s" "$RT_QUIET_S"
  rt_idle_cpu "$label" "${P[@]}"

  # fan-out while held
  # each run after the servers are quiet again (rt_quiet)
  local run
  if [ "$label" = plain ]; then
    for run in plain-one:"$port":one plain-spread:"$port":spread; do
      rt_quiet "${P[@]}"
      rt_fan "${run%%:*}" "$(cut -d: -f2 <<<"$run")" /mqtt "$WORK/rt-fan-${run##*:}.creds"
    done
  else
    for run in tier-one:"$port":one tier-spread:"$port":spread \
      nginx-one:"$TH_PORT_BASE":one nginx-spread:"$TH_PORT_BASE":spread; do
      rt_quiet "${P[@]}"
      fact "$label.quiet_s.${run%%:*}" "$RT_QUIET_S"
      case ${run%%:*} in tier-one | tier-spread) rt_perf_start "${run%%:*}" ;; esac
      rt_fan "${run%%:*}" "$(cut -d: -f2 <<<"$run")" /mqtt "$WORK/rt-fan-${run##*:}.creds"
      rt_perf_stop
    done
  fi
  rt_quiet "${P[@]}"

  # one message to all
  [ "$label" = tier ] && rt_perf_start broadcast
  waited=$(rt_broadcast "$label" "$port" /mqtt "$(rt_last_stat "$label" held)")
  rt_perf_stop
  rt_snap "$label" bcast
  log "  broadcast: $(rt_last_stat "$label" bcast) received (waited $waited s)"

  # reconnect storm
  local victim='' vport=0 best=0 c e fan_pid
  if [ "$label" = plain ]; then
    rt_pinger "$label" $((TH_PORT_BASE + 33))
    victim=plain
  else
    local one_uid
    one_uid=$(awk 'NR == 1 { print $1 }' "$WORK/rt-fan-one.creds")
    curl -s "http://127.0.0.1:$port/metrics" >"$WORK/rt-front-prestorm.txt" 2>/dev/null
    for e in $(rt_edge_ports); do
      # the fronts' count (through the edge's unix socket or its port alike)
      c=$(sed -n "s/^th_wsfront_edge_connections{edge=\"127.0.0.1:$e\"} \([0-9]*\)$/\1/p" \
        "$WORK/rt-front-prestorm.txt" | head -1)
      c=${c:-0}
      # not the edge of the fan-out user: its run measures what the others lose
      grep -q "as u$one_uid-" "$TH_VAR_DIR/log/mosquitto-e$((e - TH_PORT_BASE - 10)).log" 2>/dev/null && continue
      (( c > best )) && { best=$c; vport=$e; }
    done
    if (( vport > 0 )); then
      victim=e$((vport - TH_PORT_BASE - 10))
      rt_pinger "$label" $((TH_PORT_BASE + 3))
    fi
  fi
  if [ -n "$victim" ]; then
    fact "$label.victim" "$victim"
    fact "$label.victim_conns" "$best"
    # fan-out through the path under test during the storm: what its subscribers miss
    # (waiting 30 s after it for stragglers: late is not lost)
    "$TH_BIN_DIR/th-mqtt_load" fan -p "$port" -P /mqtt -c "$WORK/rt-fan-one.creds" -n "$MQTT_SUBS" -u 0 \
      -r "$MQTT_RATE" -d 20 -w 2 -W 0 -G 30 -T 120 >"$RAW/tool-fanstorm_$label.1.txt" 2>"$WORK/rt-fan-storm-$label.err" &
    fan_pid=$!
    MQTT_PIDS+=("$fan_pid")
    sleep 4
    if [ "$label" = plain ]; then
      rt_storm "$label" rt_plain_restart
    else
      local vpid
      vpid=$(cat "$TH_VAR_DIR/run/mosquitto-$victim.pid")
      log "  storm: SIGKILL edge $victim (pid $vpid, $best connections)"
      rt_storm "$label" kill -9 "$vpid"
    fi
    wait "$fan_pid"
    rt_pinger_stop "$label"
    log "  storm ($victim) over"
  fi
  rt_hold_stop
  [ "$label" = tier ] && curl -s "http://127.0.0.1:$port/metrics" >"$RAW/text-front_end.txt" 2>/dev/null
  fact "$label.softnet_drops.after" "$(rt_softnet_drops)"
  # every holder's lines (ready, stat, drop, full, final)
  k=0
  for f in "$WORK/rt-$label".*.out; do
    k=$((k + 1))
    grep -E '^(ready|drop|full|final) ' "$f" >"$RAW/tool-hold_$label.$k.txt"
  done
}

# ---------------------------------------------------------------------------

bench_realtime_100k() {
  local edges fronts v f shimmed=0 brokers=0
  for v in th-rt_hold th-rt_tokens th-mqtt_load; do
    [ -x "$TH_BIN_DIR/$v" ] || die "$TH_BIN_DIR/$v missing (run make)"
  done
  (( RT_PER_PROC >= 1 && RT_PER_PROC <= 19500 )) || die "BENCH_RT_PER_PROC must be 1..19500"
  (( RT_CONNS / RT_PER_PROC < 120 )) || die "BENCH_RT_CONNS / BENCH_RT_PER_PROC: too many processes"
  (( TH_PORT_BASE + 33 <= 65535 )) || die "realtime-100k: TH_PORT_BASE + 33 (the plain broker's TCP port) is over 65535"
  for v in $((TH_PORT_BASE + 32)) $((TH_PORT_BASE + 33)); do
    ss -Htln "sport = :$v" 2>/dev/null | grep -q . && die "port $v is taken"
  done
  raw_begin realtime-100k
  for v in RT_CONNS RT_PER_PROC RT_PLAIN_CONNS RT_INFLIGHT RT_READY_WAIT RT_STORM_WAIT RT_BRIDGE_RATES RT_BRIDGE_REFINE \
    RT_BRIDGE_STEP RT_IDLE_S MQTT_RATE MQTT_SUBS; do
    fact "knob.${v,,}" "${!v}"
  done
  fact setting.TH_MQTT_EDGES "${TH_MQTT_EDGES:-unset}"
  fact setting.TH_WS_FRONTS "${TH_WS_FRONTS:-unset}"
  rt_sysctl_apply
  fact sysctl "${RT_SYSCTL_SAVED[*]:-unchanged}"
  rt_seed
  edges=$(rt_edge_ports | wc -l)
  fronts=$(pgrep -P "$(cat "$TH_VAR_DIR/run/wsfront.pid" 2>/dev/null || echo 0)" 2>/dev/null | wc -l)
  fact edges "$edges"
  fact front_workers "$fronts"
  # the tier's brokers with the epoll shim loaded (realtime-bridge/epshim)
  for f in "$TH_VAR_DIR"/run/mosquitto-*.pid; do
    [ -r "$f" ] || continue
    brokers=$((brokers + 1))
    grep -q th-epshim "/proc/$(cat "$f")/maps" 2>/dev/null && shimmed=$((shimmed + 1))
  done
  fact brokers_epshim "$shimmed of $brokers"
  log "realtime-100k: $edges edges, $fronts front workers"

  if (( RT_PLAIN_CONNS > 0 )); then
    rt_plain_start
    rt_system plain $((TH_PORT_BASE + 32)) "$RT_PLAIN_CONNS" 127.0.3
    kill "$RT_PLAIN_PID" 2>/dev/null
    wait "$RT_PLAIN_PID" 2>/dev/null
    RT_PLAIN_PID=
    sleep 3
  fi
  rt_system tier $((TH_PORT_BASE + 4)) "$RT_CONNS" 127.0.2
  # the storm's aftermath (the dead edge's users reaped, their presence announced)
  # settles before the persistence steps measure
  local -a T
  mapfile -t T < <(rt_tier_pids)
  rt_quiet "${T[@]}"
  fact tier.quiet_s.bridge "$RT_QUIET_S"
  rt_bridge_ratio
  MQTT_PIDS=()
  fact hold_procs "$RT_HOLD_PROCS"
  raw_end realtime-100k
}
