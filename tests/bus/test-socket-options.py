#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""AddMappingForSocket's option "suggested-external-port" (q): it reaches the server, it
works with prefer-failure, and a wrong type or the wrong method is an InvalidArgs error
that names the bad value. Also: every option type error names the value it got."""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import INVALID_ARGS, MANAGER, MAPPING, PATH, BusTestCase, V, main  # noqa: E402


def bound_socket(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(('0.0.0.0', 0))
    return s


class SocketOptionsTest(BusTestCase):

    def add_for_socket(self, env, sock, options):
        return env.manager('AddMappingForSocket', 'ha{sv}', (0, options), fds=[sock.fileno()])[0]

    def test_suggested_port_reaches_the_server(self):
        env = self.make_env()
        s = bound_socket()
        self.addCleanup(s.close)
        port = s.getsockname()[1]
        suggested = 40000 if port != 40000 else 40001
        path = self.add_for_socket(env, s, {'suggested-external-port': V('q', suggested)})
        self.assertEqual(env.get(path, MAPPING, 'InternalPort'), port)
        self.assertEqual(env.get(path, MAPPING, 'SuggestedExternalPort'), suggested)
        env.wait_state(path, 'active')
        # the refserver grants a free suggested port: getting it proves the option went upstream
        self.assertEqual(env.get(path, MAPPING, 'ExternalPort'), suggested)
        held = [m for m in env.dump() if m['internal_port'] == port]
        self.assertEqual(len(held), 1, env.dump())
        self.assertEqual(held[0]['external_port'], suggested)

    def test_suggested_port_with_prefer_failure(self):
        env = self.make_env()
        # someone else holds external TCP port 40002 on the router
        other = env.add_mapping('tcp', 7001, 40002)
        env.wait_state(other, 'active')
        self.assertEqual(env.get(other, MAPPING, 'ExternalPort'), 40002)

        s = bound_socket(socket.SOCK_STREAM)
        self.addCleanup(s.close)
        path = self.add_for_socket(env, s, {'suggested-external-port': V('q', 40002),
                                            'prefer-failure': V('b', True)})
        env.wait_state(path, 'failed')
        self.assertEqual(env.get(path, MAPPING, 'Error'), 'CANNOT_PROVIDE_EXTERNAL')

        # prefer-failure still needs a suggested port, now given as the option
        s2 = bound_socket(socket.SOCK_STREAM)
        self.addCleanup(s2.close)
        self.assertDBusError(INVALID_ARGS, self.add_for_socket, env, s2, {'prefer-failure': V('b', True)},
                             contains='suggested external port')

    def test_bad_type_names_the_value(self):
        env = self.make_env()
        s = bound_socket()
        self.addCleanup(s.close)
        for value, needles in [
            (V('u', 70000), ["'suggested-external-port'", "'q'", "'u'", '70000']),
            (V('i', -1), ["'suggested-external-port'", "'i'", '-1']),
            (V('s', '8080'), ["'suggested-external-port'", "'s'", "'8080'"]),
            (V('aq', [1, 2]), ["'suggested-external-port'", "'aq'"]),
        ]:
            with self.subTest(value=str(value)):
                e = self.assertDBusError(INVALID_ARGS, self.add_for_socket, env, s,
                                         {'suggested-external-port': value})
                for n in needles:
                    self.assertIn(n, e.msg)
        # the same rule for every option of every Add method
        e = self.assertDBusError(INVALID_ARGS, env.add_mapping, 'tcp', 8080, 0, {'lifetime': V('s', '600')})
        self.assertIn("'600'", e.msg)
        e = self.assertDBusError(INVALID_ARGS, env.add_mapping, 'tcp', 8080, 0, {'description': V('t', 12)})
        self.assertIn('(12)', e.msg)
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)
        self.assertEqual(env.dump(), [])

    def test_only_for_add_mapping_for_socket(self):
        env = self.make_env()
        self.assertDBusError(INVALID_ARGS, env.add_mapping, 'tcp', 8080, 0,
                             {'suggested-external-port': V('q', 40000)}, contains='third argument')
        self.assertDBusError(INVALID_ARGS, env.manager, 'AddPeer', 'sqsqa{sv}',
                             ('tcp', 8080, '192.0.2.1', 443, {'suggested-external-port': V('q', 40000)}),
                             contains='AddPeer')
        # an unknown option's error lists it
        self.assertDBusError(INVALID_ARGS, env.add_mapping, 'tcp', 8080, 0, {'suggested-port': V('q', 1)},
                             contains='suggested-external-port')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)
        env.assert_alive()


if __name__ == '__main__':
    main()
