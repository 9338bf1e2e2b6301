#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A row follows its mapping after the mapping's object got its Mapping interface again.

After a restart pcpd tells the InterfacesAdded of many restored mappings after it took its
name (org.freedesktop.PCP1(5), AFTER A RESTART), so the app may get the InterfacesAdded of a
mapping it read already with GetManagedObjects. GDBusObjectManagerClient then replaces the
object's Mapping proxy with a new one, and only the new one follows the later
PropertiesChanged. Whether that happens with the real pcpd depends on how fast the bus and
the app are: this test uses the stand-in of fake-pcpd.py (python-dbusmock), which sends those
signals when the test says so. Also: the Mapping interface withdrawn from an object that stays
(its row goes), and given back (its row comes back and follows)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pfapp import APP_UID, HERE, PYTHON, GuiTestCase, main, slurp, wait_until  # noqa: E402
from pcpdtest import BUS_NAME, PATH, GLib, Gio  # noqa: E402

FAKE_PCPD = os.path.join(HERE, 'fake-pcpd.py')
MOCK_IFACE = 'org.freedesktop.DBus.Mock'
EXTERNAL = '198.51.100.7'  # fake-pcpd.py's
TYPES = {'ExternalPort': 'q', 'InternalPort': 'q', 'State': 's', 'Error': 's', 'AppId': 's', 'AppIdSource': 's',
         'UID': 'u', 'Description': 's', 'Server': 's', 'ExternalAddress': 's', 'PID': 'u', 'Protocol': 's',
         'ExpiresAt': 't'}


class FakePcpd:
    def __init__(self, env):
        self.env = env
        log_path = os.path.join(env.tmp, 'fake-pcpd.log')
        with open(log_path, 'w') as log:
            self.proc = subprocess.Popen([PYTHON, '-m', 'dbusmock', '--system', '--template', FAKE_PCPD],
                                         env=env.env, stdout=log, stderr=subprocess.STDOUT)
        env.procs.append(self.proc)
        wait_until(lambda: env.name_has_owner(BUS_NAME) or self.proc.poll() is not None, 30, 'the fake pcpd')
        if self.proc.poll() is not None:
            raise RuntimeError('the fake pcpd died: ' + slurp(log_path))

    def call(self, method, sig, *args):
        self.env.conn.call_sync(BUS_NAME, PATH, MOCK_IFACE, method, GLib.Variant(f'({sig})', args), None,
                                Gio.DBusCallFlags.NONE, 20000, None)

    def props(self, **kw):
        return {k: GLib.Variant(TYPES[k], v) for k, v in kw.items()}

    def add(self, mapping_id, **kw):
        self.call('AddMapping', 'ua{sv}', mapping_id, self.props(**kw))

    def announce(self, mapping_id, **kw):
        self.call('AnnounceMapping', 'ua{sv}', mapping_id, self.props(**kw))

    def update(self, mapping_id, **kw):
        self.call('UpdateMapping', 'ua{sv}', mapping_id, self.props(**kw))


def row(port, ext_port):
    return f'row: TCP {port} → {EXTERNAL}:{ext_port} | '


def rows_of(d, port):
    return [l.strip() for l in d.splitlines() if l.strip().startswith(f'row: TCP {port} ')]


class ReaddedTest(GuiTestCase):

    def wait_row(self, app, port, prefix, what):
        """Waits until the one row of port starts with prefix; returns the dump."""
        return app.wait_dump(lambda d: len(rows_of(d, port)) == 1 and rows_of(d, port)[0].startswith(prefix),
                             f'{what} (row of port {port} starting "{prefix}")')

    def test_row_follows_the_new_proxy(self):
        env = self.make_env(start=False, refserver=False)
        fake = FakePcpd(env)
        # the viewer's own (no "user ..." in the rows)
        chat = {'AppId': 'org.example.Chat', 'AppIdSource': 'flatpak', 'UID': APP_UID}
        fake.add(1, InternalPort=22000, ExternalPort=40001, **chat)
        fake.add(2, InternalPort=22001, ExternalPort=40011, **chat)
        fake.call('AddOtherInterface', 'u', 2)
        # the app reads both with GetManagedObjects, as a client does when pcpd's name appears
        app = self.make_app(env)
        self.wait_row(app, 22000, row(22000, 40001) + 'Active · expires in', 'the first mapping')
        self.wait_row(app, 22001, row(22001, 40011) + 'Active · expires in', 'the second mapping')

        # the first one's InterfacesAdded comes now, with the same values (pcpd's paced restore),
        # then a change: the row follows it (before the fix it kept showing 40001)
        fake.announce(1)
        fake.update(1, ExternalPort=40002)
        self.wait_row(app, 22000, row(22000, 40002), 'the port changed after the second InterfacesAdded')
        fake.update(1, State='failed', Error='NO_RESOURCES')
        self.wait_row(app, 22000, row(22000, 40002) + 'Failed: the router has no room for more forwarded ports',
                      'the state changed after the second InterfacesAdded')

        # an InterfacesAdded with other values than the row shows: the row takes them
        fake.announce(1, State='active', Error='', ExternalPort=40003)
        d = self.wait_row(app, 22000, row(22000, 40003) + 'Active · expires in', 'the values of an InterfacesAdded')
        self.assertIn('expander: Chat | 2 ports | expanded=1', [l.strip() for l in d.splitlines()])

        # the second one loses its Mapping interface and keeps another one: its row goes
        # (before the fix it stayed, showing what the detached proxy last knew)
        fake.call('WithdrawMapping', 'u', 2)
        d = app.wait_dump(lambda d: rows_of(d, 22001) == [], 'the row of the withdrawn interface gone')
        self.assertEqual(len(rows_of(d, 22000)), 1, d)
        self.assertIn('expander: Chat | 1 port | expanded=1', [l.strip() for l in d.splitlines()])
        fake.update(1, ExternalPort=40004)
        self.wait_row(app, 22000, row(22000, 40004), 'the other row still following')

        # the interface comes back: so does the row, and it follows the changes
        fake.announce(2, ExternalPort=40012)
        d = self.wait_row(app, 22001, row(22001, 40012) + 'Active · expires in', 'the interface back')
        self.assertIn('expander: Chat | 2 ports | expanded=1', [l.strip() for l in d.splitlines()])
        fake.update(2, ExternalPort=40013)
        self.wait_row(app, 22001, row(22001, 40013), 'the row back following its changes')
        app.screenshot('readded')


if __name__ == '__main__':
    main()
