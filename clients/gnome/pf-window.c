/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The "Port Forwarding" page: pcpd's state, the switch for the whole computer behind a
 * polkit lock, and every forwarded port grouped by the application that holds it.
 *
 * Everything on the page follows the daemon: the Manager proxy's cached properties
 * (PropertiesChanged carries the values) and an ObjectManager client for the mapping
 * objects (InterfacesAdded/Removed). Nothing is polled; the only timer rewrites the "expires
 * in" texts from the ExpiresAt values already known.
 */

#include "config.h"

#include "pf-window.h"

#include <glib/gi18n.h>
#include <polkit/polkit.h>
#include <pwd.h>
#include <unistd.h>

#include "pcp1-contract.h"
#include "pf-app-info.h"
#include "pf-banner.h"
#include "pf-dbus.h"
#include "pf-format.h"
#include "pf-lock-button.h"

/* how long a method call that may show a polkit password dialog may take */
#define INTERACTIVE_TIMEOUT_MS (5 * 60 * 1000)
#define TICK_SECONDS 30
/* the activation of pcpd: the bus (or systemd) gives up first, and says why */
#define START_TIMEOUT_MS (2 * 60 * 1000)

typedef struct PfGroup PfGroup;

typedef struct {
        char *path;
        Pcp1Mapping *proxy;
        PfGroup *group;
        GtkWidget *row;
        GtkWidget *remove;
        char *sort_key;
} PfItem;

struct PfGroup {
        PfWindow *window;
        char *key;
        PfAppInfo *info;
        GtkWidget *row;
        GtkWidget *remove_all;
        GPtrArray *items; /* PfItem, not owned */
        gboolean dirty;   /* its subtitle and label wait for update_groups_idle() */
};

struct _PfWindow {
        AdwApplicationWindow parent_instance;

        GCancellable *cancellable;
        Pcp1Manager *manager;
        GDBusObjectManager *objects;
        GPermission *permission;
        /* the first look at the service: the Manager proxy made (or failed), and the one
         * activation attempt answered; until both, the page says "Connecting…" */
        gboolean manager_tried;
        gboolean start_done, start_ok;
        gboolean owner_seen; /* the proxy followed the name's owner after the start */
        char *start_error;   /* why the activation failed; NULL once the service was seen */

        GtkWidget *toasts;
        GtkWidget *lock_banner, *lock_button;
        GtkWidget *service_banner;
        GtkWidget *status_row, *enabled_switch;
        GtkWidget *details, *addresses_row, *version_row;
        GPtrArray *server_rows;
        GVariant *shown_servers;
        GtkWidget *ports_group, *empty_page;

        GHashTable *groups;    /* key → PfGroup */
        GHashTable *items;     /* object path → PfItem */
        GHashTable *app_infos; /* "source\napp id\npid" → key of the group */
        gboolean syncing_switch;
        guint tick_id;
        guint groups_idle_id;
        GHashTable *user_names; /* uid → name: one passwd lookup a user, not one a row */
        char *last_toast;
        /* for the test control: passwd lookups made, row texts changed */
        guint passwd_lookups, text_updates;

        PfWindowChangedFunc changed_func;
        gpointer changed_data;
};

G_DEFINE_FINAL_TYPE(PfWindow, pf_window, ADW_TYPE_APPLICATION_WINDOW)

static void changed(PfWindow *self, const char *what) {
        if (self->changed_func != NULL)
                self->changed_func(self, what, self->changed_data);
}

void pf_window_set_changed_func(PfWindow *self, PfWindowChangedFunc func, gpointer user_data) {
        g_return_if_fail(PF_IS_WINDOW(self));
        self->changed_func = func;
        self->changed_data = user_data;
}

const char *pf_window_get_last_toast(PfWindow *self) {
        g_return_val_if_fail(PF_IS_WINDOW(self), NULL);
        return self->last_toast;
}

static void show_toast(PfWindow *self, const char *text) {
        /* a toast's title is Pango markup (libadwaita 1.2): the daemon's words are text */
        g_autofree char *escaped = g_markup_escape_text(text, -1);
        AdwToast *toast = adw_toast_new(escaped);
        /* shown whole: a title label is ellipsized after one line */
        GtkWidget *label = gtk_label_new(text);

        gtk_label_set_wrap(GTK_LABEL(label), TRUE);
        gtk_label_set_wrap_mode(GTK_LABEL(label), PANGO_WRAP_WORD_CHAR);
        gtk_label_set_max_width_chars(GTK_LABEL(label), 60);
        gtk_label_set_xalign(GTK_LABEL(label), 0);
        gtk_widget_add_css_class(label, "heading");
        adw_toast_set_custom_title(toast, label);

        adw_toast_set_timeout(toast, 10);
        g_free(self->last_toast);
        self->last_toast = g_strdup(text);
        adw_toast_overlay_add_toast(ADW_TOAST_OVERLAY(self->toasts), toast);
        changed(self, "toast");
}

/* A failed call, told as "<what>: <why, in the user's language> — <the daemon's sentence>". */
static void show_error(PfWindow *self, const char *what, GError *error) {
        g_autofree char *name = g_dbus_error_get_remote_error(error);
        g_autofree char *text = NULL;

        if (name != NULL)
                g_dbus_error_strip_remote_error(error);
        text = pf_format_call_error(what, name, error->message);
        show_toast(self, text);
}

void pf_window_get_counts(PfWindow *self, guint *passwd_lookups, guint *text_updates) {
        g_return_if_fail(PF_IS_WINDOW(self));
        *passwd_lookups = self->passwd_lookups;
        *text_updates = self->text_updates;
}

/* A user's name, looked up once (NSS may be slow: LDAP, sssd) and kept while the window is. */
static const char *user_name(PfWindow *self, guint32 uid) {
        struct passwd pw, *res = NULL;
        char buf[1024];
        char *name = g_hash_table_lookup(self->user_names, GUINT_TO_POINTER(uid));

        if (name != NULL)
                return name;
        self->passwd_lookups++;
        if (getpwuid_r((uid_t) uid, &pw, buf, sizeof buf, &res) == 0 && res != NULL &&
            g_utf8_validate(pw.pw_name, -1, NULL))
                name = g_strdup(pw.pw_name);
        else
                /* a user without a name: the number ("user 4242") */
                name = g_strdup_printf("%u", uid);
        g_hash_table_insert(self->user_names, GUINT_TO_POINTER(uid), name);
        return name;
}

/* The label a screen reader says for a control, and the same as its tooltip; FALSE when it
 * was that already (nothing done). */
static gboolean set_label(GtkWidget *widget, const char *label) {
        if (g_strcmp0(g_object_get_data(G_OBJECT(widget), "pf-label"), label) == 0)
                return FALSE;
        gtk_accessible_update_property(GTK_ACCESSIBLE(widget), GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
        gtk_widget_set_tooltip_text(widget, label);
        /* kept for the test control's dump: GTK 4.8 has no getter for accessible properties */
        g_object_set_data_full(G_OBJECT(widget), "pf-label", g_strdup(label), g_free);
        return TRUE;
}

/* Row texts are set only when they change: a new text means a new layout of the row. */
static void set_row_title(PfWindow *self, GtkWidget *row, const char *title) {
        if (g_strcmp0(adw_preferences_row_get_title(ADW_PREFERENCES_ROW(row)), title) == 0)
                return;
        adw_preferences_row_set_title(ADW_PREFERENCES_ROW(row), title);
        self->text_updates++;
}

static void set_row_subtitle(PfWindow *self, GtkWidget *row, const char *subtitle) {
        if (ADW_IS_EXPANDER_ROW(row)) {
                if (g_strcmp0(adw_expander_row_get_subtitle(ADW_EXPANDER_ROW(row)), subtitle) == 0)
                        return;
                adw_expander_row_set_subtitle(ADW_EXPANDER_ROW(row), subtitle);
        } else {
                if (g_strcmp0(adw_action_row_get_subtitle(ADW_ACTION_ROW(row)), subtitle) == 0)
                        return;
                adw_action_row_set_subtitle(ADW_ACTION_ROW(row), subtitle);
        }
        self->text_updates++;
}

static void set_control_label(PfWindow *self, GtkWidget *widget, const char *label) {
        if (set_label(widget, label))
                self->text_updates++;
}

static gboolean manager_running(PfWindow *self) {
        g_autofree char *owner = NULL;

        if (self->manager == NULL)
                return FALSE;
        owner = g_dbus_proxy_get_name_owner(G_DBUS_PROXY(self->manager));
        return owner != NULL;
}

static gboolean allowed_to_configure(PfWindow *self) {
        if (self->permission == NULL)
                /* no polkit to ask: pcpd lets root do everything, and nobody else */
                return getuid() == 0;
        return g_permission_get_allowed(self->permission);
}

/* ---- the status group ---- */

static void sync_switch(PfWindow *self) {
        gboolean enabled = self->manager != NULL && pcp1_manager_get_enabled(self->manager);

        self->syncing_switch = TRUE;
        gtk_switch_set_active(GTK_SWITCH(self->enabled_switch), enabled);
        gtk_switch_set_state(GTK_SWITCH(self->enabled_switch), enabled);
        self->syncing_switch = FALSE;
}

static void update_servers(PfWindow *self, gboolean running) {
        GVariant *servers = running ? pcp1_manager_get_servers(self->manager) : NULL;
        GVariantIter iter;
        const char *ifname, *address, *source, *protocol;

        /* rebuilt only when they changed: a row with the keyboard focus must not vanish */
        if (servers == self->shown_servers ||
            (servers != NULL && self->shown_servers != NULL && g_variant_equal(servers, self->shown_servers)))
                return;
        g_clear_pointer(&self->shown_servers, g_variant_unref);
        if (servers != NULL)
                self->shown_servers = g_variant_ref(servers);

        for (guint i = 0; i < self->server_rows->len; i++)
                adw_expander_row_remove(ADW_EXPANDER_ROW(self->details), self->server_rows->pdata[i]);
        g_ptr_array_set_size(self->server_rows, 0);
        if (servers == NULL || !g_variant_is_of_type(servers, G_VARIANT_TYPE("a(ssssu)")))
                return;

        g_variant_iter_init(&iter, servers);
        while (g_variant_iter_next(&iter, "(&s&s&s&su)", &ifname, &address, &source, &protocol, NULL)) {
                GtkWidget *row = adw_action_row_new();
                g_autofree char *where = pf_format_server_source(source, ifname);
                g_autofree char *title = g_strdup_printf(_("Router %s"), address);
                g_autofree char *subtitle = g_strdup_printf("%s · %s", pf_format_server_protocol(protocol), where);

                adw_preferences_row_set_use_markup(ADW_PREFERENCES_ROW(row), FALSE);
                adw_preferences_row_set_title(ADW_PREFERENCES_ROW(row), title);
                adw_action_row_set_subtitle(ADW_ACTION_ROW(row), subtitle);
                adw_action_row_set_icon_name(ADW_ACTION_ROW(row), "network-server-symbolic");
                /* after the addresses row, before the version row (kept alive while out) */
                g_object_ref(self->version_row);
                adw_expander_row_remove(ADW_EXPANDER_ROW(self->details), self->version_row);
                adw_expander_row_add_row(ADW_EXPANDER_ROW(self->details), row);
                adw_expander_row_add_row(ADW_EXPANDER_ROW(self->details), self->version_row);
                g_object_unref(self->version_row);
                g_ptr_array_add(self->server_rows, row);
        }
}

/* Until the first look at the service is done, "not running" may be false: it may be starting. */
static gboolean connecting(PfWindow *self) {
        if (!self->manager_tried || !self->start_done)
                return TRUE;
        /* started: the proxy tells the owner once it has read its properties */
        return self->start_ok && !self->owner_seen;
}

static void update_status(PfWindow *self) {
        gboolean running = manager_running(self);
        const char *state = running ? pcp1_manager_get_state(self->manager) : NULL;
        GVariant *servers = running ? pcp1_manager_get_servers(self->manager) : NULL;
        PfSituation situation = !running && connecting(self) ? PF_SITUATION_CONNECTING
                                                              : pf_situation(running, state, servers);
        g_autofree char *start_failure = situation == PF_SITUATION_NOT_RUNNING && self->start_error != NULL
                                                 ? pf_format_start_failure(self->start_error)
                                                 : NULL;
        const char *banner = start_failure != NULL ? start_failure : pf_situation_banner(situation);
        const char *const *addresses = running ? pcp1_manager_get_external_addresses(self->manager) : NULL;
        gboolean allowed = allowed_to_configure(self);
        /* without polkit (not installed, not running) nobody but root may change anything */
        gboolean lock_useful = self->permission != NULL ? pf_lock_button_get_useful(PF_LOCK_BUTTON(self->lock_button))
                                                        : !allowed;

        adw_action_row_set_subtitle(ADW_ACTION_ROW(self->status_row), pf_situation_sentence(situation));
        gtk_widget_set_visible(self->enabled_switch, running);
        gtk_widget_set_sensitive(self->enabled_switch, running && allowed);
        sync_switch(self);

        pf_banner_set_title(PF_BANNER(self->service_banner), banner);
        pf_banner_set_revealed(PF_BANNER(self->service_banner), banner != NULL);
        pf_banner_set_title(PF_BANNER(self->lock_banner),
                            allowed ? _("Settings are unlocked. Lock them again when you are done.")
                                    : _("Some settings must be unlocked to change them."));
        /* polkit's permission without a service to use it on would only confuse */
        pf_banner_set_revealed(PF_BANNER(self->lock_banner), running && lock_useful);

        gtk_widget_set_visible(self->details, running);
        if (addresses != NULL && addresses[0] != NULL) {
                g_autofree char *joined = g_strjoinv(", ", (char **) addresses);
                g_autofree char *summary = g_strdup_printf(_("External address %s"), joined);
                adw_expander_row_set_subtitle(ADW_EXPANDER_ROW(self->details), summary);
                adw_action_row_set_subtitle(ADW_ACTION_ROW(self->addresses_row), joined);
        } else {
                adw_expander_row_set_subtitle(ADW_EXPANDER_ROW(self->details), _("No external address known"));
                adw_action_row_set_subtitle(ADW_ACTION_ROW(self->addresses_row), _("None known"));
        }
        adw_action_row_set_subtitle(ADW_ACTION_ROW(self->version_row),
                                    running && pcp1_manager_get_version(self->manager) != NULL
                                            ? pcp1_manager_get_version(self->manager)
                                            : "");
        update_servers(self, running);

        gtk_widget_set_visible(self->ports_group, running);
        gtk_widget_set_visible(self->empty_page, g_hash_table_size(self->items) == 0);
        adw_status_page_set_description(ADW_STATUS_PAGE(self->empty_page),
                                        situation == PF_SITUATION_DISABLED
                                                ? _("Switch on automatic port forwarding to let applications "
                                                    "open ports on the router.")
                                                : _("Games, calls and file sharing ask the router to forward a "
                                                    "port to this computer so others can reach them. Those "
                                                    "ports are listed here, and you can close them."));
}

static void on_manager_changed(PfWindow *self) {
        update_status(self);
        changed(self, "manager");
}

static void on_set_enabled_done(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(PfWindow) self = user_data;
        g_autoptr(GError) error = NULL;

        if (pcp1_manager_call_set_enabled_finish(PCP1_MANAGER(source), result, &error))
                return; /* Enabled changes with PropertiesChanged */
        if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                return;
        show_error(self, _("Could not switch port forwarding"), error);
        sync_switch(self);
}

static gboolean on_switch_state_set(GtkSwitch *sw, gboolean state, PfWindow *self) {
        if (self->syncing_switch || self->manager == NULL)
                return FALSE;
        pcp1_manager_call_set_enabled(self->manager, state, G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION,
                                      INTERACTIVE_TIMEOUT_MS, self->cancellable, on_set_enabled_done,
                                      g_object_ref(self));
        /* the switch keeps its old state until the daemon says it changed */
        return TRUE;
}

/* ---- forwarded ports ---- */

static PfItem *item_free(PfItem *item) {
        if (item == NULL)
                return NULL;
        g_free(item->path);
        g_clear_object(&item->proxy);
        g_free(item->sort_key);
        g_free(item);
        return NULL;
}

static PfGroup *group_free(PfGroup *group) {
        if (group == NULL)
                return NULL;
        g_free(group->key);
        pf_app_info_free(group->info);
        g_ptr_array_unref(group->items);
        g_free(group);
        return NULL;
}

static void item_destroy(gpointer item) {
        item_free(item);
}

static void group_destroy(gpointer group) {
        group_free(group);
}

/* Rows keep their order (apps by name, ports by number) through their list's sort function:
 * a new row takes its place without the others being taken out (and losing the focus). */
static int compare_rows(GtkListBoxRow *a, GtkListBoxRow *b, gpointer user_data) {
        return g_strcmp0(g_object_get_data(G_OBJECT(a), "pf-sort-key"), g_object_get_data(G_OBJECT(b), "pf-sort-key"));
}

static void sort_in_parent(GtkWidget *row) {
        GtkWidget *list = gtk_widget_get_parent(row);

        /* libadwaita puts the rows of a group and of an expander row in a GtkListBox */
        if (GTK_IS_LIST_BOX(list) && g_object_get_data(G_OBJECT(list), "pf-sorted") == NULL) {
                gtk_list_box_set_sort_func(GTK_LIST_BOX(list), compare_rows, NULL, NULL);
                g_object_set_data(G_OBJECT(list), "pf-sorted", GINT_TO_POINTER(1));
        }
        if (GTK_IS_LIST_BOX_ROW(row))
                gtk_list_box_row_changed(GTK_LIST_BOX_ROW(row));
}

static void update_item(PfWindow *self, PfItem *item, gint64 now) {
        Pcp1Mapping *m = item->proxy;
        guint32 uid = pcp1_mapping_get_uid(m);
        const char *other = uid != getuid() ? user_name(self, uid) : NULL;
        g_autofree char *title = NULL, *subtitle = NULL, *proto = NULL, *label = NULL;
        PfMappingText t = {
                .opcode = pcp1_mapping_get_opcode(m),
                .protocol = pcp1_mapping_get_protocol(m),
                .state = pcp1_mapping_get_state(m),
                .error = pcp1_mapping_get_error(m),
                .server = pcp1_mapping_get_server(m),
                .description = pcp1_mapping_get_description(m),
                .external_address = pcp1_mapping_get_external_address(m),
                .remote_address = pcp1_mapping_get_remote_address(m),
                .internal_port = pcp1_mapping_get_internal_port(m),
                .external_port = pcp1_mapping_get_external_port(m),
                .remote_port = pcp1_mapping_get_remote_port(m),
                .expires_at_us = pcp1_mapping_get_expires_at(m),
                .persistent = pcp1_mapping_get_persistent(m),
                .other_user = other,
        };

        title = pf_format_mapping_title(&t);
        subtitle = pf_format_mapping_subtitle(&t, now);
        set_row_title(self, item->row, title);
        set_row_subtitle(self, item->row, subtitle);

        proto = pf_format_protocol(t.protocol);
        /* TRANSLATORS: the remove button of one port, e.g. "Stop forwarding TCP port 22000" */
        label = g_strdup_printf(_("Stop forwarding %s port %u"), proto, t.internal_port);
        set_control_label(self, item->remove, label);

        /* (one without a server waits, nothing failed) */
        if (g_strcmp0(t.state, PCP1_MAPPING_FAILED) == 0 && g_strcmp0(t.error, PCP1_MAPPING_ERROR_NO_SERVER) != 0)
                gtk_widget_add_css_class(item->row, "pf-failed");
        else
                gtk_widget_remove_css_class(item->row, "pf-failed");
}

static void update_group(PfWindow *self, PfGroup *group) {
        g_autoptr(GPtrArray) users = g_ptr_array_new();
        g_autofree char *count = NULL, *label = NULL;
        gboolean others = FALSE;

        group->dirty = FALSE;
        for (guint i = 0; i < group->items->len; i++) {
                PfItem *item = group->items->pdata[i];
                guint32 uid = pcp1_mapping_get_uid(item->proxy);
                const char *name = user_name(self, uid);

                if (uid != getuid())
                        others = TRUE;
                if (!g_ptr_array_find_with_equal_func(users, name, g_str_equal, NULL))
                        g_ptr_array_add(users, (gpointer) name);
        }
        count = g_strdup_printf(ngettext("%u port", "%u ports", group->items->len), group->items->len);
        if (others) {
                g_autofree char *names = NULL;
                g_ptr_array_add(users, NULL);
                names = g_strjoinv(", ", (char **) users->pdata);
                /* TRANSLATORS: "2 ports · user bob": how many ports an app holds, and for whom */
                g_autofree char *s = g_strdup_printf(_("%s · user %s"), count, names);
                set_row_subtitle(self, group->row, s);
        } else
                set_row_subtitle(self, group->row, count);

        /* TRANSLATORS: the button that closes every port of one application */
        label = g_strdup_printf(_("Stop forwarding all ports of %s"), group->info->name);
        set_control_label(self, group->remove_all, label);
}

static gboolean update_groups_idle(gpointer user_data) {
        PfWindow *self = user_data;
        GHashTableIter iter;
        gpointer value;

        self->groups_idle_id = 0;
        g_hash_table_iter_init(&iter, self->groups);
        while (g_hash_table_iter_next(&iter, NULL, &value))
                if (((PfGroup *) value)->dirty)
                        update_group(self, value);
        changed(self, "mappings");
        return G_SOURCE_REMOVE;
}

/* A group's subtitle counts its ports and names their users: redone once after a batch of
 * changes (the many InterfacesAdded of a start), not once a row (quadratic). The bus' signals
 * come at the default priority, so a batch is handled first; a frame is drawn only after
 * (GDK_PRIORITY_REDRAW), so none shows a group without its subtitle. */
static void schedule_group_update(PfWindow *self, PfGroup *group) {
        group->dirty = TRUE;
        if (self->groups_idle_id == 0)
                self->groups_idle_id = g_idle_add_full(G_PRIORITY_HIGH_IDLE, update_groups_idle, self, NULL);
}

void pf_window_flush(PfWindow *self) {
        g_return_if_fail(PF_IS_WINDOW(self));
        if (self->groups_idle_id == 0)
                return;
        g_source_remove(self->groups_idle_id);
        update_groups_idle(self);
}

static void on_remove_done(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(GtkWidget) button = user_data;
        g_autoptr(GError) error = NULL;
        GtkRoot *root = gtk_widget_get_root(button);

        if (pcp1_manager_call_remove_mapping_finish(PCP1_MANAGER(source), result, &error))
                return; /* the row goes with InterfacesRemoved */
        gtk_widget_set_sensitive(button, TRUE);
        if (PF_IS_WINDOW(root) && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                show_error(PF_WINDOW(root), _("Could not stop forwarding the port"), error);
}

static void on_remove_clicked(GtkButton *button, PfItem *item) {
        PfWindow *self = item->group->window;

        if (self->manager == NULL)
                return;
        gtk_widget_set_sensitive(GTK_WIDGET(button), FALSE);
        /* removing another user's port asks polkit, which may show its password dialog */
        pcp1_manager_call_remove_mapping(self->manager, item->path, G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION,
                                         INTERACTIVE_TIMEOUT_MS, self->cancellable, on_remove_done,
                                         g_object_ref(button));
}

static void on_revoke_done(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(GtkWidget) button = user_data;
        g_autoptr(GError) error = NULL;
        GtkRoot *root = gtk_widget_get_root(button);
        /* RevokeApp and RemoveMapping both return nothing */
        g_autoptr(GVariant) ret = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), result, &error);

        if (ret != NULL)
                return;
        gtk_widget_set_sensitive(button, TRUE);
        if (PF_IS_WINDOW(root) && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                show_error(PF_WINDOW(root), _("Could not stop forwarding the ports"), error);
}

static void on_remove_all_clicked(GtkButton *button, PfGroup *group) {
        PfWindow *self = group->window;
        g_autoptr(GHashTable) app_ids = g_hash_table_new(g_str_hash, g_str_equal);

        if (self->manager == NULL)
                return;
        gtk_widget_set_sensitive(GTK_WIDGET(button), FALSE);
        /* one RevokeApp per app id (the instances of a unit-launched app have one each);
         * mappings without an app id cannot be revoked by id: removed one by one */
        for (guint i = 0; i < group->items->len; i++) {
                PfItem *item = group->items->pdata[i];
                const char *app_id = pcp1_mapping_get_app_id(item->proxy);

                if (app_id != NULL && *app_id != '\0') {
                        if (!g_hash_table_add(app_ids, (gpointer) app_id))
                                continue;
                        pcp1_manager_call_revoke_app(self->manager, app_id,
                                                     G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION,
                                                     INTERACTIVE_TIMEOUT_MS, self->cancellable, on_revoke_done,
                                                     g_object_ref(button));
                } else
                        pcp1_manager_call_remove_mapping(self->manager, item->path,
                                                         G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION,
                                                         INTERACTIVE_TIMEOUT_MS, self->cancellable, on_revoke_done,
                                                         g_object_ref(button));
        }
}

static PfGroup *group_for(PfWindow *self, Pcp1Mapping *m) {
        const char *app_id = pcp1_mapping_get_app_id(m), *source = pcp1_mapping_get_app_id_source(m);
        guint32 pid = pcp1_mapping_get_pid(m);
        g_autofree char *cache_key = g_strdup_printf("%s\n%s\n%u", source ?: "", app_id ?: "",
                                                     app_id != NULL && *app_id != '\0' ? 0 : pid);
        const char *key = g_hash_table_lookup(self->app_infos, cache_key);
        g_autoptr(PfAppInfo) info = NULL;
        g_autofree char *collate = NULL, *title = NULL;
        PfGroup *group;
        GtkWidget *icon;

        if (key != NULL && (group = g_hash_table_lookup(self->groups, key)) != NULL)
                return group;
        info = pf_app_info_lookup(app_id, source, pid);
        g_hash_table_replace(self->app_infos, g_steal_pointer(&cache_key), g_strdup(info->key));
        group = g_hash_table_lookup(self->groups, info->key);
        if (group != NULL)
                return group;

        group = g_new0(PfGroup, 1);
        group->window = self;
        group->key = g_strdup(info->key);
        group->info = g_steal_pointer(&info);
        group->items = g_ptr_array_new();

        group->row = adw_expander_row_new();
        adw_preferences_row_set_use_markup(ADW_PREFERENCES_ROW(group->row), FALSE);
        title = pf_format_text(group->info->name);
        adw_preferences_row_set_title(ADW_PREFERENCES_ROW(group->row), title);
        adw_expander_row_set_expanded(ADW_EXPANDER_ROW(group->row), TRUE);

        icon = gtk_image_new_from_gicon(group->info->icon);
        gtk_image_set_icon_size(GTK_IMAGE(icon), GTK_ICON_SIZE_LARGE);
        gtk_widget_add_css_class(icon, "lowres-icon");
        if (group->info->desktop_id == NULL)
                /* the generic symbolic icon: quieter than the apps' own */
                gtk_widget_add_css_class(icon, "dim-label");
        gtk_widget_set_name(icon, "app-icon");
        gtk_accessible_update_property(GTK_ACCESSIBLE(icon), GTK_ACCESSIBLE_PROPERTY_LABEL, group->info->name, -1);
        adw_expander_row_add_prefix(ADW_EXPANDER_ROW(group->row), icon);

        group->remove_all = gtk_button_new_from_icon_name("user-trash-symbolic");
        gtk_widget_set_valign(group->remove_all, GTK_ALIGN_CENTER);
        gtk_widget_add_css_class(group->remove_all, "flat");
        g_signal_connect(group->remove_all, "clicked", G_CALLBACK(on_remove_all_clicked), group);
        adw_expander_row_add_action(ADW_EXPANDER_ROW(group->row), group->remove_all);

        g_hash_table_insert(self->groups, group->key, group);
        collate = g_utf8_collate_key(group->info->name, -1);
        g_object_set_data_full(G_OBJECT(group->row), "pf-sort-key", g_strconcat(collate, "\n", group->key, NULL),
                               g_free);
        adw_preferences_group_add(ADW_PREFERENCES_GROUP(self->ports_group), group->row);
        sort_in_parent(group->row);
        return group;
}

static void add_item(PfWindow *self, GDBusObject *object) {
        Pcp1Mapping *m = pcp1_object_get_mapping(PCP1_OBJECT(object));
        const char *path = g_dbus_object_get_object_path(object);
        PfItem *item;
        g_autofree char *proto = NULL;

        if (m == NULL || g_hash_table_contains(self->items, path)) {
                g_clear_object(&m);
                return;
        }
        item = g_new0(PfItem, 1);
        item->path = g_strdup(path);
        item->proxy = m;
        proto = pf_format_protocol(pcp1_mapping_get_protocol(m));
        /* by port, then protocol */
        item->sort_key = g_strdup_printf("%05u %s %s %s", pcp1_mapping_get_internal_port(m), proto,
                                         pcp1_mapping_get_family(m) ?: "", path);

        item->row = adw_action_row_new();
        adw_preferences_row_set_use_markup(ADW_PREFERENCES_ROW(item->row), FALSE);
        item->remove = gtk_button_new_from_icon_name("user-trash-symbolic");
        gtk_widget_set_valign(item->remove, GTK_ALIGN_CENTER);
        gtk_widget_add_css_class(item->remove, "flat");
        g_signal_connect(item->remove, "clicked", G_CALLBACK(on_remove_clicked), item);
        adw_action_row_add_suffix(ADW_ACTION_ROW(item->row), item->remove);

        item->group = group_for(self, m);
        g_ptr_array_add(item->group->items, item);
        g_object_set_data(G_OBJECT(item->row), "pf-sort-key", item->sort_key);
        adw_expander_row_add_row(ADW_EXPANDER_ROW(item->group->row), item->row);
        sort_in_parent(item->row);
        g_hash_table_insert(self->items, item->path, item);
        update_item(self, item, g_get_real_time());
        schedule_group_update(self, item->group);
}

static gboolean has_focus_within(GtkWidget *widget) {
        GtkRoot *root = gtk_widget_get_root(widget);
        GtkWidget *focus = root != NULL ? gtk_root_get_focus(root) : NULL;

        return focus != NULL && (focus == widget || gtk_widget_is_ancestor(focus, widget));
}

/* The row after @item in its group's order, else the one before; NULL when it is alone. */
static PfItem *neighbour_item(PfItem *item) {
        PfItem *next = NULL, *prev = NULL;

        for (guint i = 0; i < item->group->items->len; i++) {
                PfItem *other = item->group->items->pdata[i];
                int c = g_strcmp0(other->sort_key, item->sort_key);

                if (other == item)
                        continue;
                if (c > 0 && (next == NULL || g_strcmp0(other->sort_key, next->sort_key) < 0))
                        next = other;
                if (c < 0 && (prev == NULL || g_strcmp0(other->sort_key, prev->sort_key) > 0))
                        prev = other;
        }
        return next != NULL ? next : prev;
}

/* The group after @group on the page, else the one before; NULL when it is alone. */
static PfGroup *neighbour_group(PfWindow *self, PfGroup *group) {
        const char *key = g_object_get_data(G_OBJECT(group->row), "pf-sort-key");
        const char *next_key = NULL, *prev_key = NULL;
        PfGroup *next = NULL, *prev = NULL;
        GHashTableIter iter;
        gpointer value;

        g_hash_table_iter_init(&iter, self->groups);
        while (g_hash_table_iter_next(&iter, NULL, &value)) {
                PfGroup *other = value;
                const char *k = g_object_get_data(G_OBJECT(other->row), "pf-sort-key");
                int c = g_strcmp0(k, key);

                if (other == group)
                        continue;
                if (c > 0 && (next == NULL || g_strcmp0(k, next_key) < 0)) {
                        next = other;
                        next_key = k;
                }
                if (c < 0 && (prev == NULL || g_strcmp0(k, prev_key) > 0)) {
                        prev = other;
                        prev_key = k;
                }
        }
        return next != NULL ? next : prev;
}

static gboolean focus_button_or_row(GtkWidget *button, GtkWidget *row) {
        if (gtk_widget_is_sensitive(button) && gtk_widget_grab_focus(button))
                return TRUE;
        return gtk_widget_child_focus(row, GTK_DIR_TAB_FORWARD);
}

/* A row with the keyboard focus is going (its port closed with the keyboard, or by someone
 * else): the focus goes to the next port's button, or the previous one's, or another app's,
 * or the page's first control, not nowhere (where the next Tab starts over at the top). */
static void keep_focus(PfWindow *self, PfItem *item) {
        gboolean group_goes = item->group->items->len == 1;
        PfItem *other;
        PfGroup *group;

        if (!has_focus_within(group_goes ? item->group->row : item->row))
                return;
        if (!group_goes && (other = neighbour_item(item)) != NULL && focus_button_or_row(other->remove, other->row))
                return;
        if ((group = neighbour_group(self, item->group)) != NULL &&
            focus_button_or_row(group->remove_all, group->row))
                return;
        if (gtk_widget_get_visible(self->enabled_switch) && gtk_widget_is_sensitive(self->enabled_switch) &&
            gtk_widget_grab_focus(self->enabled_switch))
                return;
        /* (the expander row itself takes no focus: its header row inside does) */
        if (!gtk_widget_child_focus(self->details, GTK_DIR_TAB_FORWARD))
                g_message("No control left for the keyboard focus");
}

static void remove_item(PfWindow *self, const char *path) {
        PfItem *item = g_hash_table_lookup(self->items, path);
        PfGroup *group;

        if (item == NULL)
                return;
        group = item->group;
        keep_focus(self, item);
        adw_expander_row_remove(ADW_EXPANDER_ROW(group->row), item->row);
        g_ptr_array_remove(group->items, item);
        g_hash_table_remove(self->items, path);
        if (group->items->len == 0) {
                adw_preferences_group_remove(ADW_PREFERENCES_GROUP(self->ports_group), group->row);
                g_hash_table_remove(self->groups, group->key);
        } else
                schedule_group_update(self, group);
}

static void on_object_added(GDBusObjectManager *objects, GDBusObject *object, PfWindow *self) {
        add_item(self, object);
        update_status(self);
        changed(self, "mappings");
}

static void on_object_removed(GDBusObjectManager *objects, GDBusObject *object, PfWindow *self) {
        remove_item(self, g_dbus_object_get_object_path(object));
        update_status(self);
        changed(self, "mappings");
}

/* An object the page shows gets its Mapping interface again: pcpd tells the InterfacesAdded
 * of a restored mapping after it took its name (org.freedesktop.PCP1(5), AFTER A RESTART), so
 * the object may be known already from GetManagedObjects. GDBusObjectManagerClient then puts
 * a new proxy in the old one's place (the manager says interface-added only), and only the new
 * one follows the later PropertiesChanged: the row takes it, and the values it came with. */
static void on_interface_added(GDBusObjectManager *objects, GDBusObject *object, GDBusInterface *iface,
                               PfWindow *self) {
        PfItem *item = g_hash_table_lookup(self->items, g_dbus_object_get_object_path(object));

        if (!PCP1_IS_MAPPING(iface))
                return;
        if (item == NULL) {
                /* an object that had no Mapping interface until now */
                on_object_added(objects, object, self);
                return;
        }
        if (item->proxy == PCP1_MAPPING(iface))
                return;
        g_set_object(&item->proxy, PCP1_MAPPING(iface));
        update_item(self, item, g_get_real_time());
        schedule_group_update(self, item->group);
        changed(self, "mappings");
}

/* The object stays, without its Mapping interface (the whole object going is object-removed):
 * nothing the row could show any more. */
static void on_interface_removed(GDBusObjectManager *objects, GDBusObject *object, GDBusInterface *iface,
                                 PfWindow *self) {
        PfItem *item = g_hash_table_lookup(self->items, g_dbus_object_get_object_path(object));

        if (item != NULL && item->proxy == (gpointer) iface)
                on_object_removed(objects, object, self);
}

static void on_mapping_properties_changed(GDBusObjectManagerClient *objects, GDBusObjectProxy *object,
                                          GDBusProxy *iface, GVariant *changed_props, const char *const *invalidated,
                                          PfWindow *self) {
        PfItem *item = g_hash_table_lookup(self->items, g_dbus_object_get_object_path(G_DBUS_OBJECT(object)));

        if (item == NULL)
                return;
        update_item(self, item, g_get_real_time());
        changed(self, "mappings");
}

static void reload_items(PfWindow *self) {
        GList *objects = self->objects != NULL ? g_dbus_object_manager_get_objects(self->objects) : NULL;

        for (GList *l = objects; l != NULL; l = l->next)
                add_item(self, l->data);
        g_list_free_full(objects, g_object_unref);
}

void pf_window_tick(PfWindow *self) {
        GHashTableIter iter;
        gpointer value;
        gint64 now = g_get_real_time();

        g_return_if_fail(PF_IS_WINDOW(self));
        /* only the "expires in" texts move with the clock; the values come from the daemon
         * (update_item() changes only the texts that are different now) */
        g_hash_table_iter_init(&iter, self->items);
        while (g_hash_table_iter_next(&iter, NULL, &value))
                update_item(self, value, now);
}

static gboolean on_tick(gpointer user_data) {
        pf_window_tick(user_data);
        return G_SOURCE_CONTINUE;
}

/* ---- connecting ---- */

static void on_objects_ready(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(PfWindow) self = user_data;
        g_autoptr(GError) error = NULL;
        GDBusObjectManager *objects = pcp1_object_manager_client_new_for_bus_finish(result, &error);

        if (objects == NULL) {
                if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                        g_message("Cannot list the forwarded ports: %s", error->message);
                return;
        }
        self->objects = objects;
        g_signal_connect(objects, "object-added", G_CALLBACK(on_object_added), self);
        g_signal_connect(objects, "object-removed", G_CALLBACK(on_object_removed), self);
        g_signal_connect(objects, "interface-added", G_CALLBACK(on_interface_added), self);
        g_signal_connect(objects, "interface-removed", G_CALLBACK(on_interface_removed), self);
        g_signal_connect(objects, "interface-proxy-properties-changed", G_CALLBACK(on_mapping_properties_changed),
                         self);
        reload_items(self);
        update_status(self);
        changed(self, "mappings");
}

static void on_manager_owner(GObject *proxy, GParamSpec *pspec, PfWindow *self) {
        /* the service came (or went): an activation error is history now */
        self->owner_seen = TRUE;
        if (manager_running(self))
                g_clear_pointer(&self->start_error, g_free);
        on_manager_changed(self);
}

static void on_manager_ready(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(PfWindow) self = user_data;
        g_autoptr(GError) error = NULL;
        Pcp1Manager *manager = pcp1_manager_proxy_new_for_bus_finish(result, &error);

        if (manager == NULL) {
                if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                        return;
                /* no system bus at all: the page says the service is not running */
                g_message("Cannot reach the port forwarding service: %s", error->message);
                self->manager_tried = TRUE;
                on_manager_changed(self);
                return;
        }
        self->manager = manager;
        self->manager_tried = TRUE;
        /* after the generated class handler: it drops the proxy's copies of the old list values
         * (ExternalAddresses), which point into the variants the new values replaced */
        g_signal_connect_data(manager, "g-properties-changed", G_CALLBACK(on_manager_changed), self, NULL,
                              G_CONNECT_SWAPPED | G_CONNECT_AFTER);
        g_signal_connect(manager, "notify::g-name-owner", G_CALLBACK(on_manager_owner), self);
        if (manager_running(self)) {
                self->owner_seen = TRUE;
                g_clear_pointer(&self->start_error, g_free);
        }
        on_manager_changed(self);
}

/* The one activation attempt (what systemctl or GNOME Settings would do): its answer ends
 * "Connecting…". The proxies do not start the service themselves; they follow its name, so
 * the page follows pcpd whenever it appears later (started by hand, restarted by systemd). */
static void on_start_done(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(PfWindow) self = user_data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) ret = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);

        if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                return;
        self->start_done = TRUE;
        if (ret != NULL)
                self->start_ok = TRUE;
        else {
                if (g_dbus_error_is_remote_error(error))
                        g_dbus_error_strip_remote_error(error);
                g_message("Cannot start the port forwarding service: %s", error->message);
                /* (the service may have come meanwhile, another way) */
                if (!manager_running(self))
                        self->start_error = g_strdup(error->message);
        }
        on_manager_changed(self);
}

static void on_bus_ready(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(PfWindow) self = user_data;
        g_autoptr(GError) error = NULL;
        g_autoptr(GDBusConnection) bus = g_bus_get_finish(result, &error);

        if (bus == NULL) {
                if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                        return;
                self->start_done = TRUE;
                self->start_error = g_strdup(error->message);
                on_manager_changed(self);
                return;
        }
        g_dbus_connection_call(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "StartServiceByName", g_variant_new("(su)", PCP1_BUS_NAME, 0u), G_VARIANT_TYPE("(u)"),
                               G_DBUS_CALL_FLAGS_NONE, START_TIMEOUT_MS, self->cancellable, on_start_done,
                               g_object_ref(self));
}

static void on_permission_changed(GPermission *permission, GParamSpec *pspec, PfWindow *self) {
        update_status(self);
        changed(self, "permission");
}

static void on_permission_ready(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(PfWindow) self = user_data;
        g_autoptr(GError) error = NULL;
        GPermission *permission = polkit_permission_new_finish(result, &error);

        if (permission == NULL) {
                if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                        return;
                g_message("Cannot ask polkit for permission to change settings: %s", error->message);
                update_status(self);
                changed(self, "permission");
                return;
        }
        self->permission = permission;
        pf_lock_button_set_permission(PF_LOCK_BUTTON(self->lock_button), permission);
        g_signal_connect(permission, "notify", G_CALLBACK(on_permission_changed), self);
        on_permission_changed(permission, NULL, self);
}

static void on_lock_failed(PfLockButton *button, const char *message, PfWindow *self) {
        /* polkit's own message names an action id: the log gets it, the user a sentence */
        g_message("Unlocking failed: %s", message);
        show_toast(self, _("Could not unlock: the password was not accepted, or no authentication agent is running."));
}

/* ---- the widget ---- */

static void pf_window_dispose(GObject *object) {
        PfWindow *self = PF_WINDOW(object);

        g_cancellable_cancel(self->cancellable);
        g_clear_handle_id(&self->tick_id, g_source_remove);
        g_clear_handle_id(&self->groups_idle_id, g_source_remove);
        if (self->manager != NULL)
                g_signal_handlers_disconnect_by_data(self->manager, self);
        if (self->objects != NULL)
                g_signal_handlers_disconnect_by_data(self->objects, self);
        if (self->permission != NULL)
                g_signal_handlers_disconnect_by_data(self->permission, self);
        g_clear_object(&self->manager);
        g_clear_object(&self->objects);
        g_clear_object(&self->permission);
        G_OBJECT_CLASS(pf_window_parent_class)->dispose(object);
}

static void pf_window_finalize(GObject *object) {
        PfWindow *self = PF_WINDOW(object);

        g_clear_pointer(&self->items, g_hash_table_unref);
        g_clear_pointer(&self->groups, g_hash_table_unref);
        g_clear_pointer(&self->app_infos, g_hash_table_unref);
        g_clear_pointer(&self->user_names, g_hash_table_unref);
        g_clear_pointer(&self->server_rows, g_ptr_array_unref);
        g_clear_pointer(&self->shown_servers, g_variant_unref);
        g_clear_object(&self->cancellable);
        g_free(self->last_toast);
        g_free(self->start_error);
        G_OBJECT_CLASS(pf_window_parent_class)->finalize(object);
}

static void pf_window_class_init(PfWindowClass *klass) {
        GObjectClass *object_class = G_OBJECT_CLASS(klass);

        object_class->dispose = pf_window_dispose;
        object_class->finalize = pf_window_finalize;
}

static GtkWidget *info_row(const char *title, const char *icon) {
        GtkWidget *row = adw_action_row_new();

        /* the subtitles are the daemon's words (addresses, version): text, not markup */
        adw_preferences_row_set_use_markup(ADW_PREFERENCES_ROW(row), FALSE);
        adw_preferences_row_set_title(ADW_PREFERENCES_ROW(row), title);
        adw_action_row_set_icon_name(ADW_ACTION_ROW(row), icon);
        return row;
}

static void build(PfWindow *self) {
        GtkWidget *box, *header, *menu_button, *page, *status_group;
        g_autoptr(GMenu) menu = g_menu_new();

        gtk_window_set_title(GTK_WINDOW(self), _("Port Forwarding"));
        gtk_window_set_default_size(GTK_WINDOW(self), 640, 760);
        gtk_window_set_icon_name(GTK_WINDOW(self), APP_ID);

        self->toasts = adw_toast_overlay_new();
        adw_application_window_set_content(ADW_APPLICATION_WINDOW(self), self->toasts);
        box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 0);
        adw_toast_overlay_set_child(ADW_TOAST_OVERLAY(self->toasts), box);

        header = adw_header_bar_new();
        g_menu_append(menu, _("_About Port Forwarding"), "app.about");
        menu_button = gtk_menu_button_new();
        gtk_menu_button_set_icon_name(GTK_MENU_BUTTON(menu_button), "open-menu-symbolic");
        gtk_menu_button_set_menu_model(GTK_MENU_BUTTON(menu_button), G_MENU_MODEL(menu));
        gtk_menu_button_set_primary(GTK_MENU_BUTTON(menu_button), TRUE);
        set_label(menu_button, _("Main Menu"));
        adw_header_bar_pack_end(ADW_HEADER_BAR(header), menu_button);
        gtk_box_append(GTK_BOX(box), header);

        /* the lock, as GNOME Settings 43 shows it: a bar over the page while locked */
        self->lock_banner = pf_banner_new();
        gtk_widget_set_name(self->lock_banner, "lock-banner");
        self->lock_button = pf_lock_button_new();
        g_signal_connect(self->lock_button, "failed", G_CALLBACK(on_lock_failed), self);
        pf_banner_set_end_widget(PF_BANNER(self->lock_banner), self->lock_button);
        gtk_box_append(GTK_BOX(box), self->lock_banner);

        self->service_banner = pf_banner_new();
        gtk_widget_set_name(self->service_banner, "service-banner");
        gtk_box_append(GTK_BOX(box), self->service_banner);

        page = adw_preferences_page_new();
        gtk_widget_set_vexpand(page, TRUE);
        gtk_box_append(GTK_BOX(box), page);

        status_group = adw_preferences_group_new();
        adw_preferences_group_set_title(ADW_PREFERENCES_GROUP(status_group), _("Status"));
        adw_preferences_page_add(ADW_PREFERENCES_PAGE(page), ADW_PREFERENCES_GROUP(status_group));

        self->status_row = adw_action_row_new();
        adw_preferences_row_set_title(ADW_PREFERENCES_ROW(self->status_row), _("Automatic Port Forwarding"));
        self->enabled_switch = gtk_switch_new();
        gtk_widget_set_valign(self->enabled_switch, GTK_ALIGN_CENTER);
        /* named by the row: AdwActionRow makes its title label the activatable widget's label
         * (a label of its own would be read twice) */
        g_object_set_data_full(G_OBJECT(self->enabled_switch), "pf-label", g_strdup(_("Automatic Port Forwarding")),
                               g_free);
        g_signal_connect(self->enabled_switch, "state-set", G_CALLBACK(on_switch_state_set), self);
        adw_action_row_add_suffix(ADW_ACTION_ROW(self->status_row), self->enabled_switch);
        adw_action_row_set_activatable_widget(ADW_ACTION_ROW(self->status_row), self->enabled_switch);
        adw_preferences_group_add(ADW_PREFERENCES_GROUP(status_group), self->status_row);

        self->details = adw_expander_row_new();
        adw_preferences_row_set_use_markup(ADW_PREFERENCES_ROW(self->details), FALSE);
        adw_preferences_row_set_title(ADW_PREFERENCES_ROW(self->details), _("Details"));
        adw_preferences_group_add(ADW_PREFERENCES_GROUP(status_group), self->details);
        self->addresses_row = info_row(_("External Address"), "network-workgroup-symbolic");
        adw_expander_row_add_row(ADW_EXPANDER_ROW(self->details), self->addresses_row);
        self->version_row = info_row(_("Service Version"), "help-about-symbolic");
        adw_expander_row_add_row(ADW_EXPANDER_ROW(self->details), self->version_row);

        self->ports_group = adw_preferences_group_new();
        adw_preferences_group_set_title(ADW_PREFERENCES_GROUP(self->ports_group), _("Forwarded Ports"));
        adw_preferences_group_set_description(ADW_PREFERENCES_GROUP(self->ports_group),
                                              _("Ports on the router that applications on this computer opened"));
        adw_preferences_page_add(ADW_PREFERENCES_PAGE(page), ADW_PREFERENCES_GROUP(self->ports_group));

        self->empty_page = adw_status_page_new();
        adw_status_page_set_icon_name(ADW_STATUS_PAGE(self->empty_page), APP_ID "-symbolic");
        adw_status_page_set_title(ADW_STATUS_PAGE(self->empty_page), _("No Forwarded Ports"));
        gtk_widget_add_css_class(self->empty_page, "compact");
        adw_preferences_group_add(ADW_PREFERENCES_GROUP(self->ports_group), self->empty_page);
}

static void pf_window_init(PfWindow *self) {
        self->cancellable = g_cancellable_new();
        self->groups = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, group_destroy);
        self->items = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, item_destroy);
        self->app_infos = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        self->server_rows = g_ptr_array_new();
        self->user_names = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
        build(self);
        update_status(self);

        /* Proxies that follow the name without starting it: one that starts it fails to be made
         * when the start fails, and would never see the service come later. The start is asked
         * for once, by on_bus_ready(). */
        pcp1_manager_proxy_new_for_bus(G_BUS_TYPE_SYSTEM, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, PCP1_BUS_NAME,
                                       PCP1_MANAGER_PATH, self->cancellable, on_manager_ready, g_object_ref(self));
        pcp1_object_manager_client_new_for_bus(G_BUS_TYPE_SYSTEM, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START,
                                               PCP1_BUS_NAME, PCP1_MANAGER_PATH, self->cancellable, on_objects_ready,
                                               g_object_ref(self));
        g_bus_get(G_BUS_TYPE_SYSTEM, self->cancellable, on_bus_ready, g_object_ref(self));
        polkit_permission_new(PCP1_ACTION_CONFIGURE, NULL, self->cancellable, on_permission_ready, g_object_ref(self));
        self->tick_id = g_timeout_add_seconds(TICK_SECONDS, on_tick, self);
}

PfWindow *pf_window_new(GtkApplication *app) {
        return g_object_new(PF_TYPE_WINDOW, "application", app, NULL);
}
