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

    def test_killed_right_after_grant(self):
        """The grant's external port is on disk before any app hears of it: a pcpd killed
        -9 the moment the mapping turns active asks for the same port after the restart.
        (With only a debounced snapshot it came back asking for port 0.)"""
        env = self.make_env(config={'GraceSeconds': 5})
        a = Agent(env)
        p = a.add_mapping('tcp', 8720)['ok'][0]
        env.wait_state(p, 'active')
        ext = env.get(p, MAPPING, 'ExternalPort')
        env.kill_pcpd()
        self.assertNotEqual(ext, 0)
        nonce = env.dump()[0]['nonce']
        first = [r for r in env.reflog_requests() if r['nonce'] == nonce]
        self.assertEqual(first[0]['external_port'], 0, 'the first request suggested nothing')
        n_requests = len(env.reflog_requests())
        env.start_pcpd()
        refresh = wait_until(lambda: [r for r in env.reflog_requests()[n_requests:]
                                      if r['nonce'] == nonce and r['lifetime'] > 0], 5, 'the refresh')
        self.assertEqual(refresh[0]['external_port'], ext, 'the refresh suggests the granted port')
        journal = os.path.join(env.state, 'mappings.journal')
        # the refresh's grant is journaled, then folded into the snapshot
        wait_until(lambda: os.path.getsize(journal) == 0, 3, 'the journal folded into the snapshot')
        self.assertIn(nonce, slurp(os.path.join(env.state, 'mappings.state')))
        a.kill()

    def test_torn_journal_record(self):
        """A torn last journal record (power cut mid-write) and a damaged one are ignored
        with a warning; every complete record is restored."""
        env = self.make_env(config={'GraceSeconds': 5})
        a = Agent(env)
        paths = [a.add_mapping('udp', 8730 + i)['ok'][0] for i in range(2)]
        for p in paths:
            env.wait_state(p, 'active')
        env.kill_pcpd()
        journal = os.path.join(env.state, 'mappings.journal')
        with open(journal, 'a') as f:
            f.write('[Mapping 99]\nthis is not a key file line\n#end\n')
            f.write('[Mapping 98]\nNonce=0011')  # torn: no end marker
        env.start_pcpd()
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 2)
        objs = env.call(PATH, 'org.freedesktop.DBus.ObjectManager', 'GetManagedObjects')[0]
        ports = sorted(v[MAPPING]['InternalPort'] for v in objs.values() if MAPPING in v)
        self.assertEqual(ports, [8730, 8731])
        log = slurp(env.pcpd_log)
        self.assertIn('1 damaged record(s)', log)
        self.assertIn('torn last record ignored', log)
        a.kill()


if __name__ == '__main__':
    main()
