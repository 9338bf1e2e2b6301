#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""upnp-miniupnpd-restart: restarts of the router and of pcpd (lab.sh --upnp yes).

UPnP has no epoch: pcpd-upnp checks its mappings with GetSpecificPortMappingEntry when the
IGD announces itself again (byebye + alive on a restart) and at every renewal.
(a) miniupnpd restarted with its rules flushed but its lease file kept: it restores the
    mapping itself; pcpd-upnp finds it still its own (no recreation), same port, traffic;
(b) restarted with the lease file removed too (a reboot that forgets): the mapping is
    recreated on the same external port (event "recreated"), traffic again;
(c) pcpd killed -9 and started again, asking for the recorded external port: the check finds
    the mapping its own and refreshes it: one rule, no duplicate;
(d) pcpd killed -9 with a mapping nobody reclaims: pcpd_upnp_remove_record() after the
    restart deletes it at the IGD.
"""
import upnpit

t = upnpit.Test("upnp: miniupnpd restarts (lease file kept / lost), pcpd restart, crash cleanup")
wan = t.wan_addr()
# SSDP is UDP: a discovery round that goes unanswered is repeated after the search interval
# (the driver's default, 30 s), so waits for an IGD allow one repetition
FIND_S = 2 * 30 + 10
d = t.driver("--check-interval", "60")
first = d.wait_igd(FIND_S)
t.require(first is not None, f"the IGD (miniupnpd) found within {FIND_S} s")
d.add("a", "tcp", 4300, 35001)
a = d.wait_mapping("a", lambda e: e["state"] == "active", 20, what="active")
t.check(a["ext_port"] == 35001, f"active on the suggested port 35001, saw {a['ext_port']}")


def one_rule(port, iport):
    rules = [r for r in t.dnat() if r[0] == "tcp" and r[1] == port]
    return rules == [("tcp", port, t.client4, iport)], rules


# (a) lease file kept
m = d.mark()
t.lab("upnpd-restart")
# the restarted miniupnpd (a new HTTP port): not an event of the old one that came late (its
# WANIPv6FirewallControl seen a moment after it was found)
ev = d.wait(lambda e: e["ev"] == "igd" and e["present"] and e["port"] != first["port"], FIND_S, since=m)
t.require(ev is not None, f"(a) the restarted IGD announced itself again within {FIND_S} s, saw IGD events "
                          f"{d.find(lambda e: e['ev'] == 'igd', since=m)}")
# the verdict on the mapping is the driver's check at the restarted IGD (GetSpecificPortMappingEntry,
# then AddPortMapping): its event, not the absence of one at some moment (which proved nothing
# while the check was still running, and let (b) restart the router under it)
a = d.wait_mapping("a", lambda e: e["state"] == "active", 30, since=d.after(ev),
                   what="checked at the restarted IGD (an active event after the IGD's)")
t.check(not a["recreated"] and a["ext_port"] == 35001,
        f"(a) the mapping was found in place on 35001 (miniupnpd's lease file), not recreated, saw {a}")
ok = t.wait_until(lambda: one_rule(35001, 4300)[0], 20, "(a) the DNAT rule tcp 35001 back", fatal=False)
t.check(ok, f"(a) exactly one DNAT rule tcp 35001 -> {t.client4}:4300 after the restart, saw {one_rule(35001, 4300)[1]}")
r = t.lab("reach", "tcp", wan, "35001", "4300", check=False)
t.check(r.startswith("reached"), f"(a) traffic to {wan}:35001 reaches the client, saw: {r.strip()}")

# (b) lease file lost: the router forgot
m = d.mark()
t.lab("upnpd-restart", "--drop-leases")
ev = d.wait_mapping("a", lambda e: e["recreated"] and e["state"] == "active", FIND_S, since=m,
                    what="recreated after the router forgot it")
t.check(ev["ext_port"] == 35001, f"(b) recreated on the same external port 35001, saw {ev['ext_port']}")
ok = t.wait_until(lambda: one_rule(35001, 4300)[0], 10, "(b) DNAT rule", fatal=False)
t.check(ok, f"(b) exactly one DNAT rule tcp 35001 after recreation, saw {one_rule(35001, 4300)[1]}")
r = t.lab("reach", "tcp", wan, "35001", "4300", check=False)
t.check(r.startswith("reached"), f"(b) traffic to {wan}:35001 reaches the client, saw: {r.strip()}")

# (c) pcpd (the driver) killed -9, restarted, the app asks again with the recorded port
rec = d.query("record a", "record")
t.check(rec and rec["ev"] == "record" and rec["ext_port"] == 35001 and rec["igd"] == t.router4,
        f"the record to persist: tcp 35001 -> {t.client4}:4300 at {t.router4}, saw {rec}")
d.add("b", "udp", 4301, 35002)
b = d.wait_mapping("b", lambda e: e["state"] == "active", 20, what="active")
d.kill9()
d2 = t.driver(name="driver-restarted")
t.require(d2.wait_igd(FIND_S) is not None, f"(c) the restarted driver finds the IGD within {FIND_S} s, saw IGD events "
                                           f"{d2.find(lambda e: e['ev'] == 'igd')}")
d2.add("a", "tcp", 4300, rec["ext_port"])
a2 = d2.wait_mapping("a", lambda e: e["state"] == "active", 20, what="active")
t.check(a2["ext_port"] == 35001 and not a2["recreated"],
        f"(c) the mapping is taken back on 35001 (found ours, not recreated), saw {a2}")
t.check(one_rule(35001, 4300)[0], f"(c) still exactly one rule tcp 35001, saw {one_rule(35001, 4300)[1]}")

# (d) b was not reclaimed: delete it from its record
t.check(("udp", 35002, t.client4, 4301) in t.dnat(), "(d) the orphan udp 35002 rule is still there before cleanup")
m = d2.mark()
d2.send(f"remove-record b udp 35002 {t.client4} 4301")
ev = d2.wait_deleted("b", 20, since=m)
t.check(ev["upstream"], f"(d) the orphan was deleted at the IGD, saw {ev}")
t.check(("udp", 35002, t.client4, 4301) not in t.dnat(), f"(d) no udp 35002 rule left, saw {sorted(t.dnat())}")
t.finish()
