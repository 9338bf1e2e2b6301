/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The manager's face on the D-Bus: its objects and methods, and its news as signals. The
 * only place that knows the D-Bus property names of what changed: the Manager's here, the
 * Mapping objects' in pcpd-mapping-bus.[ch]. */

#include <glib.h>
#include <stddef.h>
#include <systemd/sd-bus.h>

#include "pcpd-error.h"
#include "pcpd-manager.h"
#include "pcpd-mapping-bus.h"

/* The bus face's own state (the calls it is authorising, polkit): the userdata of
 * pcpd_bus_listener. Freed after the manager it was given to. */
typedef struct pcpd_bus_face pcpd_bus_face;
pcpd_bus_face *pcpd_bus_face_new(void);
pcpd_bus_face *pcpd_bus_face_free(pcpd_bus_face *face);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_bus_face, pcpd_bus_face_free)

/* Give this to pcpd_manager_new() with a pcpd_bus_face as userdata. Signals go out on the
 * bus given to pcpd_bus_register(), none before; the status line goes to the service
 * manager (STATUS=); holders nobody vouched for are checked (pcpd-bus-track.h). */
extern const pcpd_manager_listener pcpd_bus_listener;

/* The Manager and Mapping objects on bus, and the watch for holders that leave it
 * (pcpd-bus-track.h); before pcpd_manager_start(m). Undone by
 * pcpd_bus_unregister(), which pcpd_bus_listener calls when the manager is being freed
 * (also after a failure here): it ends the calls still being authorised. */
int pcpd_bus_register(pcpd_manager *m, sd_bus *bus);
void pcpd_bus_unregister(pcpd_manager *m);

/* The Manager properties in what, in the order PropertiesChanged lists them, into ret (up
 * to max - 1 of them, then NULL). Returns how many. Bits without a property are ignored.
 * (The Mapping's: pcpd_bus_mapping_property_names(), pcpd-mapping-bus.h.) */
size_t pcpd_bus_manager_property_names(pcpd_manager_changed what, const char **ret, size_t max);

/* Mapping.Release() of mp called by msg: who the caller is, then authorisation, then the
 * release and the reply, as for RemoveMapping(). A method handler's return value. */
int pcpd_bus_release(sd_bus_message *msg, pcpd_mapping *mp, sd_bus_error *error);

/* The contract's error name of a refusal of the core (pcpd-error.h), NULL for
 * PCPD_ERROR_NONE and values out of range: the one table of them. */
const char *pcpd_bus_error_name(pcpd_error error);
