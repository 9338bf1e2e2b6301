#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What Debian's NetworkManager 1.42 shows of the PCP server options in each configuration
daemon/pcpd-dhcp.[ch] reads, checked on the real thing (nmlab) through libnm:

1. several DHCPv6 option 86 instances (one per PCP server, RFC 7291 §3; sent by nmlab's
   small DHCPv6 server, dnsmasq sends only one): only the first instance's addresses reach
   the options, space-separated. pcpd-dhcp reads "dhcp6_pcp_server" as ONE server because
   of this; if this ever fails, that reading must be revisited.
2. no dhclient definitions: neither option asked for ("requested_*" absent) nor shown.
3. option 158 sent unasked (dnsmasq's dhcp-option-force) without a definition: "unknown_158"
   in dhclient's hex spelling ("4:c0:a8:4d:5", no leading zeros).
4. NetworkManager's internal DHCP client: it reports what it asked for ("requested_*") and
   option 158 is not among them: pcpd_dhcp_request_state_get() says "not-requested".
"""

import os
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
        import nmwatch  # noqa: F401
    except nmlab.Missing as e:
        nmlab.exit_missing(str(e))
    except (ImportError, ValueError) as e:
        nmlab.exit_missing(f"libnm for Python (python3-gi, gir1.2-nm-1.0): {e}")
    import nmwatch

    t0 = time.monotonic()
    timings = {}
    first = [nmlab.PCP1_V6, "::ffff:" + nmlab.PCP1_V4]

    # 1
    t = time.monotonic()
    with nmlab.NMLab(v6=[first, [nmlab.PCP2_V6]], dhcp6="mini") as lab:
        w = nmwatch.Watch(lab.bus_address)
        w.wait(lambda: w.option(6) is not None, "dhcp6_pcp_server in NetworkManager")
        log = open(os.path.join(lab.run_dir, "dhcp6.log")).read()
        check("'pcp_servers': [['fd77:77:77::5', '::ffff:192.168.77.5'], ['fd77:77:77::6']]" in log,
              "the DHCPv6 server sends two option 86 instances")
        check(w.option(6) == "fd77:77:77::5 ::ffff:192.168.77.5",
              f"NetworkManager shows the first instance only: {w.option(6)!r}")
        # the order is the server's: swapped, the other one shows (ipv6.method=dhcp: reapply)
        lab.set_options(v6=[[nmlab.PCP2_V6], first])
        lab.renew(6)
        w.wait(lambda: w.option(6) == "fd77:77:77::6", "the other server first after the change")
        check(True, f"after the change: {w.option(6)!r}")
        w.close()
    timings["instances"] = time.monotonic() - t

    # 2
    t = time.monotonic()
    with nmlab.NMLab(v6=[first], dhcp6="mini", define_options=False) as lab:
        w = nmwatch.Watch(lab.bus_address)
        w.wait(lambda: w.options(6) and "dhcp6_server_id" in w.options(6) and w.options(4)
               and "ip_address" in w.options(4), "DHCPv4 and DHCPv6 leases")
        o4, o6 = w.options(4), w.options(6)
        check("pcp_server" not in o4 and "unknown_158" not in o4 and "requested_pcp_server" not in o4,
              "no definitions: option 158 neither asked for nor shown")
        check("dhcp6_pcp_server" not in o6 and "requested_dhcp6_pcp_server" not in o6,
              "no definitions: option 86 neither asked for nor shown")
        w.close()
    timings["no-definitions"] = time.monotonic() - t

    # 3
    t = time.monotonic()
    with nmlab.NMLab(define_options=False, force158=True, ipv6_method="disabled") as lab:
        w = nmwatch.Watch(lab.bus_address)
        w.wait(lambda: w.option(4) is not None, "option 158 in NetworkManager")
        o4 = w.options(4)
        check(o4.get("unknown_158") == "4:c0:a8:4d:5" and "pcp_server" not in o4,
              f"sent unasked, no definition: unknown_158 = {o4.get('unknown_158')!r}")
        check("requested_pcp_server" not in o4, "and not asked for")
        w.close()
    timings["unknown_158"] = time.monotonic() - t

    # 4
    t = time.monotonic()
    with nmlab.NMLab(backend="internal", ipv6_method="disabled") as lab:
        w = nmwatch.Watch(lab.bus_address)
        w.wait(lambda: w.options(4) and "ip_address" in w.options(4), "a DHCPv4 lease from the internal client")
        o4 = w.options(4)
        asked = sorted(k for k in o4 if k.startswith("requested_"))
        check(asked and "requested_pcp_server" not in o4 and "pcp_server" not in o4 and "unknown_158" not in o4,
              f"internal client: asks for {len(asked)} options, not 158")
        w.close()
    timings["internal"] = time.monotonic() - t

    timings["total"] = time.monotonic() - t0
    print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
