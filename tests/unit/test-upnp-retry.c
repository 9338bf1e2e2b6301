/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The UPnP-IGD wiring's schedule for a permanent mapping's delete the IGD did not confirm
 * (pcpd-upnp-backend.c): the back-off between tries, where it stops, and the warning that
 * says what to delete by hand. Pure functions, no IGD, no main loop. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <glib.h>
#include <netinet/in.h>
#include <string.h>

#include "pcp-wire.h"
#include "pcpd-upnp.h"

/* the documented schedule (man/pcpd.8): 1, 2, 4, 8, 16 minutes, then given up */
static void test_schedule(void **state) {
        static const uint32_t want[] = { 60, 120, 240, 480, 960 };
        uint32_t delay;

        (void) state;
        assert_int_equal(PCPD_UPNP_DELETE_RETRIES, G_N_ELEMENTS(want));
        for (unsigned tries = 0; tries < G_N_ELEMENTS(want); tries++) {
                delay = 0;
                assert_true(pcpd_upnp_delete_next_try(tries, &delay));
                assert_int_equal(delay, want[tries]);
        }
}

/* each delay doubles the one before, starting at the first */
static void test_doubling(void **state) {
        uint32_t prev = 0, delay;

        (void) state;
        for (unsigned tries = 0; pcpd_upnp_delete_next_try(tries, &delay); tries++) {
                if (tries == 0)
                        assert_int_equal(delay, PCPD_UPNP_DELETE_RETRY_FIRST_S);
                else
                        assert_int_equal(delay, prev * 2);
                prev = delay;
        }
        assert_int_equal(prev, PCPD_UPNP_DELETE_RETRY_FIRST_S << (PCPD_UPNP_DELETE_RETRIES - 1));
}

/* the cap: after PCPD_UPNP_DELETE_RETRIES tries again it is given up, also for any count
 * beyond (the -EINVAL path sets the count to the cap), and the delay is left alone */
static void test_cap(void **state) {
        static const unsigned beyond[] = { PCPD_UPNP_DELETE_RETRIES, PCPD_UPNP_DELETE_RETRIES + 1, 31, 32, 64,
                                           1000, UINT32_MAX };
        unsigned n = 0;
        uint32_t delay;

        (void) state;
        for (unsigned tries = 0; tries < 100; tries++)
                if (pcpd_upnp_delete_next_try(tries, &delay))
                        n++;
        assert_int_equal(n, PCPD_UPNP_DELETE_RETRIES);
        for (size_t i = 0; i < G_N_ELEMENTS(beyond); i++) {
                delay = 12345;
                assert_false(pcpd_upnp_delete_next_try(beyond[i], &delay));
                assert_int_equal(delay, 12345);
        }
}

/* about half an hour in all: bounded, and never shorter than a minute between tries */
static void test_total(void **state) {
        uint64_t total = 0;
        uint32_t delay;

        (void) state;
        for (unsigned tries = 0; pcpd_upnp_delete_next_try(tries, &delay); tries++) {
                assert_true(delay >= 60);
                total += delay;
        }
        assert_int_equal(total, 31 * 60);
}

static pcpd_upnp_record record(const char *igd, const char *internal, uint8_t protocol, uint16_t ext,
                               uint16_t in_port) {
        pcpd_upnp_record r = { .protocol = protocol, .external_port = ext, .internal_port = in_port,
                               .permanent = true };

        assert_true(pcp_addr_from_string(igd, &r.igd_addr));
        assert_true(pcp_addr_from_string(internal, &r.internal_addr));
        return r;
}

/* the warning names the IGD, the interface, the protocol, the external port and the
 * internal client, and how many tries were made (the first one and the tries again) */
static void test_warning(void **state) {
        pcpd_upnp_record r = record("192.168.77.1", "192.168.77.2", IPPROTO_TCP, 4720, 4721);
        g_autofree char *m = pcpd_upnp_delete_given_up_message("veth-c", &r, PCPD_UPNP_DELETE_RETRIES);
        g_autofree char *tries = g_strdup_printf("after %u tries", PCPD_UPNP_DELETE_RETRIES + 1);

        (void) state;
        assert_non_null(strstr(m, "UPnP-IGD at 192.168.77.1 on veth-c"));
        assert_non_null(strstr(m, "tcp external port 4720"));
        assert_non_null(strstr(m, "to 192.168.77.2 port 4721"));
        assert_non_null(strstr(m, tries));
        assert_non_null(strstr(m, "next start"));
}

/* another record: nothing of the first one is kept or hard-wired */
static void test_warning_udp(void **state) {
        pcpd_upnp_record r = record("10.0.0.1", "10.0.0.77", IPPROTO_UDP, 65535, 1);
        g_autofree char *m = pcpd_upnp_delete_given_up_message("wlan0", &r, 0);

        (void) state;
        assert_non_null(strstr(m, "UPnP-IGD at 10.0.0.1 on wlan0"));
        assert_non_null(strstr(m, "udp external port 65535"));
        assert_non_null(strstr(m, "to 10.0.0.77 port 1"));
        assert_non_null(strstr(m, "after 1 tries"));
        assert_null(strstr(m, "192.168.77"));
        assert_null(strstr(m, "tcp"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_schedule), cmocka_unit_test(test_doubling), cmocka_unit_test(test_cap),
                cmocka_unit_test(test_total),    cmocka_unit_test(test_warning),  cmocka_unit_test(test_warning_udp),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
