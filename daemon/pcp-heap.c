/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcp-heap.h"

#include <errno.h>
#include <stdlib.h>

void pcp_heap_init(pcp_heap *h) {
        h->entries = NULL;
        h->n = h->cap = 0;
}

/* The items are not touched: they may be gone already. */
void pcp_heap_done(pcp_heap *h) {
        free(h->entries);
        pcp_heap_init(h);
}

/* Four children per node: half the levels of a binary heap, and the four children of a
 * node are in one or two cache lines (16-octet entries). A sift down makes four
 * comparisons per level, as many as a binary heap makes on the two levels it replaces, and
 * moves half as many entries (bench/README.md: 391 instructions of heap work per renewal,
 * 439 with two children). Sifting moves a hole rather than swapping: each level costs one
 * entry copy and one store to the moved item's idx. The array and its size are read once
 * into locals: with -fno-strict-aliasing, every store to an item's idx would otherwise
 * make the compiler read them again. */
#define ARITY 4

static void place(pcp_heap_entry *a, size_t i, pcp_heap_entry x) {
        a[i] = x;
        x.item->idx = (uint32_t) i; /* < PCP_HEAP_NONE: pcp_heap_set() */
}

static size_t parent_of(size_t i) {
        return (i - 1) / ARITY;
}

static void sift_up(pcp_heap *h, size_t i, pcp_heap_entry x) {
        pcp_heap_entry *a = h->entries;

        while (i > 0) {
                size_t parent = parent_of(i);

                if (a[parent].key <= x.key)
                        break;
                place(a, i, a[parent]);
                i = parent;
        }
        place(a, i, x);
}

/* the child with the smallest key among a[first], ... (first < n) */
static size_t min_child(const pcp_heap_entry *a, size_t n, size_t first) {
        const pcp_heap_entry *c = &a[first];
        size_t m, m2;

        if (first + ARITY <= n) {
                /* all four: two pairs, then the winners (no loop, few branches) */
                m = c[1].key < c[0].key;
                m2 = 2 + (c[3].key < c[2].key);
                return first + (c[m2].key < c[m].key ? m2 : m);
        }
        m = 0;
        for (size_t k = 1; first + k < n; k++)
                if (c[k].key < c[m].key)
                        m = k;
        return first + m;
}

static void sift_down(pcp_heap *h, size_t i, pcp_heap_entry x) {
        pcp_heap_entry *a = h->entries;
        size_t n = h->n;

        for (;;) {
                size_t first = ARITY * i + 1, c;

                if (first >= n)
                        break;
                c = min_child(a, n, first);
                if (x.key <= a[c].key)
                        break;
                place(a, i, a[c]);
                i = c;
        }
        place(a, i, x);
}

/* entry x goes to position i, then wherever its key takes it */
static inline __attribute__((always_inline)) void settle(pcp_heap *h, size_t i, pcp_heap_entry x) {
        if (i > 0 && x.key < h->entries[parent_of(i)].key)
                sift_up(h, i, x);
        else
                sift_down(h, i, x);
}

int pcp_heap_set(pcp_heap *h, pcp_heap_item *it, uint64_t key) {
        pcp_heap_entry x = { .key = key, .item = it };

        if (pcp_heap_item_queued(it)) {
                settle(h, it->idx, x);
                return 0;
        }
        if (h->n >= PCP_HEAP_NONE)
                return -ENOMEM;
        if (h->n == h->cap) {
                size_t cap = h->cap > 0 ? h->cap * 2 : 64;
                pcp_heap_entry *a = realloc(h->entries, cap * sizeof(*a));

                if (a == NULL)
                        return -ENOMEM;
                h->entries = a;
                h->cap = cap;
        }
        sift_up(h, h->n++, x);
        return 0;
}

void pcp_heap_remove(pcp_heap *h, pcp_heap_item *it) {
        size_t i = it->idx;

        if (it->idx == PCP_HEAP_NONE)
                return;
        it->idx = PCP_HEAP_NONE;
        if (i != --h->n)
                /* the last entry fills the hole */
                settle(h, i, h->entries[h->n]);
}

pcp_heap_item *pcp_heap_pop(pcp_heap *h, uint64_t *ret_key) {
        pcp_heap_item *it;

        if (h->n == 0)
                return NULL;
        it = h->entries[0].item;
        if (ret_key != NULL)
                *ret_key = h->entries[0].key;
        pcp_heap_remove(h, it);
        return it;
}
