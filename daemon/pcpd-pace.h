/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-pace: work done in batches, one batch a turn of the main loop, each while the bus
 * connection's output backlog is low (the listener's output_backlog, PCPD_OUTPUT_BACKLOG_MAX:
 * dbus-daemon still routes what the batches before said, and a reply sent now would queue
 * behind it).
 *
 * Its users (one pcpd_pace each, kept in the manager or in the object: no globals):
 *   - the mappings of bus names that left (pcpd-manager.c, m->orphans),
 *   - the unclaimed app mappings once the restart's grace is over (pcpd-restore.c),
 *   - the restored mappings' mapping_added, InterfacesAdded (pcpd-restore.c).
 *
 * How: one source on the default main context while something waits, none else (an idle
 * pcpd has no wake-up for it). Each dispatch looks at the backlog (ops->backed_up), then
 * runs one batch (ops->step, at most ops->batch_max), in the order the owner keeps:
 *   - the backlog is high (or the step stopped early because it found it high): the next
 *     look comes ops->retry_ms later (a timeout); a step that stopped early did part of
 *     its batch, so it counts as the first look in a row that found it high, whatever
 *     came before (progress: no slow_ms rule for a restore whose every step fills the
 *     backlog part-way);
 *   - a batch ran and more wait: the next at the default priority on the next turn (an
 *     idle source: the calls and signals that came meanwhile are served in between);
 *   - nothing waits: the source goes, then ops->done (if any).
 * After ops->max_waits looks in a row found it high, one of two, as the owner says:
 *   - ops->slow_ms == 0: the next batch goes without a look (a bus that does not read
 *     cannot hold up work that must be done, as removals upstream), and it looks again
 *     from the batch after it;
 *   - ops->slow_ms > 0: the next looks come slow_ms apart, and nothing goes while it is
 *     high (what nothing waits for, as signals only).
 * A stop (at shutdown) removes the source: what still waits is the owner's to drop or to
 * do at once (ops->step with G_MAXUINT before the stop).
 */

#include <glib.h>
#include <stdbool.h>

typedef enum pcpd_pace_result {
        PCPD_PACE_DONE,      /* nothing waits any more */
        PCPD_PACE_MORE,      /* the batch ran; more wait */
        PCPD_PACE_BACKED_UP, /* the step stopped early: it found the backlog high itself */
} pcpd_pace_result;

typedef struct pcpd_pace_ops {
        /* the next at most max of what waits (max may be G_MAXUINT: the owner's own
         * call); never called by the pace while backed_up() says true, except after
         * max_waits looks in a row when slow_ms is 0 */
        pcpd_pace_result (*step)(void *data, guint max);
        /* the backlog is high: the next batch waits */
        bool (*backed_up)(void *data);
        /* optional: called last, once nothing waits (the pace's source is gone; the pace
         * may be freed in it) */
        void (*done)(void *data);
        guint batch_max; /* per turn of the loop */
        guint retry_ms;  /* the next look while the backlog is high */
        guint max_waits; /* looks in a row that found it high before the slow_ms rule */
        guint slow_ms;   /* see above: 0, or the interval of the later looks */
} pcpd_pace_ops;

typedef struct pcpd_pace {
        const pcpd_pace_ops *ops;
        void *data;
        /* the armed source's id, 0 when none: the owner's field when it gave one (its
         * tests look at it; it may share it with a timer of its own while the pace is not
         * armed), else own_source. Set also while a step runs: work added meanwhile rides
         * on the next batch (pcpd_pace_kick() arms nothing). */
        guint *source;
        guint own_source;
        guint waits; /* looks in a row that found the backlog high */
} pcpd_pace;

/* Nothing armed. source: where the armed source's id is kept (NULL: in the pace). */
void pcpd_pace_init(pcpd_pace *p, const pcpd_pace_ops *ops, void *data, guint *source);
/* Work waits: a batch on the next turn of the loop, unless one is armed (or running). */
void pcpd_pace_kick(pcpd_pace *p);
/* Work waits, and the owner just found the backlog high (a look of its own: it counts as
 * one): the next look in retry_ms. Nothing may be armed. */
void pcpd_pace_wait(pcpd_pace *p);
/* Nothing armed any more, nothing counted; what still waits is not stepped (not from
 * within step; from done it is harmless). */
void pcpd_pace_stop(pcpd_pace *p);
static inline bool pcpd_pace_armed(const pcpd_pace *p) {
        return *p->source != 0;
}
