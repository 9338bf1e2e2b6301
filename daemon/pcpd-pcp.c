/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-pcp.h"
#include "pcpd-log.h"
#include "pcpd-sendq.h"
#include "pcpd-timer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib-unix.h>
#include <glib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

_Static_assert(PCPD_SERVER_MAX_ADDRS == PCP_SERVER_MAX_ADDRS, "pcpd-server.h and the engine agree");

/* a server's part here (pcpd_server.pcp): its engine id and its sockets, one per
 * address, each watched by a server_source */
typedef struct pcpd_pcp_server {
        pcpd_pcp *pcp;
        pcpd_server *server; /* the owner's, for its events */
        uint32_t engine_id;
        char *text; /* for log lines */
        bool told_silent; /* the engine's info.silent as last logged (log_silence()) */
        size_t n_addrs;
        int fds[PCP_SERVER_MAX_ADDRS];
        guint watches[PCP_SERVER_MAX_ADDRS];
} server_io;

/* An engine mapping that holds an owner's mapping has nothing here: mp->pcp is its engine
 * id and its engine userdata is mp (pcpd_pcp_mapping_add()), which comes back with its
 * events. Once mp lets go of it (removed, detached), its userdata is NULL; if somebody
 * waits for the end of its delete (a cookie: pcpd_pcp_mapping_remove(),
 * pcpd_pcp_delete_saved()), it has one of these, in p->deleting and under its cookie in
 * p->deletes. (A table of every engine mapping here, and an entry for each, cost ~60
 * octets a mapping.) */
typedef struct delete_entry {
        uint64_t engine_id;
        uint64_t cookie;
} delete_entry;

struct pcpd_pcp {
        const pcpd_backend_events *ops;
        void *userdata;
        pcp_engine *engine;
        pcpd_timer *timer;         /* the engine's clock; NULL until pcpd_pcp_start() */
        GHashTable *servers;       /* engine server id -> server_io* (owned) */
        GHashTable *deleting;      /* engine mapping id (uint64_t *) -> delete_entry* (owned) */
        GHashTable *deletes;       /* cookie (uint64_t *) -> delete_entry* in deleting */
        int announce_fds[2];       /* IPv4, IPv6; -1 when not listening */
        guint announce_watches[2];
        uint64_t drops_logged[_PCP_DROP_MAX]; /* engine drop counters as last logged */
        gint64 drop_log_next;                 /* monotonic µs: no drop line before */
        guint drop_log_source;
        bool stopped;
        uint8_t random_pool[512]; /* getrandom() in batches, not one syscall per draw */
        size_t random_left;
        pcpd_sendq sendq;         /* a drain's datagrams, sent in batches (pcpd-sendq.h) */
};

static uint64_t now_ms(void) {
        return (uint64_t) g_get_monotonic_time() / 1000;
}

static uint64_t realtime_us(void) {
        return (uint64_t) g_get_real_time();
}

/* ---- addresses: the engine's IPv4-mapped sockaddr_in6 <-> what the socket takes ---- */

static socklen_t to_native(const struct sockaddr_in6 *in, struct sockaddr_storage *out) {
        struct in_addr v4;

        memset(out, 0, sizeof(*out));
        if (pcp_addr_to_ipv4(&in->sin6_addr, &v4)) {
                struct sockaddr_in *sin = (struct sockaddr_in *) out;
                sin->sin_family = AF_INET;
                sin->sin_port = in->sin6_port;
                sin->sin_addr = v4;
                return sizeof(*sin);
        }
        memcpy(out, in, sizeof(*in));
        return sizeof(*in);
}

static void from_native(const struct sockaddr_storage *in, struct sockaddr_in6 *out) {
        memset(out, 0, sizeof(*out));
        out->sin6_family = AF_INET6;
        if (in->ss_family == AF_INET) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *) in;
                pcp_addr_from_ipv4(&sin->sin_addr, &out->sin6_addr);
                out->sin6_port = sin->sin_port;
        } else if (in->ss_family == AF_INET6)
                memcpy(out, in, sizeof(*out));
}

/* ---- the engine's output, pulled ---- */

static server_io *server_by_engine_id(pcpd_pcp *p, uint32_t id) {
        return g_hash_table_lookup(p->servers, GUINT_TO_POINTER(id));
}

static void on_engine_random(void *userdata, void *buf, size_t len) {
        pcpd_pcp *p = userdata;
        uint8_t *out = buf;

        while (len > 0) {
                size_t n;
                if (p->random_left == 0) {
                        ssize_t r = getrandom(p->random_pool, sizeof(p->random_pool), 0);
                        if (r < 0) {
                                if (errno == EINTR)
                                        continue;
                                g_error("getrandom() failed: %s", g_strerror(errno)); /* aborts */
                        }
                        p->random_left = (size_t) r;
                }
                n = MIN(len, p->random_left);
                /* take from the end and wipe what was used */
                memcpy(out, p->random_pool + p->random_left - n, n);
                memset(p->random_pool + p->random_left - n, 0, n);
                p->random_left -= n;
                out += n;
                len -= n;
        }
}

void pcpd_pcp_random(pcpd_pcp *p, void *buf, size_t len) {
        on_engine_random(p, buf, len);
}

/* a datagram the kernel would not take: lost, as the network might lose it (the engine
 * retransmits on its schedule) */
static void on_send_failed(void *userdata, const void *tag, int err) {
        const char *server = tag;

        (void) userdata;
        if (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH)
                /* an earlier ICMP error surfaces here: let the engine know, later */
                g_debug("send to %s: %s", server, g_strerror(err));
        else
                g_debug("send to %s failed: %s", server, g_strerror(err));
}

/* the len octets the engine wrote at the queue's reserved room go to their server's
 * socket with the next flush */
static void engine_send(pcpd_pcp *p, uint32_t server_id, size_t addr_index, size_t len) {
        server_io *s = server_by_engine_id(p, server_id);

        if (s == NULL || addr_index >= s->n_addrs)
                return;
        pcpd_sendq_commit(&p->sendq, s->fds[addr_index], len, s->text);
}

/* ---- the engine's events, up in the owner's terms ---- */

static bool info_view(const pcp_mapping_info *i, pcpd_backend_info *ret);

/* e's delete is no longer told under its cookie; true when it was e's to tell (a cookie
 * given again to a later delete belongs to that one) */
static bool deletes_drop(pcpd_pcp *p, delete_entry *e) {
        if (e->cookie == 0 || g_hash_table_lookup(p->deletes, &e->cookie) != e)
                return false;
        g_hash_table_remove(p->deletes, &e->cookie);
        return true;
}

static void tell_mapping(pcpd_pcp *p, const pcp_event *ev) {
        pcpd_mapping *mp = ev->mapping_userdata;
        pcpd_backend_info bi;
        char detail[256];
        bool show;

        if (mp == NULL)
                return; /* detached, or being deleted */
        g_assert(mp->pcp == ev->mapping_id);
        show = info_view(ev->mapping, &bi);
        /* the answer does not say which option: the log line names those the request carried */
        if (show && ev->mapping->state == PCP_MAPPING_FAILED && ev->mapping->error == PCP_MAPPING_ERROR_RESULT &&
            ev->mapping->result == PCP_RESULT_UNSUPP_OPTION) {
                pcpd_pcp_mapping_unsupp_option_text(p, mp, detail, sizeof(detail));
                bi.error_detail = detail;
        }
        p->ops->mapping_changed(p->userdata, mp, show ? &bi : NULL, ev->mapping->state == PCP_MAPPING_ACTIVE);
}

static void tell_mapping_deleted(pcpd_pcp *p, const pcp_event *ev) {
        pcpd_mapping *mp = ev->mapping_userdata;
        delete_entry *e;
        uint64_t cookie;
        bool owned;

        if (mp != NULL) {
                /* dropped under the owner: its server went away */
                g_assert(mp->pcp == ev->mapping_id);
                mp->pcp = 0;
                p->ops->mapping_lost(p->userdata, mp);
                return;
        }
        g_debug("mapping %" G_GUINT64_FORMAT " deleted upstream: %s", ev->mapping_id,
                ev->deleted_upstream ? "confirmed" : "not confirmed");
        e = g_hash_table_lookup(p->deleting, &ev->mapping_id);
        if (e == NULL)
                return; /* nobody waits for it */
        cookie = e->cookie;
        owned = deletes_drop(p, e);
        g_hash_table_remove(p->deleting, &ev->mapping_id); /* frees e */
        if (owned)
                p->ops->deleting_done(p->userdata, cookie, ev->deleted_upstream);
}

/* A server that stops answering (pcp_server_info.silent) and one heard again: one line
 * each, once per episode (a SERVER event comes for other news too: its state, epoch,
 * external address). Servers lists it as protocol "none" meanwhile; its mappings stay on
 * it and are asked on their schedules. Only on a SERVER event: nothing per datagram. */
static void log_silence(server_io *s, const pcp_server_info *si) {
        const char *kv[] = { "PCPD_SERVER", s->text, "PCPD_SERVER_STATE", pcp_server_state_to_string(si->state), NULL };
        uint64_t now;
        unsigned secs;

        if (si->silent == s->told_silent)
                return; /* other news of it */
        s->told_silent = si->silent;
        now = now_ms();
        secs = si->silent_since != 0 && now > si->silent_since ? (unsigned) ((now - si->silent_since) / 1000) : 0;
        if (si->silent)
                pcpd_log_event(G_LOG_LEVEL_WARNING, PCPD_MSGID_SERVER_STATE, kv,
                               "PCP server %s has not answered for %u s; its mappings wait for it (listed with "
                               "protocol \"none\" until it answers)",
                               s->text, secs);
        else
                pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_SERVER_STATE, kv,
                               "PCP server %s answers again after %u s", s->text, secs);
}

static void tell(pcpd_pcp *p, const pcp_event *ev) {
        server_io *s;

        switch (ev->type) {
        case PCP_EVENT_MAPPING:
                tell_mapping(p, ev);
                return;
        case PCP_EVENT_MAPPING_DELETED:
                tell_mapping_deleted(p, ev);
                return;
        case PCP_EVENT_SERVER: {
                pcpd_server_status st;

                s = server_by_engine_id(p, ev->server_id);
                if (s != NULL && ev->server != NULL)
                        log_silence(s, ev->server);
                if (ev->server != NULL)
                        st = (pcpd_server_status) {
                                .state = pcpd_pcp_server_state_of(ev->server->state),
                                .state_name = pcp_server_state_to_string(ev->server->state),
                                .disabled_until = ev->server->disabled_until,
                                .address_mismatch = ev->server->address_mismatch,
                        };
                p->ops->server_changed(p->userdata, s != NULL ? s->server : NULL, ev->server != NULL ? &st : NULL);
                return;
        }
        case PCP_EVENT_EPOCH_RESET:
                s = server_by_engine_id(p, ev->server_id);
                p->ops->server_epoch_reset(p->userdata, s != NULL ? s->server : NULL, ev->repeated, ev->from_announce);
                return;
        case PCP_EVENT_RECREATE:
                s = server_by_engine_id(p, ev->server_id);
                p->ops->server_recreate(p->userdata, s != NULL ? s->server : NULL, ev->repeated, ev->from_announce,
                                        ev->n_recreated);
                return;
        }
}

/* What the engine has to send and to say after a call into it, pulled now that every id
 * the call returned is known here: its datagrams go out on their server's socket, its
 * events go up. The datagrams are encoded straight into the send queue and leave with one
 * sendmmsg() per socket and batch; the queue is flushed before each event goes up (the
 * owner may remove a server and close its sockets there, and a datagram pulled before an
 * event has always left before the event was told). */
void pcpd_pcp_drain(pcpd_pcp *p) {
        uint32_t server_id;
        size_t addr_index;
        pcp_event ev;

        for (;;) {
                for (;;) {
                        uint8_t *buf = pcpd_sendq_reserve(&p->sendq, PCP_ENGINE_DATAGRAM_MAX);
                        int n = pcp_engine_next_datagram(p->engine, &server_id, &addr_index, buf,
                                                         PCP_ENGINE_DATAGRAM_MAX);

                        if (n <= 0)
                                break;
                        engine_send(p, server_id, addr_index, (size_t) n);
                }
                (void) pcpd_sendq_flush(&p->sendq);
                if (pcp_engine_next_event(p->engine, &ev) <= 0)
                        break;
                tell(p, &ev);
        }
}

/* ---- the engine's clock ---- */

static void on_engine_timer(void *data) {
        pcpd_pcp *p = data;
        pcp_engine_process_timers(p->engine, now_ms());
        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
}

/* The engine's deadlines fire in 50 ms slots, so renewals (and retransmissions) due close
 * together share one wake-up, one sendmmsg(), one poll for their answers and one recvmmsg().
 * 50 ms late is far inside what the protocol allows: RFC 6887 jitters each retransmission
 * by ±10 % of at least 3 s and renews at a random point of a window 1/8 of the lifetime
 * wide. Measured in bench/README.md (per renewal). */
#define ENGINE_TIMER_SLACK_USEC (50 * 1000)

/* delete requests sent without an answer before the engine gives a delete up: ~1 hour
 * (pcpd_pcp_new()) */
#define PCPD_DELETE_ATTEMPTS 12

/* after anything that may have changed the engine's next deadline: from the loop's own
 * dispatches (all of pcpd's calls) this costs no system call (pcpd-timer.h) */
void pcpd_pcp_kick(pcpd_pcp *p) {
        uint64_t d = pcp_engine_next_deadline(p->engine);

        if (p->timer == NULL)
                return;
        pcpd_timer_set_deadline(p->timer, d == PCP_NEVER ? PCPD_TIMER_NEVER : (gint64) d * 1000);
}

/* ---- dropped datagrams: counted by the engine, told to the admin at most once a minute ---- */

#define DROP_LOG_INTERVAL_USEC (60 * G_USEC_PER_SEC)

static gboolean on_drop_log(gpointer data) {
        pcpd_pcp *p = data;
        const pcp_engine_stats *st = pcp_engine_get_stats(p->engine);
        g_autoptr(GString) why = g_string_new(NULL);
        uint64_t total = 0;

        p->drop_log_source = 0;
        for (int r = 0; r < _PCP_DROP_MAX; r++) {
                uint64_t d = st->dropped[r] - p->drops_logged[r];

                if (d == 0)
                        continue;
                total += d;
                g_string_append_printf(why, "%s%" G_GUINT64_FORMAT " %s", why->len > 0 ? ", " : "", d,
                                       pcp_drop_reason_to_string((pcp_drop_reason) r));
                p->drops_logged[r] = st->dropped[r];
        }
        if (total > 0) {
                g_message("Dropped %" G_GUINT64_FORMAT " datagram(s) that were no valid answer to a request of "
                          "ours (%s): late answers to requests pcpd no longer waits for (a slow or "
                          "restarting router), a buggy router, or someone spoofing one",
                          total, why->str);
                p->drop_log_next = g_get_monotonic_time() + DROP_LOG_INTERVAL_USEC;
        }
        return G_SOURCE_REMOVE;
}

/* after input: a burst of drops becomes one line a second later, then at most one a minute */
static void note_drops(pcpd_pcp *p) {
        const pcp_engine_stats *st = pcp_engine_get_stats(p->engine);
        gint64 now, wait_ms;

        if (p->stopped || p->drop_log_source != 0 ||
            memcmp(st->dropped, p->drops_logged, sizeof(p->drops_logged)) == 0)
                return;
        now = g_get_monotonic_time();
        wait_ms = p->drop_log_next > now ? (p->drop_log_next - now) / 1000 : 0;
        p->drop_log_source = g_timeout_add((guint) MAX(wait_ms, 1000), on_drop_log, p);
}

/* ---- reading datagrams ---- */

/* The datagrams waiting, a batch per recvmmsg(), each with the engine time it arrived: the
 * kernel's receive timestamp (SO_TIMESTAMPNS, CLOCK_REALTIME) moved onto the monotonic
 * clock. The engine checks the server's epoch against the arrival (RFC 6887 §8.5): a
 * datagram that waited while the loop was busy for a second must not look like a router
 * restart. No timestamp, or an implausible one (the wall clock was set): the arrival is
 * now. */
#define RECV_BATCH 16

typedef struct recv_batch {
        struct mmsghdr mm[RECV_BATCH];
        struct iovec iov[RECV_BATCH];
        struct sockaddr_storage from[RECV_BATCH];
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(struct timespec))];
        } ctl[RECV_BATCH];
        uint8_t buf[RECV_BATCH][PCP_MAX_MSG_LEN + 4];
} recv_batch;

/* The two clocks read together, for one datagram: `now` (monotonic) and the wall clock
 * its kernel timestamp is measured against. Read once per datagram, not per batch: handling
 * one runs its callbacks (D-Bus signals, the journal's append, log lines), which may wait
 * for a busy disk or CPU. With a `now` read before that wait and a wall clock read after it,
 * the next datagram of the batch came out as arrived earlier than it did, by the wait: an
 * epoch that then looks as if the server's clock ran ahead of ours, which RFC 6887 §8.5's
 * check (2 s slack) takes for a reset once the wait is long enough. The engine was also
 * told a `now` in the past for it, so whatever it scheduled then (a renewal, a request sent)
 * was dated too early by the wait. */
typedef struct rx_clock {
        uint64_t now;  /* monotonic ms */
        int64_t real_us;
} rx_clock;

/* The pair is read tight: monotonic, wall, monotonic, and `now` is the midpoint of the two
 * monotonic reads. A thread preempted between two plain reads would date the datagram
 * too early by the preemption (the wall clock read late makes its age look longer); when
 * the two monotonic reads are more than RX_CLOCK_TIGHT_US apart, the three are read again,
 * RX_CLOCK_TRIES times at most, and the tightest pair is kept. Three vDSO reads per
 * datagram in the usual case: no system call. */
#define RX_CLOCK_TIGHT_US 1000
#define RX_CLOCK_TRIES 3

static rx_clock rx_clock_read(void) {
        int64_t best_span = INT64_MAX, best_mono = 0, best_real = 0;

        for (int i = 0; i < RX_CLOCK_TRIES; i++) {
                int64_t before = g_get_monotonic_time(), real = g_get_real_time(), after = g_get_monotonic_time();

                if (after - before < best_span) {
                        best_span = after - before;
                        best_mono = before + (after - before) / 2;
                        best_real = real;
                }
                if (best_span <= RX_CLOCK_TIGHT_US)
                        break;
        }
        return (rx_clock) { .now = (uint64_t) best_mono / 1000, .real_us = best_real };
}

static uint64_t arrival_ms(const struct msghdr *mh, rx_clock clk) {
        uint64_t now = clk.now;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR((struct msghdr *) mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS &&
                    c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                        struct timespec ts;
                        int64_t age_ms;

                        memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                        age_ms = (clk.real_us - ((int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000)) / 1000;
                        if (age_ms > 0 && age_ms < 60 * 1000 && (uint64_t) age_ms < now)
                                return now - (uint64_t) age_ms;
                }
        return now;
}

static int recv_batch_read(int fd, recv_batch *b) {
        for (int i = 0; i < RECV_BATCH; i++) {
                b->iov[i] = (struct iovec) { .iov_base = b->buf[i], .iov_len = sizeof(b->buf[i]) };
                b->mm[i] = (struct mmsghdr) {
                        .msg_hdr = {
                                .msg_name = &b->from[i],
                                .msg_namelen = sizeof(b->from[i]),
                                .msg_iov = &b->iov[i],
                                .msg_iovlen = 1,
                                .msg_control = b->ctl[i].buf,
                                .msg_controllen = sizeof(b->ctl[i].buf),
                        },
                };
        }
        return recvmmsg(fd, b->mm, RECV_BATCH, MSG_DONTWAIT, NULL);
}

/* still the server being read? A callback told from a drain may remove it (pcpd-pcp.h
 * allows that; so may a main loop iteration nested in one): server_io_free() has freed s
 * then, and nothing of it may be read again */
static bool server_still(pcpd_pcp *p, uint32_t engine_id, const server_io *s) {
        return server_by_engine_id(p, engine_id) == s;
}

static void server_socket_read(server_io *s, int fd) {
        pcpd_pcp *p = s->pcp;
        const uint32_t engine_id = s->engine_id;
        recv_batch batch, *b = &batch; /* ~18 KiB: fine on the main thread's stack */
        size_t idx = 0;

        for (size_t i = 0; i < s->n_addrs; i++)
                if (s->fds[i] == fd)
                        idx = i;
        /* bounded per wake-up so one chatty server cannot starve the loop */
        for (int round = 0; round < 64 / RECV_BATCH; round++) {
                int n = recv_batch_read(fd, b);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH ||
                            errno == EHOSTDOWN) {
                                g_debug("server %s: %s", s->text, g_strerror(errno));
                                pcp_engine_unreachable(p->engine, now_ms(), engine_id, idx);
                                pcpd_pcp_drain(p);
                                if (!server_still(p, engine_id, s))
                                        goto done;
                                continue;
                        }
                        break;
                }
                for (int i = 0; i < n; i++) {
                        struct sockaddr_in6 from6;
                        rx_clock clk = rx_clock_read(); /* per datagram: see rx_clock */

                        from_native(&b->from[i], &from6);
                        pcp_engine_receive_at(p->engine, clk.now, arrival_ms(&b->mm[i].msg_hdr, clk), engine_id, idx,
                                              &from6, b->buf[i], b->mm[i].msg_len);
                        pcpd_pcp_drain(p);
                        /* the rest of the batch came on a socket that is closed now: the
                         * engine would drop it (no such server) */
                        if (!server_still(p, engine_id, s))
                                goto done;
                }
                /* fewer than asked: the queue was empty a moment ago, and the poll is
                 * level-triggered, so what comes later wakes the loop again: no read just
                 * to be told EAGAIN */
                if (n < RECV_BATCH)
                        break;
        }
done:
        note_drops(p);
        pcpd_pcp_kick(p);
}

/* ---- servers and their sockets ---- */

/* A server socket's source. It may recurse (g_source_set_can_recurse()): GLib otherwise
 * takes a source's descriptors out of the poll set for each dispatch and puts them back
 * after it, and each change writes the context's wake-up eventfd, so every answer cost a
 * write, a poll and a read of that eventfd on top of its own receive. What the blocking
 * protected against is a nested main loop iteration running inside this dispatch; the
 * only one in pcpd is pcpd_upnp_free() (reachable from an engine event through
 * iface_get()'s failure path). Such an iteration still never enters this dispatch twice:
 * while it runs, prepare() takes the descriptor out of the poll set itself (the same cost
 * as GLib's blocking, paid only then) and check() answers no. */
typedef struct server_source {
        GSource source;
        server_io *server;
        int fd;
        gpointer tag;
        bool dispatching, muted;
} server_source;

static gboolean server_source_prepare(GSource *source, gint *timeout) {
        server_source *ss = (server_source *) source;

        if (ss->dispatching != ss->muted) {
                ss->muted = ss->dispatching;
                g_source_modify_unix_fd(source, ss->tag, ss->muted ? 0 : G_IO_IN | G_IO_ERR);
        }
        *timeout = -1;
        return FALSE;
}

static gboolean server_source_check(GSource *source) {
        server_source *ss = (server_source *) source;

        return !ss->dispatching && g_source_query_unix_fd(source, ss->tag) != 0;
}

static gboolean server_source_dispatch(GSource *source, GSourceFunc cb, gpointer data) {
        server_source *ss = (server_source *) source;

        if (ss->dispatching)
                return G_SOURCE_CONTINUE;
        ss->dispatching = true;
        server_socket_read(ss->server, ss->fd);
        ss->dispatching = false;
        return G_SOURCE_CONTINUE;
}

static GSourceFuncs server_source_funcs = {
        .prepare = server_source_prepare,
        .check = server_source_check,
        .dispatch = server_source_dispatch,
};

static guint server_source_add(server_io *s, int fd) {
        GSource *source = g_source_new(&server_source_funcs, sizeof(server_source));
        server_source *ss = (server_source *) source;
        guint id;

        ss->server = s;
        ss->fd = fd;
        ss->tag = g_source_add_unix_fd(source, fd, G_IO_IN | G_IO_ERR);
        g_source_set_can_recurse(source, TRUE);
        g_source_set_name(source, "pcp-server");
        id = g_source_attach(source, NULL);
        g_source_unref(source);
        return id;
}

/* Room for the answers to what goes out at once. The requests of many calls leave in one
 * turn of the loop (10,000 AddMapping at once put ~2,000 on the wire before pcpd reads
 * again), their answers arrive together, and one the kernel drops for want of room costs a
 * 3 s retransmission. The kernel counts each datagram at its buffer's size, not its 60
 * bytes: the default (net.core.rmem_default, 208 KiB here) holds a few hundred answers,
 * 4 MiB a few thousand. SO_RCVBUFFORCE works with CAP_NET_ADMIN; without it SO_RCVBUF is
 * capped at net.core.rmem_max, said once at debug level. */
#define SERVER_RCVBUF (4 * 1024 * 1024)

static void server_socket_size_rcvbuf(int fd) {
        static bool told;
        int size = SERVER_RCVBUF, got = 0;
        socklen_t len = sizeof(got);

        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        /* the kernel reports twice what was set (its bookkeeping overhead included) */
        if (!told && getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 && got < size) {
                told = true;
                g_debug("PCP server sockets get a %d-byte receive buffer, not %d: without CAP_NET_ADMIN "
                        "net.core.rmem_max caps it, and a burst of answers may overflow it",
                        got / 2, size);
        }
}

static int open_server_socket(const struct sockaddr_in6 *remote, struct in6_addr *ret_local) {
        struct sockaddr_storage ss, local;
        socklen_t len = to_native(remote, &ss), ll = sizeof(local);
        struct sockaddr_in6 l6;
        int fd;

        fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP);
        if (fd < 0)
                return -errno;
        /* connect() picks the source address the server will see: the PCP client IP must be
         * exactly that (RFC 6887 §8.1), or real servers answer ADDRESS_MISMATCH */
        if (connect(fd, (struct sockaddr *) &ss, len) < 0 || getsockname(fd, (struct sockaddr *) &local, &ll) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        from_native(&local, &l6);
        *ret_local = l6.sin6_addr;
        /* arrival times for the engine's epoch check (arrival_ms()) */
        (void) setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &(int) { 1 }, sizeof(int));
        server_socket_size_rcvbuf(fd);
        return fd;
}

static void server_io_free(server_io *s) {
        if (s == NULL)
                return;
        for (size_t i = 0; i < s->n_addrs; i++) {
                if (s->watches[i] != 0)
                        g_source_remove(s->watches[i]);
                if (s->fds[i] >= 0)
                        close(s->fds[i]);
        }
        g_free(s->text);
        g_free(s);
}

int pcpd_pcp_server_add(pcpd_pcp *p, pcpd_server *server) {
        pcp_server_addr ea[PCP_SERVER_MAX_ADDRS] = { 0 };
        size_t n = server->n_addrs;
        server_io *s;
        int r;

        if (n == 0 || n > PCP_SERVER_MAX_ADDRS || server->pcp != NULL)
                return -EINVAL;
        s = g_new0(server_io, 1);
        s->pcp = p;
        s->server = server;
        s->text = g_strdup(server->text);
        s->n_addrs = n;
        for (size_t i = 0; i < n; i++)
                s->fds[i] = -1;
        for (size_t i = 0; i < n; i++) {
                s->fds[i] = open_server_socket(&server->addrs[i], &ea[i].local);
                if (s->fds[i] < 0) {
                        r = s->fds[i];
                        g_warning("PCP server %s: cannot open a socket toward it: %s", s->text, g_strerror(-r));
                        s->fds[i] = -1;
                        server_io_free(s);
                        return r;
                }
                ea[i].remote = server->addrs[i];
                if (!p->stopped) /* read from the loop until pcpd_pcp_stop() */
                        s->watches[i] = server_source_add(s, s->fds[i]);
        }
        r = pcp_engine_add_server(p->engine, now_ms(), ea, n, &s->engine_id);
        if (r < 0) {
                server_io_free(s);
                return r;
        }
        g_hash_table_insert(p->servers, GUINT_TO_POINTER(s->engine_id), s);
        server->pcp = s;
        return 0;
}

void pcpd_pcp_server_remove(pcpd_pcp *p, pcpd_server *server) {
        server_io *s = server->pcp;

        if (s == NULL)
                return;
        /* out of the tables before anything is told: a callback that removes this server
         * again finds nothing to remove */
        server->pcp = NULL;
        g_hash_table_steal(p->servers, GUINT_TO_POINTER(s->engine_id));
        /* its mappings are dropped: each told as lost (or its delete as done), drained here */
        pcp_engine_remove_server(p->engine, now_ms(), s->engine_id);
        pcpd_pcp_drain(p);
        server_io_free(s);
}

const pcp_server_info *pcpd_pcp_server_info(pcpd_pcp *p, const pcpd_server *s) {
        return s->pcp != NULL ? pcp_engine_server_get(p->engine, s->pcp->engine_id) : NULL;
}

bool pcpd_pcp_server_known(pcpd_pcp *p, const pcpd_server *s) {
        return pcpd_pcp_server_info(p, s) != NULL;
}

pcpd_server_state pcpd_pcp_server_state_of(pcp_server_state st) {
        static const pcpd_server_state states[_PCP_SERVER_STATE_MAX] = {
                [PCP_SERVER_UNKNOWN] = PCPD_SERVER_UNKNOWN,         [PCP_SERVER_PCP] = PCPD_SERVER_PCP,
                [PCP_SERVER_NATPMP] = PCPD_SERVER_NATPMP,           [PCP_SERVER_DISABLED] = PCPD_SERVER_DISABLED,
                [PCP_SERVER_UNREACHABLE] = PCPD_SERVER_UNREACHABLE, [PCP_SERVER_UNSUPPORTED] = PCPD_SERVER_UNSUPPORTED,
        };
        return (unsigned) st < _PCP_SERVER_STATE_MAX ? states[st] : PCPD_SERVER_UNKNOWN;
}

pcpd_server_state pcpd_pcp_server_state(pcpd_pcp *p, const pcpd_server *s) {
        const pcp_server_info *si = pcpd_pcp_server_info(p, s);

        return si != NULL ? pcpd_pcp_server_state_of(si->state) : PCPD_SERVER_UNKNOWN;
}

bool pcpd_pcp_server_view(pcpd_pcp *p, const pcpd_server *s, pcpd_server_view *ret) {
        const pcp_server_info *si = pcpd_pcp_server_info(p, s);

        *ret = (pcpd_server_view) { .state = PCPD_SERVER_UNKNOWN };
        if (si == NULL)
                return false;
        ret->state = pcpd_pcp_server_state_of(si->state);
        ret->silent = si->silent;
        ret->epoch = si->epoch;
        for (size_t i = 0; i < si->n_prefix64 && i < G_N_ELEMENTS(ret->prefix64); i++) {
                ret->prefix64[i].prefix = si->prefix64[i].prefix;
                ret->prefix64[i].prefix_len = si->prefix64[i].prefix_len;
                ret->n_prefix64++;
        }
        return true;
}

bool pcpd_pcp_server_external(pcpd_pcp *p, const pcpd_server *s, struct in6_addr *ret) {
        const pcp_server_info *si = pcpd_pcp_server_info(p, s);

        if (si == NULL || !si->has_external_addr)
                return false;
        *ret = si->external_addr;
        return true;
}

size_t pcpd_pcp_server_local_addresses(pcpd_pcp *p, const pcpd_server *s, struct in6_addr *ret, size_t max) {
        const pcp_server_info *si = pcpd_pcp_server_info(p, s);
        size_t n = 0;

        for (size_t i = 0; si != NULL && i < si->n_addrs && n < max; i++)
                ret[n++] = si->addrs[i].local;
        return n;
}

/* ---- mappings ---- */

/* the engine's request for mp on server s, from what its caller asked for */
static void mapping_params(const pcpd_mapping *mp, const server_io *s, pcp_mapping_params *ret) {
        *ret = (pcp_mapping_params) {
                .server_id = s->engine_id,
                .opcode = mp->opcode,
                .protocol = mp->protocol,
                .internal_port = mp->internal_port,
                .suggested_external_port = mp->suggested_port,
                .lifetime = mp->lifetime,
                .remote_port = mp->remote_port,
                .has_third_party = mp->has_third_party,
                .third_party = *pcpd_mapping_third_party(mp),
                .prefer_failure = mp->prefer_failure,
                .n_filters = pcpd_mapping_n_filters(mp),
                .description = mp->description != NULL && mp->description[0] != '\0' ? mp->description : NULL,
                .has_nonce = true,
        };
        if (mp->has_suggested_address)
                ret->suggested_external_addr = *pcpd_mapping_suggested_address(mp);
        if (pcpd_mapping_remote_address(mp) != NULL)
                pcp_addr_from_string(pcpd_mapping_remote_address(mp), &ret->remote_addr);
        if (pcpd_mapping_n_filters(mp) > 0)
                memcpy(ret->filters, pcpd_mapping_filters(mp), pcpd_mapping_n_filters(mp) * sizeof(pcp_filter));
        memcpy(ret->nonce, mp->nonce, PCP_NONCE_LEN);
}

/* somebody waits for the end of engine mapping engine_id's delete, under cookie (≠ 0) */
static void delete_entry_add(pcpd_pcp *p, uint64_t engine_id, uint64_t cookie) {
        delete_entry *e = g_new(delete_entry, 1);

        e->engine_id = engine_id;
        e->cookie = cookie;
        g_hash_table_insert(p->deleting, &e->engine_id, e);
        g_hash_table_replace(p->deletes, &e->cookie, e);
}

int pcpd_pcp_mapping_add(pcpd_pcp *p, pcpd_mapping *mp, pcpd_server *s, const struct in6_addr *suggested_external) {
        pcp_mapping_params params;
        uint64_t id;
        int r;

        if (s->pcp == NULL || mp->pcp != 0 || !mp->has_nonce)
                return -EINVAL;
        mapping_params(mp, s->pcp, &params);
        if (suggested_external != NULL)
                params.suggested_external_addr = *suggested_external;
        params.userdata = mp;
        r = pcp_engine_add_mapping(p->engine, now_ms(), &params, &id);
        if (r < 0)
                return r;
        g_assert(id != 0); /* the engine's ids start at 1: 0 is "none" in mp->pcp */
        mp->pcp = id;
        return 0;
}

bool pcpd_pcp_mapping_held(const pcpd_mapping *mp) {
        return mp->pcp != 0;
}

/* the engine's info of mp's engine mapping, NULL when it has none */
static const pcp_mapping_info *held_info(pcpd_pcp *p, const pcpd_mapping *mp) {
        return mp->pcp != 0 ? pcp_engine_mapping_get(p->engine, mp->pcp) : NULL;
}

bool pcpd_pcp_mapping_view(pcpd_pcp *p, const pcpd_mapping *mp, pcpd_backend_info *ret) {
        const pcp_mapping_info *i = held_info(p, mp);

        return i != NULL && info_view(i, ret);
}

/* append name to a ", "-list in buf */
static void name_append(char *buf, size_t size, const char *name) {
        if (buf[0] != '\0')
                g_strlcat(buf, ", ", size);
        g_strlcat(buf, name, size);
}

void pcpd_pcp_mapping_unsupp_option_text(pcpd_pcp *p, const pcpd_mapping *mp, char *buf, size_t size) {
        char mandatory[64] = "", optional[32] = "";
        uint32_t options;
        uint8_t n_filters;

        if (size == 0)
                return;
        buf[0] = '\0';
        if (mp->pcp == 0 || pcp_engine_mapping_request_options(p->engine, mp->pcp, &options, &n_filters) < 0)
                return;
        /* RFC 6887 §7: a server answers UNSUPP_OPTION only for an option in the
         * mandatory-to-process range (codes below 128); it ignores the others */
        if (options & PCP_HAS_THIRD_PARTY)
                name_append(mandatory, sizeof(mandatory), pcp_option_to_string(PCP_OPTION_THIRD_PARTY));
        if (options & PCP_HAS_PREFER_FAILURE)
                name_append(mandatory, sizeof(mandatory), pcp_option_to_string(PCP_OPTION_PREFER_FAILURE));
        if (n_filters > 0)
                name_append(mandatory, sizeof(mandatory), pcp_option_to_string(PCP_OPTION_FILTER));
        if (options & PCP_HAS_DESCRIPTION)
                name_append(optional, sizeof(optional), pcp_option_to_string(PCP_OPTION_DESCRIPTION));
        if (options & PCP_HAS_PORT_SET)
                name_append(optional, sizeof(optional), pcp_option_to_string(PCP_OPTION_PORT_SET));
        if (mandatory[0] != '\0')
                g_snprintf(buf, size, "the server does not support %s the request carried: %s",
                           strchr(mandatory, ',') != NULL ? "one of the options" : "the option", mandatory);
        else if (optional[0] != '\0')
                g_snprintf(buf, size,
                           "the request carried no mandatory option (only %s, which a server may ignore): an odd "
                           "answer from the server",
                           optional);
        else
                g_snprintf(buf, size, "the request carried no option: an odd answer from the server");
}

bool pcpd_pcp_mapping_delete_until(pcpd_pcp *p, const pcpd_mapping *mp, uint64_t *ret) {
        const pcp_mapping_info *i = held_info(p, mp);

        if (i == NULL)
                return false;
        *ret = realtime_us() + (uint64_t) MAX(i->lifetime_requested, i->lifetime_granted) * G_USEC_PER_SEC;
        return true;
}

void pcpd_pcp_mapping_remove(pcpd_pcp *p, pcpd_mapping *mp, uint64_t cookie) {
        uint64_t id = mp->pcp;

        if (id == 0)
                return;
        mp->pcp = 0;
        (void) pcp_engine_mapping_set_userdata(p->engine, id, NULL);
        if (cookie != 0)
                /* from now on its delete: told under cookie when it is over */
                delete_entry_add(p, id, cookie);
        /* lifetime 0 with the same nonce; the engine retries a few times on its own (and may
         * give up at once: told in the drain) */
        (void) pcp_engine_remove_mapping(p->engine, now_ms(), id);
        pcpd_pcp_drain(p);
}

void pcpd_pcp_mapping_detach(pcpd_pcp *p, pcpd_mapping *mp) {
        uint64_t id = mp->pcp;

        if (id == 0)
                return;
        mp->pcp = 0;
        (void) pcp_engine_mapping_set_userdata(p->engine, id, NULL);
}

int pcpd_pcp_delete_saved(pcpd_pcp *p, const pcpd_state_mapping *rec, pcpd_server *s, uint64_t cookie) {
        pcp_mapping_params params = {
                .opcode = rec->opcode,
                .protocol = rec->protocol,
                .internal_port = rec->internal_port,
                .lifetime = MAX(rec->lifetime, 1u),
                .remote_port = rec->remote_port,
                .has_third_party = rec->has_third_party,
                .third_party = rec->third_party,
                .has_nonce = true,
                .delete_only = true,
        };
        uint64_t id;
        int r;

        if (s->pcp == NULL || cookie == 0)
                return -EINVAL;
        if (g_hash_table_contains(p->deletes, &cookie))
                return -EEXIST; /* its end would be told twice under one cookie */
        params.server_id = s->pcp->engine_id;
        memcpy(params.nonce, rec->nonce, PCP_NONCE_LEN);
        if (rec->remote_address != NULL)
                pcp_addr_from_string(rec->remote_address, &params.remote_addr);
        r = pcp_engine_add_mapping(p->engine, now_ms(), &params, &id);
        if (r < 0)
                return r;
        delete_entry_add(p, id, cookie);
        return 0;
}

void pcpd_pcp_delete_forget(pcpd_pcp *p, uint64_t cookie) {
        delete_entry *e = g_hash_table_lookup(p->deletes, &cookie);
        uint64_t id;

        if (e == NULL)
                return;
        id = e->engine_id;
        deletes_drop(p, e);
        g_hash_table_remove(p->deleting, &id); /* frees e */
        (void) pcp_engine_forget_mapping(p->engine, id);
        pcpd_pcp_drain(p);
}

/* engine time (monotonic ms) -> CLOCK_REALTIME µs, for ExpiresAt */
static uint64_t to_realtime(uint64_t engine_ms) {
        int64_t delta_ms = (int64_t) engine_ms - (int64_t) now_ms();
        return (uint64_t) ((int64_t) realtime_us() + delta_ms * 1000);
}

static const char *bus_state(const pcp_mapping_info *i) {
        switch (i->state) {
        case PCP_MAPPING_ACTIVE:
        case PCP_MAPPING_RENEWING:
                return "active";
        case PCP_MAPPING_FAILED:
                return "failed";
        case PCP_MAPPING_PENDING:
                return i->has_external ? "renewing" : "pending";
        default:
                return "pending";
        }
}

/* i in the bus's terms; false while the mapping is being deleted */
static bool info_view(const pcp_mapping_info *i, pcpd_backend_info *ret) {
        *ret = (pcpd_backend_info) {
                .state = bus_state(i),
                .error = pcp_mapping_error_name(i),
                .has_external = i->has_external,
                .external_addr = i->external_addr,
                .external_port = i->external_port,
                .internal_addr = i->internal_addr,
                .lifetime_granted = i->lifetime_granted,
                .expires_at = i->expires_at != 0 && i->has_external ? to_realtime(i->expires_at) : 0,
        };
        return i->state != PCP_MAPPING_DELETING;
}

/* ---- ANNOUNCE listener (5350) ---- */

static gboolean on_announce(gint fd, GIOCondition cond, gpointer data) {
        pcpd_pcp *p = data;
        recv_batch b;

        for (int round = 0; round < 64 / RECV_BATCH; round++) {
                int n = recv_batch_read(fd, &b);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                for (int i = 0; i < n; i++) {
                        struct sockaddr_in6 from6;
                        rx_clock clk = rx_clock_read(); /* per datagram: see rx_clock */

                        from_native(&b.from[i], &from6);
                        pcp_engine_receive_announce_at(p->engine, clk.now, arrival_ms(&b.mm[i].msg_hdr, clk), &from6,
                                                       b.buf[i], b.mm[i].msg_len);
                        pcpd_pcp_drain(p);
                }
                if (n < RECV_BATCH)
                        break;
        }
        note_drops(p);
        pcpd_pcp_kick(p);
        return G_SOURCE_CONTINUE;
}

static int open_announce_socket(int family, uint16_t port) {
        int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP);
        int one = 1;

        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        (void) setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)); /* arrival_ms() */
        if (family == AF_INET) {
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
                struct ip_mreqn mr = { .imr_multiaddr.s_addr = htonl(0xe0000001) }; /* 224.0.0.1 */
                if (bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0)
                        goto fail;
                /* all-hosts is joined by the kernel on every interface; asking again is harmless */
                (void) setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr));
        } else {
                struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
                struct ipv6_mreq mr = { .ipv6mr_interface = 0 };
                inet_pton(AF_INET6, "ff02::1", &mr.ipv6mr_multiaddr);
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
                if (bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0)
                        goto fail;
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof(mr));
        }
        return fd;
fail:;
        int r = -errno;
        close(fd);
        return r;
}

static void announce_close(pcpd_pcp *p) {
        for (int i = 0; i < 2; i++) {
                if (p->announce_watches[i] != 0)
                        g_source_remove(p->announce_watches[i]);
                p->announce_watches[i] = 0;
                if (p->announce_fds[i] >= 0)
                        close(p->announce_fds[i]);
                p->announce_fds[i] = -1;
        }
}

/* ---- lifecycle ---- */

/* no more reads of the server sockets (they stay open: the owner's calls may still send)
 * and no more timer: after pcpd_pcp_stop() */
static void stop_input(pcpd_pcp *p) {
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, p->servers);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                server_io *s = v;

                for (size_t i = 0; i < s->n_addrs; i++) {
                        if (s->watches[i] != 0)
                                g_source_remove(s->watches[i]);
                        s->watches[i] = 0;
                }
        }
        p->timer = pcpd_timer_free(p->timer);
}

int pcpd_pcp_new(const pcpd_backend_events *ops, void *userdata, size_t max_mappings, pcpd_pcp **ret) {
        g_autoptr(pcpd_pcp) p = g_new0(pcpd_pcp, 1);
        /* A delete is sent until its server answers or about an hour has passed (12
         * attempts: 3 s doubling to 1,024 s), not the engine's 3 (21 s): a router down for
         * a minute (rebooting) then gets the delete when it is back, its answer is known
         * by its nonce (an answer after the engine gave up was dropped as "unknown nonce",
         * blaming the router), and the manager's record of it is forgotten. The manager
         * forgets its record sooner when the mapping has expired upstream on its own
         * (pcpd-deleting.c), and the engine's delete with it. */
        pcp_engine_config ec = { .max_mappings = max_mappings, .delete_attempts = PCPD_DELETE_ATTEMPTS };
        pcp_engine_ops eops = { .random = on_engine_random };
        int r;

        p->ops = ops;
        pcpd_sendq_init(&p->sendq, on_send_failed, p);
        p->userdata = userdata;
        p->servers = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify) server_io_free);
        p->deleting = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
        p->deletes = g_hash_table_new(g_int64_hash, g_int64_equal);
        p->announce_fds[0] = p->announce_fds[1] = -1;
        r = pcp_engine_new(&ec, &eops, p, &p->engine);
        if (r < 0)
                return r;
        *ret = g_steal_pointer(&p);
        return 0;
}

void pcpd_pcp_start(pcpd_pcp *p, uint16_t announce_port) {
        p->timer = pcpd_timer_new(NULL, "pcp-engine", on_engine_timer, p);
        pcpd_timer_set_slack(p->timer, ENGINE_TIMER_SLACK_USEC);

        for (int i = 0; i < 2; i++) {
                int fd = open_announce_socket(i == 0 ? AF_INET : AF_INET6, announce_port);
                if (fd < 0) {
                        g_warning("Cannot listen for %s ANNOUNCE on port %u: %s; router restarts are then noticed "
                                  "at the next renewal only",
                                  i == 0 ? "IPv4" : "IPv6", announce_port, g_strerror(-fd));
                        continue;
                }
                p->announce_fds[i] = fd;
                p->announce_watches[i] = g_unix_fd_add(fd, G_IO_IN, on_announce, p);
        }
}

void pcpd_pcp_stop(pcpd_pcp *p) {
        const pcp_engine_stats *st;
        uint64_t dropped = 0;

        if (p == NULL || p->stopped)
                return;
        p->stopped = true;
        if (p->drop_log_source != 0)
                g_source_remove(p->drop_log_source);
        p->drop_log_source = 0;
        st = pcp_engine_get_stats(p->engine);
        for (int r = 0; r < _PCP_DROP_MAX; r++)
                dropped += st->dropped[r];
        g_message("Datagrams sent %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " retransmissions, %"
                  G_GUINT64_FORMAT " renewals), received %" G_GUINT64_FORMAT ", dropped %" G_GUINT64_FORMAT
                  "; epoch resets %" G_GUINT64_FORMAT,
                  st->sent, st->retransmissions, st->renewals, st->received, dropped, st->epoch_resets);
        announce_close(p);
        /* nothing comes from the loop any more: the owner tears down what its callbacks
         * use after this (pcpd_manager_free()), and turns of the loop still run before
         * pcpd_pcp_free() (the UPnP-IGD client's end waits for its requests in one). An
         * answer or ICMP error read then, or a retransmission due, would tell it news. */
        stop_input(p);
}

pcpd_pcp *pcpd_pcp_free(pcpd_pcp *p) {
        if (p == NULL)
                return NULL;
        if (p->drop_log_source != 0)
                g_source_remove(p->drop_log_source);
        announce_close(p);
        p->engine = pcp_engine_free(p->engine);
        /* the owner's handles (pcpd_server.pcp, pcpd_mapping.pcp) are not touched: it may
         * have freed its objects already */
        if (p->deletes != NULL)
                g_hash_table_destroy(p->deletes);
        if (p->deleting != NULL)
                g_hash_table_destroy(p->deleting);
        if (p->servers != NULL)
                g_hash_table_destroy(p->servers);
        p->timer = pcpd_timer_free(p->timer);
        g_free(p);
        return NULL;
}
