#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every property of a Mapping object, read the four ways a client can: the InterfacesAdded
that announced it (with the PropertiesChanged since applied to it), GetAll, Get of each
property and GetManagedObjects. All four agree, value and D-Bus type, and list the
properties in the contract's order (dbus/org.freedesktop.PCP1.Mapping.xml) with its
types. Run over mappings that between them take every getter's every branch: map and
peer, IPv4, a protocol with a name and one with a number only, persistent or not, with
and without description and app id."""

import os
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import MAPPING, OM, PATH, PROPS, SRC, BUS_NAME, BusTestCase, V, main, wait_until  # noqa: E402
from gi.repository import Gio, GLib  # noqa: E402

XML = os.path.join(SRC, 'dbus', 'org.freedesktop.PCP1.Mapping.xml')


def contract_properties():
    """[(name, type)] of the Mapping interface, in the XML's order."""
    for iface in ET.parse(XML).getroot().iter('interface'):
        if iface.get('name') == MAPPING:
            return [(p.get('name'), p.get('type')) for p in iface.findall('property')]
    raise AssertionError(f'{MAPPING} is not in {XML}')


def entries(a_sv):
    """[(name, type, text with types)] of an a{sv} GVariant, in its order."""
    out = []
    for i in range(a_sv.n_children()):
        entry = a_sv.get_child_value(i)
        name = entry.get_child_value(0).get_string()
        value = entry.get_child_value(1).get_variant()
        out.append((name, value.get_type_string(), value.print_(True)))
    return out


class MappingPropertiesTest(BusTestCase):

    def raw_call(self, env, path, iface, method, sig, args):
        return env.conn.call_sync(BUS_NAME, path, iface, method, GLib.Variant(sig, args), None,
                                  Gio.DBusCallFlags.NONE, 20000, None)

    def test_every_property_four_ways(self):
        env = self.make_env()
        raw = []  # (path, member, GVariant) in the order pcpd sent them
        env.conn.signal_subscribe(BUS_NAME, None, None, None, None, Gio.DBusSignalFlags.NONE,
                                  lambda c, s, path, i, member, params: raw.append((path, member, params)))
        contract = contract_properties()
        self.assertGreater(len(contract), 20)

        paths = [
            env.add_mapping('tcp', 8700, 0, {'lifetime': V('u', 900), 'description': V('s', 'web ä'),
                                             'app-id': V('s', 'org.example.Props')}),
            env.add_mapping('udp', 8701, 0, {'persistent': V('b', True)}),
            env.add_mapping('47', 8702),   # a protocol without a name: its number
            env.manager('AddPeer', 'sqsqa{sv}', ('udp', 8703, '192.0.2.50', 3478, {}))[0],
        ]
        # settled: answered (granted or refused), and every signal sent before is here
        for p in paths:
            wait_until(lambda: env.get(p, MAPPING, 'State') in ('active', 'failed'), 10, f'{p} answered')
        env.barrier()

        managed = self.raw_call(env, PATH, OM, 'GetManagedObjects', '()', ()).get_child_value(0)
        managed_by_path = {}
        for i in range(managed.n_children()):
            entry = managed.get_child_value(i)
            ifaces = entry.get_child_value(1)
            for k in range(ifaces.n_children()):
                ie = ifaces.get_child_value(k)
                if ie.get_child_value(0).get_string() == MAPPING:
                    managed_by_path[entry.get_child_value(0).get_string()] = entries(ie.get_child_value(1))

        for p in paths:
            with self.subTest(path=p):
                added = [params for path, member, params in raw
                         if member == 'InterfacesAdded' and params.get_child_value(0).get_string() == p]
                self.assertEqual(len(added), 1, f'one InterfacesAdded for {p}')
                ifaces = added[0].get_child_value(1)
                announced = None
                for k in range(ifaces.n_children()):
                    ie = ifaces.get_child_value(k)
                    if ie.get_child_value(0).get_string() == MAPPING:
                        announced = entries(ie.get_child_value(1))
                self.assertIsNotNone(announced, f'InterfacesAdded of {p} has no {MAPPING}')
                self.assertEqual([(n, t) for n, t, _ in announced], contract, 'InterfacesAdded: names, order, types')

                # InterfacesAdded + the PropertiesChanged since, in order = now
                folded = {n: text for n, _, text in announced}
                changed = 0
                for path, member, params in raw:
                    if path != p or member != 'PropertiesChanged':
                        continue
                    self.assertEqual(params.get_child_value(0).get_string(), MAPPING)
                    self.assertEqual(params.get_child_value(2).n_children(), 0, 'no bare invalidation')
                    for n, t, text in entries(params.get_child_value(1)):
                        self.assertEqual(t, dict(contract)[n], f'PropertiesChanged {n}: type')
                        folded[n] = text
                        changed += 1

                got_all = entries(self.raw_call(env, p, PROPS, 'GetAll', '(s)', (MAPPING,)).get_child_value(0))
                self.assertEqual([(n, t) for n, t, _ in got_all], contract, 'GetAll: names, order, types')
                self.assertEqual(folded, {n: text for n, _, text in got_all},
                                 'InterfacesAdded with its PropertiesChanged applied differs from GetAll')
                self.assertEqual(managed_by_path.get(p), got_all, 'GetManagedObjects differs from GetAll')
                for n, t, text in got_all:
                    v = self.raw_call(env, p, PROPS, 'Get', '(ss)', (MAPPING, n)).get_child_value(0).get_variant()
                    self.assertEqual((v.get_type_string(), v.print_(True)), (t, text), f'Get {n}')

        # what each getter makes of its field, where the caller chose it
        first = env.get_all(paths[0])
        self.assertEqual((first['Opcode'], first['Family'], first['Protocol'], first['ProtocolNumber']),
                         ('map', 'ipv4', 'tcp', 6))
        self.assertEqual((first['Description'], first['AppId'], first['AppIdSource'], first['Persistent']),
                         ('web ä', 'org.example.Props', 'declared', False))
        self.assertEqual((first['InternalPort'], first['RemoteAddress'], first['RemotePort'], first['Declared']),
                         (8700, '', 0, ''))
        self.assertEqual((first['UID'], first['PID'], first['Owner']), (0, os.getpid(), env.conn.get_unique_name()))
        second = env.get_all(paths[1])
        self.assertEqual((second['Persistent'], second['Protocol'], second['Description'], second['Owner']),
                         (True, 'udp', '', ''))
        third = env.get_all(paths[2])
        self.assertEqual((third['Protocol'], third['ProtocolNumber']), ('47', 47))
        peer = env.get_all(paths[3])
        self.assertEqual((peer['Opcode'], peer['RemoteAddress'], peer['RemotePort'], peer['InternalPort']),
                         ('peer', '192.0.2.50', 3478, 8703))


if __name__ == '__main__':
    main()
