#!/bin/bash
# README's first Quick start command: installs what is needed, builds, and shows what pcpd
# is for, with no real router and nothing changed on the host's network:
#   a private system bus (dbus-daemon with the project's bus policy), polkitd on it with a
#   rules file, the project's reference PCP server standing in for the router, and pcpd;
#   root maps a port with pcpctl; then an unprivileged user's program that listens on a
#   port asks pcpd for it over D-Bus, polkit decides, the mapping appears at the router,
#   the program is killed with kill -9 and pcpd deletes the mapping upstream.
#
#   ./scripts/demo.sh            run it (about 15 s) and clean up
#   ./scripts/demo.sh --keep     leave the bus, polkitd, the server and pcpd running, and
#                                print the environment to use them from another shell
#   ./scripts/demo.sh --stop DIR stop what --keep left running in DIR
#
# Needs root (it installs packages, runs polkitd in its own mount namespace and the demo
# program as the user "nobody"). PCPD_BUILD_DIR: the build directory (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

keep=no
case "${1:-}" in
"") ;;
--keep) keep=yes ;;
--stop)
    if [ -z "${2:-}" ] || [ ! -x "${2}/stop" ]; then
        echo "usage: $0 --stop DIR   (DIR is the directory that '$0 --keep' printed)" >&2
        exit 2
    fi
    exec "$2/stop"
    ;;
-h | --help)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "$0: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
esac

./scripts/install-deps.sh
b=${PCPD_BUILD_DIR:-build}
if [ ! -f "$b/build.ninja" ]; then
    meson setup "$b" >/dev/null
fi
ninja -C "$b" >/dev/null
b=$(cd "$b" && pwd)
pcpctl_bin="$b/clients/pcpctl"
refserver="$b/tests/refserver/pcp-refserver"
PY=/usr/bin/python3

work=$(mktemp -d /tmp/pcpd-demo.XXXXXX)
chmod 755 "$work" # polkitd and the demo program run as other users
pids=()    # everything started here
daemons=() # what --keep leaves running
cleanup() {
    local p
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do # newest first: pcpd before the bus it is on
        p=${pids[i]}
        if [ "$keep" = yes ] && [[ " ${daemons[*]} " == *" $p "* ]]; then
            continue
        fi
        kill "$p" 2>/dev/null || true
    done
    if [ "$keep" = yes ]; then # what is left runs on; waiting for it would never end
        return
    fi
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

bold=$(printf '\033[1m') normal=$(printf '\033[0m')
[ -t 1 ] || { bold= normal=; }
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$normal"; }
run() { # run CMD...: shows the command as a user would type it, then runs it
    printf '$ %s\n' "$*"
    "$@"
}
# (a function: the commands read as a user types them; programs that are signalled later
# run "$pcpctl_bin" directly, as a background function would be a subshell)
pcpctl() { "$pcpctl_bin" "$@"; }
wait_for() { # wait_for SECONDS WHAT CMD...: retry CMD until it succeeds; fail saying WHAT
    local t=$1 what=$2
    shift 2
    for _ in $(seq 1 $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "demo: gave up after ${t}s waiting for $what" >&2
    exit 1
}
# the demo must not page, whatever the terminal
export SYSTEMD_PAGER=cat

# a loopback address and ports nobody uses (a demo left running with --keep may hold the
# first ones)
read -r server announce_port < <($PY - <<'EOF'
import socket
def free(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()
addr = next(f'127.0.0.{i}' for i in range(53, 99) if free(f'127.0.0.{i}', 15351))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 0))
print(addr, s.getsockname()[1])
EOF
)
external=198.51.100.7

say "The pieces (all on this machine, in $work)"
sed -e "s|@SOCKET@|$work/bus.sock|" -e "s|@POLICY@|$top/dbus/org.freedesktop.PCP1.conf|" \
    tests/data/test-bus.conf.in >"$work/bus.conf"
# (every daemon: its own session, no terminal, its output in a file: --keep leaves them
# running after this script, whose caller may be waiting for its output to end)
setsid dbus-daemon --config-file="$work/bus.conf" --nofork --nopidfile </dev/null >"$work/bus.log" 2>&1 &
pids+=($!) daemons+=($!)
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$work/bus.sock"
wait_for 5 "the private bus" test -S "$work/bus.sock"
echo "  a private system bus:   $DBUS_SYSTEM_BUS_ADDRESS"

# polkit: the real polkitd, in a mount namespace of its own where its rules and actions
# directories are the demo's (the host's polkit configuration is not touched). Where
# that cannot run (not root, no polkitd), python3-dbusmock's stand-in.
mkdir -p "$work/polkit/rules.d" "$work/polkit/actions"
cp "$b/dbus/org.freedesktop.PCP1.policy" "$work/polkit/actions/"
cat >"$work/polkit/rules.d/50-pcpd-demo.rules" <<'EOF'
// pcpd demo: the user "nobody" may map a port that one of its own sockets is bound to.
// Anything else (a port below 1024, a port it does not listen on) needs an administrator.
polkit.addRule(function(action, subject) {
    if (action.id == "org.freedesktop.PCP1.map" && subject.user == "nobody")
        return polkit.Result.YES;
});
EOF
polkit_kind=
if [ "$(id -u)" -eq 0 ] && [ -x /usr/lib/polkit-1/polkitd ] &&
    unshare -m --propagation private true 2>/dev/null; then
    setsid unshare -m --propagation private sh -c "
        mount --bind '$work/polkit/rules.d' /etc/polkit-1/rules.d &&
        mount --bind '$work/polkit/actions' /usr/share/polkit-1/actions &&
        exec /usr/lib/polkit-1/polkitd --no-debug" </dev/null >"$work/polkit.log" 2>&1 &
    pids+=($!) daemons+=($!)
    polkit_kind=real
else
    setsid $PY -m dbusmock --system --template polkitd </dev/null >"$work/polkit.log" 2>&1 &
    pids+=($!) daemons+=($!)
    polkit_kind=mock
fi
has_owner() { # has_owner NAME: NAME is owned on the private bus
    dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner "string:$1" | grep -q 'boolean true'
}
wait_for 15 "polkit on the private bus" has_owner org.freedesktop.PolicyKit1
if [ "$polkit_kind" = real ]; then
    echo "  polkit:                 polkitd (Debian's polkitd) with the rules file"
    sed 's/^/                          /' "$work/polkit/rules.d/50-pcpd-demo.rules"
else
    # the mock knows no users: it allows the action, for everyone
    dbus-send --system --print-reply --dest=org.freedesktop.PolicyKit1 /org/freedesktop/PolicyKit1/Authority \
        org.freedesktop.DBus.Mock.SetAllowed array:string:org.freedesktop.PCP1.map >/dev/null
    echo "  polkit:                 python3-dbusmock's polkitd stand-in (the real polkitd needs root here),"
    echo "                          allowing org.freedesktop.PCP1.map to everyone"
fi

setsid "$refserver" --listen "$server" --port 15351 --announce-port "$announce_port" \
    --external "$external" --control "$work/ref.ctl" --log "$work/ref.log" </dev/null >"$work/ref.out" 2>&1 &
pids+=($!) daemons+=($!)
wait_for 5 "the reference server" grep -q ready "$work/ref.out"
echo "  the router:             the reference PCP server on $server:15351, external address $external"

cat >"$work/pcpd.conf" <<CONF
[Daemon]
DefaultLifetime=3600
[Servers]
Servers=$server:15351
UseDefaultRouters=false
AnnouncePort=$announce_port
CONF
setsid "$b/daemon/pcpd" --config "$work/pcpd.conf" --state-dir "$work/state" </dev/null >>"$work/pcpd.log" 2>&1 &
pids+=($!) daemons+=($!)
pcpd_pid=$!
echo $pcpd_pid >"$work/pcpd.pid"
echo "  pcpd:                   $b/daemon/pcpd --config $work/pcpd.conf"
wait_for 10 "pcpd to be ready" sh -c "timeout 2 '$pcpctl_bin' status | grep -q 'State: ready'"

say "pcpd is ready"
run pcpctl status

say "Root maps a port: pcpctl holds the mapping until it is interrupted"
echo "$ pcpctl map tcp 8080 --wait --description 'pcpd demo' &"
"$pcpctl_bin" map tcp 8080 --wait --description "pcpd demo" >"$work/map.out" 2>&1 &
map_pid=$!
wait_for 15 "the mapping of tcp 8080" grep -q -- '->' "$work/map.out"
cat "$work/map.out"
run pcpctl list
echo "\$ pcp-refserver ctl ... dump      # what the router holds"
"$refserver" ctl "$work/ref.ctl" dump
echo "\$ kill -INT %1                     # Ctrl+C: pcpctl releases, pcpd deletes it upstream"
kill -INT $map_pid
wait $map_pid 2>/dev/null || true
wait_for 5 "the mapping to be gone" sh -c "'$pcpctl_bin' list --json=short | grep -q '^\[\]$'"
"$refserver" ctl "$work/ref.ctl" dump

say "What pcpd is for: an unprivileged user's program asks for its own port"
# the program: serves on a TCP port and asks pcpd for it over D-Bus, like any app would
cat >"$work/demo-app.py" <<'EOF'
"""An ordinary program of an unprivileged user: it listens on a TCP port and asks pcpd,
over the system bus, to open that port on the router. The mapping lives as long as the
program's bus connection."""
import os
import socket
import sys

from gi.repository import Gio, GLib

BUS_NAME, MANAGER_PATH = 'org.freedesktop.PCP1', '/org/freedesktop/PCP1'

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    sock.bind(('0.0.0.0', int(sys.argv[1])))
except OSError:  # taken: any port will do for the story
    sock.bind(('0.0.0.0', 0))
sock.listen()
port = sock.getsockname()[1]
print(f'demo-app: uid {os.getuid()}, listening on tcp port {port}', flush=True)

bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
print(f'demo-app: calls {BUS_NAME}.Manager.AddMapping("tcp", {port}, 0, {{"description": "demo app"}})',
      flush=True)
try:
    path, = bus.call_sync(BUS_NAME, MANAGER_PATH, BUS_NAME + '.Manager', 'AddMapping',
                          GLib.Variant('(sqqa{sv})', ('tcp', port, 0, {'description': GLib.Variant('s', 'demo app')})),
                          GLib.VariantType('(o)'), Gio.DBusCallFlags.NONE, 30000, None).unpack()
except GLib.Error as e:
    print(f'demo-app: pcpd refused: {e.message}', flush=True)
    sys.exit(1)
print(f'demo-app: pcpd made {path}', flush=True)


def check(*_):
    props, = bus.call_sync(BUS_NAME, path, 'org.freedesktop.DBus.Properties', 'GetAll',
                           GLib.Variant('(s)', (BUS_NAME + '.Mapping',)), None, Gio.DBusCallFlags.NONE,
                           10000, None).unpack()
    if props['State'] == 'active':
        print(f'demo-app: reachable from outside at {props["ExternalAddress"]}:{props["ExternalPort"]}',
              flush=True)


# the mapping's State changes arrive as PropertiesChanged signals
bus.signal_subscribe(BUS_NAME, 'org.freedesktop.DBus.Properties', 'PropertiesChanged', path, None,
                     Gio.DBusSignalFlags.NONE, check)
check()
GLib.MainLoop().run()  # serve until killed
EOF
chmod 644 "$work/demo-app.py"
as_nobody=()
if [ "$(id -u)" -eq 0 ]; then
    as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env)
fi

echo "\$ pcpctl monitor > monitor.out &   # records what pcpd says from here on"
"$pcpctl_bin" monitor >"$work/monitor.out" 2>&1 &
monitor_pid=$!
pids+=($monitor_pid)
wait_for 5 "pcpctl monitor" grep -q Monitoring "$work/monitor.out"

echo "\$ ${as_nobody[*]:+${as_nobody[*]} }python3 demo-app.py 8081 &"
"${as_nobody[@]}" env DBUS_SYSTEM_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS" \
    $PY "$work/demo-app.py" 8081 >"$work/app.out" 2>&1 &
app_pid=$!
pids+=($app_pid)
wait_for 15 "the demo program's mapping" grep -q "reachable from outside" "$work/app.out"
cat "$work/app.out"
app_port=$(sed -n 's/.*listening on tcp port \([0-9]*\).*/\1/p' "$work/app.out")
echo "(pcpd found a socket of the caller bound to tcp $app_port, so it asked polkit about"
echo " org.freedesktop.PCP1.map for that user; the rules said yes)"
run pcpctl list

say "polkit decides: the same user asking for a port it does not listen on"
echo "\$ ${as_nobody[*]:+${as_nobody[*]} }pcpctl map tcp 9090 --wait"
"${as_nobody[@]}" env DBUS_SYSTEM_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS" \
    "$pcpctl_bin" --no-ask-password map tcp 9090 --wait 2>&1 || true

say "kill -9 the program: it releases nothing, yet pcpd deletes its mapping upstream"
echo "\$ kill -9 $app_pid"
# (bash reports a job killed by a signal when it reaps it: not part of the story)
{ kill -KILL $app_pid && wait $app_pid; } 2>/dev/null || true
wait_for 10 "pcpd to remove the program's mapping" grep -q "removed: owner-vanished" "$work/monitor.out"
wait_for 10 "the delete at the router" $PY - "$work/ref.log" "$app_port" <<'EOF'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1]) if '"event":"request"' in l]
sys.exit(0 if any(r['internal_port'] == int(sys.argv[2]) and r['lifetime'] == 0 for r in reqs) else 1)
EOF
kill -INT $monitor_pid
wait $monitor_pid 2>/dev/null || true
echo "pcpctl monitor said:"
sed 's/^/  /' "$work/monitor.out"
echo "the router received, for tcp $app_port:"
$PY - "$work/ref.log" "$app_port" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get('event') != 'request' or r['internal_port'] != int(sys.argv[2]):
        continue
    what = 'delete (lifetime 0)' if r['lifetime'] == 0 else f"map for {r['lifetime']} s"
    print(f"  MAP tcp {r['internal_port']} from {r['src']}: {what} -> {r['result_name']}"
          + (f", external port {r['assigned_port']}" if r['lifetime'] else ''))
EOF
echo "\$ pcp-refserver ctl ... dump"
"$refserver" ctl "$work/ref.ctl" dump

say "What to try next"
cat <<EOF
  ./scripts/demo.sh --keep       the same, but the bus, polkitd, the server and pcpd stay up,
                                 with the two lines to paste into a shell to use them; then:
    pcpctl status                pcpctl monitor          (in a second terminal)
    pcpctl map tcp 8080 --wait   pcpctl list             pcpctl release ID
    pcpctl map udp 51820 --persistent --wait             pcpctl list --json=pretty
    DIR/restart-pcpd             under a held 'pcpctl map': it re-attaches and says so
  man -l $b/man/pcpctl.1      the command line
  man -l $b/man/org.freedesktop.PCP1.5   the D-Bus API an application uses (see demo-app above)
  README.md "Using it"           a real installation, against your router
EOF

if [ "$keep" = yes ]; then
    # pcpd's PID is in pcpd.pid: restart-pcpd replaces it
    printf '%s\n' "${daemons[@]}" | grep -vx "$pcpd_pid" | tac >"$work/pids"
    cat >"$work/stop" <<EOF
#!/bin/sh
# stops what ./scripts/demo.sh --keep left running (pcpd first, the bus last)
for pid in \$(cat '$work/pcpd.pid' '$work/pids'); do kill "\$pid" 2>/dev/null; done
for pid in \$(cat '$work/pcpd.pid' '$work/pids'); do
    n=0
    while kill -0 "\$pid" 2>/dev/null && [ \$n -lt 100 ]; do sleep 0.1; n=\$((n + 1)); done
done
rm -rf '$work'
echo "pcpd demo stopped."
EOF
    cat >"$work/restart-pcpd" <<EOF
#!/bin/sh
# restarts the demo's pcpd as an upgrade would (SIGTERM, then the same command line): a
# mapping held by 'pcpctl map' comes back with the same external port
pid=\$(cat '$work/pcpd.pid')
kill -TERM "\$pid" 2>/dev/null
while kill -0 "\$pid" 2>/dev/null; do sleep 0.1; done
DBUS_SYSTEM_BUS_ADDRESS='$DBUS_SYSTEM_BUS_ADDRESS' setsid '$b/daemon/pcpd' --config '$work/pcpd.conf' \\
    --state-dir '$work/state' </dev/null >>'$work/pcpd.log' 2>&1 &
echo \$! >'$work/pcpd.pid'
echo "pcpd restarted (PID \$!)."
EOF
    chmod 755 "$work/stop" "$work/restart-pcpd"
    cat >"$work/env" <<EOF
export DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS
export PATH=$b/clients:\$PATH
EOF
    say "Left running: the private bus, polkitd, the reference server and pcpd"
    echo "Paste into a shell (or: . $work/env):"
    sed 's/^/  /' "$work/env"
    echo "Restart pcpd under a held 'pcpctl map' (it re-attaches):"
    echo "  $work/restart-pcpd"
    echo "Stop them all with:"
    echo "  ./scripts/demo.sh --stop $work"
    exit 0
fi

say "Shutting down"
echo "pcpd's log:"
sed 's/^/  /' "$work/pcpd.log"
echo
echo "Demo done: root and an unprivileged program mapped ports through pcpd; polkit decided;"
echo "a killed program's mapping was deleted at the router."
