#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small DHCPv6 server (RFC 8415) for nmlab, for what dnsmasq cannot do: several
instances of OPTION_V6_PCP_SERVER (86), one per PCP server, as RFC 7291 §3 sends several
servers. It leases one address (IA_NA) to whoever asks and answers Solicit, Request, Renew,
Rebind, Confirm, Release, Decline and Information-request on one interface.

    dhcp6-server.py IFACE OPTIONS.json     (SIGHUP: re-read OPTIONS.json)

OPTIONS.json: {"pcp_servers": [["fd77:77:77::5", "::ffff:192.168.77.5"], ["fd77:77:77::6"]],
               "force": false, "address": "fd77:77:77::100"}
Option 86 goes only to a client that asks for it (Option Request Option), as a real server
does, unless "force". A Confirm gets a Reply with a status only, as dnsmasq's does: the
client keeps its old options until it renews.
"""

import json
import signal
import socket
import struct
import sys

SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY, RELEASE, DECLINE, INFO_REQUEST = 1, 2, 3, 4, 5, 6, 7, 8, 9, 11
OPT_CLIENTID, OPT_SERVERID, OPT_IA_NA, OPT_IAADDR, OPT_ORO, OPT_STATUS = 1, 2, 3, 5, 6, 13
OPT_PCP_SERVER = 86
DUID = struct.pack("!HH", 3, 1) + bytes.fromhex("02706370 6e6d".replace(" ", ""))  # DUID-LL


def opt(code, data):
    return struct.pack("!HH", code, len(data)) + data


def parse_options(b):
    out, i = {}, 0
    while i + 4 <= len(b):
        code, n = struct.unpack("!HH", b[i:i + 4])
        out.setdefault(code, []).append(b[i + 4:i + 4 + n])
        i += 4 + n
    return out


class Server:
    def __init__(self, iface, path):
        self.iface, self.path = iface, path
        self.reload = True
        self.conf = {}
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        self.sock.bind(("::", 547))
        mreq = socket.inet_pton(socket.AF_INET6, "ff02::1:2") + struct.pack("@I", socket.if_nametoindex(iface))
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)

    def load(self):
        with open(self.path) as f:
            self.conf = json.load(f)
        print(f"dhcp6-server: options {self.conf}", flush=True)

    def answer(self, data, peer):
        if self.reload:
            self.reload = False
            self.load()
        if len(data) < 4:
            return
        mtype, xid = data[0], data[1:4]
        opts = parse_options(data[4:])
        if OPT_CLIENTID not in opts:
            return
        if mtype not in (SOLICIT, REQUEST, CONFIRM, RENEW, REBIND, RELEASE, DECLINE, INFO_REQUEST):
            return
        # messages for another server are not ours to answer
        if mtype in (REQUEST, RENEW, RELEASE, DECLINE) and opts.get(OPT_SERVERID, [DUID])[0] != DUID:
            return
        body = opt(OPT_CLIENTID, opts[OPT_CLIENTID][0]) + opt(OPT_SERVERID, DUID)
        if mtype in (CONFIRM, RELEASE, DECLINE):
            body += opt(OPT_STATUS, struct.pack("!H", 0) + b"success")
        else:
            if mtype != INFO_REQUEST:
                for ia in opts.get(OPT_IA_NA, []):
                    addr = socket.inet_pton(socket.AF_INET6, self.conf.get("address", "fd77:77:77::100"))
                    ia_addr = opt(OPT_IAADDR, addr + struct.pack("!II", 120, 120))
                    body += opt(OPT_IA_NA, ia[:4] + struct.pack("!II", 60, 105) + ia_addr)
            oro = opts.get(OPT_ORO, [b""])[0]
            asked = OPT_PCP_SERVER in struct.unpack(f"!{len(oro) // 2}H", oro[:len(oro) // 2 * 2])
            if asked or self.conf.get("force"):
                for server in self.conf.get("pcp_servers", []):
                    body += opt(OPT_PCP_SERVER, b"".join(socket.inet_pton(socket.AF_INET6, a) for a in server))
        reply = bytes([ADVERTISE if mtype == SOLICIT else REPLY]) + xid + body
        self.sock.sendto(reply, peer)
        print(f"dhcp6-server: message {mtype} answered", flush=True)

    def run(self):
        self.load()
        self.reload = False
        while True:
            data, peer = self.sock.recvfrom(4096)
            self.answer(data, peer)


def main():
    srv = Server(sys.argv[1], sys.argv[2])

    def hup(*_):
        srv.reload = True

    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("dhcp6-server: ready", flush=True)
    srv.run()


if __name__ == "__main__":
    main()
