#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 4a: the WAN address changes and the router says so (SIGUSR1 to miniupnpd:
PCP ANNOUNCE + NAT-PMP notification): the app gets the new ExternalAddress through
PropertiesChanged, and traffic to the new address works.

The pace is RFC 6887's, measured on the packets the router's lan0 saw (kernel receive
timestamps of pcp-probe.py's capture), not on this script's clock: the mapping's MAP
request comes after the router's ANNOUNCE, within the random 0-5 s delay of RFC 6887
§14.1.3 (+ SLACK for pcpd to react), and the router answers it with the new address.
Waiting for the outcome has a generous cap (CAP), named in the failure message: a loaded
machine or memcheck delays when this script looks, not the packets' timestamps.

pcpd's log says why every mapping was asked again, once. miniupnpd sends its NAT-PMP
address notification first, then the PCP ANNOUNCE, whose epoch it resets on an address
change (RFC 6887 §8.5; miniupnpd's PCPPublicAddressChanged()). The notification (from a
PCP server: nothing said of its state) makes pcpd renew every mapping, logged once as
"announced a change"; the ANNOUNCE comes within the 5 s pcpd holds further recreations
back, so it is acted on when they are over, and logged then, once, as the epoch reset it
is (when its epoch is inconsistent by pcpd's rule, checked here on the capture)."""
import os
import re
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

CAP = 90.0            # waiting for an event (not a speed: a passing run does not wait for it)
ANNOUNCE_DELAY = 5.0  # RFC 6887 §14.1.3: renew after a random 0-5 s
SLACK = 1.0           # pcpd reading the ANNOUNCE and arming the timer; capture points
PORT = 21301
NEW = os.environ["WAN_PREFIX"] + ".21"
ROUTER = os.environ["ROUTER4"]
t = pcpit.Test("scenario 4a: external address change announced by SIGUSR1")
cap = t.capture("lan0", seconds=3600)
t.start_pcpd()
app = t.app()
app.add("tcp", "tcp", PORT)
s = app.wait_state("tcp", active, CAP)
t.require(s is not None, f"expected State 'active' (cap {CAP:.0f} s), saw {describe(app.state('tcp'))}")
old = s["ExternalAddress"]
mark = app.mark()
n_before = len(cap.packets())
t.lab("set-wan", NEW)
t.lab("sigusr1")
t0 = time.monotonic()
ev = app.wait(lambda e: e["ev"] == "props" and e["changed"].get("ExternalAddress") == NEW, CAP, since=mark)
t.check(ev is not None, f"expected PropertiesChanged with ExternalAddress {NEW} (was {old}) after SIGUSR1 "
                        f"(cap {CAP:.0f} s), saw {describe(app.state('tcp'))}")
if ev:
    pcpit.log(f"new address seen {ev['t'] - t0:.1f} s after the signal was sent (script's clock, information only)")
s = app.state("tcp")
t.check(t.reach("tcp", NEW, s.get("ExternalPort", 0), app, PORT, timeout=CAP),
        f"traffic: expected wan -> {NEW}:{s.get('ExternalPort')} to reach the listener on {PORT} (cap {CAP:.0f} s)")

# what the router saw and said after the signal, on its packets' own timestamps
every = cap.stop()
pkts = every[n_before:]
ann = [p for p in pkts if p.get("dir") == "out" and p.get("ver") == 2 and p.get("opcode") == 0
       and p.get("r") is True and p.get("dport") == 5350 and ":" not in p.get("dst", ":")]
t.check(bool(ann), f"expected the router to send an unsolicited ANNOUNCE on lan0 after SIGUSR1, saw none in "
                   f"{len(pkts)} packets")
if ann:
    reqs = [p for p in pkts if p.get("dir") == "in" and p.get("ver") == 2 and p.get("opcode") == 1
            and p.get("r") is False and p.get("iport") == PORT and p.get("lifetime", 0) > 0 and p["t"] >= ann[0]["t"]]
    t.check(bool(reqs), f"expected a MAP request for tcp/{PORT} after the ANNOUNCE, saw none")
    if reqs:
        delay = reqs[0]["t"] - ann[0]["t"]
        pcpit.log(f"MAP request {delay:.2f} s after the ANNOUNCE (router's timestamps)")
        t.check(0 <= delay <= ANNOUNCE_DELAY + SLACK,
                f"expected the MAP request within the RFC 6887 §14.1.3 random delay of 0-{ANNOUNCE_DELAY:.0f} s "
                f"(+{SLACK:.0f} s) after the ANNOUNCE, by the router's packet timestamps, saw {delay:.2f} s")
        ok = [p for p in pkts if p.get("dir") == "out" and p.get("ver") == 2 and p.get("opcode") == 1
              and p.get("r") is True and p.get("iport") == PORT and p["t"] >= reqs[0]["t"]
              and p.get("result_name") == "SUCCESS"]
        t.check(bool(ok) and ok[0].get("ext_addr") == NEW,
                f"expected the router to answer it SUCCESS with external address {NEW}, saw "
                f"{[(p.get('result_name'), p.get('ext_addr')) for p in ok[:2]]}")


def epoch_valid(prev, cur):
    """pcp_epoch_valid() of pcp-engine.c on (epoch, seconds) pairs"""
    if cur[0] + 1 < prev[0]:
        return False
    client, server = (cur[1] - prev[1]) * 1000, (cur[0] - prev[0]) * 1000
    return not (client + 2000 < server - server / 16 or server + 2000 < client - client / 16)


# pcpd's log (see the top): the router's unsolicited datagrams to pcpd's IPv4 server
notice = [p for p in pkts if p.get("dir") == "out" and p.get("ver") == 0 and p.get("opcode") == 0
          and p.get("r") is True and p.get("dport") == 5350 and ":" not in p.get("dst", ":")]
changed = re.escape(f"PCP server {ROUTER} announced a change")
lost = re.escape(f"PCP server {ROUTER} lost its mappings")
t.check(bool(notice) and bool(ann) and notice[0]["t"] <= ann[0]["t"],
        f"lab: expected miniupnpd to send its NAT-PMP address notification, then the ANNOUNCE, saw notification "
        f"at {[round(p['t'], 3) for p in notice[:2]]}, ANNOUNCE at {[round(p['t'], 3) for p in ann[:2]]}")
if notice and ann:
    before = [(p["epoch"], p["t"]) for p in every if p.get("dir") == "out" and p.get("ver") == 2
              and p.get("r") is True and p.get("src") == ROUTER and p.get("dst") == os.environ["CLIENT4"]
              and "epoch" in p and p["t"] < ann[0]["t"]]
    reset = bool(before) and not epoch_valid(before[-1], (ann[0]["epoch"], ann[0]["t"]))
    pcpit.log(f"ANNOUNCE epoch {ann[0]['epoch']} after {before[-1:]} (epoch, router's clock): "
              f"{'a reset' if reset else 'consistent'} by pcpd's rule")
    # the ANNOUNCE's recreation comes 5 s after the notification's (an event to wait for)
    if reset:
        t.wait_until(lambda: t.pcpd_log_lines(lost), CAP, f"pcpd's log line '{lost}'", fatal=False)
    seen = t.pcpd_log_lines(changed)
    t.check(len(seen) == 1 and re.search(r"renewing its 1 mapping\(s\)", seen[0]),
            f"expected pcpd to log once that {ROUTER} announced a change, renewing its 1 mapping (the NAT-PMP "
            f"notification), saw {seen}")
    seen_lost = t.pcpd_log_lines(lost)
    t.check(len(seen_lost) == (1 if reset else 0),
            f"expected pcpd to log {'once' if reset else 'no'} epoch reset of {ROUTER} (the ANNOUNCE's epoch "
            f"{ann[0]['epoch']} after {before[-1:]} is {'a reset' if reset else 'consistent'}) (cap {CAP:.0f} s), "
            f"saw {seen_lost}")
    both = t.pcpd_log_lines(f"{changed}|{lost}")
    t.check(not seen_lost or not seen or both.index(seen[0]) < both.index(seen_lost[0]),
            f"expected the announced change logged before the epoch reset, saw {both}")
t.done()
