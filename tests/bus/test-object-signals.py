#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The object signals pcpd builds itself from its vtables (pcpd-mapping-bus.c) are the ones
sd-bus's emitters made: InterfacesAdded of a mapping lists the interfaces GetManagedObjects
(sd-bus's own) lists for its path, in that order, with the same properties and values (the
PID, Owner and ExpiresAt move with time and are compared by type); InterfacesRemoved lists
the same interface names; MappingCount's PropertiesChanged carries the count Get reads,
and nothing else. Every signal has the signature the contract gives it."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import MANAGER, MAPPING, OM, PATH, PROPS, BUS_NAME, BusTestCase, main, wait_until  # noqa: E402
from gi.repository import Gio, GLib  # noqa: E402


def interfaces(a_sa_sv):
    """[(interface, [(name, type, text)])] of an a{sa{sv}}, in its order."""
    out = []
    for k in range(a_sa_sv.n_children()):
        ie = a_sa_sv.get_child_value(k)
        props = ie.get_child_value(1)
        entries = []
        for i in range(props.n_children()):
            e = props.get_child_value(i)
            v = e.get_child_value(1).get_variant()
            entries.append((e.get_child_value(0).get_string(), v.get_type_string(), v.print_(True)))
        out.append((ie.get_child_value(0).get_string(), entries))
    return out


class ObjectSignalsTest(BusTestCase):

    def test_added_removed_count(self):
        env = self.make_env()
        raw = []  # (path, iface, member, GVariant) in the order pcpd sent them
        env.conn.signal_subscribe(BUS_NAME, None, None, None, None, Gio.DBusSignalFlags.NONE,
                                  lambda c, s, path, i, member, params: raw.append((path, i, member, params)))

        paths = [env.add_mapping('udp', 8710), env.add_mapping('tcp', 8711)]
        for p in paths:
            wait_until(lambda: env.get(p, MAPPING, 'State') in ('active', 'failed'), 10, f'{p} answered')
        env.barrier()
        managed = env.conn.call_sync(BUS_NAME, PATH, OM, 'GetManagedObjects', None, None,
                                     Gio.DBusCallFlags.NONE, 20000, None).get_child_value(0)
        managed_by_path = {}
        for i in range(managed.n_children()):
            e = managed.get_child_value(i)
            managed_by_path[e.get_child_value(0).get_string()] = interfaces(e.get_child_value(1))

        for p in paths:
            with self.subTest(path=p):
                added = [params for path, i, member, params in raw
                         if member == 'InterfacesAdded' and params.get_child_value(0).get_string() == p]
                self.assertEqual(len(added), 1)
                self.assertEqual(added[0].get_type_string(), '(oa{sa{sv}})')
                announced = interfaces(added[0].get_child_value(1))
                now = managed_by_path[p]
                self.assertEqual([n for n, _ in announced], [n for n, _ in now], 'interfaces and their order')
                self.assertEqual(announced[:-1], now[:-1], 'the interfaces without properties')
                self.assertEqual(announced[-1][0], MAPPING)
                self.assertEqual([(n, t) for n, t, _ in announced[-1][1]], [(n, t) for n, t, _ in now[-1][1]])
                moving = {'State', 'ExternalAddress', 'ExternalPort', 'SuggestedExternalPort', 'Lifetime',
                          'ExpiresAt'}  # the grant came after InterfacesAdded
                self.assertEqual([e for e in announced[-1][1] if e[0] not in moving],
                                 [e for e in now[-1][1] if e[0] not in moving], 'values')

        counts = []
        for p in paths:
            env.call(p, MAPPING, 'Release')
            env.barrier()
            counts.append(env.get(PATH, MANAGER, 'MappingCount'))
        for p in paths:
            with self.subTest(path=p):
                removed = [params for path, i, member, params in raw
                           if member == 'InterfacesRemoved' and params.get_child_value(0).get_string() == p]
                self.assertEqual(len(removed), 1)
                self.assertEqual(removed[0].get_type_string(), '(oas)')
                self.assertEqual(list(removed[0].get_child_value(1).unpack()), [n for n, _ in managed_by_path[p]])

        changed = [params for path, i, member, params in raw
                   if path == PATH and i == PROPS and member == 'PropertiesChanged'
                   and params.get_child_value(0).get_string() == MANAGER]
        mapping_counts = []
        for params in changed:
            self.assertEqual(params.get_type_string(), '(sa{sv}as)')
            self.assertEqual(params.get_child_value(2).n_children(), 0, 'no bare invalidation')
            d = params.get_child_value(1)
            for i in range(d.n_children()):
                e = d.get_child_value(i)
                if e.get_child_value(0).get_string() == 'MappingCount':
                    v = e.get_child_value(1).get_variant()
                    self.assertEqual(v.get_type_string(), 'u')
                    mapping_counts.append(v.get_uint32())
        self.assertEqual(mapping_counts, [1, 2] + counts)
        self.assertEqual(counts, [1, 0])

    def test_count_once_per_turn(self):
        """MappingCount is told once per turn of pcpd's loop, with the count at its end: a
        holder that leaves with five mappings makes five InterfacesRemoved and one
        PropertiesChanged MappingCount (0), after them, which Get agrees with."""
        env = self.make_env()
        raw = []
        env.conn.signal_subscribe(BUS_NAME, None, None, None, None, Gio.DBusSignalFlags.NONE,
                                  lambda c, s, path, i, member, params: raw.append((path, i, member, params)))
        holder = env.new_conn()
        name = holder.get_unique_name()
        paths = [env.add_mapping('udp', 8720 + k, conn=holder) for k in range(5)]
        for p in paths:
            wait_until(lambda: env.get(p, MAPPING, 'State') in ('active', 'failed'), 10, f'{p} answered')
        env.barrier()
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 5)
        mark = len(raw)

        holder.close_sync(None)
        wait_until(lambda: not env.name_has_owner(name), 10, 'the holder gone from the bus')
        env.barrier()  # pcpd has handled its NameOwnerChanged and told what followed
        after = raw[mark:]
        removed = [params.get_child_value(0).get_string() for path, i, member, params in after
                   if member == 'InterfacesRemoved']
        self.assertEqual(sorted(removed), sorted(paths))
        counts = []
        for path, i, member, params in after:
            if path == PATH and i == PROPS and member == 'PropertiesChanged' and \
                    params.get_child_value(0).get_string() == MANAGER:
                d = params.get_child_value(1).unpack()
                if 'MappingCount' in d:
                    counts.append((d['MappingCount'], len([1 for e in after[:after.index((path, i, member, params))]
                                                           if e[2] == 'InterfacesRemoved'])))
        self.assertEqual(counts, [(0, 5)], 'one MappingCount, after the five removals')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)

    def test_count_before_reply(self):
        """The MappingCount change a call makes is told before pcpd answers that call or the
        next one: an AddMapping and a Peer.Ping sent right behind it (so pcpd finds the Ping
        while it is still busy with the add) — the connection receives MappingCount 1 before
        either reply; the same for Release (0). Recorded in the order messages arrive."""
        env = self.make_env()
        conn = env.new_conn()
        arrived = []  # ('count', n) | ('return', body type) in arrival order

        def on_message(c, msg, incoming):
            if incoming:
                t = msg.get_message_type()
                body = msg.get_body()
                if t == Gio.DBusMessageType.SIGNAL and msg.get_member() == 'PropertiesChanged' and \
                        msg.get_path() == PATH and body is not None and \
                        'MappingCount' in body.get_child_value(1).unpack():
                    arrived.append(('count', body.get_child_value(1).unpack()['MappingCount']))
                elif t == Gio.DBusMessageType.METHOD_RETURN:
                    arrived.append(('return', body.get_type_string() if body is not None else '()'))
                elif t == Gio.DBusMessageType.ERROR:
                    arrived.append(('return', msg.get_error_name()))
            return msg
        conn.signal_subscribe(BUS_NAME, PROPS, 'PropertiesChanged', PATH, None, Gio.DBusSignalFlags.NONE,
                              lambda *a: None)
        # pcpd learns who a connection is from the bus on its first call, and answers what
        # needs no such knowledge (the Ping) meanwhile: a first call makes it known
        env.call(env.add_mapping('udp', 8731, conn=conn), MAPPING, 'Release', conn=conn)
        env.barrier(conn)
        conn.add_filter(on_message)

        def call_then_ping(path, iface, method, sig, args):
            del arrived[:]
            conn.call(BUS_NAME, path, iface, method, GLib.Variant(sig, args) if sig else None, None,
                      Gio.DBusCallFlags.NONE, 20000, None, lambda *a: None, None)  # a reply is asked for
            conn.call_sync(BUS_NAME, PATH, 'org.freedesktop.DBus.Peer', 'Ping', None, None,
                           Gio.DBusCallFlags.NONE, 20000, None)
            wait_until(lambda: len([a for a in arrived if a[0] == 'return']) >= 2, 10, 'both replies')
            return list(arrived)

        seen = call_then_ping(PATH, MANAGER, 'AddMapping', '(sqqa{sv})', ('udp', 8730, 0, {}))
        self.assertIn(('count', 1), seen)
        first_return = next(k for k, a in enumerate(seen) if a[0] == 'return')
        self.assertLess(seen.index(('count', 1)), first_return, f'MappingCount before any reply: {seen}')
        path = env.call(PATH, OM, 'GetManagedObjects')[0]
        self.assertEqual(len(path), 1)
        seen = call_then_ping(list(path)[0], MAPPING, 'Release', None, None)
        first_return = next(k for k, a in enumerate(seen) if a[0] == 'return')
        self.assertIn(('count', 0), seen)
        self.assertLess(seen.index(('count', 0)), first_return, f'MappingCount before any reply: {seen}')
        conn.close_sync(None)

if __name__ == '__main__':
    main()
