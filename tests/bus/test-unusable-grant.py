#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A SUCCESS no application can use is no grant (issue 15), on the live daemon against
pcp-refserver's grant faults: while the server answers [::]:0, 0.0.0.0, port 0, an
address of the other family, a loopback address or lifetime 0, the mapping never shows
State "active" (nor an external address); its Error names the problem; it is asked again
with the same nonce on the retransmission schedule, and is active as soon as the server
answers properly. NAT-PMP: an external address of 0.0.0.0 is dropped and counted (the
drop line says 'unusable') and the mapping fails with NO_EXTERNAL_ADDRESS until a usable
address comes."""

import os
import re
import sys

from gi.repository import GLib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import EXTERNAL, MANAGER, MAPPING, PATH, BusTestCase, main, wait_until  # noqa: E402

# refserver grant fault -> the Error pcpd must show
RULES = [
    ('zero', 'NO_EXTERNAL_ADDRESS'),            # the issue's server: [::]:0
    ('zero-address', 'NO_EXTERNAL_ADDRESS'),    # 0.0.0.0, the real port
    ('wrong-family', 'WRONG_ADDRESS_FAMILY'),   # 2001:db8::1 for an IPv4 mapping
    ('loopback', 'UNUSABLE_EXTERNAL_ADDRESS'),  # 127.0.0.1
    ('zero-port', 'NO_EXTERNAL_PORT'),          # the real address, port 0
    ('zero-lifetime', 'SHORT_LIFETIME'),        # lifetime 0
]

DROP_LINE = re.compile(r'Dropped (\d+) datagram\(s\) that were no valid answer to a request of ours \(([^)]*)\)')


class UnusableGrantTest(BusTestCase):

    def requests_for(self, env, port, since=0):
        return [r for r in env.reflog_requests()[since:] if r.get('internal_port') == port and r['lifetime'] > 0]

    def states_seen(self, env, path):
        """Every State the mapping was announced with, in order (its PropertiesChanged).
        Signals that came before the last reply are dispatched first."""
        ctx = GLib.MainContext.default()
        while ctx.pending():
            ctx.iteration(False)
        return [a[1]['State'] for _, _, _, a in env.signals_of('PropertiesChanged', path) if 'State' in a[1]]

    def assert_not_granted(self, env, path, error, what):
        self.assertEqual(env.get(path, MAPPING, 'State'), 'failed', what)
        self.assertEqual(env.get(path, MAPPING, 'Error'), error, what)
        self.assertEqual(env.get(path, MAPPING, 'ExternalAddress'), '', what)
        self.assertEqual(env.get(path, MAPPING, 'ExternalPort'), 0, what)
        self.assertNotIn('active', self.states_seen(env, path), what)

    def assert_recovers(self, env, path, what):
        env.ctl('grant', 'clear')
        env.wait_state(path, 'active', 30)
        self.assertEqual(env.get(path, MAPPING, 'Error'), '', what)
        self.assertEqual(env.get(path, MAPPING, 'ExternalAddress'), EXTERNAL, what)
        self.assertNotEqual(env.get(path, MAPPING, 'ExternalPort'), 0, what)
        # the signal may come after the property read: wait for it
        wait_until(lambda: self.states_seen(env, path)[-1:] == ['active'], 10, f'{what}: State "active" signalled')

    def test_issue_server(self):
        """[::]:0 (as the server of issue 15 answered tcp/18500): failed, Error
        NO_EXTERNAL_ADDRESS, never active, no 'reachable at [::]:0' in the log; retransmitted
        with the same nonce ~3 s later; active once the server answers properly."""
        env = self.make_env()
        env.ctl('grant', 'zero', '0')
        p = env.add_mapping('tcp', 18500)
        wait_until(lambda: env.get(p, MAPPING, 'Error') == 'NO_EXTERNAL_ADDRESS', 15, 'Error NO_EXTERNAL_ADDRESS')
        self.assert_not_granted(env, p, 'NO_EXTERNAL_ADDRESS', 'zero')
        # the request stays outstanding: retransmitted, the same nonce, still failed
        reqs = wait_until(lambda: (lambda r: r if len(r) >= 2 else None)(self.requests_for(env, 18500)), 20,
                          'the retransmission of the MAP request')
        self.assertEqual(len({r['nonce'] for r in reqs}), 1, 'one nonce')
        self.assertTrue(all(r['note'] == 'zero' for r in reqs), reqs)
        gap = (reqs[1]['time_ms'] - reqs[0]['time_ms']) / 1000
        self.assertGreaterEqual(gap, 2.7 - 0.05, f'asked again after {gap:.3f} s: no tight loop')
        self.assert_not_granted(env, p, 'NO_EXTERNAL_ADDRESS', 'zero, after the retransmission')
        # the admin is told which mapping failed and why; nobody is told of [::]:0
        wait_until(lambda: re.search(r'Mapping \S+ failed on \S+: NO_EXTERNAL_ADDRESS', env.log()), 10,
                   'the failure line in the log')
        self.assertNotIn('reachable at [::]:0', env.log())
        self.assertNotIn(':0 for ', env.log())
        self.assert_recovers(env, p, 'zero')
        env.assert_alive()

    def test_each_rule(self):
        """Each rule on its own mapping, one after the other: the Error names it."""
        env = self.make_env()
        for i, (fault, error) in enumerate(RULES):
            port = 18510 + i
            env.ctl('grant', fault, '0')
            p = env.add_mapping('udp', port)
            wait_until(lambda: env.get(p, MAPPING, 'Error') == error, 15, f'{fault}: Error {error}')
            self.assert_not_granted(env, p, error, fault)
            self.assertTrue(any(r['note'] == fault for r in self.requests_for(env, port)), fault)
            self.assert_recovers(env, p, fault)
        # these were answers to requests of ours: failed, not dropped
        self.assertIsNone(DROP_LINE.search(env.log()), env.log()[-2000:])
        env.assert_alive()

    def test_natpmp_zero_address(self):
        """A NAT-PMP gateway answering the external address request with 0.0.0.0: the answer
        is dropped and counted ('unusable'), the mapping it granted a port for is not active
        but failed with NO_EXTERNAL_ADDRESS, and active with the real address once the
        gateway tells it."""
        env = self.make_env(start=False)
        env.ctl('mode', 'natpmp')
        env.ctl('grant', 'zero-address', '0')
        env.start_pcpd(wait_ready=False)
        wait_until(lambda: [s for s in env.get(PATH, MANAGER, 'Servers') if s[3] == 'nat-pmp'], 10,
                   'server protocol nat-pmp')
        p = env.add_mapping('udp', 18520)
        wait_until(lambda: env.get(p, MAPPING, 'Error') == 'NO_EXTERNAL_ADDRESS', 15, 'Error NO_EXTERNAL_ADDRESS')
        self.assert_not_granted(env, p, 'NO_EXTERNAL_ADDRESS', 'nat-pmp 0.0.0.0')
        self.assertEqual([(m['kind'], m['internal_port']) for m in env.dump()], [('natpmp', 18520)],
                         'the gateway holds the port')
        line = wait_until(lambda: DROP_LINE.search(env.log()), 10, 'the drop line')
        self.assertIn('unusable', line[2])
        self.assertNotIn('0.0.0.0', env.get(PATH, MANAGER, 'ExternalAddresses'))
        self.assert_recovers(env, p, 'nat-pmp 0.0.0.0')
        env.assert_alive()


if __name__ == '__main__':
    main()
