/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "fake-backend.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "pcp1-contract.h"
#include "pcpd-manager-private.h"
#include "pcpd-state.h"

#define FAKE_EXT "198.51.100.9" /* what the fake grants (TEST-NET-2) */
#define FAKE_INT "10.0.0.2"     /* the host's address toward it */

typedef struct fake_map {
        pcpd_server *server;
        const char *state, *error;
        uint16_t external_port;
        uint32_t lifetime;
        bool granted;
} fake_map;

typedef struct fake_srv {
        pcpd_server_state state;
} fake_srv;

static void record(fake_backend *fb, int op, const pcpd_mapping *mp, const pcpd_server *s, uint64_t cookie,
                   bool had_grant) {
        fake_call c = { .op = op, .id = mp != NULL ? mp->id : 0, .server = s, .cookie = cookie, .had_grant = had_grant };

        if (mp != NULL && mp->has_nonce)
                memcpy(c.nonce, mp->nonce, PCP_NONCE_LEN);
        g_array_append_val(fb->calls, c);
}

static void fill_info(const pcpd_mapping *mp, const fake_map *fm, pcpd_backend_info *ret) {
        *ret = (pcpd_backend_info) {
                .state = fm->state,
                .error = fm->error,
                .has_external = fm->granted,
                .external_port = fm->granted ? fm->external_port : 0,
                .lifetime_granted = fm->granted ? fm->lifetime : 0,
                .expires_at = fm->granted ? (uint64_t) g_get_real_time() + (uint64_t) fm->lifetime * G_USEC_PER_SEC : 0,
        };
        g_assert_true(pcp_addr_from_string(FAKE_INT, &ret->internal_addr));
        if (fm->granted)
                g_assert_true(pcp_addr_from_string(FAKE_EXT, &ret->external_addr));
}

/* ---- down ---- */

static void f_free(pcpd_backend *b) {
        fake_backend *fb = fake_of(b);

        g_hash_table_destroy(fb->maps);
        g_hash_table_destroy(fb->servers);
        g_array_free(fb->calls, TRUE);
        g_free(fb);
}

static void f_random(pcpd_backend *b, void *buf, size_t len) {
        fake_backend *fb = fake_of(b);
        uint8_t *p = buf;

        for (size_t i = 0; i < len; i++)
                p[i] = ++fb->next_random;
}

static int f_server_add(pcpd_backend *b, pcpd_server *s) {
        fake_srv *fs = g_new0(fake_srv, 1);

        fs->state = PCPD_SERVER_UNKNOWN;
        g_hash_table_insert(fake_of(b)->servers, s, fs);
        return 0;
}

static void f_server_remove(pcpd_backend *b, pcpd_server *s) {
        fake_backend *fb = fake_of(b);
        g_autoptr(GPtrArray) lost = g_ptr_array_new();
        GHashTableIter it;
        gpointer k, v;

        g_hash_table_iter_init(&it, fb->maps);
        while (g_hash_table_iter_next(&it, &k, &v))
                if (((fake_map *) v)->server == s)
                        g_ptr_array_add(lost, k);
        for (guint i = 0; i < lost->len; i++) {
                g_hash_table_remove(fb->maps, lost->pdata[i]);
                b->events->mapping_lost(b->userdata, lost->pdata[i]);
        }
        g_hash_table_remove(fb->servers, s);
}

static bool f_server_status(pcpd_backend *b, const pcpd_server *s, pcpd_server_state *ret) {
        fake_srv *fs = g_hash_table_lookup(fake_of(b)->servers, s);

        *ret = fs != NULL ? fs->state : PCPD_SERVER_UNKNOWN;
        return fs != NULL;
}

static size_t f_server_local_addresses(pcpd_backend *b, const pcpd_server *s, struct in6_addr *ret, size_t max) {
        if (max == 0 || !g_hash_table_contains(fake_of(b)->servers, s))
                return 0;
        g_assert_true(pcp_addr_from_string(FAKE_INT, &ret[0]));
        return 1;
}

/* The rule every backend relies on: a mapping's record (its nonce, its server) is on
 * disk before its request would leave, so that a restarted pcpd can delete it. Read back
 * from the state directory as a restart would. */
static void assert_saved(const pcpd_mapping *mp, const pcpd_server *s) {
        g_autoptr(GError) error = NULL;
        g_autoptr(pcpd_state) st = NULL;
        const pcpd_state_mapping *rec;
        int dirfd = fcntl(mp->manager->state_fd, F_DUPFD_CLOEXEC, 3);

        assert_true(dirfd >= 0);
        if (pcpd_state_load(dirfd, mp->manager->state_dir, &st, &error) < 0)
                fail_msg("state of %s: %s", PCPD_MAPPING_PATH(mp), error->message);
        close(dirfd);
        rec = g_hash_table_lookup(st->mappings, &mp->id);
        if (rec == NULL)
                fail_msg("%s is added before its record is saved", PCPD_MAPPING_PATH(mp));
        assert_true(rec->has_nonce);
        assert_memory_equal(rec->nonce, mp->nonce, PCP_NONCE_LEN);
        assert_string_equal(rec->server, s->text);
        assert_false(rec->deleting);
}

static int f_add(pcpd_backend *b, pcpd_mapping *mp, pcpd_server *s, const struct in6_addr *external) {
        fake_backend *fb = fake_of(b);
        fake_map *fm;
        fake_call *c;

        if (fb->add_error != 0)
                return fb->add_error;
        assert_non_null(s);
        assert_true(g_hash_table_contains(fb->servers, s));
        assert_true(mp->has_nonce);
        assert_saved(mp, s);
        if (fb->eexist_adds > 0) {
                fb->eexist_adds--;
                record(fb, FAKE_ADD_EEXIST, mp, s, 0, false);
                return -EEXIST;
        }
        assert_false(g_hash_table_contains(fb->maps, mp));
        fm = g_new0(fake_map, 1);
        fm->server = s;
        fm->state = PCP1_MAPPING_PENDING;
        fm->error = "";
        g_hash_table_insert(fb->maps, mp, fm);
        record(fb, FAKE_ADD, mp, s, 0, false);
        c = &g_array_index(fb->calls, fake_call, fb->calls->len - 1);
        c->has_external = external != NULL;
        if (external != NULL)
                c->external = *external;
        return 0;
}

static void f_remove(pcpd_backend *b, pcpd_mapping *mp, uint64_t cookie) {
        fake_backend *fb = fake_of(b);
        fake_map *fm = g_hash_table_lookup(fb->maps, mp);

        if (fm == NULL)
                return;
        record(fb, FAKE_REMOVE, mp, fm->server, cookie, fm->granted);
        g_hash_table_remove(fb->maps, mp);
}

static void f_detach(pcpd_backend *b, pcpd_mapping *mp) {
        fake_backend *fb = fake_of(b);
        fake_map *fm = g_hash_table_lookup(fb->maps, mp);

        if (fm == NULL)
                return;
        record(fb, FAKE_DETACH, mp, fm->server, 0, fm->granted);
        g_hash_table_remove(fb->maps, mp);
}

static bool f_holds(pcpd_backend *b, const pcpd_mapping *mp) {
        return g_hash_table_contains(fake_of(b)->maps, mp);
}

static bool f_info(pcpd_backend *b, const pcpd_mapping *mp, pcpd_backend_info *ret) {
        fake_map *fm = g_hash_table_lookup(fake_of(b)->maps, mp);

        if (fm == NULL)
                return false;
        fill_info(mp, fm, ret);
        return true;
}

static bool f_delete_until(pcpd_backend *b, const pcpd_mapping *mp, uint64_t *ret) {
        fake_map *fm = g_hash_table_lookup(fake_of(b)->maps, mp);

        if (fm == NULL || !fm->granted)
                return false;
        *ret = (uint64_t) g_get_real_time() + (uint64_t) fm->lifetime * G_USEC_PER_SEC;
        return true;
}

static int f_delete_saved(pcpd_backend *b, const pcpd_state_mapping *rec, pcpd_server *s, uint64_t cookie) {
        fake_backend *fb = fake_of(b);
        fake_call c = { .op = FAKE_DELETE_SAVED, .id = rec->id, .server = s, .cookie = cookie };

        memcpy(c.nonce, rec->nonce, PCP_NONCE_LEN);
        g_array_append_val(fb->calls, c);
        return 0;
}

static void f_delete_forget(pcpd_backend *b, uint64_t cookie) {
        fake_call c = { .op = FAKE_DELETE_FORGET, .cookie = cookie };

        g_array_append_val(fake_of(b)->calls, c);
}

static const pcpd_backend_ops fake_ops = {
        .protocol = "fake",
        .free = f_free,
        .random = f_random,
        .server_add = f_server_add,
        .server_remove = f_server_remove,
        .server_status = f_server_status,
        .server_local_addresses = f_server_local_addresses,
        .add = f_add,
        .remove = f_remove,
        .detach = f_detach,
        .holds = f_holds,
        .info = f_info,
        .delete_until = f_delete_until,
        .delete_saved = f_delete_saved,
        .delete_forget = f_delete_forget,
};

int fake_backend_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings, pcpd_backend **ret) {
        fake_backend *fb = g_new0(fake_backend, 1);

        fb->base.ops = &fake_ops;
        fb->base.events = events;
        fb->base.userdata = userdata;
        fb->maps = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
        fb->servers = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
        fb->calls = g_array_new(FALSE, TRUE, sizeof(fake_call));
        *ret = &fb->base;
        return 0;
}

/* ---- what a test looks at ---- */

unsigned fake_calls(const fake_backend *fb, int op, uint64_t id) {
        unsigned n = 0;

        for (guint i = 0; i < fb->calls->len; i++) {
                const fake_call *c = &g_array_index(fb->calls, fake_call, i);
                if (c->op == op && c->id == id)
                        n++;
        }
        return n;
}

const fake_call *fake_last_call(const fake_backend *fb, int op, uint64_t id) {
        for (guint i = fb->calls->len; i > 0; i--) {
                const fake_call *c = &g_array_index(fb->calls, fake_call, i - 1);
                if (c->op == op && c->id == id)
                        return c;
        }
        fail_msg("no call %d for mapping %" G_GUINT64_FORMAT " among %u", op, id, fb->calls->len);
        return NULL;
}

bool fake_holds(const fake_backend *fb, const pcpd_mapping *mp, const pcpd_server **ret_server) {
        fake_map *fm = g_hash_table_lookup(fb->maps, mp);

        if (ret_server != NULL)
                *ret_server = fm != NULL ? fm->server : NULL;
        return fm != NULL;
}

/* ---- news ---- */

static fake_map *held(fake_backend *fb, pcpd_mapping *mp) {
        fake_map *fm = g_hash_table_lookup(fb->maps, mp);

        if (fm == NULL)
                fail_msg("the fake does not hold mapping %" G_GUINT64_FORMAT, mp->id);
        return fm;
}

void fake_grant(fake_backend *fb, pcpd_mapping *mp, uint16_t external_port, uint32_t lifetime) {
        fake_map *fm = held(fb, mp);
        pcpd_backend_info bi;

        fm->state = PCP1_MAPPING_ACTIVE;
        fm->error = "";
        fm->granted = true;
        fm->external_port = external_port;
        fm->lifetime = lifetime;
        fill_info(mp, fm, &bi);
        fb->base.events->mapping_changed(fb->base.userdata, mp, &bi, true);
}

void fake_fail(fake_backend *fb, pcpd_mapping *mp, const char *error) {
        fake_map *fm = held(fb, mp);
        pcpd_backend_info bi;

        fm->state = PCP1_MAPPING_FAILED;
        fm->error = g_intern_string(error);
        fm->granted = false;
        fill_info(mp, fm, &bi);
        fb->base.events->mapping_changed(fb->base.userdata, mp, &bi, false);
}

void fake_lose(fake_backend *fb, pcpd_mapping *mp) {
        (void) held(fb, mp);
        g_hash_table_remove(fb->maps, mp);
        fb->base.events->mapping_lost(fb->base.userdata, mp);
}

void fake_server_state(fake_backend *fb, pcpd_server *s, pcpd_server_state st) {
        fake_srv *fs = g_hash_table_lookup(fb->servers, s);
        pcpd_server_status status = { .state = st, .state_name = "fake" };

        assert_non_null(fs);
        fs->state = st;
        fb->base.events->server_changed(fb->base.userdata, s, &status);
}

void fake_delete_done(fake_backend *fb, uint64_t cookie, bool confirmed) {
        fb->base.events->deleting_done(fb->base.userdata, cookie, confirmed);
}

/* ---- the fake UPnP-IGD fallback (fake-backend.h) ---- */

static char fallback_part; /* what mp->backend points at while the fake holds mp */

static const char *ff_refuse_reason(pcpd_backend *b, const pcpd_mapping *mp, const pcpd_server *s) {
        return ((fake_fallback *) b)->refuse;
}

static int ff_add(pcpd_backend *b, pcpd_mapping *mp, pcpd_server *s, const struct in6_addr *external) {
        fake_fallback *ff = (fake_fallback *) b;

        ff->adds++;
        g_ptr_array_add(ff->held, mp);
        mp->backend = (struct pcpd_backend_mapping *) &fallback_part;
        return 0;
}

static void ff_let_go(fake_fallback *ff, pcpd_mapping *mp, uint64_t cookie) {
        ff->last_cookie = cookie;
        g_ptr_array_remove(ff->held, mp);
        mp->backend = NULL;
}

static void ff_remove(pcpd_backend *b, pcpd_mapping *mp, uint64_t cookie) {
        ((fake_fallback *) b)->removes++;
        ff_let_go((fake_fallback *) b, mp, cookie);
}

static void ff_handover(pcpd_backend *b, pcpd_mapping *mp, uint16_t external_port, uint64_t cookie) {
        ((fake_fallback *) b)->handovers++;
        ff_let_go((fake_fallback *) b, mp, cookie);
}

static bool ff_info(pcpd_backend *b, const pcpd_mapping *mp, pcpd_backend_info *ret) {
        return false; /* its news says it all */
}

static bool ff_deleting_record(pcpd_backend *b, const pcpd_mapping *mp, pcpd_state_mapping *ret) {
        if (!((fake_fallback *) b)->permanent || mp->backend == NULL)
                return false;
        *ret = (pcpd_state_mapping) {
                .deleting = true,
                .delete_until = (uint64_t) g_get_real_time() + (uint64_t) 3600 * G_USEC_PER_SEC,
                .server = (char *) "upnp",
                .opcode = mp->opcode,
                .protocol = mp->protocol,
                .family = mp->family,
                .internal_port = mp->internal_port,
                .lifetime = mp->lifetime,
                .external_address = (char *) "",
                .uid = mp->uid,
                .app_id = mp->app_id,
                .app_id_source = (char *) mp->app_id_source,
                .description = mp->description,
                .created = mp->created,
                .upnp_interface = (char *) "eth0",
                .upnp_external_port = 5000,
                .upnp_permanent = true,
        };
        return true;
}

/* its part of a record: the interface a restart would re-add the mapping through */
static void ff_fill_record(pcpd_backend *b, const pcpd_mapping *mp, pcpd_state_mapping *rec) {
        ((fake_fallback *) b)->fills++;
        rec->upnp_interface = (char *) "eth0";
        rec->upnp_external_port = mp->external_port;
}

static void ff_watch(pcpd_backend *b, pcpd_server *s) {
}

static size_t ff_servers(pcpd_backend *b, pcpd_backend_server *ret, size_t max) {
        fake_fallback *ff = (fake_fallback *) b;
        size_t n = MIN(ff->n_routers, max);

        memcpy(ret, ff->routers, n * sizeof(*ret));
        return n;
}

static void ff_shutdown(pcpd_backend *b) {
        fake_fallback *ff = (fake_fallback *) b;

        if (ff->on_shutdown != NULL)
                ff->on_shutdown(ff, ff->on_shutdown_data);
}

static void ff_free(pcpd_backend *b) {
        fake_fallback *ff = (fake_fallback *) b;

        for (guint k = 0; k < ff->held->len; k++)
                ((pcpd_mapping *) ff->held->pdata[k])->backend = NULL;
        g_ptr_array_free(ff->held, TRUE);
        g_free(ff);
}

static const pcpd_backend_ops fake_fallback_ops = {
        .protocol = "upnp-igd",
        .refuse_reason = ff_refuse_reason,
        .add = ff_add,
        .remove = ff_remove,
        .handover = ff_handover,
        .info = ff_info,
        .deleting_record = ff_deleting_record,
        .fill_record = ff_fill_record,
        .watch = ff_watch,
        .servers = ff_servers,
        .shutdown = ff_shutdown,
        .free = ff_free,
};

int fake_fallback_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings, pcpd_backend **ret) {
        fake_fallback *ff = g_new0(fake_fallback, 1);

        ff->base.ops = &fake_fallback_ops;
        ff->base.events = events;
        ff->base.userdata = userdata;
        ff->held = g_ptr_array_new();
        *ret = &ff->base;
        return 0;
}
