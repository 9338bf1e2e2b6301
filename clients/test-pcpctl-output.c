/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcpctl's terminal output without a terminal: ellipsis, widths, tables fitted to a
 * width, relative times, and the parsing of what a user types. Colours are off
 * (SYSTEMD_COLORS=0, set before anything asks). */

#include <errno.h>
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pcpctl-output.h"
#include "pcpctl-util.h"

#define ELLIPSIS "\u2026"

static void test_ellipsize(void **state) {
        struct {
                const char *in;
                size_t width;
                const char *out;
        } cases[] = {
                {"hello world", 5, "hell" ELLIPSIS},
                {"hello world", 11, "hello world"},
                {"hello world", 40, "hello world"},
                {"hello", 1, ELLIPSIS},
                {"hello", 0, ""},
                {"", 3, ""},
                /* two cells each: never half a character */
                {"\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8", 5, "\u65e5\u672c" ELLIPSIS},
                {"\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8", 6, "\u65e5\u672c" ELLIPSIS},
                {"ab\u00e9cd", 4, "ab\u00e9" ELLIPSIS},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *r = text_ellipsize(cases[i].in, cases[i].width);

                assert_non_null(r);
                assert_string_equal(r, cases[i].out);
                assert_true(text_width(r) <= cases[i].width || cases[i].width == 0);
        }
}

static void test_width(void **state) {
        assert_int_equal(text_width("ready"), 5);
        /* escape sequences take no room */
        assert_int_equal(text_width("\x1b[0;1;32mready\x1b[0m"), 5);
        assert_int_equal(text_width("\u65e5\u672c"), 4);
        assert_int_equal(text_width(ELLIPSIS), 1);
}

static void test_sanitize(void **state) {
        _cleanup_free_ char *a = text_sanitize("web \x1b[31mred\n"), *b = text_sanitize(NULL),
                            *c = text_sanitize("\xff ok");

        assert_string_equal(a, "web \\x1b[31mred\\x0a");
        assert_string_equal(b, "");
        assert_string_equal(c, "\\xff ok");
}

/* The lines of t printed at width. */
static char *print_table(Table *t, size_t width) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        assert_non_null(f);
        table_set_width(t, width);
        assert_int_equal(table_print(t, f), 0);
        assert_int_equal(fclose(f), 0);
        return buf;
}

static void assert_lines_fit(const char *text, size_t width) {
        const char *p = text;

        while (*p != '\0') {
                const char *nl = strchr(p, '\n');
                _cleanup_free_ char *line = strndup(p, nl != NULL ? (size_t) (nl - p) : strlen(p));

                assert_non_null(line);
                if (text_width(line) > width)
                        fail_msg("line wider than %zu: '%s'", width, line);
                p = nl != NULL ? nl + 1 : p + strlen(p);
        }
}

static void test_table(void **state) {
        _cleanup_(table_freep) Table *t = table_new(4, (const char *const[]){"ID", "EXTERNAL", "APP", "DESCRIPTION"});
        _cleanup_free_ char *wide = NULL, *narrow = NULL, *tight = NULL, *hidden = NULL;

        assert_non_null(t);
        table_set_shrink(t, 1, 60, 9);
        table_set_shrink(t, 2, 20, 3);
        table_set_shrink(t, 3, 10, 3);
        assert_int_equal(table_add_row(t, (const char *const[]){"1", "198.51.100.7:8080", "org.example.App",
                                                               "the web server of the house"},
                                       NULL),
                         0);
        assert_int_equal(table_add_row(t, (const char *const[]){"12", "198.51.100.7:51820", "", NULL}, NULL), 0);
        assert_int_equal(table_n_rows(t), 2);

        wide = print_table(t, SIZE_MAX);
        assert_string_equal(wide, "ID EXTERNAL           APP             DESCRIPTION\n"
                                  "1  198.51.100.7:8080  org.example.App the web server of the house\n"
                                  "12 198.51.100.7:51820 -               -\n");

        /* the heaviest column stays whole, the free text gives way first */
        narrow = print_table(t, 45);
        assert_lines_fit(narrow, 45);
        assert_non_null(strstr(narrow, "198.51.100.7:51820"));
        assert_non_null(strstr(narrow, "org.example.App"));
        assert_non_null(strstr(narrow, " the we" ELLIPSIS "\n"));

        /* below the sum of the minimums: every column at its minimum */
        tight = print_table(t, 20);
        assert_non_null(strstr(tight, "198.51.1" ELLIPSIS));
        assert_non_null(strstr(tight, "DE" ELLIPSIS));

        table_hide_column(t, 2);
        table_set_header(t, false);
        hidden = print_table(t, SIZE_MAX);
        assert_string_equal(hidden, "1  198.51.100.7:8080  the web server of the house\n"
                                    "12 198.51.100.7:51820 -\n");
}

static void test_relative(void **state) {
        const uint64_t now = UINT64_C(1796202366000000);
        char buf[80];

        assert_string_equal(format_relative(buf, sizeof(buf), now + 90 * UINT64_C(1000000), now), "in 1min 30s");
        assert_string_equal(format_relative(buf, sizeof(buf), now - 3 * UINT64_C(1000000), now), "3s ago");
        assert_string_equal(format_relative(buf, sizeof(buf), now + 200000, now), "now");
        assert_string_equal(format_relative(buf, sizeof(buf), now + 3600 * UINT64_C(1000000), now), "in 1h");
        assert_string_equal(format_timespan(buf, sizeof(buf), 3599 * UINT64_C(1000000)), "59min 59s");
}

static void test_parse_mapping(void **state) {
        char *path = NULL;

        assert_int_equal(parse_mapping("7", &path), 0);
        assert_string_equal(path, "/org/freedesktop/PCP1/mapping/7");
        free(path);
        assert_int_equal(parse_mapping("/org/freedesktop/PCP1/mapping/12", &path), 0);
        assert_string_equal(mapping_id(path), "12");
        assert_int_equal(mapping_id_number(path), 12);
        free(path);
        /* not a number: a usage error, not a question to pcpd */
        assert_int_equal(parse_mapping("abc", &path), -EINVAL);
        assert_int_equal(parse_mapping("/org/freedesktop/PCP1/mapping/abc", &path), -EINVAL);
        assert_int_equal(parse_mapping("/org/freedesktop/PCP1/other/1", &path), -EINVAL);
        assert_int_equal(parse_mapping("", &path), -EINVAL);
        assert_int_equal(mapping_id_number("/org/freedesktop/PCP1/mapping/x1"), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ellipsize), cmocka_unit_test(test_width),
                cmocka_unit_test(test_sanitize),  cmocka_unit_test(test_table),
                cmocka_unit_test(test_relative),  cmocka_unit_test(test_parse_mapping),
        };

        setenv("SYSTEMD_COLORS", "0", 1);
        setenv("LANGUAGE", "", 1);
        setenv("TZ", "UTC", 1);
        if (setlocale(LC_ALL, "C.UTF-8") == NULL) {
                fprintf(stderr, "the C.UTF-8 locale is missing\n");
                return 1;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
