#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpctl against fake-pcpd.py on a private dbus-daemon (DBUS_SYSTEM_BUS_ADDRESS).

  test-pcpctl-fake.py PATH/TO/pcpctl PATH/TO/fake-pcpd.py

Exit 77 (skipped) when dbus-daemon, python3-dbus or python3-gi is missing.
"""

import datetime
import json
import os
import re
import select
import shutil
import signal
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

PREFIX = '/org/freedesktop/PCP1/mapping/'


class Test:
    def __init__(self, pcpctl, env, log):
        self.pcpctl = pcpctl
        self.env = env
        self.log = log
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=''):
        if ok:
            self.passed += 1
            print(f'ok   {what}')
        else:
            self.failed += 1
            print(f'FAIL {what}\n     {detail}')
        return ok

    def run(self, *args, status=0, stdout=None, stderr=None):
        r = subprocess.run([self.pcpctl, '--no-ask-password'] + list(args), capture_output=True, text=True,
                           env=self.env, timeout=30)
        ok = r.returncode == status
        if stdout is not None:
            ok = ok and stdout in r.stdout
        if stderr is not None:
            ok = ok and stderr in r.stderr
        self.check(ok, f'pcpctl {" ".join(args)} -> {status}',
                   f'got {r.returncode}, stdout={r.stdout!r}, stderr={r.stderr!r}')
        return r

    def test_call(self, method, signature, *args):
        types = {'s': 'string', 'b': 'boolean', 'o': 'objpath', 'q': 'uint16'}
        r = subprocess.run(['dbus-send', '--system', '--print-reply', '--dest=org.freedesktop.PCP1',
                            '/org/freedesktop/PCP1', f'org.freedesktop.PCP1.Test.{method}']
                           + [f'{types[t]}:{a}' for t, a in zip(signature, args)],
                           capture_output=True, text=True, env=self.env, timeout=30)
        self.check(r.returncode == 0, f'fake: {method}{args}', r.stderr)

    def mapping_reads(self, path):
        """Test.MappingReads: how many GetAll calls the mapping at path answered (-1 when the
        fake did not answer)."""
        r = subprocess.run(['dbus-send', '--system', '--print-reply', '--dest=org.freedesktop.PCP1',
                            '/org/freedesktop/PCP1', 'org.freedesktop.PCP1.Test.MappingReads', f'objpath:{path}'],
                           capture_output=True, text=True, env=self.env, timeout=30)
        m = re.search(r'uint32 (\d+)', r.stdout)
        return int(m.group(1)) if r.returncode == 0 and m else -1

    def start(self, *args):
        return subprocess.Popen([self.pcpctl, '--no-ask-password'] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)

    def removals(self):
        try:
            with open(self.log, encoding='utf-8') as f:
                return f.read().split('\n')
        except FileNotFoundError:
            return []


def read_line(p, timeout=10):
    """One line of p's stdout, or None after timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([p.stdout], [], [], max(0, end - time.monotonic()))
        if ready:
            line = p.stdout.readline()
            return line.rstrip('\n') if line else None
    return None


_pending = {}


def read_line_of(f, timeout=10):
    """One line of a pipe, or None after timeout (reads the descriptor itself: a buffered
    readline() would swallow the lines after the first one from select()'s view)."""
    fd = f.fileno()
    end = time.monotonic() + timeout
    while b'\n' not in _pending.get(fd, b''):
        left = end - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data = os.read(fd, 4096)
            if not data:
                return None
            _pending[fd] = _pending.get(fd, b'') + data
    line, _, rest = _pending[fd].partition(b'\n')
    _pending[fd] = rest
    return line.decode()


def wait_for(cond, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def stop(p, sig=signal.SIGINT, timeout=10):
    if p.poll() is None:
        p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, out, err


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def scenario(t):
    # status
    r = t.run('status', stdout='Version: 0.1.0-fake')
    t.check('eth0' in r.stdout and '192.168.1.1' in r.stdout and 'dhcpv4' in r.stdout,
            'status shows the servers table', r.stdout)
    t.check('External addresses: 198.51.100.1' in r.stdout, 'status shows the external address', r.stdout)
    t.check('State error' not in r.stdout, 'no StateError property: no line for it', r.stdout)
    r = t.run(stdout='Enabled: yes')  # status is the default verb
    r = t.run('status', '--json')
    try:
        j = json.loads(r.stdout)
        t.check(j['Version'] == '0.1.0-fake' and j['MappingCount'] == 0 and 'StateError' not in j
                and j['Servers'] == [{'Interface': 'eth0', 'Address': '192.168.1.1', 'Source': 'dhcpv4',
                                      'Protocol': 'pcp', 'Epoch': 1234}],
                'status --json: servers are objects with named fields', r.stdout)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        t.check(False, 'status --json parses', f'{e}: {r.stdout!r}')
    r = t.run('status', '--json=pretty')
    t.check(r.stdout.count('\n') > 5 and json.loads(r.stdout)['Enabled'] is True, 'status --json=pretty',
            r.stdout)
    r = t.run('-j', 'status')
    t.check(r.stdout.count('\n') == 1 and json.loads(r.stdout)['State'] == 'ready',
            '-j is --json=short when stdout is not a terminal', r.stdout)
    r = t.run('status', '--json=off', stdout='Version: 0.1.0-fake')
    r = t.run('list', stdout='No mappings.')

    # a newer daemon's StateError: shown when present and not empty
    t.test_call('SetStateError', 's', 'No server answers on eth0.')
    r = t.run('status', stdout='State error: No server answers on eth0.')
    r = t.run('status', '--json')
    t.check(json.loads(r.stdout).get('StateError') == 'No server answers on eth0.', 'status --json has StateError',
            r.stdout)
    t.test_call('SetStateError', 's', '')
    r = t.run('status')
    t.check('State error' not in r.stdout, 'an empty StateError: no line', r.stdout)

    # NetworkManager discovery: nothing from a pcpd without it (as above: no line); its
    # state, and the DHCP options when it is followed
    t.check('NetworkManager' not in r.stdout, 'no NetworkManager property: no line for it', r.stdout)
    t.test_call('SetNetworkManager', 's', 'running')
    r = t.run('status')
    t.check(r.stdout.endswith('\n\nNetworkManager: running. PCP server DHCP options (RFC 7291):\n'
                              '  eth0: DHCPv4 option 158: received\n'
                              '  eth0: DHCPv6 option 86: asked for, not sent by the network\n'),
            'status shows the DHCP options NetworkManager gives', r.stdout)
    t.test_call('SetNetworkManager', 's', 'unavailable')
    r = t.run('status')
    # whether pcpd uses the default routers (UseDefaultRouters=) is not on the bus: without
    # a server of source "gateway" the words must hold either way
    t.check(r.stdout.endswith('\n\nNetworkManager: not followed (see the journal).\n'
                              "pcpd learns no PCP server from DHCP now: it uses pcpd.conf's Servers=\n"
                              'and the default routers if UseDefaultRouters= is on.\n'),
            'status says NetworkManager is not followed', r.stdout)
    t.test_call('SetNetworkManager', 's', 'stopped')
    r = t.run('status')
    t.check(r.stdout.endswith('\n\nNetworkManager: not running.\n'
                              "pcpd learns no PCP server from DHCP now: it uses pcpd.conf's Servers=\n"
                              'and the default routers if UseDefaultRouters= is on.\n'),
            'status says NetworkManager is not running', r.stdout)
    # a default router listed as a server: pcpd uses them, and status says so plainly
    t.test_call('SetServerSource', 's', 'gateway')
    r = t.run('status')
    t.check(r.stdout.endswith('\n\nNetworkManager: not running.\n'
                              "pcpd learns no PCP server from DHCP now: it uses pcpd.conf's Servers=\n"
                              'and the default routers.\n'),
            'status: a "gateway" server, the default routers are used', r.stdout)
    t.test_call('SetServerSource', 's', 'dhcpv4')
    r = t.run('status', '--json')
    t.check('NetworkManager' not in r.stdout, 'status --json: as before, without NetworkManager', r.stdout)
    t.test_call('SetNetworkManager', 's', '')

    # a property of another type than the contract's: skipped (left at 0), the ones after
    # it read as usual
    t.test_call('SetWrongType', 's', 'DefaultLifetime')
    r = t.run('status', stdout='Version: 0.1.0-fake')
    t.check('Default lifetime: 0 s' in r.stdout and 'Max mappings per user: 64' in r.stdout
            and 'eth0      192.168.1.1' in r.stdout, 'a property of another type is skipped', r.stdout)
    r = t.run('status', '--json')
    j = json.loads(r.stdout)
    t.check(j['DefaultLifetime'] == 0 and j['MaxMappingsPerUser'] == 64 and j['MappingCount'] == 0
            and j['ExternalAddresses'] == ['198.51.100.1'], 'a property of another type is skipped (json)',
            r.stdout)
    t.test_call('RestoreType', 's', 'DefaultLifetime')

    # map --wait: nothing until active (no object path), then holds until SIGINT, then releases
    p = t.start('map', 'tcp', '8080', '--wait', '--lifetime', '60', '--description', 'web \x1b[31mred')
    line = read_line(p)
    t.check(line == 'tcp 8080 -> 198.51.100.1:8080 (lifetime 60 s)', 'map --wait prints only the outcome',
            repr(line))
    r = t.run('list')
    lines = r.stdout.splitlines()
    t.check(len(lines) >= 2 and lines[0].split() == ['ID', 'PROTO', 'INTERNAL', 'EXTERNAL', 'STATE', 'EXPIRES', 'UID',
                                                      'APP', 'DESCRIPTION'],
            'list has the header (no REMOTE column without a PEER mapping)', r.stdout)
    t.check(any(l.split()[:5] == ['1', 'tcp', '192.168.1.20:8080', '198.51.100.1:8080', 'active']
                for l in lines), 'list shows the active mapping', r.stdout)
    t.check('\x1b' not in r.stdout and 'web \\x1b[31mred' in r.stdout, 'list escapes control characters',
            repr(r.stdout))
    t.check(re.search(r' in ([1-5]?[0-9]s|1min) ', r.stdout) is not None, 'list shows EXPIRES', r.stdout)
    r = t.run('list', '--no-legend')
    t.check(r.stdout.startswith('1 ') and 'listed' not in r.stdout, 'list --no-legend', r.stdout)
    r = t.run('list', '--json')
    try:
        j = json.loads(r.stdout)
        t.check(len(j) == 1 and j[0]['Id'] == 1 and j[0]['ExternalPort'] == 8080
                and j[0]['Description'] == 'web \x1b[31mred' and j[0]['State'] == 'active',
                'list --json (Id a number)', r.stdout)
    except (ValueError, KeyError, IndexError) as e:
        t.check(False, 'list --json parses', f'{e}: {r.stdout!r}')
    status, out, err = stop(p)
    t.check(status == 0, 'map exits 0 on SIGINT', f'{status} {out!r} {err!r}')
    t.check(wait_for(lambda: f'released {PREFIX}1' in t.removals()), 'map released the mapping on SIGINT',
            t.removals())

    # map without --wait prints the state changes
    p = t.start('map', 'udp', '5000', '--external-port', '15000')
    first = read_line(p)
    second = read_line(p) if first == 'udp 5000: pending' else first
    t.check(second == 'udp 5000 -> 198.51.100.1:15000 (lifetime 3600 s)', 'map prints state changes',
            f'{first!r} {second!r}')
    status, out, err = stop(p, signal.SIGTERM)
    t.check(status == 0 and wait_for(lambda: f'released {PREFIX}2' in t.removals()),
            'map releases on SIGTERM', f'{status} {err!r} {t.removals()}')

    # map --json: one object per change, with the external port as a number
    p = t.start('map', 'tcp', '8081', '--wait', '--json')
    line = read_line(p)
    try:
        j = json.loads(line)
        t.check(j['ExternalPort'] == 8081 and j['State'] == 'active' and isinstance(j['Id'], int),
                'map --wait --json prints the active mapping', line)
    except (ValueError, KeyError, TypeError) as e:
        t.check(False, 'map --json parses', f'{e}: {line!r}')
    stop(p)

    # a mapping that fails
    r = t.run('map', 'tcp', '9999', '--wait', status=1, stderr='NO_RESOURCES')
    t.check(r.stderr.startswith('Failed to map:'), 'failure message starts with "Failed to map:"', r.stderr)
    # refused by the daemon
    r = t.run('map', 'tcp', '1000', status=1, stderr='Failed to map: Not authorized to map port 1000.')
    port_not_owned(t)
    not_authorized(t)

    # persistent: returns at once, says how to remove it; the mapping stays
    r = t.run('map', 'tcp', '8443', '--persistent', stdout='tcp 8443: pending')
    m = re.search(r'remove it with: pcpctl release (\d+)', r.stdout)
    t.check(m is not None, 'map --persistent says how to remove it', r.stdout)
    mid = m.group(1) if m else '0'
    r = t.run('list', stdout='8443')
    r = t.run('release', mid, '--json')
    t.check(f'revoked {PREFIX}{mid}' in t.removals(), 'release by id removes it', t.removals())
    try:
        t.check(json.loads(r.stdout)['Id'] == int(mid), 'release --json prints the released mapping', r.stdout)
    except (ValueError, KeyError) as e:
        t.check(False, 'release --json parses', f'{e}: {r.stdout!r}')
    t.run('release', mid, status=1, stderr='Failed to release: No mapping')
    r = t.run('release', mid, '--json', status=1)
    t.check(r.stdout == '' and r.stderr.startswith('Failed to release: No mapping'),
            'release --json of a mapping that is gone: pcpd\'s answer', f'{r.stdout!r} {r.stderr!r}')
    # release --json cannot read the mapping (access denied): it fails and releases nothing,
    # rather than release it and print nothing with status 0
    r = t.run('map', 'tcp', '8449', '--persistent', '--json')
    path = json.loads(r.stdout)['Path']
    t.test_call('FailMappingGetAll', 'os', path, 'org.freedesktop.DBus.Error.AccessDenied')
    r = t.run('release', path.rsplit('/', 1)[1], '--json', status=1)
    t.check(r.stdout == '' and r.stderr == 'Failed to release: Access denied by the bus policy.\n'
            and f'revoked {path}' not in t.removals(),
            'release --json that cannot read the mapping fails and removes nothing', f'{r.stdout!r} {r.stderr!r}')
    t.run('release', path.rsplit('/', 1)[1])
    t.check(f'revoked {path}' in t.removals(), 'release without --json needs no GetAll', t.removals())
    t.run('release', 'abc', status=2, stderr="Invalid mapping 'abc'")
    r = t.run('map', 'tcp', '8444', '--persistent', '--wait', '--json')
    try:
        j = json.loads(r.stdout)
        t.check(j['ExternalPort'] == 8444 and j['Persistent'] is True, 'map --persistent --wait --json', r.stdout)
        t.run('release', str(j['Id']))
    except (ValueError, KeyError) as e:
        t.check(False, 'map --persistent --json parses', f'{e}: {r.stdout!r}')

    # persistent --wait that fails (8600 is taken, prefer-failure): the mapping this call
    # made is released, as without --persistent; pcpd would retry it for good otherwise
    before = len(t.removals())
    r = t.run('map', 'tcp', '8701', '--external-port=8600', '--prefer-failure', '--persistent', '--wait', status=1,
              stderr='Failed to map: the mapping failed: CANNOT_PROVIDE_EXTERNAL')
    t.check(wait_for(lambda: any(l.startswith(f'released {PREFIX}') for l in t.removals()[before - 1:]))
            and 'existed before' not in r.stderr,
            'a failed persistent --wait releases the mapping it made', f'{r.stderr!r} {t.removals()}')
    t.run('list', stdout='No mappings.')
    # one that existed before (made by another call: pcpd shares it) is left, and the user
    # told which it is and how to remove it
    r = t.run('map', 'tcp', '8701', '--external-port=8600', '--prefer-failure', '--persistent', '--json')
    shared = json.loads(r.stdout)['Id']
    r = t.run('map', 'tcp', '8701', '--external-port=8600', '--prefer-failure', '--persistent', '--wait', status=1,
              stderr='Failed to map: the mapping failed: CANNOT_PROVIDE_EXTERNAL')
    t.check(f'Mapping {shared} existed before this call (pcpd shares it) and is left as it is; '
            f'remove it with: pcpctl release {shared}' in r.stderr,
            'a failed persistent --wait on a shared mapping says it is left, and how to remove it', r.stderr)
    t.check(not any(l.endswith(f'{PREFIX}{shared}') for l in t.removals()),
            'a failed persistent --wait leaves a mapping that existed before', t.removals())
    t.run('list', stdout='8701')
    t.run('release', str(shared))
    # a non-persistent one made persistent by the call: it existed, so it stays too
    p = t.start('map', 'tcp', '8702', '--external-port=8600', '--prefer-failure')
    held = None
    for _ in range(3):
        line = read_line(p) or ''
        if 'failed' in line:
            held = True
            break
    r = t.run('map', 'tcp', '8702', '--external-port=8600', '--prefer-failure', '--persistent', '--wait', status=1,
              stderr='existed before this call')
    t.check(held and p.poll() is None and not any(' /org' in l and l.endswith(f'{PREFIX}{int(shared) + 1}')
                                                  for l in t.removals()),
            'a shared mapping another holder holds is left', f'{held} {r.stderr!r} {t.removals()}')
    stop(p)  # and the holder releases it

    # peer
    p = t.start('peer', 'udp', '5001', '203.0.113.5', '443', '--wait')
    line = read_line(p)
    t.check(line == 'udp 5001 -> 198.51.100.1:5001 (peer 203.0.113.5:443, lifetime 3600 s)', 'peer --wait',
            repr(line))
    r = t.run('list')
    t.check(any(l.split()[1:5] == ['udp', '192.168.1.20:5001', '198.51.100.1:5001', '203.0.113.5:443']
                for l in r.stdout.splitlines()), 'list shows the remote end of a PEER mapping', r.stdout)
    stop(p)

    # the holder goes away without releasing: the (fake) daemon notices
    p = t.start('map', 'tcp', '7000', '--wait', '--json')
    path = json.loads(read_line(p) or '{}').get('Path')
    p.kill()
    p.wait()
    t.check(wait_for(lambda: f'owner-vanished {path}' in t.removals()), 'a killed holder loses its mapping',
            t.removals())

    # removed by someone else while held
    p = t.start('map', 'tcp', '7001', '--wait', '--json')
    path = json.loads(read_line(p) or '{}').get('Path')
    t.run('release', path or '/x')
    # the holder exits by itself once it has seen MappingRemoved: wait for that (a SIGINT
    # would end it too, with the same words: the case below), and check it needed none
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass  # stop() below interrupts it; the check then fails with what it printed
    by_itself = p.poll() is not None
    status, out, err = stop(p, timeout=10)
    t.check(by_itself and status == 1
            and 'The mapping was removed: revoked (by an administrator or another program).' in err,
            'holder exits 1 by itself when revoked', f'{by_itself} {status} {err!r}')

    # removed for another reason just as the holder releases it (SIGINT): the fake removes
    # it when the Release arrives, then fails the call as pcpd does for a mapping that is
    # gone (sd-bus's UnknownObject when the removal came first, pcpd's NotFound when it came
    # while the call waited). The holder sees MappingRemoved, then the error: it says why
    # the mapping went and exits 1, as when it is removed while held, and does not take
    # the removal for its own release.
    for reason, error, why in (('revoked', 'org.freedesktop.DBus.Error.UnknownObject',
                                'by an administrator or another program'),
                               ('expired', 'org.freedesktop.PCP1.Error.NotFound', 'not renewed in time')):
        p = t.start('map', 'tcp', '7003', '--wait', '--json')
        path = json.loads(read_line(p) or '{}').get('Path')
        t.test_call('RemoveOnRelease', 'ss', reason, error)
        status, out, err = stop(p)
        t.check(status == 1 and err == f'The mapping was removed: {reason} ({why}).\n',
                f'holder interrupted while pcpd removes the mapping ({reason}, {error}) says so, exits 1',
                f'{status} {err!r}')
        t.check(f'{reason} {path}' in t.removals() and f'released {path}' not in t.removals(),
                f'the fake removed the mapping as {reason}', t.removals())

    # monitor cannot read what pcpd holds (access denied): it fails at once, rather than
    # show pcpd as not running, or with no mappings, and wait
    for member in ('GetAll', 'GetManagedObjects'):
        t.test_call('FailManagerCall', 'ss', member, 'org.freedesktop.DBus.Error.AccessDenied')
        m = t.start('monitor')
        try:
            out, err = m.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            m.kill()
            out, err = m.communicate()
        t.check(m.returncode == 1 and out == '' and err == 'Failed to monitor: Access denied by the bus policy.\n',
                f'monitor fails when {member} is refused (cap 20 s)', f'{m.returncode} {out!r} {err!r}')
        t.test_call('FailManagerCall', 'ss', member, '')

    # monitor: one readable line per event, one per removal
    m = t.start('monitor')
    t.check((read_line(m) or '').startswith('Monitoring pcpd (ready, 0 mappings)'), 'monitor starts')
    time.sleep(0.3)  # its matches are installed before it prints, this is for the bus
    r = t.run('map', 'tcp', '8445', '--persistent', '--wait', '--json')
    mid = str(json.loads(r.stdout)['Id'])
    t.run('disable')
    t.run('enable')
    t.run('release', mid)
    time.sleep(0.3)
    status, out, err = stop(m)
    t.check(status == 0, 'monitor exits 0 on SIGINT', f'{status} {err!r}')
    t.check(f'mapping {mid} added: tcp 8445: pending, uid 0, app org.example.Test' in out,
            'monitor shows the addition', out)
    t.check(re.search(rf'mapping {mid}: tcp 8445 -> 198\.51\.100\.1:8445 \(lifetime 3600 s\), expires in 59min', out)
            is not None, 'monitor shows the change as a sentence with a relative time', out)
    t.check(f'mapping {mid} removed: revoked' in out and len([l for l in out.splitlines() if 'removed' in l]) == 1,
            'monitor shows one line per removal', out)
    t.check('pcpd: disabled' in out and 'pcpd: enabled' in out, 'monitor shows manager changes', out)
    # pcpd tells State "disabled" and Enabled false in two signals: one change, one line
    t.check(len([l for l in out.splitlines() if 'disabled' in l]) == 1 and 'state disabled' not in out,
            'monitor shows one line for one disable (State and Enabled in two signals)', out)
    t.check('pcpd: state ready' in out, 'monitor shows the state after enable', out)
    t.check('ExpiresAt' not in out and 'State=' not in out, 'monitor prints no raw property names', out)

    # the same told in one signal: one line too, and the state after enable on its line
    m = t.start('monitor')
    t.check((read_line(m) or '').startswith('Monitoring pcpd'), 'monitor starts')
    t.test_call('SetEnabledAtOnce', 'b', 'false')
    t.test_call('SetEnabledAtOnce', 'b', 'true')
    seen = [read_line_of(m.stdout), read_line_of(m.stdout)]  # each waits for its line (10 s at most)
    status, out, err = stop(m)
    lines = [l.split(' ', 1)[-1] for l in seen + out.splitlines() if l]
    t.check(lines == ['pcpd: disabled', 'pcpd: enabled; state ready'],
            'monitor: Enabled and State in one signal give one line each change', f'{seen} {out!r}')

    m = t.start('monitor', '--json')
    time.sleep(0.3)
    r = t.run('map', 'tcp', '8446', '--persistent', '--wait', '--json')
    mid = json.loads(r.stdout)['Id']
    t.run('disable')
    t.run('enable')
    t.run('release', str(mid))
    time.sleep(0.3)
    status, out, err = stop(m)
    try:
        events = json_lines(out)
        names = [e['Event'] for e in events]
        t.check(all(isinstance(e['Time'], int) for e in events) and 'mapping-added' in names
                and 'mapping-changed' in names and 'mapping-removed' in names and 'manager-changed' in names,
                'monitor --json: one object per event', out)
        added = next(e for e in events if e['Event'] == 'mapping-added')
        t.check(added['Id'] == mid and added['Mapping']['InternalPort'] == 8446, 'monitor --json mapping-added',
                out)
        t.check(any(e['Event'] == 'manager-changed' and e['Changed'] == ['Enabled']
                    and e['Manager']['Enabled'] is False for e in events), 'monitor --json manager-changed', out)
        removed = [e for e in events if e['Event'] == 'mapping-removed']
        t.check(len(removed) == 1 and removed[0]['Reason'] == 'revoked' and removed[0]['Id'] == mid
                and removed[0]['Mapping']['InternalPort'] == 8446,
                'monitor --json: one mapping-removed', out)
    except (ValueError, KeyError, IndexError, StopIteration, TypeError) as e:
        t.check(False, 'monitor --json parses', f'{e}: {out!r}')

    # enable/disable
    t.run('disable')
    t.run('status', stdout='Enabled: no')
    t.run('map', 'tcp', '8447', status=1, stderr='Failed to map: Port mappings are switched off.')
    t.run('enable')
    t.run('status', stdout='Enabled: yes')

    # external-address
    t.run('external-address', 'ipv4', stdout='198.51.100.1\n')
    r = t.run('external-address', stdout='ipv4: 198.51.100.1 (server 192.168.1.1)')
    t.check('ipv6: none' in r.stdout, 'external-address shows the missing family', r.stdout)
    t.run('external-address', 'ipv6', status=1,
          stderr='Failed to query the external address: No PCP server is known for ipv6.')
    r = t.run('external-address', '--json')
    t.check(json.loads(r.stdout) == [{'Family': 'ipv4', 'Address': '198.51.100.1', 'Server': '192.168.1.1'}],
            'external-address --json', r.stdout)
    # "none" is pcpd's NoServer only: a family whose call failed otherwise prints nothing on
    # standard output, its error goes to standard error, and the exit status is 1
    denied = 'org.freedesktop.DBus.Error.AccessDenied'
    t.test_call('FailExternalAddress', 'ss', 'ipv6', 'org.freedesktop.DBus.Error.Failed')
    r = t.run('external-address', status=1)
    t.check(r.stdout == 'ipv4: 198.51.100.1 (server 192.168.1.1)\n'
            and r.stderr == 'Failed to query the ipv6 external address: Scripted failure for ipv6.\n',
            'external-address: a family that failed is not "none"', f'{r.stdout!r} {r.stderr!r}')
    r = t.run('external-address', '--json', status=1)
    t.check(json.loads(r.stdout) == [{'Family': 'ipv4', 'Address': '198.51.100.1', 'Server': '192.168.1.1'}]
            and r.stderr == 'Failed to query the ipv6 external address: Scripted failure for ipv6.\n',
            'external-address --json: only the family that answered', f'{r.stdout!r} {r.stderr!r}')
    r = t.run('external-address', 'ipv6', status=1)
    t.check(r.stdout == '' and r.stderr == 'Failed to query the external address: Scripted failure for ipv6.\n',
            'external-address ipv6: the failure, nothing on stdout', f'{r.stdout!r} {r.stderr!r}')
    t.test_call('FailExternalAddress', 'ss', 'ipv6', '')
    t.test_call('FailExternalAddress', 'ss', 'ipv4', denied)
    r = t.run('external-address', status=1)
    t.check(r.stdout == 'ipv6: none\n'
            and r.stderr == 'Failed to query the ipv4 external address: Access denied by the bus policy.\n',
            'external-address: ipv4 failed, ipv6 has none', f'{r.stdout!r} {r.stderr!r}')
    t.test_call('FailExternalAddress', 'ss', 'ipv6', denied)
    for args in ((), ('--json',)):
        r = t.run('external-address', *args, status=1)
        t.check(r.stdout == '' and r.stderr == 'Failed to query the external address: Access denied by the bus '
                'policy.\n', ' '.join(('external-address',) + args) + ': both failed alike, one error, no output',
                f'{r.stdout!r} {r.stderr!r}')
    t.test_call('FailExternalAddress', 'ss', 'ipv4', '')
    t.test_call('FailExternalAddress', 'ss', 'ipv6', '')

    # revoke
    r = t.run('revoke', 'org.example.Nothing', status=1, stderr="Failed to revoke: No mapping belongs to")
    t.check(r.stderr.count('\n') == 1, 'revoke: an unknown app id, one line', r.stderr)
    # list's APP column says "declared:NAME" for a declared mapping, which has no app id:
    # revoke says how it is removed
    t.run('declare', 'cam', 'tcp', '8554')
    r = t.run('revoke', 'declared:cam', status=1)
    t.check(r.stdout == '' and r.stderr == "Failed to revoke: No mapping belongs to 'declared:cam'.\n"
            "declared:cam is a declared mapping, which has no app id: 'pcpctl undeclare cam' removes it.\n",
            'revoke declared:NAME points to undeclare', r.stderr)
    t.test_call('DeclareInEtc', 's', 'door')
    r = t.run('revoke', 'declared:door', status=1)
    t.check(r.stderr.endswith('\ndeclared:door is the mapping declared in /etc/pcpd/mappings.d/door.conf, which '
                              'has no app id: remove that file and reload pcpd (systemctl reload pcpd).\n'),
            'revoke declared:NAME of a file in /etc points to the file', r.stderr)
    r = t.run('revoke', 'declared:nosuch', status=1)
    t.check(r.stderr == "Failed to revoke: No mapping belongs to 'declared:nosuch'.\n",
            'revoke declared:NAME with nothing declared as NAME: the error alone', r.stderr)
    t.run('undeclare', 'cam')

    declare_wait(t)

    r = t.run('map', 'tcp', '8448', '--persistent', '--json')
    path = json.loads(r.stdout)['Path']
    t.run('revoke', 'org.example.Test')
    t.check(f'revoked {path}' in t.removals(), 'revoke removes the app\'s mappings', t.removals())


def port_not_owned(t):
    """A port that is not the caller's (PortNotOwned): pcpd's reason as pcpd gives it, which
    pcpctl cannot know better (bound but not listening, the wrong address, another user's
    socket), its control characters escaped; pcpctl's hint only where pcpd cannot look the
    owner up (pcpd wants the socket, which pcpctl has not got)."""
    hint = (' pcpctl has no such socket: map the port as root, or let the program bound to it ask pcpd for the '
            'mapping.')
    for verb, protocol, port, why, want_hint in (
            ('map', 'tcp', '9302', 'None of your sockets is listening on tcp port 9302 on 127.0.0.1 or the wildcard '
             'address: only the program that listens on a port may map it without an administrator.', ''),
            ('map', 'udp', '9303', "Another user's socket is bound to 192.168.1.20 udp port 9303 and gets what the "
             'mapping would forward; your socket on the wildcard address does not.', ''),
            ('map', '6', '9302', 'None of your sockets is listening on tcp port 9302 on 127.0.0.1 or the wildcard '
             'address.', ''),
            ('map', 'sctp', '9304', 'pcpd cannot see who owns sctp ports: only the socket itself, handed to pcpd by '
             'the program bound to the port, proves it.', hint),
            ('peer', 'dccp', '9305', 'pcpd cannot see who owns dccp ports.', hint)):
        t.test_call('RefuseAdd', 'qss', port, 'org.freedesktop.PCP1.Error.PortNotOwned', why)
        args = (protocol, port) + (('203.0.113.5', '443') if verb == 'peer' else ())
        for extra in ((), ('--persistent',)) if verb == 'map' else ((),):
            r = t.run(verb, *args, *extra, status=1)
            t.check(r.stdout == '' and r.stderr == f'Failed to {verb}: {why}{want_hint}\n',
                    f'{verb} {protocol} {port} {" ".join(extra)}: pcpd\'s reason for PortNotOwned',
                    f'{r.stdout!r} {r.stderr!r}')
        t.test_call('RefuseAdd', 'qss', port, '', '')
    # control characters in pcpd's words do not reach the terminal
    t.test_call('RefuseAdd', 'qss', '9306', 'org.freedesktop.PCP1.Error.PortNotOwned', 'Not \x1b[2Jyours.')
    r = t.run('map', 'tcp', '9306', status=1)
    t.check(r.stderr == 'Failed to map: Not \\x1b[2Jyours.\n', 'PortNotOwned: its message sanitised', repr(r.stderr))
    t.test_call('RefuseAdd', 'qss', '9306', '', '')


def not_authorized(t):
    """Refused by polkit (NotAuthorized) under --no-ask-password: pcpd's words and what a user
    of pcpctl can do (run it without the option, or as root); allowed to ask, pcpd's words
    alone. Every verb alike (a status whose GetAll is refused too)."""
    why = 'Authentication is required; call again allowing interactive authorisation.'
    hint = (' (pcpctl was run with --no-ask-password: where polkit would ask for a password, run it without that '
            'option, or as root.)')
    t.test_call('RefuseAdd', 'qss', '9307', 'org.freedesktop.PCP1.Error.NotAuthorized', why)
    for extra in ((), ('--persistent',)):
        r = t.run('map', 'tcp', '9307', *extra, status=1)
        t.check(r.stdout == '' and r.stderr == f'Failed to map: {why}{hint}\n',
                f'map {" ".join(extra)} refused by polkit under --no-ask-password: says what to do', repr(r.stderr))
    # no --no-ask-password (and no terminal on stdin: no agent is started)
    r = subprocess.run([t.pcpctl, 'map', 'tcp', '9307'], capture_output=True, text=True, env=t.env,
                       stdin=subprocess.DEVNULL, timeout=30)
    t.check(r.returncode == 1 and r.stderr == f'Failed to map: {why}\n',
            'map refused by polkit, interactive: pcpd\'s words alone', f'{r.returncode} {r.stderr!r}')
    t.test_call('RefuseAdd', 'qss', '9307', '', '')
    t.test_call('FailManagerCall', 'ss', 'GetAll', 'org.freedesktop.PCP1.Error.NotAuthorized')
    r = t.run('status', status=1)
    t.check(r.stderr == f'Failed to query status: Scripted failure of GetAll.{hint}\n',
            'status refused by polkit under --no-ask-password: says what to do', repr(r.stderr))
    t.test_call('FailManagerCall', 'ss', 'GetAll', '')


def finish(p, timeout=10):
    """p's status, stdout and stderr once it exits (killed, and said so, after timeout s)."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += f'\n(killed: no exit within {timeout} s)'
    return p.returncode, out, err


def start_waiting(t, name, port, *args):
    """pcpctl declare NAME tcp PORT --wait ARGS started on a mapping the fake holds pending
    (Test.HoldDeclared(true) first), once it has read the mapping (Test.MappingReads): it
    waits then for the mapping's changes alone. The process and the mapping (from list)."""
    p = t.start('declare', name, 'tcp', port, '--wait', *args)
    t.check(wait_for(lambda: declared_in_list(t, name) is not None),
            f'declare {name} --wait: the mapping is made (10 s)', '')
    mapping = declared_in_list(t, name) or {'Path': '/', 'Id': '?', 'State': '?'}
    t.check(wait_for(lambda: t.mapping_reads(mapping['Path']) >= 1) and mapping['State'] == 'pending',
            f'declare {name} --wait: has read its pending mapping (10 s)', mapping)
    return p, mapping


def declared_in_list(t, name):
    """The mapping `pcpctl list --json` shows as declared as name, or None."""
    r = subprocess.run([t.pcpctl, 'list', '--json'], capture_output=True, text=True, env=t.env, timeout=30)
    try:
        mappings = json.loads(r.stdout)
    except ValueError:
        return None
    return next((j for j in mappings if isinstance(j, dict) and j.get('Declared') == name), None)


def declare_wait(t):
    """declare --wait: the declared mapping's outcome, as map --wait gives it."""
    t.test_call('MapDeclared', 'b', 'true')

    # a mapping that becomes active: the line map --wait prints, status 0
    r = t.run('declare', 'web', 'tcp', '8080', '--wait')
    t.check(r.stdout == 'tcp 8080 -> 198.51.100.1:8080 (lifetime 3600 s)\n' and r.stderr == '',
            'declare --wait prints the active mapping as map --wait does', f'{r.stdout!r} {r.stderr!r}')
    web = declared_in_list(t, 'web')
    t.check(web is not None and web['State'] == 'active', 'the declared mapping is active', web)
    # declared again (the same mapping, active already): --json has its State and Error
    r = t.run('declare', 'web', 'tcp', '8080', '--wait', '--json')
    try:
        j = json.loads(r.stdout)
        t.check(j == {'Name': 'web', 'Mapping': web['Path'], 'State': 'active', 'Error': '',
                      'ExternalAddress': '198.51.100.1', 'ExternalPort': 8080},
                'declare --wait --json: the final State and Error', r.stdout)
    except (ValueError, TypeError) as e:
        t.check(False, 'declare --wait --json parses', f'{e}: {r.stdout!r}')

    # it waits for the server's answer: nothing printed, no exit, while the mapping is
    # pending (held so by the fake until told)
    t.test_call('HoldDeclared', 'b', 'true')
    for name, port, args, want_status in (('slow', '8092', (), 0),
                                          ('slowtp', '8093', ('--third-party=192.168.1.31',), 1)):
        p = t.start('declare', name, 'tcp', port, '--wait', *args)
        t.check(wait_for(lambda: declared_in_list(t, name) is not None),
                f'declare {name} --wait: the mapping is made (10 s)', '')
        mapping = declared_in_list(t, name)
        # the held mapping is seen pending by list, and pcpctl is still waiting for it (half
        # a second for a wrong early exit to show; the pass does not depend on it)
        try:
            p.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        t.check(mapping is not None and mapping['State'] == 'pending' and p.poll() is None,
                f'declare {name} --wait: still waiting while the mapping is pending', f'{mapping} {p.poll()}')
        t.test_call('SettleDeclared', '')
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += '\n(killed: no exit within 10 s of the answer)'
        if want_status == 0:
            ok = out == 'tcp 8092 -> 198.51.100.1:8092 (lifetime 3600 s)\n'
        else:
            ok = out == '' and 'NOT_AUTHORIZED' in err
        t.check(p.returncode == want_status and ok, f'declare {name} --wait: ends with the answer (status {want_status})',
                f'{p.returncode} {out!r} {err!r}')

    # the mapping removed before it was active: status 1, the reason, and what became of the
    # declaration (pcpd's DeclaredMappings); nothing on stdout, --json neither (there is no
    # final state to print)
    for args in ((), ('--json',)):
        p, mapping = start_waiting(t, 'rev', '8094', *args)
        t.run('release', str(mapping['Id']))  # RemoveMapping: "revoked"
        status, out, err = finish(p)
        t.check(status == 1 and out == '' and err == (
            f'Declared rev, but its mapping {mapping["Id"]} was removed before it was active: revoked (by an '
            'administrator or another program).\n'
            'The declaration stays in place and pcpd keeps trying; remove it with: pcpctl undeclare rev\n'),
            f'declare --wait {" ".join(args)}: the mapping revoked, the declaration stays',
            f'{status} {out!r} {err!r}')
        t.run('undeclare', 'rev')
    p, mapping = start_waiting(t, 'und', '8095')
    t.run('undeclare', 'und')
    status, out, err = finish(p)
    t.check(status == 1 and out == '' and err == (
        f'Declared und, but its mapping {mapping["Id"]} was removed before it was active: released.\n'
        'und is no longer declared.\n'), 'declare --wait: undeclared meanwhile, said so', f'{status} {out!r} {err!r}')
    p, mapping = start_waiting(t, 'again', '8096')
    r = t.run('declare', 'again', 'tcp', '8096', '--external-port=18096')
    again = declared_in_list(t, 'again')
    status, out, err = finish(p)
    t.check(again is not None and again['Path'] != mapping['Path'] and status == 1 and out == '' and err == (
        f'Declared again, but its mapping {mapping["Id"]} was removed before it was active: released.\n'
        f'again was declared again meanwhile; its mapping is {again["Id"]} now.\n'),
        'declare --wait: declared again with other settings, the new mapping named', f'{status} {out!r} {err!r}')
    # (a plain declare of a mapping that is only requested says so)
    t.check(again is not None and r.stdout == f'Declared again: mapping {again["Id"]} (requested; pcpctl declare '
            '--wait follows it).\n' and r.stderr == '', 'declare of a pending mapping says it is only requested',
            f'{r.stdout!r} {r.stderr!r}')
    t.test_call('SettleDeclared', '')
    r = t.run('declare', 'again', 'tcp', '8096', '--external-port=18096')
    t.check(again is not None and r.stdout == f'Declared again: mapping {again["Id"]}.\n' and r.stderr == '',
            'declare of an active mapping: the line as it was', f'{r.stdout!r} {r.stderr!r}')
    t.run('undeclare', 'again')
    t.test_call('HoldDeclared', 'b', 'false')

    # a server that refuses third-party mappings: status 1, the error named, and the
    # declaration that stays (and how to remove it); nothing on stdout
    r = t.run('declare', 'tp', 'tcp', '8090', '--third-party=192.168.1.30', '--wait', status=1)
    tp = declared_in_list(t, 'tp')
    mid = tp['Id'] if tp else '?'
    t.check(r.stdout == '' and r.stderr == f'Declared tp, but its mapping {mid} failed: NOT_AUTHORIZED\n'
            'The declaration stays in place and pcpd keeps trying; remove it with: pcpctl undeclare tp\n',
            'declare --wait on a refused mapping: status 1, names the error and the declaration left',
            f'{r.stdout!r} {r.stderr!r}')
    t.check(tp is not None and tp['State'] == 'failed', 'the failed declaration stays declared', tp)
    r = t.run('declare', 'tp', 'tcp', '8090', '--third-party=192.168.1.30', '--wait', '--json', status=1)
    try:
        j = json.loads(r.stdout)
        t.check(j['State'] == 'failed' and j['Error'] == 'NOT_AUTHORIZED' and j['Name'] == 'tp'
                and 'NOT_AUTHORIZED' in r.stderr, 'declare --wait --json on a failed mapping: State and Error',
                f'{r.stdout!r} {r.stderr!r}')
    except (ValueError, TypeError, KeyError) as e:
        t.check(False, 'declare --wait --json parses (failed)', f'{e}: {r.stdout!r}')
    # without --wait: declared, status 0 as before, and a mapping that has failed already
    # is said to have failed
    r = t.run('declare', 'tp', 'tcp', '8090', '--third-party=192.168.1.30')
    t.check(r.stdout == f'Declared tp: mapping {mid} (failed).\n' and r.stderr == (
        f'Mapping {mid} has failed: NOT_AUTHORIZED\n'
        'The declaration stays in place and pcpd keeps trying; remove it with: pcpctl undeclare tp\n'),
        'declare of a failed mapping says it failed', f'{r.stdout!r} {r.stderr!r}')
    # its state unreadable: the declaration is made all the same (status 0), said without a state
    t.test_call('FailMappingGetAll', 'os', tp['Path'] if tp else '/', 'org.freedesktop.DBus.Error.AccessDenied')
    r = t.run('declare', 'tp', 'tcp', '8090', '--third-party=192.168.1.30')
    t.check(r.stdout == f'Declared tp: mapping {mid}.\n' and r.stderr == f'Cannot read the state of mapping {mid}: '
            'Access denied by the bus policy.\n', 'declare: a state it cannot read is said to be unknown',
            f'{r.stdout!r} {r.stderr!r}')

    declared_hints(t)

    # no mapping because port mapping is switched off (pcpctl disable): said so, and how
    # to switch it on, not "journalctl -u pcpd says why"
    t.run('disable')
    r = t.run('declare', 'off', 'tcp', '8098')
    t.check(r.stdout == 'Declared off; it cannot be mapped while port mapping is switched off (pcpctl enable turns '
            'it on).\n' and r.stderr == '', 'declare while switched off: says so', f'{r.stdout!r} {r.stderr!r}')
    for args in ((), ('--json',)):
        r = t.run('declare', 'off', 'tcp', '8098', '--wait', *args, status=1)
        t.check(r.stderr == 'Declared off, but port mapping is switched off (pcpctl enable turns it on): there is no '
                'mapping to wait for.\nThe declaration stays in place and pcpd keeps trying; remove it with: pcpctl '
                'undeclare off\n', f'declare --wait {" ".join(args)} while switched off: says so', repr(r.stderr))
    r = t.run('declare', 'off', 'tcp', '8098', '--json')
    t.check(r.stdout == '{"Name":"off","Mapping":"/"}\n' and r.stderr == '',
            'declare --json while switched off: as before', f'{r.stdout!r} {r.stderr!r}')
    t.run('enable')
    t.run('undeclare', 'off')

    # no mapping yet ("/"): --wait does not wait for one that may never come; status 1
    t.test_call('MapDeclared', 'b', 'false')
    r = t.run('declare', 'later', 'tcp', '8091', '--wait', status=1)
    t.check(r.stdout == '' and 'there is no mapping to wait for' in r.stderr
            and r.stderr.endswith('remove it with: pcpctl undeclare later\n'),
            'declare --wait with no mapping: says it cannot wait, status 1', f'{r.stdout!r} {r.stderr!r}')
    r = t.run('declare', 'later', 'tcp', '8091', '--wait', '--json', status=1)
    try:
        t.check(json.loads(r.stdout) == {'Name': 'later', 'Mapping': '/', 'State': None, 'Error': None,
                                         'ExternalAddress': None, 'ExternalPort': None},
                'declare --wait --json with no mapping: null State and Error', r.stdout)
    except ValueError as e:
        t.check(False, 'declare --wait --json parses (no mapping)', f'{e}: {r.stdout!r}')
    r = t.run('declare', 'later', 'tcp', '8091', '--json')
    t.check(r.stdout == '{"Name":"later","Mapping":"/"}\n', 'declare --json without --wait: as before', r.stdout)

    for name in ('web', 'slow', 'slowtp', 'tp', 'later'):
        t.run('undeclare', name)
    t.check(f'released {web["Path"] if web else "?"}' in t.removals() and declared_in_list(t, 'tp') is None,
            'undeclare removes the declared mappings', t.removals())


def declared_hints(t):
    """map --persistent of a port a declaration has gets the declared mapping (pcpd shares
    it), which release cannot remove (pcpd refuses it: the mapping goes with its
    declaration): the hints name undeclare, or the administrator's file."""
    tmp = tempfile.mkdtemp(prefix='pcpctl-fake-declared-')
    try:
        # the layout of a pcpd run with --config DIR/pcpd.conf --state-dir DIR/state (the
        # demo's): DIR/mappings.d has the administrator's declarations
        os.mkdir(os.path.join(tmp, 'state'))
        with open(os.path.join(tmp, 'pcpd.conf'), 'w', encoding='utf-8') as f:
            f.write('[PCP]\n')
        for name, file, port, etc in (
                ('rt', None, '8099', False),
                ('etcweb', '/etc/pcpd/mappings.d/etcweb.conf', '8100', True),
                ('demoetc', os.path.join(tmp, 'mappings.d', 'demoetc.conf'), '8101', True),
                ('demort', os.path.join(tmp, 'state', 'mappings.d', 'demort.conf'), '8102', False)):
            if file is None:
                t.run('declare', name, 'tcp', port)
            else:
                t.test_call('DeclareIn', 'sssq', name, file, 'tcp', port)
            mapping = declared_in_list(t, name)
            mid = mapping['Id'] if mapping else '?'
            if etc:
                want = (f'Mapping {mid} is the mapping declared in {file}, which outlives pcpctl; remove that file '
                        'and reload pcpd (systemctl reload pcpd) to remove it.\n')
            else:
                want = (f'Mapping {mid} is the declared mapping {name}, which outlives pcpctl; remove it with: pcpctl '
                        f'undeclare {name}\n')
            r = t.run('map', 'tcp', port, '--persistent')
            t.check(r.stdout.endswith(want) and 'release' not in r.stdout,
                    f'map --persistent of the declared {name}: how it is removed', f'{r.stdout!r} {r.stderr!r}')
            # revoke declared:NAME tells it alike
            r = t.run('revoke', f'declared:{name}', status=1)
            t.check(r.stderr.endswith(f'declared:{name} is the mapping declared in {file}, which has no app id: remove '
                                      'that file and reload pcpd (systemctl reload pcpd).\n' if etc else
                                      f"declared:{name} is a declared mapping, which has no app id: 'pcpctl undeclare "
                                      f"{name}' removes it.\n"),
                    f'revoke declared:{name}: how it is removed', repr(r.stderr))
            if file is None:
                t.run('undeclare', name)
            else:
                t.test_call('DeclareIn', 'sssq', name, '', '', '0')
        # --wait on a declared mapping that fails (port 9999: NO_RESOURCES), which existed
        # before the call: left as it is, and how it is removed
        for name, file in (('bad', None), ('badetc', '/etc/pcpd/mappings.d/badetc.conf')):
            if file is None:
                t.run('declare', name, 'tcp', '9999')
            else:
                t.test_call('DeclareIn', 'sssq', name, file, 'tcp', '9999')
            mapping = declared_in_list(t, name)
            mid = mapping['Id'] if mapping else '?'
            r = t.run('map', 'tcp', '9999', '--persistent', '--wait', status=1)
            if file is None:
                want = (f'Mapping {mid} existed before this call (it is the declared mapping bad) and is left as it '
                        'is; remove it with: pcpctl undeclare bad\n')
            else:
                want = (f'Mapping {mid} existed before this call (it is the mapping declared in {file}) and is left '
                        'as it is; remove that file and reload pcpd (systemctl reload pcpd) to remove it.\n')
            t.check(r.stderr.endswith(want) and declared_in_list(t, name) is not None,
                    f'map --persistent --wait on the failed declared {name}: left, how it is removed',
                    f'{r.stdout!r} {r.stderr!r}')
            if file is None:
                t.run('undeclare', name)
            else:
                t.test_call('DeclareIn', 'sssq', name, '', '', '0')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def start_bus(tmp, tag):
    """A dbus-daemon of its own on a socket in tmp: its process and address ('' when it did not start)."""
    socket = os.path.join(tmp, f'bus-{tag}')
    config = os.path.join(tmp, f'bus-{tag}.conf')
    with open(config, 'w', encoding='utf-8') as f:
        f.write(CONFIG.format(socket=socket))
    bus = subprocess.Popen([shutil.which('dbus-daemon'), f'--config-file={config}', '--nofork', '--print-address'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return bus, bus.stdout.readline().strip()


def start_fake(fake, address, log):
    """fake-pcpd.py on the bus at address: the process once it owns the name, else None."""
    service = subprocess.Popen([sys.executable, fake, address, log], stdout=subprocess.PIPE, text=True)
    if service.stdout.readline().strip() != 'ready':
        service.kill()
        service.wait()
        return None
    return service


def end(p):
    """p (one of ours) ended: terminated, killed if it does not exit within 5 s."""
    if p is not None and p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def declare_wait_ends(pcpctl, fake, tmp, t):
    """declare --wait while pcpd goes away, and while the bus itself goes: status 1 at once,
    what happened and that the declaration stays; nothing on stdout. On a bus of its own
    (this one is lost), with the fake started anew; the results counted in t."""
    bus, address = start_bus(tmp, 'ends')
    service = w = None
    try:
        if not t.check(address != '', 'a second bus for the ends of declare --wait', ''):
            return
        log = os.path.join(tmp, 'removed-ends.log')
        w = Test(pcpctl, dict(t.env, DBUS_SYSTEM_BUS_ADDRESS=address), log)
        for what in ('pcpd', 'bus'):
            service = start_fake(fake, address, log)
            if not t.check(service is not None, f'the fake daemon starts (for the {what} going away)', ''):
                return
            w.test_call('MapDeclared', 'b', 'true')
            w.test_call('HoldDeclared', 'b', 'true')
            name = f'{what}gone'
            p, mapping = start_waiting(w, name, '8097')
            if what == 'pcpd':
                service.terminate()  # pcpd stops: its name goes (NameOwnerChanged)
                service.wait(timeout=10)
                want = (f'Declared pcpdgone, but pcpd went away before its mapping {mapping["Id"]} was active; the '
                        'declaration is saved, and pcpd makes the mapping again when it starts.\n')
            else:
                # the connection to the bus is lost (SIGKILL: a dbus-daemon that stops on
                # SIGTERM may tell of the fake's name going first)
                bus.kill()
                bus.wait(timeout=10)
                want = (f'Declared busgone, but lost the connection to the system bus before its mapping '
                        f'{mapping["Id"]} was active.\n'
                        'The declaration stays in place and pcpd keeps trying; remove it with: pcpctl undeclare '
                        'busgone\n')
            status, out, err = finish(p)
            t.check(status == 1 and out == '' and err == want,
                    f'declare --wait: the {what} goes away while it waits: status 1, said so',
                    f'{status} {out!r} {err!r}')
            end(service)
    finally:
        if w is not None:
            t.passed += w.passed
            t.failed += w.failed
        end(service)
        end(bus)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    pcpctl, fake = sys.argv[1], sys.argv[2]
    daemon = shutil.which('dbus-daemon')
    try:
        import dbus  # noqa: F401
        from gi.repository import GLib  # noqa: F401
    except ImportError as e:
        print(f'SKIP: {e}')
        return 77
    if daemon is None:
        print('SKIP: dbus-daemon is not installed')
        return 77

    tmp = tempfile.mkdtemp(prefix='pcpctl-fake-')
    socket = os.path.join(tmp, 'bus')
    config = os.path.join(tmp, 'bus.conf')
    log = os.path.join(tmp, 'removed.log')
    with open(config, 'w', encoding='utf-8') as f:
        f.write(CONFIG.format(socket=socket))

    bus = subprocess.Popen([daemon, f'--config-file={config}', '--nofork', '--print-address'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    service = None
    try:
        address = bus.stdout.readline().strip()
        if not address:
            print(f'FAIL: dbus-daemon did not start: {bus.stderr.read()}')
            return 1
        env = dict(os.environ, LC_ALL='C.UTF-8', LANGUAGE='', DBUS_SYSTEM_BUS_ADDRESS=address)
        service = subprocess.Popen([sys.executable, fake, address, log], stdout=subprocess.PIPE, text=True)
        if service.stdout.readline().strip() != 'ready':
            print('FAIL: the fake daemon did not start')
            return 1

        t = Test(pcpctl, env, log)
        scenario(t)

        # pcpd goes away while a mapping is held: pcpctl says the router keeps it, waits,
        # and asks again when pcpd is back
        p = t.start('map', 'tcp', '7002', '--wait')
        read_line(p)
        service.terminate()
        service.wait(timeout=10)
        err = read_line_of(p.stderr)
        # the time of day, or with the date when the expiry falls on another day (tomorrow)
        tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).strftime('%a %Y-%m-%d ')
        t.check(err is not None and re.match(r'pcpd went away; the router keeps the mapping until it expires at '
                                             rf'(?:{re.escape(tomorrow)})?\d\d:\d\d:\d\d \(in 59min 5\ds\)\.$',
                                             err) is not None,
                'holder says what the router keeps when pcpd goes away', repr(err))
        t.check(read_line_of(p.stderr) == 'Waiting for pcpd to come back, to ask for the mapping again.',
                'holder waits for pcpd', '')
        t.check(p.poll() is None, 'holder keeps running while pcpd is away', p.poll())
        r = t.run('status', status=1)
        t.check(r.stderr == 'Failed to query status: pcpd is not running and could not be started. See "systemctl '
                'status pcpd" and "journalctl -u pcpd" for details.\n', 'pcpd not running: says where to look',
                repr(r.stderr))
        for args in (('release', '7'), ('enable',), ('map', 'tcp', '7003', '--persistent')):
            r = t.run(*args, status=1)
            t.check(r.stderr.endswith(': pcpd is not running and could not be started. See "systemctl status pcpd" '
                                      'and "journalctl -u pcpd" for details.\n'),
                    f'{args[0]} without pcpd: says where to look', repr(r.stderr))
        m = t.start('monitor')
        t.check(read_line(m) == 'Monitoring pcpd (not running now); press Ctrl+C to stop.',
                'monitor without pcpd waits for it', '')
        status, out, err = stop(m)
        t.check(status == 0 and err == '', 'monitor without pcpd exits 0 on SIGINT', f'{status} {err!r}')
        for args in ((), ('--json',), ('ipv4',)):
            r = t.run('external-address', *args, status=1)
            t.check(r.stdout == '' and r.stderr == 'Failed to query the external address: pcpd is not running and '
                    'could not be started. See "systemctl status pcpd" and "journalctl -u pcpd" for details.\n',
                    ' '.join(('external-address',) + args) + ' without pcpd: the error only',
                    f'{r.stdout!r} {r.stderr!r}')
        service = subprocess.Popen([sys.executable, fake, address, log], stdout=subprocess.PIPE, text=True)
        t.check(service.stdout.readline().strip() == 'ready', 'the fake daemon is back')
        err = read_line_of(p.stderr)
        t.check(err == 'pcpd restarted; mapping re-established at 198.51.100.1:7002.',
                'holder re-attaches and says so', repr(err))
        r = t.run('list', '--json')
        t.check([(m['InternalPort'], m['ExternalPort']) for m in json.loads(r.stdout)] == [(7002, 7002)],
                'the mapping is held again', r.stdout)
        status, out, err = stop(p)
        t.check(status == 0 and wait_for(lambda: 'released /org/freedesktop/PCP1/mapping/1' in t.removals()),
                'the re-attached holder releases on SIGINT', f'{status} {err!r} {t.removals()}')

        declare_wait_ends(pcpctl, fake, tmp, t)

        print(f'{t.passed} passed, {t.failed} failed')
        return 1 if t.failed else 0
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
