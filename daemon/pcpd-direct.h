/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The rules of "direct" mappings, pure: plain data in (the host snapshot of pcpd-host.h,
 * the servers as the engine sees them), decisions out; no I/O, no clock, no manager.
 * pcpd-manager.c gathers the data and acts; tests/unit/test-direct.c tests the rules.
 *
 * A host with a global address of a family and no server there that could map (none is
 * known, or each one is unreachable, speaks only a PCP version we do not, or has been
 * silent too long) is not behind a NAT: a mapping of that family is "direct". It is
 * active at once with the host's own address as external address and the internal port
 * as external port, Server "", and nothing is sent anywhere. The manager's State is then
 * "ready" as when a server answers.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcpd-host.h"
#include "pcpd-server.h"

/* One server, as the rules see it. */
typedef struct pcpd_direct_server {
        int family;             /* AF_INET or AF_INET6 */
        const char *ifname;     /* "" when unknown (a configured server) */
        bool engine_known;      /* the engine has it; when not, it counts as one that may map */
        pcpd_server_state state; /* its state, when engine_known */
        bool silent;            /* it has answered nothing for PCPD_SILENT_SERVER_MS */
        bool not_answering;     /* a PCP or NAT-PMP one whose requests have gone unanswered
                                 * for 20 s (pcpd_server_view.silent): it keeps its mappings
                                 * and gets new ones, but no longer makes the manager ready */
} pcpd_direct_server;

/* Globally reachable: in none of the IANA special-purpose registries' "not globally
 * reachable" blocks (RFC 6890: private, CGNAT, loopback, link-local, documentation, ULA,
 * NAT64, Teredo, multicast, ...). a is IPv4 as IPv4-mapped, and judged as IPv4. */
bool pcpd_direct_address_is_global(const struct in6_addr *a);

/* A global address of the family among the snapshot's usable ones (on interface ifname,
 * unless NULL or ""). Into ret (may be NULL): routed when it is one of them (the source
 * the kernel would use toward the Internet, NULL: not known), else the first. */
bool pcpd_direct_global_address(const pcpd_host_snapshot *snap, int family, const char *ifname,
                                const struct in6_addr *routed, struct in6_addr *ret);

/* Could any server of the family (on the interface, when one is asked for) map? Not one
 * known to be unreachable or to speak only an unsupported version, nor a silent one. */
bool pcpd_direct_servers_may_map(const pcpd_direct_server *servers, size_t n, int family, const char *interface);

/* Not behind a NAT for the family: a global address there and no server that could map. */
static inline bool pcpd_direct_is_direct(bool servers_may_map, bool global_address) {
        return !servers_may_map && global_address;
}

/* Whether a server answers PCP or NAT-PMP (the engine knows it, and it has not stopped
 * answering): then mappings are made. */
bool pcpd_direct_any_usable(const pcpd_direct_server *servers, size_t n);

/* Manager.State: "disabled"; "ready" when a server (or backend_usable: a router another
 * backend maps with) can map or the host is not behind a NAT for a family (direct[0] for
 * IPv4, direct[1] for IPv6); else "no-network" without servers, "unsupported" when one
 * answered something (and has not stopped answering), "discovering" while none has (or
 * every one that did has stopped answering). */
const char *pcpd_direct_manager_state(bool enabled, const pcpd_direct_server *servers, size_t n,
                                      bool backend_usable, const bool direct[2]);

/* A new mapping's family when the request names none: IPv4 when there is an IPv4 server
 * for it or a global IPv4 address, else IPv6. asked (not 0) stays. */
int pcpd_direct_plan_family(int asked, bool ipv4_server, bool ipv4_global);

/* What of a request the plan looks at. */
typedef struct pcpd_direct_request {
        bool has_third_party; /* for another host: it needs a server */
        bool prefer_failure;
        uint16_t internal_port, suggested_port;
} pcpd_direct_request;

/* Is a new mapping direct? host_direct: not behind a NAT for its family (on its
 * interface); has_server: a server would take it. THIRD_PARTY never is; "exactly this
 * other port or fail" is left to a server when there is one (it might grant it). */
bool pcpd_direct_plan(const pcpd_direct_request *req, bool host_direct, bool has_server);
