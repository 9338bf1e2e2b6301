/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The engine over real UDP sockets on loopback, against the pcp-refserver binary
 * (path in $PCP_REFSERVER) on a unique 127.x.y.z address. A small poll() driver: one
 * connected socket per server address, connect() + getsockname() for the local address,
 * one socket for ANNOUNCEs. Wall-clock limits here are liveness guards only. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pcp-engine.h"

typedef struct drv {
        pcp_engine *e;
        int fd;          /* connected to the server */
        int announce_fd; /* where the server sends ANNOUNCEs */
        uint32_t sid;
        char addr[32];
        char ctl[128];
        char dir[64];
        pid_t srv_pid;
        size_t active, deleted_upstream, epoch_resets;
} drv;

static uint64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* after every engine call: what it has to send goes out, what it has to say is counted */
static void drain(drv *d) {
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        uint32_t sid;
        size_t ai;
        pcp_event ev;
        int n;

        while ((n = pcp_engine_next_datagram(d->e, &sid, &ai, buf, sizeof(buf))) > 0) {
                assert_int_equal(sid, d->sid);
                assert_int_equal(ai, 0);
                (void) send(d->fd, buf, (size_t) n, 0); /* errors come back as ECONNREFUSED on recv */
        }
        while (pcp_engine_next_event(d->e, &ev) > 0) {
                if (ev.type == PCP_EVENT_MAPPING && ev.mapping->state == PCP_MAPPING_ACTIVE)
                        d->active++;
                if (ev.type == PCP_EVENT_MAPPING_DELETED && ev.deleted_upstream)
                        d->deleted_upstream++;
                if (ev.type == PCP_EVENT_EPOCH_RESET)
                        d->epoch_resets++;
        }
}

static void to_sa6(const struct sockaddr_storage *ss, struct sockaddr_in6 *ret) {
        memset(ret, 0, sizeof(*ret));
        ret->sin6_family = AF_INET6;
        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) ss;
                pcp_addr_from_ipv4(&in->sin_addr, &ret->sin6_addr);
                ret->sin6_port = in->sin_port;
        } else
                *ret = *(const struct sockaddr_in6 *) ss;
}

/* run the loop until cond(d) or the guard runs out */
static bool drive(drv *d, bool (*cond)(drv *d), uint64_t guard_ms) {
        uint64_t end = mono_ms() + guard_ms;

        while (!cond(d)) {
                uint64_t now = mono_ms(), dl = pcp_engine_next_deadline(d->e);
                int timeout = 100;
                struct pollfd p[2] = { { .fd = d->fd, .events = POLLIN }, { .fd = d->announce_fd, .events = POLLIN } };

                if (now >= end)
                        return false;
                if (dl != PCP_NEVER)
                        timeout = dl <= now ? 0 : (int) (dl - now < 100 ? dl - now : 100);
                assert_true(poll(p, 2, timeout) >= 0);
                now = mono_ms();
                for (int i = 0; i < 2; i++) {
                        uint8_t buf[2048];
                        struct sockaddr_storage ss;
                        socklen_t sl = sizeof(ss);
                        struct sockaddr_in6 from;
                        ssize_t n;

                        if (!(p[i].revents & (POLLIN | POLLERR)))
                                continue;
                        n = recvfrom(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *) &ss, &sl);
                        if (n < 0) {
                                if (errno == ECONNREFUSED && i == 0) {
                                        pcp_engine_unreachable(d->e, now, d->sid, 0);
                                        drain(d);
                                }
                                continue;
                        }
                        to_sa6(&ss, &from);
                        if (i == 0)
                                pcp_engine_receive(d->e, now, d->sid, 0, &from, buf, (size_t) n);
                        else
                                pcp_engine_receive_announce(d->e, now, &from, buf, (size_t) n);
                        drain(d);
                }
                pcp_engine_process_timers(d->e, mono_ms());
                drain(d);
        }
        return true;
}

static void ctl(drv *d, const char *cmd) {
        char line[512];
        snprintf(line, sizeof(line), "'%s' ctl '%s' %s >/dev/null", getenv("PCP_REFSERVER"), d->ctl, cmd);
        assert_int_equal(system(line), 0);
}

static void start_server(drv *d, uint16_t announce_port) {
        int pipefd[2];
        char port[16], line[64] = "";
        FILE *f;

        snprintf(port, sizeof(port), "%u", announce_port);
        assert_int_equal(pipe(pipefd), 0);
        d->srv_pid = fork();
        assert_true(d->srv_pid >= 0);
        if (d->srv_pid == 0) {
                dup2(pipefd[1], STDOUT_FILENO);
                close(pipefd[0]);
                execl(getenv("PCP_REFSERVER"), "pcp-refserver", "--listen", d->addr, "--announce-port", port,
                      "--control", d->ctl, "--min-lifetime", "4", "--seed", "7", (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);
        f = fdopen(pipefd[0], "r");
        assert_non_null(f);
        /* liveness guard: the server prints "ready" once it listens */
        alarm(20);
        assert_non_null(fgets(line, sizeof(line), f));
        alarm(0);
        assert_string_equal(line, "ready\n");
        fclose(f);
}

static bool three_active(drv *d) {
        return d->active >= 3;
}
static bool recreated(drv *d) {
        /* every mapping granted again (the epoch may look consistent: the server was
         * only up for a moment, so no EPOCH_RESET is required) */
        return d->active >= 6;
}
static bool all_deleted(drv *d) {
        return d->deleted_upstream >= 3;
}
static bool never(drv *d) {
        return false;
}

static pid_t server_pid;

/* the server must not outlive a failed test */
static int teardown(void **state) {
        if (server_pid > 0) {
                kill(server_pid, SIGTERM);
                (void) waitpid(server_pid, NULL, 0);
                server_pid = 0;
        }
        return 0;
}

static void test_udp_refserver(void **state) {
        drv d = { .fd = -1 };
        pid_t pid = getpid();
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PCP_SERVER_PORT) };
        struct sockaddr_in la = { .sin_family = AF_INET };
        struct sockaddr_storage local;
        socklen_t sl = sizeof(local);
        struct sockaddr_in6 local6;
        pcp_server_addr a;
        uint64_t ids[3];

        if (getenv("PCP_REFSERVER") == NULL)
                skip();
        snprintf(d.addr, sizeof(d.addr), "127.%d.%d.%d", (int) ((pid / 65024) % 254 + 1), (int) ((pid / 254) % 256),
                 (int) (pid % 254 + 1));
        snprintf(d.dir, sizeof(d.dir), "/tmp/pcp-engine-udp.XXXXXX");
        assert_non_null(mkdtemp(d.dir));
        snprintf(d.ctl, sizeof(d.ctl), "%s/ctl", d.dir);

        /* the ANNOUNCE socket on the address the server will see as ours */
        d.announce_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(d.announce_fd >= 0);
        la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(d.announce_fd, (struct sockaddr *) &la, sizeof(la)), 0);
        sl = sizeof(local);
        assert_int_equal(getsockname(d.announce_fd, (struct sockaddr *) &local, &sl), 0);
        start_server(&d, ntohs(((struct sockaddr_in *) &local)->sin_port));
        server_pid = d.srv_pid;

        /* one socket per server address: connect() + getsockname() */
        d.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(d.fd >= 0);
        assert_int_equal(inet_pton(AF_INET, d.addr, &sa.sin_addr), 1);
        assert_int_equal(bind(d.fd, (struct sockaddr *) &la, sizeof(la)), 0);
        assert_int_equal(connect(d.fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        sl = sizeof(local);
        assert_int_equal(getsockname(d.fd, (struct sockaddr *) &local, &sl), 0);
        to_sa6(&local, &local6);

        assert_int_equal(pcp_engine_new(NULL, NULL, NULL, &d.e), 0);
        memset(&a, 0, sizeof(a));
        a.remote.sin6_family = AF_INET6;
        pcp_addr_from_ipv4(&sa.sin_addr, &a.remote.sin6_addr);
        a.local = local6.sin6_addr;
        assert_int_equal(pcp_engine_add_server(d.e, mono_ms(), &a, 1, &d.sid), 0);
        drain(&d);
        for (int i = 0; i < 3; i++) {
                pcp_mapping_params p = { .server_id = d.sid, .opcode = PCP_OPCODE_MAP,
                                         .protocol = i == 1 ? IPPROTO_UDP : IPPROTO_TCP,
                                         .internal_port = (uint16_t) (30000 + i), .lifetime = 600,
                                         .description = "udp test" };
                assert_int_equal(pcp_engine_add_mapping(d.e, mono_ms(), &p, &ids[i]), 0);
                drain(&d);
        }
        assert_true(drive(&d, three_active, 20000));
        assert_int_equal(pcp_engine_server_get(d.e, d.sid)->state, PCP_SERVER_PCP);
        for (int i = 0; i < 3; i++)
                assert_int_equal(pcp_engine_mapping_get(d.e, ids[i])->state, PCP_MAPPING_ACTIVE);

        /* the server restarts and loses everything; its ANNOUNCE makes us recreate */
        ctl(&d, "restart");
        assert_true(drive(&d, recreated, 20000));
        for (int i = 0; i < 3; i++)
                assert_int_equal(pcp_engine_mapping_get(d.e, ids[i])->state, PCP_MAPPING_ACTIVE);

        /* delete: confirmed upstream */
        for (int i = 0; i < 3; i++) {
                assert_int_equal(pcp_engine_remove_mapping(d.e, mono_ms(), ids[i]), 0);
                drain(&d);
        }
        assert_true(drive(&d, all_deleted, 20000));
        assert_int_equal(pcp_engine_mapping_count(d.e), 0);
        for (int i = 0; i < _PCP_DROP_MAX; i++)
                assert_int_equal(pcp_engine_get_stats(d.e)->dropped[i], 0);

        /* the server goes away: ICMP port unreachable → UNREACHABLE */
        kill(d.srv_pid, SIGTERM);
        assert_int_equal(waitpid(d.srv_pid, NULL, 0), d.srv_pid);
        d.srv_pid = 0;
        server_pid = 0;
        {
                pcp_mapping_params p = { .server_id = d.sid, .opcode = PCP_OPCODE_MAP, .protocol = IPPROTO_TCP,
                                         .internal_port = 31000, .lifetime = 600 };
                uint64_t id;
                assert_int_equal(pcp_engine_add_mapping(d.e, mono_ms(), &p, &id), 0);
                drain(&d);
                assert_false(drive(&d, never, 1000)); /* runs the loop for a second */
                assert_int_equal(pcp_engine_server_get(d.e, d.sid)->state, PCP_SERVER_UNREACHABLE);
                assert_int_equal(pcp_engine_mapping_get(d.e, id)->error, PCP_MAPPING_ERROR_UNREACHABLE);
        }

        pcp_engine_free(d.e);
        close(d.fd);
        close(d.announce_fd);
        unlink(d.ctl);
        rmdir(d.dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_udp_refserver, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
