/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcpd-trim: malloc_trim() (wrapped: counted, then called) once the count of changes has
 * grown by min_churn and then not moved for the quiet time; never while it moves; never
 * for fewer changes; and no wake-up asked of the loop while nothing waits.
 */

#include "config.h"

#include <glib.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pcpd-trim.h"

#if !HAVE_MALLOC_TRIM
#error "built only where malloc_trim() is (tests/unit/meson.build)"
#endif

#define QUIET_MS 50
#define MIN_CHURN 100
#define CAP_MS 10000 /* a wait for an event gives up after this (a failure) */

int __real_malloc_trim(size_t pad);
int __wrap_malloc_trim(size_t pad);
static unsigned n_trims;
static gint64 trimmed_at;

int __wrap_malloc_trim(size_t pad) {
        n_trims++;
        trimmed_at = g_get_monotonic_time();
        return __real_malloc_trim(pad);
}

static uint64_t churn;
static gint64 changed_at; /* when the count last moved (inside a dispatch, as in pcpd) */

static uint64_t read_churn(void *data) {
        (void) data;
        return churn;
}

static void change(unsigned n) {
        churn += n;
        changed_at = g_get_monotonic_time();
}

static int setup(void **state) {
        n_trims = 0;
        trimmed_at = 0;
        churn = 1000; /* not 0: the count is where the trim starts */
        changed_at = 0;
        *state = pcpd_trim_new(read_churn, NULL, QUIET_MS, MIN_CHURN);
        return 0;
}

static int teardown(void **state) {
        pcpd_trim_free(*state);
        /* nothing of the test's own left in the default context */
        while (g_main_context_iteration(NULL, FALSE))
                ;
        return 0;
}

static gboolean on_flag(gpointer data) {
        *(bool *) data = true;
        return G_SOURCE_REMOVE;
}

/* Runs the default context until n_trims reaches want; fails after CAP_MS. */
static void run_until_trims(unsigned want) {
        bool over = false;
        guint cap = g_timeout_add(CAP_MS, on_flag, &over);

        while (n_trims < want && !over)
                g_main_context_iteration(NULL, TRUE);
        if (!over)
                g_source_remove(cap);
        if (n_trims < want)
                fail_msg("%u trim(s) after %d ms, expected %u", n_trims, CAP_MS, want);
}

/* Runs the default context for ms (to see that something does not happen in that time). */
static void run_for(guint ms) {
        bool over = false;

        g_timeout_add(ms, on_flag, &over);
        while (!over)
                g_main_context_iteration(NULL, TRUE);
}

/* One turn of the default context without sleeping; the poll timeout it would have slept
 * with (-1: none: no wake-up asked for). */
static gint turn_timeout(void) {
        GMainContext *ctx = g_main_context_default();
        GPollFD fds[16];
        gint prio, timeout, n;

        assert_true(g_main_context_acquire(ctx));
        g_main_context_prepare(ctx, &prio);
        n = g_main_context_query(ctx, prio, &timeout, fds, G_N_ELEMENTS(fds));
        assert_in_range(n, 0, G_N_ELEMENTS(fds));
        if (g_main_context_check(ctx, prio, fds, n))
                g_main_context_dispatch(ctx);
        g_main_context_release(ctx);
        return timeout;
}

static gboolean on_change_min(gpointer data) {
        (void) data;
        change(MIN_CHURN);
        return G_SOURCE_REMOVE;
}

/* MIN_CHURN changes, then quiet: one trim, QUIET_MS or more after the last change; then no
 * other, and no wake-up asked for. */
static void test_trim_after_quiet(void **state) {
        pcpd_trim *t = *state;

        g_timeout_add(1, on_change_min, NULL);
        run_until_trims(1);
        assert_true(trimmed_at - changed_at >= (gint64) QUIET_MS * 1000);
        assert_int_equal(pcpd_trim_done(t), 1);
        run_for(4 * QUIET_MS);
        assert_int_equal(n_trims, 1);
        assert_int_equal(turn_timeout(), -1);
}

typedef struct churner {
        unsigned left;
        unsigned trims_seen; /* n_trims at any tick */
} churner;

static gboolean on_churn_tick(gpointer data) {
        churner *c = data;

        c->trims_seen += n_trims;
        change(MIN_CHURN / 4);
        return --c->left > 0 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* Changes every QUIET_MS / 5 for 5 quiet times (MIN_CHURN passed after 4 ticks): no trim
 * while they come; one once they stop, QUIET_MS after the last. */
static void test_not_while_churning(void **state) {
        pcpd_trim *t = *state;
        churner c = { .left = 25 };

        g_timeout_add(QUIET_MS / 5, on_churn_tick, &c);
        while (c.left > 0)
                g_main_context_iteration(NULL, TRUE);
        assert_int_equal(c.trims_seen, 0);
        assert_int_equal(n_trims, 0);
        run_until_trims(1);
        assert_true(trimmed_at - changed_at >= (gint64) QUIET_MS * 1000);
        assert_int_equal(pcpd_trim_done(t), 1);
}

static gboolean on_change_one_less(gpointer data) {
        (void) data;
        change(MIN_CHURN - 1);
        return G_SOURCE_REMOVE;
}

static gboolean on_change_one(gpointer data) {
        (void) data;
        change(1);
        return G_SOURCE_REMOVE;
}

/* Fewer than MIN_CHURN changes: no wake-up asked for, no trim after several quiet times;
 * they count with the next ones: one more change, and the trim comes after the quiet. */
static void test_few_changes_wait(void **state) {
        gint timeout;

        (void) state;
        g_idle_add(on_change_one_less, NULL);
        assert_int_equal(turn_timeout(), 0); /* the idle source's */
        assert_int_equal(churn, 1000 + MIN_CHURN - 1);
        assert_int_equal(turn_timeout(), -1);
        run_for(3 * QUIET_MS);
        assert_int_equal(n_trims, 0);
        assert_int_equal(turn_timeout(), -1);
        g_idle_add(on_change_one, NULL);
        (void) turn_timeout();
        timeout = turn_timeout(); /* now the trim's quiet wait */
        assert_in_range(timeout, 1, QUIET_MS);
        run_until_trims(1);
        assert_true(trimmed_at - changed_at >= (gint64) QUIET_MS * 1000);
}

/* Nothing changed: no wake-up asked for, no trim. */
static void test_idle_nothing(void **state) {
        pcpd_trim *t = *state;

        assert_int_equal(turn_timeout(), -1);
        run_for(3 * QUIET_MS);
        assert_int_equal(turn_timeout(), -1);
        assert_int_equal(n_trims, 0);
        assert_int_equal(pcpd_trim_done(t), 0);
}

/* A second burst after a trim: a second trim, once it is quiet again. */
static void test_again_after_more(void **state) {
        pcpd_trim *t = *state;

        g_timeout_add(1, on_change_min, NULL);
        run_until_trims(1);
        g_timeout_add(1, on_change_min, NULL);
        run_until_trims(2);
        assert_true(trimmed_at - changed_at >= (gint64) QUIET_MS * 1000);
        assert_int_equal(pcpd_trim_done(t), 2);
        assert_int_equal(turn_timeout(), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_trim_after_quiet, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_while_churning, setup, teardown),
                cmocka_unit_test_setup_teardown(test_few_changes_wait, setup, teardown),
                cmocka_unit_test_setup_teardown(test_idle_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_again_after_more, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
