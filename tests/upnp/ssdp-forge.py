#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""ssdp-forge.py - forged SSDP datagrams, as any host on the link can send them (a test
fixture, adapted from a review's reproduction scripts). Run it in the namespace that owns
SRC: the datagrams' source address (UDP: nothing proves it).

  ssdp-forge.py alive SRC N LOG TAG
      HTTP listeners on SRC, ports 18000-18009, logging every request as one JSON line
      in LOG ({"ev":"get","port":P,"path":PATH,"from":ADDR}) and answering it with a
      description without devices; then N ssdp:alive NOTIFYs
      for WANIPConnection:1, each with a USN of its own and a LOCATION on SRC with a path
      of its own (/cgi-bin/admin.cgi?action=reboot&run=TAG&n=I, 20 ms apart: a receiver
      slowed by valgrind still reads every one, where 2 ms apart the kernel dropped 33 of
      200 from its socket buffer in CI, which no check of pcpd's can tell; GUPnP retries
      a failed fetch later, maybe into another run's listeners: TAG tells), logged as
      {"ev":"sent","n":N} once all are out; then it serves until killed.
  ssdp-forge.py byebye SRC N GAP USN
      N ssdp:byebye NOTIFYs for USN (WANIPConnection:1), GAP seconds apart, then exits.
"""
import http.server
import json
import socket
import socketserver
import sys
import threading
import time
import uuid

SERVICE = "urn:schemas-upnp-org:service:WANIPConnection:1"
SSDP_ADDR = ("239.255.255.250", 1900)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind() asks getfqdn(): a reverse DNS lookup that hangs in a
        # namespace without DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]


def sender(src):
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    tx.bind((src, 0))
    return tx


def alive(src, n, logname, tag):
    log = open(logname, "a", buffering=1)
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with lock:
                log.write(json.dumps({"ev": "get", "port": self.server.server_port, "path": self.path,
                                      "from": self.client_address[0]}) + "\n")
            # 200 and a description without devices: GUPnP finds nothing in it. (Not a 404:
            # GUPnP 1.6.3 retries a failed GET and leaks the answer's body each time, which
            # the ASan run would report as the driver's leak.)
            body = b'<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"/>'
            self.send_response(200)
            self.send_header("Content-Type", 'text/xml; charset="utf-8"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    for p in range(18000, 18010):
        s = Server((src, p), H)
        threading.Thread(target=s.serve_forever, daemon=True).start()
    tx = sender(src)
    for i in range(n):
        loc = f"http://{src}:{18000 + i % 10}/cgi-bin/admin.cgi?action=reboot&run={tag}&n={i}"
        msg = ("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
               f"LOCATION: {loc}\r\nNT: {SERVICE}\r\nNTS: ssdp:alive\r\nSERVER: x UPnP/1.0 y\r\n"
               f"USN: uuid:{uuid.uuid4()}::{SERVICE}\r\n\r\n")
        tx.sendto(msg.encode(), SSDP_ADDR)
        time.sleep(0.02)
    with lock:
        log.write(json.dumps({"ev": "sent", "n": n}) + "\n")
    while True:
        time.sleep(3600)


def byebye(src, n, gap, usn):
    tx = sender(src)
    for _ in range(n):
        msg = (f"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: {SERVICE}\r\nNTS: ssdp:byebye\r\n"
               f"USN: {usn}\r\n\r\n")
        tx.sendto(msg.encode(), SSDP_ADDR)
        time.sleep(gap)


if sys.argv[1] == "alive":
    alive(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
elif sys.argv[1] == "byebye":
    byebye(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
else:
    sys.exit(f"unknown mode {sys.argv[1]!r}")
