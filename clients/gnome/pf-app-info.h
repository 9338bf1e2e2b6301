/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Which application a mapping belongs to, for display: pcpd reports an AppId and where it
 * came from (Flatpak, snap, systemd unit, declared by the caller, none). This maps it to a
 * desktop file the way GNOME does for its own app lists (desktop file id = app id, snap
 * desktop files "<snap>_<app>.desktop", systemd's "app[-<launcher>]-<id>[-<random>].scope"
 * names), else to the unit or process name with a generic icon.
 */

#include <gio/gio.h>

typedef struct {
        char *key;        /* groups the mappings of one application */
        char *name;       /* what the user sees */
        GIcon *icon;
        char *desktop_id; /* NULL when no desktop file was found */
} PfAppInfo;

/* @app_id and @source are Mapping.AppId and Mapping.AppIdSource; @pid is Mapping.PID (for
 * the process name when nothing else is known). Never NULL. */
PfAppInfo *pf_app_info_lookup(const char *app_id, const char *source, guint32 pid);
PfAppInfo *pf_app_info_free(PfAppInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PfAppInfo, pf_app_info_free)

/* The application ids a systemd unit name may stand for, best first (systemd's desktop
 * environment conventions: "app-gnome-org.gnome.Foo-1234.scope" → "org.gnome.Foo",
 * "app-org.gnome.Foo@x.service", "dbus-:1.2-org.gnome.Foo@0.service", escapes \xNN), or
 * the unit's name for other units ("syncthing@alice.service" → "syncthing"). Never NULL;
 * empty when @unit is not a unit name. */
char **pf_app_ids_from_unit(const char *unit);

/* The id of the desktop file that belongs to @id (as declared by an app or derived from a
 * unit), NULL when there is none: "<id>.desktop", then lower case, then a desktop file whose
 * StartupWMClass or last id component is @id (case-insensitive). */
char *pf_desktop_id_for(const char *id);
