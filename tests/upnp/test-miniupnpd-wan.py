#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""upnp-miniupnpd-wan-change[-slow-client]: the router's WAN address changes (lab.sh --upnp yes).

The new address reaches the mapping through miniupnpd's ExternalIPAddress events (GENA):
the periodic GetExternalIPAddress is set to 300 s here, so only an event can bring it in
time (the periodic check is tested with the scripted IGD, case external-poll); traffic to
the new address works. set-wan adds the new address, then deletes the old one: miniupnpd
makes one event for each, the first with the old address, and drops the second when it
comes while the first NOTIFY is still unanswered (a driver under valgrind answers slowly).
Then it is the GetExternalIPAddress asked after an event with the known address that
brings the new one (the scripted IGD's case event-stale does this deterministically).

With the argument "slow-client" the driver is stopped (SIGSTOP) while the address changes
and continued once miniupnpd has seen the old address deleted: the NOTIFY made for the
added address waits for it, so miniupnpd drops the change of the deletion.
"""
import os
import signal
import sys

import upnpit

slow = len(sys.argv) > 1 and sys.argv[1] == "slow-client"
t = upnpit.Test("upnp: miniupnpd WAN address change" + (" (client stopped meanwhile)" if slow else ""))
old = t.wan_addr()
new = "198.20.77.11"
d = t.driver("--external-interval", "300")
t.require(d.wait_igd(90) is not None, "the IGD (miniupnpd) found within 90 s")
d.add("a", "tcp", 4400)
a = d.wait_mapping("a", lambda e: e["state"] == "active", 60, what="active")
t.check(a["ext_addr"] == old, f"external address {old}, saw {a['ext_addr']}")
m = d.mark()
if slow:
    mlog = os.path.join(t.lab_dir, "miniupnpd.log")

    def deletions():
        with open(mlog, errors="replace") as f:
            return f.read().count("RTM_DELADDR")
    before = deletions()
    os.kill(d.p.pid, signal.SIGSTOP)
    try:
        t.lab("set-wan", new)
        t.wait_until(lambda: deletions() > before, 30, "miniupnpd to see the old WAN address deleted (RTM_DELADDR)")
    finally:
        os.kill(d.p.pid, signal.SIGCONT)
else:
    t.lab("set-wan", new)
ev = d.wait_mapping("a", lambda e: e["ext_addr"] == new, 90, since=m, what=f"with external address {new}")
t.check(ev["state"] == "active" and ev["ext_port"] == 4400, f"still active on 4400, saw {ev['state']} {ev['ext_port']}")
igd = d.find(lambda e: e["ev"] == "igd" and e["external"] == new, since=m)
t.check(bool(igd), f"an IGD event with the new external address {new}")
r = t.lab("reach", "tcp", new, "4400", "4400", check=False)
t.check(r.startswith("reached"), f"traffic to {new}:4400 reaches the client, saw: {r.strip()}")
t.finish()
