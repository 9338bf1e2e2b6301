/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-manager.h"
#include "pcpd-manager-private.h"
#include "pcpd-backend.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pcpd-declared-manager.h"
#include "pcpd-direct.h"
#include "pcpd-holders.h"
#include "pcpd-host.h"
#include "pcpd-log.h"
#include "pcpd-netlink.h"
#include "pcpd-nm.h"
#include "pcpd-servers.h"
#include "pcpd-store.h"



uint64_t pcpd_now_ms(void) {
        return (uint64_t) g_get_monotonic_time() / 1000;
}

const char *pcpd_remove_reason_to_string(pcpd_remove_reason r) {
        switch (r) {
        case PCPD_REMOVED_RELEASED:
                return PCP1_REASON_RELEASED;
        case PCPD_REMOVED_OWNER_VANISHED:
                return PCP1_REASON_OWNER_VANISHED;
        case PCPD_REMOVED_REVOKED:
                return PCP1_REASON_REVOKED;
        case PCPD_REMOVED_DISABLED:
                return PCP1_REASON_DISABLED;
        case PCPD_REMOVED_EXPIRED:
                return PCP1_REASON_EXPIRED;
        case PCPD_REMOVED_NETWORK_LOST:
                return PCP1_REASON_NETWORK_LOST;
        case PCPD_REMOVED_SERVER_REFUSED:
                return PCP1_REASON_SERVER_REFUSED;
        default:
                return PCP1_REASON_RELEASED;
        }
}

/* ---- news, up to the listener ---- */

static const pcpd_manager_listener no_listener = { 0 };

void manager_emit_mapping_added(pcpd_manager *m, pcpd_mapping *mp) {
        if (m->listener->mapping_added != NULL)
                m->listener->mapping_added(m, mp, m->listener_data);
}

static void emit_mapping_removed(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason) {
        if (m->listener->mapping_removed != NULL)
                m->listener->mapping_removed(m, mp, reason, m->listener_data);
}

void pcpd_manager_emit_mapping_changed(pcpd_manager *m, pcpd_mapping *mp, pcpd_mapping_changed what) {
        if (what != 0 && m->listener->mapping_changed != NULL)
                m->listener->mapping_changed(m, mp, what, m->listener_data);
}

void pcpd_manager_emit_changed(pcpd_manager *m, pcpd_manager_changed what) {
        if (what != 0 && m->listener->manager_changed != NULL)
                m->listener->manager_changed(m, what, m->listener_data);
}

/* ---- discovery: config + default routers ---- */

void manager_servers_changed(pcpd_manager *m) {
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_SERVERS | PCPD_MANAGER_CHANGED_EXTERNAL_ADDRESSES);
        manager_update_state(m);
        pcpd_backend_kick(m->pcp);
}

/* the default routers (netlink) are one source of servers (pcpd-servers.c) */
static void manager_discover(pcpd_manager *m) {
        pcpd_router routers[PCPD_MAX_ROUTERS];
        pcpd_server_spec specs[PCPD_MAX_ROUTERS];
        int n = 0;

        if (m->config.use_default_routers) {
                n = pcpd_netlink_default_routers(routers, G_N_ELEMENTS(routers));
                if (n < 0) {
                        g_warning("Cannot read the default routes: %s", g_strerror(-n));
                        n = 0;
                }
        }
        for (int i = 0; i < n; i++) {
                specs[i] = (pcpd_server_spec) { .n_addrs = 1, .addrs = { routers[i].addr } };
                g_strlcpy(specs[i].ifname, routers[i].ifname, sizeof(specs[i].ifname));
        }
        (void) pcpd_manager_set_servers(m, PCPD_SOURCE_GATEWAY, NULL, specs, (size_t) n);
        pcpd_backend_kick(m->pcp);
}

static gboolean on_rediscover(gpointer data) {
        pcpd_manager *m = data;
        m->rediscover_source = 0;
        manager_discover(m);
        manager_check_direct(m);
        return G_SOURCE_REMOVE;
}

/* Direct mappings looked at again on the next turn of the loop (with the servers), unless
 * that is due already. */
void manager_rediscover_idle(pcpd_manager *m) {
        if (m->rediscover_source == 0)
                m->rediscover_source = g_idle_add(on_rediscover, m);
}

static gboolean on_route_change(gint fd, GIOCondition cond, gpointer data) {
        pcpd_manager *m = data;

        if (pcpd_netlink_route_monitor_drain(fd) && m->rediscover_source == 0)
                /* settle: a link change comes with a burst of route messages */
                m->rediscover_source = g_timeout_add(500, on_rediscover, m);
        return G_SOURCE_CONTINUE;
}

/* A reload's configured servers (pcpd-reload.c), through the server registry
 * (pcpd-servers.c): a server that stays keeps its mappings; the mappings of one that goes
 * move to the server that serves them now, or wait for one. */
void pcpd_manager_set_config_servers(pcpd_manager *m, const pcpd_config_server *servers, size_t n) {
        g_autofree pcpd_server_spec *cs = g_new0(pcpd_server_spec, n + 1);

        for (size_t k = 0; k < n; k++)
                cs[k] = (pcpd_server_spec) { .n_addrs = 1, .addrs = { servers[k].addr } };
        (void) pcpd_manager_set_servers(m, PCPD_SOURCE_CONFIG, NULL, cs, n);
        pcpd_backend_kick(m->pcp);
}

/* ---- manager state ---- */

/* For IPv4 and IPv6: is the host not behind a NAT, and its own address then (from the
 * cached host snapshot, pcpd-host.h: no system call once it is known). */
typedef struct direct_hosts {
        bool is[2];
        struct in6_addr addr[2];
} direct_hosts;

static void host_direct_families(pcpd_manager *m, direct_hosts *d) {
        d->is[0] = manager_host_is_direct(m, AF_INET, NULL, &d->addr[0]);
        d->is[1] = manager_host_is_direct(m, AF_INET6, NULL, &d->addr[1]);
}

static const char *manager_state(pcpd_manager *m, const direct_hosts *d) {
        pcpd_direct_server v[PCPD_MAX_SERVERS];
        size_t n = manager_servers_view(m, v);
        bool backend_usable = false;

        if (m->enabled && !pcpd_direct_any_usable(v, n) && m->upnp != NULL) {
                /* a router that speaks UPnP-IGD (pcpd-backend.h) maps too */
                pcpd_backend_server one;
                backend_usable = m->upnp->ops->servers(m->upnp, &one, 1) > 0;
        }
        return pcpd_direct_manager_state(m->enabled, v, n, backend_usable, d->is);
}

const char *pcpd_manager_state(pcpd_manager *m) {
        direct_hosts d;

        host_direct_families(m, &d);
        return manager_state(m, &d);
}

/* The host's own address for each family it is not behind a NAT for ("" for the others):
 * part of ExternalAddresses, published when it changes. */
static char *direct_addresses_text(const direct_hosts *d) {
        char t[2][PCP_ADDR_STRLEN] = { "", "" };

        for (int f = 0; f < 2; f++)
                if (d->is[f])
                        pcp_addr_to_string(&d->addr[f], t[f]);
        return g_strconcat(t[0], " ", t[1], NULL);
}

void manager_update_state(pcpd_manager *m) {
        direct_hosts d;
        const char *st;
        g_autofree char *status = NULL, *direct = NULL;

        host_direct_families(m, &d);
        st = manager_state(m, &d);
        direct = direct_addresses_text(&d);

        if (g_strcmp0(st, m->last_state) != 0) {
                set_str(&m->last_state, st);
                pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_STATE);
        }
        if (g_strcmp0(direct, m->last_direct) != 0) {
                set_str(&m->last_direct, direct);
                pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_EXTERNAL_ADDRESSES);
        }
        status = g_strdup_printf("%s, %u server(s), %u mapping(s)", st, m->servers->len,
                                 g_hash_table_size(m->mappings));
        if (g_strcmp0(status, m->status_text) != 0) {
                set_str(&m->status_text, status);
                if (m->listener->status_changed != NULL)
                        m->listener->status_changed(m, m->status_text, m->listener_data);
        }
}

/* A host that is not behind a NAT for the family has its own address as external address
 * (server ""): what its mappings get. Else the first server of the family that told one. */
bool pcpd_manager_external_address(pcpd_manager *m, int family, char **ret_address, char **ret_server) {
        char buf[PCP_ADDR_STRLEN];
        struct in6_addr own;

        if (manager_host_is_direct(m, family, NULL, &own)) {
                *ret_address = g_strdup(pcp_addr_to_string(&own, buf));
                *ret_server = g_strdup("");
                return true;
        }
        for (guint i = 0; i < m->servers->len; i++) {
                pcpd_server *s = m->servers->pdata[i];
                struct in6_addr ext;

                if (s->family != family || !pcpd_backend_server_external(m->pcp, s, &ext))
                        continue;
                *ret_address = g_strdup(pcp_addr_to_string(&ext, buf));
                *ret_server = g_strdup(s->text);
                return true;
        }
        return false;
}

bool pcpd_manager_server_view(pcpd_manager *m, const pcpd_server *s, pcpd_server_view *ret) {
        *ret = (pcpd_server_view) { .state = PCPD_SERVER_UNKNOWN };
        return m->pcp->ops->server_view != NULL && m->pcp->ops->server_view(m->pcp, s, ret);
}

GPtrArray *pcpd_manager_external_addresses(pcpd_manager *m) {
        GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
        direct_hosts d;

        for (guint i = 0; i < m->servers->len; i++) {
                char buf[PCP_ADDR_STRLEN];
                struct in6_addr ext;

                if (!pcpd_backend_server_external(m->pcp, m->servers->pdata[i], &ext))
                        continue;
                pcp_addr_to_string(&ext, buf);
                if (!g_ptr_array_find_with_equal_func(a, buf, g_str_equal, NULL))
                        g_ptr_array_add(a, g_strdup(buf));
        }
        if (m->upnp != NULL) {
                pcpd_backend_server routers[8];
                size_t n = m->upnp->ops->servers(m->upnp, routers, G_N_ELEMENTS(routers));
                for (size_t k = 0; k < n; k++) {
                        char buf[PCP_ADDR_STRLEN];
                        if (!routers[k].has_external)
                                continue;
                        pcp_addr_to_string(&routers[k].external_addr, buf);
                        if (!g_ptr_array_find_with_equal_func(a, buf, g_str_equal, NULL))
                                g_ptr_array_add(a, g_strdup(buf));
                }
        }
        host_direct_families(m, &d);
        for (int f = 0; f < 2; f++) {
                char buf[PCP_ADDR_STRLEN];

                if (!d.is[f])
                        continue;
                pcp_addr_to_string(&d.addr[f], buf);
                if (!g_ptr_array_find_with_equal_func(a, buf, g_str_equal, NULL))
                        g_ptr_array_add(a, g_strdup(buf));
        }
        return a;
}

/* ---- mappings ---- */

void manager_mapping_free(pcpd_mapping *mp) {
        if (mp == NULL)
                return;
        if (mp->direct)
                mp->manager->n_direct--;
        g_free(mp->filters);
        if (mp->grace_source != 0)
                g_source_remove(mp->grace_source);
        pcpd_holders_free_mapping(mp);
        g_free(mp->path);
        clear_shared(&mp->server_text);
        g_free(mp->app_id);
        clear_shared(&mp->owner);
        g_free(mp->remote_address);
        g_free(mp->description);
        g_free(mp->declared);
        g_free(mp->key);
        /* state and error are interned names (set_name()) */
        g_free(mp->external_address);
        g_free(mp->internal_address);
        g_free(mp->prev_server);
        g_free(mp->interface);
        g_free(mp);
}

char *manager_mapping_key(int family, uint8_t opcode, uint8_t protocol, uint16_t port, const struct in6_addr *remote,
                         uint16_t remote_port) {
        char buf[PCP_ADDR_STRLEN];
        if (opcode == PCP_OPCODE_PEER)
                return g_strdup_printf("%d/peer/%u/%u/%s/%u", family, protocol, port, pcp_addr_to_string(remote, buf),
                                       remote_port);
        return g_strdup_printf("%d/map/%u/%u", family, protocol, port);
}

unsigned pcpd_manager_count_for_uid(pcpd_manager *m, uid_t uid) {
        GHashTableIter it;
        gpointer v;
        unsigned n = 0;

        g_hash_table_iter_init(&it, m->mappings);
        while (g_hash_table_iter_next(&it, NULL, &v))
                if (((pcpd_mapping *) v)->uid == uid)
                        n++;
        return n;
}

GPtrArray *pcpd_manager_list_mappings(pcpd_manager *m) {
        GPtrArray *a = g_ptr_array_sized_new(g_hash_table_size(m->mappings));
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, m->mappings);
        while (g_hash_table_iter_next(&it, NULL, &v))
                g_ptr_array_add(a, v);
        return a;
}

pcpd_mapping *pcpd_manager_find_path(pcpd_manager *m, const char *path) {
        const char *p;
        guint64 id;
        char *end;

        if (path == NULL || !g_str_has_prefix(path, PCP1_MAPPING_PATH_PREFIX "/"))
                return NULL;
        p = path + strlen(PCP1_MAPPING_PATH_PREFIX "/");
        if (*p < '0' || *p > '9')
                return NULL;
        id = g_ascii_strtoull(p, &end, 10);
        if (*end != '\0')
                return NULL;
        return g_hash_table_lookup(m->mappings, &id);
}

static pcpd_server *choose_server(pcpd_manager *m, int family, const char *interface) {
        return pcpd_servers_choose(m, family, interface); /* pcpd-servers.c: RFC 7488, the primary interface */
}

/* ---- holders: a mapping lives while one of its holders' connections does ---- */

/* A unique name left the bus (pcpd-bus-track.c says so): every mapping it held loses that
 * holder. */
void pcpd_manager_holder_vanished(pcpd_manager *m, const char *name) {
        g_autoptr(GPtrArray) held = pcpd_holders_vanish(m->holder_index, name);

        if (held == NULL)
                return;
        for (guint i = 0; i < held->len; i++) {
                pcpd_mapping *mp = held->pdata[i];
                if (pcpd_holders_count(mp) > 0 || mp->persistent)
                        continue;
                g_message("Mapping %s: its owner %s left the bus; deleting it upstream", mp->path, name);
                pcpd_manager_remove_mapping(m, mp, PCPD_REMOVED_OWNER_VANISHED);
        }
}

static void mapping_add_holder(pcpd_manager *m, pcpd_mapping *mp, const char *owner, bool known_alive) {
        if (owner == NULL)
                return;
        pcpd_holders_add(m->holder_index, mp, owner);

        /* known alive: the name was on the bus after the watch for names that leave was in
         * place, and its leaving has not been dispatched yet (the caller's own match for
         * NameOwnerChanged sees the same messages, in the same order, as the watch's): the
         * watch will see it go, after this hold is recorded. Else the name may have left
         * before the hold, unseen: the listener makes sure (pcpd-bus-track.c asks the bus) */
        if (!known_alive && m->listener->holder_unconfirmed != NULL)
                m->listener->holder_unconfirmed(m, owner, m->listener_data);
}

pcpd_mapping *manager_mapping_new(pcpd_manager *m, uint64_t id, const pcpd_mapping_request *req, int family,
                                 uint32_t lifetime, uint64_t created, char *key) {
        pcpd_mapping *mp = g_new0(pcpd_mapping, 1);

        mp->manager = m;
        mp->id = id;
        mp->path = g_strdup_printf(PCP1_MAPPING_PATH_PREFIX "/%" G_GUINT64_FORMAT, mp->id);
        mp->uid = req->uid;
        mp->pid = req->pid;
        mp->app_id = g_strdup(req->app_id ?: "");
        mp->app_id_source = req->app_id_source ?: "none";
        set_shared(&mp->owner, req->persistent ? "" : (req->owner ?: ""));
        mp->persistent = req->persistent;
        mp->declared = g_strdup(req->declared);
        mp->opcode = req->opcode;
        mp->protocol = req->protocol;
        mp->family = family;
        mp->internal_port = req->internal_port;
        mp->suggested_port = req->suggested_port;
        if (req->opcode == PCP_OPCODE_PEER) {
                char buf[PCP_ADDR_STRLEN];
                mp->remote_address = g_strdup(pcp_addr_to_string(&req->remote_address, buf));
                mp->remote_port = req->remote_port;
        }
        mp->lifetime = lifetime;
        mp->description = g_strdup(req->description ?: "");
        mp->interface = req->interface != NULL && *req->interface != '\0' ? g_strdup(req->interface) : NULL;
        mp->created = created;
        mp->key = key;
        mp->has_suggested_address = req->has_external_address;
        mp->suggested_address = req->external_address;
        mp->prefer_failure = req->prefer_failure;
        mp->has_third_party = req->has_third_party;
        mp->third_party = req->third_party;
        mp->n_filters = req->n_filters;
        if (req->n_filters > 0)
                mp->filters = g_memdup2(req->filters, req->n_filters * sizeof(pcp_filter));
        set_name(&mp->state, "pending");
        set_name(&mp->error, "");
        mp->external_address = g_strdup("");
        return mp;
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

int pcpd_manager_add_mapping(pcpd_manager *m, const pcpd_mapping_request *req, pcpd_mapping **ret,
                             pcpd_failure *error) {
        pcpd_mapping *mp;
        pcpd_server *s;
        int family, r;
        uint32_t lifetime;
        g_autofree char *key = NULL;
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

        key = manager_mapping_key(family, req->opcode, req->protocol, req->internal_port, &req->remote_address,
                          req->remote_port);
        mp = g_hash_table_lookup(m->by_key, key);
        if (mp != NULL) {
                if (mp->uid != req->uid)
                        return pcpd_fail(error, PCPD_ERROR_CONFLICT,
                                         "%s port %u is already mapped for another user.",
                                         pcp_protocol_to_string(req->protocol) ?: "this protocol",
                                         req->internal_port);
                /* the same user again (another app, or the same one after a restart):
                 * share the one upstream mapping */
                if (req->persistent && !mp->persistent) {
                        /* persistent from now on: on disk before anyone is told */
                        mp->persistent = true;
                        r = manager_persist_mapping(m, mp);
                        if (r < 0) {
                                mp->persistent = false;
                                return state_refused(m, r, error);
                        }
                        pcpd_manager_emit_mapping_changed(m, mp, PCPD_MAPPING_CHANGED_PERSISTENT);
                }
                mapping_add_holder(m, mp, req->owner, req->owner_known_alive);
                if (mp->unclaimed) {
                        mp->unclaimed = false;
                        if (mp->grace_source != 0) {
                                g_source_remove(mp->grace_source);
                                mp->grace_source = 0;
                        }
                        set_shared(&mp->owner, req->owner ?: "");
                        mp->pid = req->pid;
                        pcpd_manager_emit_mapping_changed(m, mp, PCPD_MAPPING_CHANGED_OWNER | PCPD_MAPPING_CHANGED_PID);
                        g_message("Mapping %s reclaimed by %s (uid %u)", mp->path, req->owner ?: "?", req->uid);
                }
                *ret = mp;
                return 0;
        }

        if (!req->persistent && req->uid != 0 && m->config.max_mappings_per_user > 0 &&
            pcpd_manager_count_for_uid(m, req->uid) >= m->config.max_mappings_per_user)
                return pcpd_fail(error, PCPD_ERROR_QUOTA_EXCEEDED,
                                 "You already hold %u mappings, the most one user may hold; release one "
                                 "first.",
                                 m->config.max_mappings_per_user);

        if (g_hash_table_size(m->mappings) >= m->config.max_mappings)
                return pcpd_fail(error, PCPD_ERROR_QUOTA_EXCEEDED,
                                 "This host already holds %u mappings, the configured maximum.",
                                 m->config.max_mappings);

        lifetime = MIN(req->lifetime ? req->lifetime : m->config.default_lifetime, m->config.max_lifetime);
        mp = manager_mapping_new(m, m->next_mapping_id++, req, family, lifetime, realtime_us(), g_steal_pointer(&key));
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

        g_hash_table_insert(m->mappings, &mp->id, mp);
        if (!direct) {
                manager_mapping_show(m, mp, m->pcp);
                pcpd_backend_drain(m->pcp); /* its request leaves; its news finds it now */
        }
        g_hash_table_insert(m->by_key, mp->key, mp);
        if (!req->persistent)
                mapping_add_holder(m, mp, req->owner, req->owner_known_alive);
        manager_emit_mapping_added(m, mp);
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_MAPPING_COUNT);
        manager_update_state(m);
        pcpd_backend_kick(m->pcp);
        pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_ADDED, mp, NULL, NULL,
                         "Mapping %s: %s %s port %u for uid %u%s%s%s%s%s%s", mp->path, pcp_opcode_to_string(mp->opcode),
                         pcp_protocol_to_string(mp->protocol) ?: "?", mp->internal_port, mp->uid,
                         mp->app_id[0] ? " (" : "", mp->app_id, mp->app_id[0] ? ")" : "",
                         direct ? "; not behind a NAT: active with the host's own address " : " on ",
                         direct ? mp->external_address : mp->server_text,
                         mp->persistent ? ", persistent" : "");
        *ret = mp;
        return 1;
}

void pcpd_manager_remove_mapping(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason) {
        pcpd_backend *via;
        pcpd_state_mapping rec;
        uint64_t until;

        /* the backend's delete first (with its own record when it must be confirmed): the
         * engine's record below is then the engine's part only */
        manager_backend_remove(m, mp);

        via = manager_mapping_backend(m, mp);
        if (pcpd_backend_delete_until(via, mp, &until) && manager_mapping_to_record(mp, &rec)) {
                /* kept, on disk, until the server confirms the delete: the record goes first,
                 * so that a daemon killed before the answer deletes it again after a restart;
                 * until then it may still exist upstream for its grant, or for a renewal or
                 * a request in flight that the server may still grant */
                pcpd_deleting *d;

                rec.deleting = true;
                rec.delete_until = MAX(mp->expires_at, until);
                d = manager_deleting_add(m, pcpd_state_mapping_copy(&rec));
                (void) pcpd_store_put(m->store, d->rec);
                /* lifetime 0 with the same nonce (the backend may give up at once:
                 * manager_deleting_engine_done()) */
                pcpd_backend_remove(via, mp, d->rec->id);
        } else {
                pcpd_backend_remove(via, mp, 0);
                manager_persist_removal(m, mp->id);
        }
        g_hash_table_remove(m->by_key, mp->key);
        pcpd_holders_drop(m->holder_index, mp);
        emit_mapping_removed(m, mp, reason);
        pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_REMOVED, mp, NULL,
                         pcpd_remove_reason_to_string(reason), "Mapping %s removed (%s)", mp->path,
                         pcpd_remove_reason_to_string(reason));
        g_hash_table_remove(m->mappings, &mp->id); /* frees mp */
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_MAPPING_COUNT);
        manager_update_state(m);
        pcpd_backend_kick(m->pcp);
}

void pcpd_manager_release(pcpd_manager *m, pcpd_mapping *mp, const char *holder, pcpd_remove_reason reason) {
        if (holder != NULL && pcpd_holders_holds(mp, holder) > 0 && !pcpd_holders_remove(m->holder_index, mp, holder))
                return; /* others still hold it */
        pcpd_manager_remove_mapping(m, mp, reason);
}

int pcpd_manager_set_enabled(pcpd_manager *m, bool enabled) {
        if (m->enabled == enabled)
                return 0;
        m->enabled = enabled;
        if (!enabled) {
                g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);
                for (guint i = 0; i < all->len; i++)
                        pcpd_manager_remove_mapping(m, all->pdata[i], PCPD_REMOVED_DISABLED);
        }
        pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_ENABLED,
                       ((const char *const[]) { "PCPD_ENABLED", enabled ? "true" : "false", NULL }), "Port mapping %s",
                       enabled ? "enabled" : "disabled: every mapping was deleted upstream");
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_ENABLED);
        manager_update_state(m);
        return 1;
}

/* ---- lifecycle ---- */

int pcpd_manager_new(const pcpd_config *config, const char *state_dir, int state_fd, pcpd_state *loaded,
                     GMainLoop *loop, const pcpd_manager_listener *listener, void *userdata,
                     pcpd_manager **ret) {
        return pcpd_manager_new_with_backend(config, state_dir, state_fd, loaded, loop, listener, userdata,
                                             pcpd_pcp_backend_new, ret);
}

int pcpd_manager_new_with_backend(const pcpd_config *config, const char *state_dir, int state_fd, pcpd_state *loaded,
                                  GMainLoop *loop, const pcpd_manager_listener *listener, void *userdata,
                                  pcpd_backend_new_fn new_backend, pcpd_manager **ret) {
        g_autoptr(pcpd_manager) m = g_new0(pcpd_manager, 1);
        int r;

        m->config = *config;
        /* the server texts belong to the caller's config: copy them */
        for (size_t i = 0; i < config->n_servers; i++)
                m->config.servers[i].text = g_strdup(config->servers[i].text);
        m->state_dir = g_strdup(state_dir);
        m->state_fd = state_fd;
        m->loaded = loaded;
        m->loop = g_main_loop_ref(loop);
        m->listener = listener ?: &no_listener;
        m->listener_data = userdata;
        m->enabled = config->enabled;
        m->servers = g_ptr_array_new();
        m->mappings = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, (GDestroyNotify) manager_mapping_free);
        m->by_key = g_hash_table_new(g_str_hash, g_str_equal);
        m->holder_index = pcpd_holders_index_new();
        m->deleting = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, (GDestroyNotify) manager_deleting_free);
        m->next_mapping_id = 1;
        m->route_fd = -1;
        r = new_backend(&manager_backend_events, m, config->max_mappings, &m->pcp);
        if (r < 0)
                return r;
        r = pcpd_direct_backend_new(&manager_backend_events, m, config->max_mappings, &m->direct);
        if (r < 0)
                return r;
        r = pcpd_store_new(m->state_fd, m->state_dir, &manager_store_ops, m, &m->store);
        if (r < 0)
                return r;
        r = pcpd_upnp_backend_new(&manager_fallback_events, m, config->max_mappings, &m->upnp);
        if (r < 0)
                return r;
        *ret = g_steal_pointer(&m);
        return 0;
}

pcpd_manager *pcpd_manager_free(pcpd_manager *m) {
        if (m == NULL)
                return NULL;
        /* first, while everything still works: it runs the loop for a few seconds */
        if (m->upnp != NULL)
                m->upnp->ops->shutdown(m->upnp);
        if (m->backend_check_source != 0)
                g_source_remove(m->backend_check_source);
        /* the last snapshot, while the mappings it reads are there */
        if (m->store != NULL)
                pcpd_store_flush(m->store);
        m->store = pcpd_store_free(m->store);
        if (m->pcp != NULL && m->pcp->ops->stop != NULL)
                m->pcp->ops->stop(m->pcp); /* the statistics line; no more ANNOUNCE */
        if (m->rediscover_source != 0)
                g_source_remove(m->rediscover_source);
        if (m->route_watch != 0)
                g_source_remove(m->route_watch);
        if (m->route_fd >= 0)
                close(m->route_fd);
        if (m->host_watch != 0)
                g_source_remove(m->host_watch);
        pcpd_host_free(m->host);
        pcpd_nm_free(m->nm);
        pcpd_manager_declared_free(m);
        if (m->listener->manager_freeing != NULL)
                m->listener->manager_freeing(m, m->listener_data);
        if (m->upnp != NULL)
                m->upnp->ops->free(m->upnp); /* before the mappings: it points at them */
        if (m->mappings != NULL)
                g_hash_table_destroy(m->mappings);
        if (m->holder_index != NULL)
                g_hash_table_destroy(m->holder_index);
        if (m->by_key != NULL)
                g_hash_table_destroy(m->by_key);
        if (m->deleting != NULL)
                g_hash_table_destroy(m->deleting);
        /* the engine, the server sockets, its clock */
        if (m->pcp != NULL)
                m->pcp->ops->free(m->pcp);
        if (m->direct != NULL)
                m->direct->ops->free(m->direct);
        if (m->servers != NULL) {
                for (guint i = 0; i < m->servers->len; i++)
                        manager_server_free(m->servers->pdata[i]);
                g_ptr_array_free(m->servers, TRUE);
        }
        pcpd_config_clear(&m->config);
        if (m->loop != NULL)
                g_main_loop_unref(m->loop);
        g_free(m->state_dir);
        if (m->state_fd >= 0)
                close(m->state_fd);
        pcpd_state_free(m->loaded);
        g_free(m->state_error);
        g_free(m->last_state);
        g_free(m->last_direct);
        g_free(m->status_text);
        pcpd_server_sources_free(m->sources);
        g_free(m);
        return NULL;
}

int pcpd_manager_start(pcpd_manager *m) {
        if (m->pcp->ops->start != NULL) /* the engine's clock, ANNOUNCE listeners */
                m->pcp->ops->start(m->pcp, m->config.announce_port);

        {
                g_autofree pcpd_server_spec *cs = g_new0(pcpd_server_spec, m->config.n_servers + 1);
                for (size_t i = 0; i < m->config.n_servers; i++)
                        cs[i] = (pcpd_server_spec) { .n_addrs = 1, .addrs = { m->config.servers[i].addr } };
                (void) pcpd_manager_set_servers(m, PCPD_SOURCE_CONFIG, NULL, cs, m->config.n_servers);
        }
        if (m->config.use_default_routers) {
                m->route_fd = pcpd_netlink_route_monitor_open();
                if (m->route_fd < 0)
                        g_warning("Cannot watch route changes: %s; servers are found at start only",
                                  g_strerror(-m->route_fd));
                else
                        m->route_watch = g_unix_fd_add(m->route_fd, G_IO_IN, on_route_change, m);
        }
        manager_discover(m);
        manager_restore(m);
        manager_update_state(m);
        pcpd_backend_kick(m->pcp);
        m->nm = pcpd_nm_new(m); /* DHCP-announced servers, when NetworkManager is there */
        return 0;
}
