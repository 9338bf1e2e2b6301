/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "refsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MS_PER_SEC 1000u

typedef struct refsrv_client {
        struct sockaddr_in6 addr; /* port unused: ANNOUNCEs go to announce_port */
        struct in6_addr local_addr;
        bool pcp, natpmp;
        uint64_t last_seen_ms;
} refsrv_client;

struct refsrv {
        refsrv_config cfg;
        uint64_t epoch_start_ms;
        uint64_t rng;

        refsrv_mapping *mappings; /* cfg.max_mappings entries */
        size_t n_mappings;

        refsrv_client clients[REFSRV_MAX_CLIENTS];
        size_t n_clients;

        refsrv_datagram **queue; /* REFSRV_MAX_QUEUE entries, sorted by send_at_ms, stable */
        size_t n_queue;

        refsrv_record *records; /* ring of REFSRV_MAX_RECORDS */
        size_t records_start, n_records;
        uint64_t records_total;

        double drop_requests, drop_responses;
        uint64_t delay_ms;

        bool forced;
        uint8_t forced_result;
        unsigned forced_left; /* 0 with forced set: unlimited */
        uint32_t forced_lifetime;

        refsrv_fault fault;
        unsigned fault_left; /* 0 with a fault set: unlimited */
        bool fault_also_valid;

        refsrv_grant_fault grant_fault;
        unsigned grant_fault_left; /* 0 with a fault set: unlimited */
        bool random_epoch;

        refsrv_stats stats;
};

/* ---- small helpers ---- */

static uint64_t rng_next(refsrv *s) {
        /* splitmix64 */
        uint64_t z = (s->rng += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

/* Consumes randomness only for fractions strictly between 0 and 1, so tests that use 0
 * or 1 do not shift the sequence. */
static bool rng_chance(refsrv *s, double p) {
        if (p <= 0.0)
                return false;
        if (p >= 1.0)
                return true;
        return (double) (rng_next(s) >> 11) * 0x1.0p-53 < p;
}

static bool addr_eq(const struct in6_addr *a, const struct in6_addr *b) {
        return memcmp(a, b, sizeof(*a)) == 0;
}

static bool sockaddr_same_host(const struct sockaddr_in6 *a, const struct sockaddr_in6 *b) {
        return addr_eq(&a->sin6_addr, &b->sin6_addr) && a->sin6_scope_id == b->sin6_scope_id;
}

static uint32_t clamp_lifetime(const refsrv *s, uint32_t requested) {
        if (requested < s->cfg.min_lifetime)
                return s->cfg.min_lifetime;
        if (requested > s->cfg.max_lifetime)
                return s->cfg.max_lifetime;
        return requested;
}

static uint32_t remaining_s(const refsrv_mapping *m, uint64_t now_ms) {
        uint64_t r;

        if (m->expires_ms <= now_ms)
                return 0;
        r = (m->expires_ms - now_ms + MS_PER_SEC - 1) / MS_PER_SEC;
        return r > UINT32_MAX ? UINT32_MAX : (uint32_t) r;
}

static uint32_t error_lifetime(const refsrv *s, uint8_t result) {
        return pcp_result_classify(result) == PCP_RESULT_CLASS_SHORT_ERROR ? s->cfg.short_error_lifetime
                                                                           : s->cfg.long_error_lifetime;
}

static bool protocol_supported(uint8_t p) {
        return p == 6 || p == 17 || p == 33 || p == 132; /* TCP, UDP, DCCP, SCTP */
}

/* ---- configuration ---- */

void refsrv_config_init(refsrv_config *cfg) {
        struct in_addr v4 = { .s_addr = htonl(0xcb007101) }; /* 203.0.113.1 */

        memset(cfg, 0, sizeof(*cfg));
        pcp_addr_from_ipv4(&v4, &cfg->external_addr);
        cfg->ipv6_pinholes = true;
        cfg->min_lifetime = 120;
        cfg->max_lifetime = 86400;
        cfg->port_min = 1024;
        cfg->port_max = 65535;
        cfg->mode = REFSRV_MODE_BOTH;
        cfg->max_version = PCP_VERSION;
        cfg->seed = 1;
        cfg->max_mappings = 256;
        cfg->announce_port = PCP_CLIENT_PORT;
        cfg->short_error_lifetime = 30;
        cfg->long_error_lifetime = 1800;
}

static bool config_valid(const refsrv_config *cfg) {
        if (!pcp_addr_is_ipv4(&cfg->external_addr) || pcp_addr_is_unspecified(&cfg->external_addr))
                return false;
        if (cfg->min_lifetime == 0 || cfg->min_lifetime > cfg->max_lifetime)
                return false;
        if (cfg->port_min == 0 || cfg->port_min > cfg->port_max)
                return false;
        if ((unsigned) cfg->mode >= _REFSRV_MODE_MAX)
                return false;
        if (cfg->max_version != 1 && cfg->max_version != PCP_VERSION)
                return false;
        if (cfg->max_mappings == 0 || cfg->max_mappings > REFSRV_MAX_MAPPINGS)
                return false;
        if (cfg->announce_port == 0)
                return false;
        if (cfg->has_prefix64 && (cfg->prefix64.prefix_len % 8 != 0 || cfg->prefix64.prefix_len < 32 ||
                                  cfg->prefix64.prefix_len > 96 ||
                                  cfg->prefix64.suffix_len != 12 - cfg->prefix64.prefix_len / 8 ||
                                  cfg->prefix64.has_ipv4_list))
                return false;
        return true;
}

int refsrv_new(const refsrv_config *cfg, uint64_t now_ms, refsrv **ret) {
        refsrv *s;

        if (cfg == NULL || ret == NULL || !config_valid(cfg))
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (s == NULL)
                return -ENOMEM;
        s->cfg = *cfg;
        s->cfg.prefix64.ipv4_prefixes = NULL;
        s->epoch_start_ms = now_ms;
        s->rng = cfg->seed;
        s->mappings = calloc(cfg->max_mappings, sizeof(*s->mappings));
        s->queue = calloc(REFSRV_MAX_QUEUE, sizeof(*s->queue));
        s->records = calloc(REFSRV_MAX_RECORDS, sizeof(*s->records));
        if (s->mappings == NULL || s->queue == NULL || s->records == NULL) {
                refsrv_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

refsrv *refsrv_free(refsrv *s) {
        if (s == NULL)
                return NULL;
        if (s->queue != NULL)
                for (size_t i = 0; i < s->n_queue; i++)
                        free(s->queue[i]);
        free(s->queue);
        free(s->mappings);
        free(s->records);
        free(s);
        return NULL;
}

const refsrv_config *refsrv_get_config(const refsrv *s) {
        return &s->cfg;
}

uint32_t refsrv_epoch(const refsrv *s, uint64_t now_ms) {
        uint64_t e = now_ms > s->epoch_start_ms ? (now_ms - s->epoch_start_ms) / MS_PER_SEC : 0;
        return e > UINT32_MAX ? UINT32_MAX : (uint32_t) e;
}

/* the epoch a datagram sent now carries (refsrv_set_random_epoch()) */
static uint32_t epoch_out(refsrv *s, uint64_t now_ms) {
        return s->random_epoch ? (uint32_t) rng_next(s) : refsrv_epoch(s, now_ms);
}

static const char *const grant_fault_names[_REFSRV_GRANT_MAX] = {
        [REFSRV_GRANT_OK] = "ok",
        [REFSRV_GRANT_ZERO] = "zero",
        [REFSRV_GRANT_ZERO_ADDRESS] = "zero-address",
        [REFSRV_GRANT_ZERO_PORT] = "zero-port",
        [REFSRV_GRANT_WRONG_FAMILY] = "wrong-family",
        [REFSRV_GRANT_LOOPBACK] = "loopback",
        [REFSRV_GRANT_ZERO_LIFETIME] = "zero-lifetime",
};

/* The grant fault for the answer being built, counted; REFSRV_GRANT_OK when none. */
static refsrv_grant_fault take_grant_fault(refsrv *s) {
        refsrv_grant_fault f = s->grant_fault;

        if (f != REFSRV_GRANT_OK && s->grant_fault_left > 0 && --s->grant_fault_left == 0)
                s->grant_fault = REFSRV_GRANT_OK;
        return f;
}

/* ---- records ---- */

static refsrv_record *record_new(refsrv *s, uint64_t now_ms, const struct sockaddr_in6 *src, const uint8_t *buf,
                                 size_t len) {
        refsrv_record *r;

        if (s->n_records < REFSRV_MAX_RECORDS)
                r = &s->records[(s->records_start + s->n_records++) % REFSRV_MAX_RECORDS];
        else {
                r = &s->records[s->records_start];
                s->records_start = (s->records_start + 1) % REFSRV_MAX_RECORDS;
        }
        s->records_total++;

        memset(r, 0, sizeof(*r));
        r->time_ms = now_ms;
        r->src = *src;
        r->len = len;
        r->version = len >= 1 ? buf[0] : 0;
        r->opcode = len >= 2 ? buf[1] & 0x7f : 0;
        r->result = -1;
        return r;
}

size_t refsrv_n_records(const refsrv *s) {
        return s->n_records;
}

const refsrv_record *refsrv_get_record(const refsrv *s, size_t i) {
        if (i >= s->n_records)
                return NULL;
        return &s->records[(s->records_start + i) % REFSRV_MAX_RECORDS];
}

uint64_t refsrv_records_total(const refsrv *s) {
        return s->records_total;
}

void refsrv_clear_records(refsrv *s) {
        s->records_start = 0;
        s->n_records = 0;
}

void refsrv_get_stats(const refsrv *s, refsrv_stats *ret) {
        *ret = s->stats;
}

static void record_from_pcp(refsrv_record *r, const pcp_msg *m) {
        r->lifetime = m->lifetime;
        memcpy(r->nonce, m->nonce, PCP_NONCE_LEN);
        r->protocol = m->protocol;
        r->internal_port = m->internal_port;
        r->external_port = m->external_port;
        r->client_addr = m->client_addr;
}

/* ---- clients ---- */

static void client_seen(refsrv *s, uint64_t now_ms, const struct sockaddr_in6 *src, const struct in6_addr *local,
                        bool natpmp) {
        refsrv_client *c = NULL;

        for (size_t i = 0; i < s->n_clients; i++)
                if (sockaddr_same_host(&s->clients[i].addr, src)) {
                        c = &s->clients[i];
                        break;
                }
        if (c == NULL) {
                if (s->n_clients < REFSRV_MAX_CLIENTS)
                        c = &s->clients[s->n_clients++];
                else {
                        /* evict the one not heard from for longest */
                        c = &s->clients[0];
                        for (size_t i = 1; i < s->n_clients; i++)
                                if (s->clients[i].last_seen_ms < c->last_seen_ms)
                                        c = &s->clients[i];
                }
                memset(c, 0, sizeof(*c));
                c->addr = *src;
        }
        c->local_addr = *local;
        c->last_seen_ms = now_ms;
        if (natpmp)
                c->natpmp = true;
        else
                c->pcp = true;
}

/* ---- output queue ---- */

static void queue_push(refsrv *s, const refsrv_datagram *d) {
        refsrv_datagram *n;
        size_t pos;

        if (s->n_queue >= REFSRV_MAX_QUEUE) {
                s->stats.queue_overflows++;
                return;
        }
        n = malloc(sizeof(*n));
        if (n == NULL) {
                s->stats.queue_overflows++;
                return;
        }
        *n = *d;
        pos = s->n_queue;
        while (pos > 0 && s->queue[pos - 1]->send_at_ms > n->send_at_ms)
                pos--;
        memmove(s->queue + pos + 1, s->queue + pos, (s->n_queue - pos) * sizeof(*s->queue));
        s->queue[pos] = n;
        s->n_queue++;
}

int refsrv_pop(refsrv *s, uint64_t now_ms, refsrv_datagram *ret) {
        refsrv_datagram *d;

        if (s->n_queue == 0 || s->queue[0]->send_at_ms > now_ms)
                return 0;
        d = s->queue[0];
        memmove(s->queue, s->queue + 1, (s->n_queue - 1) * sizeof(*s->queue));
        s->n_queue--;
        *ret = *d;
        free(d);
        return 1;
}

/* ---- mappings ---- */

uint64_t refsrv_next_deadline(const refsrv *s) {
        uint64_t t = UINT64_MAX;

        if (s->n_queue > 0)
                t = s->queue[0]->send_at_ms;
        for (size_t i = 0; i < s->n_mappings; i++)
                if (s->mappings[i].expires_ms < t)
                        t = s->mappings[i].expires_ms;
        return t;
}

static void mapping_remove(refsrv *s, size_t i) {
        memmove(s->mappings + i, s->mappings + i + 1, (s->n_mappings - i - 1) * sizeof(*s->mappings));
        s->n_mappings--;
}

void refsrv_tick(refsrv *s, uint64_t now_ms) {
        for (size_t i = 0; i < s->n_mappings;)
                if (s->mappings[i].expires_ms <= now_ms) {
                        mapping_remove(s, i);
                        s->stats.expired++;
                } else
                        i++;
}

size_t refsrv_n_mappings(const refsrv *s) {
        return s->n_mappings;
}

const refsrv_mapping *refsrv_get_mapping(const refsrv *s, size_t i) {
        return i < s->n_mappings ? &s->mappings[i] : NULL;
}

static refsrv_mapping *mapping_find(refsrv *s, bool peer, const struct in6_addr *internal, uint8_t protocol,
                                    uint16_t port, const struct in6_addr *remote, uint16_t remote_port) {
        for (size_t i = 0; i < s->n_mappings; i++) {
                refsrv_mapping *m = &s->mappings[i];

                if (m->peer != peer || m->protocol != protocol || m->internal_port != port ||
                    !addr_eq(&m->internal_addr, internal))
                        continue;
                if (peer && (m->remote_port != remote_port || !addr_eq(&m->remote_addr, remote)))
                        continue;
                return m;
        }
        return NULL;
}

static bool is_pinhole(const struct in6_addr *internal) {
        return !pcp_addr_is_ipv4(internal);
}

static bool external_port_taken(const refsrv *s, uint8_t protocol, uint16_t port) {
        for (size_t i = 0; i < s->n_mappings; i++) {
                const refsrv_mapping *m = &s->mappings[i];

                if (m->protocol == protocol && m->external_port == port && !is_pinhole(&m->internal_addr))
                        return true;
        }
        return false;
}

/* Picks an external port for a new IPv4 mapping: the suggested one if it is free, else
 * (unless prefer_failure) the internal port, else the next free one after the wanted port
 * (miniupnpd's rule). Returns a PCP result code. */
static uint8_t allocate_port(refsrv *s, uint8_t protocol, uint16_t suggested, uint16_t internal,
                             bool prefer_failure, uint16_t *ret) {
        uint32_t lo = s->cfg.port_min, hi = s->cfg.port_max, span = hi - lo + 1, start;
        uint16_t want = suggested != 0 ? suggested : internal;

        if (suggested != 0 && suggested >= lo && suggested <= hi && !external_port_taken(s, protocol, suggested)) {
                *ret = suggested;
                return PCP_RESULT_SUCCESS;
        }
        if (suggested != 0 && prefer_failure)
                return PCP_RESULT_CANNOT_PROVIDE_EXTERNAL;
        if (want >= lo && want <= hi)
                start = want - lo;
        else
                start = (uint32_t) (rng_next(s) % span);
        for (uint32_t k = 0; k < span; k++) {
                uint16_t p = (uint16_t) (lo + (start + k) % span);
                if (!external_port_taken(s, protocol, p)) {
                        *ret = p;
                        return PCP_RESULT_SUCCESS;
                }
        }
        return PCP_RESULT_NO_RESOURCES;
}

/* The external port a PEER mapping shares with an existing mapping of the same internal
 * endpoint, or 0. */
static uint16_t shared_external_port(const refsrv *s, const struct in6_addr *internal, uint8_t protocol,
                                     uint16_t port) {
        for (size_t i = 0; i < s->n_mappings; i++) {
                const refsrv_mapping *m = &s->mappings[i];
                if (m->protocol == protocol && m->internal_port == port && addr_eq(&m->internal_addr, internal))
                        return m->external_port;
        }
        return 0;
}

/* ---- sending ---- */

static void corrupt(refsrv *s, refsrv_fault f, refsrv_datagram *d) {
        bool pcp = d->len >= PCP_HEADER_LEN && d->data[0] != NATPMP_VERSION;
        uint8_t op = d->len >= 2 ? d->data[1] & 0x7f : 0;
        bool has_body = pcp && d->data[0] == PCP_VERSION && (op == PCP_OPCODE_MAP || op == PCP_OPCODE_PEER) &&
                        d->len >= PCP_HEADER_LEN + PCP_MAP_BODY_LEN;
        bool natpmp_map = !pcp && d->len >= 16 && (op == NATPMP_OPCODE_MAP_UDP || op == NATPMP_OPCODE_MAP_TCP);

        d->malformed = true;
        switch (f) {
        case REFSRV_FAULT_TRUNCATED:
                d->len = d->len > 4 ? d->len - 4 : 1;
                return;
        case REFSRV_FAULT_BAD_R_BIT:
                d->data[1] &= 0x7f;
                return;
        case REFSRV_FAULT_WRONG_NONCE:
                if (has_body) {
                        d->data[PCP_HEADER_LEN] ^= 0xff;
                        return;
                }
                break; /* no nonce: alter the opcode instead */
        case REFSRV_FAULT_WRONG_PROTOCOL:
                if (has_body) {
                        d->data[PCP_HEADER_LEN + 12] ^= 0x01;
                        return;
                }
                if (natpmp_map) {
                        d->data[1] ^= 0x03; /* UDP <-> TCP */
                        return;
                }
                break;
        case REFSRV_FAULT_WRONG_PORT: {
                size_t at = has_body ? PCP_HEADER_LEN + 16 : natpmp_map ? 8 : 0;
                if (at != 0) {
                        uint16_t p = (uint16_t) ((d->data[at] << 8 | d->data[at + 1]) + 1);
                        d->data[at] = (uint8_t) (p >> 8);
                        d->data[at + 1] = (uint8_t) p;
                        return;
                }
                break;
        }
        case REFSRV_FAULT_WRONG_VERSION:
                d->data[0] = d->data[0] == NATPMP_VERSION ? 1 : 3;
                return;
        case REFSRV_FAULT_BAD_RESULT:
                if (pcp)
                        d->data[3] = 200;
                else if (d->len >= 4) {
                        d->data[2] = 0;
                        d->data[3] = 200;
                }
                return;
        case REFSRV_FAULT_GARBAGE:
                d->len = 1 + (size_t) (rng_next(s) % PCP_MAX_MSG_LEN);
                for (size_t i = 0; i < d->len; i++)
                        d->data[i] = (uint8_t) rng_next(s);
                return;
        case REFSRV_FAULT_SPOOF:
                d->alt_source = true;
                return;
        case REFSRV_FAULT_WRONG_OPCODE:
        case REFSRV_FAULT_NONE:
        case _REFSRV_FAULT_MAX:
                break;
        }
        /* WRONG_OPCODE, and the fallback of the kinds that need a field the message lacks:
         * 0 -> 1, 1 -> 2, 2 -> 1 (PCP and NAT-PMP alike) */
        if (d->len >= 2)
                d->data[1] = (uint8_t) ((d->data[1] & 0x80) | (op == 1 ? 2 : op == 2 ? 1 : op == 0 ? 1 : 0));
}

static void send_datagram(refsrv *s, uint64_t send_at, const struct sockaddr_in6 *dst, const struct in6_addr *local,
                          refsrv_datagram_kind kind, const uint8_t *buf, size_t len) {
        refsrv_datagram d = {
                .send_at_ms = send_at,
                .dst = *dst,
                .local_addr = *local,
                .kind = kind,
                .len = len,
        };

        if (len > sizeof(d.data))
                return;
        memcpy(d.data, buf, len);

        if (kind == REFSRV_DATAGRAM_RESPONSE && s->fault != REFSRV_FAULT_NONE) {
                refsrv_datagram bad = d;
                bool also_valid = s->fault_also_valid;

                corrupt(s, s->fault, &bad);
                queue_push(s, &bad);
                s->stats.malformed_sent++;
                if (s->fault_left > 0 && --s->fault_left == 0)
                        refsrv_clear_fault(s);
                if (!also_valid)
                        return;
        }
        queue_push(s, &d);
        if (kind == REFSRV_DATAGRAM_RESPONSE)
                s->stats.responses++;
        else if (kind == REFSRV_DATAGRAM_ANNOUNCE)
                s->stats.announces++;
        else
                s->stats.unsolicited++;
}

typedef struct request_ctx {
        uint64_t now_ms;
        const struct sockaddr_in6 *src;
        const struct in6_addr *local;
        refsrv_record *rec;
} request_ctx;

/* Queues an answer to the current request, unless a fault drops it. */
static void respond(refsrv *s, const request_ctx *c, const uint8_t *buf, size_t len) {
        c->rec->answered = true;
        if (rng_chance(s, s->drop_responses)) {
                c->rec->response_dropped = true;
                s->stats.dropped_responses++;
                return;
        }
        send_datagram(s, c->now_ms + s->delay_ms, c->src, c->local, REFSRV_DATAGRAM_RESPONSE, buf, len);
}

static bool take_forced(refsrv *s, uint8_t *ret_result, uint32_t *ret_lifetime) {
        if (!s->forced)
                return false;
        *ret_result = s->forced_result;
        *ret_lifetime = s->forced_lifetime != REFSRV_LIFETIME_DEFAULT ? s->forced_lifetime
                                                                      : error_lifetime(s, s->forced_result);
        if (s->forced_result == PCP_RESULT_SUCCESS && s->forced_lifetime == REFSRV_LIFETIME_DEFAULT)
                *ret_lifetime = 0;
        if (s->forced_left > 0 && --s->forced_left == 0)
                s->forced = false;
        return true;
}

/* ---- PCP ---- */

/* Which options go back (RFC 6887 §7.3 and the option definitions): the ones processed —
 * THIRD_PARTY, PREFER_FAILURE, FILTER, DESCRIPTION — and PREFIX64 when configured (with
 * the server's prefix). Unknown optional options and PORT_SET (not implemented) are
 * ignored and so not echoed. */
static void response_options(const refsrv *s, pcp_msg *m, bool keep) {
        bool want_prefix64 = m->n_prefix64 > 0;

        m->n_unknown = 0;
        m->options &= ~PCP_HAS_PORT_SET;
        m->n_prefix64 = 0;
        if (!keep) {
                m->options = 0;
                m->n_filters = 0;
                return;
        }
        if (want_prefix64 && s->cfg.has_prefix64) {
                m->prefix64[0] = s->cfg.prefix64;
                m->n_prefix64 = 1;
        }
}

static void pcp_send(refsrv *s, const request_ctx *c, const pcp_msg *req, uint8_t result, uint32_t lifetime,
                     bool keep_options) {
        pcp_msg resp = *req;
        uint8_t buf[PCP_MAX_MSG_LEN];
        uint8_t real_opcode = req->opcode;
        size_t len;
        pcp_wire_error r;

        resp.response = true;
        resp.result = result;
        resp.lifetime = lifetime;
        resp.epoch = epoch_out(s, c->now_ms);
        memset(&resp.client_addr, 0, sizeof(resp.client_addr));
        response_options(s, &resp, keep_options);
        if (resp.version == PCP_VERSION && resp.opcode > PCP_OPCODE_PEER)
                resp.opcode = PCP_OPCODE_ANNOUNCE; /* header only; the real opcode is patched in below */

        r = pcp_encode(&resp, buf, sizeof(buf), &len);
        if (r != PCP_WIRE_OK && keep_options) {
                response_options(s, &resp, false);
                r = pcp_encode(&resp, buf, sizeof(buf), &len);
        }
        if (r != PCP_WIRE_OK) {
                c->rec->note = "response could not be encoded";
                return;
        }
        /* the codec refuses opcodes it does not know; an UNSUPP_OPCODE answer echoes it */
        buf[1] = (uint8_t) (0x80 | (real_opcode & 0x7f));

        c->rec->result = result;
        c->rec->result_lifetime = lifetime;
        if (req->opcode == PCP_OPCODE_MAP || req->opcode == PCP_OPCODE_PEER)
                c->rec->assigned_port = result == PCP_RESULT_SUCCESS ? req->external_port : 0;
        respond(s, c, buf, len);
}

static void pcp_error(refsrv *s, const request_ctx *c, const pcp_msg *req, uint8_t result, bool keep_options) {
        pcp_send(s, c, req, result, error_lifetime(s, result), keep_options);
}

/* UNSUPP_VERSION offering cfg.max_version (RFC 6887 §9). An answer of version 2 carries
 * the request's opcode body when the request can be read as version 2, so that a client
 * can match it; a version 1 answer is the bare header. */
static void pcp_unsupp_version(refsrv *s, const request_ctx *c, const uint8_t *buf, size_t len,
                               uint32_t lifetime) {
        uint8_t copy[PCP_MAX_MSG_LEN];
        size_t n = len > PCP_MAX_MSG_LEN ? PCP_MAX_MSG_LEN : len & ~(size_t) 3;
        pcp_msg m;

        pcp_msg_init(&m, false, len >= 2 ? buf[1] & 0x7f : 0);
        if (s->cfg.max_version == PCP_VERSION && n >= PCP_HEADER_LEN) {
                memcpy(copy, buf, n);
                copy[0] = PCP_VERSION;
                if (pcp_decode(copy, n, false, &m) != PCP_WIRE_OK)
                        /* keep the header and whatever body fields could be read */
                        m.options = 0;
        }
        m.version = s->cfg.max_version;
        m.opcode = len >= 2 ? buf[1] & 0x7f : 0;
        pcp_send(s, c, &m, PCP_RESULT_UNSUPP_VERSION, lifetime, false);
}

static void fill_mapping_response(pcp_msg *m, const refsrv_mapping *map) {
        m->external_port = map->external_port;
        m->external_addr = map->external_addr;
}

static void store_description(refsrv_mapping *m, const pcp_msg *req) {
        size_t n;

        if (!(req->options & PCP_HAS_DESCRIPTION))
                return;
        n = req->description_len < sizeof(m->description) - 1 ? req->description_len : sizeof(m->description) - 1;
        memcpy(m->description, req->description, n);
        m->description[n] = '\0';
}

/* Deletes every MAP mapping of an internal address (and protocol, unless 0) whose nonce
 * matches (RFC 6887 §15: a delete with internal port 0). */
static void delete_all(refsrv *s, const struct in6_addr *internal, uint8_t protocol, const uint8_t *nonce) {
        for (size_t i = 0; i < s->n_mappings;) {
                refsrv_mapping *m = &s->mappings[i];
                if (!m->peer && !m->natpmp && addr_eq(&m->internal_addr, internal) &&
                    (protocol == 0 || m->protocol == protocol) && memcmp(m->nonce, nonce, PCP_NONCE_LEN) == 0)
                        mapping_remove(s, i);
                else
                        i++;
        }
}

/* A MAP/PEER SUCCESS about to be sent with a grant fault (refsrv_set_grant_fault()). */
static void spoil_grant(refsrv *s, const request_ctx *c, pcp_msg *resp, uint32_t *lifetime) {
        refsrv_grant_fault f = take_grant_fault(s);
        bool v4 = pcp_addr_is_ipv4(&resp->external_addr);

        switch (f) {
        case REFSRV_GRANT_OK:
        case _REFSRV_GRANT_MAX:
                return;
        case REFSRV_GRANT_ZERO:
                memset(&resp->external_addr, 0, sizeof(resp->external_addr));
                resp->external_port = 0;
                break;
        case REFSRV_GRANT_ZERO_ADDRESS:
                memset(&resp->external_addr, 0, sizeof(resp->external_addr));
                if (v4)
                        resp->external_addr.s6_addr[10] = resp->external_addr.s6_addr[11] = 0xff;
                break;
        case REFSRV_GRANT_ZERO_PORT:
                resp->external_port = 0;
                break;
        case REFSRV_GRANT_WRONG_FAMILY:
                if (v4)
                        (void) pcp_addr_from_string("2001:db8::1", &resp->external_addr);
                else
                        resp->external_addr = s->cfg.external_addr;
                break;
        case REFSRV_GRANT_LOOPBACK:
                (void) pcp_addr_from_string(v4 ? "127.0.0.1" : "::1", &resp->external_addr);
                break;
        case REFSRV_GRANT_ZERO_LIFETIME:
                *lifetime = 0;
                break;
        }
        c->rec->note = grant_fault_names[f];
}

static void handle_map_peer(refsrv *s, const request_ctx *c, pcp_msg *req) {
        bool peer = req->opcode == PCP_OPCODE_PEER;
        bool prefer_failure = !peer && (req->options & PCP_HAS_PREFER_FAILURE);
        const struct in6_addr *internal = (req->options & PCP_HAS_THIRD_PARTY) ? &req->third_party : &req->client_addr;
        struct in6_addr external;
        refsrv_mapping *m;
        uint32_t lifetime;

        if (req->options & PCP_HAS_THIRD_PARTY) {
                if (!s->cfg.allow_third_party) {
                        c->rec->note = "THIRD_PARTY not allowed";
                        pcp_error(s, c, req, PCP_RESULT_UNSUPP_OPTION, true);
                        return;
                }
                if (pcp_addr_is_unspecified(&req->third_party)) {
                        pcp_error(s, c, req, PCP_RESULT_MALFORMED_OPTION, true);
                        return;
                }
        }

        /* protocol and port rules (RFC 6887 §11.1, §12.1) */
        if (req->protocol == 0) {
                if (peer || req->internal_port != 0) {
                        pcp_error(s, c, req, PCP_RESULT_MALFORMED_REQUEST, true);
                        return;
                }
                if (req->lifetime != 0) {
                        /* no "all protocols" mappings here */
                        pcp_error(s, c, req, PCP_RESULT_UNSUPP_PROTOCOL, true);
                        return;
                }
                delete_all(s, internal, 0, req->nonce);
                pcp_send(s, c, req, PCP_RESULT_SUCCESS, 0, true);
                return;
        }
        if (!protocol_supported(req->protocol)) {
                pcp_error(s, c, req, PCP_RESULT_UNSUPP_PROTOCOL, true);
                return;
        }
        if (req->internal_port == 0) {
                if (peer || req->lifetime != 0) {
                        pcp_error(s, c, req, PCP_RESULT_MALFORMED_REQUEST, true);
                        return;
                }
                delete_all(s, internal, req->protocol, req->nonce);
                pcp_send(s, c, req, PCP_RESULT_SUCCESS, 0, true);
                return;
        }
        if (peer && (req->remote_port == 0 || pcp_addr_is_unspecified(&req->remote_addr) ||
                     pcp_addr_is_ipv4(&req->remote_addr) != pcp_addr_is_ipv4(internal))) {
                pcp_error(s, c, req, PCP_RESULT_MALFORMED_REQUEST, true);
                return;
        }
        if (is_pinhole(internal) && !s->cfg.ipv6_pinholes) {
                pcp_error(s, c, req, PCP_RESULT_NO_RESOURCES, true);
                return;
        }

        external = is_pinhole(internal) ? *internal : s->cfg.external_addr;
        if (!pcp_addr_is_unspecified(&req->external_addr) && !addr_eq(&req->external_addr, &external) &&
            prefer_failure) {
                pcp_error(s, c, req, PCP_RESULT_CANNOT_PROVIDE_EXTERNAL, true);
                return;
        }

        m = mapping_find(s, peer, internal, req->protocol, req->internal_port, &req->remote_addr, req->remote_port);

        /* a mapping belongs to its nonce (RFC 6887 §11.3); NAT-PMP mappings have none */
        if (m != NULL && (m->natpmp || memcmp(m->nonce, req->nonce, PCP_NONCE_LEN) != 0)) {
                c->rec->note = m->natpmp ? "mapping belongs to a NAT-PMP client" : "nonce mismatch";
                pcp_send(s, c, req, PCP_RESULT_NOT_AUTHORIZED, remaining_s(m, c->now_ms), true);
                return;
        }

        if (req->lifetime == 0) {
                if (m == NULL) {
                        c->rec->note = "delete of an unknown mapping";
                        pcp_send(s, c, req, PCP_RESULT_SUCCESS, 0, true);
                        return;
                }
                fill_mapping_response(req, m);
                mapping_remove(s, (size_t) (m - s->mappings));
                pcp_send(s, c, req, PCP_RESULT_SUCCESS, 0, true);
                return;
        }

        lifetime = clamp_lifetime(s, req->lifetime);

        if (m != NULL) {
                /* renewal */
                if (prefer_failure && req->external_port != 0 && req->external_port != m->external_port) {
                        pcp_error(s, c, req, PCP_RESULT_CANNOT_PROVIDE_EXTERNAL, true);
                        return;
                }
                c->rec->note = "renewal";
        } else {
                uint16_t port;
                uint8_t r;

                if (s->n_mappings >= s->cfg.max_mappings) {
                        c->rec->note = "mapping table full";
                        pcp_error(s, c, req, PCP_RESULT_NO_RESOURCES, true);
                        return;
                }
                if (is_pinhole(internal)) {
                        if (prefer_failure && req->external_port != 0 && req->external_port != req->internal_port) {
                                pcp_error(s, c, req, PCP_RESULT_CANNOT_PROVIDE_EXTERNAL, true);
                                return;
                        }
                        port = req->internal_port;
                } else {
                        port = peer ? shared_external_port(s, internal, req->protocol, req->internal_port) : 0;
                        r = PCP_RESULT_SUCCESS;
                        if (port == 0)
                                r = allocate_port(s, req->protocol, req->external_port, req->internal_port,
                                                  prefer_failure, &port);
                        if (r != PCP_RESULT_SUCCESS) {
                                pcp_error(s, c, req, r, true);
                                return;
                        }
                }
                m = &s->mappings[s->n_mappings++];
                memset(m, 0, sizeof(*m));
                m->peer = peer;
                memcpy(m->nonce, req->nonce, PCP_NONCE_LEN);
                m->protocol = req->protocol;
                m->internal_addr = *internal;
                m->internal_port = req->internal_port;
                m->external_addr = external;
                m->external_port = port;
                m->remote_addr = req->remote_addr;
                m->remote_port = req->remote_port;
        }

        m->lifetime = lifetime;
        m->expires_ms = c->now_ms + (uint64_t) lifetime * MS_PER_SEC;
        m->client = *c->src;
        m->local_addr = *c->local;
        store_description(m, req);

        fill_mapping_response(req, m);
        spoil_grant(s, c, req, &lifetime);
        pcp_send(s, c, req, PCP_RESULT_SUCCESS, lifetime, true);
}

static uint8_t wire_error_to_result(pcp_wire_error e) {
        switch (e) {
        case PCP_WIRE_ERR_OPCODE:
                return PCP_RESULT_UNSUPP_OPCODE;
        case PCP_WIRE_ERR_OPTION_UNKNOWN_MANDATORY:
                return PCP_RESULT_UNSUPP_OPTION;
        case PCP_WIRE_ERR_OPTION_TRUNCATED:
        case PCP_WIRE_ERR_OPTION_LENGTH:
        case PCP_WIRE_ERR_OPTION_OPCODE:
        case PCP_WIRE_ERR_OPTION_DUPLICATE:
        case PCP_WIRE_ERR_OPTION_VALUE:
        case PCP_WIRE_ERR_LIMIT:
                return PCP_RESULT_MALFORMED_OPTION;
        default:
                return PCP_RESULT_MALFORMED_REQUEST;
        }
}

static void handle_pcp(refsrv *s, const request_ctx *c, const uint8_t *buf, size_t len) {
        pcp_msg req;
        pcp_wire_error r;
        uint8_t forced;
        uint32_t forced_lifetime;

        if (s->cfg.mode == REFSRV_MODE_NATPMP_ONLY) {
                /* RFC 6886 erratum 3618: a NAT-PMP server answers other versions so */
                natpmp_msg m = {
                        .response = true,
                        .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS,
                        .result = NATPMP_RESULT_UNSUPP_VERSION,
                        .epoch = epoch_out(s, c->now_ms),
                };
                uint8_t out[16];
                size_t n;

                if (natpmp_encode(&m, out, sizeof(out), &n) != PCP_WIRE_OK)
                        return;
                c->rec->note = "NAT-PMP only";
                c->rec->result = NATPMP_RESULT_UNSUPP_VERSION;
                respond(s, c, out, n);
                return;
        }

        client_seen(s, c->now_ms, c->src, c->local, false);

        if (buf[0] != s->cfg.max_version) {
                c->rec->note = "unsupported version";
                pcp_unsupp_version(s, c, buf, len, s->cfg.long_error_lifetime);
                return;
        }
        if (buf[0] != PCP_VERSION) {
                /* max_version 1: we offer version 1 but do not implement the draft format */
                c->rec->dropped = true;
                c->rec->note = "PCP version 1 requests are not implemented";
                s->stats.dropped_requests++;
                return;
        }

        r = pcp_decode(buf, len, false, &req);
        if (r == PCP_WIRE_ERR_SHORT || r == PCP_WIRE_ERR_LONG || r == PCP_WIRE_ERR_ALIGN) {
                /* read what can be read of an aligned prefix, to echo it */
                size_t n = (len > PCP_MAX_MSG_LEN ? PCP_MAX_MSG_LEN : len) & ~(size_t) 3;
                pcp_wire_error r2 = pcp_decode(buf, n, false, &req);

                c->rec->note = pcp_wire_error_to_string(r);
                req.version = PCP_VERSION;
                req.opcode = buf[1] & 0x7f;
                if (r2 != PCP_WIRE_OK)
                        req.options = 0;
                pcp_error(s, c, &req, PCP_RESULT_MALFORMED_REQUEST, false);
                return;
        }
        record_from_pcp(c->rec, &req);
        if (r != PCP_WIRE_OK) {
                c->rec->note = pcp_wire_error_to_string(r);
                req.version = PCP_VERSION;
                pcp_error(s, c, &req, wire_error_to_result(r), false);
                return;
        }
        c->rec->decoded = true;

        if (take_forced(s, &forced, &forced_lifetime)) {
                c->rec->note = "forced result";
                if (forced == PCP_RESULT_UNSUPP_VERSION)
                        pcp_unsupp_version(s, c, buf, len, forced_lifetime);
                else
                        pcp_send(s, c, &req, forced, forced_lifetime, true);
                return;
        }

        if (!addr_eq(&req.client_addr, &c->src->sin6_addr)) {
                pcp_error(s, c, &req, PCP_RESULT_ADDRESS_MISMATCH, true);
                return;
        }

        switch (req.opcode) {
        case PCP_OPCODE_ANNOUNCE:
                pcp_send(s, c, &req, PCP_RESULT_SUCCESS, 0, true);
                return;
        case PCP_OPCODE_MAP:
        case PCP_OPCODE_PEER:
                handle_map_peer(s, c, &req);
                return;
        default:
                pcp_error(s, c, &req, PCP_RESULT_UNSUPP_OPCODE, false);
                return;
        }
}

/* ---- NAT-PMP ---- */

static uint16_t pcp_to_natpmp_result(uint8_t r) {
        switch (r) {
        case PCP_RESULT_SUCCESS:
                return NATPMP_RESULT_SUCCESS;
        case PCP_RESULT_UNSUPP_VERSION:
                return NATPMP_RESULT_UNSUPP_VERSION;
        case PCP_RESULT_NETWORK_FAILURE:
                return NATPMP_RESULT_NETWORK_FAILURE;
        case PCP_RESULT_NO_RESOURCES:
        case PCP_RESULT_USER_EX_QUOTA:
        case PCP_RESULT_CANNOT_PROVIDE_EXTERNAL:
                return NATPMP_RESULT_OUT_OF_RESOURCES;
        case PCP_RESULT_UNSUPP_OPCODE:
                return NATPMP_RESULT_UNSUPP_OPCODE;
        default:
                return NATPMP_RESULT_NOT_AUTHORIZED;
        }
}

static void natpmp_send(refsrv *s, const request_ctx *c, natpmp_msg *m) {
        uint8_t out[16];
        size_t n;

        m->response = true;
        m->epoch = epoch_out(s, c->now_ms);
        if (natpmp_encode(m, out, sizeof(out), &n) != PCP_WIRE_OK) {
                c->rec->note = "response could not be encoded";
                return;
        }
        c->rec->result = m->result;
        c->rec->result_lifetime = m->lifetime;
        c->rec->assigned_port = m->external_port;
        respond(s, c, out, n);
}

static void handle_natpmp(refsrv *s, const request_ctx *c, const uint8_t *buf, size_t len) {
        const struct in6_addr *internal = &c->src->sin6_addr;
        natpmp_msg req, resp;
        pcp_wire_error r;
        uint8_t protocol, forced;
        uint32_t forced_lifetime, lifetime;
        refsrv_mapping *m;

        if (buf[1] & NATPMP_RESPONSE_BIT) {
                c->rec->dropped = true;
                c->rec->note = "response bit set";
                s->stats.dropped_requests++;
                return;
        }
        if (s->cfg.mode == REFSRV_MODE_PCP_ONLY) {
                pcp_msg v;

                /* a PCP-only server answers in its own version (RFC 6887 §9) */
                pcp_msg_init(&v, false, PCP_OPCODE_ANNOUNCE);
                v.version = s->cfg.max_version;
                c->rec->note = "PCP only";
                client_seen(s, c->now_ms, c->src, c->local, false);
                pcp_send(s, c, &v, PCP_RESULT_UNSUPP_VERSION, s->cfg.long_error_lifetime, false);
                return;
        }

        r = natpmp_decode(buf, len, false, &req);
        c->rec->internal_port = req.internal_port;
        c->rec->external_port = req.external_port;
        c->rec->lifetime = req.lifetime;
        if (r == PCP_WIRE_ERR_OPCODE) {
                resp = (natpmp_msg) { .opcode = req.opcode, .result = NATPMP_RESULT_UNSUPP_OPCODE };
                natpmp_send(s, c, &resp);
                return;
        }
        if (r != PCP_WIRE_OK) {
                /* RFC 6886 has no "malformed" code: ignore it */
                c->rec->dropped = true;
                c->rec->note = pcp_wire_error_to_string(r);
                s->stats.dropped_requests++;
                return;
        }
        c->rec->decoded = true;
        protocol = req.opcode == NATPMP_OPCODE_MAP_UDP ? 17 : req.opcode == NATPMP_OPCODE_MAP_TCP ? 6 : 0;
        c->rec->protocol = protocol;
        client_seen(s, c->now_ms, c->src, c->local, true);

        resp = (natpmp_msg) { .opcode = req.opcode, .internal_port = req.internal_port };

        if (take_forced(s, &forced, &forced_lifetime)) {
                c->rec->note = "forced result";
                resp.result = pcp_to_natpmp_result(forced);
                resp.lifetime = forced_lifetime;
                if (req.opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS)
                        (void) pcp_addr_to_ipv4(&s->cfg.external_addr, &resp.external_addr);
                natpmp_send(s, c, &resp);
                return;
        }

        if (req.opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS) {
                refsrv_grant_fault f = s->grant_fault;

                (void) pcp_addr_to_ipv4(&s->cfg.external_addr, &resp.external_addr);
                if (f == REFSRV_GRANT_ZERO || f == REFSRV_GRANT_ZERO_ADDRESS || f == REFSRV_GRANT_LOOPBACK) {
                        (void) take_grant_fault(s);
                        resp.external_addr.s_addr = f == REFSRV_GRANT_LOOPBACK ? htonl(0x7f000001) : 0;
                        c->rec->note = grant_fault_names[f];
                }
                natpmp_send(s, c, &resp);
                return;
        }

        if (req.lifetime == 0) {
                /* RFC 6886 §3.4: delete one mapping, or all of this client's mappings of
                 * the protocol with internal port 0; only NAT-PMP's own */
                if (req.internal_port == 0) {
                        for (size_t i = 0; i < s->n_mappings;) {
                                refsrv_mapping *x = &s->mappings[i];
                                if (x->natpmp && x->protocol == protocol && addr_eq(&x->internal_addr, internal))
                                        mapping_remove(s, i);
                                else
                                        i++;
                        }
                } else {
                        m = mapping_find(s, false, internal, protocol, req.internal_port, NULL, 0);
                        if (m != NULL && !m->natpmp) {
                                c->rec->note = "mapping belongs to a PCP client";
                                resp.result = NATPMP_RESULT_NOT_AUTHORIZED;
                                natpmp_send(s, c, &resp);
                                return;
                        }
                        if (m != NULL)
                                mapping_remove(s, (size_t) (m - s->mappings));
                        else
                                c->rec->note = "delete of an unknown mapping";
                }
                natpmp_send(s, c, &resp);
                return;
        }

        if (req.internal_port == 0) {
                c->rec->note = "internal port 0 with a lifetime";
                resp.result = NATPMP_RESULT_NOT_AUTHORIZED;
                natpmp_send(s, c, &resp);
                return;
        }
        if (is_pinhole(internal) && !s->cfg.ipv6_pinholes) {
                resp.result = NATPMP_RESULT_OUT_OF_RESOURCES;
                natpmp_send(s, c, &resp);
                return;
        }

        lifetime = clamp_lifetime(s, req.lifetime);
        m = mapping_find(s, false, internal, protocol, req.internal_port, NULL, 0);
        if (m != NULL && !m->natpmp) {
                c->rec->note = "mapping belongs to a PCP client";
                resp.result = NATPMP_RESULT_NOT_AUTHORIZED;
                natpmp_send(s, c, &resp);
                return;
        }
        if (m == NULL) {
                uint16_t port;

                if (s->n_mappings >= s->cfg.max_mappings) {
                        c->rec->note = "mapping table full";
                        resp.result = NATPMP_RESULT_OUT_OF_RESOURCES;
                        natpmp_send(s, c, &resp);
                        return;
                }
                if (is_pinhole(internal))
                        port = req.internal_port;
                else if (allocate_port(s, protocol, req.external_port, req.internal_port, false, &port) !=
                         PCP_RESULT_SUCCESS) {
                        resp.result = NATPMP_RESULT_OUT_OF_RESOURCES;
                        natpmp_send(s, c, &resp);
                        return;
                }
                m = &s->mappings[s->n_mappings++];
                memset(m, 0, sizeof(*m));
                m->natpmp = true;
                m->protocol = protocol;
                m->internal_addr = *internal;
                m->internal_port = req.internal_port;
                m->external_addr = is_pinhole(internal) ? *internal : s->cfg.external_addr;
                m->external_port = port;
        } else
                c->rec->note = "renewal";
        m->lifetime = lifetime;
        m->expires_ms = c->now_ms + (uint64_t) lifetime * MS_PER_SEC;
        m->client = *c->src;
        m->local_addr = *c->local;

        resp.external_port = m->external_port;
        resp.lifetime = lifetime;
        if (s->grant_fault == REFSRV_GRANT_ZERO || s->grant_fault == REFSRV_GRANT_ZERO_PORT ||
            s->grant_fault == REFSRV_GRANT_ZERO_LIFETIME) {
                refsrv_grant_fault f = take_grant_fault(s);

                if (f == REFSRV_GRANT_ZERO_LIFETIME)
                        resp.lifetime = 0;
                else
                        resp.external_port = 0;
                c->rec->note = grant_fault_names[f];
        }
        natpmp_send(s, c, &resp);
}

/* ---- entry point ---- */

void refsrv_receive(refsrv *s, uint64_t now_ms, const struct sockaddr_in6 *src, const struct in6_addr *local_addr,
                    const uint8_t *buf, size_t len) {
        request_ctx c = { .now_ms = now_ms, .src = src, .local = local_addr };

        refsrv_tick(s, now_ms);
        s->stats.received++;
        c.rec = record_new(s, now_ms, src, buf, len);

        if (len < 2) {
                c.rec->dropped = true;
                c.rec->note = "shorter than 2 octets";
                s->stats.dropped_requests++;
                return;
        }
        if (!pcp_addr_is_ipv4(&src->sin6_addr) && !s->cfg.ipv6_pinholes) {
                c.rec->dropped = true;
                c.rec->note = "IPv6 disabled";
                s->stats.dropped_requests++;
                return;
        }
        if (rng_chance(s, s->drop_requests)) {
                pcp_msg lost;

                c.rec->dropped = true;
                c.rec->note = "dropped by fault";
                /* what was lost, for the log (nonce, port, lifetime); decoded stays false */
                if (buf[0] == PCP_VERSION && pcp_decode(buf, len, false, &lost) == PCP_WIRE_OK)
                        record_from_pcp(c.rec, &lost);
                s->stats.dropped_requests++;
                return;
        }
        if (buf[0] == NATPMP_VERSION) {
                handle_natpmp(s, &c, buf, len);
                return;
        }
        /* RFC 6887 §8.3: a message with the R bit set is silently dropped */
        if (buf[1] & 0x80) {
                c.rec->dropped = true;
                c.rec->note = "R bit set";
                s->stats.dropped_requests++;
                return;
        }
        handle_pcp(s, &c, buf, len);
}

/* ---- faults and control ---- */

int refsrv_set_drop(refsrv *s, double requests, double responses) {
        if (!(requests >= 0.0 && requests <= 1.0) || !(responses >= 0.0 && responses <= 1.0))
                return -EINVAL;
        s->drop_requests = requests;
        s->drop_responses = responses;
        return 0;
}

void refsrv_set_delay(refsrv *s, uint64_t delay_ms) {
        s->delay_ms = delay_ms;
}

static void send_announces(refsrv *s, uint64_t now_ms) {
        for (size_t i = 0; i < s->n_clients; i++) {
                const refsrv_client *cl = &s->clients[i];
                struct sockaddr_in6 dst = cl->addr;
                uint8_t out[PCP_MAX_MSG_LEN];
                size_t n;

                dst.sin6_port = htons(s->cfg.announce_port);
                if (cl->pcp && s->cfg.mode != REFSRV_MODE_NATPMP_ONLY) {
                        pcp_msg m;

                        pcp_msg_init(&m, true, PCP_OPCODE_ANNOUNCE);
                        m.epoch = epoch_out(s, now_ms);
                        if (pcp_encode(&m, out, sizeof(out), &n) == PCP_WIRE_OK)
                                send_datagram(s, now_ms, &dst, &cl->local_addr, REFSRV_DATAGRAM_ANNOUNCE, out, n);
                }
                if (cl->natpmp && s->cfg.mode != REFSRV_MODE_PCP_ONLY) {
                        natpmp_msg m = {
                                .response = true,
                                .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS,
                                .epoch = epoch_out(s, now_ms),
                        };

                        (void) pcp_addr_to_ipv4(&s->cfg.external_addr, &m.external_addr);
                        if (natpmp_encode(&m, out, sizeof(out), &n) == PCP_WIRE_OK)
                                send_datagram(s, now_ms, &dst, &cl->local_addr, REFSRV_DATAGRAM_ANNOUNCE, out, n);
                }
        }
}

void refsrv_announce(refsrv *s, uint64_t now_ms) {
        send_announces(s, now_ms);
}

void refsrv_restart(refsrv *s, uint64_t now_ms, unsigned flags) {
        s->epoch_start_ms = now_ms;
        if (!(flags & REFSRV_RESTART_KEEP_STATE))
                s->n_mappings = 0;
        if (flags & REFSRV_RESTART_ANNOUNCE)
                send_announces(s, now_ms);
}

int refsrv_set_external(refsrv *s, uint64_t now_ms, const struct in6_addr *addr) {
        if (addr == NULL || !pcp_addr_is_ipv4(addr) || pcp_addr_is_unspecified(addr))
                return -EINVAL;

        refsrv_tick(s, now_ms);
        s->cfg.external_addr = *addr;
        s->epoch_start_ms = now_ms;
        send_announces(s, now_ms);

        for (size_t i = 0; i < s->n_mappings; i++) {
                refsrv_mapping *m = &s->mappings[i];
                uint8_t out[PCP_MAX_MSG_LEN];
                pcp_msg r;
                size_t n;

                if (is_pinhole(&m->internal_addr))
                        continue;
                m->external_addr = *addr;
                if (m->natpmp || s->cfg.mode == REFSRV_MODE_NATPMP_ONLY)
                        continue;

                /* RFC 6887 §14.2: tell the client of each mapping its new address */
                pcp_msg_init(&r, true, m->peer ? PCP_OPCODE_PEER : PCP_OPCODE_MAP);
                r.result = PCP_RESULT_SUCCESS;
                r.lifetime = remaining_s(m, now_ms);
                r.epoch = epoch_out(s, now_ms);
                memcpy(r.nonce, m->nonce, PCP_NONCE_LEN);
                r.protocol = m->protocol;
                r.internal_port = m->internal_port;
                r.external_port = m->external_port;
                r.external_addr = m->external_addr;
                r.remote_port = m->remote_port;
                r.remote_addr = m->remote_addr;
                if (pcp_encode(&r, out, sizeof(out), &n) == PCP_WIRE_OK)
                        send_datagram(s, now_ms, &m->client, &m->local_addr, REFSRV_DATAGRAM_UNSOLICITED, out, n);
        }
        return 0;
}

int refsrv_set_mode(refsrv *s, refsrv_mode mode) {
        if ((unsigned) mode >= _REFSRV_MODE_MAX)
                return -EINVAL;
        s->cfg.mode = mode;
        return 0;
}

int refsrv_set_max_version(refsrv *s, uint8_t version) {
        if (version != 1 && version != PCP_VERSION)
                return -EINVAL;
        s->cfg.max_version = version;
        return 0;
}

int refsrv_force_result(refsrv *s, uint8_t result, unsigned count, uint32_t lifetime) {
        if (result >= _PCP_RESULT_MAX)
                return -EINVAL;
        s->forced = true;
        s->forced_result = result;
        s->forced_left = count;
        s->forced_lifetime = lifetime;
        return 0;
}

void refsrv_clear_forced_result(refsrv *s) {
        s->forced = false;
}

static const char *const fault_names[_REFSRV_FAULT_MAX] = {
        [REFSRV_FAULT_NONE] = "none",
        [REFSRV_FAULT_TRUNCATED] = "truncated",
        [REFSRV_FAULT_BAD_R_BIT] = "bad-r-bit",
        [REFSRV_FAULT_WRONG_NONCE] = "wrong-nonce",
        [REFSRV_FAULT_WRONG_OPCODE] = "wrong-opcode",
        [REFSRV_FAULT_WRONG_PROTOCOL] = "wrong-protocol",
        [REFSRV_FAULT_WRONG_PORT] = "wrong-port",
        [REFSRV_FAULT_WRONG_VERSION] = "wrong-version",
        [REFSRV_FAULT_BAD_RESULT] = "bad-result",
        [REFSRV_FAULT_GARBAGE] = "garbage",
        [REFSRV_FAULT_SPOOF] = "spoof",
};

const char *refsrv_fault_to_string(refsrv_fault f) {
        return (unsigned) f < _REFSRV_FAULT_MAX ? fault_names[f] : NULL;
}

int refsrv_fault_from_string(const char *s) {
        if (s == NULL)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(fault_names); i++)
                if (strcmp(fault_names[i], s) == 0)
                        return (int) i;
        return -EINVAL;
}

static const char *const mode_names[_REFSRV_MODE_MAX] = {
        [REFSRV_MODE_BOTH] = "both",
        [REFSRV_MODE_NATPMP_ONLY] = "natpmp",
        [REFSRV_MODE_PCP_ONLY] = "pcp",
};

const char *refsrv_mode_to_string(refsrv_mode m) {
        return (unsigned) m < _REFSRV_MODE_MAX ? mode_names[m] : NULL;
}

int refsrv_mode_from_string(const char *s) {
        if (s == NULL)
                return -EINVAL;
        if (strcmp(s, "natpmp-only") == 0)
                return REFSRV_MODE_NATPMP_ONLY;
        if (strcmp(s, "pcp-only") == 0)
                return REFSRV_MODE_PCP_ONLY;
        for (size_t i = 0; i < ELEMENTSOF(mode_names); i++)
                if (strcmp(mode_names[i], s) == 0)
                        return (int) i;
        return -EINVAL;
}

int refsrv_set_fault(refsrv *s, refsrv_fault fault, unsigned count, bool also_valid) {
        if ((unsigned) fault >= _REFSRV_FAULT_MAX)
                return -EINVAL;
        s->fault = fault;
        s->fault_left = count;
        s->fault_also_valid = also_valid;
        return 0;
}

void refsrv_clear_fault(refsrv *s) {
        s->fault = REFSRV_FAULT_NONE;
        s->fault_left = 0;
        s->fault_also_valid = false;
}

int refsrv_set_grant_fault(refsrv *s, refsrv_grant_fault fault, unsigned count) {
        if ((unsigned) fault >= _REFSRV_GRANT_MAX)
                return -EINVAL;
        s->grant_fault = fault;
        s->grant_fault_left = fault == REFSRV_GRANT_OK ? 0 : count;
        return 0;
}

const char *refsrv_grant_fault_to_string(refsrv_grant_fault f) {
        return (unsigned) f < _REFSRV_GRANT_MAX ? grant_fault_names[f] : NULL;
}

int refsrv_grant_fault_from_string(const char *s) {
        if (s == NULL)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(grant_fault_names); i++)
                if (strcmp(grant_fault_names[i], s) == 0)
                        return (int) i;
        return -EINVAL;
}

void refsrv_set_random_epoch(refsrv *s, bool on) {
        s->random_epoch = on;
}
