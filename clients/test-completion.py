#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpctl's shell completion, run by the shells themselves: bash calls _pcpctl as its
completion machinery does (COMP_WORDS, COMP_CWORD) and prints COMPREPLY; zsh completes
on a pseudo-terminal, with compinit, as a user pressing Tab. Mapping ids and app ids come
from a live (fake) pcpd on a private bus, through the pcpctl under test.

  test-completion.py PATH/TO/pcpctl PATH/TO/fake-pcpd.py SOURCE_ROOT

Exit 77 (skipped) without dbus-daemon, python3-dbus or zsh, except in CI (CI=true).
"""

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

CONFIG = '''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
'''

VERBS = ['declare', 'disable', 'enable', 'external-address', 'list', 'map', 'monitor', 'peer', 'release', 'revoke',
         'status', 'undeclare']
ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\x07|\r')

passed = failed = 0


def check(ok, what, detail=''):
    global passed, failed
    if ok:
        passed += 1
        print(f'ok   {what}')
    else:
        failed += 1
        print(f'FAIL {what}\n     {detail}')


def skip_or_fail(why):
    if os.environ.get('CI') == 'true':
        print(f'FAIL (CI must not skip): {why}')
        sys.exit(1)
    print(f'SKIP: {why}')
    sys.exit(77)


def bash_completions(script, env, lines):
    """{words: COMPREPLY} for each line of words (the last one is being completed)."""
    calls = []
    for words in lines:
        quoted = ' '.join("'" + w.replace("'", "'\\''") + "'" for w in words)
        calls.append(f't {quoted}')
    program = f'''
set -u
source '{script}'
complete -p pcpctl
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMPREPLY=(); _pcpctl
      printf '%s\\n' "${{COMPREPLY[*]:-}}"; }}
''' + '\n'.join(calls) + '\n'
    r = subprocess.run(['bash', '--norc', '--noprofile', '-c', program], capture_output=True, text=True, env=env,
                       timeout=60)
    check(r.returncode == 0 and r.stderr == '', 'bash ran the completion without errors', r.stderr)
    out = r.stdout.splitlines()
    check(out[:1] == ['complete -F _pcpctl pcpctl'], 'the script registers _pcpctl for pcpctl', out[:1])
    return {tuple(w): sorted(o.split()) for w, o in zip(lines, out[1:])}


class Zsh:
    """An interactive zsh on a pseudo-terminal with compinit and our _pcpctl."""

    def __init__(self, comp_dir, env, home):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(shutil.which('zsh'), ['zsh', '-f', '-i'],
                      dict(env, TERM='dumb', HOME=home, ZDOTDIR=home, COLUMNS='200', LINES='100'))
        self.send(f"fpath=('{comp_dir}' $fpath); autoload -Uz compinit; compinit -u -D; "
                  "zstyle ':completion:*' list-separator '--'; LISTMAX=0; PROMPT='P> '; print READY\n")
        self.read_until('READY\r\n')
        self.read_until('P> ')

    def send(self, s):
        os.write(self.fd, s.encode())

    def read_until(self, marker, timeout=20):
        buf = ''
        end = time.monotonic() + timeout
        while marker not in buf and time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    buf += os.read(self.fd, 65536).decode('utf-8', 'replace')
                except OSError:
                    break
        return buf

    def tab(self, line, expect):
        """Types line and Tab, returns what zsh printed until expect; the line stays."""
        self.send(line + '\t')
        return ANSI.sub('', self.read_until(expect, 20))

    def complete(self, line, expect):
        """Types line and Tab, returns what zsh printed until expect (a word it should
        list), then clears the line."""
        out = self.tab(line, expect)
        self.send('\x15')  # ^U: an empty line again
        self.read_until('P> ', 1)
        return out

    def close(self):
        self.send('exit\n')
        try:
            os.waitpid(self.pid, 0)
        finally:
            os.close(self.fd)


def listed(out):
    """The words zsh listed (one per line, "word -- description" or bare words)."""
    words = set()
    for line in out.split('\n'):
        line = line.strip()
        if not line or line.startswith('P>'):
            continue
        words.update(w for w in re.split(r'\s+--\s+.*$|\s+', line) if w)
    return words


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    pcpctl, fake, src = sys.argv[1:]
    try:
        import dbus  # noqa: F401
        from gi.repository import GLib  # noqa: F401
    except ImportError as e:
        skip_or_fail(f'python3-dbus or python3-gi: {e}')
    if shutil.which('dbus-daemon') is None:
        skip_or_fail('dbus-daemon is not installed')

    tmp = tempfile.mkdtemp(prefix='pcpctl-completion-')
    with open(os.path.join(tmp, 'bus.conf'), 'w') as f:
        f.write(CONFIG.format(socket=os.path.join(tmp, 'bus')))
    bus = subprocess.Popen(['dbus-daemon', f'--config-file={tmp}/bus.conf', '--nofork', '--print-address'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    service = None
    try:
        address = bus.stdout.readline().strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(('BASH_', 'COMP_', 'ZDOTDIR'))}
        # the pcpctl under test is the one the completion runs
        env.update(LC_ALL='C.UTF-8', DBUS_SYSTEM_BUS_ADDRESS=address,
                   PATH=os.path.dirname(os.path.abspath(pcpctl)) + os.pathsep + env.get('PATH', ''))
        service = subprocess.Popen([sys.executable, fake, address, os.path.join(tmp, 'removed.log')],
                                   stdout=subprocess.PIPE, text=True)
        if service.stdout.readline().strip() != 'ready':
            print('FAIL: the fake daemon did not start')
            return 1
        ids = []
        for port in ('8443', '8444'):
            r = subprocess.run([pcpctl, '--json=short', 'map', 'tcp', port, '--persistent'], capture_output=True,
                               text=True, env=env, timeout=30)
            ids.append(re.search(r'"Id":(\d+)', r.stdout).group(1))
        interfaces = sorted(os.listdir('/sys/class/net'))
        # declarations: "cam" by pcpctl declare (not mapped yet: in DeclaredMappings, on no
        # mapping), "web" by a file in /etc/pcpd/mappings.d (undeclare cannot remove it)
        r = subprocess.run([pcpctl, 'declare', 'cam', 'tcp', '554'], capture_output=True, text=True, env=env,
                           timeout=30)
        check(r.returncode == 0 and 'cannot be mapped yet' in r.stdout, 'fake: cam declared, not mapped',
              r.stdout + r.stderr)
        r = subprocess.run(['dbus-send', '--system', '--print-reply', '--dest=org.freedesktop.PCP1',
                            '/org/freedesktop/PCP1', 'org.freedesktop.PCP1.Test.DeclareInEtc', 'string:web'],
                           capture_output=True, text=True, env=env, timeout=30)
        check(r.returncode == 0, 'fake: web declared in /etc/pcpd/mappings.d', r.stderr)
        # declarations with a mapping, which release cannot remove (pcpd refuses: it goes with
        # its declaration): "tv" by pcpctl declare; "demoetc" and "demort" of a pcpd run with
        # --config DIR/pcpd.conf --state-dir DIR/state (the demo), DIR/mappings.d the
        # administrator's (undeclare cannot remove it), DIR/state/mappings.d pcpd's own
        demo = os.path.join(tmp, 'demo')
        os.makedirs(os.path.join(demo, 'state'))
        with open(os.path.join(demo, 'pcpd.conf'), 'w') as f:
            f.write('[PCP]\n')

        def test_call(method, *args):
            r = subprocess.run(['dbus-send', '--system', '--print-reply', '--dest=org.freedesktop.PCP1',
                                '/org/freedesktop/PCP1', f'org.freedesktop.PCP1.Test.{method}'] + list(args),
                               capture_output=True, text=True, env=env, timeout=30)
            check(r.returncode == 0, f'fake: {method}{tuple(args)}', r.stderr)

        test_call('MapDeclared', 'boolean:true')
        r = subprocess.run([pcpctl, 'declare', 'tv', 'tcp', '8445'], capture_output=True, text=True, env=env,
                           timeout=30)
        check(r.returncode == 0, 'fake: tv declared, with a mapping', r.stdout + r.stderr)
        test_call('DeclareIn', 'string:demoetc', f'string:{demo}/mappings.d/demoetc.conf', 'string:tcp',
                  'uint16:8446')
        test_call('DeclareIn', 'string:demort', f'string:{demo}/state/mappings.d/demort.conf', 'string:tcp',
                  'uint16:8447')
        r = subprocess.run([pcpctl, '--json=short', 'list'], capture_output=True, text=True, env=env, timeout=30)
        declared_ids = sorted(str(m['Id']) for m in json.loads(r.stdout) if m.get('Declared'))
        check(len(declared_ids) == 3 and not set(declared_ids) & set(ids), 'fake: three declared mappings',
              r.stdout)

        # ---- bash ----
        script = os.path.join(src, 'shell-completion', 'bash', 'pcpctl')
        cases = {
            ('pcpctl', ''): VERBS,
            ('pcpctl', 'm'): ['map', 'monitor'],
            ('pcpctl', 're'): ['release', 'revoke'],
            ('pcpctl', 'map', ''): ['dccp', 'sctp', 'tcp', 'udp'],
            ('pcpctl', 'map', 'tcp', ''): [],
            ('pcpctl', 'peer', 'u'): ['udp'],
            ('pcpctl', 'release', ''): sorted(ids),
            ('pcpctl', 'revoke', ''): ['org.example.Test'],
            ('pcpctl', 'external-address', ''): ['ipv4', 'ipv6'],
            ('pcpctl', '--json', '=', ''): ['off', 'pretty', 'short'],
            ('pcpctl', '--json', '=', 'p'): ['pretty'],
            ('pcpctl', 'map', 'tcp', '80', '--family', '=', ''): ['ipv4', 'ipv6'],
            ('pcpctl', 'map', 'tcp', '80', '--family', 'ipv'): ['ipv4', 'ipv6'],
            ('pcpctl', 'map', 'tcp', '80', '--interface', '=', ''): interfaces,
            ('pcpctl', 'map', 'tcp', '80', '--p'): ['--persistent', '--prefer-failure'],
            ('pcpctl', 'peer', 'tcp', '80', '--p'): [],
            ('pcpctl', 'status', '--no-'): ['--no-ask-password', '--no-legend', '--no-pager'],
            ('pcpctl', '--lifetime', '60', 'm'): ['map', 'monitor'],
            ('pcpctl', '--no-pager', 'release', ''): sorted(ids),
            ('pcpctl', 'release', ids[0], ''): [],
            ('pcpctl', 'de'): ['declare'],
            ('pcpctl', 'declare', 'cam', ''): ['dccp', 'sctp', 'tcp', 'udp'],
            ('pcpctl', 'declare', 'cam', 'tcp', '80', '--t'): ['--third-party='],
            ('pcpctl', 'declare', 'cam', 'tcp', '80', '--w'): ['--wait'],
            ('pcpctl', 'map', 'tcp', '80', '--t'): [],
            # what undeclare can remove: not the administrator's files (in /etc, or beside
            # the demo's pcpd.conf), and cam without a mapping
            ('pcpctl', 'undeclare', ''): ['cam', 'demort', 'tv'],
            ('pcpctl', 'undeclare', 'cam', ''): [],
        }
        got = bash_completions(script, env, [list(k) for k in cases])
        for words, want in cases.items():
            check(got.get(words) == sorted(want), f'bash: {" ".join(words)}<Tab>',
                  f'got {got.get(words)}, want {sorted(want)}')

        # ---- zsh ----
        if shutil.which('zsh') is None:
            skip_or_fail('zsh is not installed')
        home = os.path.join(tmp, 'zhome')
        os.mkdir(home)
        zsh = Zsh(os.path.join(src, 'shell-completion', 'zsh'), env, home)
        try:
            out = zsh.complete('pcpctl ', max(VERBS))  # the last one zsh lists (sorted)
            check(set(VERBS) <= listed(out), 'zsh: pcpctl <Tab> lists the verbs', out)
            out = zsh.complete('pcpctl map ', 'udp')
            check({'tcp', 'udp', 'sctp', 'dccp'} <= listed(out), 'zsh: pcpctl map <Tab> lists protocols', out)
            out = zsh.complete('pcpctl release ', '8444')
            check(set(ids) <= listed(out) and 'tcp' in out and not set(declared_ids) & listed(out),
                  'zsh: pcpctl release <Tab> lists the live mappings, not the declared ones', out)
            # the common prefix first, then the list
            out = zsh.tab('pcpctl external-address ', 'ipv')
            check(out.endswith('ipv'), 'zsh: external-address <Tab> inserts "ipv"', out)
            out = zsh.complete('', 'ipv6')
            check({'ipv4', 'ipv6'} <= listed(out), 'zsh: external-address ipv<Tab> lists families', out)
            out = zsh.complete('pcpctl --json=', 'pretty')
            check({'short', 'pretty', 'off'} <= listed(out), 'zsh: --json=<Tab> lists modes', out)
            out = zsh.complete('pcpctl --no-', 'no-pager')
            check({'--no-pager', '--no-legend', '--no-ask-password'} <= listed(out), 'zsh: --no-<Tab> lists options',
                  out)
            # one candidate: completed in place
            out = zsh.tab('pcpctl revo', 'revoke ')
            check('revoke ' in out, 'zsh: pcpctl revo<Tab> completes revoke', out)
            out = zsh.tab('', 'org.example.Test')
            check('org.example.Test' in out, 'zsh: revoke <Tab> completes the live app id', out)
            zsh.send('\x15')
            zsh.read_until('P> ', 1)
            # undeclare: the declarations it can remove (cam though it has no mapping), not
            # the administrator's files
            out = zsh.complete('pcpctl undeclare ', 'tv')
            check(listed(out) >= {'cam', 'demort', 'tv'} and 'web' not in out and 'demoetc' not in out,
                  'zsh: undeclare <Tab> lists the declarations pcpd lets it remove', out)
            out = zsh.complete('pcpctl undeclare c', 'cam ')
            check(out.endswith('cam '), 'zsh: undeclare c<Tab> completes cam', out)
            # options after the verb, where README and pcpctl(1) put them
            out = zsh.complete('pcpctl map tcp 8080 --wa', '--wait ')
            check(out.endswith('--wait '), 'zsh: map tcp 8080 --wa<Tab> completes --wait', out)
            out = zsh.complete('pcpctl declare cam tcp 554 --wa', '--wait ')
            check(out.endswith('--wait '), 'zsh: declare cam tcp 554 --wa<Tab> completes --wait', out)
            out = zsh.tab('pcpctl map tcp 8080 --family=', '--family=ipv')
            check(out.endswith('--family=ipv'), 'zsh: map tcp 8080 --family=<Tab> inserts "ipv"', out)
            out = zsh.complete('', 'ipv6')
            check({'ipv4', 'ipv6'} <= listed(out), 'zsh: map tcp 8080 --family=ipv<Tab> lists families', out)
            out = zsh.complete('pcpctl map tcp 8080 --p', 'prefer-failure')
            check({'--persistent', '--prefer-failure'} <= listed(out), 'zsh: map tcp 8080 --p<Tab> lists map options',
                  out)
            out = zsh.complete('pcpctl peer udp 5001 203.0.113.5 443 --', 'wait')
            check({'--wait', '--lifetime', '--no-pager'} <= listed(out) and '--persistent' not in out,
                  "zsh: peer ... --<Tab> lists peer's options, not map's", out)
            out = zsh.complete('pcpctl release 1 --no-', 'no-pager')
            check({'--no-pager', '--no-legend', '--no-ask-password'} <= listed(out),
                  'zsh: release 1 --no-<Tab> lists the global options', out)
        finally:
            zsh.close()

        print(f'{passed} passed, {failed} failed')
        return 1 if failed else 0
    finally:
        for p in (service, bus):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
