/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-engine-udp: the engine alone, in-process as bench-engine drives it, but over real
 * UDP on loopback, against a bare UDP client doing the least a PCP client can do, both
 * asking the same responder for the same N mappings as fast as they can.
 *
 *   bench-engine-udp [N] [--window W] [--rounds R] [--rcvbuf B] [--max-in-flight K] [--engine-only]
 *
 * The responder is a child process (its own core on a 2-core machine): one UDP socket on
 * 127.0.0.1, recvmmsg()/sendmmsg() 64 at a time, every MAP granted as asked (external port
 * = internal port), ANNOUNCE answered SUCCESS; stateless, so it costs the same for both
 * clients. (pcp-refserver holds at most 4096 mappings: tests/refserver/refsrv.h.)
 *
 * bare    N MAP requests encoded before the clock starts, each with its own nonce (the
 *         index in its first octets), sent with sendmmsg() 64 at a time; every answer read
 *         with recvmmsg(), decoded (pcp_decode()) and matched to its request by nonce. Done
 *         when N distinct answers came back.
 * engine  pcp_engine_add_mapping() N times on an engine whose server already answered its
 *         probe; its datagrams pulled (pcp_engine_next_datagram()) straight into the
 *         sendmmsg() batch; every answer handed to pcp_engine_receive(), its events pulled;
 *         done when N mappings are active. The engine draws its randomness from the kernel
 *         (ops.random = NULL, getrandom() in batches), as it would in pcpd.
 *
 * Both keep at most W requests unanswered (default 512, --window 0: all N at once): a
 * burst larger than the sockets' buffers would be lost on loopback and measure the
 * retransmission timer, not the client. Each round runs both, in alternating order, on
 * fresh sockets; the best and the median of R rounds (default 7) are reported, with the
 * client process's CPU time (CLOCK_PROCESS_CPUTIME_ID, the responder excluded).
 *
 * --rcvbuf B gives the clients' sockets a receive buffer of B octets (as the kernel counts
 * it: 212992 is a stock kernel's net.core.rmem_default and rmem_max, what pcpd gets under its
 * unit) instead of 8 MiB; --max-in-flight K sets pcp_engine_config.max_in_flight (0: the
 * engine's default; 4294967295: unbounded, as the engine was before the bound); with a
 * small buffer and --window 0 the bare client (which never retransmits) cannot finish, so
 * --engine-only runs the engine alone, and prints the answers its socket dropped for want
 * of buffer (SO_MEMINFO, SK_MEMINFO_DROPS) and its retransmissions (each drop costs one,
 * after the 3 s retransmission timeout).
 *
 * A benchmark, not a test: nothing here asserts a timing; it fails only if a run did not
 * complete (an answer lost: the count it reached is printed).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pcp-engine.h"
#include "pcp-wire.h"

#define BATCH 64
#define DGRAM 128 /* the largest datagram either side sends here (PCP MAP: 60) */
#define GUARD_MS 20000

static int g_rcvbuf;             /* --rcvbuf: 0 = 8 MiB */
static uint32_t g_max_in_flight; /* --max-in-flight */

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static void die(const char *what) {
        fprintf(stderr, "bench-engine-udp: %s: %s\n", what, strerror(errno));
        exit(1);
}

/* big buffers both ways: SO_*BUFFORCE as root, else what rmem_max allows */
static void big_buffers(int fd) {
        int sz = 8 << 20;

        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}

/* ---- the responder (child process) ---- */

static size_t respond(uint32_t epoch, const uint8_t *req, size_t len, uint8_t *resp, size_t cap) {
        pcp_msg q, r;
        size_t n = 0;

        if (pcp_decode(req, len, false, &q) != PCP_WIRE_OK)
                return 0;
        pcp_msg_init(&r, true, q.opcode);
        r.result = PCP_RESULT_SUCCESS;
        r.epoch = epoch;
        if (q.opcode == PCP_OPCODE_MAP) {
                r.lifetime = q.lifetime;
                memcpy(r.nonce, q.nonce, PCP_NONCE_LEN);
                r.protocol = q.protocol;
                r.internal_port = q.internal_port;
                (void) pcp_addr_from_string("203.0.113.1", &r.external_addr);
                r.external_port = q.lifetime > 0 ? q.internal_port : 0;
        }
        return pcp_encode(&r, resp, cap, &n) == PCP_WIRE_OK ? n : 0;
}

static void responder(int fd) {
        static uint8_t in[BATCH][DGRAM], out[BATCH][DGRAM];
        static struct sockaddr_in from[BATCH];
        struct mmsghdr rm[BATCH], sm[BATCH];
        struct iovec riov[BATCH], siov[BATCH];
        uint64_t t0 = mono_ns();

        for (;;) {
                int n, k = 0;

                for (int i = 0; i < BATCH; i++) {
                        riov[i] = (struct iovec) { .iov_base = in[i], .iov_len = DGRAM };
                        rm[i] = (struct mmsghdr) { .msg_hdr = { .msg_name = &from[i], .msg_namelen = sizeof(from[i]),
                                                                 .msg_iov = &riov[i], .msg_iovlen = 1 } };
                }
                n = recvmmsg(fd, rm, BATCH, MSG_WAITFORONE, NULL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                for (int i = 0; i < n; i++) {
                        size_t len = respond((uint32_t) (1000 + (mono_ns() - t0) / 1000000000u), in[i], rm[i].msg_len,
                                             out[k], DGRAM);
                        if (len == 0)
                                continue;
                        siov[k] = (struct iovec) { .iov_base = out[k], .iov_len = len };
                        sm[k] = (struct mmsghdr) { .msg_hdr = { .msg_name = &from[i], .msg_namelen = rm[i].msg_hdr.msg_namelen,
                                                                 .msg_iov = &siov[k], .msg_iovlen = 1 } };
                        k++;
                }
                for (int done = 0; done < k;) {
                        int r = sendmmsg(fd, sm + done, (unsigned) (k - done), 0);
                        if (r < 0) {
                                if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS)
                                        continue;
                                break;
                        }
                        done += r;
                }
        }
}

/* ---- the clients' side ---- */

typedef struct run {
        uint64_t wall_ns, cpu_ns;
        size_t done;
        uint64_t sent, retransmissions, drops;
} run;

/* answers the socket dropped: its receive buffer was full */
static uint64_t socket_drops(int fd) {
        uint32_t mi[SK_MEMINFO_VARS] = { 0 };
        socklen_t len = sizeof(mi);

        if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &len) < 0 || len <= SK_MEMINFO_DROPS * sizeof(uint32_t))
                return UINT64_MAX;
        return mi[SK_MEMINFO_DROPS];
}

/* a UDP socket connected to the responder; its local address in *ret_local */
static int client_socket(const struct sockaddr_in *srv, struct in6_addr *ret_local) {
        struct sockaddr_in local;
        socklen_t ll = sizeof(local);
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                die("socket");
        big_buffers(fd);
        if (g_rcvbuf > 0) {
                int half = g_rcvbuf / 2; /* the kernel doubles what it is given */
                if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &half, sizeof(half)) < 0 &&
                    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &half, sizeof(half)) < 0)
                        die("SO_RCVBUF");
        }
        if (connect(fd, (const struct sockaddr *) srv, sizeof(*srv)) < 0 ||
            getsockname(fd, (struct sockaddr *) &local, &ll) < 0)
                die("connect");
        if (ret_local != NULL)
                pcp_addr_from_ipv4(&local.sin_addr, ret_local);
        return fd;
}

static void send_batch(int fd, uint8_t (*bufs)[DGRAM], const size_t *lens, size_t n) {
        struct mmsghdr m[BATCH];
        struct iovec iov[BATCH];

        for (size_t i = 0; i < n; i++) {
                iov[i] = (struct iovec) { .iov_base = bufs[i], .iov_len = lens[i] };
                m[i] = (struct mmsghdr) { .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
        }
        for (size_t done = 0; done < n;) {
                int r = sendmmsg(fd, m + done, (unsigned) (n - done), 0);
                if (r < 0) {
                        if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS)
                                continue;
                        die("sendmmsg");
                }
                done += (size_t) r;
        }
}

/* up to BATCH datagrams, waiting at most timeout_ms for the first; their lengths in lens */
static int recv_batch(int fd, uint8_t (*bufs)[DGRAM], size_t *lens, int timeout_ms) {
        struct mmsghdr m[BATCH];
        struct iovec iov[BATCH];
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n;

        if (poll(&p, 1, timeout_ms) <= 0)
                return 0;
        for (int i = 0; i < BATCH; i++) {
                iov[i] = (struct iovec) { .iov_base = bufs[i], .iov_len = DGRAM };
                m[i] = (struct mmsghdr) { .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
        }
        n = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0)
                return 0;
        for (int i = 0; i < n; i++)
                lens[i] = m[i].msg_len;
        return n;
}

static size_t in_flight_room(size_t sent, size_t done, size_t n, size_t window) {
        size_t room = n - sent;

        if (window > 0 && window - (sent - done) < room)
                room = window - (sent - done);
        return room < BATCH ? room : BATCH;
}

/* ---- the bare client ---- */

static void nonce_for(size_t i, uint8_t nonce[PCP_NONCE_LEN]) {
        memset(nonce, 0xa5, PCP_NONCE_LEN);
        memcpy(nonce, &i, sizeof(uint32_t));
}

static run run_bare(const struct sockaddr_in *srv, size_t n, size_t window) {
        static uint8_t (*reqs)[DGRAM];
        static size_t *lens;
        static bool *answered;
        uint8_t in[BATCH][DGRAM];
        size_t in_lens[BATCH], sent = 0, done = 0;
        struct in6_addr local;
        int fd = client_socket(srv, &local);
        uint64_t w0, c0, end;
        run r;

        reqs = realloc(reqs, n * sizeof(*reqs));
        lens = realloc(lens, n * sizeof(*lens));
        answered = realloc(answered, n * sizeof(*answered));
        if (reqs == NULL || lens == NULL || answered == NULL)
                die("realloc");
        /* encoded before the clock starts: the least a client can do at request time */
        for (size_t i = 0; i < n; i++) {
                pcp_msg q;

                pcp_msg_init(&q, false, PCP_OPCODE_MAP);
                q.lifetime = 3600;
                q.client_addr = local;
                nonce_for(i, q.nonce);
                q.protocol = i % 2 ? IPPROTO_UDP : IPPROTO_TCP;
                q.internal_port = (uint16_t) (i / 2 + 1);
                memset(&q.external_addr, 0, 16);
                q.external_addr.s6_addr[10] = q.external_addr.s6_addr[11] = 0xff;
                if (pcp_encode(&q, reqs[i], DGRAM, &lens[i]) != PCP_WIRE_OK)
                        die("pcp_encode");
                answered[i] = false;
        }

        w0 = mono_ns();
        c0 = cpu_ns();
        end = w0 + (uint64_t) GUARD_MS * 1000000u;
        while (done < n && mono_ns() < end) {
                size_t room = in_flight_room(sent, done, n, window);
                int k;

                if (room > 0) {
                        send_batch(fd, &reqs[sent], &lens[sent], room);
                        sent += room;
                }
                k = recv_batch(fd, in, in_lens, room > 0 && sent < n ? 0 : 100);
                for (int i = 0; i < k; i++) {
                        pcp_msg a;
                        uint32_t idx;

                        if (pcp_decode(in[i], in_lens[i], true, &a) != PCP_WIRE_OK || a.opcode != PCP_OPCODE_MAP ||
                            a.result != PCP_RESULT_SUCCESS)
                                continue;
                        memcpy(&idx, a.nonce, sizeof(idx));
                        if (idx < n && !answered[idx]) {
                                answered[idx] = true;
                                done++;
                        }
                }
        }
        r.wall_ns = mono_ns() - w0;
        r.cpu_ns = cpu_ns() - c0;
        r.done = done;
        close(fd);
        return r;
}

/* ---- the engine ---- */

typedef struct engine_client {
        pcp_engine *e;
        int fd;
        uint32_t sid;
        size_t active;
        bool server_ready;
} engine_client;

/* every datagram the engine has, in sendmmsg() batches straight from its encoder; every
 * event it has */
static void engine_drain(engine_client *c) {
        static uint8_t out[BATCH][DGRAM];
        size_t lens[BATCH], k = 0;
        pcp_event ev;
        int n;

        do {
                n = pcp_engine_next_datagram(c->e, NULL, NULL, out[k], DGRAM);
                if (n > 0)
                        lens[k++] = (size_t) n;
                if (k == BATCH || (n <= 0 && k > 0)) {
                        send_batch(c->fd, out, lens, k);
                        k = 0;
                }
        } while (n > 0);
        while (pcp_engine_next_event(c->e, &ev) > 0) {
                if (ev.type == PCP_EVENT_MAPPING && ev.mapping->state == PCP_MAPPING_ACTIVE)
                        c->active++;
                if (ev.type == PCP_EVENT_SERVER && ev.server->state == PCP_SERVER_PCP)
                        c->server_ready = true;
        }
}

static uint64_t engine_now(void) {
        return mono_ns() / 1000000u;
}

static void engine_receive(engine_client *c, const struct sockaddr_in6 *from, int timeout_ms) {
        uint8_t in[BATCH][DGRAM];
        size_t lens[BATCH];
        int k = recv_batch(c->fd, in, lens, timeout_ms);
        uint64_t now = engine_now();

        for (int i = 0; i < k; i++)
                pcp_engine_receive(c->e, now, c->sid, 0, from, in[i], lens[i]);
        /* one drain per batch read (the engine allows it): what the answers released goes
         * out in one sendmmsg(), as the bare client's requests do */
        if (k > 0)
                engine_drain(c);
        if (pcp_engine_next_deadline(c->e) <= now) {
                pcp_engine_process_timers(c->e, now);
                engine_drain(c);
        }
}

static run run_engine(const struct sockaddr_in *srv, size_t n, size_t window) {
        pcp_engine_config cfg = { .max_mappings = n, .max_in_flight = g_max_in_flight };
        engine_client c = { 0 };
        pcp_server_addr a = { 0 };
        struct sockaddr_in6 from = { .sin6_family = AF_INET6, .sin6_port = srv->sin_port };
        uint64_t w0, c0, end;
        size_t added = 0;
        run r;

        c.fd = client_socket(srv, &a.local);
        a.remote = from;
        pcp_addr_from_ipv4(&srv->sin_addr, &a.remote.sin6_addr);
        from = a.remote;
        if (pcp_engine_new(&cfg, NULL, NULL, &c.e) < 0 ||
            pcp_engine_add_server(c.e, engine_now(), &a, 1, &c.sid) < 0)
                die("engine");
        engine_drain(&c);
        /* the probe answered before the clock starts */
        end = mono_ns() + (uint64_t) GUARD_MS * 1000000u;
        while (!c.server_ready && mono_ns() < end)
                engine_receive(&c, &from, 100);
        if (!c.server_ready) {
                fprintf(stderr, "bench-engine-udp: the responder did not answer the probe\n");
                exit(1);
        }

        w0 = mono_ns();
        c0 = cpu_ns();
        end = w0 + (uint64_t) GUARD_MS * 1000000u;
        while (c.active < n && mono_ns() < end) {
                size_t room = in_flight_room(added, c.active, n, window);
                uint64_t now = engine_now();

                for (size_t i = 0; i < room; i++, added++) {
                        pcp_mapping_params p = {
                                .server_id = c.sid,
                                .opcode = PCP_OPCODE_MAP,
                                .protocol = added % 2 ? IPPROTO_UDP : IPPROTO_TCP,
                                .internal_port = (uint16_t) (added / 2 + 1),
                                .lifetime = 3600,
                        };
                        if (pcp_engine_add_mapping(c.e, now, &p, NULL) < 0)
                                die("pcp_engine_add_mapping");
                }
                /* one drain for the whole batch: one sendmmsg() */
                if (room > 0)
                        engine_drain(&c);
                engine_receive(&c, &from, room > 0 && added < n ? 0 : 100);
        }
        r.wall_ns = mono_ns() - w0;
        r.cpu_ns = cpu_ns() - c0;
        r.done = c.active;
        r.sent = pcp_engine_get_stats(c.e)->sent;
        r.retransmissions = pcp_engine_get_stats(c.e)->retransmissions;
        r.drops = socket_drops(c.fd);
        pcp_engine_free(c.e);
        close(c.fd);
        return r;
}

/* ---- report ---- */

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n) {
        qsort(v, n, sizeof(*v), cmp_u64);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
        size_t n = 10000, window = 512, rounds = 7;
        bool engine_only = false;
        struct sockaddr_in srv = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(srv);
        uint64_t bw[64], bc[64], ew[64], ec[64];
        int sfd, status = 0;
        pid_t child;

        for (int i = 1; i < argc; i++) {
                char *end = NULL;
                if (strcmp(argv[i], "--window") == 0 && i + 1 < argc)
                        window = strtoul(argv[++i], &end, 10);
                else if (strcmp(argv[i], "--rcvbuf") == 0 && i + 1 < argc)
                        g_rcvbuf = (int) strtoul(argv[++i], &end, 10);
                else if (strcmp(argv[i], "--max-in-flight") == 0 && i + 1 < argc)
                        g_max_in_flight = (uint32_t) strtoul(argv[++i], &end, 10);
                else if (strcmp(argv[i], "--engine-only") == 0) {
                        engine_only = true;
                        end = argv[i] + strlen(argv[i]);
                } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
                        rounds = strtoul(argv[++i], &end, 10);
                        if (rounds == 0 || rounds > 64)
                                end = NULL;
                } else
                        n = strtoul(argv[i], &end, 10);
                if (end == NULL || *end != '\0' || n == 0 || n > 131070) {
                        fprintf(stderr,
                                "usage: %s [N (1..131070)] [--window W (0: all)] [--rounds R (1..64)] [--rcvbuf B]\n"
                                "       [--max-in-flight K] [--engine-only]\n",
                                argv[0]);
                        return 2;
                }
        }

        sfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sfd < 0)
                die("socket");
        big_buffers(sfd);
        if (bind(sfd, (struct sockaddr *) &srv, sizeof(srv)) < 0 || getsockname(sfd, (struct sockaddr *) &srv, &sl) < 0)
                die("bind");
        child = fork();
        if (child < 0)
                die("fork");
        if (child == 0) {
                responder(sfd);
                _exit(0);
        }
        close(sfd);

        printf("bench-engine-udp: %zu MAP requests per run, at most %zu unanswered (0: all), %zu rounds\n", n, window,
               rounds);
        printf("responder: child process on 127.0.0.1:%u, stateless, recvmmsg/sendmmsg by %d\n\n",
               ntohs(srv.sin_port), BATCH);
        if (g_rcvbuf > 0 || g_max_in_flight > 0)
                printf("client receive buffer %d octets, engine max_in_flight %u (0: default)\n\n",
                       g_rcvbuf > 0 ? g_rcvbuf : 8 << 20, g_max_in_flight);
        for (size_t k = 0; k < rounds; k++) {
                /* alternate who goes first: neither always finds a warm cache */
                run b, e;

                if (engine_only) {
                        e = run_engine(&srv, n, window);
                        if (e.done < n) {
                                fprintf(stderr, "bench-engine-udp: round %zu incomplete: engine %zu/%zu\n", k, e.done,
                                        n);
                                status = 1;
                                break;
                        }
                        ew[k] = e.wall_ns;
                        ec[k] = e.cpu_ns;
                        printf("round %zu: engine %8.2f ms (CPU %7.2f ms), %" PRIu64 " sent, %" PRIu64
                               " answers dropped, %" PRIu64 " retransmissions\n",
                               k, (double) e.wall_ns / 1e6, (double) e.cpu_ns / 1e6, e.sent, e.drops,
                               e.retransmissions);
                        continue;
                }
                if (k % 2 == 0) {
                        b = run_bare(&srv, n, window);
                        e = run_engine(&srv, n, window);
                } else {
                        e = run_engine(&srv, n, window);
                        b = run_bare(&srv, n, window);
                }
                if (b.done < n || e.done < n) {
                        fprintf(stderr, "bench-engine-udp: round %zu incomplete: bare %zu/%zu, engine %zu/%zu answered\n",
                                k, b.done, n, e.done, n);
                        status = 1;
                        break;
                }
                bw[k] = b.wall_ns;
                bc[k] = b.cpu_ns;
                ew[k] = e.wall_ns;
                ec[k] = e.cpu_ns;
                printf("round %zu: bare %7.2f ms (CPU %7.2f ms), engine %7.2f ms (CPU %7.2f ms), ratio %.2f\n", k,
                       (double) b.wall_ns / 1e6, (double) b.cpu_ns / 1e6, (double) e.wall_ns / 1e6,
                       (double) e.cpu_ns / 1e6, (double) e.wall_ns / (double) b.wall_ns);
        }
        if (status == 0 && engine_only) {
                printf("\nengine, wall median %.2f ms, client CPU median %.2f ms\n", (double) median(ew, rounds) / 1e6,
                       (double) median(ec, rounds) / 1e6);
        } else if (status == 0) {
                uint64_t bwm = median(bw, rounds), bcm = median(bc, rounds), ewm = median(ew, rounds),
                         ecm = median(ec, rounds);

                printf("\n%-34s %12s %12s %8s\n", "", "bare UDP", "engine", "ratio");
                printf("%-34s %9.2f ms %9.2f ms %8.2f\n", "wall, best", (double) bw[0] / 1e6, (double) ew[0] / 1e6,
                       (double) ew[0] / (double) bw[0]);
                printf("%-34s %9.2f ms %9.2f ms %8.2f\n", "wall, median", (double) bwm / 1e6, (double) ewm / 1e6,
                       (double) ewm / (double) bwm);
                printf("%-34s %9.2f us %9.2f us %8.2f\n", "wall per mapping, median", (double) bwm / 1e3 / (double) n,
                       (double) ewm / 1e3 / (double) n, (double) ewm / (double) bwm);
                printf("%-34s %9.2f ms %9.2f ms %8.2f\n", "client CPU, best", (double) bc[0] / 1e6, (double) ec[0] / 1e6,
                       (double) ec[0] / (double) bc[0]);
                printf("%-34s %9.2f ms %9.2f ms %8.2f\n", "client CPU, median", (double) bcm / 1e6, (double) ecm / 1e6,
                       (double) ecm / (double) bcm);
        }
        kill(child, SIGTERM);
        (void) waitpid(child, NULL, 0);
        return status;
}
