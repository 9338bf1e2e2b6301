#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""DefaultLifetime above MaxLifetime (pcpd.conf(5)): the DefaultLifetime property says
what pcpd asks for when a caller asks for no lifetime, MaxLifetime, and the start and
every reload that reads such a pair log a warning naming both; a reload that raises
MaxLifetime over it gives the file's DefaultLifetime back, with PropertiesChanged."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import MANAGER, MAPPING, PATH, BusTestCase, main, wait_until  # noqa: E402

CAP = 60


class DefaultLifetimeTest(BusTestCase):

    def reload(self, env):
        done = env.log().count('Configuration reloaded') + env.log().count('Reload failed')
        env.write_config()
        env.pcpd.send_signal(signal.SIGHUP)
        wait_until(lambda: env.log().count('Configuration reloaded') + env.log().count('Reload failed') > done,
                   CAP, 'the reload to finish')
        env.assert_alive()
        last = [ln for ln in env.log().splitlines() if 'Configuration reloaded' in ln or 'Reload failed' in ln][-1]
        self.assertIn('Configuration reloaded', last)

    def changed(self, env, since):
        """the DefaultLifetime values PropertiesChanged said since signal number `since`"""
        return [s[3][1]['DefaultLifetime'] for s in env.signals[since:]
                if s[0] == PATH and s[2] == 'PropertiesChanged' and s[3][0] == MANAGER
                and 'DefaultLifetime' in s[3][1]]

    def test_default_above_max(self):
        env = self.make_env(config={'DefaultLifetime': 7200, 'MaxLifetime': 600})
        self.assertEqual(env.get(PATH, MANAGER, 'DefaultLifetime'), 600)
        warned = [ln for ln in env.log().splitlines() if 'DefaultLifetime=7200 is longer than MaxLifetime=600' in ln]
        self.assertEqual(len(warned), 1, env.log())
        self.assertIn('warning: ', warned[0])
        # and that is what a mapping asking for none gets
        p = env.add_mapping('tcp', 7050)
        env.wait_state(p, 'active')
        self.assertEqual(env.get(p, MAPPING, 'Lifetime'), 600)
        wait_until(lambda: any(m['internal_port'] == 7050 for m in env.dump()), CAP, 'the mapping upstream')
        self.assertEqual([m['lifetime'] for m in env.dump() if m['internal_port'] == 7050], [600])

        # MaxLifetime raised: the file's DefaultLifetime, said with PropertiesChanged
        n = len(env.signals)
        env.config['MaxLifetime'] = 86400
        self.reload(env)
        self.assertEqual(env.get(PATH, MANAGER, 'DefaultLifetime'), 7200)
        wait_until(lambda: self.changed(env, n) == [7200], CAP, 'PropertiesChanged DefaultLifetime 7200')

        # lowered under it again: shortened, warned again
        n = len(env.signals)
        env.config['MaxLifetime'] = 900
        self.reload(env)
        self.assertEqual(env.get(PATH, MANAGER, 'DefaultLifetime'), 900)
        self.assertIn('DefaultLifetime=7200 is longer than MaxLifetime=900: pcpd asks for 900 s', env.log())
        wait_until(lambda: self.changed(env, n) == [900], CAP, 'PropertiesChanged DefaultLifetime 900')


if __name__ == '__main__':
    main()
