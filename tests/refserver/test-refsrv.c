/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The reference server core on a virtual clock. */

#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "refsrv.h"

#define CLIENT "192.168.1.10"
#define CLIENT2 "192.168.1.11"
#define SERVER "192.168.1.1"
#define CLIENT_PORT 40000

static struct in6_addr A(const char *s) {
        struct in6_addr a;
        assert_true(pcp_addr_from_string(s, &a));
        return a;
}

static struct sockaddr_in6 EP(const char *s, uint16_t port) {
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
        sa.sin6_addr = A(s);
        return sa;
}

static refsrv *server_new(refsrv_config *cfg) {
        refsrv_config def;
        refsrv *s = NULL;

        if (cfg == NULL) {
                refsrv_config_init(&def);
                cfg = &def;
        }
        assert_int_equal(refsrv_new(cfg, 0, &s), 0);
        assert_non_null(s);
        return s;
}

static void nonce_fill(uint8_t n[PCP_NONCE_LEN], uint8_t v) {
        memset(n, v, PCP_NONCE_LEN);
}

static void map_req(pcp_msg *m, const char *client, uint8_t protocol, uint16_t port, uint32_t lifetime,
                    uint8_t nonce) {
        pcp_msg_init(m, false, PCP_OPCODE_MAP);
        m->client_addr = A(client);
        m->protocol = protocol;
        m->internal_port = port;
        m->lifetime = lifetime;
        nonce_fill(m->nonce, nonce);
        m->external_addr = A("0.0.0.0");
}

static void send_msg(refsrv *s, uint64_t now, const char *client, uint16_t port, const pcp_msg *m) {
        uint8_t buf[PCP_MAX_MSG_LEN];
        size_t len;
        struct sockaddr_in6 src = EP(client, port);
        struct in6_addr local = A(SERVER);

        assert_int_equal(pcp_encode(m, buf, sizeof(buf), &len), PCP_WIRE_OK);
        refsrv_receive(s, now, &src, &local, buf, len);
}

static void send_raw(refsrv *s, uint64_t now, const char *client, const uint8_t *buf, size_t len) {
        struct sockaddr_in6 src = EP(client, CLIENT_PORT);
        struct in6_addr local = A(SERVER);

        refsrv_receive(s, now, &src, &local, buf, len);
}

/* Pops one datagram due at now and decodes it as a PCP response. */
static void pop_pcp(refsrv *s, uint64_t now, refsrv_datagram *d, pcp_msg *resp) {
        assert_int_equal(refsrv_pop(s, now, d), 1);
        assert_int_equal(pcp_decode(d->data, d->len, true, resp), PCP_WIRE_OK);
        assert_true(resp->response);
}

static void assert_no_output(refsrv *s, uint64_t now) {
        refsrv_datagram d;
        assert_int_equal(refsrv_pop(s, now, &d), 0);
}

/* MAP request → decoded response */
static void map(refsrv *s, uint64_t now, pcp_msg *req, pcp_msg *resp, refsrv_datagram *d) {
        char a[PCP_ADDR_STRLEN];
        send_msg(s, now, pcp_addr_to_string(&req->client_addr, a), CLIENT_PORT, req);
        pop_pcp(s, now, d, resp);
}

static void test_config(void **state) {
        refsrv_config cfg;
        refsrv *s = NULL;

        refsrv_config_init(&cfg);
        cfg.min_lifetime = 1000;
        cfg.max_lifetime = 10;
        assert_int_equal(refsrv_new(&cfg, 0, &s), -EINVAL);
        refsrv_config_init(&cfg);
        cfg.external_addr = A("2001:db8::1");
        assert_int_equal(refsrv_new(&cfg, 0, &s), -EINVAL);
        refsrv_config_init(&cfg);
        cfg.max_version = 3;
        assert_int_equal(refsrv_new(&cfg, 0, &s), -EINVAL);
        refsrv_config_init(&cfg);
        cfg.max_mappings = REFSRV_MAX_MAPPINGS + 1;
        assert_int_equal(refsrv_new(&cfg, 0, &s), -EINVAL);
        assert_null(s);
        assert_null(refsrv_free(NULL));
}

static void test_map_create_renew_delete(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;
        char a[PCP_ADDR_STRLEN];

        /* create: external port = internal port, lifetime clamped up to 120 */
        map_req(&req, CLIENT, 6, 8080, 60, 0x11);
        map(s, 1000, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_equal(resp.opcode, PCP_OPCODE_MAP);
        assert_int_equal(resp.lifetime, 120);
        assert_int_equal(resp.epoch, 1);
        assert_int_equal(resp.external_port, 8080);
        assert_string_equal(pcp_addr_to_string(&resp.external_addr, a), "203.0.113.1");
        assert_memory_equal(resp.nonce, req.nonce, PCP_NONCE_LEN);
        assert_int_equal(resp.protocol, 6);
        assert_int_equal(resp.internal_port, 8080);
        assert_string_equal(pcp_addr_to_string(&d.dst.sin6_addr, a), CLIENT);
        assert_int_equal(ntohs(d.dst.sin6_port), CLIENT_PORT);
        assert_false(d.alt_source);
        assert_int_equal(refsrv_n_mappings(s), 1);
        assert_int_equal(refsrv_get_mapping(s, 0)->expires_ms, 1000 + 120000);

        /* renew with the same nonce: same port, lifetime clamped down to 86400 */
        map_req(&req, CLIENT, 6, 8080, 100000, 0x11);
        map(s, 61000, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_equal(resp.lifetime, 86400);
        assert_int_equal(resp.external_port, 8080);
        assert_int_equal(refsrv_n_mappings(s), 1);

        /* renew with another nonce: NOT_AUTHORIZED, lifetime = what is left */
        map_req(&req, CLIENT, 6, 8080, 3600, 0x22);
        map(s, 161000, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_NOT_AUTHORIZED);
        assert_int_equal(resp.lifetime, 86400 - 100);
        assert_int_equal(refsrv_get_mapping(s, 0)->expires_ms, 61000 + 86400000ull);

        /* delete with another nonce: NOT_AUTHORIZED, mapping stays */
        map_req(&req, CLIENT, 6, 8080, 0, 0x22);
        map(s, 162000, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_NOT_AUTHORIZED);
        assert_int_equal(refsrv_n_mappings(s), 1);

        /* delete with the right nonce */
        map_req(&req, CLIENT, 6, 8080, 0, 0x11);
        map(s, 163000, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_equal(resp.lifetime, 0);
        assert_int_equal(refsrv_n_mappings(s), 0);

        /* delete of an unknown mapping: SUCCESS, lifetime 0 */
        map(s, 164000, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_equal(resp.lifetime, 0);
        assert_no_output(s, UINT64_MAX - 1);
}

static void test_map_ports(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;

        map_req(&req, CLIENT, 17, 5000, 3600, 1);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.external_port, 5000);

        /* same internal port from another host: the next free one */
        map_req(&req, CLIENT2, 17, 5000, 3600, 2);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_equal(resp.external_port, 5001);

        /* same port, other protocol: no conflict */
        map_req(&req, CLIENT2, 6, 5000, 3600, 3);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.external_port, 5000);

        /* a free suggested port is honoured */
        map_req(&req, CLIENT, 17, 6000, 3600, 4);
        req.external_port = 7777;
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.external_port, 7777);

        /* a taken suggested port: another one, or CANNOT_PROVIDE_EXTERNAL with PREFER_FAILURE */
        map_req(&req, CLIENT, 17, 6001, 3600, 5);
        req.external_port = 7777;
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_not_equal(resp.external_port, 7777);

        map_req(&req, CLIENT, 17, 6002, 3600, 6);
        req.external_port = 7777;
        req.options |= PCP_HAS_PREFER_FAILURE;
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_CANNOT_PROVIDE_EXTERNAL);
        assert_int_equal(resp.lifetime, 30);
        assert_true(resp.options & PCP_HAS_PREFER_FAILURE);

        /* PREFER_FAILURE and a suggested external address that is not ours */
        map_req(&req, CLIENT, 17, 6003, 3600, 7);
        req.external_addr = A("198.51.100.9");
        req.options |= PCP_HAS_PREFER_FAILURE;
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_CANNOT_PROVIDE_EXTERNAL);
        /* ... without it, our address */
        req.options = 0;
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_true(memcmp(&resp.external_addr, &refsrv_get_config(s)->external_addr, 16) == 0);
        assert_int_equal(refsrv_n_mappings(s), 6);
}

static void test_port_range_and_limits(void **state) {
        refsrv_config cfg;
        refsrv_datagram d;
        pcp_msg req, resp;

        refsrv_config_init(&cfg);
        cfg.port_min = 20000;
        cfg.port_max = 20001;
        cfg.max_mappings = 3;
        _cleanup_refsrv_ refsrv *s = server_new(&cfg);

        map_req(&req, CLIENT, 6, 80, 3600, 1);
        map(s, 0, &req, &resp, &d);
        assert_true(resp.external_port == 20000 || resp.external_port == 20001);
        map_req(&req, CLIENT, 6, 81, 3600, 2);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        /* range exhausted */
        map_req(&req, CLIENT, 6, 82, 3600, 3);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_NO_RESOURCES);
        assert_int_equal(resp.lifetime, 30);
        /* table full */
        map_req(&req, CLIENT, 17, 82, 3600, 3);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        map_req(&req, CLIENT, 17, 83, 3600, 3);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_NO_RESOURCES);
        assert_int_equal(refsrv_n_mappings(s), 3);
}

static void test_request_errors(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;
        uint8_t buf[PCP_MAX_MSG_LEN];
        size_t len;
        const refsrv_record *r;

        /* version 3: UNSUPP_VERSION offering 2, with the MAP body echoed */
        map_req(&req, CLIENT, 6, 1234, 3600, 0x42);
        assert_int_equal(pcp_encode(&req, buf, sizeof(buf), &len), PCP_WIRE_OK);
        buf[0] = 3;
        send_raw(s, 0, CLIENT, buf, len);
        pop_pcp(s, 0, &d, &resp);
        assert_int_equal(resp.version, 2);
        assert_int_equal(resp.result, PCP_RESULT_UNSUPP_VERSION);
        assert_int_equal(resp.lifetime, 1800);
        assert_memory_equal(resp.nonce, req.nonce, PCP_NONCE_LEN);

        /* R bit set: silently dropped */
        buf[0] = 2;
        buf[1] |= 0x80;
        send_raw(s, 0, CLIENT, buf, len);
        assert_no_output(s, 0);
        r = refsrv_get_record(s, refsrv_n_records(s) - 1);
        assert_true(r->dropped);
        assert_int_equal(r->result, -1);

        /* one octet: dropped */
        send_raw(s, 0, CLIENT, buf, 1);
        assert_no_output(s, 0);

        /* unknown opcode: UNSUPP_OPCODE with the opcode echoed */
        buf[1] = 5;
        send_raw(s, 0, CLIENT, buf, len);
        assert_int_equal(refsrv_pop(s, 0, &d), 1);
        assert_int_equal(d.data[1], 0x80 | 5);
        assert_int_equal(d.data[3], PCP_RESULT_UNSUPP_OPCODE);

        /* too short for a MAP body */
        buf[1] = PCP_OPCODE_MAP;
        send_raw(s, 0, CLIENT, buf, 40);
        pop_pcp(s, 0, &d, &resp);
        assert_int_equal(resp.result, PCP_RESULT_MALFORMED_REQUEST);
        /* not a multiple of 4 */
        send_raw(s, 0, CLIENT, buf, len - 1);
        pop_pcp(s, 0, &d, &resp);
        assert_int_equal(resp.result, PCP_RESULT_MALFORMED_REQUEST);

        /* client address is not the source */
        map_req(&req, CLIENT2, 6, 1234, 3600, 0x42);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        pop_pcp(s, 0, &d, &resp);
        assert_int_equal(resp.result, PCP_RESULT_ADDRESS_MISMATCH);
        assert_int_equal(resp.lifetime, 1800);

        /* unknown mandatory option */
        map_req(&req, CLIENT, 6, 1234, 3600, 0x42);
        req.unknown[0] = (pcp_raw_option) { .code = 99, .len = 0 };
        req.n_unknown = 1;
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_UNSUPP_OPTION);

        /* unknown optional option: ignored, not echoed */
        req.unknown[0].code = 200;
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_equal(resp.n_unknown, 0);

        /* malformed option: DESCRIPTION that is not UTF-8 */
        assert_int_equal(pcp_encode(&req, buf, sizeof(buf), &len), PCP_WIRE_OK);
        {
                static const uint8_t opt[] = { 128, 0, 0, 1, 0xff, 0, 0, 0 };
                memcpy(buf + len, opt, sizeof(opt));
                send_raw(s, 0, CLIENT, buf, len + sizeof(opt));
        }
        pop_pcp(s, 0, &d, &resp);
        assert_int_equal(resp.result, PCP_RESULT_MALFORMED_OPTION);

        /* THIRD_PARTY refused by default */
        map_req(&req, CLIENT, 6, 1235, 3600, 0x43);
        req.options |= PCP_HAS_THIRD_PARTY;
        req.third_party = A("192.168.1.50");
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_UNSUPP_OPTION);

        /* protocol 0 with a port; unsupported protocol; port 0 with a lifetime */
        map_req(&req, CLIENT, 0, 1235, 3600, 0x43);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_MALFORMED_REQUEST);
        map_req(&req, CLIENT, 99, 1235, 3600, 0x43);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_UNSUPP_PROTOCOL);
        map_req(&req, CLIENT, 6, 0, 3600, 0x43);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_MALFORMED_REQUEST);

        assert_int_equal(refsrv_n_mappings(s), 1);
}

static void test_third_party_allowed(void **state) {
        refsrv_config cfg;
        refsrv_datagram d;
        pcp_msg req, resp;
        char a[PCP_ADDR_STRLEN];

        refsrv_config_init(&cfg);
        cfg.allow_third_party = true;
        _cleanup_refsrv_ refsrv *s = server_new(&cfg);

        map_req(&req, CLIENT, 6, 1235, 3600, 0x43);
        req.options |= PCP_HAS_THIRD_PARTY;
        req.third_party = A("192.168.1.50");
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_true(resp.options & PCP_HAS_THIRD_PARTY);
        assert_string_equal(pcp_addr_to_string(&refsrv_get_mapping(s, 0)->internal_addr, a), "192.168.1.50");
}

static void test_error_lifetimes(void **state) {
        refsrv_config cfg;
        refsrv_datagram d;
        pcp_msg req, resp;

        refsrv_config_init(&cfg);
        cfg.long_error_lifetime = 0; /* miniupnpd */
        cfg.short_error_lifetime = 45;
        _cleanup_refsrv_ refsrv *s = server_new(&cfg);

        map_req(&req, CLIENT2, 6, 1, 3600, 1);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        pop_pcp(s, 0, &d, &resp);
        assert_int_equal(resp.result, PCP_RESULT_ADDRESS_MISMATCH);
        assert_int_equal(resp.lifetime, 0);

        assert_int_equal(refsrv_force_result(s, PCP_RESULT_NETWORK_FAILURE, 1, REFSRV_LIFETIME_DEFAULT), 0);
        map_req(&req, CLIENT, 6, 1, 3600, 1);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_NETWORK_FAILURE);
        assert_int_equal(resp.lifetime, 45);
}

static void test_announce_and_epoch(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;

        pcp_msg_init(&req, false, PCP_OPCODE_ANNOUNCE);
        req.client_addr = A(CLIENT);
        send_msg(s, 5500, CLIENT, CLIENT_PORT, &req);
        pop_pcp(s, 5500, &d, &resp);
        assert_int_equal(resp.opcode, PCP_OPCODE_ANNOUNCE);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_equal(resp.lifetime, 0);
        assert_int_equal(resp.epoch, 5);
        assert_int_equal(refsrv_epoch(s, 3600000), 3600);
}

static void test_restart(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;
        char a[PCP_ADDR_STRLEN];

        map_req(&req, CLIENT, 6, 80, 3600, 1);
        map(s, 10000, &req, &resp, &d);
        assert_int_equal(resp.epoch, 10);

        /* keep-state restart: epoch back to 0, mapping survives, no ANNOUNCE asked */
        refsrv_restart(s, 20000, REFSRV_RESTART_KEEP_STATE);
        assert_no_output(s, 20000);
        assert_int_equal(refsrv_n_mappings(s), 1);
        assert_int_equal(refsrv_epoch(s, 23000), 3);

        /* lossy restart with ANNOUNCE to the client's address at port 5350 */
        refsrv_restart(s, 30000, REFSRV_RESTART_ANNOUNCE);
        assert_int_equal(refsrv_n_mappings(s), 0);
        pop_pcp(s, 30000, &d, &resp);
        assert_int_equal(d.kind, REFSRV_DATAGRAM_ANNOUNCE);
        assert_int_equal(resp.opcode, PCP_OPCODE_ANNOUNCE);
        assert_int_equal(resp.epoch, 0);
        assert_string_equal(pcp_addr_to_string(&d.dst.sin6_addr, a), CLIENT);
        assert_int_equal(ntohs(d.dst.sin6_port), 5350);
        assert_no_output(s, 30000);

        /* the renewal now creates it afresh, epoch small */
        map(s, 31000, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_equal(resp.epoch, 1);
}

static void test_external_change(void **state) {
        refsrv_config cfg;
        refsrv_datagram d;
        pcp_msg req, resp;
        char a[PCP_ADDR_STRLEN];
        struct in6_addr ext = A("198.51.100.7");
        bool seen_announce = false, seen_map = false;

        refsrv_config_init(&cfg);
        cfg.announce_port = 15350;
        _cleanup_refsrv_ refsrv *s = server_new(&cfg);

        map_req(&req, CLIENT, 17, 9000, 3600, 0x77);
        map(s, 100000, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);

        assert_int_equal(refsrv_set_external(s, 200000, &ext), 0);
        assert_int_equal(refsrv_set_external(s, 200000, &in6addr_any), -EINVAL);
        for (int i = 0; i < 2; i++) {
                pop_pcp(s, 200000, &d, &resp);
                if (d.kind == REFSRV_DATAGRAM_ANNOUNCE) {
                        assert_int_equal(resp.opcode, PCP_OPCODE_ANNOUNCE);
                        assert_int_equal(ntohs(d.dst.sin6_port), 15350);
                        assert_int_equal(resp.epoch, 0);
                        seen_announce = true;
                } else {
                        assert_int_equal(d.kind, REFSRV_DATAGRAM_UNSOLICITED);
                        assert_int_equal(resp.opcode, PCP_OPCODE_MAP);
                        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
                        assert_memory_equal(resp.nonce, req.nonce, PCP_NONCE_LEN);
                        assert_int_equal(resp.protocol, 17);
                        assert_int_equal(resp.internal_port, 9000);
                        assert_int_equal(resp.external_port, 9000);
                        assert_string_equal(pcp_addr_to_string(&resp.external_addr, a), "198.51.100.7");
                        assert_int_equal(resp.lifetime, 3600 - 100);
                        assert_int_equal(resp.epoch, 0);
                        assert_int_equal(ntohs(d.dst.sin6_port), CLIENT_PORT);
                        seen_map = true;
                }
                assert_string_equal(pcp_addr_to_string(&d.dst.sin6_addr, a), CLIENT);
        }
        assert_true(seen_announce && seen_map);
        assert_no_output(s, 200000);

        /* renewals now report the new address */
        req.lifetime = 3600;
        map(s, 201000, &req, &resp, &d);
        assert_string_equal(pcp_addr_to_string(&resp.external_addr, a), "198.51.100.7");
}

static void natpmp_send_req(refsrv *s, uint64_t now, const natpmp_msg *m) {
        uint8_t buf[16];
        size_t len;

        assert_int_equal(natpmp_encode(m, buf, sizeof(buf), &len), PCP_WIRE_OK);
        send_raw(s, now, CLIENT, buf, len);
}

static void natpmp_pop(refsrv *s, uint64_t now, natpmp_msg *resp) {
        refsrv_datagram d;

        assert_int_equal(refsrv_pop(s, now, &d), 1);
        assert_int_equal(natpmp_decode(d.data, d.len, true, resp), PCP_WIRE_OK);
}

static void test_natpmp(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        natpmp_msg req = { .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS }, resp;
        char a[INET_ADDRSTRLEN];
        uint8_t bad[2] = { 0, 9 };

        natpmp_send_req(s, 7000, &req);
        natpmp_pop(s, 7000, &resp);
        assert_int_equal(resp.result, NATPMP_RESULT_SUCCESS);
        assert_int_equal(resp.epoch, 7);
        assert_string_equal(inet_ntop(AF_INET, &resp.external_addr, a, sizeof(a)), "203.0.113.1");

        req = (natpmp_msg) { .opcode = NATPMP_OPCODE_MAP_TCP, .internal_port = 22, .external_port = 2222,
                             .lifetime = 7200 };
        natpmp_send_req(s, 8000, &req);
        natpmp_pop(s, 8000, &resp);
        assert_int_equal(resp.result, NATPMP_RESULT_SUCCESS);
        assert_int_equal(resp.opcode, NATPMP_OPCODE_MAP_TCP);
        assert_int_equal(resp.internal_port, 22);
        assert_int_equal(resp.external_port, 2222);
        assert_int_equal(resp.lifetime, 7200);
        assert_int_equal(refsrv_n_mappings(s), 1);
        assert_true(refsrv_get_mapping(s, 0)->natpmp);
        assert_int_equal(refsrv_get_mapping(s, 0)->protocol, 6);

        /* renewal keeps the port even with another suggestion */
        req.external_port = 3333;
        natpmp_send_req(s, 9000, &req);
        natpmp_pop(s, 9000, &resp);
        assert_int_equal(resp.external_port, 2222);

        /* a PCP request for the same internal endpoint is refused */
        {
                pcp_msg preq, presp;
                refsrv_datagram d;
                map_req(&preq, CLIENT, 6, 22, 3600, 1);
                map(s, 9000, &preq, &presp, &d);
                assert_int_equal(presp.result, PCP_RESULT_NOT_AUTHORIZED);
        }

        /* lifetime 0 deletes */
        req.lifetime = 0;
        req.external_port = 0;
        natpmp_send_req(s, 10000, &req);
        natpmp_pop(s, 10000, &resp);
        assert_int_equal(resp.result, NATPMP_RESULT_SUCCESS);
        assert_int_equal(resp.lifetime, 0);
        assert_int_equal(resp.external_port, 0);
        assert_int_equal(refsrv_n_mappings(s), 0);

        /* unknown opcode: UNSUPP_OPCODE short form */
        send_raw(s, 10000, CLIENT, bad, sizeof(bad));
        natpmp_pop(s, 10000, &resp);
        assert_int_equal(resp.result, NATPMP_RESULT_UNSUPP_OPCODE);
        assert_int_equal(resp.opcode, 9);
}

static void test_natpmp_only_and_pcp_only(void **state) {
        refsrv_config cfg;
        refsrv_datagram d;
        pcp_msg req, resp;
        natpmp_msg nreq = { .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS }, nresp;
        static const uint8_t expect[8] = { 0x00, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03 };

        refsrv_config_init(&cfg);
        cfg.mode = REFSRV_MODE_NATPMP_ONLY;
        _cleanup_refsrv_ refsrv *s = server_new(&cfg);

        map_req(&req, CLIENT, 6, 80, 3600, 1);
        send_msg(s, 3000, CLIENT, CLIENT_PORT, &req);
        assert_int_equal(refsrv_pop(s, 3000, &d), 1);
        assert_int_equal(d.len, 8);
        assert_memory_equal(d.data, expect, 8);
        assert_int_equal(refsrv_n_mappings(s), 0);

        /* NAT-PMP still works */
        natpmp_send_req(s, 3000, &nreq);
        natpmp_pop(s, 3000, &nresp);
        assert_int_equal(nresp.result, NATPMP_RESULT_SUCCESS);

        /* PCP only: NAT-PMP gets a PCP UNSUPP_VERSION */
        assert_int_equal(refsrv_set_mode(s, REFSRV_MODE_PCP_ONLY), 0);
        natpmp_send_req(s, 4000, &nreq);
        pop_pcp(s, 4000, &d, &resp);
        assert_int_equal(resp.version, 2);
        assert_int_equal(resp.result, PCP_RESULT_UNSUPP_VERSION);
        assert_int_equal(resp.epoch, 4);
}

static void test_version_1(void **state) {
        refsrv_config cfg;
        refsrv_datagram d;
        pcp_msg req, resp;

        refsrv_config_init(&cfg);
        cfg.max_version = 1;
        _cleanup_refsrv_ refsrv *s = server_new(&cfg);

        map_req(&req, CLIENT, 6, 80, 3600, 1);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        assert_int_equal(refsrv_pop(s, 0, &d), 1);
        assert_int_equal(d.len, 24);
        assert_int_equal(d.data[0], 1);
        assert_int_equal(d.data[1], 0x80 | PCP_OPCODE_MAP);
        assert_int_equal(d.data[3], PCP_RESULT_UNSUPP_VERSION);
        assert_int_equal(pcp_decode(d.data, d.len, true, &resp), PCP_WIRE_OK);
        assert_int_equal(resp.version, 1);
        assert_int_equal(refsrv_n_mappings(s), 0);
}

static void test_forced_result(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;
        natpmp_msg nreq = { .opcode = NATPMP_OPCODE_MAP_UDP, .internal_port = 53, .lifetime = 600 }, nresp;

        assert_int_equal(refsrv_force_result(s, 14, 1, 0), -EINVAL);
        assert_int_equal(refsrv_force_result(s, PCP_RESULT_NOT_AUTHORIZED, 2, 77), 0);
        map_req(&req, CLIENT, 6, 80, 3600, 1);
        for (int i = 0; i < 2; i++) {
                map(s, 0, &req, &resp, &d);
                assert_int_equal(resp.result, PCP_RESULT_NOT_AUTHORIZED);
                assert_int_equal(resp.lifetime, 77);
                assert_memory_equal(resp.nonce, req.nonce, PCP_NONCE_LEN);
        }
        assert_int_equal(refsrv_n_mappings(s), 0);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);

        /* until cleared, NAT-PMP too */
        assert_int_equal(refsrv_force_result(s, PCP_RESULT_NO_RESOURCES, 0, REFSRV_LIFETIME_DEFAULT), 0);
        for (int i = 0; i < 5; i++) {
                natpmp_send_req(s, 0, &nreq);
                natpmp_pop(s, 0, &nresp);
                assert_int_equal(nresp.result, NATPMP_RESULT_OUT_OF_RESOURCES);
        }
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_NO_RESOURCES);
        assert_int_equal(resp.lifetime, 30);
        refsrv_clear_forced_result(s);
        natpmp_send_req(s, 0, &nreq);
        natpmp_pop(s, 0, &nresp);
        assert_int_equal(nresp.result, NATPMP_RESULT_SUCCESS);

        /* forced UNSUPP_VERSION looks like version negotiation */
        assert_int_equal(refsrv_force_result(s, PCP_RESULT_UNSUPP_VERSION, 1, REFSRV_LIFETIME_DEFAULT), 0);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_UNSUPP_VERSION);
        assert_int_equal(resp.version, 2);
}

static void test_drops(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;
        const refsrv_record *r;
        refsrv_stats st;
        unsigned answered = 0;

        assert_int_equal(refsrv_set_drop(s, 1.5, 0), -EINVAL);
        assert_int_equal(refsrv_set_drop(s, 1.0, 0), 0);
        map_req(&req, CLIENT, 6, 80, 3600, 1);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        assert_no_output(s, UINT64_MAX - 1);
        assert_int_equal(refsrv_n_mappings(s), 0);
        r = refsrv_get_record(s, 0);
        assert_true(r->dropped);
        assert_false(r->answered);

        /* responses dropped: the state changes, nothing goes out */
        assert_int_equal(refsrv_set_drop(s, 0, 1.0), 0);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        assert_no_output(s, UINT64_MAX - 1);
        assert_int_equal(refsrv_n_mappings(s), 1);
        r = refsrv_get_record(s, 1);
        assert_false(r->dropped);
        assert_true(r->response_dropped);
        assert_int_equal(r->result, PCP_RESULT_SUCCESS);

        /* half of the requests */
        assert_int_equal(refsrv_set_drop(s, 0.5, 0), 0);
        for (int i = 0; i < 400; i++) {
                send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
                answered += (unsigned) refsrv_pop(s, 0, &d);
        }
        assert_in_range(answered, 140, 260);
        refsrv_get_stats(s, &st);
        assert_int_equal(st.dropped_requests, 1 + 400 - answered);
        assert_int_equal(st.dropped_responses, 1);
        assert_int_equal(refsrv_set_drop(s, 0, 0), 0);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
}

static void test_delay(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;

        refsrv_set_delay(s, 500);
        map_req(&req, CLIENT, 6, 80, 3600, 1);
        send_msg(s, 1000, CLIENT, CLIENT_PORT, &req);
        assert_int_equal(refsrv_next_deadline(s), 1500);
        assert_no_output(s, 1000);
        assert_no_output(s, 1499);
        pop_pcp(s, 1500, &d, &resp);
        assert_int_equal(d.send_at_ms, 1500);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        /* the mapping expiry is the next deadline now */
        assert_int_equal(refsrv_next_deadline(s), 1000 + 3600 * 1000);

        /* order of sending follows send time */
        refsrv_set_delay(s, 300);
        send_msg(s, 2000, CLIENT, CLIENT_PORT, &req);
        refsrv_set_delay(s, 0);
        req.internal_port = 81;
        send_msg(s, 2100, CLIENT, CLIENT_PORT, &req);
        pop_pcp(s, 2400, &d, &resp);
        assert_int_equal(resp.internal_port, 81);
        pop_pcp(s, 2400, &d, &resp);
        assert_int_equal(resp.internal_port, 80);
}

static void test_expiry(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;
        refsrv_stats st;

        map_req(&req, CLIENT, 6, 80, 200, 1);
        map(s, 1000, &req, &resp, &d);
        assert_int_equal(refsrv_next_deadline(s), 201000);
        refsrv_tick(s, 200999);
        assert_int_equal(refsrv_n_mappings(s), 1);
        refsrv_tick(s, 201000);
        assert_int_equal(refsrv_n_mappings(s), 0);
        assert_int_equal(refsrv_next_deadline(s), UINT64_MAX);
        refsrv_get_stats(s, &st);
        assert_int_equal(st.expired, 1);

        /* after expiry another nonce may have the port */
        map_req(&req, CLIENT, 6, 80, 200, 2);
        map(s, 300000, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
}

static void test_faults(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;

        map_req(&req, CLIENT, 6, 80, 3600, 0x5a);

        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_WRONG_NONCE, 1, false), 0);
        map(s, 0, &req, &resp, &d);
        assert_true(d.malformed);
        assert_memory_not_equal(resp.nonce, req.nonce, PCP_NONCE_LEN);
        assert_no_output(s, 0);
        /* count used up */
        map(s, 0, &req, &resp, &d);
        assert_false(d.malformed);
        assert_memory_equal(resp.nonce, req.nonce, PCP_NONCE_LEN);

        /* broken one, then the valid one */
        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_TRUNCATED, 1, true), 0);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        assert_int_equal(refsrv_pop(s, 0, &d), 1);
        assert_int_equal(d.len, 56);
        assert_int_not_equal(pcp_decode(d.data, d.len, true, &resp), PCP_WIRE_OK);
        pop_pcp(s, 0, &d, &resp);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);

        /* spoof: right bytes, alternate source */
        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_SPOOF, 0, false), 0);
        for (int i = 0; i < 3; i++) {
                map(s, 0, &req, &resp, &d);
                assert_true(d.alt_source);
                assert_memory_equal(resp.nonce, req.nonce, PCP_NONCE_LEN);
        }
        refsrv_clear_fault(s);

        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_BAD_R_BIT, 1, false), 0);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        assert_int_equal(refsrv_pop(s, 0, &d), 1);
        assert_int_equal(d.data[1], PCP_OPCODE_MAP);

        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_WRONG_OPCODE, 1, false), 0);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        assert_int_equal(refsrv_pop(s, 0, &d), 1);
        assert_int_equal(d.data[1], 0x80 | PCP_OPCODE_PEER);

        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_WRONG_PROTOCOL, 1, false), 0);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.protocol, 7);

        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_WRONG_PORT, 1, false), 0);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.internal_port, 81);

        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_BAD_RESULT, 1, false), 0);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        assert_int_equal(refsrv_pop(s, 0, &d), 1);
        assert_int_equal(pcp_decode(d.data, d.len, true, &resp), PCP_WIRE_ERR_RESULT);

        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_WRONG_VERSION, 1, false), 0);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        assert_int_equal(refsrv_pop(s, 0, &d), 1);
        assert_int_equal(d.data[0], 3);

        assert_int_equal(refsrv_set_fault(s, REFSRV_FAULT_GARBAGE, 1, false), 0);
        send_msg(s, 0, CLIENT, CLIENT_PORT, &req);
        assert_int_equal(refsrv_pop(s, 0, &d), 1);
        assert_true(d.malformed);
        assert_in_range(d.len, 1, PCP_MAX_MSG_LEN);

        assert_int_equal(refsrv_fault_from_string("wrong-nonce"), REFSRV_FAULT_WRONG_NONCE);
        assert_int_equal(refsrv_fault_from_string("nope"), -EINVAL);
        assert_string_equal(refsrv_fault_to_string(REFSRV_FAULT_SPOOF), "spoof");
        assert_int_equal(refsrv_set_fault(s, _REFSRV_FAULT_MAX, 1, false), -EINVAL);
}

static void test_records(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;
        const refsrv_record *r;
        char a[PCP_ADDR_STRLEN];

        map_req(&req, CLIENT, 17, 4500, 3600, 0x99);
        req.external_port = 4501;
        /* a client retransmitting at 0, 3, 9 s */
        map(s, 0, &req, &resp, &d);
        map(s, 3000, &req, &resp, &d);
        map(s, 9000, &req, &resp, &d);
        assert_int_equal(refsrv_n_records(s), 3);
        assert_int_equal(refsrv_records_total(s), 3);
        assert_null(refsrv_get_record(s, 3));
        for (size_t i = 0; i < 3; i++) {
                r = refsrv_get_record(s, i);
                assert_non_null(r);
                assert_int_equal(r->version, 2);
                assert_int_equal(r->opcode, PCP_OPCODE_MAP);
                assert_true(r->decoded);
                assert_int_equal(r->lifetime, 3600);
                assert_memory_equal(r->nonce, req.nonce, PCP_NONCE_LEN);
                assert_int_equal(r->protocol, 17);
                assert_int_equal(r->internal_port, 4500);
                assert_int_equal(r->external_port, 4501);
                assert_int_equal(r->len, 60);
                assert_string_equal(pcp_addr_to_string(&r->src.sin6_addr, a), CLIENT);
                assert_int_equal(ntohs(r->src.sin6_port), CLIENT_PORT);
                assert_int_equal(r->result, PCP_RESULT_SUCCESS);
                assert_int_equal(r->result_lifetime, 3600);
                assert_int_equal(r->assigned_port, 4501);
                assert_true(r->answered);
                assert_false(r->dropped);
        }
        assert_int_equal(refsrv_get_record(s, 0)->time_ms, 0);
        assert_int_equal(refsrv_get_record(s, 1)->time_ms, 3000);
        assert_int_equal(refsrv_get_record(s, 2)->time_ms, 9000);
        refsrv_clear_records(s);
        assert_int_equal(refsrv_n_records(s), 0);

        /* the ring keeps the newest */
        for (unsigned i = 0; i < REFSRV_MAX_RECORDS + 5; i++) {
                send_msg(s, 10000 + i, CLIENT, CLIENT_PORT, &req);
                assert_int_equal(refsrv_pop(s, 10000 + i, &d), 1);
        }
        assert_int_equal(refsrv_n_records(s), REFSRV_MAX_RECORDS);
        assert_int_equal(refsrv_get_record(s, 0)->time_ms, 10005);
        assert_int_equal(refsrv_get_record(s, REFSRV_MAX_RECORDS - 1)->time_ms, 10000 + REFSRV_MAX_RECORDS + 4);
}

static void test_peer(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;

        /* a MAP takes a port different from the internal one */
        map_req(&req, CLIENT2, 6, 7000, 3600, 1);
        map(s, 0, &req, &resp, &d);
        map_req(&req, CLIENT, 6, 7000, 3600, 2);
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.external_port, 7001);

        /* PEER for the same internal endpoint shares its external port */
        pcp_msg_init(&req, false, PCP_OPCODE_PEER);
        req.client_addr = A(CLIENT);
        nonce_fill(req.nonce, 3);
        req.protocol = 6;
        req.internal_port = 7000;
        req.lifetime = 600;
        req.remote_addr = A("198.51.100.20");
        req.remote_port = 443;
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_int_equal(resp.opcode, PCP_OPCODE_PEER);
        assert_int_equal(resp.external_port, 7001);
        assert_int_equal(resp.remote_port, 443);
        assert_int_equal(refsrv_n_mappings(s), 3);
        assert_true(refsrv_get_mapping(s, 2)->peer);

        /* remote port 0 is malformed */
        req.remote_port = 0;
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_MALFORMED_REQUEST);
}

static void test_pinhole(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;
        char a[PCP_ADDR_STRLEN];

        map_req(&req, "2001:db8::10", 17, 6881, 3600, 1);
        req.external_addr = A("::");
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_string_equal(pcp_addr_to_string(&resp.external_addr, a), "2001:db8::10");
        assert_int_equal(resp.external_port, 6881);
        assert_string_equal(pcp_addr_to_string(&d.dst.sin6_addr, a), "2001:db8::10");
}

static void test_options(void **state) {
        refsrv_config cfg;
        refsrv_datagram d;
        pcp_msg req, resp;
        static const char desc[] = "my app";

        refsrv_config_init(&cfg);
        cfg.has_prefix64 = true;
        cfg.prefix64.prefix_len = 96;
        cfg.prefix64.prefix = A("64:ff9b::");
        cfg.prefix64.suffix_len = 0;
        _cleanup_refsrv_ refsrv *s = server_new(&cfg);

        map_req(&req, CLIENT, 6, 80, 3600, 1);
        req.options |= PCP_HAS_DESCRIPTION;
        req.description = desc;
        req.description_len = sizeof(desc) - 1;
        req.n_filters = 1;
        req.filters[0] = (pcp_filter) { .prefix_len = 128, .remote_port = 0, .remote_addr = A("198.51.100.1") };
        req.n_prefix64 = 1;
        req.prefix64[0] = (pcp_prefix64) { .prefix_len = 96, .suffix_len = 0 };
        map(s, 0, &req, &resp, &d);
        assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
        assert_true(resp.options & PCP_HAS_DESCRIPTION);
        assert_int_equal(resp.description_len, 6);
        assert_memory_equal(resp.description, desc, 6);
        assert_int_equal(resp.n_filters, 1);
        assert_int_equal(resp.n_prefix64, 1);
        assert_memory_equal(&resp.prefix64[0].prefix, &cfg.prefix64.prefix, 12);
        assert_string_equal(refsrv_get_mapping(s, 0)->description, "my app");
}

static void test_natpmp_announce(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        natpmp_msg req = { .opcode = NATPMP_OPCODE_MAP_UDP, .internal_port = 1000, .lifetime = 600 }, resp;
        struct in6_addr ext = A("198.51.100.8");
        refsrv_datagram d;
        char a[INET_ADDRSTRLEN];

        natpmp_send_req(s, 0, &req);
        natpmp_pop(s, 0, &resp);
        assert_int_equal(refsrv_set_external(s, 5000, &ext), 0);
        /* a NAT-PMP client gets the NAT-PMP address notice, and no unsolicited PCP */
        assert_int_equal(refsrv_pop(s, 5000, &d), 1);
        assert_int_equal(d.kind, REFSRV_DATAGRAM_ANNOUNCE);
        assert_int_equal(ntohs(d.dst.sin6_port), 5350);
        assert_int_equal(natpmp_decode(d.data, d.len, true, &resp), PCP_WIRE_OK);
        assert_int_equal(resp.opcode, NATPMP_OPCODE_EXTERNAL_ADDRESS);
        assert_int_equal(resp.epoch, 0);
        assert_string_equal(inet_ntop(AF_INET, &resp.external_addr, a, sizeof(a)), "198.51.100.8");
        assert_no_output(s, 5000);
}

/* SUCCESS answers that are no usable grant: each kind says what it should, the mapping
 * underneath is the real one, the count is honoured, deletes are not touched. */
static void test_grant_faults(void **state) {
        static const struct {
                refsrv_grant_fault f;
                const char *client, *ext;
                uint16_t port;
                uint32_t lifetime;
        } cases[] = {
                { REFSRV_GRANT_ZERO, CLIENT, "::", 0, 600 },
                { REFSRV_GRANT_ZERO_ADDRESS, CLIENT, "0.0.0.0", 8080, 600 },
                { REFSRV_GRANT_ZERO_ADDRESS, "2001:db8::10", "::", 8080, 600 },
                { REFSRV_GRANT_ZERO_PORT, CLIENT, "203.0.113.1", 0, 600 },
                { REFSRV_GRANT_WRONG_FAMILY, CLIENT, "2001:db8::1", 8080, 600 },
                { REFSRV_GRANT_WRONG_FAMILY, "2001:db8::10", "203.0.113.1", 8080, 600 },
                { REFSRV_GRANT_LOOPBACK, CLIENT, "127.0.0.1", 8080, 600 },
                { REFSRV_GRANT_LOOPBACK, "2001:db8::10", "::1", 8080, 600 },
                { REFSRV_GRANT_ZERO_LIFETIME, CLIENT, "203.0.113.1", 8080, 0 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_refsrv_ refsrv *s = server_new(NULL);
                refsrv_datagram d;
                pcp_msg req, resp;
                char a[PCP_ADDR_STRLEN];
                const refsrv_mapping *m;

                assert_string_equal(refsrv_grant_fault_to_string(cases[i].f),
                                    refsrv_grant_fault_to_string(refsrv_grant_fault_from_string(
                                            refsrv_grant_fault_to_string(cases[i].f))));
                assert_int_equal(refsrv_set_grant_fault(s, cases[i].f, 1), 0);
                map_req(&req, cases[i].client, 6, 8080, 600, 1);
                if (strchr(cases[i].client, ':'))
                        req.external_addr = A("::");
                map(s, 1000, &req, &resp, &d);
                assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
                assert_string_equal(pcp_addr_to_string(&resp.external_addr, a), cases[i].ext);
                assert_int_equal(resp.external_port, cases[i].port);
                assert_int_equal(resp.lifetime, cases[i].lifetime);
                /* the server holds the real mapping */
                m = refsrv_get_mapping(s, 0);
                assert_non_null(m);
                assert_int_equal(m->external_port, 8080);
                assert_int_equal(m->lifetime, 600);
                /* used up after one: the renewal is answered right */
                map(s, 2000, &req, &resp, &d);
                assert_int_equal(resp.external_port, 8080);
                assert_int_equal(resp.lifetime, 600);
                assert_false(pcp_addr_is_unspecified(&resp.external_addr));
        }

        /* until cleared; a delete is answered as always */
        {
                _cleanup_refsrv_ refsrv *s = server_new(NULL);
                refsrv_datagram d;
                pcp_msg req, resp;

                assert_int_equal(refsrv_set_grant_fault(s, REFSRV_GRANT_ZERO, 0), 0);
                map_req(&req, CLIENT, 17, 5000, 600, 2);
                for (int k = 0; k < 3; k++) {
                        map(s, 1000 + k, &req, &resp, &d);
                        assert_int_equal(resp.external_port, 0);
                }
                req.lifetime = 0;
                map(s, 1010, &req, &resp, &d);
                assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
                assert_int_equal(resp.lifetime, 0);
                assert_int_equal(refsrv_n_mappings(s), 0);
                assert_int_equal(refsrv_set_grant_fault(s, REFSRV_GRANT_OK, 5), 0);
                req.lifetime = 600;
                map(s, 1020, &req, &resp, &d);
                assert_int_equal(resp.external_port, 5000);
                assert_int_equal(refsrv_set_grant_fault(s, _REFSRV_GRANT_MAX, 0), -EINVAL);
                assert_int_equal(refsrv_grant_fault_from_string("bogus"), -EINVAL);
        }

        /* NAT-PMP: port 0, lifetime 0, and 0.0.0.0 from the address request */
        {
                _cleanup_refsrv_ refsrv *s = server_new(NULL);
                natpmp_msg req = { .opcode = NATPMP_OPCODE_MAP_UDP, .internal_port = 53, .lifetime = 600 }, resp;
                natpmp_msg areq = { .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS };

                assert_int_equal(refsrv_set_grant_fault(s, REFSRV_GRANT_ZERO_PORT, 1), 0);
                natpmp_send_req(s, 0, &req);
                natpmp_pop(s, 0, &resp);
                assert_int_equal(resp.result, NATPMP_RESULT_SUCCESS);
                assert_int_equal(resp.external_port, 0);
                assert_int_equal(resp.lifetime, 600);
                assert_int_equal(refsrv_set_grant_fault(s, REFSRV_GRANT_ZERO_LIFETIME, 1), 0);
                natpmp_send_req(s, 0, &req);
                natpmp_pop(s, 0, &resp);
                assert_int_not_equal(resp.external_port, 0);
                assert_int_equal(resp.external_port, refsrv_get_mapping(s, 0)->external_port);
                assert_int_equal(resp.lifetime, 0);
                assert_int_equal(refsrv_set_grant_fault(s, REFSRV_GRANT_ZERO_ADDRESS, 1), 0);
                natpmp_send_req(s, 0, &areq);
                natpmp_pop(s, 0, &resp);
                assert_int_equal(resp.result, NATPMP_RESULT_SUCCESS);
                assert_int_equal(resp.external_addr.s_addr, 0);
                natpmp_send_req(s, 0, &areq);
                natpmp_pop(s, 0, &resp);
                assert_int_equal(resp.external_addr.s_addr, htonl(0xcb007101));
        }
}

/* A random epoch on everything sent; the real one when switched off. */
static void test_random_epoch(void **state) {
        _cleanup_refsrv_ refsrv *s = server_new(NULL);
        refsrv_datagram d;
        pcp_msg req, resp;
        uint32_t seen[8];
        size_t far = 0;

        refsrv_set_random_epoch(s, true);
        map_req(&req, CLIENT, 6, 8080, 600, 1);
        for (int k = 0; k < 8; k++) {
                map(s, 10000, &req, &resp, &d);
                assert_int_equal(resp.result, PCP_RESULT_SUCCESS);
                seen[k] = resp.epoch;
                far += resp.epoch > 1000;
                for (int j = 0; j < k; j++)
                        assert_int_not_equal(seen[j], seen[k]);
        }
        assert_true(far >= 6);
        /* ANNOUNCEs too */
        refsrv_announce(s, 10000);
        pop_pcp(s, 10000, &d, &resp);
        assert_int_equal(d.kind, REFSRV_DATAGRAM_ANNOUNCE);
        assert_int_not_equal(resp.epoch, 10);
        refsrv_set_random_epoch(s, false);
        map(s, 10000, &req, &resp, &d);
        assert_int_equal(resp.epoch, 10);
        assert_int_equal(refsrv_epoch(s, 10000), 10);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_config),
                cmocka_unit_test(test_map_create_renew_delete),
                cmocka_unit_test(test_map_ports),
                cmocka_unit_test(test_port_range_and_limits),
                cmocka_unit_test(test_request_errors),
                cmocka_unit_test(test_third_party_allowed),
                cmocka_unit_test(test_error_lifetimes),
                cmocka_unit_test(test_announce_and_epoch),
                cmocka_unit_test(test_restart),
                cmocka_unit_test(test_external_change),
                cmocka_unit_test(test_natpmp),
                cmocka_unit_test(test_natpmp_only_and_pcp_only),
                cmocka_unit_test(test_version_1),
                cmocka_unit_test(test_forced_result),
                cmocka_unit_test(test_drops),
                cmocka_unit_test(test_delay),
                cmocka_unit_test(test_expiry),
                cmocka_unit_test(test_faults),
                cmocka_unit_test(test_records),
                cmocka_unit_test(test_peer),
                cmocka_unit_test(test_pinhole),
                cmocka_unit_test(test_options),
                cmocka_unit_test(test_natpmp_announce),
                cmocka_unit_test(test_grant_faults),
                cmocka_unit_test(test_random_epoch),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
