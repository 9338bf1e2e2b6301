/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcpd-mapping-set: the manager's open-addressed sets of mappings (by id, by sharing key) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <glib.h>

#include "pcpd-mapping-set.h"

typedef struct {
        uint64_t key;
        bool in; /* the test's record of membership */
} elem;

static uint64_t elem_hash(const void *x) {
        return ((const elem *) x)->key;
}

/* every key that collides into one run: all hash alike */
static uint64_t same_hash(const void *x) {
        (void) x;
        return 7;
}

static bool same(const void *x, const void *ctx) {
        return x == ctx;
}

static bool has(const pcpd_mapping_set *s, const elem *e) {
        return pcpd_mapping_set_find(s, s->hash(e), same, e) == e;
}

/* a search by key (as the manager's by id): ctx is the key; counts its calls */
static unsigned key_calls;

static bool key_is(const void *x, const void *ctx) {
        key_calls++;
        return ((const elem *) x)->key == *(const uint64_t *) ctx;
}

/* every element the test holds in is found from its hash's slot, and iteration gives each
 * of them once and nothing else */
static void check(const pcpd_mapping_set *s, elem *es, size_t n) {
        size_t in = 0, seen = 0;
        void *v;

        for (size_t k = 0; k < n; k++) {
                assert_int_equal(has(s, &es[k]), es[k].in);
                in += es[k].in;
        }
        assert_int_equal(pcpd_mapping_set_size(s), in);
        for (size_t i = 0; pcpd_mapping_set_next(s, &i, &v);) {
                elem *e = v;

                assert_true(e >= es && e < es + n);
                assert_true(e->in);
                seen++;
        }
        assert_int_equal(seen, in);
}

static void run_random(pcpd_mapping_set_hash_fn hash, size_t n, unsigned rounds, uint32_t seed) {
        pcpd_mapping_set s;
        elem *es = g_new0(elem, n);
        GRand *rand = g_rand_new_with_seed(seed);

        for (size_t k = 0; k < n; k++)
                es[k].key = (uint64_t) (k / 3); /* three alike per key: duplicates are allowed */
        pcpd_mapping_set_init(&s, hash);
        check(&s, es, n);
        for (unsigned r = 0; r < rounds; r++) {
                elem *e = &es[g_rand_int_range(rand, 0, (gint32) n)];

                if (e->in) {
                        assert_true(pcpd_mapping_set_remove(&s, e));
                        e->in = false;
                } else {
                        pcpd_mapping_set_add(&s, e);
                        e->in = true;
                }
                if (r % 97 == 0)
                        check(&s, es, n);
        }
        check(&s, es, n);
        /* the capacity follows the size: at most 3/4 full, at least 1/8 above 8 slots */
        assert_true(4 * pcpd_mapping_set_size(&s) <= 3 * (s.mask + 1));
        assert_true(s.mask + 1 <= 8 || 8 * pcpd_mapping_set_size(&s) >= s.mask + 1);
        pcpd_mapping_set_done(&s);
        g_rand_free(rand);
        g_free(es);
}

static void test_random(void **state) {
        (void) state;
        run_random(elem_hash, 3000, 60000, 1);
        run_random(elem_hash, 40, 20000, 2);
}

/* one long run of equal hashes, wrapping around the end of the slots: removal by backward
 * shift must leave every other element findable */
static void test_collisions(void **state) {
        (void) state;
        run_random(same_hash, 90, 20000, 3);
}

static void test_remove_absent(void **state) {
        pcpd_mapping_set s;
        elem a = { .key = 1 }, b = { .key = 1 };

        (void) state;
        pcpd_mapping_set_init(&s, elem_hash);
        assert_false(pcpd_mapping_set_remove(&s, &a)); /* no slots yet */
        pcpd_mapping_set_add(&s, &a);
        assert_false(pcpd_mapping_set_remove(&s, &b)); /* same hash, another element */
        assert_int_equal(pcpd_mapping_set_size(&s), 1);
        assert_true(pcpd_mapping_set_remove(&s, &a));
        assert_int_equal(pcpd_mapping_set_size(&s), 0);
        pcpd_mapping_set_done(&s);
        pcpd_mapping_set_done(&s); /* twice: harmless */
}

/* pcpd_mapping_set_find(): the element the match accepts; NULL for a key not there (also in
 * a run of others with the same hash, read to its end and no further, and in an empty set) */
static void test_find(void **state) {
        pcpd_mapping_set s;
        elem es[40];
        uint64_t k;
        size_t at = 0;

        (void) state;
        pcpd_mapping_set_init(&s, elem_hash);
        k = 5;
        key_calls = 0;
        assert_null(pcpd_mapping_set_find(&s, k, key_is, &k)); /* no slots */
        assert_int_equal(key_calls, 0);
        for (size_t i = 0; i < 40; i++) {
                es[i] = (elem){ .key = i + 1 };
                pcpd_mapping_set_add(&s, &es[i]);
        }
        for (size_t i = 0; i < 40; i++) {
                k = i + 1;
                assert_ptr_equal(pcpd_mapping_set_find(&s, k, key_is, &k), &es[i]);
                /* the slot is the one that holds it */
                assert_ptr_equal(pcpd_mapping_set_find_at(&s, k, key_is, &k, &at), &es[i]);
                assert_ptr_equal(s.slots[at], &es[i]);
        }
        k = 41;
        assert_null(pcpd_mapping_set_find(&s, k, key_is, &k));
        at = 12345;
        assert_null(pcpd_mapping_set_find_at(&s, k, key_is, &k, &at));
        assert_int_equal(at, 12345); /* not set */
        k = 3;
        assert_true(pcpd_mapping_set_remove(&s, &es[2]));
        assert_null(pcpd_mapping_set_find(&s, 3, key_is, &k));
        pcpd_mapping_set_done(&s);

        /* all in one run: the key decides, and a removed one is gone from the middle of it */
        pcpd_mapping_set_init(&s, same_hash);
        for (size_t i = 0; i < 40; i++)
                pcpd_mapping_set_add(&s, &es[i]);
        for (size_t i = 0; i < 40; i++) {
                k = i + 1;
                assert_ptr_equal(pcpd_mapping_set_find(&s, 7, key_is, &k), &es[i]);
        }
        assert_true(pcpd_mapping_set_remove(&s, &es[20]));
        k = 21;
        key_calls = 0;
        assert_null(pcpd_mapping_set_find(&s, 7, key_is, &k));
        assert_int_equal(key_calls, 39); /* the whole run, then the empty slot */
        k = 40;
        assert_ptr_equal(pcpd_mapping_set_find(&s, 7, key_is, &k), &es[39]);
        pcpd_mapping_set_done(&s);
}

/* grows and shrinks: 10,000 in 16,384 slots (8 octets each), back to the least when empty */
static void test_sizes(void **state) {
        pcpd_mapping_set s;
        elem *es = g_new0(elem, 10000);

        (void) state;
        pcpd_mapping_set_init(&s, elem_hash);
        for (size_t k = 0; k < 10000; k++) {
                es[k].key = k + 1;
                pcpd_mapping_set_add(&s, &es[k]);
        }
        assert_int_equal(s.mask + 1, 16384);
        for (size_t k = 0; k < 10000; k++)
                assert_true(pcpd_mapping_set_remove(&s, &es[k]));
        assert_int_equal(pcpd_mapping_set_size(&s), 0);
        assert_int_equal(s.mask + 1, 8);
        pcpd_mapping_set_done(&s);
        g_free(es);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_random),
                cmocka_unit_test(test_collisions),
                cmocka_unit_test(test_remove_absent),
                cmocka_unit_test(test_find),
                cmocka_unit_test(test_sizes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
