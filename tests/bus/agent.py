#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A D-Bus client process for pcpd's bus tests, driven by JSON lines on stdin.

  agent.py BUS_ADDRESS [UID]

Runs as UID when given (setgid/setuid before connecting). Each request line is a JSON
object, each answer one JSON line on stdout:
  {"op": "connect", "n": N}              open N more bus connections -> {"ok": [unique names]}
  {"op": "call", "conn": I, "method": M, "sig": S, "args": TEXT, "path": P, "iface": IF}
        TEXT is GVariant text of type S -> {"ok": <unpacked reply>} | {"error": NAME, "msg": M}
  {"op": "calls", "conn": I, "method": M, "sig": S, "args": [TEXT...]}  (pipelined, async)
        -> {"ok": [reply or {"error":...} ...]}
  {"op": "bind", "proto": "tcp"|"udp", "port": P, "family": 4|6}  -> {"ok": port}
  {"op": "add_for_socket", "conn": I, "sock": PORT, "options": TEXT}  -> like "call"
  {"op": "pid"} -> {"ok": pid}
  {"op": "close", "conn": I}  -> {"ok": true}
"""

import json
import os
import socket
import sys

uid = int(sys.argv[2]) if len(sys.argv) > 2 else None
if uid is not None and uid != os.getuid():
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)

from gi.repository import Gio, GLib  # noqa: E402

ADDRESS = sys.argv[1]
BUS_NAME = 'org.freedesktop.PCP1'
PATH = '/org/freedesktop/PCP1'
IFACE = 'org.freedesktop.PCP1.Manager'

conns = []
socks = {}


def connect():
    c = Gio.DBusConnection.new_for_address_sync(
        ADDRESS,
        Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
        None, None)
    conns.append(c)
    return c.get_unique_name()


def error_of(e):
    name = Gio.DBusError.get_remote_error(e) if Gio.DBusError.is_remote_error(e) else str(e.domain)
    msg = e.message
    if Gio.DBusError.is_remote_error(e):
        msg = Gio.DBusError.strip_remote_error(e) or e.message
        msg = e.message
    return {'error': name, 'msg': msg}


def do_call(req, fd=None):
    c = conns[req.get('conn', 0)]
    sig = req.get('sig', '')
    params = GLib.Variant.parse(GLib.VariantType('(' + sig + ')'), req['args'], None, None) if sig else None
    try:
        if fd is not None:
            fdl = Gio.UnixFDList.new()
            fdl.append(fd)
            reply, _ = c.call_with_unix_fd_list_sync(
                BUS_NAME, req.get('path', PATH), req.get('iface', IFACE), req['method'], params, None,
                Gio.DBusCallFlags.NONE, 30000, fdl, None)
        else:
            reply = c.call_sync(BUS_NAME, req.get('path', PATH), req.get('iface', IFACE), req['method'],
                                params, None, Gio.DBusCallFlags.NONE, 30000, None)
        return {'ok': reply.unpack()}
    except GLib.Error as e:
        return error_of(e)


def do_calls(req):
    c = conns[req.get('conn', 0)]
    sig = req['sig']
    results = [None] * len(req['args'])
    left = [len(req['args'])]
    loop = GLib.MainLoop()

    def done(conn, res, i):
        try:
            results[i] = {'ok': conn.call_finish(res).unpack()}
        except GLib.Error as e:
            results[i] = error_of(e)
        left[0] -= 1
        if left[0] == 0:
            loop.quit()

    for i, text in enumerate(req['args']):
        params = GLib.Variant.parse(GLib.VariantType('(' + sig + ')'), text, None, None)
        c.call(BUS_NAME, req.get('path', PATH), req.get('iface', IFACE), req['method'], params, None,
               Gio.DBusCallFlags.NONE, 60000, None, done, i)
    if left[0]:
        loop.run()
    return {'ok': results}


def main():
    connect()
    print(json.dumps({'ok': 'ready', 'name': conns[0].get_unique_name(), 'pid': os.getpid()}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        op = req['op']
        if op == 'connect':
            ans = {'ok': [connect() for _ in range(req.get('n', 1))]}
        elif op == 'call':
            ans = do_call(req)
        elif op == 'calls':
            ans = do_calls(req)
        elif op == 'bind':
            fam = socket.AF_INET6 if req.get('family') == 6 else socket.AF_INET
            typ = socket.SOCK_DGRAM if req['proto'] == 'udp' else socket.SOCK_STREAM
            s = socket.socket(fam, typ)
            s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', req.get('port', 0)))
            if typ == socket.SOCK_STREAM:
                s.listen()
            port = s.getsockname()[1]
            socks[port] = s
            ans = {'ok': port}
        elif op == 'add_for_socket':
            s = socks[req['sock']]
            ans = do_call({'conn': req.get('conn', 0), 'method': 'AddMappingForSocket', 'sig': 'ha{sv}',
                           'args': '(handle 0, %s)' % req.get('options', '@a{sv} {}')}, fd=s.fileno())
        elif op == 'pid':
            ans = {'ok': os.getpid()}
        elif op == 'close':
            conns[req['conn']].close_sync(None)
            ans = {'ok': True}
        else:
            ans = {'error': 'agent', 'msg': 'unknown op ' + op}
        print(json.dumps(ans, default=str), flush=True)


if __name__ == '__main__':
    main()
