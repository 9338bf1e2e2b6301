#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Self-check of nmmock: a libnm client (python3-gi NM, as pcpd-nm will use libnm) sees each
change the mock can make, in the shape the real NetworkManager gives it:

 1. the leases' options and the primary connection
 2. a renewal that changes nothing still re-sends every option (same object)
 3. a renewal that changes the option (a second server)
 4. a reconnect: Dhcp4Config goes to "/", then a new object, empty first, filled later
 5. a stale DHCP6Config after an ipv6 reapply: nothing at all is emitted
 6. the primary connection moves to another device and back
 7. a VPN comes up (primary, vpn) and goes away (primary back)
 8. a link goes down (no config objects) and up
 9. NetworkManager leaves the bus and comes back with the same leases
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def skip(reason):
    if os.environ.get("CI") == "true":
        print(f"FAIL: prerequisite missing in CI: {reason}", flush=True)
        sys.exit(1)
    print(f"SKIP: {reason}", flush=True)
    sys.exit(77)


def main():
    try:
        import dbusmock  # noqa: F401
        import nmmock
        import nmwatch
    except (ImportError, ValueError) as e:
        skip(f"python3-dbusmock, python3-dbus or libnm for Python (python3-gi, gir1.2-nm-1.0): {e}")

    t0 = time.monotonic()
    lease4 = {"ip_address": "192.168.77.100", "routers": "192.168.77.1", "requested_pcp_server": "1",
              "pcp_server": "4 192 168 77 5", "expiry": "2000000000"}
    lease6 = {"dhcp6_server_id": "0:1:0:1", "requested_dhcp6_pcp_server": "1", "dhcp6_pcp_server": "fd77:77:77::5",
              "life_starts": "1796205697", "max_life": "120"}
    with nmmock.NMMock() as nm:
        nm.add_device("eth0", dhcp4=lease4, dhcp6=lease6)
        nm.add_device("wlan0", dhcp4={"ip_address": "10.0.0.100", "routers": "10.0.0.1"})
        w = nmwatch.Watch(nm.bus_address, iface="eth0")

        def barrier():
            want = nm.barrier()
            w.wait(lambda: w.client.get_connectivity() == want, "the mock's barrier (Connectivity)")

        # 1
        barrier()
        w.wait(lambda: w.option(4) == "4 192 168 77 5" and w.option(6) == "fd77:77:77::5",
               "both options through libnm")
        w.wait(lambda: w.primary() is not None, "a primary connection")
        check(w.primary() == ("mock-eth0", "eth0", False), f"primary connection: {w.primary()}")
        wlan = w.client.get_device_by_iface("wlan0")
        check(wlan is not None and wlan.get_dhcp4_config() is not None
              and "pcp_server" not in wlan.get_dhcp4_config().get_options(), "wlan0: a lease without the option")
        check(w.device().get_ip_iface() == "eth0", f"IpInterface: {w.device().get_ip_iface()}")

        # 2: a renewal that changes nothing re-sends everything
        mark, path = time.monotonic(), w.config_path(4)
        nm.renew("eth0", 4)
        w.wait(lambda: w.events_since(mark, "options"), "PropertiesChanged(Options) after an unchanged renewal")
        ev = w.events_since(mark, "options")[-1][2]
        check(ev[0] == path and ev[1]["pcp_server"] == "4 192 168 77 5" and ev[1]["expiry"] != "2000000000",
              "an unchanged renewal: the same object, every option again, a new expiry")

        # 3: a renewal with a second server
        nm.set_dhcp("eth0", 4, dict(lease4, pcp_server="4 192 168 77 5 4 192 168 77 6"))
        w.wait(lambda: w.option(4) == "4 192 168 77 5 4 192 168 77 6", "the second server")
        check(w.config_path(4) == path, "still the same DHCP4Config object")

        # 4: a reconnect, filled later
        mark = time.monotonic()
        nm.reconnect("eth0", fill=False)
        w.wait(lambda: w.config_path(4) not in (None, path), "a new DHCP4Config")
        check(w.options(4) == {}, f"the new DHCP4Config starts empty: {w.options(4)}")
        seen = [e[2] for e in w.events_since(mark, "dhcp4-config")]
        check(seen[0] == "/" and seen[-1] == w.config_path(4), f"Dhcp4Config went to / then the new object: {seen}")
        prim = [e[2] for e in w.events_since(mark, "primary-connection")]
        check(None in prim and prim[-1] is not None, f"the primary connection went and came back: {prim}")
        # (the old object is emptied before it goes, as NetworkManager does; whether libnm
        # still reports that for an object the device no longer points to is libnm's
        # business: with the real one it did, see test-nm-selfcheck.py)
        nm.fill("eth0")
        w.wait(lambda: w.option(4) == "4 192 168 77 5 4 192 168 77 6" and w.option(6) == "fd77:77:77::5",
               "the new objects filled in")

        # 5: stale DHCP6Config: nothing happens, the options stay
        mark, path6 = time.monotonic(), w.config_path(6)
        nm.reapply_ipv6("eth0")
        barrier()
        check(not w.events_since(mark, "options") and not w.events_since(mark, "dhcp6-config"),
              "an ipv6 reapply: no signal at all")
        check(w.config_path(6) == path6 and w.option(6) == "fd77:77:77::5", "the stale DHCP6Config stays as it was")

        # 6: primary to wlan0 and back
        nm.set_primary("wlan0")
        w.wait(lambda: w.primary() is not None and w.primary()[1] == "wlan0", "primary connection on wlan0")
        nm.set_primary("eth0")
        w.wait(lambda: w.primary() is not None and w.primary()[1] == "eth0", "primary connection back on eth0")
        check(True, "primary connection moved to wlan0 and back")

        # 7: a VPN
        nm.vpn_up("tun0")
        w.wait(lambda: w.primary() is not None and w.primary()[1] == "tun0", "the VPN as primary connection")
        check(w.primary()[2] is True, f"the primary connection is a VPN: {w.primary()}")
        nm.vpn_down("tun0")
        w.wait(lambda: w.primary() is not None and w.primary()[1] == "eth0", "the primary back on eth0 after the VPN")
        check(True, "VPN up and down")

        # 8: link down and up
        nm.link_down("eth0")
        w.wait(lambda: w.config(4) is None and w.config(6) is None, "no config objects on a link that is down")
        # the mock drops the config objects first and then sets the device's state (as
        # separate bus calls, nmmock.link_down()): libnm may show the one before the other
        w.wait(lambda: w.device().get_state() != 100, "eth0 no longer activated after the link went down")
        check(w.device().get_state() != 100, f"eth0 no longer activated ({w.device().get_state()})")
        nm.link_up("eth0")
        w.wait(lambda: w.option(4) is not None and w.option(6) is not None, "the leases back after link up")
        check(True, "link down and up")

        # 9: NetworkManager leaves and comes back
        nm.stop()
        w.wait(lambda: not w.nm_running(), "libnm to see NetworkManager gone")
        check(w.device() is None, "no device while NetworkManager is away")
        nm.start()
        w.wait(lambda: w.nm_running() and w.option(4) == "4 192 168 77 5 4 192 168 77 6"
               and w.option(6) == "fd77:77:77::5", "NetworkManager back with the leases")
        w.wait(lambda: w.primary() is not None and w.primary()[1] == "eth0", "the primary connection after the restart")
        check(True, "NetworkManager left the bus and came back")
        w.close()
    print(f"timings: total {time.monotonic() - t0:.2f}s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
