#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpd's NetworkManager discovery against the mock (nmmock.py) on pcpd's private bus:
PCP servers from DHCP options through libnm, and every change the mock can show (a renewal
that re-sends the option, an option that changes, a reconnect whose config objects are "/"
then empty, link down and up, NetworkManager leaving and coming back, appearing after pcpd,
a DHCPv6 lease that runs out, a VPN as primary connection).

pcpd runs in a network namespace of its own where the announced servers (pcp-refserver)
listen on 10.77.0.5 and 10.77.0.6 (RFC 7291 drops loopback addresses, so the bus tests'
127.x servers cannot be announced). Needs root and network namespaces; a skip only
outside CI."""

import os
import re
import subprocess
import sys
import time
import unittest

from gi.repository import GLib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'bus'))
import pcpdtest  # noqa: E402
from pcpdtest import (ERR, MANAGER, MAPPING, PATH, PCPCTL, REFSERVER, BusTestCase, NetNS, netns_preflight,  # noqa: E402
                      preflight, slurp, wait_until)

try:
    import nmmock  # noqa: E402
except ImportError as e:  # python3-dbus missing
    nmmock = None
    NMMOCK_ERROR = str(e)

# the mock NetworkManager needs its name and its Mock interface on pcpd's test bus
pcpdtest.BUS_CONFIG = pcpdtest.BUS_CONFIG.replace(
    '<allow own="org.freedesktop.PolicyKit1"/>',
    '<allow own="org.freedesktop.PolicyKit1"/>\n    <allow own="org.freedesktop.NetworkManager"/>\n'
    '    <allow send_destination="org.freedesktop.NetworkManager"/>\n'
    '    <allow own="org.freedesktop.login1"/>')

S1, S2 = '10.77.0.5', '10.77.0.6'
OPT1 = {'pcp_server': '4 10 77 0 5', 'requested_pcp_server': '1'}
OPT2 = {'pcp_server': '4 10 77 0 6', 'requested_pcp_server': '1'}
CAP = 20  # seconds: generous caps, for events


def dump(ctl):
    r = subprocess.run([REFSERVER, 'ctl', ctl, 'dump'], capture_output=True, text=True, timeout=10)
    out = r.stdout + r.stderr
    if not out.startswith('ok'):
        raise AssertionError(f'refserver ctl dump: {out}')
    res = []
    for line in out.splitlines()[1:]:
        m = re.search(r' (\S+):(\d+) -> (\S+):(\d+).* nonce ([0-9a-f]+)', line)
        if m is None:
            raise AssertionError('unparsable dump line: ' + line)
        res.append(dict(internal_port=int(m[2]), external_port=int(m[4]), nonce=m[5]))
    return res


class NMMockTest(BusTestCase):

    def setUp(self):
        self.ns = NetNS('nmmock')
        self.addCleanup(self.ns.close)
        # a veth pair, up, with the servers' addresses (the dummy driver is not everywhere)
        for name in ('eth0', 'eth1'):
            self.ns.ip('link', 'add', name, 'type', 'veth', 'peer', 'name', name + 'p')
            self.ns.ip('link', 'set', name + 'p', 'up')
            self.ns.ip('link', 'set', name, 'up')
        for a in ('10.77.0.2/24', S1 + '/24', S2 + '/24'):
            self.ns.ip('addr', 'add', a, 'dev', 'eth0')
        self.env = self.make_env(refserver=False, netns=self.ns.name, start=False)
        self.ctl = {}
        for ip in (S1, S2):
            ctl = os.path.join(self.env.tmp, f'ref-{ip}.ctl')
            with open(os.path.join(self.env.tmp, f'ref-{ip}.out'), 'w') as out:
                p = subprocess.Popen(['ip', 'netns', 'exec', self.ns.name, REFSERVER, '--listen', ip, '--port',
                                      '5351', '--external', '198.51.100.7', '--control', ctl], stdout=out,
                                     stderr=subprocess.STDOUT)
            self.env.procs.append(p)
            wait_until(lambda: os.path.exists(ctl) or p.poll() is not None, 10, f'refserver on {ip}')
            self.assertIsNone(p.poll(), f'refserver on {ip} died')
            self.ctl[ip] = ctl
        self.nm = nmmock.NMMock(bus_address=self.env.address)
        self.addCleanup(self.nm.down)
        self.nm.up()

    # ---- helpers ----
    def tearDown(self):
        # libnm or GLib complaining in pcpd is a bug even when the behaviour looked right
        log = slurp(self.env.pcpd_log) if getattr(self.env, 'pcpd_log', None) else ''
        for bad in ('CRITICAL', 'GLib-GObject-WARNING', 'libnm-WARNING'):
            self.assertNotIn(bad, log)
        if self.env.pcpd is not None:
            self.env.assert_alive()

    def servers(self):
        return [(s[0], s[1], s[2]) for s in self.env.get(PATH, MANAGER, 'Servers')]

    def wait_servers(self, want, what):
        wait_until(lambda: sorted(self.servers()) == sorted(want), CAP,
                   f'Servers == {want} ({what}); have {self.servers()}')

    def applied_mark(self):
        return len(slurp(self.env.pcpd_log))

    def wait_applied(self, mark):
        """A pass over NetworkManager's state that saw every change made before: the mock's
        barrier (Connectivity) is in a pass logged after mark."""
        value = self.nm.barrier()

        def seen():
            log = slurp(self.env.pcpd_log)[mark:]
            return f'connectivity {value})' in log
        wait_until(seen, CAP, f'a pass with connectivity {value}')

    def pcpctl(self, *args):
        r = subprocess.run([PCPCTL, '--no-pager'] + list(args), env=self.env.env, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def mapping(self, port):
        path = self.env.add_mapping('tcp', port)
        self.env.wait_state(path, 'active', CAP)
        return path

    def flush(self):
        """Every signal pcpd sent before now is in env.signals: a call's reply comes after
        them on the connection, and their handlers are queued before it returns."""
        self.env.get(PATH, MANAGER, 'State')
        ctx = GLib.MainContext.default()
        while ctx.pending():
            ctx.iteration(False)

    def changed_props(self, path, since):
        """Names of the mapping's properties in PropertiesChanged signals after index since."""
        self.flush()
        names = []
        for p, iface, member, args in self.env.signals[since:]:
            if p == path and member == 'PropertiesChanged' and args[0] == MAPPING:
                names += list(args[1].keys())
        return names

    # ---- tests ----
    def test_follow_changes(self):
        self.nm.add_device('eth0', dhcp4=dict(OPT1, expiry=str(int(time.time()) + 3600)))
        self.env.start_pcpd(wait_ready=False)
        self.wait_servers([('eth0', S1, 'dhcpv4')], 'from the DHCPv4 option')
        wait_until(lambda: self.env.get(PATH, MANAGER, 'State') == 'ready', CAP, 'State ready')
        path = self.mapping(4242)
        props = self.env.get_all(path)
        self.assertEqual(props['Server'], S1)
        first = dump(self.ctl[S1])
        self.assertEqual([m['internal_port'] for m in first], [4242])

        # a renewal re-sends every option: nothing changes
        mark, sig = self.applied_mark(), len(self.env.signals)
        self.nm.renew('eth0', 4)
        self.wait_applied(mark)
        self.assertEqual(self.servers(), [('eth0', S1, 'dhcpv4')])
        self.assertNotIn('Server', self.changed_props(path, sig))
        self.assertEqual(dump(self.ctl[S1]), first)

        # the option changes: the mapping moves to the new server, apps are told
        sig = len(self.env.signals)
        self.nm.set_dhcp('eth0', 4, dict(OPT2, expiry=str(int(time.time()) + 3600)))
        self.wait_servers([('eth0', S2, 'dhcpv4')], 'after the option changed')
        wait_until(lambda: self.env.get(path, MAPPING, 'Server') == S2, CAP, 'the mapping on the new server')
        self.env.wait_state(path, 'active', CAP)
        self.assertIn('Server', self.changed_props(path, sig))
        on2 = dump(self.ctl[S2])
        self.assertEqual([m['internal_port'] for m in on2], [4242])

        # a reconnect: config objects "/" then new empty ones; the lease stays known. In
        # between, the device has no active connection (DISCONNECTED for a new activation):
        # a pass there, as pcpd's settle timer can make on a slow host, changes nothing
        mark, sig = self.applied_mark(), len(self.env.signals)
        self.nm.reconnect_begin('eth0')
        self.wait_applied(mark)
        self.assertEqual(self.servers(), [('eth0', S2, 'dhcpv4')], 'between the two active connections')
        mark = self.applied_mark()
        self.nm.reconnect_end('eth0', fill=False)
        self.wait_applied(mark)
        self.assertEqual(self.servers(), [('eth0', S2, 'dhcpv4')])
        mark = self.applied_mark()
        self.nm.fill('eth0')
        self.wait_applied(mark)
        self.assertEqual(self.servers(), [('eth0', S2, 'dhcpv4')])
        self.assertNotIn('Server', self.changed_props(path, sig))
        self.assertEqual(self.env.get(path, MAPPING, 'State'), 'active')

        # link down: no server; the mapping waits and says why
        self.nm.link_down('eth0')
        self.wait_servers([], 'link down')
        wait_until(lambda: self.env.get(path, MAPPING, 'Error') == 'NO_SERVER', CAP, 'Error NO_SERVER')
        props = self.env.get_all(path)
        self.assertEqual(props['State'], 'failed')
        self.assertEqual(props['Server'], '')
        self.assertDBusError(ERR + 'NoServer', self.env.add_mapping, 'tcp', 4343)

        # link up: the same server again, the same upstream mapping (its nonce)
        self.nm.link_up('eth0')
        self.wait_servers([('eth0', S2, 'dhcpv4')], 'link up')
        wait_until(lambda: self.env.get(path, MAPPING, 'Server') == S2, CAP, 'the mapping back on its server')
        self.env.wait_state(path, 'active', CAP)
        self.assertEqual(self.env.get(path, MAPPING, 'Error'), '')
        again = dump(self.ctl[S2])
        self.assertEqual(len(again), 1, again)
        self.assertEqual(again[0]['nonce'], on2[0]['nonce'])
        self.assertEqual(again[0]['external_port'], on2[0]['external_port'])

        # NetworkManager leaves the bus and comes back: nothing moves. As the real one, it
        # first unexports its devices while still on the bus.
        sig = len(self.env.signals)
        mark = self.applied_mark()
        self.nm.unexport_devices()
        self.wait_applied(mark)
        self.assertIn('eth0: gone from NetworkManager', slurp(self.env.pcpd_log)[mark:])
        self.assertEqual(self.servers(), [('eth0', S2, 'dhcpv4')])
        self.nm.stop()
        wait_until(lambda: 'NetworkManager is not running' in slurp(self.env.pcpd_log), CAP, 'pcpd sees NM gone')
        self.assertEqual(self.servers(), [('eth0', S2, 'dhcpv4')])
        # back: first its devices without their active connections (the real one shows
        # that for a moment), then with them
        mark = self.applied_mark()
        self.nm.start(activate=False)
        self.wait_applied(mark)
        self.assertEqual(self.servers(), [('eth0', S2, 'dhcpv4')], 'devices back, no active connection yet')
        mark = self.applied_mark()
        self.nm.activate()
        self.wait_applied(mark)
        self.assertEqual(self.servers(), [('eth0', S2, 'dhcpv4')])
        self.assertNotIn('Server', self.changed_props(path, sig))
        self.assertEqual(dump(self.ctl[S2])[0]['nonce'], on2[0]['nonce'])
        self.env.assert_alive()

    def test_nm_appears_later_and_lease_runs_out(self):
        # the mock's model first (it can only be built on a running mock), then it goes
        self.nm.add_device('eth0', dhcp6={'dhcp6_pcp_server': '::ffff:' + S1, 'life_starts': str(int(time.time())),
                                          'max_life': '3600'})
        self.nm.stop()
        # without NetworkManager pcpd starts as it always did: no server here
        self.env.start_pcpd(wait_ready=False)
        wait_until(lambda: 'NetworkManager is not running' in slurp(self.env.pcpd_log), CAP, 'pcpd sees no NM')
        self.assertEqual(self.servers(), [])
        self.assertEqual(self.env.get(PATH, MANAGER, 'State'), 'no-network')
        self.assertEqual(self.env.get(PATH, MANAGER, 'NetworkManager'), 'not-running')
        # it appears: its DHCPv6 server (IPv4-mapped: an IPv4 server from DHCPv6) is used
        self.nm.start()
        self.wait_servers([('eth0', S1, 'dhcpv6')], 'NetworkManager appeared')
        path = self.mapping(5151)
        self.assertEqual(self.env.get(path, MAPPING, 'Server'), S1)
        # a lease that ends in 5 s and is never renewed (NM 1.42's stale DHCP6Config after
        # a reapply: the object stays, nothing is emitted): its server goes when it ends
        self.nm.set_dhcp('eth0', 6, {'dhcp6_pcp_server': '::ffff:' + S1, 'life_starts': str(int(time.time()) - 3595),
                                     'max_life': '3600'})
        self.nm.reapply_ipv6('eth0')
        self.wait_servers([], 'the DHCPv6 lease ran out')
        wait_until(lambda: self.env.get(path, MAPPING, 'Error') == 'NO_SERVER', CAP, 'Error NO_SERVER')

    def test_module_missing(self):
        """pcpd-nm.so (libnm, loaded when NetworkManager appears) missing: said in the log
        with its path and why, Manager.NetworkManager "unavailable", and pcpd goes on with
        the default router as its PCP server (PCPD_MODULE_DIR at an empty directory)."""
        empty = os.path.join(self.env.tmp, 'no-modules')
        os.mkdir(empty)
        self.env.env['PCPD_MODULE_DIR'] = empty
        self.env.use_default_routers = True
        self.nm.add_device('eth0', dhcp4=dict(OPT2, expiry=str(int(time.time()) + 3600)))
        self.ns.ip('route', 'add', 'default', 'via', S1, 'dev', 'eth0')
        self.env.start_pcpd(wait_ready=False)
        want = f'cannot load the module {empty}/pcpd-nm.so: '
        wait_until(lambda: want in slurp(self.env.pcpd_log), CAP, f'"{want}" in the log')
        wait_until(lambda: self.env.get(PATH, MANAGER, 'NetworkManager') == 'unavailable', CAP,
                   'NetworkManager unavailable')
        self.assertIn('No such file or directory', slurp(self.env.pcpd_log))
        # and said so (EmitsChangedSignal true)
        self.flush()
        self.assertIn('unavailable', [a[1]['NetworkManager'] for p, i, m, a in self.env.signals
                                      if m == 'PropertiesChanged' and a[0] == MANAGER and 'NetworkManager' in a[1]])
        # the default router, not the DHCP-announced S2
        self.wait_servers([('eth0', S1, 'gateway')], 'the default router')
        path = self.mapping(6161)
        self.assertEqual(self.env.get(path, MAPPING, 'Server'), S1)
        self.assertEqual([m['internal_port'] for m in dump(self.ctl[S1])], [6161])
        self.assertEqual(self.env.get(PATH, MANAGER, 'DhcpOptions'), [])
        # NetworkManager leaving and coming back: no second attempt, no crash
        self.nm.stop()
        self.nm.start()
        self.assertEqual(self.env.get(PATH, MANAGER, 'NetworkManager'), 'unavailable')
        self.assertEqual(slurp(self.env.pcpd_log).count(want), 1)

    def test_status(self):
        """Where servers came from and whether the DHCP options are asked for, per
        interface: Manager.DhcpOptions, Manager.NetworkManager and pcpctl status."""
        self.nm.add_device('eth0', dhcp4=dict(OPT1, expiry=str(int(time.time()) + 3600)),
                           dhcp6={'requested_dhcp6_pcp_server': '1', 'dhcp6_name_servers': 'fd77::1'})
        # NetworkManager's internal client: a lease, no option asked for
        self.nm.add_device('eth1', dhcp4={'ip_address': '10.77.1.2', 'routers': '10.77.1.1'}, primary=False)
        self.env.start_pcpd(wait_ready=False)
        self.wait_servers([('eth0', S1, 'dhcpv4')], 'from the DHCPv4 option')
        want = [('eth0', 'ipv4', 'received'), ('eth0', 'ipv6', 'not-offered'), ('eth1', 'ipv4', 'not-requested')]
        wait_until(lambda: sorted(self.env.get(PATH, MANAGER, 'DhcpOptions')) == want, CAP,
                   f'DhcpOptions == {want}')
        self.assertEqual(self.env.get(PATH, MANAGER, 'NetworkManager'), 'running')
        out = self.pcpctl('status')
        self.assertRegex(out, rf'(?m)^eth0 +{re.escape(S1)} +dhcpv4 +pcp +\d+$')
        self.assertIn('NetworkManager: running', out)
        self.assertIn('eth0: DHCPv4 option 158: received', out)
        self.assertIn('eth0: DHCPv6 option 86: asked for, not sent by the network', out)
        self.assertIn('eth1: DHCPv4 option 158: not asked for', out)
        # NetworkManager leaves: said so, and the options are not known any more
        sig = len(self.env.signals)
        self.nm.stop()
        wait_until(lambda: self.env.get(PATH, MANAGER, 'NetworkManager') == 'not-running', CAP, 'not-running')
        self.assertEqual(self.env.get(PATH, MANAGER, 'DhcpOptions'), [])

        def changed():
            return {k for p, i, m, a in self.env.signals[sig:] if m == 'PropertiesChanged' and a[0] == MANAGER
                    for k in a[1]}
        wait_until(lambda: {'NetworkManager', 'DhcpOptions'} <= changed(), CAP,
                   'PropertiesChanged for NetworkManager and DhcpOptions')
        self.assertIn('NetworkManager: not running', self.pcpctl('status'))

    def test_no_permissions_fetched(self):
        """pcpd asks NetworkManager to do nothing: its libnm client does not fetch the
        caller's permissions (GetPermissions: NetworkManager asks polkit about each action),
        neither at start nor when NetworkManager says they changed (CheckPermissions)."""
        self.nm.add_device('eth0', dhcp4=dict(OPT1, expiry=str(int(time.time()) + 3600)))
        self.env.start_pcpd(wait_ready=False)
        self.wait_servers([('eth0', S1, 'dhcpv4')], 'from the DHCPv4 option')
        mark = self.applied_mark()
        self.nm.mock.EmitSignal('org.freedesktop.NetworkManager', 'CheckPermissions', '', [])
        # libnm sends what it sends on the signal before it sees the barrier after it
        self.wait_applied(mark)
        calls = [str(c[1]) for c in self.nm.mock.GetCalls()]
        self.assertNotIn('GetPermissions', calls)
        self.assertEqual(self.env.get(PATH, MANAGER, 'NetworkManager'), 'running')

    def test_restart_waits_for_its_server(self):
        """A mapping saved on a DHCP-announced server: after a restart of pcpd it waits for
        NetworkManager's servers (they come after the saved state is read) and is made on
        its server again with its nonce, not dropped nor made anew."""
        self.nm.add_device('eth0', dhcp4=OPT1)
        self.env.start_pcpd(wait_ready=False)
        self.wait_servers([('eth0', S1, 'dhcpv4')], 'from the DHCPv4 option')
        path = self.mapping(7070)
        before = dump(self.ctl[S1])
        self.assertEqual(len(before), 1)
        self.env.kill_pcpd()
        self.env.start_pcpd(wait_ready=False)
        wait_until(lambda: 'which is not a server now: it waits' in slurp(self.env.pcpd_log), CAP,
                   'the restored mapping waiting')
        self.wait_servers([('eth0', S1, 'dhcpv4')], 'after the restart')
        wait_until(lambda: self.env.get(path, MAPPING, 'Server') == S1, CAP, 'the mapping on its server again')
        self.env.wait_state(path, 'active', CAP)
        after = dump(self.ctl[S1])
        self.assertEqual(len(after), 1, after)
        self.assertEqual(after[0]['nonce'], before[0]['nonce'])
        self.assertEqual(after[0]['external_port'], before[0]['external_port'])

    def test_resume_from_sleep(self):
        """logind's PrepareForSleep(false): every mapping is asked again, with its nonce
        (the server sees a refresh and keeps the port)."""
        self.nm.add_device('eth0', dhcp4=OPT1)
        self.env.start_pcpd(wait_ready=False)
        self.wait_servers([('eth0', S1, 'dhcpv4')], 'from the DHCPv4 option')
        path = self.mapping(8080)
        before = dump(self.ctl[S1])
        # this test stands in for logind: its name, then the signal from it
        r = self.env.conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                                    'RequestName', GLib.Variant('(su)', ('org.freedesktop.login1', 4)), None, 0,
                                    5000, None)
        self.assertEqual(r.unpack()[0], 1, 'owner of org.freedesktop.login1')
        mark = len(slurp(self.env.pcpd_log))
        for start in (True, False):
            self.env.conn.emit_signal(None, '/org/freedesktop/login1', 'org.freedesktop.login1.Manager',
                                      'PrepareForSleep', GLib.Variant('(b)', (start,)))
        self.env.conn.flush_sync(None)
        wait_until(lambda: 'resumed from sleep' in slurp(self.env.pcpd_log)[mark:], CAP, 'pcpd to see the resume')
        wait_until(lambda: f'{path} is made again on PCP server {S1}' in slurp(self.env.pcpd_log)[mark:], CAP,
                   'the mapping asked again')
        self.env.wait_state(path, 'active', CAP)
        self.assertEqual(self.env.get(path, MAPPING, 'Server'), S1)
        after = dump(self.ctl[S1])
        self.assertEqual(len(after), 1, after)
        self.assertEqual(after[0]['nonce'], before[0]['nonce'])
        self.assertEqual(after[0]['external_port'], before[0]['external_port'])
        self.assertEqual(self.servers(), [('eth0', S1, 'dhcpv4')])

    def test_primary_connection(self):
        """Mappings that name no interface follow the primary connection (deleted on the
        server they leave); one that names an interface stays there; a full-tunnel VPN
        without a PCP server makes them wait, and they come back when it goes."""
        self.nm.add_device('eth0', dhcp4=OPT1)
        self.nm.add_device('eth1', dhcp4=OPT2, primary=False)
        self.env.start_pcpd(wait_ready=False)
        self.wait_servers([('eth0', S1, 'dhcpv4'), ('eth1', S2, 'dhcpv4')], 'two interfaces')
        wait_until(lambda: 'Primary connection\'s interface: eth0' in slurp(self.env.pcpd_log), CAP, 'primary eth0')
        free = self.mapping(6001)
        self.assertEqual(self.env.get(free, MAPPING, 'Server'), S1)
        # the caller's interface wins over the primary one
        pinned = self.env.add_mapping('tcp', 6002, options={'interface': pcpdtest.V('s', 'eth1')})
        wait_until(lambda: self.env.get(pinned, MAPPING, 'Server') == S2, CAP, 'the mapping on eth1')
        self.env.wait_state(pinned, 'active', CAP)
        pinned_nonce = dump(self.ctl[S2])[0]['nonce']

        # the primary connection moves to eth1: the free mapping follows, and is deleted
        # on the server it left (one external port must not forward to the host twice)
        sig = len(self.env.signals)
        self.nm.set_primary('eth1')
        wait_until(lambda: self.env.get(free, MAPPING, 'Server') == S2, CAP, 'the free mapping on eth1')
        self.env.wait_state(free, 'active', CAP)
        self.assertIn('Server', self.changed_props(free, sig))
        wait_until(lambda: dump(self.ctl[S1]) == [], CAP, f'the mapping deleted on {S1}')
        on2 = {m['internal_port']: m for m in dump(self.ctl[S2])}
        self.assertEqual(sorted(on2), [6001, 6002])
        self.assertEqual(on2[6002]['nonce'], pinned_nonce, 'the pinned mapping did not move')
        self.assertEqual(self.env.get(self.mapping(6003), MAPPING, 'Server'), S2)

        # a full-tunnel VPN without a PCP server: mappings without interface wait
        self.nm.vpn_up('tun0')
        wait_until(lambda: self.env.get(free, MAPPING, 'Error') == 'NO_SERVER', CAP, 'the free mapping waits')
        self.assertEqual(self.env.get(free, MAPPING, 'Server'), '')
        self.assertEqual(self.env.get(free, MAPPING, 'State'), 'failed')
        self.assertEqual(self.env.get(pinned, MAPPING, 'Server'), S2)
        self.assertDBusError(ERR + 'NoServer', self.env.add_mapping, 'tcp', 6004)
        # the VPN goes: back on eth1's server, with the nonce it had there
        self.nm.vpn_down('tun0')
        wait_until(lambda: self.env.get(free, MAPPING, 'Server') == S2, CAP, 'the free mapping back on eth1')
        self.env.wait_state(free, 'active', CAP)
        back = {m['internal_port']: m for m in dump(self.ctl[S2])}
        self.assertEqual(back[6001]['nonce'], on2[6001]['nonce'])
        self.assertEqual(back[6001]['external_port'], on2[6001]['external_port'])
        self.assertEqual(self.env.get(self.mapping(6005), MAPPING, 'Server'), S2)


def main():
    preflight()
    netns_preflight()
    if nmmock is None:
        msg = f'this test needs python3-dbus ({NMMOCK_ERROR})'
        if os.environ.get('CI') == 'true':
            print('FAIL (CI must not skip): ' + msg)
            sys.exit(1)
        print('SKIP: ' + msg)
        sys.exit(77)
    unittest.main(verbosity=2)


if __name__ == '__main__':
    main()
