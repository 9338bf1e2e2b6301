/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-sendq.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

static int sys_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags) {
        return sendmmsg(fd, msgs, n, flags);
}

void pcpd_sendq_init(pcpd_sendq *q, pcpd_sendq_failed_fn failed, void *userdata) {
        q->n = 0;
        q->used = 0;
        q->send = sys_sendmmsg;
        q->failed = failed;
        q->userdata = userdata;
}

uint8_t *pcpd_sendq_reserve(pcpd_sendq *q, size_t len_max) {
        assert(len_max <= PCPD_SENDQ_BYTES);
        if (q->n == PCPD_SENDQ_MAX || q->used + len_max > PCPD_SENDQ_BYTES)
                (void) pcpd_sendq_flush(q);
        return q->bytes + q->used;
}

void pcpd_sendq_commit(pcpd_sendq *q, int fd, size_t len, const void *tag) {
        assert(q->n < PCPD_SENDQ_MAX && q->used + len <= PCPD_SENDQ_BYTES);
        q->fds[q->n] = fd;
        q->tags[q->n] = tag;
        q->iov[q->n] = (struct iovec) { .iov_base = q->bytes + q->used, .iov_len = len };
        q->used += len;
        q->n++;
}

/* datagrams [i, end), all for one socket */
static unsigned send_run(pcpd_sendq *q, unsigned i, unsigned end) {
        unsigned calls = 0;

        for (unsigned k = i; k < end; k++)
                q->msgs[k] = (struct mmsghdr) { .msg_hdr = { .msg_iov = &q->iov[k], .msg_iovlen = 1 } };
        while (i < end) {
                int r = q->send(q->fds[i], &q->msgs[i], end - i, MSG_DONTWAIT);

                calls++;
                if (r > 0) {
                        i += (unsigned) r;
                        continue;
                }
                /* the first one not sent is the one the error is about: told, skipped, as
                 * a send() of it alone would have been (r == 0 does not happen for a
                 * batch of at least one; taken as a failure, never as a reason to spin) */
                if (q->failed != NULL)
                        q->failed(q->userdata, q->tags[i], r < 0 ? errno : EIO);
                i++;
        }
        return calls;
}

unsigned pcpd_sendq_flush(pcpd_sendq *q) {
        unsigned calls = 0, i = 0;

        while (i < q->n) {
                unsigned end = i + 1;

                while (end < q->n && q->fds[end] == q->fds[i])
                        end++;
                calls += send_run(q, i, end);
                i = end;
        }
        q->n = 0;
        q->used = 0;
        return calls;
}
