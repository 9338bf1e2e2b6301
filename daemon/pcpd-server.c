/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The manager's server registry (pcpd-manager-private.h): the servers it has (m->servers,
 * which sources want which: pcpd-servers.c), each added to and removed from the "pcp"
 * backend (pcpd-backend.h: its sockets and the engine's server), their state as that
 * backend tells it, and their silence: a server that has answered nothing for
 * PCPD_SILENT_SERVER_MS is treated as one that speaks no PCP (direct mappings, UPnP-IGD).
 */

#include "pcpd-manager-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "pcpd-backend.h"
#include "pcpd-direct.h"
#include "pcpd-log.h"
#include "pcpd-servers.h"

/* s's state as "pcp" has it (PCPD_SERVER_UNKNOWN when it does not know s) */
pcpd_server_state manager_server_state(pcpd_manager *m, const pcpd_server *s) {
        pcpd_server_state st;

        (void) pcpd_backend_server_status(m->pcp, s, &st);
        return st;
}

static char *endpoint_text(const struct sockaddr_in6 *a) {
        char buf[PCP_ADDR_STRLEN];

        pcp_addr_to_string(&a->sin6_addr, buf);
        if (ntohs(a->sin6_port) == PCP_SERVER_PORT)
                return g_strdup(buf);
        if (pcp_addr_is_ipv4(&a->sin6_addr))
                return g_strdup_printf("%s:%u", buf, ntohs(a->sin6_port));
        return g_strdup_printf("[%s]:%u", buf, ntohs(a->sin6_port));
}

void manager_server_free(pcpd_server *s) {
        if (s == NULL)
                return;
        if (s->silent_source != 0)
                g_source_remove(s->silent_source);
        g_free(s->source);
        g_free(s->ifname);
        g_free(s->text);
        g_free(s);
}

pcpd_server *manager_find_server(pcpd_manager *m, const struct sockaddr_in6 *a) {
        for (guint i = 0; i < m->servers->len; i++) {
                pcpd_server *s = m->servers->pdata[i];
                for (size_t j = 0; j < s->n_addrs; j++)
                        if (memcmp(&s->addrs[j].sin6_addr, &a->sin6_addr, 16) == 0 &&
                            s->addrs[j].sin6_port == a->sin6_port)
                                return s;
        }
        return NULL;
}

int manager_add_server(pcpd_manager *m, const struct sockaddr_in6 *addrs, size_t n, const char *source,
                              const char *ifname, pcpd_server **ret) {
        pcpd_server *s;
        int r;

        if (m->servers->len >= PCPD_MAX_SERVERS)
                return -ENOSPC;
        s = g_new0(pcpd_server, 1);
        s->manager = m;
        s->source = g_strdup(source);
        s->ifname = g_strdup(ifname != NULL ? ifname : "");
        s->n_addrs = n;
        s->family = pcp_addr_is_ipv4(&addrs[0].sin6_addr) ? AF_INET : AF_INET6;
        s->text = endpoint_text(&addrs[0]);
        s->logged_state = -1;
        for (size_t i = 0; i < n; i++)
                s->addrs[i] = addrs[i];
        /* its sockets and the engine's server (pcpd-pcp.h): nothing is told before it is
         * in the registry */
        r = m->pcp->ops->server_add(m->pcp, s);
        if (r < 0) {
                manager_server_free(s);
                return r;
        }
        g_ptr_array_add(m->servers, s);
        pcpd_backend_drain(m->pcp); /* its first probe; what the engine says of it finds it here now */
        manager_server_watch_silence(s, manager_server_state(m, s)); /* nothing heard yet */
        pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_SERVER_ADDED,
                       ((const char *const[]) { "PCPD_SERVER", s->text, "PCPD_INTERFACE", s->ifname, NULL }),
                       "PCP server %s (%s%s%s) added", s->text, source, s->ifname[0] ? ", " : "", s->ifname);
        if (ret != NULL)
                *ret = s;
        return 0;
}

void manager_remove_server(pcpd_manager *m, pcpd_server *s) {
        pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_SERVER_REMOVED,
                       ((const char *const[]) { "PCPD_SERVER", s->text, "PCPD_INTERFACE", s->ifname, NULL }),
                       "PCP server %s (%s) is gone", s->text, s->source);
        /* its mappings are lost with the network: the backend tells each as lost */
        m->pcp->ops->server_remove(m->pcp, s);
        g_ptr_array_remove(m->servers, s);
        manager_server_free(s);
}

/* A server that has answered nothing (engine state unknown) for PCPD_SILENT_SERVER_MS: a
 * gateway that does not speak PCP and drops what it does not know instead of answering
 * with ICMP. It keeps its mappings and may still answer (they then move to it, as direct
 * ones do), but it does not keep a host with a global address from mapping directly. */
bool manager_server_silent(const pcpd_server *s) {
        return s->seen_state == PCPD_SERVER_UNKNOWN && pcpd_now_ms() - s->unknown_since >= PCPD_SILENT_SERVER_MS;
}

static gboolean on_server_silent(gpointer data) {
        pcpd_server *s = data;
        pcpd_manager *m = s->manager;

        s->silent_source = 0;
        if (manager_host_global_address(m, s->family, s->ifname, NULL))
                g_message("PCP server %s has not answered for %u s: new %s mappings use the host's own global "
                          "address until it does",
                          s->text, PCPD_SILENT_SERVER_MS / 1000, s->family == AF_INET ? "IPv4" : "IPv6");
        manager_update_state(m);
        manager_backend_check_soon(m);
        return G_SOURCE_REMOVE;
}

/* After each engine state the manager sees for s: time its silence from when it is
 * unknown (again). Not for the server being added: it is not in the list yet. */
void manager_server_watch_silence(pcpd_server *s, pcpd_server_state st) {
        if (st == s->seen_state && (st != PCPD_SERVER_UNKNOWN || s->unknown_since != 0))
                return;
        s->seen_state = st;
        if (s->silent_source != 0) {
                g_source_remove(s->silent_source);
                s->silent_source = 0;
        }
        if (st != PCPD_SERVER_UNKNOWN)
                return;
        s->unknown_since = pcpd_now_ms();
        s->silent_source = g_timeout_add(PCPD_SILENT_SERVER_MS, on_server_silent, s);
}

/* The servers as the rules of pcpd-direct.h see them; v has room for PCPD_MAX_SERVERS
 * (manager_add_server() keeps to that). Returns how many. */
size_t manager_servers_view(pcpd_manager *m, pcpd_direct_server *v) {
        size_t n = 0;

        for (guint i = 0; i < m->servers->len && n < PCPD_MAX_SERVERS; i++) {
                pcpd_server *s = m->servers->pdata[i];
                pcpd_server_state st;
                bool known = pcpd_backend_server_status(m->pcp, s, &st);
                pcpd_server_view sv;
                bool not_answering = known && (st == PCPD_SERVER_PCP || st == PCPD_SERVER_NATPMP) &&
                                     pcpd_manager_server_view(m, s, &sv) && sv.silent;

                v[n++] = (pcpd_direct_server) {
                        .family = s->family,
                        .ifname = s->ifname,
                        .engine_known = known,
                        .state = st,
                        .silent = known && st == PCPD_SERVER_UNKNOWN && manager_server_silent(s),
                        .not_answering = not_answering,
                };
        }
        return n;
}

/* A server of the family that answers, on interface ifname (NULL: any) or configured. */
pcpd_server *manager_answering_server(pcpd_manager *m, int family, const char *ifname) {
        for (guint i = 0; i < m->servers->len; i++) {
                pcpd_server *s = m->servers->pdata[i];
                pcpd_server_state st = manager_server_state(m, s);

                if (s->family != family || (st != PCPD_SERVER_PCP && st != PCPD_SERVER_NATPMP))
                        continue;
                if (ifname != NULL && s->ifname[0] != '\0' && strcmp(ifname, s->ifname) != 0)
                        continue;
                return s;
        }
        return NULL;
}

/* s is known not to speak PCP nor NAT-PMP: unreachable (ICMP), an unsupported version,
 * switched off (NOT_AUTHORIZED), or silent for too long. */
bool manager_server_speaks_no_pcp(pcpd_manager *m, pcpd_server *s) {
        pcpd_server_state st;

        if (s == NULL || !pcpd_backend_server_status(m->pcp, s, &st))
                return false;
        return st == PCPD_SERVER_UNREACHABLE || st == PCPD_SERVER_UNSUPPORTED || st == PCPD_SERVER_DISABLED ||
               (st == PCPD_SERVER_UNKNOWN && manager_server_silent(s));
}

