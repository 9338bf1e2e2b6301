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

/* The default routers of both families, lowest metric first. Returns the count (>= 0) or
 * a negative errno. */
int pcpd_netlink_default_routers(pcpd_router *ret, size_t max);

/* A netlink socket that becomes readable when routes change; -errno on failure. */
int pcpd_netlink_route_monitor_open(void);
/* Drains it; returns true if anything arrived. */
bool pcpd_netlink_route_monitor_drain(int fd);

/* Is a socket owned by uid bound to this local port (protocol 6 or 17, both families)?
 * Returns 1 yes, 0 no, negative errno on failure. Uses NETLINK_SOCK_DIAG. */
int pcpd_sock_diag_port_owned(uint8_t protocol, uint16_t port, uid_t uid);
