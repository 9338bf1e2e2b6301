/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"

#include "pf-app-info.h"

#include <gio/gdesktopappinfo.h>
#include <glib/gi18n.h>
#include <string.h>

#include "pcp1-contract.h"

#define GENERIC_ICON "application-x-executable-symbolic"

PfAppInfo *pf_app_info_free(PfAppInfo *info) {
        if (info == NULL)
                return NULL;
        g_free(info->key);
        g_free(info->name);
        g_clear_object(&info->icon);
        g_free(info->desktop_id);
        g_free(info);
        return NULL;
}

/* systemd unit name escaping: "\x2d" stands for '-' */
static char *unit_unescape(const char *s, size_t len) {
        GString *out = g_string_sized_new(len);

        for (size_t i = 0; i < len; i++) {
                if (s[i] == '\\' && i + 3 < len && s[i + 1] == 'x' && g_ascii_isxdigit(s[i + 2]) &&
                    g_ascii_isxdigit(s[i + 3])) {
                        char c = (char) (g_ascii_xdigit_value(s[i + 2]) * 16 + g_ascii_xdigit_value(s[i + 3]));
                        if (c != '\0') {
                                g_string_append_c(out, c);
                                i += 3;
                                continue;
                        }
                }
                g_string_append_c(out, s[i]);
        }
        return g_string_free(out, FALSE);
}

static void add_candidate(GPtrArray *out, const char *s, size_t len) {
        char *c;

        if (len == 0)
                return;
        c = unit_unescape(s, len);
        for (guint i = 0; i < out->len; i++)
                if (g_str_equal(out->pdata[i], c)) {
                        g_free(c);
                        return;
                }
        g_ptr_array_add(out, c);
}

char **pf_app_ids_from_unit(const char *unit) {
        g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
        const char *rest, *end;
        gboolean scope;
        size_t len;

        if (unit == NULL)
                goto done;
        if (g_str_has_suffix(unit, ".scope"))
                scope = TRUE;
        else if (g_str_has_suffix(unit, ".service"))
                scope = FALSE;
        else
                goto done;
        len = strlen(unit) - (scope ? strlen(".scope") : strlen(".service"));

        if (g_str_has_prefix(unit, "app-"))
                rest = unit + strlen("app-");
        else if (g_str_has_prefix(unit, "dbus-:")) {
                /* "dbus-:1.2-org.gnome.Foo@0.service": the part after the bus name */
                rest = strchr(unit + strlen("dbus-:"), '-');
                if (rest == NULL || rest >= unit + len)
                        goto done;
                rest++;
                end = memchr(rest, '@', (size_t) (unit + len - rest));
                add_candidate(out, rest, (size_t) ((end != NULL ? end : unit + len) - rest));
                goto done;
        } else {
                /* any other unit: a system service such as "syncthing@alice.service" */
                end = memchr(unit, '@', len);
                add_candidate(out, unit, end != NULL ? (size_t) (end - unit) : len);
                goto done;
        }

        /* app-[<launcher>-]<id>-<random>.scope or app-[<launcher>-]<id>[@<random>].service */
        end = unit + len;
        if (scope) {
                const char *dash = g_strrstr_len(rest, end - rest, "-");
                if (dash != NULL && dash > rest)
                        end = dash;
        } else {
                const char *at = memchr(rest, '@', (size_t) (end - rest));
                if (at != NULL)
                        end = at;
        }
        {
                /* the launcher never contains '-' and the id escapes its own, but not every
                 * launcher escapes: try "<id>" after the launcher first, then all of it */
                const char *dash = memchr(rest, '-', (size_t) (end - rest));
                if (dash != NULL)
                        add_candidate(out, dash + 1, (size_t) (end - dash - 1));
                add_candidate(out, rest, (size_t) (end - rest));
        }

done:
        g_ptr_array_add(out, NULL);
        return (char **) g_ptr_array_free(g_steal_pointer(&out), FALSE);
}

static gboolean desktop_exists(const char *desktop_id) {
        g_autoptr(GDesktopAppInfo) info = g_desktop_app_info_new(desktop_id);
        return info != NULL;
}

char *pf_desktop_id_for(const char *id) {
        g_autofree char *exact = NULL, *lower = NULL;
        g_autolist(GAppInfo) all = NULL;

        if (id == NULL || *id == '\0' || strchr(id, '/') != NULL)
                return NULL;
        exact = g_strconcat(id, ".desktop", NULL);
        if (desktop_exists(exact))
                return g_steal_pointer(&exact);
        lower = g_ascii_strdown(exact, -1);
        if (desktop_exists(lower))
                return g_steal_pointer(&lower);

        /* like the shell's window matching: an old-style id ("Fractal", "firefox") names the
         * window class or the last part of a reverse-DNS desktop id */
        all = g_app_info_get_all();
        for (GList *l = all; l != NULL; l = l->next) {
                const char *wmclass = g_desktop_app_info_get_startup_wm_class(G_DESKTOP_APP_INFO(l->data));
                if (wmclass != NULL && g_ascii_strcasecmp(wmclass, id) == 0)
                        return g_strdup(g_app_info_get_id(l->data));
        }
        for (GList *l = all; l != NULL; l = l->next) {
                const char *did = g_app_info_get_id(l->data);
                const char *dot;
                g_autofree char *base = NULL;

                if (did == NULL || !g_str_has_suffix(did, ".desktop"))
                        continue;
                base = g_strndup(did, strlen(did) - strlen(".desktop"));
                dot = strrchr(base, '.');
                if (dot != NULL && g_ascii_strcasecmp(dot + 1, id) == 0)
                        return g_strdup(did);
        }
        return NULL;
}

/* Snap desktop files are "<snap>_<app>.desktop" (snapd installs them with that name). */
static char *snap_desktop_id(const char *snap) {
        g_autofree char *same = g_strdup_printf("%s_%s.desktop", snap, snap);
        g_autofree char *prefix = g_strdup_printf("%s_", snap);
        g_autolist(GAppInfo) all = NULL;

        if (desktop_exists(same))
                return g_steal_pointer(&same);
        all = g_app_info_get_all();
        for (GList *l = all; l != NULL; l = l->next) {
                const char *did = g_app_info_get_id(l->data);
                g_autofree char *instance =
                        g_desktop_app_info_get_string(G_DESKTOP_APP_INFO(l->data), "X-SnapInstanceName");
                if ((did != NULL && g_str_has_prefix(did, prefix)) || g_strcmp0(instance, snap) == 0)
                        return g_strdup(did);
        }
        return NULL;
}

static char *process_name(guint32 pid) {
        g_autofree char *path = NULL, *comm = NULL;

        if (pid == 0)
                return NULL;
        path = g_strdup_printf("/proc/%u/comm", pid);
        if (!g_file_get_contents(path, &comm, NULL, NULL))
                return NULL;
        g_strstrip(comm);
        if (*comm == '\0' || !g_utf8_validate(comm, -1, NULL))
                return NULL;
        return g_steal_pointer(&comm);
}

PfAppInfo *pf_app_info_lookup(const char *app_id, const char *source, guint32 pid) {
        g_autoptr(PfAppInfo) info = g_new0(PfAppInfo, 1);
        g_autofree char *fallback = NULL;
        g_auto(GStrv) ids = NULL;

        if (app_id == NULL)
                app_id = "";
        if (source == NULL)
                source = PCP1_APP_ID_NONE;

        if (*app_id == '\0')
                ; /* nothing to look up: the process name below */
        else if (g_str_equal(source, PCP1_APP_ID_FLATPAK))
                /* a Flatpak's id is its desktop file's id */
                info->desktop_id = pf_desktop_id_for(app_id);
        else if (g_str_equal(source, PCP1_APP_ID_SNAP))
                info->desktop_id = snap_desktop_id(app_id);
        else if (g_str_equal(source, PCP1_APP_ID_SYSTEMD_UNIT)) {
                ids = pf_app_ids_from_unit(app_id);
                for (size_t i = 0; ids[i] != NULL && info->desktop_id == NULL; i++)
                        info->desktop_id = pf_desktop_id_for(ids[i]);
                if (ids[0] != NULL)
                        fallback = g_strdup(ids[0]);
        } else
                info->desktop_id = pf_desktop_id_for(app_id);

        if (info->desktop_id != NULL) {
                g_autoptr(GDesktopAppInfo) d = g_desktop_app_info_new(info->desktop_id);
                if (d != NULL) {
                        GIcon *icon = g_app_info_get_icon(G_APP_INFO(d));
                        info->name = g_strdup(g_app_info_get_display_name(G_APP_INFO(d)));
                        if (icon != NULL)
                                info->icon = g_object_ref(icon);
                }
                info->key = g_strconcat("desktop:", info->desktop_id, NULL);
        } else if (*app_id != '\0')
                /* every instance of one unit-launched app groups together */
                info->key = g_strconcat("app:", fallback != NULL ? fallback : app_id, NULL);
        else
                info->key = g_strdup_printf("pid:%u", pid);

        if (info->name == NULL || *info->name == '\0') {
                g_free(info->name);
                if (fallback != NULL)
                        info->name = g_steal_pointer(&fallback);
                else if (*app_id != '\0')
                        info->name = g_strdup(app_id);
                else {
                        info->name = process_name(pid);
                        if (info->name == NULL)
                                /* TRANSLATORS: a program whose name is unknown, %u is its process id */
                                info->name = g_strdup_printf(_("Process %u"), pid);
                }
        }
        if (info->icon == NULL)
                info->icon = g_themed_icon_new(GENERIC_ICON);
        return g_steal_pointer(&info);
}
