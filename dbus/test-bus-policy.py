#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run a private system-bus-like dbus-daemon that includes org.freedesktop.PCP1.conf.

  test-bus-policy.py POLICY.conf

Always: the daemon starts with the policy (dbus-daemon rejects a broken file).
As root, with python3-dbus and the user "nobody": root may own org.freedesktop.PCP1, and
an unprivileged user may call the Manager interface but may neither own the name nor call
an interface the policy does not list. Exit 77 (skipped) only when dbus-daemon is missing.
"""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUS_NAME = 'org.freedesktop.PCP1'

# the private bus of the bus tests (Debian's system.conf defaults + the policy)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'data',
                       'test-system-bus.conf.in')) as _f:
    CONFIG = _f.read()

# The service side, run as root in a child: owns the name and answers two methods, one on
# an interface the policy opens to everyone and one on an interface it does not list.
SERVICE = r'''
import sys, dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
class Manager(dbus.service.Object):
    @dbus.service.method('org.freedesktop.PCP1.Manager', in_signature='s', out_signature='ss')
    def GetExternalAddress(self, family):
        return ('192.0.2.1', '')
    @dbus.service.method('org.example.Hidden', in_signature='', out_signature='s')
    def Secret(self):
        return 'leaked'
Manager(bus, '/org/freedesktop/PCP1')
name = dbus.service.BusName('org.freedesktop.PCP1', bus, do_not_queue=True)
print('ready', flush=True)
GLib.MainLoop().run()
'''


def fail(msg):
    print(f'FAIL: {msg}', file=sys.stderr)
    sys.exit(1)


def dbus_send(address, args, user=None):
    cmd = ['dbus-send', f'--bus={address}', '--print-reply', '--reply-timeout=5000'] + args
    preexec = None
    if user is not None:
        def preexec():
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, preexec_fn=preexec)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    policy = os.path.abspath(sys.argv[1])
    daemon = shutil.which('dbus-daemon')
    if daemon is None:
        print('SKIP: dbus-daemon is not installed')
        return 77

    tmp = tempfile.mkdtemp(prefix='pcpd-bus-policy-')
    os.chmod(tmp, 0o755)
    socket = os.path.join(tmp, 'bus')
    config = os.path.join(tmp, 'bus.conf')
    with open(config, 'w', encoding='utf-8') as f:
        f.write(CONFIG.format(socket=socket, policy=policy, limits=''))

    bus = subprocess.Popen([daemon, f'--config-file={config}', '--nofork', '--print-address'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    service = None
    try:
        address = bus.stdout.readline().strip()
        if not address:
            fail(f'dbus-daemon did not start with {policy}: {bus.stderr.read()}')
        print(f'dbus-daemon runs with the policy at {address}')

        if os.getuid() != 0:
            print('not root: the ownership and access checks need root and are left out')
            return 0
        try:
            nobody = pwd.getpwnam('nobody')
        except KeyError:
            print('no user "nobody": the access checks are left out')
            return 0
        try:
            import dbus  # noqa: F401  (only checks that the service side can run)
            from gi.repository import GLib  # noqa: F401
        except ImportError:
            print('python3-dbus or python3-gi missing: the access checks are left out')
            return 0

        # root may own the name
        service = subprocess.Popen([sys.executable, '-c', SERVICE, address],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = service.stdout.readline().strip()
        if line != 'ready':
            fail(f'root could not own {BUS_NAME}: {service.stderr.read()}')
        print(f'root owns {BUS_NAME}')

        # everyone may call the Manager interface ...
        r = dbus_send(address, [f'--dest={BUS_NAME}', '/org/freedesktop/PCP1',
                                'org.freedesktop.PCP1.Manager.GetExternalAddress', 'string:ipv4'],
                      user=nobody)
        if r.returncode != 0 or '192.0.2.1' not in r.stdout:
            fail(f'nobody could not call the Manager: {r.stderr.strip()}')
        print('nobody may call org.freedesktop.PCP1.Manager')

        # ... and Peer, answered by the bus-side policy (a reply or an error from the
        # service, but never AccessDenied from the bus)
        r = dbus_send(address, [f'--dest={BUS_NAME}', '/org/freedesktop/PCP1',
                                'org.freedesktop.DBus.Introspectable.Introspect'], user=nobody)
        if 'AccessDenied' in r.stderr:
            fail(f'nobody may not introspect: {r.stderr.strip()}')
        print('nobody may introspect')

        # ... but no other interface
        r = dbus_send(address, [f'--dest={BUS_NAME}', '/org/freedesktop/PCP1',
                                'org.example.Hidden.Secret'], user=nobody)
        if r.returncode == 0 or 'AccessDenied' not in r.stderr:
            fail(f'nobody could call an interface the policy does not list: {r.stdout} {r.stderr}')
        print('nobody may not call other interfaces')

        # and nobody may not own the name
        r = dbus_send(address, ['--dest=org.freedesktop.DBus', '/org/freedesktop/DBus',
                                'org.freedesktop.DBus.RequestName', f'string:{BUS_NAME}',
                                'uint32:4'], user=nobody)
        if r.returncode == 0 or 'AccessDenied' not in r.stderr:
            fail(f'nobody could own {BUS_NAME}: {r.stdout} {r.stderr}')
        print(f'nobody may not own {BUS_NAME}')
        return 0
    finally:
        for p in (service, bus):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
