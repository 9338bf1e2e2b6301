/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-polkit.h"

#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pcp1-contract.h"

#ifndef _cleanup_
#define _cleanup_(f) __attribute__((cleanup(f)))
#endif

#define POLKIT_NAME "org.freedesktop.PolicyKit1"
#define POLKIT_PATH "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_IFACE "org.freedesktop.PolicyKit1.Authority"

typedef struct check {
        pcpd_polkit *pk;
        uid_t uid;
        char *sender;
        char cancel_id[32];
        sd_bus_slot *slot; /* the CheckAuthorization call, until polkit answers it */
        guint timer;
        pcpd_polkit_callback cb; /* NULL once given up */
        void *userdata;
} check;

struct pcpd_polkit {
        sd_bus *bus;
        sd_bus_slot *name_slot;
        GHashTable *checks;    /* check*: every check sent and not yet answered */
        GHashTable *by_sender; /* unique name -> GPtrArray of its checks not given up */
        GHashTable *per_uid;   /* uid -> number of its checks in `checks` */
        uint64_t next_id;
};

unsigned pcpd_polkit_pending_for_uid(pcpd_polkit *pk, uid_t uid) {
        return GPOINTER_TO_UINT(g_hash_table_lookup(pk->per_uid, GUINT_TO_POINTER((guint) uid)));
}

unsigned pcpd_polkit_pending(pcpd_polkit *pk) {
        return g_hash_table_size(pk->checks);
}

static void sender_forget(pcpd_polkit *pk, check *c) {
        GPtrArray *list = g_hash_table_lookup(pk->by_sender, c->sender);

        if (list == NULL)
                return;
        g_ptr_array_remove_fast(list, c);
        if (list->len == 0)
                g_hash_table_remove(pk->by_sender, c->sender);
}

/* polkit has answered (or pcpd stops): the bus slot is free, so is the check */
static void check_free(check *c) {
        pcpd_polkit *pk = c->pk;
        unsigned n = pcpd_polkit_pending_for_uid(pk, c->uid);

        if (c->cb != NULL)
                sender_forget(pk, c);
        if (c->timer != 0)
                g_source_remove(c->timer);
        sd_bus_slot_unref(c->slot);
        g_hash_table_remove(pk->checks, c);
        if (n <= 1)
                g_hash_table_remove(pk->per_uid, GUINT_TO_POINTER((guint) c->uid));
        else
                g_hash_table_insert(pk->per_uid, GUINT_TO_POINTER((guint) c->uid), GUINT_TO_POINTER(n - 1));
        g_free(c->sender);
        g_free(c);
}

/* Tells polkit that nobody waits for the check any more; it then answers it with an error,
 * which frees the bus's slot. No reply is asked for: a polkit that does not answer would
 * otherwise hold a slot for every cancellation too. */
static void check_cancel(check *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(c->pk->bus, &m, POLKIT_NAME, POLKIT_PATH, POLKIT_IFACE,
                                           "CancelCheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", c->cancel_id);
        if (r >= 0)
                r = sd_bus_message_set_expect_reply(m, 0);
        if (r >= 0)
                r = sd_bus_send(c->pk->bus, m, NULL);
        if (r < 0)
                g_debug("Cannot cancel polkit check %s: %s", c->cancel_id, g_strerror(-r));
}

/* pcpd stops waiting: the caller hears `result` now; the check stays counted until
 * polkit answers it. */
static void check_give_up(check *c, pcpd_polkit_result result) {
        pcpd_polkit_callback cb = c->cb;

        if (cb == NULL)
                return;
        sender_forget(c->pk, c);
        c->cb = NULL;
        if (c->timer != 0) {
                g_source_remove(c->timer);
                c->timer = 0;
        }
        check_cancel(c);
        cb(result, NULL, c->userdata);
}

static gboolean on_timeout(gpointer data) {
        check *c = data;

        c->timer = 0;
        g_message("polkit did not answer check %s (uid %u) in time; cancelling it", c->cancel_id, (unsigned) c->uid);
        check_give_up(c, PCPD_POLKIT_TIMED_OUT);
        return G_SOURCE_REMOVE;
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        check *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        pcpd_polkit_callback cb = c->cb;
        void *ud = c->userdata;
        pcpd_polkit_result result = PCPD_POLKIT_FAILED;
        g_autofree char *detail = NULL;
        int authorized = 0, challenge = 0, r;

        if (e != NULL)
                detail = g_strdup(e->message ?: e->name);
        else {
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
                if (r < 0)
                        detail = g_strdup("polkit gave an unreadable answer");
                else
                        result = authorized ? PCPD_POLKIT_ALLOWED
                                            : challenge ? PCPD_POLKIT_CHALLENGE : PCPD_POLKIT_DENIED;
        }
        /* the slot is free: count it out before the caller hears anything (its callback
         * may well ask again) */
        check_free(c);
        if (cb != NULL) {
                if (result == PCPD_POLKIT_FAILED)
                        g_warning("Authorisation check failed: %s", detail);
                cb(result, detail, ud);
        }
        return 0;
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pcpd_polkit *pk = userdata;
        const char *name, *old_owner, *new_owner;
        g_autofree char *key = NULL;
        gpointer k, v;
        GPtrArray *list;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (name[0] != ':' || new_owner[0] != '\0')
                return 0;
        /* the caller is gone: nobody waits for these any more */
        if (!g_hash_table_steal_extended(pk->by_sender, name, &k, &v))
                return 0;
        key = k;
        list = v;
        for (guint i = 0; i < list->len; i++) {
                check *c = list->pdata[i];
                pcpd_polkit_callback cb = c->cb;
                c->cb = NULL; /* already out of by_sender */
                if (c->timer != 0) {
                        g_source_remove(c->timer);
                        c->timer = 0;
                }
                check_cancel(c);
                cb(PCPD_POLKIT_VANISHED, NULL, c->userdata);
        }
        g_debug("Gave up %u polkit checks of %s, which left the bus", list->len, name);
        g_ptr_array_free(list, TRUE);
        return 0;
}

int pcpd_polkit_new(sd_bus *bus, pcpd_polkit **ret) {
        pcpd_polkit *pk = g_new0(pcpd_polkit, 1);
        int r;

        pk->bus = sd_bus_ref(bus);
        pk->checks = g_hash_table_new(g_direct_hash, g_direct_equal);
        pk->by_sender = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
        pk->per_uid = g_hash_table_new(g_direct_hash, g_direct_equal);
        pk->next_id = 1;
        r = sd_bus_match_signal(bus, &pk->name_slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, pk);
        if (r < 0) {
                pcpd_polkit_free(pk);
                return r;
        }
        *ret = pk;
        return 0;
}

pcpd_polkit *pcpd_polkit_free(pcpd_polkit *pk) {
        GHashTableIter it;
        gpointer k;

        if (pk == NULL)
                return NULL;
        pk->name_slot = sd_bus_slot_unref(pk->name_slot);
        /* give every waiting caller up, then forget every check */
        while (g_hash_table_size(pk->checks) > 0) {
                check *c = NULL;
                g_hash_table_iter_init(&it, pk->checks);
                if (!g_hash_table_iter_next(&it, &k, NULL))
                        break;
                c = k;
                check_give_up(c, PCPD_POLKIT_SHUTDOWN);
                check_free(c);
        }
        g_hash_table_destroy(pk->checks);
        g_hash_table_destroy(pk->by_sender);
        g_hash_table_destroy(pk->per_uid);
        sd_bus_unref(pk->bus);
        g_free(pk);
        return NULL;
}

int pcpd_polkit_check(pcpd_polkit *pk, const char *sender, uid_t uid, const char *action, bool interactive,
                      pcpd_polkit_callback cb, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        unsigned mine = pcpd_polkit_pending_for_uid(pk, uid);
        GPtrArray *list;
        check *c;
        int r;

        if (mine >= PCPD_POLKIT_MAX_PER_UID) {
                sd_bus_error_setf(error, PCP1_ERROR_TOO_MANY_PENDING,
                                  "You already have %u requests waiting for polkit to authorise them (an "
                                  "authentication dialog left open?); pcpd keeps at most %u of one user's requests "
                                  "waiting. Answer or dismiss those first, or wait until they time out.",
                                  mine, PCPD_POLKIT_MAX_PER_UID);
                return -EBUSY;
        }
        if (pcpd_polkit_pending(pk) >= PCPD_POLKIT_MAX) {
                sd_bus_error_setf(error, PCP1_ERROR_TOO_MANY_PENDING,
                                  "pcpd is already waiting for polkit to authorise %u requests of several users, the "
                                  "most it keeps waiting at once; try again in a moment.",
                                  PCPD_POLKIT_MAX);
                return -EBUSY;
        }

        c = g_new0(check, 1);
        c->pk = pk;
        c->uid = uid;
        c->sender = g_strdup(sender);
        c->cb = cb;
        c->userdata = userdata;
        /* unique per pcpd connection, which is what polkit scopes them by */
        snprintf(c->cancel_id, sizeof(c->cancel_id), "pcpd-%" PRIu64, pk->next_id++);

        r = sd_bus_message_new_method_call(pk->bus, &call, POLKIT_NAME, POLKIT_PATH, POLKIT_IFACE,
                                           "CheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(call, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s", sender,
                                          action, 0, interactive ? 1 : 0, c->cancel_id);
        /* no sd-bus time-out: ours below gives up and cancels, so polkit answers and the
         * bus frees the slot; sd-bus's own would only forget the reply */
        if (r >= 0)
                r = sd_bus_call_async(pk->bus, &c->slot, call, on_reply, c, UINT64_MAX);
        if (r < 0) {
                g_free(c->sender);
                g_free(c);
                sd_bus_error_setf(error, PCP1_ERROR_NOT_AUTHORIZED, "Could not ask polkit: %s", g_strerror(-r));
                return r;
        }
        c->timer = g_timeout_add_seconds(interactive ? PCPD_POLKIT_INTERACTIVE_TIMEOUT_S : PCPD_POLKIT_TIMEOUT_S,
                                         on_timeout, c);
        g_hash_table_add(pk->checks, c);
        g_hash_table_insert(pk->per_uid, GUINT_TO_POINTER((guint) uid), GUINT_TO_POINTER(mine + 1));
        list = g_hash_table_lookup(pk->by_sender, sender);
        if (list == NULL) {
                list = g_ptr_array_new();
                g_hash_table_insert(pk->by_sender, g_strdup(sender), list);
        }
        g_ptr_array_add(list, c);
        return 0;
}
