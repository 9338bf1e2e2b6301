#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpctl's command line: bad input exits 2 with a message naming the bad value, before
any bus traffic; --help and --version exit 0.

  test-pcpctl-usage.py PATH/TO/pcpctl
"""

import os
import subprocess
import sys
import tempfile

USAGE = 2

CASES = [
    # (arguments, expected exit status, text expected on stderr)
    (['map', 'tcp', 'abc'], USAGE, "Invalid port 'abc': must be 1-65535"),
    (['map', 'tcp', '0'], USAGE, "Invalid port '0'"),
    (['map', 'tcp', '65536'], USAGE, "Invalid port '65536'"),
    (['map', 'tcp', '-1'], USAGE, "Unknown option '-1'"),
    (['map', '--', 'tcp', '-1'], USAGE, "Invalid port '-1'"),
    (['map', 'tcp', '80x'], USAGE, "Invalid port '80x'"),
    (['map', 'foo', '80'], USAGE, "Invalid protocol 'foo'"),
    (['map', '256', '80'], USAGE, "Invalid protocol '256'"),
    # pcpd refuses protocol 0: refused here, before the bus, with the range pcpd accepts
    (['map', '0', '80'], USAGE, "Invalid protocol '0': must be tcp, udp, sctp, dccp or a protocol number 1-255"),
    (['peer', '0', '80', '192.0.2.1', '443'], USAGE, "Invalid protocol '0'"),
    (['map', 'tcp'], USAGE, "Too few arguments for 'map'"),
    (['map', 'tcp', '1', '2'], USAGE, "Too many arguments for 'map'"),
    (['frobnicate'], USAGE, "Unknown command 'frobnicate'"),
    (['--frobnicate'], USAGE, "Unknown option '--frobnicate'"),
    (['-x'], USAGE, "Unknown option '-x'"),
    (['map', 'tcp', '80', '--lifetime'], USAGE, "needs an argument"),
    (['map', 'tcp', '80', '--lifetime', 'abc'], USAGE, "Invalid lifetime 'abc'"),
    (['map', 'tcp', '80', '--lifetime=0'], USAGE, "Invalid lifetime '0'"),
    (['map', 'tcp', '80', '--lifetime=4294967296'], USAGE, "Invalid lifetime '4294967296'"),
    (['map', 'tcp', '80', '--family', 'ipv5'], USAGE, "Invalid address family 'ipv5'"),
    (['map', 'tcp', '80', '--interface', 'a/b'], USAGE, "Invalid interface name 'a/b'"),
    (['map', 'tcp', '80', '--interface', 'x' * 16], USAGE, "Invalid interface name"),
    (['map', 'tcp', '80', '--external-port', '70000'], USAGE, "Invalid external port '70000'"),
    (['map', 'tcp', '80', '--description', 'x' * 1025], USAGE, 'Invalid description'),
    # pcpd's limit (PCP1_MAX_DESCRIPTION, 256 bytes), not a larger one of pcpctl's own
    (['map', 'tcp', '80', '--description', 'x' * 257], USAGE,
     'Invalid description: must be at most 256 bytes of UTF-8.'),
    (['map', 'tcp', '80', '--description', '\u00e9' * 128 + 'x'], USAGE, 'Invalid description'),
    (['map', 'tcp', '80', '--interface', 'nosuch0'], USAGE, "No such interface 'nosuch0'"),
    (['peer', 'tcp', '80', 'not-an-ip', '443'], USAGE, "Invalid remote address 'not-an-ip'"),
    (['peer', 'tcp', '80', '192.0.2.1', '0'], USAGE, "Invalid remote port '0'"),
    (['peer', 'tcp', '80', '192.0.2.1', '443', '--external-port=5'], USAGE,
     "--external-port is not supported by 'peer'"),
    # pcpd refuses prefer-failure without a suggested external port: refused here, before the bus
    (['map', 'tcp', '8700', '--prefer-failure', '--persistent'], USAGE,
     'Option --prefer-failure needs --external-port= other than 0.'),
    (['map', 'tcp', '8700', '--prefer-failure'], USAGE, 'Option --prefer-failure needs --external-port='),
    (['map', 'tcp', '8700', '--prefer-failure', '--external-port=0', '--wait'], USAGE,
     'Option --prefer-failure needs --external-port='),
    (['peer', 'tcp', '80', '192.0.2.1', '443', '--persistent'], USAGE,
     "--persistent is not supported by 'peer'"),
    (['status', '--lifetime', '5'], USAGE, "--lifetime is not supported by 'status'"),
    (['list', '--wait'], USAGE, "--wait is not supported by 'list'"),
    (['list', 'extra'], USAGE, "Too many arguments for 'list'"),
    (['release'], USAGE, "Too few arguments for 'release'"),
    (['release', 'a/b'], USAGE, "Invalid mapping 'a/b'"),
    (['release', 'abc'], USAGE, "Invalid mapping 'abc': expected a mapping id (a number"),
    (['release', '/org/freedesktop/PCP1/mapping/abc'], USAGE, "Invalid mapping"),
    (['release', '/org/freedesktop/PCP1/other/1'], USAGE, "Invalid mapping '/org/freedesktop/PCP1/other/1'"),
    (['release', '/org/freedesktop/PCP1/mapping/'], USAGE, 'Invalid mapping'),
    (['external-address', 'ipv5'], USAGE, "Invalid address family 'ipv5'"),
    (['revoke', ''], USAGE, "Invalid app id"),
    (['revoke', 'a' * 256], USAGE, "Invalid app id"),
    (['--json=bad', 'status'], USAGE, "Invalid --json mode 'bad'"),
    (['enable', 'now'], USAGE, "Too many arguments for 'enable'"),
]


def run(pcpctl, args, env):
    return subprocess.run([pcpctl] + args, capture_output=True, text=True, env=env, timeout=30)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    pcpctl = sys.argv[1]
    failures = 0

    with tempfile.TemporaryDirectory(prefix='pcpctl-usage-') as tmp:
        # a bus that does not exist: if a usage error got as far as the bus, the exit status
        # would be 1, not 2
        env = dict(os.environ, LC_ALL='C', LANGUAGE='',
                   DBUS_SYSTEM_BUS_ADDRESS=f'unix:path={tmp}/no-such-bus')

        for args, status, text in CASES:
            r = run(pcpctl, args, env)
            ok = r.returncode == status and text in r.stderr and r.stdout == ''
            if status == USAGE:
                ok = ok and "Try 'pcpctl --help'" in r.stderr
            print(f"{'ok  ' if ok else 'FAIL'} pcpctl {' '.join(args)[:60]!s} -> {r.returncode}")
            if not ok:
                print(f'     expected {status} and {text!r} on stderr; got stdout={r.stdout!r} '
                      f'stderr={r.stderr!r}')
                failures += 1

        r = run(pcpctl, ['--help'], env)
        if r.returncode != 0 or 'Commands:' not in r.stdout or 'external-address' not in r.stdout:
            print(f'FAIL --help: {r.returncode} {r.stdout!r} {r.stderr!r}')
            failures += 1
        else:
            print('ok   pcpctl --help')

        r = run(pcpctl, ['--version'], env)
        if r.returncode != 0 or not r.stdout.startswith('pcpctl '):
            print(f'FAIL --version: {r.returncode} {r.stdout!r}')
            failures += 1
        else:
            print('ok   pcpctl --version')

        r = run(pcpctl, ['--json=help'], env)
        if r.returncode != 0 or r.stdout.split() != ['short', 'pretty', 'off']:
            print(f'FAIL --json=help: {r.returncode} {r.stdout!r}')
            failures += 1
        else:
            print('ok   pcpctl --json=help')

        # valid input, no bus: a failure (1) that says what failed
        # (a description of exactly 256 bytes and protocols 1 and 255 are what pcpd accepts)
        accepted = (['status'], [], ['list'], ['map', 'tcp', '8080'], ['release', '7'], ['--no-pager', '-l', 'list'],
                    ['-j', 'status'], ['map', 'tcp', '8080', '--json', '--interface', 'lo'], ['--json', 'release', '7'],
                    ['map', 'tcp', '8080', '--description', 'x' * 256],
                    ['map', 'tcp', '8080', '--description', '\u00e9' * 128],
                    ['map', '1', '8080'], ['map', '255', '8080'],
                    ['map', 'tcp', '8700', '--prefer-failure', '--external-port=8700'])
        for args in accepted:
            r = run(pcpctl, args, env)
            if r.returncode != 1 or 'Failed to' not in r.stderr:
                print(f'FAIL pcpctl {" ".join(args)[:60]} without a bus: {r.returncode} {r.stderr!r}')
                failures += 1
            else:
                print(f'ok   pcpctl {" ".join(args)[:60]} without a bus -> 1: {r.stderr.strip()}')

    print(f'{len(CASES) + 3 + len(accepted) - failures} passed, {failures} failed')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
