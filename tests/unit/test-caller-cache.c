/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The caller cache (pcpd-caller-cache.c) without a bus: a fake bus driver records each
 * GetConnectionCredentials question the cache would send, and the test answers it with
 * real sd-bus replies (or errors) when it chooses, and says when a name left. Covered: the
 * answer is kept and read right; lookups while the question is out share it; failures
 * (an error, no uid, a wrong type, the question not sent) are never kept and reach every
 * waiter; a name that left is forgotten, also while its question is out; cancelled waits;
 * the cap with least-recently-used eviction; freeing with questions out. The bus test
 * tests/bus/test-caller-cache.py covers the same cache against a real bus. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "pcpd-caller-cache.h"
#include "unit-fixture.h"

/* a started connection that is never used, to make messages with (one end of a socket pair) */
static sd_bus *bus;
static uint64_t cookie = 1;

/* ---- the fake bus driver ---- */

typedef struct {
        GPtrArray *out;     /* pcpd_caller*: questions asked and not answered yet (borrowed) */
        GHashTable *asked;  /* name -> how many questions were asked about it */
        int fail_with;      /* when not 0, questions are not sent: ask returns it */
} fake_bus;

static int fake_ask(pcpd_caller *c, void *userdata) {
        fake_bus *fb = userdata;

        g_hash_table_insert(fb->asked, g_strdup(c->name),
                            GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(fb->asked, c->name)) + 1));
        if (fb->fail_with != 0)
                return fb->fail_with;
        g_ptr_array_add(fb->out, c);
        return 0;
}

static unsigned n_asked(fake_bus *fb, const char *name) {
        return GPOINTER_TO_UINT(g_hash_table_lookup(fb->asked, name));
}

/* how many questions about name are out */
static unsigned n_out(fake_bus *fb, const char *name) {
        unsigned n = 0;

        for (guint i = 0; i < fb->out->len; i++)
                n += strcmp(((pcpd_caller *) fb->out->pdata[i])->name, name) == 0;
        return n;
}

/* gives reply as the answer to the oldest question out about name */
static void answer(fake_bus *fb, const char *name, sd_bus_message *reply) {
        for (guint i = 0; i < fb->out->len; i++) {
                pcpd_caller *c = fb->out->pdata[i];
                if (strcmp(c->name, name) == 0) {
                        g_ptr_array_remove_index(fb->out, i);
                        assert_true(sd_bus_message_rewind(reply, true) >= 0);
                        pcpd_caller_cache_answer(c, reply);
                        return;
                }
        }
        fail_msg("no question about %s is out (%u out)", name, fb->out->len);
}

typedef struct {
        fake_bus fb;
        pcpd_caller_cache *cache;
} fixture;

static int setup_bus(void **state) {
        /* messages need a started bus; this one is never used */
        return unit_offline_bus_setup(&bus);
}

static int teardown_bus(void **state) {
        return unit_offline_bus_teardown(&bus);
}

static int setup(void **state) {
        fixture *f = g_new0(fixture, 1);

        f->fb.out = g_ptr_array_new();
        f->fb.asked = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        f->cache = pcpd_caller_cache_new_unbound(fake_ask, &f->fb);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        pcpd_caller_cache_free(f->cache);
        g_ptr_array_free(f->fb.out, TRUE);
        g_hash_table_destroy(f->fb.asked);
        g_free(f);
        return 0;
}

/* ---- replies, as the bus driver sends them ---- */

static sd_bus_message *new_call(const char *name) {
        sd_bus_message *call = NULL;

        assert_true(sd_bus_message_new_method_call(bus, &call, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                   "org.freedesktop.DBus", "GetConnectionCredentials") >= 0);
        assert_true(sd_bus_message_append(call, "s", name) >= 0);
        assert_true(sd_bus_message_seal(call, cookie++, 0) >= 0);
        return call;
}

static sd_bus_message *seal(sd_bus_message *m) {
        assert_true(sd_bus_message_seal(m, cookie++, 0) >= 0);
        return m;
}

/* a{sv} with UnixUserID, ProcessID (when pid > 0), LinuxSecurityLabel (when label) */
static sd_bus_message *reply_ok(uid_t uid, pid_t pid, const char *label) {
        sd_bus_message *call = new_call(":1.0"), *m = NULL;

        assert_true(sd_bus_message_new_method_return(call, &m) >= 0);
        sd_bus_message_unref(call);
        assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        /* one the cache does not know first: skipped */
        assert_true(sd_bus_message_append(m, "{sv}", "UnixGroupIDs", "au", 2, 10, 20) >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "UnixUserID", "u", (uint32_t) uid) >= 0);
        if (pid > 0)
                assert_true(sd_bus_message_append(m, "{sv}", "ProcessID", "u", (uint32_t) pid) >= 0);
        if (label != NULL) {
                assert_true(sd_bus_message_open_container(m, 'e', "sv") >= 0);
                assert_true(sd_bus_message_append(m, "s", "LinuxSecurityLabel") >= 0);
                assert_true(sd_bus_message_open_container(m, 'v', "ay") >= 0);
                assert_true(sd_bus_message_append_array(m, 'y', label, strlen(label)) >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
        }
        assert_true(sd_bus_message_close_container(m) >= 0);
        return seal(m);
}

static sd_bus_message *reply_error(const char *message) {
        sd_bus_message *call = new_call(":1.0"), *m = NULL;

        assert_true(sd_bus_message_new_method_errorf(call, &m, SD_BUS_ERROR_NAME_HAS_NO_OWNER, "%s", message) >= 0);
        sd_bus_message_unref(call);
        return seal(m);
}

/* no UnixUserID (only a ProcessID) */
static sd_bus_message *reply_no_uid(void) {
        sd_bus_message *call = new_call(":1.0"), *m = NULL;

        assert_true(sd_bus_message_new_method_return(call, &m) >= 0);
        sd_bus_message_unref(call);
        assert_true(sd_bus_message_append(m, "a{sv}", 1, "ProcessID", "u", (uint32_t) 77) >= 0);
        return seal(m);
}

/* a UnixUserID that is not a "u" */
static sd_bus_message *reply_bad_uid(void) {
        sd_bus_message *call = new_call(":1.0"), *m = NULL;

        assert_true(sd_bus_message_new_method_return(call, &m) >= 0);
        sd_bus_message_unref(call);
        assert_true(sd_bus_message_append(m, "a{sv}", 1, "UnixUserID", "s", "1000") >= 0);
        return seal(m);
}

/* ---- waiters ---- */

typedef struct {
        unsigned calls;
        bool keep;              /* take a reference to the caller (dropped by waiter_clear()) */
        pcpd_caller *caller;    /* the last caller given (a reference when keep) */
        char *error_name;       /* the last error given */
        char *error_message;
        pcpd_caller_wait *cancel; /* a wait to cancel when this one is called */
} waiter;

static void on_answer(pcpd_caller *c, const sd_bus_error *error, void *userdata) {
        waiter *w = userdata;

        w->calls++;
        if (w->keep)
                pcpd_caller_unref(w->caller);
        w->caller = w->keep ? pcpd_caller_ref(c) : c;
        g_free(w->error_name);
        g_free(w->error_message);
        w->error_name = NULL;
        w->error_message = NULL;
        if (c == NULL) {
                assert_non_null(error);
                assert_true(sd_bus_error_is_set(error));
                w->error_name = g_strdup(error->name);
                w->error_message = g_strdup(error->message);
        } else
                assert_null(error);
        if (w->cancel != NULL) {
                pcpd_caller_wait_cancel(w->cancel);
                w->cancel = NULL;
        }
}

static void waiter_clear(waiter *w) {
        if (w->keep)
                pcpd_caller_unref(w->caller);
        g_free(w->error_name);
        g_free(w->error_message);
        *w = (waiter) { 0 };
}

static pcpd_caller_wait *query(fixture *f, const char *name, waiter *w) {
        pcpd_caller_wait *wait = NULL;
        unsigned calls = w->calls;

        assert_int_equal(pcpd_caller_cache_query(f->cache, name, on_answer, w, &wait), 0);
        assert_non_null(wait);
        assert_int_equal(w->calls, calls); /* never from inside the query */
        return wait;
}

/* asks about name and answers with a uid of its own; the caller kept */
static pcpd_caller *query_answered(fixture *f, const char *name, uid_t uid, sd_bus_message *reply) {
        waiter w = { 0 };

        query(f, name, &w);
        answer(&f->fb, name, reply);
        assert_int_equal(w.calls, 1);
        assert_non_null(w.caller);
        assert_int_equal(w.caller->uid, uid);
        assert_ptr_equal(pcpd_caller_cache_get(f->cache, name), w.caller);
        return w.caller;
}

/* ---- tests ---- */

static void test_answer_kept(void **state) {
        fixture *f = *state;
        sd_bus_message *reply = reply_ok(1000, 4242, "unconfined");
        waiter w = { .keep = true };

        query(f, ":1.7", &w);
        assert_int_equal(n_asked(&f->fb, ":1.7"), 1);
        assert_int_equal(pcpd_caller_cache_size(f->cache), 1);
        assert_null(pcpd_caller_cache_get(f->cache, ":1.7")); /* not answered yet */

        answer(&f->fb, ":1.7", reply);
        assert_int_equal(w.calls, 1);
        assert_non_null(w.caller);
        assert_string_equal(w.caller->name, ":1.7");
        assert_int_equal(w.caller->uid, 1000);
        assert_int_equal(w.caller->pid, 4242);
        assert_string_equal(w.caller->security_label, "unconfined");
        assert_false(w.caller->app_known);

        /* kept: later lookups are answered without asking */
        for (int i = 0; i < 3; i++)
                assert_ptr_equal(pcpd_caller_cache_get(f->cache, ":1.7"), w.caller);
        assert_int_equal(n_asked(&f->fb, ":1.7"), 1);
        assert_int_equal(pcpd_caller_cache_size(f->cache), 1);
        assert_null(pcpd_caller_cache_get(f->cache, ":1.8"));
        waiter_clear(&w);
        sd_bus_message_unref(reply);

        /* no pid, no label: 0 and NULL */
        reply = reply_ok(0, 0, NULL);
        w.keep = true;
        query(f, ":1.8", &w);
        answer(&f->fb, ":1.8", reply);
        assert_int_equal(w.calls, 1);
        assert_int_equal(w.caller->uid, 0);
        assert_int_equal(w.caller->pid, 0);
        assert_null(w.caller->security_label);
        assert_ptr_equal(pcpd_caller_cache_get(f->cache, ":1.8"), w.caller);
        waiter_clear(&w);
        sd_bus_message_unref(reply);
}

/* lookups while the question is out wait for it: one question, every waiter the answer */
static void test_one_question(void **state) {
        fixture *f = *state;
        sd_bus_message *reply = reply_ok(1000, 55, NULL);
        waiter w[3] = { { .keep = true }, { .keep = true }, { .keep = true } };

        for (int i = 0; i < 3; i++)
                query(f, ":1.5", &w[i]);
        assert_int_equal(n_asked(&f->fb, ":1.5"), 1);
        assert_int_equal(n_out(&f->fb, ":1.5"), 1);
        assert_int_equal(pcpd_caller_cache_size(f->cache), 1);

        /* another name: its own question */
        waiter other = { 0 };
        query(f, ":1.6", &other);
        assert_int_equal(n_asked(&f->fb, ":1.6"), 1);
        assert_int_equal(pcpd_caller_cache_size(f->cache), 2);

        answer(&f->fb, ":1.5", reply);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(w[i].calls, 1);
                assert_non_null(w[i].caller);
                assert_ptr_equal(w[i].caller, w[0].caller);
        }
        assert_int_equal(w[0].caller->pid, 55);
        assert_int_equal(other.calls, 0); /* still out */
        assert_null(pcpd_caller_cache_get(f->cache, ":1.6"));
        assert_ptr_equal(pcpd_caller_cache_get(f->cache, ":1.5"), w[0].caller);
        assert_int_equal(n_asked(&f->fb, ":1.5"), 1);

        answer(&f->fb, ":1.6", reply);
        assert_int_equal(other.calls, 1);
        assert_ptr_not_equal(other.caller, w[0].caller);
        assert_string_equal(other.caller->name, ":1.6");
        for (int i = 0; i < 3; i++) {
                assert_int_equal(w[i].calls, 1);
                waiter_clear(&w[i]);
        }
        sd_bus_message_unref(reply);
}

/* a failed answer reaches every waiter, is not kept, and the next lookup asks again */
static void test_failure_not_kept(void **state) {
        fixture *f = *state;
        struct {
                sd_bus_message *reply;
                const char *message;
        } failures[] = {
                { reply_error("Could not get UID of name ':1.9': no such name"),
                  "Cannot identify the caller: Could not get UID of name ':1.9': no such name" },
                { reply_no_uid(), "Cannot identify the caller's user." },
                { reply_bad_uid(), "Cannot identify the caller's user." },
        };
        sd_bus_message *ok = reply_ok(1001, 9, NULL);
        unsigned asked = 0;

        for (size_t i = 0; i < G_N_ELEMENTS(failures); i++) {
                waiter w[2] = { { .keep = true }, { .keep = true } };

                query(f, ":1.9", &w[0]);
                query(f, ":1.9", &w[1]);
                assert_int_equal(n_asked(&f->fb, ":1.9"), ++asked);
                answer(&f->fb, ":1.9", failures[i].reply);
                for (int j = 0; j < 2; j++) {
                        assert_int_equal(w[j].calls, 1);
                        assert_null(w[j].caller);
                        assert_string_equal(w[j].error_name, SD_BUS_ERROR_ACCESS_DENIED);
                        assert_string_equal(w[j].error_message, failures[i].message);
                        waiter_clear(&w[j]);
                }
                assert_null(pcpd_caller_cache_get(f->cache, ":1.9"));
                assert_int_equal(pcpd_caller_cache_size(f->cache), 0);
                sd_bus_message_unref(failures[i].reply);
        }

        /* asked again, and this time kept */
        pcpd_caller *c = query_answered(f, ":1.9", 1001, ok);
        assert_int_equal(n_asked(&f->fb, ":1.9"), asked + 1);
        assert_int_equal(c->pid, 9);
        assert_int_equal(pcpd_caller_cache_size(f->cache), 1);
        sd_bus_message_unref(ok);
}

/* the question could not be sent: the query fails, nothing is kept, no callback comes */
static void test_ask_fails(void **state) {
        fixture *f = *state;
        sd_bus_message *ok = reply_ok(1002, 3, NULL);
        pcpd_caller_wait *wait = NULL;
        waiter w = { 0 };

        f->fb.fail_with = -ENOBUFS;
        assert_int_equal(pcpd_caller_cache_query(f->cache, ":1.3", on_answer, &w, &wait), -ENOBUFS);
        assert_int_equal(n_asked(&f->fb, ":1.3"), 1);
        assert_int_equal(pcpd_caller_cache_size(f->cache), 0);
        assert_null(pcpd_caller_cache_get(f->cache, ":1.3"));

        f->fb.fail_with = 0;
        query_answered(f, ":1.3", 1002, ok);
        assert_int_equal(n_asked(&f->fb, ":1.3"), 2);
        assert_int_equal(w.calls, 0);
        sd_bus_message_unref(ok);
}

/* NameOwnerChanged: the answer is forgotten (holders keep theirs), the next lookup asks */
static void test_name_left(void **state) {
        fixture *f = *state;
        sd_bus_message *ok = reply_ok(1003, 4, "label");
        pcpd_caller *held = pcpd_caller_ref(query_answered(f, ":1.4", 1003, ok));
        pcpd_caller *other = query_answered(f, ":1.40", 1003, ok);

        assert_int_equal(pcpd_caller_cache_size(f->cache), 2);
        pcpd_caller_cache_name_left(f->cache, ":1.4");
        assert_null(pcpd_caller_cache_get(f->cache, ":1.4"));
        assert_int_equal(pcpd_caller_cache_size(f->cache), 1);
        assert_ptr_equal(pcpd_caller_cache_get(f->cache, ":1.40"), other); /* only that name */
        /* a name the cache does not know, or twice: nothing changes */
        pcpd_caller_cache_name_left(f->cache, ":1.4");
        pcpd_caller_cache_name_left(f->cache, ":1.99");
        assert_int_equal(pcpd_caller_cache_size(f->cache), 1);
        /* the holder's reference is still good */
        assert_string_equal(held->name, ":1.4");
        assert_string_equal(held->security_label, "label");
        pcpd_caller_unref(held);

        query_answered(f, ":1.4", 1003, ok);
        assert_int_equal(n_asked(&f->fb, ":1.4"), 2);
        sd_bus_message_unref(ok);
}

/* the name left while its question was out: the waiters get the answer, it is not kept */
static void test_name_left_while_asking(void **state) {
        fixture *f = *state;
        sd_bus_message *ok = reply_ok(1004, 44, NULL);
        sd_bus_message *err = reply_error("no such name");
        waiter w[2] = { { .keep = true }, { .keep = true } };

        query(f, ":1.44", &w[0]);
        query(f, ":1.44", &w[1]);
        pcpd_caller_cache_name_left(f->cache, ":1.44");
        assert_int_equal(pcpd_caller_cache_size(f->cache), 0);
        answer(&f->fb, ":1.44", ok);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(w[i].calls, 1);
                assert_non_null(w[i].caller);
                assert_int_equal(w[i].caller->uid, 1004);
        }
        assert_null(pcpd_caller_cache_get(f->cache, ":1.44"));
        assert_int_equal(pcpd_caller_cache_size(f->cache), 0);
        waiter_clear(&w[0]);
        waiter_clear(&w[1]);

        /* the same, failing */
        w[0].keep = true;
        query(f, ":1.45", &w[0]);
        pcpd_caller_cache_name_left(f->cache, ":1.45");
        answer(&f->fb, ":1.45", err);
        assert_int_equal(w[0].calls, 1);
        assert_null(w[0].caller);
        assert_string_equal(w[0].error_name, SD_BUS_ERROR_ACCESS_DENIED);
        assert_int_equal(pcpd_caller_cache_size(f->cache), 0);
        waiter_clear(&w[0]);

        /* left, asked about again before the first answer came: the late first answer
         * neither replaces nor answers the second question */
        w[0].keep = true;
        w[1].keep = true;
        query(f, ":1.46", &w[0]);
        pcpd_caller_cache_name_left(f->cache, ":1.46");
        query(f, ":1.46", &w[1]);
        assert_int_equal(n_asked(&f->fb, ":1.46"), 2);
        assert_int_equal(n_out(&f->fb, ":1.46"), 2);
        answer(&f->fb, ":1.46", ok); /* the first */
        assert_int_equal(w[0].calls, 1);
        assert_non_null(w[0].caller);
        assert_int_equal(w[1].calls, 0);
        assert_null(pcpd_caller_cache_get(f->cache, ":1.46"));
        assert_int_equal(pcpd_caller_cache_size(f->cache), 1); /* the second question */
        answer(&f->fb, ":1.46", ok);
        assert_int_equal(w[1].calls, 1);
        assert_ptr_not_equal(w[1].caller, w[0].caller);
        assert_ptr_equal(pcpd_caller_cache_get(f->cache, ":1.46"), w[1].caller);
        waiter_clear(&w[0]);
        waiter_clear(&w[1]);
        sd_bus_message_unref(ok);
        sd_bus_message_unref(err);
}

/* a cancelled wait gets no callback, also when cancelled by another waiter's callback;
 * the answer is kept all the same */
static void test_cancel(void **state) {
        fixture *f = *state;
        sd_bus_message *ok = reply_ok(1005, 5, NULL);
        waiter w[3] = { 0 };
        pcpd_caller_wait *wait[3];

        for (int i = 0; i < 3; i++)
                wait[i] = query(f, ":1.50", &w[i]);
        pcpd_caller_wait_cancel(wait[1]);
        pcpd_caller_wait_cancel(NULL);
        answer(&f->fb, ":1.50", ok);
        assert_int_equal(w[0].calls, 1);
        assert_int_equal(w[1].calls, 0);
        assert_int_equal(w[2].calls, 1);

        /* every wait cancelled: kept all the same */
        wait[0] = query(f, ":1.51", &w[0]);
        pcpd_caller_wait_cancel(wait[0]);
        answer(&f->fb, ":1.51", ok);
        assert_int_equal(w[0].calls, 1);
        assert_non_null(pcpd_caller_cache_get(f->cache, ":1.51"));

        /* the first waiter's callback cancels the second's wait; the third cancels its own
         * wait from inside its callback (pcpd-bus.c does not, but it must do no harm) */
        for (int i = 0; i < 3; i++)
                w[i] = (waiter) { 0 };
        for (int i = 0; i < 3; i++)
                wait[i] = query(f, ":1.52", &w[i]);
        w[0].cancel = wait[1];
        w[2].cancel = wait[2];
        answer(&f->fb, ":1.52", ok);
        assert_int_equal(w[0].calls, 1);
        assert_int_equal(w[1].calls, 0);
        assert_int_equal(w[2].calls, 1);
        assert_non_null(pcpd_caller_cache_get(f->cache, ":1.52"));
        sd_bus_message_unref(ok);
}

static const char *nth(char *buf, size_t size, unsigned i) {
        snprintf(buf, size, ":1.%u", 1000 + i);
        return buf;
}

/* at most PCPD_CALLER_CACHE_MAX answers: the least recently used one goes, not the oldest
 * inserted; questions still out do not count and are not evicted; a holder's reference to
 * an evicted answer stays good */
static void test_lru_cap(void **state) {
        fixture *f = *state;
        sd_bus_message *ok = reply_ok(1006, 6, NULL);
        const unsigned max = PCPD_CALLER_CACHE_MAX;
        char a[32], b[32];
        waiter w = { 0 }, w_held = { .keep = true };

        for (unsigned i = 0; i < max; i++) {
                query(f, nth(a, sizeof a, i), i == 2 ? &w_held : &w);
                answer(&f->fb, a, ok);
        }
        assert_int_equal(w.calls + w_held.calls, max);
        assert_int_equal(pcpd_caller_cache_size(f->cache), max);
        assert_int_equal(f->fb.out->len, 0);
        for (unsigned i = 0; i < max; i++)
                if (n_asked(&f->fb, nth(a, sizeof a, i)) != 1)
                        fail_msg("%s asked %u times", a, n_asked(&f->fb, a));
        /* least recently used first: 0 1 2 ... max-1 */

        /* the oldest is used again: 1 2 ... max-1 0 */
        assert_non_null(pcpd_caller_cache_get(f->cache, nth(a, sizeof a, 0)));

        /* two new names; while their questions are out nothing goes */
        query(f, nth(a, sizeof a, max), &w);
        query(f, nth(b, sizeof b, max + 1), &w);
        assert_int_equal(pcpd_caller_cache_size(f->cache), max + 2);
        /* the second is answered first: 1 goes (not 0, inserted earlier but used later) */
        answer(&f->fb, b, ok);
        assert_int_equal(pcpd_caller_cache_size(f->cache), max + 1);
        assert_int_equal(n_out(&f->fb, nth(a, sizeof a, max)), 1);
        /* then the first: 2 goes, though held */
        answer(&f->fb, nth(a, sizeof a, max), ok);
        assert_int_equal(w.calls, max + 1);
        assert_int_equal(pcpd_caller_cache_size(f->cache), max);
        assert_null(pcpd_caller_cache_get(f->cache, nth(a, sizeof a, 1)));
        assert_null(pcpd_caller_cache_get(f->cache, nth(a, sizeof a, 2)));
        assert_string_equal(w_held.caller->name, nth(a, sizeof a, 2));
        assert_int_equal(w_held.caller->uid, 1006);
        waiter_clear(&w_held);
        /* all the others are kept; used in this order: 0 3 4 ... max+1 */
        assert_non_null(pcpd_caller_cache_get(f->cache, nth(a, sizeof a, 0)));
        for (unsigned i = 3; i < max + 2; i++)
                if (pcpd_caller_cache_get(f->cache, nth(a, sizeof a, i)) == NULL)
                        fail_msg("%s was evicted", a);

        /* an evicted name is asked about again; its answer makes 0 go, now the least
         * recently used */
        query_answered(f, nth(a, sizeof a, 1), 1006, ok);
        assert_int_equal(n_asked(&f->fb, a), 2);
        assert_null(pcpd_caller_cache_get(f->cache, nth(a, sizeof a, 0)));
        assert_non_null(pcpd_caller_cache_get(f->cache, nth(a, sizeof a, 3)));
        assert_int_equal(pcpd_caller_cache_size(f->cache), max);
        sd_bus_message_unref(ok);
}

/* freed with questions out: no callbacks; references held elsewhere stay good */
static void test_free_with_questions_out(void **state) {
        fixture *f = *state;
        sd_bus_message *ok = reply_ok(1007, 7, NULL);
        pcpd_caller *held = pcpd_caller_ref(query_answered(f, ":1.70", 1007, ok));
        waiter w[3] = { 0 };

        query(f, ":1.71", &w[0]);
        query(f, ":1.71", &w[1]);
        query(f, ":1.72", &w[2]);
        pcpd_caller_cache_name_left(f->cache, ":1.72"); /* out, and no longer in the map */
        f->cache = pcpd_caller_cache_free(f->cache);
        g_ptr_array_set_size(f->fb.out, 0); /* no answer will be given */
        for (int i = 0; i < 3; i++)
                assert_int_equal(w[i].calls, 0);
        assert_string_equal(held->name, ":1.70");
        pcpd_caller_unref(held);
        sd_bus_message_unref(ok);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_answer_kept, setup, teardown),
                cmocka_unit_test_setup_teardown(test_one_question, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failure_not_kept, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ask_fails, setup, teardown),
                cmocka_unit_test_setup_teardown(test_name_left, setup, teardown),
                cmocka_unit_test_setup_teardown(test_name_left_while_asking, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lru_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_with_questions_out, setup, teardown),
        };

        return cmocka_run_group_tests(tests, setup_bus, teardown_bus);
}
