#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpd's Manager and Mapping objects on a private bus, as root, against pcp-refserver:
methods and their errors, properties (values and types), ObjectManager, MappingRemoved,
PropertiesChanged with values, epoch reset / ANNOUNCE, SetEnabled, malformed input."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import (EXTERNAL, INVALID_ARGS, MANAGER, MAPPING, OM, PATH, PCPCTL, PROPS, ERR,  # noqa: E402
                      BusTestCase, DBusCallError, V, main, pump, wait_until)
from gi.repository import Gio, GLib  # noqa: E402

MAPPING_TYPES = {
    'Opcode': 's', 'Family': 's', 'Protocol': 's', 'ProtocolNumber': 'y', 'InternalAddress': 's',
    'InternalPort': 'q', 'SuggestedExternalPort': 'q', 'ExternalAddress': 's', 'ExternalPort': 'q',
    'RemoteAddress': 's', 'RemotePort': 'q', 'Lifetime': 'u', 'ExpiresAt': 't', 'State': 's', 'Error': 's',
    'Server': 's', 'Description': 's', 'Persistent': 'b', 'Owner': 's', 'UID': 'u', 'PID': 'u', 'AppId': 's',
    'AppIdSource': 's', 'Created': 't', 'Declared': 's',
}
MANAGER_TYPES = {
    'Version': 's', 'Enabled': 'b', 'State': 's', 'Servers': 'a(ssssu)', 'ExternalAddresses': 'as',
    'Prefix64': 'as', 'DefaultLifetime': 'u', 'MaxMappingsPerUser': 'u', 'MappingCount': 'u',
    'StateError': 's', 'DeclaredMappings': 'a(sso)',
    'DhcpOptions': 'a(sss)', 'NetworkManager': 's',  # NetworkManager discovery (issue 10)
}


class ManagerTest(BusTestCase):

    # ---- AddMapping: argument errors ----

    def test_add_mapping_invalid_args(self):
        env = self.make_env()
        cases = [
            (('bogus', 8080, 0, {}), "'bogus'"),
            (('0', 8080, 0, {}), "'0'"),
            (('256', 8080, 0, {}), "'256'"),
            (('tcp', 0, 0, {}), 'port 0'),
            (('tcp', 8080, 0, {'no-such-option': V('s', 'x')}), 'no-such-option'),
            (('tcp', 8080, 0, {'lifetime': V('s', '600')}), 'lifetime'),
            (('tcp', 8080, 0, {'lifetime': V('i', 600)}), 'lifetime'),
            (('tcp', 8080, 0, {'prefer-failure': V('u', 1)}), 'prefer-failure'),
            (('tcp', 8080, 0, {'family': V('s', 'ipx')}), "'ipx'"),
            (('tcp', 8080, 0, {'family': V('u', 4)}), 'family'),
            (('tcp', 8080, 0, {'filters': V('a(sq)', [('not-an-address/8', 0)])}), 'not-an-address'),
            (('tcp', 8080, 0, {'filters': V('a(sq)', [('10.0.0.0/99', 0)])}), '10.0.0.0/99'),
            (('tcp', 8080, 0, {'filters': V('as', ['10.0.0.0/8'])}), 'filters'),
            (('tcp', 8080, 0, {'external-address': V('s', '300.1.1.1')}), '300.1.1.1'),
            (('tcp', 8080, 0, {'third-party': V('s', 'nonsense')}), 'nonsense'),
            (('tcp', 8080, 0, {'interface': V('s', 'a/b')}), 'a/b'),
            (('tcp', 8080, 0, {'description': V('s', 'x' * 5000)}), 'description'),
            # leading zeros are taken, but a protocol is at most 16 octets (and a longer one
            # is not echoed back)
            (('0000000000000006', 8080, 0, {'no-such-option': V('s', 'x')}), 'no-such-option'),
            (('0' * 1000000 + '6', 8080, 0, {}), '1000001 octets'),
        ]
        for args, needle in cases:
            with self.subTest(args=str(args)[:80]):
                err = self.assertDBusError(INVALID_ARGS, env.manager, 'AddMapping', 'sqqa{sv}', args,
                                           contains=needle)
                self.assertLess(len(err.msg), 6000, 'the answer does not echo a long argument whole')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)
        self.assertEqual(env.dump(), [])
        env.assert_alive()

    def test_add_peer_invalid_args(self):
        env = self.make_env()
        for args, needle in [
            (('tcp', 8080, 'not-an-ip', 443, {}), 'not-an-ip'),
            (('tcp', 8080, '0.0.0.0', 443, {}), '0.0.0.0'),
            (('tcp', 8080, '192.0.2.1', 0, {}), 'port 0'),
            (('tcp', 0, '192.0.2.1', 443, {}), 'port 0'),
            (('quic', 8080, '192.0.2.1', 443, {}), 'quic'),
            (('tcp', 8080, '192.0.2.1', 443, {'bogus': V('b', True)}), 'bogus'),
        ]:
            with self.subTest(args=args):
                self.assertDBusError(INVALID_ARGS, env.manager, 'AddPeer', 'sqsqa{sv}', args, contains=needle)
        env.assert_alive()

    # ---- AddMapping: success, properties, signals ----

    def test_add_mapping_properties_and_signals(self):
        env = self.make_env()
        path = env.add_mapping('tcp', 8080, 0, {'lifetime': V('u', 900), 'description': V('s', 'web'),
                                                'app-id': V('s', 'org.example.Web')})
        self.assertTrue(path.startswith('/org/freedesktop/PCP1/mapping/'), path)
        # InterfacesAdded carries the mapping's properties, State pending
        added = wait_until(lambda: [s for s in env.signals_of('InterfacesAdded') if s[3][0] == path], 5,
                           'InterfacesAdded')
        props0 = added[0][3][1][MAPPING]
        self.assertEqual(props0['State'], 'pending')
        self.assertEqual(props0['InternalPort'], 8080)
        env.wait_state(path, 'active')
        wait_until(lambda: [a for _, _, _, a in env.signals_of('PropertiesChanged', path)
                            if a[1].get('State') == 'active'], 5, 'PropertiesChanged State=active')

        # PropertiesChanged carries values: State pending -> active, ExternalAddress, ExternalPort
        changes = {}
        for _, iface, member, args in env.signals_of('PropertiesChanged', path):
            self.assertEqual(args[0], MAPPING)
            self.assertEqual(args[2], [], f'bare invalidation: {args}')
            changes.update(args[1])
        self.assertEqual(changes.get('State'), 'active', changes)
        self.assertEqual(changes.get('ExternalAddress'), EXTERNAL, changes)
        self.assertEqual(changes.get('ExternalPort'), 8080, changes)

        props = env.get_all(path)
        self.assertEqual(set(props), set(MAPPING_TYPES), 'Mapping property set')
        for name, sig in MAPPING_TYPES.items():
            self.assertEqual(env.get_raw(path, MAPPING, name).get_type_string(), sig, name)
        expect = {'Opcode': 'map', 'Family': 'ipv4', 'Protocol': 'tcp', 'ProtocolNumber': 6, 'InternalPort': 8080,
                  'SuggestedExternalPort': 8080, 'ExternalAddress': EXTERNAL, 'ExternalPort': 8080, 'Lifetime': 900,
                  'State': 'active', 'Error': '', 'Description': 'web', 'Persistent': False, 'UID': 0,
                  'AppId': 'org.example.Web', 'AppIdSource': 'declared', 'RemoteAddress': '', 'RemotePort': 0,
                  'Server': f'{env.ip}:{env.port}', 'Owner': env.conn.get_unique_name(), 'PID': os.getpid()}
        for k, v in expect.items():
            self.assertEqual(props[k], v, k)
        self.assertNotEqual(props['InternalAddress'], '')
        self.assertGreater(props['ExpiresAt'], props['Created'])
        self.assertAlmostEqual(props['ExpiresAt'] - props['Created'], 900 * 10 ** 6, delta=10 * 10 ** 6)

        # the refserver holds it, description sent upstream
        d = env.dump()
        self.assertEqual(len(d), 1)
        self.assertEqual((d[0]['proto'], d[0]['internal_port'], d[0]['external_port'], d[0]['lifetime']),
                         ('tcp', 8080, 8080, 900))

        # manager properties
        mprops = env.get_all(PATH, MANAGER)
        self.assertEqual(set(mprops), set(MANAGER_TYPES))
        for name, sig in MANAGER_TYPES.items():
            self.assertEqual(env.get_raw(PATH, MANAGER, name).get_type_string(), sig, name)
        self.assertEqual(mprops['MappingCount'], 1)
        self.assertEqual(mprops['StateError'], '', 'state is being saved')
        self.assertEqual(mprops['Enabled'], True)
        self.assertEqual(mprops['State'], 'ready')
        self.assertEqual(mprops['DefaultLifetime'], 600)
        self.assertEqual(mprops['ExternalAddresses'], [EXTERNAL])
        self.assertEqual(len(mprops['Servers']), 1)
        self.assertEqual(mprops['Servers'][0][1:4], (f'{env.ip}:{env.port}', 'config', 'pcp'))

        # ObjectManager
        objs = env.call(PATH, OM, 'GetManagedObjects')[0]
        self.assertEqual(list(objs), [path])
        self.assertEqual(objs[path][MAPPING]['ExternalPort'], 8080)

        # Release(): MappingRemoved "released", InterfacesRemoved, deleted upstream with the same nonce
        nonce = d[0]['nonce']
        env.call(path, MAPPING, 'Release')
        wait_until(lambda: env.removed_reason(path), 5, 'MappingRemoved')
        self.assertEqual(env.removed_reason(path), 'released')
        self.assertTrue([s for s in env.signals_of('InterfacesRemoved') if s[3][0] == path], 'InterfacesRemoved')
        wait_until(lambda: env.dump() == [], 5, 'deletion upstream')
        self.assertTrue(any(r['nonce'] == nonce and r['lifetime'] == 0 for r in env.reflog_requests()),
                        'lifetime-0 request with the same nonce')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)
        self.assertEqual(env.call(PATH, OM, 'GetManagedObjects')[0], {})
        with self.assertRaises(DBusCallError) as cm:
            env.call(path, MAPPING, 'Release')
        self.assertIn(cm.exception.name, (ERR + 'NotFound', 'org.freedesktop.DBus.Error.UnknownObject'))

    def test_manager_property_changes_carry_values(self):
        env = self.make_env()
        p = env.add_mapping('udp', 4000)
        env.wait_state(p, 'active')
        for _, iface, member, args in env.signals_of('PropertiesChanged'):
            self.assertEqual(args[2], [], f'bare invalidation on {iface}: {args}')
        mc = [a[1]['MappingCount'] for _, _, _, a in env.signals_of('PropertiesChanged', PATH)
              if 'MappingCount' in a[1]]
        self.assertEqual(mc[-1:], [1])

    def test_remove_mapping(self):
        env = self.make_env()
        p = env.add_mapping('tcp', 8081)
        env.wait_state(p, 'active')
        env.manager('RemoveMapping', 'o', (p,))
        wait_until(lambda: env.removed_reason(p), 5, 'MappingRemoved')
        self.assertEqual(env.removed_reason(p), 'released')
        wait_until(lambda: env.dump() == [], 5, 'deletion upstream')
        self.assertDBusError(ERR + 'NotFound', env.manager, 'RemoveMapping', 'o', (p,), contains=p)
        self.assertDBusError(ERR + 'NotFound', env.manager, 'RemoveMapping', 'o',
                             ('/org/freedesktop/PCP1/mapping/999999',))
        self.assertDBusError(ERR + 'NotFound', env.manager, 'RemoveMapping', 'o', ('/',))

    def assert_kept(self, env, path, port, nonce):
        """path is still there, held upstream under nonce, and no delete of port was sent"""
        env.barrier()
        self.assertIsNone(env.removed_reason(path))
        self.assertEqual(env.get(path, MAPPING, 'State'), 'active')
        self.assertEqual([m['nonce'] for m in env.dump() if m['internal_port'] == port], [nonce])
        self.assertEqual([r for r in env.requests_for(port) if r['lifetime'] == 0], [])

    def test_made_persistent_outlives_its_holders(self):
        """A mapping one connection holds, asked for again with persistent by another: the
        same object, Persistent and Owner "" at once, logged. The first holder's Release
        and both leaving drop holds only: the mapping stays, never deleted upstream.
        RemoveMapping (pcpctl release) removes it."""
        env = self.make_env()
        a, b = env.new_conn(), env.new_conn()
        p = env.add_mapping('tcp', 8600, conn=a)
        env.wait_state(p, 'active')
        self.assertEqual(env.get(p, MAPPING, 'Owner'), a.get_unique_name())
        nonce = env.dump()[0]['nonce']
        self.assertEqual(env.add_mapping('tcp', 8600, 0, {'persistent': V('b', True)}, conn=b), p)
        props = env.get_all(p)
        self.assertEqual((props['Persistent'], props['Owner']), (True, ''))
        self.assertIn(f'Mapping {p} is persistent now, asked by {b.get_unique_name()}', env.log())
        b.close_sync(None)
        env.call(p, MAPPING, 'Release', conn=a)
        self.assert_kept(env, p, 8600, nonce)
        self.assertIn(f'Mapping {p}: {a.get_unique_name()} let go of its hold; the mapping is persistent',
                      env.log())
        a.close_sync(None)
        self.assert_kept(env, p, 8600, nonce)

        env.manager('RemoveMapping', 'o', (p,))
        wait_until(lambda: env.removed_reason(p), 5, 'MappingRemoved')
        self.assertEqual(env.removed_reason(p), 'released')
        wait_until(lambda: env.dump() == [], 5, 'deletion upstream')

    def test_declared_outlives_a_holder(self):
        """Root's request for a declared mapping's port shares it (same uid); its Release,
        or its connection leaving, drops its hold only: the declared mapping stays, same
        object, same nonce, nothing deleted upstream."""
        env = self.make_env()
        d = env.manager('DeclareMapping', 'ssqqa{sv}', ('web', 'tcp', 8200, 0, {}))[0]
        env.wait_state(d, 'active')
        nonce = env.dump()[0]['nonce']
        c = env.new_conn()
        self.assertEqual(env.add_mapping('tcp', 8200, conn=c), d)
        self.assertEqual(env.get(d, MAPPING, 'Owner'), '')
        env.call(d, MAPPING, 'Release', conn=c)
        self.assert_kept(env, d, 8200, nonce)
        self.assertEqual(env.add_mapping('tcp', 8200, conn=c), d)
        c.close_sync(None)
        self.assert_kept(env, d, 8200, nonce)
        self.assertEqual(dict((n, p) for n, _f, p in env.get(PATH, MANAGER, 'DeclaredMappings')), {'web': d})
        # one that holds nothing of it cannot remove it: the declaration is undeclared instead
        self.assertDBusError(ERR + 'Conflict', env.manager, 'RemoveMapping', 'o', (d,),
                             contains='pcpctl undeclare web removes it')
        self.assertDBusError(ERR + 'Conflict', env.call, d, MAPPING, 'Release', contains='pcpctl undeclare web')
        r = subprocess.run([PCPCTL, 'release', d.rsplit('/', 1)[1]], env=env.env, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('pcpctl undeclare web removes it', r.stderr)
        self.assert_kept(env, d, 8200, nonce)

    def test_revoke_app(self):
        env = self.make_env()
        a = env.add_mapping('tcp', 8082, 0, {'app-id': V('s', 'org.example.A')})
        b = env.add_mapping('tcp', 8083, 0, {'app-id': V('s', 'org.example.A')})
        c = env.add_mapping('tcp', 8084, 0, {'app-id': V('s', 'org.example.C')})
        for p in (a, b, c):
            env.wait_state(p, 'active')
        env.manager('RevokeApp', 's', ('org.example.A',))
        wait_until(lambda: env.removed_reason(a) and env.removed_reason(b), 5, 'MappingRemoved')
        self.assertEqual((env.removed_reason(a), env.removed_reason(b)), ('revoked', 'revoked'))
        self.assertIsNone(env.removed_reason(c))
        wait_until(lambda: [m['internal_port'] for m in env.dump()] == [8084], 5, 'only C upstream')
        self.assertDBusError(ERR + 'NotFound', env.manager, 'RevokeApp', 's', ('org.example.A',),
                             contains='org.example.A')
        self.assertDBusError(INVALID_ARGS, env.manager, 'RevokeApp', 's', ('',))

    def test_add_peer(self):
        env = self.make_env()
        p = env.manager('AddPeer', 'sqsqa{sv}', ('udp', 5000, '192.0.2.50', 3478, {}))[0]
        env.wait_state(p, 'active')
        props = env.get_all(p)
        self.assertEqual((props['Opcode'], props['RemoteAddress'], props['RemotePort'], props['Family']),
                         ('peer', '192.0.2.50', 3478, 'ipv4'))
        d = env.dump()
        self.assertEqual([(m['kind'], m['internal_port']) for m in d], [('peer', 5000)])

    def test_protocol_names_and_numbers(self):
        env = self.make_env()
        p = env.add_mapping('17', 6000)
        self.assertEqual(env.get(p, MAPPING, 'Protocol'), 'udp')
        self.assertEqual(env.get(p, MAPPING, 'ProtocolNumber'), 17)
        q = env.add_mapping('sctp', 6001)
        self.assertEqual(env.get(q, MAPPING, 'ProtocolNumber'), 132)

    def test_same_mapping_twice_same_connection(self):
        env = self.make_env()
        p = env.add_mapping('tcp', 8085)
        q = env.add_mapping('tcp', 8085)
        self.assertEqual(p, q)
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 1)

    # ---- NoServer, GetExternalAddress ----

    def test_no_server_of_family(self):
        env = self.make_env()
        try:
            path = env.add_mapping('tcp', 8086, 0, {'family': V('s', 'ipv6')})
        except DBusCallError as e:
            self.assertEqual(e.name, ERR + 'NoServer', e.msg)
            self.assertIn('IPv6', e.msg)
            self.assertDBusError(ERR + 'NoServer', env.manager, 'GetExternalAddress', 's', ('ipv6',))
        else:
            # this machine has a global IPv6 address: not behind a NAT (test-direct.py tests
            # both cases in network namespaces, independent of the machine)
            self.assertEqual(env.get(path, MAPPING, 'Server'), '')
            self.assertEqual(env.get(path, MAPPING, 'State'), 'active')
            self.assertEqual(env.manager('GetExternalAddress', 's', ('ipv6',)),
                             (env.get(path, MAPPING, 'ExternalAddress'), ''))
        # an interface that does not exist is a bad argument, not a network without a server
        self.assertDBusError(INVALID_ARGS, env.add_mapping, 'tcp', 8086, 0,
                             {'interface': V('s', 'nosuchif0')}, contains="No such interface 'nosuchif0'")

    def test_get_external_address(self):
        env = self.make_env()
        # PCP tells the external address in MAP responses: after the first mapping
        env.wait_state(env.add_mapping('tcp', 8087), 'active')
        addr, server = env.manager('GetExternalAddress', 's', ('ipv4',))
        self.assertEqual(addr, EXTERNAL)
        self.assertEqual(server, f'{env.ip}:{env.port}')
        self.assertEqual(env.manager('GetExternalAddress', 's', ('',))[0], EXTERNAL)
        self.assertDBusError(INVALID_ARGS, env.manager, 'GetExternalAddress', 's', ('ipv5',), contains='ipv5')

    # ---- SetEnabled ----

    def test_set_enabled_false(self):
        env = self.make_env()
        paths = [env.add_mapping('tcp', 9000 + i) for i in range(3)]
        for p in paths:
            env.wait_state(p, 'active')
        self.assertEqual(len(env.dump()), 3)
        nonces = {m['nonce'] for m in env.dump()}
        env.manager('SetEnabled', 'b', (False,))
        # who switched it off, and what is true then: deletes sent, not yet confirmed
        self.assertIn(f'message: Port mapping switched off by {env.conn.get_unique_name()} (uid 0)\n', env.log())
        self.assertIn('message: Port mapping disabled: removing 3 mappings, deleting them upstream\n', env.log())
        self.assertNotIn('every mapping was deleted', env.log())
        wait_until(lambda: all(env.removed_reason(p) for p in paths), 5, 'MappingRemoved x3')
        self.assertEqual({env.removed_reason(p) for p in paths}, {'disabled'})
        wait_until(lambda: env.dump() == [], 5, 'every mapping deleted upstream')
        deleted = {r['nonce'] for r in env.reflog_requests() if r['lifetime'] == 0 and r['opcode'] == 1}
        self.assertTrue(nonces <= deleted, 'lifetime-0 with each nonce')
        self.assertEqual(env.get(PATH, MANAGER, 'Enabled'), False)
        self.assertEqual(env.get(PATH, MANAGER, 'State'), 'disabled')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)
        self.assertTrue([a for _, _, _, a in env.signals_of('PropertiesChanged', PATH)
                         if a[1].get('Enabled') is False], 'PropertiesChanged Enabled=false')
        e = self.assertDBusError(ERR + 'Disabled', env.add_mapping, 'tcp', 9100)
        self.assertTrue(e.msg.endswith('.'), e.msg)
        self.assertDBusError(ERR + 'Disabled', env.manager, 'AddPeer', 'sqsqa{sv}',
                             ('tcp', 9100, '192.0.2.1', 80, {}))
        self.assertEqual(env.dump(), [])
        env.manager('SetEnabled', 'b', (True,))
        p = env.add_mapping('tcp', 9100)
        env.wait_state(p, 'active')
        # nothing to remove: said so
        env.manager('SetEnabled', 'b', (False,))
        env.manager('SetEnabled', 'b', (True,))
        env.manager('SetEnabled', 'b', (False,))
        self.assertIn('message: Port mapping disabled: no mapping to remove\n', env.log())

    def test_failure_says_how_long_it_is_retried(self):
        """A failed mapping is retried while it is held; a persistent one, which nobody
        holds, until it is removed."""
        env = self.make_env()
        taken = env.add_mapping('udp', 8091, 40100)
        env.wait_state(taken, 'active')
        held = env.add_mapping('udp', 8092, 40100, {'prefer-failure': V('b', True)})
        kept = env.add_mapping('udp', 8093, 40100, {'prefer-failure': V('b', True), 'persistent': V('b', True)})
        env.wait_state(held, 'failed')
        env.wait_state(kept, 'failed')
        wait_until(lambda: f'Mapping {kept} failed' in env.log(), 5, 'the failure logged')
        lines = {p: [ln for ln in env.log().splitlines() if f'Mapping {p} failed on ' in ln] for p in (held, kept)}
        self.assertTrue(lines[held] and lines[held][0].endswith('; retrying while it is held'), lines)
        self.assertTrue(lines[kept] and lines[kept][0].endswith('; retrying until it is removed (persistent)'), lines)

    # ---- router restart / ANNOUNCE / external address change ----

    def test_refserver_restart_recreates(self):
        env = self.make_env()
        p = env.add_mapping('tcp', 7000)
        env.wait_state(p, 'active')
        nonce = env.dump()[0]['nonce']
        env.ctl('restart')  # loses every mapping, epoch 0, ANNOUNCE to the announce port
        wait_until(lambda: len(env.dump()) == 1, 10, 'the mapping recreated upstream')
        d = env.dump()[0]
        self.assertEqual((d['internal_port'], d['nonce']), (7000, nonce), 'recreated with the same nonce')
        self.assertEqual(env.get(p, MAPPING, 'State'), 'active')
        self.assertEqual(env.get(p, MAPPING, 'ExternalPort'), d['external_port'])
        for _, _, _, a in env.signals_of('PropertiesChanged'):
            self.assertEqual(a[2], [])
        self.assertIsNone(env.removed_reason(p))
        # the epoch reset is visible in Servers
        wait_until(lambda: [a for _, _, _, a in env.signals_of('PropertiesChanged', PATH) if 'Servers' in a[1]],
                   5, 'Servers PropertiesChanged')

    def test_external_address_change(self):
        env = self.make_env()
        p = env.add_mapping('tcp', 7001)
        q = env.add_mapping('udp', 7002)
        env.wait_state(p, 'active')
        env.wait_state(q, 'active')
        n = len(env.signals)
        env.ctl('external', '203.0.113.99')
        for path in (p, q):
            wait_until(lambda: env.get(path, MAPPING, 'ExternalAddress') == '203.0.113.99', 10,
                       f'{path} ExternalAddress')

            def got():
                return [a[1] for s, _, m, a in env.signals[n:] if s == path and m == 'PropertiesChanged'
                        and a[1].get('ExternalAddress') == '203.0.113.99']
            wait_until(got, 5, f'PropertiesChanged with the new ExternalAddress on {path}')
            self.assertEqual(env.get(path, MAPPING, 'State'), 'active')
        wait_until(lambda: env.get(PATH, MANAGER, 'ExternalAddresses') == ['203.0.113.99'], 5,
                   'manager ExternalAddresses')
        self.assertEqual(env.manager('GetExternalAddress', 's', ('ipv4',))[0], '203.0.113.99')
        self.assertEqual({m['external'] for m in env.dump()}, {'203.0.113.99'})

    # ---- malformed input ----

    def test_malformed_signatures(self):
        env = self.make_env()
        bad = [
            ('AddMapping', 'sqq', ('tcp', 80, 0)),
            ('AddMapping', 'sqqa{ss}', ('tcp', 80, 0, {'lifetime': '1'})),
            ('AddMapping', 'suua{sv}', ('tcp', 80, 0, {})),
            ('AddMapping', 's', ('tcp',)),
            ('AddMappingForSocket', 'a{sv}', ({},)),
            ('AddPeer', 'sqsq', ('tcp', 1, '1.2.3.4', 2)),
            ('RemoveMapping', 's', ('/org/freedesktop/PCP1/mapping/1',)),
            ('RevokeApp', 'u', (1,)),
            ('SetEnabled', 's', ('false',)),
            ('SetEnabled', 'u', (0,)),
            ('GetExternalAddress', '', ()),
            ('NoSuchMethod', '', ()),
        ]
        for method, sig, args in bad:
            with self.subTest(method=method, sig=sig):
                with self.assertRaises(DBusCallError):
                    env.manager(method, sig, args)
                env.assert_alive()
        self.assertDBusError('org.freedesktop.DBus.Error.UnknownProperty', env.get, PATH, MANAGER, 'Nope')
        with self.assertRaises(DBusCallError):
            env.call(PATH, PROPS, 'Set', 'ssv', (MANAGER, 'Enabled', V('b', False)))
        self.assertEqual(env.get(PATH, MANAGER, 'Enabled'), True)
        # a non-socket fd, an unbound socket
        r, w = os.pipe()
        try:
            self.assertDBusError(INVALID_ARGS, env.manager, 'AddMappingForSocket', 'ha{sv}', (0, {}), fds=[r])
        finally:
            os.close(r)
            os.close(w)
        import socket
        s = socket.socket()
        try:
            self.assertDBusError(INVALID_ARGS, env.manager, 'AddMappingForSocket', 'ha{sv}', (0, {}),
                                 fds=[s.fileno()])
        finally:
            s.close()
        # a raw message with a body that does not match any member
        msg = Gio.DBusMessage.new_method_call('org.freedesktop.PCP1', PATH, MANAGER, 'AddMapping')
        msg.set_body(GLib.Variant('(ayay)', (b'\x00\x01', b'')))
        reply = env.conn.send_message_with_reply_sync(msg, 0, 5000, None)[0]
        self.assertEqual(reply.get_message_type(), Gio.DBusMessageType.ERROR)
        env.assert_alive()
        p = env.add_mapping('tcp', 8090)
        env.wait_state(p, 'active')

    def test_add_mapping_for_socket_root(self):
        import socket
        env = self.make_env()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(('0.0.0.0', 0))
        port = s.getsockname()[1]
        try:
            p = env.manager('AddMappingForSocket', 'ha{sv}', (0, {'lifetime': V('u', 300)}), fds=[s.fileno()])[0]
        finally:
            s.close()
        props = env.get_all(p)
        self.assertEqual((props['Protocol'], props['InternalPort']), ('udp', port))
        env.wait_state(p, 'active')
        self.assertEqual([(m['proto'], m['internal_port']) for m in env.dump()], [('udp', port)])

    def test_pcpctl_against_the_daemon(self):
        import subprocess
        from pcpdtest import PCPCTL
        env = self.make_env()
        run = dict(env=env.env, capture_output=True, text=True, timeout=20)
        # `map` holds the mapping until interrupted
        ctl = subprocess.Popen([PCPCTL, 'map', 'tcp', '8095', '--wait'], env=env.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        env.procs.append(ctl)
        wait_until(lambda: [m['internal_port'] for m in env.dump()] == [8095], 10, 'pcpctl map upstream')
        # the refserver granted it; wait until pcpctl has heard and printed it too (under
        # load or valgrind that comes later), then interrupt it
        import select
        seen = ''
        end = time.monotonic() + 20
        while EXTERNAL not in seen and time.monotonic() < end:
            if select.select([ctl.stdout], [], [], 0.5)[0]:
                # os.read, not readline(): a buffered reader keeps the second line in its
                # buffer, where select() cannot see it
                chunk = os.read(ctl.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk.decode()
        ctl.send_signal(2)  # SIGINT
        out = seen + ctl.communicate(timeout=10)[0]
        self.assertIn(EXTERNAL, out)
        wait_until(lambda: env.dump() == [], 5, 'the pcpctl mapping deleted when pcpctl stopped')
        p = env.add_mapping('udp', 8096)
        env.wait_state(p, 'active')
        r = subprocess.run([PCPCTL, 'list'], **run)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('8096', r.stdout)
        r = subprocess.run([PCPCTL, 'status'], **run)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f'{env.ip}:{env.port}', r.stdout)


if __name__ == '__main__':
    main()
