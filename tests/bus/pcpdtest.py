# SPDX-License-Identifier: LGPL-2.1-or-later
"""Harness for pcpd's bus tests: a private system-type dbus-daemon that includes the
project's policy, the reference PCP server on a unique loopback address, pcpd itself, the
polkitd mock, and client processes (agent.py) that may run as another uid.

Paths come from the environment (set by tests/bus/meson.build):
  PCPD, PCP_REFSERVER, PCPCTL, PCPD_SOURCE_ROOT
Every process started here is killed in Env.close() (also on failure: use Env as a
context manager or from unittest's addCleanup).
"""

import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from gi.repository import Gio, GLib

PYTHON = '/usr/bin/python3'
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('PCPD_SOURCE_ROOT', os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get('PCPD_BUILD_ROOT', os.path.join(SRC, 'build'))
PCPD = os.environ.get('PCPD', os.path.join(BUILD, 'daemon', 'pcpd'))
# PCPD_VALGRIND=1: run pcpd under valgrind memcheck; a test fails when it reports errors
VALGRIND = os.environ.get('PCPD_VALGRIND') == '1'
REFSERVER = os.environ.get('PCP_REFSERVER', os.path.join(BUILD, 'tests', 'refserver', 'pcp-refserver'))
PCPCTL = os.environ.get('PCPCTL', os.path.join(BUILD, 'clients', 'pcpctl'))
POLICY = os.path.join(SRC, 'dbus', 'org.freedesktop.PCP1.conf')

# the polkitd mock with what pcpd's polkit limits need (tests/bus/polkitd-mock.py)
POLKIT_MOCK = os.path.join(HERE, 'polkitd-mock.py')

BUS_NAME = 'org.freedesktop.PCP1'
PATH = '/org/freedesktop/PCP1'
MANAGER = 'org.freedesktop.PCP1.Manager'
MAPPING = 'org.freedesktop.PCP1.Mapping'
PROPS = 'org.freedesktop.DBus.Properties'
OM = 'org.freedesktop.DBus.ObjectManager'
ERR = 'org.freedesktop.PCP1.Error.'
INVALID_ARGS = 'org.freedesktop.DBus.Error.InvalidArgs'
EXTERNAL = '198.51.100.7'
NOBODY = 65534

# the bus configuration, shared with dbus/test-bus-policy.py
with open(os.path.join(SRC, 'tests', 'data', 'test-system-bus.conf.in')) as _f:
    BUS_CONFIG = _f.read()


def unique_address():
    """127.a.b.c unique enough per test process (pid-derived) and never 127.0.0.x."""
    pid = os.getpid()
    return '127.%d.%d.%d' % (100 + (pid >> 16) % 100, (pid >> 8) & 0xff, 2 + (pid & 0xff) % 250)


def free_udp_port():
    """A UDP port nobody uses on any address right now (for the ANNOUNCE listener)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(('0.0.0.0', 0))
        port = s.getsockname()[1]
        s.close()
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(('::', port))
            return port
        except OSError:
            continue
        finally:
            s6.close()
    raise RuntimeError('no free UDP port')


# A cap says how long to wait for an event before failing, never how fast something must
# be: a passing test does not wait for it. Every cap is at least this (valgrind on a loaded
# machine is slow; a test that wants a speed belongs in bench/).
MIN_CAP = float(os.environ.get('PCPD_TEST_MIN_CAP', '60'))


def wait_until(cond, timeout=10.0, what='condition', step=0.02):
    ctx = GLib.MainContext.default()
    timeout = max(timeout, MIN_CAP)
    end = time.monotonic() + timeout
    while True:
        while ctx.pending():
            ctx.iteration(False)
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(step)


def pump(seconds):
    ctx = GLib.MainContext.default()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        while ctx.pending():
            ctx.iteration(False)
        time.sleep(0.01)


class DBusCallError(Exception):
    def __init__(self, name, msg):
        super().__init__(f'{name}: {msg}')
        self.name = name
        self.msg = msg


class Agent:
    """A client process (agent.py), possibly as another uid."""

    def __init__(self, env, uid=None, netns=None, prefix=()):
        """netns: run it in that network namespace (NetNS name); prefix: a command line the
        agent's own is appended to (it must exec it)."""
        args = list(prefix) + [PYTHON, os.path.join(HERE, 'agent.py'), env.address]
        if netns is not None:
            args = ['ip', 'netns', 'exec', netns] + args
        if uid is not None:
            args.append(str(uid))
        with open(os.path.join(env.tmp, 'agent.log'), 'a') as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                         stderr=err)
        env.procs.append(self.proc)
        first = json.loads(self.proc.stdout.readline() or '{"error":"agent died"}')
        if first.get('ok') != 'ready':
            raise RuntimeError(f'agent did not start: {first}')
        self.name = first['name']
        self.pid = first['pid']

    def req(self, **kw):
        self.proc.stdin.write(json.dumps(kw) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('agent died')
        return json.loads(line)

    def call(self, method, sig='', args='()', **kw):
        return self.req(op='call', method=method, sig=sig, args=args, **kw)

    def add_mapping(self, proto, port, ext=0, options='@a{sv} {}', conn=0):
        return self.call('AddMapping', 'sqqa{sv}', f"('{proto}', uint16 {port}, uint16 {ext}, {options})",
                         conn=conn)

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait()


class Env:
    def __init__(self, config=None, refserver_args=(), polkit=False, start=True, bus_limits=None, refserver=True,
                 netns=None, use_default_routers=False, wrapper=None, polkit_template='polkitd'):
        """refserver=False: no configured server at all. netns: the name of a network
        namespace (NetNS) to run pcpd in. use_default_routers: pcpd's discovery of the
        default routers (and its route monitor) on. wrapper: a command line pcpd's own
        is appended to (e.g. fake-journald.py OUT --). polkit_template: python-dbusmock's
        template, or the path of one (POLKIT_MOCK: ours, with CancelCheckAuthorization)."""
        self.wrapper = list(wrapper or [])
        self.polkit_template = polkit_template
        self.bus_limits = bus_limits or {}
        self.with_refserver = refserver
        self.netns = netns
        self.use_default_routers = use_default_routers
        self.tmp = tempfile.mkdtemp(prefix='pcpd-bus-test-')
        os.chmod(self.tmp, 0o755)
        self.procs = []
        self.pcpd = None
        self.refserver = None
        self.polkit = None
        self.bus = None
        self.conn = None
        self.signals = []
        self.ip = unique_address()
        self.port = 15351
        self.announce_port = free_udp_port()
        self.ctl_path = os.path.join(self.tmp, 'ref.ctl')
        self.reflog = os.path.join(self.tmp, 'ref.log')
        self.state = os.path.join(self.tmp, 'state')
        self.config = {'DefaultLifetime': 600}
        self.config.update(config or {})
        self.refserver_args = list(refserver_args)
        try:
            self.start_bus()
            if polkit:
                self.start_polkit()
            if refserver:
                self.start_refserver()
            if start:
                self.start_pcpd()
        except BaseException:
            self.close()
            raise

    # ---- processes ----

    def start_bus(self):
        sock = os.path.join(self.tmp, 'bus.sock')
        conf = os.path.join(self.tmp, 'bus.conf')
        with open(conf, 'w') as f:
            limits = ''.join(f'<limit name="{k}">{v}</limit>' for k, v in self.bus_limits.items())
            f.write(BUS_CONFIG.format(socket=sock, policy=POLICY, limits=limits))
        with open(os.path.join(self.tmp, 'bus.log'), 'w') as err:
            self.bus = subprocess.Popen(['dbus-daemon', f'--config-file={conf}', '--nofork', '--print-address'],
                                        stdout=subprocess.PIPE, stderr=err, text=True)
        self.procs.append(self.bus)
        self.address = self.bus.stdout.readline().strip()
        if not self.address:
            raise RuntimeError('dbus-daemon did not start: ' + open(os.path.join(self.tmp, 'bus.log')).read())
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address)
        self.env.pop('DBUS_SESSION_BUS_ADDRESS', None)
        self.conn = Gio.DBusConnection.new_for_address_sync(
            self.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        self.conn.signal_subscribe(BUS_NAME, None, None, None, None, Gio.DBusSignalFlags.NONE,
                                   self._on_signal)

    def _on_signal(self, conn, sender, path, iface, member, params):
        self.signals.append((path, iface, member, params.unpack()))

    def start_polkit(self):
        with open(os.path.join(self.tmp, 'polkit.log'), 'w') as log:
            self.polkit = subprocess.Popen([PYTHON, '-m', 'dbusmock', '--system', '--template', self.polkit_template],
                                           env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(self.polkit)
        wait_until(lambda: self.name_has_owner('org.freedesktop.PolicyKit1') or self.polkit.poll() is not None,
                   15, 'the polkit mock')
        if self.polkit.poll() is not None:
            raise RuntimeError('polkit mock died: ' + open(os.path.join(self.tmp, 'polkit.log')).read())

    def polkit_call(self, method, sig='', value=None):
        """A method of the mock's control interface; its answer, unpacked."""
        r = self.conn.call_sync('org.freedesktop.PolicyKit1', '/org/freedesktop/PolicyKit1/Authority',
                                'org.freedesktop.DBus.Mock', method,
                                GLib.Variant('(' + sig + ')', (value,)) if sig else None,
                                None, Gio.DBusCallFlags.NONE, 10000, None)
        return r.unpack() if r is not None else ()

    def start_refserver(self, extra=(), netns=None):
        """netns: run it in that network namespace (NetNS name) instead of the host's."""
        prefix = ['ip', 'netns', 'exec', netns] if netns else []
        args = prefix + [REFSERVER, '--listen', self.ip, '--port', str(self.port), '--announce-port',
                str(self.announce_port), '--external', EXTERNAL, '--control', self.ctl_path,
                '--log', self.reflog] + self.refserver_args + list(extra)
        with open(os.path.join(self.tmp, 'ref.out'), 'w') as out:
            self.refserver = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(self.refserver)
        # "ready" comes once the control socket listens and the log is open: the socket's
        # file exists from bind() on (and may be a stale one from an earlier refserver)
        out_path = os.path.join(self.tmp, 'ref.out')
        wait_until(lambda: re.search(r'^ready$', slurp(out_path), re.M) or self.refserver.poll() is not None, 10,
                   'the refserver to print "ready"')
        if self.refserver.poll() is not None:
            raise RuntimeError('refserver died: ' + open(os.path.join(self.tmp, 'ref.out')).read())

    def write_config(self):
        path = os.path.join(self.tmp, 'pcpd.conf')
        daemon = '\n'.join(f'{k}={v}' for k, v in self.config.items())
        servers = f'{self.ip}:{self.port}' if self.with_refserver else ''
        routers = 'true' if self.use_default_routers else 'false'
        with open(path, 'w') as f:
            f.write(f'[Daemon]\n{daemon}\n[Servers]\nServers={servers}\n'
                    f'UseDefaultRouters={routers}\nAnnouncePort={self.announce_port}\n')
        return path

    def start_pcpd(self, wait_ready=True):
        conf = self.write_config()
        self.pcpd_log = os.path.join(self.tmp, 'pcpd.log')
        with open(self.pcpd_log, 'a') as out:
            prefix = self.wrapper + (['ip', 'netns', 'exec', self.netns] if self.netns else [])
            if VALGRIND:
                # memcheck on the daemon itself; close() checks its verdict
                prefix += ['valgrind', '--error-exitcode=99', '--leak-check=full',
                           '--errors-for-leak-kinds=definite,indirect', '--show-leak-kinds=definite,indirect',
                           # leaks inside GSSDP/GUPnP/libsoup only, each with its reason (the
                           # UPnP-IGD search starts wherever a router speaks no PCP)
                           '--suppressions=' + os.path.join(SRC, 'tests', 'upnp', 'glib.supp'),
                           '--quiet']
            self.pcpd = subprocess.Popen(prefix + [PCPD, '--config', conf, '--state-dir', self.state, '-v'],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(self.pcpd)
        wait_until(lambda: self.name_has_owner(BUS_NAME) or self.pcpd.poll() is not None, 10, 'pcpd on the bus')
        if self.pcpd.poll() is not None:
            raise RuntimeError('pcpd died: ' + self.log())
        if wait_ready:
            wait_until(lambda: self.get(PATH, MANAGER, 'State') == 'ready', 10, 'manager State "ready"')

    def kill_pcpd(self, sig=signal.SIGKILL):
        self.pcpd.send_signal(sig)
        self.pcpd.wait()
        wait_until(lambda: not self.name_has_owner(BUS_NAME), 5, 'pcpd off the bus')

    def log(self):
        return slurp(self.pcpd_log)

    def assert_alive(self):
        if self.pcpd.poll() is not None:
            raise AssertionError(f'pcpd died (status {self.pcpd.returncode}):\n{self.log()[-3000:]}')

    def close(self):
        verdict = None
        if VALGRIND and self.pcpd is not None and self.pcpd.poll() is None:
            # a clean shutdown, so memcheck can tell leaks; 99 = it found errors
            self.pcpd.terminate()
            try:
                if self.pcpd.wait(timeout=60) == 99:
                    verdict = 'valgrind found errors in pcpd:\n' + self.log()[-6000:]
            except subprocess.TimeoutExpired:
                verdict = 'pcpd under valgrind did not stop within 60 s of SIGTERM'
        if self.conn is not None:
            try:
                self.conn.close_sync(None)
            except GLib.Error:
                pass
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if os.environ.get('PCPD_TEST_KEEP'):
            print('kept', self.tmp, file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if verdict is not None:
            raise AssertionError(verdict)

    # ---- refserver ----

    def ctl(self, *cmd):
        r = subprocess.run([REFSERVER, 'ctl', self.ctl_path] + list(cmd), capture_output=True, text=True,
                           timeout=10)
        out = r.stdout + r.stderr
        if not out.startswith('ok'):
            raise AssertionError(f'refserver ctl {cmd}: {out}')
        return out

    def dump(self):
        """Mappings held by the refserver: a list of dicts."""
        out = self.ctl('dump').splitlines()
        res = []
        pat = re.compile(r'(\w+) (\S+) (\S+):(\d+) -> (\S+):(\d+)(?: remote (\S+):(\d+))? lifetime (\d+) '
                         r'remaining (\d+) nonce ([0-9a-f]+)')
        for line in out[1:]:
            m = pat.match(line)
            if m is None:
                raise AssertionError('unparsable dump line: ' + line)
            res.append(dict(kind=m[1], proto=m[2], internal=m[3], internal_port=int(m[4]), external=m[5],
                            external_port=int(m[6]), lifetime=int(m[9]), nonce=m[11]))
        return res

    def reflog_requests(self):
        res = []
        with open(self.reflog) as f:
            for line in f:
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                if d.get('event') == 'request':
                    res.append(d)
        return res

    # ---- bus helpers (root, in-process) ----

    def name_has_owner(self, name):
        r = self.conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                                'NameHasOwner', GLib.Variant('(s)', (name,)), None, Gio.DBusCallFlags.NONE,
                                5000, None)
        return r.unpack()[0]

    def call(self, path, iface, method, sig='', args=(), conn=None, timeout=20000, fds=None, flags=0):
        conn = conn or self.conn
        params = GLib.Variant('(' + sig + ')', tuple(args)) if sig else None
        try:
            if fds is not None:
                fdl = Gio.UnixFDList.new()
                for fd in fds:
                    fdl.append(fd)
                r, _ = conn.call_with_unix_fd_list_sync(BUS_NAME, path, iface, method, params, None, flags,
                                                        timeout, fdl, None)
            else:
                r = conn.call_sync(BUS_NAME, path, iface, method, params, None, flags, timeout, None)
        except GLib.Error as e:
            if Gio.DBusError.is_remote_error(e):
                name = Gio.DBusError.get_remote_error(e)
                raise DBusCallError(name, e.message) from None
            raise
        return r.unpack()

    def manager(self, method, sig='', args=(), **kw):
        return self.call(PATH, MANAGER, method, sig, args, **kw)

    def get(self, path, iface, prop):
        return self.call(path, PROPS, 'Get', 'ss', (iface, prop))[0]

    def get_all(self, path, iface=MAPPING):
        return self.call(path, PROPS, 'GetAll', 's', (iface,))[0]

    def get_raw(self, path, iface, prop):
        """The property's GVariant (to check its type)."""
        r = self.conn.call_sync(BUS_NAME, path, PROPS, 'Get', GLib.Variant('(ss)', (iface, prop)), None, 0,
                                5000, None)
        return r.get_child_value(0).get_variant()

    def add_mapping(self, proto, port, ext=0, options=None, conn=None):
        return self.manager('AddMapping', 'sqqa{sv}', (proto, port, ext, options or {}), conn=conn)[0]

    def new_conn(self):
        return Gio.DBusConnection.new_for_address_sync(
            self.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)

    def barrier(self, conn=None):
        """A round trip to pcpd on conn (default: the harness's own connection): when it
        returns, pcpd has handled every message this connection sent it before, and every
        message the bus queued for pcpd before it (a client's NameOwnerChanged once
        NameHasOwner says the name is gone, the bus's answers to pcpd's own calls made
        before the replies this process has seen); every signal pcpd sent before its answer
        has been dispatched (self.signals). So an effect that has not shown by then never
        will from those messages: a test asserts absence after this, not after a sleep.
        Fails (with pcpd's log) when pcpd does not answer."""
        try:
            self.call(PATH, 'org.freedesktop.DBus.Peer', 'Ping', conn=conn, timeout=int(MIN_CAP * 1000))
        except (DBusCallError, GLib.Error) as e:
            if self.pcpd is not None:
                try:
                    self.pcpd.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            raise AssertionError(f'pcpd did not answer a Peer.Ping ({e}):\n{self.log()[-3000:]}') from None
        ctx = GLib.MainContext.default()
        while ctx.pending():
            ctx.iteration(False)

    def requests_for(self, port, since=0):
        """The refserver's logged requests (dropped ones too) for this internal port."""
        return [r for r in self.reflog_requests()[since:] if r.get('internal_port') == port]

    def clock_barrier(self, port, proto='udp'):
        """Waits until at least IRT (RFC 6887: 3 s, -10 %) has passed on pcpd's clock with
        its main loop running, by an event and not a sleep: a mapping of this port whose
        first request the refserver drops; pcpd's retransmission of it reaching the
        refserver is the event. Every timer pcpd armed before the first request and due
        within 2.7 s has then fired, and every request pcpd sent the server meanwhile is in
        the refserver's log (one socket per server, read in order). Only for a server pcpd
        sends MAP requests to; the refserver drops every request until the first arrives.
        Returns the mapping's path."""
        self.ctl('drop-requests', '1')
        try:
            path = self.add_mapping(proto, port)
            wait_until(lambda: self.requests_for(port), 10, f'the first request for {port} (dropped)')
        finally:
            self.ctl('drop-requests', '0')
        wait_until(lambda: len(self.requests_for(port)) >= 2, 10, f'the retransmission for {port}')
        return path

    def wait_state(self, path, state, timeout=10):
        return wait_until(lambda: self.get(path, MAPPING, 'State') == state, timeout, f'{path} State {state}')

    def signals_of(self, member, path=None):
        return [s for s in self.signals if s[2] == member and (path is None or s[0] == path)]

    def removed_reason(self, path):
        for p, iface, member, args in self.signals:
            if member == 'MappingRemoved' and args[0] == path:
                return args[1]
        return None


class NetNS:
    """A network namespace (ip netns) with lo up, deleted by close(). Its name is unique
    per test process. Needs root."""

    def __init__(self, tag):
        self.name = f'pcpd-{tag}-{os.getpid()}'
        subprocess.run(['ip', 'netns', 'del', self.name], capture_output=True)
        self.ip('netns', 'add', self.name, netns=False)
        self.ip('link', 'set', 'lo', 'up')

    def ip(self, *args, netns=True):
        cmd = ['ip'] + (['-n', self.name] if netns else []) + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f'{" ".join(cmd)}: {r.stderr.strip()}')
        return r.stdout

    def close(self):
        subprocess.run(['ip', 'netns', 'del', self.name], capture_output=True)


def netns_preflight():
    """Exit 77 (skip) when network namespaces cannot be made here; never silently in CI."""
    reason = None
    if shutil.which('ip') is None:
        reason = 'the ip command (iproute2)'
    else:
        try:
            NetNS('probe').close()
        except (RuntimeError, OSError) as e:
            reason = f'network namespaces ({e})'
    if reason is not None:
        msg = 'this test needs ' + reason
        if os.environ.get('CI') == 'true':
            print('FAIL (CI must not skip): ' + msg)
            sys.exit(1)
        print('SKIP: ' + msg)
        sys.exit(77)


def systemd_cgroup_root():
    """Where the cgroup hierarchy pcpd reads the caller's units from is mounted: systemd's
    own v1 hierarchy when there is one (legacy and hybrid setups), else the unified one."""
    with open('/proc/self/cgroup') as f:
        named = any(':name=systemd:' in line for line in f)
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            sep = fields.index('-')
            fstype, options = fields[sep + 1], fields[sep + 3] if len(fields) > sep + 3 else ''
            if named and fstype == 'cgroup' and 'name=systemd' in options.split(','):
                return fields[4]
            if not named and fstype == 'cgroup2':
                return fields[4]
    return None


def fake_flatpak_prefix(env, info_text):
    """A command-line prefix for Agent(prefix=...): the agent runs in a mount namespace whose
    root is the host's with a /.flatpak-info of info_text added, as a Flatpak sandbox looks
    from outside (pcpd reads /proc/PID/root/.flatpak-info). Needs root and unshare."""
    info = os.path.join(env.tmp, f'flatpak-info-{len(os.listdir(env.tmp))}')
    with open(info, 'w') as f:
        f.write(info_text)
    newroot = info + '.root'
    os.mkdir(newroot)
    return ['unshare', '--mount', '--propagation', 'private', '--', PYTHON,
            os.path.join(HERE, 'fake-sandbox.py'), newroot, info, '--']


def slurp(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ''


def V(sig, value):
    return GLib.Variant(sig, value)


class BusTestCase(unittest.TestCase):
    """One Env per test method (the daemon's state never leaks between tests)."""

    env_kwargs = {}

    def make_env(self, **kw):
        args = dict(self.env_kwargs)
        args.update(kw)
        env = Env(**args)
        self.addCleanup(env.close)
        return env

    def assertDBusError(self, name, fn, *args, contains=None, **kw):
        with self.assertRaises(DBusCallError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.name, name, cm.exception.msg)
        if contains is not None:
            self.assertIn(contains, cm.exception.msg)
        return cm.exception

    def assertAgentError(self, name, ans, contains=None):
        self.assertIn('error', ans, f'expected {name}, got {ans}')
        self.assertEqual(ans['error'], name, ans.get('msg'))
        if contains is not None:
            self.assertIn(contains, ans['msg'])


def preflight():
    """Exit 77 (skip) outside root or without the tools; never silently in CI."""
    missing = []
    if os.getuid() != 0:
        missing.append('root')
    for tool in ('dbus-daemon',):
        if shutil.which(tool) is None:
            missing.append(tool)
    for p in (PCPD, REFSERVER):
        if not os.access(p, os.X_OK):
            missing.append(p)
    if missing:
        msg = 'bus tests need ' + ', '.join(missing)
        if os.environ.get('CI') == 'true':
            print('FAIL (CI must not skip): ' + msg)
            sys.exit(1)
        print('SKIP: ' + msg)
        sys.exit(77)


def main():
    preflight()
    unittest.main(verbosity=2)
