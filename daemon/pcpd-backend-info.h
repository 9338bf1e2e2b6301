/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What every way of holding a mapping reports of it, in the bus's terms: the UPnP-IGD
 * backend (pcpd-backend.h) and the PCP backend (pcpd-pcp.h: its mapping_changed news and
 * pcpd_pcp_mapping_view()) fill it, the manager publishes it (manager_mapping_sync()).
 * A leaf: it includes no module. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

/* A mapping's state as a backend has it, in the bus's terms. */
typedef struct pcpd_backend_info {
        const char *state; /* "pending", "active", "renewing", "failed" */
        const char *error; /* "" or an error name (Mapping.Error) */
        /* NULL, or for the log line of a failure what the error name does not say (for
         * UNSUPP_OPTION: the options the request carried); valid during the call only */
        const char *error_detail;
        bool has_external;
        struct in6_addr external_addr;
        uint16_t external_port;
        struct in6_addr internal_addr;
        uint32_t lifetime_granted; /* seconds; 0 for a permanent one */
        uint64_t expires_at;       /* CLOCK_REALTIME µs; 0 = none (not granted, or permanent) */
} pcpd_backend_info;
