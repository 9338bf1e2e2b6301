#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A corpus replay stopped by SIGTERM or SIGINT leaves nothing behind (replay-main.c).

meson's time-out sends SIGTERM to a test's process group (and SIGKILL half a second later
if it still runs), Ctrl-C sends SIGINT to it, and `kill PID` reaches the replay's own
process only. In each case the replay's scratch directory (TMPDIR/<target>-replay-XXXXXX,
with what the target wrote there) must be gone once the replay has ended, the target's
process must not outlive it, and the replay must die of the signal it got.

    test-replay-signal.py [--wait-file] REPLAY SEED

REPLAY runs over SEED, then over a FIFO that nobody writes: the target blocks opening it,
so the replay is still running when the signal comes, however fast the machine. The signal
is sent once the scratch directory exists (--wait-file: once a file the target wrote in it
exists, for a target that writes one, fuzz-state).
"""

import argparse
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# caps for events, not speeds: a passing run waits for none of them (valgrind and a loaded
# machine are slow)
CAP = float(os.environ.get('PCPD_TEST_MIN_CAP', '60'))


def wait_until(cond, what, proc):
    end = time.monotonic() + CAP
    while True:
        v = cond()
        if v:
            return v
        if proc.poll() is not None:
            raise AssertionError(f'the replay ended (status {proc.returncode}) before {what}')
        if time.monotonic() > end:
            raise AssertionError(f'timed out after {CAP}s waiting for {what}')
        time.sleep(0.01)


def default_signals():
    # the replay keeps a signal ignored as it got it (a shell's background job): here
    # they are not, whatever runs this test
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def files_below(top):
    return [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]


def run_one(replay, seed, sig, to_group, wait_file):
    how = f'{signal.Signals(sig).name} to the {"process group" if to_group else "replay process"}'
    root = tempfile.mkdtemp(prefix='pcpd-replay-signal-')
    try:
        tmp = os.path.join(root, 'tmp')
        hold = os.path.join(root, 'hold')
        os.mkdir(tmp)
        os.mkfifo(hold)
        with open(os.path.join(root, 'stderr'), 'w+') as err:
            proc = subprocess.Popen([replay, seed, hold], env=dict(os.environ, TMPDIR=tmp),
                                    stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                    preexec_fn=default_signals)
            try:
                if wait_file:
                    wait_until(lambda: files_below(tmp), 'a file of the target in its scratch directory', proc)
                else:
                    wait_until(lambda: os.listdir(tmp), 'the scratch directory', proc)
                made = sorted(os.listdir(tmp))
                if to_group:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(proc.pid, sig)
                try:
                    proc.wait(timeout=CAP)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f'{how}: the replay still runs {CAP}s later')
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            err.seek(0)
            stderr = err.read()

        left = sorted(os.listdir(tmp))
        # the target's process, still opening the FIFO for reading, makes a writer's
        # non-blocking open succeed (and, released, ends: nothing is left running)
        try:
            fd = os.open(hold, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            outlived = True
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            outlived = False

        failures = []
        if left:
            failures.append(f'left behind in TMPDIR: {left} (the replay made {made})')
        if outlived:
            failures.append("the target's process outlived the replay")
        if proc.returncode != -sig:
            failures.append(f'the replay ended with status {proc.returncode}, not killed by {signal.Signals(sig).name}')
        if f'interrupted by signal {int(sig)}' not in stderr:
            failures.append('the replay did not say it was interrupted')
        if failures:
            raise AssertionError(f'{how}: ' + '; '.join(failures) + f'\nreplay stderr:\n{stderr}')
        print(f'ok: {how}: nothing left behind ({made[0]} removed); {stderr.strip()}')
    finally:
        shutil.rmtree(root)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--wait-file', action='store_true')
    ap.add_argument('replay')
    ap.add_argument('seed')
    a = ap.parse_args()
    failed = 0
    for sig, to_group in ((signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, True)):
        try:
            run_one(a.replay, a.seed, sig, to_group, a.wait_file)
        except AssertionError as e:
            print(f'FAIL: {e}')
            failed += 1
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
