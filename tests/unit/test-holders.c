/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Who holds a mapping (pcpd-holders.c), pure: mappings made by hand, no manager. Covered:
 * one holder holding twice (one shared set, counted holds, no table of the mapping's own);
 * mappings held by the same sole name share its set; a second name gives a table of its own
 * with both counts; removing holds one at a time; a name that was never a holder; a name
 * leaving with all its holds (vanish): as sole holder, as one of two, holding many alone
 * with holds released in every position meanwhile, and holding again after it left;
 * dropping every hold; the index's names as they come and go. The index is given no
 * registry of mappings: a name's mappings are found from its own entry. ASan/valgrind
 * check that nothing leaks or is read after it is freed. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <glib.h>

#include "pcpd-holders.h"

typedef struct fixture {
        GHashTable *index;
        pcpd_mapping a, b, c;
} fixture;

static int setup(void **state) {
        fixture *f = g_new0(fixture, 1);
        f->index = pcpd_holders_index_new();
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        pcpd_holders_free_mapping(&f->a);
        pcpd_holders_free_mapping(&f->b);
        pcpd_holders_free_mapping(&f->c);
        g_hash_table_destroy(f->index);
        g_free(f);
        return 0;
}

static void test_one_holder_twice(void **state) {
        fixture *f = *state;

        assert_int_equal(pcpd_holders_count(&f->a), 0);
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.1"), 0);
        pcpd_holders_add(f->index, &f->a, ":1.1");
        pcpd_holders_add(f->index, &f->a, ":1.1");
        assert_int_equal(pcpd_holders_count(&f->a), 1);
        assert_int_equal(pcpd_holders_total(&f->a), 2);
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.1"), 2);
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.2"), 0);
        assert_true(g_hash_table_contains(f->a.holders, ":1.1"));
        assert_int_equal(g_hash_table_size(f->index), 1);

        /* the same sole holder of another mapping: the same set */
        pcpd_holders_add(f->index, &f->b, ":1.1");
        assert_ptr_equal(f->a.holders, f->b.holders);
        assert_int_equal(pcpd_holders_holds(&f->b, ":1.1"), 1);
        assert_int_equal(g_hash_table_size(f->index), 1);

        assert_false(pcpd_holders_remove(f->index, &f->a, ":1.1"));
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.1"), 1);
        assert_false(pcpd_holders_remove(f->index, &f->a, ":1.2")); /* not a holder: nothing */
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.1"), 1);
        assert_true(pcpd_holders_remove(f->index, &f->a, ":1.1"));
        assert_null(f->a.holders);
        assert_int_equal(pcpd_holders_count(&f->a), 0);
        assert_int_equal(g_hash_table_size(f->index), 1); /* b still held */
        assert_true(pcpd_holders_remove(f->index, &f->b, ":1.1"));
        assert_int_equal(g_hash_table_size(f->index), 0);
        assert_true(pcpd_holders_remove(f->index, &f->b, ":1.1")); /* nobody: still nobody */
}

static void test_two_holders(void **state) {
        fixture *f = *state;

        pcpd_holders_add(f->index, &f->a, ":1.1");
        pcpd_holders_add(f->index, &f->a, ":1.1");
        pcpd_holders_add(f->index, &f->b, ":1.1");
        pcpd_holders_add(f->index, &f->a, ":1.2");
        assert_ptr_not_equal(f->a.holders, f->b.holders); /* b's shared set is untouched */
        assert_int_equal(pcpd_holders_count(&f->a), 2);
        assert_int_equal(pcpd_holders_count(&f->b), 1);
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.1"), 2);
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.2"), 1);
        assert_int_equal(pcpd_holders_holds(&f->b, ":1.2"), 0);
        assert_int_equal(g_hash_table_size(f->index), 2);
        pcpd_holders_add(f->index, &f->a, ":1.2");
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.2"), 2);
        /* 2 names, 4 holds in all */
        assert_int_equal(pcpd_holders_count(&f->a), 2);
        assert_int_equal(pcpd_holders_total(&f->a), 4);
        assert_int_equal(pcpd_holders_total(&f->b), 1);

        assert_false(pcpd_holders_remove(f->index, &f->a, ":1.1"));
        assert_false(pcpd_holders_remove(f->index, &f->a, ":1.1"));
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.1"), 0);
        assert_false(g_hash_table_contains(f->a.holders, ":1.1"));
        assert_int_equal(pcpd_holders_count(&f->a), 1);
        assert_int_equal(g_hash_table_size(f->index), 2); /* :1.1 still holds b */
        assert_false(pcpd_holders_remove(f->index, &f->a, ":1.2"));
        assert_true(pcpd_holders_remove(f->index, &f->a, ":1.2"));
        assert_null(f->a.holders);
        assert_int_equal(pcpd_holders_total(&f->a), 0);
        assert_int_equal(g_hash_table_size(f->index), 1);

        /* held again after that: a shared set again */
        pcpd_holders_add(f->index, &f->a, ":1.1");
        assert_ptr_equal(f->a.holders, f->b.holders);
}

static bool has(GPtrArray *a, pcpd_mapping *mp) {
        return a != NULL && g_ptr_array_find(a, mp, NULL);
}

static void test_vanish(void **state) {
        fixture *f = *state;
        g_autoptr(GPtrArray) gone = NULL;
        g_autoptr(GPtrArray) none = NULL;
        g_autoptr(GPtrArray) last = NULL;

        pcpd_holders_add(f->index, &f->a, ":1.1");
        pcpd_holders_add(f->index, &f->a, ":1.1");
        pcpd_holders_add(f->index, &f->b, ":1.1");
        pcpd_holders_add(f->index, &f->b, ":1.2");
        pcpd_holders_add(f->index, &f->c, ":1.2");

        none = pcpd_holders_vanish(f->index, ":1.99");
        assert_null(none);

        gone = pcpd_holders_vanish(f->index, ":1.1");
        assert_non_null(gone);
        assert_int_equal(gone->len, 2);
        assert_true(has(gone, &f->a) && has(gone, &f->b));
        assert_null(f->a.holders); /* every hold at once */
        assert_int_equal(pcpd_holders_count(&f->b), 1);
        assert_int_equal(pcpd_holders_holds(&f->b, ":1.1"), 0);
        assert_int_equal(pcpd_holders_holds(&f->b, ":1.2"), 1);
        assert_int_equal(g_hash_table_size(f->index), 1);

        last = pcpd_holders_vanish(f->index, ":1.2");
        assert_int_equal(last->len, 2);
        assert_true(has(last, &f->b) && has(last, &f->c));
        assert_null(f->b.holders);
        assert_null(f->c.holders);
        assert_int_equal(g_hash_table_size(f->index), 0);
}

static void test_drop(void **state) {
        fixture *f = *state;

        pcpd_holders_add(f->index, &f->a, ":1.1");
        pcpd_holders_add(f->index, &f->a, ":1.1");
        pcpd_holders_add(f->index, &f->b, ":1.1");
        pcpd_holders_add(f->index, &f->b, ":1.2");
        pcpd_holders_add(f->index, &f->c, ":1.3");

        pcpd_holders_drop(f->index, &f->a);
        assert_null(f->a.holders);
        assert_int_equal(g_hash_table_size(f->index), 3);
        pcpd_holders_drop(f->index, &f->b);
        assert_null(f->b.holders);
        assert_int_equal(g_hash_table_size(f->index), 1); /* :1.1 and :1.2 held only these */
        pcpd_holders_drop(f->index, &f->b);              /* nobody: nothing */
        pcpd_holders_drop(f->index, &f->c);
        assert_int_equal(g_hash_table_size(f->index), 0);
}

/* freed with the index while still held, as the manager does at exit */
static void test_free_held(void **state) {
        fixture *f = *state;

        pcpd_holders_add(f->index, &f->a, ":1.1");
        pcpd_holders_add(f->index, &f->b, ":1.1");
        pcpd_holders_add(f->index, &f->b, ":1.2");
        /* teardown frees the mappings' own tables, then the index */
}

/* Many mappings one name holds alone, one of them released meanwhile, one shared with a
 * name that left first, and a mapping of another name that must not come back with them. */
static void test_vanish_many_alone(void **state) {
        fixture *f = *state;
        enum { N = 100 };
        g_autofree pcpd_mapping *mps = g_new0(pcpd_mapping, N);
        g_autoptr(GPtrArray) first = NULL;
        g_autoptr(GPtrArray) gone = NULL;

        for (int i = 0; i < N; i++)
                pcpd_holders_add(f->index, &mps[i], ":1.5");
        pcpd_holders_add(f->index, &f->a, ":1.6");
        pcpd_holders_add(f->index, &mps[7], ":1.7"); /* mps[7]: two names now */
        assert_true(pcpd_holders_remove(f->index, &mps[3], ":1.5")); /* mps[3]: nobody */
        assert_int_equal(g_hash_table_size(f->index), 3);

        first = pcpd_holders_vanish(f->index, ":1.7");
        assert_int_equal(first->len, 1);
        assert_ptr_equal(first->pdata[0], &mps[7]);
        assert_int_equal(pcpd_holders_count(&mps[7]), 1);

        gone = pcpd_holders_vanish(f->index, ":1.5");
        assert_non_null(gone);
        assert_int_equal(gone->len, N - 1);
        for (int i = 0; i < N; i++) {
                assert_true(has(gone, &mps[i]) == (i != 3));
                assert_null(mps[i].holders);
                pcpd_holders_free_mapping(&mps[i]);
        }
        assert_false(has(gone, &f->a));
        assert_int_equal(pcpd_holders_holds(&f->a, ":1.6"), 1);
        assert_int_equal(g_hash_table_size(f->index), 1); /* :1.6 */
}

/* A sole holder's mappings leave it in every position (first, last, middle, by a second
 * name arriving, by a drop) while others stay and come: the name that then leaves the bus
 * gets back exactly the ones it still held, each once, and the index forgets it. */
static void test_vanish_alone_after_churn(void **state) {
        fixture *f = *state;
        enum { N = 64 };
        g_autofree pcpd_mapping *mps = g_new0(pcpd_mapping, N);
        g_autoptr(GPtrArray) gone = NULL;
        g_autoptr(GPtrArray) other = NULL;
        bool kept[N];
        guint n_kept = 0;

        for (int i = 0; i < N / 2; i++)
                pcpd_holders_add(f->index, &mps[i], ":1.8");
        for (int i = 0; i < N; i++)
                kept[i] = true;
        assert_true(pcpd_holders_remove(f->index, &mps[0], ":1.8"));     /* the first */
        kept[0] = false;
        assert_true(pcpd_holders_remove(f->index, &mps[N / 2 - 1], ":1.8")); /* the last */
        kept[N / 2 - 1] = false;
        assert_true(pcpd_holders_remove(f->index, &mps[10], ":1.8"));    /* one in the middle */
        kept[10] = false;
        pcpd_holders_drop(f->index, &mps[5]);                             /* removed with its mapping */
        kept[5] = false;
        pcpd_holders_add(f->index, &mps[7], ":1.9");                      /* no longer alone */
        pcpd_holders_add(f->index, &mps[7], ":1.8");                      /* held twice by :1.8 */
        for (int i = N / 2; i < N; i++)                                   /* more, after all that */
                pcpd_holders_add(f->index, &mps[i], ":1.8");
        assert_true(pcpd_holders_remove(f->index, &mps[N - 1], ":1.8"));
        kept[N - 1] = false;
        pcpd_holders_add(f->index, &mps[20], ":1.8"); /* a second hold of one held alone */
        for (int i = 0; i < N; i++)
                if (kept[i])
                        n_kept++;

        gone = pcpd_holders_vanish(f->index, ":1.8");
        assert_non_null(gone);
        assert_int_equal(gone->len, n_kept);
        for (int i = 0; i < N; i++) {
                guint times = 0;
                for (guint k = 0; k < gone->len; k++)
                        times += gone->pdata[k] == &mps[i];
                assert_int_equal(times, kept[i] ? 1 : 0);
                assert_int_equal(pcpd_holders_holds(&mps[i], ":1.8"), 0);
        }
        assert_int_equal(pcpd_holders_holds(&mps[7], ":1.9"), 1);
        assert_null(mps[20].holders);
        assert_int_equal(g_hash_table_size(f->index), 1); /* :1.9 */
        other = pcpd_holders_vanish(f->index, ":1.9");
        assert_int_equal(other->len, 1);
        assert_null(mps[7].holders);
        assert_int_equal(g_hash_table_size(f->index), 0);
        for (int i = 0; i < N; i++)
                pcpd_holders_free_mapping(&mps[i]);
}

/* A name that held many alone lets go of most of them, from both ends and the middle
 * (its array shrinks on the way), holds some again, then leaves: exactly the ones it
 * still held come back. */
static void test_vanish_after_most_released(void **state) {
        fixture *f = *state;
        enum { N = 300 };
        g_autofree pcpd_mapping *mps = g_new0(pcpd_mapping, N);
        g_autoptr(GPtrArray) gone = NULL;
        bool kept[N];

        for (int i = 0; i < N; i++) {
                pcpd_holders_add(f->index, &mps[i], ":1.10");
                kept[i] = true;
        }
        for (int i = 0; i < N; i++) {
                if (i % 37 == 3)
                        continue;
                /* alternately from the front and the back */
                int k = i % 2 == 0 ? i / 2 : N - 1 - i / 2;
                if (!kept[k] || k % 37 == 3)
                        continue;
                assert_true(pcpd_holders_remove(f->index, &mps[k], ":1.10"));
                kept[k] = false;
        }
        pcpd_holders_add(f->index, &mps[0], ":1.10");
        kept[0] = true;
        pcpd_holders_add(f->index, &mps[N - 1], ":1.10");
        kept[N - 1] = true;

        gone = pcpd_holders_vanish(f->index, ":1.10");
        assert_non_null(gone);
        for (int i = 0, n = 0; i < N; i++) {
                guint times = 0;
                for (guint k = 0; k < gone->len; k++)
                        times += gone->pdata[k] == &mps[i];
                assert_int_equal(times, kept[i] ? 1 : 0);
                assert_null(mps[i].holders);
                n += kept[i];
                if (i == N - 1)
                        assert_int_equal(gone->len, n);
        }
        assert_true(gone->len > 2 && gone->len < 20);
        assert_int_equal(g_hash_table_size(f->index), 0);
}

/* A name that left the bus holds again (a unique name the bus never gives twice, but the
 * index must not care): a fresh entry, and leaving again gives back only what it held since. */
static void test_vanish_name_again(void **state) {
        fixture *f = *state;
        g_autoptr(GPtrArray) first = NULL;
        g_autoptr(GPtrArray) second = NULL;
        g_autoptr(GPtrArray) none = NULL;

        pcpd_holders_add(f->index, &f->a, ":1.4");
        pcpd_holders_add(f->index, &f->b, ":1.4");
        pcpd_holders_add(f->index, &f->b, ":1.3");
        first = pcpd_holders_vanish(f->index, ":1.4");
        assert_int_equal(first->len, 2);
        assert_null(f->a.holders);
        assert_int_equal(g_hash_table_size(f->index), 1); /* :1.3 */

        pcpd_holders_add(f->index, &f->c, ":1.4");
        pcpd_holders_add(f->index, &f->c, ":1.4");
        pcpd_holders_add(f->index, &f->b, ":1.4");
        assert_int_equal(pcpd_holders_holds(&f->c, ":1.4"), 2);
        assert_int_equal(pcpd_holders_count(&f->b), 2);
        assert_int_equal(g_hash_table_size(f->index), 2);
        second = pcpd_holders_vanish(f->index, ":1.4");
        assert_int_equal(second->len, 2);
        assert_true(has(second, &f->b) && has(second, &f->c));
        assert_false(has(second, &f->a));
        assert_null(f->c.holders);
        assert_int_equal(pcpd_holders_count(&f->b), 1);
        assert_int_equal(pcpd_holders_holds(&f->b, ":1.3"), 1);
        none = pcpd_holders_vanish(f->index, ":1.4");
        assert_null(none);
        assert_int_equal(g_hash_table_size(f->index), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_one_holder_twice, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_holders, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vanish, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vanish_many_alone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vanish_alone_after_churn, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vanish_name_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vanish_after_most_released, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_held, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
