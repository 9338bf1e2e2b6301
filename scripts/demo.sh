#!/bin/bash
# README's first Quick start command: installs what is needed, builds, and shows pcpd
# working with no real router. Everything runs on loopback, on a private system bus:
#   a private dbus-daemon (with the project's bus policy)
#   pcp-refserver, the project's reference PCP server, on 127.0.0.53:15351
#   pcpd pointed at it (config written to a temporary directory)
#   pcpctl map tcp 8080 --wait, pcpctl list, pcpctl status, then a clean shutdown
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

./scripts/install-deps.sh
b=${PCPD_BUILD_DIR:-build}
if [ ! -f "$b/build.ninja" ]; then
    meson setup "$b" >/dev/null
fi
ninja -C "$b" >/dev/null

work=$(mktemp -d /tmp/pcpd-demo.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { # wait_for SECONDS CMD...: retry CMD until it succeeds
    local t=$1; shift
    for _ in $(seq 1 $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    "$@"
}

server=127.0.0.53
sed -e "s|@SOCKET@|$work/bus.sock|" -e "s|@POLICY@|$top/dbus/org.freedesktop.PCP1.conf|" \
    tests/data/test-bus.conf.in >"$work/bus.conf"
dbus-daemon --config-file="$work/bus.conf" --nofork --nopidfile 2>"$work/bus.log" &
pids+=($!)
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$work/bus.sock"
wait_for 5 test -S "$work/bus.sock"

say "A reference PCP server (stands in for the router) on $server:15351, external address 198.51.100.7"
"$b"/tests/refserver/pcp-refserver --listen $server --port 15351 --announce-port 15350 \
    --external 198.51.100.7 --control "$work/ref.ctl" >"$work/ref.out" 2>&1 &
pids+=($!)
wait_for 5 grep -q ready "$work/ref.out"

cat >"$work/pcpd.conf" <<CONF
[Daemon]
DefaultLifetime=3600
[Servers]
Servers=$server:15351
UseDefaultRouters=false
AnnouncePort=15350
CONF
say "pcpd on the private bus (config: $work/pcpd.conf)"
"$b"/daemon/pcpd --config "$work/pcpd.conf" --state-dir "$work/state" >"$work/pcpd.log" 2>&1 &
pcpd_pid=$!
pids+=($pcpd_pid)
wait_for 10 sh -c "timeout 2 $b/clients/pcpctl status | grep -q 'State: ready'"
"$b"/clients/pcpctl status

say "pcpctl map tcp 8080 --wait (holds the mapping until interrupted)"
"$b"/clients/pcpctl map tcp 8080 --wait --description "pcpd demo" >"$work/map.out" 2>&1 &
map_pid=$!
pids+=($map_pid)
wait_for 15 grep -q -- '->' "$work/map.out"
cat "$work/map.out"

say "pcpctl list"
"$b"/clients/pcpctl list

say "what the server holds"
"$b"/tests/refserver/pcp-refserver ctl "$work/ref.ctl" dump

say "pcpctl exits: its mapping is released and deleted upstream"
kill -INT $map_pid
wait $map_pid 2>/dev/null || true
wait_for 5 sh -c "timeout 2 $b/clients/pcpctl status | grep -q 'Mappings: 0'"
"$b"/tests/refserver/pcp-refserver ctl "$work/ref.ctl" dump

say "shutting down"
kill -TERM $pcpd_pid
wait $pcpd_pid 2>/dev/null || true
echo "pcpd log:"
sed 's/^/  /' "$work/pcpd.log"
echo
echo "Demo done: pcpd mapped tcp 8080 through the reference server and cleaned up after itself."
