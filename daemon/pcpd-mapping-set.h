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

/* The slot a search for hash h starts at (h unmixed); then pcpd_mapping_set_probe_next()
 * until an empty slot (NULL): every element with that hash is in that run. */
static inline size_t pcpd_mapping_set_probe(const pcpd_mapping_set *s, uint64_t h) {
        return pcp_hash64(h) & s->mask;
}

static inline size_t pcpd_mapping_set_probe_next(const pcpd_mapping_set *s, size_t i) {
        return (i + 1) & s->mask;
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
