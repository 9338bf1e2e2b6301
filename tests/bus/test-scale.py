#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""1,000 mappings from 100 bus clients (10 each, root, distinct ports): all become active
and are held upstream; when every client exits, every mapping is removed (MappingCount 0)
and deleted upstream (refserver dump empty)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import MANAGER, OM, PATH, Agent, BusTestCase, main, wait_until  # noqa: E402

CLIENTS = 100
PER_CLIENT = 10
PROCS = 10  # 10 processes with 10 bus connections each: 100 clients


class ScaleTest(BusTestCase):

    def test_thousand_mappings_from_hundred_clients(self):
        """On a bus with dbus-daemon's default system-bus limits."""
        self.run_scale({})

    def test_thousand_mappings_match_limit_raised(self):
        """The same with max_match_rules_per_connection raised: everything but the bus limit."""
        self.run_scale({'max_match_rules_per_connection': 10000})

    def run_scale(self, bus_limits):
        env = self.make_env(refserver_args=['--max-mappings', '4096'], bus_limits=bus_limits,
                            config={'MaxMappings': 4096, 'DefaultLifetime': 3600})
        t0 = time.monotonic()
        agents = [Agent(env) for _ in range(PROCS)]
        for a in agents:
            a.req(op='connect', n=CLIENTS // PROCS - 1)
        owners = set()
        paths = set()
        failures = []
        port = 20000
        for a in agents:
            for conn in range(CLIENTS // PROCS):
                args = []
                for _ in range(PER_CLIENT):
                    proto = 'tcp' if port % 2 else 'udp'
                    args.append(f"('{proto}', uint16 {port}, uint16 0, @a{{sv}} {{}})")
                    port += 1
                ans = a.req(op='calls', conn=conn, method='AddMapping', sig='sqqa{sv}', args=args)
                for r in ans['ok']:
                    if 'ok' in r:
                        paths.add(r['ok'][0])
                    else:
                        failures.append(r)
        # pcpd must survive this: on a system bus one AddMatch per mapping (or per holder)
        # hits max_match_rules_per_connection=512 and sd-bus then closes the connection
        # (the bus's refusal reaches pcpd before our Ping, which came after every reply)
        env.barrier()
        env.assert_alive()
        # go on with the mappings that were made, so that their clean-up is checked too
        n = len(paths)
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), n)

        def all_active():
            objs = env.call(PATH, OM, 'GetManagedObjects', timeout=60000)[0]
            states = [o['org.freedesktop.PCP1.Mapping']['State'] for o in objs.values()]
            for o in objs.values():
                owners.add(o['org.freedesktop.PCP1.Mapping']['Owner'])
            return len(states) == n and all(s == 'active' for s in states)
        wait_until(all_active, 60, f'all {n} mappings active', step=0.5)
        self.assertEqual(len(env.dump()), n)
        print(f'{n} mappings active after {time.monotonic() - t0:.1f}s')

        t1 = time.monotonic()
        for a in agents:
            a.kill()
        wait_until(lambda: env.get(PATH, MANAGER, 'MappingCount') == 0, 30, 'MappingCount 0', step=0.2)
        wait_until(lambda: env.dump() == [], 30, 'refserver dump empty', step=0.2)
        print(f'all cleaned up {time.monotonic() - t1:.1f}s after the clients exited')
        removed = {s[3][0]: s[3][1] for s in env.signals_of('MappingRemoved')}
        self.assertEqual(set(removed), paths)
        self.assertEqual(set(removed.values()), {'owner-vanished'})
        env.assert_alive()
        self.assertEqual(failures, [], f'{len(failures)} of {CLIENTS * PER_CLIENT} AddMapping calls failed, '
                         f'the first: {failures[:1]}')
        self.assertEqual(len(owners), CLIENTS, 'one owner per client connection')


if __name__ == '__main__':
    main()
