/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-store: keeping the saved records in the state directory up to date, on a main loop.
 * pcpd-state.h is the codec and the files; this is when they are written, and what happens
 * when that fails. It knows records (pcpd_state_mapping), not mappings: its owner (the
 * manager) decides what is saved and when, and what a record means.
 *
 * Calls go down, news comes up through the ops given at construction:
 *
 *  - pcpd_store_put() / pcpd_store_forget(): one journal record (a record's whole state, or
 *    its removal), appended at once (one O_APPEND write, no fsync: a killed daemon loses
 *    nothing, a power cut at most the last records, torn ones are skipped on load). When
 *    they return 0 the record is in the journal; on a failed write they return a negative
 *    errno, and a snapshot (which holds the change too) is tried soon.
 *  - pcpd_store_forget_later(): a record that guards nothing (the owner's call: for the
 *    manager, the last word on a mapping whose delete was confirmed) is kept in memory and
 *    written with the next record put at once, in front of it in the same write(), or at
 *    the latest 200 ms after it was put, or at pcpd_store_save() and pcpd_store_flush().
 *    The journal's order is the order of the calls, later or not. A crash loses the
 *    records put later and not yet written (never one put at once): the owner decides
 *    which records may be lost so.
 *  - snapshots are written by the store on its own: 200 ms after a change while the files are
 *    small, else once the journal has grown as large as the last snapshot
 *    (pcpd_state_compact_due()), soon after a failed append, every few seconds while writes
 *    fail. Each is formatted a chunk of records per turn of the main loop, written into
 *    mappings.state.tmp as it goes (never held whole in memory), and put in place (fsync,
 *    rename, fsync of the directory) on a thread of its own, which also makes the files and
 *    names the next snapshot and journal need: the loop never waits for the disk, nor
 *    makes or removes a name in the directory, but in pcpd_store_save() and
 *    pcpd_store_flush() (and on failure paths). A failed write leaves the
 *    snapshot in place and the journal as they were. A snapshot is formatted
 *    from ops->snapshot_ids (taken when it starts) and ops->lookup (each id when its turn
 *    comes, so the owner's records may change between two chunks; the journal's records
 *    appended meanwhile are kept after it, pcpd-state.h says why that is consistent).
 *  - an episode of failure: the first failed write logs one warning, sets
 *    pcpd_store_error() and calls ops->error_changed; the first snapshot written after
 *    that logs one line, clears it and calls ops->error_changed again. While it lasts,
 *    every put and every few seconds tries a snapshot.
 *
 * The ops are called from the store's calls (error_changed from a failed put) and from the
 * main loop (lookup, snapshot_ids, error_changed); they must not free the store. Its timers
 * and idle sources are on GLib's default main context; the directory fd given must outlive
 * it. It touches no file but the state files of pcpd-state.h in that directory.
 */

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "pcpd-state.h"

typedef struct pcpd_store pcpd_store;

typedef struct pcpd_store_ops {
        /* Every id that has a record now, for a snapshot: an array (g_new, taken over by the
         * store) of *ret_n ids, no duplicates; *ret_next_id: the first id never given out
         * (the snapshot's header). */
        uint64_t *(*snapshot_ids)(void *userdata, size_t *ret_n, uint64_t *ret_next_id);
        /* id's record as it is now (strings borrowed until the next call), or false when it
         * has none any more: it is left out of the snapshot. */
        bool (*lookup)(uint64_t id, pcpd_state_mapping *ret, void *userdata);
        /* May be NULL. For a snapshot written whole on the main thread (pcpd_store_save():
         * at start, at shutdown), where nothing changes until it is written: calls add with
         * every record there is now (strings borrowed for that call), in the order
         * snapshot_ids gives their ids, each as lookup gives it, and stops when add returns
         * false; *ret_next_id as snapshot_ids, set before the first add. The same bytes as
         * snapshot_ids and lookup give, without their array of ids (8 octets a record, held
         * while the snapshot is written: 1 MiB at 131,070). */
        void (*snapshot_foreach)(void *userdata, uint64_t *ret_next_id,
                                 bool (*add)(const pcpd_state_mapping *rec, void *data), void *data);
        /* pcpd_store_error() changed (NULL: everything is saved again). May be NULL. */
        void (*error_changed)(const char *error, void *userdata);
} pcpd_store_ops;

/* A store of the state directory dirfd (borrowed: it must outlive the store; dir_name
 * names it in messages). ops must outlive the store. Nothing is written until asked. */
int pcpd_store_new(int dirfd, const char *dir_name, const pcpd_store_ops *ops, void *userdata, pcpd_store **ret);
/* Ends whatever is under way without writing anything more (see pcpd_store_flush()): the
 * records put later and not written yet are dropped, as a crash would lose them. */
pcpd_store *pcpd_store_free(pcpd_store *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_store, pcpd_store_free)

/* Appends rec (a record's whole state: a mapping, or one being deleted) to the journal: 0,
 * or a negative errno when it could not be written (an episode of failure starts or goes
 * on, a snapshot is tried soon). */
int pcpd_store_put(pcpd_store *s, const pcpd_state_mapping *rec);
/* Appends the record that forgets id; as pcpd_store_put(). */
int pcpd_store_forget(pcpd_store *s, uint64_t id);
/* As pcpd_store_forget(), but written with the next record put at once (the same
 * write(), this one in front), or within 200 ms, whichever comes first: a crash before
 * that loses it. A failure of that write is handled as a failed put's. */
void pcpd_store_forget_later(pcpd_store *s, uint64_t id);

/* Writes a whole snapshot now, on the calling thread, after the one under way (if any)
 * and the records put later; the journal is emptied. Replaces any snapshot scheduled. 0
 * or a negative errno (which starts or continues an episode; success ends one). */
int pcpd_store_save(pcpd_store *s);
/* For shutdown: waits for the snapshot under way, then writes the last one unless it
 * would have nothing the last one written lacks. Nothing is pending afterwards (no timer,
 * no thread) until the next put. */
void pcpd_store_flush(pcpd_store *s);

/* Why the last write failed ("cannot save state in <dir>: <reason>"), NULL while
 * everything is saved. Valid until the next call into the store or turn of its loop. */
const char *pcpd_store_error(const pcpd_store *s);
/* A snapshot is being formatted or written, or one is scheduled. */
bool pcpd_store_busy(const pcpd_store *s);
