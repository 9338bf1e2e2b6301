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
#include <errno.h>
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
#include "manager-fixture.h"
#include "unit-fixture.h"

#define GLOBAL_A "192.88.99.1"  /* global (see above), on the first interface */
#define GLOBAL_B "192.31.196.1" /* global, on the second */
#define BROADCAST_A "192.88.99.255" /* the first interface's subnet's broadcast address */
#define TEST_UID MANAGER_TEST_UID

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

/* ---- fixture: a started manager in the namespace, no server ---- */

typedef struct fixture {
        char *dir;
        GMainLoop *loop;
        recorder rec;
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
        recorder_init(&f->rec);
        iface_up(ifname_a, GLOBAL_A);

        pcpd_config_init(&config);
        config.use_default_routers = true; /* the route monitor, as pcpd runs; no default route here */
        config.announce_port = 0;
        f->m = unit_manager_new(&config, f->dir, f->loop, &recording, &f->rec);
        pcpd_config_clear(&config);
        f->rec.expect_m = f->m;
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
        recorder_clear(&f->rec);
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

typedef struct kind_of {
        int kind;
        uint64_t id;
        unsigned n;
} kind_of;

static bool heard(void *ctx, const void *arg) {
        const fixture *f = ctx;
        const kind_of *k = arg;

        return count_events(&f->rec, k->kind, k->id) >= k->n;
}

static void wait_heard(fixture *f, int kind, uint64_t id, unsigned n, const char *what) {
        kind_of k = { .kind = kind, .id = id, .n = n };

        wait_for(f, heard, &k, what);
}

/* a change of mapping id, or its removal (which the test then fails on at once) */
static bool changed_or_removed(void *ctx, const void *arg) {
        const fixture *f = ctx;
        const uint64_t *id = arg;

        return count_events(&f->rec, EV_CHANGED, *id) + count_events(&f->rec, EV_REMOVED, *id) > 0;
}

static bool mapping_active_at(void *ctx, const void *arg) {
        const pcpd_mapping *mp = arg;

        return g_strcmp0(mp->state, "active") == 0 && g_strcmp0(mp->external_address, EXT_ADDR) == 0;
}

static pcpd_mapping *add_direct(fixture *f, uint16_t port) {
        pcpd_mapping_request req = manager_request(17, port, ":1.1");
        pcpd_mapping *mp = manager_add(f->m, &req);

        /* direct: active at once, with the host's own address and port, and no server */
        assert_true(pcpd_mapping_is_direct(mp));
        assert_string_equal(mp->state, "active");
        assert_string_equal(mp->external_address, GLOBAL_A);
        assert_int_equal(mp->external_port, port);
        assert_string_equal(mp->server_text, "");
        assert_string_equal(last_event(&f->rec, EV_ADDED, mp->id)->state, "active");
        assert_string_equal(last_event(&f->rec, EV_ADDED, mp->id)->external_address, GLOBAL_A);
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
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id)->reason, PCPD_REMOVED_NETWORK_LOST);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 1);
        assert_null(pcpd_manager_mapping(f->m, id));
}

/* The interface the address is on goes: the same. */
static void test_link_gone(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_direct(f, 8502);
        uint64_t id = mp->id;

        ip("link", "del", ifname_a, NULL);
        wait_heard(f, EV_REMOVED, id, 1, "the direct mapping to be removed after its interface went");
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id)->reason, PCPD_REMOVED_NETWORK_LOST);
        assert_null(pcpd_manager_mapping(f->m, id));
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
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
        e = last_event(&f->rec, EV_CHANGED, id);
        assert_true(e->what & PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS);
        assert_string_equal(e->external_address, GLOBAL_B);
        assert_string_equal(e->state, "active");
        assert_string_equal(mp->external_address, GLOBAL_B);
        assert_true(pcpd_mapping_is_direct(mp));
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
}

/* A server starts answering: the direct mapping moves to it, same object, and is active
 * with what the server grants. */
static void test_moves_to_server(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_direct(f, 8504);
        uint64_t id = mp->id;
        g_autofree char *text = NULL;
        pcpd_server_spec spec;
        bool saw_server = false;

        f->srv = fake_server_new();
        text = fake_server_text(f->srv);
        spec = fake_server_spec(f->srv);
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &spec, 1));

        wait_for(f, mapping_active_at, mp, "the mapping to be active with the server's grant");
        assert_false(pcpd_mapping_is_direct(mp));
        assert_string_equal(mp->server_text, text);
        assert_int_equal(mp->external_port, 8504 + PORT_OFFSET);
        assert_true(fake_count(f->srv, 8504, false) >= 1);
        /* every request with a lifetime the server saw was this mapping's (the first too) */
        for (guint i = 0; i < f->srv->requests->len; i++)
                if (fake_request(f->srv, i)->lifetime != 0)
                        assert_int_equal(fake_request(f->srv, i)->internal_port, 8504);
        for (guint i = 0; i < f->rec.events->len; i++) {
                const event *e = &g_array_index(f->rec.events, event, i);
                saw_server = saw_server || (e->kind == EV_CHANGED && e->id == id &&
                                            (e->what & PCPD_MAPPING_CHANGED_SERVER) && g_strcmp0(e->server, text) == 0);
        }
        assert_true(saw_server);
        assert_int_equal(count_events(&f->rec, EV_ADDED, id), 1);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
}

/* ---- the log lines about one server address (refused servers) ---- */

static const char *log_watch_addr; /* the address the lines are counted for; NULL: none */
static unsigned log_not_used;      /* "PCP server <addr> (<source>, <if>) not used: ..." (pcpd-servers.c) */
static unsigned log_socket_tries;  /* "PCP server <addr>: cannot open a socket toward it" (pcpd-pcp.c) */

static GLogWriterOutput count_log(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data) {
        for (gsize i = 0; i < n; i++) {
                const char *msg = fields[i].value;

                if (strcmp(fields[i].key, "MESSAGE") != 0 || fields[i].length != -1 || log_watch_addr == NULL)
                        continue;
                if (g_str_has_prefix(msg, "PCP server ") && strstr(msg, log_watch_addr) != NULL &&
                    strstr(msg, " not used: ") != NULL)
                        log_not_used++;
                if (g_str_has_prefix(msg, "PCP server ") && strstr(msg, log_watch_addr) != NULL &&
                    strstr(msg, "cannot open a socket toward it") != NULL)
                        log_socket_tries++;
        }
        return g_log_writer_default(level, fields, n, data);
}

static bool socket_tried(void *ctx, const void *arg) {
        return log_socket_tries >= *(const unsigned *) arg;
}

static bool has_servers(void *ctx, const void *arg) {
        const fixture *f = ctx;

        return f->m->servers->len >= *(const guint *) arg;
}

/* A DHCP-announced server the kernel refuses (the subnet's broadcast address: connect()
 * fails with EACCES) is said once and not tried again on every pass of the servers (any
 * route message or NetworkManager change makes one): after a source told something (a
 * renewal), once its wait is over, without a word when it is refused again; when the routes
 * change so that it is reachable (the subnet grows: it is no broadcast address any more),
 * it is tried again and used. */
static void test_refused_server_said_once(void **state) {
        fixture *f = *state;
        pcpd_server_spec sp = { .n_addrs = 1 };
        g_autofree char *cidr16 = g_strdup_printf("%s/16", GLOBAL_A);
        g_autofree char *cidr24 = g_strdup_printf("%s/24", GLOBAL_A);
        const guint one = 1;
        const unsigned two = 2;

        sp.addrs[0].sin6_family = AF_INET6;
        sp.addrs[0].sin6_port = htons(PCP_SERVER_PORT);
        assert_true(pcp_addr_from_string(BROADCAST_A, &sp.addrs[0].sin6_addr));
        g_strlcpy(sp.ifname, ifname_a, sizeof(sp.ifname));
        log_watch_addr = BROADCAST_A;
        log_not_used = log_socket_tries = 0;

        assert_false(pcpd_manager_set_servers(f->m, PCPD_SOURCE_DHCPV4, ifname_a, &sp, 1));
        assert_int_equal(f->m->servers->len, 0);
        assert_int_equal(log_socket_tries, 1);
        assert_int_equal(log_not_used, 1);
        /* passes with nothing changed: neither tried nor said again */
        for (int k = 0; k < 5; k++)
                pcpd_servers_replan(f->m);
        assert_false(pcpd_manager_set_servers(f->m, PCPD_SOURCE_DHCPV4, ifname_a, &sp, 1));
        assert_int_equal(f->m->servers->len, 0);
        assert_int_equal(log_socket_tries, 1);
        assert_int_equal(log_not_used, 1);
        /* the renewal: tried again when its wait is over, refused again, not said again */
        wait_for(f, socket_tried, &two, "the refused server to be tried again after the renewal");
        assert_int_equal(f->m->servers->len, 0);
        assert_int_equal(log_not_used, 1);

        /* the subnet grows to a /16: the address is an ordinary one now */
        ip("addr", "add", cidr16, "dev", ifname_a, NULL);
        ip("addr", "del", cidr24, "dev", ifname_a, NULL);
        wait_for(f, has_servers, &one, "the refused server to be tried again and used after the routes changed");
        assert_string_equal(((pcpd_server *) f->m->servers->pdata[0])->text, BROADCAST_A);
        assert_int_equal(log_not_used, 1);
        log_watch_addr = NULL;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_refused_server_said_once, setup, teardown),
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
        g_log_set_writer_func(count_log, NULL, NULL);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
