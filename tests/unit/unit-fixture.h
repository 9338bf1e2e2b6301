/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the unit tests of the daemon's core share: a bus to build messages on, the manager
 * built without a bus over a state directory of the test's own, and that directory's
 * removal. cmocka's assertions fail the calling test. */

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

/* Removes the files in dir (made by g_dir_make_tmp() for this test) and dir itself: only
 * that exact path. */
void unit_rm_own_dir(const char *dir);
