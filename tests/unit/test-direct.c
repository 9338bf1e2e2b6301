/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The rules of "direct" mappings (pcpd-direct.c), pure: which addresses are global (the
 * RFC 6890 blocks at their edges), which global address a direct mapping gets (the
 * kernel's choice when it is one of them, interfaces down or loopback never), whether a
 * server could map (unreachable, unsupported and silent ones cannot; the interface asked
 * for), Manager.State, and the plan of a new mapping (family, direct or not). The bus test
 * tests/bus/test-direct.py covers the same through the daemon in a network namespace. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>

#include "pcp-wire.h"
#include "pcpd-direct.h"

static struct in6_addr addr(const char *text) {
        struct in6_addr a;

        if (!pcp_addr_from_string(text, &a))
                fail_msg("not an address: %s", text);
        return a;
}

static void assert_addr(const struct in6_addr *got, const char *want) {
        char buf[PCP_ADDR_STRLEN];

        assert_string_equal(pcp_addr_to_string(got, buf), want);
}

/* ---- global addresses ---- */

static void test_address_is_global(void **state) {
        static const struct {
                const char *addr;
                bool global;
        } cases[] = {
                /* IPv4: each block at and just outside its edges */
                { "1.2.3.4", true },          { "0.0.0.0", false },          { "0.255.255.255", false },
                { "1.0.0.0", true },          { "9.255.255.255", true },     { "10.0.0.1", false },
                { "10.255.255.255", false },  { "11.0.0.0", true },          { "100.63.255.255", true },
                { "100.64.0.1", false },      { "100.127.255.255", false },  { "100.128.0.0", true },
                { "127.0.0.1", false },       { "169.254.1.1", false },      { "169.255.0.1", true },
                { "172.15.255.255", true },   { "172.16.0.1", false },       { "172.31.255.255", false },
                { "172.32.0.0", true },       { "192.0.0.2", false },        { "192.0.1.1", true },
                { "192.0.2.1", false },       { "192.168.1.10", false },     { "192.169.0.1", true },
                { "198.17.255.255", true },   { "198.18.0.1", false },       { "198.19.255.255", false },
                { "198.20.0.0", true },       { "198.51.100.7", false },     { "203.0.113.9", false },
                { "203.0.114.1", true },      { "223.255.255.255", true },   { "224.0.0.1", false },
                { "255.255.255.255", false },
                /* IPv6 */
                { "2600::1", true },          { "2a00:1450::1", true },      { "::", false },
                { "::1", false },             { "64:ff9b::102:304", false }, { "64:ff9b:1::1", false },
                { "64:ff9b:2::1", true },     { "100::1", false },           { "100:0:0:1::1", true },
                { "2001::1", false },         { "2001:1ff::1", false },      { "2001:200::1", true },
                { "2001:db8::1", false },     { "2001:db9::1", true },       { "3fff::1", false },
                { "3fff:fff::1", false },     { "3fff:1000::1", true },      { "fc00::1", false },
                { "fdff:ffff::1", false },    { "fe00::1", true },           { "fe80::1", false },
                { "fec0::1", false },         { "ff02::1", false },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct in6_addr a = addr(cases[i].addr);
                if (pcpd_direct_address_is_global(&a) != cases[i].global)
                        fail_msg("%s: expected %s", cases[i].addr, cases[i].global ? "global" : "not global");
        }
}

/* lo (loopback), eth0 and wlan0 (up), eth1 (down) */
static pcpd_host_link links[] = {
        { .ifindex = 1, .flags = IFF_UP | IFF_LOOPBACK, .name = "lo" },
        { .ifindex = 2, .flags = IFF_UP, .name = "eth0" },
        { .ifindex = 3, .flags = IFF_UP, .name = "wlan0" },
        { .ifindex = 4, .flags = 0, .name = "eth1" },
};
static pcpd_host_addr addrs[11];

static const struct {
        unsigned ifindex;
        const char *text;
} addr_table[] = {
        { 1, "127.0.0.1" },    { 1, "1.1.1.1" },  { 2, "192.168.1.10" }, { 2, "1.2.3.4" },
        { 2, "fe80::1" },      { 2, "fd00::1" },  { 2, "2600::10" },     { 3, "5.6.7.8" },
        { 3, "2600::20" },     { 4, "9.9.9.9" },  { 4, "2600::40" },
};

static pcpd_host_snapshot host(void) {
        for (size_t i = 0; i < sizeof(addr_table) / sizeof(addr_table[0]); i++) {
                addrs[i].ifindex = addr_table[i].ifindex;
                addrs[i].addr = addr(addr_table[i].text);
                addrs[i].family = pcp_addr_is_ipv4(&addrs[i].addr) ? AF_INET : AF_INET6;
        }
        return (pcpd_host_snapshot) {
                .links = links,
                .n_links = sizeof(links) / sizeof(links[0]),
                .addrs = addrs,
                .n_addrs = sizeof(addr_table) / sizeof(addr_table[0]),
        };
}

static void test_global_address(void **state) {
        pcpd_host_snapshot s = host(), empty = { 0 };
        struct in6_addr got, routed;

        /* the first global one: not the loopback's, nor a private one */
        assert_true(pcpd_direct_global_address(&s, AF_INET, NULL, NULL, &got));
        assert_addr(&got, "1.2.3.4");
        assert_true(pcpd_direct_global_address(&s, AF_INET6, "", NULL, &got));
        assert_addr(&got, "2600::10");
        /* whether there is one, without the address */
        assert_true(pcpd_direct_global_address(&s, AF_INET, NULL, NULL, NULL));

        /* the kernel's choice when it is one of them */
        routed = addr("5.6.7.8");
        assert_true(pcpd_direct_global_address(&s, AF_INET, NULL, &routed, &got));
        assert_addr(&got, "5.6.7.8");
        routed = addr("2600::20");
        assert_true(pcpd_direct_global_address(&s, AF_INET6, NULL, &routed, &got));
        assert_addr(&got, "2600::20");
        /* not when it is not: private, on a link that is down, on the loopback, on another
         * interface than the one asked for */
        routed = addr("192.168.1.10");
        assert_true(pcpd_direct_global_address(&s, AF_INET, NULL, &routed, &got));
        assert_addr(&got, "1.2.3.4");
        routed = addr("9.9.9.9");
        assert_true(pcpd_direct_global_address(&s, AF_INET, NULL, &routed, &got));
        assert_addr(&got, "1.2.3.4");
        routed = addr("1.1.1.1");
        assert_true(pcpd_direct_global_address(&s, AF_INET, NULL, &routed, &got));
        assert_addr(&got, "1.2.3.4");
        routed = addr("1.2.3.4");
        assert_true(pcpd_direct_global_address(&s, AF_INET, "wlan0", &routed, &got));
        assert_addr(&got, "5.6.7.8");

        /* one interface */
        assert_true(pcpd_direct_global_address(&s, AF_INET6, "wlan0", NULL, &got));
        assert_addr(&got, "2600::20");
        /* none there: a link that is down, the loopback, one that does not exist */
        got = addr("::");
        assert_false(pcpd_direct_global_address(&s, AF_INET, "eth1", NULL, &got));
        assert_false(pcpd_direct_global_address(&s, AF_INET6, "eth1", NULL, &got));
        assert_false(pcpd_direct_global_address(&s, AF_INET, "lo", NULL, &got));
        assert_false(pcpd_direct_global_address(&s, AF_INET, "nothing0", NULL, &got));
        assert_false(pcpd_direct_global_address(&empty, AF_INET, NULL, NULL, &got));
        assert_false(pcpd_direct_global_address(&empty, AF_INET6, NULL, NULL, &got));
        assert_addr(&got, "::"); /* untouched */
}

/* ---- servers ---- */

static pcpd_direct_server server(int family, const char *ifname, pcpd_server_state st) {
        return (pcpd_direct_server) { .family = family, .ifname = ifname, .engine_known = true, .state = st };
}

static void test_servers_may_map(void **state) {
        pcpd_direct_server v[4] = { 0 };

        assert_false(pcpd_direct_servers_may_map(v, 0, AF_INET, NULL));

        /* one being found out: it may */
        v[0] = server(AF_INET, "eth0", PCPD_SERVER_UNKNOWN);
        assert_true(pcpd_direct_servers_may_map(v, 1, AF_INET, NULL));
        assert_false(pcpd_direct_servers_may_map(v, 1, AF_INET6, NULL)); /* the other family has none */
        /* until it has been silent too long */
        v[0].silent = true;
        assert_false(pcpd_direct_servers_may_map(v, 1, AF_INET, NULL));
        /* not known to the engine yet (being added): it may */
        v[0] = (pcpd_direct_server) { .family = AF_INET, .ifname = "eth0", .engine_known = false, .silent = true };
        assert_true(pcpd_direct_servers_may_map(v, 1, AF_INET, NULL));

        /* answered: it may, unless it cannot be reached or speaks a version we do not */
        static const struct {
                pcpd_server_state state;
                bool may;
        } states[] = {
                { PCPD_SERVER_PCP, true },          { PCPD_SERVER_NATPMP, true },
                { PCPD_SERVER_DISABLED, true },     { PCPD_SERVER_UNREACHABLE, false },
                { PCPD_SERVER_UNSUPPORTED, false },
        };
        for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
                v[0] = server(AF_INET, "eth0", states[i].state);
                if (pcpd_direct_servers_may_map(v, 1, AF_INET, NULL) != states[i].may)
                        fail_msg("server state %d: expected %s", states[i].state, states[i].may ? "may map" : "may not");
        }

        /* any one of several that may */
        v[0] = server(AF_INET, "eth0", PCPD_SERVER_UNREACHABLE);
        v[1] = server(AF_INET6, "eth0", PCPD_SERVER_PCP);
        v[2] = server(AF_INET, "wlan0", PCPD_SERVER_NATPMP);
        assert_true(pcpd_direct_servers_may_map(v, 3, AF_INET, NULL));
        assert_false(pcpd_direct_servers_may_map(v, 2, AF_INET, NULL));
        /* on the interface asked for only */
        assert_false(pcpd_direct_servers_may_map(v, 3, AF_INET, "eth0"));
        assert_true(pcpd_direct_servers_may_map(v, 3, AF_INET, "wlan0"));
        assert_true(pcpd_direct_servers_may_map(v, 3, AF_INET, ""));
        assert_false(pcpd_direct_servers_may_map(v, 3, AF_INET, "eth1"));
        /* a configured server (interface unknown) is on none of them */
        v[3] = server(AF_INET, "", PCPD_SERVER_PCP);
        assert_false(pcpd_direct_servers_may_map(v + 3, 1, AF_INET, "eth1"));
        assert_true(pcpd_direct_servers_may_map(v + 3, 1, AF_INET, NULL));

        assert_true(pcpd_direct_is_direct(false, true));
        assert_false(pcpd_direct_is_direct(true, true));
        assert_false(pcpd_direct_is_direct(false, false));
}

static void test_manager_state(void **state) {
        const bool none[2] = { false, false }, v4[2] = { true, false }, v6[2] = { false, true };
        pcpd_direct_server v[2] = { 0 };

        /* switched off: whatever else */
        v[0] = server(AF_INET, "eth0", PCPD_SERVER_PCP);
        assert_string_equal(pcpd_direct_manager_state(false, v, 1, true, v4), "disabled");
        assert_string_equal(pcpd_direct_manager_state(false, v, 0, false, none), "disabled");

        /* nothing */
        assert_string_equal(pcpd_direct_manager_state(true, v, 0, false, none), "no-network");
        /* not behind a NAT, for either family: ready without a server */
        assert_string_equal(pcpd_direct_manager_state(true, v, 0, false, v4), "ready");
        assert_string_equal(pcpd_direct_manager_state(true, v, 0, false, v6), "ready");
        /* another backend's router */
        assert_string_equal(pcpd_direct_manager_state(true, v, 0, true, none), "ready");

        /* servers that have not answered, or are not known to the engine yet */
        v[0] = server(AF_INET, "eth0", PCPD_SERVER_UNKNOWN);
        v[1] = (pcpd_direct_server) { .family = AF_INET6, .ifname = "eth0", .engine_known = false,
                                      .state = PCPD_SERVER_PCP /* not read: unknown to the engine */ };
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, none), "discovering");
        /* one answered, none can map */
        v[0].state = PCPD_SERVER_UNREACHABLE;
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, none), "unsupported");
        v[0].state = PCPD_SERVER_DISABLED;
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, none), "unsupported");
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, v6), "ready");
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, true, none), "ready");
        /* one that maps */
        v[0].state = PCPD_SERVER_PCP;
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, none), "ready");
        v[0].state = PCPD_SERVER_NATPMP;
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, none), "ready");
        assert_true(pcpd_direct_any_usable(v, 1));
        assert_false(pcpd_direct_any_usable(v + 1, 1));
        /* one that stopped answering (a request unanswered for 20 s): not ready, and not
         * "unsupported" either (nothing said it speaks no PCP): looking for one that answers */
        v[0].not_answering = true;
        assert_false(pcpd_direct_any_usable(v, 1));
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, none), "discovering");
        v[0].state = PCPD_SERVER_PCP;
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, none), "discovering");
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, v4), "ready");
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, true, none), "ready");
        /* another server of the host still answers: ready */
        v[1] = server(AF_INET6, "eth0", PCPD_SERVER_PCP);
        assert_string_equal(pcpd_direct_manager_state(true, v, 2, false, none), "ready");
        v[0].not_answering = false;
        assert_string_equal(pcpd_direct_manager_state(true, v, 1, false, none), "ready");
}

/* ---- the plan of a new mapping ---- */

static void test_plan(void **state) {
        pcpd_direct_request plain = { .internal_port = 8080 };
        pcpd_direct_request third = { .has_third_party = true, .internal_port = 8080 };
        pcpd_direct_request other_port = { .prefer_failure = true, .internal_port = 8080, .suggested_port = 9090 };
        pcpd_direct_request same_port = { .prefer_failure = true, .internal_port = 8080, .suggested_port = 8080 };
        pcpd_direct_request any_port = { .internal_port = 8080, .suggested_port = 9090 };

        assert_int_equal(pcpd_direct_plan_family(AF_INET6, true, true), AF_INET6);
        assert_int_equal(pcpd_direct_plan_family(AF_INET, false, false), AF_INET);
        assert_int_equal(pcpd_direct_plan_family(0, true, false), AF_INET);
        assert_int_equal(pcpd_direct_plan_family(0, false, true), AF_INET);
        assert_int_equal(pcpd_direct_plan_family(0, false, false), AF_INET6);

        /* behind a NAT: never */
        assert_false(pcpd_direct_plan(&plain, false, false));
        assert_false(pcpd_direct_plan(&plain, false, true));
        /* not behind one */
        assert_true(pcpd_direct_plan(&plain, true, false));
        assert_true(pcpd_direct_plan(&plain, true, true));
        assert_true(pcpd_direct_plan(&any_port, true, true)); /* the port is a wish */
        /* for another host: a server's job */
        assert_false(pcpd_direct_plan(&third, true, false));
        assert_false(pcpd_direct_plan(&third, true, true));
        /* exactly another port or fail: left to a server when there is one */
        assert_false(pcpd_direct_plan(&other_port, true, true));
        assert_true(pcpd_direct_plan(&other_port, true, false)); /* (the manager then refuses it) */
        assert_true(pcpd_direct_plan(&same_port, true, true));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_address_is_global),
                cmocka_unit_test(test_global_address),
                cmocka_unit_test(test_servers_may_map),
                cmocka_unit_test(test_manager_state),
                cmocka_unit_test(test_plan),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
