#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pending polkit checks are limited per user and in all, below the bus's own limit, so that
one user cannot lock every other caller out: on a bus with dbus-daemon's default
max_replies_per_connection (128, never timed out), a user whose interactive checks hang
(an authentication agent that never answers) gets org.freedesktop.PCP1.Error.TooManyPending
past 16 of them, while other users, root and calls that need no polkit are served; when the
user leaves, pcpd cancels its checks (CancelCheckAuthorization), polkit answers them, and
everything works as before. A check polkit does not answer in time is given up, answered
NotAuthorized and cancelled. Uses tests/bus/polkitd-mock.py."""

import json
import os
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import (ERR, MANAGER, MAPPING, NOBODY, PATH, POLKIT_MOCK, PYTHON, VALGRIND, Agent,  # noqa: E402
                      BusTestCase, V, main, slurp, wait_until)

MAP = 'org.freedesktop.PCP1.map'
CONFIGURE = 'org.freedesktop.PCP1.configure'
TOO_MANY = ERR + 'TooManyPending'
PER_UID = 16  # PCPD_POLKIT_MAX_PER_UID
ALL = 64      # PCPD_POLKIT_MAX
# users other than nobody: daemon, bin, sys, sync (they exist on every Debian system)
OTHERS = [1, 2, 3, 4]
# a clean stop with nothing to delete takes well under a second; the cap is for a loaded
# machine and valgrind
STOP_CAP = 60 if not VALGRIND else 300
INVALID_ARGS = 'org.freedesktop.DBus.Error.InvalidArgs'
# AddMapping calls whose options name 'lifetime' a million times (28 MB each), sent at once
# with ALLOW_INTERACTIVE_AUTHORIZATION, as NOBODY: the attack parks each whole message while
# polkit is asked. pcpd holds a few MB; the 16 messages, were they kept, 450 MB.
BIG_ENTRIES = 1000000
RSS_LIMIT_KB = 64 * 1024
# a client of its own (agent.py takes GVariant text: 28 MB of it per call would be slow):
# argv BUS_ADDRESS N_CALLS ENTRIES; prints one JSON line per answer
BIG_CLIENT = r"""
import json, sys
from gi.repository import Gio, GLib
address, n, entries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = Gio.DBusConnection.new_for_address_sync(
    address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
    None, None)
e = GLib.Variant.new_dict_entry(GLib.Variant('s', 'lifetime'), GLib.Variant('v', GLib.Variant('u', 600)))
opts = GLib.Variant.new_array(None, [e] * entries)
left = [n]
loop = GLib.MainLoop()
def done(conn, res, i):
    try:
        answer = {'ok': conn.call_finish(res).unpack()}
    except GLib.Error as err:
        answer = {'error': Gio.DBusError.get_remote_error(err), 'msg': err.message}
    print(json.dumps(answer), flush=True)
    left[0] -= 1
    if left[0] == 0:
        loop.quit()
for i in range(n):
    args = GLib.Variant.new_tuple(GLib.Variant('s', 'tcp'), GLib.Variant('q', 80), GLib.Variant('q', 0), opts)
    c.call('org.freedesktop.PCP1', '/org/freedesktop/PCP1', 'org.freedesktop.PCP1.Manager', 'AddMapping', args,
           None, Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION, 600 * 1000, None, done, i)
print(json.dumps({'sent': n}), flush=True)
loop.run()
"""


def add_args(first_port, n):
    """AddMapping arguments for n ports nobody owns: map-privileged is asked for."""
    return [f"('tcp', uint16 {first_port + i}, uint16 0, @a{{sv}} {{}})" for i in range(n)]


class PolkitLimitsTest(BusTestCase):
    # the private bus keeps dbus-daemon's defaults for max_replies_per_connection (128)
    # and reply_timeout (none): see tests/data/test-system-bus.conf.in
    env_kwargs = {'polkit': True, 'polkit_template': POLKIT_MOCK,
                  'config': {'MaxMappingsPerUser': 64, 'MaxMappings': 4096},
                  'refserver_args': ['--max-mappings', '4096']}

    def setUp(self):
        self.env = self.make_env()
        self.env.polkit_call('SetAllowed', 'as', [MAP])
        self.env.polkit_call('SimulateHangInteractive', 'b', True)

    def hanging(self):
        return self.env.polkit_call('CountHangingCalls')[0]

    def flood(self, agent, tag, first_port, n, conns=1):
        """n interactive AddMapping calls that wait for polkit, spread over conns connections
        (a caller's own connection may wait for at most 128 replies, like pcpd's)."""
        per = (n + conns - 1) // conns
        for c in range(conns):
            k = min(per, n - c * per)
            agent.req(op='fire', tag=tag, conn=c, method='AddMapping', sig='sqqa{sv}',
                      args=add_args(first_port + c * per, k), interactive=True, timeout=600)

    def collect(self, agent, tag, n, timeout=60):
        got = agent.req(op='collect', tag=tag, n=n, timeout=timeout)['ok']
        self.assertGreaterEqual(len(got), n, f'waited {timeout}s for {n} answers to the calls fired as {tag!r}, '
                                f'got {len(got)}: {got[:3]}')
        return got

    def own_mapping(self, agent, proto='tcp'):
        """A mapping of a port the agent owns (listening, wildcard): polkit's map, answered."""
        port = agent.req(op='bind', proto=proto, port=0)['ok']
        ans = agent.add_mapping(proto, port)
        self.assertIn('ok', ans, f'uid-{agent.pid} {proto} {port}: {ans}')
        return ans['ok'][0]

    def root_flood(self, n_conns=10, per_conn=100, first_port=20000):
        # (below the ephemeral ports, which the other callers' sockets get)
        """Calls that need no polkit answer: never refused for being many, here 1,000 in
        flight at once (10 connections, 100 each: a connection may wait for 128)."""
        root = Agent(self.env)
        root.req(op='connect', n=n_conns - 1)
        for c in range(n_conns):
            args = [f"('udp', uint16 {first_port + c * per_conn + i}, uint16 0, @a{{sv}} {{}})"
                    for i in range(per_conn)]
            root.req(op='fire', tag='root', conn=c, method='AddMapping', sig='sqqa{sv}', args=args)
        answers = self.collect(root, 'root', n_conns * per_conn, timeout=120)
        failures = [r for r in answers if 'ok' not in r]
        self.assertEqual(len(failures), 0, f'{len(failures)} of {n_conns * per_conn} calls of root refused, the '
                         f'first: {failures[:1]}')
        return root

    def test_one_user_cannot_lock_out_the_others(self):
        env = self.env
        a = Agent(env, uid=NOBODY)
        a.req(op='connect', n=1)
        # 150 interactive calls that hang: more than the bus lets pcpd wait for
        self.flood(a, 'flood', 30000, 150, conns=2)
        refused = self.collect(a, 'flood', 150 - PER_UID)
        self.assertEqual({r.get('error') for r in refused}, {TOO_MANY}, refused[:3])
        self.assertIn(str(PER_UID), refused[0]['msg'])
        self.assertIn('polkit', refused[0]['msg'])
        # exactly the first 16 reached polkit and wait there
        wait_until(lambda: self.hanging() == PER_UID, 20, f'{PER_UID} checks hanging in polkit')
        self.assertEqual(env.polkit_call('CountChecks')[0], PER_UID)

        # another user is served (polkit answers non-interactive checks)
        b = Agent(env, uid=OTHERS[0])
        paths = [self.own_mapping(b, proto) for proto in ('tcp', 'udp', 'tcp')]
        for p in paths:
            env.wait_state(p, 'active')
            self.assertEqual(env.get(p, MAPPING, 'UID'), OTHERS[0])
        # ... and so is root, many at once
        self.root_flood()
        # the other user's own mapping: released without polkit
        self.assertEqual(b.call('Release', path=paths[0], iface=MAPPING), {'ok': []})
        # still nothing of the flooding user's
        self.assertEqual(self.hanging(), PER_UID)
        self.assertEqual(len(a.req(op='collect', tag='flood', n=0)['ok']), 150 - PER_UID)

        # the flooding user leaves: pcpd cancels its checks, polkit answers them
        a.kill()
        wait_until(lambda: len(env.polkit_call('GetCancelled')[0]) == PER_UID, 20,
                   f'{PER_UID} CancelCheckAuthorization calls')
        self.assertEqual(self.hanging(), 0)
        # ... and that user has all 16 again: 16 more reach polkit, the 17th is refused
        a2 = Agent(env, uid=NOBODY)
        self.flood(a2, 'again', 31000, PER_UID + 1)
        first = self.collect(a2, 'again', 1)
        self.assertEqual(first[0].get('error'), TOO_MANY, first)
        wait_until(lambda: self.hanging() == PER_UID, 20, f'{PER_UID} new checks hanging in polkit')
        # polkit answers them (no: the ports are nobody's own and map-privileged is not allowed)
        env.polkit_call('ReleaseHangingCalls')
        answers = self.collect(a2, 'again', PER_UID + 1)
        errors = sorted(r.get('error') for r in answers)
        self.assertEqual(errors, [ERR + 'PortNotOwned'] * PER_UID + [TOO_MANY], answers)
        # everything works as before
        p = self.own_mapping(a2)
        env.wait_state(p, 'active')
        env.polkit_call('SimulateHangInteractive', 'b', False)
        p = a2.req(op='bind', proto='udp', port=0)['ok']
        ans = a2.req(op='call', method='AddMapping', sig='sqqa{sv}', args=f"('udp', uint16 {p}, uint16 0, "
                     "@a{sv} {})", interactive=True)
        self.assertIn('ok', ans, ans)
        env.assert_alive()

    def test_all_users_together(self):
        """At most 64 checks wait for all users together: a fifth user is refused with the
        same error then, but still served where no polkit answer is needed."""
        env = self.env
        e = Agent(env, uid=NOBODY)
        held = self.own_mapping(e)
        floods = []
        for i, uid in enumerate(OTHERS):
            ag = Agent(env, uid=uid)
            self.flood(ag, 'fill', 32000 + 100 * i, PER_UID)
            floods.append(ag)
        wait_until(lambda: self.hanging() == ALL, 30, f'{ALL} checks hanging in polkit')
        ans = e.add_mapping('tcp', 33000)
        self.assertAgentError(TOO_MANY, ans, contains=str(ALL))
        ans = e.req(op='add_for_socket', sock=e.req(op='bind', proto='udp', port=0)['ok'])
        self.assertAgentError(TOO_MANY, ans)
        # no polkit answer needed: the user's own mapping, root's calls
        self.assertEqual(e.call('Release', path=held, iface=MAPPING), {'ok': []})
        wait_until(lambda: env.removed_reason(held) == 'released', 10, 'the mapping released')
        self.root_flood()
        for ag in floods:
            self.assertEqual(ag.req(op='collect', tag='fill', n=0)['ok'], [], 'none of them answered yet')
        env.polkit_call('ReleaseHangingCalls')
        for ag in floods:
            self.collect(ag, 'fill', PER_UID)
        wait_until(lambda: self.hanging() == 0, 10, 'no check hanging')
        p = self.own_mapping(e)
        env.wait_state(p, 'active')
        env.assert_alive()

    def test_many_calls_without_polkit(self):
        """1,000 calls in flight that need no polkit answer: none refused."""
        self.root_flood()
        self.assertEqual(self.env.get(PATH, MANAGER, 'MappingCount'), 1000)
        self.assertEqual(self.env.polkit_call('CountChecks')[0], 0)

    def test_unanswered_check_is_cancelled(self):
        """polkit not answering at all (not an interactive dialog): after 25 s pcpd gives up,
        answers NotAuthorized and cancels the check, which frees its place."""
        env = self.env
        env.polkit_call('SimulateHangActions', 'as', [CONFIGURE])
        n = Agent(env, uid=NOBODY)
        n.req(op='fire', tag='hang', method='SetEnabled', sig='b', args=['(false,)'], timeout=600)
        wait_until(lambda: self.hanging() == 1, 10, 'the check hanging in polkit')
        ans = self.collect(n, 'hang', 1, timeout=120)[0]
        self.assertAgentError(ERR + 'NotAuthorized', ans, contains='25 seconds')
        wait_until(lambda: len(env.polkit_call('GetCancelled')[0]) == 1, 10, 'CancelCheckAuthorization')
        self.assertEqual(self.hanging(), 0)
        self.assertEqual(env.get(PATH, MANAGER, 'Enabled'), True)
        env.assert_alive()

    def test_revoke_waiting_for_polkit_when_pcpd_stops(self):
        """RevokeApp is let through while pcpd stops (it only removes mappings), so one can
        still be waiting for polkit when the stop ends: it ends with the manager's other
        calls, before the manager is freed (its check cancelled, no answer from pcpd, which
        leaves the bus). pcpd exits with status 0 (under valgrind: no error), and the mapping
        the revoke never reached is in its last snapshot."""
        env = self.env
        app = 'org.example.RevokedAtStop'
        path = env.add_mapping('udp', 40123, options={'app-id': V('s', app)})
        env.wait_state(path, 'active')
        self.assertEqual(env.get(path, MAPPING, 'AppId'), app)
        n = Agent(env, uid=NOBODY)
        n.req(op='fire', tag='revoke', method='RevokeApp', sig='s', args=[f"('{app}',)"], interactive=True,
              timeout=600)
        wait_until(lambda: self.hanging() == 1, 20, 'the RevokeApp check hanging in polkit')
        env.pcpd.send_signal(signal.SIGTERM)
        try:
            rc = env.pcpd.wait(timeout=STOP_CAP)
        except subprocess.TimeoutExpired:
            self.fail(f'pcpd did not stop within {STOP_CAP} s of SIGTERM:\n{env.log()[-3000:]}')
        self.assertEqual(rc, 0, f'pcpd stopping with a RevokeApp waiting for polkit: status {rc}:\n'
                         f'{env.log()[-3000:]}')
        wait_until(lambda: len(env.polkit_call('GetCancelled')[0]) == 1, 20, 'CancelCheckAuthorization at the stop')
        ans = self.collect(n, 'revoke', 1)[0]
        self.assertNotIn('ok', ans, f'RevokeApp answered by a pcpd that had stopped: {ans}')
        saved = slurp(os.path.join(env.state, 'mappings.state'))
        self.assertIn(f'AppId={app}\n', saved, f'the mapping in the last snapshot:\n{saved}')

    def pcpd_sanitized(self):
        """pcpd built with AddressSanitizer: freed memory stays resident in its quarantine
        (up to 256 MB), so RSS tells nothing of what pcpd keeps (CI saw 100 MB at once)."""
        with open(f'/proc/{self.env.pcpd.pid}/maps') as f:
            return 'libasan' in f.read()

    def pcpd_status_kb(self, field):
        """VmRSS, VmHWM (kB) of pcpd, from /proc/PID/status."""
        with open(f'/proc/{self.env.pcpd.pid}/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
        raise AssertionError(f'no {field} in /proc/{self.env.pcpd.pid}/status')

    def test_huge_options_refused_before_polkit(self):
        """An options dictionary of a million entries (one option given again and again)
        is refused with InvalidArgs at once, before polkit is asked: the message is not
        held while the check waits (polkit hangs here, and is never asked), and pcpd's
        memory stays small while 16 of them come from nobody (RSS not judged under ASan or
        valgrind: see pcpd_sanitized(); the refusals and polkit's count still are)."""
        env = self.env
        judge_rss = not VALGRIND and not self.pcpd_sanitized()
        rss_before = self.pcpd_status_kb('VmRSS')
        client = subprocess.Popen([PYTHON, '-c', BIG_CLIENT, env.address, str(PER_UID), str(BIG_ENTRIES)],
                                  stdout=subprocess.PIPE, text=True, user=NOBODY, group=NOBODY, extra_groups=[])
        env.procs.append(client)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(json.loads(x) for x in client.stdout), daemon=True)
        reader.start()
        most = [rss_before]

        def answered_or_grown():
            most[0] = max(most[0], self.pcpd_status_kb('VmRSS'))
            if most[0] > RSS_LIMIT_KB and judge_rss:
                return True
            return len(lines) == PER_UID + 1 or client.poll() is not None

        wait_until(answered_or_grown, 120, f'{PER_UID} answers to AddMapping calls with {BIG_ENTRIES} options each, '
                   f'or pcpd above {RSS_LIMIT_KB} kB')
        if judge_rss:
            self.assertLessEqual(most[0], RSS_LIMIT_KB,
                                 f'pcpd VmRSS {most[0]} kB (from {rss_before} kB) with '
                                 f'{sum("sent" not in x for x in lines)} of {PER_UID} calls answered: the messages '
                                 f'are kept')
        reader.join(timeout=60)
        answers = [a for a in lines if 'sent' not in a]
        self.assertEqual(len(answers), PER_UID, f'answers: {answers[:3]}')
        for a in answers:
            self.assertEqual(a.get('error'), INVALID_ARGS, a)
            self.assertIn("Option 'lifetime' is given twice.", a.get('msg'), a)
        self.assertEqual(env.polkit_call('CountChecks')[0], 0, 'polkit asked for refused calls')
        self.assertEqual(self.hanging(), 0)
        if judge_rss:
            self.assertLessEqual(self.pcpd_status_kb('VmRSS'), RSS_LIMIT_KB)
        print(f'pcpd VmRSS {rss_before} kB before, at most {most[0]} kB sampled, VmHWM '
              f'{self.pcpd_status_kb("VmHWM")} kB', file=sys.stderr)
        # a small one, from the agent: the same sentence
        a = Agent(env, uid=NOBODY)
        ans = a.add_mapping('tcp', 80, options="{'lifetime': <uint32 600>, 'description': <'x'>, "
                            "'lifetime': <uint32 900>}")
        self.assertAgentError(INVALID_ARGS, ans, contains="Option 'lifetime' is given twice.")
        self.assertEqual(env.polkit_call('CountChecks')[0], 0)
        env.assert_alive()


if __name__ == '__main__':
    main()
