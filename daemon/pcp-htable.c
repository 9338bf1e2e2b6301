/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcp-htable.h"

#include <errno.h>
#include <stdlib.h>

int pcp_htable_init(pcp_htable *h, size_t n_buckets, pcp_htable_key_fn key) {
        h->buckets = NULL;
        h->mask = h->n = 0;
        h->key = key;
        if (key == NULL || n_buckets == 0 || (n_buckets & (n_buckets - 1)) != 0)
                return -EINVAL;
        h->buckets = calloc(n_buckets, sizeof(*h->buckets));
        if (h->buckets == NULL)
                return -ENOMEM;
        h->mask = n_buckets - 1;
        return 0;
}

void pcp_htable_done(pcp_htable *h) {
        free(h->buckets);
        h->buckets = NULL;
        h->mask = h->n = 0;
}

static void grow(pcp_htable *h) {
        size_t n = (h->mask + 1) * 2;
        pcp_hnode **nb;

        if (n == 0)
                return; /* cannot double any more */
        nb = calloc(n, sizeof(*nb));
        if (nb == NULL)
                return; /* keep working with longer chains */
        for (size_t i = 0; i <= h->mask; i++) {
                pcp_hnode *x = h->buckets[i];

                while (x != NULL) {
                        pcp_hnode *next = x->next;
                        size_t b = pcp_hash64(h->key(x)) & (n - 1);

                        x->next = nb[b];
                        nb[b] = x;
                        x = next;
                }
        }
        free(h->buckets);
        h->buckets = nb;
        h->mask = n - 1;
}

void pcp_htable_add(pcp_htable *h, pcp_hnode *x) {
        size_t b;

        /* two nodes a bucket on average before it doubles: at 10,000 mappings the engine's
         * three tables are 8,192 buckets each rather than 16,384 (64 KiB each less; a
         * chain is 1-2 nodes on average, as it was 0.5-1) */
        if (h->n >= 2 * (h->mask + 1))
                grow(h);
        b = pcp_hash64(h->key(x)) & h->mask;
        x->next = h->buckets[b];
        h->buckets[b] = x;
        h->n++;
}

void pcp_htable_remove(pcp_htable *h, pcp_hnode *x) {
        for (pcp_hnode **pp = &h->buckets[pcp_hash64(h->key(x)) & h->mask]; *pp != NULL; pp = &(*pp)->next)
                if (*pp == x) {
                        *pp = x->next;
                        x->next = NULL;
                        h->n--;
                        return;
                }
}
