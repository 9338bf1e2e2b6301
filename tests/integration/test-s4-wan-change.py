#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 4b: the WAN address really changes and the router sends nothing (miniupnpd
2.3.1 only resets its epoch). The lab caps lifetimes at 30 s (max_lifetime=30), so pcpd's
renewal (at 1/2..5/8 of the lifetime) must bring the new ExternalAddress within 25 s,
through PropertiesChanged, and traffic to the new address works."""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

NEW = os.environ["WAN_PREFIX"] + ".31"
t = pcpit.Test("scenario 4b: real WAN address change, learned at renewal")
t.start_pcpd()
app = t.app()
app.add("tcp", "tcp", 21401)
s = app.wait_state("tcp", active, 15)
t.require(s is not None, f"expected State 'active' within 15 s, saw {describe(app.state('tcp'))}")
t.check(s.get("Lifetime", 30) <= 30, f"lab: expected the router to grant at most 30 s (max_lifetime=30), saw {s.get('Lifetime')}")
old = s["ExternalAddress"]
mark = app.mark()
t.lab("set-wan", NEW)
t0 = time.monotonic()
ev = app.wait(lambda e: e["ev"] == "props" and e["changed"].get("ExternalAddress") == NEW, 25, since=mark)
t.check(ev is not None, f"expected PropertiesChanged with ExternalAddress {NEW} (was {old}) within 25 s (one renewal "
                        f"of a 30 s lifetime), saw {describe(app.state('tcp'))}")
if ev:
    pcpit.log(f"new address seen after {ev['t'] - t0:.1f} s")
s = app.state("tcp")
t.check(t.reach("tcp", NEW, s.get("ExternalPort", 0), app, 21401),
        f"traffic: expected wan -> {NEW}:{s.get('ExternalPort')} to reach the listener on 21401")
t.done()
