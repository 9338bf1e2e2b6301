#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The lab's own checks, from outside any lab:
#  1. selfcheck inside a lab: miniupnpd answers a raw PCP MAP (pcp-probe.py), the DNAT
#     rule exists, traffic from the wan reaches the client through it;
#  2. the host's network namespace is untouched: same links, routes and nft ruleset
#     before and after, no lab namespace left;
#  3. a lab whose owner is killed -9 (as a test runner's timeout does) is torn down by its
#     watchdog within 10 s;
#  4. reap leaves a lab namespace whose owner (the pid in its name) lives, even without a
#     lab directory in its base (a lab of another PCPIT_BASE), and deletes one whose owner
#     is dead.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB_SH=$HERE/lab.sh
fails=0
check() { if [ "$2" = 0 ]; then echo "ok: $1"; else echo "FAIL: $1; saw: ${3:-}"; fails=$((fails + 1)); fi; }
host_state() { ip -o link show | awk '{print $2}' | sort; ip route show; ip -6 route show; nft list ruleset 2>/dev/null; }

before=$(host_state)
set +e
out=$("$LAB_SH" run -- "$LAB_SH" selfcheck 2>&1)
check "selfcheck: PCP MAP, DNAT rule and wan->client traffic" $? "$out"
echo "$out" | grep -E '^(probe|reached|selfcheck|FAIL)' | sed 's/^/    /'
id=$(echo "$out" | sed -nE 's|.*/run/pcpit/(pcpit-[0-9]+-[0-9a-f]+)/.*|\1|p' | head -1)
after=$(host_state)
[ "$before" = "$after" ]
check "host namespace unchanged (links, routes, nft ruleset)" $? "$(diff <(echo "$before") <(echo "$after"))"
[ -n "$id" ] && ! ip netns list | grep -q "^$id-"
check "no namespace of lab $id left" $? "$(ip netns list | grep "$id" || echo "(no lab id found)")"

# owner killed -9: the watchdog tears down
"$LAB_SH" run -- bash -c "echo \$\$ >/tmp/pcpit-selfcheck-child.$$; exec sleep 300" >/tmp/pcpit-selfcheck.$$ 2>&1 &
owner=$!
# up = its command runs (it writes its pid); caps of 60 s (generous: a loaded machine)
for _ in $(seq 1 600); do [ -s /tmp/pcpit-selfcheck-child.$$ ] && break; sleep 0.1; done
ip netns list | grep -q "^pcpit-$owner-"
check "lab of owner $owner is up" $? "$(cat /tmp/pcpit-selfcheck.$$)"
kill -KILL "$owner"
for _ in $(seq 1 600); do ip netns list | grep -q "^pcpit-$owner-" || break; sleep 0.1; done
! ip netns list | grep -q "^pcpit-$owner-"
check "watchdog removed the lab of the killed owner (cap 60 s)" $? "$(ip netns list | grep "pcpit-$owner-")"
wait "$owner" 2>/dev/null
# the lab's command ran in the host namespace (as tests do): end it by its recorded pid
[ -s /tmp/pcpit-selfcheck-child.$$ ] && kill -KILL "$(cat /tmp/pcpit-selfcheck-child.$$)" 2>/dev/null
rm -f /tmp/pcpit-selfcheck.$$ /tmp/pcpit-selfcheck-child.$$

# reap judges a namespace without a lab directory by the owner pid in its name
rnd=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
live_ns="pcpit-$$-$rnd-c"
true &
dead=$!
wait "$dead"
dead_ns="pcpit-$dead-$rnd-c"
ip netns add "$live_ns"; ip netns add "$dead_ns"
"$LAB_SH" reap >/dev/null 2>&1
ip netns list | grep -q "^$live_ns\b"
check "reap leaves the namespace $live_ns of a live owner (no lab directory: another base)" $? "$(ip netns list | grep pcpit- || true)"
! ip netns list | grep -q "^$dead_ns\b"
check "reap deletes the orphan namespace $dead_ns (owner $dead dead)" $? "$(ip netns list | grep pcpit- || true)"
ip netns del "$live_ns" 2>/dev/null; ip netns del "$dead_ns" 2>/dev/null

# a build that fails half-way is torn down by its own run (bash unwinds the functions'
# locals before the EXIT trap runs on errexit: the trap once died on "rc: unbound variable")
PCPIT_WAN_PREFIX=not-an-address "$LAB_SH" run -- true >/tmp/pcpit-selfcheck-fail.$$ 2>&1 &
owner=$!
wait "$owner"
r=$?
out=$(cat /tmp/pcpit-selfcheck-fail.$$); rm -f /tmp/pcpit-selfcheck-fail.$$
[ "$r" != 0 ]
check "a failed build fails its run (exit $r)" $? "$out"
! echo "$out" | grep -q 'unbound variable'
check "a failed build's teardown runs without a shell error" $? "$out"
! ip netns list | grep -q "^pcpit-$owner-"
check "a failed build leaves no namespace of lab owner $owner" $? "$(ip netns list | grep "pcpit-$owner-" || true)"
# an orphan namespace that vanishes while reap looks at it: `ip netns pids` fails for it
# (an `ip` in front of the real one fails that lookup, as a concurrent delete makes it fail)
true &
dead=$!
wait "$dead"
gone_ns="pcpit-$dead-$rnd-c"
fakebin=$(mktemp -d /tmp/pcpit-selfcheck-bin.XXXXXX)
realip=$(command -v ip)
printf '#!/bin/sh\n[ "$1 $2 $3" = "netns pids %s" ] && exit 1\nexec %s "$@"\n' "$gone_ns" "$realip" >"$fakebin/ip"
chmod +x "$fakebin/ip"
ip netns add "$gone_ns"
out=$(PATH="$fakebin:$PATH" "$LAB_SH" reap 2>&1)
check "reap goes on when an orphan's pid lookup fails (exit $?)" $? "$out"
! ip netns list | grep -q "^$gone_ns\b"
check "reap deleted the orphan $gone_ns all the same" $? "$(ip netns list | grep pcpit- || true)"
ip netns del "$gone_ns" 2>/dev/null
rm -f "$fakebin/ip"; rmdir "$fakebin"
set -e
[ "$fails" = 0 ] && { echo "lab selfcheck: PASS"; exit 0; }
echo "lab selfcheck: $fails check(s) failed"; exit 1
