# SPDX-License-Identifier: LGPL-2.1-or-later
"""nmwatch - what a libnm client (python3-gi NM, as pcpd-nm will use libnm) sees, and a way
to wait for it: every wait runs the GLib main loop until a condition holds, re-checked on
each libnm signal, with a generous cap whose failure says what was awaited and what was
seen. Used by the self-checks of nmlab (real NetworkManager) and nmmock (the mock).

    w = nmwatch.Watch(bus_address)             # an NM.Client on that bus
    w.wait(lambda: w.option(4) == "4 192 168 77 5", "pcp_server 192.168.77.5")
    w.events                                   # what happened, in order (for checks)
"""

import time

import gi

gi.require_version("NM", "1.0")
from gi.repository import Gio, GLib, NM  # noqa: E402

KEYS = {4: ("pcp_server", "unknown_158"), 6: ("dhcp6_pcp_server",)}


class Watch:
    def __init__(self, bus_address, iface="c0"):
        # a connection of our own to that bus, not GLib's shared system bus: the shared one
        # raises SIGTERM in the process when its bus goes away (exit-on-close), and a test
        # outlives the bus of each lab it uses
        self.conn = Gio.DBusConnection.new_for_address_sync(
            bus_address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        self.conn.set_exit_on_close(False)
        self.iface = iface
        self.events = []
        self.ctx = GLib.MainContext.default()
        self.client = NM.Client(dbus_connection=self.conn)
        self.client.init(None)
        self._hooked = set()
        self.client.connect("notify::nm-running", lambda *a: self._event("nm-running", self.client.get_nm_running()))
        self.client.connect("notify::primary-connection", lambda *a: self._event("primary-connection", self.primary()))
        self.client.connect("notify::active-connections", lambda *a: self._event("active-connections", None))
        self.client.connect("device-added", lambda c, d: (self._event("device-added", d.get_iface()), self._hook_device(d)))
        self.client.connect("device-removed", lambda c, d: self._event("device-removed", d.get_iface()))
        for d in self.client.get_devices():
            self._hook_device(d)

    def _event(self, what, value):
        self.events.append((time.monotonic(), what, value))

    def _hook_config(self, cfg):
        if cfg is None or NM.Object.get_path(cfg) in self._hooked:
            return
        self._hooked.add(NM.Object.get_path(cfg))
        cfg.connect("notify::options",
                    lambda c, p: self._event("options", (NM.Object.get_path(c), dict(c.get_options() or {}))))

    def _hook_device(self, dev):
        # NM.Device.get_path() is the udev path: the D-Bus path is NM.Object's
        key = ("dev", NM.Object.get_path(dev))
        if key in self._hooked:
            return
        self._hooked.add(key)
        for prop, fam in (("dhcp4-config", 4), ("dhcp6-config", 6)):
            dev.connect("notify::" + prop, lambda d, p, fam=fam: self._on_config(d, fam))
        self._hook_config(dev.get_dhcp4_config())
        self._hook_config(dev.get_dhcp6_config())

    def _on_config(self, dev, fam):
        cfg = dev.get_dhcp4_config() if fam == 4 else dev.get_dhcp6_config()
        self._event(f"dhcp{fam}-config", NM.Object.get_path(cfg) if cfg else "/")
        self._hook_config(cfg)

    # -- what libnm shows now --
    def device(self):
        return self.client.get_device_by_iface(self.iface) if self.client.get_nm_running() else None

    def config(self, family):
        d = self.device()
        if d is None:
            return None
        return d.get_dhcp4_config() if family == 4 else d.get_dhcp6_config()

    def config_path(self, family):
        c = self.config(family)
        return NM.Object.get_path(c) if c is not None else None

    def options(self, family):
        c = self.config(family)
        return dict(c.get_options() or {}) if c is not None else None

    def option(self, family):
        o = self.options(family) or {}
        for k in KEYS[family]:
            if k in o:
                return o[k]
        return None

    def primary(self):
        ac = self.client.get_primary_connection()
        if ac is None:
            return None
        devs = ac.get_devices()
        return (ac.get_id(), devs[0].get_iface() if devs else None, ac.get_vpn())

    def nm_running(self):
        return self.client.get_nm_running()

    # -- waiting --
    def wait(self, cond, what, seconds=30.0, seen=None):
        """Runs the main loop until cond() holds; fails after `seconds` saying what it waited
        for and what it saw (seen(), default: the PCP options)."""
        t0 = time.monotonic()
        end = t0 + seconds
        while True:
            try:
                if cond():
                    return time.monotonic() - t0
            except Exception:  # an object going away in the middle of a change
                pass
            if time.monotonic() > end:
                now = seen() if seen else {"v4": self.option(4), "v6": self.option(6), "nm": self.nm_running()}
                raise AssertionError(f"waited {seconds:.0f}s for {what}; saw {now}")
            self._iterate()

    def _iterate(self):
        # one main loop iteration, woken at least every 100 ms to re-check the cap
        fired = []
        src = GLib.timeout_add(100, lambda: fired.append(1) and False)
        self.ctx.iteration(True)
        if not fired:
            GLib.source_remove(src)

    def close(self):
        self.client = None
        self.conn.close_sync(None)

    def events_since(self, t, what=None):
        return [e for e in self.events if e[0] >= t and (what is None or e[1] == what)]
