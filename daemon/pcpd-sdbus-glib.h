/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

/* Runs an sd_bus connection from a GLib main context (the one libnm also uses): a GSource
 * on the bus fd whose timeout is the bus's own. on_error is called once if the connection
 * fails. Returns the source id. */
guint pcpd_sd_bus_attach_glib(sd_bus *bus, GMainContext *context, GSourceFunc on_error, gpointer data);
