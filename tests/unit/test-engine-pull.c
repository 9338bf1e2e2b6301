/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The engine's output is pulled (pcp_engine_next_datagram(), pcp_engine_next_event()):
 * nothing leaves from inside a call; what is not pulled yet is a mark on its mapping or
 * server, built when pulled, so a datagram follows the address in use and repeated news
 * is one event; a MAPPING_DELETED carries the last info of an id that is gone; removing a
 * server or forgetting a mapping drops what was theirs; and a recreation of 131,070
 * mappings queues all of them without allocating anything (malloc, calloc and realloc are
 * wrapped, -Wl,--wrap, and counted while the engine runs). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine-harness.h"

#define SRV "192.168.1.1"
#define SRV2 "192.168.1.2"
#define LOCAL "192.168.1.10"
#define EXT "198.51.100.7"

/* ---- allocations, counted while `counting` ---- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
static bool counting;
static size_t allocations;

void *__wrap_malloc(size_t size) {
        allocations += counting;
        return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size) {
        allocations += counting;
        return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size) {
        allocations += counting;
        return __real_realloc(p, size);
}

static uint32_t ep(harness *h) {
        return (uint32_t) (h->now / SEC);
}

/* a server that answered its ANNOUNCE probe; sent and events cleared */
static uint32_t pcp_server(harness *h, const char *addr) {
        uint32_t sid = h_server(h, addr, LOCAL);

        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 0), PCP_RESULT_SUCCESS, 0, ep(h));
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        h_clear(h);
        return sid;
}

/* input without the harness's drain after it */
static void feed(harness *h, uint32_t sid, const pcp_msg *msg) {
        uint8_t buf[PCP_MAX_MSG_LEN];
        size_t len;
        struct sockaddr_in6 from = h_srv(h, sid)->addrs[0].remote;

        assert_int_equal(pcp_encode(msg, buf, sizeof(buf), &len), PCP_WIRE_OK);
        pcp_engine_receive(h->e, h->now, sid, 0, &from, buf, len);
}

static void announce(harness *h, const char *addr, uint32_t epoch) {
        uint8_t buf[PCP_MAX_MSG_LEN];
        size_t len;
        pcp_msg r;
        struct sockaddr_in6 from = { .sin6_family = AF_INET6, .sin6_port = htons(PCP_SERVER_PORT) };

        from.sin6_addr = h_ip(addr);
        pcp_msg_init(&r, true, PCP_OPCODE_ANNOUNCE);
        r.epoch = epoch;
        assert_int_equal(pcp_encode(&r, buf, sizeof(buf), &len), PCP_WIRE_OK);
        pcp_engine_receive_announce(h->e, h->now, &from, buf, len);
}

/* the next datagram, pulled into *ret as the harness records them */
static bool pull_one(harness *h, uint8_t *buf, h_sent *ret) {
        uint32_t sid;
        size_t ai;
        int n = pcp_engine_next_datagram(h->e, &sid, &ai, buf, PCP_ENGINE_DATAGRAM_MAX);

        assert_true(n >= 0);
        *ret = (h_sent) { .t = h->now, .server_id = sid, .addr_index = ai, .len = (size_t) n, .buf = buf };
        return n > 0;
}

static size_t pull_datagrams(harness *h) {
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        size_t n = 0;

        while (pcp_engine_next_datagram(h->e, NULL, NULL, buf, sizeof(buf)) > 0)
                n++;
        return n;
}

/* Nothing comes out of a call by itself; what a call queued comes out when pulled, with the
 * id the call returned; then there is nothing more. */
static void test_nothing_from_inside(void **state) {
        harness *h = h_new(1, NULL);
        pcp_server_addr a;
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        uint32_t sid = 0, got_sid = 0;
        size_t ai = 99;
        pcp_event ev;
        pcp_msg m;
        int n;

        h_addr(&a, SRV, LOCAL);
        assert_int_equal(pcp_engine_add_server(h->e, h->now, &a, 1, &sid), 0);
        assert_int_equal(h->n_sent, 0);
        assert_int_equal(pcp_engine_get_stats(h->e)->sent, 0);
        n = pcp_engine_next_datagram(h->e, &got_sid, &ai, buf, sizeof(buf));
        assert_true(n > 0);
        assert_int_equal(got_sid, sid);
        assert_int_equal(ai, 0);
        assert_int_equal(pcp_decode(buf, (size_t) n, false, &m), PCP_WIRE_OK);
        assert_int_equal(m.opcode, PCP_OPCODE_ANNOUNCE);
        assert_int_equal(pcp_engine_get_stats(h->e)->sent, 1);
        assert_int_equal(pcp_engine_next_datagram(h->e, &got_sid, &ai, buf, sizeof(buf)), 0);
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 0);
        /* bad arguments */
        assert_int_equal(pcp_engine_next_datagram(NULL, NULL, NULL, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(pcp_engine_next_datagram(h->e, NULL, NULL, NULL, 0), -EINVAL);
        assert_int_equal(pcp_engine_next_event(h->e, NULL), -EINVAL);
        assert_int_equal(pcp_engine_next_event(NULL, &ev), -EINVAL);
        h_free(h);
}

/* A buffer too small for the next datagram: -ENOBUFS, and it stays first. */
static void test_small_buffer(void **state) {
        harness *h = h_new(2, NULL);
        uint32_t sid = pcp_server(h, SRV);
        static const char desc[] = "a description long enough not to fit sixty-four octets, surely";
        pcp_mapping_params p;
        uint8_t small[64], big[PCP_ENGINE_DATAGRAM_MAX];
        uint64_t id;
        pcp_msg m;
        int n;

        uint64_t sent = pcp_engine_get_stats(h->e)->sent;

        h_params(&p, sid, IPPROTO_TCP, 8080, 3600);
        p.description = desc;
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        assert_int_equal(pcp_engine_next_datagram(h->e, NULL, NULL, small, sizeof(small)), -ENOBUFS);
        assert_int_equal(pcp_engine_next_datagram(h->e, NULL, NULL, small, sizeof(small)), -ENOBUFS);
        assert_int_equal(pcp_engine_get_stats(h->e)->sent, sent);
        n = pcp_engine_next_datagram(h->e, NULL, NULL, big, sizeof(big));
        assert_true(n > (int) sizeof(small));
        assert_int_equal(pcp_decode(big, (size_t) n, false, &m), PCP_WIRE_OK);
        assert_int_equal(m.description_len, strlen(desc));
        assert_int_equal(pcp_engine_next_datagram(h->e, NULL, NULL, big, sizeof(big)), 0);
        /* one without options fits the small buffer */
        h_params(&p, sid, IPPROTO_UDP, 8081, 3600);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        assert_int_equal(pcp_engine_next_datagram(h->e, NULL, NULL, small, sizeof(small)), 60);
        assert_int_equal(pcp_decode(small, 60, false, &m), PCP_WIRE_OK);
        assert_int_equal(m.internal_port, 8081);
        h_free(h);
}

/* A request not pulled yet is built when pulled: sent again for another address before
 * the pull, it is one datagram, to the address in use then. */
static void test_request_follows_address(void **state) {
        harness *h = h_new(3, NULL);
        pcp_server_addr a[2];
        pcp_mapping_params p;
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        uint32_t sid, got;
        uint64_t id;
        size_t ai, n_map = 0, n = 0;
        int len;

        h_addr(&a[0], SRV, LOCAL);
        h_addr(&a[1], SRV2, LOCAL);
        assert_int_equal(pcp_engine_add_server(h->e, h->now, a, 2, &sid), 0);
        h_params(&p, sid, IPPROTO_TCP, 8080, 3600);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        /* ICMP from the first address before anything was pulled: everything goes to the
         * second one instead */
        pcp_engine_unreachable(h->e, h->now, sid, 0);
        while ((len = pcp_engine_next_datagram(h->e, &got, &ai, buf, sizeof(buf))) > 0) {
                pcp_msg m;

                assert_int_equal(got, sid);
                assert_int_equal(ai, 1);
                assert_int_equal(pcp_decode(buf, (size_t) len, false, &m), PCP_WIRE_OK);
                n_map += m.opcode == PCP_OPCODE_MAP;
                n++;
        }
        assert_int_equal(n_map, 1); /* not one to each address */
        assert_int_equal(n, 2);     /* and the probe */
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_PENDING);
        h_free(h);
}

/* Events not pulled yet: one per object, in the order they first changed, saying how it is
 * when pulled; a deletion replaces what was queued for the mapping and carries its last
 * info; its id is gone already. */
static void test_events_coalesced(void **state) {
        harness *h = h_new(4, NULL);
        uint32_t sid = pcp_server(h, SRV);
        uint64_t a = h_map(h, sid, IPPROTO_TCP, 8080, 3600), b = h_map(h, sid, IPPROTO_UDP, 8081, 3600);
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        pcp_mapping_info last;
        h_sent req;
        pcp_event ev;
        pcp_msg r;

        /* nothing pulled from here on: a refused, b granted, a's retry granted */
        h_make_reply(h_last_for(h, a), &r, PCP_RESULT_NO_RESOURCES, 30, ep(h), NULL, 0);
        feed(h, sid, &r);
        h_make_reply(h_last_for(h, b), &r, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 40001);
        feed(h, sid, &r);
        h->now += 30 * SEC;
        pcp_engine_process_timers(h->e, h->now);
        assert_true(pull_one(h, buf, &req)); /* a's retry (datagrams do not touch events) */
        assert_memory_equal(req.buf + PCP_HEADER_LEN, h_mapping(h, a)->nonce, PCP_NONCE_LEN);
        assert_int_equal(pull_datagrams(h), 0);
        h_make_reply(&req, &r, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 40000);
        feed(h, sid, &r);
        assert_int_equal(h_mapping(h, a)->state, PCP_MAPPING_ACTIVE);

        /* a first (it changed first), once, as it is now: active; the server, which learnt
         * its external address from b's grant (the engine says so before b); b */
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 1);
        assert_int_equal(ev.type, PCP_EVENT_MAPPING);
        assert_int_equal(ev.mapping_id, a);
        assert_int_equal(ev.mapping->state, PCP_MAPPING_ACTIVE);
        assert_int_equal(ev.mapping->external_port, 40000);
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 1);
        assert_int_equal(ev.type, PCP_EVENT_SERVER);
        assert_true(ev.server->has_external_addr);
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 1);
        assert_int_equal(ev.type, PCP_EVENT_MAPPING);
        assert_int_equal(ev.mapping_id, b);
        assert_int_equal(ev.mapping->state, PCP_MAPPING_ACTIVE);
        assert_ptr_equal(ev.server, h_srv(h, sid));
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 0);

        /* b removed (an event: deleting) and its delete confirmed, before any pull: one
         * event, the deletion, with b's last info */
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, b), 0);
        assert_true(pull_one(h, buf, &req));
        last = *h_mapping(h, b);
        h_make_reply(&req, &r, PCP_RESULT_SUCCESS, 0, ep(h), "0.0.0.0", 0);
        feed(h, sid, &r);
        assert_null(pcp_engine_mapping_get(h->e, b));
        assert_int_equal(pcp_engine_mapping_count(h->e), 1);
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 1);
        assert_int_equal(ev.type, PCP_EVENT_MAPPING_DELETED);
        assert_int_equal(ev.mapping_id, b);
        assert_true(ev.deleted_upstream);
        assert_ptr_equal(ev.server, h_srv(h, sid));
        /* its last info: as it was when its delete went out */
        assert_int_equal(ev.mapping->id, b);
        assert_int_equal(ev.mapping->state, PCP_MAPPING_DELETING);
        assert_int_equal(ev.mapping->external_port, 40001);
        assert_memory_equal(ev.mapping->nonce, last.nonce, PCP_NONCE_LEN);
        /* still readable after a read-only accessor */
        assert_non_null(pcp_engine_server_get(h->e, sid));
        assert_non_null(pcp_engine_mapping_get(h->e, a));
        assert_int_equal(ev.mapping->internal_port, 8081);
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 0);
        h_free(h);
}

/* A removed server takes what was queued of its own (datagrams, its events); its mappings
 * are reported deleted, not upstream, with no server. */
static void test_remove_server_drops_its_output(void **state) {
        harness *h = h_new(5, NULL);
        uint32_t s1 = pcp_server(h, SRV), s2 = pcp_server(h, SRV2), got;
        uint64_t a = h_map(h, s1, IPPROTO_TCP, 8080, 3600), b = h_map(h, s2, IPPROTO_TCP, 8080, 3600);
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        pcp_event ev;
        size_t n_deleted = 0, n_s2 = 0, n_dg = 0;

        /* queued, not pulled: both servers announced a change (RECREATE, their mappings'
         * events; an ANNOUNCE never says "reset" itself), and both requests again (their
         * retransmissions) */
        announce(h, SRV, ep(h));
        announce(h, SRV2, ep(h));
        h->now += 10 * SEC;
        pcp_engine_process_timers(h->e, h->now);
        assert_int_equal(pcp_engine_remove_server(h->e, h->now, s1), 0);
        while (pcp_engine_next_datagram(h->e, &got, NULL, buf, sizeof(buf)) > 0) {
                assert_int_equal(got, s2);
                n_dg++;
        }
        assert_true(n_dg >= 1);
        while (pcp_engine_next_event(h->e, &ev) > 0) {
                if (ev.server_id == s2) {
                        n_s2++;
                        continue;
                }
                assert_int_equal(ev.server_id, s1);
                assert_int_equal(ev.type, PCP_EVENT_MAPPING_DELETED);
                assert_int_equal(ev.mapping_id, a);
                assert_false(ev.deleted_upstream);
                assert_null(ev.server);
                assert_int_equal(ev.mapping->internal_port, 8080);
                n_deleted++;
        }
        assert_int_equal(n_deleted, 1);
        assert_int_equal(n_s2, 2); /* its RECREATE and b's recreation */
        assert_null(pcp_engine_mapping_get(h->e, a));
        assert_non_null(pcp_engine_mapping_get(h->e, b));
        h_free(h);
}

/* the EPOCH_RESET and RECREATE events pulled now: how many of each; *last the last */
static void pull_recreations(harness *h, size_t *n_reset, size_t *n_recreate, pcp_event *last) {
        pcp_event ev;

        *n_reset = *n_recreate = 0;
        while (pcp_engine_next_event(h->e, &ev) > 0)
                if (ev.type == PCP_EVENT_EPOCH_RESET || ev.type == PCP_EVENT_RECREATE) {
                        *n_reset += ev.type == PCP_EVENT_EPOCH_RESET;
                        *n_recreate += ev.type == PCP_EVENT_RECREATE;
                        *last = ev;
                }
        h_drain(h); /* the datagrams */
}

/* Two recreations of a server before a pull (possible with a short recreate_interval) are
 * one event: an EPOCH_RESET replaces a RECREATE (the state loss is the news) and stays
 * when a RECREATE follows it; two RECREATEs are one, with the later count. (An ANNOUNCE
 * never says "reset" itself, its epoch is not taken: an answer naming a nonce does.) */
static void test_recreations_coalesced(void **state) {
        pcp_engine_config cfg = { .recreate_interval = 100, .recreate_interval_max = 100 };
        harness *h = h_new(8, &cfg);
        uint32_t sid = pcp_server(h, SRV);
        uint64_t a = h_map(h, sid, IPPROTO_TCP, 8080, 3600), b;
        pcp_mapping_params p;
        size_t n_reset, n_recreate;
        pcp_event ev = { 0 }; /* filled by pull_recreations(); -O3 cannot tell that it always is */
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        h_sent req;
        pcp_msg r;

        h_reply(h, h_last_for(h, a), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 18080);
        h_advance(h, 100 * SEC);
        h_clear(h);

        /* a consistent ANNOUNCE (RECREATE queued), then the answer to its recreation says
         * the server restarted (epoch 0) before the pull */
        announce(h, SRV, ep(h));
        h->now += 6 * SEC; /* the announced recreation's request is due */
        pcp_engine_process_timers(h->e, h->now);
        assert_true(pull_one(h, buf, &req)); /* datagrams do not touch events */
        h_make_reply(&req, &r, PCP_RESULT_SUCCESS, 3600, 0, EXT, 18080);
        feed(h, sid, &r);
        assert_int_equal(h->n_ev, 0);
        pull_recreations(h, &n_reset, &n_recreate, &ev);
        assert_int_equal(n_reset, 1);
        assert_int_equal(n_recreate, 0);
        assert_int_equal(ev.server_id, sid);
        assert_true(ev.from_announce);
        assert_false(ev.repeated);
        assert_int_equal(ev.n_recreated, 0); /* a answered: nothing else asked again */

        /* two consistent ones: one RECREATE, repeated (the reset told the episode), with
         * the later count */
        h->now += 200;
        announce(h, SRV, 0);
        h_params(&p, sid, IPPROTO_TCP, 8081, 3600);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &b), 0); /* (no pull) */
        h->now += 200;
        announce(h, SRV, 0);
        assert_int_equal(h->n_ev, 0);
        pull_recreations(h, &n_reset, &n_recreate, &ev);
        assert_int_equal(n_reset, 0);
        assert_int_equal(n_recreate, 1);
        assert_true(ev.repeated);
        assert_int_equal(ev.n_recreated, 2);

        /* a reset (the answer to that recreation says so: epoch 1000), then a consistent
         * ANNOUNCE: the EPOCH_RESET, repeated (the second reset) */
        h->now += 6 * SEC;
        pcp_engine_process_timers(h->e, h->now);
        assert_true(pull_one(h, buf, &req));
        h_make_reply(&req, &r, PCP_RESULT_SUCCESS, 3600, 1000, EXT, 18080);
        feed(h, sid, &r);
        h->now += 200;
        announce(h, SRV, 1000);
        pull_recreations(h, &n_reset, &n_recreate, &ev);
        assert_int_equal(n_reset, 1);
        assert_int_equal(n_recreate, 0);
        assert_int_equal(ev.type, PCP_EVENT_EPOCH_RESET);
        assert_true(ev.repeated);
        assert_non_null(pcp_engine_mapping_get(h->e, b));

        /* a RECREATE queued (a consistent ANNOUNCE), then a reset that a mapping's answer
         * reveals before the pull: the EPOCH_RESET replaces it and still says that an
         * ANNOUNCE was part of it */
        h->now += 200;
        announce(h, SRV, 1000);
        h->now += 6 * SEC; /* the announced recreation's requests are due */
        pcp_engine_process_timers(h->e, h->now);
        assert_true(pull_one(h, buf, &req)); /* datagrams do not touch events */
        h_make_reply(&req, &r, PCP_RESULT_SUCCESS, 3600, 0, EXT, 18080);
        feed(h, sid, &r);
        pull_recreations(h, &n_reset, &n_recreate, &ev);
        assert_int_equal(n_reset, 1);
        assert_int_equal(n_recreate, 0);
        assert_int_equal(ev.type, PCP_EVENT_EPOCH_RESET);
        assert_true(ev.from_announce);
        h_free(h);
}

/* A forgotten mapping leaves nothing to pull. */
static void test_forget_drops_output(void **state) {
        harness *h = h_new(6, NULL);
        uint32_t sid = pcp_server(h, SRV);
        pcp_mapping_params p;
        uint64_t id;
        pcp_event ev;

        h_params(&p, sid, IPPROTO_TCP, 8080, 3600);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, id), 0); /* an event: deleting */
        assert_int_equal(pcp_engine_forget_mapping(h->e, id), 0);
        assert_int_equal(pull_datagrams(h), 0);
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 0);
        assert_int_equal(pcp_engine_mapping_count(h->e), 0);
        h_free(h);
}

/* A deleted mapping whose event was not pulled still counts toward max_mappings (its
 * memory is still there); pulled, and the next call frees it. */
static void test_unpulled_deletions_count(void **state) {
        pcp_engine_config cfg = { .max_mappings = 2 };
        harness *h = h_new(7, &cfg);
        uint32_t sid = h_server(h, SRV, LOCAL);
        const h_sent *probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);
        pcp_mapping_params p;
        uint64_t a, b;
        pcp_event ev;

        /* PCP switched off there: a removal is a deletion at once, no packet */
        h_reply_announce(h, probe, PCP_RESULT_NOT_AUTHORIZED, 600, 0);
        h_params(&p, sid, IPPROTO_TCP, 8080, 3600);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &a), 0);
        p.internal_port = 8081;
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &b), 0);
        h_drain(h);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, a), 0);
        assert_int_equal(pcp_engine_mapping_count(h->e), 1);
        p.internal_port = 8082;
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, NULL), -ENOSPC);
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 1);
        assert_int_equal(ev.type, PCP_EVENT_MAPPING_DELETED);
        assert_int_equal(ev.mapping_id, a);
        assert_int_equal(ev.mapping->internal_port, 8080);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, NULL), 0);
        h_drain(h);
        h_free(h);
}

/* Freeing an engine with everything still queued: datagrams of several servers, one's
 * between the other's, events, deleted mappings not pulled, one pulled and not yet freed.
 * (ASan and valgrind check.) */
static void test_free_with_output_queued(void **state) {
        harness *h = h_new(8, NULL);
        uint32_t s1 = pcp_server(h, SRV), s2 = pcp_server(h, SRV2), s3, s4;
        pcp_server_addr a3, a4;
        pcp_mapping_params p;
        uint64_t a, b, c;
        pcp_event ev;

        a = h_map(h, s1, IPPROTO_TCP, 8080, 3600);
        b = h_map(h, s2, IPPROTO_TCP, 8080, 3600);
        c = h_map(h, s2, IPPROTO_UDP, 8081, 3600);
        announce(h, SRV, 1); /* recreations: events for s1's mappings */
        h->now += 10 * SEC;
        pcp_engine_process_timers(h->e, h->now); /* datagrams of both servers */
        assert_int_equal(pcp_engine_remove_server(h->e, h->now, s2), 0); /* b, c: deleted */
        assert_int_equal(pcp_engine_next_event(h->e, &ev), 1);
        while (ev.type != PCP_EVENT_MAPPING_DELETED)
                assert_int_equal(pcp_engine_next_event(h->e, &ev), 1);
        /* one deletion pulled (its info still held), the other one not */
        assert_true(ev.mapping_id == b || ev.mapping_id == c);
        assert_non_null(pcp_engine_mapping_get(h->e, a));
        /* two more servers, their probes queued, then a mapping on the older one: at the end
         * the newer server goes first, and the mapping's place in the queue is next to its
         * probe */
        h_addr(&a3, "192.168.1.3", LOCAL);
        h_addr(&a4, "192.168.1.4", LOCAL);
        assert_int_equal(pcp_engine_add_server(h->e, h->now, &a3, 1, &s3), 0);
        assert_int_equal(pcp_engine_add_server(h->e, h->now, &a4, 1, &s4), 0);
        h_params(&p, s3, IPPROTO_TCP, 9000, 3600);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, NULL), 0);
        h_params(&p, s4, IPPROTO_TCP, 9000, 3600);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, NULL), 0);
        h_params(&p, s3, IPPROTO_TCP, 9001, 3600);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, NULL), 0);
        h_free(h);
}

/* Every mapping a host can hold recreated at once: 131,070 events and, once the (here
 * 1 ms) spread is over, 131,070 datagrams, one per mapping, all queued without a single
 * allocation; pulled in order of their marks. */
static void test_mass_recreation_allocates_nothing(void **state) {
        enum { N = 131070 };
        /* unbounded in flight: all N recreations go out in one drain (the bound has its own
         * tests in test-engine-inflight.c) */
        pcp_engine_config cfg = { .announce_delay_max = 1, .max_in_flight = UINT32_MAX };
        harness *h = h_new(9, &cfg);
        uint32_t sid = pcp_server(h, SRV);
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX], announce[PCP_MAX_MSG_LEN];
        struct sockaddr_in6 from = { .sin6_family = AF_INET6, .sin6_port = htons(PCP_SERVER_PORT) };
        size_t len, n_ev = 0, n_reset = 0, n_dg = 0;
        pcp_event ev;
        pcp_msg r;
        int n;

        h->record_events = false;
        for (uint32_t i = 0; i < N; i++)
                (void) h_map(h, sid, i % 2 ? IPPROTO_UDP : IPPROTO_TCP, (uint16_t) (i / 2 + 1), 3600);
        for (size_t k = 0; k < N; k++)
                h_reply(h, &h->sent[k], PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 40000);
        assert_int_equal(h->ev_count[PCP_EVENT_MAPPING], N);
        h_clear(h);

        /* the server announced a change (its epoch is not taken: it only decides whether
         * the event waits for the answers; a consistent one is told at once) */
        from.sin6_addr = h_ip(SRV);
        pcp_msg_init(&r, true, PCP_OPCODE_ANNOUNCE);
        r.epoch = ep(h);
        assert_int_equal(pcp_encode(&r, announce, sizeof(announce), &len), PCP_WIRE_OK);
        allocations = 0;
        counting = true;
        pcp_engine_receive_announce(h->e, h->now, &from, announce, len);
        while ((n = pcp_engine_next_event(h->e, &ev)) > 0) {
                if (ev.type == PCP_EVENT_RECREATE) {
                        assert_true(ev.from_announce);
                        n_reset++;
                } else {
                        assert_int_equal(ev.type, PCP_EVENT_MAPPING);
                        assert_int_equal(ev.mapping->state, PCP_MAPPING_RENEWING);
                        n_ev++;
                }
        }
        /* the spread: all due within 1 ms */
        h->now += 1;
        pcp_engine_process_timers(h->e, h->now);
        while ((n = pcp_engine_next_datagram(h->e, NULL, NULL, buf, sizeof(buf))) > 0) {
                assert_int_equal(n, 60); /* a MAP request, suggesting what it had */
                n_dg++;
        }
        counting = false;
        assert_int_equal(n, 0);
        assert_int_equal(allocations, 0);
        assert_int_equal(n_reset, 1);
        assert_int_equal(n_ev, N);
        assert_int_equal(n_dg, N);
        assert_int_equal(pcp_engine_get_stats(h->e)->sent, 1 + N + N); /* the probe, the creations, these */
        h_free(h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nothing_from_inside),
                cmocka_unit_test(test_small_buffer),
                cmocka_unit_test(test_request_follows_address),
                cmocka_unit_test(test_events_coalesced),
                cmocka_unit_test(test_remove_server_drops_its_output),
                cmocka_unit_test(test_recreations_coalesced),
                cmocka_unit_test(test_forget_drops_output),
                cmocka_unit_test(test_unpulled_deletions_count),
                cmocka_unit_test(test_free_with_output_queued),
                cmocka_unit_test(test_mass_recreation_allocates_nothing),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
