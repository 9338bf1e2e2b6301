/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "pcpd-select.h"

static const char *const source_names[_PCPD_SOURCE_MAX] = {
        [PCPD_SOURCE_CONFIG] = "config",
        [PCPD_SOURCE_DHCPV4] = "dhcpv4",
        [PCPD_SOURCE_DHCPV6] = "dhcpv6",
        [PCPD_SOURCE_GATEWAY] = "gateway",
};

const char *pcpd_source_to_string(pcpd_source s) {
        return (unsigned) s < _PCPD_SOURCE_MAX ? source_names[s] : NULL;
}

pcpd_source pcpd_source_from_string(const char *s) {
        if (s != NULL)
                for (int i = 0; i < _PCPD_SOURCE_MAX; i++)
                        if (strcmp(s, source_names[i]) == 0)
                                return (pcpd_source) i;
        return _PCPD_SOURCE_INVALID;
}

static bool addr_is_v4mapped(const struct in6_addr *a) {
        static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        return memcmp(a->s6_addr, prefix, sizeof(prefix)) == 0;
}

static bool addr_has_family(const struct in6_addr *a, int family) {
        return (family == AF_INET) == addr_is_v4mapped(a);
}

bool pcpd_select_server_has_family(const pcpd_select_server *s, int family) {
        for (size_t i = 0; i < s->n_addrs; i++)
                if (addr_has_family(&s->addrs[i], family))
                        return true;
        return false;
}

static bool empty(const char *s) {
        return s == NULL || *s == '\0';
}

/* S3: lower is preferred */
static int source_rank(pcpd_source s) {
        switch (s) {
        case PCPD_SOURCE_CONFIG:
                return 0;
        case PCPD_SOURCE_DHCPV4:
        case PCPD_SOURCE_DHCPV6:
                return 1;
        case PCPD_SOURCE_GATEWAY:
                return 2;
        default:
                return -1;
        }
}

static bool serves(const pcpd_select_server *s, int family, const char *ifname) {
        if (source_rank(s->source) < 0 || !pcpd_select_server_has_family(s, family))
                return false;
        /* configured servers serve every interface; ifname NULL: any interface (S1 decides) */
        return empty(s->ifname) || ifname == NULL || strcmp(s->ifname, ifname) == 0;
}

size_t pcpd_select_servers(const pcpd_select_server *servers, size_t n, int family, const char *ifname,
                           const char *primary_ifname, size_t *out, size_t cap) {
        const char *iface = !empty(ifname) ? ifname : !empty(primary_ifname) ? primary_ifname : NULL;
        int best = -1;
        size_t k = 0;

        if (servers == NULL || (family != AF_INET && family != AF_INET6))
                return 0;
        /* S1 without an interface: the first server's (a configured server names none) */
        if (iface == NULL)
                for (size_t i = 0; i < n; i++)
                        if (serves(&servers[i], family, NULL) && !empty(servers[i].ifname)) {
                                iface = servers[i].ifname;
                                break;
                        }
        /* S3: the best source class that has a server here */
        for (size_t i = 0; i < n; i++)
                if (serves(&servers[i], family, iface)) {
                        int r = source_rank(servers[i].source);
                        if (best < 0 || r < best)
                                best = r;
                }
        if (best < 0)
                return 0;
        /* S4: every server of that class */
        for (size_t i = 0; i < n && k < cap; i++)
                if (serves(&servers[i], family, iface) && source_rank(servers[i].source) == best)
                        out[k++] = i;
        return k;
}

ssize_t pcpd_select_representative(const pcp_mapping_state *states, size_t n) {
        if (states == NULL || n == 0)
                return -1;
        for (size_t i = 0; i < n; i++)
                if (states[i] == PCP_MAPPING_ACTIVE || states[i] == PCP_MAPPING_RENEWING)
                        return (ssize_t) i;
        for (size_t i = 0; i < n; i++)
                if (states[i] == PCP_MAPPING_PENDING)
                        return (ssize_t) i;
        return 0;
}

size_t pcpd_select_addr_order(const struct in6_addr *addrs, size_t n, int family, const bool *usable,
                              uint8_t out[static PCP_SERVER_MAX_ADDRS]) {
        size_t k = 0;

        if (addrs == NULL)
                return 0;
        if (n > PCP_SERVER_MAX_ADDRS)
                n = PCP_SERVER_MAX_ADDRS;
        /* usable ones first, each group in the given order (a stable partition) */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < n; i++) {
                        bool u = usable == NULL || usable[i];

                        if (addr_has_family(&addrs[i], family) && u == (pass == 0))
                                out[k++] = (uint8_t) i;
                }
        return k;
}

int pcpd_addr_select_init(pcpd_addr_select *s, size_t n_addrs) {
        if (s == NULL || n_addrs == 0 || n_addrs > PCP_SERVER_MAX_ADDRS)
                return -EINVAL;
        *s = (pcpd_addr_select) { .n = (uint8_t) n_addrs };
        return 0;
}

/* A3/A5: the current address failed; the next one not failed in this round, or none */
static pcpd_addr_action fail_current(pcpd_addr_select *s, uint64_t now) {
        s->failed |= (uint16_t) (1u << s->current);
        s->answered = false;
        s->last_answer = 0;
        for (size_t step = 1; step < s->n; step++) {
                size_t i = (s->current + step) % s->n;

                if (!(s->failed & (1u << i))) {
                        s->current = (uint8_t) i;
                        return PCPD_ADDR_SWITCHED;
                }
        }
        s->retry_at = now + PCPD_SELECT_RETRY_MS;
        if (s->retry_at == 0) /* 0 means "not exhausted" */
                s->retry_at = 1;
        return PCPD_ADDR_EXHAUSTED;
}

pcpd_addr_action pcpd_addr_select_send(pcpd_addr_select *s, uint64_t now, size_t *ret_index) {
        pcpd_addr_action a = PCPD_ADDR_KEEP;

        if (s->retry_at != 0) {
                if (now < s->retry_at)
                        return PCPD_ADDR_WAIT;
                /* A5: a new round from the most preferred address */
                s->retry_at = 0;
                s->failed = 0;
                if (s->current != 0)
                        a = PCPD_ADDR_SWITCHED;
                s->current = 0;
        }
        if (ret_index != NULL)
                *ret_index = s->current;
        return a;
}

pcpd_addr_action pcpd_addr_select_timeout(pcpd_addr_select *s, uint64_t now, unsigned attempts,
                                          uint64_t request_start) {
        if (s->retry_at != 0)
                return now < s->retry_at ? PCPD_ADDR_WAIT : PCPD_ADDR_KEEP;
        /* an answer from the address since the request began: the address works, this
         * request is the server's business (a lost datagram, a rate limit), not a reason to
         * leave a sticky address (A4) */
        if (attempts < PCPD_SELECT_MRC || (s->last_answer != 0 && s->last_answer >= request_start))
                return PCPD_ADDR_KEEP;
        return fail_current(s, now);
}

pcpd_addr_action pcpd_addr_select_unreachable(pcpd_addr_select *s, uint64_t now, size_t i) {
        if (i >= s->n)
                return PCPD_ADDR_KEEP;
        if (s->retry_at != 0)
                return now < s->retry_at ? PCPD_ADDR_WAIT : PCPD_ADDR_KEEP;
        if (i != s->current) {
                /* an error for an address already left: noted for this round, no move (one
                 * reaction per error would resend everything once per late error) */
                s->failed |= (uint16_t) (1u << i);
                return PCPD_ADDR_KEEP;
        }
        return fail_current(s, now);
}

void pcpd_addr_select_answered(pcpd_addr_select *s, uint64_t now, size_t i) {
        if (i >= s->n)
                return;
        s->current = (uint8_t) i;
        s->answered = true;
        s->last_answer = now != 0 ? now : 1;
        s->failed = 0;
        s->retry_at = 0;
}

const char *pcpd_addr_action_to_string(pcpd_addr_action a) {
        static const char *const names[_PCPD_ADDR_ACTION_MAX] = {
                [PCPD_ADDR_KEEP] = "keep",
                [PCPD_ADDR_SWITCHED] = "switched",
                [PCPD_ADDR_EXHAUSTED] = "exhausted",
                [PCPD_ADDR_WAIT] = "wait",
        };
        return (unsigned) a < _PCPD_ADDR_ACTION_MAX ? names[a] : NULL;
}
