#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A host that is not behind a NAT: pcpd in a network namespace whose only addresses are
global ones and that has no PCP server gets "active" mappings with its own address and
the internal port (DBUS-API.md: success, not an error), moves them to a server that
starts answering later, follows its address, and still answers NoServer where the host
has only private, CGN or ULA addresses. Needs root and network namespaces (ip netns)."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import (ERR, EXTERNAL, MANAGER, MAPPING, OM, PATH, PYTHON, Agent, BusTestCase, NetNS, V,  # noqa: E402
                      main, netns_preflight, preflight, slurp, wait_until)

# Globally reachable as far as pcpd can tell (not in any special-purpose block); they only
# ever exist inside the test's own namespaces.
GLOBAL4 = '11.22.33.44'
GLOBAL4_B = '11.22.34.55'
GATEWAY4 = '11.22.33.1'
GLOBAL6 = '2a00:1450:4001::44'


class DirectTest(BusTestCase):

    def netns(self, tag):
        ns = NetNS(tag)
        self.addCleanup(ns.close)
        return ns

    def dummy(self, ns, name, *addrs):
        """An interface that is up with these addresses: a veth pair inside ns (the dummy
        driver is not in every kernel)."""
        ns.ip('link', 'add', name, 'type', 'veth', 'peer', 'name', name + 'p')
        ns.ip('link', 'set', name + 'p', 'up')
        ns.ip('link', 'set', name, 'up')
        for a in addrs:
            if ':' in a:
                ns.ip('addr', 'add', a, 'dev', name, 'nodad')
            else:
                ns.ip('addr', 'add', a, 'dev', name)

    def env_in(self, ns, **kw):
        env = self.make_env(refserver=False, netns=ns.name, start=False, **kw)
        env.start_pcpd(wait_ready=False)
        return env

    def assertDirect(self, env, path, address, port):
        props = env.get_all(path)
        self.assertEqual(props['State'], 'active', props)
        self.assertEqual(props['Error'], '')
        self.assertEqual(props['ExternalAddress'], address)
        self.assertEqual(props['InternalAddress'], address)
        self.assertEqual(props['ExternalPort'], port)
        self.assertEqual(props['Server'], '')
        self.assertEqual(props['ExpiresAt'], 0)
        return props

    def test_public_host_gets_its_own_address(self):
        ns = self.netns('direct')
        self.dummy(ns, 'pub0', GLOBAL4 + '/24', GLOBAL6 + '/64')
        self.dummy(ns, 'priv0', '10.1.2.3/24', 'fd00:1::3/64')
        env = self.env_in(ns)
        self.assertEqual(env.get(PATH, MANAGER, 'Servers'), [])
        # not behind a NAT is success: ready, and the host's own address is the external one
        self.assertEqual(env.get(PATH, MANAGER, 'State'), 'ready')
        self.assertEqual(env.manager('GetExternalAddress', 's', ('ipv4',)), (GLOBAL4, ''))
        self.assertEqual(env.manager('GetExternalAddress', 's', ('',)), (GLOBAL4, ''))
        self.assertEqual(env.manager('GetExternalAddress', 's', ('ipv6',)), (GLOBAL6, ''))
        self.assertEqual(env.get(PATH, MANAGER, 'ExternalAddresses'), [GLOBAL4, GLOBAL6])

        # active right away: no server, nothing to wait for
        path = env.add_mapping('tcp', 8080, 0, {'description': V('s', 'web')})
        props = self.assertDirect(env, path, GLOBAL4, 8080)
        self.assertEqual(props['Family'], 'ipv4')
        self.assertEqual(props['Lifetime'], 600)  # what was asked (DefaultLifetime): no server shortens it
        # a suggested port cannot change the host's own port; without prefer-failure it is only a wish
        path2 = env.add_mapping('udp', 5000, 6000)
        self.assertDirect(env, path2, GLOBAL4, 5000)

        path6 = env.add_mapping('udp', 8080, 0, {'family': V('s', 'ipv6')})
        self.assertDirect(env, path6, GLOBAL6, 8080)

        peer = env.manager('AddPeer', 'sqsqa{sv}', ('tcp', 40000, '203.0.113.9', 443, {}))[0]
        props = self.assertDirect(env, peer, GLOBAL4, 40000)
        self.assertEqual(props['Opcode'], 'peer')
        self.assertEqual(props['RemoteAddress'], '203.0.113.9')

        # the same port again is the same mapping
        self.assertEqual(env.add_mapping('tcp', 8080), path)
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 4)

        # an interface with only private addresses has nothing to offer
        self.assertDBusError(ERR + 'NoServer', env.add_mapping, 'tcp', 8081, 0, {'interface': V('s', 'priv0')},
                             contains='priv0')
        # ...and one with a global address does
        self.assertDirect(env, env.add_mapping('tcp', 8082, 0, {'interface': V('s', 'pub0')}), GLOBAL4, 8082)
        # THIRD_PARTY maps for another host: only a server can do that
        self.assertDBusError(ERR + 'NoServer', env.add_mapping, 'tcp', 8083, 0,
                             {'third-party': V('s', '10.1.2.9')})
        # exactly another port or fail: never possible without a NAT
        self.assertDBusError(ERR + 'Unsupported', env.add_mapping, 'tcp', 8084, 9000,
                             {'prefer-failure': V('b', True)}, contains='9000')
        # ...but exactly the internal port is
        self.assertDirect(env, env.add_mapping('tcp', 8085, 8085, {'prefer-failure': V('b', True)}), GLOBAL4, 8085)

        env.call(path2, MAPPING, 'Release')
        wait_until(lambda: env.removed_reason(path2) == 'released', 5, 'MappingRemoved released')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 5)
        env.assert_alive()

    def test_private_host_still_has_no_server(self):
        ns = self.netns('private')
        # RFC 1918, carrier-grade NAT, documentation and ULA addresses are all behind something
        self.dummy(ns, 'priv0', '10.1.2.3/24', '100.64.1.2/10', '192.0.2.7/24', 'fd00:1::3/64',
                   '2001:db8::3/64')
        env = self.env_in(ns)
        self.assertDBusError(ERR + 'NoServer', env.add_mapping, 'tcp', 8080, 0, contains='IPv6')
        self.assertDBusError(ERR + 'NoServer', env.add_mapping, 'tcp', 8080, 0, {'family': V('s', 'ipv4')},
                             contains='IPv4')
        self.assertDBusError(ERR + 'NoServer', env.add_mapping, 'tcp', 8080, 0, {'family': V('s', 'ipv6')},
                             contains='IPv6')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)
        # nothing is global: still no network to speak of, no external address
        self.assertEqual(env.get(PATH, MANAGER, 'State'), 'no-network')
        self.assertEqual(env.get(PATH, MANAGER, 'ExternalAddresses'), [])
        for family in ('ipv4', 'ipv6'):
            self.assertDBusError(ERR + 'NoServer', env.manager, 'GetExternalAddress', 's', (family,))

    def unreachable_server_env(self, ns):
        """pcpd in ns with one configured server that nobody listens on: ICMP port
        unreachable makes it 'unreachable'."""
        env = self.make_env(refserver=False, netns=ns.name, start=False)
        env.with_refserver, env.ip, env.port = True, '127.0.0.1', 15351  # configured, never started
        env.start_pcpd(wait_ready=False)
        wait_until(lambda: env.get(PATH, MANAGER, 'State') != 'discovering', 10, 'the server found unreachable')
        return env

    def test_unreachable_server(self):
        """A server that cannot be reached is no server: a public host is ready and direct,
        a private one is still 'unsupported' (as before)."""
        ns = self.netns('unreach')
        self.dummy(ns, 'pub0', GLOBAL4 + '/24')
        env = self.unreachable_server_env(ns)
        self.assertEqual(env.get(PATH, MANAGER, 'Servers')[0][3], 'none')
        self.assertEqual(env.get(PATH, MANAGER, 'State'), 'ready')
        self.assertEqual(env.manager('GetExternalAddress', 's', ('ipv4',)), (GLOBAL4, ''))
        self.assertDirect(env, env.add_mapping('tcp', 8080), GLOBAL4, 8080)

        ns2 = self.netns('unreach-priv')
        self.dummy(ns2, 'priv0', '10.1.2.3/24')
        env2 = self.unreachable_server_env(ns2)
        self.assertEqual(env2.get(PATH, MANAGER, 'State'), 'unsupported')
        self.assertEqual(env2.get(PATH, MANAGER, 'ExternalAddresses'), [])
        self.assertDBusError(ERR + 'NoServer', env2.manager, 'GetExternalAddress', 's', ('ipv4',))

    def test_moves_to_a_server_that_appears(self):
        host = self.netns('host')
        router = self.netns('router')
        host.ip('link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', router.name)
        host.ip('addr', 'add', GLOBAL4 + '/24', 'dev', 'wan0')
        host.ip('link', 'set', 'wan0', 'up')
        router.ip('addr', 'add', GATEWAY4 + '/24', 'dev', 'lan0')
        router.ip('link', 'set', 'lan0', 'up')

        env = self.env_in(host, use_default_routers=True)
        # the router runs a PCP server, but the host has no default route through it yet
        env.ip, env.port = GATEWAY4, 5351
        env.start_refserver(netns=router.name)

        path = env.add_mapping('tcp', 8080, 0, {'filters': V('a(sq)', [('198.18.0.0/15', 0)])})
        self.assertDirect(env, path, GLOBAL4, 8080)
        self.assertEqual(env.dump(), [])
        self.assertEqual(env.get(PATH, MANAGER, 'State'), 'ready')
        self.assertEqual(env.manager('GetExternalAddress', 's', ('ipv4',)), (GLOBAL4, ''))

        host.ip('route', 'add', 'default', 'via', GATEWAY4)
        wait_until(lambda: env.get(path, MAPPING, 'Server') == GATEWAY4, 15, 'the mapping on the new server')
        env.wait_state(path, 'active')
        # behind the server's NAT now: its external address, and it says so
        self.assertEqual(env.manager('GetExternalAddress', 's', ('ipv4',)), (EXTERNAL, GATEWAY4))
        self.assertEqual(env.get(PATH, MANAGER, 'ExternalAddresses'), [EXTERNAL])
        self.assertEqual(env.get(PATH, MANAGER, 'State'), 'ready')
        props = env.get_all(path)
        self.assertEqual(props['ExternalAddress'], EXTERNAL)
        self.assertEqual(props['InternalAddress'], GLOBAL4)
        self.assertGreater(props['ExpiresAt'], 0)
        held = env.dump()
        self.assertEqual(len(held), 1, held)
        self.assertEqual((held[0]['internal'], held[0]['internal_port']), (GLOBAL4, 8080))
        # the request carried what the app asked for at first: its FILTER option makes the
        # MAP request 24 + 36 + 24 octets long instead of 60
        reqs = [r for r in env.reflog_requests() if r['opcode'] == 1 and r['internal_port'] == 8080]
        self.assertTrue(reqs, env.reflog_requests())
        self.assertEqual(reqs[0]['len'], 84, reqs[0])
        # clients heard of the move with values
        changed = [s[3] for s in env.signals_of('PropertiesChanged', path)]
        self.assertTrue(any(c[1].get('Server') == GATEWAY4 for c in changed), changed)
        # same object, still one mapping
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 1)

        # new mappings go to the server now
        p2 = env.add_mapping('udp', 9000)
        self.assertEqual(env.get(p2, MAPPING, 'Server'), GATEWAY4)
        env.wait_state(p2, 'active')
        self.assertEqual([r['len'] for r in env.reflog_requests() if r['opcode'] == 1 and r['internal_port'] == 9000][0],
                         60)

        # releasing the moved mapping deletes it upstream
        env.call(path, MAPPING, 'Release')
        wait_until(lambda: len(env.dump()) == 1, 10, 'the upstream delete')
        env.assert_alive()

    def test_follows_the_address(self):
        ns = self.netns('addr')
        self.dummy(ns, 'pub0', GLOBAL4 + '/24')
        self.dummy(ns, 'pub1', GLOBAL4_B + '/24')
        # the route monitor (UseDefaultRouters=true) is how pcpd hears of address changes
        env = self.env_in(ns, use_default_routers=True)
        path = env.add_mapping('tcp', 8080, 0, {'interface': V('s', 'pub0')})
        self.assertDirect(env, path, GLOBAL4, 8080)

        self.assertEqual(env.get(PATH, MANAGER, 'ExternalAddresses'), [GLOBAL4])

        ns.ip('addr', 'del', GLOBAL4 + '/24', 'dev', 'pub0')
        wait_until(lambda: env.get(path, MAPPING, 'ExternalAddress') == GLOBAL4_B, 10, 'the other address')
        self.assertDirect(env, path, GLOBAL4_B, 8080)
        self.assertEqual(env.manager('GetExternalAddress', 's', ('ipv4',)), (GLOBAL4_B, ''))
        # the manager's clients heard of it, with the value
        wait_until(lambda: self.manager_changes(env, 'ExternalAddresses')[-1:] == [[GLOBAL4_B]], 5,
                   'PropertiesChanged ExternalAddresses')

        ns.ip('addr', 'del', GLOBAL4_B + '/24', 'dev', 'pub1')
        wait_until(lambda: env.removed_reason(path) is not None, 10, 'MappingRemoved')
        self.assertEqual(env.removed_reason(path), 'network-lost')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 0)
        # no global address left: not ready any more, and told so
        self.assertEqual(env.get(PATH, MANAGER, 'State'), 'no-network')
        wait_until(lambda: self.manager_changes(env, 'State')[-1:] == ['no-network'], 5,
                   'PropertiesChanged State')
        wait_until(lambda: self.manager_changes(env, 'ExternalAddresses')[-1:] == [[]], 5,
                   'PropertiesChanged ExternalAddresses []')
        self.assertDBusError(ERR + 'NoServer', env.manager, 'GetExternalAddress', 's', ('ipv4',))
        env.assert_alive()

    def test_silent_gateway(self):
        """A gateway that never answers (no PCP server, and no ICMP either: something holds
        the port and drops what it gets) keeps a public host from mapping directly only for
        a while: once the probe and two retransmissions went unanswered (21 s), State is
        'ready', the external address is the host's own and new mappings are direct."""
        host = self.netns('silent-host')
        router = self.netns('silent-router')
        host.ip('link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', router.name)
        host.ip('addr', 'add', GLOBAL4 + '/24', 'dev', 'wan0')
        host.ip('link', 'set', 'wan0', 'up')
        router.ip('addr', 'add', GATEWAY4 + '/24', 'dev', 'lan0')
        router.ip('link', 'set', 'lan0', 'up')
        host.ip('route', 'add', 'default', 'via', GATEWAY4)
        sink = subprocess.Popen(['ip', 'netns', 'exec', router.name, PYTHON, '-c',
                                 'import socket, time\n'
                                 's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n'
                                 f's.bind(("{GATEWAY4}", 5351))\n'
                                 'print("bound", flush=True)\n'
                                 'time.sleep(600)\n'], stdout=subprocess.PIPE, text=True)
        self.addCleanup(sink.wait)
        self.addCleanup(sink.kill)
        self.assertEqual(sink.stdout.readline().strip(), 'bound')

        env = self.env_in(host, use_default_routers=True)
        t0 = time.monotonic()
        wait_until(lambda: env.get(PATH, MANAGER, 'Servers'), 5, 'the gateway as server')
        self.assertEqual(env.get(PATH, MANAGER, 'State'), 'discovering')
        # while it may still answer, requests go to it (as before)
        early = env.add_mapping('tcp', 8080)
        self.assertEqual((env.get(early, MAPPING, 'Server'), env.get(early, MAPPING, 'State')), (GATEWAY4, 'pending'))
        self.assertDBusError(ERR + 'NoServer', env.manager, 'GetExternalAddress', 's', ('ipv4',))

        wait_until(lambda: env.get(PATH, MANAGER, 'State') == 'ready', 40, 'State ready')
        self.assertGreaterEqual(time.monotonic() - t0, 19, 'not before the probe went unanswered for 21 s')
        self.assertEqual(env.get(PATH, MANAGER, 'Servers')[0][1:4], (GATEWAY4, 'gateway', 'none'))
        self.assertEqual(env.manager('GetExternalAddress', 's', ('ipv4',)), (GLOBAL4, ''))
        wait_until(lambda: self.manager_changes(env, 'ExternalAddresses')[-1:] == [[GLOBAL4]], 5,
                   'PropertiesChanged ExternalAddresses')
        self.assertIn('ready', self.manager_changes(env, 'State'))
        self.assertDirect(env, env.add_mapping('tcp', 8081), GLOBAL4, 8081)
        # a mapping made on the server stays there; its first request unanswered for three
        # retransmissions (~21 s) with nothing heard from the server, it says so: failed,
        # UNREACHABLE (pcpd keeps asking)
        self.assertEqual(env.get(early, MAPPING, 'Server'), GATEWAY4)
        wait_until(lambda: env.get(early, MAPPING, 'State') == 'failed', 40, 'the early mapping failed')
        self.assertEqual((env.get(early, MAPPING, 'Server'), env.get(early, MAPPING, 'Error')), (GATEWAY4, 'UNREACHABLE'))
        self.assertEqual(env.get(PATH, MANAGER, 'Servers')[0][1:4], (GATEWAY4, 'gateway', 'none'))
        self.assertIn(f'PCP server {GATEWAY4} has not answered for 21 s', env.log())
        env.assert_alive()

    def test_silent_pcp_server(self):
        """A PCP server that stops answering is listed with protocol 'none' once a request to
        it went unanswered for 20 s with nothing heard (its first mapping request fails
        UNREACHABLE about then), and 'pcp' again as soon as it answers, each change signalled
        (PropertiesChanged Servers). Nothing else moves: its mappings stay on it, new ones
        still go to it, no direct mapping is made (the host has no global address here
        anyway, and no UPnP-IGD is looked for: the log says nothing of one)."""
        env = self.make_env()
        server = env.get(PATH, MANAGER, 'Servers')[0][1]

        def protocol():
            return env.get(PATH, MANAGER, 'Servers')[0][3]

        def signalled():
            return [[x[3] for x in v] for v in self.manager_changes(env, 'Servers')]

        granted = env.add_mapping('tcp', 8080)
        env.wait_state(granted, 'active')
        wait_until(lambda: protocol() == 'pcp', 10, 'Servers: pcp')

        env.ctl('drop-requests', '1')
        t0 = time.monotonic()
        early = env.add_mapping('tcp', 8081)
        wait_until(lambda: protocol() == 'none', 40, 'Servers: none for the silent server')
        self.assertGreaterEqual(time.monotonic() - t0, 19, 'not before a request went unanswered for 20 s')
        wait_until(lambda: signalled()[-1:] == [['none']], 5, 'PropertiesChanged Servers: none')
        # one warning for the silence (Servers: none), whatever else changes meanwhile
        went_silent = rf'PCP server {re.escape(server)} has not answered for (\d+) s; its mappings wait for it'
        wait_until(lambda: re.search(went_silent, env.log()), 5, 'the log line on the silence')
        self.assertGreaterEqual(int(re.search(went_silent, env.log())[1]), 20)
        # its only server no longer answers: the manager is no longer "ready" (it keeps
        # asking: "discovering"), told with PropertiesChanged State
        wait_until(lambda: env.get(PATH, MANAGER, 'State') == 'discovering', 5, 'State: discovering')
        wait_until(lambda: self.manager_changes(env, 'State')[-1:] == ['discovering'], 5,
                   'PropertiesChanged State: discovering')
        wait_until(lambda: env.get(early, MAPPING, 'State') == 'failed', 20, 'the early mapping failed')
        self.assertEqual((env.get(early, MAPPING, 'Server'), env.get(early, MAPPING, 'Error')), (server, 'UNREACHABLE'))
        self.assertEqual(env.get(granted, MAPPING, 'State'), 'active')
        self.assertEqual(env.get(granted, MAPPING, 'Server'), server)
        # still the server's: a new mapping goes to it (pending there, not direct)
        late = env.add_mapping('udp', 9000)
        self.assertEqual((env.get(late, MAPPING, 'Server'), env.get(late, MAPPING, 'State')), (server, 'pending'))
        self.assertNotIn('Searching for a UPnP-IGD', env.log())

        # it answers again (the new mapping's request is answered at once): pcp
        env.ctl('drop-requests', '0')
        again = env.add_mapping('udp', 9001)
        env.wait_state(again, 'active')
        wait_until(lambda: protocol() == 'pcp', 10, 'Servers: pcp again')
        wait_until(lambda: signalled()[-1:] == [['pcp']], 5, 'PropertiesChanged Servers: pcp')
        wait_until(lambda: env.get(PATH, MANAGER, 'State') == 'ready', 5, 'State: ready again')
        wait_until(lambda: self.manager_changes(env, 'State')[-1:] == ['ready'], 5, 'PropertiesChanged State: ready')
        # and one line on its end, after the time it went unanswered (20 s at least)
        answers = re.findall(rf'PCP server {re.escape(server)} answers again after (\d+) s', env.log())
        self.assertEqual(len(answers), 1, env.log())
        self.assertGreaterEqual(int(answers[0]), 20)
        self.assertEqual(len(re.findall(went_silent, env.log())), 1, env.log())
        env.assert_alive()

    # ---- restarts: direct mappings are saved and made again ----

    def restart(self, env):
        env.kill_pcpd()
        env.signals.clear()
        env.start_pcpd(wait_ready=False)

    def test_restart_keeps_direct_mappings(self):
        """Killed and started again with the same state directory, a public host without a
        server has its direct mappings back, direct: persistent ones for good, app ones for
        the grace period (reclaimed: the same mapping; not: removed)."""
        ns = self.netns('restart')
        self.dummy(ns, 'pub0', GLOBAL4 + '/24', GLOBAL6 + '/64')
        env = self.env_in(ns, config={'GraceSeconds': 3})
        kept = env.add_mapping('tcp', 8080, 0, {'persistent': V('b', True), 'description': V('s', 'web'),
                                                 'filters': V('a(sq)', [('198.18.0.0/15', 0), ('2a00::/16', 443)])})
        kept6 = env.add_mapping('udp', 8080, 0, {'persistent': V('b', True), 'family': V('s', 'ipv6')})
        a = Agent(env)
        app = a.add_mapping('tcp', 8090, 0, "{'description': <'app'>}")['ok'][0]
        lost = a.add_mapping('udp', 8091)['ok'][0]
        for p, addr, port in ((kept, GLOBAL4, 8080), (kept6, GLOBAL6, 8080), (app, GLOBAL4, 8090),
                              (lost, GLOBAL4, 8091)):
            self.assertDirect(env, p, addr, port)
        state_file = os.path.join(env.state, 'mappings.state')
        wait_until(lambda: slurp(state_file).count('Direct=true') == 4, 5, 'the direct mappings saved')

        self.restart(env)
        a.kill()  # its mappings are now nobody's: only the grace period holds them
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 4)
        self.assertEqual(env.get(PATH, MANAGER, 'State'), 'ready')
        objs = [o[MAPPING] for o in env.call(PATH, OM, 'GetManagedObjects')[0].values()]
        by_key = {(o['Protocol'], o['InternalPort']): o for o in objs}
        self.assertEqual(set(by_key), {('tcp', 8080), ('udp', 8080), ('tcp', 8090), ('udp', 8091)})
        for (proto, port), o in by_key.items():
            want = GLOBAL6 if (proto, port) == ('udp', 8080) else GLOBAL4
            self.assertEqual((o['State'], o['Server'], o['ExternalAddress'], o['InternalAddress'], o['ExternalPort'],
                              o['ExpiresAt']), ('active', '', want, want, port, 0), o)
        self.assertTrue(by_key[('tcp', 8080)]['Persistent'])
        self.assertEqual(by_key[('tcp', 8080)]['Description'], 'web')
        self.assertEqual(by_key[('udp', 8080)]['Family'], 'ipv6')
        self.assertEqual(by_key[('tcp', 8090)]['Owner'], '')  # waiting for its app
        self.assertEqual(by_key[('tcp', 8090)]['Description'], 'app')

        # the app comes back within the grace period: the same mapping
        b = Agent(env)
        ans = b.add_mapping('tcp', 8090, 0, "{'description': <'app'>}")
        self.assertIn('ok', ans, ans)
        self.assertEqual(env.get(ans['ok'][0], MAPPING, 'Owner'), b.name)
        self.assertDirect(env, ans['ok'][0], GLOBAL4, 8090)
        # the other app does not: gone after the grace period
        lost_path = [p for p, o in env.call(PATH, OM, 'GetManagedObjects')[0].items()
                     if o[MAPPING]['InternalPort'] == 8091][0]
        wait_until(lambda: env.removed_reason(lost_path) is not None, 10, 'the unclaimed mapping removed')
        self.assertEqual(env.removed_reason(lost_path), 'owner-vanished')
        self.assertEqual(env.get(PATH, MANAGER, 'MappingCount'), 3)

        # its options were saved with it (test_restart_onto_a_server: they reach a server)
        self.assertIn('Filters=198.18.0.0/15 0;2a00::/16 443;', slurp(state_file))

        # killed right after AddMapping (before the snapshot): the journal has it
        env.add_mapping('tcp', 8100, 0, {'persistent': V('b', True)})
        # on disk when the call returns (the journal; a snapshot folds it in later, pcpd-state.h)
        journal = os.path.join(env.state, 'mappings.journal')
        self.assertIn('InternalPort=8100', slurp(journal) + slurp(state_file))
        self.restart(env)
        ports = sorted((o[MAPPING]['Protocol'], o[MAPPING]['InternalPort'])
                       for o in env.call(PATH, OM, 'GetManagedObjects')[0].values())
        # the reclaimed app mapping is unclaimed again after this restart; all four are there
        self.assertEqual(ports, [('tcp', 8080), ('tcp', 8090), ('tcp', 8100), ('udp', 8080)])
        b.kill()
        env.assert_alive()

    def test_restart_onto_a_server(self):
        """A persistent direct mapping whose host is behind a PCP server by the time pcpd
        starts again (its global address gone, a default route through the server) is made
        on that server, with the options its caller asked for."""
        host = self.netns('rs-host')
        router = self.netns('rs-router')
        host.ip('link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', router.name)
        host.ip('addr', 'add', GLOBAL4 + '/24', 'dev', 'wan0')
        host.ip('link', 'set', 'wan0', 'up')
        router.ip('addr', 'add', '10.9.0.1/24', 'dev', 'lan0')
        router.ip('link', 'set', 'lan0', 'up')
        env = self.env_in(host, use_default_routers=True)
        env.ip, env.port = '10.9.0.1', 5351
        env.start_refserver(netns=router.name)

        path = env.add_mapping('tcp', 8080, 0, {'persistent': V('b', True), 'description': V('s', 'web'),
                                                'filters': V('a(sq)', [('198.18.0.0/15', 0)])})
        self.assertDirect(env, path, GLOBAL4, 8080)
        state_file = os.path.join(env.state, 'mappings.state')
        wait_until(lambda: 'Direct=true' in slurp(state_file), 5, 'the direct mapping saved')
        env.kill_pcpd()

        # behind the router now
        host.ip('addr', 'del', GLOBAL4 + '/24', 'dev', 'wan0')
        host.ip('addr', 'add', '10.9.0.2/24', 'dev', 'wan0')
        host.ip('route', 'add', 'default', 'via', '10.9.0.1')
        env.signals.clear()
        env.start_pcpd(wait_ready=False)
        objs = env.call(PATH, OM, 'GetManagedObjects')[0]
        self.assertEqual(len(objs), 1, objs)
        path, props = next((p, o[MAPPING]) for p, o in objs.items())
        self.assertEqual(props['Server'], '10.9.0.1')
        self.assertTrue(props['Persistent'])
        self.assertEqual(props['Description'], 'web')
        env.wait_state(path, 'active')
        props = env.get_all(path)
        self.assertEqual((props['ExternalAddress'], props['InternalAddress'], props['Server']),
                         (EXTERNAL, '10.9.0.2', '10.9.0.1'))
        held = env.dump()
        self.assertEqual([(m['internal'], m['internal_port']) for m in held], [('10.9.0.2', 8080)])
        # it asked with its FILTER and DESCRIPTION: 24 + 36 + 24 + (4 + 4) octets
        reqs = [r for r in env.reflog_requests() if r['opcode'] == 1 and r['internal_port'] == 8080]
        self.assertEqual(reqs[0]['len'], 92, reqs[0])
        # saved as a server mapping now, with its nonce
        wait_until(lambda: held[0]['nonce'] in slurp(state_file), 5, 'the nonce saved')
        self.assertNotIn('Direct=true', slurp(state_file))
        env.assert_alive()

    def test_restart_still_public_then_a_server_answers(self):
        """Still public after the restart, with a default route toward a PCP server that has
        not answered yet: direct again at once, then moved to the server when it answers."""
        host = self.netns('rp-host')
        router = self.netns('rp-router')
        host.ip('link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', router.name)
        host.ip('addr', 'add', GLOBAL4 + '/24', 'dev', 'wan0')
        host.ip('link', 'set', 'wan0', 'up')
        router.ip('addr', 'add', GATEWAY4 + '/24', 'dev', 'lan0')
        router.ip('link', 'set', 'lan0', 'up')
        env = self.env_in(host, use_default_routers=True)
        path = env.add_mapping('udp', 7000, 0, {'persistent': V('b', True)})
        self.assertDirect(env, path, GLOBAL4, 7000)
        wait_until(lambda: 'Direct=true' in slurp(os.path.join(env.state, 'mappings.state')), 5, 'saved')
        env.kill_pcpd()

        host.ip('route', 'add', 'default', 'via', GATEWAY4)
        env.ip, env.port = GATEWAY4, 5351
        env.start_refserver(netns=router.name)
        env.signals.clear()
        env.start_pcpd(wait_ready=False)
        objs = env.call(PATH, OM, 'GetManagedObjects')[0]
        self.assertEqual(len(objs), 1, objs)
        path = next(iter(objs))
        wait_until(lambda: env.get(path, MAPPING, 'Server') == GATEWAY4, 15, 'the mapping on the server')
        env.wait_state(path, 'active')
        self.assertEqual(env.get(path, MAPPING, 'ExternalAddress'), EXTERNAL)
        # it was direct (active, Server "") before it moved: the clients heard the move
        changed = [s[3][1] for s in env.signals_of('PropertiesChanged', path)]
        self.assertTrue(any(c.get('Server') == GATEWAY4 for c in changed), changed)
        self.assertEqual([m['internal_port'] for m in env.dump()], [7000])
        env.assert_alive()

    def test_restart_keeps_the_options_on_a_server(self):
        """Not only direct ones: a mapping on a server asks with its options again after a
        restart (the refresh with the old nonce), as it did before. It used to lose them: a
        refresh without FILTER removes the filters upstream (RFC 6887 §13.3), one without
        THIRD_PARTY is a mapping for this host instead."""
        env = self.make_env(config={'GraceSeconds': 5}, refserver_args=['--allow-third-party'])
        path = env.add_mapping('tcp', 8200, 0, {'persistent': V('b', True),
                                                'filters': V('a(sq)', [('198.18.0.0/15', 0)])})
        third = env.add_mapping('udp', 8201, 0, {'persistent': V('b', True), 'third-party': V('s', '127.0.0.9')})
        env.wait_state(path, 'active')
        env.wait_state(third, 'active')
        before = {m['internal_port']: m for m in env.dump()}
        self.assertEqual(before[8201]['internal'], '127.0.0.9')
        nonces = {port: m['nonce'] for port, m in before.items()}
        wait_until(lambda: all(n in slurp(os.path.join(env.state, 'mappings.state')) for n in nonces.values()), 5,
                   'saved')
        first = [r for r in env.reflog_requests() if r['nonce'] == nonces[8200]]
        self.assertEqual(first[0]['len'], 84, first[0])
        n = len(env.reflog_requests())
        env.kill_pcpd()
        env.start_pcpd()

        def refreshes():
            return {r['internal_port']: r for r in env.reflog_requests()[n:] if r['nonce'] in nonces.values()}
        refresh = wait_until(lambda: refreshes().keys() >= {8200, 8201} and refreshes(), 5, 'the refreshes')
        # MAP is 24 + 36 octets; FILTER 24 more, THIRD_PARTY 20
        self.assertEqual((refresh[8200]['len'], refresh[8200]['result']), (84, 0), refresh[8200])
        self.assertEqual((refresh[8201]['len'], refresh[8201]['result']), (80, 0), refresh[8201])
        # still the one upstream mapping each, the third-party one for its host
        after = {m['internal_port']: m for m in env.dump()}
        self.assertEqual(sorted(after), [8200, 8201])
        self.assertEqual(after[8201]['internal'], '127.0.0.9')
        self.assertEqual(after[8201]['nonce'], nonces[8201])
        env.assert_alive()

    def manager_changes(self, env, prop):
        """The values of prop in the manager's PropertiesChanged signals so far, in order."""
        return [s[3][1][prop] for s in env.signals_of('PropertiesChanged', PATH)
                if s[3][0] == MANAGER and prop in s[3][1]]


if __name__ == '__main__':
    preflight()
    netns_preflight()
    main()
