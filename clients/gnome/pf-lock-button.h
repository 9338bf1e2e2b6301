/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The lock in front of the settings that need polkit, driving a GPermission (a
 * PolkitPermission for org.freedesktop.PCP1.configure): "Unlock…" acquires it (polkit's
 * agent asks for a password), "Lock" releases the temporary authorisation again.
 *
 * GTK 4.8 still has GtkLockButton, but it is deprecated from 4.10 on and goes away in
 * GTK 5, and warnings are errors here; this button does the same with public GPermission
 * calls, and reports failures instead of only logging them.
 */

#include <gtk/gtk.h>

#define PF_TYPE_LOCK_BUTTON (pf_lock_button_get_type())
G_DECLARE_FINAL_TYPE(PfLockButton, pf_lock_button, PF, LOCK_BUTTON, GtkButton)

GtkWidget *pf_lock_button_new(void);
void pf_lock_button_set_permission(PfLockButton *self, GPermission *permission);
GPermission *pf_lock_button_get_permission(PfLockButton *self);
/* Whether the button has anything to offer: unlocking or locking again. FALSE when the
 * permission is given for good (or there is none and nothing can be done). */
gboolean pf_lock_button_get_useful(PfLockButton *self);
