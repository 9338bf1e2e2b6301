/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcp-htable: the engine's indexes (mappings by id, by nonce, by protocol and port).
 * Lookups, several nodes per key, growth, keys whose low bits all agree, removal of what
 * is not there; calloc() is wrapped (-Wl,--wrap=calloc) so that growth can fail. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pcp-htable.h"

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
static bool fail_calloc;

void *__wrap_calloc(size_t n, size_t size) {
        if (fail_calloc)
                return NULL;
        return __real_calloc(n, size);
}

typedef struct obj {
        int value;
        uint64_t key; /* the table reads it through obj_key(): the node keeps none */
        pcp_hnode node;
} obj;

static obj *obj_of(const pcp_hnode *x) {
        /* back from the member to the object (void *: no cast to a more aligned type) */
        return __builtin_assume_aligned((char *) x - offsetof(obj, node), _Alignof(obj));
}

static uint64_t obj_key(const pcp_hnode *x) {
        return obj_of(x)->key;
}

static size_t count_key(const pcp_htable *h, uint64_t key) {
        size_t n = 0;

        for (pcp_hnode *x = pcp_htable_find(h, key); x != NULL; x = pcp_htable_find_next(h, x)) {
                assert_int_equal(obj_of(x)->key, key);
                n++;
        }
        return n;
}

static size_t longest_chain(const pcp_htable *h) {
        size_t longest = 0;

        for (size_t b = 0; b <= h->mask; b++) {
                size_t n = 0;
                for (pcp_hnode *x = h->buckets[b]; x != NULL; x = x->next)
                        n++;
                if (n > longest)
                        longest = n;
        }
        return longest;
}

static void test_init(void **state) {
        pcp_htable h;

        assert_int_equal(pcp_htable_init(&h, 0, obj_key), -EINVAL);
        assert_int_equal(pcp_htable_init(&h, 16, NULL), -EINVAL); /* no key function */
        assert_int_equal(pcp_htable_init(&h, 48, obj_key), -EINVAL);
        fail_calloc = true;
        assert_int_equal(pcp_htable_init(&h, 16, obj_key), -ENOMEM);
        fail_calloc = false;
        assert_int_equal(pcp_htable_init(&h, 1, obj_key), 0);
        assert_int_equal(pcp_htable_size(&h), 0);
        assert_null(pcp_htable_find(&h, 0));
        pcp_htable_done(&h);
        assert_int_equal(pcp_htable_init(&h, 16, obj_key), 0);
        assert_null(pcp_htable_find(&h, 12345));
        pcp_htable_done(&h);
        pcp_htable_done(&h); /* twice is fine */
}

static void test_add_find_remove(void **state) {
        obj a = { .value = 1 }, b = { .value = 2 }, c = { .value = 3 }, stranger = { .value = 4 };
        pcp_htable h;

        assert_int_equal(pcp_htable_init(&h, 4, obj_key), 0);
        a.key = 10;
        b.key = 20;
        c.key = 10; /* the same key as a */
        stranger.key = 10;
        pcp_htable_add(&h, &a.node);
        pcp_htable_add(&h, &b.node);
        pcp_htable_add(&h, &c.node);
        assert_int_equal(pcp_htable_size(&h), 3);
        assert_ptr_equal(pcp_htable_find(&h, 20), &b.node);
        assert_null(pcp_htable_find_next(&h, &b.node));
        assert_int_equal(obj_of(&b.node)->value, 2);
        assert_int_equal(count_key(&h, 10), 2);
        assert_null(pcp_htable_find(&h, 30));
        /* the chain of a key holds every node with it (what the engine's typed lookups walk) */
        {
                size_t n10 = 0, n20 = 0;
                for (pcp_hnode *x = pcp_htable_chain(&h, 10); x != NULL; x = x->next)
                        n10 += obj_of(x)->key == 10;
                for (pcp_hnode *x = pcp_htable_chain(&h, 20); x != NULL; x = x->next)
                        n20 += x == &b.node;
                assert_int_equal(n10, 2);
                assert_int_equal(n20, 1);
        }
        /* removing a node that is not in the table changes nothing */
        pcp_htable_remove(&h, &stranger.node);
        assert_int_equal(pcp_htable_size(&h), 3);
        assert_int_equal(count_key(&h, 10), 2);
        pcp_htable_remove(&h, &a.node);
        assert_int_equal(count_key(&h, 10), 1);
        assert_ptr_equal(pcp_htable_find(&h, 10), &c.node);
        pcp_htable_remove(&h, &a.node); /* twice */
        assert_int_equal(pcp_htable_size(&h), 2);
        pcp_htable_remove(&h, &c.node);
        pcp_htable_remove(&h, &b.node);
        assert_int_equal(pcp_htable_size(&h), 0);
        assert_null(pcp_htable_find(&h, 10));
        assert_null(pcp_htable_find(&h, 20));
        pcp_htable_done(&h);
}

/* From 16 buckets to half as many as nodes, and not more (it doubles at two nodes a
 * bucket); everything still found, each once; removing all leaves it empty. Keys like the
 * engine's: sequential ids, and (protocol << 16 | port). */
static void test_growth(void **state) {
        enum { N = 20000 };
        static obj objs[N];
        pcp_htable h;

        assert_int_equal(pcp_htable_init(&h, 16, obj_key), 0);
        for (size_t i = 0; i < N; i++) {
                objs[i].value = (int) i;
                objs[i].key = i % 2 ? (uint64_t) 17 << 16 | (i / 2 + 1) : i + 1;
                pcp_htable_add(&h, &objs[i].node);
        }
        assert_int_equal(pcp_htable_size(&h), N);
        assert_true(2 * (h.mask + 1) >= N);
        assert_true(h.mask + 1 < N);
        for (size_t i = 0; i < N; i++) {
                bool found = false;
                for (pcp_hnode *x = pcp_htable_find(&h, objs[i].key); x != NULL; x = pcp_htable_find_next(&h, x))
                        found |= x == &objs[i].node;
                assert_true(found);
        }
        /* sequential keys spread: no long chains */
        assert_true(longest_chain(&h) <= 12);
        for (size_t i = 0; i < N; i += 2)
                pcp_htable_remove(&h, &objs[i].node);
        assert_int_equal(pcp_htable_size(&h), N / 2);
        for (size_t i = 0; i < N; i++)
                assert_int_equal(count_key(&h, objs[i].key), i % 2);
        for (size_t i = 1; i < N; i += 2)
                pcp_htable_remove(&h, &objs[i].node);
        assert_int_equal(pcp_htable_size(&h), 0);
        pcp_htable_done(&h);
}

/* keys that differ only in their high bits (a nonce's fold, ids << 32) land in different
 * buckets: the hash mixes every bit into the low ones */
static void test_high_bits(void **state) {
        enum { N = 4096 };
        static obj objs[N];
        pcp_htable h;

        assert_int_equal(pcp_htable_init(&h, N, obj_key), 0);
        for (size_t i = 0; i < N; i++) {
                objs[i].key = (uint64_t) i << 48;
                pcp_htable_add(&h, &objs[i].node);
        }
        assert_int_equal(h.mask + 1, N); /* did not need to grow */
        assert_true(longest_chain(&h) <= 12);
        for (size_t i = 0; i < N; i++)
                assert_ptr_equal(pcp_htable_find(&h, (uint64_t) i << 48), &objs[i].node);
        pcp_htable_done(&h);
        /* a bijection: distinct keys, distinct hashes */
        for (uint64_t i = 1; i < 100000; i++)
                assert_true(pcp_hash64(i) != pcp_hash64(i - 1));
        assert_int_equal(pcp_hash64(0), 0);
}

/* when the bigger bucket array cannot be had, the table keeps working with longer chains */
static void test_growth_without_memory(void **state) {
        enum { N = 200 };
        static obj objs[N];
        pcp_htable h;

        assert_int_equal(pcp_htable_init(&h, 4, obj_key), 0);
        fail_calloc = true;
        for (size_t i = 0; i < N; i++) {
                objs[i].key = i * 7;
                pcp_htable_add(&h, &objs[i].node);
        }
        fail_calloc = false;
        assert_int_equal(h.mask, 3);
        assert_int_equal(pcp_htable_size(&h), N);
        for (size_t i = 0; i < N; i++)
                assert_ptr_equal(pcp_htable_find(&h, i * 7), &objs[i].node);
        /* and grows again once it can */
        pcp_htable_remove(&h, &objs[0].node);
        pcp_htable_add(&h, &objs[0].node);
        assert_true(h.mask > 3);
        for (size_t i = 0; i < N; i++)
                assert_ptr_equal(pcp_htable_find(&h, i * 7), &objs[i].node);
        pcp_htable_done(&h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init),
                cmocka_unit_test(test_add_find_remove),
                cmocka_unit_test(test_growth),
                cmocka_unit_test(test_high_bits),
                cmocka_unit_test(test_growth_without_memory),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
