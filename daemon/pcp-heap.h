/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcp-heap: a 4-ary min-heap of intrusive items, keyed by a uint64_t (the engine's timers:
 * the key is a deadline). The item lives in the caller's object and only records where it
 * is in the heap; the heap's array holds (key, item) pairs, so that sifting compares keys
 * in the array and never touches the objects (with 131,070 timers, each comparison would
 * otherwise be a cache miss in a different object).
 *
 * Equal keys come out in no particular order. Nothing here allocates except
 * pcp_heap_set() when the array must grow.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCP_HEAP_NONE UINT32_MAX

/* 32 bits: the item is in every timer-carrying object (every mapping), and the engine
 * never holds 4 billion timers; pcp_heap_set() refuses the one that would not fit. */
typedef struct pcp_heap_item {
        uint32_t idx; /* position in the heap's array; PCP_HEAP_NONE when not in the heap */
} pcp_heap_item;

#define PCP_HEAP_ITEM_INIT ((pcp_heap_item) { .idx = PCP_HEAP_NONE })

typedef struct pcp_heap_entry {
        uint64_t key;
        pcp_heap_item *item;
} pcp_heap_entry;

typedef struct pcp_heap {
        pcp_heap_entry *entries;
        size_t n, cap;
} pcp_heap;

/* An empty heap; pcp_heap_done() frees its array (the items are the caller's and are not
 * touched) and leaves it empty. */
void pcp_heap_init(pcp_heap *h);
void pcp_heap_done(pcp_heap *h);

/* Puts it in the heap with this key, or moves it there if it is in already. -ENOMEM (it is
 * then left where it was, or out) only when the array had to grow and could not, or held
 * PCP_HEAP_NONE entries already. */
int pcp_heap_set(pcp_heap *h, pcp_heap_item *it, uint64_t key);
/* Takes it out; nothing if it is not in. */
void pcp_heap_remove(pcp_heap *h, pcp_heap_item *it);
/* The item with the smallest key, taken out (its key in *ret_key if not NULL); NULL when
 * empty. pcp_heap_top() looks without taking. */
pcp_heap_item *pcp_heap_pop(pcp_heap *h, uint64_t *ret_key);

static inline bool pcp_heap_item_queued(const pcp_heap_item *it) {
        return it->idx != PCP_HEAP_NONE;
}

/* its key; it must be in h */
static inline uint64_t pcp_heap_item_key(const pcp_heap *h, const pcp_heap_item *it) {
        return h->entries[it->idx].key;
}

static inline pcp_heap_item *pcp_heap_top(const pcp_heap *h, uint64_t *ret_key) {
        if (h->n == 0)
                return NULL;
        if (ret_key != NULL)
                *ret_key = h->entries[0].key;
        return h->entries[0].item;
}

static inline size_t pcp_heap_size(const pcp_heap *h) {
        return h->n;
}
