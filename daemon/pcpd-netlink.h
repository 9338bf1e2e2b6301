/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PCPD_MAX_ROUTERS 8

typedef struct pcpd_router {
        int family;               /* AF_INET or AF_INET6 */
        struct sockaddr_in6 addr; /* IPv4 as IPv4-mapped; link-local IPv6 with its scope id */
        unsigned ifindex;
        char ifname[16];
        uint32_t metric;
} pcpd_router;

/* The default routers of both families, IPv4 first, lowest metric first. Returns the
 * count (>= 0) or a negative errno. */
int pcpd_netlink_default_routers(pcpd_router *ret, size_t max);

/* A netlink socket that becomes readable when routes change; -errno on failure. */
int pcpd_netlink_route_monitor_open(void);
/* Drains it; returns true if anything arrived. */
bool pcpd_netlink_route_monitor_drain(int fd);

/*
 * Proof that a caller owns a port: a socket bound to it that receives what the mapping
 * forwards, i.e. bound to the mapping's internal address (the host's address toward the
 * server, or its own address when it is not behind a NAT) or to the wildcard address, in
 * pcpd's own network namespace; TCP listening (MAP). A socket bound to 127.0.0.1 or to
 * another address of the host, or one in another network namespace, proves nothing about
 * the service that receives the mapped traffic.
 */

typedef enum pcpd_bind_match {
        PCPD_BIND_NONE,     /* receives nothing the mapping forwards */
        PCPD_BIND_WILDCARD, /* bound to the wildcard address of a family that receives it */
        PCPD_BIND_EXACT,    /* bound to one of the internal addresses */
} pcpd_bind_match;

/* How a socket of sock_family (AF_INET or AF_INET6; v6only: IPV6_V6ONLY) bound to
 * address `bound` (IPv4 as IPv4-mapped) receives what a mapping of family `family`
 * forwards to one of internal[0..n) (IPv4 as IPv4-mapped). Pure. */
pcpd_bind_match pcpd_bind_matches(int sock_family, const struct in6_addr *bound, bool v6only, int family,
                                  const struct in6_addr *internal, size_t n);

typedef struct pcpd_port_query {
        uint8_t protocol; /* IPPROTO_TCP or IPPROTO_UDP */
        uint16_t port;
        uid_t uid;        /* the caller's */
        bool listening;   /* TCP: only listening sockets count (MAP) */
        int family;       /* of the mapping */
        const struct in6_addr *internal;
        size_t n_internal;
} pcpd_port_query;

typedef struct pcpd_port_owners {
        bool caller_exact;    /* a socket of the caller bound to an internal address */
        bool caller_wildcard; /* a socket of the caller bound to the wildcard address */
        bool other_exact;     /* a socket of another user bound to an internal address */
} pcpd_port_owners;

/* Every socket of the port in pcpd's network namespace (NETLINK_SOCK_DIAG sees only the
 * namespace of the netlink socket, which is pcpd's), classified for the query. 0 or
 * negative errno (-EPROTONOSUPPORT: neither TCP nor UDP). */
int pcpd_sock_diag_port_owners(const pcpd_port_query *q, pcpd_port_owners *ret);

/* The caller owns the port: its socket bound to an internal address, or to the
 * wildcard address while no other user's socket is bound to an internal address (which
 * would get the traffic: the more specific binding wins). */
static inline bool pcpd_port_owners_prove(const pcpd_port_owners *o) {
        return o->caller_exact || (o->caller_wildcard && !o->other_exact);
}

typedef struct pcpd_socket_info {
        int family; /* AF_INET or AF_INET6 */
        int type, protocol;
        struct in6_addr bound; /* IPv4 as IPv4-mapped */
        uint16_t port;
        bool v6only;
        bool listening; /* SO_ACCEPTCONN */
} pcpd_socket_info;

/* What a socket passed by a caller is. -ENOTSOCK (not a socket), -EAFNOSUPPORT (neither
 * IPv4 nor IPv6), or another negative errno. */
int pcpd_socket_describe(int fd, pcpd_socket_info *ret);

/* Does the socket live in pcpd's own network namespace (SO_NETNS_COOKIE of both)? 1 yes,
 * 0 no, negative errno when that cannot be told (the caller then refuses it). */
int pcpd_socket_in_own_netns(int fd);

/* ---- the kernel's replies, parsed ----
 * Pure functions of one datagram of a netlink dump reply, as recv() returns it into a
 * buffer aligned to 4 (any malloc()ed one): no I/O, no logging. Each returns 1 when the
 * datagram ends the dump (NLMSG_DONE), 0 when more is to come, and a negative errno when
 * the kernel answered with an error (NLMSG_ERROR). The functions above feed them. */

/* Adds the default routers (RTM_NEWROUTE of the main table, no destination, a gateway) in
 * buf to routers[0..*n), at most max, a router (address and interface) once; ifname is
 * left empty (looking it up is I/O). */
int pcpd_netlink_parse_routes(const void *buf, size_t len, pcpd_router *routers, size_t max, size_t *n);

/* Adds what the sockets in buf (SOCK_DIAG_BY_FAMILY, inet_diag_msg) say about the port of
 * query q to *owners (which it only ever sets, never clears). */
int pcpd_sock_diag_parse_owners(const void *buf, size_t len, const pcpd_port_query *q, pcpd_port_owners *owners);
