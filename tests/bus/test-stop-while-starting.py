#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A SIGTERM that comes while pcpd is still starting (systemctl stop or restart right after
start) stops it cleanly: pcpd blocks SIGTERM, SIGINT and SIGHUP from its first line until
its handlers for them are installed, so the signal waits instead of killing pcpd by its
default action. pcpd finishes starting, then stops as on any SIGTERM: "Shutting down"
logged, exit status 0, the restored mappings saved again.

The window is made wide by a large snapshot: pcpd opens its state directory, then reads
and parses every record before it gets to its handlers. The SIGTERM is sent as soon as
pcpd holds the state directory open (seen in /proc/PID/fd: an event, no sleep). Before
the fix pcpd died of it (status -15) with nothing logged."""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import PCPD, SRC, VALGRIND, BusTestCase, main, slurp, wait_until  # noqa: E402

# Caps on waiting for events: generous (a loaded machine, valgrind); a passing test never
# waits for them.
CAP = 120 if not VALGRIND else 600
# Records in the snapshot: enough that reading them takes far longer than the test's
# look at /proc; valgrind is slow enough with fewer.
RECORDS = 30000 if not VALGRIND else 5000
FIRST_ID = 10


def nonce(i):
    return '%024x' % (0x5157e0000 + i)


class StopWhileStartingTest(BusTestCase):

    def write_snapshot(self, env, server):
        os.makedirs(env.state, mode=0o700)
        with open(os.path.join(env.state, 'mappings.state'), 'w') as f:
            f.write(f'[State]\nNextMappingId={FIRST_ID + RECORDS}\n')
            for i in range(RECORDS):
                f.write(f'[Mapping {FIRST_ID + i}]\nNonce={nonce(i)}\nServer={server}\nOpcode=1\nProtocol=6\n'
                        f'InternalPort={1024 + i}\nSuggestedExternalPort=0\nFamily=ipv4\nLifetime=600\n'
                        f'ExternalAddress=\nExternalPort=0\nPersistent=true\nUID=0\nAppIdSource=none\n'
                        f'AppId=\nDescription=stop while starting\nCreated=1700000000000000\n')

    def start_pcpd_nowait(self, env):
        """Env.start_pcpd() without its wait for the bus name: the name comes only after
        the state is loaded."""
        conf = env.write_config()
        env.pcpd_log = os.path.join(env.tmp, 'pcpd.log')
        prefix = []
        if VALGRIND:
            prefix = ['valgrind', '--error-exitcode=99', '--leak-check=full',
                      '--errors-for-leak-kinds=definite,indirect', '--show-leak-kinds=definite,indirect',
                      '--suppressions=' + os.path.join(SRC, 'tests', 'upnp', 'glib.supp'), '--quiet']
        with open(env.pcpd_log, 'a') as out:
            env.pcpd = subprocess.Popen(prefix + [PCPD, '--config', conf, '--state-dir', env.state, '-v'],
                                        env=env.env, stdout=out, stderr=subprocess.STDOUT)
        env.procs.append(env.pcpd)

    def holds_state_dir(self, env):
        fd_dir = f'/proc/{env.pcpd.pid}/fd'
        try:
            names = os.listdir(fd_dir)
        except FileNotFoundError:
            return True  # gone: the caller looks at why
        for n in names:
            try:
                if os.readlink(os.path.join(fd_dir, n)) == env.state:
                    return True
            except OSError:
                pass
        return False

    def test_sigterm_while_loading_state(self):
        # no server: the restored mappings wait for one, nothing is sent anywhere
        env = self.make_env(start=False, refserver=False, config={'MaxMappings': 131070, 'GraceSeconds': 600})
        self.write_snapshot(env, '192.0.2.1:5351')
        self.start_pcpd_nowait(env)
        checks = [0]

        def seen():
            checks[0] += 1
            return self.holds_state_dir(env)
        wait_until(seen, CAP, f'pcpd to open its state directory (looked {checks[0]} times)')
        self.assertIsNone(env.pcpd.poll(), 'pcpd exited before the SIGTERM:\n' + env.log()[-3000:])
        env.pcpd.send_signal(signal.SIGTERM)
        status = env.pcpd.wait(timeout=CAP)
        log = env.log()
        self.assertEqual(status, 0, f'pcpd exit status after a SIGTERM while starting:\n{log[-3000:]}')
        self.assertIn('Shutting down', log)
        self.assertIn(' ready (state in ', log, 'pcpd finished starting before it stopped')
        # the state is intact: every record still saved, each once
        saved = slurp(os.path.join(env.state, 'mappings.state')) + slurp(os.path.join(env.state, 'mappings.journal'))
        found = set(re.findall(r'^Nonce=([0-9a-f]+)$', saved, re.M))
        missing = [i for i in range(RECORDS) if nonce(i) not in found]
        self.assertEqual(missing[:10], [], f'{len(missing)} of {RECORDS} records lost')


if __name__ == '__main__':
    main()
