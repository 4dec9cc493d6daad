# shellcheck shell=bash
# shellcheck disable=SC2030,SC2031 # every host's settings are exported in its own subshell on purpose
# The Townhall processes of each namespace host, started from the same binaries and conf
# templates as scripts/stack (scripts/lib/common.sh renders them with each host's
# TH_VAR_DIR; only the listen addresses move from 127.0.0.1 to the host's address on the
# switch). Sourced by tests/cluster/run and tests/cluster/lib/ctl after common.sh, netns.sh
# and pg.sh. Every host uses the same TH_PORT_BASE (CL_BASE): each namespace has its own
# ports, so the numbers of docs/stack-contract.md hold on every host.

CL_BASE=${CL_BASE:-8080}
CL_APPS=(auth community realtime media)
# FastCGI over TCP: BASE+26 auth, +27 community, +28 realtime, +29 media (plan of issue 19)
declare -gA CL_POOL_PORT=([auth]=$((CL_BASE + 26)) [community]=$((CL_BASE + 27)) [realtime]=$((CL_BASE + 28)) [media]=$((CL_BASE + 29)))
CL_PORT_REDIS=$((CL_BASE + 2))
# Redis Sentinel on r1, r2, r3 (its own port, never the default 26379: plan of issue 19)
CL_PORT_SENTINEL=$((CL_BASE + 55))
CL_PORT_HUB=$((CL_BASE + 3))
CL_PORT_WS=$((CL_BASE + 4))
CL_PORT_HTTP=$CL_BASE
CL_WORKERS=${CL_WORKERS:-2}
# the edge broker of each app host: id and index (port BASE+10+index)
declare -gA CL_EDGE=([app1]=0 [app2]=1)
# the S3 server on the s3 host (s3rver, tests/cluster/lib/s3-host.mjs): BASE+6 as in the
# integration suite, one bucket, s3rver's fixed keys (tests/integration/lib/s3.mjs)
CL_PORT_S3=$((CL_BASE + 6))
CL_S3_BUCKET=th-media

cl_log() { printf '[cluster] %s\n' "$*" >&2; }

# host_init HOST: common.sh's th_init for HOST's state directory, then what differs on a
# host of the cluster: the database is the pg_auto_failover pair, Redis is on r1, no unix
# socket to Redis (it is on another host)
host_init() {
	export TH_VAR_DIR=$CL_VAR/$1 TH_PORT_BASE=$CL_BASE
	th_init
	th_dirs
	stage_for_daemons
	# the host-wide revocation sequence (lib/revoke.c), as scripts/stack creates it
	[[ -s $RUN/revoke.seq ]] || head -c 8 /dev/zero >"$RUN/revoke.seq"
	chmod 0644 "$RUN/revoke.seq"
	HOST_ADDR=$(addr "$1")
	DB_CONNINFO=$(pgaf_conninfo "$VAR/keys/pgpass")
	# shellcheck disable=SC2034 # read by common.sh's render (no unix socket line)
	REDIS_SOCK=''
}

# host_env: after worker_env, the cluster's addresses (worker_env points at 127.0.0.1)
host_env() {
	TH_REDIS_HOST=$(addr r1)
	TH_DB_READ_CONNINFO=$(pgaf_read_conninfo "$VAR/keys/pgpass")
	export TH_REDIS_HOST TH_REDIS_PORT=$CL_PORT_REDIS TH_DB_READ_CONNINFO
	if [[ -s $(rc_mode_file) ]]; then
		# the Redis Cluster step switched every process to the 3-master cluster
		TH_REDIS_CLUSTER=$(cat "$(rc_mode_file)")
		export TH_REDIS_CLUSTER
		unset TH_REDIS_SENTINELS TH_REDIS_MASTER_NAME TH_REDIS_SENTINEL_PASSWORD_FILE
	else
		# the master comes from the sentinels (lib/cache, lib/sentinel); TH_REDIS_HOST is unused then
		TH_REDIS_SENTINELS=$(addr r1):$CL_PORT_SENTINEL,$(addr r2):$CL_PORT_SENTINEL,$(addr r3):$CL_PORT_SENTINEL
		export TH_REDIS_SENTINELS TH_REDIS_MASTER_NAME=townhall TH_REDIS_SENTINEL_PASSWORD_FILE=$VAR/keys/$KEY_REDIS
		unset TH_REDIS_CLUSTER
	fi
	unset TH_REDIS_SOCKET
	# media on the s3 host, path-style addressing (both app hosts' media pools share it)
	export TH_MEDIA_STORAGE=s3 TH_S3_ENDPOINT TH_S3_PATH_STYLE=1 TH_S3_BUCKET=$CL_S3_BUCKET
	export TH_S3_REGION=us-east-1 TH_S3_ACCESS_KEY=S3RVER TH_S3_SECRET_KEY=S3RVER
	TH_S3_ENDPOINT=http://$(addr s3):$CL_PORT_S3
	# the test-only routes (echo) the integration files of the baseline use
	export TH_TEST_ROUTES=1
	# the test's clients register and write much more than API.md's per-address and
	# per-user budgets allow (like tests/integration/run)
	export TH_RL_REGISTER_MAX=100000 TH_RL_REGISTER_WINDOW=5 TH_RL_LOGIN_WINDOW=4
	export TH_RL_POST_MAX=100000 TH_RL_COMMENT_MAX=100000 TH_RL_COMMUNITY_MAX=100000
	export TH_RL_REACTION_MAX=100000 TH_RL_MSG_INTERVAL_MS=1 TH_RL_MSG_BURST=100000
	export TH_RL_MANAGE_MAX=100000 TH_RL_READ_MAX=100000 TH_RL_SETTING_MAX=100000
	export TH_MQTT_CONNECT_BURST=100000
}

# cl_keys: one set of keys and passwords for the whole cluster (common.sh th_keys), copied
# to every host: tokens signed on app1 verify on app2 and on every broker
cl_keys() {
	(
		export TH_VAR_DIR=$CL_VAR/common TH_PORT_BASE=$CL_BASE
		th_init
		th_dirs
		th_keys >/dev/null
	) || return 1
	CL_KEYS=$CL_VAR/common/keys
	(
		umask 077
		openssl rand -hex 32 | tr -d '\n' >"$CL_KEYS/pgaf-monitor.secret"
		openssl rand -hex 32 | tr -d '\n' >"$CL_KEYS/pgaf-replication.secret"
	)
	local h
	for h in "${NS_HOSTS[@]}"; do
		mkdir -p "$CL_VAR/$h"
		chmod 0755 "$CL_VAR/$h"
		cp -a "$CL_KEYS" "$CL_VAR/$h/keys"
		rm -f "$CL_VAR/$h/keys"/pgaf-*.secret
	done
}

# --- Redis: master on r1, replica on r2, a sentinel on each of r1, r2, r3 ------------------

# redis_host_up HOST [master|replica [MASTER_ADDR MASTER_PORT]]: conf/redis/redis.conf.in
# rendered for HOST, listening on its address too; a replica follows MASTER (default r1; the
# sentinels move it when the master changes)
redis_host_up() {
	local h=$1 role=${2:-master} maddr=${3:-} mport=${4:-$CL_PORT_REDIS}
	[[ -n $maddr ]] || maddr=$(addr r1)
	(
		host_init "$h"
		render "$ROOT/conf/redis/redis.conf.in" "$VAR/redis/redis.conf"
		sed -i -e "s|^bind 127.0.0.1\$|bind 127.0.0.1 $HOST_ADDR|" "$VAR/redis/redis.conf"
		{
			printf 'requirepass %s\nmasterauth %s\n' "$(cat "$VAR/keys/$KEY_REDIS")" "$(cat "$VAR/keys/$KEY_REDIS")"
			[[ $role == master ]] || printf 'replicaof %s %s\n' "$maddr" "$mport"
		} >>"$VAR/redis/redis.conf"
		cd "$VAR/redis" && run_in "$h" redis-server "$VAR/redis/redis.conf" >>"$LOG/redis.log" 2>&1
	) || return 1
	wait_for 10 tcp_open "$h" "$(addr "$h")" "$CL_PORT_REDIS"
}

# sentinel_up HOST: a sentinel after conf/redis/sentinel.conf.example (quorum 2 of 3; down
# after 2 s here, 5 s in the example); it rewrites its file as the master moves. A sentinel
# started again keeps the file it rewrote (it knows the current master).
sentinel_up() {
	local h=$1
	(
		host_init "$h"
		local f=$VAR/redis/sentinel.conf pw
		pw=$(cat "$VAR/keys/$KEY_REDIS")
		if [[ ! -s $f ]]; then
			(
				umask 077
				cat >"$f" <<-CONF
					port $CL_PORT_SENTINEL
					bind $HOST_ADDR
					daemonize yes
					pidfile $RUN/sentinel.pid
					logfile $LOG/sentinel.log
					dir $VAR/redis
					requirepass $pw
					sentinel sentinel-pass $pw
					sentinel monitor townhall $(addr r1) $CL_PORT_REDIS 2
					sentinel auth-pass townhall $pw
					sentinel down-after-milliseconds townhall 2000
					sentinel failover-timeout townhall 10000
					sentinel parallel-syncs townhall 1
				CONF
			)
		fi
		run_in "$h" redis-server "$f" --sentinel >>"$LOG/sentinel.log" 2>&1
	) || return 1
	wait_for 10 tcp_open "$h" "$(addr "$h")" "$CL_PORT_SENTINEL"
}

# sentinel_master: "address port" of the master as the sentinel on r2 names it
sentinel_master() {
	run_in r2 env REDISCLI_AUTH="$(cat "$CL_KEYS/$KEY_REDIS")" redis-cli -h "$(addr r2)" -p "$CL_PORT_SENTINEL" \
		SENTINEL get-master-addr-by-name townhall 2>/dev/null | paste -sd' '
}

# sentinels_ready: every sentinel sees the replica and the two other sentinels
sentinels_ready() {
	local h out
	for h in r1 r2 r3; do
		out=$(run_in "$h" env REDISCLI_AUTH="$(cat "$CL_KEYS/$KEY_REDIS")" redis-cli -h "$(addr "$h")" -p "$CL_PORT_SENTINEL" \
			SENTINEL master townhall 2>/dev/null) || return 1
		[[ $(awk 'prev == "num-slaves" {print} {prev = $0}' <<<"$out") -ge 1 &&
			$(awk 'prev == "num-other-sentinels" {print} {prev = $0}' <<<"$out") == 2 ]] || return 1
	done
}

redis_up() {
	redis_host_up r1 master || return 1
	redis_host_up r2 replica || return 1
	sentinel_up r1 && sentinel_up r2 && sentinel_up r3 || return 1
	wait_for 30 sentinels_ready
}

# --- Redis Cluster: three masters and three replicas on r1, r2, r3 (the cluster step) -----
# Each of r1, r2, r3 runs a node on BASE+57 (a master at first) and one on BASE+58 (a
# replica of another host's master: redis-cli --cluster create places replicas away from
# their master's address). Bus ports +10000. Not started with the topology: the step that
# uses it starts it and then writes rc_mode_file (the seeds), which host_env reads, and
# restarts every Redis user (pools, brokers, th-bridges) in cluster mode.
CL_PORT_RC=$((CL_BASE + 57))
CL_PORT_RC2=$((CL_BASE + 58))
CL_RC_HOSTS=(r1 r2 r3)
# the seeds, once the step switched to the cluster (under CL_VAR: read when used, CL_VAR is
# set after this file is sourced)
rc_mode_file() { printf '%s/common/redis-cluster\n' "$CL_VAR"; }

# rc_node_up HOST PORT: one cluster node. cluster-require-full-coverage no: while a dead
# master's replica is not promoted yet, only that master's slots fail, not every key.
# Started again after a kill it keeps its nodes-PORT.conf and rejoins (as a replica of
# whoever took its slots).
rc_node_up() {
	local h=$1 port=$2 dir=$CL_VAR/$1/rcluster pw
	pw=$(cat "$CL_KEYS/$KEY_REDIS")
	mkdir -p "$dir" "$CL_VAR/$h/log"
	chmod 0700 "$dir"
	(
		umask 077
		cat >"$dir/$port.conf" <<-CONF
			port $port
			bind $(addr "$h")
			daemonize yes
			pidfile $dir/$port.pid
			logfile $CL_VAR/$h/log/rcluster-$port.log
			dir $dir
			dbfilename dump-$port.rdb
			save ""
			appendonly no
			cluster-enabled yes
			cluster-config-file nodes-$port.conf
			cluster-node-timeout 2000
			cluster-require-full-coverage no
			requirepass $pw
			masterauth $pw
		CONF
	)
	run_in "$h" redis-server "$dir/$port.conf" >>"$CL_VAR/$h/log/rcluster-$port.log" 2>&1 || return 1
	wait_for 10 tcp_open "$h" "$(addr "$h")" "$port"
}

# rc_cli HOST PORT ARGS...: redis-cli on a cluster node, from its own host
rc_cli() {
	local h=$1 port=$2
	shift 2
	run_in "$h" env REDISCLI_AUTH="$(cat "$CL_KEYS/$KEY_REDIS")" redis-cli -h "$(addr "$h")" -p "$port" "$@"
}

# rc_ok: every live node says cluster_state:ok and each of the 3 masters has a replica
rc_ok() {
	local h p nodes
	for h in "${CL_RC_HOSTS[@]}"; do
		for p in "$CL_PORT_RC" "$CL_PORT_RC2"; do
			# a node that is not running (killed by the step) is not asked
			if [[ ! -s $CL_VAR/$h/rcluster/$p.pid ]] || ! kill -0 "$(cat "$CL_VAR/$h/rcluster/$p.pid")" 2>/dev/null; then
				continue
			fi
			rc_cli "$h" "$p" CLUSTER INFO 2>/dev/null | grep -q '^cluster_state:ok' || return 1
		done
	done
	nodes=$(rc_cli r2 "$CL_PORT_RC" CLUSTER NODES 2>/dev/null) || return 1
	# field 3: flags (myself,master / slave / master,fail ...); a master with slots has > 8 fields
	[[ $(awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 8' <<<"$nodes" | wc -l) -eq 3 &&
		$(awk '$3 ~ /slave/ && $3 !~ /fail/' <<<"$nodes" | wc -l) -eq 3 ]]
}

rcluster_up() {
	local h seeds=() replicas=()
	for h in "${CL_RC_HOSTS[@]}"; do
		rc_node_up "$h" "$CL_PORT_RC" || return 1
		rc_node_up "$h" "$CL_PORT_RC2" || return 1
		seeds+=("$(addr "$h"):$CL_PORT_RC")
		replicas+=("$(addr "$h"):$CL_PORT_RC2")
	done
	run_in r1 env REDISCLI_AUTH="$(cat "$CL_KEYS/$KEY_REDIS")" redis-cli --cluster create \
		"${seeds[@]}" "${replicas[@]}" --cluster-replicas 1 --cluster-yes \
		>>"$CL_VAR/r1/log/rcluster-create.log" 2>&1 || return 1
	wait_for 30 rc_ok || return 1
	(IFS=,; printf '%s\n' "${seeds[*]}") >"$(rc_mode_file)"
}

# rc_masters: "host:port" of every master the cluster lists (as r2's first node sees it)
rc_masters() {
	rc_cli r2 "$CL_PORT_RC" CLUSTER NODES 2>/dev/null |
		awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 8 {sub(/@.*/, "", $2); print $2}' | sort
}

# rc_master_of KEY: "host:port" of the master serving KEY's slot
rc_master_of() {
	local slot
	slot=$(rc_cli r2 "$CL_PORT_RC" CLUSTER KEYSLOT "$1" 2>/dev/null) || return 1
	rc_cli r2 "$CL_PORT_RC" CLUSTER NODES 2>/dev/null | awk -v s="$slot" '
		$3 ~ /master/ && $3 !~ /fail/ {
			for (i = 9; i <= NF; i++) {
				n = split($i, r, "-")
				if ((n == 1 && r[1] == s) || (n == 2 && s >= r[1] + 0 && s <= r[2] + 0)) {
					sub(/@.*/, "", $2); print $2; exit
				}
			}
		}'
}

# rc_kill HOST PORT / rc_up HOST PORT: kill -9 a cluster node / start it again
rc_kill() { kill -KILL "$(cat "$CL_VAR/$1/rcluster/$2.pid")"; }
rc_up() { rc_node_up "$1" "$2"; }

# --- Mosquitto: hub A in huba, hub B in hubb, one edge per app host ----------------------

# broker_up HOST NAME: NAME is hub (hub A), hub-b (hub B, the standby) or e<i>; rendered
# like scripts/stack's broker_conf. Hub B is hub A's configuration with the standby's
# bridge to hub A appended (conf/mosquitto/hub-standby.conf.in), on its own host and the
# same port.
broker_up() {
	local h=$1 name=$2 port hubs
	(
		host_init "$h"
		local dir=$VAR/mosquitto/$name src log=$LOG/mosquitto-$name.log pidfile=$RUN/mosquitto-$name.pid
		mkdir -p "$dir"
		src=$dir/.mosquitto.conf.in
		if [[ $name == hub ]]; then
			port=$PORT_MQTT
			cat "$ROOT/conf/mosquitto/hub.conf.in" "$ROOT/conf/mosquitto/broker.conf.in" >"$src"
		elif [[ $name == hub-b ]]; then
			port=$PORT_MQTT
			cat "$ROOT/conf/mosquitto/hub.conf.in" "$ROOT/conf/mosquitto/broker.conf.in" \
				"$ROOT/conf/mosquitto/hub-standby.conf.in" >"$src"
		else
			port=$(edge_port "${name#e}")
			cat "$ROOT/conf/mosquitto/edge.conf.in" "$ROOT/conf/mosquitto/broker.conf.in" \
				"$ROOT/conf/mosquitto/edge-bridge.conf.in" >"$src"
		fi
		RENDER_BROKER_ID=$name RENDER_PORT_BROKER=$port render "$src" "$dir/mosquitto.conf"
		rm -f "$src"
		# the host's address instead of loopback. An edge's bridge goes to hub A, and to hub
		# B when A does not answer (edge-bridge.conf.in: round_robin false, it probes A and
		# moves back); hub B's own bridge goes to hub A only.
		hubs="$(addr huba):$CL_PORT_HUB $(addr hubb):$CL_PORT_HUB"
		[[ $name != hub-b ]] || hubs="$(addr huba):$CL_PORT_HUB"
		sed -i -e "s|^listener $port 127.0.0.1\$|listener $port $HOST_ADDR|" \
			-e "s|^address 127.0.0.1:.*|address $hubs|" \
			"$dir/mosquitto.conf"
		[[ $name == hub ]] || printf 'remote_password %s\n' "$(cat "$VAR/keys/$KEY_MQTT_SERVICE")" >>"$dir/mosquitto.conf"
		chown -R mosquitto: "$dir"
		chown root:mosquitto "$dir/mosquitto.conf"
		chmod 0640 "$dir/mosquitto.conf"
		touch "$log" "$pidfile"
		chown mosquitto: "$log" "$pidfile"
		worker_env mosquitto
		host_env
		export TH_DB_CONNINFO=${DB_CONNINFO/keys\/pgpass/keys\/pgpass.mosquitto}
		# the broker drops to user mosquitto but keeps root's HOME: libpq then fails every TLS
		# connection (the plugin's and mirror-rebuild's) on EACCES for
		# /root/.postgresql/postgresql.crt instead of going on without a client certificate
		export HOME=$dir
		cd "$VAR" || exit 1
		run_in "$h" mosquitto -d -c "$dir/mosquitto.conf" >>"$log" 2>&1 </dev/null
	) || return 1
	if [[ $name == hub* ]]; then port=$CL_PORT_HUB; else port=$((CL_BASE + 10 + ${name#e})); fi
	wait_for 10 tcp_open "$h" "$(addr "$h")" "$port"
}

# --- an app host: pools on TCP, front, edge, th-bridge ----------------------------------

# pool_tcp_up HOST POOL: scripts/fcgi-pool start POOL inside HOST, as an admin starts it on
# an app host: on TCP at the host's address (TH_FCGI_BIND), answering only the balancer and
# the host's own nginx (TH_FCGI_ALLOWED), with the cluster's conninfo
# (TH_WORKER_DB_CONNINFO) and sentinels
pool_tcp_up() {
	local h=$1 pool=$2 var
	mkdir -p "$CL_VAR/$h/log"
	(
		host_init "$h"
		host_env
		var=TH_WORKERS_${pool^^}
		export "$var=$CL_WORKERS" TH_WORKER_DB_CONNINFO="$DB_CONNINFO"
		export TH_FCGI_BIND=$HOST_ADDR TH_FCGI_ALLOWED
		TH_FCGI_ALLOWED=$(addr lb),$HOST_ADDR
		[[ ${CL_BY_NAME:-0} != 1 ]] || by_name_env
		run_in "$h" "$ROOT/scripts/fcgi-pool" start "$pool"
	) >>"$CL_VAR/$h/log/fcgi-pool.log" 2>&1 || return 1
	tcp_open "$h" "$(addr "$h")" "${CL_POOL_PORT[$pool]}"
}

wsfront_up() {
	local h=$1 edges='' a
	for a in app1 app2; do edges+=${edges:+,}$(addr "$a"):$((CL_BASE + 10 + ${CL_EDGE[$a]})); done
	(
		host_init "$h"
		(
			export TH_PORT_BASE=$PORT_BASE TH_WS_PORT=$CL_PORT_WS TH_WS_BIND=$HOST_ADDR TH_WS_FRONTS=1
			export TH_WS_EDGES=$edges TH_LOG_LEVEL=info
			# the balancer's X-Real-IP names the client (per-address limits)
			TH_WS_TRUSTED_PROXIES=$(addr lb)
			export TH_WS_TRUSTED_PROXIES
			cd "$VAR" || exit 1
			exec ip netns exec "$(ns_name "$h")" setsid "$BIN/th-wsfront"
		) >>"$LOG/wsfront.log" 2>&1 </dev/null &
		echo $! >"$RUN/wsfront.pid"
	) || return 1
	wait_for 10 tcp_open "$h" "$(addr "$h")" "$CL_PORT_WS"
}

# bridge_connected_in HOST OFFSET: th-bridge logged its connection since the log had OFFSET bytes
bridge_connected_in() { tail -c +"$(($2 + 1))" "$CL_VAR/$1/log/bridge.log" 2>/dev/null | grep -q "bridge: connected"; }

thbridge_up() {
	local h=$1 mark
	mark=$(stat -c %s "$CL_VAR/$h/log/bridge.log" 2>/dev/null || echo 0)
	(
		host_init "$h"
		(
			worker_env bridge
			host_env
			# hub A, and hub B while A is down (realtime-bridge/bridge/hubs.c)
			TH_MQTT_HOST=$(addr huba) TH_MQTT_STANDBY=$(addr hubb):$CL_PORT_HUB
			export TH_MQTT_HOST TH_MQTT_STANDBY TH_MQTT_PORT=$CL_PORT_HUB TH_BRIDGE_ID=th-bridge-$h
			cd "$VAR" || exit 1
			exec ip netns exec "$(ns_name "$h")" setsid "$BIN/th-bridge"
		) >>"$LOG/bridge.log" 2>&1 </dev/null &
		echo $! >"$RUN/bridge.pid"
	) || return 1
	wait_for 15 bridge_connected_in "$h" "$mark"
}

# nginx_host_up HOST: nginx on the app host, as scripts/stack's nginx_up renders it, with
# its upstreams on this host's pools over TCP (TH_FCGI_BIND) and a listener on the host's
# address (TH_HTTP_BIND), trusting the balancer's X-Real-IP: HAProxy sends /api/media,
# /media/ and web/ here (conf/haproxy/townhall.cfg.in, backend th_web)
nginx_ready_in() { run_in "$1" curl -fsS -o /dev/null --max-time 2 "http://$(addr "$1"):$CL_PORT_HTTP/bench/static"; }
nginx_host_up() {
	local h=$1
	(
		export TH_FCGI_BIND TH_LB_APP_SERVERS TH_HTTP_BIND TH_HTTP_TRUSTED_PROXIES
		TH_FCGI_BIND=$(addr "$h") TH_LB_APP_SERVERS=$(addr "$h") TH_HTTP_BIND=$(addr "$h")
		TH_HTTP_TRUSTED_PROXIES=$(addr lb)
		host_init "$h"
		local d
		for d in client_body fastcgi proxy scgi uwsgi media-grants; do
			mkdir -p "$VAR/nginx/$d"
			chown "$NGINX_USER:" "$VAR/nginx/$d"
		done
		nginx_upstreams "$VAR/nginx/upstreams.conf"
		render "$ROOT/conf/nginx/townhall.conf.in" "$VAR/nginx/nginx.conf" "s|@NGINX_REALIP@|$(nginx_realip)|g" \
			"s|@NGINX_EXTRA_LISTEN@|$(nginx_extra_listen)|g"
		# shellcheck disable=SC2094 # nginx only appends to the log, like we do (scripts/stack)
		run_in "$h" nginx -q -t -p "$VAR/nginx" -e "$LOG/nginx.log" -c "$VAR/nginx/nginx.conf" >>"$LOG/nginx.log" 2>&1 ||
			fail_start nginx "$LOG/nginx.log" "configuration refused ($VAR/nginx/nginx.conf)"
		# shellcheck disable=SC2094
		run_in "$h" nginx -p "$VAR/nginx" -e "$LOG/nginx.log" -c "$VAR/nginx/nginx.conf" >>"$LOG/nginx.log" 2>&1
	) || return 1
	wait_for 10 nginx_ready_in "$h"
}

# s3_up: the S3 server on the s3 host
s3_up() {
	mkdir -p "$CL_VAR/s3/log" "$CL_VAR/s3/run"
	# its objects under the state directory (TMPDIR): gone with it even after a kill -9
	run_in s3 env TMPDIR="$CL_VAR/s3" setsid node "$ROOT/tests/cluster/lib/s3-host.mjs" "$(addr s3)" "$CL_PORT_S3" "$CL_S3_BUCKET" \
		>>"$CL_VAR/s3/log/s3.log" 2>&1 </dev/null &
	echo $! >"$CL_VAR/s3/run/s3.pid"
	wait_for 15 tcp_open client "$(addr s3)" "$CL_PORT_S3"
}

app_host_up() {
	local h=$1 p
	for p in "${CL_APPS[@]}"; do pool_tcp_up "$h" "$p" || return 1; done
	nginx_host_up "$h" || return 1
	broker_up "$h" "e${CL_EDGE[$h]}" || return 1
	wsfront_up "$h" || return 1
	thbridge_up "$h"
}

# --- a resolver that does not answer: app3 and dns ---------------------------------------
# dns runs a DNS server that takes every query and never replies (lib/dns-silent.mjs);
# app3 is an app host (its auth pool and nginx only) whose /etc/resolv.conf names it
# (`ip netns exec` mounts /etc/netns/th-app3/resolv.conf over /etc/resolv.conf) and whose
# PostgreSQL hosts and sentinels are given by name (<host>.th-cluster.test, in no
# /etc/hosts), so every connection starts with a getaddrinfo that gets no answer.
CL_DNS_DOMAIN=th-cluster.test

dns_up() {
	mkdir -p "$CL_VAR/dns/log" "$CL_VAR/dns/run"
	run_in dns setsid node "$ROOT/tests/cluster/lib/dns-silent.mjs" "$(addr dns)" \
		>>"$CL_VAR/dns/log/dns.log" 2>&1 </dev/null &
	echo $! >"$CL_VAR/dns/run/dns.pid"
	wait_for 10 tcp_open client "$(addr dns)" 53
}

# by_name_env: the exported database conninfos and Redis addresses with the hosts' names
# instead of their addresses
by_name_env() {
	local h v
	for v in TH_WORKER_DB_CONNINFO TH_DB_CONNINFO TH_DB_READ_CONNINFO TH_REDIS_SENTINELS TH_REDIS_CLUSTER; do
		[[ -n ${!v:-} ]] || continue
		for h in pg1 pg2 r1 r2 r3; do
			printf -v "$v" '%s' "$(sed -E "s/(^|[=,])$(addr "$h" | sed 's/\./\\./g')([:,  ]|\$)/\1$h.$CL_DNS_DOMAIN\2/g" <<<"${!v}")"
		done
		export "${v?}"
	done
}

# app3_up [OPTIONS]: app3 again from nothing: resolv.conf naming dns (with `options
# OPTIONS` when given, e.g. "timeout:1 attempts:1"), its auth pool (names, not addresses)
# and its nginx
app3_up() {
	local pids
	mkdir -p /etc/netns/th-app3
	{
		printf 'nameserver %s\n' "$(addr dns)"
		[[ -z ${1:-} ]] || printf 'options %s\n' "$1"
	} >/etc/netns/th-app3/resolv.conf
	pids=$(ip netns pids th-app3 | tr '\n' ' ')
	# shellcheck disable=SC2086 # a list of pids
	[[ -z ${pids// /} ]] || kill -KILL $pids
	sleep 0.3
	rm -f "$CL_VAR/app3/run/"*.pid 2>/dev/null
	CL_BY_NAME=1 pool_tcp_up app3 auth || return 1
	nginx_host_up app3
}

# --- the load balancer: HAProxy ----------------------------------------------------------

# lb_up: HAProxy in th-lb from conf/haproxy/townhall.cfg.in (common.sh render_haproxy): the
# pools of both app hosts over FastCGI, checked on /api/<app>/health/ready every second,
# /mqtt to their fronts, media and web/ to their nginx. Test only: a header X-Cluster-Host
# pins a request to one app host (register on app1, log in on app2; upload on app1,
# download on app2).
lb_up() {
	(
		export TH_LB_BIND TH_LB_PORT_HTTP=$CL_PORT_HTTP TH_LB_CHECK_INTER_MS=1000
		TH_LB_BIND=$(addr lb)
		TH_LB_APP_SERVERS=$(addr app1),$(addr app2)
		export TH_LB_APP_SERVERS
		host_init lb
		render_haproxy "$VAR/haproxy.cfg"
		sed -i -e '/^backend th_\(auth\|community\|realtime\)$/,/^$/ s/^\(    default-server .*\)$/\1\n    use-server app1 if { req.hdr(x-cluster-host) app1 }\n    use-server app2 if { req.hdr(x-cluster-host) app2 }/' \
			-e '/^backend th_web$/,/^$/ s/^\(    default-server .*\)$/\1\n    use-server web1 if { req.hdr(x-cluster-host) app1 }\n    use-server web2 if { req.hdr(x-cluster-host) app2 }/' \
			"$VAR/haproxy.cfg"
		haproxy -c -q -f "$VAR/haproxy.cfg" >>"$LOG/haproxy.log" 2>&1 ||
			fail_start haproxy "$LOG/haproxy.log" "configuration refused ($VAR/haproxy.cfg)"
		run_in lb setsid haproxy -f "$VAR/haproxy.cfg" >>"$LOG/haproxy.log" 2>&1 </dev/null &
	) || return 1
	wait_for 10 tcp_open client "$(addr lb)" "$CL_PORT_HTTP"
}
