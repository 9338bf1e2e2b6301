#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# pcpd as a real system service: installed the way a package is into a container that
# boots Debian 12's own systemd (systemd-nspawn), with its dbus-daemon system bus, a real
# polkitd with the shipped rules, journald, and a veth to a peer network namespace where
# the project's reference PCP server (pcp-refserver) plays the router. TAP on stdout.
#
#   tests/system/run.sh [BUILD_DIR]
#
# BUILD_DIR (default build-system at the top of the tree) is configured here with
# --prefix=/usr, as the README's Install section does, and installed with
# meson install --destdir into the container's root while it runs, followed by the steps
# a package's postinst runs (systemd-sysusers, daemon-reload, dbus reload).
#
# The container root is a cached tarball (tests/system/root.sh: built once per machine
# with mmdebstrap when missing). Each run extracts it into its own temporary directory,
# and names its container, network namespace, veth pair and host cgroup pcpd-st-<id>
# (the veth ends pst<id>c/p); everything is removed by that exact name at exit.
#
# Needs root, systemd-container, mmdebstrap (first run), zstd, iproute2, meson, ninja.
# Without them: exit 77 (skip) with the reason, except with CI=true: then it fails.
#
# What cannot be checked in such a container (cgroup v1 host, controllers owned by the
# host): resource limits (MemoryMax=, TasksMax=) and DevicePolicy='s device cgroup on its
# own (PrivateDevices= already hides every device node the policy would refuse).
set -uo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(realpath -m "${1:-$SRC/build-system}")
T_START=$SECONDS

# ---- TAP -------------------------------------------------------------------------------
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() {
    n=$((n + 1)); failed=$((failed + 1))
    echo "not ok $n - $1"
    shift
    [ $# -gt 0 ] && printf '%s\n' "$@" | tail -n 40 | sed 's/^/#   /'
    return 0
}
note() { echo "# $*"; }
check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
    local d=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$d"; else notok "$d" "$out"; fi
}
is() { # is DESCRIPTION ACTUAL EXPECTED-REGEX (whole value)
    if [[ $2 =~ ^($3)$ ]]; then ok "$1"; else notok "$1" "got:      '$2'" "expected: '$3'"; fi
}
equals() { # equals DESCRIPTION ACTUAL EXPECTED (literally)
    if [ "$2" = "$3" ]; then ok "$1"; else notok "$1" "got:      '$2'" "expected: '$3'"; fi
}
skip_or_fail() {
    if [ "${CI:-}" = true ]; then
        echo "Bail out! $1 (CI=true: nothing may be skipped)"
        exit 1
    fi
    echo "1..0 # SKIP $1"
    exit 77
}

# ---- prerequisites ---------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || skip_or_fail "needs root (systemd-nspawn, network namespaces)"
for tool in systemd-nspawn nsenter ip zstd meson ninja flock /usr/bin/python3; do
    command -v "$tool" >/dev/null || skip_or_fail "$tool is not installed (scripts/install-deps.sh)"
done
TARBALL=$("$SRC/tests/system/root.sh" --path)
if [ ! -s "$TARBALL" ] && ! command -v mmdebstrap >/dev/null; then
    skip_or_fail "mmdebstrap is not installed and the container root is not cached"
fi
CGROUP_DIRS=()
for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
    mountpoint -q "$h" && CGROUP_DIRS+=("$h")
done
[ ${#CGROUP_DIRS[@]} -eq 0 ] && [ -f /sys/fs/cgroup/cgroup.controllers ] && CGROUP_DIRS=(/sys/fs/cgroup)
[ ${#CGROUP_DIRS[@]} -gt 0 ] || skip_or_fail "no systemd or cgroup2 hierarchy under /sys/fs/cgroup"

# ---- names of this run -----------------------------------------------------------------
ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
NAME=pcpd-st-$ID                 # machine, network namespace, host cgroup
VC=pst${ID}c                     # veth end in the container
VP=pst${ID}p                     # veth end in the peer namespace
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pcpd-st-$ID.XXXXXX")
ROOT=$WORK/root
C_ADDR=10.77.0.1                 # the container (the host running pcpd)
R_ADDR=10.77.0.2                 # the router: pcp-refserver, and a UDP sink on port 9
O_ADDR=10.77.0.3                 # another peer address: only the UDP sink
EXT_ADDR=203.0.113.77            # the refserver's external address
NSPAWN_PID=
LEADER=
BG_PIDS=()

cleanup() {
    local p t keep=
    set +e
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # a clean poweroff; SIGTERM to systemd-nspawn is one too. Never SIGKILL: that
        # leaves the container running without its supervisor.
        [ -n "$LEADER" ] && timeout 20 nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1 ||
            kill -TERM "$NSPAWN_PID"
        for t in $(seq 300); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            kill -TERM "$NSPAWN_PID"
            for t in $(seq 300); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
        fi
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            echo "# cleanup: systemd-nspawn (pid $NSPAWN_PID) did not stop; $WORK is left" >&2
            keep=1
        fi
    fi
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    ip netns del "$NAME" 2>/dev/null
    ip link del "$VC" 2>/dev/null  # only if the container never took it
    # systemd-nspawn leaves empty payload/ and supervisor/ cgroups behind
    for h in "${CGROUP_DIRS[@]}"; do
        [ -d "$h/$NAME" ] && find "$h/$NAME" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    if [ -n "$(findmnt -rn -o TARGET | grep -F "$WORK" || true)" ]; then
        echo "# cleanup: mounts left under $WORK, not removing it" >&2
    elif [ -z "$keep" ]; then
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed() { echo $((SECONDS - T_START)); }
log_phase() { note "[$(elapsed) s] $*"; }

# run a command inside the container: the namespaces of its PID 1 (not its seccomp
# filter or cgroup: see in_unit)
cx() { nsenter -t "$LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
# run a command really inside: as a transient unit of the container's systemd
in_unit() { cx systemd-run --wait --pipe --quiet --collect "$@"; }

# wait_for FILE REGEX SECONDS WHAT: until a line of FILE matches (grep -E)
wait_for() {
    local file=$1 re=$2 cap=$3 what=$4 i
    for i in $(seq $((cap * 10))); do
        grep -qE -- "$re" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "waited ${cap} s for $what ('$re' in $(basename "$file")); it has:"
    tail -n 20 "$file" 2>/dev/null
    return 1
}
# wait_cmd SECONDS WHAT COMMAND...: until COMMAND succeeds
wait_cmd() {
    local cap=$1 what=$2 i
    shift 2
    for i in $(seq $((cap * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "waited ${cap} s for $what: $*"
    "$@" 2>&1 | tail -n 20
    return 1
}

prop() { cx systemctl show -p "$1" --value pcpd.service; }
main_pid() { prop MainPID; }
# signal_pcpd SIGNAL PID: PID must be pcpd's main process (kill 0 would signal our own
# process group)
signal_pcpd() {
    [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -gt 1 ] && [ "$(cx cat "/proc/$2/comm")" = pcpd ] &&
        cx kill "-$1" "$2"
}
in_groups() { cx id -nG "$1" | tr ' ' '\n' | grep -qx "$2"; }
ref() { "$BUILD/tests/refserver/pcp-refserver" ctl "$WORK/ref.ctl" "$@"; }
# the refserver's mapping of internal port PORT: "EXT_PORT NONCE", or nothing. A dump
# line: map tcp 10.77.0.1:8080 -> 203.0.113.77:8080 lifetime L remaining R nonce HEX ...
ref_mapping() {
    ref dump | awk -v p=":$1 " '$1 == "map" && index($3 " ", p) { split($5, e, ":"); print e[2], $11 }'
}
ref_empty() { ref dump | head -n 1 | grep -q '^ok 0 mappings'; }
bus_state_ready() {
    [ "$(cx busctl get-property org.freedesktop.PCP1 /org/freedesktop/PCP1 org.freedesktop.PCP1.Manager State)" = 's "ready"' ]
}
journal_has() { cx journalctl -u pcpd.service -o cat --no-pager | grep -qF -- "$1"; }
new_main_pid() { # new_main_pid OLD: another pcpd is running
    local p
    p=$(main_pid)
    [ "$p" != 0 ] && [ "$p" != "$1" ] && cx systemctl is-active -q pcpd.service
}
shm_of_pcpd() { cx ipcs -m -c | awk '$4 == "pcpd"' | grep -q .; }
no_shm_of_pcpd() { ! shm_of_pcpd; }
not_running_dir() { ! cx test -e "$1"; }
stat_is() { [ "$(stat -c '%u %a' "$1")" = "$2" ] || { stat -c '%u %a %n' "$1"; return 1; }; }

# holders: pcpd-test-holder as a transient system service of the container under USER,
# like a torrent daemon under its own account: no login session
start_holder() { # start_holder NAME USER PORT: runs until stopped, output in $WORK/NAME.out
    nsenter -t "$LEADER" -a env -i PATH=/usr/bin:/bin systemd-run --pipe --quiet --collect \
        --unit="$NAME-$1" -p User="$2" /usr/local/libexec/pcpd-test/pcpd-test-holder tcp "$3" \
        >"$WORK/$1.out" 2>&1 </dev/null &
    BG_PIDS+=($!)
}
stop_holder() { cx systemctl stop "$NAME-$1.service" >/dev/null 2>&1; }
# the number of lines of a holder's output so far: wait_back looks after them
mark() { wc -l <"$WORK/$1.out"; }
# wait_back HOLDER MARK EXT: after line MARK the holder saw pcpd come back, asked again,
# and its mapping is active on EXT_ADDR:EXT
wait_back() {
    local i want="state active $EXT_ADDR $3 "
    for i in $(seq 300); do
        tail -n +"$(($2 + 1))" "$WORK/$1.out" | awk -v want="$want" \
            '/^pcpd-back/ { back = 1 } back && index($0, want) == 1 { found = 1 } END { exit !found }' &&
            return 0
        sleep 0.1
    done
    echo "waited 30 s for pcpd-back, then '$want' after line $2 of $1.out:"
    tail -n +"$(($2 + 1))" "$WORK/$1.out"
    return 1
}

# ---- 1. build pcpd as a system install ----------------------------------------------------
log_phase "build $BUILD (--prefix=/usr)"
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$SRC" --prefix=/usr -Dtests=false >"$WORK/setup.log" 2>&1 ||
        { cat "$WORK/setup.log"; echo "Bail out! meson setup failed"; exit 1; }
fi
ninja -C "$BUILD" >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; echo "Bail out! build failed"; exit 1; }
for f in daemon/pcpd clients/pcpctl tests/refserver/pcp-refserver tests/system/pcpd-test-probe \
    tests/system/pcpd-test-holder; do
    [ -x "$BUILD/$f" ] || { echo "Bail out! $BUILD/$f was not built"; exit 1; }
done

# ---- 2. the container root -------------------------------------------------------------
log_phase "container root"
TARBALL=$("$SRC/tests/system/root.sh") || { echo "Bail out! no container root"; exit 1; }
mkdir "$ROOT"
tar -C "$ROOT" --zstd -xpf "$TARBALL" || { echo "Bail out! cannot extract $TARBALL"; exit 1; }
# the run's helpers, and the test users: alice may map (group pcpd-users, the shipped
# polkit rule), bob may not. Neither has a login session: polkit's allow_active never
# applies to them, only the rule.
install -D -m 0755 "$BUILD/tests/system/pcpd-test-probe" "$BUILD/tests/system/pcpd-test-holder" \
    -t "$ROOT/usr/local/libexec/pcpd-test/"
mkdir -p "$ROOT/etc/sysusers.d"
cat >"$ROOT/etc/sysusers.d/pcpd-test.conf" <<'EOF'
u alice - "pcpd test user, in pcpd-users" /nonexistent
u bob - "pcpd test user" /nonexistent
m alice pcpd-users
EOF

# ---- 3. boot ---------------------------------------------------------------------------
log_phase "boot $NAME"
ip netns add "$NAME" || { echo "Bail out! ip netns add $NAME"; exit 1; }
ip link add "$VC" type veth peer name "$VP" netns "$NAME" || { echo "Bail out! veth"; exit 1; }
ip -n "$NAME" addr add "$R_ADDR/24" dev "$VP"
ip -n "$NAME" addr add "$O_ADDR/24" dev "$VP"
ip -n "$NAME" link set "$VP" up
ip -n "$NAME" link set lo up
for h in "${CGROUP_DIRS[@]}"; do mkdir -p "$h/$NAME"; done
# --register=no --keep-unit: the host's PID 1 is not systemd (no machined, no scope);
# --system-call-filter=bpf: else IPAddressDeny= is silently not enforced inside;
# --private-network: the veth end is moved in after the start (no udev on the host).
sh -c 'for h in "$@"; do echo $$ > "$h/'"$NAME"'/cgroup.procs"; done
       exec systemd-nspawn -D "'"$ROOT"'" -b --register=no --keep-unit --private-network \
            --system-call-filter=bpf --console=read-only -M "'"$NAME"'"' sh "${CGROUP_DIRS[@]}" \
    >"$WORK/console.log" 2>&1 </dev/null &
NSPAWN_PID=$!
# the container's PID 1: the child of systemd-nspawn in another PID namespace. Its first
# child for a while is the "outer child" (same PID namespace), which exits once the real
# one is started: taking that one made every later nsenter fail on a loaded machine.
host_pidns=$(readlink "/proc/$NSPAWN_PID/ns/pid")
LEADER=
for i in $(seq 600); do
    for c in $(cat "/proc/$NSPAWN_PID/task/$NSPAWN_PID/children" 2>/dev/null); do
        ns=$(readlink "/proc/$c/ns/pid" 2>/dev/null) || continue
        [ "$ns" != "$host_pidns" ] && LEADER=$c
    done
    [ -n "$LEADER" ] && break
    kill -0 "$NSPAWN_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$LEADER" ]; then
    cat "$WORK/console.log"
    echo "Bail out! systemd-nspawn did not start a container (console above)"
    exit 1
fi
ip link set "$VC" netns "$LEADER"
state=
for i in $(seq 600); do
    state=$(cx systemctl is-system-running 2>/dev/null)
    case $state in running | degraded) break ;; esac
    sleep 0.1
done
is "the container boots systemd to running" "$state" "running"
[ "$state" = degraded ] && note "failed units: $(cx systemctl --failed --no-legend | tr '\n' ' ')"
case $state in running | degraded) ;; *) tail -n 30 "$WORK/console.log"; echo "Bail out! boot"; exit 1 ;; esac
note "$(cx systemctl --version | head -1), $(cx systemd-analyze 2>/dev/null | head -1)"
cx ip addr add "$C_ADDR/24" dev "$VC"
cx ip link set "$VC" up
cx ip route add default via "$R_ADDR"

# the router: the reference server, and a UDP sink on port 9 of both peer addresses
ip netns exec "$NAME" "$BUILD/tests/refserver/pcp-refserver" --listen "$R_ADDR" --external "$EXT_ADDR" \
    --control "$WORK/ref.ctl" --log "$WORK/ref.log" >"$WORK/ref.out" 2>&1 &
BG_PIDS+=($!)
ip netns exec "$NAME" /usr/bin/python3 -c '
import select, socket, sys
socks = []
for a in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((a, 9)); socks.append(s)
print("ready", flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        data, src = s.recvfrom(512)
        print(s.getsockname()[0], "<-", src[0], data.decode(errors="replace"), flush=True)
' "$R_ADDR" "$O_ADDR" >"$WORK/udp.log" 2>&1 &
BG_PIDS+=($!)
check "pcp-refserver listens on $R_ADDR in the peer namespace" wait_for "$WORK/ref.out" '^ready' 20 "the refserver"
check "the UDP sink listens on $R_ADDR and $O_ADDR" wait_for "$WORK/udp.log" '^ready' 20 "the UDP sink"

# ---- 4. install, the way a package does on a running system ------------------------------
log_phase "install"
DESTDIR= meson install -C "$BUILD" --no-rebuild --destdir "$ROOT" >"$WORK/install.log" 2>&1
check "meson install --destdir into the container's root" test $? -eq 0
# what dh_installsysusers / dh_installsystemd / the dbus trigger do
check "postinst: systemd-sysusers" cx systemd-sysusers
check "postinst: systemctl daemon-reload" cx systemctl daemon-reload
check "postinst: systemctl reload dbus" cx systemctl reload dbus

for f in /lib/systemd/system/pcpd.service /usr/lib/sysusers.d/pcpd.conf \
    /usr/share/dbus-1/system.d/org.freedesktop.PCP1.conf \
    /usr/share/dbus-1/system-services/org.freedesktop.PCP1.service \
    /usr/share/polkit-1/actions/org.freedesktop.PCP1.policy \
    /usr/share/polkit-1/rules.d/org.freedesktop.PCP1.rules /usr/libexec/pcpd /usr/bin/pcpctl \
    /usr/share/doc/pcpd/examples/pcpd.conf /etc/pcpd/pcpd.conf; do
    check "installed where Debian's systemd, dbus and polkit read it: $f" test -s "$ROOT$f"
done
# the modules pcpd loads when needed, where it looks for them (PCPD_MODULEDIR, LIBDIR/pcpd)
moddir=$(sed -n 's/^#define PCPD_MODULEDIR "\(.*\)"$/\1/p' "$BUILD/config.h")
for f in pcpd-nm.so pcpd-upnp.so; do
    check "installed where pcpd loads it: $moddir/$f" test -s "$ROOT$moddir/$f"
done
check "/etc/pcpd/pcpd.conf is the commented example (no active setting)" \
    sh -c "! grep -E '^[A-Za-z]+=' '$ROOT/etc/pcpd/pcpd.conf'"
is "sysusers: the system user pcpd" "$(cx id -u pcpd)" '[1-9][0-9]{0,2}'
check "sysusers: the group pcpd-users, alice a member" in_groups alice pcpd-users
is "systemd-analyze verify pcpd.service (inside): no complaint" "$(cx systemd-analyze verify --man=no pcpd.service 2>&1)" ""
is "pcpd.service is not running before the first call" "$(cx systemctl is-active pcpd.service)" "inactive"
PCPD_UID=$(cx id -u pcpd)
ALICE_UID=$(cx id -u alice)

# ---- 5. D-Bus activation, the unit's settings ---------------------------------------------
log_phase "activation"
version=$(cx runuser -u bob -- busctl get-property org.freedesktop.PCP1 /org/freedesktop/PCP1 \
    org.freedesktop.PCP1.Manager Version 2>&1)
is "first call (bob reads Version) activates pcpd through the bus" "$version" 's "[0-9.]+"'
is "pcpd.service active after the first call" "$(cx systemctl is-active pcpd.service)" "active"
is "Type=notify" "$(prop Type)" "notify"
is "NotifyAccess=main (READY/STATUS/WATCHDOG from pcpd only)" "$(prop NotifyAccess)" "main"
is "BusName=org.freedesktop.PCP1" "$(prop BusName)" "org.freedesktop.PCP1"
is "runs as User=pcpd" "$(prop User)/$(cx ps -o user= -p "$(main_pid)")" "pcpd/pcpd"
is "WatchdogSec=1min" "$(prop WatchdogUSec)" "1min"
is "Restart=on-failure" "$(prop Restart)" "on-failure"
is "RestartPreventExitStatus=78 (pcpd's EX_CONFIG: no restart for what only the admin can fix)" \
    "$(prop RestartPreventExitStatus)" "78"
is "no RuntimeDirectory= (pcpd keeps nothing in /run)" "$(prop RuntimeDirectory)" ""
is "After=network.target" "$(prop After | tr ' ' '\n' | grep -x network.target)" network.target
is "network.target is not pulled in (no Wants=/Requires=)" \
    "$( (prop Wants; prop Requires) | tr ' ' '\n' | grep -cx network.target)" 0
docs=$(prop Documentation | tr -d '"')
equals "Documentation= names the four manual pages" "$docs" \
    'man:pcpd(8) man:pcpd.conf(5) man:pcpctl(1) man:org.freedesktop.PCP1(5)'
for d in $docs; do
    page=${d#man:}; sec=${page##*(}; sec=${sec%)}; page=${page%(*}
    check "the page of Documentation= is installed: $d" test -s "$ROOT/usr/share/man/man$sec/$page.$sec"
done

# ---- 6. the network, polkit, a mapping -------------------------------------------------------
log_phase "mapping through the refserver"
check "pcpd finds the default router and is ready" wait_cmd 30 "State ready" bus_state_ready
status=$(prop StatusText)
is "STATUS= an admin reads in systemctl status" "$status" 'ready, 1 server\(s\), 0 mapping\(s\)'
equals "systemctl status shows it" "$(cx systemctl status --no-pager pcpd.service | grep -F 'Status:' | sed 's/^ *//')" \
    "Status: \"$status\""

# alice: in pcpd-users, no session: allowed by the shipped rule only
start_holder alice alice 8080
check "alice (in pcpd-users, no session) gets a mapping through the refserver" \
    wait_for "$WORK/alice.out" "^state active $EXT_ADDR [0-9]+ $ALICE_UID " 30 "alice's mapping active"
read -r EXT NONCE <<<"$(ref_mapping 8080)"
is "the refserver holds it: $C_ADDR:8080 -> $EXT_ADDR:${EXT:-}, nonce ${NONCE:-}" "${EXT:-}/${NONCE:-}" '[0-9]+/[0-9a-f]{24}'
app=$(grep -m1 '^state active' "$WORK/alice.out" | awk '{print $6}')
is "pcpd names the caller's unit from its /proc/<pid>/cgroup (why no ProtectProc=)" "$app" "$NAME-alice(\.service)?"
check "pcpctl list (root) shows it" sh -c "nsenter -t $LEADER -a pcpctl list | grep -E ':8080.*:$EXT'"

# bob: no session, not in pcpd-users: the action's defaults refuse
start_holder bob bob 8081
check "bob (no session, not in pcpd-users) is refused: NotAuthorized" \
    wait_for "$WORK/bob.out" '^error org\.freedesktop\.PCP1\.Error\.NotAuthorized' 30 "bob's refusal"
is "no mapping upstream for bob" "$(ref_mapping 8081)" ""
check "usermod -aG pcpd-users bob" cx usermod -aG pcpd-users bob
start_holder bob2 bob 8081
check "bob, now in pcpd-users, gets the mapping at his next request (nothing restarted)" \
    wait_for "$WORK/bob2.out" "^state active $EXT_ADDR " 30 "bob's mapping"
stop_holder bob2
check "bob's service stopped: his mapping is deleted at the router" wait_cmd 30 "no mapping of 8081" \
    eval '[ -z "$(ref_mapping 8081)" ]'

# the journal, with pcpd's fields (pcpd.8, LOGGING)
cx journalctl -u pcpd.service -o json --no-pager >"$WORK/journal.json"
check "journalctl -u pcpd: ready (MESSAGE_ID c3bddf41...)" /usr/bin/python3 -c '
import json, sys
es = [json.loads(l) for l in open(sys.argv[1])]
assert any(e.get("MESSAGE_ID") == "c3bddf41639f40bd9a4fc118999031fd" for e in es), "no ready event"
' "$WORK/journal.json"
check "journalctl -u pcpd: alice's mapping requested and granted, with the PCPD_* fields" /usr/bin/python3 -c '
import json, sys
path, uid, ext, server, app, pcpd_uid = sys.argv[1:]
es = [json.loads(l) for l in open(path)]
def events(mid):
    return [e for e in es if e.get("MESSAGE_ID") == mid and e.get("PCPD_INTERNAL_PORT") == "8080"]
assert events("b90c2e973a064e4dab2ec99139d2a369"), "no \"mapping requested\" event for port 8080"
got = events("90bbefd3de5d435d8969b1af5d8a0a42")
assert got, "no \"mapping granted\" event for port 8080"
e = got[-1]
want = {"PCPD_UID": uid, "PCPD_PROTOCOL": "tcp", "PCPD_EXTERNAL": ext, "_SYSTEMD_UNIT": "pcpd.service",
        "_UID": pcpd_uid}
for k, v in want.items():
    assert e.get(k) == v, f"{k}={e.get(k)!r}, expected {v!r}: {e}"
assert e.get("PCPD_SERVER", "").startswith(server), e
assert e.get("PCPD_APP_ID", "").startswith(app), e
for k in ("PCPD_MAPPING", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC"):
    assert e.get(k), f"{k} missing: {e}"
print(e["MESSAGE"])
' "$WORK/journal.json" "$ALICE_UID" "$EXT_ADDR:${EXT:-}" "$R_ADDR" "$NAME-alice" "$PCPD_UID"

# ---- 7. reload, restart, stop/start, a crash: alice keeps her port ---------------------------
log_phase "reload"
pid=$(main_pid)
journal_count() { cx journalctl -u pcpd.service -o cat --no-pager | grep -cF -- "$1"; }
bus_u32() { cx busctl get-property org.freedesktop.PCP1 /org/freedesktop/PCP1 org.freedesktop.PCP1.Manager "$1"; }
reloads=$(journal_count 'Configuration reloaded')
mkdir -p "$ROOT/etc/pcpd/pcpd.conf.d"
printf '[Daemon]\nDefaultLifetime=900\nMaxMappingsPerUser=5\n' >"$ROOT/etc/pcpd/pcpd.conf.d/50-test.conf"
check "systemctl reload pcpd (a drop-in changes DefaultLifetime and MaxMappingsPerUser)" \
    cx systemctl reload pcpd.service
check "journal: pcpd re-read its configuration" wait_cmd 20 "the reload message" \
    eval '[ "$(journal_count "Configuration reloaded")" -gt "$reloads" ]'
is "the reload applied DefaultLifetime=900" "$(bus_u32 DefaultLifetime)" "u 900"
is "the reload applied MaxMappingsPerUser=5" "$(bus_u32 MaxMappingsPerUser)" "u 5"
is "reload does not kill pcpd (same MainPID, active)" "$(main_pid) $(cx systemctl is-active pcpd.service)" "$pid active"
is "after the reload the refserver has alice's mapping, same nonce" "$(ref_mapping 8080)" "$EXT $NONCE"
is "alice did not see pcpd go" "$(grep -c pcpd-gone "$WORK/alice.out")" 0
check "after the reload: STATUS= is pcpd's state again" wait_cmd 20 "the status" \
    eval '[[ "$(prop StatusText)" =~ ^ready,\ [0-9]+\ server ]]'

# an invalid file: nothing changes, the journal and the status say why
failures=$(journal_count 'Reload failed')
printf '[Daemon]\nDefaultLifetime=5\n' >"$ROOT/etc/pcpd/pcpd.conf.d/60-bad.conf"
out=$(cx systemctl reload pcpd.service 2>&1)
is "systemctl reload pcpd with an invalid drop-in fails (ExecReload= waits for pcpd's answer)" "$?:$out" \
    '1:.*(failed|error).*'
is "the failed reload left the unit active" "$(cx systemctl is-active pcpd.service)" active
# busctl's line is looked up in the whole journal, not by unit or identifier: journald
# reads a line's unit from /proc/PID/cgroup, and a busctl that has already exited leaves
# the line without _SYSTEMD_UNIT (systemd#2913); looked up by -u, then by -u or -t busctl,
# it was missed after 20 s in 2 of ~9 runs on a loaded machine. What the check is about is
# that busctl's error, naming the file, reaches the journal at all. The cap is generous;
# when it still fails, the lines about the reload are printed with their fields.
BAD_RELOAD_SAYS="The configuration is invalid, nothing was changed: /etc/pcpd/pcpd.conf.d/60-bad.conf"
busctl_says() { cx journalctl -o cat --no-pager | grep -qF -- "$1"; }
check "journal: the unit's ExecReload= (busctl) says why, naming the file" wait_cmd 60 "the busctl error" \
    busctl_says "$BAD_RELOAD_SAYS"
if ! busctl_says "$BAD_RELOAD_SAYS"; then
    note "the journal's lines about the reload (not found above):"
    cx journalctl -o verbose --no-pager --since=-3min 2>&1 | grep -E '^[A-Z][a-z]{2} |MESSAGE=|_SYSTEMD_UNIT=|SYSLOG_IDENTIFIER=|_PID=' |
        grep -iE -B3 -A3 'busctl|invalid|reload' | tail -n 60 | sed 's/^/#   /'
fi
check "journal: the reload failed, naming the file and the value" wait_cmd 20 "the failure message" \
    eval '[ "$(journal_count "60-bad.conf: [Daemon] DefaultLifetime=5")" -gt "$failures" ]'
is "systemctl status shows the failed reload" "$(prop StatusText)" 'Reload failed, old configuration kept: .*60-bad.conf.*'
is "the invalid reload changed nothing (DefaultLifetime still 900)" "$(bus_u32 DefaultLifetime)" "u 900"
is "pcpd still runs after the invalid reload (same MainPID)" "$(main_pid) $(cx systemctl is-active pcpd.service)" "$pid active"
is "after the invalid reload the refserver has alice's mapping, same nonce" "$(ref_mapping 8080)" "$EXT $NONCE"
rm -f "$ROOT/etc/pcpd/pcpd.conf.d/60-bad.conf"
reloads=$(journal_count 'Configuration reloaded')
check "systemctl reload pcpd once the file is fixed" cx systemctl reload pcpd.service
check "journal: reloaded" wait_cmd 20 "the reload message" \
    eval '[ "$(journal_count "Configuration reloaded")" -gt "$reloads" ]'

log_phase "declared mappings"
# the administrator's file, applied by a reload, kept across the restart and stop/start below
mkdir -p "$ROOT/etc/pcpd/mappings.d"
printf '[Mapping]\nProtocol=tcp\nPort=8554\nExternalPort=8554\nDescription=IP camera\n' \
    >"$ROOT/etc/pcpd/mappings.d/camera.conf"
reloads=$(journal_count 'Configuration reloaded')
check "systemctl reload pcpd with a new /etc/pcpd/mappings.d/camera.conf" cx systemctl reload pcpd.service
check "journal: reloaded" wait_cmd 20 "the reload message" \
    eval '[ "$(journal_count "Configuration reloaded")" -gt "$reloads" ]'
check "the declared mapping is made at the router" wait_cmd 30 "a mapping of 8554" eval '[ -n "$(ref_mapping 8554)" ]'
read -r CAM_EXT CAM_NONCE <<<"$(ref_mapping 8554)"
declared_active() { nsenter -t "$LEADER" -a pcpctl list --no-pager --full | grep -E ":8554 .* active .*declared:camera"; }
check "pcpctl list shows it active and declared:camera" wait_cmd 30 "the declared mapping active" declared_active
is "the declared mapping is persistent, of uid 0" "$(cx busctl get-property org.freedesktop.PCP1 \
    "$(cx busctl get-property org.freedesktop.PCP1 /org/freedesktop/PCP1 org.freedesktop.PCP1.Manager DeclaredMappings \
    | sed -n 's/.*"camera" "[^"]*" "\([^"]*\)".*/\1/p')" org.freedesktop.PCP1.Mapping Persistent)" "b true"
is "alice's mapping untouched by that reload" "$(ref_mapping 8080)" "$EXT $NONCE"
# polkit's challenge, with the real polkitd (tests/bus/test-authorisation.py ChallengeTest
# has it with the polkitd mock). org.freedesktop.PCP1.configure is auth_admin_keep and the
# shipped rule lets pcpd-users only map: for alice polkitd answers "authentication
# required" (is_challenge), and pcpd's answer depends on whether the call allowed
# interactive authorisation. No process of alice's has an authentication agent.
declared() {
    cx busctl get-property org.freedesktop.PCP1 /org/freedesktop/PCP1 org.freedesktop.PCP1.Manager DeclaredMappings
}
declared_before=$(declared)
polkit_cursor=$(cx journalctl -u polkit.service -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p')
# polkitd's own answer, as root asks it for a process of alice's (flags 0, and 1:
# AllowUserInteraction): (is_authorized, is_challenge, details)
cx runuser -u alice -- sh -c 'echo $$; exec sleep 300' >"$WORK/alice-sleep.out" 2>&1 </dev/null &
BG_PIDS+=($!)
check "a process of alice's to ask polkitd about" wait_for "$WORK/alice-sleep.out" '^[0-9]+$' 20 "alice's sleep"
alice_pid=$(head -n 1 "$WORK/alice-sleep.out")
alice_start=$(cx cat "/proc/$alice_pid/stat" | awk '{ print $22 }')
polkit_check() { # polkit_check FLAGS: CheckAuthorization of configure for alice's process
    cx busctl --timeout=60 call org.freedesktop.PolicyKit1 /org/freedesktop/PolicyKit1/Authority \
        org.freedesktop.PolicyKit1.Authority CheckAuthorization '(sa{sv})sa{ss}us' \
        unix-process 3 pid u "$alice_pid" start-time t "$alice_start" uid i "$ALICE_UID" \
        org.freedesktop.PCP1.configure 0 "$1" "" 2>&1
}
answer=$(polkit_check 0)
note "polkitd, configure for alice, no interaction: $answer"
is "polkitd: configure for alice without interaction: not authorized, a challenge" "$answer" \
    '\(bba\{ss\}\) false true .*'
answer=$(polkit_check 1)
note "polkitd, configure for alice, interaction allowed, no agent: $answer"
is "polkitd: configure for alice with interaction but no agent: not authorized, a challenge" "$answer" \
    '\(bba\{ss\}\) false true .*'
[[ $alice_pid =~ ^[0-9]+$ ]] && [ "$alice_pid" -gt 1 ] && cx kill "$alice_pid"
# pcpctl --no-ask-password: the call does not allow interactive authorisation
out=$(cx timeout 120 runuser -u alice -- pcpctl --no-ask-password declare mine tcp 9000 2>&1 </dev/null)
equals "alice may not declare (configure: auth_admin), --no-ask-password: pcpd says to allow interaction, pcpctl what to do" \
    "$out" "Failed to declare: Authentication is required; call again allowing interactive authorisation. (pcpctl was run with --no-ask-password: where polkit would ask for a password, run it without that option, or as root.)"
# pcpctl without it allows interactive authorisation; its standard input is no terminal,
# so it starts no pkttyagent: polkitd has no agent to ask
out=$(cx timeout 120 runuser -u alice -- pcpctl declare mine tcp 9000 2>&1 </dev/null)
equals "alice may not declare, interaction allowed but no agent: pcpd says no agent could ask" "$out" \
    "Failed to declare: Authentication is required, and no authentication agent could ask for it: run this as root, or from a session with a polkit authentication agent."
equals "nothing declared: DeclaredMappings unchanged" "$(declared)" "$declared_before"
check "nothing declared: no /var/lib/pcpd/mappings.d/mine.conf" not_running_dir /var/lib/pcpd/mappings.d/mine.conf
note "polkitd's journal meanwhile: $(cx journalctl -u polkit.service --after-cursor="$polkit_cursor" --no-pager -o cat | tr '\n' '|')"
# the control: what alice is allowed (map) she still gets
start_holder alice-ctl alice 8083
check "the control: alice still maps (port 8083)" \
    wait_for "$WORK/alice-ctl.out" "^state active $EXT_ADDR [0-9]+ $ALICE_UID " 30 "alice's mapping of 8083 active"
stop_holder alice-ctl
check "the control's mapping is deleted at the router when it stops" wait_cmd 30 "no mapping of 8083" \
    eval '[ -z "$(ref_mapping 8083)" ]'
# An authentication agent that answers: pcpctl on a terminal starts pkttyagent for itself
# (clients/pcpctl-bus.c), and polkitd asks it for an administrator's password: root's
# (Debian's 50-default.rules names the group sudo, which has no member here, and polkitd
# then falls back to root). The container's root has none: a random one for this run,
# locked again after. polkitd uses a --fallback agent only for a subject in a logind
# session (polkit 122, get_authentication_agent_for_subject), so pcpctl passes --fallback
# only in a session (su, whose PAM stack has pam_systemd; --session-command: su's -c would
# call setsid, leaving pcpctl without the controlling terminal pkttyagent opens), and
# without one (setpriv) starts it without: it is asked in both.
# pty_run PASSWORD COMMAND...: COMMAND with a new terminal as its controlling one;
# PASSWORD typed at each "Password: " prompt. Prints its output without colours, exits
# with its status.
pty_run() {
    /usr/bin/python3 - "$@" <<'PY'
import os, pty, re, select, signal, sys, termios, time
password, argv = sys.argv[1].encode(), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out, since, prompted, cap = b"", 0, False, 120
deadline = time.monotonic() + cap
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        sys.stdout.write(out.decode(errors="replace") + "\npty_run: no end after %d s\n" % cap)
        sys.exit(124)
    # pkttyagent prints its prompt, then turns echo off with TCSAFLUSH, which drops what
    # was typed before: type once echo is off (the master reads the terminal's settings)
    if prompted and not termios.tcgetattr(fd)[3] & termios.ECHO:
        os.write(fd, password + b"\n")
        since, prompted = len(out), False
    if not select.select([fd], [], [], 0.05 if prompted else left)[0]:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:  # EIO: the terminal's last holder is gone
        data = b""
    if not data:
        break
    out += data
    if re.search(rb"Password: ?$", out[since:]):
        prompted, since = True, len(out)
status = os.waitpid(pid, 0)[1]
out = re.sub(rb"\x1b\[[0-9;]*m", b"", out).replace(b"\r\n", b"\n")
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
PY
}
CX=(nsenter -t "$LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
# alice_session PASSWORD ARGS...: pcpctl ARGS as alice in a login session, on a terminal
alice_session() { pty_run "$1" "${CX[@]}" su alice -s /bin/sh --session-command "pcpctl ${*:2}"; }
# alice_nosession PASSWORD ARGS...: the same without a login session
alice_nosession() { pty_run "$1" "${CX[@]}" setpriv --reuid=alice --regid=alice --init-groups pcpctl "${@:2}"; }
polkit_journal() { cx journalctl -u polkit.service --after-cursor="$polkit_cursor" --no-pager -o cat; }
polkit_logged() { polkit_journal | grep -qE -- "$1" || { polkit_journal | tail -n 20; return 1; }; }
agents() { polkit_journal | grep '^Registered Authentication Agent for unix-process:.*\[pkttyagent '; }
# agent_count: pkttyagent registrations since the cursor; last_agent: the last one's command line
agent_count() { agents | wc -l; }
last_agent() { agents | tail -n 1 | sed -n 's/.*\[\(pkttyagent [^]]*\)\].*/\1/p'; }
new_cursor() { polkit_cursor=$(cx journalctl -u polkit.service -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p'); }
ROOT_PW=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
check "root gets a password (for polkit's auth_admin)" sh -c "echo 'root:$ROOT_PW' | ${CX[*]} chpasswd"
# without a login session
new_cursor
out=$(alice_nosession "not-$ROOT_PW" declare mine tcp 9000)
note "pcpctl declare as alice on a terminal, no login session, a wrong password (status $?): $(tr '\n' '|' <<<"$out")"
check "no login session: pcpctl's pkttyagent registered with polkitd (its journal)" \
    wait_cmd 20 "pkttyagent's registration in polkitd's journal" eval '[ "$(agent_count)" -ge 1 ]'
is "no login session: pkttyagent started without --fallback (its command line in polkitd's journal)" \
    "$(last_agent)" 'pkttyagent --notify-fd [0-9]+'
check "no login session: pkttyagent asks for root's password" grep -qx 'Authenticating as: root' <<<"$out"
equals "no login session, a wrong password: polkit said no" "$(tail -n 1 <<<"$out")" \
    "Failed to declare: You are not allowed to do this (polkit said no)."
check "no login session: polkitd's journal: the operator FAILED to authenticate" \
    wait_cmd 20 "polkitd's failure line" \
    polkit_logged 'FAILED to authenticate to gain authorization for action org\.freedesktop\.PCP1\.configure '
equals "nothing declared: DeclaredMappings unchanged" "$(declared)" "$declared_before"
check "nothing declared: no /var/lib/pcpd/mappings.d/mine.conf" not_running_dir /var/lib/pcpd/mappings.d/mine.conf
new_cursor
out=$(alice_nosession "$ROOT_PW" declare mine tcp 9000)
note "pcpctl declare as alice on a terminal, no login session, root's password (status $?): $(tr '\n' '|' <<<"$out")"
check "no login session: pkttyagent asks for root's password" grep -qx 'Authenticating as: root' <<<"$out"
is "no login session, root's password: declared" "$(tail -n 1 <<<"$out")" "Declared mine: mapping [0-9]+( \\(requested; pcpctl declare --wait follows it\\))?\."
check "no login session: polkitd's journal: authenticated as root, a temporary authorization for pcpctl's bus name" \
    wait_cmd 20 "polkitd's success line" polkit_logged 'successfully authenticated as unix-user:root to gain TEMPORARY authorization for action org\.freedesktop\.PCP1\.configure for system-bus-name::[0-9.]+ \[pcpctl declare mine tcp 9000\] \(owned by unix-user:alice\)'
check "no login session: alice's declaration is saved in /var/lib/pcpd/mappings.d: pcpd, 0600" \
    stat_is "$ROOT/var/lib/pcpd/mappings.d/mine.conf" "$PCPD_UID 600"
check "the router holds it" wait_cmd 30 "a mapping of 9000" eval '[ -n "$(ref_mapping 9000)" ]'
check "pcpctl undeclare mine (root)" cx pcpctl undeclare mine
check "undeclared: deleted at the router" wait_cmd 30 "no mapping of 9000" eval '[ -z "$(ref_mapping 9000)" ]'
check "undeclared: its file is gone" not_running_dir /var/lib/pcpd/mappings.d/mine.conf
equals "undeclared: DeclaredMappings as before" "$(declared)" "$declared_before"
# in a login session
new_cursor
out=$(alice_session "not-$ROOT_PW" declare mine tcp 9000)
note "pcpctl declare as alice in a login session, a wrong password (status $?): $(tr '\n' '|' <<<"$out")"
check "in a session: pcpctl's pkttyagent registered with polkitd (its journal)" \
    wait_cmd 20 "pkttyagent's registration in polkitd's journal" eval '[ "$(agent_count)" -ge 1 ]'
is "in a session: pkttyagent started with --fallback (its command line in polkitd's journal)" \
    "$(last_agent)" 'pkttyagent --notify-fd [0-9]+ --fallback'
check "in a session pkttyagent asks for root's password" grep -qx 'Authenticating as: root' <<<"$out"
equals "a wrong password: polkit said no" "$(tail -n 1 <<<"$out")" \
    "Failed to declare: You are not allowed to do this (polkit said no)."
check "polkitd's journal: the operator FAILED to authenticate" wait_cmd 20 "polkitd's failure line" \
    polkit_logged 'FAILED to authenticate to gain authorization for action org\.freedesktop\.PCP1\.configure '
equals "nothing declared: DeclaredMappings unchanged" "$(declared)" "$declared_before"
check "nothing declared: no /var/lib/pcpd/mappings.d/mine.conf" not_running_dir /var/lib/pcpd/mappings.d/mine.conf
new_cursor
out=$(alice_session "$ROOT_PW" declare mine tcp 9000)
note "pcpctl declare as alice in a login session, root's password (status $?): $(tr '\n' '|' <<<"$out")"
is "root's password: declared" "$(tail -n 1 <<<"$out")" "Declared mine: mapping [0-9]+( \\(requested; pcpctl declare --wait follows it\\))?\."
check "polkitd's journal: authenticated as root, a temporary authorization for pcpctl's bus name" \
    wait_cmd 20 "polkitd's success line" polkit_logged 'successfully authenticated as unix-user:root to gain TEMPORARY authorization for action org\.freedesktop\.PCP1\.configure for system-bus-name::[0-9.]+ \[pcpctl declare mine tcp 9000\] \(owned by unix-user:alice\)'
check "alice's declaration is saved in /var/lib/pcpd/mappings.d: pcpd, 0600" \
    stat_is "$ROOT/var/lib/pcpd/mappings.d/mine.conf" "$PCPD_UID 600"
check "the router holds it" wait_cmd 30 "a mapping of 9000" eval '[ -n "$(ref_mapping 9000)" ]'
check "pcpctl undeclare mine (root)" cx pcpctl undeclare mine
check "undeclared: deleted at the router" wait_cmd 30 "no mapping of 9000" eval '[ -z "$(ref_mapping 9000)" ]'
check "root's password is locked again" cx usermod -p '*' root
check "pcpctl declare as root" cx pcpctl declare web tcp 8443 --description=web
check "it is saved in /var/lib/pcpd/mappings.d: pcpd, 0600" stat_is "$ROOT/var/lib/pcpd/mappings.d/web.conf" "$PCPD_UID 600"
check "the router holds it" wait_cmd 30 "a mapping of 8443" eval '[ -n "$(ref_mapping 8443)" ]'
check "pcpctl undeclare web" cx pcpctl undeclare web
check "undeclared: deleted at the router" wait_cmd 30 "no mapping of 8443" eval '[ -z "$(ref_mapping 8443)" ]'
check "undeclared: its file is gone" not_running_dir /var/lib/pcpd/mappings.d/web.conf

log_phase "restart"
requests_before=$(wc -l <"$WORK/ref.log")
m=$(mark alice)
check "systemctl restart pcpd" cx systemctl restart pcpd.service
check "alice sees pcpd go and come back, asks again, is active on the same port" wait_back alice "$m" "$EXT"
is "the refserver after the restart: one mapping, same external port, old nonce" "$(ref_mapping 8080)" "$EXT $NONCE"
check "the restart never deleted it upstream (no lifetime 0 with the old nonce)" /usr/bin/python3 -c '
import json, sys
reqs = [json.loads(l) for l in list(open(sys.argv[1]))[int(sys.argv[2]):]]
mine = [r for r in reqs if r.get("nonce") == sys.argv[3]]
assert mine, "no request with the old nonce after the restart"
assert all(r.get("lifetime", 1) > 0 for r in mine), mine
' "$WORK/ref.log" "$requests_before" "$NONCE"
check "after the restart the declared mapping is active again" wait_cmd 30 "the declared mapping active" declared_active
is "the declared mapping after the restart: same external port, old nonce" "$(ref_mapping 8554)" "$CAM_EXT $CAM_NONCE"

log_phase "stop/start"
check "systemctl stop pcpd" cx systemctl stop pcpd.service
is "inactive after stop" "$(cx systemctl is-active pcpd.service)" "inactive"
check "StateDirectory= /var/lib/pcpd: pcpd, 0700" stat_is "$ROOT/var/lib/pcpd" "$PCPD_UID 700"
check "the state file: pcpd, 0600 (UMask=0077)" stat_is "$ROOT/var/lib/pcpd/mappings.state" "$PCPD_UID 600"
m=$(mark alice)
check "systemctl start pcpd" cx systemctl start pcpd.service
check "alice is back on the same port after stop/start" wait_back alice "$m" "$EXT"
check "the declared mapping from mappings.d is active after start" wait_cmd 30 "the declared mapping active" declared_active
is "the declared mapping after stop/start: same external port, old nonce" "$(ref_mapping 8554)" "$CAM_EXT $CAM_NONCE"

log_phase "crash"
pid=$(main_pid)
restarts=$(prop NRestarts)
m=$(mark alice)
check "kill -KILL pcpd" signal_pcpd KILL "$pid"
check "Restart=on-failure: a killed pcpd is started again" wait_cmd 30 "a new MainPID" new_main_pid "$pid"
is "NRestarts counted it" "$(prop NRestarts)" "$((restarts + 1))"
check "alice is back on the same port after the crash" wait_back alice "$m" "$EXT"
is "the refserver after the crash: same port, old nonce" "$(ref_mapping 8080)" "$EXT $NONCE"

# ---- 8. the watchdog --------------------------------------------------------------------
# a short interval for this phase only (a drop-in): the keep-alives must arrive, and a
# pcpd that stops answering must be killed and started again
log_phase "watchdog"
DROPINS=$ROOT/etc/systemd/system/pcpd.service.d
mkdir -p "$DROPINS"
# (LimitCORE=0: the watchdog's SIGABRT must not leave a core dump anywhere)
printf '[Service]\nWatchdogSec=2s\nLimitCORE=0\n' >"$DROPINS/50-test-watchdog.conf"
cx systemctl daemon-reload
cx systemctl restart pcpd.service
pid=$(main_pid)
restarts=$(prop NRestarts)
ts=$(prop WatchdogTimestampMonotonic)
pings=0
for i in $(seq 150); do # 30 s at most; 3 keep-alives take 3 s
    t=$(prop WatchdogTimestampMonotonic)
    [ "$t" != "$ts" ] && { pings=$((pings + 1)); ts=$t; }
    [ $pings -ge 3 ] && break
    sleep 0.2
done
# the timestamp is also reset by a start: the same process must have sent them
is "WATCHDOG=1 from the main loop: 3 keep-alives from one pcpd (WatchdogSec=2s)" \
    "$pings $(main_pid) $(prop NRestarts)" "3 $pid $restarts"
check "kill -STOP pcpd" signal_pcpd STOP "$pid"
check "a hung pcpd is killed by the watchdog" wait_cmd 30 "the watchdog timeout" journal_has 'Watchdog timeout'
check "... and started again" wait_cmd 30 "a new MainPID" new_main_pid "$pid"
rm "$DROPINS/50-test-watchdog.conf"
cx systemctl daemon-reload

# ---- 9. the sandbox, from inside ------------------------------------------------------
# pcpd-test-probe runs as an ExecStartPost= of pcpd.service itself (same user,
# namespaces and seccomp filter), and as bob in a plain unit: the control. It writes what
# it found to /var/lib/pcpd/probe.txt, the one directory the unit lets pcpd write to
# (StateDirectory=; pcpd reads only its own files there), removed once read.
log_phase "hardening"
for d in /etc/pcpd-test-rw /usr/local/pcpd-test-rw /var/lib/pcpd-test-rw /home/pcpd-test-rw; do
    install -d -m 1777 "$ROOT$d" # writable by anyone: only a sandbox can refuse
done
mkdir -p "$ROOT/usr/lib/modules/pcpd-test"
cx touch /tmp/pcpd-test-marker
probe_args="--udp $R_ADDR --udp $O_ADDR"
cat >"$DROPINS/50-test-probe.conf" <<EOF
[Service]
ExecStartPost=/bin/sh -c '/usr/local/libexec/pcpd-test/pcpd-test-probe --leave-shm $probe_args > /var/lib/pcpd/probe.txt'
EOF
cx systemctl daemon-reload
udp_before=$(wc -l <"$WORK/udp.log")
m=$(mark alice)
cx systemctl restart pcpd.service
cx cat /var/lib/pcpd/probe.txt >"$WORK/probe.txt"
cx rm -f /var/lib/pcpd/probe.txt
in_unit -p User=bob -p StateDirectory=pcpd-test-control /usr/local/libexec/pcpd-test/pcpd-test-probe \
    >"$WORK/control.txt"
check "the probe ran in pcpd's sandbox" grep -qx done=1 "$WORK/probe.txt"
check "the probe ran as bob in a plain unit (the control)" grep -qx done=1 "$WORK/control.txt"
pv() { sed -n "s/^$1=//p" "$WORK/probe.txt"; }
cv() { sed -n "s/^$1=//p" "$WORK/control.txt"; }
# proven: the sandbox gives the expected answer AND the control another one
proven() { # proven DIRECTIVE KEY SANDBOX-REGEX
    local s c
    s=$(pv "$2")
    c=$(cv "$2")
    if [[ $s =~ ^($3)$ ]] && ! [[ $c =~ ^($3)$ ]]; then
        ok "$1: $2=$s (control: $c)"
    else
        notok "$1: $2" "sandbox: '$s' (expected '$3')" "control: '$c' (expected anything else)"
    fi
}
# where an unprivileged process is refused anyway: the sandbox's answer only, and why
same() { # same DIRECTIVE KEY SANDBOX-REGEX WHY
    local s
    s=$(pv "$2")
    if [[ $s =~ ^($3)$ ]]; then
        ok "$1: $2=$s (control: $(cv "$2"), $4)"
    else
        notok "$1: $2" "sandbox: '$s' (expected '$3')"
    fi
}
gid=$(cx id -g pcpd)
is "User=pcpd: real, effective, saved and file system uid" "$(pv Uid)" "$PCPD_UID,$PCPD_UID,$PCPD_UID,$PCPD_UID"
is "Group=pcpd, no other group" "$(pv Gid)/$(pv Groups)" "$gid,$gid,$gid,$gid/$gid"
proven "CapabilityBoundingSet=" CapBnd 0000000000000000
is "no capability at all: CapEff, CapPrm, CapInh, CapAmb" "$(pv CapEff)$(pv CapPrm)$(pv CapInh)$(pv CapAmb)" \
    "(0000000000000000){4}"
proven "NoNewPrivileges=yes" NoNewPrivs 1
# systemd-nspawn gives every process of the container a seccomp filter already (the
# control has one): the unit's filters come on top, and refuse what the container allows
is "SystemCallFilter=: seccomp filters on top of the container's" \
    "$([ "$(pv Seccomp)" = 2 ] && [ "$(pv Seccomp_filters)" -gt "$(cv Seccomp_filters)" ] && echo more)" more
proven "SystemCallFilter=@system-service, SystemCallErrorNumber=EPERM: ptrace (@debug)" ptrace_traceme EPERM
proven "SystemCallFilter=~@resources: setpriority" setpriority EPERM
# an i386 call proves the filter only where the kernel runs i386 calls at all (IA32
# emulation; some kernels are built or booted without it, and then the control fails too)
if [ "$(cv i386_syscall)" = ok ]; then
    proven "SystemCallArchitectures=native: an i386 system call" i386_syscall "SIGSYS|failed"
else
    n=$((n + 1))
    echo "ok $n - SystemCallArchitectures=native: not provable on this kernel: an i386 system call fails without the filter too (control: $(cv i386_syscall), sandbox: $(pv i386_syscall)) # SKIP the kernel has no IA32 emulation"
fi
proven "ProtectSystem=strict: / read-only" mount_root ro
proven "ProtectSystem=strict: writing under /etc" write_etc EROFS
proven "ProtectSystem=strict: writing under /usr" write_usr EROFS
proven "ProtectSystem=strict: writing under /var" write_var EROFS
is "StateDirectory=: \$STATE_DIRECTORY writable" "$(pv write_state)/$(pv mount_state)" "ok/rw"
proven "UMask=0077: a file created 0666" umask_file_mode 0600
proven "ProtectHome=yes: /home" home_visible "EACCES|ENOENT"
proven "PrivateTmp=yes: the container's /tmp file is not there" tmp_marker ENOENT
is "PrivateTmp=yes: its own /tmp and /var/tmp are writable" "$(pv write_tmp)/$(pv write_var_tmp)" "ok/ok"
proven "PrivateDevices=yes: no /dev/net/tun" dev_net_tun ENOENT
is "PrivateDevices=yes: /dev/null is there" "$(pv dev_null)" ok
same "ProtectKernelTunables=yes: /sys read-only" mount_sys ro "systemd-nspawn mounts /sys and /proc/sys read-only"
proven "ProtectKernelModules=yes: /usr/lib/modules" modules_visible "EACCES|ENOENT"
same "ProtectControlGroups=yes: /sys/fs/cgroup read-only" mount_cgroup ro "systemd-nspawn mounts it read-only"
proven "ProcSubset=pid: /proc/meminfo" proc_meminfo ENOENT
is "ProcSubset=pid: other processes' /proc/<pid> readable (app ids)" "$(pv proc_pid1_cgroup)" ok
proven "LockPersonality=yes: personality()" personality EPERM
proven "MemoryDenyWriteExecute=yes: a W+X mmap" mmap_wx EPERM
proven "MemoryDenyWriteExecute=yes: mprotect to X" mprotect_x EPERM
proven "RestrictSUIDSGID=yes: chmod u+s on its own file" chmod_suid EPERM
proven "RestrictNamespaces=yes: unshare(CLONE_NEWUSER)" unshare_user EPERM
proven "RestrictAddressFamilies=: AF_PACKET" af_packet EAFNOSUPPORT
proven "RestrictAddressFamilies=: AF_VSOCK" af_vsock EAFNOSUPPORT
is "RestrictAddressFamilies=: AF_INET, AF_INET6, AF_UNIX, AF_NETLINK allowed" \
    "$(pv af_inet)$(pv af_inet6)$(pv af_unix)$(pv af_netlink)" okokokok
same "RestrictRealtime=yes: SCHED_FIFO" sched_fifo EPERM "RLIMIT_RTPRIO is 0 for users anyway"
same "ProtectClock=yes: clock_settime" clock_settime EPERM "no CAP_SYS_TIME anyway"
same "ProtectKernelLogs=yes: syslog(2)" syslog EPERM "kernel.dmesg_restrict refuses users anyway"
same "ProtectKernelLogs=yes: /dev/kmsg" dev_kmsg ENOENT "the container has none"
same "KeyringMode=private: the session keyring" session_keyring ".*" "reported only"
is "no IP filter in the shipped unit (a router can be anywhere): UDP to $O_ADDR sent" "$(pv "udp_$O_ADDR")" ok
# the daemon itself, from outside
pid=$(main_pid)
st=$(cx cat "/proc/$pid/status")
is "pcpd itself: uid pcpd" "$(sed -n 's/^Uid:\s*//p' <<<"$st" | awk '{print $1}')" "$PCPD_UID"
is "pcpd itself: CapEff 0, CapBnd 0" "$(sed -n 's/^Cap\(Eff\|Bnd\):\s*//p' <<<"$st" | tr '\n' ' ')" \
    "0000000000000000 0000000000000000 "
is "pcpd itself: NoNewPrivs 1, Seccomp 2" \
    "$(sed -n 's/^NoNewPrivs:\s*//p' <<<"$st") $(sed -n 's/^Seccomp:\s*//p' <<<"$st")" "1 2"
is "pcpd itself: / read-only in its mount namespace" \
    "$(cx awk '$5 == "/" { print substr($6, 1, 2) }' "/proc/$pid/mountinfo" | tail -n 1)" ro
is "ProtectHostname=yes: its own UTS namespace" \
    "$([ "$(cx readlink /proc/1/ns/uts)" != "$(cx readlink "/proc/$pid/ns/uts")" ] && echo own)" own
is "PrivateMounts= (and the rest): its own mount namespace" \
    "$([ "$(cx readlink /proc/1/ns/mnt)" != "$(cx readlink "/proc/$pid/ns/mnt")" ] && echo own)" own
check "RemoveIPC=yes: the probe's SysV segment is there while pcpd runs" shm_of_pcpd
cx systemctl stop pcpd.service
check "RemoveIPC=yes: ... and gone once pcpd stops" wait_cmd 10 "no segment of pcpd" no_shm_of_pcpd

# an admin's allow list (pcpd.8, SERVICE): the BPF filter applies to the service
cat >"$DROPINS/60-test-ip.conf" <<EOF
[Service]
IPAddressDeny=any
IPAddressAllow=localhost $R_ADDR
EOF
cx systemctl daemon-reload
cx systemctl start pcpd.service
cx cat /var/lib/pcpd/probe.txt >"$WORK/probe-ip.txt"
cx rm -f /var/lib/pcpd/probe.txt
is "IPAddressAllow=$R_ADDR in a drop-in: UDP to the router sent" \
    "$(sed -n "s/^udp_$R_ADDR=//p" "$WORK/probe-ip.txt")" ok
is "IPAddressDeny=any in a drop-in: UDP to $O_ADDR refused" "$(sed -n "s/^udp_$O_ADDR=//p" "$WORK/probe-ip.txt")" EPERM
check "with the allow list pcpd still maps through $R_ADDR: alice back on her port" wait_back alice "$m" "$EXT"
# by now the sink has printed every datagram that arrived (alice's mapping came after)
check "the peer received datagrams to $O_ADDR only from the run without the filter" /usr/bin/python3 -c '
import sys
lines = open(sys.argv[1]).read().splitlines()[int(sys.argv[2]):]
to_o = [l for l in lines if l.startswith(sys.argv[3] + " <- ")]
to_r = [l for l in lines if l.startswith(sys.argv[4] + " <- ")]
assert len(to_o) == 1 and len(to_r) == 2, f"expected 1 datagram to {sys.argv[3]} and 2 to {sys.argv[4]}: {lines}"
' "$WORK/udp.log" "$udp_before" "$O_ADDR" "$R_ADDR"
rm -f "$DROPINS"/*.conf
cx systemctl daemon-reload
cx systemctl restart pcpd.service

# ---- 10. the exposure, live ---------------------------------------------------------------
log_phase "systemd-analyze security"
sec=$(cx systemd-analyze security --no-pager pcpd.service 2>&1)
exposure=$(sed -n 's/.*Overall exposure level for pcpd.service: \([0-9.]*\).*/\1/p' <<<"$sec")
note "live: Overall exposure level for pcpd.service: $exposure"
# at most 1.5: ProtectProc=, PrivateUsers= and an IP allow list would each cost a feature
# (the comments in pcpd.service); systemd/test-unit.py holds the offline figure to it too
is "systemd-analyze security pcpd (live): exposure at most 1.5" "$exposure" '0\.[0-9]|1\.[0-5]'

# ---- 11. polkit: the owner annotation is what lets a non-root pcpd ask ---------------------
log_phase "polkit owner"
cx sed -i '/org.freedesktop.policykit.owner/d' /usr/share/polkit-1/actions/org.freedesktop.PCP1.policy
cx systemctl restart polkit.service
start_holder alice2 alice 8082
check "without org.freedesktop.policykit.owner even alice is refused (the bug of issue 11)" \
    wait_for "$WORK/alice2.out" '^error org\.freedesktop\.PCP1\.Error\.NotAuthorized .*(trusted callers|action owner)' 30 \
    "the refusal"
echo "# the admin's own line" >>"$ROOT/etc/pcpd/pcpd.conf"
DESTDIR= meson install -C "$BUILD" --no-rebuild --destdir "$ROOT" >"$WORK/install2.log" 2>&1
cx systemctl restart polkit.service
start_holder alice3 alice 8082
check "with it (installed again) alice gets port 8082 mapped" \
    wait_for "$WORK/alice3.out" "^state active $EXT_ADDR " 30 "alice's second mapping"
check "installing again kept the admin's /etc/pcpd/pcpd.conf" grep -qx "# the admin's own line" "$ROOT/etc/pcpd/pcpd.conf"

# ---- 12. enable; the end of the holders --------------------------------------------------
log_phase "enable"
check "systemctl enable --now pcpd" cx systemctl enable --now pcpd.service
is "systemctl is-enabled pcpd" "$(cx systemctl is-enabled pcpd.service)" enabled
check "wanted by multi-user.target" test -L "$ROOT/etc/systemd/system/multi-user.target.wants/pcpd.service"
rm -f "$ROOT/etc/pcpd/mappings.d/camera.conf"
check "systemctl reload pcpd after camera.conf was removed" cx systemctl reload pcpd.service
check "the removed declaration's mapping is deleted at the router" wait_cmd 30 "no mapping of 8554" \
    eval '[ -z "$(ref_mapping 8554)" ]'
stop_holder alice
stop_holder alice3
check "when alice's services stop, their mappings are deleted at the router" \
    wait_cmd 30 "no mapping at the refserver" ref_empty
# (its ExecReload= busctl logged the one invalid reload at err: pcpd itself must log none)
is "pcpd's own messages are told by _EXE (its ready messages)" \
    "$(cx journalctl _SYSTEMD_UNIT=pcpd.service _EXE=/usr/libexec/pcpd --no-pager -o cat | grep -c ' ready (state in ')" \
    '[1-9][0-9]*'
is "no error logged by pcpd" "$(cx journalctl _SYSTEMD_UNIT=pcpd.service _EXE=/usr/libexec/pcpd -p err --no-pager -o cat)" ""
is "the one error in the unit is the invalid reload, by busctl" \
    "$(cx journalctl _SYSTEMD_UNIT=pcpd.service -p err --no-pager -o cat | grep -vc "^Call failed: The configuration is invalid")" 0

# ---- 13. the system bus goes away and comes back -----------------------------------------
# pcpd exits 1 when it loses its bus connection (pcpd(8), EXIT STATUS), and the unit's
# Restart=on-failure with RestartSec=2s starts it again on the new bus, where it restores
# its mappings from the state directory. Twice, the two ways it happens on a host: an
# admin's systemctl restart dbus (dbus-daemon stops on SIGTERM and starts again at once),
# and a dbus-daemon that dies (SIGKILL: Debian's dbus.service has no Restart=, its
# dbus.socket goes back to listening and the next connection, pcpd's or another
# client's, starts the bus again). Last in the script: it takes the bus from every
# client in the container (logind, polkitd, the holders), so nothing after it may
# depend on them.
log_phase "system bus restart"
check "pcpctl declare nas tcp 8445 (a persistent mapping, kept in the state directory)" \
    cx pcpctl declare nas tcp 8445 --description=nas
check "the router holds nas" wait_cmd 30 "a mapping of 8445" eval '[ -n "$(ref_mapping 8445)" ]'
read -r NAS_EXT NAS_NONCE <<<"$(ref_mapping 8445)"
nas_active() { nsenter -t "$LEADER" -a pcpctl list --no-pager --full | grep -E ":8445 .* active .*declared:nas"; }
check "pcpctl list shows nas active and declared" wait_cmd 30 "nas active" nas_active
start_holder alice4 alice 8080
check "alice maps port 8080 again (a new holder)" \
    wait_for "$WORK/alice4.out" "^state active $EXT_ADDR [0-9]+ $ALICE_UID " 30 "alice's mapping active"
read -r A_EXT A_NONCE <<<"$(ref_mapping 8080)"
is "the refserver holds alice's 8080: $EXT_ADDR:${A_EXT:-}, nonce ${A_NONCE:-}" "${A_EXT:-}/${A_NONCE:-}" \
    '[0-9]+/[0-9a-f]{24}'

dbus_pid() { cx systemctl show -p MainPID --value dbus.service; }
# the bus's own answer: the process that owns org.freedesktop.PCP1 (never activates pcpd)
pcp1_owner_pid() {
    cx busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
        GetConnectionUnixProcessID s org.freedesktop.PCP1 | awk '{ print $2 }'
}
pcp1_owned_by() { [ "$(pcp1_owner_pid)" = "$1" ]; }
new_dbus() { # new_dbus OLD: another dbus-daemon runs the system bus
    local p
    p=$(dbus_pid)
    [ "$p" != 0 ] && [ "$p" != "$1" ] && cx systemctl is-active -q dbus.service
}
gone() { ! cx test -e "/proc/$1"; }
# bus_lost HOW HOLDER NEXT: take the bus away (HOW: restart or kill), then check that pcpd
# went, came back on the new bus, and restored the persistent mapping; the holder HOLDER
# loses the bus too, and a new one, NEXT, asks again for alice's port
bus_lost() {
    local how=$1 holder=$2 next=$3 pid restarts dpid lost exits readies requests_before
    pid=$(main_pid)
    restarts=$(prop NRestarts)
    dpid=$(dbus_pid)
    lost=$(journal_count 'Lost the connection to the system bus')
    exits=$(journal_count 'Main process exited, code=exited, status=1/FAILURE')
    readies=$(journal_count ' ready (state in ')
    requests_before=$(wc -l <"$WORK/ref.log")
    note "pcpd $pid (NRestarts $restarts) on dbus-daemon $dpid; $how the bus"
    case $how in
    restart) check "systemctl restart dbus.service" cx systemctl restart dbus.service ;;
    kill) check "kill -KILL dbus-daemon ($dpid)" cx kill -KILL "$dpid" ;;
    esac
    check "$how: pcpd logs that it lost the system bus" wait_cmd 30 "the bus-lost warning" \
        eval '[ "$(journal_count "Lost the connection to the system bus")" -gt "$lost" ]'
    check "$how: the old pcpd ($pid) exited, status 1" wait_cmd 30 "the exit" \
        eval 'gone "$pid" && [ "$(journal_count "Main process exited, code=exited, status=1/FAILURE")" -gt "$exits" ]'
    check "$how: Restart=on-failure starts pcpd again (a new MainPID)" wait_cmd 60 "a new MainPID" new_main_pid "$pid"
    is "$how: NRestarts counted it" "$(prop NRestarts)" "$((restarts + 1))"
    check "$how: a new dbus-daemon runs the system bus" wait_cmd 30 "a new dbus.service MainPID" new_dbus "$dpid"
    pid=$(main_pid)
    check "$how: the new pcpd ($pid) owns org.freedesktop.PCP1 on the new bus" wait_cmd 30 "the name's owner" \
        pcp1_owned_by "$pid"
    check "$how: the new pcpd said READY=1 and logged ready" wait_cmd 30 "ready" \
        eval '[ "$(prop SubState)" = running ] && [ "$(journal_count " ready (state in ")" -gt "$readies" ]'
    check "$how: the new pcpd is ready on the bus (State)" wait_cmd 30 "State ready" bus_state_ready
    check "$how: the new pcpd renewed nas with its old nonce" wait_cmd 30 "a request with nas's nonce" \
        /usr/bin/python3 -c '
import json, sys
reqs = [json.loads(l) for l in list(open(sys.argv[1]))[int(sys.argv[2]):]]
mine = [r for r in reqs if r.get("nonce") == sys.argv[3]]
assert mine, "no request with the old nonce since the bus went"
assert all(r.get("lifetime", 1) > 0 for r in mine), mine
' "$WORK/ref.log" "$requests_before" "$NAS_NONCE"
    is "$how: the refserver has nas: same external port, old nonce" "$(ref_mapping 8445)" "$NAS_EXT $NAS_NONCE"
    check "$how: pcpctl list (over the new bus) shows nas active and declared" wait_cmd 30 "nas active" nas_active
    # alice's holder lost the bus too; her mapping waits the grace period for her
    check "$how: alice's holder lost the bus as well" wait_for "$WORK/$holder.out" '^error bus ' 30 "the holder's end"
    start_holder "$next" alice 8080
    check "$how: alice asks again within the grace period: active on her port" \
        wait_for "$WORK/$next.out" "^state active $EXT_ADDR $A_EXT $ALICE_UID " 30 "alice's mapping back"
    is "$how: the refserver has alice's 8080: same external port, old nonce" "$(ref_mapping 8080)" "$A_EXT $A_NONCE"
    check "$how: alice's mapping was never deleted upstream (no lifetime 0 with its nonce)" /usr/bin/python3 -c '
import json, sys
reqs = [json.loads(l) for l in list(open(sys.argv[1]))[int(sys.argv[2]):]]
gone = [r for r in reqs if r.get("nonce") == sys.argv[3] and r.get("lifetime", 1) == 0]
assert not gone, gone
' "$WORK/ref.log" "$requests_before" "$A_NONCE"
}
pcpd_journal() { cx journalctl -u pcpd.service -o short-monotonic --no-pager; }
journal_before=$(pcpd_journal | wc -l)
bus_lost restart alice4 alice5
bus_lost kill alice5 alice6
note "pcpd.service's journal through the bus losses (the lines about its stops and starts):"
pcpd_journal | tail -n +"$((journal_before + 1))" |
    grep -E 'Lost the connection|Main process exited|Failed with result|Scheduled restart|Started |ready \(state in' |
    sed 's/^/#   /'
note "after the bus losses: the container is $(cx systemctl is-system-running 2>&1)," \
    "failed units: $(cx systemctl --failed --no-legend --plain | awk '{ print $1 }' | tr '\n' ' ')"
is "no error logged by pcpd through the bus losses" \
    "$(cx journalctl _SYSTEMD_UNIT=pcpd.service _EXE=/usr/libexec/pcpd -p err --no-pager -o cat)" ""
stop_holder alice6
cx pcpctl undeclare nas >/dev/null 2>&1

# ---- 14. a configuration a restart cannot fix ----------------------------------------------
# pcpd exits 78 (EX_CONFIG) on a bad pcpd.conf and the unit's RestartPreventExitStatus=78
# leaves it failed. Restart=on-failure with RestartSec=2s alone started it again every 2 s
# for ever: at most 5 starts fall in any 10 s, so the start limit (5 in 10 s) never trips.
# After the checks of pcpd's errors above: this logs one (the bad configuration). It needs
# only the container's systemd and a system bus (back since section 13).
log_phase "bad configuration"
check "systemctl stop pcpd" cx systemctl stop pcpd.service
check "systemctl reset-failed pcpd (NRestarts from 0)" cx systemctl reset-failed pcpd.service
is "NRestarts 0 before the start with a bad pcpd.conf" "$(prop NRestarts)" 0
cp -p "$ROOT/etc/pcpd/pcpd.conf" "$WORK/pcpd.conf.good"
printf '[Daemon]\nDefaultLifetime=soon\n' >"$ROOT/etc/pcpd/pcpd.conf"
BAD_CONFIG_SAYS='Bad configuration, not starting: /etc/pcpd/pcpd.conf: [Daemon] DefaultLifetime=soon '
bad_config_lines=$(journal_count "$BAD_CONFIG_SAYS")
# --no-block: the test waits for the unit's state, not for the start job (with a unit
# that restarts pcpd every 2 s there is no end to wait for)
check "systemctl start --no-block pcpd with a bad pcpd.conf" cx systemctl start --no-block pcpd.service
# failed_for_good: failed, never restarted, pcpd's last exit 78; prints the state otherwise
failed_for_good() {
    local s
    s=$(cx systemctl show -p ActiveState -p SubState -p Result -p NRestarts -p ExecMainCode -p ExecMainStatus \
        pcpd.service | sort | tr '\n' ' ')
    echo "$s"
    [[ $s =~ ^ActiveState=failed\ ExecMainCode=1\ ExecMainStatus=78\ NRestarts=0\ Result=exit-code\ SubState=failed\ $ ]]
}
check "bad pcpd.conf: the unit is failed, not restarted (NRestarts=0), pcpd exited 78" \
    wait_cmd 60 "pcpd.service failed with ExecMainStatus=78, NRestarts=0" failed_for_good
is "bad pcpd.conf: systemctl is-failed" "$(cx systemctl is-failed pcpd.service)" failed
check "bad pcpd.conf: systemctl status says status=78/CONFIG (pcpd(8), EXIT STATUS)" \
    sh -c "nsenter -t $LEADER -a systemctl status --no-pager pcpd.service | grep -F 'status=78/CONFIG'"
is "bad pcpd.conf: pcpd said why once (journal), naming the file and the value" \
    "$(($(journal_count "$BAD_CONFIG_SAYS") - bad_config_lines))" 1
cp -p "$WORK/pcpd.conf.good" "$ROOT/etc/pcpd/pcpd.conf"
check "pcpd.conf restored: systemctl start pcpd" cx timeout 120 systemctl start pcpd.service
is "pcpd.conf restored: active" "$(cx systemctl is-active pcpd.service)" active
check "pcpd.conf restored: ready on the bus (State)" wait_cmd 30 "State ready" bus_state_ready

log_phase "done"
echo "1..$n"
note "system tests: $((n - failed)) passed, $failed failed in $(elapsed) s"
[ "$failed" -eq 0 ]
