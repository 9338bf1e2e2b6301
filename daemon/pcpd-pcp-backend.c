/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The PCP/NAT-PMP backend behind the one backend interface (pcpd-backend.h): each
 * operation is the pcpd-pcp.h call of the same name, and pcpd-pcp tells its news in the
 * backend's own events (pcpd-backend-events.h), straight to the owner. No state of its
 * own beyond the pcpd_pcp.
 */

#include "pcpd-backend.h"

#include <glib.h>

#include "pcpd-pcp.h"

typedef struct pcp_backend {
        pcpd_backend base;
        pcpd_pcp *pcp;
} pcp_backend;

static pcpd_pcp *P(pcpd_backend *b) {
        return ((pcp_backend *) b)->pcp;
}

/* ---- calls down ---- */

static void op_start(pcpd_backend *b, uint16_t announce_port) {
        pcpd_pcp_start(P(b), announce_port);
}

static void op_stop(pcpd_backend *b) {
        pcpd_pcp_stop(P(b));
}

static void op_free(pcpd_backend *b) {
        if (b == NULL)
                return;
        pcpd_pcp_free(P(b));
        g_free(b);
}

static void op_drain(pcpd_backend *b) {
        pcpd_pcp_drain(P(b));
}

static void op_kick(pcpd_backend *b) {
        pcpd_pcp_kick(P(b));
}

static void op_random(pcpd_backend *b, void *buf, size_t len) {
        pcpd_pcp_random(P(b), buf, len);
}

static int op_server_add(pcpd_backend *b, pcpd_server *s) {
        return pcpd_pcp_server_add(P(b), s);
}

static void op_server_remove(pcpd_backend *b, pcpd_server *s) {
        pcpd_pcp_server_remove(P(b), s);
}

static bool op_server_status(pcpd_backend *b, const pcpd_server *s, pcpd_server_state *ret) {
        *ret = pcpd_pcp_server_state(P(b), s);
        return pcpd_pcp_server_known(P(b), s);
}

static bool op_server_external(pcpd_backend *b, const pcpd_server *s, struct in6_addr *ret) {
        return pcpd_pcp_server_external(P(b), s, ret);
}

static size_t op_server_local_addresses(pcpd_backend *b, const pcpd_server *s, struct in6_addr *ret, size_t max) {
        return pcpd_pcp_server_local_addresses(P(b), s, ret, max);
}

static bool op_server_view(pcpd_backend *b, const pcpd_server *s, pcpd_server_view *ret) {
        return pcpd_pcp_server_view(P(b), s, ret);
}

static int op_add(pcpd_backend *b, pcpd_mapping *mp, pcpd_server *s, const struct in6_addr *external) {
        return pcpd_pcp_mapping_add(P(b), mp, s, external);
}

static void op_remove(pcpd_backend *b, pcpd_mapping *mp, uint64_t cookie) {
        pcpd_pcp_mapping_remove(P(b), mp, cookie);
}

static void op_detach(pcpd_backend *b, pcpd_mapping *mp) {
        pcpd_pcp_mapping_detach(P(b), mp);
}

static bool op_holds(pcpd_backend *b, const pcpd_mapping *mp) {
        return pcpd_pcp_mapping_held(mp);
}

static bool op_info(pcpd_backend *b, const pcpd_mapping *mp, pcpd_backend_info *ret) {
        return pcpd_pcp_mapping_view(P(b), mp, ret);
}

static bool op_delete_until(pcpd_backend *b, const pcpd_mapping *mp, uint64_t *ret) {
        return pcpd_pcp_mapping_delete_until(P(b), mp, ret);
}

static int op_delete_saved(pcpd_backend *b, const pcpd_state_mapping *rec, pcpd_server *s, uint64_t cookie) {
        return pcpd_pcp_delete_saved(P(b), rec, s, cookie);
}

static void op_delete_forget(pcpd_backend *b, uint64_t cookie) {
        pcpd_pcp_delete_forget(P(b), cookie);
}

static const pcpd_backend_ops pcp_backend_ops = {
        .protocol = "pcp",
        .start = op_start,
        .stop = op_stop,
        .free = op_free,
        .drain = op_drain,
        .kick = op_kick,
        .random = op_random,
        .server_add = op_server_add,
        .server_remove = op_server_remove,
        .server_status = op_server_status,
        .server_external = op_server_external,
        .server_local_addresses = op_server_local_addresses,
        .server_view = op_server_view,
        .add = op_add,
        .remove = op_remove,
        .detach = op_detach,
        .holds = op_holds,
        .info = op_info,
        .delete_until = op_delete_until,
        .delete_saved = op_delete_saved,
        .delete_forget = op_delete_forget,
};

int pcpd_pcp_backend_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings, pcpd_backend **ret) {
        pcp_backend *b = g_new0(pcp_backend, 1);
        int r;

        b->base.ops = &pcp_backend_ops;
        b->base.events = events;
        b->base.userdata = userdata;
        r = pcpd_pcp_new(events, userdata, max_mappings, &b->pcp);
        if (r < 0) {
                g_free(b);
                return r;
        }
        *ret = &b->base;
        return 0;
}
