/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: what pcpd-upnp reads from an IGD itself (daemon/pcpd-upnp-parse.c):
 * SSDP LOCATION and control URLs, the string out-arguments of GetExternalIPAddress and
 * GetSpecificPortMappingEntry, UPnP error codes, the description we send.
 *
 * The first octet picks the reader, the rest is its text (NUL-terminated here). Checked:
 * nothing crashes; an accepted value is exactly what the reader promises (canonical
 * numbers read back to the same text, addresses and URLs read back to the same value,
 * the LOCATION check accepts only its own sender); a refused value leaves the outputs
 * untouched. */

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "fuzz-common.h"
#include "pcpd-upnp-parse.h"

#define TEXT_CAP (PCPD_UPNP_MAX_URL + 64)

static void fmt_addr(const struct in6_addr *a, char *buf, size_t n) {
        if (IN6_IS_ADDR_V4MAPPED(a))
                inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t) n);
        else
                inet_ntop(AF_INET6, a, buf, (socklen_t) n);
}

static void check_url(const char *s) {
        static const int families[] = { AF_INET, AF_INET6 };

        for (size_t f = 0; f < 2; f++) {
                struct in6_addr a, sentinel, b, other;
                uint16_t port = 0xbeef, port2;
                char host[INET6_ADDRSTRLEN], again[128];
                int r;

                memset(&sentinel, 0xa5, sizeof(sentinel));
                a = sentinel;
                r = pcpd_upnp_parse_url(s, families[f], &a, &port);
                if (r < 0) {
                        fuzz_check(r == -EINVAL || r == -E2BIG || r == -EAFNOSUPPORT, "error %d", r);
                        fuzz_check(memcmp(&a, &sentinel, sizeof(a)) == 0 && port == 0xbeef, "refused URL changed outputs");
                        continue;
                }
                fuzz_check(strlen(s) <= PCPD_UPNP_MAX_URL, "accepted %zu octets", strlen(s));
                fuzz_check(strncasecmp(s, "http://", 7) == 0, "accepted a non-http URL");
                for (const char *p = s; *p; p++)
                        fuzz_check(*p > 0x20 && *p < 0x7f, "accepted octet 0x%02x", (unsigned char) *p);
                fuzz_check(port != 0, "port 0 accepted");
                fuzz_check((families[f] == AF_INET) == IN6_IS_ADDR_V4MAPPED(&a), "family mismatch");
                fuzz_check(strchr(s + 7, '@') == NULL || strchr(s + 7, '/') < strchr(s + 7, '@'),
                           "user info accepted");
                /* the same value from its canonical spelling */
                fmt_addr(&a, host, sizeof(host));
                snprintf(again, sizeof(again), families[f] == AF_INET ? "http://%s:%u/x" : "http://[%s]:%u/x", host,
                         port);
                fuzz_check(pcpd_upnp_parse_url(again, families[f], &b, &port2) == 0, "canonical form refused: %s",
                           again);
                fuzz_check(memcmp(&a, &b, sizeof(a)) == 0 && port == port2, "canonical form differs");
                /* the LOCATION check: only its own sender */
                r = pcpd_upnp_check_location(s, families[f], &a);
                fuzz_check(r == 0 || (r == -EINVAL && !pcpd_upnp_addr_is_unicast(&a)), "own sender refused: %d", r);
                other = a;
                other.s6_addr[15] ^= 1;
                fuzz_check(pcpd_upnp_check_location(s, families[f], &other) != 0, "another sender accepted");
                fuzz_check(pcpd_upnp_check_location(s, families[f], NULL) != 0, "no sender accepted");
        }
}

static void check_numbers(const char *s) {
        uint32_t v = 0xdeadbeef;
        uint16_t p = 0xbeef;
        char back[16];
        int r;

        r = pcpd_upnp_parse_u32(s, &v);
        if (r == 0) {
                snprintf(back, sizeof(back), "%u", v);
                fuzz_check(strcmp(back, s) == 0, "u32 %s read as %u", s, v);
        } else
                fuzz_check(v == 0xdeadbeef && (r == -EINVAL || r == -ERANGE), "refused u32 changed output");
        r = pcpd_upnp_parse_port(s, &p);
        if (r == 0) {
                snprintf(back, sizeof(back), "%u", p);
                fuzz_check(p != 0 && strcmp(back, s) == 0, "port %s read as %u", s, p);
        } else
                fuzz_check(p == 0xbeef, "refused port changed output");
}

static void check_ipv4(const char *s) {
        struct in6_addr a, b;
        char back[INET_ADDRSTRLEN];

        memset(&a, 0x5a, sizeof(a));
        if (pcpd_upnp_parse_ipv4(s, &a) < 0) {
                for (size_t i = 0; i < sizeof(a); i++)
                        fuzz_check(a.s6_addr[i] == 0x5a, "refused address changed output");
                return;
        }
        fuzz_check(IN6_IS_ADDR_V4MAPPED(&a), "not IPv4-mapped");
        inet_ntop(AF_INET, &a.s6_addr[12], back, sizeof(back));
        fuzz_check(pcpd_upnp_parse_ipv4(back, &b) == 0 && memcmp(&a, &b, sizeof(a)) == 0, "%s does not read back", back);
}

static void check_entry(char *s) {
        const char *f[5] = {};
        size_t n = 0;
        pcpd_upnp_entry e, sentinel;
        char *save = NULL;

        for (char *tok = strtok_r(s, "\n", &save); tok && n < 5; tok = strtok_r(NULL, "\n", &save))
                f[n++] = tok;
        memset(&sentinel, 0x77, sizeof(sentinel));
        e = sentinel;
        pcpd_upnp_entry_strings in = { f[0], f[1], f[2], f[3], f[4] };
        if (pcpd_upnp_parse_entry(&in, &e) < 0) {
                fuzz_check(memcmp(&e, &sentinel, sizeof(e)) == 0, "refused entry changed output");
                return;
        }
        fuzz_check(n == 5, "entry with %zu fields accepted", n);
        fuzz_check(e.internal_port != 0 && IN6_IS_ADDR_V4MAPPED(&e.internal_client), "bad entry accepted");
        fuzz_check(pcpd_upnp_entry_is_ours(&e, &e.internal_client, e.internal_port), "not ours to itself");
        fuzz_check(!pcpd_upnp_entry_is_ours(&e, &e.internal_client, (uint16_t) (e.internal_port + 1)),
                   "ours on another port");
}

static void check_misc(const char *s, const uint8_t *raw, size_t n) {
        bool b = false;
        int code = 0;
        uint32_t rnd = 0;
        uint16_t avoid = 0;

        if (pcpd_upnp_description_ok(s)) {
                fuzz_check(strlen(s) <= PCPD_UPNP_MAX_DESCRIPTION, "long description accepted");
                for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                        fuzz_check(*p >= 0x20 && *p != 0x7f, "control character accepted");
        }
        if (pcpd_upnp_parse_bool(s, &b) == 0)
                fuzz_check(strlen(s) <= 5, "long boolean accepted");
        memcpy(&code, raw, n < sizeof(code) ? n : sizeof(code));
        if (pcpd_upnp_add_verdict(code) != PCPD_UPNP_VERDICT_FAILED)
                fuzz_check(pcpd_upnp_error_code_name(code) != NULL, "verdict for an unnamed code %d", code);
        memcpy(&rnd, raw, n < sizeof(rnd) ? n : sizeof(rnd));
        if (n > 4)
                memcpy(&avoid, raw + 4, n - 4 < sizeof(avoid) ? n - 4 : sizeof(avoid));
        uint16_t c = pcpd_upnp_candidate_port(rnd, avoid);
        fuzz_check(c >= 1024 && c != avoid, "candidate %u (avoid %u)", c, avoid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char text[TEXT_CAP + 1];
        size_t n;

        if (size < 1)
                return 0;
        n = size - 1 < TEXT_CAP ? size - 1 : TEXT_CAP;
        memcpy(text, data + 1, n);
        text[n] = '\0';
        switch (data[0] % 5) {
        case 0:
                check_url(text);
                break;
        case 1:
                check_numbers(text);
                break;
        case 2:
                check_ipv4(text);
                break;
        case 3:
                check_entry(text);
                break;
        default:
                check_misc(text, data + 1, size - 1);
                break;
        }
        return 0;
}
