#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""igd.py - a scripted UPnP Internet Gateway Device for pcpd-upnp's tests.

A test fixture, not the product: SSDP (multicast NOTIFY + answers to M-SEARCH), the
description document and a WANIPConnection:1 control point written by hand, with the
misbehaviours miniupnpd does not have. Python stdlib only, run with /usr/bin/python3 in
the lab's router namespace.

  igd.py --addr 192.168.77.1 --iface lan0 --log FILE [options]

  --external ADDR          GetExternalIPAddress answer (default 198.20.77.1)
  --permanent-only         AddPortMapping with a lease other than 0 -> 725
  --conflict PORT[,PORT]   AddPortMapping on these external ports -> 718
  --foreign PROTO:PORT:ADDR:IPORT  a mapping of another host, present from the start;
                           AddPortMapping on it silently overwrites it (as bad routers do)
  --slow SECONDS           every SOAP answer after that delay (stdin "slow N" changes it)
  --bad-external TEXT      GetExternalIPAddress answers TEXT
  --malformed-entry        GetSpecificPortMappingEntry answers NewInternalPort "99999"
  --malformed-soap         AddPortMapping answers 200 with a body that is not XML
  --oversized WHAT         "description" or "soap": a 1 MiB answer; "chunked": SOAP
                           answers without Content-Length (chunked)
  --location-host HOST     LOCATION names HOST instead of --addr (another host, a name)
  --control-host HOST      the description's controlURL on HOST
  --trap ADDR              also listen on ADDR:<same port> and log every request there
  --events                 GENA eventing of ExternalIPAddress: a SUBSCRIBE is answered
                           with a SID, then the initial event; renewals keep the SID
                           (without it, SUBSCRIBE is answered and no event ever comes)
  --refuse-subscribe N     the first N SUBSCRIBEs answered 503 (GUPnP: subscription-lost)
  --notify-before-answer   a new subscription's initial event is sent before the SUBSCRIBE
                           is answered (GUPnP, without a SID yet, drops it, and takes the
                           next event's SEQ for a gap: it subscribes again, not emitting it)
  --subscription-timeout S TIMEOUT granted to a subscription (default 1800; GUPnP renews
                           it after about half of that)
  --slow-subscribe S       every SUBSCRIBE (new or renewal) answered after that delay; it
                           is logged as {"ev":"begin","method":"SUBSCRIBE"} when it arrives
  --usn TEXT               the USN of every SSDP message (Python escapes such as \x1b are
                           decoded), instead of uuid:<uuid>-2::<service type>
  --cache-control TEXT     the CACHE-CONTROL header of every SSDP message (escapes decoded
                           too), instead of max-age=1800

stdin commands: "forget" (drop every mapping, as a reboot would, without a word on SSDP),
"slow N", "slow-add N" (only AddPortMapping), "external ADDR" (a new WAN address, without
an event), "external-event ADDR" (a new WAN address and an event to every subscriber),
"event" (an event with the current address to every subscriber: what an IGD sends when
another variable changes), "fault-external CODE" (GetExternalIPAddress answered with UPnP
error CODE, 0: answered again), "notify-on-external 0|1" (every GetExternalIPAddress makes
an event to every subscriber, sent and answered before the request is), "external-stale ADDR" (a new WAN address, and every subscriber
gets one event made before the change, with the old address, and none after it: what
miniupnpd does when the address changes while its NOTIFY is unanswered),
"byebye" (an ssdp:byebye for the service, then silent on SSDP, and every SOAP request's
connection closed unanswered, as an IGD going down; GET, SUBSCRIBE and UNSUBSCRIBE still
answered), "byebye-alive" (an ssdp:byebye for the service, as anyone on the link can send
with the IGD's address, and nothing else changes: it keeps answering and announcing),
"hold-delete 1|0" (DeletePortMapping answers wait, from the "begin" of the request, until
"hold-delete 0"; at most HOLD_CAP seconds, then answered anyway and logged as
{"ev":"hold-cap"}),
"forget-subscribers" (as a reboot on the same HTTP port: a renewal of an old SID gets
412), "quit". Events sent are logged as {"ev":"notify","sid":...,
"seq":N,"external":ADDR,"answer":STATUS|null,"error":TEXT}. A request is logged as "begin" when
it arrives and again with its answer. Every request is logged as one JSON line in --log:
  {"ev":"http","host":ADDR,"method":"POST","action":"AddPortMapping","args":{...},
   "answer":200|500,"code":718}
"""
import argparse
import http.client
import json
import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid as uuidlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "urn:schemas-upnp-org:service:WANIPConnection:1"
SSDP_ADDR = ("239.255.255.250", 1900)
HOLD_CAP = 120  # s: a held answer never waits for a test that is gone
ERRORS = {402: "InvalidArgs", 606: "ActionNotAuthorized", 714: "NoSuchEntryInArray",
          718: "ConflictInMappingEntry", 725: "OnlyPermanentLeasesSupported"}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind() asks getfqdn(): a reverse DNS lookup that hangs in a
        # namespace without DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]


class State:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.mappings = {}   # (PROTO, ext) -> dict(client, iport, lease, desc)
        self.slow = a.slow
        self.slow_add = 0
        self.slow_subscribe = a.slow_subscribe
        self.delete_released = threading.Event()  # cleared by "hold-delete 1"
        self.delete_released.set()
        self.gone = False    # said byebye: silent on SSDP (HTTP still answers)
        self.byebye = None   # the function that says it (set by ssdp())
        self.fault_external = 0        # GetExternalIPAddress answered with this UPnP error
        self.notify_on_external = False  # an event to every subscriber while it is in flight
        self.subs = {}       # SID -> dict(callback=URL, seq=next SEQ)
        self.refuse_subscribe = a.refuse_subscribe
        self.log_lock = threading.Lock()
        self.logf = open(a.log, "a", buffering=1)
        self.uuid = a.uuid or str(uuidlib.uuid4())
        for f in a.foreign or []:
            proto, port, addr, iport = f.split(":")
            self.mappings[(proto.upper(), int(port))] = dict(client=addr, iport=int(iport), lease=0,
                                                            desc="another host")

    def log(self, **kw):
        with self.log_lock:
            self.logf.write(json.dumps(kw) + "\n")


def envelope(inner):
    return ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>' + inner +
            '</s:Body></s:Envelope>\r\n').encode()


def fault(code):
    return envelope('<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>'
                    '<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
                    f'<errorCode>{code}</errorCode><errorDescription>{ERRORS.get(code, "Error")}'
                    '</errorDescription></UPnPError></detail></s:Fault>')


def response(action, args):
    body = "".join(f"<{k}>{v}</{k}>" for k, v in args.items())
    return envelope(f'<u:{action}Response xmlns:u="{SERVICE}">{body}</u:{action}Response>')


def description(st, host, port):
    ctl_host = st.a.control_host or host
    u = st.uuid
    return f"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>scripted IGD</friendlyName><manufacturer>pcpd tests</manufacturer><modelName>igd.py</modelName>
<UDN>uuid:{u}-0</UDN><serviceList/>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<friendlyName>WAN</friendlyName><manufacturer>pcpd tests</manufacturer><modelName>igd.py</modelName>
<UDN>uuid:{u}-1</UDN><serviceList/>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<friendlyName>WAN connection</friendlyName><manufacturer>pcpd tests</manufacturer><modelName>igd.py</modelName>
<UDN>uuid:{u}-2</UDN>
<serviceList><service><serviceType>{SERVICE}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>/scpd.xml</SCPDURL><controlURL>http://{ctl_host}:{port}/ctl</controlURL>
<eventSubURL>/evt</eventSubURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>
""".encode()


def make_handler(st, port_ref):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, status, body, ctype="text/xml; charset=\"utf-8\"", chunked=False, length=None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body) if length is None else length))
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                if chunked:
                    self.wfile.write(b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
                elif length is not None and length > len(body):
                    self.wfile.write(body)
                    pad = b" " * 65536
                    left = length - len(body)
                    while left > 0:
                        n = min(left, len(pad))
                        self.wfile.write(pad[:n])
                        left -= n
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def host(self):
            return self.connection.getsockname()[0]

        def do_GET(self):
            st.log(ev="http", host=self.host(), method="GET", path=self.path)
            if self.host() != st.a.addr:
                return self.send(404, b"trap")
            if self.path == "/rootDesc.xml":
                if st.a.oversized == "description":
                    return self.send(200, description(st, st.a.addr, port_ref[0]), length=1 << 20)
                return self.send(200, description(st, st.a.addr, port_ref[0]))
            self.send(404, b"")

        def do_SUBSCRIBE(self):
            sid = self.headers.get("SID")
            callback = self.headers.get("CALLBACK", "")
            if st.slow_subscribe:
                st.log(ev="begin", method="SUBSCRIBE", renewal=bool(sid))
                time.sleep(st.slow_subscribe)
            with st.lock:
                refuse = not sid and st.refuse_subscribe > 0
                if refuse:
                    st.refuse_subscribe -= 1
                known = sid in st.subs
            if refuse:
                st.log(ev="http", host=self.host(), method="SUBSCRIBE", path=self.path, answer=503)
                return self.send(503, b"")
            if not st.a.events:
                st.log(ev="http", host=self.host(), method="SUBSCRIBE", path=self.path, answer=200)
                sid = "uuid:" + str(uuidlib.uuid4())
            elif sid:
                # renewal
                st.log(ev="http", host=self.host(), method="SUBSCRIBE", path=self.path, renewal=True,
                       answer=200 if known else 412)
                if not known:
                    return self.send(412, b"")
            else:
                m = re.search(r"<(http://[^>]+)>", callback)
                if not m:
                    st.log(ev="http", host=self.host(), method="SUBSCRIBE", path=self.path, answer=412)
                    return self.send(412, b"")
                sid = "uuid:" + str(uuidlib.uuid4())
                with st.lock:
                    st.subs[sid] = dict(callback=m.group(1), seq=0)
                st.log(ev="http", host=self.host(), method="SUBSCRIBE", path=self.path, answer=200, sid=sid,
                       callback=m.group(1))
                if st.a.notify_before_answer:
                    notify_one(st, sid)
            self.send_response(200)
            self.send_header("SID", sid)
            self.send_header("TIMEOUT", f"Second-{st.a.subscription_timeout}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            if st.a.events and not known and not st.a.notify_before_answer:
                # the initial event, once the answer is out
                threading.Thread(target=notify_one, args=(st, sid), daemon=True).start()

        def do_UNSUBSCRIBE(self):
            with st.lock:
                st.subs.pop(self.headers.get("SID"), None)
            st.log(ev="http", host=self.host(), method="UNSUBSCRIBE", path=self.path, sid=self.headers.get("SID"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(min(n, 65536)).decode(errors="replace")
            m = re.search(r"#(\w+)", self.headers.get("SOAPAction", ""))
            action = m.group(1) if m else "?"
            args = dict(re.findall(r"<(New\w+)>([^<]*)</New\w+>", body))
            for k in re.findall(r"<(New\w+)/>", body):
                args[k] = ""
            if self.host() != st.a.addr:
                st.log(ev="http", host=self.host(), method="POST", action=action, args=args, answer=404)
                return self.send(404, b"trap")
            if st.gone:
                # said byebye: going down, no action answered
                st.log(ev="http", host=self.host(), method="POST", action=action, args=args, answer=None)
                self.close_connection = True
                return
            st.log(ev="begin", action=action, args=args)
            if st.slow:
                time.sleep(st.slow)
            if st.slow_add and action == "AddPortMapping":
                time.sleep(st.slow_add)
            if action == "DeletePortMapping" and not st.delete_released.wait(HOLD_CAP):
                st.log(ev="hold-cap", action=action, args=args, seconds=HOLD_CAP)
            if st.notify_on_external and action == "GetExternalIPAddress":
                notify_all(st)  # answered by the client while this request waits for its answer
            status, out, code = self.act(action, args)
            st.log(ev="http", host=self.host(), method="POST", action=action, args=args, answer=status, code=code)
            if st.a.oversized == "soap":
                return self.send(status, out, length=1 << 20)
            if st.a.oversized == "chunked":
                return self.send(status, out, chunked=True)
            if st.a.malformed_soap and action == "AddPortMapping":
                return self.send(200, b"<<<this is not XML")
            self.send(status, out)

        def act(self, action, args):
            with st.lock:
                if action == "GetExternalIPAddress" and st.fault_external:
                    return 500, fault(st.fault_external), st.fault_external
                if action == "GetExternalIPAddress":
                    ext = st.a.bad_external if st.a.bad_external is not None else st.a.external
                    return 200, response(action, {"NewExternalIPAddress": ext}), 0
                key = (args.get("NewProtocol", "").upper(), int(args.get("NewExternalPort", "0") or 0))
                if action == "GetSpecificPortMappingEntry":
                    e = st.mappings.get(key)
                    if not e:
                        return 500, fault(714), 714
                    iport = "99999" if st.a.malformed_entry else str(e["iport"])
                    return 200, response(action, {"NewInternalPort": iport, "NewInternalClient": e["client"],
                                                  "NewEnabled": "1", "NewPortMappingDescription": e["desc"],
                                                  "NewLeaseDuration": str(e["lease"])}), 0
                if action == "AddPortMapping":
                    lease = int(args.get("NewLeaseDuration", "0") or 0)
                    if st.a.permanent_only and lease != 0:
                        return 500, fault(725), 725
                    if key[1] in st.conflict:
                        return 500, fault(718), 718
                    prev = st.mappings.get(key)
                    st.mappings[key] = dict(client=args.get("NewInternalClient"), iport=int(args["NewInternalPort"]),
                                            lease=lease, desc=args.get("NewPortMappingDescription", ""))
                    if prev and prev["client"] != args.get("NewInternalClient"):
                        st.log(ev="overwrote", proto=key[0], port=key[1], was=prev["client"])
                    return 200, response(action, {}), 0
                if action == "DeletePortMapping":
                    if key not in st.mappings:
                        return 500, fault(714), 714
                    del st.mappings[key]
                    return 200, response(action, {}), 0
            return 500, fault(401), 401

    return H


def notify_one(st, sid, ext=None):
    """one event to subscriber sid: ExternalIPAddress ext, or as the IGD has it now"""
    with st.lock:
        sub = st.subs.get(sid)
        if not sub:
            return
        seq = sub["seq"]
        sub["seq"] += 1
        ext = ext or st.a.external
    m = re.match(r"http://([^/:]+):(\d+)(/.*)?$", sub["callback"])
    body = ('<?xml version="1.0"?>\r\n<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">'
            f'<e:property><ExternalIPAddress>{ext}</ExternalIPAddress></e:property></e:propertyset>\r\n').encode()
    answer, error = None, ""
    try:
        c = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=10)
        c.request("NOTIFY", m.group(3) or "/", body=body,
                  headers={"Content-Type": 'text/xml; charset="utf-8"', "NT": "upnp:event",
                           "NTS": "upnp:propchange", "SID": sid, "SEQ": str(seq), "Connection": "close"})
        answer = c.getresponse().status
        c.close()
    except (OSError, http.client.HTTPException, AttributeError) as e:
        error = str(e)
    st.log(ev="notify", sid=sid, seq=seq, external=ext, answer=answer, error=error)


def notify_all(st, ext=None):
    with st.lock:
        sids = list(st.subs)
    for sid in sids:
        notify_one(st, sid, ext)


def ssdp_headers(st, host, port, st_value, nts=None):
    usn = st.a.usn.encode().decode("unicode_escape") if st.a.usn else f"uuid:{st.uuid}-2::{SERVICE}"
    cc = st.a.cache_control.encode().decode("unicode_escape") if st.a.cache_control else "max-age=1800"
    lines = [f"LOCATION: http://{host}:{port}/rootDesc.xml", f"CACHE-CONTROL: {cc}",
             "SERVER: Linux/1 UPnP/1.0 igd.py/1", f"USN: {usn}"]
    if nts:
        return ["NOTIFY * HTTP/1.1", "HOST: 239.255.255.250:1900", f"NT: {st_value}", f"NTS: {nts}"] + lines
    return ["HTTP/1.1 200 OK", "EXT:", f"ST: {st_value}"] + lines


def ssdp(st, port):
    a = st.a
    loc_host = a.location_host or a.addr
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rx.bind(("239.255.255.250", 1900))
    rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                  socket.inet_aton("239.255.255.250") + socket.inet_aton(a.addr))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(a.addr))
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    tx.bind((a.addr, 0))

    def notify():
        while not st.gone:
            msg = "\r\n".join(ssdp_headers(st, loc_host, port, SERVICE, "ssdp:alive")) + "\r\n\r\n"
            tx.sendto(msg.encode(), SSDP_ADDR)
            time.sleep(a.notify_interval)
    threading.Thread(target=notify, daemon=True).start()

    def byebye(gone=True):
        st.gone = gone
        lines = [h for h in ssdp_headers(st, loc_host, port, SERVICE, "ssdp:byebye")
                 if not h.startswith(("LOCATION:", "CACHE-CONTROL:"))]
        msg = "\r\n".join(lines) + "\r\n\r\n"
        tx.sendto(msg.encode(), SSDP_ADDR)
    st.byebye = byebye

    while True:
        data, peer = rx.recvfrom(2048)
        text = data.decode(errors="replace")
        if not text.startswith("M-SEARCH"):
            continue
        m = re.search(r"^ST:\s*(.+?)\s*$", text, re.M | re.I)
        target = m.group(1) if m else ""
        if target not in ("ssdp:all", "upnp:rootdevice") and not target.startswith(SERVICE[:-1]):
            continue
        if st.gone:
            continue
        st.log(ev="msearch", peer=peer[0], target=target)
        msg = "\r\n".join(ssdp_headers(st, loc_host, port, SERVICE if target == "ssdp:all" else target)) + "\r\n\r\n"
        tx.sendto(msg.encode(), peer)


def stdin_loop(st):
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "forget":
            with st.lock:
                st.mappings.clear()
            st.log(ev="forgot")
        elif cmd[0] == "slow":
            st.slow = float(cmd[1])
            st.log(ev="slow", seconds=st.slow)
        elif cmd[0] == "external":
            st.a.external = cmd[1]
            st.log(ev="external", addr=cmd[1])
        elif cmd[0] == "external-event":
            st.a.external = cmd[1]
            st.log(ev="external", addr=cmd[1], event=True)
            notify_all(st)
        elif cmd[0] == "event":
            notify_all(st)
        elif cmd[0] == "external-stale":
            old = st.a.external
            st.a.external = cmd[1]
            st.log(ev="external", addr=cmd[1], stale_event=old)
            notify_all(st, old)
        elif cmd[0] == "forget-subscribers":
            with st.lock:
                st.subs.clear()
            st.log(ev="forgot-subscribers")
        elif cmd[0] == "slow-add":
            st.slow_add = float(cmd[1])
            st.log(ev="slow-add", seconds=st.slow_add)
        elif cmd[0] == "fault-external":
            st.fault_external = int(cmd[1])
            st.log(ev="fault-external", code=st.fault_external)
        elif cmd[0] == "notify-on-external":
            st.notify_on_external = cmd[1] == "1"
            st.log(ev="notify-on-external", on=st.notify_on_external)
        elif cmd[0] == "hold-delete":
            if cmd[1] == "1":
                st.delete_released.clear()
            else:
                st.delete_released.set()
            st.log(ev="hold-delete", on=cmd[1] == "1")
        elif cmd[0] == "byebye":
            st.byebye()
            st.log(ev="byebye")
        elif cmd[0] == "byebye-alive":
            st.byebye(gone=False)
            st.log(ev="byebye", alive=True)
        elif cmd[0] == "quit":
            os._exit(0)
    os._exit(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--iface", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--uuid")
    p.add_argument("--external", default="198.20.77.1")
    p.add_argument("--permanent-only", action="store_true")
    p.add_argument("--conflict", default="")
    p.add_argument("--foreign", action="append")
    p.add_argument("--slow", type=float, default=0)
    p.add_argument("--bad-external")
    p.add_argument("--malformed-entry", action="store_true")
    p.add_argument("--malformed-soap", action="store_true")
    p.add_argument("--oversized", choices=("description", "soap", "chunked"))
    p.add_argument("--location-host")
    p.add_argument("--control-host")
    p.add_argument("--trap", action="append", default=[])
    p.add_argument("--notify-interval", type=float, default=5)
    p.add_argument("--events", action="store_true")
    p.add_argument("--refuse-subscribe", type=int, default=0)
    p.add_argument("--subscription-timeout", type=int, default=1800)
    p.add_argument("--slow-subscribe", type=float, default=0)
    p.add_argument("--notify-before-answer", action="store_true")
    p.add_argument("--usn")
    p.add_argument("--cache-control")
    a = p.parse_args()
    st = State(a)
    st.conflict = {int(x) for x in a.conflict.split(",") if x}

    port_ref = [0]
    srv = Server((a.addr, 0), make_handler(st, port_ref))
    port_ref[0] = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    for t in a.trap:
        ts = Server((t, port_ref[0]), make_handler(st, port_ref))
        threading.Thread(target=ts.serve_forever, daemon=True).start()
    threading.Thread(target=ssdp, args=(st, port_ref[0]), daemon=True).start()
    st.log(ev="ready", port=port_ref[0], uuid=st.uuid)
    stdin_loop(st)


if __name__ == "__main__":
    main()
