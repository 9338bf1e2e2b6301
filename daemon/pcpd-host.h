/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The host's own addresses, kept up to date by the kernel's address, link and route
 * events (rtnetlink multicast groups) instead of a dump per question: a snapshot filled
 * once by a dump of links and addresses, then changed by each RTM_NEWLINK, RTM_DELLINK,
 * RTM_NEWADDR and RTM_DELADDR that arrives. A lost event (the socket overflowed) makes
 * the next sync dump everything again.
 *
 * Two layers:
 *  - pcpd_host_snapshot: plain data and pure functions (no I/O): the update function
 *    takes one datagram of netlink messages, a dump reply or events, as recv() returns it.
 *    Unit-tested (tests/unit/test-host.c) and fuzzed (tests/fuzz/fuzz-netlink.c).
 *  - pcpd_host: the sockets. No GLib: its owner watches pcpd_host_fd() and calls
 *    pcpd_host_sync() when it is readable (pcpd-manager.c does, at a priority above the
 *    bus's, so that a call that follows an address change sees it).
 */

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#define PCPD_HOST_MAX_LINKS 1024
#define PCPD_HOST_MAX_ADDRS 4096

typedef struct pcpd_host_link {
        unsigned ifindex;
        unsigned flags; /* IFF_UP, IFF_LOOPBACK, ... (ifi_flags) */
        char name[IF_NAMESIZE];
} pcpd_host_link;

typedef struct pcpd_host_addr {
        unsigned ifindex;
        int family;           /* AF_INET or AF_INET6 */
        struct in6_addr addr; /* IPv4 as IPv4-mapped */
} pcpd_host_addr;

typedef struct pcpd_host_snapshot {
        pcpd_host_link *links; /* in no particular order, one per ifindex */
        size_t n_links, cap_links;
        pcpd_host_addr *addrs; /* by ifindex, then in the order they came; one per (ifindex, address) */
        size_t n_addrs, cap_addrs;
        unsigned dropped;      /* links or addresses not kept: over the limits above, or no memory */
} pcpd_host_snapshot;

/* What an update changed */
enum {
        PCPD_HOST_CHANGED_ADDRESSES = 1 << 0, /* an address or a link's name or flags */
        PCPD_HOST_CHANGED_ROUTES = 1 << 1,    /* a route (RTM_NEWROUTE/RTM_DELROUTE arrived) */
};

/* Applies every message of one datagram (aligned to 4, as any malloc()ed buffer or a
 * uint32_t array) to s; ORs what changed into *changed. A message that repeats what s
 * holds (the kernel resends RTM_NEWADDR when an IPv6 lifetime is refreshed, RTM_NEWLINK
 * with new statistics) changes nothing. Malformed messages are skipped. Returns 1 when
 * the datagram ends a dump (NLMSG_DONE), 0 otherwise, a negative errno for the kernel's
 * error (NLMSG_ERROR). Pure. */
int pcpd_host_snapshot_apply(pcpd_host_snapshot *s, const void *buf, size_t len, unsigned *changed);

void pcpd_host_snapshot_clear(pcpd_host_snapshot *s);

/* A usable address: on a link that is known, up and not the loopback (what getifaddrs()
 * users here looked for). *i starts at 0; returns false when there is none left. ret_ifname
 * (may be NULL): its link's name. */
bool pcpd_host_snapshot_next(const pcpd_host_snapshot *s, size_t *i, pcpd_host_addr *ret,
                             char ret_ifname[IF_NAMESIZE]);

/* Is a (IPv4 as IPv4-mapped) a usable address of the host? ret_ifname (may be NULL): where. */
bool pcpd_host_snapshot_has_address(const pcpd_host_snapshot *s, const struct in6_addr *a,
                                    char ret_ifname[IF_NAMESIZE]);

/* ---- the sockets ---- */

typedef struct pcpd_host pcpd_host;

/* Opens the event socket, then dumps links and addresses. Never NULL. Without an event
 * socket (no netlink, or too many sockets) it still works, with a dump per
 * pcpd_host_get() as before the cache. */
pcpd_host *pcpd_host_new(void);
void pcpd_host_free(pcpd_host *h);

/* The event socket to watch for readability, or -1. */
int pcpd_host_fd(const pcpd_host *h);

/* Reads every event that has arrived (without blocking); dumps again after an overflow.
 * Returns what changed (PCPD_HOST_CHANGED_*). */
unsigned pcpd_host_sync(pcpd_host *h);

/* The snapshot as of the last sync (or a fresh dump without an event socket, or when the
 * last dump failed). Valid until the next call on h. */
const pcpd_host_snapshot *pcpd_host_get(pcpd_host *h);

/* The source address the kernel would use toward the Internet for the family (connect()
 * on a UDP socket: a route and a source are picked, nothing is sent); IPv6 prefers a
 * public (not temporary) address. Remembered until an address, link or route changes. */
bool pcpd_host_route_source(pcpd_host *h, int family, struct in6_addr *ret);

/* How many netlink dumps and route probes h made (for the tests and the benchmark). */
unsigned pcpd_host_dumps(const pcpd_host *h);
