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
appends a log line or a journal record, and is the machine's, not the process's."""
import argparse
import json
import os
import signal
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--period", type=float, default=0.02)
    p.add_argument("--record", type=float, default=0.01)
    p.add_argument("--append", metavar="FILE")
    args = p.parse_args()
    fd = os.open(args.append, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600) if args.append else -1
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    due = time.monotonic()
    print(json.dumps({"canary": "started", "t": round(due, 4), "period": args.period}), flush=True)
    while not stop:
        due += args.period
        left = due - time.monotonic()
        if left > 0:
            time.sleep(left)
        woke = time.monotonic()
        if fd >= 0:
            os.write(fd, b".")
            woke = time.monotonic()  # held up until the append returned
        if woke - due >= args.record:
            print(json.dumps({"due": round(due, 4), "woke": round(woke, 4)}), flush=True)
        if woke - due > args.period:
            due = woke  # next deadline one period after this wake-up, not a catch-up burst
    return 0


if __name__ == "__main__":
    sys.exit(main())
