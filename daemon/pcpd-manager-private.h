/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-manager-private: what the files of the manager's implementation share, and nothing
 * else includes. The manager is one object implemented in several files:
 *   - pcpd-manager.c: the registries (servers, mappings, holders), removing and
 *     releasing mappings, enabling, the manager's published state, lifecycle;
 *   - pcpd-manager-discover.c: the configured servers and the default routers (the
 *     route monitor), the two server sources the manager runs itself;
 *   - pcpd-mapping-add.c: adding a mapping: its plan, the checks, sharing, a new one;
 *   - pcpd-manager-events.c: the news of "pcp" and "direct" (pcpd-backend-events.h), and
 *     a mapping's state as a backend has it, published;
 *   - pcpd-deleting.c: removed mappings whose delete is not confirmed (kept, on disk too,
 *     until the server confirms it or the lifetime it may have left there runs out); a
 *     record's id is the cookie its backend tells the end of the delete under;
 *   - pcpd-restore.c: the saved mappings made again after a restart;
 *   - pcpd-server.c: the server registry, each server's state and silence;
 *   - pcpd-direct-manager.c: the host's addresses and the mappings of a host that is not
 *     behind a NAT;
 *   - pcpd-mapping-move.c: where a mapping is held (through the backends), and the one
 *     operation that moves it;
 *   - pcpd-manager-store.c: what is saved, and when (the store writes it);
 *   - pcpd-fallback.c: the manager's side of the UPnP-IGD fallback;
 *   - pcpd-servers.c: the server sources and moving mappings between servers.
 * None of them knows the engine's ids or its requests and events: the PCP backend
 * (pcpd-pcp.h) takes the manager's server and mapping handles and keeps those itself.
 * pcpd-manager.h stays the manager's public API.
 */

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "pcpd-backend.h"
#include "pcpd-direct.h"
#include "pcpd-host.h"
#include "pcpd-manager.h"
#include "pcpd-state.h"

/* A removed mapping whose delete is not confirmed: kept, on disk too, so that a restarted
 * pcpd deletes it again. */
struct pcpd_deleting {
        pcpd_manager *manager;
        pcpd_state_mapping *rec; /* owned; deleting, delete_until; rec->id: the cookie a
                                  * backend tells the end of its delete under */
        guint expire_source;
};
typedef struct pcpd_deleting pcpd_deleting;

/* CLOCK_REALTIME in µs */
static inline uint64_t realtime_us(void) {
        return (uint64_t) g_get_real_time();
}

/* *field = v (copied); true when that changed it */
static inline bool set_str(char **field, const char *v) {
        if (g_strcmp0(*field, v) == 0)
                return false;
        g_free(*field);
        *field = g_strdup(v);
        return true;
}

/* *field = v, interned (g_intern_string(): kept for the life of the process, so only for
 * the closed sets of names a mapping's State and Error take, never freed); true when that
 * changed it */
static inline bool set_name(const char **field, const char *v) {
        const char *s = g_intern_string(v);
        if (*field == s)
                return false;
        *field = s;
        return true;
}

/* *field = v as a shared string (g_ref_string_new_intern(): one copy per distinct text,
 * freed with its last user: a server's text, a holder's bus name); true when that changed
 * it. Let go with clear_shared(), never g_free(). */
static inline bool set_shared(char **field, const char *v) {
        char *old = *field;
        if (g_strcmp0(old, v) == 0)
                return false;
        *field = v != NULL ? g_ref_string_new_intern(v) : NULL;
        if (old != NULL)
                g_ref_string_release(old);
        return true;
}

static inline void clear_shared(char **field) {
        if (*field != NULL)
                g_ref_string_release(*field);
        *field = NULL;
}

/* ---- pcpd-manager.c ---- */

/* pcpd_manager_new_with_backend() with the fallback's constructor too (a unit test's fake
 * in place of pcpd_upnp_backend_new()) */
int manager_new_with_backends(const pcpd_config *config, const char *state_dir, int state_fd, pcpd_state *loaded,
                              GMainLoop *loop, const pcpd_manager_listener *listener, void *userdata,
                              pcpd_backend_new_fn new_backend, pcpd_backend_new_fn new_fallback, pcpd_manager **ret);

void manager_emit_mapping_added(pcpd_manager *m, pcpd_mapping *mp);
/* mp's record on disk (new, granted, persistent now); -errno when it could not be written */
int manager_persist_mapping(pcpd_manager *m, pcpd_mapping *mp);
void manager_persist_removal(pcpd_manager *m, uint64_t id);
/* the same, for a removal that guards nothing (pcpd-manager-store.c says which): written
 * with the next record, or within 200 ms; a crash may lose it */
void manager_persist_removal_later(pcpd_manager *m, uint64_t id);
pcpd_server *manager_find_server(pcpd_manager *m, const struct sockaddr_in6 *a);

/* The one constructor: mapping id with what req asks for (its family and lifetime as
 * decided), created at created (CLOCK_REALTIME µs); pending, no
 * server side yet (the caller adds it, or the direct one). A new mapping and one restored
 * from its record (pcpd-restore.c) are both made here. */
pcpd_mapping *manager_mapping_new(pcpd_manager *m, uint64_t id, const pcpd_mapping_request *req, int family,
                                  uint32_t lifetime, uint64_t created);
void manager_mapping_free(pcpd_mapping *mp);
/* m->by_key: a set of mappings, one per sharing key (family, opcode, protocol, internal
 * port; for PEER also the remote address and port), hashed from those fields */
void manager_mapping_key_index_init(pcpd_mapping_set *s);
/* the mapping in s with probe's sharing key, NULL when none */
pcpd_mapping *manager_mapping_key_index_find(const pcpd_mapping_set *s, const pcpd_mapping *probe);
/* the mapping of that key in m->by_key, NULL when none */
pcpd_mapping *manager_mapping_find(pcpd_manager *m, int family, uint8_t opcode, uint8_t protocol, uint16_t port,
                                   const struct in6_addr *remote, uint16_t remote_port);
/* mp is held by b now (m->direct, m->pcp, or NULL: waiting); m->n_direct follows
 * (pcpd_mapping_is_direct()). (pcpd-direct-manager.c) */
void manager_mapping_set_held(pcpd_manager *m, pcpd_mapping *mp, struct pcpd_backend *b);
/* A name that leaves the bus holding more than this many mappings alone has them removed
 * this many a turn of the loop (the first ones at once): each removal costs ~30 µs (its
 * signals, the delete upstream, the journal, the log), so that the loop serves others
 * between batches. */
#define PCPD_ORPHAN_BATCH 128u
/* The next batch waits while the listener's output backlog is above this many bytes
 * (listener output_backlog): dbus-daemon is still routing the signals of the batches before,
 * and a reply sent now would queue behind them (measured with 30,000 held and a holder of
 * 1,000 leaving: ~0.9-1.2 MB queued on pcpd's socket, a Ping answered up to 59 ms late;
 * bench/README.md). It looks again every PCPD_OUTPUT_BACKLOG_RETRY_MS, at most
 * PCPD_OUTPUT_BACKLOG_WAITS times in a row: a bus that does not read cannot keep a
 * departed holder's mappings upstream for long. */
#define PCPD_OUTPUT_BACKLOG_MAX (64u * 1024u)
#define PCPD_OUTPUT_BACKLOG_RETRY_MS 1u
#define PCPD_OUTPUT_BACKLOG_WAITS 100u
/* The listener's output is backed up: the next batch waits (see PCPD_OUTPUT_BACKLOG_MAX;
 * the listener's output_backlog, system calls for the bus). m: the manager (a pcpd_pace_ops.backed_up, pcpd-pace.h,
 * for the three paced batches). (pcpd-manager.c) */
bool manager_output_backed_up(void *m);
/* one of them, still to remove (m->orphans): its id, looked up again when its turn comes,
 * and the name that left (a shared string, for the log line) */
typedef struct pcpd_manager_orphan {
        uint64_t id;
        char *name;
} pcpd_manager_orphan;
/* owner (NULL: none) holds mp once more; known_alive: its leaving is sure to be seen
 * (else the listener's holder_unconfirmed makes sure) */
void manager_mapping_add_holder(pcpd_manager *m, pcpd_mapping *mp, const char *owner, bool known_alive);
/* ---- pcpd-manager-discover.c: the configured servers and the default routers ---- */

/* At start: the configured servers, the default routers, and a watch on the routes. */
void manager_discover_start(pcpd_manager *m);
/* No more route watch nor rediscovery (the manager goes). */
void manager_discover_stop(pcpd_manager *m);
/* After a server starts answering: direct mappings looked at again on the next turn of
 * the loop (with the servers), unless that is due already. */
void manager_rediscover_idle(pcpd_manager *m);

/* ---- pcpd-manager-events.c: the backends' news ---- */

/* The news of "pcp" and "direct" (the events they are built with). */
extern const pcpd_backend_events manager_backend_events;
/* Publishes mp's state as a backend has it (i): bus, log, and its record on disk first
 * when the external side changed. */
void manager_mapping_sync(pcpd_manager *m, pcpd_mapping *mp, const pcpd_backend_info *i);

/* ---- pcpd-manager-store.c: what is saved, and when ---- */

/* the store's view of the manager (pcpd_store_new()) */
extern const struct pcpd_store_ops manager_store_ops;
/* mp as a saved record, its strings borrowed from mp; false when there is nothing to save */
bool manager_mapping_to_record(const pcpd_mapping *mp, pcpd_state_mapping *rec);

/* ---- pcpd-mapping-move.c: where a mapping is held, and moving it ---- */

/* The backend that holds mp (mp->held_by, when it says it holds mp): m->direct, m->pcp,
 * or NULL (waiting for a server). */
struct pcpd_backend *manager_mapping_backend(pcpd_manager *m, const pcpd_mapping *mp);
/* A mapping backend b holds now, not yet published: its state, error and addresses as b
 * has them, without a word (drain after it). */
void manager_mapping_show(pcpd_manager *m, pcpd_mapping *mp, struct pcpd_backend *b);
/* mp held by "direct" with the host's own address own, Server "" (not published). */
int manager_mapping_start_direct(pcpd_manager *m, pcpd_mapping *mp, const struct in6_addr *own);
/* mp on server s through "pcp", with its nonce (mp->has_nonce); suggested_external: NULL
 * or the external address to ask for. 0 or -errno. */
int manager_mapping_start_on_server(pcpd_manager *m, pcpd_mapping *mp, pcpd_server *s,
                                    const struct in6_addr *suggested_external);
/* The same, with mp's record on disk first (its nonce: mp's own when keep_nonce and it has
 * one, else a fresh one); on failure mp is as it was, *ret_state: the state directory
 * failed (else the backend refused). */
int manager_mapping_start_saved(pcpd_manager *m, pcpd_mapping *mp, pcpd_server *s,
                                const struct in6_addr *suggested_external, bool keep_nonce, bool *ret_state);
/* The one move between backends and servers: mp goes to backend `to` (on server s, or for
 * "direct" with the host's own address own), same object, published; 0 or -errno (then it
 * stays direct when it was, else waits for a server). */
int manager_mapping_move(pcpd_manager *m, pcpd_mapping *mp, struct pcpd_backend *to, pcpd_server *s,
                         const struct in6_addr *own);

/* ---- pcpd-server.c: the server registry ---- */

/* (manager_add_server(), manager_remove_server(): pcpd-servers.h) */
void manager_server_free(pcpd_server *s);
/* s's state as "pcp" has it (PCPD_SERVER_UNKNOWN when it does not know s) */
pcpd_server_state manager_server_state(pcpd_manager *m, const pcpd_server *s);
/* After each state the manager sees for s: its silence is timed from when it is unknown. */
void manager_server_watch_silence(pcpd_server *s, pcpd_server_state st);
/* s has answered nothing for PCPD_SILENT_SERVER_MS */
bool manager_server_silent(const pcpd_server *s);
/* s is known not to speak PCP nor NAT-PMP (unreachable, unsupported, disabled, silent) */
bool manager_server_speaks_no_pcp(pcpd_manager *m, pcpd_server *s);
/* The servers as pcpd-direct.h's rules see them; v has room for PCPD_MAX_SERVERS. */
size_t manager_servers_view(pcpd_manager *m, pcpd_direct_server *v);

/* State, ExternalAddresses and the status line again (after any change they follow). */
void manager_update_state(pcpd_manager *m);
/* ---- pcpd-fallback.c: the UPnP-IGD fallback ---- */

/* The fallback's news (its pcpd_backend_events). */
extern const pcpd_backend_events manager_fallback_events;
/* On the next turn of the loop: mappings whose server speaks no PCP go to UPnP-IGD too. */
void manager_backend_check_soon(pcpd_manager *m);
/* The engine holds mp now (granted as i says): the fallback lets go of it. */
void manager_backend_takeover(pcpd_manager *m, pcpd_mapping *mp, const pcpd_backend_info *i);
/* mp goes: the fallback deletes its part, if it holds one. */
void manager_backend_remove(pcpd_manager *m, pcpd_mapping *mp);
/* A request the fallback would get on s, refused now when its router cannot take it:
 * -errno with error filled, else 0. */
int manager_backend_refuse(pcpd_manager *m, const pcpd_mapping_request *req, int family, pcpd_server *s,
                           pcpd_failure *error);

/* ---- pcpd-direct-manager.c: a host not behind a NAT ---- */

/* The host as a unit test makes it up (a fake host snapshot): its addresses and links,
 * and per family the source address the kernel would use toward the Internet. */
typedef struct pcpd_manager_fake_host {
        pcpd_host_snapshot snap;
        bool has_route[2]; /* [0] IPv4, [1] IPv6 */
        struct in6_addr route[2];
} pcpd_manager_fake_host;
/* From now on m reads the host's addresses from fake (the caller's, changed at will,
 * until it is set again; NULL: the kernel's again). After a change, what a route change
 * does follows: manager_rediscover_idle() (direct mappings move, change address or go). */
void manager_set_fake_host(pcpd_manager *m, const pcpd_manager_fake_host *fake);

/* Not behind a NAT for the family (on interface ifname, unless NULL or ""): a global
 * address there and no server of the family that could map; ret: the address then. */
bool manager_host_is_direct(pcpd_manager *m, int family, const char *ifname, struct in6_addr *ret);
/* After route changes and when a server starts answering (never from a backend's news:
 * this adds and removes mappings): direct mappings move, change address, or go. */
void manager_check_direct(pcpd_manager *m);
bool manager_host_has_address(pcpd_manager *m, const struct in6_addr *a, char ret_ifname[IF_NAMESIZE]);
bool manager_host_global_address(pcpd_manager *m, int family, const char *ifname, struct in6_addr *ret);
pcpd_server *manager_answering_server(pcpd_manager *m, int family, const char *ifname);

/* ---- pcpd-deleting.c ---- */

/* Keeps rec (taken over) until its delete is confirmed or until rec->delete_until; the
 * oldest one goes when there are too many. */
pcpd_deleting *manager_deleting_add(pcpd_manager *m, pcpd_state_mapping *rec);
/* Forgets d for good (confirmed, expired, or evicted): on disk too. */
void manager_deleting_forget(pcpd_manager *m, pcpd_deleting *d);
/* The destroy function of m->deleting. */
void manager_deleting_free(pcpd_deleting *d);
/* The PCP backend is done with d's delete (the backend's deleting_done under d->rec->id). */
void manager_deleting_engine_done(pcpd_manager *m, pcpd_deleting *d, bool deleted_upstream);
/* Keeps a copy of rec under a fresh id (returned), on disk, as a deleting record of the
 * fallback's (the cookie of its delete). */
uint64_t manager_keep_deleting(pcpd_manager *m, const pcpd_state_mapping *rec);
/* The fallback is done with the delete under id: confirmed, its record is forgotten; else
 * it stays (a restart tries again) until it expires. */
void manager_deleting_fallback_done(pcpd_manager *m, uint64_t id, bool confirmed);

/* ---- pcpd-restore.c ---- */

/* The saved mappings (m->loaded, taken) made again: deletes first, then the mappings. */
void manager_restore(pcpd_manager *m);
/* mp, a restored app mapping still waiting for its app (mp->unclaimed), is claimed or goes:
 * it waits no more (O(1)); when none wait any more, the grace timer goes too */
void manager_unclaimed_done(pcpd_manager *m, pcpd_mapping *mp);
/* At shutdown: the grace timer goes (the mappings still waiting stay saved, to wait again
 * after the next start); if the grace is over already, those still unclaimed are removed
 * first, as they would have been a few turns later. The restore's mapping_added still
 * paced to the listener's backlog (pcpd-restore.c) are not told. */
void manager_grace_stop(pcpd_manager *m);
/* At the manager's making: the grace's pace, not armed (pcpd-restore.c) */
void manager_grace_init(pcpd_manager *m);
