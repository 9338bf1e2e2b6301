#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""soap.py - one UPnP action from a chosen source address, to play "another host" on the
LAN in the tests (a fixture: the SOAP envelope is written by hand).

  soap.py --source 192.168.77.3 --igd 192.168.77.1:PORT ACTION Name=Value...
Finds the WANIPConnection control URL in http://IGD/rootDesc.xml, posts the action,
prints {"status": N, "body": "..."} and exits 0 on HTTP 200.
"""
import argparse
import http.client
import json
import re
import sys

SERVICE = "urn:schemas-upnp-org:service:WANIPConnection:1"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--igd", required=True)
    p.add_argument("action")
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    host, port = a.igd.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(a.source, 0))
    c.request("GET", "/rootDesc.xml")
    desc = c.getresponse().read().decode()
    m = re.search(r"<serviceType>urn:schemas-upnp-org:service:WANIPConnection:\d</serviceType>.*?"
                  r"<controlURL>([^<]+)</controlURL>", desc, re.S)
    if not m:
        print(json.dumps({"status": 0, "body": "no WANIPConnection control URL"}))
        return 1
    ctl = m.group(1)
    args = "".join(f"<{k}>{v}</{k}>" for k, v in (x.split("=", 1) for x in a.args))
    body = ('<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
            f'<u:{a.action} xmlns:u="{SERVICE}">{args}</u:{a.action}></s:Body></s:Envelope>')
    c = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(a.source, 0))
    c.request("POST", ctl, body=body.encode(), headers={
        "Content-Type": 'text/xml; charset="utf-8"', "SOAPAction": f'"{SERVICE}#{a.action}"'})
    r = c.getresponse()
    out = r.read().decode(errors="replace")
    print(json.dumps({"status": r.status, "body": out}))
    return 0 if r.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
