# shellcheck shell=bash
# Helpers shared by scripts/stack, scripts/fcgi-pool and scripts/migrate.
# Sourced, never executed. The layout it encodes is fixed by docs/stack-contract.md.

TH_POOLS=(auth community realtime media bench)
# edge brokers of the real-time tier: at most this many (ports BASE+10..BASE+25)
MQTT_EDGES_MAX=16
# shellcheck disable=SC2034 # used by the scripts that source this file
PG_BIN=${TH_PG_BIN:-/usr/lib/postgresql/15/bin}

# --- messages -------------------------------------------------------------

say() { printf '%s\n' "$*"; }
warn() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() {
	warn "error: $*"
	exit 1
}

# --- environment ----------------------------------------------------------

# th_init: compute every path and port of one stack from TH_PORT_BASE and
# TH_VAR_DIR, so two stacks with different values never share anything.
th_init() {
	ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
	# mosquitto, nginx and turnserver live in /usr/sbin, which a user's PATH may lack
	case ":$PATH:" in
	*:/usr/sbin:*) ;;
	*) PATH=$PATH:/usr/sbin:/sbin ;;
	esac
	PORT_BASE=${TH_PORT_BASE:-8080}
	# the stack takes BASE..BASE+31 (edge brokers from BASE+10, up to 16; pools on
	# TCP BASE+26..30; the standby hub BASE+31)
	if ! [[ $PORT_BASE =~ ^[0-9]+$ ]] || ((PORT_BASE < 1024 || PORT_BASE > 65504)); then
		die "TH_PORT_BASE must be a number between 1024 and 65504 (got '$PORT_BASE')"
	fi
	# The real-time tier: a hub broker and TH_MQTT_EDGES edge brokers
	# (docs/scaling.md, "Real time").
	MQTT_EDGES=${TH_MQTT_EDGES:-2}
	if ! [[ $MQTT_EDGES =~ ^[0-9]+$ ]] || ((MQTT_EDGES < 1 || MQTT_EDGES > MQTT_EDGES_MAX)); then
		die "TH_MQTT_EDGES must be a number between 1 and $MQTT_EDGES_MAX (got '$MQTT_EDGES')"
	fi
	# A standby hub (hub-b on BASE+31) the edges and th-bridge move to when the
	# hub fails, bridged to the hub (conf/mosquitto/hub-standby.conf.in).
	MQTT_HUB_STANDBY=${TH_MQTT_HUB_STANDBY:-0}
	[[ $MQTT_HUB_STANDBY == [01] ]] || die "TH_MQTT_HUB_STANDBY must be 0 or 1 (got '$MQTT_HUB_STANDBY')"
	MQTT_EPSHIM=${TH_MQTT_EPSHIM:-1}
	[[ $MQTT_EPSHIM == [01] ]] || die "TH_MQTT_EPSHIM must be 0 or 1 (got '$MQTT_EPSHIM')"
	IS_ROOT=0
	[[ $(id -u) -eq 0 ]] && IS_ROOT=1
	VAR=${TH_VAR_DIR:-$(default_var)}
	mkdir -p "$VAR"
	VAR=$(cd "$VAR" && pwd -P) # absolute: daemons get it in their configs
	BIN=${TH_BIN_DIR:-$ROOT/build/bin}
	[[ -d $BIN ]] && BIN=$(cd "$BIN" && pwd -P)
	RUN=$VAR/run
	LOG=$VAR/log
	# The broker plugin (realtime-bridge/plugin), built next to the binaries.
	# TH_PLUGIN: `make asan` points the broker at the regular build's plugin
	# (an ASan runtime preloaded into the broker deadlocks in libpq's gettext)
	PLUGIN=${TH_PLUGIN:-$(dirname "$BIN")/lib/townhall-plugin.so}
	# The epoll shim preloaded into each broker (realtime-bridge/epshim): never
	# sanitized, so `make asan` finds it beside the regular plugin.
	EPSHIM=$(dirname "$PLUGIN")/th-epshim.so
	PORT_HTTP=$PORT_BASE
	PORT_PG=$((PORT_BASE + 1))
	PORT_REDIS=$((PORT_BASE + 2))
	PORT_MQTT=$((PORT_BASE + 3))
	PORT_MQTT_WS=$((PORT_BASE + 4))
	PORT_HUB_B=$((PORT_BASE + 31))
	# the hubs an edge's bridge tries, in order (edge-bridge.conf.in)
	MQTT_HUBS=127.0.0.1:$PORT_MQTT
	if ((MQTT_HUB_STANDBY)); then MQTT_HUBS+=" 127.0.0.1:$PORT_HUB_B"; fi
	# edge i (0-based) listens on BASE+10+i; the fronts reach them in this list
	local i
	WS_EDGES=''
	for ((i = 0; i < MQTT_EDGES; i++)); do
		WS_EDGES+=${WS_EDGES:+,}127.0.0.1:$(edge_port "$i")
		[[ -z $(edge_sock "$i") ]] || WS_EDGES+=@$(edge_sock "$i")
	done
	# The workers, scripts and tests log in with a scram password that libpq
	# reads from the passfile (th_keys); the broker gets a copy of its own.
	DB_CONNINFO="host=127.0.0.1 port=$PORT_PG dbname=townhall user=townhall connect_timeout=2 passfile=$VAR/keys/pgpass"
	# nginx's workers (as root: www-data, else the caller) reach the FastCGI
	# sockets and private media through this group.
	NGINX_USER='' NGINX_GROUP=''
	if ((IS_ROOT)); then
		NGINX_USER=nobody NGINX_GROUP=nogroup
		getent passwd www-data >/dev/null 2>&1 && NGINX_USER=www-data NGINX_GROUP=www-data
	fi
	# What nginx serves from the clone (web/ and the MQTT client); staged
	# into VAR when nginx's workers cannot read the clone (stage_for_daemons).
	WEB_DIR=$ROOT/web
	MQTT_JS=$ROOT/node_modules/mqtt/dist/mqtt.esm.js
	QRCODE_JS=$ROOT/node_modules/qrcode-generator/dist/qrcode.mjs
	# what the broker plugin runs when Redis lost the mirror (as user mosquitto)
	MIRROR_REBUILD=$ROOT/scripts/mirror-rebuild
	# The pools reach this stack's Redis over a unix socket too (a cache hit's
	# round trip costs less than over loopback TCP); everything else, and a
	# var dir too deep for a socket path (108 bytes), uses the TCP port.
	REDIS_SOCK=$VAR/run/redis.sock
	((${#REDIS_SOCK} < 100)) || REDIS_SOCK=''
	fcgi_init
}

# ipv4_valid ADDR: a dotted IPv4 address (libfcgi checks callers of IPv4 only).
ipv4_valid() {
	local IFS=. a
	# shellcheck disable=SC2206 # split on dots on purpose
	local -a o=($1)
	[[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
	for a in "${o[@]}"; do ((10#$a <= 255)) || return 1; done
}

# fcgi_init: FastCGI over TCP (docs/stack-contract.md, "Pools on TCP").
# TH_FCGI_BIND unset or empty: every pool on its unix socket, as always.
# Set (an IPv4 address): every pool listens on BIND:pool_port instead, and
# answers only the callers in TH_FCGI_ALLOWED (libfcgi's
# FCGI_WEB_SERVER_ADDRS; default: this host's own callers, 127.0.0.1 and the
# bind address). TH_LB_APP_SERVERS: the app hosts the balancers (nginx's
# upstream variant, HAProxy) send to, default this host.
fcgi_init() {
	local a host=127.0.0.1 callers=127.0.0.1
	FCGI_BIND=${TH_FCGI_BIND:-}
	FCGI_ALLOWED=''
	if [[ -n $FCGI_BIND ]]; then
		ipv4_valid "$FCGI_BIND" ||
			die "TH_FCGI_BIND must be an IPv4 address (got '$FCGI_BIND'): libfcgi checks the callers of IPv4 only"
		# a local caller of BIND connects from BIND
		if [[ $FCGI_BIND != 0.0.0.0 ]]; then
			host=$FCGI_BIND
			[[ $FCGI_BIND == 127.0.0.1 ]] || callers=127.0.0.1,$FCGI_BIND
		fi
		FCGI_ALLOWED=${TH_FCGI_ALLOWED:-$callers}
		FCGI_ALLOWED=${FCGI_ALLOWED// /}
		[[ -n ${FCGI_ALLOWED//,/} ]] || die "TH_FCGI_ALLOWED is empty: a pool on TCP must name its callers"
		for a in ${FCGI_ALLOWED//,/ }; do
			ipv4_valid "$a" || die "TH_FCGI_ALLOWED: '$a' is no IPv4 address (a comma list of addresses)"
		done
	fi
	LB_APP_SERVERS=${TH_LB_APP_SERVERS:-$host}
	LB_APP_SERVERS=${LB_APP_SERVERS// /}
	for a in ${LB_APP_SERVERS//,/ }; do
		ipv4_valid "$a" || die "TH_LB_APP_SERVERS: '$a' is no IPv4 address (a comma list of app hosts)"
	done
}

# pool_port POOL: the TCP port of POOL when the pools are on TCP.
pool_port() {
	case $1 in
	auth) printf '%s\n' $((PORT_BASE + 26)) ;;
	community) printf '%s\n' $((PORT_BASE + 27)) ;;
	realtime) printf '%s\n' $((PORT_BASE + 28)) ;;
	media) printf '%s\n' $((PORT_BASE + 29)) ;;
	bench) printf '%s\n' $((PORT_BASE + 30)) ;;
	*) die "no port for pool '$1'" ;;
	esac
}

# pool_listen POOL: where POOL listens with the current settings:
# unix:<path> or tcp:<address>:<port>. A started pool remembers its own in
# $RUN/<pool>.listen (pool_listening), so a restart can tell a change.
pool_listen() {
	if [[ -n $FCGI_BIND ]]; then
		printf 'tcp:%s:%s\n' "$FCGI_BIND" "$(pool_port "$1")"
	else
		printf 'unix:%s\n' "$RUN/$1.sock"
	fi
}

# pool_listening POOL: where the running POOL listens (unix: for a pool
# started before pools remembered it).
pool_listening() {
	local l=''
	[[ -r $RUN/$1.listen ]] && read -r l <"$RUN/$1.listen"
	printf '%s\n' "${l:-unix:$RUN/$1.sock}"
}

# edge_port I: the TCP port of edge broker I (0-based).
edge_port() { printf '%s\n' $((PORT_BASE + 10 + $1)); }

# edge_sock I: edge i's unix socket, for the fronts of this host, in its state
# dir (mosquitto makes it after dropping to its user); nothing when the state
# dir is too deep for a socket path (108 bytes): the fronts use the port.
edge_sock() {
	local s=$VAR/mosquitto/e$1/edge.sock
	((${#s} < 100)) && printf '%s\n' "$s"
	return 0
}

# reaches USER PATH: as root, whether USER may read PATH (every parent
# traversable); everyone reaches everything when we are not root, because
# then every daemon runs as the caller.
reaches() {
	((IS_ROOT)) || return 0
	runuser -u "$1" -- test -r "$2" 2>/dev/null
}

# default_var: Root/var, unless we are root in a clone that the daemons which
# drop privileges (postgres, mosquitto, nginx's workers) cannot traverse (a
# 0700 home, a mktemp -d folder): then a runtime home of this clone under
# /var/lib/townhall, named after its path, so every command of the clone
# finds the same one. Root/var becomes a link to it when it does not exist.
default_var() {
	local root=$ROOT home
	if ((IS_ROOT)) && ! runuser -u nobody -- test -x "$root" 2>/dev/null; then
		home=/var/lib/townhall/$(basename "$root" | tr -c 'A-Za-z0-9_.\n-' _)-$(printf '%s' "$root" | sha256sum | cut -c1-12)
		mkdir -p "$home"
		chmod 0755 /var/lib/townhall "$home"
		if [[ ! -e $root/var && ! -L $root/var ]]; then
			ln -s "$home" "$root/var"
		elif [[ ! -L $root/var ]]; then
			warn "$root/var is a directory the daemons cannot reach: using $home instead"
		fi
		printf '%s\n' "$home"
		return 0
	fi
	printf '%s\n' "$root/var"
}

# stage_for_daemons: copy what a daemon reads from the clone into VAR when
# that daemon's user cannot read it where it is: the broker plugin (loaded by
# mosquitto after it dropped to user mosquitto) and what nginx's workers
# serve (web/, the MQTT client). Checked on every up and recopied when the
# clone's files changed, so a rebuild applies.
stage_for_daemons() {
	((IS_ROOT)) || return 0
	if ! reaches mosquitto "$PLUGIN"; then
		mkdir -p "$VAR/lib"
		chmod 0755 "$VAR/lib"
		# a rename: a running broker keeps the file it loaded
		if ! cmp -s "$PLUGIN" "$VAR/lib/townhall-plugin.so"; then
			install -m 0644 "$PLUGIN" "$VAR/lib/.townhall-plugin.so.new"
			mv -f "$VAR/lib/.townhall-plugin.so.new" "$VAR/lib/townhall-plugin.so"
		fi
		PLUGIN=$VAR/lib/townhall-plugin.so
	fi
	if ! reaches "$NGINX_USER" "$WEB_DIR/index.html"; then
		# only when something changed: a running nginx serves from there
		if ! diff -rq "$WEB_DIR" "$VAR/www/web" >/dev/null 2>&1 ||
			{ [[ -r $MQTT_JS ]] && ! cmp -s "$MQTT_JS" "$VAR/www/mqtt.esm.js"; } ||
			{ [[ -r $QRCODE_JS ]] && ! cmp -s "$QRCODE_JS" "$VAR/www/qrcode.mjs"; }; then
			rm -rf "$VAR/www.new"
			mkdir -p "$VAR/www.new"
			cp -R "$WEB_DIR" "$VAR/www.new/web"
			[[ ! -r $MQTT_JS ]] || cp "$MQTT_JS" "$VAR/www.new/mqtt.esm.js"
			[[ ! -r $QRCODE_JS ]] || cp "$QRCODE_JS" "$VAR/www.new/qrcode.mjs"
			chmod -R a+rX "$VAR/www.new"
			rm -rf "$VAR/www"
			mv "$VAR/www.new" "$VAR/www"
		fi
		WEB_DIR=$VAR/www/web
		MQTT_JS=$VAR/www/mqtt.esm.js
		QRCODE_JS=$VAR/www/qrcode.mjs
	fi
	# scripts/mirror-rebuild runs as the broker's user too (the plugin starts it
	# when Redis lost the mirror), with the one file it sources
	if ! reaches mosquitto "$MIRROR_REBUILD"; then
		mkdir -p "$VAR/scripts/lib"
		chmod 0755 "$VAR/scripts" "$VAR/scripts/lib"
		install -m 0644 "$ROOT/scripts/lib/common.sh" "$VAR/scripts/lib/common.sh"
		install -m 0755 "$ROOT/scripts/mirror-rebuild" "$VAR/scripts/mirror-rebuild"
		MIRROR_REBUILD=$VAR/scripts/mirror-rebuild
	fi
}

# th_dirs: create the state tree. Daemons that drop privileges (nginx workers
# run as NGINX_USER, mosquitto as mosquitto, postgres as postgres) must be able to
# traverse it, so directories are 0755 and VAR itself gets o+x even when it
# came from mktemp (0700). Nothing secret lives in run/ or log/. keys/ is
# 0755 so any verifier can read the public key; the secrets in it are 0600
# (the MQTT service secret 0640, group mosquitto, for the broker).
th_dirs() {
	mkdir -p "$RUN" "$LOG" "$VAR/keys" "$VAR/redis" "$VAR/mosquitto" "$VAR/nginx" "$VAR/pg" "$VAR/media/tmp"
	chmod go+x "$VAR"
	chmod 0755 "$RUN" "$LOG" "$VAR/keys" "$VAR/nginx" "$VAR/mosquitto" "$VAR/pg"
	chmod 0700 "$VAR/redis"
	# Stored media are private (0640, lib storage_local.c): nginx's workers
	# read them through the group, which new directories inherit (setgid).
	chmod 0750 "$VAR/media" "$VAR/media/tmp"
	if ((IS_ROOT)); then
		chgrp "$NGINX_GROUP" "$VAR/media" "$VAR/media/tmp"
		chmod 2750 "$VAR/media" "$VAR/media/tmp"
		# media stored before (0644 files, directories of group root)
		if [[ -n $(find "$VAR/media" \( ! -group "$NGINX_GROUP" -o -perm /o=r \) -print -quit) ]]; then
			chgrp -R "$NGINX_GROUP" "$VAR/media"
			find "$VAR/media" -type d -exec chmod 2750 {} + -o -type f -exec chmod 0640 {} +
		fi
	fi
}

# --- key material -----------------------------------------------------------

# Development keys of the auth service (docs/stack-contract.md, "Auth
# settings"). Callers may point the workers elsewhere with TH_JWT_*.
KEY_ES256=jwt-es256.pem
# the VAPID key pair of Web Push (RFC 8292): the realtime app publishes its
# public half, th-pusher signs with it
KEY_VAPID=vapid-p256.pem
KEY_ES256_PUB=jwt-es256.pub.pem
KEY_HS256=jwt-hs256.secret
# The MQTT service account's password (docs/stack-contract.md, "MQTT broker plugin").
KEY_MQTT_SERVICE=mqtt-service.secret
# The stack's server passwords (docs/stack-contract.md, "Credentials").
KEY_PG=pg-townhall.secret
KEY_REDIS=redis.secret

# key_install TMP DST MODE: give a freshly written key its mode, then rename
# it into place, so a failed or interrupted up never leaves half a key that
# the next up would take for a complete one.
key_install() {
	chmod "$3" "$1"
	mv -f "$1" "$2"
}

# key_p256 TMP DEST WHAT: a new P-256 private key (PKCS#8 PEM) at DEST, 0600,
# written at TMP first so that DEST is whole or absent.
key_p256() {
	(
		umask 077
		openssl ecparam -name prime256v1 -genkey -noout | openssl pkey -out "$1"
	) 2>>"$LOG/keys.log" || {
		rm -f "$1"
		die "keys: openssl could not create $3 (see $LOG/keys.log)"
	}
	key_install "$1" "$2" 0600
}

# th_keys: create what is missing under $VAR/keys: an ES256 (P-256) pair,
# private PKCS#8 PEM 0600 and public PEM 0644, the VAPID (P-256) private key
# of Web Push, PKCS#8 PEM 0600, and an HS256 secret of 48
# random bytes, base64 (64 characters, no newline), 0600, and the MQTT
# service secret: 32 random bytes as hex (64 characters, no newline), 0640,
# group mosquitto. Existing files are kept: a key is never rotated behind the
# admin's back.
th_keys() {
	local k=$VAR/keys tmp
	mkdir -p "$k"
	chmod 0755 "$k"
	tmp=$k/.new.$$
	if [[ ! -s $k/$KEY_ES256 ]]; then
		key_p256 "$tmp" "$k/$KEY_ES256" "an ES256 key"
		rm -f "$k/$KEY_ES256_PUB" # it belonged to another private key
		say "keys: created ES256 key pair in $k"
	fi
	if [[ ! -s $k/$KEY_ES256_PUB ]]; then
		openssl pkey -in "$k/$KEY_ES256" -pubout -out "$tmp" 2>>"$LOG/keys.log" || {
			rm -f "$tmp"
			die "keys: openssl could not derive the public key of $k/$KEY_ES256 (see $LOG/keys.log)"
		}
		key_install "$tmp" "$k/$KEY_ES256_PUB" 0644
	fi
	if [[ ! -s $k/$KEY_VAPID ]]; then
		# 0600: the realtime workers and th-pusher run as the owner
		key_p256 "$tmp" "$k/$KEY_VAPID" "the VAPID key"
		say "keys: created VAPID key pair $k/$KEY_VAPID"
	fi
	if [[ ! -s $k/$KEY_HS256 ]]; then
		(
			umask 077
			openssl rand -base64 48 | tr -d '\n' >"$tmp"
		) 2>>"$LOG/keys.log" || {
			rm -f "$tmp"
			die "keys: openssl could not create the HS256 secret (see $LOG/keys.log)"
		}
		key_install "$tmp" "$k/$KEY_HS256" 0600
		say "keys: created HS256 secret $k/$KEY_HS256"
	fi
	key_hex "$KEY_MQTT_SERVICE" "MQTT service secret" 0640
	# coturn's shared secret for REST-API credentials (the realtime app signs
	# them): hex, so it renders safely into turnserver.conf
	key_hex turn.secret "TURN secret"
	# the media app signs private media URLs with it (?exp=&sig=)
	key_hex media-url.secret "media URL secret"
	# the auth app seals secrets it must read back (TOTP) with it (lib/seal.h):
	# a dump of the database alone then gives none of them
	key_hex seal.key "key for secrets at rest"
	# The passwords of the stack's servers: PostgreSQL's role townhall (scram)
	# and Redis (requirepass). Hex, so they render safely into configs.
	key_hex "$KEY_PG" "PostgreSQL password of role townhall"
	key_hex "$KEY_REDIS" "Redis password"
	# libpq's passfile (it ignores one with group or other bits), rewritten
	# from the password on every up; the broker's plugin runs as mosquitto
	# and gets a copy it owns.
	(
		umask 077
		printf '*:*:*:townhall:%s\n' "$(cat "$k/$KEY_PG")" >"$tmp"
	)
	key_install "$tmp" "$k/pgpass" 0600
	if ((IS_ROOT)) && id mosquitto >/dev/null 2>&1; then
		cp "$k/pgpass" "$tmp"
		chown mosquitto: "$tmp"
		key_install "$tmp" "$k/pgpass.mosquitto" 0600
	fi
	# The broker reads these after dropping to user mosquitto (run as root);
	# the apps and the bridge run as the owner.
	if ((IS_ROOT)) && getent group mosquitto >/dev/null 2>&1; then
		chgrp mosquitto "$k/$KEY_MQTT_SERVICE" "$k/$KEY_REDIS"
		chmod 0640 "$k/$KEY_MQTT_SERVICE" "$k/$KEY_REDIS"
	fi
}

# key_hex NAME WHAT [MODE]: create $VAR/keys/NAME, 32 random bytes as hex (64
# characters, no newline), MODE (0600), unless it exists.
key_hex() {
	local f=$VAR/keys/$1 tmp=$VAR/keys/.new.$$
	[[ -s $f ]] && return 0
	(
		umask 077
		openssl rand -hex 32 | tr -d '\n' >"$tmp"
	) 2>>"$LOG/keys.log" || {
		rm -f "$tmp"
		die "keys: openssl could not create the $2 (see $LOG/keys.log)"
	}
	key_install "$tmp" "$f" "${3:-0600}"
	say "keys: created $2 $f"
}

# worker_env: export what the contract promises to FastCGI workers. Any other
# TH_* variable of the caller (TH_TEST_ROUTES, TH_DB_READ_CONNINFO, ...) is
# already in the environment and simply inherited.
worker_env() {
	export TH_POOL=$1
	export TH_VAR_DIR=$VAR
	export TH_PORT_BASE=$PORT_BASE
	# TH_WORKER_DB_CONNINFO: what is given reaches the primary some other way
	# than this stack's own cluster alone (a multi-host conninfo, PgBouncer)
	export TH_DB_CONNINFO=${TH_WORKER_DB_CONNINFO:-$DB_CONNINFO}
	export TH_REDIS_HOST=127.0.0.1
	export TH_REDIS_PORT=$PORT_REDIS
	[[ -z $REDIS_SOCK ]] || export TH_REDIS_SOCKET=${TH_REDIS_SOCKET:-$REDIS_SOCK}
	export TH_LOG_LEVEL=${TH_LOG_LEVEL:-info}
	# Key paths: the caller's choice wins, else this stack's keys (th_keys).
	export TH_JWT_PRIVATE_KEY=${TH_JWT_PRIVATE_KEY:-$VAR/keys/$KEY_ES256}
	export TH_JWT_PUBLIC_KEY=${TH_JWT_PUBLIC_KEY:-$VAR/keys/$KEY_ES256_PUB}
	export TH_JWT_SECRET_FILE=${TH_JWT_SECRET_FILE:-$VAR/keys/$KEY_HS256}
	export TH_MQTT_SERVICE_SECRET_FILE=${TH_MQTT_SERVICE_SECRET_FILE:-$VAR/keys/$KEY_MQTT_SERVICE}
	export TH_TURN_SECRET_FILE=${TH_TURN_SECRET_FILE:-$VAR/keys/turn.secret}
	export TH_VAPID_KEY_FILE=${TH_VAPID_KEY_FILE:-$VAR/keys/$KEY_VAPID}
	export TH_VAPID_SUBJECT=${TH_VAPID_SUBJECT:-mailto:admin@townhall.localhost}
	export TH_REDIS_PASSWORD_FILE=${TH_REDIS_PASSWORD_FILE:-$VAR/keys/$KEY_REDIS}
}

# redis_cli ARGS...: redis-cli on this stack's Redis, with its password
# (REDISCLI_AUTH: not on the command line, where ps would show it).
redis_cli() {
	REDISCLI_AUTH=$(cat "${TH_REDIS_PASSWORD_FILE:-$VAR/keys/$KEY_REDIS}") redis-cli -h "${REDIS_HOST:-127.0.0.1}" -p "${REDIS_PORT:-$PORT_REDIS}" "$@"
}

# --- templates ------------------------------------------------------------

# render SRC DST [SED_EXPR...]: replace @NAME@ placeholders. Values are
# absolute paths and numbers (and a broker's id and port, from
# RENDER_BROKER_ID and RENDER_PORT_BROKER); '|' is the sed delimiter, so
# refuse a path containing it. SED_EXPR: more substitutions of the caller's
# (nginx_upstreams, render_haproxy), applied first.
render() {
	local src=$1 dst=$2 v
	shift 2
	local -a extra=()
	for v in "$@"; do extra+=(-e "$v"); done
	for v in "$ROOT" "$VAR" "$PLUGIN" "$WEB_DIR" "$MQTT_JS" "$QRCODE_JS" "$MIRROR_REBUILD"; do
		[[ $v != *'|'* && $v != *'&'* ]] || die "path '$v' contains '|' or '&'"
	done
	local user_line='' redis_unix_line=''
	((IS_ROOT)) && user_line="user $NGINX_USER $NGINX_GROUP;"
	[[ -z $REDIS_SOCK ]] || redis_unix_line="unixsocket $REDIS_SOCK"

	sed "${extra[@]}" -e "s|@ROOT@|$ROOT|g" \
		-e "s|@VAR@|$VAR|g" \
		-e "s|@PORT_HTTP@|$PORT_HTTP|g" \
		-e "s|@PORT_PG@|$PORT_PG|g" \
		-e "s|@PORT_REDIS@|$PORT_REDIS|g" \
		-e "s|@PORT_MQTT@|$PORT_MQTT|g" \
		-e "s|@PORT_MQTT_WS@|$PORT_MQTT_WS|g" \
		-e "s|@NGINX_USER_LINE@|$user_line|g" \
		-e "s|@REDIS_UNIX_LINE@|$redis_unix_line|g" \
		-e "s|@PLUGIN@|$PLUGIN|g" \
		-e "s|@WEB_DIR@|$WEB_DIR|g" \
		-e "s|@MQTT_JS@|$MQTT_JS|g" \
		-e "s|@QRCODE_JS@|$QRCODE_JS|g" \
		-e "s|@MIRROR_REBUILD@|$MIRROR_REBUILD|g" \
		-e "s|@BROKER_ID@|${RENDER_BROKER_ID:-}|g" \
		-e "s|@PORT_BROKER@|${RENDER_PORT_BROKER:-}|g" \
		-e "s|@EDGE_UNIX_LISTENER@|${RENDER_EDGE_UNIX_LISTENER:-}|g" \
		-e "s|@MQTT_HUBS@|$MQTT_HUBS|g" \
		"$src" >"$dst.tmp"
	if grep -q '@[A-Z_]*@' "$dst.tmp"; then
		die "unrendered placeholder in $src: $(grep -o '@[A-Z_]*@' "$dst.tmp" | head -1)"
	fi
	mv -f "$dst.tmp" "$dst"
}

# nginx_realip: nginx's realip lines for TH_HTTP_TRUSTED_PROXIES (comma list
# of IPv4 addresses or CIDR blocks: the balancers in front), or a comment.
nginx_realip() {
	local p out=''
	local list=${TH_HTTP_TRUSTED_PROXIES:-}
	for p in ${list//,/ }; do
		if ! ipv4_valid "${p%/*}" || { [[ $p == */* ]] && ! in_range "${p#*/}" 0 32; }; then
			die "TH_HTTP_TRUSTED_PROXIES: '$p' is no IPv4 address or block"
		fi
		out+="set_real_ip_from $p; "
	done
	if [[ -n $out ]]; then
		printf '%sreal_ip_header X-Real-IP;\n' "$out"
	else
		printf '# no trusted proxy (TH_HTTP_TRUSTED_PROXIES)\n'
	fi
}

# nginx_extra_listen: nginx's listen line for TH_HTTP_BIND (an IPv4 address
# besides 127.0.0.1, where a balancer on another host reaches nginx), or a comment.
nginx_extra_listen() {
	local b=${TH_HTTP_BIND:-}
	if [[ -z $b || $b == 127.0.0.1 ]]; then
		printf '# loopback only (TH_HTTP_BIND)\n'
		return 0
	fi
	ipv4_valid "$b" || die "TH_HTTP_BIND: '$b' is no IPv4 address"
	printf 'listen %s:%s;\n' "$b" "$PORT_HTTP"
}

# nginx_upstreams DST: render conf/nginx/upstreams.conf.in: per pool, its
# unix socket, or (TH_FCGI_BIND) a server per app host of TH_LB_APP_SERVERS
# on the pool's port.
nginx_upstreams() {
	local dst=$1 pool servers h
	local -a subst=()
	for pool in "${TH_POOLS[@]}"; do
		if [[ -z $FCGI_BIND ]]; then
			servers="server unix:$RUN/$pool.sock;"
		else
			servers=''
			for h in ${LB_APP_SERVERS//,/ }; do
				servers+="${servers:+ }server $h:$(pool_port "$pool") max_fails=2 fail_timeout=5s;"
			done
		fi
		subst+=("s|@NGINX_SERVERS_${pool^^}@|$servers|g")
	done
	render "$ROOT/conf/nginx/upstreams.conf.in" "$dst" "${subst[@]}"
}

# in_range VALUE MIN MAX: VALUE is a decimal number in MIN..MAX.
in_range() {
	[[ $1 =~ ^[0-9]{1,9}$ ]] || return 1
	((10#$1 >= $2 && 10#$1 <= $3))
}

# hostport_list WHAT LIST: check a comma list of IPv4host:port.
hostport_list() {
	local hp
	for hp in ${2//,/ }; do
		if [[ $hp != *:* ]] || ! ipv4_valid "${hp%:*}" || ! in_range "${hp##*:}" 1 65535; then
			die "$1: '$hp' is no IPv4 host:port"
		fi
	done
}

# render_haproxy DST: render conf/haproxy/townhall.cfg.in from the TH_LB_*
# variables its head documents (after th_init). Lines marked @TLS@ stay only
# when TH_LB_CERT names a certificate; @SERVERS_<BACKEND>@ becomes one
# `server` line per host.
render_haproxy() {
	local dst=$1 cert=${TH_LB_CERT:-} bind=${TH_LB_BIND:-127.0.0.1} h i line name v
	local http=${TH_LB_PORT_HTTP:-$((PORT_BASE + 40))} https=${TH_LB_PORT_HTTPS:-$((PORT_BASE + 41))}
	local inter=${TH_LB_CHECK_INTER_MS:-2000} sock=${TH_LB_STATS_SOCKET:-$RUN/haproxy.sock}
	local maxconn=${TH_LB_MAXCONN:-4096}
	local fronts=${TH_LB_FRONT_SERVERS:-} web=${TH_LB_WEB_SERVERS:-}
	local -A servers=()
	ipv4_valid "$bind" || die "TH_LB_BIND: '$bind' is no IPv4 address"
	for v in "$http" "$https"; do
		in_range "$v" 1 65535 || die "TH_LB_PORT_HTTP/HTTPS: '$v' is no port"
	done
	in_range "$inter" 100 60000 || die "TH_LB_CHECK_INTER_MS must be 100..60000"
	in_range "$maxconn" 16 1000000 || die "TH_LB_MAXCONN must be 16..1000000"
	[[ -z $cert || -r $cert ]] || die "TH_LB_CERT: cannot read '$cert'"
	for v in "$cert" "$sock"; do
		[[ $v != *'|'* && $v != *'&'* && $v != *' '* ]] || die "path '$v' contains '|', '&' or a space"
	done
	if [[ -z $fronts ]]; then
		for h in ${LB_APP_SERVERS//,/ }; do fronts+=${fronts:+,}$h:$PORT_MQTT_WS; done
	fi
	if [[ -z $web ]]; then
		for h in ${LB_APP_SERVERS//,/ }; do web+=${web:+,}$h:$PORT_HTTP; done
	fi
	hostport_list TH_LB_FRONT_SERVERS "$fronts"
	hostport_list TH_LB_WEB_SERVERS "$web"
	for name in auth community realtime; do
		i=0
		for h in ${LB_APP_SERVERS//,/ }; do
			i=$((i + 1))
			servers[${name^^}]+="    server app$i $h:$(pool_port "$name")"$'\n'
		done
	done
	i=0
	for h in ${fronts//,/ }; do
		i=$((i + 1))
		servers[MQTT]+="    server front$i $h"$'\n'
	done
	i=0
	for h in ${web//,/ }; do
		i=$((i + 1))
		servers[WEB]+="    server web$i $h"$'\n'
	done
	while IFS= read -r line || [[ -n $line ]]; do
		if [[ $line =~ ^@SERVERS_([A-Z]+)@$ ]]; then
			[[ -n ${servers[${BASH_REMATCH[1]}]:-} ]] || die "no servers for ${BASH_REMATCH[1]}"
			printf '%s' "${servers[${BASH_REMATCH[1]}]}"
		elif [[ $line == @TLS@* ]]; then
			[[ -z $cert ]] || printf '%s\n' "${line#@TLS@}"
		else
			printf '%s\n' "$line"
		fi
	done <"$ROOT/conf/haproxy/townhall.cfg.in" >"$dst.pre"
	render "$dst.pre" "$dst" \
		"s|@LB_BIND@|$bind|g" "s|@LB_PORT_HTTP@|$http|g" "s|@LB_PORT_HTTPS@|$https|g" \
		"s|@LB_CERT@|$cert|g" "s|@LB_STATS_SOCKET@|$sock|g" "s|@LB_CHECK_INTER_MS@|$inter|g" "s|@LB_MAXCONN@|$maxconn|g"
	rm -f "$dst.pre"
}

# --- processes ------------------------------------------------------------

# pid_of FILE: print the pid stored in FILE (first line) or nothing.
pid_of() {
	local f=$1 pid=''
	if [[ -r $f ]]; then read -r pid <"$f" || true; fi
	[[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
	return 0
}

# alive PID COMM: the pid exists and runs COMM. Checking the name guards
# against a stale pid file whose pid now belongs to an unrelated process
# (after a reboot): we must never signal that one.
alive() {
	local pid=$1 comm=$2 actual
	[[ -n $pid ]] || return 1
	gone "$pid" && return 1
	actual=$(ps -o comm= -p "$pid" 2>/dev/null) || return 1
	[[ $actual == "$comm"* ]]
}

# alive_file PIDFILE COMM: print the pid if the process of PIDFILE is alive.
alive_file() {
	local pid
	pid=$(pid_of "$1")
	alive "$pid" "$2" && printf '%s\n' "$pid"
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# gone PID: the process has exited. A zombie counts as gone: daemons we
# started are reparented to PID 1, which may reap them late (containers).
gone() {
	kill -0 "$1" 2>/dev/null || return 0
	[[ $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]]
}

# stop_pid PID NAME [BOUND] [GROUP]: SIGTERM, wait up to BOUND seconds, then
# SIGKILL (the whole process group when GROUP=1, so a pool's workers do not
# outlive their multiwatch).
stop_pid() {
	local pid=$1 name=$2 bound=${3:-15} group=${4:-0}
	kill -TERM "$pid" 2>/dev/null || return 0
	wait_for "$bound" gone "$pid" && return 0
	warn "$name (pid $pid) still alive after ${bound}s: SIGKILL"
	if ((group)); then
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	kill -KILL "$pid" 2>/dev/null || true
	wait_for 5 gone "$pid" || warn "$name (pid $pid) survived SIGKILL"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# need_free_port NAME PORT: refuse to start NAME over a port someone else
# holds (another stack with the same base, a system service).
need_free_port() {
	! port_open "$2" || die "$1: port $2 is already in use by another process (other stack? choose another TH_PORT_BASE)"
}

# fail_start NAME LOGFILE MESSAGE: the one way a component fails to start:
# name it and show the end of its log.
fail_start() {
	warn "error: $1: $3"
	if [[ -s $2 ]]; then
		warn "last lines of $2:"
		tail -n 20 "$2" >&2
	fi
	exit 1
}

# --- FastCGI pools ----------------------------------------------------------

pool_valid() {
	local p
	for p in "${TH_POOLS[@]}"; do [[ $p == "$1" ]] && return 0; done
	die "unknown pool '$1' (pools: ${TH_POOLS[*]})"
}

# plugin_path: the broker plugin, which mosquitto must load (like pool_bin).
plugin_path() {
	[[ -r $PLUGIN ]] || die "$PLUGIN not found: run make first (or set TH_BIN_DIR)"
	printf '%s\n' "$PLUGIN"
}

pool_bin() {
	local b=$BIN/th-$1
	[[ -x $b ]] || die "$b not found: run make first (or set TH_BIN_DIR)"
	printf '%s\n' "$b"
}

# pool_default_workers POOL: 4, but one a core (at least 2) for the community
# and realtime pools.  Their requests are mostly cache hits that never wait
# (the worker closes a finished connection at once), so more workers than
# cores only preempt each other in the middle of requests: on 2 cores a cached
# feed at 64 connections measured p99 38-53 ms with 4 workers against 12-18 ms
# with 2, and more requests a second; even its PostgreSQL-bound pages were no
# faster with 4 (docs/operations.md).  The same for the realtime pool once
# unread counts and notifications were cached: GET /api/notifications p99
# 24-25 ms with 4, 12.6-13 ms with 2, 9,033-9,056 against 10,169-10,528 req/s
# (2026-12-07, one stack, the same rounds).  The other pools wait on work that
# takes long (argon2, image processing, uploads) and keep 4.
pool_default_workers() {
	local n
	if [[ $1 == community || $1 == realtime ]]; then
		n=$(nproc 2>/dev/null || echo 2)
		((n >= 2)) || n=2
		printf '%s\n' "$n"
	else
		printf '4\n'
	fi
}

# pool_workers POOL [N]: worker count: explicit N, else TH_WORKERS_<POOL>,
# else the remembered count, else pool_default_workers.
pool_workers() {
	local pool=$1 n=${2:-} var
	var=TH_WORKERS_${pool^^}
	[[ -n $n ]] || n=${!var:-}
	[[ -n $n ]] || n=$(pid_of "$RUN/$pool.workers")
	[[ -n $n ]] || n=$(pool_default_workers "$pool")
	if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 256)); then
		die "$pool: worker count must be 1..256 (got '$n')"
	fi
	printf '%s\n' "$n"
}

pool_pid() { alive_file "$RUN/$1.pid" multiwatch; }

# pool_children MWPID: the live worker pids of one multiwatch.
pool_children() {
	ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true
}

pool_count_is() { [[ $(pool_children "$1" | wc -l) -eq $2 ]]; }

sock_ready() { [[ -S $1 ]] && kill -0 "$2" 2>/dev/null; }

# tcp_listening PORT: a socket listens on PORT (any address).
tcp_listening() { [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]; }

tcp_ready() { tcp_listening "$1" && kill -0 "$2" 2>/dev/null; }

# pool_spawn POOL N LISTEN [FROM]: start one spawn-fcgi+multiwatch group
# listening on LISTEN (pool_listen), exactly as the contract says; sets
# SPAWNED_PID (= multiwatch pid: spawn-fcgi -n and setsid exec in place).
# Waits until the socket is there and the workers are forked.
# FROM (TCP only): the multiwatch pid of a running group whose listening
# socket the new group takes over (th-fdtake) instead of binding the port,
# which that group holds: both groups serve one accept queue, and the
# socket is never closed (scripts/fcgi-pool restart|scale).
pool_spawn() {
	local pool=$1 n=$2 listen=$3 from=${4:-} bin sock='' host port
	local -a spawn=()
	# 0660: only the owner and nginx's workers (their group, as root) connect
	local -a group_opt=()
	((IS_ROOT)) && group_opt=(-G "$NGINX_GROUP")
	bin=$(pool_bin "$pool")
	case $listen in
	unix:*)
		sock=${listen#unix:}
		rm -f "$sock" # a stale socket file would look "ready" at once
		spawn=(spawn-fcgi -n -s "$sock" -M 0660 "${group_opt[@]}" --)
		;;
	tcp:*)
		host=${listen#tcp:}
		port=${host##*:}
		host=${host%:*}
		if [[ -n $from ]]; then
			[[ -x $BIN/th-fdtake ]] || die "$BIN/th-fdtake not found: run make first"
			spawn=("$BIN/th-fdtake" "$from" 0 --)
		else
			! tcp_listening "$port" ||
				die "$pool: port $port is already in use by another process (other stack? choose another TH_PORT_BASE)"
			spawn=(spawn-fcgi -n -a "$host" -p "$port" --)
		fi
		;;
	*) die "$pool: cannot listen on '$listen'" ;;
	esac
	(
		worker_env "$pool"
		# libfcgi closes a TCP connection from any other address at accept
		if [[ $listen == tcp:* ]]; then
			export FCGI_WEB_SERVER_ADDRS=$FCGI_ALLOWED
		else
			unset FCGI_WEB_SERVER_ADDRS
		fi
		cd "$VAR" || exit 1
		exec setsid "${spawn[@]}" /usr/bin/multiwatch -f "$n" -r 1000 -t 1000 -s TERM -- "$bin"
	) >>"$LOG/$pool.log" 2>&1 </dev/null &
	SPAWNED_PID=$!
	if [[ -n $sock ]]; then
		if ! wait_for 10 sock_ready "$sock" "$SPAWNED_PID"; then
			kill -TERM "$SPAWNED_PID" 2>/dev/null || true
			fail_start "$pool" "$LOG/$pool.log" "socket $sock did not appear within 10s"
		fi
	elif ! wait_for 10 tcp_ready "$port" "$SPAWNED_PID"; then
		kill -TERM "$SPAWNED_PID" 2>/dev/null || true
		fail_start "$pool" "$LOG/$pool.log" "nothing listens on $host:$port within 10s"
	fi
	# Wait until the workers are forked too, so callers see a full pool.
	if ! wait_for 10 pool_count_is "$SPAWNED_PID" "$n"; then
		# a group that died (th-fdtake refused, workers exiting at start)
		gone "$SPAWNED_PID" && fail_start "$pool" "$LOG/$pool.log" "the pool exited at start"
		warn "$pool: fewer than $n workers running after 10s (see $LOG/$pool.log)"
	fi
}

# pool_start POOL [N]: start the pool unless it already runs.
pool_start() {
	local pool=$1 n pid listen
	listen=$(pool_listen "$pool")
	if pid=$(pool_pid "$pool"); then
		say "$pool: already running (pid $pid)"
		[[ $(pool_listening "$pool") == "$listen" ]] ||
			warn "$pool runs on $(pool_listening "$pool" | cut -d: -f2-), not on ${listen#*:} as now configured (TH_FCGI_BIND): stop it and run up again"
		return 0
	fi
	n=$(pool_workers "$pool" "${2:-}")
	pool_spawn "$pool" "$n" "$listen"
	printf '%s\n' "$SPAWNED_PID" >"$RUN/$pool.pid"
	printf '%s\n' "$n" >"$RUN/$pool.workers"
	printf '%s\n' "$listen" >"$RUN/$pool.listen"
	say "$pool: started (pid $SPAWNED_PID, $n workers, ${listen#*:})"
}

# pool_stop POOL: SIGTERM to multiwatch (it forwards TERM to the workers,
# which finish what is queued, bounded to 2 s, and exit).
pool_stop() {
	local pool=$1 pid
	if pid=$(pool_pid "$pool"); then
		stop_pid "$pid" "$pool" 15 1
		say "$pool: stopped"
	fi
	rm -f "$RUN/$pool.pid" "$RUN/$pool.sock" "$RUN/$pool.listen"
}
