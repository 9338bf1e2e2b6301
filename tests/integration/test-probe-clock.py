#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The capture's clock (pcp-probe.py capture): each packet's t is its kernel timestamp on the
monotonic clock, however long the capture process is held up while it converts it.

Scenario 5 reads pcpd's retransmission schedule off these timestamps. The capture used to
read the monotonic clock and then the wall clock, one after the other: a capture preempted
between the two reads dated its packet too early by the preemption (a CI run saw a 2.3 s
first interval, then one 0.4 s too long, with pcpd on time). Here the capture is made to
sleep 0.3 s between its first two clock reads of every conversion (PCPIT_PROBE_STALL, a
self-check hook), as a preemption there would, and every marker datagram sent on the
namespace's loopback must still be dated within the send's own span (with 50 ms for the
kernel's delivery), not 0.3 s before it.

Needs root (a network namespace of its own, pcpit-<pid>-clk, deleted at the end): a skip
(77) without it, a failure under CI=true."""
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
PROBE = os.path.join(HERE, "pcp-probe.py")
STALL = 0.3
N_MARKS = 3
CAP = 30.0


def main():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            print("FAIL: needs root (a network namespace of its own); CI runs as root", flush=True)
            return 1
        print("SKIP: needs root (a network namespace of its own)", flush=True)
        return 77
    ns = f"pcpit-{os.getpid()}-clk"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    cap = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        env = dict(os.environ, PCPIT_PROBE_STALL=str(STALL))
        cap = subprocess.Popen(["ip", "netns", "exec", ns, PY, PROBE, "capture", "--iface", "lo",
                                "--seconds", str(int(CAP * 4))],
                               stdout=subprocess.PIPE, text=True, env=env)
        lines, started = [], threading.Event()

        def reader():
            for line in cap.stdout:
                lines.append(json.loads(line))
                if "capture" in lines[-1]:
                    started.set()
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        if not started.wait(CAP):
            print(f"FAIL: expected the capture to start within {CAP} s, saw {lines}", flush=True)
            return 1
        # the sender: each marker's send span on the monotonic clock (the clock is the
        # machine's, the same in every namespace)
        sender = ("import json, socket, sys, time\n"
                  "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  f"for i in range({N_MARKS}):\n"
                  "    a = time.monotonic()\n"
                  f"    s.sendto(b'pcpit-mark:clk' + str(i).encode(), ('127.0.0.1', 9))\n"
                  "    b = time.monotonic()\n"
                  "    print(json.dumps({'token': 'clk' + str(i), 'a': a, 'b': b}), flush=True)\n"
                  "    time.sleep(0.5)\n")
        out = subprocess.run(["ip", "netns", "exec", ns, PY, "-c", sender], capture_output=True, text=True,
                             check=True).stdout
        sends = {d["token"]: d for d in map(json.loads, out.splitlines())}
        # every marker printed (two each on a loopback: leaving and coming in); each
        # conversion sleeps STALL, so this waits for them, up to a cap
        deadline = time.monotonic() + CAP
        while time.monotonic() < deadline and \
                sum(1 for d in lines if d.get("mark") in sends) < 2 * N_MARKS:
            time.sleep(0.1)
        marks = [d for d in lines if d.get("mark") in sends]
        bad = []
        for d in marks:
            s = sends[d["mark"]]
            if not (s["a"] - 0.005 <= d["t"] <= s["b"] + 0.05):
                bad.append((d["mark"], round(d["t"] - s["a"], 3)))
        ok = True
        if {d["mark"] for d in marks} != set(sends):
            print(f"FAIL: expected the capture to print all {N_MARKS} markers within {CAP} s, saw "
                  f"{sorted({d['mark'] for d in marks})}", flush=True)
            ok = False
        if bad:
            print(f"FAIL: expected each marker dated within its send's span (+50 ms) although the capture "
                  f"slept {STALL} s between its clock reads; saw (marker, t - send start): {bad}", flush=True)
            ok = False
        if ok:
            print(f"ok: {len(marks)} marker packets dated within their sends' spans (the capture held up "
                  f"{STALL} s in each conversion)", flush=True)
        return 0 if ok else 1
    finally:
        if cap is not None:
            cap.terminate()
            try:
                cap.wait(CAP)
            except subprocess.TimeoutExpired:
                cap.kill()
                cap.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
