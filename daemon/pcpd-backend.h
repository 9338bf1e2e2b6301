/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-backend: the one interface between the manager and a way of holding a mapping
 * (issue 9). Three implement it:
 *   - "pcp": PCP, then NAT-PMP, through the engine (pcpd-pcp-backend.c over pcpd-pcp.h):
 *     mappings on the manager's servers;
 *   - "direct": the host is not behind a NAT (pcpd-direct-backend.c, with pcpd-direct.h's
 *     pure rules): active at once with the host's own address, nothing sent;
 *   - "upnp-igd": the fallback (pcpd-upnp-backend.c), layered over "pcp" as below.
 * Calls go down through pcpd_backend_ops (an operation a backend has no use for is NULL;
 * the pcpd_backend_*() helpers below treat NULL as "nothing"); news goes up, in the bus's
 * terms (pcpd_backend_info), through the pcpd_backend_events given at construction. A
 * backend knows nothing of the manager beyond its handles (pcpd-mapping.h,
 * pcpd-server.h); it keeps its own part of a mapping behind a pointer of its own there.
 * The manager moves a mapping from one backend or server to another in one operation
 * (manager_mapping_move(), pcpd-manager-private.h); tests/unit/fake-backend.c is a fourth
 * implementation, for the manager's unit test.
 *
 * The UPnP-IGD fallback: selection is PCP first, then NAT-PMP (both "pcp"), then
 * UPnP-IGD: a mapping always has its engine mapping on its server while the server is
 * there. When that server is known not to speak PCP nor NAT-PMP (unreachable, unsupported
 * version, disabled, or silent), the manager hands the mapping to the UPnP-IGD backend as
 * well (add); that backend then tells the mapping's state (its events' mapping_changed)
 * once it has found a router of its kind (until then the engine's state, failed with its
 * reason, stays). "pcp" news for a mapping the fallback shows is ignored until the engine
 * holds it (the router answers PCP after all): then the fallback lets go of it (handover)
 * and the engine's state is published again.
 *
 * The fallback keeps its own part of the mapping's saved record (fill_record, and
 * mapping_record_changed up when it changes; restore after a restart) and deletes what
 * pcpd no longer holds. A removal that the router must confirm (a permanent UPnP
 * mapping, which never expires) is kept by the manager as a "deleting" record of the
 * backend's own (deleting_record), on disk, under a cookie the backend tells the end of
 * that delete under (deleting_done), so that a restarted pcpd deletes it again
 * (restore_deleting). Like every backend, it knows nothing of the manager: calls come
 * down, its news goes up through the events it was given.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "pcpd-backend-events.h"
#include "pcpd-backend-info.h"
#include "pcpd-mapping.h"
#include "pcpd-server.h"
#include "pcpd-state.h"

typedef struct pcpd_backend pcpd_backend;

/* A router the backend talks to, for Manager.Servers. */
typedef struct pcpd_backend_server {
        char ifname[16];
        char address[64];
        const char *source;   /* "ssdp" */
        const char *protocol; /* "upnp-igd" */
        bool has_external;
        struct in6_addr external_addr;
} pcpd_backend_server;

typedef struct pcpd_backend_ops {
        const char *protocol; /* "pcp", "direct", "upnp-igd" (as in Servers, where it is one) */

        /* ---- lifecycle ---- */
        /* starts its clock and listeners (announce_port: 0 = one the kernel picks) */
        void (*start)(pcpd_backend *b, uint16_t announce_port);
        /* pcpd stops: no more listeners, last log lines; calls in still work until free */
        void (*stop)(pcpd_backend *b);
        /* pcpd stops: delete what would not expire by itself, wait a little for it */
        void (*shutdown)(pcpd_backend *b);
        void (*free)(pcpd_backend *b);
        /* sends what it has to send and tells its news (after a call that adds) */
        void (*drain)(pcpd_backend *b);
        /* after any call that may move its next deadline: re-arm its clock */
        void (*kick)(pcpd_backend *b);
        /* random bytes (nonces) */
        void (*random)(pcpd_backend *b, void *buf, size_t len);

        /* ---- servers (a backend that uses the manager's servers) ---- */
        /* s is the manager's now: 0 or -errno (nothing left behind); nothing is told before
         * it returns */
        int (*server_add)(pcpd_backend *b, pcpd_server *s);
        /* s goes: the mappings still on it are told as lost (unless detached before) */
        void (*server_remove)(pcpd_backend *b, pcpd_server *s);
        /* whether the backend knows s, and its state then */
        bool (*server_status)(pcpd_backend *b, const pcpd_server *s, pcpd_server_state *ret);
        /* the external address s last told: false when none */
        bool (*server_external)(pcpd_backend *b, const pcpd_server *s, struct in6_addr *ret);
        /* the host's address(es) toward s: where a mapping made there may point */
        size_t (*server_local_addresses)(pcpd_backend *b, const pcpd_server *s, struct in6_addr *ret, size_t max);
        /* what the backend knows of s for Manager.Servers and Prefix64: false when it does
         * not know s */
        bool (*server_view)(pcpd_backend *b, const pcpd_server *s, pcpd_server_view *ret);

        /* ---- mappings: add / remove / info ---- */
        /* mp on server s (NULL for a backend without servers), as its caller asked for it;
         * external: the external address to ask for (NULL: mp's own wish), or for "direct"
         * the host's own address it gets. 0 or -errno (nothing queued); nothing is told
         * before it returns */
        int (*add)(pcpd_backend *b, pcpd_mapping *mp, pcpd_server *s, const struct in6_addr *external);
        /* mp goes (removed, moved away, taken over): deleted upstream while it had a grant.
         * cookie ≠ 0: events->deleting_done(cookie) tells the end of that delete */
        void (*remove)(pcpd_backend *b, pcpd_mapping *mp, uint64_t cookie);
        /* mp lets go without a word upstream: its server is about to go, which drops it */
        void (*detach)(pcpd_backend *b, pcpd_mapping *mp);
        /* whether the backend holds a part of mp */
        bool (*holds)(pcpd_backend *b, const pcpd_mapping *mp);
        /* mp's state as the backend has it; false when it does not hold mp or has nothing
         * to show (being deleted, or no router of its kind found yet) */
        bool (*info)(pcpd_backend *b, const pcpd_mapping *mp, pcpd_backend_info *ret);
        /* when a delete of mp would have to be confirmed: true, and until when
         * (CLOCK_REALTIME µs) it may still exist upstream */
        bool (*delete_until)(pcpd_backend *b, const pcpd_mapping *mp, uint64_t *ret);
        /* after a restart: the delete of a removed mapping (rec, a deleting record) on s
         * goes out again, told under cookie. 0 or -errno */
        int (*delete_saved)(pcpd_backend *b, const pcpd_state_mapping *rec, pcpd_server *s, uint64_t cookie);
        /* the delete under cookie is given up: forgotten without a datagram */
        void (*delete_forget)(pcpd_backend *b, uint64_t cookie);

        /* ---- the fallback's own (UPnP-IGD) ---- */
        /* Would the backend take mp on server s (NULL reason) or not (a sentence)? */
        const char *(*refuse_reason)(pcpd_backend *b, const pcpd_mapping *mp, const pcpd_server *s);
        /* the engine holds mp now, on external_port of the same router: the backend lets go
         * of it (deletes its own as remove() does, under cookie, unless it is that very
         * entry of the router's table: then a cookie ≠ 0 is told done at once) */
        void (*handover)(pcpd_backend *b, pcpd_mapping *mp, uint16_t external_port, uint64_t cookie);
        /* a delete of mp (remove, handover) would have to be confirmed, it would not expire
         * by itself: true, and the record the manager keeps for it until then (ret: its
         * strings borrowed from mp and the backend; the manager gives it its id, the cookie
         * of that delete) */
        bool (*deleting_record)(pcpd_backend *b, const pcpd_mapping *mp, pcpd_state_mapping *ret);
        /* adds the backend's part to mp's saved record (strings borrowed from the backend) */
        void (*fill_record)(pcpd_backend *b, const pcpd_mapping *mp, pcpd_state_mapping *rec);
        /* after a restart: takes mp on again as rec says; false when it cannot */
        bool (*restore)(pcpd_backend *b, pcpd_mapping *mp, const pcpd_state_mapping *rec);
        /* after a restart: deletes what rec (a deleting record of the backend's, kept by
         * the manager) says; the end of that delete is told under rec->id (deleting_done) */
        void (*restore_deleting)(pcpd_backend *b, const pcpd_state_mapping *rec);
        /* s (of its family, on its interface) speaks neither PCP nor NAT-PMP: look for a
         * router of the backend's kind behind it, before any mapping needs one */
        void (*watch)(pcpd_backend *b, pcpd_server *s);
        /* its routers, for Manager.Servers */
        size_t (*servers)(pcpd_backend *b, pcpd_backend_server *ret, size_t max);
} pcpd_backend_ops;

struct pcpd_backend {
        const pcpd_backend_ops *ops;
        const pcpd_backend_events *events; /* news up */
        void *userdata;                    /* for events */
};

/* A backend's constructor, as the manager takes it (pcpd_manager_new_with_backend()):
 * for up to max_mappings mappings (0: its default); events and userdata outlive it. */
typedef int (*pcpd_backend_new_fn)(const pcpd_backend_events *events, void *userdata, size_t max_mappings,
                                   pcpd_backend **ret);

/* The PCP/NAT-PMP backend (pcpd-pcp-backend.c over pcpd-pcp.h). */
int pcpd_pcp_backend_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings, pcpd_backend **ret);
/* The host's own addresses (pcpd-direct-backend.c): add() takes the address it gets. */
int pcpd_direct_backend_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings,
                            pcpd_backend **ret);

/* ---- calls down, NULL operations being "nothing" ---- */

static inline void pcpd_backend_drain(pcpd_backend *b) {
        if (b != NULL && b->ops->drain != NULL)
                b->ops->drain(b);
}
static inline void pcpd_backend_kick(pcpd_backend *b) {
        if (b != NULL && b->ops->kick != NULL)
                b->ops->kick(b);
}
static inline bool pcpd_backend_holds(pcpd_backend *b, const pcpd_mapping *mp) {
        return b != NULL && b->ops->holds != NULL && b->ops->holds(b, mp);
}
static inline bool pcpd_backend_info_of(pcpd_backend *b, const pcpd_mapping *mp, pcpd_backend_info *ret) {
        return b != NULL && b->ops->info != NULL && b->ops->info(b, mp, ret);
}
static inline void pcpd_backend_remove(pcpd_backend *b, pcpd_mapping *mp, uint64_t cookie) {
        if (b != NULL && b->ops->remove != NULL)
                b->ops->remove(b, mp, cookie);
}
static inline void pcpd_backend_detach(pcpd_backend *b, pcpd_mapping *mp) {
        if (b != NULL && b->ops->detach != NULL)
                b->ops->detach(b, mp);
}
static inline bool pcpd_backend_delete_until(pcpd_backend *b, const pcpd_mapping *mp, uint64_t *ret) {
        return b != NULL && b->ops->delete_until != NULL && b->ops->delete_until(b, mp, ret);
}
static inline void pcpd_backend_delete_forget(pcpd_backend *b, uint64_t cookie) {
        if (b != NULL && b->ops->delete_forget != NULL)
                b->ops->delete_forget(b, cookie);
}
/* whether b knows s, and its state (PCPD_SERVER_UNKNOWN when it does not) */
static inline bool pcpd_backend_server_status(pcpd_backend *b, const pcpd_server *s, pcpd_server_state *ret) {
        *ret = PCPD_SERVER_UNKNOWN;
        return b != NULL && b->ops->server_status != NULL && b->ops->server_status(b, s, ret);
}
static inline bool pcpd_backend_server_external(pcpd_backend *b, const pcpd_server *s, struct in6_addr *ret) {
        return b != NULL && b->ops->server_external != NULL && b->ops->server_external(b, s, ret);
}

/* The UPnP-IGD backend (pcpd-upnp-backend.c): the fallback (max_mappings: unused). */
int pcpd_upnp_backend_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings,
                          pcpd_backend **ret);
/* UpnpDeleteRetrySeconds= (pcpd.conf): the first wait before an unconfirmed delete is tried
 * again, for the waits scheduled from now on. b: what pcpd_upnp_backend_new() made (any
 * other backend is left alone). */
void pcpd_upnp_backend_set_delete_retry(pcpd_backend *b, uint32_t first_s);
