/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcpd-sendq: a drain's datagrams in batches. With a recording sendmmsg() the tests see
 * every call (socket, how many datagrams, which) and make chosen datagrams fail or a call
 * stop part-way; with the real one, connected UDP sockets on the loopback receive what
 * was queued, in order. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pcpd-sendq.h"

/* ---- a recording sendmmsg() ---- */

#define MAX_CALLS 256
#define MAX_SENT 1024

static struct {
        unsigned calls;
        int call_fd[MAX_CALLS];
        unsigned call_n[MAX_CALLS];
        /* what "left": the first octet of each datagram sent, and its socket */
        unsigned sent;
        uint8_t sent_id[MAX_SENT];
        int sent_fd[MAX_SENT];
        /* datagrams (by first octet) the kernel refuses, with this errno */
        bool refuse[256];
        int refuse_errno;
        unsigned stop_after; /* a call takes at most this many (0: all it may) */
        /* failures told */
        unsigned failed;
        uint8_t failed_id[MAX_SENT];
        const void *failed_tag[MAX_SENT];
        int failed_err[MAX_SENT];
} rec;

static int recording_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags) {
        unsigned i;

        assert_int_equal(flags, MSG_DONTWAIT);
        assert_true(n >= 1);
        assert_true(rec.calls < MAX_CALLS);
        rec.call_fd[rec.calls] = fd;
        rec.call_n[rec.calls] = n;
        rec.calls++;
        for (i = 0; i < n; i++) {
                const uint8_t *d = msgs[i].msg_hdr.msg_iov[0].iov_base;

                assert_null(msgs[i].msg_hdr.msg_name); /* connected sockets */
                assert_int_equal(msgs[i].msg_hdr.msg_iovlen, 1);
                if (rec.stop_after != 0 && i == rec.stop_after)
                        break;
                if (rec.refuse[d[0]])
                        break;
                assert_true(rec.sent < MAX_SENT);
                rec.sent_id[rec.sent] = d[0];
                rec.sent_fd[rec.sent] = fd;
                rec.sent++;
                msgs[i].msg_len = (unsigned) msgs[i].msg_hdr.msg_iov[0].iov_len;
        }
        if (i == 0) {
                errno = rec.refuse_errno;
                return -1;
        }
        return (int) i;
}

static void on_failed(void *userdata, const void *tag, int err) {
        assert_ptr_equal(userdata, &rec);
        assert_true(rec.failed < MAX_SENT);
        rec.failed_tag[rec.failed] = tag;
        rec.failed_err[rec.failed] = err;
        rec.failed++;
}

static void recording_queue(pcpd_sendq *q) {
        memset(&rec, 0, sizeof(rec));
        pcpd_sendq_init(q, on_failed, &rec);
        q->send = recording_sendmmsg;
}

/* queues datagram id (its first octet; len octets in all) for fd, tagged with the fd's name */
static const char *const names[] = { "fd0", "fd1", "fd2", "fd3" };

static void put(pcpd_sendq *q, int fd, uint8_t id, size_t len) {
        uint8_t *b = pcpd_sendq_reserve(q, 1100);

        memset(b, id, len);
        pcpd_sendq_commit(q, fd, len, names[fd % 4]);
}

/* ---- tests ---- */

static void test_runs_one_call_each(void **state) {
        static pcpd_sendq q;
        /* three runs: 5 to socket 10, 3 to 11, 2 to 10 again */
        const int fds[] = { 10, 10, 10, 10, 10, 11, 11, 11, 10, 10 };

        (void) state;
        recording_queue(&q);
        for (unsigned i = 0; i < 10; i++)
                put(&q, fds[i], (uint8_t) i, 60);
        assert_int_equal(rec.calls, 0); /* nothing leaves before the flush */
        assert_int_equal(pcpd_sendq_flush(&q), 3);
        assert_int_equal(rec.calls, 3);
        assert_int_equal(rec.call_fd[0], 10);
        assert_int_equal(rec.call_n[0], 5);
        assert_int_equal(rec.call_fd[1], 11);
        assert_int_equal(rec.call_n[1], 3);
        assert_int_equal(rec.call_fd[2], 10);
        assert_int_equal(rec.call_n[2], 2);
        assert_int_equal(rec.sent, 10);
        for (unsigned i = 0; i < 10; i++) {
                assert_int_equal(rec.sent_id[i], i); /* in the order queued */
                assert_int_equal(rec.sent_fd[i], fds[i]);
        }
        assert_int_equal(rec.failed, 0);
        /* empty now: a second flush sends nothing */
        assert_int_equal(pcpd_sendq_flush(&q), 0);
        assert_int_equal(rec.calls, 3);
}

static void test_reserved_not_committed_is_not_sent(void **state) {
        static pcpd_sendq q;
        uint8_t *b;

        (void) state;
        recording_queue(&q);
        put(&q, 1, 1, 60);
        b = pcpd_sendq_reserve(&q, 1100); /* written, then dropped (a datagram for no server) */
        memset(b, 2, 60);
        b = pcpd_sendq_reserve(&q, 1100); /* the same room again */
        memset(b, 3, 60);
        pcpd_sendq_commit(&q, 1, 60, names[1]);
        assert_int_equal(pcpd_sendq_flush(&q), 1);
        assert_int_equal(rec.sent, 2);
        assert_int_equal(rec.sent_id[0], 1);
        assert_int_equal(rec.sent_id[1], 3);
}

static void test_full_batch_sent_before_more(void **state) {
        static pcpd_sendq q;

        (void) state;
        recording_queue(&q);
        /* PCPD_SENDQ_MAX small ones, then one more: the full batch leaves first */
        for (unsigned i = 0; i < PCPD_SENDQ_MAX; i++)
                put(&q, 1, (uint8_t) i, 60);
        assert_int_equal(rec.calls, 0);
        put(&q, 1, PCPD_SENDQ_MAX, 60);
        assert_int_equal(rec.calls, 1);
        assert_int_equal(rec.call_n[0], PCPD_SENDQ_MAX);
        assert_int_equal(pcpd_sendq_flush(&q), 1);
        assert_int_equal(rec.call_n[1], 1);
        assert_int_equal(rec.sent, PCPD_SENDQ_MAX + 1);
        for (unsigned i = 0; i <= PCPD_SENDQ_MAX; i++)
                assert_int_equal(rec.sent_id[i], i);

        /* the largest datagrams: the octets fill up first, never overrun */
        recording_queue(&q);
        for (unsigned i = 0; i < 40; i++)
                put(&q, 1, (uint8_t) i, 1100);
        (void) pcpd_sendq_flush(&q);
        assert_int_equal(rec.sent, 40);
        for (unsigned i = 0; i < 40; i++)
                assert_int_equal(rec.sent_id[i], i);
        for (unsigned c = 0; c < rec.calls; c++)
                assert_true(rec.call_n[c] * 1100 <= PCPD_SENDQ_BYTES);
}

static void test_refused_datagram_told_rest_sent(void **state) {
        static pcpd_sendq q;

        (void) state;
        recording_queue(&q);
        rec.refuse[2] = rec.refuse[3] = rec.refuse[7] = true;
        rec.refuse_errno = ECONNREFUSED;
        for (unsigned i = 0; i < 8; i++)
                put(&q, i < 6 ? 0 : 1, (uint8_t) i, 60);
        (void) pcpd_sendq_flush(&q);
        /* 0, 1 | 2 refused | 3 refused | 4, 5 || 6 | 7 refused */
        assert_int_equal(rec.sent, 5);
        const uint8_t want[] = { 0, 1, 4, 5, 6 };
        for (unsigned i = 0; i < 5; i++)
                assert_int_equal(rec.sent_id[i], want[i]);
        assert_int_equal(rec.failed, 3);
        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(rec.failed_err[i], ECONNREFUSED);
        assert_string_equal(rec.failed_tag[0], "fd0");
        assert_string_equal(rec.failed_tag[1], "fd0");
        assert_string_equal(rec.failed_tag[2], "fd1");
        /* calls: [0..5] stops at 2; [2..5] fails; [3..5] fails; [4,5]; [6,7] stops at 7; [7] fails */
        assert_int_equal(rec.calls, 6);
}

static void test_partial_call_continues(void **state) {
        static pcpd_sendq q;

        (void) state;
        recording_queue(&q);
        rec.stop_after = 3; /* the kernel takes 3 a call */
        for (unsigned i = 0; i < 10; i++)
                put(&q, 2, (uint8_t) i, 60);
        assert_int_equal(pcpd_sendq_flush(&q), 4);
        assert_int_equal(rec.sent, 10);
        for (unsigned i = 0; i < 10; i++)
                assert_int_equal(rec.sent_id[i], i);
        assert_int_equal(rec.failed, 0);
}

/* the real sendmmsg(): two connected sockets on the loopback, what each receiver gets */
static int udp_pair(int *rx, int *tx) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);

        *rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        *tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (*rx < 0 || *tx < 0 || bind(*rx, (struct sockaddr *) &a, sizeof(a)) < 0 ||
            getsockname(*rx, (struct sockaddr *) &a, &len) < 0 || connect(*tx, (struct sockaddr *) &a, len) < 0)
                return -errno;
        return 0;
}

static void test_real_sockets(void **state) {
        static pcpd_sendq q;
        int rx[2], tx[2];
        unsigned got[2] = { 0, 0 };

        (void) state;
        assert_int_equal(udp_pair(&rx[0], &tx[0]), 0);
        assert_int_equal(udp_pair(&rx[1], &tx[1]), 0);
        memset(&rec, 0, sizeof(rec));
        pcpd_sendq_init(&q, on_failed, &rec);
        /* 20 to the first, 20 to the second, 20 to the first: sizes vary */
        for (unsigned i = 0; i < 60; i++) {
                int which = (i / 20) % 2;
                uint8_t *b = pcpd_sendq_reserve(&q, 1100);
                size_t len = 24 + (i * 37) % 1000;

                memset(b, (int) i, len);
                pcpd_sendq_commit(&q, tx[which], len, "loopback");
        }
        (void) pcpd_sendq_flush(&q);
        assert_int_equal(rec.failed, 0);
        for (unsigned i = 0; i < 60; i++) {
                int which = (i / 20) % 2;
                uint8_t buf[2048];
                struct pollfd pfd = { .fd = rx[which], .events = POLLIN };
                ssize_t n;

                /* delivery on the loopback may finish after the send returned (a busy
                 * softirq): wait for it, with a cap that only a lost datagram reaches */
                if (poll(&pfd, 1, 10000) != 1)
                        fail_msg("datagram %u not received within 10 s", i);
                n = recv(rx[which], buf, sizeof(buf), MSG_DONTWAIT);

                assert_int_equal(n, (ssize_t) (24 + (i * 37) % 1000));
                assert_int_equal(buf[0], i);
                assert_int_equal(buf[n - 1], i);
                got[which]++;
        }
        assert_int_equal(got[0], 40);
        assert_int_equal(got[1], 20);
        for (int k = 0; k < 2; k++) {
                uint8_t buf[16];
                assert_int_equal(recv(rx[k], buf, sizeof(buf), MSG_DONTWAIT), -1); /* nothing more */
                close(rx[k]);
                close(tx[k]);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_runs_one_call_each),
                cmocka_unit_test(test_reserved_not_committed_is_not_sent),
                cmocka_unit_test(test_full_batch_sent_before_more),
                cmocka_unit_test(test_refused_datagram_told_rest_sent),
                cmocka_unit_test(test_partial_call_continues),
                cmocka_unit_test(test_real_sockets),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
