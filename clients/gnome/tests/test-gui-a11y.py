#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a screen reader gets from the app (AT-SPI, through a real accessibility bus on the
app's session bus): every button, switch and toggle has a name, icon-only buttons
included; the banners are status nodes that say their sentence."""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pfapp import APP_UID, HERE, PYTHON, GuiTestCase, main  # noqa: E402
from pcpdtest import Agent  # noqa: E402

CONTROLS = {'push button', 'toggle button', 'check box', 'switch', 'radio button', 'menu button', 'combo box'}


class A11yTest(GuiTestCase):

    def test_every_control_has_a_name(self):
        try:
            import gi
            gi.require_version('Atspi', '2.0')
        except (ImportError, ValueError) as e:
            if os.environ.get('CI') == 'true':
                raise
            self.skipTest(f'no AT-SPI for Python (gir1.2-atspi-2.0): {e}')
        env = self.make_env()
        app = self.make_app(env, a11y=True)
        chat = Agent(env, uid=APP_UID)
        port = chat.req(op='bind', proto='udp', port=0)['ok']
        self.assertIn('ok', chat.add_mapping('udp', port, options="{'app-id': <'org.example.Chat'>}"))
        app.wait_dump(lambda d: f'UDP {port} →' in d, 'the port on the page')

        # the checker runs as the app's user: the session bus (and so the accessibility
        # bus) lets only that user in
        checker = os.path.join(env.tmp, 'app', 'atspi-dump.py')
        shutil.copy(os.path.join(HERE, 'atspi-dump.py'), checker)
        wanted = ['Unlock…', 'Main Menu', 'Automatic Port Forwarding', 'Stop forwarding all ports of Chat',
                  f'Stop forwarding UDP port {port}']
        r = subprocess.run([PYTHON, checker, os.path.basename(app.exe), '60'] + wanted, env=app.appenv,
                           user=APP_UID, group=APP_UID, extra_groups=[], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f'{r.stderr}\napp stderr:\n{app.stderr()}')
        nodes = [json.loads(l) for l in r.stdout.splitlines()]
        controls = [n for n in nodes if n['role'] in CONTROLS]
        self.assertGreaterEqual(len(controls), 5, nodes)
        # no name, or one made up from a widget's type ("GtkImage") or an icon, is no name
        unnamed = [n for n in controls if not n['name'].strip() or n['name'].startswith('Gtk') or
                   n['name'].endswith('-symbolic')]
        self.assertEqual(unnamed, [], 'controls without an accessible name')
        # the icon-only buttons are named by what they do, not by their icon
        by_name = {n['name']: n for n in controls}
        self.assertEqual(by_name[f'Stop forwarding UDP port {port}']['role'], 'push button')
        self.assertEqual(by_name['Stop forwarding all ports of Chat']['role'], 'push button')
        # the switch is named once, by its row's title
        self.assertIn(by_name['Automatic Port Forwarding']['role'], {'switch', 'toggle button', 'check box'})
        # the banner says its sentence to a screen reader
        statuses = [n['name'] for n in nodes if n['role'] == 'status bar' or n['role'] == 'status']
        self.assertIn('Some settings must be unlocked to change them.', statuses, nodes)


if __name__ == '__main__':
    main()
