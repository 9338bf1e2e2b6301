/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the kernel's netlink replies pcpd reads (daemon/pcpd-netlink.c): the
 * route dumps of its default routers (pcpd_netlink_parse_routes()) and the socket dumps
 * of its port ownership proof (pcpd_sock_diag_parse_owners()), and the classification of
 * a bound socket (pcpd_bind_matches()).
 *
 * Input: octet 0 0x44: the host snapshot (pcpd_host_snapshot_apply(), daemon/pcpd-host.c):
 *        datagrams only, applied in order and then all again.
 *        octet 0 even (not 0x42, 0x44): routes; octet 1 is how many routers may be kept (modulo 9).
 *        octet 0 odd: sockets; octet 1 the query's flags (bit 0 TCP, else UDP; bit 1
 *        listening only; bit 2 an IPv6 mapping, else IPv4), then its port (2 octets, big
 *        endian), uid (4), the number of internal addresses (1, modulo 5) and those
 *        addresses (16 octets each).
 *        Then the dump: datagrams, each behind its length (2 octets, big endian), as recv()
 *        returned them; they are parsed in order until one ends the dump or fails.
 * The seeds are real dumps (tests/fuzz/capture-netlink.py).
 *
 * Checked, besides no crash / leak / sanitizer report (each datagram is copied into a
 * buffer of its exact size, so a read past it is caught):
 *  - routes: no more than asked for, each a unicast gateway of its family (IPv4 as
 *    IPv4-mapped), on port 5351, a scope only for a link-local one, no router twice, and
 *    the list only grows; written back as a dump of RTM_NEWROUTE messages they read back
 *    the same; the same messages one per datagram give the same routers;
 *  - sockets: the owners only ever gain (a datagram cannot take proof away), match a
 *    second, independent reading of the dump (bounds checked at every step, and the
 *    classification rules of pcpd-netlink.h), and a caller's socket never counts as
 *    another user's nor the other way round;
 *  - pcpd_bind_matches(): the rules its header states, on every address and flag.
 */

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz-common.h"
#include "pcpd-host.h"
#include "pcpd-netlink.h"

typedef struct reader {
        const uint8_t *p;
        size_t left;
} reader;

static uint8_t rd8(reader *r) {
        if (r->left == 0)
                return 0;
        r->left--;
        return *r->p++;
}

static uint16_t rd16(reader *r) {
        uint16_t v = rd8(r);
        return (uint16_t) (v << 8 | rd8(r));
}

/* the next datagram, in a buffer of its own (malloc()ed, so aligned as recv()'s is) */
static uint8_t *next_datagram(reader *r, size_t *len) {
        size_t n;
        uint8_t *d;

        if (r->left == 0)
                return NULL;
        n = rd16(r);
        if (n > r->left)
                n = r->left;
        d = malloc(n > 0 ? n : 1);
        fuzz_check(d != NULL, "malloc");
        memcpy(d, r->p, n);
        r->p += n;
        r->left -= n;
        *len = n;
        return d;
}

/* ---- routes ---- */

static bool router_eq(const pcpd_router *a, const pcpd_router *b) {
        return a->family == b->family && memcmp(&a->addr, &b->addr, sizeof(a->addr)) == 0 &&
               a->ifindex == b->ifindex && a->metric == b->metric;
}

static void check_routers(const pcpd_router *r, size_t n, size_t max) {
        fuzz_check(n <= max, "%zu routers kept, at most %zu asked for", n, max);
        for (size_t i = 0; i < n; i++) {
                fuzz_check(r[i].family == AF_INET || r[i].family == AF_INET6, "family %d", r[i].family);
                fuzz_check(r[i].addr.sin6_family == AF_INET6 && ntohs(r[i].addr.sin6_port) == PCP_SERVER_PORT,
                           "router %zu: address family or port", i);
                fuzz_check((r[i].family == AF_INET) == pcp_addr_is_ipv4(&r[i].addr.sin6_addr),
                           "router %zu: an address of another family", i);
                fuzz_check(!pcp_addr_is_unspecified(&r[i].addr.sin6_addr) &&
                                   !IN6_IS_ADDR_MULTICAST(&r[i].addr.sin6_addr) &&
                                   !(r[i].family == AF_INET && (r[i].addr.sin6_addr.s6_addr[12] & 0xf0) == 0xe0),
                           "router %zu: no unicast address", i);
                fuzz_check(r[i].addr.sin6_scope_id ==
                                   (IN6_IS_ADDR_LINKLOCAL(&r[i].addr.sin6_addr) ? r[i].ifindex : 0u),
                           "router %zu: scope %u", i, r[i].addr.sin6_scope_id);
                fuzz_check(r[i].ifname[0] == '\0', "router %zu: an interface name from a pure parser", i);
                for (size_t j = 0; j < i; j++)
                        fuzz_check(!(pcp_addr_eq(&r[i].addr.sin6_addr, &r[j].addr.sin6_addr) &&
                                     r[i].ifindex == r[j].ifindex),
                                   "router %zu twice", j);
        }
}

static void put_attr(uint8_t *buf, size_t *off, uint16_t type, const void *data, uint16_t len) {
        struct rtattr a = { .rta_len = (unsigned short) RTA_LENGTH(len), .rta_type = type };

        memcpy(buf + *off, &a, sizeof(a));
        memcpy(buf + *off + RTA_LENGTH(0), data, len);
        *off += RTA_SPACE(len);
}

/* the routers as the kernel would dump them: one RTM_NEWROUTE each, then NLMSG_DONE */
static size_t encode_routes(const pcpd_router *r, size_t n, uint8_t *buf) {
        size_t off = 0;

        for (size_t i = 0; i < n; i++) {
                struct nlmsghdr h = { .nlmsg_type = RTM_NEWROUTE, .nlmsg_flags = NLM_F_MULTI };
                struct rtmsg rt = { .rtm_family = (unsigned char) r[i].family, .rtm_table = RT_TABLE_MAIN,
                                    .rtm_type = RTN_UNICAST };
                size_t start = off;

                off += NLMSG_HDRLEN;
                memcpy(buf + off, &rt, sizeof(rt));
                off += NLMSG_ALIGN(sizeof(rt));
                if (r[i].family == AF_INET)
                        put_attr(buf, &off, RTA_GATEWAY, &r[i].addr.sin6_addr.s6_addr[12], 4);
                else
                        put_attr(buf, &off, RTA_GATEWAY, &r[i].addr.sin6_addr, 16);
                put_attr(buf, &off, RTA_OIF, &r[i].ifindex, 4);
                put_attr(buf, &off, RTA_PRIORITY, &r[i].metric, 4);
                h.nlmsg_len = (uint32_t) (off - start);
                memcpy(buf + start, &h, sizeof(h));
        }
        {
                struct nlmsghdr done = { .nlmsg_len = NLMSG_LENGTH(sizeof(int)), .nlmsg_type = NLMSG_DONE };
                memset(buf + off, 0, NLMSG_SPACE(sizeof(int)));
                memcpy(buf + off, &done, sizeof(done));
                off += NLMSG_SPACE(sizeof(int));
        }
        return off;
}

static void fuzz_routes(reader *in) {
        pcpd_router got[PCPD_MAX_ROUTERS], again[PCPD_MAX_ROUTERS], one[PCPD_MAX_ROUTERS];
        size_t max = rd8(in) % (PCPD_MAX_ROUTERS + 1), n = 0, n_again = 0, n_one = 0;
        uint8_t *d;
        size_t len;
        int r = 0, r_one = 0;
        bool one_done = false;

        memset(got, 0, sizeof(got));
        memset(one, 0, sizeof(one));
        while (r == 0 && (d = next_datagram(in, &len)) != NULL) {
                pcpd_router before[PCPD_MAX_ROUTERS];
                size_t n_before = n;

                memcpy(before, got, sizeof(got));
                r = pcpd_netlink_parse_routes(d, len, got, max, &n);
                fuzz_check(r <= 1, "r %d", r);
                check_routers(got, n, max);
                fuzz_check(n >= n_before, "routers lost");
                for (size_t i = 0; i < n_before; i++)
                        fuzz_check(router_eq(&before[i], &got[i]), "router %zu changed", i);

                /* the same messages, each in a datagram of its own */
                for (size_t off = 0; !one_done && off + NLMSG_HDRLEN <= len;) {
                        struct nlmsghdr h;
                        uint8_t *m;

                        memcpy(&h, d + off, sizeof(h));
                        if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off)
                                break;
                        m = malloc(h.nlmsg_len);
                        memcpy(m, d + off, h.nlmsg_len);
                        r_one = pcpd_netlink_parse_routes(m, h.nlmsg_len, one, max, &n_one);
                        free(m);
                        if (r_one != 0)
                                one_done = true;
                        off += NLMSG_ALIGN(h.nlmsg_len);
                }
                free(d);
        }
        /* one message per datagram gives the same routers */
        fuzz_check(n_one == n && (r < 0) == (r_one < 0), "one message at a time: %zu routers of %zu, %d/%d", n_one, n,
                   r_one, r);
        for (size_t i = 0; i < n; i++)
                fuzz_check(router_eq(&got[i], &one[i]), "router %zu differs one message at a time", i);

        /* written back, they read back the same */
        {
                static uint8_t buf[PCPD_MAX_ROUTERS * 128 + 64];
                size_t l = encode_routes(got, n, buf);
                uint8_t *exact = malloc(l);

                memcpy(exact, buf, l);
                r = pcpd_netlink_parse_routes(exact, l, again, PCPD_MAX_ROUTERS, &n_again);
                free(exact);
                fuzz_check(r == 1 && n_again == n, "written back: r %d, %zu routers of %zu", r, n_again, n);
                for (size_t i = 0; i < n; i++)
                        fuzz_check(router_eq(&got[i], &again[i]), "router %zu written back reads differently", i);
        }
}

/* ---- sockets ---- */

/* pcpd-netlink.h's rules, read again: which mapping a bound socket receives */
static pcpd_bind_match ref_bind(int sock_family, const struct in6_addr *bound, bool v6only, int family,
                                const struct in6_addr *internal, size_t n) {
        bool mapped = pcp_addr_is_ipv4(bound);

        if (sock_family != AF_INET && sock_family != AF_INET6)
                return PCPD_BIND_NONE;
        if (family == AF_INET) {
                /* IPv4 reaches IPv4 sockets, and IPv6 sockets that are not v6-only: the
                 * wildcard :: or an IPv4-mapped address */
                if (sock_family == AF_INET6 && v6only)
                        return PCPD_BIND_NONE;
                if (sock_family == AF_INET && !mapped)
                        return PCPD_BIND_NONE;
                if (sock_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(bound))
                        return PCPD_BIND_WILDCARD;
                if (!mapped)
                        return PCPD_BIND_NONE;
        } else {
                /* IPv6 reaches IPv6 sockets bound to an IPv6 address or :: */
                if (sock_family == AF_INET || mapped)
                        return PCPD_BIND_NONE;
        }
        if (pcp_addr_is_unspecified(bound))
                return PCPD_BIND_WILDCARD;
        for (size_t i = 0; i < n; i++)
                if (pcp_addr_eq(bound, &internal[i]))
                        return PCPD_BIND_EXACT;
        return PCPD_BIND_NONE;
}

/* a second reading of one datagram: every length checked before it is used */
static int ref_owners(const uint8_t *d, size_t len, const pcpd_port_query *q, pcpd_port_owners *o) {
        size_t off = 0;

        while (len - off >= NLMSG_HDRLEN) {
                struct nlmsghdr h;
                struct inet_diag_msg m;
                struct in6_addr bound;
                bool v6only = true;
                pcpd_bind_match match;

                memcpy(&h, d + off, sizeof(h));
                if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off)
                        return 0;
                if (h.nlmsg_type == NLMSG_DONE)
                        return 1;
                if (h.nlmsg_type == NLMSG_ERROR)
                        return -1;
                if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY && h.nlmsg_len >= NLMSG_LENGTH(sizeof(m))) {
                        memcpy(&m, d + off + NLMSG_HDRLEN, sizeof(m));
                        if (ntohs(m.id.idiag_sport) == q->port &&
                            !(q->protocol == IPPROTO_TCP && q->listening && m.idiag_state != TCP_LISTEN) &&
                            (m.idiag_family == AF_INET || m.idiag_family == AF_INET6)) {
                                if (m.idiag_family == AF_INET) {
                                        struct in_addr v4;
                                        memcpy(&v4, m.id.idiag_src, 4);
                                        pcp_addr_from_ipv4(&v4, &bound);
                                } else {
                                        size_t a = off + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(m)), end = off + h.nlmsg_len;

                                        memcpy(&bound, m.id.idiag_src, 16);
                                        while (end >= a && end - a >= sizeof(struct rtattr)) {
                                                struct rtattr at;

                                                memcpy(&at, d + a, sizeof(at));
                                                if (at.rta_len < sizeof(at) || at.rta_len > end - a)
                                                        break;
                                                if (at.rta_type == INET_DIAG_SKV6ONLY && at.rta_len > RTA_LENGTH(0))
                                                        v6only = d[a + RTA_LENGTH(0)] != 0;
                                                a += RTA_ALIGN(at.rta_len);
                                        }
                                }
                                match = ref_bind(m.idiag_family, &bound, v6only, q->family, q->internal,
                                                 q->n_internal);
                                if (m.idiag_uid == q->uid) {
                                        o->caller_exact |= match == PCPD_BIND_EXACT;
                                        o->caller_wildcard |= match == PCPD_BIND_WILDCARD;
                                } else
                                        o->other_exact |= match == PCPD_BIND_EXACT;
                        }
                }
                off += NLMSG_ALIGN(h.nlmsg_len);
                if (off > len)
                        break;
        }
        return 0;
}

/* The internal addresses of a mapping are of its family (pcpd-netlink.h): IPv4-mapped for
 * IPv4, anything else for IPv6. */
static void make_family(struct in6_addr *a, int family) {
        static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

        if (family == AF_INET)
                memcpy(a->s6_addr, mapped, 12);
        else if (pcp_addr_is_ipv4(a))
                a->s6_addr[0] = 0x20;
}

static bool owners_eq(const pcpd_port_owners *a, const pcpd_port_owners *b) {
        return a->caller_exact == b->caller_exact && a->caller_wildcard == b->caller_wildcard &&
               a->other_exact == b->other_exact;
}

static void fuzz_sockets(reader *in) {
        struct in6_addr internal[4];
        uint8_t flags = rd8(in);
        pcpd_port_query q = {
                .protocol = flags & 1 ? IPPROTO_TCP : IPPROTO_UDP,
                .listening = flags & 2,
                .family = flags & 4 ? AF_INET6 : AF_INET,
                .internal = internal,
        };
        pcpd_port_owners got = { 0 }, want = { 0 }, other = { 0 };
        uint8_t *d;
        size_t len;
        int r = 0;

        q.port = rd16(in);
        q.uid = (uid_t) rd16(in) << 16;
        q.uid |= rd16(in);
        q.n_internal = rd8(in) % 5;
        for (size_t i = 0; i < q.n_internal; i++) {
                for (size_t k = 0; k < 16; k++)
                        internal[i].s6_addr[k] = rd8(in);
                make_family(&internal[i], q.family);
        }

        while (r == 0 && (d = next_datagram(in, &len)) != NULL) {
                pcpd_port_owners before = got;
                pcpd_port_query q2 = q;
                int rr;

                r = pcpd_sock_diag_parse_owners(d, len, &q, &got);
                rr = ref_owners(d, len, &q, &want);
                fuzz_check((r > 0) == (rr > 0) && (r < 0) == (rr < 0), "parser %d, reference %d", r, rr);
                fuzz_check(owners_eq(&got, &want), "owners: parser %d%d%d, reference %d%d%d", got.caller_exact,
                           got.caller_wildcard, got.other_exact, want.caller_exact, want.caller_wildcard,
                           want.other_exact);
                fuzz_check((!before.caller_exact || got.caller_exact) && (!before.caller_wildcard || got.caller_wildcard) &&
                                   (!before.other_exact || got.other_exact),
                           "a datagram took proof away");
                /* the same dump for another user: what was the caller's is another's */
                q2.uid = q.uid ^ 0x80000000u;
                (void) pcpd_sock_diag_parse_owners(d, len, &q2, &other);
                free(d);
        }
        /* the same sockets seen by the other user: one's exact socket is the other's */
        fuzz_check(!got.caller_exact || other.other_exact, "the caller's exact socket is no one's for another user");
        fuzz_check(!other.caller_exact || got.other_exact, "another user's exact socket is not the caller's other");
}

/* ---- the classification alone ---- */

static void fuzz_bind(reader *in) {
        struct in6_addr bound, internal[3];
        uint8_t f = rd8(in);
        int sock_family = (int[]) { AF_INET, AF_INET6, AF_UNIX, 0 }[f & 3];
        int family = f & 4 ? AF_INET6 : AF_INET;
        bool v6only = f & 8;
        size_t n = (f >> 4) % 4;
        pcpd_bind_match m;

        for (size_t k = 0; k < 16; k++)
                bound.s6_addr[k] = rd8(in);
        if (f & 0x40) /* an IPv4-mapped or unspecified address now and then */
                memset(bound.s6_addr, 0, f & 0x80 ? 16 : 10), bound.s6_addr[10] = bound.s6_addr[11] = 0xff;
        for (size_t i = 0; i < n; i++) {
                internal[i] = i == 0 && (f & 0x80) ? bound : (struct in6_addr) { .s6_addr = { [0] = 0x20, [15] = (uint8_t) i } };
                make_family(&internal[i], family);
        }
        m = pcpd_bind_matches(sock_family, &bound, v6only, family, internal, n);
        fuzz_check(m == ref_bind(sock_family, &bound, v6only, family, internal, n), "bind %d/%d/%d: %d", sock_family,
                   family, v6only, m);
}

/* ---- the host snapshot (pcpd-host.c) ---- */

static int addr_cmp(const void *a, const void *b) {
        return memcmp(a, b, sizeof(pcpd_host_addr));
}

static int link_cmp(const void *a, const void *b) {
        const pcpd_host_link *x = a, *y = b;
        return x->ifindex < y->ifindex ? -1 : x->ifindex > y->ifindex;
}

static void check_snapshot(const pcpd_host_snapshot *s) {
        fuzz_check(s->n_links <= PCPD_HOST_MAX_LINKS && s->n_addrs <= PCPD_HOST_MAX_ADDRS, "%zu links, %zu addresses",
                   s->n_links, s->n_addrs);
        for (size_t i = 0; i < s->n_links; i++) {
                fuzz_check(s->links[i].ifindex > 0, "link %zu: ifindex 0", i);
                fuzz_check(memchr(s->links[i].name, '\0', sizeof(s->links[i].name)) != NULL, "link %zu: name not ended", i);
                for (size_t j = 0; j < i; j++)
                        fuzz_check(s->links[i].ifindex != s->links[j].ifindex, "links %zu and %zu: one ifindex", i, j);
        }
        for (size_t i = 0; i < s->n_addrs; i++) {
                const pcpd_host_addr *x = &s->addrs[i];
                fuzz_check(x->family == AF_INET || x->family == AF_INET6, "address %zu: family %d", i, x->family);
                fuzz_check(x->ifindex > 0, "address %zu: ifindex 0", i);
                if (x->family == AF_INET)
                        fuzz_check(pcp_addr_is_ipv4(&x->addr), "address %zu: IPv4 not IPv4-mapped", i);
                fuzz_check(i == 0 || s->addrs[i - 1].ifindex <= x->ifindex, "address %zu out of ifindex order", i);
                for (size_t j = 0; j < i; j++)
                        fuzz_check(s->addrs[j].ifindex != x->ifindex || !pcp_addr_eq(&s->addrs[j].addr, &x->addr),
                                   "addresses %zu and %zu: the same", j, i);
        }
        /* what the iteration gives: addresses of known links that are up and not the loopback */
        {
                pcpd_host_addr x;
                char name[IF_NAMESIZE];
                size_t n = 0;
                for (size_t i = 0; pcpd_host_snapshot_next(s, &i, &x, name); n++) {
                        fuzz_check(n < s->n_addrs, "more usable addresses than addresses");
                        fuzz_check(pcpd_host_snapshot_has_address(s, &x.addr, NULL), "a usable address not had");
                }
        }
}

/* the snapshot as sorted sets, to compare two */
static bool snapshot_eq(const pcpd_host_snapshot *a, const pcpd_host_snapshot *b) {
        bool eq = a->n_links == b->n_links && a->n_addrs == b->n_addrs;
        pcpd_host_link *la, *lb;
        pcpd_host_addr *aa, *ab;

        if (!eq)
                return false;
        la = malloc(sizeof(*la) * (a->n_links + 1));
        lb = malloc(sizeof(*lb) * (a->n_links + 1));
        aa = malloc(sizeof(*aa) * (a->n_addrs + 1));
        ab = malloc(sizeof(*ab) * (a->n_addrs + 1));
        fuzz_check(la != NULL && lb != NULL && aa != NULL && ab != NULL, "malloc");
        if (a->n_links > 0) {
                memcpy(la, a->links, sizeof(*la) * a->n_links);
                memcpy(lb, b->links, sizeof(*lb) * a->n_links);
        }
        if (a->n_addrs > 0) {
                memcpy(aa, a->addrs, sizeof(*aa) * a->n_addrs);
                memcpy(ab, b->addrs, sizeof(*ab) * a->n_addrs);
        }
        qsort(la, a->n_links, sizeof(*la), link_cmp);
        qsort(lb, a->n_links, sizeof(*lb), link_cmp);
        qsort(aa, a->n_addrs, sizeof(*aa), addr_cmp);
        qsort(ab, a->n_addrs, sizeof(*ab), addr_cmp);
        for (size_t i = 0; i < a->n_links && eq; i++)
                eq = la[i].ifindex == lb[i].ifindex && la[i].flags == lb[i].flags &&
                     strcmp(la[i].name, lb[i].name) == 0;
        eq = eq && (a->n_addrs == 0 || memcmp(aa, ab, sizeof(*aa) * a->n_addrs) == 0);
        free(la);
        free(lb);
        free(aa);
        free(ab);
        return eq;
}

static void snapshot_copy(pcpd_host_snapshot *to, const pcpd_host_snapshot *from) {
        *to = (pcpd_host_snapshot) { .n_links = from->n_links, .n_addrs = from->n_addrs };
        to->cap_links = to->n_links;
        to->cap_addrs = to->n_addrs;
        to->links = malloc(sizeof(*to->links) * (to->n_links + 1));
        to->addrs = malloc(sizeof(*to->addrs) * (to->n_addrs + 1));
        fuzz_check(to->links != NULL && to->addrs != NULL, "malloc");
        if (from->n_links > 0)
                memcpy(to->links, from->links, sizeof(*to->links) * from->n_links);
        if (from->n_addrs > 0)
                memcpy(to->addrs, from->addrs, sizeof(*to->addrs) * from->n_addrs);
}

/* Datagrams applied one after another (a dump, then events). Each: the snapshot stays
 * well-formed, and a change of its links or addresses is reported. Then all of them
 * again: every message sets or removes what it names, so the second pass ends where the
 * first did (unless a limit dropped something). */
static void fuzz_host(reader *in) {
        pcpd_host_snapshot s = { 0 }, before, once;
        uint8_t *dgs[64];
        size_t lens[64], n = 0;
        uint8_t *d;
        size_t len;

        while (n < 64 && (d = next_datagram(in, &len)) != NULL) {
                dgs[n] = d;
                lens[n++] = len;
        }
        for (int pass = 0; pass < 2; pass++) {
                for (size_t i = 0; i < n; i++) {
                        unsigned changed = 0;
                        int r;

                        snapshot_copy(&before, &s);
                        r = pcpd_host_snapshot_apply(&s, dgs[i], lens[i], &changed);
                        fuzz_check(r <= 1, "r %d", r);
                        fuzz_check((changed & ~(unsigned) (PCPD_HOST_CHANGED_ADDRESSES | PCPD_HOST_CHANGED_ROUTES)) == 0,
                                   "changed %#x", changed);
                        check_snapshot(&s);
                        if (!(changed & PCPD_HOST_CHANGED_ADDRESSES))
                                fuzz_check(snapshot_eq(&before, &s), "datagram %zu changed the snapshot unreported", i);
                        pcpd_host_snapshot_clear(&before);
                }
                if (pass == 0)
                        snapshot_copy(&once, &s);
        }
        if (s.dropped == 0)
                fuzz_check(snapshot_eq(&once, &s), "the same datagrams twice end elsewhere");
        pcpd_host_snapshot_clear(&once);
        pcpd_host_snapshot_clear(&s);
        for (size_t i = 0; i < n; i++)
                free(dgs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        reader in = { data, size };
        uint8_t mode;

        if (size < 1)
                return 0;
        mode = rd8(&in);
        if (mode == 0x42)
                fuzz_bind(&in);
        else if (mode == 0x44)
                fuzz_host(&in);
        else if (mode % 2 == 0)
                fuzz_routes(&in);
        else
                fuzz_sockets(&in);
        return 0;
}
