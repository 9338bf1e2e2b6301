#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""canary.py - tells a stall of the machine from a stall of the process under test.

Wakes every --period seconds on CLOCK_MONOTONIC (absolute deadlines, so lateness does not
accumulate) and prints, as JSON lines flushed at once, every wake-up that came at least
--record seconds after its deadline: {"due": monotonic deadline, "woke": monotonic time it
ran}. The canary was held up (could not run) during [due, woke]. Run beside the process
under test, in its namespace and at its nice value: a hold-up the canary saw too is the
machine's (every runnable process starved), one it did not see is the process's own.
First line {"canary": "started", "t": ..., "period": ...}.

With --append FILE it also appends one octet to FILE at each wake-up (FILE on the
filesystem the process under test logs and keeps its state on) and counts the time the
append took as held up: a filesystem that makes every writer wait (ext4 behind another
process's fsync-forced journal commits on a shared disk) holds up a process whose main loop
appends a log line or a journal record, and is the machine's, not the process's.

With --watch PID it also reads, at each wake-up, how long that process's main thread has
waited on a run queue so far (/proc/PID/task/PID/schedstat, its second field: time it was
runnable and got no CPU) and prints each growth of at least --record since the last
wake-up: {"wait": [from, to, seconds]}, the process held up by the machine within [from,
to] (monotonic). That is the machine's hold-up of the process itself, not of a stand-in: a
loaded machine serves a process that wakes for a few microseconds every 20 ms (this one)
sooner than one that then has work to do, and their wake-ups need not coincide. It also
prints {"blocked": t, "wchan": ...} for each wake-up that found that thread in
uninterruptible sleep (state D: a system call waiting for the disk), which is the
process's own (its loop made a call that waits), told in failure messages, never excused.
What a stall of the process's own was, the canary sees too: {"ran": [from, to, seconds]}
for each wake-up since which the thread ran on a CPU for at least --record (schedstat's
first field: its loop busy, not waiting), and {"sleep": t, "syscall": N} for each wake-up
that found it asleep (state S) in a system call other than the poll of its main loop
(/proc/PID/task/PID/syscall: e.g. a futex, waiting for another thread). Both are the
process's own. Watching ends quietly when the process is gone.

With --cpu N it runs on CPU N only. The machine is a virtual one: its host can take a
virtual CPU away for a while (another guest's turn), and a process whose wake-up is queued
on that CPU waits for it without waiting on any run queue the guest sees, while a canary on
the other CPU wakes on time. One pinned canary per CPU sees each CPU's hold-ups, and says
with each late wake-up how long of it it waited on the guest's run queue ("queued": its own
schedstat): the rest is time the CPU itself was not there (its timer interrupt late, which
no process of the guest causes). The watch
prints {"on_cpu": [t, N]} whenever the watched thread is found to have last run on another CPU
than at the look before (its poll's timeout is queued on the CPU it last ran on)."""
import argparse
import json
import os
import signal
import sys
import time


class Watch:
    """the watched process's main thread: its run-queue wait (schedstat) and state, per wake-up"""

    # the system calls a main loop sleeps in between events (x86-64 and generic numbers):
    # poll, ppoll, epoll_wait, epoll_pwait, epoll_pwait2 (x86-64); ppoll, epoll_pwait (generic)
    LOOP_SLEEPS = {"x86_64": {7, 271, 232, 281, 441}}.get(os.uname().machine, {73, 22, 441})

    def __init__(self, pid, record):
        self.base = f"/proc/{pid}/task/{pid}"
        self.record = record
        self.t = time.monotonic()
        self.ran, self.wait = self.read_schedstat()
        self.cpu = None

    def read_schedstat(self):
        """(seconds on a CPU, seconds runnable waiting for one) so far"""
        with open(self.base + "/schedstat") as f:
            ran, wait = f.read().split()[:2]
        return int(ran) / 1e9, int(wait) / 1e9

    def read_syscall(self):
        """the system call the thread sleeps in, or None (running, or unreadable)"""
        try:
            with open(self.base + "/syscall") as f:
                first = f.read().split()[0]
            return int(first)
        except (OSError, ValueError, IndexError):
            return None

    def look(self, now):
        """False once the process is gone"""
        try:
            ran, wait = self.read_schedstat()
            with open(self.base + "/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            state, cpu = fields[0], int(fields[36])  # fields 3 and 39 of proc(5)
            wchan = ""
            if state == "D":
                with open(self.base + "/wchan") as f:
                    wchan = f.read().strip()
        except (OSError, ValueError, IndexError):
            return False
        if wait - self.wait >= self.record:
            print(json.dumps({"wait": [round(self.t, 4), round(now, 4), round(wait - self.wait, 4)]}), flush=True)
        if ran - self.ran >= self.record:
            print(json.dumps({"ran": [round(self.t, 4), round(now, 4), round(ran - self.ran, 4)]}), flush=True)
        if cpu != self.cpu:
            print(json.dumps({"on_cpu": [round(now, 4), cpu]}), flush=True)
            self.cpu = cpu
        if state == "D":
            print(json.dumps({"blocked": round(now, 4), "wchan": wchan}), flush=True)
        elif state == "S":
            nr = self.read_syscall()
            if nr is not None and nr not in self.LOOP_SLEEPS:
                print(json.dumps({"sleep": round(now, 4), "syscall": nr}), flush=True)
        self.t, self.ran, self.wait = now, ran, wait
        return True


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--period", type=float, default=0.02)
    p.add_argument("--record", type=float, default=0.01)
    p.add_argument("--append", metavar="FILE")
    p.add_argument("--watch", type=int, metavar="PID")
    p.add_argument("--cpu", type=int, metavar="N")
    args = p.parse_args()
    if args.cpu is not None:
        try:
            os.sched_setaffinity(0, {args.cpu})
        except OSError as e:
            p.error(f"--cpu {args.cpu}: {e}")
    try:
        watch = Watch(args.watch, args.record) if args.watch else None
    except (OSError, ValueError, IndexError) as e:
        p.error(f"--watch {args.watch}: cannot read its schedstat: {e}")
    fd = os.open(args.append, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600) if args.append else -1
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    def queued():
        """seconds this process has waited on a run queue so far"""
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9

    q_prev = queued() if args.cpu is not None else 0.0
    due = time.monotonic()
    print(json.dumps({"canary": "started", "t": round(due, 4), "period": args.period, "cpu": args.cpu}), flush=True)
    while not stop:
        due += args.period
        left = due - time.monotonic()
        if left > 0:
            time.sleep(left)
        woke = time.monotonic()
        if fd >= 0:
            os.write(fd, b".")
            woke = time.monotonic()  # held up until the append returned
        if args.cpu is not None:
            q = queued()
            if woke - due >= args.record:
                print(json.dumps({"due": round(due, 4), "woke": round(woke, 4), "queued": round(q - q_prev, 4)}),
                      flush=True)
            q_prev = q
        elif woke - due >= args.record:
            print(json.dumps({"due": round(due, 4), "woke": round(woke, 4)}), flush=True)
        if watch is not None and not watch.look(woke):
            watch = None
        if woke - due > args.period:
            due = woke  # next deadline one period after this wake-up, not a catch-up burst
    return 0


if __name__ == "__main__":
    sys.exit(main())
