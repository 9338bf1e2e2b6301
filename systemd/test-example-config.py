#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The shipped example configuration is valid as shipped (every setting commented out)
and with every setting uncommented: pcpd accepts it and gets as far as the system bus.

  test-example-config.py PCPD pcpd.conf.example

pcpd is pointed at a bus address that does not exist, so it stops right after reading
the configuration: "Bad configuration" means the example is wrong, "Cannot connect to
the system bus" means the configuration was accepted."""

import os
import re
import subprocess
import sys
import tempfile


def run_pcpd(pcpd, conf, tmp):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS='unix:path=' + os.path.join(tmp, 'no-bus'))
    env.pop('NOTIFY_SOCKET', None)
    r = subprocess.run([pcpd, '--config', conf, '--state-dir', os.path.join(tmp, 'state')],
                       env=env, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def main():
    pcpd, example = sys.argv[1], sys.argv[2]
    with open(example, encoding='utf-8') as f:
        text = f.read()
    settings = re.findall(r'^#([A-Za-z]+)=(.*)$', text, re.M)
    uncommented = re.sub(r'^#([A-Za-z]+=)', r'\1', text, flags=re.M)
    errors = 0
    if len(settings) < 9:
        print(f'FAIL: the example shows {len(settings)} settings, expected every one (9)')
        errors += 1
    with tempfile.TemporaryDirectory(prefix='pcpd-example-') as tmp:
        for name, content in (('as shipped', text), ('uncommented', uncommented)):
            conf = os.path.join(tmp, 'pcpd.conf')
            with open(conf, 'w', encoding='utf-8') as f:
                f.write(content)
            code, out = run_pcpd(pcpd, conf, tmp)
            if code == 0 or 'Bad configuration' in out or 'Cannot connect to the system bus' not in out:
                print(f'FAIL: the example {name}: pcpd exited {code}, expected it to accept the '
                      f'configuration and stop at the missing bus:\n{out}')
                errors += 1
            else:
                print(f'ok: the example {name} is accepted')
        # and the check itself can fail: a value out of range is refused
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(uncommented.replace('GraceSeconds=30', 'GraceSeconds=99999'))
        code, out = run_pcpd(pcpd, conf, tmp)
        if 'Bad configuration' not in out:
            print(f'FAIL: an out-of-range value was not refused:\n{out}')
            errors += 1
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
