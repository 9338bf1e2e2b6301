/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host snapshot (pcpd-host.c): the update function fed with netlink messages built
 * here, the way the kernel sends them (a dump, then events), and the cache itself against
 * this kernel: asking again reads no netlink dump. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcpd-host.h"

/* ---- building datagrams ---- */

typedef struct dgram {
        uint32_t words[4096]; /* aligned to 4, as recv()'s buffer */
        size_t len;
} dgram;

static uint8_t *bytes(dgram *d) {
        return (uint8_t *) d->words;
}

static struct nlmsghdr *msg_begin(dgram *d, uint16_t type, size_t body) {
        struct nlmsghdr *h = (struct nlmsghdr *) (void *) (bytes(d) + d->len);

        memset(h, 0, NLMSG_SPACE(body));
        h->nlmsg_type = type;
        h->nlmsg_len = (uint32_t) NLMSG_LENGTH(body);
        return h;
}

static void attr_add(struct nlmsghdr *h, uint16_t type, const void *data, size_t len) {
        struct rtattr *a = (struct rtattr *) (void *) ((uint8_t *) h + NLMSG_ALIGN(h->nlmsg_len));

        a->rta_type = type;
        a->rta_len = (uint16_t) RTA_LENGTH(len);
        memcpy(RTA_DATA(a), data, len);
        h->nlmsg_len = (uint32_t) (NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len));
}

static void msg_end(dgram *d, struct nlmsghdr *h) {
        d->len += NLMSG_ALIGN(h->nlmsg_len);
}

static void put_link(dgram *d, uint16_t type, int ifindex, unsigned flags, const char *name) {
        struct nlmsghdr *h = msg_begin(d, type, sizeof(struct ifinfomsg));
        struct ifinfomsg *ifi = NLMSG_DATA(h);

        ifi->ifi_index = ifindex;
        ifi->ifi_flags = flags;
        if (name != NULL)
                attr_add(h, IFLA_IFNAME, name, strlen(name) + 1);
        msg_end(d, h);
}

/* address: IFA_ADDRESS; local (may be NULL): IFA_LOCAL, both as text of the family */
static void put_addr(dgram *d, uint16_t type, unsigned ifindex, const char *address, const char *local) {
        int family = strchr(address, ':') != NULL ? AF_INET6 : AF_INET;
        struct nlmsghdr *h = msg_begin(d, type, sizeof(struct ifaddrmsg));
        struct ifaddrmsg *ifa = NLMSG_DATA(h);
        uint8_t raw[16];
        size_t n = family == AF_INET ? 4 : 16;

        ifa->ifa_family = (uint8_t) family;
        ifa->ifa_index = ifindex;
        ifa->ifa_prefixlen = family == AF_INET ? 24 : 64;
        assert_int_equal(inet_pton(family, address, raw), 1);
        attr_add(h, IFA_ADDRESS, raw, n);
        if (local != NULL) {
                assert_int_equal(inet_pton(family, local, raw), 1);
                attr_add(h, IFA_LOCAL, raw, n);
        }
        msg_end(d, h);
}

static void put_done(dgram *d) {
        struct nlmsghdr *h = msg_begin(d, NLMSG_DONE, sizeof(int));
        msg_end(d, h);
}

static void put_error(dgram *d, int error) {
        struct nlmsghdr *h = msg_begin(d, NLMSG_ERROR, sizeof(struct nlmsgerr));
        ((struct nlmsgerr *) NLMSG_DATA(h))->error = error;
        msg_end(d, h);
}

static unsigned apply(pcpd_host_snapshot *s, dgram *d, int expect) {
        unsigned changed = 0;

        assert_int_equal(pcpd_host_snapshot_apply(s, d->words, d->len, &changed), expect);
        d->len = 0;
        return changed;
}

static struct in6_addr in6(const char *text) {
        struct in6_addr a = { 0 };

        if (strchr(text, ':') != NULL)
                assert_int_equal(inet_pton(AF_INET6, text, &a), 1);
        else {
                a.s6_addr[10] = a.s6_addr[11] = 0xff;
                assert_int_equal(inet_pton(AF_INET, text, &a.s6_addr[12]), 1);
        }
        return a;
}

/* the usable addresses, as "ifname address" lines */
static void usable(const pcpd_host_snapshot *s, char *out, size_t size) {
        pcpd_host_addr x;
        char name[IF_NAMESIZE];

        out[0] = '\0';
        for (size_t i = 0; pcpd_host_snapshot_next(s, &i, &x, name);) {
                char t[INET6_ADDRSTRLEN];
                if (x.family == AF_INET)
                        inet_ntop(AF_INET, &x.addr.s6_addr[12], t, sizeof(t));
                else
                        inet_ntop(AF_INET6, &x.addr, t, sizeof(t));
                snprintf(out + strlen(out), size - strlen(out), "%s %s\n", name, t);
        }
}

/* lo (1), eth0 (2, up), eth1 (3, down), as a dump: links, then addresses */
static void dump_three(pcpd_host_snapshot *s) {
        static dgram d;

        put_link(&d, RTM_NEWLINK, 1, IFF_UP | IFF_LOOPBACK, "lo");
        put_link(&d, RTM_NEWLINK, 2, IFF_UP, "eth0");
        put_link(&d, RTM_NEWLINK, 3, 0, "eth1");
        assert_int_equal(apply(s, &d, 0), PCPD_HOST_CHANGED_ADDRESSES);
        put_done(&d);
        assert_int_equal(apply(s, &d, 1), 0);
        put_addr(&d, RTM_NEWADDR, 1, "127.0.0.1", "127.0.0.1");
        put_addr(&d, RTM_NEWADDR, 2, "192.0.2.10", "192.0.2.10");
        put_addr(&d, RTM_NEWADDR, 2, "2001:db8::10", NULL);
        put_addr(&d, RTM_NEWADDR, 3, "198.51.100.7", "198.51.100.7");
        put_done(&d); /* ends the dump: what follows in the datagram is not read */
        put_addr(&d, RTM_NEWADDR, 2, "203.0.113.99", NULL);
        assert_int_equal(apply(s, &d, 1), PCPD_HOST_CHANGED_ADDRESSES);
}

/* ---- the update function ---- */

static void test_dump(void **state) {
        pcpd_host_snapshot s = { 0 };
        char text[512], ifname[IF_NAMESIZE] = "";
        struct in6_addr a;

        dump_three(&s);
        assert_int_equal(s.n_links, 3);
        assert_int_equal(s.n_addrs, 4);
        /* not the loopback, not a link that is down */
        usable(&s, text, sizeof(text));
        assert_string_equal(text, "eth0 192.0.2.10\neth0 2001:db8::10\n");
        a = in6("192.0.2.10");
        assert_true(pcpd_host_snapshot_has_address(&s, &a, ifname));
        assert_string_equal(ifname, "eth0");
        a = in6("198.51.100.7");
        assert_false(pcpd_host_snapshot_has_address(&s, &a, NULL));
        a = in6("127.0.0.1");
        assert_false(pcpd_host_snapshot_has_address(&s, &a, NULL));
        a = in6("203.0.113.99");
        assert_false(pcpd_host_snapshot_has_address(&s, &a, NULL));
        pcpd_host_snapshot_clear(&s);
        assert_int_equal(s.n_links + s.n_addrs, 0);
}

static void test_address_events(void **state) {
        static dgram d;
        pcpd_host_snapshot s = { 0 };
        char text[512];

        dump_three(&s);
        /* the kernel repeats RTM_NEWADDR when an IPv6 lifetime is refreshed: no change */
        put_addr(&d, RTM_NEWADDR, 2, "2001:db8::10", NULL);
        assert_int_equal(apply(&s, &d, 0), 0);
        assert_int_equal(s.n_addrs, 4);
        /* a new address, then one removed, in one datagram */
        put_addr(&d, RTM_NEWADDR, 2, "192.0.2.11", "192.0.2.11");
        put_addr(&d, RTM_DELADDR, 2, "192.0.2.10", "192.0.2.10");
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ADDRESSES);
        usable(&s, text, sizeof(text));
        assert_string_equal(text, "eth0 2001:db8::10\neth0 192.0.2.11\n");
        /* removing what is not there changes nothing */
        put_addr(&d, RTM_DELADDR, 2, "192.0.2.10", "192.0.2.10");
        put_addr(&d, RTM_DELADDR, 3, "192.0.2.11", "192.0.2.11"); /* same address, other link */
        assert_int_equal(apply(&s, &d, 0), 0);
        /* a point-to-point address: IFA_LOCAL is ours, IFA_ADDRESS the peer's */
        put_addr(&d, RTM_NEWADDR, 2, "10.9.9.1", "10.9.9.2");
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ADDRESSES);
        usable(&s, text, sizeof(text));
        assert_string_equal(text, "eth0 2001:db8::10\neth0 192.0.2.11\neth0 10.9.9.2\n");
        /* an address of a lower interface comes before those of higher ones, as in a dump */
        put_link(&d, RTM_NEWLINK, 1, IFF_UP, "lo"); /* (not the loopback any more, for the test) */
        put_addr(&d, RTM_NEWADDR, 1, "192.0.2.1", NULL);
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ADDRESSES);
        usable(&s, text, sizeof(text));
        assert_string_equal(text, "lo 127.0.0.1\nlo 192.0.2.1\neth0 2001:db8::10\neth0 192.0.2.11\neth0 10.9.9.2\n");
        pcpd_host_snapshot_clear(&s);
}

static void test_link_events(void **state) {
        static dgram d;
        pcpd_host_snapshot s = { 0 };
        char text[512];

        dump_three(&s);
        /* eth1 comes up: its address is usable */
        put_link(&d, RTM_NEWLINK, 3, IFF_UP, "eth1");
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ADDRESSES);
        usable(&s, text, sizeof(text));
        assert_string_equal(text, "eth0 192.0.2.10\neth0 2001:db8::10\neth1 198.51.100.7\n");
        /* the same again (new statistics), and once without a name: nothing changes */
        put_link(&d, RTM_NEWLINK, 3, IFF_UP, "eth1");
        put_link(&d, RTM_NEWLINK, 3, IFF_UP, NULL);
        assert_int_equal(apply(&s, &d, 0), 0);
        /* renamed */
        put_link(&d, RTM_NEWLINK, 3, IFF_UP, "wan0");
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ADDRESSES);
        usable(&s, text, sizeof(text));
        assert_string_equal(text, "eth0 192.0.2.10\neth0 2001:db8::10\nwan0 198.51.100.7\n");
        /* eth0 goes away: with its addresses, even without RTM_DELADDR for them */
        put_link(&d, RTM_DELLINK, 2, 0, "eth0");
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ADDRESSES);
        assert_int_equal(s.n_links, 2);
        assert_int_equal(s.n_addrs, 2);
        usable(&s, text, sizeof(text));
        assert_string_equal(text, "wan0 198.51.100.7\n");
        /* an address on a link not (yet) known is kept but not usable */
        put_addr(&d, RTM_NEWADDR, 9, "192.0.2.99", NULL);
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ADDRESSES);
        usable(&s, text, sizeof(text));
        assert_string_equal(text, "wan0 198.51.100.7\n");
        put_link(&d, RTM_NEWLINK, 9, IFF_UP, "eth9");
        apply(&s, &d, 0);
        usable(&s, text, sizeof(text));
        assert_string_equal(text, "wan0 198.51.100.7\neth9 192.0.2.99\n");
        pcpd_host_snapshot_clear(&s);
}

static void test_routes_and_errors(void **state) {
        static dgram d;
        pcpd_host_snapshot s = { 0 };
        struct nlmsghdr *h;

        dump_three(&s);
        h = msg_begin(&d, RTM_NEWROUTE, sizeof(struct rtmsg));
        msg_end(&d, h);
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ROUTES);
        h = msg_begin(&d, RTM_DELROUTE, sizeof(struct rtmsg));
        msg_end(&d, h);
        put_addr(&d, RTM_DELADDR, 2, "2001:db8::10", NULL);
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ROUTES | PCPD_HOST_CHANGED_ADDRESSES);
        /* the kernel's error ends the datagram with it; an acknowledgement (0) does not */
        put_error(&d, 0);
        put_addr(&d, RTM_NEWADDR, 2, "192.0.2.20", NULL);
        assert_int_equal(apply(&s, &d, 0), PCPD_HOST_CHANGED_ADDRESSES);
        put_error(&d, -EPERM);
        put_addr(&d, RTM_NEWADDR, 2, "192.0.2.21", NULL);
        assert_int_equal(apply(&s, &d, -EPERM), 0);
        assert_int_equal(s.n_addrs, 4);
        pcpd_host_snapshot_clear(&s);
}

static void test_malformed(void **state) {
        static dgram d;
        pcpd_host_snapshot s = { 0 };
        struct nlmsghdr *h;
        struct ifaddrmsg *ifa;
        uint8_t four[4] = { 192, 0, 2, 77 };
        size_t keep;

        dump_three(&s);
        /* an IPv6 message with a 4-octet address, one with no address, one on ifindex 0 */
        h = msg_begin(&d, RTM_NEWADDR, sizeof(*ifa));
        ifa = NLMSG_DATA(h);
        ifa->ifa_family = AF_INET6;
        ifa->ifa_index = 2;
        attr_add(h, IFA_ADDRESS, four, 4);
        msg_end(&d, h);
        h = msg_begin(&d, RTM_NEWADDR, sizeof(*ifa));
        ifa = NLMSG_DATA(h);
        ifa->ifa_family = AF_INET;
        ifa->ifa_index = 2;
        msg_end(&d, h);
        h = msg_begin(&d, RTM_NEWADDR, sizeof(*ifa));
        ifa = NLMSG_DATA(h);
        ifa->ifa_family = AF_INET;
        attr_add(h, IFA_ADDRESS, four, 4);
        msg_end(&d, h);
        /* a message too short for its header */
        h = msg_begin(&d, RTM_NEWLINK, 0);
        msg_end(&d, h);
        assert_int_equal(apply(&s, &d, 0), 0);
        assert_int_equal(s.n_addrs, 4);
        /* an attribute that claims more than the message holds */
        put_addr(&d, RTM_NEWADDR, 2, "192.0.2.77", NULL);
        keep = d.len;
        h = (struct nlmsghdr *) (void *) bytes(&d);
        ((struct rtattr *) (void *) ((uint8_t *) h + NLMSG_LENGTH(sizeof(*ifa))))->rta_len = 200;
        assert_int_equal(apply(&s, &d, 0), 0);
        assert_int_equal(s.n_addrs, 4);
        /* a message that claims more than the datagram holds: not read */
        put_addr(&d, RTM_NEWADDR, 2, "192.0.2.78", NULL);
        keep = d.len;
        d.len = keep - 4;
        assert_int_equal(apply(&s, &d, 0), 0);
        assert_int_equal(s.n_addrs, 4);
        pcpd_host_snapshot_clear(&s);
}

static void test_limits(void **state) {
        static dgram d;
        pcpd_host_snapshot s = { 0 };

        put_link(&d, RTM_NEWLINK, 2, IFF_UP, "eth0");
        apply(&s, &d, 0);
        for (unsigned i = 0; i < PCPD_HOST_MAX_ADDRS + 10; i++) {
                char t[INET6_ADDRSTRLEN];
                snprintf(t, sizeof(t), "2001:db8::%x:%x", i >> 16, i & 0xffff);
                put_addr(&d, RTM_NEWADDR, 2, t, NULL);
                if (d.len > sizeof(d.words) - 256)
                        apply(&s, &d, 0);
        }
        apply(&s, &d, 0);
        assert_int_equal(s.n_addrs, PCPD_HOST_MAX_ADDRS);
        assert_int_equal(s.dropped, 10);
        pcpd_host_snapshot_clear(&s);
}

/* ---- the cache, against this kernel ---- */

static void test_live(void **state) {
        pcpd_host *h = pcpd_host_new();
        const pcpd_host_snapshot *s;
        struct in6_addr a, b;
        bool lo = false;
        unsigned dumps;

        if (pcpd_host_fd(h) < 0) {
                pcpd_host_free(h);
                if (getenv("CI") != NULL)
                        fail_msg("no rtnetlink event socket in CI");
                skip(); /* a sandbox without netlink (developer machine) */
        }
        s = pcpd_host_get(h);
        for (size_t i = 0; i < s->n_links; i++)
                if (s->links[i].flags & IFF_LOOPBACK)
                        lo = true;
        assert_true(lo);
        dumps = pcpd_host_dumps(h);
        assert_int_equal(dumps, 1);
        /* asking again reads nothing, and the route's source is looked up once */
        for (int k = 0; k < 5; k++) {
                assert_ptr_equal(pcpd_host_get(h), s);
                (void) pcpd_host_route_source(h, AF_INET, &a);
        }
        assert_int_equal(pcpd_host_dumps(h), dumps + 1);
        if (pcpd_host_route_source(h, AF_INET, &b))
                assert_memory_equal(&a, &b, sizeof(a));
        pcpd_host_free(h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dump),        cmocka_unit_test(test_address_events),
                cmocka_unit_test(test_link_events), cmocka_unit_test(test_routes_and_errors),
                cmocka_unit_test(test_malformed),   cmocka_unit_test(test_limits),
                cmocka_unit_test(test_live),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
