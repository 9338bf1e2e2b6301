/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-direct.h"

#include <glib.h>
#include <string.h>
#include <sys/socket.h>

#include "pcp-wire.h"
#include "pcp1-contract.h"

/* the IANA special-purpose registries' "not globally reachable" blocks (RFC 6890) */
static const struct {
        const char *prefix;
        unsigned len; /* of the IPv4 address for IPv4 */
} not_global[] = {
        { "0.0.0.0", 8 },        /* "this network" */
        { "10.0.0.0", 8 },       /* private */
        { "100.64.0.0", 10 },    /* carrier-grade NAT: behind a NAT by definition */
        { "127.0.0.0", 8 },      /* loopback */
        { "169.254.0.0", 16 },   /* link-local */
        { "172.16.0.0", 12 },    /* private */
        { "192.0.0.0", 24 },     /* IETF protocol assignments (DS-Lite's 192.0.0.2 is behind a NAT) */
        { "192.0.2.0", 24 },     /* documentation */
        { "192.168.0.0", 16 },   /* private */
        { "198.18.0.0", 15 },    /* benchmarking */
        { "198.51.100.0", 24 },  /* documentation */
        { "203.0.113.0", 24 },   /* documentation */
        { "224.0.0.0", 3 },      /* multicast, reserved, broadcast */
        { "::", 127 },           /* unspecified, loopback */
        { "::ffff:0:0", 96 },    /* IPv4-mapped */
        { "64:ff9b::", 96 },     /* NAT64 */
        { "64:ff9b:1::", 48 },   /* NAT64, local use */
        { "100::", 64 },         /* discard */
        { "2001::", 23 },        /* IETF protocol assignments, Teredo among them */
        { "2001:db8::", 32 },    /* documentation */
        { "3fff::", 20 },        /* documentation */
        { "fc00::", 7 },         /* unique local */
        { "fe80::", 9 },         /* link-local, and the old site-local fec0::/10 */
        { "ff00::", 8 },         /* multicast */
};

static bool prefix_match(const struct in6_addr *a, const struct in6_addr *p, unsigned len) {
        for (unsigned i = 0; i < len; i += 8) {
                unsigned bits = MIN(8u, len - i);
                uint8_t mask = (uint8_t) (0xff00 >> bits);
                if ((a->s6_addr[i / 8] ^ p->s6_addr[i / 8]) & mask)
                        return false;
        }
        return true;
}

/* The table's text is parsed once, not per address (it was most of what reading the
 * host's addresses cost once they were cached). */
bool pcpd_direct_address_is_global(const struct in6_addr *a) {
        static struct in6_addr prefix[G_N_ELEMENTS(not_global)];
        static unsigned len[G_N_ELEMENTS(not_global)]; /* of the 128 bits; 0: unusable entry */
        static gsize parsed = 0;
        bool v4 = pcp_addr_is_ipv4(a);

        if (g_once_init_enter(&parsed)) {
                for (size_t i = 0; i < G_N_ELEMENTS(not_global); i++) {
                        bool p4 = strchr(not_global[i].prefix, '.') != NULL;
                        if (pcp_addr_from_string(not_global[i].prefix, &prefix[i]) && pcp_addr_is_ipv4(&prefix[i]) == p4)
                                len[i] = not_global[i].len + (p4 ? 96 : 0);
                }
                g_once_init_leave(&parsed, 1);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(not_global); i++) {
                if (len[i] == 0 || pcp_addr_is_ipv4(&prefix[i]) != v4)
                        continue;
                if (prefix_match(a, &prefix[i], len[i]))
                        return false;
        }
        return true;
}

bool pcpd_direct_global_address(const pcpd_host_snapshot *snap, int family, const char *ifname,
                                const struct in6_addr *routed, struct in6_addr *ret) {
        struct in6_addr first;
        bool have_first = false, routed_ok = false;
        pcpd_host_addr x;
        char name[IF_NAMESIZE];

        for (size_t i = 0; pcpd_host_snapshot_next(snap, &i, &x, name);) {
                if (x.family != family || !pcpd_direct_address_is_global(&x.addr))
                        continue;
                if (ifname != NULL && *ifname != '\0' && strcmp(ifname, name) != 0)
                        continue;
                if (!have_first) {
                        first = x.addr;
                        have_first = true;
                }
                if (routed != NULL && memcmp(&x.addr, routed, sizeof(x.addr)) == 0)
                        routed_ok = true;
        }
        if (have_first && ret != NULL)
                *ret = routed_ok ? *routed : first;
        return have_first;
}

bool pcpd_direct_servers_may_map(const pcpd_direct_server *servers, size_t n, int family, const char *interface) {
        for (size_t i = 0; i < n; i++) {
                const pcpd_direct_server *s = &servers[i];
                if (s->family != family)
                        continue;
                if (interface != NULL && *interface != '\0' && strcmp(interface, s->ifname) != 0)
                        continue;
                if (!s->engine_known)
                        return true;
                if (s->state == PCPD_SERVER_UNREACHABLE || s->state == PCPD_SERVER_UNSUPPORTED ||
                    (s->state == PCPD_SERVER_UNKNOWN && s->silent))
                        continue;
                return true;
        }
        return false;
}

bool pcpd_direct_any_usable(const pcpd_direct_server *servers, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (servers[i].engine_known && !servers[i].not_answering &&
                    (servers[i].state == PCPD_SERVER_PCP || servers[i].state == PCPD_SERVER_NATPMP))
                        return true;
        return false;
}

const char *pcpd_direct_manager_state(bool enabled, const pcpd_direct_server *servers, size_t n,
                                      bool backend_usable, const bool direct[2]) {
        bool any_known = false;

        if (!enabled)
                return PCP1_REASON_DISABLED;
        if (pcpd_direct_any_usable(servers, n) || backend_usable)
                return "ready";
        /* not behind a NAT for a family: its mappings are active at once with the host's own
         * address (DBUS-API.md: success), as a server that answers would make them */
        if (direct[0] || direct[1])
                return "ready";
        if (n == 0)
                return "no-network";
        for (size_t i = 0; i < n; i++)
                any_known = any_known || (servers[i].engine_known && servers[i].state != PCPD_SERVER_UNKNOWN &&
                                          !servers[i].not_answering);
        return any_known ? "unsupported" : "discovering";
}

int pcpd_direct_plan_family(int asked, bool ipv4_server, bool ipv4_global) {
        if (asked != 0)
                return asked;
        return ipv4_server || ipv4_global ? AF_INET : AF_INET6;
}

bool pcpd_direct_plan(const pcpd_direct_request *req, bool host_direct, bool has_server) {
        /* THIRD_PARTY is for another host: it needs a server */
        if (req->has_third_party || !host_direct)
                return false;
        /* exactly another port or fail: a server might come back and grant it */
        if (req->prefer_failure && req->suggested_port != req->internal_port && has_server)
                return false;
        return true;
}
