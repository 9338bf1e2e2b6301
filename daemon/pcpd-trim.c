/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"
#include "pcpd-trim.h"

#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>
#if HAVE_MALLOC_TRIM
#include <malloc.h>
#endif

typedef struct trim_source {
        GSource source;
        pcpd_trim_churn_func churn;
        void *data;
        pcpd_trim_clock_func now; /* NULL: the loop's time */
        void *now_data;
        gint64 quiet_us;
        uint64_t min_churn;
        uint64_t seen;      /* churn() when last read */
        uint64_t at_trim;   /* churn() at the last trim (at the start: none to give back) */
        gint64 changed_at;  /* the time (µs, now()) when `seen` was first read */
        unsigned done;      /* malloc_trim() calls */
} trim_source;

struct pcpd_trim {
        trim_source *ts;
};

long pcpd_trim_resident_kib(void) {
        g_autofree char *text = NULL;
        unsigned long size, resident;

        if (!g_file_get_contents("/proc/self/statm", &text, NULL, NULL) ||
            sscanf(text, "%lu %lu", &size, &resident) != 2)
                return -1;
        return (long) (resident * (unsigned long) sysconf(_SC_PAGESIZE) / 1024);
}

/* the loop's cached time by default: no clock read of its own */
static gint64 now(trim_source *ts) {
        return ts->now != NULL ? ts->now(ts->now_data) : g_source_get_time(&ts->source);
}

/* Reads the count; a new value starts the quiet wait again. The time only when it moved:
 * no clock read on a turn where nothing changed. */
static void look(trim_source *ts) {
        uint64_t c = ts->churn(ts->data);

        if (c != ts->seen) {
                ts->seen = c;
                ts->changed_at = now(ts);
        }
}

static bool waiting(const trim_source *ts) {
        return HAVE_MALLOC_TRIM && ts->seen - ts->at_trim >= ts->min_churn;
}

static gboolean trim_prepare(GSource *source, gint *timeout) {
        trim_source *ts = (trim_source *) source;
        gint64 left;

        look(ts);
        if (!waiting(ts)) {
                *timeout = -1; /* no wake-up for this source */
                return FALSE;
        }
        left = ts->changed_at + ts->quiet_us - now(ts);
        if (left <= 0) {
                *timeout = 0;
                return TRUE;
        }
        *timeout = (gint) MIN((left + 999) / 1000, G_MAXINT);
        return FALSE;
}

static gboolean trim_check(GSource *source) {
        trim_source *ts = (trim_source *) source;

        look(ts);
        return waiting(ts) && now(ts) >= ts->changed_at + ts->quiet_us;
}

static gboolean trim_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
        trim_source *ts = (trim_source *) source;
#if HAVE_MALLOC_TRIM
        bool debug = !g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, NULL);
        long before = debug ? pcpd_trim_resident_kib() : -1;
        gint64 t0 = g_get_monotonic_time();
        int released = malloc_trim(0);

        ts->done++;
        if (debug)
                g_debug("Quiet for %" G_GINT64_FORMAT " ms after %" G_GUINT64_FORMAT " change(s) to the mappings: %s "
                        "in %" G_GINT64_FORMAT " us (resident %ld kB before, %ld kB after)",
                        ts->quiet_us / 1000, ts->seen - ts->at_trim,
                        released ? "free heap given back to the system" : "no free heap to give back",
                        g_get_monotonic_time() - t0, before, pcpd_trim_resident_kib());
#endif
        ts->at_trim = ts->seen;
        return G_SOURCE_CONTINUE;
}

static GSourceFuncs trim_funcs = {
        .prepare = trim_prepare,
        .check = trim_check,
        .dispatch = trim_dispatch,
};

pcpd_trim *pcpd_trim_new(pcpd_trim_churn_func churn, void *data, guint quiet_ms, unsigned min_churn) {
        pcpd_trim *t = g_new0(pcpd_trim, 1);
        trim_source *ts = (trim_source *) g_source_new(&trim_funcs, sizeof(trim_source));

        ts->churn = churn;
        ts->data = data;
        ts->quiet_us = (gint64) quiet_ms * 1000;
        ts->min_churn = MAX(min_churn, 1u);
        ts->seen = ts->at_trim = churn(data);
        g_source_set_priority(&ts->source, G_PRIORITY_LOW);
        g_source_set_name(&ts->source, "pcpd-trim");
        g_source_attach(&ts->source, NULL);
        t->ts = ts;
        return t;
}

void pcpd_trim_free(pcpd_trim *t) {
        if (t == NULL)
                return;
        g_source_destroy(&t->ts->source);
        g_source_unref(&t->ts->source);
        g_free(t);
}

void pcpd_trim_set_clock(pcpd_trim *t, pcpd_trim_clock_func now_func, void *data) {
        t->ts->now = now_func;
        t->ts->now_data = data;
}

unsigned pcpd_trim_done(const pcpd_trim *t) {
        return t->ts->done;
}
