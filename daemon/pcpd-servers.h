/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-servers: the server registry's seam. Every source of PCP servers (pcpd.conf, the
 * default routers from netlink, DHCPv4 and DHCPv6 through NetworkManager) hands its whole
 * current list to pcpd_manager_set_servers(); the registry keeps one list per source and
 * makes the manager's servers follow their union as a diff:
 *   - a source replaces only its own servers (on one interface, or on all of them);
 *     unchanged servers change nothing (a DHCP renewal that re-sends the option, a route
 *     change that leaves the gateway where it was): their mappings stay as they are;
 *   - S3 (pcpd-select.h): on an interface with DHCP-announced servers of a family, the
 *     default routers of that family are not used; an address is used by one server only
 *     (the first source in the order config, dhcpv4, dhcpv6, gateway);
 *   - E3: a server with addresses of both families becomes one engine server per family;
 *   - mappings on a server that goes move to the server that now serves them (their nonce
 *     kept when it is the same server again), or wait with State "failed" and Error
 *     "NO_SERVER" until one appears. What they leave on a server that is gone is not
 *     deleted there: it expires (pcpd-select.h C4).
 */

#include <net/if.h>

#include "pcpd-manager.h"
#include "pcpd-select.h"

typedef struct pcpd_server_spec {
        char ifname[IF_NAMESIZE]; /* "" for none (configured servers) */
        size_t n_addrs;           /* 1..PCP_SERVER_MAX_ADDRS */
        struct sockaddr_in6 addrs[PCP_SERVER_MAX_ADDRS]; /* IPv4 as IPv4-mapped, with the port */
} pcpd_server_spec;

typedef struct pcpd_server_sources pcpd_server_sources;

/* Replaces the servers of `source` on interface ifname (NULL: on every interface; the
 * specs' own ifname is used then, else ifname) with servers[0..n). Returns whether the
 * manager's servers changed. */
bool pcpd_manager_set_servers(pcpd_manager *m, pcpd_source source, const char *ifname, const pcpd_server_spec *servers,
                              size_t n);
/* The primary connection's interface (NetworkManager), NULL or "" when unknown: where a
 * mapping that names no interface goes (S1). */
void pcpd_manager_set_primary(pcpd_manager *m, const char *ifname);
const char *pcpd_manager_get_primary(pcpd_manager *m);
/* S1-S3: the server a new mapping of the family goes to (interface NULL or "": none asked). */
pcpd_server *pcpd_servers_choose(pcpd_manager *m, int family, const char *interface);
/* N8: the host resumed from suspend: every server is set up again (new epoch baselines;
 * CLOCK_MONOTONIC stopped while suspended) and every mapping asked again with its nonce. */
void pcpd_servers_renew_all(pcpd_manager *m);
/* Waiting mappings (restored, or whose server went) to the servers that serve them now. */
void pcpd_servers_replan(pcpd_manager *m);
void pcpd_server_sources_free(pcpd_server_sources *s);

/* ---- manager internals the registry uses (pcpd-manager.c) ---- */
int manager_add_server(pcpd_manager *m, const struct sockaddr_in6 *addrs, size_t n, const char *source,
                       const char *ifname, pcpd_server **ret);
void manager_remove_server(pcpd_manager *m, pcpd_server *s);
/* (moving mp to another backend or server: manager_mapping_move(), pcpd-manager-private.h) */
/* mp leaves its server, still there: deleted upstream there (lifetime 0); the caller moves it */
void manager_mapping_leave(pcpd_manager *m, pcpd_mapping *mp);
/* mp leaves its server (gone) and waits for another: State "failed", Error "NO_SERVER". */
void manager_mapping_wait(pcpd_manager *m, pcpd_mapping *mp);
void manager_servers_changed(pcpd_manager *m);
