/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "manager-fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <glib-unix.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_CAP_ITERATIONS 100000
#define WAIT_CAP_SECONDS 30 /* a cap against hangs, never a pass condition */

/* ---- the fake server ---- */

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
                if (q.opcode == PCP_OPCODE_ANNOUNCE) {
                        s->announces++;
                } else {
                        seen_request sr = {
                                .opcode = q.opcode,
                                .lifetime = q.lifetime,
                                .protocol = q.protocol,
                                .internal_port = q.internal_port,
                                .external_port = q.external_port,
                                .external_addr = q.external_addr,
                        };

                        assert_int_equal(q.opcode, PCP_OPCODE_MAP);
                        memcpy(sr.nonce, q.nonce, PCP_NONCE_LEN);
                        g_array_append_val(s->requests, sr);
                        memcpy(r.nonce, q.nonce, PCP_NONCE_LEN);
                        r.protocol = q.protocol;
                        r.internal_port = q.internal_port;
                        if (q.lifetime == 0) {
                                r.result = PCP_RESULT_SUCCESS;
                                r.lifetime = 0;
                                r.external_addr = q.external_addr;
                        } else if (s->map_result == PCP_RESULT_SUCCESS) {
                                r.result = PCP_RESULT_SUCCESS;
                                r.lifetime = q.lifetime;
                                r.external_port = q.external_port != 0 ? q.external_port
                                                                       : (uint16_t) (q.internal_port + PORT_OFFSET);
                                assert_true(pcp_addr_from_string(EXT_ADDR, &r.external_addr));
                        } else {
                                r.result = s->map_result;
                                r.lifetime = 1800; /* a long error: ask again much later */
                                r.external_addr = q.external_addr;
                        }
                }
                assert_int_equal(pcp_encode(&r, out, sizeof(out), &len), PCP_WIRE_OK);
                assert_int_equal(sendto(fd, out, len, 0, (struct sockaddr *) &from, fl), (ssize_t) len);
        }
        return G_SOURCE_CONTINUE;
}

fake_server *fake_server_new(void) {
        fake_server *s = g_new0(fake_server, 1);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof(a);

        s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(s->fd >= 0);
        assert_int_equal(bind(s->fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(getsockname(s->fd, (struct sockaddr *) &a, &al), 0);
        s->port = ntohs(a.sin_port);
        s->map_result = PCP_RESULT_SUCCESS;
        s->started = g_get_monotonic_time();
        s->requests = g_array_new(FALSE, TRUE, sizeof(seen_request));
        s->watch = g_unix_fd_add(s->fd, G_IO_IN, on_fake_datagram, s);
        return s;
}

void fake_server_free(fake_server *s) {
        if (s == NULL)
                return;
        g_source_remove(s->watch);
        close(s->fd);
        g_array_unref(s->requests);
        g_free(s);
}

pcpd_server_spec fake_server_spec(const fake_server *s) {
        pcpd_server_spec spec = { .n_addrs = 1 };

        spec.addrs[0].sin6_family = AF_INET6;
        spec.addrs[0].sin6_port = htons(s->port);
        assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", &spec.addrs[0].sin6_addr), 1);
        return spec;
}

char *fake_server_text(const fake_server *s) {
        return g_strdup_printf("127.0.0.1:%u", s->port);
}

void fake_server_config(pcpd_config *config, const fake_server *s, unsigned max) {
        pcpd_server_spec spec = fake_server_spec(s);

        pcpd_config_init(config);
        config->use_default_routers = false;
        config->announce_port = 0;
        config->max_mappings_per_user = max;
        config->max_mappings = max;
        config->n_servers = 1;
        config->servers[0].text = fake_server_text(s);
        config->servers[0].addr = spec.addrs[0];
}

const seen_request *fake_request(const fake_server *s, guint i) {
        assert_true(i < s->requests->len);
        return &g_array_index(s->requests, seen_request, i);
}

unsigned fake_count(const fake_server *s, uint16_t port, bool lifetime_zero) {
        unsigned n = 0;

        for (guint i = 0; i < s->requests->len; i++) {
                const seen_request *r = fake_request(s, i);
                n += r->internal_port == port && (r->lifetime == 0) == lifetime_zero;
        }
        return n;
}

const seen_request *fake_last(const fake_server *s, uint16_t port, bool lifetime_zero) {
        for (guint i = s->requests->len; i > 0; i--) {
                const seen_request *r = fake_request(s, i - 1);
                if (r->internal_port == port && (r->lifetime == 0) == lifetime_zero)
                        return r;
        }
        fail_msg("the fake server saw no %s for port %u", lifetime_zero ? "delete" : "request", port);
        abort(); /* (fail_msg() does not return) */
}

/* ---- the recording listener ---- */

static void record(recorder *r, pcpd_manager *m, int kind, const pcpd_mapping *mp, unsigned what, int reason) {
        event e = {
                .kind = kind,
                .id = mp->id,
                .what = what,
                .reason = reason,
                .state = g_strdup(mp->state),
                .error = g_strdup(mp->error),
                .server = g_strdup(mp->server_text),
                .external_address = g_strdup(mp->external_address),
                .internal_address = g_strdup(mp->internal_address),
                .external_port = mp->external_port,
                .n_mappings = pcpd_manager_n_mappings(m),
        };

        if (r->expect_m != NULL)
                assert_ptr_equal(m, r->expect_m);
        g_array_append_val(r->events, e);
}

static void rec_added(pcpd_manager *m, pcpd_mapping *mp, void *userdata) {
        record(userdata, m, EV_ADDED, mp, 0, -1);
}

static void rec_changed(pcpd_manager *m, pcpd_mapping *mp, pcpd_mapping_changed what, void *userdata) {
        assert_int_not_equal(what, 0);
        assert_int_equal(what & ~(unsigned) _PCPD_MAPPING_CHANGED_ALL, 0);
        record(userdata, m, EV_CHANGED, mp, what, -1);
}

static void rec_removed(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason, void *userdata) {
        /* still readable, still findable while it is told */
        assert_ptr_equal(pcpd_manager_find_path(m, PCPD_MAPPING_PATH(mp)), mp);
        record(userdata, m, EV_REMOVED, mp, 0, (int) reason);
}

static size_t rec_backlog(pcpd_manager *m, void *userdata) {
        recorder *r = userdata;

        if (r->expect_m != NULL)
                assert_ptr_equal(m, r->expect_m);
        r->backlog_asked++;
        return r->backlog;
}

const pcpd_manager_listener recording = {
        .mapping_added = rec_added,
        .mapping_changed = rec_changed,
        .mapping_removed = rec_removed,
        .output_backlog = rec_backlog,
};

static void event_clear(void *p) {
        event *e = p;

        g_free(e->state);
        g_free(e->error);
        g_free(e->server);
        g_free(e->external_address);
        g_free(e->internal_address);
}

void recorder_init(recorder *r) {
        r->events = g_array_new(FALSE, TRUE, sizeof(event));
        g_array_set_clear_func(r->events, event_clear);
        r->expect_m = NULL;
        r->backlog = 0;
        r->backlog_asked = 0;
}

void recorder_clear(recorder *r) {
        g_clear_pointer(&r->events, g_array_unref);
        r->expect_m = NULL;
}

unsigned count_events(const recorder *r, int kind, uint64_t id) {
        unsigned n = 0;

        for (guint i = 0; i < r->events->len; i++) {
                const event *e = &g_array_index(r->events, event, i);
                n += e->kind == kind && e->id == id;
        }
        return n;
}

const event *last_event(const recorder *r, int kind, uint64_t id) {
        for (guint i = r->events->len; i > 0; i--) {
                const event *e = &g_array_index(r->events, event, i - 1);
                if (e->kind == kind && e->id == id)
                        return e;
        }
        fail_msg("the listener heard no %s for mapping %" G_GUINT64_FORMAT,
                 kind == EV_ADDED ? "mapping_added" : kind == EV_CHANGED ? "mapping_changed" : "mapping_removed", id);
        abort(); /* (fail_msg() does not return) */
}

/* ---- waiting ---- */

static gboolean on_cap(gpointer data) {
        *(bool *) data = true;
        return G_SOURCE_REMOVE;
}

void wait_for(void *ctx, wait_cond_fn cond, const void *arg, const char *what) {
        bool capped = false;
        guint cap = g_timeout_add_seconds(WAIT_CAP_SECONDS, on_cap, &capped);
        unsigned i;

        for (i = 0; i < WAIT_CAP_ITERATIONS && !capped && !cond(ctx, arg); i++)
                g_main_context_iteration(NULL, TRUE);
        if (!capped)
                g_source_remove(cap);
        if (!cond(ctx, arg))
                fail_msg("waited for %s: not after %u iteration(s) of the main context%s", what, i,
                         capped ? " and the " G_STRINGIFY(WAIT_CAP_SECONDS) " s cap" : "");
}

pcpd_mapping_request manager_request(uint8_t protocol, uint16_t port, const char *owner) {
        return (pcpd_mapping_request) {
                .opcode = PCP_OPCODE_MAP,
                .protocol = protocol,
                .family = AF_INET,
                .internal_port = port,
                .lifetime = 600,
                .uid = MANAGER_TEST_UID,
                .pid = 1234,
                .app_id = "",
                .app_id_source = "none",
                .owner = owner,
                .owner_known_alive = true,
        };
}

pcpd_mapping *manager_add(pcpd_manager *m, const pcpd_mapping_request *req) {
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping *mp = NULL;
        int r = pcpd_manager_add_mapping(m, req, &mp, &e);

        if (r < 0)
                fail_msg("AddMapping of port %u: %s (%d)", req->internal_port, e.message, r);
        assert_non_null(mp);
        assert_int_equal(e.error, PCPD_ERROR_NONE);
        return mp;
}

/* ---- a fixture's common part ---- */

void manager_fixture_setup(GMainLoop **loop, recorder *rec, fake_server **a) {
        *loop = g_main_loop_new(NULL, FALSE);
        recorder_init(rec);
        *a = fake_server_new();
}

void manager_fixture_teardown(pcpd_manager *m, GMainLoop **loop, recorder *rec, fake_server **a) {
        pcpd_manager_free(m);
        while (g_main_context_iteration(NULL, FALSE))
                ;
        g_clear_pointer(a, fake_server_free);
        recorder_clear(rec);
        g_clear_pointer(loop, g_main_loop_unref);
}
