/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The manager without a bus: a recording listener hears what it does, and the router is
 * this test itself: a UDP socket on 127.0.0.1 (an ephemeral port), configured as the
 * manager's server, that answers the PCP requests it receives with pcp-wire and records
 * them (their nonces, lifetimes, suggested ports). Nothing sleeps: the GLib main context is
 * iterated until the listener or the fake server has seen what a test waits for, with a
 * counted cap.
 *
 * Covered: the masks of a grant; sharing (one upstream mapping for two holders, deleted
 * when the last lets go, "released"); another user's request for the same port; the per-uid
 * and the host's quota (refused with PCPD_ERROR_QUOTA_EXCEEDED, nothing changed, nothing
 * sent); enable and disable ("disabled", deletes sent, adds refused while off);
 * "owner-vanished" through
 * pcpd_manager_holder_vanished(), and for a holder of many in batches over turns of the loop
 * (one held again or revoked meanwhile, and the manager stopped meanwhile), and for many
 * holders of one each leaving at once (one stream for them all: PCPD_ORPHAN_BATCH at once
 * in a turn, the rest queued in the order they left, paced to the listener's backlog);
 * "revoked"; a permanent error from the server (the mapping
 * fails and stays held: see test_server_refuses); a move from one server to another (same
 * object, same nonce); a mapping that waits for its server (NO_SERVER) and is made there
 * again; reclaim after a restart (a new manager over the same state directory
 * asks the server again with the saved nonce, and an app's mapping is reclaimed by its uid;
 * one that is not reclaimed within GraceSeconds goes, "owner-vanished", deleted under its
 * saved nonce); the heap given back once after a restore (malloc_trim() wrapped).
 *
 * Not covered: "expired" and "server-refused" (no code path in the manager removes a mapping
 * with them); "network-lost" and moves between a direct mapping and a server: they need the
 * host's addresses, which the manager reads from the kernel (pcpd-host.c), and are covered
 * by test-manager-net.c in a network namespace of its own; the UPnP-IGD backend (tests/upnp). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "pcp-wire.h"
#include "pcpd-error.h"
#include "pcpd-holders.h"
#include "pcpd-manager-private.h" /* PCPD_ORPHAN_BATCH */
#include "pcpd-manager.h"
#include "pcpd-servers.h"
#include "manager-fixture.h"
#include "unit-fixture.h"

#define TEST_UID MANAGER_TEST_UID

/* ---- the heap given back after a restore: malloc_trim() and pcpd_state_free() wrapped
 * (-Wl,--wrap, tests/unit/meson.build) and counted ---- */

pcpd_state *__real_pcpd_state_free(pcpd_state *st);
pcpd_state *__wrap_pcpd_state_free(pcpd_state *st);
static unsigned n_states_freed; /* loaded states freed (not NULL) */

pcpd_state *__wrap_pcpd_state_free(pcpd_state *st) {
        if (st != NULL)
                n_states_freed++;
        return __real_pcpd_state_free(st);
}

#if HAVE_MALLOC_TRIM
int __real_malloc_trim(size_t pad);
int __wrap_malloc_trim(size_t pad);
static unsigned n_trims, states_freed_at_trim;
static size_t trim_pad;

int __wrap_malloc_trim(size_t pad) {
        n_trims++;
        trim_pad = pad;
        states_freed_at_trim = n_states_freed;
        return __real_malloc_trim(pad);
}
#endif

/* ---- fixture ---- */

typedef struct options {
        guint32 max_mappings_per_user; /* 0: the default */
        guint32 max_mappings;          /* 0: the default */
        bool set_grace;
        guint32 grace_seconds;
} options;

typedef struct fixture {
        char *dir;
        GMainLoop *loop;
        recorder rec;
        fake_server *a, *b;
        pcpd_manager *m;
        options opts;
} fixture;

static pcpd_manager *manager_new(fixture *f, bool with_config_server) {
        pcpd_config config;
        pcpd_manager *m;

        pcpd_config_init(&config);
        config.use_default_routers = false; /* the fake server is the only one */
        config.announce_port = 0;           /* (pcpd_manager_start()) no well-known port taken */
        if (f->opts.max_mappings_per_user > 0)
                config.max_mappings_per_user = f->opts.max_mappings_per_user;
        if (f->opts.max_mappings > 0)
                config.max_mappings = f->opts.max_mappings;
        if (f->opts.set_grace)
                config.grace_seconds = f->opts.grace_seconds;
        if (with_config_server) {
                pcpd_server_spec spec = fake_server_spec(f->a);
                config.n_servers = 1;
                config.servers[0].text = fake_server_text(f->a);
                config.servers[0].addr = spec.addrs[0];
        }
        m = unit_manager_new(&config, f->dir, f->loop, &recording, &f->rec);
        pcpd_config_clear(&config);
        f->rec.expect_m = m;
        return m;
}

static int setup(void **state) {
        const options *o = *state;
        fixture *f = g_new0(fixture, 1);
        g_autoptr(GError) error = NULL;
        pcpd_server_spec spec;

        f->dir = g_dir_make_tmp("pcpd-test-manager-XXXXXX", &error);
        assert_non_null(f->dir);
        assert_int_equal(g_chmod(f->dir, 0700), 0);
        f->loop = g_main_loop_new(NULL, FALSE);
        recorder_init(&f->rec);
        f->a = fake_server_new();
        if (o != NULL)
                f->opts = *o;
        f->m = manager_new(f, false);
        /* the manager is not started (no netlink discovery, no NetworkManager): its one
         * server comes from the config source, as pcpd_manager_start() would add it */
        spec = fake_server_spec(f->a);
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &spec, 1));
        assert_int_equal(f->m->servers->len, 1);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        pcpd_manager_free(f->m);
        /* what the manager left to the context (finished sources) before the servers go */
        while (g_main_context_iteration(NULL, FALSE))
                ;
        fake_server_free(f->a);
        fake_server_free(f->b);
        recorder_clear(&f->rec);
        g_main_loop_unref(f->loop);
        unit_rm_own_dir(f->dir);
        g_free(f->dir);
        g_free(f);
        return 0;
}

/* ---- waiting: the context is iterated until cond holds ---- */

typedef struct state_of {
        pcpd_manager **m;
        uint64_t id;
        const char *state;
} state_of;

static bool mapping_in_state(void *ctx, const void *arg) {
        const state_of *s = arg;
        pcpd_mapping *mp = pcpd_manager_mapping((*s->m), s->id);

        return mp != NULL && g_strcmp0(mp->state, s->state) == 0;
}

static void wait_state(fixture *f, pcpd_mapping *mp, const char *st) {
        state_of s = { .m = &f->m, .id = mp->id, .state = st };
        g_autofree char *what = g_strdup_printf("mapping %s to be %s", PCPD_MAPPING_PATH(mp), st);

        wait_for(f, mapping_in_state, &s, what);
}

typedef struct seen_of {
        fake_server *s;
        uint16_t port;
        bool lifetime_zero;
        unsigned n;
} seen_of;

static bool server_saw(void *ctx, const void *arg) {
        const seen_of *s = arg;

        return fake_count(s->s, s->port, s->lifetime_zero) >= s->n;
}

/* the fake server has seen n requests for port (deletes: lifetime 0) */
static void wait_seen(fixture *f, fake_server *srv, uint16_t port, bool lifetime_zero, unsigned n) {
        seen_of s = { .s = srv, .port = port, .lifetime_zero = lifetime_zero, .n = n };
        g_autofree char *what = g_strdup_printf("%u %s for port %u at the fake server", n,
                                                lifetime_zero ? "delete(s)" : "request(s)", port);

        wait_for(f, server_saw, &s, what);
}

static bool no_deleting(void *ctx, const void *arg) {
        const fixture *f = ctx;

        return g_hash_table_size(f->m->deleting) == 0;
}

/* ---- requests ---- */

static pcpd_mapping_request request(uint16_t port, const char *owner) {
        return manager_request(17, port, owner);
}

static pcpd_mapping *add(fixture *f, const pcpd_mapping_request *req) {
        return manager_add(f->m, req);
}

static pcpd_mapping *add_granted(fixture *f, uint16_t port, const char *owner) {
        pcpd_mapping_request req = request(port, owner);
        pcpd_mapping *mp = add(f, &req);

        wait_state(f, mp, "active");
        return mp;
}

/* ---- tests ---- */

/* A grant: added pending, its request at the server with its nonce, then one change that
 * says what the server gave (state, external address and port, lifetime, expiry). */
static void test_grant(void **state) {
        fixture *f = *state;
        pcpd_mapping_request req = request(5001, ":1.1");
        pcpd_mapping *mp = add(f, &req);
        g_autofree char *server = fake_server_text(f->a);
        const seen_request *sr;
        const event *ev;
        uint64_t id = mp->id;

        assert_int_equal(count_events(&f->rec, EV_ADDED, id), 1);
        assert_string_equal(last_event(&f->rec, EV_ADDED, id)->state, "pending");
        assert_string_equal(mp->server_text, server);
        assert_true(mp->has_nonce);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 1);

        wait_state(f, mp, "active");
        assert_int_equal(fake_count(f->a, 5001, false), 1);
        sr = fake_last(f->a, 5001, false);
        assert_int_equal(sr->protocol, 17);
        assert_int_equal(sr->lifetime, 600);
        assert_memory_equal(sr->nonce, mp->nonce, PCP_NONCE_LEN);

        /* the change that made it active */
        ev = last_event(&f->rec, EV_CHANGED, id);
        assert_non_null(ev);
        assert_string_equal(ev->state, "active");
        assert_true(ev->what & PCPD_MAPPING_CHANGED_STATE);
        assert_true(ev->what & PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS);
        assert_true(ev->what & PCPD_MAPPING_CHANGED_EXTERNAL_PORT);
        assert_true(ev->what & PCPD_MAPPING_CHANGED_LIFETIME);
        assert_true(ev->what & PCPD_MAPPING_CHANGED_EXPIRES_AT);
        assert_false(ev->what & PCPD_MAPPING_CHANGED_SERVER);
        assert_false(ev->what & PCPD_MAPPING_CHANGED_ERROR);
        assert_string_equal(ev->external_address, EXT_ADDR);
        assert_int_equal(ev->external_port, 5001 + PORT_OFFSET);
        assert_string_equal(mp->external_address, EXT_ADDR);
        assert_int_equal(mp->external_port, 5001 + PORT_OFFSET);
        assert_int_equal(mp->granted, 600);
        assert_true(mp->expires_at > 0);
        assert_string_equal(mp->error, "");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
}

/* A second request of the same user shares the mapping only when the mapping can give what
 * it asks for: with prefer-failure, a suggested port (or address) other than the one the
 * mapping has is refused with a conflict that names the mapping's port, nothing changed;
 * so are another third party, other filters, another interface. The same port with
 * prefer-failure, or any port without it (a hint), another description or lifetime (the
 * first request's stay): shared. */
static void refuse_share(fixture *f, pcpd_mapping *mp, const pcpd_mapping_request *req, const char *says) {
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping *got = NULL;
        guint n_events = f->rec.events->len, n_holders = g_hash_table_size(mp->holders);
        unsigned n_sent = fake_count(f->a, mp->internal_port, false);
        unsigned n_mappings = pcpd_manager_n_mappings(f->m);

        assert_true(pcpd_manager_add_mapping(f->m, req, &got, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_CONFLICT);
        assert_null(got);
        if (strstr(e.message, says) == NULL)
                fail_msg("refusal \"%s\" does not say \"%s\"", e.message, says);
        assert_int_equal(f->rec.events->len, n_events);
        assert_int_equal(g_hash_table_size(mp->holders), n_holders);
        assert_int_equal(pcpd_manager_n_mappings(f->m), n_mappings);
        assert_int_equal(fake_count(f->a, mp->internal_port, false), n_sent);
}

static void test_sharing_options(void **state) {
        fixture *f = *state;
        pcpd_mapping_request first = request(5003, ":1.1");
        pcpd_mapping_request req = request(5003, ":1.2");
        pcpd_mapping *mp;
        char port[16];

        first.description = "first";
        mp = add(f, &first);
        wait_state(f, mp, "active");
        assert_int_equal(mp->external_port, 5003 + PORT_OFFSET);
        g_snprintf(port, sizeof(port), "%u", 5003 + PORT_OFFSET);

        /* prefer-failure for another port: refused, naming the port the mapping has */
        req.suggested_port = 9999;
        req.prefer_failure = true;
        req.lifetime = 300;
        req.description = "second";
        refuse_share(f, mp, &req, port);
        /* prefer-failure for another address */
        req.suggested_port = 5003 + PORT_OFFSET;
        req.has_external_address = true;
        assert_true(pcp_addr_from_string("198.51.100.99", &req.external_address));
        refuse_share(f, mp, &req, "198.51.100.99");
        req.has_external_address = false;
        /* a third party, filters, an interface the mapping was not asked for */
        req.has_third_party = true;
        assert_true(pcp_addr_from_string("192.0.2.7", &req.third_party));
        refuse_share(f, mp, &req, "third party");
        req.has_third_party = false;
        req.n_filters = 1;
        req.filters[0] = (pcp_filter) { .prefix_len = 128, .remote_port = 80 };
        assert_true(pcp_addr_from_string("192.0.2.8", &req.filters[0].remote_addr));
        refuse_share(f, mp, &req, "filters");
        req.n_filters = 0;
        req.interface = "pcpdtest-none0";
        refuse_share(f, mp, &req, "interface");
        req.interface = NULL;

        /* prefer-failure for the port it has, another description and lifetime: shared,
         * the first's stay */
        assert_ptr_equal(add(f, &req), mp);
        assert_int_equal(g_hash_table_size(mp->holders), 2);
        assert_string_equal(mp->description, "first");
        assert_int_equal(mp->lifetime, 600);
        assert_false(mp->prefer_failure);
        /* another port without prefer-failure: a hint, shared */
        req.owner = ":1.3";
        req.prefer_failure = false;
        req.suggested_port = 9999;
        assert_ptr_equal(add(f, &req), mp);
        assert_int_equal(g_hash_table_size(mp->holders), 3);
        assert_int_equal(mp->external_port, 5003 + PORT_OFFSET);
        assert_int_equal(fake_count(f->a, 5003, false), 1); /* one request for them all */
}

/* Sharing a mapping not granted yet: a prefer-failure request is refused with what the
 * first asked for (a port, or none); filters are compared as sets, a list that names one
 * filter twice is not the list of two (each side is checked against the other). */
static void test_sharing_pending_and_filters(void **state) {
        fixture *f = *state;
        pcpd_mapping_request first = request(5005, ":1.1");
        pcpd_mapping_request req = request(5005, ":1.2");
        pcpd_mapping *mp, *other;
        pcp_filter a = { .prefix_len = 128, .remote_port = 80 }, b = { .prefix_len = 128, .remote_port = 443 };

        mp = add(f, &first); /* pending until the loop turns */
        assert_string_equal(mp->state, "pending");
        req.prefer_failure = true;
        req.suggested_port = 9999;
        refuse_share(f, mp, &req, "which asked for no particular external port and has none yet, not 9999");

        first = request(5006, ":1.1");
        first.suggested_port = 7000;
        other = add(f, &first);
        assert_string_equal(other->state, "pending");
        req = request(5006, ":1.2");
        req.prefer_failure = true;
        req.suggested_port = 9999;
        refuse_share(f, other, &req, "which asked for external port 7000, not 9999");
        wait_state(f, other, "active");
        wait_state(f, mp, "active");

        assert_true(pcp_addr_from_string("192.0.2.8", &a.remote_addr));
        assert_true(pcp_addr_from_string("192.0.2.9", &b.remote_addr));
        first = request(5007, ":1.1");
        first.n_filters = 2;
        first.filters[0] = a;
        first.filters[1] = b;
        mp = add(f, &first);
        req = request(5007, ":1.2");
        req.n_filters = 2;
        req.filters[0] = a;
        req.filters[1] = a;
        refuse_share(f, mp, &req, "other filters");
        req.filters[0] = b; /* the same two, in the other order: shared */
        req.filters[1] = a;
        assert_ptr_equal(add(f, &req), mp);
}

/* Two holders of the same request share one mapping (one request upstream); it goes when
 * the second lets go, "released", and its delete carries its nonce. Another user cannot
 * have that port. */
static void test_sharing(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 5002, ":1.1");
        pcpd_mapping_request req2 = request(5002, ":1.2");
        pcpd_mapping_request other = request(5002, ":1.3");
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping *got = NULL;
        uint8_t nonce[PCP_NONCE_LEN];
        uint64_t id = mp->id;
        guint n_events;

        memcpy(nonce, mp->nonce, sizeof(nonce));
        assert_ptr_equal(add(f, &req2), mp);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 1);
        assert_int_equal(count_events(&f->rec, EV_ADDED, id), 1);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 1);
        assert_int_equal(g_hash_table_size(mp->holders), 2);

        /* another uid: refused, nothing changed */
        other.uid = TEST_UID + 1;
        n_events = f->rec.events->len;
        assert_true(pcpd_manager_add_mapping(f->m, &other, &got, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_CONFLICT);
        assert_null(got);
        assert_int_equal(f->rec.events->len, n_events);
        assert_int_equal(g_hash_table_size(mp->holders), 2);

        /* the first lets go: it stays, nothing sent */
        pcpd_manager_release(f->m, mp, ":1.1", PCPD_REMOVED_RELEASED);
        assert_ptr_equal(pcpd_manager_find_path(f->m, PCPD_MAPPING_PATH(mp)), mp);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
        assert_int_equal(g_hash_table_size(mp->holders), 1);
        assert_int_equal(fake_count(f->a, 5002, true), 0);
        assert_false(g_hash_table_contains(mp->holders, ":1.1"));
        assert_true(g_hash_table_contains(mp->holders, ":1.2"));

        /* the second: gone, released, deleted upstream with the same nonce */
        pcpd_manager_release(f->m, mp, ":1.2", PCPD_REMOVED_RELEASED);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 1);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id)->reason, PCPD_REMOVED_RELEASED);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 0);
        wait_seen(f, f->a, 5002, true, 1);
        assert_memory_equal(fake_last(f->a, 5002, true)->nonce, nonce, PCP_NONCE_LEN);
        assert_int_equal(fake_count(f->a, 5002, false), 1); /* one request for both holders */
        /* the delete confirmed: no record of it kept */
        wait_for(f, no_deleting, NULL, "the delete to be confirmed");
}

/* A mapping made persistent while another holds it (a second request of its user with
 * persistent): Persistent true and Owner "" at once, told in one change and saved so;
 * the persistent request holds nothing. It outlives its holders: the holder's Release
 * drops that hold only, its holder leaving the bus likewise, nothing is deleted upstream
 * and it survives a restart as persistent. A release by one that holds nothing of it
 * (RemoveMapping, pcpctl release) removes it, deleted with its nonce. */
static void test_sharing_made_persistent(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 5010, ":1.1");
        pcpd_mapping_request preq = request(5010, ":1.2");
        g_autofree char *path = g_strdup(PCPD_MAPPING_PATH(mp));
        uint8_t nonce[PCP_NONCE_LEN];
        const event *ev;
        uint64_t id = mp->id;

        memcpy(nonce, mp->nonce, sizeof(nonce));
        assert_string_equal(mp->owner, ":1.1");
        preq.persistent = true;
        assert_ptr_equal(add(f, &preq), mp);
        assert_true(mp->persistent);
        assert_string_equal(mp->owner, "");
        ev = last_event(&f->rec, EV_CHANGED, id);
        assert_int_equal(ev->what & (PCPD_MAPPING_CHANGED_PERSISTENT | PCPD_MAPPING_CHANGED_OWNER),
                         PCPD_MAPPING_CHANGED_PERSISTENT | PCPD_MAPPING_CHANGED_OWNER);
        assert_int_equal(pcpd_holders_holds(mp, ":1.2"), 0);
        assert_int_equal(pcpd_holders_holds(mp, ":1.1"), 1);

        /* the persistent request's caller leaves: nothing it held */
        pcpd_manager_holder_vanished(f->m, ":1.2");
        /* the first holder lets go (pcpctl map --wait, Ctrl+C): its hold only */
        pcpd_manager_release(f->m, mp, ":1.1", PCPD_REMOVED_RELEASED);
        assert_ptr_equal(pcpd_manager_find_path(f->m, path), mp);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
        assert_int_equal(pcpd_holders_count(mp), 0);
        assert_int_equal(fake_count(f->a, 5010, true), 0);

        /* saved as persistent: back after a restart, with its nonce, waiting for nobody */
        f->m = pcpd_manager_free(f->m);
        assert_int_equal(fake_count(f->a, 5010, true), 0);
        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        mp = pcpd_manager_find_path(f->m, path);
        assert_non_null(mp);
        assert_true(mp->persistent);
        assert_false(mp->unclaimed);
        assert_string_equal(mp->owner, "");
        assert_memory_equal(mp->nonce, nonce, PCP_NONCE_LEN);

        /* a release that drops no hold (RemoveMapping, pcpctl release): it goes */
        pcpd_manager_release(f->m, mp, NULL, PCPD_REMOVED_RELEASED);
        assert_null(pcpd_manager_find_path(f->m, path));
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id)->reason, PCPD_REMOVED_RELEASED);
        wait_seen(f, f->a, 5010, true, 1);
        assert_memory_equal(fake_last(f->a, 5010, true)->nonce, nonce, PCP_NONCE_LEN);
}

/* A persistent mapping (as a declared one is) joined by a request of its user that is not
 * persistent: that caller holds it, and its Release or its leaving the bus drops that hold
 * only: the mapping stays, nothing is sent upstream (the same nonce keeps being renewed).
 * A release by a name that holds nothing of it removes it. */
static void test_persistent_outlives_holders(void **state) {
        fixture *f = *state;
        pcpd_mapping_request preq = request(5011, NULL);
        pcpd_mapping_request join = request(5011, ":1.7");
        pcpd_mapping *mp;
        uint64_t id;

        preq.persistent = true;
        mp = add(f, &preq);
        wait_state(f, mp, "active");
        id = mp->id;
        assert_int_equal(pcpd_holders_count(mp), 0);

        assert_ptr_equal(add(f, &join), mp);
        assert_ptr_equal(add(f, &join), mp); /* twice: two holds */
        assert_int_equal(pcpd_holders_holds(mp, ":1.7"), 2);
        assert_string_equal(mp->owner, "");
        pcpd_manager_release(f->m, mp, ":1.7", PCPD_REMOVED_RELEASED);
        pcpd_manager_release(f->m, mp, ":1.7", PCPD_REMOVED_RELEASED);
        assert_ptr_equal(pcpd_manager_mapping(f->m, id), mp);
        assert_int_equal(pcpd_holders_count(mp), 0);

        join.owner = ":1.8";
        assert_ptr_equal(add(f, &join), mp);
        pcpd_manager_holder_vanished(f->m, ":1.8");
        assert_ptr_equal(pcpd_manager_mapping(f->m, id), mp);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
        assert_int_equal(fake_count(f->a, 5011, true), 0);
        assert_true(mp->persistent);

        /* a name that holds nothing of it: removed */
        pcpd_manager_release(f->m, mp, ":1.9", PCPD_REMOVED_RELEASED);
        assert_null(pcpd_manager_mapping(f->m, id));
        wait_seen(f, f->a, 5011, true, 1);
}

/* MaxMappingsPerUser: the next mapping of that uid is refused (QuotaExceeded), nothing is
 * told, nothing sent; joining one it holds, another uid and a persistent one are not
 * counted against it; after a release there is room again. */
static void test_quota(void **state) {
        fixture *f = *state;
        pcpd_mapping_request third = request(6003, ":1.1");
        pcpd_mapping_request join = request(6001, ":1.2");
        pcpd_mapping_request other = request(6004, ":1.3");
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping *mp = NULL, *first;
        guint n_events;
        int r;

        assert_int_equal(f->m->config.max_mappings_per_user, 2);
        first = add_granted(f, 6001, ":1.1");
        add_granted(f, 6002, ":1.1");
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 2);

        n_events = f->rec.events->len;
        r = pcpd_manager_add_mapping(f->m, &third, &mp, &e);
        assert_int_equal(r, pcpd_error_to_errno(PCPD_ERROR_QUOTA_EXCEEDED));
        assert_int_equal(e.error, PCPD_ERROR_QUOTA_EXCEEDED);
        assert_non_null(strstr(e.message, "2 mappings"));
        assert_null(mp);
        assert_int_equal(f->rec.events->len, n_events);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 2);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 2);

        /* joining a mapping it holds is no new mapping */
        assert_ptr_equal(add(f, &join), first);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 2);

        /* another user has a quota of its own; when its request has reached the server,
         * the refused one would have too: it never left */
        other.uid = TEST_UID + 1;
        wait_state(f, add(f, &other), "active");
        assert_int_equal(fake_count(f->a, 6003, false), 0);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID + 1), 1);

        /* a persistent mapping is the admin's: not refused */
        third.persistent = true;
        third.owner = NULL;
        mp = add(f, &third);
        assert_true(mp->persistent);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 3);
        pcpd_manager_remove_mapping(f->m, mp, PCPD_REMOVED_RELEASED);

        /* room again after a release */
        pcpd_manager_release(f->m, first, NULL, PCPD_REMOVED_RELEASED);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 1);
        third = request(6003, ":1.1");
        pcpd_failure_clear(&e);
        mp = NULL;
        assert_true(pcpd_manager_add_mapping(f->m, &third, &mp, &e) >= 0);
        assert_non_null(mp);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 2);
}

/* SetEnabled false: every mapping goes ("disabled"), deleted upstream, and new ones are
 * refused; true again: mappings can be made. */
static void test_enable_disable(void **state) {
        fixture *f = *state;
        pcpd_mapping *a = add_granted(f, 7001, ":1.1");
        pcpd_mapping *b = add_granted(f, 7002, ":1.2");
        pcpd_mapping_request req = request(7003, ":1.1");
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        uint64_t ida = a->id, idb = b->id;
        uint8_t na[PCP_NONCE_LEN], nb[PCP_NONCE_LEN];
        pcpd_mapping *mp = NULL;
        guint n_events;

        memcpy(na, a->nonce, sizeof(na));
        memcpy(nb, b->nonce, sizeof(nb));
        assert_int_equal(pcpd_manager_set_enabled(f->m, false), 1);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, ida)->reason, PCPD_REMOVED_DISABLED);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, idb)->reason, PCPD_REMOVED_DISABLED);
        assert_string_equal(pcpd_manager_state(f->m), "disabled");
        wait_seen(f, f->a, 7001, true, 1);
        wait_seen(f, f->a, 7002, true, 1);
        assert_memory_equal(fake_last(f->a, 7001, true)->nonce, na, PCP_NONCE_LEN);
        assert_memory_equal(fake_last(f->a, 7002, true)->nonce, nb, PCP_NONCE_LEN);

        /* off: refused, nothing told */
        n_events = f->rec.events->len;
        assert_true(pcpd_manager_add_mapping(f->m, &req, &mp, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_DISABLED);
        assert_null(mp);
        assert_int_equal(f->rec.events->len, n_events);
        /* again: no change */
        assert_int_equal(pcpd_manager_set_enabled(f->m, false), 0);

        assert_int_equal(pcpd_manager_set_enabled(f->m, true), 1);
        assert_string_not_equal(pcpd_manager_state(f->m), "disabled");
        mp = add_granted(f, 7003, ":1.1");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, mp->id), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 1);
}

/* A holder leaves the bus: what only it held goes ("owner-vanished"), deleted upstream;
 * what another holds too, and a persistent mapping, stay. A name holding nothing: nothing. */
static void test_owner_vanished(void **state) {
        fixture *f = *state;
        pcpd_mapping *only = add_granted(f, 8001, ":1.1");
        pcpd_mapping *shared = add_granted(f, 8002, ":1.1");
        pcpd_mapping_request join = request(8002, ":1.2");
        pcpd_mapping_request pers = request(8003, NULL);
        pcpd_mapping *kept;
        uint64_t id_only = only->id, id_shared = shared->id;
        guint n_events;

        assert_ptr_equal(add(f, &join), shared);
        pers.persistent = true;
        kept = add(f, &pers);
        wait_state(f, kept, "active");

        n_events = f->rec.events->len;
        pcpd_manager_holder_vanished(f->m, ":1.99");
        assert_int_equal(f->rec.events->len, n_events);

        pcpd_manager_holder_vanished(f->m, ":1.1");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id_only), 1);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id_only)->reason, PCPD_REMOVED_OWNER_VANISHED);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, shared->id), 0);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, kept->id), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 2);
        assert_false(g_hash_table_contains(shared->holders, ":1.1"));
        wait_seen(f, f->a, 8001, true, 1);
        assert_int_equal(fake_count(f->a, 8002, true), 0);

        /* the last holder of the shared one leaves */
        pcpd_manager_holder_vanished(f->m, ":1.2");
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id_shared)->reason, PCPD_REMOVED_OWNER_VANISHED);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 1);
        assert_ptr_equal(pcpd_manager_find_path(f->m, PCPD_MAPPING_PATH(kept)), kept);
        wait_seen(f, f->a, 8002, true, 1);
}

/* Removed by someone else (RevokeApp, the admin's Remove): "revoked", deleted upstream
 * with its nonce, whoever held it. */
static void test_revoked(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 8101, ":1.1");
        pcpd_mapping_request join = request(8101, ":1.2");
        uint8_t nonce[PCP_NONCE_LEN];
        uint64_t id = mp->id;

        assert_ptr_equal(add(f, &join), mp);
        memcpy(nonce, mp->nonce, sizeof(nonce));
        pcpd_manager_remove_mapping(f->m, mp, PCPD_REMOVED_REVOKED);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 1);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id)->reason, PCPD_REMOVED_REVOKED);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
        assert_int_equal(g_hash_table_size(f->m->holder_index), 0);
        wait_seen(f, f->a, 8101, true, 1);
        assert_memory_equal(fake_last(f->a, 8101, true)->nonce, nonce, PCP_NONCE_LEN);
        /* its holders leaving later finds nothing */
        pcpd_manager_holder_vanished(f->m, ":1.2");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 1);
        assert_string_equal(pcpd_remove_reason_to_string(PCPD_REMOVED_REVOKED), "revoked");
}

/* The server answers a permanent error (UNSUPP_PROTOCOL): the mapping fails with that
 * error and stays held (retried while held: pcpd-manager-events.c mapping_log_change()); it is
 * not removed. No path in the manager removes a mapping with "server-refused" (nor
 * "expired"): the reasons exist in the enum and the contract only. */
static void test_server_refuses(void **state) {
        fixture *f = *state;
        pcpd_mapping_request req = request(8201, ":1.1");
        pcpd_mapping *mp;
        const event *ev;

        f->a->map_result = PCP_RESULT_UNSUPP_PROTOCOL;
        mp = add(f, &req);
        wait_state(f, mp, "failed");
        assert_string_equal(mp->error, "UNSUPP_PROTOCOL");
        ev = last_event(&f->rec, EV_CHANGED, mp->id);
        assert_non_null(ev);
        assert_true(ev->what & PCPD_MAPPING_CHANGED_STATE);
        assert_true(ev->what & PCPD_MAPPING_CHANGED_ERROR);
        assert_string_equal(ev->error, "UNSUPP_PROTOCOL");
        assert_string_equal(mp->external_address, "");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, mp->id), 0);
        assert_ptr_equal(pcpd_manager_find_path(f->m, PCPD_MAPPING_PATH(mp)), mp);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID), 1);

        /* it goes when released, like any other */
        pcpd_manager_release(f->m, mp, ":1.1", PCPD_REMOVED_RELEASED);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
}

/* A mapping's object path is made from its id, not kept: the same text as the one kept
 * before ("%" G_GUINT64_FORMAT after the prefix), up to the largest id, each found again */
static void test_mapping_path(void **state) {
        fixture *f = *state;
        static const uint64_t ids[] = {0, 1, 9, 10, 99, 100, 131070, 4294967295u, 4294967296u,
                                       1000000000000000000u, 9999999999999999999u, UINT64_MAX - 1, UINT64_MAX};
        char buf[PCPD_MAPPING_PATH_MAX];
        pcpd_mapping *mp = add_granted(f, 8401, ":1.1");

        for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
                g_autofree char *want = g_strdup_printf(PCP1_MAPPING_PATH_PREFIX "/%" G_GUINT64_FORMAT, ids[i]);

                memset(buf, 'x', sizeof(buf));
                assert_ptr_equal(pcpd_mapping_path_of_id(ids[i], buf), buf);
                assert_string_equal(buf, want);
                assert_true(strlen(buf) < sizeof(buf));
        }
        assert_int_equal(strlen(pcpd_mapping_path_of_id(UINT64_MAX, buf)) + 1, PCPD_MAPPING_PATH_MAX);

        {
                g_autofree char *want = g_strdup_printf(PCP1_MAPPING_PATH_PREFIX "/%" G_GUINT64_FORMAT, mp->id);
                const char *a = PCPD_MAPPING_PATH(mp), *b = PCPD_MAPPING_PATH(mp);

                /* two in one block are two buffers */
                assert_ptr_not_equal(a, b);
                assert_string_equal(a, want);
                assert_string_equal(b, want);
                assert_ptr_equal(pcpd_manager_find_path(f->m, a), mp);
                assert_null(pcpd_manager_find_path(f->m, pcpd_mapping_path_of_id(mp->id + 1, buf)));
        }
}

/* The configured server is replaced by another: the mapping moves, same object and path,
 * its nonce with it (Server changes, then the new server's grant). */
static void test_move_to_other_server(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 8301, ":1.1");
        g_autofree char *text_b = NULL;
        g_autofree char *path = g_strdup(PCPD_MAPPING_PATH(mp));
        pcpd_server_spec spec;
        uint8_t nonce[PCP_NONCE_LEN];
        uint64_t id = mp->id;
        bool saw_server = false;

        memcpy(nonce, mp->nonce, sizeof(nonce));
        f->b = fake_server_new();
        text_b = fake_server_text(f->b);
        spec = fake_server_spec(f->b);
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &spec, 1));
        assert_int_equal(f->m->servers->len, 1);
        assert_ptr_equal(pcpd_manager_find_path(f->m, path), mp);
        assert_string_equal(mp->server_text, text_b);
        for (guint i = 0; i < f->rec.events->len; i++) {
                const event *e = &g_array_index(f->rec.events, event, i);
                saw_server = saw_server || (e->kind == EV_CHANGED && e->id == id && (e->what & PCPD_MAPPING_CHANGED_SERVER));
        }
        assert_true(saw_server);

        wait_seen(f, f->b, 8301, false, 1);
        assert_memory_equal(fake_last(f->b, 8301, false)->nonce, nonce, PCP_NONCE_LEN);
        /* it asks for what it had */
        assert_int_equal(fake_last(f->b, 8301, false)->external_port, 8301 + PORT_OFFSET);
        wait_state(f, mp, "active");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
        assert_int_equal(count_events(&f->rec, EV_ADDED, id), 1);
}

/* Its server goes and no other serves it: the mapping waits, failed with NO_SERVER (not
 * removed); the server comes back: it is made there again under the same nonce, asking for
 * the port it had (a refresh for the server). */
static void test_wait_for_server(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = add_granted(f, 8401, ":1.1");
        g_autofree char *text_a = fake_server_text(f->a);
        pcpd_server_spec spec = fake_server_spec(f->a);
        uint8_t nonce[PCP_NONCE_LEN];
        uint64_t id = mp->id;
        const event *ev;

        memcpy(nonce, mp->nonce, sizeof(nonce));
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, NULL, 0));
        assert_int_equal(f->m->servers->len, 0);
        assert_ptr_equal(pcpd_manager_find_path(f->m, PCPD_MAPPING_PATH(mp)), mp);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
        assert_string_equal(mp->state, "failed");
        assert_string_equal(mp->error, "NO_SERVER");
        assert_string_equal(mp->server_text, "");
        ev = last_event(&f->rec, EV_CHANGED, id);
        assert_int_equal(ev->what & (PCPD_MAPPING_CHANGED_SERVER | PCPD_MAPPING_CHANGED_STATE |
                                     PCPD_MAPPING_CHANGED_ERROR | PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS),
                         PCPD_MAPPING_CHANGED_SERVER | PCPD_MAPPING_CHANGED_STATE | PCPD_MAPPING_CHANGED_ERROR |
                                 PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS);
        /* what it left on the server that went is not deleted there: it expires (C4) */
        assert_int_equal(fake_count(f->a, 8401, true), 0);

        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &spec, 1));
        assert_string_equal(mp->server_text, text_a);
        wait_seen(f, f->a, 8401, false, 2);
        assert_memory_equal(fake_last(f->a, 8401, false)->nonce, nonce, PCP_NONCE_LEN);
        assert_int_equal(fake_last(f->a, 8401, false)->external_port, 8401 + PORT_OFFSET);
        wait_state(f, mp, "active");
        assert_string_equal(mp->error, "");
        assert_int_equal(mp->external_port, 8401 + PORT_OFFSET);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 0);
        assert_int_equal(count_events(&f->rec, EV_ADDED, id), 1);
}

/* A restart: the manager is freed and a new one reads the same state directory. The
 * persistent mapping is asked for again under its saved nonce, the port and address it had
 * suggested, on the same path; an app's mapping waits, unclaimed, and is reclaimed by the
 * same uid's request (same object, its owner now the new caller). */
static void test_reclaim_after_restart(void **state) {
        fixture *f = *state;
        pcpd_mapping_request preq = request(9001, NULL);
        pcpd_mapping *pers, *app, *mp;
        g_autofree char *ppath = NULL, *apath = NULL;
        uint8_t pnonce[PCP_NONCE_LEN], anonce[PCP_NONCE_LEN];
        pcpd_mapping_request again = request(9002, ":1.50");
        const seen_request *sr;
        const event *ev;
        uint64_t id;

        preq.persistent = true;
        pers = add(f, &preq);
        wait_state(f, pers, "active");
        app = add_granted(f, 9002, ":1.5");
        ppath = g_strdup(PCPD_MAPPING_PATH(pers));
        apath = g_strdup(PCPD_MAPPING_PATH(app));
        memcpy(pnonce, pers->nonce, sizeof(pnonce));
        memcpy(anonce, app->nonce, sizeof(anonce));

        f->m = pcpd_manager_free(f->m);
        g_array_set_size(f->rec.events, 0);
        assert_int_equal(fake_count(f->a, 9001, true), 0); /* a restart deletes nothing */

        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        pers = pcpd_manager_find_path(f->m, ppath);
        app = pcpd_manager_find_path(f->m, apath);
        assert_non_null(pers);
        assert_non_null(app);
        assert_true(pers->persistent);
        assert_false(pers->unclaimed);
        assert_true(app->unclaimed);
        assert_int_equal(count_events(&f->rec, EV_ADDED, pers->id), 1);
        assert_memory_equal(pers->nonce, pnonce, PCP_NONCE_LEN);

        wait_seen(f, f->a, 9001, false, 2);
        sr = fake_last(f->a, 9001, false);
        assert_memory_equal(sr->nonce, pnonce, PCP_NONCE_LEN);
        assert_int_equal(sr->external_port, 9001 + PORT_OFFSET);
        {
                char buf[PCP_ADDR_STRLEN];
                assert_string_equal(pcp_addr_to_string(&sr->external_addr, buf), EXT_ADDR);
        }
        wait_state(f, pers, "active");
        assert_int_equal(pers->external_port, 9001 + PORT_OFFSET);

        wait_seen(f, f->a, 9002, false, 2);
        assert_memory_equal(fake_last(f->a, 9002, false)->nonce, anonce, PCP_NONCE_LEN);
        wait_state(f, app, "active");

        /* the app comes back */
        mp = add(f, &again);
        assert_ptr_equal(mp, app);
        assert_false(app->unclaimed);
        assert_string_equal(app->owner, ":1.50");
        ev = last_event(&f->rec, EV_CHANGED, app->id);
        assert_non_null(ev);
        assert_int_equal(ev->what & (PCPD_MAPPING_CHANGED_OWNER | PCPD_MAPPING_CHANGED_PID),
                         PCPD_MAPPING_CHANGED_OWNER | PCPD_MAPPING_CHANGED_PID);
        assert_int_equal(count_events(&f->rec, EV_ADDED, app->id), 1);
        assert_int_equal(fake_count(f->a, 9002, false), 2); /* no new request for it */
        /* and it is held by the new caller: it goes when that one leaves */
        id = app->id;
        pcpd_manager_holder_vanished(f->m, ":1.50");
        assert_int_equal(last_event(&f->rec, EV_REMOVED, id)->reason, PCPD_REMOVED_OWNER_VANISHED);
        assert_ptr_equal(pcpd_manager_find_path(f->m, ppath), pers);
}

/* The fields nearly every mapping has empty live in a block of their own (mp->rare), made
 * only for a mapping that has one: none for a plain mapping; the filters and the
 * declaration of a persistent one in its block, through the state file and a restart; a
 * waiting mapping's previous server in a block that goes again once it is back on it. */
static void test_rare_fields(void **state) {
        fixture *f = *state;
        pcpd_mapping_request preq = request(9201, NULL);
        pcpd_mapping *plain = add_granted(f, 9202, ":1.7"), *pers;
        g_autofree char *ppath = NULL, *text_a = fake_server_text(f->a);
        pcpd_server_spec spec = fake_server_spec(f->a);
        pcp_filter filter = { .prefix_len = 96 + 24, .remote_port = 4242 };
        const pcp_filter *got;
        uint64_t plain_id = plain->id;

        assert_null(plain->rare);
        assert_null(pcpd_mapping_prev_server(plain));
        assert_null(pcpd_mapping_interface(plain));
        assert_null(pcpd_mapping_declared(plain));
        assert_null(pcpd_mapping_remote_address(plain));
        assert_null(pcpd_mapping_filters(plain));
        assert_int_equal(pcpd_mapping_n_filters(plain), 0);

        assert_true(pcp_addr_from_string("198.51.100.0", &filter.remote_addr));
        preq.persistent = true;
        preq.declared = "web";
        preq.n_filters = 1;
        preq.filters[0] = filter;
        pers = add(f, &preq);
        wait_state(f, pers, "active");
        assert_non_null(pers->rare);
        assert_string_equal(pcpd_mapping_declared(pers), "web");
        assert_null(pcpd_mapping_remote_address(pers));
        assert_int_equal(pcpd_mapping_n_filters(pers), 1);
        assert_memory_equal(pcpd_mapping_filters(pers), &filter, sizeof(filter));

        /* its server goes: the plain one waits with a block for its previous server... */
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, NULL, 0));
        assert_string_equal(plain->error, "NO_SERVER");
        assert_non_null(plain->rare);
        assert_string_equal(pcpd_mapping_prev_server(plain), text_a);
        /* ...which goes with it once it is back on that server */
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &spec, 1));
        wait_state(f, plain, "active");
        assert_null(plain->rare);
        wait_state(f, pers, "active");
        assert_null(pcpd_mapping_prev_server(pers));
        assert_string_equal(pcpd_mapping_declared(pers), "web"); /* the rest of its block stays */

        /* a restart: the state file and the restore give the persistent one its block again,
         * and the app's mapping (unclaimed) none */
        ppath = g_strdup(PCPD_MAPPING_PATH(pers));
        f->m = pcpd_manager_free(f->m);
        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        pers = pcpd_manager_find_path(f->m, ppath);
        assert_non_null(pers);
        assert_true(pers->persistent);
        assert_non_null(pers->rare);
        assert_string_equal(pcpd_mapping_declared(pers), "web");
        assert_null(pcpd_mapping_remote_address(pers));
        assert_null(pcpd_mapping_interface(pers));
        assert_int_equal(pcpd_mapping_n_filters(pers), 1);
        got = pers->rare->filters;
        assert_ptr_equal(pcpd_mapping_filters(pers), got);
        assert_non_null(got);
        assert_int_equal(got->prefix_len, filter.prefix_len);
        assert_int_equal(got->remote_port, filter.remote_port);
        assert_memory_equal(&got->remote_addr, &filter.remote_addr, sizeof(filter.remote_addr));
        assert_int_equal(pcpd_manager_n_mappings(f->m), 2);
        plain = pcpd_manager_mapping(f->m, plain_id);
        assert_non_null(plain);
        assert_true(plain->unclaimed);
        assert_null(plain->rare);
}

/* The setters: a block made for the first field set, each field its own copy, and the block
 * freed once the last is cleared (a field never set: no block made to clear it). */
static void test_rare_setters(void **state) {
        pcpd_mapping mp = { 0 };
        char text[] = "eth0";
        pcp_filter filters[2] = { { .prefix_len = 128, .remote_port = 1 }, { .prefix_len = 120 } };

        (void) state;
        pcpd_mapping_set_str(&mp, prev_server, NULL);
        pcpd_mapping_set_filters(&mp, NULL, 0);
        assert_null(mp.rare);

        pcpd_mapping_set_str(&mp, interface, text);
        assert_non_null(mp.rare);
        text[0] = 'x';
        assert_string_equal(pcpd_mapping_interface(&mp), "eth0");
        /* set from its own text */
        pcpd_mapping_set_str(&mp, interface, pcpd_mapping_interface(&mp));
        assert_string_equal(pcpd_mapping_interface(&mp), "eth0");
        pcpd_mapping_set_filters(&mp, filters, 2);
        assert_int_equal(pcpd_mapping_n_filters(&mp), 2);
        assert_memory_equal(pcpd_mapping_filters(&mp), filters, sizeof(filters));
        assert_ptr_not_equal(pcpd_mapping_filters(&mp), filters);

        pcpd_mapping_set_str(&mp, interface, NULL);
        assert_non_null(mp.rare); /* the filters are still there */
        pcpd_mapping_set_filters(&mp, NULL, 0);
        assert_null(mp.rare);
        assert_int_equal(pcpd_mapping_n_filters(&mp), 0);

        pcpd_mapping_set_str(&mp, remote_address, "2001:db8::1");
        pcpd_mapping_set_str(&mp, declared, "web");
        pcpd_mapping_rare_free(&mp);
        assert_null(mp.rare);
}

/* The per-user quota's refusal says the number right: one mapping, in the singular. */
static void test_quota_of_one(void **state) {
        fixture *f = *state;
        pcpd_mapping_request second = request(6101, ":1.1");
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping *mp = NULL;

        (void) add_granted(f, 6100, ":1.1");
        assert_true(pcpd_manager_add_mapping(f->m, &second, &mp, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_QUOTA_EXCEEDED);
        assert_string_equal(e.message, "You already hold 1 mapping, the most one user may hold; release it first.");
}

/* MaxMappings: the host's limit, whoever asks: refused (QuotaExceeded), nothing changed. */
static void test_host_quota(void **state) {
        fixture *f = *state;
        pcpd_mapping_request a = request(6101, ":1.1"), b = request(6102, ":1.2"), c = request(6103, ":1.3");
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping *mp = NULL;
        guint n_events;

        b.uid = TEST_UID + 1;
        c.uid = TEST_UID + 2;
        wait_state(f, add(f, &a), "active");
        wait_state(f, add(f, &b), "active");
        n_events = f->rec.events->len;
        assert_true(pcpd_manager_add_mapping(f->m, &c, &mp, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_QUOTA_EXCEEDED);
        assert_non_null(strstr(e.message, "2 mappings, the configured maximum"));
        assert_null(mp);
        assert_int_equal(f->rec.events->len, n_events);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 2);
        assert_int_equal(pcpd_manager_count_for_uid(f->m, TEST_UID + 2), 0);
        assert_int_equal(fake_count(f->a, 6103, false), 0);
}

/* A restart, and the app does not come back within GraceSeconds (0 here: the next turn of
 * the loop): its mapping goes ("owner-vanished"), deleted upstream under its saved nonce;
 * the persistent one stays. */
static void test_unclaimed_after_restart(void **state) {
        fixture *f = *state;
        pcpd_mapping_request preq = request(9101, NULL);
        pcpd_mapping *pers, *app;
        g_autofree char *ppath = NULL, *apath = NULL;
        uint8_t anonce[PCP_NONCE_LEN];
        uint64_t aid;

        preq.persistent = true;
        pers = add(f, &preq);
        wait_state(f, pers, "active");
        app = add_granted(f, 9102, ":1.5");
        ppath = g_strdup(PCPD_MAPPING_PATH(pers));
        apath = g_strdup(PCPD_MAPPING_PATH(app));
        aid = app->id;
        memcpy(anonce, app->nonce, sizeof(anonce));

        f->m = pcpd_manager_free(f->m);
        g_array_set_size(f->rec.events, 0);
        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        app = pcpd_manager_find_path(f->m, apath);
        assert_non_null(app);
        assert_true(app->unclaimed);

        wait_seen(f, f->a, 9102, true, 1);
        assert_memory_equal(fake_last(f->a, 9102, true)->nonce, anonce, PCP_NONCE_LEN);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, aid), 1);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, aid)->reason, PCPD_REMOVED_OWNER_VANISHED);
        assert_null(pcpd_manager_find_path(f->m, apath));
        pers = pcpd_manager_find_path(f->m, ppath);
        assert_non_null(pers);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, pers->id), 0);
        assert_int_equal(fake_count(f->a, 9101, true), 0);
}

/* ---- a holder of many leaves: removed PCPD_ORPHAN_BATCH a turn of the loop ---- */

#define MANY 1000u
#define MANY_PORT 20000u

/* the removals told since event `mark` with that reason */
static unsigned removed_since(const fixture *f, guint mark, int reason) {
        unsigned n = 0;

        for (guint i = mark; i < f->rec.events->len; i++) {
                const event *e = &g_array_index(f->rec.events, event, i);
                n += e->kind == EV_REMOVED && e->reason == reason;
        }
        return n;
}

/* MANY mappings of `owner`, their ids in ids */
static void add_many(fixture *f, const char *owner, uint64_t *ids) {
        for (unsigned k = 0; k < MANY; k++) {
                pcpd_mapping_request req = request((uint16_t) (MANY_PORT + k), owner);
                ids[k] = add(f, &req)->id;
        }
        assert_int_equal(pcpd_manager_n_mappings(f->m), MANY);
}

/* A holder of MANY leaves: no more than PCPD_ORPHAN_BATCH go at once nor in any later turn
 * of the loop, so that the loop serves others in between; all go in the end,
 * "owner-vanished", each once. Meanwhile one is held again by another caller (kept), one is
 * revoked (removed once, "revoked"), and a new mapping takes the port of one already gone
 * (a new id: not touched). */
static void test_owner_vanished_batches(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, MANY);
        pcpd_mapping *kept = NULL, *revoked = NULL, *fresh = NULL;
        pcpd_mapping_request req;
        unsigned gone, turns = 0;
        uint64_t kept_id, revoked_id, fresh_id;
        guint mark;

        add_many(f, ":1.60", ids);
        mark = f->rec.events->len;
        pcpd_manager_holder_vanished(f->m, ":1.60");
        gone = removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED);
        assert_int_equal(gone, PCPD_ORPHAN_BATCH);
        assert_int_equal(pcpd_manager_n_mappings(f->m), MANY - PCPD_ORPHAN_BATCH);
        assert_int_equal(g_hash_table_size(f->m->holder_index), 0);

        /* between batches: one of those left is held again, another revoked; a gone one's
         * port is taken again */
        for (unsigned k = 0; k < MANY && (kept == NULL || revoked == NULL || fresh == NULL); k++) {
                pcpd_mapping *mp = pcpd_manager_mapping(f->m, ids[k]);

                if (mp == NULL && fresh == NULL) {
                        req = request((uint16_t) (MANY_PORT + k), ":1.62");
                        fresh = add(f, &req);
                        assert_true(fresh->id != ids[k]);
                } else if (mp != NULL && kept == NULL) {
                        req = request((uint16_t) (MANY_PORT + k), ":1.61");
                        kept = add(f, &req);
                        assert_ptr_equal(kept, mp); /* shared: the same mapping */
                } else if (mp != NULL && revoked == NULL) {
                        revoked = mp;
                }
        }
        assert_non_null(kept);
        assert_non_null(revoked);
        assert_non_null(fresh);
        kept_id = kept->id;
        revoked_id = revoked->id;
        fresh_id = fresh->id;
        pcpd_manager_remove_mapping(f->m, revoked, PCPD_REMOVED_REVOKED);

        /* the rest, a batch a turn: the context is iterated (each iteration dispatches the
         * manager's batch at most once) until all are gone, with a counted cap */
        while (gone < MANY - 2) {
                unsigned before = gone;

                assert_true(turns < 10 * MANY);
                g_main_context_iteration(NULL, FALSE);
                turns++;
                gone = removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED);
                assert_true(gone - before <= PCPD_ORPHAN_BATCH);
        }
        assert_true(turns >= (MANY - 2 - PCPD_ORPHAN_BATCH) / PCPD_ORPHAN_BATCH);
        /* nothing more goes */
        for (unsigned i = 0; i < 10; i++)
                g_main_context_iteration(NULL, FALSE);
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), MANY - 2);
        assert_int_equal(f->m->orphans_source, 0);
        assert_int_equal(f->m->orphans->len, 0);
        for (unsigned k = 0; k < MANY; k++) {
                if (ids[k] != kept_id)
                        assert_null(pcpd_manager_mapping(f->m, ids[k]));
                assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[k]), ids[k] == kept_id ? 0 : 1);
                if (ids[k] != kept_id && ids[k] != revoked_id)
                        assert_int_equal(last_event(&f->rec, EV_REMOVED, ids[k])->reason,
                                         PCPD_REMOVED_OWNER_VANISHED);
        }
        assert_int_equal(last_event(&f->rec, EV_REMOVED, revoked_id)->reason, PCPD_REMOVED_REVOKED);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, fresh_id), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 2);
        assert_ptr_equal(pcpd_manager_mapping(f->m, kept_id), kept);
        assert_true(g_hash_table_contains(kept->holders, ":1.61"));

        /* its new holder leaves: it goes at once */
        pcpd_manager_holder_vanished(f->m, ":1.61");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, kept_id), 1);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, kept_id)->reason, PCPD_REMOVED_OWNER_VANISHED);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 1);
}

/* A holder of MANY leaves while the listener's output is backed up (dbus-daemon has not read
 * the signals of the batches before): the first batch goes at once as before, the next one
 * waits, the loop turning meanwhile and the backlog asked again; once it drains the batches
 * go on until all are gone. A backlog that never drains holds each batch back no more than
 * PCPD_OUTPUT_BACKLOG_WAITS turns: all go in the end. */
static void test_owner_vanished_waits_for_backlog(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, MANY);
        unsigned turns = 0, asked;
        guint mark;

        add_many(f, ":1.70", ids);
        f->rec.backlog = PCPD_OUTPUT_BACKLOG_MAX + 1;
        mark = f->rec.events->len;
        pcpd_manager_holder_vanished(f->m, ":1.70");
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), PCPD_ORPHAN_BATCH);

        /* backed up: the loop turns (the next look comes 1 ms later), asked again 5 times,
         * and nothing more goes (a counted cap on the turns) */
        asked = f->rec.backlog_asked;
        while (f->rec.backlog_asked < asked + 5) {
                assert_true(turns < 1000);
                g_main_context_iteration(NULL, TRUE);
                turns++;
                assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), PCPD_ORPHAN_BATCH);
        }
        turns = 0;
        assert_int_not_equal(f->m->orphans_source, 0);

        /* drained: the rest go, a batch a turn */
        f->rec.backlog = PCPD_OUTPUT_BACKLOG_MAX;
        while (removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED) < MANY) {
                unsigned before = removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED);

                assert_true(turns < 10 * MANY);
                g_main_context_iteration(NULL, TRUE);
                turns++;
                assert_true(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED) - before <= PCPD_ORPHAN_BATCH);
        }
        assert_true(turns >= (MANY - PCPD_ORPHAN_BATCH) / PCPD_ORPHAN_BATCH);
        assert_int_equal(f->m->orphans_source, 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);

        /* a backlog that never drains: each batch waits PCPD_OUTPUT_BACKLOG_WAITS turns at
         * most, and all go (counted cap on the turns) */
        add_many(f, ":1.71", ids);
        f->rec.backlog = SIZE_MAX;
        mark = f->rec.events->len;
        asked = f->rec.backlog_asked;
        pcpd_manager_holder_vanished(f->m, ":1.71");
        turns = 0;
        while (removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED) < MANY) {
                assert_true(turns < (MANY / PCPD_ORPHAN_BATCH + 1) * (PCPD_OUTPUT_BACKLOG_WAITS + 2));
                g_main_context_iteration(NULL, TRUE);
                turns++;
        }
        /* each of the 7 batches after the first waited its PCPD_OUTPUT_BACKLOG_WAITS looks */
        assert_true(f->rec.backlog_asked - asked >= (MANY / PCPD_ORPHAN_BATCH) * PCPD_OUTPUT_BACKLOG_WAITS);
        assert_int_equal(f->m->orphans_source, 0);
        for (unsigned k = 0; k < MANY; k++)
                assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[k]), 1);
}

/* A holder of MANY leaves and pcpd stops before all batches ran: the rest go while it
 * stops (told, "owner-vanished"), as they would have a few turns earlier, and none of them
 * comes back after a restart as a mapping; another holder's mapping does. */
static void test_owner_vanished_then_stop(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, MANY);
        g_autofree char *other_path = NULL;
        pcpd_mapping_request req = request(MANY_PORT + MANY, ":1.71");
        guint mark;

        add_many(f, ":1.70", ids);
        other_path = g_strdup(PCPD_MAPPING_PATH(add(f, &req)));
        mark = f->rec.events->len;
        pcpd_manager_holder_vanished(f->m, ":1.70");
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), PCPD_ORPHAN_BATCH);

        f->m = pcpd_manager_free(f->m);
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), MANY);
        for (unsigned k = 0; k < MANY; k++)
                assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[k]), 1);

        g_array_set_size(f->rec.events, 0);
        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        for (unsigned k = 0; k < MANY; k++)
                assert_null(pcpd_manager_mapping(f->m, ids[k]));
        assert_int_equal(pcpd_manager_n_mappings(f->m), 1);
        assert_non_null(pcpd_manager_find_path(f->m, other_path));
}

/* ---- many holders of one mapping each leave at once: one paced stream for them all ---- */

#define LEAVERS (2u * PCPD_ORPHAN_BATCH + 44u)
#define LEAVERS_PORT 24000u

/* LEAVERS mappings, each held by a name of its own (names[k], ":2.k"), its id in ids[k]:
 * the ids grow with k */
static GPtrArray *add_leavers(fixture *f, uint64_t *ids) {
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);

        for (unsigned k = 0; k < LEAVERS; k++) {
                pcpd_mapping_request req;

                g_ptr_array_add(names, g_strdup_printf(":2.%u", k));
                req = request((uint16_t) (LEAVERS_PORT + k), names->pdata[k]);
                ids[k] = add(f, &req)->id;
                assert_true(k == 0 || ids[k] > ids[k - 1]);
        }
        return names;
}

/* The removals told since event `mark` ("owner-vanished") came in the order the names left
 * (the order of their ids here): one stream, first come first served. Returns how many. */
static unsigned removed_in_order(const fixture *f, guint mark) {
        uint64_t last = 0;
        unsigned n = 0;

        for (guint i = mark; i < f->rec.events->len; i++) {
                const event *e = &g_array_index(f->rec.events, event, i);

                if (e->kind != EV_REMOVED || e->reason != PCPD_REMOVED_OWNER_VANISHED)
                        continue;
                if (e->id <= last)
                        fail_msg("removal %u: mapping %" PRIu64 " after mapping %" PRIu64 ": not in the order "
                                 "their holders left", n, e->id, last);
                last = e->id;
                n++;
        }
        return n;
}

/* The loop is turned until the queue has gone, each turn removing no more than
 * PCPD_ORPHAN_BATCH (a counted cap on the turns); then no source of the departures is left */
static void turn_until_orphans_gone(fixture *f, guint mark) {
        unsigned turns = 0;

        while (f->m->orphans_source != 0) {
                unsigned before = removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED);

                if (turns >= 10 * LEAVERS)
                        fail_msg("the queued removals not done after %u turns of the loop (%u of %u left)", turns,
                                 f->m->orphans->len - f->m->orphans_head, f->m->orphans->len);
                g_main_context_iteration(NULL, TRUE);
                turns++;
                assert_true(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED) - before <= PCPD_ORPHAN_BATCH);
        }
        for (unsigned i = 0; i < 10 && f->m->orphans_turn_source != 0; i++)
                g_main_context_iteration(NULL, TRUE);
        assert_int_equal(f->m->orphans_turn_source, 0);
        assert_int_equal(f->m->orphans->len, 0);
}

/* LEAVERS names holding one mapping each leave in the same turn of the loop, the bus not
 * backed up: the first one's goes at once, the rest are queued (not one each at once) and
 * go a batch a turn, in the order the names left. A name that leaves once the loop has
 * turned, while some are still queued, queues behind them (none at once). One re-held by
 * another caller before its turn stays; all others go, each once. Once all are gone and the
 * loop has turned, a name that leaves has its mapping removed at once again. */
static void test_owners_vanish_share_batch(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, LEAVERS);
        g_autoptr(GPtrArray) names = add_leavers(f, ids);
        pcpd_mapping_request req = request(LEAVERS_PORT + LEAVERS, ":2.late");
        pcpd_mapping *late = add(f, &req), *kept;
        uint64_t late_id = late->id, kept_id = ids[LEAVERS - 1];
        unsigned turns = 0;
        guint mark = f->rec.events->len;

        for (unsigned k = 0; k < LEAVERS; k++)
                pcpd_manager_holder_vanished(f->m, names->pdata[k]);
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), 1);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[0]), 1);
        assert_int_equal(f->m->orphans->len - f->m->orphans_head, LEAVERS - 1);
        assert_int_not_equal(f->m->orphans_source, 0);

        /* before its turn, the last one is held by another caller */
        req = request((uint16_t) (LEAVERS_PORT + LEAVERS - 1), ":1.99");
        kept = add(f, &req);
        assert_ptr_equal(kept, pcpd_manager_mapping(f->m, kept_id)); /* shared */

        /* the loop turns (a batch goes), and a name leaves while others are still queued */
        while (f->m->orphans_turn_source != 0) {
                unsigned before = removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED);

                assert_true(turns < 100);
                g_main_context_iteration(NULL, TRUE);
                turns++;
                assert_true(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED) - before <= PCPD_ORPHAN_BATCH);
        }
        assert_true(f->m->orphans_head < f->m->orphans->len); /* (the test's premise) */
        {
                unsigned before = removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED);

                pcpd_manager_holder_vanished(f->m, ":2.late");
                assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), before);
                assert_ptr_equal(pcpd_manager_mapping(f->m, late_id), late);
        }

        turn_until_orphans_gone(f, mark);
        assert_int_equal(removed_in_order(f, mark), LEAVERS); /* LEAVERS - 1, and the late one */
        for (unsigned k = 0; k < LEAVERS - 1; k++) {
                assert_null(pcpd_manager_mapping(f->m, ids[k]));
                assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[k]), 1);
        }
        assert_int_equal(count_events(&f->rec, EV_REMOVED, late_id), 1);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, kept_id), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 1);
        assert_true(g_hash_table_contains(kept->holders, ":1.99"));

        /* the loop has turned: the next name that leaves has its mapping removed at once */
        pcpd_manager_holder_vanished(f->m, ":1.99");
        assert_int_equal(count_events(&f->rec, EV_REMOVED, kept_id), 1);
        assert_int_equal(last_event(&f->rec, EV_REMOVED, kept_id)->reason, PCPD_REMOVED_OWNER_VANISHED);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
}

/* LEAVERS names holding one mapping each leave in the same turn while the listener's output
 * is backed up: the first one's mapping goes at once (as a lone one's always did), every
 * later one waits in the queue (as it does when not backed up); nothing more goes while the backlog stays (the loop turning,
 * the backlog asked again); one re-held before its turn stays; once the backlog drains the
 * others go, a batch a turn, in the order their names left, each once. */
static void test_owners_vanish_wait_for_backlog(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, LEAVERS);
        g_autoptr(GPtrArray) names = add_leavers(f, ids);
        uint64_t kept_id = ids[LEAVERS / 2];
        pcpd_mapping_request req;
        pcpd_mapping *kept;
        unsigned turns = 0, asked;
        guint mark = f->rec.events->len;

        f->rec.backlog = PCPD_OUTPUT_BACKLOG_MAX + 1;
        for (unsigned k = 0; k < LEAVERS; k++)
                pcpd_manager_holder_vanished(f->m, names->pdata[k]);
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), 1);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[0]), 1);
        assert_int_equal(f->m->orphans->len - f->m->orphans_head, LEAVERS - 1);

        /* backed up: the loop turns (the next look comes 1 ms later), asked again 5 times,
         * and nothing more goes (a counted cap on the turns) */
        asked = f->rec.backlog_asked;
        while (f->rec.backlog_asked < asked + 5) {
                assert_true(turns < 1000);
                g_main_context_iteration(NULL, TRUE);
                turns++;
                assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), 1);
        }
        assert_int_not_equal(f->m->orphans_source, 0);

        /* one of those waiting is held by another caller */
        req = request((uint16_t) (LEAVERS_PORT + LEAVERS / 2), ":1.98");
        kept = add(f, &req);
        assert_ptr_equal(kept, pcpd_manager_mapping(f->m, kept_id));

        /* drained: the rest go, a batch a turn */
        f->rec.backlog = PCPD_OUTPUT_BACKLOG_MAX;
        turn_until_orphans_gone(f, mark);
        assert_int_equal(removed_in_order(f, mark), LEAVERS - 1);
        for (unsigned k = 0; k < LEAVERS; k++)
                assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[k]), ids[k] == kept_id ? 0 : 1);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 1);
        assert_ptr_equal(pcpd_manager_mapping(f->m, kept_id), kept);
        assert_true(g_hash_table_contains(kept->holders, ":1.98"));
}

/* Names that leave in one turn of the loop: the first with any to remove has them removed
 * at once (one before it whose mapping another name still holds removes nothing, and does
 * not count); the names after it in the same turn have none removed at once, theirs are
 * queued and go in later turns, after the first one's and in the order the names left,
 * each once, "owner-vanished". Once the loop has turned, the next name to leave is the
 * first of its turn again. */
static void test_owners_vanish_second_deferred(void **state) {
        fixture *f = *state;
        pcpd_mapping_request req;
        uint64_t a[3], b[2], shared_id, c_id;
        guint mark;

        for (unsigned k = 0; k < 3; k++) {
                req = request((uint16_t) (LEAVERS_PORT + k), ":3.a");
                a[k] = add(f, &req)->id;
        }
        for (unsigned k = 0; k < 2; k++) {
                req = request((uint16_t) (LEAVERS_PORT + 3 + k), ":3.b");
                b[k] = add(f, &req)->id;
        }
        req = request(LEAVERS_PORT + 5, ":3.s");
        shared_id = add(f, &req)->id;
        req = request(LEAVERS_PORT + 5, ":3.t");
        assert_int_equal(add(f, &req)->id, shared_id);
        assert_true(a[2] < b[0] && b[1] < shared_id); /* removed_in_order()'s premise */
        mark = f->rec.events->len;

        /* one turn of the loop: :3.s leaves (its mapping still held), then :3.a, :3.b, :3.t */
        pcpd_manager_holder_vanished(f->m, ":3.s");
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), 0);
        pcpd_manager_holder_vanished(f->m, ":3.a");
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), 3);
        for (unsigned k = 0; k < 3; k++)
                assert_null(pcpd_manager_mapping(f->m, a[k]));
        pcpd_manager_holder_vanished(f->m, ":3.b");
        pcpd_manager_holder_vanished(f->m, ":3.t");
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), 3);
        for (unsigned k = 0; k < 2; k++)
                assert_non_null(pcpd_manager_mapping(f->m, b[k]));
        assert_non_null(pcpd_manager_mapping(f->m, shared_id));
        assert_int_equal(f->m->orphans->len - f->m->orphans_head, 3);
        assert_int_not_equal(f->m->orphans_source, 0);

        turn_until_orphans_gone(f, mark);
        assert_int_equal(removed_in_order(f, mark), 6);
        for (unsigned k = 0; k < 3; k++)
                assert_int_equal(count_events(&f->rec, EV_REMOVED, a[k]), 1);
        for (unsigned k = 0; k < 2; k++) {
                assert_null(pcpd_manager_mapping(f->m, b[k]));
                assert_int_equal(count_events(&f->rec, EV_REMOVED, b[k]), 1);
        }
        assert_null(pcpd_manager_mapping(f->m, shared_id));
        assert_int_equal(count_events(&f->rec, EV_REMOVED, shared_id), 1);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);

        /* the loop has turned: the next name to leave is the first of its turn */
        req = request(LEAVERS_PORT + 6, ":3.c");
        c_id = add(f, &req)->id;
        pcpd_manager_holder_vanished(f->m, ":3.c");
        assert_null(pcpd_manager_mapping(f->m, c_id));
        assert_int_equal(last_event(&f->rec, EV_REMOVED, c_id)->reason, PCPD_REMOVED_OWNER_VANISHED);
}

/* LEAVERS names holding one mapping each leave while the output is backed up, and pcpd stops
 * with their mappings queued: all go while it stops (told once each, "owner-vanished"),
 * none comes back after a restart; no source of theirs outlives the manager (ASan: the loop
 * is turned after the free). */
static void test_owners_vanish_then_stop(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, LEAVERS);
        g_autoptr(GPtrArray) names = add_leavers(f, ids);
        guint mark = f->rec.events->len;

        f->rec.backlog = SIZE_MAX;
        for (unsigned k = 0; k < LEAVERS; k++)
                pcpd_manager_holder_vanished(f->m, names->pdata[k]);
        assert_int_equal(removed_since(f, mark, PCPD_REMOVED_OWNER_VANISHED), 1);
        assert_int_not_equal(f->m->orphans_source, 0);
        assert_int_not_equal(f->m->orphans_turn_source, 0);

        f->m = pcpd_manager_free(f->m);
        assert_int_equal(removed_in_order(f, mark), LEAVERS);
        for (unsigned k = 0; k < LEAVERS; k++)
                assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[k]), 1);
        for (unsigned i = 0; i < 10; i++)
                g_main_context_iteration(NULL, FALSE);

        g_array_set_size(f->rec.events, 0);
        f->rec.backlog = 0;
        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
}

/* ---- the restored app mappings' grace: one timer for them all ---- */

/* MANY app mappings of `owner` (ids in ids), then a restart: all restored, unclaimed, one
 * grace timer for them all */
static void restart_with_many(fixture *f, const char *owner, uint64_t *ids) {
        add_many(f, owner, ids);
        f->m = pcpd_manager_free(f->m);
        g_array_set_size(f->rec.events, 0);
        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), MANY);
        for (unsigned k = 0; k < MANY; k++) {
                pcpd_mapping *mp = pcpd_manager_mapping(f->m, ids[k]);
                assert_non_null(mp);
                assert_true(mp->unclaimed);
        }
        assert_int_equal(f->m->n_unclaimed, MANY);
        assert_non_null(f->m->unclaimed);
        assert_int_equal(f->m->unclaimed->len, MANY);
        assert_true(f->m->grace_source != 0);
        assert_false(f->m->grace_over);
}

/* MANY restored, GraceSeconds 0 (over at the first turns of the loop). Before it is over:
 * every third is claimed again (kept), one claimed and released at once (gone, "released",
 * once), one revoked while unclaimed (gone, "revoked", once). Then exactly the others go,
 * "owner-vanished", each once, no more than PCPD_ORPHAN_BATCH in any turn of the loop;
 * the timer and the ids go with the last. */
static void test_unclaimed_batches(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, MANY);
        g_autofree bool *claimed = g_new0(bool, MANY);
        pcpd_mapping_request req;
        unsigned gone = 0, turns = 0, n_claimed = 0;
        uint64_t released_id, revoked_id;
        pcpd_mapping *mp;

        restart_with_many(f, ":1.80", ids);
        for (unsigned k = 0; k < MANY; k += 3) {
                req = request((uint16_t) (MANY_PORT + k), ":1.81");
                mp = add(f, &req);
                assert_int_equal(mp->id, ids[k]); /* the restored one, claimed */
                assert_false(mp->unclaimed);
                claimed[k] = true;
                n_claimed++;
        }
        /* claimed, then released while the others still wait */
        req = request((uint16_t) (MANY_PORT + 1), ":1.82");
        mp = add(f, &req);
        released_id = mp->id;
        assert_int_equal(released_id, ids[1]);
        pcpd_manager_release(f->m, mp, ":1.82", PCPD_REMOVED_RELEASED);
        assert_null(pcpd_manager_mapping(f->m, released_id));
        /* removed for another reason while unclaimed */
        revoked_id = ids[2];
        mp = pcpd_manager_mapping(f->m, revoked_id);
        assert_true(mp->unclaimed);
        pcpd_manager_remove_mapping(f->m, mp, PCPD_REMOVED_REVOKED);
        assert_int_equal(f->m->n_unclaimed, MANY - n_claimed - 2);
        assert_int_equal(removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED), 0);

        /* the grace is over: a batch a turn, with a counted cap */
        while (gone < MANY - n_claimed - 2) {
                unsigned before = gone;

                assert_true(turns < 10 * MANY);
                g_main_context_iteration(NULL, TRUE);
                turns++;
                gone = removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED);
                assert_true(gone - before <= PCPD_ORPHAN_BATCH);
        }
        assert_true(turns >= (MANY - n_claimed - 2) / PCPD_ORPHAN_BATCH);
        for (unsigned i = 0; i < 10; i++)
                g_main_context_iteration(NULL, FALSE);
        assert_int_equal(removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED), MANY - n_claimed - 2);
        assert_int_equal(f->m->grace_source, 0);
        assert_null(f->m->unclaimed);
        assert_int_equal(f->m->n_unclaimed, 0);
        assert_false(f->m->grace_over);
        for (unsigned k = 0; k < MANY; k++) {
                mp = pcpd_manager_mapping(f->m, ids[k]);
                if (claimed[k]) {
                        assert_non_null(mp);
                        assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[k]), 0);
                        continue;
                }
                assert_null(mp);
                assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[k]), 1);
                assert_int_equal(last_event(&f->rec, EV_REMOVED, ids[k])->reason,
                                 ids[k] == released_id  ? PCPD_REMOVED_RELEASED
                                 : ids[k] == revoked_id ? PCPD_REMOVED_REVOKED
                                                        : PCPD_REMOVED_OWNER_VANISHED);
        }
        assert_int_equal(pcpd_manager_n_mappings(f->m), n_claimed);
}

/* MANY restored and none claimed: once the grace is over the first batch goes at once, the
 * next waits while the listener's output is backed up (asked again, the loop turning), and
 * the rest go once it drains. */
static void test_unclaimed_waits_for_backlog(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, MANY);
        unsigned turns = 0, asked;

        restart_with_many(f, ":1.84", ids);
        f->rec.backlog = PCPD_OUTPUT_BACKLOG_MAX + 1;
        while (removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED) == 0) {
                assert_true(turns < 1000);
                g_main_context_iteration(NULL, TRUE);
                turns++;
        }
        assert_int_equal(removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED), PCPD_ORPHAN_BATCH);

        asked = f->rec.backlog_asked;
        turns = 0;
        while (f->rec.backlog_asked < asked + 5) {
                assert_true(turns < 1000);
                g_main_context_iteration(NULL, TRUE);
                turns++;
                assert_int_equal(removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED), PCPD_ORPHAN_BATCH);
        }
        assert_int_not_equal(f->m->grace_source, 0);

        f->rec.backlog = 0;
        turns = 0;
        while (removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED) < MANY) {
                assert_true(turns < 10 * MANY);
                g_main_context_iteration(NULL, TRUE);
                turns++;
        }
        for (unsigned i = 0; i < 10; i++)
                g_main_context_iteration(NULL, FALSE);
        assert_int_equal(removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED), MANY);
        assert_int_equal(f->m->grace_source, 0);
        assert_null(f->m->unclaimed);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
}

/* All of MANY restored are claimed again before the grace is over: the timer and the ids go
 * with the last claim, and nothing is removed. */
static void test_unclaimed_all_claimed(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, MANY);

        restart_with_many(f, ":1.83", ids);
        for (unsigned k = 0; k < MANY; k++) {
                pcpd_mapping_request req = request((uint16_t) (MANY_PORT + k), ":1.84");

                assert_true(f->m->grace_source != 0);
                assert_int_equal(add(f, &req)->id, ids[k]);
                assert_int_equal(f->m->n_unclaimed, MANY - k - 1);
        }
        assert_int_equal(f->m->grace_source, 0);
        assert_null(f->m->unclaimed);
        for (unsigned i = 0; i < 10; i++)
                g_main_context_iteration(NULL, FALSE);
        assert_int_equal(removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), MANY);
}

/* pcpd stops while the grace is not over (GraceSeconds 3600): nothing is removed, and after
 * the next start all wait again, under a grace of their own */
static void test_unclaimed_stop_in_grace(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, MANY);

        restart_with_many(f, ":1.85", ids);
        f->m = pcpd_manager_free(f->m);
        assert_int_equal(removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED), 0);

        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), MANY);
        assert_int_equal(f->m->n_unclaimed, MANY);
        assert_true(f->m->grace_source != 0);
}

/* pcpd stops when the grace is over but only the first batch went: the rest go while it
 * stops ("owner-vanished", each once), as they would have a few turns later, and none
 * comes back after the next start */
static void test_unclaimed_stop_after_grace(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, MANY);
        unsigned turns = 0;

        restart_with_many(f, ":1.86", ids);
        while (removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED) == 0) {
                assert_true(turns++ < 10 * MANY);
                g_main_context_iteration(NULL, TRUE);
        }
        assert_int_equal(removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED), PCPD_ORPHAN_BATCH);
        assert_true(f->m->grace_over);

        f->m = pcpd_manager_free(f->m);
        assert_int_equal(removed_since(f, 0, PCPD_REMOVED_OWNER_VANISHED), MANY);
        for (unsigned k = 0; k < MANY; k++)
                assert_int_equal(count_events(&f->rec, EV_REMOVED, ids[k]), 1);

        g_array_set_size(f->rec.events, 0);
        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
        assert_int_equal(f->m->grace_source, 0);
        assert_null(f->m->unclaimed);
}

/* A restart over MANY saved mappings tells each mapping_added (InterfacesAdded) once, in
 * the order of their ids, only once every one of them is made and in the manager's tables,
 * and nothing about a mapping before its mapping_added. Told while each was made, the bus
 * messages queued during the restore lay between one mapping and the next, and their room
 * stayed with malloc once they were written (bench/README.md, branch rss131). */
static void test_restore_tells_added_after_all(void **state) {
        fixture *f = *state;
        g_autofree uint64_t *ids = g_new(uint64_t, MANY);
        g_autofree bool *told = g_new0(bool, MANY);
        guint k = 0;

        restart_with_many(f, ":1.87", ids);
        for (guint i = 0; i < f->rec.events->len; i++) {
                const event *e = &g_array_index(f->rec.events, event, i);

                if (e->kind != EV_ADDED) {
                        /* nothing about a restored mapping before it is added */
                        for (guint j = 0; j < MANY; j++)
                                if (ids[j] == e->id)
                                        assert_true(told[j]);
                        continue;
                }
                assert_true(k < MANY);
                if (e->id != ids[k] || e->n_mappings != MANY)
                        fail_msg("mapping_added %u of the restore: id %" G_GUINT64_FORMAT " with %u mapping(s) "
                                 "made; expected id %" G_GUINT64_FORMAT " with all %u made",
                                 k, e->id, e->n_mappings, ids[k], MANY);
                told[k++] = true;
        }
        assert_int_equal(k, MANY);
}

#if HAVE_MALLOC_TRIM
/* A start over a state directory with mappings saved: the heap is given back once
 * (malloc_trim(0)), after the loaded state is freed; not for a start with nothing saved, and
 * never again while mappings are added, answered, reclaimed, released and the loop runs. */
static void test_trim_once_after_restore(void **state) {
        fixture *f = *state;
        pcpd_mapping_request preq = request(9301, NULL), again = request(9302, ":1.91");
        pcpd_mapping *pers, *app, *mp;
        g_autofree char *ppath = NULL, *apath = NULL;
        unsigned freed_before;

        /* a start with nothing saved: nothing to give back */
        f->m = pcpd_manager_free(f->m);
        n_trims = 0;
        f->m = manager_new(f, true);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(n_trims, 0);

        /* adds and their answers: none */
        preq.persistent = true;
        pers = add(f, &preq);
        wait_state(f, pers, "active");
        app = add_granted(f, 9302, ":1.90");
        (void) add_granted(f, 9303, ":1.90");
        ppath = g_strdup(PCPD_MAPPING_PATH(pers));
        apath = g_strdup(PCPD_MAPPING_PATH(app));
        assert_int_equal(n_trims, 0);

        /* the restart: once, with the loaded state freed before it */
        f->m = pcpd_manager_free(f->m);
        f->m = manager_new(f, true);
        assert_int_equal(n_trims, 0); /* not when the manager is made */
        freed_before = n_states_freed;
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(n_trims, 1);
        assert_int_equal(trim_pad, 0);
        assert_int_equal(states_freed_at_trim, freed_before + 1);
        assert_null(f->m->loaded);
        pers = pcpd_manager_find_path(f->m, ppath);
        app = pcpd_manager_find_path(f->m, apath);
        assert_non_null(pers);
        assert_non_null(app);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 3);

        /* what follows: asked for again and granted, one reclaimed, one released, one more
         * added and the loop run: never again */
        wait_state(f, pers, "active");
        wait_state(f, app, "active");
        mp = add(f, &again);
        assert_ptr_equal(mp, app);
        pcpd_manager_release(f->m, mp, ":1.91", PCPD_REMOVED_RELEASED);
        (void) add_granted(f, 9304, ":1.92");
        for (unsigned i = 0; i < 10; i++)
                g_main_context_iteration(NULL, FALSE);
        assert_int_equal(n_trims, 1);
}
#endif

int main(void) {
        static const options quota2 = { .max_mappings_per_user = 2 };
        static const options quota1 = { .max_mappings_per_user = 1 };
        static const options host2 = { .max_mappings = 2 };
        static const options no_grace = { .set_grace = true, .grace_seconds = 0 };
        static const options many = { .max_mappings_per_user = 2 * MANY, .max_mappings = 2 * MANY };
        static const options many_no_grace = { .max_mappings_per_user = 2 * MANY,
                                               .max_mappings = 2 * MANY,
                                               .set_grace = true,
                                               .grace_seconds = 0 };
        static const options many_long_grace = { .max_mappings_per_user = 2 * MANY,
                                                 .max_mappings = 2 * MANY,
                                                 .set_grace = true,
                                                 .grace_seconds = 3600 };
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_grant, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sharing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sharing_options, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sharing_made_persistent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_persistent_outlives_holders, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sharing_pending_and_filters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_mapping_path, setup, teardown),
                cmocka_unit_test_prestate_setup_teardown(test_quota, setup, teardown, (void *) &quota2),
                cmocka_unit_test_prestate_setup_teardown(test_quota_of_one, setup, teardown, (void *) &quota1),
                cmocka_unit_test_prestate_setup_teardown(test_host_quota, setup, teardown, (void *) &host2),
                cmocka_unit_test_setup_teardown(test_enable_disable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_owner_vanished, setup, teardown),
                cmocka_unit_test_setup_teardown(test_revoked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_refuses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_move_to_other_server, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wait_for_server, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reclaim_after_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rare_fields, setup, teardown),
                cmocka_unit_test(test_rare_setters),
                cmocka_unit_test_prestate_setup_teardown(test_unclaimed_after_restart, setup, teardown,
                                                         (void *) &no_grace),
                cmocka_unit_test_prestate_setup_teardown(test_owner_vanished_batches, setup, teardown,
                                                         (void *) &many),
                cmocka_unit_test_prestate_setup_teardown(test_owner_vanished_waits_for_backlog, setup, teardown,
                                                         (void *) &many),
                cmocka_unit_test_prestate_setup_teardown(test_owner_vanished_then_stop, setup, teardown,
                                                         (void *) &many),
                cmocka_unit_test_prestate_setup_teardown(test_owners_vanish_share_batch, setup, teardown,
                                                         (void *) &many),
                cmocka_unit_test_prestate_setup_teardown(test_owners_vanish_second_deferred, setup, teardown,
                                                         (void *) &many),
                cmocka_unit_test_prestate_setup_teardown(test_owners_vanish_wait_for_backlog, setup, teardown,
                                                         (void *) &many),
                cmocka_unit_test_prestate_setup_teardown(test_owners_vanish_then_stop, setup, teardown,
                                                         (void *) &many),
                cmocka_unit_test_prestate_setup_teardown(test_unclaimed_batches, setup, teardown,
                                                         (void *) &many_no_grace),
                cmocka_unit_test_prestate_setup_teardown(test_unclaimed_waits_for_backlog, setup, teardown,
                                                         (void *) &many_no_grace),
                cmocka_unit_test_prestate_setup_teardown(test_unclaimed_all_claimed, setup, teardown,
                                                         (void *) &many_long_grace),
                cmocka_unit_test_prestate_setup_teardown(test_unclaimed_stop_in_grace, setup, teardown,
                                                         (void *) &many_long_grace),
                cmocka_unit_test_prestate_setup_teardown(test_unclaimed_stop_after_grace, setup, teardown,
                                                         (void *) &many_no_grace),
                cmocka_unit_test_prestate_setup_teardown(test_restore_tells_added_after_all, setup, teardown,
                                                         (void *) &many_long_grace),
#if HAVE_MALLOC_TRIM
                cmocka_unit_test_setup_teardown(test_trim_once_after_restore, setup, teardown),
#endif
        };

        /* pcpd_manager_start() asks for NetworkManager on the system bus: there is none
         * here (a path under a directory that does not exist; nothing is made there) */
        g_setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/pcpd-test-manager/no-bus", TRUE);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
