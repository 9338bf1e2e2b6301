/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The app's words (pf-format) and its application lookup (pf-app-info), without GTK. The
 * lookup reads the test desktop files in tests/data (XDG_DATA_DIRS set by meson). */

#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "pcp1-contract.h"
#include "pf-app-info.h"
#include "pf-format.h"

static void assert_strv(char **got, const char *const *want) {
        size_t i = 0;

        for (; want[i] != NULL; i++) {
                assert_non_null(got[i]);
                assert_string_equal(got[i], want[i]);
        }
        assert_null(got[i]);
}

static void test_units(void **state) {
        static const struct {
                const char *unit;
                const char *want[3];
        } cases[] = {
                { "app-gnome-org.gnome.Foo-1234.scope", { "org.gnome.Foo", "gnome-org.gnome.Foo" } },
                { "app-org.gnome.Foo-1234.scope", { "org.gnome.Foo" } },
                { "app-flatpak-org.example.App-77.scope", { "org.example.App", "flatpak-org.example.App" } },
                { "app-gnome-org.gnome.Foo@abc.service", { "org.gnome.Foo", "gnome-org.gnome.Foo" } },
                { "app-org.gnome.Foo.service", { "org.gnome.Foo" } },
                /* the launcher escapes the id's own dashes */
                { "app-gnome-gnome\\x2dterminal-5.scope", { "gnome-terminal", "gnome-gnome-terminal" } },
                /* ...or does not: both readings are tried, the launcher's first */
                { "app-firefox-esr-1234.scope", { "esr", "firefox-esr" } },
                { "dbus-:1.2-org.gnome.Nautilus@0.service", { "org.gnome.Nautilus" } },
                { "syncthing@alice.service", { "syncthing" } },
                { "transmission-daemon.service", { "transmission-daemon" } },
                { "foo.socket", { NULL } },
                { "", { NULL } },
                { ".scope", { NULL } },
                { "app-.scope", { NULL } },
                { "dbus-:1.2.service", { NULL } },
                { "app-x\\x00y-1.scope", { "x\\x00y" } }, /* a NUL escape is kept as text */
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_auto(GStrv) got = pf_app_ids_from_unit(cases[i].unit);
                print_message("# %s\n", cases[i].unit);
                assert_strv(got, cases[i].want);
        }
        {
                g_auto(GStrv) got = pf_app_ids_from_unit(NULL);
                assert_null(got[0]);
        }
}

static void assert_app(const char *app_id, const char *source, guint32 pid, const char *name, const char *icon,
                       const char *key) {
        g_autoptr(PfAppInfo) info = pf_app_info_lookup(app_id, source, pid);
        g_autofree char *icon_s = g_icon_to_string(info->icon);

        /* (one call has neither: %s of NULL is undefined, and gcc -O3 says so) */
        print_message("# %s (%s)\n", app_id != NULL ? app_id : "no app id", source != NULL ? source : "no source");
        assert_string_equal(info->name, name);
        assert_string_equal(icon_s, icon);
        assert_string_equal(info->key, key);
}

static void test_apps(void **state) {
        g_autofree char *self_key = g_strdup_printf("pid:%d", (int) getpid());
        g_autofree char *comm = NULL;

        assert_app("org.example.Chat", PCP1_APP_ID_FLATPAK, 1, "Chat", "org.example.Chat",
                   "desktop:org.example.Chat.desktop");
        /* an app a desktop launched: two instances, one application */
        assert_app("app-gnome-org.example.Games-2048.scope", PCP1_APP_ID_SYSTEMD_UNIT, 1, "Game Server",
                   "org.example.Games", "desktop:org.example.Games.desktop");
        assert_app("app-flatpak-org.example.Games-7.scope", PCP1_APP_ID_SYSTEMD_UNIT, 1, "Game Server",
                   "org.example.Games", "desktop:org.example.Games.desktop");
        /* declared ids: exact, the last part of a reverse-DNS id, the window class */
        assert_app("org.example.Sync", PCP1_APP_ID_DECLARED, 1, "File Sync", "org.example.Sync",
                   "desktop:org.example.Sync.desktop");
        assert_app("Sync", PCP1_APP_ID_DECLARED, 1, "File Sync", "org.example.Sync",
                   "desktop:org.example.Sync.desktop");
        assert_app("GameServer", PCP1_APP_ID_DECLARED, 1, "Game Server", "org.example.Games",
                   "desktop:org.example.Games.desktop");
        assert_app("../org.example.Chat", PCP1_APP_ID_DECLARED, 1, "../org.example.Chat",
                   "application-x-executable-symbolic", "app:../org.example.Chat");
        /* snaps: "<snap>_<app>.desktop" */
        assert_app("toolbox", PCP1_APP_ID_SNAP, 1, "Toolbox", "org.example.Chat", "desktop:toolbox_toolbox.desktop");
        /* nothing installed: the id, a generic icon; unit instances still group */
        assert_app("org.nowhere.App", PCP1_APP_ID_FLATPAK, 1, "org.nowhere.App", "application-x-executable-symbolic",
                   "app:org.nowhere.App");
        assert_app("app-gnome-org.nowhere.Thing-5.scope", PCP1_APP_ID_SYSTEMD_UNIT, 1, "org.nowhere.Thing",
                   "application-x-executable-symbolic", "app:org.nowhere.Thing");
        assert_app("syncthing@alice.service", PCP1_APP_ID_SYSTEMD_UNIT, 1, "syncthing",
                   "application-x-executable-symbolic", "app:syncthing");
        /* no id: the process name, or its number when it is gone */
        assert_true(g_file_get_contents("/proc/self/comm", &comm, NULL, NULL));
        g_strstrip(comm);
        assert_app("", PCP1_APP_ID_NONE, (guint32) getpid(), comm, "application-x-executable-symbolic", self_key);
        assert_app(NULL, NULL, 0, "Process 0", "application-x-executable-symbolic", "pid:0");
}

static void test_durations(void **state) {
        static const struct {
                gint64 seconds;
                const char *want;
        } cases[] = {
                { 0, "0 seconds" },     { 1, "1 second" },       { 59, "59 seconds" }, { 60, "1 min" },
                { 89, "1 min" },        { 90, "2 min" },         { 3569, "59 min" },   { 3599, "1 h" },
                { 3600, "1 h" },        { 5400, "1 h 30 min" },  { 86399, "23 h 59 min" },
                { 2 * 86400 - 1, "47 h 59 min" }, { 2 * 86400, "2 days" }, { -5, "0 seconds" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *got = pf_format_duration(cases[i].seconds);
                assert_string_equal(got, cases[i].want);
        }
}

static void test_words(void **state) {
        g_autoptr(GVariant) pcp = g_variant_ref_sink(g_variant_new_parsed(
                "[('eth0', '192.0.2.1', 'dhcpv4', 'none', uint32 0), ('eth0', '192.0.2.2', 'gateway', 'pcp', 7)]"));
        g_autoptr(GVariant) silent = g_variant_ref_sink(
                g_variant_new_parsed("[('eth0', '192.0.2.1', 'gateway', 'none', uint32 0)]"));
        g_autoptr(GVariant) wrong = g_variant_ref_sink(g_variant_new_parsed("[('a', 'b')]"));
        g_autoptr(GVariant) igd = g_variant_ref_sink(g_variant_new_parsed(
                "[('eth0', '192.0.2.1', 'gateway', 'none', uint32 0), ('eth0', '192.0.2.1', 'ssdp', 'upnp-igd', 0)]"));
        char *s;

        assert_int_equal(pf_situation(FALSE, "ready", pcp), PF_SITUATION_NOT_RUNNING);
        assert_int_equal(pf_situation(TRUE, NULL, NULL), PF_SITUATION_NOT_RUNNING);
        assert_int_equal(pf_situation(TRUE, "ready", pcp), PF_SITUATION_ROUTER);
        assert_int_equal(pf_situation(TRUE, "ready", silent), PF_SITUATION_DIRECT);
        assert_int_equal(pf_situation(TRUE, "ready", igd), PF_SITUATION_ROUTER);
        assert_int_equal(pf_situation(TRUE, "ready", NULL), PF_SITUATION_DIRECT);
        assert_int_equal(pf_situation(TRUE, "ready", wrong), PF_SITUATION_DIRECT);
        assert_int_equal(pf_situation(TRUE, "disabled", pcp), PF_SITUATION_DISABLED);
        assert_int_equal(pf_situation(TRUE, "no-network", NULL), PF_SITUATION_NO_ROUTER);
        assert_int_equal(pf_situation(TRUE, "unsupported", silent), PF_SITUATION_UNSUPPORTED);
        assert_int_equal(pf_situation(TRUE, "discovering", NULL), PF_SITUATION_DISCOVERING);
        assert_int_equal(pf_situation(TRUE, "some-new-state", NULL), PF_SITUATION_DISCOVERING);
        assert_string_equal(pf_situation_sentence(PF_SITUATION_ROUTER), "Your router accepts port-forwarding requests");
        assert_string_equal(pf_situation_sentence(PF_SITUATION_DIRECT),
                            "This computer is directly reachable from the Internet");
        assert_null(pf_situation_banner(PF_SITUATION_ROUTER));
        assert_non_null(pf_situation_banner(PF_SITUATION_NOT_RUNNING));
        /* while the first look at the service is going on: no claim that it is not running */
        assert_null(pf_situation_banner(PF_SITUATION_CONNECTING));
        assert_string_equal(pf_situation_sentence(PF_SITUATION_CONNECTING),
                            "Connecting to the port forwarding service…");
        s = pf_format_start_failure("Process org.freedesktop.PCP1 exited with status 1");
        assert_string_equal(s, "The port forwarding service could not be started: Process org.freedesktop.PCP1 "
                               "exited with status 1. “systemctl status pcpd” tells why.");
        g_free(s);
        /* one full stop, not two */
        s = pf_format_start_failure("Unit pcpd.service failed. ");
        assert_string_equal(s, "The port forwarding service could not be started: Unit pcpd.service failed. "
                               "“systemctl status pcpd” tells why.");
        g_free(s);
        s = pf_format_start_failure("");
        assert_string_equal(s, "The port forwarding service could not be started. "
                               "“systemctl status pcpd” tells why.");
        g_free(s);

        s = pf_format_failure("NO_RESOURCES");
        assert_string_equal(s, "the router has no room for more forwarded ports");
        g_free(s);
        s = pf_format_failure(PCP1_MAPPING_ERROR_UNREACHABLE);
        assert_string_equal(s, "the router does not answer");
        g_free(s);
        s = pf_format_failure("SOMETHING_NEW");
        assert_string_equal(s, "a problem this version does not know (SOMETHING_NEW)");
        g_free(s);
        s = pf_format_failure("");
        assert_string_equal(s, "the reason is unknown");
        g_free(s);

        s = pf_format_endpoint("2001:db8::1", 80);
        assert_string_equal(s, "[2001:db8::1]:80");
        g_free(s);
        s = pf_format_protocol("47");
        assert_string_equal(s, "Protocol 47");
        g_free(s);
        s = pf_format_server_source("dhcpv4", "eth0");
        assert_string_equal(s, "announced by DHCP on eth0");
        g_free(s);
        s = pf_format_server_source("gateway", "");
        assert_string_equal(s, "default router");
        g_free(s);
        assert_string_equal(pf_format_server_protocol("nat-pmp"), "NAT-PMP");
        assert_string_equal(pf_format_server_protocol("none"), "Not answering");
        assert_string_equal(pf_format_server_protocol("upnp-igd"), "UPnP-IGD");
        s = pf_format_server_source("ssdp", "eth0");
        assert_string_equal(s, "found by UPnP on eth0");
        g_free(s);
}

/* Every Mapping.Error value the contract names has words of its own: none is shown as an
 * unknown code (the names come from the "Error:" comment of the XML, so a new one fails here). */
static void test_failures_of_the_contract(void **state) {
        const char *xml_path = g_getenv("PCP1_MAPPING_XML");
        g_autofree char *xml = NULL;
        const char *start, *end;
        g_autoptr(GRegex) re = g_regex_new("\"([A-Z][A-Z_]{3,})\"", 0, 0, NULL);
        g_autoptr(GMatchInfo) match = NULL;
        g_autofree char *block = NULL;
        guint n = 0;

        assert_non_null(xml_path);
        assert_true(g_file_get_contents(xml_path, &xml, NULL, NULL));
        start = strstr(xml, "        Error:\n");
        assert_non_null(start);
        end = strstr(start, "<property name=\"Error\"");
        assert_non_null(end);
        block = g_strndup(start, (gsize) (end - start));
        for (g_regex_match(re, block, 0, &match); g_match_info_matches(match); g_match_info_next(match, NULL)) {
                g_autofree char *name = g_match_info_fetch(match, 1);
                g_autofree char *words = pf_format_failure(name);

                print_message("# %s: %s\n", name, words);
                /* the fallback shows the code itself */
                assert_null(strstr(words, name));
                assert_null(strstr(words, "does not know"));
                n++;
        }
        /* the RFC 6887 examples, the daemon's own and the UPnP-IGD ones: the block was found */
        assert_true(n >= 15);
        /* and what the daemon sends beyond the XML's list */
        for (const char *const *e = (const char *const[]) { "UNSUPPORTED", "UNKNOWN", "OUT_OF_RESOURCES", NULL };
             *e != NULL; e++) {
                g_autofree char *words = pf_format_failure(*e);
                assert_null(strstr(words, *e));
        }
}

/* Every org.freedesktop.PCP1.Error.* name the contract's XML names is said in words, with the
 * daemon's message after them; other names show the message. */
static void test_bus_errors(void **state) {
        const char *xmls[] = { g_getenv("PCP1_MANAGER_XML"), g_getenv("PCP1_MAPPING_XML") };
        g_autoptr(GRegex) re = g_regex_new("org\\.freedesktop\\.PCP1\\.Error\\.[A-Za-z]+", 0, 0, NULL);
        guint n = 0;
        char *s;

        for (size_t i = 0; i < G_N_ELEMENTS(xmls); i++) {
                g_autofree char *xml = NULL;
                g_autoptr(GMatchInfo) match = NULL;

                assert_non_null(xmls[i]);
                assert_true(g_file_get_contents(xmls[i], &xml, NULL, NULL));
                for (g_regex_match(re, xml, 0, &match); g_match_info_matches(match); g_match_info_next(match, NULL)) {
                        g_autofree char *name = g_match_info_fetch(match, 0);
                        const char *words = pf_format_bus_error(name);

                        print_message("# %s: %s\n", name, words != NULL ? words : "(none)");
                        assert_non_null(words);
                        n++;
                }
        }
        assert_true(n >= 13);
        assert_null(pf_format_bus_error("org.freedesktop.DBus.Error.NoReply"));
        assert_null(pf_format_bus_error(NULL));

        s = pf_format_call_error("Could not stop forwarding the port", PCP1_ERROR_NOT_AUTHORIZED,
                                 "Mapping 7 is not yours");
        assert_string_equal(s, "Could not stop forwarding the port: you are not allowed to do this — "
                               "Mapping 7 is not yours");
        g_free(s);
        s = pf_format_call_error("Could not switch port forwarding", "org.freedesktop.DBus.Error.NoReply",
                                 "Timeout was reached");
        assert_string_equal(s, "Could not switch port forwarding: Timeout was reached");
        g_free(s);
        s = pf_format_call_error("Could not switch port forwarding", NULL, "Connection closed");
        assert_string_equal(s, "Could not switch port forwarding: Connection closed");
        g_free(s);
        s = pf_format_call_error("Could not stop forwarding the port", PCP1_ERROR_NOT_FOUND, "");
        assert_string_equal(s, "Could not stop forwarding the port: it is gone already");
        g_free(s);
}

/* A description shows no controls and turns no text around. */
static void test_text(void **state) {
        static const struct {
                const char *in, *want;
        } cases[] = {
                { "Voice and video calls", "Voice and video calls" },
                /* markup is text (the rows show it as it is) */
                { "<b>bold</b> & co", "<b>bold</b> & co" },
                { "a\u202eevil\u202c b", "a\ufffdevil\ufffd b" },
                { "\u202a\u202b\u202d x \u2066\u2067\u2068\u2069", "\ufffd\ufffd\ufffd x \ufffd\ufffd\ufffd\ufffd" },
                { "line1\nline2\r\tx\x07\x1b[31m", "line1\ufffdline2\ufffd\ufffdx\ufffd\ufffd[31m" },
                { "del\x7f c1\xc2\x85\xc2\x9b end", "del\ufffd c1\ufffd\ufffd end" },
                { "sep\u2028par\u2029", "sep\ufffdpar\ufffd" },
                /* what is not a control stays: accents, Arabic, emoji, a zero-width joiner */
                { "Café مرحبا 🎮 a\u200db", "Café مرحبا 🎮 a\u200db" },
                { "bad \xff byte", "bad \ufffd byte" },
                { "", "" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *got = pf_format_text(cases[i].in);
                assert_string_equal(got, cases[i].want);
        }
}

static void test_mapping_text(void **state) {
        const gint64 now = 1000 * G_USEC_PER_SEC;
        PfMappingText pending = { .opcode = "map", .protocol = "tcp", .state = "pending", .server = "192.0.2.1",
                                  .internal_port = 22000 };
        PfMappingText active = { .opcode = "map", .protocol = "udp", .state = "active", .server = "192.0.2.1",
                                 .external_address = "198.51.100.7", .internal_port = 5000, .external_port = 6000,
                                 .expires_at_us = (guint64) (now + 600 * G_USEC_PER_SEC), .description = "Calls",
                                 .persistent = TRUE, .other_user = "bob" };
        PfMappingText failed = { .opcode = "map", .protocol = "tcp", .state = "failed", .error = "UNREACHABLE",
                                 .server = "192.0.2.1", .internal_port = 22000 };
        PfMappingText no_server = { .opcode = "map", .protocol = "tcp", .state = "failed", .error = "NO_SERVER",
                                    .server = "", .internal_port = 22000 };
        PfMappingText timeout = { .opcode = "map", .protocol = "udp", .state = "failed", .error = "TIMEOUT",
                                  .server = "192.0.2.1", .internal_port = 5000,
                                  .description = "Chat\nline two \u202eevil" };
        PfMappingText direct = { .opcode = "map", .protocol = "tcp", .state = "active", .server = "",
                                 .external_address = "2001:db8::5", .internal_port = 80, .external_port = 80 };
        PfMappingText peer = { .opcode = "peer", .protocol = "tcp", .state = "renewing", .server = "192.0.2.1",
                               .external_address = "198.51.100.7", .remote_address = "203.0.113.9",
                               .internal_port = 5000, .external_port = 5000, .remote_port = 443,
                               .expires_at_us = (guint64) (now + 30 * G_USEC_PER_SEC) };
        const struct {
                const PfMappingText *m;
                const char *title, *subtitle;
        } cases[] = {
                { &pending, "TCP 22000", "Waiting for the router" },
                { &active, "UDP 5000 → 198.51.100.7:6000",
                  "Calls · Active · expires in 10 min, renewed automatically · kept when the application exits · "
                  "user bob" },
                { &failed, "TCP 22000", "Failed: the router does not answer; trying again" },
                /* waiting, not refused */
                { &no_server, "TCP 22000", "Waiting for a router that can forward ports" },
                { &timeout, "UDP 5000",
                  "Chat\ufffdline two \ufffdevil · Failed: the router did not answer in time; trying again" },
                { &direct, "TCP 80 → [2001:db8::5]:80", "Active · reachable directly, no router needed" },
                { &peer, "TCP 5000 → 198.51.100.7:5000",
                  "Connection with 203.0.113.9:443 · Renewing · expires in 30 seconds" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *title = pf_format_mapping_title(cases[i].m);
                g_autofree char *subtitle = pf_format_mapping_subtitle(cases[i].m, now);
                assert_string_equal(title, cases[i].title);
                assert_string_equal(subtitle, cases[i].subtitle);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_units),     cmocka_unit_test(test_apps),
                cmocka_unit_test(test_durations), cmocka_unit_test(test_words),
                cmocka_unit_test(test_mapping_text), cmocka_unit_test(test_failures_of_the_contract),
                cmocka_unit_test(test_text), cmocka_unit_test(test_bus_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
