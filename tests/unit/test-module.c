/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Where the modules are loaded from (pcpd-module.c, compiled in): the compiled-in
 * directory, or PCPD_MODULE_DIR when it is absolute; a relative one is ignored with a
 * warning that names it (it would resolve against the working directory).
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_default_and_absolute),
                cmocka_unit_test(test_relative_refused),
        };

        warnings = g_string_new("");
        g_log_set_writer_func(record_writer, NULL, NULL);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
