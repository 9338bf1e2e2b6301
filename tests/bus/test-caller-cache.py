#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpd asks the bus who a caller is (GetConnectionCredentials) once per connection: later
calls of the same connection, and calls that come while the question is out, use that
answer; another connection gets its own question and its own answer; once a connection
leaves the bus, pcpd forgets it. A monitor connection (BecomeMonitor) counts the
questions pcpd sends, and its GetNameOwner calls: a holder whose connection pcpd knows (and
has not seen leave) is not asked about again when it adds a mapping."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi.repository import Gio, GLib  # noqa: E402

import pcpdtest  # noqa: E402
from pcpdtest import (BUS_NAME, ERR, MANAGER, MAPPING, NOBODY, PATH, Agent, BusTestCase, main,  # noqa: E402
                      wait_until)

DBUS = 'org.freedesktop.DBus'

# root may become a monitor on this test's bus (as bench/bench-daemon.c's bus allows); the
# rest of the configuration is the bus tests' own
pcpdtest.BUS_CONFIG = pcpdtest.BUS_CONFIG.replace(
    '{limits}', '{limits}<policy user="root"><allow send_destination="org.freedesktop.DBus" '
    'send_interface="org.freedesktop.DBus.Monitoring"/></policy>', 1)


class CredentialsMonitor:
    """Every GetConnectionCredentials call on the bus, seen by a monitor connection. sync()
    returns once the monitor has seen everything the bus routed before it was called."""

    def __init__(self, env):
        self.env = env
        self.calls = []  # (sender, the name asked about)
        self.owner_calls = []  # GetNameOwner: (sender, the name asked about)
        self.markers = set()
        self.n_markers = 0
        self.conn = env.new_conn()
        self.conn.add_filter(self._filter)
        rules = [f"type='method_call',destination='{DBUS}',interface='{DBUS}',member='GetConnectionCredentials'",
                 f"type='method_call',destination='{DBUS}',interface='{DBUS}',member='NameHasOwner'",
                 f"type='method_call',destination='{DBUS}',interface='{DBUS}',member='GetNameOwner'"]
        self.conn.call_sync(DBUS, '/org/freedesktop/DBus', 'org.freedesktop.DBus.Monitoring', 'BecomeMonitor',
                            GLib.Variant('(asu)', (rules, 0)), None, Gio.DBusCallFlags.NONE, 10000, None)

    def _filter(self, conn, msg, incoming):
        # runs in GDBus's own thread; the monitored calls are not ours to answer
        if not incoming or msg.get_message_type() != Gio.DBusMessageType.METHOD_CALL:
            return msg
        body = msg.get_body()
        arg = body.unpack()[0] if body is not None and body.n_children() > 0 else None
        if msg.get_member() == 'GetConnectionCredentials':
            self.calls.append((msg.get_sender(), arg))
        elif msg.get_member() == 'GetNameOwner':
            self.owner_calls.append((msg.get_sender(), arg))
        elif msg.get_member() == 'NameHasOwner' and isinstance(arg, str):
            self.markers.add(arg)
        return None

    def sync(self):
        self.n_markers += 1
        marker = f'org.freedesktop.PCP1.Test.Marker{os.getpid()}x{self.n_markers}'
        self.env.name_has_owner(marker)
        wait_until(lambda: marker in self.markers, 30, 'the monitor to see the marker call')

    def asked_about(self, name, by):
        return [c for c in self.calls if c == (by, name)]

    def owner_asked_about(self, name, by):
        return [c for c in self.owner_calls if c == (by, name)]

    def close(self):
        try:
            self.conn.close_sync(None)
        except GLib.Error:
            pass


class CallerCacheTest(BusTestCase):

    def setUp(self):
        self.env = self.make_env()
        self.pcpd_name = self.env.conn.call_sync(DBUS, '/org/freedesktop/DBus', DBUS, 'GetNameOwner',
                                                 GLib.Variant('(s)', (BUS_NAME,)), None,
                                                 Gio.DBusCallFlags.NONE, 5000, None).unpack()[0]
        self.mon = CredentialsMonitor(self.env)
        self.addCleanup(self.mon.close)

    def asked(self, name):
        self.mon.sync()
        return len(self.mon.asked_about(name, self.pcpd_name))

    def owner_asked(self, name):
        self.mon.sync()
        return len(self.mon.owner_asked_about(name, self.pcpd_name))

    def add_and_release(self, agent, port, conn=0):
        ans = agent.add_mapping('udp', port, conn=conn)
        self.assertIn('ok', ans, ans)
        path = ans['ok'][0]
        rel = agent.req(op='call', conn=conn, path=path, iface=MAPPING, method='Release')
        self.assertIn('ok', rel, rel)
        return path

    def test_one_question_per_connection(self):
        a = Agent(self.env)
        n = 6
        paths = [self.add_and_release(a, 9100 + i) for i in range(n)]
        for p in paths:
            wait_until(lambda: self.env.removed_reason(p), 10, f'MappingRemoved of {p}')
            self.assertEqual(self.env.removed_reason(p), 'released')
        self.assertEqual(self.asked(a.name), 1, f'{n} AddMapping + Release from one connection: one question '
                                                f'(asked: {self.mon.calls})')
        # the answer is the connection's: its uid and pid on every mapping it made
        p = a.add_mapping('tcp', 9120)['ok'][0]
        props = self.env.get_all(p)
        self.assertEqual(props['UID'], 0)
        self.assertEqual(props['PID'], a.pid)
        self.assertEqual(props['Owner'], a.name)
        self.assertEqual(self.asked(a.name), 1)

    def test_known_holder_not_asked_about(self):
        """AddMapping from a connection pcpd knows: no GetNameOwner for the new holder (the
        NameOwnerChanged match tells when it leaves), for new and for shared mappings."""
        a = Agent(self.env)
        n = 5
        paths = [a.add_mapping('udp', 9500 + i)['ok'][0] for i in range(n)]
        b = Agent(self.env)
        shared = b.add_mapping('udp', 9500)
        self.assertEqual(shared['ok'][0], paths[0], 'the same uid shares the mapping')
        self.assertEqual(self.asked(a.name), 1)
        self.assertEqual(self.owner_asked(a.name), 0, f'{n} AddMapping from one connection: no GetNameOwner '
                                                      f'(asked: {self.mon.owner_calls})')
        self.assertEqual(self.owner_asked(b.name), 0, f'a holder joining: no GetNameOwner '
                                                      f'(asked: {self.mon.owner_calls})')
        for p in paths:
            self.env.wait_state(p, 'active')
        # and it still goes with its holder: the match saw it leave
        a.kill()
        for p in paths[1:]:
            wait_until(lambda: self.env.removed_reason(p), 30, f'MappingRemoved of {p}')
            self.assertEqual(self.env.removed_reason(p), 'owner-vanished')
        self.env.barrier()
        self.assertIsNone(self.env.removed_reason(paths[0]), 'still held by the second connection')
        b.kill()
        wait_until(lambda: self.env.removed_reason(paths[0]), 30, f'MappingRemoved of {paths[0]}')
        self.assertEqual(self.env.removed_reason(paths[0]), 'owner-vanished')
        self.assertEqual(self.env.get(PATH, MANAGER, 'MappingCount'), 0)

    def test_calls_while_asking_wait_for_the_answer(self):
        a = Agent(self.env)
        n = 8
        ans = a.req(op='calls', method='AddMapping', sig='sqqa{sv}',
                    args=[f"('udp', uint16 {9200 + i}, uint16 0, @a{{sv}} {{}})" for i in range(n)])
        self.assertIn('ok', ans, ans)
        self.assertEqual(len(ans['ok']), n)
        for r in ans['ok']:
            self.assertIn('ok', r, r)
        self.assertEqual(len({r['ok'][0] for r in ans['ok']}), n, 'n mappings')
        self.assertEqual(self.asked(a.name), 1, f'{n} pipelined calls, one question (asked: {self.mon.calls})')

    def test_each_connection_asked_about_once(self):
        a = Agent(self.env)
        names = [a.name] + a.req(op='connect', n=2)['ok']
        for i, name in enumerate(names):
            for k in range(3):
                self.add_and_release(a, 9300 + 10 * i + k, conn=i)
        for name in names:
            self.assertEqual(self.asked(name), 1, f'{name}: its own question, once (asked: {self.mon.calls})')
        # another user's connection is told apart: its uid, not a cached one of root's
        p = self.env.add_mapping('udp', 9399)
        nobody = Agent(self.env, uid=NOBODY)
        ans = nobody.call('RemoveMapping', 'o', f"(objectpath '{p}',)")
        self.assertIn('error', ans, ans)
        self.assertEqual(ans['error'], ERR + 'NotAuthorized', ans)
        self.assertEqual(self.env.get(p, MAPPING, 'State'), 'active')
        self.assertEqual(self.asked(nobody.name), 1)

    def test_forgotten_when_the_connection_leaves(self):
        a = Agent(self.env)
        names = [a.name] + a.req(op='connect', n=1)['ok']
        for i in range(2):
            self.add_and_release(a, 9400 + i, conn=i)
        gone = names[1]
        line = f'Caller {gone} left the bus: its credentials are forgotten (1 connections known)'
        self.assertNotIn(f'Caller {gone} left the bus', self.env.log())
        self.assertEqual(a.req(op='close', conn=1), {'ok': True})
        wait_until(lambda: line in self.env.log(), 30, f'pcpd to forget {gone}')
        # the other one is still known: asked about once
        self.add_and_release(a, 9410)
        self.assertEqual(self.asked(names[0]), 1)
        self.assertEqual(self.asked(gone), 1)
        a.kill()
        wait_until(lambda: f'Caller {names[0]} left the bus: its credentials are forgotten (0 connections known)'
                   in self.env.log(), 30, f'pcpd to forget {names[0]}')
        self.env.assert_alive()
        self.assertEqual(self.env.get(PATH, MANAGER, 'MappingCount'), 0)


if __name__ == '__main__':
    main()
