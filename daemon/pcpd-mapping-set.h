/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-mapping-set: the manager's sets of mappings (by id, by sharing key: pcpd-manager.h),
 * an open-addressed table of pointers (linear probing, deletion by backward shift: no
 * tombstones). A slot is one pointer and the hash is computed from the element when it is
 * needed, so at 10,000 mappings a set is 16,384 slots of 8 octets (13 octets a mapping; a
 * GLib set is 12 a slot: a hash and a key, 20 a mapping), and nothing is added to the
 * element itself (pcpd_mapping is sized to its malloc chunk, pcpd-mapping.h). The table
 * doubles past 3/4 full and halves below 1/8.
 *
 * The hash of an element must not change while it is in the set. The elements are the
 * caller's: the set neither frees nor copies them. The order of iteration is the slots'
 * (arbitrary, as a GHashTable's was); nothing may be added or removed while iterating.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp-htable.h" /* pcp_hash64() */

/* the (unmixed) hash of element x: the set mixes it with pcp_hash64() */
typedef uint64_t (*pcpd_mapping_set_hash_fn)(const void *x);

typedef struct pcpd_mapping_set {
        void **slots; /* mask + 1 of them, NULL: empty */
        size_t mask;
        size_t n;
        pcpd_mapping_set_hash_fn hash;
} pcpd_mapping_set;

void pcpd_mapping_set_init(pcpd_mapping_set *s, pcpd_mapping_set_hash_fn hash);
/* Frees the slots (not the elements); the set is empty and usable again. */
void pcpd_mapping_set_done(pcpd_mapping_set *s);

/* x must not be in the set already (the same pointer); others with the same hash may. */
void pcpd_mapping_set_add(pcpd_mapping_set *s, void *x);
/* Takes x (this pointer) out; false if it was not there. */
bool pcpd_mapping_set_remove(pcpd_mapping_set *s, const void *x);

static inline size_t pcpd_mapping_set_size(const pcpd_mapping_set *s) {
        return s->n;
}

/* The match of a search: whether element x is the one searched for (ctx: the caller's key). */
typedef bool (*pcpd_mapping_set_match_fn)(const void *x, const void *ctx);

/* The one probe loop of the set (its searches, and remove's): the first element of hash h's
 * run (h unmixed) that match() accepts, and its slot in *slot; NULL if none (*slot not set).
 * Every element with hash h is in that run (up to the first empty slot), so a key that is
 * not there costs the run's length. Inline, as the lookups by id and by sharing key are on
 * every call's path: their match is a constant, which the compiler inlines into the loop
 * (no indirect call), and a *slot nobody reads goes: the loop is the one the lookups had
 * by hand, instruction for instruction (an index or slot pointer returned instead costs
 * a test or a register more on every hit). */
static inline void *pcpd_mapping_set_find_at(const pcpd_mapping_set *s, uint64_t h, pcpd_mapping_set_match_fn match,
                                             const void *ctx, size_t *slot) {
        if (s->n == 0) /* also no slots yet */
                return NULL;
        for (size_t i = pcp_hash64(h) & s->mask; s->slots[i] != NULL; i = (i + 1) & s->mask)
                if (match(s->slots[i], ctx)) {
                        *slot = i;
                        return s->slots[i];
                }
        return NULL;
}

/* The first element with hash h (unmixed) that match(x, ctx) accepts, NULL if none; of
 * several that match, which one is first is the slots' order. */
static inline void *pcpd_mapping_set_find(const pcpd_mapping_set *s, uint64_t h, pcpd_mapping_set_match_fn match,
                                          const void *ctx) {
        size_t unused;

        return pcpd_mapping_set_find_at(s, h, match, ctx, &unused);
}

/* Iteration: for (size_t i = 0; pcpd_mapping_set_next(s, &i, &x); ) ... */
static inline bool pcpd_mapping_set_next(const pcpd_mapping_set *s, size_t *i, void **ret) {
        if (s->slots == NULL)
                return false;
        for (; *i <= s->mask; (*i)++)
                if (s->slots[*i] != NULL) {
                        *ret = s->slots[(*i)++];
                        return true;
                }
        return false;
}
