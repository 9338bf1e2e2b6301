/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcp-engine: the RFC 6887 client rules, sans-I/O.
 *
 * The engine owns servers and the upstream state of mappings. It has no sockets, no clock
 * and no main loop: the caller feeds it the time (milliseconds on a monotonic clock) and
 * every datagram received, and pulls out what it has to send and to report.
 *
 * Input: pcp_engine_add_server(), _remove_server(), _add_mapping(), _remove_mapping(),
 * _forget_mapping(), _receive*(), _unreachable() and _process_timers(). None of them sends
 * or reports anything itself, and no callback fires from inside them (the only callback,
 * ops.random, is an input: it must not call the engine). So every server and mapping id a
 * call returns is the caller's before a byte about it leaves.
 *
 * Output, after every input call (or after a batch of them):
 *
 *      while ((n = pcp_engine_next_datagram(e, &server_id, &addr_index, buf, sizeof(buf))) > 0)
 *              send buf[0..n) from the socket of address addr_index of server server_id;
 *      while (pcp_engine_next_event(e, &ev) > 0)
 *              handle ev;
 *      arm the timer for pcp_engine_next_deadline(e); when it fires, call
 *      pcp_engine_process_timers(e, now) and drain again.
 *
 * A call does not queue buffers: it marks the mapping or server concerned, and the datagram
 * or event is built from it when pulled (so both queues are bounded by the number of
 * mappings and servers, and pulling costs no allocation). It follows that:
 *  - a datagram is encoded as its mapping is when pulled, to the address its server uses
 *    then; two requests for one mapping before a pull are one datagram (the later one);
 *  - events come in the order the objects first changed since the last pull, one per
 *    mapping or server however often it changed, saying how it is when pulled (a mapping
 *    that went pending -> failed -> active before the pull is one PCP_EVENT_MAPPING, active);
 *    a PCP_EVENT_MAPPING_DELETED replaces a PCP_EVENT_MAPPING still queued for that mapping,
 *    and a PCP_EVENT_EPOCH_RESET a PCP_EVENT_RECREATE still queued for that server;
 *  - what was not pulled before pcp_engine_remove_server() is dropped for that server
 *    (datagrams, its SERVER, EPOCH_RESET and RECREATE events); its mappings'
 *    MAPPING_DELETED stay.
 * Interleaving pulls with input calls is allowed: nothing is lost, it is only coalesced.
 *
 * Per server, at most config.max_in_flight first requests are unanswered at a time (128 by
 * default: what a default receive buffer holds with room to spare; see the field): beyond
 * it a mapping's first request waits, FIFO, and goes out when an answer or a timeout frees
 * a slot, from inside the call that freed it (pulled as usual). Below the bound nothing
 * waits. Deletes count but never wait; renewals and retransmissions neither. A slot freed
 * by pcp_engine_forget_mapping(), which takes no time, makes pcp_engine_next_deadline()
 * return 0: the waiting request goes at the next pcp_engine_process_timers().
 *
 * Handlers may call the engine (input or output calls) while draining: the event they got
 * is then no longer valid (below), and what their calls cause is pulled by the same loop.
 * The read-only accessors (pcp_engine_mapping_get(), _mapping_request_options(),
 * _server_get(), _mapping_count(), _next_deadline(), _get_stats()) never invalidate
 * anything.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp-wire.h"

#define PCP_SERVER_MAX_ADDRS 8
#define PCP_NEVER UINT64_MAX

typedef struct pcp_engine pcp_engine;

typedef enum pcp_server_state {
        PCP_SERVER_UNKNOWN,     /* nothing heard yet */
        PCP_SERVER_PCP,         /* answers PCP version 2 */
        PCP_SERVER_NATPMP,      /* answered a PCP request in NAT-PMP (version 0) */
        PCP_SERVER_DISABLED,    /* answered NOT_AUTHORIZED: PCP implemented but off */
        PCP_SERVER_UNREACHABLE, /* ICMP unreachable from every address */
        PCP_SERVER_UNSUPPORTED, /* offers only a PCP version we do not speak */
        _PCP_SERVER_STATE_MAX,
} pcp_server_state;

/* pcp_mapping_state and pcp_mapping_error are one octet each (packed): they are in every
 * mapping's info, and 4 octets each made pcp_mapping_info 8 octets longer. */
typedef enum __attribute__((packed)) pcp_mapping_state {
        PCP_MAPPING_PENDING,  /* requested, no answer yet (or being recreated) */
        PCP_MAPPING_ACTIVE,   /* granted */
        PCP_MAPPING_RENEWING, /* granted, renewal sent, no answer yet */
        PCP_MAPPING_FAILED,   /* the server refused or is unreachable; retried later */
        PCP_MAPPING_DELETING, /* delete (lifetime 0) sent */
        _PCP_MAPPING_STATE_MAX,
} pcp_mapping_state;

/* Why a mapping is not (or no longer) active, beyond the server's result codes. */
typedef enum __attribute__((packed)) pcp_mapping_error {
        PCP_MAPPING_ERROR_NONE,
        PCP_MAPPING_ERROR_RESULT,      /* see pcp_mapping_info.result */
        PCP_MAPPING_ERROR_UNREACHABLE, /* ICMP unreachable */
        PCP_MAPPING_ERROR_EXPIRED,     /* not renewed in time: the server stopped answering */
        PCP_MAPPING_ERROR_DISABLED,    /* the server has PCP turned off (NOT_AUTHORIZED) */
        PCP_MAPPING_ERROR_UNSUPPORTED, /* the server cannot do this (e.g. NAT-PMP and not TCP/UDP) */
        /* The server answered SUCCESS, but with nothing an application could hand to a peer
         * (see grant_problem() in pcp-engine.c). The request stays outstanding: it is
         * retransmitted on the RFC 6887 §8.1.1 schedule with the same nonce. */
        PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS, /* :: or 0.0.0.0 (NAT-PMP: the gateway has none) */
        PCP_MAPPING_ERROR_WRONG_FAMILY,        /* IPv6 for an IPv4 mapping or the reverse */
        PCP_MAPPING_ERROR_UNUSABLE_ADDRESS,    /* loopback, link-local, multicast, broadcast... */
        PCP_MAPPING_ERROR_NO_EXTERNAL_PORT,    /* port 0 for a mapping of one port */
        PCP_MAPPING_ERROR_SHORT_LIFETIME,      /* granted for less than 4 s (0 included) */
        _PCP_MAPPING_ERROR_MAX,
} pcp_mapping_error;

typedef enum pcp_drop_reason {
        PCP_DROP_MALFORMED,      /* the codec refused it */
        PCP_DROP_WRONG_SOURCE,   /* not from the server address and port the request went to */
        PCP_DROP_WRONG_VERSION,  /* a version we did not send and cannot use */
        PCP_DROP_WRONG_OPCODE,   /* nothing outstanding with this opcode */
        PCP_DROP_UNKNOWN_NONCE,  /* no mapping with this nonce */
        PCP_DROP_MISMATCH,       /* nonce known, protocol or internal port differ */
        PCP_DROP_UNSOLICITED,    /* a response to nothing we asked and not a valid update */
        PCP_DROP_UNKNOWN_SERVER, /* an ANNOUNCE from an address that is none of our servers */
        PCP_DROP_AMBIGUOUS,      /* a NAT-PMP error in the 8-octet form (no port) while several
                                  * requests of that opcode were outstanding */
        PCP_DROP_UNUSABLE,       /* a SUCCESS nothing asked for that names no usable external
                                  * address, port or lifetime: an unsolicited MAP/PEER update
                                  * (the grant held stays) or a NAT-PMP external address of
                                  * 0.0.0.0 (asked again on the retransmission schedule) */
        PCP_DROP_STRAY_ICMP,     /* an ICMP error (pcp_engine_unreachable()) while nothing is
                                  * asked of the server, or nothing went to it for 2 s */
        _PCP_DROP_MAX,
} pcp_drop_reason;

typedef struct pcp_server_addr {
        struct sockaddr_in6 remote; /* IPv4 as IPv4-mapped; port 0 means 5351 */
        struct in6_addr local;      /* our address toward it: connect() + getsockname() */
} pcp_server_addr;

typedef struct pcp_server_info {
        uint32_t id;
        pcp_server_state state;
        size_t n_addrs;
        pcp_server_addr addrs[PCP_SERVER_MAX_ADDRS];
        size_t current_addr; /* the one in use (RFC 7488: sticky once it answered) */
        bool epoch_known;
        uint32_t epoch;        /* last server epoch seen */
        bool address_mismatch; /* the server saw another source address: double NAT? */
        /* A request to it (any: a mapping's, a renewal, a delete, a probe) has been
         * unanswered for 20 s with nothing at all heard from it since that request went,
         * and requests to it were outstanding all along (one dropped unanswered, with
         * nothing else asked, stops the count; the next request starts it anew): it
         * stopped answering (or never did). Its state stays what it was (a PCP server
         * keeps its mappings, asked on their schedules); anything heard from it (not an
         * ANNOUNCE on port 5350, which anyone can send) clears it. */
        bool silent;
        /* engine time (ms) the first unanswered request of its last silence went: set as it
         * turns silent (so that it has been asked in vain for now - silent_since), and kept
         * when it is heard again (so that the SERVER event that clears `silent` tells how
         * long it went unanswered). 0: never silent. */
        uint64_t silent_since;
        bool has_external_addr;
        struct in6_addr external_addr; /* last external address seen (MAP or NAT-PMP) */
        uint8_t last_result;
        uint64_t disabled_until; /* engine time (ms), DISABLED only */
        size_t n_mappings;
        uint32_t n_in_flight;    /* requests counting toward config.max_in_flight (see there) */
        uint32_t n_waiting;      /* first requests waiting for one of those slots */
        uint8_t n_prefix64;      /* RFC 7225, from the last response that carried any */
        pcp_prefix64 prefix64[2]; /* ipv4_prefixes lists are not kept (always NULL) */
} pcp_server_info;

typedef struct pcp_mapping_params {
        uint32_t server_id;
        uint8_t opcode; /* PCP_OPCODE_MAP or PCP_OPCODE_PEER */
        uint8_t protocol;
        uint16_t internal_port;
        uint16_t suggested_external_port;
        struct in6_addr suggested_external_addr; /* :: or ::ffff:0.0.0.0 = none */
        uint32_t lifetime;                       /* requested, seconds (> 0) */
        /* PEER */
        uint16_t remote_port;
        struct in6_addr remote_addr;
        /* options */
        bool has_third_party;
        struct in6_addr third_party;
        bool prefer_failure;
        uint8_t n_filters;
        pcp_filter filters[PCP_MAX_FILTERS];
        const char *description; /* copied; NULL = none; valid UTF-8, <= 1016 octets */
        bool has_port_set;
        pcp_port_set port_set;
        /* restore after a daemon restart: reuse the nonce and ask for what we had */
        bool has_nonce;
        uint8_t nonce[PCP_NONCE_LEN];
        /* the caller's, handed back with the mapping's events (pcp_event.mapping_userdata;
         * pcp_engine_mapping_set_userdata() changes it) */
        void *userdata;
        /* a mapping the caller removed before it restarted and whose delete the server
         * never confirmed: only its delete (lifetime 0, this nonce) goes out, as after
         * pcp_engine_remove_mapping(); needs has_nonce. -ENOTCONN when the server is known
         * to hear nothing (disabled, unsupported): nothing is made then. */
        bool delete_only;
} pcp_mapping_params;

/* in every mapping: ordered so that it has no holes (104 octets). A PEER's remote address
 * is not here: it is what was asked (pcp_mapping_params.remote_addr), kept apart by the
 * engine with the other rare options. */
typedef struct pcp_mapping_info {
        uint64_t id;
        uint64_t expires_at;       /* engine time (ms) the grant runs out; 0 = none */
        uint64_t next_send;        /* engine time (ms) of the next request; PCP_NEVER = none */
        uint32_t server_id;
        uint32_t lifetime_requested;
        uint32_t lifetime_granted; /* seconds, from the last success */
        uint32_t retransmissions;  /* since the current request began */
        struct in6_addr internal_addr;
        struct in6_addr external_addr;
        uint8_t nonce[PCP_NONCE_LEN];
        uint16_t internal_port;
        uint16_t suggested_external_port;
        uint16_t external_port;
        uint16_t remote_port;
        pcp_mapping_state state;
        pcp_mapping_error error;
        uint8_t result;            /* last result code received (error == RESULT) */
        bool natpmp;               /* driven with NAT-PMP */
        uint8_t opcode, protocol;
        bool has_external;         /* granted at least once since (re)creation */
} pcp_mapping_info;

typedef enum pcp_event_type {
        PCP_EVENT_MAPPING,         /* a mapping's info changed (state, external, lifetime, error) */
        PCP_EVENT_MAPPING_DELETED, /* a mapping is gone; its id is unknown from now on */
        PCP_EVENT_SERVER,          /* a server's state, epoch, external address or silence changed */
        /* A server lost its state (an answer's epoch says so); its mappings are being
         * recreated. An ANNOUNCE or NAT-PMP notice never says so itself (anyone on the link
         * can send one): it has the mappings asked again (PCP_EVENT_RECREATE), and the
         * first answer that reveals the reset gives this event, from_announce, with no
         * second recreation when nothing was answered since the ANNOUNCE. */
        PCP_EVENT_EPOCH_RESET,
        /* A server said something changed, with no sign that it lost its state (an ANNOUNCE;
         * a NAT-PMP external address notification from a PCP server, which miniupnpd sends
         * on SIGUSR1 after its WAN address changed, just before an ANNOUNCE with its epoch
         * reset; one from a NAT-PMP server whose epoch looks like a restart): its mappings
         * are being asked again, each after a random delay of up to
         * config.announce_delay_max (RFC 6887 §14.1.3). Rate-limited as the recreations
         * are (config.recreate_interval): at most one per interval, however many datagrams
         * say so. The epoch of an ANNOUNCE or notice is never taken (the answers' is); when
         * it looks like a reset, a recreation started at once is told at its first answer:
         * EPOCH_RESET if that answer's epoch confirms the reset, else this event. Never both
         * for one recreation. */
        PCP_EVENT_RECREATE,
} pcp_event_type;

/* What pcp_engine_next_event() fills in. The pointers are the engine's: valid until the
 * next call into the engine other than a read-only accessor (see the top). `mapping` of a
 * MAPPING event is the mapping's live info (pcp_engine_mapping_get(mapping_id)); that of a
 * MAPPING_DELETED event is its last info, kept for the event: the id is already unknown to
 * pcp_engine_mapping_get(). */
typedef struct pcp_event {
        pcp_event_type type;
        uint64_t mapping_id;               /* MAPPING, MAPPING_DELETED */
        const pcp_mapping_info *mapping;   /* MAPPING, MAPPING_DELETED */
        void *mapping_userdata;            /* MAPPING, MAPPING_DELETED: the mapping's
                                            * userdata (pcp_mapping_params) */
        bool deleted_upstream;             /* MAPPING_DELETED: the server confirmed */
        uint32_t server_id;                /* all */
        const pcp_server_info *server;     /* SERVER, EPOCH_RESET, RECREATE, MAPPING;
                                            * MAPPING_DELETED: NULL if the server was removed */
        bool from_announce;                /* EPOCH_RESET: revealed by the answers to the
                                            * recreation an ANNOUNCE (or a NAT-PMP notification)
                                            * started; RECREATE: always (nothing else recreates
                                            * without a reset) */
        bool repeated;                     /* EPOCH_RESET: not the first EPOCH_RESET of its
                                            * episode (the server kept looking reset: see
                                            * recreate_interval); RECREATE: not the first
                                            * EPOCH_RESET or RECREATE of its episode (it kept
                                            * announcing changes, or announced one while a
                                            * reset was being dealt with) */
        size_t n_recreated;                /* EPOCH_RESET, RECREATE: how many of the server's
                                            * mappings are being asked again (not those being
                                            * deleted, nor the one whose answer revealed a reset) */
} pcp_event;

typedef struct pcp_engine_ops {
        /* Fills buf with random bytes (nonces, retransmission jitter, renewal times). An
         * input, like the clock: it must not call the engine. NULL = the kernel's
         * (getrandom(), drawn 256 octets at a time). Tests and benchmarks pass a seeded
         * generator to replay a run. */
        void (*random)(void *userdata, void *buf, size_t len);
} pcp_engine_ops;

/* the largest datagram pcp_engine_next_datagram() produces */
#define PCP_ENGINE_DATAGRAM_MAX PCP_MAX_MSG_LEN

typedef struct pcp_engine_config {
        /* all in milliseconds; 0 = the RFC / PROTOCOL.md default */
        uint64_t irt;                  /* initial retransmission time: 3 s (at most 2^30 ms) */
        uint64_t mrt;                  /* maximum retransmission time: 1024 s (at most 2^30 ms) */
        uint64_t short_error_floor;    /* short error with lifetime 0: 30 s */
        uint64_t long_error_floor;     /* long error with lifetime 0: 30 min */
        uint64_t disabled_floor;       /* NOT_AUTHORIZED cache: 30 min */
        uint64_t error_retry_max;      /* cap on any wait taken from a server's error lifetime
                                        * (mapping retry, NOT_AUTHORIZED cache): 30 min */
        uint64_t announce_delay_max;   /* random delay before recreating after ANNOUNCE: 5 s */
        uint64_t recreate_interval;    /* at least this long between two recreations of one
                                        * server's mappings, whatever it says: 5 s; doubled
                                        * while it keeps claiming losses within it, up to ... */
        uint64_t recreate_interval_max; /* ... this: 320 s */
        uint64_t pcp_reprobe;          /* NAT-PMP / unsupported server: PCP probed again after 30 min */
        uint32_t delete_attempts;      /* delete requests sent without answer before giving up: 3
                                        * (at most 65535) */
        size_t max_mappings;           /* 0 = 131070 * 2 */
        /* Requests in flight per server: 0 = 128. Every request expects an answer, and the
         * answers to a burst arrive together: beyond what the caller's receive buffer holds
         * they are dropped, and each drop costs a retransmission timeout (3 s). The buffer
         * charges each answer its skb truesize (~768 octets for a 60-80 octet datagram), so
         * the default 212,992 octets (net.core.rmem_max caps what pcpd may ask for without
         * CAP_NET_ADMIN) holds ~270: 128 leaves room for what does not wait (below).
         *
         * A request is in flight from its first transmission until it is answered, or its
         * first retransmission timeout passes (it counts as lost then: its retransmissions
         * go on, on the RFC schedule, without counting), or the mapping is restarted,
         * failed or gone. What counts and what waits:
         *  - first requests (a new mapping, a restored one, a recreation after an epoch
         *    reset or ANNOUNCE, a retry after an error or an expiry, a move to NAT-PMP)
         *    count, and wait when max_in_flight are in flight or others wait already:
         *    FIFO per server, sent as slots come back (answers, timeouts) before the call
         *    that freed them returns. Below the bound nothing waits: the first request of a
         *    small batch goes at once, as before. A waiting mapping is PENDING (or as it
         *    was), awaiting nothing, with no timer; removing one that was never sent sends
         *    nothing (MAPPING_DELETED at once); one that may be held upstream (restored,
         *    recreated) sends its delete.
         *  - deletes count but never wait (the caller may be shutting down, and a queued
         *    delete it never pulls leaks a mapping on the router): a mass removal holds new
         *    first requests back until its answers are in, not the other way round.
         *  - renewals neither count nor wait: the renewal window (RFC 6887 §11.2.1, a random
         *    point in an eighth of the lifetime, kept per mapping) spreads them already,
         *    a grant running out must not queue behind new mappings, and their timer fires
         *    at the next renewal step, not after one retransmission timeout.
         *  - retransmissions and probes neither count nor wait. */
        uint32_t max_in_flight;
} pcp_engine_config;

typedef struct pcp_engine_stats {
        /* received: datagrams and ICMP errors handed in (pcp_engine_receive*(),
         * _receive_announce*(), _unreachable()); what was dropped of them is in dropped[] */
        uint64_t sent, received, retransmissions, renewals;
        uint64_t dropped[_PCP_DROP_MAX];
        uint64_t epoch_resets;
} pcp_engine_stats;

/* config and ops may be NULL (defaults; the kernel's randomness). */
int pcp_engine_new(const pcp_engine_config *config, const pcp_engine_ops *ops, void *userdata,
                   pcp_engine **ret);
/* Frees everything, what was not pulled included; NULL is fine. Returns NULL. */
pcp_engine *pcp_engine_free(pcp_engine *e);

/* Servers. Adding one queues an ANNOUNCE probe at once to learn whether and how it speaks. */
int pcp_engine_add_server(pcp_engine *e, uint64_t now, const pcp_server_addr *addrs, size_t n_addrs,
                          uint32_t *ret_id);
/* Forgets a server; its mappings are dropped without packets (the network is gone) and
 * reported as PCP_EVENT_MAPPING_DELETED with deleted_upstream false; whatever of the
 * server's own was not pulled yet is dropped. */
int pcp_engine_remove_server(pcp_engine *e, uint64_t now, uint32_t server_id);
const pcp_server_info *pcp_engine_server_get(pcp_engine *e, uint32_t server_id);

/* Mappings. Adding one queues its request at once (or fails it at once, with a
 * PCP_EVENT_MAPPING, when its server is known to refuse it: disabled, unsupported, NAT-PMP
 * and not TCP/UDP over IPv4); its info (pcp_engine_mapping_get()) is its state from the
 * return on, events report its changes after that. -ENOSPC at config.max_mappings, deleted
 * mappings whose MAPPING_DELETED event has not been pulled included. */
int pcp_engine_add_mapping(pcp_engine *e, uint64_t now, const pcp_mapping_params *params, uint64_t *ret_id);
/* Deletes upstream (lifetime 0, same nonce); the mapping stays until the server confirms
 * or the attempts run out, then PCP_EVENT_MAPPING_DELETED (at once, without a packet, when
 * its server is known to hear nothing). */
int pcp_engine_remove_mapping(pcp_engine *e, uint64_t now, uint64_t mapping_id);
/* Forgets a mapping without telling the server: no event, and its datagram and event not
 * pulled yet are dropped. */
int pcp_engine_forget_mapping(pcp_engine *e, uint64_t mapping_id);
const pcp_mapping_info *pcp_engine_mapping_get(pcp_engine *e, uint64_t mapping_id);
/* The options mapping_id's request carries as it would go now (its first request, a
 * renewal, a retry: what an UNSUPP_OPTION answer refused; a delete's when it is being
 * deleted), as encoded: PCP_HAS_* bits (pcp-wire.h) in *ret_options, how many FILTER
 * options in *ret_n_filters. A NAT-PMP mapping carries none. -ENOENT: no such mapping.
 * Read-only. */
int pcp_engine_mapping_request_options(pcp_engine *e, uint64_t mapping_id, uint32_t *ret_options,
                                       uint8_t *ret_n_filters);
/* The userdata its events carry from now on (it may be being deleted); -ENOENT when the id
 * is unknown (the mapping is gone: its MAPPING_DELETED event was pulled). */
int pcp_engine_mapping_set_userdata(pcp_engine *e, uint64_t mapping_id, void *userdata);
size_t pcp_engine_mapping_count(pcp_engine *e);

/* Input. */
void pcp_engine_receive(pcp_engine *e, uint64_t now, uint32_t server_id, size_t addr_index,
                        const struct sockaddr_in6 *from, const uint8_t *buf, size_t len);
/* The same, for a datagram that arrived at rx (engine time, <= now; later values are taken
 * as now), e.g. from the socket's SO_TIMESTAMP: the server's epoch is checked against the
 * client time at arrival (RFC 6887 §8.5), so a datagram that waited in the socket while the
 * caller was busy does not look like a server that lost its state. */
void pcp_engine_receive_at(pcp_engine *e, uint64_t now, uint64_t rx, uint32_t server_id, size_t addr_index,
                           const struct sockaddr_in6 *from, const uint8_t *buf, size_t len);
/* A datagram on the ANNOUNCE port (5350, unicast or multicast): PCP ANNOUNCE or a NAT-PMP
 * external address notification. Anyone on the link can send one in a server's name, so
 * its epoch is never taken: a PCP ANNOUNCE to a server not known to speak PCP (UNKNOWN,
 * UNREACHABLE) only starts its ANNOUNCE probe (at most once a second), whose answer sets
 * its state and epoch; to a PCP server it has every mapping asked again (RFC 6887
 * §14.1.3; PCP_EVENT_RECREATE), whose answers set the epoch and tell whether the server
 * lost its state. A NAT-PMP notice only makes a NAT-PMP server asked for its address
 * (likewise), and its mappings asked again if its epoch looks like a restart (RFC 6886
 * §3.6; the answers tell, as for an ANNOUNCE), and an UNREACHABLE one probed (as its
 * NAT-PMP answers do: a gateway back from a restart). */
void pcp_engine_receive_announce(pcp_engine *e, uint64_t now, const struct sockaddr_in6 *from,
                                 const uint8_t *buf, size_t len);
void pcp_engine_receive_announce_at(pcp_engine *e, uint64_t now, uint64_t rx, const struct sockaddr_in6 *from,
                                    const uint8_t *buf, size_t len);
/* ICMP port/host unreachable (ECONNREFUSED, EHOSTUNREACH...) on that address' socket.
 * A real one answers a datagram sent moments ago; anyone who knows the socket's ports can
 * forge one. So it counts only while a request to the server is outstanding (a mapping's,
 * a delete, a probe, a NAT-PMP address request) and one went to it within the last 2 s;
 * otherwise it is dropped and counted (PCP_DROP_STRAY_ICMP) and changes nothing. */
void pcp_engine_unreachable(pcp_engine *e, uint64_t now, uint32_t server_id, size_t addr_index);

/* Time. */
uint64_t pcp_engine_next_deadline(pcp_engine *e);
void pcp_engine_process_timers(pcp_engine *e, uint64_t now);

/* Output (see the top). The oldest datagram waiting, encoded into buf; it goes to address
 * *ret_addr_index of server *ret_server_id, from that address' socket. Returns its length,
 * 0 when none is left, -ENOBUFS when it does not fit in size octets (it stays first; none
 * is longer than PCP_ENGINE_DATAGRAM_MAX). Counted in pcp_engine_stats.sent. */
int pcp_engine_next_datagram(pcp_engine *e, uint32_t *ret_server_id, size_t *ret_addr_index, uint8_t *buf,
                             size_t size);
/* The oldest event waiting into *ret: 1, 0 when none is left. */
int pcp_engine_next_event(pcp_engine *e, pcp_event *ret);

const pcp_engine_stats *pcp_engine_get_stats(pcp_engine *e);

/* RFC 6887 §8.5: is a server epoch of cur_epoch at client time cur_ms consistent with the
 * previous one (prev_epoch at prev_ms)? Times in milliseconds, epochs in seconds. */
bool pcp_epoch_valid(uint32_t prev_epoch, uint64_t prev_ms, uint32_t cur_epoch, uint64_t cur_ms);
/* RFC 6886 §3.6: the NAT-PMP variant (the server's seconds must advance at least 7/8 as fast). */
bool natpmp_epoch_valid(uint32_t prev_epoch, uint64_t prev_ms, uint32_t cur_epoch, uint64_t cur_ms);

const char *pcp_server_state_to_string(pcp_server_state s); /* "unknown", "pcp", "nat-pmp", ... */
const char *pcp_drop_reason_to_string(pcp_drop_reason r);
/* "" for NONE, the RFC result name for RESULT, else "UNREACHABLE", "EXPIRED", "DISABLED", "UNSUPPORTED",
 * "NO_EXTERNAL_ADDRESS", "WRONG_ADDRESS_FAMILY", "UNUSABLE_EXTERNAL_ADDRESS", "NO_EXTERNAL_PORT",
 * "SHORT_LIFETIME" */
const char *pcp_mapping_error_name(const pcp_mapping_info *m);
