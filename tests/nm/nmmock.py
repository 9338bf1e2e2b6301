#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""nmmock - a NetworkManager mock on a private bus, for the many cases the real one (nmlab)
is too slow or too well-behaved to show: python3-dbusmock's networkmanager template, plus
what it lacks and libnm needs for DHCP (DHCP4Config/DHCP6Config objects announced with
InterfacesAdded, the devices' Dhcp4Config/Dhcp6Config/IpInterface, the manager's
PrimaryConnection), plus helpers that reproduce what the real NetworkManager 1.42 does
(measured with nmlab, see ../shared/lab/NM-NOTES.md):

    renew()         every DHCP renewal re-sends all options, changed or not (a new expiry)
    reconnect()     Dhcp4Config/Dhcp6Config go to "/", the old objects are emptied and
                    dropped, the device leaves its active connection for a new activation
                    (DEACTIVATING, DISCONNECTED: NEW_ACTIVATION), the primary connection
                    goes away and comes back, new objects appear with empty Options and
                    are filled in later (fill()); reconnect_begin() and reconnect_end()
                    stop in between, where a client may look
    reapply_ipv6()  NM 1.42's bug: DHCPv6 stops, the DHCP6Config stays exported with its
                    last options and never changes again (only its lease times tell)
    set_primary(), vpn_up(), vpn_down(), link_down(), link_up()
    stop(), start() NetworkManager leaves the bus and comes back (the same devices and
                    leases, new object paths); unexport_devices() before stop() is what
                    the real one does while it shuts down; start(activate=False) then
                    activate() stops where the devices are back and their active
                    connections not yet (the real one shows that for a moment)
    barrier()       a change the client will see after every change made before it: lets a
                    test say "nothing else happened" without waiting for wall-clock time

    with nmmock.NMMock() as nm:                       # its own bus, or NMMock(bus_address=...)
        nm.add_device("eth0", dhcp4={"pcp_server": "4 192 168 77 5"}, dhcp6={...})
        nm.bus_address                                # for pcpd and libnm

No root, no namespaces; the bus is a dbus-daemon of this process's user.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import dbus

from nmlab import unix_socket_listening  # one definition for both harnesses

PY = "/usr/bin/python3"
NM_NAME = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_IFACE = "org.freedesktop.NetworkManager"
DEVICE_IFACE = "org.freedesktop.NetworkManager.Device"
AC_IFACE = "org.freedesktop.NetworkManager.Connection.Active"
D4_IFACE = "org.freedesktop.NetworkManager.DHCP4Config"
D6_IFACE = "org.freedesktop.NetworkManager.DHCP6Config"
OM_IFACE = "org.freedesktop.DBus.ObjectManager"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
# NMDeviceState, NMDeviceStateReason, NMActiveConnectionState
ACTIVATED, DISCONNECTED, UNAVAILABLE, DEACTIVATING = 100, 30, 20, 110
NEW_ACTIVATION = 60
AC_ACTIVATED = 2


def _opts(d):
    return dbus.Dictionary({k: dbus.String(v, variant_level=1) for k, v in d.items()}, signature="sv")


class NMMock:
    def __init__(self, bus_address=None, version="1.42.4"):
        self.own_bus = bus_address is None
        self.bus_address = bus_address
        self.version = version
        self.dir = None
        self.bus_proc = self.mock_proc = None
        self.bus = None
        # the model, rebuilt on the mock after start()
        self.devices = {}   # iface -> {"dhcp4": dict|None, "dhcp6": dict|None, "state", "vpn": bool, "up": bool}
        self.order = []     # ifaces in the order added
        self.primary_iface = None
        self.paths = {}     # iface -> {"dev", "conn", "ac", "dhcp4", "dhcp6"} on the running mock
        self.serial = 0
        self.connectivity = 4

    # ---- processes ----
    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.down()

    def up(self):
        self.dir = tempfile.mkdtemp(prefix="pcpd-nmmock-")
        if self.own_bus:
            sock = os.path.join(self.dir, "system_bus_socket")
            conf = os.path.join(self.dir, "bus.conf")
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
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
""")
            self.bus_proc = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile",
                                              "--nosyslog"], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "bus.log"), "w"))
            self.bus_address = f"unix:path={sock}"
            self._wait(lambda: unix_socket_listening(sock), 60, "the private bus socket to accept connections")
        self.bus = dbus.bus.BusConnection(self.bus_address)
        self.start()
        return self

    def down(self):
        self.stop()
        if self.bus is not None:
            self.bus.close()
            self.bus = None
        if self.bus_proc is not None:
            self.bus_proc.terminate()
            try:
                self.bus_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.bus_proc.kill()
                self.bus_proc.wait()
            self.bus_proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _wait(self, cond, seconds, what):
        end = time.monotonic() + seconds
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError(f"nmmock: waited {seconds}s for {what}")
            time.sleep(0.02)

    def _owned(self):
        try:
            return self.bus.name_has_owner(NM_NAME)
        except dbus.exceptions.DBusException:
            return False

    def start(self, activate=True):
        """NetworkManager appears on the bus, with every device, connection and lease of
        the model (under new object paths, as a restarted NetworkManager). activate=False:
        the devices are there (an up one in an activated state) without their active
        connections, leases and the primary connection: activate() adds them."""
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address)
        self.mock_proc = subprocess.Popen(
            [PY, "-m", "dbusmock", "--system", "--template", "networkmanager",
             "--parameters", json.dumps({"Version": self.version})],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "mock.log"), "a"))
        self._wait(self._owned, 30, "the NetworkManager mock on the bus")
        self.mock = self._iface(NM_PATH, MOCK_IFACE)
        # what the template lacks: the primary connection
        self._obj(NM_PATH).AddProperty(NM_IFACE, "PrimaryConnection", dbus.ObjectPath("/"), dbus_interface=MOCK_IFACE)
        self._obj(NM_PATH).AddProperty(NM_IFACE, "PrimaryConnectionType", "", dbus_interface=MOCK_IFACE)
        self.paths = {}
        for iface in self.order:
            self._realize(iface, activate=False)
        if activate:
            self.activate()

    def activate(self):
        """The active connections (and leases, and the primary connection) of the devices
        that are up and have none (after start(activate=False))."""
        for iface in self.order:
            if self.devices[iface]["up"] and self.paths[iface]["ac"] is None:
                self._activate(iface)
        if self.primary_iface is not None:
            self.set_primary(self.primary_iface)

    def stop(self, sig=signal.SIGTERM):
        """NetworkManager leaves the bus (the model is kept for start())."""
        if self.mock_proc is None:
            return
        self.mock_proc.send_signal(sig)
        try:
            self.mock_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.mock_proc.kill()
            self.mock_proc.wait()
        self.mock_proc = None
        self._wait(lambda: not self._owned(), 10, "the NetworkManager mock to leave the bus")

    # ---- low level ----
    def _obj(self, path):
        return self.bus.get_object(NM_NAME, path)

    def _iface(self, path, iface):
        return dbus.Interface(self._obj(path), iface)

    def _set(self, path, iface, name, value):
        self._iface(path, dbus.PROPERTIES_IFACE).Set(iface, name, value)

    def _next(self):
        self.serial += 1
        return self.serial

    def _add_config(self, family, options):
        iface = D4_IFACE if family == 4 else D6_IFACE
        path = f"{NM_PATH}/DHCP{family}Config/{self._next()}"
        self.mock.AddObject(path, iface, {"Options": _opts(options)}, [])
        # libnm (>= 1.22) only knows objects from GetManagedObjects or InterfacesAdded
        self._iface("/org/freedesktop", MOCK_IFACE).EmitSignal(
            OM_IFACE, "InterfacesAdded", "oa{sa{sv}}", [dbus.ObjectPath(path), {iface: {"Options": _opts(options)}}])
        return path

    def _remove_object(self, path, iface):
        self._iface("/org/freedesktop", MOCK_IFACE).EmitSignal(
            OM_IFACE, "InterfacesRemoved", "oas", [dbus.ObjectPath(path), [iface]])
        self.mock.RemoveObject(path)

    def _realize(self, iface, activate=True):
        """Puts one device of the model on the running mock."""
        d = self.devices[iface]
        name = f"dev{self._next()}"
        dev = self.mock.AddEthernetDevice(name, iface, dbus.Int32(ACTIVATED if d["up"] else UNAVAILABLE))
        devobj = self._iface(dev, MOCK_IFACE)
        devobj.AddProperty(DEVICE_IFACE, "Dhcp4Config", dbus.ObjectPath("/"))
        devobj.AddProperty(DEVICE_IFACE, "Dhcp6Config", dbus.ObjectPath("/"))
        self._set(dev, DEVICE_IFACE, "IpInterface", iface)
        p = self.paths[iface] = {"dev": dev, "conn": None, "ac": None, "dhcp4": None, "dhcp6": None}
        conn = self._iface("/org/freedesktop/NetworkManager/Settings", "org.freedesktop.NetworkManager.Settings")
        ctype = "vpn" if d["vpn"] else "802-3-ethernet"
        p["conn"] = conn.AddConnection(dbus.Dictionary({
            "connection": dbus.Dictionary({"id": f"mock-{iface}", "uuid": f"6d6f636b-0000-4000-8000-{self._next():012x}",
                                           "type": ctype}, signature="sv")}, signature="sa{sv}"))
        if d["up"] and activate:
            self._activate(iface)

    def _activate(self, iface):
        d, p = self.devices[iface], self.paths[iface]
        p["ac"] = self.mock.AddActiveConnection([p["dev"]], p["conn"], "/", f"ac{self._next()}",
                                                dbus.UInt32(AC_ACTIVATED))
        if d["vpn"]:
            self._set(p["ac"], AC_IFACE, "Vpn", True)
        for fam in (4, 6):
            if d[f"dhcp{fam}"] is not None:
                p[f"dhcp{fam}"] = self._add_config(fam, d[f"dhcp{fam}"])
                self._set(p["dev"], DEVICE_IFACE, f"Dhcp{fam}Config", dbus.ObjectPath(p[f"dhcp{fam}"]))

    def _device_state(self, iface, state, reason):
        dev = self.paths[iface]["dev"]
        self._set(dev, DEVICE_IFACE, "StateReason", dbus.Struct((dbus.UInt32(state), dbus.UInt32(reason)),
                                                                signature="uu"))
        self._set(dev, DEVICE_IFACE, "State", dbus.UInt32(state))

    def _deactivate(self, iface, new_activation=False):
        """The device leaves its active connection: for good (link down), or for a new
        activation (new_activation), in the order NetworkManager 1.42 shows it (measured
        with nmlab): DEACTIVATING (NEW_ACTIVATION), Dhcp4Config/Dhcp6Config "/",
        ActiveConnection "/", DISCONNECTED (NEW_ACTIVATION)."""
        p = self.paths[iface]
        if new_activation:
            self._device_state(iface, DEACTIVATING, NEW_ACTIVATION)
        for fam in (4, 6):
            self._set(p["dev"], DEVICE_IFACE, f"Dhcp{fam}Config", dbus.ObjectPath("/"))
        if self.primary_iface == iface:
            self._set_primary_path("/", "")
        for fam in (4, 6):
            path = p[f"dhcp{fam}"]
            if path:
                # as NM does: the old object loses its options before it goes
                self._set(path, D4_IFACE if fam == 4 else D6_IFACE, "Options", _opts({}))
                self._remove_object(path, D4_IFACE if fam == 4 else D6_IFACE)
                p[f"dhcp{fam}"] = None
        if p["ac"] and new_activation:
            # not the template's RemoveActiveConnection: its DISCONNECTED has no reason
            self._set(p["dev"], DEVICE_IFACE, "ActiveConnection", dbus.ObjectPath("/"))
            self._device_state(iface, DISCONNECTED, NEW_ACTIVATION)
            acs = self._iface(NM_PATH, dbus.PROPERTIES_IFACE).Get(NM_IFACE, "ActiveConnections")
            self._set(NM_PATH, NM_IFACE, "ActiveConnections",
                      dbus.Array([a for a in acs if a != p["ac"]], signature="o"))
            self._remove_object(p["ac"], AC_IFACE)
            p["ac"] = None
        elif p["ac"]:
            self.mock.RemoveActiveConnection(p["dev"], p["ac"])
            p["ac"] = None

    def _set_primary_path(self, path, ctype):
        self._set(NM_PATH, NM_IFACE, "PrimaryConnection", dbus.ObjectPath(path))
        self._set(NM_PATH, NM_IFACE, "PrimaryConnectionType", ctype)

    # ---- the model's changes ----
    def add_device(self, iface, dhcp4=None, dhcp6=None, up=True, primary=None, vpn=False):
        """A device with an active connection and its DHCP leases (None: no DHCP of that
        family). primary: make it the primary connection (default: if it is the first)."""
        self.devices[iface] = {"dhcp4": dict(dhcp4) if dhcp4 is not None else None,
                               "dhcp6": dict(dhcp6) if dhcp6 is not None else None, "up": up, "vpn": vpn}
        self.order.append(iface)
        self._realize(iface)
        if primary or (primary is None and self.primary_iface is None and up):
            self.set_primary(iface)

    def set_primary(self, iface):
        """The primary connection (the one with the default route) changes."""
        self.primary_iface = iface
        p = self.paths.get(iface) if iface else None
        if p is None or p["ac"] is None:
            self._set_primary_path("/", "")
            return
        self._set_primary_path(p["ac"], "vpn" if self.devices[iface]["vpn"] else "802-3-ethernet")

    def set_dhcp(self, iface, family, options):
        """A new lease of that family, as after a renewal that changed it: the SAME config
        object gets PropertiesChanged with all of its options."""
        d, p = self.devices[iface], self.paths[iface]
        d[f"dhcp{family}"] = dict(options)
        if p["ac"] is None:
            return
        if p[f"dhcp{family}"] is None:
            p[f"dhcp{family}"] = self._add_config(family, options)
            self._set(p["dev"], DEVICE_IFACE, f"Dhcp{family}Config", dbus.ObjectPath(p[f"dhcp{family}"]))
        else:
            self._set(p[f"dhcp{family}"], D4_IFACE if family == 4 else D6_IFACE, "Options", _opts(options))

    def renew(self, iface, family=4):
        """A renewal that changed nothing but the lease times: every option is sent again."""
        opts = dict(self.devices[iface][f"dhcp{family}"] or {})
        if family == 4:
            opts["expiry"] = str(int(time.time()) + 120)
        else:
            opts["life_starts"] = str(int(time.time()))
        self.set_dhcp(iface, family, opts)

    def reconnect(self, iface, fill=True):
        """`nmcli connection up`: the device's config objects go to "/", the old ones are
        emptied and dropped, the primary connection goes away, then a new active connection
        with new config objects whose Options are empty; fill() (now, if fill) puts the
        lease in."""
        self.reconnect_begin(iface)
        return self.reconnect_end(iface, fill)

    def reconnect_begin(self, iface):
        """The first half of reconnect(): the old active connection and config objects are
        gone, the device is DISCONNECTED for a new activation."""
        self._deactivate(iface, new_activation=True)

    def reconnect_end(self, iface, fill=True):
        """The second half of reconnect(): the new active connection, new config objects
        with empty Options, the primary connection back; fill() now if fill."""
        p, d = self.paths[iface], self.devices[iface]
        saved = {fam: d[f"dhcp{fam}"] for fam in (4, 6)}
        d["dhcp4"] = {} if saved[4] is not None else None
        d["dhcp6"] = {} if saved[6] is not None else None
        self._activate(iface)
        d["dhcp4"], d["dhcp6"] = saved[4], saved[6]
        if self.primary_iface == iface:
            self.set_primary(iface)
        if fill:
            self.fill(iface)
        return p

    def fill(self, iface):
        """The leases arrive on the new (empty) config objects."""
        for fam in (4, 6):
            if self.devices[iface][f"dhcp{fam}"] is not None:
                self.set_dhcp(iface, fam, self.devices[iface][f"dhcp{fam}"])

    def reapply_ipv6(self, iface):
        """NM 1.42, ipv6.method=auto, an ipv6 property reapplied: DHCPv6 stops for good and
        the DHCP6Config stays as it was. Nothing is emitted; the lease just grows old."""
        return self.paths[iface]["dhcp6"]

    def link_down(self, iface):
        """The link goes away: the device deactivates (no config objects, no active
        connection; the primary connection goes if it was this one)."""
        self.devices[iface]["up"] = False
        self._deactivate(iface)
        self._iface(NM_PATH, MOCK_IFACE).SetDeviceDisconnected(self.paths[iface]["dev"])

    def link_up(self, iface):
        self.devices[iface]["up"] = True
        self._activate(iface)
        if self.primary_iface == iface:
            self.set_primary(iface)

    def vpn_up(self, iface="tun0", dhcp4=None):
        """A full-tunnel VPN comes up: it becomes the primary connection."""
        self.previous_primary = self.primary_iface
        if iface in self.devices:
            self.link_up(iface)
        else:
            self.add_device(iface, dhcp4=dhcp4, vpn=True, primary=False)
        self.set_primary(iface)

    def vpn_down(self, iface="tun0"):
        """The VPN goes away: the primary connection goes back to what it was."""
        self.link_down(iface)
        self.set_primary(getattr(self, "previous_primary", None))

    def unexport_devices(self):
        """What NetworkManager does while it shuts down, a second before it leaves the bus
        (measured with nmlab): every device object goes (InterfacesRemoved, Devices []),
        the interfaces stay configured. Call stop() next."""
        self._set(NM_PATH, NM_IFACE, "Devices", dbus.Array([], signature="o"))
        for iface in self.order:
            dev = self.paths[iface]["dev"]
            self._iface("/org/freedesktop", MOCK_IFACE).EmitSignal(
                OM_IFACE, "InterfacesRemoved", "oas", [dbus.ObjectPath(dev), [DEVICE_IFACE]])

    def barrier(self):
        """Changes the manager's Connectivity: a client that sees it has seen every change
        made before. Returns the new value."""
        # from the value the mock has (a restarted one starts at the template's)
        now = self._iface(NM_PATH, dbus.PROPERTIES_IFACE).Get(NM_IFACE, "Connectivity")
        self.connectivity = 3 if now == 4 else 4
        self._set(NM_PATH, NM_IFACE, "Connectivity", dbus.UInt32(self.connectivity))
        return self.connectivity

    def config_path(self, iface, family):
        return self.paths[iface][f"dhcp{family}"]


def serve(argv):
    """nmmock.py serve --bus-address ADDR --ready-file PATH [--devices N]: NetworkManager on
    an existing bus (bench/bench-daemon.c --nm mock) until SIGTERM: N devices (eth0...),
    each activated with a DHCPv4 and a DHCPv6 lease that announce no PCP server, as on most
    networks. PATH is written once every device is on the bus."""
    import argparse
    ap = argparse.ArgumentParser(prog="nmmock.py serve")
    ap.add_argument("--bus-address", required=True)
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--devices", type=int, default=1)
    a = ap.parse_args(argv)
    # SIGTERM ends the with-block: the mock leaves the bus, its process is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with NMMock(bus_address=a.bus_address) as m:
        for i in range(a.devices):
            m.add_device(f"eth{i}", dhcp4={"ip_address": f"192.168.{77 + i}.2", "routers": f"192.168.{77 + i}.1",
                                           "expiry": str(int(time.time()) + 86400)},
                         dhcp6={"ip6_address": f"fd77:77:{77 + i}::2"}, primary=(i == 0))
        m.barrier()
        tmp = a.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(tmp, a.ready_file)
        signal.pause()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    # a quick look by hand: nmmock.py  (prints the bus address, Ctrl-C to stop)
    with NMMock() as m:
        m.add_device("eth0", dhcp4={"pcp_server": "4 192 168 77 5"}, dhcp6={"dhcp6_pcp_server": "fd77:77:77::5"})
        print(f"DBUS_SYSTEM_BUS_ADDRESS={m.bus_address}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    sys.exit(0)
