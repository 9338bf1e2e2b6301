/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The engine against the reference server core (tests/refserver/refsrv.c), both
 * in-process on one virtual clock: restarts, address changes, lost and broken packets. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "engine-harness.h"
#include "refsrv.h"

#define SRV "192.168.1.1"
#define LOCAL "192.168.1.10"
#define CLIENT_PORT 40000

typedef struct loop {
        harness *h;
        refsrv *srv;
        uint32_t sid;
        size_t delivered;
        struct in6_addr srv_addr;
        uint64_t to_server, to_client, announces;
        /* requests per second of virtual time: the current second, its count, the most in
         * any second; over limit_per_sec (0: no limit) the test fails at once (a storm
         * would otherwise never leave one instant of virtual time) */
        uint64_t sec, sec_n, max_per_sec, limit_per_sec;
} loop;

static void loop_init(loop *l, uint64_t seed, const refsrv_config *cfg_in) {
        refsrv_config cfg;

        memset(l, 0, sizeof(*l));
        if (cfg_in != NULL)
                cfg = *cfg_in;
        else
                refsrv_config_init(&cfg);
        cfg.seed = seed;
        l->h = h_new(seed, NULL);
        l->srv_addr = h_ip(SRV);
        /* the server has been up since virtual time 0: an epoch of ~1000 s at our start,
         * so that a restart is visible in the epoch (RFC 6887 §8.5 slack is 1/16) */
        assert_int_equal(refsrv_new(&cfg, 0, &l->srv), 0);
        l->sid = h_server(l->h, SRV, LOCAL);
}

static void loop_done(loop *l) {
        refsrv_free(l->srv);
        h_free(l->h);
}

/* move every datagram that is due, both ways, until nothing is left at this instant */
static void loop_settle(loop *l) {
        harness *h = l->h;
        bool again = true;

        while (again) {
                refsrv_datagram d;

                again = false;
                for (; l->delivered < h->n_sent; l->delivered++) {
                        const h_sent *s = &h->sent[l->delivered];
                        struct sockaddr_in6 src = { .sin6_family = AF_INET6, .sin6_port = htons(CLIENT_PORT) };

                        assert_int_equal(s->server_id, l->sid);
                        src.sin6_addr = h_ip(LOCAL);
                        refsrv_receive(l->srv, h->now, &src, &l->srv_addr, s->buf, s->len);
                        l->to_server++;
                        if (s->t / SEC != l->sec) {
                                l->sec = s->t / SEC;
                                l->sec_n = 0;
                        }
                        if (++l->sec_n > l->max_per_sec)
                                l->max_per_sec = l->sec_n;
                        if (l->limit_per_sec > 0 && l->sec_n > l->limit_per_sec)
                                fail_msg("more than %llu requests within second %llu of virtual time",
                                         (unsigned long long) l->limit_per_sec, (unsigned long long) l->sec);
                }
                refsrv_tick(l->srv, h->now);
                while (refsrv_pop(l->srv, h->now, &d) == 1) {
                        struct sockaddr_in6 from = { .sin6_family = AF_INET6, .sin6_port = htons(PCP_SERVER_PORT) };

                        from.sin6_addr = d.local_addr;
                        if (d.alt_source)
                                from.sin6_port = htons(PCP_SERVER_PORT + 1000);
                        if (d.kind == REFSRV_DATAGRAM_ANNOUNCE) {
                                l->announces++;
                                pcp_engine_receive_announce(h->e, h->now, &from, d.data, d.len);
                        } else {
                                assert_int_equal(ntohs(d.dst.sin6_port), CLIENT_PORT);
                                l->to_client++;
                                pcp_engine_receive(h->e, h->now, l->sid, 0, &from, d.data, d.len);
                        }
                        again = true;
                }
                if (l->delivered < h->n_sent)
                        again = true;
        }
        if (h->n_sent > 10000) {
                h_clear_sent(h);
                l->delivered = 0;
        }
}

static void loop_run_until(loop *l, uint64_t t) {
        harness *h = l->h;

        for (;;) {
                uint64_t de, ds, d;

                loop_settle(l);
                de = pcp_engine_next_deadline(h->e);
                ds = refsrv_next_deadline(l->srv);
                d = de < ds ? de : ds;
                if (d > t)
                        break;
                if (d > h->now)
                        h->now = d;
                pcp_engine_process_timers(h->e, h->now);
        }
        loop_settle(l);
        h->now = t;
        loop_settle(l);
}

static void loop_run(loop *l, uint64_t dt) {
        loop_run_until(l, l->h->now + dt);
}

static size_t add_mappings(loop *l, uint64_t *ids, size_t n, uint32_t lifetime) {
        for (size_t i = 0; i < n; i++)
                ids[i] = h_map(l->h, l->sid, i % 2 ? IPPROTO_UDP : IPPROTO_TCP, (uint16_t) (20000 + i / 2), lifetime);
        return n;
}

static const refsrv_mapping *srv_find(loop *l, const pcp_mapping_info *m) {
        for (size_t i = 0; i < refsrv_n_mappings(l->srv); i++) {
                const refsrv_mapping *r = refsrv_get_mapping(l->srv, i);
                if (r != NULL && r->protocol == m->protocol && r->internal_port == m->internal_port)
                        return r;
        }
        return NULL;
}

/* every mapping active, and the engine agrees with the server on each */
static void check_all_agree(loop *l, const uint64_t *ids, size_t n) {
        assert_int_equal(refsrv_n_mappings(l->srv), n);
        for (size_t i = 0; i < n; i++) {
                const pcp_mapping_info *m = h_mapping(l->h, ids[i]);
                const refsrv_mapping *r = srv_find(l, m);

                assert_int_equal(m->state, PCP_MAPPING_ACTIVE);
                if (r == NULL)
                        fail_msg("mapping %u/%u not on the server", m->protocol, m->internal_port);
                assert_int_equal(m->external_port, r->external_port);
                assert_memory_equal(&m->external_addr, &r->external_addr, 16);
                if (!m->natpmp)
                        assert_memory_equal(m->nonce, r->nonce, PCP_NONCE_LEN);
        }
}

static void test_loop_basic(void **state) {
        loop l;
        uint64_t ids[40];
        const pcp_engine_stats *st;

        loop_init(&l, 1, NULL);
        add_mappings(&l, ids, 40, 600);
        loop_run(&l, 1 * SEC);
        assert_int_equal(h_srv(l.h, l.sid)->state, PCP_SERVER_PCP);
        check_all_agree(&l, ids, 40);
        assert_true(h_srv(l.h, l.sid)->has_external_addr);
        /* ten hours of renewals */
        loop_run(&l, 10 * HOUR);
        check_all_agree(&l, ids, 40);
        st = pcp_engine_get_stats(l.h->e);
        assert_true(st->renewals >= 40 * (10 * 3600 / 375));
        for (int i = 0; i < _PCP_DROP_MAX; i++)
                assert_int_equal(st->dropped[i], 0);
        assert_int_equal(st->epoch_resets, 0);
        /* every request was answered once: no retransmissions on a perfect link */
        assert_int_equal(st->retransmissions, 0);

        /* delete them all */
        for (size_t i = 0; i < 40; i++)
                assert_int_equal(pcp_engine_remove_mapping(l.h->e, l.h->now, ids[i]), 0);
        loop_run(&l, 1 * SEC);
        assert_int_equal(pcp_engine_mapping_count(l.h->e), 0);
        assert_int_equal(refsrv_n_mappings(l.srv), 0);
        assert_int_equal(h_count_events(l.h, PCP_EVENT_MAPPING_DELETED, 0), 40);
        for (size_t i = 0; i < l.h->n_ev; i++)
                if (l.h->ev[i].type == PCP_EVENT_MAPPING_DELETED)
                        assert_true(l.h->ev[i].deleted_upstream);
        loop_done(&l);
}

static void test_loop_restart(void **state) {
        static const unsigned flags[] = { REFSRV_RESTART_ANNOUNCE, 0, REFSRV_RESTART_ANNOUNCE | REFSRV_RESTART_KEEP_STATE };

        for (size_t f = 0; f < 3; f++) {
                loop l;
                uint64_t ids[30];
                uint16_t ports[30];

                loop_init(&l, 10 + f, NULL);
                add_mappings(&l, ids, 30, 3600);
                loop_run(&l, 100 * SEC);
                check_all_agree(&l, ids, 30);
                for (size_t i = 0; i < 30; i++)
                        ports[i] = h_mapping(l.h, ids[i])->external_port;
                h_clear(l.h);
                l.delivered = 0;

                refsrv_restart(l.srv, l.h->now, flags[f]);
                if (flags[f] & REFSRV_RESTART_KEEP_STATE)
                        assert_int_equal(refsrv_n_mappings(l.srv), 30);
                else
                        assert_int_equal(refsrv_n_mappings(l.srv), 0);
                if (flags[f] & REFSRV_RESTART_ANNOUNCE) {
                        /* the ANNOUNCE: everything back within the 5 s spread */
                        loop_run(&l, 6 * SEC);
                        assert_true(l.announces >= 1);
                        assert_int_equal(h_count_events(l.h, PCP_EVENT_EPOCH_RESET, 0), 1);
                        assert_true(h_last_event(l.h, PCP_EVENT_EPOCH_RESET, 0)->from_announce);
                } else {
                        /* silent: the first renewal sees the epoch jump, the rest follow at once */
                        loop_run(&l, 2400 * SEC);
                        assert_int_equal(h_count_events(l.h, PCP_EVENT_EPOCH_RESET, 0), 1);
                        assert_false(h_last_event(l.h, PCP_EVENT_EPOCH_RESET, 0)->from_announce);
                }
                check_all_agree(&l, ids, 30);
                /* recreated with the same external ports (suggested) */
                for (size_t i = 0; i < 30; i++)
                        assert_int_equal(h_mapping(l.h, ids[i])->external_port, ports[i]);
                loop_run(&l, 5 * HOUR);
                check_all_agree(&l, ids, 30);
                assert_int_equal(pcp_engine_get_stats(l.h->e)->epoch_resets, 1);
                loop_done(&l);
        }
}

static void test_loop_external_change(void **state) {
        loop l;
        uint64_t ids[20];
        struct in6_addr ext = h_ip("203.0.113.99");

        loop_init(&l, 21, NULL);
        add_mappings(&l, ids, 20, 3600);
        loop_run(&l, 10 * SEC);
        check_all_agree(&l, ids, 20);
        h_clear(l.h);
        l.delivered = 0;
        assert_int_equal(refsrv_set_external(l.srv, l.h->now, &ext), 0);
        loop_run(&l, 6 * SEC);
        check_all_agree(&l, ids, 20);
        for (size_t i = 0; i < 20; i++) {
                assert_memory_equal(&h_mapping(l.h, ids[i])->external_addr, &ext, 16);
                assert_true(h_count_events(l.h, PCP_EVENT_MAPPING, ids[i]) >= 1);
        }
        assert_memory_equal(&h_srv(l.h, l.sid)->external_addr, &ext, 16);
        loop_run(&l, 3 * HOUR);
        check_all_agree(&l, ids, 20);
        loop_done(&l);
}

static void test_loop_lossy(void **state) {
        loop l;
        uint64_t ids[20];
        const pcp_engine_stats *st;

        loop_init(&l, 31, NULL);
        assert_int_equal(refsrv_set_drop(l.srv, 0.3, 0.3), 0);
        add_mappings(&l, ids, 20, 1200);
        loop_run(&l, 10 * MINUTE);
        /* some may be between a lost renewal and its retry; all are granted */
        for (size_t i = 0; i < 20; i++) {
                pcp_mapping_state s = h_mapping(l.h, ids[i])->state;
                assert_true(s == PCP_MAPPING_ACTIVE || s == PCP_MAPPING_RENEWING);
        }
        loop_run(&l, 6 * HOUR);
        st = pcp_engine_get_stats(l.h->e);
        assert_true(st->retransmissions > 0);
        /* a lossy link never costs a mapping: renewals start at half the lifetime */
        for (size_t i = 0; i < 20; i++)
                assert_int_not_equal(h_mapping(l.h, ids[i])->error, PCP_MAPPING_ERROR_EXPIRED);
        assert_int_equal(refsrv_set_drop(l.srv, 0, 0), 0);
        loop_run(&l, HOUR);
        check_all_agree(&l, ids, 20);
        loop_done(&l);
}

static void test_loop_faults(void **state) {
        static const struct {
                refsrv_fault fault;
                pcp_drop_reason reason;
        } faults[] = {
                { REFSRV_FAULT_TRUNCATED, PCP_DROP_MALFORMED },
                { REFSRV_FAULT_BAD_R_BIT, PCP_DROP_MALFORMED },
                { REFSRV_FAULT_WRONG_NONCE, PCP_DROP_UNKNOWN_NONCE },
                { REFSRV_FAULT_WRONG_OPCODE, PCP_DROP_MALFORMED }, /* opcode 2: body too short for PEER */
                { REFSRV_FAULT_WRONG_PROTOCOL, PCP_DROP_MISMATCH },
                { REFSRV_FAULT_WRONG_PORT, PCP_DROP_MISMATCH },
                { REFSRV_FAULT_WRONG_VERSION, PCP_DROP_WRONG_VERSION },
                { REFSRV_FAULT_BAD_RESULT, PCP_DROP_MALFORMED },
                { REFSRV_FAULT_SPOOF, PCP_DROP_WRONG_SOURCE },
        };

        for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
                loop l;
                uint64_t ids[4];
                const pcp_engine_stats *st;
                uint64_t total = 0;

                loop_init(&l, 40 + f, NULL);
                loop_run(&l, 1 * SEC); /* probe answered cleanly */
                assert_int_equal(refsrv_set_fault(l.srv, faults[f].fault, 4, true), 0);
                add_mappings(&l, ids, 4, 3600);
                loop_run(&l, 1 * SEC);
                st = pcp_engine_get_stats(l.h->e);
                for (int i = 0; i < _PCP_DROP_MAX; i++)
                        total += st->dropped[i];
                /* each broken answer dropped (WRONG_VERSION may be read as a version offer) */
                if (faults[f].fault != REFSRV_FAULT_WRONG_OPCODE)
                        assert_true(st->dropped[faults[f].reason] >= 1);
                assert_true(total >= 4);
                /* and the valid answers that followed were taken */
                if (h_srv(l.h, l.sid)->state == PCP_SERVER_PCP)
                        check_all_agree(&l, ids, 4);
                loop_run(&l, 2 * HOUR);
                check_all_agree(&l, ids, 4);
                loop_done(&l);
        }
}

static void test_loop_natpmp(void **state) {
        refsrv_config cfg;
        loop l;
        uint64_t ids[10], sctp;

        refsrv_config_init(&cfg);
        cfg.mode = REFSRV_MODE_NATPMP_ONLY;
        loop_init(&l, 51, &cfg);
        add_mappings(&l, ids, 10, 3600);
        sctp = h_map(l.h, l.sid, 132, 7000, 3600);
        loop_run(&l, 20 * SEC);
        assert_int_equal(h_srv(l.h, l.sid)->state, PCP_SERVER_NATPMP);
        assert_int_equal(h_mapping(l.h, sctp)->error, PCP_MAPPING_ERROR_UNSUPPORTED);
        assert_int_equal(pcp_engine_forget_mapping(l.h->e, sctp), 0);
        check_all_agree(&l, ids, 10);
        for (size_t i = 0; i < 10; i++)
                assert_true(h_mapping(l.h, ids[i])->natpmp);
        loop_run(&l, 5 * HOUR);
        check_all_agree(&l, ids, 10);
        /* PCP switched on: the re-probe (every 30 min) moves everything to PCP. The
         * server refuses PCP requests for ports its NAT-PMP leases still hold
         * (NOT_AUTHORIZED: a long error for each of those mappings, retried after the
         * error lifetime), so this only converges once those leases ran out.
         * test_loop_natpmp_to_pcp_refused_ports: other mappings are not held up. */
        assert_int_equal(refsrv_set_mode(l.srv, REFSRV_MODE_BOTH), 0);
        loop_run(&l, 4 * HOUR);
        assert_int_equal(h_srv(l.h, l.sid)->state, PCP_SERVER_PCP);
        for (size_t i = 0; i < 10; i++) {
                assert_false(h_mapping(l.h, ids[i])->natpmp);
                assert_int_equal(h_mapping(l.h, ids[i])->state, PCP_MAPPING_ACTIVE);
        }
        check_all_agree(&l, ids, 10);
        loop_done(&l);
}

/* A NAT-PMP-only server turns PCP on: the engine moves to PCP at its re-probe, and the
 * server refuses (NOT_AUTHORIZED) the ports its NAT-PMP leases still hold. That refusal is
 * about those ports: mappings asked for meanwhile go through at once, the server is not
 * taken for one with PCP switched off (it used to be, for 30 min, stalling everything). */
static void test_loop_natpmp_to_pcp_refused_ports(void **state) {
        refsrv_config cfg;
        loop l;
        uint64_t ids[10], fresh[4];

        refsrv_config_init(&cfg);
        cfg.mode = REFSRV_MODE_NATPMP_ONLY;
        loop_init(&l, 52, &cfg);
        add_mappings(&l, ids, 10, 3600);
        loop_run(&l, 20 * SEC);
        assert_int_equal(h_srv(l.h, l.sid)->state, PCP_SERVER_NATPMP);
        assert_int_equal(refsrv_set_mode(l.srv, REFSRV_MODE_BOTH), 0);
        /* the re-probe comes 30 min after the switch to NAT-PMP */
        while (h_srv(l.h, l.sid)->state != PCP_SERVER_PCP) {
                assert_true(l.h->now < 40 * MINUTE + 1000 * SEC);
                loop_run(&l, 1 * SEC);
        }
        loop_run(&l, 1 * SEC);
        size_t refused = 0;
        for (size_t i = 0; i < 10; i++)
                if (h_mapping(l.h, ids[i])->result == PCP_RESULT_NOT_AUTHORIZED) {
                        refused++;
                        assert_int_equal(h_mapping(l.h, ids[i])->state, PCP_MAPPING_FAILED);
                        assert_int_equal(h_mapping(l.h, ids[i])->error, PCP_MAPPING_ERROR_RESULT);
                }
        assert_true(refused >= 1);
        assert_int_equal(h_srv(l.h, l.sid)->state, PCP_SERVER_PCP);
        /* new mappings: granted over PCP within a second */
        for (size_t i = 0; i < 4; i++)
                fresh[i] = h_map(l.h, l.sid, IPPROTO_TCP, (uint16_t) (30000 + i), 3600);
        loop_run(&l, 1 * SEC);
        for (size_t i = 0; i < 4; i++) {
                assert_int_equal(h_mapping(l.h, fresh[i])->state, PCP_MAPPING_ACTIVE);
                assert_false(h_mapping(l.h, fresh[i])->natpmp);
        }
        assert_int_equal(h_srv(l.h, l.sid)->state, PCP_SERVER_PCP);
        /* the refused ones get theirs once the leases ran out (retried every 30 min) */
        loop_run(&l, 3 * HOUR);
        for (size_t i = 0; i < 10; i++) {
                assert_int_equal(h_mapping(l.h, ids[i])->state, PCP_MAPPING_ACTIVE);
                assert_false(h_mapping(l.h, ids[i])->natpmp);
        }
        loop_done(&l);
}

/* A server answering everything with a random epoch (issue 8, item 7: 200 mappings made
 * 1,928 requests/s and 38,539 log lines in 20 s): at most one recreation of the 200
 * mappings per 5 s, the interval doubling, so at most 200 requests in any second (the
 * creates, or one recreation) and a handful of recreations a minute; one episode, so one
 * EPOCH_RESET not flagged repeated. Back to a sane epoch, a real restart a while later is
 * a new episode and recreated at once. */
static void test_loop_random_epoch(void **state) {
        enum { N = 200 };
        loop l;
        uint64_t ids[N], t0, last_reset = 0;
        size_t resets = 0, first = 0;

        loop_init(&l, 61, NULL);
        loop_run(&l, 1 * SEC);
        refsrv_set_random_epoch(l.srv, true);
        l.limit_per_sec = N + N / 10;
        t0 = l.h->now;
        l.to_server = 0;
        add_mappings(&l, ids, N, 3600);
        loop_run(&l, 60 * SEC);
        /* a recreation at t0, t0 + 5, + 15, + 35 s (the interval 5, 10, 20, 40 s): 5 x N */
        assert_true(l.max_per_sec <= N + N / 10);
        if (l.to_server > 5 * N + N / 10)
                fail_msg("%llu requests in 60 s", (unsigned long long) l.to_server);
        for (size_t i = 0; i < l.h->n_ev; i++) {
                const h_event *ev = &l.h->ev[i];
                if (ev->type != PCP_EVENT_EPOCH_RESET)
                        continue;
                if (resets > 0 && ev->t - last_reset < 5 * SEC)
                        fail_msg("recreations %llu ms apart", (unsigned long long) (ev->t - last_reset));
                first += !ev->repeated;
                last_reset = ev->t;
                resets++;
        }
        if (resets < 2 || resets > 4)
                fail_msg("%zu recreations in 60 s", resets);
        assert_int_equal(first, 1);
        /* every mapping is held all the same */
        for (size_t i = 0; i < N; i++)
                assert_int_equal(h_mapping(l.h, ids[i])->state, PCP_MAPPING_ACTIVE);

        /* sane again; after the episode is over, a real restart is acted on at once */
        refsrv_set_random_epoch(l.srv, false);
        loop_run(&l, 20 * MINUTE);
        check_all_agree(&l, ids, N);
        h_clear(l.h);
        l.delivered = 0;
        refsrv_restart(l.srv, l.h->now, REFSRV_RESTART_ANNOUNCE);
        loop_run(&l, 6 * SEC);
        assert_int_equal(h_count_events(l.h, PCP_EVENT_EPOCH_RESET, 0), 1);
        assert_false(h_last_event(l.h, PCP_EVENT_EPOCH_RESET, 0)->repeated);
        check_all_agree(&l, ids, N);
        (void) t0;
        loop_done(&l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_loop_basic),
                cmocka_unit_test(test_loop_restart),
                cmocka_unit_test(test_loop_external_change),
                cmocka_unit_test(test_loop_lossy),
                cmocka_unit_test(test_loop_faults),
                cmocka_unit_test(test_loop_natpmp),
                cmocka_unit_test(test_loop_natpmp_to_pcp_refused_ports),
                cmocka_unit_test(test_loop_random_epoch),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
