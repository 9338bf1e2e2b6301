#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Declared mappings (pcpd(8), DECLARED MAPPINGS): files in mappings.d next to pcpd.conf
are mapped at start, followed on reload (added, removed, changed), kept across a restart
with their nonce; bad files stop a start and change nothing on reload; DeclareMapping and
RemoveDeclaredMapping (polkit `configure`) write and remove the state directory's files;
pcpctl list shows them. Every wait is for an event with a generous cap."""

import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import (ERR, INVALID_ARGS, MANAGER, MAPPING, NOBODY, PATH, PCPCTL, PCPD, Agent,  # noqa: E402
                      BusTestCase, V, main, wait_until)

CAP = 60
CONFIGURE = 'org.freedesktop.PCP1.configure'


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


class DeclaredTest(BusTestCase):

    def declare_dir(self, env):
        d = os.path.join(env.tmp, 'mappings.d')
        os.makedirs(d, exist_ok=True)
        return d

    def reload(self, env):
        done = env.log().count('Configuration reloaded') + env.log().count('Reload failed')
        env.pcpd.send_signal(signal.SIGHUP)
        wait_until(lambda: env.log().count('Configuration reloaded') + env.log().count('Reload failed') > done,
                   CAP, 'the reload to finish')
        env.assert_alive()
        return [ln for ln in env.log().splitlines() if 'Configuration reloaded' in ln or 'Reload failed' in ln][-1]

    def declared(self, env):
        """name -> mapping path, from DeclaredMappings"""
        return {n: p for n, _f, p in env.get(PATH, MANAGER, 'DeclaredMappings')}

    def upstream(self, env):
        return {m['internal_port']: m for m in env.dump()}

    def wait_upstream(self, env, ports):
        wait_until(lambda: set(self.upstream(env)) == set(ports), CAP, f'the refserver to hold {sorted(ports)}')

    def test_declared_at_start_and_restart(self):
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        write(os.path.join(d, 'camera.conf'),
              '[Mapping]\nProtocol=tcp\nPort=8554\nExternalPort=18554\nLifetime=1800\nDescription=Camera\n')
        env.start_pcpd()
        decl = self.declared(env)
        self.assertEqual(list(decl), ['camera'])
        self.assertIn('message: 1 declared mapping in force\n', env.log())
        path = decl['camera']
        self.assertNotEqual(path, '/')
        env.wait_state(path, 'active')
        props = env.get_all(path)
        self.assertEqual(props['Declared'], 'camera')
        self.assertTrue(props['Persistent'])
        self.assertEqual(props['UID'], 0)
        self.assertEqual(props['Description'], 'Camera')
        self.assertEqual(props['Owner'], '')
        up = self.upstream(env)[8554]
        self.assertEqual(up['lifetime'], 1800)
        self.assertEqual(up['external_port'], 18554)

        # a restart keeps it: same object, same nonce, never deleted upstream
        env.kill_pcpd(signal.SIGTERM)
        mark = len(env.log())
        env.start_pcpd()
        # a declared mapping waits for no app: no grace period said
        self.assertIn(f'message: Restored 1 mapping from {env.state}\n', env.log()[mark:])
        self.assertEqual(self.declared(env), {'camera': path})
        env.wait_state(path, 'active')
        self.assertEqual(self.upstream(env)[8554]['nonce'], up['nonce'])
        self.assertFalse(any(r['lifetime'] == 0 and r['nonce'] == up['nonce'] for r in env.reflog_requests()))

    def test_reload_adds_removes_changes(self):
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        write(os.path.join(d, 'keep.conf'), '[Mapping]\nProtocol=udp\nPort=9001\n')
        write(os.path.join(d, 'gone.conf'), '[Mapping]\nProtocol=tcp\nPort=9002\n')
        write(os.path.join(d, 'change.conf'), '[Mapping]\nProtocol=tcp\nPort=9003\nDescription=before\n')
        env.start_pcpd()
        self.wait_upstream(env, {9001, 9002, 9003})
        self.assertIn('message: 3 declared mappings in force\n', env.log())
        before = self.upstream(env)
        paths = self.declared(env)

        os.unlink(os.path.join(d, 'gone.conf'))
        write(os.path.join(d, 'change.conf'), '[Mapping]\nProtocol=tcp\nPort=9004\nDescription=after\n')
        write(os.path.join(d, 'new.conf'), '[Mapping]\nProtocol=udp\nPort=9005\n')
        self.assertIn('Configuration reloaded', self.reload(env))
        self.assertIn('message: 3 declared mappings in force (1 removed, 1 changed)\n', env.log())
        self.wait_upstream(env, {9001, 9004, 9005})
        after = self.upstream(env)
        now = self.declared(env)
        self.assertEqual(sorted(now), ['change', 'keep', 'new'])
        # unchanged: the same mapping, the same nonce
        self.assertEqual(now['keep'], paths['keep'])
        self.assertEqual(after[9001]['nonce'], before[9001]['nonce'])
        # removed and changed: deleted upstream with their nonces
        deletes = {r['nonce'] for r in env.reflog_requests() if r['lifetime'] == 0}
        self.assertIn(before[9002]['nonce'], deletes)
        self.assertIn(before[9003]['nonce'], deletes)
        self.assertNotEqual(now['change'], paths['change'])
        self.assertEqual(env.get(now['change'], MAPPING, 'Description'), 'after')

    def test_retried_until_mapped(self):
        """One that cannot be made (switched off) is "/" in DeclaredMappings, said once, and
        made as soon as it can be: SetEnabled(true) asks for it before it answers, not at
        the next 10 s retry; one released comes back."""
        env = self.make_env(start=False, config={'Enabled': 'false'})
        d = self.declare_dir(env)
        write(os.path.join(d, 'later.conf'), '[Mapping]\nProtocol=udp\nPort=9060\n')
        env.start_pcpd(wait_ready=False)
        self.assertEqual(self.declared(env), {'later': '/'})
        self.assertEqual(env.log().count('Declared mapping later'), 1, env.log())
        self.assertIn('cannot map it now: Port mapping is switched off', env.log())
        # the reason's own period is not left before what follows it
        self.assertIn('(pcpctl enable turns it on); trying again every 10 s\n', env.log())
        out = subprocess.run([PCPCTL, '--no-pager', 'status'], env=env.env, capture_output=True, text=True,
                             timeout=CAP).stdout
        self.assertRegex(out, r'Declared: later \(not mapped yet\)')
        n_signals = len(env.signals)
        env.manager('SetEnabled', 'b', (True,))
        # asked for inside SetEnabled: the next call sees its mapping (no wait, no retry)
        path = self.declared(env)['later']
        self.assertNotEqual(path, '/', 'the declared mapping made by SetEnabled(true), not at the next retry')
        env.wait_state(path, 'active')
        wait_until(lambda: any(s[2] == 'PropertiesChanged' and 'DeclaredMappings' in s[3][1]
                               for s in env.signals[n_signals:]), CAP, 'PropertiesChanged of DeclaredMappings')
        # the reason was logged once, however many retries there were
        self.assertEqual(env.log().count('cannot map it now'), 1)

        # removed only with its declaration: RemoveMapping and Release are refused, saying how
        err = self.assertDBusError(ERR + 'Conflict', env.manager, 'RemoveMapping', 'o', (path,),
                                   contains='declared mapping later')
        self.assertIn(os.path.join(d, 'later.conf'), err.msg)
        self.assertDBusError(ERR + 'Conflict', env.call, path, MAPPING, 'Release', contains='reload pcpd')
        env.barrier()
        self.assertIsNone(env.removed_reason(path))
        self.assertEqual(self.declared(env)['later'], path)

    def test_failure_retried_while_declared(self):
        """A declared mapping that fails is held by nobody: its failure says it is retried
        while it is declared."""
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        write(os.path.join(d, 'busy.conf'), '[Mapping]\nProtocol=tcp\nPort=9080\n')
        env.ctl('result', 'NO_RESOURCES', '0', '0')
        env.start_pcpd(wait_ready=False)
        wait_until(lambda: 'Mapping ' in env.log() and ' failed on ' in env.log(), CAP, 'the failure logged')
        env.ctl('result', 'clear')
        lines = [ln for ln in env.log().splitlines() if ' failed on ' in ln]
        self.assertTrue(lines[0].endswith(': NO_RESOURCES; retrying while it is declared'), lines)

    def test_change_on_the_same_port(self):
        """A changed declaration of the same port: deleted upstream, then asked for again
        with what it now says (a new nonce); one mapping of the port at the router."""
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        write(os.path.join(d, 'same.conf'), '[Mapping]\nProtocol=tcp\nPort=9070\nLifetime=600\n')
        env.start_pcpd()
        self.wait_upstream(env, {9070})
        old_nonce = self.upstream(env)[9070]['nonce']
        old_path = self.declared(env)['same']
        write(os.path.join(d, 'same.conf'), '[Mapping]\nProtocol=tcp\nPort=9070\nLifetime=900\nDescription=new\n')
        self.assertIn('Configuration reloaded', self.reload(env))
        self.assertIn('message: 1 declared mapping in force (1 changed)\n', env.log())
        path = self.declared(env)['same']
        self.assertNotEqual(path, old_path)
        env.wait_state(path, 'active')
        self.assertEqual(env.get(path, MAPPING, 'Description'), 'new')
        wait_until(lambda: self.upstream(env)[9070]['nonce'] != old_nonce, CAP, 'the new request upstream')
        up = env.dump()
        self.assertEqual(len(up), 1, up)
        self.assertEqual(up[0]['lifetime'], 900)
        self.assertIn(old_nonce, {r['nonce'] for r in env.reflog_requests() if r['lifetime'] == 0})

    def test_bad_file_on_reload_changes_nothing(self):
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        write(os.path.join(d, 'a.conf'), '[Mapping]\nProtocol=tcp\nPort=9010\n')
        env.start_pcpd()
        self.wait_upstream(env, {9010})
        paths = self.declared(env)
        bad = [
            ('b.conf', '[Mapping]\nProtocol=tcp\nPort=70000\n', 'Port=70000'),
            ('b.conf', '[Mapping]\nProtocol=bogus\nPort=1\n', 'Protocol=bogus'),
            ('b.conf', '[Mapping]\nPort=1\n', 'Protocol= is missing'),
            ('b.conf', '[Mapping]\nProtocol=tcp\nPort=1\nColour=blue\n', 'unknown setting [Mapping] Colour'),
            ('b.conf', '[Mapping]\nProtocol=tcp\nPort=1\nLifetime=5\n', 'Lifetime=5'),
            ('b.conf', '[Mapping]\nProtocol=tcp\nPort=1\nThirdParty=nowhere\n', 'ThirdParty=nowhere'),
            ('b.conf', '[Mapping]\nProtocol=tcp\nPort=1\nDescription=' + 'x' * 300 + '\n', 'longer than'),
            ('b.conf', '[Other]\nProtocol=tcp\n', 'unknown section [Other]'),
            ('b.conf', '[Mapping]\nProtocol=tcp\nPort=1\n#' + 'x' * 5000 + '\n', 'larger than 4096'),
            ('b c.conf', '[Mapping]\nProtocol=tcp\nPort=1\n', 'no valid name'),
        ]
        for name, text, needle in bad:
            with self.subTest(needle=needle):
                # a valid change beside it must not be applied either
                write(os.path.join(d, 'a.conf'), '[Mapping]\nProtocol=tcp\nPort=9010\nDescription=changed\n')
                write(os.path.join(d, name), text)
                line = self.reload(env)
                self.assertIn('Reload failed', line)
                self.assertIn(name, line)
                self.assertIn(needle, line)
                self.assertEqual(self.declared(env), paths)
                self.assertEqual(env.get(paths['a'], MAPPING, 'Description'), '')
                os.unlink(os.path.join(d, name))
        self.assertEqual(set(self.upstream(env)), {9010})

    def test_too_many_files(self):
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        for i in range(65):
            write(os.path.join(d, f'm{i:02}.conf'), f'[Mapping]\nProtocol=udp\nPort={20000 + i}\n')
        r = subprocess.run([PCPD, '--config', env.write_config(), '--state-dir', env.state], env=env.env,
                           capture_output=True, text=True, timeout=CAP)
        self.assertEqual(r.returncode, 78, r.stderr)  # EX_CONFIG: no restart (pcpd(8), EXIT STATUS)
        self.assertIn('more than 64 declared mappings', r.stderr)
        self.assertIn('Bad declared mapping, not starting', r.stderr)

    def test_bad_file_at_start(self):
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        write(os.path.join(d, 'x.conf'), '[Mapping]\nProtocol=tcp\n')
        r = subprocess.run([PCPD, '--config', env.write_config(), '--state-dir', env.state], env=env.env,
                           capture_output=True, text=True, timeout=CAP)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn('x.conf: [Mapping] Port= is missing', r.stderr)

    def test_two_declarations_of_one_port(self):
        """Two files in mappings.d for one port: the first (by name) has the mapping, the
        other is not mapped, "/" in DeclaredMappings, said once as a conflict naming both
        (not a success every retry), also after a retry made the first one's mapping
        again; undeclared, the first one's port goes to the other."""
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        write(os.path.join(d, 'a.conf'), '[Mapping]\nProtocol=tcp\nPort=9090\n')
        write(os.path.join(d, 'b.conf'), '[Mapping]\nProtocol=tcp\nPort=9090\n')
        env.start_pcpd()
        self.wait_upstream(env, {9090})
        decl = self.declared(env)
        self.assertNotEqual(decl['a'], '/')
        self.assertEqual(decl['b'], '/')
        lines = [ln for ln in env.log().splitlines() if 'Declared mapping b ' in ln]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn('tcp port 9090 is declared already as a (', lines[0])
        self.assertIn(os.path.join(d, 'a.conf'), lines[0])
        self.assertIn(os.path.join(d, 'b.conf'), lines[0])
        self.assertNotIn('.;', env.log())

        # a's mapping gone (switched off and on): the retry makes it again, for a, and says
        # nothing more of b
        env.manager('SetEnabled', 'b', (False,))
        env.manager('SetEnabled', 'b', (True,))
        wait_until(lambda: self.declared(env)['a'] not in ('/', decl['a']), CAP, "a's mapping made again")
        env.wait_state(self.declared(env)['a'], 'active')
        self.assertEqual(self.declared(env)['b'], '/')
        self.assertEqual(len([ln for ln in env.log().splitlines() if 'Declared mapping b ' in ln]), 1, env.log())
        self.assertEqual(env.get(self.declared(env)['a'], MAPPING, 'Declared'), 'a')

        # a undeclared: b has the port now
        os.unlink(os.path.join(d, 'a.conf'))
        self.assertIn('Configuration reloaded', self.reload(env))
        wait_until(lambda: self.declared(env).get('b', '/') != '/', CAP, "b's mapping once a is gone")
        env.wait_state(self.declared(env)['b'], 'active')
        self.assertEqual(env.get(self.declared(env)['b'], MAPPING, 'Declared'), 'b')

    def test_first_by_name_whatever_came_first(self):
        """Two declarations of one port: the first by name has it, whatever had it before,
        and the same after a reload, a restart and SetEnabled(false) and (true). A file in
        /etc added before a run-time declaration by name takes its port at the reload, and
        one before another file by name takes that one's: each loser said as a warning
        naming both files and the mapping removed (deleted upstream). A file added after a
        run-time declaration by name waits, said naming both; DeclareMapping of a port a
        file has is a Conflict naming the file."""
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        write(os.path.join(d, 'zzz.conf'), '[Mapping]\nProtocol=udp\nPort=8800\n')
        env.start_pcpd()
        cam2 = env.manager('DeclareMapping', 'ssqqa{sv}', ('cam2', 'tcp', 8555, 0, {}))[0]
        mid = env.manager('DeclareMapping', 'ssqqa{sv}', ('mid', 'tcp', 8556, 0, {}))[0]
        zzz = self.declared(env)['zzz']
        for path in (cam2, mid, zzz):
            self.assertNotEqual(path, '/')
            env.wait_state(path, 'active')
        self.wait_upstream(env, {8555, 8556, 8800})
        before = self.upstream(env)
        runtime = os.path.join(env.state, 'mappings.d')

        # aaa before cam2 and aab before zzz by name; yyy after mid
        write(os.path.join(d, 'aaa.conf'), '[Mapping]\nProtocol=tcp\nPort=8555\n')
        write(os.path.join(d, 'aab.conf'), '[Mapping]\nProtocol=udp\nPort=8800\n')
        write(os.path.join(d, 'yyy.conf'), '[Mapping]\nProtocol=tcp\nPort=8556\n')
        mark = len(env.log())
        self.assertIn('Configuration reloaded', self.reload(env))
        holders = self.declared(env)
        self.assertEqual(holders['cam2'], '/', 'the run-time declaration after aaa.conf by name gives its port up')
        self.assertEqual(holders['zzz'], '/', 'zzz.conf gives its port to aab.conf')
        self.assertEqual(holders['yyy'], '/', 'yyy.conf waits for mid, first by name')
        self.assertEqual(holders['mid'], mid, 'the first by name keeps its mapping')
        for name in ('aaa', 'aab'):
            self.assertNotEqual(holders[name], '/', name)
            env.wait_state(holders[name], 'active')
            self.assertEqual(env.get(holders[name], MAPPING, 'Declared'), name)
        self.assertEqual(env.removed_reason(cam2), 'released')
        self.assertEqual(env.removed_reason(zzz), 'released')
        deletes = {r['nonce'] for r in env.reflog_requests() if r['lifetime'] == 0}
        self.assertIn(before[8555]['nonce'], deletes)
        self.assertIn(before[8800]['nonce'], deletes)
        self.assertNotIn(before[8556]['nonce'], deletes)
        wait_until(lambda: self.upstream(env)[8555]['nonce'] != before[8555]['nonce'], CAP, "aaa's request upstream")
        # told, naming both files (and the mapping given up), once each
        log = env.log()[mark:]
        lost = [ln for ln in log.splitlines() if 'Declared mapping cam2 ' in ln]
        self.assertEqual(len(lost), 1, log)
        self.assertIn('warning: ', lost[0])
        self.assertIn(os.path.join(runtime, 'cam2.conf'), lost[0])
        self.assertIn('declared also as aaa (' + os.path.join(d, 'aaa.conf') + '), which comes first by name',
                      lost[0])
        self.assertIn(cam2, lost[0])
        lost = [ln for ln in log.splitlines() if 'Declared mapping zzz ' in ln]
        self.assertEqual(len(lost), 1, log)
        self.assertIn('declared also as aab (' + os.path.join(d, 'aab.conf') + ')', lost[0])
        waits = [ln for ln in log.splitlines() if 'Declared mapping yyy ' in ln]
        self.assertEqual(len(waits), 1, log)
        self.assertIn('warning: ', waits[0])
        self.assertIn(os.path.join(d, 'yyy.conf'), waits[0])
        self.assertIn('tcp port 8556 is declared already as mid (' + os.path.join(runtime, 'mid.conf') + ')',
                      waits[0])
        # a port a file declares is not DeclareMapping's to give
        self.assertDBusError(ERR + 'Conflict', env.manager, 'DeclareMapping', 'ssqqa{sv}',
                             ('new', 'tcp', 8555, 0, {}), contains=os.path.join(d, 'aaa.conf'))

        # the same after a restart (the mappings restored, nothing moved) ...
        env.kill_pcpd(signal.SIGTERM)
        env.start_pcpd()
        self.assertEqual(self.declared(env), holders)
        # ... and after port mapping switched off and on (every mapping made again)
        env.manager('SetEnabled', 'b', (False,))
        env.manager('SetEnabled', 'b', (True,))
        now = self.declared(env)
        self.assertEqual({n for n, p in now.items() if p != '/'}, {'aaa', 'aab', 'mid'}, now)
        for name in ('aaa', 'aab', 'mid'):
            env.wait_state(now[name], 'active')
            self.assertEqual(env.get(now[name], MAPPING, 'Declared'), name)
        self.wait_upstream(env, {8555, 8556, 8800})

    def test_declare_port_of_another_declaration(self):
        """DeclareMapping of a port another declaration has: Conflict naming it, nothing
        changed (the declaration replaced keeps its mapping, its file, its port)."""
        env = self.make_env()
        x = env.manager('DeclareMapping', 'ssqqa{sv}', ('x', 'tcp', 9091, 0, {}))[0]
        web = env.manager('DeclareMapping', 'ssqqa{sv}', ('web', 'tcp', 9092, 0, {}))[0]
        env.wait_state(x, 'active')
        env.wait_state(web, 'active')
        saved = os.path.join(env.state, 'mappings.d', 'web.conf')
        before = read(saved)
        nonce = self.upstream(env)[9092]['nonce']
        self.assertDBusError(ERR + 'Conflict', env.manager, 'DeclareMapping', 'ssqqa{sv}',
                             ('web', 'tcp', 9091, 0, {}), contains="as 'x'")
        self.assertDBusError(ERR + 'Conflict', env.manager, 'DeclareMapping', 'ssqqa{sv}',
                             ('new', 'tcp', 9091, 0, {}), contains='pcpctl undeclare x first')
        self.assertEqual(self.declared(env), {'x': x, 'web': web})
        self.assertEqual(read(saved), before)
        self.assertFalse(os.path.exists(os.path.join(env.state, 'mappings.d', 'new.conf')))
        self.assertEqual(self.upstream(env)[9092]['nonce'], nonce)
        self.assertEqual(env.get(x, MAPPING, 'Declared'), 'x')
        # another protocol of that port is another mapping
        other = env.manager('DeclareMapping', 'ssqqa{sv}', ('udp', 'udp', 9091, 0, {}))[0]
        env.wait_state(other, 'active')

        # pcpctl declare says so, rc 1
        r = subprocess.run([PCPCTL, 'declare', 'web', 'tcp', '9091'], env=env.env, capture_output=True, text=True,
                           timeout=CAP)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("'x'", r.stderr)
        self.assertEqual(self.declared(env)['web'], web)

    def test_family_left_open_and_a_family(self):
        """A declaration without a family is of the family it would be mapped in (IPv4
        here: the server is an IPv4 one), so it does not clash with one of the port for
        IPv6, over the bus as in files; one for IPv4, or another without a family, does,
        and the Conflict says for which family and why."""
        env = self.make_env(start=False)
        d = self.declare_dir(env)
        write(os.path.join(d, 'a6.conf'), '[Mapping]\nProtocol=tcp\nPort=9095\nFamily=ipv6\n')
        write(os.path.join(d, 'b.conf'), '[Mapping]\nProtocol=tcp\nPort=9095\n')
        env.start_pcpd()
        self.wait_upstream(env, {9095})
        env.wait_state(self.declared(env)['b'], 'active')
        self.assertEqual(env.get(self.declared(env)['b'], MAPPING, 'Family'), 'ipv4')
        self.assertNotIn('tcp port 9095 is declared already', env.log())

        # over the bus: an IPv6 declaration first, then one without a family for its port
        v6 = env.manager('DeclareMapping', 'ssqqa{sv}', ('v6', 'tcp', 9096, 0, {'family': V('s', 'ipv6')}))[0]
        anyf = env.manager('DeclareMapping', 'ssqqa{sv}', ('any', 'tcp', 9096, 0, {}))[0]
        self.assertNotEqual(anyf, '/')
        env.wait_state(anyf, 'active')
        self.assertEqual(env.get(anyf, MAPPING, 'Family'), 'ipv4')
        self.assertEqual(self.declared(env)['v6'], v6)
        self.wait_upstream(env, {9095, 9096})
        # the port for IPv4 is any's now; another without a family would be IPv4 too
        self.assertDBusError(ERR + 'Conflict', env.manager, 'DeclareMapping', 'ssqqa{sv}',
                             ('v4', 'tcp', 9096, 0, {'family': V('s', 'ipv4')}),
                             contains="tcp port 9096 is declared already for IPv4, as 'any'")
        err = self.assertDBusError(ERR + 'Conflict', env.manager, 'DeclareMapping', 'ssqqa{sv}',
                                   ('any2', 'tcp', 9096, 0, {}), contains="as 'any'")
        self.assertIn('without Family= is mapped over IPv4 here now', err.msg)
        self.assertEqual(sorted(self.declared(env)), ['a6', 'any', 'b', 'v6'])
        for name in ('v4', 'any2'):
            self.assertFalse(os.path.exists(os.path.join(env.state, 'mappings.d', name + '.conf')))

    def test_declare_over_dbus(self):
        env = self.make_env(start=False, polkit=True)
        d = self.declare_dir(env)
        write(os.path.join(d, 'fixed.conf'), '[Mapping]\nProtocol=tcp\nPort=9020\n')
        env.start_pcpd()
        path = env.manager('DeclareMapping', 'ssqqa{sv}',
                           ('server', 'tcp', 9021, 0, {'lifetime': V('u', 1200), 'description': V('s', ' home ;x')}))[0]
        env.wait_state(path, 'active')
        self.assertEqual(env.get(path, MAPPING, 'Declared'), 'server')
        self.assertEqual(env.get(path, MAPPING, 'Description'), ' home ;x')
        saved = os.path.join(env.state, 'mappings.d', 'server.conf')
        self.assertTrue(os.path.exists(saved))
        self.assertEqual(sorted(self.declared(env)), ['fixed', 'server'])
        # the saved file is a declaration like the ones in /etc: a restart brings it back
        env.kill_pcpd(signal.SIGTERM)
        env.start_pcpd()
        self.assertEqual(self.declared(env)['server'], path)
        self.assertEqual(env.get(path, MAPPING, 'Description'), ' home ;x')

        # the administrator's files are not pcpd's to change
        self.assertDBusError(ERR + 'Conflict', env.manager, 'DeclareMapping', 'ssqqa{sv}',
                             ('fixed', 'tcp', 9022, 0, {}), contains='fixed.conf')
        self.assertDBusError(ERR + 'Conflict', env.manager, 'RemoveDeclaredMapping', 's', ('fixed',))
        self.assertDBusError(ERR + 'NotFound', env.manager, 'RemoveDeclaredMapping', 's', ('nothing',))
        for args, needle in [(('../x', 'tcp', 1, 0, {}), '../x'),
                             (('ok', 'tcp', 0, 0, {}), 'port 0'),
                             (('ok', 'tcp', 1, 0, {'persistent': V('b', True)}), 'only the options'),
                             (('ok', 'tcp', 1, 0, {'lifetime': V('u', 700000)}), 'lifetime 700000')]:
            with self.subTest(args=args):
                self.assertDBusError(INVALID_ARGS, env.manager, 'DeclareMapping', 'ssqqa{sv}', args,
                                     contains=needle)

        # an unprivileged caller needs `configure`
        nobody = Agent(env, uid=NOBODY)
        env.polkit_call('SetAllowed', 'as', [])
        self.assertAgentError(ERR + 'NotAuthorized', nobody.call(
            'DeclareMapping', 'ssqqa{sv}', "('evil', 'tcp', uint16 9030, uint16 0, @a{sv} {})"))
        self.assertAgentError(ERR + 'NotAuthorized', nobody.call('RemoveDeclaredMapping', 's', "('server',)"))
        self.assertNotIn('evil', self.declared(env))
        env.polkit_call('SetAllowed', 'as', [CONFIGURE])
        ans = nobody.call('DeclareMapping', 'ssqqa{sv}', "('allowed', 'udp', uint16 9031, uint16 0, @a{sv} {})")
        self.assertIn('ok', ans, ans)
        self.assertIn('allowed', self.declared(env))

        # pcpctl status lists the declarations, --json with their files
        out = subprocess.run([PCPCTL, '--no-pager', 'status'], env=env.env, capture_output=True, text=True,
                             timeout=CAP).stdout
        ids = {n: p.rsplit('/', 1)[1] for n, p in self.declared(env).items()}
        self.assertIn(f"Declared: allowed (mapping {ids['allowed']}), fixed (mapping {ids['fixed']}), "
                      f"server (mapping {ids['server']})", out)
        doc = json.loads(subprocess.run([PCPCTL, '--json=short', 'status'], env=env.env, capture_output=True,
                                        text=True, timeout=CAP).stdout)
        self.assertEqual([(x['Name'], x['File'], x['Mapping']) for x in doc['DeclaredMappings']],
                         [tuple(x) for x in env.get(PATH, MANAGER, 'DeclaredMappings')])
        self.assertEqual(doc['DeclaredMappings'][1]['File'], os.path.join(d, 'fixed.conf'))

        # pcpctl list shows which are declared
        out = subprocess.run([PCPCTL, 'list', '--no-pager'], env=env.env, capture_output=True, text=True,
                             timeout=CAP).stdout
        self.assertIn('declared:server', out)

        # pcpctl declare / undeclare
        r = subprocess.run([PCPCTL, 'declare', 'cli', 'udp', '9040', '--description=from pcpctl', '--lifetime=600'],
                           env=env.env, capture_output=True, text=True, timeout=CAP)
        self.assertEqual(r.returncode, 0, r.stderr)
        cli = self.declared(env)['cli']
        # only requested, or active already if the server answered before pcpctl read it
        self.assertRegex(r.stdout, rf'^Declared cli: mapping {cli.rsplit("/", 1)[1]}'
                                   r'( \(requested; pcpctl declare --wait follows it\))?\.\n$')
        self.assertEqual(env.get(cli, MAPPING, 'Description'), 'from pcpctl')
        self.assertIn('Description=from pcpctl', open(os.path.join(env.state, 'mappings.d', 'cli.conf')).read())
        r = subprocess.run([PCPCTL, 'undeclare', 'fixed'], env=env.env, capture_output=True, text=True, timeout=CAP)
        self.assertEqual(r.returncode, 1)
        self.assertIn('fixed.conf', r.stderr)
        r = subprocess.run([PCPCTL, 'undeclare', 'cli'], env=env.env, capture_output=True, text=True, timeout=CAP)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('cli', self.declared(env))

        env.manager('RemoveDeclaredMapping', 's', ('server',))
        self.assertFalse(os.path.exists(saved))
        self.assertNotIn('server', self.declared(env))
        wait_until(lambda: 9021 not in self.upstream(env), CAP, 'the declared mapping deleted upstream')


if __name__ == '__main__':
    main()
