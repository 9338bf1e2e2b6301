/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-trim: the free heap given back to the system once pcpd has been quiet for a while
 * after many mappings came, changed or went.
 *
 * Why: glibc's malloc keeps the pages it is given back by free() inside its heap, below
 * memory still in use, resident until malloc_trim() (only the free top of the heap goes
 * back by itself). After a burst of mappings, or holders of many leaving, the transient
 * buffers of the burst (bus messages, the snapshot's) and the removed mappings leave such
 * pages. pcpd-restore.c gives the heap back once after a restore; this does it after churn
 * at run time (bench/README.md, "The heap given back once pcpd is quiet after churn"), the
 * wave of grants and InterfacesAdded that follows a restore among it.
 *
 * How: a GSource on the default main context, at G_PRIORITY_LOW, that reads a count of
 * changes (churn(): monotonic; in pcpd every mapping added, changed or removed told,
 * pcpd_manager_mapping_news(), pcpd-manager.h) in its prepare() and check(),
 * that is on every turn of the loop, which costs no system call. Once the count has grown by
 * min_churn since the last trim and then not moved for quiet_ms, it calls malloc_trim(0)
 * once. So the trim runs:
 *   - never on the path of a call or an answer (its own dispatch, after theirs),
 *   - never while the count still moves (each change starts the quiet wait again),
 *   - at most once per min_churn changes and quiet_ms,
 * and the source asks the loop for no wake-up (poll timeout -1) while fewer than min_churn
 * changes wait: an idle pcpd stays at no wake-ups and no system calls. While a trim waits,
 * one wake-up at the end of the quiet wait. Nothing is done where there is no
 * malloc_trim() (HAVE_MALLOC_TRIM).
 */

#include <glib.h>
#include <stdint.h>

#define PCPD_TRIM_QUIET_MS 5000
#define PCPD_TRIM_MIN_CHURN 1024

/* a count that only grows, by one for every change that allocates or frees */
typedef uint64_t (*pcpd_trim_churn_func)(void *data);

/* the time in µs on a monotonic clock (the tests' own clock: pcpd_trim_set_clock()) */
typedef gint64 (*pcpd_trim_clock_func)(void *data);

typedef struct pcpd_trim pcpd_trim;

/* Attached to the default main context; what churn() counts now is where it starts. */
pcpd_trim *pcpd_trim_new(pcpd_trim_churn_func churn, void *data, guint quiet_ms, unsigned min_churn);
void pcpd_trim_free(pcpd_trim *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_trim, pcpd_trim_free)

/* The clock the quiet wait is measured on: now(data) instead of the loop's time
 * (g_source_get_time(): GLib's monotonic clock as read once a turn), which is the default
 * and what pcpd uses; NULL sets the default again. For tests, which then drive the time
 * themselves and turn the loop without blocking (the poll timeout asked for is in ms of
 * this clock). */
void pcpd_trim_set_clock(pcpd_trim *t, pcpd_trim_clock_func now, void *data);

/* pcpd's resident memory in kB (/proc/self/statm), -1 if unknown: for the debug lines of a
 * trim (here and after a restore, pcpd-restore.c) */
long pcpd_trim_resident_kib(void);

/* malloc_trim() calls made so far */
unsigned pcpd_trim_done(const pcpd_trim *t);
