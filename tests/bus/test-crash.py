#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Crash safety: pcpd killed -9 again and again while mappings are added and removed as
fast as the bus carries the calls (pipelined), and started again on the same state
directory each time. After the last restart has settled:

  - the router (the reference server) holds no mapping that pcpd does not know: every
    upstream mapping is one of pcpd's (protocol, internal and external port), and once the
    unclaimed ones are gone the router holds exactly the persistent ones;
  - every persistent mapping is kept: the same object path, nonce and external port;
  - no state file was moved aside as damaged, and nothing in the journal was torn.

The router drops a quarter of the requests during the churn, so that deletes sent just
before a kill are lost (as on a real network) and only pcpd's record of them can delete
those mappings. Each round waits for a number of answered calls (events), not for time.
PCPD_TEST_SEED picks another sequence of adds and removes."""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi.repository import Gio, GLib  # noqa: E402

from pcpdtest import (BUS_NAME, MANAGER, MAPPING, PATH, VALGRIND, BusTestCase, main, slurp,  # noqa: E402
                      wait_until)

ROUNDS = 4 if VALGRIND else 16
CALLS_PER_ROUND = 60 if VALGRIND else 240
IN_FLIGHT = 16 if VALGRIND else 32
DROP = 0.25  # of the requests the router never sees
SETTLE = 120 if VALGRIND else 60  # a cap: the test goes on as soon as the router has settled
PERSISTENT = [('tcp', 9000), ('udp', 9001), ('tcp', 9002)]
POOL = [(proto, port) for port in range(9100, 9140) for proto in ('tcp', 'udp')]


class Churn:
    """Pipelined AddMapping / RemoveMapping on the test's own connection (root: no polkit)."""

    def __init__(self, env, rng):
        self.env = env
        self.rng = rng
        self.held = {}  # path -> (proto, port): what we were told we got
        self.in_flight = 0
        self.answered = 0
        self.errors = {}

    def _done(self, conn, res, data):
        kind, key = data
        self.in_flight -= 1
        self.answered += 1
        try:
            reply = conn.call_finish(res)
        except GLib.Error as e:
            name = Gio.DBusError.get_remote_error(e) if Gio.DBusError.is_remote_error(e) else str(e.code)
            self.errors[name] = self.errors.get(name, 0) + 1
            return
        if kind == 'add':
            self.held[reply.unpack()[0]] = key

    def _call(self, method, sig, args, data):
        self.in_flight += 1
        self.env.conn.call(BUS_NAME, PATH, MANAGER, method, GLib.Variant(sig, args), None,
                           Gio.DBusCallFlags.NONE, 30000, None, self._done, data)

    def issue(self):
        if self.held and (len(self.held) > len(POOL) // 2 or self.rng.random() < 0.45):
            path = self.rng.choice(sorted(self.held))
            key = self.held.pop(path)
            self._call('RemoveMapping', '(o)', (path,), ('remove', key))
        else:
            proto, port = self.rng.choice(POOL)
            self._call('AddMapping', '(sqqa{sv})', (proto, port, 0, {}), ('add', (proto, port)))

    def run(self, n):
        """Keeps IN_FLIGHT calls going until n more have been answered."""
        ctx = GLib.MainContext.default()
        target = self.answered + n
        while self.answered < target:
            while self.in_flight < IN_FLIGHT:
                self.issue()
            ctx.iteration(True)  # every call has a 30 s timeout: this always returns

    def drain(self):
        """Waits for the answers to the calls that were in flight (errors once pcpd died)."""
        ctx = GLib.MainContext.default()
        while self.in_flight > 0:
            ctx.iteration(True)


class CrashTest(BusTestCase):

    def upstream(self, env):
        return {(m['proto'], m['internal_port']): m for m in env.dump()}

    def known(self, env):
        """What pcpd holds: (protocol, internal port) -> (path, external port)."""
        objs = env.call(PATH, 'org.freedesktop.DBus.ObjectManager', 'GetManagedObjects')[0]
        return {(v[MAPPING]['Protocol'], v[MAPPING]['InternalPort']): (p, v[MAPPING]['ExternalPort'])
                for p, v in objs.items() if MAPPING in v}

    def assert_not_damaged(self, env, when):
        damaged = os.path.join(env.state, 'mappings.state.damaged')
        self.assertFalse(os.path.exists(damaged), f'{when}: the snapshot was moved aside as damaged:\n'
                         + slurp(damaged)[-2000:])
        log = env.log()
        for needle in ('moved aside', 'is damaged', 'torn last record'):
            self.assertNotIn(needle, log, f'{when}: the state pcpd read back was damaged')

    def test_kill9_under_churn(self):
        seed = int(os.environ.get('PCPD_TEST_SEED', '8'))
        rng = random.Random(seed)
        env = self.make_env(config={'GraceSeconds': 1})
        persistent = {}
        for proto, port in PERSISTENT:
            p = env.add_mapping(proto, port, 0, {'persistent': GLib.Variant('b', True)})
            env.wait_state(p, 'active')
            persistent[(proto, port)] = p
        first = self.upstream(env)
        keep = {k: (persistent[k], first[k]['nonce'], first[k]['external_port']) for k in persistent}

        # a lossy path to the router: a delete sent just before a kill may never arrive, so
        # only one that pcpd still knows after its restart is sent again
        env.ctl('drop-requests', str(DROP))
        churn = Churn(env, rng)
        for r in range(ROUNDS):
            churn.run(CALLS_PER_ROUND + rng.randrange(CALLS_PER_ROUND))
            env.kill_pcpd()  # with IN_FLIGHT calls on their way
            churn.drain()
            self.assert_not_damaged(env, f'round {r + 1} (seed {seed})')
            env.start_pcpd()
        print(f'{ROUNDS} rounds, {churn.answered} calls answered, errors {churn.errors}', file=sys.stderr)

        # the last restart: nobody reclaims anything, so after the grace period pcpd holds
        # the persistent mappings only, and the router must hold exactly those
        env.kill_pcpd()
        churn.drain()
        env.ctl('drop-requests', '0')
        env.start_pcpd()
        try:
            wait_until(lambda: env.get(PATH, MANAGER, 'MappingCount') == len(PERSISTENT), SETTLE,
                       'pcpd to hold only the persistent mappings (the others unclaimed after the restart)')
            wait_until(lambda: set(self.upstream(env)) <= set(self.known(env)), SETTLE,
                       'the router to hold no mapping that pcpd does not know')
        except AssertionError as e:
            known = self.known(env)
            orphans = sorted((k, m['nonce']) for k, m in self.upstream(env).items() if k not in known)
            raise AssertionError(f'{e} (seed {seed}): {len(orphans)} mapping(s) upstream that pcpd does not '
                                 f'know: {orphans[:20]}') from None
        upstream, known = self.upstream(env), self.known(env)
        self.assertEqual(set(upstream), set(PERSISTENT), 'the router holds exactly the persistent mappings')
        for k, (path, nonce, ext) in keep.items():
            self.assertEqual(known[k][0], path, f'{k}: the same object path')
            self.assertEqual(upstream[k]['nonce'], nonce, f'{k}: the same upstream mapping (nonce)')
            self.assertEqual(upstream[k]['external_port'], ext, f'{k}: the same external port')
            self.assertEqual(known[k][1], ext, f'{k}: pcpd reports the same external port')
            self.assertTrue(env.get(path, MAPPING, 'Persistent'))
        self.assert_not_damaged(env, 'after the last restart')
        env.assert_alive()

    def write_deleting(self, env, records):
        """A state directory as a pcpd killed before its deletes were answered leaves it."""
        os.makedirs(env.state, mode=0o700, exist_ok=True)
        with open(os.path.join(env.state, 'mappings.state'), 'w') as f:
            f.write('[State]\nNextMappingId=50\n')
            for id_, port, nonce, until in records:
                f.write(f'[Mapping {id_}]\nNonce={nonce}\nDeleting=true\nDeleteUntil={until}\n'
                        f'Server={env.ip}:{env.port}\nOpcode=1\nProtocol=6\nInternalPort={port}\n'
                        f'Lifetime=600\nPersistent=false\nUID=0\n')

    def saved_deleting(self, env):
        text = slurp(os.path.join(env.state, 'mappings.state')) + slurp(os.path.join(env.state, 'mappings.journal'))
        return text.count('Deleting=true'), text

    def test_unconfirmed_deletes_after_restart(self):
        """Removed mappings whose delete was never confirmed are deleted again after a
        restart (lifetime 0, their nonce) and forgotten once confirmed; one whose lifetime
        has run out is forgotten without a word to the router; new ids start above the
        saved ones."""
        env = self.make_env(start=False)
        now_us = int(time.time() * 1e6)
        nonces = ['%024x' % (0xabc000 + i) for i in range(3)]
        self.write_deleting(env, [(7, 9500, nonces[0], now_us + 600_000_000),
                                  (8, 9501, nonces[1], now_us + 600_000_000),
                                  (9, 9502, nonces[2], now_us - 1_000_000)])  # expired upstream already
        env.start_pcpd()
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0, 'nothing shown on the bus')
        self.assertIn('message: 2 mappings were removed before the restart and their delete was never confirmed: '
                      'deleting them again\n', env.log())
        wait_until(lambda: {r['nonce'] for r in env.reflog_requests() if r['lifetime'] == 0} >= set(nonces[:2]),
                   SETTLE, 'the deletes sent again')
        self.assertNotIn(nonces[2], {r['nonce'] for r in env.reflog_requests()}, 'nothing for the expired one')
        self.assertEqual([r for r in env.reflog_requests() if r['lifetime'] != 0], [], 'never asked for again')
        wait_until(lambda: self.saved_deleting(env)[0] == 0, SETTLE, 'the confirmed deletes forgotten on disk')
        p = env.add_mapping('tcp', 9503)
        self.assertGreaterEqual(int(p.rsplit('/', 1)[1]), 50, 'ids above the saved NextMappingId')

    def test_one_unconfirmed_delete_said_in_the_singular(self):
        env = self.make_env(start=False)
        now_us = int(time.time() * 1e6)
        self.write_deleting(env, [(7, 9510, '%024x' % 0xabd000, now_us + 600_000_000)])
        env.start_pcpd()
        self.assertIn('message: 1 mapping was removed before the restart and its delete was never confirmed: '
                      'deleting it again\n', env.log())
        self.assertNotIn('Restored', env.log())
        wait_until(lambda: self.saved_deleting(env)[0] == 0, SETTLE, 'the confirmed delete forgotten on disk')

    def test_late_delete_answer_confirms(self):
        """A router that answers late (here each response leaves 45 s after its request,
        as a router that hangs for a while and then catches up): the delete of a released
        mapping is still being sent when the first answer comes (pcpd sends it for about an
        hour, not 21 s), so that answer, known by its nonce, confirms it: the record on
        disk is forgotten and the router holds nothing. (Before, the engine gave up at
        21 s, the answers were dropped as "unknown nonce" and the record stayed until the
        mapping's lifetime ran out.) 45 s, not 25: the 4th request is due ~21 s after the
        first, and under valgrind the sends came at 1.2, 4.5 and 11.6 s, so the first
        answer, 25 s late, confirmed the delete before a 4th was due (CI, twice)."""
        env = self.make_env()
        path = env.add_mapping('tcp', 9520)
        env.wait_state(path, 'active')
        env.ctl('delay', '45000')
        try:
            t0 = time.monotonic()
            env.call(path, MAPPING, 'Release')
            t_release = time.monotonic()

            def deletes():
                return [r for r in env.reflog_requests() if r['lifetime'] == 0 and r['internal_port'] == 9520]
            # the 4th goes ~21 s after the 1st (3 s, doubling), long before the first
            # answer (45 s); the cap is generous, and what was seen is in the message
            try:
                wait_until(lambda: len(deletes()) >= 4, 3 * SETTLE,
                           'a 4th delete request (the engine gave up after 3 before)')
            except AssertionError as e:
                raise AssertionError(f'{e}; after {time.monotonic() - t_release:.1f} s the router saw '
                                     f'{[(r.get("time_ms"), r.get("nonce")) for r in deletes()]}; pcpd alive: '
                                     f'{env.pcpd.poll() is None}; its log ends:\n{env.log()[-4000:]}') from None
            wait_until(lambda: self.saved_deleting(env)[0] == 0, SETTLE,
                       'the late answer confirms the delete: its record forgotten on disk')
            self.assertGreaterEqual(time.monotonic() - t0, 20, 'confirmed by a late answer, not an early one')
            self.assertNotIn(('tcp', 9520), self.upstream(env), 'the router holds nothing')
        finally:
            env.ctl('delay', '0')
        env.assert_alive()

    def test_unconfirmed_deletes_bounded(self):
        """A router that never answers: the removed mappings kept for it are bounded (by
        MaxMappings), with one warning."""
        env = self.make_env(start=False, config={'MaxMappings': 3})
        env.ctl('drop-requests', '1')
        now_us = int(time.time() * 1e6)
        self.write_deleting(env, [(10 + i, 9600 + i, '%024x' % (0xdef000 + i), now_us + (100 + i) * 1_000_000)
                                  for i in range(6)])
        env.start_pcpd(wait_ready=False)
        wait_until(lambda: self.saved_deleting(env)[0] == 3 and 'NextMappingId' in self.saved_deleting(env)[1],
                   SETTLE, 'three removed mappings kept')
        text = self.saved_deleting(env)[1]
        for i in range(3):
            self.assertNotIn('InternalPort=%d\n' % (9600 + i), text, 'the ones that expire first are forgotten')
        for i in range(3, 6):
            self.assertIn('InternalPort=%d\n' % (9600 + i), text)
        self.assertEqual(env.log().count('the most pcpd keeps'), 1, 'one warning')
        env.assert_alive()


if __name__ == '__main__':
    main()
