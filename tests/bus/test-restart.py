#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Restart persistence: pcpd killed with SIGKILL and started again with the same state
directory refreshes its stored mappings with their old nonces; a client that asks again
within GraceSeconds gets the same mapping (same nonce at the refserver, same external
port); an unclaimed one is deleted upstream (lifetime 0, old nonce) after the grace
period."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import MANAGER, MAPPING, PATH, Agent, BusTestCase, main, slurp, wait_until  # noqa: E402

GRACE = 3


class RestartTest(BusTestCase):

    def test_restart_grace(self):
        env = self.make_env(config={'GraceSeconds': GRACE})
        a = Agent(env)
        kept = a.add_mapping('tcp', 8700, 0, "{'description': <'kept'>}")['ok'][0]
        lost = a.add_mapping('udp', 8701)['ok'][0]
        env.wait_state(kept, 'active')
        env.wait_state(lost, 'active')
        before = {m['internal_port']: m for m in env.dump()}
        self.assertEqual(set(before), {8700, 8701})
        ext_before = env.get(kept, MAPPING, 'ExternalPort')
        state_file = os.path.join(env.state, 'mappings.state')
        wait_until(lambda: before[8701]['nonce'] in slurp(state_file)
                   and before[8700]['nonce'] in slurp(state_file), 5, 'both mappings saved')

        env.kill_pcpd()
        a.kill()  # its mappings are now nobody's: only the grace period holds them
        n_requests = len(env.reflog_requests())
        t_restart = time.monotonic()
        env.start_pcpd()
        # every stored mapping is refreshed upstream at once with its old nonce
        wait_until(lambda: {r['nonce'] for r in env.reflog_requests()[n_requests:] if r['lifetime'] > 0}
                   >= {before[8700]['nonce'], before[8701]['nonce']}, 5, 'refresh with the old nonces')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 2)

        # the app comes back within the grace period
        b = Agent(env)
        ans = b.add_mapping('tcp', 8700, 0, "{'description': <'kept'>}")
        self.assertIn('ok', ans, ans)
        self.assertLess(time.monotonic() - t_restart, GRACE, 'reclaimed within the grace period')
        p = ans['ok'][0]
        env.wait_state(p, 'active')
        props = env.get_all(p)
        self.assertEqual(props['ExternalPort'], ext_before)
        self.assertEqual(props['Owner'], b.name)
        self.assertEqual(props['Description'], 'kept')

        # the unclaimed one goes after the grace period, deleted upstream with its old nonce
        wait_until(lambda: [m['internal_port'] for m in env.dump()] == [8700], GRACE + 5,
                   'the unclaimed mapping deleted upstream')
        self.assertGreaterEqual(time.monotonic() - t_restart, GRACE - 0.5, 'not before the grace period')
        dels = [r for r in env.reflog_requests()[n_requests:]
                if r['nonce'] == before[8701]['nonce'] and r['lifetime'] == 0]
        self.assertTrue(dels, 'lifetime-0 with the old nonce')
        after = env.dump()[0]
        self.assertEqual(after['nonce'], before[8700]['nonce'], 'the reclaimed mapping kept its nonce')
        self.assertEqual(after['external_port'], ext_before)
        # the upstream delete and the MappingRemoved signal race: wait for the signal
        wait_until(lambda: [s[3] for s in env.signals_of('MappingRemoved') if s[3][0] != p], 5,
                   'MappingRemoved for the unclaimed mapping')
        removed = [s[3] for s in env.signals_of('MappingRemoved')]
        self.assertEqual([r[1] for r in removed if r[0] != p], ['owner-vanished'])
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 1)

        # and the reclaimed one now follows its new owner
        b.kill()
        wait_until(lambda: env.dump() == [], 5, 'deleted when the new owner left')

    def test_restart_unclaimed_all_deleted(self):
        env = self.make_env(config={'GraceSeconds': 1})
        paths = [env.add_mapping('tcp', 8710 + i) for i in range(3)]
        for p in paths:
            env.wait_state(p, 'active')
        nonces = {m['nonce'] for m in env.dump()}
        state_file = os.path.join(env.state, 'mappings.state')
        wait_until(lambda: all(n in slurp(state_file) for n in nonces), 5,
                   'saved')
        env.kill_pcpd()
        env.start_pcpd()
        wait_until(lambda: env.get(PATH, MANAGER, 'MappingCount') == 0, 6, 'MappingCount 0 after the grace')
        wait_until(lambda: env.dump() == [], 5, 'nothing leaked upstream')
        deleted = {r['nonce'] for r in env.reflog_requests() if r['lifetime'] == 0}
        self.assertTrue(nonces <= deleted)


if __name__ == '__main__':
    main()
