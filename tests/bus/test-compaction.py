#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Changes do not each rewrite the snapshot. With a few hundred mappings held,
mappings.state (all of them) is replaced only once the journal has grown as large as it;
changes before that go to the journal alone. Every replacement of mappings.state is a
rename into the state directory, and each one is counted through inotify: no polling, no
timing.

  1. 400 mappings, pipelined; then more, 50 at a time, until a snapshot replaces
     mappings.state (the journal has grown enough: that one must come);
  2. 10 more mappings, one at a time, each waited for until active: 20 journal records,
     far less than the snapshot, so not one more snapshot, and the journal has them all.
     Before, every change scheduled a whole snapshot 200 ms later: one per change here. The
     changes are spread out (a pause of 0.3 s after each, in which the test's main loop
     runs) only so that such a timer would fire between them; that the count stays 0 does
     not depend on how long anything takes.
  3. pcpd killed -9 and started again restores every mapping: the snapshot of step 1 was
     formatted while requests and grants kept coming, and the journal kept what it lacks.
"""

import ctypes
import os
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import MANAGER, OM, PATH, Agent, BusTestCase, main, pump, slurp, wait_until  # noqa: E402

CAP = 120
HELD = 400
BATCH = 50
MORE = 10
# the pause after each single change: room for a timer of the old 200 ms policy, no budget
PAUSE = 0.3
IN_MOVED_TO = 0x80
IN_Q_OVERFLOW = 0x4000


class Renames:
    """The renames onto mappings.state in a directory, as inotify reports them."""

    def __init__(self, path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), 'inotify_init1')
        if self.libc.inotify_add_watch(self.fd, path.encode(), IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), 'inotify_add_watch')
        self.count = 0

    def poll(self):
        """Reads what is queued; returns the count so far."""
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.count
            off = 0
            while off < len(buf):
                _, mask, _, n = struct.unpack_from('iIII', buf, off)
                name = buf[off + 16:off + 16 + n].rstrip(b'\0')
                off += 16 + n
                if mask & IN_Q_OVERFLOW:
                    raise AssertionError('inotify queue overflowed: renames lost')
                if name == b'mappings.state':
                    self.count += 1

    def close(self):
        os.close(self.fd)


class CompactionTest(BusTestCase):

    def all_active(self, env, n):
        objs = env.call(PATH, OM, 'GetManagedObjects', timeout=60000)[0]
        states = [o['org.freedesktop.PCP1.Mapping']['State'] for o in objs.values()]
        return len(states) == n and all(s == 'active' for s in states)

    def add_batch(self, env, agent, ports):
        """AddMapping for each port, BATCH calls in flight at a time (below the bus's limit
        of pending replies per connection)."""
        ports = list(ports)
        for i in range(0, len(ports), BATCH):
            args = [f"('{'tcp' if p % 2 else 'udp'}', uint16 {p}, uint16 0, @a{{sv}} {{}})"
                    for p in ports[i:i + BATCH]]
            ans = agent.req(op='calls', conn=0, method='AddMapping', sig='sqqa{sv}', args=args)
            failed = [r for r in ans['ok'] if 'ok' not in r]
            self.assertEqual(failed, [], f'AddMapping failed: {failed[:1]}')

    def test_changes_do_not_each_rewrite_the_snapshot(self):
        env = self.make_env(refserver_args=['--max-mappings', '4096'],
                            config={'MaxMappings': 4096, 'DefaultLifetime': 3600})
        state_file = os.path.join(env.state, 'mappings.state')
        journal = os.path.join(env.state, 'mappings.journal')
        renames = Renames(env.state)
        self.addCleanup(renames.close)
        agent = Agent(env)

        # 1. many held, then more until the journal is folded into a snapshot
        port = 20000
        self.add_batch(env, agent, range(port, port + HELD))
        port += HELD
        n = HELD
        wait_until(lambda: self.all_active(env, n), CAP, f'{n} mappings active', step=0.5)
        before = renames.poll()
        batches = 0
        while renames.poll() == before:
            self.assertLess(batches, 2 * HELD // BATCH + 2,
                            f'{batches * BATCH} more mappings and no snapshot: the journal grows without bound')
            self.add_batch(env, agent, range(port, port + BATCH))
            port += BATCH
            n += BATCH
            batches += 1
            wait_until(lambda: self.all_active(env, n), CAP, f'{n} mappings active', step=0.5)
        # the snapshot that came has (nearly) all of them: a size the journal must reach again
        wait_until(lambda: os.path.getsize(state_file) > HELD * 200, CAP,
                   f'a snapshot of the {HELD}+ mappings held (the last one has {os.path.getsize(state_file)} bytes, '
                   f'{renames.poll()} snapshot(s) written so far)')
        env.assert_alive()

        # 2. one at a time: the journal takes them, mappings.state stays as it is
        settled = renames.poll()
        snapshot = os.path.getsize(state_file)
        self.assertLess(os.path.getsize(journal) + MORE * 2 * 1000, snapshot,
                        'the journal is far below the snapshot before the single changes')
        paths = []
        for _ in range(MORE):
            proto = 'tcp' if port % 2 else 'udp'
            path = env.add_mapping(proto, port, 0, {})
            port += 1
            n += 1
            env.wait_state(path, 'active', CAP)
            paths.append(path)
            pump(PAUSE)
        nonces = {m['internal_port']: m['nonce'] for m in env.dump()}
        self.assertEqual(len(nonces), n, 'every mapping is held upstream')
        text = slurp(journal)
        for p in range(port - MORE, port):
            self.assertIn(nonces[p], text, f'the mapping of port {p} is in the journal')
        self.assertEqual(renames.poll() - settled, 0,
                         f'{MORE} changes (each with its grant) rewrote the snapshot of {n} mappings '
                         f'{renames.poll() - settled} time(s)')

        # 3. killed: the snapshot and the journal have every mapping
        env.kill_pcpd(signal.SIGKILL)
        env.start_pcpd()
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), n, env.log()[-3000:])
        env.assert_alive()


if __name__ == '__main__':
    main()
