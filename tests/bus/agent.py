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
        optional: "address" (default the wildcard), "listen" (TCP; default true),
        "reuse" (SO_REUSEADDR), "v6only" (IPV6_V6ONLY), "name" (key for add_for_socket;
        default the port)
  {"op": "bind_in_netns", "proto": P, "port": P, "name": N}  a socket made in a new user and
        network namespace (unshare --user --net --map-root-user), bound to the wildcard
        address (and listening for TCP) there, received over SCM_RIGHTS -> {"ok": port}
  {"op": "add_for_socket", "conn": I, "sock": PORT|NAME, "options": TEXT}  -> like "call"
  {"op": "fire", "tag": T, ...as "calls"}  the calls sent, nothing awaited -> {"ok": n}
  {"op": "collect", "tag": T, "n": N, "timeout": S}  waits (at most S seconds) until N
        answers of the calls fired as T have come -> {"ok": [answers so far, in arrival order]}
  {"op": "pid"} -> {"ok": pid}
  {"op": "close", "conn": I}  -> {"ok": true}
"call", "calls" and "fire" take "interactive": true for ALLOW_INTERACTIVE_AUTHORIZATION and
"timeout" (seconds) for the call time-out.
"""

import array
import json
import os
import socket
import subprocess
import sys
import time

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


def call_flags(req):
    if req.get('interactive'):
        return Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION
    return Gio.DBusCallFlags.NONE


def do_call(req, fd=None):
    c = conns[req.get('conn', 0)]
    sig = req.get('sig', '')
    params = GLib.Variant.parse(GLib.VariantType('(' + sig + ')'), req['args'], None, None) if sig else None
    timeout = int(req.get('timeout', 30) * 1000)
    try:
        if fd is not None:
            fdl = Gio.UnixFDList.new()
            fdl.append(fd)
            reply, _ = c.call_with_unix_fd_list_sync(
                BUS_NAME, req.get('path', PATH), req.get('iface', IFACE), req['method'], params, None,
                call_flags(req), timeout, fdl, None)
        else:
            reply = c.call_sync(BUS_NAME, req.get('path', PATH), req.get('iface', IFACE), req['method'],
                                params, None, call_flags(req), timeout, None)
        return {'ok': reply.unpack()}
    except GLib.Error as e:
        return error_of(e)


def send_calls(req, done):
    """Sends req's calls asynchronously; done(i, answer) for each answer."""
    c = conns[req.get('conn', 0)]
    sig = req['sig']

    def finish(conn, res, i):
        try:
            answer = {'ok': conn.call_finish(res).unpack()}
        except GLib.Error as e:
            answer = error_of(e)
        done(i, answer)

    for i, text in enumerate(req['args']):
        params = GLib.Variant.parse(GLib.VariantType('(' + sig + ')'), text, None, None)
        c.call(BUS_NAME, req.get('path', PATH), req.get('iface', IFACE), req['method'], params, None,
               call_flags(req), int(req.get('timeout', 60) * 1000), None, finish, i)


def do_calls(req):
    results = [None] * len(req['args'])
    left = [len(req['args'])]
    loop = GLib.MainLoop()

    def done(i, answer):
        results[i] = answer
        left[0] -= 1
        if left[0] == 0:
            loop.quit()

    send_calls(req, done)
    if left[0]:
        loop.run()
    return {'ok': results}


fired = {}


def do_fire(req):
    answers = fired.setdefault(req['tag'], [])
    send_calls(req, lambda i, answer: answers.append(answer))
    return {'ok': len(req['args'])}


def do_collect(req):
    answers = fired.setdefault(req['tag'], [])
    ctx = GLib.MainContext.default()
    end = time.monotonic() + req.get('timeout', 30)
    while len(answers) < req['n'] and time.monotonic() < end:
        ctx.iteration(False) or time.sleep(0.01)
    return {'ok': list(answers)}


def bind(req):
    fam = socket.AF_INET6 if req.get('family') == 6 else socket.AF_INET
    typ = socket.SOCK_DGRAM if req['proto'] == 'udp' else socket.SOCK_STREAM
    s = socket.socket(fam, typ)
    if req.get('reuse'):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6 and 'v6only' in req:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if req['v6only'] else 0)
    s.bind((req.get('address', '::' if fam == socket.AF_INET6 else '0.0.0.0'), req.get('port', 0)))
    if typ == socket.SOCK_STREAM and req.get('listen', True):
        s.listen()
    port = s.getsockname()[1]
    socks[req.get('name', port)] = s
    return {'ok': port}


# run in the new namespaces: bind, then hand the socket back over the fd given (SCM_RIGHTS)
NETNS_HELPER = """
import array, socket, sys
proto, port, back = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if proto == 'udp' else socket.SOCK_STREAM)
s.bind(('0.0.0.0', port))
if proto != 'udp':
    s.listen()
out = socket.socket(fileno=back)
out.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [s.fileno()]))])
"""


def bind_in_netns(req):
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        r = subprocess.run(['unshare', '--user', '--net', '--map-root-user', '--', sys.executable, '-c',
                            NETNS_HELPER, req['proto'], str(req['port']), str(theirs.fileno())],
                           pass_fds=(theirs.fileno(),), capture_output=True, text=True, timeout=30)
    finally:
        theirs.close()
    if r.returncode != 0:
        return {'error': 'agent', 'msg': 'unshare: ' + r.stderr.strip()}
    fds = array.array('i')
    msg, anc, _, _ = mine.recvmsg(1, socket.CMSG_LEN(fds.itemsize))
    mine.close()
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[:fds.itemsize])
    if not fds:
        return {'error': 'agent', 'msg': 'no socket came back from the namespace'}
    s = socket.socket(fileno=fds[0])
    socks[req.get('name', req['port'])] = s
    return {'ok': s.getsockname()[1]}


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
            try:
                ans = bind(req)
            except OSError as e:
                ans = {'error': 'OSError', 'msg': str(e)}
        elif op == 'bind_in_netns':
            ans = bind_in_netns(req)
        elif op == 'add_for_socket':
            s = socks[req['sock']]
            ans = do_call({'conn': req.get('conn', 0), 'method': 'AddMappingForSocket', 'sig': 'ha{sv}',
                           'args': '(handle 0, %s)' % req.get('options', '@a{sv} {}'),
                           'interactive': req.get('interactive', False)}, fd=s.fileno())
        elif op == 'fire':
            ans = do_fire(req)
        elif op == 'collect':
            ans = do_collect(req)
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
