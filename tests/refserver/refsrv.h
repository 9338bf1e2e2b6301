/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * refsrv: the project's reference PCP (RFC 6887) + NAT-PMP (RFC 6886) server, sans I/O.
 *
 * No sockets, no clock, no global state. Time comes in as milliseconds on any monotonic
 * scale; randomness comes from a PRNG seeded from the configuration, so a run is
 * reproducible. Datagrams come in through refsrv_receive(); what the server wants to send
 * is queued and taken out with refsrv_pop() once its send time has come.
 *
 * All addresses are struct in6_addr / struct sockaddr_in6; IPv4 endpoints are
 * IPv4-mapped (::ffff:a.b.c.d).
 *
 * Behaviour follows RFC 6887 as a correct server would, answering like miniupnpd where
 * the RFC leaves a choice (INTEROP.md), plus scriptable faults for tests.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp-wire.h"

/* hard limits */
#define REFSRV_MAX_MAPPINGS 4096 /* upper bound for refsrv_config.max_mappings */
#define REFSRV_MAX_CLIENTS 256   /* client addresses remembered (for ANNOUNCE); oldest evicted */
#define REFSRV_MAX_QUEUE 4096    /* datagrams waiting to be sent; more are dropped and counted */
#define REFSRV_MAX_RECORDS 8192  /* request records kept; older ones are overwritten */

#define REFSRV_LIFETIME_DEFAULT UINT32_MAX /* "use the server's default for this result" */

typedef enum refsrv_mode {
        REFSRV_MODE_BOTH,        /* PCP and NAT-PMP (miniupnpd with enable_natpmp=yes) */
        REFSRV_MODE_NATPMP_ONLY, /* PCP requests get the 8-octet 00 80 00 01 <epoch> answer */
        REFSRV_MODE_PCP_ONLY,    /* NAT-PMP requests get a PCP UNSUPP_VERSION answer */
        _REFSRV_MODE_MAX,
} refsrv_mode;

typedef struct refsrv_config {
        struct in6_addr external_addr; /* IPv4-mapped; the NAT's public address */
        bool ipv6_pinholes;            /* answer IPv6 clients as a firewall (external = own
                                        * address and port); false: drop IPv6 requests */
        uint32_t min_lifetime, max_lifetime; /* clamp for granted lifetimes (s) */
        uint16_t port_min, port_max;         /* external port range for IPv4 mappings */
        refsrv_mode mode;
        uint8_t max_version;           /* highest PCP version spoken: 2, or 1 to answer every
                                        * v2 request UNSUPP_VERSION offering version 1 */
        uint64_t seed;                 /* PRNG seed */
        size_t max_mappings;           /* more → NO_RESOURCES */
        uint16_t announce_port;        /* where clients listen for ANNOUNCE (5350) */
        uint32_t short_error_lifetime; /* NETWORK_FAILURE, NO_RESOURCES, USER_EX_QUOTA, ... (30) */
        uint32_t long_error_lifetime;  /* all other errors (1800; 0 = miniupnpd-like) */
        bool allow_third_party;        /* false: THIRD_PARTY → UNSUPP_OPTION */
        bool has_prefix64;             /* answer PREFIX64 requests with prefix64 */
        pcp_prefix64 prefix64;         /* without IPv4 prefix list */
} refsrv_config;

/* Fills cfg with the defaults: external 203.0.113.1, pinholes on, 120..86400 s, ports
 * 1024..65535, both protocols, version 2, seed 1, 256 mappings, announce port 5350,
 * error lifetimes 30 / 1800 s, no THIRD_PARTY, no PREFIX64. */
void refsrv_config_init(refsrv_config *cfg);

typedef struct refsrv refsrv;

/* Returns -EINVAL for an invalid configuration, -ENOMEM. */
int refsrv_new(const refsrv_config *cfg, uint64_t now_ms, refsrv **ret);
refsrv *refsrv_free(refsrv *s); /* accepts NULL, returns NULL */

static inline void refsrv_freep(refsrv **s) {
        refsrv_free(*s);
}
#define _cleanup_refsrv_ __attribute__((cleanup(refsrv_freep)))

/* ---- datagrams ---- */

/* One datagram arriving on the server port. local_addr is the address it was sent to (the
 * server's; replies go out from it). Anything may be passed: malformed input is answered
 * or dropped as the RFCs say, and recorded. */
void refsrv_receive(refsrv *s, uint64_t now_ms, const struct sockaddr_in6 *src,
                    const struct in6_addr *local_addr, const uint8_t *buf, size_t len);

typedef enum refsrv_datagram_kind {
        REFSRV_DATAGRAM_RESPONSE,    /* answer to a request (PCP or NAT-PMP) */
        REFSRV_DATAGRAM_ANNOUNCE,    /* unsolicited ANNOUNCE / NAT-PMP address notice to announce_port */
        REFSRV_DATAGRAM_UNSOLICITED, /* unsolicited MAP/PEER response (RFC 6887 §14.2) */
} refsrv_datagram_kind;

typedef struct refsrv_datagram {
        uint64_t send_at_ms;
        struct sockaddr_in6 dst;
        struct in6_addr local_addr; /* send from this address */
        bool alt_source;            /* spoof: send from another port than the server port */
        refsrv_datagram_kind kind;
        bool malformed;             /* deliberately broken by a fault */
        size_t len;
        uint8_t data[PCP_MAX_MSG_LEN];
} refsrv_datagram;

/* Takes the next datagram due at or before now_ms. Returns 1 and fills *ret, or 0. */
int refsrv_pop(refsrv *s, uint64_t now_ms, refsrv_datagram *ret);

/* The next time refsrv_tick() or refsrv_pop() has something to do; UINT64_MAX if never. */
uint64_t refsrv_next_deadline(const refsrv *s);
/* Expires mappings. Cheap; call it whenever the deadline passes. */
void refsrv_tick(refsrv *s, uint64_t now_ms);

/* ---- state ---- */

typedef struct refsrv_mapping {
        bool natpmp;  /* created by NAT-PMP (no nonce) */
        bool peer;    /* created by PEER */
        uint8_t nonce[PCP_NONCE_LEN];
        uint8_t protocol;
        struct in6_addr internal_addr;
        uint16_t internal_port;
        struct in6_addr external_addr;
        uint16_t external_port;
        struct in6_addr remote_addr; /* PEER */
        uint16_t remote_port;
        uint64_t expires_ms;
        uint32_t lifetime;           /* granted at the last create/renew */
        struct sockaddr_in6 client;  /* where the last request came from */
        struct in6_addr local_addr;
        char description[64];        /* DESCRIPTION, truncated, NUL-terminated */
} refsrv_mapping;

size_t refsrv_n_mappings(const refsrv *s);
const refsrv_mapping *refsrv_get_mapping(const refsrv *s, size_t i); /* NULL if out of range */
/* The current epoch value (seconds since the last (re)start or address change). */
uint32_t refsrv_epoch(const refsrv *s, uint64_t now_ms);
const refsrv_config *refsrv_get_config(const refsrv *s);

/* ---- record of requests ---- */

typedef struct refsrv_record {
        uint64_t time_ms;
        struct sockaddr_in6 src;
        size_t len;
        uint8_t version;    /* first octet; 0 = NAT-PMP */
        uint8_t opcode;     /* without the R bit */
        bool decoded;       /* the fields below come from a fully decoded request */
        uint32_t lifetime;  /* requested */
        uint8_t nonce[PCP_NONCE_LEN];
        uint8_t protocol;
        uint16_t internal_port;
        uint16_t external_port; /* suggested */
        struct in6_addr client_addr;
        bool dropped;           /* request dropped (fault, R bit set, too short, ...) */
        bool response_dropped;  /* answered, but the answer was dropped by a fault */
        bool answered;          /* a response was queued */
        int result;             /* PCP or NAT-PMP result code sent; -1 if none */
        uint32_t result_lifetime;
        uint16_t assigned_port;
        const char *note;       /* static string: why dropped / special handling; may be NULL */
} refsrv_record;

/* Records are numbered from the oldest kept one; refsrv_records_total() counts all ever. */
size_t refsrv_n_records(const refsrv *s);
const refsrv_record *refsrv_get_record(const refsrv *s, size_t i); /* NULL if out of range */
uint64_t refsrv_records_total(const refsrv *s);
void refsrv_clear_records(refsrv *s);

typedef struct refsrv_stats {
        uint64_t received, dropped_requests, dropped_responses, responses, announces,
                unsolicited, malformed_sent, queue_overflows, expired;
} refsrv_stats;
void refsrv_get_stats(const refsrv *s, refsrv_stats *ret);

/* ---- faults and control ---- */

/* Fractions in [0, 1] of requests dropped before processing / responses dropped after
 * processing (state changes happen). -EINVAL if out of range. */
int refsrv_set_drop(refsrv *s, double requests, double responses);
/* Responses (not ANNOUNCEs) leave delay_ms after the request. */
void refsrv_set_delay(refsrv *s, uint64_t delay_ms);

#define REFSRV_RESTART_KEEP_STATE (1u << 0) /* keep mappings (a lease file) */
#define REFSRV_RESTART_ANNOUNCE (1u << 1)   /* send ANNOUNCE to every known client */
/* Epoch restarts at 0; without KEEP_STATE every mapping is lost. */
void refsrv_restart(refsrv *s, uint64_t now_ms, unsigned flags);

/* New external IPv4 address (IPv4-mapped): epoch reset, IPv4 mappings move to it, an
 * ANNOUNCE (PCP clients) or NAT-PMP address notice (NAT-PMP clients) goes to every known
 * client at announce_port, and an unsolicited MAP/PEER response to the client of every
 * PCP mapping. -EINVAL if addr is not IPv4-mapped. */
int refsrv_set_external(refsrv *s, uint64_t now_ms, const struct in6_addr *addr);
/* Sends an ANNOUNCE (epoch unchanged) to every known client now. */
void refsrv_announce(refsrv *s, uint64_t now_ms);
int refsrv_set_mode(refsrv *s, refsrv_mode mode);
int refsrv_set_max_version(refsrv *s, uint8_t version); /* 1 or 2 */

/* Answer the next count requests (0: until cleared) with this PCP result code and
 * lifetime (REFSRV_LIFETIME_DEFAULT: the server's error lifetime), without touching
 * state. NAT-PMP requests get the closest NAT-PMP code. -EINVAL for a bad code. */
int refsrv_force_result(refsrv *s, uint8_t result, unsigned count, uint32_t lifetime);
void refsrv_clear_forced_result(refsrv *s);

typedef enum refsrv_fault {
        REFSRV_FAULT_NONE,
        REFSRV_FAULT_TRUNCATED,      /* cut to a length that is not the message's */
        REFSRV_FAULT_BAD_R_BIT,      /* R bit cleared */
        REFSRV_FAULT_WRONG_NONCE,    /* MAP/PEER nonce altered */
        REFSRV_FAULT_WRONG_OPCODE,   /* opcode altered */
        REFSRV_FAULT_WRONG_PROTOCOL, /* MAP/PEER protocol altered */
        REFSRV_FAULT_WRONG_PORT,     /* MAP/PEER internal port altered */
        REFSRV_FAULT_WRONG_VERSION,  /* version octet altered */
        REFSRV_FAULT_BAD_RESULT,     /* result code 200 */
        REFSRV_FAULT_GARBAGE,        /* random octets of a random length */
        REFSRV_FAULT_SPOOF,          /* the right answer, but from another source port */
        _REFSRV_FAULT_MAX,
} refsrv_fault;

const char *refsrv_fault_to_string(refsrv_fault f); /* "truncated", ..., "spoof" */
int refsrv_fault_from_string(const char *s);       /* -EINVAL if unknown */
const char *refsrv_mode_to_string(refsrv_mode m);  /* "both", "natpmp", "pcp" */
int refsrv_mode_from_string(const char *s);        /* also accepts "natpmp-only", "pcp-only" */

/* The next count responses (0: until cleared) are sent broken this way; with also_valid
 * the correct response follows the broken one. -EINVAL for a bad kind. */
int refsrv_set_fault(refsrv *s, refsrv_fault fault, unsigned count, bool also_valid);
void refsrv_clear_fault(refsrv *s);

/* ---- well-formed answers that are no usable grant ----
 *
 * MAP/PEER SUCCESS answers to requests with a lifetime (creates and renewals; not deletes)
 * and NAT-PMP mapping / external address answers are sent with these fields replaced. The
 * server's own state is what it would be without the fault (the mapping exists, with its
 * real external address and port): it only says something no client can use, like the
 * PCP server that answered a MAP for tcp/18500 with external [::]:0. */
typedef enum refsrv_grant_fault {
        REFSRV_GRANT_OK,
        REFSRV_GRANT_ZERO,          /* external :: and port 0, whatever the family (NAT-PMP:
                                     * port 0, and 0.0.0.0 as the external address) */
        REFSRV_GRANT_ZERO_ADDRESS,  /* the family's all-zeros address (::ffff:0.0.0.0 or ::),
                                     * the real port (NAT-PMP: opcode 0 answers 0.0.0.0) */
        REFSRV_GRANT_ZERO_PORT,     /* the real address, port 0 (NAT-PMP too) */
        REFSRV_GRANT_WRONG_FAMILY,  /* an IPv4 mapping gets 2001:db8::1, an IPv6 one the
                                     * configured IPv4 external address (PCP only) */
        REFSRV_GRANT_LOOPBACK,      /* 127.0.0.1 or ::1 (NAT-PMP: opcode 0 answers 127.0.0.1) */
        REFSRV_GRANT_ZERO_LIFETIME, /* lifetime 0 (NAT-PMP too) */
        _REFSRV_GRANT_MAX,
} refsrv_grant_fault;

/* The next count such answers (0: until cleared) carry this fault; REFSRV_GRANT_OK clears
 * it. -EINVAL for a bad kind. */
int refsrv_set_grant_fault(refsrv *s, refsrv_grant_fault fault, unsigned count);
const char *refsrv_grant_fault_to_string(refsrv_grant_fault f); /* "ok", "zero", "zero-address", ... */
int refsrv_grant_fault_from_string(const char *s);              /* -EINVAL if unknown */

/* Every datagram the server sends (answers, ANNOUNCEs, unsolicited updates, PCP and
 * NAT-PMP alike) carries a random epoch instead of its real one: a server whose epoch
 * claims a state loss with every answer. The state itself is untouched. */
void refsrv_set_random_epoch(refsrv *s, bool on);
