/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-backend: the seam between the manager and a way of holding a mapping other than the
 * PCP engine (issue 9 asks for every way behind one interface; this is the part the
 * UPnP-IGD backend needs, issue 14). The PCP/NAT-PMP backend (pcpd-pcp.h) speaks to the
 * manager in the same terms (the manager's handles down, pcpd_backend_info and
 * backend-neutral news up) through an interface of its own, not yet this vtable; "direct"
 * is the manager's own rules (pcpd-direct.h).
 *
 * Selection is PCP first, then NAT-PMP (both the engine's), then the backend: a mapping
 * always has its engine mapping on its server while the server is there. When that server
 * is known not to speak PCP nor NAT-PMP (unreachable, unsupported version, disabled, or
 * silent), the manager hands the mapping to the backend as well (add); the backend then
 * publishes the mapping's state through pcpd_manager_backend_sync() once it has found a
 * router of its kind (until then the engine's state, failed with its reason, stays).
 * Engine events for a mapping the backend shows are ignored until the engine holds it (the
 * router answers PCP after all): then the backend lets go of it (remove) and the engine's
 * state is published again.
 *
 * A backend keeps its own part of the mapping's saved record (fill_record; restore after a
 * restart), deletes what pcpd no longer holds, and keeps a removal that the router has not
 * confirmed as a "deleting" record of its own (pcpd_manager_backend_keep_deleting()), so
 * that a restarted pcpd deletes it again.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "pcpd-backend-info.h"
#include "pcpd-manager.h"

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
        const char *protocol; /* as in Servers */
        /* Would the backend take mp on server s (NULL reason) or not (a sentence)? */
        const char *(*refuse_reason)(pcpd_backend *b, const pcpd_mapping *mp, const pcpd_server *s);
        /* Takes mp on as well (its server speaks neither PCP nor NAT-PMP); 0 or -errno. */
        int (*add)(pcpd_backend *b, pcpd_mapping *mp, pcpd_server *s);
        /* mp goes (removed, or taken over by the engine): delete it upstream, keeping a
         * deleting record while that is not confirmed and must be. mp->backend is NULL after. */
        void (*remove)(pcpd_backend *b, pcpd_mapping *mp);
        /* the engine holds mp now, on external_port of the same router: the backend lets go
         * of it (deletes its own, unless it is that very entry of the router's table) */
        void (*handover)(pcpd_backend *b, pcpd_mapping *mp, uint16_t external_port);
        /* mp's state as the backend has it; false when it does not hold mp or has nothing
         * to show yet (no router of its kind found): the engine's state is published then */
        bool (*info)(pcpd_backend *b, const pcpd_mapping *mp, pcpd_backend_info *ret);
        /* adds the backend's part to mp's saved record (strings borrowed from the backend) */
        void (*fill_record)(pcpd_backend *b, const pcpd_mapping *mp, pcpd_state_mapping *rec);
        /* after a restart: takes mp on again as rec says; false when it cannot */
        bool (*restore)(pcpd_backend *b, pcpd_mapping *mp, const pcpd_state_mapping *rec);
        /* after a restart: deletes what rec (a deleting record of the backend, kept by the
         * manager until pcpd_manager_backend_deleted()) says */
        void (*restore_deleting)(pcpd_backend *b, const pcpd_state_mapping *rec);
        /* s (of its family, on its interface) speaks neither PCP nor NAT-PMP: look for a
         * router of the backend's kind behind it, before any mapping needs one */
        void (*watch)(pcpd_backend *b, pcpd_server *s);
        size_t (*servers)(pcpd_backend *b, pcpd_backend_server *ret, size_t max);
        /* pcpd stops: delete what would not expire by itself, wait a little for it */
        void (*shutdown)(pcpd_backend *b);
        void (*free)(pcpd_backend *b);
} pcpd_backend_ops;

struct pcpd_backend {
        const pcpd_backend_ops *ops;
        pcpd_manager *manager;
};

/* The UPnP-IGD backend (pcpd-upnp-backend.c). */
int pcpd_upnp_backend_new(pcpd_manager *m, pcpd_backend **ret);

/* ---- what the manager offers backends (pcpd-manager.c) ---- */

/* Publishes mp's state as i says (bus, log, saved record when the external side changed). */
void pcpd_manager_backend_sync(pcpd_manager *m, pcpd_mapping *mp, const pcpd_backend_info *i);
/* mp's saved record changed in the backend's part: on disk at once. */
int pcpd_manager_backend_persist(pcpd_manager *m, pcpd_mapping *mp);
/* Keeps rec (copied; its id is replaced with a fresh one, returned) as a deleting record,
 * on disk, until pcpd_manager_backend_deleted() or rec->delete_until. */
uint64_t pcpd_manager_backend_keep_deleting(pcpd_manager *m, const pcpd_state_mapping *rec);
/* The backend is done with deleting record id: confirmed, it is forgotten; else it stays
 * (a restart tries again) until it expires. */
void pcpd_manager_backend_deleted(pcpd_manager *m, uint64_t id, bool confirmed);
/* The backend's routers changed: Servers and ExternalAddresses. */
void pcpd_manager_backend_servers_changed(pcpd_manager *m);
/* A mapping by id, or NULL. */
pcpd_mapping *pcpd_manager_backend_find(pcpd_manager *m, uint64_t id);
