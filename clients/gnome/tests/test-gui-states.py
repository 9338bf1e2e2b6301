#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The app's page in each state of the service, against the real pcpd: not running (and not
activatable), then started switched off, killed and back; no router (pcpd in a network
namespace with no server and no global address); directly reachable (a namespace with a
global address and no server). PNGs of each state go to the build directory (paths
printed)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pfapp import GuiTestCase, main  # noqa: E402
from pcpdtest import MANAGER, PATH, Agent, NetNS, netns_preflight, wait_until  # noqa: E402

STATUS = 'row: Automatic Port Forwarding | '
# no service file on the test's bus: the one start the app asks for fails, and says why
NOT_STARTED = ('banner: The port forwarding service could not be started: The name org.freedesktop.PCP1 was not '
               'provided by any .service files. “systemctl status pcpd” tells why.')
NOT_RUNNING = 'banner: The port forwarding service is not running.'
SWITCHED_OFF = 'banner: Port forwarding is switched off. Applications cannot open ports to the Internet.'


class StatesTest(GuiTestCase):

    def test_not_running_then_switched_off(self):
        env = self.make_env(start=False)
        app = self.make_app(env)
        d = app.wait_lines(NOT_STARTED, STATUS + 'Service not running')
        # nothing to switch, lock or list while there is no service
        self.assertNotIn('switch:', d)
        self.assertNotIn('Forwarded Ports', d)
        self.assertNotIn('Unlock', d)
        app.screenshot('not-running')

        # the service starts (switched off in its configuration): the page follows
        env.config['Enabled'] = 'false'
        env.start_pcpd(wait_ready=False)
        d = app.wait_lines(SWITCHED_OFF, absent=[NOT_STARTED, NOT_RUNNING], what='the switched-off banner')
        self.assertIn(STATUS + 'Switched off: applications cannot open ports to the Internet', d)
        self.assertIn('switch: Automatic Port Forwarding | off [insensitive]', d)
        self.assertIn('button: Unlock…', d)
        self.assertIn('status-page: No Forwarded Ports | Switch on automatic port forwarding', d)
        app.screenshot('switched-off')

        # the service goes away and comes back: the page follows both ways
        env.kill_pcpd()
        d = app.wait_lines(NOT_RUNNING, STATUS + 'Service not running')
        self.assertNotIn('switch:', d)
        env.start_pcpd(wait_ready=False)
        app.wait_lines(SWITCHED_OFF, absent=[NOT_RUNNING], what='the service back')

    def test_no_router(self):
        netns_preflight()
        ns = NetNS('gui')
        self.addCleanup(ns.close)
        env = self.make_env(refserver=False, netns=ns.name, start=False)
        env.start_pcpd(wait_ready=False)
        wait_until(lambda: env.get(PATH, MANAGER, 'State') == 'no-network', 20, 'pcpd State "no-network"')
        app = self.make_app(env)
        d = app.wait_lines('banner: No router found on this network. Applications cannot open ports to the Internet.',
                           STATUS + 'No router found that could forward ports')
        self.assertIn('expander: Details | No external address known | expanded=0', d)
        self.assertIn('status-page: No Forwarded Ports | Games, calls and file sharing', d)
        app.screenshot('no-router')

    def test_directly_reachable(self):
        netns_preflight()
        ns = NetNS('guid')
        self.addCleanup(ns.close)
        # a global address (as far as pcpd can tell; it only exists in this namespace)
        ns.ip('link', 'add', 'pub0', 'type', 'veth', 'peer', 'name', 'pub0p')
        ns.ip('link', 'set', 'pub0p', 'up')
        ns.ip('link', 'set', 'pub0', 'up')
        ns.ip('addr', 'add', '11.22.33.44/24', 'dev', 'pub0')
        env = self.make_env(refserver=False, netns=ns.name, start=False)
        env.start_pcpd(wait_ready=False)
        wait_until(lambda: env.get(PATH, MANAGER, 'State') == 'ready', 20, 'pcpd State "ready"')
        app = self.make_app(env)
        root = Agent(env)
        self.assertIn('ok', root.add_mapping('tcp', 8080, options="{'app-id': <'org.example.Sync'>}"))
        d = app.wait_lines(STATUS + 'This computer is directly reachable from the Internet',
                           'row: TCP 8080 → 11.22.33.44:8080 | Active · reachable directly, no router needed · '
                           'user root')
        self.assertNotIn('banner: ', d.replace('banner: Some settings must be unlocked', ''))
        self.assertIn('expander: Details | External address 11.22.33.44 | expanded=0', d)
        app.screenshot('direct')


if __name__ == '__main__':
    main()
