#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pcp-probe.py - raw PCP (RFC 6887) requests and a PCP/NAT-PMP packet capture.

  pcp-probe.py map --server ADDR --proto tcp|udp --port N [--ext-port N] [--lifetime S]
                   [--nonce HEX24] [--json]
  pcp-probe.py announce --server ADDR [--json]
  pcp-probe.py capture --iface IF --seconds S
      AF_PACKET capture of UDP 5350/5351 on IF (run it in the namespace that owns IF);
      one JSON object per packet on stdout: t (monotonic s), dir ("in"/"out"), src,
      dst, sport, dport and the decoded PCP / NAT-PMP fields. A marker datagram (see
      mark) prints {"mark": TOKEN, "t": ...} instead. Ends after S seconds or on
      SIGTERM/SIGINT, after printing what the kernel had queued for it by then.
  pcp-probe.py mark --iface IF --token TOKEN
      send a marker datagram (UDP broadcast to port 9, payload "pcpit-mark:TOKEN") out
      of IF. A capture on IF receives its packets in the order the kernel saw them, so
      once it printed the marker it printed every packet IF carried before the marker
      was sent: the way to know a capture's output is complete up to now.
Exit status of map/announce: 0 answer received (whatever its result), 2 no answer,
3 ICMP unreachable.
"""
import argparse
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import time

RESULT_NAMES = ["SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
                "UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE",
                "NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL",
                "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"]
PROTO_NUM = {"tcp": 6, "udp": 17}
MARK_PORT = 9           # discard: nothing listens on it in the lab
MARK_PREFIX = b"pcpit-mark:"


def to16(addr):
    a = ipaddress.ip_address(addr)
    return a.packed if a.version == 6 else bytes(10) + b"\xff\xff" + a.packed


def from16(b):
    a = ipaddress.IPv6Address(bytes(b))
    return str(a.ipv4_mapped or a)


def result_name(code):
    return RESULT_NAMES[code] if code < len(RESULT_NAMES) else f"RESULT_{code}"


def parse_pcp(data):
    """PCP or NAT-PMP message (request or response) -> dict; never raises."""
    d = {"len": len(data)}
    if len(data) < 2:
        return d
    d["ver"] = data[0]
    if data[0] == 0:                    # NAT-PMP
        op = data[1]
        d["natpmp"] = True
        d["r"] = bool(op & 0x80)
        d["opcode"] = op & 0x7F
        if d["r"] and len(data) >= 8:
            d["result"], d["epoch"] = struct.unpack("!HI", data[2:8])
            if d["opcode"] == 0 and len(data) >= 12:
                d["ext_addr"] = socket.inet_ntoa(data[8:12])
            elif len(data) >= 16:
                d["iport"], d["eport"], d["lifetime"] = struct.unpack("!HHI", data[8:16])
        elif not d["r"] and d["opcode"] in (1, 2) and len(data) >= 12:
            d["iport"], d["eport"], d["lifetime"] = struct.unpack("!HHI", data[4:12])
        return d
    if len(data) < 24:
        return d
    op = data[1]
    d["r"] = bool(op & 0x80)
    d["opcode"] = op & 0x7F
    if d["r"]:
        d["result"] = data[3]
        d["result_name"] = result_name(data[3])
        d["lifetime"], d["epoch"] = struct.unpack("!II", data[4:12])
    else:
        d["lifetime"] = struct.unpack("!I", data[4:8])[0]
        d["client"] = from16(data[8:24])
    if d["opcode"] in (1, 2) and len(data) >= 60:
        body = data[24:60]
        d["nonce"] = body[:12].hex()
        d["proto"] = body[12]
        d["iport"], d["eport"] = struct.unpack("!HH", body[16:20])
        d["ext_addr"] = from16(body[20:36])
    return d


def request(args, opcode, body):
    fam = socket.AF_INET6 if ":" in args.server else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.connect(socket.getaddrinfo(args.server, args.pcp_port, fam, socket.SOCK_DGRAM)[0][4])
    me = s.getsockname()[0].split("%")[0]
    msg = struct.pack("!BBHI", 2, opcode, 0, args.lifetime) + to16(me) + body
    timeout = 1.0
    for _ in range(3):
        s.send(msg)
        r, _, _ = select.select([s], [], [], timeout)
        if r:
            try:
                data = s.recv(2048)
            except ConnectionRefusedError:
                return {"result": "ICMP_UNREACHABLE"}, 3
            d = parse_pcp(data)
            if "result_name" in d:
                d["result"] = d.pop("result_name")
            elif d.get("natpmp"):
                d["result"] = f"NATPMP_{d.get('result')}"
            return d, 0
        timeout *= 2
    return {"result": "NO_ANSWER"}, 2


def cmd_map(args):
    nonce = bytes.fromhex(args.nonce) if args.nonce else os.urandom(12)
    fam6 = ":" in args.server
    body = nonce + struct.pack("!B3xHH", PROTO_NUM[args.proto], args.port, args.ext_port) + \
        to16("::" if fam6 else "0.0.0.0")
    d, rc = request(args, 1, body)
    d.setdefault("nonce", nonce.hex())
    if "eport" in d:
        d["ext_port"] = d["eport"]
    out(d, args)
    return rc


def cmd_announce(args):
    args.lifetime = 0
    d, rc = request(args, 0, b"")
    out(d, args)
    return rc


def out(d, args):
    if args.json:
        print(json.dumps(d, sort_keys=True), flush=True)
    else:
        print(" ".join(f"{k}={v}" for k, v in sorted(d.items())), flush=True)


def parse_frame(frame):
    """Ethernet frame -> (src, dst, sport, dport, payload) for UDP, else None."""
    if len(frame) < 14:
        return None
    etype = struct.unpack("!H", frame[12:14])[0]
    p = frame[14:]
    if etype == 0x0800 and len(p) >= 20:
        ihl = (p[0] & 0x0F) * 4
        if p[9] != 17 or len(p) < ihl + 8:
            return None
        src, dst = socket.inet_ntoa(p[12:16]), socket.inet_ntoa(p[16:20])
        udp = p[ihl:]
    elif etype == 0x86DD and len(p) >= 48:
        if p[6] != 17:                   # no extension headers expected here
            return None
        src = str(ipaddress.IPv6Address(p[8:24]))
        dst = str(ipaddress.IPv6Address(p[24:40]))
        udp = p[40:]
    else:
        return None
    sport, dport, ulen = struct.unpack("!HHH", udp[:6])
    return src, dst, sport, dport, udp[8:ulen]


# self-check only (test-probe-clock.py): seconds to sleep between the first two clock reads
# of each conversion, as a preemption there would
STALL = float(os.environ.get("PCPIT_PROBE_STALL", "0") or 0)


def wall_to_monotonic(wall):
    """a CLOCK_REALTIME time (a kernel timestamp) on the monotonic clock, through the two
    clocks' offset read as a tight pair: monotonic, wall, monotonic, read again when the two
    monotonic reads are more than 2 ms apart. Reading one clock and then the other (as this
    did until a CI run) dated a packet too early by whatever held this process up between the
    two reads: a capture process preempted there for 0.4 s on a loaded machine made a 2.8 s
    retransmission interval look like 2.3 s and the next one 0.4 s longer, with pcpd on time."""
    best = None
    for i in range(20):
        m1 = time.monotonic()
        if STALL and i == 0:
            time.sleep(STALL)
        w = time.time()
        m2 = time.monotonic()
        if best is None or m2 - m1 < best[0]:
            best = (m2 - m1, w - (m1 + m2) / 2)
        if m2 - m1 <= 0.002:
            break
    return wall - best[1]


def capture_one(s, so_timestampns, flags):
    """read and print one frame; False when nothing was queued (with MSG_DONTWAIT)"""
    try:
        frame, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(16), flags)
    except (BlockingIOError, InterruptedError):
        return False
    t = time.monotonic()
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == so_timestampns and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            kt = wall_to_monotonic(sec + nsec / 1e9)
            # (a kernel timestamp after this read, or a minute old: the wall clock was set)
            if -0.01 <= t - kt < 60:
                t = kt
    u = parse_frame(frame)
    if not u:
        return True
    src, dst, sport, dport, payload = u
    if dport == MARK_PORT and payload.startswith(MARK_PREFIX):
        print(json.dumps({"mark": payload[len(MARK_PREFIX):].decode(errors="replace"), "t": round(t, 4)}),
              flush=True)
        return True
    if not ({sport, dport} & {5350, 5351}):
        return True
    d = parse_pcp(payload)
    d.update(t=round(t, 4), dir="out" if addr[2] == socket.PACKET_OUTGOING else "in",
             src=src, dst=dst, sport=sport, dport=dport)
    print(json.dumps(d, sort_keys=True), flush=True)
    return True


def cmd_mark(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.iface.encode())
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.sendto(MARK_PREFIX + args.token.encode(), ("255.255.255.255", MARK_PORT))
    return 0


def cmd_capture(args):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((args.iface, 0))
    # each packet's t is its kernel receive time (SO_TIMESTAMPNS, CLOCK_REALTIME) moved onto
    # the monotonic clock, not the time this process got round to reading it: on a busy
    # machine a batch of packets was seen read ~1.5 s late, which made correct 3 s
    # retransmission intervals look like 4.5 s ones
    so_timestampns = getattr(socket, "SO_TIMESTAMPNS", 35)
    s.setsockopt(socket.SOL_SOCKET, so_timestampns, 1)
    print(json.dumps({"capture": "started", "iface": args.iface, "t": time.monotonic()}), flush=True)
    end = time.monotonic() + args.seconds
    while not stop and time.monotonic() < end:
        try:
            r, _, _ = select.select([s], [], [], 0.2)
        except InterruptedError:
            continue
        if r:
            capture_one(s, so_timestampns, 0)
    # stopped: what the kernel queued before the stop is printed too (a test that stops
    # the capture right after the packet it waited for must find that packet); bounded,
    # should packets keep coming faster than they are printed
    for _ in range(100000):
        if not capture_one(s, so_timestampns, socket.MSG_DONTWAIT):
            break
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("map", "announce"):
        sp = sub.add_parser(name)
        sp.add_argument("--server", default="192.168.77.1")
        sp.add_argument("--pcp-port", type=int, default=5351)
        sp.add_argument("--lifetime", type=int, default=3600)
        sp.add_argument("--json", action="store_true")
        if name == "map":
            sp.add_argument("--proto", choices=sorted(PROTO_NUM), default="tcp")
            sp.add_argument("--port", type=int, required=True)
            sp.add_argument("--ext-port", type=int, default=0)
            sp.add_argument("--nonce")
    cp = sub.add_parser("capture")
    cp.add_argument("--iface", required=True)
    cp.add_argument("--seconds", type=float, default=60)
    mp = sub.add_parser("mark")
    mp.add_argument("--iface", required=True)
    mp.add_argument("--token", required=True)
    a = p.parse_args()
    return {"map": cmd_map, "announce": cmd_announce, "capture": cmd_capture, "mark": cmd_mark}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
