/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pcp1-contract.h"
#include "pcpd-conf.h"
#include "pcpd-error.h"
#include "pcpd-mapping.h"
#include "pcpd-mapping-set.h"
#include "pcpd-pace.h"
#include "pcpd-server.h"
#include "pcpd-state.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

#define PCPD_MAX_SERVERS 16

typedef struct pcpd_manager pcpd_manager;
struct pcpd_backend;
struct pcpd_backend_events;

/* The probe and its first two retransmissions unanswered (RFC 6887: 3 s, then doubling:
 * sent at 0, 3 and 9 s) when the third goes out. */
#define PCPD_SILENT_SERVER_MS 21000

struct pcpd_manager {
        pcpd_config config;
        char *state_dir; /* for messages; everything goes through state_fd */
        int state_fd;
        pcpd_state *loaded; /* what was saved, until restored */
        GMainLoop *loop;
        /* the backends (pcpd-backend.h): "pcp" holds mappings on the servers (PCP/NAT-PMP:
         * the engine, its sockets, ANNOUNCE listeners, clock, randomness and drop log),
         * "direct" those of a host not behind a NAT; upnp (below) is the fallback */
        struct pcpd_backend *pcp;
        struct pcpd_backend *direct;
        bool enabled;
        /* pcpd_manager_free() has begun: the backends' shutdown may still run the loop
         * for a few seconds, but nothing may change the mappings or the configuration */
        bool stopping;

        GPtrArray *servers;        /* pcpd_server* */
        /* the mappings (owned), by id: pcpd_manager_mapping(), pcpd_manager_n_mappings() */
        pcpd_mapping_set mappings;
        /* the same, by sharing key (manager_mapping_find(), pcpd-manager-private.h) */
        pcpd_mapping_set by_key;
        unsigned n_direct;         /* mappings held by direct (pcpd_mapping_is_direct()) */
        uint64_t next_mapping_id;

        int route_fd;
        guint route_watch, rediscover_source;
        struct pcpd_host *host; /* pcpd-host.h: the host's addresses, NULL until first asked */
        /* a test's host instead (manager_set_fake_host(), pcpd-manager-private.h); NULL: the
         * kernel's */
        const struct pcpd_manager_fake_host *fake_host;
        guint host_watch;
        struct pcpd_server_sources *sources; /* pcpd-servers.c: each source's servers */
        struct pcpd_nm *nm;                  /* pcpd-nm.c: NULL without it */

        /* unique bus name -> the mappings it holds (pcpd-holders.h; g_hash_table_size() is
         * the number of names): what pcpd_manager_holder_vanished() drops. The manager holds no bus: names that leave
         * are watched above it (pcpd-bus-track.h) */
        GHashTable *holder_index;
        /* the mappings names that left held alone, still to remove, in the order the names
         * left: pcpd_manager_orphan (pcpd-manager-private.h) from orphans_head on,
         * PCPD_ORPHAN_BATCH a turn of the loop (orphans_pace, pcpd-pace.h; its source's id
         * in orphans_source) */
        GArray *orphans;
        guint orphans_head;
        guint orphans_source;
        pcpd_pace orphans_pace;
        /* a name that left in this turn of the loop has had its mappings removed at once:
         * those of the names that leave after it in the same turn are queued; false again
         * when the loop turns (orphans_turn_source, an idle source while it is true: GLib
         * has no count of the loop's turns, and the bus's dispatch is not the manager's) */
        bool orphans_turn_used;
        guint orphans_turn_source;
        /* the app mappings restored after a restart that wait for their apps
         * (pcpd-restore.c): their ids (uint64_t), in the order they were restored, NULL when
         * none wait; n_unclaimed of them still unclaimed (a claim, or a removal for any
         * reason, takes one off in O(1): pcpd_mapping.unclaimed). One timer for the grace of
         * them all (grace_source); once it is over (grace_over), those still unclaimed go
         * PCPD_ORPHAN_BATCH a turn of the loop, from unclaimed_head on (grace_pace,
         * pcpd-pace.h: grace_source is then its source) */
        GArray *unclaimed;
        guint unclaimed_head, n_unclaimed;
        guint grace_source;
        pcpd_pace grace_pace;
        /* the restored mappings whose InterfacesAdded (mapping_added) waits for the bus to
         * read what came before (pcpd-restore.c); NULL when none wait */
        struct pcpd_restore_pace *restore_pace;
        bool grace_over;
        const struct pcpd_manager_listener *listener; /* its news goes there (never NULL) */
        void *listener_data;

        struct pcpd_store *store; /* pcpd-store.h: journal and snapshots of state_fd */
        char *state_error;        /* Manager.StateError (the store's): NULL while state is being saved */
        /* removed mappings whose delete the server has not confirmed (pcpd_deleting *) */
        GHashTable *deleting;           /* id (uint64_t *) -> owned; the id is the cookie its
                                         * delete is told under (pcpd-pcp.h) */
        gint64 deleting_evict_logged;   /* monotonic µs of the last "too many" warning */
        char *last_state;  /* Manager.State as last published */
        char *last_direct; /* the host's own addresses in ExternalAddresses, as last published */
        char *status_text; /* the status line, as last told (listener status_changed) */
        GPtrArray *declared;   /* pcpd_declared* in force (pcpd-declared-manager.c) */
        guint declared_retry;  /* the check every 10 s while any is declared */
        struct pcpd_backend *upnp;  /* the UPnP-IGD backend (pcpd-backend.h) */
        guint backend_check_source; /* mappings to hand to it, on the next turn of the loop */
        /* mapping_added, mapping_changed and mapping_removed told so far (each a message or
         * more built and freed for the bus): what pcpd-trim counts as churn
         * (pcpd_manager_mapping_news()), the grants of a restore's mappings asked for again
         * among them, which change no id and no count of mappings */
        uint64_t n_mapping_news;
};

/* mp is held by the manager's "direct" backend (mp->held_by, set by
 * manager_mapping_set_held()): not behind a NAT, no server (Server ""), active with the
 * host's own address; what its saved record's Direct= says. The one place that rule lives. */
static inline bool pcpd_mapping_is_direct(const pcpd_mapping *mp) {
        return mp->held_by != NULL && mp->held_by == mp->manager->direct;
}

typedef enum pcpd_remove_reason {
        PCPD_REMOVED_RELEASED,
        PCPD_REMOVED_OWNER_VANISHED,
        PCPD_REMOVED_REVOKED,
        PCPD_REMOVED_DISABLED,
        PCPD_REMOVED_EXPIRED,
        PCPD_REMOVED_NETWORK_LOST,
        PCPD_REMOVED_SERVER_REFUSED,
} pcpd_remove_reason;

/* ---- the manager's news, up (pcpd-bus.c turns it into signals and STATUS=) ---- */

/* What of a mapping changed: one bit per thing a listener can read again from it. */
typedef enum pcpd_mapping_changed {
        PCPD_MAPPING_CHANGED_SERVER = 1u << 0,
        PCPD_MAPPING_CHANGED_STATE = 1u << 1,
        PCPD_MAPPING_CHANGED_ERROR = 1u << 2,
        PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS = 1u << 3,
        PCPD_MAPPING_CHANGED_EXTERNAL_PORT = 1u << 4,
        PCPD_MAPPING_CHANGED_SUGGESTED_PORT = 1u << 5,
        PCPD_MAPPING_CHANGED_LIFETIME = 1u << 6,
        PCPD_MAPPING_CHANGED_EXPIRES_AT = 1u << 7,
        PCPD_MAPPING_CHANGED_INTERNAL_ADDRESS = 1u << 8,
        PCPD_MAPPING_CHANGED_PERSISTENT = 1u << 9,
        PCPD_MAPPING_CHANGED_DECLARED = 1u << 10,
        PCPD_MAPPING_CHANGED_OWNER = 1u << 11,
        PCPD_MAPPING_CHANGED_PID = 1u << 12,
        _PCPD_MAPPING_CHANGED_ALL = (1u << 13) - 1,
} pcpd_mapping_changed;

/* What of the manager changed. */
typedef enum pcpd_manager_changed {
        PCPD_MANAGER_CHANGED_SERVERS = 1u << 0,
        PCPD_MANAGER_CHANGED_EXTERNAL_ADDRESSES = 1u << 1,
        PCPD_MANAGER_CHANGED_PREFIX64 = 1u << 2,
        PCPD_MANAGER_CHANGED_STATE = 1u << 3,
        PCPD_MANAGER_CHANGED_STATE_ERROR = 1u << 4,
        PCPD_MANAGER_CHANGED_MAPPING_COUNT = 1u << 5,
        PCPD_MANAGER_CHANGED_ENABLED = 1u << 6,
        PCPD_MANAGER_CHANGED_DECLARED_MAPPINGS = 1u << 7,
        PCPD_MANAGER_CHANGED_DHCP_OPTIONS = 1u << 8,
        PCPD_MANAGER_CHANGED_NETWORK_MANAGER = 1u << 9,
        PCPD_MANAGER_CHANGED_DEFAULT_LIFETIME = 1u << 10,
        PCPD_MANAGER_CHANGED_MAX_MAPPINGS_PER_USER = 1u << 11,
        _PCPD_MANAGER_CHANGED_ALL = (1u << 12) - 1,
} pcpd_manager_changed;

/* Given at construction; called from inside the manager's own calls, after the change is
 * made, also before pcpd_manager_start(). A callback may be NULL. A listener reads the manager and the mapping and must not
 * change them from inside a callback. `removed` comes while mp is still readable, before
 * it is freed. */
typedef struct pcpd_manager_listener {
        void (*mapping_added)(pcpd_manager *m, pcpd_mapping *mp, void *userdata);
        void (*mapping_changed)(pcpd_manager *m, pcpd_mapping *mp, pcpd_mapping_changed what, void *userdata);
        void (*mapping_removed)(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason, void *userdata);
        void (*manager_changed)(pcpd_manager *m, pcpd_manager_changed what, void *userdata);
        /* pcpd_manager_free() has shut its backends down and is about to drop its mappings:
         * the last moment to let go of what refers to them (a watch for holders that leave) */
        void (*manager_freeing)(pcpd_manager *m, void *userdata);
        /* holder (a unique bus name) now holds a mapping, and the caller of
         * pcpd_manager_add_mapping() did not vouch that it is still on the bus
         * (owner_known_alive): it may have left before the hold was recorded, unseen. The
         * listener makes sure and calls pcpd_manager_holder_vanished() if it is gone
         * (pcpd-bus-track.h asks the bus), later, never from inside this callback. */
        void (*holder_unconfirmed)(pcpd_manager *m, const char *holder, void *userdata);
        /* The one-line status changed ("<State>, <n> server(s), <n> mapping(s)"), for the
         * service manager (STATUS=); status is the manager's, valid until the next change. */
        void (*status_changed)(pcpd_manager *m, const char *status, void *userdata);
        /* (may be NULL) The bytes of news and replies the listener has sent that are still on
         * their way out (its bus connection's queue; SIZE_MAX: more than it can tell). Work
         * that makes news in bulk (the mappings a departing name held, PCPD_ORPHAN_BATCH a
         * turn) waits while it is above PCPD_OUTPUT_BACKLOG_MAX, so that a reply to another
         * caller is not queued behind it; never for more than PCPD_OUTPUT_BACKLOG_WAITS turns
         * in a row; and a name that leaves after others' mappings went at once in the same
         * turn has its own go at once only while it is not above it. Asked between batches
         * and when a name leaves (a NameOwnerChanged), never on a call's path. */
        size_t (*output_backlog)(pcpd_manager *m, void *userdata);
} pcpd_manager_listener;

typedef struct pcpd_mapping_request {
        uint8_t opcode, protocol;
        int family; /* 0 = choose */
        uint16_t internal_port, suggested_port;
        uint32_t lifetime;
        const char *description;
        const char *interface;
        bool has_external_address;
        struct in6_addr external_address;
        bool prefer_failure;
        uint8_t n_filters;
        pcp_filter filters[PCP_MAX_FILTERS];
        bool has_third_party;
        struct in6_addr third_party;
        bool persistent;
        struct in6_addr remote_address;
        uint16_t remote_port;
        /* identity */
        uid_t uid;
        pid_t pid;
        const char *app_id;
        const char *app_id_source;
        const char *owner; /* unique bus name, NULL for persistent */
        /* the caller knows owner was on the bus after the watch for names that leave
         * (pcpd-bus-track.h) was in place, and has not yet seen it leave (pcpd-bus.c: its
         * caller cache still holds it): its leaving will reach the manager later, so the
         * bus need not be asked whether it is still there (no holder_unconfirmed) */
        bool owner_known_alive;
        const char *declared; /* the declaration it is for, NULL when none */
} pcpd_mapping_request;

/* state_fd: the state directory (pcpd_state_dir_open()), loaded: what it holds
 * (pcpd_state_load()); the manager takes both over, also on failure. listener (NULL:
 * none) hears of every change, with userdata; it must outlive the manager. */
int pcpd_manager_new(const pcpd_config *config, const char *state_dir, int state_fd, pcpd_state *loaded,
                     GMainLoop *loop, const pcpd_manager_listener *listener, void *userdata,
                     pcpd_manager **ret);
/* The same with another backend in place of "pcp" (tests/unit/fake-backend.c). */
int pcpd_manager_new_with_backend(const pcpd_config *config, const char *state_dir, int state_fd, pcpd_state *loaded,
                                  GMainLoop *loop, const pcpd_manager_listener *listener, void *userdata,
                                  int (*new_backend)(const struct pcpd_backend_events *events, void *userdata,
                                                     size_t max_mappings, struct pcpd_backend **ret),
                                  pcpd_manager **ret);
pcpd_manager *pcpd_manager_free(pcpd_manager *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_manager, pcpd_manager_free)

/* Discovers servers, restores saved mappings, listens for ANNOUNCE. Returns 0 or a
 * negative errno. The holders that leave the bus are watched above the manager
 * (pcpd-bus-track.h: in place before the first call is taken). */
int pcpd_manager_start(pcpd_manager *m);

uint64_t pcpd_now_ms(void);

/* Where a new mapping for req would forward to: the host's address(es) toward the server
 * it would be made on, or its own address when it is not behind a NAT (none for
 * third-party, none when no server would take it). Sets *ret_family to the family req asks
 * for or the one pcpd_manager_add_mapping() would choose. Returns the number written. */
size_t pcpd_manager_internal_addresses(pcpd_manager *m, const pcpd_mapping_request *req, int *ret_family,
                                       struct in6_addr *ret, size_t max);

/* Creates (or joins) a mapping. On failure returns a negative errno and fills error
 * (NULL: not told) with why, a pcpd_error and a sentence. */
int pcpd_manager_add_mapping(pcpd_manager *m, const pcpd_mapping_request *req, pcpd_mapping **ret,
                             pcpd_failure *error);
/* Drops one hold of `holder` on mp: the mapping goes when nobody holds it any more, unless
 * it is persistent (asked so, also after its holders took it, or declared): a persistent
 * mapping outlives its holders. When holder is NULL or holds nothing of mp (the caller is
 * not letting go of a hold: RemoveMapping, a persistent mapping's Release, a revocation),
 * the mapping goes, persistent or not. */
void pcpd_manager_release(pcpd_manager *m, pcpd_mapping *mp, const char *holder, pcpd_remove_reason reason);
/* Whether pcpd_manager_release(m, mp, holder) is refused: a declared mapping is removed
 * only with its declaration, so a release by a caller that holds nothing of it is refused
 * (PCPD_ERROR_CONFLICT, saying how to undeclare it). 0 when it may go on.
 * (pcpd-declared-manager.c) */
int pcpd_manager_release_refused(pcpd_manager *m, const pcpd_mapping *mp, const char *holder, pcpd_failure *error);
void pcpd_manager_remove_mapping(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason);
/* Unique bus name `name` left the bus: every mapping it held loses it as holder, and one
 * nobody else holds that is not persistent goes (owner-vanished): up to PCPD_ORPHAN_BATCH
 * at once if it is the first name of this turn of the loop with any to remove and none
 * are queued; the others (and all of the names that leave after it in the same turn)
 * queued in the order the names left and removed PCPD_ORPHAN_BATCH a turn of the loop
 * from the next turn on, each batch while the listener's output_backlog is not above
 * PCPD_OUTPUT_BACKLOG_MAX, each mapping only if then still nobody holds it (re-held by an
 * AddMapping in between: kept). A name holding nothing: nothing happens. */
void pcpd_manager_holder_vanished(pcpd_manager *m, const char *name);
int pcpd_manager_set_enabled(pcpd_manager *m, bool enabled);
/* pcpd_manager_free() has begun (it may run the loop while the backends shut down): the
 * bus refuses calls that would add mappings or change the configuration
 * (org.freedesktop.PCP1.Error.Stopping); Release, RemoveMapping and RevokeApp still work. */
bool pcpd_manager_is_stopping(const pcpd_manager *m);
unsigned pcpd_manager_count_for_uid(pcpd_manager *m, uid_t uid);
pcpd_mapping *pcpd_manager_find_path(pcpd_manager *m, const char *path);
/* the mapping with that id, NULL when none */
pcpd_mapping *pcpd_manager_mapping(const pcpd_manager *m, uint64_t id);
static inline unsigned pcpd_manager_n_mappings(const pcpd_manager *m) {
        return (unsigned) pcpd_mapping_set_size(&m->mappings);
}
/* The churn pcpd-trim watches in pcpd (main.c; a pcpd_trim_churn_func, manager: the
 * pcpd_manager): every mapping_added, mapping_changed and mapping_removed told so far
 * (n_mapping_news), each a message or more built and freed for the bus. Changes count, not
 * only mappings that come and go: after a restart over many mappings, the grants of the
 * mappings asked for again move no id and no count of mappings, and their wave, after the
 * restore's own trim, leaves the heap's holes (bench/README.md). The paced InterfacesAdded
 * of a restore count too, so the trim comes once they are all out; and renewals (their
 * ExpiresAt), so a trim may follow min_churn of them once they are quiet. */
static inline uint64_t pcpd_manager_mapping_news(void *manager) {
        return ((const pcpd_manager *) manager)->n_mapping_news;
}
/* A snapshot of every mapping (safe to remove them while walking it). */
GPtrArray *pcpd_manager_list_mappings(pcpd_manager *m);
const char *pcpd_manager_state(pcpd_manager *m);
/* Manager.GetExternalAddress: the host's own address when it is not behind a NAT for the
 * family (ret_server ""), else the external address the first server of the family reported. */
bool pcpd_manager_external_address(pcpd_manager *m, int family, char **ret_address, char **ret_server);
/* Manager.ExternalAddresses: what the servers reported, then the host's own address for each
 * family it is not behind a NAT for; no duplicates. Strings, owned by the array. */
GPtrArray *pcpd_manager_external_addresses(pcpd_manager *m);
/* What the PCP backend knows of server s for Manager.Servers and Prefix64 (state, epoch,
 * PREFIX64): false when it does not know s (ret is then zeroed: state unknown). */
bool pcpd_manager_server_view(pcpd_manager *m, const pcpd_server *s, pcpd_server_view *ret);

/* The configured servers become these (a reload): the ones that stay keep their mappings. */
void pcpd_manager_set_config_servers(pcpd_manager *m, const pcpd_config_server *servers, size_t n);

/* Tell the listener (for the manager's other files: pcpd-nm.c, pcpd-reload.c, ...) */
void pcpd_manager_emit_mapping_changed(pcpd_manager *m, pcpd_mapping *mp, pcpd_mapping_changed what);
void pcpd_manager_emit_changed(pcpd_manager *m, pcpd_manager_changed what);

const char *pcpd_remove_reason_to_string(pcpd_remove_reason r);
