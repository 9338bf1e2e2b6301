/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PCP server selection (RFC 7488, RFC 6887 §8.1): which servers a mapping goes to, and
 * which address of a server is used when. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pcpd-select.h"

static struct in6_addr A(const char *s) {
        struct in6_addr a;
        char buf[64];

        if (strchr(s, ':') == NULL) {
                snprintf(buf, sizeof(buf), "::ffff:%s", s);
                s = buf;
        }
        assert_int_equal(inet_pton(AF_INET6, s, &a), 1);
        return a;
}

/* a small server table */
typedef struct table {
        pcpd_select_server s[8];
        struct in6_addr addrs[8][4];
        size_t n;
} table;

static void add(table *t, pcpd_source src, const char *ifname, const char *a1, const char *a2) {
        pcpd_select_server *s = &t->s[t->n];

        s->source = src;
        s->ifname = ifname;
        s->addrs = t->addrs[t->n];
        t->addrs[t->n][0] = A(a1);
        s->n_addrs = 1;
        if (a2 != NULL) {
                t->addrs[t->n][1] = A(a2);
                s->n_addrs = 2;
        }
        t->n++;
}

/* the indexes chosen, as "0,2" */
static const char *pick(const table *t, int family, const char *ifname, const char *primary) {
        static char out[64];
        size_t idx[8], n = pcpd_select_servers(t->s, t->n, family, ifname, primary, idx, 8);
        size_t k = 0;

        out[0] = '\0';
        for (size_t i = 0; i < n; i++)
                k += (size_t) snprintf(out + k, sizeof(out) - k, "%s%zu", i > 0 ? "," : "", idx[i]);
        return out;
}

static void test_sources(void **state) {
        assert_string_equal(pcpd_source_to_string(PCPD_SOURCE_DHCPV6), "dhcpv6");
        assert_int_equal(pcpd_source_from_string("gateway"), PCPD_SOURCE_GATEWAY);
        assert_int_equal(pcpd_source_from_string("router"), _PCPD_SOURCE_INVALID);
        assert_int_equal(pcpd_source_from_string(NULL), _PCPD_SOURCE_INVALID);
        assert_null(pcpd_source_to_string(_PCPD_SOURCE_MAX));
        for (int i = 0; i < _PCPD_SOURCE_MAX; i++)
                assert_int_equal(pcpd_source_from_string(pcpd_source_to_string((pcpd_source) i)), i);
}

static void test_dhcp_beats_gateway(void **state) {
        table t = {};

        /* the lab: the gateway 192.168.77.1 and a DHCP-announced server that is not it */
        add(&t, PCPD_SOURCE_GATEWAY, "eth0", "192.168.77.1", NULL);         /* 0 */
        add(&t, PCPD_SOURCE_DHCPV4, "eth0", "192.168.77.5", NULL);          /* 1 */
        add(&t, PCPD_SOURCE_GATEWAY, "eth0", "fe80::1", NULL);              /* 2 */
        assert_string_equal(pick(&t, AF_INET, "eth0", NULL), "1");
        assert_string_equal(pick(&t, AF_INET, NULL, "eth0"), "1");
        /* no DHCPv6 server: the IPv6 gateway stays the IPv6 server */
        assert_string_equal(pick(&t, AF_INET6, NULL, "eth0"), "2");
        /* another interface has only its gateway */
        add(&t, PCPD_SOURCE_GATEWAY, "wlan0", "10.0.0.1", NULL);            /* 3 */
        assert_string_equal(pick(&t, AF_INET, "wlan0", "eth0"), "3");
        assert_string_equal(pick(&t, AF_INET, NULL, "wlan0"), "3");
        /* an interface without any server: the mapping waits */
        assert_string_equal(pick(&t, AF_INET, "usb0", "eth0"), "");
}

static void test_config_beats_all(void **state) {
        table t = {};

        add(&t, PCPD_SOURCE_GATEWAY, "eth0", "192.168.77.1", NULL);
        add(&t, PCPD_SOURCE_DHCPV4, "eth0", "192.168.77.5", NULL);
        add(&t, PCPD_SOURCE_CONFIG, "", "203.0.113.9", NULL);
        add(&t, PCPD_SOURCE_CONFIG, NULL, "fd00::9", NULL);
        assert_string_equal(pick(&t, AF_INET, "eth0", NULL), "2");
        assert_string_equal(pick(&t, AF_INET, NULL, "wlan0"), "2");
        assert_string_equal(pick(&t, AF_INET6, NULL, NULL), "3");
}

static void test_family(void **state) {
        table t = {};

        /* one DHCPv6 server reachable by IPv6 and IPv4: it serves both families; a DHCPv4
         * server serves IPv4 only */
        add(&t, PCPD_SOURCE_DHCPV6, "eth0", "fd77:77:77::1", "192.168.77.1"); /* 0 */
        add(&t, PCPD_SOURCE_DHCPV4, "eth0", "192.168.77.9", NULL);             /* 1 */
        assert_true(pcpd_select_server_has_family(&t.s[0], AF_INET));
        assert_true(pcpd_select_server_has_family(&t.s[0], AF_INET6));
        assert_false(pcpd_select_server_has_family(&t.s[1], AF_INET6));
        /* S4: both DHCP servers for IPv4, in their order */
        assert_string_equal(pick(&t, AF_INET, "eth0", NULL), "0,1");
        assert_string_equal(pick(&t, AF_INET6, "eth0", NULL), "0");
        assert_string_equal(pick(&t, AF_UNSPEC, "eth0", NULL), "");
}

static void test_no_interface(void **state) {
        table t = {};

        /* without NetworkManager and without a name: the first server's interface, as the
         * daemon did before (one server per family) */
        add(&t, PCPD_SOURCE_GATEWAY, "eth0", "192.168.77.1", NULL);
        add(&t, PCPD_SOURCE_GATEWAY, "wlan0", "10.0.0.1", NULL);
        add(&t, PCPD_SOURCE_DHCPV4, "wlan0", "10.0.0.5", NULL);
        assert_string_equal(pick(&t, AF_INET, NULL, NULL), "0");
        assert_string_equal(pick(&t, AF_INET, NULL, ""), "0");
        assert_string_equal(pick(&t, AF_INET, "", "wlan0"), "2");
        /* cap on the output */
        {
                size_t idx[1];
                table u = {};

                add(&u, PCPD_SOURCE_DHCPV4, "eth0", "192.168.77.5", NULL);
                add(&u, PCPD_SOURCE_DHCPV4, "eth0", "192.168.77.6", NULL);
                assert_int_equal(pcpd_select_servers(u.s, u.n, AF_INET, "eth0", NULL, idx, 1), 1);
                assert_int_equal(idx[0], 0);
                assert_int_equal(pcpd_select_servers(NULL, 0, AF_INET, "eth0", NULL, idx, 1), 0);
        }
}

static void test_representative(void **state) {
        pcp_mapping_state a[] = { PCP_MAPPING_FAILED, PCP_MAPPING_PENDING, PCP_MAPPING_ACTIVE };
        pcp_mapping_state b[] = { PCP_MAPPING_FAILED, PCP_MAPPING_PENDING, PCP_MAPPING_FAILED };
        pcp_mapping_state c[] = { PCP_MAPPING_FAILED, PCP_MAPPING_DELETING };
        pcp_mapping_state d[] = { PCP_MAPPING_PENDING, PCP_MAPPING_RENEWING };

        assert_int_equal(pcpd_select_representative(a, 3), 2);
        assert_int_equal(pcpd_select_representative(b, 3), 1);
        assert_int_equal(pcpd_select_representative(c, 2), 0);
        assert_int_equal(pcpd_select_representative(d, 2), 1);
        assert_int_equal(pcpd_select_representative(a, 0), -1);
}

static void test_addr_order(void **state) {
        struct in6_addr addrs[] = { A("fd77::1"), A("192.168.77.1"), A("fe80::1"), A("10.0.0.1") };
        bool usable[] = { false, true, true, true };
        uint8_t out[PCP_SERVER_MAX_ADDRS];

        assert_int_equal(pcpd_select_addr_order(addrs, 4, AF_INET6, NULL, out), 2);
        assert_int_equal(out[0], 0);
        assert_int_equal(out[1], 2);
        assert_int_equal(pcpd_select_addr_order(addrs, 4, AF_INET, NULL, out), 2);
        assert_int_equal(out[0], 1);
        assert_int_equal(out[1], 3);
        /* RFC 6724 rule 1: an address without a route goes last, the rest keep their order */
        assert_int_equal(pcpd_select_addr_order(addrs, 4, AF_INET6, usable, out), 2);
        assert_int_equal(out[0], 2);
        assert_int_equal(out[1], 0);
        assert_int_equal(pcpd_select_addr_order(NULL, 4, AF_INET6, NULL, out), 0);
}

static void test_addr_silence(void **state) {
        pcpd_addr_select s;
        size_t i = 99;

        assert_int_equal(pcpd_addr_select_init(&s, 0), -EINVAL);
        assert_int_equal(pcpd_addr_select_init(&s, PCP_SERVER_MAX_ADDRS + 1), -EINVAL);
        assert_int_equal(pcpd_addr_select_init(&s, 3), 0);
        assert_int_equal(pcpd_addr_select_send(&s, 0, &i), PCPD_ADDR_KEEP);
        assert_int_equal(i, 0);
        /* A3: sent three times unanswered: stay; the fourth time out moves on (0, 3, 9, 21 s
         * sent; the fourth timer fires at 45 s) */
        assert_int_equal(pcpd_addr_select_timeout(&s, 3000, 1, 0), PCPD_ADDR_KEEP);
        assert_int_equal(pcpd_addr_select_timeout(&s, 9000, 2, 0), PCPD_ADDR_KEEP);
        assert_int_equal(pcpd_addr_select_timeout(&s, 21000, 3, 0), PCPD_ADDR_KEEP);
        assert_int_equal(pcpd_addr_select_timeout(&s, 45000, 4, 0), PCPD_ADDR_SWITCHED);
        assert_int_equal(pcpd_addr_select_send(&s, 45000, &i), PCPD_ADDR_KEEP);
        assert_int_equal(i, 1);
        /* the second address is silent too, the third as well: exhausted (A5) */
        assert_int_equal(pcpd_addr_select_timeout(&s, 90000, 4, 45000), PCPD_ADDR_SWITCHED);
        assert_int_equal(s.current, 2);
        assert_int_equal(pcpd_addr_select_timeout(&s, 135000, 4, 90000), PCPD_ADDR_EXHAUSTED);
        assert_int_equal(s.retry_at, 135000 + PCPD_SELECT_RETRY_MS);
        /* nothing is sent for 15 minutes, then a new round from the first address */
        assert_int_equal(pcpd_addr_select_send(&s, 135000 + PCPD_SELECT_RETRY_MS - 1, &i), PCPD_ADDR_WAIT);
        assert_int_equal(pcpd_addr_select_timeout(&s, 135001, 5, 0), PCPD_ADDR_WAIT);
        assert_int_equal(pcpd_addr_select_unreachable(&s, 135001, 0), PCPD_ADDR_WAIT);
        assert_int_equal(pcpd_addr_select_send(&s, 135000 + PCPD_SELECT_RETRY_MS, &i), PCPD_ADDR_SWITCHED);
        assert_int_equal(i, 0);
        assert_int_equal(s.failed, 0);
        assert_int_equal(s.retry_at, 0);
}

static void test_addr_sticky(void **state) {
        pcpd_addr_select s;
        size_t i;

        assert_int_equal(pcpd_addr_select_init(&s, 2), 0);
        /* the second address answers (a late answer after a switch, or a probe): it is kept */
        pcpd_addr_select_answered(&s, 1000, 1);
        assert_int_equal(s.current, 1);
        assert_true(s.answered);
        assert_int_equal(pcpd_addr_select_send(&s, 1000, &i), PCPD_ADDR_KEEP);
        assert_int_equal(i, 1);
        /* one request unanswered four times while the address answered others since it began:
         * that request's business, not the address's (A4) */
        pcpd_addr_select_answered(&s, 50000, 1);
        assert_int_equal(pcpd_addr_select_timeout(&s, 60000, 4, 20000), PCPD_ADDR_KEEP);
        /* silence since the request began: the sticky address failed; back to the first */
        assert_int_equal(pcpd_addr_select_timeout(&s, 200000, 4, 60000), PCPD_ADDR_SWITCHED);
        assert_int_equal(s.current, 0);
        assert_false(s.answered);
        /* an answer forgets the round's failures */
        pcpd_addr_select_answered(&s, 200100, 0);
        assert_int_equal(s.failed, 0);
        assert_int_equal(pcpd_addr_select_timeout(&s, 300000, 4, 250000), PCPD_ADDR_SWITCHED);
        assert_int_equal(s.current, 1);
        /* out of range: ignored */
        pcpd_addr_select_answered(&s, 1, 5);
        assert_int_equal(s.current, 1);
}

static void test_addr_icmp(void **state) {
        pcpd_addr_select s;

        assert_int_equal(pcpd_addr_select_init(&s, 3), 0);
        /* A3: a hard ICMP error moves on at once */
        assert_int_equal(pcpd_addr_select_unreachable(&s, 10, 0), PCPD_ADDR_SWITCHED);
        assert_int_equal(s.current, 1);
        /* a late error for an address already left changes nothing (no resend storm) */
        assert_int_equal(pcpd_addr_select_unreachable(&s, 20, 0), PCPD_ADDR_KEEP);
        assert_int_equal(s.current, 1);
        /* an error for an address not tried yet marks it: it is skipped */
        assert_int_equal(pcpd_addr_select_unreachable(&s, 30, 2), PCPD_ADDR_KEEP);
        assert_int_equal(pcpd_addr_select_unreachable(&s, 40, 1), PCPD_ADDR_EXHAUSTED);
        assert_int_equal(s.retry_at, 40 + PCPD_SELECT_RETRY_MS);
        assert_int_equal(pcpd_addr_select_unreachable(&s, 40, 9), PCPD_ADDR_KEEP);
        /* one address: its failure is the server's */
        assert_int_equal(pcpd_addr_select_init(&s, 1), 0);
        assert_int_equal(pcpd_addr_select_unreachable(&s, 0, 0), PCPD_ADDR_EXHAUSTED);
        assert_true(s.retry_at != 0);
        /* an answer during the pause ends it */
        pcpd_addr_select_answered(&s, 5, 0);
        assert_int_equal(s.retry_at, 0);
        assert_int_equal(pcpd_addr_select_send(&s, 6, NULL), PCPD_ADDR_KEEP);
        for (int a = 0; a < _PCPD_ADDR_ACTION_MAX; a++)
                assert_non_null(pcpd_addr_action_to_string((pcpd_addr_action) a));
        assert_null(pcpd_addr_action_to_string(_PCPD_ADDR_ACTION_MAX));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sources),
                cmocka_unit_test(test_dhcp_beats_gateway),
                cmocka_unit_test(test_config_beats_all),
                cmocka_unit_test(test_family),
                cmocka_unit_test(test_no_interface),
                cmocka_unit_test(test_representative),
                cmocka_unit_test(test_addr_order),
                cmocka_unit_test(test_addr_silence),
                cmocka_unit_test(test_addr_sticky),
                cmocka_unit_test(test_addr_icmp),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
