/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The manager's removed mappings whose delete is not confirmed (pcpd-manager-private.h):
 * each is kept, on disk too, until its server confirms the delete, or until the lifetime
 * it may still have there has run out (then it has expired upstream on its own), so that
 * a restarted pcpd deletes it again. The PCP backend (pcpd-pcp.h) or the UPnP-IGD backend
 * (pcpd-backend.h) sends the delete; this is only the bookkeeping.
 */

#include "pcpd-manager-private.h"

#include <glib.h>

#include "pcpd-backend.h"
#include "pcpd-store.h"

void manager_deleting_free(pcpd_deleting *d) {
        if (d == NULL)
                return;
        if (d->expire_source != 0)
                g_source_remove(d->expire_source);
        pcpd_state_mapping_free(d->rec);
        g_free(d);
}

/* Forgets d for good (confirmed, expired, or evicted): on disk too. */
void manager_deleting_forget(pcpd_manager *m, pcpd_deleting *d) {
        uint64_t id = d->rec->id;

        g_hash_table_remove(m->deleting, &id); /* frees d */
        manager_persist_removal_later(m, id);
}

static gboolean on_deleting_expired(gpointer data) {
        pcpd_deleting *d = data;
        pcpd_manager *m = d->manager;

        d->expire_source = 0;
        g_debug("Removed mapping %" G_GUINT64_FORMAT " (%s port %u) has expired upstream by now; forgetting it",
                d->rec->id, pcp_protocol_to_string(d->rec->protocol) ?: "?", d->rec->internal_port);
        /* the PCP backend may still be sending it: it stops, without a datagram */
        pcpd_backend_delete_forget(m->pcp, d->rec->id);
        manager_deleting_forget(m, d);
        return G_SOURCE_REMOVE;
}

/* Keeps rec (taken over) until its delete is confirmed or until rec->delete_until. */
pcpd_deleting *manager_deleting_add(pcpd_manager *m, pcpd_state_mapping *rec) {
        pcpd_deleting *d = g_new0(pcpd_deleting, 1);
        uint64_t now = realtime_us();
        uint64_t left = rec->delete_until > now ? (rec->delete_until - now) / G_USEC_PER_SEC + 1 : 1;

        /* a bound on what callers can leave behind: every add counts against a quota, but a
         * removal makes room for the next add while its delete may stay unconfirmed (a
         * silent server) for a whole lifetime */
        if (g_hash_table_size(m->deleting) >= MAX(m->config.max_mappings, 1u)) {
                GHashTableIter it;
                gpointer v;
                pcpd_deleting *oldest = NULL;
                gint64 now_mono = g_get_monotonic_time();

                g_hash_table_iter_init(&it, m->deleting);
                while (g_hash_table_iter_next(&it, NULL, &v))
                        if (oldest == NULL || ((pcpd_deleting *) v)->rec->delete_until < oldest->rec->delete_until)
                                oldest = v;
                if (m->deleting_evict_logged == 0 || now_mono - m->deleting_evict_logged > 60 * G_USEC_PER_SEC) {
                        m->deleting_evict_logged = now_mono;
                        g_warning("%u removed mappings wait for their server to confirm the delete, the most pcpd "
                                  "keeps: the one that expires first is forgotten (it expires upstream on its own)",
                                  g_hash_table_size(m->deleting));
                }
                manager_deleting_forget(m, oldest);
        }
        d->manager = m;
        d->rec = rec;
        d->expire_source = g_timeout_add_seconds((guint) MIN(left, (uint64_t) G_MAXUINT), on_deleting_expired, d);
        g_hash_table_insert(m->deleting, &d->rec->id, d);
        return d;
}

/* The engine is done with d's delete: confirmed upstream, it is forgotten; else (no
 * answer, or the server keeps it for another owner) it stays until it expires. */
void manager_deleting_engine_done(pcpd_manager *m, pcpd_deleting *d, bool deleted_upstream) {
        if (deleted_upstream)
                manager_deleting_forget(m, d);
        else
                g_debug("The delete of removed mapping %" G_GUINT64_FORMAT " was not confirmed; kept until it "
                        "expires upstream",
                        d->rec->id);
}

/* Keeps a copy of rec under a fresh id (returned), on disk, as a deleting record of the
 * UPnP-IGD fallback's: until manager_deleting_fallback_done() or rec->delete_until. */
uint64_t manager_keep_deleting(pcpd_manager *m, const pcpd_state_mapping *rec) {
        pcpd_state_mapping *c = pcpd_state_mapping_copy(rec);
        pcpd_deleting *d;

        c->id = m->next_mapping_id++;
        c->deleting = true;
        d = manager_deleting_add(m, c);
        (void) pcpd_store_put(m->store, d->rec);
        return d->rec->id;
}

/* The fallback is done with deleting record id: confirmed, it is forgotten; else it stays
 * (a restart tries again) until it expires. */
void manager_deleting_fallback_done(pcpd_manager *m, uint64_t id, bool confirmed) {
        pcpd_deleting *d = g_hash_table_lookup(m->deleting, &id);

        if (d == NULL)
                return;
        if (confirmed)
                manager_deleting_forget(m, d);
        else
                /* the backend's warning before says why (not confirmed, or never sent) */
                g_message("The delete of UPnP mapping %s port %u was not done: kept, tried again at the next start",
                          pcp_protocol_to_string(d->rec->protocol) ?: "?", d->rec->upnp_external_port);
}
