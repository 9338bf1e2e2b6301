#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Runs the daemon-level benchmark (bench-daemon) the way bench/README.md describes and
# prints one table with the figures issue 9's performance targets are stated in.
#
#   sudo bench/run-daemon-bench.sh [--repeat N] [--skip-all] [--quick] [--out DIR] [--build DIR]
#
#   --repeat N   wall-clock runs repeated N times (default 3): the table shows the median
#                and the spread (min-max); instruction and system-call counts run once
#   --skip-all   leave out the 131,070-mapping run (about 10 minutes before the restructure)
#   --quick      small sizes (a smoke test of the script, not figures to quote)
#   --out DIR    where the raw output goes (default: a new directory under /tmp)
#   --build DIR  build directory (default: build/ in the source tree; set up if missing)
#   --table DIR  print the table of an earlier run's raw output again, run nothing
#   --nm MODE    none (default) or mock: NetworkManager (python3-dbusmock) on the bus in
#                every run, so pcpd has loaded pcpd-nm.so (bench-daemon --nm)
#
# Needs root (pcpd then asks no polkit), dbus-daemon, valgrind (callgrind_control),
# strace; hyperfine and ltrace are used when installed. Every process is started by
# bench-daemon and killed by PID; nothing else on the machine is touched.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$SRC/build
REPEAT=3
SKIP_ALL=no
QUICK=no
OUT=
TABLE=
NM=none
while [ $# -gt 0 ]; do
    case $1 in
        --repeat) REPEAT=$2; shift 2 ;;
        --skip-all) SKIP_ALL=yes; shift ;;
        --quick) QUICK=yes; shift ;;
        --out) OUT=$2; shift 2 ;;
        --build) BUILD=$2; shift 2 ;;
        --table) TABLE=$2; shift 2 ;;
        --nm) NM=$2; shift 2 ;;
        -h|--help) sed -n '3,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-daemon-bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case $REPEAT in ''|*[!0-9]*|0) echo "run-daemon-bench: --repeat needs a whole number of at least 1" >&2; exit 2 ;; esac
case $NM in none|mock) ;; *) echo "run-daemon-bench: --nm is none or mock" >&2; exit 2 ;; esac

# ---- the table ----
print_table() {
# v KEY: the value (the median over runs whose tag starts with PREFIX), "spread" gives min-max
v() { # v TAGPREFIX KEY
    local vals
    vals=$(awk -v p="$1" -v k="$2" 'index($1, p) == 1 && $2 == k { print $3 }' "$RESULTS" | sort -g)
    if [ -z "$vals" ]; then
        echo "-"
        return
    fi
    echo "$vals" | awk '{ x[NR] = $1 }
        END {
            n = NR
            m = (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
            if (n == 1) print m
            else printf "%s (%s-%s, n=%d)\n", m, x[1], x[n], n
        }'
}

{
echo
echo "pcpd daemon benchmark, $(head -1 "$OUT/machine.txt"), $(nproc) cores; raw output: $OUT"
echo
printf '%-62s %-34s %s\n' "figure" "today (median, spread)" "issue 9 target"
printf '%-62s %-34s %s\n' "------" "----------------------" "--------------"
row() { printf '%-62s %-34s %s\n' "$1" "$2" "$3"; }
row "instructions per mapping (add, grant, release), callgrind" "$(v seq-callgrind seq.instructions_per_mapping_net)" "<= 60,000"
row "  same, stateless responder" "$(v stateless-seq-callgrind seq.instructions_per_mapping_net)" ""
row "instructions per Peer.Ping" "$(v seq-callgrind seq.instructions_per_ping)" ""
row "system calls per mapping (strace -c -f)" "$(v seq-strace seq.syscalls_per_mapping_net)" "<= 12"
row "system calls per Peer.Ping" "$(v seq-strace seq.syscalls_per_ping)" ""
row "bus messages per mapping (monitor)" "$(v seq-strace seq.map.bus_messages_per)" "count and cut"
row "  pcpd's calls to the bus driver per mapping" "$(v seq-strace seq.map.pcpd_calls_to_bus_driver_per)" ""
row "  signals from pcpd per mapping" "$(v seq-strace seq.map.signals_from_pcpd_per)" ""
row "pcpd CPU per mapping, sequential (us)" "$(v rep-seq- seq.map.pcpd_cpu_us_per)" ""
row "dbus-daemon CPU per mapping, sequential (us)" "$(v rep-seq- seq.map.bus_cpu_us_per)" ""
row "Peer.Ping round trip, median (ms)" "$(v rep-seq- seq.ping_median_ms)" ""
row "AddMapping -> active, median (ms)" "$(v rep-seq- seq.add_active_median_ms)" ""
row "  ratio to Ping (same run)" "$(v rep-seq- seq.active_over_ping)" "<= 2"
row "$BURST pipelined Pings, 20 connections (ms)" "$(v rep-burst- burst.pings_ms)" ""
row "$BURST AddMapping at once: all active (ms)" "$(v rep-burst- burst.all_active_ms)" "(was 6,400-7,500)"
row "  ratio to the pings (same run)" "$(v rep-burst- burst.active_over_pings)" "<= 5"
row "  calls refused (LimitsExceeded), first attempt" "$(v rep-burst- burst.refused_first_attempt)" "0"
row "  calls refused, all attempts (re-sent at once)" "$(v rep-burst- burst.refused_calls)" "0"
row "  UDP receive-buffer drops at pcpd" "$(v rep-burst- burst.map.udp_drops)" "0"
row "  pcpd retransmissions" "$(v rep-burst- burst.pcpd_retransmissions)" ""
row "  pcpd CPU per mapping (us)" "$(v rep-burst- burst.map.pcpd_cpu_us_per)" ""
row "  dbus-daemon CPU per mapping (us)" "$(v rep-burst- burst.map.bus_cpu_us_per)" "(was ~300)"
row "  dbus-daemon CPU per Ping (us)" "$(v rep-burst- burst.ping.bus_cpu_us_per)" ""
row "  bus messages per mapping (monitor)" "$(v burst-monitor burst.map.bus_messages_per)" ""
row "engine in-process over UDP, $BURST at once (ms, median of 5)" "$(v udp udp.engine_ms)" ""
row "  bare UDP client, the same requests (ms, median of 5)" "$(v udp udp.bare_ms)" ""
row "  ratio engine / bare" "$(v udp udp.engine_over_bare)" "<= 2"
row "  engine CPU / bare CPU (ms)" "$(v udp udp.engine_cpu_median_ms) / $(v udp udp.bare_cpu_median_ms)" ""
row "RSS at $BURST mappings (KiB)" "$(v rep-burst- burst.held_rss_kib)" "<= 16,384"
row "$HOLD held: longest Ping while one is added/released (ms)" "$(v stall stall.stall_max_ms)" "<= 20 (was 563)"
row "  longest Ping, quiet (ms)" "$(v stall stall.quiet_ping_max_ms)" ""
row "  longest Ping while a holder of 1 leaves (ms)" "$(v stall stall.leave_one_ping_max_ms)" "<= 20"
row "  longest Ping while 100 holders of 1 leave at once (ms)" "$(v stall stall.leave_several_ping_max_ms)" "<= 20"
row "  longest Ping while a holder of 1,000 leaves (ms)" "$(v stall stall.leave_many_ping_max_ms)" "<= 20"
if [ "$SKIP_ALL" = no ]; then
row "$ALL AddMapping at once: all active (ms)" "$(v all all.all_active_ms)" "<= 30,000 (was 542,000)"
row "  calls refused, first attempt / all" "$(v all all.refused_first_attempt) / $(v all all.refused_calls)" "0"
row "RSS at $ALL mappings (KiB)" "$(v all all.held_rss_kib)" "<= 98,304 (was 558 MiB)"
fi
row "idle ${IDLE_S} s, no mappings: system calls" "$(v idle-strace idle.idle.pcpd_syscalls)" "0"
row "idle ${IDLE_S} s, no mappings: voluntary context switches" "$(v rep-idle- idle.idle.pcpd_voluntary_ctxt_switches)" "0"
row "system calls per renewal" "$(v renew-strace renew.renew.pcpd_syscalls_per)" "<= 4"
row "instructions per renewal" "$(v renew-callgrind renew.renew.pcpd_instructions_per)" ""
row "signals per renewal" "$(v renew-strace renew.renew.signals_per)" ""
row "pcpctl map udp P --wait --persistent: wall, warm / cold (ms)" "$(v pcpctl pcpctl.pcpctl_map_warm_median_ms) / $(v pcpctl pcpctl.pcpctl_map_cold_median_ms)" "<= 2x libpcp (was 13.1 vs 4.3)"
row "  its CPU, user + system (ms)" "$(v pcpctl pcpctl.pcpctl_map_warm_cpu_median_ms)" ""
row "pcpctl status: wall, warm / cold (ms)" "$(v pcpctl pcpctl.pcpctl_status_warm_median_ms) / $(v pcpctl pcpctl.pcpctl_status_cold_median_ms)" "(was 11.3)"
row "  its CPU, user + system (ms)" "$(v pcpctl pcpctl.pcpctl_status_warm_cpu_median_ms)" ""
row "busctl call ... Peer.Ping: wall warm / cold, CPU (ms)" "$(v pcpctl pcpctl.busctl_ping_warm_median_ms) / $(v pcpctl pcpctl.busctl_ping_cold_median_ms), $(v pcpctl pcpctl.busctl_ping_warm_cpu_median_ms)" ""
row "dbus-send ... Peer.Ping: wall warm / cold, CPU (ms)" "$(v pcpctl pcpctl.dbus_send_ping_warm_median_ms) / $(v pcpctl pcpctl.dbus_send_ping_cold_median_ms), $(v pcpctl pcpctl.dbus_send_ping_warm_cpu_median_ms)" ""
row "/bin/true: wall warm / cold, CPU (ms)" "$(v pcpctl pcpctl.true_warm_median_ms) / $(v pcpctl pcpctl.true_cold_median_ms), $(v pcpctl pcpctl.true_warm_cpu_median_ms)" ""
} | tee "$OUT/table.txt"
}

if [ -n "$TABLE" ]; then
    OUT=$TABLE
    RESULTS=$OUT/results.txt
    # shellcheck source=/dev/null
    . "$OUT/sizes.sh"
    print_table
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "run-daemon-bench: run as root (the client must need no polkit to map any port)" >&2
    exit 1
fi
missing=()
for t in dbus-daemon valgrind callgrind_control callgrind_annotate strace meson ninja; do
    command -v "$t" >/dev/null || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "run-daemon-bench: missing ${missing[*]} (apt-get install dbus-daemon valgrind strace meson ninja-build)" >&2
    exit 1
fi

[ -d "$BUILD" ] || meson setup "$BUILD" "$SRC" >/dev/null
ninja -C "$BUILD" bench/bench-daemon daemon/pcpd daemon/pcpd-nm.so daemon/pcpd-upnp.so clients/pcpctl tests/refserver/pcp-refserver >/dev/null
BD=$BUILD/bench/bench-daemon
PCPCTL=$BUILD/clients/pcpctl

[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/pcpd-daemon-bench.XXXXXX)
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: > "$RESULTS"


if [ "$QUICK" = yes ]; then
    SEQ=100; SEQ_CG=50; BURST=1000; ALL=5000; HOLD=2000; RENEW=50; RENEW_S=10; IDLE_S=3; PCPCTL_N=5
else
    SEQ=1000; SEQ_CG=200; BURST=10000; ALL=131070; HOLD=30000; RENEW=200; RENEW_S=20; IDLE_S=10; PCPCTL_N=30
fi
echo "BURST=$BURST ALL=$ALL HOLD=$HOLD IDLE_S=$IDLE_S SKIP_ALL=$SKIP_ALL" > "$OUT/sizes.sh"

# run TAG BENCH-ARGS...: one bench-daemon run, its RESULT lines kept with the tag
run() {
    local tag=$1; shift
    echo "-- $tag: bench-daemon $*" >&2
    "$BD" --build "$BUILD" --source "$SRC" --out-dir "$OUT" --nm "$NM" "$@" > "$OUT/$tag.txt" 2>&1 || {
        echo "run-daemon-bench: '$tag' failed; its output:" >&2
        tail -20 "$OUT/$tag.txt" >&2
        exit 1
    }
    sed -n "s/^RESULT /$tag /p" "$OUT/$tag.txt" >> "$RESULTS"
}

# ---- the runs ----
echo "run-daemon-bench: raw output in $OUT" >&2
date -u +"started %Y-%m-%d %H:%M UTC" > "$OUT/machine.txt"
{ uname -srm; nproc; grep -m1 'model name' /proc/cpuinfo || true; uptime; git -C "$SRC" log -1 --oneline || true; } \
    >> "$OUT/machine.txt" 2>/dev/null

# exact counts (run once): instructions, system calls, messages
run seq-callgrind --server refserver --measure callgrind --seq "$SEQ_CG" seq
run stateless-seq-callgrind --server stateless --measure callgrind --seq "$SEQ_CG" seq
run seq-strace --server refserver --measure strace --monitor --seq "$SEQ_CG" seq
run idle-strace --measure strace --idle-seconds "$IDLE_S" idle
run renew-strace --measure strace --renew "$RENEW" --renew-seconds "$RENEW_S" renew
run renew-callgrind --measure callgrind --renew "$RENEW" --renew-seconds "$RENEW_S" renew
run burst-monitor --monitor --burst "$BURST" burst

# wall clock (repeated)
for i in $(seq 1 "$REPEAT"); do
    run "rep-seq-$i" --server refserver --seq "$SEQ" seq
    run "rep-burst-$i" --burst "$BURST" burst
    run "rep-idle-$i" --idle-seconds "$IDLE_S" idle
done
run udp --burst "$BURST" udp
run stall --hold "$HOLD" stall
run pcpctl --pcpctl "$PCPCTL_N" pcpctl
[ "$SKIP_ALL" = yes ] || run all --all "$ALL" all

# ---- where the cost is: profiles kept next to the raw output ----
for f in "$OUT"/callgrind-seq-map.out; do
    [ -f "$f" ] || continue
    callgrind_annotate --inclusive=yes "$f" > "$OUT/seq-map-inclusive.txt" 2>/dev/null || true
    callgrind_annotate "$f" > "$OUT/seq-map-exclusive.txt" 2>/dev/null || true
done

# pcpctl as a process: system calls, dynamic loading, library calls (against a live pcpd)
cat > "$OUT/pcpctl-probe.sh" <<EOF
#!/bin/bash
set -u
cd "$OUT"
strace -f -c -o pcpctl-status.strace "$PCPCTL" status >/dev/null
strace -f -c -o pcpctl-map.strace "$PCPCTL" map udp 32000 --wait --persistent >/dev/null
strace -f -tt -o pcpctl-status.timeline "$PCPCTL" status >/dev/null
LD_DEBUG=statistics "$PCPCTL" status 2> pcpctl-ld-statistics.txt >/dev/null
ldd "$PCPCTL" > pcpctl-ldd.txt
# instructions of the whole process, the dynamic loader included, next to /bin/true
valgrind --tool=callgrind --callgrind-out-file=callgrind-pcpctl-status.out "$PCPCTL" status >/dev/null 2>&1
valgrind --tool=callgrind --callgrind-out-file=callgrind-true.out /bin/true >/dev/null 2>&1
callgrind_annotate --inclusive=yes callgrind-pcpctl-status.out > pcpctl-status-inclusive.txt 2>/dev/null
if command -v ltrace >/dev/null; then
    ltrace -c -o pcpctl-status.ltrace "$PCPCTL" status >/dev/null 2>&1 || true
fi
if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 5 --runs 50 --export-json hyperfine-status.json \
        "$PCPCTL status" \
        "busctl call org.freedesktop.PCP1 /org/freedesktop/PCP1 org.freedesktop.DBus.Peer Ping" \
        "/bin/true" > hyperfine-status.txt 2>&1 || true
fi
EOF
chmod +x "$OUT/pcpctl-probe.sh"
echo "-- pcpctl-probe: bench-daemon exec -- $OUT/pcpctl-probe.sh" >&2
"$BD" --build "$BUILD" --source "$SRC" --nm "$NM" exec -- "$OUT/pcpctl-probe.sh" > "$OUT/pcpctl-probe.txt" 2>&1 || true

print_table
