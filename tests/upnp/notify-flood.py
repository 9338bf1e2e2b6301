#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""notify-flood.py - GENA NOTIFYs from a host that is not the IGD (a test fixture).

  notify-flood.py URL INTERVAL LOG [SID SEQ ADDR]

Sends a NOTIFY to URL every INTERVAL seconds until killed, without a SID (what anyone on
the link can send; GUPnP answers 412 and passes nothing on, but pcpd's HTTP server sees
it), the body an ExternalIPAddress event (198.20.77.1). One JSON line per NOTIFY in LOG:
{"n":N,"answer":STATUS|null,"error":TEXT}. Run it in the namespace whose address should be
the sender's.

With SID SEQ ADDR: one NOTIFY only, with that SID header, that SEQ and ADDR as the event's
ExternalIPAddress: a spoofed event. GUPnP 1.6 passes an event on only with its
subscription's SID and the SEQ it expects next (a later one is a gap: it subscribes again
without passing it on); both travel in clear HTTP (the SUBSCRIBE's answer, the IGD's
NOTIFYs), so whoever sees them on the link can send this from any address.
"""
import http.client
import json
import re
import sys
import time

url, interval, logname = sys.argv[1], float(sys.argv[2]), sys.argv[3]
sid, seq, ext = sys.argv[4:7] if len(sys.argv) == 7 else (None, None, "198.20.77.1")
m = re.match(r"http://([^/:]+):(\d+)(/.*)?$", url)
body = ('<?xml version="1.0"?>\r\n<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">'
        f'<e:property><ExternalIPAddress>{ext}</ExternalIPAddress></e:property></e:propertyset>\r\n').encode()
with open(logname, "a", buffering=1) as log:
    n = 0
    while True:
        headers = {"Content-Type": 'text/xml; charset="utf-8"', "NT": "upnp:event", "NTS": "upnp:propchange",
                   "SEQ": seq if sid else str(n), "Connection": "close"}
        if sid:
            headers["SID"] = sid
        answer, error = None, ""
        try:
            c = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=10)
            c.request("NOTIFY", m.group(3) or "/", body=body, headers=headers)
            answer = c.getresponse().status
            c.close()
        except (OSError, http.client.HTTPException) as e:
            error = str(e)
        log.write(json.dumps({"n": n, "answer": answer, "error": error}) + "\n")
        if sid:
            break
        n += 1
        time.sleep(interval)
