/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcp-htable: an intrusive chained hash table keyed by a uint64_t (the engine's mappings by
 * id, by nonce and, per server, by protocol and port). The node lives in the caller's
 * object and is one pointer: the key is not kept in it but read from the object by the
 * table's key function (the engine's objects hold their keys already: an id, a nonce, a
 * port; 8 octets per node and three nodes in every mapping). A node's key must not change
 * while it is in a table. Several nodes may have the same key (pcp_htable_find_next() walks
 * them). The bucket array doubles when there are twice as many nodes as buckets (4 to 8
 * octets of bucket array a node, besides its 8-octet node); if it cannot,
 * the table keeps working with longer chains. Keys are mixed (pcp_hash64()), so callers may
 * use sequential or structured keys as they are.
 *
 * Lookups on a hot path walk the chain themselves (pcp_htable_chain(), comparing what they
 * know of the object inline) rather than calling the key function per node.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct pcp_hnode {
        struct pcp_hnode *next;
} pcp_hnode;

/* the key of the object x is in */
typedef uint64_t (*pcp_htable_key_fn)(const pcp_hnode *x);

typedef struct pcp_htable {
        pcp_hnode **buckets;
        size_t mask; /* buckets - 1 */
        size_t n;
        pcp_htable_key_fn key;
} pcp_htable;

/* n_buckets: a power of two, the starting size. -EINVAL otherwise (or no key function),
 * -ENOMEM. */
int pcp_htable_init(pcp_htable *h, size_t n_buckets, pcp_htable_key_fn key);
/* Frees the bucket array (the nodes are the caller's and are not touched). */
void pcp_htable_done(pcp_htable *h);

/* x must not be in a table. */
void pcp_htable_add(pcp_htable *h, pcp_hnode *x);
/* Takes x out of h; nothing if it is not there. */
void pcp_htable_remove(pcp_htable *h, pcp_hnode *x);

/* a 64-bit finaliser (MurmurHash3's fmix64): every input bit moves every output bit */
static inline uint64_t pcp_hash64(uint64_t x) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return x;
}

/* The chain every node with this key is in (with others: follow ->next and compare). */
static inline pcp_hnode *pcp_htable_chain(const pcp_htable *h, uint64_t key) {
        return h->buckets[pcp_hash64(key) & h->mask];
}

/* The first node with this key, NULL if none; then the next one with the same key after x. */
static inline pcp_hnode *pcp_htable_find(const pcp_htable *h, uint64_t key) {
        for (pcp_hnode *x = pcp_htable_chain(h, key); x != NULL; x = x->next)
                if (h->key(x) == key)
                        return x;
        return NULL;
}

static inline pcp_hnode *pcp_htable_find_next(const pcp_htable *h, const pcp_hnode *x) {
        uint64_t key = h->key(x);

        for (x = x->next; x != NULL; x = x->next)
                if (h->key(x) == key)
                        return (pcp_hnode *) x;
        return NULL;
}

static inline size_t pcp_htable_size(const pcp_htable *h) {
        return h->n;
}
