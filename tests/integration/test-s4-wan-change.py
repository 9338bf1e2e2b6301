#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 4b: the WAN address really changes and the router sends nothing (miniupnpd
2.3.1 only resets its epoch). The lab caps lifetimes at 30 s (max_lifetime=30), so pcpd's
renewal brings the new ExternalAddress through PropertiesChanged, and traffic to the new
address works.

The pace is RFC 6887 §11.2.1's, measured on the packets the router's lan0 saw (kernel
receive timestamps of pcp-probe.py's capture), not on this script's clock: the renewal
answered with the new address was sent in [1/2, 5/8] of the lifetime granted by the
answer before it (± SLACK), and so was every renewal seen. Waiting for the outcome has a
generous cap (CAP), named in the failure message: a loaded machine or memcheck delays when
this script looks, not the packets' timestamps."""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

CAP = 90.0   # waiting for an event (not a speed: a passing run does not wait for it)
SLACK = 1.0  # pcpd's timer and the two capture points
PORT = 21401
NEW = os.environ["WAN_PREFIX"] + ".31"
t = pcpit.Test("scenario 4b: real WAN address change, learned at renewal")
cap = t.capture("lan0", seconds=3600)
t.start_pcpd()
app = t.app()
app.add("tcp", "tcp", PORT)
s = app.wait_state("tcp", active, CAP)
t.require(s is not None, f"expected State 'active' (cap {CAP:.0f} s), saw {describe(app.state('tcp'))}")
t.check(s.get("Lifetime", 30) <= 30, f"lab: expected the router to grant at most 30 s (max_lifetime=30), saw {s.get('Lifetime')}")
old = s["ExternalAddress"]
mark = app.mark()
t.lab("set-wan", NEW)
t0 = time.monotonic()
ev = app.wait(lambda e: e["ev"] == "props" and e["changed"].get("ExternalAddress") == NEW, CAP + 30, since=mark)
t.check(ev is not None, f"expected PropertiesChanged with ExternalAddress {NEW} (was {old}) at a renewal of the 30 s "
                        f"lifetime (cap {CAP + 30:.0f} s), saw {describe(app.state('tcp'))}")
if ev:
    pcpit.log(f"new address seen {ev['t'] - t0:.1f} s after the change (script's clock, information only)")
s = app.state("tcp")
t.check(t.reach("tcp", NEW, s.get("ExternalPort", 0), app, PORT, timeout=CAP),
        f"traffic: expected wan -> {NEW}:{s.get('ExternalPort')} to reach the listener on {PORT} (cap {CAP:.0f} s)")

# the mapping's requests and the router's answers, on the packets' own timestamps
pkts = cap.stop()
reqs = [p for p in pkts if p.get("dir") == "in" and p.get("ver") == 2 and p.get("opcode") == 1
        and p.get("r") is False and p.get("iport") == PORT and p.get("lifetime", 0) > 0]
grants = [p for p in pkts if p.get("dir") == "out" and p.get("ver") == 2 and p.get("opcode") == 1
          and p.get("r") is True and p.get("iport") == PORT and p.get("result_name") == "SUCCESS"]
new_grants = [g for g in grants if g.get("ext_addr") == NEW]
t.check(bool(new_grants), f"expected the router to grant the mapping with external address {NEW}, saw grants with "
                          f"{sorted({g.get('ext_addr') for g in grants})}")
renewals = []
for r in reqs:
    prev = [g for g in grants if g["t"] < r["t"]]
    if prev:  # a renewal: the request after a grant (the first request creates)
        g = prev[-1]
        renewals.append((round(r["t"] - g["t"], 2), g["lifetime"], r is max((q for q in reqs
                         if not new_grants or q["t"] < new_grants[0]["t"]), key=lambda q: q["t"], default=None)))
pcpit.log(f"renewals (s after the grant, lifetime, the one answered with {NEW}): {renewals}")
t.check(any(last for _, _, last in renewals),
        f"expected the grant with {NEW} to answer a renewal (a request after an earlier grant), saw {renewals}")
bad = [(d, lt) for d, lt, _ in renewals if not lt / 2 - SLACK <= d <= lt * 5 / 8 + SLACK]
t.check(not bad, f"expected every renewal in [1/2, 5/8] of the granted lifetime after the grant (RFC 6887 §11.2.1, "
                 f"±{SLACK:.0f} s), by the router's packet timestamps; outside: (s after the grant, lifetime) {bad}")
t.done()
