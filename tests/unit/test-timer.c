/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcpd-timer: the engine's deadline timer. Each test runs a main context of its own whose
 * poll function is the test's: it counts the polls, records the timeout the loop asked for
 * and whether a poll came back with GLib's wake-up eventfd readable (the only descriptor
 * in these contexts: a readable one is a wake-up someone wrote). In "peek" mode it polls
 * with timeout 0 whatever was asked, so a test can see what the loop would have slept for
 * without sleeping. Nothing here measures time: where a deadline has to pass, the test
 * waits for it (a real poll) and counts iterations. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pcpd-timer.h"

#define HOUR_US ((gint64) 3600 * G_USEC_PER_SEC)

/* ---- the loop, watched ---- */

static struct {
        bool peek;          /* poll with timeout 0, record what was asked */
        unsigned polls;     /* polls since the counters were reset */
        unsigned woken;     /* polls that returned with the wake-up fd readable */
        gint last_timeout;  /* what the loop asked for last */
        gint max_timeout;   /* the largest asked since the reset (-1 is infinite: kept as G_MAXINT) */
        void (*on_poll)(void); /* called before each poll, once (then cleared) */
} w;

static gint watched_poll(GPollFD *fds, guint nfds, gint timeout) {
        gint r;

        w.polls++;
        w.last_timeout = timeout;
        w.max_timeout = MAX(w.max_timeout, timeout < 0 ? G_MAXINT : timeout);
        if (w.on_poll != NULL) {
                void (*f)(void) = w.on_poll;
                w.on_poll = NULL;
                f();
        }
        r = g_poll(fds, nfds, w.peek ? 0 : timeout);
        if (r > 0)
                w.woken++;
        return r;
}

static void watch_reset(void) {
        w.polls = w.woken = 0;
        w.last_timeout = w.max_timeout = -2;
}

static GMainContext *context_new(void) {
        GMainContext *ctx = g_main_context_new();

        g_main_context_set_poll_func(ctx, watched_poll);
        memset(&w, 0, sizeof(w));
        watch_reset();
        return ctx;
}

/* one turn of the loop that may not sleep: what it asked for is in w.last_timeout */
static gboolean peek(GMainContext *ctx) {
        gboolean r;

        w.peek = true;
        r = g_main_context_iteration(ctx, TRUE);
        w.peek = false;
        return r;
}

/* ---- a timer's firings, and a sentinel timeout ---- */

typedef struct fired {
        unsigned n;
        gint64 at;            /* g_get_monotonic_time() in the callback */
        gint64 deadline_then; /* pcpd_timer_get_deadline() in the callback */
        pcpd_timer *t;
        gint64 rearm;         /* >= 0: the callback re-arms there */
        bool free_self;
} fired;

static void on_fire(void *userdata) {
        fired *f = userdata;

        f->n++;
        f->at = g_get_monotonic_time();
        f->deadline_then = pcpd_timer_get_deadline(f->t);
        if (f->rearm >= 0) {
                pcpd_timer_set_deadline(f->t, f->rearm);
                f->rearm = -1;
        }
        if (f->free_self)
                f->t = pcpd_timer_free(f->t);
}

static gboolean set_flag(gpointer data) {
        *(bool *) data = true;
        return G_SOURCE_REMOVE;
}

/* a timeout on ctx (GLib's own) that sets *flag after ms */
static void sentinel(GMainContext *ctx, guint ms, bool *flag) {
        GSource *s = g_timeout_source_new(ms);

        g_source_set_callback(s, set_flag, flag, NULL);
        g_source_attach(s, ctx);
        g_source_unref(s);
}

/* runs the loop (sleeping) until *cond or cap iterations; returns the iterations */
static unsigned run_until(GMainContext *ctx, const bool *cond, unsigned cap) {
        unsigned i;

        for (i = 0; i < cap && !*cond; i++)
                g_main_context_iteration(ctx, TRUE);
        return i;
}

static unsigned run_until_fired(GMainContext *ctx, fired *f, unsigned n, unsigned cap) {
        unsigned i;

        for (i = 0; i < cap && f->n < n; i++)
                g_main_context_iteration(ctx, TRUE);
        return i;
}

/* ---- a deadline set from inside a dispatch of the loop (an idle callback) ---- */

typedef struct set_from_dispatch {
        pcpd_timer *t;
        gint64 deadline;
        uint64_t wakeups_before, wakeups_after;
} set_from_dispatch;

static gboolean do_set(gpointer data) {
        set_from_dispatch *s = data;

        s->wakeups_before = pcpd_timer_get_wakeups(s->t);
        pcpd_timer_set_deadline(s->t, s->deadline);
        s->wakeups_after = pcpd_timer_get_wakeups(s->t);
        return G_SOURCE_REMOVE;
}

static void set_in_dispatch(GMainContext *ctx, set_from_dispatch *s) {
        GSource *idle = g_idle_source_new();
        unsigned i;

        g_source_set_callback(idle, do_set, s, NULL);
        g_source_attach(idle, ctx);
        /* the idle is ready at once: iterate until it ran */
        for (i = 0; i < 10 && !g_source_is_destroyed(idle); i++)
                peek(ctx);
        assert_true(g_source_is_destroyed(idle));
        g_source_unref(idle);
}

/* ---- tests ---- */

/* the detector is not blind: GLib's own g_source_set_ready_time() from a dispatch writes the
 * wake-up eventfd, and a poll of this test's sees it (the cost pcpd-timer avoids) */
static gboolean glib_rearm(gpointer data) {
        g_source_set_ready_time(data, g_get_monotonic_time() + HOUR_US);
        return G_SOURCE_REMOVE;
}

static gboolean never(GSource *s, GSourceFunc cb, gpointer data) {
        (void) s, (void) cb, (void) data;
        return G_SOURCE_CONTINUE;
}

static void test_detector_sees_glib_wakeups(void **state) {
        static GSourceFuncs plain = { .dispatch = never };
        GMainContext *ctx = context_new();
        GSource *rt = g_source_new(&plain, sizeof(GSource));
        GSource *idle = g_idle_source_new();

        (void) state;
        g_source_attach(rt, ctx);
        g_source_set_callback(idle, glib_rearm, rt, NULL);
        g_source_attach(idle, ctx);
        peek(ctx); /* runs the idle */
        watch_reset();
        peek(ctx);
        assert_int_equal(w.polls, 1);
        assert_int_equal(w.woken, 1); /* the eventfd GLib wrote inside the dispatch */

        g_source_unref(idle);
        g_source_destroy(rt);
        g_source_unref(rt);
        g_main_context_unref(ctx);
}

/* armed from outside the loop: the loop sleeps until the deadline, fires once, never early,
 * disarmed while the callback runs; nobody was woken */
static void test_fires_at_deadline(void **state) {
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };
        gint64 d;
        unsigned iters;

        (void) state;
        f.t = pcpd_timer_new(ctx, "test", on_fire, &f);
        assert_int_equal(pcpd_timer_get_deadline(f.t), PCPD_TIMER_NEVER);
        d = g_get_monotonic_time() + 30 * 1000;
        pcpd_timer_set_deadline(f.t, d);
        assert_int_equal(pcpd_timer_get_deadline(f.t), d);

        iters = run_until_fired(ctx, &f, 1, 100);
        if (f.n != 1 || iters > 2)
                fail_msg("fired %u times after %u iterations (polls %u)", f.n, iters, w.polls);
        assert_true(f.at >= d);
        assert_int_equal(f.deadline_then, PCPD_TIMER_NEVER); /* disarmed before the callback */
        assert_true(w.max_timeout >= 1 && w.max_timeout <= 30);
        assert_int_equal(w.woken, 0);
        assert_int_equal(pcpd_timer_get_wakeups(f.t), 0);

        /* fired and not re-armed: the loop asks for no timeout, nothing is pending */
        watch_reset();
        assert_false(peek(ctx));
        assert_int_equal(w.last_timeout, -1);
        assert_int_equal(w.woken, 0);
        assert_int_equal(f.n, 1);

        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
}

/* a deadline already past fires at the next turn, without sleeping; the callback's re-arm
 * holds */
static void test_past_deadline_and_rearm_in_callback(void **state) {
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };
        gint64 later;

        (void) state;
        f.t = pcpd_timer_new(ctx, NULL, on_fire, &f);
        later = g_get_monotonic_time() + HOUR_US;
        f.rearm = later;
        pcpd_timer_set_deadline(f.t, g_get_monotonic_time() - 1000);
        assert_true(peek(ctx));
        assert_int_equal(w.last_timeout, 0);
        assert_int_equal(f.n, 1);
        assert_int_equal(pcpd_timer_get_deadline(f.t), later);
        watch_reset();
        assert_false(peek(ctx));
        assert_true(w.last_timeout > 3000 * 1000); /* ~an hour, in ms */
        assert_int_equal(w.woken, 0);
        assert_int_equal(pcpd_timer_get_wakeups(f.t), 0);

        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
}

/* re-armed earlier from inside a dispatch: no wake-up, and the next poll sleeps only until
 * the new deadline */
static void test_rearm_earlier_in_dispatch(void **state) {
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };
        set_from_dispatch s;
        unsigned iters;

        (void) state;
        f.t = pcpd_timer_new(ctx, NULL, on_fire, &f);
        pcpd_timer_set_deadline(f.t, g_get_monotonic_time() + HOUR_US);
        peek(ctx);
        assert_true(w.last_timeout > 3000 * 1000);

        s = (set_from_dispatch) { .t = f.t, .deadline = g_get_monotonic_time() + 20 * 1000 };
        set_in_dispatch(ctx, &s);
        assert_int_equal(s.wakeups_after, s.wakeups_before);
        watch_reset();
        iters = run_until_fired(ctx, &f, 1, 100);
        if (f.n != 1 || iters > 2)
                fail_msg("fired %u times after %u iterations (polls %u)", f.n, iters, w.polls);
        assert_true(f.at >= s.deadline);
        assert_true(w.max_timeout <= 20);
        assert_int_equal(w.woken, 0);
        assert_int_equal(pcpd_timer_get_wakeups(f.t), 0);

        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
}

/* The tests below move a deadline D later (or disarm it) and then check that D passes
 * without a firing. That only says something if the move came before D: on a machine
 * stalled for longer than the margin it may not have, and the scenario runs again with a
 * margin four times as large (20 ms, 80 ms, ... up to 5 s): a retry, never a skip. */
#define MARGIN_FIRST_MS 20
#define MARGIN_TRIES 5

/* re-armed later from inside a dispatch: no wake-up, the loop asks for the later timeout and
 * the old deadline passes without a firing; returns false when the move came too late */
static bool rearm_later_in_dispatch(gint64 margin_ms) {
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };
        set_from_dispatch s;
        bool past_old = false, valid;
        gint64 old;
        unsigned iters;

        f.t = pcpd_timer_new(ctx, NULL, on_fire, &f);
        old = g_get_monotonic_time() + margin_ms * 1000;
        pcpd_timer_set_deadline(f.t, old);
        peek(ctx);
        s = (set_from_dispatch) { .t = f.t, .deadline = g_get_monotonic_time() + HOUR_US };
        set_in_dispatch(ctx, &s);
        valid = f.n == 0 && g_get_monotonic_time() < old;
        if (valid) {
                assert_int_equal(s.wakeups_after, s.wakeups_before);
                watch_reset();
                peek(ctx);
                assert_true(w.last_timeout > 3000 * 1000);

                sentinel(ctx, (guint) margin_ms * 3, &past_old); /* well past the old deadline */
                iters = run_until(ctx, &past_old, 100);
                if (!past_old)
                        fail_msg("the sentinel did not fire in %u iterations", iters);
                assert_true(g_get_monotonic_time() > old);
                assert_int_equal(f.n, 0);
                assert_int_equal(pcpd_timer_get_deadline(f.t), s.deadline);
                assert_int_equal(w.woken, 0);
                assert_int_equal(pcpd_timer_get_wakeups(f.t), 0);
        }
        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
        return valid;
}

static void test_rearm_later_in_dispatch(void **state) {
        gint64 margin = MARGIN_FIRST_MS;
        int tries = 0;

        (void) state;
        while (!rearm_later_in_dispatch(margin))
                if (++tries == MARGIN_TRIES)
                        fail_msg("the machine stalled past the deadline %d times (last margin %" G_GINT64_FORMAT
                                 " ms)", tries, margin);
                else
                        margin *= 4;
}

/* disarmed (from a dispatch and then from outside): no firing, the loop asks for no timeout */
static bool disarm(gint64 margin_ms) {
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };
        set_from_dispatch s;
        bool past = false, valid;
        gint64 old;
        unsigned iters;

        f.t = pcpd_timer_new(ctx, NULL, on_fire, &f);
        old = g_get_monotonic_time() + margin_ms * 1000;
        pcpd_timer_set_deadline(f.t, old);
        s = (set_from_dispatch) { .t = f.t, .deadline = PCPD_TIMER_NEVER };
        set_in_dispatch(ctx, &s);
        valid = f.n == 0 && g_get_monotonic_time() < old;
        if (valid) {
                watch_reset();
                assert_false(peek(ctx));
                assert_int_equal(w.last_timeout, -1);
                assert_int_equal(pcpd_timer_get_deadline(f.t), PCPD_TIMER_NEVER);

                sentinel(ctx, (guint) margin_ms * 3, &past);
                iters = run_until(ctx, &past, 100);
                if (!past)
                        fail_msg("the sentinel did not fire in %u iterations", iters);
                assert_int_equal(f.n, 0);

                /* from outside the loop, and any negative value */
                pcpd_timer_set_deadline(f.t, g_get_monotonic_time() + 20 * 1000);
                pcpd_timer_set_deadline(f.t, -5);
                assert_int_equal(pcpd_timer_get_deadline(f.t), PCPD_TIMER_NEVER);
                past = false;
                sentinel(ctx, 60, &past);
                iters = run_until(ctx, &past, 100);
                if (!past)
                        fail_msg("the sentinel did not fire in %u iterations", iters);
                assert_int_equal(f.n, 0);
                assert_int_equal(w.woken, 0);
                assert_int_equal(pcpd_timer_get_wakeups(f.t), 0);
        }
        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
        return valid;
}

static void test_disarm(void **state) {
        gint64 margin = MARGIN_FIRST_MS;
        int tries = 0;

        (void) state;
        while (!disarm(margin))
                if (++tries == MARGIN_TRIES)
                        fail_msg("the machine stalled past the deadline %d times (last margin %" G_GINT64_FORMAT
                                 " ms)", tries, margin);
                else
                        margin *= 4;
}

/* idle: a disarmed timer asks the poll for no timeout, and nothing wakes the loop: turn
 * after turn, no dispatch and no descriptor ready; the same after a firing */
static void test_idle_no_wakeups(void **state) {
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };

        (void) state;
        f.t = pcpd_timer_new(ctx, NULL, on_fire, &f);
        for (int round = 0; round < 2; round++) {
                watch_reset();
                for (int i = 0; i < 5; i++)
                        assert_false(peek(ctx));
                assert_int_equal(w.polls, 5);
                assert_int_equal(w.max_timeout, G_MAXINT); /* every poll asked for no timeout */
                assert_int_equal(w.woken, 0);
                /* arm, fire, and idle again */
                pcpd_timer_set_deadline(f.t, g_get_monotonic_time());
                assert_true(peek(ctx));
                assert_int_equal(f.n, (unsigned) round + 1);
        }
        assert_int_equal(pcpd_timer_get_wakeups(f.t), 0);

        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
}

/* the owner of the context outside a dispatch (g_main_context_acquire()): a wake-up is
 * needed for an earlier deadline (it cannot know whether a poll is pending) and is made */
static void test_owner_outside_dispatch_wakes(void **state) {
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };

        (void) state;
        f.t = pcpd_timer_new(ctx, NULL, on_fire, &f);
        assert_true(g_main_context_acquire(ctx));
        pcpd_timer_set_deadline(f.t, g_get_monotonic_time() + 20 * 1000);
        assert_int_equal(pcpd_timer_get_wakeups(f.t), 1);
        /* a second, later one: the loop will prepare again anyway */
        pcpd_timer_set_deadline(f.t, g_get_monotonic_time() + 30 * 1000);
        assert_int_equal(pcpd_timer_get_wakeups(f.t), 1);
        g_main_context_release(ctx);

        watch_reset();
        peek(ctx);
        assert_int_equal(w.woken, 1); /* the wake-up was written */
        run_until_fired(ctx, &f, 1, 100);
        assert_int_equal(f.n, 1);

        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
}

/* ---- another thread while the loop sleeps ---- */

typedef struct cross {
        pcpd_timer *t;
        gint64 deadline;
        gint64 set_at; /* when the thread set it */
} cross;

static cross *the_cross;

static gpointer cross_thread(gpointer data) {
        cross *c = data;

        c->set_at = g_get_monotonic_time();
        pcpd_timer_set_deadline(c->t, c->deadline);
        return NULL;
}

/* called by the loop's poll function, i.e. while the loop owns the context with its
 * timeout computed and is about to sleep on it: another thread sets the deadline, and is
 * joined before the poll (so whatever it wrote is there when the poll starts: the same for
 * an eventfd as a write during the sleep, and no race in the test) */
static void start_cross(void) {
        g_thread_join(g_thread_new("set-deadline", cross_thread, the_cross));
}

/* disarmed loop sleeping with no timeout; another thread arms it: the loop must wake (it
 * would sleep forever otherwise: the sentinel turns that into a failure after 10 s) */
static void test_other_thread_earlier_wakes(void **state) {
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };
        cross c;
        bool gave_up = false;
        GSource *s = g_timeout_source_new_seconds(10);
        unsigned iters;

        (void) state;
        f.t = pcpd_timer_new(ctx, NULL, on_fire, &f);
        c = (cross) { .t = f.t, .deadline = g_get_monotonic_time() + 10 * 1000 };
        the_cross = &c;
        w.on_poll = start_cross;
        g_source_set_callback(s, set_flag, &gave_up, NULL);
        g_source_attach(s, ctx);

        for (iters = 0; iters < 100 && f.n == 0 && !gave_up; iters++)
                g_main_context_iteration(ctx, TRUE);
        if (f.n != 1 || gave_up)
                fail_msg("fired %u times in %u iterations; gave up: %d", f.n, iters, gave_up);
        assert_true(f.at >= c.deadline);
        assert_int_equal(pcpd_timer_get_wakeups(f.t), 1);
        assert_true(w.woken >= 1);

        g_source_destroy(s);
        g_source_unref(s);
        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
}

/* armed at D; while the loop is about to sleep on it another thread moves it later: no
 * wake-up is needed (the loop wakes at D, finds nothing due and sleeps on) and it fires at
 * the later deadline; then disarmed from a thread: no wake-up either. Retried with a larger
 * margin when the move came after D (see above). */
static bool other_thread_later(gint64 margin_ms) {
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };
        cross c;
        unsigned iters;
        bool past = false, valid;
        gint64 old;

        f.t = pcpd_timer_new(ctx, NULL, on_fire, &f);
        old = g_get_monotonic_time() + margin_ms * 1000;
        pcpd_timer_set_deadline(f.t, old);
        c = (cross) { .t = f.t, .deadline = old + 2 * margin_ms * 1000 };
        the_cross = &c;
        w.on_poll = start_cross;
        iters = run_until_fired(ctx, &f, 1, 100);
        if (f.n != 1)
                fail_msg("fired %u times in %u iterations", f.n, iters);
        valid = c.set_at != 0 && c.set_at < old;
        if (valid) {
                assert_true(f.at >= c.deadline);
                assert_int_equal(pcpd_timer_get_wakeups(f.t), 0);
                assert_int_equal(w.woken, 0);

                old = g_get_monotonic_time() + margin_ms * 1000;
                pcpd_timer_set_deadline(f.t, old);
                c = (cross) { .t = f.t, .deadline = PCPD_TIMER_NEVER };
                w.on_poll = start_cross;
                sentinel(ctx, (guint) margin_ms * 3, &past);
                iters = run_until(ctx, &past, 100);
                if (!past)
                        fail_msg("the sentinel did not fire in %u iterations", iters);
                valid = c.set_at != 0 && c.set_at < old;
                if (valid) {
                        assert_int_equal(f.n, 1);
                        assert_int_equal(pcpd_timer_get_wakeups(f.t), 0);
                        assert_int_equal(w.woken, 0);
                }
        }
        w.on_poll = NULL;
        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
        return valid;
}

static void test_other_thread_later_no_wakeup(void **state) {
        gint64 margin = MARGIN_FIRST_MS;
        int tries = 0;

        (void) state;
        while (!other_thread_later(margin))
                if (++tries == MARGIN_TRIES)
                        fail_msg("the machine stalled past the deadline %d times (last margin %" G_GINT64_FORMAT
                                 " ms)", tries, margin);
                else
                        margin *= 4;
}

/* with a slack the deadline fires in its slot (the first multiple of the slack at or after
 * it), never before; the loop's timeout is asked to the slot; a deadline already past waits
 * for its slot too */
static void test_slack(void **state) {
        const gint64 slack = 40 * 1000;
        GMainContext *ctx = context_new();
        fired f = { .rearm = -1 };
        gint64 d, slot;
        unsigned iters;

        (void) state;
        f.t = pcpd_timer_new(ctx, NULL, on_fire, &f);
        pcpd_timer_set_slack(f.t, slack);
        for (int round = 0; round < 3; round++) {
                d = g_get_monotonic_time() + (round == 2 ? -1000 : 1000 + round * 7000);
                slot = (d + slack - 1) / slack * slack;
                pcpd_timer_set_deadline(f.t, d);
                iters = run_until_fired(ctx, &f, (unsigned) round + 1, 100);
                if (f.n != (unsigned) round + 1)
                        fail_msg("round %d: fired %u times in %u iterations", round, f.n, iters);
                if (f.at < slot)
                        fail_msg("round %d: fired %" G_GINT64_FORMAT " us before its slot", round, slot - f.at);
        }
        /* the timeout the loop asks for reaches the slot, not the deadline */
        d = g_get_monotonic_time() + 3 * slack + 1000;
        slot = (d + slack - 1) / slack * slack;
        pcpd_timer_set_deadline(f.t, d);
        watch_reset();
        peek(ctx);
        assert_true((gint64) w.last_timeout * 1000 >= slot - g_get_monotonic_time());
        assert_int_equal(pcpd_timer_get_wakeups(f.t), 0);

        pcpd_timer_free(f.t);
        g_main_context_unref(ctx);
}

/* freed from its own callback (and on the default context, as pcpd uses it) */
static void test_free_in_callback(void **state) {
        fired f = { .rearm = -1, .free_self = true };
        unsigned iters;

        (void) state;
        memset(&w, 0, sizeof(w));
        f.t = pcpd_timer_new(NULL, "self-freeing", on_fire, &f);
        pcpd_timer_set_deadline(f.t, g_get_monotonic_time());
        for (iters = 0; iters < 100 && f.n == 0; iters++)
                g_main_context_iteration(NULL, TRUE);
        assert_int_equal(f.n, 1);
        assert_null(f.t);
        assert_null(pcpd_timer_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_detector_sees_glib_wakeups),
                cmocka_unit_test(test_fires_at_deadline),
                cmocka_unit_test(test_past_deadline_and_rearm_in_callback),
                cmocka_unit_test(test_rearm_earlier_in_dispatch),
                cmocka_unit_test(test_rearm_later_in_dispatch),
                cmocka_unit_test(test_disarm),
                cmocka_unit_test(test_idle_no_wakeups),
                cmocka_unit_test(test_owner_outside_dispatch_wakes),
                cmocka_unit_test(test_other_thread_earlier_wakes),
                cmocka_unit_test(test_other_thread_later_no_wakeup),
                cmocka_unit_test(test_slack),
                cmocka_unit_test(test_free_in_callback),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
