#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The keyboard focus stays on the page when the row that has it goes: closing a port with
the keyboard puts the focus on the next port's button (or the previous one's, or another
control of the page once the app's last port is gone) instead of nowhere, where the next Tab
started over from the top of the window. Against the stand-in of fake-pcpd.py
(python-dbusmock): its RemoveMapping answers, and the test withdraws the mapping."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util  # noqa: E402

from pfapp import APP_UID, HERE, GuiTestCase, main  # noqa: E402

_spec = importlib.util.spec_from_file_location('readded', os.path.join(HERE, 'test-gui-readded.py'))
readded = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readded)
FakePcpd = readded.FakePcpd

MANAGER = 'org.freedesktop.PCP1.Manager'
TABS = 40  # a cap on the Tab presses to reach a control


def button(port):
    return f'button: Stop forwarding TCP port {port}'


class FocusTest(GuiTestCase):

    def close_with_keyboard(self, app, fake, mapping_id, port):
        """Return on the focused remove button of port, then the mapping goes; returns where
        the focus is then."""
        self.assertEqual(app.key('Return'), button(port))
        fake.call('WithdrawMapping', 'u', mapping_id)
        app.wait_dump(lambda d: f'row: TCP {port} ' not in d, f'the row of port {port} gone')
        app.send('focus')
        ans = app._answer('focus')
        self.assertTrue(ans.startswith('FOCUS '), ans)
        return ans[len('FOCUS '):]

    def test_focus_after_closing(self):
        env = self.make_env(start=False, refserver=False)
        fake = FakePcpd(env)
        # RemoveMapping succeeds (the row goes with the InterfacesRemoved the test sends)
        fake.call('AddMethod', 'sssss', MANAGER, 'RemoveMapping', 'o', '', '')
        for i in range(3):
            fake.add(i + 1, InternalPort=22000 + i, ExternalPort=40001 + i, AppId='org.example.Chat',
                     AppIdSource='flatpak', UID=APP_UID)
        app = self.make_app(env)
        app.wait_lines('expander: Chat | 3 ports | expanded=1')

        seen = []
        while button(22001) not in seen:
            self.assertLess(len(seen), TABS, f'Tab never reached {button(22001)}: {seen}')
            seen.append(app.key('Tab'))

        # the middle one: the focus goes to the next one
        self.assertEqual(self.close_with_keyboard(app, fake, 2, 22001), button(22002))
        # the last one: to the one before
        self.assertEqual(self.close_with_keyboard(app, fake, 3, 22002), button(22000))
        # the app's last one (its group goes too): somewhere on the page, and Tab goes on from there
        # (the switch is locked for the app's user: the Details row)
        where = self.close_with_keyboard(app, fake, 1, 22000)
        self.assertIn(where, ('switch: Automatic Port Forwarding', 'expander: Details'))
        self.assertNotIn('row: TCP', app.dump())
        self.assertNotIn(app.key('Tab'), ('nothing', where))
        app.screenshot('focus-after-closing')


if __name__ == '__main__':
    main()
