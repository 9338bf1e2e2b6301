/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Declared mappings (daemon/pcpd-declared.c): good files parse to what they say and back,
 * every bad one is refused with a message naming the file, the key and the value; loading
 * two directories is all or nothing, the administrator's names win, limits hold. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcp-wire.h"
#include "pcpd-declared.h"
#include "unit-fixture.h"

static pcpd_declared *parse(const char *name, const char *text, GError **error) {
        return pcpd_declared_parse(name, "test.conf", text, strlen(text), error);
}

static void test_parse_full(void **state) {
        g_autoptr(GError) error = NULL;
        g_autoptr(pcpd_declared) d = parse("camera",
                                           "# an IP camera\n[Mapping]\nProtocol=tcp\nPort=8554\nExternalPort=18554\n"
                                           "Lifetime=1800\nDescription=\\sFront door; cam\nThirdParty=192.168.1.20\n",
                                           &error);
        char buf[PCP_ADDR_STRLEN];

        assert_null(error);
        assert_non_null(d);
        assert_string_equal(d->name, "camera");
        assert_int_equal(d->protocol, 6);
        assert_int_equal(d->port, 8554);
        assert_int_equal(d->external_port, 18554);
        assert_int_equal(d->lifetime, 1800);
        assert_string_equal(d->description, " Front door; cam");
        assert_true(d->has_third_party);
        assert_string_equal(pcp_addr_to_string(&d->third_party, buf), "192.168.1.20");
        assert_int_equal(d->family, AF_INET); /* of the third party */
}

static void test_parse_minimal(void **state) {
        g_autoptr(GError) error = NULL;
        g_autoptr(pcpd_declared) d = parse("srv", "[Mapping]\nProtocol=udp\nPort=51820\n", &error);

        assert_non_null(d);
        assert_int_equal(d->protocol, 17);
        assert_int_equal(d->external_port, 0);
        assert_int_equal(d->lifetime, 0);
        assert_int_equal(d->family, 0);
        assert_false(d->has_third_party);
        assert_string_equal(d->description, "");
}

static void test_round_trip(void **state) {
        const char *texts[] = {
                "[Mapping]\nProtocol=udp\nPort=1\n",
                "[Mapping]\nProtocol=132\nPort=65535\nExternalPort=1\nLifetime=604800\nFamily=ipv6\n",
                "[Mapping]\nProtocol=tcp\nPort=80\nDescription=  lead;\\ttab\\nline \\\\ end\nThirdParty=fd00::5\n",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
                g_autoptr(GError) error = NULL;
                g_autoptr(pcpd_declared) a = parse("x", texts[i], &error);
                g_autoptr(pcpd_declared) b = NULL;
                g_autoptr(GString) out = g_string_new(NULL);

                assert_non_null(a);
                pcpd_declared_format(out, a);
                b = pcpd_declared_parse("x", "again", out->str, out->len, &error);
                assert_null(error);
                assert_non_null(b);
                assert_true(pcpd_declared_equal(a, b));
        }
}

static void test_equal(void **state) {
        g_autoptr(pcpd_declared) a = parse("x", "[Mapping]\nProtocol=tcp\nPort=80\n", NULL);
        g_autoptr(pcpd_declared) b = parse("x", "[Mapping]\nProtocol=tcp\nPort=80\nDescription=y\n", NULL);
        g_autoptr(pcpd_declared) c = parse("y", "[Mapping]\nProtocol=tcp\nPort=80\n", NULL);
        g_autoptr(pcpd_declared) d = parse("x", "[Mapping]\nProtocol=tcp\nPort=80\nLifetime=600\n", NULL);
        g_autoptr(pcpd_declared) e = parse("x", "# same\n[Mapping]\nPort=80\nProtocol=TCP\n", NULL);

        assert_false(pcpd_declared_equal(a, b));
        assert_false(pcpd_declared_equal(a, c));
        assert_false(pcpd_declared_equal(a, d));
        assert_non_null(e);
        assert_true(pcpd_declared_equal(a, e));
}

static void test_bad(void **state) {
        static const struct {
                const char *name, *text, *needle;
        } cases[] = {
                { "x", "[Mapping]\nPort=80\n", "Protocol= is missing" },
                { "x", "[Mapping]\nProtocol=tcp\n", "Port= is missing" },
                { "x", "[Mapping]\nProtocol=quic\nPort=80\n", "Protocol=quic" },
                { "x", "[Mapping]\nProtocol=0\nPort=80\n", "Protocol=0" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=0\n", "Port=0" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=65536\n", "Port=65536" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=-1\n", "Port=-1" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80x\n", "Port=80x" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nExternalPort=70000\n", "ExternalPort=70000" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nLifetime=119\n", "Lifetime=119" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nLifetime=604801\n", "Lifetime=604801" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nThirdParty=0.0.0.0\n", "ThirdParty=0.0.0.0" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nThirdParty=host\n", "ThirdParty=host" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nFamily=ipx\n", "Family=ipx" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nFamily=ipv6\nThirdParty=192.0.2.1\n",
                  "not the family of ThirdParty" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nDescription=\\q\n", "Description=" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nColour=red\n", "unknown setting [Mapping] Colour" },
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\n[Other]\n", "unknown section [Other]" },
                { "x", "# nothing\n", "no [Mapping] section" },
                { "x", "Protocol=tcp\n", "test.conf" }, /* a key outside any group: GKeyFile's message */
                { "x", "[Mapping]\nProtocol=tcp\nPort=80\nDescription=\xff\n", "Description=" },
                { "", "[Mapping]\nProtocol=tcp\nPort=80\n", "no valid name" },
                { ".hidden", "[Mapping]\nProtocol=tcp\nPort=80\n", "no valid name" },
                { "a/b", "[Mapping]\nProtocol=tcp\nPort=80\n", "no valid name" },
                { "a b", "[Mapping]\nProtocol=tcp\nPort=80\n", "no valid name" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autoptr(GError) error = NULL;
                pcpd_declared *d = parse(cases[i].name, cases[i].text, &error);

                if (d != NULL || error == NULL || strstr(error->message, cases[i].needle) == NULL)
                        fail_msg("case %zu (%s): %s", i, cases[i].needle, error ? error->message : "accepted");
                assert_true(g_utf8_validate(error->message, -1, NULL));
                assert_non_null(strstr(error->message, "test.conf"));
        }
}

static void test_long_values(void **state) {
        g_autoptr(GString) text = g_string_new("[Mapping]\nProtocol=tcp\nPort=80\nDescription=");
        g_autoptr(GError) error = NULL;
        pcpd_declared *d;
        char name[PCPD_DECLARED_NAME_MAX + 2];

        for (int i = 0; i < 257; i++)
                g_string_append_c(text, 'x');
        g_string_append_c(text, '\n');
        d = parse("x", text->str, &error);
        assert_null(d);
        assert_non_null(strstr(error->message, "longer than 256"));
        g_clear_error(&error);

        g_string_assign(text, "[Mapping]\nProtocol=tcp\nPort=80\n#");
        while (text->len <= PCPD_DECLARED_MAX_FILE_SIZE)
                g_string_append_c(text, 'x');
        d = parse("x", text->str, &error);
        assert_null(d);
        assert_non_null(strstr(error->message, "larger than 4096"));

        memset(name, 'n', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        assert_false(pcpd_declared_name_valid(name));
        name[PCPD_DECLARED_NAME_MAX] = '\0';
        assert_true(pcpd_declared_name_valid(name));
}

/* ---- loading directories ---- */

static void put(const char *dir, const char *name, const char *text) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        assert_true(g_file_set_contents(p, text, -1, NULL));
}

static void test_load(void **state) {
        g_autofree char *etc = unit_make_own_dir("declared"), *st = unit_make_own_dir("declared");
        g_autofree char *run = g_build_filename(st, PCPD_DECLARED_DIR, NULL);
        g_autoptr(GPtrArray) set = NULL;
        g_autoptr(GError) error = NULL;
        int fd;
        pcpd_declared *d;

        assert_int_equal(g_mkdir(run, 0700), 0);
        put(etc, "b.conf", "[Mapping]\nProtocol=tcp\nPort=2\n");
        put(etc, "a.conf", "[Mapping]\nProtocol=tcp\nPort=1\n");
        put(etc, "ignored.txt", "not a declaration");
        put(run, "a.conf", "[Mapping]\nProtocol=udp\nPort=99\n"); /* /etc's a wins */
        put(run, "c.conf", "[Mapping]\nProtocol=udp\nPort=3\n");
        fd = unit_open_dir(st);

        assert_true(pcpd_declared_load(etc, fd, st, &set, &error));
        assert_null(error);
        assert_int_equal(set->len, 3);
        d = set->pdata[0];
        assert_string_equal(d->name, "a");
        assert_int_equal(d->port, 1);
        assert_false(d->runtime);
        d = set->pdata[2];
        assert_string_equal(d->name, "c");
        assert_true(d->runtime);
        assert_non_null(strstr(d->path, run));
        assert_ptr_equal(pcpd_declared_find(set, "b"), set->pdata[1]);
        assert_null(pcpd_declared_find(set, "z"));

        /* one bad file anywhere: nothing, and *ret untouched */
        put(run, "d.conf", "[Mapping]\nProtocol=tcp\nPort=0\n");
        {
                GPtrArray *untouched = (GPtrArray *) 0x1;
                assert_false(pcpd_declared_load(etc, fd, st, &untouched, &error));
                assert_ptr_equal(untouched, (GPtrArray *) 0x1);
                assert_non_null(strstr(error->message, "d.conf"));
                assert_non_null(strstr(error->message, "Port=0"));
                g_clear_error(&error);
        }
        put(run, "d.conf", "[Mapping]\nProtocol=tcp\nPort=4\n");

        /* a symbolic link in pcpd's own directory is refused */
        {
                g_autofree char *link = g_build_filename(run, "e.conf", NULL);
                g_autofree char *target = g_build_filename(etc, "b.conf", NULL);
                g_autoptr(GPtrArray) s2 = NULL;
                assert_int_equal(symlink(target, link), 0);
                assert_false(pcpd_declared_load(etc, fd, st, &s2, &error));
                assert_non_null(strstr(error->message, "e.conf"));
                g_clear_error(&error);
                assert_int_equal(g_unlink(link), 0);
        }

        /* the limit on their number */
        for (int i = 0; i < PCPD_DECLARED_MAX; i++) {
                g_autofree char *n = g_strdup_printf("m%02d.conf", i);
                put(run, n, "[Mapping]\nProtocol=udp\nPort=5\n");
        }
        {
                g_autoptr(GPtrArray) s3 = NULL;
                assert_false(pcpd_declared_load(etc, fd, st, &s3, &error));
                assert_non_null(strstr(error->message, "more than 64"));
                g_clear_error(&error);
        }

        /* a missing administrator's directory and no state directory: none */
        {
                g_autofree char *none = g_build_filename(etc, "nowhere", NULL);
                g_autoptr(GPtrArray) s4 = NULL;
                assert_true(pcpd_declared_load(none, -1, NULL, &s4, &error));
                assert_int_equal(s4->len, 0);
        }
        close(fd);
        assert_int_equal(unit_rm_own_dir(etc), 0);
        assert_int_equal(unit_rm_own_dir(st), 0);
}

static void test_etc_dir(void **state) {
        g_autofree char *a = pcpd_declared_etc_dir("/etc/pcpd/pcpd.conf");
        g_autofree char *b = pcpd_declared_etc_dir("pcpd.conf");

        assert_string_equal(a, "/etc/pcpd/mappings.d");
        assert_string_equal(b, "./mappings.d");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_full), cmocka_unit_test(test_parse_minimal),
                cmocka_unit_test(test_round_trip), cmocka_unit_test(test_equal),
                cmocka_unit_test(test_bad),        cmocka_unit_test(test_long_values),
                cmocka_unit_test(test_load),       cmocka_unit_test(test_etc_dir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
