/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Where a mapping is held, and moving it (pcpd-manager-private.h): through the backends
 * only (pcpd-backend.h). A mapping is on a server through "pcp" (its nonce on disk before
 * its request leaves), held by "direct", or waits for a server (failed, NO_SERVER);
 * manager_mapping_move() is the one operation that takes it from one backend or server to
 * another, same object, same path.
 */

#include "pcpd-manager-private.h"

#include <errno.h>
#include <string.h>

#include "pcpd-backend.h"
#include "pcpd-log.h"
#include "pcpd-servers.h"

/* The backend that holds mp: "direct", "pcp" (the engine holds it), or NULL (waiting for a
 * server, or the fallback only). */
pcpd_backend *manager_mapping_backend(pcpd_manager *m, const pcpd_mapping *mp) {
        (void) m;
        /* (the backend's word too: "pcp" may have dropped it, its news on the way) */
        return pcpd_backend_holds(mp->held_by, mp) ? mp->held_by : NULL;
}

/* A mapping backend b holds now, not yet published (or published again without a word):
 * its state, error and addresses as b has them; b's news reaches it from now on. For a new
 * mapping on a server that is the internal address the engine chose, and failed already
 * if the server is known to refuse it (disabled, speaks no PCP we know). */
void manager_mapping_show(pcpd_manager *m, pcpd_mapping *mp, pcpd_backend *b) {
        char buf[PCP_ADDR_STRLEN];
        pcpd_backend_info bi;

        if (!pcpd_backend_info_of(b, mp, &bi))
                return;
        set_shared(&mp->internal_address, pcp_addr_to_string(&bi.internal_addr, buf));
        set_name(&mp->state, bi.state);
        set_name(&mp->error, bi.error);
        if (bi.has_external) {
                set_shared(&mp->external_address, pcp_addr_to_string(&bi.external_addr, buf));
                mp->external_port = bi.external_port;
                mp->granted = bi.lifetime_granted;
        }
}

/* The mapping's upstream mapping on server s (with its nonce; suggested_external: NULL or
 * the external address to ask for): the request leaves at the next drain. */
int manager_mapping_start_on_server(pcpd_manager *m, pcpd_mapping *mp, pcpd_server *s,
                                    const struct in6_addr *suggested_external) {
        int r = m->pcp->ops->add(m->pcp, mp, s, suggested_external);

        if (r < 0)
                return r;
        manager_mapping_set_held(m, mp, m->pcp);
        mp->server = s;
        set_shared(&mp->server_text, s->text);
        return 0;
}

/* mp's upstream mapping on server s, with its nonce when keep_nonce (else a fresh one):
 * mp's record, with that nonce and s, is on disk before the request leaves, so that a
 * daemon killed the moment it has left renews or deletes it after its restart. On failure
 * mp is as it was and nothing was sent; ret_state: the state directory failed (else the
 * engine refused). */
int manager_mapping_start_saved(pcpd_manager *m, pcpd_mapping *mp, pcpd_server *s,
                                const struct in6_addr *suggested_external, bool keep_nonce, bool *ret_state) {
        pcpd_backend *was = mp->held_by;
        bool had_nonce = mp->has_nonce;
        uint8_t old_nonce[PCP_NONCE_LEN];
        g_autofree char *old_server = g_strdup(mp->server_text);
        int r;

        memcpy(old_nonce, mp->nonce, sizeof(old_nonce));
        if (!keep_nonce || !mp->has_nonce)
                m->pcp->ops->random(m->pcp, mp->nonce, PCP_NONCE_LEN);
        mp->has_nonce = true;
        manager_mapping_set_held(m, mp, NULL); /* (its record: not direct) */
        set_shared(&mp->server_text, s->text);
        r = manager_persist_mapping(m, mp);
        *ret_state = r < 0;
        if (r >= 0)
                r = manager_mapping_start_on_server(m, mp, s, suggested_external);
        if (r >= 0)
                return 0;
        mp->has_nonce = had_nonce;
        memcpy(mp->nonce, old_nonce, sizeof(old_nonce));
        manager_mapping_set_held(m, mp, was);
        set_shared(&mp->server_text, old_server);
        if (!*ret_state) {
                /* the record went out, the request did not: what was saved before */
                pcpd_state_mapping rec;
                if (manager_mapping_to_record(mp, &rec))
                        (void) manager_persist_mapping(m, mp);
                else
                        manager_persist_removal(m, mp->id);
        }
        return r;
}

/*
 * The one move: mp goes to backend `to`, on server s ("pcp": the server; "direct": NULL,
 * with the host's own address own), same object. From "direct" to a server that answers
 * now (a new upstream mapping, fresh nonce); from no server (its server went, or the
 * primary connection moved: manager_mapping_leave() first) to the server that serves it
 * now, with its nonce (C1: on a server it was on, the server sees a refresh and keeps the
 * port; C2: on another server it is a new mapping); from a server to "direct" (deleted
 * there first). Published: Server, then what `to` has for it now. Held on s by `to`
 * already: nothing to do. On failure mp keeps what it had when it was direct, and waits
 * for a server otherwise; -errno.
 */
int manager_mapping_move(pcpd_manager *m, pcpd_mapping *mp, pcpd_backend *to, pcpd_server *s,
                         const struct in6_addr *own) {
        bool from_direct = mp->held_by == m->direct, state = false, same, has_ext;
        g_autofree char *from = g_strdup(from_direct ? mp->external_address : pcpd_mapping_prev_server(mp));
        struct in6_addr ext;
        pcpd_backend_info bi;
        int r;

        if (to == m->direct) {
                if (mp->server != NULL)
                        manager_mapping_leave(m, mp);
                r = manager_mapping_start_direct(m, mp, own);
                if (r >= 0) {
                        r = manager_persist_mapping(m, mp);
                        if (r < 0) {
                                /* not saved as direct: not direct either (its record
                                 * still says where it was), it waits like any other */
                                pcpd_backend_remove(m->direct, mp, 0); /* (nothing upstream) */
                                manager_mapping_set_held(m, mp, NULL);
                        }
                }
                if (r < 0) {
                        g_warning("Mapping %s cannot have the host's own address: %s", PCPD_MAPPING_PATH(mp), g_strerror(-r));
                        manager_mapping_wait(m, mp);
                        return r;
                }
                pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_MOVED, mp, NULL, NULL,
                                 "Mapping %s has the host's own address %s now", PCPD_MAPPING_PATH(mp), mp->external_address);
                mp->expires_at = 0;
                pcpd_manager_emit_mapping_changed(
                        m, mp,
                        PCPD_MAPPING_CHANGED_SERVER | PCPD_MAPPING_CHANGED_STATE | PCPD_MAPPING_CHANGED_ERROR |
                                PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS | PCPD_MAPPING_CHANGED_EXTERNAL_PORT |
                                PCPD_MAPPING_CHANGED_LIFETIME | PCPD_MAPPING_CHANGED_EXPIRES_AT |
                                PCPD_MAPPING_CHANGED_INTERNAL_ADDRESS);
                return 0;
        }
        if (mp->server == s && mp->server != NULL && pcpd_backend_holds(to, mp))
                return 0; /* already there */
        if (mp->server != NULL && mp->server != s)
                manager_mapping_leave(m, mp);
        same = !from_direct && from != NULL && strcmp(from, s->text) == 0;
        /* the external address it had, asked for again (not the host's own) */
        has_ext = !from_direct && !mp->has_suggested_address && mp->external_address != NULL &&
                  pcp_addr_from_string(mp->external_address, &ext);
        /* from a server, always its nonce: a server it was on before (maybe not the last
         * one: A, then B, then A again) still holds it under that nonce and would refuse
         * another one (NOT_AUTHORIZED) until it expires; on a new server it does no harm.
         * From "direct": a new upstream mapping, a fresh nonce */
        r = manager_mapping_start_saved(m, mp, s, has_ext ? &ext : NULL, !from_direct, &state);
        if (r == -EEXIST && mp->has_nonce && !from_direct)
                /* its delete on the server it left is still on its way under that nonce */
                r = manager_mapping_start_saved(m, mp, s, has_ext ? &ext : NULL, false, &state);
        if (r < 0 && from_direct) {
                g_warning("Mapping %s keeps the host's own address: PCP server %s answers now, but the mapping "
                          "cannot be made there: %s%s",
                          PCPD_MAPPING_PATH(mp), s->text, state ? "its nonce cannot be saved: " : "", g_strerror(-r));
                return r;
        }
        if (r < 0) {
                g_warning("Mapping %s cannot be made on PCP server %s: %s%s", PCPD_MAPPING_PATH(mp), s->text,
                          state ? "its nonce cannot be saved: " : "", g_strerror(-r));
                manager_mapping_wait(m, mp);
                return r;
        }
        pcpd_mapping_set_str(mp, prev_server, NULL);
        if (from_direct)
                pcpd_backend_remove(m->direct, mp, 0); /* (nothing upstream) */
        if (from_direct)
                pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_MOVED, mp, NULL, NULL,
                                 "Mapping %s moves to PCP server %s, which answers now (it had the host's own "
                                 "address %s)",
                                 PCPD_MAPPING_PATH(mp), s->text, from);
        else
                pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_MOVED, mp, NULL, NULL,
                                 "Mapping %s %s PCP server %s%s%s", PCPD_MAPPING_PATH(mp), same ? "is made again on" : "moves to",
                                 s->text, from != NULL && !same ? ", from " : "", from != NULL && !same ? from : "");
        pcpd_manager_emit_mapping_changed(m, mp, PCPD_MAPPING_CHANGED_SERVER);
        if (pcpd_backend_info_of(to, mp, &bi))
                manager_mapping_sync(m, mp, &bi);
        pcpd_backend_drain(to);
        pcpd_backend_kick(to);
        return 0;
}

/* mp's request leaves the engine (a delete with its nonce while it had a grant) and its
 * server: what leaving and waiting share */
static void mapping_detach_server(pcpd_manager *m, pcpd_mapping *mp) {
        pcpd_backend_remove(m->pcp, mp, 0);
        if (mp->held_by == m->pcp)
                manager_mapping_set_held(m, mp, NULL);
        mp->server = NULL;
}

/* mp leaves its server, which is still there (the primary connection moved): deleted
 * there at once (lifetime 0, its nonce: C4), so that one external port does not forward
 * to the host twice; then moved or set waiting by the caller. */
void manager_mapping_leave(pcpd_manager *m, pcpd_mapping *mp) {
        mapping_detach_server(m, mp);
        if (mp->server_text != NULL && mp->server_text[0] != '\0')
                pcpd_mapping_set_str(mp, prev_server, mp->server_text);
}

/* No server for a mapping whose server went: it waits for one, failed with NO_SERVER. */
void manager_mapping_wait(pcpd_manager *m, pcpd_mapping *mp) {
        pcpd_mapping_changed what = 0;

        mapping_detach_server(m, mp);
        if (mp->server_text != NULL && mp->server_text[0] != '\0' && pcpd_mapping_prev_server(mp) == NULL)
                pcpd_mapping_set_str(mp, prev_server, mp->server_text);
        if (set_shared(&mp->server_text, ""))
                what |= PCPD_MAPPING_CHANGED_SERVER;
        if (set_name(&mp->state, PCP1_MAPPING_FAILED))
                what |= PCPD_MAPPING_CHANGED_STATE;
        if (set_name(&mp->error, PCP1_MAPPING_ERROR_NO_SERVER))
                what |= PCPD_MAPPING_CHANGED_ERROR;
        if (set_shared(&mp->external_address, ""))
                what |= PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS;
        if (what == 0)
                return;
        pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_MOVED, mp, NULL, NULL,
                         "Mapping %s waits for a %s PCP server (it was on %s, which is gone)", PCPD_MAPPING_PATH(mp),
                         mp->family == AF_INET ? "IPv4" : "IPv6", pcpd_mapping_prev_server(mp) ?: "none");
        pcpd_manager_emit_mapping_changed(m, mp, what);
}

