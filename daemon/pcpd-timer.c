/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-timer.h"

#include <stdbool.h>

struct pcpd_timer {
        GSource source; /* first: the GSource is the timer */
        GMutex lock;    /* the fields below; never held across a call into GLib */
        gint64 deadline; /* µs, monotonic; PCPD_TIMER_NEVER */
        /* what the last prepare() made the poll's timeout from: PCPD_TIMER_NEVER (none),
         * or 0 once a wake-up is on its way (the loop prepares again before it sleeps) */
        gint64 promised;
        gint64 slack;    /* µs; 0: none */
        uint64_t wakeups;
        pcpd_timer_fn fn;
        void *userdata;
};

/* when a deadline d fires: d itself, or with a slack the first multiple of it at or after d
 * (deadlines that fall into one slot fire together). Holds t->lock. */
static gint64 fire_time(const pcpd_timer *t, gint64 d) {
        if (d < 0 || t->slack <= 0)
                return d;
        return (d + t->slack - 1) / t->slack * t->slack;
}

static gboolean timer_prepare(GSource *source, gint *timeout) {
        pcpd_timer *t = (pcpd_timer *) source;
        gint64 d, now, ms;

        g_mutex_lock(&t->lock);
        d = t->promised = fire_time(t, t->deadline);
        g_mutex_unlock(&t->lock);
        if (d < 0) {
                *timeout = -1;
                return FALSE;
        }
        now = g_source_get_time(source);
        if (d <= now) {
                *timeout = 0;
                return TRUE;
        }
        /* rounded up: a poll that wakes a little early would spin */
        ms = (d - now + 999) / 1000;
        *timeout = ms > G_MAXINT ? G_MAXINT : (gint) ms;
        return FALSE;
}

static bool due(pcpd_timer *t, gint64 now) {
        bool r;

        g_mutex_lock(&t->lock);
        r = t->deadline >= 0 && fire_time(t, t->deadline) <= now;
        g_mutex_unlock(&t->lock);
        return r;
}

static gboolean timer_check(GSource *source) {
        return due((pcpd_timer *) source, g_source_get_time(source));
}

static gboolean timer_dispatch(GSource *source, GSourceFunc cb, gpointer data) {
        pcpd_timer *t = (pcpd_timer *) source;
        gint64 now = g_source_get_time(source);
        bool fire;

        (void) cb;
        (void) data;
        g_mutex_lock(&t->lock);
        /* still due: another thread may have moved it since check() */
        fire = t->deadline >= 0 && fire_time(t, t->deadline) <= now;
        if (fire)
                t->deadline = PCPD_TIMER_NEVER;
        g_mutex_unlock(&t->lock);
        if (fire)
                t->fn(t->userdata);
        return G_SOURCE_CONTINUE;
}

static void timer_finalize(GSource *source) {
        g_mutex_clear(&((pcpd_timer *) source)->lock);
}

static GSourceFuncs timer_funcs = {
        .prepare = timer_prepare,
        .check = timer_check,
        .dispatch = timer_dispatch,
        .finalize = timer_finalize,
};

pcpd_timer *pcpd_timer_new(GMainContext *context, const char *name, pcpd_timer_fn fn, void *userdata) {
        pcpd_timer *t = (pcpd_timer *) g_source_new(&timer_funcs, sizeof(pcpd_timer));

        g_mutex_init(&t->lock);
        t->deadline = t->promised = PCPD_TIMER_NEVER;
        t->fn = fn;
        t->userdata = userdata;
        if (name != NULL)
                g_source_set_name(&t->source, name);
        g_source_attach(&t->source, context);
        return t;
}

pcpd_timer *pcpd_timer_free(pcpd_timer *t) {
        if (t == NULL)
                return NULL;
        g_source_destroy(&t->source);
        g_source_unref(&t->source);
        return NULL;
}

void pcpd_timer_set_deadline(pcpd_timer *t, gint64 deadline_us) {
        GMainContext *ctx = g_source_get_context(&t->source);
        bool quiet, held = false, wake = false;

        if (deadline_us < 0)
                deadline_us = PCPD_TIMER_NEVER;
        /* Does a poll of ctx possibly sleep right now, on a timeout the last prepare()
         * computed? Not when this thread owns ctx and is inside a dispatch (the loop
         * prepares before it polls again), nor when nobody owns ctx (held until the new
         * deadline is stored, so no poll can start in between). */
        if (g_main_context_is_owner(ctx))
                quiet = g_main_current_source() != NULL;
        else
                quiet = held = g_main_context_acquire(ctx);

        g_mutex_lock(&t->lock);
        t->deadline = deadline_us;
        if (!quiet && deadline_us >= 0 && (t->promised < 0 || fire_time(t, deadline_us) < t->promised)) {
                t->promised = 0;
                t->wakeups++;
                wake = true;
        }
        g_mutex_unlock(&t->lock);

        if (held)
                g_main_context_release(ctx);
        if (wake)
                g_main_context_wakeup(ctx);
}

gint64 pcpd_timer_get_deadline(pcpd_timer *t) {
        gint64 d;

        g_mutex_lock(&t->lock);
        d = t->deadline;
        g_mutex_unlock(&t->lock);
        return d;
}

uint64_t pcpd_timer_get_wakeups(pcpd_timer *t) {
        uint64_t n;

        g_mutex_lock(&t->lock);
        n = t->wakeups;
        g_mutex_unlock(&t->lock);
        return n;
}

void pcpd_timer_set_slack(pcpd_timer *t, gint64 slack_us) {
        g_mutex_lock(&t->lock);
        t->slack = MAX(slack_us, 0);
        g_mutex_unlock(&t->lock);
}

GSource *pcpd_timer_source(pcpd_timer *t) {
        return &t->source;
}
