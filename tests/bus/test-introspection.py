#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The live daemon's Introspect output for /org/freedesktop/PCP1 and for a mapping object
matches dbus/org.freedesktop.PCP1.{Manager,Mapping}.xml: member names, argument names,
types and directions, signal arguments, property types and access, in both directions
(nothing missing from the daemon, nothing undocumented in it), and each property's
EmitsChangedSignal annotation. Doc comments and the
standard org.freedesktop.DBus.* interfaces are ignored."""

import os
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import MANAGER, MAPPING, PATH, SRC, BusTestCase, main  # noqa: E402

XML = {MANAGER: os.path.join(SRC, 'dbus', 'org.freedesktop.PCP1.Manager.xml'),
       MAPPING: os.path.join(SRC, 'dbus', 'org.freedesktop.PCP1.Mapping.xml')}


def members(root, iface_name):
    """{('method'|'signal'|'property', name): description} of one interface."""
    for iface in root.iter('interface'):
        if iface.get('name') != iface_name:
            continue
        out = {}
        for m in iface.findall('method'):
            out[('method', m.get('name'))] = [(a.get('name'), a.get('type'), a.get('direction', 'in'))
                                              for a in m.findall('arg')]
        for m in iface.findall('signal'):
            out[('signal', m.get('name'))] = [(a.get('name'), a.get('type')) for a in m.findall('arg')]
        for m in iface.findall('property'):
            out[('property', m.get('name'))] = (m.get('type'), m.get('access'))
        return out
    return None


EMITS = 'org.freedesktop.DBus.Property.EmitsChangedSignal'


def emits_changed(root, iface_name):
    """{property: its EmitsChangedSignal ("true" when not annotated, the D-Bus default)}."""
    for iface in root.iter('interface'):
        if iface.get('name') == iface_name:
            return {p.get('name'): next((a.get('value') for a in p.findall('annotation') if a.get('name') == EMITS),
                                        'true')
                    for p in iface.findall('property')}
    return None


class IntrospectionTest(BusTestCase):

    def compare(self, live_xml, iface):
        ref = members(ET.parse(XML[iface]).getroot(), iface)
        self.assertIsNotNone(ref, f'{iface} is not in {XML[iface]}')
        live = members(ET.fromstring(live_xml), iface)
        self.assertIsNotNone(live, f'{iface} is not in the live introspection')
        problems = []
        for key in sorted(set(ref) | set(live)):
            if key not in live:
                problems.append(f'{iface} {key[0]} {key[1]}: in the XML, not in the daemon')
            elif key not in ref:
                problems.append(f'{iface} {key[0]} {key[1]}: in the daemon, not documented in the XML')
            elif ref[key] != live[key]:
                problems.append(f'{iface} {key[0]} {key[1]}: XML {ref[key]} != daemon {live[key]}')
        self.assertEqual(problems, [], '\n'.join(problems))
        self.assertGreater(len(ref), 3)

    def test_manager_and_mapping(self):
        env = self.make_env()
        manager_xml = env.call(PATH, 'org.freedesktop.DBus.Introspectable', 'Introspect')[0]
        self.compare(manager_xml, MANAGER)
        self.assertIn('org.freedesktop.DBus.ObjectManager', manager_xml)
        path = env.add_mapping('tcp', 8600)
        mapping_xml = env.call(path, 'org.freedesktop.DBus.Introspectable', 'Introspect')[0]
        self.compare(mapping_xml, MAPPING)
        # the mapping shows up as a child node of .../mapping
        parent = env.call('/org/freedesktop/PCP1/mapping', 'org.freedesktop.DBus.Introspectable',
                          'Introspect')[0]
        nodes = [n.get('name') for n in ET.fromstring(parent).findall('node')]
        self.assertIn(path.rsplit('/', 1)[1], nodes)

    def test_emits_changed_signal(self):
        """The daemon says of each property what the XML says: "const" (never changes) or
        "true" (PropertiesChanged with its value)."""
        env = self.make_env()
        path = env.add_mapping('tcp', 8601)
        for obj, iface in ((PATH, MANAGER), (path, MAPPING)):
            with self.subTest(iface=iface):
                ref = emits_changed(ET.parse(XML[iface]).getroot(), iface)
                live = emits_changed(ET.fromstring(env.call(obj, 'org.freedesktop.DBus.Introspectable',
                                                            'Introspect')[0]), iface)
                self.assertIsNotNone(live)
                self.assertGreater(len(ref), 3)
                differ = {p: (ref.get(p), live.get(p)) for p in set(ref) | set(live) if ref.get(p) != live.get(p)}
                self.assertEqual(differ, {}, 'property: (XML, daemon)')
                self.assertIn('const', ref.values())


if __name__ == '__main__':
    main()
