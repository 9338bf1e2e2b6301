/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What pcpd-upnp takes from SSDP (pcpd-upnp-parse.c, pure): the USN and service type
 * forms it accepts, and the token bucket that bounds new SSDP LOCATIONs. Registered
 * in tests/upnp/meson.build (suite "unit"): it tests only the UPnP parser. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "pcpd-upnp-parse.h"

static void test_service_types(void **state) {
        static const struct {
                const char *type;
                pcpd_upnp_service_kind kind;
        } cases[] = {
                { "urn:schemas-upnp-org:service:WANIPConnection:1", PCPD_UPNP_SERVICE_WANIP },
                { "urn:schemas-upnp-org:service:WANIPConnection:2", PCPD_UPNP_SERVICE_WANIP },
                { "urn:schemas-upnp-org:service:WANIPConnection:123", PCPD_UPNP_SERVICE_WANIP },
                { "urn:schemas-upnp-org:service:WANPPPConnection:1", PCPD_UPNP_SERVICE_WANPPP },
                { "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1", PCPD_UPNP_SERVICE_IPV6FC },
                /* what the review's IGD sent: the type, then terminal escapes */
                { "urn:schemas-upnp-org:service:WANIPConnection:1\x1b[31mINJECTED\x1b[0m", PCPD_UPNP_SERVICE_NONE },
                { "urn:schemas-upnp-org:service:WANIPConnection:1\n", PCPD_UPNP_SERVICE_NONE },
                { "urn:schemas-upnp-org:service:WANIPConnection:1 ", PCPD_UPNP_SERVICE_NONE },
                { "urn:schemas-upnp-org:service:WANIPConnection:", PCPD_UPNP_SERVICE_NONE },
                { "urn:schemas-upnp-org:service:WANIPConnection:01", PCPD_UPNP_SERVICE_NONE },
                { "urn:schemas-upnp-org:service:WANIPConnection:1234", PCPD_UPNP_SERVICE_NONE },
                { "urn:schemas-upnp-org:service:WANIPConnection:x", PCPD_UPNP_SERVICE_NONE },
                { "urn:schemas-upnp-org:service:WANIPConnectionX:1", PCPD_UPNP_SERVICE_NONE },
                { "urn:schemas-upnp-org:service:Layer3Forwarding:1", PCPD_UPNP_SERVICE_NONE },
                { "urn:schemas-upnp-org:device:WANIPConnection:1", PCPD_UPNP_SERVICE_NONE },
                { "URN:schemas-upnp-org:service:WANIPConnection:1", PCPD_UPNP_SERVICE_NONE },
                { "upnp:rootdevice", PCPD_UPNP_SERVICE_NONE },
                { "", PCPD_UPNP_SERVICE_NONE },
                { NULL, PCPD_UPNP_SERVICE_NONE },
        };
        (void) state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                if (pcpd_upnp_service_type_kind(cases[i].type) != cases[i].kind)
                        fail_msg("service type %zu (%s): kind %d, want %d", i, cases[i].type ? cases[i].type : "NULL",
                                 (int) pcpd_upnp_service_type_kind(cases[i].type), (int) cases[i].kind);
}

static void test_udn(void **state) {
        char longest[PCPD_UPNP_MAX_FIELD + 2];

        (void) state;
        assert_true(pcpd_upnp_udn_ok("uuid:6d6366f9-43b0-4bd5-9915-6d3eadcf1511-2", 42));
        assert_false(pcpd_upnp_udn_ok("uuid:", 5));
        assert_false(pcpd_upnp_udn_ok("UUID:x", 6));
        assert_false(pcpd_upnp_udn_ok("uuid:a\x1b[31mb", 12));
        assert_false(pcpd_upnp_udn_ok("uuid:a b", 8));
        assert_false(pcpd_upnp_udn_ok("uuid:a\x7f", 7));
        assert_false(pcpd_upnp_udn_ok("uuid:a\xc3\xa9", 8));
        assert_false(pcpd_upnp_udn_ok("uuid:a::b", 9));
        memset(longest, 'a', sizeof(longest));
        memcpy(longest, "uuid:", 5);
        assert_true(pcpd_upnp_udn_ok(longest, PCPD_UPNP_MAX_FIELD));
        assert_false(pcpd_upnp_udn_ok(longest, PCPD_UPNP_MAX_FIELD + 1));
}

static void test_usn(void **state) {
        const char *type = NULL;
        size_t len = 0;
        const char *ok = "uuid:6d6366f9-2::urn:schemas-upnp-org:service:WANIPConnection:1";

        (void) state;
        assert_int_equal(pcpd_upnp_parse_usn(ok, &len, &type), PCPD_UPNP_SERVICE_WANIP);
        assert_int_equal(len, strlen("uuid:6d6366f9-2"));
        assert_string_equal(type, "urn:schemas-upnp-org:service:WANIPConnection:1");
        assert_int_equal(pcpd_upnp_parse_usn("uuid:x::urn:schemas-upnp-org:service:WANIPv6FirewallControl:1", NULL,
                                             NULL),
                         PCPD_UPNP_SERVICE_IPV6FC);
        /* the review's USN: a service type with terminal escapes after it */
        assert_int_equal(pcpd_upnp_parse_usn("uuid:6d6366f9-2::urn:schemas-upnp-org:service:WANIPConnection:1"
                                             "\x1b[31mINJECTED\x1b[0m",
                                             &len, &type),
                         PCPD_UPNP_SERVICE_NONE);
        assert_int_equal(pcpd_upnp_parse_usn("uuid:a\x1b]0;x\x07::urn:schemas-upnp-org:service:WANIPConnection:1", NULL,
                                             NULL),
                         PCPD_UPNP_SERVICE_NONE);
        assert_int_equal(pcpd_upnp_parse_usn("uuid:a", NULL, NULL), PCPD_UPNP_SERVICE_NONE);
        assert_int_equal(pcpd_upnp_parse_usn("uuid:a::upnp:rootdevice", NULL, NULL), PCPD_UPNP_SERVICE_NONE);
        assert_int_equal(pcpd_upnp_parse_usn("uuid:a::b::urn:schemas-upnp-org:service:WANIPConnection:1", NULL, NULL),
                         PCPD_UPNP_SERVICE_NONE);
        assert_int_equal(pcpd_upnp_parse_usn("::urn:schemas-upnp-org:service:WANIPConnection:1", NULL, NULL),
                         PCPD_UPNP_SERVICE_NONE);
        assert_int_equal(pcpd_upnp_parse_usn(NULL, NULL, NULL), PCPD_UPNP_SERVICE_NONE);
}

#define S 1000000ull

/* a burst, then one per interval; tokens do not pile up beyond the burst */
static void test_bucket(void **state) {
        pcpd_upnp_bucket b = {};
        uint64_t t = 1000 * S;
        unsigned n = 0;

        (void) state;
        for (int i = 0; i < 1000; i++)
                n += pcpd_upnp_bucket_take(&b, t, 4, 30 * S);
        assert_int_equal(n, 4);
        assert_false(pcpd_upnp_bucket_take(&b, t + 29 * S, 4, 30 * S));
        assert_true(pcpd_upnp_bucket_take(&b, t + 30 * S, 4, 30 * S));
        assert_false(pcpd_upnp_bucket_take(&b, t + 30 * S, 4, 30 * S));
        /* over an hour of one take a second: burst + 3600 / 30 */
        n = 0;
        for (uint64_t s = 31; s <= 3631; s++)
                n += pcpd_upnp_bucket_take(&b, t + s * S, 4, 30 * S);
        assert_int_equal(n, 120);
        /* idle for a day: the burst again, not more */
        t += 90000 * S;
        n = 0;
        for (int i = 0; i < 100; i++)
                n += pcpd_upnp_bucket_take(&b, t, 4, 30 * S);
        assert_int_equal(n, 4);
        /* full, a token taken: the next one comes a whole interval later */
        t += 3600 * S;
        assert_true(pcpd_upnp_bucket_take(&b, t, 1, 30 * S));
        assert_false(pcpd_upnp_bucket_take(&b, t + 29 * S, 1, 30 * S));
        assert_true(pcpd_upnp_bucket_take(&b, t + 30 * S, 1, 30 * S));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_service_types),
                cmocka_unit_test(test_udn),
                cmocka_unit_test(test_usn),
                cmocka_unit_test(test_bucket),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
