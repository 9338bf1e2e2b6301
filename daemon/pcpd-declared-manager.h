/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The declared mappings (pcpd-declared.h) in a running pcpd: each one is a persistent
 * mapping of uid 0 whose Declared property names it. pcpd_manager_set_declared() makes
 * the mappings match a new set (at start and on reload): a new declaration is mapped, a
 * removed one deleted upstream, a changed one asked for again; an unchanged one (also
 * after a restart, restored with its nonce) is left alone. One that cannot be mapped yet
 * (no server, switched off, a conflict) is tried again every PCPD_DECLARED_RETRY_S
 * seconds, and so is one whose mapping went away (released, the network lost). Of two
 * declarations of one port (protocol, port and family), the first by name has it,
 * whatever had it before: a later one's mapping is given up (removed, said as a warning
 * naming both) wherever the rule is applied, at start, on reload and at every retry.
 */

#include "pcpd-declared.h"
#include "pcpd-manager.h"

#define PCPD_DECLARED_RETRY_S 10

/* Takes set over (the GPtrArray of pcpd_declared from pcpd_declared_load()). */
void pcpd_manager_set_declared(pcpd_manager *m, GPtrArray *set);
/* DeclareMapping: saves d in the state directory's mappings.d and applies it; *ret_path
 * is its mapping's object path, "/" when it could not be mapped yet. */
int pcpd_manager_declare(pcpd_manager *m, const pcpd_declared *d, char **ret_path, pcpd_failure *error);
/* RemoveDeclaredMapping: forgets name's file (only the state directory's) and mapping. */
int pcpd_manager_undeclare(pcpd_manager *m, const char *name, pcpd_failure *error);
/* The set in force (may be NULL). */
GPtrArray *pcpd_manager_get_declared(pcpd_manager *m);
/* The mapping of the declaration called name, or NULL. */
pcpd_mapping *pcpd_manager_declared_mapping(pcpd_manager *m, const char *name);
/* Asks for every declaration without a mapping now, not at the next retry (port mapping
 * switched on again). */
void pcpd_manager_declared_sync_now(pcpd_manager *m);
void pcpd_manager_declared_free(pcpd_manager *m);
