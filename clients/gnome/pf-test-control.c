/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"

#include "pf-test-control.h"

#include <gio/gunixinputstream.h>
#include <stdio.h>

#include "pf-banner.h"
#include "pf-lock-button.h"

typedef struct {
        PfWindow *window;
        GDataInputStream *in;
        GCancellable *cancellable;
        guint64 events;
        GPtrArray *screenshots; /* paths waiting for the next paint */
        GdkFrameClock *clock;
        guint idle_id;
        char *pending_key; /* waits for the window to have the keyboard focus */
} Control;

static void reply(const char *format, ...) G_GNUC_PRINTF(1, 2);
static void reply(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vprintf(format, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

/* ---- what a control is called ---- */

static const char *widget_label(GtkWidget *w) {
        const char *l = g_object_get_data(G_OBJECT(w), "pf-label");

        if (l != NULL)
                return l;
        if (GTK_IS_BUTTON(w)) {
                GtkWidget *child = gtk_button_get_child(GTK_BUTTON(w));
                if (gtk_button_get_label(GTK_BUTTON(w)) != NULL)
                        return gtk_button_get_label(GTK_BUTTON(w));
                /* a label inside a box (the lock button) */
                for (GtkWidget *c = child != NULL && GTK_IS_BOX(child) ? gtk_widget_get_first_child(child) : child;
                     c != NULL; c = gtk_widget_get_next_sibling(c))
                        if (GTK_IS_LABEL(c))
                                return gtk_label_get_text(GTK_LABEL(c));
        }
        return NULL;
}

/* AdwExpanderRow 1.2 shows its title with an AdwActionRow of its own: that row is the
 * expander's header, not one of its rows. Its rows sit below a GtkRevealer. */
static GtkWidget *expander_of_header(GtkWidget *w) {
        for (GtkWidget *p = gtk_widget_get_parent(w); p != NULL; p = gtk_widget_get_parent(p)) {
                if (GTK_IS_REVEALER(p))
                        return NULL;
                if (ADW_IS_EXPANDER_ROW(p))
                        return p;
        }
        return NULL;
}

static char *describe(GtkWidget *w) {
        GtkWidget *menu = w != NULL ? gtk_widget_get_ancestor(w, GTK_TYPE_MENU_BUTTON) : NULL;

        /* a menu button's focus is on the button inside it */
        if (menu != NULL)
                return g_strdup_printf("menu-button: %s", widget_label(menu) ?: "?");
        for (GtkWidget *p = w; p != NULL; p = gtk_widget_get_parent(p)) {
                GtkWidget *exp;

                if (PF_IS_LOCK_BUTTON(p) || GTK_IS_BUTTON(p))
                        return g_strdup_printf("button: %s", widget_label(p) ?: "?");
                if (GTK_IS_SWITCH(p))
                        return g_strdup_printf("switch: %s", widget_label(p) ?: "?");
                if (ADW_IS_ACTION_ROW(p) && (exp = expander_of_header(p)) != NULL)
                        return g_strdup_printf("expander: %s", adw_preferences_row_get_title(ADW_PREFERENCES_ROW(exp)));
                if (ADW_IS_PREFERENCES_ROW(p))
                        return g_strdup_printf("row: %s", adw_preferences_row_get_title(ADW_PREFERENCES_ROW(p)));
        }
        return g_strdup(w != NULL ? G_OBJECT_TYPE_NAME(w) : "nothing");
}

/* ---- dump ---- */

static void dump_widget(GString *out, GtkWidget *w, int indent) {
        g_autofree char *line = NULL;
        gboolean recurse = TRUE;

        /* the window's own buttons (close...) are GTK's, labelled by GTK */
        if (!gtk_widget_get_visible(w) || GTK_IS_WINDOW_CONTROLS(w))
                return;

        if (GTK_IS_WINDOW(w))
                line = g_strdup_printf("window: %s", gtk_window_get_title(GTK_WINDOW(w)));
        else if (PF_IS_BANNER(w)) {
                if (!pf_banner_get_revealed(PF_BANNER(w)))
                        return;
                line = g_strdup_printf("banner: %s", pf_banner_get_title(PF_BANNER(w)));
        } else if (ADW_IS_PREFERENCES_GROUP(w)) {
                const char *d = adw_preferences_group_get_description(ADW_PREFERENCES_GROUP(w));
                gboolean has_d = d != NULL && *d != '\0';
                line = g_strdup_printf("group: %s%s%s", adw_preferences_group_get_title(ADW_PREFERENCES_GROUP(w)),
                                       has_d ? " | " : "", has_d ? d : "");
        } else if (ADW_IS_EXPANDER_ROW(w))
                line = g_strdup_printf("expander: %s | %s | expanded=%d",
                                       adw_preferences_row_get_title(ADW_PREFERENCES_ROW(w)),
                                       adw_expander_row_get_subtitle(ADW_EXPANDER_ROW(w)),
                                       adw_expander_row_get_expanded(ADW_EXPANDER_ROW(w)));
        else if (ADW_IS_ACTION_ROW(w)) {
                if (expander_of_header(w) == NULL) {
                        const char *sub = adw_action_row_get_subtitle(ADW_ACTION_ROW(w));
                        line = g_strdup_printf("row: %s%s%s", adw_preferences_row_get_title(ADW_PREFERENCES_ROW(w)),
                                               sub != NULL && *sub != '\0' ? " | " : "", sub != NULL ? sub : "");
                }
        } else if (ADW_IS_STATUS_PAGE(w)) {
                line = g_strdup_printf("status-page: %s | %s", adw_status_page_get_title(ADW_STATUS_PAGE(w)),
                                       adw_status_page_get_description(ADW_STATUS_PAGE(w)));
                recurse = FALSE;
        } else if (GTK_IS_SWITCH(w)) {
                line = g_strdup_printf("switch: %s | %s", widget_label(w) ?: "?",
                                       gtk_switch_get_state(GTK_SWITCH(w)) ? "on" : "off");
        } else if (GTK_IS_MENU_BUTTON(w)) {
                line = g_strdup_printf("menu-button: %s", widget_label(w) ?: "?");
                recurse = FALSE;
        } else if (GTK_IS_BUTTON(w)) {
                line = g_strdup_printf("button: %s", widget_label(w) ?: "?");
                recurse = FALSE;
        } else if (GTK_IS_LABEL(w) && g_type_from_name("AdwToastWidget") != 0 &&
                   gtk_widget_get_ancestor(w, g_type_from_name("AdwToastWidget")) != NULL) {
                /* the text a toast shows (its title is markup: what the label made of it) */
                line = g_strdup_printf("toast-shown: %s", gtk_label_get_text(GTK_LABEL(w)));
        } else if (GTK_IS_IMAGE(w) && g_strcmp0(gtk_widget_get_name(w), "app-icon") == 0) {
                GIcon *icon = gtk_image_get_gicon(GTK_IMAGE(w));
                g_autofree char *s = icon != NULL ? g_icon_to_string(icon) : NULL;
                line = g_strdup_printf("icon: %s", s != NULL ? s : "?");
        }

        if (line != NULL) {
                for (int i = 0; i < indent; i++)
                        g_string_append(out, "  ");
                g_string_append(out, line);
                if (!gtk_widget_get_mapped(w))
                        g_string_append(out, " [unmapped]");
                if (!gtk_widget_is_sensitive(w))
                        g_string_append(out, " [insensitive]");
                /* another window has the keyboard focus (keys wait for it: see on_line()) */
                if (GTK_IS_WINDOW(w) && !gtk_window_is_active(GTK_WINDOW(w)))
                        g_string_append(out, " [inactive]");
                g_string_append_c(out, '\n');
                indent++;
        }
        if (!recurse)
                return;
        for (GtkWidget *c = gtk_widget_get_first_child(w); c != NULL; c = gtk_widget_get_next_sibling(c))
                dump_widget(out, c, indent);
}

static void do_dump(Control *c) {
        g_autoptr(GString) out = g_string_new(NULL);
        const char *toast = pf_window_get_last_toast(c->window);

        /* what the next frame shows (the groups' subtitles are redone before it is drawn) */
        pf_window_flush(c->window);
        dump_widget(out, GTK_WIDGET(c->window), 0);
        if (toast != NULL)
                g_string_append_printf(out, "toast: %s\n", toast);
        fputs(out->str, stdout);
        reply("END");
}

/* ---- screenshot ---- */

static void save_screenshot(Control *c, const char *path) {
        GtkWidget *w = GTK_WIDGET(c->window);
        int width = gtk_widget_get_width(w), height = gtk_widget_get_height(w);
        g_autoptr(GdkPaintable) paintable = gtk_widget_paintable_new(w);
        GtkSnapshot *snapshot = gtk_snapshot_new();
        g_autoptr(GskRenderNode) node = NULL;
        g_autoptr(GdkTexture) texture = NULL;

        /* GTK 4.8 has no gtk_widget_snapshot(): the paintable replays the last render */
        gdk_paintable_snapshot(paintable, GDK_SNAPSHOT(snapshot), width, height);
        node = gtk_snapshot_free_to_node(snapshot);
        if (node == NULL) {
                reply("ERROR nothing rendered for %s", path);
                return;
        }
        texture = gsk_renderer_render_texture(gtk_native_get_renderer(GTK_NATIVE(w)), node,
                                              &GRAPHENE_RECT_INIT(0, 0, (float) width, (float) height));
        if (!gdk_texture_save_to_png(texture, path))
                reply("ERROR cannot write %s", path);
        else
                reply("SCREENSHOT %s", path);
}

static gboolean on_idle_after_paint(gpointer user_data) {
        Control *c = user_data;

        c->idle_id = 0;
        for (guint i = 0; i < c->screenshots->len; i++)
                save_screenshot(c, c->screenshots->pdata[i]);
        g_ptr_array_set_size(c->screenshots, 0);
        return G_SOURCE_REMOVE;
}

static void on_after_paint_object(GdkFrameClock *clock, GtkWidget *window) {
        /* disconnected with the window (g_signal_connect_object), so c is alive here */
        Control *c = g_object_get_data(G_OBJECT(window), "pf-test-control");

        if (c != NULL && c->screenshots->len > 0 && c->idle_id == 0)
                c->idle_id = g_idle_add(on_idle_after_paint, c);
}

/* ---- input ---- */

static GtkWidget *find_labelled(GtkWidget *w, const char *label) {
        const char *l;

        if (!gtk_widget_get_visible(w))
                return NULL;
        if ((GTK_IS_BUTTON(w) || GTK_IS_SWITCH(w) || GTK_IS_MENU_BUTTON(w)) && (l = widget_label(w)) != NULL &&
            g_str_equal(l, label))
                return w;
        if ((ADW_IS_EXPANDER_ROW(w) || (ADW_IS_ACTION_ROW(w) && expander_of_header(w) == NULL)) &&
            g_strcmp0(adw_preferences_row_get_title(ADW_PREFERENCES_ROW(w)), label) == 0)
                return w;
        for (GtkWidget *c = gtk_widget_get_first_child(w); c != NULL; c = gtk_widget_get_next_sibling(c)) {
                GtkWidget *found = find_labelled(c, label);
                if (found != NULL)
                        return found;
        }
        return NULL;
}

static void do_activate(Control *c, const char *label) {
        GtkWidget *w = find_labelled(GTK_WIDGET(c->window), label);

        if (w == NULL) {
                reply("ERROR no control labelled '%s'", label);
                return;
        }
        if (!gtk_widget_is_sensitive(w) || !gtk_widget_get_mapped(w)) {
                reply("ERROR '%s' cannot be used now (insensitive or not shown)", label);
                return;
        }
        if (ADW_IS_EXPANDER_ROW(w))
                adw_expander_row_set_expanded(ADW_EXPANDER_ROW(w), !adw_expander_row_get_expanded(ADW_EXPANDER_ROW(w)));
        else
                gtk_widget_activate(w);
        reply("OK");
}

static void reply_focus(Control *c) {
        g_autofree char *d = describe(gtk_window_get_focus(GTK_WINDOW(c->window)));
        reply("FOCUS %s", d);
}

static void move_focus(Control *c, GtkDirectionType dir) {
        g_signal_emit_by_name(c->window, "move-focus", dir);
}

/* What GTK's key bindings do for the key: Tab moves the window's focus, Up and Down move a
 * list's cursor (and leave the list at its ends), Return activates the focused control.
 * Only for a window with the keyboard focus (see on_line()). */
static void do_key(Control *c, const char *name) {
        GtkWidget *focus = gtk_window_get_focus(GTK_WINDOW(c->window));

        if (g_str_equal(name, "Tab"))
                move_focus(c, GTK_DIR_TAB_FORWARD);
        else if (g_str_equal(name, "ISO_Left_Tab"))
                move_focus(c, GTK_DIR_TAB_BACKWARD);
        else if (g_str_equal(name, "Down") || g_str_equal(name, "Up")) {
                gboolean down = g_str_equal(name, "Down");
                GtkWidget *list = focus != NULL ? gtk_widget_get_ancestor(focus, GTK_TYPE_LIST_BOX) : NULL;

                if (list != NULL)
                        g_signal_emit_by_name(list, "move-cursor", GTK_MOVEMENT_DISPLAY_LINES, down ? 1 : -1, FALSE,
                                              FALSE);
                if (list == NULL || gtk_window_get_focus(GTK_WINDOW(c->window)) == focus)
                        move_focus(c, down ? GTK_DIR_DOWN : GTK_DIR_UP);
        } else if (g_str_equal(name, "Return")) {
                if (focus != NULL)
                        gtk_widget_activate(focus);
        } else {
                reply("ERROR unknown key %s", name);
                return;
        }
        reply_focus(c);
}

static void read_next(Control *c);

static void on_line(GObject *source, GAsyncResult *result, gpointer user_data) {
        Control *c = user_data;
        g_autoptr(GError) error = NULL;
        g_autofree char *line = g_data_input_stream_read_line_finish_utf8(G_DATA_INPUT_STREAM(source), result, NULL,
                                                                         &error);

        if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                return; /* the window is gone, and c with it */
        if (line == NULL) {
                /* the test went away: so does the app */
                gtk_window_destroy(GTK_WINDOW(c->window));
                return;
        }
        g_strchomp(line);
        if (g_str_equal(line, "dump"))
                do_dump(c);
        else if (g_str_has_prefix(line, "screenshot ")) {
                g_ptr_array_add(c->screenshots, g_strdup(line + strlen("screenshot ")));
                gtk_widget_queue_draw(GTK_WIDGET(c->window));
        } else if (g_str_has_prefix(line, "activate "))
                do_activate(c, line + strlen("activate "));
        else if (g_str_has_prefix(line, "key ")) {
                /* A keyboard only types into the window with the keyboard focus. In an inactive
                 * window (another one on the display took the focus) GTK 4.8 starts a Tab over
                 * from the top of the window, skipping the rest of the page: the key waits until
                 * the window has the focus again (on_active_changed()), as a user clicks into it
                 * before typing. */
                if (!gtk_window_is_active(GTK_WINDOW(c->window))) {
                        c->pending_key = g_strdup(line + strlen("key "));
                        gtk_window_present(GTK_WINDOW(c->window));
                        return; /* the next line is read once the key is done */
                }
                do_key(c, line + strlen("key "));
        } else if (g_str_equal(line, "focus"))
                reply_focus(c);
        else if (g_str_equal(line, "tick")) {
                pf_window_tick(c->window);
                reply("OK");
        } else if (g_str_equal(line, "counts")) {
                guint passwd, texts;
                pf_window_get_counts(c->window, &passwd, &texts);
                reply("COUNTS passwd=%u texts=%u", passwd, texts);
        }
        else if (g_str_equal(line, "quit")) {
                gtk_window_destroy(GTK_WINDOW(c->window));
                return;
        } else
                reply("ERROR unknown command '%s'", line);
        read_next(c);
}

static void read_next(Control *c) {
        g_data_input_stream_read_line_async(c->in, G_PRIORITY_DEFAULT, c->cancellable, on_line, c);
}

static void on_changed(PfWindow *window, const char *what, gpointer user_data) {
        Control *c = user_data;
        reply("EVENT %" G_GUINT64_FORMAT " %s", ++c->events, what);
}

/* Another window on the display took the keyboard focus (or gave it back). */
static void on_active_changed(GtkWindow *window, GParamSpec *pspec, Control *c) {
        g_autofree char *key = NULL;

        reply("EVENT %" G_GUINT64_FORMAT " %s", ++c->events,
              gtk_window_is_active(window) ? "active" : "inactive");
        if (!gtk_window_is_active(window) || c->pending_key == NULL)
                return;
        key = g_steal_pointer(&c->pending_key);
        do_key(c, key);
        read_next(c);
}

static void on_map(GtkWidget *w, Control *c) {
        GdkFrameClock *clock = gdk_surface_get_frame_clock(gtk_native_get_surface(GTK_NATIVE(w)));

        if (c->clock == clock)
                return; /* mapped again: hooked already */
        c->clock = clock;
        g_signal_connect_object(clock, "after-paint", G_CALLBACK(on_after_paint_object), w, 0);
        reply("EVENT %" G_GUINT64_FORMAT " mapped", ++c->events);
}

static void control_free(gpointer data) {
        Control *c = data;

        g_cancellable_cancel(c->cancellable);
        g_clear_object(&c->cancellable);
        g_clear_handle_id(&c->idle_id, g_source_remove);
        g_clear_object(&c->in);
        g_free(c->pending_key);
        g_ptr_array_unref(c->screenshots);
        g_free(c);
}

void pf_test_control_start(PfWindow *window) {
        Control *c = g_new0(Control, 1);
        g_autoptr(GInputStream) in = g_unix_input_stream_new(0, FALSE);

        c->window = window;
        c->screenshots = g_ptr_array_new_with_free_func(g_free);
        c->cancellable = g_cancellable_new();
        c->in = g_data_input_stream_new(in);
        g_object_set_data_full(G_OBJECT(window), "pf-test-control", c, control_free);

        /* stable pictures: no slides and fades between states */
        g_object_set(gtk_settings_get_default(), "gtk-enable-animations", FALSE, NULL);
        pf_window_set_changed_func(window, on_changed, c);
        g_signal_connect(window, "map", G_CALLBACK(on_map), c);
        g_signal_connect(window, "notify::is-active", G_CALLBACK(on_active_changed), c);
        read_next(c);
}
