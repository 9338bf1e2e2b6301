#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Ownership (sd_bus_track) and sharing: a mapping lives while its caller's connection
does; SIGKILL of the client deletes it upstream at once; the same protocol/port from two
connections of one uid share one object and one upstream mapping; another uid gets
Conflict."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import ERR, MANAGER, MAPPING, NOBODY, PATH, Agent, BusTestCase, main, wait_until  # noqa: E402


class OwnershipTest(BusTestCase):

    def test_sigkill_deletes_upstream_at_once(self):
        env = self.make_env()
        a = Agent(env)
        ans = a.add_mapping('tcp', 8500)
        path = ans['ok'][0]
        env.wait_state(path, 'active')
        props = env.get_all(path)
        self.assertEqual(props['Owner'], a.name)
        self.assertEqual(props['PID'], a.pid)
        nonce = env.dump()[0]['nonce']
        # lives while the connection does: pcpd has handled the agent's call and the bus's
        # answer to its check that the owner is on the bus (on_holder_check) once it answers
        # a Ping from the agent's connection and from ours; nothing removed it
        self.assertEqual(a.call('Ping', path='/org/freedesktop/PCP1', iface='org.freedesktop.DBus.Peer'),
                         {'ok': []})
        env.barrier()
        self.assertIsNone(env.removed_reason(path), 'removed while its owner is connected')
        self.assertEqual(env.get(path, MAPPING, 'State'), 'active')
        self.assertEqual(len(env.dump()), 1)
        a.kill(signal.SIGKILL)
        wait_until(lambda: env.removed_reason(path), 5, 'MappingRemoved')
        self.assertEqual(env.removed_reason(path), 'owner-vanished')
        # at once: by a delete (lifetime 0, below), not by the expiry DefaultLifetime (600 s) later
        wait_until(lambda: env.dump() == [], 5, 'deleted upstream')
        dels = [r for r in env.reflog_requests() if r['nonce'] == nonce and r['lifetime'] == 0]
        self.assertTrue(dels, 'a lifetime-0 request with the same nonce')
        self.assertEqual(dels[0]['internal_port'], 8500)
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)

    def test_sharing_same_uid(self):
        env = self.make_env()
        a, b = Agent(env), Agent(env)
        pa = a.add_mapping('udp', 8501)['ok'][0]
        env.wait_state(pa, 'active')
        pb = b.add_mapping('udp', 8501)['ok'][0]
        self.assertEqual(pa, pb, 'same object path')
        self.assertEqual(len(env.dump()), 1, 'one upstream mapping')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 1)
        a.kill()
        # the bus saw the first holder go (and told pcpd), and pcpd handled that
        wait_until(lambda: not env.name_has_owner(a.name), 5, f'{a.name} off the bus')
        env.barrier()
        self.assertIsNone(env.removed_reason(pa), 'still held by the second connection')
        self.assertEqual(len(env.dump()), 1)
        self.assertEqual(env.get(pa, MAPPING, 'State'), 'active')
        b.kill()
        wait_until(lambda: env.removed_reason(pa), 5, 'MappingRemoved after the last holder')
        self.assertEqual(env.removed_reason(pa), 'owner-vanished')
        wait_until(lambda: env.dump() == [], 5, 'deleted upstream')

    def test_sharing_release_by_one_holder(self):
        env = self.make_env()
        a, b = Agent(env), Agent(env)
        pa = a.add_mapping('tcp', 8502)['ok'][0]
        pb = b.add_mapping('tcp', 8502)['ok'][0]
        self.assertEqual(pa, pb)
        env.wait_state(pa, 'active')
        self.assertEqual(a.call('Release', path=pa, iface=MAPPING), {'ok': []})
        # Release was answered, and our Ping after it: any MappingRemoved pcpd sent for
        # it has been dispatched here
        env.barrier()
        self.assertIsNone(env.removed_reason(pa), 'a release by one holder leaves it to the other')
        self.assertEqual(env.get(pa, MAPPING, 'State'), 'active')
        self.assertEqual(len(env.dump()), 1)
        self.assertEqual(b.call('Release', path=pa, iface=MAPPING), {'ok': []})
        wait_until(lambda: env.removed_reason(pa), 5, 'MappingRemoved')
        self.assertEqual(env.removed_reason(pa), 'released')
        wait_until(lambda: env.dump() == [], 5, 'deleted upstream')

    def test_conflict_other_uid(self):
        env = self.make_env(polkit=True)
        env.polkit_call('AllowUnknown', 'b', True)  # only the ownership rule may refuse
        a = Agent(env)
        pa = a.add_mapping('tcp', 8503)['ok'][0]
        env.wait_state(pa, 'active')
        n = Agent(env, uid=NOBODY)
        self.assertEqual(n.req(op='bind', proto='tcp', port=8504)['ok'], 8504)
        ans = n.add_mapping('tcp', 8503)
        self.assertAgentError(ERR + 'Conflict', ans, contains='8503')
        self.assertEqual(len(env.dump()), 1)
        self.assertEqual(env.get(pa, MAPPING, 'UID'), 0)
        # and the other way round: nobody's own mapping conflicts for root
        pn = n.add_mapping('tcp', 8504)
        self.assertIn('ok', pn, pn)
        self.assertEqual(env.get(pn['ok'][0], MAPPING, 'UID'), NOBODY)
        self.assertAgentError(ERR + 'Conflict', a.add_mapping('tcp', 8504))
        # another user may not release or remove it without revoke
        env.polkit_call('AllowUnknown', 'b', False)
        self.assertAgentError(ERR + 'NotAuthorized', n.call('Release', path=pa, iface=MAPPING))
        self.assertAgentError(ERR + 'NotAuthorized', n.call('RemoveMapping', 'o', f"(objectpath '{pa}',)"))
        env.barrier()  # a MappingRemoved for those refused calls would be here by now
        self.assertIsNone(env.removed_reason(pa))
        # revoke allows it
        env.polkit_call('SetAllowed', 'as', ['org.freedesktop.PCP1.revoke'])
        self.assertEqual(n.call('RemoveMapping', 'o', f"(objectpath '{pa}',)"), {'ok': []})
        wait_until(lambda: env.removed_reason(pa), 5, 'MappingRemoved')
        self.assertEqual(env.removed_reason(pa), 'revoked')

    def test_connection_close_without_exit(self):
        env = self.make_env()
        a = Agent(env)
        a.req(op='connect', n=1)
        p0 = a.add_mapping('tcp', 8505, conn=0)['ok'][0]
        p1 = a.add_mapping('tcp', 8506, conn=1)['ok'][0]
        env.wait_state(p1, 'active')
        a.req(op='close', conn=1)
        wait_until(lambda: env.removed_reason(p1), 5, 'MappingRemoved of the closed connection')
        env.barrier()  # and one for the other connection's mapping would be here by now
        self.assertIsNone(env.removed_reason(p0))
        wait_until(lambda: [m['internal_port'] for m in env.dump()] == [8505], 5, 'one left upstream')


if __name__ == '__main__':
    main()
