/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The manager against the host's real addresses: the test enters a network namespace of
 * its own (unshare(CLONE_NEWNET), root), brings its loopback up and makes interfaces (veth
 * pairs) with `ip`, so the manager's host snapshot (pcpd-host.c) and its route monitor are the
 * kernel's, not a fake. The manager is started (pcpd_manager_start()) with the default
 * routers as a server source (there is no default route in the namespace: no server), so
 * it watches routes as pcpd does; a recording listener hears what it does, and a PCP
 * server, when a test wants one, is this test on 127.0.0.1 of the namespace.
 *
 * Covered: a host with a global address and no server maps "directly" (active at once,
 * the host's own address and the internal port, no server); its address goes, and then
 * its interface: the mapping is removed with "network-lost"; its address goes while the
 * host has another global one: the mapping takes that one (same object); a server starts
 * answering: the direct mapping moves to it (same object, a request at the server, active
 * with what the server grants).
 *
 * Addresses: pcpd-direct.c counts every documentation block (192.0.2.0/24, 198.51.100.0/24,
 * 203.0.113.0/24, 2001:db8::/32, 3fff::/20) and 198.18.0.0/15 as not global, so a "global"
 * address has to be one that is routed on the Internet. These are 192.88.99.0/24 (the
 * deprecated 6to4 relay anycast block, RFC 7526: globally reachable in IANA's registry)
 * and 192.31.196.0/24 (AS112-v4, RFC 7535); they exist only inside the test's namespace.
 *
 * Without the privilege to make a namespace (a developer's machine, not root) the test is
 * skipped with the reason; with CI=true it fails instead. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <glib-unix.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pcp-wire.h"
#include "pcpd-error.h"
#include "pcpd-manager.h"
#include "pcpd-servers.h"
#include "unit-fixture.h"

#define GLOBAL_A "192.88.99.1"  /* global (see above), on the first interface */
#define GLOBAL_B "192.31.196.1" /* global, on the second */
#define EXT_ADDR "192.0.2.7"    /* what the fake server grants (TEST-NET-1) */
#define PORT_OFFSET 10000
#define WAIT_CAP_ITERATIONS 100000
#define WAIT_CAP_SECONDS 30 /* a cap against hangs, never a pass condition */
#define TEST_UID 4242

static char ifname_a[IF_NAMESIZE], ifname_b[IF_NAMESIZE];

/* ---- `ip` in the test's namespace ---- */

static void ip(const char *first, ...) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_autoptr(GError) error = NULL;
        g_autofree char *out = NULL, *err = NULL;
        va_list ap;
        int status;

        g_ptr_array_add(argv, (char *) "ip");
        va_start(ap, first);
        for (const char *a = first; a != NULL; a = va_arg(ap, const char *))
                g_ptr_array_add(argv, (char *) a);
        va_end(ap);
        g_ptr_array_add(argv, NULL);
        if (!g_spawn_sync(NULL, (char **) argv->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status, &error))
                fail_msg("ip %s: %s", first, error->message);
        if (!g_spawn_check_wait_status(status, &error))
                fail_msg("ip %s ...: %s: %s", first, error->message, err);
}

/* An interface of the host's, up, with addr/24: one end of a veth pair whose other end
 * (name + "p") is up too and stays without an address. A veth, not a dummy: the dummy
 * driver is a module that some kernels (containers among them) do not have; veth is there
 * wherever containers are. */
static void iface_up(const char *name, const char *addr) {
        g_autofree char *cidr = g_strdup_printf("%s/24", addr);
        g_autofree char *peer = g_strdup_printf("%sp", name);

        ip("link", "add", name, "type", "veth", "peer", "name", peer, NULL);
        ip("addr", "add", cidr, "dev", name, NULL);
        ip("link", "set", peer, "up", NULL);
        ip("link", "set", name, "up", NULL);
}

/* ---- the fake server: answers ANNOUNCE and MAP, records the MAP requests' ports ---- */

typedef struct fake_server {
        int fd;
        guint watch;
        uint16_t port;
        gint64 started;
        GArray *ports; /* uint16_t: internal ports of the MAP requests with a lifetime */
} fake_server;

static gboolean on_fake_datagram(gint fd, GIOCondition cond, gpointer data) {
        fake_server *s = data;

        for (;;) {
                uint8_t buf[PCP_MAX_MSG_LEN + 4], out[PCP_MAX_MSG_LEN];
                struct sockaddr_storage from;
                socklen_t fl = sizeof(from);
                ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *) &from, &fl);
                pcp_msg q, r;
                size_t len;

                if (n < 0)
                        break;
                if (pcp_decode(buf, (size_t) n, false, &q) != PCP_WIRE_OK)
                        fail_msg("the fake server got a datagram that is no valid PCP request (%zd octets)", n);
                pcp_msg_init(&r, true, q.opcode);
                r.epoch = 1000 + (uint32_t) ((g_get_monotonic_time() - s->started) / G_USEC_PER_SEC);
                if (q.opcode == PCP_OPCODE_MAP) {
                        memcpy(r.nonce, q.nonce, PCP_NONCE_LEN);
                        r.protocol = q.protocol;
                        r.internal_port = q.internal_port;
                        r.result = PCP_RESULT_SUCCESS;
                        r.lifetime = q.lifetime;
                        if (q.lifetime == 0) {
                                r.external_addr = q.external_addr;
                        } else {
                                g_array_append_val(s->ports, q.internal_port);
                                r.external_port = (uint16_t) (q.internal_port + PORT_OFFSET);
                                assert_true(pcp_addr_from_string(EXT_ADDR, &r.external_addr));
                        }
                } else
                        assert_int_equal(q.opcode, PCP_OPCODE_ANNOUNCE);
                assert_int_equal(pcp_encode(&r, out, sizeof(out), &len), PCP_WIRE_OK);
                assert_int_equal(sendto(fd, out, len, 0, (struct sockaddr *) &from, fl), (ssize_t) len);
        }
        return G_SOURCE_CONTINUE;
}

static fake_server *fake_server_new(void) {
        fake_server *s = g_new0(fake_server, 1);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof(a);

        s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(s->fd >= 0);
        assert_int_equal(bind(s->fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(getsockname(s->fd, (struct sockaddr *) &a, &al), 0);
        s->port = ntohs(a.sin_port);
        s->started = g_get_monotonic_time();
        s->ports = g_array_new(FALSE, TRUE, sizeof(uint16_t));
        s->watch = g_unix_fd_add(s->fd, G_IO_IN, on_fake_datagram, s);
        return s;
}

static void fake_server_free(fake_server *s) {
        if (s == NULL)
                return;
        g_source_remove(s->watch);
        close(s->fd);
        g_array_unref(s->ports);
        g_free(s);
}

/* ---- the recording listener ---- */

enum { EV_ADDED, EV_CHANGED, EV_REMOVED };

typedef struct event {
        int kind;
        uint64_t id;
        unsigned what;
        int reason;
        char *state, *server, *external_address, *internal_address;
        uint16_t external_port;
} event;

static void record(GArray *events, int kind, const pcpd_mapping *mp, unsigned what, int reason) {
        event e = {
                .kind = kind,
                .id = mp->id,
                .what = what,
                .reason = reason,
                .state = g_strdup(mp->state),
                .server = g_strdup(mp->server_text),
                .external_address = g_strdup(mp->external_address),
                .internal_address = g_strdup(mp->internal_address),
                .external_port = mp->external_port,
        };

        g_array_append_val(events, e);
}

static void rec_added(pcpd_manager *m, pcpd_mapping *mp, void *userdata) {
        record(userdata, EV_ADDED, mp, 0, -1);
}

static void rec_changed(pcpd_manager *m, pcpd_mapping *mp, pcpd_mapping_changed what, void *userdata) {
        record(userdata, EV_CHANGED, mp, what, -1);
}

static void rec_removed(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason, void *userdata) {
        record(userdata, EV_REMOVED, mp, 0, (int) reason);
}

static const pcpd_manager_listener recording = {
        .mapping_added = rec_added,
        .mapping_changed = rec_changed,
        .mapping_removed = rec_removed,
};

static void event_clear(void *p) {
        event *e = p;

        g_free(e->state);
        g_free(e->server);
        g_free(e->external_address);
        g_free(e->internal_address);
}

static unsigned count_events(GArray *events, int kind, uint64_t id) {
        unsigned n = 0;

        for (guint i = 0; i < events->len; i++) {
                const event *e = &g_array_index(events, event, i);
                n += e->kind == kind && e->id == id;
        }
        return n;
}

static const event *last_event(GArray *events, int kind, uint64_t id) {
        for (guint i = events->len; i > 0; i--) {
                const event *e = &g_array_index(events, event, i - 1);
                if (e->kind == kind && e->id == id)
                        return e;
        }
        fail_msg("the listener heard no event of kind %d for mapping %" G_GUINT64_FORMAT, kind, id);
        abort();
}

/* ---- fixture: a started manager in the namespace, no server ---- */

typedef struct fixture {
        char *dir;
        GMainLoop *loop;
        GArray *events;
        fake_server *srv;
        pcpd_manager *m;
} fixture;

static int setup(void **state) {
        fixture *f = g_new0(fixture, 1);
        g_autoptr(GError) error = NULL;
        pcpd_config config;

        f->dir = g_dir_make_tmp("pcpd-test-manager-net-XXXXXX", &error);
        assert_non_null(f->dir);
        assert_int_equal(g_chmod(f->dir, 0700), 0);
        f->loop = g_main_loop_new(NULL, FALSE);
        f->events = g_array_new(FALSE, TRUE, sizeof(event));
        g_array_set_clear_func(f->events, event_clear);
        iface_up(ifname_a, GLOBAL_A);

        pcpd_config_init(&config);
        config.use_default_routers = true; /* the route monitor, as pcpd runs; no default route here */
        config.announce_port = 0;
        f->m = unit_manager_new(&config, f->dir, f->loop, &recording, f->events);
        pcpd_config_clear(&config);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(f->m->servers->len, 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        pcpd_manager_free(f->m);
        while (g_main_context_iteration(NULL, FALSE))
                ;
        fake_server_free(f->srv);
        g_array_unref(f->events);
        g_main_loop_unref(f->loop);
        unit_rm_own_dir(f->dir);
        g_free(f->dir);
        g_free(f);
        /* the interfaces this test made, by their exact names (gone already in some tests; a
         * veth's peer goes with it) */
        for (const char *n = ifname_a; n != NULL; n = n == ifname_a ? ifname_b : NULL) {
                const char *argv[] = { "ip", "link", "del", n, NULL };
                (void) g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL |
                                    G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        }
        return 0;
}

static gboolean on_cap(gpointer data) {
        *(bool *) data = true;
        return G_SOURCE_REMOVE;
}

typedef bool (*cond_fn)(fixture *f, const void *arg);

static void wait_for(fixture *f, cond_fn cond, const void *arg, const char *what) {
        bool capped = false;
        guint cap = g_timeout_add_seconds(WAIT_CAP_SECONDS, on_cap, &capped);
        unsigned i;

        for (i = 0; i < WAIT_CAP_ITERATIONS && !capped && !cond(f, arg); i++)
                g_main_context_iteration(NULL, TRUE);
        if (!capped)
                g_source_remove(cap);
        if (!cond(f, arg))
                fail_msg("waited for %s: not after %u iteration(s) of the main context%s", what, i,
                         capped ? " and the " G_STRINGIFY(WAIT_CAP_SECONDS) " s cap" : "");
}

typedef struct kind_of {
        int kind;
        uint64_t id;
        unsigned n;
} kind_of;

static bool heard(fixture *f, const void *arg) {
        const kind_of *k = arg;

        return count_events(f->events, k->kind, k->id) >= k->n;
}

static void wait_heard(fixture *f, int kind, uint64_t id, unsigned n, const char *what) {
        kind_of k = { .kind = kind, .id = id, .n = n };

        wait_for(f, heard, &k, what);
}

/* a change of mapping id, or its removal (which the test then fails on at once) */
static bool changed_or_removed(fixture *f, const void *arg) {
        const uint64_t *id = arg;

        return count_events(f->events, EV_CHANGED, *id) + count_events(f->events, EV_REMOVED, *id) > 0;
}

static bool mapping_active_at(fixture *f, const void *arg) {
        const pcpd_mapping *mp = arg;

        return g_strcmp0(mp->state, "active") == 0 && g_strcmp0(mp->external_address, EXT_ADDR) == 0;
}

static pcpd_mapping *add_direct(fixture *f, uint16_t port) {
        pcpd_mapping_request req = {
                .opcode = PCP_OPCODE_MAP,
                .protocol = 17,
                .family = AF_INET,
                .internal_port = port,
                .lifetime = 600,
                .uid = TEST_UID,
                .pid = 1234,
                .app_id = "",
                .app_id_source = "none",
                .owner = ":1.1",
                .owner_known_alive = true,
        };
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping *mp = NULL;
        int r = pcpd_manager_add_mapping(f->m, &req, &mp, &e);

        if (r < 0)
                fail_msg("AddMapping of port %u: %s (%d)", port, e.message, r);
        assert_non_null(mp);
        /* direct: active at once, with the host's own address and port, and no server */
        assert_true(mp->direct);
        assert_string_equal(mp->state, "active");
        assert_string_equal(mp->external_address, GLOBAL_A);
        assert_int_equal(mp->external_port, port);
        assert_string_equal(mp->server_text, "");
        assert_string_equal(last_event(f->events, EV_ADDED, mp->id)->state, "active");
        assert_string_equal(last_event(f->events, EV_ADDED, mp->id)->external_address, GLOBAL_A);
        return mp;
}

/* ---- tests ---- */

/* The host's only global address goes: the direct mapping is removed, "network-lost". */
static void test_address_gone(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_direct(f, 8501);
        uint64_t id = mp->id;

        ip("addr", "del", GLOBAL_A "/24", "dev", ifname_a, NULL);
        wait_heard(f, EV_REMOVED, id, 1, "the direct mapping to be removed after its address went");
        assert_int_equal(last_event(f->events, EV_REMOVED, id)->reason, PCPD_REMOVED_NETWORK_LOST);
        assert_int_equal(count_events(f->events, EV_REMOVED, id), 1);
        assert_null(g_hash_table_lookup(f->m->mappings, &id));
}

/* The interface the address is on goes: the same. */
static void test_link_gone(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_direct(f, 8502);
        uint64_t id = mp->id;

        ip("link", "del", ifname_a, NULL);
        wait_heard(f, EV_REMOVED, id, 1, "the direct mapping to be removed after its interface went");
        assert_int_equal(last_event(f->events, EV_REMOVED, id)->reason, PCPD_REMOVED_NETWORK_LOST);
        assert_null(g_hash_table_lookup(f->m->mappings, &id));
}

/* Its address goes while the host has another global one: the mapping takes it (same
 * object, not removed). */
static void test_address_changes(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_direct(f, 8503);
        uint64_t id = mp->id;
        const event *e;

        iface_up(ifname_b, GLOBAL_B);
        ip("addr", "del", GLOBAL_A "/24", "dev", ifname_a, NULL);
        wait_for(f, changed_or_removed, &id, "the direct mapping to take the host's other global address");
        assert_int_equal(count_events(f->events, EV_REMOVED, id), 0);
        e = last_event(f->events, EV_CHANGED, id);
        assert_true(e->what & PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS);
        assert_string_equal(e->external_address, GLOBAL_B);
        assert_string_equal(e->state, "active");
        assert_string_equal(mp->external_address, GLOBAL_B);
        assert_true(mp->direct);
        assert_int_equal(count_events(f->events, EV_REMOVED, id), 0);
}

/* A server starts answering: the direct mapping moves to it, same object, and is active
 * with what the server grants. */
static void test_moves_to_server(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_direct(f, 8504);
        uint64_t id = mp->id;
        g_autofree char *text = NULL;
        pcpd_server_spec spec = { .n_addrs = 1 };
        bool saw_server = false;
        guint n_ports;

        f->srv = fake_server_new();
        text = g_strdup_printf("127.0.0.1:%u", f->srv->port);
        spec.addrs[0].sin6_family = AF_INET6;
        spec.addrs[0].sin6_port = htons(f->srv->port);
        assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", &spec.addrs[0].sin6_addr), 1);
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &spec, 1));

        wait_for(f, mapping_active_at, mp, "the mapping to be active with the server's grant");
        assert_false(mp->direct);
        assert_string_equal(mp->server_text, text);
        assert_int_equal(mp->external_port, 8504 + PORT_OFFSET);
        n_ports = f->srv->ports->len;
        assert_true(n_ports >= 1);
        assert_int_equal(g_array_index(f->srv->ports, uint16_t, 0), 8504);
        for (guint i = 0; i < f->events->len; i++) {
                const event *e = &g_array_index(f->events, event, i);
                saw_server = saw_server || (e->kind == EV_CHANGED && e->id == id &&
                                            (e->what & PCPD_MAPPING_CHANGED_SERVER) && g_strcmp0(e->server, text) == 0);
        }
        assert_true(saw_server);
        assert_int_equal(count_events(f->events, EV_ADDED, id), 1);
        assert_int_equal(count_events(f->events, EV_REMOVED, id), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_address_gone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_link_gone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_address_changes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_moves_to_server, setup, teardown),
        };
        bool ci = g_strcmp0(g_getenv("CI"), "true") == 0;
        const char *why = NULL;
        g_autofree char *ip_path = g_find_program_in_path("ip");

        /* first, before any thread exists: the namespace is the calling thread's */
        if (unshare(CLONE_NEWNET) < 0)
                why = errno == EPERM ? "no privilege to make a network namespace (not root)" : g_strerror(errno);
        else if (ip_path == NULL)
                why = "no ip(8) in PATH";
        if (why != NULL) {
                if (ci) {
                        fprintf(stderr, "test-manager-net cannot run with CI=true: %s\n", why);
                        return 1;
                }
                printf("1..0 # SKIP %s\n", why);
                return 0;
        }
        g_snprintf(ifname_a, sizeof(ifname_a), "pmn%ua", (unsigned) getpid() % 1000000u);
        g_snprintf(ifname_b, sizeof(ifname_b), "pmn%ub", (unsigned) getpid() % 1000000u);
        {
                const char *argv[] = { "ip", "link", "set", "lo", "up", NULL };
                int status = -1;
                if (!g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL) ||
                    !g_spawn_check_wait_status(status, NULL)) {
                        fprintf(stderr, "test-manager-net: cannot bring the namespace's loopback up\n");
                        return 1;
                }
        }
        /* pcpd_manager_start() asks for NetworkManager on the system bus: none here */
        g_setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/pcpd-test-manager-net/no-bus", TRUE);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
