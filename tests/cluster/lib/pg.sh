# shellcheck shell=bash
# PostgreSQL primary + standby with automatic failover: pg_auto_failover 2.0 (Debian's
# postgresql-15-auto-failover, pg_autoctl), monitor in th-mon, nodes in th-pg1 and th-pg2
# (docs/scaling.md, "Running on several hosts (namespaces)"). Sourced by tests/cluster/run
# and tests/cluster/lib/ctl after netns.sh; needs CL_VAR (the run's state), ROOT.
#
# Every pg_autoctl and postgres runs as the OS user postgres (initdb refuses root), with a
# HOME/XDG tree and a unix socket directory of its own under $CL_VAR/<host>/pgaf, so three
# nodes on one machine share nothing on disk but the binaries.

PGAF_PORT=5432
PGAF_BIN=/usr/lib/postgresql/15/bin
# a node that stops answering (partitioned, not dead) must not hold a worker: connect
# bounded a host, unacknowledged data dropped after 5 s, idle connections probed
PGAF_TIMEOUTS='connect_timeout=2 tcp_user_timeout=5000 keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=2'

pgaf_dir() { printf '%s\n' "$CL_VAR/$1/pgaf"; }
pgaf_data() { printf '%s\n' "$CL_VAR/$1/pgaf/data"; }

# pgaf HOST CMD...: CMD as postgres in HOST's namespace with that node's environment only
pgaf() {
	local h=$1 d
	shift
	d=$(pgaf_dir "$h")
	run_in "$h" runuser -u postgres -- env -i HOME="$d" XDG_CONFIG_HOME="$d/config" \
		XDG_DATA_HOME="$d/share" XDG_RUNTIME_DIR="$d/run" PG_REGRESS_SOCK_DIR="$d/sock" \
		PGHOST="$d/sock" PGPORT=$PGAF_PORT PGPASSFILE="$d/pgpass" PGDATA="$(pgaf_data "$h")" \
		PATH="$PGAF_BIN:/usr/bin:/bin" LANG=C.UTF-8 "$@"
}

# pgaf_sql HOST DB: the SQL on stdin as the node's superuser over its own unix socket
pgaf_sql() { pgaf "$1" psql -X -q -v ON_ERROR_STOP=1 -tA -d "$2" -f -; }

pgaf_prepare() {
	local h=$1 d
	d=$(pgaf_dir "$h")
	mkdir -p "$d/sock" "$d/run" "$d/config" "$d/share"
	# only postgres reaches the socket directory: local connections are trust (initdb by pg_autoctl)
	chmod 0700 "$d" "$d/sock" "$d/run"
	(
		umask 077
		printf '*:*:*:autoctl_node:%s\n*:*:*:pgautofailover_replicator:%s\n' \
			"$(cat "$CL_KEYS/pgaf-monitor.secret")" "$(cat "$CL_KEYS/pgaf-replication.secret")" >"$d/pgpass"
	)
	chown -R postgres: "$d"
}

# pgaf_start HOST: `pg_autoctl run` in the background (it supervises postgres itself)
pgaf_start() {
	local h=$1
	touch "$CL_VAR/$h/pgaf.log"
	chown postgres: "$CL_VAR/$h/pgaf.log"
	pgaf "$h" setsid pg_autoctl run >>"$CL_VAR/$h/pgaf.log" 2>&1 </dev/null &
}

pgaf_ready() { pgaf "$1" pg_isready -q -t 1 >/dev/null 2>&1; }

pgaf_monitor_up() {
	local h=mon
	pgaf_prepare "$h"
	pgaf "$h" pg_autoctl create monitor --pgport $PGAF_PORT --hostname "$(addr "$h")" \
		--auth scram-sha-256 --ssl-self-signed >>"$CL_VAR/$h/pgaf.log" 2>&1 || return 1
	install -o postgres -m 0600 "$ROOT/conf/pg_auto_failover/monitor.conf" "$(pgaf_data "$h")/townhall-monitor.conf"
	printf "\ninclude_if_exists = 'townhall-monitor.conf'\n" >>"$(pgaf_data "$h")/postgresql.conf"
	pgaf_start "$h"
	wait_for 30 pgaf_ready "$h" || return 1
	printf "SET log_statement = 'none';\nALTER USER autoctl_node PASSWORD '%s';\n" \
		"$(cat "$CL_KEYS/pgaf-monitor.secret")" | pgaf_sql "$h" pg_auto_failover >/dev/null
}

pgaf_monitor_uri() {
	printf 'postgres://autoctl_node@%s:%s/pg_auto_failover?sslmode=require\n' "$(addr mon)" $PGAF_PORT
}

# pgaf_node_up HOST: create the node (the first becomes the primary, the next a standby
# cloned from it by pg_basebackup), add Townhall's settings and pg_hba line, run it
pgaf_node_up() {
	local h=$1 data line
	pgaf_prepare "$h"
	pgaf "$h" pg_autoctl create postgres --pgport $PGAF_PORT --hostname "$(addr "$h")" --name "$h" \
		--dbname townhall --auth scram-sha-256 --ssl-self-signed --monitor "$(pgaf_monitor_uri)" \
		>>"$CL_VAR/$h/pgaf.log" 2>&1 || return 1
	data=$(pgaf_data "$h")
	sed -e "s|@PG_SHARED_BUFFERS@|128MB|" -e "s|@PG_MAX_CONNECTIONS@|200|" \
		"$ROOT/conf/pg_auto_failover/node.conf.in" >"$data/townhall.conf"
	printf "\ninclude_if_exists = 'townhall.conf'\n" >>"$data/postgresql.conf"
	sed -e "s|@APP_NET@|$NS_NET.0/24|" "$ROOT/conf/pg_auto_failover/pg_hba.conf.in" >>"$data/pg_hba.conf"
	chown postgres: "$data/townhall.conf" "$data/pg_hba.conf"
	# shellcheck source=conf/pg_auto_failover/keeper.sh
	. "$ROOT/conf/pg_auto_failover/keeper.sh"
	while read -r line; do
		[[ -n $line ]] || continue
		# shellcheck disable=SC2086 # key and value
		pgaf "$h" pg_autoctl config set $line >/dev/null || return 1
	done <<<"$KEEPER_SETTINGS"
	pgaf_start "$h"
	wait_for 30 pgaf_ready "$h"
}

# pgaf_primary: the host whose node the monitor names primary now (empty when none)
pgaf_primary() {
	local n
	n=$(echo "SELECT nodename FROM pgautofailover.node WHERE reportedstate IN ('primary','wait_primary','single') AND goalstate IN ('primary','wait_primary','single') LIMIT 1" |
		pgaf_sql mon pg_auto_failover 2>/dev/null) || return 0
	printf '%s\n' "$n"
}

# pgaf_states: "pg1=primary/primary pg2=secondary/secondary" (reported/assigned)
pgaf_states() {
	echo "SELECT string_agg(nodename || '=' || reportedstate || '/' || goalstate, ' ' ORDER BY nodeid) FROM pgautofailover.node" |
		pgaf_sql mon pg_auto_failover 2>/dev/null
}

pgaf_pair_healthy() {
	local s
	s=$(pgaf_states)
	[[ $s == *=primary/primary* && $s == *=secondary/secondary* ]]
}

# pgaf_bootstrap HOST: on the primary: Townhall's role with the stack's password, the
# database's owner, citext, the replication role's password (before a standby clones)
pgaf_bootstrap() {
	local h=$1
	printf "SET log_statement = 'none';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'townhall') THEN CREATE ROLE townhall LOGIN; END IF;
END \$\$;
ALTER ROLE townhall WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD '%s';
ALTER DATABASE townhall OWNER TO townhall;
ALTER USER pgautofailover_replicator PASSWORD '%s';
" "$(cat "$CL_KEYS/pg-townhall.secret")" "$(cat "$CL_KEYS/pgaf-replication.secret")" | pgaf_sql "$h" postgres >/dev/null || return 1
	printf "SET client_min_messages = warning;\nCREATE EXTENSION IF NOT EXISTS citext;\n" | pgaf_sql "$h" townhall >/dev/null
}

# the conninfo every Townhall process uses: both nodes, the writable one wins
pgaf_conninfo() {
	printf 'host=%s,%s port=%s,%s dbname=townhall user=townhall target_session_attrs=read-write %s sslmode=require passfile=%s\n' \
		"$(addr pg1)" "$(addr pg2)" $PGAF_PORT $PGAF_PORT "$PGAF_TIMEOUTS" "$1"
}

# the reads that may be a little stale: the standby when there is one
pgaf_read_conninfo() {
	printf 'host=%s,%s port=%s,%s dbname=townhall user=townhall target_session_attrs=prefer-standby %s sslmode=require passfile=%s\n' \
		"$(addr pg1)" "$(addr pg2)" $PGAF_PORT $PGAF_PORT "$PGAF_TIMEOUTS" "$1"
}

# pgaf_up: monitor, pg1 (primary), Townhall's role and schema, pg2 (standby)
pgaf_up() {
	pgaf_monitor_up || return 1
	pgaf_node_up pg1 || return 1
	wait_for 30 pgaf_is_primary pg1 || return 1
	pgaf_bootstrap pg1 || return 1
	run_in client env TH_VAR_DIR="$CL_VAR/client" TH_DB_CONNINFO="$(pgaf_conninfo "$CL_VAR/client/keys/pgpass")" \
		"$ROOT/scripts/migrate" >>"$CL_VAR/client/migrate.log" 2>&1 || return 1
	pgaf_node_up pg2 || return 1
	wait_for 60 pgaf_pair_healthy
}

pgaf_is_primary() { [[ $(pgaf_primary) == "$1" ]]; }
