/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The manager's side of "direct" (pcpd-manager-private.h): the host's addresses as the
 * manager reads them (pcpd-host.h), whether the host is not behind a NAT (pcpd-direct.h's
 * rules with the servers' states), a mapping handed to the "direct" backend
 * (pcpd-direct-backend.c), and what follows when the host's addresses or the servers
 * change (a direct mapping moves to a server that answers, takes another address, or goes).
 */

#include "pcpd-manager-private.h"

#include <glib-unix.h>
#include <string.h>

#include "pcpd-backend.h"
#include "pcpd-direct.h"
#include "pcpd-host.h"
#include "pcpd-log.h"

/*
 * A host with a global address of a family and no server there that could map (none is
 * known, or each one is unreachable or speaks only a PCP version we do not) is not behind
 * a NAT: a mapping of that family is "direct". It is active at once with the host's own
 * address as external address and the internal port as external port, Server "", and
 * nothing is sent anywhere (mDNSResponder does the same). When a server of the family
 * starts answering (PCP or NAT-PMP) on the interface the address is on, or a configured
 * server (its interface is unknown), the direct mapping moves to it, same object: State
 * "pending", then what the server grants. When the address goes away the mapping takes
 * another global address of the family, or is removed ("network-lost"). Both are checked
 * when routes change and when a server starts answering. A mapping made on a server stays
 * on it. Direct mappings are saved like the others (Direct=true, no nonce): after a restart
 * they are direct again while the host is still not behind a NAT, else made on a server
 * (restore_direct()). The manager is "ready" and its external address is the host's own
 * for a family the host is not behind a NAT for.
 *
 * The decisions (which addresses are global, whether a server could map, Manager.State,
 * whether a new mapping is direct) are pcpd-direct.c's pure functions, unit-tested in
 * tests/unit/test-direct.c; here the data they take is gathered and the mappings moved.
 */

/* The host's addresses (pcpd-host.h): a snapshot kept by the kernel's address, link and
 * route events, read without a system call. Its event socket is read at a priority above
 * the bus's, so a call that arrives after an address changed sees the change. */
static gboolean on_host_event(gint fd, GIOCondition cond, gpointer data) {
        pcpd_host_sync(data);
        return G_SOURCE_CONTINUE;
}

static pcpd_host *manager_host(pcpd_manager *m) {
        if (m->host == NULL) {
                m->host = pcpd_host_new();
                if (pcpd_host_fd(m->host) >= 0) {
                        GSource *src = g_unix_fd_source_new(pcpd_host_fd(m->host), G_IO_IN);
                        g_source_set_priority(src, G_PRIORITY_HIGH);
                        g_source_set_callback(src, G_SOURCE_FUNC(on_host_event), m->host, NULL);
                        g_source_set_name(src, "pcpd-host");
                        m->host_watch = g_source_attach(src, NULL);
                        g_source_unref(src);
                } else
                        g_warning("Cannot watch the host's addresses: they are read again for every request");
        }
        return m->host;
}

void manager_set_fake_host(pcpd_manager *m, const pcpd_manager_fake_host *fake) {
        m->fake_host = fake;
}

/* The host's addresses now: the kernel's, or the test's */
static const pcpd_host_snapshot *host_snapshot(pcpd_manager *m) {
        return m->fake_host != NULL ? &m->fake_host->snap : pcpd_host_get(manager_host(m));
}

/* The source address the kernel would use toward the Internet for the family */
static bool host_route_source(pcpd_manager *m, int family, struct in6_addr *ret) {
        const pcpd_manager_fake_host *f = m->fake_host;
        int k = family == AF_INET ? 0 : 1;

        if (f == NULL)
                return pcpd_host_route_source(manager_host(m), family, ret);
        if (f->has_route[k])
                *ret = f->route[k];
        return f->has_route[k];
}

/* Is a one of the host's addresses (on an interface that is up)? ret_ifname: where. */
bool manager_host_has_address(pcpd_manager *m, const struct in6_addr *a, char ret_ifname[IF_NAMESIZE]) {
        return pcpd_host_snapshot_has_address(host_snapshot(m), a, ret_ifname);
}

/* A global address of the family (on interface ifname, unless NULL or ""): the one the
 * kernel would use toward the Internet when it is one of them, else the first
 * (pcpd-direct.h). The kernel is asked only once there is one (a route probe, kept by
 * pcpd-host.c until an address, link or route changes). */
bool manager_host_global_address(pcpd_manager *m, int family, const char *ifname, struct in6_addr *ret) {
        const pcpd_host_snapshot *snap = host_snapshot(m);
        struct in6_addr routed;
        bool have_routed;

        if (!pcpd_direct_global_address(snap, family, ifname, NULL, NULL))
                return false;
        have_routed = host_route_source(m, family, &routed);
        return pcpd_direct_global_address(snap, family, ifname, have_routed ? &routed : NULL, ret);
}

/* Not behind a NAT for the family (on interface ifname, unless NULL or ""): a global
 * address of the family and no server of the family that could map (pcpd-direct.h). ret:
 * the address a direct mapping gets. */
bool manager_host_is_direct(pcpd_manager *m, int family, const char *ifname, struct in6_addr *ret) {
        pcpd_direct_server v[PCPD_MAX_SERVERS];
        size_t n = manager_servers_view(m, v);

        /* (the host's addresses are looked at only when no server could map) */
        return !pcpd_direct_servers_may_map(v, n, family, ifname) && manager_host_global_address(m, family, ifname, ret);
}

void manager_mapping_set_held(pcpd_manager *m, pcpd_mapping *mp, pcpd_backend *b) {
        bool was = pcpd_mapping_is_direct(mp);

        mp->held_by = b;
        if (pcpd_mapping_is_direct(mp) == was)
                return;
        if (!was)
                mp->manager->n_direct++;
        else
                mp->manager->n_direct--;
}

/* mp held by "direct" with the host's own address own, Server "" (not published here). */
int manager_mapping_start_direct(pcpd_manager *m, pcpd_mapping *mp, const struct in6_addr *own) {
        pcpd_backend *was = mp->held_by;
        int r;

        manager_mapping_set_held(m, mp, m->direct);
        r = m->direct->ops->add(m->direct, mp, NULL, own);
        if (r < 0) {
                manager_mapping_set_held(m, mp, was);
                return r;
        }
        set_shared(&mp->server_text, "");
        manager_mapping_show(m, mp, m->direct);
        return 0;
}

/* After route changes and when a server starts answering (never from an engine callback:
 * this adds and removes mappings). */
void manager_check_direct(pcpd_manager *m) {
        g_autoptr(GPtrArray) all = m->n_direct > 0 ? pcpd_manager_list_mappings(m) : NULL;

        for (guint k = 0; all != NULL && k < all->len; k++) {
                pcpd_mapping *mp = all->pdata[k];
                char ifname[IF_NAMESIZE] = "";
                struct in6_addr a;
                bool here;
                pcpd_server *s;

                if (mp->held_by != m->direct)
                        continue;
                here = pcp_addr_from_string(mp->internal_address, &a) && manager_host_has_address(m, &a, ifname);
                s = manager_answering_server(m, mp->family, here ? ifname : NULL);
                if (s != NULL) {
                        (void) manager_mapping_move(m, mp, m->pcp, s, NULL);
                        continue;
                }
                if (here)
                        continue;
                if (manager_host_global_address(m, mp->family, NULL, &a)) {
                        char old[PCP_ADDR_STRLEN];
                        g_strlcpy(old, mp->external_address, sizeof(old));
                        (void) m->direct->ops->add(m->direct, mp, NULL, &a);
                        manager_mapping_show(m, mp, m->direct);
                        pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_MOVED, mp, NULL, NULL,
                                         "Mapping %s: the host's address %s is gone; it has its address %s now",
                                         PCPD_MAPPING_PATH(mp), old, mp->external_address);
                        manager_persist_mapping(m, mp);
                        pcpd_manager_emit_mapping_changed(m, mp, PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS | PCPD_MAPPING_CHANGED_INTERNAL_ADDRESS);
                        continue;
                }
                g_message("Mapping %s: the host's address %s is gone and no other global %s address is left",
                          PCPD_MAPPING_PATH(mp), mp->external_address, mp->family == AF_INET ? "IPv4" : "IPv6");
                pcpd_manager_remove_mapping(m, mp, PCPD_REMOVED_NETWORK_LOST);
        }
        /* the host's addresses may have changed: State and ExternalAddresses follow */
        manager_update_state(m);
}

