#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What proves that a caller owns a port (AddMapping: a socket sock_diag finds;
AddMappingForSocket: the socket passed):
  - only a socket in pcpd's own network namespace: one an unprivileged user made in a user
    and network namespace of its own (unshare --user --net --map-root-user) and passed to
    its host-side process is refused, while another user's service listens on that port in
    the host's namespace;
  - only a socket bound to the mapping's internal address (the host's address toward the
    server) or to the wildcard address; a TCP one listening: an attacker on 127.0.0.1 or on
    another local address of the port a victim serves on the internal address is refused
    by both calls, on the wildcard address or the internal address it is granted.
Needs root and network namespaces (the second test runs pcpd in one)."""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import (ERR, MANAGER, MAPPING, NOBODY, PATH, Agent, BusTestCase, NetNS, main,  # noqa: E402
                      netns_preflight)

MAP = 'org.freedesktop.PCP1.map'
NOT_OWNED = ERR + 'PortNotOwned'

HOST = '10.77.0.2'     # pcpd's address toward the server: every mapping's internal address
ROUTER = '10.77.0.1'   # the server (refserver) in its own namespace
OTHER = '10.88.0.2'    # another address of the host


def free_port(kind):
    """A port free for TCP or UDP on every address of this namespace right now."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(('0.0.0.0', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class SocketProofTest(BusTestCase):

    def userns_preflight(self, agent):
        """An unprivileged user must be able to make a user namespace here."""
        probe = agent.req(op='bind_in_netns', proto='udp', port=0, name='probe')
        if 'ok' not in probe:
            msg = f'this test needs unprivileged user namespaces ({probe.get("msg")})'
            if os.environ.get('CI') == 'true':
                self.fail(msg)
            self.skipTest(msg)

    def test_socket_from_another_netns(self):
        env = self.make_env(polkit=True)
        env.polkit_call('SetAllowed', 'as', [MAP])
        attacker = Agent(env, uid=NOBODY)
        self.userns_preflight(attacker)
        for proto, kind in (('tcp', socket.SOCK_STREAM), ('udp', socket.SOCK_DGRAM)):
            with self.subTest(proto=proto):
                # another user's service (root's) on the port, in the host's namespace
                port = free_port(kind)
                victim = socket.socket(socket.AF_INET, kind)
                self.addCleanup(victim.close)
                victim.bind(('0.0.0.0', port))
                if kind == socket.SOCK_STREAM:
                    victim.listen()
                # the same port, bound in a namespace of the attacker's own, passed home
                self.assertEqual(attacker.req(op='bind_in_netns', proto=proto, port=port, name=proto)['ok'], port)
                ans = attacker.req(op='add_for_socket', sock=proto)
                self.assertAgentError(NOT_OWNED, ans, contains='network namespace')
                # sock_diag sees pcpd's namespace only: AddMapping finds nothing of the
                # attacker's on the port either
                self.assertAgentError(NOT_OWNED, attacker.add_mapping(proto, port))
        # whoever passes such a socket: root too
        root = Agent(env)
        self.assertEqual(root.req(op='bind_in_netns', proto='tcp', port=0, name='r')['ok'] > 0, True)
        self.assertAgentError(NOT_OWNED, root.req(op='add_for_socket', sock='r'), contains='network namespace')
        self.assertEqual(env.dump(), [])
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)
        # a socket of the host's namespace still proves it
        port = attacker.req(op='bind', proto='tcp', port=0)['ok']
        ans = attacker.req(op='add_for_socket', sock=port)
        self.assertIn('ok', ans, ans)
        env.wait_state(ans['ok'][0], 'active')
        env.assert_alive()

    def host_env(self):
        """pcpd and the callers in a host namespace with HOST toward the server and OTHER on
        another interface; the server in a router namespace."""
        netns_preflight()
        host, router = NetNS('proof-host'), NetNS('proof-router')
        self.addCleanup(host.close)
        self.addCleanup(router.close)
        host.ip('link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', router.name)
        host.ip('addr', 'add', HOST + '/24', 'dev', 'wan0')
        host.ip('link', 'set', 'wan0', 'up')
        router.ip('addr', 'add', ROUTER + '/24', 'dev', 'lan0')
        router.ip('link', 'set', 'lan0', 'up')
        host.ip('link', 'add', 'other0', 'type', 'veth', 'peer', 'name', 'other0p')
        host.ip('addr', 'add', OTHER + '/24', 'dev', 'other0')
        host.ip('link', 'set', 'other0', 'up')
        host.ip('link', 'set', 'other0p', 'up')
        env = self.make_env(polkit=True, refserver=False, netns=host.name, start=False)
        env.with_refserver, env.ip, env.port = True, ROUTER, 5351
        env.start_refserver(netns=router.name)
        env.start_pcpd()
        env.polkit_call('SetAllowed', 'as', [MAP])
        return env, host

    def refused_both_ways(self, attacker, proto, port, sock, contains=None):
        """Neither AddMapping nor AddMappingForSocket grants the port."""
        self.assertAgentError(NOT_OWNED, attacker.add_mapping(proto, port), contains=contains)
        self.assertAgentError(NOT_OWNED, attacker.req(op='add_for_socket', sock=sock), contains=contains)

    def granted(self, env, ans, port):
        self.assertIn('ok', ans, ans)
        path = ans['ok'][0]
        env.wait_state(path, 'active')
        props = env.get_all(path)
        self.assertEqual((props['InternalAddress'], props['InternalPort'], props['UID']), (HOST, port, NOBODY))
        return path

    def test_bound_address(self):
        env, host = self.host_env()
        victim = Agent(env, netns=host.name)        # root: another user
        attacker = Agent(env, uid=NOBODY, netns=host.name)
        tport, uport = 41000, 41001
        # the victim serves on the internal address
        self.assertEqual(victim.req(op='bind', proto='tcp', port=tport, address=HOST)['ok'], tport)
        self.assertEqual(victim.req(op='bind', proto='udp', port=uport, address=HOST, reuse=True)['ok'], uport)

        # the attacker on 127.0.0.1 and on another address of the host: refused by both
        for address in ('127.0.0.1', OTHER):
            with self.subTest(address=address):
                name = 'tcp-' + address
                self.assertEqual(attacker.req(op='bind', proto='tcp', port=tport, address=address, name=name)['ok'],
                                 tport)
                self.refused_both_ways(attacker, 'tcp', tport, name, contains=HOST)
                name = 'udp-' + address
                self.assertEqual(attacker.req(op='bind', proto='udp', port=uport, address=address, name=name,
                                              reuse=True)['ok'], uport)
                self.refused_both_ways(attacker, 'udp', uport, name, contains=HOST)
        # the wildcard address while the victim's socket is bound to the internal address
        # itself (UDP, both with SO_REUSEADDR): the victim's gets the traffic
        attacker.req(op='bind', proto='udp', port=uport, reuse=True, name='udp-any')
        self.refused_both_ways(attacker, 'udp', uport, 'udp-any', contains='Another user')
        # a TCP socket that is not listening proves nothing
        idle = attacker.req(op='bind', proto='tcp', port=0, listen=False)['ok']
        self.assertAgentError(NOT_OWNED, attacker.add_mapping('tcp', idle), contains='listening')
        self.assertAgentError(NOT_OWNED, attacker.req(op='add_for_socket', sock=idle), contains='listen')
        self.assertEqual(env.dump(), [])
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)

        # the attacker's own ports, on the wildcard or the internal address: granted
        wild = attacker.req(op='bind', proto='tcp', port=0)['ok']
        self.granted(env, attacker.add_mapping('tcp', wild), wild)
        exact = attacker.req(op='bind', proto='tcp', port=0, address=HOST)['ok']
        self.granted(env, attacker.add_mapping('tcp', exact), exact)
        wild_u = attacker.req(op='bind', proto='udp', port=0)['ok']
        self.granted(env, attacker.req(op='add_for_socket', sock=wild_u), wild_u)
        exact_u = attacker.req(op='bind', proto='udp', port=0, address=HOST)['ok']
        self.granted(env, attacker.req(op='add_for_socket', sock=exact_u), exact_u)
        # an IPv6 socket on :: takes IPv4 too (not v6-only): a proof for an IPv4 mapping
        dual = attacker.req(op='bind', proto='tcp', port=0, family=6, v6only=False)['ok']
        self.granted(env, attacker.add_mapping('tcp', dual), dual)
        v6only = attacker.req(op='bind', proto='tcp', port=0, family=6, v6only=True)['ok']
        self.assertAgentError(NOT_OWNED, attacker.add_mapping('tcp', v6only))
        # the victim (root) is not held to it
        path = victim.add_mapping('tcp', tport)
        self.assertIn('ok', path, path)
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 6)
        env.assert_alive()


if __name__ == '__main__':
    main()
