#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Malformed and spoofed replies are dropped, counted, and told to the admin: one log
line per burst (a second after it), then at most one a minute, naming the reasons; the
mapping is not disturbed; the totals are logged at shutdown."""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import MAPPING, Agent, BusTestCase, main, wait_until  # noqa: E402

LINE = re.compile(r'Dropped (\d+) datagram\(s\) that were no valid answer to a request of ours \(([^)]*)\)')


class DropsTest(BusTestCase):

    def test_malformed_replies_counted_and_logged(self):
        env = self.make_env()
        a = Agent(env)
        p = a.add_mapping('tcp', 8740)['ok'][0]
        env.wait_state(p, 'active')
        ext = env.get(p, MAPPING, 'ExternalPort')

        # the next responses are truncated / carry a wrong nonce, each followed by the valid
        # one (the refserver has one fault slot: set them one after the other)
        b = Agent(env)
        env.ctl('malformed', 'truncated', '2', 'also-valid')
        for port in (8741, 8742):
            env.wait_state(b.add_mapping('udp', port)['ok'][0], 'active')
        env.ctl('malformed', 'wrong-nonce', '1', 'also-valid')
        env.wait_state(b.add_mapping('udp', 8743)['ok'][0], 'active')
        lines = wait_until(lambda: LINE.findall(env.log()), 5, 'the drop line')
        self.assertEqual(len(lines), 1, 'one line for the burst')
        total, why = int(lines[0][0]), lines[0][1]
        self.assertEqual(total, 3, why)
        self.assertIn('2 malformed', why)
        self.assertIn('1 unknown-nonce', why)
        self.assertEqual(env.get(p, MAPPING, 'State'), 'active')
        self.assertEqual(env.get(p, MAPPING, 'ExternalPort'), ext)

        # more drops within the minute: no second line yet
        env.ctl('malformed', 'truncated', '1', 'also-valid')
        q = b.add_mapping('udp', 8744)['ok'][0]
        env.wait_state(q, 'active')
        # an unlimited logger would write its line a second after the drop (on pcpd's clock):
        # wait until pcpd retransmitted a lost request (>= 2.7 s after that, on its clock,
        # with its main loop running), not for a time on ours
        env.clock_barrier(8745)
        self.assertEqual(len(LINE.findall(env.log())), 1, 'rate limited to one line a minute')

        env.kill_pcpd(signal.SIGTERM)
        m = re.search(r'Datagrams sent (\d+) .* received (\d+), dropped (\d+)', env.log())
        self.assertIsNotNone(m, env.log()[-2000:])
        self.assertEqual(int(m[3]), 4)
        self.assertGreaterEqual(int(m[2]), 5 + 4)

    def test_server_socket_holds_a_burst_of_answers(self):
        """The answers to requests sent at once arrive together: pcpd's socket toward the
        server has room for thousands (4 MiB; the tests run with CAP_NET_ADMIN, so
        SO_RCVBUFFORCE is not capped by net.core.rmem_max), not the default few hundred,
        each of which the kernel would drop and pcpd retransmit 3 s later."""
        env = self.make_env()
        a = Agent(env)
        env.wait_state(a.add_mapping('udp', 8750)['ok'][0], 'active')
        out = subprocess.run(['ss', '-H', '-u', '-a', '-n', '-m', '-p', 'dst', f'{env.ip}:{env.port}'],
                             capture_output=True, text=True, check=True).stdout
        # one socket per line, its memory on the next: skmem:(r0,rb8388608,...)
        mine = [m for m in re.finditer(r'pid=(\d+),[^\n]*\n?\s*skmem:\(r\d+,rb(\d+),', out)
                if int(m[1]) == env.pcpd.pid]
        self.assertEqual(len(mine), 1, 'pcpd has one socket toward its server:\n' + out)
        # the kernel reports twice what was set; the default (rmem_default) is ~208 KiB
        self.assertGreaterEqual(int(mine[0][2]), 2 * 4 * 1024 * 1024, out)


if __name__ == '__main__':
    main()
