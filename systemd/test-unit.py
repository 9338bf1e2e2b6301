#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks pcpd.service: the settings the design requires are there, and, when
systemd-analyze is installed, `verify` accepts the unit and `security --offline`
rates its exposure at most 1.5.

  test-unit.py pcpd.service pcpd.sysusers
"""

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
    'RuntimeDirectory': 'pcpd',
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
}
FORBIDDEN = ('DynamicUser', 'PrivateUsers', 'PrivateNetwork', 'AmbientCapabilities=CAP')
MAX_EXPOSURE = 15  # systemd-analyze's threshold is in tenths: 15 = 1.5


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


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    unit, sysusers = sys.argv[1], sys.argv[2]
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

    print('ok' if errors == 0 else f'{errors} problem(s)')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
