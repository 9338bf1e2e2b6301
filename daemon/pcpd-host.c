/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the snapshot (pure) ---- */

/* step to the next message / attribute without casting a char pointer to the header type
 * (clang's -Wcast-align): netlink keeps both aligned to 4 in an aligned buffer */
static const struct nlmsghdr *msg_next(const struct nlmsghdr *h, size_t *left) {
        size_t step = NLMSG_ALIGN(h->nlmsg_len);

        if (step > *left)
                step = *left;
        *left -= step;
        return (const struct nlmsghdr *) (const void *) ((const uint8_t *) h + step);
}

static const struct rtattr *attr_next(const struct rtattr *a, size_t *left) {
        size_t step = RTA_ALIGN(a->rta_len);

        if (step > *left)
                step = *left;
        *left -= step;
        return (const struct rtattr *) (const void *) ((const uint8_t *) a + step);
}

/* the attributes after a message's fixed header (IFLA_RTA()/IFA_RTA() without the cast) */
static const struct rtattr *first_attr(const void *body, size_t header) {
        return (const struct rtattr *) (const void *) ((const uint8_t *) body + NLMSG_ALIGN(header));
}

static bool attr_ok(const struct rtattr *a, size_t left) {
        return left >= sizeof(*a) && a->rta_len >= sizeof(*a) && a->rta_len <= left;
}

static pcpd_host_link *link_find(const pcpd_host_snapshot *s, unsigned ifindex) {
        for (size_t i = 0; i < s->n_links; i++)
                if (s->links[i].ifindex == ifindex)
                        return &s->links[i];
        return NULL;
}

static bool grow(void **p, size_t *cap, size_t n, size_t size, size_t max) {
        size_t c;
        void *q;

        if (n < *cap)
                return true;
        if (n >= max)
                return false;
        c = *cap == 0 ? 8 : *cap * 2;
        if (c > max)
                c = max;
        q = realloc(*p, c * size);
        if (q == NULL)
                return false;
        *p = q;
        *cap = c;
        return true;
}

static void addrs_remove_link(pcpd_host_snapshot *s, unsigned ifindex, unsigned *changed) {
        size_t k = 0;

        for (size_t i = 0; i < s->n_addrs; i++) {
                if (s->addrs[i].ifindex == ifindex) {
                        *changed |= PCPD_HOST_CHANGED_ADDRESSES;
                        continue;
                }
                s->addrs[k++] = s->addrs[i];
        }
        s->n_addrs = k;
}

static void apply_link(pcpd_host_snapshot *s, const struct nlmsghdr *h, unsigned *changed) {
        const struct ifinfomsg *ifi = NLMSG_DATA(h);
        const struct rtattr *a;
        char name[IF_NAMESIZE] = "";
        pcpd_host_link *l;
        size_t left;

        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)) || ifi->ifi_index <= 0)
                return;
        l = link_find(s, (unsigned) ifi->ifi_index);
        if (h->nlmsg_type == RTM_DELLINK) {
                if (l != NULL) {
                        addrs_remove_link(s, l->ifindex, changed);
                        *l = s->links[--s->n_links];
                        *changed |= PCPD_HOST_CHANGED_ADDRESSES;
                }
                return;
        }
        left = h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi));
        for (a = first_attr(ifi, sizeof(*ifi)); attr_ok(a, left); a = attr_next(a, &left))
                if (a->rta_type == IFLA_IFNAME) {
                        size_t n = RTA_PAYLOAD(a) < sizeof(name) - 1 ? RTA_PAYLOAD(a) : sizeof(name) - 1;
                        memcpy(name, RTA_DATA(a), n);
                        name[n] = '\0';
                }
        if (l == NULL) {
                if (!grow((void **) &s->links, &s->cap_links, s->n_links, sizeof(*s->links), PCPD_HOST_MAX_LINKS)) {
                        s->dropped++;
                        return;
                }
                l = &s->links[s->n_links++];
                *l = (pcpd_host_link) { .ifindex = (unsigned) ifi->ifi_index, .flags = ifi->ifi_flags };
                memcpy(l->name, name, sizeof(name));
                *changed |= PCPD_HOST_CHANGED_ADDRESSES;
                return;
        }
        /* an RTM_NEWLINK without a name keeps the one known */
        if (l->flags != ifi->ifi_flags || (name[0] != '\0' && strcmp(l->name, name) != 0)) {
                l->flags = ifi->ifi_flags;
                if (name[0] != '\0')
                        memcpy(l->name, name, sizeof(name));
                *changed |= PCPD_HOST_CHANGED_ADDRESSES;
        }
}

static void apply_addr(pcpd_host_snapshot *s, const struct nlmsghdr *h, unsigned *changed) {
        const struct ifaddrmsg *ifa = NLMSG_DATA(h);
        const struct rtattr *a, *local = NULL, *address = NULL, *use;
        pcpd_host_addr x = { 0 };
        size_t left, len, at;

        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) || ifa->ifa_index == 0)
                return;
        if (ifa->ifa_family == AF_INET)
                len = 4;
        else if (ifa->ifa_family == AF_INET6)
                len = 16;
        else
                return;
        left = h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifa));
        for (a = first_attr(ifa, sizeof(*ifa)); attr_ok(a, left); a = attr_next(a, &left)) {
                if (a->rta_type == IFA_LOCAL)
                        local = a;
                else if (a->rta_type == IFA_ADDRESS)
                        address = a;
        }
        /* IFA_LOCAL is the host's own end of a point-to-point link (IFA_ADDRESS the peer's);
         * without one, IFA_ADDRESS is the address (as getifaddrs() reads them) */
        use = local != NULL ? local : address;
        if (use == NULL || RTA_PAYLOAD(use) != len)
                return;
        x.ifindex = ifa->ifa_index;
        x.family = ifa->ifa_family;
        if (len == 4) {
                x.addr.s6_addr[10] = 0xff;
                x.addr.s6_addr[11] = 0xff;
                memcpy(&x.addr.s6_addr[12], RTA_DATA(use), 4);
        } else
                memcpy(&x.addr, RTA_DATA(use), 16);

        for (size_t i = 0; i < s->n_addrs; i++) {
                if (s->addrs[i].ifindex != x.ifindex || memcmp(&s->addrs[i].addr, &x.addr, sizeof(x.addr)) != 0)
                        continue;
                if (h->nlmsg_type == RTM_DELADDR) {
                        memmove(&s->addrs[i], &s->addrs[i + 1], (s->n_addrs - i - 1) * sizeof(*s->addrs));
                        s->n_addrs--;
                        *changed |= PCPD_HOST_CHANGED_ADDRESSES;
                }
                return; /* known: a refreshed lifetime changes nothing here */
        }
        if (h->nlmsg_type == RTM_DELADDR)
                return;
        if (!grow((void **) &s->addrs, &s->cap_addrs, s->n_addrs, sizeof(*s->addrs), PCPD_HOST_MAX_ADDRS)) {
                s->dropped++;
                return;
        }
        /* after the last address of its link or of a lower index: the order of a dump */
        at = s->n_addrs;
        while (at > 0 && s->addrs[at - 1].ifindex > x.ifindex)
                at--;
        memmove(&s->addrs[at + 1], &s->addrs[at], (s->n_addrs - at) * sizeof(*s->addrs));
        s->addrs[at] = x;
        s->n_addrs++;
        *changed |= PCPD_HOST_CHANGED_ADDRESSES;
}

int pcpd_host_snapshot_apply(pcpd_host_snapshot *s, const void *buf, size_t len, unsigned *changed) {
        size_t left = len;

        for (const struct nlmsghdr *h = buf; left >= sizeof(*h) && h->nlmsg_len >= sizeof(*h) && h->nlmsg_len <= left;
             h = msg_next(h, &left)) {
                switch (h->nlmsg_type) {
                case NLMSG_DONE:
                        return 1;
                case NLMSG_ERROR: {
                        const struct nlmsgerr *e = NLMSG_DATA(h);
                        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(e->error)))
                                return -EBADMSG;
                        if (e->error == 0)
                                break; /* an acknowledgement */
                        return e->error < 0 && e->error > -4096 ? e->error : -EIO;
                }
                case RTM_NEWLINK:
                case RTM_DELLINK:
                        apply_link(s, h, changed);
                        break;
                case RTM_NEWADDR:
                case RTM_DELADDR:
                        apply_addr(s, h, changed);
                        break;
                case RTM_NEWROUTE:
                case RTM_DELROUTE:
                        *changed |= PCPD_HOST_CHANGED_ROUTES;
                        break;
                default:
                        break;
                }
        }
        return 0;
}

void pcpd_host_snapshot_clear(pcpd_host_snapshot *s) {
        free(s->links);
        free(s->addrs);
        *s = (pcpd_host_snapshot) { 0 };
}

bool pcpd_host_snapshot_next(const pcpd_host_snapshot *s, size_t *i, pcpd_host_addr *ret,
                             char ret_ifname[IF_NAMESIZE]) {
        for (; *i < s->n_addrs; (*i)++) {
                const pcpd_host_addr *x = &s->addrs[*i];
                const pcpd_host_link *l = link_find(s, x->ifindex);

                if (l == NULL || !(l->flags & IFF_UP) || (l->flags & IFF_LOOPBACK))
                        continue;
                if (ret != NULL)
                        *ret = *x;
                if (ret_ifname != NULL)
                        memcpy(ret_ifname, l->name, IF_NAMESIZE);
                (*i)++;
                return true;
        }
        return false;
}

bool pcpd_host_snapshot_has_address(const pcpd_host_snapshot *s, const struct in6_addr *a,
                                    char ret_ifname[IF_NAMESIZE]) {
        pcpd_host_addr x;
        char name[IF_NAMESIZE];

        for (size_t i = 0; pcpd_host_snapshot_next(s, &i, &x, name);)
                if (memcmp(&x.addr, a, sizeof(*a)) == 0) {
                        if (ret_ifname != NULL)
                                memcpy(ret_ifname, name, IF_NAMESIZE);
                        return true;
                }
        return false;
}

/* ---- the sockets ---- */

#define HOST_BUF 32768

#ifndef IPV6_PREFER_SRC_PUBLIC
#define IPV6_PREFER_SRC_PUBLIC 0x0002 /* <linux/in6.h>, which clashes with <netinet/in.h> */
#endif

struct pcpd_host {
        int fd;                /* the event socket, -1 without one */
        bool stale;            /* the snapshot misses events (no socket, overflow, a failed dump) */
        pcpd_host_snapshot snap;
        bool source_known[2];  /* route sources, by family (IPv4, IPv6), until something changes */
        bool source_ok[2];
        struct in6_addr source[2];
        unsigned dumps;
        uint32_t buf[HOST_BUF / sizeof(uint32_t)]; /* aligned to 4 as netlink needs */
};

static int dump_one(pcpd_host *h, int fd, int type, uint32_t seq, pcpd_host_snapshot *into) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        struct {
                struct nlmsghdr h;
                struct rtgenmsg g;
        } req = {
                .h = { .nlmsg_len = sizeof(req), .nlmsg_type = (uint16_t) type,
                       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = seq },
                .g = { .rtgen_family = AF_UNSPEC },
        };
        unsigned changed = 0;

        if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        for (;;) {
                ssize_t n = recv(fd, h->buf, sizeof(h->buf), 0);
                int r;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                r = pcpd_host_snapshot_apply(into, h->buf, (size_t) n, &changed);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
}

/* A whole new snapshot; the old one stays when the dump fails. */
static int host_dump(pcpd_host *h) {
        pcpd_host_snapshot fresh = { 0 };
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), r;

        h->dumps++;
        if (fd < 0)
                return -errno;
        r = dump_one(h, fd, RTM_GETLINK, 1, &fresh);
        if (r >= 0)
                r = dump_one(h, fd, RTM_GETADDR, 2, &fresh);
        close(fd);
        if (r < 0) {
                pcpd_host_snapshot_clear(&fresh);
                return r;
        }
        pcpd_host_snapshot_clear(&h->snap);
        h->snap = fresh;
        return 0;
}

static void forget_sources(pcpd_host *h) {
        h->source_known[0] = h->source_known[1] = false;
}

pcpd_host *pcpd_host_new(void) {
        pcpd_host *h = calloc(1, sizeof(*h));
        struct sockaddr_nl sa = {
                .nl_family = AF_NETLINK,
                .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
                             RTMGRP_IPV6_ROUTE,
        };

        if (h == NULL)
                abort();
        /* listening first, then the dump: an event that races the dump arrives after it and
         * is applied on top (a new address is added, a removed one removed either way) */
        h->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
        if (h->fd >= 0 && bind(h->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(h->fd);
                h->fd = -1;
        }
        h->stale = host_dump(h) < 0 || h->fd < 0;
        return h;
}

void pcpd_host_free(pcpd_host *h) {
        if (h == NULL)
                return;
        if (h->fd >= 0)
                close(h->fd);
        pcpd_host_snapshot_clear(&h->snap);
        free(h);
}

int pcpd_host_fd(const pcpd_host *h) {
        return h->fd;
}

unsigned pcpd_host_sync(pcpd_host *h) {
        unsigned changed = 0;
        bool lost = false, any = false;

        if (h->fd < 0)
                return 0;
        for (;;) {
                ssize_t n = recv(h->fd, h->buf, sizeof(h->buf), MSG_DONTWAIT);
                if (n > 0) {
                        any = true;
                        if (pcpd_host_snapshot_apply(&h->snap, h->buf, (size_t) n, &changed) < 0)
                                lost = true;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == ENOBUFS) {
                        lost = true; /* the kernel dropped events: read the rest, then dump */
                        continue;
                }
                break;
        }
        if (lost || h->stale) {
                h->stale = host_dump(h) < 0;
                changed |= PCPD_HOST_CHANGED_ADDRESSES | PCPD_HOST_CHANGED_ROUTES;
        }
        /* any event, even one that changes no address here (an IPv6 address deprecated,
         * a route's metric), may change which source the kernel picks */
        if (any || changed != 0)
                forget_sources(h);
        return changed;
}

const pcpd_host_snapshot *pcpd_host_get(pcpd_host *h) {
        if (h->stale) {
                h->stale = host_dump(h) < 0 || h->fd < 0;
                forget_sources(h);
        }
        return &h->snap;
}

static bool probe_route_source(int family, struct in6_addr *ret) {
        struct sockaddr_storage ss = { 0 }, local = { 0 };
        socklen_t len, ll = sizeof(local);
        int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
        bool ok;

        if (fd < 0)
                return false;
        /* a.root-servers.net: an address every default route leads to */
        if (family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
                sin->sin_family = AF_INET;
                sin->sin_port = htons(53);
                inet_pton(AF_INET, "198.41.0.4", &sin->sin_addr);
                len = sizeof(*sin);
        } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
                int pref = IPV6_PREFER_SRC_PUBLIC;
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_ADDR_PREFERENCES, &pref, sizeof(pref));
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(53);
                inet_pton(AF_INET6, "2001:503:ba3e::2:30", &sin6->sin6_addr);
                len = sizeof(*sin6);
        }
        ok = connect(fd, (struct sockaddr *) &ss, len) == 0 && getsockname(fd, (struct sockaddr *) &local, &ll) == 0;
        close(fd);
        if (!ok || local.ss_family != family)
                return false;
        memset(ret, 0, sizeof(*ret));
        if (family == AF_INET) {
                const struct sockaddr_in *l4 = (const struct sockaddr_in *) &local;
                ret->s6_addr[10] = ret->s6_addr[11] = 0xff;
                memcpy(&ret->s6_addr[12], &l4->sin_addr, 4);
        } else
                *ret = ((const struct sockaddr_in6 *) &local)->sin6_addr;
        return true;
}

bool pcpd_host_route_source(pcpd_host *h, int family, struct in6_addr *ret) {
        int f = family == AF_INET ? 0 : 1;

        if (h->fd < 0 || h->stale) /* nothing would tell when it changes */
                return probe_route_source(family, ret);
        if (!h->source_known[f]) {
                h->dumps++;
                h->source_ok[f] = probe_route_source(family, &h->source[f]);
                h->source_known[f] = true;
        }
        if (h->source_ok[f])
                *ret = h->source[f];
        return h->source_ok[f];
}

unsigned pcpd_host_dumps(const pcpd_host *h) {
        return h->dumps;
}
