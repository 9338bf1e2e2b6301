/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcpd-pace: batches of at most batch_max, one a turn of the loop; none while the backlog
 * is high, resumed once it is low; after max_waits looks in a row that found it high,
 * either one batch anyway (slow_ms 0) or slower looks and still none (slow_ms > 0); a stop
 * drops the rest and leaves nothing on the context; armed again after it drained; no
 * wake-up asked while nothing waits. A fake backlog and a fake queue of work, the default
 * main context turned by hand.
 */

#include <glib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pcpd-pace.h"

#define BATCH 16u
#define WAITS 5u
#define RETRY_MS 1u
#define SLOW_MS 100u
/* turns of the loop a test runs at most while it waits for an event (a cap against hangs,
 * reported) */
#define TURNS_CAP 10000u

typedef struct fixture {
        pcpd_pace pace;
        pcpd_pace_ops ops;
        guint source; /* the owner's field the pace keeps its source's id in */
        bool high;    /* the fake backlog */
        guint left;   /* the fake queue: items still waiting */
        guint looks;  /* backed_up() calls */
        guint steps, done_calls;
        guint largest; /* the largest batch a step did */
        guint stop_after; /* a step stops early (PCPD_PACE_BACKED_UP) after this many items, when not 0 */
        guint add_in_step; /* the next step adds this many and kicks the pace from within */
} fixture;

static bool fake_backed_up(void *data) {
        fixture *f = data;

        f->looks++;
        return f->high;
}

static pcpd_pace_result fake_step(void *data, guint max) {
        fixture *f = data;
        guint n = MIN(max, f->left);

        f->steps++;
        if (f->add_in_step > 0) {
                guint armed = f->source;

                f->left += f->add_in_step;
                f->add_in_step = 0;
                pcpd_pace_kick(&f->pace);
                /* no second source: the one running stays the pace's */
                assert_int_not_equal(armed, 0);
                assert_int_equal(f->source, armed);
        }
        if (f->stop_after > 0 && n > f->stop_after) {
                f->left -= f->stop_after;
                f->largest = MAX(f->largest, f->stop_after);
                return PCPD_PACE_BACKED_UP;
        }
        f->left -= n;
        f->largest = MAX(f->largest, n);
        return f->left > 0 ? PCPD_PACE_MORE : PCPD_PACE_DONE;
}

static void fake_done(void *data) {
        fixture *f = data;

        f->done_calls++;
        assert_int_equal(f->source, 0); /* the source is gone before */
        assert_int_equal(f->left, 0);
}

static fixture *fixture_new(guint slow_ms) {
        fixture *f = g_new0(fixture, 1);

        f->ops = (pcpd_pace_ops) {
                .step = fake_step,
                .backed_up = fake_backed_up,
                .done = fake_done,
                .batch_max = BATCH,
                .retry_ms = RETRY_MS,
                .max_waits = WAITS,
                .slow_ms = slow_ms,
        };
        pcpd_pace_init(&f->pace, &f->ops, f, &f->source);
        return f;
}

static int setup(void **state) {
        *state = fixture_new(0);
        return 0;
}

static int setup_slow(void **state) {
        *state = fixture_new(SLOW_MS);
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        pcpd_pace_stop(&f->pace);
        while (g_main_context_iteration(NULL, FALSE))
                ;
        g_free(f);
        return 0;
}

/* One turn of the loop (blocking while a timeout is armed: the pace's retry); the poll
 * timeout it asked for is returned (-1: no wake-up asked). */
static gint turn(void) {
        GMainContext *ctx = g_main_context_default();
        GPollFD fds[16];
        gint prio, timeout, n;

        assert_true(g_main_context_acquire(ctx));
        g_main_context_prepare(ctx, &prio);
        n = g_main_context_query(ctx, prio, &timeout, fds, G_N_ELEMENTS(fds));
        assert_in_range(n, 0, G_N_ELEMENTS(fds));
        /* (no poll without a timeout: nothing else is on this context to wake it) */
        if (timeout > 0)
                (void) g_poll(fds, (guint) n, timeout);
        if (g_main_context_check(ctx, prio, fds, n))
                g_main_context_dispatch(ctx);
        g_main_context_release(ctx);
        return timeout;
}

/* nothing on the default context asks for a wake-up or is ready: an idle pcpd */
static void assert_idle(const fixture *f) {
        assert_int_equal(f->source, 0);
        assert_false(pcpd_pace_armed(&f->pace));
        assert_false(g_main_context_pending(NULL));
        assert_int_equal(turn(), -1);
}

/* turns until the queue is empty and the pace disarmed; each turn does one step at most, of
 * BATCH at most; returns the turns that did a step */
static guint turn_until_drained(fixture *f) {
        guint turns = 0, stepped = 0;

        while (f->source != 0) {
                guint steps = f->steps;

                if (++turns > TURNS_CAP)
                        fail_msg("%u still wait after %u turns (%u steps)", f->left, turns, f->steps);
                (void) turn();
                assert_in_range(f->steps - steps, 0, 1);
                stepped += f->steps - steps;
        }
        assert_int_equal(f->left, 0);
        assert_in_range(f->largest, 1, BATCH);
        return stepped;
}

/* turns until backed_up() was called `looks` times in all (the pace armed throughout) */
static void turn_until_looks(fixture *f, guint looks) {
        for (guint turns = 0; f->looks < looks; turns++) {
                if (turns > TURNS_CAP)
                        fail_msg("%u looks of %u after %u turns", f->looks, looks, turns);
                assert_true(pcpd_pace_armed(&f->pace));
                (void) turn();
        }
        assert_int_equal(f->looks, looks);
}

/* the armed source's ready time (its timeout's end; -1 for an idle source) */
static gint64 armed_ready_time(const fixture *f) {
        GSource *s = g_main_context_find_source_by_id(NULL, f->source);

        assert_non_null(s);
        return g_source_get_ready_time(s);
}

/* Low backlog: 10.5 x BATCH items in 11 batches, BATCH at most each, one a turn, one look
 * before each, nothing done in the kick itself; then done once, and nothing armed. */
static void test_batches(void **state) {
        fixture *f = *state;
        const guint n = 10 * BATCH + BATCH / 2;

        assert_idle(f);
        f->left = n;
        pcpd_pace_kick(&f->pace);
        assert_true(pcpd_pace_armed(&f->pace));
        assert_int_equal(f->steps, 0);
        assert_int_equal(f->looks, 0);
        assert_int_equal(turn_until_drained(f), 11);
        assert_int_equal(f->steps, 11);
        assert_int_equal(f->largest, BATCH);
        assert_int_equal(f->looks, 11);
        assert_int_equal(f->done_calls, 1);
        assert_idle(f);
}

/* High backlog: looks (one a turn, RETRY_MS apart) and no batch, fewer than WAITS of them;
 * low again: the batches resume and drain. */
static void test_waits_while_high(void **state) {
        fixture *f = *state;

        f->left = 3 * BATCH;
        f->high = true;
        pcpd_pace_kick(&f->pace);
        turn_until_looks(f, WAITS - 1);
        assert_int_equal(f->steps, 0);
        assert_int_equal(f->left, 3 * BATCH);
        assert_int_equal(f->pace.waits, WAITS - 1);
        /* waiting on a timeout of RETRY_MS (not an idle source: no busy loop) */
        assert_true(armed_ready_time(f) > 0);
        assert_true(armed_ready_time(f) <= g_get_monotonic_time() + RETRY_MS * 1000);

        f->high = false;
        assert_int_equal(turn_until_drained(f), 3);
        assert_int_equal(f->pace.waits, 0);
        assert_int_equal(f->done_calls, 1);
        assert_idle(f);
}

/* A step that finds the backlog high itself (stops early): it counts as a look that found
 * it high; the rest comes later, each item once. */
static void test_step_stops_early(void **state) {
        fixture *f = *state;

        f->left = 2 * BATCH;
        f->stop_after = BATCH / 4;
        pcpd_pace_kick(&f->pace);
        (void) turn();
        assert_int_equal(f->steps, 1);
        assert_int_equal(f->left, 2 * BATCH - BATCH / 4);
        assert_int_equal(f->pace.waits, 1);
        assert_true(armed_ready_time(f) > 0); /* a retry timeout */
        f->stop_after = 0;
        (void) turn_until_drained(f);
        assert_int_equal(f->pace.waits, 0);
        assert_idle(f);
}

/* slow_ms > 0, and every step stops part-way (the restore's InterfacesAdded filling the
 * backlog): each is progress, so the looks in a row never reach WAITS and the next look is
 * always RETRY_MS away, never SLOW_MS; all is done, each item once. (Counted as looks that
 * found it high, the steps after the WAITS-th came SLOW_MS apart.) */
static void test_partial_steps_not_slowed(void **state) {
        fixture *f = *state;
        const guint n = 3 * WAITS * (BATCH / 4);
        guint partial = 0;

        f->left = n;
        f->stop_after = BATCH / 4;
        pcpd_pace_kick(&f->pace);
        while (f->left > BATCH) {
                guint steps = f->steps;

                if (steps > n)
                        fail_msg("%u still wait after %u steps", f->left, steps);
                (void) turn();
                if (f->steps == steps)
                        continue;
                partial++;
                assert_int_equal(f->pace.waits, 1);
                /* the retry timeout, not the slow one */
                assert_true(armed_ready_time(f) <= g_get_monotonic_time() + RETRY_MS * 1000);
        }
        assert_true(partial >= 2 * WAITS);
        assert_int_equal(f->looks, f->steps); /* one look before each step, none wasted */
        f->stop_after = 0;
        (void) turn_until_drained(f);
        assert_int_equal(f->done_calls, 1);
        assert_idle(f);
}

/* slow_ms 0: after WAITS looks in a row found it high, the next batch goes without a look;
 * the one after looks again (and waits again). */
static void test_backoff_goes_anyway(void **state) {
        fixture *f = *state;

        f->left = 3 * BATCH;
        f->high = true;
        pcpd_pace_kick(&f->pace);
        turn_until_looks(f, WAITS);
        assert_int_equal(f->steps, 0);
        (void) turn();
        assert_int_equal(f->steps, 1); /* the backlog still high */
        assert_int_equal(f->looks, WAITS);
        assert_int_equal(f->left, 2 * BATCH);
        assert_int_equal(f->pace.waits, 0);
        /* and again: WAITS looks, one batch */
        turn_until_looks(f, 2 * WAITS);
        assert_int_equal(f->steps, 1);
        (void) turn();
        assert_int_equal(f->steps, 2);
        assert_int_equal(f->left, BATCH);
        pcpd_pace_stop(&f->pace);
        assert_idle(f);
}

/* slow_ms > 0: after WAITS looks in a row found it high, the next looks come SLOW_MS apart
 * and no batch goes while it is high; the owner's own look (pcpd_pace_wait()) counts. */
static void test_backoff_slower(void **state) {
        fixture *f = *state;
        gint64 before;

        f->left = 2 * BATCH;
        f->high = true;
        pcpd_pace_wait(&f->pace); /* the owner found it high */
        assert_int_equal(f->pace.waits, 1);
        assert_true(armed_ready_time(f) <= g_get_monotonic_time() + RETRY_MS * 1000);
        turn_until_looks(f, WAITS - 2);
        assert_int_equal(f->pace.waits, WAITS - 1);
        assert_true(armed_ready_time(f) <= g_get_monotonic_time() + RETRY_MS * 1000);
        before = g_get_monotonic_time();
        turn_until_looks(f, WAITS - 1); /* the WAITS-th in a row */
        assert_int_equal(f->pace.waits, WAITS);
        assert_true(armed_ready_time(f) >= before + (gint64) SLOW_MS * 1000);
        before = g_get_monotonic_time();
        turn_until_looks(f, WAITS + 1);
        assert_true(armed_ready_time(f) >= before + (gint64) SLOW_MS * 1000);
        assert_int_equal(f->steps, 0);
        assert_int_equal(f->left, 2 * BATCH);

        f->high = false;
        assert_int_equal(turn_until_drained(f), 2);
        assert_int_equal(f->pace.waits, 0);
        assert_idle(f);
}

/* A stop drops the rest: no step after it, no source left on the context (waiting for a
 * batch, or for the backlog), no done; a kick after it starts over. */
static void test_stop_drops(void **state) {
        fixture *f = *state;
        guint id;

        f->left = 10 * BATCH;
        pcpd_pace_kick(&f->pace);
        (void) turn();
        (void) turn();
        assert_int_equal(f->steps, 2);
        id = f->source;
        assert_int_not_equal(id, 0);
        pcpd_pace_stop(&f->pace);
        assert_null(g_main_context_find_source_by_id(NULL, id));
        assert_idle(f);
        assert_int_equal(f->steps, 2);
        assert_int_equal(f->left, 8 * BATCH);
        assert_int_equal(f->done_calls, 0);

        /* while it waits for the backlog: the retry timeout goes, and the count of looks */
        f->high = true;
        pcpd_pace_kick(&f->pace);
        turn_until_looks(f, 3);
        id = f->source;
        assert_true(armed_ready_time(f) > 0);
        pcpd_pace_stop(&f->pace);
        assert_null(g_main_context_find_source_by_id(NULL, id));
        assert_int_equal(f->pace.waits, 0);
        assert_idle(f);
        assert_int_equal(f->steps, 2);
}

/* Drained, then more work: armed again by a kick, drained again (done again). Work added
 * during a step (with a kick from within) rides on the same source. */
static void test_rearm_after_drain(void **state) {
        fixture *f = *state;

        f->left = BATCH + 1;
        pcpd_pace_kick(&f->pace);
        assert_int_equal(turn_until_drained(f), 2);
        assert_int_equal(f->done_calls, 1);
        assert_idle(f);

        f->left = 1;
        pcpd_pace_kick(&f->pace);
        assert_int_equal(turn_until_drained(f), 1);
        assert_int_equal(f->done_calls, 2);
        assert_idle(f);

        f->left = 1;
        f->add_in_step = 2 * BATCH;
        pcpd_pace_kick(&f->pace);
        assert_int_equal(turn_until_drained(f), 3);
        assert_int_equal(f->done_calls, 3);
        assert_idle(f);
}

/* done may free the pace (the restore's frees its object): nothing touches it after */
static unsigned freed_in_done;

static void free_in_done(void *data) {
        freed_in_done++;
        g_free(data);
}

static void test_done_may_free(void **state) {
        fixture *f = *state;
        fixture *g = fixture_new(0);

        (void) f;
        g->ops.done = free_in_done;
        g->left = BATCH + 1;
        pcpd_pace_kick(&g->pace);
        for (guint turns = 0; freed_in_done == 0; turns++) {
                if (turns > TURNS_CAP)
                        fail_msg("not drained after %u turns", turns);
                (void) turn();
        }
        assert_int_equal(freed_in_done, 1);
        assert_false(g_main_context_pending(NULL));
        assert_int_equal(turn(), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
                cmocka_unit_test_setup_teardown(test_waits_while_high, setup, teardown),
                cmocka_unit_test_setup_teardown(test_step_stops_early, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backoff_goes_anyway, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backoff_slower, setup_slow, teardown),
                cmocka_unit_test_setup_teardown(test_partial_steps_not_slowed, setup_slow, teardown),
                cmocka_unit_test_setup_teardown(test_stop_drops, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rearm_after_drain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_done_may_free, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
