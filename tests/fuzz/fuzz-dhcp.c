/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the PCP server DHCP options (daemon/pcpd-dhcp.c).
 *
 * The first octet picks what the rest is:
 *   even: text, given to every reader ("pcp_server", "unknown_158", "dhcp6_pcp_server" and
 *         the options dictionary), each result checked and read back from its own spelling;
 *   odd:  the octets of a DHCPv4 option 158, also spelled the three ways NetworkManager can
 *         (decimal, hex, dhclient's text form) and the DHCPv6 way (its 16-octet groups as
 *         addresses): every spelling must give the octets' result.
 * Checked always: the limits (servers, addresses per server), no discarded or repeated
 * address kept, an IPv4 option gives IPv4 addresses only, a refused input leaves the result
 * untouched, every error has a sentence, and a result read back from its encoding is the
 * same. */

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz-common.h"
#include "pcpd-dhcp.h"

#define TEXT_CAP (PCPD_DHCP_MAX_TEXT + 64)

static bool v4mapped(const struct in6_addr *a) {
        return IN6_IS_ADDR_V4MAPPED(a);
}

static bool unusable(const struct in6_addr *a) {
        if (v4mapped(a)) {
                const uint8_t *v = &a->s6_addr[12];
                return v[0] == 0 || v[0] == 127 || (v[0] & 0xf0) == 0xe0 ||
                       (v[0] == 255 && v[1] == 255 && v[2] == 255 && v[3] == 255);
        }
        return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_MULTICAST(a);
}

static pcpd_dhcp_servers sentinel(void) {
        pcpd_dhcp_servers s = { .n_servers = 1, .n_duplicates = 0xfeedu };

        s.servers[0].n_addrs = 1;
        s.servers[0].addrs[0].s6_addr[0] = 0x20;
        return s;
}

static void check_untouched(const pcpd_dhcp_servers *s, pcpd_dhcp_error r) {
        pcpd_dhcp_servers want = sentinel();

        fuzz_check(pcpd_dhcp_error_to_string(r) != NULL, "error %d without a sentence", r);
        fuzz_check(memcmp(s, &want, sizeof(want)) == 0, "refused input (%s) changed the result",
                   pcpd_dhcp_error_to_string(r));
}

/* the invariants of any result */
static void check_servers(const pcpd_dhcp_servers *s, int family) {
        fuzz_check(s->n_servers <= PCPD_DHCP_MAX_SERVERS, "%zu servers", s->n_servers);
        for (size_t i = 0; i < s->n_servers; i++) {
                const pcpd_dhcp_server *v = &s->servers[i];

                fuzz_check(v->n_addrs >= 1 && v->n_addrs <= PCP_SERVER_MAX_ADDRS, "server %zu: %zu addresses", i,
                           v->n_addrs);
                for (size_t j = 0; j < v->n_addrs; j++) {
                        fuzz_check(!unusable(&v->addrs[j]), "server %zu: unusable address kept", i);
                        fuzz_check(family != AF_INET || v4mapped(&v->addrs[j]), "IPv4 option gave an IPv6 address");
                        for (size_t k = 0; k <= i; k++)
                                for (size_t l = 0; l < (k == i ? j : s->servers[k].n_addrs); l++)
                                        fuzz_check(memcmp(&s->servers[k].addrs[l], &v->addrs[j], 16) != 0,
                                                   "address repeated (server %zu and %zu)", k, i);
                }
        }
        if (family == AF_INET6)
                fuzz_check(s->n_servers <= 1, "DHCPv6 text gave %zu servers", s->n_servers);
}

/* the spellings of octets as NetworkManager shows them */
static bool spell_decimal(const uint8_t *b, size_t n, char *out, size_t cap) {
        size_t k = 0;

        out[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                int w = snprintf(out + k, cap - k, "%s%u", i > 0 ? " " : "", b[i]);
                if (w < 0 || (size_t) w >= cap - k)
                        return false;
                k += (size_t) w;
        }
        return true;
}

static bool spell_hex(const uint8_t *b, size_t n, char *out, size_t cap) {
        size_t k = 0;

        out[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                int w = snprintf(out + k, cap - k, "%s%x", i > 0 ? ":" : "", b[i]);
                if (w < 0 || (size_t) w >= cap - k)
                        return false;
                k += (size_t) w;
        }
        return true;
}

/* dhclient's text form, only where dhclient uses it: every octet printable but a trailing NUL */
static bool spell_dhclient_text(const uint8_t *b, size_t n, char *out, size_t cap) {
        size_t k = 0, m = n;

        if (n > 0 && b[n - 1] == 0)
                m = n - 1;
        if (m == 0)
                return false;
        for (size_t i = 0; i < m; i++) {
                if (b[i] < 0x20 || b[i] > 0x7e)
                        return false;
                if (k + 3 >= cap)
                        return false;
                if (strchr("\"'$`\\|&", b[i]) != NULL)
                        out[k++] = '\\';
                out[k++] = (char) b[i];
        }
        out[k] = '\0';
        return true;
}

static void read_back4(const pcpd_dhcp_servers *s) {
        uint8_t enc[PCPD_DHCP4_MAX_OCTETS];
        static char text[TEXT_CAP];
        pcpd_dhcp_servers t = sentinel();
        size_t len = 0;
        pcpd_dhcp_error r;

        if (s->n_servers == 0)
                return;
        /* a result of at most 8 servers of 8 addresses always fits: 8 * 33 octets */
        fuzz_check(pcpd_dhcp4_encode(s, enc, sizeof(enc), &len) == 0, "a result does not encode");
        fuzz_check(len > 0 && len <= 8 * 33, "encoded length %zu", len);
        r = pcpd_dhcp4_parse_octets(enc, len, &t);
        fuzz_check(r == PCPD_DHCP_OK, "encoded result refused: %s", pcpd_dhcp_error_to_string(r));
        fuzz_check(pcpd_dhcp_servers_equal(s, &t), "encoded result reads differently");
        fuzz_check(t.n_discarded == 0 && t.n_duplicates == 0 && t.n_addrs_over_limit == 0 &&
                           t.n_servers_over_limit == 0 && t.n_servers_empty == 0,
                   "a clean result read back with something left out");
        fuzz_check(spell_decimal(enc, len, text, sizeof(text)), "decimal spelling");
        fuzz_check(pcpd_dhcp4_parse_decimal(text, &t) == PCPD_DHCP_OK && pcpd_dhcp_servers_equal(s, &t),
                   "decimal read back differs: %s", text);
        fuzz_check(pcpd_dhcp4_encode(s, enc, len - 1, &len) == -ENOBUFS, "small buffer accepted");
}

static void read_back6(const pcpd_dhcp_servers *s) {
        static char text[TEXT_CAP];
        pcpd_dhcp_servers t = sentinel();
        size_t k = 0;

        if (s->n_servers == 0)
                return;
        for (size_t j = 0; j < s->servers[0].n_addrs; j++) {
                char a[INET6_ADDRSTRLEN];

                fuzz_check(inet_ntop(AF_INET6, &s->servers[0].addrs[j], a, sizeof(a)) != NULL, "inet_ntop");
                k += (size_t) snprintf(text + k, sizeof(text) - k, "%s%s", j > 0 ? " " : "", a);
        }
        fuzz_check(pcpd_dhcp6_parse(text, &t) == PCPD_DHCP_OK && pcpd_dhcp_servers_equal(s, &t),
                   "DHCPv6 read back differs: %s", text);
}

typedef struct one_key {
        const char *key, *value;
} one_key;

static const char *lookup(void *ud, const char *key) {
        const one_key *k = ud;
        return strcmp(k->key, key) == 0 ? k->value : NULL;
}

static void fuzz_text(const char *text) {
        pcpd_dhcp_servers s;
        pcpd_dhcp_error r;

        s = sentinel();
        r = pcpd_dhcp4_parse_decimal(text, &s);
        if (r == PCPD_DHCP_OK) {
                check_servers(&s, AF_INET);
                read_back4(&s);
        } else
                check_untouched(&s, r);

        s = sentinel();
        r = pcpd_dhcp4_parse_unknown(text, &s);
        if (r == PCPD_DHCP_OK) {
                check_servers(&s, AF_INET);
                read_back4(&s);
        } else
                check_untouched(&s, r);

        s = sentinel();
        r = pcpd_dhcp6_parse(text, &s);
        if (r == PCPD_DHCP_OK) {
                check_servers(&s, AF_INET6);
                read_back6(&s);
        } else
                check_untouched(&s, r);

        /* the dictionary reader gives what the key's reader gives */
        {
                static const char *const keys[] = { PCPD_DHCP4_KEY, PCPD_DHCP4_KEY_UNKNOWN, PCPD_DHCP6_KEY };

                for (size_t i = 0; i < 3; i++) {
                        one_key k = { keys[i], text };
                        pcpd_dhcp_servers a = sentinel(), b = sentinel();
                        int family = i < 2 ? AF_INET : AF_INET6;
                        pcpd_dhcp_error ra, rb;
                        const char *got = NULL;

                        ra = pcpd_dhcp_parse_options(family, lookup, &k, &a, &got);
                        rb = i == 0 ? pcpd_dhcp4_parse_decimal(text, &b)
                           : i == 1 ? pcpd_dhcp4_parse_unknown(text, &b)
                                    : pcpd_dhcp6_parse(text, &b);
                        fuzz_check(ra == rb, "options reader %d, key reader %d", ra, rb);
                        fuzz_check(memcmp(&a, &b, sizeof(a)) == 0, "options reader result differs");
                        fuzz_check(ra != PCPD_DHCP_OK || (got != NULL && strcmp(got, keys[i]) == 0), "key");
                        fuzz_check(pcpd_dhcp_request_state_get(family, lookup, &k, 1) == PCPD_DHCP_RECEIVED,
                                   "option present but not received");
                }
        }
}

static void fuzz_octets(const uint8_t *b, size_t n) {
        static char text[TEXT_CAP * 2];
        pcpd_dhcp_servers s = sentinel(), t;
        pcpd_dhcp_error r, rt;

        r = pcpd_dhcp4_parse_octets(b, n, &s);
        if (r == PCPD_DHCP_OK) {
                check_servers(&s, AF_INET);
                read_back4(&s);
        } else
                check_untouched(&s, r);

        /* every spelling of the same octets reads the same (or is refused as too long) */
        if (spell_decimal(b, n, text, sizeof(text))) {
                t = sentinel();
                rt = pcpd_dhcp4_parse_decimal(text, &t);
                if (rt != PCPD_DHCP_ERR_TOO_LONG) {
                        fuzz_check(rt == r, "decimal spelling: %d, octets: %d", rt, r);
                        fuzz_check(r != PCPD_DHCP_OK || memcmp(&s, &t, sizeof(s)) == 0, "decimal spelling differs");
                } else
                        fuzz_check(strlen(text) > PCPD_DHCP_MAX_TEXT || n > PCPD_DHCP4_MAX_OCTETS, "too long?");
        }
        if (spell_hex(b, n, text, sizeof(text))) {
                t = sentinel();
                rt = pcpd_dhcp4_parse_unknown(text, &t);
                if (rt != PCPD_DHCP_ERR_TOO_LONG) {
                        fuzz_check(rt == r, "hex spelling: %d, octets: %d", rt, r);
                        fuzz_check(r != PCPD_DHCP_OK || memcmp(&s, &t, sizeof(s)) == 0, "hex spelling differs");
                }
        }
        /* the text form, where it can be told apart: a text that looks like hex is read as
         * hex (see pcpd-dhcp.c); a dropped trailing NUL is put back when that completes the
         * option, so a text one octet short reads as if its last octet were 0 (a server
         * sending such a broken option cannot be told from one whose last octet is 0) */
        if (spell_dhclient_text(b, n, text, sizeof(text)) &&
            strspn(text, "0123456789abcdefABCDEF:") != strlen(text) &&
            (r == PCPD_DHCP_OK || (r != PCPD_DHCP_ERR_TRUNCATED && b[n - 1] != 0))) {
                t = sentinel();
                rt = pcpd_dhcp4_parse_unknown(text, &t);
                if (rt != PCPD_DHCP_ERR_TOO_LONG) {
                        fuzz_check(rt == r, "text spelling: %d, octets: %d (%s)", rt, r, text);
                        fuzz_check(r != PCPD_DHCP_OK || memcmp(&s, &t, sizeof(s)) == 0, "text spelling differs");
                }
        }

        /* the same octets as DHCPv6 addresses: one server, each address kept or counted */
        if (n >= 16) {
                size_t k = 0, na = n / 16;

                for (size_t i = 0; i < na; i++) {
                        char a[INET6_ADDRSTRLEN];

                        inet_ntop(AF_INET6, b + 16 * i, a, sizeof(a));
                        k += (size_t) snprintf(text + k, sizeof(text) - k, "%s%s", i > 0 ? (i % 2 ? " " : "\t ") : "", a);
                }
                t = sentinel();
                rt = pcpd_dhcp6_parse(text, &t);
                if (k <= PCPD_DHCP_MAX_TEXT) {
                        fuzz_check(rt == PCPD_DHCP_OK, "DHCPv6 spelling refused: %s", pcpd_dhcp_error_to_string(rt));
                        check_servers(&t, AF_INET6);
                        fuzz_check(t.servers[0].n_addrs * (t.n_servers) + t.n_discarded + t.n_duplicates +
                                                   t.n_addrs_over_limit ==
                                           na,
                                   "%zu addresses in, not all accounted for", na);
                        read_back6(&t);
                } else
                        fuzz_check(rt == PCPD_DHCP_ERR_TOO_LONG, "long DHCPv6 text accepted");
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char text[TEXT_CAP + 8];

        if (size < 1)
                return 0;
        if (data[0] % 2 == 0) {
                size_t n = size - 1 < sizeof(text) - 1 ? size - 1 : sizeof(text) - 1;

                memcpy(text, data + 1, n);
                text[n] = '\0';
                fuzz_text(text);
        } else
                fuzz_octets(data + 1, size - 1);
        return 0;
}
