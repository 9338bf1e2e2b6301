# SPDX-License-Identifier: LGPL-2.1-or-later
"""upnpit - helpers for the UPnP-IGD backend tests (run under tests/integration/lab.sh).

    t = upnpit.Test("upnp: ...")        # pcpit.Test: lab checks, check/require/done
    igd = t.igd("--permanent-only")      # the scripted IGD in the router ns (optional)
    d = t.driver("--check-interval", "5")  # upnp-driver in the client ns
    ev = d.wait_mapping("a", lambda e: e["state"] == "active", 20)
    ...
    t.finish()                           # quits the driver, checks its exit status, done()

PCPD_UPNP_VALGRIND=1 runs the driver under valgrind (memcheck; suppressions in
glib.supp); its errors make the driver's exit status, which finish() checks.
"""
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import pcpit  # noqa: E402

PY = "/usr/bin/python3"
log = pcpit.log
RESTARTS = 18
T0 = time.monotonic()


class Test(pcpit.Test):
    def __init__(self, name):
        super().__init__(name, need=())
        self.driver_bin = pcpit.default_bin("UPNP_DRIVER", "tests/upnp/upnp-driver")
        if not os.access(self.driver_bin, os.X_OK):
            self.missing(f"upnp-driver {self.driver_bin} is missing (build it, or set UPNP_DRIVER)")
        self.drivers = []
        self.router4 = os.environ.get("ROUTER4", "192.168.77.1")
        self.client4 = os.environ.get("CLIENT4", "192.168.77.2")

    def dump_logs(self):
        super().dump_logs()
        for f in sorted(os.listdir(self.lab_dir)):
            if f.startswith(("driver", "igd")) and f.endswith(".log"):
                with open(os.path.join(self.lab_dir, f), errors="replace") as fh:
                    lines = fh.readlines()[-15:]
                print(f"---- last lines of {f}:\n" + "".join(lines), flush=True)
        for d in self.drivers:
            # the events the checks judged, with when they came ("at": s since the test began)
            print(f"---- last events of {d.name}:", flush=True)
            for e in d.events[-25:]:
                print(f"  {json.dumps(e)}", flush=True)

    def driver(self, *args, name=None, gateway=True):
        name = name or f"driver{len(self.drivers)}"
        d = Driver(self, name, list(args), gateway)
        self.drivers.append(d)
        return d

    def igd(self, *args, name="igd"):
        return Igd(self, name, list(args))

    def finish(self):
        for d in self.drivers:
            if d.p.poll() is None:
                rc = d.quit()
                self.check(rc == 0, f"{d.name} exits cleanly (status 0: no leak or memory error under "
                                    f"valgrind/ASan), saw status {rc}; see {d.name}.log")
        self.done()


class Driver:
    def __init__(self, t, name, args, gateway):
        self.t = t
        self.name = name
        self.events = []
        self.cv = threading.Condition()
        argv = [t.driver_bin, "--interface", "c0", *args]
        if gateway:
            argv += ["--gateway", t.router4]
        if os.environ.get("PCPD_UPNP_VALGRIND"):
            argv = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                    "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                    f"--suppressions={os.path.join(HERE, 'glib.supp')}", "--num-callers=30", *argv]
        env = dict(os.environ, G_DEBUG="fatal-criticals", G_SLICE="always-malloc",
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "fast_unwind_on_malloc=0"),
                   LSAN_OPTIONS=f"suppressions={os.path.join(HERE, 'lsan.supp')}:print_suppressions=0",
                   G_MESSAGES_DEBUG=os.environ.get("G_MESSAGES_DEBUG", "pcpd-upnp"))
        self.p = t.spawn(t.nsc, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=open(os.path.join(t.lab_dir, f"{name}.log"), "ab"), env=env)
        threading.Thread(target=self._reader, daemon=True).start()
        ev = self.wait(lambda e: e["ev"] == "ready", 60)
        t.require(ev is not None, f"{name}: expected upnp-driver to start and print ready within 60 s, "
                                  f"saw nothing (exit status {self.p.poll()}); see {name}.log")

    def _reader(self):
        for line in self.p.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            e["at"] = round(time.monotonic() - T0, 2)
            with self.cv:
                self.events.append(e)
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def send(self, line):
        try:
            self.p.stdin.write((line + "\n").encode())
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            self.p.wait(10)
            self.t.require(False, f"{self.name}: upnp-driver still running to take '{line}', saw it gone "
                                  f"(exit status {self.p.returncode}); see {self.name}.log")

    def mark(self):
        with self.cv:
            return len(self.events)

    def wait(self, pred, timeout, since=0):
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for e in self.events[since:]:
                    if pred(e):
                        return e
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(min(left, 0.5))

    def after(self, ev):
        """the mark just after ev (an event this driver reported): what came later"""
        with self.cv:
            return next(i for i, e in enumerate(self.events) if e is ev) + 1

    def find(self, pred, since=0):
        with self.cv:
            return [e for e in self.events[since:] if pred(e)]

    def add(self, key, proto, port, suggested=0, lifetime=3600, *opts, addr=None):
        m = self.mark()
        self.send(f"add {key} {proto} {addr or self.t.client4} {port} {suggested} {lifetime} {' '.join(opts)}")
        ev = self.wait(lambda e: e.get("key") == key and e["ev"] in ("added", "error") or
                       (e["ev"] == "error" and e.get("cmd") == "add"), 10, since=m)
        self.t.require(ev is not None and ev["ev"] == "added",
                       f"{self.name}: add {key} {proto} {port}: expected 'added', saw {ev}")
        return m

    def wait_mapping(self, key, pred, timeout, since=0, what=None):
        ev = self.wait(lambda e: e["ev"] == "mapping" and e.get("key") == key and pred(e), timeout, since)
        if ev is None and what:
            last = self.find(lambda e: e.get("key") == key)
            igd = [(e["present"], e["at"]) for e in self.find(lambda e: e["ev"] == "igd", since)]
            # what came by GENA: events received, GetExternalIPAddress asked after one,
            # subscriptions lost (and made again)
            st = self.stats() if self.p.poll() is None else None
            gena = {k: st.get(k) for k in ("notifies", "events", "event_checks", "events_unconfirmed",
                                       "subscriptions_lost")} if st else None
            self.t.require(False, f"{self.name}: mapping {key} {what} within {timeout} s, "
                                  f"saw as its last event: {last[-1] if last else None}; "
                                  f"IGD events (present, at s) meanwhile: {igd}; driver stats: {gena}")
        return ev

    def wait_deleted(self, key, timeout, since=0):
        ev = self.wait(lambda e: e["ev"] == "deleted" and e.get("key") == key, timeout, since)
        self.t.require(ev is not None, f"{self.name}: mapping {key} deleted within {timeout} s, "
                                       f"saw no deleted event")
        return ev

    def wait_igd(self, timeout=30, since=0, present=True):
        ev = self.wait(lambda e: e["ev"] == "igd" and e["present"] == present, timeout, since)
        return ev

    def query(self, cmd, ev_name, timeout=10):
        m = self.mark()
        self.send(cmd)
        return self.wait(lambda e: e["ev"] in (ev_name, "error"), timeout, since=m)

    def stats(self):
        return self.query("stats", "stats")

    def quit(self, timeout=60):
        try:
            self.send("quit")
        except (BrokenPipeError, OSError):
            pass
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return -9

    def kill9(self):
        self.p.kill()
        self.p.wait(10)


class Igd:
    def __init__(self, t, name, args):
        self.t = t
        self.name = name
        self.logfile = os.path.join(t.lab_dir, f"{name}.requests.jsonl")
        open(self.logfile, "w").close()
        argv = [PY, os.path.join(HERE, "igd.py"), "--addr", t.router4, "--iface", "lan0",
                "--log", self.logfile, *args]
        self.p = t.spawn(t.nsr, argv, stdin=subprocess.PIPE, log_name=f"{name}.log")
        t.wait_until(lambda: any(e["ev"] == "ready" for e in self.entries()), 15,
                     f"the scripted IGD ({name}) to log ready")

    def entries(self):
        out = []
        with open(self.logfile) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def requests(self, action=None):
        return [e for e in self.entries() if e["ev"] == "http" and (action is None or e.get("action") == action)]

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def wait_log(self, pred, timeout, what):
        return self.t.wait_until(lambda: [e for e in self.entries() if pred(e)], timeout, what)
