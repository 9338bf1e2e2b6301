#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 2: an IPv6 MAP for an IPv6 listener opens a pinhole in the router's firewall
and traffic from the wan reaches the listener; Release() closes the pinhole."""
import ipaddress
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

CAP = 60  # waiting for an event: generous (memcheck, a loaded machine); not a speed
PORTS = {"tcp6": ("tcp", 21101), "udp6": ("udp", 21102)}
CLIENT_ADDRS = {os.environ["CLIENT6"], os.environ["CLIENT6_GUA"]}
t = pcpit.Test("scenario 2: IPv6 MAP opens a pinhole, traffic from wan reaches the listener")
t.start_pcpd()
app = t.app()
for key, (proto, port) in PORTS.items():
    app.add(key, proto, port, 0, "ipv6")
for key, (proto, port) in PORTS.items():
    s = app.wait_state(key, active, CAP)
    t.require(s is not None, f"{key}: expected State 'active' (cap {CAP} s) for an ipv6 {proto} mapping of port {port}, "
                             f"saw {describe(app.state(key))}")
    ext = s.get("ExternalAddress", "")
    try:
        fam6 = ipaddress.ip_address(ext).version == 6
    except ValueError:
        fam6 = False
    t.check(fam6 and ext in CLIENT_ADDRS,
            f"{key}: expected ExternalAddress = one of the client's own IPv6 addresses {sorted(CLIENT_ADDRS)} "
            f"(a firewall pinhole), saw {ext!r}")
    t.check(s.get("ExternalPort") == port,
            f"{key}: expected ExternalPort {port} (pinholes keep the port), saw {s.get('ExternalPort')}")
    holes = t.pinholes()
    t.check((proto, port, ext) in holes, f"router: expected an IPv6 pinhole {proto} [{ext}]:{port}, saw {sorted(holes)}")
    t.check(t.reach(proto, ext, s.get("ExternalPort", port), app, port),
            f"traffic: expected {proto} from wan to [{ext}]:{port} to reach the app's IPv6 listener")

ev = app.release("tcp6")
t.check(ev is not None and ev["ev"] == "released", f"Release() of tcp6: expected success, saw {ev}")
gone = t.wait_until(lambda: not any(h[0] == "tcp" and h[1] == 21101 for h in t.pinholes()), CAP,
                    "pinhole removal", fatal=False)
t.check(gone, f"router: expected the tcp pinhole for port 21101 to be removed after Release() (cap {CAP} s), "
              f"saw {sorted(t.pinholes())}")
t.done()
