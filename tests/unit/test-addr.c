/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The prefix text form of the D-Bus "filters" option (pcpd-addr.c): what it accepts, what
 * it refuses, and that what it writes it reads back. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "pcpd-addr.h"

static void expect(const char *s, const char *addr, unsigned len) {
        struct in6_addr a, want;
        uint8_t l = 0;
        char buf[PCPD_PREFIX_STRLEN], again[PCPD_PREFIX_STRLEN];

        if (pcpd_prefix_from_string(s, &a, &l) < 0)
                fail_msg("'%s' refused", s);
        assert_true(pcp_addr_from_string(addr, &want));
        assert_memory_equal(&a, &want, sizeof(a));
        assert_int_equal(l, len);
        /* written and read again */
        pcpd_prefix_to_string(&a, l, buf);
        assert_int_equal(pcpd_prefix_from_string(buf, &a, &l), 0);
        assert_memory_equal(&a, &want, sizeof(a));
        assert_int_equal(l, len);
        assert_string_equal(pcpd_prefix_to_string(&a, l, again), buf);
}

static void test_good(void **state) {
        expect("192.0.2.0/24", "192.0.2.0", 96 + 24);
        expect("198.18.0.0/15", "198.18.0.0", 96 + 15);
        expect("192.0.2.7", "192.0.2.7", 128);     /* an address alone: all its bits */
        expect("192.0.2.7/32", "192.0.2.7", 128);
        expect("192.0.2.0/1", "192.0.2.0", 97);
        expect("2001:db8::/32", "2001:db8::", 32);
        expect("2a00::/16", "2a00::", 16);
        expect("2001:db8::1", "2001:db8::1", 128);
        expect("::/1", "::", 1);
        expect("::ffff:192.0.2.0/24", "192.0.2.0", 96 + 24); /* IPv4-mapped is IPv4 */
        expect("192.0.2.0/024", "192.0.2.0", 96 + 24);       /* leading zeros are digits */
}

static void test_bad(void **state) {
        static const char *const bad[] = {
                "", "/24", "192.0.2.0/", "192.0.2.0/0", "2001:db8::/0", "192.0.2.0/33", "2001:db8::/129",
                "::ffff:192.0.2.0/120", "192.0.2.0/-8", "192.0.2.0/+8", "192.0.2.0/ 8", "192.0.2.0/8 ",
                " 192.0.2.0/8", "192.0.2.0/8/8", "192.0.2.0/0x8", "192.0.2.0/99999999999999999999",
                "not-an-address/8", "192.0.2/24", "2001:db8::%1/64", "fe80::1%eth0",
                "2001:0db8:0000:0000:0000:0000:0000:0000:0/64",
        };
        struct in6_addr a;
        uint8_t l;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (pcpd_prefix_from_string(bad[i], &a, &l) != -EINVAL)
                        fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(pcpd_prefix_from_string(NULL, &a, &l), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good),
                cmocka_unit_test(test_bad),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
