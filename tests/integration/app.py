#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""app.py - a stand-in application for the integration tests.

Runs in the client namespace, holds its own connection to the (private) system bus and
its own listener sockets, and talks to the test on stdin/stdout, one JSON object per
line. Commands (stdin, one per line, words separated by spaces):
  add KEY PROTO PORT [SUGGESTED [FAMILY]]   bind a listener on PORT (once) and call
                                            Manager.AddMapping(PROTO, PORT, SUGGESTED,
                                            {family}) -> {"ev":"added"|"error"}
  release KEY                               Mapping.Release() -> {"ev":"released"|"error"}
  get KEY                                   Mapping properties -> {"ev":"props-all"}
  manager                                   Manager properties -> {"ev":"manager"}
Events it prints by itself: {"ev":"ready"}, {"ev":"props"} for every PropertiesChanged
of one of its mappings (values included), {"ev":"removed"} for MappingRemoved, and
{"ev":"conn"} for every connection/datagram a listener receives (with its payload).
Every event has "t" (CLOCK_MONOTONIC seconds).
"""
import json
import os
import socket
import sys
import time

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

BUS = "org.freedesktop.PCP1"
MGR_PATH = "/org/freedesktop/PCP1"
MGR_IFACE = "org.freedesktop.PCP1.Manager"
MAP_IFACE = "org.freedesktop.PCP1.Mapping"


def plain(v):
    if isinstance(v, (dbus.Boolean,)):
        return bool(v)
    if isinstance(v, (dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32,
                      dbus.Int64, dbus.UInt64)):
        return int(v)
    if isinstance(v, dbus.Double):
        return float(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(v)
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, dbus.Array, dbus.Struct)):
        return [plain(x) for x in v]
    return v


def emit(**kw):
    kw["t"] = round(time.monotonic(), 4)
    sys.stdout.write(json.dumps(kw, sort_keys=True) + "\n")
    sys.stdout.flush()


class App:
    def __init__(self):
        dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
        self.bus = dbus.SystemBus()
        self.mappings = {}       # key -> object path
        self.keys = {}           # object path -> key
        self.listeners = {}      # (proto, port, family) -> socket
        self.bus.add_signal_receiver(self.on_props, "PropertiesChanged",
                                     "org.freedesktop.DBus.Properties", BUS,
                                     path_keyword="path")
        self.bus.add_signal_receiver(self.on_removed, "MappingRemoved", MGR_IFACE, BUS)
        GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, self.on_stdin)
        self.buf = b""

    # ---- listeners
    def listen(self, proto, port, family):
        k = (proto, port, family)
        if k in self.listeners:
            return
        typ = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        if family == "ipv4":
            s = socket.socket(socket.AF_INET, typ)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
        else:
            s = socket.socket(socket.AF_INET6, typ)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::", port))
        if proto == "tcp":
            s.listen(16)
        s.setblocking(False)
        self.listeners[k] = s
        GLib.io_add_watch(s.fileno(), GLib.IO_IN, self.on_listener, k)

    def on_listener(self, fd, cond, k):
        s = self.listeners[k]
        try:
            if k[0] == "tcp":
                c, peer = s.accept()
                c.settimeout(2)
                try:
                    data = c.recv(256)
                except OSError:
                    data = b""
                c.close()
            else:
                data, peer = s.recvfrom(256)
        except BlockingIOError:
            return True
        emit(ev="conn", proto=k[0], port=k[1], family=k[2], peer=peer[0],
             data=data.decode(errors="replace"))
        return True

    # ---- bus
    def on_props(self, iface, changed, invalidated, path=None):
        if iface != MAP_IFACE or path not in self.keys:
            return
        emit(ev="props", key=self.keys[path], path=str(path), changed=plain(changed),
             invalidated=plain(invalidated))

    def on_removed(self, path, reason):
        if path in self.keys:
            emit(ev="removed", key=self.keys[path], path=str(path), reason=str(reason))

    def props(self, path, iface):
        obj = self.bus.get_object(BUS, path)
        return plain(obj.GetAll(iface, dbus_interface="org.freedesktop.DBus.Properties"))

    def cmd(self, words):
        c = words[0]
        if c == "add":
            key, proto, port = words[1], words[2], int(words[3])
            sugg = int(words[4]) if len(words) > 4 else 0
            family = words[5] if len(words) > 5 else "ipv4"
            self.listen(proto, port, family)
            opts = dbus.Dictionary({"family": dbus.String(family)}, signature="sv")
            # more options as JSON: booleans, strings, filters [["addr/len", port], ...]
            for k, v in (json.loads(words[6]) if len(words) > 6 else {}).items():
                if isinstance(v, bool):
                    opts[k] = dbus.Boolean(v)
                elif isinstance(v, list):
                    opts[k] = dbus.Array([dbus.Struct((dbus.String(a), dbus.UInt16(p))) for a, p in v],
                                         signature="(sq)")
                else:
                    opts[k] = dbus.String(v)
            mgr = dbus.Interface(self.bus.get_object(BUS, MGR_PATH), MGR_IFACE)

            def ok(path):
                self.mappings[key] = path
                self.keys[path] = key
                emit(ev="added", key=key, path=str(path))
                try:
                    emit(ev="props-all", key=key, path=str(path), props=self.props(path, MAP_IFACE))
                except dbus.DBusException as e:
                    emit(ev="error", key=key, op="get", name=e.get_dbus_name(), msg=e.get_dbus_message())

            def err(e):
                emit(ev="error", key=key, op="add", name=e.get_dbus_name(), msg=e.get_dbus_message())
            mgr.AddMapping(proto, dbus.UInt16(port), dbus.UInt16(sugg), opts,
                           reply_handler=ok, error_handler=err, timeout=30)
        elif c == "release":
            key = words[1]
            obj = self.bus.get_object(BUS, self.mappings[key])
            try:
                obj.Release(dbus_interface=MAP_IFACE)
                emit(ev="released", key=key)
            except dbus.DBusException as e:
                emit(ev="error", key=key, op="release", name=e.get_dbus_name(), msg=e.get_dbus_message())
        elif c == "get":
            key = words[1]
            try:
                emit(ev="props-all", key=key, path=str(self.mappings[key]),
                     props=self.props(self.mappings[key], MAP_IFACE))
            except dbus.DBusException as e:
                emit(ev="error", key=key, op="get", name=e.get_dbus_name(), msg=e.get_dbus_message())
        elif c == "manager":
            try:
                emit(ev="manager", props=self.props(MGR_PATH, MGR_IFACE))
            except dbus.DBusException as e:
                emit(ev="error", op="manager", name=e.get_dbus_name(), msg=e.get_dbus_message())
        else:
            emit(ev="error", op=c, name="usage", msg=f"unknown command {c}")

    def on_stdin(self, fd, cond):
        data = os.read(fd, 65536)
        if not data:
            self.loop.quit()
            return False
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            words = line.decode().split()
            if words:
                try:
                    self.cmd(words)
                except Exception as e:  # report, keep running: the test decides
                    emit(ev="error", op=words[0], name=type(e).__name__, msg=str(e))
        return True

    def run(self):
        self.loop = GLib.MainLoop()
        emit(ev="ready", unique_name=str(self.bus.get_unique_name()), pid=os.getpid())
        self.loop.run()


if __name__ == "__main__":
    App().run()
