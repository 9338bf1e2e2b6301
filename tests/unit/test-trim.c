/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcpd-trim: malloc_trim() (wrapped: counted, then called) once the count of changes has
 * grown by min_churn and then not moved for the quiet time; never while it moves; never
 * for fewer changes; and no wake-up asked of the loop while nothing waits. The trim's clock
 * is the test's own (pcpd_trim_set_clock()): the tests move it and turn the loop without
 * blocking, so that no figure depends on how fast this machine is.
 *
 * And what pcpd counts as churn (pcpd_manager_mapping_news()): every mapping news the manager
 * tells, the grants of the mappings a restore asks for again among them (the manager
 * without a bus, manager-fixture.c: the recording listener, a fake PCP server on the
 * loopback).
 */

#include "config.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "pcp1-contract.h"
#include "pcpd-manager.h"
#include "pcpd-servers.h"
#include "pcpd-trim.h"
#include "manager-fixture.h"
#include "unit-fixture.h"

#if !HAVE_MALLOC_TRIM
#error "built only where malloc_trim() is (tests/unit/meson.build)"
#endif

#define QUIET_MS 50
#define MIN_CHURN 100

/* ---- the test's clock ---- */

static gint64 fake_now;       /* µs */
static unsigned clock_reads;  /* the trim's reads of it */

static gint64 read_clock(void *data) {
        assert_ptr_equal(data, &fake_now);
        clock_reads++;
        return fake_now;
}

int __real_malloc_trim(size_t pad);
int __wrap_malloc_trim(size_t pad);
static unsigned n_trims;
static gint64 trimmed_at; /* the test's clock */

int __wrap_malloc_trim(size_t pad) {
        n_trims++;
        trimmed_at = fake_now;
        return __real_malloc_trim(pad);
}

/* Turns of the default context without blocking, until one dispatches nothing. */
static void turn_all(void) {
        unsigned turns = 0;

        while (g_main_context_iteration(NULL, FALSE))
                if (++turns > 1000)
                        fail_msg("the default context still dispatches after %u turns", turns);
}

/* The test's clock moves by ms; then the loop turns (what is due runs). */
static void advance(unsigned ms) {
        fake_now += (gint64) ms * 1000;
        turn_all();
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

/* ---- the trim over a count of the test's own ---- */

static uint64_t churn;
static gint64 changed_at; /* the test's clock when the count last moved */

static uint64_t read_churn(void *data) {
        (void) data;
        return churn;
}

/* n changes now, and a turn of the loop that sees them (in pcpd a change is made in a
 * dispatch, and the next turn's prepare() reads it) */
static void change(unsigned n) {
        churn += n;
        changed_at = fake_now;
        turn_all();
}

static int setup(void **state) {
        pcpd_trim *t;

        n_trims = 0;
        trimmed_at = 0;
        fake_now = 1000 * G_USEC_PER_SEC; /* not 0: any time is a start */
        clock_reads = 0;
        churn = 1000; /* not 0: the count is where the trim starts */
        changed_at = 0;
        t = pcpd_trim_new(read_churn, NULL, QUIET_MS, MIN_CHURN);
        pcpd_trim_set_clock(t, read_clock, &fake_now);
        *state = t;
        return 0;
}

static int teardown(void **state) {
        pcpd_trim_free(*state);
        /* nothing of the test's own left in the default context */
        turn_all();
        return 0;
}

/* MIN_CHURN changes, then quiet: the loop is asked to wake up once the quiet time is over,
 * and the trim comes then, not a µs before; then no other, and no wake-up asked for. */
static void test_trim_after_quiet(void **state) {
        pcpd_trim *t = *state;

        change(MIN_CHURN);
        assert_int_equal(turn_timeout(), QUIET_MS);
        advance(QUIET_MS - 1);
        assert_int_equal(n_trims, 0);
        assert_int_equal(turn_timeout(), 1);
        advance(1);
        assert_int_equal(n_trims, 1);
        assert_int_equal(trimmed_at - changed_at, (gint64) QUIET_MS * 1000);
        assert_int_equal(pcpd_trim_done(t), 1);
        advance(4 * QUIET_MS);
        assert_int_equal(n_trims, 1);
        assert_int_equal(turn_timeout(), -1);
}

/* Changes every QUIET_MS / 5 for 5 quiet times (MIN_CHURN passed after 4 of them): no trim
 * while they come, each starting the quiet wait again; one once they stop, QUIET_MS after
 * the last. */
static void test_not_while_churning(void **state) {
        pcpd_trim *t = *state;

        for (unsigned k = 0; k < 25; k++) {
                change(MIN_CHURN / 4);
                if (k >= 3)
                        assert_int_equal(turn_timeout(), QUIET_MS); /* waiting, from this change */
                advance(QUIET_MS / 5);
                assert_int_equal(n_trims, 0);
        }
        advance(QUIET_MS - QUIET_MS / 5 - 1);
        assert_int_equal(n_trims, 0);
        advance(1);
        assert_int_equal(n_trims, 1);
        assert_int_equal(trimmed_at - changed_at, (gint64) QUIET_MS * 1000);
        assert_int_equal(pcpd_trim_done(t), 1);
}

/* Fewer than MIN_CHURN changes: no wake-up asked for, no trim after several quiet times;
 * they count with the next ones: one more change, and the trim comes after the quiet. */
static void test_few_changes_wait(void **state) {
        (void) state;
        change(MIN_CHURN - 1);
        assert_int_equal(turn_timeout(), -1);
        advance(3 * QUIET_MS);
        assert_int_equal(n_trims, 0);
        assert_int_equal(turn_timeout(), -1);
        change(1);
        assert_int_equal(turn_timeout(), QUIET_MS); /* now the trim's quiet wait */
        advance(QUIET_MS);
        assert_int_equal(n_trims, 1);
        assert_int_equal(trimmed_at - changed_at, (gint64) QUIET_MS * 1000);
}

/* Nothing changed: no wake-up asked for, no trim, and not one read of the clock. */
static void test_idle_nothing(void **state) {
        pcpd_trim *t = *state;

        assert_int_equal(turn_timeout(), -1);
        advance(3 * QUIET_MS);
        assert_int_equal(turn_timeout(), -1);
        assert_int_equal(n_trims, 0);
        assert_int_equal(pcpd_trim_done(t), 0);
        assert_int_equal(clock_reads, 0);
}

/* A second burst after a trim: a second trim, once it is quiet again. */
static void test_again_after_more(void **state) {
        pcpd_trim *t = *state;

        change(MIN_CHURN);
        advance(QUIET_MS);
        assert_int_equal(n_trims, 1);
        change(MIN_CHURN);
        advance(QUIET_MS - 1);
        assert_int_equal(n_trims, 1);
        advance(1);
        assert_int_equal(n_trims, 2);
        assert_int_equal(trimmed_at - changed_at, (gint64) QUIET_MS * 1000);
        assert_int_equal(pcpd_trim_done(t), 2);
        assert_int_equal(turn_timeout(), -1);
}

/* ---- the default clock: the loop's own ---- */

static gboolean on_flag(gpointer data) {
        *(bool *) data = true;
        return G_SOURCE_REMOVE;
}

#define CAP_MS 10000 /* a wait for the trim gives up after this (a failure) */

/* Without the test's clock the quiet wait is on the loop's time: the trim comes, not
 * before the quiet time is over (no upper bound asserted: this one waits on the machine). */
static void test_loop_clock(void **state) {
        pcpd_trim *t = *state;
        bool over = false;
        gint64 start;
        guint cap;

        pcpd_trim_set_clock(t, NULL, NULL);
        churn += MIN_CHURN;
        start = g_get_monotonic_time();
        cap = g_timeout_add(CAP_MS, on_flag, &over);
        while (n_trims < 1 && !over)
                g_main_context_iteration(NULL, TRUE);
        if (!over)
                g_source_remove(cap);
        if (n_trims < 1)
                fail_msg("no trim after %d ms of quiet on the loop's clock", CAP_MS);
        assert_true(g_get_monotonic_time() - start >= (gint64) QUIET_MS * 1000);
        assert_int_equal(clock_reads, 0);
        assert_int_equal(pcpd_trim_done(t), 1);
}

/* ---- what pcpd counts: the manager's news, a restore's grants too ---- */

#define N_RESTORED MIN_CHURN /* just enough: every grant has to count */
#define FIRST_PORT 23000u
#define OWNER ":1.80"

typedef struct mfixture {
        char *dir;
        GMainLoop *loop;
        recorder rec;
        fake_server *srv;
        pcpd_manager *m;
        uint64_t ids[N_RESTORED];
} mfixture;

static pcpd_manager *manager_new(mfixture *f) {
        pcpd_config config;
        pcpd_manager *m;

        fake_server_config(&config, f->srv, 2 * N_RESTORED);
        m = unit_manager_new(&config, f->dir, f->loop, &recording, &f->rec);
        pcpd_config_clear(&config);
        f->rec.expect_m = m;
        return m;
}

static int msetup(void **state) {
        mfixture *f = g_new0(mfixture, 1);

        f->dir = unit_make_own_dir("trim");
        f->loop = g_main_loop_new(NULL, FALSE);
        recorder_init(&f->rec);
        f->srv = fake_server_new();
        f->m = manager_new(f);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        n_trims = 0;
        fake_now = 1000 * G_USEC_PER_SEC;
        clock_reads = 0;
        *state = f;
        return 0;
}

static int mteardown(void **state) {
        mfixture *f = *state;

        pcpd_manager_free(f->m);
        turn_all();
        fake_server_free(f->srv);
        recorder_clear(&f->rec);
        g_main_loop_unref(f->loop);
        assert_int_equal(unit_rm_own_dir(f->dir), 0);
        g_free(f->dir);
        g_free(f);
        return 0;
}

static bool is_active(void *ctx, const void *arg) {
        const pcpd_mapping *mp = arg;

        (void) ctx;
        return g_strcmp0(mp->state, PCP1_MAPPING_ACTIVE) == 0;
}

/* every one of f->ids in the manager, active (granted) */
static bool all_active(void *ctx, const void *arg) {
        mfixture *f = ctx;

        (void) arg;
        for (unsigned k = 0; k < N_RESTORED; k++) {
                const pcpd_mapping *mp = pcpd_manager_mapping(f->m, f->ids[k]);
                if (mp == NULL || !is_active(NULL, mp))
                        return false;
        }
        return true;
}

/* The count pcpd's trim reads is the manager's news: one for each mapping_added,
 * mapping_changed (the grant too) and mapping_removed told, as many as the listener was
 * told; nothing for a change of nothing. */
static void test_mapping_churn_counts_news(void **state) {
        mfixture *f = *state;
        uint64_t c0 = pcpd_manager_mapping_news(f->m);
        guint e0 = f->rec.events->len;
        pcpd_mapping_request req = manager_request(17, 5003, OWNER);
        pcpd_mapping *mp = manager_add(f->m, &req);
        uint64_t id = mp->id;

        assert_int_equal(pcpd_manager_mapping_news(f->m) - c0, 1); /* added */
        wait_for(f, is_active, mp, "the mapping granted");
        assert_true(count_events(&f->rec, EV_CHANGED, id) >= 1);
        assert_int_equal(pcpd_manager_mapping_news(f->m) - c0, f->rec.events->len - e0);
        pcpd_manager_release(f->m, mp, OWNER, PCPD_REMOVED_RELEASED);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, id), 1);
        assert_int_equal(pcpd_manager_mapping_news(f->m) - c0, f->rec.events->len - e0);
        assert_true(pcpd_manager_mapping_news(f->m) - c0 >= 3);
        c0 = pcpd_manager_mapping_news(f->m);
        pcpd_manager_emit_mapping_changed(f->m, NULL, 0);
        assert_int_equal(pcpd_manager_mapping_news(f->m), c0);
}

/* A restart over N_RESTORED (= MIN_CHURN) saved mappings: the trim made after the restore,
 * as in main.c, counts the grants of the mappings asked for again, though they change no id
 * and no count of mappings, and trims once they are quiet (and not before). */
static void test_restore_grants_trim(void **state) {
        mfixture *f = *state;
        g_autoptr(pcpd_trim) t = NULL;
        uint64_t c0;

        for (unsigned k = 0; k < N_RESTORED; k++) {
                pcpd_mapping_request req = manager_request(17, (uint16_t) (FIRST_PORT + k), OWNER);
                f->ids[k] = manager_add(f->m, &req)->id;
        }
        wait_for(f, all_active, NULL, "the mappings granted before the restart");
        f->m = pcpd_manager_free(f->m);
        turn_all();
        f->m = manager_new(f);
        assert_int_equal(pcpd_manager_start(f->m), 0); /* the restore (and its own trim) */
        assert_int_equal(pcpd_manager_n_mappings(f->m), N_RESTORED);
        assert_false(all_active(f, NULL)); /* asked for again, not granted yet */
        n_trims = 0;
        t = pcpd_trim_new(pcpd_manager_mapping_news, f->m, QUIET_MS, MIN_CHURN);
        pcpd_trim_set_clock(t, read_clock, &fake_now);
        c0 = pcpd_manager_mapping_news(f->m);
        /* the loop runs, the test's clock does not move: the grants come, no trim yet */
        wait_for(f, all_active, NULL, "the restored mappings granted again");
        turn_all();
        assert_true(pcpd_manager_mapping_news(f->m) - c0 >= N_RESTORED);
        assert_int_equal(n_trims, 0);
        assert_int_equal(turn_timeout(), QUIET_MS);
        advance(QUIET_MS - 1);
        assert_int_equal(n_trims, 0);
        advance(1);
        assert_int_equal(n_trims, 1);
        assert_int_equal(pcpd_trim_done(t), 1);
        advance(4 * QUIET_MS);
        assert_int_equal(n_trims, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_trim_after_quiet, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_while_churning, setup, teardown),
                cmocka_unit_test_setup_teardown(test_few_changes_wait, setup, teardown),
                cmocka_unit_test_setup_teardown(test_idle_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_again_after_more, setup, teardown),
                cmocka_unit_test_setup_teardown(test_loop_clock, setup, teardown),
                cmocka_unit_test_setup_teardown(test_mapping_churn_counts_news, msetup, mteardown),
                cmocka_unit_test_setup_teardown(test_restore_grants_trim, msetup, mteardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
