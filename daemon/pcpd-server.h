/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-server: a port mapping server (router) as the manager keeps it (its registry is
 * the manager's m->servers; pcpd-servers.c says which sources want which). A backend
 * (pcpd-pcp.h) includes this, not the manager's header: it holds its own per-server part
 * behind the opaque pointer it sets here.
 */

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "pcp-engine.h"

typedef struct pcpd_manager pcpd_manager;

typedef struct pcpd_server {
        pcpd_manager *manager;
        /* its part in the PCP backend (pcpd-pcp.c: sockets, engine server); NULL until
         * pcpd_pcp_server_add() */
        struct pcpd_pcp_server *pcp;
        char *source;  /* "config", "gateway", "dhcpv4", "dhcpv6" */
        char *ifname;  /* "" when unknown */
        char *text;    /* the address in use, for Servers and logs */
        int family;    /* AF_INET or AF_INET6 */
        size_t n_addrs;
        struct sockaddr_in6 addrs[PCP_SERVER_MAX_ADDRS];
        bool seen; /* discovery bookkeeping */
        int logged_state; /* the engine state last logged, -1 = none */
        /* silence: a server that has not answered anything (engine state unknown) for
         * PCPD_SILENT_SERVER_MS cannot keep a host with a global address from mapping directly */
        pcp_server_state seen_state; /* the engine state last seen in an event */
        uint64_t unknown_since;      /* pcpd_now_ms() when it was (again) unknown */
        guint silent_source;         /* fires when it has been unknown for that long */
} pcpd_server;
