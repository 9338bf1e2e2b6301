#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 3: the router restarts (miniupnpd stopped, its rules flushed as by a reboot,
started again): (a) lease file kept, epoch reset; (b) lease file removed, epoch reset;
(c) lease file removed and system_uptime=yes, so the epoch does not go back and only the
ANNOUNCE reveals the restart. Each time, every mapping works again (DNAT rule + traffic)
within 5 s + the ANNOUNCE delay (5 s) (+2 s of measuring slack), with the same external
ports, and the app saw PropertiesChanged for each mapping."""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

DEADLINE = 12.0
MAPS = {"tcp": ("tcp", 21201, 31201), "udp": ("udp", 21202, 31202)}
t = pcpit.Test("scenario 3: router restart (leases kept / removed / system_uptime=yes)")
t.start_pcpd()
wan = t.wan_addr()
client = os.environ["CLIENT4"]
app = t.app()
ext = {}
for key, (proto, port, sugg) in MAPS.items():
    app.add(key, proto, port, sugg)
    s = app.wait_state(key, active, 15)
    t.require(s is not None, f"{key}: expected State 'active' within 15 s, saw {describe(app.state(key))}")
    ext[key] = s["ExternalPort"]
    t.check(ext[key] == sugg, f"{key}: expected the suggested external port {sugg} (free at the router), saw {ext[key]}")


def working(key):
    proto, port, _ = MAPS[key]
    return (proto, ext[key], client, port) in t.dnat() and t.reach(proto, wan, ext[key], app, port, timeout=1.5)


for label, args in (("a: restart, lease file kept", []),
                    ("b: restart, lease file removed", ["--drop-leases"]),
                    ("c: restart, lease file removed, system_uptime=yes", ["--drop-leases", "--system-uptime", "yes"])):
    pcpit.log(f"--- case {label}")
    # pcpd publishes ExpiresAt only when it moves by more than 1 s (renewals jitter): a
    # refresh within a second of the last grant changes nothing an app could see. Let the
    # mappings age 2 s, as real ones have, so the refresh after the restart is visible.
    time.sleep(2)
    mark = app.mark()
    t.lab("upnpd-restart", *args)
    t0 = time.monotonic()
    pending = set(MAPS)
    while pending and time.monotonic() - t0 < DEADLINE:
        for key in list(pending):
            if working(key):
                pcpit.log(f"{key} works again after {time.monotonic() - t0:.1f} s")
                pending.discard(key)
        time.sleep(0.3)
    t.check(not pending, f"case {label}: expected every mapping to work again (DNAT rule with the same external "
                         f"port + traffic from wan) within {DEADLINE:.0f} s, still broken: "
                         f"{ {k: (MAPS[k][0], ext[k]) for k in pending} }, router rules {sorted(t.dnat())}")
    for key in MAPS:
        ev = app.wait(lambda e: e["ev"] == "props" and e.get("key") == key, max(0.1, t0 + DEADLINE - time.monotonic()),
                      since=mark)
        t.check(ev is not None, f"case {label}: expected a PropertiesChanged for the {key} mapping after the restart "
                                f"(the mapping was refreshed), saw none")
        s = app.state(key)
        t.check(active(s) and s.get("ExternalPort") == ext[key],
                f"case {label}: expected {key} active with ExternalPort {ext[key]}, saw {describe(s)}")
t.done()
