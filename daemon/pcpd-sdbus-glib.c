/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-sdbus-glib.h"

#include <poll.h>

typedef struct bus_source {
        GSource source;
        sd_bus *bus;
        gpointer tag;
        int events; /* what the fd is polled for now */
        gboolean dispatching;
} bus_source;

/* The source may recurse (g_source_set_can_recurse()): GLib otherwise takes a source's
 * descriptor out of the poll set for each dispatch and puts it back after it, and each
 * change writes the context's wake-up eventfd: a write, a poll and a read on every message.
 * What the blocking protected against is a main loop iteration nested inside this dispatch
 * (the only one in pcpd is pcpd_upnp_free(), reachable from a call through the UPnP
 * backend): sd_bus_process() refuses to recurse (-EBUSY, which would read as a failed
 * connection). Such an iteration still never enters it twice: while a dispatch runs,
 * prepare() takes the descriptor out of the poll set itself (the old cost, paid only then)
 * and check() and dispatch() answer no. */

static gboolean bus_prepare(GSource *source, gint *timeout) {
        bus_source *s = (bus_source *) source;
        int events = s->dispatching ? 0 : sd_bus_get_events(s->bus);
        uint64_t until;

        *timeout = -1;
        /* only on change: modifying the poll set wakes the main context up, and doing it on
         * every iteration would spin the loop */
        if (events >= 0 && events != s->events) {
                g_source_modify_unix_fd(source, s->tag, (GIOCondition) events);
                s->events = events;
        }
        if (s->dispatching)
                return FALSE;
        if (sd_bus_get_timeout(s->bus, &until) >= 0 && until != UINT64_MAX) {
                gint64 now = g_get_monotonic_time();
                if ((gint64) until <= now) {
                        *timeout = 0;
                        return TRUE;
                }
                *timeout = (gint) MIN(((gint64) until - now + 999) / 1000, G_MAXINT);
        }
        return FALSE;
}

static gboolean bus_check(GSource *source) {
        bus_source *s = (bus_source *) source;
        uint64_t until;

        if (s->dispatching)
                return FALSE;
        if (g_source_query_unix_fd(source, s->tag) != 0)
                return TRUE;
        return sd_bus_get_timeout(s->bus, &until) >= 0 && until != UINT64_MAX &&
               (gint64) until <= g_get_monotonic_time();
}

static gboolean bus_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
        bus_source *s = (bus_source *) source;

        if (s->dispatching)
                return G_SOURCE_CONTINUE;
        /* bounded, so one busy client cannot starve the engine and the sockets */
        for (int i = 0; i < 64; i++) {
                int r;

                s->dispatching = TRUE;
                r = sd_bus_process(s->bus, NULL);
                s->dispatching = FALSE;
                if (r < 0) {
                        g_warning("D-Bus connection failed: %s; exiting", g_strerror(-r));
                        if (callback != NULL)
                                callback(user_data);
                        return G_SOURCE_REMOVE;
                }
                if (r == 0)
                        break;
        }
        return G_SOURCE_CONTINUE;
}

static void bus_finalize(GSource *source) {
        bus_source *s = (bus_source *) source;
        sd_bus_unref(s->bus);
}

static GSourceFuncs bus_funcs = {
        .prepare = bus_prepare,
        .check = bus_check,
        .dispatch = bus_dispatch,
        .finalize = bus_finalize,
};

guint pcpd_sd_bus_attach_glib(sd_bus *bus, GMainContext *context, GSourceFunc on_error, gpointer data) {
        GSource *source = g_source_new(&bus_funcs, sizeof(bus_source));
        bus_source *s = (bus_source *) source;
        guint id;

        s->bus = sd_bus_ref(bus);
        s->tag = g_source_add_unix_fd(source, sd_bus_get_fd(bus), G_IO_IN);
        s->events = G_IO_IN;
        g_source_set_name(source, "sd-bus");
        g_source_set_can_recurse(source, TRUE);
        if (on_error != NULL)
                g_source_set_callback(source, on_error, data, NULL);
        id = g_source_attach(source, context);
        g_source_unref(source);
        return id;
}
