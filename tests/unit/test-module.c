/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Where the modules are loaded from (pcpd-module.c, compiled in): the compiled-in
 * directory, or PCPD_MODULE_DIR when it is absolute; a relative one is ignored with a
 * warning that names it (it would resolve against the working directory). And which
 * module is refused: another ABI, table size, or sizes of the structures it is passed
 * (test-module-table.c, built next to this test: PCPD_TEST_MODULE_DIR).
 */

#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "pcpd-module.h"

static GString *warnings; /* the messages of the warnings logged, one a line */

static GLogWriterOutput record_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data) {
        (void) data;
        if (!(level & G_LOG_LEVEL_WARNING))
                return G_LOG_WRITER_HANDLED;
        for (gsize k = 0; k < n; k++)
                if (strcmp(fields[k].key, "MESSAGE") == 0)
                        g_string_append_printf(warnings, "%s\n", (const char *) fields[k].value);
        return G_LOG_WRITER_HANDLED;
}

static void test_default_and_absolute(void **state) {
        (void) state;
        g_unsetenv("PCPD_MODULE_DIR");
        assert_string_equal(pcpd_module_dir(), PCPD_MODULEDIR);
        g_setenv("PCPD_MODULE_DIR", "", TRUE);
        assert_string_equal(pcpd_module_dir(), PCPD_MODULEDIR);
        g_setenv("PCPD_MODULE_DIR", "/nonexistent/pcpd-test-module/dir", TRUE);
        assert_string_equal(pcpd_module_dir(), "/nonexistent/pcpd-test-module/dir");
        assert_int_equal(warnings->len, 0);
}

/* a relative directory: the compiled-in one instead, and a warning naming the value (once) */
static void test_relative_refused(void **state) {
        (void) state;
        g_string_truncate(warnings, 0);
        g_setenv("PCPD_MODULE_DIR", "build/daemon", TRUE);
        if (strcmp(pcpd_module_dir(), PCPD_MODULEDIR) != 0)
                fail_msg("PCPD_MODULE_DIR=build/daemon (relative) gave %s, not the compiled-in %s", pcpd_module_dir(),
                         PCPD_MODULEDIR);
        if (strstr(warnings->str, "PCPD_MODULE_DIR=build/daemon") == NULL)
                fail_msg("no warning naming PCPD_MODULE_DIR=build/daemon; logged: \"%s\"", warnings->str);
        assert_string_equal(pcpd_module_dir(), PCPD_MODULEDIR);
        assert_null(strstr(strstr(warnings->str, "build/daemon") + 1, "PCPD_MODULE_DIR=build/daemon"));
        g_setenv("PCPD_MODULE_DIR", "./x", TRUE);
        assert_string_equal(pcpd_module_dir(), PCPD_MODULEDIR);
        g_unsetenv("PCPD_MODULE_DIR");
}

#include "test-module-table.h"

static const void *load(const uint32_t *sizes, uint32_t n_sizes, uint32_t abi) {
        pcpd_module mod = {
                .file = TEST_MODULE_FILE,
                .symbol = TEST_MODULE_SYMBOL,
                .feature = "The test's table",
                .abi = abi,
                .size = sizeof(test_module_table),
                .sizes = sizes,
                .n_sizes = n_sizes,
                .sizes_offset = offsetof(test_module_table, sizes),
        };
        const char *dir = g_getenv("PCPD_TEST_MODULE_DIR");

        if (dir == NULL)
                fail_msg("PCPD_TEST_MODULE_DIR is not set (run by meson test)");
        g_setenv("PCPD_MODULE_DIR", dir, TRUE);
        g_string_truncate(warnings, 0);
        return pcpd_module_get(&mod);
}

/* the module's table is taken when its ABI, table size and struct sizes are this build's;
 * refused, with a warning, when one size differs */
static void test_struct_sizes(void **state) {
        static const uint32_t same[] = TEST_MODULE_SIZES;
        uint32_t other[] = TEST_MODULE_SIZES;
        const test_module_table *t;

        (void) state;
        t = load(same, G_N_ELEMENTS(same), TEST_MODULE_ABI);
        if (t == NULL)
                fail_msg("the test's module was refused: %s", warnings->str);
        assert_int_equal(t->answer(), 42);
        assert_int_equal(warnings->len, 0);
        /* no sizes to check: the header decides */
        assert_non_null(load(NULL, 0, TEST_MODULE_ABI));
        assert_null(load(same, G_N_ELEMENTS(same), TEST_MODULE_ABI + 1));
        other[1]++;
        if (load(other, G_N_ELEMENTS(other), TEST_MODULE_ABI) != NULL)
                fail_msg("a module whose struct sizes differ from this build's was loaded");
        if (strstr(warnings->str, "sizes of the structures") == NULL)
                fail_msg("no warning about the struct sizes; logged: \"%s\"", warnings->str);
        g_unsetenv("PCPD_MODULE_DIR");
}

/* the environment for the modules' libraries: GNUTLS_NO_IMPLICIT_INIT=1 when unset, an
 * admin's own value kept */
static void test_preinit(void **state) {
        (void) state;
        g_unsetenv("GNUTLS_NO_IMPLICIT_INIT");
        pcpd_module_preinit();
        assert_string_equal(g_getenv("GNUTLS_NO_IMPLICIT_INIT"), "1");
        g_setenv("GNUTLS_NO_IMPLICIT_INIT", "0", TRUE);
        pcpd_module_preinit();
        assert_string_equal(g_getenv("GNUTLS_NO_IMPLICIT_INIT"), "0");
        g_unsetenv("GNUTLS_NO_IMPLICIT_INIT");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_preinit),
                cmocka_unit_test(test_default_and_absolute),
                cmocka_unit_test(test_relative_refused),
                cmocka_unit_test(test_struct_sizes),
        };

        warnings = g_string_new("");
        g_log_set_writer_func(record_writer, NULL, NULL);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
