#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The app and the start of the service. The app asks the bus once to start pcpd (bus
activation, as systemctl or GNOME Settings would) and then follows the name: a start that
failed is named in the banner, with where to look; the page follows pcpd when it comes later
(started by the administrator). While the start is still going on the page says
"Connecting…", not that the service could not be started.

The service file of the private bus runs a script in place of pcpd: it either fails as pcpd
does with a bad configuration (exit status 1), or waits until the test lets it go on and then
runs the stand-in of fake-pcpd.py (python-dbusmock)."""

import os
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pfapp import APP_UID, HERE, PYTHON, GuiTestCase, main, slurp, wait_until  # noqa: E402

sys.path.insert(0, HERE)
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location('readded', os.path.join(HERE, 'test-gui-readded.py'))
readded = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readded)
FakePcpd = readded.FakePcpd

FAKE_PCPD = os.path.join(HERE, 'fake-pcpd.py')
STATUS = 'row: Automatic Port Forwarding | '
CONNECTING = STATUS + 'Connecting to the port forwarding service…'
READY = STATUS + 'Your router accepts port-forwarding requests'
NOT_RUNNING = STATUS + 'Service not running'
FAILED = ('banner: The port forwarding service could not be started: Process org.freedesktop.PCP1 exited with '
          'status 1. “systemctl status pcpd” tells why.')
# every banner about the service not running or not started
ANY_NOT_RUNNING = 'banner: The port forwarding service'
CAP = 30  # seconds, for the activation script to run


class StartTest(GuiTestCase):

    def make_service(self, wait):
        """A service directory for the bus: activating org.freedesktop.PCP1 runs a script that
        counts its runs, and fails (wait=False) or waits for a line on a FIFO before it runs
        the fake pcpd (wait=True). Returns (dir, services dir)."""
        d = tempfile.mkdtemp(prefix='pcpd-gui-start-')
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        script = os.path.join(d, 'pcpd-start.sh')
        with open(script, 'w') as f:
            f.write(f'''#!/bin/sh
echo $$ >> {d}/activations
if [ ! -p {d}/go ]; then
    echo "pcpd: Bad configuration, not starting" >&2
    exit 1
fi
read line < {d}/go
DBUS_SYSTEM_BUS_ADDRESS="$DBUS_STARTER_ADDRESS" exec {PYTHON} -m dbusmock --system --template {FAKE_PCPD} \\
    > {d}/fake.log 2>&1
''')
        os.chmod(script, 0o755)
        services = os.path.join(d, 'services')
        os.mkdir(services)
        with open(os.path.join(services, 'org.freedesktop.PCP1.service'), 'w') as f:
            f.write(f'[D-BUS Service]\nName=org.freedesktop.PCP1\nExec={script}\n')
        if wait:
            os.mkfifo(os.path.join(d, 'go'))
        self.addCleanup(self.kill_activated, d)
        return d, services

    def kill_activated(self, d):
        # the processes the bus started for this test (by the PIDs they wrote), never others
        for pid in self.activations(d):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def activations(self, d):
        path = os.path.join(d, 'activations')
        return [int(x) for x in slurp(path).split()] if os.path.exists(path) else []

    def test_failed_start_then_service_appears(self):
        d, services = self.make_service(wait=False)
        env = self.make_env(start=False, refserver=False, servicedir=services)
        app = self.make_app(env)
        # the start failed: the banner says so, with the system's reason and where to look
        dump = app.wait_lines(FAILED, NOT_RUNNING, what='the failed start in the banner')
        self.assertNotIn('switch:', dump)
        self.assertNotIn('Forwarded Ports', dump)
        app.screenshot('start-failed')
        # asked once (two proxies that each start the service asked twice)
        self.assertEqual(len(self.activations(d)), 1, slurp(os.path.join(d, 'activations')))

        # the administrator fixes it and starts the service: the page follows
        fake = FakePcpd(env)
        dump = app.wait_lines(READY, 'expander: Details | External address 198.51.100.7 | expanded=0',
                              absent=[ANY_NOT_RUNNING], what='the page following the service that appeared')
        self.assertIn('group: Forwarded Ports', dump)
        # the mapping objects are followed too
        fake.add(1, InternalPort=22000, ExternalPort=40001, AppId='org.example.Chat', AppIdSource='flatpak',
                 UID=APP_UID)
        fake.announce(1)
        app.wait_lines('expander: Chat | 1 port | expanded=1', what='a mapping of the service that appeared')
        app.screenshot('start-failed-then-running')
        # the app never asked for another start (the fake owns the name)
        self.assertEqual(len(self.activations(d)), 1, slurp(os.path.join(d, 'activations')))

        # it goes away: not running, without the old start's error
        fake.proc.kill()
        fake.proc.wait()
        app.wait_lines(NOT_RUNNING, 'banner: The port forwarding service is not running.',
                       what='the service gone again')

    def test_connecting_while_starting(self):
        d, services = self.make_service(wait=True)
        env = self.make_env(start=False, refserver=False, servicedir=services)
        app = self.make_app(env)
        # the app asked the bus to start the service, and its start is going on
        wait_until(lambda: self.activations(d), CAP, 'the bus to run the service (the app asking to start it)')
        dump = app.dump()
        self.assertIn(CONNECTING, [line.strip() for line in dump.splitlines()], dump)
        self.assertNotIn(ANY_NOT_RUNNING, dump)
        self.assertNotIn('switch:', dump)
        app.screenshot('connecting')

        # the start goes on: the page shows the service
        with open(os.path.join(d, 'go'), 'w') as f:
            f.write('go\n')
        app.wait_lines(READY, absent=[ANY_NOT_RUNNING, CONNECTING], what='the service once started')
        self.assertEqual(len(self.activations(d)), 1, slurp(os.path.join(d, 'activations')))


if __name__ == '__main__':
    main()
