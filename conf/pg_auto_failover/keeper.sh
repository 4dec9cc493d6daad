# shellcheck shell=sh
# The pg_autoctl keeper settings of every Townhall PostgreSQL node (pg_auto_failover 2.0),
# applied with `pg_autoctl config set` before `pg_autoctl run` (tests/cluster/lib/pg.sh
# sources this file and runs each line; an admin runs them once per node):
#   pg_autoctl config set --pgdata "$PGDATA" <key> <value>
# network_partition_timeout: a primary that reaches neither the monitor nor a standby for
# this long demotes itself, so it cannot take writes the promoted standby never sees. The
# monitor's primary_demote_timeout (monitor.conf) must be longer.
# shellcheck disable=SC2034 # read by the file that sources this one
KEEPER_SETTINGS='
timeout.network_partition_timeout 5
timeout.prepare_promotion_catchup 10
timeout.prepare_promotion_walreceiver 3
'
