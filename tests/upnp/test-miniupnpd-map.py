#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""upnp-miniupnpd-map: pcpd-upnp against Debian's miniupnpd with UPnP on and PCP/NAT-PMP off
(lab.sh --upnp yes).

- the IGD is found on the client's network (the gateway) with the router's WAN address;
- TCP (external = internal) and UDP (suggested external port) mappings become active,
  miniupnpd's DNAT rules exist and traffic from the wan namespace reaches the client;
- what IGD cannot do is refused with a sentence (PEER, FILTER, THIRD_PARTY, IPv6, SCTP);
- another host's mapping on the suggested port is not overwritten: another port is chosen,
  or the mapping fails (CANNOT_PROVIDE_EXTERNAL) with prefer-failure;
- removal deletes the rule; a mapping of another host is never deleted.
"""
import json
import os
import re
import subprocess

import upnpit

t = upnpit.Test("upnp: miniupnpd (UPnP only): map, traffic, refusals, another host's port, remove")
wan = t.wan_addr()
d = t.driver()

igd = d.wait_igd(30)
t.require(igd is not None, "expected the IGD (miniupnpd on 192.168.77.1) within 30 s, saw none")
t.check(igd["addr"] == t.router4 and igd["external"] == wan,
        f"IGD at {t.router4} with external address {wan}, saw {igd['addr']} / {igd['external']}")

d.add("a", "tcp", 4100)
d.add("b", "udp", 4101, 5101)
a = d.wait_mapping("a", lambda e: e["state"] == "active", 20, what="active")
b = d.wait_mapping("b", lambda e: e["state"] == "active", 20, what="active")
t.check(a["ext_addr"] == wan and a["ext_port"] == 4100,
        f"TCP mapping {wan}:4100, saw {a['ext_addr']}:{a['ext_port']}")
t.check(b["ext_addr"] == wan and b["ext_port"] == 5101,
        f"UDP mapping {wan}:5101 (the suggested port), saw {b['ext_addr']}:{b['ext_port']}")
t.check(a["lease"] == 3600 and not a["permanent"], f"lease 3600, not permanent, saw {a['lease']} {a['permanent']}")
rules = t.dnat()
t.check(("tcp", 4100, t.client4, 4100) in rules and ("udp", 5101, t.client4, 4101) in rules,
        f"DNAT rules tcp 4100 and udp 5101 -> {t.client4}, saw {sorted(rules)}")
r = t.lab("reach", "tcp", wan, "4100", "4100", check=False)
t.check(r.startswith("reached"), f"wan -> tcp {wan}:4100 reaches the client's port 4100, saw: {r.strip()}")
r = t.lab("reach", "udp", wan, "5101", "4101", check=False)
t.check(r.startswith("reached"), f"wan -> udp {wan}:5101 reaches the client's port 4101, saw: {r.strip()}")

# what IGD cannot do
for key, args, want in [
        ("r1", "tcp 192.168.77.2 4000 peer", "PEER"),
        ("r2", "tcp 192.168.77.2 4000 filter", "FILTER"),
        ("r3", "tcp 192.168.77.9 4000 third-party", "THIRD_PARTY"),
        ("r4", "132 192.168.77.2 4000", "only TCP and UDP"),
        ("r5", "udp fd77:77:77::2 4000", "WANIPv6FirewallControl"),
        ("r6", "tcp 192.168.77.2 4000", None)]:
    ev = d.query(f"refuse {key} {args}", "refuse")
    reason = ev.get("reason") if ev else "no answer"
    if want is None:
        t.check(ev is not None and reason is None, f"refuse_reason({args}) is NULL, saw {reason!r}")
    else:
        t.check(reason is not None and want in reason, f"refuse_reason({args}) mentions {want}, saw {reason!r}")
m = d.mark()
d.send("add r7 tcp 192.168.77.2 4000 0 60 peer")
ev = d.wait(lambda e: e["ev"] in ("added", "error"), 10, since=m)
t.check(ev is not None and ev["ev"] == "error" and "PEER" in ev["msg"],
        f"add with PEER is refused with the sentence, saw {ev}")

# another host (192.168.77.3) holds tcp 6000: never overwritten
subprocess.run(["ip", "netns", "exec", t.nsc, "ip", "addr", "add", "192.168.77.3/24", "dev", "c0"], check=True)
with open(os.path.join(t.lab_dir, "miniupnpd.log"), errors="replace") as f:
    port = re.findall(r"HTTP listening on port (\d+)", f.read())[-1]
soap = subprocess.run(["ip", "netns", "exec", t.nsc, upnpit.PY, os.path.join(upnpit.HERE, "soap.py"),
                       "--source", "192.168.77.3", "--igd", f"{t.router4}:{port}", "AddPortMapping",
                       "NewRemoteHost=", "NewExternalPort=6000", "NewProtocol=TCP", "NewInternalPort=6000",
                       "NewInternalClient=192.168.77.3", "NewEnabled=1", "NewPortMappingDescription=other",
                       "NewLeaseDuration=3600"], capture_output=True, text=True, timeout=30)
t.require(soap.returncode == 0, f"another host maps tcp 6000 through miniupnpd, saw {soap.stdout} {soap.stderr}")
t.check(("tcp", 6000, "192.168.77.3", 6000) in t.dnat(), "the other host's rule tcp 6000 -> 192.168.77.3 exists")

d.add("c", "tcp", 4102, 6000)
c = d.wait_mapping("c", lambda e: e["state"] != "pending", 20, what="active or failed")
t.check(c["state"] == "active" and c["ext_port"] not in (0, 6000),
        f"suggested port 6000 held by another host: active on another port, saw {c['state']} {c['ext_port']}")
d.add("e", "tcp", 4103, 6000, 3600, "prefer-failure")
e = d.wait_mapping("e", lambda e: e["state"] != "pending", 20, what="failed")
t.check(e["state"] == "failed" and e["error"] == "CANNOT_PROVIDE_EXTERNAL",
        f"prefer-failure on a port another host holds: failed CANNOT_PROVIDE_EXTERNAL, saw {e['state']} {e['error']}")
rules = t.dnat()
t.check(("tcp", 6000, "192.168.77.3", 6000) in rules,
        f"the other host's rule tcp 6000 -> 192.168.77.3 is still there, saw {sorted(rules)}")
t.check(("tcp", c["ext_port"], t.client4, 4102) in rules,
        f"our rule tcp {c['ext_port']} -> {t.client4}:4102 exists, saw {sorted(rules)}")

# removal
m = d.mark()
d.send("remove a")
ev = d.wait_deleted("a", 20, since=m)
t.check(ev["upstream"], f"removal confirmed by the IGD (deleted_upstream), saw {ev}")
rules = t.dnat()
t.check(not any(r[0] == "tcp" and r[1] == 4100 for r in rules), f"no DNAT rule for tcp 4100 left, saw {sorted(rules)}")
r = t.lab("reach", "tcp", wan, "4100", "4100", check=False)
t.check(not r.startswith("reached"), f"wan -> tcp {wan}:4100 no longer reaches the client, saw: {r.strip()}")
m = d.mark()
d.send("remove e")  # never granted: nothing to delete at the IGD
ev = d.wait_deleted("e", 20, since=m)
t.check(("tcp", 6000, "192.168.77.3", 6000) in t.dnat(),
        "removing the failed mapping did not delete the other host's rule")
st = d.stats()
t.check(st and st["ssdp_refused"] == 0 and st["bodies_refused"] == 0,
        f"nothing from miniupnpd refused by the SSDP/HTTP checks, saw {json.dumps(st)}")
t.finish()
