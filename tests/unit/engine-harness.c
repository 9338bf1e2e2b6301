/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "engine-harness.h"

static uint64_t splitmix(uint64_t *x) {
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

uint64_t h_rand(harness *h) {
        return splitmix(&h->rng);
}

static void cb_random(void *ud, void *buf, size_t len) {
        harness *h = ud;
        uint8_t *p = buf;

        while (len > 0) {
                uint64_t v = splitmix(&h->rng);
                size_t n = len < sizeof(v) ? len : sizeof(v);
                memcpy(p, &v, n);
                p += n;
                len -= n;
        }
}

static void record_sent(harness *h, uint32_t server_id, size_t addr_index, const uint8_t *buf, size_t len) {
        h_sent *s;

        assert_true(len > 0 && len <= PCP_MAX_MSG_LEN);
        if (h->n_sent == h->cap_sent) {
                h->cap_sent = h->cap_sent ? h->cap_sent * 2 : 64;
                h->sent = realloc(h->sent, h->cap_sent * sizeof(*h->sent));
                assert_non_null(h->sent);
        }
        s = &h->sent[h->n_sent++];
        s->t = h->now;
        s->server_id = server_id;
        s->addr_index = addr_index;
        s->len = len;
        s->buf = malloc(len);
        assert_non_null(s->buf);
        memcpy(s->buf, buf, len);
}

static void record_event(harness *h, const pcp_event *ev) {
        h_event *x;

        assert_true((unsigned) ev->type < sizeof(h->ev_count) / sizeof(h->ev_count[0]));
        h->ev_count[ev->type]++;
        /* a MAPPING event shows the live info; a MAPPING_DELETED one the last info of an id
         * that is gone */
        if (ev->type == PCP_EVENT_MAPPING)
                assert_ptr_equal(pcp_engine_mapping_get(h->e, ev->mapping_id), ev->mapping);
        if (ev->type == PCP_EVENT_MAPPING_DELETED) {
                assert_null(pcp_engine_mapping_get(h->e, ev->mapping_id));
                assert_non_null(ev->mapping);
                assert_int_equal(ev->mapping->id, ev->mapping_id);
        }
        if (!h->record_events)
                return;
        if (h->n_ev == h->cap_ev) {
                h->cap_ev = h->cap_ev ? h->cap_ev * 2 : 64;
                h->ev = realloc(h->ev, h->cap_ev * sizeof(*h->ev));
                assert_non_null(h->ev);
        }
        x = &h->ev[h->n_ev++];
        memset(x, 0, sizeof(*x));
        x->t = h->now;
        x->type = ev->type;
        x->mapping_id = ev->mapping_id;
        if (ev->mapping != NULL) {
                x->has_mapping = true;
                x->mapping = *ev->mapping;
        }
        x->mapping_userdata = ev->mapping_userdata;
        x->deleted_upstream = ev->deleted_upstream;
        x->server_id = ev->server_id;
        if (ev->server != NULL) {
                x->has_server = true;
                x->server = *ev->server;
        }
        x->from_announce = ev->from_announce;
        x->repeated = ev->repeated;
        x->n_recreated = ev->n_recreated;
}

void h_drain(harness *h) {
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        uint32_t sid;
        size_t ai;
        pcp_event ev;
        int n;

        while ((n = pcp_engine_next_datagram(h->e, &sid, &ai, buf, sizeof(buf))) > 0)
                record_sent(h, sid, ai, buf, (size_t) n);
        assert_int_equal(n, 0);
        while ((n = pcp_engine_next_event(h->e, &ev)) > 0)
                record_event(h, &ev);
        assert_int_equal(n, 0);
}

harness *h_new(uint64_t seed, const pcp_engine_config *cfg) {
        static const pcp_engine_ops ops = { .random = cb_random };
        harness *h = calloc(1, sizeof(*h));

        assert_non_null(h);
        h->rng = seed * 0x2545f4914f6cdd1dULL + 1;
        h->record_events = true;
        h->now = 1000 * SEC; /* not 0: catches "0 means unset" mistakes */
        assert_int_equal(pcp_engine_new(cfg, &ops, h, &h->e), 0);
        return h;
}

void h_clear_sent(harness *h) {
        for (size_t i = 0; i < h->n_sent; i++)
                free(h->sent[i].buf);
        h->n_sent = 0;
}

void h_clear(harness *h) {
        h_clear_sent(h);
        h->n_ev = 0;
        memset(h->ev_count, 0, sizeof(h->ev_count));
}

void h_free(harness *h) {
        if (h == NULL)
                return;
        pcp_engine_free(h->e);
        h_clear_sent(h);
        free(h->sent);
        free(h->ev);
        free(h);
}

struct in6_addr h_ip(const char *s) {
        struct in6_addr a;
        assert_true(pcp_addr_from_string(s, &a));
        return a;
}

void h_addr(pcp_server_addr *a, const char *remote, const char *local) {
        memset(a, 0, sizeof(*a));
        a->remote.sin6_family = AF_INET6;
        a->remote.sin6_addr = h_ip(remote);
        a->local = h_ip(local);
}

uint32_t h_server(harness *h, const char *remote, const char *local) {
        pcp_server_addr a;
        uint32_t id = 0;

        h_addr(&a, remote, local);
        assert_int_equal(pcp_engine_add_server(h->e, h->now, &a, 1, &id), 0);
        h_drain(h);
        assert_true(id != 0);
        return id;
}

void h_params(pcp_mapping_params *p, uint32_t server_id, uint8_t protocol, uint16_t port, uint32_t lifetime) {
        memset(p, 0, sizeof(*p));
        p->server_id = server_id;
        p->opcode = PCP_OPCODE_MAP;
        p->protocol = protocol;
        p->internal_port = port;
        p->lifetime = lifetime;
}

uint64_t h_map(harness *h, uint32_t server_id, uint8_t protocol, uint16_t port, uint32_t lifetime) {
        pcp_mapping_params p;
        uint64_t id = 0;

        h_params(&p, server_id, protocol, port, lifetime);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        h_drain(h);
        assert_true(id != 0);
        return id;
}

bool h_step(harness *h) {
        uint64_t d = pcp_engine_next_deadline(h->e);

        if (d == PCP_NEVER)
                return false;
        /* a deadline in the past would mean a timer the engine forgot to fire */
        assert_true(d >= h->now);
        h->now = d;
        pcp_engine_process_timers(h->e, d);
        h_drain(h);
        /* everything due has been handled */
        assert_true(pcp_engine_next_deadline(h->e) > d);
        return true;
}

void h_advance_to(harness *h, uint64_t t) {
        assert_true(t >= h->now);
        for (;;) {
                uint64_t d = pcp_engine_next_deadline(h->e);
                if (d == PCP_NEVER || d > t)
                        break;
                h_step(h);
        }
        h->now = t;
}

void h_advance(harness *h, uint64_t dt) {
        h_advance_to(h, h->now + dt);
}

bool h_is_natpmp(const h_sent *s) {
        return s->len > 0 && s->buf[0] == 0;
}

void h_decode(const h_sent *s, pcp_msg *ret) {
        assert_non_null(s);
        assert_false(h_is_natpmp(s));
        assert_int_equal(pcp_decode(s->buf, s->len, false, ret), PCP_WIRE_OK);
        assert_int_equal(ret->version, PCP_VERSION);
        assert_false(ret->response);
}

void h_decode_natpmp(const h_sent *s, natpmp_msg *ret) {
        assert_non_null(s);
        assert_true(h_is_natpmp(s));
        assert_int_equal(natpmp_decode(s->buf, s->len, false, ret), PCP_WIRE_OK);
}

const h_sent *h_find(harness *h, int opcode, size_t i) {
        for (size_t k = 0; k < h->n_sent; k++) {
                const h_sent *s = &h->sent[k];
                if (h_is_natpmp(s) || s->len < 2)
                        continue;
                if (opcode >= 0 && (s->buf[1] & 0x7f) != opcode)
                        continue;
                if (i-- == 0)
                        return s;
        }
        return NULL;
}

size_t h_count(harness *h, int opcode) {
        size_t n = 0;
        while (h_find(h, opcode, n) != NULL)
                n++;
        return n;
}

const h_sent *h_last(harness *h) {
        return h->n_sent > 0 ? &h->sent[h->n_sent - 1] : NULL;
}

static bool sent_has_nonce(const h_sent *s, const uint8_t nonce[PCP_NONCE_LEN]) {
        uint8_t op;
        if (h_is_natpmp(s) || s->len < PCP_HEADER_LEN + PCP_MAP_BODY_LEN)
                return false;
        op = s->buf[1] & 0x7f;
        if (op != PCP_OPCODE_MAP && op != PCP_OPCODE_PEER)
                return false;
        return memcmp(s->buf + PCP_HEADER_LEN, nonce, PCP_NONCE_LEN) == 0;
}

const h_sent *h_last_for(harness *h, uint64_t mapping_id) {
        const pcp_mapping_info *m = pcp_engine_mapping_get(h->e, mapping_id);

        assert_non_null(m);
        for (size_t k = h->n_sent; k > 0; k--)
                if (sent_has_nonce(&h->sent[k - 1], m->nonce))
                        return &h->sent[k - 1];
        return NULL;
}

const h_sent *h_first_for(harness *h, uint64_t mapping_id) {
        const pcp_mapping_info *m = pcp_engine_mapping_get(h->e, mapping_id);

        assert_non_null(m);
        for (size_t k = 0; k < h->n_sent; k++)
                if (sent_has_nonce(&h->sent[k], m->nonce))
                        return &h->sent[k];
        return NULL;
}

size_t h_count_for(harness *h, uint64_t mapping_id) {
        const pcp_mapping_info *m = pcp_engine_mapping_get(h->e, mapping_id);
        size_t n = 0;

        assert_non_null(m);
        for (size_t k = 0; k < h->n_sent; k++)
                if (sent_has_nonce(&h->sent[k], m->nonce))
                        n++;
        return n;
}

void h_receive(harness *h, uint32_t server_id, size_t addr_index, const uint8_t *buf, size_t len) {
        const pcp_server_info *s = pcp_engine_server_get(h->e, server_id);
        struct sockaddr_in6 from;

        assert_non_null(s);
        from = s->addrs[addr_index].remote;
        pcp_engine_receive(h->e, h->now, server_id, addr_index, &from, buf, len);
        h_drain(h);
}

void h_receive_msg(harness *h, uint32_t server_id, size_t addr_index, const pcp_msg *m) {
        uint8_t buf[PCP_MAX_MSG_LEN];
        size_t len;

        assert_int_equal(pcp_encode(m, buf, sizeof(buf), &len), PCP_WIRE_OK);
        h_receive(h, server_id, addr_index, buf, len);
}

void h_receive_natpmp(harness *h, uint32_t server_id, size_t addr_index, const natpmp_msg *n) {
        uint8_t buf[16];
        size_t len;

        assert_int_equal(natpmp_encode(n, buf, sizeof(buf), &len), PCP_WIRE_OK);
        h_receive(h, server_id, addr_index, buf, len);
}

void h_make_reply(const h_sent *req, pcp_msg *ret, uint8_t result, uint32_t lifetime, uint32_t epoch,
                  const char *ext_addr, uint16_t ext_port) {
        pcp_msg q;

        h_decode(req, &q);
        pcp_msg_init(ret, true, q.opcode);
        ret->result = result;
        ret->lifetime = lifetime;
        ret->epoch = epoch;
        memcpy(ret->nonce, q.nonce, PCP_NONCE_LEN);
        ret->protocol = q.protocol;
        ret->internal_port = q.internal_port;
        ret->external_port = ext_port;
        ret->external_addr = ext_addr != NULL ? h_ip(ext_addr) : q.external_addr;
        ret->remote_port = q.remote_port;
        ret->remote_addr = q.remote_addr;
}

void h_reply(harness *h, const h_sent *req, uint8_t result, uint32_t lifetime, uint32_t epoch,
             const char *ext_addr, uint16_t ext_port) {
        pcp_msg r;
        uint32_t sid;
        size_t ai;

        assert_non_null(req);
        /* req points into h->sent, which the reply may grow */
        sid = req->server_id;
        ai = req->addr_index;
        h_make_reply(req, &r, result, lifetime, epoch, ext_addr, ext_port);
        h_receive_msg(h, sid, ai, &r);
}

void h_reply_announce(harness *h, const h_sent *req, uint8_t result, uint32_t lifetime, uint32_t epoch) {
        pcp_msg r;

        assert_non_null(req);
        pcp_msg_init(&r, true, PCP_OPCODE_ANNOUNCE);
        r.result = result;
        r.lifetime = lifetime;
        r.epoch = epoch;
        h_receive_msg(h, req->server_id, req->addr_index, &r);
}

void h_announce(harness *h, const char *from, uint32_t epoch) {
        uint8_t buf[PCP_MAX_MSG_LEN];
        size_t len;
        pcp_msg r;
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(PCP_SERVER_PORT) };

        sa.sin6_addr = h_ip(from);
        pcp_msg_init(&r, true, PCP_OPCODE_ANNOUNCE);
        r.epoch = epoch;
        assert_int_equal(pcp_encode(&r, buf, sizeof(buf), &len), PCP_WIRE_OK);
        pcp_engine_receive_announce(h->e, h->now, &sa, buf, len);
        h_drain(h);
}

void h_natpmp_notice(harness *h, const char *from, uint32_t epoch, const char *ext_addr) {
        uint8_t buf[16];
        size_t len;
        struct in6_addr a = h_ip(ext_addr);
        natpmp_msg n = {
                .response = true,
                .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS,
                .result = NATPMP_RESULT_SUCCESS,
                .epoch = epoch,
        };
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(PCP_SERVER_PORT) };

        memcpy(&n.external_addr, &a.s6_addr[12], 4);
        sa.sin6_addr = h_ip(from);
        assert_int_equal(natpmp_encode(&n, buf, sizeof(buf), &len), PCP_WIRE_OK);
        assert_int_equal(len, 12);
        pcp_engine_receive_announce(h->e, h->now, &sa, buf, len);
        h_drain(h);
}

size_t h_count_events(harness *h, pcp_event_type type, uint64_t mapping_id) {
        size_t n = 0;
        for (size_t i = 0; i < h->n_ev; i++)
                if (h->ev[i].type == type && (mapping_id == 0 || h->ev[i].mapping_id == mapping_id))
                        n++;
        return n;
}

const h_event *h_last_event(harness *h, pcp_event_type type, uint64_t mapping_id) {
        for (size_t i = h->n_ev; i > 0; i--)
                if (h->ev[i - 1].type == type && (mapping_id == 0 || h->ev[i - 1].mapping_id == mapping_id))
                        return &h->ev[i - 1];
        return NULL;
}

const pcp_mapping_info *h_mapping(harness *h, uint64_t id) {
        const pcp_mapping_info *m = pcp_engine_mapping_get(h->e, id);
        assert_non_null(m);
        return m;
}

const pcp_server_info *h_srv(harness *h, uint32_t id) {
        const pcp_server_info *s = pcp_engine_server_get(h->e, id);
        assert_non_null(s);
        return s;
}
