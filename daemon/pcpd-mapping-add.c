/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Adding a mapping (pcpd_manager_add_mapping()): the plan (its family, its server, or
 * direct when the host is not behind a NAT: pcpd-direct.h's rules), the checks in the
 * order a caller is told of them (switched off, what direct cannot do, what the UPnP-IGD
 * fallback's router cannot take, no server, another user's port, quotas), sharing an
 * existing mapping of the same key with its user (and reclaiming one a restart left
 * waiting), and a new mapping: on disk before anything leaves or anyone is told, then
 * registered, held and published. pcpd_manager_internal_addresses() answers from the
 * same plan (where a mapping for that request may point).
 */

#include "pcpd-manager-private.h"

#include <errno.h>
#include <string.h>

#include "pcpd-backend.h"
#include "pcpd-holders.h"
#include "pcpd-log.h"
#include "pcpd-servers.h"

static pcpd_server *choose_server(pcpd_manager *m, int family, const char *interface) {
        return pcpd_servers_choose(m, family, interface); /* pcpd-servers.c: RFC 7488, the primary interface */
}

/* A change the caller asked for could not be saved: refused, with what to do. */
static int state_refused(pcpd_manager *m, int r, pcpd_failure *error) {
        return pcpd_fail(error, PCPD_ERROR_CANNOT_SAVE_STATE,
                         "pcpd cannot save its state in %s (%s). Without the mapping on disk a crash would "
                         "leave it on the router, so it is refused; free space there and try again.",
                         m->state_dir, g_strerror(-r));
}

/* Where a new mapping for req would go: its family, the server (NULL: none), and whether
 * it is direct (own: the host's address then). */
static void mapping_plan(pcpd_manager *m, const pcpd_mapping_request *req, int *ret_family, pcpd_server **ret_server,
                         bool *ret_direct, struct in6_addr *ret_own) {
        const pcpd_direct_request dr = {
                .has_third_party = req->has_third_party,
                .prefer_failure = req->prefer_failure,
                .internal_port = req->internal_port,
                .suggested_port = req->suggested_port,
        };
        int family = req->family;
        pcpd_server *s;
        bool direct;

        if (family == 0) {
                bool v4_server = choose_server(m, AF_INET, req->interface) != NULL;
                family = pcpd_direct_plan_family(
                        0, v4_server, !v4_server && manager_host_global_address(m, AF_INET, req->interface, NULL));
        }
        s = choose_server(m, family, req->interface);
        /* the rules are pcpd-direct.h's; the host is looked at only when they need it (not
         * for THIRD_PARTY, which is for another host) */
        direct = pcpd_direct_plan(&dr, !req->has_third_party && manager_host_is_direct(m, family, req->interface, ret_own),
                                  s != NULL);
        *ret_family = family;
        *ret_server = s;
        *ret_direct = direct;
}

size_t pcpd_manager_internal_addresses(pcpd_manager *m, const pcpd_mapping_request *req, int *ret_family,
                                       struct in6_addr *ret, size_t max) {
        pcpd_server *s;
        struct in6_addr own;
        bool direct;

        mapping_plan(m, req, ret_family, &s, &direct, &own);
        if (req->has_third_party || max == 0)
                return 0;
        if (direct) {
                ret[0] = own;
                return 1;
        }
        /* the backend sends from whichever of the server's addresses answers: each one's
         * local end is where the mapping may point */
        return s != NULL ? m->pcp->ops->server_local_addresses(m->pcp, s, ret, max) : 0;
}

static bool filter_equal(const pcp_filter *a, const pcp_filter *b) {
        return a->prefix_len == b->prefix_len && a->remote_port == b->remote_port &&
               memcmp(&a->remote_addr, &b->remote_addr, sizeof(a->remote_addr)) == 0;
}

/* every filter of a[] is one of b[] */
static bool filters_within(const pcp_filter *a, uint8_t na, const pcp_filter *b, uint8_t nb) {
        for (uint8_t i = 0; i < na; i++) {
                bool found = false;
                for (uint8_t j = 0; j < nb && !found; j++)
                        found = filter_equal(&a[i], &b[j]);
                if (!found)
                        return false;
        }
        return true;
}

/* the same filters, in any order (a caller need not list them as the first one did); a list
 * may name one twice, so each side is checked against the other */
static bool filters_equal(const pcpd_mapping *mp, const pcpd_mapping_request *req) {
        const pcp_filter *f = pcpd_mapping_filters(mp);
        uint8_t n = pcpd_mapping_n_filters(mp);

        return n == req->n_filters && filters_within(req->filters, req->n_filters, f, n) &&
               filters_within(f, n, req->filters, req->n_filters);
}

/* Whether mp has been granted its external address and port (a direct one always is). */
static bool mapping_granted(const pcpd_mapping *mp) {
        return mp->external_port != 0 &&
               (g_strcmp0(mp->state, PCP1_MAPPING_ACTIVE) == 0 || g_strcmp0(mp->state, PCP1_MAPPING_RENEWING) == 0);
}

/* A second request of mp's user for mp's key shares mp (another app of the user, or an app
 * reclaiming its mapping after a restart): what it asks for beyond the key must be what mp
 * is, or is asking for, or that request would be told of a success it did not get. Refused
 * (PCPD_ERROR_CONFLICT, with what mp has) when it differs in what mp cannot give it: a
 * port or address required with prefer-failure, the third party, the filters, the
 * interface it names. Its description and lifetime are the first request's (a hint to the
 * server, the first holder's words), and so are a port and an address only suggested.
 * Returns 0 when mp can be shared. */
static int share_refused(const pcpd_mapping *mp, const pcpd_mapping_request *req, pcpd_failure *error) {
        const char *proto = pcp_protocol_to_string(mp->protocol) ?: "this protocol";
        const char *iface = pcpd_mapping_interface(mp);
        char buf[PCP_ADDR_STRLEN], want[PCP_ADDR_STRLEN];
        bool granted = mapping_granted(mp);

        if (req->prefer_failure) {
                uint16_t has = granted ? mp->external_port : mp->suggested_port;

                if (req->suggested_port != has) {
                        char has_text[64];

                        if (granted)
                                g_snprintf(has_text, sizeof(has_text), "and its external port is %u", has);
                        else if (has != 0)
                                g_snprintf(has_text, sizeof(has_text), "which asked for external port %u", has);
                        else
                                g_snprintf(has_text, sizeof(has_text),
                                           "which asked for no particular external port and has none yet");
                        return pcpd_fail(error, PCPD_ERROR_CONFLICT,
                                         "You already hold a mapping of %s port %u, %s, not %u (prefer-failure): "
                                         "release it first, or share it without prefer-failure.",
                                         proto, mp->internal_port, has_text, req->suggested_port);
                }
                if (req->has_external_address) {
                        struct in6_addr has_addr;
                        bool known = granted ? pcp_addr_from_string(mp->external_address, &has_addr)
                                             : mp->has_suggested_address;

                        if (!granted && known)
                                has_addr = *pcpd_mapping_suggested_address(mp);
                        if (!known || memcmp(&has_addr, &req->external_address, sizeof(has_addr)) != 0)
                                return pcpd_fail(error, PCPD_ERROR_CONFLICT,
                                                 "You already hold a mapping of %s port %u, %s %s, not %s "
                                                 "(prefer-failure): release it first, or share it without "
                                                 "prefer-failure.",
                                                 proto, mp->internal_port,
                                                 granted ? "whose external address is"
                                                 : known ? "which asked for external address"
                                                         : "which asked for no particular external address",
                                                 !known ? "" : pcp_addr_to_string(&has_addr, buf),
                                                 pcp_addr_to_string(&req->external_address, want));
                }
        }
        if (req->has_third_party != mp->has_third_party ||
            (req->has_third_party &&
             memcmp(&req->third_party, pcpd_mapping_third_party(mp), sizeof(req->third_party)) != 0)) {
                if (mp->has_third_party)
                        return pcpd_fail(
                                error, PCPD_ERROR_CONFLICT,
                                "You already hold a mapping of %s port %u for the third party %s: release "
                                "it first.",
                                proto, mp->internal_port,
                                pcp_addr_to_string(pcpd_mapping_third_party(mp), buf));
                return pcpd_fail(
                        error, PCPD_ERROR_CONFLICT,
                        "You already hold a mapping of %s port %u for this host, not for a third party: "
                        "release it first.",
                        proto, mp->internal_port);
        }
        if (!filters_equal(mp, req))
                return pcpd_fail(
                        error, PCPD_ERROR_CONFLICT,
                        "You already hold a mapping of %s port %u with %s: release it first, or ask for "
                        "the same filters.",
                        proto, mp->internal_port,
                        pcpd_mapping_n_filters(mp) == 0 ? "no filters" : "other filters");
        if (req->interface != NULL && *req->interface != '\0' && g_strcmp0(req->interface, iface) != 0)
                return pcpd_fail(error, PCPD_ERROR_CONFLICT,
                                 "You already hold a mapping of %s port %u %s%s: release it first.", proto,
                                 mp->internal_port,
                                 iface != NULL ? "on interface " : "that follows the primary interface",
                                 iface ?: "");
        return 0;
}

int pcpd_manager_add_mapping(pcpd_manager *m, const pcpd_mapping_request *req, pcpd_mapping **ret,
                             pcpd_failure *error) {
        pcpd_mapping *mp;
        pcpd_server *s;
        int family, r;
        uint32_t lifetime;
        struct in6_addr own;
        bool direct, state_failure = false;

        if (!m->enabled)
                return pcpd_fail(error, PCPD_ERROR_DISABLED,
                                 "Port mapping is switched off on this host (pcpctl enable turns it on).");

        mapping_plan(m, req, &family, &s, &direct, &own);
        /* (with a server, mapping_plan() left such a request to it) */
        if (direct && req->prefer_failure && req->suggested_port != req->internal_port)
                return pcpd_fail(error, PCPD_ERROR_UNSUPPORTED,
                                 "This host is not behind a NAT: its external port is its internal "
                                 "port %u, never %u (prefer-failure).",
                                 req->internal_port, req->suggested_port);
        if (!direct && (r = manager_backend_refuse(m, req, family, s, error)) < 0)
                return r;
        if (s == NULL && !direct) {
                if (req->interface != NULL && *req->interface != '\0')
                        return pcpd_fail(error, PCPD_ERROR_NO_SERVER,
                                         "No %s port mapping server is known on interface %s.",
                                         family == AF_INET ? "IPv4" : "IPv6", req->interface);
                return pcpd_fail(error, PCPD_ERROR_NO_SERVER,
                                 "No %s port mapping server (router) is known: is the network up?",
                                 family == AF_INET ? "IPv4" : "IPv6");
        }

        mp = manager_mapping_find(m, family, req->opcode, req->protocol, req->internal_port, &req->remote_address,
                                  req->remote_port);
        if (mp != NULL) {
                if (mp->uid != req->uid)
                        return pcpd_fail(error, PCPD_ERROR_CONFLICT,
                                         "%s port %u is already mapped for another user.",
                                         pcp_protocol_to_string(req->protocol) ?: "this protocol",
                                         req->internal_port);
                /* the same user again (another app, or the same one after a restart):
                 * share the one upstream mapping, unless it cannot give what is asked */
                if ((r = share_refused(mp, req, error)) < 0)
                        return r;
                if (req->persistent && !mp->persistent) {
                        /* persistent from now on, as if it had been asked so: on disk before
                         * anyone is told; no owner (Owner ""), and it outlives its holders,
                         * who keep their holds: a hold let go (Release, a holder leaving the
                         * bus) is that hold only (pcpd_manager_release()) */
                        mp->persistent = true;
                        r = manager_persist_mapping(m, mp);
                        if (r < 0) {
                                mp->persistent = false;
                                return state_refused(m, r, error);
                        }
                        pcpd_manager_emit_mapping_changed(
                                m, mp,
                                PCPD_MAPPING_CHANGED_PERSISTENT |
                                        (set_shared(&mp->owner, "") ? PCPD_MAPPING_CHANGED_OWNER : 0));
                        g_message("Mapping %s is persistent now, asked by %s (uid %u): it outlives its %u "
                                  "holder%s and pcpd restarts",
                                  PCPD_MAPPING_PATH(mp), req->owner ?: "?", req->uid, pcpd_holders_count(mp),
                                  pcpd_holders_count(mp) == 1 ? "" : "s");
                }
                /* a persistent request holds nothing, as a new persistent mapping is not held */
                if (!req->persistent)
                        manager_mapping_add_holder(m, mp, req->owner, req->owner_known_alive);
                if (mp->unclaimed) {
                        manager_unclaimed_done(m, mp);
                        set_shared(&mp->owner, mp->persistent ? "" : (req->owner ?: ""));
                        mp->pid = req->pid;
                        pcpd_manager_emit_mapping_changed(m, mp, PCPD_MAPPING_CHANGED_OWNER | PCPD_MAPPING_CHANGED_PID);
                        g_message("Mapping %s reclaimed by %s (uid %u)", PCPD_MAPPING_PATH(mp), req->owner ?: "?", req->uid);
                }
                *ret = mp;
                return 0;
        }

        if (!req->persistent && req->uid != 0 && m->config.max_mappings_per_user > 0 &&
            pcpd_manager_count_for_uid(m, req->uid) >= m->config.max_mappings_per_user)
                return pcpd_fail(error, PCPD_ERROR_QUOTA_EXCEEDED,
                                 m->config.max_mappings_per_user == 1
                                         ? "You already hold %u mapping, the most one user may hold; release it "
                                           "first."
                                         : "You already hold %u mappings, the most one user may hold; release one "
                                           "first.",
                                 m->config.max_mappings_per_user);

        if (pcpd_manager_n_mappings(m) >= m->config.max_mappings)
                return pcpd_fail(error, PCPD_ERROR_QUOTA_EXCEEDED,
                                 "This host already holds %u mappings, the configured maximum.",
                                 m->config.max_mappings);

        lifetime = MIN(req->lifetime ? req->lifetime : m->config.default_lifetime, m->config.max_lifetime);
        mp = manager_mapping_new(m, m->next_mapping_id++, req, family, lifetime, realtime_us());
        /* on disk before anything leaves or anyone is told: a server mapping's nonce, or a
         * restart could neither renew nor delete it; a direct one, to be made again */
        if (direct) {
                /* active at once, for as long as its holders want it: no server, no expiry */
                r = manager_mapping_start_direct(m, mp, &own);
                if (r >= 0) {
                        r = manager_persist_mapping(m, mp);
                        state_failure = r < 0;
                }
        } else
                r = manager_mapping_start_saved(m, mp, s, NULL, false, &state_failure);
        if (r < 0) {
                manager_mapping_free(mp);
                pcpd_backend_kick(m->pcp);
                if (state_failure)
                        return state_refused(m, r, error);
                if (r == -ENOSPC)
                        return pcpd_fail(error, PCPD_ERROR_QUOTA_EXCEEDED,
                                         "The daemon holds as many mappings as it can.");
                return pcpd_fail(error, PCPD_ERROR_INVALID_ARGS, "The mapping request was refused: %s",
                                 g_strerror(-r));
        }

        pcpd_mapping_set_add(&m->mappings, mp);
        if (!direct) {
                manager_mapping_show(m, mp, m->pcp);
                pcpd_backend_drain(m->pcp); /* its request leaves; its news finds it now */
        }
        pcpd_mapping_set_add(&m->by_key, mp);
        if (!req->persistent)
                manager_mapping_add_holder(m, mp, req->owner, req->owner_known_alive);
        manager_emit_mapping_added(m, mp);
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_MAPPING_COUNT);
        manager_update_state(m);
        pcpd_backend_kick(m->pcp);
        pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_ADDED, mp, NULL, NULL,
                         "Mapping %s: %s %s port %u for uid %u%s%s%s%s%s%s", PCPD_MAPPING_PATH(mp), pcp_opcode_to_string(mp->opcode),
                         pcp_protocol_to_string(mp->protocol) ?: "?", mp->internal_port, mp->uid,
                         mp->app_id[0] ? " (" : "", mp->app_id, mp->app_id[0] ? ")" : "",
                         direct ? "; not behind a NAT: active with the host's own address " : " on ",
                         direct ? mp->external_address : mp->server_text,
                         mp->persistent ? ", persistent" : "");
        *ret = mp;
        return 1;
}
