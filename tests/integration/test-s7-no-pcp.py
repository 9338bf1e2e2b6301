#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 7: (a) no PCP server at all (miniupnpd not running: the router answers ICMP
port unreachable): Manager.Servers shows the gateway with protocol 'none' and mappings
are 'failed' with Error UNREACHABLE; (b) a NAT-PMP-only router (pcp-refserver
--natpmp-only in the router ns) appears: mappings become active over NAT-PMP, the server
shows protocol 'nat-pmp'. pcp-refserver writes no NAT rules, so (b) checks the protocol
outcome, not traffic."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

CAP = 60  # waiting for an event: generous (memcheck, a loaded machine); not a speed
t = pcpit.Test("scenario 7: no PCP (ICMP unreachable), then a NAT-PMP-only router", need=("pcpd", "refserver"))
router = os.environ["ROUTER4"]
wan = t.wan_addr()
t.start_pcpd()
app = t.app()
app.add("a", "tcp", 24001)
s = app.wait_state("a", lambda s: s.get("State") == "failed", CAP)
t.check(s is not None and s.get("Error") == "UNREACHABLE",
        f"(a) expected State 'failed' with Error 'UNREACHABLE' (cap {CAP} s) when nothing listens on "
        f"{router}:5351, saw {describe(app.state('a'))}")


def server_proto(m):
    return [x[3] for x in (m or {}).get("Servers", []) if x[1] == router]


m = t.wait_until(lambda: "none" in server_proto(app.manager()) and app.manager(), CAP, "server 'none'", fatal=False)
t.check(m, f"(a) expected Manager.Servers to list {router} with protocol 'none', "
           f"saw {(app.manager() or {}).get('Servers')}")

os.environ["REFSERVER_BIN"] = t.refserver_bin
t.lab("refserver-start", "--listen", router, "--external", wan, "--natpmp-only")
app.add("b", "udp", 24002)
s = app.wait_state("b", active, CAP)
t.check(s is not None and s.get("ExternalAddress") == wan,
        f"(b) expected a new mapping active (cap {CAP} s) over NAT-PMP with ExternalAddress {wan}, "
        f"saw {describe(app.state('b'))}")
m = app.manager()
t.check("nat-pmp" in server_proto(m), f"(b) expected Manager.Servers to list {router} with protocol 'nat-pmp', "
                                      f"saw {(m or {}).get('Servers')}")
s = app.wait_state("a", active, CAP)
t.check(s is not None, f"(b) expected the earlier failed mapping (still held by its app) to be retried and become "
                       f"active (cap {CAP} s), saw {describe(app.state('a'))}")
t.done()
