#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A slow disk never stalls pcpd: while the fsync of a snapshot is held (an LD_PRELOAD shim,
slow-fsync.c, keeps it waiting at a gate this test opens), pcpd answers Peer.Ping and adds,
sends and completes a new mapping. A mapping added while a snapshot that does not have it
was being written is not lost: that snapshot leaves the journal (which has it) alone, and
pcpd killed -9 before the next snapshot is in place restores both mappings.

Nothing here measures time: every wait is for an event (a file the shim makes, a D-Bus
answer, a mapping's state), with a generous cap counted in the failure message. Before the
fix the snapshot was written on the main thread, so the Ping below never got an answer
while the gate was shut."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gi.repository import Gio, GLib  # noqa: E402

from pcpdtest import BUS_NAME, MANAGER, PATH, BusTestCase, main, slurp, wait_until  # noqa: E402

CAP = 60
# how long a D-Bus call may take before the loop counts as stalled: far longer than any
# answer takes on a loaded machine or under valgrind
CALL_CAP_MS = 30000
SHIM = os.environ.get('PCPD_TEST_SLOW_FSYNC')


class Gate:
    """The shim's gate directory: arm() makes the next snapshot fsync wait, release() lets
    it go."""

    def __init__(self, env):
        self.dir = os.path.join(env.tmp, 'fsync-gate')
        os.mkdir(self.dir, 0o700)
        os.mkfifo(os.path.join(self.dir, 'gate'), 0o600)

    def path(self, name):
        return os.path.join(self.dir, name)

    def arm(self):
        if os.path.exists(self.path('entered')):
            os.unlink(self.path('entered'))
        with open(self.path('armed'), 'w'):
            pass

    def wait_entered(self, env):
        wait_until(lambda: os.path.exists(self.path('entered')) or env.pcpd.poll() is not None, CAP,
                   'pcpd in the fsync of a snapshot')
        env.assert_alive()

    def release(self):
        # the shim holds the read end open (blocking): this open returns at once
        fd = os.open(self.path('gate'), os.O_WRONLY)
        os.close(fd)


class SlowSaveTest(BusTestCase):

    def setUp(self):
        if not SHIM or not os.path.exists(SHIM):
            self.fail(f'the fsync shim is missing (PCPD_TEST_SLOW_FSYNC={SHIM!r}); run through meson test')

    def start(self):
        env = self.make_env(start=False)
        gate = Gate(env)
        env.env['LD_PRELOAD'] = SHIM
        env.env['PCPD_TEST_FSYNC_GATE'] = gate.dir
        # an ASan build: the shim comes before the sanitizer's runtime in the preload list
        asan = os.environ.get('ASAN_OPTIONS', '')
        env.env['ASAN_OPTIONS'] = (asan + ':' if asan else '') + 'verify_asan_link_order=0'
        env.start_pcpd()
        return env, gate

    def ping(self, env):
        try:
            env.conn.call_sync(BUS_NAME, PATH, 'org.freedesktop.DBus.Peer', 'Ping', None, None,
                               Gio.DBusCallFlags.NONE, CALL_CAP_MS, None)
        except GLib.Error as e:
            self.fail(f'pcpd did not answer Peer.Ping within {CALL_CAP_MS} ms while a snapshot was being '
                      f'written (its main loop waits for the disk): {e.message}')

    def test_loop_runs_while_snapshot_is_written(self):
        env, gate = self.start()
        state_file = os.path.join(env.state, 'mappings.state')
        journal = os.path.join(env.state, 'mappings.journal')

        gate.arm()
        a = env.add_mapping('tcp', 8810, 0, {})
        gate.wait_entered(env)  # the snapshot that has mapping a is being written, and held

        self.ping(env)
        b = env.add_mapping('udp', 8811, 0, {})
        env.wait_state(a, 'active', CAP)
        env.wait_state(b, 'active', CAP)
        nonces = {m['internal_port']: m['nonce'] for m in env.dump()}
        self.assertEqual(set(nonces), {8810, 8811}, 'both requests went out and were granted')
        self.assertIn(nonces[8811], slurp(journal), 'the new mapping is in the journal at once')

        # the held snapshot goes through; the one after it (it has b) is held in turn
        gate.arm()
        gate.release()
        gate.wait_entered(env)
        self.ping(env)
        snapshot = slurp(state_file)
        self.assertIn(nonces[8810], snapshot, 'the first snapshot is in place')
        self.assertNotIn(nonces[8811], snapshot, 'the first snapshot was formatted before b was added')
        self.assertIn(nonces[8811], slurp(journal),
                      'the journal still has b: the snapshot without it must not have emptied it')

        # killed before the second snapshot is in place: nothing is lost
        env.kill_pcpd(signal.SIGKILL)
        env.env.pop('LD_PRELOAD')
        env.env.pop('PCPD_TEST_FSYNC_GATE')
        env.start_pcpd()
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 2, env.log()[-3000:])
        # the start writes a fresh snapshot of what it restored
        wait_until(lambda: nonces[8810] in slurp(state_file) and nonces[8811] in slurp(state_file), CAP,
                   'both mappings in the snapshot after the restart')

    def test_shutdown_waits_for_the_write(self):
        """SIGTERM while a snapshot is held: pcpd exits only after it is written, and the
        last snapshot it writes on the way out has every mapping."""
        env, gate = self.start()
        state_file = os.path.join(env.state, 'mappings.state')

        gate.arm()
        a = env.add_mapping('tcp', 8820, 0, {})
        gate.wait_entered(env)
        b = env.add_mapping('tcp', 8821, 0, {})
        env.wait_state(b, 'active', CAP)
        env.wait_state(a, 'active', CAP)
        nonces = {m['internal_port']: m['nonce'] for m in env.dump()}
        env.pcpd.send_signal(signal.SIGTERM)
        # its loop has the signal, and shutdown is on its way to the write in flight
        wait_until(lambda: 'Shutting down' in env.log() or env.pcpd.poll() is not None, CAP, '"Shutting down"')
        self.assertIsNone(env.pcpd.poll(), 'pcpd exited while its snapshot was still being written:\n'
                          + env.log()[-3000:])
        gate.release()
        try:
            status = env.pcpd.wait(timeout=CAP)
        except Exception:
            self.fail(f'pcpd did not exit within {CAP} s of SIGTERM once the snapshot was released')
        self.assertEqual(status, 0, env.log()[-3000:])
        snapshot = slurp(state_file)
        self.assertIn(nonces[8820], snapshot)
        self.assertIn(nonces[8821], snapshot)
        self.assertFalse(os.path.exists(state_file + '.tmp'), 'no temporary file left behind')


if __name__ == '__main__':
    main()
