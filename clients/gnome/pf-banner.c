/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"

#include "pf-banner.h"

struct _PfBanner {
        GtkWidget parent_instance;

        GtkWidget *revealer;
        GtkWidget *box;
        GtkWidget *label;
        GtkWidget *end;
};

G_DEFINE_FINAL_TYPE(PfBanner, pf_banner, GTK_TYPE_WIDGET)

static void pf_banner_dispose(GObject *object) {
        PfBanner *self = PF_BANNER(object);

        g_clear_pointer(&self->revealer, gtk_widget_unparent);
        G_OBJECT_CLASS(pf_banner_parent_class)->dispose(object);
}

static void pf_banner_class_init(PfBannerClass *klass) {
        GObjectClass *object_class = G_OBJECT_CLASS(klass);
        GtkWidgetClass *widget_class = GTK_WIDGET_CLASS(klass);

        object_class->dispose = pf_banner_dispose;
        gtk_widget_class_set_layout_manager_type(widget_class, GTK_TYPE_BIN_LAYOUT);
        gtk_widget_class_set_css_name(widget_class, "pf-banner");
        /* the sentence is what matters: screen readers announce the banner as a status */
        gtk_widget_class_set_accessible_role(widget_class, GTK_ACCESSIBLE_ROLE_STATUS);
}

static void pf_banner_init(PfBanner *self) {
        self->revealer = gtk_revealer_new();
        gtk_revealer_set_transition_type(GTK_REVEALER(self->revealer), GTK_REVEALER_TRANSITION_TYPE_SLIDE_DOWN);
        gtk_widget_set_parent(self->revealer, GTK_WIDGET(self));

        self->box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 12);
        gtk_widget_add_css_class(self->box, "pf-banner");
        gtk_revealer_set_child(GTK_REVEALER(self->revealer), self->box);

        self->label = gtk_label_new(NULL);
        gtk_label_set_wrap(GTK_LABEL(self->label), TRUE);
        gtk_label_set_justify(GTK_LABEL(self->label), GTK_JUSTIFY_CENTER);
        gtk_label_set_xalign(GTK_LABEL(self->label), 0.5f);
        gtk_widget_set_hexpand(self->label, TRUE);
        gtk_box_append(GTK_BOX(self->box), self->label);
}

GtkWidget *pf_banner_new(void) {
        return g_object_new(PF_TYPE_BANNER, NULL);
}

void pf_banner_set_title(PfBanner *self, const char *title) {
        g_return_if_fail(PF_IS_BANNER(self));
        gtk_label_set_text(GTK_LABEL(self->label), title != NULL ? title : "");
        gtk_accessible_update_property(GTK_ACCESSIBLE(self), GTK_ACCESSIBLE_PROPERTY_LABEL, title != NULL ? title : "",
                                       -1);
}

const char *pf_banner_get_title(PfBanner *self) {
        g_return_val_if_fail(PF_IS_BANNER(self), NULL);
        return gtk_label_get_text(GTK_LABEL(self->label));
}

void pf_banner_set_revealed(PfBanner *self, gboolean revealed) {
        g_return_if_fail(PF_IS_BANNER(self));
        gtk_revealer_set_reveal_child(GTK_REVEALER(self->revealer), revealed);
}

gboolean pf_banner_get_revealed(PfBanner *self) {
        g_return_val_if_fail(PF_IS_BANNER(self), FALSE);
        return gtk_revealer_get_reveal_child(GTK_REVEALER(self->revealer));
}

void pf_banner_set_end_widget(PfBanner *self, GtkWidget *widget) {
        g_return_if_fail(PF_IS_BANNER(self));
        if (self->end != NULL)
                gtk_box_remove(GTK_BOX(self->box), self->end);
        self->end = widget;
        if (widget != NULL) {
                gtk_widget_set_valign(widget, GTK_ALIGN_CENTER);
                gtk_box_append(GTK_BOX(self->box), widget);
        }
}
