/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <adwaita.h>

#define PF_TYPE_WINDOW (pf_window_get_type())
G_DECLARE_FINAL_TYPE(PfWindow, pf_window, PF, WINDOW, AdwApplicationWindow)

PfWindow *pf_window_new(GtkApplication *app);

/* Called after the page changed because of the service, polkit or the user (what: "manager",
 * "mappings", "permission", "toast"); used by the test control. */
typedef void (*PfWindowChangedFunc)(PfWindow *window, const char *what, gpointer user_data);
void pf_window_set_changed_func(PfWindow *self, PfWindowChangedFunc func, gpointer user_data);

/* The text of the last toast shown, NULL before the first. */
const char *pf_window_get_last_toast(PfWindow *self);

/* For the test control: the "expires in" texts brought up to date now (what the window's
 * timer does), and how many passwd lookups it made and row texts it changed so far. */
void pf_window_tick(PfWindow *self);
/* Updates waiting for an idle (the groups' subtitles) done now: what the next frame shows. */
void pf_window_flush(PfWindow *self);
void pf_window_get_counts(PfWindow *self, guint *passwd_lookups, guint *text_updates);
