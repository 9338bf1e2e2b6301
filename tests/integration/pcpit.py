# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcpit - helpers for pcpd's integration tests (run under `lab.sh run`).

A test script does:
    t = pcpit.Test("scenario 1: ...")          # checks the lab, binaries, tools
    t.start_bus(); t.start_pcpd()              # private bus + mock polkit + pcpd in client ns
    app = t.app()                              # a stand-in application (app.py)
    ...  t.check(cond, "expected ..., saw ...")
    t.done()
Every process is started inside the lab's namespaces (so the lab's teardown ends it even
if the test dies) and is also stopped by Test.cleanup(). Exit status: 0 pass, 1 fail,
77 skip (never in CI: with CI=true a missing prerequisite is a failure).
"""
import atexit
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
SKIP = 77
# a cap on waiting for something that must happen: generous (memcheck, a loaded machine),
# never a speed; a passing run does not wait for it
CAP = 60
# PCPD_VALGRIND=1: pcpd runs under valgrind memcheck (slow: the caps are generous for it);
# a test fails when memcheck reports errors at pcpd's clean shutdown
VALGRIND = os.environ.get("PCPD_VALGRIND") == "1"


def unix_socket_listening(path):
    """True once the stream socket at path accepts connections: its file appears at
    bind(), before listen(), and a client that connects in between is refused."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Failed(Exception):
    pass


def default_bin(var, rel):
    v = os.environ.get(var)
    if v:
        return v
    build = os.environ.get("PCPIT_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
    return os.path.normpath(os.path.join(build, rel))


class Test:
    def __init__(self, name, need=("pcpd",)):
        self.name = name
        self.procs = []
        self.failures = []
        log(f"=== {name}")
        self.lab_dir = os.environ.get("PCPIT_LAB")
        if not self.lab_dir:
            self.missing("not running inside a lab (run me with: lab.sh run -- %s)" % sys.argv[0])
        self.lab_sh = os.environ["PCPIT_LAB_SH"]
        self.nsc, self.nsr, self.nsw = os.environ["NS_C"], os.environ["NS_R"], os.environ["NS_W"]
        self.pcpd_bin = default_bin("PCPD_BIN", "daemon/pcpd")
        self.pcpctl_bin = default_bin("PCPCTL_BIN", "clients/pcpctl")
        self.refserver_bin = default_bin("REFSERVER_BIN", "tests/refserver/pcp-refserver")
        for n in need:
            path = {"pcpd": self.pcpd_bin, "pcpctl": self.pcpctl_bin,
                    "refserver": self.refserver_bin}[n]
            if not os.access(path, os.X_OK):
                self.missing(f"{n} binary {path} is missing (build it, or set "
                             f"{ {'pcpd': 'PCPD_BIN', 'pcpctl': 'PCPCTL_BIN', 'refserver': 'REFSERVER_BIN'}[n] })")
        if "pcpd" in need:
            try:
                import dbus  # noqa: F401
                import gi    # noqa: F401
            except ImportError as e:
                self.missing(f"python3-dbus / python3-gi missing: {e}")
            for tool in ("/usr/bin/dbus-daemon",):
                if not os.access(tool, os.X_OK):
                    self.missing(f"{tool} missing")
        atexit.register(self.cleanup)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    # ---------------------------------------------------------------- outcome
    def missing(self, what):
        if os.environ.get("CI") == "true":
            print(f"FAIL: {self.name}: prerequisite missing in CI: {what}", flush=True)
            sys.exit(1)
        print(f"SKIP: {self.name}: {what}", flush=True)
        sys.exit(SKIP)

    def check(self, cond, msg):
        """Soft assertion: record and go on."""
        if cond:
            log(f"ok: {msg.split(', saw')[0]}")
        else:
            log(f"FAIL: {msg}")
            self.failures.append(msg)
        return cond

    def require(self, cond, msg):
        """Hard assertion: stop the test."""
        if not self.check(cond, msg):
            self.done()

    def done(self):
        self.check_valgrind()
        self.cleanup()
        if self.failures:
            # logs first, the summary last: meson shows only the end of a long log
            self.dump_logs()
            print(f"\n{self.name}: {len(self.failures)} check(s) failed:", flush=True)
            for f in self.failures:
                print(f"  - {f}", flush=True)
            os._exit(1)
        print(f"\n{self.name}: PASS", flush=True)
        os._exit(0)

    def dump_logs(self):
        for f in ("pcpd.log", "pcpd.1.log", "miniupnpd.log", "refserver.log", "polkit.log"):
            p = os.path.join(self.lab_dir, f)
            if os.path.exists(p):
                with open(p, errors="replace") as fh:
                    lines = fh.readlines()[-12:]
                print(f"---- last lines of {f}:\n" + "".join(lines), flush=True)

    def check_valgrind(self):
        """under PCPD_VALGRIND=1: stop pcpd cleanly and fail on memcheck's verdict"""
        p = getattr(self, "pcpd", None)
        if not VALGRIND or p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            rc = p.wait(CAP)
        except subprocess.TimeoutExpired:
            self.check(False, f"pcpd under valgrind: expected it to stop on SIGTERM (cap {CAP} s), it did not")
            return
        self.check(rc != 99, f"pcpd under valgrind: expected no memcheck errors, saw exit status 99 (see {self.pcpd_log})")

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.terminate()
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    p.kill()
                except OSError:
                    pass
        self.procs = []

    # ------------------------------------------------------------------ lab
    def lab(self, *args, check=True, timeout=60):
        r = subprocess.run([self.lab_sh, *args], capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise Failed(f"lab.sh {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()} {r.stdout.strip()}")
        return r.stdout

    def wan_addr(self):
        with open(os.path.join(self.lab_dir, "wan_addr")) as f:
            return f.read().strip().split("=", 1)[1]

    def dnat(self):
        """set of (proto, ext_port, int_addr, int_port) DNAT rules at the router"""
        out = self.lab("dnat")
        return {(p, int(e), a, int(i)) for p, e, a, i in (l.split() for l in out.splitlines() if l.strip())}

    def pinholes(self):
        out = self.lab("pinholes")
        return {(p, int(port), a) for p, port, a in (l.split() for l in out.splitlines() if l.strip())}

    def netns_cmd(self, ns, argv):
        return ["ip", "netns", "exec", ns, *argv]

    def spawn(self, ns, argv, log_name=None, **kw):
        out = open(os.path.join(self.lab_dir, log_name), "ab") if log_name else subprocess.DEVNULL
        p = subprocess.Popen(self.netns_cmd(ns, argv), stdout=kw.pop("stdout", out),
                             stderr=kw.pop("stderr", out), stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
        self.procs.append(p)
        return p

    def reach(self, proto, addr, port, app, listen_port, timeout=CAP):
        """send a token from the wan ns to addr:port; True if app's listener got it"""
        token = f"tok{os.getpid()}x{time.monotonic_ns()}"
        subprocess.run(self.netns_cmd(self.nsw, [PY, os.path.join(HERE, "netcheck.py"), "send",
                                                 proto, addr, str(port), token]),
                       capture_output=True, timeout=CAP)
        ev = app.wait(lambda e: e["ev"] == "conn" and e["data"] == token and e["port"] == listen_port,
                      timeout)
        return ev is not None

    # ------------------------------------------------------------ bus + pcpd
    def start_bus(self):
        d = os.path.join(self.lab_dir, "bus")
        os.makedirs(d, exist_ok=True)
        sock = os.path.join(d, "system_bus_socket")
        policy = os.path.join(HERE, "..", "..", "dbus", "org.freedesktop.PCP1.conf")
        policy = os.environ.get("PCPIT_BUS_POLICY", os.path.normpath(policy))
        conf = os.path.join(d, "bus.conf")
        with open(conf, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
  <include>{policy}</include>
</busconfig>
""")
        self.bus_addr = f"unix:path={sock}"
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus_addr
        self.spawn(self.nsc, ["/usr/bin/dbus-daemon", "--config-file", conf, "--nofork", "--nopidfile"],
                   log_name="dbus.log")
        self.wait_until(lambda: unix_socket_listening(sock), CAP, "private dbus-daemon socket to accept connections")
        self.spawn(self.nsc, ["env", f"DBUS_SYSTEM_BUS_ADDRESS={self.bus_addr}", PY, "-m", "dbusmock",
                              "--system", "--template", "polkitd"], log_name="polkit.log")
        self.wait_until(lambda: self.name_has_owner("org.freedesktop.PolicyKit1"), CAP, "mock polkitd (python3 -m dbusmock --template polkitd) on the bus; see polkit.log")

    def name_has_owner(self, name):
        r = subprocess.run(["busctl", f"--address={self.bus_addr}", "call", "org.freedesktop.DBus",
                            "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", name],
                           capture_output=True, text=True)
        return r.returncode == 0 and "true" in r.stdout

    def write_config(self, **over):
        conf = {"Enabled": "true", "DefaultLifetime": "3600", "MaxMappingsPerUser": "64",
                "Servers": "", "UseDefaultRouters": "true", "AnnouncePort": "5350"}
        conf.update({k: str(v) for k, v in over.items()})
        daemon_keys = [k for k in conf if k not in ("Servers", "UseDefaultRouters", "AnnouncePort")]
        text = "[Daemon]\n" + "".join(f"{k}={conf[k]}\n" for k in daemon_keys)
        text += "[Servers]\n" + "".join(f"{k}={conf[k]}\n" for k in ("Servers", "UseDefaultRouters", "AnnouncePort"))
        path = os.path.join(self.lab_dir, "pcpd.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_pcpd(self, log_name="pcpd.log", timeout=CAP, nice=None, **conf):
        """pcpd in the client ns; nice: its scheduling priority (a test that measures pcpd's
        own timing raises it, so that other load on a shared machine does not starve its
        timers)"""
        if not hasattr(self, "bus_addr"):
            self.start_bus()
        cfg = self.write_config(**conf)
        state = os.path.join(self.lab_dir, "pcpd-state")
        os.makedirs(state, mode=0o700, exist_ok=True)  # pcpd refuses a directory others can write
        argv = ["env", "-u", "NOTIFY_SOCKET", f"DBUS_SYSTEM_BUS_ADDRESS={self.bus_addr}", "G_MESSAGES_DEBUG=all"]
        if nice is not None:
            argv = ["nice", "-n", str(nice)] + argv
        if VALGRIND:
            argv += ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                     "--show-leak-kinds=definite,indirect", "--quiet"]
        argv += [self.pcpd_bin, "--config", cfg, "--state-dir", state]
        self.pcpd_log = log_name
        t0 = time.monotonic()
        self.pcpd = self.spawn(self.nsc, argv, log_name=log_name)
        ok = self.wait_until(lambda: self.name_has_owner("org.freedesktop.PCP1") or self.pcpd.poll() is not None,
                             timeout, "pcpd owning org.freedesktop.PCP1", fatal=False)
        if not ok or self.pcpd.poll() is not None:
            self.require(False, f"pcpd did not come up: expected it to own org.freedesktop.PCP1 on the private "
                                f"bus (cap {timeout} s) (exit status {self.pcpd.poll()}); see {log_name}")
        log(f"pcpd up in {time.monotonic() - t0:.1f} s (pid {self.pcpd.pid})")
        return self.pcpd

    def kill_pcpd(self):
        self.pcpd.send_signal(signal.SIGKILL)
        self.pcpd.wait(CAP)
        self.wait_until(lambda: not self.name_has_owner("org.freedesktop.PCP1"), CAP, "bus name released")

    def pcpd_log_lines(self, pattern):
        """pcpd's log lines (the log of the last start_pcpd()) that match the regular
        expression pattern, in order, without their newline: e.g. the once-per-episode
        lines of a server's epoch reset ("PCP server ADDR lost its mappings") or of an
        announced change ("PCP server ADDR announced a change")"""
        rx = re.compile(pattern)
        with open(os.path.join(self.lab_dir, self.pcpd_log), errors="replace") as f:
            return [line.rstrip("\n") for line in f if rx.search(line)]

    def pcpctl(self, *args, timeout=CAP):
        return subprocess.run(self.netns_cmd(self.nsc, ["env", f"DBUS_SYSTEM_BUS_ADDRESS={self.bus_addr}",
                                                        self.pcpctl_bin, *args]),
                              capture_output=True, text=True, timeout=timeout)

    def app(self, name="app"):
        return App(self, name)

    # ------------------------------------------------------------- waiting
    def wait_until(self, fn, timeout, what, fatal=True, interval=0.1):
        end = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() >= end:
                if fatal:
                    self.require(False, f"timed out after {timeout} s waiting for {what}")
                return None
            time.sleep(interval)

    def capture(self, iface="lan0", seconds=120, ns=None):
        return Capture(self, ns or self.nsr, iface, seconds)

    def canary(self, ns=None, nice=None, watch=None):
        """canary.py in the client ns (at pcpd's nice value): which hold-ups were the machine's;
        watch: a pid (pcpd's) whose own waits for a CPU count as the machine's too"""
        return Canary(self, ns or self.nsc, nice, watch)


class App:
    """app.py in the client ns; events in self.events (list), waiters by predicate."""

    def __init__(self, t, name):
        self.t = t
        self.name = name
        self.events = []
        self.cv = threading.Condition()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=t.bus_addr)
        self.p = t.spawn(t.nsc, [PY, os.path.join(HERE, "app.py")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=open(os.path.join(t.lab_dir, f"{name}.log"), "ab"),
                         env=env)
        threading.Thread(target=self._reader, daemon=True).start()
        ev = self.wait(lambda e: e["ev"] == "ready", CAP)
        t.require(ev is not None, f"{name}: expected app.py to start and connect to the bus (cap {CAP} s), saw nothing "
                                  f"(see {name}.log)")
        self.unique_name = ev["unique_name"]

    def _reader(self):
        for line in self.p.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            with self.cv:
                self.events.append(e)
                self.cv.notify_all()

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def wait(self, pred, timeout, since=0):
        """first event (index >= since) matching pred, or None after timeout"""
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for e in self.events[since:]:
                    if pred(e):
                        return e
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(min(left, 0.2))

    def mark(self):
        with self.cv:
            return len(self.events)

    def add(self, key, proto, port, suggested=0, family="ipv4", timeout=CAP, opts=None, expect_error=False):
        m = self.mark()
        self.send(f"add {key} {proto} {port} {suggested} {family}" + (f" {json.dumps(opts, separators=(',', ':'))}" if opts else ""))
        ev = self.wait(lambda e: e.get("key") == key and e["ev"] in ("props-all", "error"), timeout, since=m)
        if ev is None:
            self.t.require(False, f"AddMapping({proto}, {port}, {suggested}, family={family}): no reply (cap {timeout} s)")
        if expect_error:
            return ev
        if ev["ev"] == "error":
            self.t.require(False, f"AddMapping({proto}, {port}, {suggested}, family={family}): expected an object "
                                  f"path, got error {ev['name']}: {ev['msg']}")
        return ev

    def props(self, key, timeout=10):
        m = self.mark()
        self.send(f"get {key}")
        ev = self.wait(lambda e: e.get("key") == key and e["ev"] in ("props-all", "error"), timeout, since=m)
        if ev is None or ev["ev"] == "error":
            return None
        return ev["props"]

    def manager(self, timeout=CAP):
        m = self.mark()
        self.send("manager")
        ev = self.wait(lambda e: e["ev"] in ("manager",) or (e["ev"] == "error" and e.get("op") == "manager"),
                       timeout, since=m)
        return ev["props"] if ev and ev["ev"] == "manager" else None

    def state(self, key):
        """latest known values of a mapping's properties from props-all + PropertiesChanged"""
        cur = {}
        with self.cv:
            for e in self.events:
                if e.get("key") != key:
                    continue
                if e["ev"] == "props-all":
                    cur.update(e["props"])
                elif e["ev"] == "props":
                    cur.update(e["changed"])
        return cur

    def wait_state(self, key, pred, timeout, poll=True):
        """wait until pred(props) holds for the mapping, watching signals and polling Get"""
        end = time.monotonic() + timeout
        while True:
            s = self.state(key)
            if pred(s):
                return s
            if poll and time.monotonic() + 0.5 < end:
                p = self.props(key, timeout=2)
                if p is not None and pred(p):
                    return p
            if time.monotonic() >= end:
                return None
            self.wait(lambda e: e.get("key") == key and e["ev"] == "props", min(1.0, max(0.0, end - time.monotonic())),
                      since=self.mark())

    def release(self, key, timeout=CAP):
        m = self.mark()
        self.send(f"release {key}")
        ev = self.wait(lambda e: e.get("key") == key and e["ev"] in ("released", "error"), timeout, since=m)
        return ev

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(CAP)


def active(s):
    return s.get("State") == "active" and s.get("ExternalPort", 0) != 0


def describe(s):
    keys = ("State", "Error", "ExternalAddress", "ExternalPort", "InternalAddress", "InternalPort", "Server")
    return "{" + ", ".join(f"{k}={s.get(k)!r}" for k in keys if k in s) + "}"


class Capture:
    """pcp-probe.py capture in a namespace; packets() returns the decoded list so far.

    The capture process writes a packet some time after the kernel queued it for it (on a
    loaded machine, ~1.5 s was seen), so after an event that followed a packet (pcpd
    reporting a refresh, after the router's answer) packets() may not list that packet
    yet: sync() first, which waits until the capture printed a marker sent now."""

    def __init__(self, t, ns, iface, seconds):
        self.t, self.ns, self.iface = t, ns, iface
        self.out = os.path.join(t.lab_dir, f"capture-{iface}-{time.monotonic_ns()}.json")
        self.f = open(self.out, "wb")
        self.p = t.spawn(ns, [PY, os.path.join(HERE, "pcp-probe.py"), "capture", "--iface", iface,
                              "--seconds", str(seconds)], stdout=self.f, stderr=subprocess.DEVNULL)
        t.wait_until(lambda: os.path.getsize(self.out) > 0, CAP, f"capture on {iface} to start")

    def _lines(self):
        with open(self.out) as f:
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def packets(self):
        return [d for d in self._lines() if "capture" not in d and "mark" not in d]

    def sync(self, timeout=CAP):
        """Return once the capture's output holds every packet the interface carried
        before this call: a marker datagram is sent out of the interface (again every
        second, should one be lost: the lab's random loss drops UDP before the capture
        point on egress) and awaited in the output."""
        token = f"{os.getpid()}x{time.monotonic_ns()}"
        argv = self.t.netns_cmd(self.ns, [PY, os.path.join(HERE, "pcp-probe.py"), "mark", "--iface", self.iface,
                                          "--token", token])
        t0 = time.monotonic()
        n0 = len(self.packets())
        sent = 0
        while True:
            subprocess.run(argv, capture_output=True, timeout=CAP)
            sent += 1
            resend = time.monotonic() + 1.0
            while time.monotonic() < resend:
                if any(d.get("mark") == token for d in self._lines()):
                    late = self.packets()[n0:]
                    if late:
                        log(f"capture on {self.iface}: {len(late)} packet(s) printed while syncing, the oldest sent "
                            f"{t0 - min(p['t'] for p in late):.3f} s before the sync")
                    return
                if self.p.poll() is not None:
                    self.t.require(False, f"capture on {self.iface}: expected it to run until stopped, it exited "
                                          f"with status {self.p.returncode}")
                if time.monotonic() - t0 >= timeout:
                    self.t.require(False, f"capture on {self.iface}: expected it to print the marker sent out of "
                                          f"{self.iface} (cap {timeout} s, {sent} marker(s) sent), saw none: it "
                                          f"did not catch up with the packets")
                time.sleep(0.02)

    def stop(self):
        """every packet up to now (sync()), then the capture ends"""
        if self.p.poll() is None:
            self.sync()
            self.p.terminate()
            self.p.wait(CAP)
        return self.packets()


class Canary:
    """canary.py beside pcpd: held_up(a, b) is how long in [a, b] (monotonic s) the machine
    held up the canary or, with watch=PID, the watched process itself (the time its main
    thread waited on a run queue for a CPU). A machine that starves everything holds those up
    too; a stall of pcpd's own (its loop busy, or blocked in a system call) does neither."""

    def __init__(self, t, ns, nice, watch=None):
        self.out = os.path.join(t.lab_dir, f"canary-{time.monotonic_ns()}.json")
        self.f = open(self.out, "wb")
        # appends beside pcpd's log and state directory (the lab's directory): a filesystem
        # stall that holds up pcpd's writes holds up the canary's too
        argv = [PY, os.path.join(HERE, "canary.py"), "--append", self.out + ".appends"]
        if watch is not None:
            argv += ["--watch", str(watch)]
        nice_argv = ["nice", "-n", str(nice)] if nice is not None else []
        self.p = t.spawn(ns, nice_argv + argv, stdout=self.f, stderr=subprocess.DEVNULL)
        # and one pinned to each CPU: a virtual CPU the host took away holds up what waits
        # to run on it, pcpd's wake-up among them, and only a canary on that CPU sees it
        self.pinned = []
        for cpu in sorted(os.sched_getaffinity(0)):
            out = f"{self.out}.cpu{cpu}"
            f = open(out, "wb")
            p = t.spawn(ns, nice_argv + [PY, os.path.join(HERE, "canary.py"), "--cpu", str(cpu)],
                        stdout=f, stderr=subprocess.DEVNULL)
            self.pinned.append((cpu, out, f, p))
        t.wait_until(lambda: all(os.path.getsize(out) > 0 for out in [self.out] + [x[1] for x in self.pinned]),
                     CAP, "canary.py (one beside pcpd, one pinned to each CPU) to start")

    def _records(self, out=None):
        with open(out or self.out) as f:
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def own_holdups(self):
        """[(due, woke)]: the canary beside pcpd was held up from due to woke"""
        return [(d["due"], d["woke"]) for d in self._records() if "due" in d]

    def pinned_holdups(self):
        """[(from, to)]: the canary pinned to the CPU the watched thread last ran on (where
        its poll's timeout is queued) was held up by the CPU itself not being there, in the
        spans the thread was last seen there: a late wake-up less the canary's own wait on
        the guest's run queue (that wait, the guest's load, reaches the watched thread as its
        own run-queue wait, counted in watched_waits()). Without a watch: every CPU's."""
        spans = {}  # cpu -> [(from, to)] in which the watched thread was last seen on it
        marks = [tuple(d["on_cpu"]) for d in self._records() if "on_cpu" in d]
        for i, (t, cpu) in enumerate(marks):
            spans.setdefault(cpu, []).append((t, marks[i + 1][0] if i + 1 < len(marks) else float("inf")))
        res = []
        for cpu, out, _, _ in self.pinned:
            for d in self._records(out):
                if "due" not in d or d["woke"] - d.get("queued", 0.0) <= d["due"]:
                    continue
                gone = (d["due"], d["woke"] - d.get("queued", 0.0))
                if not marks:
                    res.append(gone)
                    continue
                for a, b in spans.get(cpu, []):
                    lo, hi = max(a, gone[0]), min(b, gone[1])
                    if hi > lo:
                        res.append((lo, hi))
        return res

    def cpu_holdups(self, a, b):
        """{cpu: (seconds held up, of which waiting on the guest's run queue)} within [a, b],
        each CPU's pinned canary"""
        res = {}
        for cpu, out, _, _ in self.pinned:
            held = queued = 0.0
            for d in self._records(out):
                if "due" in d:
                    part = max(0.0, min(b, d["woke"]) - max(a, d["due"]))
                    held += part
                    if part > 0 and d["woke"] > d["due"]:
                        queued += min(part, d.get("queued", 0.0))
            res[cpu] = (round(held, 2), round(queued, 2))
        return res

    def watched_waits(self):
        """[(from, to)]: the watched process waited on a run queue for a CPU. The kernel adds
        a wait to the count when the wait ends (the thread gets its CPU), so a growth of s seen
        at a wake-up at `to` is taken as the s before `to` (off by at most one period)."""
        res = []
        for d in self._records():
            if "wait" in d:
                a, b, s = d["wait"]
                res.append((b - s, b))
        return res

    def blocked(self):
        """[(t, wchan)]: wake-ups that found the watched process's main thread in
        uninterruptible sleep (a system call waiting, e.g. for the disk): its own"""
        return [(d["blocked"], d.get("wchan", "")) for d in self._records() if "blocked" in d]

    def busy(self, a, b):
        """seconds the watched process's main thread ran on a CPU within [a, b] (from the
        canary's records of >= 10 ms per wake-up: its loop busy, not sleeping)"""
        res = 0.0
        for d in self._records():
            if "ran" in d:
                x, y, s = d["ran"]
                if y > x and x < b and y > a:
                    res += s * (min(b, y) - max(a, x)) / (y - x)
        return res

    def sleeps(self, a, b):
        """{syscall number: wake-ups}: the watched thread found asleep within [a, b] in a
        system call other than its main loop's poll (e.g. a futex: waiting for a thread)"""
        res = {}
        for d in self._records():
            if "sleep" in d and a <= d["sleep"] <= b:
                res[d["syscall"]] = res.get(d["syscall"], 0) + 1
        return res

    def holdups(self):
        """[(from, to)], disjoint and in order: the machine held up the canary or the watched
        process (the union of own_holdups(), watched_waits() and pinned_holdups())"""
        res = []
        for a, b in sorted(self.own_holdups() + self.watched_waits() + self.pinned_holdups()):
            if res and a <= res[-1][1]:
                res[-1] = (res[-1][0], max(res[-1][1], b))
            else:
                res.append((a, b))
        return res

    def held_up(self, a, b, holdups=None):
        """seconds of [a, b] in which the machine held up the canary or the watched process"""
        return sum(max(0.0, min(b, w) - max(a, d)) for d, w in (holdups if holdups is not None else self.holdups()))

    def alive(self):
        return self.p.poll() is None and all(p.poll() is None for _, _, _, p in self.pinned)
