/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the wire codec (daemon/pcp-wire.[ch]): byte-exact vectors for every
 * message and option in both directions, round trips, every malformed case, the helpers,
 * and responses captured from a real miniupnpd.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pcp-wire-equal.h"
#include "pcp-wire.h"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define BUF_MAX 2048

/* ---- helpers ---- */

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Hex to bytes; spaces are ignored so vectors can be written field by field. */
static size_t unhex(const char *s, uint8_t *out, size_t cap) {
        size_t n = 0;
        int hi = -1;

        for (; *s != '\0'; s++) {
                int v;

                if (*s == ' ')
                        continue;
                v = hexval(*s);
                if (v < 0)
                        fail_msg("bad hex digit '%c' in test vector", *s);
                if (hi < 0) {
                        hi = v;
                        continue;
                }
                if (n >= cap)
                        fail_msg("test vector longer than %zu octets", cap);
                out[n++] = (uint8_t) (hi << 4 | v);
                hi = -1;
        }
        if (hi >= 0)
                fail_msg("odd number of hex digits in test vector");
        return n;
}

static struct in6_addr addr(const char *s) {
        struct in6_addr a;

        if (!pcp_addr_from_string(s, &a))
                fail_msg("bad address %s in test", s);
        return a;
}

static bool addr_is(const struct in6_addr *a, const char *s) {
        struct in6_addr b = addr(s);

        return pcp_addr_eq(a, &b);
}

static void nonce_fill(uint8_t nonce[static PCP_NONCE_LEN], uint8_t first) {
        for (size_t i = 0; i < PCP_NONCE_LEN; i++)
                nonce[i] = (uint8_t) (first + i);
}

/* m encodes to exactly hex, and hex decodes to exactly m. */
static void check_vector(const pcp_msg *m, const char *hex) {
        uint8_t want[BUF_MAX], got[BUF_MAX];
        size_t n = unhex(hex, want, sizeof(want)), len = 0;
        pcp_msg d;

        assert_int_equal(pcp_encode(m, got, sizeof(got), &len), PCP_WIRE_OK);
        assert_int_equal(len, n);
        assert_memory_equal(got, want, n);
        assert_int_equal(pcp_encoded_len(m), n);
        /* exactly enough room works too */
        assert_int_equal(pcp_encode(m, got, n, &len), PCP_WIRE_OK);
        assert_int_equal(len, n);

        assert_int_equal(pcp_decode(want, n, m->response, &d), PCP_WIRE_OK);
        assert_true(pcp_msg_equal(&d, m));
}

/* decode, re-encode, decode again: the same message; byte-identical if canonical. */
static void check_round_trip(const uint8_t *buf, size_t n, bool want_response, bool canonical) {
        uint8_t out[BUF_MAX];
        size_t len = 0;
        pcp_msg a, b;

        assert_int_equal(pcp_decode(buf, n, want_response, &a), PCP_WIRE_OK);
        assert_int_equal(pcp_encode(&a, out, sizeof(out), &len), PCP_WIRE_OK);
        if (canonical) {
                assert_int_equal(len, n);
                assert_memory_equal(out, buf, n);
        }
        assert_int_equal(pcp_decode(out, len, want_response, &b), PCP_WIRE_OK);
        assert_true(pcp_msg_equal(&a, &b));
        assert_true(pcp_msg_equal(&b, &a));
}

static void check_round_trip_hex(const char *hex, bool want_response, bool canonical) {
        uint8_t buf[BUF_MAX];
        size_t n = unhex(hex, buf, sizeof(buf));

        check_round_trip(buf, n, want_response, canonical);
}

/* ---- shared vector pieces ---- */

#define ZERO12 "000000000000000000000000"
#define CLIENT4 "00000000000000000000ffff c0000221" /* 192.0.2.33 */
#define CLIENT6 "20010db8 00000000 00000000 00000002" /* 2001:db8::2 */
#define ANY4 "00000000000000000000ffff 00000000" /* ::ffff:0.0.0.0 */
#define EXT4 "00000000000000000000ffff cb007107" /* 203.0.113.7 */
#define REMOTE4 "00000000000000000000ffff c6336409" /* 198.51.100.9 */
#define TP4 "00000000000000000000ffff c0000242" /* 192.0.2.66 */
#define NONCE_A "a1a2a3a4a5a6a7a8a9aaabac"
#define NONCE_B "b1b2b3b4b5b6b7b8b9babbbc"

/* version, R|opcode, reserved, lifetime, client address */
#define ANN_REQ "02 00 0000 00000000 " CLIENT6
/* version, R|opcode, reserved, result, lifetime, epoch, reserved */
#define ANN_RSP "02 80 00 00 00000000 0000002a " ZERO12

#define MAP_REQ_HDR "02 01 0000 00001c20 " CLIENT4
/* nonce, protocol, reserved, internal port, suggested external port, suggested address */
#define MAP_REQ_BODY NONCE_A " 06 000000 1f90 0000 " ANY4
#define MAP_REQ MAP_REQ_HDR " " MAP_REQ_BODY
#define MAP_RSP_HDR "02 81 00 00 00001c20 0000abcd " ZERO12
#define MAP_RSP_BODY NONCE_A " 06 000000 1f90 1f90 " EXT4
#define MAP_RSP MAP_RSP_HDR " " MAP_RSP_BODY

#define PEER_REQ_HDR "02 02 0000 0000012c " CLIENT4
/* MAP body + remote port, reserved, remote address */
#define PEER_REQ_BODY NONCE_B " 11 000000 13c4 13c4 " ANY4 " 13c5 0000 " REMOTE4
#define PEER_REQ PEER_REQ_HDR " " PEER_REQ_BODY
#define PEER_RSP_HDR "02 82 00 00 0000012c 00010000 " ZERO12
#define PEER_RSP_BODY NONCE_B " 11 000000 13c4 9c40 " EXT4 " 13c5 0000 " REMOTE4
#define PEER_RSP PEER_RSP_HDR " " PEER_RSP_BODY

/* options: code, reserved, length, data, padding */
#define OPT_THIRD_PARTY " 01 00 0010 " TP4
#define OPT_PREFER_FAILURE " 02 00 0000"
/* reserved, prefix length, remote port, remote address */
#define OPT_FILTER4 " 03 00 0014 00 78 0000 00000000000000000000ffff c6336400" /* 198.51.100.0/24 */
#define OPT_FILTER6 " 03 00 0014 00 30 01bb 20010db8 00010000 00000000 00000000" /* 2001:db8:1::/48 :443 */
#define OPT_DESCRIPTION " 80 00 0005 636166c3a9 000000" /* "café" */
/* prefix64 length (octets), prefix64, suffix, [IPv4 prefix count, (length, address)...] */
#define OPT_PREFIX64_REQ " 81 00 000e 000c 000000000000000000000000 0000"
#define OPT_PREFIX64_RSP " 81 00 0016 000c 0064ff9b0000000000000000 0001 0018 c6336400 0000"
#define OPT_PREFIX64_40 " 81 00 000e 0005 20010db801 00000000000000 0000"
/* size, first internal port, parity */
#define OPT_PORT_SET " 82 00 0005 0010 1f90 01 000000"

static void map_request(pcp_msg *m) {
        pcp_msg_init(m, false, PCP_OPCODE_MAP);
        m->lifetime = 7200;
        m->client_addr = addr("192.0.2.33");
        nonce_fill(m->nonce, 0xa1);
        m->protocol = 6;
        m->internal_port = 8080;
        m->external_port = 0;
        m->external_addr = addr("0.0.0.0");
}

static void map_response(pcp_msg *m) {
        pcp_msg_init(m, true, PCP_OPCODE_MAP);
        m->result = PCP_RESULT_SUCCESS;
        m->lifetime = 7200;
        m->epoch = 0xabcd;
        nonce_fill(m->nonce, 0xa1);
        m->protocol = 6;
        m->internal_port = 8080;
        m->external_port = 8080;
        m->external_addr = addr("203.0.113.7");
}

static void peer_request(pcp_msg *m) {
        pcp_msg_init(m, false, PCP_OPCODE_PEER);
        m->lifetime = 300;
        m->client_addr = addr("192.0.2.33");
        nonce_fill(m->nonce, 0xb1);
        m->protocol = 17;
        m->internal_port = 5060;
        m->external_port = 5060;
        m->external_addr = addr("0.0.0.0");
        m->remote_port = 5061;
        m->remote_addr = addr("198.51.100.9");
}

static void peer_response(pcp_msg *m) {
        pcp_msg_init(m, true, PCP_OPCODE_PEER);
        m->lifetime = 300;
        m->epoch = 0x10000;
        nonce_fill(m->nonce, 0xb1);
        m->protocol = 17;
        m->internal_port = 5060;
        m->external_port = 40000;
        m->external_addr = addr("203.0.113.7");
        m->remote_port = 5061;
        m->remote_addr = addr("198.51.100.9");
}

static void announce_request(pcp_msg *m) {
        pcp_msg_init(m, false, PCP_OPCODE_ANNOUNCE);
        m->client_addr = addr("2001:db8::2");
}

static void announce_response(pcp_msg *m) {
        pcp_msg_init(m, true, PCP_OPCODE_ANNOUNCE);
        m->epoch = 42;
}

static void add_filter(pcp_msg *m, const char *a, uint8_t prefix_len, uint16_t port) {
        pcp_filter *f = &m->filters[m->n_filters++];

        f->prefix_len = prefix_len;
        f->remote_port = port;
        f->remote_addr = addr(a);
}

static const char cafe[] = "caf\xc3\xa9";

/* ---- PCP message vectors ---- */

static void test_announce_vectors(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;

        announce_request(&m);
        check_vector(&m, ANN_REQ);
        n = unhex(ANN_REQ, buf, sizeof(buf));
        assert_int_equal(n, 24);
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_int_equal(d.version, 2);
        assert_false(d.response);
        assert_int_equal(d.opcode, PCP_OPCODE_ANNOUNCE);
        assert_int_equal(d.lifetime, 0);
        assert_true(pcp_addr_eq(&d.client_addr, &m.client_addr));
        assert_int_equal(d.options, 0);
        assert_int_equal(d.n_filters + d.n_prefix64 + d.n_unknown, 0);

        announce_response(&m);
        check_vector(&m, ANN_RSP);
        n = unhex(ANN_RSP, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &d), PCP_WIRE_OK);
        assert_true(d.response);
        assert_int_equal(d.opcode, PCP_OPCODE_ANNOUNCE);
        assert_int_equal(d.result, PCP_RESULT_SUCCESS);
        assert_int_equal(d.epoch, 42);
}

static void test_map_vectors(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;

        map_request(&m);
        check_vector(&m, MAP_REQ);
        n = unhex(MAP_REQ, buf, sizeof(buf));
        assert_int_equal(n, 60);
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_int_equal(d.opcode, PCP_OPCODE_MAP);
        assert_int_equal(d.lifetime, 7200);
        assert_true(pcp_addr_eq(&d.client_addr, &m.client_addr));
        assert_memory_equal(d.nonce, m.nonce, PCP_NONCE_LEN);
        assert_int_equal(d.protocol, 6);
        assert_int_equal(d.internal_port, 8080);
        assert_int_equal(d.external_port, 0);
        assert_true(pcp_addr_is_unspecified(&d.external_addr));
        assert_true(pcp_addr_is_ipv4(&d.external_addr));

        map_response(&m);
        check_vector(&m, MAP_RSP);
        n = unhex(MAP_RSP, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &d), PCP_WIRE_OK);
        assert_int_equal(d.result, PCP_RESULT_SUCCESS);
        assert_int_equal(d.lifetime, 7200);
        assert_int_equal(d.epoch, 0xabcd);
        assert_int_equal(d.external_port, 8080);
        assert_true(pcp_addr_eq(&d.external_addr, &m.external_addr));

        /* an IPv6 mapping: delete (lifetime 0) with the all-zero suggestion */
        pcp_msg_init(&m, false, PCP_OPCODE_MAP);
        m.client_addr = addr("2001:db8::2");
        nonce_fill(m.nonce, 0x01);
        m.protocol = 17;
        m.internal_port = 53;
        check_vector(&m, "02 01 0000 00000000 " CLIENT6 " 0102030405060708090a0b0c 11 000000 0035 0000 "
                         "00000000000000000000000000000000");
}

static void test_peer_vectors(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;

        peer_request(&m);
        check_vector(&m, PEER_REQ);
        n = unhex(PEER_REQ, buf, sizeof(buf));
        assert_int_equal(n, 80);
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_int_equal(d.opcode, PCP_OPCODE_PEER);
        assert_int_equal(d.protocol, 17);
        assert_int_equal(d.internal_port, 5060);
        assert_int_equal(d.external_port, 5060);
        assert_int_equal(d.remote_port, 5061);
        assert_true(pcp_addr_eq(&d.remote_addr, &m.remote_addr));

        peer_response(&m);
        check_vector(&m, PEER_RSP);
        n = unhex(PEER_RSP, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &d), PCP_WIRE_OK);
        assert_int_equal(d.lifetime, 300);
        assert_int_equal(d.epoch, 0x10000);
        assert_int_equal(d.external_port, 40000);
        assert_true(pcp_addr_eq(&d.external_addr, &m.external_addr));
        assert_int_equal(d.remote_port, 5061);
}

/* ---- option vectors ---- */

static void test_option_third_party(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;

        map_request(&m);
        m.options |= PCP_HAS_THIRD_PARTY;
        m.third_party = addr("192.0.2.66");
        check_vector(&m, MAP_REQ OPT_THIRD_PARTY);
        n = unhex(MAP_REQ OPT_THIRD_PARTY, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_int_equal(d.options, PCP_HAS_THIRD_PARTY);
        assert_true(pcp_addr_eq(&d.third_party, &m.third_party));

        peer_response(&m);
        m.options |= PCP_HAS_THIRD_PARTY;
        m.third_party = addr("192.0.2.66");
        check_vector(&m, PEER_RSP OPT_THIRD_PARTY);
}

static void test_option_prefer_failure(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;

        map_request(&m);
        m.options |= PCP_HAS_PREFER_FAILURE;
        check_vector(&m, MAP_REQ OPT_PREFER_FAILURE);
        n = unhex(MAP_REQ OPT_PREFER_FAILURE, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_int_equal(d.options, PCP_HAS_PREFER_FAILURE);

        map_response(&m);
        m.options |= PCP_HAS_PREFER_FAILURE;
        check_vector(&m, MAP_RSP OPT_PREFER_FAILURE);
}

static void test_option_filter(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;

        map_request(&m);
        add_filter(&m, "198.51.100.0", 96 + 24, 0);
        add_filter(&m, "2001:db8:1::", 48, 443);
        check_vector(&m, MAP_REQ OPT_FILTER4 OPT_FILTER6);
        n = unhex(MAP_REQ OPT_FILTER4 OPT_FILTER6, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_int_equal(d.options, 0);
        assert_int_equal(d.n_filters, 2);
        assert_int_equal(d.filters[0].prefix_len, 120);
        assert_int_equal(d.filters[0].remote_port, 0);
        assert_true(pcp_addr_eq(&d.filters[0].remote_addr, &m.filters[0].remote_addr));
        assert_int_equal(d.filters[1].prefix_len, 48);
        assert_int_equal(d.filters[1].remote_port, 443);
        assert_true(pcp_addr_eq(&d.filters[1].remote_addr, &m.filters[1].remote_addr));

        map_response(&m);
        add_filter(&m, "198.51.100.0", 96 + 24, 0);
        check_vector(&m, MAP_RSP OPT_FILTER4);

        /* prefix length 0 = "remove all filters", allowed on either family */
        map_request(&m);
        add_filter(&m, "0.0.0.0", 0, 0);
        check_vector(&m, MAP_REQ " 03 00 0014 00 00 0000 " ANY4);
}

static void test_option_description(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;

        map_request(&m);
        m.options |= PCP_HAS_DESCRIPTION;
        m.description = cafe;
        m.description_len = 5;
        check_vector(&m, MAP_REQ OPT_DESCRIPTION);
        n = unhex(MAP_REQ OPT_DESCRIPTION, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_int_equal(d.options, PCP_HAS_DESCRIPTION);
        assert_int_equal(d.description_len, 5);
        assert_memory_equal(d.description, cafe, 5);
        /* points into the caller's buffer, after the 4-octet option header */
        assert_ptr_equal(d.description, (const char *) buf + 60 + 4);

        peer_response(&m);
        m.options |= PCP_HAS_DESCRIPTION;
        m.description = cafe;
        m.description_len = 5;
        check_vector(&m, PEER_RSP OPT_DESCRIPTION);

        /* empty, and a length that needs no padding */
        map_request(&m);
        m.options |= PCP_HAS_DESCRIPTION;
        m.description = "";
        m.description_len = 0;
        check_vector(&m, MAP_REQ " 80 00 0000");
        m.description = "pcpd";
        m.description_len = 4;
        check_vector(&m, MAP_REQ " 80 00 0004 70637064");
        /* a 4-octet UTF-8 sequence (U+1F600) */
        m.description = "\xf0\x9f\x98\x80";
        check_vector(&m, MAP_REQ " 80 00 0004 f09f9880");
}

static void test_option_prefix64(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;
        static const uint8_t v4list[] = {0x00, 0x18, 0xc6, 0x33, 0x64, 0x00};
        struct in_addr v4;
        uint8_t plen;

        /* request: ::/96, no IPv4 list */
        map_request(&m);
        m.n_prefix64 = 1;
        m.prefix64[0] = (pcp_prefix64){.prefix_len = 96, .suffix_len = 0};
        check_vector(&m, MAP_REQ OPT_PREFIX64_REQ);

        /* response: 64:ff9b::/96 for 198.51.100.0/24, plus a /40 without list */
        announce_response(&m);
        m.n_prefix64 = 2;
        m.prefix64[0] = (pcp_prefix64){
                .prefix_len = 96,
                .prefix = addr("64:ff9b::"),
                .suffix_len = 0,
                .has_ipv4_list = true,
                .ipv4_prefix_count = 1,
                .ipv4_prefixes = v4list,
        };
        m.prefix64[1] = (pcp_prefix64){.prefix_len = 40, .prefix = addr("2001:db8:100::"), .suffix_len = 7};
        check_vector(&m, ANN_RSP OPT_PREFIX64_RSP OPT_PREFIX64_40);

        n = unhex(ANN_RSP OPT_PREFIX64_RSP OPT_PREFIX64_40, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &d), PCP_WIRE_OK);
        assert_int_equal(d.n_prefix64, 2);
        assert_int_equal(d.prefix64[0].prefix_len, 96);
        assert_true(pcp_addr_eq(&d.prefix64[0].prefix, &m.prefix64[0].prefix));
        assert_true(d.prefix64[0].has_ipv4_list);
        assert_int_equal(d.prefix64[0].ipv4_prefix_count, 1);
        assert_true(pcp_prefix64_get_ipv4_prefix(&d.prefix64[0], 0, &v4, &plen));
        assert_int_equal(plen, 24);
        assert_int_equal(ntohl(v4.s_addr), 0xc6336400);
        assert_false(pcp_prefix64_get_ipv4_prefix(&d.prefix64[0], 1, &v4, &plen));
        assert_int_equal(d.prefix64[1].prefix_len, 40);
        assert_int_equal(d.prefix64[1].suffix_len, 7);
        assert_true(pcp_addr_eq(&d.prefix64[1].prefix, &m.prefix64[1].prefix));
        assert_false(d.prefix64[1].has_ipv4_list);
        assert_false(pcp_prefix64_get_ipv4_prefix(&d.prefix64[1], 0, NULL, NULL));
        assert_false(pcp_prefix64_get_ipv4_prefix(NULL, 0, NULL, NULL));

        /* an explicit empty IPv4 list (count 0) is kept as such */
        announce_response(&m);
        m.n_prefix64 = 1;
        m.prefix64[0] = (pcp_prefix64){.prefix_len = 96, .prefix = addr("64:ff9b::"), .has_ipv4_list = true};
        check_vector(&m, ANN_RSP " 81 00 0010 000c 0064ff9b0000000000000000 0000");
}

static void test_option_port_set(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;

        map_request(&m);
        m.options |= PCP_HAS_PORT_SET;
        m.port_set = (pcp_port_set){.size = 16, .first_internal_port = 8080, .parity = true};
        check_vector(&m, MAP_REQ OPT_PORT_SET);
        n = unhex(MAP_REQ OPT_PORT_SET, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_int_equal(d.options, PCP_HAS_PORT_SET);
        assert_int_equal(d.port_set.size, 16);
        assert_int_equal(d.port_set.first_internal_port, 8080);
        assert_true(d.port_set.parity);

        map_response(&m);
        m.options |= PCP_HAS_PORT_SET;
        m.port_set = (pcp_port_set){.size = 0xffff, .first_internal_port = 1, .parity = false};
        check_vector(&m, MAP_RSP " 82 00 0005 ffff 0001 00 000000");

        /* only the low bit of the fifth octet is the parity bit */
        n = unhex(MAP_REQ " 82 00 0005 0010 1f90 fe 000000", buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_false(d.port_set.parity);
}

static void test_option_unknown(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m, d;
        static const uint8_t data[] = {0xab, 0xcd, 0xef};

        /* optional (128-255) unknown options are kept in requests... */
        map_request(&m);
        m.n_unknown = 1;
        m.unknown[0] = (pcp_raw_option){.code = 200, .len = 3, .data = data};
        check_vector(&m, MAP_REQ " c8 00 0003 abcdef 00");
        n = unhex(MAP_REQ " c8 00 0003 abcdef 00", buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_OK);
        assert_int_equal(d.n_unknown, 1);
        assert_int_equal(d.unknown[0].code, 200);
        assert_int_equal(d.unknown[0].len, 3);
        assert_memory_equal(d.unknown[0].data, data, 3);

        /* ...and mandatory ones (0-127) in responses (RFC 6887 §7.3: client ignores) */
        map_response(&m);
        m.n_unknown = 2;
        m.unknown[0] = (pcp_raw_option){.code = 99, .len = 0};
        m.unknown[1] = (pcp_raw_option){.code = 0, .len = 3, .data = data};
        check_vector(&m, MAP_RSP " 63 00 0000 00 00 0003 abcdef 00");
        n = unhex(MAP_RSP " 63 00 0000 00 00 0003 abcdef 00", buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &d), PCP_WIRE_OK);
        assert_int_equal(d.n_unknown, 2);
        assert_int_equal(d.unknown[0].code, 99);
        assert_int_equal(d.unknown[1].code, 0);

        /* the same options in a request: the first mandatory one is refused */
        n = unhex(MAP_REQ " 63 00 0000", buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_ERR_OPTION_UNKNOWN_MANDATORY);
        n = unhex(ANN_REQ " 00 00 0000", buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_ERR_OPTION_UNKNOWN_MANDATORY);
        n = unhex(PEER_REQ " 7f 00 0004 00000000", buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &d), PCP_WIRE_ERR_OPTION_UNKNOWN_MANDATORY);
}

static void test_all_options(void **state) {
#define ALL_MAP_REQ                                                                                         \
        MAP_REQ OPT_THIRD_PARTY OPT_PREFER_FAILURE OPT_FILTER4 OPT_FILTER6 OPT_DESCRIPTION OPT_PREFIX64_REQ \
                OPT_PORT_SET " c8 00 0003 abcdef 00"
        static const uint8_t data[] = {0xab, 0xcd, 0xef};
        uint8_t buf[BUF_MAX];
        pcp_msg m;
        size_t n;

        map_request(&m);
        m.options = PCP_HAS_THIRD_PARTY | PCP_HAS_PREFER_FAILURE | PCP_HAS_DESCRIPTION | PCP_HAS_PORT_SET;
        m.third_party = addr("192.0.2.66");
        add_filter(&m, "198.51.100.0", 120, 0);
        add_filter(&m, "2001:db8:1::", 48, 443);
        m.description = cafe;
        m.description_len = 5;
        m.n_prefix64 = 1;
        m.prefix64[0] = (pcp_prefix64){.prefix_len = 96};
        m.port_set = (pcp_port_set){.size = 16, .first_internal_port = 8080, .parity = true};
        m.n_unknown = 1;
        m.unknown[0] = (pcp_raw_option){.code = 200, .len = 3, .data = data};
        check_vector(&m, ALL_MAP_REQ);
        n = unhex(ALL_MAP_REQ, buf, sizeof(buf));
        assert_int_equal(n, 60 + 20 + 4 + 24 + 24 + 12 + 20 + 12 + 8);
        check_round_trip(buf, n, false, true);
#undef ALL_MAP_REQ
}

/* ---- round trips ---- */

static void test_round_trips(void **state) {
        static const struct {
                const char *hex;
                bool response;
        } canonical[] = {
                {ANN_REQ, false},
                {ANN_RSP, true},
                {MAP_REQ, false},
                {MAP_RSP, true},
                {PEER_REQ, false},
                {PEER_RSP, true},
                {MAP_REQ OPT_THIRD_PARTY OPT_PREFER_FAILURE OPT_FILTER4, false},
                {MAP_RSP OPT_PREFER_FAILURE OPT_FILTER4 OPT_FILTER6 OPT_DESCRIPTION OPT_PORT_SET, true},
                {PEER_REQ OPT_THIRD_PARTY OPT_DESCRIPTION, false},
                {ANN_RSP OPT_PREFIX64_RSP OPT_PREFIX64_40, true},
                {MAP_RSP OPT_PREFIX64_RSP " 05 00 0001 ff000000 fe 00 0000", true},
                /* another version's UNSUPP_VERSION: the header alone */
                {"01 81 00 01 00000000 00000007 " ZERO12, true},
        };
        /* decodable, but not what the encoder writes: reserved bits set, options out of
         * canonical order, another version's header with a body */
        static const struct {
                const char *hex;
                bool response;
        } other[] = {
                {"02 01 ffff 00001c20 " CLIENT4 " " NONCE_A " 06 ffffff 1f90 0000 " ANY4, false},
                {"02 81 ff 00 00001c20 0000abcd ffffffffffffffffffffffff " MAP_RSP_BODY, true},
                {MAP_REQ OPT_PORT_SET OPT_DESCRIPTION OPT_FILTER4 OPT_THIRD_PARTY, false},
                {MAP_REQ " 03 ff 0014 ff 78 0000 00000000000000000000ffff c6336400", false},
                {MAP_REQ " 80 00 0001 41 ffffff", false},
                {"03 81 00 01 00000000 00000007 " ZERO12 " " MAP_RSP_BODY, true},
        };

        for (size_t i = 0; i < ELEMENTSOF(canonical); i++)
                check_round_trip_hex(canonical[i].hex, canonical[i].response, true);
        for (size_t i = 0; i < ELEMENTSOF(other); i++)
                check_round_trip_hex(other[i].hex, other[i].response, false);
}

/* ---- malformed PCP ---- */

typedef struct bad_case {
        const char *name;
        const char *hex;
        bool response;
        pcp_wire_error error;
} bad_case;

static const bad_case bad_cases[] = {
        /* length */
        {"empty", "", false, PCP_WIRE_ERR_SHORT},
        {"1 octet", "02", false, PCP_WIRE_ERR_SHORT},
        {"3 octets", "02 00 00", false, PCP_WIRE_ERR_SHORT},
        {"20 octets", "02 00 0000 00000000 00000000000000000000ffff", false, PCP_WIRE_ERR_SHORT},
        {"response 20 octets", "02 80 00 00 00000000 0000002a 0000000000000000", true, PCP_WIRE_ERR_SHORT},
        {"MAP header only", MAP_REQ_HDR, false, PCP_WIRE_ERR_SHORT},
        {"MAP body cut", MAP_REQ_HDR " " NONCE_A " 06 000000 1f90 0000 00000000000000000000ffff", false,
         PCP_WIRE_ERR_SHORT},
        {"PEER with a MAP body", "02 02 0000 0000012c " CLIENT4 " " MAP_REQ_BODY, false, PCP_WIRE_ERR_SHORT},
        {"PEER response with a MAP body", "02 82 00 00 0000012c 00010000 " ZERO12 " " MAP_RSP_BODY, true,
         PCP_WIRE_ERR_SHORT},
        {"25 octets", ANN_REQ " 00", false, PCP_WIRE_ERR_ALIGN},
        {"26 octets", ANN_RSP " 0000", true, PCP_WIRE_ERR_ALIGN},
        {"63 octets", MAP_REQ " 020000", false, PCP_WIRE_ERR_ALIGN},
        /* version, direction, opcode, result */
        {"version 1 request", "01 01 0000 00001c20 " CLIENT4 " " MAP_REQ_BODY, false, PCP_WIRE_ERR_VERSION},
        {"version 0 request", "00 00 0000 00000000 " CLIENT4, false, PCP_WIRE_ERR_VERSION},
        {"version 3 success", "03 81 00 00 00001c20 0000abcd " ZERO12 " " MAP_RSP_BODY, true,
         PCP_WIRE_ERR_VERSION},
        {"version 0 UNSUPP_VERSION", "00 80 00 01 00000000 00000007 " ZERO12, true, PCP_WIRE_ERR_VERSION},
        {"response as request", MAP_RSP, false, PCP_WIRE_ERR_DIRECTION},
        {"request as response", MAP_REQ, true, PCP_WIRE_ERR_DIRECTION},
        {"short request as response", "02 01 00 00", true, PCP_WIRE_ERR_DIRECTION},
        {"opcode 3", "02 03 0000 00000000 " CLIENT4, false, PCP_WIRE_ERR_OPCODE},
        {"opcode 127 response", "02 ff 00 04 00000000 00000007 " ZERO12, true, PCP_WIRE_ERR_OPCODE},
        {"result 14", "02 80 00 0e 00000000 0000002a " ZERO12, true, PCP_WIRE_ERR_RESULT},
        {"result 255", "02 81 00 ff 00000000 0000002a " ZERO12 " " MAP_RSP_BODY, true, PCP_WIRE_ERR_RESULT},
        /* option framing */
        {"option data cut", MAP_REQ " 01 00 0014 " TP4, false, PCP_WIRE_ERR_OPTION_TRUNCATED},
        {"option padding cut", MAP_REQ " 80 00 0005 61626364", false, PCP_WIRE_ERR_OPTION_TRUNCATED},
        {"option length 65535", MAP_RSP " c8 00 ffff 00000000", true, PCP_WIRE_ERR_OPTION_TRUNCATED},
        {"second option cut", MAP_REQ OPT_PREFER_FAILURE " 02 00 0004", false,
         PCP_WIRE_ERR_OPTION_TRUNCATED},
        /* known options with the wrong length */
        {"THIRD_PARTY 0", MAP_REQ " 01 00 0000", false, PCP_WIRE_ERR_OPTION_LENGTH},
        {"THIRD_PARTY 12", MAP_REQ " 01 00 000c 00000000000000000000ffff", false,
         PCP_WIRE_ERR_OPTION_LENGTH},
        {"THIRD_PARTY 20", MAP_REQ " 01 00 0014 " TP4 " 00000000", false, PCP_WIRE_ERR_OPTION_LENGTH},
        {"PREFER_FAILURE 4", MAP_REQ " 02 00 0004 00000000", false, PCP_WIRE_ERR_OPTION_LENGTH},
        {"PREFER_FAILURE 1", MAP_RSP " 02 00 0001 00000000", true, PCP_WIRE_ERR_OPTION_LENGTH},
        {"FILTER 16", MAP_REQ " 03 00 0010 00 78 0000 00000000000000000000ffff", false,
         PCP_WIRE_ERR_OPTION_LENGTH},
        {"FILTER 24", MAP_REQ " 03 00 0018 00 78 0000 00000000000000000000ffff c6336400 00000000", false,
         PCP_WIRE_ERR_OPTION_LENGTH},
        {"PREFIX64 0", MAP_REQ " 81 00 0000", false, PCP_WIRE_ERR_OPTION_LENGTH},
        {"PREFIX64 1", MAP_REQ " 81 00 0001 00000000", false, PCP_WIRE_ERR_OPTION_LENGTH},
        {"PREFIX64 13", MAP_REQ " 81 00 000d 000c 0000000000000000000000 000000", false,
         PCP_WIRE_ERR_OPTION_LENGTH},
        {"PREFIX64 15", MAP_REQ " 81 00 000f 000c 000000000000000000000000 00 00", false,
         PCP_WIRE_ERR_OPTION_LENGTH},
        {"PREFIX64 count 2 with 1 entry",
         ANN_RSP " 81 00 0016 000c 0064ff9b0000000000000000 0002 0018 c6336400 0000", true,
         PCP_WIRE_ERR_OPTION_LENGTH},
        {"PREFIX64 count 0 with 1 entry",
         ANN_RSP " 81 00 0016 000c 0064ff9b0000000000000000 0000 0018 c6336400 0000", true,
         PCP_WIRE_ERR_OPTION_LENGTH},
        {"PORT_SET 4", MAP_REQ " 82 00 0004 0010 1f90", false, PCP_WIRE_ERR_OPTION_LENGTH},
        {"PORT_SET 8", MAP_REQ " 82 00 0008 0010 1f90 01 000000", false, PCP_WIRE_ERR_OPTION_LENGTH},
        /* options in the wrong opcode */
        {"PREFER_FAILURE in PEER", PEER_REQ OPT_PREFER_FAILURE, false, PCP_WIRE_ERR_OPTION_OPCODE},
        {"FILTER in PEER", PEER_REQ OPT_FILTER4, false, PCP_WIRE_ERR_OPTION_OPCODE},
        {"PORT_SET in PEER", PEER_RSP OPT_PORT_SET, true, PCP_WIRE_ERR_OPTION_OPCODE},
        {"PREFIX64 in PEER", PEER_REQ OPT_PREFIX64_REQ, false, PCP_WIRE_ERR_OPTION_OPCODE},
        {"THIRD_PARTY in ANNOUNCE", ANN_REQ OPT_THIRD_PARTY, false, PCP_WIRE_ERR_OPTION_OPCODE},
        {"DESCRIPTION in ANNOUNCE", ANN_RSP OPT_DESCRIPTION, true, PCP_WIRE_ERR_OPTION_OPCODE},
        {"FILTER in ANNOUNCE", ANN_RSP OPT_FILTER4, true, PCP_WIRE_ERR_OPTION_OPCODE},
        {"PREFER_FAILURE in ANNOUNCE", ANN_REQ OPT_PREFER_FAILURE, false, PCP_WIRE_ERR_OPTION_OPCODE},
        {"PORT_SET in ANNOUNCE", ANN_REQ OPT_PORT_SET, false, PCP_WIRE_ERR_OPTION_OPCODE},
        /* non-repeatable options repeated */
        {"THIRD_PARTY twice", MAP_REQ OPT_THIRD_PARTY OPT_THIRD_PARTY, false, PCP_WIRE_ERR_OPTION_DUPLICATE},
        {"PREFER_FAILURE twice", MAP_RSP OPT_PREFER_FAILURE OPT_FILTER4 OPT_PREFER_FAILURE, true,
         PCP_WIRE_ERR_OPTION_DUPLICATE},
        {"DESCRIPTION twice", PEER_REQ OPT_DESCRIPTION OPT_DESCRIPTION, false,
         PCP_WIRE_ERR_OPTION_DUPLICATE},
        {"PORT_SET twice", MAP_REQ OPT_PORT_SET OPT_PORT_SET, false, PCP_WIRE_ERR_OPTION_DUPLICATE},
        /* invalid values */
        {"FILTER prefix 129", MAP_REQ " 03 00 0014 00 81 0000 20010db8000100000000000000000000", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"FILTER prefix 255", MAP_RSP " 03 00 0014 00 ff 0000 20010db8000100000000000000000000", true,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"FILTER IPv4 prefix 1", MAP_REQ " 03 00 0014 00 01 0000 00000000000000000000ffff c6336400", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"FILTER IPv4 prefix 95", MAP_REQ " 03 00 0014 00 5f 0000 00000000000000000000ffff c6336400", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"FILTER IPv4 prefix 129", MAP_REQ " 03 00 0014 00 81 0000 00000000000000000000ffff c6336400", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"PORT_SET size 0", MAP_REQ " 82 00 0005 0000 1f90 01 000000", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"PREFIX64 length 0", MAP_REQ " 81 00 000e 0000 000000000000000000000000 0000", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"PREFIX64 length 3", MAP_REQ " 81 00 000e 0003 000000000000000000000000 0000", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"PREFIX64 length 9", MAP_REQ " 81 00 000e 0009 000000000000000000000000 0000", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"PREFIX64 length 13", MAP_REQ " 81 00 000e 000d 000000000000000000000000 0000", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"PREFIX64 length 16", MAP_REQ " 81 00 0012 0010 00000000000000000000000000000000 0000", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"PREFIX64 length 0x010c", MAP_REQ " 81 00 000e 010c 000000000000000000000000 0000", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"PREFIX64 IPv4 prefix /33",
         ANN_RSP " 81 00 0016 000c 0064ff9b0000000000000000 0001 0021 c6336400 0000", true,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION 0xff", MAP_REQ " 80 00 0001 ff000000", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION lone continuation", MAP_REQ " 80 00 0002 4180 0000", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION overlong NUL", MAP_REQ " 80 00 0002 c080 0000", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION overlong 3", MAP_REQ " 80 00 0003 e08080 00", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION overlong 4", MAP_REQ " 80 00 0004 f08fbfbf", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION surrogate", MAP_REQ " 80 00 0003 eda080 00", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION above U+10FFFF", MAP_REQ " 80 00 0004 f4908080", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION 5-octet form", MAP_REQ " 80 00 0005 f888808080 000000", false,
         PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION cut sequence", MAP_REQ " 80 00 0002 e282 0000", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION bad continuation", MAP_REQ " 80 00 0003 e22841 00", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION NUL", MAP_REQ " 80 00 0003 610062 00", false, PCP_WIRE_ERR_OPTION_VALUE},
        {"DESCRIPTION invalid in response", MAP_RSP " 80 00 0001 ff000000", true, PCP_WIRE_ERR_OPTION_VALUE},
        /* unknown mandatory in a request */
        {"unknown mandatory 99", MAP_REQ " 63 00 0004 00000000", false,
         PCP_WIRE_ERR_OPTION_UNKNOWN_MANDATORY},
        {"unknown mandatory 4", MAP_REQ OPT_THIRD_PARTY " 04 00 0000", false,
         PCP_WIRE_ERR_OPTION_UNKNOWN_MANDATORY},
};

static void test_malformed(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
                uint8_t buf[BUF_MAX];
                size_t n = unhex(bad_cases[i].hex, buf, sizeof(buf));
                pcp_msg m;
                pcp_wire_error r = pcp_decode(buf, n, bad_cases[i].response, &m);

                if (r != bad_cases[i].error)
                        fail_msg("%s: got \"%s\", want \"%s\"", bad_cases[i].name,
                                 pcp_wire_error_to_string(r), pcp_wire_error_to_string(bad_cases[i].error));
                /* the same bytes padded out with a valid option must not rescue a bad
                 * header: checked implicitly by the cases above that carry options */
        }
}

static void test_header_reported_on_error(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m;

        /* a server must see which version and opcode it was asked for */
        n = unhex("01 01 0000 00001c20 " CLIENT4 " " MAP_REQ_BODY, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_ERR_VERSION);
        assert_int_equal(m.version, 1);
        assert_int_equal(m.opcode, PCP_OPCODE_MAP);
        assert_false(m.response);

        n = unhex("03 02 0000 0000012c " CLIENT4, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_ERR_VERSION);
        assert_int_equal(m.version, 3);
        assert_int_equal(m.opcode, PCP_OPCODE_PEER);

        /* a client sees which version a server answered with */
        n = unhex("03 81 00 00 00001c20 0000abcd " ZERO12 " " MAP_RSP_BODY, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &m), PCP_WIRE_ERR_VERSION);
        assert_int_equal(m.version, 3);
        assert_int_equal(m.opcode, PCP_OPCODE_MAP);
        assert_int_equal(m.result, PCP_RESULT_SUCCESS);

        /* an older server's UNSUPP_VERSION is a valid answer (version negotiation, §9) */
        n = unhex("01 81 00 01 00000000 00000007 " ZERO12, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_int_equal(m.version, 1);
        assert_int_equal(m.result, PCP_RESULT_UNSUPP_VERSION);
        assert_int_equal(m.epoch, 7);

        /* unknown opcode: still reported, with the result */
        n = unhex("02 85 00 04 00000000 00000008 " ZERO12, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &m), PCP_WIRE_ERR_OPCODE);
        assert_int_equal(m.opcode, 5);
        assert_int_equal(m.result, PCP_RESULT_UNSUPP_OPCODE);

        /* wrong direction: the R bit is reported as it was */
        n = unhex(MAP_RSP, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_ERR_DIRECTION);
        assert_true(m.response);
        assert_int_equal(m.opcode, PCP_OPCODE_MAP);

        /* a NAT-PMP-only server's answer to a PCP request (RFC 6886 erratum 3618): too
         * short for PCP, but version 0 and the result are there for the client to see
         * before it hands the datagram to natpmp_decode() */
        n = unhex("00 80 00 01 00000007", buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &m), PCP_WIRE_ERR_SHORT);
        assert_int_equal(m.version, 0);
        assert_true(m.response);
        assert_int_equal(m.result, PCP_RESULT_UNSUPP_VERSION);

        /* shorter than a header but more than the version: still reported */
        n = unhex("01 01", buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_ERR_SHORT);
        assert_int_equal(m.version, 1);
        assert_int_equal(m.opcode, PCP_OPCODE_MAP);
}

static void test_long_message(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m;

        /* 1100 octets: a MAP request + one unknown optional option filling the rest */
        n = unhex(MAP_REQ, buf, sizeof(buf));
        buf[n] = 200;
        buf[n + 1] = 0;
        buf[n + 2] = (uint8_t) ((PCP_MAX_MSG_LEN - n - 4) >> 8);
        buf[n + 3] = (uint8_t) (PCP_MAX_MSG_LEN - n - 4);
        memset(buf + n + 4, 'x', PCP_MAX_MSG_LEN - n - 4);
        assert_int_equal(pcp_decode(buf, PCP_MAX_MSG_LEN, false, &m), PCP_WIRE_OK);
        assert_int_equal(m.n_unknown, 1);
        assert_int_equal(m.unknown[0].len, PCP_MAX_MSG_LEN - 64);
        check_round_trip(buf, PCP_MAX_MSG_LEN, false, true);

        /* 1104 octets */
        buf[n + 3] = (uint8_t) (buf[n + 3] + 4);
        memset(buf + PCP_MAX_MSG_LEN, 'x', 4);
        assert_int_equal(pcp_decode(buf, PCP_MAX_MSG_LEN + 4, false, &m), PCP_WIRE_ERR_LONG);
        /* longer than that but misaligned: LONG wins */
        assert_int_equal(pcp_decode(buf, PCP_MAX_MSG_LEN + 1, false, &m), PCP_WIRE_ERR_LONG);
}

static size_t put_description(uint8_t *buf, const char *head_hex, size_t dlen, char fill) {
        size_t n = unhex(head_hex, buf, BUF_MAX);

        buf[n] = PCP_OPTION_DESCRIPTION;
        buf[n + 1] = 0;
        buf[n + 2] = (uint8_t) (dlen >> 8);
        buf[n + 3] = (uint8_t) dlen;
        memset(buf + n + 4, fill, dlen);
        memset(buf + n + 4 + dlen, 0, (4 - dlen % 4) % 4);
        return n + 4 + dlen + (4 - dlen % 4) % 4;
}

static void test_description_length(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n;
        pcp_msg m;

        n = put_description(buf, MAP_REQ, PCP_MAX_DESCRIPTION_LEN, 'a');
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_OK);
        assert_int_equal(m.description_len, 1016);
        check_round_trip(buf, n, false, true);

        n = put_description(buf, MAP_REQ, PCP_MAX_DESCRIPTION_LEN + 1, 'a');
        assert_true(n <= PCP_MAX_MSG_LEN);
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_ERR_OPTION_LENGTH);
        n = put_description(buf, MAP_RSP, PCP_MAX_DESCRIPTION_LEN + 4, 'a');
        assert_int_equal(pcp_decode(buf, n, true, &m), PCP_WIRE_ERR_OPTION_LENGTH);
}

/* The UTF-8 check has a word-at-a-time path for ASCII: put each kind of octet at every
 * position of descriptions longer than a word, and compare with what it must say. */
static void test_description_utf8_positions(void **state) {
        static const struct {
                const char *seq;
                bool ok;
        } seqs[] = {
                {"\x00", false},
                {"\x7f", true},
                {"\x80", false},
                {"\xff", false},
                {"\xc3\xa9", true},
                {"\xc3", false},
                {"\xe2\x82\xac", true},
                {"\xed\xa0\x80", false},
                {"\xf0\x9f\x98\x80", true},
                {"\xf4\x90\x80\x80", false},
                {"\x01", true},
        };

        for (size_t k = 0; k < ELEMENTSOF(seqs); k++) {
                size_t sl = seqs[k].seq[0] == '\0' ? 1 : strlen(seqs[k].seq); /* "\x00" is one octet */

                for (size_t total = 8; total <= 24; total += 8)
                        for (size_t pos = 0; pos + sl <= total; pos++) {
                                char text[32];
                                uint8_t buf[BUF_MAX];
                                size_t len = 0;
                                pcp_msg m, d;

                                memset(text, 'a', total);
                                memcpy(text + pos, seqs[k].seq, sl);
                                map_request(&m);
                                m.options |= PCP_HAS_DESCRIPTION;
                                m.description = text;
                                m.description_len = (uint16_t) total;
                                if (!seqs[k].ok) {
                                        assert_int_equal(pcp_encode(&m, buf, sizeof(buf), &len),
                                                         PCP_WIRE_ERR_OPTION_VALUE);
                                        m.options = 0;
                                        assert_int_equal(pcp_encode(&m, buf, sizeof(buf), &len),
                                                         PCP_WIRE_OK);
                                        buf[len] = PCP_OPTION_DESCRIPTION;
                                        buf[len + 1] = 0;
                                        buf[len + 2] = 0;
                                        buf[len + 3] = (uint8_t) total;
                                        memcpy(buf + len + 4, text, total);
                                        if (pcp_decode(buf, len + 4 + total, false, &d) !=
                                            PCP_WIRE_ERR_OPTION_VALUE)
                                                fail_msg("sequence %zu at %zu of %zu accepted", k, pos,
                                                         total);
                                        continue;
                                }
                                if (pcp_encode(&m, buf, sizeof(buf), &len) != PCP_WIRE_OK)
                                        fail_msg("sequence %zu at %zu of %zu refused", k, pos, total);
                                assert_int_equal(pcp_decode(buf, len, false, &d), PCP_WIRE_OK);
                                assert_int_equal(d.description_len, total);
                        }
        }
}

static void test_option_limits(void **state) {
        uint8_t buf[BUF_MAX];
        size_t n, base;
        pcp_msg m;

        /* unknown options: 16 are kept, the 17th is refused rather than dropped */
        base = unhex(MAP_RSP, buf, sizeof(buf));
        for (n = base; n < base + 4 * PCP_MAX_UNKNOWN_OPTIONS; n += 4)
                unhex("c8 00 0000", buf + n, 4);
        assert_int_equal(pcp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_int_equal(m.n_unknown, PCP_MAX_UNKNOWN_OPTIONS);
        check_round_trip(buf, n, true, true);
        unhex("63 00 0000", buf + n, 4); /* mandatory-range ones count too in a response */
        assert_int_equal(pcp_decode(buf, n + 4, true, &m), PCP_WIRE_ERR_LIMIT);
        base = unhex(MAP_REQ, buf, sizeof(buf));
        for (n = base; n < base + 4 * (PCP_MAX_UNKNOWN_OPTIONS + 1); n += 4)
                unhex("ff 00 0000", buf + n, 4);
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_ERR_LIMIT);

        /* PREFIX64: 8 kept, the 9th refused */
        base = unhex(MAP_REQ, buf, sizeof(buf));
        for (n = base; n < base + 20 * PCP_MAX_PREFIX64; n += 20)
                unhex(OPT_PREFIX64_REQ, buf + n, 20);
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_OK);
        assert_int_equal(m.n_prefix64, PCP_MAX_PREFIX64);
        check_round_trip(buf, n, false, true);
        unhex(OPT_PREFIX64_REQ, buf + n, 20);
        assert_int_equal(pcp_decode(buf, n + 20, false, &m), PCP_WIRE_ERR_LIMIT);

        /* FILTER: as many as fit in 1100 octets */
        base = unhex(MAP_REQ, buf, sizeof(buf));
        for (n = base; n < base + 24 * PCP_MAX_FILTERS; n += 24)
                unhex(OPT_FILTER4, buf + n, 24);
        assert_true(n <= PCP_MAX_MSG_LEN);
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_OK);
        assert_int_equal(m.n_filters, PCP_MAX_FILTERS);
        check_round_trip(buf, n, false, true);
}

static void test_filter_prefix_values(void **state) {
        static const struct {
                const char *a;
                uint8_t len;
                bool ok;
        } cases[] = {
                {"198.51.100.0", 0, true},  {"198.51.100.0", 1, false},  {"198.51.100.0", 95, false},
                {"198.51.100.0", 96, true}, {"198.51.100.9", 128, true}, {"198.51.100.9", 129, false},
                {"2001:db8::", 0, true},    {"2001:db8::", 1, true},     {"2001:db8::", 95, true},
                {"2001:db8::1", 128, true}, {"2001:db8::1", 129, false},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t buf[BUF_MAX];
                size_t len = 0;
                pcp_msg m, d;

                map_request(&m);
                add_filter(&m, cases[i].a, cases[i].len, 80);
                if (!cases[i].ok) {
                        assert_int_equal(pcp_encode(&m, buf, sizeof(buf), &len), PCP_WIRE_ERR_OPTION_VALUE);
                        assert_int_equal(pcp_encoded_len(&m), 0);
                        /* write it by hand: the decoder refuses it too */
                        m.n_filters = 0;
                        assert_int_equal(pcp_encode(&m, buf, sizeof(buf), &len), PCP_WIRE_OK);
                        unhex("03 00 0014 00 00 0050", buf + len, 8);
                        buf[len + 5] = cases[i].len;
                        memcpy(buf + len + 8, addr(cases[i].a).s6_addr, 16);
                        assert_int_equal(pcp_decode(buf, len + 24, false, &d), PCP_WIRE_ERR_OPTION_VALUE);
                        continue;
                }
                assert_int_equal(pcp_encode(&m, buf, sizeof(buf), &len), PCP_WIRE_OK);
                assert_int_equal(pcp_decode(buf, len, false, &d), PCP_WIRE_OK);
                assert_int_equal(d.filters[0].prefix_len, cases[i].len);
        }
}

/* ---- encoder errors ---- */

static void expect_encode_error(const pcp_msg *m, pcp_wire_error want) {
        uint8_t buf[BUF_MAX];
        size_t len = 12345;

        assert_int_equal(pcp_encode(m, buf, sizeof(buf), &len), want);
        assert_int_equal(len, 12345); /* untouched on failure */
        assert_int_equal(pcp_encoded_len(m), 0);
}

static void test_encode_errors(void **state) {
        static const uint8_t bad_v4[] = {0x00, 0x21, 1, 2, 3, 4};
        uint8_t buf[BUF_MAX];
        size_t len, need;
        pcp_msg m;

        /* buffer too small, for every shape of message */
        for (int k = 0; k < 6; k++) {
                switch (k) {
                case 0:
                        announce_request(&m);
                        break;
                case 1:
                        announce_response(&m);
                        break;
                case 2:
                        map_request(&m);
                        break;
                case 3:
                        map_response(&m);
                        add_filter(&m, "2001:db8::", 32, 0);
                        break;
                case 4:
                        peer_request(&m);
                        break;
                default:
                        peer_response(&m);
                        break;
                }
                need = pcp_encoded_len(&m);
                assert_true(need >= PCP_HEADER_LEN);
                len = 0;
                assert_int_equal(pcp_encode(&m, buf, need - 1, &len), PCP_WIRE_ERR_BUFFER);
                assert_int_equal(pcp_encode(&m, buf, 0, &len), PCP_WIRE_ERR_BUFFER);
                assert_int_equal(len, 0);
                assert_int_equal(pcp_encode(&m, buf, need, &len), PCP_WIRE_OK);
                assert_int_equal(len, need);
        }

        map_request(&m);
        m.opcode = 3;
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);

        map_response(&m);
        m.result = 14;
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);

        map_request(&m);
        m.version = 1;
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);

        announce_response(&m);
        m.version = 0;
        m.result = PCP_RESULT_UNSUPP_VERSION;
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);

        map_response(&m);
        m.version = 3; /* another version is only ever an UNSUPP_VERSION answer */
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);

        map_request(&m);
        m.options = 1u << 7;
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);

        map_request(&m);
        m.n_filters = PCP_MAX_FILTERS + 1;
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);
        map_request(&m);
        m.n_prefix64 = PCP_MAX_PREFIX64 + 1;
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);
        map_request(&m);
        m.n_unknown = PCP_MAX_UNKNOWN_OPTIONS + 1;
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);

        /* known codes belong in their typed fields */
        map_request(&m);
        m.n_unknown = 1;
        m.unknown[0] = (pcp_raw_option){.code = PCP_OPTION_PORT_SET, .len = 0};
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);
        m.unknown[0] = (pcp_raw_option){.code = 200, .len = 4, .data = NULL};
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);

        map_request(&m);
        m.options |= PCP_HAS_DESCRIPTION;
        m.description = NULL;
        m.description_len = 3;
        expect_encode_error(&m, PCP_WIRE_ERR_INVALID);
        m.description = "a\xff";
        m.description_len = 2;
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_VALUE);
        m.description = "a\0b";
        m.description_len = 3;
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_VALUE);
        {
                static char big[PCP_MAX_DESCRIPTION_LEN + 1];
                memset(big, 'a', sizeof(big));
                m.description = big;
                m.description_len = sizeof(big);
                expect_encode_error(&m, PCP_WIRE_ERR_OPTION_LENGTH);
                m.description_len = PCP_MAX_DESCRIPTION_LEN;
                assert_int_equal(pcp_encoded_len(&m), 60 + 4 + PCP_MAX_DESCRIPTION_LEN);
        }

        map_request(&m);
        m.options |= PCP_HAS_PORT_SET;
        m.port_set.size = 0;
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_VALUE);

        /* options in the wrong opcode */
        peer_request(&m);
        m.options |= PCP_HAS_PORT_SET;
        m.port_set.size = 1;
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_OPCODE);
        peer_request(&m);
        m.options |= PCP_HAS_PREFER_FAILURE;
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_OPCODE);
        peer_request(&m);
        add_filter(&m, "2001:db8::", 32, 0);
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_OPCODE);
        announce_request(&m);
        m.options |= PCP_HAS_THIRD_PARTY;
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_OPCODE);
        announce_request(&m);
        m.options |= PCP_HAS_DESCRIPTION;
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_OPCODE);
        peer_response(&m);
        m.n_prefix64 = 1;
        m.prefix64[0] = (pcp_prefix64){.prefix_len = 96};
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_OPCODE);

        /* PREFIX64 field checks */
        map_request(&m);
        m.n_prefix64 = 1;
        m.prefix64[0] = (pcp_prefix64){.prefix_len = 33, .suffix_len = 8};
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_VALUE);
        m.prefix64[0] = (pcp_prefix64){.prefix_len = 72, .suffix_len = 3};
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_VALUE);
        m.prefix64[0] = (pcp_prefix64){.prefix_len = 64, .suffix_len = 3};
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_VALUE);
        m.prefix64[0] = (pcp_prefix64){.prefix_len = 96, .ipv4_prefix_count = 1, .ipv4_prefixes = bad_v4};
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_VALUE); /* count without the list flag */
        m.prefix64[0].has_ipv4_list = true;
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_VALUE); /* /33 */
        m.prefix64[0].ipv4_prefixes = NULL;
        expect_encode_error(&m, PCP_WIRE_ERR_OPTION_VALUE);

        /* too long for one PCP message */
        map_response(&m);
        m.n_unknown = 2;
        {
                static uint8_t junk[600];
                m.unknown[0] = (pcp_raw_option){.code = 200, .len = sizeof(junk), .data = junk};
                m.unknown[1] = (pcp_raw_option){.code = 201, .len = sizeof(junk), .data = junk};
        }
        assert_int_equal(pcp_encoded_len(&m), 0);
        assert_int_equal(pcp_encode(&m, buf, sizeof(buf), &len), PCP_WIRE_ERR_LONG);
        m.unknown[1].len = PCP_MAX_MSG_LEN - 60 - 4 - 600 - 4;
        assert_int_equal(pcp_encoded_len(&m), PCP_MAX_MSG_LEN);
        assert_int_equal(pcp_encode(&m, buf, sizeof(buf), &len), PCP_WIRE_OK);
        assert_int_equal(len, PCP_MAX_MSG_LEN);
}

static void test_encode_unsupp_version(void **state) {
        pcp_msg m;

        /* what a server that speaks only version 1 would send back: the header */
        pcp_msg_init(&m, true, PCP_OPCODE_MAP);
        m.version = 1;
        m.result = PCP_RESULT_UNSUPP_VERSION;
        m.lifetime = 1800;
        m.epoch = 99;
        check_vector(&m, "01 81 00 01 00000708 00000063 " ZERO12);
}

/* ---- captured from a real miniupnpd ---- */

/*
 * Captured 2026-11-24 from miniupnpd 2.3.1 (Debian 12 packages miniupnpd 2.3.1-1 +
 * miniupnpd-nftables 2.3.1-1) in the network-namespace lab: a copy of
 * /work/shared/lab in /tmp/lab, `PCPLAB_RUN_DIR=/tmp/lab/run bash /tmp/lab/pcplab.sh up`
 * (router LAN 192.168.77.1, WAN 198.20.77.1; client 192.168.77.2), then in the client
 * namespace
 *   ip netns exec pcplab-client python3 /tmp/lab/pcp_probe.py --json <args>
 * which prints the request it sends and the response datagram as hex (the args are
 * given above each vector). NAT-PMP was sent raw from a python UDP socket connected to
 * 192.168.77.1:5351 in the client namespace, printing recv() as hex. Nothing left the
 * namespaces; `pcplab.sh down` afterwards.
 */

/* announce */
#define CAP_ANNOUNCE_REQ "020000000000000000000000000000000000ffffc0a84d02"
#define CAP_ANNOUNCE_RSP "028000000000000000000004000000000000000000000000"
/* map --proto tcp --internal-port 4242 --external-port 4242 --lifetime 600
 *     --nonce 0102030405060708090a0b0c */
#define CAP_MAP_REQ                                                                                         \
        "020100000000025800000000000000000000ffffc0a84d020102030405060708090a0b0c06000000"                  \
        "1092109200000000000000000000ffff00000000"
#define CAP_MAP_RSP                                                                                         \
        "0281000000000258000000040000000000000000000000000102030405060708090a0b0c06000000"                  \
        "1092109200000000000000000000ffffc6144d01"
/* the same with --lifetime 0 --nonce ffffffffffffffffffffffff: wrong nonce */
#define CAP_DELETE_BADNONCE_RSP                                                                             \
        "028100020000000000000005000000000000000000000000ffffffffffffffffffffffff06000000"                  \
        "1092000000000000000000000000ffffc6144d01"
/* --lifetime 0 with the right nonce: deleted */
#define CAP_DELETE_REQ                                                                                      \
        "020100000000000000000000000000000000ffffc0a84d020102030405060708090a0b0c06000000"                  \
        "1092000000000000000000000000ffff00000000"
#define CAP_DELETE_RSP                                                                                      \
        "0281000000000000000000050000000000000000000000000102030405060708090a0b0c06000000"                  \
        "1092000000000000000000000000ffffc6144d01"
/* and again: the mapping is gone, NO_RESOURCES with lifetime 30 */
#define CAP_DELETE_AGAIN_RSP                                                                                \
        "028100080000001e000000060000000000000000000000000102030405060708090a0b0c06000000"                  \
        "1092000000000000000000000000ffffc6144d01"
/* --version 3 map --proto tcp --internal-port 4242: answered in version 2 */
#define CAP_V3_REQ                                                                                          \
        "0301000000000e1000000000000000000000ffffc0a84d020102030405060708090a0b0c06000000"                  \
        "1092000000000000000000000000ffff00000000"
#define CAP_V3_RSP                                                                                          \
        "0281000100000000000000060000000000000000000000000102030405060708090a0b0c06000000"                  \
        "0000000000000000000000000000ffff00000000"
/* peer --proto tcp --internal-port 4000 --remote-ip 198.20.77.2 --remote-port 5000
 *      --nonce 2122232425262728292a2b2c */
#define CAP_PEER_REQ                                                                                        \
        "0202000000000e1000000000000000000000ffffc0a84d022122232425262728292a2b2c06000000"                  \
        "0fa0000000000000000000000000ffff000000001388000000000000000000000000ffffc6144d02"
#define CAP_PEER_RSP                                                                                        \
        "0282000000000e10000000060000000000000000000000002122232425262728292a2b2c06000000"                  \
        "0fa00fa000000000000000000000ffffc6144d011388000000000000000000000000ffffc6144d02"
/* map --internal-port 4243 --raw-option 99:00000000: UNSUPP_OPTION, option echoed */
#define CAP_UNSUPP_OPTION_RSP                                                                               \
        "0281000500000000000000070000000000000000000000000102030405060708090a0b0c06000000"                  \
        "1093000000000000000000000000ffff000000006300000400000000"
/* map --internal-port 4244 --third-party 192.168.77.50: refused */
#define CAP_THIRD_PARTY_RSP                                                                                 \
        "0281000500000000000000070000000000000000000000000102030405060708090a0b0c06000000"                  \
        "1094000000000000000000000000ffff000000000100001000000000000000000000ffffc0a84d32"
/* map --internal-port 4245 --filter 198.20.77.2/32:0 */
#define CAP_FILTER_REQ                                                                                      \
        "0201000000000e1000000000000000000000ffffc0a84d020102030405060708090a0b0c06000000"                  \
        "1095000000000000000000000000ffff00000000030000140080000000000000000000000000ffff"                  \
        "c6144d02"
#define CAP_FILTER_RSP                                                                                      \
        "0281000000000e10000000070000000000000000000000000102030405060708090a0b0c06000000"                  \
        "1095109500000000000000000000ffffc6144d01030000140080000000000000000000000000ffff"                  \
        "c6144d02"
/* --opcode 5 announce: UNSUPP_OPCODE */
#define CAP_OPCODE5_RSP "028500040000000000000008000000000000000000000000"
/* map --proto udp --internal-port 5353 --lifetime 600 --prefer-failure
 *     --raw-option 128:706370642d74657374 ("pcpd-test"): MALFORMED_OPTION, both echoed */
#define CAP_MALFORMED_OPTION_RSP                                                                            \
        "0281000600000000000000050000000000000000000000001112131415161718191a1b1c11000000"                  \
        "14e9000000000000000000000000ffff000000000200000080000009706370642d74657374000000"
/* map --proto udp --internal-port 5354 --raw-option 128:70637064 ("pcpd") */
#define CAP_DESCRIPTION_RSP                                                                                 \
        "02810000000002580000000e0000000000000000000000001112131415161718191a1b1c11000000"                  \
        "14ea14ea00000000000000000000ffffc6144d018000000470637064"
/* map --proto udp --internal-port 5355 --raw-option 200:deadbeef: ignored and echoed */
#define CAP_OPTIONAL_RSP                                                                                    \
        "02810000000002580000000f0000000000000000000000001112131415161718191a1b1c11000000"                  \
        "14eb14eb00000000000000000000ffffc6144d01c8000004deadbeef"
/* map --internal-port 5356 --external-port 5356 --external-ip 198.20.77.9 --prefer-failure */
#define CAP_CANNOT_PROVIDE_RSP                                                                              \
        "0281000b000000000000000f0000000000000000000000001112131415161718191a1b1c06000000"                  \
        "14ec14ec00000000000000000000ffffc6144d0902000000"
/* map --internal-port 5357 --client-ip 192.168.77.9 */
#define CAP_ADDRESS_MISMATCH_RSP                                                                            \
        "0281000c000000000000000f0000000000000000000000001112131415161718191a1b1c06000000"                  \
        "14ed000000000000000000000000ffff00000000"
/* NAT-PMP, request -> response */
#define CAP_NATPMP_ADDR_REQ "0000"
#define CAP_NATPMP_ADDR_RSP "0080000000000010c6144d01"
#define CAP_NATPMP_UDP_REQ "000100000d050d050000012c"
#define CAP_NATPMP_UDP_RSP "00810000000000100d050d050000012c"
#define CAP_NATPMP_TCP_REQ "000200000d060d0600000e10"
#define CAP_NATPMP_TCP_RSP "00820000000000100d060d0600000e10"
#define CAP_NATPMP_UDP_DELETE_REQ "000100000d05000000000000"
#define CAP_NATPMP_UDP_DELETE_RSP "00810000000000150d05000000000000"
#define CAP_NATPMP_OPCODE5_REQ "0005"
#define CAP_NATPMP_OPCODE5_RSP "0085000500000015"

static void decode_capture(const char *hex, bool response, pcp_msg *m, uint8_t *buf) {
        size_t n = unhex(hex, buf, BUF_MAX);

        assert_int_equal(pcp_decode(buf, n, response, m), PCP_WIRE_OK);
        check_round_trip(buf, n, response, true);
}

static void test_captured_miniupnpd(void **state) {
        uint8_t buf[BUF_MAX];
        uint8_t nonce1[PCP_NONCE_LEN], nonce_ff[PCP_NONCE_LEN];
        struct in6_addr wan = addr("198.20.77.1"), client = addr("192.168.77.2");
        size_t n;
        pcp_msg m, q;

        nonce_fill(nonce1, 0x01);
        memset(nonce_ff, 0xff, sizeof(nonce_ff));

        decode_capture(CAP_ANNOUNCE_REQ, false, &m, buf);
        assert_int_equal(m.opcode, PCP_OPCODE_ANNOUNCE);
        assert_true(pcp_addr_eq(&m.client_addr, &client));
        decode_capture(CAP_ANNOUNCE_RSP, true, &m, buf);
        assert_int_equal(m.opcode, PCP_OPCODE_ANNOUNCE);
        assert_int_equal(m.result, PCP_RESULT_SUCCESS);
        assert_int_equal(m.lifetime, 0);
        assert_int_equal(m.epoch, 4);

        /* our encoder writes exactly the request pcp_probe.py sent */
        pcp_msg_init(&q, false, PCP_OPCODE_MAP);
        q.lifetime = 600;
        q.client_addr = client;
        memcpy(q.nonce, nonce1, PCP_NONCE_LEN);
        q.protocol = 6;
        q.internal_port = 4242;
        q.external_port = 4242;
        q.external_addr = addr("0.0.0.0");
        check_vector(&q, CAP_MAP_REQ);

        decode_capture(CAP_MAP_RSP, true, &m, buf);
        assert_int_equal(m.opcode, PCP_OPCODE_MAP);
        assert_int_equal(m.result, PCP_RESULT_SUCCESS);
        assert_int_equal(m.lifetime, 600);
        assert_int_equal(m.epoch, 4);
        assert_memory_equal(m.nonce, nonce1, PCP_NONCE_LEN);
        assert_int_equal(m.protocol, 6);
        assert_int_equal(m.internal_port, 4242);
        assert_int_equal(m.external_port, 4242);
        assert_true(pcp_addr_eq(&m.external_addr, &wan));
        assert_int_equal(m.options, 0);

        decode_capture(CAP_DELETE_BADNONCE_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_NOT_AUTHORIZED);
        assert_int_equal(pcp_result_classify(m.result), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(m.lifetime, 0); /* miniupnpd: 0 for every long error */
        assert_memory_equal(m.nonce, nonce_ff, PCP_NONCE_LEN);

        q.lifetime = 0;
        q.external_port = 0;
        check_vector(&q, CAP_DELETE_REQ);
        decode_capture(CAP_DELETE_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_SUCCESS);
        assert_int_equal(m.lifetime, 0);
        assert_int_equal(m.epoch, 5);
        assert_int_equal(m.external_port, 0);

        decode_capture(CAP_DELETE_AGAIN_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_NO_RESOURCES);
        assert_int_equal(pcp_result_classify(m.result), PCP_RESULT_CLASS_SHORT_ERROR);
        assert_int_equal(m.lifetime, 30);

        /* a version 3 request is refused in version 2, the body copied back */
        n = unhex(CAP_V3_REQ, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, false, &m), PCP_WIRE_ERR_VERSION);
        assert_int_equal(m.version, 3);
        decode_capture(CAP_V3_RSP, true, &m, buf);
        assert_int_equal(m.version, 2);
        assert_int_equal(m.result, PCP_RESULT_UNSUPP_VERSION);
        assert_int_equal(m.internal_port, 0);

        decode_capture(CAP_PEER_REQ, false, &m, buf);
        assert_int_equal(m.opcode, PCP_OPCODE_PEER);
        assert_int_equal(m.remote_port, 5000);
        decode_capture(CAP_PEER_RSP, true, &m, buf);
        assert_int_equal(m.opcode, PCP_OPCODE_PEER);
        assert_int_equal(m.result, PCP_RESULT_SUCCESS);
        assert_int_equal(m.lifetime, 3600);
        assert_int_equal(m.internal_port, 4000);
        assert_int_equal(m.external_port, 4000);
        assert_true(pcp_addr_eq(&m.external_addr, &wan));
        assert_int_equal(m.remote_port, 5000);
        assert_true(addr_is(&m.remote_addr, "198.20.77.2"));

        /* an unknown mandatory option echoed in an error response is kept, not refused */
        decode_capture(CAP_UNSUPP_OPTION_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_UNSUPP_OPTION);
        assert_int_equal(m.n_unknown, 1);
        assert_int_equal(m.unknown[0].code, 99);
        assert_int_equal(m.unknown[0].len, 4);

        decode_capture(CAP_THIRD_PARTY_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_UNSUPP_OPTION);
        assert_int_equal(m.options, PCP_HAS_THIRD_PARTY);
        assert_true(addr_is(&m.third_party, "192.168.77.50"));

        decode_capture(CAP_FILTER_REQ, false, &m, buf);
        assert_int_equal(m.n_filters, 1);
        decode_capture(CAP_FILTER_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_SUCCESS);
        assert_int_equal(m.n_filters, 1);
        assert_int_equal(m.filters[0].prefix_len, 128);
        assert_int_equal(m.filters[0].remote_port, 0);
        assert_true(addr_is(&m.filters[0].remote_addr, "198.20.77.2"));

        n = unhex(CAP_OPCODE5_RSP, buf, sizeof(buf));
        assert_int_equal(pcp_decode(buf, n, true, &m), PCP_WIRE_ERR_OPCODE);
        assert_int_equal(m.opcode, 5);
        assert_int_equal(m.result, PCP_RESULT_UNSUPP_OPCODE);
        assert_int_equal(m.epoch, 8);

        decode_capture(CAP_MALFORMED_OPTION_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_MALFORMED_OPTION);
        assert_int_equal(m.protocol, 17);
        assert_int_equal(m.options, PCP_HAS_PREFER_FAILURE | PCP_HAS_DESCRIPTION);
        assert_int_equal(m.description_len, 9);
        assert_memory_equal(m.description, "pcpd-test", 9);

        decode_capture(CAP_DESCRIPTION_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_SUCCESS);
        assert_int_equal(m.options, PCP_HAS_DESCRIPTION);
        assert_int_equal(m.description_len, 4);
        assert_memory_equal(m.description, "pcpd", 4);

        decode_capture(CAP_OPTIONAL_RSP, true, &m, buf);
        assert_int_equal(m.n_unknown, 1);
        assert_int_equal(m.unknown[0].code, 200);
        assert_memory_equal(m.unknown[0].data, "\xde\xad\xbe\xef", 4);

        decode_capture(CAP_CANNOT_PROVIDE_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_CANNOT_PROVIDE_EXTERNAL);
        assert_int_equal(m.options, PCP_HAS_PREFER_FAILURE);
        assert_true(addr_is(&m.external_addr, "198.20.77.9"));

        decode_capture(CAP_ADDRESS_MISMATCH_RSP, true, &m, buf);
        assert_int_equal(m.result, PCP_RESULT_ADDRESS_MISMATCH);
        assert_int_equal(pcp_result_classify(m.result), PCP_RESULT_CLASS_LONG_ERROR);
}

static void natpmp_capture(const char *req_hex, const char *rsp_hex, natpmp_msg *req, natpmp_msg *rsp) {
        uint8_t buf[64], out[64];
        size_t n, len = 0;
        natpmp_msg again;

        n = unhex(req_hex, buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, false, req), PCP_WIRE_OK);
        assert_int_equal(natpmp_encode(req, out, sizeof(out), &len), PCP_WIRE_OK);
        assert_int_equal(len, n);
        assert_memory_equal(out, buf, n);

        n = unhex(rsp_hex, buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, rsp), PCP_WIRE_OK);
        assert_int_equal(natpmp_encode(rsp, out, sizeof(out), &len), PCP_WIRE_OK);
        assert_int_equal(len, n);
        assert_memory_equal(out, buf, n);
        assert_int_equal(natpmp_decode(out, len, true, &again), PCP_WIRE_OK);
        assert_true(natpmp_msg_equal(rsp, &again));
}

static void test_captured_miniupnpd_natpmp(void **state) {
        natpmp_msg req, rsp;

        natpmp_capture(CAP_NATPMP_ADDR_REQ, CAP_NATPMP_ADDR_RSP, &req, &rsp);
        assert_int_equal(req.opcode, NATPMP_OPCODE_EXTERNAL_ADDRESS);
        assert_int_equal(rsp.result, NATPMP_RESULT_SUCCESS);
        assert_int_equal(rsp.epoch, 16);
        assert_int_equal(ntohl(rsp.external_addr.s_addr), 0xc6144d01); /* 198.20.77.1 */

        natpmp_capture(CAP_NATPMP_UDP_REQ, CAP_NATPMP_UDP_RSP, &req, &rsp);
        assert_int_equal(req.opcode, NATPMP_OPCODE_MAP_UDP);
        assert_int_equal(req.internal_port, 3333);
        assert_int_equal(req.lifetime, 300);
        assert_int_equal(rsp.opcode, NATPMP_OPCODE_MAP_UDP);
        assert_int_equal(rsp.internal_port, 3333);
        assert_int_equal(rsp.external_port, 3333);
        assert_int_equal(rsp.lifetime, 300);

        natpmp_capture(CAP_NATPMP_TCP_REQ, CAP_NATPMP_TCP_RSP, &req, &rsp);
        assert_int_equal(rsp.opcode, NATPMP_OPCODE_MAP_TCP);
        assert_int_equal(rsp.external_port, 3334);
        assert_int_equal(rsp.lifetime, 3600);

        natpmp_capture(CAP_NATPMP_UDP_DELETE_REQ, CAP_NATPMP_UDP_DELETE_RSP, &req, &rsp);
        assert_int_equal(req.lifetime, 0);
        assert_int_equal(rsp.result, NATPMP_RESULT_SUCCESS);
        assert_int_equal(rsp.external_port, 0);
        assert_int_equal(rsp.lifetime, 0);
        assert_int_equal(rsp.epoch, 21);

        /* an unknown opcode: the 8-octet short error form. Our request decoder refuses
         * opcode 5, so only the response is checked here. */
        {
                uint8_t buf[16], out[16];
                size_t n = unhex(CAP_NATPMP_OPCODE5_RSP, buf, sizeof(buf)), len = 0;

                assert_int_equal(natpmp_decode(buf, n, true, &rsp), PCP_WIRE_OK);
                assert_int_equal(rsp.opcode, 5);
                assert_int_equal(rsp.result, NATPMP_RESULT_UNSUPP_OPCODE);
                assert_int_equal(rsp.epoch, 21);
                assert_int_equal(natpmp_encode(&rsp, out, sizeof(out), &len), PCP_WIRE_OK);
                assert_int_equal(len, 8);
                assert_memory_equal(out, buf, 8);
                n = unhex(CAP_NATPMP_OPCODE5_REQ, buf, sizeof(buf));
                assert_int_equal(natpmp_decode(buf, n, false, &req), PCP_WIRE_ERR_OPCODE);
        }
}

/* ---- NAT-PMP ---- */

static void natpmp_vector(const natpmp_msg *m, const char *hex) {
        uint8_t want[64], got[64];
        size_t n = unhex(hex, want, sizeof(want)), len = 0;
        natpmp_msg d;

        assert_int_equal(natpmp_encode(m, got, sizeof(got), &len), PCP_WIRE_OK);
        assert_int_equal(len, n);
        assert_memory_equal(got, want, n);
        assert_int_equal(natpmp_encode(m, got, n, &len), PCP_WIRE_OK);
        assert_int_equal(natpmp_encode(m, got, n - 1, &len), PCP_WIRE_ERR_BUFFER);
        assert_int_equal(natpmp_decode(want, n, m->response, &d), PCP_WIRE_OK);
        assert_true(natpmp_msg_equal(&d, m));
        assert_true(natpmp_msg_equal(m, &d));
}

static void test_natpmp_vectors(void **state) {
        natpmp_msg m;

        m = (natpmp_msg){.opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS};
        natpmp_vector(&m, "00 00");

        m = (natpmp_msg){.response = true, .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS, .epoch = 0x01020304};
        m.external_addr.s_addr = htonl(0xcb007107);
        natpmp_vector(&m, "00 80 0000 01020304 cb007107");

        m = (natpmp_msg){.opcode = NATPMP_OPCODE_MAP_UDP,
                         .internal_port = 5353,
                         .external_port = 5354,
                         .lifetime = 7200};
        natpmp_vector(&m, "00 01 0000 14e9 14ea 00001c20");
        m.opcode = NATPMP_OPCODE_MAP_TCP;
        natpmp_vector(&m, "00 02 0000 14e9 14ea 00001c20");

        m = (natpmp_msg){.response = true,
                         .opcode = NATPMP_OPCODE_MAP_UDP,
                         .epoch = 77,
                         .internal_port = 5353,
                         .external_port = 40000,
                         .lifetime = 3600};
        natpmp_vector(&m, "00 81 0000 0000004d 14e9 9c40 00000e10");
        m.opcode = NATPMP_OPCODE_MAP_TCP;
        natpmp_vector(&m, "00 82 0000 0000004d 14e9 9c40 00000e10");
        /* an error in the full form keeps the ports */
        m.result = NATPMP_RESULT_OUT_OF_RESOURCES;
        m.external_port = 0;
        m.lifetime = 0;
        natpmp_vector(&m, "00 82 0004 0000004d 14e9 0000 00000000");

        /* the short error form */
        m = (natpmp_msg){.response = true, .opcode = 9, .result = NATPMP_RESULT_UNSUPP_OPCODE, .epoch = 5};
        natpmp_vector(&m, "00 89 0005 00000005");
        /* what a NAT-PMP-only server says to a PCP request (RFC 6886 erratum 3618) */
        m = (natpmp_msg){
                .response = true, .opcode = 0, .result = NATPMP_RESULT_UNSUPP_VERSION, .epoch = 1234};
        natpmp_vector(&m, "00 80 0001 000004d2");
}

static void test_natpmp_decode_variants(void **state) {
        uint8_t buf[64];
        size_t n;
        natpmp_msg m;

        /* the opcode-0, no-R-bit spelling of UNSUPP_VERSION is accepted as a response */
        n = unhex("00 00 0001 000004d2", buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_true(m.response);
        assert_int_equal(m.opcode, 0);
        assert_int_equal(m.result, NATPMP_RESULT_UNSUPP_VERSION);
        assert_int_equal(m.epoch, 1234);
        /* but not by a server, and not with another result */
        assert_int_equal(natpmp_decode(buf, n, false, &m), PCP_WIRE_ERR_LONG);
        n = unhex("00 00 0002 000004d2", buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, &m), PCP_WIRE_ERR_DIRECTION);

        /* short errors to map requests */
        n = unhex("00 81 0003 00000009", buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_int_equal(m.opcode, NATPMP_OPCODE_MAP_UDP);
        assert_int_equal(m.result, NATPMP_RESULT_NETWORK_FAILURE);
        assert_int_equal(m.epoch, 9);
        assert_int_equal(m.internal_port, 0);
        n = unhex("00 80 0002 00000009", buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_int_equal(m.result, NATPMP_RESULT_NOT_AUTHORIZED);

        /* RFC 6886 §3.2: the address of an error response is ignored on reception... */
        n = unhex("00 80 0003 00000009 cb007107", buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_int_equal(m.result, NATPMP_RESULT_NETWORK_FAILURE);
        assert_int_equal(m.external_addr.s_addr, 0);
        n = unhex("00 80 0001 00000009 cb007107", buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_int_equal(m.result, NATPMP_RESULT_UNSUPP_VERSION);
        assert_int_equal(m.external_addr.s_addr, 0);
        /* ...and zero on transmission */
        m = (natpmp_msg){.response = true, .opcode = 0, .result = NATPMP_RESULT_NOT_AUTHORIZED, .epoch = 9};
        m.external_addr.s_addr = htonl(0xcb007107);
        {
                uint8_t out[16], want[16];
                size_t len = 0;

                assert_int_equal(natpmp_encode(&m, out, sizeof(out), &len), PCP_WIRE_OK);
                assert_int_equal(len, 12);
                assert_memory_equal(out, want, unhex("00 80 0002 00000009 00000000", want, sizeof(want)));
        }

        /* a full-length UNSUPP_VERSION / UNSUPP_OPCODE answer to a map request: header only */
        n = unhex("00 81 0001 00000009 14e9 14ea 00001c20", buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_int_equal(m.result, NATPMP_RESULT_UNSUPP_VERSION);
        assert_int_equal(m.internal_port, 0);
        assert_int_equal(m.lifetime, 0);
        n = unhex("00 82 0005 00000009 14e9 14ea 00001c20", buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_int_equal(m.internal_port, 0);
        /* other errors keep the ports (they say which mapping failed) */
        n = unhex("00 82 0002 00000009 14e9 14ea 00001c20", buf, sizeof(buf));
        assert_int_equal(natpmp_decode(buf, n, true, &m), PCP_WIRE_OK);
        assert_int_equal(m.internal_port, 5353);
        assert_int_equal(m.external_port, 5354);
        assert_int_equal(m.lifetime, 7200);
}

static void test_natpmp_malformed(void **state) {
        static const struct {
                const char *name;
                const char *hex;
                bool response;
                pcp_wire_error error;
        } cases[] = {
                {"empty", "", false, PCP_WIRE_ERR_SHORT},
                {"1 octet", "00", true, PCP_WIRE_ERR_SHORT},
                {"PCP request", "02 00", false, PCP_WIRE_ERR_NOT_NATPMP},
                {"PCP response", "02 80 00 00 00000000 0000002a " ZERO12, true, PCP_WIRE_ERR_NOT_NATPMP},
                {"version 1", "01 80 0001 00000001", true, PCP_WIRE_ERR_NOT_NATPMP},
                {"response as request", "00 80", false, PCP_WIRE_ERR_DIRECTION},
                {"request as response", "00 01 0000 14e9 14ea 00001c20", true, PCP_WIRE_ERR_DIRECTION},
                {"address request 4", "00 00 0000", false, PCP_WIRE_ERR_LONG},
                {"map request 11", "00 01 0000 14e9 14ea 00001c", false, PCP_WIRE_ERR_SHORT},
                {"map request 13", "00 02 0000 14e9 14ea 00001c20 00", false, PCP_WIRE_ERR_LONG},
                {"map request 2", "00 01", false, PCP_WIRE_ERR_SHORT},
                {"opcode 3 request", "00 03", false, PCP_WIRE_ERR_OPCODE},
                {"opcode 127 request", "00 7f 0000 14e9 14ea 00001c20", false, PCP_WIRE_ERR_OPCODE},
                {"response 7", "00 80 0000 000000", true, PCP_WIRE_ERR_SHORT},
                {"result 6", "00 80 0006 00000001 cb007107", true, PCP_WIRE_ERR_RESULT},
                {"result 256", "00 80 0100 00000001", true, PCP_WIRE_ERR_RESULT},
                {"address success 8", "00 80 0000 00000001", true, PCP_WIRE_ERR_SHORT},
                {"address response 11", "00 80 0000 00000001 cb0071", true, PCP_WIRE_ERR_SHORT},
                {"address response 13", "00 80 0000 00000001 cb007107 00", true, PCP_WIRE_ERR_LONG},
                {"map success 8", "00 81 0000 00000001", true, PCP_WIRE_ERR_SHORT},
                {"map response 15", "00 82 0000 00000001 14e9 9c40 00000e", true, PCP_WIRE_ERR_SHORT},
                {"map response 17", "00 82 0000 00000001 14e9 9c40 00000e10 00", true, PCP_WIRE_ERR_LONG},
                {"unknown opcode success", "00 85 0000 00000001", true, PCP_WIRE_ERR_OPCODE},
                {"unknown opcode long", "00 85 0005 00000001 00000000", true, PCP_WIRE_ERR_OPCODE},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t buf[64];
                size_t n = unhex(cases[i].hex, buf, sizeof(buf));
                natpmp_msg m;
                pcp_wire_error r = natpmp_decode(buf, n, cases[i].response, &m);

                if (r != cases[i].error)
                        fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name, pcp_wire_error_to_string(r),
                                 pcp_wire_error_to_string(cases[i].error));
        }
}

static void test_natpmp_encode_errors(void **state) {
        uint8_t buf[64];
        size_t len = 0;
        natpmp_msg m;

        m = (natpmp_msg){.opcode = 3};
        assert_int_equal(natpmp_encode(&m, buf, sizeof(buf), &len), PCP_WIRE_ERR_INVALID);
        m = (natpmp_msg){.opcode = 0x81};
        assert_int_equal(natpmp_encode(&m, buf, sizeof(buf), &len), PCP_WIRE_ERR_INVALID);
        m = (natpmp_msg){.response = true, .opcode = 1, .result = 6};
        assert_int_equal(natpmp_encode(&m, buf, sizeof(buf), &len), PCP_WIRE_ERR_INVALID);
        m = (natpmp_msg){.response = true, .opcode = 5, .result = 0};
        assert_int_equal(natpmp_encode(&m, buf, sizeof(buf), &len), PCP_WIRE_ERR_INVALID);
        m = (natpmp_msg){.opcode = 0};
        assert_int_equal(natpmp_encode(&m, buf, 1, &len), PCP_WIRE_ERR_BUFFER);
        m = (natpmp_msg){.opcode = 1};
        assert_int_equal(natpmp_encode(&m, buf, 11, &len), PCP_WIRE_ERR_BUFFER);
        m = (natpmp_msg){.response = true, .opcode = 2};
        assert_int_equal(natpmp_encode(&m, buf, 15, &len), PCP_WIRE_ERR_BUFFER);
        m = (natpmp_msg){.response = true, .opcode = 0, .result = NATPMP_RESULT_UNSUPP_VERSION};
        assert_int_equal(natpmp_encode(&m, buf, 7, &len), PCP_WIRE_ERR_BUFFER);
        assert_int_equal(natpmp_encode(&m, buf, 8, &len), PCP_WIRE_OK);
        assert_int_equal(len, 8);
}

/* ---- helpers ---- */

static void test_result_names(void **state) {
        static const char *const names[] = {
                "SUCCESS",          "UNSUPP_VERSION",         "NOT_AUTHORIZED",   "MALFORMED_REQUEST",
                "UNSUPP_OPCODE",    "UNSUPP_OPTION",          "MALFORMED_OPTION", "NETWORK_FAILURE",
                "NO_RESOURCES",     "UNSUPP_PROTOCOL",        "USER_EX_QUOTA",    "CANNOT_PROVIDE_EXTERNAL",
                "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
        };

        assert_int_equal(ELEMENTSOF(names), _PCP_RESULT_MAX);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                assert_string_equal(pcp_result_to_string((uint8_t) i), names[i]);
                assert_int_equal(pcp_result_from_string(names[i]), (int) i);
        }
        assert_null(pcp_result_to_string(14));
        assert_null(pcp_result_to_string(255));
        assert_int_equal(pcp_result_from_string("success"), -1);
        assert_int_equal(pcp_result_from_string(""), -1);
        assert_int_equal(pcp_result_from_string("NO_RESOURCE"), -1);
        assert_int_equal(pcp_result_from_string(NULL), -1);
}

static void test_result_classify(void **state) {
        /* RFC 6887 §7.4: NETWORK_FAILURE, NO_RESOURCES and USER_EX_QUOTA are the short
         * lifetime errors; CANNOT_PROVIDE_EXTERNAL "depends on the reason" (counted as
         * short: the server's lifetime decides); all the others are long. */
        assert_int_equal(pcp_result_classify(PCP_RESULT_SUCCESS), PCP_RESULT_CLASS_SUCCESS);
        assert_int_equal(pcp_result_classify(PCP_RESULT_NETWORK_FAILURE), PCP_RESULT_CLASS_SHORT_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_NO_RESOURCES), PCP_RESULT_CLASS_SHORT_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_USER_EX_QUOTA), PCP_RESULT_CLASS_SHORT_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_CANNOT_PROVIDE_EXTERNAL),
                         PCP_RESULT_CLASS_SHORT_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_UNSUPP_VERSION), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_NOT_AUTHORIZED), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_MALFORMED_REQUEST), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_UNSUPP_OPCODE), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_UNSUPP_OPTION), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_MALFORMED_OPTION), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_UNSUPP_PROTOCOL), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_ADDRESS_MISMATCH), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(PCP_RESULT_EXCESSIVE_REMOTE_PEERS),
                         PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(14), PCP_RESULT_CLASS_LONG_ERROR);
        assert_int_equal(pcp_result_classify(255), PCP_RESULT_CLASS_LONG_ERROR);
}

static void test_natpmp_result_helpers(void **state) {
        static const char *const names[] = {
                "SUCCESS",         "UNSUPP_VERSION",   "NOT_AUTHORIZED",
                "NETWORK_FAILURE", "OUT_OF_RESOURCES", "UNSUPP_OPCODE",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                assert_string_equal(natpmp_result_to_string((uint16_t) i), names[i]);
        assert_null(natpmp_result_to_string(6));
        assert_null(natpmp_result_to_string(0xffff));
        assert_int_equal(natpmp_result_to_pcp(NATPMP_RESULT_SUCCESS), PCP_RESULT_SUCCESS);
        assert_int_equal(natpmp_result_to_pcp(NATPMP_RESULT_UNSUPP_VERSION), PCP_RESULT_UNSUPP_VERSION);
        assert_int_equal(natpmp_result_to_pcp(NATPMP_RESULT_NOT_AUTHORIZED), PCP_RESULT_NOT_AUTHORIZED);
        assert_int_equal(natpmp_result_to_pcp(NATPMP_RESULT_NETWORK_FAILURE), PCP_RESULT_NETWORK_FAILURE);
        assert_int_equal(natpmp_result_to_pcp(NATPMP_RESULT_OUT_OF_RESOURCES), PCP_RESULT_NO_RESOURCES);
        assert_int_equal(natpmp_result_to_pcp(NATPMP_RESULT_UNSUPP_OPCODE), PCP_RESULT_UNSUPP_OPCODE);
        assert_int_equal(natpmp_result_to_pcp(6), PCP_RESULT_MALFORMED_REQUEST);
}

static void test_names(void **state) {
        assert_string_equal(pcp_opcode_to_string(PCP_OPCODE_ANNOUNCE), "announce");
        assert_string_equal(pcp_opcode_to_string(PCP_OPCODE_MAP), "map");
        assert_string_equal(pcp_opcode_to_string(PCP_OPCODE_PEER), "peer");
        assert_null(pcp_opcode_to_string(3));
        assert_null(pcp_opcode_to_string(0x81));

        assert_string_equal(pcp_option_to_string(1), "THIRD_PARTY");
        assert_string_equal(pcp_option_to_string(2), "PREFER_FAILURE");
        assert_string_equal(pcp_option_to_string(3), "FILTER");
        assert_string_equal(pcp_option_to_string(128), "DESCRIPTION");
        assert_string_equal(pcp_option_to_string(129), "PREFIX64");
        assert_string_equal(pcp_option_to_string(130), "PORT_SET");
        assert_null(pcp_option_to_string(0));
        assert_null(pcp_option_to_string(4));
        assert_null(pcp_option_to_string(131));

        /* every error has its own message */
        for (int i = 0; i < _PCP_WIRE_ERR_MAX; i++) {
                const char *s = pcp_wire_error_to_string((pcp_wire_error) i);
                assert_non_null(s);
                assert_true(strlen(s) > 0);
                for (int j = 0; j < i; j++)
                        assert_string_not_equal(s, pcp_wire_error_to_string((pcp_wire_error) j));
        }
        assert_string_equal(pcp_wire_error_to_string(_PCP_WIRE_ERR_MAX), "unknown error");
        assert_string_equal(pcp_wire_error_to_string((pcp_wire_error) -1), "unknown error");
}

static void test_protocol_names(void **state) {
        static const struct {
                const char *name;
                int number;
        } known[] = {
                {"all", 0},   {"icmp", 1},    {"tcp", 6},    {"udp", 17},
                {"dccp", 33}, {"icmpv6", 58}, {"sctp", 132}, {"udplite", 136},
        };
        static const char *const bad[] = {
                "", "256", "-1", "+6", " 6", "6 ", "6x", "0x6", "tcpp", "t", "99999999999999999999",
        };

        for (size_t i = 0; i < ELEMENTSOF(known); i++) {
                assert_int_equal(pcp_protocol_from_string(known[i].name), known[i].number);
                assert_string_equal(pcp_protocol_to_string((uint8_t) known[i].number), known[i].name);
        }
        assert_int_equal(pcp_protocol_from_string("TCP"), 6);
        assert_int_equal(pcp_protocol_from_string("Udp"), 17);
        assert_int_equal(pcp_protocol_from_string("6"), 6);
        assert_int_equal(pcp_protocol_from_string("0"), 0);
        assert_int_equal(pcp_protocol_from_string("255"), 255);
        assert_int_equal(pcp_protocol_from_string("017"), 17);
        /* at most PCP_PROTOCOL_STRING_MAX octets, leading zeros or not */
        assert_int_equal(pcp_protocol_from_string("0000000000000017"), 17);
        assert_int_equal(pcp_protocol_from_string("00000000000000017"), -1);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (pcp_protocol_from_string(bad[i]) != -1)
                        fail_msg("protocol \"%s\" accepted", bad[i]);
        assert_int_equal(pcp_protocol_from_string(NULL), -1);
        assert_null(pcp_protocol_to_string(2));
        assert_null(pcp_protocol_to_string(255));
        /* every number a name gives back maps to that name again */
        for (int p = 0; p < 256; p++) {
                const char *s = pcp_protocol_to_string((uint8_t) p);
                if (s != NULL)
                        assert_int_equal(pcp_protocol_from_string(s), p);
        }
}

static void test_addresses(void **state) {
        char buf[PCP_ADDR_STRLEN];
        struct in6_addr a;
        struct in_addr v4;
        static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
        static const char *const bad[] = {
                "",
                "300.1.1.1",
                "1.2.3",
                "1.2.3.4.5",
                "192.0.2.1/24",
                "2001:db8::1::2",
                "fe80::1%eth0",
                "::ffff:1.2.3",
                "example.org",
                " 192.0.2.1",
        };

        /* IPv4 text -> IPv4-mapped */
        assert_true(pcp_addr_from_string("192.0.2.1", &a));
        assert_memory_equal(a.s6_addr, mapped, 16);
        assert_true(pcp_addr_is_ipv4(&a));
        assert_false(pcp_addr_is_unspecified(&a));
        assert_string_equal(pcp_addr_to_string(&a, buf), "192.0.2.1");
        assert_true(pcp_addr_to_ipv4(&a, &v4));
        assert_int_equal(ntohl(v4.s_addr), 0xc0000201);

        /* the mapped spelling is the same address, printed as a dotted quad */
        assert_true(pcp_addr_from_string("::ffff:192.0.2.1", &a));
        assert_memory_equal(a.s6_addr, mapped, 16);
        assert_string_equal(pcp_addr_to_string(&a, buf), "192.0.2.1");

        /* round trip through pcp_addr_from_ipv4 */
        v4.s_addr = htonl(0xcb007107);
        pcp_addr_from_ipv4(&v4, &a);
        assert_true(pcp_addr_is_ipv4(&a));
        assert_string_equal(pcp_addr_to_string(&a, buf), "203.0.113.7");

        /* IPv6 */
        assert_true(pcp_addr_from_string("2001:db8::1", &a));
        assert_false(pcp_addr_is_ipv4(&a));
        assert_false(pcp_addr_to_ipv4(&a, &v4));
        assert_string_equal(pcp_addr_to_string(&a, buf), "2001:db8::1");
        assert_true(pcp_addr_from_string("2001:DB8:0:0:0:0:0:1", &a));
        assert_string_equal(pcp_addr_to_string(&a, buf), "2001:db8::1");
        /* IPv4-compatible (deprecated ::a.b.c.d) is not IPv4-mapped */
        assert_true(pcp_addr_from_string("::192.0.2.1", &a));
        assert_false(pcp_addr_is_ipv4(&a));
        /* a longest-form address fills the buffer without overflow */
        assert_true(pcp_addr_from_string("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &a));
        assert_string_equal(pcp_addr_to_string(&a, buf), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

        /* unspecified, both families */
        assert_true(pcp_addr_from_string("::", &a));
        assert_true(pcp_addr_is_unspecified(&a));
        assert_false(pcp_addr_is_ipv4(&a));
        assert_string_equal(pcp_addr_to_string(&a, buf), "::");
        assert_true(pcp_addr_from_string("0.0.0.0", &a));
        assert_true(pcp_addr_is_unspecified(&a));
        assert_true(pcp_addr_is_ipv4(&a));
        assert_string_equal(pcp_addr_to_string(&a, buf), "0.0.0.0");
        assert_true(pcp_addr_from_string("::1", &a));
        assert_false(pcp_addr_is_unspecified(&a));
        assert_true(pcp_addr_from_string("::ffff:0.0.0.1", &a));
        assert_false(pcp_addr_is_unspecified(&a));

        /* garbage, leaving the output alone */
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                memset(&a, 0xaa, sizeof(a));
                if (pcp_addr_from_string(bad[i], &a))
                        fail_msg("address \"%s\" accepted", bad[i]);
                assert_int_equal(a.s6_addr[0], 0xaa);
        }
        assert_false(pcp_addr_from_string(NULL, &a));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_announce_vectors),
                cmocka_unit_test(test_map_vectors),
                cmocka_unit_test(test_peer_vectors),
                cmocka_unit_test(test_option_third_party),
                cmocka_unit_test(test_option_prefer_failure),
                cmocka_unit_test(test_option_filter),
                cmocka_unit_test(test_option_description),
                cmocka_unit_test(test_option_prefix64),
                cmocka_unit_test(test_option_port_set),
                cmocka_unit_test(test_option_unknown),
                cmocka_unit_test(test_all_options),
                cmocka_unit_test(test_round_trips),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_header_reported_on_error),
                cmocka_unit_test(test_long_message),
                cmocka_unit_test(test_description_length),
                cmocka_unit_test(test_description_utf8_positions),
                cmocka_unit_test(test_option_limits),
                cmocka_unit_test(test_filter_prefix_values),
                cmocka_unit_test(test_encode_errors),
                cmocka_unit_test(test_encode_unsupp_version),
                cmocka_unit_test(test_captured_miniupnpd),
                cmocka_unit_test(test_captured_miniupnpd_natpmp),
                cmocka_unit_test(test_natpmp_vectors),
                cmocka_unit_test(test_natpmp_decode_variants),
                cmocka_unit_test(test_natpmp_malformed),
                cmocka_unit_test(test_natpmp_encode_errors),
                cmocka_unit_test(test_result_names),
                cmocka_unit_test(test_result_classify),
                cmocka_unit_test(test_natpmp_result_helpers),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_protocol_names),
                cmocka_unit_test(test_addresses),
        };

        return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
