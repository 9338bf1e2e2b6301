#!/usr/bin/awk -f
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sums /proc/PID/smaps by what is mapped: RSS (kB) per file (the library's base name,
# all its segments), and anonymous memory split by shape:
#   [heap]           the main arena (brk)
#   thread stack     an unnamed mapping of 8 MiB (or 8 MiB - 4 kB) after a 4 kB guard page
#   malloc arena     unnamed mappings that are part of a 64 MiB-aligned reservation of
#                    64 MiB: a thread's malloc arena (glibc's heap_info)
#   anon other       the rest (large malloc() blocks, GLib's slices, ...)
#
#   awk -f bench/smaps-sum.awk /proc/PID/smaps            (or a copy: bench-daemon --out-dir)
#   awk -v top=0 -f bench/smaps-sum.awk smaps.txt         (every line, not only the 25 largest)
function flush() {
        if (start == "")
                return
        if (name == "") {
                kb = (hex(end) - hex(start)) / 1024
                # a thread's arena: the whole 64 MiB reservation starts 64 MiB-aligned;
                # its used part is rw, the rest ---p
                if (hex(start) % 67108864 == 0 || in_arena_until > hex(start)) {
                        if (hex(start) % 67108864 == 0)
                                in_arena_until = hex(start) + 67108864
                        key = "malloc arena (threads)"
                } else if ((kb == 8192 || kb == 8188) && prev_guard) {
                        key = "thread stack"
                } else
                        key = "anon other"
                prev_guard = (kb == 4 && perms == "---p")
        } else {
                key = name
                sub(".*/", "", key)
                prev_guard = 0
        }
        sum[key] += rss
        total += rss
        start = ""
}
function hex(s,    i, c, v) {
        v = 0
        s = tolower(s)
        for (i = 1; i <= length(s); i++) {
                c = index("0123456789abcdef", substr(s, i, 1)) - 1
                v = v * 16 + c
        }
        return v
}
BEGIN { if (top == "") top = 25 }
/^[0-9a-f]+-[0-9a-f]+ / {
        flush()
        split($1, r, "-")
        start = r[1]
        end = r[2]
        perms = $2
        name = ""
        for (i = 6; i <= NF; i++)
                name = name (i > 6 ? " " : "") $i
        rss = 0
        next
}
/^Rss:/ { rss = $2 }
END {
        flush()
        n = 0
        for (k in sum)
                order[++n] = k
        # sort by RSS, largest first (insertion sort: a few hundred lines at most)
        for (i = 2; i <= n; i++) {
                v = order[i]
                for (j = i - 1; j >= 1 && sum[order[j]] < sum[v]; j--)
                        order[j + 1] = order[j]
                order[j + 1] = v
        }
        for (i = 1; i <= n && (top == 0 || i <= top); i++)
                printf "%8d kB  %s\n", sum[order[i]], order[i]
        printf "%8d kB  total (%d kinds)\n", total, n
}
