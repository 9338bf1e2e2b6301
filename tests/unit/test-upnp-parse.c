/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What pcpd-upnp takes from SSDP and from an IGD's answers (pcpd-upnp-parse.c, pure): the
 * external addresses it accepts (the PCP / NAT-PMP engine's rules), the USN and service
 * type forms it accepts, and the token bucket that bounds new SSDP LOCATIONs. Registered
 * in tests/upnp/meson.build (suite "unit"): it tests only the UPnP parser. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>

#include "pcpd-upnp-parse.h"

static struct in6_addr v4(const char *s) {
        struct in6_addr a;

        assert_int_equal(pcpd_upnp_parse_ipv4(s, &a), 0);
        return a;
}

/* the engine's addr_is_unusable() (pcp-engine.c) refuses these for PCP and NAT-PMP: UPnP
 * must too (169.254.0.0/16 was accepted by UPnP only) */
static void test_external_unusable(void **state) {
        static const char *const bad[] = { "0.0.0.0", "0.1.2.3", "127.0.0.1", "169.254.0.0", "169.254.0.1",
                                           "169.254.77.1", "169.254.255.255", "224.0.0.1", "239.255.255.250",
                                           "255.255.255.255" };
        (void) state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct in6_addr a = v4(bad[i]);

                if (pcpd_upnp_external_addr_ok(&a))
                        fail_msg("external address %s accepted", bad[i]);
        }
}

/* private, shared (carrier-grade NAT), documentation addresses: usable, as in the engine */
static void test_external_usable(void **state) {
        static const char *const good[] = { "10.0.0.1", "100.64.0.1", "172.16.1.1", "192.168.1.1", "192.0.2.1",
                                            "198.51.100.7", "203.0.113.9", "169.253.255.255", "169.255.0.1",
                                            "8.8.8.8", "223.255.255.254" };
        (void) state;
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                struct in6_addr a = v4(good[i]);

                if (!pcpd_upnp_external_addr_ok(&a))
                        fail_msg("external address %s refused", good[i]);
        }
        /* an IPv6 address is never an IGD's external IPv4 address */
        struct in6_addr a6;
        assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &a6), 1);
        assert_false(pcpd_upnp_external_addr_ok(&a6));
}

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
                cmocka_unit_test(test_external_unusable),
                cmocka_unit_test(test_external_usable),
                cmocka_unit_test(test_service_types),
                cmocka_unit_test(test_udn),
                cmocka_unit_test(test_usn),
                cmocka_unit_test(test_bucket),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
