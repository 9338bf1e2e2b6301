/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Batches paced to the listener's output backlog (pcpd-pace.h). */

#include "pcpd-pace.h"

static gboolean on_pace(gpointer userdata);

/* the backlog was found high: the next look later */
static void arm_retry(pcpd_pace *p) {
        const pcpd_pace_ops *o = p->ops;

        p->waits++;
        *p->source = g_timeout_add(o->slow_ms != 0 && p->waits >= o->max_waits ? o->slow_ms : o->retry_ms, on_pace,
                                   p);
}

static gboolean on_pace(gpointer userdata) {
        pcpd_pace *p = userdata;
        const pcpd_pace_ops *o = p->ops;
        pcpd_pace_result r;

        /* (*p->source stays set while the step runs: see pcpd_pace.source) */
        if ((p->waits < o->max_waits || o->slow_ms != 0) && o->backed_up(p->data)) {
                arm_retry(p);
                return G_SOURCE_REMOVE;
        }
        r = o->step(p->data, o->batch_max);
        if (r == PCPD_PACE_BACKED_UP) {
                /* it did part of a batch before it found the backlog high: progress, so the
                 * looks in a row start again from this one. Counting it towards max_waits
                 * put a restore whose every step stopped part-way (its signals filled the
                 * backlog) into the slow_ms looks for good: ~390 InterfacesAdded a second. */
                p->waits = 0;
                arm_retry(p);
                return G_SOURCE_REMOVE;
        }
        p->waits = 0;
        if (r == PCPD_PACE_MORE) {
                *p->source = g_idle_add_full(G_PRIORITY_DEFAULT, on_pace, p, NULL);
                return G_SOURCE_REMOVE;
        }
        *p->source = 0; /* this source, ending */
        if (o->done != NULL)
                o->done(p->data); /* last: it may free p */
        return G_SOURCE_REMOVE;
}

void pcpd_pace_init(pcpd_pace *p, const pcpd_pace_ops *ops, void *data, guint *source) {
        *p = (pcpd_pace) { .ops = ops, .data = data };
        p->source = source != NULL ? source : &p->own_source;
}

void pcpd_pace_kick(pcpd_pace *p) {
        if (*p->source == 0)
                *p->source = g_idle_add_full(G_PRIORITY_DEFAULT, on_pace, p, NULL);
}

void pcpd_pace_wait(pcpd_pace *p) {
        g_assert(*p->source == 0);
        arm_retry(p);
}

void pcpd_pace_stop(pcpd_pace *p) {
        if (*p->source != 0)
                g_source_remove(*p->source);
        *p->source = 0;
        p->waits = 0;
}
