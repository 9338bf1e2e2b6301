#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 6: the router's WAN address is in a reserved range (203.0.113.0/24), so
miniupnpd refuses forwarding (NO_RESOURCES, error lifetime 30 s). Mappings must report
State 'failed' with Error NO_RESOURCES, and pcpd must not retry in a tight loop: over
60 s the router sees at most 6 MAP requests per mapping (RFC: retry after the error
lifetime, 30 s here) and at most 40 PCP requests in all."""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import describe  # noqa: E402

CAP = 60     # waiting for an event: generous (memcheck, a loaded machine); not a speed
WINDOW = 60  # observed: an upper bound on requests in it (load only lowers the count)
MAPS = {"tcp": ("tcp", 23001), "udp": ("udp", 23002)}
t = pcpit.Test("scenario 6: reserved WAN range -> NO_RESOURCES, no tight retry loop")
t.require(t.wan_addr().startswith("203.0.113."), f"lab: expected a 203.0.113.x WAN (run with --wan-prefix 203.0.113), "
                                                 f"saw {t.wan_addr()}")
cap = t.capture("lan0", seconds=WINDOW + 40)
t.start_pcpd()
app = t.app()
t0 = time.monotonic()
for key, (proto, port) in MAPS.items():
    app.add(key, proto, port)
for key in MAPS:
    s = app.wait_state(key, lambda s: s.get("Error") == "NO_RESOURCES", CAP)
    t.check(s is not None and s.get("State") == "failed",
            f"{key}: expected State 'failed' with Error 'NO_RESOURCES' (cap {CAP} s), saw {describe(app.state(key))}")
time.sleep(max(0, t0 + WINDOW - time.monotonic()))
for key in MAPS:
    s = app.state(key)
    t.check(s.get("State") != "active", f"{key}: must not become active with a reserved WAN address, saw {describe(s)}")
pkts = [p for p in cap.stop() if p.get("dir") == "in" and p.get("r") is False and t0 <= p["t"] <= t0 + WINDOW]
per = {}
for p in pkts:
    if p.get("opcode") == 1:
        per[p.get("iport")] = per.get(p.get("iport"), 0) + 1
pcpit.log(f"requests at the router in {WINDOW} s: {len(pkts)} total, MAP per port {per}")
for key, (proto, port) in MAPS.items():
    t.check(1 <= per.get(port, 0) <= 6, f"{key}: expected 1..6 MAP requests for port {port} in {WINDOW} s "
                                        f"(retry after the 30 s error lifetime), saw {per.get(port, 0)}")
t.check(len(pkts) <= 40, f"expected at most 40 PCP requests from the client in {WINDOW} s, saw {len(pkts)}")
t.done()
