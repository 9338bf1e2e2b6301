/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The manager's side of the UPnP-IGD fallback (pcpd-backend.h, pcpd-manager-private.h):
 * which mappings it is handed (those whose server speaks neither PCP nor NAT-PMP), when it
 * lets go of one (the engine holds it after all), the deletes it must have confirmed
 * (kept as deleting records, pcpd-deleting.c), the requests refused at once because the
 * router there cannot take them, and its news (manager_fallback_events).
 */

#include "pcpd-manager-private.h"

#include <string.h>

#include "pcpd-backend.h"
#include "pcpd-log.h"

/* A delete by the fallback of its part of mp that must be confirmed: its record kept, on
 * disk, first; the cookie to give the backend (0: none to keep). */
static uint64_t backend_keep_delete(pcpd_manager *m, const pcpd_mapping *mp) {
        pcpd_state_mapping rec;

        if (m->upnp->ops->deleting_record == NULL || !m->upnp->ops->deleting_record(m->upnp, mp, &rec))
                return 0;
        return manager_keep_deleting(m, &rec);
}

/* The engine holds mp now (its server answers PCP or NAT-PMP after all): the backend
 * lets go of it. */
void manager_backend_takeover(pcpd_manager *m, pcpd_mapping *mp, const pcpd_backend_info *i) {
        pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_MOVED, mp, NULL, NULL,
                         "Mapping %s moves from UPnP-IGD to %s, which answers now", PCPD_MAPPING_PATH(mp), mp->server_text);
        m->upnp->ops->handover(m->upnp, mp, i->has_external ? i->external_port : 0, backend_keep_delete(m, mp));
        /* its record loses the fallback's part (upnp_interface...) now: the sync that
         * follows saves it only when the external address or port changed, and a
         * restarted pcpd would re-add it through UPnP-IGD too */
        (void) manager_persist_mapping(m, mp);
}

/* mp goes: the fallback deletes its part (with its own deleting record when the delete
 * must be confirmed). */
void manager_backend_remove(pcpd_manager *m, pcpd_mapping *mp) {
        if (mp->backend != NULL)
                m->upnp->ops->remove(m->upnp, mp, backend_keep_delete(m, mp));
}

/* Hands every mapping whose server speaks no PCP and that the engine does not hold to the
 * UPnP-IGD backend (what it refuses stays as the engine has it: failed, with its error). */
static gboolean on_backend_check(gpointer data) {
        pcpd_manager *m = data;
        g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);

        m->backend_check_source = 0;
        for (guint k = 0; k < m->servers->len; k++)
                if (manager_server_speaks_no_pcp(m, m->servers->pdata[k]))
                        m->upnp->ops->watch(m->upnp, m->servers->pdata[k]);
        for (guint k = 0; k < all->len; k++) {
                pcpd_mapping *mp = all->pdata[k];
                pcpd_backend_info bi;

                if (mp->backend != NULL || !pcpd_backend_holds(m->pcp, mp) || !manager_server_speaks_no_pcp(m, mp->server))
                        continue;
                /* granted there (or renewing) after all */
                if (pcpd_backend_info_of(m->pcp, mp, &bi) && strcmp(bi.state, PCP1_MAPPING_ACTIVE) == 0)
                        continue;
                if (m->upnp->ops->refuse_reason(m->upnp, mp, mp->server) != NULL)
                        continue;
                (void) m->upnp->ops->add(m->upnp, mp, mp->server, NULL);
        }
        return G_SOURCE_REMOVE;
}

void manager_backend_check_soon(pcpd_manager *m) {
        if (m->upnp != NULL && m->backend_check_source == 0)
                m->backend_check_source = g_idle_add(on_backend_check, m);
}

/* ---- the fallback's news (pcpd-backend-events.h) ---- */

/* mp's state as the fallback has it (once it has found a router of its kind) */
static void on_fallback_mapping_changed(void *userdata, pcpd_mapping *mp, const pcpd_backend_info *i, bool granted) {
        (void) granted;
        if (i != NULL)
                manager_mapping_sync(userdata, mp, i);
}

/* (not told by the UPnP-IGD backend) it let go of mp by itself: the engine's state shows
 * again */
static void on_fallback_mapping_lost(void *userdata, pcpd_mapping *mp) {
        pcpd_manager *m = userdata;
        pcpd_backend_info bi;

        if (pcpd_backend_info_of(m->pcp, mp, &bi))
                manager_mapping_sync(m, mp, &bi);
}

static void on_fallback_mapping_record_changed(void *userdata, pcpd_mapping *mp) {
        (void) manager_persist_mapping(userdata, mp);
}

static void on_fallback_deleting_done(void *userdata, uint64_t cookie, bool confirmed) {
        manager_deleting_fallback_done(userdata, cookie, confirmed);
}

/* its routers changed (Servers, ExternalAddresses); it has none of the manager's */
static void on_fallback_server_changed(void *userdata, pcpd_server *s, const pcpd_server_status *st) {
        pcpd_manager *m = userdata;

        (void) s;
        (void) st;
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_SERVERS | PCPD_MANAGER_CHANGED_EXTERNAL_ADDRESSES);
        manager_update_state(m);
}

/* (not told by the UPnP-IGD backend, which recreates and logs per mapping) */
static void on_fallback_server_epoch_reset(void *userdata, pcpd_server *s, bool repeated, bool from_announce) {
        (void) s;
        (void) repeated;
        (void) from_announce;
        pcpd_manager_emit_changed(userdata, PCPD_MANAGER_CHANGED_SERVERS);
}

/* (not told by the UPnP-IGD backend either, which renews and logs per mapping; and
 * nothing a client sees changes with it: see on_pcp_server_recreate()) */
static void on_fallback_server_recreate(void *userdata, pcpd_server *s, bool repeated, bool from_announce,
                                        size_t n_mappings) {
        (void) userdata;
        (void) s;
        (void) repeated;
        (void) from_announce;
        (void) n_mappings;
}

const pcpd_backend_events manager_fallback_events = {
        .mapping_changed = on_fallback_mapping_changed,
        .mapping_lost = on_fallback_mapping_lost,
        .mapping_record_changed = on_fallback_mapping_record_changed,
        .deleting_done = on_fallback_deleting_done,
        .server_changed = on_fallback_server_changed,
        .server_epoch_reset = on_fallback_server_epoch_reset,
        .server_recreate = on_fallback_server_recreate,
};

/* A request the backend would get if the server takes no PCP, refused now, and clearly,
 * when the backend's router is there and cannot do it. */
int manager_backend_refuse(pcpd_manager *m, const pcpd_mapping_request *req, int family, pcpd_server *s,
                          pcpd_failure *error) {
        pcpd_backend_server routers[PCPD_MAX_SERVERS]; /* as many as ExternalAddresses reads */
        size_t n;
        bool here = false;
        const char *why;
        struct pcpd_mapping_addrs addrs = { .third_party = req->third_party };
        struct pcpd_mapping_rare rare = { .n_filters = req->n_filters };
        pcpd_mapping probe = {
                .manager = m,
                .opcode = req->opcode,
                .protocol = req->protocol,
                .family = family,
                .internal_port = req->internal_port,
                .suggested_port = req->suggested_port,
                .lifetime = 1,
                .prefer_failure = req->prefer_failure,
                .has_third_party = req->has_third_party,
                .addrs = req->has_third_party ? &addrs : NULL,
                .rare = req->n_filters > 0 ? &rare : NULL,
        };

        if (m->upnp == NULL || s == NULL || !manager_server_speaks_no_pcp(m, s))
                return 0;
        n = m->upnp->ops->servers(m->upnp, routers, G_N_ELEMENTS(routers));
        for (size_t k = 0; k < n; k++)
                here = here || strcmp(routers[k].ifname, s->ifname) == 0;
        if (!here || (why = m->upnp->ops->refuse_reason(m->upnp, &probe, s)) == NULL)
                return 0;
        return pcpd_fail(error, PCPD_ERROR_UNSUPPORTED, "%s", why);
}

