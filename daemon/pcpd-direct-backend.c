/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * "direct" behind the one backend interface (pcpd-backend.h): a host that is not behind a
 * NAT (pcpd-direct.h's rules say when; the manager decides, with the host's addresses)
 * holds a mapping itself: active at once, for as long as its holders want it, with the
 * host's own address as external address and its internal port as external port. Nothing
 * is sent anywhere, no server is used, nothing is told up (nothing ever changes on its own:
 * when the host's address goes, the manager moves the mapping). Its part of a mapping is
 * the address it was given (mp->held_by, set by the manager, says
 * that "direct" holds mp).
 */

#include "pcpd-backend.h"

#include <glib.h>
#include <errno.h>
#include <string.h>

#include "pcp1-contract.h"

static void direct_free(pcpd_backend *b) {
        g_free(b);
}

/* the host's own address: the external address (and so the internal one) */
static int direct_add(pcpd_backend *b, pcpd_mapping *mp, pcpd_server *s, const struct in6_addr *own) {
        char buf[PCP_ADDR_STRLEN];

        if (own == NULL || s != NULL)
                return -EINVAL;
        pcp_addr_to_string(own, buf);
        /* a shared string, as the manager keeps it (set_shared()) */
        if (mp->external_address != NULL)
                g_ref_string_release(mp->external_address);
        mp->external_address = g_ref_string_new_intern(buf);
        return 0;
}

/* nothing upstream; the manager sets mp->held_by again */
static void direct_remove(pcpd_backend *b, pcpd_mapping *mp, uint64_t cookie) {
}

static void direct_detach(pcpd_backend *b, pcpd_mapping *mp) {
}

static bool direct_holds(pcpd_backend *b, const pcpd_mapping *mp) {
        return mp->held_by == b;
}

static bool direct_info(pcpd_backend *b, const pcpd_mapping *mp, pcpd_backend_info *ret) {
        struct in6_addr a;

        if (mp->held_by != b || mp->external_address == NULL || !pcp_addr_from_string(mp->external_address, &a))
                return false;
        *ret = (pcpd_backend_info) {
                .state = PCP1_MAPPING_ACTIVE,
                .error = "",
                .has_external = true,
                .external_addr = a,
                .external_port = mp->internal_port,
                .internal_addr = a,
                .lifetime_granted = mp->lifetime,
        };
        return true;
}

static const pcpd_backend_ops direct_ops = {
        .protocol = "direct",
        .free = direct_free,
        .add = direct_add,
        .remove = direct_remove,
        .detach = direct_detach,
        .holds = direct_holds,
        .info = direct_info,
};

int pcpd_direct_backend_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings,
                            pcpd_backend **ret) {
        pcpd_backend *b = g_new0(pcpd_backend, 1);

        b->ops = &direct_ops;
        b->events = events;
        b->userdata = userdata;
        *ret = b;
        return 0;
}
