/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the text forms of addresses callers and files give pcpd:
 *   0: an address (pcp_addr_from_string(): AddPeer's remote address, the external-address
 *      and third-party options, the state file's addresses);
 *   1: a prefix (pcpd_prefix_from_string(): the "filters" option);
 *   2: a server endpoint (pcpd_parse_endpoint(): pcpd.conf's Servers=, the state file's
 *      Server=);
 *   3: a protocol (pcp_protocol_from_string(): AddMapping's and AddPeer's protocol).
 * The first octet picks the form (modulo 4), the rest up to a NUL is the text.
 *
 * Checked, besides no crash / leak / sanitizer report: what is accepted, written in the
 * form pcpd writes it (pcp_addr_to_string(), pcpd_prefix_to_string(), "[addr%scope]:port",
 * the protocol's name and its number), reads back the same, and that writing is stable;
 * an address is what inet_pton() makes of it; a prefix is a FILTER the wire encodes, of
 * the right length for its family; an endpoint is a usable address with a port; a protocol
 * is a number 0-255.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pcpd-addr.h"
#include "pcpd-conf.h"

static void fuzz_address(const char *s) {
        struct in6_addr a, b;
        char buf[PCP_ADDR_STRLEN], again[PCP_ADDR_STRLEN];
        struct in_addr v4;
        bool ok = pcp_addr_from_string(s, &a);

        fuzz_check(ok == (inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &b) == 1), "'%s': %d", s, ok);
        if (!ok)
                return;
        pcp_addr_to_string(&a, buf);
        fuzz_check(pcp_addr_from_string(buf, &b) && pcp_addr_eq(&a, &b), "'%s' written as '%s' reads differently", s,
                   buf);
        fuzz_check(strcmp(pcp_addr_to_string(&b, again), buf) == 0, "writing '%s' is not stable", buf);
        fuzz_check(strlen(buf) < PCP_ADDR_STRLEN, "length");
}

static void fuzz_prefix(const char *s) {
        struct in6_addr a, b;
        uint8_t len = 0, len2 = 0;
        char buf[PCPD_PREFIX_STRLEN], again[PCPD_PREFIX_STRLEN];
        int r = pcpd_prefix_from_string(s, &a, &len);

        fuzz_check(r == 0 || r == -EINVAL, "r %d", r);
        if (r < 0)
                return;
        fuzz_check(len >= 1 && len <= 128, "length %u", len);
        if (pcp_addr_is_ipv4(&a))
                fuzz_check(len > 96, "IPv4 length %u", len);
        /* the address part is an address */
        {
                const char *slash = strchr(s, '/');
                g_autofree char *host = g_strndup(s, slash != NULL ? (gsize) (slash - s) : strlen(s));
                struct in6_addr h;

                fuzz_check(pcp_addr_from_string(host, &h) && pcp_addr_eq(&h, &a), "address part of '%s'", s);
        }
        /* a FILTER the wire takes */
        {
                static pcp_msg msg;
                static uint8_t out[PCP_MAX_MSG_LEN];
                size_t l;

                pcp_msg_init(&msg, false, PCP_OPCODE_MAP);
                msg.protocol = 6;
                msg.internal_port = 1;
                msg.n_filters = 1;
                msg.filters[0] = (pcp_filter) { .prefix_len = len, .remote_addr = a };
                fuzz_check(pcp_encode(&msg, out, sizeof(out), &l) == PCP_WIRE_OK, "'%s' is no FILTER the wire takes", s);
        }
        pcpd_prefix_to_string(&a, len, buf);
        fuzz_check(pcpd_prefix_from_string(buf, &b, &len2) == 0 && pcp_addr_eq(&a, &b) && len == len2,
                   "'%s' written as '%s' reads differently", s, buf);
        fuzz_check(strcmp(pcpd_prefix_to_string(&b, len2, again), buf) == 0, "writing '%s' is not stable", buf);
}

static void fuzz_endpoint(const char *s) {
        struct sockaddr_in6 sa, back;
        char addr[PCP_ADDR_STRLEN], buf[128], scope[16] = "";

        if (!pcpd_parse_endpoint(s, PCP_SERVER_PORT, &sa))
                return;
        fuzz_check(sa.sin6_family == AF_INET6 && sa.sin6_port != 0 && !pcp_addr_is_unspecified(&sa.sin6_addr),
                   "'%s': unusable", s);
        fuzz_check(strlen(s) <= 128, "a long text accepted");
        if (sa.sin6_scope_id != 0)
                snprintf(scope, sizeof(scope), "%%%u", sa.sin6_scope_id);
        pcp_addr_to_string(&sa.sin6_addr, addr);
        if (pcp_addr_is_ipv4(&sa.sin6_addr))
                snprintf(buf, sizeof(buf), "%s%s:%u", addr, scope, ntohs(sa.sin6_port));
        else
                snprintf(buf, sizeof(buf), "[%s%s]:%u", addr, scope, ntohs(sa.sin6_port));
        fuzz_check(pcpd_parse_endpoint(buf, PCP_SERVER_PORT, &back) && memcmp(&sa, &back, sizeof(sa)) == 0,
                   "'%s' written as '%s' reads differently", s, buf);
}

static void fuzz_protocol(const char *s) {
        int v = pcp_protocol_from_string(s);
        char num[8];
        const char *name;

        if (v < 0)
                return;
        fuzz_check(v <= 255, "protocol %d", v);
        snprintf(num, sizeof(num), "%d", v);
        fuzz_check(pcp_protocol_from_string(num) == v, "%d written as a number reads differently", v);
        name = pcp_protocol_to_string((uint8_t) v);
        if (name != NULL)
                fuzz_check(pcp_protocol_from_string(name) == v, "%d written as '%s' reads differently", v, name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *text = NULL;

        if (size < 1)
                return 0;
        text = g_strndup((const char *) data + 1, size - 1);
        switch (data[0] % 4) {
        case 0:
                fuzz_address(text);
                break;
        case 1:
                fuzz_prefix(text);
                break;
        case 2:
                fuzz_endpoint(text);
                break;
        default:
                fuzz_protocol(text);
                break;
        }
        return 0;
}
