/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the unit tests of the daemon's core share: a bus to build messages on, the manager
 * built without a bus over a state directory of the test's own, and such a directory's
 * making, opening and removal. cmocka's assertions fail the calling test. */

#include <glib.h>
#include <systemd/sd-bus.h>

#include "pcpd-manager.h"

/* A started bus on one end of a socket pair (the other closed): for building and sealing
 * messages, never for sending. NULL on failure. */
sd_bus *unit_offline_bus(void);

/* cmocka group setup/teardown that keep unit_offline_bus() in *bus_ret of the file. */
int unit_offline_bus_setup(sd_bus **bus_ret);
int unit_offline_bus_teardown(sd_bus **bus_ret);

/* The manager over state directory dir (opened and loaded as pcpd does), not started. */
pcpd_manager *unit_manager_new(const pcpd_config *config, const char *dir, GMainLoop *loop,
                               const pcpd_manager_listener *listener, void *userdata);

/* A new directory of this test's own, "pcpd-test-<what>-XXXXXX" in the temporary directory,
 * mode 0700 (as pcpd wants its state directory). Free with g_free(). */
char *unit_make_own_dir(const char *what);

/* dir opened as pcpd opens its state directory (O_DIRECTORY, close-on-exec). */
int unit_open_dir(const char *dir);

/* The contents of the file name in dir, NUL-terminated (g_free()); NULL when it cannot be
 * read (e.g. there is none). */
char *unit_slurp(const char *dir, const char *name);

/* Removes what is in dir (made by unit_make_own_dir() or g_dir_make_tmp() for this test),
 * directories below it too, and dir itself: only that exact path; a symbolic link is
 * removed, never followed. Tries everything; returns 0, or -errno of the first thing it
 * could not remove (a test that wants its directory cleaned up asserts 0). */
int unit_rm_own_dir(const char *dir);

/* A saved mapping record the state codec round-trips (pcpd_state_mapping_free()): id
 * decides the internal port (1000 + id % 60000) and the nonce; version is the external
 * port, so that a changed record differs from the one before; description names the test. */
pcpd_state_mapping *unit_state_record(uint64_t id, uint16_t version, const char *description);

/* The ids (uint64_t keys) of records, a table id -> record, as a store's owner reports them
 * (pcpd_store_ops.snapshot_ids): a new array of *ret_n (at least one slot, g_free()). */
uint64_t *unit_record_ids(GHashTable *records, size_t *ret_n);
