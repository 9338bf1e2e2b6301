#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpd's modules (daemon/pcpd-module.h): the UPnP-IGD client pcpd-upnp.so is loaded from
PCPD_MODULE_DIR when a router speaks neither PCP nor NAT-PMP; when it cannot be loaded,
pcpd says so once, with the path and dlerror(), and goes on without the fallback (the
mapping stays failed, with PCP's error). (pcpd-nm.so missing: tests/nm, test_module_missing.)
pcpd runs in a network namespace whose default router is a local address where nothing
listens on 5351 (ICMP port unreachable). Needs root and network namespaces."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import BusTestCase, MANAGER, MAPPING, NetNS, PATH, main, netns_preflight, preflight, slurp, wait_until  # noqa: E402

HOST, ROUTER = '10.77.9.2', '10.77.9.1'
CAP = 60  # seconds, for events


class ModulesTest(BusTestCase):

    def router_without_pcp(self, **kw):
        ns = NetNS('modules')
        self.addCleanup(ns.close)
        ns.ip('link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan0p')
        ns.ip('link', 'set', 'lan0p', 'up')
        ns.ip('link', 'set', 'lan0', 'up')
        ns.ip('addr', 'add', HOST + '/24', 'dev', 'lan0')
        ns.ip('addr', 'add', ROUTER + '/24', 'dev', 'lan0p')
        ns.ip('route', 'add', 'default', 'via', ROUTER, 'dev', 'lan0')
        return self.make_env(refserver=False, netns=ns.name, start=False, use_default_routers=True, **kw)

    def test_upnp_module_loaded(self):
        """The build tree's module, found through PCPD_MODULE_DIR (set by meson test)."""
        env = self.router_without_pcp()
        env.start_pcpd(wait_ready=False)
        env.add_mapping('tcp', 8080)
        want = f'Searching for a UPnP-IGD at {ROUTER} on lan0'
        wait_until(lambda: want in slurp(env.pcpd_log), CAP, f'"{want}" in the log')
        self.assertNotIn('cannot load the module', slurp(env.pcpd_log))

    def test_upnp_module_missing(self):
        env = self.router_without_pcp()
        empty = os.path.join(env.tmp, 'no-modules')
        os.mkdir(empty)
        env.env['PCPD_MODULE_DIR'] = empty
        env.start_pcpd(wait_ready=False)
        path = env.add_mapping('tcp', 8080)
        want = f'The UPnP-IGD fallback is not available: cannot load the module {empty}/pcpd-upnp.so: '
        wait_until(lambda: want in slurp(env.pcpd_log), CAP, f'"{want}" in the log')
        self.assertIn('No such file or directory', slurp(env.pcpd_log))
        # the mapping stays as PCP left it, and pcpd goes on serving
        env.wait_state(path, 'failed', CAP)
        self.assertNotEqual(env.get(path, MAPPING, 'Error'), '')
        path2 = env.add_mapping('udp', 8081)
        env.wait_state(path2, 'failed', CAP)
        self.assertIsInstance(env.get(PATH, MANAGER, 'State'), str)
        # more mappings, each one more look at the fallback: the interface's warning about
        # the missing module is said once (the first), not once per mapping
        more = [env.add_mapping('tcp', port) for port in (8082, 8083, 8084)]
        for p in more:
            env.wait_state(p, 'failed', CAP)
        self.assertNotIn('Searching for a UPnP-IGD', slurp(env.pcpd_log))
        self.assertEqual(slurp(env.pcpd_log).count(want), 1)
        # (the log is verbose: later ones may still be there at debug level)
        unusable = 'UPnP-IGD on lan0 cannot be used: '
        log = slurp(env.pcpd_log)
        said = [line for line in log.splitlines() if unusable in line and ' debug: ' not in line]
        self.assertEqual(len(said), 1, f'"{unusable}" {len(said)} times above debug over 5 mappings:\n{log}')
        env.assert_alive()


if __name__ == '__main__':
    preflight()
    netns_preflight()
    main()
