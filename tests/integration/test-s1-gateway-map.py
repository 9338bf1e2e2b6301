#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 1: pcpd with no server configured finds the router as default gateway, maps
TCP and UDP for an app; traffic from the wan reaches the app's listeners through the DNAT;
the DNAT rule exists while the mapping does, and is gone after Release() and after the
app is killed -9."""
import sys
import os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

CAP = 60  # waiting for an event: generous (memcheck, a loaded machine); not a speed
TCP_PORT, UDP_PORT = 21001, 21002
t = pcpit.Test("scenario 1: default gateway discovery, TCP+UDP map, traffic, release, app killed")
t.start_pcpd(Servers="", UseDefaultRouters="true")
wan = t.wan_addr()
client = os.environ["CLIENT4"]
router = os.environ["ROUTER4"]

app = t.app()
app.add("tcp", "tcp", TCP_PORT)
app.add("udp", "udp", UDP_PORT)
st = {}
for key in ("tcp", "udp"):
    st[key] = app.wait_state(key, active, CAP)
    t.require(st[key] is not None,
              f"{key} mapping: expected State 'active' with an ExternalPort (cap {CAP} s), "
              f"saw {describe(app.state(key))}")
    t.check(st[key].get("ExternalAddress") == wan,
            f"{key} mapping: expected ExternalAddress {wan} (router's WAN address), saw {st[key].get('ExternalAddress')!r}")
    t.check(st[key].get("Error", "") == "", f"{key} mapping: expected Error '', saw {st[key].get('Error')!r}")
    t.check(router in str(st[key].get("Server", "")),
            f"{key} mapping: expected Server to name the default gateway {router}, saw {st[key].get('Server')!r}")

mgr = app.manager()
t.check(mgr is not None and any(router in s[1] and s[2] == "gateway" and s[3] == "pcp" for s in mgr.get("Servers", [])),
        f"Manager.Servers: expected an entry (iface, '{router}', 'gateway', 'pcp', epoch), "
        f"saw {mgr.get('Servers') if mgr else 'no answer'}")

ext_tcp, ext_udp = st["tcp"]["ExternalPort"], st["udp"]["ExternalPort"]
rules = t.dnat()
t.check(("tcp", ext_tcp, client, TCP_PORT) in rules,
        f"router: expected DNAT rule tcp {ext_tcp} -> {client}:{TCP_PORT}, saw {sorted(rules)}")
t.check(("udp", ext_udp, client, UDP_PORT) in rules,
        f"router: expected DNAT rule udp {ext_udp} -> {client}:{UDP_PORT}, saw {sorted(rules)}")
t.check(t.reach("tcp", wan, ext_tcp, app, TCP_PORT),
        f"traffic: expected a TCP connection from wan to {wan}:{ext_tcp} to reach the app's listener on {TCP_PORT}")
t.check(t.reach("udp", wan, ext_udp, app, UDP_PORT),
        f"traffic: expected a UDP datagram from wan to {wan}:{ext_udp} to reach the app's listener on {UDP_PORT}")

if os.access(t.pcpctl_bin, os.X_OK):
    r = t.pcpctl("list")
    t.check(r.returncode == 0 and str(TCP_PORT) in r.stdout and str(ext_tcp) in r.stdout,
            f"pcpctl list: expected exit 0 and a line with {TCP_PORT} and {ext_tcp}, "
            f"saw exit {r.returncode}: {r.stdout.strip()!r} {r.stderr.strip()!r}")
elif os.environ.get("CI") == "true":
    t.check(False, f"pcpctl: expected {t.pcpctl_bin} to exist in CI, it does not")
else:
    pcpit.log(f"note: pcpctl {t.pcpctl_bin} missing, 'pcpctl list' not checked")

# Release(): the TCP rule goes away
ev = app.release("tcp")
t.check(ev is not None and ev["ev"] == "released", f"Release() of the tcp mapping: expected success, saw {ev}")
gone = t.wait_until(lambda: not any(r[0] == "tcp" and r[3] == TCP_PORT for r in t.dnat()), CAP,
                    "tcp DNAT rule removal", fatal=False)
t.check(gone, f"router: expected the tcp DNAT rule for {client}:{TCP_PORT} to be deleted after Release() (cap {CAP} s), "
              f"saw {sorted(t.dnat())}")
t.check(any(r[0] == "udp" and r[3] == UDP_PORT for r in t.dnat()),
        f"router: the udp rule must stay while its mapping lives, saw {sorted(t.dnat())}")

# the app dies: its bus connection goes, so does the UDP mapping
app.kill9()
gone = t.wait_until(lambda: not any(r[3] in (TCP_PORT, UDP_PORT) for r in t.dnat()), CAP,
                    "udp DNAT rule removal", fatal=False)
t.check(gone, f"router: expected the udp DNAT rule for {client}:{UDP_PORT} to be deleted after the app "
              f"was killed -9 (owner vanished) (cap {CAP} s), saw {sorted(t.dnat())}")
t.done()
