/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-netlink.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pcp-wire.h"

#define NL_BUF 32768

/* ---- the kernel's replies, parsed ----
 * Pure functions of one datagram of a dump reply (no I/O, no logging), so that a fuzz
 * target can call them; the socket I/O below feeds them what recv() returns.
 * They and what they use stay together, up to "the sockets". */

/* NLMSG_NEXT() and RTA_NEXT() cast a char pointer to the header type, which clang's
 * -Wcast-align rejects; these step the same way. Netlink keeps every message and
 * attribute aligned (NLMSG_ALIGNTO, RTA_ALIGNTO = 4) within a malloc()ed buffer. */
static const struct nlmsghdr *nl_next(const struct nlmsghdr *h, ssize_t *len) {
        size_t step = NLMSG_ALIGN(h->nlmsg_len);

        *len -= (ssize_t) step;
        return (const struct nlmsghdr *) (const void *) ((const uint8_t *) h + step);
}

static const struct rtattr *rta_next(const struct rtattr *a, int *len) {
        size_t step = RTA_ALIGN(a->rta_len);

        *len -= (int) step;
        return (const struct rtattr *) (const void *) ((const uint8_t *) a + step);
}

/* Calls fn on every message of the datagram buf (aligned to 4, as any malloc()ed buffer);
 * 1 when it ends the dump (NLMSG_DONE), 0 when more is to come, a negative errno for the
 * kernel's error (NLMSG_ERROR) or fn's. */
static int nl_parse(const void *buf, size_t len, int (*fn)(const struct nlmsghdr *h, void *ud), void *ud) {
        ssize_t n = (ssize_t) len;
        int r;

        for (const struct nlmsghdr *h = buf; n >= (ssize_t) sizeof(*h) && NLMSG_OK(h, (size_t) n);
             h = nl_next(h, &n)) {
                if (h->nlmsg_type == NLMSG_DONE)
                        return 1;
                if (h->nlmsg_type == NLMSG_ERROR) {
                        const struct nlmsgerr *e = NLMSG_DATA(h);
                        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(e->error)))
                                return -EBADMSG; /* an error that does not say which */
                        return e->error < 0 ? e->error : -EIO;
                }
                r = fn(h, ud);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A router pcpd can send to: a unicast address of the route's family (an IPv6 route through
 * an IPv4-mapped address would be an IPv4 router listed as an IPv6 one). */
static bool gateway_usable(int family, const struct in6_addr *a) {
        if (pcp_addr_is_unspecified(a))
                return false;
        if (family == AF_INET) {
                const uint8_t *v4 = &a->s6_addr[12];
                return (v4[0] & 0xf0) != 0xe0 && !(v4[0] == 255 && v4[1] == 255 && v4[2] == 255 && v4[3] == 255);
        }
        return !pcp_addr_is_ipv4(a) && !IN6_IS_ADDR_MULTICAST(a);
}

typedef struct route_ctx {
        pcpd_router *out;
        size_t max, *n;
} route_ctx;

static int route_cb(const struct nlmsghdr *h, void *ud) {
        route_ctx *c = ud;
        const struct rtmsg *rt = NLMSG_DATA(h);
        int len = (int) RTM_PAYLOAD(h);
        pcpd_router r = { 0 };
        bool have_gw = false;

        /* a message too short for its header is none (nothing past it is read) */
        if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(*rt)))
                return 0;
        if (rt->rtm_dst_len != 0 || rt->rtm_type != RTN_UNICAST ||
            (rt->rtm_table != RT_TABLE_MAIN && rt->rtm_table != RT_TABLE_UNSPEC))
                return 0;
        r.family = rt->rtm_family;
        r.addr.sin6_family = AF_INET6;
        r.addr.sin6_port = htons(PCP_SERVER_PORT);
        for (const struct rtattr *a = (const struct rtattr *) (const void *) ((const uint8_t *) rt +
                                                                            NLMSG_ALIGN(sizeof(*rt)));
             RTA_OK(a, len); a = rta_next(a, &len)) {
                switch (a->rta_type) {
                case RTA_GATEWAY:
                        if (rt->rtm_family == AF_INET && RTA_PAYLOAD(a) == 4) {
                                pcp_addr_from_ipv4((const struct in_addr *) RTA_DATA(a), &r.addr.sin6_addr);
                                have_gw = true;
                        } else if (rt->rtm_family == AF_INET6 && RTA_PAYLOAD(a) == 16) {
                                memcpy(&r.addr.sin6_addr, RTA_DATA(a), 16);
                                have_gw = true;
                        }
                        break;
                case RTA_OIF:
                        if (RTA_PAYLOAD(a) == 4)
                                memcpy(&r.ifindex, RTA_DATA(a), 4);
                        break;
                case RTA_PRIORITY:
                        if (RTA_PAYLOAD(a) == 4)
                                memcpy(&r.metric, RTA_DATA(a), 4);
                        break;
                default:
                        break;
                }
        }
        if (!have_gw || !gateway_usable(r.family, &r.addr.sin6_addr) || *c->n >= c->max)
                return 0;
        if (IN6_IS_ADDR_LINKLOCAL(&r.addr.sin6_addr))
                r.addr.sin6_scope_id = r.ifindex;
        /* the same router twice (several default routes): keep the first */
        for (size_t i = 0; i < *c->n; i++)
                if (memcmp(&c->out[i].addr.sin6_addr, &r.addr.sin6_addr, 16) == 0 && c->out[i].ifindex == r.ifindex)
                        return 0;
        c->out[(*c->n)++] = r;
        return 0;
}

int pcpd_netlink_parse_routes(const void *buf, size_t len, pcpd_router *routers, size_t max, size_t *n) {
        route_ctx c = { .out = routers, .max = max, .n = n };

        return nl_parse(buf, len, route_cb, &c);
}

pcpd_bind_match pcpd_bind_matches(int sock_family, const struct in6_addr *bound, bool v6only, int family,
                                  const struct in6_addr *internal, size_t n) {
        bool v4 = family == AF_INET;

        if (sock_family == AF_INET) {
                /* an IPv4 socket receives IPv4 only */
                if (!v4 || !pcp_addr_is_ipv4(bound))
                        return PCPD_BIND_NONE;
        } else if (sock_family == AF_INET6) {
                if (v4) {
                        /* IPv4 reaches an IPv6 socket as IPv4-mapped, unless it is v6-only */
                        if (v6only)
                                return PCPD_BIND_NONE;
                        if (IN6_IS_ADDR_UNSPECIFIED(bound))
                                return PCPD_BIND_WILDCARD;
                } else if (pcp_addr_is_ipv4(bound))
                        return PCPD_BIND_NONE;
        } else
                return PCPD_BIND_NONE;
        if (pcp_addr_is_unspecified(bound))
                return PCPD_BIND_WILDCARD;
        for (size_t i = 0; i < n; i++)
                if (memcmp(bound, &internal[i], sizeof(*bound)) == 0)
                        return PCPD_BIND_EXACT;
        return PCPD_BIND_NONE;
}

typedef struct diag_ctx {
        const pcpd_port_query *q;
        pcpd_port_owners *owners;
} diag_ctx;

static int diag_cb(const struct nlmsghdr *h, void *ud) {
        diag_ctx *c = ud;
        const struct inet_diag_msg *m = NLMSG_DATA(h);
        int len = (int) h->nlmsg_len - (int) NLMSG_LENGTH(sizeof(*m));
        bool v6only = true; /* not said: assume it takes no IPv4 (fails closed) */
        struct in6_addr bound;
        pcpd_bind_match match;

        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || len < 0)
                return 0;
        if (ntohs(m->id.idiag_sport) != c->q->port)
                return 0;
        if (c->q->protocol == IPPROTO_TCP && c->q->listening && m->idiag_state != TCP_LISTEN)
                return 0;
        if (m->idiag_family == AF_INET)
                pcp_addr_from_ipv4((const struct in_addr *) (const void *) m->id.idiag_src, &bound);
        else if (m->idiag_family == AF_INET6) {
                memcpy(&bound, m->id.idiag_src, sizeof(bound));
                for (const struct rtattr *a = (const struct rtattr *) (const void *) ((const uint8_t *) m +
                                                                                    NLMSG_ALIGN(sizeof(*m)));
                     RTA_OK(a, len); a = rta_next(a, &len))
                        if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1)
                                v6only = *(const uint8_t *) RTA_DATA(a) != 0;
        } else
                return 0;
        match = pcpd_bind_matches(m->idiag_family, &bound, v6only, c->q->family, c->q->internal, c->q->n_internal);
        if (m->idiag_uid == c->q->uid) {
                if (match == PCPD_BIND_EXACT)
                        c->owners->caller_exact = true;
                else if (match == PCPD_BIND_WILDCARD)
                        c->owners->caller_wildcard = true;
        } else if (match == PCPD_BIND_EXACT)
                c->owners->other_exact = true;
        return 0;
}

int pcpd_sock_diag_parse_owners(const void *buf, size_t len, const pcpd_port_query *q, pcpd_port_owners *owners) {
        diag_ctx c = { .q = q, .owners = owners };

        return nl_parse(buf, len, diag_cb, &c);
}

/* ---- the sockets ---- */

static int nl_open(int protocol) {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };

        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* Sends a dump request and gives every datagram of the reply to parse until it says the
 * dump is over (1) or fails. */
static int nl_dump(int fd, void *req, size_t req_len, int (*parse)(const void *buf, size_t len, void *ud),
                   void *ud) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        uint8_t *buf;
        int r = 0;

        if (sendto(fd, req, req_len, 0, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        buf = malloc(NL_BUF);
        if (buf == NULL)
                return -ENOMEM;
        for (;;) {
                ssize_t n = recv(fd, buf, NL_BUF, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                r = parse(buf, (size_t) n, ud);
                if (r != 0)
                        break;
        }
        free(buf);
        return r < 0 ? r : 0;
}

typedef struct routes_dump {
        pcpd_router *out;
        size_t max, n;
} routes_dump;

static int routes_parse(const void *buf, size_t len, void *ud) {
        routes_dump *d = ud;
        return pcpd_netlink_parse_routes(buf, len, d->out, d->max, &d->n);
}

typedef struct owners_dump {
        const pcpd_port_query *q;
        pcpd_port_owners *owners;
} owners_dump;

static int owners_parse(const void *buf, size_t len, void *ud) {
        owners_dump *d = ud;
        return pcpd_sock_diag_parse_owners(buf, len, d->q, d->owners);
}

static int compare_metric(const void *a, const void *b) {
        const pcpd_router *x = a, *y = b;
        if (x->family != y->family)
                return x->family == AF_INET ? -1 : 1;
        return x->metric < y->metric ? -1 : x->metric > y->metric;
}

int pcpd_netlink_default_routers(pcpd_router *ret, size_t max) {
        routes_dump d = { .out = ret, .max = max };
        int fd = nl_open(NETLINK_ROUTE), r = 0;
        const int families[] = { AF_INET, AF_INET6 };

        if (fd < 0)
                return fd;
        for (size_t i = 0; i < 2 && r >= 0; i++) {
                struct {
                        struct nlmsghdr h;
                        struct rtmsg rt;
                } req = {
                        .h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETROUTE,
                               .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = (uint32_t) i + 1 },
                        .rt = { .rtm_family = (unsigned char) families[i] },
                };
                r = nl_dump(fd, &req, sizeof(req), routes_parse, &d);
        }
        close(fd);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d.n; i++)
                if (ret[i].ifindex == 0 || if_indextoname(ret[i].ifindex, ret[i].ifname) == NULL)
                        ret[i].ifname[0] = '\0';
        qsort(ret, d.n, sizeof(*ret), compare_metric);
        return (int) d.n;
}

int pcpd_netlink_route_monitor_open(void) {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
        struct sockaddr_nl sa = {
                .nl_family = AF_NETLINK,
                .nl_groups = RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE | RTMGRP_LINK,
        };

        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

bool pcpd_netlink_route_monitor_drain(int fd) {
        uint8_t buf[8192];
        bool any = false;

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n > 0) {
                        any = true;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == ENOBUFS) {
                        any = true; /* we lost some: assume a change */
                        continue;
                }
                return any;
        }
}

int pcpd_sock_diag_port_owners(const pcpd_port_query *q, pcpd_port_owners *ret) {
        pcpd_port_owners owners = { 0 };
        owners_dump d = { .q = q, .owners = &owners };
        int fd, r = 0;
        const int families[] = { AF_INET, AF_INET6 };

        if (q->protocol != IPPROTO_TCP && q->protocol != IPPROTO_UDP)
                return -EPROTONOSUPPORT;
        /* a netlink socket sees the sockets of its own network namespace only: pcpd's */
        fd = nl_open(NETLINK_SOCK_DIAG);
        if (fd < 0)
                return fd;
        for (size_t i = 0; i < 2 && r >= 0; i++) {
                struct {
                        struct nlmsghdr h;
                        struct inet_diag_req_v2 req;
                } req = {
                        .h = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                               .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = (uint32_t) i + 1 },
                        .req = { .sdiag_family = (uint8_t) families[i], .sdiag_protocol = q->protocol,
                                 .idiag_states = q->protocol == IPPROTO_TCP && q->listening ? 1u << TCP_LISTEN
                                                                                             : ~0u },
                };
                req.req.id.idiag_sport = htons(q->port);
                r = nl_dump(fd, &req, sizeof(req), owners_parse, &d);
        }
        close(fd);
        if (r < 0)
                return r;
        *ret = owners;
        return 0;
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* Linux 5.14 */
#endif

static int netns_cookie(int fd, uint64_t *ret) {
        uint64_t cookie = 0;
        socklen_t l = sizeof(cookie);

        if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &l) < 0)
                return -errno;
        if (l != sizeof(cookie) || cookie == 0)
                return -EIO;
        *ret = cookie;
        return 0;
}

int pcpd_socket_in_own_netns(int fd) {
        static uint64_t own = 0; /* pcpd never changes its network namespace */
        uint64_t theirs = 0; /* (gcc -O3 warns maybe-uninitialized without it) */
        int r;

        if (own == 0) {
                int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                if (probe < 0)
                        return -errno;
                r = netns_cookie(probe, &own);
                close(probe);
                if (r < 0)
                        return r;
        }
        r = netns_cookie(fd, &theirs);
        if (r < 0)
                return r;
        return theirs == own;
}

int pcpd_socket_describe(int fd, pcpd_socket_info *ret) {
        pcpd_socket_info info = { 0 };
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss), ol = sizeof(int);
        int v = 0;

        if (getsockname(fd, (struct sockaddr *) &ss, &sl) < 0)
                return -errno;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &info.type, &ol) < 0)
                return -errno;
        ol = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &info.protocol, &ol) < 0)
                return -errno;
        ol = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &ol) < 0)
                return -errno;
        info.listening = v != 0;
        info.family = ss.ss_family;
        if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *) &ss;
                pcp_addr_from_ipv4(&sin->sin_addr, &info.bound);
                info.port = ntohs(sin->sin_port);
        } else if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) &ss;
                info.bound = sin6->sin6_addr;
                info.port = ntohs(sin6->sin6_port);
                v = 1;
                ol = sizeof(int);
                if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &ol) < 0)
                        return -errno;
                info.v6only = v != 0;
        } else
                return -EAFNOSUPPORT;
        *ret = info;
        return 0;
}
