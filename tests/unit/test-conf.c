/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcpd.conf parsing: good files load, every bad value is refused with a message naming it. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <glib.h>
#include <net/if.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "pcpd-conf.h"

static char *write_conf(const char *text) {
        char *path = NULL;
        int fd = g_file_open_tmp("pcpd-conf-XXXXXX.conf", &path, NULL);

        assert_true(fd >= 0);
        close(fd);
        assert_true(g_file_set_contents(path, text, -1, NULL));
        return path;
}

static void test_endpoints(void **state) {
        struct sockaddr_in6 a;
        char buf[64];

        assert_true(pcpd_parse_endpoint("192.0.2.1", 5351, &a));
        assert_int_equal(ntohs(a.sin6_port), 5351);
        assert_string_equal(inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof(buf)), "::ffff:192.0.2.1");
        assert_true(pcpd_parse_endpoint("192.0.2.1:15351", 5351, &a));
        assert_int_equal(ntohs(a.sin6_port), 15351);
        assert_true(pcpd_parse_endpoint("fd00::1", 5351, &a));
        assert_int_equal(ntohs(a.sin6_port), 5351);
        assert_true(pcpd_parse_endpoint("[fd00::1]:99", 5351, &a));
        assert_int_equal(ntohs(a.sin6_port), 99);
        assert_true(pcpd_parse_endpoint("fe80::1%1", 5351, &a));
        assert_int_equal(a.sin6_scope_id, 1);

        const char *bad[] = { "", "x", "192.0.2.1:0", "192.0.2.1:65536", "192.0.2.1:abc", "[fd00::1",
                              "[fd00::1]x", "0.0.0.0", "::", "fe80::1%", "300.1.1.1" };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                assert_false(pcpd_parse_endpoint(bad[i], 5351, &a));
}

static void test_good_file(void **state) {
        g_autofree char *path = write_conf("[Daemon]\nEnabled=false\nDefaultLifetime=7200\nMaxMappingsPerUser=3\n"
                                           "[Servers]\nServers=192.0.2.1 ; [fd00::1]:15351\nUseDefaultRouters=no\n"
                                           "AnnouncePort=15350\n");
        g_autoptr(GError) error = NULL;
        pcpd_config c;

        pcpd_config_init(&c);
        assert_true(pcpd_config_load(&c, path, false, &error));
        assert_null(error);
        assert_false(c.enabled);
        assert_int_equal(c.default_lifetime, 7200);
        assert_int_equal(c.max_mappings_per_user, 3);
        assert_false(c.use_default_routers);
        assert_int_equal(c.announce_port, 15350);
        assert_int_equal(c.n_servers, 2);
        assert_string_equal(c.servers[1].text, "[fd00::1]:15351");
        pcpd_config_clear(&c);
        g_unlink(path);
}

static void test_dropins_override(void **state) {
        g_autofree char *path = write_conf("[Daemon]\nDefaultLifetime=7200\n");
        g_autofree char *dir = g_strconcat(path, ".d", NULL);
        g_autofree char *d1 = g_build_filename(dir, "10-a.conf", NULL);
        g_autofree char *d2 = g_build_filename(dir, "20-b.conf", NULL);
        g_autoptr(GError) error = NULL;
        pcpd_config c;

        assert_int_equal(g_mkdir(dir, 0700), 0);
        assert_true(g_file_set_contents(d2, "[Daemon]\nDefaultLifetime=900\n", -1, NULL));
        assert_true(g_file_set_contents(d1, "[Daemon]\nDefaultLifetime=600\n", -1, NULL));
        pcpd_config_init(&c);
        assert_true(pcpd_config_load(&c, path, false, &error));
        assert_int_equal(c.default_lifetime, 900); /* lexical order: 20-b last */
        pcpd_config_clear(&c);
        g_unlink(d1);
        g_unlink(d2);
        g_rmdir(dir);
        g_unlink(path);
}

static void expect_error(const char *text, const char *needle) {
        g_autofree char *path = write_conf(text);
        g_autoptr(GError) error = NULL;
        pcpd_config c;

        pcpd_config_init(&c);
        assert_false(pcpd_config_load(&c, path, false, &error));
        assert_non_null(error);
        if (strstr(error->message, needle) == NULL)
                fail_msg("error '%s' does not mention '%s'", error->message, needle);
        pcpd_config_clear(&c);
        g_unlink(path);
}

static void test_bad_files(void **state) {
        expect_error("[Daemon]\nDefaultLifetime=abc\n", "DefaultLifetime=abc");
        expect_error("[Daemon]\nDefaultLifetime=10\n", "between 120");
        expect_error("[Daemon]\nEnabled=maybe\n", "Enabled=maybe");
        expect_error("[Daemon]\nColour=blue\n", "unknown setting [Daemon] Colour");
        expect_error("[Servers]\nServers=192.0.2.1 nonsense\n", "'nonsense'");
        expect_error("[Servers]\nAnnouncePort=70000\n", "AnnouncePort=70000");
        expect_error("not a key file", "pcpd-conf-");
}

/* UpnpDeleteRetrySeconds=: 60 by default, 1-3600, a bad value refused and named */
static void test_upnp_delete_retry(void **state) {
        g_autofree char *path = write_conf("[Daemon]\nUpnpDeleteRetrySeconds=2\n");
        g_autoptr(GError) error = NULL;
        pcpd_config c;

        pcpd_config_init(&c);
        assert_int_equal(c.upnp_delete_retry_seconds, PCPD_DEFAULT_UPNP_DELETE_RETRY);
        assert_int_equal(PCPD_DEFAULT_UPNP_DELETE_RETRY, 60);
        assert_true(pcpd_config_load(&c, path, false, &error));
        assert_int_equal(c.upnp_delete_retry_seconds, 2);
        assert_true(pcpd_config_load_data(&c, "edge", "[Daemon]\nUpnpDeleteRetrySeconds=3600\n", (size_t) -1, &error));
        assert_int_equal(c.upnp_delete_retry_seconds, 3600);
        pcpd_config_clear(&c);
        g_unlink(path);
        expect_error("[Daemon]\nUpnpDeleteRetrySeconds=0\n", "UpnpDeleteRetrySeconds=0 is not a number between 1 and 3600");
        expect_error("[Daemon]\nUpnpDeleteRetrySeconds=3601\n", "UpnpDeleteRetrySeconds=3601");
        expect_error("[Servers]\nUpnpDeleteRetrySeconds=5\n", "unknown setting [Servers] UpnpDeleteRetrySeconds");
}

static void test_missing(void **state) {
        g_autoptr(GError) error = NULL;
        pcpd_config c;

        pcpd_config_init(&c);
        assert_true(pcpd_config_load(&c, "/nonexistent/pcpd.conf", true, &error));
        assert_false(pcpd_config_load(&c, "/nonexistent/pcpd.conf", false, &error));
        assert_non_null(strstr(error->message, "/nonexistent/pcpd.conf"));
        assert_true(c.use_default_routers); /* defaults untouched */
        assert_int_equal(c.default_lifetime, PCPD_DEFAULT_LIFETIME);
}

/* Found by tests/fuzz/fuzz-conf: a file with a bad setting after good ones had already
 * applied the good ones (a drop-in half read); it changes nothing now. */
static void test_bad_file_changes_nothing(void **state) {
        g_autofree char *path = write_conf("[Daemon]\nDefaultLifetime=7200\n[Servers]\nServers=192.0.2.1\n");
        g_autofree char *dir = g_strconcat(path, ".d", NULL);
        g_autofree char *d1 = g_build_filename(dir, "10-bad.conf", NULL);
        g_autoptr(GError) error = NULL;
        pcpd_config c;

        assert_int_equal(g_mkdir(dir, 0700), 0);
        assert_true(g_file_set_contents(d1,
                                        "[Daemon]\nEnabled=false\nDefaultLifetime=900\n[Servers]\n"
                                        "Servers=198.51.100.1\nUseDefaultRouters=false\nAnnouncePort=0\n",
                                        -1, NULL));
        pcpd_config_init(&c);
        assert_false(pcpd_config_load(&c, path, false, &error));
        assert_non_null(strstr(error->message, "AnnouncePort=0"));
        /* what the main file said, nothing of the drop-in */
        assert_true(c.enabled);
        assert_int_equal(c.default_lifetime, 7200);
        assert_true(c.use_default_routers);
        assert_int_equal(c.n_servers, 1);
        assert_string_equal(c.servers[0].text, "192.0.2.1");
        pcpd_config_clear(&c);
        g_unlink(d1);
        g_rmdir(dir);
        g_unlink(path);
}

/* Found by tests/fuzz/fuzz-conf: an error quoted the file's bytes as they were, so a name
 * or value that is not UTF-8 made the message one the journal keeps as a blob. */
static void test_errors_are_utf8(void **state) {
        static const char *const bad[] = {
                "[Daemon]\nCol\xff\xfeur=1\n",               /* an unknown key */
                "[Da\xc3mon]\nx=1\n",                        /* an unknown group */
                "[Daemon]\nDefaultLifetime=1\xe2\x82\n",     /* a bad number */
                "[Daemon]\nEnabled=\xffyes\n",               /* a bad boolean */
                "[Servers]\nServers=192.0.2.\x80\n",         /* a bad address */
                "[Serv\377[ers]\n",                          /* GKeyFile's own: a bad group name */
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *path = write_conf(bad[i]);
                g_autoptr(GError) error = NULL;
                pcpd_config c;

                pcpd_config_init(&c);
                assert_false(pcpd_config_load(&c, path, false, &error));
                if (!g_utf8_validate(error->message, -1, NULL))
                        fail_msg("file %zu: the error is not UTF-8: %s", i, error->message);
                assert_non_null(strstr(error->message, path));
                pcpd_config_clear(&c);
                g_unlink(path);
        }
}

/* the text of a file reads as the file does */
static void test_load_data(void **state) {
        static const char text[] = "[Daemon]\nMaxMappings=10\n[Servers]\nServers=[fd00::1]:99\n";
        g_autoptr(GError) error = NULL;
        pcpd_config c;

        pcpd_config_init(&c);
        assert_true(pcpd_config_load_data(&c, "inline", text, strlen(text), &error));
        assert_int_equal(c.max_mappings, 10);
        assert_int_equal(c.n_servers, 1);
        assert_false(pcpd_config_load_data(&c, "inline2", "[Daemon]\nMaxMappings=0\n", 23, &error));
        assert_true(g_str_has_prefix(error->message, "inline2: "));
        assert_int_equal(c.max_mappings, 10);
        pcpd_config_clear(&c);
}

/* A file with CR LF line ends (or a stray CR, vertical tab, form feed): the CR is not part
 * of the last server's text (found by fuzz-conf: "fe80::1%lo\r" was kept with its CR and
 * read back differently once written out) */
static void test_servers_split_on_any_space(void **state) {
        static const char text[] = "[Servers]\r\nServers=192.0.2.1\r[fd00::1]:99\v198.51.100.2\ffe80::1%lo\r\n";
        g_autoptr(GError) error = NULL;
        pcpd_config c;

        pcpd_config_init(&c);
        assert_true(pcpd_config_load_data(&c, "inline", text, strlen(text), &error));
        assert_int_equal(c.n_servers, 4);
        assert_string_equal(c.servers[0].text, "192.0.2.1");
        assert_string_equal(c.servers[1].text, "[fd00::1]:99");
        assert_string_equal(c.servers[2].text, "198.51.100.2");
        assert_string_equal(c.servers[3].text, "fe80::1%lo");
        assert_int_equal(c.servers[3].addr.sin6_scope_id, if_nametoindex("lo"));
        pcpd_config_clear(&c);
}

static GPtrArray *warnings; /* the messages of the warnings logged */

static GLogWriterOutput record_log(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data) {
        for (gsize i = 0; i < n; i++)
                if ((level & G_LOG_LEVEL_WARNING) && strcmp(fields[i].key, "MESSAGE") == 0)
                        g_ptr_array_add(warnings, g_strdup((const char *) fields[i].value));
        return g_log_writer_default(level, fields, n, data);
}

/* DefaultLifetime= above MaxLifetime=: shortened to it once every file is read (what pcpd
 * asks for and publishes), with a warning naming both; a drop-in raising MaxLifetime= over
 * it leaves it as the main file says, unwarned. */
static void test_default_over_max(void **state) {
        g_autofree char *path = write_conf("[Daemon]\nDefaultLifetime=7200\nMaxLifetime=600\n");
        g_autofree char *dir = g_strconcat(path, ".d", NULL);
        g_autofree char *d1 = g_build_filename(dir, "10-max.conf", NULL);
        g_autoptr(GError) error = NULL;
        pcpd_config c;

        g_ptr_array_set_size(warnings, 0);
        pcpd_config_init(&c);
        assert_true(pcpd_config_load(&c, path, false, &error));
        assert_int_equal(c.default_lifetime, 600);
        assert_int_equal(c.max_lifetime, 600);
        assert_int_equal(warnings->len, 1);
        if (strstr(warnings->pdata[0], "DefaultLifetime=7200 is longer than MaxLifetime=600") == NULL ||
            strstr(warnings->pdata[0], "asks for 600 s") == NULL)
                fail_msg("the warning: \"%s\"", (const char *) warnings->pdata[0]);
        pcpd_config_clear(&c);

        /* the main file's pair, a drop-in's MaxLifetime= over it: not shortened, not said */
        assert_int_equal(g_mkdir(dir, 0700), 0);
        assert_true(g_file_set_contents(d1, "[Daemon]\nMaxLifetime=9000\n", -1, NULL));
        g_ptr_array_set_size(warnings, 0);
        pcpd_config_init(&c);
        assert_true(pcpd_config_load(&c, path, false, &error));
        assert_int_equal(c.default_lifetime, 7200);
        assert_int_equal(c.max_lifetime, 9000);
        assert_int_equal(warnings->len, 0);
        pcpd_config_clear(&c);

        /* equal: nothing to say */
        assert_true(g_file_set_contents(d1, "[Daemon]\nMaxLifetime=7200\n", -1, NULL));
        pcpd_config_init(&c);
        assert_true(pcpd_config_load(&c, path, false, &error));
        assert_int_equal(c.default_lifetime, 7200);
        assert_int_equal(warnings->len, 0);
        pcpd_config_clear(&c);
        g_unlink(d1);
        g_rmdir(dir);
        g_unlink(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_endpoints),      cmocka_unit_test(test_good_file),
                cmocka_unit_test(test_dropins_override), cmocka_unit_test(test_bad_files),
                cmocka_unit_test(test_missing),
                cmocka_unit_test(test_upnp_delete_retry),
                cmocka_unit_test(test_bad_file_changes_nothing),
                cmocka_unit_test(test_errors_are_utf8),
                cmocka_unit_test(test_load_data),
                cmocka_unit_test(test_servers_split_on_any_space),
                cmocka_unit_test(test_default_over_max),
        };
        int r;

        warnings = g_ptr_array_new_with_free_func(g_free);
        g_log_set_writer_func(record_log, NULL, NULL);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        g_ptr_array_free(warnings, TRUE);
        return r;
}
