#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 3: the router restarts (miniupnpd stopped, its rules flushed as by a reboot,
started again): (a) lease file kept, epoch reset; (b) lease file removed, epoch reset;
(c) lease file removed and system_uptime=yes, so the epoch does not go back and only the
ANNOUNCE reveals the restart. Each time, every mapping works again (DNAT rule + traffic)
with the same external ports, and the app saw PropertiesChanged for each mapping.

The pace is RFC 6887's and is measured on the packets the router's lan0 saw (kernel
receive timestamps of pcp-probe.py's capture), not on this script's clock: the restarted
router sends an unsolicited ANNOUNCE (with a reset epoch in a and b, a later one in c),
and each mapping's MAP request comes after it, within the random 0-5 s delay of RFC 6887
§14.1.3 (+ SLACK for pcpd to read the ANNOUNCE and arm its timer), asking for the same
external port, and the router answers it SUCCESS with that port, before the app's
PropertiesChanged (pcpd reports a refresh the router granted, not its old state). A
loaded machine (or memcheck) delays when this script looks, not the packets' timestamps;
waiting for the outcome has a generous cap (CAP), named in the failure message.

The capture is read after Capture.sync() only: the capture process prints a packet some
time after the router sent it, and in case a (the lease file brings the rules back at
once, so nothing is waited for but pcpd's PropertiesChanged) the router's last SUCCESS
is only milliseconds old when the app reports the refresh; read without the sync it was
missing under load ("expected the router to answer SUCCESS ..., saw []").
pcpd's log says why it recreated the mappings, once per episode: the restarted router's
ANNOUNCE is an epoch reset by pcpd's rule in every case (a and b go back to 0, c jumps to
the system's uptime, far ahead of the seconds that passed), so the epoch reset is logged
("PCP server ROUTER lost its mappings", in case a; b and c follow within the minute that
keeps an episode going, so they are not logged again unless the machine was slow enough to
end it), and never "announced a change": miniupnpd sends no NAT-PMP address notification
when it starts, and that line is for ANNOUNCEs with a consistent epoch.

Self-check by hand: PCPIT_S3_INJECT=capture-stall stops the capture process (SIGSTOP)
from before the restart of case a until just before that sync: the test must still pass."""
import os
import re
import signal
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active, describe  # noqa: E402

CAP = 90.0            # waiting for an event (not a speed: a passing run does not wait for it)
ANNOUNCE_DELAY = 5.0  # RFC 6887 §14.1.3: renew after a random 0-5 s
SLACK = 1.0           # pcpd reading the ANNOUNCE and arming the timer; capture points
MAPS = {"tcp": ("tcp", 21201, 31201), "udp": ("udp", 21202, 31202)}
PROTO = {"tcp": 6, "udp": 17}
AGE = 3.0             # the mappings' age at the restart (see below)
INJECT = os.environ.get("PCPIT_S3_INJECT", "")  # "capture-stall": self-check of Capture.sync()
ROUTER = os.environ["ROUTER4"]
LOST = re.escape(f"PCP server {ROUTER} lost its mappings")
CHANGED = re.escape(f"PCP server {ROUTER} announced a change")
consistent_announces = []  # cases whose ANNOUNCE pcpd takes as no reset
t = pcpit.Test("scenario 3: router restart (leases kept / removed / system_uptime=yes)")
cap = t.capture("lan0", seconds=3600)
t.start_pcpd()
wan = t.wan_addr()
client = os.environ["CLIENT4"]
app = t.app()
ext = {}
for key, (proto, port, sugg) in MAPS.items():
    app.add(key, proto, port, sugg)
    s = app.wait_state(key, active, CAP)
    t.require(s is not None, f"{key}: expected State 'active' (cap {CAP:.0f} s), saw {describe(app.state(key))}")
    ext[key] = s["ExternalPort"]
    t.check(ext[key] == sugg, f"{key}: expected the suggested external port {sugg} (free at the router), saw {ext[key]}")


def working(key):
    proto, port, _ = MAPS[key]
    return (proto, ext[key], client, port) in t.dnat() and t.reach(proto, wan, ext[key], app, port, timeout=3)


def is_announce(p):
    # the router's unsolicited ANNOUNCE (a response, to the all-hosts group on 5350), IPv4:
    # the mappings are IPv4 ones, on pcpd's IPv4 server
    return p.get("dir") == "out" and p.get("ver") == 2 and p.get("opcode") == 0 and p.get("r") is True \
        and p.get("dport") == 5350 and ":" not in p.get("dst", ":")


def last_epoch(pkts):
    """the router's last PCP response to the client: (epoch, router's timestamp)"""
    eps = [(p["epoch"], p["t"]) for p in pkts if p.get("dir") == "out" and p.get("ver") == 2 and p.get("r") is True
           and p.get("dst") == client and "epoch" in p]
    return eps[-1] if eps else None


def epoch_consistent(prev, cur):
    """RFC 6887 §8.5 on (epoch, router's timestamp) pairs: False when the server's epoch
    says it lost its state. The epoch counts whole seconds, so a restart is told from
    continuity only by comparing it with the time that passed (the client's delta):
    an epoch of 0 before and 0 after is a reset once more than ~2.2 s passed."""
    server_delta = cur[0] - prev[0]
    client_delta = cur[1] - prev[1]
    if cur[0] + 1 < prev[0]:
        return False
    return client_delta + 2 >= server_delta - server_delta / 16 and server_delta + 2 >= client_delta - client_delta / 16


for label, args, epoch_resets in (("a: restart, lease file kept", [], True),
                                  ("b: restart, lease file removed", ["--drop-leases"], True),
                                  ("c: restart, lease file removed, system_uptime=yes",
                                   ["--drop-leases", "--system-uptime", "yes"], False)):
    pcpit.log(f"--- case {label}")
    # pcpd publishes ExpiresAt only when it moves by more than 1 s (renewals jitter): a
    # refresh within a second of the last grant changes nothing an app could see; and an
    # epoch reset is visible (RFC 6887 §8.5) only once more than ~2.2 s passed since the
    # last response (a router restarted within its first second of life answered epoch 0
    # before and after). Let the mappings age AGE s, as real ones have, so the refresh
    # and the reset after the restart are visible. (Not a synchronisation: the time
    # passing is the precondition.)
    time.sleep(AGE)
    cap.sync()
    before = cap.packets()
    epoch_before = last_epoch(before)
    mark = app.mark()
    stalled = INJECT == "capture-stall" and label.startswith("a:")
    if stalled:
        pcpit.log("self-check: the capture process is stopped until the capture is read")
        os.kill(cap.p.pid, signal.SIGSTOP)
    t.lab("upnpd-restart", *args)
    t0 = time.monotonic()
    pending = set(MAPS)

    def recovered():
        for key in list(pending):
            if working(key):
                pcpit.log(f"{key} works again (seen {time.monotonic() - t0:.1f} s after the restart command)")
                pending.discard(key)
        return not pending

    t.wait_until(recovered, CAP, "every mapping to work again", fatal=False, interval=0.3)
    t.check(not pending, f"case {label}: expected every mapping to work again (DNAT rule with the same external "
                         f"port + traffic from wan) (cap {CAP:.0f} s), still broken: "
                         f"{ {k: (MAPS[k][0], ext[k]) for k in pending} }, router rules {sorted(t.dnat())}")
    refreshed = {}
    for key in MAPS:
        ev = app.wait(lambda e: e["ev"] == "props" and e.get("key") == key, CAP, since=mark)
        t.check(ev is not None, f"case {label}: expected a PropertiesChanged for the {key} mapping after the restart "
                                f"(the mapping was refreshed) (cap {CAP:.0f} s), saw none")
        refreshed[key] = ev
        s = app.state(key)
        t.check(active(s) and s.get("ExternalPort") == ext[key],
                f"case {label}: expected {key} active with ExternalPort {ext[key]}, saw {describe(s)}")

    # what the router saw and said since the restart, on its packets' own timestamps: all
    # of it, up to now (the router's answers came before pcpd's PropertiesChanged, but the
    # capture process may not have printed them yet)
    if stalled:
        os.kill(cap.p.pid, signal.SIGCONT)
    cap.sync()
    pkts = cap.packets()[len(before):]
    ann = [p for p in pkts if is_announce(p)]
    t.check(bool(ann), f"case {label}: expected the restarted router to send an unsolicited ANNOUNCE on lan0, "
                       f"saw none in {len(pkts)} packets")
    if not ann:
        continue
    a0 = ann[0]
    if epoch_before is not None and epoch_consistent(epoch_before, (a0["epoch"], a0["t"])):
        consistent_announces.append(label)
    if label.startswith("a:"):
        # the first restart of the run starts an episode: its epoch reset is logged (when
        # pcpd reads the ANNOUNCE; with the lease file kept the rules are back before that)
        lost = t.wait_until(lambda: t.pcpd_log_lines(LOST), CAP, f"pcpd's log line '{LOST}'", fatal=False)
        t.check(lost is not None and len(lost) == 1 and "ANNOUNCE" in lost[0],
                f"case {label}: expected pcpd to log once that {ROUTER} lost its mappings (epoch reset, ANNOUNCE) "
                f"(cap {CAP:.0f} s), saw {lost}")
    if epoch_before is not None:
        now = (a0["epoch"], a0["t"])
        seen = (f"saw epoch {a0['epoch']} {a0['t'] - epoch_before[1]:.1f} s (router's timestamps) after epoch "
                f"{epoch_before[0]}")
        pcpit.log(f"ANNOUNCE: {seen[4:]}")
        if epoch_resets:
            t.check(not epoch_consistent(epoch_before, now),
                    f"case {label}: lab: expected the ANNOUNCE's epoch to say the router lost its state "
                    f"(RFC 6887 §8.5), {seen}")
        else:
            # (the epochs before were miniupnpd's own uptime, now the system's: a jump forward)
            t.check(a0["epoch"] >= epoch_before[0],
                    f"case {label}: lab: expected the ANNOUNCE's epoch not to go back (system_uptime=yes), {seen}")
    for key, (proto, port, _) in MAPS.items():
        reqs = [p for p in pkts if p.get("dir") == "in" and p.get("ver") == 2 and p.get("opcode") == 1
                and p.get("r") is False and p.get("iport") == port and p.get("proto") == PROTO[proto]
                and p.get("lifetime", 0) > 0 and p["t"] >= a0["t"]]
        t.check(bool(reqs), f"case {label}: {key}: expected a MAP request for {proto}/{port} after the ANNOUNCE, "
                            f"saw none")
        if not reqs:
            continue
        r0 = reqs[0]
        delay = r0["t"] - a0["t"]
        pcpit.log(f"{key}: MAP request {delay:.2f} s after the ANNOUNCE (router's timestamps)")
        t.check(0 <= delay <= ANNOUNCE_DELAY + SLACK,
                f"case {label}: {key}: expected the MAP request within the RFC 6887 §14.1.3 random delay of "
                f"0-{ANNOUNCE_DELAY:.0f} s (+{SLACK:.0f} s) after the ANNOUNCE, by the router's packet timestamps, "
                f"saw {delay:.2f} s")
        t.check(r0.get("eport") == ext[key], f"case {label}: {key}: expected the MAP request to suggest the external "
                                             f"port it had ({ext[key]}), saw {r0.get('eport')}")
        ok = [p for p in pkts if p.get("dir") == "out" and p.get("ver") == 2 and p.get("opcode") == 1
              and p.get("r") is True and p.get("iport") == port and p.get("proto") == PROTO[proto]
              and p["t"] >= r0["t"] and p.get("result_name") == "SUCCESS"]
        t.check(bool(ok) and ok[0].get("eport") == ext[key],
                f"case {label}: {key}: expected the router to answer SUCCESS with external port {ext[key]}, saw "
                f"{[(p.get('result_name'), p.get('eport')) for p in ok[:2]]}")
        # the app's event time and the capture's packet times are both CLOCK_MONOTONIC
        if ok and refreshed[key] is not None:
            pcpit.log(f"{key}: PropertiesChanged {refreshed[key]['t'] - ok[0]['t']:.3f} s after the router's SUCCESS")
            t.check(ok[0]["t"] <= refreshed[key]["t"],
                    f"case {label}: {key}: expected pcpd's PropertiesChanged after the router's SUCCESS (pcpd "
                    f"reports the refresh the router granted), saw it {ok[0]['t'] - refreshed[key]['t']:.3f} s "
                    f"before the SUCCESS: {refreshed[key]['changed']}")
cap.stop()
# (see the top) every restart an epoch reset: logged once per episode, never as a change
# announced without one
lost, changed = t.pcpd_log_lines(LOST), t.pcpd_log_lines(CHANGED)
t.check(1 <= len(lost) <= 3, f"expected pcpd to log {ROUTER}'s epoch reset once per episode (1 to 3 times for "
                             f"3 restarts), saw {lost}")
if consistent_announces:
    pcpit.log(f"ANNOUNCE with a consistent epoch in {consistent_announces}: pcpd's 'announced a change' lines "
              f"{changed} (not checked)")
else:
    t.check(not changed, f"expected no 'announced a change' line for {ROUTER} (every ANNOUNCE was an epoch "
                         f"reset), saw {changed}")
t.done()
