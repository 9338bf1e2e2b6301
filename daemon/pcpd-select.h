/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-select: PCP server selection (RFC 7488, RFC 6887 §8.1) as pure rules: no I/O, no
 * clock, no allocation, no GLib. Two layers:
 *
 * 1. Which servers a mapping goes to (for the manager).
 *    A server comes from a source (config, DHCPv4, DHCPv6, default router) and belongs to an
 *    interface ("" for configured servers, which serve every interface).
 *    S1  The interface: the one the caller named, else the primary connection's
 *        (NetworkManager's PrimaryConnection), else, with no NetworkManager, the interface of
 *        the first server that fits (the order the sources gave them: today's behaviour).
 *    S2  The family: a mapping of a family goes to the addresses of that family only. The
 *        client IP in a request must be the packet's source (RFC 6887 §8.3), so a request
 *        sent over IPv6 asks for the host's IPv6 address: an IPv4 (NAT44) mapping must go to
 *        an IPv4 address of the server, an IPv6 one (pinhole) to an IPv6 address. A server
 *        with addresses of both families (DHCPv6 "fd77::1 ::ffff:192.168.77.1") serves both.
 *    S3  The source: configured servers win over everything; else the servers the network
 *        announced by DHCP (v4 and v6 alike) on the interface; only when there are none,
 *        the interface's default routers (RFC 6887 §8.1: the default router is the server
 *        of last resort). A DHCP-announced server that is not the default gateway is thus
 *        used alone, as the network intends.
 *    S4  Several servers left (several DHCP lists, DHCPv4 and DHCPv6 servers, two configured
 *        servers): all of them, each on its own (RFC 7488 §4: they are independent, e.g. one
 *        per upstream network of a multihomed site; inbound traffic may come through any of
 *        them). The mapping is held on each; a failure on one server affects that server's
 *        part only; what the app sees is the part of the first server in preference order
 *        that is active (pcpd_select_representative()).
 *
 * 2. Which address of one server to use (for the engine, which owns the retransmissions).
 *    A1  Order: the addresses of the family, in the order given (DHCP's order is the
 *        network's preference, RFC 7488 §3 sorts with RFC 6724 whose last rule keeps it),
 *        those without a route or source address (RFC 6724 rule 1) last.
 *    A2  Start with the first. One address at a time: every request of the server goes to
 *        the current address.
 *    A3  An address fails when a request has been sent to it PCPD_SELECT_MRC (4) times without
 *        any answer from it since that request began (about 45 s on RFC 6887's schedule), or
 *        at once on a hard ICMP error (port or host unreachable) for it. The next address
 *        not failed in this round becomes current, and what is outstanding is resent to it
 *        at once, with the same nonces.
 *    A4  An address that answered (any valid response) is kept ("sticky") until it fails
 *        as in A3; an answer also forgets the failures of the round.
 *    A5  Every address failed: the server is unreachable; nothing is sent until 15 minutes
 *        later (PCPD_SELECT_RETRY_MS), then a new round starts from the first address.
 *    A6  A failure of one address is not a failure of the server, and a failure of one
 *        server is not a failure of the others (S4).
 *
 * What the engine (daemon/pcp-engine.c) has of this today: A2 (current_addr), A4 (sticky
 * once an address answered, failures forgotten), the ICMP half of A3 (next address at once,
 * outstanding requests resent, late errors for a left address ignored) and a new round
 * after every address failed by ICMP. What it lacks, for the wiring step:
 *   E1  the silence half of A3: a server whose first address drops requests without an ICMP
 *       error is retried there forever and its other addresses are never tried
 *       (pcpd_addr_select_timeout() is the rule: call it when a request's retransmission
 *       timer fires, with the attempts made to the current address);
 *   E2  A5: after every address failed it goes on at RFC 6887's retransmission pace instead
 *       of pausing 15 minutes (a SHOULD of RFC 7488);
 *   E3  A1's family filter is the manager's to do: register one engine server per family of
 *       a DHCP server (pcpd_select_addr_order()); today a mapping's internal address is the
 *       current address's source, so a server with addresses of both families would turn an
 *       IPv6 mapping into an IPv4 one when it switches address;
 *   E4  a way to say "the network changed" for a server (recreate every mapping now, same
 *       nonces, after a small random delay: what server_recreate_all() does after an
 *       ANNOUNCE) and "the clock jumped" (resume from suspend: CLOCK_MONOTONIC, which
 *       pcpd_now_ms() uses, stops while suspended, so every granted lifetime may have run
 *       out and the next epoch check would call it a server state loss);
 *   E5  a way to update an address's local (source) address when the host's address
 *       changes, which makes the mappings new ones on the server (recreated).
 *
 * Where the servers come from once NetworkManager is wired (pcpd-nm, on the GLib loop):
 *   N1  One NMClient (libnm), made with nm_client_new_async() on a GDBusConnection of its
 *       own with exit-on-close off: GLib's shared system bus connection raises SIGTERM in
 *       the process when the bus goes away. It follows NetworkManager appearing and leaving
 *       by itself ("nm-running"): no polling, nothing special at start when it is absent.
 *   N2  Per device that has an active connection (nm_device_get_active_connection()), with
 *       ifname = nm_device_get_ip_iface(): the DHCP4Config and DHCP6Config options through
 *       pcpd_dhcp_parse_options() -> manager_set_servers("dhcpv4"/"dhcpv6", ifname,
 *       servers). The seam must take several servers of several addresses each (not one
 *       flat address list) and be idempotent: unchanged servers change nothing.
 *   N3  Gateways stay with netlink ("gateway", per interface, as today), with or without
 *       NetworkManager: nothing to switch when it comes or goes. NetworkManager adds the DHCP
 *       servers and the primary interface (NMClient "primary-connection" -> its first
 *       device's ip_iface); without it the primary is unknown (S1).
 *   N4  Changes are coalesced (one idle/500 ms settle, as route changes are today) and
 *       applied as a diff: a renewal re-sends every option (PropertiesChanged with the same
 *       servers: no change), a reconnect sets Dhcp4Config to "/" then to a new object whose
 *       Options are {} until filled, and the primary connection goes to "/" and back. "/",
 *       {} and a missing primary are "not known yet": the servers stay until a filled lease
 *       says otherwise, the device deactivates, or the lease runs out.
 *   N5  Lease lifetimes: "expiry" (DHCPv4) and "life_starts" + "max_life" (DHCPv6) are
 *       wall-clock seconds; when one passes without a newer lease the servers of that lease
 *       go. That catches NM 1.42's stale DHCP6Config (DHCPv6 stopped after an ipv6 reapply,
 *       the object left with its last options) and a dhclient that died.
 *   N6  NetworkManager leaves the bus: its servers stay for a grace period (60 s, or their
 *       lease end if sooner: a restart of NetworkManager takes about a second and leaves the
 *       interfaces configured), then go; the gateways (netlink) were never NM's. When it
 *       comes back its state is read again and applied as a diff (N4). No restart of pcpd.
 *   N7  A VPN that becomes the primary connection (full tunnel) takes the mappings with no
 *       interface of their own: replies to inbound traffic would leave through the tunnel,
 *       so a mapping on the physical network's NAT would not work. Without a PCP server
 *       behind the VPN they wait; when it goes they come back to the physical interface.
 *       A split-tunnel VPN is not the primary connection and changes nothing.
 *   N8  Suspend: logind's PrepareForSleep(false) (resume) is a network change for every
 *       server (E4): renew everything, with new epoch baselines. With NetworkManager the
 *       devices also deactivate and reconnect, which N4-N6 handle.
 *
 * What a network change does to mappings (RFC 6887 §8.3-§8.5, §11.2.1, §14; RFC 7488):
 *   C1  Same server (same interface, same address of the family) after a renewal, reconnect
 *       or resume: nothing moves; the mapping is renewed (or recreated if the epoch says the
 *       server lost its state), always with its nonce, suggesting its external address and
 *       port: the server sees a refresh and keeps the port.
 *   C2  Another server (a new DHCP option, the primary connection moved): the mapping is made
 *       on the new server (a new nonce is fine; reusing the old one does no harm) and
 *       PropertiesChanged tells the app its new Server/External*.
 *   C3  No server for it (link down, NetworkManager gone past its grace period, a VPN
 *       without one): the mapping waits, State "failed" with an Error naming why (a new
 *       value, e.g. "NO_SERVER": an addition to the contract), retried when a server
 *       appears. It is not removed ("network-lost" stays for direct mappings).
 *   C4  What is left on the old server: deleted there at once (lifetime 0, its nonce) when
 *       the old server is still reachable (still configured on an interface that is up,
 *       e.g. moving from Ethernet to Wi-Fi on one LAN), so that one port is not mapped to
 *       two internal addresses; otherwise forgotten and left to expire. Recommended over
 *       "delete when it becomes reachable again" because (a) when the host comes back to
 *       the same server the mapping is recreated there with its nonce (C1): nothing is left
 *       to delete; (b) "the same address again" is often another network's device (every
 *       home router is 192.168.1.1), where a delete with our nonce is meaningless; (c) it
 *       would keep state for servers that may never come back, across restarts; (d) what
 *       is left expires within the lifetime pcpd asked for, which bounds the exposure.
 *   C5  The host's own address changed (a new lease): the mapping is a new one on the
 *       server (internal address), recreated from the new address (E5); the old one cannot
 *       be deleted (its source address is gone) and expires.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pcp-engine.h"

typedef enum pcpd_source {
        PCPD_SOURCE_CONFIG,  /* pcpd.conf Servers= */
        PCPD_SOURCE_DHCPV4,  /* DHCPv4 option 158 through NetworkManager */
        PCPD_SOURCE_DHCPV6,  /* DHCPv6 option 86 through NetworkManager */
        PCPD_SOURCE_GATEWAY, /* a default router (netlink, or NetworkManager's gateway) */
        _PCPD_SOURCE_MAX,
        _PCPD_SOURCE_INVALID = -EINVAL,
} pcpd_source;

/* "config", "dhcpv4", "dhcpv6", "gateway": the source strings of the Servers property */
const char *pcpd_source_to_string(pcpd_source s);
pcpd_source pcpd_source_from_string(const char *s);

typedef struct pcpd_select_server {
        pcpd_source source;
        const char *ifname; /* "" or NULL: any interface (configured servers) */
        size_t n_addrs;
        const struct in6_addr *addrs; /* IPv4 as IPv4-mapped */
} pcpd_select_server;

/* Does the server have an address of the family (AF_INET: IPv4-mapped; AF_INET6: others)? */
bool pcpd_select_server_has_family(const pcpd_select_server *s, int family);

/* S1-S4: the servers (indexes into servers[], in their order) a mapping of the family goes
 * to. ifname: the interface the caller asked for (NULL or "": none); primary_ifname: the
 * primary connection's interface (NULL or "": unknown). Returns how many were written to
 * out (at most cap); 0: no server for the mapping (it waits). */
size_t pcpd_select_servers(const pcpd_select_server *servers, size_t n, int family, const char *ifname,
                           const char *primary_ifname, size_t *out, size_t cap);

/* S4: which of a mapping's parts (their engine states, in the order pcpd_select_servers()
 * gave the servers) the app is shown: the first active or renewing one, else the first
 * pending one, else the first. -1 if n is 0. */
ssize_t pcpd_select_representative(const pcp_mapping_state *states, size_t n);

/* ---- one server's addresses ---- */

#define PCPD_SELECT_MRC 4                     /* RFC 7488 §3 */
#define PCPD_SELECT_RETRY_MS (15 * 60 * 1000) /* RFC 7488 §3: all addresses failed */

/* A1: indexes of the addresses of the family in the order to try them. usable (may be
 * NULL: all usable): per address, whether the host has a route and source address toward
 * it. Returns how many were written. */
size_t pcpd_select_addr_order(const struct in6_addr *addrs, size_t n, int family, const bool *usable,
                              uint8_t out[static PCP_SERVER_MAX_ADDRS]);

typedef struct pcpd_addr_select {
        uint8_t n;             /* addresses, in the order to try (after pcpd_select_addr_order()) */
        uint8_t current;       /* the one in use */
        bool answered;         /* current has answered: keep it (A4) */
        uint16_t failed;       /* bit i: address i failed in this round */
        uint64_t last_answer;  /* when current last answered; 0 = never */
        uint64_t retry_at;     /* A5: all failed, nothing is sent before; 0 = not exhausted */
} pcpd_addr_select;

typedef enum pcpd_addr_action {
        PCPD_ADDR_KEEP,      /* go on with the current address */
        PCPD_ADDR_SWITCHED,  /* another address is current: resend what is outstanding to it now */
        PCPD_ADDR_EXHAUSTED, /* every address failed: the server is unreachable until retry_at */
        PCPD_ADDR_WAIT,      /* exhausted and retry_at not reached: send nothing */
        _PCPD_ADDR_ACTION_MAX,
} pcpd_addr_action;

int pcpd_addr_select_init(pcpd_addr_select *s, size_t n_addrs);
/* Before sending anything to the server: the address to use (*ret_index). After
 * retry_at, starts a new round from the first address (returns PCPD_ADDR_SWITCHED if that
 * changed the current one). */
pcpd_addr_action pcpd_addr_select_send(pcpd_addr_select *s, uint64_t now, size_t *ret_index);
/* A request's retransmission timer fired: it has been sent `attempts` times to the current
 * address, the first of them at request_start, with no answer to it. */
pcpd_addr_action pcpd_addr_select_timeout(pcpd_addr_select *s, uint64_t now, unsigned attempts,
                                          uint64_t request_start);
/* A hard ICMP error (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH) for address i. */
pcpd_addr_action pcpd_addr_select_unreachable(pcpd_addr_select *s, uint64_t now, size_t i);
/* A valid response from address i. */
void pcpd_addr_select_answered(pcpd_addr_select *s, uint64_t now, size_t i);

const char *pcpd_addr_action_to_string(pcpd_addr_action a);
