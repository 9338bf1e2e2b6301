/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PCP backend's I/O (pcpd-pcp.c) against the test as its server on the loopback: a
 * server's id comes back before anything is told, its probe leaves at the drain, the
 * answer comes up through ops->event from the main loop, removing a server closes its
 * sockets, and a server whose socket cannot be opened leaves nothing open (and closes
 * nothing it did not open). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pcp-wire.h"
#include "pcpd-pcp.h"

typedef struct recorder {
        unsigned events, server_events;
        pcp_server_state last_server_state;
} recorder;

static void on_event(void *userdata, const pcp_event *ev) {
        recorder *r = userdata;

        r->events++;
        if (ev->type == PCP_EVENT_SERVER && ev->server != NULL) {
                r->server_events++;
                r->last_server_state = ev->server->state;
        }
}

static const pcpd_pcp_ops ops = { .event = on_event };

static unsigned open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        assert_non_null(d);
        while (readdir(d) != NULL)
                n++;
        closedir(d);
        return n;
}

/* the test's server: a UDP socket on 127.0.0.1, port chosen by the kernel */
static int server_socket(struct sockaddr_in6 *ret) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &len), 0);
        *ret = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_port = a.sin_port };
        pcp_addr_from_ipv4(&a.sin_addr, &ret->sin6_addr);
        return fd;
}

static void v4(const char *text, uint16_t port, struct sockaddr_in6 *ret) {
        struct in_addr a;

        assert_int_equal(inet_pton(AF_INET, text, &a), 1);
        *ret = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_port = htons(port) };
        pcp_addr_from_ipv4(&a, &ret->sin6_addr);
}

static void test_probe_and_answer(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        recorder rec = { 0 };
        struct sockaddr_in6 srv;
        struct sockaddr_in from;
        socklen_t from_len = sizeof(from);
        uint8_t buf[PCP_MAX_MSG_LEN];
        uint32_t id = 0;
        pcp_msg msg;
        size_t len;
        ssize_t n;
        int fd = server_socket(&srv), turns = 0;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        pcpd_pcp_start(p, 0);
        assert_int_equal(pcpd_pcp_server_add(p, &srv, 1, "test", &id), 0);
        assert_int_not_equal(id, 0);
        assert_int_equal(rec.events, 0); /* nothing before the id is returned */
        assert_non_null(pcpd_pcp_server_info(p, id));

        /* the probe leaves at the drain */
        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
        assert_int_equal(poll(&pfd, 1, 30000), 1);
        n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *) &from, &from_len);
        assert_true(n > 0);
        assert_int_equal(pcp_decode(buf, (size_t) n, false, &msg), PCP_WIRE_OK);
        assert_int_equal(msg.opcode, PCP_OPCODE_ANNOUNCE);

        /* the answer comes up from the main loop */
        pcp_msg_init(&msg, true, PCP_OPCODE_ANNOUNCE);
        msg.epoch = 1;
        assert_int_equal(pcp_encode(&msg, buf, sizeof(buf), &len), PCP_WIRE_OK);
        assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *) &from, from_len), (ssize_t) len);
        while (rec.server_events == 0 && turns < 1000) {
                g_main_context_iteration(NULL, TRUE);
                turns++;
        }
        if (rec.server_events == 0)
                fail_msg("no server event after %d turns of the loop", turns);
        assert_int_equal(rec.last_server_state, PCP_SERVER_PCP);
        close(fd);
}

static void test_remove_closes(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        recorder rec = { 0 };
        struct sockaddr_in6 srv[2];
        int fds[2] = { server_socket(&srv[0]), server_socket(&srv[1]) };
        unsigned before;
        uint32_t id = 0;

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        before = open_fds();
        assert_int_equal(pcpd_pcp_server_add(p, srv, 2, "two addresses", &id), 0);
        assert_int_equal(open_fds(), before + 2);
        pcpd_pcp_server_remove(p, id);
        assert_int_equal(open_fds(), before);
        assert_null(pcpd_pcp_server_info(p, id));
        close(fds[0]);
        close(fds[1]);
}

/* the second of three addresses cannot be connected to (broadcast, no SO_BROADCAST) */
static void test_add_failure_leaves_nothing(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        recorder rec = { 0 };
        struct sockaddr_in6 addrs[3];
        int fd = server_socket(&addrs[0]), null_fd = -1;
        unsigned before;
        uint32_t id = 0;

        /* fd 0 open, so that closing it by mistake shows */
        if (fcntl(0, F_GETFD) < 0)
                null_fd = open("/dev/null", O_RDONLY); /* becomes 0 */
        assert_true(fcntl(0, F_GETFD) >= 0);
        v4("255.255.255.255", PCP_SERVER_PORT, &addrs[1]);
        addrs[2] = addrs[0];
        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        before = open_fds();
        assert_true(pcpd_pcp_server_add(p, addrs, 3, "broadcast", &id) < 0);
        assert_int_equal(open_fds(), before);
        assert_true(fcntl(0, F_GETFD) >= 0);
        pcpd_pcp_drain(p);
        assert_int_equal(rec.events, 0);
        close(fd);
        if (null_fd >= 0)
                close(null_fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_probe_and_answer),
                cmocka_unit_test(test_remove_closes),
                cmocka_unit_test(test_add_failure_leaves_nothing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
