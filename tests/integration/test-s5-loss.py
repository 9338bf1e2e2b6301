#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scenario 5: 30 % loss both ways on the client-router link. 50 mappings are requested;
the MAP requests pcpd sends (captured as they leave it, on the client's c0: the kernel
timestamps each one inside pcpd's send, c0 having no queue) must follow RFC 6887's
schedule: first retransmission after (1+RAND)*3 s, then
(1+RAND)*2*previous, RAND in [-0.1, 0.1] (a non-compounding reading, 3*2^k*(1+RAND), is
accepted too), with randomisation visible across mappings, and the same nonce each time.

Under 30 % loss each way one exchange succeeds with p = 0.49, so after 5 attempts about
3.5 % of the mappings are still waiting; their next attempt comes at ~93 s. Requiring
all 50 under loss would take minutes (P(all 50 by 189 s) = 0.64), so the loss is kept
until every mapping is active or has made its 5th attempt at the router (~45 s), and
then removed. At most 8 of the 50 may have needed a 6th attempt (~1.7 expected): counted
at the router, where a mapping's 6th request means pcpd got no answer to its first 5.
All 50 must then become active, at their next scheduled retransmission.

No wall-clock budget: the phases end on events (requests counted at the router, states
seen by the app) with generous caps, named in the failure messages. The intervals are
measured on the kernel's packet timestamps (pcp-probe.py capture uses SO_TIMESTAMPNS),
not on the time the capture process got round to reading a packet; a loaded machine
delays when this script looks, not those timestamps. (They are moved onto the monotonic
clock through a tight pair of clock reads: a capture preempted between reading one clock
and the other once dated a first retransmission 0.4 s early, a CI failure blamed on pcpd;
probe-clock tests that.) They were measured at the router
(lan0, before the loss) until a CI run saw no request arrive for 0.55 s where ~40 were
due and then all at once, with pcpd neither waiting for a CPU nor blocked: where the
kernel delivers from one namespace to the other is outside pcpd, so the schedule is now
read where pcpd sends, and the router's view is said beside it in a failure message (a
burst at the router that did not leave pcpd as one is the kernel's delivery). The loss
counts (attempts that reached the router) stay at the router. pcpd itself runs at nice
-15, so that other load does not hold its timers back (what is measured is its schedule).

A stall of the machine is told from a stall of pcpd by a canary (canary.py): a process
beside pcpd, in its namespace and at its nice value, that wakes every 20 ms, appends an
octet to a file beside pcpd's log and state (the same filesystem: a disk that makes every
writer wait holds up pcpd's log lines and journal records as much), and records every
wake-up (with its append) that came >= 10 ms late. At each wake-up it also reads how long
pcpd's main thread has waited on a run queue for a CPU (its schedstat): the machine's
hold-up of pcpd itself, which the canary's own wake-ups miss (a loaded machine serves a
process that wakes for microseconds sooner than one with work to do; seen in 5 runs here
under load: 58 waits of pcpd's main thread for a CPU of >= 30 ms, 21 of them in spans where
the canary was held up less than half as long, e.g. 0.21 s against 0.02 s). Beside it runs one
more canary pinned to each CPU: the machine is a virtual one, and its host can take one
virtual CPU away for a while; pcpd's wake-up queued there then waits with no run-queue wait
the guest sees, while a canary on the other CPU wakes on time. (Seen in CI, before the
pinned canaries: no request for 0.55 s where ~40 first retransmissions were due, then
all at once, with the canary, pcpd's run-queue wait and its state clean; pcpd ran no
loss-dependent code then. A CPU taken away is the explanation that fits, not yet proven:
the pinned canaries say it, or rule it out, the next time.) And it notes each wake-up that
found pcpd's main thread blocked in a system call (state D, with its wchan): pcpd's own,
said in the failure messages, never excused. The machine held things up where the canary
or pcpd waited (the union); a schedule violation is the machine's when it held things up
for at least half of the violation's lateness within its span (the
rule: machine_share() below); the first intervals' randomisation and mean, when they fail,
are judged again over the first intervals the machine did not hold back (a stall sends
all those due meanwhile at once). If all that failed was the machine's, the attempt is
"disturbed" and the measured part runs again with fresh mappings (other ports), up to 3
attempts, each reported in the log. A failure the machine did not cause fails the test at
once (pcpd's own); if every attempt was disturbed the test fails too, saying the machine
was too loaded to measure, with the canary's figures. A pass needs one attempt with no
violation and no failed check at all: nothing is excused.

Self-check (by hand, never in CI): PCPIT_S5_INJECT=pcpd stops pcpd alone (SIGSTOP) for
4 s across the first attempt's first retransmissions: the test must fail, naming pcpd;
=machine stops pcpd and the canary together: that attempt is disturbed and the next one
measured; =machine-always does that in every attempt: the test fails as too loaded."""
import os
import signal
import statistics
import sys
import threading
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcpit  # noqa: E402
from pcpit import active  # noqa: E402


N, BASE = 50, 22000
ATTEMPTS = 5           # under loss until every mapping made this many (or is active)
LOSS_CAP, ALL_CAP = 240, 300  # caps for waiting (the events come at ~45 s and ~93 s)
TRIES = 3              # measured parts at most, when the machine disturbed the earlier ones
SHARE = 0.5            # a violation is the machine's when it held up the canary or pcpd this share of it
NICE = -15
INJECT = os.environ.get("PCPIT_S5_INJECT", "")  # self-check only (see above)
t = pcpit.Test("scenario 5: 30% loss both ways, 50 mappings, RFC retransmission schedule")
if INJECT not in ("", "pcpd", "machine", "machine-always"):
    t.require(False, f"PCPIT_S5_INJECT: expected pcpd, machine or machine-always, saw {INJECT!r}")
# the schedule measured is pcpd's own: a shared machine's other load must not starve its
# timers (seen: load 7 on 2 cores held every first retransmission back into one burst)
t.start_pcpd(nice=NICE)
app = t.app()
cap = t.capture("lan0", 3600)
# pcpd's own transmissions, as they leave it: the schedule is measured here (see the docstring)
ccap = t.capture("c0", 3600, ns=t.nsc)
# the canary at pcpd's nice value: what starves it would starve pcpd alike; and pcpd's own
# waits for a CPU, read by the canary, are the machine's too
canary = t.canary(nice=NICE, watch=t.pcpd.pid)

TOL = 0.15
# A send may come late, never early: pcpd's timers fire late when its CPU is busy (the
# ASan+UBSan build on 2 shared cores delayed single sends by ~0.3 s). Lateness up to LATE is
# allowed above each bound; a schedule computed wrongly (no doubling, no randomisation, an
# early send) still fails, and a held-up send is judged by the canary (machine_share()).
LATE = 1.0


def readings(j, prev):
    """the allowed [lo, hi] of the j-th retransmission interval without the LATE allowance,
    for each accepted reading of RFC 6887 (compounding, non-compounding)"""
    if j == 0:
        return [(2.7 - TOL, 3.3 + TOL)]
    return [((1.8 - 0.05) * prev - TOL, (2.2 + 0.05) * prev + TOL), (3 * 2 ** j * 0.9 - TOL, 3 * 2 ** j * 1.1 + TOL)]


def in_schedule(j, x, prev):
    return any(lo <= x <= hi + LATE for lo, hi in readings(j, prev))


def machine_share(ts, j, holdups):
    """The rule that tells the machine's stall from pcpd's, for the violating interval j of
    a mapping's sends ts: returns (lateness, seconds the machine held up the canary or pcpd in
    its span: canary.held_up(), the union of the canary's hold-ups and pcpd's waits for a CPU).
    pcpd arms each retransmission from the moment it sent (pcp-engine.c), so a held-up send
    makes its own interval too long by its lateness, and can make the next one look too
    short against the doubled long one. Too long: lateness = interval - hi, span = from when
    it was due at the latest (a + hi) to when it came. Too short by s = lo - interval:
    lateness = s / 2.25 (the least delay of the previous send that explains it), span = the
    previous interval; for the first interval lateness = s (a send held up after pcpd read
    the time), span = the 2 s before it. Of the readings, the one that needs the least
    lateness counts. The violation is the machine's when held-up >= SHARE * lateness."""
    a, b = ts[j], ts[j + 1]
    x = b - a
    res = []
    for lo, hi in readings(j, ts[j] - ts[j - 1] if j > 0 else None):
        if x > hi:
            res.append((x - hi, canary.held_up(a + hi, b, holdups)))
        elif j > 0:
            res.append(((lo - x) / 2.25, canary.held_up(ts[j - 1], a, holdups)))
        else:
            res.append((lo - x, canary.held_up(a - 2 * (lo - x), a, holdups)))
    return min(res)


def stalls(ins, t0, holdups, gap=1.0, burst=10, within=0.05):
    """pcpd's sends that came in a burst after a silence: its main loop was held up (seen:
    several seconds in a state file fsync() under I/O load) and then fired every timer due
    meanwhile at once. Said in the failure message with the canary's hold-up in the same
    silence (a stall of pcpd's own leaves the canary running), and with what pcpd's main
    thread did in it: how long it ran on a CPU (its loop busy) and the system calls other
    than its poll it was found asleep in (x86-64 numbers: 202 futex, waiting for a thread)."""
    ts = sorted(ins)
    res = []
    for i in range(1, len(ts)):
        if ts[i] - ts[i - 1] >= gap and sum(1 for x in ts[i:i + burst] if x - ts[i] <= within) >= burst:
            a, b = ts[i - 1], ts[i]
            res.append((round(a - t0, 2), round(b - t0, 2),
                        f"machine held up the canary or pcpd {canary.held_up(a, b, holdups):.2f} s (pinned per CPU, held up and of it queued: "
                        f"{canary.cpu_holdups(a, b)}); pcpd ran "
                        f"{canary.busy(a, b):.2f} s, asleep outside its poll: {canary.sleeps(a, b) or 'never'}"))
    return res


def epoch_story(pkts, t0, ports):
    """What tells a reset of the server's own epoch (RFC 6887 §8.5: then pcpd recreating
    the mappings at once is right, and a resend the schedule check sees is no
    retransmission) from pcpd deciding on its own that the server lost its state:
    pcpd's epoch-reset log lines (wall clock: t0 on it given), the server's epoch against
    the router's capture clock over the attempt (t - epoch stays within ~1 s, the epoch's
    resolution, while the server keeps its state), and the router's view of the given ports
    (s since t0, direction, result, epoch). Said with a schedule failure, so that the next
    one explains itself."""
    with open(os.path.join(t.lab_dir, "pcpd.log"), errors="replace") as f:
        resets = [line.strip() for line in f if "lost its mappings" in line or "ANNOUNCE" in line]
    offs = [(p["t"] - p["epoch"], p["t"]) for p in pkts
            if p.get("dir") == "out" and p.get("r") is True and "epoch" in p and p["t"] >= t0 - 1]
    if offs:
        lo, hi = min(offs), max(offs)
        # the first response whose offset left the first one's 1 s band: where the epoch moved
        moved = next(((round(x - offs[0][0], 2), round(tt - t0, 2)) for x, tt in offs
                      if abs(x - offs[0][0]) > 1.05), None)
        band = (f"server epoch against the router's clock over {len(offs)} responses: spread "
                f"{hi[0] - lo[0]:.2f} s (up to ~1 s while the server keeps its state)"
                + (f"; moved by {moved[0]} s in the response at {moved[1]} s" if moved else ""))
    else:
        band = "no responses with an epoch captured"
    seen = {port: [(round(p["t"] - t0, 2), p.get("dir"), p.get("result_name", "req"), p.get("epoch"))
                   for p in pkts if p.get("iport") == port and p["t"] >= t0 - 1][:10] for port in ports}
    # what the router sent unasked (to port 5350: a PCP ANNOUNCE or a NAT-PMP address
    # notification), which makes pcpd ask for every mapping again (RFC 6887 §14.1.3)
    unasked = [(round(p["t"] - t0, 2), p.get("ver"), p.get("opcode"), p.get("epoch"), p.get("dst"))
               for p in pkts if p.get("dir") == "out" and p.get("dport") == 5350 and p["t"] >= t0 - 1]
    return (f"pcpd's epoch-reset/ANNOUNCE log lines: {resets[:4] or 'none'} (t0 = "
            f"{time.strftime('%H:%M:%S', time.localtime(time.time() - (time.monotonic() - t0)))}); "
            f"router's unsolicited datagrams to port 5350 (s since t0, version, opcode, epoch, to): "
            f"{unasked[:8] or 'none'}; {band}; at the router for {ports}: {seen}")


def inject(t0, k):
    """self-check: SIGSTOP pcpd (and the canary: the whole machine) across the first
    retransmissions (due 2.7-3.3 s after the adds) for 4 s, from 2.5 s after the first add"""
    if not INJECT or (k > 0 and INJECT != "machine-always"):
        return None
    victims = [t.pcpd] + ([canary.p] + [x[3] for x in canary.pinned] if INJECT.startswith("machine") else [])
    with open(f"/proc/{t.pcpd.pid}/comm") as f:
        t.require(f.read().strip() == "pcpd", f"inject: expected pid {t.pcpd.pid} to be pcpd itself")

    def run():
        time.sleep(max(0.0, t0 + 2.5 - time.monotonic()))
        for p in victims:
            p.send_signal(signal.SIGSTOP)
        pcpit.log(f"inject: SIGSTOP {INJECT} (pids {[p.pid for p in victims]}) for 4 s")
        time.sleep(4.0)
        for p in victims:
            p.send_signal(signal.SIGCONT)
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def attempt(k):
    """one measured part on fresh ports; returns ("pass" | "fail" | "disturbed", what)"""
    base = BASE + 100 * k
    keys = [f"m{k}x{i}" for i in range(N)]
    pcpit.log(f"--- attempt {k + 1}/{TRIES}: ports {base}-{base + N - 1}")
    t.lab("loss", "30")
    t0 = time.monotonic()
    th = inject(t0, k)
    for i in range(N):
        app.send(f"add {keys[i]} tcp {base + i} 0 ipv4")

    def n_active():
        return sum(1 for key in keys if active(app.state(key)))

    def map_requests(pkts, direction="in"):
        """MAP requests from the client (create/renew, lifetime > 0) by internal port: seen
        coming in at the router (direction "in"), or leaving the client ("out", its capture)"""
        per = {}
        for p in pkts:
            if p.get("dir") == direction and p.get("opcode") == 1 and p.get("r") is False and p.get("lifetime", 0) > 0 \
                    and base <= p.get("iport", 0) < base + N and p["t"] >= t0 - 1:
                per.setdefault(p["iport"], []).append(p)
        return per

    def loss_phase_over():
        per = map_requests(cap.packets())
        return all(active(app.state(keys[i])) or len(per.get(base + i, [])) >= ATTEMPTS for i in range(N))

    t.wait_until(loss_phase_over, LOSS_CAP, "every mapping active or at its 5th attempt", fatal=False, interval=0.5)
    t.check(loss_phase_over(), f"expected every mapping active or seen making its {ATTEMPTS}th attempt at the router "
                               f"under loss (cap {LOSS_CAP} s), saw {n_active()} active, requests per port "
                               f"{ {port: len(r) for port, r in sorted(map_requests(cap.packets()).items())} }")
    if th:
        th.join()
    k_loss = n_active()
    t_off = time.monotonic()
    t.lab("loss", "off")
    pcpit.log(f"{k_loss}/{N} active when the loss was removed ({t_off - t0:.0f} s, script's clock, information only)")
    t.wait_until(lambda: n_active() == N, ALL_CAP, "all mappings active", fatal=False, interval=0.5)
    n_ok = n_active()
    pkts = [p for p in cap.packets() if p["t"] >= t0 - 1]
    # a 6th request means pcpd got no answer to the first 5 (same nonce: a retransmission)
    per_port = map_requests(pkts)
    needed_more = sorted(port for port, r in per_port.items() if len(r) > ATTEMPTS)
    t.check(N - len(needed_more) >= 42,
            f"expected at least 42 of {N} mappings to get through in {ATTEMPTS} attempts under 30% loss both ways "
            f"(expected ~48), counted at the router: {len(needed_more)} needed more ({needed_more})")
    stuck = [base + i for i in range(N) if not active(app.state(keys[i]))]
    # what the router saw and said for the stuck ones (s since the first request, direction, result)
    seen = {port: [(round(p["t"] - t0, 1), p["dir"], p.get("result_name", "req")) for p in pkts
                   if p.get("iport") == port][-4:] for port in stuck[:4]}

    def router_failed(port):
        """miniupnpd 2.3.1's nftables backend sometimes loses its netlink socket for good
        ("mnl_cb_run returned -1", "send_batch failed") while the lab changes the router's
        ruleset for the loss: it then answers NO_RESOURCES to whatever it cannot add. That is
        the router refusing, not pcpd failing: accepted only when pcpd reports exactly that
        (failed, Error NO_RESOURCES) and asks again no sooner than the error lifetime (30 s)."""
        with open(os.path.join(t.lab_dir, "miniupnpd.log"), errors="replace") as f:
            log = f.read()
        if "send_batch failed" not in log or f"failed to add mapping TCP {port}->" not in log:
            return False
        st = app.state(keys[port - base])
        if not st or st.get("State") != "failed" or st.get("Error") != "NO_RESOURCES":
            return False
        reqs = [p["t"] for p in pkts if p.get("iport") == port and p.get("dir") == "in" and p.get("r") is False]
        refused = [p["t"] for p in pkts if p.get("iport") == port and p.get("result_name") == "NO_RESOURCES"]
        after = [x for x in reqs if refused and x > refused[0] + 0.5]
        return bool(refused) and all(b - a >= 25 for a, b in zip(after, after[1:]))

    router_side = [port for port in stuck if router_failed(port)]
    if stuck and router_side == stuck and len(stuck) <= 3:
        pcpit.log(f"not active: {stuck}: miniupnpd's nftables backend failed to add their rules (NO_RESOURCES); "
                  f"pcpd reported that and retried at the error lifetime: not counted against pcpd")
        n_ok += len(stuck)
    t.check(n_ok == N, f"expected all {N} mappings active after the loss was removed (cap {ALL_CAP} s), "
                       f"saw {n_ok}; not active: {stuck}; last packets at the router for them: {seen}; "
                       f"app state: {[pcpit.describe(app.state(keys[p - base])) for p in stuck[:2]]}")

    # MAP requests from the client (create/renew, lifetime > 0) under loss, by internal port,
    # as they left pcpd: timestamped by the client's kernel in pcpd's send (c0 has no queue),
    # so a delivery the kernel held back on the way to the router is not taken for pcpd's
    cpkts = [p for p in ccap.packets() if p["t"] >= t0 - 1]
    sends, nonces = {}, {}
    for port, reqs in map_requests(cpkts, "out").items():
        for p in reqs:
            if p["t"] < t_off:
                sends.setdefault(port, []).append(p["t"])
                nonces.setdefault(port, set()).add(p["nonce"])
    t.check(len(sends) == N, f"capture: expected MAP requests for all {N} ports leaving the client, saw {len(sends)}")
    pcpit.log(f"MAP requests under loss: {sum(len(v) for v in sends.values())} left the client, "
              f"{sum(1 for reqs in per_port.values() for p in reqs if p['t'] < t_off)} came in at the router "
              f"(information only: one in flight as the loss ended may fall on either side)")
    bad_nonce = {port: n for port, n in nonces.items() if len(n) != 1}
    t.check(not bad_nonce, f"expected one nonce per mapping across retransmissions, saw several for {bad_nonce}")

    holdups = canary.holdups()
    t.require(canary.alive(), f"expected the canary (canary.py, {canary.out}) to run through the attempt, saw it exit "
                              f"with status {canary.p.poll()}")
    firsts, bad = [], []
    for port, ts in sorted(sends.items()):
        iv = [b - a for a, b in zip(ts, ts[1:])]
        for j, x in enumerate(iv):
            if j == 0:
                firsts.append((x, ts[0], ts[1]))
            if not in_schedule(j, x, iv[j - 1] if j else None):
                late, held = machine_share(ts, j, holdups)
                bad.append((port, j, round(x, 3), [round(y, 2) for y in iv], round(late, 2), round(held, 2)))
                break
    n_iv = sum(max(0, len(ts) - 1) for ts in sends.values())
    fx = [x for x, _, _ in firsts]
    pcpit.log(f"{n_iv} retransmission intervals from {len(sends)} mappings; first intervals: "
              f"min {min(fx, default=0):.3f} max {max(fx, default=0):.3f}")
    t.check(n_iv >= 20, f"capture: expected at least 20 retransmissions under 30% loss for {N} mappings, saw {n_iv}")

    own_h = canary.own_holdups()
    in_win = [(d, w) for d, w in own_h if w >= t0 and d <= t_off]
    waits = [(d, w) for d, w in canary.watched_waits() if w >= t0 and d <= t_off]
    blocked = [(round(x - t0, 2), wchan) for x, wchan in canary.blocked() if t0 <= x <= t_off]
    fig = (f"canary over the attempt's {t_off - t0:.0f} s under loss: held up {canary.held_up(t0, t_off, own_h):.2f} s "
           f"in all, {len(in_win)} wake-ups >= 10 ms late, the longest "
           f"{max((w - d for d, w in in_win), default=0):.2f} s; pcpd's main thread waited for a CPU "
           f"{canary.held_up(t0, t_off, waits):.2f} s in {len(waits)} waits >= 10 ms, the longest "
           f"{max((w - d for d, w in waits), default=0):.2f} s; found blocked in a system call (state D) at "
           f"{len(blocked)} of the canary's wake-ups (s since the first add, wchan): {blocked[:8]}")
    pcpit.log(fig)
    ins = [x for ts in sends.values() for x in ts]
    # the same at the router: a burst there that did not leave pcpd as one is the kernel's
    # delivery (e.g. its network backlog waiting for a CPU), said for the record
    router_ins = [p["t"] for reqs in per_port.values() for p in reqs if p["t"] < t_off]
    pcpd_own = [v for v in bad if v[5] < SHARE * v[4]]
    what = (f"retransmission schedule: expected first interval in [2.7, 3.3] s and each next one "
            f"(1±0.1)*2*previous (±{TOL}s capture slack, up to {LATE}s late); violations (port, index, "
            f"interval, all intervals, lateness, machine's hold-up in its span: the canary's or pcpd's wait "
            f"for a CPU): {bad[:8]}; bursts of >= 10 "
            f"requests after a silence of >= 1 s as they left pcpd (s since the first add, silence "
            f"from..to): {stalls(ins, t0, holdups)}; at the router: {stalls(router_ins, t0, holdups)}; {fig}")
    if pcpd_own:
        own = "all of them" if len(pcpd_own) == len(bad) else f"{len(pcpd_own)} of the {len(bad)}: {pcpd_own[:8]}"
        return "fail", (f"{what}; pcpd's own violations (the machine held up the canary beside it or pcpd less than "
                        f"{SHARE:.0%} of their lateness in their span): {own}; "
                        f"{epoch_story(pkts, t0, [v[0] for v in pcpd_own[:2]])}")

    # the first intervals' randomisation and mean: a stall of the machine sends every first
    # retransmission due meanwhile at once, which hides the randomisation and moves the mean.
    # So when either fails over all first intervals, it is judged again over those the canary
    # did not see held back (held up < SHARE of the time from the earliest moment the send was
    # due, a + 2.55 s, to when it came): failing there too is pcpd's own, else disturbed.
    def first_checks(xs):
        if len(xs) < 10:
            return []
        spread, mean = max(xs) - min(xs), statistics.mean(xs)
        res = []
        if spread < 0.05:
            res.append(f"expected randomised first intervals (RAND in ±0.1 gives a spread of up to 0.6 s), saw "
                       f"{len(xs)} of them all within {spread:.3f} s")
        if not 2.8 <= mean <= 3.2:
            res.append(f"expected the mean first interval near 3 s (2.8-3.2), saw {mean:.3f} s over {len(xs)} of them")
        return res

    def held_back(a, b):
        w = b - (a + 2.7 - TOL)
        return w > 0 and canary.held_up(a + 2.7 - TOL, b, holdups) >= SHARE * w

    first_bad = first_checks(fx)
    if first_bad:
        clean = [x for x, a, b in firsts if not held_back(a, b)]
        own = first_checks(clean)
        if own:
            again = ("the machine held none of them back (the canary, pcpd's waits for a CPU)"
                     if len(clean) == len(fx) else
                     f"and over the {len(clean)} the machine did not hold back: {'; '.join(own)}")
            return "fail", f"{'; '.join(first_bad)}; {again}: pcpd's own; {fig}"
        first_bad.append(f"but over the {len(clean)} first intervals the machine did not hold back: "
                         + ("fewer than 10" if len(clean) < 10 else "ok"))
    if bad or first_bad:
        return "disturbed", (f"{what if bad else fig}{'; ' + '; '.join(first_bad) if first_bad else ''}: the machine "
                             f"held up the canary or pcpd (waiting for a CPU) for at least {SHARE:.0%} of the lateness "
                             f"of every violation, in its span (the machine stalled, not pcpd alone)")
    pcpit.log(f"ok: expected randomised first intervals around 3 s (spread >= 0.05 s, mean 2.8-3.2 s): spread "
              f"{max(fx, default=0) - min(fx, default=0):.3f} s, mean {statistics.mean(fx) if fx else 0:.3f} s")
    return "pass", what.split("; violations")[0]


def release_all(k):
    """the attempt's mappings released, so that the next one starts from none"""
    evs = {f"m{k}x{i}": app.release(f"m{k}x{i}") for i in range(N)}
    bad = {key: ev for key, ev in evs.items() if ev is None or ev["ev"] != "released"}
    t.check(not bad, f"expected Release() of the attempt's {N} mappings to succeed before the next attempt, "
                     f"saw {len(bad)} not: {dict(list(bad.items())[:4])}")
    # the router's rules gone before the lab changes its ruleset for the next loss: a
    # precaution (miniupnpd 2.3.1's nftables backend was seen to lose its netlink socket
    # while the lab changed the ruleset, and a retry follows 50 deletions at once)
    base = BASE + 100 * k
    left = t.wait_until(lambda: not [r for r in t.dnat() if base <= r[3] < base + N], pcpit.CAP,
                        "the released mappings' rules to go", fatal=False, interval=0.5)
    t.check(left, f"expected the router's DNAT rules of the released mappings to go (cap {pcpit.CAP} s), "
                  f"saw {sorted(r for r in t.dnat() if base <= r[3] < base + N)[:4]}")


disturbed = []
for k in range(TRIES):
    n_fail = len(t.failures)
    verdict, what = attempt(k)
    if len(t.failures) > n_fail:
        pcpit.log(f"attempt {k + 1}: behaviour checks failed (not timing): no further attempt; timing: {verdict}")
        if verdict == "fail":
            t.check(False, what)
        break
    if verdict == "pass":
        pcpit.log(f"attempt {k + 1}: measured undisturbed; ok: {what}")
        break
    if verdict == "fail":
        t.check(False, what)
        break
    disturbed.append(what)
    pcpit.log(f"attempt {k + 1}: DISTURBED{', measured again' if k + 1 < TRIES else ''}: {what}")
    if k + 1 < TRIES:
        release_all(k)
else:
    t.check(False, f"the machine was too loaded to measure pcpd's retransmission schedule: all {TRIES} attempts "
                   f"were disturbed (the canary beside pcpd, at its nice value, or pcpd waiting for a CPU, was held "
                   f"up during every violation); "
                   + " | ".join(f"attempt {i + 1}: {w}" for i, w in enumerate(disturbed)))
t.done()
