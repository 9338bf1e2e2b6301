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

#include "pcp-wire.h"

typedef struct pcpd_manager pcpd_manager;

/* At most this many addresses per server (RFC 7488: a server may have several); the
 * engine's PCP_SERVER_MAX_ADDRS is the same (pcpd-pcp.c checks). */
#define PCPD_SERVER_MAX_ADDRS 8

/* A server's state, in the daemon's own terms (the PCP backend translates the engine's:
 * pcpd_pcp_server_state_of() in pcpd-pcp.h). */
typedef enum pcpd_server_state {
        PCPD_SERVER_UNKNOWN,     /* nothing heard yet (or not known to the backend) */
        PCPD_SERVER_PCP,         /* answers PCP */
        PCPD_SERVER_NATPMP,      /* answers NAT-PMP */
        PCPD_SERVER_DISABLED,    /* answered NOT_AUTHORIZED: PCP implemented but off */
        PCPD_SERVER_UNREACHABLE, /* ICMP unreachable from every address */
        PCPD_SERVER_UNSUPPORTED, /* offers only a PCP version we do not speak */
        _PCPD_SERVER_STATE_MAX,
} pcpd_server_state;

/* "unknown", "pcp", "nat-pmp", "disabled", "unreachable", "unsupported" (logs) */
static inline const char *pcpd_server_state_to_string(pcpd_server_state st) {
        static const char *const names[_PCPD_SERVER_STATE_MAX] = {
                [PCPD_SERVER_UNKNOWN] = "unknown",         [PCPD_SERVER_PCP] = "pcp",
                [PCPD_SERVER_NATPMP] = "nat-pmp",          [PCPD_SERVER_DISABLED] = "disabled",
                [PCPD_SERVER_UNREACHABLE] = "unreachable", [PCPD_SERVER_UNSUPPORTED] = "unsupported",
        };
        return (unsigned) st < _PCPD_SERVER_STATE_MAX ? names[st] : "invalid";
}

/* The protocol column of Manager.Servers: "pcp", "nat-pmp", else "none". */
static inline const char *pcpd_server_state_protocol(pcpd_server_state st) {
        return st == PCPD_SERVER_PCP ? "pcp" : st == PCPD_SERVER_NATPMP ? "nat-pmp" : "none";
}

/* What Manager.Servers and Manager.Prefix64 show of a server, as its backend knows it
 * (pcpd_manager_server_view()). */
typedef struct pcpd_server_view {
        pcpd_server_state state;
        /* asked something 20 s ago or more and heard nothing since (the engine's
         * pcp_server_info.silent): listed as protocol "none", its state (and the routing of
         * its mappings) unchanged */
        bool silent;
        uint32_t epoch; /* the last server epoch seen (0: none yet) */
        uint8_t n_prefix64;
        struct {
                struct in6_addr prefix;
                uint8_t prefix_len;
        } prefix64[2]; /* RFC 7225 PREFIX64, from the last response that carried any */
} pcpd_server_view;

/* The protocol column of Manager.Servers for a server as its backend shows it: "pcp",
 * "nat-pmp", else (not answering: silent, or a state that speaks neither) "none". */
static inline const char *pcpd_server_view_protocol(const pcpd_server_view *v) {
        return v->silent ? "none" : pcpd_server_state_protocol(v->state);
}

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
        struct sockaddr_in6 addrs[PCPD_SERVER_MAX_ADDRS];
        bool seen; /* discovery bookkeeping */
        int logged_state; /* the state last logged, -1 = none */
        /* silence: a server that has not answered anything (engine state unknown) for
         * PCPD_SILENT_SERVER_MS cannot keep a host with a global address from mapping directly */
        pcpd_server_state seen_state; /* the state last seen in an event */
        uint64_t unknown_since;      /* pcpd_now_ms() when it was (again) unknown */
        guint silent_source;         /* fires when it has been unknown for that long */
} pcpd_server;
