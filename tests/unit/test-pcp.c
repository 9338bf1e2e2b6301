/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PCP backend (pcpd-pcp.c) against the test as its server on the loopback: a server's
 * handle is set before anything is told, its probe leaves at the drain, the answer comes
 * up through ops from the main loop with the owner's own server, removing a server closes
 * its sockets, and a server whose socket cannot be opened leaves nothing open (and closes
 * nothing it did not open: fd 0). The engine's news reaches the right handle: a mapping's
 * answer its mapping, a server's its server, a delete's end its cookie, a removed
 * server's mappings each as lost; nothing is told before an add returns. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "manager-fixture.h"
#include "pcp-wire.h"
#include "pcpd-pcp.h"

#define MAX_TOLD 64

enum { T_MAPPING, T_LOST, T_DELETED, T_SERVER, T_EPOCH, T_RECREATE };

typedef struct told {
        int kind;
        pcpd_mapping *mp;
        pcpd_server *server;
        uint64_t cookie;
        bool confirmed, granted, has_info;
        char state[16];
        char error[32];
        char detail[256]; /* error_detail, "" for none */
        uint16_t external_port;
        pcpd_server_state server_state;
        bool repeated, from_announce; /* T_EPOCH, T_RECREATE */
        size_t n_mappings;            /* T_RECREATE */
} told;

typedef struct news {
        bool stopped; /* pcpd_pcp_stop() was called: nothing may be told from the loop */
        unsigned events, server_events;
        pcpd_server_state last_server_state;
        pcpd_server *last_server;
        told t[MAX_TOLD];
        unsigned n;
} news;

static told *record(news *r, int kind) {
        told *t;

        assert_false(r->stopped);
        r->events++;
        assert_true(r->n < MAX_TOLD);
        t = &r->t[r->n++];
        memset(t, 0, sizeof(*t));
        t->kind = kind;
        return t;
}

static void on_mapping_changed(void *userdata, pcpd_mapping *mp, const pcpd_backend_info *i, bool granted) {
        told *t = record(userdata, T_MAPPING);

        t->mp = mp;
        t->granted = granted;
        t->has_info = i != NULL;
        if (i != NULL) {
                g_strlcpy(t->state, i->state, sizeof(t->state));
                g_strlcpy(t->error, i->error, sizeof(t->error));
                g_strlcpy(t->detail, i->error_detail ?: "", sizeof(t->detail));
                t->external_port = i->has_external ? i->external_port : 0;
        }
}

static void on_mapping_lost(void *userdata, pcpd_mapping *mp) {
        told *t = record(userdata, T_LOST);

        /* told after the handle let go of its engine mapping */
        assert_false(pcpd_pcp_mapping_held(mp));
        t->mp = mp;
}

static void on_deleting_done(void *userdata, uint64_t cookie, bool confirmed) {
        told *t = record(userdata, T_DELETED);

        t->cookie = cookie;
        t->confirmed = confirmed;
}

static void on_server_changed(void *userdata, pcpd_server *s, const pcpd_server_status *st) {
        news *r = userdata;
        told *t = record(r, T_SERVER);

        t->server = s;
        if (st != NULL) {
                assert_string_equal(st->state_name, pcpd_server_state_to_string(st->state));
                t->server_state = st->state;
                r->server_events++;
                r->last_server_state = st->state;
                r->last_server = s;
        }
}

static void on_server_epoch_reset(void *userdata, pcpd_server *s, bool repeated, bool from_announce) {
        told *t = record(userdata, T_EPOCH);

        t->server = s;
        t->repeated = repeated;
        t->from_announce = from_announce;
}

static void on_server_recreate(void *userdata, pcpd_server *s, bool repeated, bool from_announce, size_t n) {
        told *t = record(userdata, T_RECREATE);

        t->server = s;
        t->repeated = repeated;
        t->from_announce = from_announce;
        t->n_mappings = n;
}

static const pcpd_backend_events ops = {
        .mapping_changed = on_mapping_changed,
        .mapping_lost = on_mapping_lost,
        .deleting_done = on_deleting_done,
        .server_changed = on_server_changed,
        .server_epoch_reset = on_server_epoch_reset,
        .server_recreate = on_server_recreate,
};

/* what was told of kind for mp (NULL: any) or cookie (0: any), the last one; fails the
 * test when nothing was */
static const told *last_told(const news *r, int kind, const pcpd_mapping *mp, uint64_t cookie) {
        for (unsigned i = r->n; i-- > 0;)
                if (r->t[i].kind == kind && (mp == NULL || r->t[i].mp == mp) && (cookie == 0 || r->t[i].cookie == cookie))
                        return &r->t[i];
        fail_msg("nothing of kind %d was told", kind);
        abort(); /* not reached */
}

/* a server handle as the manager makes one (pcpd-server.h) */
static void server_init(pcpd_server *s, const struct sockaddr_in6 *addrs, size_t n, const char *text) {
        memset(s, 0, sizeof(*s));
        s->text = (char *) text;
        s->ifname = (char *) "";
        s->n_addrs = n;
        s->family = AF_INET;
        for (size_t i = 0; i < n; i++)
                s->addrs[i] = addrs[i];
}

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

/* The engine's server states in the daemon's terms (pcpd-server.h): one for one, under
 * the same name, and Manager.Servers' protocol column as it always was. */
static void test_server_state_of(void **state) {
        static const struct {
                pcp_server_state engine;
                pcpd_server_state daemon;
                const char *protocol;
        } table[] = {
                { PCP_SERVER_UNKNOWN, PCPD_SERVER_UNKNOWN, "none" },
                { PCP_SERVER_PCP, PCPD_SERVER_PCP, "pcp" },
                { PCP_SERVER_NATPMP, PCPD_SERVER_NATPMP, "nat-pmp" },
                { PCP_SERVER_DISABLED, PCPD_SERVER_DISABLED, "none" },
                { PCP_SERVER_UNREACHABLE, PCPD_SERVER_UNREACHABLE, "none" },
                { PCP_SERVER_UNSUPPORTED, PCPD_SERVER_UNSUPPORTED, "none" },
        };

        assert_int_equal(G_N_ELEMENTS(table), _PCP_SERVER_STATE_MAX);
        assert_int_equal(G_N_ELEMENTS(table), _PCPD_SERVER_STATE_MAX);
        for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
                pcpd_server_state st = pcpd_pcp_server_state_of(table[i].engine);
                assert_int_equal(st, table[i].daemon);
                assert_string_equal(pcpd_server_state_to_string(st), pcp_server_state_to_string(table[i].engine));
                assert_string_equal(pcpd_server_state_protocol(st), table[i].protocol);
        }
        /* out of range: unknown, as if the engine did not know the server */
        assert_int_equal(pcpd_pcp_server_state_of(_PCP_SERVER_STATE_MAX), PCPD_SERVER_UNKNOWN);
        assert_string_equal(pcpd_server_state_to_string(_PCPD_SERVER_STATE_MAX), "invalid");
}

static void test_probe_and_answer(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        news rec = { 0 };
        pcpd_server_view view;
        struct sockaddr_in6 srv;
        struct sockaddr_in from;
        socklen_t from_len = sizeof(from);
        uint8_t buf[PCP_MAX_MSG_LEN];
        pcpd_server server;
        pcp_msg msg;
        size_t len;
        ssize_t n;
        int fd = server_socket(&srv), turns = 0;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        pcpd_pcp_start(p, 0);
        server_init(&server, &srv, 1, "test");
        assert_int_equal(pcpd_pcp_server_add(p, &server), 0);
        assert_non_null(server.pcp);
        assert_int_equal(rec.events, 0); /* nothing before the handle is set */
        assert_non_null(pcpd_pcp_server_info(p, &server));

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
        /* with the NAT64 prefixes (RFC 7225) the server uses: Manager.Prefix64 */
        msg.n_prefix64 = 2;
        msg.prefix64[0] = (pcp_prefix64) { .prefix_len = 96, .suffix_len = 0 };
        assert_int_equal(inet_pton(AF_INET6, "64:ff9b::", &msg.prefix64[0].prefix), 1);
        msg.prefix64[1] = (pcp_prefix64) { .prefix_len = 32, .suffix_len = 8 };
        assert_int_equal(inet_pton(AF_INET6, "2001:db8::", &msg.prefix64[1].prefix), 1);
        assert_int_equal(pcp_encode(&msg, buf, sizeof(buf), &len), PCP_WIRE_OK);
        assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *) &from, from_len), (ssize_t) len);
        while (rec.server_events == 0 && turns < 1000) {
                g_main_context_iteration(NULL, TRUE);
                turns++;
        }
        if (rec.server_events == 0)
                fail_msg("no server event after %d turns of the loop", turns);
        assert_int_equal(rec.last_server_state, PCPD_SERVER_PCP);
        assert_ptr_equal(rec.last_server, &server); /* the owner's own handle */
        /* what Manager.Servers shows of it */
        assert_true(pcpd_pcp_server_view(p, &server, &view));
        assert_int_equal(view.state, PCPD_SERVER_PCP);
        assert_int_equal(view.epoch, pcpd_pcp_server_info(p, &server)->epoch);
        assert_int_equal(view.n_prefix64, 2);
        assert_int_equal(view.prefix64[0].prefix_len, 96);
        assert_memory_equal(&view.prefix64[0].prefix, &msg.prefix64[0].prefix, 16);
        assert_int_equal(view.prefix64[1].prefix_len, 32);
        assert_memory_equal(&view.prefix64[1].prefix, &msg.prefix64[1].prefix, 16);
        pcpd_pcp_server_remove(p, &server);
        assert_null(server.pcp);
        assert_false(pcpd_pcp_server_view(p, &server, &view));
        assert_int_equal(view.state, PCPD_SERVER_UNKNOWN);
        close(fd);
}

static void test_remove_closes(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        news rec = { 0 };
        struct sockaddr_in6 srv[2];
        int fds[2] = { server_socket(&srv[0]), server_socket(&srv[1]) };
        unsigned before;
        pcpd_server server;

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        before = open_fds();
        server_init(&server, srv, 2, "two addresses");
        assert_int_equal(pcpd_pcp_server_add(p, &server), 0);
        assert_int_equal(open_fds(), before + 2);
        pcpd_pcp_server_remove(p, &server);
        assert_int_equal(open_fds(), before);
        assert_null(server.pcp);
        assert_null(pcpd_pcp_server_info(p, &server));
        close(fds[0]);
        close(fds[1]);
}

/* the second of three addresses cannot be connected to (broadcast, no SO_BROADCAST) */
static void test_add_failure_leaves_nothing(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        news rec = { 0 };
        struct sockaddr_in6 addrs[3];
        int fd = server_socket(&addrs[0]), null_fd = -1;
        unsigned before;
        pcpd_server server;

        /* fd 0 open, so that closing it by mistake shows */
        if (fcntl(0, F_GETFD) < 0)
                null_fd = open("/dev/null", O_RDONLY); /* becomes 0 */
        assert_true(fcntl(0, F_GETFD) >= 0);
        v4("255.255.255.255", PCP_SERVER_PORT, &addrs[1]);
        addrs[2] = addrs[0];
        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        before = open_fds();
        server_init(&server, addrs, 3, "broadcast");
        assert_true(pcpd_pcp_server_add(p, &server) < 0);
        assert_null(server.pcp);
        assert_int_equal(open_fds(), before);
        assert_true(fcntl(0, F_GETFD) >= 0);
        pcpd_pcp_drain(p);
        assert_int_equal(rec.events, 0);
        close(fd);
        if (null_fd >= 0)
                close(null_fd);
}

/* ---- the engine's news reaches the right handle ---- */

typedef struct want {
        int kind;
        const pcpd_mapping *mp;
        uint64_t cookie;
        bool granted;
} want;

static bool has_told(void *ctx, const void *arg) {
        const news *r = ctx;
        const want *w = arg;

        for (unsigned i = 0; i < r->n; i++)
                if (r->t[i].kind == w->kind && (w->mp == NULL || r->t[i].mp == w->mp) &&
                    (w->cookie == 0 || r->t[i].cookie == w->cookie) && (!w->granted || r->t[i].granted))
                        return true;
        return false;
}

static void mapping_init(pcpd_pcp *p, pcpd_mapping *mp, uint16_t port) {
        memset(mp, 0, sizeof(*mp));
        mp->opcode = PCP_OPCODE_MAP;
        mp->protocol = IPPROTO_UDP;
        mp->family = AF_INET;
        mp->internal_port = port;
        mp->lifetime = 120;
        mp->has_nonce = true;
        pcpd_pcp_random(p, mp->nonce, PCP_NONCE_LEN);
}

static void fake_server_handle(const fake_server *f, pcpd_server *s, const char *text) {
        pcpd_server_spec spec = fake_server_spec(f);

        server_init(s, spec.addrs, spec.n_addrs, text);
}

static unsigned count_told(const news *r, int kind, const pcpd_mapping *mp, unsigned from) {
        unsigned n = 0;

        for (unsigned i = from; i < r->n; i++)
                n += r->t[i].kind == kind && (mp == NULL || r->t[i].mp == mp);
        return n;
}

static void test_news_reaches_handles(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        fake_server *fa = fake_server_new(), *fb = fake_server_new();
        news rec = { 0 };
        pcpd_server a, b;
        pcpd_mapping ma, mb, no_nonce;
        const told *t;
        unsigned mark;

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        pcpd_pcp_start(p, 0);
        fake_server_handle(fa, &a, "a");
        fake_server_handle(fb, &b, "b");
        assert_int_equal(pcpd_pcp_server_add(p, &a), 0);
        assert_int_equal(pcpd_pcp_server_add(p, &b), 0);
        mapping_init(p, &ma, 4000);
        mapping_init(p, &mb, 4001);
        assert_int_equal(pcpd_pcp_mapping_add(p, &ma, &a, NULL), 0);
        assert_int_equal(pcpd_pcp_mapping_add(p, &mb, &b, NULL), 0);
        assert_true(pcpd_pcp_mapping_held(&ma));
        assert_true(pcpd_pcp_mapping_held(&mb));
        /* nothing is told before an add returns (nor before the drain) */
        assert_int_equal(rec.events, 0);
        /* a mapping without a nonce on disk is refused: nothing queued */
        mapping_init(p, &no_nonce, 4002);
        no_nonce.has_nonce = false;
        assert_int_equal(pcpd_pcp_mapping_add(p, &no_nonce, &a, NULL), -EINVAL);
        assert_false(pcpd_pcp_mapping_held(&no_nonce));

        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
        wait_for(&rec, has_told, &(want) { .kind = T_MAPPING, .mp = &ma, .granted = true }, "a's grant");
        wait_for(&rec, has_told, &(want) { .kind = T_MAPPING, .mp = &mb, .granted = true }, "b's grant");
        t = last_told(&rec, T_MAPPING, &mb, 0);
        assert_true(t->has_info);
        assert_string_equal(t->state, "active");
        assert_int_equal(t->external_port, 4001 + PORT_OFFSET);
        /* what the engine has of each server, through its handle */
        {
                struct in6_addr ext, want_ext, local[2];

                assert_true(pcpd_pcp_server_known(p, &b));
                assert_int_equal(pcpd_pcp_server_state(p, &b), PCPD_SERVER_PCP);
                assert_true(pcpd_pcp_server_external(p, &b, &ext));
                assert_true(pcp_addr_from_string(EXT_ADDR, &want_ext));
                assert_memory_equal(&ext, &want_ext, sizeof(ext));
                assert_int_equal(pcpd_pcp_server_local_addresses(p, &b, local, 2), 1);
                assert_memory_equal(&local[0], &b.addrs[0].sin6_addr, sizeof(local[0])); /* 127.0.0.1 both */
        }
        /* each request went to its own server */
        assert_int_equal(fake_count(fa, 4000, false), 1);
        assert_int_equal(fake_count(fb, 4001, false), 1);
        assert_int_equal(fake_count(fa, 4001, false), 0);
        assert_int_equal(fake_count(fb, 4000, false), 0);
        /* every server's news came with its own handle */
        for (unsigned i = 0; i < rec.n; i++)
                if (rec.t[i].kind == T_SERVER)
                        assert_true(rec.t[i].server == &a || rec.t[i].server == &b);
        assert_int_equal(count_told(&rec, T_MAPPING, NULL, 0),
                         count_told(&rec, T_MAPPING, &ma, 0) + count_told(&rec, T_MAPPING, &mb, 0));

        /* b's mapping goes: its delete is told under the cookie, not to the mapping */
        mark = rec.n;
        pcpd_pcp_mapping_remove(p, &mb, 42);
        assert_false(pcpd_pcp_mapping_held(&mb));
        pcpd_pcp_kick(p);
        wait_for(&rec, has_told, &(want) { .kind = T_DELETED, .cookie = 42 }, "the end of b's delete");
        assert_true(last_told(&rec, T_DELETED, NULL, 42)->confirmed);
        assert_int_equal(fake_count(fb, 4001, true), 1);
        assert_int_equal(count_told(&rec, T_MAPPING, &mb, mark), 0);
        assert_int_equal(count_told(&rec, T_LOST, &mb, mark), 0);

        /* server a goes: its mapping is told as lost, at once */
        mark = rec.n;
        pcpd_pcp_server_remove(p, &a);
        assert_int_equal(count_told(&rec, T_LOST, &ma, mark), 1);
        assert_false(pcpd_pcp_mapping_held(&ma));
        assert_int_equal(count_told(&rec, T_DELETED, NULL, mark), 0);

        pcpd_pcp_server_remove(p, &b);
        assert_false(pcpd_pcp_server_known(p, &b));
        assert_int_equal(pcpd_pcp_server_state(p, &b), PCPD_SERVER_UNKNOWN);
        p = pcpd_pcp_free(g_steal_pointer(&p));
        fake_server_free(fa);
        fake_server_free(fb);
}

/* A UDP port for the ANNOUNCE listener (pcpd_pcp_start() binds the port it is given, on
 * every address of both families), held on every IPv4 address by the socket returned
 * until the listener has it: a port that was free when it was read and closed can be
 * taken by another process on the machine before the listener binds it. The listener
 * sets SO_REUSEADDR, as this socket does, so both may be bound at once; the caller closes
 * this one with listener_took_port() before anything is sent to the port (a datagram
 * would reach one of the two). */
static int hold_udp_port(uint16_t *port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        socklen_t len = sizeof(a);
        int one = 1;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &len), 0);
        *port = ntohs(a.sin_port);
        return fd;
}

/* The listener is bound: held (hold_udp_port()) is closed, and the port is the listener's
 * alone (a socket without SO_REUSEADDR cannot have it), else the ANNOUNCE sent to it would
 * be waited for in vain */
static void listener_took_port(int held, uint16_t port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_ANY) };
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int r;

        close(held);
        assert_true(fd >= 0);
        r = bind(fd, (struct sockaddr *) &a, sizeof(a));
        if (r == 0)
                fail_msg("nothing listens on UDP port %u after pcpd_pcp_start()", port);
        assert_int_equal(errno, EADDRINUSE);
        close(fd);
}

/* an unsolicited PCP ANNOUNCE from 127.0.0.1 (the fake server's address) to port */
static void send_announce(uint16_t port, uint32_t epoch) {
        struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        uint8_t buf[PCP_MAX_MSG_LEN];
        size_t len;
        pcp_msg r;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        pcp_msg_init(&r, true, PCP_OPCODE_ANNOUNCE);
        r.epoch = epoch;
        assert_int_equal(pcp_encode(&r, buf, sizeof(buf), &len), PCP_WIRE_OK);
        assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *) &to, sizeof(to)), (ssize_t) len);
        close(fd);
}

/* An ANNOUNCE with a consistent epoch, read by the listener, is told up once as
 * server_recreate with the server's own handle and the number of its mappings, not as an
 * epoch reset; after the server restarted (its epoch gone back), its ANNOUNCE is an epoch
 * reset once the answers to the recreation it brings (when the 5 s interval the first
 * started is over) carry the new epoch: the ANNOUNCE's own epoch is not taken. */
static void test_announce_told(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        fake_server *fa = fake_server_new();
        news rec = { 0 };
        uint16_t port;
        int held = hold_udp_port(&port);
        pcpd_server a;
        pcpd_mapping ma, mb;
        const told *t;
        unsigned mark;

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        pcpd_pcp_start(p, port);
        listener_took_port(held, port);
        fake_server_handle(fa, &a, "a");
        assert_int_equal(pcpd_pcp_server_add(p, &a), 0);
        mapping_init(p, &ma, 4010);
        mapping_init(p, &mb, 4011);
        assert_int_equal(pcpd_pcp_mapping_add(p, &ma, &a, NULL), 0);
        assert_int_equal(pcpd_pcp_mapping_add(p, &mb, &a, NULL), 0);
        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
        wait_for(&rec, has_told, &(want) { .kind = T_MAPPING, .mp = &ma, .granted = true }, "ma's grant");
        wait_for(&rec, has_told, &(want) { .kind = T_MAPPING, .mp = &mb, .granted = true }, "mb's grant");

        mark = rec.n;
        send_announce(port, 1000 + (uint32_t) ((g_get_monotonic_time() - fa->started) / G_USEC_PER_SEC));
        wait_for(&rec, has_told, &(want) { .kind = T_RECREATE }, "the ANNOUNCE told up");
        assert_int_equal(count_told(&rec, T_RECREATE, NULL, mark), 1);
        assert_int_equal(count_told(&rec, T_EPOCH, NULL, mark), 0);
        t = last_told(&rec, T_RECREATE, NULL, 0);
        assert_ptr_equal(t->server, &a);
        assert_int_equal(t->n_mappings, 2);
        assert_false(t->repeated);
        assert_true(t->from_announce);

        /* the server restarted: its epoch gone back (~1 now); a reset, told as one when
         * the answers say so (the recreation when the interval the first started is over,
         * within 5 s: its RECREATE repeated, not told up as news) */
        mark = rec.n;
        fa->started = g_get_monotonic_time() + 999 * G_USEC_PER_SEC;
        send_announce(port, 1);
        wait_for(&rec, has_told, &(want) { .kind = T_EPOCH }, "the reset told up");
        assert_int_equal(count_told(&rec, T_EPOCH, NULL, mark), 1);
        t = last_told(&rec, T_EPOCH, NULL, 0);
        assert_ptr_equal(t->server, &a);
        assert_true(t->from_announce);
        assert_false(t->repeated);

        pcpd_pcp_server_remove(p, &a);
        p = pcpd_pcp_free(g_steal_pointer(&p));
        fake_server_free(fa);
}

/* a detached mapping and a forgotten delete are dropped silently when their server goes;
 * a saved delete's end is told under its cookie */
static void test_detach_and_saved_deletes(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        fake_server *fb = fake_server_new();
        news rec = { 0 };
        pcpd_server b;
        pcpd_mapping mc, md;
        pcpd_state_mapping del = {
                .opcode = PCP_OPCODE_MAP,
                .protocol = IPPROTO_TCP,
                .internal_port = 5000,
                .lifetime = 120,
                .has_nonce = true,
                .deleting = true,
        };
        unsigned mark;

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        pcpd_pcp_start(p, 0);
        fake_server_handle(fb, &b, "b");
        assert_int_equal(pcpd_pcp_server_add(p, &b), 0);
        pcpd_pcp_random(p, del.nonce, PCP_NONCE_LEN);

        assert_int_equal(pcpd_pcp_delete_saved(p, &del, &b, 77), 0);
        assert_int_equal(rec.events, 0);
        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
        wait_for(&rec, has_told, &(want) { .kind = T_DELETED, .cookie = 77 }, "the saved delete's end");
        assert_true(last_told(&rec, T_DELETED, NULL, 77)->confirmed);
        assert_int_equal(fake_count(fb, 5000, true), 1);

        /* given up before it is over: nothing is told of it, ever */
        del.internal_port = 5001;
        pcpd_pcp_random(p, del.nonce, PCP_NONCE_LEN);
        assert_int_equal(pcpd_pcp_delete_saved(p, &del, &b, 78), 0);
        pcpd_pcp_delete_forget(p, 78);
        pcpd_pcp_delete_forget(p, 78); /* unknown now: nothing */

        /* one cookie, one delete told: a saved delete under a cookie in use is refused; a
         * removed mapping given a cookie in use takes it over, and the earlier delete's end
         * is told to nobody (both end by the time the server goes, below) */
        mapping_init(p, &md, 4101);
        assert_int_equal(pcpd_pcp_mapping_add(p, &md, &b, NULL), 0);
        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
        wait_for(&rec, has_told, &(want) { .kind = T_MAPPING, .mp = &md, .granted = true }, "d's grant");
        del.internal_port = 5002;
        pcpd_pcp_random(p, del.nonce, PCP_NONCE_LEN);
        assert_int_equal(pcpd_pcp_delete_saved(p, &del, &b, 79), 0);
        assert_int_equal(pcpd_pcp_delete_saved(p, &del, &b, 79), -EEXIST);
        /* the saved delete has not left yet (it leaves at the drain in here) */
        pcpd_pcp_mapping_remove(p, &md, 79);
        pcpd_pcp_kick(p);

        mapping_init(p, &mc, 4100);
        assert_int_equal(pcpd_pcp_mapping_add(p, &mc, &b, NULL), 0);
        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
        wait_for(&rec, has_told, &(want) { .kind = T_MAPPING, .mp = &mc, .granted = true }, "c's grant");
        pcpd_pcp_mapping_detach(p, &mc);
        assert_false(pcpd_pcp_mapping_held(&mc));
        mark = rec.n;
        pcpd_pcp_server_remove(p, &b);
        assert_int_equal(count_told(&rec, T_LOST, NULL, mark), 0);
        assert_int_equal(count_told(&rec, T_MAPPING, NULL, mark), 0);
        for (unsigned i = 0; i < rec.n; i++)
                assert_false(rec.t[i].kind == T_DELETED && rec.t[i].cookie == 78);
        {
                unsigned n79 = 0;

                for (unsigned i = 0; i < rec.n; i++)
                        n79 += rec.t[i].kind == T_DELETED && rec.t[i].cookie == 79;
                assert_int_equal(n79, 1);
        }
        p = pcpd_pcp_free(g_steal_pointer(&p));
        fake_server_free(fb);
}

/* ---- the end: nothing comes from the loop after pcpd_pcp_stop() ---- */

typedef struct fake_want {
        uint16_t port;
        bool lifetime_zero;
} fake_want;

static bool fake_saw(void *ctx, const void *arg) {
        const fake_want *w = arg;

        return fake_count(ctx, w->port, w->lifetime_zero) > 0;
}

/* pcpd_manager_free() stops the backend, then frees what its callbacks use (the host
 * snapshot, the bus face) and runs turns of the loop before the backend is freed (the
 * UPnP-IGD client's end waits for its requests there). An answer, or the ICMP error of a
 * server without PCP, that came in then was read and told to a half-freed manager (seen
 * once under memcheck at SIGTERM, in server_socket_read): after the stop the sockets are
 * no longer read and the clock is stopped, and the owner's own calls still send. */
static void test_stop_ends_input(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        fake_server *f = fake_server_new();
        news rec = { 0 };
        pcpd_server a, closed;
        pcpd_mapping m;
        struct sockaddr_in6 nobody;
        int fd = server_socket(&nobody);
        unsigned turns = 0;

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        pcpd_pcp_start(p, 0);
        fake_server_handle(f, &a, "a");
        assert_int_equal(pcpd_pcp_server_add(p, &a), 0);
        mapping_init(p, &m, 4200);
        assert_int_equal(pcpd_pcp_mapping_add(p, &m, &a, NULL), 0);
        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
        wait_for(&rec, has_told, &(want) { .kind = T_MAPPING, .mp = &m, .granted = true }, "the grant");

        /* a server whose port is closed (no PCP there): its probe leaves at this drain and
         * the ICMP error waits on its socket, unread, when pcpd stops */
        close(fd);
        server_init(&closed, &nobody, 1, "closed");
        assert_int_equal(pcpd_pcp_server_add(p, &closed), 0);
        pcpd_pcp_drain(p);

        pcpd_pcp_stop(p);
        /* the owner still calls in: the delete is sent */
        pcpd_pcp_mapping_remove(p, &m, 42);
        pcpd_pcp_kick(p);
        rec.stopped = true;
        wait_for(f, fake_saw, &(fake_want) { .port = 4200, .lifetime_zero = true }, "the delete at the server");
        /* its answer and the ICMP error are on pcpd's sockets now (the loopback delivers at
         * once): turns of the loop read neither (record() fails the test if either is told) */
        while (turns < 100 && g_main_context_iteration(NULL, FALSE))
                turns++;
        assert_true(turns < 100);
        rec.stopped = false;
        assert_int_equal(count_told(&rec, T_DELETED, NULL, 0), 0);

        /* still removable after the stop, and told as before (the owner's call) */
        pcpd_pcp_server_remove(p, &closed);
        assert_null(closed.pcp);
        pcpd_pcp_server_remove(p, &a);
        p = pcpd_pcp_free(g_steal_pointer(&p));
        fake_server_free(f);
}

/* A server removed by a callback told while its socket is read (pcpd-pcp.h allows it; a
 * main loop iteration nested in a callback may do it too): the read stops there, and the
 * rest of the batch (a second answer already queued) is not handed to the engine under
 * the freed server's id. Under ASan or memcheck the old code read the freed server. */
typedef struct remover {
        news rec;
        pcpd_pcp *p;
        pcpd_server *victim;
        unsigned removed;
} remover;

static void on_server_changed_remove(void *userdata, pcpd_server *s, const pcpd_server_status *st) {
        remover *r = userdata;

        on_server_changed(&r->rec, s, st);
        if (s == r->victim && st != NULL && st->state == PCPD_SERVER_PCP) {
                pcpd_pcp_server_remove(r->p, s);
                r->removed++;
        }
}

static void on_mapping_changed_r(void *userdata, pcpd_mapping *mp, const pcpd_backend_info *i, bool granted) {
        on_mapping_changed(&((remover *) userdata)->rec, mp, i, granted);
}

static void on_mapping_lost_r(void *userdata, pcpd_mapping *mp) {
        on_mapping_lost(&((remover *) userdata)->rec, mp);
}

static void on_deleting_done_r(void *userdata, uint64_t cookie, bool confirmed) {
        on_deleting_done(&((remover *) userdata)->rec, cookie, confirmed);
}

static void on_server_epoch_reset_r(void *userdata, pcpd_server *s, bool repeated, bool from_announce) {
        on_server_epoch_reset(&((remover *) userdata)->rec, s, repeated, from_announce);
}

static void on_server_recreate_r(void *userdata, pcpd_server *s, bool repeated, bool from_announce, size_t n) {
        on_server_recreate(&((remover *) userdata)->rec, s, repeated, from_announce, n);
}

static const pcpd_backend_events remover_ops = {
        .mapping_changed = on_mapping_changed_r,
        .mapping_lost = on_mapping_lost_r,
        .deleting_done = on_deleting_done_r,
        .server_changed = on_server_changed_remove,
        .server_epoch_reset = on_server_epoch_reset_r,
        .server_recreate = on_server_recreate_r,
};

static bool removed(void *ctx, const void *arg) {
        return ((const remover *) ctx)->removed > 0;
}

static void test_removed_while_read(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        remover r = { 0 };
        struct sockaddr_in6 srv;
        struct sockaddr_in from;
        socklen_t from_len = sizeof(from);
        uint8_t buf[PCP_MAX_MSG_LEN];
        pcpd_server *server = g_new0(pcpd_server, 1);
        pcp_msg msg;
        size_t len;
        ssize_t n;
        int fd = server_socket(&srv);
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        assert_int_equal(pcpd_pcp_new(&remover_ops, &r, 0, &p), 0);
        r.p = p;
        r.victim = server;
        pcpd_pcp_start(p, 0);
        server_init(server, &srv, 1, "removed while read");
        assert_int_equal(pcpd_pcp_server_add(p, server), 0);
        pcpd_pcp_drain(p);
        assert_int_equal(poll(&pfd, 1, 30000), 1);
        n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *) &from, &from_len);
        assert_true(n > 0);

        /* two answers queued before the loop reads: one recvmmsg() takes both */
        pcp_msg_init(&msg, true, PCP_OPCODE_ANNOUNCE);
        msg.epoch = 1;
        assert_int_equal(pcp_encode(&msg, buf, sizeof(buf), &len), PCP_WIRE_OK);
        for (int i = 0; i < 2; i++)
                assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *) &from, from_len), (ssize_t) len);
        wait_for(&r, removed, NULL, "the server removed by its callback");
        assert_int_equal(r.removed, 1);
        assert_null(server->pcp);
        assert_int_equal(r.rec.last_server_state, PCPD_SERVER_PCP);
        /* the second answer: not told to anyone (its server is gone) */
        assert_int_equal(r.rec.server_events, 1);
        g_free(server); /* the owner frees its handle once removed (pcpd-pcp.h) */
        while (g_main_context_iteration(NULL, FALSE))
                ;
        assert_int_equal(r.rec.server_events, 1);
        p = pcpd_pcp_free(g_steal_pointer(&p));
        close(fd);
}

/* The arrival of each datagram of a batch is dated on the clocks read for it: a callback
 * that waits (a slow journal, a busy bus) while the first answer is told must not date the
 * second, already queued, by the length of the wait. The old code read the monotonic clock
 * once per batch and the wall clock per datagram: the second answer came out as arrived
 * the wait before the first, and its epoch (RFC 6887 §8.5, 2 s slack) read as a reset. */
#define SLOW_CALLBACK_US (2500 * 1000)

typedef struct sleeper {
        news rec; /* first: the plain callbacks take the sleeper as their news */
        unsigned slept;
} sleeper;

static void on_mapping_changed_slow(void *userdata, pcpd_mapping *mp, const pcpd_backend_info *i, bool granted) {
        sleeper *s = userdata;

        on_mapping_changed(&s->rec, mp, i, granted);
        if (granted && s->slept++ == 0)
                g_usleep(SLOW_CALLBACK_US);
}

static const pcpd_backend_events slow_ops = {
        .mapping_changed = on_mapping_changed_slow,
        .mapping_lost = on_mapping_lost,
        .deleting_done = on_deleting_done,
        .server_changed = on_server_changed,
        .server_epoch_reset = on_server_epoch_reset,
        .server_recreate = on_server_recreate,
};

static void test_batch_dated_per_datagram(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        fake_server *f = fake_server_new();
        sleeper s = { 0 };
        pcpd_server a;
        pcpd_mapping m1, m2;

        assert_int_equal(pcpd_pcp_new(&slow_ops, &s, 0, &p), 0);
        pcpd_pcp_start(p, 0);
        fake_server_handle(f, &a, "slow callback");
        assert_int_equal(pcpd_pcp_server_add(p, &a), 0);
        mapping_init(p, &m1, 4100);
        mapping_init(p, &m2, 4101);
        assert_int_equal(pcpd_pcp_mapping_add(p, &m1, &a, NULL), 0);
        assert_int_equal(pcpd_pcp_mapping_add(p, &m2, &a, NULL), 0);
        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
        /* the two requests leave together after the probe's answer; the fake server reads
         * and answers both in one turn, so one read takes both answers */
        wait_for(&s.rec, has_told, &(want) { .kind = T_MAPPING, .mp = &m1, .granted = true }, "m1's grant");
        wait_for(&s.rec, has_told, &(want) { .kind = T_MAPPING, .mp = &m2, .granted = true }, "m2's grant");
        assert_true(s.slept >= 2);
        assert_int_equal(fake_count(f, 4100, false), 1);
        assert_int_equal(fake_count(f, 4101, false), 1);
        /* the server's epoch ran with our clock: no reset told */
        assert_int_equal(count_told(&s.rec, T_EPOCH, NULL, 0), 0);
        pcpd_pcp_server_remove(p, &a);
        p = pcpd_pcp_free(g_steal_pointer(&p));
        fake_server_free(f);
}

/* What the log line of a mapping refused with UNSUPP_OPTION says of its request (the
 * answer does not name the option): the options a server must process that it carried,
 * or, with none, that the answer is odd (naming the optional ones it carried); nothing for
 * a mapping not held. */
static void test_unsupp_option_text(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        news rec = { 0 };
        struct sockaddr_in6 srv;
        pcp_filter filter = { .prefix_len = 128, .remote_port = 22 };
        pcpd_mapping full, described, plain, loose;
        pcpd_server server;
        char text[256] = "x";
        int fd = server_socket(&srv);

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        server_init(&server, &srv, 1, "unsupp option");
        assert_int_equal(pcpd_pcp_server_add(p, &server), 0);
        assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.1", &filter.remote_addr), 1);
        mapping_init(p, &full, 4200);
        full.prefer_failure = true;
        full.suggested_port = 14200;
        full.description = (char *) "wiki";
        pcpd_mapping_set_filters(&full, &filter, 1);
        mapping_init(p, &described, 4201);
        described.description = (char *) "wiki";
        mapping_init(p, &plain, 4202);
        mapping_init(p, &loose, 4203);
        assert_int_equal(pcpd_pcp_mapping_add(p, &full, &server, NULL), 0);
        assert_int_equal(pcpd_pcp_mapping_add(p, &described, &server, NULL), 0);
        assert_int_equal(pcpd_pcp_mapping_add(p, &plain, &server, NULL), 0);

        pcpd_pcp_mapping_unsupp_option_text(p, &full, text, sizeof(text));
        assert_string_equal(text, "the server does not support one of the options the request carried: "
                                  "PREFER_FAILURE, FILTER");
        pcpd_pcp_mapping_unsupp_option_text(p, &described, text, sizeof(text));
        assert_string_equal(text, "the request carried no mandatory option (only DESCRIPTION, which a server may "
                                  "ignore): an odd answer from the server");
        pcpd_pcp_mapping_unsupp_option_text(p, &plain, text, sizeof(text));
        assert_string_equal(text, "the request carried no option: an odd answer from the server");
        /* not held: nothing */
        pcpd_pcp_mapping_unsupp_option_text(p, &loose, text, sizeof(text));
        assert_string_equal(text, "");
        /* cut to the room given, still a string */
        pcpd_pcp_mapping_unsupp_option_text(p, &full, text, 12);
        assert_string_equal(text, "the server ");

        pcpd_pcp_server_remove(p, &server); /* its mappings lost with it */
        assert_false(pcpd_pcp_mapping_held(&full));
        pcpd_mapping_rare_free(&full);
        close(fd);
}

static bool has_failed(void *ctx, const void *arg) {
        const news *r = ctx;

        for (unsigned i = 0; i < r->n; i++)
                if (r->t[i].kind == T_MAPPING && r->t[i].mp == arg && strcmp(r->t[i].state, "failed") == 0)
                        return true;
        return false;
}

/* A server's UNSUPP_OPTION comes up with the options the request carried (error_detail,
 * for the failure's log line); other news carries no detail. */
static void test_unsupp_option_told(void **state) {
        g_autoptr(pcpd_pcp) p = NULL;
        fake_server *f = fake_server_new();
        news rec = { 0 };
        pcpd_mapping mp;
        pcpd_server a;
        const told *t;

        assert_int_equal(pcpd_pcp_new(&ops, &rec, 0, &p), 0);
        pcpd_pcp_start(p, 0);
        fake_server_handle(f, &a, "refuses options");
        f->map_result = PCP_RESULT_UNSUPP_OPTION;
        assert_int_equal(pcpd_pcp_server_add(p, &a), 0);
        mapping_init(p, &mp, 4300);
        mp.prefer_failure = true;
        mp.suggested_port = 14300;
        assert_int_equal(pcpd_pcp_mapping_add(p, &mp, &a, NULL), 0);
        pcpd_pcp_drain(p);
        pcpd_pcp_kick(p);
        wait_for(&rec, has_failed, &mp, "the mapping's failure");
        t = last_told(&rec, T_MAPPING, &mp, 0);
        assert_string_equal(t->error, "UNSUPP_OPTION");
        assert_string_equal(t->detail, "the server does not support the option the request carried: PREFER_FAILURE");
        for (unsigned i = 0; i < rec.n; i++)
                if (rec.t[i].kind == T_MAPPING && strcmp(rec.t[i].state, "failed") != 0)
                        assert_string_equal(rec.t[i].detail, "");
        pcpd_pcp_server_remove(p, &a);
        p = pcpd_pcp_free(g_steal_pointer(&p));
        fake_server_free(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_server_state_of),
                cmocka_unit_test(test_probe_and_answer),
                cmocka_unit_test(test_remove_closes),
                cmocka_unit_test(test_add_failure_leaves_nothing),
                cmocka_unit_test(test_news_reaches_handles),
                cmocka_unit_test(test_announce_told),
                cmocka_unit_test(test_detach_and_saved_deletes),
                cmocka_unit_test(test_stop_ends_input),
                cmocka_unit_test(test_removed_while_read),
                cmocka_unit_test(test_batch_dated_per_datagram),
                cmocka_unit_test(test_unsupp_option_text),
                cmocka_unit_test(test_unsupp_option_told),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
