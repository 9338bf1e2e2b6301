#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks pcpd.service: the settings the design requires are there, Documentation=
names every manual page, network.target is ordered after but not pulled in, and, when
systemd-analyze is installed, `verify` accepts the unit, `security --offline` rates its
exposure at most MAX_EXPOSURE, and every item it still counts is explained in a comment.

  test-unit.py pcpd.service pcpd.sysusers MAN_DIR
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REQUIRED = {
    'Type': 'notify',
    'BusName': 'org.freedesktop.PCP1',
    'User': 'pcpd',
    'StateDirectory': 'pcpd',
    'ConfigurationDirectory': 'pcpd',
    'UMask': '0077',
    'CapabilityBoundingSet': '',
    'NoNewPrivileges': 'yes',
    'ProtectSystem': 'strict',
    'ProtectHome': 'yes',
    'PrivateTmp': 'yes',
    'PrivateDevices': 'yes',
    'ProtectKernelTunables': 'yes',
    'ProtectKernelModules': 'yes',
    'ProtectKernelLogs': 'yes',
    'ProtectControlGroups': 'yes',
    'ProtectClock': 'yes',
    'ProtectHostname': 'yes',
    'RestrictAddressFamilies': 'AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    'RestrictNamespaces': 'yes',
    'LockPersonality': 'yes',
    'MemoryDenyWriteExecute': 'yes',
    'RestrictRealtime': 'yes',
    'RestrictSUIDSGID': 'yes',
    'SystemCallArchitectures': 'native',
    'ExecReload': '+busctl call org.freedesktop.PCP1 /org/freedesktop/PCP1 org.freedesktop.PCP1.Manager Reload',
    'Restart': 'on-failure',
    'RestartPreventExitStatus': '78',
}
FORBIDDEN = ('DynamicUser', 'PrivateUsers', 'PrivateNetwork', 'AmbientCapabilities=CAP', 'Wants=network',
             'Requires=network')
# systemd-analyze's threshold is in tenths: 15 = 1.5. Why not lower: the comments at the
# end of the unit (ProtectProc=, PrivateUsers=, IPAddressDeny= each cost a feature).
MAX_EXPOSURE = 15


def fail(msg):
    print(f'FAIL: {msg}', file=sys.stderr)
    return 1


def parse(path):
    settings = {}
    section = None
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(('#', ';')):
                continue
            if line.startswith('['):
                section = line.strip('[]')
                continue
            key, _, value = line.partition('=')
            settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


def check_explained(analyze, unit, text):
    """Every item systemd-analyze security still counts is named in a comment of the
    unit (why it is not closed)."""
    r = subprocess.run([analyze, 'security', '--offline=true', '--no-pager', '--json=short', unit],
                       capture_output=True, text=True, timeout=60)
    try:
        items = json.loads(r.stdout)
    except ValueError:
        return fail(f'systemd-analyze security --json=short gave no JSON: {r.stderr.strip()}')
    comments = '\n'.join(l for l in text.splitlines() if l.lstrip().startswith('#'))
    errors = 0
    counted = [i['name'] for i in items if i.get('exposure')]
    for name in counted:
        # "RestrictAddressFamilies=~AF_(INET|INET6)" -> AF_INET; "RootDirectory=/RootImage=" ->
        # RootDirectory=; "DeviceAllow=" -> DeviceAllow
        if name.startswith('RestrictAddressFamilies='):
            word = 'AF_' + re.search(r'AF_\(?([A-Z0-9]+)', name).group(1)
        else:
            word = name.split('=')[0]
        if word not in comments:
            errors += fail(f'systemd-analyze security counts {name}, and no comment in the unit '
                           f'says why ({word} is not mentioned)')
    print(f'{len(counted)} counted item(s), each explained' if not errors else '')
    return errors


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    unit, sysusers, man_dir = sys.argv[1:4]
    errors = 0
    settings = parse(unit)

    for key, want in REQUIRED.items():
        have = settings.get(('Service', key))
        if have is None or want not in have:
            errors += fail(f'{key}={want} missing (have {have})')
    filters = settings.get(('Service', 'SystemCallFilter'), [])
    if '@system-service' not in filters:
        errors += fail('SystemCallFilter=@system-service missing')
    with open(unit, encoding='utf-8') as f:
        text = f.read()
    for bad in FORBIDDEN:
        if re.search(rf'^{re.escape(bad)}', text, re.M):
            errors += fail(f'{bad} must not be set (see the comments in the unit)')
    if '@' in ''.join(settings.get(('Service', 'ExecStart'), [])):
        errors += fail('ExecStart= was not configured')

    # readiness, status and watchdog come from pcpd itself (sd_notify)
    if settings.get(('Service', 'Type')) != ['notify']:
        errors += fail('Type= must be notify (READY=1, STATUS=, WATCHDOG=1 come from pcpd)')
    watchdog = settings.get(('Service', 'WatchdogSec'), [''])[-1]
    if not re.fullmatch(r'\d+(s|min)?', watchdog) or watchdog in ('0', '0s', '0min'):
        errors += fail(f'WatchdogSec= must be a positive time (have {watchdog!r})')
    if 'network.target' not in ' '.join(settings.get(('Unit', 'After'), [])):
        errors += fail('After=network.target missing')
    # NetworkManager: ordered after it, never pulled in nor required (pcpd works without it)
    if 'NetworkManager.service' not in ' '.join(settings.get(('Unit', 'After'), [])):
        errors += fail('After=NetworkManager.service missing')
    for dep in ('Requires', 'Wants', 'BindsTo', 'Requisite', 'PartOf'):
        if 'NetworkManager' in ' '.join(settings.get(('Unit', dep), [])):
            errors += fail(f'{dep}= must not name NetworkManager: pcpd runs without it')

    docs = ' '.join(settings.get(('Unit', 'Documentation'), [])).split()
    pages = sorted(f for f in os.listdir(man_dir) if re.fullmatch(r'.+\.[1-8]', f))
    for page in pages:
        name, _, section = page.rpartition('.')
        if f'man:{name}({section})' not in docs:
            errors += fail(f'Documentation= does not name man:{name}({section})')
    for d in docs:
        m = re.fullmatch(r'man:(.+)\((\d)\)', d)
        if m and f'{m.group(1)}.{m.group(2)}' not in pages:
            errors += fail(f'Documentation= names {d}, which man/ does not have')

    with open(sysusers, encoding='utf-8') as f:
        if not re.search(r'^u\s+pcpd\s', f.read(), re.M):
            errors += fail(f'{sysusers} does not create the user pcpd')

    analyze = shutil.which('systemd-analyze')
    if analyze is None:
        print('systemd-analyze is not installed: verify and security are left out')
    else:
        with tempfile.TemporaryDirectory(prefix='pcpd-unit-') as tmp:
            # verify wants an executable that exists
            copy = os.path.join(tmp, 'pcpd.service')
            with open(copy, 'w', encoding='utf-8') as f:
                f.write(re.sub(r'^ExecStart=.*$', 'ExecStart=/bin/true', text, flags=re.M))
            r = subprocess.run([analyze, 'verify', '--man=no', copy],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0 or 'pcpd.service' in r.stderr:
                errors += fail(f'systemd-analyze verify: {r.stderr.strip()}')
            else:
                print('systemd-analyze verify: ok')
            r = subprocess.run([analyze, 'security', '--offline=true', '--no-pager',
                                f'--threshold={MAX_EXPOSURE}', copy],
                               capture_output=True, text=True, timeout=60)
            overall = [l for l in r.stdout.splitlines() if 'Overall exposure' in l]
            print(overall[0] if overall else r.stdout)
            if r.returncode != 0:
                errors += fail(f'exposure above {MAX_EXPOSURE / 10}: {r.stderr.strip()}')
            errors += check_explained(analyze, copy, text)

    print('ok' if errors == 0 else f'{errors} problem(s)')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
