#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Self-check of nmlab: Debian's real NetworkManager, leased by dnsmasq with the PCP server
options, read through libnm as pcpd-nm will read it.

1. up: option 158 names 192.168.77.5 and option 86 fd77:77:77::5, while the default gateway
   is 192.168.77.1 (the PCP server is not the gateway); dhclient says it asked for both
2. a change to two DHCPv4 servers and a second DHCPv6 address, renewed: both appear
   (v4 on the same DHCP4Config object; v6 after a reconnect, on a new object)
3. a reconnect: Dhcp4Config goes to a new object, filled in after
4. NetworkManager stops (nm-running false) and starts again: the options come back
5. a process in the client namespace reaches the private bus on /run/dbus
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nmlab  # noqa: E402

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def main():
    try:
        nmlab.check_prerequisites()
        import nmwatch  # noqa: F401  (python3-gi, gir1.2-nm-1.0)
    except nmlab.Missing as e:
        nmlab.exit_missing(str(e))
    except (ImportError, ValueError) as e:
        nmlab.exit_missing(f"libnm for Python (python3-gi, gir1.2-nm-1.0): {e}")
    import nmwatch

    t_all = time.monotonic()
    steps = {}
    with nmlab.NMLab() as lab:
        steps["up"] = time.monotonic() - t_all
        w = nmwatch.Watch(lab.bus_address)

        # 1
        t = time.monotonic()
        w.wait(lambda: w.option(4) == "4 192 168 77 5" and w.option(6) == "fd77:77:77::5",
               "libnm to show pcp_server 192.168.77.5 and dhcp6_pcp_server fd77:77:77::5")
        o4, o6 = w.options(4), w.options(6)
        check(o4.get("routers") == nmlab.GW4, f"the default gateway is {nmlab.GW4} (routers = {o4.get('routers')})")
        check(o4.get("requested_pcp_server") == "1", "dhclient asked for option 158 (requested_pcp_server = 1)")
        check(o6.get("requested_dhcp6_pcp_server") == "1", "dhclient -6 asked for option 86")
        check(w.primary() is not None and w.primary()[1] == "c0", f"primary connection on c0: {w.primary()}")
        steps["read"] = time.monotonic() - t

        # 2: a second server
        t = time.monotonic()
        path4 = w.config_path(4)
        lab.set_options(v4=[[nmlab.PCP1_V4], [nmlab.PCP2_V4]], v6=[[nmlab.PCP1_V6, nmlab.PCP2_V6]])
        lab.renew(4)
        w.wait(lambda: w.option(4) == "4 192 168 77 5 4 192 168 77 6", "both DHCPv4 servers after a renewal")
        check(True, "DHCPv4: both servers appear: " + w.option(4))
        check(w.config_path(4) == path4, f"renewal kept the DHCP4Config object {path4}")
        lab.renew(6)
        w.wait(lambda: w.option(6) == "fd77:77:77::5 fd77:77:77::6", "both DHCPv6 addresses after a renewal")
        check(True, "DHCPv6: both addresses appear: " + w.option(6))
        steps["change"] = time.monotonic() - t

        # 3: a reconnect replaces the config objects
        t = time.monotonic()
        path4 = w.config_path(4)
        mark = time.monotonic()
        lab.reconnect()
        w.wait(lambda: w.config_path(4) not in (None, path4) and w.option(4) is not None,
               f"a new DHCP4Config (was {path4}) with the options filled in")
        seen = [e[2] for e in w.events_since(mark, "dhcp4-config")]
        check(len(seen) >= 2 and seen[0] == "/" and seen[-1] == w.config_path(4),
              f"Dhcp4Config went to / and then to the new object: {seen}")
        primaries = [e[2] for e in w.events_since(mark, "primary-connection")]
        check(None in primaries and primaries[-1] is not None and primaries[-1][1] == "c0",
              f"the primary connection went away and came back: {primaries}")
        check(w.option(4) == "4 192 168 77 5 4 192 168 77 6", f"same servers after reconnect: {w.option(4)}")
        steps["reconnect"] = time.monotonic() - t

        # 4: NetworkManager leaves the bus and comes back
        t = time.monotonic()
        lab.stop_nm()
        w.wait(lambda: not w.nm_running(), "libnm to see NetworkManager gone")
        check(w.device() is None, "no device while NetworkManager is away")
        lab.start_nm()
        w.wait(lambda: w.nm_running() and w.option(4) is not None and w.option(6) is not None,
               "NetworkManager back with both options")
        check(w.option(4) == "4 192 168 77 5 4 192 168 77 6" and w.option(6) == "fd77:77:77::5 fd77:77:77::6",
              f"options after NetworkManager's restart: {w.option(4)!r} / {w.option(6)!r}")
        steps["restart"] = time.monotonic() - t

        # 5: the bus for pcpd, from inside the client namespace, without the variable
        t = time.monotonic()
        p = lab.client_popen(["env", "-u", "DBUS_SYSTEM_BUS_ADDRESS", "nmcli", "-t", "-f", "RUNNING", "general"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=30)
        check(p.returncode == 0 and out.strip() == "running",
              f"nmcli in the client namespace over /run/dbus: {out.strip()!r} {err.strip()[-200:]!r}")
        steps["exec"] = time.monotonic() - t
        w.close()
    steps["total"] = time.monotonic() - t_all
    print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in steps.items()), flush=True)
    leftovers = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                 if lab.state.get("id", "-") in n]
    check(not leftovers and not os.path.exists(os.path.join(nmlab.BASE, lab.state["id"])),
          f"torn down: no namespace or directory left ({leftovers})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
