#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpctl against fake-pcpd.py on a private dbus-daemon (DBUS_SYSTEM_BUS_ADDRESS).

  test-pcpctl-fake.py PATH/TO/pcpctl PATH/TO/fake-pcpd.py

Exit 77 (skipped) when dbus-daemon, python3-dbus or python3-gi is missing.
"""

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


def scenario(t):
    # status
    r = t.run('status', stdout='Version: 0.1.0-fake')
    t.check('eth0' in r.stdout and '192.168.1.1' in r.stdout and 'dhcpv4' in r.stdout,
            'status shows the servers table', r.stdout)
    t.check('External addresses: 198.51.100.1' in r.stdout, 'status shows the external address', r.stdout)
    r = t.run(stdout='Enabled: yes')  # status is the default verb
    r = t.run('status', '--json')
    try:
        j = json.loads(r.stdout)
        t.check(j['Version'] == '0.1.0-fake' and j['Servers'][0][0] == 'eth0' and j['MappingCount'] == 0,
                'status --json', r.stdout)
    except (ValueError, KeyError, IndexError) as e:
        t.check(False, 'status --json parses', f'{e}: {r.stdout!r}')
    r = t.run('status', '--json=pretty')
    t.check(r.stdout.count('\n') > 5 and json.loads(r.stdout)['Enabled'] is True, 'status --json=pretty',
            r.stdout)
    r = t.run('list', stdout='No mappings.')

    # map --wait: prints the path, then the outcome, then holds until SIGINT, then releases
    p = t.start('map', 'tcp', '8080', '--wait', '--lifetime', '60', '--description', 'web \x1b[31mred')
    path = read_line(p)
    t.check(path == PREFIX + '1', 'map prints the mapping path', repr(path))
    line = read_line(p)
    t.check(line == 'tcp 8080 -> 198.51.100.1:8080 (lifetime 60 s)', 'map --wait prints the outcome',
            repr(line))
    r = t.run('list')
    lines = r.stdout.splitlines()
    t.check(len(lines) >= 2 and lines[0].split()[:5] == ['ID', 'PROTO', 'INTERNAL', 'EXTERNAL', 'STATE'],
            'list has the header', r.stdout)
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
        t.check(len(j) == 1 and j[0]['Id'] == '1' and j[0]['ExternalPort'] == 8080
                and j[0]['Description'] == 'web \x1b[31mred' and j[0]['State'] == 'active',
                'list --json', r.stdout)
    except (ValueError, KeyError, IndexError) as e:
        t.check(False, 'list --json parses', f'{e}: {r.stdout!r}')
    status, out, err = stop(p)
    t.check(status == 0, 'map exits 0 on SIGINT', f'{status} {out!r} {err!r}')
    t.check(wait_for(lambda: f'released {PREFIX}1' in t.removals()), 'map released the mapping on SIGINT',
            t.removals())

    # map without --wait prints the state changes
    p = t.start('map', 'udp', '5000', '--external-port', '15000')
    path = read_line(p)
    first = read_line(p)
    second = read_line(p) if first == 'udp 5000: pending' else first
    t.check(second == 'udp 5000 -> 198.51.100.1:15000 (lifetime 3600 s)', 'map prints state changes',
            f'{first!r} {second!r}')
    status, out, err = stop(p, signal.SIGTERM)
    t.check(status == 0 and wait_for(lambda: f'released {path}' in t.removals()),
            'map releases on SIGTERM', f'{status} {err!r} {t.removals()}')

    # a mapping that fails
    r = t.run('map', 'tcp', '9999', '--wait', status=1, stderr='NO_RESOURCES')
    t.check(r.stderr.startswith('Failed to map:'), 'failure message starts with "Failed to map:"', r.stderr)
    # refused by the daemon
    r = t.run('map', 'tcp', '1000', status=1, stderr='Failed to map: Not authorized to map port 1000.')

    # persistent: returns at once, the mapping stays
    r = t.run('map', 'tcp', '8443', '--persistent')
    path = r.stdout.strip()
    t.check(path.startswith(PREFIX), 'map --persistent prints the path', r.stdout)
    time.sleep(0.2)
    r = t.run('list', stdout='8443')
    mid = path[len(PREFIX):]
    t.run('release', mid)
    t.check(f'revoked {path}' in t.removals(), 'release by id removes it', t.removals())
    t.run('release', mid, status=1, stderr='Failed to release: No mapping')
    r = t.run('map', 'tcp', '8444', '--persistent', '--wait',
              stdout='tcp 8444 -> 198.51.100.1:8444 (lifetime 3600 s)')
    t.run('release', r.stdout.splitlines()[0])

    # peer
    p = t.start('peer', 'udp', '5001', '203.0.113.5', '443', '--wait')
    read_line(p)
    line = read_line(p)
    t.check(line == 'udp 5001 -> 198.51.100.1:5001 (peer 203.0.113.5:443, lifetime 3600 s)', 'peer --wait',
            repr(line))
    r = t.run('list', stdout='udp/peer')
    stop(p)

    # the holder goes away without releasing: the (fake) daemon notices
    p = t.start('map', 'tcp', '7000')
    path = read_line(p)
    p.kill()
    p.wait()
    t.check(wait_for(lambda: f'owner-vanished {path}' in t.removals()), 'a killed holder loses its mapping',
            t.removals())

    # removed by someone else while held
    p = t.start('map', 'tcp', '7001', '--wait')
    path = read_line(p)
    read_line(p)
    t.run('release', path)
    status, out, err = stop(p, timeout=10)
    t.check(status == 1 and 'The mapping was removed: revoked' in err, 'holder exits 1 when revoked',
            f'{status} {err!r}')

    # monitor
    m = t.start('monitor')
    t.check(read_line(m) is not None, 'monitor starts')
    time.sleep(0.3)  # its matches are installed before it prints, this is for the bus
    r = t.run('map', 'tcp', '8445', '--persistent', '--wait')
    path = r.stdout.splitlines()[0]
    t.run('disable')
    t.run('enable')
    t.run('release', path)
    time.sleep(0.3)
    status, out, err = stop(m)
    t.check(status == 0, 'monitor exits 0 on SIGINT', f'{status} {err!r}')
    mid = path[len(PREFIX):]
    t.check(f'mapping {mid}: added: tcp 8445: pending' in out, 'monitor shows the addition', out)
    t.check(f'mapping {mid}: State=active' in out, 'monitor shows the change', out)
    t.check(f'mapping {mid}: removed (revoked)' in out, 'monitor shows the removal', out)
    t.check('manager: Enabled=false' in out and 'manager: Enabled=true' in out,
            'monitor shows manager changes', out)

    m = t.start('monitor', '--json')
    time.sleep(0.3)
    t.run('disable')
    t.run('enable')
    time.sleep(0.3)
    status, out, err = stop(m)
    try:
        events = [json.loads(l) for l in out.splitlines()]
        t.check(any(e['Event'] == 'changed' and e['Arguments'][1].get('Enabled') is False for e in events),
                'monitor --json', out)
    except (ValueError, KeyError, IndexError, AttributeError) as e:
        t.check(False, 'monitor --json parses', f'{e}: {out!r}')

    # enable/disable
    t.run('disable')
    t.run('status', stdout='Enabled: no')
    t.run('map', 'tcp', '8446', status=1, stderr='Failed to map: Port mappings are switched off.')
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

    # revoke
    t.run('revoke', 'org.example.Nothing', status=1, stderr="Failed to revoke: No mapping belongs to")
    r = t.run('map', 'tcp', '8447', '--persistent')
    path = r.stdout.strip()
    t.run('revoke', 'org.example.Test')
    t.check(f'revoked {path}' in t.removals(), 'revoke removes the app\'s mappings', t.removals())


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

        # the daemon goes away while a mapping is held
        p = t.start('map', 'tcp', '7002', '--wait')
        read_line(p)
        read_line(p)
        service.terminate()
        service.wait(timeout=10)
        status, out, err = stop(p, timeout=10)
        t.check(status == 1 and 'pcpd exited' in err, 'holder exits 1 when pcpd goes away',
                f'{status} {err!r}')
        t.run('status', status=1, stderr='Failed to query status: pcpd is not running')

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
