#!/usr/bin/python3
"""Captures real netlink dumps from the running kernel as seeds for tests/fuzz/fuzz-netlink:
the route dumps pcpd asks for (RTM_GETROUTE, IPv4 and IPv6) and the socket dumps of its
ownership proof (SOCK_DIAG_BY_FAMILY, TCP listening and UDP, both families).

Run as root: it makes its own network namespace (unshare -n) with dummy interfaces,
documentation addresses and default routes of every kind pcpd meets (several with
metrics, an IPv6 link-local router, other tables, unreachable and multipath ones), opens
sockets of its own there, and writes each dump's datagrams, exactly as recv() returned
them, into tests/fuzz/corpus/fuzz-netlink/ in the target's input format (see
fuzz-netlink.c). Nothing of the host's own network is read.

    unshare -n /usr/bin/python3 tests/fuzz/capture-netlink.py
"""
import os
import pathlib
import socket
import struct
import subprocess
import sys

NETLINK_ROUTE, NETLINK_SOCK_DIAG = 0, 4
RTM_GETROUTE, SOCK_DIAG_BY_FAMILY = 26, 20
NLM_F_REQUEST, NLM_F_DUMP = 1, 0x300
NLMSG_DONE, NLMSG_ERROR = 3, 2
TCP_LISTEN = 10

OUT = pathlib.Path(__file__).resolve().parent / 'corpus' / 'fuzz-netlink'


def ip(*args):
    subprocess.run(['ip', *args], check=True)


def dump(protocol, msg_type, payload, seq):
    """The reply's datagrams, as recv() gave them."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    s.bind((0, 0))
    s.send(struct.pack('=LHHLL', 16 + len(payload), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload)
    out = []
    while True:
        d = s.recv(32768)
        out.append(d)
        done = False
        off = 0
        while off + 16 <= len(d):
            ln, ty = struct.unpack_from('=LH', d, off)
            if ty in (NLMSG_DONE, NLMSG_ERROR):
                done = True
            off += (ln + 3) & ~3
        if done:
            break
    s.close()
    return out


def framed(datagrams):
    """The target's framing: each datagram behind its length (2 octets, big endian)."""
    return b''.join(struct.pack('>H', len(d)) + d for d in datagrams)


def routes(family, seq):
    # struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
    return dump(NETLINK_ROUTE, RTM_GETROUTE, struct.pack('=BBBBBBBBL', family, 0, 0, 0, 0, 0, 0, 0, 0), seq)


def sockets(family, protocol, states, port, seq):
    # struct inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid
    sockid = struct.pack('>HH', port, 0) + bytes(32) + struct.pack('=L', 0) + bytes(8)
    return dump(NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, struct.pack('=BBBBL', family, protocol, 0, 0, states) + sockid,
                seq)


def query(tcp, listening, v6, port, uid, internal):
    """The target's query header (see fuzz-netlink.c)."""
    flags = (1 if tcp else 0) | (2 if listening else 0) | (4 if v6 else 0)
    addrs = b''.join(socket.inet_pton(socket.AF_INET6, a) for a in internal)
    return bytes([1, flags]) + struct.pack('>HLB', port, uid, len(internal)) + addrs


def main():
    if os.getuid() != 0:
        sys.exit('run as root, in a network namespace of its own: unshare -n ' + sys.argv[0])
    with open('/proc/self/net/dev') as f:
        if any(line.split(':')[0].strip() not in ('lo', 'Inter-|', 'face |bytes') for line in f if ':' in line):
            sys.exit('this namespace has interfaces of its own: run it under unshare -n')

    ip('link', 'set', 'lo', 'up')
    for name, v4, v6 in (('wan0', '192.0.2.10/24', '2001:db8:1::10/64'), ('wan1', '198.51.100.10/24', '2001:db8:2::10/64')):
        ip('link', 'add', name, 'type', 'bridge')  # no dummy or veth in every kernel
        ip('link', 'set', name, 'up')
        ip('addr', 'add', v4, 'dev', name)
        ip('-6', 'addr', 'add', v6, 'dev', name, 'nodad')
    # default routes: two with metrics, one in another table, one unreachable, a multipath
    # one (no RTA_GATEWAY: its gateways are nested), IPv6 via a link-local router
    ip('route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'wan0', 'metric', '100')
    ip('route', 'add', 'default', 'via', '198.51.100.1', 'dev', 'wan1', 'metric', '50')
    ip('route', 'add', 'default', 'via', '192.0.2.2', 'dev', 'wan0', 'table', '100')
    ip('route', 'add', 'unreachable', 'default', 'metric', '4000')
    ip('route', 'add', '203.0.113.0/24', 'via', '192.0.2.3', 'dev', 'wan0')
    ip('route', 'add', 'default', 'metric', '300', 'nexthop', 'via', '192.0.2.4', 'dev', 'wan0',
       'nexthop', 'via', '198.51.100.4', 'dev', 'wan1')
    ip('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'wan0', 'metric', '1024')
    ip('-6', 'route', 'add', 'default', 'via', '2001:db8:2::1', 'dev', 'wan1', 'metric', '10')
    ip('-6', 'route', 'add', '2001:db8:99::/48', 'via', '2001:db8:2::2', 'dev', 'wan1')

    OUT.mkdir(parents=True, exist_ok=True)
    # the routes: mode 0, at most 8 routers kept
    (OUT / 'routes-ipv4').write_bytes(bytes([0, 8]) + framed(routes(socket.AF_INET, 1)))
    (OUT / 'routes-ipv6').write_bytes(bytes([0, 8]) + framed(routes(socket.AF_INET6, 2)))
    (OUT / 'routes-both-max2').write_bytes(bytes([0, 2]) + framed(routes(socket.AF_INET, 1) + routes(socket.AF_INET6, 2)))

    # sockets of every kind on port 8080 (TCP) and 5353 (UDP)
    keep = []

    def sock(family, kind, addr, port, v6only=None, listen=False):
        s = socket.socket(family, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6only is not None:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        s.bind((addr, port))
        if listen:
            s.listen()
        keep.append(s)
        return s

    sock(socket.AF_INET, socket.SOCK_STREAM, '192.0.2.10', 8080, listen=True)
    sock(socket.AF_INET6, socket.SOCK_STREAM, '::', 8080, v6only=True, listen=True)
    sock(socket.AF_INET, socket.SOCK_STREAM, '127.0.0.1', 8081, listen=True)
    sock(socket.AF_INET6, socket.SOCK_STREAM, '::', 8082, v6only=False, listen=True)
    sock(socket.AF_INET6, socket.SOCK_STREAM, '2001:db8:1::10', 8083, listen=True)
    # a connection to one of them: not listening
    c = socket.create_connection(('192.0.2.10', 8080))
    keep.append(c)
    sock(socket.AF_INET, socket.SOCK_DGRAM, '0.0.0.0', 5353)
    sock(socket.AF_INET6, socket.SOCK_DGRAM, '::', 5354, v6only=False)
    sock(socket.AF_INET6, socket.SOCK_DGRAM, '2001:db8:2::10', 5353, v6only=True)
    sock(socket.AF_INET, socket.SOCK_DGRAM, '198.51.100.10', 5353)

    uid = os.getuid()
    wan4 = ['::ffff:192.0.2.10']
    wan6 = ['2001:db8:1::10', '2001:db8:2::10']
    tcp_l = 1 << TCP_LISTEN
    for name, (fam, proto, states, port, q) in {
        'diag-tcp-listen-8080-v4': (socket.AF_INET, socket.IPPROTO_TCP, tcp_l, 8080, query(True, True, False, 8080, uid, wan4)),
        'diag-tcp-listen-8080-v6': (socket.AF_INET6, socket.IPPROTO_TCP, tcp_l, 8080, query(True, True, True, 8080, uid, wan6)),
        'diag-tcp-all-8080-v4': (socket.AF_INET, socket.IPPROTO_TCP, 0xffffffff, 8080, query(True, False, False, 8080, uid + 1, wan4)),
        'diag-tcp-dual-8082': (socket.AF_INET6, socket.IPPROTO_TCP, tcp_l, 8082, query(True, True, False, 8082, uid, wan4)),
        'diag-tcp-exact-8083': (socket.AF_INET6, socket.IPPROTO_TCP, tcp_l, 8083, query(True, True, True, 8083, uid, wan6)),
        'diag-tcp-loopback-8081': (socket.AF_INET, socket.IPPROTO_TCP, tcp_l, 8081, query(True, True, False, 8081, uid, wan4)),
        'diag-udp-5353-v4': (socket.AF_INET, socket.IPPROTO_UDP, 0xffffffff, 5353, query(False, False, False, 5353, uid, wan4)),
        'diag-udp-5353-v6': (socket.AF_INET6, socket.IPPROTO_UDP, 0xffffffff, 5353, query(False, False, True, 5353, uid, wan6)),
        'diag-udp-dual-5354': (socket.AF_INET6, socket.IPPROTO_UDP, 0xffffffff, 5354, query(False, False, False, 5354, uid, wan4)),
    }.items():
        (OUT / name).write_bytes(q + framed(sockets(fam, proto, states, port, 10)))
    # what pcpd itself asks: both families of one query in one input
    (OUT / 'diag-tcp-listen-8080-both').write_bytes(
        query(True, True, False, 8080, uid, wan4) + framed(sockets(socket.AF_INET, socket.IPPROTO_TCP, tcp_l, 8080, 1)
                                                          + sockets(socket.AF_INET6, socket.IPPROTO_TCP, tcp_l, 8080, 2)))
    for s in keep:
        s.close()
    print('wrote', len(list(OUT.iterdir())), 'seeds to', OUT)


if __name__ == '__main__':
    main()
