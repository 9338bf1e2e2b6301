/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "pcpd-holders.h"

/* A name in the index: the set {name} its sole-held mappings point at (mp->holders ==
 * e->alone), those mappings in an array (each at its mp->alone_pos, so that one leaves in
 * O(1): the last takes its place), and the mappings it holds with others (those with a
 * table of their own). The array costs a pointer a mapping (up to twice that while it
 * grows by doubling; it halves when three quarters are unused; the place fits in padding
 * pcpd_mapping had anyway), where a set of them cost ~24 octets; a name that leaves the
 * bus goes through its own mappings only, O(k), not through every mapping. The index's
 * key is e->name. */
typedef struct holder_entry {
        char *name;
        GHashTable *alone;        /* name -> 1, shared; never changed after creation */
        pcpd_mapping **alone_mps; /* those with mp->holders == alone, each at mp->alone_pos */
        guint n_alone, alone_cap;
        GHashTable *mappings; /* set of pcpd_mapping *: those it holds with other names */
} holder_entry;

static void entry_free(holder_entry *e) {
        g_hash_table_destroy(e->alone);
        g_free(e->alone_mps);
        g_hash_table_destroy(e->mappings);
        g_free(e->name);
        g_free(e);
}

GHashTable *pcpd_holders_index_new(void) {
        return g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) entry_free);
}

static holder_entry *entry_get(GHashTable *index, const char *name) {
        holder_entry *e = g_hash_table_lookup(index, name);

        if (e != NULL)
                return e;
        e = g_new0(holder_entry, 1);
        e->name = g_strdup(name);
        e->alone = g_hash_table_new(g_str_hash, g_str_equal);
        g_hash_table_add(e->alone, e->name);
        e->mappings = g_hash_table_new(g_direct_hash, g_direct_equal);
        g_hash_table_insert(index, e->name, e);
        return e;
}

static void entry_drop_if_unused(GHashTable *index, holder_entry *e) {
        if (e->n_alone == 0 && g_hash_table_size(e->mappings) == 0)
                g_hash_table_remove(index, e->name); /* frees e */
}

/* mp becomes one of the mappings e's name holds alone */
static void alone_link(holder_entry *e, pcpd_mapping *mp) {
        if (e->n_alone == e->alone_cap) {
                g_assert(e->alone_cap < G_MAXUINT32 / 2);
                e->alone_cap = e->alone_cap > 0 ? 2 * e->alone_cap : 1;
                e->alone_mps = g_renew(pcpd_mapping *, e->alone_mps, e->alone_cap);
        }
        mp->holders = e->alone;
        mp->alone_pos = e->n_alone;
        e->alone_mps[e->n_alone++] = mp;
}

/* mp is no longer one of them (mp->holders is left as it is): the last takes its place */
static void alone_unlink(holder_entry *e, pcpd_mapping *mp) {
        guint pos = mp->alone_pos;

        g_assert(mp->holders == e->alone && pos < e->n_alone && e->alone_mps[pos] == mp);
        e->alone_mps[pos] = e->alone_mps[--e->n_alone];
        e->alone_mps[pos]->alone_pos = pos;
        mp->alone_pos = 0;
        if (e->alone_cap >= 64 && e->n_alone < e->alone_cap / 4) {
                e->alone_cap /= 2;
                e->alone_mps = g_renew(pcpd_mapping *, e->alone_mps, e->alone_cap);
        }
}

/* mp no longer held by name at all (called while mp->holders is still as it was) */
static void entry_forget(GHashTable *index, const char *name, pcpd_mapping *mp) {
        holder_entry *e = g_hash_table_lookup(index, name);

        if (e == NULL)
                return;
        if (mp->holders == e->alone)
                alone_unlink(e, mp);
        else
                g_hash_table_remove(e->mappings, mp);
        entry_drop_if_unused(index, e);
}

/* whether mp's holders are its sole holder's shared set */
static bool holders_shared(const pcpd_mapping *mp) {
        return mp->holders != NULL && mp->n_holds > 0;
}

unsigned pcpd_holders_holds(const pcpd_mapping *mp, const char *name) {
        if (mp->holders == NULL || name == NULL || !g_hash_table_contains(mp->holders, name))
                return 0;
        if (holders_shared(mp))
                return mp->n_holds;
        return GPOINTER_TO_UINT(g_hash_table_lookup(mp->holders, name));
}

unsigned pcpd_holders_count(const pcpd_mapping *mp) {
        return mp->holders != NULL ? g_hash_table_size(mp->holders) : 0;
}

unsigned pcpd_holders_total(const pcpd_mapping *mp) {
        GHashTableIter it;
        gpointer v;
        unsigned n = 0;

        if (mp->holders == NULL)
                return 0;
        if (holders_shared(mp))
                return mp->n_holds;
        g_hash_table_iter_init(&it, mp->holders);
        while (g_hash_table_iter_next(&it, NULL, &v))
                n += GPOINTER_TO_UINT(v);
        return n;
}

/* the one name of a shared set */
static const char *sole_name(GHashTable *alone) {
        GHashTableIter it;
        gpointer k = NULL;

        g_hash_table_iter_init(&it, alone);
        (void) g_hash_table_iter_next(&it, &k, NULL);
        return k;
}

void pcpd_holders_add(GHashTable *index, pcpd_mapping *mp, const char *name) {
        holder_entry *e;
        GHashTable *own;

        if (name == NULL)
                return;
        e = entry_get(index, name);
        if (mp->holders == NULL) {
                alone_link(e, mp);
                mp->n_holds = 1;
                return;
        }
        if (holders_shared(mp)) {
                holder_entry *first;

                if (mp->holders == e->alone) {
                        mp->n_holds++;
                        return;
                }
                /* a second name: a table of its own from now on, listed by both names */
                first = g_hash_table_lookup(index, sole_name(mp->holders));
                g_assert(first != NULL);
                alone_unlink(first, mp);
                g_hash_table_add(first->mappings, mp);
                own = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
                g_hash_table_insert(own, g_strdup(sole_name(mp->holders)), GUINT_TO_POINTER(mp->n_holds));
                mp->holders = own;
                mp->n_holds = 0;
        }
        g_hash_table_add(e->mappings, mp);
        g_hash_table_replace(mp->holders, g_strdup(name),
                             GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(mp->holders, name)) + 1));
}

/* nobody holds mp any more */
static void holders_clear(pcpd_mapping *mp) {
        if (mp->holders != NULL && !holders_shared(mp))
                g_hash_table_destroy(mp->holders);
        mp->holders = NULL;
        mp->n_holds = 0;
}

void pcpd_holders_free_mapping(pcpd_mapping *mp) {
        holders_clear(mp);
}

bool pcpd_holders_remove(GHashTable *index, pcpd_mapping *mp, const char *name) {
        unsigned n = pcpd_holders_holds(mp, name);

        if (n == 0)
                return mp->holders == NULL;
        if (holders_shared(mp)) {
                if (mp->n_holds > 1) {
                        mp->n_holds--;
                        return false;
                }
                entry_forget(index, name, mp);
                holders_clear(mp);
                return true;
        }
        if (n > 1) {
                g_hash_table_replace(mp->holders, g_strdup(name), GUINT_TO_POINTER(n - 1));
                return false;
        }
        entry_forget(index, name, mp);
        g_hash_table_remove(mp->holders, name);
        if (g_hash_table_size(mp->holders) > 0)
                return false;
        holders_clear(mp);
        return true;
}

void pcpd_holders_drop(GHashTable *index, pcpd_mapping *mp) {
        g_autoptr(GPtrArray) names = NULL;
        GHashTableIter it;
        gpointer k;

        if (mp->holders == NULL)
                return;
        if (holders_shared(mp)) {
                g_autofree char *name = g_strdup(sole_name(mp->holders));
                entry_forget(index, name, mp);
                holders_clear(mp);
                return;
        }
        names = g_ptr_array_new();
        g_hash_table_iter_init(&it, mp->holders);
        while (g_hash_table_iter_next(&it, &k, NULL))
                g_ptr_array_add(names, k);
        for (guint i = 0; i < names->len; i++)
                entry_forget(index, names->pdata[i], mp);
        holders_clear(mp); /* frees the names */
}

GPtrArray *pcpd_holders_vanish(GHashTable *index, const char *name) {
        holder_entry *e = g_hash_table_lookup(index, name);
        GPtrArray *held;
        GHashTableIter it;
        gpointer k;

        if (e == NULL)
                return NULL;
        held = g_ptr_array_sized_new(g_hash_table_size(e->mappings) + e->n_alone);
        g_hash_table_iter_init(&it, e->mappings);
        while (g_hash_table_iter_next(&it, &k, NULL))
                g_ptr_array_add(held, k);
        for (guint i = 0; i < held->len; i++) {
                pcpd_mapping *mp = held->pdata[i];
                g_hash_table_remove(mp->holders, name);
                if (g_hash_table_size(mp->holders) == 0)
                        holders_clear(mp);
        }
        /* those it alone holds: every hold of theirs goes with it */
        for (guint i = 0; i < e->n_alone; i++) {
                pcpd_mapping *mp = e->alone_mps[i];
                g_assert(mp->holders == e->alone);
                mp->alone_pos = 0;
                holders_clear(mp);
                g_ptr_array_add(held, mp);
        }
        e->n_alone = 0;
        g_hash_table_remove(index, name); /* frees e and its shared set: nobody points at it now */
        return held;
}
