/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Holders that leave the bus (pcpd-bus-track.c) without a bus: the manager, built without
 * one, holds mappings for made-up unique names through a configured server on the loopback
 * (nothing answers it: the mappings stay pending); a fake bus driver records each
 * GetNameOwner question the track would send, the test answers it with real sd-bus replies
 * and gives it NameOwnerChanged signals. Covered: the manager asks about a holder nobody
 * vouched for (holder_unconfirmed) and not about one the caller knew alive; a unique name
 * that left, or that the bus says has no owner, loses its holds (owner-vanished), and only
 * a mapping nobody else holds goes; other signals and answers change nothing; freeing with
 * questions out. The bus tests (tests/bus/test-ownership.py, test-caller-cache.py) cover
 * the same against a real bus. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "pcpd-bus-track.h"
#include "pcpd-manager.h"
#include "pcpd-servers.h"
#include "unit-fixture.h"

/* a started connection that is never used, to make messages with (one end of a socket pair) */
static sd_bus *bus;
static uint64_t cookie = 1;

typedef struct question {
        pcpd_bus_track_question *q;
        char *name;
} question;

typedef struct fixture {
        char *dir;
        GMainLoop *loop;
        pcpd_manager *m;
        pcpd_bus_track *track;
        GPtrArray *out;      /* question*: asked, not answered */
        unsigned n_asked;
        int fail_with;       /* when not 0, questions are not sent: ask returns it */
        GArray *removed;     /* pcpd_remove_reason of each mapping_removed */
        GPtrArray *removed_paths;
} fixture;

static void question_free(gpointer p) {
        question *q = p;

        g_free(q->name);
        g_free(q);
}

static int fake_ask(pcpd_bus_track_question *q, const char *name, void *userdata) {
        fixture *f = userdata;
        question *fq;

        f->n_asked++;
        if (f->fail_with != 0)
                return f->fail_with;
        fq = g_new0(question, 1);
        fq->q = q;
        fq->name = g_strdup(name);
        g_ptr_array_add(f->out, fq);
        return 0;
}

/* ---- the listener: what a bus face would do with holder_unconfirmed ---- */

static void on_removed(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason, void *userdata) {
        fixture *f = userdata;
        unsigned r = reason;

        g_array_append_val(f->removed, r);
        g_ptr_array_add(f->removed_paths, g_strdup(PCPD_MAPPING_PATH(mp)));
}

static void on_unconfirmed(pcpd_manager *m, const char *holder, void *userdata) {
        fixture *f = userdata;

        assert_int_equal(pcpd_bus_track_check(f->track, holder), 0);
}

static const pcpd_manager_listener listener = {
        .mapping_removed = on_removed,
        .holder_unconfirmed = on_unconfirmed,
};

/* ---- messages, as the bus driver sends them ---- */

static sd_bus_message *seal(sd_bus_message *m) {
        assert_true(sd_bus_message_seal(m, cookie++, 0) >= 0);
        assert_true(sd_bus_message_rewind(m, true) >= 0);
        return m;
}

static sd_bus_message *name_owner_changed(const char *name, const char *old_owner, const char *new_owner) {
        sd_bus_message *m = NULL;

        assert_true(sd_bus_message_new_signal(bus, &m, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                              "NameOwnerChanged") >= 0);
        assert_true(sd_bus_message_append(m, "sss", name, old_owner, new_owner) >= 0);
        return seal(m);
}

static sd_bus_message *get_name_owner_call(const char *name) {
        sd_bus_message *call = NULL;

        assert_true(sd_bus_message_new_method_call(bus, &call, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                   "org.freedesktop.DBus", "GetNameOwner") >= 0);
        assert_true(sd_bus_message_append(call, "s", name) >= 0);
        assert_true(sd_bus_message_seal(call, cookie++, 0) >= 0);
        return call;
}

/* the owner's unique name, as the bus answers for a name that is there */
static sd_bus_message *reply_owner(const char *name) {
        sd_bus_message *call = get_name_owner_call(name), *m = NULL;

        assert_true(sd_bus_message_new_method_return(call, &m) >= 0);
        sd_bus_message_unref(call);
        assert_true(sd_bus_message_append(m, "s", name) >= 0);
        return seal(m);
}

static sd_bus_message *reply_error(const char *name, const char *error) {
        sd_bus_message *call = get_name_owner_call(name), *m = NULL;

        assert_true(sd_bus_message_new_method_errorf(call, &m, error, "Could not get owner of name '%s'", name) >= 0);
        sd_bus_message_unref(call);
        return seal(m);
}

static void signal_give(fixture *f, const char *name, const char *old_owner, const char *new_owner) {
        sd_bus_message *m = name_owner_changed(name, old_owner, new_owner);

        pcpd_bus_track_signal(f->track, m);
        sd_bus_message_unref(m);
}

/* gives reply (consumed) as the answer to the oldest question out about name */
static void answer(fixture *f, const char *name, sd_bus_message *reply) {
        for (guint i = 0; i < f->out->len; i++) {
                question *q = f->out->pdata[i];
                if (strcmp(q->name, name) == 0) {
                        pcpd_bus_track_question *tq = q->q;
                        g_ptr_array_remove_index(f->out, i); /* frees q */
                        pcpd_bus_track_answer(tq, reply);
                        sd_bus_message_unref(reply);
                        return;
                }
        }
        fail_msg("no question about %s is out (%u out)", name, f->out->len);
}

/* ---- fixture ---- */

static int setup_bus(void **state) {
        /* messages need a started bus; this one is never used */
        return unit_offline_bus_setup(&bus);
}

static int teardown_bus(void **state) {
        return unit_offline_bus_teardown(&bus);
}

static int setup(void **state) {
        fixture *f = g_new0(fixture, 1);
        pcpd_config config;
        pcpd_server_spec spec = { .n_addrs = 1 };

        f->dir = unit_make_own_dir("bus-track");
        f->loop = g_main_loop_new(NULL, FALSE);
        f->out = g_ptr_array_new_with_free_func(question_free);
        f->removed = g_array_new(FALSE, FALSE, sizeof(unsigned));
        f->removed_paths = g_ptr_array_new_with_free_func(g_free);

        pcpd_config_init(&config);
        f->m = unit_manager_new(&config, f->dir, f->loop, &listener, f);
        pcpd_config_clear(&config);
        f->track = pcpd_bus_track_new_unbound(f->m, fake_ask, f);

        /* a configured server on the loopback, at the discard port: mappings go to it and
         * stay pending (the loop never runs: nothing is read) */
        spec.addrs[0].sin6_family = AF_INET6;
        spec.addrs[0].sin6_port = htons(9);
        assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", &spec.addrs[0].sin6_addr), 1);
        assert_true(pcpd_manager_set_servers(f->m, PCPD_SOURCE_CONFIG, NULL, &spec, 1));
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        g_ptr_array_set_size(f->out, 0); /* the track frees its questions */
        pcpd_bus_track_free(f->track);
        pcpd_manager_free(f->m);
        g_ptr_array_free(f->out, TRUE);
        g_array_unref(f->removed);
        g_ptr_array_free(f->removed_paths, TRUE);
        g_main_loop_unref(f->loop);
        unit_rm_own_dir(f->dir);
        g_free(f->dir);
        g_free(f);
        return 0;
}

/* a mapping of UDP port `port` held by owner (shared when it exists) */
static pcpd_mapping *hold(fixture *f, uint16_t port, const char *owner, bool known_alive) {
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping_request req = {
                .opcode = PCP_OPCODE_MAP,
                .protocol = 17,
                .family = AF_INET,
                .internal_port = port,
                .uid = getuid(),
                .app_id = "",
                .app_id_source = "none",
                .owner = owner,
                .owner_known_alive = known_alive,
        };
        pcpd_mapping *mp = NULL;

        if (pcpd_manager_add_mapping(f->m, &req, &mp, &e) < 0)
                fail_msg("AddMapping of port %u for %s: %s", port, owner, e.message);
        assert_non_null(mp);
        return mp;
}

static bool exists(fixture *f, const char *path) {
        return pcpd_manager_find_path(f->m, path) != NULL;
}

/* ---- tests ---- */

/* The manager asks about a holder nobody vouched for, each time, and never about one the
 * caller knew alive. */
static void test_unconfirmed_asked(void **state) {
        fixture *f = *state;

        hold(f, 5001, ":1.10", false);
        assert_int_equal(f->n_asked, 1);
        assert_int_equal(f->out->len, 1);
        assert_string_equal(((question *) f->out->pdata[0])->name, ":1.10");
        assert_int_equal(pcpd_bus_track_n_checks(f->track), 1);

        hold(f, 5002, ":1.11", true);
        hold(f, 5001, ":1.11", true); /* sharing, known alive */
        assert_int_equal(f->n_asked, 1);

        hold(f, 5001, ":1.12", false); /* sharing, not vouched for */
        assert_int_equal(f->n_asked, 2);
        assert_string_equal(((question *) f->out->pdata[1])->name, ":1.12");
        assert_int_equal(pcpd_manager_n_mappings(f->m), 2);
}

/* A unique name that left loses its holds: a mapping only it held goes (owner-vanished),
 * one held by another name too stays. */
static void test_left_removes(void **state) {
        fixture *f = *state;
        g_autofree char *only = g_strdup(PCPD_MAPPING_PATH(hold(f, 5001, ":1.20", true)));
        g_autofree char *shared = g_strdup(PCPD_MAPPING_PATH(hold(f, 5002, ":1.20", true)));

        assert_string_equal(PCPD_MAPPING_PATH(hold(f, 5002, ":1.21", true)), shared);
        signal_give(f, ":1.20", ":1.20", "");
        assert_int_equal(f->removed->len, 1);
        assert_int_equal(g_array_index(f->removed, unsigned, 0), PCPD_REMOVED_OWNER_VANISHED);
        assert_string_equal((const char *) f->removed_paths->pdata[0], only);
        assert_false(exists(f, only));
        assert_true(exists(f, shared));

        /* again: it holds nothing any more */
        signal_give(f, ":1.20", ":1.20", "");
        assert_int_equal(f->removed->len, 1);

        /* the second name to leave in this turn of the loop: its mapping goes in a later
         * turn (pcpd_manager_holder_vanished()); the loop is turned until it has (a counted
         * cap) */
        signal_give(f, ":1.21", ":1.21", "");
        for (unsigned turns = 0; f->removed->len < 2; turns++) {
                if (turns >= 100)
                        fail_msg("the shared mapping not removed after %u turns of the loop", turns);
                g_main_context_iteration(NULL, FALSE);
        }
        assert_int_equal(f->removed->len, 2);
        assert_int_equal(g_array_index(f->removed, unsigned, 1), PCPD_REMOVED_OWNER_VANISHED);
        assert_false(exists(f, shared));
        assert_int_equal(f->n_asked, 0);
}

/* Only a unique name with no new owner has left. */
static void test_other_signals_ignored(void **state) {
        fixture *f = *state;
        g_autofree char *path = g_strdup(PCPD_MAPPING_PATH(hold(f, 5001, ":1.30", true)));
        g_autoptr(GPtrArray) all = NULL;
        sd_bus_message *bad = NULL;

        signal_give(f, ":1.30", "", ":1.30");                 /* it arrived */
        signal_give(f, "org.example.App", ":1.30", "");       /* a well-known name it had */
        signal_give(f, "org.example.App", "", ":1.30");
        signal_give(f, ":1.31", ":1.31", "");                 /* someone else */
        /* a signal with other arguments than three strings */
        assert_true(sd_bus_message_new_signal(bus, &bad, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                              "NameOwnerChanged") >= 0);
        assert_true(sd_bus_message_append(bad, "u", 7) >= 0);
        pcpd_bus_track_signal(f->track, seal(bad));
        sd_bus_message_unref(bad);

        assert_int_equal(f->removed->len, 0);
        assert_true(exists(f, path));
        all = pcpd_manager_list_mappings(f->m);
        assert_int_equal(all->len, 1);
}

/* The bus says the holder it was asked about has no owner: it left before the hold, and
 * its holds go as if it had been seen leaving. */
static void test_no_owner_removes(void **state) {
        fixture *f = *state;
        g_autofree char *path = g_strdup(PCPD_MAPPING_PATH(hold(f, 5001, ":1.40", false)));

        assert_int_equal(f->out->len, 1);
        answer(f, ":1.40", reply_error(":1.40", "org.freedesktop.DBus.Error.NameHasNoOwner"));
        assert_int_equal(pcpd_bus_track_n_checks(f->track), 0);
        assert_int_equal(f->removed->len, 1);
        assert_int_equal(g_array_index(f->removed, unsigned, 0), PCPD_REMOVED_OWNER_VANISHED);
        assert_false(exists(f, path));
}

/* An owner, or another error, leaves the hold to the NameOwnerChanged watch. */
static void test_other_answers_keep(void **state) {
        fixture *f = *state;
        g_autofree char *path = g_strdup(PCPD_MAPPING_PATH(hold(f, 5001, ":1.50", false)));

        hold(f, 5001, ":1.50", false);
        assert_int_equal(f->out->len, 2);
        answer(f, ":1.50", reply_owner(":1.50"));
        answer(f, ":1.50", reply_error(":1.50", "org.freedesktop.DBus.Error.AccessDenied"));
        assert_int_equal(pcpd_bus_track_n_checks(f->track), 0);
        assert_int_equal(f->removed->len, 0);
        assert_true(exists(f, path));

        /* and the watch still works for it: both holds go with it */
        signal_give(f, ":1.50", ":1.50", "");
        assert_int_equal(f->removed->len, 1);
        assert_false(exists(f, path));
}

/* The answer comes after the mapping was released: nothing left to drop. */
static void test_answer_after_release(void **state) {
        fixture *f = *state;
        pcpd_mapping *mp = hold(f, 5001, ":1.60", false);

        pcpd_manager_release(f->m, mp, ":1.60", PCPD_REMOVED_RELEASED);
        assert_int_equal(f->removed->len, 1);
        assert_int_equal(g_array_index(f->removed, unsigned, 0), PCPD_REMOVED_RELEASED);
        answer(f, ":1.60", reply_error(":1.60", "org.freedesktop.DBus.Error.NameHasNoOwner"));
        assert_int_equal(f->removed->len, 1);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
}

/* A question that could not be sent is not kept; the hold stays (the watch covers it). */
static void test_ask_fails(void **state) {
        fixture *f = *state;

        f->fail_with = -ENOBUFS;
        assert_int_equal(pcpd_bus_track_check(f->track, ":1.70"), -ENOBUFS);
        assert_int_equal(pcpd_bus_track_n_checks(f->track), 0);
        assert_int_equal(f->n_asked, 1);
        /* a NULL track (never registered) asks nothing */
        assert_int_equal(pcpd_bus_track_check(NULL, ":1.70"), 0);
        assert_int_equal(pcpd_bus_track_n_checks(NULL), 0);
        assert_int_equal(f->n_asked, 1);
}

/* Freed with questions out: their answers reach nobody (checked by the sanitizers and
 * valgrind: nothing leaks, nothing is touched afterwards). */
static void test_free_with_questions_out(void **state) {
        fixture *f = *state;

        hold(f, 5001, ":1.80", false);
        hold(f, 5002, ":1.81", false);
        assert_int_equal(pcpd_bus_track_n_checks(f->track), 2);
        g_ptr_array_set_size(f->out, 0);
        f->track = pcpd_bus_track_free(f->track);
        assert_null(f->track);
        assert_int_equal(f->removed->len, 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_unconfirmed_asked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_left_removes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_signals_ignored, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_owner_removes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_answers_keep, setup, teardown),
                cmocka_unit_test_setup_teardown(test_answer_after_release, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ask_fails, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_with_questions_out, setup, teardown),
        };

        return cmocka_run_group_tests(tests, setup_bus, teardown_bus);
}
