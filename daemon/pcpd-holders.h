/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-holders: who holds a mapping (unique bus names, one hold per AddMapping) and, the
 * other way round, which mappings a name holds (the manager's m->holder_index), so that a
 * name leaving the bus lets go of all of them at once.
 *
 * Nearly every mapping has exactly one holder, so a mapping does not own a table for it:
 * its mp->holders then points at the one-name set {name} its holder's index entry keeps
 * (shared by every mapping that name alone holds), and its count of holds is
 * mp->n_holds. Only a second distinct holder gives the mapping a table of its own
 * (name -> holds), which it keeps until nobody holds it. The index lists, per name, the
 * mappings that name holds with others in a set, and those it holds alone in an array
 * (mp->alone_pos is the place there), so that a name holding k mappings leaves the bus in
 * O(k), whatever the number of mappings. In both cases mp->holders is a
 * set of its holders' names (g_hash_table_contains() works on it) or NULL when nobody
 * holds it; the counts are read with pcpd_holders_holds().
 */

#include <glib.h>
#include <stdbool.h>

#include "pcpd-mapping.h"

/* A new, empty index: name -> the mappings it holds. g_hash_table_size() is the number of
 * names holding something. */
GHashTable *pcpd_holders_index_new(void);

/* one more hold of `name` on mp */
void pcpd_holders_add(GHashTable *index, pcpd_mapping *mp, const char *name);

/* one hold of `name` on mp less (none when it has none); true if nobody holds mp any more */
bool pcpd_holders_remove(GHashTable *index, pcpd_mapping *mp, const char *name);

/* every hold on mp goes (it is being removed) */
void pcpd_holders_drop(GHashTable *index, pcpd_mapping *mp);

/* `name` left the bus: it holds nothing any more. Returns the mappings it held (NULL when
 * none), each without its holds of name now; the caller decides what becomes of those that
 * nobody holds (pcpd_holders_count() == 0). O(the mappings name held). */
GPtrArray *pcpd_holders_vanish(GHashTable *index, const char *name);

/* Frees what mp itself owns of its holders (its own table), leaving the index as it is:
 * for a mapping freed with the whole index, or one that never was in it. */
void pcpd_holders_free_mapping(pcpd_mapping *mp);

/* how many holds `name` has on mp */
unsigned pcpd_holders_holds(const pcpd_mapping *mp, const char *name);

/* how many distinct names hold mp */
unsigned pcpd_holders_count(const pcpd_mapping *mp);

/* how many holds mp has in all (every name's, one per AddMapping not let go of);
 * O(its holders' names) */
unsigned pcpd_holders_total(const pcpd_mapping *mp);
