/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The manager's restore after a restart (pcpd-manager-private.h): what the state
 * directory held (pcpd-state.h) is made again. A removed mapping whose delete was never
 * confirmed is deleted again; a mapping on a server is asked for again with its nonce on
 * the same server, or waits for it; a direct one is direct again while the host is not
 * behind a NAT, else made on a server. App mappings wait grace_seconds for their apps.
 */

#include "pcpd-manager-private.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#if HAVE_MALLOC_TRIM
#include <malloc.h> /* malloc_trim(): glibc's */
#endif

#include "pcpd-backend.h"
#include "pcpd-direct.h"
#include "pcpd-log.h"
#include "pcpd-servers.h"
#include "pcpd-store.h"
#include "pcpd-trim.h"

/* ---- the restore's InterfacesAdded, paced to the bus ---- */

/* mapping_added told between two looks at the listener's backlog (two system calls for the
 * bus: ~32 x ~2.7 KB of InterfacesAdded, what a socket's send queue takes easily) */
#define RESTORE_ADDED_CHECK 32u
/* after PCPD_OUTPUT_BACKLOG_WAITS looks in a row at a bus that does not read, the next look
 * comes this much later (nothing waits for these signals: see manager_restore()) */
#define RESTORE_ADDED_SLOW_MS 100u

/* The restored mappings whose mapping_added is still to be told: their ids, in the order
 * they were restored, from head on; told PCPD_ORPHAN_BATCH a turn of the loop while the
 * listener's output is not backed up (pace, pcpd-pace.h). One per manager
 * (m->restore_pace), while there are any; dropped at the manager's shutdown
 * (manager_grace_stop()). */
typedef struct pcpd_restore_pace {
        pcpd_manager *manager;
        GArray *ids; /* uint64_t */
        guint head;
        pcpd_pace pace;
} restore_pace;

/* mapping_added for the ids from *head on, at most max of them, each looked up again: one
 * removed meanwhile (for any reason: released, revoked, the grace, a disable) has had its
 * mapping_removed (InterfacesRemoved) and gets nothing after it (ids are never given out
 * twice: a mapping of its port made since has another id and was told on its own); one
 * claimed or changed meanwhile is told as it is now (InterfacesAdded carries every
 * property). Stops, false, when the listener's output is backed up (looked at every
 * RESTORE_ADDED_CHECK after the first: the caller looks before it); true when max were told
 * or none are left. */
static bool tell_added(pcpd_manager *m, GArray *ids, guint *head, guint max) {
        for (guint n = 0; n < max && *head < ids->len; n++) {
                pcpd_mapping *mp;

                if (n > 0 && n % RESTORE_ADDED_CHECK == 0 && manager_output_backed_up(m))
                        return false;
                mp = pcpd_manager_mapping(m, g_array_index(ids, uint64_t, (*head)++));
                if (mp != NULL)
                        manager_emit_mapping_added(m, mp);
        }
        return true;
}

static void pace_free(restore_pace *p) {
        g_assert(p->manager->restore_pace == p);
        p->manager->restore_pace = NULL;
        pcpd_pace_stop(&p->pace);
        g_array_free(p->ids, TRUE);
        g_free(p);
}

static pcpd_pace_result pace_step(void *data, guint max) {
        restore_pace *p = data;

        if (!tell_added(p->manager, p->ids, &p->head, max))
                return PCPD_PACE_BACKED_UP;
        return p->head < p->ids->len ? PCPD_PACE_MORE : PCPD_PACE_DONE;
}

static bool pace_backed_up(void *data) {
        restore_pace *p = data;

        return manager_output_backed_up(p->manager);
}

static void pace_done(void *data) {
        pace_free(data);
}

/* never a batch while the backlog is high: after PCPD_OUTPUT_BACKLOG_WAITS looks in a row,
 * slower looks (a bus that does not read holds up nothing but these signals) */
static const pcpd_pace_ops restore_pace_ops = {
        .step = pace_step,
        .backed_up = pace_backed_up,
        .done = pace_done,
        .batch_max = PCPD_ORPHAN_BATCH,
        .retry_ms = PCPD_OUTPUT_BACKLOG_RETRY_MS,
        .max_waits = PCPD_OUTPUT_BACKLOG_WAITS,
        .slow_ms = RESTORE_ADDED_SLOW_MS,
};

/* the rest of ids (taken), from head on, told on the next turns of the loop; the caller
 * just found the backlog high */
static void pace_start(pcpd_manager *m, GArray *ids, guint head) {
        restore_pace *p = g_new0(restore_pace, 1);

        p->manager = m;
        p->ids = ids;
        p->head = head;
        pcpd_pace_init(&p->pace, &restore_pace_ops, p, NULL);
        g_assert(m->restore_pace == NULL); /* one restore a manager */
        m->restore_pace = p;
        pcpd_pace_wait(&p->pace);
}

/* At shutdown: those not told yet are not (the objects go with the bus connection). */
static void pace_stop(pcpd_manager *m) {
        if (m->restore_pace != NULL)
                pace_free(m->restore_pace);
}

/* ---- the grace of the restored app mappings: one timer for them all ---- */

/* none wait any more, or the shutdown: the timer (or the batches' source: both in
 * m->grace_source) and the ids go */
static void grace_clear(pcpd_manager *m) {
        pcpd_pace_stop(&m->grace_pace);
        if (m->unclaimed != NULL)
                g_array_free(m->unclaimed, TRUE);
        m->unclaimed = NULL;
        m->unclaimed_head = 0;
        m->grace_over = false;
}

void manager_unclaimed_done(pcpd_manager *m, pcpd_mapping *mp) {
        if (!mp->unclaimed)
                return;
        mp->unclaimed = false;
        g_assert(m->n_unclaimed > 0);
        m->n_unclaimed--;
        /* once the grace is over, the batches walk the ids to their end themselves */
        if (m->n_unclaimed == 0 && !m->grace_over)
                grace_clear(m);
}

/* The next max of the ids, each looked up again: gone already (released, removed for
 * another reason) or claimed meanwhile, it is left alone; else it goes, as it did when each
 * had a timer of its own. Returns how many ids are left. */
static guint grace_remove(pcpd_manager *m, guint max) {
        for (guint n = 0; n < max && m->unclaimed != NULL && m->unclaimed_head < m->unclaimed->len; n++) {
                uint64_t id = g_array_index(m->unclaimed, uint64_t, m->unclaimed_head++);
                pcpd_mapping *mp = pcpd_manager_mapping(m, id);

                if (mp == NULL || !mp->unclaimed)
                        continue;
                g_message("Mapping %s was not reclaimed after the restart; %s", PCPD_MAPPING_PATH(mp),
                          mp->held_by == m->direct ? "removing it" : "deleting it upstream");
                pcpd_manager_remove_mapping(m, mp, PCPD_REMOVED_OWNER_VANISHED);
        }
        if (m->unclaimed != NULL && m->unclaimed_head < m->unclaimed->len)
                return m->unclaimed->len - m->unclaimed_head;
        return 0;
}

static pcpd_pace_result grace_step(void *data, guint max) {
        return grace_remove(data, max) > 0 ? PCPD_PACE_MORE : PCPD_PACE_DONE;
}

static void grace_done(void *data) {
        grace_clear(data);
}

/* the grace is over: those still unclaimed go, PCPD_ORPHAN_BATCH a turn of the loop (at
 * the default priority, as a departing holder's: calls and signals are served between),
 * each batch after the first waiting while the bus is backed up, as a departing holder's
 * (the next goes anyway after PCPD_OUTPUT_BACKLOG_WAITS looks in a row) */
static const pcpd_pace_ops grace_pace_ops = {
        .step = grace_step,
        .backed_up = manager_output_backed_up,
        .done = grace_done,
        .batch_max = PCPD_ORPHAN_BATCH,
        .retry_ms = PCPD_OUTPUT_BACKLOG_RETRY_MS,
        .max_waits = PCPD_OUTPUT_BACKLOG_WAITS,
        .slow_ms = 0,
};

void manager_grace_init(pcpd_manager *m) {
        pcpd_pace_init(&m->grace_pace, &grace_pace_ops, m, &m->grace_source);
}

static gboolean on_grace_over(gpointer userdata) {
        pcpd_manager *m = userdata;

        m->grace_over = true;
        m->grace_source = 0; /* this source, ending */
        /* the first batch now, without a look (the timer's turn is the batch's) */
        if (grace_remove(m, PCPD_ORPHAN_BATCH) > 0)
                pcpd_pace_kick(&m->grace_pace);
        else
                grace_clear(m);
        return G_SOURCE_REMOVE;
}

void manager_grace_stop(pcpd_manager *m) {
        if (m->grace_over)
                (void) grace_remove(m, G_MAXUINT);
        grace_clear(m);
        pace_stop(m);
}

static const char *app_id_source_from_string(const char *s) {
        static const char *const known[] = { "flatpak", "snap", "systemd-unit", "declared" };

        for (size_t i = 0; i < G_N_ELEMENTS(known); i++)
                if (g_strcmp0(s, known[i]) == 0)
                        return known[i];
        return "none";
}

/* The mapping a saved record describes, under its old id (its object path is the one its
 * app knew), with what its caller asked for, but no server side yet. */
static pcpd_mapping *mapping_from_record(pcpd_manager *m, const pcpd_state_mapping *rec) {
        pcpd_mapping_request req = {
                .opcode = rec->opcode,
                .protocol = rec->protocol,
                .family = rec->family,
                .internal_port = rec->internal_port,
                /* a server granted a port: ask for that one again (a direct mapping's
                 * external port is its internal one: a server gets the caller's wish) */
                .suggested_port = rec->external_port != 0 && !rec->direct ? rec->external_port : rec->suggested_port,
                .description = rec->description,
                .has_external_address = rec->has_suggested_address,
                .external_address = rec->suggested_address,
                .prefer_failure = rec->prefer_failure,
                .n_filters = rec->n_filters,
                .has_third_party = rec->has_third_party,
                .third_party = rec->third_party,
                .persistent = rec->persistent,
                .uid = rec->uid,
                .app_id = rec->app_id,
                .app_id_source = app_id_source_from_string(rec->app_id_source),
                .declared = rec->declared,
        };
        uint32_t lifetime = MIN(rec->lifetime, m->config.max_lifetime);
        pcpd_mapping *mp;

        if (rec->remote_address != NULL) {
                pcp_addr_from_string(rec->remote_address, &req.remote_address);
                req.remote_port = rec->remote_port;
        }
        if (rec->n_filters > 0)
                memcpy(req.filters, rec->filters, rec->n_filters * sizeof(pcp_filter));
        mp = manager_mapping_new(m, rec->id, &req, rec->family, lifetime != 0 ? lifetime : m->config.default_lifetime,
                                 rec->created);
        /* the remote end as it was saved (the constructor keeps one for PEER only) */
        pcpd_mapping_set_str(mp, remote_address, rec->remote_address);
        mp->remote_port = req.remote_port;
        /* an app mapping waits for its app (mp->unclaimed) once it is in the manager's
         * tables (manager_restore()) */
        return mp;
}

static pcpd_server *server_from_text(pcpd_manager *m, const char *text) {
        struct sockaddr_in6 sa;

        if (text == NULL || !pcpd_parse_endpoint(text, PCP_SERVER_PORT, &sa))
                return NULL;
        return manager_find_server(m, &sa);
}

/* A saved mapping on a server: the same upstream mapping (its nonce) on the same server,
 * asking for what it had. Its nonce is on disk already. */
static bool restore_on_server(pcpd_manager *m, pcpd_mapping *mp, const pcpd_state_mapping *rec) {
        pcpd_server *s = server_from_text(m, rec->server);
        struct in6_addr ext;
        bool has_ext;

        if (s == NULL) {
                /* not a server now, or not yet (NetworkManager's arrive after the restore):
                 * it waits, with its nonce, and is made there again when that server comes
                 * (pcpd-servers.c), or on the one that serves it then */
                g_message("Saved mapping %s %s port %u was made through %s, which is not a server now: it waits "
                          "for a server",
                          pcp_opcode_to_string(mp->opcode), pcp_protocol_to_string(mp->protocol) ?: "?",
                          mp->internal_port, rec->server);
                mp->has_nonce = true;
                memcpy(mp->nonce, rec->nonce, PCP_NONCE_LEN);
                pcpd_mapping_set_str(mp, prev_server, rec->server);
                set_shared(&mp->server_text, "");
                set_name(&mp->state, PCP1_MAPPING_FAILED);
                set_name(&mp->error, PCP1_MAPPING_ERROR_NO_SERVER);
                return true;
        }
        /* its nonce (on disk already), asking for the external address it had */
        mp->has_nonce = true;
        memcpy(mp->nonce, rec->nonce, PCP_NONCE_LEN);
        has_ext = rec->external_address[0] != '\0' && pcp_addr_from_string(rec->external_address, &ext);
        if (manager_mapping_start_on_server(m, mp, s, has_ext ? &ext : NULL) < 0) {
                g_warning("Saved mapping %s %s port %u could not be restored on PCP server %s",
                          pcp_opcode_to_string(mp->opcode), pcp_protocol_to_string(mp->protocol) ?: "?",
                          mp->internal_port, s->text);
                return false;
        }
        return true;
}

/* A saved direct mapping: direct again while the host has a global address of the family
 * and no server of the family answers (the address it had when the host still has it).
 * Servers found at start have not answered yet: one that starts answering takes the
 * mapping over, as for any direct mapping. Else, behind a NAT now, it is made on a server
 * of the family as a new upstream mapping with what its caller asked for. */
static bool restore_direct(pcpd_manager *m, pcpd_mapping *mp, const pcpd_state_mapping *rec) {
        const char *ext_s = rec->external_address;
        const char *fam = mp->family == AF_INET ? "IPv4" : "IPv6";
        struct in6_addr a;
        pcpd_server *s;
        bool global, state;
        int r;

        global = pcp_addr_from_string(ext_s, &a) && pcp_addr_is_ipv4(&a) == (mp->family == AF_INET) &&
                 pcpd_direct_address_is_global(&a) && manager_host_has_address(m, &a, NULL);
        if (!global)
                global = manager_host_global_address(m, mp->family, NULL, &a);
        if (global && !mp->has_third_party && manager_answering_server(m, mp->family, NULL) == NULL) {
                return manager_mapping_start_direct(m, mp, &a) >= 0;
        }
        s = pcpd_servers_choose(m, mp->family, NULL);
        if (s == NULL) {
                g_warning("Saved mapping %s %s port %u had the host's own address %s, but the host has no global %s "
                          "address now and no %s server is known: it is dropped",
                          pcp_opcode_to_string(mp->opcode), pcp_protocol_to_string(mp->protocol) ?: "?",
                          mp->internal_port, ext_s[0] ? ext_s : "?", fam, fam);
                return false;
        }
        r = manager_mapping_start_saved(m, mp, s, NULL, false, &state);
        if (r < 0) {
                g_warning("Saved mapping %s %s port %u could not be made on PCP server %s: %s%s",
                          pcp_opcode_to_string(mp->opcode), pcp_protocol_to_string(mp->protocol) ?: "?",
                          mp->internal_port, s->text, state ? "its nonce cannot be saved: " : "", g_strerror(-r));
                return false;
        }
        g_message("Saved mapping %s %s port %u had the host's own address %s; the host is behind PCP server %s "
                  "now: asking it",
                  pcp_opcode_to_string(mp->opcode), pcp_protocol_to_string(mp->protocol) ?: "?", mp->internal_port,
                  ext_s[0] ? ext_s : "?", s->text);
        return true;
}

/* A mapping removed before the restart whose delete was never confirmed (rec, taken over):
 * its delete goes out again, unless it has expired upstream by now. */
static bool restore_deleting(pcpd_manager *m, pcpd_state_mapping *rec) {
        pcpd_server *s;
        pcpd_deleting *d;
        int r;

        if (rec->delete_until <= realtime_us()) {
                pcpd_state_mapping_free(rec);
                return false;
        }
        /* kept until the server answers: not in a block of the loaded state, which would
         * stay mapped for it */
        rec = pcpd_state_mapping_unpack(rec);
        rec->deleting = true;
        if (!rec->has_nonce && rec->upnp_interface != NULL) {
                /* a UPnP mapping's delete (pcpd-backend.h) */
                if (m->upnp == NULL) {
                        pcpd_state_mapping_free(rec);
                        return false;
                }
                d = manager_deleting_add(m, rec);
                m->upnp->ops->restore_deleting(m->upnp, d->rec);
                return true;
        }
        d = manager_deleting_add(m, rec);
        s = server_from_text(m, rec->server);
        if (s == NULL) {
                g_message("Removed mapping %s port %u was made through %s, which is not a server now: kept until "
                          "it expires there (a restart with that server back deletes it)",
                          pcp_protocol_to_string(rec->protocol) ?: "?", rec->internal_port, rec->server);
                return true;
        }
        /* its delete only (lifetime 0, its nonce), told under its id when it is over */
        r = m->pcp->ops->delete_saved(m->pcp, d->rec, s, d->rec->id);
        if (r < 0) {
                g_debug("Removed mapping %" G_GUINT64_FORMAT ": its delete cannot be sent now: %s", rec->id,
                        g_strerror(-r));
                return true;
        }
        pcpd_backend_drain(m->pcp);
        return true;
}

/* A saved mapping (rec, not deleting) made again: true when it is restored. rec is the
 * caller's to free unless it is taken out of st (a delete took it over). Its InterfacesAdded
 * is told once every record is restored (its id is appended to added), but for a UPnP
 * mapping, whose restore by UPnP comes after it. */
static bool restore_record(pcpd_manager *m, pcpd_state *st, pcpd_state_mapping *rec, GArray *added) {
        pcpd_mapping *mp;
        bool ok;

        mp = mapping_from_record(m, rec);
        if (manager_mapping_key_index_find(&m->by_key, mp) != NULL) {
                /* two mappings of one port: never made by one pcpd; the later one is
                 * deleted upstream rather than forgotten there */
                g_warning("Saved mapping %s: %s port %u is saved twice; deleting the second one upstream",
                          PCPD_MAPPING_PATH(mp), pcp_protocol_to_string(mp->protocol) ?: "?", mp->internal_port);
                manager_mapping_free(mp);
                if (rec->has_nonce) {
                        g_hash_table_steal(st->mappings, &rec->id);
                        rec->delete_until = realtime_us() + (uint64_t) MAX(rec->lifetime, 1u) * G_USEC_PER_SEC;
                        (void) restore_deleting(m, rec);
                }
                return false;
        }
        if (rec->direct)
                ok = restore_direct(m, mp, rec);
        else
                ok = restore_on_server(m, mp, rec);
        if (!ok) {
                manager_mapping_free(mp);
                /* what UPnP holds for good is deleted, not forgotten there */
                if (rec->upnp_interface != NULL && rec->upnp_permanent && m->upnp != NULL) {
                        uint64_t id = manager_keep_deleting(m, rec);
                        pcpd_deleting *d = g_hash_table_lookup(m->deleting, &id);
                        if (d != NULL)
                                m->upnp->ops->restore_deleting(m->upnp, d->rec);
                }
                return false;
        }
        pcpd_mapping_set_add(&m->mappings, mp);
        pcpd_mapping_set_add(&m->by_key, mp);
        if (pcpd_backend_holds(m->pcp, mp)) {
                manager_mapping_show(m, mp, m->pcp);
                pcpd_backend_drain(m->pcp);
        }
        if (!mp->persistent) {
                /* it waits for its app: one grace timer for all of them, below */
                mp->unclaimed = true;
                m->n_unclaimed++;
                if (m->unclaimed == NULL)
                        m->unclaimed = g_array_new(FALSE, FALSE, sizeof(uint64_t));
                g_array_append_val(m->unclaimed, mp->id);
        }
        if (rec->upnp_interface != NULL && m->upnp != NULL && pcpd_backend_holds(m->pcp, mp)) {
                manager_emit_mapping_added(m, mp);
                (void) m->upnp->ops->restore(m->upnp, mp, rec);
        } else
                g_array_append_val(added, mp->id);
        return true;
}

/* The restore's transient data is freed: the records read from the state directory (the
 * snapshot and the journal replayed over it) and their sorted array. The mappings made
 * from them were allocated while they were there, so most of the pages they held are free
 * now but inside the heap, which glibc's malloc keeps (bench/README.md: ~45 MB of 166 MB
 * after a restore of 131,070). They are given back once, here: never on the way of a call
 * or an answer. */
static void restore_give_back(guint n_records) {
#if HAVE_MALLOC_TRIM
        bool debug;
        long before = -1;
        gint64 t0;
        int released;

        if (n_records == 0)
                return; /* nothing was loaded: nothing to give back */
        debug = !g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, NULL);
        if (debug)
                before = pcpd_trim_resident_kib();
        t0 = g_get_monotonic_time();
        released = malloc_trim(0);
        if (debug)
                g_debug("Restore of %u saved record(s) done: %s in %" G_GINT64_FORMAT " us (resident %ld kB before, "
                        "%ld kB after)",
                        n_records, released ? "free heap given back to the system" : "no free heap to give back",
                        g_get_monotonic_time() - t0, before, pcpd_trim_resident_kib());
#else
        (void) n_records;
#endif
}

void manager_restore(pcpd_manager *m) {
        g_autoptr(pcpd_state) st = g_steal_pointer(&m->loaded);
        g_autoptr(GPtrArray) recs = NULL;
        g_autoptr(GArray) added = NULL;
        unsigned restored = 0, deleting = 0, apps;
        guint n_records, head;

        if (st == NULL)
                st = pcpd_state_new();
        /* ids are never given out twice, across restarts too: an old path names nothing
         * or the same mapping */
        m->next_mapping_id = MAX(m->next_mapping_id, st->next_id);
        recs = pcpd_state_sorted(st);
        n_records = recs->len;
        added = g_array_sized_new(FALSE, FALSE, sizeof(uint64_t), n_records);

        /* the deletes first: a newer mapping of the same port may be among the others */
        for (guint k = 0; k < recs->len; k++) {
                pcpd_state_mapping *rec = recs->pdata[k];

                if (!rec->deleting)
                        continue;
                g_hash_table_steal(st->mappings, &rec->id);
                recs->pdata[k] = NULL; /* taken over, maybe freed */
                if (restore_deleting(m, rec))
                        deleting++;
        }
        for (guint k = 0; k < recs->len; k++) {
                pcpd_state_mapping *rec = recs->pdata[k];
                uint64_t id;

                if (rec == NULL)
                        continue;
                id = rec->id;
                recs->pdata[k] = NULL;
                if (restore_record(m, st, rec, added))
                        restored++;
                /* its mapping has copies of what it needs (or a delete took it over: not in
                 * st any more): it goes now rather than with all the others at the end, so
                 * that the next mappings take its room instead of more of the system's */
                g_hash_table_remove(st->mappings, &id);
        }
        apps = m->n_unclaimed; /* the app mappings among them (the loop has not run: none claimed) */
        /* what was loaded is all taken over or copied: it goes before the snapshot, whose
         * buffer may take its room, and its heap is given back */
        g_clear_pointer(&recs, g_ptr_array_unref);
        g_clear_pointer(&st, pcpd_state_free);
        /* a fresh snapshot, and an empty journal */
        (void) pcpd_store_save(m->store);
        restore_give_back(n_records);
        /* one timer for the grace of all the app mappings restored: from now, after the
         * restore (the loop has not run meanwhile: no app could claim one yet), so that each
         * waits grace_seconds at least, as when each had a timer from its own restore on.
         * A reload that changes GraceSeconds does not change it (nor did it each timer). */
        if (m->n_unclaimed > 0 && m->grace_source == 0)
                m->grace_source = g_timeout_add_seconds(m->config.grace_seconds, on_grace_over, m);
        pcpd_backend_kick(m->pcp);
        /* Each restored mapping's InterfacesAdded, in the order they were restored, once they
         * are all made, as long as the bus keeps up: the rest on the next turns of the loop,
         * PCPD_ORPHAN_BATCH a turn while the listener's output backlog is not above
         * PCPD_OUTPUT_BACKLOG_MAX. The loop does not run during the restore, so what
         * dbus-daemon has not read waited in the bus connection's write queue until pcpd's
         * name was requested (main.c, after this): 71,068 and 123,788 of 131,070 queued in
         * the runs of bench/README.md (branches rss131, restorerss), ~2.7 KB each, up to
         * ~440 MB, whose room stayed with malloc once written.
         *
         * What that changes for clients. The name is requested after the restore: the
         * signals told here go out before pcpd owns it, and a client that matches pcpd's
         * signals by its name (sender=org.freedesktop.PCP1: GDBus's object manager, pcpctl)
         * did not get them; it learns the restored mappings with GetManagedObjects once the
         * name appears, as of any object that was there before it looked. Those paced to
         * later turns go out once pcpd owns the name, so such a client may have read a
         * mapping with GetManagedObjects, or claimed it with AddMapping, before its
         * InterfacesAdded: that InterfacesAdded only says again that the object is there,
         * with every property as it is when it is sent (pcpctl, which applies the
         * InterfacesAdded of its mapping's path, ends with the state GetAll gives). A
         * PropertiesChanged of such a mapping (its server's first answer, its claim) may
         * come before its InterfacesAdded: a client that did not read it yet ignores the
         * change of an object it does not know, and the InterfacesAdded after it carries the
         * new values. A mapping removed before its turn has its
         * InterfacesRemoved and nothing after it (tell_added()). No test of the bus or
         * integration suites waits for the InterfacesAdded of a restored mapping: they read
         * the restored mappings with GetManagedObjects or pcpctl list. */
        head = 0;
        if (added->len > 0 && (manager_output_backed_up(m) || !tell_added(m, added, &head, G_MAXUINT)))
                pace_start(m, g_steal_pointer(&added), head);
        g_clear_pointer(&added, g_array_unref);
        if (deleting == 1)
                g_message("1 mapping was removed before the restart and its delete was never confirmed: "
                          "deleting it again");
        else if (deleting > 1)
                g_message(
                        "%u mappings were removed before the restart and their delete was never confirmed: "
                        "deleting them again",
                        deleting);
        if (restored > 0) {
                /* the grace period is said only when an app mapping waits for it (persistent
                 * and declared ones wait for nobody) */
                g_autofree char *what =
                        restored == 1 ? g_strdup("1 mapping") : g_strdup_printf("%u mappings", restored);

                if (apps == 0)
                        g_message("Restored %s from %s", what, m->state_dir);
                else if (apps == restored)
                        g_message("Restored %s from %s; %s %u s for %s", what, m->state_dir,
                                  apps == 1 ? "it waits" : "they wait", m->config.grace_seconds,
                                  apps == 1 ? "its app" : "their apps");
                else if (apps == 1)
                        g_message("Restored %s from %s; the app mapping among them waits %u s for its app",
                                  what, m->state_dir, m->config.grace_seconds);
                else
                        g_message("Restored %s from %s; the %u app mappings among them wait %u s for their "
                                  "apps",
                                  what, m->state_dir, apps, m->config.grace_seconds);
                pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_MAPPING_COUNT);
        }
}
