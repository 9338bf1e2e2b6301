#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpctl against the real pcpd on a private bus:
- every verb's text and JSON output;
- on a pseudo-terminal: colours and attributes ($NO_COLOR, $SYSTEMD_COLORS, TERM=dumb),
  tables at 70 and 150 columns and with --full, the pager ($SYSTEMD_PAGER, $SYSTEMD_LESS,
  secure mode, --no-pager, none when stdout is not a terminal), -j;
- a held `pcpctl map` across a restart of pcpd (SIGTERM and SIGKILL): it re-attaches,
  keeps its external port and the old nonce, and says so;
- `pcpctl map --wait` sends AddMapping before any of its AddMatch calls is answered (a
  proxy between pcpctl and the bus holds the answers back), and reads the mapping from
  its InterfacesAdded, without GetAll;
- the daemon's side of it: SuggestedExternalPort follows the granted port with change
  signals, an unknown interface is named in InvalidArgs, PortNotOwned names no API call.
"""

import fcntl
import datetime
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcpdtest import (EXTERNAL, INVALID_ARGS, MANAGER, MAPPING, NOBODY, PATH, PCPCTL, Agent,  # noqa: E402
                      BusTestCase, V, main, wait_until)

ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]')
UNDERLINE = '\x1b[0;4m'
GREY = '\x1b[0;38;5;245m'
GREEN = '\x1b[0;1;32m'
LONG_DESCRIPTION = 'a description long enough to be cut at 70 columns'

# what the tests must not inherit from whoever runs them
CLEAN = ('NO_COLOR', 'SYSTEMD_COLORS', 'SYSTEMD_PAGER', 'PAGER', 'SYSTEMD_LESS', 'SYSTEMD_PAGERSECURE', 'COLUMNS',
         'LINES', 'LANGUAGE')


def width(text):
    """Terminal cells of a line without escape sequences."""
    return sum(2 if unicodedata.east_asian_width(c) in 'WF' else 1 for c in ANSI.sub('', text))


class PcpctlTestCase(BusTestCase):

    def base_env(self, env, **extra):
        e = {k: v for k, v in env.env.items() if k not in CLEAN}
        e.update(LC_ALL='C.UTF-8', TERM='xterm-256color')
        e.update(extra)
        return e

    def pcpctl(self, env, *args, status=0, extra_env=None):
        r = subprocess.run([PCPCTL, '--no-ask-password'] + list(args), capture_output=True, text=True,
                           env=self.base_env(env, **(extra_env or {})), timeout=60)
        self.assertEqual(r.returncode, status, f'pcpctl {" ".join(args)}: {r.stdout!r} {r.stderr!r}')
        return r

    def start(self, env, *args):
        p = subprocess.Popen([PCPCTL, '--no-ask-password'] + list(args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.base_env(env))
        env.procs.append(p)
        return p

    def pty(self, env, args, cols=80, extra_env=None, timeout=30):
        """pcpctl on a pseudo-terminal of cols columns: (exit status, output)."""
        e = self.base_env(env, **(extra_env or {}))
        pid, fd = pty.fork()
        if pid == 0:  # the child: its terminal's size first, as a terminal emulator sets it
            try:
                fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack('HHHH', 40, cols, 0, 0))
                os.execve(PCPCTL, [PCPCTL, '--no-ask-password'] + list(args), e)
            finally:
                os._exit(127)
        out = b''
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            out += data
        else:
            os.kill(pid, signal.SIGKILL)
        _, st = os.waitpid(pid, 0)
        os.close(fd)
        self.assertLess(time.monotonic(), end, f'pcpctl {args} on a terminal did not finish in {timeout}s: {out!r}')
        return os.waitstatus_to_exitcode(st), out.decode('utf-8', 'replace').replace('\r\n', '\n')


class LineReader:
    """Lines of a child's pipe, read from the descriptor (select() and buffered readline()
    do not mix), each awaited with a generous cap."""

    def __init__(self, f):
        self.fd = f.fileno()
        self.buf = b''

    def line(self, timeout=20, what='a line'):
        end = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f'timed out after {timeout}s waiting for {what}; have {self.buf!r}')
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                data = os.read(self.fd, 4096)
                if not data:
                    raise AssertionError(f'EOF while waiting for {what}; have {self.buf!r}')
                self.buf += data
        line, _, self.buf = self.buf.partition(b'\n')
        return line.decode()


def in_event_loop(pid):
    """Whether pcpctl `pid` sleeps in its event loop (sd_event_loop(): epoll_wait). `pcpctl
    monitor` subscribes to the signals (synchronous AddMatch calls) and reads the state
    (more calls, which wait in ppoll) before it enters the loop, so this is the event a
    monitor that prints no header can be waited for by."""
    try:
        with open(f'/proc/{pid}/wchan') as f:
            return 'epoll_wait' in f.read()
    except OSError:
        return False


def read_until(reader, pred, what, timeout=60):
    """Lines from a LineReader until pred(line) holds; all of them, that one last."""
    lines = []
    end = time.monotonic() + timeout
    while True:
        lines.append(reader.line(timeout=max(0.1, end - time.monotonic()),
                                 what=f'{what} (cap {timeout}s; lines so far: {lines!r})'))
        if pred(lines[-1]):
            return lines


def stop(p, sig=signal.SIGINT, timeout=20):
    if p.poll() is None:
        p.send_signal(sig)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.decode(), err.decode()


def dbus_message_length(buf):
    """Length of the D-Bus message at the start of buf, or None while its fixed header is
    incomplete."""
    if len(buf) < 16:
        return None
    e = '<' if buf[0:1] == b'l' else '>'
    body, _, fields = struct.unpack(e + 'III', buf[4:16])
    return ((16 + fields + 7) & ~7) + body


def dbus_message_header(msg):
    """(type, serial, member, reply_serial) of one whole D-Bus message."""
    e = '<' if msg[0:1] == b'l' else '>'
    kind = msg[1]
    serial, fields = struct.unpack(e + 'II', msg[8:16])
    member = reply_serial = None
    pos, end = 16, 16 + fields
    while pos < end:
        pos = (pos + 7) & ~7
        code, siglen = msg[pos], msg[pos + 1]
        sig = msg[pos + 2:pos + 2 + siglen]
        pos += 3 + siglen
        if sig in (b's', b'o', b'u', b'h'):
            pos = (pos + 3) & ~3
            n = struct.unpack(e + 'I', msg[pos:pos + 4])[0]
            if sig == b'u' or sig == b'h':
                value, pos = n, pos + 4
            else:
                value, pos = msg[pos + 4:pos + 4 + n].decode(), pos + 5 + n
        elif sig == b'g':
            n = msg[pos]
            value, pos = None, pos + 2 + n
        else:
            raise ValueError(f'unexpected header field signature {sig!r}')
        if code == 3:
            member = value
        elif code == 5:
            reply_serial = value
    return kind, serial, member, reply_serial


class HoldingProxy:
    """A Unix socket between pcpctl and the bus that forwards the bytes both ways and
    follows the D-Bus messages in them. From the first answer to one of pcpctl's AddMatch
    calls on, it holds everything the bus sends pcpctl back until pcpctl has sent
    AddMapping: a client that waited for a subscription to be confirmed before it asked
    would wait for ever (and hit its timeout)."""

    def __init__(self, tmp, bus_address):
        m = re.match(r'unix:path=([^,]+)', bus_address)
        self.bus_path = m.group(1)
        self.path = os.path.join(tmp, f'proxy-{os.getpid()}.sock')
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.calls = []       # (serial, member) of pcpctl's method calls, in the order sent
        self.held_at = None   # len(calls) when the bus's first AddMatch answer was held back
        self.released = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f'unix:path={self.path}'

    def run(self):
        try:
            self.forward()
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = repr(e)
        finally:
            self.released.set()

    def forward(self):
        self.listener.settimeout(60)
        try:
            client, _ = self.listener.accept()
        finally:
            self.listener.close()
        bus = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bus.connect(self.bus_path)
        up, down = b'', b''           # bytes not yet parsed, client->bus and bus->client
        up_binary = down_binary = False
        held = b''                    # bus->client bytes held back
        match_serials = set()
        while True:
            ready, _, _ = select.select([client, bus], [], [], 60)
            if not ready:
                raise AssertionError('no traffic for 60 s')
            if client in ready:
                data = client.recv(65536)
                if not data:
                    break
                bus.sendall(data)
                up += data
                if not up_binary and b'BEGIN\r\n' in up:
                    up, up_binary = up.split(b'BEGIN\r\n', 1)[1], True
                while up_binary and dbus_message_length(up) is not None and len(up) >= dbus_message_length(up):
                    n = dbus_message_length(up)
                    kind, serial, member, _ = dbus_message_header(up[:n])
                    up = up[n:]
                    if kind == 1:
                        self.calls.append((serial, member))
                        if member == 'AddMatch':
                            match_serials.add(serial)
                        if member == 'AddMapping' and held:
                            client.sendall(held)
                            held = b''
            if bus in ready:
                data = bus.recv(65536)
                if not data:
                    break
                down += data
                out = b''
                while True:
                    if not down_binary:
                        if down[:1] in (b'l', b'B'):
                            down_binary = True
                            continue
                        if b'\r\n' not in down:
                            break
                        line, down = down.split(b'\r\n', 1)
                        out += line + b'\r\n'
                        continue
                    n = dbus_message_length(down)
                    if n is None or len(down) < n:
                        break
                    _, _, _, reply_serial = dbus_message_header(down[:n])
                    if (self.held_at is None and reply_serial in match_serials and
                            'AddMapping' not in [c[1] for c in self.calls]):
                        self.held_at = len(self.calls)
                    if self.held_at is not None and 'AddMapping' not in [c[1] for c in self.calls]:
                        held += down[:n]
                    else:
                        out += down[:n]
                    down = down[n:]
                if out:
                    client.sendall(out)
        client.close()
        bus.close()


class VerbsTest(PcpctlTestCase):
    """Every verb, text and JSON, against the daemon."""

    def test_status(self):
        env = self.make_env()
        r = self.pcpctl(env, 'status')
        self.assertRegex(r.stdout, r'(?m)^ +State: ready$')
        # PCP has no question for the external address alone: told with the first mapping
        self.assertIn('External addresses: not known yet', r.stdout)
        self.assertRegex(r.stdout, r'(?m)^INTERFACE +SERVER +SOURCE +PROTOCOL +EPOCH$')
        self.assertRegex(r.stdout, rf'(?m)^- +{re.escape(env.ip)}:15351 +config +pcp +\d+$')
        self.assertNotIn('State error', r.stdout)
        self.assertNotIn('\x1b', r.stdout, 'no colours into a pipe')

        j = json.loads(self.pcpctl(env, 'status', '--json').stdout)
        self.assertEqual(j['State'], 'ready')
        self.assertIs(j['Enabled'], True)
        self.assertEqual(j['MappingCount'], 0)
        self.assertEqual(j['DefaultLifetime'], 600)
        self.assertEqual(len(j['Servers']), 1)
        self.assertEqual(set(j['Servers'][0]), {'Interface', 'Address', 'Source', 'Protocol', 'Epoch'})
        self.assertEqual(j['Servers'][0]['Address'], f'{env.ip}:15351')
        self.assertIsInstance(j['Servers'][0]['Epoch'], int)
        # a StateError appears when pcpd has the property, never with a made-up value
        if 'StateError' in j:
            self.assertIsInstance(j['StateError'], str)
        pretty = self.pcpctl(env, 'status', '--json=pretty').stdout
        self.assertEqual(json.loads(pretty), j)
        self.assertGreater(pretty.count('\n'), 10)

        # once a mapping told it, the external address is known
        env.wait_state(env.add_mapping('tcp', 8201), 'active')
        r = self.pcpctl(env, 'status')
        self.assertIn(f'External addresses: {EXTERNAL}', r.stdout)
        self.assertRegex(r.stdout, r'(?m)^ +Mappings: 1$')

    def test_list_map_and_peer(self):
        env = self.make_env()
        r = self.pcpctl(env, 'list')
        self.assertEqual(r.stdout, 'No mappings.\n')
        self.assertEqual(json.loads(self.pcpctl(env, 'list', '--json').stdout), [])

        # an app id (declared, unless this process's cgroup names one): the APP column shows
        mp = env.add_mapping('tcp', 8202, 0, {'description': V('s', 'web'), 'app-id': V('s', 'org.example.Web')})
        pe = env.manager('AddPeer', 'sqsqa{sv}', ('udp', 5202, '203.0.113.5', 443, {}))[0]
        env.wait_state(mp, 'active')
        env.wait_state(pe, 'active')
        r = self.pcpctl(env, 'list')
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ['ID', 'PROTO', 'INTERNAL', 'EXTERNAL', 'REMOTE', 'STATE', 'EXPIRES',
                                            'UID', 'APP', 'DESCRIPTION'])
        mid, pid_ = mp.rsplit('/', 1)[1], pe.rsplit('/', 1)[1]
        row = next(l.split() for l in lines if l.startswith(mid + ' '))
        self.assertEqual(row[:6], [mid, 'tcp', '127.0.0.1:8202', f'{EXTERNAL}:8202', '-', 'active'])
        self.assertEqual(row[6:8], ['in', '9min'], 'EXPIRES is relative')
        self.assertEqual(row[-1], 'web')
        row = next(l.split() for l in lines if l.startswith(pid_ + ' '))
        self.assertEqual(row[1:6], ['udp', '127.0.0.1:5202', f'{EXTERNAL}:5202', '203.0.113.5:443', 'active'],
                         'the remote end of a PEER mapping')
        self.assertEqual(lines[-1], '2 mappings listed.')
        r = self.pcpctl(env, 'list', '--no-legend')
        self.assertEqual(len(r.stdout.splitlines()), 2)

        j = json.loads(self.pcpctl(env, 'list', '--json').stdout)
        self.assertEqual([m['Id'] for m in j], sorted(int(x) for x in (mid, pid_)))
        by_id = {m['Id']: m for m in j}
        m = by_id[int(mid)]
        self.assertEqual((m['Path'], m['Protocol'], m['InternalPort'], m['ExternalAddress'], m['ExternalPort'],
                          m['State'], m['Description'], m['Opcode']),
                         (mp, 'tcp', 8202, EXTERNAL, 8202, 'active', 'web', 'map'))
        p = by_id[int(pid_)]
        self.assertEqual((p['Opcode'], p['RemoteAddress'], p['RemotePort']), ('peer', '203.0.113.5', 443))

        # no PEER mapping, no app id: no column of dashes for either
        env.manager('RemoveMapping', 'o', (pe,))
        env.manager('RemoveMapping', 'o', (mp,))
        env.wait_state(env.add_mapping('tcp', 8222), 'active')
        header = self.pcpctl(env, 'list').stdout.splitlines()[0].split()
        self.assertNotIn('REMOTE', header)
        if not json.loads(self.pcpctl(env, 'list', '--json').stdout)[0]['AppId']:
            self.assertEqual(header, ['ID', 'PROTO', 'INTERNAL', 'EXTERNAL', 'STATE', 'EXPIRES', 'UID', 'DESCRIPTION'])

    def test_map_text(self):
        env = self.make_env()
        p = self.start(env, 'map', 'tcp', '8203', '--wait', '--description', 'held')
        out = LineReader(p.stdout)
        # no object path first: with --wait nothing until it is active
        self.assertEqual(out.line(what='the active line'), f'tcp 8203 -> {EXTERNAL}:8203 (lifetime 600 s)')
        self.assertEqual([m['internal_port'] for m in env.dump()], [8203])
        status, rest, err = stop(p)
        self.assertEqual((status, rest, err), (0, '', ''))
        wait_until(lambda: env.dump() == [], 10, 'the mapping deleted upstream after SIGINT')

        # without --wait: every state, pending first
        p = self.start(env, 'map', 'udp', '8204')
        out = LineReader(p.stdout)
        line = out.line()
        if line == 'udp 8204: pending':  # unless the server answered before pcpctl asked for the state
            line = out.line()
        self.assertEqual(line, f'udp 8204 -> {EXTERNAL}:8204 (lifetime 600 s)')
        self.assertEqual(stop(p, signal.SIGTERM)[0], 0)

        # peer holds the same way
        p = self.start(env, 'peer', 'tcp', '8205', '203.0.113.9', '80', '--wait')
        self.assertEqual(LineReader(p.stdout).line(),
                         f'tcp 8205 -> {EXTERNAL}:8205 (peer 203.0.113.9:80, lifetime 600 s)')
        self.assertEqual(stop(p)[0], 0)

    def test_map_asks_before_the_subscriptions_are_confirmed(self):
        """map --wait pipelines: the AddMatch calls go out before AddMapping and their
        answers are not awaited; the mapping's properties come with its InterfacesAdded.
        The proxy holds every answer back from the first AddMatch answer until AddMapping
        is there: pcpctl must still finish, and have missed no signal."""
        env = self.make_env()
        proxy = HoldingProxy(env.tmp, env.address)
        r = subprocess.run([PCPCTL, '--no-ask-password', 'map', 'udp', '8230', '--wait', '--persistent'],
                           capture_output=True, text=True, timeout=60,
                           env=self.base_env(env, DBUS_SYSTEM_BUS_ADDRESS=proxy.address))
        proxy.thread.join(30)
        self.assertIsNone(proxy.error)
        members = [m for _, m in proxy.calls]
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, f'udp 8230 -> {EXTERNAL}:8230 (lifetime 600 s)\n', ''),
                         f'calls {members}; the answers held back from call {proxy.held_at} on')
        self.assertIn('AddMapping', members)
        first = members.index('AddMapping')
        self.assertEqual(members[:first].count('AddMatch'), members.count('AddMatch'),
                         f'every AddMatch before AddMapping: {members}')
        self.assertGreater(members.count('AddMatch'), 0, members)
        self.assertNotIn('GetAll', members, 'the properties came with InterfacesAdded')
        self.assertEqual([(m['internal_port'], m['external_port']) for m in env.dump()], [(8230, 8230)])

    def test_interrupted_before_the_reply(self):
        """SIGINT while AddMapping waits in polkit: pcpctl (which asks in its event loop
        now) waits for the reply and releases what it gives, as an interrupt later does:
        exit status 0, nothing printed, the mapping removed as released."""
        env = self.make_env(polkit=True)
        env.polkit_call('SetAllowed', 'as', ['org.freedesktop.PCP1.map'])
        app = Agent(env, uid=NOBODY)  # nobody's program, listening on the port
        self.assertEqual(app.req(op='bind', proto='tcp', port=8231, family=4).get('ok'), 8231)
        env.polkit_call('SimulateHangActions', 'as', ['org.freedesktop.PCP1.map'])
        p = subprocess.Popen(['setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups', PCPCTL,
                              '--no-ask-password', 'map', 'tcp', '8231', '--wait'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.base_env(env))
        env.procs.append(p)
        wait_until(lambda: env.polkit_call('HaveHangingCalls')[0] or p.poll() is not None, 20,
                   "pcpctl's AddMapping waiting in polkit")
        self.assertIsNone(p.poll(), 'pcpctl ended before its AddMapping was answered')
        p.send_signal(signal.SIGINT)
        env.polkit_call('ReleaseHangingCalls')
        out, err = p.communicate(timeout=60)
        self.assertEqual((p.returncode, out, err), (0, b'', b''))
        wait_until(lambda: any(s[2] == 'MappingRemoved' and s[3][1] == 'released' for s in env.signals), 20,
                   'MappingRemoved (released) of the mapping pcpctl was given after SIGINT')
        self.assertEqual([m for m in json.loads(self.pcpctl(env, 'list', '--json').stdout)
                          if m['InternalPort'] == 8231], [])

    def test_map_json_release_json(self):
        env = self.make_env()
        p = self.start(env, 'map', 'tcp', '8206', '--wait', '--json')
        j = json.loads(LineReader(p.stdout).line())
        self.assertEqual((j['State'], j['ExternalAddress'], j['ExternalPort'], j['InternalPort']),
                         ('active', EXTERNAL, 8206, 8206))
        self.assertIsInstance(j['Id'], int)
        self.assertEqual(j['Path'], f'{PATH}/mapping/{j["Id"]}')
        self.assertEqual(stop(p)[0], 0)

        # a script learns the port without parsing text, and releases by id
        r = self.pcpctl(env, 'map', 'udp', '8207', '--persistent', '--wait', '--json')
        j = json.loads(r.stdout)
        self.assertEqual((j['ExternalPort'], j['Persistent']), (8207, True))
        r = self.pcpctl(env, 'release', str(j['Id']), '--json')
        released = json.loads(r.stdout)
        self.assertEqual((released['Id'], released['InternalPort']), (j['Id'], 8207))
        wait_until(lambda: env.dump() == [], 10, 'the released mapping deleted upstream')
        r = self.pcpctl(env, 'release', str(j['Id']), status=1)
        self.assertIn('Failed to release: Mapping', r.stderr)
        # --json reads the mapping first: one that is gone is pcpd's NotFound, as without
        r = self.pcpctl(env, 'release', str(j['Id']), '--json', status=1)
        self.assertEqual(r.stdout, '')
        self.assertIn('Failed to release: Mapping', r.stderr)

        # text: a persistent mapping says how to remove it; release prints nothing
        r = self.pcpctl(env, 'map', 'udp', '8208', '--persistent')
        m = re.search(r'remove it with: pcpctl release (\d+)$', r.stdout.strip())
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual(self.pcpctl(env, 'release', m.group(1)).stdout, '')
        self.pcpctl(env, 'release', 'abc', status=2)

    def test_monitor(self):
        env = self.make_env()
        mon = self.start(env, 'monitor')
        monj = self.start(env, 'monitor', '--json')
        reader, readerj = LineReader(mon.stdout), LineReader(monj.stdout)
        # the text monitor says it is watching once it has subscribed and read the state
        self.assertEqual(reader.line(timeout=60, what='the monitor\'s header (cap 60s)'),
                         'Monitoring pcpd (ready, 0 mappings); press Ctrl+C to stop.')
        # the --json one prints no header: wait until it has subscribed and sits in its loop
        wait_until(lambda: in_event_loop(monj.pid) or monj.poll() is not None, 60,
                   'pcpctl monitor --json to subscribe and wait in its event loop (/proc/PID/wchan)')
        self.assertIsNone(monj.poll(), 'pcpctl monitor --json exited early')
        r = self.pcpctl(env, 'map', 'tcp', '8209', '--persistent', '--wait', '--json')
        mid = json.loads(r.stdout)['Id']
        self.pcpctl(env, 'release', str(mid))
        wait_until(lambda: env.removed_reason(f'{PATH}/mapping/{mid}') is not None, 10, 'MappingRemoved')
        # the monitors get the same signal: wait until each has printed the removal
        text = read_until(reader, lambda l: f'mapping {mid} removed' in l, f'the monitor to print mapping {mid} removed')
        textj = read_until(readerj, lambda l: json.loads(l).get('Event') == 'mapping-removed' and
                           json.loads(l).get('Id') == mid, f'the --json monitor to print mapping {mid} removed')
        _, out, _ = stop(mon)
        out = '\n'.join(text) + '\n' + reader.buf.decode() + out
        _, outj, _ = stop(monj)
        outj = '\n'.join(textj) + '\n' + readerj.buf.decode() + outj

        lines = [ANSI.sub('', l)[9:] for l in out.splitlines()]  # without "HH:MM:SS "
        self.assertIn(f'mapping {mid} added: tcp 8209: pending, uid 0', lines)
        self.assertTrue(any(re.fullmatch(rf'mapping {mid}: tcp 8209 -> {EXTERNAL}:8209 \(lifetime 600 s\), '
                                         r'expires in (9min 5\ds|10min)', l) for l in lines), out)
        self.assertEqual([l for l in lines if 'removed' in l], [f'mapping {mid} removed: released'])
        self.assertNotRegex(out, r'ExpiresAt|State=|17\d{14}', 'no raw property names or epochs')

        events = [json.loads(l) for l in outj.splitlines()]
        mine = [e for e in events if e.get('Id') == mid]
        self.assertEqual([e['Event'] for e in mine][0], 'mapping-added')
        self.assertEqual([e['Event'] for e in mine][-1], 'mapping-removed')
        self.assertEqual(len([e for e in mine if e['Event'] == 'mapping-removed']), 1)
        active = [e for e in mine if e['Event'] == 'mapping-changed' and e['Mapping']['State'] == 'active']
        self.assertTrue(active and 'State' in active[0]['Changed'], outj)
        self.assertEqual(active[0]['Mapping']['ExternalPort'], 8209)
        self.assertTrue(all(isinstance(e['Time'], int) for e in events))
        self.assertEqual(mine[-1]['Reason'], 'released')
        self.assertTrue(any(e['Event'] == 'manager-changed' and 'MappingCount' in e['Changed'] for e in events))

    def test_enable_disable_external_address_revoke(self):
        env = self.make_env()
        self.assertEqual(self.pcpctl(env, 'external-address', 'ipv4', status=1).stderr,
                         'Failed to query the external address: No IPv4 server has told its external address yet.\n')
        env.wait_state(env.add_mapping('tcp', 8210, 0, {'app-id': V('s', 'org.example.Game')}), 'active')
        self.assertEqual(self.pcpctl(env, 'external-address', 'ipv4').stdout, f'{EXTERNAL}\n')
        r = self.pcpctl(env, 'external-address')
        self.assertIn(f'ipv4: {EXTERNAL} (server {env.ip}:15351)', r.stdout)
        self.assertIn('ipv6: none', r.stdout)
        j = json.loads(self.pcpctl(env, 'external-address', '--json').stdout)
        self.assertEqual(j, [{'Family': 'ipv4', 'Address': EXTERNAL, 'Server': f'{env.ip}:15351'}])

        self.assertEqual(self.pcpctl(env, 'revoke', 'org.example.Game').stdout, '')
        wait_until(lambda: env.dump() == [], 10, 'the revoked mapping deleted upstream')
        self.assertIn('Failed to revoke: No mapping belongs to',
                      self.pcpctl(env, 'revoke', 'org.example.Game', status=1).stderr)

        self.assertEqual(self.pcpctl(env, 'disable').stdout, '')
        r = self.pcpctl(env, 'status')
        self.assertIn('Enabled: no', r.stdout)
        self.assertRegex(r.stdout, r'(?m)^ +State: disabled$')
        self.assertIn('Failed to map: Port mapping is switched off',
                      self.pcpctl(env, 'map', 'tcp', '8211', status=1).stderr)
        self.assertEqual(self.pcpctl(env, 'enable', '--json').stdout, '')
        self.assertIs(json.loads(self.pcpctl(env, 'status', '-j').stdout)['Enabled'], True)

    def test_without_pcpd_declared_app_and_the_default_routers(self):
        env = self.make_env(start=False)
        # pcpd not running: its error, not "none" for each family
        for args in ((), ('--json',), ('ipv6',)):
            r = self.pcpctl(env, 'external-address', *args, status=1)
            self.assertEqual((r.stdout, r.stderr),
                             ('', 'Failed to query the external address: pcpd is not running and could not be '
                                  'started. See "systemctl status pcpd" and "journalctl -u pcpd" for details.\n'), f'external-address {args}')
        env.start_pcpd()

        # no NetworkManager on this bus, UseDefaultRouters=false (Env's default): status does
        # not claim the default routers are used
        r = self.pcpctl(env, 'status')
        self.assertTrue(r.stdout.endswith('\nNetworkManager: not running.\n'
                                          "pcpd learns no PCP server from DHCP now: it uses pcpd.conf's Servers=\n"
                                          'and the default routers if UseDefaultRouters= is on.\n'), r.stdout)

        # list shows a declared mapping as "declared:NAME", which is no app id: revoke says
        # how to remove it, and removes nothing
        self.assertIn('Declared cam', self.pcpctl(env, 'declare', 'cam', 'tcp', '8231').stdout)
        path = dict((n, p) for n, _f, p in env.get(PATH, MANAGER, 'DeclaredMappings'))['cam']
        self.assertNotEqual(path, '/', 'the declared mapping is made')
        wait_until(lambda: 'declared:cam' in self.pcpctl(env, 'list').stdout, 10, 'list to show declared:cam')
        r = self.pcpctl(env, 'revoke', 'declared:cam', status=1)
        self.assertEqual((r.stdout, r.stderr.splitlines()[1:]),
                         ('', ["declared:cam is a declared mapping, which has no app id: 'pcpctl undeclare cam' "
                               'removes it.']), r.stderr)
        self.assertTrue(r.stderr.startswith('Failed to revoke: '), r.stderr)
        self.assertEqual(env.get(path, MAPPING, 'Declared'), 'cam', 'the declared mapping is still there')
        self.pcpctl(env, 'undeclare', 'cam')
        wait_until(lambda: 'declared:cam' not in self.pcpctl(env, 'list').stdout, 10, 'undeclare to remove it')

    def test_errors_a_user_can_act_on(self):
        env = self.make_env(polkit=True)  # the mock: allows nothing
        # an interface that does not exist: pcpctl says so before asking
        r = self.pcpctl(env, 'map', 'tcp', '8212', '--interface=nosuch0', status=2)
        self.assertIn("No such interface 'nosuch0'.", r.stderr)
        # an unprivileged user without a socket on the port
        r = subprocess.run(['setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups', PCPCTL,
                            '--no-ask-password', 'map', 'tcp', '40123'], capture_output=True, text=True,
                           env=self.base_env(env), timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertTrue(r.stderr.startswith('Failed to map: None of your sockets is listening on tcp port 40123 on '),
                        r.stderr)
        self.assertNotIn('AddMappingForSocket', r.stderr)


class DaemonTest(PcpctlTestCase):
    """What pcpd must publish for pcpctl to show it right."""

    def test_suggested_external_port_follows_the_granted_one(self):
        # a server that never grants the internal port: the suggestion must move
        env = self.make_env(refserver_args=['--ports', '20000-20999'])
        path = env.add_mapping('tcp', 8213)  # the caller's wish: none (0)
        env.wait_state(path, 'active')
        granted = env.get(path, MAPPING, 'ExternalPort')
        self.assertTrue(20000 <= granted <= 20999, granted)
        self.assertEqual(env.get(path, MAPPING, 'SuggestedExternalPort'), granted)
        wait_until(lambda: any(s[0] == path and s[2] == 'PropertiesChanged'
                               and s[3][1].get('SuggestedExternalPort') == granted for s in env.signals),
                   10, 'PropertiesChanged with SuggestedExternalPort')
        # and the live introspection says it changes (it said const)
        xml = env.call(path, 'org.freedesktop.DBus.Introspectable', 'Introspect')[0]
        prop = re.search(r'<property name="SuggestedExternalPort".*?</property>', xml, re.S)
        self.assertIsNotNone(prop, xml)
        self.assertNotIn('"const"', prop.group(0))

    def test_unknown_interface_is_named(self):
        env = self.make_env()
        e = self.assertDBusError(INVALID_ARGS, env.add_mapping, 'tcp', 8214, 0, {'interface': V('s', 'nosuch0')})
        self.assertIn("No such interface 'nosuch0'", e.msg)

    def test_port_not_owned_names_no_method(self):
        env = self.make_env(polkit=True)
        ans = Agent(env, uid=NOBODY).add_mapping('tcp', 40124)
        self.assertAgentError('org.freedesktop.PCP1.Error.PortNotOwned', ans, contains='tcp port 40124')
        self.assertNotIn('AddMappingForSocket', ans['msg'])


class RestartTest(PcpctlTestCase):
    """A held `pcpctl map` across a restart of pcpd."""

    def held_across(self, sig):
        # external ports the server picks itself: keeping one is not a coincidence
        env = self.make_env(config={'GraceSeconds': 30}, refserver_args=['--ports', '20000-20999'])
        p = self.start(env, 'map', 'tcp', '8215', '--wait', '--json')
        out, err = LineReader(p.stdout), LineReader(p.stderr)
        first = json.loads(out.line(what='the active mapping'))
        ext = first['ExternalPort']
        before = env.dump()
        self.assertEqual([(m['internal_port'], m['external_port']) for m in before], [(8215, ext)])

        env.kill_pcpd(sig)
        line = err.line(what='what pcpctl says when pcpd goes away')
        # the time of day, or with the date when the expiry falls on another day (tomorrow)
        tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).strftime('%a %Y-%m-%d ')
        self.assertRegex(line, r'^pcpd went away; the router keeps the mapping until it expires at '
                               rf'(?:{re.escape(tomorrow)})?\d\d:\d\d:\d\d \(in (9min 5\ds|10min)\)\.$')
        self.assertEqual(err.line(), 'Waiting for pcpd to come back, to ask for the mapping again.')
        self.assertIsNone(p.poll(), 'pcpctl holds on while pcpd is away')

        env.start_pcpd()
        self.assertEqual(err.line(what='the re-attachment'), f'pcpd restarted; mapping re-established at '
                                                             f'{EXTERNAL}:{ext}.')
        after = env.dump()
        self.assertEqual([(m['internal_port'], m['external_port'], m['nonce']) for m in after],
                         [(8215, ext, before[0]['nonce'])], 'the same mapping at the router: old nonce, same port')
        held = json.loads(self.pcpctl(env, 'list', '--json').stdout)
        self.assertEqual([(m['InternalPort'], m['ExternalPort'], m['PID']) for m in held], [(8215, ext, p.pid)])

        status, _, rest = stop(p)
        self.assertEqual((status, rest), (0, ''))
        wait_until(lambda: env.dump() == [], 10, 'the mapping deleted upstream when pcpctl ends')

    def test_restart_sigterm(self):
        self.held_across(signal.SIGTERM)

    def test_restart_sigkill(self):
        self.held_across(signal.SIGKILL)

    def test_old_path_never_another_mappings(self):
        """A restarted pcpd keeps the ids of the mappings it restores and never gives an id
        again: while pcpctl asks again, no other mapping can appear at the path it had, and
        it re-attaches to that same mapping."""
        env = self.make_env(polkit=True, config={'GraceSeconds': 30}, refserver_args=['--ports', '20000-20999'])
        env.polkit_call('SetAllowed', 'as', ['org.freedesktop.PCP1.map'])
        for i in range(5):  # ids given before: never given again after the restart
            env.manager('RemoveMapping', 'o', (env.add_mapping('udp', 9300 + i),))
        app = Agent(env, uid=NOBODY)  # nobody's program, listening on the port
        self.assertEqual(app.req(op='bind', proto='tcp', port=8217, family=4).get('ok'), 8217)
        p = subprocess.Popen(['setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups', PCPCTL,
                              '--no-ask-password', 'map', 'tcp', '8217', '--wait', '--json'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.base_env(env))
        env.procs.append(p)
        out, err = LineReader(p.stdout), LineReader(p.stderr)
        first = json.loads(out.line(what='the active mapping'))
        old_path, ext = first['Path'], first['ExternalPort']
        old_id = int(old_path.rsplit('/', 1)[1])

        env.kill_pcpd(signal.SIGTERM)
        self.assertTrue(err.line().startswith('pcpd went away; the router keeps the mapping'))
        err.line()
        # pcpctl's next AddMapping waits in polkit until released
        env.polkit_call('SimulateHangActions', 'as', ['org.freedesktop.PCP1.map'])
        env.start_pcpd()
        wait_until(lambda: env.conn.call_sync('org.freedesktop.PolicyKit1', '/org/freedesktop/PolicyKit1/Authority',
                                              'org.freedesktop.DBus.Mock', 'HaveHangingCalls', None, None, 0, 10000,
                                              None).unpack()[0], 10, "pcpctl's AddMapping waiting in polkit")
        # root's new mappings take new ids: none of the ids given before the restart
        for i in range(8):
            path = env.add_mapping('udp', 9400 + i)
            env.wait_state(path, 'active')
            self.assertNotEqual(path, old_path, 'an id given again after a restart')
            self.assertGreater(int(path.rsplit('/', 1)[1]), old_id, 'ids only grow across a restart')
            env.manager('RemoveMapping', 'o', (path,))
        env.conn.call_sync('org.freedesktop.PolicyKit1', '/org/freedesktop/PolicyKit1/Authority',
                           'org.freedesktop.DBus.Mock', 'ReleaseHangingCalls', None, None, 0, 10000, None)

        self.assertEqual(err.line(what='the re-attachment'), f'pcpd restarted; mapping re-established at '
                                                             f'{EXTERNAL}:{ext}.')
        self.assertIsNone(p.poll(), 'pcpctl holds on')
        self.assertEqual(out.buf, b'', 'nothing of the other mappings printed')
        held = [m for m in json.loads(self.pcpctl(env, 'list', '--json').stdout) if m['InternalPort'] == 8217]
        self.assertEqual([(m['Path'], m['ExternalPort'], m['PID']) for m in held], [(old_path, ext, p.pid)])
        status, rest, errs = stop(p)
        self.assertEqual(status, 0, errs)
        self.assertNotIn('"InternalPort":94', rest, 'no line of the other mappings')


class TerminalTest(PcpctlTestCase):
    """Colours, widths and the pager, on a pseudo-terminal."""

    def env_with_mappings(self):
        env = self.make_env()
        mp = env.add_mapping('tcp', 8216, 0, {'description': V('s', LONG_DESCRIPTION)})
        pe = env.manager('AddPeer', 'sqsqa{sv}', ('udp', 5216, '203.0.113.5', 443, {}))[0]
        env.wait_state(mp, 'active')
        env.wait_state(pe, 'active')
        return env

    def test_colours(self):
        env = self.env_with_mappings()
        nopager = {'SYSTEMD_PAGER': 'cat'}
        st, out = self.pty(env, ['status'], extra_env=nopager)
        self.assertEqual(st, 0, out)
        self.assertIn(f'State: {GREEN}ready', out)
        self.assertIn(f'{UNDERLINE}INTERFACE', out, 'underlined header')
        self.assertIn(f'{GREY}-', out, 'a grey "-" for the missing interface')
        st, out = self.pty(env, ['list'], extra_env=nopager)
        self.assertIn(f'{UNDERLINE}ID ', out)
        self.assertIn(f'{GREEN}active', out)
        self.assertIn(f'{GREY}-', out, 'the REMOTE of a MAP mapping')

        for extra, coloured in (({'NO_COLOR': '1'}, False), ({'NO_COLOR': ''}, False),
                                ({'SYSTEMD_COLORS': '0'}, False), ({'SYSTEMD_COLORS': 'no'}, False),
                                ({'TERM': 'dumb'}, False),
                                ({'NO_COLOR': '1', 'SYSTEMD_COLORS': '1'}, True),
                                ({'SYSTEMD_COLORS': '256'}, True)):
            st, out = self.pty(env, ['list'], extra_env=nopager | extra)
            self.assertEqual(st, 0, out)
            self.assertEqual('\x1b[' in out, coloured, f'{extra}: {out!r}')
        st, out = self.pty(env, ['list'], extra_env=nopager | {'SYSTEMD_COLORS': '16'})
        self.assertIn('\x1b[0;90m-', out, '16 colours: bright black for grey')
        self.assertNotIn(GREY, out)
        # into a pipe: none, unless asked for
        self.assertNotIn('\x1b', self.pcpctl(env, 'list').stdout)
        self.assertIn(UNDERLINE, self.pcpctl(env, 'list', extra_env={'SYSTEMD_COLORS': '1'}).stdout)

    def test_widths(self):
        env = self.env_with_mappings()
        nopager = {'SYSTEMD_PAGER': 'cat', 'NO_COLOR': '1'}
        st, out = self.pty(env, ['list'], cols=70, extra_env=nopager)
        self.assertEqual(st, 0, out)
        rows = out.splitlines()
        self.assertTrue(all(width(l) <= 70 for l in rows), '\n'.join(f'{width(l):3} {l}' for l in rows))
        self.assertIn('\u2026', out, 'ellipsized')
        self.assertNotIn(LONG_DESCRIPTION, out)
        # the addresses are the last to give way
        self.assertIn(f'127.0.0.1:8216 {EXTERNAL}:8216', out)
        self.assertIn(f'127.0.0.1:5216 {EXTERNAL}:5216', out)

        st, out = self.pty(env, ['list'], cols=150, extra_env=nopager)
        self.assertNotIn('\u2026', out)
        self.assertIn(LONG_DESCRIPTION, out)
        self.assertTrue(all(width(l) <= 150 for l in out.splitlines()))

        st, out = self.pty(env, ['list', '--full'], cols=70, extra_env=nopager)
        self.assertIn(LONG_DESCRIPTION, out, '--full: nothing cut')
        st, out = self.pty(env, ['-l', 'list'], cols=70, extra_env=nopager | {'COLUMNS': '200'})
        self.assertNotIn('\u2026', out)
        # $COLUMNS wins over the terminal's size
        st, out = self.pty(env, ['list'], cols=150, extra_env=nopager | {'COLUMNS': '70'})
        self.assertTrue(all(width(l) <= 70 for l in out.splitlines()), out)
        # a pipe has no width: nothing is cut
        self.assertIn(LONG_DESCRIPTION, self.pcpctl(env, 'list', extra_env={'COLUMNS': '70'}).stdout)

    def test_pager(self):
        env = self.make_env()
        tmp = tempfile.mkdtemp(prefix='pcpctl-pager-', dir=env.tmp)
        mark = os.path.join(tmp, 'ran')
        pager = os.path.join(tmp, 'pager')
        with open(pager, 'w') as f:
            f.write(f'#!/bin/sh\nprintf "%s\\n" "$LESS" > {mark}\nexec cat\n')
        os.chmod(pager, 0o755)
        trusted = {'SYSTEMD_PAGER': pager, 'SYSTEMD_PAGERSECURE': '0'}

        st, out = self.pty(env, ['status'], extra_env=trusted)
        self.assertEqual(st, 0, out)
        self.assertIn('State: ', ANSI.sub('', out), 'the pager showed the output')
        with open(mark) as f:
            self.assertEqual(f.read(), 'FRSXMK\n', "less's options, as systemd sets them")
        os.unlink(mark)
        self.pty(env, ['list'], extra_env=trusted | {'SYSTEMD_LESS': 'FRX'})
        with open(mark) as f:
            self.assertEqual(f.read(), 'FRX\n')
        os.unlink(mark)
        self.pty(env, ['--help'], extra_env=trusted)
        self.assertTrue(os.path.exists(mark), '--help is paged')
        os.unlink(mark)

        for args, extra in ((['--no-pager', 'status'], trusted), (['status'], trusted | {'SYSTEMD_PAGER': 'cat'}),
                            (['status'], trusted | {'TERM': 'dumb'}), (['enable'], trusted)):
            st, out = self.pty(env, args, extra_env=extra)
            self.assertEqual(st, 0, out)
            self.assertFalse(os.path.exists(mark), f'{args} {extra} started the pager')
        # not a terminal: no pager
        self.pcpctl(env, 'status', extra_env=trusted)
        self.assertFalse(os.path.exists(mark))
        # secure mode (not told, and not the owner of a login session here): a pager that
        # is not less is not trusted, and the output still arrives
        st, out = self.pty(env, ['status'], extra_env={'SYSTEMD_PAGER': pager})
        self.assertEqual(st, 0, out)
        self.assertFalse(os.path.exists(mark), 'secure mode ran an untrusted pager')
        self.assertIn('State:', ANSI.sub('', out))

    def test_json_on_a_terminal(self):
        env = self.make_env()
        st, out = self.pty(env, ['-j', 'status'], extra_env={'SYSTEMD_PAGER': 'cat'})
        self.assertEqual(json.loads(ANSI.sub('', out))['State'], 'ready')
        self.assertGreater(out.count('\n'), 10, '-j on a terminal is pretty')


if __name__ == '__main__':
    main()
