/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * pcp-refserver: the reference PCP/NAT-PMP server (refsrv.c) on real UDP sockets, for
 * loopback and network-namespace tests and the demo. A plain poll() loop.
 *
 *   pcp-refserver [OPTIONS]             run the server; prints "ready" when listening
 *   pcp-refserver ctl PATH COMMAND...   send one command to a running server
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "refsrv.h"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define MAX_LISTEN 16
#define MAX_CTL_CONNS 8
#define MAX_CMD_LEN 512
#define MAX_ARGS 8

typedef struct listener {
        int family;
        struct in6_addr addr; /* IPv4-mapped for IPv4 */
        bool wildcard;
        int fd;     /* bound to the server port */
        int alt_fd; /* bound to an ephemeral port: spoofed replies */
} listener;

typedef struct ctl_conn {
        int fd;
        size_t len;
        char buf[MAX_CMD_LEN + 1];
} ctl_conn;

typedef struct server {
        refsrv *core;
        listener listeners[MAX_LISTEN];
        size_t n_listeners;
        uint16_t port;
        int ctl_fd;
        char *ctl_path;
        ctl_conn conns[MAX_CTL_CONNS];
        FILE *log;
        uint64_t start_ms;
        double drop_requests, drop_responses;
        bool quit;
} server;

static uint64_t mono_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static uint64_t now_ms(const server *srv) {
        return mono_ms() - srv->start_ms;
}

/* ---- parsing helpers ---- */

static int parse_uint(const char *s, uint64_t max, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (s == NULL || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0' || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int parse_fraction(const char *s, double *ret) {
        char *end;
        double v;

        if (s == NULL || *s == '\0')
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno != 0 || *end != '\0' || !(v >= 0.0 && v <= 1.0))
                return -ERANGE;
        *ret = v;
        return 0;
}

static void sockaddr_to_mapped(const struct sockaddr_storage *ss, struct sockaddr_in6 *ret) {
        memset(ret, 0, sizeof(*ret));
        ret->sin6_family = AF_INET6;
        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) ss;
                pcp_addr_from_ipv4(&in->sin_addr, &ret->sin6_addr);
                ret->sin6_port = in->sin_port;
        } else {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) ss;
                *ret = *in6;
        }
}

static socklen_t mapped_to_sockaddr(const struct sockaddr_in6 *a, struct sockaddr_storage *ret) {
        struct in_addr v4;

        memset(ret, 0, sizeof(*ret));
        if (pcp_addr_to_ipv4(&a->sin6_addr, &v4)) {
                struct sockaddr_in *in = (struct sockaddr_in *) ret;
                in->sin_family = AF_INET;
                in->sin_addr = v4;
                in->sin_port = a->sin6_port;
                return sizeof(*in);
        }
        memcpy(ret, a, sizeof(*a));
        return sizeof(*a);
}

/* ---- log ---- */

static void log_hex(FILE *f, const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%02x", p[i]);
}

static void log_request(server *srv, const refsrv_record *r) {
        char a[PCP_ADDR_STRLEN];
        const char *rn;

        if (srv->log == NULL || r == NULL)
                return;
        rn = r->result < 0 ? NULL : r->version == 0 ? natpmp_result_to_string((uint16_t) r->result)
                                                     : pcp_result_to_string((uint8_t) r->result);
        fprintf(srv->log,
                "{\"event\":\"request\",\"time_ms\":%" PRIu64 ",\"src\":\"%s\",\"src_port\":%u,\"len\":%zu,"
                "\"version\":%u,\"opcode\":%u,\"decoded\":%s,\"lifetime\":%" PRIu32 ",\"nonce\":\"",
                r->time_ms, pcp_addr_to_string(&r->src.sin6_addr, a), ntohs(r->src.sin6_port), r->len, r->version,
                r->opcode, r->decoded ? "true" : "false", r->lifetime);
        log_hex(srv->log, r->nonce, sizeof(r->nonce));
        fprintf(srv->log,
                "\",\"protocol\":%u,\"internal_port\":%u,\"external_port\":%u,\"dropped\":%s,"
                "\"response_dropped\":%s,\"result\":%d,\"result_name\":\"%s\",\"result_lifetime\":%" PRIu32
                ",\"assigned_port\":%u,\"note\":\"%s\"}\n",
                r->protocol, r->internal_port, r->external_port, r->dropped ? "true" : "false",
                r->response_dropped ? "true" : "false", r->result, rn != NULL ? rn : "",
                r->result_lifetime, r->assigned_port, r->note != NULL ? r->note : "");
        fflush(srv->log);
}

static void log_send(server *srv, uint64_t t, const refsrv_datagram *d, int err) {
        static const char *const kinds[] = { "response", "announce", "unsolicited" };
        char a[PCP_ADDR_STRLEN];

        if (srv->log == NULL)
                return;
        fprintf(srv->log,
                "{\"event\":\"send\",\"time_ms\":%" PRIu64 ",\"kind\":\"%s\",\"dst\":\"%s\",\"dst_port\":%u,"
                "\"len\":%zu,\"alt_source\":%s,\"malformed\":%s,\"error\":%d,",
                t, kinds[d->kind], pcp_addr_to_string(&d->dst.sin6_addr, a), ntohs(d->dst.sin6_port), d->len,
                d->alt_source ? "true" : "false", d->malformed ? "true" : "false", err);
        if (d->len >= 4)
                fprintf(srv->log, "\"version\":%u,\"opcode\":%u,\"result\":%u,", d->data[0], d->data[1] & 0x7f,
                        d->data[0] == 0 ? (unsigned) (d->data[2] << 8 | d->data[3]) : d->data[3]);
        fputs("\"data\":\"", srv->log);
        log_hex(srv->log, d->data, d->len);
        fputs("\"}\n", srv->log);
        fflush(srv->log);
}

/* ---- UDP ---- */

static int listener_open(listener *l, uint16_t port) {
        struct sockaddr_storage ss;
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = l->addr, .sin6_port = htons(port) };
        socklen_t sl;
        int one = 1;
        int fds[2] = { -1, -1 };

        for (int i = 0; i < 2; i++) {
                fds[i] = socket(l->family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fds[i] < 0)
                        goto fail;
                if (l->family == AF_INET6) {
                        if (setsockopt(fds[i], IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0 ||
                            setsockopt(fds[i], IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
                                goto fail;
                } else if (setsockopt(fds[i], IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0)
                        goto fail;
                sa.sin6_port = htons(i == 0 ? port : 0);
                sl = mapped_to_sockaddr(&sa, &ss);
                if (bind(fds[i], (struct sockaddr *) &ss, sl) < 0)
                        goto fail;
        }
        l->fd = fds[0];
        l->alt_fd = fds[1];
        return 0;
fail:;
        int r = -errno;
        for (int i = 0; i < 2; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        return r;
}

static void handle_udp(server *srv, listener *l) {
        for (int budget = 0; budget < 64; budget++) {
                uint8_t buf[2048];
                struct sockaddr_storage ss;
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
                } control;
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
                struct msghdr mh = {
                        .msg_name = &ss,
                        .msg_namelen = sizeof(ss),
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                struct sockaddr_in6 src;
                struct in6_addr local = l->addr;
                uint64_t before;
                ssize_t n;

                n = recvmsg(l->fd, &mh, MSG_DONTWAIT);
                if (n < 0)
                        return; /* EAGAIN or an ICMP error: nothing more now */
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
                        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                                struct in_pktinfo pi;
                                memcpy(&pi, CMSG_DATA(c), sizeof(pi));
                                pcp_addr_from_ipv4(&pi.ipi_addr, &local);
                        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
                                struct in6_pktinfo pi;
                                memcpy(&pi, CMSG_DATA(c), sizeof(pi));
                                local = pi.ipi6_addr;
                        }
                }
                sockaddr_to_mapped(&ss, &src);
                before = refsrv_records_total(srv->core);
                refsrv_receive(srv->core, now_ms(srv), &src, &local, buf, (size_t) n);
                if (refsrv_records_total(srv->core) > before)
                        log_request(srv, refsrv_get_record(srv->core, refsrv_n_records(srv->core) - 1));
        }
}

static listener *pick_listener(server *srv, const refsrv_datagram *d) {
        bool v4 = pcp_addr_is_ipv4(&d->dst.sin6_addr);
        listener *fallback = NULL;

        for (size_t i = 0; i < srv->n_listeners; i++) {
                listener *l = &srv->listeners[i];
                if ((l->family == AF_INET) != v4)
                        continue;
                if (memcmp(&l->addr, &d->local_addr, sizeof(l->addr)) == 0)
                        return l;
                if (fallback == NULL || l->wildcard)
                        fallback = l;
        }
        return fallback;
}

static void flush_output(server *srv) {
        refsrv_datagram d;
        uint64_t t = now_ms(srv);

        while (refsrv_pop(srv->core, t, &d) > 0) {
                struct sockaddr_storage ss;
                socklen_t sl = mapped_to_sockaddr(&d.dst, &ss);
                listener *l = pick_listener(srv, &d);
                int err = 0;

                if (l == NULL)
                        err = -EAFNOSUPPORT;
                else if (sendto(d.alt_source ? l->alt_fd : l->fd, d.data, d.len, MSG_DONTWAIT,
                                (struct sockaddr *) &ss, sl) < 0)
                        err = -errno;
                log_send(srv, t, &d, err);
        }
}

/* ---- control commands ---- */

typedef struct reply {
        char *buf;
        size_t len, cap;
        bool oom;
} reply;

static void __attribute__((format(printf, 2, 3))) reply_add(reply *r, const char *fmt, ...) {
        va_list ap;
        int n;

        if (r->oom)
                return;
        for (;;) {
                size_t room = r->cap - r->len;
                va_start(ap, fmt);
                n = vsnprintf(r->buf != NULL ? r->buf + r->len : NULL, room, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        r->oom = true;
                        return;
                }
                if ((size_t) n < room) {
                        r->len += (size_t) n;
                        return;
                }
                size_t ncap = (r->cap + (size_t) n + 1) * 2;
                char *nb = realloc(r->buf, ncap);
                if (nb == NULL) {
                        r->oom = true;
                        return;
                }
                r->buf = nb;
                r->cap = ncap;
        }
}

static const char *ctl_help =
        "commands: drop-requests FRACTION | drop-responses FRACTION | delay MS | restart [keep-state] [silent] |\n"
        "  external ADDR | mode pcp|natpmp|both | version 1|2 | result NAME|clear [COUNT] [LIFETIME] |\n"
        "  malformed KIND|clear [COUNT] [also-valid] | spoof [COUNT] [also-valid] |\n"
        "  grant zero|zero-address|zero-port|wrong-family|loopback|zero-lifetime|clear [COUNT] |\n"
        "  epoch random|normal | announce | dump | stats | help | quit";

static void dump_mappings(server *srv, reply *r) {
        uint64_t t = now_ms(srv);
        size_t n = refsrv_n_mappings(srv->core);

        reply_add(r, "ok %zu mappings, epoch %" PRIu32 "\n", n, refsrv_epoch(srv->core, t));
        for (size_t i = 0; i < n; i++) {
                const refsrv_mapping *m = refsrv_get_mapping(srv->core, i);
                char ia[PCP_ADDR_STRLEN], ea[PCP_ADDR_STRLEN], ra[PCP_ADDR_STRLEN];
                const char *proto = pcp_protocol_to_string(m->protocol);

                reply_add(r, "%s %s %s:%u -> %s:%u", m->natpmp ? "natpmp" : m->peer ? "peer" : "map",
                          proto != NULL ? proto : "?", pcp_addr_to_string(&m->internal_addr, ia), m->internal_port,
                          pcp_addr_to_string(&m->external_addr, ea), m->external_port);
                if (m->peer)
                        reply_add(r, " remote %s:%u", pcp_addr_to_string(&m->remote_addr, ra), m->remote_port);
                reply_add(r, " lifetime %" PRIu32 " remaining %" PRIu64 " nonce ", m->lifetime,
                          m->expires_ms > t ? (m->expires_ms - t) / 1000 : 0);
                for (size_t k = 0; k < PCP_NONCE_LEN; k++)
                        reply_add(r, "%02x", m->nonce[k]);
                if (m->description[0] != '\0')
                        reply_add(r, " description \"%s\"", m->description);
                reply_add(r, "\n");
        }
}

/* Parses "[COUNT] [also-valid]" from argv[i..]. */
static int parse_count_flag(int argc, char **argv, int i, unsigned *count, bool *also_valid, reply *r) {
        uint64_t v;

        *count = 1;
        *also_valid = false;
        if (i < argc && strcmp(argv[i], "also-valid") != 0) {
                if (parse_uint(argv[i], UINT_MAX, &v) < 0) {
                        reply_add(r, "error: '%s' is not a count (0 means until cleared).\n", argv[i]);
                        return -EINVAL;
                }
                *count = (unsigned) v;
                i++;
        }
        if (i < argc && strcmp(argv[i], "also-valid") == 0) {
                *also_valid = true;
                i++;
        }
        if (i < argc) {
                reply_add(r, "error: unexpected argument '%s'.\n", argv[i]);
                return -EINVAL;
        }
        return 0;
}

static void run_command(server *srv, char *line, reply *r) {
        char *argv[MAX_ARGS + 1];
        int argc = 0;
        char *save = NULL;
        uint64_t t = now_ms(srv), v;
        double f;

        for (char *tok = strtok_r(line, " \t\r\n", &save); tok != NULL; tok = strtok_r(NULL, " \t\r\n", &save)) {
                if (argc == MAX_ARGS) {
                        reply_add(r, "error: too many arguments (at most %d).\n", MAX_ARGS);
                        return;
                }
                argv[argc++] = tok;
        }
        argv[argc] = NULL;
        if (argc == 0) {
                reply_add(r, "error: empty command; try 'help'.\n");
                return;
        }

#define NEED_ARGS(lo, hi)                                                                            \
        do {                                                                                         \
                if (argc - 1 < (lo) || argc - 1 > (hi)) {                                            \
                        reply_add(r, "error: '%s' takes %d to %d arguments; try 'help'.\n", argv[0], \
                                  (lo), (hi));                                                       \
                        return;                                                                      \
                }                                                                                    \
        } while (0)

        if (strcmp(argv[0], "help") == 0) {
                reply_add(r, "ok\n%s\n", ctl_help);
        } else if (strcmp(argv[0], "drop-requests") == 0 || strcmp(argv[0], "drop-responses") == 0) {
                NEED_ARGS(1, 1);
                if (parse_fraction(argv[1], &f) < 0) {
                        reply_add(r, "error: '%s' is not a fraction between 0 and 1.\n", argv[1]);
                        return;
                }
                if (strcmp(argv[0], "drop-requests") == 0)
                        srv->drop_requests = f;
                else
                        srv->drop_responses = f;
                (void) refsrv_set_drop(srv->core, srv->drop_requests, srv->drop_responses);
                reply_add(r, "ok %s %g\n", argv[0], f);
        } else if (strcmp(argv[0], "delay") == 0) {
                NEED_ARGS(1, 1);
                if (parse_uint(argv[1], 3600000, &v) < 0) {
                        reply_add(r, "error: '%s' is not a delay in milliseconds (0-3600000).\n", argv[1]);
                        return;
                }
                refsrv_set_delay(srv->core, v);
                reply_add(r, "ok delay %" PRIu64 " ms\n", v);
        } else if (strcmp(argv[0], "restart") == 0) {
                unsigned flags = REFSRV_RESTART_ANNOUNCE;
                NEED_ARGS(0, 2);
                for (int i = 1; i < argc; i++) {
                        if (strcmp(argv[i], "keep-state") == 0)
                                flags |= REFSRV_RESTART_KEEP_STATE;
                        else if (strcmp(argv[i], "silent") == 0)
                                flags &= ~REFSRV_RESTART_ANNOUNCE;
                        else {
                                reply_add(r, "error: unknown restart option '%s' (keep-state, silent).\n", argv[i]);
                                return;
                        }
                }
                refsrv_restart(srv->core, t, flags);
                reply_add(r, "ok restarted, epoch 0, %s\n",
                          (flags & REFSRV_RESTART_KEEP_STATE) ? "mappings kept" : "mappings lost");
        } else if (strcmp(argv[0], "external") == 0) {
                struct in6_addr a;
                NEED_ARGS(1, 1);
                if (!pcp_addr_from_string(argv[1], &a) || refsrv_set_external(srv->core, t, &a) < 0) {
                        reply_add(r, "error: '%s' is not a usable IPv4 address.\n", argv[1]);
                        return;
                }
                reply_add(r, "ok external %s, epoch 0\n", argv[1]);
        } else if (strcmp(argv[0], "mode") == 0) {
                int m;
                NEED_ARGS(1, 1);
                m = refsrv_mode_from_string(argv[1]);
                if (m < 0) {
                        reply_add(r, "error: unknown mode '%s' (pcp, natpmp, both).\n", argv[1]);
                        return;
                }
                (void) refsrv_set_mode(srv->core, (refsrv_mode) m);
                reply_add(r, "ok mode %s\n", refsrv_mode_to_string((refsrv_mode) m));
        } else if (strcmp(argv[0], "version") == 0) {
                NEED_ARGS(1, 1);
                if (parse_uint(argv[1], 255, &v) < 0 || refsrv_set_max_version(srv->core, (uint8_t) v) < 0) {
                        reply_add(r, "error: version must be 1 or 2.\n");
                        return;
                }
                reply_add(r, "ok version %" PRIu64 "\n", v);
        } else if (strcmp(argv[0], "result") == 0) {
                uint64_t count = 1, lifetime = REFSRV_LIFETIME_DEFAULT;
                int code;
                NEED_ARGS(1, 3);
                if (strcmp(argv[1], "clear") == 0) {
                        if (argc > 2) {
                                reply_add(r, "error: 'result clear' takes no arguments.\n");
                                return;
                        }
                        refsrv_clear_forced_result(srv->core);
                        reply_add(r, "ok result cleared\n");
                        return;
                }
                code = pcp_result_from_string(argv[1]);
                if (code < 0 && parse_uint(argv[1], _PCP_RESULT_MAX - 1, &v) == 0)
                        code = (int) v;
                if (code < 0) {
                        reply_add(r, "error: unknown result '%s' (a name like NOT_AUTHORIZED or 0-13).\n",
                                  argv[1]);
                        return;
                }
                if (argc > 2 && parse_uint(argv[2], UINT_MAX, &count) < 0) {
                        reply_add(r, "error: '%s' is not a count (0 means until cleared).\n", argv[2]);
                        return;
                }
                if (argc > 3 && parse_uint(argv[3], UINT32_MAX - 1, &lifetime) < 0) {
                        reply_add(r, "error: '%s' is not a lifetime in seconds.\n", argv[3]);
                        return;
                }
                (void) refsrv_force_result(srv->core, (uint8_t) code, (unsigned) count, (uint32_t) lifetime);
                reply_add(r, "ok result %s for %s\n", pcp_result_to_string((uint8_t) code),
                          count == 0 ? "every request until cleared" : argv[2] != NULL ? argv[2] : "1");
        } else if (strcmp(argv[0], "malformed") == 0 || strcmp(argv[0], "spoof") == 0) {
                bool spoof = argv[0][0] == 's';
                unsigned count;
                bool also_valid;
                int kind;

                if (spoof)
                        kind = REFSRV_FAULT_SPOOF;
                else {
                        NEED_ARGS(1, 3);
                        if (strcmp(argv[1], "clear") == 0) {
                                refsrv_clear_fault(srv->core);
                                reply_add(r, "ok malformed cleared\n");
                                return;
                        }
                        kind = refsrv_fault_from_string(argv[1]);
                        if (kind <= REFSRV_FAULT_NONE) {
                                reply_add(r, "error: unknown kind '%s' (truncated, bad-r-bit, wrong-nonce, "
                                             "wrong-opcode, wrong-protocol, wrong-port, wrong-version, bad-result, "
                                             "garbage, spoof).\n", argv[1]);
                                return;
                        }
                }
                if (parse_count_flag(argc, argv, spoof ? 1 : 2, &count, &also_valid, r) < 0)
                        return;
                (void) refsrv_set_fault(srv->core, (refsrv_fault) kind, count, also_valid);
                reply_add(r, "ok next %u%s responses %s%s\n", count, count == 0 ? " (unlimited)" : "",
                          refsrv_fault_to_string((refsrv_fault) kind), also_valid ? ", then the valid one" : "");
        } else if (strcmp(argv[0], "grant") == 0) {
                /* SUCCESS answers that are no usable grant (refsrv_set_grant_fault()) */
                int kind;
                NEED_ARGS(1, 2);
                kind = strcmp(argv[1], "clear") == 0 ? REFSRV_GRANT_OK : refsrv_grant_fault_from_string(argv[1]);
                if (kind < 0 || (kind == REFSRV_GRANT_OK && strcmp(argv[1], "clear") != 0)) {
                        reply_add(r, "error: unknown grant fault '%s' (zero, zero-address, zero-port, wrong-family, "
                                     "loopback, zero-lifetime, clear).\n", argv[1]);
                        return;
                }
                v = 0;
                if (argc > 2 && parse_uint(argv[2], UINT_MAX, &v) < 0) {
                        reply_add(r, "error: '%s' is not a count (0 means until cleared).\n", argv[2]);
                        return;
                }
                (void) refsrv_set_grant_fault(srv->core, (refsrv_grant_fault) kind, (unsigned) v);
                if (kind == REFSRV_GRANT_OK)
                        reply_add(r, "ok grant fault cleared\n");
                else
                        reply_add(r, "ok next %" PRIu64 "%s grants %s\n", v, v == 0 ? " (unlimited)" : "",
                                  refsrv_grant_fault_to_string((refsrv_grant_fault) kind));
        } else if (strcmp(argv[0], "epoch") == 0) {
                NEED_ARGS(1, 1);
                if (strcmp(argv[1], "random") != 0 && strcmp(argv[1], "normal") != 0) {
                        reply_add(r, "error: epoch takes 'random' or 'normal', not '%s'.\n", argv[1]);
                        return;
                }
                refsrv_set_random_epoch(srv->core, strcmp(argv[1], "random") == 0);
                reply_add(r, "ok epoch %s\n", argv[1]);
        } else if (strcmp(argv[0], "announce") == 0) {
                NEED_ARGS(0, 0);
                refsrv_announce(srv->core, t);
                reply_add(r, "ok announced\n");
        } else if (strcmp(argv[0], "dump") == 0) {
                NEED_ARGS(0, 0);
                dump_mappings(srv, r);
        } else if (strcmp(argv[0], "stats") == 0) {
                refsrv_stats st;
                NEED_ARGS(0, 0);
                refsrv_get_stats(srv->core, &st);
                reply_add(r,
                          "ok received=%" PRIu64 " dropped_requests=%" PRIu64 " dropped_responses=%" PRIu64
                          " responses=%" PRIu64 " announces=%" PRIu64 " unsolicited=%" PRIu64
                          " malformed_sent=%" PRIu64 " queue_overflows=%" PRIu64 " expired=%" PRIu64
                          " mappings=%zu epoch=%" PRIu32 "\n",
                          st.received, st.dropped_requests, st.dropped_responses, st.responses, st.announces,
                          st.unsolicited, st.malformed_sent, st.queue_overflows, st.expired,
                          refsrv_n_mappings(srv->core), refsrv_epoch(srv->core, t));
        } else if (strcmp(argv[0], "quit") == 0) {
                NEED_ARGS(0, 0);
                srv->quit = true;
                reply_add(r, "ok bye\n");
        } else
                reply_add(r, "error: unknown command '%s'; try 'help'.\n", argv[0]);
#undef NEED_ARGS
}

static void ctl_close(ctl_conn *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        c->len = 0;
}

static void ctl_accept(server *srv) {
        int fd = accept4(srv->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
                return;
        for (size_t i = 0; i < MAX_CTL_CONNS; i++)
                if (srv->conns[i].fd < 0) {
                        srv->conns[i].fd = fd;
                        srv->conns[i].len = 0;
                        return;
                }
        /* too many at once */
        (void) !write(fd, "error: too many control connections.\n", 38);
        close(fd);
}

static void ctl_write_all(int fd, const char *p, size_t n) {
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };

        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k < 0 && errno == EAGAIN) {
                        if (poll(&pfd, 1, 1000) <= 0)
                                return; /* the reader is stuck: give up */
                        continue;
                }
                if (k <= 0)
                        return;
                p += k;
                n -= (size_t) k;
        }
}

/* One command per connection: read a line, answer, close. */
static void ctl_read(server *srv, ctl_conn *c) {
        ssize_t k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
        char *nl;
        reply r = { .buf = NULL };

        if (k < 0 && errno == EAGAIN)
                return;
        if (k <= 0) {
                ctl_close(c);
                return;
        }
        c->len += (size_t) k;
        c->buf[c->len] = '\0';
        nl = memchr(c->buf, '\n', c->len);
        if (nl == NULL && strlen(c->buf) != c->len) {
                reply_add(&r, "error: NUL in command.\n");
        } else if (nl == NULL && c->len >= sizeof(c->buf) - 1) {
                reply_add(&r, "error: command too long (at most %d characters).\n", MAX_CMD_LEN - 1);
        } else if (nl == NULL) {
                return; /* wait for the rest */
        } else {
                *nl = '\0';
                if (strlen(c->buf) != (size_t) (nl - c->buf))
                        reply_add(&r, "error: NUL in command.\n");
                else
                        run_command(srv, c->buf, &r);
        }
        if (r.oom)
                ctl_write_all(c->fd, "error: out of memory.\n", 22);
        else if (r.buf != NULL)
                ctl_write_all(c->fd, r.buf, r.len);
        free(r.buf);
        ctl_close(c);
}

static int ctl_listen(server *srv, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        /* bound under a temporary name and renamed once it listens: a test that waits for
         * the path to appear can connect at once (between bind() and listen() a connect()
         * is refused) */
        size_t n = strlen(path);
        bool tmp = n + strlen(".tmp") < sizeof(sa.sun_path);
        memcpy(sa.sun_path, path, n);
        memcpy(sa.sun_path + n, tmp ? ".tmp" : "", tmp ? sizeof(".tmp") : 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void) unlink(sa.sun_path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, MAX_CTL_CONNS) < 0 ||
            (tmp && rename(sa.sun_path, path) < 0)) {
                int r = -errno;
                if (tmp)
                        (void) unlink(sa.sun_path);
                close(fd);
                return r;
        }
        srv->ctl_fd = fd;
        srv->ctl_path = strdup(path);
        return srv->ctl_path != NULL ? 0 : -ENOMEM;
}

/* ---- ctl client ---- */

static int run_ctl(int argc, char **argv) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char line[MAX_CMD_LEN + 1] = "";
        size_t len = 0;
        char buf[4096];
        bool ok = false, first = true;
        int fd;

        if (argc < 4) {
                fprintf(stderr, "Usage: pcp-refserver ctl PATH COMMAND [ARGS...]\n");
                return 2;
        }
        if (strlen(argv[2]) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "Failed to connect: control socket path too long.\n");
                return 1;
        }
        for (int i = 3; i < argc; i++) {
                size_t n = strlen(argv[i]);
                if (len + n + 2 > MAX_CMD_LEN) {
                        fprintf(stderr, "Failed to send command: longer than %d characters.\n", MAX_CMD_LEN - 1);
                        return 1;
                }
                if (i > 3)
                        line[len++] = ' ';
                memcpy(line + len, argv[i], n);
                len += n;
        }
        line[len++] = '\n';

        memcpy(sa.sun_path, argv[2], strlen(argv[2]) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                fprintf(stderr, "Failed to connect to %s: %s\n", argv[2], strerror(errno));
                if (fd >= 0)
                        close(fd);
                return 1;
        }
        if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t) len) {
                fprintf(stderr, "Failed to send command: %s\n", strerror(errno));
                close(fd);
                return 1;
        }
        for (;;) {
                ssize_t k = read(fd, buf, sizeof(buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                if (first)
                        ok = k >= 2 && buf[0] == 'o' && buf[1] == 'k';
                first = false;
                fwrite(buf, 1, (size_t) k, stdout);
        }
        close(fd);
        if (first) {
                fprintf(stderr, "Failed to read a reply: connection closed.\n");
                return 1;
        }
        return ok ? 0 : 1;
}

/* ---- main ---- */

static void usage(FILE *f) {
        fprintf(f,
                "Usage: pcp-refserver [OPTIONS]\n"
                "       pcp-refserver ctl PATH COMMAND [ARGS...]\n"
                "\n"
                "Reference PCP (RFC 6887) and NAT-PMP (RFC 6886) server for tests.\n"
                "\n"
                "  --listen ADDR            listen on this address (repeatable; default 127.0.0.1)\n"
                "  --port N                 server port (default 5351)\n"
                "  --announce-port N        port ANNOUNCEs are sent to (default 5350)\n"
                "  --external ADDR          external IPv4 address (default 203.0.113.1)\n"
                "  --natpmp-only            answer PCP requests with the NAT-PMP UNSUPP_VERSION\n"
                "  --pcp-only               answer NAT-PMP requests with PCP UNSUPP_VERSION\n"
                "  --pcp-version N          highest PCP version spoken: 2 (default) or 1\n"
                "  --min-lifetime S         (default 120)\n"
                "  --max-lifetime S         (default 86400)\n"
                "  --ports LO-HI            external port range (default 1024-65535)\n"
                "  --max-mappings N         (default 256, at most %d)\n"
                "  --short-error-lifetime S (default 30)\n"
                "  --long-error-lifetime S  (default 1800; 0 is what miniupnpd sends)\n"
                "  --allow-third-party      accept THIRD_PARTY\n"
                "  --no-ipv6-pinholes       drop requests from IPv6 clients\n"
                "  --seed N                 PRNG seed (default 1)\n"
                "  --log FILE               JSON lines: each request received and datagram sent\n"
                "  --control PATH           unix socket for commands (see 'ctl PATH help')\n"
                "  --help\n",
                REFSRV_MAX_MAPPINGS);
}

enum {
        ARG_LISTEN = 0x100,
        ARG_PORT,
        ARG_ANNOUNCE_PORT,
        ARG_EXTERNAL,
        ARG_NATPMP_ONLY,
        ARG_PCP_ONLY,
        ARG_PCP_VERSION,
        ARG_MIN_LIFETIME,
        ARG_MAX_LIFETIME,
        ARG_PORTS,
        ARG_MAX_MAPPINGS,
        ARG_SHORT_ERR,
        ARG_LONG_ERR,
        ARG_THIRD_PARTY,
        ARG_NO_V6,
        ARG_SEED,
        ARG_LOG,
        ARG_CONTROL,
        ARG_HELP,
};

static int __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...) {
        va_list ap;

        fputs("pcp-refserver: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return 2;
}

static void server_done(server *srv) {
        for (size_t i = 0; i < srv->n_listeners; i++) {
                if (srv->listeners[i].fd >= 0)
                        close(srv->listeners[i].fd);
                if (srv->listeners[i].alt_fd >= 0)
                        close(srv->listeners[i].alt_fd);
        }
        for (size_t i = 0; i < MAX_CTL_CONNS; i++)
                ctl_close(&srv->conns[i]);
        if (srv->ctl_fd >= 0) {
                close(srv->ctl_fd);
                (void) unlink(srv->ctl_path);
        }
        free(srv->ctl_path);
        if (srv->log != NULL)
                fclose(srv->log);
        srv->core = refsrv_free(srv->core);
}

static int run_server(int argc, char **argv) {
        static const struct option opts[] = {
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "port", required_argument, NULL, ARG_PORT },
                { "announce-port", required_argument, NULL, ARG_ANNOUNCE_PORT },
                { "external", required_argument, NULL, ARG_EXTERNAL },
                { "natpmp-only", no_argument, NULL, ARG_NATPMP_ONLY },
                { "pcp-only", no_argument, NULL, ARG_PCP_ONLY },
                { "pcp-version", required_argument, NULL, ARG_PCP_VERSION },
                { "min-lifetime", required_argument, NULL, ARG_MIN_LIFETIME },
                { "max-lifetime", required_argument, NULL, ARG_MAX_LIFETIME },
                { "ports", required_argument, NULL, ARG_PORTS },
                { "max-mappings", required_argument, NULL, ARG_MAX_MAPPINGS },
                { "short-error-lifetime", required_argument, NULL, ARG_SHORT_ERR },
                { "long-error-lifetime", required_argument, NULL, ARG_LONG_ERR },
                { "allow-third-party", no_argument, NULL, ARG_THIRD_PARTY },
                { "no-ipv6-pinholes", no_argument, NULL, ARG_NO_V6 },
                { "seed", required_argument, NULL, ARG_SEED },
                { "log", required_argument, NULL, ARG_LOG },
                { "control", required_argument, NULL, ARG_CONTROL },
                { "help", no_argument, NULL, ARG_HELP },
                { NULL, 0, NULL, 0 },
        };
        server srv = { .ctl_fd = -1, .port = PCP_SERVER_PORT };
        refsrv_config cfg;
        const char *log_path = NULL, *ctl_path = NULL;
        sigset_t mask;
        int sfd = -1, c, r, ret = 1;
        uint64_t v;

        for (size_t i = 0; i < MAX_CTL_CONNS; i++)
                srv.conns[i].fd = -1;
        refsrv_config_init(&cfg);

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case ARG_LISTEN: {
                        listener *l;
                        if (srv.n_listeners >= MAX_LISTEN)
                                return fail("too many --listen addresses (at most 16): '%s'", optarg);
                        l = &srv.listeners[srv.n_listeners];
                        if (!pcp_addr_from_string(optarg, &l->addr))
                                return fail("--listen: '%s' is not an IPv4 or IPv6 address", optarg);
                        l->family = pcp_addr_is_ipv4(&l->addr) ? AF_INET : AF_INET6;
                        l->wildcard = pcp_addr_is_unspecified(&l->addr);
                        l->fd = l->alt_fd = -1;
                        srv.n_listeners++;
                        break;
                }
                case ARG_PORT:
                        if (parse_uint(optarg, 65535, &v) < 0 || v == 0)
                                return fail("--port: '%s' is not a port number (1-65535)", optarg);
                        srv.port = (uint16_t) v;
                        break;
                case ARG_ANNOUNCE_PORT:
                        if (parse_uint(optarg, 65535, &v) < 0 || v == 0)
                                return fail("--announce-port: '%s' is not a port number (1-65535)", optarg);
                        cfg.announce_port = (uint16_t) v;
                        break;
                case ARG_EXTERNAL:
                        if (!pcp_addr_from_string(optarg, &cfg.external_addr) ||
                            !pcp_addr_is_ipv4(&cfg.external_addr) || pcp_addr_is_unspecified(&cfg.external_addr))
                                return fail("--external: '%s' is not a usable IPv4 address", optarg);
                        break;
                case ARG_NATPMP_ONLY:
                        cfg.mode = REFSRV_MODE_NATPMP_ONLY;
                        break;
                case ARG_PCP_ONLY:
                        cfg.mode = REFSRV_MODE_PCP_ONLY;
                        break;
                case ARG_PCP_VERSION:
                        if (parse_uint(optarg, 2, &v) < 0 || v == 0)
                                return fail("--pcp-version: '%s' must be 1 or 2", optarg);
                        cfg.max_version = (uint8_t) v;
                        break;
                case ARG_MIN_LIFETIME:
                case ARG_MAX_LIFETIME:
                        if (parse_uint(optarg, UINT32_MAX, &v) < 0 || v == 0)
                                return fail("lifetime: '%s' is not a number of seconds (1-4294967295)", optarg);
                        if (c == ARG_MIN_LIFETIME)
                                cfg.min_lifetime = (uint32_t) v;
                        else
                                cfg.max_lifetime = (uint32_t) v;
                        break;
                case ARG_PORTS: {
                        char lo[16], hi[16];
                        const char *dash = strchr(optarg, '-');
                        uint64_t a, b;
                        if (dash == NULL || (size_t) (dash - optarg) >= sizeof(lo) || strlen(dash + 1) >= sizeof(hi))
                                return fail("--ports: '%s' is not a range LO-HI", optarg);
                        memcpy(lo, optarg, (size_t) (dash - optarg));
                        lo[dash - optarg] = '\0';
                        strcpy(hi, dash + 1);
                        if (parse_uint(lo, 65535, &a) < 0 || parse_uint(hi, 65535, &b) < 0 || a == 0 || a > b)
                                return fail("--ports: '%s' is not a range LO-HI within 1-65535", optarg);
                        cfg.port_min = (uint16_t) a;
                        cfg.port_max = (uint16_t) b;
                        break;
                }
                case ARG_MAX_MAPPINGS:
                        if (parse_uint(optarg, REFSRV_MAX_MAPPINGS, &v) < 0 || v == 0)
                                return fail("--max-mappings: '%s' is not a number between 1 and 4096", optarg);
                        cfg.max_mappings = (size_t) v;
                        break;
                case ARG_SHORT_ERR:
                case ARG_LONG_ERR:
                        if (parse_uint(optarg, UINT32_MAX - 1, &v) < 0)
                                return fail("error lifetime: '%s' is not a number of seconds", optarg);
                        if (c == ARG_SHORT_ERR)
                                cfg.short_error_lifetime = (uint32_t) v;
                        else
                                cfg.long_error_lifetime = (uint32_t) v;
                        break;
                case ARG_THIRD_PARTY:
                        cfg.allow_third_party = true;
                        break;
                case ARG_NO_V6:
                        cfg.ipv6_pinholes = false;
                        break;
                case ARG_SEED:
                        if (parse_uint(optarg, UINT64_MAX, &v) < 0)
                                return fail("--seed: '%s' is not a number", optarg);
                        cfg.seed = v;
                        break;
                case ARG_LOG:
                        log_path = optarg;
                        break;
                case ARG_CONTROL:
                        ctl_path = optarg;
                        break;
                case ARG_HELP:
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc)
                return fail("unexpected argument '%s'", argv[optind]);
        if (cfg.min_lifetime > cfg.max_lifetime)
                return fail("--min-lifetime is larger than --max-lifetime");

        if (srv.n_listeners == 0) {
                struct in_addr lo = { .s_addr = htonl(INADDR_LOOPBACK) };
                pcp_addr_from_ipv4(&lo, &srv.listeners[0].addr);
                srv.listeners[0].family = AF_INET;
                srv.listeners[0].fd = srv.listeners[0].alt_fd = -1;
                srv.n_listeners = 1;
        }

        srv.start_ms = mono_ms();
        r = refsrv_new(&cfg, 0, &srv.core);
        if (r < 0) {
                fprintf(stderr, "pcp-refserver: invalid configuration: %s\n", strerror(-r));
                return 2;
        }

        for (size_t i = 0; i < srv.n_listeners; i++) {
                char a[PCP_ADDR_STRLEN];
                r = listener_open(&srv.listeners[i], srv.port);
                if (r < 0) {
                        fprintf(stderr, "pcp-refserver: failed to listen on %s port %u: %s\n",
                                pcp_addr_to_string(&srv.listeners[i].addr, a), srv.port, strerror(-r));
                        goto out;
                }
        }
        if (ctl_path != NULL) {
                r = ctl_listen(&srv, ctl_path);
                if (r < 0) {
                        fprintf(stderr, "pcp-refserver: failed to create control socket %s: %s\n", ctl_path,
                                strerror(-r));
                        goto out;
                }
        }
        if (log_path != NULL) {
                srv.log = fopen(log_path, "we");
                if (srv.log == NULL) {
                        fprintf(stderr, "pcp-refserver: failed to open log %s: %s\n", log_path, strerror(errno));
                        goto out;
                }
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGPIPE);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
                fprintf(stderr, "pcp-refserver: failed to set up signals: %s\n", strerror(errno));
                goto out;
        }

        printf("ready\n");
        fflush(stdout);

        while (!srv.quit) {
                struct pollfd pfd[MAX_LISTEN + MAX_CTL_CONNS + 2];
                size_t n = 0, first_conn;
                uint64_t deadline, t;
                int timeout;

                pfd[n++] = (struct pollfd) { .fd = sfd, .events = POLLIN };
                for (size_t i = 0; i < srv.n_listeners; i++)
                        pfd[n++] = (struct pollfd) { .fd = srv.listeners[i].fd, .events = POLLIN };
                pfd[n++] = (struct pollfd) { .fd = srv.ctl_fd, .events = POLLIN }; /* -1 is ignored */
                first_conn = n;
                for (size_t i = 0; i < MAX_CTL_CONNS; i++)
                        pfd[n++] = (struct pollfd) { .fd = srv.conns[i].fd, .events = POLLIN };

                deadline = refsrv_next_deadline(srv.core);
                t = now_ms(&srv);
                if (deadline == UINT64_MAX)
                        timeout = -1;
                else if (deadline <= t)
                        timeout = 0;
                else
                        timeout = deadline - t > INT_MAX ? INT_MAX : (int) (deadline - t);

                if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
                        fprintf(stderr, "pcp-refserver: poll failed: %s\n", strerror(errno));
                        goto out;
                }
                if (pfd[0].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGPIPE)
                                break;
                }
                for (size_t i = 0; i < srv.n_listeners; i++)
                        if (pfd[1 + i].revents & (POLLIN | POLLERR))
                                handle_udp(&srv, &srv.listeners[i]);
                if (pfd[first_conn - 1].revents & POLLIN)
                        ctl_accept(&srv);
                for (size_t i = 0; i < MAX_CTL_CONNS; i++)
                        if (pfd[first_conn + i].fd >= 0 && pfd[first_conn + i].revents != 0 &&
                            srv.conns[i].fd == pfd[first_conn + i].fd)
                                ctl_read(&srv, &srv.conns[i]);
                refsrv_tick(srv.core, now_ms(&srv));
                flush_output(&srv);
        }
        ret = 0;
out:
        if (sfd >= 0)
                close(sfd);
        server_done(&srv);
        return ret;
}

int main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
                return run_ctl(argc, argv);
        return run_server(argc, argv);
}
