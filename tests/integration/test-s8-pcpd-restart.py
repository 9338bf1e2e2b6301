#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 8: pcpd is killed -9 with mappings active and started again on the same
state directory (GraceSeconds=10). App A asks again for its port (suggesting nothing):
it gets its old external port back, with no second rule at the router. App B died while
pcpd was down: its mapping is unclaimed and must be deleted at the router (nft rule
gone) after the grace period."""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

CAP = 60  # waiting for an event: generous (memcheck, a loaded machine); not a speed
GRACE = 10
A_PORT, A_EXT, B_PORT, B_EXT = 25001, 35001, 25002, 35002
t = pcpit.Test("scenario 8: pcpd killed -9 and restarted: reclaimed keep ports, unclaimed deleted")
t.start_pcpd(GraceSeconds=GRACE)
wan = t.wan_addr()
client = os.environ["CLIENT4"]
a, b = t.app("appA"), t.app("appB")
a.add("a", "tcp", A_PORT, A_EXT)
b.add("b", "tcp", B_PORT, B_EXT)
for app, key, ext in ((a, "a", A_EXT), (b, "b", B_EXT)):
    s = app.wait_state(key, active, CAP)
    t.require(s is not None and s["ExternalPort"] == ext,
              f"{key}: expected active with the suggested ExternalPort {ext} (cap {CAP} s), saw {describe(app.state(key))}")
t.kill_pcpd()
b.kill9()
t.check(("tcp", A_EXT, client, A_PORT) in t.dnat() and ("tcp", B_EXT, client, B_PORT) in t.dnat(),
        f"router: expected both rules to survive pcpd's death, saw {sorted(t.dnat())}")
t.start_pcpd(log_name="pcpd.1.log", GraceSeconds=GRACE)
t_restart = time.monotonic()
a.add("a2", "tcp", A_PORT, 0)
s = a.wait_state("a2", active, CAP)
t.check(s is not None and s.get("ExternalPort") == A_EXT,
        f"reclaimed mapping: expected active with its old ExternalPort {A_EXT} (AddMapping suggested 0) (cap {CAP} s), "
        f"saw {describe(a.state('a2'))}")
gone = t.wait_until(lambda: not any(r[3] == B_PORT for r in t.dnat()), GRACE + CAP, "unclaimed rule deletion",
                    fatal=False)
t.check(gone, f"unclaimed mapping: expected its DNAT rule tcp {B_EXT} -> {client}:{B_PORT} deleted after "
              f"the grace of {GRACE} s (cap {GRACE + CAP} s from the restart), saw {sorted(t.dnat())}")
if gone:
    pcpit.log(f"unclaimed rule gone {time.monotonic() - t_restart:.1f} s after the restart")
rules_a = [r for r in t.dnat() if r[3] == A_PORT]
t.check(rules_a == [("tcp", A_EXT, client, A_PORT)],
        f"reclaimed mapping: expected exactly one rule tcp {A_EXT} -> {client}:{A_PORT}, saw {rules_a}")
t.check(t.reach("tcp", wan, A_EXT, a, A_PORT), f"traffic: expected wan -> {wan}:{A_EXT} to reach app A on {A_PORT}")
t.done()
