#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""notify-flood.py - GENA NOTIFYs from a host that is not the IGD (a test fixture).

  notify-flood.py URL INTERVAL LOG

Sends a NOTIFY to URL every INTERVAL seconds until killed, without a SID (what anyone on
the link can send; GUPnP answers 412 and passes nothing on, but pcpd's HTTP server sees
it), the body an ExternalIPAddress event. (A NOTIFY with a SID on the subscription's path
is passed on by GUPnP 1.6 whatever the SID, and its SEQ makes it subscribe again: not what
this fixture is for.) One JSON line per NOTIFY in LOG: {"n":N,"answer":STATUS|null,
"error":TEXT}. Run it in the namespace whose address should be the sender's.
"""
import http.client
import json
import re
import sys
import time

url, interval, logname = sys.argv[1], float(sys.argv[2]), sys.argv[3]
m = re.match(r"http://([^/:]+):(\d+)(/.*)?$", url)
body = ('<?xml version="1.0"?>\r\n<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">'
        '<e:property><ExternalIPAddress>198.20.77.1</ExternalIPAddress></e:property></e:propertyset>\r\n').encode()
with open(logname, "a", buffering=1) as log:
    n = 0
    while True:
        headers = {"Content-Type": 'text/xml; charset="utf-8"', "NT": "upnp:event", "NTS": "upnp:propchange",
                   "SEQ": str(n), "Connection": "close"}
        answer, error = None, ""
        try:
            c = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=10)
            c.request("NOTIFY", m.group(3) or "/", body=body, headers=headers)
            answer = c.getresponse().status
            c.close()
        except (OSError, http.client.HTTPException) as e:
            error = str(e)
        log.write(json.dumps({"n": n, "answer": answer, "error": error}) + "\n")
        n += 1
        time.sleep(interval)
