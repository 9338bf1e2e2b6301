/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The whole reload (pcpd_reload(): SIGHUP, Manager.Reload) on a manager built with fakes
 * (fake-backend.c as its PCP backend and its UPnP-IGD fallback), its configuration
 * file and state directory in directories of the test's own, and NOTIFY_SOCKET a datagram
 * socket of the test's own, so that what the service manager is told is seen.
 *
 * Covered: a reload reads the file, applies it, and tells RELOADING=1 then READY=1; a
 * reload while pcpd stops (pcpd_manager_free() has begun and runs the loop: here from the
 * fallback's shutdown, where the real UPnP backend runs it) is refused: PCPD_ERROR_STOPPING
 * (Manager.Reload's org.freedesktop.PCP1.Error.Stopping), a reason that says pcpd is
 * stopping, nothing read or applied, nothing told to the service manager, and one log line
 * that says so (no "Reload failed", no "Configuration reloaded"); an invalid file is
 * PCPD_ERROR_INVALID_CONFIGURATION (InvalidConfiguration) instead. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "fake-backend.h"
#include "pcpd-bus.h"
#include "pcpd-manager-private.h"
#include "pcpd-manager.h"
#include "pcpd-reload.h"
#include "pcpd-state.h"
#include "unit-fixture.h"

/* ---- the log lines, as an admin would read them ---- */

static GPtrArray *log_lines; /* "<level> <message>" */

static GLogWriterOutput record_log(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data) {
        for (gsize i = 0; i < n; i++)
                if (strcmp(fields[i].key, "MESSAGE") == 0)
                        g_ptr_array_add(log_lines,
                                        g_strdup_printf("%s %s",
                                                        (level & G_LOG_LEVEL_WARNING) ? "warning" : "info",
                                                        (const char *) fields[i].value));
        return g_log_writer_default(level, fields, n, data);
}

/* the lines logged since `from`, one string */
static char *lines_since(guint from) {
        g_autoptr(GString) s = g_string_new(NULL);

        for (guint i = from; i < log_lines->len; i++)
                g_string_append_printf(s, "%s\n", (const char *) log_lines->pdata[i]);
        return g_string_free(g_steal_pointer(&s), FALSE);
}

/* ---- what a reload while stopping did: recorded in the fallback's shutdown ---- */

typedef struct during_stop {
        bool ran, stopping;
        int r;                 /* pcpd_reload()'s */
        pcpd_failure failure;  /* and why */
        guint32 default_lifetime;
        char *log;
        char *notified; /* what the service manager was told meanwhile ("" for nothing) */
} during_stop;

typedef struct fixture {
        char *state_dir, *etc_dir, *config_path;
        int notify_fd;
        GMainLoop *loop;
        pcpd_manager *m;
        during_stop stop;
} fixture;

/* every datagram on the notify socket so far, joined with "|" ("" for none) */
static char *drain_notify(int fd) {
        g_autoptr(GString) s = g_string_new(NULL);
        char buf[4096];
        ssize_t n;

        while ((n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) >= 0) {
                buf[n] = '\0';
                g_string_append_printf(s, "%s%s", s->len > 0 ? "|" : "", buf);
        }
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        return g_string_free(g_steal_pointer(&s), FALSE);
}

/* ---- the fallback's shutdown (fake-backend.h) runs while pcpd_manager_free() does,
 * where the real UPnP backend runs the loop: it reloads ---- */

static void reload_in_shutdown(fake_fallback *ff, void *userdata) {
        fixture *f = userdata;
        guint mark = log_lines->len;

        g_free(drain_notify(f->notify_fd)); /* what came before: not the reload's */
        /* recorded, asserted once pcpd_manager_free() is over (a failed assertion here
         * would leave it half done) */
        f->stop.ran = true;
        f->stop.stopping = pcpd_manager_is_stopping(f->m);
        f->stop.r = pcpd_reload(f->m, &f->stop.failure);
        f->stop.default_lifetime = f->m->config.default_lifetime;
        f->stop.log = lines_since(mark);
        f->stop.notified = drain_notify(f->notify_fd);
}

/* ---- setup ---- */

static void write_config(fixture *f, guint32 default_lifetime) {
        g_autofree char *text = g_strdup_printf("[Daemon]\nDefaultLifetime=%u\n", default_lifetime);
        g_autoptr(GError) error = NULL;

        if (!g_file_set_contents(f->config_path, text, -1, &error))
                fail_msg("%s: %s", f->config_path, error->message);
}

static int setup(void **state) {
        fixture *f = g_new0(fixture, 1);
        g_autofree char *why = NULL, *notify_path = NULL;
        g_autoptr(GError) error = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        pcpd_state *loaded = NULL;
        pcpd_config config;
        int fd = -1;

        f->state_dir = unit_make_own_dir("reload-state");
        f->etc_dir = unit_make_own_dir("reload-etc");
        f->config_path = g_build_filename(f->etc_dir, "pcpd.conf", NULL);
        f->loop = g_main_loop_new(NULL, FALSE);

        /* the service manager's end: what sd_notify() sends comes here */
        notify_path = g_build_filename(f->etc_dir, "notify", NULL);
        assert_true(strlen(notify_path) < sizeof(sa.sun_path));
        strcpy(sa.sun_path, notify_path);
        f->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(f->notify_fd >= 0);
        assert_int_equal(bind(f->notify_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(setenv("NOTIFY_SOCKET", notify_path, 1), 0);

        write_config(f, 1200);
        pcpd_reload_set_source(f->config_path, false);

        /* the defaults, as the file leaves them (the manager is never started: no
         * discovery, no ANNOUNCE listener) */
        pcpd_config_init(&config);
        if (pcpd_state_dir_open(f->state_dir, &fd, &why) < 0)
                fail_msg("state directory %s: %s", f->state_dir, why);
        if (pcpd_state_load(fd, f->state_dir, &loaded, &error) < 0)
                fail_msg("state in %s: %s", f->state_dir, error->message);
        assert_int_equal(manager_new_with_backends(&config, f->state_dir, fd, loaded, f->loop, NULL, NULL,
                                                   fake_backend_new, fake_fallback_new, &f->m),
                         0);
        pcpd_config_clear(&config);
        fake_fallback_of(f->m->upnp)->on_shutdown = reload_in_shutdown;
        fake_fallback_of(f->m->upnp)->on_shutdown_data = f;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        pcpd_manager_free(f->m);
        unsetenv("NOTIFY_SOCKET");
        close(f->notify_fd);
        g_main_loop_unref(f->loop);
        assert_int_equal(unit_rm_own_dir(f->state_dir), 0);
        assert_int_equal(unit_rm_own_dir(f->etc_dir), 0);
        g_free(f->state_dir);
        g_free(f->etc_dir);
        g_free(f->config_path);
        pcpd_failure_clear(&f->stop.failure);
        g_free(f->stop.log);
        g_free(f->stop.notified);
        g_free(f);
        return 0;
}

/* ---- tests ---- */

/* A reload while pcpd runs: the file's value applied, the service manager told
 * RELOADING=1 and then READY=1. Then pcpd stops with another value in the file, and a
 * reload meanwhile is refused: false, why, nothing read or applied, nothing told, one
 * clear line in the log. */
static void test_reload_refused_while_stopping(void **state) {
        fixture *f = *state;
        g_auto(pcpd_failure) failure = PCPD_FAILURE_NULL;
        g_autofree char *notified = NULL, *log = NULL;
        guint mark = log_lines->len;

        assert_false(pcpd_manager_is_stopping(f->m));
        assert_int_equal(pcpd_reload(f->m, &failure), 0);
        assert_int_equal(failure.error, PCPD_ERROR_NONE);
        assert_null(failure.message);
        assert_int_equal(f->m->config.default_lifetime, 1200);
        notified = drain_notify(f->notify_fd);
        if (strstr(notified, "RELOADING=1") == NULL || strstr(notified, "READY=1") == NULL ||
            strstr(notified, "RELOADING=1") > strstr(notified, "READY=1"))
                fail_msg("a reload told the service manager \"%s\", not RELOADING=1 then READY=1", notified);
        log = lines_since(mark);
        if (strstr(log, "Configuration reloaded from") == NULL)
                fail_msg("a reload logged:\n%s", log);

        /* another value, and pcpd stops: the fallback's shutdown reloads */
        write_config(f, 2400);
        f->m = pcpd_manager_free(f->m);
        assert_true(f->stop.ran);
        assert_true(f->stop.stopping);
        if (f->stop.r >= 0)
                fail_msg("a reload while pcpd stops was done (DefaultLifetime now %u); logged:\n%s",
                         f->stop.default_lifetime, f->stop.log);
        /* a refusal of its own kind: Manager.Reload answers Stopping, not InvalidConfiguration */
        assert_int_equal(f->stop.r, pcpd_error_to_errno(PCPD_ERROR_STOPPING));
        assert_int_equal(f->stop.failure.error, PCPD_ERROR_STOPPING);
        assert_string_equal(pcpd_bus_error_name(f->stop.failure.error), PCP1_ERROR_STOPPING);
        assert_non_null(f->stop.failure.message);
        if (strstr(f->stop.failure.message, "stopping") == NULL ||
            strstr(f->stop.failure.message, "nothing was changed") == NULL)
                fail_msg("the reason given: \"%s\"", f->stop.failure.message);
        assert_int_equal(f->stop.default_lifetime, 1200);
        /* nothing to the service manager: a RELOADING=1 would want a READY=1 */
        if (f->stop.notified[0] != '\0')
                fail_msg("a refused reload told the service manager \"%s\"", f->stop.notified);
        /* one line, that says why; not a failure of the configuration, not a success */
        if (strstr(f->stop.log, "stopping") == NULL ||
            strchr(f->stop.log, '\n') != f->stop.log + strlen(f->stop.log) - 1 ||
            strstr(f->stop.log, "Reload failed") != NULL || strstr(f->stop.log, "reloaded") != NULL)
                fail_msg("a refused reload logged, not one line that says pcpd stops:\n%s", f->stop.log);
}

/* An invalid file, while pcpd runs: false, the old configuration kept; the reason is the
 * file's, not "stopping" (the two refusals are told apart). */
static void test_reload_invalid_is_not_stopping(void **state) {
        fixture *f = *state;
        g_auto(pcpd_failure) failure = PCPD_FAILURE_NULL;
        g_autoptr(GError) error = NULL;

        assert_int_equal(pcpd_reload(f->m, NULL), 0);
        assert_true(g_file_set_contents(f->config_path, "[Daemon]\nDefaultLifetime=banana\n", -1, &error));
        assert_int_equal(pcpd_reload(f->m, &failure), pcpd_error_to_errno(PCPD_ERROR_INVALID_CONFIGURATION));
        assert_int_equal(failure.error, PCPD_ERROR_INVALID_CONFIGURATION);
        assert_string_equal(pcpd_bus_error_name(failure.error), PCP1_ERROR_INVALID_CONFIGURATION);
        assert_non_null(failure.message);
        if (strstr(failure.message, "stopping") != NULL || strstr(failure.message, "DefaultLifetime") == NULL ||
            !g_str_has_prefix(failure.message, "The configuration is invalid, nothing was changed: "))
                fail_msg("an invalid file's reason: \"%s\"", failure.message);
        /* without a failure to fill in: the same refusal, told by the return value alone */
        assert_int_equal(pcpd_reload(f->m, NULL), pcpd_error_to_errno(PCPD_ERROR_INVALID_CONFIGURATION));
        assert_int_equal(f->m->config.default_lifetime, 1200);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_reload_refused_while_stopping, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reload_invalid_is_not_stopping, setup, teardown),
        };
        int r;

        log_lines = g_ptr_array_new_with_free_func(g_free);
        g_log_set_writer_func(record_log, NULL, NULL);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        g_ptr_array_free(log_lines, TRUE);
        return r;
}
