#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run a command with its stderr connected to a stand-in for systemd-journald, and write
what it logs through the journal's native protocol as JSON lines.

  fake-journald.py OUT -- COMMAND [ARG...]

Needs root: it runs itself again in a private mount namespace (unshare --mount), mounts a
tmpfs on /run there, and listens on /run/systemd/journal/socket (native protocol,
datagrams) and /run/systemd/journal/stdout (the stream stderr is connected to, as
systemd does for a service with StandardError=journal). So the command sees exactly what
a service sees: g_log_writer_is_journald(2) is true, and g_log_writer_journald() sends
its fields to the socket. Nothing outside the namespace is touched.

OUT gets one JSON object per datagram ({"FIELD": "value", ...}); OUT.stream gets what
was written to stderr as bytes. The command dies with this process (PR_SET_PDEATHSIG);
SIGTERM is passed on. Exit status: the command's.
"""

import ctypes
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys

SOCKET = '/run/systemd/journal/socket'
STDOUT = '/run/systemd/journal/stdout'


def parse_native(data):
    """The journal native protocol: KEY=value\\n, or KEY\\n + 64-bit LE length + bytes + \\n."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b'\n', i)
        line = data[i:nl]
        if b'=' in line:
            k, v = line.split(b'=', 1)
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack_from('<Q', data, nl + 1)
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        fields[k.decode()] = v.decode('utf-8', 'replace')
    return fields


def pdeathsig():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def serve(out, cmd):
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'pcpd-test-run', '/run'], check=True)
    os.makedirs(os.path.dirname(SOCKET))
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(SOCKET)
    dgram.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    os.chmod(SOCKET, 0o666)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(STDOUT)
    listener.listen(1)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(STDOUT)
    stream, _ = listener.accept()

    child = subprocess.Popen(cmd, stderr=client.fileno(), preexec_fn=pdeathsig)
    client.close()
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))

    with open(out, 'a') as o, open(out + '.stream', 'ab') as so:
        watched = [dgram, stream]

        def drain(timeout):
            while True:
                r, _, _ = select.select(watched, [], [], timeout)
                if not r:
                    return
                timeout = 0
                if dgram in r:
                    data = dgram.recv(1 << 20)
                    o.write(json.dumps(parse_native(data)) + '\n')
                    o.flush()
                if stream in r:
                    data = stream.recv(65536)
                    if data:
                        so.write(data)
                        so.flush()
                    else:
                        watched.remove(stream)  # the command closed its stderr

        while child.poll() is None:
            try:
                drain(0.1)
            except InterruptedError:
                pass
        drain(0.2)
    return child.returncode


def main():
    args = sys.argv[1:]
    inside = args[:1] == ['--inside']
    if inside:
        args = args[1:]
    if len(args) < 3 or args[1] != '--':
        print(__doc__, file=sys.stderr)
        return 2
    out, cmd = os.path.abspath(args[0]), args[2:]
    if not inside:
        os.execvp('unshare', ['unshare', '--mount', '--propagation', 'private', sys.executable,
                              os.path.abspath(__file__), '--inside', out, '--'] + cmd)
    return serve(out, cmd)


if __name__ == '__main__':
    sys.exit(main())
