/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The manager's listener seam: the manager built without a bus tells a recording listener
 * what changed (typed masks), and pcpd-bus.c's table turns the masks into the property
 * names of the D-Bus contract (the XML in dbus/), in the order PropertiesChanged lists them. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "pcpd-bus.h"
#include "pcpd-declared-manager.h"
#include "pcpd-error.h"
#include "pcpd-manager.h"
#include "pcpd-reload.h"
#include "unit-fixture.h"

#ifndef PCP1_DBUS_DIR
#error "PCP1_DBUS_DIR: the directory of the D-Bus interface XML"
#endif

/* ---- the mask -> property names table ---- */

static GDBusInterfaceInfo *load_interface(const char *file, const char *iface) {
        g_autofree char *path = g_build_filename(PCP1_DBUS_DIR, file, NULL);
        g_autofree char *xml = NULL;
        g_autoptr(GError) error = NULL;
        GDBusNodeInfo *node;
        GDBusInterfaceInfo *info;

        if (!g_file_get_contents(path, &xml, NULL, &error))
                fail_msg("%s: %s", path, error->message);
        node = g_dbus_node_info_new_for_xml(xml, &error);
        if (node == NULL)
                fail_msg("%s: %s", path, error->message);
        info = g_dbus_node_info_lookup_interface(node, iface);
        assert_non_null(info);
        g_dbus_interface_info_ref(info);
        g_dbus_node_info_unref(node);
        return info;
}

static bool emits_changed(const GDBusPropertyInfo *p) {
        const char *v = g_dbus_annotation_info_lookup(p->annotations, "org.freedesktop.DBus.Property.EmitsChangedSignal");
        return v != NULL && strcmp(v, "true") == 0;
}

typedef size_t (*names_fn)(unsigned what, const char **ret, size_t max);

static size_t mapping_names(unsigned what, const char **ret, size_t max) {
        return pcpd_bus_mapping_property_names((pcpd_mapping_changed) what, ret, max);
}

static size_t manager_names(unsigned what, const char **ret, size_t max) {
        return pcpd_bus_manager_property_names((pcpd_manager_changed) what, ret, max);
}

/* Every bit of all: exactly one property of the interface, no two bits the same one.
 * Returns the names, bit by bit. */
static GPtrArray *check_bits(names_fn fn, unsigned all, GDBusInterfaceInfo *info) {
        GPtrArray *seen = g_ptr_array_new();

        assert_int_not_equal(all, 0);
        assert_int_equal(all & (all + 1), 0); /* the bits are 0 .. n-1, no gaps */
        for (unsigned bit = 1; bit != 0 && bit <= all; bit <<= 1) {
                const char *names[4] = { "x", "x", "x", "x" };

                assert_int_equal(fn(bit, names, G_N_ELEMENTS(names)), 1);
                assert_non_null(names[0]);
                assert_null(names[1]);
                if (g_dbus_interface_info_lookup_property(info, names[0]) == NULL)
                        fail_msg("bit 0x%x: %s is no property of %s", bit, names[0], info->name);
                for (guint i = 0; i < seen->len; i++)
                        if (strcmp(seen->pdata[i], names[0]) == 0)
                                fail_msg("bit 0x%x: %s named twice", bit, names[0]);
                g_ptr_array_add(seen, (gpointer) names[0]);
        }
        return seen;
}

static void assert_names(names_fn fn, unsigned what, const char *const *want) {
        const char *got[32];
        size_t n = fn(what, got, G_N_ELEMENTS(got));
        size_t i;

        for (i = 0; want[i] != NULL; i++) {
                if (i >= n)
                        fail_msg("mask 0x%x: %zu name(s), expected %s next", what, n, want[i]);
                assert_string_equal(got[i], want[i]);
        }
        assert_int_equal(n, i);
        assert_null(got[n]);
}

static void test_mapping_names(void **state) {
        GDBusInterfaceInfo *info = load_interface("org.freedesktop.PCP1.Mapping.xml", "org.freedesktop.PCP1.Mapping");
        g_autoptr(GPtrArray) seen = check_bits(mapping_names, _PCPD_MAPPING_CHANGED_ALL, info);
        const char *out[3] = { "x", "x", "x" };

        assert_int_equal(seen->len, 13);
        /* the order the manager listed them in before the masks: an answer from the engine
         * (manager_mapping_sync()), a mapping that waits for a server, a direct one */
        assert_names(mapping_names, _PCPD_MAPPING_CHANGED_ALL & ~(PCPD_MAPPING_CHANGED_SERVER | PCPD_MAPPING_CHANGED_PERSISTENT | PCPD_MAPPING_CHANGED_DECLARED | PCPD_MAPPING_CHANGED_OWNER | PCPD_MAPPING_CHANGED_PID),
                     (const char *[]) { "State", "Error", "ExternalAddress", "ExternalPort", "SuggestedExternalPort",
                                        "Lifetime", "ExpiresAt", "InternalAddress", NULL });
        assert_names(mapping_names,
                     PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS | PCPD_MAPPING_CHANGED_ERROR | PCPD_MAPPING_CHANGED_STATE |
                             PCPD_MAPPING_CHANGED_SERVER,
                     (const char *[]) { "Server", "State", "Error", "ExternalAddress", NULL });
        assert_names(mapping_names, PCPD_MAPPING_CHANGED_INTERNAL_ADDRESS | PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS,
                     (const char *[]) { "ExternalAddress", "InternalAddress", NULL });
        assert_names(mapping_names, PCPD_MAPPING_CHANGED_PID | PCPD_MAPPING_CHANGED_OWNER,
                     (const char *[]) { "Owner", "PID", NULL });
        /* nothing, or bits without a property: no names */
        assert_names(mapping_names, 0, (const char *[]) { NULL });
        assert_names(mapping_names, ~(unsigned) _PCPD_MAPPING_CHANGED_ALL, (const char *[]) { NULL });
        /* a short array: as many as fit, still terminated; none at all for max 0 */
        assert_int_equal(mapping_names(_PCPD_MAPPING_CHANGED_ALL, out, 3), 2);
        assert_string_equal(out[0], "Server");
        assert_string_equal(out[1], "State");
        assert_null(out[2]);
        out[0] = "x";
        assert_int_equal(mapping_names(_PCPD_MAPPING_CHANGED_ALL, out, 0), 0);
        assert_string_equal(out[0], "x");
        g_dbus_interface_info_unref(info);
}

static void test_manager_names(void **state) {
        GDBusInterfaceInfo *info = load_interface("org.freedesktop.PCP1.Manager.xml", "org.freedesktop.PCP1.Manager");
        g_autoptr(GPtrArray) seen = check_bits(manager_names, _PCPD_MANAGER_CHANGED_ALL, info);
        unsigned n_changing = 0;

        /* exactly the properties the contract says emit PropertiesChanged */
        for (GDBusPropertyInfo **p = info->properties; p != NULL && *p != NULL; p++) {
                bool in_table = false;

                for (guint i = 0; i < seen->len; i++)
                        in_table = in_table || strcmp(seen->pdata[i], (*p)->name) == 0;
                if (emits_changed(*p) != in_table)
                        fail_msg("Manager.%s: EmitsChangedSignal %s, %s the table", (*p)->name,
                                 emits_changed(*p) ? "true" : "not true", in_table ? "in" : "not in");
                n_changing += emits_changed(*p);
        }
        assert_int_equal(n_changing, seen->len);
        assert_names(manager_names,
                     PCPD_MANAGER_CHANGED_PREFIX64 | PCPD_MANAGER_CHANGED_EXTERNAL_ADDRESSES | PCPD_MANAGER_CHANGED_SERVERS,
                     (const char *[]) { "Servers", "ExternalAddresses", "Prefix64", NULL });
        assert_names(manager_names, PCPD_MANAGER_CHANGED_MAPPING_COUNT, (const char *[]) { "MappingCount", NULL });
        assert_names(manager_names, 0, (const char *[]) { NULL });
        g_dbus_interface_info_unref(info);
}

/* ---- the manager, without a bus, and a recording listener ---- */

typedef struct recorder {
        GArray *manager_masks; /* unsigned, one per manager_changed */
        unsigned mapping_events;
        unsigned freeing;
        GPtrArray *statuses; /* char*: each status_changed, when not NULL */
        pcpd_manager *expect_m;
} recorder;

static void rec_mapping_added(pcpd_manager *m, pcpd_mapping *mp, void *userdata) {
        ((recorder *) userdata)->mapping_events++;
}

static void rec_mapping_changed(pcpd_manager *m, pcpd_mapping *mp, pcpd_mapping_changed what, void *userdata) {
        ((recorder *) userdata)->mapping_events++;
}

static void rec_mapping_removed(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason, void *userdata) {
        ((recorder *) userdata)->mapping_events++;
}

static void rec_manager_changed(pcpd_manager *m, pcpd_manager_changed what, void *userdata) {
        recorder *r = userdata;
        unsigned w = what;

        assert_ptr_equal(m, r->expect_m);
        assert_int_not_equal(w, 0);
        assert_int_equal(w & ~(unsigned) _PCPD_MANAGER_CHANGED_ALL, 0);
        g_array_append_val(r->manager_masks, w);
}

static void rec_freeing(pcpd_manager *m, void *userdata) {
        recorder *r = userdata;

        assert_ptr_equal(m, r->expect_m);
        r->freeing++;
}

static void rec_status(pcpd_manager *m, const char *status, void *userdata) {
        recorder *r = userdata;

        assert_ptr_equal(m, r->expect_m);
        assert_non_null(status);
        if (r->statuses != NULL)
                g_ptr_array_add(r->statuses, g_strdup(status));
}

static const pcpd_manager_listener recording = {
        .mapping_added = rec_mapping_added,
        .mapping_changed = rec_mapping_changed,
        .mapping_removed = rec_mapping_removed,
        .manager_changed = rec_manager_changed,
        .manager_freeing = rec_freeing,
        .status_changed = rec_status,
};

typedef struct fixture {
        char *dir;
        GMainLoop *loop;
        recorder rec;
        pcpd_manager *m;
} fixture;

static pcpd_manager *manager_new(fixture *f, const pcpd_manager_listener *listener, void *userdata) {
        pcpd_config config;
        pcpd_manager *m;

        pcpd_config_init(&config);
        m = unit_manager_new(&config, f->dir, f->loop, listener, userdata);
        pcpd_config_clear(&config);
        return m;
}

static int setup(void **state) {
        fixture *f = g_new0(fixture, 1);
        g_autoptr(GError) error = NULL;

        f->dir = g_dir_make_tmp("pcpd-test-listener-XXXXXX", &error);
        assert_non_null(f->dir);
        assert_int_equal(g_chmod(f->dir, 0700), 0);
        f->loop = g_main_loop_new(NULL, FALSE);
        f->rec.manager_masks = g_array_new(FALSE, FALSE, sizeof(unsigned));
        f->rec.statuses = g_ptr_array_new_with_free_func(g_free);
        f->m = manager_new(f, &recording, &f->rec);
        f->rec.expect_m = f->m;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        pcpd_manager_free(f->m);
        g_array_unref(f->rec.manager_masks);
        g_ptr_array_free(f->rec.statuses, TRUE);
        g_main_loop_unref(f->loop);
        unit_rm_own_dir(f->dir);
        g_free(f->dir);
        g_free(f);
        return 0;
}

/* how many manager_changed calls since `from` carry bit */
static unsigned count_bit(const recorder *r, guint from, unsigned bit) {
        unsigned n = 0;

        for (guint i = from; i < r->manager_masks->len; i++)
                n += (g_array_index(r->manager_masks, unsigned, i) & bit) != 0;
        return n;
}

static void test_enabled(void **state) {
        fixture *f = *state;
        guint mark = f->rec.manager_masks->len;

        assert_true(f->m->enabled); /* the default configuration */
        assert_int_equal(pcpd_manager_set_enabled(f->m, false), 1);
        assert_int_equal(count_bit(&f->rec, mark, PCPD_MANAGER_CHANGED_ENABLED), 1);
        assert_string_equal(pcpd_manager_state(f->m), "disabled");
        assert_int_equal(count_bit(&f->rec, mark, PCPD_MANAGER_CHANGED_STATE), 1);

        /* no change, no news */
        mark = f->rec.manager_masks->len;
        assert_int_equal(pcpd_manager_set_enabled(f->m, false), 0);
        assert_int_equal(f->rec.manager_masks->len, mark);

        assert_int_equal(pcpd_manager_set_enabled(f->m, true), 1);
        assert_int_equal(count_bit(&f->rec, mark, PCPD_MANAGER_CHANGED_ENABLED), 1);
        assert_int_equal(count_bit(&f->rec, mark, PCPD_MANAGER_CHANGED_STATE), 1);
        assert_int_equal(f->rec.mapping_events, 0); /* there were no mappings */
}

/* The status line (the service manager's STATUS=) is told when it changes, and only then:
 * "<State>, <n> server(s), <n> mapping(s)", what pcpd_manager_state() says first. */
static void test_status(void **state) {
        fixture *f = *state;
        guint mark = f->rec.statuses->len;
        const char *last;
        g_autofree char *enabled_state = NULL;

        assert_int_equal(pcpd_manager_set_enabled(f->m, false), 1);
        assert_int_equal(f->rec.statuses->len, mark + 1);
        last = f->rec.statuses->pdata[mark];
        assert_string_equal(last, "disabled, 0 server(s), 0 mapping(s)");
        assert_string_equal(f->m->status_text, last);

        /* no change, no news */
        assert_int_equal(pcpd_manager_set_enabled(f->m, false), 0);
        assert_int_equal(f->rec.statuses->len, mark + 1);

        assert_int_equal(pcpd_manager_set_enabled(f->m, true), 1);
        assert_int_equal(f->rec.statuses->len, mark + 2);
        last = f->rec.statuses->pdata[mark + 1];
        enabled_state = g_strdup(pcpd_manager_state(f->m));
        assert_string_not_equal(enabled_state, "disabled");
        assert_true(g_str_has_prefix(last, enabled_state));
        assert_string_equal(last + strlen(enabled_state), ", 0 server(s), 0 mapping(s)");
        assert_string_equal(f->m->status_text, last);
}

static void test_reload_settings(void **state) {
        fixture *f = *state;
        pcpd_config c;
        guint mark = f->rec.manager_masks->len;

        pcpd_config_init(&c);
        c.default_lifetime = f->m->config.default_lifetime + 60;
        assert_true(pcpd_reload_apply_config(f->m, &c) >= 1);
        assert_int_equal(f->rec.manager_masks->len, mark + 1);
        assert_int_equal(g_array_index(f->rec.manager_masks, unsigned, mark), PCPD_MANAGER_CHANGED_DEFAULT_LIFETIME);

        mark = f->rec.manager_masks->len;
        c.max_mappings_per_user = f->m->config.max_mappings_per_user + 1;
        assert_true(pcpd_reload_apply_config(f->m, &c) >= 1);
        assert_int_equal(f->rec.manager_masks->len, mark + 1);
        assert_int_equal(g_array_index(f->rec.manager_masks, unsigned, mark),
                         PCPD_MANAGER_CHANGED_MAX_MAPPINGS_PER_USER);

        /* the same again: nothing changed, nothing told */
        mark = f->rec.manager_masks->len;
        assert_int_equal(pcpd_reload_apply_config(f->m, &c), 0);
        assert_int_equal(f->rec.manager_masks->len, mark);
        pcpd_config_clear(&c);
}

static void test_freeing_told_once(void **state) {
        fixture *f = *state;
        recorder r = { .manager_masks = g_array_new(FALSE, FALSE, sizeof(unsigned)) };
        pcpd_manager *m = manager_new(f, &recording, &r);

        r.expect_m = m;
        assert_int_equal(r.freeing, 0);
        pcpd_manager_free(m);
        assert_int_equal(r.freeing, 1);
        g_array_unref(r.manager_masks);
}

/* A manager without a listener (NULL) works and tells nobody. */
static void test_no_listener(void **state) {
        fixture *f = *state;
        pcpd_manager *m = manager_new(f, NULL, NULL);
        guint mark = f->rec.manager_masks->len;

        assert_int_equal(pcpd_manager_set_enabled(m, false), 1);
        assert_string_equal(pcpd_manager_state(m), "disabled");
        pcpd_manager_free(m);
        assert_int_equal(f->rec.manager_masks->len, mark); /* not the fixture's */
}

/* pcpd-bus.c's listener on a manager that was never started: no bus, no signals, and its
 * face outlives the manager (as in main.c) */
static void test_bus_listener_unstarted(void **state) {
        fixture *f = *state;
        pcpd_bus_face *face = pcpd_bus_face_new();
        pcpd_manager *m = manager_new(f, &pcpd_bus_listener, face);

        /* (the manager holds no bus at all: holders are watched by pcpd-bus-track.c, which
         * pcpd_bus_register() sets up) */
        assert_int_equal(pcpd_manager_set_enabled(m, false), 1);
        assert_int_equal(pcpd_manager_set_enabled(m, true), 1);
        pcpd_manager_free(m);
        assert_null(pcpd_bus_face_free(face));
}

/* ---- the core's refusals -> the contract's error names (pcpd-bus.c's one table) ---- */

/* the raw text of every dbus/org.freedesktop.PCP1*.xml: the contract names its errors in
 * the methods' documentation */
static char *load_contract_text(void) {
        g_autoptr(GDir) d = g_dir_open(PCP1_DBUS_DIR, 0, NULL);
        g_autoptr(GString) all = g_string_new(NULL);
        const char *name;
        unsigned n = 0;

        assert_non_null(d);
        while ((name = g_dir_read_name(d)) != NULL) {
                g_autofree char *path = NULL, *xml = NULL;
                if (!g_str_has_prefix(name, "org.freedesktop.PCP1") || !g_str_has_suffix(name, ".xml"))
                        continue;
                path = g_build_filename(PCP1_DBUS_DIR, name, NULL);
                if (!g_file_get_contents(path, &xml, NULL, NULL))
                        fail_msg("cannot read %s", path);
                g_string_append(all, xml);
                g_string_append_c(all, '\n');
                n++;
        }
        assert_true(n >= 2); /* Manager and Mapping */
        return g_string_free(g_steal_pointer(&all), FALSE);
}

/* name occurs in text as a whole name (not as the start of a longer one) */
static bool names_in(const char *text, const char *name) {
        size_t len = strlen(name);

        for (const char *p = strstr(text, name); p != NULL; p = strstr(p + 1, name))
                if (!g_ascii_isalnum(p[len]) && p[len] != '_' && p[len] != '.')
                        return true;
        return false;
}

static void test_error_names(void **state) {
        g_autofree char *contract = load_contract_text();
        const char *seen[_PCPD_ERROR_MAX] = { NULL };

        assert_null(pcpd_bus_error_name(PCPD_ERROR_NONE));
        assert_null(pcpd_bus_error_name(_PCPD_ERROR_MAX));
        assert_null(pcpd_bus_error_name((pcpd_error) -1));
        for (int e = PCPD_ERROR_NONE + 1; e < _PCPD_ERROR_MAX; e++) {
                const char *name = pcpd_bus_error_name((pcpd_error) e);

                if (name == NULL)
                        fail_msg("pcpd_error %d has no D-Bus name", e);
                /* the contract's own names, or a standard one of the bus */
                if (g_str_has_prefix(name, PCP1_ERROR_PREFIX)) {
                        if (!names_in(contract, name))
                                fail_msg("pcpd_error %d: %s is named nowhere in dbus/org.freedesktop.PCP1*.xml", e,
                                         name);
                } else if (!g_str_has_prefix(name, "org.freedesktop.DBus.Error."))
                        fail_msg("pcpd_error %d: %s is neither the contract's nor the bus's", e, name);
                for (int k = PCPD_ERROR_NONE + 1; k < e; k++)
                        if (strcmp(seen[k], name) == 0)
                                fail_msg("pcpd_error %d and %d are both %s", k, e, name);
                seen[e] = name;
                /* each goes with an errno of its own kind: an error, never 0 */
                assert_true(pcpd_error_to_errno((pcpd_error) e) < 0);
        }
        assert_string_equal(pcpd_bus_error_name(PCPD_ERROR_INVALID_ARGS), SD_BUS_ERROR_INVALID_ARGS);
        assert_string_equal(pcpd_bus_error_name(PCPD_ERROR_QUOTA_EXCEEDED), PCP1_ERROR_QUOTA_EXCEEDED);
}

static void test_failure(void **state) {
        g_auto(pcpd_failure) f = PCPD_FAILURE_NULL;

        assert_int_equal(pcpd_fail(&f, PCPD_ERROR_NOT_FOUND, "No %s called '%s'.", "thing", "x"),
                         pcpd_error_to_errno(PCPD_ERROR_NOT_FOUND));
        assert_int_equal(f.error, PCPD_ERROR_NOT_FOUND);
        assert_string_equal(f.message, "No thing called 'x'.");
        /* a second one replaces the first */
        assert_true(pcpd_fail(&f, PCPD_ERROR_CONFLICT, "%d%%", 5) < 0);
        assert_int_equal(f.error, PCPD_ERROR_CONFLICT);
        assert_string_equal(f.message, "5%");
        /* nowhere to tell: only the errno */
        assert_int_equal(pcpd_fail(NULL, PCPD_ERROR_DISABLED, "off"), pcpd_error_to_errno(PCPD_ERROR_DISABLED));
        pcpd_failure_clear(&f);
        assert_int_equal(f.error, PCPD_ERROR_NONE);
        assert_null(f.message);
}

/* the manager's refusals come as the enum with the sentence the bus tests expect */
static void test_manager_refusals(void **state) {
        fixture *f = *state;
        g_auto(pcpd_failure) e = PCPD_FAILURE_NULL;
        pcpd_mapping_request req = {
                .opcode = PCP_OPCODE_MAP,
                .protocol = 17,
                .internal_port = 5000,
                .app_id = "",
                .app_id_source = "none",
        };
        pcpd_mapping *mp = NULL;
        guint mark;

        assert_int_equal(pcpd_manager_set_enabled(f->m, false), 1);
        mark = f->rec.manager_masks->len;
        assert_true(pcpd_manager_add_mapping(f->m, &req, &mp, &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_DISABLED);
        assert_non_null(strstr(e.message, "switched off"));
        assert_null(mp);
        /* refused: nothing changed, nothing told */
        assert_int_equal(f->rec.manager_masks->len, mark);
        assert_int_equal(f->rec.mapping_events, 0);
        assert_int_equal(pcpd_manager_n_mappings(f->m), 0);
        /* and without anywhere to tell why */
        assert_true(pcpd_manager_add_mapping(f->m, &req, &mp, NULL) < 0);

        pcpd_failure_clear(&e);
        assert_true(pcpd_manager_undeclare(f->m, "nothing-here", &e) < 0);
        assert_int_equal(e.error, PCPD_ERROR_NOT_FOUND);
        assert_string_equal(e.message, "No mapping is declared as 'nothing-here'.");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mapping_names),
                cmocka_unit_test(test_manager_names),
                cmocka_unit_test(test_error_names),
                cmocka_unit_test(test_failure),
                cmocka_unit_test_setup_teardown(test_manager_refusals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_enabled, setup, teardown),
                cmocka_unit_test_setup_teardown(test_status, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reload_settings, setup, teardown),
                cmocka_unit_test_setup_teardown(test_freeing_told_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_listener, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bus_listener_unstarted, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
