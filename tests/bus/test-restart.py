#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Restart persistence: pcpd killed with SIGKILL and started again with the same state
directory refreshes its stored mappings with their old nonces, under their old object
paths; a client that asks again within GraceSeconds gets the same mapping (same nonce at
the refserver, same external port); an unclaimed one is deleted upstream (lifetime 0, old
nonce) after the grace period; ids are never reused.

No assertion here depends on how fast the machine is: the reclaim test uses a grace
period far longer than any restart, the expiry test only checks a lower bound, and every
wait is for an event with a generous cap."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi.repository import GLib  # noqa: E402

from pcpdtest import (ERR, MANAGER, MAPPING, PATH, PCPCTL, Agent, BusTestCase, main, slurp,  # noqa: E402
                      wait_until)

# Caps on waiting for events: generous, because a loaded machine or valgrind is slow; a
# passing test never waits for them.
CAP = 60
# The grace of the reclaim test: far longer than any restart takes, even under valgrind on
# a loaded machine; nothing waits for it to run out.
LONG_GRACE = 600
# The grace of the test that waits for it to run out.
SHORT_GRACE = 2


class RestartTest(BusTestCase):

    def restored_lines(self, env, mark):
        """pcpd's "Restored ..." lines logged since mark (a length of its log), without their
        time and level; the restore is logged before pcpd is "ready"."""
        return [ln.split(': ', 1)[1] for ln in env.log()[mark:].splitlines() if ': Restored ' in ln]

    def test_restart_reclaim(self):
        """A client that asks again after the restart gets the same mapping: the same object
        path, nonce at the refserver and external port, now held by it; an unclaimed one
        stays until its grace period runs out (test_restart_unclaimed_all_deleted)."""
        env = self.make_env(config={'GraceSeconds': LONG_GRACE})
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
                   and before[8700]['nonce'] in slurp(state_file), CAP, 'both mappings saved')

        env.kill_pcpd()
        a.kill()  # its mappings are now nobody's: only the grace period holds them
        n_requests = len(env.reflog_requests())
        mark = len(env.log())
        env.start_pcpd()
        self.assertEqual(self.restored_lines(env, mark),
                         [f'Restored 2 mappings from {env.state}; they wait {LONG_GRACE} s for their apps'])
        # every stored mapping is refreshed upstream at once with its old nonce
        wait_until(lambda: {r['nonce'] for r in env.reflog_requests()[n_requests:] if r['lifetime'] > 0}
                   >= {before[8700]['nonce'], before[8701]['nonce']}, CAP, 'refresh with the old nonces')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 2)
        self.assertEqual(env.get(kept, MAPPING, 'InternalPort'), 8700, 'restored under its old path')
        self.assertEqual(env.get(lost, MAPPING, 'InternalPort'), 8701, 'restored under its old path')

        # the app comes back
        b = Agent(env)
        ans = b.add_mapping('tcp', 8700, 0, "{'description': <'kept'>}")
        self.assertIn('ok', ans, ans)
        p = ans['ok'][0]
        self.assertEqual(p, kept, 'the same mapping object')
        env.wait_state(p, 'active')
        props = env.get_all(p)
        self.assertEqual(props['ExternalPort'], ext_before)
        self.assertEqual(props['Owner'], b.name)
        self.assertEqual(props['Description'], 'kept')
        self.assertEqual(env.signals_of('MappingRemoved'), [], 'nothing removed during the grace period')
        up = {m['internal_port']: m for m in env.dump()}
        self.assertEqual(up[8700]['nonce'], before[8700]['nonce'], 'the reclaimed mapping kept its nonce')
        self.assertEqual(up[8700]['external_port'], ext_before)
        self.assertEqual(up[8701]['nonce'], before[8701]['nonce'], 'the unclaimed one is still held')

        # and the reclaimed one now follows its new owner, the unclaimed one waits
        b.kill()
        wait_until(lambda: env.removed_reason(kept), CAP, 'MappingRemoved when the new owner left')
        self.assertEqual(env.removed_reason(kept), 'owner-vanished')
        wait_until(lambda: [m['internal_port'] for m in env.dump()] == [8701], CAP,
                   'the reclaimed mapping deleted upstream')
        self.assertIsNone(env.removed_reason(lost))
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 1)

    def test_restart_unclaimed_all_deleted(self):
        """Unclaimed mappings are deleted upstream with their old nonces once the grace
        period has run out, and not before."""
        env = self.make_env(config={'GraceSeconds': SHORT_GRACE})
        paths = [env.add_mapping('tcp', 8710 + i) for i in range(3)]
        for p in paths:
            env.wait_state(p, 'active')
        nonces = {m['nonce'] for m in env.dump()}
        state_file = os.path.join(env.state, 'mappings.state')
        wait_until(lambda: all(n in slurp(state_file) for n in nonces), CAP, 'saved')
        env.kill_pcpd()
        t_restart = time.monotonic()
        env.start_pcpd()
        wait_until(lambda: env.get(PATH, MANAGER, 'MappingCount') == 0, SHORT_GRACE + CAP,
                   'MappingCount 0 after the grace')
        # a lower bound only: a slow machine makes it later, never earlier
        self.assertGreaterEqual(time.monotonic() - t_restart, SHORT_GRACE - 0.5, 'not before the grace period')
        wait_until(lambda: env.dump() == [], CAP, 'nothing leaked upstream')
        deleted = {r['nonce'] for r in env.reflog_requests() if r['lifetime'] == 0}
        self.assertTrue(nonces <= deleted, 'lifetime-0 with the old nonces')
        wait_until(lambda: len(env.signals_of('MappingRemoved')) == 3, CAP, 'MappingRemoved for each')
        self.assertEqual(sorted(s[3] for s in env.signals_of('MappingRemoved')),
                         sorted((p, 'owner-vanished') for p in paths))

    def test_ids_not_reused(self):
        """Mapping ids (object paths) are never given out twice, across restarts too: a
        restored mapping keeps its path, and `pcpctl release <an old id>` after a restart
        never hits someone else's new mapping."""
        env = self.make_env(config={'GraceSeconds': LONG_GRACE})
        gone = env.add_mapping('tcp', 8740)
        kept = env.add_mapping('udp', 8741, 0, {'persistent': GLib.Variant('b', True)})
        env.wait_state(kept, 'active')
        env.manager('RemoveMapping', 'o', (gone,))
        wait_until(lambda: [m['internal_port'] for m in env.dump()] == [8741], CAP, 'the first one deleted')

        env.kill_pcpd()
        mark = len(env.log())
        env.start_pcpd()
        # persistent only: no grace period to wait for
        self.assertEqual(self.restored_lines(env, mark), [f'Restored 1 mapping from {env.state}'])
        self.assertEqual(env.get(kept, MAPPING, 'InternalPort'), 8741, 'restored under its old path')
        new = env.add_mapping('tcp', 8742)
        env.wait_state(new, 'active')
        ids = [int(p.rsplit('/', 1)[1]) for p in (gone, kept, new)]
        self.assertGreater(ids[2], max(ids[:2]), f'a new id after a restart: {ids}')
        # the old id names nothing now
        r = subprocess.run([PCPCTL, 'release', str(ids[0])], env=env.env, capture_output=True, text=True,
                           timeout=CAP)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertDBusError(ERR + 'NotFound', env.manager, 'RemoveMapping', 'o', (gone,))
        self.assertEqual(env.get(new, MAPPING, 'InternalPort'), 8742, 'the new mapping is untouched')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 2)
        # and once more, with the old ids' records long gone from the journal
        env.kill_pcpd()
        mark = len(env.log())
        env.start_pcpd()
        self.assertEqual(self.restored_lines(env, mark),
                         [f'Restored 2 mappings from {env.state}; the app mapping among them waits {LONG_GRACE} s '
                          'for its app'])
        newer = env.add_mapping('tcp', 8743)
        self.assertGreater(int(newer.rsplit('/', 1)[1]), ids[2])

    def test_bus_lost(self):
        """pcpd that loses the system bus (its dbus-daemon gone) stops with exit status 1,
        so that the unit's Restart=on-failure starts it again: with 0 it stayed down until
        a client's call activated it, and nothing renewed its persistent mappings meanwhile.
        It says why in its log and deletes nothing upstream, and a pcpd started on a new bus
        over the same state directory holds the persistent mapping again, under its path."""
        env = self.make_env(config={'GraceSeconds': LONG_GRACE})
        kept = env.add_mapping('udp', 8750, 0, {'persistent': GLib.Variant('b', True)})
        env.wait_state(kept, 'active')
        held = env.dump()
        self.assertEqual([m['internal_port'] for m in held], [8750])
        n_requests = len(env.reflog_requests())

        env.conn.close_sync(None)  # the test's own connection, before its bus goes
        env.conn = None
        env.bus.kill()
        env.bus.wait()
        try:
            status = env.pcpd.wait(timeout=CAP)
        except subprocess.TimeoutExpired:
            self.fail(f'pcpd still running {CAP} s after its bus went away:\n{env.log()[-3000:]}')
        self.assertEqual(status, 1, f'exit status after losing the bus:\n{env.log()[-3000:]}')
        self.assertIn('Lost the connection to the system bus', env.log())
        deletes = [r for r in env.reflog_requests()[n_requests:] if r['lifetime'] == 0]
        self.assertEqual(deletes, [], 'nothing deleted upstream')
        self.assertEqual([(m['internal_port'], m['nonce']) for m in env.dump()],
                         [(m['internal_port'], m['nonce']) for m in held], 'the router still holds it')

        env.start_bus()
        env.start_pcpd()
        env.wait_state(kept, 'active')
        self.assertEqual(env.get(kept, MAPPING, 'InternalPort'), 8750, 'restored under its old path')

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
                                      if r['nonce'] == nonce and r['lifetime'] > 0], CAP, 'the refresh')
        self.assertEqual(refresh[0]['external_port'], ext, 'the refresh suggests the granted port')
        journal = os.path.join(env.state, 'mappings.journal')
        # the refresh's grant is journaled, then folded into the snapshot
        wait_until(lambda: os.path.getsize(journal) == 0, CAP, 'the journal folded into the snapshot')
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
