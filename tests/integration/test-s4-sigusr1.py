#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 4a: the WAN address changes and the router says so (SIGUSR1 to miniupnpd:
PCP ANNOUNCE + NAT-PMP notification): the app gets the new ExternalAddress through
PropertiesChanged within 5 s + ANNOUNCE delay, and traffic to the new address works."""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

NEW = os.environ["WAN_PREFIX"] + ".21"
t = pcpit.Test("scenario 4a: external address change announced by SIGUSR1")
t.start_pcpd()
app = t.app()
app.add("tcp", "tcp", 21301)
s = app.wait_state("tcp", active, 15)
t.require(s is not None, f"expected State 'active' within 15 s, saw {describe(app.state('tcp'))}")
old = s["ExternalAddress"]
mark = app.mark()
t.lab("set-wan", NEW)
t.lab("sigusr1")
t0 = time.monotonic()
ev = app.wait(lambda e: e["ev"] == "props" and e["changed"].get("ExternalAddress") == NEW, 12, since=mark)
t.check(ev is not None, f"expected PropertiesChanged with ExternalAddress {NEW} (was {old}) within 12 s of SIGUSR1, "
                        f"saw {describe(app.state('tcp'))}")
if ev:
    pcpit.log(f"new address seen after {ev['t'] - t0:.1f} s")
s = app.state("tcp")
t.check(t.reach("tcp", NEW, s.get("ExternalPort", 0), app, 21301),
        f"traffic: expected wan -> {NEW}:{s.get('ExternalPort')} to reach the listener on 21301")
t.done()
