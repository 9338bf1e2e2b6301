#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The polkit data fits the user and group of pcpd.sysusers:

 - every action names pcpd's user as its owner (org.freedesktop.policykit.owner), or a
   non-root pcpd may not ask polkit about its callers and every unprivileged caller is
   refused;
 - the rules file grants only actions that exist, to a group that sysusers creates.

  test-polkit-policy.py org.freedesktop.PCP1.policy org.freedesktop.PCP1.rules pcpd.sysusers
"""

import re
import sys
import xml.etree.ElementTree as ET


def main():
    policy, rules, sysusers = sys.argv[1:4]
    errors = []
    with open(sysusers, encoding='utf-8') as f:
        entries = [l.split() for l in f if l.strip() and not l.startswith('#')]
    users = {e[1] for e in entries if e[0] == 'u'}
    groups = {e[1] for e in entries if e[0] in ('g', 'u')}
    if len(users) != 1:
        errors.append(f'{sysusers} should create exactly one user, creates {sorted(users)}')
    user = next(iter(users), None)

    actions = ET.parse(policy).getroot().findall('action')
    ids = {a.get('id') for a in actions}
    if not actions:
        errors.append(f'{policy} has no action')
    for a in actions:
        owners = [an.text.split() for an in a.findall('annotate')
                  if an.get('key') == 'org.freedesktop.policykit.owner']
        if [f'unix-user:{user}'] not in owners:
            errors.append(f'action {a.get("id")} does not name unix-user:{user} as its owner '
                          f'(org.freedesktop.policykit.owner), has {owners}')

    with open(rules, encoding='utf-8') as f:
        js = f.read()
    for aid in re.findall(r'action\.id\s*==\s*"([^"]+)"', js):
        if aid not in ids:
            errors.append(f'{rules} grants {aid}, which {policy} does not define')
    for g in re.findall(r'isInGroup\("([^"]+)"\)', js):
        if g not in groups:
            errors.append(f'{rules} names the group {g}, which {sysusers} does not create')
    if 'isInGroup' not in js:
        errors.append(f'{rules} grants nothing to a group')

    for e in errors:
        print('FAIL:', e)
    print('ok' if not errors else f'{len(errors)} problem(s)')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
