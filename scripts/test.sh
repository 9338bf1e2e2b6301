#!/bin/bash
# The whole test suite, as CI runs it (README's second Quick start command):
#   1. install what is needed (scripts/install-deps.sh)
#   2. build with gcc and run every meson test (unit, bus, integration); build with clang
#      and with gcc --buildtype=release;
#      build the clients alone (-Ddaemon=false) and run pcpctl --help from that build
#   3. the C unit tests again under valgrind (memcheck), and pcpd under memcheck in the
#      bus tests
#   4. build again with ASan+UBSan and run the tests again
#   5. build the libFuzzer targets with clang and run each for a bounded time
#   6. the system tests: pcpd installed into a container booting Debian's systemd
#   7. the GNOME app's GUI tests under Xvfb, in the gcc and the ASan+UBSan builds
# Ends with one line "tests: N passed, M failed". Exit status 0 only if all passed.
#
# Environment: PCPD_FUZZ_SECONDS (per target, default 20), PCPD_SKIP_ASAN=1,
# PCPD_SKIP_VALGRIND=1 and PCPD_SKIP_FUZZ=1 for quick local runs (refused when CI=true).
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

./scripts/install-deps.sh || exit 1

if [ "${CI:-}" = true ] && { [ -n "${PCPD_SKIP_ASAN:-}" ] || [ -n "${PCPD_SKIP_FUZZ:-}" ] || [ -n "${PCPD_SKIP_VALGRIND:-}" ]; }; then
    echo "test.sh: PCPD_SKIP_* is not allowed in CI" >&2
    exit 1
fi

passed=0
failed=0
status=0
failed_names=() # what failed, repeated at the end (a CI log shows its tail)

# count the results of one meson test run from its JSON log
count_results() {
    local log=$1
    [ -f "$log" ] || return 0
    local p f
    p=$(grep -c '"result": "OK"' "$log" || true)
    f=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
    passed=$((passed + p))
    failed=$((failed + f))
    local name
    while IFS= read -r name; do
        [ -n "$name" ] && failed_names+=("$log: $name")
    done < <(/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        t = json.loads(line)
    except ValueError:
        continue
    if t.get("result") in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"):
        # why, in the run'"'"'s last lines (a CI log may show only its tail): the test'"'"'s
        # last lines that say what failed, else its last lines
        out = (t.get("stdout") or "").splitlines()
        why = [l.strip() for l in out if any(k in l for k in ("FAIL", "not ok", "Assertion", "ERROR", "rror:"))]
        why = (why or [l.strip() for l in out if l.strip()])[-3:]
        print(t.get("name"), t.get("result"), ("-- " + " | ".join(w[:1200] for w in why)) if why else "")
' "$log")
}

run_suite() { # run_suite BUILDDIR [meson setup args...]
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; status=1; failed=$((failed + 1)); failed_names+=("$dir: meson setup"); return; }
    fi
    if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
        cat "$dir.build.log"
        status=1; failed=$((failed + 1)); failed_names+=("$dir: build"); return
    fi
    # -t 3: a meson time-out is a cap against hangs, not a speed; a loaded machine and the
    # sanitizers make tests several times slower (pcpctl-usage took over 30 s so)
    meson test -C "$dir" --print-errorlogs --num-processes 2 -t 3 || status=1
    count_results "$dir/meson-logs/testlog.json"
    check_replays "$dir/meson-logs/testlog.json"
}

# every fuzz target (tests/fuzz/fuzz-*.c) ran as a corpus replay (suite
# fuzz-replay, tests/fuzz/README.md): a target left out of tests/fuzz/meson.build, or
# replays not built, fail the run instead of passing unseen
check_replays() {
    local log=$1 missing
    missing=$(/usr/bin/python3 -c '
import glob, json, os, sys
want = {os.path.basename(f)[:-2] for f in glob.glob("tests/fuzz/fuzz-*.c")}
try:
    lines = open(sys.argv[1]).readlines()
except OSError as e:
    sys.exit("all (%s)" % e)
for line in lines:
    try:
        t = json.loads(line)
    except ValueError:
        continue
    name = t.get("name", "").rsplit(" / ", 1)[-1]
    # a replay that ran and failed is counted (and named) by count_results already: only
    # the ones that did not run, or skipped, are reported here
    if "fuzz-replay" in t.get("name", "") and t.get("result") != "SKIP" and name.endswith("-replay"):
        want.discard(name[:-len("-replay")])
print(" ".join(sorted(want)))
' "$log" 2>&1)
    if [ -n "$missing" ]; then
        echo "$log: no corpus replay ran for: $missing" >&2
        failed=$((failed + 1)); status=1; failed_names+=("$log: fuzz targets whose corpus replay did not run: $missing")
    fi
}

echo "== build and test (gcc)"
run_suite build

# the whole tree with clang as well (warnings are errors there too); built, not tested
echo "== build with clang"
if { [ -f build-clang/build.ninja ] || CC=clang meson setup build-clang >build-clang.setup.log 2>&1; } &&
    ninja -C build-clang >build-clang.build.log 2>&1; then
    passed=$((passed + 1))
else
    cat build-clang.setup.log build-clang.build.log 2>/dev/null | tail -n 60
    failed=$((failed + 1)); status=1; failed_names+=("build-clang: build")
fi

# the whole tree optimised (--buildtype=release: -O3), as a packager may build it: gcc finds
# other warnings at -O3 (maybe-uninitialized, format-overflow) that -O0 hides, and warnings
# are errors; built, not tested
echo "== build with gcc --buildtype=release"
if { [ -f build-release/build.ninja ] || meson setup build-release --buildtype=release >build-release.setup.log 2>&1; } &&
    ninja -C build-release >build-release.build.log 2>&1; then
    passed=$((passed + 1))
else
    cat build-release.setup.log build-release.build.log 2>/dev/null | tail -n 60
    failed=$((failed + 1)); status=1; failed_names+=("build-release: build")
fi

# the clients alone, as a distribution builds them without the daemon (-Ddaemon=false:
# pcpctl, the desktop app; no libsystemd daemon side, GUPnP, libnm): configured and built
# in a build dir of their own, and pcpctl run once; ~1 min. Any step failing fails the run.
echo "== build the clients only (-Ddaemon=false)"
nodaemon_setup() {
    if [ -f build-nodaemon/build.ninja ]; then
        meson configure build-nodaemon -Ddaemon=false
    else
        meson setup build-nodaemon -Ddaemon=false
    fi
}
if nodaemon_setup >build-nodaemon.setup.log 2>&1 && ninja -C build-nodaemon >build-nodaemon.build.log 2>&1 &&
    build-nodaemon/clients/pcpctl --help >build-nodaemon.pcpctl.log 2>&1 &&
    grep -q '^pcpctl ' build-nodaemon.pcpctl.log; then
    passed=$((passed + 1))
else
    cat build-nodaemon.setup.log build-nodaemon.build.log build-nodaemon.pcpctl.log 2>/dev/null | tail -n 60
    failed=$((failed + 1)); status=1; failed_names+=("build-nodaemon: -Ddaemon=false setup, build or pcpctl --help")
fi

if [ -z "${PCPD_SKIP_VALGRIND:-}" ]; then
    # the C unit tests again under memcheck: leaks and uninitialised reads that the
    # sanitizer build does not see (ASan has no MSan part); ~30 s
    echo "== unit tests under valgrind"
    meson test -C build --no-rebuild --suite unit --suite refserver --print-errorlogs --num-processes 2 -t 4 \
        --logbase valgrind --wrapper "valgrind --error-exitcode=1 --leak-check=full \
--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --quiet" || status=1
    # meson names the log after --logbase and the wrapper's program: valgrind-valgrind.json
    count_results build/meson-logs/valgrind-valgrind.json
    check_replays build/meson-logs/valgrind-valgrind.json
    # and the daemon itself under memcheck through the bus tests and the NetworkManager
    # mock's (pcpdtest.py fails a test
    # when valgrind reports an error at pcpd's clean shutdown); bus-scale is left out: it is
    # about load, and memcheck would make it the slowest test of the run
    echo "== bus tests with pcpd under valgrind"
    PCPD_VALGRIND=1 meson test -C build --no-rebuild --print-errorlogs --num-processes 2 -t 3 \
        --logbase valgrind-bus bus-manager bus-ownership bus-authorisation bus-restart bus-drops \
        bus-socket-options bus-direct bus-introspection bus-crash bus-state-dir \
        bus-socket-proof bus-app-id bus-reload bus-declared bus-modules nm-pcpd-mock || status=1
    count_results build/meson-logs/valgrind-bus.json
    # the UPnP-IGD backend under memcheck: upnp-driver in every tests/upnp test (~40 s)
    echo "== upnp tests with pcpd-upnp under valgrind"
    PCPD_UPNP_VALGRIND=1 meson test -C build --no-rebuild --suite upnp --print-errorlogs --num-processes 2 -t 3 \
        --logbase valgrind-upnp || status=1
    count_results build/meson-logs/valgrind-upnp.json
fi

if [ -z "${PCPD_SKIP_ASAN:-}" ]; then
    echo "== build and test under ASan+UBSan"
    run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false
fi

if [ -z "${PCPD_SKIP_FUZZ:-}" ]; then
    echo "== fuzz (clang, libFuzzer + ASan + UBSan)"
    if ./scripts/fuzz.sh "${PCPD_FUZZ_SECONDS:-20}"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); status=1; failed_names+=("fuzz: scripts/fuzz.sh")
    fi
fi

# pcpd installed as a system service into a container that boots Debian 12's systemd:
# activation, polkit, the sandbox, restarts (tests/system/run.sh, TAP; needs root; the
# container root is built once, ~30 s to 4 min, and cached in /var/cache)
echo "== system tests (systemd-nspawn)"
./tests/system/run.sh build-system >build-system.log 2>&1
rc=$?
cat build-system.log
p=$(grep -c '^ok ' build-system.log || true)
f=$(grep -c '^not ok ' build-system.log || true)
passed=$((passed + p))
failed=$((failed + f))
while IFS= read -r line; do failed_names+=("system: $line"); done < <(grep '^not ok ' build-system.log)
if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ "$f" -eq 0 ]; then
    failed=$((failed + 1)) # stopped before its checks (Bail out!)
    failed_names+=("system: stopped before its checks (rc $rc)")
fi
[ $rc -eq 0 ] || [ $rc -eq 77 ] || status=1

# The GNOME app's GUI tests (clients/gnome/tests, suite "gui"): one Xvfb around the whole
# run, in the gcc build and in the ASan+UBSan one. The default test setup leaves the suite
# out of the runs above, which have no X server.
echo "== GUI tests (Xvfb)"
gui_dirs=build
[ -n "${PCPD_SKIP_ASAN:-}" ] || gui_dirs="build build-asan"
for dir in $gui_dirs; do
    [ -f "$dir/build.ninja" ] || continue
    if [ ! -x "$dir/clients/gnome/pcpd-port-forwarding" ]; then
        echo "$dir: the GNOME app was not built (-Dgnome=disabled, or GTK 4/libadwaita missing)" >&2
        if [ "${CI:-}" = true ]; then failed=$((failed + 1)); status=1; failed_names+=("$dir: GUI app not built"); fi
        continue
    fi
    log="$dir/meson-logs/testlog-gui.json" # meson names the log after the setup
    rm -f "$log"
    xvfb-run -a -s "-screen 0 1280x1024x24 -nolisten tcp" \
        meson test -C "$dir" --no-rebuild --setup gui --suite gui --print-errorlogs || status=1
    [ -f "$log" ] || { echo "$dir: the GUI tests did not run (Xvfb?)" >&2; failed=$((failed + 1)); status=1; failed_names+=("$dir: GUI tests did not run"); }
    count_results "$log"
    ls "$dir"/clients/gnome/tests/gui-*.png 2>/dev/null | sed 's/^/screenshot: /'
done

for name in "${failed_names[@]}"; do echo "failed: $name"; done
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit $status
