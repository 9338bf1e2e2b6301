#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The state directory as an attacker or a bad day leaves it.

A full disk (a 16 KiB tmpfs, mounted in a private mount namespace this test makes, so the
host never sees it): a mapping whose nonce cannot be written first is refused with
org.freedesktop.PCP1.Error.CannotSaveState and never sent upstream; Manager.StateError
says why (with PropertiesChanged); the warning is logged once per episode, not per failed
write; after kill -9 pcpd knows every mapping the router holds; with space again the
error clears with one line in the log.

A mappings.journal (or mappings.state) that is a symbolic link to a file elsewhere: pcpd
refuses to start, names the file, and neither reads, truncates nor writes the target. A
state directory that others can write, or that belongs to another user: refused, with a
message naming it."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import (ERR, MANAGER, NOBODY, PATH, BusTestCase, DBusCallError, V, main, slurp,  # noqa: E402
                      wait_until)

FULL = 'No space left on device'


class TmpfsNamespace:
    """A mount namespace holding a small tmpfs at `path`; pcpd enters it with nsenter. It
    lives while this object's pipe is open (a test killed -9 leaves no mount behind)."""

    def __init__(self, path, size):
        self.path = path
        script = ('mkdir -p "$1" && mount -t tmpfs -o "size=$2,mode=0700" pcpd-test-state "$1" && echo ready '
                  '&& exec cat >/dev/null')
        self.proc = subprocess.Popen(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh',
                                      path, size], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != 'ready':
            self.close()
            raise RuntimeError(f'cannot make a tmpfs in a private mount namespace (status {self.proc.returncode})')
        self.enter = ['nsenter', '-t', str(self.proc.pid), '-m', '--']

    def file(self, name):
        """A file on the tmpfs, as seen from the host."""
        return f'/proc/{self.proc.pid}/root{self.path}/{name}'

    def remount(self, size):
        subprocess.run(self.enter + ['mount', '-o', f'remount,size={size}', self.path], check=True, timeout=30)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class StateDirTest(BusTestCase):

    def state_error_signals(self, env):
        return [a[1]['StateError'] for _, _, _, a in env.signals_of('PropertiesChanged', PATH)
                if 'StateError' in a[1]]

    def test_full_disk(self):
        env = self.make_env(start=False, config={'GraceSeconds': 60})
        try:
            ns = TmpfsNamespace(env.state, '16k')
        except (RuntimeError, OSError) as e:
            if os.environ.get('CI') == 'true':
                raise
            self.skipTest(f'this test needs a private mount namespace with a tmpfs ({e})')
        self.addCleanup(ns.close)
        env.wrapper = ns.enter
        env.start_pcpd()
        self.assertEqual(env.get_all(PATH, MANAGER).get('StateError', ''), '')

        granted, refused = [], None
        for i in range(300):
            try:
                granted.append(env.add_mapping('tcp', 9300 + i, 0, {'persistent': V('b', True)}))
            except DBusCallError as e:
                refused = e
                break
        self.assertIsNotNone(refused, 'all 300 persistent mappings were granted on a 16 KiB state directory')
        self.assertEqual(refused.name, ERR + 'CannotSaveState', refused.msg)
        self.assertIn(env.state, refused.msg)
        self.assertIn(FULL, refused.msg)
        self.assertTrue(granted, 'the first mappings fit')
        print(f'{len(granted)} granted before the disk was full', file=sys.stderr)
        sentence = f'cannot save state in {env.state}: {FULL}'
        self.assertEqual(env.get(PATH, MANAGER, 'StateError'), sentence)
        wait_until(lambda: sentence in self.state_error_signals(env), 10, 'PropertiesChanged StateError')

        # more of the same: refused, and no more warnings
        first_refused = 9300 + len(granted)
        for i in range(30):
            self.assertDBusError(ERR + 'CannotSaveState', env.add_mapping, 'udp', first_refused + i, 0,
                                 {'persistent': V('b', True)})
        for p in granted:
            env.wait_state(p, 'active')
        self.assertEqual(env.log().count('Cannot save the mappings in'), 1, 'one warning per episode')
        up = {(m['proto'], m['internal_port']) for m in env.dump()}
        self.assertEqual(up, {('tcp', 9300 + i) for i in range(len(granted))},
                         'upstream: the granted mappings, nothing that was refused')

        # killed -9 on the full disk: the restarted pcpd knows every mapping the router holds
        env.kill_pcpd()
        env.start_pcpd()
        objs = env.call(PATH, 'org.freedesktop.DBus.ObjectManager', 'GetManagedObjects')[0]
        self.assertEqual(sorted(objs), sorted(granted), 'every granted mapping restored, under its path')
        self.assertEqual({('tcp', v['org.freedesktop.PCP1.Mapping']['InternalPort']) for v in objs.values()}, up)
        wait_until(lambda: {(m['proto'], m['internal_port']) for m in env.dump()} == up, 10,
                   'the router to hold the same mappings after the restart')
        self.assertEqual(env.get(PATH, MANAGER, 'StateError'), sentence, 'still full')

        # space again: one line, StateError "" (the daemon retries on its own)
        n = len(env.signals)
        ns.remount('4m')
        wait_until(lambda: env.get(PATH, MANAGER, 'StateError') == '', 60, 'StateError "" once there is space')
        wait_until(lambda: [a for p, _, member, a in env.signals[n:]
                            if p == PATH and member == 'PropertiesChanged' and a[1].get('StateError') == ''],
                   10, 'PropertiesChanged StateError ""')
        self.assertEqual(env.log().count(f'The mappings are saved in {env.state} again'), 1)
        p = env.add_mapping('tcp', first_refused, 0, {'persistent': V('b', True)})
        env.wait_state(p, 'active')
        self.assertIn('Nonce=', slurp(ns.file('mappings.state')) + slurp(ns.file('mappings.journal')))
        env.assert_alive()

    def start_refused(self, env, *needles):
        """pcpd must exit (not reach the bus) and say why; returns its log."""
        open(os.path.join(env.tmp, 'pcpd.log'), 'w').close()
        with self.assertRaises(RuntimeError, msg='pcpd started') as cm:
            env.start_pcpd(wait_ready=False)
        self.assertNotEqual(env.pcpd.returncode, 0)
        log = env.log()
        for needle in needles:
            self.assertIn(needle, log)
        self.assertIn('Not starting', log, str(cm.exception))
        return log

    def test_journal_symlink(self):
        env = self.make_env(start=False)
        os.makedirs(env.state, mode=0o700)
        target = os.path.join(env.tmp, 'precious')
        with open(target, 'w') as f:
            f.write('[Mapping 1]\nthis is somebody else\'s file\n#end\n')
        before = os.stat(target)
        journal = os.path.join(env.state, 'mappings.journal')
        os.symlink(target, journal)

        self.start_refused(env, journal, 'symbolic link')
        after = os.stat(target)
        self.assertEqual(slurp(target), '[Mapping 1]\nthis is somebody else\'s file\n#end\n', 'target untouched')
        self.assertEqual((after.st_size, after.st_mtime_ns), (before.st_size, before.st_mtime_ns))
        self.assertTrue(os.path.islink(journal), 'the link itself is left for the admin')
        self.assertFalse(os.path.exists(os.path.join(env.state, 'mappings.state')), 'nothing written')

        # the snapshot too
        os.unlink(journal)
        snapshot = os.path.join(env.state, 'mappings.state')
        os.symlink(target, snapshot)
        self.start_refused(env, snapshot, 'symbolic link')
        self.assertEqual(slurp(target), '[Mapping 1]\nthis is somebody else\'s file\n#end\n', 'target untouched')

        # without the link pcpd starts
        os.unlink(snapshot)
        env.start_pcpd()
        self.assertEqual(env.get(PATH, MANAGER, 'StateError'), '')

    def test_state_dir_others_can_write(self):
        env = self.make_env(start=False)
        os.makedirs(env.state)
        for mode, who in ((0o777, 'everyone'), (0o1777, 'everyone'), (0o775, 'its group')):
            os.chmod(env.state, mode)
            self.start_refused(env, f'The state directory {env.state} can be written by {who}',
                               f'chmod go-w {env.state}')
        os.chmod(env.state, 0o755)
        os.chown(env.state, NOBODY, NOBODY)
        self.start_refused(env, f'The state directory {env.state} belongs to uid {NOBODY}, not to uid 0')
        os.chown(env.state, 0, 0)
        env.start_pcpd()
        p = env.add_mapping('tcp', 9400)
        env.wait_state(p, 'active')


if __name__ == '__main__':
    main()
