/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-pcp: the PCP/NAT-PMP backend's I/O around the sans-I/O engine (pcp-engine.h). It
 * owns the engine and everything the engine needs from the outside world:
 *   - one connected UDP socket per server address, read in batches (recvmmsg()) by a
 *     GSource of its own, each datagram handed to the engine with its kernel arrival time;
 *   - the ANNOUNCE listeners (IPv4 and IPv6, the configured port, 5350 by default);
 *   - the engine's clock: one timer GSource armed at the engine's next deadline;
 *   - its randomness (getrandom() in batches, not one system call per draw);
 *   - the log of datagrams the engine dropped (at most one line a minute) and the
 *     statistics line at the end.
 * It knows nothing of the manager, of mappings as the bus sees them, or of sd-bus.
 *
 * Calls go down, news goes up:
 *   - The owner (the manager) adds and removes servers here and reaches the engine for
 *     everything else through pcpd_pcp_engine(). After any call into the engine it calls
 *     pcpd_pcp_drain() (before it looks at anything the engine said), and after any call
 *     that may move the engine's next deadline, pcpd_pcp_kick().
 *   - Every event the engine produces goes up to ops->event, in the engine's order, from
 *     inside pcpd_pcp_drain(): so from the owner's own calls (drain, server_remove) and from
 *     the main loop (socket input, ANNOUNCE, the timer). The datagrams the engine queued
 *     before an event are on the wire before the event is told. The event's pointers are
 *     the engine's (pcp-engine.h: valid until the next call into it). ops->event may call
 *     into the engine and pcpd_pcp_drain() again (events then nest, as the engine's own
 *     order allows), but must not free the pcpd_pcp.
 *   - No event fires from inside pcpd_pcp_server_add(): the server's engine id is returned
 *     first; its probe leaves at the owner's next pcpd_pcp_drain().
 *   - After input and timers the module drains and re-arms the timer itself.
 *
 * Engine time is the monotonic clock in milliseconds (g_get_monotonic_time() / 1000, the
 * same as pcpd_now_ms()).
 *
 * Cost: per datagram received, no allocation and no system call beyond its share of one
 * recvmmsg() (up to 16 per call, until the socket is empty); per datagram sent, one send().
 * Re-arming the timer is g_source_set_ready_time(), no system call of its own.
 */

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp-engine.h"
#include "pcpd-backend-info.h"

typedef struct pcpd_pcp pcpd_pcp;

typedef struct pcpd_pcp_ops {
        /* one event of the engine (never NULL) */
        void (*event)(void *userdata, const pcp_event *ev);
} pcpd_pcp_ops;

/* An engine for up to max_mappings mappings (0: the engine's default); ops and userdata
 * must outlive it. Nothing is opened yet. Returns 0 or a negative errno. */
int pcpd_pcp_new(const pcpd_pcp_ops *ops, void *userdata, size_t max_mappings, pcpd_pcp **ret);
/* Frees the engine, the server sockets, the listeners and the timer; NULL is fine. */
pcpd_pcp *pcpd_pcp_free(pcpd_pcp *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_pcp, pcpd_pcp_free)

/* Starts the engine's clock and listens for ANNOUNCE on announce_port (0: a port the
 * kernel picks, for tests); a listener that cannot be opened is warned about, not fatal. */
void pcpd_pcp_start(pcpd_pcp *p, uint16_t announce_port);
/* pcpd stops: no more dropped-datagram lines, the statistics line is logged, the ANNOUNCE
 * listeners close. The engine, its clock and the server sockets stay until
 * pcpd_pcp_free(), so the owner may still call the engine (and drain) until then. */
void pcpd_pcp_stop(pcpd_pcp *p);

/* The engine, for the owner's calls into it (see the top: drain and kick after). */
pcp_engine *pcpd_pcp_engine(pcpd_pcp *p);
/* Sends what the engine has to send and tells its events (ops->event) until it has
 * neither. */
void pcpd_pcp_drain(pcpd_pcp *p);
/* Random bytes from the pool the engine draws from (getrandom() in batches): nonces. */
void pcpd_pcp_random(pcpd_pcp *p, void *buf, size_t len);
/* Arms the timer at the engine's next deadline (nothing before pcpd_pcp_start()). */
void pcpd_pcp_kick(pcpd_pcp *p);

/* A server at addrs[0..n) (the addresses of one server, n ≤ PCP_SERVER_MAX_ADDRS): opens a
 * socket connected to each and adds the server to the engine. text names it in log lines
 * (copied). Returns 0 and its engine id, or a negative errno (warned about when a socket
 * cannot be opened) and nothing is left behind. */
int pcpd_pcp_server_add(pcpd_pcp *p, const struct sockaddr_in6 *addrs, size_t n, const char *text,
                        uint32_t *ret_engine_id);
/* Removes the server from the engine (its mappings are dropped without a datagram: the
 * engine tells each as deleted, drained here) and closes its sockets. */
void pcpd_pcp_server_remove(pcpd_pcp *p, uint32_t engine_id);

/* ---- mappings: the backend's add / remove / info (engine ids; drain after each) ---- */

/* A mapping as params say, on the server params->server_id names: the engine queues its
 * request, which leaves at the owner's next pcpd_pcp_drain(); nothing is told before the id
 * is returned. Returns 0 and its engine id, or a negative errno (the engine's: -EEXIST
 * while a delete under the same nonce is on its way, -ENOSPC, ...) and nothing is queued. */
int pcpd_pcp_mapping_add(pcpd_pcp *p, const pcp_mapping_params *params, uint64_t *ret_id);
/* The mapping goes: deleted upstream (lifetime 0 with its nonce) while it had a grant; its
 * end is told as a MAPPING_DELETED event (deleted_upstream: the server confirmed). */
void pcpd_pcp_mapping_remove(pcpd_pcp *p, uint64_t id);
/* Drops a mapping without telling the server (no event; what it had queued and not yet
 * drained is dropped too). 0, or -ENOENT for an unknown id. */
int pcpd_pcp_mapping_forget(pcpd_pcp *p, uint64_t id);
/* What the engine has for a mapping or a server (its pointers: pcp-engine.h), or NULL. */
const pcp_mapping_info *pcpd_pcp_mapping_info(pcpd_pcp *p, uint64_t id);
const pcp_server_info *pcpd_pcp_server_info(pcpd_pcp *p, uint32_t engine_id);
/* i (a mapping's engine info) in the bus's terms: state ("pending", "active", "renewing",
 * "failed"), error name, addresses, port, lifetime, ExpiresAt on CLOCK_REALTIME. Fills ret
 * (its strings are static); returns false while the mapping is being deleted: nothing of
 * it is to be published then. */
bool pcpd_pcp_info_view(const pcp_mapping_info *i, pcpd_backend_info *ret);
