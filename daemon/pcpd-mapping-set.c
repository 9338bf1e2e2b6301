/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>

#include <glib.h>

#include "pcpd-mapping-set.h"

#define MIN_SLOTS 8

void pcpd_mapping_set_init(pcpd_mapping_set *s, pcpd_mapping_set_hash_fn hash) {
        *s = (pcpd_mapping_set){ .hash = hash };
}

void pcpd_mapping_set_done(pcpd_mapping_set *s) {
        g_free(s->slots);
        s->slots = NULL;
        s->mask = 0;
        s->n = 0;
}

static void place(void **slots, size_t mask, pcpd_mapping_set_hash_fn hash, void *x) {
        size_t i = pcp_hash64(hash(x)) & mask;

        while (slots[i] != NULL)
                i = (i + 1) & mask;
        slots[i] = x;
}

/* n_slots: a power of two above s->n (g_new0() aborts when memory runs out, as a
 * GHashTable's growth does) */
static void resize(pcpd_mapping_set *s, size_t n_slots) {
        void **nw = g_new0(void *, n_slots);

        if (s->slots != NULL)
                for (size_t i = 0; i <= s->mask; i++)
                        if (s->slots[i] != NULL)
                                place(nw, n_slots - 1, s->hash, s->slots[i]);
        g_free(s->slots);
        s->slots = nw;
        s->mask = n_slots - 1;
}

void pcpd_mapping_set_add(pcpd_mapping_set *s, void *x) {
        size_t cap = s->slots != NULL ? s->mask + 1 : 0;

        /* at most 3/4 full: linear probing's runs stay short (~2.5 probes a miss) */
        if (cap == 0)
                resize(s, MIN_SLOTS);
        else if (4 * (s->n + 1) > 3 * cap)
                resize(s, 2 * cap);
        place(s->slots, s->mask, s->hash, x);
        s->n++;
}

/* remove's match: this pointer */
static bool same_element(const void *x, const void *ctx) {
        return x == ctx;
}

bool pcpd_mapping_set_remove(pcpd_mapping_set *s, const void *x) {
        size_t i, j;

        if (pcpd_mapping_set_find_at(s, s->hash(x), same_element, x, &i) == NULL)
                return false;
        /* backward shift: each later element of the run whose home is not between the hole
         * and itself (cyclically) moves into the hole, so that no search stops short */
        for (j = (i + 1) & s->mask; s->slots[j] != NULL; j = (j + 1) & s->mask) {
                size_t home = pcp_hash64(s->hash(s->slots[j])) & s->mask;

                if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
                        s->slots[i] = s->slots[j];
                        i = j;
                }
        }
        s->slots[i] = NULL;
        s->n--;
        /* halves below 1/8 full (it is then 1/4 full), as a GHashTable shrinks too */
        if (s->mask + 1 > MIN_SLOTS && 8 * s->n < s->mask + 1)
                resize(s, (s->mask + 1) / 2);
        return true;
}
