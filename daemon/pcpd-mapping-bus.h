/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One mapping's face on the D-Bus: the org.freedesktop.PCP1.Mapping objects (their vtable,
 * read through one typed getter per property or straight from the mapping's fields) and
 * the signals that tell about them. Part of the bus face (pcpd-bus.h), which registers
 * them and hands them the manager's news. */

#include <stddef.h>
#include <systemd/sd-bus.h>

#include "pcpd-manager.h"

/* The Mapping objects under PCP1_MAPPING_PATH_PREFIX, found in m, and their node
 * enumerator; the ObjectManager at the manager's path is pcpd-bus.c's. */
int pcpd_mapping_bus_register(pcpd_manager *m, sd_bus *bus);

/* The news of one mapping on bus (nothing when it is NULL: no bus yet): InterfacesAdded with
 * every property; PropertiesChanged with the values of what changed; InterfacesRemoved and
 * the manager's MappingRemoved. */
void pcpd_mapping_bus_added(sd_bus *bus, pcpd_mapping *mp);
void pcpd_mapping_bus_changed(sd_bus *bus, pcpd_mapping *mp, pcpd_mapping_changed what);
void pcpd_mapping_bus_removed(sd_bus *bus, pcpd_mapping *mp, pcpd_remove_reason reason);

/* The Mapping properties in what, in the order PropertiesChanged lists them, into ret (up
 * to max - 1 of them, then NULL). Returns how many. Bits without a property are ignored. */
/* PropertiesChanged of iface on path for names (NULL-terminated, each a property of vt that
 * emits its change), read from object as sd_bus_emit_properties_changed_strv() reads it
 * through the vtable vt registered for it, and the same message, built without looking
 * the vtable up in the bus's object tree. */
int pcpd_bus_emit_properties_changed(sd_bus *bus, const char *path, const char *iface, const sd_bus_vtable *vt,
                                     void *object, const char *const *names);

size_t pcpd_bus_mapping_property_names(pcpd_mapping_changed what, const char **ret, size_t max);
