/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-pcp: the PCP/NAT-PMP backend. It holds the manager's mappings on the manager's
 * servers through the sans-I/O engine (pcp-engine.h) and owns everything the engine needs
 * from the outside world:
 *   - one connected UDP socket per server address, read in batches (recvmmsg()) by a
 *     GSource of its own, each datagram handed to the engine with its kernel arrival time;
 *   - the ANNOUNCE listeners (IPv4 and IPv6, the configured port, 5350 by default);
 *   - the engine's clock: one timer GSource armed at the engine's next deadline;
 *   - its randomness (getrandom() in batches, not one system call per draw);
 *   - the log of datagrams the engine dropped (at most one line a minute) and the
 *     statistics line at the end.
 * It speaks the engine's language so that the manager does not: the engine's ids are kept
 * here, both ways in O(1) (a server's part hangs off pcpd_server.pcp and is found from the
 * engine's server id through a hash table; a mapping's off pcpd_mapping.pcp, found from its
 * engine id the same way), and the engine's requests are built here from the mapping. It
 * knows nothing of the manager (its objects are handles it reads: pcpd-mapping.h,
 * pcpd-server.h), of the bus or of sd-bus.
 *
 * Calls go down, news goes up:
 *   - The owner (the manager) adds and removes servers and mappings here. After a call that
 *     adds, it calls pcpd_pcp_drain() once it has recorded what it added (calls that remove
 *     drain themselves), and after any call that may move the engine's next deadline,
 *     pcpd_pcp_kick().
 *   - The engine's events go up to ops, translated (pcpd_backend_events), in the engine's order,
 *     from inside pcpd_pcp_drain() and the calls that drain: so from the owner's own calls
 *     and from the main loop (socket input, ANNOUNCE, the timer). The datagrams the engine
 *     queued before an event are on the wire before the event is told. A callback may call
 *     back in here (events then nest, as the engine's own order allows), but must not free
 *     the pcpd_pcp.
 *   - Nothing is told from inside pcpd_pcp_server_add() or pcpd_pcp_mapping_add(): the
 *     handle is known here before the call returns; the request leaves at the next drain.
 *   - An event for a mapping this module does not know (one the owner detached, a delete
 *     nobody waits for) is dropped here; a server's news for an engine server id it does
 *     not know goes up with s NULL.
 *   - After input and timers the module drains and re-arms the timer itself.
 *
 * Engine time is the monotonic clock in milliseconds (g_get_monotonic_time() / 1000, the
 * same as pcpd_now_ms()).
 *
 * Cost: per datagram received, no allocation and no system call beyond its share of one
 * recvmmsg() (up to 16 per call, until the socket is empty); per datagram sent, its share of
 * one sendmmsg() per socket and drain (pcpd-sendq.h: up to 32 a call).
 * Re-arming the timer (pcpd-timer.h) costs no system call from the loop's own dispatches,
 * where pcpd calls it from; g_source_set_ready_time() cost a wake-up each. Per mapping
 * one small record (its engine id and handle), in one hash table.
 */

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp-engine.h"
#include "pcpd-backend-events.h"
#include "pcpd-backend-info.h"
#include "pcpd-mapping.h"
#include "pcpd-server.h"
#include "pcpd-state.h"

typedef struct pcpd_pcp pcpd_pcp;

/* An engine for up to max_mappings mappings (0: the engine's default); ops and userdata
 * must outlive it; every callback must be set. Nothing is opened yet. Returns 0 or a
 * negative errno. */
int pcpd_pcp_new(const pcpd_backend_events *ops, void *userdata, size_t max_mappings, pcpd_pcp **ret);
/* Frees the engine, the server sockets, the listeners and the timer; NULL is fine. The
 * owner's handles (pcpd_server.pcp, pcpd_mapping.pcp) are not touched: it may have freed
 * its servers and mappings first, and must not use them with this module again. */
pcpd_pcp *pcpd_pcp_free(pcpd_pcp *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_pcp, pcpd_pcp_free)

/* Starts the engine's clock and listens for ANNOUNCE on announce_port (0: a port the
 * kernel picks, for tests); a listener that cannot be opened is warned about, not fatal. */
void pcpd_pcp_start(pcpd_pcp *p, uint16_t announce_port);
/* pcpd stops: no more dropped-datagram lines, the statistics line is logged, the ANNOUNCE
 * listeners close, and nothing more comes from the main loop: the server sockets are no
 * longer read and the engine's clock stops (no retransmission, no renewal), so no news is
 * told unless the owner calls in. The engine and the server sockets stay until
 * pcpd_pcp_free(), so the owner may still call in (and drain: what it removes is still
 * sent) until then. */
void pcpd_pcp_stop(pcpd_pcp *p);

/* Sends what the engine has to send and tells its events (ops) until it has neither. */
void pcpd_pcp_drain(pcpd_pcp *p);
/* Random bytes from the pool the engine draws from (getrandom() in batches): nonces. */
void pcpd_pcp_random(pcpd_pcp *p, void *buf, size_t len);
/* Arms the timer at the engine's next deadline (nothing before pcpd_pcp_start()). */
void pcpd_pcp_kick(pcpd_pcp *p);

/* ---- servers ---- */

/* Server s (its addresses s->addrs[0..s->n_addrs), named s->text in log lines): opens a
 * socket connected to each address and adds the server to the engine; s->pcp is set. s
 * must stay until pcpd_pcp_server_remove(). Returns 0, or a negative errno (warned about
 * when a socket cannot be opened) and nothing is left behind. Nothing is told before it
 * returns; the probe leaves at the next drain. */
int pcpd_pcp_server_add(pcpd_pcp *p, pcpd_server *s);
/* Removes s from the engine (its mappings are dropped without a datagram: each is told as
 * lost, drained here, unless detached before) and closes its sockets; s->pcp is cleared.
 * A server never added: nothing happens. */
void pcpd_pcp_server_remove(pcpd_pcp *p, pcpd_server *s);
/* What the engine has for s (state, addresses, external address, PREFIX64; the engine's
 * pointer, valid until the next call in here), or NULL: Manager.Servers and Prefix64. */
const pcp_server_info *pcpd_pcp_server_info(pcpd_pcp *p, const pcpd_server *s);
/* The engine's server state in the daemon's terms (pcpd-server.h). */
pcpd_server_state pcpd_pcp_server_state_of(pcp_server_state st);
/* What Manager.Servers and Prefix64 show of s (pcpd-server.h): false when the engine does
 * not know s. */
bool pcpd_pcp_server_view(pcpd_pcp *p, const pcpd_server *s, pcpd_server_view *ret);
/* Whether the engine knows s (added here and not removed). */
bool pcpd_pcp_server_known(pcpd_pcp *p, const pcpd_server *s);
/* s's state (PCPD_SERVER_UNKNOWN also when the engine does not know s). */
pcpd_server_state pcpd_pcp_server_state(pcpd_pcp *p, const pcpd_server *s);
/* The external address s last told (MAP or NAT-PMP): false when none. */
bool pcpd_pcp_server_external(pcpd_pcp *p, const pcpd_server *s, struct in6_addr *ret);
/* The host's address toward each of s's addresses (where a mapping made there may point):
 * up to max of them; returns how many. */
size_t pcpd_pcp_server_local_addresses(pcpd_pcp *p, const pcpd_server *s, struct in6_addr *ret, size_t max);

/* ---- mappings: the backend's add / remove / info ---- */

/* mp on server s, as mp's caller asked for it (pcpd-mapping.h), with mp's nonce
 * (mp->has_nonce must be set: its record is on disk before the request leaves) and
 * suggested_external (NULL: mp's own wish, if any) as the external address asked for. The
 * engine queues the request; it leaves at the next drain; nothing is told before this
 * returns. Returns 0 (mp->pcp set), or a negative errno (the engine's: -EEXIST while a
 * delete under the same nonce is on its way, -ENOSPC, ...) and nothing is queued. */
int pcpd_pcp_mapping_add(pcpd_pcp *p, pcpd_mapping *mp, pcpd_server *s, const struct in6_addr *suggested_external);
/* Whether the engine holds mp (mp->pcp set). */
bool pcpd_pcp_mapping_held(const pcpd_mapping *mp);
/* mp's engine mapping in the bus's terms: state ("pending", "active", "renewing",
 * "failed"), error name, addresses, port, lifetime, ExpiresAt on CLOCK_REALTIME (its
 * strings are static); false when the engine does not hold mp or it is being deleted
 * (nothing of it is to be published then). */
bool pcpd_pcp_mapping_view(pcpd_pcp *p, const pcpd_mapping *mp, pcpd_backend_info *ret);
/* For the log line of a mapping its server refused with UNSUPP_OPTION, whose answer does
 * not say which option: into buf (one line, no final period), the options mp's request
 * carries, e.g. "the server does not support one of the options the request carried:
 * THIRD_PARTY, PREFER_FAILURE", or, when it carries none a server must process, that the
 * answer is odd. "" when mp has no engine mapping here. */
void pcpd_pcp_mapping_unsupp_option_text(pcpd_pcp *p, const pcpd_mapping *mp, char *buf, size_t size);
/* When the engine holds mp: true, and until when (CLOCK_REALTIME µs) it may still exist
 * upstream after a delete that is never confirmed (what it was granted or a request in
 * flight may still get). */
bool pcpd_pcp_mapping_delete_until(pcpd_pcp *p, const pcpd_mapping *mp, uint64_t *ret);
/* mp goes: deleted upstream (lifetime 0 with its nonce) while it had a grant, drained
 * here. cookie ≠ 0: ops->deleting_done(cookie) tells the end of that delete; 0: nobody
 * waits for it. A cookie still in use by an earlier delete passes to this one: the
 * earlier one's end is then told to nobody. mp->pcp is cleared at once. Nothing happens when the engine does not hold
 * mp. */
void pcpd_pcp_mapping_remove(pcpd_pcp *p, pcpd_mapping *mp, uint64_t cookie);
/* mp lets go of its engine mapping without a word to the engine: its server is about to
 * be removed, which drops it (nothing is told of it then). mp->pcp is cleared. */
void pcpd_pcp_mapping_detach(pcpd_pcp *p, pcpd_mapping *mp);

/* ---- deletes of what is held no more ---- */

/* After a restart: the delete of a mapping removed before it (rec: a deleting record with
 * its nonce) on server s goes out again, told under cookie (ops->deleting_done). 0, or a
 * negative errno (nothing sent; -ENOTCONN: s is known to hear nothing; -EEXIST: a delete
 * under cookie is on its way already). */
int pcpd_pcp_delete_saved(pcpd_pcp *p, const pcpd_state_mapping *rec, pcpd_server *s, uint64_t cookie);
/* The delete under cookie is given up (the mapping has expired upstream by now): the
 * engine forgets it without a datagram; nothing is told. An unknown cookie: nothing. */
void pcpd_pcp_delete_forget(pcpd_pcp *p, uint64_t cookie);
