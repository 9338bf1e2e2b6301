/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-nm: PCP servers and the primary interface from NetworkManager (libnm, on pcpd's
 * GLib loop). See pcpd-select.h N1-N8 for the rules; what is done here:
 *   N1  one NMClient on a GDBusConnection of its own (exit-on-close off), made
 *       asynchronously; NetworkManager absent at start, leaving and coming back are
 *       followed through its "nm-running" property, without a restart of pcpd;
 *   N2  per device with an active connection, its DHCP4Config/DHCP6Config options
 *       (pcpd-dhcp.h: all three spellings) -> pcpd_manager_set_servers() with the sources
 *       dhcpv4/dhcpv6 and the device's IP interface;
 *   N3  the default routers stay with netlink; the primary connection's first device's IP
 *       interface -> pcpd_manager_set_primary();
 *   N4  changes are coalesced (500 ms) and applied as a diff (a renewal that re-sends the
 *       same option changes nothing); a config object that is "/" or has no options yet
 *       is "not known yet": the lease last seen on the interface stays, and so it does
 *       while a device is between two active connections (a reconnect, NetworkManager
 *       coming back: pcpd_nm_device.activating); a device without one otherwise (link
 *       down, disconnected) loses its leases;
 *   N5  a lease whose end (DHCPv4 "expiry", DHCPv6 "life_starts" + "max_life") has
 *       passed counts no more (NetworkManager 1.42's stale DHCP6Config, a dead dhclient);
 *   N6  NetworkManager gone from the bus: its servers stay for PCPD_NM_GRACE_S (or until
 *       their lease ends), then go; when it is back, its state is read again.
 *   N8  logind's PrepareForSleep(false) (resume): every server set up again and every
 *       mapping asked again with its nonce (pcpd_servers_renew_all()).
 * N7 (mappings follow the primary connection) is in pcpd-servers.c.
 */

#include "pcpd-manager.h"

#define PCPD_NM_GRACE_S 60

typedef struct pcpd_nm pcpd_nm;

/* Starts following NetworkManager (asynchronously; nothing happens when it is not there). */
pcpd_nm *pcpd_nm_new(pcpd_manager *m);
void pcpd_nm_free(pcpd_nm *nm);

/* For Manager.DhcpOptions: one (interface, "ipv4"/"ipv6", state) per interface and family
 * NetworkManager has a DHCP lease on; state is pcpd_dhcp_request_state_to_string(). */
typedef struct pcpd_nm_option_state {
        char ifname[16];
        int family;
        const char *state;
} pcpd_nm_option_state;
size_t pcpd_nm_option_states(pcpd_nm *nm, pcpd_nm_option_state *out, size_t cap);
/* whether NetworkManager is on the bus */
bool pcpd_nm_running(pcpd_nm *nm);
/* Manager.NetworkManager: "running", "not-running" (not on the bus, or not known yet),
 * "unavailable" (libnm could not be set up: servers from the default routes only) */
const char *pcpd_nm_status(pcpd_nm *nm);
