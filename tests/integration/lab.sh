#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lab.sh - pcpd's integration lab: a client, a router running Debian's miniupnpd
# (nftables backend) and a "wan" host, each in its own network namespace.
#
#   <id>-c  (client)  c0    192.168.77.2/24  fd77:77:77::2/64  2001:db8:77:1::2/64
#                      |    default via 192.168.77.1 / fd77:77:77::1
#   <id>-r  (router)  lan0  192.168.77.1/24  fd77:77:77::1/64  2001:db8:77:1::1/64
#                     wan0  $WAN.1/24        2001:db8:77:ff::1/64   (miniupnpd ext_ifname)
#                      |
#   <id>-w  (wan)     w0    $WAN.2/24        2001:db8:77:ff::2/64   ("the Internet")
#
# Every run gets its own namespaces, named pcpit-<pid>-<random>-{c,r,w}, and its own
# state directory /run/pcpit/<id>. Nothing is created in the host's namespace: the veth
# pairs are created directly inside the lab namespaces, the nft ruleset is loaded in the
# router namespace only, and every process the lab (or a test) starts runs inside a lab
# namespace, so deleting the namespaces ends all of them.
#
# Usage:
#   lab.sh run [LABOPTS] -- CMD [ARGS...]   build a lab, run CMD with PCPIT_* exported,
#                                           always tear down, exit with CMD's status
#   lab.sh shell [LABOPTS]                  the same with an interactive shell
#   lab.sh up [LABOPTS]                     build a lab that stays; prints PCPIT_LAB=DIR
#   lab.sh down [DIR]                       tear a lab down (default $PCPIT_LAB)
#   lab.sh reap                             tear down leftover labs whose owner is dead
# Verbs on a running lab (the lab is $PCPIT_LAB, or -L DIR before the verb):
#   env                       print the lab's variables (NS_C NS_R NS_W WAN_ADDR ...)
#   exec client|router|wan CMD...   run CMD in that namespace
#   upnpd-start | upnpd-stop | upnpd-kill   start / SIGTERM / SIGKILL miniupnpd
#   upnpd-restart [--drop-leases] [--keep-rules] [KNOBS]
#                             stop, optionally delete the lease file, flush the
#                             miniupnpd chains (like a reboot; --keep-rules keeps them),
#                             start again
#   sigusr1                   SIGUSR1 to miniupnpd (ANNOUNCE + NAT-PMP notification)
#   set-wan ADDR              change the router's WAN address (same /24 as the wan host,
#                             or a new /24: the wan host gets an address .2 in it)
#   loss PCT|off              random loss both ways on the client-router link, applied
#                             in the router ns: tc netem on lan0 egress (router->client)
#                             and on an ifb fed by lan0's ingress (client->router), so a
#                             capture on lan0 still sees every client transmission. On a
#                             kernel without sch_netem: nftables "numgen random" drops of
#                             UDP at the same two points.
#   dnat                      the router's DNAT rules: "PROTO EXTPORT ADDR PORT" lines
#   pinholes                  the router's IPv6 pinholes: "PROTO PORT ADDR" lines
#   nft                       the router's whole ruleset
#   reach PROTO ADDR PORT LISTEN_PORT [TOKEN]
#                             listener on LISTEN_PORT in the client ns, connect/send from
#                             the wan ns to ADDR:PORT; exit 0 if the listener got TOKEN
#   refserver-start ARGS...   start pcp-refserver ($REFSERVER_BIN) in the router ns
#   refserver-stop
#   log                       miniupnpd's log
#   status
#   selfcheck                 PCP MAP with pcp-probe.py + DNAT rule + wan->client traffic
#
# LABOPTS / KNOBS (also env PCPIT_*):
#   --wan-prefix A.B.C     WAN /24 (default 198.20.77). 203.0.113 is a reserved range:
#                          miniupnpd then refuses forwarding (NO_RESOURCES).
#   --no-upnpd             do not start miniupnpd
#   --system-uptime yes|no miniupnpd system_uptime (default no)
#   --min-lifetime N / --max-lifetime N   (default 120 / 86400)
#   --lease-file yes|no    (default yes)
#   --upnp yes|no          miniupnpd speaks UPnP-IGD only (enable_upnp=yes, NAT-PMP/PCP
#                          off; default no: PCP/NAT-PMP only), for tests/upnp
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
PY=/usr/bin/python3
MINIUPNPD=${MINIUPNPD:-/usr/sbin/miniupnpd}
BASE=${PCPIT_BASE:-/run/pcpit}
LAN=192.168.77
ULA=fd77:77:77
GUA=2001:db8:77:1
WAN6=2001:db8:77:ff

log() { echo "lab: $*" >&2; }
die() { echo "lab: error: $*" >&2; exit 1; }
# a missing prerequisite: exit 77 (meson's "skipped"), but a failure in CI
missing() {
    if [ "${CI:-}" = true ]; then echo "lab: FAIL: prerequisite missing in CI: $*" >&2; exit 1; fi
    echo "lab: SKIP: $*" >&2; exit 77
}
ns() { local n=$1; shift; ip netns exec "$n" "$@"; }
have_ns() { [ -e "/run/netns/$1" ]; }

# start time of a pid (field 22 of /proc/PID/stat), to tell a pid from its reuse
pid_start() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }
owner_alive() { # owner_alive PID START
    [ "$1" = manual ] && return 0
    [ -d "/proc/$1" ] && [ "$(pid_start "$1")" = "$2" ] || return 1
    # a killed owner whose parent has not reaped it yet is a zombie: dead
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# ---------------------------------------------------------------- lab state
load() {
    [ -n "${LAB:-}" ] || LAB=${PCPIT_LAB:-}
    [ -n "$LAB" ] || die "no lab: set PCPIT_LAB or pass -L DIR"
    [ -f "$LAB/env" ] || die "$LAB is not a lab directory"
    # shellcheck disable=SC1091
    . "$LAB/env"
    [ -f "$LAB/knobs" ] && . "$LAB/knobs"
    return 0
}

save_knobs() {
    cat >"$LAB/knobs" <<EOF
SYSUPTIME=$SYSUPTIME
MIN_LIFETIME=$MIN_LIFETIME
MAX_LIFETIME=$MAX_LIFETIME
LEASE_FILE=$LEASE_FILE
UPNP=$UPNP
EOF
}

KNOB_ARGS=0
parse_knob() { # sets the knob for "$1" "$2"; returns 1 if $1 is not a knob
    KNOB_ARGS=2
    case "$1" in
        --wan-prefix) WAN_PREFIX=$2 ;;
        --system-uptime) SYSUPTIME=$2 ;;
        --min-lifetime) MIN_LIFETIME=$2 ;;
        --max-lifetime) MAX_LIFETIME=$2 ;;
        --lease-file) LEASE_FILE=$2 ;;
        --upnp) UPNP=$2 ;;
        --no-upnpd) START_UPNPD=no; KNOB_ARGS=1 ;;
        *) return 1 ;;
    esac
}

default_knobs() {
    WAN_PREFIX=${PCPIT_WAN_PREFIX:-198.20.77}
    SYSUPTIME=${PCPIT_SYSUPTIME:-no}
    MIN_LIFETIME=${PCPIT_MIN_LIFETIME:-120}
    MAX_LIFETIME=${PCPIT_MAX_LIFETIME:-86400}
    LEASE_FILE=${PCPIT_LEASE_FILE:-yes}
    UPNP=${PCPIT_UPNP:-no}
    START_UPNPD=${PCPIT_START_UPNPD:-yes}
}

# ---------------------------------------------------------------- teardown
# kill every process inside the lab's namespaces (all of them were started for the lab),
# delete the namespaces, check that none is left.
teardown_dir() {
    local dir=$1 n pids left=() i NS_C="" NS_R="" NS_W=""
    # read only the names: sourcing another lab's env would overwrite our own variables
    if [ -f "$dir/env" ]; then
        NS_C=$(sed -n 's/^NS_C=//p' "$dir/env"); NS_R=$(sed -n 's/^NS_R=//p' "$dir/env")
        NS_W=$(sed -n 's/^NS_W=//p' "$dir/env")
    fi
    for i in 1 2 3; do
        pids=""
        for n in $NS_C $NS_R $NS_W; do
            have_ns "$n" && pids="$pids $(ip netns pids "$n" 2>/dev/null | tr '\n' ' ' || true)"
        done
        pids=$(echo $pids)
        [ -n "$pids" ] || break
        if [ "$i" = 1 ]; then kill -TERM $pids 2>/dev/null || true; sleep 0.5
        else kill -KILL $pids 2>/dev/null || true; sleep 0.2; fi
    done
    for n in $NS_C $NS_R $NS_W; do
        have_ns "$n" && { ip netns del "$n" 2>/dev/null || true; }
    done
    for n in $NS_C $NS_R $NS_W; do
        if have_ns "$n" || ip netns list | awk '{print $1}' | grep -qx "$n"; then left+=("$n"); fi
    done
    if [ ${#left[@]} -gt 0 ]; then
        echo "lab: TEARDOWN FAILED: namespaces still present: ${left[*]}" >&2
        return 1
    fi
    if [ -n "${PCPIT_KEEP:-}" ]; then
        log "logs kept in $dir (PCPIT_KEEP)"
    else
        rm -rf "$dir"
    fi
    return 0
}

# leftovers: labs whose owner died, namespaces with our prefix that no lab owns
cmd_reap() {
    local d owner start n id
    mkdir -p "$BASE"
    for d in "$BASE"/*/; do
        [ -f "$d/env" ] || continue
        # a concurrent run may finish and remove its directory under our feet
        owner=$(sed -n 's/^OWNER=//p' "$d/env" 2>/dev/null || true)
        start=$(sed -n 's/^OWNER_START=//p' "$d/env" 2>/dev/null || true)
        [ -n "$owner" ] || continue
        if ! owner_alive "$owner" "$start"; then
            log "reaping leftover lab $d (owner $owner gone)"
            teardown_dir "${d%/}" || true
        fi
    done
    for n in $(ip netns list | awk '{print $1}' | grep -E '^pcpit-[0-9]+-[0-9a-f]+-[crw]$' || true); do
        id=${n%-?}
        [ -d "$BASE/$id" ] && continue
        # a lab being built writes its directory before its namespaces. A lab of another
        # base (PCPIT_BASE) is not ours to judge by its directory: the name carries its
        # owner's pid, and while that process lives the namespace is left alone
        local opid=${id#pcpit-}; opid=${opid%%-*}
        if [ -d "/proc/$opid" ] && [ "$(awk '{print $3}' "/proc/$opid/stat" 2>/dev/null)" != Z ]; then
            continue
        fi
        log "deleting orphan namespace $n"
        # the namespace may vanish under our feet (its own run or another reap deletes it):
        # under errexit and pipefail a failed lookup would end this build
        local p; p=$(ip netns pids "$n" 2>/dev/null | tr '\n' ' ' || true)
        [ -n "${p// /}" ] && kill -KILL $p 2>/dev/null || true
        ip netns del "$n" 2>/dev/null || true
    done
}

# --------------------------------------------------------------- building
write_upnpd_conf() {
    local lease="#lease_file disabled"
    [ "$LEASE_FILE" = yes ] && lease="lease_file=$LAB/miniupnpd.leases"
    local natpmp=yes upnp=no
    [ "${UPNP:-no}" = yes ] && { natpmp=no; upnp=yes; }
    cat >"$LAB/miniupnpd.conf" <<EOF
# generated by lab.sh for Debian's miniupnpd 2.3.1 (nftables)
ext_ifname=wan0
listening_ip=lan0
ipv6_disable=no
# 2.3.1: enables NAT-PMP and PCP together
enable_natpmp=$natpmp
enable_upnp=$upnp
secure_mode=yes
system_uptime=$SYSUPTIME
min_lifetime=$MIN_LIFETIME
max_lifetime=$MAX_LIFETIME
$lease
uuid=5c3f7a10-0d2e-4b7c-8f11-$(printf '%012x' $$)
upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
EOF
}

write_nft() {
    cat >"$LAB/router.nft" <<EOF
table inet filter {
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept
        jump miniupnpd
    }
    chain miniupnpd {
    }
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
        oifname "wan0" ip saddr $LAN.0/24 masquerade
    }
    chain prerouting_miniupnpd {
    }
    chain postrouting_miniupnpd {
    }
}
EOF
}

wait_link_up() { # NS IFACE
    local i
    for i in $(seq 1 50); do
        ns "$1" ip -br link show "$2" | grep -q ' UP ' && return 0
        sleep 0.1
    done
    die "$2 in $1 did not come up"
}

upnpd_pid() { # prints miniupnpd's pid if it runs
    local p
    [ -s "$LAB/miniupnpd.pid" ] || return 1
    p=$(cat "$LAB/miniupnpd.pid")
    [ -d "/proc/$p" ] && [ "$(pid_start "$p")" = "$(cat "$LAB/miniupnpd.start" 2>/dev/null)" ] || return 1
    echo "$p"
}

cmd_upnpd_start() {
    [ -x "$MINIUPNPD" ] || die "$MINIUPNPD missing (apt-get install miniupnpd-nftables)"
    if upnpd_pid >/dev/null; then log "miniupnpd already running"; return 0; fi
    write_upnpd_conf
    local n=0 lf i ready='Listening for NAT-PMP/PCP traffic'
    [ "${UPNP:-no}" = yes ] && ready='HTTP listening on port'
    while [ -e "$LAB/miniupnpd.$n.log" ]; do n=$((n + 1)); done
    lf="$LAB/miniupnpd.$n.log"
    # -d: foreground with debug log; ip-netns execs it, so $! is miniupnpd itself
    ip netns exec "$NS_R" "$MINIUPNPD" -d -f "$LAB/miniupnpd.conf" -P "$LAB/miniupnpd.daemon.pid" \
        </dev/null >"$lf" 2>&1 &
    local pid=$!
    echo "$pid" >"$LAB/miniupnpd.pid"
    pid_start "$pid" >"$LAB/miniupnpd.start"
    ln -sfn "miniupnpd.$n.log" "$LAB/miniupnpd.log"
    for i in $(seq 1 100); do
        grep -q "$ready" "$lf" 2>/dev/null && break
        [ -d "/proc/$pid" ] || break
        sleep 0.05
    done
    if ! upnpd_pid >/dev/null; then
        cat "$lf" >&2; die "miniupnpd did not start"
    fi
    grep -q "$ready" "$lf" || log "warning: miniupnpd not listening yet"
    log "miniupnpd pid $pid (log $lf)"
}

cmd_upnpd_stop() { # [SIGNAL]
    local sig=${1:-TERM} pid i
    pid=$(upnpd_pid) || { log "miniupnpd not running"; return 0; }
    kill "-$sig" "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    # ip-netns exec'ed it: we are its parent, but it may have been started by another
    # lab.sh invocation; either way it is gone now
    rm -f "$LAB/miniupnpd.pid" "$LAB/miniupnpd.start"
    log "miniupnpd stopped ($sig)"
}

flush_upnpd_chains() {
    ns "$NS_R" nft flush chain inet filter miniupnpd
    ns "$NS_R" nft flush chain inet filter prerouting_miniupnpd
    ns "$NS_R" nft flush chain inet filter postrouting_miniupnpd
}

cmd_upnpd_restart() {
    local drop=no keep=no
    while [ $# -gt 0 ]; do
        case "$1" in
            --drop-leases) drop=yes; shift ;;
            --keep-rules) keep=yes; shift ;;
            *) parse_knob "$1" "${2:-}" || die "upnpd-restart: unknown option $1"; shift "$KNOB_ARGS" ;;
        esac
    done
    save_knobs
    cmd_upnpd_stop TERM
    [ "$drop" = yes ] && rm -f "$LAB/miniupnpd.leases"
    [ "$keep" = yes ] || flush_upnpd_chains
    cmd_upnpd_start
}

build() {
    local id n
    mkdir -p "$BASE"
    cmd_reap
    id="pcpit-$OWNER_PID-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
    LAB="$BASE/$id"
    mkdir -m 0755 "$LAB"
    NS_C="$id-c"; NS_R="$id-r"; NS_W="$id-w"
    cat >"$LAB/env" <<EOF
LAB_ID=$id
OWNER=$OWNER_PID
OWNER_START=$OWNER_START
NS_C=$NS_C
NS_R=$NS_R
NS_W=$NS_W
WAN_PREFIX=$WAN_PREFIX
LAN_PREFIX=$LAN
CLIENT4=$LAN.2
ROUTER4=$LAN.1
CLIENT6=$ULA::2
CLIENT6_GUA=$GUA::2
ROUTER6=$ULA::1
WAN6_HOST=$WAN6::2
WAN_HOST=$WAN_PREFIX.2
EOF
    echo "WAN_ADDR=$WAN_PREFIX.1" >"$LAB/wan_addr"
    save_knobs
    # before anything is created: an owner killed in the middle of the build is covered too
    [ "$OWNER_PID" = manual ] || start_watchdog
    for n in $NS_C $NS_R $NS_W; do
        ip netns add "$n"
        ns "$n" ip link set lo up
        ns "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    # created directly inside the namespaces: no end ever exists in the host namespace
    ip link add c0 netns "$NS_C" type veth peer name lan0 netns "$NS_R"
    ip link add wan0 netns "$NS_R" type veth peer name w0 netns "$NS_W"

    ns "$NS_C" ip addr add $LAN.2/24 dev c0
    ns "$NS_C" ip -6 addr add $ULA::2/64 dev c0 nodad
    ns "$NS_C" ip -6 addr add $GUA::2/64 dev c0 nodad
    ns "$NS_C" ip link set c0 up
    ns "$NS_C" ip route add default via $LAN.1
    ns "$NS_C" ip -6 route add default via $ULA::1

    ns "$NS_R" ip addr add $LAN.1/24 dev lan0
    ns "$NS_R" ip -6 addr add $ULA::1/64 dev lan0 nodad
    ns "$NS_R" ip -6 addr add $GUA::1/64 dev lan0 nodad
    ns "$NS_R" ip addr add "$WAN_PREFIX.1/24" dev wan0
    ns "$NS_R" ip -6 addr add $WAN6::1/64 dev wan0 nodad
    ns "$NS_R" ip link set lan0 up
    ns "$NS_R" ip link set wan0 up
    ns "$NS_R" ip route add default via "$WAN_PREFIX.2"
    ns "$NS_R" ip -6 route add default via $WAN6::2
    ns "$NS_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    # set-wan adds the new address before deleting the old one: keep the new one
    ns "$NS_R" sysctl -qw net.ipv4.conf.wan0.promote_secondaries=1

    ns "$NS_W" ip addr add "$WAN_PREFIX.2/24" dev w0
    ns "$NS_W" ip -6 addr add $WAN6::2/64 dev w0 nodad
    ns "$NS_W" ip link set w0 up
    ns "$NS_W" ip -6 route add $GUA::/64 via $WAN6::1
    ns "$NS_W" ip -6 route add $ULA::/64 via $WAN6::1

    write_nft
    ns "$NS_R" nft -f "$LAB/router.nft"
    wait_link_up "$NS_C" c0; wait_link_up "$NS_R" lan0; wait_link_up "$NS_R" wan0; wait_link_up "$NS_W" w0
    [ "$START_UPNPD" = yes ] && cmd_upnpd_start
    return 0
}

# a watchdog in its own session: if the owner dies without tearing down (SIGKILL from a
# test runner's timeout), it does the teardown
start_watchdog() {
    setsid "$SELF" _watch "$LAB" </dev/null >>"$BASE/watchdog.log" 2>&1 &
    echo "WATCHDOG=$!" >>"$LAB/env"
}

cmd_watch() {
    LAB=$1
    . "$LAB/env"
    while owner_alive "$OWNER" "$OWNER_START"; do sleep 0.5; done
    [ -d "$LAB" ] || exit 0
    echo "lab watchdog: owner $OWNER of $LAB_ID died, tearing down" >&2
    teardown_dir "$LAB"
}

export_env() {
    export PCPIT_LAB="$LAB" PCPIT_LAB_SH="$SELF"
    # shellcheck disable=SC1091
    set -a; . "$LAB/env"; . "$LAB/wan_addr"; set +a
}

dump_logs() {
    local f
    for f in "$LAB"/miniupnpd.log "$LAB"/refserver.log; do
        [ -e "$f" ] || continue
        echo "---- last lines of $(basename "$(readlink -f "$f")")" >&2
        tail -n 10 "$f" >&2 || true
    done
}

cmd_run() {
    default_knobs
    while [ $# -gt 0 ]; do
        [ "$1" = -- ] && { shift; break; }
        parse_knob "$1" "${2:-}" || die "run: unknown option $1"
        shift "$KNOB_ARGS"
    done
    [ $# -gt 0 ] || die "run: no command"
    [ "$(id -u)" = 0 ] || missing "the lab needs root (network namespaces)"
    local tool
    for tool in ip nft tc "$PY"; do command -v "$tool" >/dev/null || missing "$tool not installed"; done
    if [ "$START_UPNPD" = yes ]; then
        [ -x "$MINIUPNPD" ] || missing "$MINIUPNPD not installed (scripts/install-deps.sh)"
    fi
    OWNER_PID=$$; OWNER_START=$(pid_start $$)
    # globals, not locals: when errexit ends the shell inside a function, bash unwinds the
    # function frames before the EXIT trap runs, so a local would be unset there (set -u)
    # and the lab would not be torn down
    LAB_RC=0 LAB_CHILD=""
    finish() {
        local r=$?
        [ "$LAB_RC" = 0 ] && LAB_RC=$r
        trap - EXIT INT TERM HUP
        [ -n "$LAB_CHILD" ] && kill -TERM "$LAB_CHILD" 2>/dev/null || true
        if [ -n "${LAB:-}" ] && [ -d "$LAB" ]; then
            [ "$LAB_RC" != 0 ] && dump_logs
            local w; w=$(sed -n 's/^WATCHDOG=//p' "$LAB/env")
            [ -n "$w" ] && kill "$w" 2>/dev/null || true
            teardown_dir "$LAB" || LAB_RC=1
        fi
        exit "$LAB_RC"
    }
    trap finish EXIT
    trap 'LAB_RC=143; exit 143' TERM
    trap 'LAB_RC=130; exit 130' INT
    trap 'LAB_RC=129; exit 129' HUP
    build
    export_env
    set +e
    "$@" &
    LAB_CHILD=$!
    wait "$LAB_CHILD"
    LAB_RC=$?
    LAB_CHILD=""
    set -e
    exit "$LAB_RC"
}

cmd_up() {
    default_knobs
    while [ $# -gt 0 ]; do parse_knob "$1" "${2:-}" || die "up: unknown option $1"; shift "$KNOB_ARGS"; done
    OWNER_PID=manual; OWNER_START=0
    build
    echo "export PCPIT_LAB=$LAB"
}

cmd_down() {
    LAB=${1:-${PCPIT_LAB:-}}
    [ -n "$LAB" ] || die "down: which lab? (DIR or PCPIT_LAB)"
    teardown_dir "$LAB"
    log "lab $LAB torn down"
}

# ------------------------------------------------------------------ faults
cmd_sigusr1() {
    local pid
    pid=$(upnpd_pid) || die "miniupnpd not running"
    kill -USR1 "$pid"
    log "SIGUSR1 -> miniupnpd $pid"
}

cmd_set_wan() {
    local new=$1 old p24 newp24
    . "$LAB/wan_addr"; old=$WAN_ADDR
    p24=${old%.*}; newp24=${new%.*}
    ns "$NS_R" ip addr add "$new/24" dev wan0
    ns "$NS_R" ip addr del "$old/24" dev wan0
    if [ "$p24" != "$newp24" ]; then
        ns "$NS_W" ip addr replace "$newp24.2/24" dev w0
        ns "$NS_R" ip route replace default via "$newp24.2"
    else
        ns "$NS_R" ip route replace default via "$p24.2"
    fi
    echo "WAN_ADDR=$new" >"$LAB/wan_addr"
    log "router WAN address $old -> $new"
}

cmd_loss() {
    local pct=$1
    # remove whatever a previous call installed
    ns "$NS_R" tc qdisc del dev lan0 root 2>/dev/null || true
    ns "$NS_R" tc qdisc del dev lan0 ingress 2>/dev/null || true
    ns "$NS_R" ip link del ifb-lan0 2>/dev/null || true
    ns "$NS_R" nft delete table netdev pcpit_loss 2>/dev/null || true
    # (not in family inet: miniupnpd's rule cache reads that family and fails on them)
    ns "$NS_R" nft delete table ip pcpit_loss 2>/dev/null || true
    ns "$NS_R" nft delete table ip6 pcpit_loss 2>/dev/null || true
    if [ "$pct" = off ] || [ "$pct" = 0 ]; then log "loss off"; return 0; fi
    pct=${pct%\%}
    if ns "$NS_R" tc qdisc add dev lan0 root netem loss "$pct%" 2>/dev/null; then
        # router->client: netem on lan0; client->router: netem on an ifb fed from lan0's
        # ingress (after the packet taps, so a capture on lan0 sees every client packet)
        ns "$NS_R" ip link add ifb-lan0 type ifb
        ns "$NS_R" ip link set ifb-lan0 up
        ns "$NS_R" tc qdisc add dev ifb-lan0 root netem loss "$pct%"
        ns "$NS_R" tc qdisc add dev lan0 handle ffff: ingress
        ns "$NS_R" tc filter add dev lan0 parent ffff: protocol all u32 match u32 0 0 \
            action mirred egress redirect dev ifb-lan0
        log "loss $pct% both ways on the client-router link (tc netem)"
        return 0
    fi
    # kernels without sch_netem: the same random loss of UDP datagrams with nftables in
    # the router namespace (netdev ingress runs after the packet taps, as above)
    local lim=$((pct * 10))
    ns "$NS_R" nft -f - <<EOF
table netdev pcpit_loss {
    chain c2r {
        type filter hook ingress device "lan0" priority -500;
        meta l4proto udp numgen random mod 1000 < $lim drop
    }
}
table ip pcpit_loss {
    chain r2c_local {
        type filter hook output priority -500; policy accept;
        oifname "lan0" meta l4proto udp numgen random mod 1000 < $lim drop
    }
    chain r2c_forward {
        type filter hook forward priority -500; policy accept;
        oifname "lan0" meta l4proto udp numgen random mod 1000 < $lim drop
    }
}
table ip6 pcpit_loss {
    chain r2c_local {
        type filter hook output priority -500; policy accept;
        oifname "lan0" meta l4proto udp numgen random mod 1000 < $lim drop
    }
    chain r2c_forward {
        type filter hook forward priority -500; policy accept;
        oifname "lan0" meta l4proto udp numgen random mod 1000 < $lim drop
    }
}
EOF
    log "loss $pct% of UDP both ways on the client-router link (nftables numgen: this kernel has no sch_netem)"
}

# miniupnpd 2.3.1 writes raw payload matches: "@nh,72,8 0x6 th dport 3456 dnat ip to
# 192.168.77.2:2345" (DNAT) and "th dport 7001 @nh,192,128 0xfd77... @nh,48,8 0x6 accept"
# (IPv6 pinhole); print them as "PROTO PORT ADDR [PORT]"
NFT_PARSE='import ipaddress, re, sys
P = {"6": "tcp", "11": "udp"}
for line in sys.stdin:
    m = re.search(r"@nh,72,8 0x([0-9a-f]+) th dport (\d+) dnat ip to ([0-9.]+):(\d+)", line)
    if m and sys.argv[1] == "dnat":
        print(P.get(m.group(1), m.group(1)), m.group(2), m.group(3), m.group(4))
    m = re.search(r"th dport (\d+) @nh,192,128 0x([0-9a-f]{32}) @nh,48,8 0x([0-9a-f]+)", line)
    if m and sys.argv[1] == "pinholes":
        print(P.get(m.group(3), m.group(3)), m.group(1), ipaddress.IPv6Address(bytes.fromhex(m.group(2))))'

cmd_dnat() {
    ns "$NS_R" nft list chain inet filter prerouting_miniupnpd | "$PY" -c "$NFT_PARSE" dnat
}

cmd_pinholes() {
    ns "$NS_R" nft list chain inet filter miniupnpd | "$PY" -c "$NFT_PARSE" pinholes
}

# Events, not budgets: the token is sent once the listener is bound, and the listener ends
# when something arrives; a failed send ends it at once (a local "reach-aborted"), so only a
# UDP token lost on the way waits the whole cap. REACH_CAP (s, default 30) bounds each wait:
# on a loaded machine (the ASan run) starting the three Python processes takes seconds, which
# the old fixed 2 s bind wait and 4 s receive window did not always cover.
cmd_reach() { # PROTO ADDR PORT LISTEN_PORT [TOKEN]
    local proto=$1 addr=$2 port=$3 lport=$4 token=${5:-pcpit-$RANDOM$RANDOM} out lp sent="sent"
    local cap=${REACH_CAP:-30}
    out=$(mktemp "$LAB/reach.XXXXXX")
    ns "$NS_C" "$PY" "$HERE/netcheck.py" listen "$proto" "$lport" --timeout "$cap" >"$out" &
    lp=$!
    if ! ns "$NS_C" "$PY" "$HERE/netcheck.py" wait-bound "$proto" "$lport" --timeout "$cap"; then
        wait "$lp" || true
        echo "not reached: the listener on client $proto port $lport was not bound within $cap s ($(cat "$out"))"
        rm -f "$out"
        return 1
    fi
    ns "$NS_W" "$PY" "$HERE/netcheck.py" send "$proto" "$addr" "$port" "$token" || sent="send failed"
    if [ "$sent" != sent ]; then
        ns "$NS_C" "$PY" "$HERE/netcheck.py" send "$proto" 127.0.0.1 "$lport" reach-aborted >/dev/null 2>&1 || true
    fi
    wait "$lp" || true
    if grep -q "$token" "$out"; then
        echo "reached: $(cat "$out")"; rm -f "$out"; return 0
    fi
    echo "not reached: wan -> $proto $addr:$port did not arrive at client port $lport ($sent; listener: $(cat "$out"))"
    rm -f "$out"
    return 1
}

cmd_refserver_start() {
    local bin=${REFSERVER_BIN:-}
    [ -n "$bin" ] && [ -x "$bin" ] || die "pcp-refserver not found (REFSERVER_BIN=$bin)"
    local i
    ip netns exec "$NS_R" "$bin" "$@" </dev/null >"$LAB/refserver.log" 2>&1 &
    echo $! >"$LAB/refserver.pid"
    for i in $(seq 1 100); do
        grep -q '^ready' "$LAB/refserver.log" && { log "pcp-refserver ready (pid $(cat "$LAB/refserver.pid"))"; return 0; }
        [ -d "/proc/$(cat "$LAB/refserver.pid")" ] || break
        sleep 0.05
    done
    cat "$LAB/refserver.log" >&2
    die "pcp-refserver did not print 'ready'"
}

cmd_refserver_stop() {
    local p
    [ -s "$LAB/refserver.pid" ] || return 0
    p=$(cat "$LAB/refserver.pid")
    if ip netns pids "$NS_R" | grep -qx "$p"; then kill -TERM "$p" 2>/dev/null || true; fi
    rm -f "$LAB/refserver.pid"
}

cmd_status() {
    local n
    echo "lab $LAB_ID ($LAB)"
    for n in $NS_C $NS_R $NS_W; do
        echo "== $n"; ns "$n" ip -br addr show | grep -v '^lo ' || true
    done
    echo "== router ruleset"; ns "$NS_R" nft list ruleset
    if upnpd_pid >/dev/null; then echo "== miniupnpd pid $(upnpd_pid)"; else echo "== miniupnpd not running"; fi
}

cmd_selfcheck() {
    local out ext lport=24680 r
    . "$LAB/wan_addr"
    out=$(ns "$NS_C" "$PY" "$HERE/pcp-probe.py" map --server "$LAN.1" --proto tcp --port "$lport" --lifetime 300 --json)
    echo "probe: $out"
    r=$("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["result"], d.get("ext_port",0), d.get("ext_addr",""))' "$out")
    set -- $r
    [ "$1" = SUCCESS ] || { echo "FAIL selfcheck: PCP MAP answered $1, expected SUCCESS"; return 1; }
    [ "$3" = "$WAN_ADDR" ] || { echo "FAIL selfcheck: external address $3, expected $WAN_ADDR"; return 1; }
    ext=$2
    cmd_dnat | grep -qx "tcp $ext $LAN.2 $lport" || { echo "FAIL selfcheck: no DNAT rule tcp $ext -> $LAN.2:$lport"; cmd_dnat; return 1; }
    cmd_reach tcp "$WAN_ADDR" "$ext" "$lport" || { echo "FAIL selfcheck: traffic"; return 1; }
    echo "selfcheck: OK (tcp $WAN_ADDR:$ext -> $LAN.2:$lport)"
}

# ------------------------------------------------------------------- main
if [ "${1:-}" = -L ]; then LAB=$2; shift 2; fi
verb=${1:-}
[ $# -gt 0 ] && shift
case "$verb" in
    run) cmd_run "$@" ;;
    shell) cmd_run "$@" -- bash --norc -i ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    reap) cmd_reap ;;
    _watch) cmd_watch "$@" ;;
    env) load; cat "$LAB/env" "$LAB/wan_addr" "$LAB/knobs" ;;
    exec)
        load; w=$1; shift
        case "$w" in client) n=$NS_C ;; router) n=$NS_R ;; wan) n=$NS_W ;; *) die "exec: client|router|wan" ;; esac
        exec ip netns exec "$n" "$@" ;;
    upnpd-start) load; cmd_upnpd_start ;;
    upnpd-stop) load; cmd_upnpd_stop TERM ;;
    upnpd-kill) load; cmd_upnpd_stop KILL ;;
    upnpd-restart) load; cmd_upnpd_restart "$@" ;;
    sigusr1) load; cmd_sigusr1 ;;
    set-wan) load; cmd_set_wan "$@" ;;
    loss) load; cmd_loss "$@" ;;
    dnat) load; cmd_dnat ;;
    pinholes) load; cmd_pinholes ;;
    nft) load; ns "$NS_R" nft -a list ruleset ;;
    reach) load; cmd_reach "$@" ;;
    refserver-start) load; cmd_refserver_start "$@" ;;
    refserver-stop) load; cmd_refserver_stop ;;
    log) load; cat "$LAB/miniupnpd.log" ;;
    status) load; cmd_status ;;
    selfcheck) load; cmd_selfcheck ;;
    *) sed -n '3,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
