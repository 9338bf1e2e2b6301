#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# pcp-refserver on a unique 127.x.y.z address (tests can run in parallel), exercised with
# Debian's natpmpc and the ctl commands. TAP output.
#
# Usage: test-loopback.sh PATH-TO-pcp-refserver

set -u

BIN=${1:?usage: test-loopback.sh PATH-TO-pcp-refserver}
n=0
failed=0

ok() {
        n=$((n + 1))
        echo "ok $n - $1"
}
not_ok() {
        n=$((n + 1))
        failed=$((failed + 1))
        echo "not ok $n - $1"
        shift
        for l in "$@"; do echo "# $l"; done
}
check() { # check DESCRIPTION COMMAND...
        local d=$1
        shift
        local out
        if out=$("$@" 2>&1); then ok "$d"; else not_ok "$d" "command: $*" "$out"; fi
}

if ! command -v natpmpc >/dev/null 2>&1; then
        if [ "${CI:-}" = true ]; then
                echo "1..1"
                echo "not ok 1 - natpmpc is missing (apt-get install natpmpc); required in CI"
                exit 1
        fi
        echo "1..0 # SKIP natpmpc not installed (apt-get install natpmpc)"
        exit 0
fi

# 127.a.b.c from our PID: unique among concurrently running tests
pid=$$
ADDR="127.$(((pid / 65024) % 254 + 1)).$(((pid / 254) % 256)).$((pid % 254 + 1))"
TMP=$(mktemp -d /tmp/pcp-refserver-test.XXXXXX)
CTL=$TMP/ctl
LOG=$TMP/log.json
SRV_PID=
cleanup() {
        if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
                kill "$SRV_PID" 2>/dev/null
                wait "$SRV_PID" 2>/dev/null
        fi
        rm -rf "$TMP"
}
trap cleanup EXIT

ctl() { "$BIN" ctl "$CTL" "$@"; }

# Starts the server with extra arguments; waits for "ready" (5 s).
start() {
        "$@" >"$TMP/out" 2>"$TMP/err" &
        SRV_PID=$!
        for _ in $(seq 50); do
                grep -q '^ready$' "$TMP/out" 2>/dev/null && return 0
                kill -0 "$SRV_PID" 2>/dev/null || break
                sleep 0.1
        done
        return 1
}

echo "1..35"
echo "# server address $ADDR"

# ---- bad flags are refused with a message ----
out=$("$BIN" --port 0 2>&1); rc=$?
if [ $rc = 2 ] && [[ $out == *"--port"* ]]; then ok "bad --port refused"; else not_ok "bad --port refused" "rc=$rc" "$out"; fi
out=$("$BIN" --listen nonsense 2>&1); rc=$?
if [ $rc = 2 ] && [[ $out == *"not an IPv4 or IPv6 address"* ]]; then ok "bad --listen refused"; else not_ok "bad --listen refused" "rc=$rc" "$out"; fi
out=$("$BIN" --min-lifetime 500 --max-lifetime 100 2>&1); rc=$?
if [ $rc = 2 ]; then ok "min > max lifetime refused"; else not_ok "min > max lifetime refused" "rc=$rc" "$out"; fi

# ---- start ----
if start "$BIN" --listen "$ADDR" --external 198.51.100.77 --control "$CTL" --log "$LOG" --seed 7; then
        ok "server ready on $ADDR"
else
        not_ok "server ready on $ADDR" "$(cat "$TMP/err")"
        echo "Bail out! server did not start"
        exit 1
fi

# ---- natpmpc ----
out=$(natpmpc -g "$ADDR" 2>&1)
if [[ $out == *"Public IP address : 198.51.100.77"* ]]; then ok "natpmpc reads the public address"
else not_ok "natpmpc reads the public address" "$out"; fi

out=$(natpmpc -g "$ADDR" -a 4000 4000 udp 3600 2>&1)
if [[ $out == *"Mapped public port 4000 protocol UDP to local port 4000"* ]]; then ok "natpmpc maps UDP 4000"
else not_ok "natpmpc maps UDP 4000" "$out"; fi

out=$(natpmpc -g "$ADDR" -a 5000 22 tcp 30 2>&1)
if [[ $out == *"Mapped public port 5000 protocol TCP to local port 22 liftime 120"* ||
      $out == *"Mapped public port 5000 protocol TCP to local port 22 lifetime 120"* ]]; then
        ok "natpmpc maps TCP 22 -> 5000, lifetime clamped to 120"
else not_ok "natpmpc maps TCP 22 -> 5000, lifetime clamped to 120" "$out"; fi

out=$(ctl dump)
if [[ $out == "ok 2 mappings"* && $out == *"natpmp udp 127.0.0.1:4000 -> 198.51.100.77:4000 lifetime 3600"* &&
      $out == *"natpmp tcp 127.0.0.1:22 -> 198.51.100.77:5000 lifetime 120"* ]]; then ok "dump shows both mappings"
else not_ok "dump shows both mappings" "$out"; fi

out=$(natpmpc -g "$ADDR" -a 0 4000 udp 0 2>&1)
if [[ $out == *"protocol UDP to local port 4000"*" 0"* ]] && [[ $(ctl dump) == "ok 1 mappings"* ]]; then
        ok "natpmpc deletes UDP 4000"
else not_ok "natpmpc deletes UDP 4000" "$out" "$(ctl dump)"; fi

# ---- ctl commands ----
check "external address change" ctl external 198.51.100.78
out=$(natpmpc -g "$ADDR" 2>&1)
if [[ $out == *"Public IP address : 198.51.100.78"* ]]; then ok "natpmpc sees the new address"
else not_ok "natpmpc sees the new address" "$out"; fi

check "forced result" ctl result NOT_AUTHORIZED 1
out=$(natpmpc -g "$ADDR" 2>&1); rc=$?
if [ $rc != 0 ] && [[ $out == *"not authorized"* ]]; then ok "forced NOT_AUTHORIZED reaches natpmpc"
else not_ok "forced NOT_AUTHORIZED reaches natpmpc" "rc=$rc" "$out"; fi
out=$(natpmpc -g "$ADDR" 2>&1)
if [[ $out == *"Public IP address : 198.51.100.78"* ]]; then ok "forced result used up after 1"
else not_ok "forced result used up after 1" "$out"; fi

# ---- answers that are no usable grant, and a random epoch ----
check "grant fault zero-address" ctl grant zero-address 1
out=$(natpmpc -g "$ADDR" 2>&1)
if [[ $out == *"Public IP address : 0.0.0.0"* ]]; then ok "zero-address: natpmpc reads 0.0.0.0"
else not_ok "zero-address: natpmpc reads 0.0.0.0" "$out"; fi
check "grant fault zero-port" ctl grant zero-port 1
out=$(natpmpc -g "$ADDR" -a 4100 4100 udp 600 2>&1)
if [[ $out == *"Mapped public port 0 protocol UDP to local port 4100"* ]] &&
   [[ $(ctl dump) == *"natpmp udp 127.0.0.1:4100 -> 198.51.100.78:4100 "* ]]; then
        ok "zero-port: answers port 0, holds the real mapping"
else not_ok "zero-port: answers port 0, holds the real mapping" "$out" "$(ctl dump)"; fi
natpmpc -g "$ADDR" -a 0 4100 udp 0 >/dev/null 2>&1
out=$(ctl grant bogus 2>&1); rc=$?
if [ $rc = 1 ] && [[ $out == "error: unknown grant fault 'bogus'"* ]]; then ok "unknown grant fault refused"
else not_ok "unknown grant fault refused" "rc=$rc" "$out"; fi
check "epoch random" ctl epoch random
e1=$(natpmpc -g "$ADDR" 2>&1 | sed -n 's/^epoch = //p'); e2=$(natpmpc -g "$ADDR" 2>&1 | sed -n 's/^epoch = //p')
ctl epoch normal >/dev/null
if [ -n "$e1" ] && [ -n "$e2" ] && [ "$e1" != "$e2" ] && [ "$e1" -gt 100000 -o "$e2" -gt 100000 ]; then
        ok "random epochs ($e1, $e2)"
else not_ok "random epochs" "epochs '$e1' '$e2'"; fi

check "mode natpmp" ctl mode natpmp
check "restart keep-state" ctl restart keep-state
out=$(ctl dump)
if [[ $out == "ok 1 mappings, epoch 0"* ]]; then ok "mappings kept over restart"; else not_ok "mappings kept over restart" "$out"; fi
check "restart lossy" ctl restart
if [[ $(ctl dump) == "ok 0 mappings"* ]]; then ok "mappings lost on restart"; else not_ok "mappings lost on restart" "$(ctl dump)"; fi

out=$(ctl bogus 2>&1); rc=$?
if [ $rc = 1 ] && [[ $out == "error: unknown command 'bogus'"* ]]; then ok "unknown command refused"
else not_ok "unknown command refused" "rc=$rc" "$out"; fi
out=$(ctl drop-requests 2 2>&1); rc=$?
if [ $rc = 1 ] && [[ $out == "error: "* ]]; then ok "bad fraction refused"; else not_ok "bad fraction refused" "$out"; fi
long=$(printf 'x%.0s' $(seq 600))
out=$(ctl "$long" 2>&1); rc=$?
if [ $rc = 1 ]; then ok "overlong command refused"; else not_ok "overlong command refused" "$out"; fi

out=$(ctl stats)
if [[ $out == "ok received="* && $out != *"received=0 "* ]]; then ok "stats"; else not_ok "stats" "$out"; fi

# ---- log ----
if grep -q '"event":"request".*"opcode":1.*"internal_port":4000' "$LOG" &&
   grep -q '"event":"send","time_ms":[0-9]*,"kind":"response"' "$LOG"; then ok "JSON log has requests and replies"
else not_ok "JSON log has requests and replies" "$(head -c 2000 "$LOG")"; fi

# ---- quit ----
check "quit" ctl quit
wait "$SRV_PID"; rc=$?
if [ $rc = 0 ] && [ ! -e "$CTL" ]; then ok "server exited cleanly and removed its socket"
else not_ok "server exited cleanly and removed its socket" "rc=$rc"; fi
SRV_PID=

# ---- SIGTERM, under valgrind when it can run (not with sanitizers) ----
VG=()
vg_why=
if ! command -v valgrind >/dev/null 2>&1; then
        vg_why="valgrind not installed"
elif grep -q __asan_init "$BIN" 2>/dev/null || grep -q __ubsan_handle "$BIN" 2>/dev/null; then
        vg_why="sanitizer build"
elif grep -qa 'clang version' "$BIN" 2>/dev/null; then
        vg_why="clang build (Debian 12's valgrind cannot read clang's DWARF 5)"
else
        VG=(valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all
            --log-file="$TMP/vg")
fi
if start "${VG[@]}" "$BIN" --listen "$ADDR" --control "$CTL" --log "$LOG"; then
        natpmpc -g "$ADDR" -a 6000 6000 udp 600 >/dev/null 2>&1
        ctl malformed garbage 1 >/dev/null
        natpmpc -g "$ADDR" >/dev/null 2>&1
        ctl dump >/dev/null
        kill -TERM "$SRV_PID"
        wait "$SRV_PID"; rc=$?
        SRV_PID=
        if [ $rc = 0 ]; then ok "SIGTERM exits cleanly"; else not_ok "SIGTERM exits cleanly" "rc=$rc" "$(cat "$TMP/err" "$TMP/vg" 2>/dev/null)"; fi
        if [ -n "$vg_why" ]; then
                n=$((n + 1)); echo "ok $n # SKIP valgrind: $vg_why"
        elif [ $rc = 0 ] && [ ! -s "$TMP/vg" ]; then ok "valgrind clean"
        else not_ok "valgrind clean" "$(cat "$TMP/vg")"; fi
else
        not_ok "SIGTERM exits cleanly" "server did not start: $(cat "$TMP/err")"
        not_ok "valgrind clean" "server did not start"
fi

[ $failed = 0 ]
