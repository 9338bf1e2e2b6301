/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"

#include "pf-lock-button.h"

#include <glib/gi18n.h>

struct _PfLockButton {
        GtkButton parent_instance;

        GtkWidget *image;
        GtkWidget *label;
        GPermission *permission;
        GCancellable *cancellable;
        gboolean busy;
};

enum {
        SIGNAL_FAILED,
        N_SIGNALS,
};
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE(PfLockButton, pf_lock_button, GTK_TYPE_BUTTON)

static void update(PfLockButton *self) {
        gboolean allowed = FALSE, can_acquire = FALSE, can_release = FALSE;
        const char *text, *tooltip, *icon;

        if (self->permission != NULL) {
                allowed = g_permission_get_allowed(self->permission);
                can_acquire = g_permission_get_can_acquire(self->permission);
                can_release = g_permission_get_can_release(self->permission);
        }

        if (allowed) {
                text = _("Lock");
                icon = "changes-allow-symbolic";
                tooltip = _("Lock to prevent further changes");
        } else {
                text = _("Unlock…");
                icon = "changes-prevent-symbolic";
                tooltip = can_acquire ? _("Unlock to change these settings")
                                      : _("System policy prevents changes. Contact your system administrator.");
        }
        gtk_label_set_text_with_mnemonic(GTK_LABEL(self->label), text);
        gtk_image_set_from_icon_name(GTK_IMAGE(self->image), icon);
        gtk_widget_set_tooltip_text(GTK_WIDGET(self), tooltip);
        gtk_accessible_update_property(GTK_ACCESSIBLE(self), GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, tooltip, -1);
        gtk_widget_set_sensitive(GTK_WIDGET(self), !self->busy && (allowed ? can_release : can_acquire));
}

static void on_permission_notify(GPermission *permission, GParamSpec *pspec, PfLockButton *self) {
        update(self);
}

static void on_acquired(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(PfLockButton) self = user_data;
        g_autoptr(GError) error = NULL;

        self->busy = FALSE;
        if (!g_permission_acquire_finish(G_PERMISSION(source), result, &error) &&
            !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                /* dismissing the password dialog is no failure; anything else is told */
                g_signal_emit(self, signals[SIGNAL_FAILED], 0, error->message);
        update(self);
}

static void on_released(GObject *source, GAsyncResult *result, gpointer user_data) {
        g_autoptr(PfLockButton) self = user_data;
        g_autoptr(GError) error = NULL;

        self->busy = FALSE;
        if (!g_permission_release_finish(G_PERMISSION(source), result, &error) &&
            !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                g_signal_emit(self, signals[SIGNAL_FAILED], 0, error->message);
        update(self);
}

static void pf_lock_button_clicked(GtkButton *button) {
        PfLockButton *self = PF_LOCK_BUTTON(button);

        if (self->permission == NULL || self->busy)
                return;
        self->busy = TRUE;
        update(self);
        if (g_permission_get_allowed(self->permission))
                g_permission_release_async(self->permission, self->cancellable, on_released, g_object_ref(self));
        else
                g_permission_acquire_async(self->permission, self->cancellable, on_acquired, g_object_ref(self));
}

static void pf_lock_button_dispose(GObject *object) {
        PfLockButton *self = PF_LOCK_BUTTON(object);

        g_cancellable_cancel(self->cancellable);
        pf_lock_button_set_permission(self, NULL);
        G_OBJECT_CLASS(pf_lock_button_parent_class)->dispose(object);
}

static void pf_lock_button_finalize(GObject *object) {
        PfLockButton *self = PF_LOCK_BUTTON(object);

        g_clear_object(&self->cancellable);
        G_OBJECT_CLASS(pf_lock_button_parent_class)->finalize(object);
}

static void pf_lock_button_class_init(PfLockButtonClass *klass) {
        GObjectClass *object_class = G_OBJECT_CLASS(klass);
        GtkButtonClass *button_class = GTK_BUTTON_CLASS(klass);

        object_class->dispose = pf_lock_button_dispose;
        object_class->finalize = pf_lock_button_finalize;
        button_class->clicked = pf_lock_button_clicked;

        /* acquiring or releasing failed for another reason than the user dismissing the
         * dialog; the argument is the message */
        signals[SIGNAL_FAILED] = g_signal_new("failed", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                                              NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void pf_lock_button_init(PfLockButton *self) {
        GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);

        self->cancellable = g_cancellable_new();
        self->image = gtk_image_new();
        self->label = gtk_label_new(NULL);
        gtk_label_set_use_underline(GTK_LABEL(self->label), TRUE);
        gtk_label_set_mnemonic_widget(GTK_LABEL(self->label), GTK_WIDGET(self));
        gtk_box_append(GTK_BOX(box), self->image);
        gtk_box_append(GTK_BOX(box), self->label);
        gtk_button_set_child(GTK_BUTTON(self), box);
        update(self);
}

GtkWidget *pf_lock_button_new(void) {
        return g_object_new(PF_TYPE_LOCK_BUTTON, NULL);
}

void pf_lock_button_set_permission(PfLockButton *self, GPermission *permission) {
        g_return_if_fail(PF_IS_LOCK_BUTTON(self));

        if (self->permission == permission)
                return;
        if (self->permission != NULL) {
                g_signal_handlers_disconnect_by_func(self->permission, on_permission_notify, self);
                g_clear_object(&self->permission);
        }
        if (permission != NULL) {
                self->permission = g_object_ref(permission);
                g_signal_connect(permission, "notify", G_CALLBACK(on_permission_notify), self);
        }
        update(self);
}

GPermission *pf_lock_button_get_permission(PfLockButton *self) {
        g_return_val_if_fail(PF_IS_LOCK_BUTTON(self), NULL);
        return self->permission;
}

gboolean pf_lock_button_get_useful(PfLockButton *self) {
        g_return_val_if_fail(PF_IS_LOCK_BUTTON(self), FALSE);
        if (self->permission == NULL)
                return FALSE;
        if (g_permission_get_allowed(self->permission))
                return g_permission_get_can_release(self->permission);
        return TRUE; /* locked: show it, insensitive with the reason when it cannot be opened */
}
