/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-bus-track.h"

#include <errno.h>
#include <glib.h>

struct pcpd_bus_track {
        sd_bus *bus;             /* NULL when unbound (tests) */
        pcpd_manager *manager;
        sd_bus_slot *match_slot; /* NameOwnerChanged */
        GHashTable *questions;   /* pcpd_bus_track_question* out (owned) */
        pcpd_bus_track_ask ask;  /* asks in place of the bus (tests), or NULL */
        void *ask_userdata;
};

/* One GetNameOwner question: the error the bus answers with does not carry the name. */
struct pcpd_bus_track_question {
        pcpd_bus_track *track;
        char *name;
        sd_bus_slot *slot; /* the call, while out (bound) */
};

static void question_free(gpointer p) {
        pcpd_bus_track_question *q = p;

        sd_bus_slot_unref(q->slot); /* a call still out: its answer reaches nobody */
        g_free(q->name);
        g_free(q);
}

/* NameOwnerChanged: a unique name with no new owner left the bus */
static void on_signal(pcpd_bus_track *t, sd_bus_message *msg) {
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return;
        if (name[0] == ':' && new_owner[0] == '\0')
                pcpd_manager_holder_vanished(t->manager, name);
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        on_signal(userdata, msg);
        return 0;
}

void pcpd_bus_track_signal(pcpd_bus_track *t, sd_bus_message *name_owner_changed) {
        on_signal(t, name_owner_changed);
}

/* The name may have left between its call and the hold, before a NameOwnerChanged could
 * find the hold to drop: only NameHasNoOwner says it is gone. Any other answer (an owner,
 * another error) leaves the hold to the match. */
void pcpd_bus_track_answer(pcpd_bus_track_question *q, sd_bus_message *reply) {
        pcpd_bus_track *t = q->track;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        g_autofree char *gone = NULL;

        if (e != NULL && sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.NameHasNoOwner"))
                gone = g_strdup(q->name);
        g_hash_table_remove(t->questions, q); /* frees q */
        if (gone != NULL)
                pcpd_manager_holder_vanished(t->manager, gone);
}

static int on_name_owner(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        pcpd_bus_track_answer(userdata, reply);
        return 0;
}

int pcpd_bus_track_check(pcpd_bus_track *t, const char *name) {
        pcpd_bus_track_question *q;
        int r;

        if (t == NULL)
                return 0;
        g_return_val_if_fail(name != NULL, -EINVAL);
        q = g_new0(pcpd_bus_track_question, 1);
        q->track = t;
        q->name = g_strdup(name);
        if (t->ask != NULL)
                r = t->ask(q, name, t->ask_userdata);
        else
                r = sd_bus_call_method_async(t->bus, &q->slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                             "org.freedesktop.DBus", "GetNameOwner", on_name_owner, q, "s", name);
        if (r < 0) {
                question_free(q);
                return r;
        }
        g_hash_table_add(t->questions, q);
        return 0;
}

unsigned pcpd_bus_track_n_checks(pcpd_bus_track *t) {
        return t != NULL ? g_hash_table_size(t->questions) : 0;
}

static pcpd_bus_track *track_alloc(pcpd_manager *m) {
        pcpd_bus_track *t = g_new0(pcpd_bus_track, 1);

        t->manager = m;
        t->questions = g_hash_table_new_full(g_direct_hash, g_direct_equal, question_free, NULL);
        return t;
}

int pcpd_bus_track_new(sd_bus *bus, pcpd_manager *m, pcpd_bus_track **ret) {
        pcpd_bus_track *t = track_alloc(m);
        int r;

        t->bus = sd_bus_ref(bus);
        /* synchronous: in place at the bus before any call is answered */
        r = sd_bus_match_signal(bus, &t->match_slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, t);
        if (r < 0) {
                pcpd_bus_track_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

pcpd_bus_track *pcpd_bus_track_new_unbound(pcpd_manager *m, pcpd_bus_track_ask ask, void *userdata) {
        pcpd_bus_track *t = track_alloc(m);

        g_assert(ask != NULL);
        t->ask = ask;
        t->ask_userdata = userdata;
        return t;
}

pcpd_bus_track *pcpd_bus_track_free(pcpd_bus_track *t) {
        if (t == NULL)
                return NULL;
        sd_bus_slot_unref(t->match_slot);
        g_hash_table_destroy(t->questions);
        sd_bus_unref(t->bus);
        g_free(t);
        return NULL;
}
