#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A mapping is of one family: AddMapping, AddPeer and DeclareMapping refuse a request
whose family option contradicts the addresses it names (the remote address, the third
party, a filter's prefix), or whose remote address and third party disagree, with
InvalidArgs naming the address, and create nothing (such a request could never succeed:
the server answers MALFORMED_REQUEST, retried for as long as it is held)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import INVALID_ARGS, MANAGER, PATH, PCPCTL, BusTestCase, V, main  # noqa: E402

CAP = 60


class FamilyArgsTest(BusTestCase):

    def assertNothing(self, env):
        env.assert_alive()
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)
        self.assertEqual(env.dump(), [])

    def test_add_peer(self):
        env = self.make_env()
        for args, needles in [
            (('tcp', 7020, '::1', 443, {'family': V('s', 'ipv4')}), ['::1', 'IPv6', 'ipv4']),
            (('udp', 7021, '192.0.2.50', 3478, {'family': V('s', 'ipv6')}), ['192.0.2.50', 'IPv4', 'ipv6']),
            # no family: the remote address's, and the third party must be of it
            (('udp', 7022, '192.0.2.50', 3478, {'third-party': V('s', '2001:db8::5')}),
             ['third-party address 2001:db8::5', 'the remote address is IPv4']),
            (('udp', 7023, '2001:db8::9', 3478, {'family': V('s', 'ipv6'), 'third-party': V('s', '192.0.2.9')}),
             ['third-party address 192.0.2.9', 'the family option says IPv6']),
        ]:
            with self.subTest(args=args):
                err = self.assertDBusError(INVALID_ARGS, env.manager, 'AddPeer', 'sqsqa{sv}', args)
                for needle in needles:
                    self.assertIn(needle, err.msg)
        self.assertNothing(env)

        # pcpctl says it and fails
        r = subprocess.run([PCPCTL, 'peer', 'tcp', '7020', '::1', '443', '--family=ipv4'], env=env.env,
                           capture_output=True, text=True, timeout=CAP)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn('::1 is an IPv6 address', r.stderr)
        self.assertNothing(env)

        # agreeing ones are taken
        p = env.manager('AddPeer', 'sqsqa{sv}', ('udp', 7024, '192.0.2.50', 3478, {'family': V('s', 'ipv4')}))[0]
        self.assertEqual(env.get(p, 'org.freedesktop.PCP1.Mapping', 'Family'), 'ipv4')

    def test_add_mapping(self):
        env = self.make_env()
        for opts, needles in [
            ({'third-party': V('s', '2001:db8::5'), 'family': V('s', 'ipv4')},
             ['third-party address 2001:db8::5', 'family option says IPv4']),
            ({'third-party': V('s', '192.0.2.9'), 'family': V('s', 'ipv6')},
             ['third-party address 192.0.2.9', 'family option says IPv6']),
            ({'filters': V('a(sq)', [('192.0.2.0/24', 0), ('2001:db8::/32', 443)]), 'family': V('s', 'ipv4')},
             ['filter 2001:db8::/32', 'family option says IPv4']),
            ({'filters': V('a(sq)', [('198.18.0.0/15', 0)]), 'family': V('s', 'ipv6')},
             ['filter 198.18.0.0/15', 'family option says IPv6']),
            # no family: the third party's, and the filters must be of it
            ({'third-party': V('s', '192.0.2.9'), 'filters': V('a(sq)', [('2001:db8::/32', 0)])},
             ['filter 2001:db8::/32', 'third-party address is IPv4']),
        ]:
            with self.subTest(opts=str(opts)):
                err = self.assertDBusError(INVALID_ARGS, env.manager, 'AddMapping', 'sqqa{sv}',
                                           ('tcp', 7030, 0, opts))
                for needle in needles:
                    self.assertIn(needle, err.msg)
        self.assertNothing(env)
        p = env.add_mapping('tcp', 7031, 0, {'filters': V('a(sq)', [('192.0.2.0/24', 0)]), 'family': V('s', 'ipv4')})
        self.assertEqual(env.get(p, 'org.freedesktop.PCP1.Mapping', 'Family'), 'ipv4')

    def test_declare_mapping(self):
        env = self.make_env()
        err = self.assertDBusError(INVALID_ARGS, env.manager, 'DeclareMapping', 'ssqqa{sv}',
                                   ('cam', 'tcp', 7040, 0,
                                    {'third-party': V('s', '2001:db8::5'), 'family': V('s', 'ipv4')}))
        self.assertIn('third-party address 2001:db8::5', err.msg)
        self.assertEqual(env.get(PATH, MANAGER, 'DeclaredMappings'), [])
        self.assertFalse(os.path.exists(os.path.join(env.state, 'mappings.d', 'cam.conf')))
        self.assertNothing(env)


if __name__ == '__main__':
    main()
