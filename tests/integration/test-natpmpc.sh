#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Debian's natpmpc (RFC 6886 client) against a NAT-PMP server in the router namespace:
#   test-natpmpc.sh miniupnpd   miniupnpd: public address, TCP map, DNAT rule, traffic
#   test-natpmpc.sh refserver   pcp-refserver --natpmp-only: public address, UDP+TCP map
# Run inside a lab: lab.sh run [--no-upnpd] -- test-natpmpc.sh MODE
set -euo pipefail
mode=${1:?usage: test-natpmpc.sh miniupnpd|refserver}
: "${PCPIT_LAB:?run me with lab.sh run -- $0 $mode}"
LAB_SH=$PCPIT_LAB_SH
. "$PCPIT_LAB/wan_addr"
fails=0
missing() {
    if [ "${CI:-}" = true ]; then echo "FAIL: prerequisite missing in CI: $*"; exit 1; fi
    echo "SKIP: $*"; exit 77
}
check() { # check DESCRIPTION CONDITION-STATUS DETAIL
    if [ "$2" = 0 ]; then echo "ok: $1"; else echo "FAIL: $1; saw: $3"; fails=$((fails + 1)); fi
}
command -v natpmpc >/dev/null || missing "natpmpc not installed (scripts/install-deps.sh)"
if [ "$mode" = refserver ]; then
    bin=${REFSERVER_BIN:-$(dirname "$0")/../../build/tests/refserver/pcp-refserver}
    [ -x "$bin" ] || missing "pcp-refserver binary $bin missing (build it or set REFSERVER_BIN)"
    REFSERVER_BIN=$bin "$LAB_SH" refserver-start --listen "$ROUTER4" --external "$WAN_ADDR" --natpmp-only
fi

set +e
out=$("$LAB_SH" exec client natpmpc -g "$ROUTER4" 2>&1)
echo "$out" | grep -q "Public IP address : $WAN_ADDR\$"
check "natpmpc -g: public IP address $WAN_ADDR" $? "$(echo "$out" | tail -3 | tr '\n' ' ')"

out=$("$LAB_SH" exec client natpmpc -g "$ROUTER4" -a 36001 26001 tcp 600 2>&1)
echo "$out" | grep -Eq "Mapped public port 36001 protocol TCP to local port 26001 lif(e|)time [0-9]+"
check "natpmpc -a 36001 26001 tcp: mapped public port 36001 to local port 26001" $? "$(echo "$out" | tail -3 | tr '\n' ' ')"

out=$("$LAB_SH" exec client natpmpc -g "$ROUTER4" -a 36002 26002 udp 600 2>&1)
echo "$out" | grep -Eq "Mapped public port [0-9]+ protocol UDP to local port 26002"
check "natpmpc -a 36002 26002 udp: mapped to local port 26002" $? "$(echo "$out" | tail -3 | tr '\n' ' ')"

if [ "$mode" = miniupnpd ]; then
    rules=$("$LAB_SH" dnat)
    echo "$rules" | grep -qx "tcp 36001 $CLIENT4 26001"
    check "router: DNAT rule tcp 36001 -> $CLIENT4:26001" $? "$rules"
    out=$("$LAB_SH" reach tcp "$WAN_ADDR" 36001 26001)
    check "traffic: wan -> $WAN_ADDR:36001 reaches the client's port 26001" $? "$out"
    # delete: lifetime 0
    "$LAB_SH" exec client natpmpc -g "$ROUTER4" -a 36001 26001 tcp 0 >/dev/null 2>&1
    rules=$("$LAB_SH" dnat)
    ! echo "$rules" | grep -q " 26001\$"
    check "natpmpc lifetime 0: DNAT rule deleted" $? "$rules"
fi
set -e
[ "$fails" = 0 ] && { echo "natpmpc against $mode: PASS"; exit 0; }
echo "natpmpc against $mode: $fails check(s) failed"
exit 1
