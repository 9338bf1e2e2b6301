/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "pcpd-servers.h"
#include "pcpd-manager-private.h"

#include "pcpd-backend.h"

/* A wanted server the manager could not add (its sockets: connect() refused, EACCES for a
 * broadcast address, ENETUNREACH without a route; or the engine): said once, and tried
 * again only when that may help, not on every pass of the servers: after a source told
 * something (pcpd_manager_set_servers(): the routes or links changed and the default
 * routers were read again, a DHCP lease, a reload; the primary connection moved; a resume)
 * and REFUSED_RETRY_MIN_MS since the last try, that wait doubling with each refusal up to
 * REFUSED_RETRY_MAX_MS (a route message comes with every router advertisement any host of
 * the link sends); and every REFUSED_RETRY_MAX_MS in any case. Said again when it is
 * refused for another reason, or wanted again after it was not. One record per wanted
 * server at most: bounded as they are. */
#define REFUSED_RETRY_MIN_MS 1000u
#define REFUSED_RETRY_MAX_MS (300u * 1000u)

/* At most this many servers in one source's list: the sources keep to fewer of each
 * interface (pcpd-dhcp.c 8 an option, netlink 8 default routers, pcpd.conf 16), this bounds
 * the number of interfaces too; every pass's work grows with its square. */
#define SOURCE_MAX_SPECS 256u

typedef struct refusal {
        pcpd_source source;
        int family;
        pcpd_server_spec spec;
        int reason;           /* the errno it was refused with */
        uint64_t net_gen;     /* the network as it was at the last try */
        uint64_t last_try_ms; /* pcpd_now_ms() */
        uint64_t wait_ms;     /* REFUSED_RETRY_MIN_MS..REFUSED_RETRY_MAX_MS */
        bool wanted;          /* bookkeeping of one pass */
} refusal;

struct pcpd_server_sources {
        pcpd_manager *manager;
        GArray *lists[_PCPD_SOURCE_MAX]; /* pcpd_server_spec, as each source last gave them */
        char *primary;                   /* the primary connection's interface; NULL: unknown */
        GArray *refusals;                /* refusal */
        uint64_t net_gen;                /* counts what the sources told (the network changed) */
        guint retry_source;              /* the next refused server's try is due */
        bool over[_PCPD_SOURCE_MAX];     /* its list was cut at SOURCE_MAX_SPECS (said once) */
};

/* one server as the manager is to have it: one source, one interface, one family */
typedef struct wanted {
        pcpd_source source;
        int family;
        pcpd_server_spec spec;
        bool admitted; /* within the table's room (wanted_admit()) */
        bool present;
} wanted;

static pcpd_server_sources *sources_get(pcpd_manager *m) {
        if (m->sources == NULL) {
                m->sources = g_new0(pcpd_server_sources, 1);
                m->sources->manager = m;
                for (int i = 0; i < _PCPD_SOURCE_MAX; i++)
                        m->sources->lists[i] = g_array_new(FALSE, TRUE, sizeof(pcpd_server_spec));
                m->sources->refusals = g_array_new(FALSE, TRUE, sizeof(refusal));
        }
        return m->sources;
}

void pcpd_server_sources_free(pcpd_server_sources *s) {
        if (s == NULL)
                return;
        for (int i = 0; i < _PCPD_SOURCE_MAX; i++)
                g_array_free(s->lists[i], TRUE);
        g_array_free(s->refusals, TRUE);
        if (s->retry_source != 0)
                g_source_remove(s->retry_source);
        g_free(s->primary);
        g_free(s);
}

static bool endpoint_equal(const struct sockaddr_in6 *a, const struct sockaddr_in6 *b) {
        return memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0 && a->sin6_port == b->sin6_port &&
               a->sin6_scope_id == b->sin6_scope_id;
}

static int endpoint_family(const struct sockaddr_in6 *a) {
        return pcp_addr_is_ipv4(&a->sin6_addr) ? AF_INET : AF_INET6;
}

static bool wanted_has_endpoint(const GArray *w, const struct sockaddr_in6 *a) {
        for (guint i = 0; i < w->len; i++) {
                const wanted *x = &g_array_index(w, wanted, i);
                for (size_t j = 0; j < x->spec.n_addrs; j++)
                        if (endpoint_equal(&x->spec.addrs[j], a))
                                return true;
        }
        return false;
}

static bool wanted_has_dhcp(const GArray *w, const char *ifname, int family) {
        for (guint i = 0; i < w->len; i++) {
                const wanted *x = &g_array_index(w, wanted, i);
                if ((x->source == PCPD_SOURCE_DHCPV4 || x->source == PCPD_SOURCE_DHCPV6) && x->family == family &&
                    strcmp(x->spec.ifname, ifname) == 0)
                        return true;
        }
        return false;
}

/* What the manager's servers are to be: every source's, in the order of preference, one
 * per family, each address once, no default router where DHCP announced a server (S3). */
static GArray *wanted_build(pcpd_server_sources *src) {
        static const pcpd_source order[] = { PCPD_SOURCE_CONFIG, PCPD_SOURCE_DHCPV4, PCPD_SOURCE_DHCPV6,
                                             PCPD_SOURCE_GATEWAY };
        GArray *w = g_array_new(FALSE, TRUE, sizeof(wanted));

        for (size_t o = 0; o < G_N_ELEMENTS(order); o++) {
                const GArray *list = src->lists[order[o]];

                for (guint i = 0; i < list->len; i++) {
                        const pcpd_server_spec *sp = &g_array_index(list, pcpd_server_spec, i);

                        for (int f = 0; f < 2; f++) {
                                wanted x = { .source = order[o], .family = f == 0 ? AF_INET : AF_INET6 };

                                g_strlcpy(x.spec.ifname, sp->ifname, sizeof(x.spec.ifname));
                                for (size_t j = 0; j < sp->n_addrs && j < PCP_SERVER_MAX_ADDRS; j++)
                                        if (endpoint_family(&sp->addrs[j]) == x.family &&
                                            !wanted_has_endpoint(w, &sp->addrs[j]))
                                                x.spec.addrs[x.spec.n_addrs++] = sp->addrs[j];
                                if (x.spec.n_addrs == 0)
                                        continue;
                                if (x.source == PCPD_SOURCE_GATEWAY && wanted_has_dhcp(w, x.spec.ifname, x.family))
                                        continue;
                                g_array_append_val(w, x);
                        }
                }
        }
        return w;
}

/* Which of the wanted servers the manager has: at most PCPD_MAX_SERVERS (each costs a
 * socket per address, with its receive buffer, and the engine's state), shared out in turns
 * between the (source, interface) pairs in the order of preference: every pair's first
 * server, then every pair's second, and so on. So one network cannot take the room of
 * another's: an interface whose DHCP option lists 8 servers and that has 8 default routers
 * besides leaves the first server of every other interface (and of the configured ones)
 * its place, whenever it comes; with more than 16 pairs, the last ones in that order get
 * none. Configured servers are a pair of their own (they come first). */
static void wanted_admit(GArray *w) {
        g_autofree guint *rank = g_new0(guint, w->len + 1);
        guint room = PCPD_MAX_SERVERS;

        for (guint i = 0; i < w->len; i++) {
                const wanted *x = &g_array_index(w, wanted, i);

                for (guint j = 0; j < i; j++) {
                        const wanted *y = &g_array_index(w, wanted, j);
                        if (y->source == x->source && strcmp(y->spec.ifname, x->spec.ifname) == 0)
                                rank[i]++;
                }
        }
        for (guint turn = 0; room > 0; turn++) {
                bool any = false;

                for (guint i = 0; i < w->len && room > 0; i++)
                        if (rank[i] == turn) {
                                g_array_index(w, wanted, i).admitted = true;
                                room--;
                                any = true;
                        }
                if (!any)
                        break;
        }
}

static bool server_is(const pcpd_server *s, const wanted *x) {
        if (strcmp(s->source, pcpd_source_to_string(x->source)) != 0 || strcmp(s->ifname, x->spec.ifname) != 0 ||
            s->n_addrs != x->spec.n_addrs)
                return false;
        for (size_t i = 0; i < s->n_addrs; i++)
                if (!endpoint_equal(&s->addrs[i], &x->spec.addrs[i]))
                        return false;
        return true;
}

/* mp leaves s (about to go) without a word on the bus: it is moved or set waiting next.
 * Its upstream mapping goes with the server in the engine, not deleted on the server. */
static void mapping_detach(pcpd_manager *m, pcpd_mapping *mp) {
        pcpd_backend_detach(m->pcp, mp);
        mp->server = NULL;
        if (mp->server_text != NULL && mp->server_text[0] != '\0')
                pcpd_mapping_set_str(mp, prev_server, mp->server_text);
}

static bool mapping_waiting(const pcpd_mapping *mp) {
        return !pcpd_mapping_is_direct(mp) && mp->server == NULL && !pcpd_backend_holds(mp->manager->pcp, mp);
}

/* Every mapping on no server (just detached, or waiting) goes to the server that serves it
 * now, or waits. */
static void mappings_replan(pcpd_manager *m) {
        g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);

        for (guint i = 0; i < all->len; i++) {
                pcpd_mapping *mp = all->pdata[i];
                pcpd_server *s;

                if (!mapping_waiting(mp))
                        continue;
                s = pcpd_servers_choose(m, mp->family, pcpd_mapping_interface(mp));
                if (s != NULL)
                        (void) manager_mapping_move(m, mp, m->pcp, s, NULL);
                else
                        manager_mapping_wait(m, mp);
        }
}

/* N7: while the primary connection is known (NetworkManager), a mapping that named no
 * interface belongs on the primary connection's servers: when the primary moves (another
 * network, a full-tunnel VPN), it leaves its server (deleted there: C4) for the one that
 * serves it now, or waits. Without a known primary nothing moves (today's behaviour). */
static void mappings_follow_primary(pcpd_manager *m) {
        g_autoptr(GPtrArray) all = NULL;

        if (pcpd_manager_get_primary(m) == NULL)
                return;
        all = pcpd_manager_list_mappings(m);
        for (guint i = 0; i < all->len; i++) {
                pcpd_mapping *mp = all->pdata[i];
                pcpd_server *s;

                if (pcpd_mapping_is_direct(mp) || mp->server == NULL || pcpd_mapping_interface(mp) != NULL)
                        continue;
                s = pcpd_servers_choose(m, mp->family, NULL);
                if (s == mp->server)
                        continue;
                manager_mapping_leave(m, mp);
                if (s != NULL)
                        (void) manager_mapping_move(m, mp, m->pcp, s, NULL);
                else
                        manager_mapping_wait(m, mp);
        }
}

static bool refusal_is(const refusal *r, const wanted *x) {
        if (r->source != x->source || r->family != x->family || strcmp(r->spec.ifname, x->spec.ifname) != 0 ||
            r->spec.n_addrs != x->spec.n_addrs)
                return false;
        for (size_t i = 0; i < x->spec.n_addrs; i++)
                if (!endpoint_equal(&r->spec.addrs[i], &x->spec.addrs[i]))
                        return false;
        return true;
}

static refusal *refusal_find(pcpd_server_sources *src, const wanted *x) {
        for (guint i = 0; i < src->refusals->len; i++) {
                refusal *r = &g_array_index(src->refusals, refusal, i);
                if (refusal_is(r, x))
                        return r;
        }
        return NULL;
}

/* When r may be tried again (pcpd_now_ms()): after its wait if the network changed since
 * its last try, else after REFUSED_RETRY_MAX_MS. */
static uint64_t refusal_due_ms(const pcpd_server_sources *src, const refusal *r) {
        return r->last_try_ms + (r->net_gen != src->net_gen ? r->wait_ms : REFUSED_RETRY_MAX_MS);
}

/* Only records of servers still wanted stay (one that comes back is said again). */
static void refusals_prune(pcpd_server_sources *src, const GArray *w) {
        for (guint i = src->refusals->len; i > 0; i--) {
                refusal *r = &g_array_index(src->refusals, refusal, i - 1);

                r->wanted = false;
                for (guint j = 0; j < w->len && !r->wanted; j++)
                        r->wanted = refusal_is(r, &g_array_index(w, wanted, j));
                if (!r->wanted)
                        g_array_remove_index(src->refusals, i - 1);
        }
}

/* x was refused with err (why: its text, NULL: err's): said unless it was already, for the
 * same reason */
static void refusal_note(pcpd_server_sources *src, const wanted *x, int err, const char *why, uint64_t now) {
        refusal *r = refusal_find(src, x);

        if (r != NULL && r->reason == err) {
                r->wait_ms = CLAMP(r->wait_ms * 2, (uint64_t) REFUSED_RETRY_MIN_MS, (uint64_t) REFUSED_RETRY_MAX_MS);
        } else {
                char text[PCP_ADDR_STRLEN];

                pcp_addr_to_string(&x->spec.addrs[0].sin6_addr, text);
                g_warning("PCP server %s (%s%s%s) not used: %s", text, pcpd_source_to_string(x->source),
                          x->spec.ifname[0] ? ", " : "", x->spec.ifname, why != NULL ? why : g_strerror(err));
                if (r == NULL) {
                        g_array_append_val(src->refusals, ((refusal) { .source = x->source, .family = x->family,
                                                                        .spec = x->spec }));
                        r = &g_array_index(src->refusals, refusal, src->refusals->len - 1);
                }
                r->reason = err;
                r->wait_ms = REFUSED_RETRY_MIN_MS;
        }
        r->net_gen = src->net_gen;
        r->last_try_ms = now;
}

static bool servers_apply(pcpd_manager *m);

static gboolean on_refused_retry(gpointer data) {
        pcpd_server_sources *src = data;
        pcpd_manager *m = src->manager;

        src->retry_source = 0;
        if (servers_apply(m))
                pcpd_backend_kick(m->pcp);
        return G_SOURCE_REMOVE;
}

/* The next try of a refused server, when one is wanted */
static void refusals_schedule(pcpd_server_sources *src, uint64_t now) {
        uint64_t due = UINT64_MAX;

        if (src->retry_source != 0) {
                g_source_remove(src->retry_source);
                src->retry_source = 0;
        }
        for (guint i = 0; i < src->refusals->len; i++) {
                const refusal *r = &g_array_index(src->refusals, refusal, i);
                if (r->reason != ENOSPC)
                        due = MIN(due, refusal_due_ms(src, r));
        }
        if (due != UINT64_MAX)
                src->retry_source = g_timeout_add((guint) MIN(due > now ? due - now : 0, (uint64_t) G_MAXUINT),
                                                  on_refused_retry, src);
}

static bool servers_apply(pcpd_manager *m) {
        pcpd_server_sources *src = sources_get(m);
        g_autoptr(GArray) w = wanted_build(src);
        bool changed = false, any_waiting = false;
        uint64_t now = pcpd_now_ms();

        wanted_admit(w);
        for (guint i = m->servers->len; i > 0; i--) {
                pcpd_server *s = m->servers->pdata[i - 1];
                bool keep = false;

                for (guint j = 0; j < w->len && !keep; j++) {
                        wanted *x = &g_array_index(w, wanted, j);
                        if (x->admitted && !x->present && server_is(s, x))
                                keep = x->present = true;
                }
                if (keep)
                        continue;
                /* its mappings go elsewhere (below), not away with it */
                {
                        g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);
                        for (guint k = 0; k < all->len; k++) {
                                pcpd_mapping *mp = all->pdata[k];
                                if (mp->server == s)
                                        mapping_detach(m, mp);
                        }
                }
                manager_remove_server(m, s);
                changed = true;
        }
        refusals_prune(src, w);
        for (guint j = 0; j < w->len; j++) {
                wanted *x = &g_array_index(w, wanted, j);
                refusal *rf = refusal_find(src, x);
                int r;

                if (!x->admitted) {
                        if (rf == NULL || rf->reason != ENOSPC)
                                refusal_note(src, x, ENOSPC,
                                             "pcpd uses " G_STRINGIFY(PCPD_MAX_SERVERS) " servers at most, shared out "
                                             "between the sources on each interface (their first servers first)",
                                             now);
                        continue;
                }
                /* a full table is tried on every pass (a server may have gone), at no cost */
                if (x->present || (rf != NULL && rf->reason != ENOSPC && now < refusal_due_ms(src, rf)))
                        continue;
                r = manager_add_server(m, x->spec.addrs, x->spec.n_addrs, pcpd_source_to_string(x->source),
                                       x->spec.ifname, NULL);
                if (r < 0)
                        refusal_note(src, x, -r, NULL, now);
                else {
                        /* (looked up again: adding it told things, which could have run a pass) */
                        rf = refusal_find(src, x);
                        if (rf != NULL)
                                g_array_remove_index(src->refusals,
                                                     (guint) (rf - &g_array_index(src->refusals, refusal, 0)));
                        changed = true;
                }
        }
        refusals_schedule(src, now);
        {
                g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);
                for (guint k = 0; k < all->len && !any_waiting; k++)
                        any_waiting = mapping_waiting(all->pdata[k]);
        }
        if (changed || any_waiting)
                mappings_replan(m);
        mappings_follow_primary(m);
        if (changed)
                manager_servers_changed(m);
        return changed;
}

void pcpd_servers_renew_all(pcpd_manager *m) {
        g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);

        /* every server goes (its state in the engine with it: epoch baselines, address
         * choice) and comes back from the sources' lists; its mappings wait in between
         * and are asked again with their nonces (a refresh for the server) */
        for (guint k = 0; k < all->len; k++) {
                pcpd_mapping *mp = all->pdata[k];
                if (mp->server != NULL)
                        mapping_detach(m, mp);
        }
        while (m->servers->len > 0)
                manager_remove_server(m, m->servers->pdata[m->servers->len - 1]);
        /* maybe another network: the servers refused before are tried again at once (and
         * said again only when refused for another reason) */
        {
                pcpd_server_sources *src = sources_get(m);
                src->net_gen++;
                for (guint i = 0; i < src->refusals->len; i++)
                        g_array_index(src->refusals, refusal, i).last_try_ms =
                                g_array_index(src->refusals, refusal, i).wait_ms = 0;
        }
        (void) servers_apply(m);
}

void pcpd_servers_replan(pcpd_manager *m) {
        (void) servers_apply(m);
}

bool pcpd_manager_set_servers(pcpd_manager *m, pcpd_source source, const char *ifname, const pcpd_server_spec *servers,
                              size_t n) {
        pcpd_server_sources *src = sources_get(m);
        size_t left_out = 0;
        GArray *list;

        g_return_val_if_fail((unsigned) source < _PCPD_SOURCE_MAX, false);
        list = src->lists[source];
        src->net_gen++; /* the network changed: refused servers may be reachable now */
        for (guint i = list->len; i > 0; i--)
                if (ifname == NULL || strcmp(g_array_index(list, pcpd_server_spec, i - 1).ifname, ifname) == 0)
                        g_array_remove_index(list, i - 1);
        for (size_t i = 0; i < n; i++) {
                pcpd_server_spec sp = servers[i];

                if (sp.n_addrs == 0 || sp.n_addrs > PCP_SERVER_MAX_ADDRS)
                        continue;
                if (ifname != NULL)
                        g_strlcpy(sp.ifname, ifname, sizeof(sp.ifname));
                if (list->len >= SOURCE_MAX_SPECS) {
                        left_out++;
                        continue;
                }
                g_array_append_val(list, sp);
        }
        if (left_out > 0 && !src->over[source])
                g_warning("PCP servers from %s: %zu past the first %u left out", pcpd_source_to_string(source),
                          left_out, SOURCE_MAX_SPECS);
        src->over[source] = left_out > 0;
        return servers_apply(m);
}

void pcpd_manager_set_primary(pcpd_manager *m, const char *ifname) {
        pcpd_server_sources *src = sources_get(m);
        const char *v = ifname != NULL && *ifname != '\0' ? ifname : NULL;

        if (g_strcmp0(src->primary, v) == 0)
                return;
        g_message("Primary connection's interface: %s", v ?: "(none known)");
        g_free(src->primary);
        src->primary = g_strdup(v);
        src->net_gen++;
        /* waiting mappings may have a server now */
        servers_apply(m);
}

const char *pcpd_manager_get_primary(pcpd_manager *m) {
        return m->sources != NULL ? m->sources->primary : NULL;
}

pcpd_server *pcpd_servers_choose(pcpd_manager *m, int family, const char *interface) {
        pcpd_select_server sel[PCPD_MAX_SERVERS];
        struct in6_addr addrs[PCPD_MAX_SERVERS][PCP_SERVER_MAX_ADDRS];
        size_t out[PCPD_MAX_SERVERS], n = MIN(m->servers->len, (guint) PCPD_MAX_SERVERS), k;

        if (family == 0) {
                pcpd_server *s = pcpd_servers_choose(m, AF_INET, interface);
                return s != NULL ? s : pcpd_servers_choose(m, AF_INET6, interface);
        }
        for (size_t i = 0; i < n; i++) {
                const pcpd_server *s = m->servers->pdata[i];

                for (size_t j = 0; j < s->n_addrs; j++)
                        addrs[i][j] = s->addrs[j].sin6_addr;
                sel[i] = (pcpd_select_server) {
                        .source = pcpd_source_from_string(s->source),
                        .ifname = s->ifname,
                        .n_addrs = s->n_addrs,
                        .addrs = addrs[i],
                };
        }
        k = pcpd_select_servers(sel, n, family, interface, pcpd_manager_get_primary(m), out, G_N_ELEMENTS(out));
        return k > 0 ? m->servers->pdata[out[0]] : NULL;
}
