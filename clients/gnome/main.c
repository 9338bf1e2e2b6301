/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * "Port Forwarding": which application opened which port on the router, and one switch to
 * stop it — a small GNOME app on pcpd's D-Bus API (org.freedesktop.PCP1).
 */

#include "config.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <locale.h>

#include "pf-test-control.h"
#include "pf-window.h"

static gboolean test_control;

static const GOptionEntry options[] = {
        /* hidden: for the test suite only (see pf-test-control.h) */
        { "test-control", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &test_control, NULL, NULL },
        { NULL },
};

static void on_about(GSimpleAction *action, GVariant *parameter, gpointer user_data) {
        GtkApplication *app = user_data;
        AdwAboutWindow *about = ADW_ABOUT_WINDOW(adw_about_window_new());

        adw_about_window_set_application_name(about, _("Port Forwarding"));
        adw_about_window_set_application_icon(about, APP_ID);
        adw_about_window_set_version(about, PACKAGE_VERSION);
        adw_about_window_set_developer_name(about, _("The pcpd developers"));
        adw_about_window_set_comments(about, _("See which applications opened ports on your router, close them, "
                                               "or switch automatic port forwarding off."));
        adw_about_window_set_license_type(about, GTK_LICENSE_LGPL_2_1);
        adw_about_window_set_translator_credits(about, _("translator-credits"));
        gtk_window_set_transient_for(GTK_WINDOW(about), gtk_application_get_active_window(app));
        gtk_window_present(GTK_WINDOW(about));
}

static void on_quit(GSimpleAction *action, GVariant *parameter, gpointer user_data) {
        g_application_quit(G_APPLICATION(user_data));
}

static void on_startup(GApplication *app) {
        static const GActionEntry actions[] = {
                { .name = "about", .activate = on_about },
                { .name = "quit", .activate = on_quit },
        };
        static const char *const quit_accels[] = { "<Control>q", NULL };
        static const char *const close_accels[] = { "<Control>w", NULL };

        g_action_map_add_action_entries(G_ACTION_MAP(app), actions, G_N_ELEMENTS(actions), app);
        gtk_application_set_accels_for_action(GTK_APPLICATION(app), "app.quit", quit_accels);
        gtk_application_set_accels_for_action(GTK_APPLICATION(app), "window.close", close_accels);
}

static void on_activate(GApplication *app) {
        GtkWindow *window = gtk_application_get_active_window(GTK_APPLICATION(app));

        if (window == NULL) {
                PfWindow *w = pf_window_new(GTK_APPLICATION(app));
                if (test_control)
                        pf_test_control_start(w);
                window = GTK_WINDOW(w);
        }
        gtk_window_present(window);
}

static int on_handle_local_options(GApplication *app, GVariantDict *dict) {
        if (test_control)
                /* a test's instance never hands over to another one */
                g_application_set_flags(app, g_application_get_flags(app) | G_APPLICATION_NON_UNIQUE);
        return -1;
}

int main(int argc, char **argv) {
        g_autoptr(AdwApplication) app = NULL;

        setlocale(LC_ALL, "");
        bindtextdomain(GETTEXT_PACKAGE, LOCALEDIR);
        bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
        textdomain(GETTEXT_PACKAGE);

        app = adw_application_new(APP_ID, G_APPLICATION_DEFAULT_FLAGS);
        g_application_add_main_option_entries(G_APPLICATION(app), options);
        g_signal_connect(app, "startup", G_CALLBACK(on_startup), NULL);
        g_signal_connect(app, "activate", G_CALLBACK(on_activate), NULL);
        g_signal_connect(app, "handle-local-options", G_CALLBACK(on_handle_local_options), NULL);
        return g_application_run(G_APPLICATION(app), argc, argv);
}
