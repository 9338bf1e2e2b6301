/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcp_engine_config.max_in_flight: at most N first requests unanswered per server, the
 * rest waiting FIFO and sent as answers come in or in-flight requests time out; deletes
 * count, renewals and retransmissions do not; nothing waits below the bound. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "engine-harness.h"

#define SRV "192.168.1.1"
#define LOCAL "192.168.1.10"
#define EXT "198.51.100.7"

static uint32_t ep(harness *h) {
        return (uint32_t) (h->now / SEC);
}

/* an engine with max_in_flight = n (0: the default) and a server that answered its probe */
static harness *inflight_harness(uint64_t seed, uint32_t n, uint32_t *ret_sid) {
        pcp_engine_config cfg = { .max_in_flight = n };
        harness *h = h_new(seed, &cfg);
        uint32_t sid = h_server(h, SRV, LOCAL);

        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 0), PCP_RESULT_SUCCESS, 0, ep(h));
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        h_clear(h);
        *ret_sid = sid;
        return h;
}

static void map_n(harness *h, uint32_t sid, uint64_t *ids, size_t n, uint16_t first_port) {
        for (size_t i = 0; i < n; i++)
                ids[i] = h_map(h, sid, IPPROTO_UDP, (uint16_t) (first_port + i), 3600);
}

static void grant(harness *h, uint64_t id) {
        const h_sent *req = h_last_for(h, id);

        assert_non_null(req);
        h_reply(h, req, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 40000);
}

/* N + k added at once: exactly N requests leave, the k wait, pending and unsent */
static void test_bound(void **state) {
        static const uint32_t bounds[] = { 1, 8, 0 /* default: 128 */ };

        for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++) {
                uint32_t sid, n = bounds[b] != 0 ? bounds[b] : 128;
                harness *h = inflight_harness(b + 1, bounds[b], &sid);
                uint64_t ids[128 + 50];

                map_n(h, sid, ids, n + 50, 1000);
                assert_int_equal(h_count(h, PCP_OPCODE_MAP), n);
                assert_int_equal(h_srv(h, sid)->n_in_flight, n);
                assert_int_equal(h_srv(h, sid)->n_waiting, 50);
                for (size_t i = 0; i < n; i++)
                        assert_int_equal(h_count_for(h, ids[i]), 1);
                for (size_t i = n; i < n + 50; i++) {
                        assert_int_equal(h_count_for(h, ids[i]), 0);
                        assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_PENDING);
                }
                h_free(h);
        }
}

/* each answer (a grant or an error) releases exactly one waiting request, the oldest */
static void test_answer_releases_one(void **state) {
        uint32_t sid;
        harness *h = inflight_harness(11, 4, &sid);
        uint64_t ids[12];

        map_n(h, sid, ids, 12, 2000);
        assert_int_equal(h->n_sent, 4);
        for (size_t k = 0; k < 8; k++) {
                size_t before = h->n_sent;

                /* answered out of order, some with an error: it is the slot that counts */
                if (k % 3 == 2)
                        h_reply(h, h_last_for(h, ids[k]), PCP_RESULT_NO_RESOURCES, 30, ep(h), EXT, 0);
                else
                        grant(h, ids[k]);
                assert_int_equal(h->n_sent, before + 1);
                assert_int_equal(h_count_for(h, ids[k + 4]), 1); /* FIFO: the oldest waiting */
                assert_int_equal(h_srv(h, sid)->n_in_flight, 4);
                assert_int_equal(h_srv(h, sid)->n_waiting, 12 - 4 - (k + 1));
        }
        /* nothing waits any more: an answer releases nothing */
        grant(h, ids[8]);
        assert_int_equal(h_srv(h, sid)->n_in_flight, 3);
        assert_int_equal(h->n_sent, 12);
        h_free(h);
}

/* an in-flight request unanswered for its retransmission timeout makes room; only the
 * requests in flight are retransmitted, and a retransmission takes no slot */
static void test_timeout_makes_room(void **state) {
        uint32_t sid;
        harness *h = inflight_harness(12, 4, &sid);
        uint64_t ids[10], t0;

        map_n(h, sid, ids, 10, 3000);
        t0 = h->now;
        /* before the first timeout (>= 2.7 s): nothing more */
        h_advance(h, 2600);
        assert_int_equal(h->n_sent, 4);
        assert_int_equal(pcp_engine_get_stats(h->e)->retransmissions, 0);
        /* every first timeout has passed (<= 3.3 s): the 4 are retransmitted, 4 more are
         * sent for the first time, 2 still wait */
        h_advance_to(h, t0 + 3300);
        assert_int_equal(pcp_engine_get_stats(h->e)->retransmissions, 4);
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(h_count_for(h, ids[i]), 2);
        for (size_t i = 4; i < 8; i++)
                assert_int_equal(h_count_for(h, ids[i]), 1);
        for (size_t i = 8; i < 10; i++)
                assert_int_equal(h_count_for(h, ids[i]), 0);
        assert_int_equal(h_srv(h, sid)->n_in_flight, 4);
        assert_int_equal(h_srv(h, sid)->n_waiting, 2);
        /* an answer to a retransmitted one frees no slot: it holds none */
        grant(h, ids[0]);
        assert_int_equal(h_count_for(h, ids[8]), 0);
        assert_int_equal(h_srv(h, sid)->n_in_flight, 4);
        /* the next timeouts (<= 6.6 s) send the last two; none was ever retransmitted
         * before its first send */
        h_advance_to(h, t0 + 6600);
        assert_int_equal(h_count_for(h, ids[8]), 1);
        assert_int_equal(h_count_for(h, ids[9]), 1);
        assert_int_equal(h_srv(h, sid)->n_waiting, 0);
        h_free(h);
}

/* removing a mapping whose first request is still waiting sends nothing; removing one in
 * flight sends its delete, which keeps the slot until answered */
static void test_delete_waiting(void **state) {
        uint32_t sid;
        harness *h = inflight_harness(13, 2, &sid);
        uint64_t ids[5];
        const h_event *ev;

        map_n(h, sid, ids, 5, 4000);
        h_clear(h);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, ids[2]), 0);
        h_drain(h);
        assert_int_equal(h->n_sent, 0);
        ev = h_last_event(h, PCP_EVENT_MAPPING_DELETED, ids[2]);
        assert_non_null(ev);
        assert_false(ev->deleted_upstream);
        assert_null(pcp_engine_mapping_get(h->e, ids[2]));
        assert_int_equal(h_srv(h, sid)->n_waiting, 2);

        /* an in-flight one: its delete goes at once and keeps the slot */
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, ids[0]), 0);
        h_drain(h);
        assert_int_equal(h->n_sent, 1);
        {
                pcp_msg m;
                h_decode(h_last_for(h, ids[0]), &m);
                assert_int_equal(m.lifetime, 0);
        }
        assert_int_equal(h_srv(h, sid)->n_in_flight, 2);
        /* the delete answered: the slot goes to the oldest waiting (ids[3], not the removed
         * ids[2]) */
        h_reply(h, h_last_for(h, ids[0]), PCP_RESULT_SUCCESS, 0, ep(h), EXT, 0);
        assert_non_null(h_last_event(h, PCP_EVENT_MAPPING_DELETED, ids[0]));
        assert_int_equal(h->n_sent, 2);
        assert_int_equal(h_count_for(h, ids[3]), 1);
        assert_int_equal(h_count_for(h, ids[4]), 0);

        /* forgetting an in-flight one frees its slot too: due at once */
        h_clear(h);
        assert_int_equal(pcp_engine_forget_mapping(h->e, ids[1]), 0);
        assert_int_equal(pcp_engine_next_deadline(h->e), 0);
        pcp_engine_process_timers(h->e, h->now);
        h_drain(h);
        assert_int_equal(h_count_for(h, ids[4]), 1);
        assert_int_equal(h_srv(h, sid)->n_waiting, 0);
        h_free(h);
}

/* a restored mapping (its nonce from before a restart) may be held upstream: removed while
 * its first request waits, its delete goes out (at once: deletes never wait) */
static void test_delete_waiting_restored(void **state) {
        static const uint8_t nonce[PCP_NONCE_LEN] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2 };
        uint32_t sid;
        harness *h = inflight_harness(17, 1, &sid);
        pcp_mapping_params p;
        uint64_t first, restored;
        pcp_msg m;

        first = h_map(h, sid, IPPROTO_UDP, 4400, 3600);
        h_params(&p, sid, IPPROTO_UDP, 4401, 3600);
        p.has_nonce = true;
        memcpy(p.nonce, nonce, PCP_NONCE_LEN);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &restored), 0);
        h_drain(h);
        assert_int_equal(h_count_for(h, restored), 0);
        assert_int_equal(h_srv(h, sid)->n_waiting, 1);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, restored), 0);
        h_drain(h);
        assert_int_equal(h_count_for(h, restored), 1);
        h_decode(h_last_for(h, restored), &m);
        assert_int_equal(m.lifetime, 0);
        assert_memory_equal(m.nonce, nonce, PCP_NONCE_LEN);
        assert_int_equal(h_mapping(h, restored)->state, PCP_MAPPING_DELETING);
        assert_int_equal(h_srv(h, sid)->n_in_flight, 2); /* the first one and this delete */
        assert_int_equal(h_srv(h, sid)->n_waiting, 0);
        (void) first;
        h_free(h);
}

/* below the bound nothing waits: every request of a small batch leaves in the call that
 * made it; and after a burst has drained, so does the next one */
static void test_small_batch_at_once(void **state) {
        uint32_t sid;
        harness *h = inflight_harness(14, 0, &sid);
        uint64_t ids[300];

        for (size_t i = 0; i < 5; i++) {
                ids[i] = h_map(h, sid, IPPROTO_TCP, (uint16_t) (5000 + i), 3600);
                assert_int_equal(h_count_for(h, ids[i]), 1);
                assert_int_equal(h_last(h)->t, h->now);
        }
        for (size_t i = 0; i < 5; i++)
                grant(h, ids[i]);
        /* a burst: answered in full, then one more goes at once */
        map_n(h, sid, ids, 300, 6000);
        for (size_t i = 0; i < 300; i++)
                grant(h, ids[i]);
        assert_int_equal(h_srv(h, sid)->n_waiting, 0);
        assert_int_equal(h_srv(h, sid)->n_in_flight, 0);
        h_clear(h);
        ids[0] = h_map(h, sid, IPPROTO_TCP, 7000, 3600);
        assert_int_equal(h_count_for(h, ids[0]), 1);
        h_free(h);
}

/* renewals go on time whatever waits, and take no slot */
static void test_renewals_not_held(void **state) {
        uint32_t sid;
        harness *h = inflight_harness(15, 2, &sid);
        uint64_t g[2], ids[3], t0 = h->now;

        for (size_t i = 0; i < 2; i++) {
                g[i] = h_map(h, sid, IPPROTO_TCP, (uint16_t) (8000 + i), 8);
                h_reply(h, h_last_for(h, g[i]), PCP_RESULT_SUCCESS, 8, ep(h), EXT, 41000);
                assert_int_equal(h_mapping(h, g[i])->state, PCP_MAPPING_ACTIVE);
        }
        /* renewals due in [4, 5] s; at 3.9 s the bound is reached and one waits */
        h_advance_to(h, t0 + 3900);
        h_clear(h);
        map_n(h, sid, ids, 3, 9000);
        assert_int_equal(h->n_sent, 2);
        assert_int_equal(h_srv(h, sid)->n_waiting, 1);
        h_advance_to(h, t0 + 5100); /* before the in-flight ones time out (>= 6.6 s) */
        assert_int_equal(h_count_for(h, g[0]), 1);
        assert_int_equal(h_count_for(h, g[1]), 1);
        assert_int_equal(h_count_for(h, ids[2]), 0);
        assert_int_equal(h_srv(h, sid)->n_in_flight, 2);
        /* a renewal's answer frees nothing either */
        grant(h, g[0]);
        assert_int_equal(h_count_for(h, ids[2]), 0);
        h_free(h);
}

/* a recreation after an ANNOUNCE of more mappings than the bound: never more than N first
 * requests unanswered; each one that times out lets one more go; all are asked in the end */
static void test_recreation_bounded(void **state) {
        uint32_t sid;
        harness *h = inflight_harness(16, 4, &sid);
        uint64_t ids[10], t0;
        size_t distinct = 0;
        bool waited = false;

        map_n(h, sid, ids, 10, 10000);
        for (size_t i = 0; i < 10; i++)
                grant(h, ids[i]);
        assert_int_equal(h_srv(h, sid)->n_in_flight, 0);
        h_advance(h, 10 * SEC);
        h_clear(h);
        h_announce(h, SRV, ep(h)); /* recreate all, spread over <= 5 s, no answers */
        t0 = h->now;
        while (h->now < t0 + 8 * SEC && h_step(h)) {
                assert_true(h_srv(h, sid)->n_in_flight <= 4);
                waited |= h_srv(h, sid)->n_waiting > 0;
        }
        for (size_t i = 0; i < 10; i++)
                distinct += h_count_for(h, ids[i]) > 0;
        assert_true(waited);
        assert_true(distinct <= 4 + pcp_engine_get_stats(h->e)->retransmissions);
        h_advance(h, 60 * SEC);
        for (size_t i = 0; i < 10; i++)
                assert_true(h_count_for(h, ids[i]) > 0);
        h_free(h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bound),
                cmocka_unit_test(test_answer_releases_one),
                cmocka_unit_test(test_timeout_makes_room),
                cmocka_unit_test(test_delete_waiting),
                cmocka_unit_test(test_delete_waiting_restored),
                cmocka_unit_test(test_small_batch_at_once),
                cmocka_unit_test(test_renewals_not_held),
                cmocka_unit_test(test_recreation_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
