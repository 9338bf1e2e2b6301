/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The manager with a fake "pcp" backend (fake-backend.c: no socket, no engine, no clock)
 * and a recording listener (manager-fixture.c): what the manager asks of its backend and
 * what it tells its listener, for every piece of news a backend can bring. The servers are
 * the config source's, addresses nobody listens on (the fake never sends).
 *
 * Covered: a grant and a failure as the backend tells them; sharing (one add for two
 * holders, one remove when the last lets go, the delete kept until the backend confirms
 * it); the per-uid and the host's quota (nothing asked of the backend); enable and disable;
 * every remove reason the manager gives (released, owner-vanished, revoked, disabled,
 * network-lost from a mapping the backend lost, and none for "expired" and
 * "server-refused", which no code path gives); a move between servers (same object, same
 * nonce, the external address it had asked for again); moves between backends through
 * manager_mapping_move() (to "direct" with an address the test gives, and back to a
 * server, with a fresh nonce); reclaim after a restart (the saved nonce asked again on the
 * same server, an app's mapping reclaimed by its uid, a removed one whose delete was not
 * confirmed deleted again); the direct/NAT decision on a fake host snapshot the test
 * changes (manager_set_fake_host(): a global address and no server is direct, the address
 * changes, goes, a server answers); the UPnP-IGD fallback's contract with a fake fallback
 * (handed a mapping whose server speaks no PCP, its news published, its deletes that must
 * be confirmed kept as deleting records under the cookie it is given, handover); a
 * server's announced change (server_recreate) logged once per episode.
 *
 * Not covered here: the kernel's addresses and route events themselves (test-manager-net.c
 * in a network namespace), and the real PCP backend's I/O (test-manager.c, test-pcp.c). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake-backend.h"
#include "pcpd-declared-manager.h"
#include "manager-fixture.h"
#include "pcpd-error.h"
#include "pcpd-holders.h"
#include "pcpd-log.h"
#include "pcpd-manager-private.h"
#include "pcpd-manager.h"
#include "pcpd-servers.h"
#include "pcpd-store.h"
#include "unit-fixture.h"

#define TEST_UID MANAGER_TEST_UID

typedef struct options {
        guint32 max_mappings_per_user;
        guint32 max_mappings;
        bool fake_fallback; /* a fake UPnP-IGD fallback (fake-backend.h) instead of the real one */
} options;

typedef struct fixture {
        char *dir;
        GMainLoop *loop;
        recorder rec;
        pcpd_manager *m;
        fake_backend *fb;
        options opts;
} fixture;

static pcpd_server_spec spec_of(const char *ip, uint16_t port) {
        pcpd_server_spec sp = { .n_addrs = 1 };

        sp.addrs[0].sin6_family = AF_INET6;
        sp.addrs[0].sin6_port = htons(port);
        assert_true(pcp_addr_from_string(ip, &sp.addrs[0].sin6_addr));
        return sp;
}

#define SERVER_A "192.0.2.1"
#define SERVER_B "192.0.2.2"

static void manager_make(fixture *f, bool start) {
        g_autofree char *why = NULL;
        g_autoptr(GError) error = NULL;
        pcpd_state *loaded = NULL;
        pcpd_config config;
        int fd = -1;

        pcpd_config_init(&config);
        config.use_default_routers = false;
        config.announce_port = 0;
        if (f->opts.max_mappings_per_user > 0)
                config.max_mappings_per_user = f->opts.max_mappings_per_user;
        if (f->opts.max_mappings > 0)
                config.max_mappings = f->opts.max_mappings;
        config.n_servers = 1;
        config.servers[0].text = g_strdup(SERVER_A);
        config.servers[0].addr = spec_of(SERVER_A, PCP_SERVER_PORT).addrs[0];
        if (pcpd_state_dir_open(f->dir, &fd, &why) < 0)
                fail_msg("state directory %s: %s", f->dir, why);
        if (pcpd_state_load(fd, f->dir, &loaded, &error) < 0)
                fail_msg("state in %s: %s", f->dir, error->message);
        assert_int_equal(manager_new_with_backends(&config, f->dir, fd, loaded, f->loop, &recording, &f->rec,
                                                   fake_backend_new,
                                                   f->opts.fake_fallback ? fake_fallback_new : pcpd_upnp_backend_new,
                                                   &f->m),
                         0);
        pcpd_config_clear(&config);
        f->rec.expect_m = f->m;
        f->fb = fake_of(f->m->pcp);
        /* its server: the config source's, as pcpd_manager_start() adds it (the manager
         * is started only for a restart: it restores then) */
        if (start)
                assert_int_equal(pcpd_manager_start(f->m), 0);
        else {
                pcpd_server_spec a = spec_of(SERVER_A, PCP_SERVER_PORT);
                assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &a, 1));
        }
        assert_int_equal(f->m->servers->len, 1);
}

static int setup(void **state) {
        fixture *f = g_new0(fixture, 1);

        if (*state != NULL)
                f->opts = *(const options *) *state;
        f->dir = unit_make_own_dir("manager-backend");
        f->loop = g_main_loop_new(NULL, FALSE);
        recorder_init(&f->rec);
        manager_make(f, false);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        pcpd_manager_free(f->m);
        while (g_main_context_iteration(NULL, FALSE))
                ;
        recorder_clear(&f->rec);
        g_main_loop_unref(f->loop);
        unit_rm_own_dir(f->dir);
        g_free(f->dir);
        g_free(f);
        return 0;
}

static pcpd_server *server(fixture *f, guint i) {
        assert_true(i < f->m->servers->len);
        return f->m->servers->pdata[i];
}

static pcpd_mapping_request request(uint16_t port, const char *owner) {
        return manager_request(6, port, owner);
}

static pcpd_mapping *add(fixture *f, const pcpd_mapping_request *req) {
        return manager_add(f->m, req);
}

static pcpd_mapping *add_granted(fixture *f, uint16_t port, const char *owner) {
        pcpd_mapping_request req = request(port, owner);
        pcpd_mapping *mp = add(f, &req);

        fake_grant(f->fb, mp, port + 1000, 600);
        assert_string_equal(mp->state, "active");
        return mp;
}

/* ---- tests ---- */

/* An add: the backend is asked once, on the server, with the nonce the record has; the
 * mapping is published pending with the internal address the backend gave; a grant is
 * one change with what it says; a failure another. */
static void test_add_grant_fail(void **state) {
        fixture *f = *state;
        pcpd_mapping_request req = request(5001, ":1.1");
        pcpd_mapping *mp = add(f, &req);
        const fake_call *c;
        const event *ev;
        const pcpd_server *on;

        assert_int_equal(fake_calls(f->fb, FAKE_ADD, mp->id), 1);
        c = fake_last_call(f->fb, FAKE_ADD, mp->id);
        assert_ptr_equal(c->server, server(f, 0));
        assert_memory_equal(c->nonce, mp->nonce, PCP_NONCE_LEN);
        assert_false(c->has_external);
        assert_true(fake_holds(f->fb, mp, &on));
        assert_ptr_equal(on, server(f, 0));
        assert_int_equal(count_events(&f->rec, EV_ADDED, mp->id), 1);
        ev = last_event(&f->rec, EV_ADDED, mp->id);
        assert_string_equal(ev->state, "pending");
        assert_string_equal(ev->internal_address, "10.0.0.2");
        assert_string_equal(mp->server_text, "192.0.2.1");

        fake_grant(f->fb, mp, 15001, 600);
        ev = last_event(&f->rec, EV_CHANGED, mp->id);
        assert_string_equal(ev->state, "active");
        assert_string_equal(ev->external_address, "198.51.100.9");
        assert_int_equal(ev->external_port, 15001);
        assert_int_equal(ev->what & (PCPD_MAPPING_CHANGED_STATE | PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS |
                                     PCPD_MAPPING_CHANGED_EXTERNAL_PORT | PCPD_MAPPING_CHANGED_LIFETIME |
                                     PCPD_MAPPING_CHANGED_SERVER | PCPD_MAPPING_CHANGED_ERROR),
                         PCPD_MAPPING_CHANGED_STATE | PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS |
                                 PCPD_MAPPING_CHANGED_EXTERNAL_PORT | PCPD_MAPPING_CHANGED_LIFETIME);
        assert_int_equal(mp->granted, 600);
        assert_int_equal(mp->suggested_port, 15001); /* what a renewal and a restart ask for */

        fake_fail(f->fb, mp, "NOT_AUTHORIZED");
        ev = last_event(&f->rec, EV_CHANGED, mp->id);
        assert_string_equal(ev->state, "failed");
        assert_string_equal(ev->error, "NOT_AUTHORIZED");
        assert_true(ev->what & PCPD_MAPPING_CHANGED_ERROR);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, mp->id), 0); /* held, failed */
}

/* Two holders share one mapping: one add; the first release asks nothing of the backend,
 * the second removes it ("released") with a cookie under which the delete is kept until
 * the backend confirms it; another user cannot have the port. */
static void test_sharing(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 5002, ":1.1");
        pcpd_mapping_request req2 = request(5002, ":1.2"), other = request(5002, ":1.3");
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping *got = NULL;
        uint64_t id = mp->id, cookie;
        guint n_calls;

        assert_ptr_equal(add(f, &req2), mp);
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, id), 1);
        other.uid = TEST_UID + 1;
        n_calls = f->fb->calls->len;
        assert_true(pcpd_manager_add_mapping(f->m, &other, &got, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_CONFLICT);
        assert_int_equal(f->fb->calls->len, n_calls);

        pcpd_manager_release(f->m, mp, ":1.1", PCPD_REMOVED_RELEASED);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, id), 0);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);

        pcpd_manager_release(f->m, mp, ":1.2", PCPD_REMOVED_RELEASED);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, id), 1);
        assert_true(fake_last_call(f->fb, FAKE_REMOVE, id)->had_grant);
        cookie = fake_last_call(f->fb, FAKE_REMOVE, id)->cookie;
        assert_int_not_equal(cookie, 0);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id)->reason, PCPD_REMOVED_RELEASED);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
        /* the delete is kept until confirmed: a not-confirmed end keeps it, a confirmed one
         * forgets it */
        assert_true(g_hash_table_contains(f->m->deleting, &cookie));
        fake_delete_done(f->fb, cookie, false);
        assert_true(g_hash_table_contains(f->m->deleting, &cookie));
        fake_delete_done(f->fb, cookie, true);
        assert_int_equal(g_hash_table_size(f->m->deleting), 0);
}

/* A mapping never granted goes without a kept delete (cookie 0). */
static void test_remove_ungranted(void **state) {
        fixture *f = *state;
        pcpd_mapping_request req = request(5003, ":1.1");
        pcpd_mapping *mp = add(f, &req);
        uint64_t id = mp->id;

        pcpd_manager_release(f->m, mp, ":1.1", PCPD_REMOVED_RELEASED);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, id), 1);
        assert_int_equal(fake_last_call(f->fb, FAKE_REMOVE, id)->cookie, 0);
        assert_int_equal(g_hash_table_size(f->m->deleting), 0);
}

/* MaxMappingsPerUser and MaxMappings: refused, nothing told, nothing asked of the backend. */
static void test_quotas(void **state) {
        fixture *f = *state;
        pcpd_mapping_request a = request(6001, ":1.1"), b = request(6002, ":1.1"), c = request(6003, ":1.1");
        pcpd_mapping_request d = request(6004, ":1.9");
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        g_auto(pcpd_failure) e2 = PCPD_FAILURE_NULL;
        pcpd_mapping *mp = NULL;
        guint n_calls, n_events;

        (void) add(f, &a);
        (void) add(f, &b);
        n_calls = f->fb->calls->len;
        n_events = f->rec.events->len;
        assert_true(pcpd_manager_add_mapping(f->m, &c, &mp, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_QUOTA_EXCEEDED);
        assert_null(mp);
        assert_int_equal(f->fb->calls->len, n_calls);
        assert_int_equal(f->rec.events->len, n_events);
        /* another uid: the host's limit (3) leaves room for one */
        d.uid = TEST_UID + 1;
        (void) add(f, &d);
        d.internal_port = 6005;
        assert_true(pcpd_manager_add_mapping(f->m, &d, &mp, &e2) < 0);
        assert_int_equal(e2.error, PCPD_ERROR_QUOTA_EXCEEDED);
        assert_non_null(strstr(e2.message, "configured maximum"));
        assert_int_equal(f->fb->calls->len, n_calls + 1);
}

/* Disabled: every mapping goes ("disabled"), removed at the backend; adds are refused and
 * reach no backend; enabled again, they work. */
static void test_enable_disable(void **state) {
        fixture *f = *state;
        pcpd_mapping *a = add_granted(f, 7001, ":1.1"), *b = add_granted(f, 7002, ":1.2");
        uint64_t ia = a->id, ib = b->id;
        pcpd_mapping_request req = request(7003, ":1.3");
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping *mp = NULL;
        guint n_calls;

        assert_int_equal(pcpd_manager_set_enabled(f->m, false), 1);
        assert_int_equal(pcpd_manager_set_enabled(f->m, false), 0);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, ia)->reason, PCPD_REMOVED_DISABLED);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, ib)->reason, PCPD_REMOVED_DISABLED);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, ia), 1);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, ib), 1);
        assert_string_equal(pcpd_manager_state(f->m), "disabled");
        n_calls = f->fb->calls->len;
        assert_true(pcpd_manager_add_mapping(f->m, &req, &mp, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_DISABLED);
        assert_int_equal(f->fb->calls->len, n_calls);

        assert_int_equal(pcpd_manager_set_enabled(f->m, true), 1);
        mp = add(f, &req);
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, mp->id), 1);
}

/* Every reason the manager removes a mapping with, each told once, with the mapping still
 * readable (the recorder checks that), and the backend asked to remove it, except a
 * mapping the backend lost itself (nothing left to remove there). */
static void test_remove_reasons(void **state) {
        fixture *f = *state;
        pcpd_mapping *rel = add_granted(f, 8001, ":1.1"), *van = add_granted(f, 8002, ":1.2");
        pcpd_mapping *rev = add_granted(f, 8003, ":1.3"), *lost = add_granted(f, 8004, ":1.4");
        uint64_t irel = rel->id, ivan = van->id, irev = rev->id, ilost = lost->id;

        pcpd_manager_release(f->m, rel, ":1.1", PCPD_REMOVED_RELEASED);
        pcpd_manager_holder_vanished(f->m, ":1.2");
        pcpd_manager_remove_mapping(f->m, rev, PCPD_REMOVED_REVOKED);
        fake_lose(f->fb, lost);

        assert_int_equal(last_event(&f->rec, EV_REMOVED, irel)->reason, PCPD_REMOVED_RELEASED);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, ivan)->reason, PCPD_REMOVED_OWNER_VANISHED);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, irev)->reason, PCPD_REMOVED_REVOKED);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, ilost)->reason, PCPD_REMOVED_NETWORK_LOST);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, irel), 1);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, ivan), 1);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, irev), 1);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, ilost), 0);
        /* a lost mapping has nothing upstream to delete: no record kept for it */
        assert_int_equal(g_hash_table_size(f->m->deleting), 3);
        for (uint64_t id = irel; id <= ilost; id++)
                assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 1);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
        /* the rest of the names (disabled: test_enable_disable) are the bus's */
        assert_string_equal(pcpd_remove_reason_to_string(PCPD_REMOVED_EXPIRED), "expired");
        assert_string_equal(pcpd_remove_reason_to_string(PCPD_REMOVED_SERVER_REFUSED), "server-refused");
}

/* The server goes and another comes: the mapping moves (same object, same nonce, the
 * external address it had asked for again), Server changes; the old one is detached, not
 * removed (what it left there expires: C4). */
static void test_move_between_servers(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 8101, ":1.1");
        pcpd_server_spec b = spec_of(SERVER_B, PCP_SERVER_PORT);
        uint8_t nonce[PCP_NONCE_LEN];
        uint64_t id = mp->id;
        const fake_call *c;
        const pcpd_server *on;
        char buf[PCP_ADDR_STRLEN];

        memcpy(nonce, mp->nonce, sizeof(nonce));
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &b, 1));
        assert_int_equal(f->m->servers->len, 1);
        assert_int_equal(fake_calls(f->fb, FAKE_DETACH, id), 1);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, id), 0);
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, id), 2);
        c = fake_last_call(f->fb, FAKE_ADD, id);
        assert_ptr_equal(c->server, server(f, 0));
        assert_memory_equal(c->nonce, nonce, PCP_NONCE_LEN);
        assert_true(c->has_external);
        assert_string_equal(pcp_addr_to_string(&c->external, buf), "198.51.100.9");
        assert_true(fake_holds(f->fb, mp, &on));
        assert_ptr_equal(on, server(f, 0));
        assert_string_equal(mp->server_text, "192.0.2.2");
        assert_true(last_event(&f->rec, EV_CHANGED, id)->what & PCPD_MAPPING_CHANGED_SERVER ||
                    count_events(&f->rec, EV_CHANGED, id) > 1);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
        assert_int_equal(count_events(&f->rec, EV_ADDED, id), 1);
        fake_grant(f->fb, mp, 18101, 600);
        assert_string_equal(mp->state, "active");

        /* no server at all: it waits (NO_SERVER), nothing removed */
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, NULL, 0));
        assert_string_equal(mp->state, "failed");
        assert_string_equal(mp->error, "NO_SERVER");
        assert_false(fake_holds(f->fb, mp, NULL));
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
}

/* The one move between backends: to "direct" (the host's own address, given here), the
 * "pcp" part removed; and back to a server, a fresh nonce, Server set. */
static void test_move_between_backends(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 8201, ":1.1");
        struct in6_addr own;
        uint8_t nonce[PCP_NONCE_LEN];
        uint64_t id = mp->id;
        const event *ev;

        memcpy(nonce, mp->nonce, sizeof(nonce));
        assert_true(pcp_addr_from_string("203.0.113.5", &own));
        assert_int_equal(manager_mapping_move(f->m, mp, f->m->direct, NULL, &own), 0);
        assert_true(pcpd_mapping_is_direct(mp));
        assert_ptr_equal(manager_mapping_backend(f->m, mp), f->m->direct);
        assert_false(fake_holds(f->fb, mp, NULL));
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, id), 1); /* deleted on the server it left */
        assert_int_equal(f->m->n_direct, 1);
        ev = last_event(&f->rec, EV_CHANGED, id);
        assert_true(ev->what & PCPD_MAPPING_CHANGED_SERVER);
        assert_string_equal(ev->server, "");
        assert_string_equal(ev->state, "active");
        assert_string_equal(ev->external_address, "203.0.113.5");
        assert_string_equal(ev->internal_address, "203.0.113.5");
        assert_int_equal(ev->external_port, 8201);

        assert_int_equal(manager_mapping_move(f->m, mp, f->m->pcp, server(f, 0), NULL), 0);
        assert_false(pcpd_mapping_is_direct(mp));
        assert_int_equal(f->m->n_direct, 0);
        assert_ptr_equal(manager_mapping_backend(f->m, mp), f->m->pcp);
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, id), 2);
        /* from "direct": a new upstream mapping, asking no external address (not the
         * host's own) */
        assert_false(fake_last_call(f->fb, FAKE_ADD, id)->has_external);
        assert_memory_not_equal(mp->nonce, nonce, PCP_NONCE_LEN);
        ev = last_event(&f->rec, EV_CHANGED, id);
        assert_string_equal(ev->server, "192.0.2.1");
        assert_string_equal(ev->state, "pending");
        fake_grant(f->fb, mp, 18201, 600);
        assert_string_equal(mp->external_address, "198.51.100.9");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);

        /* a backend that refuses: from a server, it waits for another */
        manager_mapping_leave(f->m, mp);
        f->fb->add_error = -ENOSPC;
        assert_int_equal(manager_mapping_move(f->m, mp, f->m->pcp, server(f, 0), NULL), -ENOSPC);
        assert_string_equal(mp->error, "NO_SERVER");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
}

/* A mapping moved back to a server whose delete under its nonce is still on its way there
 * (the backend says -EEXIST) is asked again at once under a fresh nonce, saved before it
 * is asked (the fake checks the record on every add). */
static void test_move_nonce_in_use(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 8401, ":1.1");
        uint8_t nonce[PCP_NONCE_LEN];
        uint64_t id = mp->id;
        const fake_call *c;

        memcpy(nonce, mp->nonce, sizeof(nonce));
        manager_mapping_leave(f->m, mp);
        f->fb->eexist_adds = 1;
        assert_int_equal(manager_mapping_move(f->m, mp, f->m->pcp, server(f, 0), NULL), 0);
        assert_int_equal(fake_calls(f->fb, FAKE_ADD_EEXIST, id), 1);
        c = fake_last_call(f->fb, FAKE_ADD_EEXIST, id);
        assert_memory_equal(c->nonce, nonce, PCP_NONCE_LEN); /* its nonce first */
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, id), 2);
        c = fake_last_call(f->fb, FAKE_ADD, id);
        assert_memory_not_equal(c->nonce, nonce, PCP_NONCE_LEN);
        assert_memory_equal(c->nonce, mp->nonce, PCP_NONCE_LEN);
        assert_true(fake_holds(f->fb, mp, NULL));
        fake_grant(f->fb, mp, 18401, 600);
        assert_string_equal(mp->state, "active");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
}

/* The journal's descriptor (mappings.journal in the state directory), or -1. */
static int journal_fd(const fixture *f) {
        g_autofree char *want = g_build_filename(f->dir, "mappings.journal", NULL);
        int found = -1;
        GDir *d = g_dir_open("/proc/self/fd", 0, NULL);
        const char *name;

        assert_non_null(d);
        while ((name = g_dir_read_name(d)) != NULL) {
                g_autofree char *link = g_build_filename("/proc/self/fd", name, NULL);
                g_autofree char *target = g_file_read_link(link, NULL);

                if (target != NULL && strcmp(target, want) == 0)
                        found = atoi(name);
        }
        g_dir_close(d);
        return found;
}

/* A move to "direct" whose record cannot be saved (the disk is full) leaves the mapping
 * not direct (nor counted as such) and waiting for a server, as the move promises; a move
 * to the server a mapping is on already changes nothing. */
static void test_move_failures(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 8301, ":1.1");
        struct in6_addr own;
        uint64_t id = mp->id;
        int jfd = journal_fd(f), full;

        /* already there: no leave, no new request, still held and active */
        assert_int_equal(manager_mapping_move(f->m, mp, f->m->pcp, server(f, 0), NULL), 0);
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, id), 1);
        assert_int_equal(fake_calls(f->fb, FAKE_REMOVE, id), 0);
        assert_true(fake_holds(f->fb, mp, NULL));
        assert_string_equal(mp->state, "active");

        assert_true(jfd >= 0);
        full = open("/dev/full", O_WRONLY | O_CLOEXEC);
        assert_true(full >= 0);
        assert_int_equal(dup2(full, jfd), jfd); /* every journal write: ENOSPC */
        close(full);
        assert_true(pcp_addr_from_string("203.0.113.7", &own));
        assert_true(manager_mapping_move(f->m, mp, f->m->direct, NULL, &own) < 0);
        assert_false(pcpd_mapping_is_direct(mp));
        assert_int_equal(f->m->n_direct, 0);
        assert_ptr_not_equal(manager_mapping_backend(f->m, mp), f->m->direct);
        assert_string_equal(mp->state, "failed");
        assert_string_equal(mp->error, "NO_SERVER");
        assert_string_equal(mp->external_address, "");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
}

/* A restart over the same state directory: the persistent mapping and the app's are asked
 * again on the same server with their saved nonces (and the external address they had),
 * on the same paths; the app's waits for its app and is reclaimed by the same uid's
 * request; a removal whose delete was never confirmed is deleted again under its nonce. */
static void test_reclaim_after_restart(void **state) {
        fixture *f = *state;
        pcpd_mapping_request preq = request(9001, NULL), again = request(9002, ":1.50");
        pcpd_mapping *pers, *app, *gone, *mp;
        g_autofree char *ppath = NULL, *apath = NULL;
        uint8_t pnonce[PCP_NONCE_LEN], anonce[PCP_NONCE_LEN], gnonce[PCP_NONCE_LEN];
        uint64_t gid;
        const fake_call *c;
        const event *ev;

        preq.persistent = true;
        pers = add(f, &preq);
        fake_grant(f->fb, pers, 19001, 600);
        app = add_granted(f, 9002, ":1.5");
        gone = add_granted(f, 9003, ":1.6");
        ppath = g_strdup(PCPD_MAPPING_PATH(pers));
        apath = g_strdup(PCPD_MAPPING_PATH(app));
        memcpy(pnonce, pers->nonce, sizeof(pnonce));
        memcpy(anonce, app->nonce, sizeof(anonce));
        memcpy(gnonce, gone->nonce, sizeof(gnonce));
        gid = gone->id;
        pcpd_manager_release(f->m, gone, ":1.6", PCPD_REMOVED_RELEASED); /* never confirmed */

        f->m = pcpd_manager_free(f->m);
        g_array_set_size(f->rec.events, 0);
        manager_make(f, true);

        pers = pcpd_manager_find_path(f->m, ppath);
        app = pcpd_manager_find_path(f->m, apath);
        assert_non_null(pers);
        assert_non_null(app);
        assert_false(pers->unclaimed);
        assert_true(app->unclaimed);
        c = fake_last_call(f->fb, FAKE_ADD, pers->id);
        assert_memory_equal(c->nonce, pnonce, PCP_NONCE_LEN);
        assert_ptr_equal(c->server, server(f, 0));
        assert_true(c->has_external);
        assert_int_equal(pers->suggested_port, 19001);
        assert_memory_equal(fake_last_call(f->fb, FAKE_ADD, app->id)->nonce, anonce, PCP_NONCE_LEN);
        c = fake_last_call(f->fb, FAKE_DELETE_SAVED, gid);
        assert_memory_equal(c->nonce, gnonce, PCP_NONCE_LEN);
        assert_int_equal(c->cookie, gid);
        assert_int_equal(count_events(&f->rec, EV_ADDED, pers->id), 1);

        mp = add(f, &again);
        assert_ptr_equal(mp, app);
        assert_false(app->unclaimed);
        assert_string_equal(app->owner, ":1.50");
        ev = last_event(&f->rec, EV_CHANGED, app->id);
        assert_int_equal(ev->what & (PCPD_MAPPING_CHANGED_OWNER | PCPD_MAPPING_CHANGED_PID),
                         PCPD_MAPPING_CHANGED_OWNER | PCPD_MAPPING_CHANGED_PID);
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, app->id), 1); /* no new request */
        fake_delete_done(f->fb, gid, true);
        assert_int_equal(g_hash_table_size(f->m->deleting), 0);
}

/* The removal that forgets a confirmed delete is written with the next record (the
 * store's forget_later): a pcpd killed before that leaves the "deleting" record. The
 * restarted pcpd sends that delete again under its nonce, brings back no mapping, and
 * forgets it once confirmed (pcpd-manager-store.c: why losing it is harmless). */
static void test_lost_forget_after_restart(void **state) {
        fixture *f = *state;
        pcpd_mapping *gone = add_granted(f, 9011, ":1.7");
        g_autofree char *gpath = g_strdup(PCPD_MAPPING_PATH(gone));
        uint8_t gnonce[PCP_NONCE_LEN];
        uint64_t gid = gone->id;

        memcpy(gnonce, gone->nonce, sizeof(gnonce));
        pcpd_manager_release(f->m, gone, ":1.7", PCPD_REMOVED_RELEASED);
        fake_delete_done(f->fb, gid, true);
        assert_int_equal(g_hash_table_size(f->m->deleting), 0);

        /* killed: the removal not written yet is lost with the store */
        f->m->store = pcpd_store_free(f->m->store);
        f->m = pcpd_manager_free(f->m);
        g_array_set_size(f->rec.events, 0);
        manager_make(f, true);

        assert_int_equal(fake_calls(f->fb, FAKE_DELETE_SAVED, gid), 1);
        assert_memory_equal(fake_last_call(f->fb, FAKE_DELETE_SAVED, gid)->nonce, gnonce, PCP_NONCE_LEN);
        assert_null(pcpd_manager_find_path(f->m, gpath));
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
        assert_int_equal(f->fb->calls->len, 1); /* the delete only: nothing asked again */
        fake_delete_done(f->fb, gid, true);
        assert_int_equal(g_hash_table_size(f->m->deleting), 0);

        /* stopped cleanly: the removal is written, nothing is deleted again */
        f->m = pcpd_manager_free(f->m);
        manager_make(f, true);
        assert_int_equal(fake_calls(f->fb, FAKE_DELETE_SAVED, gid), 0);
        assert_int_equal(g_hash_table_size(f->m->deleting), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
}

/* A snapshot written whole (pcpd_store_save(): at start, at shutdown) walks the manager's
 * tables (snapshot_foreach, no array of ids): the file has the same bytes as the snapshot
 * formatted a chunk at a time from the ids (snapshot_ids, then lookup of each, as on the
 * loop), mappings and records of removed mappings whose delete is not confirmed alike,
 * and it loads as every one of them. */
static void test_snapshot_walk_same_bytes(void **state) {
        fixture *f = *state;
        g_autoptr(GString) chunked = NULL;
        g_autoptr(pcpd_state) back = NULL;
        g_autoptr(GError) error = NULL;
        g_autofree char *walked = NULL;
        pcpd_state_formatter *fm;
        uint64_t *ids, next_id = 0;
        unsigned held = 0, deleting = 0;
        size_t n = 0;
        int dfd;

        for (uint16_t k = 0; k < 40; k++) {
                pcpd_mapping *mp = add_granted(f, 9100 + k, ":1.7");

                if (k % 3 == 0) {
                        pcpd_manager_release(f->m, mp, ":1.7", PCPD_REMOVED_RELEASED);
                        deleting++;
                } else
                        held++;
        }
        assert_int_equal(pcpd_manager_n_mappings(f->m), held);
        assert_int_equal(g_hash_table_size(f->m->deleting), deleting);

        ids = manager_store_ops.snapshot_ids(f->m, &n, &next_id);
        assert_int_equal(n, held + deleting);
        assert_int_equal(next_id, f->m->next_mapping_id);
        fm = pcpd_state_formatter_new(next_id, ids, n, 0);
        while (!pcpd_state_formatter_step(fm, 7, manager_store_ops.lookup, f->m))
                ;
        chunked = pcpd_state_formatter_finish(fm);

        assert_int_equal(pcpd_store_save(f->m->store), 0);
        walked = unit_slurp(f->dir, PCPD_STATE_FILE);
        assert_non_null(walked);
        assert_string_equal(walked, chunked->str);

        dfd = unit_open_dir(f->dir);
        assert_int_equal(pcpd_state_load(dfd, f->dir, &back, &error), 0);
        close(dfd);
        assert_int_equal(back->damaged, 0);
        assert_int_equal(g_hash_table_size(back->mappings), held + deleting);
}

/* ---- a fake host snapshot: the host's addresses as the test makes them up ---- */

#define GLOBAL_A "192.88.99.1"  /* routed on the Internet (see test-manager-net.c) */
#define GLOBAL_B "192.31.196.1"
#define PRIVATE_C "10.1.2.3"

typedef struct fake_host {
        pcpd_manager_fake_host h;
        pcpd_host_link links[1];
        pcpd_host_addr addrs[2];
} fake_host;

/* the host: one link up (ifindex 2, "eth0") with the IPv4 addresses given (NULL: none);
 * the kernel's route toward the Internet from the first one */
static void fake_host_set(fake_host *fh, const char *a, const char *b) {
        const char *in[2] = { a, b };

        memset(fh, 0, sizeof(*fh));
        fh->links[0] = (pcpd_host_link) { .ifindex = 2, .flags = IFF_UP, .name = "eth0" };
        fh->h.snap.links = fh->links;
        fh->h.snap.n_links = fh->h.snap.cap_links = 1;
        fh->h.snap.addrs = fh->addrs;
        for (int k = 0; k < 2 && in[k] != NULL; k++) {
                fh->addrs[k] = (pcpd_host_addr) { .ifindex = 2, .family = AF_INET };
                assert_true(pcp_addr_from_string(in[k], &fh->addrs[k].addr));
                fh->h.snap.n_addrs++;
        }
        fh->h.snap.cap_addrs = fh->h.snap.n_addrs;
        fh->h.has_route[0] = a != NULL;
        if (a != NULL)
                fh->h.route[0] = fh->addrs[0].addr;
}

typedef struct external_is {
        uint64_t id;
        const char *address;
} external_is;

static bool mapping_external_is(void *ctx, const void *arg) {
        fixture *f = ctx;
        const external_is *e = arg;
        pcpd_mapping *mp = pcpd_manager_mapping(f->m, e->id);

        return mp != NULL && g_strcmp0(mp->external_address, e->address) == 0;
}

static bool mapping_removed(void *ctx, const void *arg) {
        fixture *f = ctx;

        return count_events(&f->rec, EV_REMOVED, *(const uint64_t *) arg) > 0;
}

static bool mapping_on_pcp(void *ctx, const void *arg) {
        fixture *f = ctx;
        pcpd_mapping *mp = pcpd_manager_mapping(f->m, *(const uint64_t *) arg);

        return mp != NULL && fake_holds(f->fb, mp, NULL);
}

/* The direct/NAT decision on a host the test makes up (the manager reads its addresses
 * from a fake host snapshot, not the kernel's): with a global address and no server, a
 * mapping is direct (active at once with that address, nothing asked of "pcp"); the host's
 * address changes to another global one: the mapping takes it (same object); with only a
 * private address left it goes ("network-lost"); with a global address and a server that
 * answers PCP a new mapping goes to the server, and a direct one moves there when the
 * server starts answering. */
static void test_host_direct_decision(void **state) {
        fixture *f = *state;
        fake_host fh;
        pcpd_mapping_request req;
        pcpd_mapping *mp;
        uint64_t id;
        external_is want;
        pcpd_server_spec a = spec_of(SERVER_A, PCP_SERVER_PORT);

        fake_host_set(&fh, GLOBAL_A, NULL);
        manager_set_fake_host(f->m, &fh.h);
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, NULL, 0));

        /* not behind a NAT: direct */
        req = request(8301, ":1.1");
        mp = add(f, &req);
        id = mp->id;
        assert_ptr_equal(manager_mapping_backend(f->m, mp), f->m->direct);
        assert_ptr_equal(mp->held_by, f->m->direct);
        assert_true(pcpd_mapping_is_direct(mp));
        assert_string_equal(mp->state, "active");
        assert_string_equal(mp->external_address, GLOBAL_A);
        assert_int_equal(mp->external_port, 8301);
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, id), 0);
        assert_string_equal(pcpd_manager_state(f->m), "ready");

        /* the host's address changes to another global one: the mapping takes it */
        fake_host_set(&fh, GLOBAL_B, NULL);
        manager_rediscover_idle(f->m);
        want = (external_is) { .id = id, .address = GLOBAL_B };
        wait_for(f, mapping_external_is, &want, "the direct mapping to take the host's other global address");
        assert_ptr_equal(pcpd_manager_mapping(f->m, id), mp);
        assert_true(last_event(&f->rec, EV_CHANGED, id)->what & PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS);

        /* only a private address left: behind a NAT after all, and no server: it goes */
        fake_host_set(&fh, PRIVATE_C, NULL);
        manager_rediscover_idle(f->m);
        wait_for(f, mapping_removed, &id, "the direct mapping to go with the host's global address");
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id)->reason, PCPD_REMOVED_NETWORK_LOST);
        assert_int_equal(f->m->n_direct, 0);

        /* a global address again, and a server that answers PCP: a new mapping goes there */
        fake_host_set(&fh, GLOBAL_A, PRIVATE_C);
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &a, 1));
        fake_server_state(f->fb, server(f, 0), PCPD_SERVER_PCP);
        req = request(8302, ":1.1");
        mp = add(f, &req);
        assert_false(pcpd_mapping_is_direct(mp));
        assert_ptr_equal(mp->held_by, f->m->pcp);
        assert_true(fake_holds(f->fb, mp, NULL));
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, mp->id), 1);

        /* the server goes silent for good (unreachable): a new mapping is direct again; when
         * the server answers again the direct one moves to it, same object */
        fake_server_state(f->fb, server(f, 0), PCPD_SERVER_UNREACHABLE);
        req = request(8303, ":1.1");
        mp = add(f, &req);
        id = mp->id;
        assert_true(pcpd_mapping_is_direct(mp));
        assert_string_equal(mp->external_address, GLOBAL_A);
        fake_server_state(f->fb, server(f, 0), PCPD_SERVER_PCP);
        wait_for(f, mapping_on_pcp, &id, "the direct mapping to move to the server that answers");
        assert_ptr_equal(pcpd_manager_mapping(f->m, id), mp);
        assert_false(pcpd_mapping_is_direct(mp));
        assert_ptr_equal(mp->held_by, f->m->pcp);
        assert_int_equal(f->m->n_direct, 0);
        assert_int_equal(fake_calls(f->fb, FAKE_ADD, id), 1);
        manager_set_fake_host(f->m, NULL);
}

static bool fallback_holds(void *ctx, const void *arg) {
        fixture *f = ctx;
        pcpd_mapping *mp = pcpd_manager_mapping(f->m, *(const uint64_t *) arg);

        return mp != NULL && mp->backend != NULL;
}

/* GetExternalAddress with no PCP/NAT-PMP server's address: a UPnP-IGD router's (IPv4,
 * stored IPv4-mapped), named by its address as Servers shows it; a router that has told
 * none is skipped; never for IPv6. ExternalAddresses lists it too. (It answered NoServer
 * while ExternalAddresses showed the address.) */
static void test_external_address_from_igd(void **state) {
        fixture *f = *state;
        fake_fallback *ff = (fake_fallback *) f->m->upnp;
        g_autoptr(GPtrArray) all = NULL;
        char *addr = NULL, *srv = NULL;

        assert_false(pcpd_manager_external_address(f->m, AF_INET, &addr, &srv));
        ff->routers[0] = (pcpd_backend_server) { .ifname = "eth0", .address = "192.168.1.1", .source = "ssdp",
                                                 .protocol = "upnp-igd" };
        ff->routers[1] = (pcpd_backend_server) { .ifname = "eth0", .address = "192.168.1.254", .source = "ssdp",
                                                 .protocol = "upnp-igd", .has_external = true };
        assert_true(pcp_addr_from_string("198.51.100.20", &ff->routers[1].external_addr));
        ff->n_routers = 2;

        assert_true(pcpd_manager_external_address(f->m, AF_INET, &addr, &srv));
        assert_string_equal(addr, "198.51.100.20");
        assert_string_equal(srv, "192.168.1.254");
        g_clear_pointer(&addr, g_free);
        g_clear_pointer(&srv, g_free);
        if (pcpd_manager_external_address(f->m, AF_INET6, &addr, &srv)) {
                assert_string_not_equal(addr, "198.51.100.20");
                g_clear_pointer(&addr, g_free);
                g_clear_pointer(&srv, g_free);
        }
        all = pcpd_manager_external_addresses(f->m);
        assert_true(g_ptr_array_find_with_equal_func(all, "198.51.100.20", g_str_equal, NULL));

        /* the router that told one is gone: none again */
        ff->n_routers = 1;
        assert_false(pcpd_manager_external_address(f->m, AF_INET, &addr, &srv));
        ff->n_routers = 0;
}

/* A request the UPnP-IGD router of the server's interface cannot do is refused up front
 * (Unsupported, the router's reason) when the server speaks no PCP, however many IGD
 * routers the fallback knows: the interface's may be the 16th (it looked at the first 8
 * only, and accepted what it should have refused). */
static void test_refuse_igd_past_eighth(void **state) {
        fixture *f = *state;
        fake_fallback *ff = (fake_fallback *) f->m->upnp;
        pcpd_server *s = server(f, 0);
        pcpd_failure e = { 0 };
        pcpd_mapping *got = NULL;
        pcpd_mapping_request req = request(8501, ":1.1");

        fake_server_state(f->fb, s, PCPD_SERVER_UNREACHABLE);
        ff->refuse = "The router speaks only UPnP-IGD, which cannot do this.";
        for (size_t k = 0; k < PCPD_MAX_SERVERS; k++) {
                ff->routers[k] = (pcpd_backend_server) { .address = "192.168.9.1", .source = "ssdp",
                                                         .protocol = "upnp-igd" };
                g_snprintf(ff->routers[k].ifname, sizeof(ff->routers[k].ifname), "other%zu", k);
        }
        /* the server's interface is the last router listed */
        g_strlcpy(ff->routers[PCPD_MAX_SERVERS - 1].ifname, s->ifname, sizeof(ff->routers[0].ifname));
        ff->n_routers = PCPD_MAX_SERVERS;
        assert_true(pcpd_manager_add_mapping(f->m, &req, &got, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_UNSUPPORTED);
        assert_non_null(strstr(e.message, "UPnP-IGD"));
        assert_null(got);
        pcpd_failure_clear(&e);
        /* no router of its interface: nothing to refuse for */
        g_strlcpy(ff->routers[PCPD_MAX_SERVERS - 1].ifname, "elsewhere", sizeof(ff->routers[0].ifname));
        assert_true(pcpd_manager_add_mapping(f->m, &req, &got, &e) >= 0);
        assert_non_null(got);
        ff->n_routers = 0;
        ff->refuse = NULL;
}

/* The fallback's contract (pcpd-backend.h, pcpd-backend-events.h): a mapping whose server
 * speaks no PCP is handed to it; its news (mapping_changed) is published; a delete it must
 * have confirmed is kept by the manager as a deleting record of its own, on disk, under a
 * fresh id given down as the cookie, and forgotten only when the fallback tells that
 * delete confirmed (deleting_done); when the engine holds the mapping after all it is
 * handed over, with a cookie of its own. */
static void test_fallback_events(void **state) {
        fixture *f = *state;
        fake_fallback *ff = (fake_fallback *) f->m->upnp;
        const pcpd_backend_events *ev = ff->base.events;
        pcpd_backend_info bi = { .state = "active", .error = "", .has_external = true, .external_port = 5000,
                                 .lifetime_granted = 3600 };
        pcpd_mapping_request req = request(8401, ":1.1");
        pcpd_mapping *mp = add(f, &req);
        uint64_t id = mp->id, cookie;
        unsigned fills;
        pcpd_deleting *d;

        assert_true(pcp_addr_from_string("198.51.100.9", &bi.external_addr));
        assert_true(pcp_addr_from_string("10.0.0.2", &bi.internal_addr));
        /* the server speaks no PCP: the mapping goes to the fallback too (next turn) */
        fake_server_state(f->fb, server(f, 0), PCPD_SERVER_UNREACHABLE);
        wait_for(f, fallback_holds, &id, "the mapping to be handed to the fallback");
        assert_int_equal(ff->adds, 1);

        /* its news, published as it tells it */
        ev->mapping_changed(ff->base.userdata, mp, &bi, false);
        assert_string_equal(mp->state, "active");
        assert_string_equal(mp->external_address, "198.51.100.9");
        assert_int_equal(mp->external_port, 5000);
        assert_int_equal(last_event(&f->rec, EV_CHANGED, id)->external_port, 5000);
        /* its part of the record changed: saved, with its part (fill_record) */
        fills = ff->fills;
        ev->mapping_record_changed(ff->base.userdata, mp);
        assert_true(ff->fills > fills);

        /* released: the fallback's delete must be confirmed: a deleting record of its own,
         * under a fresh id, which is the cookie of its delete */
        ff->permanent = true;
        pcpd_manager_release(f->m, mp, ":1.1", PCPD_REMOVED_RELEASED);
        assert_int_equal(ff->removes, 1);
        cookie = ff->last_cookie;
        assert_true(cookie != 0);
        assert_true(cookie != id);
        d = g_hash_table_lookup(f->m->deleting, &cookie);
        assert_non_null(d);
        assert_true(d->rec->deleting);
        assert_string_equal(d->rec->upnp_interface, "eth0");
        assert_true(d->rec->upnp_permanent);
        /* not confirmed: kept (a restart deletes it again); confirmed: forgotten */
        ev->deleting_done(ff->base.userdata, cookie, false);
        assert_non_null(g_hash_table_lookup(f->m->deleting, &cookie));
        ev->deleting_done(ff->base.userdata, cookie, true);
        assert_null(g_hash_table_lookup(f->m->deleting, &cookie));

        /* the engine holds a mapping the fallback has after all: handed over, with a
         * cookie of its own when that delete must be confirmed; the engine's state shows */
        req = request(8402, ":1.1");
        mp = add(f, &req);
        id = mp->id;
        fake_fail(f->fb, mp, "NETWORK_FAILURE");
        wait_for(f, fallback_holds, &id, "the failed mapping to be handed to the fallback");
        assert_int_equal(ff->adds, 2);
        fake_grant(f->fb, mp, 9402, 600);
        assert_int_equal(ff->handovers, 1);
        assert_null(mp->backend);
        cookie = ff->last_cookie;
        assert_true(cookie != 0);
        assert_non_null(g_hash_table_lookup(f->m->deleting, &cookie));
        assert_string_equal(mp->state, "active");
        assert_int_equal(mp->external_port, 9402);
        ev->deleting_done(ff->base.userdata, cookie, true);
        assert_null(g_hash_table_lookup(f->m->deleting, &cookie));
}

/* mp's record as a restarted pcpd reads it from the state directory (a copy) */
static pcpd_state_mapping *record_on_disk(fixture *f, const pcpd_mapping *mp, pcpd_state **ret_st) {
        g_autoptr(GError) error = NULL;
        pcpd_state *st = NULL;
        int dirfd = fcntl(f->m->state_fd, F_DUPFD_CLOEXEC, 3);

        assert_true(dirfd >= 0);
        if (pcpd_state_load(dirfd, f->m->state_dir, &st, &error) < 0)
                fail_msg("state of %s: %s", PCPD_MAPPING_PATH(mp), error->message);
        close(dirfd);
        *ret_st = st;
        return g_hash_table_lookup(st->mappings, &mp->id);
}

/* The engine takes a mapping over from the fallback and is granted the very external
 * address and port the fallback had: nothing the apps see changes, but the record on disk
 * must lose the fallback's part, else a restarted pcpd re-adds it through UPnP-IGD too. */
static void test_fallback_takeover_same_port(void **state) {
        fixture *f = *state;
        fake_fallback *ff = (fake_fallback *) f->m->upnp;
        const pcpd_backend_events *ev = ff->base.events;
        pcpd_backend_info bi = { .state = "active", .error = "", .has_external = true, .external_port = 9403,
                                 .lifetime_granted = 3600 };
        pcpd_mapping_request req = request(8403, ":1.1");
        pcpd_mapping *mp = add(f, &req);
        uint64_t id = mp->id;
        pcpd_state_mapping *rec;
        pcpd_state *st = NULL;

        /* the fake engine's grants are at 198.51.100.9 (fake-backend.c) */
        assert_true(pcp_addr_from_string("198.51.100.9", &bi.external_addr));
        assert_true(pcp_addr_from_string("10.0.0.2", &bi.internal_addr));
        fake_fail(f->fb, mp, "NETWORK_FAILURE");
        wait_for(f, fallback_holds, &id, "the failed mapping to be handed to the fallback");
        ev->mapping_changed(ff->base.userdata, mp, &bi, false);
        ev->mapping_record_changed(ff->base.userdata, mp);
        rec = record_on_disk(f, mp, &st);
        assert_non_null(rec);
        assert_string_equal(rec->upnp_interface, "eth0");
        pcpd_state_free(st);

        /* PCP answers after all, with the same external address and port */
        fake_grant(f->fb, mp, 9403, 600);
        assert_int_equal(ff->handovers, 1);
        assert_null(mp->backend);
        assert_int_equal(mp->external_port, 9403);
        rec = record_on_disk(f, mp, &st);
        assert_non_null(rec);
        if (rec->upnp_interface != NULL && rec->upnp_interface[0] != '\0')
                fail_msg("%s is held by PCP, but its record on disk still has the UPnP-IGD interface %s", PCPD_MAPPING_PATH(mp),
                         rec->upnp_interface);
        assert_int_equal(rec->external_port, 9403);
        pcpd_state_free(st);
}

/* A server that answers no PCP (unreachable) with nothing else known: the manager's state
 * follows what the backend tells of its server. */
static void test_server_state(void **state) {
        fixture *f = *state;

        assert_string_equal(pcpd_manager_state(f->m), "discovering");
        fake_server_state(f->fb, server(f, 0), PCPD_SERVER_PCP);
        assert_string_equal(pcpd_manager_state(f->m), "ready");
}

/* ---- the log lines of a server's recreations ---- */

/* "recreate|reset PRIORITY PCPD_SERVER|MESSAGE" of every PCPD_MSGID_RECREATE and
 * PCPD_MSGID_EPOCH_RESET line logged */
static GPtrArray *recreation_lines;
/* the MESSAGE of every PCPD_MSGID_MAPPING_FAILED line logged */
static GPtrArray *failure_lines;
/* the MESSAGE of every line telling that a holder let go of a persistent mapping */
static GPtrArray *hold_lines;
/* the MESSAGE of every line telling that a declared mapping cannot be mapped */
static GPtrArray *declared_lines;
/* the MESSAGE of every line telling that a wanted server is not used (pcpd-servers.c) */
static GPtrArray *not_used_lines;

static GLogWriterOutput record_log(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data) {
        const char *id = NULL, *server = "", *message = "", *priority = "";

        for (gsize i = 0; i < n; i++)
                if (strcmp(fields[i].key, "MESSAGE_ID") == 0)
                        id = fields[i].value;
                else if (strcmp(fields[i].key, "PCPD_SERVER") == 0)
                        server = fields[i].value;
                else if (strcmp(fields[i].key, "MESSAGE") == 0)
                        message = fields[i].value;
                else if (strcmp(fields[i].key, "PRIORITY") == 0)
                        priority = fields[i].value;
        if (id != NULL && (strcmp(id, PCPD_MSGID_RECREATE) == 0 || strcmp(id, PCPD_MSGID_EPOCH_RESET) == 0))
                g_ptr_array_add(recreation_lines,
                                g_strdup_printf("%s %s %s|%s", strcmp(id, PCPD_MSGID_RECREATE) == 0 ? "recreate" : "reset",
                                                priority, server, message));
        if (id != NULL && strcmp(id, PCPD_MSGID_MAPPING_FAILED) == 0)
                g_ptr_array_add(failure_lines, g_strdup(message));
        if (strstr(message, " let go of its hold; ") != NULL)
                g_ptr_array_add(hold_lines, g_strdup(message));
        if (g_str_has_prefix(message, "Declared mapping ") && strstr(message, ": cannot map it") != NULL)
                g_ptr_array_add(declared_lines, g_strdup(message));
        if ((g_str_has_prefix(message, "PCP server ") && strstr(message, ") not used: ") != NULL) ||
            (g_str_has_prefix(message, "PCP servers from ") && strstr(message, " left out") != NULL))
                g_ptr_array_add(not_used_lines, g_strdup(message));
        return g_log_writer_default(level, fields, n, data);
}

/* A failure's log line says what its backend adds to the error name (error_detail: for
 * UNSUPP_OPTION the options the request carried, pcpd_pcp_mapping_unsupp_option_text()),
 * on the same line; without a detail the line is as it was. */
static void test_failure_detail_logged(void **state) {
        fixture *f = *state;
        pcpd_mapping_request req = request(5002, ":1.1");
        pcpd_mapping *mp = add(f, &req);
        const char *detail = "the server does not support the option the request carried: THIRD_PARTY";
        g_autofree char *want = NULL;
        pcpd_backend_info bi;
        guint from = failure_lines->len;

        assert_true(pcpd_backend_info_of(&f->fb->base, mp, &bi));
        bi.state = "failed";
        bi.error = "UNSUPP_OPTION";
        bi.error_detail = detail;
        f->fb->base.events->mapping_changed(f->fb->base.userdata, mp, &bi, false);
        assert_int_equal(failure_lines->len, from + 1);
        want = g_strdup_printf("Mapping %s failed on %s: UNSUPP_OPTION (%s); retrying ", PCPD_MAPPING_PATH(mp),
                               mp->server_text, detail);
        assert_true(g_str_has_prefix(failure_lines->pdata[from], want));
        /* no detail: the error name alone */
        fake_fail(f->fb, mp, "NOT_AUTHORIZED");
        assert_int_equal(failure_lines->len, from + 2);
        g_free(want);
        want = g_strdup_printf("Mapping %s failed on %s: NOT_AUTHORIZED; retrying ", PCPD_MAPPING_PATH(mp),
                               mp->server_text);
        assert_true(g_str_has_prefix(failure_lines->pdata[from + 1], want));
}

/* A change a server announced (pcpd_backend_events.server_recreate) is logged once per
 * episode: the first, at MESSAGE level (priority 5) with PCPD_MSGID_RECREATE, the server in
 * PCPD_SERVER and the text, and how many mappings are renewed; the repeated ones are not;
 * it is no epoch reset line. A server gone meanwhile (NULL) is still a line. */
static void test_server_recreate_logged(void **state) {
        fixture *f = *state;
        const pcpd_backend_events *ev = f->fb->base.events;
        void *userdata = f->fb->base.userdata;
        pcpd_server *s = server(f, 0);
        guint from = recreation_lines->len;
        g_autofree char *want = g_strdup_printf("recreate 5 %s|PCP server %s announced a change", s->text, s->text);
        const char *line;

        ev->server_recreate(userdata, s, false, true, 3);
        assert_int_equal(recreation_lines->len, from + 1);
        line = recreation_lines->pdata[from];
        assert_true(g_str_has_prefix(line, want));
        assert_non_null(strstr(line, "renewing its 3 mapping(s) within 5 s"));
        /* the same episode: acted on, not logged again */
        ev->server_recreate(userdata, s, true, true, 3);
        ev->server_recreate(userdata, s, true, true, 4);
        assert_int_equal(recreation_lines->len, from + 1);
        /* a reset is its own line */
        ev->server_epoch_reset(userdata, s, false, true);
        assert_int_equal(recreation_lines->len, from + 2);
        assert_true(g_str_has_prefix(recreation_lines->pdata[from + 1], "reset 5 "));
        /* a new episode of a server gone meanwhile */
        ev->server_recreate(userdata, NULL, false, true, 0);
        assert_int_equal(recreation_lines->len, from + 3);
        assert_true(g_str_has_prefix(recreation_lines->pdata[from + 2], "recreate 5 |PCP server ? announced a change"));
        /* a server with none of this host's mappings: a line, but not "renewing its 0" */
        assert_null(strstr(recreation_lines->pdata[from + 2], "renewing"));
        assert_non_null(strstr(recreation_lines->pdata[from + 2], "nothing to renew"));
}

/* ---- declarations of one port ---- */

static pcpd_declared *declared_new(const char *name, uint16_t port, int family) {
        pcpd_declared *d = g_new0(pcpd_declared, 1);

        d->name = g_strdup(name);
        d->path = g_strdup_printf("/etc/pcpd/mappings.d/%s.conf", name);
        d->protocol = IPPROTO_TCP;
        d->family = family;
        d->port = port;
        d->description = g_strdup("");
        return d;
}

/* Declarations in files (pcpd_manager_set_declared(), as a reload does) with an IPv4 and
 * an IPv6 server: one without a family and without a mapping is of the family it would
 * be mapped in (IPv4: there is an IPv4 server), so the IPv6 declaration of its port
 * having its mapping does not keep it from its own; one for IPv4 that has its mapping
 * does, and the line logged says for which family and why. */
static void test_declared_family_left_open(void **state) {
        fixture *f = *state;
        pcpd_server_spec both[2] = { spec_of(SERVER_A, PCP_SERVER_PORT), spec_of("2001:db8::1", PCP_SERVER_PORT) };
        fake_host fh;
        GPtrArray *set = g_ptr_array_new_with_free_func((GDestroyNotify) pcpd_declared_free);
        pcpd_mapping *a6, *b, *c4;
        guint from = declared_lines->len;

        fake_host_set(&fh, NULL, NULL); /* no global address: every mapping goes to a server */
        manager_set_fake_host(f->m, &fh.h);
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, both, 2));
        assert_int_equal(f->m->servers->len, 2);
        /* by name: a6 first, then b (no family) for a6's port; c4, then d (no family) for
         * c4's */
        g_ptr_array_add(set, declared_new("a6", 9100, AF_INET6));
        g_ptr_array_add(set, declared_new("b", 9100, 0));
        g_ptr_array_add(set, declared_new("c4", 9101, AF_INET));
        g_ptr_array_add(set, declared_new("d", 9101, 0));
        pcpd_manager_set_declared(f->m, set);

        a6 = pcpd_manager_declared_mapping(f->m, "a6");
        b = pcpd_manager_declared_mapping(f->m, "b");
        c4 = pcpd_manager_declared_mapping(f->m, "c4");
        assert_non_null(a6);
        assert_int_equal(a6->family, AF_INET6);
        assert_non_null(b); /* not kept from IPv4 by a6's IPv6 mapping */
        assert_int_equal(b->family, AF_INET);
        assert_ptr_not_equal(a6, b);
        assert_non_null(c4);
        assert_int_equal(c4->family, AF_INET);
        /* d would be IPv4 too: c4 has that port */
        assert_null(pcpd_manager_declared_mapping(f->m, "d"));
        assert_int_equal(declared_lines->len, from + 1);
        assert_non_null(strstr(declared_lines->pdata[from], "Declared mapping d "));
        assert_non_null(strstr(declared_lines->pdata[from],
                               "tcp port 9101 is declared already as c4 (/etc/pcpd/mappings.d/c4.conf), which has "
                               "its IPv4 mapping, and one without Family= is mapped over IPv4 here now"));
}

/* A holder letting go of one hold on a persistent mapping: the line counts the holds left
 * (one per AddMapping, by any name), not the names holding it, and says how many are
 * still the releasing name's own (one name may hold a mapping several times). */
static void test_persistent_release_logged(void **state) {
        fixture *f = *state;
        pcpd_mapping_request a = request(5010, ":1.1"), b = request(5010, ":1.2"), p = request(5010, ":1.3");
        pcpd_mapping *mp = add(f, &a);
        g_autofree char *want = NULL;
        guint from = hold_lines->len;

        assert_ptr_equal(add(f, &a), mp);
        assert_ptr_equal(add(f, &a), mp);
        assert_ptr_equal(add(f, &b), mp);
        /* made persistent by a request that holds nothing itself */
        p.persistent = true;
        assert_ptr_equal(add(f, &p), mp);
        assert_true(mp->persistent);
        assert_int_equal(pcpd_holders_count(mp), 2);
        assert_int_equal(pcpd_holders_holds(mp, ":1.1"), 3);
        assert_int_equal(pcpd_holders_holds(mp, ":1.2"), 1);

        /* :1.1 lets go of one of its three: 3 holds left (2 names), 2 of them its own */
        pcpd_manager_release(f->m, mp, ":1.1", PCPD_REMOVED_RELEASED);
        assert_int_equal(hold_lines->len, from + 1);
        want = g_strdup_printf("Mapping %s: :1.1 let go of its hold; the mapping is persistent and stays "
                               "(3 holds left, 2 of them its own)",
                               PCPD_MAPPING_PATH(mp));
        assert_string_equal(hold_lines->pdata[from], want);
        /* :1.2 lets go of its only one: 2 left, none its own */
        pcpd_manager_release(f->m, mp, ":1.2", PCPD_REMOVED_RELEASED);
        assert_int_equal(hold_lines->len, from + 2);
        g_free(want);
        want = g_strdup_printf("Mapping %s: :1.2 let go of its hold; the mapping is persistent and stays "
                               "(2 holds left)",
                               PCPD_MAPPING_PATH(mp));
        assert_string_equal(hold_lines->pdata[from + 1], want);
        /* the last two: 1, then 0 left; the mapping stays */
        pcpd_manager_release(f->m, mp, ":1.1", PCPD_REMOVED_RELEASED);
        pcpd_manager_release(f->m, mp, ":1.1", PCPD_REMOVED_RELEASED);
        assert_int_equal(hold_lines->len, from + 4);
        assert_true(g_str_has_suffix(hold_lines->pdata[from + 2], "(1 hold left, 1 of them its own)"));
        assert_true(g_str_has_suffix(hold_lines->pdata[from + 3], "(0 holds left)"));
        assert_int_equal(pcpd_manager_n_mappings(f->m), 1);
}

/* n servers of source on ifname: IPv4 base.1, base.2, ... or IPv6 base1, base2, ... */
static void servers_on(fixture *f, pcpd_source source, const char *ifname, const char *base, int n) {
        pcpd_server_spec sp[8];
        char ip[64];

        assert_true(n <= (int) G_N_ELEMENTS(sp));
        for (int i = 0; i < n; i++) {
                g_snprintf(ip, sizeof(ip), "%s%d", base, i + 1);
                sp[i] = spec_of(ip, PCP_SERVER_PORT);
                g_strlcpy(sp[i].ifname, ifname, sizeof(sp[i].ifname));
        }
        (void) pcpd_manager_set_servers(f->m, source, ifname, sp, (size_t) n);
}

static pcpd_server *server_with(fixture *f, const char *text, const char *source, const char *ifname) {
        for (guint i = 0; i < f->m->servers->len; i++) {
                pcpd_server *s = f->m->servers->pdata[i];
                if (strcmp(s->text, text) == 0 && strcmp(s->source, source) == 0 && strcmp(s->ifname, ifname) == 0)
                        return s;
        }
        return NULL;
}

/* One network cannot take every place in the server table (PCPD_MAX_SERVERS): an interface
 * with 8 DHCPv4 servers (pcpd-dhcp.c's cap) and 8 default routers (pcpd-netlink's) fills
 * it, and then a DHCP server announced on another interface, and on a third, is used all
 * the same (the first one's last server makes room); what is not used is said once, not on
 * every pass. */
static void test_server_table_shared(void **state) {
        fixture *f = *state;
        guint wanted = 1; /* the fixture's configured server */

        g_ptr_array_set_size(not_used_lines, 0);
        servers_on(f, PCPD_SOURCE_GATEWAY, "wlan0", "fe80::", 8);
        servers_on(f, PCPD_SOURCE_DHCPV4, "wlan0", "198.51.100.", 8);
        wanted += 16;
        assert_int_equal(f->m->servers->len, PCPD_MAX_SERVERS);
        /* every server not used is said, once */
        assert_int_equal(not_used_lines->len, wanted - PCPD_MAX_SERVERS);

        servers_on(f, PCPD_SOURCE_DHCPV4, "eth0", "203.0.113.", 1);
        assert_non_null(server_with(f, "203.0.113.1", "dhcpv4", "eth0"));
        servers_on(f, PCPD_SOURCE_DHCPV6, "eth1", "2001:db8::", 2);
        wanted += 3;
        assert_non_null(server_with(f, "2001:db8::1", "dhcpv6", "eth1"));
        assert_non_null(server_with(f, "2001:db8::2", "dhcpv6", "eth1"));
        assert_int_equal(f->m->servers->len, PCPD_MAX_SERVERS);
        /* the configured server, and wlan0's first servers of each source, stay */
        assert_non_null(server_with(f, SERVER_A, "config", ""));
        assert_non_null(server_with(f, "198.51.100.1", "dhcpv4", "wlan0"));
        assert_non_null(server_with(f, "fe80::1", "gateway", "wlan0"));
        assert_int_equal(not_used_lines->len, wanted - PCPD_MAX_SERVERS);
        /* passes with nothing changed, a renewal with the same option: nothing said again */
        for (int k = 0; k < 5; k++)
                pcpd_servers_replan(f->m);
        servers_on(f, PCPD_SOURCE_DHCPV4, "eth0", "203.0.113.", 1);
        assert_int_equal(not_used_lines->len, wanted - PCPD_MAX_SERVERS);
        for (guint i = 0; i < not_used_lines->len; i++)
                assert_non_null(strstr(not_used_lines->pdata[i], ", wlan0) not used: "));

        /* eth0's lease is gone: its room is wlan0's again */
        servers_on(f, PCPD_SOURCE_DHCPV4, "eth0", "203.0.113.", 0);
        assert_null(server_with(f, "203.0.113.1", "dhcpv4", "eth0"));
        assert_int_equal(f->m->servers->len, PCPD_MAX_SERVERS);
}

/* Every limit is finite: a source that gives servers on more interfaces than can ever be
 * used (here 300, one each) has its list cut (said once, not on every change), and the
 * table keeps to PCPD_MAX_SERVERS, the configured server's place kept. */
static void test_server_sources_bounded(void **state) {
        fixture *f = *state;
        g_autofree pcpd_server_spec *sp = g_new0(pcpd_server_spec, 300);
        char ip[64];

        g_ptr_array_set_size(not_used_lines, 0);
        for (int i = 0; i < 300; i++) {
                g_snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 200, i % 200 + 1);
                sp[i] = spec_of(ip, PCP_SERVER_PORT);
                g_snprintf(sp[i].ifname, sizeof(sp[i].ifname), "veth%d", i);
        }
        (void) pcpd_manager_set_servers(f->m, PCPD_SOURCE_DHCPV4, NULL, sp, 300);
        assert_int_equal(f->m->servers->len, PCPD_MAX_SERVERS);
        assert_non_null(server_with(f, SERVER_A, "config", ""));
        /* one line for the cut, one for each server that has no place (the rest of the list) */
        {
                guint cut = 0;
                for (guint i = 0; i < not_used_lines->len; i++)
                        cut += strstr(not_used_lines->pdata[i], " left out") != NULL;
                assert_int_equal(cut, 1);
        }
        {
                guint before = not_used_lines->len;

                assert_true(before > 1);
                assert_true(before < 300); /* the servers past the cut are not said one by one */
                sp[0] = spec_of("10.1.0.1", PCP_SERVER_PORT); /* a change of the list */
                g_strlcpy(sp[0].ifname, "veth0", sizeof(sp[0].ifname));
                (void) pcpd_manager_set_servers(f->m, PCPD_SOURCE_DHCPV4, NULL, sp, 300);
                assert_int_equal(f->m->servers->len, PCPD_MAX_SERVERS);
                /* only veth0's new server could be news: it has a place (first of its pair) */
                assert_non_null(server_with(f, "10.1.0.1", "dhcpv4", "veth0"));
                assert_int_equal(not_used_lines->len, before);
        }
}

int main(void) {
        static const options quota = { .max_mappings_per_user = 2, .max_mappings = 3 };
        static const options fallback = { .fake_fallback = true };
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_add_grant_fail, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sharing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_remove_ungranted, setup, teardown),
                cmocka_unit_test_prestate_setup_teardown(test_quotas, setup, teardown, (void *) &quota),
                cmocka_unit_test_setup_teardown(test_enable_disable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_remove_reasons, setup, teardown),
                cmocka_unit_test_setup_teardown(test_move_between_servers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_move_between_backends, setup, teardown),
                cmocka_unit_test_setup_teardown(test_move_failures, setup, teardown),
                cmocka_unit_test_setup_teardown(test_move_nonce_in_use, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reclaim_after_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lost_forget_after_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_snapshot_walk_same_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_recreate_logged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failure_detail_logged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_persistent_release_logged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_declared_family_left_open, setup, teardown),
                cmocka_unit_test_setup_teardown(test_host_direct_decision, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_table_shared, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_sources_bounded, setup, teardown),
                cmocka_unit_test_prestate_setup_teardown(test_fallback_events, setup, teardown, (void *) &fallback),
                cmocka_unit_test_prestate_setup_teardown(test_external_address_from_igd, setup, teardown,
                                                         (void *) &fallback),
                cmocka_unit_test_prestate_setup_teardown(test_refuse_igd_past_eighth, setup, teardown,
                                                         (void *) &fallback),
                cmocka_unit_test_prestate_setup_teardown(test_fallback_takeover_same_port, setup, teardown,
                                                         (void *) &fallback),
        };
        int r;

        /* pcpd_manager_start() asks for NetworkManager on the system bus: there is none
         * here (a path under a directory that does not exist; nothing is made there) */
        g_setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/pcpd-test-manager-backend/no-bus", TRUE);
        recreation_lines = g_ptr_array_new_with_free_func(g_free);
        failure_lines = g_ptr_array_new_with_free_func(g_free);
        hold_lines = g_ptr_array_new_with_free_func(g_free);
        declared_lines = g_ptr_array_new_with_free_func(g_free);
        not_used_lines = g_ptr_array_new_with_free_func(g_free);
        g_log_set_writer_func(record_log, NULL, NULL);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        g_ptr_array_free(recreation_lines, TRUE);
        g_ptr_array_free(failure_lines, TRUE);
        g_ptr_array_free(hold_lines, TRUE);
        g_ptr_array_free(declared_lines, TRUE);
        g_ptr_array_free(not_used_lines, TRUE);
        return r;
}
