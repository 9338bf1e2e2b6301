/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A banner under the header bar: one sentence and an optional widget at its end, shown and
 * hidden with a slide. libadwaita 1.2 has no AdwBanner (it came in 1.3) and GtkInfoBar is
 * deprecated from GTK 4.10 on, so this is a GtkRevealer with a styled box, the way
 * GNOME Settings 43 builds its permission bar.
 */

#include <gtk/gtk.h>

#define PF_TYPE_BANNER (pf_banner_get_type())
G_DECLARE_FINAL_TYPE(PfBanner, pf_banner, PF, BANNER, GtkWidget)

GtkWidget *pf_banner_new(void);
void pf_banner_set_title(PfBanner *self, const char *title);
const char *pf_banner_get_title(PfBanner *self);
void pf_banner_set_revealed(PfBanner *self, gboolean revealed);
gboolean pf_banner_get_revealed(PfBanner *self);
/* a widget at the banner's end (a button); NULL removes it */
void pf_banner_set_end_widget(PfBanner *self, GtkWidget *widget);
