/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The restore's mapping_added (InterfacesAdded) paced to the listener's output backlog
 * (daemon/pcpd-restore.c): told at once while the backlog is not above
 * PCPD_OUTPUT_BACKLOG_MAX, the rest on later turns of the loop, no more than
 * PCPD_ORPHAN_BATCH a turn, each once, in the order of the ids; a restored mapping removed
 * before its turn gets no mapping_added (its mapping_removed was its last word), one
 * claimed or changed before it gets it once, after; the manager freed while some wait: none
 * told after it, nothing left on the loop; a bus that does not read is never forced to
 * take them. The manager without a bus (manager-fixture.c:
 * the recording listener, a fake PCP server on the loopback). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <glib.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pcpd-manager-private.h" /* PCPD_ORPHAN_BATCH, PCPD_OUTPUT_BACKLOG_MAX */
#include "pcpd-manager.h"
#include "pcpd-servers.h"
#include "manager-fixture.h"
#include "unit-fixture.h"

#define N 1000u
#define FIRST_PORT 21000u
#define OWNER ":1.70"
/* turns of the loop a test runs at most while it waits for the paced ones (a cap against
 * hangs, reported; N / PCPD_ORPHAN_BATCH turns are enough) */
#define TURNS_CAP 100000u

typedef struct fixture {
        char *dir;
        GMainLoop *loop;
        recorder rec;
        fake_server *a;
        pcpd_manager *m;
        uint64_t ids[N];
} fixture;

/* the backlog the listener tells: the recorder's (f->rec.backlog), or, while
 * backlog_low_asks is not 0, 0 for that many asks and then above the limit */
static unsigned backlog_low_asks;
static recorder *the_recorder;

static size_t test_backlog(pcpd_manager *m, void *userdata) {
        recorder *r = userdata;

        assert_ptr_equal(r, the_recorder);
        r->backlog_asked++;
        if (backlog_low_asks > 0) {
                backlog_low_asks--;
                return 0;
        }
        return r->backlog;
}

static pcpd_manager_listener listener;

static pcpd_manager *manager_new(fixture *f) {
        pcpd_config config;
        pcpd_manager *m;

        fake_server_config(&config, f->a, 2 * N);
        m = unit_manager_new(&config, f->dir, f->loop, &listener, &f->rec);
        pcpd_config_clear(&config);
        f->rec.expect_m = m;
        return m;
}

static int setup(void **state) {
        fixture *f = g_new0(fixture, 1);

        listener = recording;
        listener.output_backlog = test_backlog;
        f->dir = unit_make_own_dir("restore");
        manager_fixture_setup(&f->loop, &f->rec, &f->a);
        the_recorder = &f->rec;
        backlog_low_asks = 0;
        /* N app mappings of OWNER, saved; then a restart over them, with the listener's
         * backlog as the test sets it before pcpd_manager_start() */
        f->m = manager_new(f);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        for (unsigned k = 0; k < N; k++) {
                pcpd_mapping_request req = manager_request(17, (uint16_t) (FIRST_PORT + k), OWNER);
                f->ids[k] = manager_add(f->m, &req)->id;
        }
        f->m = pcpd_manager_free(f->m);
        while (g_main_context_iteration(NULL, FALSE))
                ;
        g_array_set_size(f->rec.events, 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        manager_fixture_teardown(f->m, &f->loop, &f->rec, &f->a);
        unit_rm_own_dir(f->dir);
        g_free(f->dir);
        g_free(f);
        return 0;
}

static unsigned count_kind(const fixture *f, int kind) {
        unsigned n = 0;

        for (guint i = 0; i < f->rec.events->len; i++)
                n += g_array_index(f->rec.events, event, i).kind == kind;
        return n;
}

/* the index in the events of the first of that kind for id, -1 when none */
static int first_event(const fixture *f, int kind, uint64_t id) {
        for (guint i = 0; i < f->rec.events->len; i++) {
                const event *e = &g_array_index(f->rec.events, event, i);
                if (e->kind == kind && e->id == id)
                        return (int) i;
        }
        return -1;
}

/* the loop turns (blocking: the paced ones wait on a timer while the backlog is above the
 * limit) until `want` mapping_added were told in all, none more than PCPD_ORPHAN_BATCH in a
 * turn; returns the turns it took */
static unsigned turn_until_added(fixture *f, unsigned want) {
        unsigned turns = 0, told = count_kind(f, EV_ADDED);

        while (told < want) {
                unsigned before = told;

                if (turns++ >= TURNS_CAP)
                        fail_msg("%u of %u mapping_added after %u turns of the loop", told, want, TURNS_CAP);
                (void) g_main_context_iteration(NULL, TRUE);
                told = count_kind(f, EV_ADDED);
                if (told - before > PCPD_ORPHAN_BATCH)
                        fail_msg("%u mapping_added in one turn of the loop (at most %u)", told - before,
                                 PCPD_ORPHAN_BATCH);
        }
        return turns;
}

/* the restored ones told: each once, in the order of the ids, but for those in gone[],
 * none at all */
static void assert_told_once_in_order(const fixture *f, const bool *gone) {
        int last = -1;

        for (unsigned k = 0; k < N; k++) {
                int at = first_event(f, EV_ADDED, f->ids[k]);

                if (gone[k]) {
                        if (at >= 0)
                                fail_msg("mapping %" PRIu64 " removed before its turn was told mapping_added (event %d)",
                                         f->ids[k], at);
                        continue;
                }
                assert_int_equal(count_events(&f->rec, EV_ADDED, f->ids[k]), 1);
                if (at < last)
                        fail_msg("mapping_added of %" PRIu64 " (event %d) before that of a lower id (event %d)",
                                 f->ids[k], at, last);
                last = at;
        }
}

/* A bus that does not read holds up nothing but these signals, and gets none of them while
 * it stays so: past PCPD_OUTPUT_BACKLOG_WAITS looks in a row at a high backlog the looks
 * only slow down, and no batch goes without one (unlike the orphans' and the grace's
 * removals, which go anyway then). Once it reads again, every one is told. */
static void test_added_never_forced(void **state) {
        fixture *f = *state;
        bool gone[N] = { false };
        unsigned asked;

        f->rec.backlog = (size_t) PCPD_OUTPUT_BACKLOG_MAX + 1;
        f->m = manager_new(f);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(count_kind(f, EV_ADDED), 0);
        asked = f->rec.backlog_asked;
        for (unsigned turns = 0; f->rec.backlog_asked < asked + PCPD_OUTPUT_BACKLOG_WAITS + 5; turns++) {
                if (turns >= TURNS_CAP)
                        fail_msg("the backlog was asked %u times in %u turns", f->rec.backlog_asked - asked, turns);
                (void) g_main_context_iteration(NULL, TRUE);
                if (count_kind(f, EV_ADDED) != 0)
                        fail_msg("%u mapping_added while the backlog stayed high, after %u looks at it",
                                 count_kind(f, EV_ADDED), f->rec.backlog_asked - asked);
        }
        f->rec.backlog = 0;
        (void) turn_until_added(f, N);
        assert_told_once_in_order(f, gone);
}

/* While the backlog is above the limit from the start, none is told during the restore
 * nor while it stays there; meanwhile one restored mapping is revoked, one claimed and
 * released (both gone: their mapping_removed and no mapping_added, then or later), one
 * claimed again by its app (told once, after its claim's change), and a new mapping takes
 * a gone one's port (a new id, told at once, once). Once the backlog is low, the others are
 * told over later turns, PCPD_ORPHAN_BATCH at most a turn, each once, in id order. */
static void test_added_paced(void **state) {
        fixture *f = *state;
        bool gone[N] = { false };
        pcpd_mapping_request req;
        pcpd_mapping *mp, *fresh;
        unsigned asked;
        int claimed_at;

        f->rec.backlog = (size_t) PCPD_OUTPUT_BACKLOG_MAX + 1;
        f->m = manager_new(f);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), N);
        assert_int_equal(count_kind(f, EV_ADDED), 0);
        assert_true(f->rec.backlog_asked > 0);

        /* a few looks at the backlog, still above: nothing told */
        asked = f->rec.backlog_asked;
        for (unsigned turns = 0; f->rec.backlog_asked < asked + 3; turns++) {
                if (turns >= TURNS_CAP)
                        fail_msg("the backlog was asked %u times in %u turns", f->rec.backlog_asked - asked, turns);
                (void) g_main_context_iteration(NULL, TRUE);
        }
        assert_int_equal(count_kind(f, EV_ADDED), 0);

        /* revoked before its turn */
        mp = pcpd_manager_mapping(f->m, f->ids[10]);
        assert_non_null(mp);
        pcpd_manager_remove_mapping(f->m, mp, PCPD_REMOVED_REVOKED);
        gone[10] = true;
        /* claimed and released before its turn */
        req = manager_request(17, (uint16_t) (FIRST_PORT + 500), ":1.71");
        mp = manager_add(f->m, &req);
        assert_int_equal(mp->id, f->ids[500]);
        pcpd_manager_release(f->m, mp, ":1.71", PCPD_REMOVED_RELEASED);
        gone[500] = true;
        /* the last one, claimed again by its app */
        req = manager_request(17, (uint16_t) (FIRST_PORT + N - 1), ":1.72");
        mp = manager_add(f->m, &req);
        assert_int_equal(mp->id, f->ids[N - 1]);
        claimed_at = (int) f->rec.events->len - 1;
        assert_true(claimed_at >= 0);
        assert_int_equal(g_array_index(f->rec.events, event, claimed_at).kind, EV_CHANGED);
        assert_int_equal(g_array_index(f->rec.events, event, claimed_at).id, f->ids[N - 1]);
        /* a gone one's port taken again: a new mapping, told at once */
        req = manager_request(17, (uint16_t) (FIRST_PORT + 10), ":1.73");
        fresh = manager_add(f->m, &req);
        assert_true(fresh->id > f->ids[N - 1]);
        assert_int_equal(count_events(&f->rec, EV_ADDED, fresh->id), 1);
        assert_int_equal(count_kind(f, EV_ADDED), 1);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, f->ids[10]), 1);
        assert_int_equal(count_events(&f->rec, EV_REMOVED, f->ids[500]), 1);

        /* the bus reads again */
        f->rec.backlog = 0;
        assert_true(turn_until_added(f, N - 2 + 1) >= (N - 2) / PCPD_ORPHAN_BATCH);
        assert_told_once_in_order(f, gone);
        assert_true(first_event(f, EV_ADDED, f->ids[N - 1]) > claimed_at);
        assert_int_equal(count_events(&f->rec, EV_ADDED, fresh->id), 1);

        /* and nothing more after the last (the pace is over) */
        asked = f->rec.backlog_asked;
        for (unsigned k = 0; k < 10; k++)
                (void) g_main_context_iteration(NULL, FALSE);
        assert_int_equal(count_kind(f, EV_ADDED), N - 2 + 1);
        assert_int_equal(f->rec.backlog_asked, asked);
}

/* A backlog low at first and above the limit after a few looks: the first ones are told
 * during the restore, the rest wait, and come once it is low again; each once, in id
 * order. With it never above (the recorder's 0), all are told during the restore. */
static void test_added_at_once_then_paced(void **state) {
        fixture *f = *state;
        bool gone[N] = { false };
        unsigned at_once;

        backlog_low_asks = 3;
        f->rec.backlog = SIZE_MAX; /* what the bus face says of a queue in sd-bus */
        f->m = manager_new(f);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        at_once = count_kind(f, EV_ADDED);
        assert_true(at_once > 0);
        assert_true(at_once < N);
        /* a prefix, in order */
        for (unsigned k = 0; k < at_once; k++)
                assert_int_equal(first_event(f, EV_ADDED, f->ids[k]) >= 0, true);
        for (unsigned k = 0; k < 20; k++)
                (void) g_main_context_iteration(NULL, FALSE);
        assert_int_equal(count_kind(f, EV_ADDED), at_once);

        f->rec.backlog = 0;
        (void) turn_until_added(f, N);
        assert_told_once_in_order(f, gone);

        /* never above: all at once */
        f->m = pcpd_manager_free(f->m);
        while (g_main_context_iteration(NULL, FALSE))
                ;
        g_array_set_size(f->rec.events, 0);
        f->m = manager_new(f);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(count_kind(f, EV_ADDED), N);
        assert_told_once_in_order(f, gone);
}

/* The manager freed while some wait for their turn: none is told after it, and nothing of
 * the pace is left on the loop (AddressSanitizer and valgrind would see a source that
 * outlived it); the restored mappings are still saved (a restart tells them all). */
static void test_added_pending_at_stop(void **state) {
        fixture *f = *state;
        bool gone[N] = { false };
        guint mark;

        f->rec.backlog = (size_t) PCPD_OUTPUT_BACKLOG_MAX + 1;
        f->m = manager_new(f);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(count_kind(f, EV_ADDED), 0);
        f->m = pcpd_manager_free(f->m);
        mark = f->rec.events->len;
        f->rec.backlog = 0;
        for (unsigned k = 0; k < 50; k++)
                (void) g_main_context_iteration(NULL, FALSE);
        assert_int_equal(f->rec.events->len, mark);
        assert_int_equal(count_kind(f, EV_ADDED), 0);

        f->m = manager_new(f);
        assert_int_equal(pcpd_manager_start(f->m), 0);
        assert_int_equal(count_kind(f, EV_ADDED), N);
        assert_told_once_in_order(f, gone);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_added_paced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_added_never_forced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_added_at_once_then_paced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_added_pending_at_stop, setup, teardown),
        };

        /* pcpd_manager_start() asks for NetworkManager on the system bus: there is none
         * here (a path under a directory that does not exist; nothing is made there) */
        g_setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/pcpd-test-restore/no-bus", TRUE);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
