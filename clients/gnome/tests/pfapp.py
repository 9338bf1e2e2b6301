# SPDX-License-Identifier: LGPL-2.1-or-later
"""Harness for the "Port Forwarding" app's GUI tests, on top of tests/bus/pcpdtest.py:
the real pcpd on a private system bus with pcp-refserver, the polkit mock of
polkitd-agent.py, and the app itself as an unprivileged user on an X server (Xvfb, from
xvfb-run around the test run), with a session bus of its own, driven through its hidden
--test-control option (pf-test-control.h).

Paths come from the environment (set by clients/gnome/tests/meson.build):
  PF_APP (the app), PF_ARTIFACTS (where screenshots go), plus pcpdtest.py's PCPD, ...
"""

import os
import queue
import shutil
import struct
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('PCPD_SOURCE_ROOT', os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
sys.path.insert(0, os.path.join(SRC, 'tests', 'bus'))

import pcpdtest  # noqa: E402
from pcpdtest import PYTHON, Agent, Env, slurp, wait_until  # noqa: E402,F401

APP = os.environ.get('PF_APP', os.path.join(pcpdtest.BUILD, 'clients', 'gnome', 'pcpd-port-forwarding'))
ARTIFACTS = os.environ.get('PF_ARTIFACTS', os.path.join(pcpdtest.BUILD, 'clients', 'gnome', 'tests'))
POLKIT_TEMPLATE = os.path.join(HERE, 'polkitd-agent.py')
FOCUS_THIEF = os.path.join(HERE, 'focus-thief.py')
TEST_DATA = os.path.join(HERE, 'data')

# the app runs as nobody: pcpd lets root do anything without asking polkit, so a root app
# would not show what a user sees
APP_UID = pcpdtest.NOBODY
ACTIONS = ['org.freedesktop.PCP1.map', 'org.freedesktop.PCP1.map-privileged', 'org.freedesktop.PCP1.revoke',
           'org.freedesktop.PCP1.configure']
# generous: a loaded machine, or the ASan build, is slow to start GTK
TIMEOUT = 60


def ci():
    return os.environ.get('CI') == 'true'


def preflight():
    """Exit 77 (skip) without root, an X display or the tools; never in CI."""
    pcpdtest.preflight()
    missing = []
    if not os.environ.get('DISPLAY'):
        missing.append('an X display (run the suite under xvfb-run)')
    if not os.access(APP, os.X_OK):
        missing.append(APP)
    for tool in ('dbus-daemon',):
        if shutil.which(tool) is None:
            missing.append(tool)
    if missing:
        msg = 'the GUI tests need ' + ', '.join(missing)
        if ci():
            print('FAIL (CI must not skip): ' + msg)
            sys.exit(1)
        print('SKIP: ' + msg)
        sys.exit(77)


# what polkit installs in system.d on every real system: anyone may ask the authority
POLKIT_BUS_POLICY = '<policy context="default"><allow send_destination="org.freedesktop.PolicyKit1"/></policy>'


class GuiEnv(Env):
    """pcpdtest's Env with the polkit mock that has temporary authorisations and an agent:
    every pcpd action is allowed after a (mock) password dialog, as auth_admin_keep.
    servicedir: a directory of D-Bus service files the bus activates names from (none by
    default: the name cannot be activated)."""

    def __init__(self, servicedir=None, **kw):
        self.servicedir = servicedir
        super().__init__(**kw)

    def start_bus(self):
        # the shared bus configuration lets only root talk to polkit (the bus tests' callers
        # never do); the app, as a user, asks polkit itself, as on a real system
        shared = pcpdtest.BUS_CONFIG
        extra = POLKIT_BUS_POLICY
        if self.servicedir is not None:
            extra += f'<servicedir>{self.servicedir}</servicedir>'
        pcpdtest.BUS_CONFIG = shared.replace('<include>{policy}</include>', extra + '<include>{policy}</include>')
        try:
            super().start_bus()
        finally:
            pcpdtest.BUS_CONFIG = shared

    def start_polkit(self):
        with open(os.path.join(self.tmp, 'polkit.log'), 'w') as log:
            self.polkit = subprocess.Popen([PYTHON, '-m', 'dbusmock', '--system', '--template', POLKIT_TEMPLATE],
                                           env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(self.polkit)
        wait_until(lambda: self.name_has_owner('org.freedesktop.PolicyKit1') or self.polkit.poll() is not None,
                   15, 'the polkit mock')
        if self.polkit.poll() is not None:
            raise RuntimeError('polkit mock died: ' + slurp(os.path.join(self.tmp, 'polkit.log')))
        # pcpd's map is "yes" for active sessions; the others ask for a password
        self.polkit_call('SetAllowed', 'as', ['org.freedesktop.PCP1.map'])
        self.polkit_call('SetChallenge', 'as', ACTIONS[1:])
        self.conn.call_sync('org.freedesktop.PolicyKit1', '/org/freedesktop/PolicyKit1/Authority',
                            'org.freedesktop.DBus.Mock', 'SetImplies',
                            pcpdtest.GLib.Variant('(sas)', (ACTIONS[3], ACTIONS[1:3])),
                            None, pcpdtest.Gio.DBusCallFlags.NONE, 10000, None)

    def polkit_calls(self):
        r = self.conn.call_sync('org.freedesktop.PolicyKit1', '/org/freedesktop/PolicyKit1/Authority',
                                'org.freedesktop.DBus.Mock', 'GetCalls', None, None,
                                pcpdtest.Gio.DBusCallFlags.NONE, 10000, None)
        return [tuple(c) for c in r.unpack()[0]]


class Cgroups:
    """Puts processes in cgroups named like the units systemd and desktops start apps in, so
    that pcpd's own AppId detection (/proc/PID/cgroup) sees a Flatpak or an app a desktop
    launched. Only what it made is removed, by exact path."""

    def __init__(self):
        self.dirs = []
        self.base = None
        self.top = None
        # the hierarchy pcpd reads a caller's unit from (systemd's own on hybrid setups)
        top = pcpdtest.systemd_cgroup_root()
        if top is not None and os.path.exists(os.path.join(top, 'cgroup.procs')):
            base = os.path.join(top, f'pcpd-gui-test-{os.getpid()}.slice')
            try:
                os.mkdir(base)
                self.base, self.top = base, top
            except OSError:
                pass
        if self.base is None:
            raise RuntimeError('no cgroup hierarchy here lets a test create a cgroup')

    def place(self, pid, unit):
        d = os.path.join(self.base, unit)
        os.mkdir(d)
        self.dirs.append(d)
        with open(os.path.join(d, 'cgroup.procs'), 'w') as f:
            f.write(str(pid))

    def close(self):
        # processes still inside (the agents die later, with the Env) go back to the top
        # first: a cgroup with members cannot be removed
        for d in reversed(self.dirs):
            try:
                with open(os.path.join(d, 'cgroup.procs')) as f:
                    pids = f.read().split()
            except OSError:
                pids = []
            for pid in pids:
                try:
                    with open(os.path.join(self.top, 'cgroup.procs'), 'w') as f:
                        f.write(pid)
                except OSError:
                    pass  # it exited meanwhile
        for d in list(reversed(self.dirs)) + [self.base]:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # a member that exited is still leaving


def png_size(path):
    with open(path, 'rb') as f:
        head = f.read(24)
    if head[:8] != b'\x89PNG\r\n\x1a\n' or head[12:16] != b'IHDR':
        raise AssertionError(f'{path} is not a PNG')
    return struct.unpack('>II', head[16:24])


class App:
    """The app as APP_UID, with its own session bus, HOME and XDG dirs (the test apps'
    desktop files and icons first in XDG_DATA_DIRS)."""

    def __init__(self, env, a11y=False, extra_env=None):
        self.env = env
        self.events = queue.Queue()
        self.answers = queue.Queue()
        self.procs = []
        root = os.path.join(env.tmp, 'app')
        os.mkdir(root)
        # the build tree may be where nobody cannot go (a clone in /root): the app, its
        # data and the X cookie are copied where it can
        self.exe = os.path.join(root, os.path.basename(APP))
        shutil.copy2(APP, self.exe)
        self.xdg = os.path.join(root, 'xdg')
        shutil.copytree(TEST_DATA, self.xdg)
        home, runtime = os.path.join(root, 'home'), os.path.join(root, 'run')
        for d in (home, runtime):
            os.mkdir(d, 0o700)
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames + ['.']:
                os.chown(os.path.join(dirpath, n), APP_UID, APP_UID)
        xauth = os.environ.get('XAUTHORITY')
        appenv = {
            'PATH': '/usr/bin:/bin',
            'DISPLAY': os.environ['DISPLAY'],
            'HOME': home,
            'XDG_RUNTIME_DIR': runtime,
            'XDG_DATA_HOME': os.path.join(home, '.local', 'share'),
            'XDG_CONFIG_HOME': os.path.join(home, '.config'),
            'XDG_CACHE_HOME': os.path.join(home, '.cache'),
            'XDG_DATA_DIRS': self.xdg + ':/usr/local/share:/usr/share',
            'DBUS_SYSTEM_BUS_ADDRESS': env.address,
            'GDK_BACKEND': 'x11',
            'GSK_RENDERER': 'cairo',
            'ADW_DISABLE_PORTAL': '1',
            'LANG': 'C.UTF-8',
            'LANGUAGE': '',
        }
        if not a11y:
            appenv['GTK_A11Y'] = 'none'
        if xauth:
            copy = os.path.join(root, 'Xauthority')
            shutil.copy(xauth, copy)
            os.chown(copy, APP_UID, APP_UID)
            appenv['XAUTHORITY'] = copy
        for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS', 'MALLOC_PERTURB_'):
            if k in os.environ:
                appenv[k] = os.environ[k]
        # a GLib critical or warning is a bug the page may hide: it fails the test
        appenv['G_DEBUG'] = 'fatal-warnings'
        # GTK, fontconfig and the X libraries keep memory until exit on purpose; a leak
        # report about them would fail every run. ASan's other checks stay on.
        appenv['ASAN_OPTIONS'] = ':'.join(filter(None, [appenv.get('ASAN_OPTIONS', ''), 'detect_leaks=0']))
        appenv.update(extra_env or {})
        self.appenv = appenv

        # a real session bus, the app's own (a session bus lets only its own user in)
        session_sock = os.path.join(runtime, 'bus')
        bus = subprocess.Popen(['dbus-daemon', '--session', '--nofork', '--print-address',
                                f'--address=unix:path={session_sock}'], stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL, env=appenv, user=APP_UID, group=APP_UID,
                               extra_groups=[])
        self.procs.append(bus)
        env.procs.append(bus)
        appenv['DBUS_SESSION_BUS_ADDRESS'] = bus.stdout.readline().strip()
        if not appenv['DBUS_SESSION_BUS_ADDRESS']:
            raise RuntimeError('the session dbus-daemon did not start')

        self.log_path = os.path.join(env.tmp, 'app.log')
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen([self.exe, '--test-control'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=appenv, user=APP_UID, group=APP_UID,
                                     extra_groups=[], cwd=root)
        self.procs.append(self.proc)
        env.procs.append(self.proc)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_event('mapped')

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip('\n')
            (self.events if line.startswith('EVENT ') else self.answers).put(line)
        self.answers.put(None)
        self.events.put(None)

    def _answer(self, what):
        try:
            line = self.answers.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f'the app did not answer {what} within {TIMEOUT} s:\n{self.stderr()}') from None
        if line is None:
            raise AssertionError(f'the app exited (status {self.proc.poll()}) while answering {what}:\n'
                                 f'{self.stderr()}')
        return line

    def stderr(self):
        self.log.flush()
        return slurp(self.log_path)[-4000:]

    def send(self, line):
        if self.proc.poll() is not None:
            raise AssertionError(f'the app is gone (status {self.proc.returncode}):\n{self.stderr()}')
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()

    def wait_event(self, what=None, timeout=TIMEOUT):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f'no EVENT {what or ""} from the app within {timeout} s:\n{self.stderr()}')
            try:
                line = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f'the app exited while a test waited for EVENT {what}:\n{self.stderr()}')
            if what is None or line.split()[2] == what:
                return line

    def dump(self):
        self.send('dump')
        lines = []
        while True:
            line = self._answer('dump')
            if line == 'END':
                return '\n'.join(lines)
            lines.append(line)

    def wait_dump(self, pred, what, timeout=TIMEOUT):
        """Dumps the page at once and after every change event until pred(dump) holds."""
        end = time.monotonic() + timeout
        while True:
            d = self.dump()
            if pred(d):
                return d
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f'the page never showed {what} within {timeout} s; last dump:\n{d}\n'
                                     f'app stderr:\n{self.stderr()}')
            try:
                line = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f'the app exited while waiting for {what}:\n{self.stderr()}')

    def wait_lines(self, *lines, absent=(), what=None):
        """Waits until the dump has each of lines (compared without indentation) and none of
        the texts in absent."""
        def ok(d):
            have = [l.strip() for l in d.splitlines()]
            return all(l in have for l in lines) and not any(a in d for a in absent)
        return self.wait_dump(ok, what or ' and '.join(lines))

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, f'gui-{name}.png')
        if os.path.exists(path):
            os.unlink(path)
        # the app (nobody) writes into its own directory; the PNG is moved from there
        tmp = os.path.join(self.env.tmp, 'app', f'{name}.png')
        self.send('screenshot ' + tmp)
        ans = self._answer('screenshot')
        if ans != 'SCREENSHOT ' + tmp:
            raise AssertionError(f'screenshot {name}: {ans}')
        w, h = png_size(tmp)
        if w < 400 or h < 400 or os.path.getsize(tmp) < 10000:
            raise AssertionError(f'screenshot {name}: {w}x{h}, {os.path.getsize(tmp)} bytes: an empty window?')
        shutil.move(tmp, path)
        print(f'screenshot ({name}): {path}', flush=True)
        return path

    def activate(self, label):
        self.send('activate ' + label)
        ans = self._answer('activate')
        if ans != 'OK':
            raise AssertionError(f'activate {label!r}: {ans}\n{self.dump()}')

    def key(self, name):
        self.send('key ' + name)
        # (the app types only into its window with the keyboard focus: it waits for it)
        ans = self._answer(f'key {name} (waiting for its window to have the keyboard focus?)')
        if not ans.startswith('FOCUS '):
            raise AssertionError(f'key {name}: {ans}')
        return ans[len('FOCUS '):]

    def lose_focus(self):
        """Another window on the display takes the keyboard focus, as the window of another
        GUI test does when they run side by side on one X server; returns once the app's window
        says it is inactive. The other window stays until the app closes."""
        env = dict(os.environ, GDK_BACKEND='x11', GSK_RENDERER='cairo', GTK_A11Y='none')
        thief = subprocess.Popen([PYTHON, FOCUS_THIEF], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, env=env)
        self.procs.append(thief)
        self.env.procs.append(thief)
        # readline() blocks: the thread's answer is waited for with the harness' cap
        said = queue.Queue()
        threading.Thread(target=lambda: said.put(thief.stdout.readline().strip()), daemon=True).start()
        try:
            line = said.get(timeout=TIMEOUT)
        except queue.Empty:
            line = None
        if line != 'ACTIVE':
            raise AssertionError(f'the other window never got the keyboard focus within {TIMEOUT} s '
                                 f'(said {line!r}, status {thief.poll()})')
        # (the dump's first line is the window's: marked once GTK has seen the focus go)
        self.wait_dump(lambda d: d.split('\n', 1)[0].endswith(' [inactive]'), 'the window inactive')

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send('quit')
                self.proc.wait(timeout=20)
            except (AssertionError, BrokenPipeError, subprocess.TimeoutExpired):
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.log.close()


class GuiTestCase(unittest.TestCase):
    def make_env(self, **kw):
        kw.setdefault('polkit', True)
        env = GuiEnv(**kw)
        self.addCleanup(env.close)
        return env

    def make_app(self, env, **kw):
        app = App(env, **kw)
        self.addCleanup(app.close)
        return app

    def make_cgroups(self):
        try:
            cg = Cgroups()
        except RuntimeError as e:
            if ci():
                raise
            self.skipTest(str(e))
        self.addCleanup(cg.close)
        return cg


def main():
    preflight()
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    if not r.wasSuccessful():
        sys.exit(1)
    # every test skipped (developer machine): say so to meson instead of "OK"
    sys.exit(77 if r.testsRun > 0 and len(r.skipped) == r.testsRun else 0)
