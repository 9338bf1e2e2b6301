/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The UPnP-IGD wiring's schedule for a permanent mapping's delete the IGD did not confirm
 * (pcpd-upnp-backend.c): the back-off between tries, where it stops, and the warning that
 * says what to delete by hand. Pure functions, no IGD, no main loop. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
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

/* UpnpDeleteRetrySeconds=: the same doubling and cap from another first wait; the default
 * is the one above */
static void test_schedule_from(void **state) {
        static const uint32_t firsts[] = { 1, 7, 3600 };
        uint32_t delay, want;

        (void) state;
        for (size_t i = 0; i < G_N_ELEMENTS(firsts); i++) {
                unsigned tries;
                for (tries = 0; pcpd_upnp_delete_next_try_from(tries, firsts[i], &delay); tries++)
                        assert_int_equal(delay, firsts[i] << tries);
                assert_int_equal(tries, PCPD_UPNP_DELETE_RETRIES);
        }
        for (unsigned tries = 0; pcpd_upnp_delete_next_try(tries, &want); tries++) {
                assert_true(pcpd_upnp_delete_next_try_from(tries, PCPD_UPNP_DELETE_RETRY_FIRST_S, &delay));
                assert_int_equal(delay, want);
                assert_true(pcpd_upnp_delete_next_try_from(tries, 0, &delay)); /* 0: the default */
                assert_int_equal(delay, want);
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
        if (internal != NULL)
                assert_true(pcp_addr_from_string(internal, &r.internal_addr));
        return r;
}

static pcpd_upnp_delete_state state(unsigned tries, unsigned sent, pcpd_upnp_delete_failure why, int error) {
        return (pcpd_upnp_delete_state) { .tries = tries, .sent = sent, .why = why, .error = error };
}

/* "after N tries" with N the tries made (1: "after 1 try") */
static void assert_tries(const char *m, unsigned n) {
        g_autofree char *want = g_strdup_printf("after %u %s", n, n == 1 ? "try" : "tries");
        g_autofree char *cap = g_strdup_printf("after %u tries", PCPD_UPNP_DELETE_RETRIES + 1);

        if (strstr(m, want) == NULL)
                fail_msg("expected \"%s\" in: %s", want, m);
        if (n != PCPD_UPNP_DELETE_RETRIES + 1 && strstr(m, cap) != NULL)
                fail_msg("expected no \"%s\" (%u made) in: %s", cap, n, m);
}

/* no address made up from an empty one: no "::", no "0.0.0.0" */
static void assert_no_fake_address(const char *m) {
        if (strstr(m, "::") != NULL || strstr(m, "0.0.0.0") != NULL)
                fail_msg("expected no empty address printed in: %s", m);
}

/* the warning names the IGD, the interface, the protocol, the external port and the
 * internal client, and how many tries were made (the first one and the tries again) */
static void test_warning(void **state_) {
        pcpd_upnp_record r = record("192.168.77.1", "192.168.77.2", IPPROTO_TCP, 4720, 4721);
        pcpd_upnp_delete_state st = state(PCPD_UPNP_DELETE_RETRIES, PCPD_UPNP_DELETE_RETRIES + 1,
                                          PCPD_UPNP_DELETE_UNCONFIRMED, 0);
        g_autofree char *m = pcpd_upnp_delete_given_up_message("veth-c", &r, &st);

        (void) state_;
        assert_non_null(strstr(m, "UPnP-IGD at 192.168.77.1 on veth-c did not confirm the delete"));
        assert_non_null(strstr(m, "tcp external port 4720"));
        assert_non_null(strstr(m, "to 192.168.77.2 port 4721"));
        assert_tries(m, PCPD_UPNP_DELETE_RETRIES + 1);
        assert_null(strstr(m, "could be sent")); /* every one was */
        assert_non_null(strstr(m, "next start"));
        assert_non_null(strstr(m, "delete that port mapping on the router"));
}

/* another record: nothing of the first one is kept or hard-wired */
static void test_warning_udp(void **state_) {
        pcpd_upnp_record r = record("10.0.0.1", "10.0.0.77", IPPROTO_UDP, 65535, 1);
        pcpd_upnp_delete_state st = state(0, 1, PCPD_UPNP_DELETE_UNCONFIRMED, 0);
        g_autofree char *m = pcpd_upnp_delete_given_up_message("wlan0", &r, &st);

        (void) state_;
        assert_non_null(strstr(m, "UPnP-IGD at 10.0.0.1 on wlan0"));
        assert_non_null(strstr(m, "udp external port 65535"));
        assert_non_null(strstr(m, "to 10.0.0.77 port 1"));
        assert_tries(m, 1);
        assert_null(strstr(m, "192.168.77"));
        assert_null(strstr(m, "tcp"));
}

/* a record no IGD entry can match (pcpd_upnp_remove_record's -EINVAL) is not tried again:
 * given up at once, and the warning counts the tries made, not the cap, and says why */
static void test_invalid_given_up_at_once(void **state_) {
        pcpd_upnp_record r = record("192.168.77.1", "192.168.77.2", IPPROTO_TCP, 0, 4741);
        uint32_t delay = 12345;

        (void) state_;
        for (unsigned tries = 0; tries < PCPD_UPNP_DELETE_RETRIES; tries++) {
                pcpd_upnp_delete_state st = state(tries, tries, PCPD_UPNP_DELETE_INVALID, EINVAL);
                g_autofree char *m = NULL;

                assert_false(pcpd_upnp_delete_retry(&st, PCPD_UPNP_DELETE_RETRY_FIRST_S, &delay));
                assert_false(pcpd_upnp_delete_retry(&st, 1, &delay));
                assert_int_equal(delay, 12345);
                m = pcpd_upnp_delete_given_up_message("c0", &r, &st);
                assert_tries(m, tries + 1);
                assert_non_null(strstr(m, "external port 0"));      /* why */
                assert_non_null(strstr(m, "not tried again"));      /* what it did */
                assert_null(strstr(m, "did not confirm"));          /* no IGD was asked this time */
                assert_non_null(strstr(m, "delete that port mapping on the router"));
                if (tries == 0)
                        assert_non_null(strstr(m, "it could not be sent"));
        }
}

/* the other reasons follow the schedule; the cap still holds */
static void test_retry_follows_schedule(void **state_) {
        static const pcpd_upnp_delete_failure whys[] = { PCPD_UPNP_DELETE_UNCONFIRMED, PCPD_UPNP_DELETE_NO_INTERFACE,
                                                         PCPD_UPNP_DELETE_NO_ADDRESS, PCPD_UPNP_DELETE_UNUSABLE };

        (void) state_;
        for (size_t i = 0; i < G_N_ELEMENTS(whys); i++)
                for (unsigned tries = 0; tries <= PCPD_UPNP_DELETE_RETRIES + 1; tries++) {
                        pcpd_upnp_delete_state st = state(tries, 0, whys[i], ENODEV);
                        uint32_t got = 0, want = 0;
                        bool w = pcpd_upnp_delete_next_try(tries, &want);

                        assert_int_equal(pcpd_upnp_delete_retry(&st, PCPD_UPNP_DELETE_RETRY_FIRST_S, &got), w);
                        assert_int_equal(got, want);
                }
}

/* the interface went away before the delete (a record kept from the last run, its
 * internal client the host's address there): no "::", the reason, the tries made */
static void test_no_interface(void **state_) {
        pcpd_upnp_record r = record("192.168.77.1", NULL, IPPROTO_TCP, 4730, 4731);
        pcpd_upnp_delete_state st = state(PCPD_UPNP_DELETE_RETRIES, 0, PCPD_UPNP_DELETE_NO_INTERFACE, ENODEV);
        g_autofree char *m = pcpd_upnp_delete_given_up_message("c0", &r, &st);

        (void) state_;
        assert_no_fake_address(m);
        assert_non_null(strstr(m, "tcp external port 4730"));
        assert_non_null(strstr(m, "to port 4731 of this host, its address on c0 unknown"));
        assert_non_null(strstr(m, "UPnP-IGD at 192.168.77.1 on c0"));
        assert_non_null(strstr(m, "there is no interface c0"));
        assert_non_null(strstr(m, "none of them could be sent"));
        assert_null(strstr(m, "did not confirm")); /* nothing reached an IGD */
        assert_tries(m, PCPD_UPNP_DELETE_RETRIES + 1);
        assert_non_null(strstr(m, "next start"));
        assert_non_null(strstr(m, "delete that port mapping on the router"));
}

/* the interface is there, without an IPv4 address; two tries reached an IGD before */
static void test_no_address(void **state_) {
        pcpd_upnp_record r = record("10.1.2.1", NULL, IPPROTO_UDP, 5000, 5001);
        pcpd_upnp_delete_state st = state(3, 2, PCPD_UPNP_DELETE_NO_ADDRESS, EADDRNOTAVAIL);
        g_autofree char *m = pcpd_upnp_delete_given_up_message("eth1", &r, &st);

        (void) state_;
        assert_no_fake_address(m);
        assert_non_null(strstr(m, "no IPv4 address on eth1"));
        assert_non_null(strstr(m, "2 of them were sent and not confirmed, the last could not be sent"));
        assert_non_null(strstr(m, "to port 5001 of this host, its address on eth1 unknown"));
        assert_tries(m, 4);
}

/* no UPnP-IGD client there (the module missing): its error, not a made-up one */
static void test_unusable(void **state_) {
        pcpd_upnp_record r = record("10.1.2.1", "10.1.2.3", IPPROTO_TCP, 6000, 6001);
        pcpd_upnp_delete_state st = state(0, 0, PCPD_UPNP_DELETE_UNUSABLE, ELIBACC);
        g_autofree char *m = pcpd_upnp_delete_given_up_message("eth1", &r, &st);

        (void) state_;
        assert_non_null(strstr(m, "UPnP-IGD cannot be used on eth1"));
        assert_non_null(strstr(m, g_strerror(ELIBACC)));
        assert_non_null(strstr(m, "to 10.1.2.3 port 6001"));
        assert_tries(m, 1);
}

/* some tries could not be sent, the last was not confirmed: said so, not "all sent" */
static void test_some_sent(void **state_) {
        pcpd_upnp_record r = record("192.168.77.1", "192.168.77.2", IPPROTO_TCP, 4730, 4731);
        pcpd_upnp_delete_state st = state(PCPD_UPNP_DELETE_RETRIES, 2, PCPD_UPNP_DELETE_UNCONFIRMED, 0);
        g_autofree char *m = pcpd_upnp_delete_given_up_message("c0", &r, &st);

        (void) state_;
        assert_non_null(strstr(m, "did not confirm"));
        assert_non_null(strstr(m, "(only 2 of them could be sent)"));
        assert_tries(m, PCPD_UPNP_DELETE_RETRIES + 1);
}

/* a record without the IGD's address: "the UPnP-IGD on c0", no "at ::" */
static void test_igd_unknown(void **state_) {
        pcpd_upnp_record r = { .protocol = IPPROTO_TCP, .external_port = 4750, .internal_port = 4751 };
        pcpd_upnp_delete_state st = state(PCPD_UPNP_DELETE_RETRIES, PCPD_UPNP_DELETE_RETRIES + 1,
                                          PCPD_UPNP_DELETE_UNCONFIRMED, 0);
        g_autofree char *m = pcpd_upnp_delete_given_up_message("c0", &r, &st);

        (void) state_;
        assert_no_fake_address(m);
        assert_non_null(strstr(m, "The UPnP-IGD on c0 did not confirm"));
}

/* the line of each failed try: the words tests/upnp/test-pcpd.py waits for when no IGD
 * confirmed; the reason, and no claim that an IGD was asked, when nothing could be sent */
static void test_waiting(void **state_) {
        pcpd_upnp_record r = record("192.168.77.1", "192.168.77.2", IPPROTO_TCP, 4720, 4721);
        pcpd_upnp_record gone = record("192.168.77.1", NULL, IPPROTO_TCP, 4730, 4731);
        pcpd_upnp_delete_state st = state(0, 1, PCPD_UPNP_DELETE_UNCONFIRMED, 0);
        pcpd_upnp_delete_state st2 = state(2, 0, PCPD_UPNP_DELETE_NO_INTERFACE, ENODEV);
        g_autofree char *m = pcpd_upnp_delete_waiting_message("c0", &r, &st, 60);
        g_autofree char *m2 = pcpd_upnp_delete_waiting_message("c0", &gone, &st2, 240);
        g_autofree char *count = g_strdup_printf("(try 3 of %u)", PCPD_UPNP_DELETE_RETRIES + 1);

        (void) state_;
        assert_non_null(strstr(m, "on c0 did not confirm the delete of tcp port 4720: tried again when an IGD "
                                  "answers there, at the latest in 60 s"));
        assert_non_null(strstr(m2, "tcp port 4730 on c0 could not be sent: there is no interface c0"));
        assert_non_null(strstr(m2, "at the latest in 240 s"));
        assert_non_null(strstr(m2, count));
        assert_null(strstr(m2, "did not confirm"));
        assert_no_fake_address(m2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_schedule),
                cmocka_unit_test(test_doubling),
                cmocka_unit_test(test_cap),
                cmocka_unit_test(test_total),
                cmocka_unit_test(test_schedule_from),
                cmocka_unit_test(test_warning),
                cmocka_unit_test(test_warning_udp),
                cmocka_unit_test(test_invalid_given_up_at_once),
                cmocka_unit_test(test_retry_follows_schedule),
                cmocka_unit_test(test_no_interface),
                cmocka_unit_test(test_no_address),
                cmocka_unit_test(test_unusable),
                cmocka_unit_test(test_some_sent),
                cmocka_unit_test(test_igd_unknown),
                cmocka_unit_test(test_waiting),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
