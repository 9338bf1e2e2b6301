#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Authorisation of an unprivileged caller (nobody) with the polkitd mock: privileged
ports, PortNotOwned, own sockets, map-privileged options, quota, AddMappingForSocket,
root bypasses polkit, a slow polkit blocks nobody else; polkit's challenge answered by what
the caller can do about it (call again interactively, or: no agent could ask)."""

import faulthandler
import os
import signal
faulthandler.register(signal.SIGUSR1, all_threads=True)
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import (ERR, MANAGER, MAPPING, NOBODY, PATH, POLKIT_MOCK, Agent, BusTestCase, V, main,  # noqa: E402
                      wait_until)

MAP = 'org.freedesktop.PCP1.map'
PRIV = 'org.freedesktop.PCP1.map-privileged'
POLKIT_DELAY = 5.0  # s: a slow polkit (SetDelay) in test_slow_polkit_does_not_block_others (a lower bound)


class AuthorisationTest(BusTestCase):
    env_kwargs = {'polkit': True, 'config': {'MaxMappingsPerUser': 3}}

    def setUp(self):
        self.env = self.make_env()
        self.nobody = Agent(self.env, uid=NOBODY)

    def test_privileged_port_denied(self):
        env, n = self.env, self.nobody
        env.polkit_call('SetAllowed', 'as', [MAP])
        self.assertAgentError(ERR + 'NotAuthorized', n.add_mapping('tcp', 80))
        self.assertAgentError(ERR + 'NotAuthorized', n.add_mapping('udp', 1023))
        self.assertEqual(env.dump(), [])
        env.polkit_call('SetAllowed', 'as', [MAP, PRIV])
        ans = n.add_mapping('tcp', 80)
        self.assertIn('ok', ans, ans)
        env.wait_state(ans['ok'][0], 'active')

    def test_port_not_owned(self):
        env, n = self.env, self.nobody
        env.polkit_call('SetAllowed', 'as', [MAP])
        ans = n.add_mapping('tcp', 40001)
        self.assertAgentError(ERR + 'PortNotOwned', ans, contains='40001')
        self.assertAgentError(ERR + 'PortNotOwned', n.add_mapping('udp', 40001))
        # a port bound by *another* uid (root) is not nobody's either
        import socket
        s = socket.socket()
        s.bind(('0.0.0.0', 40002))
        s.listen()
        try:
            self.assertAgentError(ERR + 'PortNotOwned', n.add_mapping('tcp', 40002))
        finally:
            s.close()
        self.assertEqual(env.dump(), [])
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)

    def test_own_socket_allowed(self):
        env, n = self.env, self.nobody
        env.polkit_call('SetAllowed', 'as', [MAP])
        tport = n.req(op='bind', proto='tcp', port=0)['ok']
        uport = n.req(op='bind', proto='udp', port=0)['ok']
        u6port = n.req(op='bind', proto='udp', port=0, family=6)['ok']
        for proto, port in (('tcp', tport), ('udp', uport), ('udp', u6port)):
            ans = n.add_mapping(proto, port)
            self.assertIn('ok', ans, f'{proto} {port}: {ans}')
            p = ans['ok'][0]
            env.wait_state(p, 'active')
            self.assertEqual(env.get(p, MAPPING, 'UID'), NOBODY)
            self.assertEqual(env.get(p, MAPPING, 'Owner'), n.name)
        self.assertEqual(len(env.dump()), 3)
        # the same request without the map action: refused
        env.polkit_call('SetAllowed', 'as', [])
        port = n.req(op='bind', proto='tcp', port=0)['ok']
        self.assertAgentError(ERR + 'NotAuthorized', n.add_mapping('tcp', port))

    def test_privileged_options(self):
        env, n = self.env, self.nobody
        env.polkit_call('SetAllowed', 'as', [MAP])
        port = n.req(op='bind', proto='tcp', port=0)['ok']
        for opt in ("{'third-party': <'192.168.1.20'>}", "{'persistent': <true>}",
                    "{'external-address': <'198.51.100.7'>}"):
            with self.subTest(opt=opt):
                self.assertAgentError(ERR + 'NotAuthorized', n.add_mapping('tcp', port, 0, opt))
        # on a port the caller does not own either: not PortNotOwned (binding the port
        # would not help), but what is missing
        ans = n.add_mapping('tcp', 40003, 0, "{'persistent': <true>}")
        self.assertAgentError(ERR + 'NotAuthorized', ans, contains='need an administrator')
        self.assertEqual(env.dump(), [])
        # persistent: false is no privilege
        ans = n.add_mapping('tcp', port, 0, "{'persistent': <false>}")
        self.assertIn('ok', ans, ans)
        env.polkit_call('SetAllowed', 'as', [MAP, PRIV])
        port2 = n.req(op='bind', proto='tcp', port=0)['ok']
        ans = n.add_mapping('tcp', port2, 0, "{'persistent': <true>}")
        self.assertIn('ok', ans, ans)
        self.assertEqual(env.get(ans['ok'][0], MAPPING, 'Persistent'), True)

    def test_quota(self):
        env, n = self.env, self.nobody
        env.polkit_call('SetAllowed', 'as', [MAP])
        self.assertEqual(env.get(PATH, MANAGER, 'MaxMappingsPerUser'), 3)
        ports = [n.req(op='bind', proto='udp', port=0)['ok'] for _ in range(4)]
        for port in ports[:3]:
            self.assertIn('ok', n.add_mapping('udp', port))
        ans = n.add_mapping('udp', ports[3])
        self.assertAgentError(ERR + 'QuotaExceeded', ans, contains='3')
        self.assertEqual(len(env.dump()), 3)
        # asking again for one already held is not a new mapping
        self.assertIn('ok', n.add_mapping('udp', ports[0]))
        # root has no quota
        for i in range(5):
            env.add_mapping('tcp', 20000 + i)

    def test_add_mapping_for_socket(self):
        """The passed socket is the proof of ownership: allowed with map only, even for a
        port sock_diag cannot see (SCTP is not looked up with sock_diag)."""
        env, n = self.env, self.nobody
        env.polkit_call('SetAllowed', 'as', [MAP])
        port = n.req(op='bind', proto='udp', port=0)['ok']
        ans = n.req(op='add_for_socket', sock=port, options="{'lifetime': <uint32 300>}")
        self.assertIn('ok', ans, ans)
        p = ans['ok'][0]
        env.wait_state(p, 'active')
        props = env.get_all(p)
        self.assertEqual((props['Protocol'], props['InternalPort'], props['UID']), ('udp', port, NOBODY))
        # without the map action, even with a socket: refused
        env.polkit_call('SetAllowed', 'as', [])
        port2 = n.req(op='bind', proto='tcp', port=0)['ok']
        self.assertAgentError(ERR + 'NotAuthorized', n.req(op='add_for_socket', sock=port2))

    def test_root_bypasses_polkit(self):
        env = self.env
        env.polkit_call('SetAllowed', 'as', [])
        env.polkit_call('SimulateHang', 'b', True)
        p = env.add_mapping('tcp', 81, 0, {'persistent': V('b', True), 'third-party': V('s', '127.0.0.1')})
        self.assertTrue(p)
        env.manager('SetEnabled', 'b', (True,))
        env.polkit_call('SimulateHang', 'b', False)

    def test_slow_polkit_does_not_block_others(self):
        env, n = self.env, self.nobody
        env.polkit_call('SetAllowed', 'as', [MAP])
        env.polkit_call('SimulateHang', 'b', True)
        port = n.req(op='bind', proto='tcp', port=0)['ok']
        result = {}

        def slow():
            try:
                result['ans'] = n.add_mapping('tcp', port)
            except RuntimeError:  # killed at the end of the test, still waiting
                result['ans'] = None

        t = threading.Thread(target=slow)
        t.start()
        # the event: pcpd's check reached polkit, which holds it (no clock involved)
        wait_until(lambda: env.polkit_call('HaveHangingCalls')[0], 10, "polkit holding pcpd's check")
        self.assertTrue(t.is_alive(), 'the call waits for polkit')
        # meanwhile another caller is served (while the first still waits: no clock needed)
        p = env.add_mapping('udp', 30000)
        env.wait_state(p, 'active')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 1)
        other = Agent(env, uid=NOBODY)
        self.assertEqual(other.call('GetExternalAddress', 's', "('ipv4',)")['ok'][0], '198.51.100.7')
        self.assertTrue(t.is_alive())
        # nothing changed for the waiting call before polkit's answer
        self.assertEqual(len(env.dump()), 1)
        # polkit answers late: the waiting call completes then, with its mapping
        env.polkit_call('ReleaseHangingCalls')
        t.join(60)
        self.assertFalse(t.is_alive(), 'answered once polkit was')
        self.assertIn('ok', result['ans'], result['ans'])
        env.wait_state(result['ans']['ok'][0], 'active')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 2)

        # a slow polkit (one that does nothing else meanwhile, as a stalled process would:
        # the mock sleeps in its handler): the call waits for it and then completes. That
        # others are served meanwhile is shown above with a check that waits for the test,
        # not for a clock: a delay cannot show it on a loaded machine.
        env.polkit_call('SimulateHang', 'b', False)
        env.polkit_call('SetDelay', 'd', POLKIT_DELAY)
        port2 = other.req(op='bind', proto='tcp', port=0)['ok']
        t0 = time.monotonic()
        ans2 = other.add_mapping('tcp', port2)
        self.assertIn('ok', ans2, ans2)
        # a lower bound only (it cannot fail on a slow machine): the answer came through polkit
        self.assertGreaterEqual(time.monotonic() - t0, POLKIT_DELAY - 0.1, 'the call did wait for polkit')
        env.wait_state(ans2['ok'][0], 'active')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 3)
        env.assert_alive()

class ChallengeTest(BusTestCase):
    """polkit answers "authentication required" (is_challenge; tests/bus/polkitd-mock.py's
    SetChallenge): NotAuthorized either way, telling a caller that did not allow interactive
    authorisation to allow it, and one that did that no authentication agent could ask.
    tests/system/run.sh proves the same answers with the real polkitd (alice's declare: its
    configure is auth_admin), and an agent that answers, in its "declared mappings" phase."""
    env_kwargs = {'polkit': True, 'polkit_template': POLKIT_MOCK}

    def test_challenge(self):
        env = self.env = self.make_env()
        n = Agent(env, uid=NOBODY)
        env.polkit_call('SetAllowed', 'as', [MAP])
        env.polkit_call('SetChallenge', 'b', True)
        args = "('tcp', uint16 80, uint16 0, @a{sv} {})"
        ans = n.call('AddMapping', 'sqqa{sv}', args)
        self.assertAgentError(ERR + 'NotAuthorized', ans, contains='call again allowing interactive')
        ans = n.call('AddMapping', 'sqqa{sv}', args, interactive=True)
        self.assertAgentError(ERR + 'NotAuthorized', ans, contains='no authentication agent')
        self.assertNotIn('call again', ans['msg'])
        self.assertEqual(env.dump(), [])
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)


if __name__ == '__main__':
    main()
