/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Datagrams for connected UDP sockets, sent in batches. What one drain of the engine has
 * to send (the renewals that share a timer slot, a burst of first requests, a restore)
 * goes out with one sendmmsg() per run of datagrams to the same socket instead of one
 * send() each. Nothing else changes: the datagrams leave in the order they were queued,
 * and one the kernel refuses is told to the failed callback with its errno while the ones
 * after it still go, as with a send(..., MSG_DONTWAIT) each. A sendmmsg() that stops
 * part-way is called again from the first datagram it did not send; if that one fails,
 * the error is its own. (One difference: a one-shot error pending on the socket, an ICMP
 * error from an earlier datagram, that stopped a call after its first datagram is used up
 * there, so the datagram it stopped at leaves with the next call where a send() of its
 * own would have failed; the error was about an earlier datagram anyway.)
 *
 * The queue holds no socket: its owner flushes it before anything that may close one
 * (pcpd-pcp.c: before each of the engine's events goes up, and at the end of a drain). */

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define PCPD_SENDQ_MAX 32       /* datagrams in one batch */
#define PCPD_SENDQ_BYTES 16384  /* their octets */

typedef int (*pcpd_sendq_sendmmsg_fn)(int fd, struct mmsghdr *msgs, unsigned int n, int flags);
/* tag: what pcpd_sendq_commit() was given with the datagram (e.g. the server's name) */
typedef void (*pcpd_sendq_failed_fn)(void *userdata, const void *tag, int err);

typedef struct pcpd_sendq {
        unsigned n;                    /* datagrams queued */
        size_t used;                   /* octets of bytes[] they take */
        pcpd_sendq_sendmmsg_fn send;   /* sendmmsg(2); a test's own */
        pcpd_sendq_failed_fn failed;
        void *userdata;
        int fds[PCPD_SENDQ_MAX];
        const void *tags[PCPD_SENDQ_MAX];
        struct iovec iov[PCPD_SENDQ_MAX];
        struct mmsghdr msgs[PCPD_SENDQ_MAX];
        uint8_t bytes[PCPD_SENDQ_BYTES];
} pcpd_sendq;

void pcpd_sendq_init(pcpd_sendq *q, pcpd_sendq_failed_fn failed, void *userdata);

/* Room for one datagram of at most len_max octets (<= PCPD_SENDQ_BYTES), to be written
 * there and then committed or not (nothing is queued until pcpd_sendq_commit()). Sends
 * what is queued first when the batch is full. */
uint8_t *pcpd_sendq_reserve(pcpd_sendq *q, size_t len_max);

/* Queues the len octets written at the last pcpd_sendq_reserve() for fd. */
void pcpd_sendq_commit(pcpd_sendq *q, int fd, size_t len, const void *tag);

/* Sends everything queued and empties the queue; returns the system calls it made. */
unsigned pcpd_sendq_flush(pcpd_sendq *q);
