/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The news every backend sends up (pcpd-backend.h), in backend-neutral terms: the one
 * struct a backend is given at construction. The PCP backend's core (pcpd-pcp.h) tells
 * the engine's events in these very terms, so its adapter (pcpd-pcp-backend.c) passes
 * them through untouched. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcpd-backend-info.h"
#include "pcpd-mapping.h"
#include "pcpd-server.h"

/* A server's state as a backend that speaks to servers tells it (pcpd-server.h's
 * vocabulary of server states, the one pcpd-direct.h and Manager.Servers use too). */
typedef struct pcpd_server_status {
        pcpd_server_state state;
        const char *state_name;  /* "unknown", "pcp", "nat-pmp", ... (Manager.Servers) */
        uint64_t disabled_until; /* monotonic ms, DISABLED only: when it is asked again */
        bool address_mismatch;   /* it saw another source address than ours */
} pcpd_server_status;

/* News up, given at construction (every callback set, also those a backend never
 * tells). Told from inside the backend's own calls (after it has recorded what it did)
 * and from the main loop; a callback may call back down, but must not free the backend. */
typedef struct pcpd_backend_events {
        /* mp's state changed as the backend holds it. info: in the bus's terms, NULL while
         * the mapping is being deleted (nothing to publish); granted: the server has just
         * granted or renewed it */
        void (*mapping_changed)(void *userdata, pcpd_mapping *mp, const pcpd_backend_info *info, bool granted);
        /* the backend dropped mp under the manager (its server went): it holds no part of
         * mp any more when this is told */
        void (*mapping_lost)(void *userdata, pcpd_mapping *mp);
        /* the backend's part of mp's saved record (its fill_record) changed: the manager
         * saves it at once */
        void (*mapping_record_changed)(void *userdata, pcpd_mapping *mp);
        /* the delete started by remove() (or delete_saved(), handover(),
         * restore_deleting()) under cookie is over: confirmed, or given up */
        void (*deleting_done)(void *userdata, uint64_t cookie, bool confirmed);
        /* s's state, addresses, external address or PREFIX64 changed; st: its state now
         * (NULL when none was told). s may be NULL (a server not known any more) */
        void (*server_changed)(void *userdata, pcpd_server *s, const pcpd_server_status *st);
        /* s lost its mappings (epoch reset): the backend recreates them. s may be NULL */
        void (*server_epoch_reset)(void *userdata, pcpd_server *s, bool repeated, bool from_announce);
        /* s said something changed (its external address, say), with no sign that it lost
         * its mappings: a PCP ANNOUNCE with a consistent epoch, or a NAT-PMP external
         * address notification. The backend asks for its n_mappings mappings again, each
         * within a few seconds. At most one per few seconds per server, like the epoch
         * resets; repeated: not the first recreation (this or an epoch reset) of its
         * episode. s may be NULL */
        void (*server_recreate)(void *userdata, pcpd_server *s, bool repeated, bool from_announce,
                                size_t n_mappings);
} pcpd_backend_events;
