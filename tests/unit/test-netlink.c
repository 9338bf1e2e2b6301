/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The parsers of the kernel's netlink replies (pcpd-netlink.c): real route and socket
 * dumps of this kernel (tests/fuzz/corpus/fuzz-netlink, captured by
 * tests/fuzz/capture-netlink.py in a namespace of its own) give the routers and owners
 * they hold; malformed messages found by tests/fuzz/fuzz-netlink are read without a byte
 * past their end (each is put at the end of a page followed by an inaccessible one). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pcpd-netlink.h"
#include "pcp-wire.h"

/* ---- helpers ---- */

typedef struct sample {
        uint8_t data[65536];
        size_t len, pos;
} sample;

/* a seed of the fuzz target, whose format fuzz-netlink.c describes */
static void load(sample *s, const char *name) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", getenv("PCPD_NETLINK_SAMPLES"), name);
        f = fopen(path, "rb");
        if (f == NULL)
                fail_msg("cannot open %s (PCPD_NETLINK_SAMPLES)", path);
        s->len = fread(s->data, 1, sizeof(s->data), f);
        s->pos = 0;
        fclose(f);
}

/* the next datagram, copied into a malloc()ed buffer of its size (aligned as recv()'s) */
static uint8_t *next_datagram(sample *s, size_t *len) {
        uint8_t *d;

        if (s->pos + 2 > s->len)
                return NULL;
        *len = (size_t) s->data[s->pos] << 8 | s->data[s->pos + 1];
        s->pos += 2;
        assert_true(s->pos + *len <= s->len);
        d = malloc(*len);
        memcpy(d, s->data + s->pos, *len);
        s->pos += *len;
        return d;
}

static size_t routes_of(const char *name, pcpd_router *r, size_t max) {
        sample s;
        uint8_t *d;
        size_t len, n = 0;
        int k = 0;

        load(&s, name);
        s.pos = 2; /* mode, max */
        while (k == 0 && (d = next_datagram(&s, &len)) != NULL) {
                k = pcpd_netlink_parse_routes(d, len, r, max, &n);
                free(d);
        }
        assert_int_equal(k, 1); /* the dump ended */
        return n;
}

static void assert_router(const pcpd_router *r, int family, const char *addr, uint32_t metric) {
        char buf[INET6_ADDRSTRLEN];

        assert_int_equal(r->family, family);
        assert_string_equal(pcp_addr_to_string(&r->addr.sin6_addr, buf), addr);
        assert_int_equal(ntohs(r->addr.sin6_port), PCP_SERVER_PORT);
        assert_int_equal(r->metric, metric);
        assert_true(r->ifindex > 0);
        assert_int_equal(r->addr.sin6_scope_id, IN6_IS_ADDR_LINKLOCAL(&r->addr.sin6_addr) ? r->ifindex : 0);
}

/* msg (len bytes) at the very end of a readable page, the next page inaccessible: a read
 * past the message faults */
static void *at_page_end(const void *msg, size_t len, void **ret_base) {
        long page = sysconf(_SC_PAGESIZE);
        uint8_t *base = mmap(NULL, (size_t) page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        assert_true(base != MAP_FAILED);
        assert_int_equal(mprotect(base + page, (size_t) page, PROT_NONE), 0);
        memcpy(base + page - len, msg, len);
        *ret_base = base;
        return base + page - len;
}

static void page_free(void *base) {
        munmap(base, (size_t) sysconf(_SC_PAGESIZE) * 2);
}

/* ---- routes ---- */

static void test_real_routes(void **state) {
        pcpd_router r[PCPD_MAX_ROUTERS];
        size_t n;

        /* the namespace's main table: default via 198.51.100.1 metric 50 and via 192.0.2.1
         * metric 100, in the kernel's order; table 100's, the unreachable one, the multipath
         * one (no RTA_GATEWAY of its own) and 203.0.113.0/24 are no default routers */
        n = routes_of("routes-ipv4", r, PCPD_MAX_ROUTERS);
        assert_int_equal(n, 2);
        assert_router(&r[0], AF_INET, "198.51.100.1", 50);
        assert_router(&r[1], AF_INET, "192.0.2.1", 100);
        /* IPv6: a link-local router gets its interface as scope */
        n = routes_of("routes-ipv6", r, PCPD_MAX_ROUTERS);
        assert_int_equal(n, 2);
        assert_router(&r[0], AF_INET6, "2001:db8:2::1", 10);
        assert_router(&r[1], AF_INET6, "fe80::1", 1024);
        /* no more than asked for */
        n = routes_of("routes-both-max2", r, 2);
        assert_int_equal(n, 2);
        assert_int_equal(r[0].family, AF_INET);
}

/* a message with its type and room for nothing else */
static void test_short_messages(void **state) {
        struct nlmsghdr h = { .nlmsg_len = NLMSG_HDRLEN, .nlmsg_type = RTM_NEWROUTE };
        pcpd_router r[PCPD_MAX_ROUTERS];
        pcpd_port_owners o = { 0 };
        pcpd_port_query q = { .protocol = IPPROTO_TCP, .port = 80, .family = AF_INET };
        size_t n = 0;
        void *base, *m;

        /* found by tests/fuzz/fuzz-netlink: the route's header was read past the message */
        m = at_page_end(&h, sizeof(h), &base);
        assert_int_equal(pcpd_netlink_parse_routes(m, sizeof(h), r, PCPD_MAX_ROUTERS, &n), 0);
        assert_int_equal(n, 0);
        page_free(base);

        /* found by tests/fuzz/fuzz-netlink: an error message without its error */
        h.nlmsg_type = NLMSG_ERROR;
        m = at_page_end(&h, sizeof(h), &base);
        assert_int_equal(pcpd_netlink_parse_routes(m, sizeof(h), r, PCPD_MAX_ROUTERS, &n), -EBADMSG);
        assert_int_equal(pcpd_sock_diag_parse_owners(m, sizeof(h), &q, &o), -EBADMSG);
        page_free(base);

        /* a socket message too short for its header is skipped */
        h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        m = at_page_end(&h, sizeof(h), &base);
        assert_int_equal(pcpd_sock_diag_parse_owners(m, sizeof(h), &q, &o), 0);
        assert_false(o.caller_exact || o.caller_wildcard || o.other_exact);
        page_free(base);
}

static size_t put_route(uint8_t *buf, int family, const void *gw, size_t gw_len) {
        struct nlmsghdr h = { .nlmsg_type = RTM_NEWROUTE };
        struct rtmsg rt = { .rtm_family = (unsigned char) family, .rtm_table = RT_TABLE_MAIN, .rtm_type = RTN_UNICAST };
        struct rtattr a = { .rta_len = (unsigned short) RTA_LENGTH(gw_len), .rta_type = RTA_GATEWAY };
        size_t off = NLMSG_HDRLEN;

        memcpy(buf + off, &rt, sizeof(rt));
        off += NLMSG_ALIGN(sizeof(rt));
        memcpy(buf + off, &a, sizeof(a));
        memcpy(buf + off + RTA_LENGTH(0), gw, gw_len);
        off += RTA_SPACE(gw_len);
        h.nlmsg_len = (uint32_t) off;
        memcpy(buf, &h, sizeof(h));
        return off;
}

/* found by tests/fuzz/fuzz-netlink: an IPv6 route through an IPv4-mapped address was an
 * IPv4 router listed as an IPv6 one; no unicast address is no router either */
static void test_unusable_gateways(void **state) {
        static const struct {
                int family;
                const char *gw;
        } bad[] = {
                { AF_INET6, "::ffff:192.0.2.1" }, { AF_INET6, "::" },       { AF_INET6, "ff02::1" },
                { AF_INET, "0.0.0.0" },           { AF_INET, "224.0.0.1" }, { AF_INET, "255.255.255.255" },
        };
        pcpd_router r[PCPD_MAX_ROUTERS];
        uint8_t *buf = calloc(1, 256);

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                uint8_t gw[16];
                size_t len, n = 0;

                assert_int_equal(inet_pton(bad[i].family, bad[i].gw, gw), 1);
                len = put_route(buf, bad[i].family, gw, bad[i].family == AF_INET ? 4 : 16);
                assert_int_equal(pcpd_netlink_parse_routes(buf, len, r, PCPD_MAX_ROUTERS, &n), 0);
                if (n != 0)
                        fail_msg("%s taken for a router", bad[i].gw);
        }
        /* and a good one is one */
        {
                uint8_t gw[16];
                size_t len, n = 0;

                assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", gw), 1);
                len = put_route(buf, AF_INET6, gw, 16);
                assert_int_equal(pcpd_netlink_parse_routes(buf, len, r, PCPD_MAX_ROUTERS, &n), 0);
                assert_int_equal(n, 1);
        }
        free(buf);
}

/* ---- sockets ---- */

static pcpd_port_owners owners_of(const char *name, uid_t uid, const char *internal) {
        pcpd_port_owners o = { 0 };
        struct in6_addr a;
        pcpd_port_query q = { .internal = &a, .n_internal = 1, .uid = uid };
        sample s;
        uint8_t *d;
        size_t len;
        int k = 0;

        load(&s, name);
        /* the sample's own query gives protocol, listening and port; the address and uid
         * are the test's */
        q.protocol = s.data[1] & 1 ? IPPROTO_TCP : IPPROTO_UDP;
        q.listening = s.data[1] & 2;
        q.port = (uint16_t) (s.data[2] << 8 | s.data[3]);
        assert_true(pcp_addr_from_string(internal, &a));
        q.family = pcp_addr_is_ipv4(&a) ? AF_INET : AF_INET6;
        s.pos = 9 + 16 * (size_t) s.data[8];
        while (k == 0 && (d = next_datagram(&s, &len)) != NULL) {
                k = pcpd_sock_diag_parse_owners(d, len, &q, &o);
                free(d);
        }
        assert_int_equal(k, 1);
        return o;
}

static void assert_owners(pcpd_port_owners o, bool caller_exact, bool caller_wildcard, bool other_exact) {
        assert_int_equal(o.caller_exact, caller_exact);
        assert_int_equal(o.caller_wildcard, caller_wildcard);
        assert_int_equal(o.other_exact, other_exact);
}

static void test_real_sockets(void **state) {
        /* TCP 8080: 192.0.2.10 listening (IPv4), :: v6-only listening, and a connection */
        assert_owners(owners_of("diag-tcp-listen-8080-v4", 0, "192.0.2.10"), true, false, false);
        assert_owners(owners_of("diag-tcp-listen-8080-v4", 1000, "192.0.2.10"), false, false, true);
        assert_owners(owners_of("diag-tcp-listen-8080-v4", 0, "198.51.100.10"), false, false, false);
        /* the v6-only wildcard takes IPv6 only */
        assert_owners(owners_of("diag-tcp-listen-8080-v6", 0, "2001:db8:2::10"), false, true, false);
        /* :: not v6-only (8082) takes IPv4 too */
        assert_owners(owners_of("diag-tcp-dual-8082", 0, "192.0.2.10"), false, true, false);
        /* a loopback socket (8081) proves nothing */
        assert_owners(owners_of("diag-tcp-loopback-8081", 0, "192.0.2.10"), false, false, false);
        /* UDP 5353: 0.0.0.0 and 198.51.100.10 */
        assert_owners(owners_of("diag-udp-5353-v4", 0, "198.51.100.10"), true, true, false);
        assert_owners(owners_of("diag-udp-5353-v4", 0, "192.0.2.10"), false, true, false);
        /* UDP 5353 IPv6: 2001:db8:2::10 v6-only */
        assert_owners(owners_of("diag-udp-5353-v6", 0, "2001:db8:2::10"), true, false, false);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_real_routes),       cmocka_unit_test(test_short_messages),
                cmocka_unit_test(test_unusable_gateways), cmocka_unit_test(test_real_sockets),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
