# shellcheck shell=bash
# scripts/lib/bench-rt.sh: part realtime-100k of scripts/bench (sourced by it, after the
# stack is up; uses its helpers: log die api kv rss_kb cpu_ticks worker_env_file
# in_worker_env write_section at_least at_most, and MQTT_PIDS, WORK, BASE, ROOT,
# TH_VAR_DIR, TH_BIN_DIR, TH_PORT_BASE, DURATION, WARMUP, MQTT_RATE, MQTT_SUBS).
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
#   BENCH_RT_IDLE_S       seconds the held clients idle while the servers' CPU is sampled
#                         (default 10): what idle connections cost
#   BENCH_RT_EDGES / BENCH_RT_FRONTS  TH_MQTT_EDGES / TH_WS_FRONTS of the stack (7 / 14;
#                         TH_WS_MAX_PER_ADDR 65535: scripts/bench, see why there)

RT_CONNS=${BENCH_RT_CONNS:-100000}
RT_PER_PROC=${BENCH_RT_PER_PROC:-16667}
RT_PLAIN_CONNS=${BENCH_RT_PLAIN_CONNS:-19000}
RT_INFLIGHT=${BENCH_RT_INFLIGHT:-128}
RT_READY_WAIT=${BENCH_RT_READY_WAIT:-420}
RT_STORM_WAIT=${BENCH_RT_STORM_WAIT:-90}
RT_SYSCTL=${BENCH_RT_SYSCTL:-1}
RT_BRIDGE_RATES=${BENCH_RT_BRIDGE_RATES:-2000,5000,10000,20000}
RT_BRIDGE_STEP=${BENCH_RT_BRIDGE_STEP:-10}
RT_IDLE_S=${BENCH_RT_IDLE_S:-10}
RT_BEGIN_MARK='<!-- bench:realtime-100k:begin -->'
RT_END_MARK='<!-- bench:realtime-100k:end -->'
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
  t0=$(date +%s.%N)
  in_worker_env "$TH_BIN_DIR/th-rt_tokens" <"$WORK/rt-sessions" >"$WORK/rt.creds" 2>"$WORK/rt-tokens.err" ||
    die "realtime-100k: th-rt_tokens: $(tail -3 "$WORK/rt-tokens.err")"
  in_worker_env "$TH_BIN_DIR/th-rt_tokens" <"$WORK/rt-fan-sessions" >"$WORK/rt-fan-spread.creds" 2>>"$WORK/rt-tokens.err" ||
    die "realtime-100k: th-rt_tokens: $(tail -3 "$WORK/rt-tokens.err")"
  RT_TOKENS_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  log "  $(wc -l <"$WORK/rt.creds") tokens signed in $RT_TOKENS_S s"
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

# rt_hold_ready LABEL WAIT: waits until every process printed "ready" and its
# reconnects settled (or WAIT s); prints "ok failed start_ns end_ns"
rt_hold_ready() {
  local label=$1 wait=$2 t0=$SECONDS f line ok=0 failed=0 a=0 b=0
  while (( SECONDS - t0 < wait )); do
    (( $(cat "$WORK/rt-$label".*.out 2>/dev/null | grep -c '^ready ') == RT_HOLD_PROCS )) && break
    sleep 1
  done
  for f in "$WORK/rt-$label".*.out; do
    line=$(grep '^ready ' "$f")
    [ -n "$line" ] || { log "  $(basename "$f"): not ready: $(grep '^stat' "$f" | tail -1)"; continue; }
    ok=$((ok + $(kv "$line" ok))); failed=$((failed + $(kv "$line" failed)))
    (( a == 0 || $(kv "$line" start_ns) < a )) && a=$(kv "$line" start_ns)
    (( $(kv "$line" end_ns) > b )) && b=$(kv "$line" end_ns)
  done
  echo "$ok $failed $a $b"
}

# rt_hold_stop: TERM to the holders, waits; their "final" lines stay in the files
rt_hold_stop() {
  local p
  kill -TERM "${RT_HOLD_PIDS[@]}" 2>/dev/null
  for p in "${RT_HOLD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  RT_HOLD_PIDS=()
}

# rt_final LABEL KEY max|sum: over the processes' final lines
rt_final() {
  local f v out=0
  for f in "$WORK/rt-$1".*.out; do
    v=$(kv "$(grep '^final ' "$f")" "$2")
    [ -n "$v" ] || continue
    out=$(awk -v a="$out" -v b="$v" -v m="$3" 'BEGIN { if (m == "sum") print a + b; else print (b + 0 > a + 0) ? b : a }')
  done
  echo "$out"
}

# rt_fan NAME PORT PATH CREDS: fan-out at MQTT_RATE to MQTT_SUBS subscribers (rate
# phase only); prints its "rate" line (empty on failure)
rt_fan() {
  local f=$WORK/rt-fan-$1.out
  "$TH_BIN_DIR/th-mqtt_load" fan -p "$2" -P "$3" -c "$4" -n "$MQTT_SUBS" -u 0 -r "$MQTT_RATE" \
    -d "$DURATION" -w "$WARMUP" -W 0 -T 120 >"$f" 2>&1
  grep '^rate ' "$f" | head -1
  log "  fan $1: $(grep -E '^(rate|fan) ' "$f" | head -1)"
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
# that lost clients is whole again (or RT_STORM_WAIT s); sets RT_STORM_BACK (seconds
# from the first drop to the last holder whole, n/a if not all came back) and
# RT_STORM_DROPPED
rt_storm() {
  local label=$1 k d f t_drop t_full complete n0 t0
  local -a from=()
  shift
  n0=$(rt_last_stat "$label" drops)
  for k in $(seq 0 $((RT_HOLD_PROCS - 1))); do
    from[k]=$(( $(wc -l <"$WORK/rt-$label.$k.out") + 1 ))
  done
  "$@"
  t0=$SECONDS
  sleep 2
  while :; do
    complete=1 t_drop=0 t_full=0
    for k in $(seq 0 $((RT_HOLD_PROCS - 1))); do
      read -r d f <<<"$(rt_storm_proc "$label" "$k" "${from[k]}")"
      (( d == 0 )) && continue
      (( t_drop == 0 || d < t_drop )) && t_drop=$d
      if (( f == 0 )); then complete=0; elif (( f > t_full )); then t_full=$f; fi
    done
    (( complete || SECONDS - t0 >= RT_STORM_WAIT )) && break
    sleep 1
  done
  RT_STORM_DROPPED=$(( $(rt_last_stat "$label" drops) - n0 ))
  if (( complete && t_drop > 0 )); then
    RT_STORM_BACK=$(awk -v a="$t_drop" -v b="$t_full" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  else
    RT_STORM_BACK=n/a
  fi
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

# rt_pinger_stop LABEL: sets RT_PING_MAX (ms, n/a when it never got a round trip)
rt_pinger_stop() {
  kill -TERM "$RT_PING_PID" 2>/dev/null
  wait "$RT_PING_PID" 2>/dev/null
  RT_PING_MAX=$(kv "$(grep '^final ' "$WORK/rt-ping-$1.out")" ping_max_ms)
  [ "$(kv "$(grep '^final ' "$WORK/rt-ping-$1.out")" pings)" = 0 ] && RT_PING_MAX=n/a
  : "${RT_PING_MAX:=n/a}"
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

# rt_best LINESFILE: the highest rate of the steps that kept up (0: none)
rt_best() {
  local best=0 line
  while read -r line; do
    [ "$(bridge_keeps_up "$line")" = 1 ] && best=$(kv "$line" rate)
  done <"$1"
  echo "$best"
}

rt_bridge_ratio() {
  local r sent rows=0 dist=0 rows0 dist0 conninfo p id chid
  local -a P
  cp "$WORK/rt-fan-spread.creds" "$WORK/bridge.creds"
  chid=$(awk 'NR == 1 { print $2 }' "$WORK/bridge.creds")
  conninfo=$(wenv_get TH_DB_CONNINFO '')
  rt_bridge2_start
  RT_NBRIDGES=$(rt_bridge_pids | wc -l)
  # the fan-out runs' messages in that channel are stored too: count from here on
  read -r rows0 dist0 < <("$PG_BIN_DIR/psql" -X -q -At -F ' ' -d "$conninfo" \
    -c "SELECT count(*), count(DISTINCT id) FROM messages WHERE channel_id = $chid")
  log "realtime-100k: chat persisted by $RT_NBRIDGES bridges, steps $RT_BRIDGE_RATES msg/s"
  bridge_run rt-bwarm -S receipts -M "$TH_PORT_BASE" -r 1000 -d "$WARMUP" -g 20 -T 120
  for r in ${RT_BRIDGE_RATES//,/ }; do
    bridge_run rt-bsteps -S receipts -M "$TH_PORT_BASE" -r "$r" -d "$RT_BRIDGE_STEP" -g 20 -T $((RT_BRIDGE_STEP + 80))
    [ "$(bridge_keeps_up "$(tail -1 "$WORK/bridge-rt-bsteps.lines")")" = 1 ] || break
  done
  # every message stored once: the two bridges share one $share group
  sent=$(cat "$WORK"/bridge-rt-{bwarm,bsteps}.totals | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^sent=/) { sub(/sent=/, "", $i); s += $i } } END { print s + 0 }')
  for p in $(seq 1 60); do
    read -r rows dist < <("$PG_BIN_DIR/psql" -X -q -At -F ' ' -d "$conninfo" \
      -c "SELECT count(*), count(DISTINCT id) FROM messages WHERE channel_id = $chid")
    rows=$(( ${rows:-0} - ${rows0:-0} )) dist=$(( ${dist:-0} - ${dist0:-0} ))
    (( rows >= sent )) && break
    sleep 1
  done
  RT_BRIDGE_ROWS="$sent sent, $rows rows, $dist distinct"
  log "  $RT_BRIDGE_ROWS"
  if [ "$rows" != "$sent" ] || [ "$dist" != "$rows" ]; then
    # shellcheck disable=SC2034  # scripts/bench's exit status
    FAILED=1
  fi
  # the hub alone: every bridge stopped and its persistent session discarded
  mapfile -t P < <(rt_bridge_pids)
  for p in "${P[@]}"; do
    id=$(rt_bridge_id "$p")
    kill -TERM "$p" 2>/dev/null
    for r in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    "$TH_BIN_DIR/th-bridge_load" -K "$id" -p "$((TH_PORT_BASE + 3))" -U th-service \
      -X "$(cat "$TH_VAR_DIR/keys/mqtt-service.secret")" >/dev/null 2>&1 || log "realtime-100k: -K $id failed"
  done
  for r in ${RT_BRIDGE_RATES//,/ }; do
    bridge_run rt-hub -S sub -r "$r" -d "$RT_BRIDGE_STEP" -g 20 -T $((RT_BRIDGE_STEP + 80))
    [ "$(bridge_keeps_up "$(tail -1 "$WORK/bridge-rt-hub.lines")")" = 1 ] || break
  done
  "$ROOT/scripts/stack" up >/dev/null 2>&1 || log "realtime-100k: scripts/stack up (bridges back) failed"
  RT_BRIDGE_BEST=$(rt_best "$WORK/bridge-rt-bsteps.lines")
  RT_HUB_BEST=$(rt_best "$WORK/bridge-rt-hub.lines")
  RT_BRIDGE_RATIO=$(ratio "$RT_BRIDGE_BEST" "$RT_HUB_BEST")
  # the last offered rate kept up: the real ceiling may lie above the steps
  [ "$RT_HUB_BEST" = "${RT_BRIDGE_RATES##*,}" ] && RT_HUB_BEST="≥ $RT_HUB_BEST"
  [ "$RT_BRIDGE_BEST" = "${RT_BRIDGE_RATES##*,}" ] && RT_BRIDGE_BEST="≥ $RT_BRIDGE_BEST"
  log "  persisted ${RT_BRIDGE_BEST} msg/s, hub alone ${RT_HUB_BEST} msg/s, ratio $RT_BRIDGE_RATIO"
}

# ---------------------------------------------------------------------------
# one system (tier or plain): hold, memory, rate, fan-out, broadcast, storm.
# rt_system LABEL PORT N SUBNET: results in RT_<field>[LABEL]
# rt_idle_cpu LABEL PID...: CPU of the servers (and Redis) while the held clients
# idle for RT_IDLE_S s, % of one core: the sum, the busiest process, Redis; in
# RT_IDLE[LABEL]
rt_idle_cpu() {
  local label=$1 hz p rpid t0 t1 sum=0 top=0 topn='' r0=0 r1=0 c
  shift
  local -A c0
  hz=$(getconf CLK_TCK)
  rpid=$(cat "$TH_VAR_DIR/run/redis.pid" 2>/dev/null)
  for p in "$@"; do c0[$p]=$(cpu_ticks "$p"); done
  [ -n "$rpid" ] && r0=$(cpu_ticks "$rpid")
  t0=$(date +%s.%N)
  sleep "$RT_IDLE_S"
  t1=$(date +%s.%N)
  for p in "$@"; do
    c=$(( $(cpu_ticks "$p") - ${c0[$p]} ))
    sum=$((sum + c))
    (( c > top )) && { top=$c; topn=$(cat "/proc/$p/comm" 2>/dev/null)"[$p]"; }
  done
  [ -n "$rpid" ] && r1=$(cpu_ticks "$rpid")
  RT_IDLE[$label]=$(awk -v s="$sum" -v t="$top" -v r=$((r1 - r0)) -v hz="$hz" -v a="$t0" -v b="$t1" -v n="$topn" \
    'BEGIN { d = (b - a) * hz; printf "%.1f %% (busiest %s %.1f %%; Redis %.1f %%)", 100 * s / d, n, 100 * t / d, 100 * r / d }')
}

declare -A RT_HELD RT_FAILED RT_IDLE RT_SOFTNET RT_RATE RT_PERCONN RT_RSS0 RT_RSS1 RT_BCAST_N RT_BCAST_MS RT_BCAST_P99 \
  RT_BACK_S RT_DROPPED RT_STALL RT_FAN_LOST RT_CONNECT_S RT_FAILKINDS

rt_system() {
  local label=$1 port=$2 n=$3 net=$4 ready ok failed a b rss0 rss1 waited st
  local -a P
  mapfile -t P < <(if [ "$label" = plain ]; then echo "$RT_PLAIN_PID"; else rt_tier_pids; fi)
  sleep 2
  RT_SOFTNET[$label]=$(rt_softnet_drops)
  rss0=$(rt_rss "${P[@]}")
  log "realtime-100k ($label): $n clients to port $port, ${#P[@]} server processes, RSS ${rss0} KiB"
  rt_hold_start "$label" "$port" /mqtt "$n" "$net"
  ready=$(rt_hold_ready "$label" "$RT_READY_WAIT")
  read -r ok failed a b <<<"$ready"
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
  rss1=$(rt_rss "${P[@]}")
  RT_HELD[$label]=$(rt_last_stat "$label" held)
  RT_FAILED[$label]=$failed
  st=''
  for k in connect http refused subfail timeout reset; do st+="$k $(rt_last_stat "$label" $k), "; done
  RT_FAILKINDS[$label]=${st%, }
  RT_RATE[$label]=$(awk -v ok="$ok" -v a="$a" -v b="$b" 'BEGIN { printf "%.0f", (b > a) ? ok * 1e9 / (b - a) : 0 }')
  RT_CONNECT_S[$label]=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", (b > a) ? (b - a) / 1e9 : 0 }')
  RT_RSS0[$label]=$rss0
  RT_RSS1[$label]=$rss1
  RT_PERCONN[$label]=$(awk -v r0="$rss0" -v r1="$rss1" -v h="${RT_HELD[$label]}" 'BEGIN { printf "%.0f", (h > 0 ? (r1 - r0) * 1024 / h : 0) }')
  if [ "$label" = tier ]; then
    # how the fronts spread the clients over the edges
    curl -s "http://127.0.0.1:$port/metrics" >"$WORK/rt-front-held.metrics" 2>/dev/null
    RT_EDGE_SPREAD=$(awk '/^th_wsfront_edge_connections\{/ { n++; v = $2 + 0; s += v
        if (n == 1 || v < lo) lo = v; if (v > hi) hi = v }
      END { if (n) printf "%d edges, %d–%d clients each", n, lo, hi; else print "n/a" }' "$WORK/rt-front-held.metrics")
    log "  fronts: $RT_EDGE_SPREAD"
  fi
  log "  held ${RT_HELD[$label]} of $n (first attempts: $ok ok, $failed failed; ${RT_FAILKINDS[$label]}), ${RT_RATE[$label]}/s, RSS ${rss1} KiB, ${RT_PERCONN[$label]} B/conn"

  # idle: the clients only hold their connections; the servers' CPU meanwhile
  rt_idle_cpu "$label" "${P[@]}"
  log "  idle ${RT_IDLE_S} s: ${RT_IDLE[$label]}"

  # fan-out while held
  if [ "$label" = plain ]; then
    RT_FAN[plain-one]=$(rt_fan plain-one "$port" /mqtt "$WORK/rt-fan-one.creds")
    RT_FAN[plain-spread]=$(rt_fan plain-spread "$port" /mqtt "$WORK/rt-fan-spread.creds")
  else
    RT_FAN[tier-one]=$(rt_fan tier-one "$port" /mqtt "$WORK/rt-fan-one.creds")
    RT_FAN[tier-spread]=$(rt_fan tier-spread "$port" /mqtt "$WORK/rt-fan-spread.creds")
    RT_FAN[nginx-one]=$(rt_fan nginx-one "$TH_PORT_BASE" /mqtt "$WORK/rt-fan-one.creds")
    RT_FAN[nginx-spread]=$(rt_fan nginx-spread "$TH_PORT_BASE" /mqtt "$WORK/rt-fan-spread.creds")
  fi

  # one message to all
  waited=$(rt_broadcast "$label" "$port" /mqtt "${RT_HELD[$label]}")
  RT_BCAST_N[$label]=$(rt_last_stat "$label" bcast)
  log "  broadcast: ${RT_BCAST_N[$label]} of ${RT_HELD[$label]} received (waited $waited s)"

  # reconnect storm
  local victim='' vport=0 best=0 c e fan_pid lost_line
  if [ "$label" = plain ]; then
    rt_pinger "$label" $((TH_PORT_BASE + 33))
    victim=plain
  else
    local one_uid
    one_uid=$(awk 'NR == 1 { print $1 }' "$WORK/rt-fan-one.creds")
    for e in $(rt_edge_ports); do
      c=$(ss -Htn state established "sport = :$e" 2>/dev/null | wc -l)
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
    # fan-out through the path under test during the storm: what its subscribers miss
    "$TH_BIN_DIR/th-mqtt_load" fan -p "$port" -P /mqtt -c "$WORK/rt-fan-one.creds" -n "$MQTT_SUBS" -u 0 \
      -r "$MQTT_RATE" -d 20 -w 2 -W 0 -T 120 >"$WORK/rt-fan-storm-$label.out" 2>&1 &
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
    RT_BACK_S[$label]=$RT_STORM_BACK
    RT_DROPPED[$label]=$RT_STORM_DROPPED
    wait "$fan_pid"
    lost_line=$(grep '^rate ' "$WORK/rt-fan-storm-$label.out")
    RT_FAN_LOST[$label]=$(awk -v e="$(kv "$lost_line" expected)" -v d="$(kv "$lost_line" deliveries)" 'BEGIN { if (e == "") print "n/a"; else print e - d }')
    # th-mqtt_load fan does not reconnect: on the one plain broker its clients are cut
    [ "$label" = plain ] && RT_FAN_LOST[$label]="${RT_FAN_LOST[$label]} (its clients were on the killed broker)"
    rt_pinger_stop "$label"
    RT_STALL[$label]=$RT_PING_MAX
    log "  storm ($victim): ${RT_DROPPED[$label]} dropped, all back after ${RT_BACK_S[$label]} s, fan-out deliveries missing ${RT_FAN_LOST[$label]}, longest ping ${RT_STALL[$label]} ms"
    RT_VICTIM[$label]="$victim ($best connections)"
  else
    RT_BACK_S[$label]=n/a RT_DROPPED[$label]=0 RT_FAN_LOST[$label]=n/a RT_STALL[$label]=n/a
    RT_VICTIM[$label]='none (no edges)'
  fi
  rt_hold_stop
  if [ "$label" = tier ]; then
    curl -s "http://127.0.0.1:$port/metrics" >"$WORK/rt-front-end.metrics" 2>/dev/null
    RT_FRONT_CLOSES=$(awk '/^th_wsfront_closes_total\{/ && $2 + 0 > 0 {
        r = $1; sub(/.*reason="/, "", r); sub(/".*/, "", r); printf "%s%s %d", sep, r, $2; sep = ", " }' \
      "$WORK/rt-front-end.metrics")
    log "  front closes: ${RT_FRONT_CLOSES:-none}"
  fi
  RT_SOFTNET[$label]=$(( $(rt_softnet_drops) - RT_SOFTNET[$label] ))
  log "  packets dropped by the kernel's input backlogs during the run: ${RT_SOFTNET[$label]}"
  RT_BCAST_MS[$label]=$(rt_final "$label" bcast_max_ms max)
  RT_BCAST_P99[$label]=$(rt_final "$label" bcast_p99_ms max)
}
declare -A RT_FAN RT_VICTIM

# ---------------------------------------------------------------------------

bench_realtime_100k() {
  local t_start=$SECONDS edges fronts TABLE SECTION f v
  for v in th-rt_hold th-rt_tokens th-mqtt_load; do
    [ -x "$TH_BIN_DIR/$v" ] || die "$TH_BIN_DIR/$v missing (run make)"
  done
  (( RT_PER_PROC >= 1 && RT_PER_PROC <= 19500 )) || die "BENCH_RT_PER_PROC must be 1..19500"
  (( RT_CONNS / RT_PER_PROC < 120 )) || die "BENCH_RT_CONNS / BENCH_RT_PER_PROC: too many processes"
  (( TH_PORT_BASE + 33 <= 65535 )) || die "realtime-100k: TH_PORT_BASE + 33 (the plain broker's TCP port) is over 65535"
  for v in $((TH_PORT_BASE + 32)) $((TH_PORT_BASE + 33)); do
    ss -Htln "sport = :$v" 2>/dev/null | grep -q . && die "port $v is taken"
  done
  rt_sysctl_apply
  rt_seed
  edges=$(rt_edge_ports | wc -l)
  fronts=$(pgrep -P "$(cat "$TH_VAR_DIR/run/wsfront.pid" 2>/dev/null || echo 0)" 2>/dev/null | wc -l)
  log "realtime-100k: $edges edges, $fronts front workers"

  if (( RT_PLAIN_CONNS > 0 )); then
    rt_plain_start
    rt_system plain $((TH_PORT_BASE + 32)) "$RT_PLAIN_CONNS" 127.0.3
    kill "$RT_PLAIN_PID" 2>/dev/null
    wait "$RT_PLAIN_PID" 2>/dev/null
    RT_PLAIN_PID=
    sleep 3
  else
    RT_HELD[plain]=n/a RT_FAILED[plain]=n/a RT_FAILKINDS[plain]=n/a RT_RATE[plain]=n/a
    RT_CONNECT_S[plain]=n/a RT_PERCONN[plain]=n/a RT_RSS0[plain]=n/a RT_RSS1[plain]=n/a
    RT_IDLE[plain]=n/a RT_BCAST_N[plain]=n/a RT_BCAST_MS[plain]=n/a RT_BCAST_P99[plain]=n/a
    RT_BACK_S[plain]=n/a RT_DROPPED[plain]=n/a RT_FAN_LOST[plain]=n/a RT_STALL[plain]=n/a
    RT_SOFTNET[plain]=n/a RT_VICTIM[plain]=n/a
  fi
  rt_system tier $((TH_PORT_BASE + 4)) "$RT_CONNS" 127.0.2
  rt_bridge_ratio
  MQTT_PIDS=()
  RT_TOTAL_S=$((SECONDS - t_start))
  rt_report "$edges" "$fronts"
}

# rt_fancol NAME KEY: a value of RT_FAN[NAME]'s rate line (n/a when it failed)
rt_fancol() { local v; v=$(kv "${RT_FAN[$1]:-}" "$2"); echo "${v:-n/a}"; }

rt_report() {
  local edges=$1 fronts=$2 t_held t_mem t_fan t_bcast t_back t_lost t_stall
  t_held=$(at_least "${RT_HELD[tier]}" "$RT_CONNS")
  t_mem=$(at_most "${RT_PERCONN[tier]}" 10240)
  t_fan="same edge $(at_most "$(rt_fancol tier-one p99_ms)" 10), spread $(at_most "$(rt_fancol tier-spread p99_ms)" 10)"
  t_bcast=$(at_most "${RT_BCAST_MS[tier]}" 2000)
  [ "${RT_BCAST_N[tier]}" = "${RT_HELD[tier]}" ] || t_bcast="**not met** (${RT_BCAST_N[tier]} of ${RT_HELD[tier]} received)"
  t_back=$(at_most "${RT_BACK_S[tier]}" 30)
  t_lost=$(at_most "${RT_FAN_LOST[tier]}" 0)
  t_stall=$(at_most "${RT_STALL[tier]}" 1000)
  TABLE=$(
    echo "| measurement | tier ($edges edges, $fronts front workers, hub) | plain mosquitto (one process, WebSocket) | goal | verdict (tier) |"
    echo '|---|---:|---:|---|---|'
    echo "| clients held (offered) | ${RT_HELD[tier]} ($RT_CONNS) | ${RT_HELD[plain]} ($RT_PLAIN_CONNS) | $RT_CONNS | $t_held |"
    echo "| first-attempt failures (by kind after retries) | ${RT_FAILED[tier]} (${RT_FAILKINDS[tier]}) | ${RT_FAILED[plain]} (${RT_FAILKINDS[plain]}) | — | — |"
    echo "| connect rate, clients/s (time to connect all) | ${RT_RATE[tier]} (${RT_CONNECT_S[tier]} s) | ${RT_RATE[plain]} (${RT_CONNECT_S[plain]} s) | report | — |"
    echo "| memory per connection, bytes (RSS KiB before → after, every process) | ${RT_PERCONN[tier]} (${RT_RSS0[tier]} → ${RT_RSS1[tier]}) | ${RT_PERCONN[plain]} (${RT_RSS0[plain]} → ${RT_RSS1[plain]}) | ≤ 10 KB | $t_mem |"
    echo "| CPU while the clients idle ${RT_IDLE_S} s, % of one core: every server process (busiest; Redis) | ${RT_IDLE[tier]:-n/a} | ${RT_IDLE[plain]:-n/a} | ~0 | — |"
    echo "| fan-out p99 ms at $MQTT_RATE msg/s to $MQTT_SUBS subscribers while held, one user (same edge) | $(rt_fancol tier-one p99_ms) | $(rt_fancol plain-one p99_ms) | ≤ 10 ms | ${t_fan%%,*} |"
    echo "| the same, subscribers of 10 users (spread over edges) | $(rt_fancol tier-spread p99_ms) | $(rt_fancol plain-spread p99_ms) | ≤ 10 ms | ${t_fan#*, } |"
    echo "| the same through nginx /mqtt: one user / spread | $(rt_fancol nginx-one p99_ms) / $(rt_fancol nginx-spread p99_ms) | — | report | — |"
    echo "| one message to every held subscriber: last receipt after, ms (p99) | ${RT_BCAST_MS[tier]} (${RT_BCAST_P99[tier]}), ${RT_BCAST_N[tier]} received | ${RT_BCAST_MS[plain]} (${RT_BCAST_P99[plain]}), ${RT_BCAST_N[plain]} received | ≤ 2000 ms | $t_bcast |"
    echo "| chat persisted by $RT_NBRIDGES bridges, highest step kept up ÷ the hub alone (msg/s) | $RT_BRIDGE_RATIO ($RT_BRIDGE_BEST ÷ $RT_HUB_BEST) | — | ≥ 0.9 | $(at_least "$RT_BRIDGE_RATIO" 0.9) |"
    echo "| reconnect storm: killed | ${RT_VICTIM[tier]} | the broker, restarted at once | — | — |"
    echo "| storm: clients dropped, all back after s | ${RT_DROPPED[tier]}, ${RT_BACK_S[tier]} | ${RT_DROPPED[plain]}, ${RT_BACK_S[plain]} | ≤ 30 s | $t_back |"
    echo "| storm: fan-out deliveries missing (one user's $MQTT_SUBS subscribers, not on the killed edge) | ${RT_FAN_LOST[tier]} | ${RT_FAN_LOST[plain]} | 0 | $t_lost |"
    echo "| storm: longest ping round trip on the hub (plain: the broker), ms | ${RT_STALL[tier]} | ${RT_STALL[plain]} | ≤ 1000 ms | $t_stall |"
  )
  SECTION=$(
    echo "$RT_BEGIN_MARK"
    echo "### Real time for 100,000 clients: the tier beside one plain broker"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') with \`BENCH_PARTS=realtime-100k scripts/bench\` (not in the default parts: this run took $RT_TOTAL_S s), here with BENCH_RT_CONNS=$RT_CONNS BENCH_RT_PER_PROC=$RT_PER_PROC BENCH_RT_PLAIN_CONNS=$RT_PLAIN_CONNS TH_MQTT_EDGES=${TH_MQTT_EDGES:-unset} TH_WS_FRONTS=${TH_WS_FRONTS:-unset} BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP."
    echo
    echo "$TABLE"
    echo
    echo "- Clients: \`tests/load/rt_hold.c\` (\`th-rt_hold -b <2 addresses> -s <first> -n <count> -C $RT_INFLIGHT -k 600 -R\`), $RT_HOLD_PROCS processes of at most $RT_PER_PROC, each bound to two source addresses of 127.0.2.0/24 (plain: 127.0.3.0/24), MQTT 3.1.1 over WebSocket to the fronts' port BASE+4 (plain: its own WebSocket listener), client id \`u<uid>-h<i>\`, one user each, subscribed to \`chat/<#general>/+\` of one community they all belong to; reconnect after 0.5 s doubling to 8 s, jittered ×0.5–1.5. Connect rate = first-attempt successes / (last ready − first connect)."
    echo "- Users: $RT_CONNS seeded with SQL (generate_series, one transaction: users, one live session each, memberships), \`scripts/mirror-rebuild\`, access tokens signed by \`th-rt_tokens\` with the stack's key in $RT_TOKENS_S s (no logins)."
    echo "- Memory: VmRSS summed over the front master and workers, the edges and the hub (plain: its one process), 2 s before the first connect and 3 s after all are subscribed, per held client."
    echo "- Fan-out: \`th-mqtt_load fan -n $MQTT_SUBS -r $MQTT_RATE -w $WARMUP -d $DURATION -W 0\` while the clients are held, on a second community: \"one user\" = the publisher and all $MQTT_SUBS subscribers are one user (one edge); \"spread\" = 10 users' subscribers (the rendezvous hash puts them on several edges) and an 11th user publishing."
    echo "- Broadcast: \`th-mqtt_load pub\` as one member (through the path under test) publishes one chat message to the community; the latency is receipt − send time (CLOCK_MONOTONIC, system-wide), the largest of every holder's."
    echo "- Persistence: \`th-bridge_load -S receipts -r RATE -d $RT_BRIDGE_STEP -g 20\` on the hub's TCP port (11 members of one community publishing QoS 1 as themselves; a message counts when the bridge's stored receipt names it), steps $RT_BRIDGE_RATES msg/s until one does not keep up (scripts/bench's bridge part rule), with $RT_NBRIDGES th-bridge processes in one \`\$share\` group (a second one started by this part when the stack runs one); then every bridge stopped and its session discarded, and the same steps with \`-S sub\` (a plain QoS 1 subscriber): the hub's own throughput. Stored: $RT_BRIDGE_ROWS. After the clients are gone."
    echo "- Storm: the edge with most established connections (not the fan-out user's, found in the edges' connection log) gets SIGKILL; the plain broker gets SIGKILL and is started again at once. \"All back\" = first client closed → last holder whole again. Meanwhile a fan-out run (as above, 20 s) through the same port counts deliveries missing, and one client pings every 20 ms over raw TCP on the hub (plain: the broker's TCP listener): its longest round trip bounds the longest stall."
    echo "- Fronts (\`/metrics\` on BASE+4): with the clients held, ${RT_EDGE_SPREAD:-n/a}; closes and refusals by reason over the whole run (the clients' own stop included): ${RT_FRONT_CLOSES:-none}."
    echo "- Kernel: ${RT_SYSCTL_SAVED[*]:-unchanged} (old values; restored at exit). Packets dropped by the per-CPU input backlogs (/proc/net/softnet_stat, every process on the machine) during the tier's run: ${RT_SOFTNET[tier]:-n/a}; the plain broker's: ${RT_SOFTNET[plain]:-n/a}."
    echo "- Machine: $MACHINE; every process on it."
    echo "$RT_END_MARK"
  )
  echo
  echo "$TABLE"
  echo
  write_section "$RT_BEGIN_MARK" "$RT_END_MARK" "$SECTION"
}
