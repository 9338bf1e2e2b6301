/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-codec: messages decoded and encoded per second on one core by the wire codec.
 *
 *   bench-codec                 every case, each run for about 0.5 s (best of 3 runs)
 *   bench-codec -n N            every case, exactly N iterations, one run
 *   bench-codec -c NAME [-n N]  one case only (for callgrind / perf stat)
 *
 * Each iteration changes one octet of the input (the low octet of the lifetime) so that
 * no call can be hoisted out of the loop, and folds a field of the result into a volatile
 * sink so that none can be dropped.
 */

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pcp-wire.h"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static volatile uint64_t sink;

typedef enum kind {
        KIND_PCP,
        KIND_NATPMP,
} kind;

typedef struct bench_case {
        const char *name;
        const char *what;
        kind kind;
        bool response;
        bool encode;
        size_t lifetime_lsb; /* offset of the octet varied per iteration */
        uint8_t wire[PCP_MAX_MSG_LEN];
        size_t len;
        pcp_msg pcp;
        natpmp_msg natpmp;
} bench_case;

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static void run_decode(bench_case *c, uint64_t n) {
        uint8_t buf[PCP_MAX_MSG_LEN];
        uint64_t acc = 0;

        memcpy(buf, c->wire, c->len);
        if (c->kind == KIND_PCP) {
                pcp_msg m;

                for (uint64_t i = 0; i < n; i++) {
                        buf[c->lifetime_lsb] = (uint8_t) i;
                        if (pcp_decode(buf, c->len, c->response, &m) != PCP_WIRE_OK)
                                abort();
                        acc += m.lifetime + m.external_port + m.n_filters + m.description_len;
                }
        } else {
                natpmp_msg m;

                for (uint64_t i = 0; i < n; i++) {
                        buf[c->lifetime_lsb] = (uint8_t) i;
                        if (natpmp_decode(buf, c->len, c->response, &m) != PCP_WIRE_OK)
                                abort();
                        acc += m.lifetime + m.external_port;
                }
        }
        sink += acc;
}

static void run_encode(bench_case *c, uint64_t n) {
        uint8_t out[PCP_MAX_MSG_LEN];
        uint64_t acc = 0;
        size_t len = 0;

        if (c->kind == KIND_PCP) {
                for (uint64_t i = 0; i < n; i++) {
                        c->pcp.lifetime = (uint32_t) i;
                        if (pcp_encode(&c->pcp, out, sizeof(out), &len) != PCP_WIRE_OK)
                                abort();
                        acc += len + out[len - 1] + out[7];
                }
        } else {
                for (uint64_t i = 0; i < n; i++) {
                        c->natpmp.lifetime = (uint32_t) i;
                        if (natpmp_encode(&c->natpmp, out, sizeof(out), &len) != PCP_WIRE_OK)
                                abort();
                        acc += len + out[len - 1];
                }
        }
        sink += acc;
}

static void run(bench_case *c, uint64_t n) {
        if (c->encode)
                run_encode(c, n);
        else
                run_decode(c, n);
}

/* ns per operation: with fixed > 0 exactly that many iterations once, otherwise about
 * 0.5 s of them, best of three runs (the least disturbed one). */
static double measure(bench_case *c, uint64_t fixed, uint64_t *ret_n) {
        uint64_t n = 1000;
        double best = 0, t, dt;

        if (fixed > 0) {
                t = now();
                run(c, fixed);
                dt = now() - t;
                *ret_n = fixed;
                return dt * 1e9 / (double) fixed;
        }
        /* grow the batch until one takes 0.1 s, then time three batches of 0.5 s */
        for (;;) {
                t = now();
                run(c, n);
                dt = now() - t;
                if (dt >= 0.1)
                        break;
                n *= dt < 0.01 ? 10 : 2;
        }
        n = (uint64_t) ((double) n * 0.5 / dt);
        for (int r = 0; r < 3; r++) {
                double ns;

                t = now();
                run(c, n);
                ns = (now() - t) * 1e9 / (double) n;
                if (r == 0 || ns < best)
                        best = ns;
        }
        *ret_n = n;
        return best;
}

static struct in6_addr addr(const char *s) {
        struct in6_addr a;

        if (!pcp_addr_from_string(s, &a))
                abort();
        return a;
}

/* A MAP response with a FILTER and a DESCRIPTION, as a server granting a mapping with
 * a description and one remote peer allowed would send it back. */
static void make_map_response(pcp_msg *m) {
        static const char descr[] = "pcpd: ssh from the office";

        pcp_msg_init(m, true, PCP_OPCODE_MAP);
        m->lifetime = 7200;
        m->epoch = 123456;
        for (size_t i = 0; i < PCP_NONCE_LEN; i++)
                m->nonce[i] = (uint8_t) (0xa1 + i);
        m->protocol = 6;
        m->internal_port = 22;
        m->external_port = 40022;
        m->external_addr = addr("203.0.113.7");
        m->n_filters = 1;
        m->filters[0] =
                (pcp_filter){.prefix_len = 96 + 24, .remote_port = 0, .remote_addr = addr("198.51.100.0")};
        m->options |= PCP_HAS_DESCRIPTION;
        m->description = descr;
        m->description_len = sizeof(descr) - 1;
}

static void make_peer_request(pcp_msg *m) {
        pcp_msg_init(m, false, PCP_OPCODE_PEER);
        m->lifetime = 300;
        m->client_addr = addr("2001:db8::2");
        for (size_t i = 0; i < PCP_NONCE_LEN; i++)
                m->nonce[i] = (uint8_t) (0xb1 + i);
        m->protocol = 17;
        m->internal_port = 5060;
        m->external_port = 5060;
        m->external_addr = addr("::");
        m->remote_port = 5061;
        m->remote_addr = addr("2001:db8:1::9");
}

static void make_natpmp_response(natpmp_msg *m) {
        *m = (natpmp_msg){
                .response = true,
                .opcode = NATPMP_OPCODE_MAP_UDP,
                .epoch = 123456,
                .internal_port = 5353,
                .external_port = 40000,
                .lifetime = 3600,
        };
}

static void setup(bench_case *cases, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bench_case *c = &cases[i];

                if (c->kind == KIND_PCP) {
                        if (c->response)
                                make_map_response(&c->pcp);
                        else
                                make_peer_request(&c->pcp);
                        if (pcp_encode(&c->pcp, c->wire, sizeof(c->wire), &c->len) != PCP_WIRE_OK)
                                abort();
                        c->lifetime_lsb = 7;
                } else {
                        make_natpmp_response(&c->natpmp);
                        if (natpmp_encode(&c->natpmp, c->wire, sizeof(c->wire), &c->len) != PCP_WIRE_OK)
                                abort();
                        c->lifetime_lsb = 15;
                }
        }
}

static void usage(FILE *f) {
        fprintf(f, "usage: bench-codec [-n ITERATIONS] [-c CASE]\ncases:");
        fprintf(f, " map-rsp-decode map-rsp-encode peer-req-decode peer-req-encode natpmp-rsp-decode "
                   "natpmp-rsp-encode\n");
}

int main(int argc, char **argv) {
        static bench_case cases[] = {
                {.name = "map-rsp-decode",
                 .what = "PCP MAP response + FILTER + DESCRIPTION",
                 .kind = KIND_PCP,
                 .response = true},
                {.name = "map-rsp-encode",
                 .what = "PCP MAP response + FILTER + DESCRIPTION",
                 .kind = KIND_PCP,
                 .response = true,
                 .encode = true},
                {.name = "peer-req-decode", .what = "PCP PEER request (IPv6)", .kind = KIND_PCP},
                {.name = "peer-req-encode",
                 .what = "PCP PEER request (IPv6)",
                 .kind = KIND_PCP,
                 .encode = true},
                {.name = "natpmp-rsp-decode",
                 .what = "NAT-PMP UDP map response",
                 .kind = KIND_NATPMP,
                 .response = true},
                {.name = "natpmp-rsp-encode",
                 .what = "NAT-PMP UDP map response",
                 .kind = KIND_NATPMP,
                 .response = true,
                 .encode = true},
        };
        const char *only = NULL;
        uint64_t fixed = 0;
        bool found = false;
        int opt;

        while ((opt = getopt(argc, argv, "n:c:h")) != -1) {
                char *end;

                switch (opt) {
                case 'n':
                        errno = 0;
                        fixed = strtoull(optarg, &end, 10);
                        if (errno != 0 || *end != '\0' || fixed == 0) {
                                fprintf(stderr, "bench-codec: bad iteration count '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'c':
                        only = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }

        setup(cases, ELEMENTSOF(cases));
        printf("%-18s %-40s %6s %12s %10s %14s\n", "case", "message", "octets", "iterations", "ns/op",
               "ops/s/core");
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                bench_case *c = &cases[i];
                uint64_t n;
                double ns;

                if (only != NULL && strcmp(only, c->name) != 0)
                        continue;
                found = true;
                ns = measure(c, fixed, &n);
                printf("%-18s %-40s %6zu %12llu %10.1f %14.0f\n", c->name, c->what, c->len,
                       (unsigned long long) n, ns, 1e9 / ns);
                fflush(stdout);
        }
        if (!found) {
                fprintf(stderr, "bench-codec: no case '%s'\n", only);
                usage(stderr);
                return 2;
        }
        return 0;
}
