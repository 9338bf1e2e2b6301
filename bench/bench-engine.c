/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-engine: the sans-I/O engine holding many mappings against an in-process
 * responder, on a virtual clock (nothing sleeps; hours of protocol time take seconds).
 *
 *   bench-engine [N] [--natpmp] [--lifetime SECONDS]
 *
 * The responder is written here on top of pcp-wire.h rather than using the refsrv core:
 * refsrv caps its table at REFSRV_MAX_MAPPINGS (4096) and its queue at REFSRV_MAX_QUEUE
 * (4096), and both are compile-time limits. The responder is stateless (it grants what
 * is asked, external port = internal port, at once), so every byte the process gains
 * while mappings are created is the engine's.
 *
 * Phases, each on a fresh engine:
 *   burst   N mappings created at t = 0 (a daemon starting with a full configuration),
 *           then two lifetimes of holding and renewing, and BURST_LIFETIMES - 2 more of
 *           which only the send histograms are kept (how fast the bunching dissolves).
 *   steady  N mappings created at evenly spread times over one lifetime, held for two
 *           more; the third lifetime is measured. Run twice: with the engine's default
 *           randomness (ops.random = NULL: getrandom(), 256 octets at a time) and with a
 *           userspace PRNG callback, to separate the engine's own work from the system
 *           calls.
 *
 * The engine's output is pulled after every call (drain()): its datagrams encoded straight
 * into the responder's queue, its events counted.
 *
 * Benchmarks are not tests: nothing here asserts a timing. The only checks are that
 * the run did what it claims (every mapping active at the end, no retransmissions).
 */

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pcp-engine.h"
#include "pcp-wire.h"

#define SEC ((uint64_t) 1000)
#define N_BUCKETS 60
#define BURST_LIFETIMES 8 /* lifetimes held after a burst creation (the 3rd.. are histograms only) */
#define PKT_MAX 64 /* the largest datagram either side sends here (PCP MAP: 60) */

typedef struct pkt {
        uint64_t at;
        uint16_t len;
        uint8_t data[PKT_MAX];
} pkt;

typedef struct pktq {
        pkt *q;
        size_t cap, head, n;
} pktq;

typedef struct histogram {
        uint64_t start, width; /* ms */
        uint64_t bucket[N_BUCKETS];
        uint64_t total, outside;
} histogram;

typedef struct bench {
        pcp_engine *e;
        uint32_t server_id;
        struct sockaddr_in6 server;
        struct in6_addr local;
        struct in6_addr external;
        bool natpmp;
        uint64_t lifetime_s;
        uint64_t now;
        pktq out; /* engine -> responder, in send order */
        histogram *hist; /* sends are counted here when set */
        uint64_t prng;
        uint64_t events, expired_events, oversize;
        uint64_t responses; /* produced by the responder */
        uint64_t prng_calls;
} bench;

/* ---- clocks and memory ---- */

static double cpu_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double wall_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

typedef struct memsnap {
        uint64_t heap; /* malloc'd and in use, including mmap'd chunks */
        uint64_t rss;
} memsnap;

static memsnap mem_now(void) {
        struct mallinfo2 mi = mallinfo2();
        memsnap m = {.heap = mi.uordblks + mi.hblkhd};
        unsigned long size, resident;
        FILE *f = fopen("/proc/self/statm", "re");

        if (f != NULL) {
                if (fscanf(f, "%lu %lu", &size, &resident) == 2)
                        m.rss = (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE);
                fclose(f);
        }
        return m;
}

/* ---- the packet queue (allocated and touched up front: not part of the measurement) ---- */

static int pktq_init(pktq *q, size_t cap) {
        q->q = malloc(cap * sizeof(pkt));
        if (q->q == NULL)
                return -ENOMEM;
        memset(q->q, 0, cap * sizeof(pkt));
        q->cap = cap;
        q->head = q->n = 0;
        return 0;
}

/* the slot the next packet goes to, NULL when full; pktq_commit() takes it */
static pkt *pktq_tail(pktq *q) {
        return q->n < q->cap ? &q->q[(q->head + q->n) % q->cap] : NULL;
}

static void pktq_commit(pktq *q, pkt *p, uint64_t at, size_t len) {
        p->at = at;
        p->len = (uint16_t) len;
        q->n++;
}

static bool pktq_pop(pktq *q, pkt *ret) {
        if (q->n == 0)
                return false;
        *ret = q->q[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        return true;
}

/* ---- histogram of send times ---- */

static void hist_start(histogram *h, uint64_t start, uint64_t span) {
        memset(h, 0, sizeof(*h));
        h->start = start;
        h->width = span / N_BUCKETS;
}

static void hist_add(histogram *h, uint64_t t) {
        uint64_t b;

        if (t < h->start || (b = (t - h->start) / h->width) >= N_BUCKETS) {
                h->outside++;
                return;
        }
        h->bucket[b]++;
        h->total++;
}

static double hist_peak_ratio(const histogram *h, size_t *ret_bucket) {
        uint64_t max = 0;
        size_t at = 0;

        for (size_t i = 0; i < N_BUCKETS; i++)
                if (h->bucket[i] > max) {
                        max = h->bucket[i];
                        at = i;
                }
        if (ret_bucket != NULL)
                *ret_bucket = at;
        return h->total > 0 ? (double) max / ((double) h->total / N_BUCKETS) : 0.0;
}

/* the peak ratio with the buckets of the creation burst (the first `skip`) left out */
static double hist_peak_ratio_from(const histogram *h, size_t skip) {
        uint64_t max = 0, total = 0;

        for (size_t i = skip; i < N_BUCKETS; i++) {
                total += h->bucket[i];
                if (h->bucket[i] > max)
                        max = h->bucket[i];
        }
        return total > 0 ? (double) max / ((double) total / (double) (N_BUCKETS - skip)) : 0.0;
}

static size_t hist_nonempty(const histogram *h) {
        size_t n = 0;
        for (size_t i = 0; i < N_BUCKETS; i++)
                n += h->bucket[i] > 0;
        return n;
}

static void hist_print(const char *title, const histogram *h) {
        uint64_t max = 1;

        for (size_t i = 0; i < N_BUCKETS; i++)
                if (h->bucket[i] > max)
                        max = h->bucket[i];
        printf("  %s (%" PRIu64 " s buckets, # = %" PRIu64 " packets)\n", title, h->width / SEC,
               (max + 49) / 50);
        for (size_t i = 0; i < N_BUCKETS; i++) {
                uint64_t bars = (h->bucket[i] * 50 + max - 1) / max;
                if (h->bucket[i] == 0)
                        continue;
                printf("    %5" PRIu64 " s %8" PRIu64 " ", (h->start + i * h->width) / SEC, h->bucket[i]);
                for (uint64_t j = 0; j < bars; j++)
                        putchar('#');
                putchar('\n');
        }
}

/* ---- the engine's output, pulled after every call ---- */

/* one that does not fit a queue slot (none here: no options): pulled, counted, dropped */
static __attribute__((noinline)) bool drop_oversize(bench *b) {
        uint8_t scratch[PCP_ENGINE_DATAGRAM_MAX];

        if (pcp_engine_next_datagram(b->e, NULL, NULL, scratch, sizeof(scratch)) <= 0)
                return false;
        b->oversize++;
        return true;
}

/* Datagrams are encoded by the engine straight into the queue's slots (no copy). Inlined
 * into the two loops that call it after every engine call. */
static inline __attribute__((always_inline)) void drain(bench *b) {
        pcp_event ev;
        int n;

        for (;;) {
                pkt *p = pktq_tail(&b->out);

                n = p != NULL ? pcp_engine_next_datagram(b->e, NULL, NULL, p->data, sizeof(p->data)) : -ENOBUFS;
                if (n == -ENOBUFS) {
                        if (!drop_oversize(b))
                                break;
                        continue;
                }
                if (n <= 0)
                        break;
                if (b->hist != NULL)
                        hist_add(b->hist, b->now);
                pktq_commit(&b->out, p, b->now, (size_t) n);
        }
        while (pcp_engine_next_event(b->e, &ev) > 0) {
                b->events++;
                if (ev.type == PCP_EVENT_MAPPING && ev.mapping->error == PCP_MAPPING_ERROR_EXPIRED)
                        b->expired_events++;
        }
}

/* splitmix64: not for nonces in production, only to take getrandom() out of the picture */
static void on_random(void *userdata, void *buf, size_t len) {
        bench *b = userdata;
        uint8_t *p = buf;

        b->prng_calls++;
        while (len > 0) {
                uint64_t z = (b->prng += 0x9e3779b97f4a7c15ULL);
                size_t k = len < 8 ? len : 8;
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
                z ^= z >> 31;
                memcpy(p, &z, k);
                p += k;
                len -= k;
        }
}

/* ---- the responder: stateless, grants everything, answers at once ---- */

static uint32_t server_epoch(const bench *b, uint64_t now) {
        return (uint32_t) (1000 + now / SEC); /* started 1000 s before the client */
}

/* Turns one request into its response. Returns the response length, 0 for no answer. */
static size_t respond(bench *b, uint64_t now, const uint8_t *req, size_t len, uint8_t *resp, size_t cap) {
        size_t n = 0;

        if (len >= 1 && req[0] == NATPMP_VERSION) {
                natpmp_msg q, r;

                if (!b->natpmp || natpmp_decode(req, len, false, &q) != PCP_WIRE_OK)
                        return 0;
                r = (natpmp_msg){
                        .response = true,
                        .opcode = q.opcode,
                        .result = NATPMP_RESULT_SUCCESS,
                        .epoch = server_epoch(b, now),
                        .internal_port = q.internal_port,
                        .external_port = q.lifetime > 0 ? q.internal_port : 0,
                        .lifetime = q.lifetime,
                };
                if (q.opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS)
                        (void) pcp_addr_to_ipv4(&b->external, &r.external_addr);
                return natpmp_encode(&r, resp, cap, &n) == PCP_WIRE_OK ? n : 0;
        }

        if (b->natpmp) {
                /* a NAT-PMP-only server answering PCP: 00 80 00 01 <epoch> */
                natpmp_msg r = {
                        .response = true,
                        .result = NATPMP_RESULT_UNSUPP_VERSION,
                        .epoch = server_epoch(b, now),
                };
                return natpmp_encode(&r, resp, cap, &n) == PCP_WIRE_OK ? n : 0;
        }

        pcp_msg q, r;
        if (pcp_decode(req, len, false, &q) != PCP_WIRE_OK)
                return 0;
        pcp_msg_init(&r, true, q.opcode);
        r.result = PCP_RESULT_SUCCESS;
        r.epoch = server_epoch(b, now);
        if (q.opcode == PCP_OPCODE_MAP) {
                r.lifetime = q.lifetime;
                memcpy(r.nonce, q.nonce, PCP_NONCE_LEN);
                r.protocol = q.protocol;
                r.internal_port = q.internal_port;
                r.external_addr = b->external;
                r.external_port = q.lifetime > 0 ? q.internal_port : 0;
        }
        return pcp_encode(&r, resp, cap, &n) == PCP_WIRE_OK ? n : 0;
}

/* ---- driving ---- */

typedef struct drive_stats {
        double cpu; /* process CPU time of the whole loop, responder included */
        double wall; /* the same on CLOCK_MONOTONIC */
        uint64_t engine_calls;
} drive_stats;

/* Answers everything queued (zero network delay), recursively: an answer may make the
 * engine send again. */
static void deliver_all(bench *b, drive_stats *st) {
        pkt p;
        uint8_t resp[PCP_MAX_MSG_LEN];

        while (pktq_pop(&b->out, &p)) {
                size_t n = respond(b, b->now, p.data, p.len, resp, sizeof(resp));
                if (n == 0)
                        continue;
                b->responses++;
                pcp_engine_receive(b->e, b->now, b->server_id, 0, &b->server, resp, n);
                drain(b);
                st->engine_calls++;
        }
}

/* Runs the virtual clock from b->now to `end`: each timer fires at its exact deadline. */
static void run_until(bench *b, uint64_t end, drive_stats *st) {
        for (;;) {
                uint64_t d;

                deliver_all(b, st);
                d = pcp_engine_next_deadline(b->e);
                if (d > end)
                        break;
                if (d > b->now)
                        b->now = d;
                pcp_engine_process_timers(b->e, b->now);
                drain(b);
                st->engine_calls++;
        }
        b->now = end;
}

/* Runs [now, end) with the CPU clock around it; kept out of line so that callgrind can
 * collect just this (--toggle-collect=measured_window). */
static __attribute__((noinline)) void measured_window(bench *b, uint64_t end, drive_stats *st) {
        double c0 = cpu_s(), w0 = wall_s();
        run_until(b, end, st);
        st->cpu += cpu_s() - c0;
        st->wall += wall_s() - w0;
}

static int bench_open(bench *b, size_t n, bool natpmp, uint64_t lifetime_s, bool fast_random) {
        pcp_engine_ops ops = {.random = fast_random ? on_random : NULL};
        pcp_engine_config cfg = {.max_mappings = n};
        pcp_server_addr a;
        drive_stats st = {0};
        int r;

        memset(b, 0, sizeof(*b));
        b->natpmp = natpmp;
        b->lifetime_s = lifetime_s;
        b->prng = 0x5eed;
        (void) pcp_addr_from_string("203.0.113.1", &b->external);
        memset(&a, 0, sizeof(a));
        a.remote.sin6_family = AF_INET6;
        a.remote.sin6_port = htons(PCP_SERVER_PORT);
        (void) pcp_addr_from_string("192.168.1.1", &a.remote.sin6_addr);
        (void) pcp_addr_from_string("192.168.1.10", &a.local);
        b->server = a.remote;
        b->local = a.local;
        r = pktq_init(&b->out, n + 64);
        if (r < 0)
                return r;
        r = pcp_engine_new(&cfg, &ops, b, &b->e);
        if (r < 0)
                return r;
        r = pcp_engine_add_server(b->e, b->now, &a, 1, &b->server_id);
        if (r < 0)
                return r;
        drain(b);
        run_until(b, b->now, &st); /* the probe and its answer */
        return 0;
}

static void bench_close(bench *b) {
        pcp_engine_free(b->e);
        free(b->out.q);
        b->e = NULL;
        b->out.q = NULL;
}

static void mapping_params(const bench *b, size_t i, pcp_mapping_params *p) {
        memset(p, 0, sizeof(*p));
        p->server_id = b->server_id;
        p->opcode = PCP_OPCODE_MAP;
        /* 131,070 = every internal port 1..65535, once for UDP and once for TCP */
        p->protocol = (i & 1) ? IPPROTO_TCP : IPPROTO_UDP;
        p->internal_port = (uint16_t) (i / 2 + 1);
        p->suggested_external_port = p->internal_port;
        p->lifetime = (uint32_t) b->lifetime_s;
}

static size_t count_active(bench *b, size_t n) {
        size_t active = 0;

        for (uint64_t id = 1; id <= n; id++) {
                const pcp_mapping_info *m = pcp_engine_mapping_get(b->e, id);
                if (m != NULL && (m->state == PCP_MAPPING_ACTIVE || m->state == PCP_MAPPING_RENEWING))
                        active++;
        }
        return active;
}

/* ---- responder cost, to take it out of the loop's CPU time ---- */

static double responder_ns(bool natpmp) {
        bench b;
        uint8_t req[PCP_MAX_MSG_LEN], resp[PCP_MAX_MSG_LEN];
        size_t len = 0, iters = 200000;
        volatile size_t sink = 0;
        double c0;

        memset(&b, 0, sizeof(b));
        b.natpmp = natpmp;
        (void) pcp_addr_from_string("203.0.113.1", &b.external);
        if (natpmp) {
                natpmp_msg q = {.opcode = NATPMP_OPCODE_MAP_UDP,
                                .internal_port = 4242,
                                .external_port = 4242,
                                .lifetime = 3600};
                (void) natpmp_encode(&q, req, sizeof(req), &len);
        } else {
                pcp_msg q;
                pcp_msg_init(&q, false, PCP_OPCODE_MAP);
                q.lifetime = 3600;
                (void) pcp_addr_from_string("192.168.1.10", &q.client_addr);
                memset(q.nonce, 0xab, PCP_NONCE_LEN);
                q.protocol = IPPROTO_UDP;
                q.internal_port = 4242;
                q.external_port = 4242;
                q.external_addr = b.external;
                (void) pcp_encode(&q, req, sizeof(req), &len);
        }
        c0 = cpu_s();
        for (size_t i = 0; i < iters; i++)
                sink += respond(&b, i, req, len, resp, sizeof(resp));
        (void) sink;
        return (cpu_s() - c0) / (double) iters * 1e9;
}

/* ---- phases ---- */

typedef struct results {
        size_t n;
        uint64_t lifetime_s;
        bool natpmp;
        /* burst */
        double create_cpu, create_wall, answer_cpu, answer_wall;
        memsnap mem_before, mem_after;
        size_t burst_active;
        histogram burst_h1, burst_h2;
        histogram burst_later[BURST_LIFETIMES - 2]; /* lifetimes 3..BURST_LIFETIMES */
        uint64_t burst_renewals2, burst_responses2;
        drive_stats burst_st2;
        /* steady, [0] getrandom, [1] PRNG */
        histogram steady_h[2];
        drive_stats steady_st[2];
        uint64_t steady_sent[2], steady_received[2], steady_renewals[2], steady_retrans[2],
                steady_responses[2];
        uint64_t steady_getrandom_draws, steady_prng_draws;
        size_t steady_active[2];
        memsnap steady_mem_before, steady_mem_after;
        double resp_ns;
        uint64_t expired, oversize;
} results;

static int phase_burst(results *R) {
        bench b;
        drive_stats st = {0};
        pcp_mapping_params p;
        uint64_t L = R->lifetime_s * SEC;
        const pcp_engine_stats *es;
        uint64_t renew0, resp0;
        double c0, w0;
        int r;

        r = bench_open(&b, R->n, R->natpmp, R->lifetime_s, false);
        if (r < 0)
                return r;
        R->mem_before = mem_now();
        b.hist = &R->burst_h1;
        hist_start(&R->burst_h1, 0, L);

        /* every request goes out at t = 0 */
        c0 = cpu_s();
        w0 = wall_s();
        for (size_t i = 0; i < R->n; i++) {
                mapping_params(&b, i, &p);
                r = pcp_engine_add_mapping(b.e, b.now, &p, NULL);
                if (r < 0) {
                        fprintf(stderr, "add_mapping %zu: %s\n", i, strerror(-r));
                        return r;
                }
                drain(&b);
        }
        R->create_cpu = cpu_s() - c0;
        R->create_wall = wall_s() - w0;
        /* ... and every answer comes back at t = 0 */
        c0 = cpu_s();
        w0 = wall_s();
        deliver_all(&b, &st);
        R->answer_cpu = cpu_s() - c0;
        R->answer_wall = wall_s() - w0;
        R->mem_after = mem_now();
        R->burst_active = count_active(&b, R->n);

        /* hold: first lifetime (creation burst + first renewals), then the second */
        run_until(&b, L, &st);
        hist_start(&R->burst_h2, L, L);
        b.hist = &R->burst_h2;
        es = pcp_engine_get_stats(b.e);
        renew0 = es->renewals;
        resp0 = b.responses;
        measured_window(&b, 2 * L, &R->burst_st2);
        R->burst_renewals2 = es->renewals - renew0;
        /* how fast the bunching dissolves: send histograms of the later lifetimes */
        for (int k = 0; k < BURST_LIFETIMES - 2; k++) {
                hist_start(&R->burst_later[k], (uint64_t) (k + 2) * L, L);
                b.hist = &R->burst_later[k];
                run_until(&b, (uint64_t) (k + 3) * L, &st);
        }
        R->burst_responses2 = b.responses - resp0;
        R->expired += b.expired_events;
        R->oversize += b.oversize;
        bench_close(&b);
        return 0;
}

static int phase_steady(results *R, int v) {
        bench b;
        drive_stats st = {0};
        pcp_mapping_params p;
        uint64_t L = R->lifetime_s * SEC;
        const pcp_engine_stats *es;
        pcp_engine_stats s0;
        uint64_t resp0, prng0;
        int r;

        r = bench_open(&b, R->n, R->natpmp, R->lifetime_s, v == 1);
        if (r < 0)
                return r;
        if (v == 0)
                R->steady_mem_before = mem_now();
        /* arrivals evenly spread over one lifetime */
        for (size_t i = 0; i < R->n; i++) {
                run_until(&b, (uint64_t) i * L / R->n, &st);
                mapping_params(&b, i, &p);
                r = pcp_engine_add_mapping(b.e, b.now, &p, NULL);
                if (r < 0) {
                        fprintf(stderr, "add_mapping %zu: %s\n", i, strerror(-r));
                        return r;
                }
                drain(&b);
        }
        if (v == 0)
                R->steady_mem_after = mem_now();
        run_until(&b, 2 * L, &st);

        es = pcp_engine_get_stats(b.e);
        s0 = *es;
        resp0 = b.responses;
        prng0 = b.prng_calls;
        hist_start(&R->steady_h[v], 2 * L, L);
        b.hist = &R->steady_h[v];
        measured_window(&b, 3 * L, &R->steady_st[v]);
        R->steady_sent[v] = es->sent - s0.sent;
        R->steady_received[v] = es->received - s0.received;
        R->steady_renewals[v] = es->renewals - s0.renewals;
        R->steady_retrans[v] = es->retransmissions - s0.retransmissions;
        R->steady_responses[v] = b.responses - resp0;
        if (v == 1)
                R->steady_prng_draws = b.prng_calls - prng0;
        R->steady_active[v] = count_active(&b, R->n);
        R->expired += b.expired_events;
        R->oversize += b.oversize;
        bench_close(&b);
        return 0;
}

/* ---- report ---- */

static double per(double x, double n) {
        return n > 0 ? x / n : 0.0;
}

static void report(const results *R) {
        double n = (double) R->n;
        double heap = (double) R->mem_after.heap - (double) R->mem_before.heap;
        double rss = (double) R->mem_after.rss - (double) R->mem_before.rss;
        double sheap = (double) R->steady_mem_after.heap - (double) R->steady_mem_before.heap;
        size_t peak_b1, peak_b2, peak_s;
        double r_b1 = hist_peak_ratio(&R->burst_h1, &peak_b1);
        double r_b2 = hist_peak_ratio(&R->burst_h2, &peak_b2);
        double r_s = hist_peak_ratio(&R->steady_h[0], &peak_s);

        printf("\nbench-engine: %zu mappings (%s), lifetime %" PRIu64
               " s, virtual clock, zero network delay\n",
               R->n, R->natpmp ? "NAT-PMP server" : "PCP server", R->lifetime_s);
        printf("responder: in-bench, stateless (pcp-wire decode+encode), %.0f ns CPU per answer\n\n",
               R->resp_ns);

        printf("%-52s %14s\n", "metric", "value");
        printf("%-52s %14s\n", "----------------------------------------------------", "--------------");
        printf("-- creation: all %zu at t = 0\n", R->n);
        printf("%-52s %11.3f s\n", "create (add_mapping x N, sends included), CPU", R->create_cpu);
        printf("%-52s %11.3f s\n", "create, wall", R->create_wall);
        printf("%-52s %11.3f s\n", "answer all (receive x N + responder), CPU", R->answer_cpu);
        printf("%-52s %11.3f s\n", "answer all, wall", R->answer_wall);
        printf("%-52s %11.2f us\n", "per mapping, create + answer, CPU",
               per(R->create_cpu + R->answer_cpu, n) * 1e6);
        printf("%-52s %8zu / %zu\n", "active after the answers", R->burst_active, R->n);
        printf("-- memory (engine only: the responder holds no state)\n");
        printf("%-52s %11.1f MiB\n", "heap growth (mallinfo2), burst", heap / 1048576.0);
        printf("%-52s %11.0f B\n", "heap per mapping, burst", per(heap, n));
        printf("%-52s %11.0f B\n", "heap per mapping, spread-out creation", per(sheap, n));
        printf("%-52s %11.1f MiB\n", "RSS growth (/proc/self/statm), burst", rss / 1048576.0);
        printf("%-52s %11.0f B\n", "RSS per mapping, burst", per(rss, n));
        printf("-- steady state: arrivals spread over a lifetime, 3rd lifetime measured\n");
        printf("%-52s %14" PRIu64 "\n", "renewals in one lifetime", R->steady_renewals[0]);
        printf("%-52s %14.3f\n", "  per mapping", per((double) R->steady_renewals[0], n));
        printf("%-52s %14.3f\n", "packets sent per mapping per lifetime",
               per((double) R->steady_sent[0], n));
        printf("%-52s %14.3f\n", "packets received per mapping per lifetime",
               per((double) R->steady_received[0], n));
        printf("%-52s %14" PRIu64 "\n", "retransmissions in the window", R->steady_retrans[0]);
        for (int v = 0; v < 2; v++) {
                const char *name = v == 0 ? "getrandom()" : "PRNG callback";
                double total = per(R->steady_st[v].cpu, (double) R->steady_renewals[v]) * 1e6;
                double resp = per((double) R->steady_responses[v] * R->resp_ns / 1e3,
                                  (double) R->steady_renewals[v]);
                char label[64];

                snprintf(label, sizeof(label), "CPU per renewal, loop total, %s", name);
                printf("%-52s %11.2f us\n", label, total);
                snprintf(label, sizeof(label), "CPU per renewal, engine (minus responder), %s", name);
                printf("%-52s %11.2f us\n", label, total - resp);
                snprintf(label, sizeof(label), "wall per renewal, loop total, %s", name);
                printf("%-52s %11.2f us\n", label,
                       per(R->steady_st[v].wall, (double) R->steady_renewals[v]) * 1e6);
        }
        printf("%-52s %14.2f\n", "random draws per renewal (PRNG run)",
               per((double) R->steady_prng_draws, (double) R->steady_renewals[1]));
        printf("%-52s %11.3f s\n", "CPU for one lifetime of all mappings (getrandom)", R->steady_st[0].cpu);
        printf("%-52s %11.4f %%\n", "  = share of one core",
               R->steady_st[0].cpu / (double) R->lifetime_s * 100.0);
        printf("%-52s %14.3f\n", "send-time histogram max/mean, steady", r_s);
        printf("%-52s %8zu / %d\n", "  buckets with sends", hist_nonempty(&R->steady_h[0]), N_BUCKETS);
        printf("%-52s %8zu / %zu\n", "active at the end", R->steady_active[0], R->n);
        printf("-- burst creation, held: send times\n");
        printf("%-52s %14.3f\n", "histogram max/mean, 1st lifetime (creation incl.)", r_b1);
        printf("%-52s %14.3f\n", "  the same without the creation bucket",
               hist_peak_ratio_from(&R->burst_h1, 1));
        printf("%-52s %8zu / %d\n", "  buckets with sends", hist_nonempty(&R->burst_h1), N_BUCKETS);
        printf("%-52s %14.3f\n", "histogram max/mean, 2nd lifetime", r_b2);
        printf("%-52s %8zu / %d\n", "  buckets with sends", hist_nonempty(&R->burst_h2), N_BUCKETS);
        for (int k = 0; k < BURST_LIFETIMES - 2; k++) {
                char label[64];
                snprintf(label, sizeof(label), "histogram max/mean, lifetime %d", k + 3);
                printf("%-52s %14.3f   (%zu / %d buckets)\n", label, hist_peak_ratio(&R->burst_later[k], NULL),
                       hist_nonempty(&R->burst_later[k]), N_BUCKETS);
        }
        printf("%-52s %11.2f us\n", "CPU per renewal, 2nd lifetime, loop total",
               per(R->burst_st2.cpu, (double) R->burst_renewals2) * 1e6);
        printf("%-52s %11.2f us\n", "wall per renewal, 2nd lifetime, loop total",
               per(R->burst_st2.wall, (double) R->burst_renewals2) * 1e6);
        printf("%-52s %14" PRIu64 "\n", "mappings that expired (should be 0)", R->expired);
        printf("%-52s %14" PRIu64 "\n", "datagrams the bench could not queue (should be 0)", R->oversize);

        printf("\nsend times, N = %zu:\n", R->n);
        hist_print("burst creation, 1st lifetime", &R->burst_h1);
        hist_print("burst creation, 2nd lifetime", &R->burst_h2);
        hist_print("spread-out creation, 3rd lifetime", &R->steady_h[0]);
}

static void usage(const char *argv0) {
        fprintf(stderr,
                "usage: %s [N] [--natpmp] [--lifetime SECONDS] [--steady-prng-only]\n"
                "  N: mappings, 1..131070 (default 10000)\n"
                "  --steady-prng-only: only the steady phase with the PRNG callback, for\n"
                "    valgrind --tool=callgrind --toggle-collect=measured_window\n",
                argv0);
}

int main(int argc, char **argv) {
        static results R;
        double w0 = wall_s();
        bool steady_only = false;
        int r;

        R.n = 10000;
        R.lifetime_s = 3600;
        for (int i = 1; i < argc; i++) {
                char *end;
                if (strcmp(argv[i], "--natpmp") == 0)
                        R.natpmp = true;
                else if (strcmp(argv[i], "--steady-prng-only") == 0)
                        steady_only = true;
                else if (strcmp(argv[i], "--lifetime") == 0 && i + 1 < argc) {
                        R.lifetime_s = strtoull(argv[++i], &end, 10);
                        if (*end != '\0' || R.lifetime_s < 120 || R.lifetime_s > 86400) {
                                usage(argv[0]);
                                return 2;
                        }
                } else {
                        unsigned long v = strtoul(argv[i], &end, 10);
                        if (*end != '\0' || v == 0 || v > 131070) {
                                usage(argv[0]);
                                return 2;
                        }
                        R.n = v;
                }
        }

        if (steady_only) {
                r = phase_steady(&R, 1);
                if (r < 0) {
                        fprintf(stderr, "bench-engine: %s\n", strerror(-r));
                        return 1;
                }
                printf("%zu mappings, steady phase, PRNG callback: %" PRIu64 " renewals, %" PRIu64
                       " packets sent, %" PRIu64 " received in measured_window(), %.3f s CPU\n",
                       R.n, R.steady_renewals[1], R.steady_sent[1], R.steady_received[1],
                       R.steady_st[1].cpu);
                return 0;
        }
        R.resp_ns = responder_ns(R.natpmp);
        r = phase_burst(&R);
        if (r >= 0)
                r = phase_steady(&R, 0);
        if (r >= 0)
                r = phase_steady(&R, 1);
        if (r < 0) {
                fprintf(stderr, "bench-engine: %s\n", strerror(-r));
                return 1;
        }
        report(&R);
        printf("\ntotal wall time %.1f s\n", wall_s() - w0);
        return 0;
}
