/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A virtual-clock harness around pcp-engine for the unit tests: captures every datagram
 * the engine sends and every event it emits, feeds it crafted responses (built with
 * pcp-wire) and drives its timers. Randomness comes from a seeded PRNG, so every run is
 * the same.
 *
 * The engine's output is pulled: every h_* function that calls the engine drains it
 * (h_drain()) before it returns, into sent[] and ev[], stamped with the harness's clock. A
 * test that calls the engine itself calls h_drain() after it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp-engine.h"
#include "pcp-wire.h"

#define SEC 1000ULL
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)

typedef struct h_sent {
        uint64_t t;
        uint32_t server_id;
        size_t addr_index;
        size_t len;
        uint8_t *buf;
} h_sent;

typedef struct h_event {
        uint64_t t;
        pcp_event_type type;
        uint64_t mapping_id;
        bool has_mapping;
        pcp_mapping_info mapping;
        void *mapping_userdata;
        bool deleted_upstream;
        uint32_t server_id;
        bool has_server;
        pcp_server_info server;
        bool from_announce;
        bool repeated;
        size_t n_recreated;
} h_event;

typedef struct harness {
        pcp_engine *e;
        uint64_t now;
        uint64_t rng;
        h_sent *sent;
        size_t n_sent, cap_sent;
        h_event *ev;
        size_t n_ev, cap_ev;
        bool record_events;             /* false: only count them (scale tests) */
        size_t ev_count[PCP_EVENT_RECREATE + 1]; /* by pcp_event_type, since the last h_clear() */
} harness;

harness *h_new(uint64_t seed, const pcp_engine_config *cfg);
/* pulls every datagram and event the engine has into sent[] and ev[] */
void h_drain(harness *h);
void h_free(harness *h);
uint64_t h_rand(harness *h);

/* one server address; local is our address toward it */
void h_addr(pcp_server_addr *a, const char *remote, const char *local);
uint32_t h_server(harness *h, const char *remote, const char *local);

void h_params(pcp_mapping_params *p, uint32_t server_id, uint8_t protocol, uint16_t port, uint32_t lifetime);
uint64_t h_map(harness *h, uint32_t server_id, uint8_t protocol, uint16_t port, uint32_t lifetime);

/* fire every deadline up to t (in order), then set the clock to t */
void h_advance_to(harness *h, uint64_t t);
void h_advance(harness *h, uint64_t dt);
/* fire the next deadline (the clock jumps to it); false if there is none */
bool h_step(harness *h);

void h_clear(harness *h);
void h_clear_sent(harness *h);

/* decoding what the engine sent */
bool h_is_natpmp(const h_sent *s);
void h_decode(const h_sent *s, pcp_msg *ret);       /* asserts it is a valid PCP request */
void h_decode_natpmp(const h_sent *s, natpmp_msg *ret);
/* the i-th datagram since the last clear that is a PCP request with this opcode (or
 * any PCP opcode if opcode < 0); NULL if none */
const h_sent *h_find(harness *h, int opcode, size_t i);
size_t h_count(harness *h, int opcode);
const h_sent *h_last(harness *h);
/* the last PCP MAP/PEER request carrying this mapping's nonce */
const h_sent *h_last_for(harness *h, uint64_t mapping_id);
const h_sent *h_first_for(harness *h, uint64_t mapping_id);
size_t h_count_for(harness *h, uint64_t mapping_id);

/* input */
void h_receive(harness *h, uint32_t server_id, size_t addr_index, const uint8_t *buf, size_t len);
void h_receive_msg(harness *h, uint32_t server_id, size_t addr_index, const pcp_msg *m);
void h_receive_natpmp(harness *h, uint32_t server_id, size_t addr_index, const natpmp_msg *n);
/* a response to a MAP/PEER request the engine sent */
void h_make_reply(const h_sent *req, pcp_msg *ret, uint8_t result, uint32_t lifetime, uint32_t epoch,
                  const char *ext_addr, uint16_t ext_port);
void h_reply(harness *h, const h_sent *req, uint8_t result, uint32_t lifetime, uint32_t epoch,
             const char *ext_addr, uint16_t ext_port);
void h_reply_announce(harness *h, const h_sent *req, uint8_t result, uint32_t lifetime, uint32_t epoch);
/* an unsolicited ANNOUNCE on port 5350 */
void h_announce(harness *h, const char *from, uint32_t epoch);
/* a NAT-PMP external address notification on port 5350 (RFC 6886 §3.2.1) */
void h_natpmp_notice(harness *h, const char *from, uint32_t epoch, const char *ext_addr);

/* events */
size_t h_count_events(harness *h, pcp_event_type type, uint64_t mapping_id);
const h_event *h_last_event(harness *h, pcp_event_type type, uint64_t mapping_id);

const pcp_mapping_info *h_mapping(harness *h, uint64_t id);
const pcp_server_info *h_srv(harness *h, uint32_t id);
struct in6_addr h_ip(const char *s);
