#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mapping.AppId and AppIdSource come from where they can be trusted:
  - "flatpak" only from the caller process's own /.flatpak-info, read through its root
    directory: a caller in a mount namespace whose root holds one (made here with unshare
    and chroot) gets its id, whatever it declares;
  - a cgroup named like a Flatpak scope (app-flatpak-ID-N.scope, which any user can get
    with systemd-run --user --scope --unit=...) is a "systemd-unit" and nothing more;
  - the app-id option is "declared".
Needs root (cgroups, mount namespaces)."""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import NOBODY, Agent, BusTestCase, fake_flatpak_prefix, main, systemd_cgroup_root  # noqa: E402

FAKE_SCOPE = 'app-flatpak-org.example.App-1.scope'
SANDBOXED = 'org.example.Sandboxed'


class AppIdTest(BusTestCase):
    env_kwargs = {'polkit': True}

    def setUp(self):
        self.env = self.make_env()
        self.env.polkit_call('AllowUnknown', 'b', True)

    def add(self, agent, options='@a{sv} {}'):
        port = agent.req(op='bind', proto='tcp', port=0)['ok']
        ans = agent.add_mapping('tcp', port, 0, options)
        self.assertIn('ok', ans, ans)
        props = self.env.get_all(ans['ok'][0])
        return props['AppId'], props['AppIdSource']

    def test_declared(self):
        a = Agent(self.env, uid=NOBODY)
        self.assertEqual(self.add(a, "{'app-id': <'org.example.Declared'>}"), ('org.example.Declared', 'declared'))

    def test_fake_flatpak_scope_is_only_a_unit(self):
        root = systemd_cgroup_root()
        if root is None or not os.access(root, os.W_OK):
            msg = f'this test needs a writable cgroup hierarchy (found {root})'
            if os.environ.get('CI') == 'true':
                self.fail(msg)
            self.skipTest(msg)
        # a scope named the way Flatpak names its apps' scopes, made by the test (as a user
        # can with systemd-run --user --scope --unit=...)
        slice_dir = os.path.join(root, f'pcpd-test-{os.getpid()}.slice')
        scope = os.path.join(slice_dir, FAKE_SCOPE)
        os.makedirs(scope)
        self.addCleanup(os.rmdir, slice_dir)
        self.addCleanup(os.rmdir, scope)
        a = Agent(self.env, uid=NOBODY)
        self.addCleanup(a.kill)  # before the cgroups go (cleanups run last first)
        with open(os.path.join(scope, 'cgroup.procs'), 'w') as f:
            f.write(str(a.pid))
        with open(f'/proc/{a.pid}/cgroup') as f:
            self.assertIn(FAKE_SCOPE, f.read())
        self.assertEqual(self.add(a), (FAKE_SCOPE, 'systemd-unit'))
        # a declared id does not beat the unit: the unit is what the daemon saw
        self.assertEqual(self.add(a, "{'app-id': <'org.example.App'>}"), (FAKE_SCOPE, 'systemd-unit'))

    def fake_flatpak_agent(self, info_text):
        """An agent (nobody) in a mount namespace whose root is a copy of the host's with
        /.flatpak-info added, like a Flatpak sandbox's."""
        if shutil.which('unshare') is None:
            msg = 'this test needs unshare (util-linux)'
            if os.environ.get('CI') == 'true':
                self.fail(msg)
            self.skipTest(msg)
        prefix = fake_flatpak_prefix(self.env, info_text)
        return Agent(self.env, uid=NOBODY, prefix=prefix)

    def test_flatpak_info_in_the_process_root(self):
        a = self.fake_flatpak_agent(f'[Application]\nname={SANDBOXED}\nruntime=runtime/x/y/z\n\n'
                                    '[Instance]\ninstance-id=42\n')
        # what pcpd reads: the process's own root holds it, the host's does not
        self.assertTrue(os.path.exists(f'/proc/{a.pid}/root/.flatpak-info'))
        self.assertFalse(os.path.exists('/.flatpak-info'))
        self.assertEqual(self.add(a), (SANDBOXED, 'flatpak'))
        # what it declares does not change what it is
        self.assertEqual(self.add(a, "{'app-id': <'org.example.Other'>}"), (SANDBOXED, 'flatpak'))
        # the app's own id is what RevokeApp finds
        self.env.manager('RevokeApp', 's', (SANDBOXED,))
        self.assertEqual(self.env.get('/org/freedesktop/PCP1', 'org.freedesktop.PCP1.Manager', 'MappingCount'), 0)

    def test_bad_flatpak_info_is_ignored(self):
        a = self.fake_flatpak_agent('[Application]\nname=../../etc/passwd\n')
        self.assertEqual(self.add(a), ('', 'none'))
        self.assertEqual(self.add(a, "{'app-id': <'org.example.Declared'>}"), ('org.example.Declared', 'declared'))


if __name__ == '__main__':
    main()
