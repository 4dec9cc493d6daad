# shellcheck shell=bash
# The cluster topology of issue 19 in Linux network namespaces (docs/scaling.md,
# "Running on several hosts (namespaces)"). Sourced by tests/cluster/run, never
# executed. Root only (ip netns).
#
# One switch: namespace th-sw holds the bridge br0; every host is a namespace
# th-<host> joined to it by a veth pair (v-<host> in th-sw, eth0 in the host),
# 10.77.0.0/24, lo up. Deleting th-sw deletes the bridge and every v-* end.
#
# Faults, both on the switch side so the host itself notices nothing else:
#   cut HOST / uncut HOST            the port goes down: the host sees no carrier
#   blackhole HOST / unblackhole HOST the port stays up but forwards nothing (bridge
#                                    port state "disabled"): a silent partition, packets
#                                    vanish, no RST, no ICMP. (This kernel has no sch_netem
#                                    and no nftables/iptables here: the bridge port state
#                                    is what drops silently without them.)

NS_NET=10.77.0
NS_SW=th-sw
# app3 and dns: the step "a resolver that does not answer" (an app host whose
# /etc/resolv.conf names dns, a DNS server that drops every query); idle otherwise
NS_HOSTS=(lb app1 app2 app3 pg1 pg2 mon r1 r2 r3 huba hubb s3 dns client)
declare -gA NS_ADDR=(
	[lb]=$NS_NET.2 [app1]=$NS_NET.11 [app2]=$NS_NET.12 [app3]=$NS_NET.13 [mon]=$NS_NET.20
	[pg1]=$NS_NET.21 [pg2]=$NS_NET.22 [r1]=$NS_NET.31 [r2]=$NS_NET.32 [r3]=$NS_NET.33
	[huba]=$NS_NET.41 [hubb]=$NS_NET.42 [s3]=$NS_NET.51 [dns]=$NS_NET.53 [client]=$NS_NET.100
)

ns_log() { printf '[ns] %s\n' "$*" >&2; }

ns_name() { printf 'th-%s\n' "$1"; }

# addr HOST: the host's address on the switch
addr() {
	[[ -n ${NS_ADDR[$1]:-} ]] || {
		ns_log "unknown host '$1'"
		return 1
	}
	printf '%s\n' "${NS_ADDR[$1]}"
}

# run_in HOST CMD...: run CMD inside HOST's namespace (its own lo and eth0)
run_in() {
	local h=$1
	shift
	ip netns exec "$(ns_name "$h")" "$@"
}

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# ns_up: the switch and every host. Refuses to run over a topology that exists
# (another run, or one that was not torn down: ns_down removes it).
ns_up() {
	local h ns
	for ns in "$NS_SW" "${NS_HOSTS[@]/#/th-}"; do
		if ns_exists "$ns"; then
			ns_log "namespace $ns exists already (another run? tests/cluster/run --down removes it)"
			return 1
		fi
	done
	ip netns add "$NS_SW" || return 1
	ip -n "$NS_SW" link set lo up || return 1
	ip -n "$NS_SW" link add br0 type bridge || return 1
	ip -n "$NS_SW" link set br0 up || return 1
	for h in "${NS_HOSTS[@]}"; do
		ns=$(ns_name "$h")
		ip netns add "$ns" || return 1
		ip -n "$ns" link set lo up || return 1
		ip -n "$NS_SW" link add "v-$h" type veth peer name eth0 netns "$ns" || return 1
		ip -n "$NS_SW" link set "v-$h" master br0 up || return 1
		ip -n "$ns" addr add "$(addr "$h")/24" dev eth0 || return 1
		ip -n "$ns" link set eth0 up || return 1
	done
	ns_log "switch $NS_SW, hosts: ${NS_HOSTS[*]} ($NS_NET.0/24)"
}

# ns_kill_all NS: every process inside NS: TERM, then KILL what is left after 3 s (a
# test host's state is thrown away: a pool's multiwatch may respawn a worker that got TERM
# before it did, and nobody waits for that)
ns_kill_all() {
	local ns=$1 pids i
	pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
	[[ -n ${pids// /} ]] || return 0
	# shellcheck disable=SC2086 # a list of pids
	kill -TERM $pids 2>/dev/null
	for ((i = 0; i < 30; i++)); do
		pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
		[[ -n ${pids// /} ]] || return 0
		sleep 0.1
	done
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null
	for ((i = 0; i < 30; i++)); do
		[[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && return 0
		sleep 0.1
	done
	ns_log "$ns: processes left after SIGKILL: $(ip netns pids "$ns" | tr '\n' ' ')"
}

# ns_down: stop every process of every host, delete the namespaces (and with
# th-sw the bridge and the veth ends). Safe to call twice, and on a half-built
# topology.
ns_down() {
	local h ns
	for h in "${NS_HOSTS[@]}"; do
		ns=$(ns_name "$h")
		ns_exists "$ns" || continue
		ns_kill_all "$ns"
		ip netns del "$ns" 2>/dev/null || ns_log "could not delete $ns"
	done
	if ns_exists "$NS_SW"; then
		ns_kill_all "$NS_SW"
		ip netns del "$NS_SW" 2>/dev/null || ns_log "could not delete $NS_SW"
	fi
	# the resolver configuration `ip netns exec` mounts over /etc in th-app3 (hosts.sh)
	rm -rf /etc/netns/th-app3
}

# cut HOST / uncut HOST: HOST's link down / up (a pulled cable)
cut() { ip -n "$NS_SW" link set "v-$1" down; }
uncut() { ip -n "$NS_SW" link set "v-$1" up; }

# blackhole HOST / unblackhole HOST: the switch silently drops everything to
# and from HOST while every link stays up (a partition that sends nothing back)
blackhole() { ip netns exec "$NS_SW" bridge link set dev "v-$1" state 0; }
unblackhole() { ip netns exec "$NS_SW" bridge link set dev "v-$1" state 3; }

# tcp_open HOST ADDR PORT: something on ADDR:PORT accepts a connection from HOST (1 s bound)
tcp_open() {
	run_in "$1" timeout 1 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null
}
