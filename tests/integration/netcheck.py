#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""netcheck.py - one listener / one sender, for "does traffic get through" checks.

  netcheck.py listen tcp|udp PORT [--timeout S] [--family 4|6|any]
      bind PORT (dual-stack by default), print "got TOKEN from ADDR" for the first
      payload, or "timeout"; exit 0 only if something arrived
  netcheck.py send tcp|udp ADDR PORT TOKEN
      TCP: connect and send TOKEN; UDP: send TOKEN three times (no loss on purpose)
  netcheck.py wait-bound tcp|udp PORT [--timeout S]
      wait (S s max, default 2) until something listens on PORT; exit 1 if nothing did
"""
import argparse
import socket
import sys
import time


def make_listener(proto, port, family):
    typ = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    if family == "4":
        s = socket.socket(socket.AF_INET, typ)
        addr = ("0.0.0.0", port)
    else:
        s = socket.socket(socket.AF_INET6, typ)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if family == "6" else 0)
        addr = ("::", port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    if proto == "tcp":
        s.listen(8)
    return s


def cmd_listen(a):
    s = make_listener(a.proto, a.port, a.family)
    s.settimeout(a.timeout)
    try:
        if a.proto == "tcp":
            c, peer = s.accept()
            c.settimeout(a.timeout)
            data = c.recv(256)
        else:
            data, peer = s.recvfrom(256)
    except (socket.timeout, OSError) as e:
        print(f"timeout ({e})", flush=True)
        return 1
    print(f"got {data.decode(errors='replace')} from {peer[0]}", flush=True)
    return 0


def cmd_send(a):
    fam = socket.AF_INET6 if ":" in a.addr else socket.AF_INET
    if a.proto == "tcp":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect((a.addr, a.port))
            s.sendall(a.token.encode())
            time.sleep(0.1)
        except OSError as e:
            print(f"send: {e}", flush=True)
            return 1
        return 0
    s = socket.socket(fam, socket.SOCK_DGRAM)
    for _ in range(3):
        try:
            s.sendto(a.token.encode(), (a.addr, a.port))
        except OSError as e:
            print(f"send: {e}", flush=True)
        time.sleep(0.05)
    return 0


def bound(proto, port):
    files = ["/proc/net/tcp", "/proc/net/tcp6"] if proto == "tcp" else ["/proc/net/udp", "/proc/net/udp6"]
    for f in files:
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if int(parts[1].rsplit(":", 1)[1], 16) == port and (proto == "udp" or parts[3] == "0A"):
                        return True
        except OSError:
            pass
    return False


def cmd_wait_bound(a):
    end = time.monotonic() + a.timeout
    while time.monotonic() < end:
        if bound(a.proto, a.port):
            return 0
        time.sleep(0.02)
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("listen")
    lp.add_argument("proto", choices=["tcp", "udp"])
    lp.add_argument("port", type=int)
    lp.add_argument("--timeout", type=float, default=5)
    lp.add_argument("--family", choices=["4", "6", "any"], default="any")
    sp = sub.add_parser("send")
    sp.add_argument("proto", choices=["tcp", "udp"])
    sp.add_argument("addr")
    sp.add_argument("port", type=int)
    sp.add_argument("token")
    wp = sub.add_parser("wait-bound")
    wp.add_argument("proto", choices=["tcp", "udp"])
    wp.add_argument("port", type=int)
    wp.add_argument("--timeout", type=float, default=2)
    a = p.parse_args()
    return {"listen": cmd_listen, "send": cmd_send, "wait-bound": cmd_wait_bound}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
