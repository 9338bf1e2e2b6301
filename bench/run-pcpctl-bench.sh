#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# pcpctl as a whole process next to another PCP client's command-line tool asking the same
# PCP server for the same kind of mapping (issue 9: "pcpctl map udp P --wait --persistent
# as a whole process <= 2x libpcp's CLI for the same mapping").
#
#   sudo bench/run-pcpctl-bench.sh --libpcp PATH [--runs N] [--server responder|refserver]
#                                  [--build DIR] [--out DIR] [--counts]
#                                  [--pcpctl PATH]
#
#   --libpcp PATH  libpcp's CLI (pcp_app/, built as `pcpnatpmpc` by its CMake build);
#                  called as PATH -d -s SERVER:PORT -i :P -u -l 3600 (one MAP, UDP, to the
#                  same server pcpd uses, no discovery)
#   --runs N       timed runs of each command (default 50), after 3 untimed rounds
#   --server S     the PCP server: responder (bench-daemon's stateless one, default) or
#                  refserver (tests/refserver: it refuses a second request for a port with
#                  another nonce, which libpcp's CLI sends now and then when it is slow)
#   --build DIR    build directory (default: build/ in the source tree)
#   --out DIR      where the raw figures go (default: a new directory under /tmp)
#   --pcpctl PATH  the pcpctl measured (default: the build directory's; e.g. an older
#                  build, for before and after on the same pcpd)
#   --counts       also one run of each under callgrind (instructions of the whole process,
#                  loader included) and one under strace -f -c (system calls): the figures
#                  that do not move with the machine's load (needs valgrind and strace)
#
# bench-daemon (exec phase) starts a private system-type dbus-daemon, the PCP server on a
# unique loopback address and pcpd, and runs this script again inside that environment.
# Each round then runs, in an order that rotates from round to round:
#   pcpctl map udp P --wait --persistent   (its mapping is released afterwards, untimed)
#   libpcp's CLI mapping UDP port P' at the same server directly
#   pcpctl status
#   bench-sdbus-floor ping                 (libsystemd, connect, Hello, one Peer.Ping to pcpd)
#   bench-sdbus-floor linked               (libsystemd loaded and relocated, nothing else)
#   /bin/true                              (the cost of fork, exec and wait alone)
# each through bench-spawn (fork, exec, wait4: wall clock and the child's CPU), output to
# a file, never a terminal. Prints medians, quartiles, the ratio and the load average.
# Needs root (pcpd asks no polkit then). Every process is started here or by bench-daemon
# and stopped by PID.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1-}" = --inner ]; then
    # ---- inside bench-daemon's environment ----
    shift
    BUILD=$1 LIBPCP=$2 RUNS=$3 OUT=$4 COUNTS=$5 PCPCTL=$6
    SPAWN=$BUILD/bench/bench-spawn
    FLOOR=$BUILD/bench/bench-sdbus-floor
    SERVER=$(sed -n 's/^Servers=//p' "$BENCH_TMP/pcpd.conf")
    [ -n "$SERVER" ] || { echo "run-pcpctl-bench: no server in $BENCH_TMP/pcpd.conf" >&2; exit 1; }
    echo "server $SERVER, pcpd pid $PCPD_PID, bus pid $BUS_PID"
    uptime | sed 's/^/load before: /'

    run() { # run NAME ROUND CMD...: one timed run, its line appended to $OUT/NAME.txt
        local name=$1 round=$2 line
        shift 2
        if [ "${spawn_wrapped-}" = yes ]; then # $SPAWN holds the whole prefix (a tool)
            line=$($SPAWN "$@")
            cp "$OUT/stdout-count" "$OUT/stdout-$name"
        else
            line=$("$SPAWN" -o "$OUT/stdout-$name" -- "$@")
        fi
        set -- $line
        if [ "$4" != 0 ]; then
            echo "run-pcpctl-bench: $name (round $round) exited with status $4; its output:" >&2
            cat "$OUT/stdout-$name" >&2
            exit 1
        fi
        [ "$round" -lt 0 ] || echo "$line" >> "$OUT/$name.txt"
    }
    map_and_release() {
        local round=$1 port=$((31000 + $1 + 3)) id
        run pcpctl_map "$round" "$PCPCTL" map udp "$port" --wait --persistent
        id=$("$PCPCTL" --no-legend list | awk -v p="127.0.0.1:$port" '$3 == p { print $1 }')
        [ -n "$id" ] || { echo "run-pcpctl-bench: the mapping of port $port is not listed" >&2; exit 1; }
        "$PCPCTL" release "$id"
    }
    one() { # one KIND ROUND
        case $1 in
            0) map_and_release "$2" ;;
            1) run libpcp "$2" "$LIBPCP" -d -s "$SERVER" -i ":$((41000 + $2 + 3))" -u -l 3600 ;;
            2) run pcpctl_status "$2" "$PCPCTL" status ;;
            3) run true "$2" /bin/true ;;
            4) run sdbus_linked "$2" "$FLOOR" linked ;;
            5) run sdbus_ping "$2" "$FLOOR" ping ;;
        esac
    }
    for r in -3 -2 -1; do
        for ((k = 0; k < 6; k++)); do one $k $r; done
    done
    if [ "$COUNTS" = yes ]; then
        # instructions (callgrind, the whole process, loader included) and system calls
        # (strace -f -c) of one run of each: figures that do not move with the load
        SPAWN_SAVED=$SPAWN
        for tool in callgrind strace; do
            for ((k = 0; k < 6; k++)); do
                case $k in 0) name=pcpctl_map ;; 1) name=libpcp ;; 2) name=pcpctl_status ;;
                           3) name=true ;; 4) name=sdbus_linked ;; 5) name=sdbus_ping ;; esac
                if [ $tool = callgrind ]; then
                    SPAWN="$SPAWN_SAVED -o $OUT/stdout-count -- valgrind --tool=callgrind --dump-instr=no"
                    SPAWN="$SPAWN --log-file=$OUT/callgrind-$name.log --callgrind-out-file=$OUT/callgrind-$name.out"
                else
                    SPAWN="$SPAWN_SAVED -o $OUT/stdout-count -- strace -f -c -o $OUT/strace-$name.txt"
                fi
                spawn_wrapped=yes one $k $((-100 - k))
            done
            SPAWN=$SPAWN_SAVED
        done
        for name in pcpctl_map libpcp pcpctl_status true sdbus_linked sdbus_ping; do
            echo "RESULT pcpctl_bench.${name}_instructions $(sed -n 's/.*Collected : //p' "$OUT/callgrind-$name.log")"
            echo "RESULT pcpctl_bench.${name}_syscalls $(awk '$NF == "total" { print $4 }' "$OUT/strace-$name.txt")"
        done > "$OUT/counts.txt"
    fi
    for ((r = 0; r < RUNS; r++)); do
        for ((j = 0; j < 6; j++)); do one $(((r + j) % 6)) $r; done
    done
    uptime | sed 's/^/load after: /'
    exit 0
fi

BUILD=$SRC/build
LIBPCP=
RUNS=50
SERVER=responder
OUT=
COUNTS=no
PCPCTL=
while [ $# -gt 0 ]; do
    case $1 in
        --libpcp) LIBPCP=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --server) SERVER=$2; shift 2 ;;
        --build) BUILD=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --counts) COUNTS=yes; shift ;;
        --pcpctl) PCPCTL=$2; shift 2 ;;
        -h|--help) sed -n '3,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-pcpctl-bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case $RUNS in ''|*[!0-9]*|0) echo "run-pcpctl-bench: --runs needs a whole number of at least 1" >&2; exit 2 ;; esac
case $SERVER in refserver|responder) ;; *) echo "run-pcpctl-bench: --server is refserver or responder" >&2; exit 2 ;; esac
[ -n "$LIBPCP" ] || { echo "run-pcpctl-bench: --libpcp PATH is needed (libpcp's CLI)" >&2; exit 2; }
[ -x "$LIBPCP" ] || { echo "run-pcpctl-bench: $LIBPCP is not an executable" >&2; exit 2; }
LIBPCP=$(cd "$(dirname "$LIBPCP")" && pwd)/$(basename "$LIBPCP")
BUILD=$(cd "$BUILD" && pwd)
[ -n "$PCPCTL" ] || PCPCTL=$BUILD/clients/pcpctl
[ -x "$PCPCTL" ] || { echo "run-pcpctl-bench: $PCPCTL is not an executable" >&2; exit 2; }
PCPCTL=$(cd "$(dirname "$PCPCTL")" && pwd)/$(basename "$PCPCTL")
for f in bench/bench-daemon bench/bench-spawn bench/bench-sdbus-floor clients/pcpctl; do
    [ -x "$BUILD/$f" ] || { echo "run-pcpctl-bench: $BUILD/$f is missing (ninja -C $BUILD)" >&2; exit 2; }
done
[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/pcpctl-bench-XXXXXX)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
NAMES="pcpctl_map libpcp pcpctl_status sdbus_ping sdbus_linked true"
for name in $NAMES; do rm -f "$OUT/$name.txt"; done

SERVER_ARGS=()
[ "$SERVER" = refserver ] && SERVER_ARGS=(--server refserver)
"$BUILD/bench/bench-daemon" --build "$BUILD" --source "$SRC" "${SERVER_ARGS[@]}" exec -- \
    "$SRC/bench/run-pcpctl-bench.sh" --inner "$BUILD" "$LIBPCP" "$RUNS" "$OUT" "$COUNTS" "$PCPCTL" | grep -v '^RESULT exec\.'

# ---- the table ----
stats() { # stats FILE COLUMN...: median q1 q3 (ms) of the sum of the columns
    awk -v cols="$2" 'BEGIN { n = split(cols, c, ",") }
        { s = 0; for (i = 1; i <= n; i++) s += $c[i]; print s / 1e6 }' "$1" | sort -g |
        awk '{ x[NR] = $1 }
            function q(p,   i) { i = 1 + (NR - 1) * p; return x[int(i)] + (i - int(i)) * (x[int(i) + 1] - x[int(i)]) }
            END { printf "%.2f %.2f %.2f\n", q(0.5), q(0.25), q(0.75) }'
}
echo
printf '%-42s %8s %17s %8s\n' "command ($RUNS runs each, alternating)" "wall ms" "(q1-q3)" "CPU ms"
for name in $NAMES; do
    read -r wm wq1 wq3 < <(stats "$OUT/$name.txt" 1)
    read -r cm _ _ < <(stats "$OUT/$name.txt" 2,3)
    case $name in
        pcpctl_map) what="pcpctl map udp P --wait --persistent" ;;
        libpcp) what="libpcp CLI: -d -s SERVER -i :P -u -l 3600" ;;
        pcpctl_status) what="pcpctl status" ;;
        sdbus_ping) what="sd-bus floor: connect, Hello, Peer.Ping" ;;
        sdbus_linked) what="sd-bus floor: libsystemd loaded, no call" ;;
        true) what="/bin/true" ;;
    esac
    printf '%-42s %8s %17s %8s\n' "$what" "$wm" "($wq1-$wq3)" "$cm"
    echo "RESULT pcpctl_bench.${name}_wall_ms $wm"
    echo "RESULT pcpctl_bench.${name}_cpu_ms $cm"
    eval "W_$name=$wm; C_$name=$cm"
done
echo "RESULT pcpctl_bench.ratio_map_libpcp_wall $(awk -v a="$W_pcpctl_map" -v b="$W_libpcp" 'BEGIN { printf "%.2f", a / b }')"
echo "RESULT pcpctl_bench.ratio_map_libpcp_cpu $(awk -v a="$C_pcpctl_map" -v b="$C_libpcp" 'BEGIN { printf "%.2f", a / b }')"
if [ "$COUNTS" = yes ]; then
    echo
    printf '%-42s %13s %13s\n' "one run of each" "instructions" "system calls"
    for name in $NAMES; do
        printf '%-42s %13s %13s\n' "$name" "$(awk -v k="pcpctl_bench.${name}_instructions" '$2 == k { print $3 }' "$OUT/counts.txt")" \
            "$(awk -v k="pcpctl_bench.${name}_syscalls" '$2 == k { print $3 }' "$OUT/counts.txt")"
    done
    cat "$OUT/counts.txt"
fi
echo "(raw: $OUT/*.txt, one line per run: wall_ns user_ns system_ns status)"
