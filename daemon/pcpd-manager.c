/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The manager (pcpd-manager.h): the registries of servers and mappings and their holders,
 * removing and releasing mappings, enabling, the manager's published state (State,
 * ExternalAddresses, the status line), its news to one listener, and lifecycle. Its other
 * parts are listed in pcpd-manager-private.h.
 */

#include "pcpd-manager.h"
#include "pcpd-manager-private.h"
#include "pcpd-backend.h"

#include <string.h>
#include <unistd.h>

#include "pcpd-declared-manager.h"
#include "pcpd-direct.h"
#include "pcpd-holders.h"
#include "pcpd-host.h"
#include "pcpd-log.h"
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
        m->n_mapping_news++;
        if (m->listener->mapping_added != NULL)
                m->listener->mapping_added(m, mp, m->listener_data);
}

static void emit_mapping_removed(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason) {
        m->n_mapping_news++;
        if (m->listener->mapping_removed != NULL)
                m->listener->mapping_removed(m, mp, reason, m->listener_data);
}

void pcpd_manager_emit_mapping_changed(pcpd_manager *m, pcpd_mapping *mp, pcpd_mapping_changed what) {
        if (what == 0)
                return; /* nothing told, nothing counted */
        m->n_mapping_news++;
        if (m->listener->mapping_changed != NULL)
                m->listener->mapping_changed(m, mp, what, m->listener_data);
}

void pcpd_manager_emit_changed(pcpd_manager *m, pcpd_manager_changed what) {
        if (what != 0 && m->listener->manager_changed != NULL)
                m->listener->manager_changed(m, what, m->listener_data);
}

/* ---- the servers ---- */

void manager_servers_changed(pcpd_manager *m) {
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_SERVERS | PCPD_MANAGER_CHANGED_EXTERNAL_ADDRESSES);
        manager_update_state(m);
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
                                 pcpd_manager_n_mappings(m));
        if (g_strcmp0(status, m->status_text) != 0) {
                set_str(&m->status_text, status);
                if (m->listener->status_changed != NULL)
                        m->listener->status_changed(m, m->status_text, m->listener_data);
        }
}

/* A host that is not behind a NAT for the family has its own address as external address
 * (server ""): what its mappings get. Else the first server of the family that told one,
 * else the first UPnP-IGD router (the fallback) whose external address is of the family: as
 * the ExternalAddresses property, so that a network whose router speaks only UPnP-IGD gets
 * the address "pcpctl status" shows, not NoServer. Nothing is sent: what was told is given. */
bool pcpd_manager_external_address(pcpd_manager *m, int family, char **ret_address, char **ret_server) {
        char buf[PCP_ADDR_STRLEN];
        struct in6_addr own;
        pcpd_backend_server routers[PCPD_MAX_SERVERS];
        size_t n;

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
        if (m->upnp == NULL)
                return false;
        n = m->upnp->ops->servers(m->upnp, routers, G_N_ELEMENTS(routers));
        for (size_t k = 0; k < n; k++) {
                /* an IGD's external address is IPv4, kept IPv4-mapped */
                bool v4 = IN6_IS_ADDR_V4MAPPED(&routers[k].external_addr);

                if (!routers[k].has_external || v4 != (family == AF_INET))
                        continue;
                *ret_address = g_strdup(pcp_addr_to_string(&routers[k].external_addr, buf));
                /* the router as the Servers property names it */
                *ret_server = g_strdup(routers[k].address);
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
                pcpd_backend_server routers[PCPD_MAX_SERVERS];
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

/* m->mappings hashes a mapping by its id */
static uint64_t mapping_id_hash(const void *x) {
        return ((const pcpd_mapping *) x)->id;
}

/* m->mappings' match: ctx is the id (a uint64_t) */
static bool mapping_id_is(const void *x, const void *ctx) {
        return ((const pcpd_mapping *) x)->id == *(const uint64_t *) ctx;
}

pcpd_mapping *pcpd_manager_mapping(const pcpd_manager *m, uint64_t id) {
        return pcpd_mapping_set_find(&m->mappings, id, mapping_id_is, &id);
}

void manager_mapping_free(pcpd_mapping *mp) {
        if (mp == NULL)
                return;
        if (pcpd_mapping_is_direct(mp))
                mp->manager->n_direct--;
        g_free(mp->addrs);
        if (mp->unclaimed)
                manager_unclaimed_done(mp->manager, mp);
        pcpd_holders_free_mapping(mp);
        clear_shared(&mp->server_text);
        clear_shared(&mp->app_id);
        clear_shared(&mp->owner);
        clear_shared(&mp->description);
        /* state and error are interned names (set_name()) */
        clear_shared(&mp->external_address);
        clear_shared(&mp->internal_address);
        pcpd_mapping_rare_free(mp);
        g_free(mp);
}

/* The sharing key is read from the mapping: family, opcode, protocol, internal port, and for
 * PEER the remote address (as the binary address its text gives; none: the zero address,
 * as a record without one was keyed before) and port. */
static void mapping_key_remote(const pcpd_mapping *mp, struct in6_addr *a) {
        const char *remote = pcpd_mapping_remote_address(mp);

        if (remote == NULL || !pcp_addr_from_string(remote, a))
                memset(a, 0, sizeof(*a));
}

static uint64_t mapping_key_hash(const void *p) {
        const pcpd_mapping *mp = p;
        guint h = ((guint) mp->family << 24) ^ ((guint) mp->protocol << 16) ^ mp->internal_port;

        if (mp->opcode == PCP_OPCODE_PEER) {
                struct in6_addr a;
                uint32_t w[4];

                mapping_key_remote(mp, &a);
                memcpy(w, &a, sizeof(w));
                h = h * 31u + 0x9e3779b9u;
                for (int i = 0; i < 4; i++)
                        h = h * 31u + w[i];
                h = h * 31u + mp->remote_port;
        }
        return h;
}

static bool mapping_key_equal(const pcpd_mapping *a, const pcpd_mapping *b) {
        struct in6_addr ra, rb;

        if (a->family != b->family || a->protocol != b->protocol || a->internal_port != b->internal_port ||
            (a->opcode == PCP_OPCODE_PEER) != (b->opcode == PCP_OPCODE_PEER))
                return false;
        if (a->opcode != PCP_OPCODE_PEER)
                return true;
        if (a->remote_port != b->remote_port)
                return false;
        mapping_key_remote(a, &ra);
        mapping_key_remote(b, &rb);
        return memcmp(&ra, &rb, sizeof(ra)) == 0;
}

/* m->by_key's match: ctx is a mapping (or a probe) with the key searched for */
static bool mapping_key_is(const void *x, const void *ctx) {
        return mapping_key_equal(x, ctx);
}

void manager_mapping_key_index_init(pcpd_mapping_set *s) {
        pcpd_mapping_set_init(s, mapping_key_hash);
}

pcpd_mapping *manager_mapping_key_index_find(const pcpd_mapping_set *s, const pcpd_mapping *probe) {
        return pcpd_mapping_set_find(s, mapping_key_hash(probe), mapping_key_is, probe);
}

pcpd_mapping *manager_mapping_find(pcpd_manager *m, int family, uint8_t opcode, uint8_t protocol, uint16_t port,
                                   const struct in6_addr *remote, uint16_t remote_port) {
        char buf[PCP_ADDR_STRLEN];
        struct pcpd_mapping_rare rare = { 0 };
        pcpd_mapping probe = {
                .family = family,
                .opcode = opcode,
                .protocol = protocol,
                .internal_port = port,
        };

        if (opcode == PCP_OPCODE_PEER) {
                rare.remote_address = (char *) pcp_addr_to_string(remote, buf);
                probe.rare = &rare;
                probe.remote_port = remote_port;
        }
        return manager_mapping_key_index_find(&m->by_key, &probe);
}

unsigned pcpd_manager_count_for_uid(pcpd_manager *m, uid_t uid) {
        void *v;
        unsigned n = 0;

        for (size_t i = 0; pcpd_mapping_set_next(&m->mappings, &i, &v);)
                if (((pcpd_mapping *) v)->uid == uid)
                        n++;
        return n;
}

GPtrArray *pcpd_manager_list_mappings(pcpd_manager *m) {
        GPtrArray *a = g_ptr_array_sized_new(pcpd_mapping_set_size(&m->mappings));
        void *v;

        for (size_t i = 0; pcpd_mapping_set_next(&m->mappings, &i, &v);)
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
        return pcpd_manager_mapping(m, id);
}

/* ---- holders: a mapping lives while one of its holders' connections does ---- */

/* mp, which the name that left held alone, goes unless it is held again or persistent by
 * now */
static void remove_orphan(pcpd_manager *m, pcpd_mapping *mp, const char *name) {
        if (pcpd_holders_count(mp) > 0 || mp->persistent)
                return;
        g_message("Mapping %s: its owner %s left the bus; deleting it upstream", PCPD_MAPPING_PATH(mp), name);
        pcpd_manager_remove_mapping(m, mp, PCPD_REMOVED_OWNER_VANISHED);
}

/* The next max orphans, each looked up again by id: gone already (released, revoked, ...)
 * or held again meanwhile, it is left alone. Returns how many are left. */
static guint remove_orphans(pcpd_manager *m, guint max) {
        for (guint n = 0; n < max && m->orphans_head < m->orphans->len; n++) {
                pcpd_manager_orphan *o = &g_array_index(m->orphans, pcpd_manager_orphan, m->orphans_head++);
                uint64_t id = o->id;
                char *name = g_steal_pointer(&o->name); /* o may move: a removal may add orphans */
                pcpd_mapping *mp = pcpd_manager_mapping(m, id);

                if (mp != NULL)
                        remove_orphan(m, mp, name);
                g_ref_string_release(name);
        }
        if (m->orphans_head < m->orphans->len)
                return m->orphans->len - m->orphans_head;
        g_array_set_size(m->orphans, 0);
        m->orphans_head = 0;
        return 0;
}

bool manager_output_backed_up(void *data) {
        pcpd_manager *m = data;

        return m->listener->output_backlog != NULL &&
               m->listener->output_backlog(m, m->listener_data) > PCPD_OUTPUT_BACKLOG_MAX;
}

static pcpd_pace_result orphans_step(void *data, guint max) {
        return remove_orphans(data, max) > 0 ? PCPD_PACE_MORE : PCPD_PACE_DONE;
}

/* (m->orphans_source stays set while a batch runs: a name that leaves meanwhile queues its
 * mappings behind, without a second source) */
static const pcpd_pace_ops orphans_pace_ops = {
        .step = orphans_step,
        .backed_up = manager_output_backed_up,
        .batch_max = PCPD_ORPHAN_BATCH,
        .retry_ms = PCPD_OUTPUT_BACKLOG_RETRY_MS,
        .max_waits = PCPD_OUTPUT_BACKLOG_WAITS,
        .slow_ms = 0, /* then the next batch goes anyway: see PCPD_OUTPUT_BACKLOG_MAX */
};

/* the loop has turned since a departure's removals at once (m->orphans_turn_used) */
static gboolean on_orphans_turn(gpointer userdata) {
        pcpd_manager *m = userdata;

        m->orphans_turn_used = false;
        m->orphans_turn_source = 0;
        return G_SOURCE_REMOVE;
}

/* How many of a departing name's mappings may go at once, in this call: up to
 * PCPD_ORPHAN_BATCH for the first name of a turn of the loop that leaves any to remove (a
 * holder of up to PCPD_ORPHAN_BATCH goes in the same turn, as a lone one always did; the
 * listener is not asked). None for the names after it in the same turn: theirs are queued
 * (cheap) and go in the paced batches from the next turn on. The bus hands pcpd names that
 * leave together in one dispatch (up to 64 messages), and a call read among them waits in
 * pcpd for the removals of the names read before it: 100 leaving, its longest wait was
 * 1.8-3.3 ms (median 2.6) in five runs with theirs queued, 1.6-16 ms (median 5.3) with
 * 128 a turn removed at once for them all (bench/README.md, branches `leavers`, `tidy`). None either while others' wait in the
 * queue: they go first (one stream, in the order the names left). */
static guint orphans_at_once(pcpd_manager *m) {
        if (m->orphans_head < m->orphans->len || m->orphans_turn_used)
                return 0;
        return PCPD_ORPHAN_BATCH;
}

static void orphan_clear(gpointer p) {
        pcpd_manager_orphan *o = p;

        if (o->name != NULL)
                g_ref_string_release(o->name);
}

/* A unique name left the bus (pcpd-bus-track.c says so): every mapping it held loses that
 * holder. Those nobody holds now go, as many at once as orphans_at_once() allows (up to
 * PCPD_ORPHAN_BATCH for the first name of a turn of the loop, none for the later ones),
 * the others queued behind any already queued and removed PCPD_ORPHAN_BATCH a turn of the
 * loop (at the default priority: the calls and signals that came meanwhile are served in
 * between, and the removals are not put off by a busy bus), each batch once the
 * listener's output is not backed up. */
void pcpd_manager_holder_vanished(pcpd_manager *m, const char *name) {
        g_autoptr(GPtrArray) held = pcpd_holders_vanish(m->holder_index, name);
        char *shared = NULL;
        guint budget = 0, now = 0;
        bool asked = false;

        if (held == NULL)
                return;
        for (guint i = 0; i < held->len; i++) {
                pcpd_mapping *mp = held->pdata[i];
                pcpd_manager_orphan o;

                if (pcpd_holders_count(mp) > 0 || mp->persistent)
                        continue;
                if (!asked) {
                        /* asked once, and only for a name that leaves something to remove */
                        budget = orphans_at_once(m);
                        asked = true;
                }
                if (now < budget) {
                        now++;
                        remove_orphan(m, mp, name);
                        continue;
                }
                if (shared == NULL)
                        shared = g_ref_string_new_intern(name);
                o = (pcpd_manager_orphan) { .id = mp->id, .name = g_ref_string_acquire(shared) };
                g_array_append_val(m->orphans, o);
        }
        if (now > 0) {
                m->orphans_turn_used = true;
                if (m->orphans_turn_source == 0)
                        m->orphans_turn_source = g_idle_add_full(G_PRIORITY_DEFAULT, on_orphans_turn, m, NULL);
        }
        if (shared == NULL)
                return;
        g_ref_string_release(shared);
        pcpd_pace_kick(&m->orphans_pace);
}

void manager_mapping_add_holder(pcpd_manager *m, pcpd_mapping *mp, const char *owner, bool known_alive) {
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
                                 uint32_t lifetime, uint64_t created) {
        pcpd_mapping *mp = g_new0(pcpd_mapping, 1);

        mp->manager = m;
        mp->id = id;
        mp->uid = req->uid;
        mp->pid = req->pid;
        set_shared(&mp->app_id, req->app_id ?: "");
        mp->app_id_source = req->app_id_source ?: "none";
        set_shared(&mp->owner, req->persistent ? "" : (req->owner ?: ""));
        mp->persistent = req->persistent;
        pcpd_mapping_set_str(mp, declared, req->declared);
        mp->opcode = req->opcode;
        mp->protocol = req->protocol;
        mp->family = family;
        mp->internal_port = req->internal_port;
        mp->suggested_port = req->suggested_port;
        if (req->opcode == PCP_OPCODE_PEER) {
                char buf[PCP_ADDR_STRLEN];
                pcpd_mapping_set_str(mp, remote_address, pcp_addr_to_string(&req->remote_address, buf));
                mp->remote_port = req->remote_port;
        }
        mp->lifetime = lifetime;
        set_shared(&mp->description, req->description ?: "");
        if (req->interface != NULL && *req->interface != '\0')
                pcpd_mapping_set_str(mp, interface, req->interface);
        mp->created = created;
        mp->has_suggested_address = req->has_external_address;
        mp->prefer_failure = req->prefer_failure;
        mp->has_third_party = req->has_third_party;
        if (req->has_external_address || req->has_third_party) {
                mp->addrs = g_new0(struct pcpd_mapping_addrs, 1);
                if (req->has_external_address)
                        mp->addrs->suggested_address = req->external_address;
                if (req->has_third_party)
                        mp->addrs->third_party = req->third_party;
        }
        pcpd_mapping_set_filters(mp, req->filters, req->n_filters);
        set_name(&mp->state, "pending");
        set_name(&mp->error, "");
        set_shared(&mp->external_address, "");
        return mp;
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
        pcpd_mapping_set_remove(&m->by_key, mp);
        pcpd_holders_drop(m->holder_index, mp);
        emit_mapping_removed(m, mp, reason);
        pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_REMOVED, mp, NULL,
                         pcpd_remove_reason_to_string(reason), "Mapping %s removed (%s)", PCPD_MAPPING_PATH(mp),
                         pcpd_remove_reason_to_string(reason));
        pcpd_mapping_set_remove(&m->mappings, mp);
        manager_mapping_free(mp);
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_MAPPING_COUNT);
        manager_update_state(m);
        pcpd_backend_kick(m->pcp);
}

void pcpd_manager_release(pcpd_manager *m, pcpd_mapping *mp, const char *holder, pcpd_remove_reason reason) {
        if (holder != NULL && pcpd_holders_holds(mp, holder) > 0) {
                bool last = pcpd_holders_remove(m->holder_index, mp, holder);

                if (mp->persistent) {
                        /* it outlives its holders (made persistent while they held it, or
                         * declared and shared with one): that hold goes, the mapping stays.
                         * Told: the holds left (one per AddMapping not let go of, by any
                         * name), and how many are still this name's own (a name may hold
                         * a mapping several times: it still holds it) */
                        unsigned left = pcpd_holders_total(mp), own = pcpd_holders_holds(mp, holder);
                        g_autofree char *own_text = own > 0 ? g_strdup_printf(", %u of them its own", own) : NULL;

                        g_message("Mapping %s: %s let go of its hold; the mapping is persistent and stays (%u "
                                  "hold%s left%s)",
                                  PCPD_MAPPING_PATH(mp), holder, left, left == 1 ? "" : "s",
                                  own_text != NULL ? own_text : "");
                        return;
                }
                if (!last)
                        return; /* others still hold it */
        }
        pcpd_manager_remove_mapping(m, mp, reason);
}

bool pcpd_manager_is_stopping(const pcpd_manager *m) {
        return m->stopping;
}

int pcpd_manager_set_enabled(pcpd_manager *m, bool enabled) {
        if (m->enabled == enabled)
                return 0;
        m->enabled = enabled;
        if (!enabled) {
                g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);
                g_autofree char *what = NULL;
                unsigned upstream = 0;

                /* what is true as it starts: the mappings go now, and the deletes of those
                 * a server or router holds (or was asked for) are sent, not yet confirmed;
                 * a direct mapping, or one waiting for a server, has nothing upstream */
                for (guint i = 0; i < all->len; i++) {
                        pcpd_mapping *mp = all->pdata[i];
                        if (!pcpd_mapping_is_direct(mp) && (mp->held_by != NULL || mp->backend != NULL))
                                upstream++;
                }
                if (all->len == 0)
                        what = g_strdup("no mapping to remove");
                else if (upstream == all->len)
                        what = all->len == 1
                                       ? g_strdup("removing 1 mapping, deleting it upstream")
                                       : g_strdup_printf("removing %u mappings, deleting them upstream",
                                                         all->len);
                else if (upstream == 0)
                        what = all->len == 1 ? g_strdup("removing 1 mapping (nothing to delete upstream)")
                                             : g_strdup_printf("removing %u mappings (nothing to delete "
                                                               "upstream)",
                                                               all->len);
                else
                        what = g_strdup_printf("removing %u mappings, deleting %u of them upstream",
                                               all->len, upstream);
                for (guint i = 0; i < all->len; i++)
                        pcpd_manager_remove_mapping(m, all->pdata[i], PCPD_REMOVED_DISABLED);
                pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_ENABLED,
                               ((const char *const[]) { "PCPD_ENABLED", "false", NULL }),
                               "Port mapping disabled: %s", what);
        } else {
                pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_ENABLED,
                               ((const char *const[]) { "PCPD_ENABLED", "true", NULL }),
                               "Port mapping enabled");
                /* the declared mappings come back now, not at the next retry (10 s) */
                pcpd_manager_declared_sync_now(m);
        }
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
        return manager_new_with_backends(config, state_dir, state_fd, loaded, loop, listener, userdata, new_backend,
                                         pcpd_upnp_backend_new, ret);
}

int manager_new_with_backends(const pcpd_config *config, const char *state_dir, int state_fd, pcpd_state *loaded,
                              GMainLoop *loop, const pcpd_manager_listener *listener, void *userdata,
                              pcpd_backend_new_fn new_backend, pcpd_backend_new_fn new_fallback, pcpd_manager **ret) {
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
        pcpd_mapping_set_init(&m->mappings, mapping_id_hash);
        manager_mapping_key_index_init(&m->by_key);
        m->holder_index = pcpd_holders_index_new();
        m->orphans = g_array_new(FALSE, FALSE, sizeof(pcpd_manager_orphan));
        g_array_set_clear_func(m->orphans, orphan_clear);
        pcpd_pace_init(&m->orphans_pace, &orphans_pace_ops, m, &m->orphans_source);
        manager_grace_init(m);
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
        r = new_fallback(&manager_fallback_events, m, config->max_mappings, &m->upnp);
        if (r < 0)
                return r;
        pcpd_upnp_backend_set_delete_retry(m->upnp, config->upnp_delete_retry_seconds);
        *ret = g_steal_pointer(&m);
        return 0;
}

pcpd_manager *pcpd_manager_free(pcpd_manager *m) {
        if (m == NULL)
                return NULL;
        /* from here on the bus refuses what would change anything (the UPnP shutdown
         * below runs the loop, which still dispatches calls and polkit answers) */
        m->stopping = true;
        /* the mappings of names that left, not removed yet: now, as they would have been
         * had those names left a few turns earlier (deleted upstream, told, not saved as
         * active in the last snapshot) */
        if (m->orphans != NULL)
                (void) remove_orphans(m, G_MAXUINT);
        pcpd_pace_stop(&m->orphans_pace);
        if (m->orphans_turn_source != 0)
                g_source_remove(m->orphans_turn_source);
        m->orphans_turn_source = 0;
        /* the restored mappings' grace (pcpd-restore.c): if it is over, those still
         * unclaimed go now, likewise; else they stay saved, and wait again after a start */
        manager_grace_stop(m);
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
        manager_discover_stop(m);
        if (m->host_watch != 0)
                g_source_remove(m->host_watch);
        pcpd_host_free(m->host);
        pcpd_nm_free(m->nm);
        pcpd_manager_declared_free(m);
        if (m->listener->manager_freeing != NULL)
                m->listener->manager_freeing(m, m->listener_data);
        if (m->upnp != NULL)
                m->upnp->ops->free(m->upnp); /* before the mappings: it points at them */
        /* the key index first: the mappings' free does not look at it */
        pcpd_mapping_set_done(&m->by_key);
        if (pcpd_mapping_set_size(&m->mappings) > 0) {
                g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);

                /* empty while they are freed, as a GHashTable's destroy left it */
                pcpd_mapping_set_done(&m->mappings);
                for (guint i = 0; i < all->len; i++)
                        manager_mapping_free(all->pdata[i]);
        }
        pcpd_mapping_set_done(&m->mappings);
        if (m->holder_index != NULL)
                g_hash_table_destroy(m->holder_index);
        if (m->orphans != NULL)
                g_array_free(m->orphans, TRUE);
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

        manager_discover_start(m); /* the configured servers, the default routers */
        manager_restore(m);
        manager_update_state(m);
        pcpd_backend_kick(m->pcp);
        m->nm = pcpd_nm_new(m); /* DHCP-announced servers, when NetworkManager is there */
        return 0;
}
