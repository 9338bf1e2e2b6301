#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The daemon's live Introspect output matches the reference XML.

  test-live-introspection.py PCPD CHECKER MANAGER.xml MAPPING.xml

Runs pcpd on a private dbus-daemon (DBUS_SYSTEM_BUS_ADDRESS) with a configuration that
only knows a server on 127.0.0.1 (no traffic leaves the machine), creates one mapping for
a socket of this process, and compares the introspection of /org/freedesktop/PCP1 and of
the mapping object with the XML files. Exit 77 (skipped) without dbus-daemon or
python3-dbus.
"""

import os
import shutil
import socket
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


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    pcpd, checker, manager_xml, mapping_xml = sys.argv[1:]
    daemon = shutil.which('dbus-daemon')
    try:
        import dbus
    except ImportError:
        print('SKIP: python3-dbus is missing')
        return 77
    if daemon is None:
        print('SKIP: dbus-daemon is not installed')
        return 77

    tmp = tempfile.mkdtemp(prefix='pcpd-introspect-')
    with open(os.path.join(tmp, 'bus.conf'), 'w', encoding='utf-8') as f:
        f.write(CONFIG.format(socket=os.path.join(tmp, 'bus')))
    # loopback only; an ANNOUNCE port of its own so parallel tests do not collide
    with open(os.path.join(tmp, 'pcpd.conf'), 'w', encoding='utf-8') as f:
        f.write('[Servers]\nUseDefaultRouters=false\nServers=127.0.0.1\n'
                f'AnnouncePort={20000 + os.getpid() % 20000}\n')
    os.mkdir(os.path.join(tmp, 'state'))

    bus = subprocess.Popen([daemon, f'--config-file={tmp}/bus.conf', '--nofork', '--print-address'],
                           stdout=subprocess.PIPE, text=True)
    service = None
    listener = None
    try:
        address = bus.stdout.readline().strip()
        if not address:
            print('FAIL: dbus-daemon did not start')
            return 1
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
        service = subprocess.Popen([pcpd, '--config', f'{tmp}/pcpd.conf', f'--state-dir={tmp}/state'],
                                   env=env, stdout=subprocess.DEVNULL, stderr=open(f'{tmp}/pcpd.log', 'w'))

        conn = dbus.bus.BusConnection(address)
        for _ in range(100):
            if conn.name_has_owner('org.freedesktop.PCP1'):
                break
            if service.poll() is not None:
                break
            time.sleep(0.05)
        if not conn.name_has_owner('org.freedesktop.PCP1'):
            with open(f'{tmp}/pcpd.log', encoding='utf-8', errors='replace') as f:
                print(f'FAIL: pcpd did not take its name: {f.read()}')
            return 1

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(('127.0.0.1', 0))
        listener.listen()
        port = listener.getsockname()[1]

        manager = conn.get_object('org.freedesktop.PCP1', '/org/freedesktop/PCP1')
        path = manager.AddMapping('tcp', dbus.UInt16(port), dbus.UInt16(0),
                                  dbus.Dictionary({'description': 'introspection test'}, signature='sv'),
                                  dbus_interface='org.freedesktop.PCP1.Manager')

        failures = 0
        for obj_path in ('/org/freedesktop/PCP1', str(path)):
            xml = conn.get_object('org.freedesktop.PCP1', obj_path).Introspect(
                dbus_interface='org.freedesktop.DBus.Introspectable')
            live = os.path.join(tmp, 'live.xml')
            with open(live, 'w', encoding='utf-8') as f:
                f.write(str(xml))
            r = subprocess.run([sys.executable, checker, 'compare', manager_xml, mapping_xml, '--live', live], capture_output=True, text=True)
            print(f'{obj_path}: {r.stdout.strip()} {r.stderr.strip()}')
            if r.returncode != 0:
                failures += 1
        return 1 if failures else 0
    finally:
        if listener is not None:
            listener.close()
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
