/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcp-heap: the engine's timer queue. Order, updates and removals anywhere, against a
 * plain model under a long random script; the heap property and every item's idx are
 * checked after each step. realloc() is wrapped (-Wl,--wrap=realloc) to fail on demand. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcp-heap.h"

/* ---- realloc() that fails when told to ---- */

void *__real_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size);
static bool fail_realloc;

void *__wrap_realloc(void *p, size_t size) {
        if (fail_realloc)
                return NULL;
        return __real_realloc(p, size);
}

static uint64_t splitmix(uint64_t *x) {
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* an object with a timer, as the engine's mappings have */
typedef struct obj {
        uint64_t key; /* what the model says its key is */
        bool in;      /* what the model says: in the heap */
        pcp_heap_item item;
} obj;

static obj *obj_of(pcp_heap_item *it) {
        /* back from the member to the object (void *: no cast to a more aligned type) */
        return __builtin_assume_aligned((char *) it - offsetof(obj, item), _Alignof(obj));
}

/* the heap property, every entry's item knows its place, and the heap holds exactly the
 * objects the model says, with their keys */
static void check(const pcp_heap *h, obj *objs, size_t n_objs) {
        size_t in = 0;

        for (size_t i = 0; i < h->n; i++) {
                const pcp_heap_entry *x = &h->entries[i];

                assert_int_equal(x->item->idx, i);
                if (i > 0)
                        assert_true(h->entries[(i - 1) / 4].key <= x->key);
                assert_true(obj_of(x->item)->in);
                assert_int_equal(obj_of(x->item)->key, x->key);
        }
        for (size_t k = 0; k < n_objs; k++) {
                assert_int_equal(pcp_heap_item_queued(&objs[k].item), objs[k].in);
                if (objs[k].in) {
                        assert_int_equal(pcp_heap_item_key(h, &objs[k].item), objs[k].key);
                        in++;
                }
        }
        assert_int_equal(pcp_heap_size(h), in);
}

static void objs_init(obj *objs, size_t n) {
        for (size_t k = 0; k < n; k++) {
                memset(&objs[k], 0, sizeof(objs[k]));
                objs[k].item = PCP_HEAP_ITEM_INIT;
        }
}

static void test_empty(void **state) {
        pcp_heap h;
        obj o;
        uint64_t key = 42;

        pcp_heap_init(&h);
        objs_init(&o, 1);
        assert_null(pcp_heap_top(&h, &key));
        assert_null(pcp_heap_pop(&h, &key));
        assert_int_equal(key, 42); /* untouched */
        assert_int_equal(pcp_heap_size(&h), 0);
        assert_false(pcp_heap_item_queued(&o.item));
        pcp_heap_remove(&h, &o.item); /* not in: nothing */
        assert_int_equal(pcp_heap_size(&h), 0);
        pcp_heap_done(&h);
        pcp_heap_done(&h); /* twice is fine: empty after the first */
}

/* everything comes out in key order, each once, and leaves the heap */
static void test_order(void **state) {
        enum { N = 1000 };
        static obj objs[N];
        uint64_t rng = 1, last = 0, key;
        pcp_heap h;

        pcp_heap_init(&h);
        objs_init(objs, N);
        for (size_t k = 0; k < N; k++) {
                /* few distinct keys: many ties */
                objs[k].key = splitmix(&rng) % 97;
                objs[k].in = true;
                assert_int_equal(pcp_heap_set(&h, &objs[k].item, objs[k].key), 0);
        }
        check(&h, objs, N);
        for (size_t k = 0; k < N; k++) {
                pcp_heap_item *top = pcp_heap_top(&h, &key);
                pcp_heap_item *it = pcp_heap_pop(&h, &key);

                assert_ptr_equal(it, top);
                assert_true(key >= last);
                assert_int_equal(key, obj_of(it)->key);
                assert_true(obj_of(it)->in);
                assert_false(pcp_heap_item_queued(it));
                obj_of(it)->in = false;
                last = key;
        }
        assert_null(pcp_heap_pop(&h, NULL));
        check(&h, objs, N);
        pcp_heap_done(&h);
}

/* set on an item that is in moves it, both ways; removal from the top, the middle, the end */
static void test_update_remove(void **state) {
        static obj objs[300];
        pcp_heap h;
        uint64_t key;

        pcp_heap_init(&h);
        objs_init(objs, 300);
        for (size_t k = 0; k < 300; k++) {
                objs[k].key = 1000 + 10 * k;
                objs[k].in = true;
                assert_int_equal(pcp_heap_set(&h, &objs[k].item, objs[k].key), 0);
        }
        /* the last one becomes the first */
        objs[299].key = 5;
        assert_int_equal(pcp_heap_set(&h, &objs[299].item, 5), 0);
        check(&h, objs, 300);
        assert_ptr_equal(pcp_heap_top(&h, &key), &objs[299].item);
        assert_int_equal(key, 5);
        /* and the first the last */
        objs[299].key = 1000000;
        assert_int_equal(pcp_heap_set(&h, &objs[299].item, 1000000), 0);
        check(&h, objs, 300);
        assert_ptr_equal(pcp_heap_top(&h, NULL), &objs[0].item);
        /* a key that does not change */
        assert_int_equal(pcp_heap_set(&h, &objs[150].item, objs[150].key), 0);
        check(&h, objs, 300);
        /* removals: the top, an inner one, whatever is at the end of the array */
        pcp_heap_remove(&h, &objs[0].item);
        objs[0].in = false;
        check(&h, objs, 300);
        pcp_heap_remove(&h, &objs[77].item);
        objs[77].in = false;
        check(&h, objs, 300);
        obj_of(h.entries[h.n - 1].item)->in = false;
        pcp_heap_remove(&h, h.entries[h.n - 1].item);
        check(&h, objs, 300);
        /* removed twice: nothing the second time */
        pcp_heap_remove(&h, &objs[77].item);
        check(&h, objs, 300);
        assert_ptr_equal(pcp_heap_top(&h, &key), &objs[1].item);
        assert_int_equal(key, 1010);
        /* the extremes of the key range */
        objs[0].key = 0;
        objs[0].in = true;
        objs[77].key = UINT64_MAX - 1;
        objs[77].in = true;
        assert_int_equal(pcp_heap_set(&h, &objs[0].item, 0), 0);
        assert_int_equal(pcp_heap_set(&h, &objs[77].item, UINT64_MAX - 1), 0);
        check(&h, objs, 300);
        assert_ptr_equal(pcp_heap_top(&h, NULL), &objs[0].item);
        pcp_heap_done(&h);
}

/* a long random script of inserts, moves, removals and pops against the model */
static void test_random_script(void **state) {
        enum { N = 500, STEPS = 50000 };
        static obj objs[N];
        uint64_t rng = 7;
        pcp_heap h;

        pcp_heap_init(&h);
        objs_init(objs, N);
        for (size_t step = 0; step < STEPS; step++) {
                obj *o = &objs[splitmix(&rng) % N];
                uint64_t r = splitmix(&rng) % 10, key;

                if (r < 6) {
                        /* arm or move: sometimes near the current minimum, like a timer */
                        o->key = splitmix(&rng) % (r < 3 ? 100 : 1000000);
                        o->in = true;
                        assert_int_equal(pcp_heap_set(&h, &o->item, o->key), 0);
                } else if (r < 8) {
                        o->in = false;
                        pcp_heap_remove(&h, &o->item);
                } else {
                        uint64_t min = UINT64_MAX;
                        pcp_heap_item *it;

                        for (size_t k = 0; k < N; k++)
                                if (objs[k].in && objs[k].key < min)
                                        min = objs[k].key;
                        it = pcp_heap_pop(&h, &key);
                        if (min == UINT64_MAX)
                                assert_null(it);
                        else {
                                assert_non_null(it);
                                assert_int_equal(key, min);
                                obj_of(it)->in = false;
                        }
                }
                if (step % 97 == 0 || step < 200)
                        check(&h, objs, N);
        }
        check(&h, objs, N);
        pcp_heap_done(&h);
}

/* the array grows past its first size; when it cannot, set says so and nothing changes */
static void test_growth_and_no_memory(void **state) {
        enum { N = 1024 }; /* 64, doubled four times: full */
        static obj objs[N + 1];
        pcp_heap h;

        pcp_heap_init(&h);
        objs_init(objs, N + 1);
        for (size_t k = 0; k < N; k++) {
                objs[k].key = N - k;
                objs[k].in = true;
                assert_int_equal(pcp_heap_set(&h, &objs[k].item, objs[k].key), 0);
        }
        check(&h, objs, N + 1);
        assert_int_equal(h.n, h.cap);
        fail_realloc = true;
        assert_int_equal(pcp_heap_set(&h, &objs[N].item, 1), -ENOMEM);
        assert_false(pcp_heap_item_queued(&objs[N].item));
        check(&h, objs, N + 1);
        /* moving one that is in needs no memory */
        objs[0].key = 3;
        assert_int_equal(pcp_heap_set(&h, &objs[0].item, 3), 0);
        check(&h, objs, N + 1);
        fail_realloc = false;
        objs[N].key = 0;
        objs[N].in = true;
        assert_int_equal(pcp_heap_set(&h, &objs[N].item, 0), 0);
        check(&h, objs, N + 1);
        assert_ptr_equal(pcp_heap_top(&h, NULL), &objs[N].item);
        pcp_heap_done(&h);
        assert_int_equal(pcp_heap_size(&h), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_order),
                cmocka_unit_test(test_update_remove),
                cmocka_unit_test(test_random_script),
                cmocka_unit_test(test_growth_and_no_memory),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
