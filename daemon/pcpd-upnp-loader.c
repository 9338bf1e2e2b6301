/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcpd-upnp.h's functions in the daemon: each calls the one of pcpd-upnp.so (loaded on
 * the first call that needs it, pcpd-module.h), so that GUPnP, gssdp, libsoup and libxml2
 * are mapped only once a mapping falls back to UPnP-IGD. Without the module, creating a
 * client fails with -ELIBACC and pcpd_upnp_refuse_reason() says why: the mapping stays
 * with PCP (failed, as without the fallback).
 */

#include <errno.h>

#include "pcpd-upnp-module.h"

static pcpd_module upnp_module = {
        .file = PCPD_UPNP_MODULE_FILE,
        .symbol = PCPD_UPNP_MODULE_SYMBOL,
        .feature = "The UPnP-IGD fallback",
        .abi = PCPD_UPNP_MODULE_ABI,
        .size = sizeof(pcpd_upnp_module),
};

static const pcpd_upnp_module *upnp(void) {
        const pcpd_upnp_module *t = pcpd_module_get(&upnp_module);

        if (t != NULL &&
            (t->sizeof_info != sizeof(pcpd_upnp_info) || t->sizeof_request != sizeof(pcpd_upnp_request) ||
             t->sizeof_record != sizeof(pcpd_upnp_record) || t->sizeof_igd_info != sizeof(pcpd_upnp_igd_info) ||
             t->sizeof_event != sizeof(pcpd_upnp_event) || t->sizeof_stats != sizeof(pcpd_upnp_stats))) {
                g_warning("The UPnP-IGD fallback is not available: the module %s/%s is from another build of pcpd "
                          "(its types differ)",
                          pcpd_module_dir(), PCPD_UPNP_MODULE_FILE);
                upnp_module.table = NULL;
                return NULL;
        }
        return t;
}

/* only reached with a pcpd_upnp, which only the module makes */
#define LOADED(t, fail)                    \
        do {                               \
                if ((t) == NULL)           \
                        return fail;       \
        } while (0)

int pcpd_upnp_new(GMainContext *context, const pcpd_upnp_config *config, const pcpd_upnp_ops *ops, void *userdata,
                  pcpd_upnp **ret) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, -ELIBACC);
        return t->new_(context, config, ops, userdata, ret);
}

pcpd_upnp *pcpd_upnp_free(pcpd_upnp *u) {
        const pcpd_upnp_module *t = u != NULL ? upnp() : NULL;

        LOADED(t, NULL);
        return t->free_(u);
}

int pcpd_upnp_set_interface(pcpd_upnp *u, const char *ifname, int family, const struct in6_addr *gateway) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, -ELIBACC);
        return t->set_interface(u, ifname, family, gateway);
}

const char *pcpd_upnp_refuse_reason(pcpd_upnp *u, const pcpd_upnp_request *req) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, "The router speaks neither PCP nor NAT-PMP, and pcpd's UPnP-IGD module (" PCPD_UPNP_MODULE_FILE
                  ") is not installed or cannot be loaded (see pcpd's log).");
        return t->refuse_reason(u, req);
}

int pcpd_upnp_add(pcpd_upnp *u, const pcpd_upnp_request *req, uint64_t *ret_id) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, -ELIBACC);
        return t->add(u, req, ret_id);
}

int pcpd_upnp_remove(pcpd_upnp *u, uint64_t id) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, -ENOENT);
        return t->remove(u, id);
}

int pcpd_upnp_remove_record(pcpd_upnp *u, const pcpd_upnp_record *rec, uint64_t *ret_id) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, -ELIBACC);
        return t->remove_record(u, rec, ret_id);
}

int pcpd_upnp_forget(pcpd_upnp *u, uint64_t id) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, -ENOENT);
        return t->forget(u, id);
}

const pcpd_upnp_info *pcpd_upnp_get(pcpd_upnp *u, uint64_t id) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, NULL);
        return t->get(u, id);
}

int pcpd_upnp_get_record(pcpd_upnp *u, uint64_t id, pcpd_upnp_record *ret) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, -ENOENT);
        return t->get_record(u, id, ret);
}

const pcpd_upnp_igd_info *pcpd_upnp_get_igd(pcpd_upnp *u) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, NULL);
        return t->get_igd(u);
}

size_t pcpd_upnp_count(pcpd_upnp *u) {
        const pcpd_upnp_module *t = u != NULL ? upnp() : NULL;

        LOADED(t, 0);
        return t->count(u);
}

size_t pcpd_upnp_n_busy(pcpd_upnp *u) {
        const pcpd_upnp_module *t = u != NULL ? upnp() : NULL;

        LOADED(t, 0);
        return t->n_busy(u);
}

const pcpd_upnp_stats *pcpd_upnp_get_stats(pcpd_upnp *u) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, NULL);
        return t->get_stats(u);
}

const char *pcpd_upnp_state_to_string(pcpd_upnp_state s) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, "unknown");
        return t->state_to_string(s);
}

const char *pcpd_upnp_error_name(pcpd_upnp_error e) {
        const pcpd_upnp_module *t = upnp();

        LOADED(t, "UNKNOWN");
        return t->error_name(e);
}
