/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The two server sources the manager runs itself (pcpd-servers.h: each source replaces
 * only its own servers): the configured servers (at start and on reload) and the default
 * routers, read from netlink at start and again after route changes (settled: a link
 * change comes with a burst of route messages), when the direct mappings are looked at
 * again too. NetworkManager's DHCP-announced servers are pcpd-nm.c's.
 */

#include "pcpd-manager-private.h"

#include <glib-unix.h>
#include <unistd.h>

#include "pcpd-netlink.h"
#include "pcpd-servers.h"

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

static void set_config_servers(pcpd_manager *m, const pcpd_config_server *servers, size_t n) {
        g_autofree pcpd_server_spec *cs = g_new0(pcpd_server_spec, n + 1);

        for (size_t k = 0; k < n; k++)
                cs[k] = (pcpd_server_spec) { .n_addrs = 1, .addrs = { servers[k].addr } };
        (void) pcpd_manager_set_servers(m, PCPD_SOURCE_CONFIG, NULL, cs, n);
}

/* A reload's configured servers (pcpd-reload.c), through the server registry
 * (pcpd-servers.c): a server that stays keeps its mappings; the mappings of one that goes
 * move to the server that serves them now, or wait for one. */
void pcpd_manager_set_config_servers(pcpd_manager *m, const pcpd_config_server *servers, size_t n) {
        set_config_servers(m, servers, n);
        pcpd_backend_kick(m->pcp);
}

/* At start: the configured servers, the default routers, and a watch on the routes. */
void manager_discover_start(pcpd_manager *m) {
        set_config_servers(m, m->config.servers, m->config.n_servers);
        if (m->config.use_default_routers) {
                m->route_fd = pcpd_netlink_route_monitor_open();
                if (m->route_fd < 0)
                        g_warning("Cannot watch route changes: %s; servers are found at start only",
                                  g_strerror(-m->route_fd));
                else
                        m->route_watch = g_unix_fd_add(m->route_fd, G_IO_IN, on_route_change, m);
        }
        manager_discover(m);
}

void manager_discover_stop(pcpd_manager *m) {
        if (m->rediscover_source != 0)
                g_source_remove(m->rediscover_source);
        m->rediscover_source = 0;
        if (m->route_watch != 0)
                g_source_remove(m->route_watch);
        m->route_watch = 0;
        if (m->route_fd >= 0)
                close(m->route_fd);
        m->route_fd = -1;
}
