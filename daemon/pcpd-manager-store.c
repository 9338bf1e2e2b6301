/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The manager's persistence policy (pcpd-manager-private.h); the store (pcpd-store.h)
 * writes what is said here. */

#include "pcpd-manager-private.h"

#include <string.h>

#include "pcpd-backend.h"
#include "pcpd-store.h"

/*
 * The store (pcpd-store.h) keeps the state directory up to date: a journal record per
 * change, appended at once, and snapshots on its own schedule. The manager says what is
 * saved and when (the policy): a new mapping's nonce is on disk before its request leaves
 * (a mapping whose nonce cannot be written is refused), a grant's external address and
 * port and a change to persistent are recorded, and a removed mapping stays as a
 * "deleting" record until the server confirms the delete or the lifetime it may have left
 * there has run out; a restarted pcpd deletes such mappings again.
 *
 * Which records must be on disk at once, and which may wait (pcpd_store_forget_later(): in
 * memory until the next record written at once carries them in front of it in the same
 * write(), or 200 ms). The rule: what is upstream, or may get there, or what anyone has
 * been told, is on disk first; a crash may lose only records whose loss leaves an earlier
 * record that a restart handles harmlessly.
 *  - At once: a new mapping's record (its nonce and server) before its request leaves, or a
 *    restart could neither renew nor delete it; everything that refuses a call when it
 *    cannot be written (persistent now, a move to another server or backend); a removed
 *    mapping's "deleting" record, or its removal when no delete is needed, before the
 *    delete leaves (lost, the earlier record would make a restart ask for the mapping
 *    again: a persistent one would come back); and a grant's external address and port
 *    before any app hears of them (pcpd_manager_backend_sync(): a pcpd killed right after
 *    a grant asks for the granted port again, bus test-restart.py
 *    test_killed_right_after_grant).
 *  - Later: the removal that forgets a "deleting" record once its delete is confirmed, or
 *    it has expired upstream, or it is evicted (manager_deleting_forget()). Nobody is told
 *    of it and nothing leaves after it. Lost, the "deleting" record is loaded: a restart
 *    sends the delete again (lifetime 0, the same nonce) for a mapping the server no
 *    longer has (that nonce cannot take another's mapping), or drops it unsent once its
 *    delete_until has passed. Confirmed, it is forgotten; unconfirmed, it is kept until
 *    delete_until, as any delete, and then forgotten (test-manager-backend.c
 *    test_lost_forget_after_restart). In the benchmark's add-grant-release sequence it
 *    rides with the next mapping's record: 3 journal writes per mapping instead of 4.
 * The records put later keep their order with the others (one buffer, written in front of
 * the next record), so the journal replays to the same end state, less a lost tail of
 * removals. A failed write loses them from the journal as it does the record written at
 * once: the snapshot the failure schedules is formatted from the live records (which no
 * longer have them) and holds their effect.
 *
 * Not done (yet): the records that must be on disk at once sharing one write() when many
 * come in one turn of the loop (a burst of AddMapping). That is safe only if nothing they
 * guard leaves before that write: the PCP backend's datagrams drained after it (the engine
 * already queues them until pcpd_backend_drain()), and the calls' replies and signals held
 * until it too, since a failed write must still refuse each call with CannotSaveState
 * (bus test-state-dir.py test_full_disk) rather than fail a mapping already announced.
 * Today the reply goes out from inside the bus's method handler, so each add writes its
 * own record.
 */

/* mp as a saved record, its strings borrowed from mp; false when there is nothing to
 * save: a mapping neither direct nor with a nonce on a server */
bool manager_mapping_to_record(const pcpd_mapping *mp, pcpd_state_mapping *rec) {
        bool direct = pcpd_mapping_is_direct(mp);

        if (!direct && !mp->has_nonce)
                return false;
        *rec = (pcpd_state_mapping) {
                .id = mp->id,
                .direct = direct,
                .has_nonce = !direct,
                /* a mapping waiting for a server: the one it was on (its nonce is for it) */
                .server = direct                                                  ? (char *) ""
                          : mp->server_text != NULL && mp->server_text[0] != '\0' ? mp->server_text
                          : pcpd_mapping_prev_server(mp) != NULL ? (char *) pcpd_mapping_prev_server(mp)
                                                                 : (char *) "",
                .opcode = mp->opcode,
                .protocol = mp->protocol,
                .family = mp->family,
                .internal_port = mp->internal_port,
                .suggested_port = mp->suggested_port,
                .lifetime = mp->lifetime,
                .external_address = mp->external_address,
                .external_port = mp->external_port,
                .remote_address = (char *) pcpd_mapping_remote_address(mp),
                .remote_port = mp->remote_port,
                .has_suggested_address = mp->has_suggested_address,
                .suggested_address = *pcpd_mapping_suggested_address(mp),
                .prefer_failure = mp->prefer_failure,
                .has_third_party = mp->has_third_party,
                .third_party = *pcpd_mapping_third_party(mp),
                .n_filters = pcpd_mapping_n_filters(mp),
                .persistent = mp->persistent,
                .uid = mp->uid,
                .app_id = mp->app_id,
                .app_id_source = (char *) mp->app_id_source,
                .description = mp->description,
                .created = mp->created,
                .declared = (char *) pcpd_mapping_declared(mp),
        };
        if (rec->has_nonce)
                memcpy(rec->nonce, mp->nonce, PCP_NONCE_LEN);
        rec->filters = (pcp_filter *) pcpd_mapping_filters(mp);
        if (mp->backend != NULL)
                mp->manager->upnp->ops->fill_record(mp->manager->upnp, mp, rec);
        return true;
}

/* id's record as it is now, for a snapshot (pcpd_store_ops): a mapping, or one being
 * deleted; false when it has none (gone, or nothing to save yet) */
static bool store_lookup(uint64_t id, pcpd_state_mapping *ret, void *userdata) {
        pcpd_manager *m = userdata;
        pcpd_mapping *mp = pcpd_manager_mapping(m, id);
        pcpd_deleting *d;

        if (mp != NULL && manager_mapping_to_record(mp, ret))
                return true;
        d = g_hash_table_lookup(m->deleting, &id);
        if (d == NULL)
                return false;
        *ret = *d->rec;
        return true;
}

/* Every mapping and every one being deleted, for a snapshot (pcpd_store_ops). */
static uint64_t *store_snapshot_ids(void *userdata, size_t *ret_n, uint64_t *ret_next_id) {
        pcpd_manager *m = userdata;
        size_t n = pcpd_manager_n_mappings(m) + g_hash_table_size(m->deleting), k = 0;
        uint64_t *ids = g_new(uint64_t, MAX(n, (size_t) 1));
        GHashTableIter it;
        gpointer key;
        void *v;

        for (size_t i = 0; pcpd_mapping_set_next(&m->mappings, &i, &v);)
                ids[k++] = ((const pcpd_mapping *) v)->id;
        g_hash_table_iter_init(&it, m->deleting);
        while (g_hash_table_iter_next(&it, &key, NULL))
                if (pcpd_manager_mapping(m, *(const uint64_t *) key) == NULL)
                        ids[k++] = *(const uint64_t *) key;
        *ret_n = k;
        *ret_next_id = m->next_mapping_id;
        return ids;
}

/* The same records, in the same order, as store_snapshot_ids() and store_lookup() give,
 * walked directly (pcpd_store_ops): for a snapshot written whole on the main thread (at
 * start, at shutdown), with no array of ids. */
static void store_snapshot_foreach(void *userdata, uint64_t *ret_next_id,
                                   bool (*add)(const pcpd_state_mapping *rec, void *data), void *data) {
        pcpd_manager *m = userdata;
        GHashTableIter it;
        gpointer key, value;
        void *v;

        *ret_next_id = m->next_mapping_id;
        for (size_t i = 0; pcpd_mapping_set_next(&m->mappings, &i, &v);) {
                pcpd_state_mapping rec;

                if (store_lookup(((const pcpd_mapping *) v)->id, &rec, m) && !add(&rec, data))
                        return;
        }
        g_hash_table_iter_init(&it, m->deleting);
        while (g_hash_table_iter_next(&it, &key, &value)) {
                const pcpd_deleting *d = value;

                if (pcpd_manager_mapping(m, *(const uint64_t *) key) == NULL && !add(d->rec, data))
                        return;
        }
}

/* The store's episode of failure began or ended: Manager.StateError. */
static void store_error_changed(const char *error, void *userdata) {
        pcpd_manager *m = userdata;

        set_str(&m->state_error, error);
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_STATE_ERROR);
}

const pcpd_store_ops manager_store_ops = {
        .snapshot_ids = store_snapshot_ids,
        .lookup = store_lookup,
        .snapshot_foreach = store_snapshot_foreach,
        .error_changed = store_error_changed,
};

/* a mapping's saved state changed (new, granted, now persistent): on disk at once;
 * -errno when it could not be written */
int manager_persist_mapping(pcpd_manager *m, pcpd_mapping *mp) {
        pcpd_state_mapping rec;

        if (!manager_mapping_to_record(mp, &rec))
                return 0;
        return pcpd_store_put(m->store, &rec);
}

void manager_persist_removal(pcpd_manager *m, uint64_t id) {
        (void) pcpd_store_forget(m->store, id);
}

void manager_persist_removal_later(pcpd_manager *m, uint64_t id) {
        pcpd_store_forget_later(m->store, id);
}

