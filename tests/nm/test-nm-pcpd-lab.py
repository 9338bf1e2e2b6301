#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpd through Debian's real NetworkManager (nmlab.py): dnsmasq announces a PCP server
by DHCPv4 option 158 and DHCPv6 option 86 that is NOT the default gateway; pcpd, in the
client namespace on the lab's bus, finds it through NetworkManager (libnm), leaves the
gateway aside (RFC 7488 S3), maps through it (pcp-refserver on the router side), and when
the option changes to a second server (a renewal) follows it: the mapping is made there.
Then a reconnect and a restart of NetworkManager leave the mapping where it is (same
server, same nonce).

Root, network namespaces, NetworkManager, dhclient and dnsmasq; a missing one is a skip
locally and a failure with CI=true."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nmlab  # noqa: E402

SRC = os.environ.get('PCPD_SOURCE_ROOT', os.path.dirname(os.path.dirname(HERE)))
BUILD = os.path.join(SRC, 'build')
PCPD = os.environ.get('PCPD', os.path.join(BUILD, 'daemon', 'pcpd'))
REFSERVER = os.environ.get('PCP_REFSERVER', os.path.join(BUILD, 'tests', 'refserver', 'pcp-refserver'))
POLICY = os.path.join(SRC, 'dbus', 'org.freedesktop.PCP1.conf')
CAP = 60  # seconds: caps for events (DHCP over a real client takes 0.2-2 s)

failures = []


def check(cond, msg):
    print(('ok   ' if cond else 'FAIL ') + msg, flush=True)
    if not cond:
        failures.append(msg)
    return cond


def wait(cond, what, seconds=CAP):
    end = time.monotonic() + seconds
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f'waited {seconds} s for {what}')
        time.sleep(0.1)


def refserver_dump(ctl):
    r = subprocess.run([REFSERVER, 'ctl', ctl, 'dump'], capture_output=True, text=True, timeout=10)
    out = r.stdout + r.stderr
    if not out.startswith('ok'):
        raise AssertionError(f'refserver ctl dump: {out}')
    return out.splitlines()[1:]


def main():
    try:
        nmlab.check_prerequisites()
        from gi.repository import Gio, GLib
    except nmlab.Missing as e:
        nmlab.exit_missing(str(e))
    except ImportError as e:
        nmlab.exit_missing(f'python3-gi: {e}')
    for p in (PCPD, REFSERVER):
        if not os.access(p, os.X_OK):
            nmlab.exit_missing(p)

    with nmlab.NMLab(v4=[[nmlab.PCP1_V4]], v6=[[nmlab.PCP1_V6]], bus_policy=POLICY) as lab:
        tmp = os.path.join(lab.run_dir, 'pcpd-test')
        os.makedirs(tmp)
        ctl = {}
        for name, v4, v6 in (('pcp1', nmlab.PCP1_V4, nmlab.PCP1_V6), ('pcp2', nmlab.PCP2_V4, nmlab.PCP2_V6)):
            ctl[v4] = os.path.join(tmp, name + '.ctl')
            with open(os.path.join(tmp, name + '.log'), 'w') as out:
                lab.router_popen([REFSERVER, '--listen', v4, '--listen', v6, '--port', '5351',
                                  '--external', '198.51.100.7', '--control', ctl[v4]],
                                 stdout=out, stderr=subprocess.STDOUT)
        for c in ctl.values():
            wait(lambda: nmlab.unix_socket_listening(c), 'the refservers control sockets to accept connections', 60)

        conf = os.path.join(tmp, 'pcpd.conf')
        with open(conf, 'w') as f:
            f.write('[Daemon]\nDefaultLifetime=600\n[Servers]\nServers=\nUseDefaultRouters=true\n')
        log_path = os.path.join(tmp, 'pcpd.log')
        with open(log_path, 'w') as out:
            pcpd = lab.client_popen([PCPD, '--config', conf, '--state-dir', os.path.join(tmp, 'state'), '-v'],
                                    stdout=out, stderr=subprocess.STDOUT)

        def log():
            with open(log_path, errors='replace') as f:
                return f.read()

        conn = Gio.DBusConnection.new_for_address_sync(
            lab.bus_address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)

        def call(path, iface, method, sig='', args=()):
            params = GLib.Variant('(' + sig + ')', tuple(args)) if sig else None
            return conn.call_sync('org.freedesktop.PCP1', path, iface, method, params, None,
                                  Gio.DBusCallFlags.NONE, 20000, None).unpack()

        def get(path, iface, prop):
            return call(path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', (iface, prop))[0]

        def servers():
            try:
                return [(s[0], s[1], s[2]) for s in get('/org/freedesktop/PCP1', 'org.freedesktop.PCP1.Manager',
                                                         'Servers')]
            except GLib.Error:
                return []

        try:
            # 1. the DHCP-announced server, through NetworkManager; not the gateway
            wait(lambda: ('c0', nmlab.PCP1_V4, 'dhcpv4') in servers(),
                 f'Servers to have c0 {nmlab.PCP1_V4} dhcpv4 (have {servers()})')
            wait(lambda: ('c0', nmlab.PCP1_V6, 'dhcpv6') in servers(),
                 f'Servers to have c0 {nmlab.PCP1_V6} dhcpv6 (have {servers()})')
            have = servers()
            check(True, f'found through NetworkManager: {have}')
            check(not any(s[1] == nmlab.GW4 for s in have),
                  f'the default gateway {nmlab.GW4} is not used next to the announced server')
            check("Primary connection's interface: c0" in log(), 'primary connection on c0')

            # 2. a mapping through it
            path = call('/org/freedesktop/PCP1', 'org.freedesktop.PCP1.Manager', 'AddMapping', 'sqqa{sv}',
                        ('tcp', 4242, 0, {}))[0]
            mp = 'org.freedesktop.PCP1.Mapping'
            wait(lambda: get(path, mp, 'State') == 'active', f'{path} active')
            check(get(path, mp, 'Server') == nmlab.PCP1_V4, f'mapping on {nmlab.PCP1_V4}')
            on1 = refserver_dump(ctl[nmlab.PCP1_V4])
            check(len(on1) == 1 and ':4242 ' in on1[0], f'server 1 holds it: {on1}')

            # 3. the option changes to the second server (a renewal): the mapping follows
            lab.set_options(v4=[[nmlab.PCP2_V4]])
            lab.renew(4)
            wait(lambda: ('c0', nmlab.PCP2_V4, 'dhcpv4') in servers() and
                 ('c0', nmlab.PCP1_V4, 'dhcpv4') not in servers(),
                 f'Servers to follow the option to {nmlab.PCP2_V4} (have {servers()})')
            wait(lambda: get(path, mp, 'Server') == nmlab.PCP2_V4, f'the mapping on {nmlab.PCP2_V4}')
            wait(lambda: get(path, mp, 'State') == 'active', f'{path} active on server 2')
            on2 = refserver_dump(ctl[nmlab.PCP2_V4])
            check(len(on2) == 1 and ':4242 ' in on2[0], f'server 2 holds it: {on2}')
            nonce2 = on2[0].split(' nonce ')[-1] if on2 else None

            # 4. a reconnect (new DHCP4Config/DHCP6Config objects, "/" in between): the
            # mapping ends up on the same server with the same upstream mapping (its nonce)
            mark = len(log())
            lab.reconnect()
            lab.wait_option(4, '4 192 168 77 6')
            wait(lambda: 'NetworkManager: state applied' in log()[mark:] and
                 ('c0', nmlab.PCP2_V4, 'dhcpv4') in servers() and get(path, mp, 'State') == 'active',
                 f'the mapping active on {nmlab.PCP2_V4} after a reconnect (have {servers()})')
            after = refserver_dump(ctl[nmlab.PCP2_V4])
            check(len(after) == 1 and after[0].endswith(' nonce ' + nonce2),
                  f'after a reconnect the same mapping on server 2: {after}')

            # 5. NetworkManager stops and starts again: nothing moves
            mark = len(log())
            lab.stop_nm()
            wait(lambda: 'NetworkManager is not running' in log()[mark:], 'pcpd to see NetworkManager gone')
            check(('c0', nmlab.PCP2_V4, 'dhcpv4') in servers(), 'its servers stay while it is away')
            lab.start_nm()
            wait(lambda: 'NetworkManager is running' in log()[mark:], 'pcpd to see NetworkManager back')
            wait(lambda: ('c0', nmlab.PCP2_V4, 'dhcpv4') in servers() and get(path, mp, 'State') == 'active',
                 f'the server and the mapping after NetworkManager came back (have {servers()})')
            after = refserver_dump(ctl[nmlab.PCP2_V4])
            check(get(path, mp, 'Server') == nmlab.PCP2_V4 and len(after) == 1 and
                  after[0].endswith(' nonce ' + nonce2), f'after a restart of NetworkManager the same mapping: {after}')
            check(pcpd.poll() is None, 'pcpd is running')
            check('CRITICAL' not in log(), 'no CRITICAL in pcpd\'s log')
        except AssertionError as e:
            check(False, str(e))
        finally:
            # what pcpd saw of NetworkManager, for the record
            print('---- pcpd: servers and mappings ----', flush=True)
            for line in log().splitlines():
                if any(w in line for w in ('NetworkManager', 'PCP server', 'Mapping', 'Primary')):
                    print('  ' + line, flush=True)
            if failures:
                print('---- pcpd log ----\n' + log()[-6000:], flush=True)
                lab.dump_logs()
            conn.close_sync(None)
    if failures:
        print(f'{len(failures)} failure(s)')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
