/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PCP server DHCP options (RFC 7291) in every spelling NetworkManager gives them. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pcpd-dhcp.h"

/* "192.168.77.1,10.0.0.1 | fd77::1": servers separated by " | ", addresses by "," */
static const char *fmt(const pcpd_dhcp_servers *s) {
        static char out[8192];
        size_t n = 0;

        out[0] = '\0';
        for (size_t i = 0; i < s->n_servers; i++) {
                if (i > 0)
                        n += (size_t) snprintf(out + n, sizeof(out) - n, " | ");
                for (size_t j = 0; j < s->servers[i].n_addrs; j++) {
                        const struct in6_addr *a = &s->servers[i].addrs[j];
                        char buf[INET6_ADDRSTRLEN];
                        bool v4 = IN6_IS_ADDR_V4MAPPED(a);

                        assert_non_null(inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? (const void *) &a->s6_addr[12] : a, buf,
                                                  sizeof(buf)));
                        n += (size_t) snprintf(out + n, sizeof(out) - n, "%s%s", j > 0 ? "," : "", buf);
                }
        }
        return out;
}

/* a result that must not be touched by a refused input */
static pcpd_dhcp_servers sentinel(void) {
        pcpd_dhcp_servers s = { .n_servers = 1, .n_discarded = 77 };

        s.servers[0].n_addrs = 1;
        inet_pton(AF_INET6, "2001:db8::77", &s.servers[0].addrs[0]);
        return s;
}

static void assert_untouched(const pcpd_dhcp_servers *s) {
        pcpd_dhcp_servers want = sentinel();

        assert_true(pcpd_dhcp_servers_equal(s, &want));
        assert_int_equal(s->n_discarded, 77);
}

#define expect4(text, want)                                                   \
        do {                                                                  \
                pcpd_dhcp_servers s_ = sentinel();                            \
                assert_int_equal(pcpd_dhcp4_parse_decimal(text, &s_), PCPD_DHCP_OK); \
                assert_string_equal(fmt(&s_), want);                          \
        } while (0)

#define refuse4(text, err)                                                    \
        do {                                                                  \
                pcpd_dhcp_servers s_ = sentinel();                            \
                assert_int_equal(pcpd_dhcp4_parse_decimal(text, &s_), err);   \
                assert_untouched(&s_);                                        \
        } while (0)

#define expecthex(text, want)                                                 \
        do {                                                                  \
                pcpd_dhcp_servers s_ = sentinel();                            \
                assert_int_equal(pcpd_dhcp4_parse_unknown(text, &s_), PCPD_DHCP_OK); \
                assert_string_equal(fmt(&s_), want);                          \
        } while (0)

#define refusehex(text, err)                                                  \
        do {                                                                  \
                pcpd_dhcp_servers s_ = sentinel();                            \
                assert_int_equal(pcpd_dhcp4_parse_unknown(text, &s_), err);   \
                assert_untouched(&s_);                                        \
        } while (0)

#define expect6(text, want)                                                   \
        do {                                                                  \
                pcpd_dhcp_servers s_ = sentinel();                            \
                assert_int_equal(pcpd_dhcp6_parse(text, &s_), PCPD_DHCP_OK);  \
                assert_string_equal(fmt(&s_), want);                          \
        } while (0)

#define refuse6(text, err)                                                    \
        do {                                                                  \
                pcpd_dhcp_servers s_ = sentinel();                            \
                assert_int_equal(pcpd_dhcp6_parse(text, &s_), err);           \
                assert_untouched(&s_);                                        \
        } while (0)

static void test_decimal(void **state) {
        /* what NetworkManager showed in the lab: one server; two servers */
        expect4("4 192 168 77 1", "192.168.77.1");
        expect4("4 192 168 77 2 4 198 20 77 1", "192.168.77.2 | 198.20.77.1");
        /* one server, two addresses, in the option's order */
        expect4("8 198 20 77 1 192 168 77 1", "198.20.77.1,192.168.77.1");
        expect4("8 192 168 77 1 10 0 0 1 4 100 64 0 1", "192.168.77.1,10.0.0.1 | 100.64.0.1");
        /* blanks */
        expect4("  4\t192 168  77 1 ", "192.168.77.1");
        expect4("4 192 168 077 001", "192.168.77.1");
}

static void test_decimal_refused(void **state) {
        refuse4(NULL, PCPD_DHCP_ERR_EMPTY);
        refuse4("", PCPD_DHCP_ERR_EMPTY);
        refuse4(" \t ", PCPD_DHCP_ERR_EMPTY);
        refuse4("4 256 1 1 1", PCPD_DHCP_ERR_SYNTAX);
        refuse4("4 0x1 1 1 1", PCPD_DHCP_ERR_SYNTAX);
        refuse4("4 1a 1 1 1", PCPD_DHCP_ERR_SYNTAX);
        refuse4("4 -1 1 1 1", PCPD_DHCP_ERR_SYNTAX);
        refuse4("4,192,168,77,1", PCPD_DHCP_ERR_SYNTAX);
        refuse4("4 192.168.77.1", PCPD_DHCP_ERR_SYNTAX);
        refuse4("4 1000 1 1 1", PCPD_DHCP_ERR_SYNTAX);
        refuse4("4 192 168 77 1\n", PCPD_DHCP_ERR_SYNTAX);
        /* RFC 7291 §4: List-Length a non-zero multiple of 4 */
        refuse4("0", PCPD_DHCP_ERR_LIST_LENGTH);
        refuse4("3 1 2 3", PCPD_DHCP_ERR_LIST_LENGTH);
        refuse4("5 1 2 3 4 5", PCPD_DHCP_ERR_LIST_LENGTH);
        refuse4("4 192 168 77 1 0", PCPD_DHCP_ERR_LIST_LENGTH);
        /* a list running past the end, the minimum length of 5 */
        refuse4("4 192 168 77", PCPD_DHCP_ERR_TRUNCATED);
        refuse4("8 192 168 77 1", PCPD_DHCP_ERR_TRUNCATED);
        refuse4("4", PCPD_DHCP_ERR_TRUNCATED);
        /* one bad list refuses the whole option, the good one before it too */
        refuse4("4 192 168 77 1 4 10 0 0", PCPD_DHCP_ERR_TRUNCATED);
        refuse4("4 192 168 77 1 6 10 0 0 1 2 3", PCPD_DHCP_ERR_LIST_LENGTH);
        /* the usual server mistake: plain addresses without the List-Length octet (dnsmasq's
         * dotted form): never a server */
        refuse4("192 168 77 1", PCPD_DHCP_ERR_TRUNCATED);
        refuse4("10 0 0 1", PCPD_DHCP_ERR_LIST_LENGTH);
        refuse4("4 1 2 3", PCPD_DHCP_ERR_TRUNCATED);
}

static void test_decimal_addresses(void **state) {
        pcpd_dhcp_servers s;

        /* RFC 7291 §5.2: loopback and multicast discarded; unspecified and broadcast too */
        assert_int_equal(pcpd_dhcp4_parse_decimal("24 127 0 0 1 224 0 0 1 239 1 2 3 0 0 0 0 0 1 2 3 "
                                                  "255 255 255 255", &s), PCPD_DHCP_OK);
        assert_int_equal(s.n_servers, 0);
        assert_int_equal(s.n_discarded, 6);
        assert_int_equal(s.n_servers_empty, 1);
        assert_int_equal(pcpd_dhcp4_parse_decimal("8 224 0 0 1 192 168 77 1 4 127 1 1 1 4 10 0 0 1", &s), PCPD_DHCP_OK);
        assert_string_equal(fmt(&s), "192.168.77.1 | 10.0.0.1");
        assert_int_equal(s.n_discarded, 2);
        assert_int_equal(s.n_servers_empty, 1);
        /* addresses next to those are kept */
        expect4("12 1 0 0 0 126 255 255 255 223 255 255 255", "1.0.0.0,126.255.255.255,223.255.255.255");
        expect4("8 240 0 0 1 255 255 255 254", "240.0.0.1,255.255.255.254");

        /* duplicates: in a server, and across servers (the first place wins) */
        assert_int_equal(pcpd_dhcp4_parse_decimal("8 192 168 77 1 192 168 77 1", &s), PCPD_DHCP_OK);
        assert_string_equal(fmt(&s), "192.168.77.1");
        assert_int_equal(s.n_duplicates, 1);
        assert_int_equal(pcpd_dhcp4_parse_decimal("4 192 168 77 1 8 192 168 77 1 10 0 0 1 4 10 0 0 1", &s),
                         PCPD_DHCP_OK);
        assert_string_equal(fmt(&s), "192.168.77.1 | 10.0.0.1");
        assert_int_equal(s.n_duplicates, 2);
        assert_int_equal(s.n_servers_empty, 1);
}

static void test_limits(void **state) {
        uint8_t buf[PCPD_DHCP4_MAX_OCTETS + 8];
        char text[PCPD_DHCP_MAX_TEXT + 64];
        pcpd_dhcp_servers s;
        size_t n = 0, t = 0;

        /* a list of nine addresses: eight kept */
        buf[n++] = 36;
        for (int i = 1; i <= 9; i++) {
                buf[n++] = 10, buf[n++] = 0, buf[n++] = 0, buf[n++] = (uint8_t) i;
        }
        assert_int_equal(pcpd_dhcp4_parse_octets(buf, n, &s), PCPD_DHCP_OK);
        assert_int_equal(s.n_servers, 1);
        assert_int_equal(s.servers[0].n_addrs, PCP_SERVER_MAX_ADDRS);
        assert_int_equal(s.n_addrs_over_limit, 1);
        assert_string_equal(fmt(&s), "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6,10.0.0.7,10.0.0.8");

        /* ten servers: eight kept, in order */
        n = 0;
        for (int i = 1; i <= 10; i++) {
                buf[n++] = 4;
                buf[n++] = 10, buf[n++] = 1, buf[n++] = 0, buf[n++] = (uint8_t) i;
        }
        assert_int_equal(pcpd_dhcp4_parse_octets(buf, n, &s), PCPD_DHCP_OK);
        assert_int_equal(s.n_servers, PCPD_DHCP_MAX_SERVERS);
        assert_int_equal(s.n_servers_over_limit, 2);
        assert_string_equal(s.n_servers > 0 ? fmt(&s) : "", "10.1.0.1 | 10.1.0.2 | 10.1.0.3 | 10.1.0.4 | 10.1.0.5 | "
                                                             "10.1.0.6 | 10.1.0.7 | 10.1.0.8");

        /* the longest option: four lists of 63 addresses (RFC 3396 concatenation) + 8 octets */
        n = 0;
        for (int l = 0; l < 4; l++) {
                buf[n++] = 252;
                for (int i = 0; i < 63; i++) {
                        buf[n++] = 10, buf[n++] = 2, buf[n++] = (uint8_t) l, buf[n++] = (uint8_t) (i + 1);
                }
        }
        buf[n++] = 4, buf[n++] = 10, buf[n++] = 3, buf[n++] = 0, buf[n++] = 1;
        assert_true(n <= PCPD_DHCP4_MAX_OCTETS);
        assert_int_equal(pcpd_dhcp4_parse_octets(buf, n, &s), PCPD_DHCP_OK);
        assert_int_equal(s.n_servers, 5);
        assert_int_equal(s.n_addrs_over_limit, 4 * (63 - PCP_SERVER_MAX_ADDRS));

        /* one octet over the limit, as octets and as text */
        memset(buf, 0, sizeof(buf));
        assert_int_equal(pcpd_dhcp4_parse_octets(buf, PCPD_DHCP4_MAX_OCTETS + 1, &s), PCPD_DHCP_ERR_TOO_LONG);
        for (int i = 0; i < PCPD_DHCP4_MAX_OCTETS + 1; i++)
                t += (size_t) snprintf(text + t, sizeof(text) - t, "%s4", i > 0 ? " " : "");
        refuse4(text, PCPD_DHCP_ERR_TOO_LONG);

        /* text longer than PCPD_DHCP_MAX_TEXT: refused, in every spelling */
        memset(text, ' ', PCPD_DHCP_MAX_TEXT + 1);
        memcpy(text, "4 192 168 77 1", 14);
        text[PCPD_DHCP_MAX_TEXT + 1] = '\0';
        refuse4(text, PCPD_DHCP_ERR_TOO_LONG);
        text[PCPD_DHCP_MAX_TEXT] = '\0'; /* exactly the limit: fine */
        expect4(text, "192.168.77.1");
        memset(text, 'a', PCPD_DHCP_MAX_TEXT + 1);
        text[PCPD_DHCP_MAX_TEXT + 1] = '\0';
        refusehex(text, PCPD_DHCP_ERR_TOO_LONG);
        refuse6(text, PCPD_DHCP_ERR_TOO_LONG);
}

static void test_hex(void **state) {
        /* what NetworkManager showed for a forced option without a definition */
        expecthex("4:c0:a8:4d:1", "192.168.77.1");
        expecthex("4:c0:a8:4d:2:4:c6:14:4d:1", "192.168.77.2 | 198.20.77.1");
        /* zero-padded and upper case (how dnsmasq's configuration writes it) */
        expecthex("04:C0:A8:4D:01", "192.168.77.1");
        expecthex("8:a:0:0:1:c0:a8:4d:1", "10.0.0.1,192.168.77.1");

        refusehex(NULL, PCPD_DHCP_ERR_EMPTY);
        refusehex("", PCPD_DHCP_ERR_EMPTY);
        refusehex("4:c0:a8:4d:", PCPD_DHCP_ERR_SYNTAX);
        refusehex(":4:c0:a8:4d:1", PCPD_DHCP_ERR_SYNTAX);
        refusehex("4::c0:a8:4d:1", PCPD_DHCP_ERR_SYNTAX);
        refusehex("4:c0a:8:4d:1", PCPD_DHCP_ERR_SYNTAX);
        refusehex("4:c0:a8:4d", PCPD_DHCP_ERR_TRUNCATED);
        refusehex("3:c0:a8:4d", PCPD_DHCP_ERR_LIST_LENGTH);
        refusehex("c0:a8:4d:1", PCPD_DHCP_ERR_TRUNCATED);
}

static void test_dhclient_text_form(void **state) {
        pcpd_dhcp_servers s;
        /* every octet printable: dhclient prints the option as text. List-Length 32 is a
         * space; eight addresses 100.64.65.66..73 ("d@AB" ...) */
        expecthex(" d@ABd@ACd@ADd@AEd@AFd@AGd@AHd@AI",
                  "100.64.65.66,100.64.65.67,100.64.65.68,100.64.65.69,100.64.65.70,100.64.65.71,100.64.65.72,"
                  "100.64.65.73");
        /* List-Length 36 is '$', escaped; so are \ and ": 100.36.92.34 = d $ \ " */
        assert_int_equal(pcpd_dhcp4_parse_unknown("\\$d@ABd@ACd@ADd@AEd@AFd@AGd@AHd@AId\\$\\\\\\\"", &s), PCPD_DHCP_OK);
        assert_int_equal(s.n_servers, 1);
        assert_int_equal(s.servers[0].n_addrs, 8); /* the ninth is over the limit */
        assert_int_equal(s.n_addrs_over_limit, 1);
        /* an octal escape */
        expecthex("\\040d@ABd@ACd@ADd@AEd@AFd@AGd@AHd@AI",
                  "100.64.65.66,100.64.65.67,100.64.65.68,100.64.65.69,100.64.65.70,100.64.65.71,100.64.65.72,"
                  "100.64.65.73");
        /* a trailing NUL octet is dropped from the text form: the last address ends in .0 */
        expecthex(" d@ABd@ACd@ADd@AEd@AFd@AGd@AHd@A",
                  "100.64.65.66,100.64.65.67,100.64.65.68,100.64.65.69,100.64.65.70,100.64.65.71,100.64.65.72,"
                  "100.64.65.0");
        /* broken text forms */
        refusehex(" d@AB", PCPD_DHCP_ERR_TRUNCATED);
        refusehex(" d@ABd@ACd@ADd@AEd@AFd@AGd@AHd@AIy", PCPD_DHCP_ERR_LIST_LENGTH);
        refusehex("\\q", PCPD_DHCP_ERR_SYNTAX);
        refusehex("\\", PCPD_DHCP_ERR_SYNTAX);
        refusehex("\\08", PCPD_DHCP_ERR_SYNTAX);
        refusehex(" d@\x01", PCPD_DHCP_ERR_SYNTAX);
        refusehex(" d@\xc3\xa9", PCPD_DHCP_ERR_SYNTAX);
}

static void test_dhcp6(void **state) {
        /* what NetworkManager showed: one server; one server with an IPv4-mapped address too */
        expect6("fd77:77:77::1", "fd77:77:77::1");
        expect6("fd77:77:77::2 ::ffff:192.168.77.1", "fd77:77:77::2,192.168.77.1");
        expect6("  fd77::1\t\tfd77::2 ", "fd77::1,fd77::2");
        expect6("FD77::1", "fd77::1");
        /* link-local: kept (its scope is the interface, see endpoints) */
        expect6("fe80::1", "fe80::1");
        /* RFC 7291 §5.1: multicast and loopback discarded, IPv4-mapped ones too */
        {
                pcpd_dhcp_servers s;

                assert_int_equal(pcpd_dhcp6_parse("ff02::1 ::1 :: fd77::1 ::ffff:127.0.0.1 ::ffff:224.0.0.251 "
                                                  "::ffff:0.0.0.0 fd77::1",
                                                  &s),
                                 PCPD_DHCP_OK);
                assert_string_equal(fmt(&s), "fd77::1");
                assert_int_equal(s.n_discarded, 6);
                assert_int_equal(s.n_duplicates, 1);
                assert_int_equal(pcpd_dhcp6_parse("ff02::1 ::1", &s), PCPD_DHCP_OK);
                assert_int_equal(s.n_servers, 0);
                assert_int_equal(s.n_servers_empty, 1);
                /* nine addresses: eight kept */
                assert_int_equal(pcpd_dhcp6_parse("fd::1 fd::2 fd::3 fd::4 fd::5 fd::6 fd::7 fd::8 fd::9", &s), PCPD_DHCP_OK);
                assert_int_equal(s.servers[0].n_addrs, PCP_SERVER_MAX_ADDRS);
                assert_int_equal(s.n_addrs_over_limit, 1);
        }

        refuse6(NULL, PCPD_DHCP_ERR_EMPTY);
        refuse6("", PCPD_DHCP_ERR_EMPTY);
        refuse6("   ", PCPD_DHCP_ERR_EMPTY);
        /* dhclient's answer to an option shorter than one address */
        refuse6("<error>", PCPD_DHCP_ERR_ADDRESS);
        /* one bad word refuses all */
        refuse6("fd77::1 bogus", PCPD_DHCP_ERR_ADDRESS);
        refuse6("fd77::1,fd77::2", PCPD_DHCP_ERR_ADDRESS);
        refuse6("192.168.77.1", PCPD_DHCP_ERR_ADDRESS);
        refuse6("fe80::1%eth0", PCPD_DHCP_ERR_ADDRESS);
        refuse6("[fd77::1]", PCPD_DHCP_ERR_ADDRESS);
        refuse6("0000:0000:0000:0000:0000:0000:0000:0000:0001", PCPD_DHCP_ERR_ADDRESS);
        refuse6("fd77:77:77::1\n", PCPD_DHCP_ERR_ADDRESS);
}

typedef struct kv {
        const char *k, *v;
} kv;

static const char *lookup(void *ud, const char *key) {
        for (const kv *p = ud; p->k != NULL; p++)
                if (strcmp(p->k, key) == 0)
                        return p->v;
        return NULL;
}

static void test_options(void **state) {
        kv both[] = { { "ip_address", "192.168.77.100" }, { "requested_pcp_server", "1" },
                      { "pcp_server", "4 192 168 77 1" }, { "unknown_158", "4:a:0:0:1" }, { NULL, NULL } };
        kv unknown[] = { { "ip_address", "192.168.77.100" }, { "unknown_158", "4:c0:a8:4d:1" }, { NULL, NULL } };
        kv requested[] = { { "ip_address", "192.168.77.100" }, { "requested_pcp_server", "1" }, { NULL, NULL } };
        kv internal[] = { { "ip_address", "192.168.77.100" }, { "requested_routers", "1" }, { NULL, NULL } };
        kv bad[] = { { "pcp_server", "192 168 77 1" }, { NULL, NULL } };
        kv v6[] = { { "dhcp6_server_id", "0:1" }, { "requested_dhcp6_pcp_server", "1" },
                    { "dhcp6_pcp_server", "fd77:77:77::1 ::ffff:192.168.77.1" }, { NULL, NULL } };
        kv v6req[] = { { "dhcp6_server_id", "0:1" }, { "requested_dhcp6_pcp_server", "1" }, { NULL, NULL } };
        pcpd_dhcp_servers s;
        const char *key = "x";

        assert_int_equal(pcpd_dhcp_parse_options(AF_INET, lookup, both, &s, &key), PCPD_DHCP_OK);
        assert_string_equal(key, "pcp_server");
        assert_string_equal(fmt(&s), "192.168.77.1");
        assert_int_equal(pcpd_dhcp_parse_options(AF_INET, lookup, unknown, &s, &key), PCPD_DHCP_OK);
        assert_string_equal(key, "unknown_158");
        assert_string_equal(fmt(&s), "192.168.77.1");
        assert_int_equal(pcpd_dhcp_parse_options(AF_INET6, lookup, v6, &s, &key), PCPD_DHCP_OK);
        assert_string_equal(key, "dhcp6_pcp_server");
        assert_string_equal(fmt(&s), "fd77:77:77::1,192.168.77.1");
        /* the v4 option is not read for v6, nor the reverse */
        assert_int_equal(pcpd_dhcp_parse_options(AF_INET6, lookup, both, &s, &key), PCPD_DHCP_OK);
        assert_null(key);
        assert_int_equal(s.n_servers, 0);
        key = "x";
        assert_int_equal(pcpd_dhcp_parse_options(AF_INET, lookup, v6, &s, &key), PCPD_DHCP_OK);
        assert_null(key);
        /* no config object at all */
        key = "x";
        assert_int_equal(pcpd_dhcp_parse_options(AF_INET, NULL, NULL, &s, &key), PCPD_DHCP_OK);
        assert_null(key);
        /* refused: nothing written */
        {
                pcpd_dhcp_servers t = sentinel();

                key = "x";
                assert_int_equal(pcpd_dhcp_parse_options(AF_INET, lookup, bad, &t, &key), PCPD_DHCP_ERR_TRUNCATED);
                assert_untouched(&t);
                assert_string_equal(key, "x");
        }

        /* is the option asked for? */
        assert_int_equal(pcpd_dhcp_request_state_get(AF_INET, NULL, NULL, 0), PCPD_DHCP_NO_LEASE);
        assert_int_equal(pcpd_dhcp_request_state_get(AF_INET, lookup, requested, 0), PCPD_DHCP_NO_LEASE);
        assert_int_equal(pcpd_dhcp_request_state_get(AF_INET, lookup, both, 4), PCPD_DHCP_RECEIVED);
        assert_int_equal(pcpd_dhcp_request_state_get(AF_INET, lookup, unknown, 2), PCPD_DHCP_RECEIVED);
        assert_int_equal(pcpd_dhcp_request_state_get(AF_INET, lookup, requested, 2), PCPD_DHCP_NOT_OFFERED);
        assert_int_equal(pcpd_dhcp_request_state_get(AF_INET, lookup, internal, 2), PCPD_DHCP_NOT_REQUESTED);
        assert_int_equal(pcpd_dhcp_request_state_get(AF_INET6, lookup, v6, 3), PCPD_DHCP_RECEIVED);
        assert_int_equal(pcpd_dhcp_request_state_get(AF_INET6, lookup, v6req, 2), PCPD_DHCP_NOT_OFFERED);
        assert_int_equal(pcpd_dhcp_request_state_get(AF_INET6, lookup, both, 4), PCPD_DHCP_NOT_REQUESTED);
        assert_string_equal(pcpd_dhcp_request_state_to_string(PCPD_DHCP_NOT_REQUESTED), "not-requested");
        assert_null(pcpd_dhcp_request_state_to_string(_PCPD_DHCP_REQUEST_STATE_MAX));
}

static void test_encode_round_trip(void **state) {
        const uint8_t want[] = { 4, 192, 168, 77, 2, 8, 198, 20, 77, 1, 10, 0, 0, 1 };
        uint8_t buf[64];
        pcpd_dhcp_servers s, t;
        size_t len = 0;

        assert_int_equal(pcpd_dhcp4_parse_decimal("4 192 168 77 2 8 198 20 77 1 10 0 0 1", &s), PCPD_DHCP_OK);
        assert_int_equal(pcpd_dhcp4_encode(&s, buf, sizeof(buf), &len), 0);
        assert_int_equal(len, sizeof(want));
        assert_memory_equal(buf, want, sizeof(want));
        assert_int_equal(pcpd_dhcp4_parse_octets(buf, len, &t), PCPD_DHCP_OK);
        assert_true(pcpd_dhcp_servers_equal(&s, &t));
        /* the hex spelling of the same octets reads the same */
        assert_int_equal(pcpd_dhcp4_parse_unknown("4:c0:a8:4d:2:8:c6:14:4d:1:a:0:0:1", &t), PCPD_DHCP_OK);
        assert_true(pcpd_dhcp_servers_equal(&s, &t));
        assert_int_equal(pcpd_dhcp4_encode(&s, buf, sizeof(want) - 1, &len), -ENOBUFS);
        /* an IPv6 server has no DHCPv4 encoding */
        assert_int_equal(pcpd_dhcp6_parse("fd77::1", &t), PCPD_DHCP_OK);
        assert_int_equal(pcpd_dhcp4_encode(&t, buf, sizeof(buf), &len), -EINVAL);
        assert_false(pcpd_dhcp_servers_equal(&s, &t));
}

static void test_endpoints(void **state) {
        struct sockaddr_in6 ep[PCP_SERVER_MAX_ADDRS];
        pcpd_dhcp_servers s;

        assert_int_equal(pcpd_dhcp6_parse("fe80::1 fd77::1 ::ffff:192.168.77.1", &s), PCPD_DHCP_OK);
        assert_int_equal(pcpd_dhcp_server_endpoints(&s.servers[0], 7, ep), 3);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(ep[i].sin6_family, AF_INET6);
                assert_int_equal(ntohs(ep[i].sin6_port), 5351);
                assert_memory_equal(&ep[i].sin6_addr, &s.servers[0].addrs[i], 16);
        }
        assert_int_equal(ep[0].sin6_scope_id, 7);
        assert_int_equal(ep[1].sin6_scope_id, 0);
        assert_int_equal(ep[2].sin6_scope_id, 0);
}

static void test_error_strings(void **state) {
        for (int e = 0; e < _PCPD_DHCP_ERR_MAX; e++) {
                const char *m = pcpd_dhcp_error_to_string((pcpd_dhcp_error) e);

                assert_non_null(m);
                /* a sentence */
                assert_true(m[0] >= 'A' && m[0] <= 'Z');
                assert_true(m[strlen(m) - 1] == '.' || m[strlen(m) - 1] == '?');
        }
        assert_null(pcpd_dhcp_error_to_string(_PCPD_DHCP_ERR_MAX));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decimal),
                cmocka_unit_test(test_decimal_refused),
                cmocka_unit_test(test_decimal_addresses),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_hex),
                cmocka_unit_test(test_dhclient_text_form),
                cmocka_unit_test(test_dhcp6),
                cmocka_unit_test(test_options),
                cmocka_unit_test(test_encode_round_trip),
                cmocka_unit_test(test_endpoints),
                cmocka_unit_test(test_error_strings),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
