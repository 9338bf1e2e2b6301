/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The RFC 6887 client rules of pcp-engine, on a virtual clock. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-harness.h"

#define SRV "192.168.1.1"
#define LOCAL "192.168.1.10"
#define EXT "198.51.100.7"
#define IP(s) ((const struct in6_addr[]){ h_ip(s) })

/* a server epoch that advances exactly with the virtual clock */
static uint32_t ep(harness *h) {
        return (uint32_t) (h->now / SEC);
}

/* a server that answered its ANNOUNCE probe: state PCP; sent/events cleared */
static uint32_t pcp_server(harness *h) {
        uint32_t sid = h_server(h, SRV, LOCAL);
        const h_sent *probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);

        assert_non_null(probe);
        h_reply_announce(h, probe, PCP_RESULT_SUCCESS, 0, ep(h));
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        h_clear(h);
        return sid;
}

/* a mapping granted lifetime seconds with external EXT:ext_port */
static uint64_t granted_map(harness *h, uint32_t sid, uint16_t port, uint32_t lifetime, uint16_t ext_port) {
        uint64_t id = h_map(h, sid, IPPROTO_TCP, port, lifetime);
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, lifetime, ep(h), EXT, ext_port);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        return id;
}

static bool in_range(uint64_t v, uint64_t lo, uint64_t hi) {
        return v >= lo && v <= hi;
}

#define assert_in(v, lo, hi)                                                                        \
        do {                                                                                        \
                uint64_t _v = (v), _lo = (lo), _hi = (hi);                                          \
                if (!in_range(_v, _lo, _hi))                                                        \
                        fail_msg("%s = %llu not in [%llu, %llu]", #v, (unsigned long long) _v,      \
                                 (unsigned long long) _lo, (unsigned long long) _hi);               \
        } while (0)

/* ---- epoch formulas ---- */

static void test_epoch_formula(void **state) {
        /* back by exactly one second: fine; by two: lost state */
        assert_true(pcp_epoch_valid(100, 5000, 99, 5000));
        assert_false(pcp_epoch_valid(100, 5000, 98, 5000));
        assert_true(pcp_epoch_valid(100, 5000, 100, 5000));
        /* same speed */
        assert_true(pcp_epoch_valid(100, 5000, 1100, 1005000));

        /* client_delta = 1600 s: server_delta + 2 < 1600 - 100 is invalid */
        assert_true(pcp_epoch_valid(1000, 0, 1000 + 1498, 1600 * SEC));
        assert_false(pcp_epoch_valid(1000, 0, 1000 + 1497, 1600 * SEC));
        /* server_delta = 1600 s: client_delta + 2 < 1600 - 100 is invalid */
        assert_true(pcp_epoch_valid(1000, 0, 1000 + 1600, 1498 * SEC));
        assert_false(pcp_epoch_valid(1000, 0, 1000 + 1600, 1498 * SEC - 1));
        /* within 2 s either way for short intervals */
        assert_true(pcp_epoch_valid(1000, 0, 1002, 0));
        assert_false(pcp_epoch_valid(1000, 0, 1003, 0));
        assert_true(pcp_epoch_valid(1000, 0, 1000, 2 * SEC));
        /* the client side has its 1/16 slack too: 2133 - 133 = 2000 */
        assert_true(pcp_epoch_valid(1000, 0, 1000, 2133));
        assert_false(pcp_epoch_valid(1000, 0, 1000, 2134));
        /* epoch restarted at 0 long after */
        assert_false(pcp_epoch_valid(86400, 0, 3, 3600 * SEC));
        /* extreme values do not overflow */
        assert_true(pcp_epoch_valid(UINT32_MAX - 10, 0, UINT32_MAX, 10 * SEC));
        assert_false(pcp_epoch_valid(UINT32_MAX, 0, 0, 1 * SEC));
        assert_false(pcp_epoch_valid(0, 0, UINT32_MAX, 1 * SEC));
        assert_true(pcp_epoch_valid(0, 0, 4000000, 4000000 * SEC));

        /* NAT-PMP: at least 7/8 of the elapsed time, 2 s slack */
        assert_true(natpmp_epoch_valid(1000, 0, 1000 + 700, 800 * SEC));
        assert_true(natpmp_epoch_valid(1000, 0, 1000 + 698, 800 * SEC));
        assert_false(natpmp_epoch_valid(1000, 0, 1000 + 697, 800 * SEC));
        assert_true(natpmp_epoch_valid(1000, 0, 998, 0));
        assert_false(natpmp_epoch_valid(1000, 0, 997, 0));
        assert_true(natpmp_epoch_valid(1000, 0, 5000, 800 * SEC)); /* faster is fine */
        assert_false(natpmp_epoch_valid(86400, 0, 5, 10 * SEC));
}

/* ---- retransmission ---- */

static void test_retransmit_schedule(void **state) {
        uint64_t min_first = UINT64_MAX, max_first = 0;
        size_t capped_total = 0;

        for (uint64_t seed = 1; seed <= 200; seed++) {
                harness *h = h_new(seed, NULL);
                uint32_t sid = h_server(h, SRV, LOCAL);
                uint64_t id = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
                const h_sent *first = h_last_for(h, id);
                uint64_t prev_t, prev_d = 0;
                size_t n, capped = 0;
                pcp_msg m;

                assert_non_null(first);
                assert_int_equal(first->t, h->now); /* sent at once */
                h_decode(first, &m);
                assert_int_equal(m.opcode, PCP_OPCODE_MAP);
                assert_int_equal(m.lifetime, 3600);
                assert_memory_equal(m.nonce, h_mapping(h, id)->nonce, PCP_NONCE_LEN);

                h_advance(h, 6 * HOUR);
                n = 0;
                prev_t = 0;
                for (size_t k = 0; k < h->n_sent; k++) {
                        const h_sent *s = &h->sent[k];
                        if (h_is_natpmp(s) || (s->buf[1] & 0x7f) != PCP_OPCODE_MAP)
                                continue;
                        /* same nonce, same bytes, every time */
                        assert_int_equal(s->len, first->len);
                        assert_memory_equal(s->buf, first->buf, s->len);
                        if (n > 0) {
                                uint64_t d = s->t - prev_t;
                                if (n == 1) {
                                        assert_in(d, 2700, 3300);
                                        min_first = d < min_first ? d : min_first;
                                        max_first = d > max_first ? d : max_first;
                                } else {
                                        uint64_t base = 2 * prev_d < 1024 * SEC ? 2 * prev_d : 1024 * SEC;
                                        assert_in(d, base * 9 / 10 - 1, base * 11 / 10 + 1);
                                        if (base == 1024 * SEC)
                                                capped++;
                                }
                                prev_d = d;
                        }
                        prev_t = s->t;
                        n++;
                }
                /* ~9 doublings to reach the cap, then held: 6 h has ~20 capped intervals */
                assert_true(capped >= 15);
                capped_total += capped;
                assert_int_equal(h_mapping(h, id)->retransmissions, n - 1);
                /* asked on for 6 h, but the server never answered: failed UNREACHABLE
                 * (test_silent_server_fails_first_request) */
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
                assert_int_equal(h_mapping(h, id)->error, PCP_MAPPING_ERROR_UNREACHABLE);
                assert_int_equal(pcp_engine_get_stats(h->e)->retransmissions >= n - 1, true);
                /* next_send is the armed deadline */
                assert_true(h_mapping(h, id)->next_send > h->now);
                assert_true(h_mapping(h, id)->next_send <= h->now + 1127 * SEC);
                h_free(h);
        }
        /* the jitter really is random over the whole range */
        assert_true(min_first < 2760);
        assert_true(max_first > 3240);
        assert_true(capped_total > 200 * 15);
}

/* ---- renewal ---- */

static void test_renewal_windows(void **state) {
        const uint64_t L = 3200 * SEC;
        uint64_t lo[3] = { UINT64_MAX, UINT64_MAX, UINT64_MAX }, hi[3] = { 0, 0, 0 };

        for (uint64_t seed = 1; seed <= 200; seed++) {
                harness *h = h_new(seed, NULL);
                uint32_t sid = pcp_server(h);
                uint64_t id = granted_map(h, sid, 8080, 3200, 40000);
                uint64_t t0 = h->now, last = t0;
                const uint64_t win[][2] = {
                        { t0 + L / 2, t0 + L * 5 / 8 },
                        { t0 + L * 3 / 4, t0 + L * 3 / 4 + L / 16 },
                        { t0 + L * 7 / 8, t0 + L * 7 / 8 + L / 32 },
                        { t0 + L * 15 / 16, t0 + L * 15 / 16 + L / 64 },
                };
                const h_event *ev;
                pcp_msg m;
                size_t n;

                assert_int_equal(h_mapping(h, id)->expires_at, t0 + L);
                h_clear(h);
                h_advance_to(h, t0 + L - 1);
                n = h_count_for(h, id);
                assert_true(n >= 4);
                for (size_t k = 0; k < n; k++) {
                        const h_sent *s = NULL;
                        size_t seen = 0;
                        for (size_t j = 0; j < h->n_sent; j++)
                                if (h->sent[j].len >= 60 &&
                                    memcmp(h->sent[j].buf + 24, h_mapping(h, id)->nonce, 12) == 0 && seen++ == k) {
                                        s = &h->sent[j];
                                        break;
                                }
                        assert_non_null(s);
                        if (k < 4) {
                                assert_in(s->t, win[k][0], win[k][1]);
                                if (k < 3) {
                                        lo[k] = s->t - t0 < lo[k] ? s->t - t0 : lo[k];
                                        hi[k] = s->t - t0 > hi[k] ? s->t - t0 : hi[k];
                                }
                        }
                        assert_true(s->t >= last + (k == 0 ? 0 : 4 * SEC));
                        assert_true(s->t < t0 + L);
                        last = s->t;
                        /* a renewal asks for what we have */
                        h_decode(s, &m);
                        assert_int_equal(m.lifetime, 3200);
                        assert_memory_equal(&m.external_addr, &h_mapping(h, id)->external_addr, 16);
                        assert_int_equal(m.external_port, 40000);
                }
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_RENEWING);
                assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, id), 1);

                /* expiry: lost, pending, retried on the RFC schedule */
                h_clear(h);
                h_advance_to(h, t0 + L);
                ev = h_last_event(h, PCP_EVENT_MAPPING, id);
                assert_non_null(ev);
                assert_int_equal(ev->mapping.state, PCP_MAPPING_PENDING);
                assert_int_equal(ev->mapping.error, PCP_MAPPING_ERROR_EXPIRED);
                assert_string_equal(pcp_mapping_error_name(&ev->mapping), "EXPIRED");
                assert_int_equal(h_count_for(h, id), 1);
                assert_int_equal(h_last_for(h, id)->t, t0 + L);
                h_advance(h, 3300);
                assert_int_equal(h_count_for(h, id), 2);
                assert_in(h_last_for(h, id)->t - (t0 + L), 2700, 3300);
                h_advance(h, 12 * HOUR);
                assert_true(h_count_for(h, id) > 40);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_PENDING);
                /* still asking for what it had */
                h_decode(h_last_for(h, id), &m);
                assert_int_equal(m.external_port, 40000);

                /* an answer brings it back */
                h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 3200, ep(h), EXT, 40000);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_mapping(h, id)->error, PCP_MAPPING_ERROR_NONE);
                h_free(h);
        }
        /* spread over the windows */
        assert_true(lo[0] < 1600 * SEC + 20 * SEC && hi[0] > 2000 * SEC - 20 * SEC);
        assert_true(lo[1] < 2400 * SEC + 10 * SEC && hi[1] > 2600 * SEC - 10 * SEC);
        assert_true(lo[2] < 2800 * SEC + 5 * SEC && hi[2] > 2900 * SEC - 5 * SEC);
}

/* Mappings created together do not keep renewing together: each keeps its point of the
 * RFC window (plus a jitter of ±1/16 of the window), and those points are spread uniformly
 * over the window across mappings. (The fresh draw per renewal it replaces kept a burst
 * bunched for ~20 periods; bench-engine shows the histograms.) */
static void test_renewal_phase(void **state) {
        harness *h = h_new(61, NULL);
        uint32_t sid = pcp_server(h);
        const uint64_t L = 3200 * SEC, W = L / 8;
        uint64_t ids[200];
        double first[200], lo = 1.0, hi = 0.0;
        size_t renewals = 0;

        for (int i = 0; i < 200; i++)
                ids[i] = granted_map(h, sid, (uint16_t) (10000 + i), 3200, (uint16_t) (20000 + i));
        for (int i = 0; i < 200; i++)
                first[i] = -1.0;
        /* 6 lifetimes: every renewal answered at once, its position in its window noted */
        const uint64_t end = h->now + 6 * L;
        while (h->now < end) {
                uint64_t d = pcp_engine_next_deadline(h->e);
                assert_true(h_step(h));
                for (int i = 0; i < 200; i++) {
                        const pcp_mapping_info *mi = h_mapping(h, ids[i]);
                        const h_sent *s;
                        uint64_t granted;
                        double pos;

                        if (mi->state != PCP_MAPPING_RENEWING)
                                continue;
                        s = h_last_for(h, ids[i]);
                        assert_int_equal(s->t, d);
                        granted = mi->expires_at - L;
                        /* the first window: [1/2, 5/8] of the lifetime */
                        assert_in(s->t, granted + L / 2, granted + L / 2 + W);
                        pos = (double) (s->t - granted - L / 2) / (double) W;
                        if (first[i] < 0) {
                                first[i] = pos;
                                lo = pos < lo ? pos : lo;
                                hi = pos > hi ? pos : hi;
                        } else {
                                /* the same point as its first renewal: both within ±1/16 of
                                 * the mapping's phase (circular) */
                                double dist = pos > first[i] ? pos - first[i] : first[i] - pos;
                                if (dist > 0.5)
                                        dist = 1.0 - dist;
                                if (dist > 1.0 / 8 + 0.001)
                                        fail_msg("mapping %d renewed at %.3f of its window, first at %.3f", i, pos,
                                                 first[i]);
                        }
                        renewals++;
                        h_reply(h, s, PCP_RESULT_SUCCESS, 3200, ep(h), EXT, (uint16_t) (20000 + i));
                }
        }
        assert_true(renewals >= 200 * 9);
        /* uniformly spread over the window across mappings */
        assert_true(lo < 0.03);
        assert_true(hi > 0.97);
        {
                size_t quarter[4] = { 0 };
                for (int i = 0; i < 200; i++)
                        quarter[(int) (first[i] * 4) < 4 ? (int) (first[i] * 4) : 3]++;
                for (int q = 0; q < 4; q++)
                        assert_in(quarter[q], 30, 70);
        }
        h_free(h);
}

static void test_renewal_answered(void **state) {
        harness *h = h_new(7, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t id = granted_map(h, sid, 8080, 600, 40000);

        for (int round = 0; round < 20; round++) {
                uint64_t t0 = h->now;
                h_clear(h);
                assert_true(h_step(h));
                assert_in(h->now - t0, 300 * SEC, 375 * SEC);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_RENEWING);
                /* the server moves the mapping */
                h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 600, ep(h), "198.51.100.8", 40001);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_mapping(h, id)->external_port, 40001);
                assert_int_equal(h_mapping(h, id)->expires_at, h->now + 600 * SEC);
                /* and the next renewal asks for the new values */
                h_clear(h);
                assert_true(h_step(h));
                pcp_msg m;
                h_decode(h_last_for(h, id), &m);
                assert_int_equal(m.external_port, 40001);
                assert_memory_equal(&m.external_addr, IP("198.51.100.8"), 16);
                h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 600, ep(h), EXT, 40000);
        }
        assert_int_equal(pcp_engine_get_stats(h->e)->renewals, 40);
        assert_true(in_range(h_srv(h, sid)->epoch, ep(h) - 1, ep(h)));
        h_free(h);
}

static void test_renewal_short_lifetime(void **state) {
        /* 10 s: windows closer than 4 s collapse onto the 4 s floor, never past expiry */
        for (uint64_t seed = 1; seed <= 50; seed++) {
                harness *h = h_new(seed, NULL);
                uint32_t sid = pcp_server(h);
                (void) granted_map(h, sid, 8080, 10, 40000);
                uint64_t t0 = h->now, last = 0;
                size_t n;

                h_clear(h);
                h_advance_to(h, t0 + 10 * SEC - 1);
                n = h->n_sent;
                assert_true(n >= 1 && n <= 3);
                for (size_t k = 0; k < n; k++) {
                        if (k == 0)
                                assert_in(h->sent[k].t, t0 + 5 * SEC, t0 + 6250);
                        else
                                assert_true(h->sent[k].t >= last + 4 * SEC);
                        last = h->sent[k].t;
                }
                h_free(h);
        }
}

/* What few mappings ask for (a suggested external address, PORT_SET, FILTER, DESCRIPTION)
 * is kept apart from the mapping and only when asked for, and a third party is kept as the
 * internal address: each alone, and none, is on the first request and on its
 * retransmission, byte for byte; without a suggestion the external address is the zero
 * address of the internal address's family. */
static void test_rare_options_each_alone(void **state) {
        enum { NONE, PORT_SET, DESCRIPTION, THIRD_PARTY, SUGGESTED, FILTER, N };
        harness *h = h_new(31, NULL);
        uint32_t sid = pcp_server(h);
        pcp_mapping_params p;
        uint64_t id[N];
        pcp_msg m;

        for (int i = 0; i < N; i++) {
                h_params(&p, sid, IPPROTO_UDP, (uint16_t) (7000 + i), 3600);
                if (i == PORT_SET) {
                        p.has_port_set = true;
                        p.port_set = (pcp_port_set) { .size = 4, .first_internal_port = 7001, .parity = false };
                } else if (i == DESCRIPTION)
                        p.description = "only a description";
                else if (i == THIRD_PARTY) {
                        p.has_third_party = true;
                        p.third_party = h_ip("192.168.1.78");
                } else if (i == SUGGESTED)
                        p.suggested_external_addr = h_ip("198.51.100.9");
                else if (i == FILTER) {
                        p.n_filters = 1;
                        p.filters[0] = (pcp_filter) { .prefix_len = 128, .remote_port = 53, .remote_addr = h_ip("203.0.113.53") };
                }
                assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id[i]), 0);
        }
        h_drain(h);
        h_advance(h, 3300);
        for (int i = 0; i < N; i++) {
                const h_sent *first = h_first_for(h, id[i]), *again = h_last_for(h, id[i]);

                assert_int_equal(h_count_for(h, id[i]), 2);
                assert_int_equal(again->len, first->len);
                assert_memory_equal(again->buf, first->buf, first->len);
                h_decode(again, &m);
                assert_int_equal(m.internal_port, 7000 + i);
                assert_int_equal(!!(m.options & PCP_HAS_PORT_SET), i == PORT_SET);
                assert_int_equal(!!(m.options & PCP_HAS_DESCRIPTION), i == DESCRIPTION);
                assert_int_equal(!!(m.options & PCP_HAS_THIRD_PARTY), i == THIRD_PARTY);
                assert_int_equal(m.n_filters, i == FILTER ? 1 : 0);
                assert_memory_equal(&m.external_addr, IP(i == SUGGESTED ? "198.51.100.9" : "::ffff:0.0.0.0"), 16);
                if (i == PORT_SET) {
                        assert_int_equal(m.port_set.size, 4);
                        assert_int_equal(m.port_set.first_internal_port, 7001);
                        assert_false(m.port_set.parity);
                } else if (i == DESCRIPTION) {
                        assert_int_equal(m.description_len, strlen("only a description"));
                        assert_memory_equal(m.description, "only a description", m.description_len);
                } else if (i == THIRD_PARTY) {
                        assert_memory_equal(&m.third_party, IP("192.168.1.78"), 16);
                        assert_memory_equal(&h_mapping(h, id[i])->internal_addr, IP("192.168.1.78"), 16);
                } else if (i == FILTER) {
                        assert_int_equal(m.filters[0].prefix_len, 128);
                        assert_int_equal(m.filters[0].remote_port, 53);
                        assert_memory_equal(&m.filters[0].remote_addr, IP("203.0.113.53"), 16);
                }
        }
        /* a grant in the family suggested is taken; its renewal asks for what was granted */
        h_reply(h, h_last_for(h, id[SUGGESTED]), PCP_RESULT_SUCCESS, 3600, ep(h), "198.51.100.10", 7004);
        assert_int_equal(h_mapping(h, id[SUGGESTED])->state, PCP_MAPPING_ACTIVE);
        /* removed: the delete carries no description nor filter (and ASan sees them freed) */
        for (int i = 0; i < N; i++)
                assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, id[i]), 0);
        h_clear(h);
        h_drain(h);
        for (int i = 0; i < N; i++) {
                h_decode(h_last_for(h, id[i]), &m);
                assert_int_equal(m.lifetime, 0);
                assert_false(m.options & (PCP_HAS_DESCRIPTION | PCP_HAS_PREFER_FAILURE));
                assert_int_equal(m.n_filters, 0);
                /* what identifies the mapping stays: its third party, its port set */
                assert_int_equal(!!(m.options & PCP_HAS_PORT_SET), i == PORT_SET);
                assert_int_equal(!!(m.options & PCP_HAS_THIRD_PARTY), i == THIRD_PARTY);
        }
        h_free(h);
}

/* A mapping keeps its retransmission timeout in 32 bits of milliseconds: config.irt and
 * config.mrt beyond 2^30 ms (12.4 days) are taken as 2^30, and the timeout neither wraps
 * nor shrinks when it is jittered and doubled. */
static void test_long_retransmission_timeout(void **state) {
        const uint64_t cap = UINT64_C(1) << 30;
        pcp_engine_config cfg = { .irt = UINT64_C(1) << 40, .mrt = UINT64_C(1) << 41 };
        harness *h = h_new(32, &cfg);
        uint32_t sid = pcp_server(h);
        uint64_t id = h_map(h, sid, IPPROTO_UDP, 7100, 3600), t0 = h->now, d;

        assert_int_equal(h_count_for(h, id), 1);
        /* first the server's silence (asked, unanswered for 20 s): its own deadline */
        h_advance(h, 20 * SEC);
        assert_true(h_srv(h, sid)->silent);
        for (int i = 0; i < 3; i++) {
                d = pcp_engine_next_deadline(h->e);
                assert_true(d - t0 >= cap - cap / 10 - 1);
                assert_true(d - t0 <= cap + cap / 10 + 1);
                h_advance_to(h, d);
                assert_int_equal(h_count_for(h, id), (size_t) i + 2);
                t0 = h->now;
        }
        h_free(h);
}

/* ---- delete ---- */

static uint64_t mapping_with_options(harness *h, uint32_t sid) {
        pcp_mapping_params p;
        uint64_t id;

        h_params(&p, sid, IPPROTO_UDP, 5000, 7200);
        p.prefer_failure = true;
        p.suggested_external_port = 5000;
        p.n_filters = 1;
        p.filters[0].prefix_len = 128;
        p.filters[0].remote_port = 443;
        p.filters[0].remote_addr = h_ip("203.0.113.9");
        p.description = "game server";
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        h_drain(h);
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 7200, ep(h), EXT, 5000);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        return id;
}

static void check_delete_request(harness *h, uint64_t id, const h_sent *s) {
        pcp_msg m;

        h_decode(s, &m);
        assert_int_equal(m.opcode, PCP_OPCODE_MAP);
        assert_int_equal(m.lifetime, 0);
        assert_memory_equal(m.nonce, h_mapping(h, id)->nonce, PCP_NONCE_LEN);
        assert_int_equal(m.protocol, IPPROTO_UDP);
        assert_int_equal(m.internal_port, 5000);
        assert_int_equal(m.external_port, 0);
        assert_true(pcp_addr_is_unspecified(&m.external_addr));
        assert_int_equal(m.n_filters, 0);
        assert_false(m.options & PCP_HAS_PREFER_FAILURE);
        assert_memory_equal(&m.client_addr, IP(LOCAL), 16);
}

static void test_delete(void **state) {
        static const struct {
                uint8_t result;
                uint32_t lifetime;
                bool upstream;
        } answers[] = {
                { PCP_RESULT_SUCCESS, 0, true },
                { PCP_RESULT_NO_RESOURCES, 30, true }, /* miniupnpd: no such mapping */
                { PCP_RESULT_SUCCESS, 120, false },    /* still there for 120 s */
                { PCP_RESULT_NOT_AUTHORIZED, 0, false },
        };

        for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
                harness *h = h_new(i + 1, NULL);
                uint32_t sid = pcp_server(h);
                uint64_t id = mapping_with_options(h, sid);
                const h_event *ev;

                h_clear(h);
                assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, id), 0);
                h_drain(h);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_DELETING);
                assert_int_equal(h->n_sent, 1);
                check_delete_request(h, id, h_last(h));
                /* removing twice is harmless */
                assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, id), 0);
                h_drain(h);
                assert_int_equal(h->n_sent, 1);
                /* retransmitted with the same bytes */
                h_advance(h, 3300);
                assert_int_equal(h->n_sent, 2);
                assert_memory_equal(h->sent[1].buf, h->sent[0].buf, h->sent[0].len);
                h_reply(h, h_last(h), answers[i].result, answers[i].lifetime, ep(h), "0.0.0.0", 0);
                ev = h_last_event(h, PCP_EVENT_MAPPING_DELETED, id);
                assert_non_null(ev);
                assert_int_equal(ev->deleted_upstream, answers[i].upstream);
                assert_null(pcp_engine_mapping_get(h->e, id));
                assert_int_equal(pcp_engine_mapping_count(h->e), 0);
                assert_int_equal(h_srv(h, sid)->n_mappings, 0);
                /* nothing more is sent for it, and a late answer is dropped */
                h_clear_sent(h);
                h_advance(h, HOUR);
                assert_int_equal(h->n_sent, 0);
                assert_int_equal(pcp_engine_next_deadline(h->e), PCP_NEVER);
                h_free(h);
        }
}

/* What the caller hangs on a mapping (pcp_mapping_params.userdata) comes back with each of
 * its events, the MAPPING_DELETED included, and pcp_engine_mapping_set_userdata() changes
 * it, also while the mapping is being deleted; an id that is gone is refused. */
static void test_mapping_userdata(void **state) {
        harness *h = h_new(11, NULL);
        uint32_t sid = pcp_server(h);
        int a, b;
        pcp_mapping_params p;
        uint64_t id, other;
        const h_event *ev;

        h_params(&p, sid, IPPROTO_TCP, 8080, 600);
        p.userdata = &a;
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        other = h_map(h, sid, IPPROTO_UDP, 5353, 600); /* none: NULL */
        h_drain(h);
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 600, ep(h), EXT, 8080);
        h_reply(h, h_last_for(h, other), PCP_RESULT_SUCCESS, 600, ep(h), EXT, 5353);
        ev = h_last_event(h, PCP_EVENT_MAPPING, id);
        assert_non_null(ev);
        assert_ptr_equal(ev->mapping_userdata, &a);
        ev = h_last_event(h, PCP_EVENT_MAPPING, other);
        assert_non_null(ev);
        assert_null(ev->mapping_userdata);

        /* changed: the next event carries the new one */
        assert_int_equal(pcp_engine_mapping_set_userdata(h->e, id, &b), 0);
        h_clear(h);
        h_advance(h, 400 * SEC); /* into its renewal */
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 600, ep(h), EXT, 8080);
        ev = h_last_event(h, PCP_EVENT_MAPPING, id);
        assert_non_null(ev);
        assert_ptr_equal(ev->mapping_userdata, &b);

        /* being deleted: still its own, and the last event carries it */
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, id), 0);
        assert_int_equal(pcp_engine_mapping_set_userdata(h->e, id, &a), 0);
        h_drain(h);
        h_reply(h, h_last(h), PCP_RESULT_SUCCESS, 0, ep(h), "0.0.0.0", 0);
        ev = h_last_event(h, PCP_EVENT_MAPPING_DELETED, id);
        assert_non_null(ev);
        assert_ptr_equal(ev->mapping_userdata, &a);
        assert_int_equal(pcp_engine_mapping_set_userdata(h->e, id, &b), -ENOENT);
        assert_int_equal(pcp_engine_mapping_set_userdata(h->e, 999999, &b), -ENOENT);
        h_free(h);
}

static void test_delete_gives_up(void **state) {
        pcp_engine_config cfg = { .delete_attempts = 4 };
        harness *h = h_new(3, &cfg);
        uint32_t sid = pcp_server(h);
        uint64_t id = mapping_with_options(h, sid);
        const h_event *ev;

        h_clear(h);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, id), 0);
        h_drain(h);
        h_advance(h, HOUR);
        assert_int_equal(h->n_sent, 4);
        for (size_t i = 1; i < 4; i++)
                assert_memory_equal(h->sent[i].buf, h->sent[0].buf, h->sent[0].len);
        ev = h_last_event(h, PCP_EVENT_MAPPING_DELETED, id);
        assert_non_null(ev);
        assert_false(ev->deleted_upstream);
        assert_true(ev->t > h->sent[3].t); /* after the last one had its chance */
        assert_null(pcp_engine_mapping_get(h->e, id));
        h_free(h);
}

/* ---- error lifetimes ---- */

static void test_error_lifetimes(void **state) {
        static const struct {
                uint8_t result;
                uint32_t lifetime;
                uint64_t retry; /* ms after the error */
                uint64_t cap;   /* cfg.error_retry_max; 0 = default (30 min) */
        } cases[] = {
                { PCP_RESULT_NO_RESOURCES, 30, 30 * SEC, 0 },
                { PCP_RESULT_NETWORK_FAILURE, 120, 120 * SEC, 0 },
                { PCP_RESULT_USER_EX_QUOTA, 0, 30 * SEC, 0 },       /* floor */
                { PCP_RESULT_NETWORK_FAILURE, 0, 30 * SEC, 0 },     /* floor */
                { PCP_RESULT_UNSUPP_PROTOCOL, 0, 30 * MINUTE, 0 },  /* long floor (miniupnpd) */
                { PCP_RESULT_MALFORMED_REQUEST, 0, 30 * MINUTE, 0 },
                { PCP_RESULT_CANNOT_PROVIDE_EXTERNAL, 0, 30 * SEC, 0 }, /* short, by the codec */
                { PCP_RESULT_UNSUPP_OPTION, 1500, 1500 * SEC, 0 },
                /* the cap: the server asks for longer, we ask again after 30 min */
                { PCP_RESULT_UNSUPP_OPTION, 7200, 30 * MINUTE, 0 },
                { PCP_RESULT_NO_RESOURCES, 86400, 30 * MINUTE, 0 },
                { PCP_RESULT_UNSUPP_PROTOCOL, UINT32_MAX, 30 * MINUTE, 0 },
                /* the floor for a lifetime that would be a tight loop */
                { PCP_RESULT_NO_RESOURCES, 1, 4 * SEC, 0 },
                { PCP_RESULT_UNSUPP_PROTOCOL, 2, 4 * SEC, 0 },
                /* a configured cap applies to the floors too */
                { PCP_RESULT_UNSUPP_OPTION, 7200, 10 * MINUTE, 10 * MINUTE },
                { PCP_RESULT_UNSUPP_PROTOCOL, 0, 10 * MINUTE, 10 * MINUTE },
                { PCP_RESULT_NO_RESOURCES, 0, 30 * SEC, 10 * MINUTE },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                pcp_engine_config cfg = { .error_retry_max = cases[i].cap };
                harness *h = h_new(i + 10, &cfg);
                uint32_t sid = pcp_server(h);
                uint64_t id = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
                uint64_t t_err = h->now, horizon = 24 * HOUR;
                size_t n, limit;
                const h_event *ev;

                h_reply(h, h_last_for(h, id), cases[i].result, cases[i].lifetime, ep(h), "0.0.0.0", 0);
                ev = h_last_event(h, PCP_EVENT_MAPPING, id);
                assert_non_null(ev);
                assert_int_equal(ev->mapping.state, PCP_MAPPING_FAILED);
                assert_int_equal(ev->mapping.error, PCP_MAPPING_ERROR_RESULT);
                assert_int_equal(ev->mapping.result, cases[i].result);
                assert_string_equal(pcp_mapping_error_name(&ev->mapping), pcp_result_to_string(cases[i].result));
                assert_int_equal(h_mapping(h, id)->next_send, t_err + cases[i].retry);
                h_clear(h);
                /* nothing before the retry time */
                h_advance_to(h, t_err + cases[i].retry - 1);
                assert_int_equal(h->n_sent, 0);
                h_advance_to(h, t_err + cases[i].retry);
                assert_int_equal(h->n_sent, 1);

                /* a server that always answers the same error, at once: no tight loop */
                for (uint64_t end = h->now + horizon; h->now < end;) {
                        size_t before = h->n_sent;
                        if (!h_step(h))
                                break;
                        if (h->n_sent > before)
                                h_reply(h, h_last(h), cases[i].result, cases[i].lifetime, ep(h), "0.0.0.0", 0);
                }
                n = h->n_sent;
                /* the first retry, then one per retry interval up to the horizon, plus the
                 * one that crosses it */
                limit = (size_t) ((horizon + cases[i].retry - 1) / cases[i].retry) + 2;
                assert_true(n <= limit);
                assert_true(n >= limit / 2);
                h_free(h);
        }
}

/* ---- NOT_AUTHORIZED, ADDRESS_MISMATCH ---- */

/* NOT_AUTHORIZED to a MAP is a long error for that mapping, not for the server: the others
 * carry on, new ones are sent, and the ANNOUNCE probe asks whether PCP is off as a whole. */
static void test_not_authorized(void **state) {
        static const uint32_t lifetimes[] = { 0, 600, 7200, UINT32_MAX };

        for (size_t i = 0; i < 4; i++) {
                harness *h = h_new(i + 20, NULL);
                uint32_t sid = pcp_server(h);
                uint64_t a = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
                uint64_t b = h_map(h, sid, IPPROTO_UDP, 8081, 3600);
                uint64_t c = granted_map(h, sid, 8082, 3600, 8082);
                uint64_t b_next = h_mapping(h, b)->next_send, c_next = h_mapping(h, c)->next_send;
                uint64_t t0, retry, d;
                const h_sent *probe;

                pcp_msg ra, rb;
                h_make_reply(h_last_for(h, a), &ra, PCP_RESULT_NOT_AUTHORIZED, lifetimes[i], ep(h), "0.0.0.0", 0);
                h_make_reply(h_last_for(h, b), &rb, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 8081);
                h_clear(h);
                t0 = h->now;
                h_receive_msg(h, sid, 0, &ra);
                /* lifetime 0: the long floor; more than 30 min: the cap */
                retry = t0 + (lifetimes[i] > 0 && lifetimes[i] < 1800 ? lifetimes[i] * SEC : 30 * MINUTE);
                assert_int_equal(h_mapping(h, a)->state, PCP_MAPPING_FAILED);
                assert_int_equal(h_mapping(h, a)->error, PCP_MAPPING_ERROR_RESULT);
                assert_int_equal(h_mapping(h, a)->result, PCP_RESULT_NOT_AUTHORIZED);
                assert_string_equal(pcp_mapping_error_name(h_mapping(h, a)), "NOT_AUTHORIZED");
                assert_int_equal(h_mapping(h, a)->next_send, retry);
                /* the server and the other mappings are untouched */
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
                assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 0);
                assert_int_equal(h_mapping(h, b)->state, PCP_MAPPING_PENDING);
                assert_int_equal(h_mapping(h, b)->next_send, b_next);
                assert_int_equal(h_mapping(h, c)->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_mapping(h, c)->next_send, c_next);
                assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, b), 0);
                assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, c), 0);
                /* is PCP switched off? the ANNOUNCE probe goes out at once */
                probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);
                assert_non_null(probe);
                assert_int_equal(probe->t, t0);
                /* a new mapping is asked for at once */
                d = h_map(h, sid, IPPROTO_TCP, 9000, 3600);
                assert_int_equal(h_count_for(h, d), 1);
                assert_int_equal(h_mapping(h, d)->state, PCP_MAPPING_PENDING);
                /* the probe is answered: PCP is on; nothing else changes */
                h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 0), PCP_RESULT_SUCCESS, 0, ep(h));
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
                assert_int_equal(h_mapping(h, a)->next_send, retry);
                h_receive_msg(h, sid, 0, &rb);
                h_reply(h, h_last_for(h, d), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 9000);
                assert_int_equal(h_mapping(h, b)->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_mapping(h, d)->state, PCP_MAPPING_ACTIVE);
                /* the refused one asks again after its error lifetime, not before */
                h_clear(h);
                h_advance_to(h, retry - 1);
                assert_int_equal(h_count_for(h, a), 0);
                h_advance_to(h, retry);
                assert_int_equal(h_count_for(h, a), 1);
                h_reply(h, h_last_for(h, a), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 8080);
                assert_int_equal(h_mapping(h, a)->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_mapping(h, a)->error, PCP_MAPPING_ERROR_NONE);
                h_free(h);
        }
}

/* NOT_AUTHORIZED to the ANNOUNCE probe: PCP is implemented but switched off there.
 * Remember it for a while, tell once, send nothing. */
static void test_not_authorized_probe(void **state) {
        static const uint32_t lifetimes[] = { 0, 600, 7200, UINT32_MAX };

        for (size_t i = 0; i < 4; i++) {
                harness *h = h_new(i + 30, NULL);
                uint32_t sid = pcp_server(h);
                uint64_t a = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
                uint64_t b = h_map(h, sid, IPPROTO_UDP, 8081, 3600);
                uint64_t c = granted_map(h, sid, 8082, 3600, 8082);
                uint64_t t0, until, d;
                const h_sent *probe;
                const h_event *ev;
                pcp_msg ra, rb;

                h_make_reply(h_last_for(h, a), &ra, PCP_RESULT_NOT_AUTHORIZED, 0, ep(h), "0.0.0.0", 0);
                h_make_reply(h_last_for(h, b), &rb, PCP_RESULT_NOT_AUTHORIZED, 0, ep(h), "0.0.0.0", 0);
                h_clear(h);
                /* a refused MAP starts the probe ... */
                h_receive_msg(h, sid, 0, &ra);
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
                probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);
                assert_non_null(probe);
                /* ... which is refused too */
                t0 = h->now;
                h_reply_announce(h, probe, PCP_RESULT_NOT_AUTHORIZED, lifetimes[i], ep(h));
                /* the server's lifetime within [30 min floor, 30 min cap] */
                until = t0 + 30 * MINUTE;
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_DISABLED);
                assert_int_equal(h_srv(h, sid)->disabled_until, until);
                assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
                ev = h_last_event(h, PCP_EVENT_SERVER, 0);
                assert_int_equal(ev->server.state, PCP_SERVER_DISABLED);
                for (uint64_t id = a; id <= c; id++) {
                        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
                        assert_int_equal(h_mapping(h, id)->error, PCP_MAPPING_ERROR_DISABLED);
                        assert_string_equal(pcp_mapping_error_name(h_mapping(h, id)), "DISABLED");
                }
                assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, b), 1);
                assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, c), 1);
                /* a late NOT_AUTHORIZED to b's request: dropped, no new server event */
                h_receive_msg(h, sid, 0, &rb);
                assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
                assert_int_equal(h_srv(h, sid)->disabled_until, until);
                assert_int_equal(h_mapping(h, b)->error, PCP_MAPPING_ERROR_DISABLED);

                /* a new mapping fails at once, without a packet */
                h_clear_sent(h);
                d = h_map(h, sid, IPPROTO_TCP, 9000, 3600);
                assert_int_equal(h_mapping(h, d)->error, PCP_MAPPING_ERROR_DISABLED);
                assert_int_equal(h->n_sent, 0);

                /* nothing until the cache runs out */
                h_advance_to(h, until - 1);
                assert_int_equal(h->n_sent, 0);
                assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
                /* then the server is probed and every mapping asked again (spread over 5 s) */
                h_advance_to(h, until + 5 * SEC);
                assert_true(h_count(h, PCP_OPCODE_ANNOUNCE) >= 1);
                for (uint64_t id = a; id <= d; id++) {
                        assert_true(h_count_for(h, id) >= 1);
                        assert_true(h_first_for(h, id)->t >= until);
                }
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNKNOWN);
                h_free(h);
        }
}

static void test_address_mismatch(void **state) {
        harness *h = h_new(5, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t held = granted_map(h, sid, 7000, 3600, 47000);
        const h_sent *held_req = h_last_for(h, held);
        pcp_msg held_update;
        uint64_t id = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        uint64_t other = h_map(h, sid, IPPROTO_UDP, 8081, 3600);
        uint64_t third = h_map(h, sid, IPPROTO_TCP, 8082, 3600);
        uint64_t fourth = h_map(h, sid, IPPROTO_TCP, 8083, 3600);
        pcp_msg r_other_err, r_third, r_fourth;

        h_make_reply(held_req, &held_update, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 47000);
        h_make_reply(h_last_for(h, other), &r_other_err, PCP_RESULT_NO_RESOURCES, 30, ep(h), "0.0.0.0", 0);
        h_make_reply(h_last_for(h, third), &r_third, PCP_RESULT_ADDRESS_MISMATCH, 0, ep(h), "0.0.0.0", 0);
        h_make_reply(h_last_for(h, fourth), &r_fourth, PCP_RESULT_NOT_AUTHORIZED, 0, ep(h), "0.0.0.0", 0);

        pcp_msg r_id;
        h_make_reply(h_last_for(h, id), &r_id, PCP_RESULT_ADDRESS_MISMATCH, 0, ep(h), "0.0.0.0", 0);
        assert_false(h_srv(h, sid)->address_mismatch);
        h_clear(h);
        h_receive_msg(h, sid, 0, &r_id);
        assert_true(h_srv(h, sid)->address_mismatch);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        assert_true(h_last_event(h, PCP_EVENT_SERVER, 0)->server.address_mismatch);
        assert_int_equal(h_mapping(h, id)->result, PCP_RESULT_ADDRESS_MISMATCH);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
        /* a long error: waits the long floor */
        assert_int_equal(h_mapping(h, id)->next_send, h->now + 30 * MINUTE);

        /* another error does not say the addresses match now */
        h_clear(h);
        h_receive_msg(h, sid, 0, &r_other_err);
        assert_int_equal(h_mapping(h, other)->result, PCP_RESULT_NO_RESOURCES);
        assert_true(h_srv(h, sid)->address_mismatch);
        /* nor does an unsolicited update of a mapping granted before (RFC 6887 §14.2) */
        h_receive_msg(h, sid, 0, &held_update);
        assert_int_equal(h_mapping(h, held)->state, PCP_MAPPING_ACTIVE);
        assert_true(h_srv(h, sid)->address_mismatch);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 0);

        /* a SUCCESS answer to a request of ours does: cleared, and told once */
        h_advance(h, 30 * SEC); /* other's retry; meanwhile the server, asked and not
                                 * answering for 20 s, was told silent */
        assert_true(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        assert_non_null(h_last_for(h, other));
        h_reply(h, h_last_for(h, other), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 8081);
        assert_false(h_srv(h, sid)->address_mismatch);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 2);
        assert_false(h_last_event(h, PCP_EVENT_SERVER, 0)->server.address_mismatch);
        assert_false(h_last_event(h, PCP_EVENT_SERVER, 0)->server.silent);
        h_reply(h, h_last_for(h, other), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 8081);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 2);

        /* mismatch again; then the ANNOUNCE probe (sent on a NOT_AUTHORIZED) answered
         * SUCCESS clears it as well */
        h_clear(h);
        h_receive_msg(h, sid, 0, &r_third);
        assert_true(h_srv(h, sid)->address_mismatch);
        h_receive_msg(h, sid, 0, &r_fourth);
        assert_non_null(h_find(h, PCP_OPCODE_ANNOUNCE, 0));
        assert_true(h_srv(h, sid)->address_mismatch);
        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 0), PCP_RESULT_SUCCESS, 0, ep(h));
        assert_false(h_srv(h, sid)->address_mismatch);
        assert_false(h_last_event(h, PCP_EVENT_SERVER, 0)->server.address_mismatch);
        h_free(h);
}

/* ---- epoch resets ---- */

static void test_epoch_reset_response(void **state) {
        harness *h = h_new(9, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t ids[5];
        const h_event *ev;

        for (int i = 0; i < 5; i++)
                ids[i] = granted_map(h, sid, (uint16_t) (8000 + i), 3600, (uint16_t) (40000 + i));
        /* a pending one and a failed one are recreated too */
        uint64_t pend = h_map(h, sid, IPPROTO_UDP, 9000, 3600);
        uint64_t failed = h_map(h, sid, IPPROTO_UDP, 9001, 3600);
        h_reply(h, h_last_for(h, failed), PCP_RESULT_UNSUPP_PROTOCOL, 0, ep(h), "0.0.0.0", 0);
        h_advance(h, 100 * SEC);

        /* run until three of them sent their renewal (unanswered: in flight); the server
         * restarted meanwhile and answers the third one with epoch 3 */
        uint64_t carrier = 0;
        for (;;) {
                size_t n = 0;
                assert_true(h_step(h));
                for (int i = 0; i < 5; i++)
                        n += h_mapping(h, ids[i])->state == PCP_MAPPING_RENEWING;
                if (n >= 3)
                        break;
        }
        /* the one that renewed last carries the answer */
        for (int i = 0; i < 5; i++)
                if (h_mapping(h, ids[i])->state == PCP_MAPPING_RENEWING &&
                    h_last_for(h, ids[i])->t == h->now)
                        carrier = ids[i];
        /* put the carrier first */
        for (int i = 1; i < 5; i++)
                if (ids[i] == carrier) {
                        ids[i] = ids[0];
                        ids[0] = carrier;
                }
        bool inflight[5];
        uint64_t last[5], t_reset = h->now;
        size_t n_inflight = 0;
        for (int i = 0; i < 5; i++) {
                inflight[i] = h_mapping(h, ids[i])->state == PCP_MAPPING_RENEWING;
                last[i] = h_last_for(h, ids[i])->t;
                n_inflight += inflight[i];
        }
        {
                pcp_msg r;
                h_make_reply(h_last_for(h, ids[0]), &r, PCP_RESULT_SUCCESS, 3600, 3, EXT, 40000);
                h_clear(h);
                h_receive_msg(h, sid, 0, &r);
        }
        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 1);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 1);
        ev = h_last_event(h, PCP_EVENT_EPOCH_RESET, 0);
        assert_false(ev->from_announce);
        assert_int_equal(ev->server_id, sid);
        assert_int_equal(h_mapping(h, ids[0])->state, PCP_MAPPING_ACTIVE);
        /* both kinds: idle granted mappings and renewals in flight */
        assert_int_equal(n_inflight, 3);
        assert_int_equal(h_count_for(h, ids[0]), 0);
        for (int i = 1; i < 5; i++) {
                const pcp_mapping_info *mi = h_mapping(h, ids[i]);
                assert_int_equal(mi->state, PCP_MAPPING_RENEWING);
                if (!inflight[i]) {
                        /* idle: asked again at once */
                        assert_int_equal(h_count_for(h, ids[i]), 1);
                        assert_int_equal(h_last_for(h, ids[i])->t, h->now);
                } else if (last[i] + 3300 <= h->now) {
                        /* in flight for a while: asked again at once too */
                        assert_int_equal(h_count_for(h, ids[i]), 1);
                } else if (last[i] + 2700 <= h->now && h_count_for(h, ids[i]) == 1) {
                        /* in flight for 2.7-3.3 s, one first RT (a fresh draw in
                         * [2700, 3300]) or more: its retransmission is due, asked at once
                         * (which of the two depends on the draws: on the seed) */
                        assert_int_equal(h_last_for(h, ids[i])->t, h->now);
                } else {
                        /* in flight just now: no duplicate, one first RT after the renewal */
                        assert_int_equal(h_count_for(h, ids[i]), 0);
                        assert_in(mi->next_send, last[i] + 2700, last[i] + 3300);
                }
        }
        /* every one of them asks (again) within one RT, suggesting what it had */
        h_advance(h, 3300);
        for (int i = 1; i < 5; i++) {
                const h_sent *s = h_last_for(h, ids[i]);
                pcp_msg m;
                assert_non_null(s);
                h_decode(s, &m);
                assert_int_equal(m.external_port, h_mapping(h, ids[i])->external_port);
                assert_memory_equal(&m.external_addr, IP(EXT), 16);
                assert_int_equal(m.lifetime, 3600);
                h_reply(h, s, PCP_RESULT_SUCCESS, 3600, (uint32_t) (3 + (h->now - t_reset) / SEC), EXT,
                        m.external_port);
                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
        }
        /* the pending one (in back-off for 100 s) and the failed one: at once */
        assert_non_null(h_last_for(h, pend));
        assert_int_equal(h_first_for(h, pend)->t, t_reset);
        assert_non_null(h_last_for(h, failed));
        assert_int_equal(h_first_for(h, failed)->t, t_reset);
        assert_int_equal(h_srv(h, sid)->epoch, 3 + (h->now - t_reset) / SEC);
        /* only one reset: the answers that follow carry a consistent epoch */
        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 1);
        h_free(h);
}

/* the intervals between the MAP requests of one mapping since the last clear follow
 * RFC 6887 §8.1.1: first (1 + RAND) * 3 s, then (1 + RAND) * 2 * previous; n = how many */
static size_t check_rfc_schedule(harness *h, uint64_t id) {
        uint64_t prev_t = 0, prev_d = 0;
        size_t n = 0;

        for (size_t k = 0; k < h->n_sent; k++) {
                const h_sent *s = &h->sent[k];
                if (h_is_natpmp(s) || s->len < 60 || memcmp(s->buf + 24, h_mapping(h, id)->nonce, PCP_NONCE_LEN) != 0)
                        continue;
                if (n == 1)
                        assert_in(s->t - prev_t, 2700, 3300);
                else if (n > 1)
                        assert_in(s->t - prev_t, 2 * prev_d * 9 / 10 - 1, 2 * prev_d * 11 / 10 + 1);
                if (n > 0)
                        prev_d = s->t - prev_t;
                prev_t = s->t;
                n++;
        }
        return n;
}

/* Integration scenario 5 (30 % loss): requests sent twice within 1-160 ms. A server state
 * loss detected while requests were in flight re-sent every one of them at once (epoch
 * reset from a response) or within 0-5 s (ANNOUNCE) instead of letting them continue on
 * their retransmission schedule. */
static void test_epoch_reset_inflight(void **state) {
        for (int announce = 0; announce <= 1; announce++)
                for (uint64_t seed = 1; seed <= 40; seed++) {
                        harness *h = h_new(100 + seed, NULL);
                        uint32_t sid = pcp_server(h);
                        uint64_t idle = granted_map(h, sid, 7000, 3600, 47000);
                        uint64_t pend[10], t0;

                        h_advance(h, 10 * SEC);
                        h_clear(h);
                        t0 = h->now;
                        for (int i = 0; i < 10; i++)
                                pend[i] = h_map(h, sid, IPPROTO_TCP, (uint16_t) (22000 + i), 3600);
                        h_advance(h, 100);
                        /* the server restarted: its epoch went back to 0 (an ANNOUNCE saying
                         * so is a hint: every mapping asked again, the reset counted when an
                         * answer confirms it, test_announce_is_a_hint) */
                        if (announce)
                                h_announce(h, SRV, 0);
                        else
                                h_reply(h, h_last_for(h, pend[0]), PCP_RESULT_SUCCESS, 3600, 0, EXT, 50000);
                        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, announce ? 0 : 1);
                        if (!announce) {
                                /* the idle granted mapping is asked again at once */
                                assert_int_equal(h_count_for(h, idle), 1);
                                assert_int_equal(h_last_for(h, idle)->t, h->now);
                        }
                        /* no lost answers: 40 s of the retransmission schedule */
                        h_advance_to(h, t0 + 40 * SEC);
                        for (int i = announce ? 0 : 1; i < 10; i++) {
                                size_t n = check_rfc_schedule(h, pend[i]);
                                /* 0, ~3, ~9, ~21 s (and ~45 s, past the end) */
                                assert_in(n, 4, 5);
                                /* still asked; failed UNREACHABLE once the third
                                 * retransmission (~21 s, +-10%) came 20 s or more after the
                                 * server was last heard (test_silent_server_fails_first_request) */
                                if (h_mapping(h, pend[i])->state == PCP_MAPPING_FAILED)
                                        assert_int_equal(h_mapping(h, pend[i])->error, PCP_MAPPING_ERROR_UNREACHABLE);
                                else
                                        assert_int_equal(h_mapping(h, pend[i])->state, PCP_MAPPING_PENDING);
                        }
                        h_free(h);
                }
}

/* The epoch is checked against the time the answer arrived, not the time the caller got
 * round to reading it: a busy event loop is not a server restart. */
static void test_epoch_late_read(void **state) {
        for (int late = 0; late <= 1; late++) {
                harness *h = h_new(7, NULL);
                uint32_t sid = pcp_server(h);
                uint64_t other, id, rx;
                const h_sent *req;
                pcp_msg r;
                uint8_t buf[PCP_MAX_MSG_LEN];
                size_t len;
                struct sockaddr_in6 from = h_srv(h, sid)->addrs[0].remote;

                /* the last epoch seen: at a whole second, so ep() is exact */
                h_advance_to(h, (h->now / SEC + 10) * SEC);
                other = granted_map(h, sid, 7000, 3600, 47000);
                h_clear(h);
                id = h_map(h, sid, IPPROTO_UDP, 9000, 3600);
                req = h_last_for(h, id);
                /* answered at once, read 2.5 s later: the server's clock says 0 s passed */
                h_make_reply(req, &r, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 49000);
                rx = h->now;
                assert_int_equal(pcp_encode(&r, buf, sizeof(buf), &len), PCP_WIRE_OK);
                h_advance(h, 2500);
                h_clear(h);
                if (late) {
                        /* what a caller without arrival times does: arrival = now */
                        pcp_engine_receive(h->e, h->now, sid, 0, &from, buf, len);
                        h_drain(h);
                } else {
                        pcp_engine_receive_at(h->e, h->now, rx, sid, 0, &from, buf, len);
                        h_drain(h);
                }
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, (uint64_t) late);
                assert_int_equal(h_count_for(h, other), (size_t) late);
                h_free(h);
        }
        /* an arrival time after now is taken as now */
        {
                harness *h = h_new(8, NULL);
                uint32_t sid = pcp_server(h);
                uint64_t id = h_map(h, sid, IPPROTO_UDP, 9000, 3600);
                struct sockaddr_in6 from = h_srv(h, sid)->addrs[0].remote;
                pcp_msg r;
                uint8_t buf[PCP_MAX_MSG_LEN];
                size_t len;

                h_make_reply(h_last_for(h, id), &r, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 49000);
                assert_int_equal(pcp_encode(&r, buf, sizeof(buf), &len), PCP_WIRE_OK);
                pcp_engine_receive_at(h->e, h->now, h->now + HOUR, sid, 0, &from, buf, len);
                h_drain(h);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
                h_advance(h, 10 * SEC);
                h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 49000);
                assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 0);
                h_free(h);
        }
}

static void test_announce(void **state) {
        for (int invalid = 0; invalid <= 1; invalid++) {
                harness *h = h_new(11 + invalid, NULL);
                uint32_t sid = pcp_server(h);
                uint64_t ids[200];
                uint64_t t0, lo = UINT64_MAX, hi = 0;

                for (int i = 0; i < 200; i++)
                        ids[i] = granted_map(h, sid, (uint16_t) (10000 + i), 3600, (uint16_t) (20000 + i));
                h_advance(h, 60 * SEC);
                h_clear(h);
                t0 = h->now;
                h_announce(h, SRV, invalid ? 0 : ep(h));
                /* the ANNOUNCE's epoch is not taken (the answers' is); one that looks like
                 * a reset is told when an answer says which it was */
                assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
                assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), (size_t) !invalid);
                assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 0);
                assert_int_equal(h_srv(h, sid)->epoch, ep(h) - 60);
                h_advance_to(h, t0 + 5 * SEC);
                for (int i = 0; i < 200; i++) {
                        const h_sent *s = h_first_for(h, ids[i]);
                        pcp_msg m;
                        assert_non_null(s);
                        assert_in(s->t, t0, t0 + 5 * SEC);
                        lo = s->t - t0 < lo ? s->t - t0 : lo;
                        hi = s->t - t0 > hi ? s->t - t0 : hi;
                        h_decode(s, &m);
                        assert_int_equal(m.external_port, 20000 + i);
                }
                /* spread over the whole window, not all at once */
                assert_true(lo < 500);
                assert_true(hi > 4500);
                if (invalid) {
                        /* the restarted server's answer to one: the reset, told once, the
                         * others being asked already; nothing asked again */
                        size_t before = h->n_sent;

                        h_reply(h, h_last_for(h, ids[0]), PCP_RESULT_SUCCESS, 3600, (uint32_t) ((h->now - t0) / SEC),
                                EXT, 20000);
                        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 1);
                        assert_true(h_last_event(h, PCP_EVENT_EPOCH_RESET, 0)->from_announce);
                        assert_int_equal(h_last_event(h, PCP_EVENT_EPOCH_RESET, 0)->n_recreated, 199);
                        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 1);
                        assert_int_equal(h->n_sent, before);
                }
                /* an ANNOUNCE from a stranger changes nothing */
                h_clear(h);
                h_announce(h, "10.9.9.9", 0);
                assert_int_equal(pcp_engine_get_stats(h->e)->dropped[PCP_DROP_UNKNOWN_SERVER], 1);
                assert_int_equal(h->n_ev, 0);
                h_free(h);
        }
}

/* ---- unsolicited responses ---- */

static void test_unsolicited(void **state) {
        harness *h = h_new(13, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t id = granted_map(h, sid, 8080, 3600, 40000);
        pcp_mapping_info before;
        const h_event *ev;
        pcp_msg r;

        h_advance(h, 100 * SEC);
        h_clear_sent(h);
        /* the external address changed (§14.2) */
        pcp_msg_init(&r, true, PCP_OPCODE_MAP);
        r.result = PCP_RESULT_SUCCESS;
        r.lifetime = 3500;
        r.epoch = ep(h);
        memcpy(r.nonce, h_mapping(h, id)->nonce, PCP_NONCE_LEN);
        r.protocol = IPPROTO_TCP;
        r.internal_port = 8080;
        r.external_port = 40123;
        r.external_addr = h_ip("198.51.100.99");
        h_clear(h);
        h_receive_msg(h, sid, 0, &r);
        ev = h_last_event(h, PCP_EVENT_MAPPING, id);
        assert_non_null(ev);
        assert_int_equal(ev->mapping.external_port, 40123);
        assert_memory_equal(&ev->mapping.external_addr, IP("198.51.100.99"), 16);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        assert_int_equal(h_mapping(h, id)->expires_at, h->now + 3500 * SEC);
        assert_memory_equal(&h_srv(h, sid)->external_addr, IP("198.51.100.99"), 16);
        assert_int_equal(h->n_sent, 0);

        /* unsolicited errors are dropped */
        before = *h_mapping(h, id);
        h_clear(h);
        r.result = PCP_RESULT_NO_RESOURCES;
        h_receive_msg(h, sid, 0, &r);
        assert_int_equal(pcp_engine_get_stats(h->e)->dropped[PCP_DROP_UNSOLICITED], 1);
        assert_memory_equal(&before, h_mapping(h, id), sizeof(before));
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(h->n_sent, 0);
        h_free(h);
}

/* ---- drops ---- */

typedef struct snapshot {
        pcp_mapping_info m[2];
        pcp_server_info s;
        uint64_t deadline;
} snapshot;

static void snap(harness *h, uint32_t sid, const uint64_t ids[2], snapshot *ret) {
        memset(ret, 0, sizeof(*ret));
        for (int i = 0; i < 2; i++)
                ret->m[i] = *h_mapping(h, ids[i]);
        ret->s = *h_srv(h, sid);
        ret->deadline = pcp_engine_next_deadline(h->e);
}

static void test_drops(void **state) {
        harness *h = h_new(17, NULL);
        pcp_server_addr addrs[2];
        uint32_t sid, other;
        uint64_t ids[2], peer_id;
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        snapshot a, b;
        pcp_msg r, tmpl;
        uint8_t buf[PCP_MAX_MSG_LEN];
        size_t len;
        struct sockaddr_in6 from;
        pcp_mapping_params pp;

        h_addr(&addrs[0], SRV, LOCAL);
        h_addr(&addrs[1], "192.168.1.2", LOCAL);
        assert_int_equal(pcp_engine_add_server(h->e, h->now, addrs, 2, &sid), 0);
        h_drain(h);
        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 0), PCP_RESULT_SUCCESS, 0, ep(h));
        other = h_server(h, "10.0.0.1", "10.0.0.5");
        ids[0] = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        ids[1] = granted_map(h, sid, 8081, 3600, 8081);
        h_params(&pp, sid, IPPROTO_TCP, 8082, 3600);
        pp.opcode = PCP_OPCODE_PEER;
        pp.remote_port = 80;
        pp.remote_addr = h_ip("203.0.113.5");
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &pp, &peer_id), 0);
        h_drain(h);
        h_make_reply(h_last_for(h, ids[0]), &tmpl, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 1234);
        h_clear(h);
        snap(h, sid, ids, &a);

        /* wrong source address and port */
        assert_int_equal(pcp_encode(&tmpl, buf, sizeof(buf), &len), PCP_WIRE_OK);
        from = h_srv(h, sid)->addrs[0].remote;
        from.sin6_port = htons(5352);
        pcp_engine_receive(h->e, h->now, sid, 0, &from, buf, len);
        h_drain(h);
        from = h_srv(h, sid)->addrs[0].remote;
        from.sin6_addr = h_ip("192.168.1.66");
        pcp_engine_receive(h->e, h->now, sid, 0, &from, buf, len);
        h_drain(h);
        from = h_srv(h, sid)->addrs[1].remote; /* the other address, on address 0's socket */
        pcp_engine_receive(h->e, h->now, sid, 0, &from, buf, len);
        h_drain(h);
        pcp_engine_receive(h->e, h->now, sid, 7, &from, buf, len); /* no such address */
        h_drain(h);
        pcp_engine_receive(h->e, h->now, 999, 0, &from, buf, len); /* no such server */
        h_drain(h);
        pcp_engine_receive(h->e, h->now, sid, 0, NULL, buf, len);
        h_drain(h);
        assert_int_equal(st->dropped[PCP_DROP_WRONG_SOURCE], 6);
        /* the answer to a mapping of server sid, arriving from another server */
        h_receive(h, other, 0, buf, len);
        assert_int_equal(st->dropped[PCP_DROP_WRONG_SOURCE], 7);

        /* malformed: truncated, misaligned, request bit, bad result, empty */
        h_receive(h, sid, 0, buf, len - 4);
        h_receive(h, sid, 0, buf, len - 1);
        h_receive(h, sid, 0, buf, 0);
        buf[1] &= 0x7f;
        h_receive(h, sid, 0, buf, len);
        buf[1] |= 0x80;
        buf[3] = 200;
        h_receive(h, sid, 0, buf, len);
        buf[3] = 0;
        {
                const uint8_t natpmp_junk[] = { 0, 0x82, 0, 0, 1, 2, 3 };
                h_receive(h, sid, 0, natpmp_junk, sizeof(natpmp_junk));
        }
        assert_int_equal(st->dropped[PCP_DROP_MALFORMED], 6);

        /* wrong version: v3 SUCCESS, and a NAT-PMP answer from a PCP server */
        buf[0] = 3;
        h_receive(h, sid, 0, buf, len);
        buf[0] = 2;
        {
                natpmp_msg n = { .response = true, .opcode = NATPMP_OPCODE_MAP_TCP, .internal_port = 8080,
                                 .external_port = 1, .lifetime = 10, .epoch = ep(h) };
                h_receive_natpmp(h, sid, 0, &n);
        }
        assert_int_equal(st->dropped[PCP_DROP_WRONG_VERSION], 2);

        /* wrong opcode: the nonce of a MAP in a PEER answer */
        r = tmpl;
        r.opcode = PCP_OPCODE_PEER;
        r.remote_port = 80;
        r.remote_addr = h_ip("203.0.113.5");
        h_receive_msg(h, sid, 0, &r);
        assert_int_equal(st->dropped[PCP_DROP_WRONG_OPCODE], 1);

        /* unknown nonce */
        r = tmpl;
        r.nonce[0] ^= 0xff;
        h_receive_msg(h, sid, 0, &r);
        assert_int_equal(st->dropped[PCP_DROP_UNKNOWN_NONCE], 1);

        /* known nonce, other protocol or internal port */
        r = tmpl;
        r.protocol = IPPROTO_UDP;
        h_receive_msg(h, sid, 0, &r);
        r = tmpl;
        r.internal_port = 8081;
        h_receive_msg(h, sid, 0, &r);
        assert_int_equal(st->dropped[PCP_DROP_MISMATCH], 2);

        /* an ANNOUNCE answer nobody asked for */
        pcp_msg_init(&r, true, PCP_OPCODE_ANNOUNCE);
        r.epoch = 1;
        h_receive_msg(h, sid, 0, &r);
        assert_int_equal(st->dropped[PCP_DROP_UNSOLICITED], 1);

        /* nothing changed, nothing sent, nothing reported */
        snap(h, sid, ids, &b);
        assert_memory_equal(&a, &b, sizeof(a));
        assert_int_equal(h->n_sent, 0);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(st->epoch_resets, 0);

        /* ANNOUNCE port: unknown server, garbage */
        {
                struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(5351) };
                const uint8_t junk[] = { 2, 0x80, 0, 0 };
                sa.sin6_addr = h_ip("10.1.1.1");
                pcp_engine_receive_announce(h->e, h->now, &sa, junk, sizeof(junk));
                h_drain(h);
                pcp_engine_receive_announce(h->e, h->now, NULL, junk, sizeof(junk));
                h_drain(h);
                assert_int_equal(st->dropped[PCP_DROP_UNKNOWN_SERVER], 2);
                sa.sin6_addr = h_ip(SRV);
                pcp_engine_receive_announce(h->e, h->now, &sa, junk, sizeof(junk));
                h_drain(h);
                assert_int_equal(st->dropped[PCP_DROP_MALFORMED], 7);
        }
        snap(h, sid, ids, &b);
        assert_memory_equal(&a, &b, sizeof(a));
        assert_int_equal(h->n_sent, 0);
        assert_int_equal(h->n_ev, 0);

        /* and the real answer still works */
        h_receive_msg(h, sid, 0, &tmpl);
        assert_int_equal(h_mapping(h, ids[0])->state, PCP_MAPPING_ACTIVE);
        assert_int_equal(h_mapping(h, ids[0])->external_port, 1234);
        for (int i = 0; i < _PCP_DROP_MAX; i++)
                assert_string_not_equal(pcp_drop_reason_to_string(i), "invalid");
        h_free(h);
}

/* ---- unreachable ---- */

static void test_unreachable(void **state) {
        harness *h = h_new(19, NULL);
        pcp_server_addr addrs[2];
        uint32_t sid;
        uint64_t id, active, del;
        const h_event *ev;

        h_addr(&addrs[0], SRV, LOCAL);
        h_addr(&addrs[1], "192.168.1.2", LOCAL);
        assert_int_equal(pcp_engine_add_server(h->e, h->now, addrs, 2, &sid), 0);
        h_drain(h);
        /* server speaks on address 0 first, grants one mapping, then goes away */
        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 0), PCP_RESULT_SUCCESS, 0, ep(h));
        active = granted_map(h, sid, 7000, 3600, 7000);
        del = granted_map(h, sid, 7001, 3600, 7001);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, del), 0);
        h_drain(h);
        id = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        h_clear(h);

        /* RFC 7488: ICMP from address 0 → the next address, at once */
        pcp_engine_unreachable(h->e, h->now, sid, 0);
        h_drain(h);
        assert_int_equal(h_srv(h, sid)->current_addr, 1);
        assert_non_null(h_last_for(h, id));
        assert_int_equal(h_last_for(h, id)->addr_index, 1);
        assert_int_equal(h_last_for(h, id)->t, h->now);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);

        /* every address unreachable */
        pcp_engine_unreachable(h->e, h->now, sid, 1);
        h_drain(h);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
        ev = h_last_event(h, PCP_EVENT_MAPPING, id);
        assert_non_null(ev);
        assert_int_equal(ev->mapping.state, PCP_MAPPING_FAILED);
        assert_int_equal(ev->mapping.error, PCP_MAPPING_ERROR_UNREACHABLE);
        assert_string_equal(pcp_mapping_error_name(&ev->mapping), "UNREACHABLE");
        /* granted mappings stay until they expire; a pending delete is given up */
        assert_int_equal(h_mapping(h, active)->state, PCP_MAPPING_ACTIVE);
        assert_null(pcp_engine_mapping_get(h->e, del));
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);

        /* retries continue on the schedule, each one answered by ICMP: never tight */
        h_clear(h);
        for (uint64_t end = h->now + 6 * HOUR; h->now < end;) {
                size_t before = h->n_sent;
                if (!h_step(h))
                        break;
                for (size_t k = before; k < h->n_sent; k++) {
                        pcp_engine_unreachable(h->e, h->now, sid, h->sent[k].addr_index);
                        h_drain(h);
                }
        }
        /* ~25 RFC retransmissions in 6 h for the mapping (and as many probes), x2 addresses */
        assert_true(h->n_sent < 400);
        assert_true(h_count_for(h, id) >= 20);
        /* one server event: asked, and nothing heard, it turned silent; still unreachable */
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        assert_true(h_last_event(h, PCP_EVENT_SERVER, 0)->server.silent);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
        /* the granted one expired meanwhile, and its retries met ICMP like the others: a
         * mapping that starts waiting while the server is already unreachable is told so
         * too (integration scenario 7 caught it staying "pending") */
        assert_int_equal(h_mapping(h, active)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, active)->error, PCP_MAPPING_ERROR_UNREACHABLE);

        /* the server is back */
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 8080);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_false(h_srv(h, sid)->silent);
        h_free(h);
}

/* An ICMP error is no more authenticated than an ANNOUNCE: anyone on the path who knows
 * the socket's ports can send one. A real one answers a datagram sent moments ago. One
 * while nothing is asked of the server, or long after the last request went, changes
 * nothing (dropped, counted: stray-icmp); one right after a request still fails over at
 * once, as test_unreachable says. (One spoofed datagram made a server that answered a
 * second ago UNREACHABLE and failed its pending mappings.) */
static void test_icmp_needs_a_request(void **state) {
        harness *h = h_new(29, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t act = granted_map(h, sid, 8080, 600, 40000), pend;
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);

        (void) state;
        /* answered a second ago, nothing asked since */
        h_advance(h, 1 * SEC);
        h_clear(h);
        pcp_engine_unreachable(h->e, h->now, sid, 0);
        h_drain(h);
        if (h_srv(h, sid)->state != PCP_SERVER_PCP)
                fail_msg("one ICMP error with nothing asked made the server %s",
                         pcp_server_state_to_string(h_srv(h, sid)->state));
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(h->n_sent, 0);
        assert_int_equal(h_mapping(h, act)->state, PCP_MAPPING_ACTIVE);
        assert_int_equal(st->dropped[PCP_DROP_STRAY_ICMP], 1);
        assert_string_equal(pcp_drop_reason_to_string(PCP_DROP_STRAY_ICMP), "stray-icmp");

        /* a request out, but it went 2.5 s ago (its retransmission comes at ~3 s): no
         * answer to it, dropped too */
        pend = h_map(h, sid, IPPROTO_TCP, 9090, 600);
        h_advance(h, 2500);
        assert_int_equal(h_count_for(h, pend), 1);
        pcp_engine_unreachable(h->e, h->now, sid, 0);
        h_drain(h);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_int_equal(h_mapping(h, pend)->state, PCP_MAPPING_PENDING);
        assert_int_equal(h_mapping(h, pend)->error, PCP_MAPPING_ERROR_NONE);
        assert_int_equal(st->dropped[PCP_DROP_STRAY_ICMP], 2);

        /* its retransmission, and the ICMP error right after it: taken, as before */
        while (h_count_for(h, pend) < 2)
                assert_true(h_step(h));
        pcp_engine_unreachable(h->e, h->now, sid, 0);
        h_drain(h);
        assert_int_equal(st->dropped[PCP_DROP_STRAY_ICMP], 2);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
        assert_int_equal(h_mapping(h, pend)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, pend)->error, PCP_MAPPING_ERROR_UNREACHABLE);
        assert_int_equal(h_mapping(h, act)->state, PCP_MAPPING_ACTIVE);

        /* the server is back: its answer to the next retransmission; an ICMP error half a
         * second after that answer (nothing asked any more) changes nothing */
        while (h_count_for(h, pend) < 3)
                assert_true(h_step(h));
        h_reply(h, h_last_for(h, pend), PCP_RESULT_SUCCESS, 600, ep(h), EXT, 49090);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_int_equal(h_mapping(h, pend)->state, PCP_MAPPING_ACTIVE);
        h_advance(h, 500);
        h_clear(h);
        pcp_engine_unreachable(h->e, h->now, sid, 0);
        h_drain(h);
        assert_int_equal(st->dropped[PCP_DROP_STRAY_ICMP], 3);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(h->n_sent, 0);
        h_free(h);
}

/* ---- nonce persistence ---- */

static void test_nonce_persistence(void **state) {
        harness *h = h_new(23, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t id = granted_map(h, sid, 8080, 3600, 40000);
        uint8_t nonce[PCP_NONCE_LEN];
        pcp_mapping_params p;
        pcp_msg m;
        const h_event *ev;

        memcpy(nonce, h_mapping(h, id)->nonce, PCP_NONCE_LEN);
        h_free(h);

        /* "daemon restart" with another seed */
        h = h_new(24, NULL);
        sid = pcp_server(h);
        h_params(&p, sid, IPPROTO_TCP, 8080, 3600);
        p.has_nonce = true;
        memcpy(p.nonce, nonce, PCP_NONCE_LEN);
        p.suggested_external_port = 40000;
        p.suggested_external_addr = h_ip(EXT);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        h_drain(h);
        assert_memory_equal(h_mapping(h, id)->nonce, nonce, PCP_NONCE_LEN);
        h_decode(h_last(h), &m);
        assert_memory_equal(m.nonce, nonce, PCP_NONCE_LEN);
        assert_int_equal(m.external_port, 40000);
        assert_memory_equal(&m.external_addr, IP(EXT), 16);
        /* the same nonce twice is refused */
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, NULL), -EEXIST);
        h_drain(h);
        h_reply(h, h_last(h), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 40000);
        /* delete with the persisted nonce */
        h_clear(h);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, id), 0);
        h_drain(h);
        h_decode(h_last(h), &m);
        assert_int_equal(m.lifetime, 0);
        assert_memory_equal(m.nonce, nonce, PCP_NONCE_LEN);
        h_reply(h, h_last(h), PCP_RESULT_SUCCESS, 0, ep(h), "0.0.0.0", 0);
        ev = h_last_event(h, PCP_EVENT_MAPPING_DELETED, id);
        assert_non_null(ev);
        assert_true(ev->deleted_upstream);
        assert_memory_equal(ev->mapping.nonce, nonce, PCP_NONCE_LEN);
        h_free(h);
}

/* A mapping's point in its renewal windows is read from its nonce (its last four octets,
 * / 2^32): a mapping restored with its nonce after a restart renews at the same point of
 * its window as before, whatever the new engine draws (the fresh jitter is +-1/16). */
static void test_renewal_phase_from_nonce(void **state) {
        /* the last four octets as the host reads them: 1/4 and 1/2 and 7/8 of the window */
        static const uint32_t phases[] = { UINT32_C(0x40000000), UINT32_C(0x80000000), UINT32_C(0xe0000000) };

        for (unsigned seed = 31; seed < 34; seed++) {
                harness *h = h_new(seed, NULL);
                uint32_t sid = pcp_server(h);

                for (size_t i = 0; i < 3; i++) {
                        pcp_mapping_params p;
                        uint64_t id, t0, start, width;
                        double pos;

                        h_params(&p, sid, IPPROTO_TCP, (uint16_t) (8080 + i), 3600);
                        p.has_nonce = true;
                        memset(p.nonce, (int) (0x11 * (i + 1)), PCP_NONCE_LEN);
                        memcpy(p.nonce + PCP_NONCE_LEN - 4, &phases[i], 4);
                        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
                        h_drain(h);
                        t0 = h->now;
                        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, (uint16_t) (40000 + i));
                        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
                        /* the first window: [1/2, 1/2 + 1/8] of the lifetime after the grant */
                        start = t0 + 1800 * SEC;
                        width = 450 * SEC;
                        assert_in(h_mapping(h, id)->next_send, start, start + width);
                        pos = (double) (h_mapping(h, id)->next_send - start) / (double) width -
                              (double) phases[i] / 4294967296.0; /* none wraps: 1/16 from the ends */
                        if (pos < -1.0 / 16 - 1e-6 || pos > 1.0 / 16 + 1e-6)
                                fail_msg("seed %u: phase %#x renews %.4f of its window off", seed, phases[i], pos);
                }
                h_free(h);
        }
}

/* ---- options ---- */

static void test_options_and_prefix64(void **state) {
        harness *h = h_new(29, NULL);
        uint32_t sid = pcp_server(h);
        pcp_mapping_params p;
        uint64_t id, peer;
        pcp_msg m, r;
        const h_sent *s;

        h_params(&p, sid, IPPROTO_TCP, 8080, 3600);
        p.description = "wiki \xc3\xa9t\xc3\xa9";
        p.n_filters = 2;
        p.filters[0] = (pcp_filter) { .prefix_len = 120, .remote_port = 0, .remote_addr = h_ip("203.0.113.0") };
        p.filters[1] = (pcp_filter) { .prefix_len = 128, .remote_port = 22, .remote_addr = h_ip("198.51.100.1") };
        p.has_third_party = true;
        p.third_party = h_ip("192.168.1.77");
        p.has_port_set = true;
        p.port_set = (pcp_port_set) { .size = 16, .first_internal_port = 8080, .parity = true };
        p.prefer_failure = true;
        p.suggested_external_port = 18080;
        p.suggested_external_addr = h_ip("198.51.100.7");
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        h_drain(h);
        s = h_last_for(h, id);
        h_decode(s, &m);
        assert_true(m.options & PCP_HAS_DESCRIPTION);
        assert_int_equal(m.description_len, strlen(p.description));
        assert_memory_equal(m.description, p.description, m.description_len);
        assert_int_equal(m.n_filters, 2);
        assert_int_equal(m.filters[0].prefix_len, 120);
        assert_int_equal(m.filters[1].remote_port, 22);
        assert_memory_equal(&m.filters[1].remote_addr, &p.filters[1].remote_addr, 16);
        assert_true(m.options & PCP_HAS_THIRD_PARTY);
        assert_memory_equal(&m.third_party, &p.third_party, 16);
        assert_true(m.options & PCP_HAS_PORT_SET);
        assert_int_equal(m.port_set.size, 16);
        assert_int_equal(m.port_set.first_internal_port, 8080);
        assert_true(m.port_set.parity);
        assert_true(m.options & PCP_HAS_PREFER_FAILURE);
        assert_int_equal(m.external_port, 18080);
        assert_memory_equal(&m.external_addr, &p.suggested_external_addr, 16);
        assert_memory_equal(&h_mapping(h, id)->internal_addr, &p.third_party, 16);
        assert_memory_equal(&m.client_addr, IP(LOCAL), 16);

        /* PREFIX64 in the answer lands on the server */
        h_make_reply(s, &r, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 18080);
        r.n_prefix64 = 1;
        memset(&r.prefix64[0], 0, sizeof(r.prefix64[0]));
        r.prefix64[0].prefix_len = 96;
        r.prefix64[0].prefix = h_ip("64:ff9b::");
        r.prefix64[0].suffix_len = 0;
        h_clear(h);
        h_receive_msg(h, sid, 0, &r);
        assert_int_equal(h_srv(h, sid)->n_prefix64, 1);
        assert_int_equal(h_srv(h, sid)->prefix64[0].prefix_len, 96);
        assert_memory_equal(&h_srv(h, sid)->prefix64[0].prefix, IP("64:ff9b::"), 16);
        assert_null(h_srv(h, sid)->prefix64[0].ipv4_prefixes);
        assert_true(h_count_events(h, PCP_EVENT_SERVER, 0) >= 1);

        /* PEER: remote peer on the wire, no MAP-only options */
        h_params(&p, sid, IPPROTO_UDP, 9999, 600);
        p.opcode = PCP_OPCODE_PEER;
        p.remote_port = 3478;
        p.remote_addr = h_ip("203.0.113.50");
        p.description = "call";
        p.has_port_set = true;
        p.port_set.size = 2;
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &peer), 0);
        h_drain(h);
        h_decode(h_last_for(h, peer), &m);
        assert_int_equal(m.opcode, PCP_OPCODE_PEER);
        assert_int_equal(m.remote_port, 3478);
        assert_memory_equal(&m.remote_addr, &p.remote_addr, 16);
        assert_false(m.options & PCP_HAS_PORT_SET);
        assert_true(m.options & PCP_HAS_DESCRIPTION);
        h_reply(h, h_last_for(h, peer), PCP_RESULT_SUCCESS, 600, ep(h), EXT, 9999);
        assert_int_equal(h_mapping(h, peer)->state, PCP_MAPPING_ACTIVE);

        /* invalid parameters */
        h_params(&p, sid, IPPROTO_TCP, 0, 3600);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, NULL), -EINVAL);
        h_drain(h);
        h_params(&p, sid, IPPROTO_TCP, 1, 0);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, NULL), -EINVAL);
        h_drain(h);
        h_params(&p, 4242, IPPROTO_TCP, 1, 10);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, NULL), -ENOENT);
        h_drain(h);
        h_free(h);
}

/* ---- version negotiation, NAT-PMP ---- */

static void natpmp_unsupp(harness *h, uint32_t sid, uint32_t epoch) {
        uint8_t b[8] = { 0, 0x80, 0, 1 };
        b[4] = (uint8_t) (epoch >> 24);
        b[5] = (uint8_t) (epoch >> 16);
        b[6] = (uint8_t) (epoch >> 8);
        b[7] = (uint8_t) epoch;
        h_receive(h, sid, 0, b, sizeof(b));
}

/* the answer to the external address request (opcode 0) a switch to NAT-PMP sent */
static void natpmp_address(harness *h, uint32_t sid, const char *addr, uint32_t epoch) {
        natpmp_msg n = { .response = true, .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS, .epoch = epoch };

        assert_int_equal(inet_pton(AF_INET, addr, &n.external_addr), 1);
        h_receive_natpmp(h, sid, 0, &n);
}

static void test_natpmp_fallback(void **state) {
        harness *h = h_new(31, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        uint64_t tcp = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        uint64_t udp = h_map(h, sid, IPPROTO_UDP, 5353, 7200);
        uint64_t sctp = h_map(h, sid, 132, 9, 3600);
        uint64_t t_switch, t_grant;
        natpmp_msg n;
        const h_sent *addr_req = NULL;
        size_t n_addr = 0;
        uint64_t addr_times[8];

        h_clear(h);
        natpmp_unsupp(h, sid, 100);
        t_switch = h->now;
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        assert_int_equal(h_mapping(h, sctp)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, sctp)->error, PCP_MAPPING_ERROR_UNSUPPORTED);
        assert_string_equal(pcp_mapping_error_name(h_mapping(h, sctp)), "UNSUPPORTED");
        /* at once: the address request and both mappings in NAT-PMP */
        for (size_t k = 0; k < h->n_sent; k++) {
                assert_true(h_is_natpmp(&h->sent[k]));
                assert_int_equal(h->sent[k].t, t_switch);
        }
        assert_int_equal(h->n_sent, 3);
        /* retransmissions: 250 ms, doubling */
        h_advance(h, 250 * 63 - 1);
        for (size_t k = 0; k < h->n_sent; k++) {
                h_decode_natpmp(&h->sent[k], &n);
                if (n.opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS) {
                        assert_true(n_addr < 8);
                        addr_times[n_addr++] = h->sent[k].t - t_switch;
                        addr_req = &h->sent[k];
                }
        }
        assert_non_null(addr_req);
        assert_int_equal(n_addr, 6);
        for (size_t k = 0; k < n_addr; k++)
                assert_int_equal(addr_times[k], k == 0 ? 0 : 250 * ((1u << k) - 1));
        {
                /* the mapping requests follow the same schedule */
                size_t n_tcp = 0;
                for (size_t k = 0; k < h->n_sent; k++) {
                        h_decode_natpmp(&h->sent[k], &n);
                        if (n.opcode != NATPMP_OPCODE_MAP_TCP)
                                continue;
                        assert_int_equal(n.internal_port, 8080);
                        assert_int_equal(n.lifetime, 3600);
                        assert_int_equal(h->sent[k].t - t_switch, n_tcp == 0 ? 0 : 250 * ((1u << n_tcp) - 1));
                        n_tcp++;
                }
                assert_int_equal(n_tcp, 6);
        }

        /* address answer, then mapping answers */
        n = (natpmp_msg) { .response = true, .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS, .epoch = 116 };
        inet_pton(AF_INET, "198.51.100.40", &n.external_addr);
        h_receive_natpmp(h, sid, 0, &n);
        assert_true(h_srv(h, sid)->has_external_addr);
        assert_memory_equal(&h_srv(h, sid)->external_addr, IP("198.51.100.40"), 16);
        n = (natpmp_msg) { .response = true, .opcode = NATPMP_OPCODE_MAP_TCP, .internal_port = 8080,
                           .external_port = 18080, .lifetime = 3600, .epoch = 116 };
        h_receive_natpmp(h, sid, 0, &n);
        n.opcode = NATPMP_OPCODE_MAP_UDP;
        n.internal_port = 5353;
        n.external_port = 15353;
        n.lifetime = 7200;
        h_receive_natpmp(h, sid, 0, &n);
        t_grant = h->now;
        assert_int_equal(h_mapping(h, tcp)->state, PCP_MAPPING_ACTIVE);
        assert_true(h_mapping(h, tcp)->natpmp);
        assert_int_equal(h_mapping(h, tcp)->external_port, 18080);
        assert_memory_equal(&h_mapping(h, tcp)->external_addr, IP("198.51.100.40"), 16);
        assert_int_equal(h_mapping(h, udp)->state, PCP_MAPPING_ACTIVE);

        /* renewal of the TCP one at exactly half the lifetime */
        h_clear(h);
        h_advance_to(h, t_grant + 1800 * SEC);
        {
                size_t found = 0;
                for (size_t k = 0; k < h->n_sent; k++) {
                        if (!h_is_natpmp(&h->sent[k]))
                                continue;
                        h_decode_natpmp(&h->sent[k], &n);
                        if (n.opcode == NATPMP_OPCODE_MAP_TCP) {
                                assert_int_equal(h->sent[k].t, t_grant + 1800 * SEC);
                                assert_int_equal(n.external_port, 18080);
                                found++;
                        }
                }
                assert_int_equal(found, 1);
        }
        /* PCP probed again 30 min after the switch */
        {
                const h_sent *probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);
                assert_non_null(probe);
                assert_int_equal(probe->t, t_switch + 30 * MINUTE);
                /* still NAT-PMP only */
                natpmp_unsupp(h, sid, (uint32_t) (116 + (h->now - t_switch) / SEC));
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        }
        /* delete: NAT-PMP lifetime 0, external port 0 */
        h_clear(h);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, udp), 0);
        h_drain(h);
        h_decode_natpmp(h_last(h), &n);
        assert_int_equal(n.opcode, NATPMP_OPCODE_MAP_UDP);
        assert_int_equal(n.lifetime, 0);
        assert_int_equal(n.external_port, 0);
        assert_int_equal(n.internal_port, 5353);
        n = (natpmp_msg) { .response = true, .opcode = NATPMP_OPCODE_MAP_UDP, .internal_port = 5353,
                           .epoch = (uint32_t) (116 + (h->now - t_switch) / SEC) };
        h_receive_natpmp(h, sid, 0, &n);
        assert_non_null(h_last_event(h, PCP_EVENT_MAPPING_DELETED, udp));
        assert_true(h_last_event(h, PCP_EVENT_MAPPING_DELETED, udp)->deleted_upstream);
        h_free(h);
}

/* NAT-PMP answers carry no nonce: they are matched by (protocol, internal port) through
 * the server's index. 600 mappings (the same 300 ports for TCP and UDP) answered in a
 * shuffled order each find their own mapping; forgotten and deleted ones leave the index. */
static void test_natpmp_port_index(void **state) {
        /* all 600 requests at once (the in-flight bound: test-engine-inflight.c) */
        pcp_engine_config cfg = { .max_in_flight = UINT32_MAX };
        harness *h = h_new(43, &cfg);
        uint32_t sid = h_server(h, SRV, LOCAL), sid2 = h_server(h, "192.168.2.1", "192.168.2.10");
        uint64_t ids[600], other;
        size_t order[600];
        natpmp_msg n;

        for (size_t i = 0; i < 600; i++)
                ids[i] = h_map(h, sid, i % 2 ? IPPROTO_UDP : IPPROTO_TCP, (uint16_t) (20000 + i / 2), 3600);
        /* the same port on another server is another mapping */
        other = h_map(h, sid2, IPPROTO_TCP, 20000, 3600);
        natpmp_unsupp(h, sid, 100);
        natpmp_unsupp(h, sid2, 100);
        natpmp_address(h, sid, EXT, 100);
        for (size_t i = 0; i < 600; i++)
                order[i] = i;
        for (size_t i = 599; i > 0; i--) {
                size_t j = h_rand(h) % (i + 1), t = order[i];
                order[i] = order[j];
                order[j] = t;
        }
        for (size_t k = 0; k < 600; k++) {
                size_t i = order[k];
                n = (natpmp_msg) { .response = true, .opcode = i % 2 ? NATPMP_OPCODE_MAP_UDP : NATPMP_OPCODE_MAP_TCP,
                                   .internal_port = (uint16_t) (20000 + i / 2),
                                   .external_port = (uint16_t) (30000 + i), .lifetime = 3600, .epoch = 100 };
                h_receive_natpmp(h, sid, 0, &n);
                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_mapping(h, ids[i])->external_port, 30000 + i);
        }
        assert_int_equal(h_mapping(h, other)->state, PCP_MAPPING_PENDING);
        for (size_t i = 0; i < 600; i++)
                assert_int_equal(h_mapping(h, ids[i])->external_port, 30000 + i);

        /* forget the TCP ones: their answers find nothing, the UDP ones still match */
        for (size_t i = 0; i < 600; i += 2) {
                assert_int_equal(pcp_engine_forget_mapping(h->e, ids[i]), 0);
                h_drain(h);
        }
        n = (natpmp_msg) { .response = true, .opcode = NATPMP_OPCODE_MAP_TCP, .internal_port = 20007,
                           .external_port = 1, .lifetime = 3600, .epoch = 101 };
        h_receive_natpmp(h, sid, 0, &n);
        assert_int_equal(pcp_engine_get_stats(h->e)->dropped[PCP_DROP_UNKNOWN_NONCE], 1);
        /* a renewal answer for a UDP one (unsolicited here: not awaiting) is not misrouted */
        n.opcode = NATPMP_OPCODE_MAP_UDP;
        h_receive_natpmp(h, sid, 0, &n);
        assert_int_equal(h_mapping(h, ids[15])->external_port, 30015);
        /* delete a UDP one: the answer completes it, then the port is free in the index */
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, ids[15]), 0);
        h_drain(h);
        n = (natpmp_msg) { .response = true, .opcode = NATPMP_OPCODE_MAP_UDP, .internal_port = 20007, .epoch = 101 };
        h_receive_natpmp(h, sid, 0, &n);
        assert_null(pcp_engine_mapping_get(h->e, ids[15]));
        h_receive_natpmp(h, sid, 0, &n);
        assert_int_equal(pcp_engine_get_stats(h->e)->dropped[PCP_DROP_UNKNOWN_NONCE], 2);
        /* removing the server frees its index with the mappings in it */
        assert_int_equal(pcp_engine_remove_server(h->e, h->now, sid), 0);
        h_drain(h);
        assert_int_equal(pcp_engine_mapping_count(h->e), 1);
        h_free(h);
}

static void natpmp_short_error(harness *h, uint32_t sid, uint8_t opcode, uint16_t result, uint32_t epoch) {
        uint8_t b[8] = { 0, (uint8_t) (0x80 | opcode), (uint8_t) (result >> 8), (uint8_t) result,
                         (uint8_t) (epoch >> 24), (uint8_t) (epoch >> 16), (uint8_t) (epoch >> 8), (uint8_t) epoch };
        h_receive(h, sid, 0, b, sizeof(b));
}

/* RFC 6886 §3.5: a NAT-PMP error may be the 8-octet header alone, without the ports. It is
 * matched to the one outstanding request of its opcode, or dropped and counted. */
static void test_natpmp_short_error(void **state) {
        harness *h = h_new(47, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        uint64_t tcp1 = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        uint64_t udp1 = h_map(h, sid, IPPROTO_UDP, 5353, 3600);
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        uint64_t udp_next, tcp2, tcp3, t;

        natpmp_unsupp(h, sid, 100);
        natpmp_address(h, sid, EXT, 100);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        assert_true(h_mapping(h, tcp1)->natpmp);
        udp_next = h_mapping(h, udp1)->next_send;

        /* one TCP request outstanding: the error is its */
        t = h->now;
        natpmp_short_error(h, sid, NATPMP_OPCODE_MAP_TCP, NATPMP_RESULT_OUT_OF_RESOURCES, 100);
        assert_int_equal(h_mapping(h, tcp1)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, tcp1)->result, PCP_RESULT_NO_RESOURCES);
        assert_int_equal(h_mapping(h, tcp1)->next_send, t + 30 * SEC); /* short floor */
        assert_int_equal(h_mapping(h, udp1)->state, PCP_MAPPING_PENDING);
        assert_int_equal(h_mapping(h, udp1)->next_send, udp_next);

        /* one UDP request outstanding: NOT_AUTHORIZED fails that mapping, the server stays */
        natpmp_short_error(h, sid, NATPMP_OPCODE_MAP_UDP, NATPMP_RESULT_NOT_AUTHORIZED, 100);
        assert_int_equal(h_mapping(h, udp1)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, udp1)->result, PCP_RESULT_NOT_AUTHORIZED);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);

        /* no request of that opcode outstanding now: unsolicited */
        natpmp_short_error(h, sid, NATPMP_OPCODE_MAP_TCP, NATPMP_RESULT_OUT_OF_RESOURCES, 100);
        assert_int_equal(st->dropped[PCP_DROP_UNSOLICITED], 1);
        assert_int_equal(h_mapping(h, tcp1)->next_send, t + 30 * SEC);

        /* two TCP requests outstanding: no telling which; both untouched */
        tcp2 = h_map(h, sid, IPPROTO_TCP, 8081, 3600);
        tcp3 = h_map(h, sid, IPPROTO_TCP, 8082, 3600);
        natpmp_short_error(h, sid, NATPMP_OPCODE_MAP_TCP, NATPMP_RESULT_NETWORK_FAILURE, 100);
        assert_int_equal(st->dropped[PCP_DROP_AMBIGUOUS], 1);
        assert_string_equal(pcp_drop_reason_to_string(PCP_DROP_AMBIGUOUS), "ambiguous");
        assert_int_equal(h_mapping(h, tcp2)->state, PCP_MAPPING_PENDING);
        assert_int_equal(h_mapping(h, tcp3)->state, PCP_MAPPING_PENDING);
        assert_int_equal(h_mapping(h, tcp2)->result, PCP_RESULT_SUCCESS);

        /* one of them answered: the next short error is the other one's */
        {
                natpmp_msg n = { .response = true, .opcode = NATPMP_OPCODE_MAP_TCP, .internal_port = 8081,
                                 .external_port = 8081, .lifetime = 3600, .epoch = 100 };
                h_receive_natpmp(h, sid, 0, &n);
        }
        assert_int_equal(h_mapping(h, tcp2)->state, PCP_MAPPING_ACTIVE);
        natpmp_short_error(h, sid, NATPMP_OPCODE_MAP_TCP, NATPMP_RESULT_NETWORK_FAILURE, 100);
        assert_int_equal(h_mapping(h, tcp3)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, tcp3)->result, PCP_RESULT_NETWORK_FAILURE);
        assert_int_equal(h_mapping(h, tcp2)->state, PCP_MAPPING_ACTIVE);

        /* a delete answered with a short error: done asking, not confirmed */
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, tcp2), 0);
        h_drain(h);
        natpmp_short_error(h, sid, NATPMP_OPCODE_MAP_TCP, NATPMP_RESULT_NOT_AUTHORIZED, 100);
        assert_null(pcp_engine_mapping_get(h->e, tcp2));
        assert_false(h_last_event(h, PCP_EVENT_MAPPING_DELETED, tcp2)->deleted_upstream);
        assert_int_equal(st->dropped[PCP_DROP_AMBIGUOUS], 1);
        h_free(h);
}

static void test_natpmp_pcp_returns(void **state) {
        harness *h = h_new(37, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        uint64_t tcp = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        uint64_t sctp = h_map(h, sid, 132, 9, 3600);
        natpmp_msg n;

        natpmp_unsupp(h, sid, 100);
        natpmp_address(h, sid, EXT, 100);
        n = (natpmp_msg) { .response = true, .opcode = NATPMP_OPCODE_MAP_TCP, .internal_port = 8080,
                           .external_port = 8080, .lifetime = 3600, .epoch = 100 };
        h_receive_natpmp(h, sid, 0, &n);
        assert_int_equal(h_mapping(h, tcp)->state, PCP_MAPPING_ACTIVE);
        h_advance(h, 30 * MINUTE);
        /* PCP was switched on meanwhile: the probe is answered in v2 */
        h_clear(h);
        {
                const h_sent *probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);
                if (probe == NULL) {
                        h_advance(h, 10 * SEC);
                        probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);
                }
                assert_non_null(probe);
                h_reply_announce(h, probe, PCP_RESULT_SUCCESS, 0, 5);
        }
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        h_advance(h, 0);
        /* both mappings go to PCP at once; the active one is refreshed, not renewed late */
        assert_non_null(h_last_for(h, tcp));
        assert_non_null(h_last_for(h, sctp));
        h_reply(h, h_last_for(h, tcp), PCP_RESULT_SUCCESS, 3600, 5, EXT, 8080);
        h_reply(h, h_last_for(h, sctp), PCP_RESULT_SUCCESS, 3600, 5, EXT, 9);
        assert_int_equal(h_mapping(h, tcp)->state, PCP_MAPPING_ACTIVE);
        assert_false(h_mapping(h, tcp)->natpmp);
        assert_int_equal(h_mapping(h, sctp)->state, PCP_MAPPING_ACTIVE);
        assert_int_equal(h_mapping(h, sctp)->error, PCP_MAPPING_ERROR_NONE);
        h_free(h);
}

/* A NAT-PMP mapping renews at half its lifetime and then retransmits on RFC 6886's
 * schedule; each of those requests is a renewal step. When the server turns out to speak
 * PCP again, the mapping's next request is a PCP renewal, and the one after it goes into
 * renewal window k = renew_step (RFC 6887 §11.2.1: [1 - 2^-k, 1 - 2^-k + 2^-(k+2)] of the
 * lifetime). After 60 unanswered NAT-PMP renewals that is k = 62, whose window width
 * L >> (k + 2) was a shift by 64: undefined behaviour, caught by UBSan (fuzz-engine found
 * it, corpus input regress-renew-shift-64; fixed in 07af834). Past the windows nothing is
 * left to spread over: the renewal after that comes at the expiry. k = 61 and 63 are
 * checked around it. Run under -Db_sanitize=undefined to see the shift. */
static size_t natpmp_map_requests(harness *h) {
        size_t n = 0;
        for (size_t i = 0; i < h->n_sent; i++)
                if (h_is_natpmp(&h->sent[i]) && h->sent[i].len >= 2 && h->sent[i].buf[1] == NATPMP_OPCODE_MAP_TCP)
                        n++;
        return n;
}

static void test_renewal_step_past_windows(void **state) {
        const uint32_t L = 7 * 86400; /* asked for and granted: not capped at 24 h */

        for (size_t n = 59; n <= 61; n++) {
                harness *h = h_new(300 + n, NULL);
                uint32_t sid = h_server(h, SRV, LOCAL);
                pcp_mapping_params p;
                natpmp_msg a;
                uint64_t id, t_epoch, expires;
                const h_sent *s;
                pcp_msg m;

                h_params(&p, sid, IPPROTO_TCP, 8080, L);
                assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
                h_drain(h);
                natpmp_unsupp(h, sid, 100);
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
                natpmp_address(h, sid, EXT, 100);
                t_epoch = h->now;
                a = (natpmp_msg) { .response = true, .opcode = NATPMP_OPCODE_MAP_TCP, .internal_port = 8080,
                                   .external_port = 8080, .lifetime = L, .epoch = 100 };
                h_receive_natpmp(h, sid, 0, &a);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
                assert_true(h_mapping(h, id)->natpmp);
                assert_int_equal(h_mapping(h, id)->lifetime_granted, L);
                expires = h_mapping(h, id)->expires_at;

                /* n renewals, none answered (the server's ANNOUNCE probes neither) */
                h_clear(h);
                while (natpmp_map_requests(h) < n)
                        assert_true(h_step(h));
                assert_int_equal(natpmp_map_requests(h), n);
                assert_true(h->now < expires);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_RENEWING);

                /* PCP is back (an ANNOUNCE answered in v2, the epoch consistent with the
                 * NAT-PMP one): the mapping renews over PCP at once ... */
                h_clear(h);
                {
                        h_sent any = { .server_id = sid, .addr_index = 0 };
                        h_reply_announce(h, &any, PCP_RESULT_SUCCESS, 0, 100 + (uint32_t) ((h->now - t_epoch) / SEC));
                }
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
                h_advance(h, 0);
                assert_int_equal(h_count_for(h, id), 1);
                s = h_last_for(h, id);
                h_decode(s, &m);
                assert_int_equal(m.opcode, PCP_OPCODE_MAP);
                assert_int_equal(m.external_port, 8080);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_RENEWING);
                assert_int_equal(h_mapping(h, id)->expires_at, expires);
                /* ... and, that one unanswered too, next at the expiry (window n + 2 is
                 * empty), with nothing in between */
                assert_int_equal(h_mapping(h, id)->next_send, expires);
                h_advance_to(h, expires - 1);
                assert_int_equal(h_count_for(h, id), 1);
                h_advance_to(h, expires);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_PENDING);
                assert_int_equal(h_mapping(h, id)->error, PCP_MAPPING_ERROR_EXPIRED);
                assert_int_equal(h_count_for(h, id), 2);

                /* an answer brings it back, on the first window again */
                h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, L, 100 + (uint32_t) ((h->now - t_epoch) / SEC),
                        EXT, 8080);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
                assert_in(h_mapping(h, id)->next_send, h->now + (uint64_t) L * SEC / 2,
                          h->now + (uint64_t) L * SEC * 5 / 8);
                h_free(h);
        }
}

/* ---- what a grant must say (issue 15): one test per rule ---- */

/* no MAPPING event since the last clear showed it active */
static void assert_never_active(harness *h, uint64_t id) {
        for (size_t i = 0; i < h->n_ev; i++)
                if (h->ev[i].type == PCP_EVENT_MAPPING && h->ev[i].mapping_id == id)
                        assert_true(h->ev[i].mapping.state != PCP_MAPPING_ACTIVE &&
                                    h->ev[i].mapping.state != PCP_MAPPING_RENEWING);
}

/* A new mapping (p) answered SUCCESS with (ext, ext_port, lifetime): never active, "failed"
 * with err, and its request retransmitted on the RFC schedule, same nonce, same request;
 * the right answer to that retransmission makes it active. Returns the mapping. */
static uint64_t check_unusable_create(harness *h, const pcp_mapping_params *p, const char *ext, uint16_t ext_port,
                                      uint32_t lifetime, pcp_mapping_error err, const char *name) {
        uint32_t sid = p->server_id;
        const pcp_mapping_info *mi;
        uint8_t first[PCP_MAX_MSG_LEN];
        size_t first_len;
        uint64_t id, t0, d1;
        pcp_msg r;

        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, p, &id), 0);
        h_drain(h);
        t0 = h_last_for(h, id)->t;
        first_len = h_last_for(h, id)->len;
        memcpy(first, h_last_for(h, id)->buf, first_len);
        h_make_reply(h_last_for(h, id), &r, PCP_RESULT_SUCCESS, lifetime, ep(h), ext, ext_port);
        h_clear(h);
        h_advance(h, 100);
        h_receive_msg(h, sid, 0, &r);
        mi = h_mapping(h, id);
        assert_int_equal(mi->state, PCP_MAPPING_FAILED);
        assert_int_equal(mi->error, err);
        assert_string_equal(pcp_mapping_error_name(mi), name);
        assert_false(mi->has_external);
        assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, id), 1);
        assert_never_active(h, id);
        /* an answer of the server's own, not a drop; nothing sent at once */
        for (int i = 0; i < _PCP_DROP_MAX; i++)
                assert_int_equal(pcp_engine_get_stats(h->e)->dropped[i], 0);
        assert_int_equal(h_count_for(h, id), 0);
        /* the retransmission: one first RT after the request, the same bytes */
        assert_in(mi->next_send, t0 + 2700, t0 + 3300);
        d1 = mi->next_send - t0;
        h_advance_to(h, mi->next_send);
        assert_int_equal(h_count_for(h, id), 1);
        assert_int_equal(h_last_for(h, id)->len, first_len);
        assert_memory_equal(h_last_for(h, id)->buf, first, first_len);
        assert_int_equal(h_mapping(h, id)->retransmissions, 1);
        /* the same answer again: still failed, no new event, the schedule doubles */
        h_make_reply(h_last_for(h, id), &r, PCP_RESULT_SUCCESS, lifetime, ep(h), ext, ext_port);
        h_clear(h);
        h_receive_msg(h, sid, 0, &r);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h->n_ev, 0);
        assert_in(h_mapping(h, id)->next_send, h->now + 2 * d1 * 9 / 10 - 1, h->now + 2 * d1 * 11 / 10 + 1);
        h_advance_to(h, h_mapping(h, id)->next_send);
        assert_int_equal(h_count_for(h, id), 1);
        /* a usable answer */
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 3600, ep(h), pcp_addr_is_ipv4(&h_mapping(h, id)->internal_addr)
                                                                      ? EXT : "2001:db8::99",
                p->internal_port != 0 ? 40000 : 0);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        assert_int_equal(h_mapping(h, id)->error, PCP_MAPPING_ERROR_NONE);
        assert_true(h_mapping(h, id)->has_external);
        return id;
}

static void check_unusable_create_tcp(harness *h, uint32_t sid, uint16_t port, const char *ext, uint16_t ext_port,
                                      uint32_t lifetime, pcp_mapping_error err, const char *name) {
        pcp_mapping_params p;

        h_params(&p, sid, IPPROTO_TCP, port, 3600);
        (void) check_unusable_create(h, &p, ext, ext_port, lifetime, err, name);
}

/* a mapping that is granted with (ext, ext_port, lifetime): active with them */
static void check_usable_create(harness *h, const pcp_mapping_params *p, const char *ext, uint16_t ext_port,
                                uint32_t lifetime) {
        uint64_t id;

        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, p, &id), 0);
        h_drain(h);
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, lifetime, ep(h), ext, ext_port);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        assert_memory_equal(&h_mapping(h, id)->external_addr, IP(ext), 16);
        assert_int_equal(h_mapping(h, id)->external_port, ext_port);
}

/* a NAT-PMP server with its external address answered (or not: addr NULL) */
static uint32_t natpmp_server(harness *h, uint64_t *tcp, const char *addr) {
        uint32_t sid = h_server(h, SRV, LOCAL);

        *tcp = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        natpmp_unsupp(h, sid, 100);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        if (addr != NULL)
                natpmp_address(h, sid, addr, 100);
        return sid;
}

static void natpmp_map_answer(harness *h, uint32_t sid, uint16_t port, uint16_t ext_port, uint32_t lifetime) {
        natpmp_msg n = { .response = true, .opcode = NATPMP_OPCODE_MAP_TCP, .internal_port = port,
                         .external_port = ext_port, .lifetime = lifetime, .epoch = 100 };
        h_receive_natpmp(h, sid, 0, &n);
}

/* Rule 1: the external address is not the unspecified address (:: or ::ffff:0.0.0.0).
 * Also for a renewal (the grant it renews ends), and for NAT-PMP (the external address
 * request answered 0.0.0.0: dropped, asked again; the mapping waits for an address). */
static void test_grant_rule_no_external_address(void **state) {
        harness *h = h_new(101, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t id, t;
        pcp_msg m;

        /* the issue's server: tcp/18500 answered [::]:0 */
        check_unusable_create_tcp(h, sid, 18500, "::", 0, 3600, PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS,
                                  "NO_EXTERNAL_ADDRESS");
        check_unusable_create_tcp(h, sid, 18501, "0.0.0.0", 18501, 3600, PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS,
                                  "NO_EXTERNAL_ADDRESS");
        check_unusable_create_tcp(h, sid, 18502, "::", 18502, 3600, PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS,
                                  "NO_EXTERNAL_ADDRESS");
        /* a renewal answered so */
        id = granted_map(h, sid, 18503, 600, 48503);
        h_clear(h);
        assert_true(h_step(h));
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_RENEWING);
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, 600, ep(h), "0.0.0.0", 48503);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, id)->error, PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS);
        t = h->now;
        assert_in(h_mapping(h, id)->next_send, t + 2700, t + 3300);
        h_clear_sent(h);
        h_advance_to(h, h_mapping(h, id)->next_send);
        assert_int_equal(h->n_sent, 1);
        h_decode(h_last(h), &m);
        /* asks for what it had */
        assert_memory_equal(&m.external_addr, IP(EXT), 16);
        assert_int_equal(m.external_port, 48503);
        h_reply(h, h_last(h), PCP_RESULT_SUCCESS, 600, ep(h), EXT, 48503);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        h_free(h);

        /* NAT-PMP: an address answer of 0.0.0.0 */
        {
                harness *hn = h_new(102, NULL);
                const pcp_engine_stats *st = pcp_engine_get_stats(hn->e);
                uint64_t tcp, t_switch = hn->now;
                uint32_t nsid = natpmp_server(hn, &tcp, NULL);
                size_t addr_reqs = 0;
                natpmp_msg n;

                natpmp_address(hn, nsid, "0.0.0.0", 100);
                assert_int_equal(st->dropped[PCP_DROP_UNUSABLE], 1);
                assert_string_equal(pcp_drop_reason_to_string(PCP_DROP_UNUSABLE), "unusable");
                assert_false(h_srv(hn, nsid)->has_external_addr);
                /* the mapping's answer: held, failed with NO_EXTERNAL_ADDRESS */
                h_clear(hn);
                natpmp_map_answer(hn, nsid, 8080, 18080, 3600);
                assert_int_equal(h_mapping(hn, tcp)->state, PCP_MAPPING_FAILED);
                assert_int_equal(h_mapping(hn, tcp)->error, PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS);
                assert_false(h_mapping(hn, tcp)->has_external);
                assert_never_active(hn, tcp);
                /* the address is asked for again (250 ms, doubling), the mapping not */
                h_advance(hn, 2 * SEC);
                for (size_t k = 0; k < hn->n_sent; k++) {
                        h_decode_natpmp(&hn->sent[k], &n);
                        assert_int_equal(n.opcode, NATPMP_OPCODE_EXTERNAL_ADDRESS);
                        addr_reqs++;
                }
                assert_true(addr_reqs >= 2);
                /* a usable address: active at once with the port granted, the rest of its lifetime */
                h_clear(hn);
                natpmp_address(hn, nsid, "198.51.100.40", (uint32_t) (100 + (hn->now - t_switch) / SEC));
                assert_int_equal(h_mapping(hn, tcp)->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_mapping(hn, tcp)->error, PCP_MAPPING_ERROR_NONE);
                assert_int_equal(h_mapping(hn, tcp)->external_port, 18080);
                assert_memory_equal(&h_mapping(hn, tcp)->external_addr, IP("198.51.100.40"), 16);
                assert_in(h_mapping(hn, tcp)->expires_at, t_switch + 3597 * SEC, t_switch + 3600 * SEC);
                /* and no more address requests */
                h_clear(hn);
                h_advance(hn, 60 * SEC);
                assert_int_equal(hn->n_sent, 0);
                /* a notice of 0.0.0.0 on the ANNOUNCE port changes nothing */
                {
                        struct sockaddr_in6 from = h_srv(hn, nsid)->addrs[0].remote;
                        uint8_t b[12] = { 0, 0x80, 0, 0, 0, 0, 0x10, 0 };
                        pcp_engine_receive_announce(hn->e, hn->now, &from, b, sizeof(b));
                        h_drain(hn);
                }
                assert_int_equal(st->dropped[PCP_DROP_UNUSABLE], 2);
                assert_int_equal(hn->n_ev, 0);
                assert_memory_equal(&h_srv(hn, nsid)->external_addr, IP("198.51.100.40"), 16);
                h_free(hn);
        }
        /* NAT-PMP: the mapping answered before the address: pending, then active */
        {
                harness *hn = h_new(103, NULL);
                uint64_t tcp;
                uint32_t nsid = natpmp_server(hn, &tcp, NULL);

                h_clear(hn);
                natpmp_map_answer(hn, nsid, 8080, 18080, 3600);
                assert_int_equal(h_mapping(hn, tcp)->state, PCP_MAPPING_PENDING);
                assert_int_equal(h_mapping(hn, tcp)->error, PCP_MAPPING_ERROR_NONE);
                assert_false(h_mapping(hn, tcp)->has_external);
                natpmp_address(hn, nsid, "198.51.100.41", 100);
                assert_int_equal(h_mapping(hn, tcp)->state, PCP_MAPPING_ACTIVE);
                assert_memory_equal(&h_mapping(hn, tcp)->external_addr, IP("198.51.100.41"), 16);
                for (size_t i = 0; i < hn->n_ev; i++)
                        if (hn->ev[i].type == PCP_EVENT_MAPPING && hn->ev[i].mapping.state == PCP_MAPPING_ACTIVE)
                                assert_memory_equal(&hn->ev[i].mapping.external_addr, IP("198.51.100.41"), 16);
                h_free(hn);
        }
}

/* Rule 2: the external address is of the family asked for: IPv4 (IPv4-mapped) for an
 * IPv4 mapping, a real IPv6 address for an IPv6 one; an IPv4 one for an IPv6 mapping that
 * suggested an IPv4 address (NAT64, RFC 6887 §5) is fine. */
static void test_grant_rule_wrong_family(void **state) {
        harness *h = h_new(104, NULL);
        uint32_t sid = pcp_server(h), sid6 = h_server(h, "2001:db8::1", "2001:db8::10");
        pcp_mapping_params p;

        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 0), PCP_RESULT_SUCCESS, 0, ep(h));
        check_unusable_create_tcp(h, sid, 9000, "2001:db8::7", 9000, 3600, PCP_MAPPING_ERROR_WRONG_FAMILY,
                                  "WRONG_ADDRESS_FAMILY");
        h_params(&p, sid6, IPPROTO_UDP, 9001, 3600);
        (void) check_unusable_create(h, &p, "203.0.113.7", 9001, 3600, PCP_MAPPING_ERROR_WRONG_FAMILY,
                                     "WRONG_ADDRESS_FAMILY");
        h_params(&p, sid6, IPPROTO_UDP, 9002, 3600);
        (void) check_unusable_create(h, &p, "::ffff:203.0.113.7", 9002, 3600, PCP_MAPPING_ERROR_WRONG_FAMILY,
                                     "WRONG_ADDRESS_FAMILY");
        /* NAT64: an IPv6 host asking for an IPv4 external address gets one */
        h_params(&p, sid6, IPPROTO_UDP, 9003, 3600);
        p.suggested_external_addr = h_ip("203.0.113.7");
        check_usable_create(h, &p, "203.0.113.7", 9003, 3600);
        /* and the IPv6 pinhole */
        h_params(&p, sid6, IPPROTO_UDP, 9004, 3600);
        check_usable_create(h, &p, "2001:db8::10", 9004, 3600);
        h_free(h);
}

/* Rule 3: the external address is one a peer could send to: not loopback, link-local,
 * multicast, broadcast, 0.0.0.0/8, nor IPv4-compatible ::/96. Private, shared, unique local
 * and documentation addresses are fine (double NAT, labs). NAT-PMP's address too. */
static void test_grant_rule_unusable_address(void **state) {
        static const char *const bad4[] = { "127.0.0.1", "127.1.2.3", "169.254.1.1", "224.0.0.1",
                                            "239.255.255.250", "255.255.255.255", "0.1.2.3" };
        static const char *const bad6[] = { "::1", "fe80::1", "febf::1", "ff02::1", "ff0e::1", "::1.2.3.4" };
        static const char *const good4[] = { "10.0.0.1", "100.64.0.1", "172.16.0.1", "192.168.1.1", "192.0.2.1",
                                             "240.0.0.1", "223.255.255.254", "1.0.0.0" };
        static const char *const good6[] = { "fd00::1", "fec0::1", "2001:db8::5", "2a00:1450::1", "64:ff9b::1" };
        harness *h = h_new(105, NULL);
        uint32_t sid = pcp_server(h), sid6 = h_server(h, "2001:db8::1", "2001:db8::10");
        pcp_mapping_params p;
        uint16_t port = 10000;

        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 0), PCP_RESULT_SUCCESS, 0, ep(h));
        for (size_t i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++, port++)
                check_unusable_create_tcp(h, sid, port, bad4[i], port, 3600, PCP_MAPPING_ERROR_UNUSABLE_ADDRESS,
                                          "UNUSABLE_EXTERNAL_ADDRESS");
        for (size_t i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++, port++) {
                h_params(&p, sid6, IPPROTO_TCP, port, 3600);
                (void) check_unusable_create(h, &p, bad6[i], port, 3600, PCP_MAPPING_ERROR_UNUSABLE_ADDRESS,
                                             "UNUSABLE_EXTERNAL_ADDRESS");
        }
        for (size_t i = 0; i < sizeof(good4) / sizeof(good4[0]); i++, port++) {
                h_params(&p, sid, IPPROTO_TCP, port, 3600);
                check_usable_create(h, &p, good4[i], port, 3600);
        }
        for (size_t i = 0; i < sizeof(good6) / sizeof(good6[0]); i++, port++) {
                h_params(&p, sid6, IPPROTO_TCP, port, 3600);
                check_usable_create(h, &p, good6[i], port, 3600);
        }
        h_free(h);

        /* NAT-PMP: a loopback external address is no address */
        {
                harness *hn = h_new(106, NULL);
                uint64_t tcp;
                uint32_t nsid = natpmp_server(hn, &tcp, "127.0.0.1");

                assert_int_equal(pcp_engine_get_stats(hn->e)->dropped[PCP_DROP_UNUSABLE], 1);
                natpmp_map_answer(hn, nsid, 8080, 18080, 3600);
                assert_int_equal(h_mapping(hn, tcp)->state, PCP_MAPPING_FAILED);
                assert_int_equal(h_mapping(hn, tcp)->error, PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS);
                assert_never_active(hn, tcp);
                h_free(hn);
        }
}

/* Rule 4: a mapping of one port gets an external port that is not 0; a mapping of all
 * ports (protocol 0, internal port 0) has none, and 0 is its answer. NAT-PMP too. */
static void test_grant_rule_no_external_port(void **state) {
        harness *h = h_new(107, NULL);
        uint32_t sid = pcp_server(h);
        pcp_mapping_params p;

        check_unusable_create_tcp(h, sid, 7000, EXT, 0, 3600, PCP_MAPPING_ERROR_NO_EXTERNAL_PORT, "NO_EXTERNAL_PORT");
        h_params(&p, sid, IPPROTO_UDP, 7001, 3600);
        (void) check_unusable_create(h, &p, EXT, 0, 3600, PCP_MAPPING_ERROR_NO_EXTERNAL_PORT, "NO_EXTERNAL_PORT");
        /* PEER too */
        h_params(&p, sid, IPPROTO_TCP, 7002, 3600);
        p.opcode = PCP_OPCODE_PEER;
        p.remote_port = 443;
        p.remote_addr = h_ip("203.0.113.50");
        (void) check_unusable_create(h, &p, EXT, 0, 3600, PCP_MAPPING_ERROR_NO_EXTERNAL_PORT, "NO_EXTERNAL_PORT");
        /* all protocols, all ports */
        h_params(&p, sid, 0, 0, 3600);
        check_usable_create(h, &p, EXT, 0, 3600);
        h_free(h);

        /* NAT-PMP: external port 0 to a mapping request */
        {
                harness *hn = h_new(108, NULL);
                uint64_t tcp;
                uint32_t nsid = natpmp_server(hn, &tcp, EXT);
                uint64_t t = hn->now;

                h_clear(hn);
                natpmp_map_answer(hn, nsid, 8080, 0, 3600);
                assert_int_equal(h_mapping(hn, tcp)->state, PCP_MAPPING_FAILED);
                assert_int_equal(h_mapping(hn, tcp)->error, PCP_MAPPING_ERROR_NO_EXTERNAL_PORT);
                assert_never_active(hn, tcp);
                /* still asked, on NAT-PMP's schedule (the first request went at t: 250 ms) */
                assert_int_equal(h_mapping(hn, tcp)->next_send, t + 250);
                h_advance(hn, 250);
                assert_int_equal(hn->n_sent, 1);
                natpmp_map_answer(hn, nsid, 8080, 18080, 3600);
                assert_int_equal(h_mapping(hn, tcp)->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_mapping(hn, tcp)->external_port, 18080);
                h_free(hn);
        }
}

/* Rule 5: the lifetime is at least 4 s (0 means the server holds nothing); one beyond
 * max(asked, 24 h) is renewed as if it were that long. NAT-PMP too. */
static void test_grant_rule_lifetime(void **state) {
        harness *h = h_new(109, NULL);
        uint32_t sid = pcp_server(h);
        pcp_mapping_params p;
        uint64_t id;

        check_unusable_create_tcp(h, sid, 6000, EXT, 6000, 0, PCP_MAPPING_ERROR_SHORT_LIFETIME, "SHORT_LIFETIME");
        check_unusable_create_tcp(h, sid, 6001, EXT, 6001, 1, PCP_MAPPING_ERROR_SHORT_LIFETIME, "SHORT_LIFETIME");
        check_unusable_create_tcp(h, sid, 6002, EXT, 6002, 3, PCP_MAPPING_ERROR_SHORT_LIFETIME, "SHORT_LIFETIME");
        h_params(&p, sid, IPPROTO_TCP, 6003, 3600);
        check_usable_create(h, &p, EXT, 6003, 4);
        /* 2^32 - 1 s: renewed within a day */
        id = h_map(h, sid, IPPROTO_TCP, 6004, 3600);
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, UINT32_MAX, ep(h), EXT, 6004);
        assert_int_equal(h_mapping(h, id)->lifetime_granted, 86400);
        assert_int_equal(h_mapping(h, id)->expires_at, h->now + 86400 * SEC);
        assert_in(h_mapping(h, id)->next_send, h->now + 43200 * SEC, h->now + 54000 * SEC);
        /* unless more was asked */
        h_params(&p, sid, IPPROTO_TCP, 6005, 7 * 86400);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        h_drain(h);
        h_reply(h, h_last_for(h, id), PCP_RESULT_SUCCESS, UINT32_MAX, ep(h), EXT, 6005);
        assert_int_equal(h_mapping(h, id)->lifetime_granted, 7 * 86400);
        h_free(h);

        /* NAT-PMP: lifetime 0 to a mapping request */
        {
                harness *hn = h_new(110, NULL);
                uint64_t tcp;
                uint32_t nsid = natpmp_server(hn, &tcp, EXT);

                h_clear(hn);
                natpmp_map_answer(hn, nsid, 8080, 18080, 0);
                assert_int_equal(h_mapping(hn, tcp)->state, PCP_MAPPING_FAILED);
                assert_int_equal(h_mapping(hn, tcp)->error, PCP_MAPPING_ERROR_SHORT_LIFETIME);
                assert_never_active(hn, tcp);
                h_free(hn);
        }
}

/* An unsolicited update (RFC 6887 §14.2) that breaks a rule is dropped and counted: the
 * grant the mapping has stays, nothing is sent, nobody is told. */
static void test_grant_unsolicited_unusable(void **state) {
        static const struct {
                const char *ext;
                uint16_t port;
                uint32_t lifetime;
        } bad[] = { { "::", 0, 3000 }, { "0.0.0.0", 40000, 3000 }, { "2001:db8::1", 40000, 3000 },
                    { "127.0.0.1", 40000, 3000 }, { EXT, 0, 3000 }, { EXT, 40000, 0 } };
        harness *h = h_new(111, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t id = granted_map(h, sid, 8080, 3600, 40000);
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        pcp_mapping_info before;

        h_advance(h, 100 * SEC);
        before = *h_mapping(h, id);
        h_clear(h);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                pcp_msg r;

                pcp_msg_init(&r, true, PCP_OPCODE_MAP);
                r.result = PCP_RESULT_SUCCESS;
                r.lifetime = bad[i].lifetime;
                r.epoch = ep(h);
                memcpy(r.nonce, before.nonce, PCP_NONCE_LEN);
                r.protocol = IPPROTO_TCP;
                r.internal_port = 8080;
                r.external_port = bad[i].port;
                r.external_addr = h_ip(bad[i].ext);
                h_receive_msg(h, sid, 0, &r);
                assert_int_equal(st->dropped[PCP_DROP_UNUSABLE], i + 1);
        }
        assert_memory_equal(&before, h_mapping(h, id), sizeof(before));
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(h->n_sent, 0);
        h_free(h);
}

/* RFC 6887 §12.4: a PEER answer is matched on the remote peer as well. */
static void test_peer_answer_remote_mismatch(void **state) {
        harness *h = h_new(112, NULL);
        uint32_t sid = pcp_server(h);
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        pcp_mapping_params p;
        uint64_t id;
        pcp_msg r;

        h_params(&p, sid, IPPROTO_TCP, 8090, 3600);
        p.opcode = PCP_OPCODE_PEER;
        p.remote_port = 443;
        p.remote_addr = h_ip("203.0.113.50");
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        h_drain(h);
        h_make_reply(h_last_for(h, id), &r, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 48090);
        r.remote_port = 444;
        h_receive_msg(h, sid, 0, &r);
        r.remote_port = 443;
        r.remote_addr = h_ip("203.0.113.51");
        h_receive_msg(h, sid, 0, &r);
        assert_int_equal(st->dropped[PCP_DROP_MISMATCH], 2);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_PENDING);
        r.remote_addr = h_ip("203.0.113.50");
        h_receive_msg(h, sid, 0, &r);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        h_free(h);
}

/* ---- recreations are rate-limited (issue 8, item 7) ---- */

static uint64_t restart_t;      /* when the test's server (re)started */
static uint32_t restart_epoch;  /* and its epoch then */

/* the epoch of a server that restarted at restart_t */
static uint32_t ep_r(harness *h) {
        return restart_epoch + (uint32_t) ((h->now - restart_t) / SEC);
}

/* the server restarts now: its epoch starts again from e0 */
static void restart_now(harness *h, uint32_t e0) {
        restart_t = h->now;
        restart_epoch = e0;
}

/* answers every MAP request sent since index *from with the restarted server's epoch */
static void answer_new(harness *h, size_t *from) {
        for (; *from < h->n_sent; (*from)++)
                if (!h_is_natpmp(&h->sent[*from]) && (h->sent[*from].buf[1] & 0x7f) == PCP_OPCODE_MAP)
                        h_reply(h, &h->sent[*from], PCP_RESULT_SUCCESS, 3600, ep_r(h), EXT, 40000);
}

/* a new mapping, answered with the restarted server's epoch */
static void reset_seen(harness *h, uint32_t sid, uint16_t port, size_t *from) {
        uint64_t x = h_map(h, sid, IPPROTO_UDP, port, 3600);

        /* what the answer makes the engine send comes after x's request */
        *from = h->n_sent;
        h_reply(h, h_last_for(h, x), PCP_RESULT_SUCCESS, 3600, ep_r(h), EXT, port);
}

static size_t requests_for_all(harness *h, const uint64_t *ids, size_t n) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
                total += h_count_for(h, ids[i]);
        return total;
}

/* A real reset is acted on at once; another one within 5 s when the 5 s are over (not
 * lost, not at once); the interval doubles while resets keep coming within it; one after
 * the interval is acted on at once, the interval back at 5 s; only the first EPOCH_RESET
 * of an episode is not "repeated"; after a quiet minute a reset starts a new episode. */
static void test_epoch_recreate_limit(void **state) {
        harness *h = h_new(120, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t ids[10], t0, t1;
        size_t from = 0;
        const h_event *ev;

        for (int i = 0; i < 10; i++)
                ids[i] = granted_map(h, sid, (uint16_t) (7100 + i), 3600, (uint16_t) (47100 + i));
        h_advance(h, 100 * SEC);
        h_clear(h);

        /* reset 1 (epoch 3): at once */
        t0 = h->now;
        restart_now(h, 3);
        reset_seen(h, sid, 7200, &from);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 1);
        ev = h_last_event(h, PCP_EVENT_EPOCH_RESET, 0);
        assert_false(ev->repeated);
        assert_int_equal(ev->t, t0);
        for (int i = 0; i < 10; i++) {
                assert_int_equal(h_count_for(h, ids[i]), 1);
                assert_int_equal(h_last_for(h, ids[i])->t, t0);
        }
        answer_new(h, &from);

        /* reset 2, 1 s later (epoch 0 again): not before t0 + 5 s */
        h_advance(h, 1 * SEC);
        restart_now(h, 0);
        reset_seen(h, sid, 7201, &from);
        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 2);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 1);
        h_advance_to(h, t0 + 5 * SEC - 1);
        assert_int_equal(requests_for_all(h, ids, 10), 10);
        h_advance_to(h, t0 + 5 * SEC);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 2);
        ev = h_last_event(h, PCP_EVENT_EPOCH_RESET, 0);
        assert_true(ev->repeated);
        assert_int_equal(ev->t, t0 + 5 * SEC);
        for (int i = 0; i < 10; i++) {
                assert_int_equal(h_count_for(h, ids[i]), 2);
                assert_int_equal(h_last_for(h, ids[i])->t, t0 + 5 * SEC);
        }
        answer_new(h, &from);

        /* reset 3 at t0 + 6 s: the interval is 10 s now, so at t0 + 15 s */
        h_advance(h, 1 * SEC);
        restart_now(h, 0);
        reset_seen(h, sid, 7202, &from);
        h_advance_to(h, t0 + 15 * SEC - 1);
        assert_int_equal(requests_for_all(h, ids, 10), 20);
        h_advance_to(h, t0 + 15 * SEC);
        assert_int_equal(requests_for_all(h, ids, 10), 30);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 3);
        assert_true(h_last_event(h, PCP_EVENT_EPOCH_RESET, 0)->repeated);
        answer_new(h, &from);

        /* quiet: the hold (20 s, until t0 + 35 s) and a minute after it; then a reset is a
         * new episode, acted on at once */
        h_advance_to(h, t0 + 96 * SEC);
        t1 = h->now;
        assert_int_equal(requests_for_all(h, ids, 10), 30);
        restart_now(h, 1);
        reset_seen(h, sid, 7203, &from);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 4);
        ev = h_last_event(h, PCP_EVENT_EPOCH_RESET, 0);
        assert_false(ev->repeated);
        assert_int_equal(ev->t, t1);
        assert_int_equal(requests_for_all(h, ids, 10), 40);
        for (int i = 0; i < 10; i++)
                assert_int_equal(h_last_for(h, ids[i])->t, t1);
        answer_new(h, &from);

        /* a second real restart 7 s later, after the interval: at once too (the episode goes
         * on: repeated), and the interval is 5 s again: a third, 2 s after it, waits until
         * then, not 10 s */
        h_advance_to(h, t1 + 7 * SEC);
        restart_now(h, 2);
        reset_seen(h, sid, 7204, &from);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 5);
        assert_true(h_last_event(h, PCP_EVENT_EPOCH_RESET, 0)->repeated);
        assert_int_equal(requests_for_all(h, ids, 10), 50);
        answer_new(h, &from);
        h_advance(h, 2 * SEC);
        restart_now(h, 0);
        reset_seen(h, sid, 7205, &from);
        h_advance_to(h, t1 + 12 * SEC - 1);
        assert_int_equal(requests_for_all(h, ids, 10), 50);
        h_advance_to(h, t1 + 12 * SEC);
        assert_int_equal(requests_for_all(h, ids, 10), 60);
        answer_new(h, &from);
        for (int i = 0; i < 10; i++)
                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
        h_free(h);
}

/* ANNOUNCEs (consistent epochs) every 200 ms for 10 s: not a recreation each, but at most
 * one per interval (5 s, then 10 s): each mapping asked at most three times in 20 s. */
static void test_announce_flood_limit(void **state) {
        harness *h = h_new(121, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t ids[20], t0;
        size_t from = 0;

        for (int i = 0; i < 20; i++)
                ids[i] = granted_map(h, sid, (uint16_t) (7300 + i), 3600, (uint16_t) (47300 + i));
        h_advance(h, 100 * SEC);
        h_clear(h);
        t0 = h->now;
        restart_now(h, ep(h));
        for (int k = 0; k < 50; k++) {
                h_announce(h, SRV, ep_r(h));
                h_advance(h, 200);
                answer_new(h, &from);
        }
        while (h->now < t0 + 20 * SEC) {
                h_advance(h, 100);
                answer_new(h, &from);
        }
        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 0);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
        for (int i = 0; i < 20; i++) {
                size_t n = h_count_for(h, ids[i]);
                assert_in(n, 2, 3);
                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
        }
        h_free(h);
}

/* ---- a change announced without a reset is told (PCP_EVENT_RECREATE) ---- */

/* the index in h->ev of the first event of this type for server sid; n_ev if none */
static size_t first_event(harness *h, pcp_event_type type, uint32_t sid) {
        for (size_t i = 0; i < h->n_ev; i++)
                if (h->ev[i].type == type && h->ev[i].server_id == sid)
                        return i;
        return h->n_ev;
}

/* n granted mappings on a PCP server and one being deleted; 100 s later, events and
 * datagrams cleared, the restarted-server epoch (ep_r()) consistent with ep() */
static uint32_t recreate_setup(harness *h, uint64_t *ids, size_t n, uint16_t port0) {
        uint32_t sid = pcp_server(h);
        uint64_t gone = granted_map(h, sid, (uint16_t) (port0 + n), 3600, (uint16_t) (port0 + n + 30000));

        for (size_t i = 0; i < n; i++)
                ids[i] = granted_map(h, sid, (uint16_t) (port0 + i), 3600, (uint16_t) (port0 + i + 30000));
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, gone), 0);
        h_drain(h);
        assert_int_equal(h_mapping(h, gone)->state, PCP_MAPPING_DELETING);
        h_advance(h, 100 * SEC);
        h_clear(h);
        restart_now(h, ep(h));
        return sid;
}

/* steps of 100 ms up to t, answering every MAP request on the way */
static void answer_until(harness *h, uint64_t t, size_t *from) {
        answer_new(h, from);
        while (h->now < t) {
                h_advance_to(h, h->now + 100 < t ? h->now + 100 : t);
                answer_new(h, from);
        }
}

/* An ANNOUNCE with a consistent epoch: one RECREATE, at once, not repeated, counting the
 * mappings asked again (not the one being deleted), before their events; their requests
 * follow within 5 s. A second ANNOUNCE within the interval: no event at once; the deferred
 * recreation when the interval ends is told, flagged repeated. A quiet minute later an
 * ANNOUNCE starts a new episode: not repeated. Never an EPOCH_RESET. */
static void test_announce_recreate_event(void **state) {
        harness *h = h_new(130, NULL);
        uint64_t ids[8], t0, t1;
        uint32_t sid = recreate_setup(h, ids, 8, 7400);
        size_t from = 0, k;
        const h_event *ev;

        t0 = h->now;
        h_announce(h, SRV, ep_r(h));
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 1);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
        ev = h_last_event(h, PCP_EVENT_RECREATE, 0);
        assert_int_equal(ev->server_id, sid);
        assert_true(ev->has_server);
        assert_int_equal(ev->server.id, sid);
        assert_true(ev->from_announce);
        assert_false(ev->repeated);
        assert_int_equal(ev->n_recreated, 8);
        assert_int_equal(ev->t, t0);
        /* the server's news before its mappings' (each RENEWING now) */
        k = first_event(h, PCP_EVENT_RECREATE, sid);
        for (int i = 0; i < 8; i++) {
                assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, ids[i]), 1);
                for (size_t j = 0; j < h->n_ev; j++)
                        if (h->ev[j].type == PCP_EVENT_MAPPING && h->ev[j].mapping_id == ids[i])
                                assert_true(j > k);
                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_RENEWING);
        }
        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 0);

        /* a second ANNOUNCE 1 s later: nothing told now */
        answer_until(h, t0 + 1 * SEC, &from);
        h_announce(h, SRV, ep_r(h));
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 1);
        answer_until(h, t0 + 5 * SEC - 1, &from);
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 1);
        /* every mapping asked once, within the random 0-5 s, and granted again */
        for (int i = 0; i < 8; i++) {
                const h_sent *r = h_first_for(h, ids[i]);
                pcp_msg m;

                assert_non_null(r);
                assert_int_equal(h_count_for(h, ids[i]), 1);
                assert_in(r->t, t0, t0 + 5 * SEC);
                h_decode(r, &m);
                assert_int_equal(m.external_port, 7400 + i + 30000);
                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
        }

        /* the deferred recreation, when the interval ends: told, repeated */
        h_advance_to(h, t0 + 5 * SEC);
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 2);
        ev = h_last_event(h, PCP_EVENT_RECREATE, 0);
        assert_true(ev->repeated);
        assert_true(ev->from_announce);
        assert_int_equal(ev->n_recreated, 8);
        assert_int_equal(ev->t, t0 + 5 * SEC);
        answer_until(h, t0 + 10 * SEC, &from);
        for (int i = 0; i < 8; i++) {
                assert_int_equal(h_count_for(h, ids[i]), 2);
                assert_in(h_last_for(h, ids[i])->t, t0 + 5 * SEC, t0 + 10 * SEC);
                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
        }

        /* the hold (10 s now, until t0 + 15 s) and a quiet minute after it: a new episode */
        answer_until(h, t0 + 76 * SEC, &from);
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 2);
        t1 = h->now;
        h_announce(h, SRV, ep_r(h));
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 3);
        ev = h_last_event(h, PCP_EVENT_RECREATE, 0);
        assert_false(ev->repeated);
        assert_int_equal(ev->t, t1);
        answer_until(h, t1 + 5 * SEC, &from);
        for (int i = 0; i < 8; i++)
                assert_int_equal(h_count_for(h, ids[i]), 3);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
        h_free(h);
}

/* An ANNOUNCE whose epoch says the server lost its state (a restarted router's): its
 * mappings asked again within 0-5 s, nothing told at once (its epoch is not taken: anyone
 * can send one), then, at the first answer, which carries the reset epoch, one
 * EPOCH_RESET (from the ANNOUNCE, not repeated, counting the mappings still being asked)
 * and no second recreation, no RECREATE. A consistent ANNOUNCE then a restart and an
 * inconsistent one within the interval: RECREATE at once, and one EPOCH_RESET by the time
 * the interval ends (at the first answer after the restart if none came before it, else
 * with the deferred recreation: what was granted before the restart is lost), each mapping
 * asked twice, never more. A reset then a consistent ANNOUNCE within the interval: the
 * deferred recreation's RECREATE is flagged repeated (the reset told it already). */
static void test_announce_recreate_reset(void **state) {
        /* inconsistent at once */
        {
                harness *h = h_new(131, NULL);
                uint64_t ids[4], t0, t_first = PCP_NEVER;
                uint32_t sid = recreate_setup(h, ids, 4, 7500);
                uint32_t epoch_before = h_srv(h, sid)->epoch;
                size_t from = 0;
                const h_event *ev;

                t0 = h->now;
                restart_now(h, 0);
                h_announce(h, SRV, ep_r(h));
                assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
                assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 0);
                assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 0);
                assert_int_equal(h_srv(h, sid)->epoch, epoch_before);
                for (int i = 0; i < 4; i++)
                        assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_RENEWING);
                answer_until(h, t0 + 20 * SEC, &from);
                for (size_t k = 0; k < h->n_sent; k++)
                        if (!h_is_natpmp(&h->sent[k]) && (h->sent[k].buf[1] & 0x7f) == PCP_OPCODE_MAP)
                                t_first = h->sent[k].t < t_first ? h->sent[k].t : t_first;
                assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 1);
                assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 0);
                ev = h_last_event(h, PCP_EVENT_EPOCH_RESET, 0);
                assert_int_equal(ev->server_id, sid);
                assert_true(ev->from_announce);
                assert_false(ev->repeated);
                /* told at the first answer (answer_until() answers in steps of 100 ms),
                 * the three others being asked */
                assert_in(ev->t, t_first, t_first + 100);
                assert_int_equal(ev->n_recreated, 3);
                assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 1);
                /* the answers' epoch (the last came within the 5 s) */
                assert_in(h_srv(h, sid)->epoch, 0, 5);
                for (int i = 0; i < 4; i++) {
                        assert_int_equal(h_count_for(h, ids[i]), 1);
                        assert_in(h_first_for(h, ids[i])->t, t0, t0 + 5 * SEC);
                        assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
                }
                h_free(h);
        }
        /* consistent, then inconsistent 1 s later */
        {
                harness *h = h_new(132, NULL);
                uint64_t ids[4], t0;
                uint32_t sid = recreate_setup(h, ids, 4, 7600);
                size_t from = 0;
                const h_event *ev;

                t0 = h->now;
                h_announce(h, SRV, ep_r(h));
                assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 1);
                answer_until(h, t0 + 1 * SEC, &from);
                restart_now(h, 0);
                h_announce(h, SRV, ep_r(h));
                assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 0);
                assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
                answer_until(h, t0 + 5 * SEC, &from);
                assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 1);
                ev = h_last_event(h, PCP_EVENT_EPOCH_RESET, 0);
                assert_int_equal(ev->server_id, sid);
                assert_false(ev->repeated);
                assert_true(ev->t <= t0 + 5 * SEC);
                answer_until(h, t0 + 20 * SEC, &from);
                assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 1);
                /* the first ANNOUNCE's, and the deferred recreation's if the reset was told
                 * before it (then flagged repeated) */
                assert_in(h_count_events(h, PCP_EVENT_RECREATE, 0), 1, 2);
                if (h_count_events(h, PCP_EVENT_RECREATE, 0) == 2)
                        assert_true(h_last_event(h, PCP_EVENT_RECREATE, 0)->repeated);
                for (int i = 0; i < 4; i++) {
                        assert_int_equal(h_count_for(h, ids[i]), 2);
                        assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
                }
                h_free(h);
        }
        /* inconsistent, then consistent 1 s later */
        {
                harness *h = h_new(133, NULL);
                uint64_t ids[4], t0;
                uint32_t sid = recreate_setup(h, ids, 4, 7700);
                size_t from = 0;
                const h_event *ev;

                t0 = h->now;
                restart_now(h, 0);
                h_announce(h, SRV, ep_r(h));
                assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
                answer_until(h, t0 + 1 * SEC, &from);
                h_announce(h, SRV, ep_r(h));
                assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 0);
                answer_until(h, t0 + 5 * SEC, &from);
                assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 1);
                assert_true(h_last_event(h, PCP_EVENT_EPOCH_RESET, 0)->t < t0 + 5 * SEC);
                /* the reset was told at the first answer, and the interval runs from that
                 * event: the second ANNOUNCE's recreation comes 5 s after it, not at t0 + 5 s
                 * (which would be two events under 5 s apart: fuzz-engine's rule) */
                answer_until(h, t0 + 15 * SEC, &from);
                assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 1);
                ev = h_last_event(h, PCP_EVENT_RECREATE, 0);
                assert_int_equal(ev->server_id, sid);
                assert_true(ev->repeated);
                assert_int_equal(ev->t, h_last_event(h, PCP_EVENT_EPOCH_RESET, 0)->t + 5 * SEC);
                assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 1);
                h_free(h);
        }
}

/* NAT-PMP mapping answers to every NAT-PMP mapping request since *from, with the
 * restarted server's epoch (ep_r()); the external port is the internal one + 10000 */
static void answer_natpmp_new(harness *h, uint32_t sid, size_t *from) {
        for (; *from < h->n_sent; (*from)++) {
                natpmp_msg q, n = { .response = true, .lifetime = 3600 };

                if (!h_is_natpmp(&h->sent[*from]))
                        continue;
                h_decode_natpmp(&h->sent[*from], &q);
                if (q.opcode != NATPMP_OPCODE_MAP_TCP && q.opcode != NATPMP_OPCODE_MAP_UDP)
                        continue;
                n.opcode = q.opcode;
                n.internal_port = q.internal_port;
                n.external_port = (uint16_t) (q.internal_port + 10000);
                n.epoch = ep_r(h);
                h_receive_natpmp(h, sid, 0, &n);
        }
}

/* the NAT-PMP mapping requests for this internal port since the last clear, and the
 * first one's time (PCP_NEVER: none) */
static size_t natpmp_requests_for(harness *h, uint16_t port, uint64_t *first) {
        size_t n = 0;

        *first = PCP_NEVER;
        for (size_t k = 0; k < h->n_sent; k++) {
                natpmp_msg q;

                if (!h_is_natpmp(&h->sent[k]))
                        continue;
                h_decode_natpmp(&h->sent[k], &q);
                if (q.opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS || q.internal_port != port)
                        continue;
                if (n++ == 0)
                        *first = h->sent[k].t;
        }
        return n;
}

/* An ANNOUNCE, or a NAT-PMP gateway's address notice, comes to a port any host of the
 * link can send to, with nothing a forger would not know but the server's address: a hint,
 * never the epoch. Taken as written, a forged one (a far epoch, or one that looks like a
 * restart) moved the epoch baseline: an EPOCH_RESET (or none, in NAT-PMP, for a far one),
 * then another at the real server's next answer, and two recreations, for one datagram.
 * Now a forged one changes no epoch and gives no EPOCH_RESET, then or at the real
 * answers: the mappings are asked again once (RFC 6887 §14.1.3, within 0-5 s), told as a
 * RECREATE when the first answer shows no reset (nothing, in NAT-PMP, for an epoch that
 * does not look like a restart, as before). A real restart announced so, then the real
 * answers: exactly one EPOCH_RESET (from the ANNOUNCE, at the first answer), no RECREATE,
 * each mapping asked again once within 0-5 s, no second recreation. PCP and NAT-PMP. */
static void test_announce_is_a_hint(void **state) {
        static const char *const kinds[] = { "forged, far epoch", "forged, epoch 0", "real restart" };

        (void) state;
        for (int natpmp = 0; natpmp <= 1; natpmp++)
                for (int kind = 0; kind < 3; kind++) {
                        harness *h = h_new((uint64_t) (140 + natpmp * 3 + kind), NULL);
                        const char *addr = "198.51.100.40";
                        uint64_t ids[3], t0, first, extra;
                        uint16_t ports[3];
                        size_t n_ids = natpmp ? 1 : 3, from = 0;
                        uint32_t sid, epoch_before, epoch_sent;
                        bool asked = !(natpmp && kind == 0), reset = kind == 2;

                        if (natpmp) {
                                sid = natpmp_server(h, &ids[0], addr);
                                restart_now(h, 100); /* its epoch: 100 now */
                                natpmp_map_answer(h, sid, 8080, 18080, 3600);
                                ports[0] = 8080;
                        } else {
                                sid = pcp_server(h);
                                restart_now(h, ep(h));
                                for (size_t i = 0; i < n_ids; i++) {
                                        ports[i] = (uint16_t) (8100 + i);
                                        ids[i] = granted_map(h, sid, ports[i], 3600, (uint16_t) (48100 + i));
                                }
                        }
                        for (size_t i = 0; i < n_ids; i++)
                                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
                        h_advance(h, 60 * SEC);
                        h_clear(h);
                        t0 = h->now;
                        epoch_before = h_srv(h, sid)->epoch;
                        if (reset)
                                restart_now(h, 0);
                        epoch_sent = kind == 0 ? ep_r(h) + 1000000 : ep_r(h) * (uint32_t) reset;
                        if (natpmp)
                                h_natpmp_notice(h, SRV, epoch_sent, addr);
                        else
                                h_announce(h, SRV, epoch_sent);
                        /* nothing taken, nothing told yet */
                        if (h_srv(h, sid)->epoch != epoch_before)
                                fail_msg("%s %s: the server's epoch moved to %u (was %u)", natpmp ? "NAT-PMP" : "PCP",
                                         kinds[kind], h_srv(h, sid)->epoch, epoch_before);
                        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 0);
                        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
                        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 0);

                        /* the real server answers what it is asked, for 90 s; then a new
                         * mapping, answered by it too */
                        while (h->now < t0 + 90 * SEC) {
                                h_advance(h, 100);
                                if (natpmp)
                                        answer_natpmp_new(h, sid, &from);
                                else
                                        answer_new(h, &from);
                        }
                        extra = h_map(h, sid, natpmp ? IPPROTO_UDP : IPPROTO_TCP, 9999, 3600);
                        if (natpmp)
                                answer_natpmp_new(h, sid, &from);
                        else
                                answer_new(h, &from);
                        assert_int_equal(h_mapping(h, extra)->state, PCP_MAPPING_ACTIVE);

                        if (h_count_events(h, PCP_EVENT_EPOCH_RESET, 0) != (size_t) reset)
                                fail_msg("%s %s: %zu EPOCH_RESET events, expected %d", natpmp ? "NAT-PMP" : "PCP",
                                         kinds[kind], h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), reset);
                        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, (uint64_t) reset);
                        if (reset) {
                                const h_event *ev = h_last_event(h, PCP_EVENT_EPOCH_RESET, 0);

                                assert_true(ev->from_announce);
                                assert_false(ev->repeated);
                                assert_in(ev->t, t0, t0 + 5 * SEC + 100);
                                assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 0);
                        } else if (asked) {
                                const h_event *ev = h_last_event(h, PCP_EVENT_RECREATE, 0);

                                assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 1);
                                assert_true(ev->from_announce);
                                assert_false(ev->repeated);
                                assert_int_equal(ev->n_recreated, n_ids);
                                assert_in(ev->t, t0, t0 + 5 * SEC + 100);
                        } else
                                assert_int_equal(h->n_ev - h_count_events(h, PCP_EVENT_MAPPING, extra), 0);
                        for (size_t i = 0; i < n_ids; i++) {
                                size_t n = natpmp ? natpmp_requests_for(h, ports[i], &first) : h_count_for(h, ids[i]);

                                if (!natpmp)
                                        first = n > 0 ? h_first_for(h, ids[i])->t : PCP_NEVER;
                                if (n != (size_t) asked)
                                        fail_msg("%s %s: mapping %zu asked %zu times in 90 s, expected %d",
                                                 natpmp ? "NAT-PMP" : "PCP", kinds[kind], i, n, asked);
                                if (asked)
                                        assert_in(first, t0, t0 + 5 * SEC);
                                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
                        }
                        /* the real server's epoch, from its answers */
                        assert_int_equal(h_srv(h, sid)->epoch, ep_r(h));
                        h_free(h);
                }
}

/* A first request the server leaves unanswered: pending while it is retransmitted, then,
 * from the third retransmission with nothing heard from the server for 20 s, failed
 * UNREACHABLE (one event), still asked on the RFC schedule; a grant makes it active. A
 * server that answers something else meanwhile is alive: the mapping just waits. (It
 * stayed pending for ever: `pcpctl map --wait` never returned.) */
static void test_silent_server_fails_first_request(void **state) {
        harness *h = h_new(137, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t a = granted_map(h, sid, 7000, 3600, 47000), b, c, d, t0;
        size_t sent_b;

        (void) state;
        (void) a;
        h_advance(h, 5 * SEC);
        h_clear(h);
        t0 = h->now;
        b = h_map(h, sid, IPPROTO_TCP, 7001, 3600);
        h_advance_to(h, t0 + 15 * SEC);
        assert_int_equal(h_mapping(h, b)->retransmissions, 2);
        assert_int_equal(h_mapping(h, b)->state, PCP_MAPPING_PENDING);
        assert_int_equal(h_mapping(h, b)->error, PCP_MAPPING_ERROR_NONE);
        h_advance_to(h, t0 + 25 * SEC);
        assert_int_equal(h_mapping(h, b)->retransmissions, 3);
        assert_int_equal(h_mapping(h, b)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, b)->error, PCP_MAPPING_ERROR_UNREACHABLE);
        assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, b), 1);
        /* still asked, told once */
        sent_b = h_count_for(h, b);
        h_advance_to(h, t0 + 100 * SEC);
        assert_true(h_count_for(h, b) > sent_b);
        assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, b), 1);
        /* the server answers: active */
        h_reply(h, h_last_for(h, b), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 47001);
        assert_int_equal(h_mapping(h, b)->state, PCP_MAPPING_ACTIVE);
        assert_int_equal(h_mapping(h, b)->error, PCP_MAPPING_ERROR_NONE);

        /* another first request left unanswered while the server answers d's at 10 s */
        h_clear(h);
        t0 = h->now;
        c = h_map(h, sid, IPPROTO_TCP, 7002, 3600);
        d = h_map(h, sid, IPPROTO_TCP, 7003, 3600);
        h_advance_to(h, t0 + 10 * SEC);
        h_reply(h, h_last_for(h, d), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 47003);
        assert_int_equal(h_mapping(h, d)->state, PCP_MAPPING_ACTIVE);
        h_advance_to(h, t0 + 25 * SEC);
        assert_int_equal(h_mapping(h, c)->retransmissions, 3);
        assert_int_equal(h_mapping(h, c)->state, PCP_MAPPING_PENDING);
        assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, c), 0);
        /* its next try (~45 s) comes 35 s after the server was last heard */
        h_advance_to(h, t0 + 50 * SEC);
        assert_int_equal(h_mapping(h, c)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, c)->error, PCP_MAPPING_ERROR_UNREACHABLE);
        h_free(h);
}

/* answers every MAP request sent since index *from, at once, lifetime 3600 */
static void answer_maps(harness *h, size_t *from) {
        for (; *from < h->n_sent; (*from)++)
                if (!h_is_natpmp(&h->sent[*from]) && (h->sent[*from].buf[1] & 0x7f) == PCP_OPCODE_MAP)
                        h_reply(h, &h->sent[*from], PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 40000);
}

/* The options a request carried, as pcp_engine_mapping_request_options() tells them: what
 * the datagram the server refused with UNSUPP_OPTION carried (the answer does not say
 * which; pcpd's log line names them), and what its retry carries, option for option. A
 * PEER's PREFER_FAILURE is not sent (MAP only), so not told either; a request without
 * options tells none. */
static void expect_request_options(harness *h, uint64_t id, const h_sent *req) {
        uint32_t options = UINT32_MAX;
        uint8_t n_filters = UINT8_MAX;
        pcp_msg m;

        h_decode(req, &m);
        assert_int_equal(pcp_engine_mapping_request_options(h->e, id, &options, &n_filters), 0);
        assert_int_equal(options, m.options);
        assert_int_equal(n_filters, m.n_filters);
}

static void test_unsupp_option_request_options(void **state) {
        harness *h = h_new(143, NULL);
        uint32_t sid = pcp_server(h), options;
        uint64_t full, plain, peer, t;
        pcp_mapping_params p;
        uint8_t n_filters;

        (void) state;
        h_params(&p, sid, IPPROTO_TCP, 8080, 3600);
        p.description = "wiki";
        p.n_filters = 2;
        p.filters[0] = (pcp_filter) { .prefix_len = 120, .remote_addr = h_ip("203.0.113.0") };
        p.filters[1] = (pcp_filter) { .prefix_len = 128, .remote_port = 22, .remote_addr = h_ip("198.51.100.1") };
        p.has_third_party = true;
        p.third_party = h_ip("192.168.1.77");
        p.has_port_set = true;
        p.port_set = (pcp_port_set) { .size = 16, .first_internal_port = 8080 };
        p.prefer_failure = true;
        p.suggested_external_port = 18080;
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &full), 0);
        plain = h_map(h, sid, IPPROTO_UDP, 8081, 3600);
        h_params(&p, sid, IPPROTO_TCP, 8082, 3600);
        p.opcode = PCP_OPCODE_PEER;
        p.remote_port = 443;
        p.remote_addr = h_ip("198.51.100.9");
        p.prefer_failure = true; /* MAP only: not sent */
        p.suggested_external_port = 18082;
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &peer), 0);
        h_drain(h);

        expect_request_options(h, full, h_last_for(h, full));
        assert_int_equal(pcp_engine_mapping_request_options(h->e, full, &options, &n_filters), 0);
        assert_int_equal(options, PCP_HAS_THIRD_PARTY | PCP_HAS_PREFER_FAILURE | PCP_HAS_DESCRIPTION | PCP_HAS_PORT_SET);
        assert_int_equal(n_filters, 2);
        expect_request_options(h, plain, h_last_for(h, plain));
        assert_int_equal(pcp_engine_mapping_request_options(h->e, plain, &options, &n_filters), 0);
        assert_int_equal(options, 0);
        assert_int_equal(n_filters, 0);
        expect_request_options(h, peer, h_last_for(h, peer));
        assert_int_equal(pcp_engine_mapping_request_options(h->e, peer, &options, &n_filters), 0);
        assert_int_equal(options, 0);

        /* refused: failed with UNSUPP_OPTION, the options still those of the refused request */
        h_reply(h, h_last_for(h, full), PCP_RESULT_UNSUPP_OPTION, 60, ep(h), "0.0.0.0", 0);
        h_reply(h, h_last_for(h, plain), PCP_RESULT_UNSUPP_OPTION, 60, ep(h), "0.0.0.0", 0);
        for (size_t i = 0; i < 2; i++) {
                uint64_t id = i == 0 ? full : plain;

                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
                assert_int_equal(h_mapping(h, id)->result, PCP_RESULT_UNSUPP_OPTION);
                expect_request_options(h, id, h_last_for(h, id));
        }
        /* and those of its retry */
        t = h_last_for(h, full)->t;
        while (h_last_for(h, full)->t == t)
                assert_true(h_step(h));
        expect_request_options(h, full, h_last_for(h, full));

        assert_int_equal(pcp_engine_mapping_request_options(h->e, 999999, &options, &n_filters), -ENOENT);
        h_free(h);
}

/* A server that stops answering is told silent (pcp_server_info.silent, one SERVER event)
 * once a request to it has gone SILENT_FAIL (20 s) unanswered with nothing heard since
 * that request went, timed from that request (a renewal half a lifetime after the last
 * answer is not "silent" when it goes); its state stays PCP and its grant is kept. Heard
 * again: not silent, one event. */
static void test_server_silent(void **state) {
        harness *h = h_new(141, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t a = granted_map(h, sid, 7200, 3600, 47200), b, t_renew, t_granted = h->now;
        const h_event *ev;

        (void) state;
        h_clear(h);
        /* a's renewal, about half its lifetime (30 min) after the server last answered */
        while (h_count_for(h, a) == 0)
                assert_true(h_step(h));
        t_renew = h->now;
        assert_true(t_renew - t_granted >= 30 * MINUTE);
        assert_false(h_srv(h, sid)->silent);
        assert_int_equal(h_srv(h, sid)->silent_since, 0); /* never silent */
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 0);
        /* a new mapping asked meanwhile: silence is timed from the renewal, the first
         * unanswered request, not from this one */
        h_advance(h, 5 * SEC);
        b = h_map(h, sid, IPPROTO_TCP, 7201, 3600);
        h_advance_to(h, t_renew + 20 * SEC - 1);
        assert_false(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 0);
        h_advance_to(h, t_renew + 21 * SEC);
        assert_true(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        ev = h_last_event(h, PCP_EVENT_SERVER, 0);
        assert_int_equal(ev->server_id, sid);
        assert_true(ev->server.silent);
        assert_int_equal(ev->server.state, PCP_SERVER_PCP);
        /* timed from the renewal, the first unanswered request: what pcpd's log line on
         * the silence (and on its end) counts from */
        assert_int_equal(ev->server.silent_since, t_renew);
        /* its state and a's grant are kept; b is still asked */
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_int_equal(h_mapping(h, a)->state, PCP_MAPPING_RENEWING);
        /* still silent a while later: told once */
        h_advance(h, 2 * MINUTE);
        assert_true(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        assert_true(h_count_for(h, b) > 1);

        /* heard again (b's answer): not silent, one event */
        h_reply(h, h_last_for(h, b), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 47201);
        assert_int_equal(h_mapping(h, b)->state, PCP_MAPPING_ACTIVE);
        assert_false(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 2);
        assert_false(h_last_event(h, PCP_EVENT_SERVER, 0)->server.silent);
        /* the event that ends the silence still says when it began ("answers again after
         * N s") */
        assert_int_equal(h_last_event(h, PCP_EVENT_SERVER, 0)->server.silent_since, t_renew);
        /* a's renewal goes on; answered 19 s after its next try: not silent meanwhile */
        while (h_last_for(h, a)->t <= h_last_for(h, b)->t)
                assert_true(h_step(h));
        h_advance(h, 19 * SEC);
        assert_false(h_srv(h, sid)->silent);
        h_reply(h, h_last_for(h, a), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 47200);
        assert_int_equal(h_mapping(h, a)->state, PCP_MAPPING_ACTIVE);
        assert_false(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 2);
        h_free(h);
}

/* Silence is judged only while something is asked of the server. A request forgotten
 * before any answer (its mapping forgotten, or removed and its delete given up after
 * delete_attempts) leaves nothing outstanding: no silence 20 s later, and the next request
 * times it anew. A delete still being retransmitted is outstanding: it does count. */
static void test_server_silent_only_while_asked(void **state) {
        pcp_engine_config cfg = { .delete_attempts = 2 };
        harness *h = h_new(144, &cfg);
        uint32_t sid = pcp_server(h);
        uint64_t a = granted_map(h, sid, 7400, 3600, 47400), b, c, d, t0, t1, t2;

        (void) state;
        h_clear(h);
        /* b asked, then removed unanswered: its delete goes twice, then it is given up */
        b = h_map(h, sid, IPPROTO_TCP, 7401, 3600);
        assert_int_equal(h_count_for(h, b), 1);
        t0 = h->now;
        h_advance(h, SEC);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, b), 0);
        h_drain(h);
        while (h_count_events(h, PCP_EVENT_MAPPING_DELETED, b) == 0)
                assert_true(h_step(h));
        assert_true(h->now < t0 + 20 * SEC); /* given up well before the silence */
        /* c asked, then forgotten unanswered */
        c = h_map(h, sid, IPPROTO_TCP, 7402, 3600);
        assert_int_equal(h_count_for(h, c), 1);
        assert_int_equal(pcp_engine_forget_mapping(h->e, c), 0);
        h_drain(h);
        /* nothing outstanding since: never silent (a's renewal is 30 min away) */
        h_advance_to(h, t0 + 2 * MINUTE);
        assert_false(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 0);
        assert_int_equal(h_mapping(h, a)->state, PCP_MAPPING_ACTIVE);

        /* the next request times the silence from when it went, not from b's */
        d = h_map(h, sid, IPPROTO_TCP, 7403, 3600);
        t1 = h->now;
        h_advance_to(h, t1 + 20 * SEC - 1);
        assert_false(h_srv(h, sid)->silent);
        h_advance_to(h, t1 + 21 * SEC);
        assert_true(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        assert_int_equal(h_last_event(h, PCP_EVENT_SERVER, 0)->server.silent_since, t1);
        /* heard again */
        h_reply(h, h_last_for(h, d), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 47403);
        assert_false(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 2);
        h_free(h);

        /* a delete retransmitted past SILENT_FAIL is outstanding all along: silent */
        cfg.delete_attempts = 100;
        h = h_new(145, &cfg);
        sid = pcp_server(h);
        a = granted_map(h, sid, 7400, 3600, 47400);
        h_clear(h);
        assert_int_equal(pcp_engine_remove_mapping(h->e, h->now, a), 0);
        h_drain(h);
        t2 = h->now;
        h_advance_to(h, t2 + 21 * SEC);
        assert_int_equal(h_mapping(h, a)->state, PCP_MAPPING_DELETING);
        assert_true(h_count_for(h, a) > 1);
        assert_true(h_srv(h, sid)->silent);
        assert_int_equal(h_last_event(h, PCP_EVENT_SERVER, 0)->server.silent_since, t2);
        h_free(h);
}

/* A server removed while its mappings' requests are outstanding and a recreation of its
 * own is pending (a second ANNOUNCE within the hold): its last mapping's going ends its
 * asking, which must not put its timer back into the heap it is leaving. Nothing of it is
 * left due after it went. */
static void test_remove_server_while_asked(void **state) {
        harness *h = h_new(146, NULL);
        uint64_t ids[2];
        uint32_t sid = recreate_setup(h, ids, 2, 7500);

        (void) state;
        h_announce(h, SRV, ep_r(h));
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 1);
        while (h_count_for(h, ids[0]) == 0 || h_count_for(h, ids[1]) == 0)
                assert_true(h_step(h));
        /* within the hold: a recreation of the server's own, pending */
        h_announce(h, SRV, ep_r(h));
        assert_true(pcp_engine_next_deadline(h->e) != PCP_NEVER);
        assert_int_equal(pcp_engine_remove_server(h->e, h->now, sid), 0);
        h_drain(h);
        assert_int_equal(pcp_engine_mapping_count(h->e), 0);
        assert_int_equal(pcp_engine_next_deadline(h->e), PCP_NEVER);
        /* the engine goes on with another server */
        sid = h_server(h, "192.0.2.99", LOCAL);
        h_advance(h, 2 * MINUTE);
        assert_non_null(h_srv(h, sid));
        h_free(h);
}

/* A server that answers every request at once is never silent, over hours of renewals
 * and new mappings. */
static void test_server_answering_never_silent(void **state) {
        harness *h = h_new(142, NULL);
        uint32_t sid = pcp_server(h);
        size_t from = 0;
        uint16_t port = 7300;

        (void) state;
        for (int i = 0; i < 10; i++)
                (void) h_map(h, sid, IPPROTO_TCP, port++, 3600);
        answer_maps(h, &from);
        h_clear(h); /* the external address learnt: a server event */
        from = 0;
        for (uint64_t end = h->now + 6 * HOUR, next_new = h->now + 10 * MINUTE; h->now < end;) {
                assert_true(h_step(h));
                if (h->now >= next_new) {
                        (void) h_map(h, sid, IPPROTO_TCP, port++, 3600);
                        next_new += 10 * MINUTE;
                }
                answer_maps(h, &from);
                assert_false(h_srv(h, sid)->silent);
        }
        assert_true(from > 60);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 0);
        h_free(h);
}

/* A NAT-PMP gateway that stops answering: silent too, its state kept. */
static void test_server_silent_natpmp(void **state) {
        harness *h = h_new(143, NULL);
        uint64_t tcp, t0;
        uint32_t sid = natpmp_server(h, &tcp, "198.51.100.40");

        (void) state;
        natpmp_map_answer(h, sid, 8080, 18080, 3600);
        assert_int_equal(h_mapping(h, tcp)->state, PCP_MAPPING_ACTIVE);
        assert_false(h_srv(h, sid)->silent);
        h_clear(h);
        while (h->n_sent == 0)
                assert_true(h_step(h));
        t0 = h->now;
        assert_false(h_srv(h, sid)->silent);
        h_advance_to(h, t0 + 21 * SEC);
        assert_true(h_srv(h, sid)->silent);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        natpmp_map_answer(h, sid, 8080, 18080, 3600);
        assert_false(h_srv(h, sid)->silent);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 2);
        h_free(h);
}

/* the NAT-PMP external address requests sent since the last h_clear */
static size_t natpmp_addr_requests(harness *h) {
        size_t n_req = 0;
        natpmp_msg n;

        for (size_t k = 0; k < h->n_sent; k++)
                if (h_is_natpmp(&h->sent[k])) {
                        h_decode_natpmp(&h->sent[k], &n);
                        if (n.opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS)
                                n_req++;
                }
        return n_req;
}

/* A NAT-PMP gateway's address notice (RFC 6886 §3.2.1) comes to a port any host of the
 * link can reach, so it is a hint, never the address: a forged one (the gateway's source
 * address is all it needs) rewrote every mapping's external address, with an event per
 * mapping per datagram, and the forged address stayed. Now: the same address as known is
 * nothing; another one makes the engine ask the gateway on its own socket, at most once a
 * second however many notices come; only the answer changes the address. */
static void test_natpmp_notice_is_a_hint(void **state) {
        harness *h = h_new(135, NULL);
        uint64_t tcp, t_addr;
        uint32_t sid = natpmp_server(h, &tcp, "198.51.100.40");
        size_t n_req = 0, n_notices = 0;

        (void) state;
        t_addr = h->now;
        natpmp_map_answer(h, sid, 8080, 18080, 3600);
        assert_int_equal(h_mapping(h, tcp)->state, PCP_MAPPING_ACTIVE);
        assert_memory_equal(&h_mapping(h, tcp)->external_addr, IP("198.51.100.40"), 16);

#define EPOCH_NOW ((uint32_t) (100 + (h->now - t_addr) / SEC))
        /* the address known: nothing at all */
        h_clear(h);
        h_natpmp_notice(h, SRV, EPOCH_NOW, "198.51.100.40");
        h_advance(h, 2 * SEC);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(natpmp_addr_requests(h), 0);

        /* another address: no event, the address asked for, the mapping's unchanged */
        h_clear(h);
        h_natpmp_notice(h, SRV, EPOCH_NOW, "203.0.113.66");
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(natpmp_addr_requests(h), 1);
        assert_memory_equal(&h_mapping(h, tcp)->external_addr, IP("198.51.100.40"), 16);
        assert_memory_equal(&h_srv(h, sid)->external_addr, IP("198.51.100.40"), 16);
        /* more of them while the question is out: no second one */
        for (int k = 0; k < 50; k++)
                h_natpmp_notice(h, SRV, EPOCH_NOW, k % 2 ? "203.0.113.66" : "203.0.113.67");
        assert_int_equal(natpmp_addr_requests(h), 1);
        assert_int_equal(h->n_ev, 0);
        /* the gateway's answer: the same address, nothing changes, nothing more is asked */
        natpmp_address(h, sid, "198.51.100.40", EPOCH_NOW);
        assert_int_equal(h->n_ev, 0);
        h_clear(h);
        h_advance(h, 60 * SEC);
        assert_int_equal(natpmp_addr_requests(h), 0);

        /* a flood for 10 s, every 10 ms, the gateway answering each question at once: at
         * most one question a second, no event, the address the gateway's */
        h_clear(h);
        for (int k = 0; k < 1000; k++) {
                size_t before = natpmp_addr_requests(h);

                h_natpmp_notice(h, SRV, EPOCH_NOW, k % 2 ? "203.0.113.66" : "203.0.113.67");
                n_notices++;
                h_advance(h, 10);
                if (natpmp_addr_requests(h) > before)
                        natpmp_address(h, sid, "198.51.100.40", EPOCH_NOW);
        }
        n_req = natpmp_addr_requests(h);
        assert_true(n_notices == 1000);
        assert_in(n_req, 5, 11);
        assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, tcp), 0);
        assert_memory_equal(&h_mapping(h, tcp)->external_addr, IP("198.51.100.40"), 16);

        /* the gateway's own notice of a real change: asked, answered, the mapping moves */
        h_clear(h);
        h_advance(h, 2 * SEC);
        h_natpmp_notice(h, SRV, EPOCH_NOW, "198.51.100.77");
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(natpmp_addr_requests(h), 1);
        natpmp_address(h, sid, "198.51.100.77", EPOCH_NOW);
        assert_int_equal(h_count_events(h, PCP_EVENT_MAPPING, tcp), 1);
        assert_int_equal(h_mapping(h, tcp)->state, PCP_MAPPING_ACTIVE);
        assert_memory_equal(&h_mapping(h, tcp)->external_addr, IP("198.51.100.77"), 16);
        assert_memory_equal(&h_srv(h, sid)->external_addr, IP("198.51.100.77"), 16);
#undef EPOCH_NOW
        h_free(h);
}

/* the time of the last NAT-PMP external address request sent since the last h_clear */
static uint64_t natpmp_last_addr_request(harness *h) {
        natpmp_msg n;

        for (size_t k = h->n_sent; k-- > 0;)
                if (h_is_natpmp(&h->sent[k])) {
                        h_decode_natpmp(&h->sent[k], &n);
                        if (n.opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS)
                                return h->sent[k].t;
                }
        fail_msg("no external address request sent");
        return 0;
}

/* Silence is timed only while something is out. A NAT-PMP external address request that
 * is not out (scheduled for later by a notice within NATPMP_NOTICE_INTERVAL, or answered
 * with an error and asked again later) keeps nothing asked: a mapping request forgotten
 * unanswered meanwhile leaves no silence to time, and the address request times it anew
 * when it goes. (Before, any address request wanted kept the count running from the
 * forgotten one: the server was told silent up to NATPMP_NOTICE_INTERVAL, or a
 * retransmission timeout, early.) */
static void test_natpmp_addr_request_not_out(void **state) {
        natpmp_msg n = { .response = true, .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS,
                         .result = NATPMP_RESULT_NETWORK_FAILURE, .epoch = 100 };
        for (int answered = 0; answered < 2; answered++) {
                harness *h = h_new(answered ? 150 : 149, NULL);
                uint64_t tcp, b, t_b, t_a;
                uint32_t sid = natpmp_server(h, &tcp, "198.51.100.40");

                (void) state;
                natpmp_map_answer(h, sid, 8080, 18080, 3600);
                assert_int_equal(h_mapping(h, tcp)->state, PCP_MAPPING_ACTIVE);
                h_advance(h, 2 * SEC);
                h_clear(h);
                /* a notice of another address: the address asked at once */
                h_natpmp_notice(h, SRV, 102, "203.0.113.66");
                assert_int_equal(natpmp_addr_requests(h), 1);
                if (answered)
                        /* the gateway has none just now: asked again after a timeout */
                        h_receive_natpmp(h, sid, 0, &n);
                else
                        natpmp_address(h, sid, "198.51.100.40", 102);
                /* a mapping asked */
                h_advance(h, 10);
                b = h_map(h, sid, IPPROTO_TCP, 8081, 3600);
                t_b = h->now;
                assert_int_equal(natpmp_map_requests(h), 1);
                if (!answered) {
                        /* another notice within the second: an address request for later */
                        h_advance(h, 10);
                        h_natpmp_notice(h, SRV, 102, "203.0.113.67");
                        assert_int_equal(natpmp_addr_requests(h), 1);
                }
                /* the mapping forgotten, unanswered: nothing is out */
                h_advance(h, 10);
                assert_int_equal(pcp_engine_forget_mapping(h->e, b), 0);
                h_drain(h);
                /* the address request goes (the first time, or again), unanswered */
                while (natpmp_addr_requests(h) < 2)
                        assert_true(h_step(h));
                t_a = natpmp_last_addr_request(h);
                assert_true(t_a > t_b + 10);
                /* silence is timed from it, not from the forgotten request */
                h_advance_to(h, t_b + 20 * SEC + 1);
                assert_false(h_srv(h, sid)->silent);
                h_advance_to(h, t_a + 20 * SEC - 1);
                assert_false(h_srv(h, sid)->silent);
                h_advance_to(h, t_a + 21 * SEC);
                assert_true(h_srv(h, sid)->silent);
                assert_int_equal(h_srv(h, sid)->silent_since, t_a);
                h_free(h);
        }
}

/* A NAT-PMP server whose PCP answer comes after all (one to a mapping's PCP request from
 * before the switch: the "unsupported version" was not its word, or not its last) is
 * driven with PCP again; one whose PCP re-probe is answered NOT_AUTHORIZED is disabled.
 * Either way its external address request is given up: a NAT-PMP answer to it would be
 * dropped (the server is not NAT-PMP), so before, it was asked for ever (every mrt at
 * most), and each time it timed a silence of a server that answers what it is asked:
 * told silent 20 s later. */
static void test_natpmp_addr_request_given_up(void **state) {
        harness *h = h_new(151, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        uint64_t tcp = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        const h_sent *pcp_req = h_last_for(h, tcp);
        uint64_t t_pcp;
        size_t n_probes = 0;

        (void) state;
        assert_non_null(pcp_req);
        natpmp_unsupp(h, sid, 100);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        assert_int_equal(natpmp_addr_requests(h), 1);
        /* the PCP answer to the request from before the switch */
        h_advance(h, 100);
        h_reply(h, pcp_req, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 38080);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        t_pcp = h->now;
        h_clear(h);
        /* its mapping answered in PCP from now on; the address not asked for any more, the
         * server never silent */
        for (uint64_t end = t_pcp + HOUR; h->now < end;) {
                const h_sent *req;

                assert_true(h_step(h));
                req = h_last_for(h, tcp);
                if (req != NULL && !h_is_natpmp(req) && h_mapping(h, tcp)->state != PCP_MAPPING_ACTIVE)
                        h_reply(h, req, PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 38080);
                /* and its probes (the re-probe the switch to NAT-PMP planned) */
                while (n_probes < h_count(h, PCP_OPCODE_ANNOUNCE))
                        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, n_probes++), PCP_RESULT_SUCCESS, 0,
                                         ep(h));
                assert_false(h_srv(h, sid)->silent);
        }
        assert_int_equal(natpmp_addr_requests(h), 0);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_int_equal(h_mapping(h, tcp)->state, PCP_MAPPING_ACTIVE);
        h_free(h);

        /* The same for one switched off: its PCP re-probe answered NOT_AUTHORIZED while the
         * gateway had no address yet (answered without one, asked again later). Nothing is
         * asked of it while it is disabled. */
        h = h_new(152, NULL);
        {
                natpmp_msg n = { .response = true, .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS,
                                 .result = NATPMP_RESULT_NETWORK_FAILURE };
                uint64_t t0 = h->now, until;
                size_t n_asked = 0;

                sid = natpmp_server(h, &tcp, NULL);
                while (h_count(h, PCP_OPCODE_ANNOUNCE) < 2) { /* the first probe, the re-probe */
                        assert_true(h_step(h));
                        for (; n_asked < natpmp_addr_requests(h); n_asked++) {
                                n.epoch = (uint32_t) (100 + (h->now - t0) / SEC);
                                h_receive_natpmp(h, sid, 0, &n);
                        }
                }
                assert_true(n_asked > 3);
                h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 1), PCP_RESULT_NOT_AUTHORIZED, 0,
                                 (uint32_t) (100 + (h->now - t0) / SEC));
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_DISABLED);
                until = h_srv(h, sid)->disabled_until;
                h_clear(h);
                h_advance_to(h, until - 1);
                assert_int_equal(natpmp_addr_requests(h), 0);
                assert_false(h_srv(h, sid)->silent);
                assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 0);
        }
        h_free(h);
}

/* A notice to a server that drives no mappings (not a PCP or NAT-PMP one: here UNSUPPORTED,
 * as a UPnP-IGD-only router can be) is dropped: no recreation event, nothing logged as
 * "renewing" by the owner. */
static void test_natpmp_notice_unused_server(void **state) {
        harness *h = h_new(136, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        uint64_t id = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        uint8_t b[PCP_HEADER_LEN] = { 1, 0x80 | PCP_OPCODE_MAP, 0, PCP_RESULT_UNSUPP_VERSION };
        uint64_t unsolicited;

        (void) state;
        /* the server offers only another version */
        h_receive(h, sid, 0, b, sizeof(b));
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNSUPPORTED);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
        unsolicited = st->dropped[PCP_DROP_UNSOLICITED];
        h_clear(h);
        h_natpmp_notice(h, SRV, 1000, "203.0.113.66");
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 0);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(st->dropped[PCP_DROP_UNSOLICITED], unsolicited + 1);
        h_free(h);
}

/* A PCP server's NAT-PMP side says its external address changed (RFC 6886 §3.2.1, on the
 * ANNOUNCE port): a RECREATE like an ANNOUNCE's, and the mappings asked again; a flood of
 * them within the interval gives one more, when it ends, flagged repeated. From a
 * stranger: nothing. */
static void test_natpmp_notice_recreate(void **state) {
        harness *h = h_new(134, NULL);
        uint64_t ids[4], t0;
        uint32_t sid = recreate_setup(h, ids, 4, 7800);
        size_t from = 0;
        const h_event *ev;

        h_natpmp_notice(h, "192.168.1.99", 1000, "198.51.100.8");
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(pcp_engine_get_stats(h->e)->dropped[PCP_DROP_UNKNOWN_SERVER], 1);

        t0 = h->now;
        h_natpmp_notice(h, SRV, 1000, "198.51.100.8");
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 1);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
        ev = h_last_event(h, PCP_EVENT_RECREATE, 0);
        assert_int_equal(ev->server_id, sid);
        assert_true(ev->from_announce);
        assert_false(ev->repeated);
        assert_int_equal(ev->n_recreated, 4);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        for (int k = 1; k < 20; k++) {
                answer_until(h, t0 + (uint64_t) k * 200, &from);
                h_natpmp_notice(h, SRV, 1000, "198.51.100.8");
        }
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 1);
        answer_until(h, t0 + 5 * SEC - 1, &from);
        for (int i = 0; i < 4; i++) {
                assert_int_equal(h_count_for(h, ids[i]), 1);
                assert_in(h_first_for(h, ids[i])->t, t0, t0 + 5 * SEC);
        }
        answer_until(h, t0 + 5 * SEC, &from);
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 2);
        assert_true(h_last_event(h, PCP_EVENT_RECREATE, 0)->repeated);
        answer_until(h, t0 + 20 * SEC, &from);
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 2);
        for (int i = 0; i < 4; i++) {
                assert_int_equal(h_count_for(h, ids[i]), 2);
                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
        }
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
        h_free(h);
}

/* "Version not supported" carries no nonce: to a server that speaks PCP (it answered with
 * nonces), forged ones from its address, however many, are a doubt that a probe settles:
 * its PCP answer keeps every mapping as it was (no event, no failure, renewals on time);
 * at most one probe for a flood. Both kinds: a PCP header of another version, and
 * NAT-PMP's 8-octet one. (Before, one datagram failed every mapping for 30 min, or moved
 * the server to NAT-PMP.) */
static void test_forged_version(void **state) {
        bool natpmp_kind = *(const bool *) *state;
        harness *h = h_new(natpmp_kind ? 141 : 140, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t ids[5], sctp;
        uint8_t v1[PCP_HEADER_LEN] = { 1, 0x80 | PCP_OPCODE_MAP, 0, PCP_RESULT_UNSUPP_VERSION };
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        const h_sent *probe;
        uint64_t unsolicited, t0;
        size_t n_ev;

        for (size_t i = 0; i < 5; i++)
                ids[i] = granted_map(h, sid, (uint16_t) (8000 + i), 3600, (uint16_t) (38000 + i));
        sctp = h_map(h, sid, 132, 9, 3600);
        h_reply(h, h_last_for(h, sctp), PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 9);
        assert_int_equal(h_mapping(h, sctp)->state, PCP_MAPPING_ACTIVE);
        h_advance(h, MINUTE);
        h_clear(h);
        unsolicited = st->dropped[PCP_DROP_UNSOLICITED];
        t0 = h->now;

        for (int k = 0; k < 1000; k++) {
                if (natpmp_kind)
                        natpmp_unsupp(h, sid, 100);
                else
                        h_receive(h, sid, 0, v1, sizeof(v1));
        }
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(st->dropped[PCP_DROP_UNSOLICITED], unsolicited + 1000);
        /* one probe, and nothing else asked */
        assert_int_equal(h->n_sent, 1);
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);
        h_reply_announce(h, probe, PCP_RESULT_SUCCESS, 0, ep(h));
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);

        /* past the doubt's end and on: still PCP, not one event; the flood again a second
         * later gives one more probe, answered the same way */
        h_advance(h, 10 * SEC);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        for (int k = 0; k < 1000; k++)
                h_receive(h, sid, 0, v1, sizeof(v1));
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 2);
        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 1), PCP_RESULT_SUCCESS, 0, ep(h));
        h_advance(h, 10 * SEC);
        n_ev = h->n_ev;
        assert_int_equal(n_ev, 0);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        for (size_t i = 0; i < 5; i++) {
                assert_int_equal(h_mapping(h, ids[i])->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_count_for(h, ids[i]), 0); /* not asked again */
        }
        assert_int_equal(h_mapping(h, sctp)->state, PCP_MAPPING_ACTIVE);
        /* the renewals come when they are due (half the lifetime), in PCP */
        h_advance_to(h, t0 + 40 * MINUTE);
        for (size_t i = 0; i < 5; i++) {
                assert_true(h_count_for(h, ids[i]) >= 1);
                assert_false(h_is_natpmp(h_first_for(h, ids[i])));
        }
        h_free(h);
}

/* A PCP server replaced by one that speaks only NAT-PMP: its renewals and the probe the
 * doubt sends are all answered "unsupported version", no PCP answer comes: the doubt
 * stands 2 × IRT after it began, and the server is driven with NAT-PMP (the mappings asked
 * again in it, the address asked). The same for one that offers only another PCP version:
 * UNSUPPORTED, its mappings failed. */
static void test_replaced_router(void **state) {
        bool natpmp_kind = *(const bool *) *state;
        harness *h = h_new(natpmp_kind ? 143 : 142, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t id = granted_map(h, sid, 8080, 120, 38080);
        uint8_t v1[PCP_HEADER_LEN] = { 1, 0x80 | PCP_OPCODE_MAP, 0, PCP_RESULT_UNSUPP_VERSION };
        uint64_t t_doubt;

        /* its renewal (at half the lifetime) answered with the refusal */
        h_advance(h, 61 * SEC);
        assert_true(h_count_for(h, id) >= 1);
        h_clear(h);
        if (natpmp_kind)
                natpmp_unsupp(h, sid, 5);
        else
                h_receive(h, sid, 0, v1, sizeof(v1));
        t_doubt = h->now;
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        /* the probe: the same refusal */
        if (natpmp_kind)
                natpmp_unsupp(h, sid, 5);
        else
                h_receive(h, sid, 0, v1, sizeof(v1));
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        h_advance_to(h, t_doubt + 2 * 3 * SEC - 1);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        h_advance_to(h, t_doubt + 2 * 3 * SEC);
        if (natpmp_kind) {
                size_t asked = 0;

                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
                assert_true(h_mapping(h, id)->natpmp);
                /* asked again at once, in NAT-PMP */
                for (size_t k = 0; k < h->n_sent; k++) {
                        natpmp_msg n;

                        if (!h_is_natpmp(&h->sent[k]) || h->sent[k].t != h->now)
                                continue;
                        h_decode_natpmp(&h->sent[k], &n);
                        asked += n.opcode == NATPMP_OPCODE_MAP_TCP && n.internal_port == 8080;
                }
                assert_int_equal(asked, 1);
        } else {
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNSUPPORTED);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
                assert_int_equal(h_mapping(h, id)->error, PCP_MAPPING_ERROR_UNSUPPORTED);
        }
        h_free(h);
}

/* A doubt about the version that stands (test_replaced_router) settles the server as not
 * speaking PCP: its probe is over, answered by the refusals the doubt came to believe. It
 * is not asked anything any more (UNSUPPORTED: its mappings failed; the probe's silence
 * was timed from when it went) and must not be told silent 20 s later; the next request
 * (the re-probe) times it anew. Switched to NAT-PMP instead, what it is asked is the
 * NAT-PMP requests that go at the switch: silence is timed from them. */
static void test_settled_not_pcp_not_silent(void **state) {
        bool natpmp_kind = *(const bool *) *state;
        harness *h = h_new(natpmp_kind ? 148 : 147, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t id = granted_map(h, sid, 8090, 3600, 38090);
        uint8_t v1[PCP_HEADER_LEN] = { 1, 0x80 | PCP_OPCODE_MAP, 0, PCP_RESULT_UNSUPP_VERSION };
        uint64_t t_doubt = 0, t_settled;
        const h_sent *probe;

        h_advance(h, MINUTE);
        h_clear(h);
        /* the refusal, and the same refusal to the probe it sends: nothing else is out
         * (the mapping is active, its renewal half an hour away) */
        for (int k = 0; k < 2; k++) {
                if (natpmp_kind)
                        natpmp_unsupp(h, sid, 5);
                else
                        h_receive(h, sid, 0, v1, sizeof(v1));
                if (k == 0)
                        t_doubt = h->now;
        }
        assert_int_equal(h->n_sent, 1);
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        h_advance_to(h, t_doubt + 2 * 3 * SEC);
        t_settled = h->now;
        assert_int_equal(h_srv(h, sid)->state, natpmp_kind ? PCP_SERVER_NATPMP : PCP_SERVER_UNSUPPORTED);

        /* 20 s after the probe went, and on: not silent */
        h_advance_to(h, t_doubt + 20 * SEC + 1);
        assert_false(h_srv(h, sid)->silent);
        if (!natpmp_kind) {
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
                h_advance_to(h, t_doubt + 2 * MINUTE);
                assert_false(h_srv(h, sid)->silent);
                for (size_t k = 0; k < h->n_ev; k++)
                        assert_false(h->ev[k].type == PCP_EVENT_SERVER && h->ev[k].server.silent);
                /* the re-probe (30 min on) is asked, unanswered: silent 20 s after it went */
                h_clear(h);
                while (h_count(h, PCP_OPCODE_ANNOUNCE) == 0)
                        assert_true(h_step(h));
                probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);
                assert_true(probe->t > t_settled + 20 * MINUTE);
                h_advance_to(h, probe->t + 20 * SEC - 1);
                assert_false(h_srv(h, sid)->silent);
                h_advance_to(h, probe->t + 21 * SEC);
                assert_true(h_srv(h, sid)->silent);
                assert_int_equal(h_srv(h, sid)->silent_since, probe->t);
        } else {
                /* the NAT-PMP requests sent at the switch go unanswered: silent 20 s after
                 * them */
                h_advance_to(h, t_settled + 20 * SEC - 1);
                assert_false(h_srv(h, sid)->silent);
                h_advance_to(h, t_settled + 21 * SEC);
                assert_true(h_srv(h, sid)->silent);
                assert_int_equal(h_srv(h, sid)->silent_since, t_settled);
        }
        h_free(h);
}

/* An ANNOUNCE answer on the server's own socket while no probe is out answers nothing of
 * ours: from a server that offers another version, speaks only NAT-PMP, or switched PCP
 * off, it is dropped and changes nothing (before, it moved any of them to PCP, or off). */
static void test_unsolicited_announce_answer(void **state) {
        harness *h = h_new(144, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        uint32_t sid2;
        uint64_t id = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        uint8_t v1[PCP_HEADER_LEN] = { 1, 0x80 | PCP_OPCODE_MAP, 0, PCP_RESULT_UNSUPP_VERSION };
        pcp_msg a = { .version = PCP_VERSION, .response = true, .opcode = PCP_OPCODE_ANNOUNCE,
                      .result = PCP_RESULT_SUCCESS, .epoch = 5 };
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        uint64_t unsolicited;

        (void) state;
        h_receive(h, sid, 0, v1, sizeof(v1)); /* answers the first probe: another version */
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNSUPPORTED);
        h_clear(h);
        unsolicited = st->dropped[PCP_DROP_UNSOLICITED];
        h_receive_msg(h, sid, 0, &a);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNSUPPORTED);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(h->n_sent, 0);
        a.result = PCP_RESULT_NOT_AUTHORIZED;
        a.lifetime = 600;
        h_receive_msg(h, sid, 0, &a);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNSUPPORTED);
        assert_int_equal(st->dropped[PCP_DROP_UNSOLICITED], unsolicited + 2);

        /* a NAT-PMP server */
        sid2 = h_server(h, "192.168.1.2", LOCAL);
        natpmp_unsupp(h, sid2, 100);
        assert_int_equal(h_srv(h, sid2)->state, PCP_SERVER_NATPMP);
        h_clear(h);
        a.result = PCP_RESULT_SUCCESS;
        a.lifetime = 0;
        h_receive_msg(h, sid2, 0, &a);
        assert_int_equal(h_srv(h, sid2)->state, PCP_SERVER_NATPMP);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(st->dropped[PCP_DROP_UNSOLICITED], unsolicited + 3);
        h_free(h);
}

/* An ANNOUNCE to a server not known to speak PCP (unknown, unreachable) comes to a port any
 * host of the link can reach: one forged datagram made the server "pcp", set its epoch and
 * stopped the probe that would have told the truth. Now it is a hint: the server is
 * probed at once, at most once a second however many come, its state and epoch left to
 * the probe's answer. */
static size_t hint_flood(harness *h, uint64_t duration, uint64_t step) {
        size_t before = h_count(h, PCP_OPCODE_ANNOUNCE);

        for (uint64_t end = h->now + duration; h->now < end;) {
                h_announce(h, SRV, (uint32_t) h_rand(h));
                h_advance(h, step);
        }
        return h_count(h, PCP_OPCODE_ANNOUNCE) - before;
}

static void test_announce_hint_unknown(void **state) {
        harness *h = h_new(138, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        size_t n;

        (void) state;
        /* the first probe is lost; the next would go at ~3 s */
        h_advance(h, 1 * SEC);
        h_clear(h);
        h_announce(h, SRV, 4242);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNKNOWN);
        assert_false(h_srv(h, sid)->epoch_known);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        assert_int_equal(h_last(h)->t, h->now);
        assert_int_equal(h_last(h)->server_id, sid);
        /* 100 more within the second: no other probe, nothing changed */
        for (int k = 0; k < 100; k++) {
                h_announce(h, SRV, (uint32_t) (4242 + k * 1000));
                h_advance(h, 9);
        }
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNKNOWN);
        assert_false(h_srv(h, sid)->epoch_known);
        assert_int_equal(h->n_ev, 0);
        /* a flood for 10 s, every 10 ms: about one probe a second, never more */
        h_advance(h, 1 * SEC);
        h_clear(h);
        n = hint_flood(h, 10 * SEC, 10);
        if (n < 5 || n > 11)
                fail_msg("a 10 s ANNOUNCE flood gave %zu probes, not 5..11", n);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNKNOWN);
        assert_false(h_srv(h, sid)->epoch_known);
        assert_int_equal(h->n_ev, 0);
        /* the probe's answer decides: PCP, with its epoch */
        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, n - 1), PCP_RESULT_SUCCESS, 0, 77);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_true(h_srv(h, sid)->epoch_known);
        assert_int_equal(h_srv(h, sid)->epoch, 77);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        h_free(h);
}

static void test_announce_hint_unreachable(void **state) {
        harness *h = h_new(139, NULL);
        uint32_t sid = pcp_server(h);
        uint64_t id = granted_map(h, sid, 7100, 3600, 47100);
        uint32_t epoch;
        size_t n;

        (void) state;
        h_advance(h, 10 * SEC);
        epoch = h_srv(h, sid)->epoch;
        /* the router went away: the next request meets ICMP (an ICMP error with nothing
         * asked is dropped: test_icmp_needs_a_request) */
        (void) h_map(h, sid, IPPROTO_UDP, 7101, 3600);
        pcp_engine_unreachable(h->e, h->now, sid, 0);
        h_drain(h);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
        h_advance(h, 2 * SEC);
        h_clear(h);
        /* a forged ANNOUNCE with an epoch that would be a reset: no reset, no recreation,
         * the state and epoch as they were; the server probed at once */
        h_announce(h, SRV, 3);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
        assert_int_equal(h_srv(h, sid)->epoch, epoch);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        assert_int_equal(h_last(h)->t, h->now);
        assert_int_equal(pcp_engine_get_stats(h->e)->epoch_resets, 0);
        for (int k = 0; k < 100; k++) {
                h_announce(h, SRV, (uint32_t) k);
                h_advance(h, 9);
        }
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
        assert_int_equal(h->n_ev, 0);
        h_advance(h, 1 * SEC);
        h_clear(h);
        n = hint_flood(h, 10 * SEC, 10);
        if (n < 5 || n > 11)
                fail_msg("a 10 s ANNOUNCE flood gave %zu probes, not 5..11", n);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
        assert_int_equal(h_srv(h, sid)->epoch, epoch);
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 0);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
        /* the server is back and answers the probe, its epoch consistent: PCP, its
         * mapping kept */
        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, n - 1), PCP_RESULT_SUCCESS, 0, ep(h));
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        h_free(h);
}

/* A NAT-PMP-only router not probed yet, and a forged ANNOUNCE: the probe it starts is
 * answered NAT-PMP style (UNSUPP_VERSION, 8 octets): NAT-PMP, never "pcp" on the way. */
static void test_announce_hint_natpmp(void **state) {
        harness *h = h_new(140, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);

        (void) state;
        h_advance(h, 1 * SEC);
        h_clear(h);
        h_announce(h, SRV, 4242);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNKNOWN);
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        natpmp_unsupp(h, sid, 100);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        assert_int_equal(h_last_event(h, PCP_EVENT_SERVER, 0)->server.state, PCP_SERVER_NATPMP);
        h_free(h);
}

/* A PCP ANNOUNCE to a server driven with NAT-PMP, or offering another PCP version: a hint
 * too (PCP may have been switched on): one probe however many come, no recreation, and
 * the probe's PCP answer moves the server and its mappings to PCP. To a server that
 * switched PCP off (NOT_AUTHORIZED): dropped, nothing asked before its time. */
static void test_announce_hint_other_states(void **state) {
        harness *h = h_new(145, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL), sid2, sid3;
        uint64_t tcp = h_map(h, sid, IPPROTO_TCP, 8080, 3600), id3;
        uint8_t v1[PCP_HEADER_LEN] = { 1, 0x80 | PCP_OPCODE_MAP, 0, PCP_RESULT_UNSUPP_VERSION };
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        uint64_t unsolicited;

        (void) state;
        natpmp_unsupp(h, sid, 100);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        h_advance(h, 10 * SEC);
        h_clear(h);
        for (int k = 0; k < 100; k++)
                h_announce(h, SRV, 4242);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 0);
        assert_int_equal(h_count_events(h, PCP_EVENT_EPOCH_RESET, 0), 0);
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        assert_int_equal(h_count_for(h, tcp), 0);
        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 0), PCP_RESULT_SUCCESS, 0, 4242);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        h_advance(h, 1);
        assert_int_equal(h_count_for(h, tcp), 1); /* asked again, in PCP */

        sid2 = h_server(h, "192.168.1.2", LOCAL);
        h_receive(h, sid2, 0, v1, sizeof(v1)); /* answers its first probe */
        assert_int_equal(h_srv(h, sid2)->state, PCP_SERVER_UNSUPPORTED);
        h_advance(h, 10 * SEC);
        h_clear(h);
        h_announce(h, "192.168.1.2", 4242);
        assert_int_equal(h_srv(h, sid2)->state, PCP_SERVER_UNSUPPORTED);
        assert_int_equal(h_count(h, PCP_OPCODE_ANNOUNCE), 1);
        assert_int_equal(h_count_events(h, PCP_EVENT_RECREATE, 0), 0);

        sid3 = h_server(h, "192.168.1.3", LOCAL);
        h_reply_announce(h, h_find(h, PCP_OPCODE_ANNOUNCE, 1), PCP_RESULT_NOT_AUTHORIZED, 600, 4242);
        assert_int_equal(h_srv(h, sid3)->state, PCP_SERVER_DISABLED);
        id3 = h_map(h, sid3, IPPROTO_TCP, 8081, 3600);
        assert_int_equal(h_mapping(h, id3)->state, PCP_MAPPING_FAILED);
        h_clear(h);
        unsolicited = st->dropped[PCP_DROP_UNSOLICITED];
        h_announce(h, "192.168.1.3", 4242);
        assert_int_equal(h_srv(h, sid3)->state, PCP_SERVER_DISABLED);
        assert_int_equal(h->n_sent, 0);
        assert_int_equal(h->n_ev, 0);
        assert_int_equal(st->dropped[PCP_DROP_UNSOLICITED], unsolicited + 1);
        h_free(h);
}

/* ---- a router that reboots (ICMP while it is away), both kinds ---- */

/* A router answering h->sent[k] as it would: NAT-PMP-only (natpmp) answers NAT-PMP requests
 * and every PCP request with the 8-octet UNSUPP_VERSION (RFC 6886 §3.5); a PCP router
 * answers PCP. Mappings are granted their internal port + 30000, for what they ask;
 * its epoch counts from boot. */
static void router_answer(harness *h, uint32_t sid, bool natpmp, uint64_t boot, size_t k) {
        uint32_t epoch = (uint32_t) ((h->now - boot) / SEC);
        h_sent req = h->sent[k]; /* h->sent may move as the engine answers */

        if (h_is_natpmp(&req)) {
                natpmp_msg q, n;

                h_decode_natpmp(&req, &q);
                n = (natpmp_msg) { .response = true, .opcode = q.opcode, .epoch = epoch };
                if (q.opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS)
                        assert_int_equal(inet_pton(AF_INET, EXT, &n.external_addr), 1);
                else {
                        n.internal_port = q.internal_port;
                        n.external_port = q.lifetime == 0 ? 0 : (uint16_t) (q.internal_port + 30000);
                        n.lifetime = q.lifetime;
                }
                h_receive_natpmp(h, sid, req.addr_index, &n);
                return;
        }
        if (natpmp) {
                natpmp_unsupp(h, sid, epoch);
                return;
        }

        pcp_msg q;

        h_decode(&req, &q);
        if (q.opcode == PCP_OPCODE_ANNOUNCE)
                h_reply_announce(h, &req, PCP_RESULT_SUCCESS, 0, epoch);
        else
                h_reply(h, &req, PCP_RESULT_SUCCESS, q.lifetime, epoch, EXT,
                        q.lifetime == 0 ? 0 : (uint16_t) (q.internal_port + 30000));
}

/* every datagram from *from on answered (and what the answers start, at the same time) */
static void router_serve(harness *h, uint32_t sid, bool natpmp, uint64_t boot, size_t *from) {
        for (size_t n = 0; *from < h->n_sent; (*from)++) {
                if (++n > 1000)
                        fail_msg("router: more than 1000 datagrams in a row at %llu ms", (unsigned long long) h->now);
                router_answer(h, sid, natpmp, boot, *from);
        }
}

/* A router rebooting: what the engine sends while it is away meets ICMP port unreachable,
 * and the server is "unreachable"; then it is back. A PCP server is back in use with the
 * first request that reaches it (any PCP answer naming a nonce). So must a NAT-PMP-only
 * one be: its answers (NAT-PMP ones to the NAT-PMP requests, the 8-octet UNSUPP_VERSION to
 * the PCP requests the engine sends an unreachable server) start the ANNOUNCE probe at
 * once, whose answer puts it back to NAT-PMP. Before, they were dropped (counted as
 * "wrong version" or "unsolicited"), and the mappings stayed failed until the re-probe,
 * up to 30 min later. No answer of it is counted as a wrong version or malformed. */
static void test_unreachable_router_back(void **state) {
        bool natpmp_kind = *(const bool *) *state;
        harness *h = h_new(natpmp_kind ? 151 : 150, NULL);
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        uint32_t sid;
        uint64_t active, pending, t_down, t_back, t_first = PCP_NEVER, t_active = PCP_NEVER, end;
        uint64_t wrong_version, malformed;
        size_t from;

        if (natpmp_kind) {
                sid = h_server(h, SRV, LOCAL);
                natpmp_unsupp(h, sid, 100); /* its first probe: NAT-PMP only */
                natpmp_address(h, sid, EXT, 100);
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
                active = h_map(h, sid, IPPROTO_TCP, 7000, 3600);
                natpmp_map_answer(h, sid, 7000, 37000, 3600);
        } else {
                sid = pcp_server(h);
                active = granted_map(h, sid, 7000, 3600, 37000);
        }
        assert_int_equal(h_mapping(h, active)->state, PCP_MAPPING_ACTIVE);
        h_advance(h, MINUTE);
        h_clear(h);
        wrong_version = st->dropped[PCP_DROP_WRONG_VERSION];
        malformed = st->dropped[PCP_DROP_MALFORMED];

        /* the router goes away for 90 s: a mapping asked meanwhile meets ICMP */
        t_down = h->now;
        t_back = t_down + 90 * SEC;
        pending = h_map(h, sid, IPPROTO_TCP, 7001, 3600);
        from = 0;
        for (;;) {
                for (; from < h->n_sent; from++) {
                        pcp_engine_unreachable(h->e, h->now, sid, h->sent[from].addr_index);
                        h_drain(h);
                }
                if (pcp_engine_next_deadline(h->e) >= t_back)
                        break;
                assert_true(h_step(h));
        }
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
        assert_int_equal(h_mapping(h, pending)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, pending)->error, PCP_MAPPING_ERROR_UNREACHABLE);

        /* back (rebooted: its epoch starts again); it answers whatever it is sent */
        from = h->n_sent;
        h_advance_to(h, t_back);
        for (end = t_back + 2 * HOUR; h->now < end;) {
                size_t before = from;

                router_serve(h, sid, natpmp_kind, t_back, &from);
                if (from > before && t_first == PCP_NEVER)
                        t_first = h->sent[before].t;
                if (h_mapping(h, pending)->state == PCP_MAPPING_ACTIVE) {
                        t_active = h->now;
                        break;
                }
                if (!h_step(h))
                        break;
        }
        if (t_first == PCP_NEVER)
                fail_msg("nothing sent to the router within 2 h of its return");
        /* active at the first request that reached it, as a PCP server's */
        if (t_active != t_first)
                fail_msg("%s router back at %llu ms, first asked at +%llu ms: mapping active at +%llu ms "
                         "(%s), not with that first request",
                         natpmp_kind ? "NAT-PMP" : "PCP", (unsigned long long) t_back,
                         (unsigned long long) (t_first - t_back),
                         (unsigned long long) (t_active == PCP_NEVER ? 0 : t_active - t_back),
                         t_active == PCP_NEVER ? "never, within the 2 h cap" : "late");
        assert_int_equal(h_srv(h, sid)->state, natpmp_kind ? PCP_SERVER_NATPMP : PCP_SERVER_PCP);
        assert_false(h_srv(h, sid)->silent);
        assert_int_equal(h_mapping(h, pending)->natpmp, natpmp_kind);
        assert_int_equal(h_mapping(h, pending)->external_port, 37001);
        /* the one granted before the reboot is asked again and granted too */
        router_serve(h, sid, natpmp_kind, t_back, &from);
        h_advance(h, 10 * SEC);
        router_serve(h, sid, natpmp_kind, t_back, &from);
        assert_int_equal(h_mapping(h, active)->state, PCP_MAPPING_ACTIVE);
        assert_int_equal(h_mapping(h, active)->external_port, 37000);
        /* nothing it answered looked like a wrong version or garbage */
        assert_int_equal(st->dropped[PCP_DROP_WRONG_VERSION], wrong_version);
        assert_int_equal(st->dropped[PCP_DROP_MALFORMED], malformed);
        h_free(h);
}

/* An unreachable NAT-PMP router's notice (RFC 6886 §3.2.1: sent as it boots) and its
 * NAT-PMP answers name no request: like an ANNOUNCE to a PCP one
 * (test_announce_hint_unreachable), they are hints. However many come, one probe a second,
 * and nothing else changes (state, mappings, events, the address); the probe's answer (the
 * "unsupported version" of test_unreachable_router_back) puts the server back to NAT-PMP
 * and asks its mappings again in it, at once. */
static void test_unreachable_natpmp_hint(void **state) {
        harness *h = h_new(152, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        const pcp_engine_stats *st = pcp_engine_get_stats(h->e);
        uint64_t id, wrong_version;
        natpmp_msg n = { .response = true, .opcode = NATPMP_OPCODE_MAP_TCP, .internal_port = 7200,
                         .external_port = 47200, .lifetime = 3600, .epoch = 3 };
        size_t asked = 0;

        (void) state;
        natpmp_unsupp(h, sid, 100);
        natpmp_address(h, sid, EXT, 100);
        id = h_map(h, sid, IPPROTO_TCP, 7200, 3600);
        natpmp_map_answer(h, sid, 7200, 37200, 3600);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
        h_advance(h, MINUTE);
        /* the router went away: the next request meets ICMP (an ICMP error with nothing
         * asked is dropped: test_icmp_needs_a_request) */
        (void) h_map(h, sid, IPPROTO_UDP, 7201, 3600);
        pcp_engine_unreachable(h->e, h->now, sid, 0);
        h_drain(h);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
        h_advance(h, 2 * SEC);
        wrong_version = st->dropped[PCP_DROP_WRONG_VERSION];

        /* notices for 0.9 s, then answers to a NAT-PMP request it made before (its
         * mapping's) for 0.9 s: one probe each, in PCP, at the first; nothing else asked,
         * changed or told */
        for (int round = 0; round < 2; round++) {
                uint64_t t0 = h->now;

                h_clear(h);
                for (int k = 0; k < 100; k++) {
                        if (round == 0)
                                h_natpmp_notice(h, SRV, 3, "203.0.113.9");
                        else
                                h_receive_natpmp(h, sid, 0, &n);
                        h_advance(h, 9);
                }
                if (h->n_sent != 1 || h_count(h, PCP_OPCODE_ANNOUNCE) != 1 || h->sent[0].t != t0)
                        fail_msg("%s to an unreachable NAT-PMP server: %zu datagrams, %zu probes, not one "
                                 "probe at once", round == 0 ? "notices" : "NAT-PMP answers", h->n_sent,
                                 h_count(h, PCP_OPCODE_ANNOUNCE));
                assert_int_equal(h->n_ev, 0);
                assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNREACHABLE);
                assert_memory_equal(&h_srv(h, sid)->external_addr, IP(EXT), 16);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_ACTIVE);
                assert_int_equal(h_mapping(h, id)->external_port, 37200);
                assert_int_equal(st->dropped[PCP_DROP_WRONG_VERSION], wrong_version);
                h_advance(h, 1 * SEC);
        }

        /* the probe answered: NAT-PMP again, the mapping and the address asked at once */
        h_clear(h);
        natpmp_unsupp(h, sid, 5);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_NATPMP);
        for (size_t k = 0; k < h->n_sent; k++) {
                natpmp_msg q;

                assert_true(h_is_natpmp(&h->sent[k]));
                assert_int_equal(h->sent[k].t, h->now);
                h_decode_natpmp(&h->sent[k], &q);
                asked += q.opcode == NATPMP_OPCODE_MAP_TCP && q.internal_port == 7200;
        }
        assert_int_equal(asked, 1);
        h_free(h);
}

static void test_version1_unsupported(void **state) {
        harness *h = h_new(41, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        uint64_t id = h_map(h, sid, IPPROTO_TCP, 8080, 3600);
        uint8_t b[PCP_HEADER_LEN] = { 1, 0x80 | PCP_OPCODE_MAP, 0, PCP_RESULT_UNSUPP_VERSION };

        h_clear(h);
        h_receive(h, sid, 0, b, sizeof(b));
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNSUPPORTED);
        assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_FAILED);
        assert_int_equal(h_mapping(h, id)->error, PCP_MAPPING_ERROR_UNSUPPORTED);
        assert_int_equal(h_count_events(h, PCP_EVENT_SERVER, 0), 1);
        /* quiet for 30 min, then probed again */
        h_clear_sent(h);
        h_advance(h, 30 * MINUTE - 1);
        assert_int_equal(h->n_sent, 0);
        h_advance(h, 6 * SEC);
        assert_true(h_count(h, PCP_OPCODE_ANNOUNCE) >= 1);
        assert_true(h_count_for(h, id) >= 1);
        h_free(h);
}

static void test_probe(void **state) {
        harness *h = h_new(43, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        pcp_msg m;

        /* sent at once, by add_server itself */
        assert_int_equal(h->n_sent, 1);
        h_decode(h_last(h), &m);
        assert_int_equal(m.opcode, PCP_OPCODE_ANNOUNCE);
        assert_int_equal(m.lifetime, 0);
        assert_memory_equal(&m.client_addr, IP(LOCAL), 16);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_UNKNOWN);
        /* the probe follows the RFC schedule */
        h_advance(h, HOUR);
        assert_in(h->n_sent, 10, 14);
        h_reply_announce(h, h_last(h), PCP_RESULT_SUCCESS, 0, 77);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_PCP);
        assert_true(h_srv(h, sid)->epoch_known);
        assert_int_equal(h_srv(h, sid)->epoch, 77);
        h_clear(h);
        h_advance(h, 24 * HOUR);
        assert_int_equal(h->n_sent, 0);
        assert_int_equal(pcp_engine_next_deadline(h->e), PCP_NEVER);
        /* removing the server drops its mappings with an event each */
        uint64_t id = h_map(h, sid, IPPROTO_TCP, 1, 60);
        assert_int_equal(pcp_engine_remove_server(h->e, h->now, sid), 0);
        h_drain(h);
        assert_false(h_last_event(h, PCP_EVENT_MAPPING_DELETED, id)->deleted_upstream);
        assert_null(pcp_engine_server_get(h->e, sid));
        assert_int_equal(pcp_engine_remove_server(h->e, h->now, sid), -ENOENT);
        h_drain(h);
        assert_int_equal(pcp_engine_mapping_count(h->e), 0);
        h_free(h);
}

/* ---- scale ---- */

static void test_scale(void **state) {
        /* all N at once (the in-flight bound: test-engine-inflight.c) */
        pcp_engine_config cfg = { .max_in_flight = UINT32_MAX };
        harness *h = h_new(47, &cfg);
        uint32_t sid = pcp_server(h);
        const size_t N = 131070;
        uint64_t t0, prev_deadline;
        size_t renewals = 0;

        h->record_events = false;
        for (uint32_t i = 0; i < N; i++) {
                uint16_t port = (uint16_t) (i / 2 + 1);
                uint8_t proto = i % 2 ? IPPROTO_UDP : IPPROTO_TCP;
                h_map(h, sid, proto, port, 3600);
        }
        assert_int_equal(pcp_engine_mapping_count(h->e), N);
        assert_int_equal(h->n_sent, N);
        /* answer them all */
        for (size_t k = 0; k < N; k++)
                h_reply(h, &h->sent[k], PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 40000);
        assert_int_equal(h->ev_count[PCP_EVENT_MAPPING], N);
        h_clear(h);
        t0 = h->now;

        /* a full renewal period, answering each renewal as it goes */
        prev_deadline = pcp_engine_next_deadline(h->e);
        assert_in(prev_deadline, t0 + 1800 * SEC, t0 + 2250 * SEC);
        while (pcp_engine_next_deadline(h->e) <= t0 + 2250 * SEC) {
                uint64_t d = pcp_engine_next_deadline(h->e);
                size_t before = h->n_sent;
                assert_true(d >= prev_deadline);
                prev_deadline = d;
                h_step(h);
                for (size_t k = before; k < h->n_sent; k++) {
                        h_reply(h, &h->sent[k], PCP_RESULT_SUCCESS, 3600, ep(h), EXT, 40000);
                        renewals++;
                }
                if (h->n_sent > 100000) {
                        h_clear_sent(h);
                }
        }
        assert_int_equal(renewals, N);
        assert_int_equal(pcp_engine_get_stats(h->e)->renewals, N);
        assert_int_equal(h->ev_count[PCP_EVENT_MAPPING], 2 * N); /* renewing, active */
        assert_int_equal(pcp_engine_mapping_count(h->e), N);
        assert_int_equal(h_srv(h, sid)->n_mappings, N);
        /* next round starts at half the lifetime after the earliest renewal */
        assert_true(pcp_engine_next_deadline(h->e) >= t0 + 1800 * SEC + 1800 * SEC);
        h_free(h);
}

int main(void) {
        static const bool pcp_kind = false, natpmp_kind = true;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_epoch_formula),
                cmocka_unit_test(test_probe),
                cmocka_unit_test(test_retransmit_schedule),
                cmocka_unit_test(test_renewal_windows),
                cmocka_unit_test(test_renewal_phase),
                cmocka_unit_test(test_renewal_answered),
                cmocka_unit_test(test_renewal_short_lifetime),
                cmocka_unit_test(test_delete),
                cmocka_unit_test(test_mapping_userdata),
                cmocka_unit_test(test_delete_gives_up),
                cmocka_unit_test(test_error_lifetimes),
                cmocka_unit_test(test_not_authorized),
                cmocka_unit_test(test_not_authorized_probe),
                cmocka_unit_test(test_address_mismatch),
                cmocka_unit_test(test_epoch_reset_response),
                cmocka_unit_test(test_epoch_reset_inflight),
                cmocka_unit_test(test_epoch_late_read),
                cmocka_unit_test(test_announce),
                cmocka_unit_test(test_unsolicited),
                cmocka_unit_test(test_drops),
                cmocka_unit_test(test_unreachable),
                cmocka_unit_test(test_icmp_needs_a_request),
                cmocka_unit_test(test_nonce_persistence),
        cmocka_unit_test(test_renewal_phase_from_nonce),
                cmocka_unit_test(test_options_and_prefix64),
                cmocka_unit_test(test_rare_options_each_alone),
                cmocka_unit_test(test_long_retransmission_timeout),
                cmocka_unit_test(test_natpmp_fallback),
                cmocka_unit_test(test_natpmp_pcp_returns),
                cmocka_unit_test(test_renewal_step_past_windows),
                cmocka_unit_test(test_natpmp_port_index),
                cmocka_unit_test(test_natpmp_short_error),
                cmocka_unit_test(test_version1_unsupported),
                /* state: true for NAT-PMP's "unsupported version", false for a PCP header of
                 * another version */
                cmocka_unit_test_prestate(test_forged_version, (void *) &pcp_kind),
                cmocka_unit_test_prestate(test_forged_version, (void *) &natpmp_kind),
                cmocka_unit_test_prestate(test_replaced_router, (void *) &natpmp_kind),
                cmocka_unit_test_prestate(test_replaced_router, (void *) &pcp_kind),
                cmocka_unit_test_prestate(test_settled_not_pcp_not_silent, (void *) &pcp_kind),
                cmocka_unit_test_prestate(test_settled_not_pcp_not_silent, (void *) &natpmp_kind),
                cmocka_unit_test(test_unsolicited_announce_answer),
                cmocka_unit_test(test_announce_hint_unknown),
                cmocka_unit_test(test_announce_hint_unreachable),
                cmocka_unit_test(test_announce_hint_natpmp),
                cmocka_unit_test(test_announce_hint_other_states),
                cmocka_unit_test_prestate(test_unreachable_router_back, (void *) &pcp_kind),
                cmocka_unit_test_prestate(test_unreachable_router_back, (void *) &natpmp_kind),
                cmocka_unit_test(test_unreachable_natpmp_hint),
                cmocka_unit_test(test_unsupp_option_request_options),
                cmocka_unit_test(test_server_silent),
                cmocka_unit_test(test_server_silent_only_while_asked),
                cmocka_unit_test(test_remove_server_while_asked),
                cmocka_unit_test(test_server_answering_never_silent),
                cmocka_unit_test(test_server_silent_natpmp),
                cmocka_unit_test(test_grant_rule_no_external_address),
                cmocka_unit_test(test_grant_rule_wrong_family),
                cmocka_unit_test(test_grant_rule_unusable_address),
                cmocka_unit_test(test_grant_rule_no_external_port),
                cmocka_unit_test(test_grant_rule_lifetime),
                cmocka_unit_test(test_grant_unsolicited_unusable),
                cmocka_unit_test(test_peer_answer_remote_mismatch),
                cmocka_unit_test(test_epoch_recreate_limit),
                cmocka_unit_test(test_announce_flood_limit),
                cmocka_unit_test(test_announce_recreate_event),
                cmocka_unit_test(test_announce_recreate_reset),
                cmocka_unit_test(test_announce_is_a_hint),
                cmocka_unit_test(test_natpmp_notice_recreate),
                cmocka_unit_test(test_natpmp_notice_is_a_hint),
                cmocka_unit_test(test_natpmp_addr_request_not_out),
                cmocka_unit_test(test_natpmp_addr_request_given_up),
                cmocka_unit_test(test_silent_server_fails_first_request),
                cmocka_unit_test(test_natpmp_notice_unused_server),
                cmocka_unit_test(test_scale),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
