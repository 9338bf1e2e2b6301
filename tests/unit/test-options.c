/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The a{sv} options of the Add methods (pcpd-options.c), read from real sd-bus messages:
 * every option, its type, its limits, options given twice, unknown ones, and the errors
 * callers see (the bus tests assert the same sentences through pcpd). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "pcp1-contract.h"
#include "pcpd-options.h"
#include "unit-fixture.h"

static sd_bus *bus;

static int setup(void **state) {
        /* messages need a started bus; this one is never used */
        return unit_offline_bus_setup(&bus);
}

static int teardown(void **state) {
        return unit_offline_bus_teardown(&bus);
}

static sd_bus_message *new_message(void) {
        sd_bus_message *m = NULL;

        assert_int_equal(sd_bus_message_new_method_call(bus, &m, PCP1_BUS_NAME, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE,
                                                        "AddMapping"),
                         0);
        assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        return m;
}

/* closes the a{sv}, seals the message and reads it as pcpd does */
static int parse(sd_bus_message *m, pcpd_options *o, sd_bus_error *error) {
        static uint64_t cookie = 1;
        int r;

        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(sd_bus_message_seal(m, cookie++, 0) >= 0);
        assert_true(sd_bus_message_rewind(m, true) >= 0);
        r = pcpd_options_parse(m, o, error);
        sd_bus_message_unref(m);
        return r;
}

#define OPT(m, name, type, ...) assert_true(sd_bus_message_append(m, "{sv}", name, type, __VA_ARGS__) >= 0)

static void append_filters(sd_bus_message *m, unsigned n, const char *prefix) {
        assert_true(sd_bus_message_open_container(m, 'e', "sv") >= 0);
        assert_true(sd_bus_message_append(m, "s", "filters") >= 0);
        assert_true(sd_bus_message_open_container(m, 'v', "a(sq)") >= 0);
        assert_true(sd_bus_message_open_container(m, 'a', "(sq)") >= 0);
        for (unsigned i = 0; i < n; i++)
                assert_true(sd_bus_message_append(m, "(sq)", prefix, (uint16_t) (1000 + i)) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
}

/* refused with InvalidArgs and exactly this sentence, o as it was (no strings) */
static void assert_refused(sd_bus_message *m, pcpd_options *o, const char *message) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = parse(m, o, &error);

        assert_true(r < 0);
        assert_true(sd_bus_error_is_set(&error));
        assert_string_equal(error.name, SD_BUS_ERROR_INVALID_ARGS);
        assert_string_equal(error.message, message);
        sd_bus_error_free(&error);
        pcpd_options_clear(o);
}

static void assert_parsed(sd_bus_message *m, pcpd_options *o) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = parse(m, o, &error);

        if (r < 0)
                fail_msg("refused: %s", error.message ?: strerror(-r));
        assert_false(sd_bus_error_is_set(&error));
}

static void test_none(void **state) {
        pcpd_options o = { 0 };

        assert_parsed(new_message(), &o);
        assert_int_equal(o.lifetime, 0);
        assert_null(o.description);
        assert_null(o.interface);
        assert_null(o.app_id);
        assert_int_equal(o.family, 0);
        assert_int_equal(o.n_filters, 0);
        assert_false(o.has_external_address || o.has_third_party || o.persistent || o.prefer_failure);
        assert_false(o.need_privileged);
}

static void test_every_option(void **state) {
        pcpd_options o = { .for_socket = true };
        sd_bus_message *m = new_message();
        struct in6_addr a;

        OPT(m, "lifetime", "u", 600);
        OPT(m, "description", "s", "web server");
        OPT(m, "family", "s", "ipv6");
        OPT(m, "interface", "s", "lo");
        OPT(m, "external-address", "s", "198.51.100.7");
        OPT(m, "suggested-external-port", "q", 8080);
        OPT(m, "prefer-failure", "b", 1);
        append_filters(m, 2, "192.0.2.0/24");
        OPT(m, "third-party", "s", "2001:db8::9");
        OPT(m, "persistent", "b", 0);
        OPT(m, "app-id", "s", "org.example.App");
        assert_parsed(m, &o);

        assert_int_equal(o.lifetime, 600);
        assert_string_equal(o.description, "web server");
        assert_int_equal(o.family, AF_INET6);
        assert_string_equal(o.interface, "lo");
        assert_true(o.has_external_address);
        assert_true(pcp_addr_from_string("198.51.100.7", &a));
        assert_memory_equal(&o.external_address, &a, sizeof(a));
        assert_int_equal(o.suggested_port, 8080);
        assert_true(o.prefer_failure);
        assert_int_equal(o.n_filters, 2);
        assert_int_equal(o.filters[0].prefix_len, 96 + 24);
        assert_int_equal(o.filters[0].remote_port, 1000);
        assert_int_equal(o.filters[1].remote_port, 1001);
        assert_true(pcp_addr_from_string("192.0.2.0", &a));
        assert_memory_equal(&o.filters[1].remote_addr, &a, sizeof(a));
        assert_true(o.has_third_party);
        assert_true(pcp_addr_from_string("2001:db8::9", &a));
        assert_memory_equal(&o.third_party, &a, sizeof(a));
        assert_false(o.persistent);
        assert_string_equal(o.app_id, "org.example.App");
        assert_true(o.need_privileged); /* external-address, third-party */
        pcpd_options_clear(&o);
        assert_null(o.description);
        assert_null(o.interface);
        assert_null(o.app_id);
}

static void test_privileged(void **state) {
        static const struct {
                const char *name, *type;
                const char *s;
                int b;
                bool privileged;
        } cases[] = {
                { "external-address", "s", "192.0.2.1", 0, true },
                { "third-party", "s", "192.0.2.2", 0, true },
                { "persistent", "b", NULL, 1, true },
                { "persistent", "b", NULL, 0, false },
                { "description", "s", "x", 0, false },
                { "family", "s", "ipv4", 0, false },
                { "app-id", "s", "org.example.App", 0, false },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                pcpd_options o = { 0 };
                sd_bus_message *m = new_message();
                if (cases[i].type[0] == 's')
                        OPT(m, cases[i].name, "s", cases[i].s);
                else
                        OPT(m, cases[i].name, "b", cases[i].b);
                assert_parsed(m, &o);
                if (o.need_privileged != cases[i].privileged)
                        fail_msg("%s: need_privileged %d", cases[i].name, o.need_privileged);
                pcpd_options_clear(&o);
        }
}

static void test_lifetime(void **state) {
        static const struct {
                uint32_t given, kept;
        } cases[] = { { 0, 0 }, { 1, 120 }, { 119, 120 }, { 120, 120 }, { 121, 121 }, { UINT32_MAX, UINT32_MAX } };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                pcpd_options o = { 0 };
                sd_bus_message *m = new_message();
                OPT(m, "lifetime", "u", cases[i].given);
                assert_parsed(m, &o);
                assert_int_equal(o.lifetime, cases[i].kept);
        }
}

static void test_wrong_types(void **state) {
        pcpd_options o = { 0 };
        sd_bus_message *m;

        m = new_message();
        OPT(m, "lifetime", "s", "600");
        assert_refused(m, &o, "Option 'lifetime' must be of type 'u', not 's' ('600').");
        m = new_message();
        OPT(m, "description", "u", 7);
        assert_refused(m, &o, "Option 'description' must be of type 's', not 'u' (7).");
        m = new_message();
        OPT(m, "persistent", "s", "true");
        assert_refused(m, &o, "Option 'persistent' must be of type 'b', not 's' ('true').");
        m = new_message();
        OPT(m, "prefer-failure", "u", 1);
        assert_refused(m, &o, "Option 'prefer-failure' must be of type 'b', not 'u' (1).");
        m = new_message();
        OPT(m, "filters", "as", 1, "192.0.2.0/24");
        assert_refused(m, &o, "Option 'filters' must be of type 'a(sq)', not 'as'.");
        m = new_message();
        OPT(m, "family", "b", 1);
        assert_refused(m, &o, "Option 'family' must be of type 's', not 'b' (true).");
        /* a long string is cut in the message */
        {
                g_autofree char *big = g_strnfill(100, 'x');
                g_autofree char *want = g_strdup_printf("Option 'lifetime' must be of type 'u', not 's' ('%.64s...').", big);
                m = new_message();
                OPT(m, "lifetime", "s", big);
                assert_refused(m, &o, want);
        }
        /* a wrong type of an option given right before: nothing of it leaks */
        m = new_message();
        OPT(m, "description", "s", "first");
        OPT(m, "app-id", "u", 3);
        assert_refused(m, &o, "Option 'app-id' must be of type 's', not 'u' (3).");
        assert_null(o.description);
}

static void test_unknown(void **state) {
        pcpd_options o = { 0 };
        sd_bus_message *m = new_message();
        const char *known = "lifetime, description, family, interface, external-address, prefer-failure, filters, "
                            "third-party, persistent, app-id, suggested-external-port (AddMappingForSocket only)";
        g_autofree char *want = g_strdup_printf("Unknown option 'life-time'. Known: %s.", known);

        assert_string_equal(pcpd_options_known(), known);
        OPT(m, "life-time", "u", 600);
        assert_refused(m, &o, want);
        /* names are exact */
        m = new_message();
        OPT(m, "Lifetime", "u", 600);
        g_free(want);
        want = g_strdup_printf("Unknown option 'Lifetime'. Known: %s.", known);
        assert_refused(m, &o, want);
}

/* every option once: the most a dictionary may hold */
static void append_every_option(sd_bus_message *m) {
        OPT(m, "lifetime", "u", 600);
        OPT(m, "description", "s", "web server");
        OPT(m, "family", "s", "ipv4");
        OPT(m, "interface", "s", "lo");
        OPT(m, "external-address", "s", "198.51.100.7");
        OPT(m, "prefer-failure", "b", 1);
        append_filters(m, 2, "192.0.2.0/24");
        OPT(m, "third-party", "s", "192.0.2.9");
        OPT(m, "persistent", "b", 1);
        OPT(m, "app-id", "s", "org.example.App");
        OPT(m, "suggested-external-port", "q", 8080);
}

/* the number of options pcpd_options_known() lists */
static size_t n_known(void) {
        g_auto(GStrv) names = g_strsplit(pcpd_options_known(), ", ", -1);

        return g_strv_length(names);
}

static void test_twice(void **state) {
        static const char *const strings[][3] = {
                { "description", "first", "second" },
                { "app-id", "org.example.A", "org.example.B" },
                { "family", "ipv6", "ipv4" },
        };
        pcpd_options o = { 0 };
        sd_bus_message *m;

        /* the same value or another, right after or later: refused, nothing kept */
        for (size_t i = 0; i < G_N_ELEMENTS(strings); i++)
                for (int same = 0; same <= 1; same++) {
                        g_autofree char *want = g_strdup_printf("Option '%s' is given twice.", strings[i][0]);
                        m = new_message();
                        OPT(m, strings[i][0], "s", strings[i][1]);
                        OPT(m, "lifetime", "u", 600);
                        OPT(m, strings[i][0], "s", strings[i][same ? 1 : 2]);
                        assert_refused(m, &o, want);
                        assert_null(o.description);
                        assert_null(o.app_id);
                }
        m = new_message();
        OPT(m, "lifetime", "u", 600);
        OPT(m, "lifetime", "u", 900);
        assert_refused(m, &o, "Option 'lifetime' is given twice.");
        /* filters do not add up */
        m = new_message();
        append_filters(m, 3, "192.0.2.1");
        append_filters(m, 1, "2001:db8::/32");
        assert_refused(m, &o, "Option 'filters' is given twice.");
        /* persistent=true then false does not take the privilege back */
        m = new_message();
        OPT(m, "persistent", "b", 1);
        OPT(m, "persistent", "b", 0);
        assert_refused(m, &o, "Option 'persistent' is given twice.");
        /* a second one with a wrong type: the first one to be refused is its name */
        m = new_message();
        OPT(m, "lifetime", "u", 600);
        OPT(m, "lifetime", "s", "600");
        assert_refused(m, &o, "Option 'lifetime' is given twice.");
}

static void test_entries(void **state) {
        g_autofree char *too_many = g_strdup_printf("Too many options: there are %zu, each to be given at most once.",
                                                    n_known());
        pcpd_options o = { .for_socket = true };
        sd_bus_message *m;

        assert_int_equal(n_known(), 11);
        /* every known option once: taken */
        m = new_message();
        append_every_option(m);
        assert_parsed(m, &o);
        assert_int_equal(o.lifetime, 600);
        assert_string_equal(o.app_id, "org.example.App");
        assert_int_equal(o.suggested_port, 8080);
        assert_true(o.persistent);
        pcpd_options_clear(&o);

        /* one more: refused by the count, whatever it is */
        static const char *const more[] = { "lifetime", "suggested-external-port", "no-such-option" };
        for (size_t i = 0; i < G_N_ELEMENTS(more); i++) {
                m = new_message();
                append_every_option(m);
                OPT(m, more[i], "u", 900);
                assert_refused(m, &o, too_many);
                assert_null(o.description);
        }

        /* many entries of one option: refused at the second */
        m = new_message();
        for (int i = 0; i < 1000; i++)
                OPT(m, "lifetime", "u", 600);
        assert_refused(m, &o, "Option 'lifetime' is given twice.");
}

static void test_limits(void **state) {
        pcpd_options o = { 0 };
        g_autofree char *desc_max = g_strnfill(PCP1_MAX_DESCRIPTION, 'd');
        g_autofree char *desc_over = g_strnfill(PCP1_MAX_DESCRIPTION + 1, 'd');
        g_autofree char *app_max = g_strnfill(PCP1_MAX_APP_ID, 'a');
        g_autofree char *app_over = g_strnfill(PCP1_MAX_APP_ID + 1, 'a');
        g_autofree char *desc_msg = g_strdup_printf("Option 'description' is longer than %d bytes.", PCP1_MAX_DESCRIPTION);
        g_autofree char *app_msg = g_strdup_printf("Invalid app-id: it must be 1-%d bytes of UTF-8.", PCP1_MAX_APP_ID);
        sd_bus_message *m;

        m = new_message();
        OPT(m, "description", "s", desc_max);
        OPT(m, "app-id", "s", app_max);
        append_filters(m, 8, "10.0.0.0/8");
        assert_parsed(m, &o);
        assert_int_equal(strlen(o.description), PCP1_MAX_DESCRIPTION);
        assert_int_equal(strlen(o.app_id), PCP1_MAX_APP_ID);
        assert_int_equal(o.n_filters, 8);
        pcpd_options_clear(&o);

        m = new_message();
        OPT(m, "description", "s", desc_over);
        assert_refused(m, &o, desc_msg);
        m = new_message();
        OPT(m, "app-id", "s", app_over);
        assert_refused(m, &o, app_msg);
        m = new_message();
        OPT(m, "app-id", "s", "");
        assert_refused(m, &o, app_msg);
        m = new_message();
        append_filters(m, 9, "10.0.0.0/8");
        assert_refused(m, &o, "At most 8 filters are allowed.");
        /* a multi-byte description is counted in bytes */
        {
                GString *s = g_string_new(NULL);
                for (int i = 0; i < PCP1_MAX_DESCRIPTION / 2 + 1; i++)
                        g_string_append(s, "\xc3\xa9"); /* é */
                m = new_message();
                OPT(m, "description", "s", s->str);
                assert_refused(m, &o, desc_msg);
                g_string_free(s, TRUE);
        }
}

/* A description other users are shown as one line: no control character (C0, C1), line
 * break or bidirectional embedding/override/isolate; refused with InvalidArgs naming the
 * character and its position, and nothing of it kept. */
static void test_description_characters(void **state) {
        static const struct {
                const char *value;
                const char *what;
                uint32_t c;
                size_t pos;
        } refused[] = {
                { "a\tb", "a control character", 0x09, 2 },
                { "\x01", "a control character", 0x01, 1 },
                { "\x1b[31mred", "a control character", 0x1b, 1 },
                { "x\x1f", "a control character", 0x1f, 2 },
                { "del\x7f", "a control character", 0x7f, 4 },
                { "c1 \xc2\x80", "a control character", 0x80, 4 },
                { "csi\xc2\x9b" "31m", "a control character", 0x9b, 4 },
                { "c1 \xc2\x9f", "a control character", 0x9f, 4 },
                { "line\nbreak", "a line break", 0x0a, 5 },
                { "\x0b", "a line break", 0x0b, 1 },
                { "\x0c", "a line break", 0x0c, 1 },
                { "cr\r", "a line break", 0x0d, 3 },
                { "nel\xc2\x85", "a line break", 0x85, 4 },
                { "ls\xe2\x80\xa8", "a line break", 0x2028, 3 },
                { "ps\xe2\x80\xa9", "a line break", 0x2029, 3 },
                { "\xe2\x80\xaa", "a bidirectional formatting character", 0x202a, 1 }, /* LRE */
                { "\xe2\x80\xab", "a bidirectional formatting character", 0x202b, 1 }, /* RLE */
                { "\xe2\x80\xac", "a bidirectional formatting character", 0x202c, 1 }, /* PDF */
                { "\xe2\x80\xad", "a bidirectional formatting character", 0x202d, 1 }, /* LRO */
                /* "web " RLO "txt.exe": shown as "web exe.txt"; é is one character */
                { "w\xc3\xa9" "b \xe2\x80\xae" "txt.exe", "a bidirectional formatting character", 0x202e, 5 },
                { "\xe2\x81\xa6", "a bidirectional formatting character", 0x2066, 1 }, /* LRI */
                { "\xe2\x81\xa7", "a bidirectional formatting character", 0x2067, 1 }, /* RLI */
                { "\xe2\x81\xa8", "a bidirectional formatting character", 0x2068, 1 }, /* FSI */
                { "\xe2\x81\xa9", "a bidirectional formatting character", 0x2069, 1 }, /* PDI */
                /* the first one is named */
                { "ok \xe2\x81\xa6\n", "a bidirectional formatting character", 0x2066, 4 },
        };
        /* just outside each range, and text in right-to-left scripts: kept as given */
        static const char *const kept[] = {
                " ~",
                "\xc2\xa0 nbsp",                              /* U+00A0 */
                "\xe2\x80\x8e\xe2\x80\x8f marks",             /* U+200E LRM, U+200F RLM */
                "\xe2\x80\xa7\xe2\x80\xaf",                   /* U+2027, U+202F */
                "\xe2\x81\xa5\xe2\x81\xaa",                   /* U+2065, U+206A */
                "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", /* Hebrew, Arabic */
                "caf\xc3\xa9 \xf0\x9f\x98\x80",               /* é, U+1F600 */
        };

        for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
                g_autofree char *want = g_strdup_printf(
                        "Option 'description' has %s, U+%04" PRIX32 ", at character %zu: a description is one line "
                        "of text, without control characters, line breaks or bidirectional formatting characters.",
                        refused[i].what, refused[i].c, refused[i].pos);
                pcpd_options o = { 0 };
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *m = new_message();
                uint32_t c = 0;
                size_t pos = 0;

                OPT(m, "description", "s", refused[i].value);
                assert_true(parse(m, &o, &error) < 0);
                assert_string_equal(error.name, SD_BUS_ERROR_INVALID_ARGS);
                assert_string_equal(error.message, want);
                assert_null(o.description);
                sd_bus_error_free(&error);
                pcpd_options_clear(&o);
                /* the same answer from the check alone (for other callers) */
                assert_string_equal(pcpd_description_refused(refused[i].value, &c, &pos), refused[i].what);
                assert_int_equal(c, refused[i].c);
                assert_int_equal(pos, refused[i].pos);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(kept); i++) {
                pcpd_options o = { 0 };
                sd_bus_message *m = new_message();
                uint32_t c = 0;
                size_t pos = 0;

                OPT(m, "description", "s", kept[i]);
                assert_parsed(m, &o);
                assert_string_equal(o.description, kept[i]);
                pcpd_options_clear(&o);
                assert_null(pcpd_description_refused(kept[i], &c, &pos));
        }
}

static void test_bad_values(void **state) {
        static const struct {
                const char *name, *value, *message;
        } cases[] = {
                { "family", "IPv4", "Invalid family 'IPv4': use ipv4 or ipv6." },
                { "family", "", "Invalid family '': use ipv4 or ipv6." },
                { "interface", "", "Invalid interface name ''." },
                { "interface", "0123456789abcdef", "Invalid interface name '0123456789abcdef'." },
                { "interface", "a/b", "Invalid interface name 'a/b'." },
                { "interface", "nosuchif9x", "No such interface 'nosuchif9x'." },
                { "external-address", "192.0.2", "Invalid external-address '192.0.2'." },
                { "third-party", "::", "Invalid third-party address '::'." },
                { "third-party", "0.0.0.0", "Invalid third-party address '0.0.0.0'." },
                { "third-party", "host.example", "Invalid third-party address 'host.example'." },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                pcpd_options o = { 0 };
                sd_bus_message *m = new_message();
                OPT(m, cases[i].name, "s", cases[i].value);
                assert_refused(m, &o, cases[i].message);
                assert_false(o.need_privileged);
        }
        /* a bad filter */
        {
                pcpd_options o = { 0 };
                sd_bus_message *m = new_message();
                append_filters(m, 1, "192.0.2.0/0");
                assert_refused(m, &o,
                               "Invalid filter '192.0.2.0/0': use an address with an optional prefix length "
                               "(192.0.2.0/24, 2001:db8::/32).");
        }
        /* a filter string is bounded before it is read: leading zeros in the prefix length
         * are taken (the longest address with them), not without end */
        {
                static const char longest[] = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/000000000000000128";
                g_autofree char *zeros = g_strnfill(1000000, '0');
                g_autofree char *endless = g_strconcat("192.0.2.0/", zeros, "24", NULL);
                g_autofree char *want = g_strdup_printf("Invalid filter: longer than %d bytes (use an address with "
                                                        "an optional prefix length: 192.0.2.0/24, 2001:db8::/32).",
                                                        PCPD_OPTIONS_MAX_FILTER_LEN);
                pcpd_options o = { 0 };
                sd_bus_message *m = new_message();

                assert_int_equal(strlen(longest), PCPD_OPTIONS_MAX_FILTER_LEN);
                append_filters(m, 1, longest);
                assert_parsed(m, &o);
                assert_int_equal(o.n_filters, 1);
                assert_int_equal(o.filters[0].prefix_len, 128);
                pcpd_options_clear(&o);
                o = (pcpd_options) { 0 };
                m = new_message();
                append_filters(m, 1, endless);
                assert_refused(m, &o, want);
                assert_int_equal(o.n_filters, 0);
        }
}

/* AddPeer takes the options that apply to a flow and refuses the others (they were taken
 * and ignored: a caller believed its PEER mapping persistent, say); AddMapping takes them */
static void test_peer_options(void **state) {
        static const char *const refused[] = { "external-address", "prefer-failure", "filters", "persistent" };
        pcpd_options o;
        sd_bus_message *m;

        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                g_autofree char *want =
                        g_strdup_printf("Option '%s' is not for AddPeer(); it takes lifetime, description, family, "
                                        "interface, third-party and app-id.",
                                        refused[i]);

                for (int peer = 0; peer < 2; peer++) {
                        o = (pcpd_options) { .peer = peer };
                        m = new_message();
                        if (strcmp(refused[i], "external-address") == 0)
                                OPT(m, "external-address", "s", "198.51.100.7");
                        else if (strcmp(refused[i], "prefer-failure") == 0)
                                OPT(m, "prefer-failure", "b", false); /* false: no port needed */
                        else if (strcmp(refused[i], "filters") == 0)
                                append_filters(m, 1, "192.0.2.0/24");
                        else
                                OPT(m, "persistent", "b", true);
                        if (peer)
                                assert_refused(m, &o, want);
                        else {
                                assert_parsed(m, &o);
                                pcpd_options_clear(&o);
                        }
                }
        }
        /* what applies to a flow */
        o = (pcpd_options) { .peer = true };
        m = new_message();
        OPT(m, "lifetime", "u", 600);
        OPT(m, "description", "s", "call");
        OPT(m, "family", "s", "ipv4");
        OPT(m, "interface", "s", "eth0");
        OPT(m, "third-party", "s", "192.0.2.9");
        OPT(m, "app-id", "s", "org.example.Call");
        assert_parsed(m, &o);
        assert_int_equal(o.lifetime, 600);
        assert_string_equal(o.description, "call");
        assert_string_equal(o.interface, "eth0");
        assert_string_equal(o.app_id, "org.example.Call");
        assert_true(o.has_third_party);
        assert_true(o.need_privileged);
        pcpd_options_clear(&o);
}

static void test_suggested_port(void **state) {
        pcpd_options o = { 0 };
        sd_bus_message *m;

        m = new_message();
        OPT(m, "suggested-external-port", "q", 8080);
        assert_refused(m, &o,
                       "Option 'suggested-external-port' is for AddMappingForSocket() only; AddMapping() takes it as "
                       "its third argument.");
        o = (pcpd_options) { .peer = true };
        m = new_message();
        OPT(m, "suggested-external-port", "q", 8080);
        assert_refused(m, &o,
                       "Option 'suggested-external-port' is for AddMappingForSocket() only; AddPeer() takes no "
                       "suggested external port.");
        /* not for a socket, the option's type does not matter: refused all the same */
        o = (pcpd_options) { 0 };
        m = new_message();
        OPT(m, "suggested-external-port", "s", "8080");
        assert_refused(m, &o,
                       "Option 'suggested-external-port' is for AddMappingForSocket() only; AddMapping() takes it as "
                       "its third argument.");
        /* for a socket */
        o = (pcpd_options) { .for_socket = true };
        m = new_message();
        OPT(m, "suggested-external-port", "q", 8080);
        assert_parsed(m, &o);
        assert_int_equal(o.suggested_port, 8080);
        o = (pcpd_options) { .for_socket = true };
        m = new_message();
        OPT(m, "suggested-external-port", "u", 8080);
        assert_refused(m, &o, "Option 'suggested-external-port' must be of type 'q', not 'u' (8080).");

        /* prefer-failure needs a port: the call's own argument, or the option */
        o = (pcpd_options) { 0 };
        m = new_message();
        OPT(m, "prefer-failure", "b", 1);
        assert_refused(m, &o, "Option 'prefer-failure' needs a suggested external port.");
        o = (pcpd_options) { .suggested_port = 5000 };
        m = new_message();
        OPT(m, "prefer-failure", "b", 1);
        assert_parsed(m, &o);
        assert_true(o.prefer_failure);
        assert_int_equal(o.suggested_port, 5000);
        o = (pcpd_options) { 0 };
        m = new_message();
        OPT(m, "prefer-failure", "b", 0);
        assert_parsed(m, &o);
        assert_false(o.prefer_failure);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_none),        cmocka_unit_test(test_every_option), cmocka_unit_test(test_privileged),
                cmocka_unit_test(test_lifetime),    cmocka_unit_test(test_wrong_types),  cmocka_unit_test(test_unknown),
                cmocka_unit_test(test_twice),       cmocka_unit_test(test_entries),      cmocka_unit_test(test_limits),       cmocka_unit_test(test_bad_values),
                cmocka_unit_test(test_peer_options),
                cmocka_unit_test(test_suggested_port),
                cmocka_unit_test(test_description_characters),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
