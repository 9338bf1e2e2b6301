#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Strings from the bus are text: the app shows what the daemon and the applications say as
it is, never as Pango markup (a toast's title and a row's title and subtitle are markup in
libadwaita 1.2 unless told otherwise: "&" or "<b>" there made an empty toast or a blank
subtitle, and a GTK warning, fatal in these tests). A known error of pcpd is said in words
(the user's language), with the daemon's message after them. Against the stand-in of fake-pcpd.py
(python-dbusmock), which says what the test wants."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util  # noqa: E402

from pfapp import APP_UID, HERE, GuiTestCase, main  # noqa: E402
from pcpdtest import GLib  # noqa: E402

_spec = importlib.util.spec_from_file_location('readded', os.path.join(HERE, 'test-gui-readded.py'))
readded = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readded)
FakePcpd = readded.FakePcpd

MANAGER = 'org.freedesktop.PCP1.Manager'
STATUS = 'row: Automatic Port Forwarding | '
READY = STATUS + 'Your router accepts port-forwarding requests'
MARKUP = 'Mapping <b>7</b> & co is not yours'


def lines_of(d):
    return [line.strip() for line in d.splitlines()]


class StringsTest(GuiTestCase):

    def test_markup_from_the_bus_is_text(self):
        env = self.make_env(start=False, refserver=False)
        fake = FakePcpd(env)
        # RemoveMapping refuses, with a message that looks like markup
        fake.call('AddMethod', 'sssss', MANAGER, 'RemoveMapping', 'o', '',
                  f"raise dbus.exceptions.DBusException({MARKUP!r}, "
                  "name='org.freedesktop.PCP1.Error.NotAuthorized')")
        fake.add(1, InternalPort=22000, ExternalPort=40001, AppId='org.example.Chat', AppIdSource='flatpak',
                 UID=APP_UID)
        # a description with markup, a bidi override, a new line and a bell; mappings that
        # failed with codes of the contract: no server (it waits), a UPnP-IGD timeout
        fake.add(2, InternalPort=22001, ExternalPort=40002, AppId='org.example.Chat', AppIdSource='flatpak',
                 UID=APP_UID, Description='<b>bold</b> & \u202eevil\u202c line1\nline2\x07bell')
        fake.add(3, InternalPort=22002, ExternalPort=0, ExternalAddress='', State='failed', Error='NO_SERVER',
                 Server='', AppId='org.example.Chat', AppIdSource='flatpak', UID=APP_UID)
        fake.add(4, InternalPort=22003, ExternalPort=0, ExternalAddress='', State='failed', Error='TIMEOUT',
                 AppId='org.example.Chat', AppIdSource='flatpak', UID=APP_UID)
        app = self.make_app(env)
        d = app.wait_lines(READY, 'expander: Chat | 4 ports | expanded=1')
        rows = [line for line in lines_of(d) if line.startswith('row: TCP ')]
        self.assertIn('row: TCP 22001 → 198.51.100.7:40002 | <b>bold</b> & \ufffdevil\ufffd line1\ufffdline2\ufffdbell'
                      ' · Active · expires in', '\n'.join(rows))
        self.assertIn('row: TCP 22002 | Waiting for a router that can forward ports', rows)
        self.assertIn('row: TCP 22003 | Failed: the router did not answer in time; trying again', rows)
        app.activate('Details')

        # the Details rows: the daemon's version and addresses as they are
        fake.call('UpdateProperties', 'sa{sv}', MANAGER, {
            'Version': GLib.Variant('s', '1.0 <beta> & more'),
            'ExternalAddresses': GLib.Variant('as', ['198.51.100.7', '<i>x</i> & y']),
        })
        app.wait_lines('row: Service Version | 1.0 <beta> & more',
                       'row: External Address | 198.51.100.7, <i>x</i> & y',
                       'expander: Details | External address 198.51.100.7, <i>x</i> & y | expanded=1',
                       what='the markup-like version and addresses')
        app.screenshot('strings-details')

        # the refusal's message in a toast, shown as it is
        app.activate('Stop forwarding TCP port 22000')
        d = app.wait_dump(lambda d: any(line.startswith('toast-shown: ') for line in lines_of(d)), 'the toast')
        toast = [line for line in lines_of(d) if line.startswith('toast: ')]
        shown = [line[len('toast-shown: '):] for line in lines_of(d) if line.startswith('toast-shown: ')]
        self.assertEqual(len(toast), 1, d)
        # the error's name in words, the daemon's own sentence after them
        self.assertEqual(toast[0], 'toast: Could not stop forwarding the port: you are not allowed to do this — ' + MARKUP)
        self.assertEqual(shown, [toast[0][len('toast: '):]], d)
        app.screenshot('strings-toast')


if __name__ == '__main__':
    main()
