/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "pcpd-dhcp.h"

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static bool addr_is_v4mapped(const struct in6_addr *a) {
        static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        return memcmp(a->s6_addr, prefix, sizeof(prefix)) == 0;
}

/* Not a unicast destination: RFC 7291 §5 discards multicast and loopback addresses; the
 * unspecified ones and the IPv4 limited broadcast cannot be sent to either. */
static bool addr_discarded(const struct in6_addr *a) {
        if (addr_is_v4mapped(a)) {
                const uint8_t *v4 = &a->s6_addr[12];
                return v4[0] == 0 ||                 /* 0.0.0.0/8 "this network" */
                       v4[0] == 127 ||               /* loopback */
                       (v4[0] & 0xf0) == 0xe0 ||     /* 224.0.0.0/4 multicast */
                       (v4[0] == 255 && v4[1] == 255 && v4[2] == 255 && v4[3] == 255);
        }
        return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_MULTICAST(a);
}

static bool servers_have(const pcpd_dhcp_servers *s, const pcpd_dhcp_server *partial, const struct in6_addr *a) {
        for (size_t i = 0; i < s->n_servers; i++)
                for (size_t j = 0; j < s->servers[i].n_addrs; j++)
                        if (memcmp(&s->servers[i].addrs[j], a, sizeof(*a)) == 0)
                                return true;
        for (size_t j = 0; j < partial->n_addrs; j++)
                if (memcmp(&partial->addrs[j], a, sizeof(*a)) == 0)
                        return true;
        return false;
}

/* One list of the option (one server): filtered and added to s, or counted as left out. */
typedef struct server_builder {
        pcpd_dhcp_servers *s;
        pcpd_dhcp_server cur;
        bool over; /* this server is past PCPD_DHCP_MAX_SERVERS */
} server_builder;

static void builder_begin(server_builder *b) {
        memset(&b->cur, 0, sizeof(b->cur));
        b->over = b->s->n_servers >= PCPD_DHCP_MAX_SERVERS;
}

static void builder_add(server_builder *b, const struct in6_addr *a) {
        if (b->over)
                return;
        if (addr_discarded(a))
                b->s->n_discarded++;
        else if (servers_have(b->s, &b->cur, a))
                b->s->n_duplicates++;
        else if (b->cur.n_addrs >= PCP_SERVER_MAX_ADDRS)
                b->s->n_addrs_over_limit++;
        else
                b->cur.addrs[b->cur.n_addrs++] = *a;
}

static void builder_end(server_builder *b) {
        if (b->over)
                b->s->n_servers_over_limit++;
        else if (b->cur.n_addrs == 0)
                b->s->n_servers_empty++;
        else
                b->s->servers[b->s->n_servers++] = b->cur;
}

pcpd_dhcp_error pcpd_dhcp4_parse_octets(const uint8_t *buf, size_t len, pcpd_dhcp_servers *ret) {
        pcpd_dhcp_servers s = {};
        server_builder b = { .s = &s };
        size_t i = 0;

        if (buf == NULL || len == 0)
                return PCPD_DHCP_ERR_EMPTY;
        if (len > PCPD_DHCP4_MAX_OCTETS)
                return PCPD_DHCP_ERR_TOO_LONG;
        /* the whole option is checked before anything is kept: one bad list refuses it all
         * (see the header for why) */
        while (i < len) {
                size_t list_len = buf[i];

                if (list_len == 0 || list_len % 4 != 0)
                        return PCPD_DHCP_ERR_LIST_LENGTH;
                if (list_len > len - i - 1)
                        return PCPD_DHCP_ERR_TRUNCATED;
                i += 1 + list_len;
        }
        for (i = 0; i < len;) {
                size_t list_len = buf[i++];

                builder_begin(&b);
                for (size_t j = 0; j < list_len; j += 4) {
                        struct in6_addr a = { .s6_addr = { [10] = 0xff, [11] = 0xff } };

                        memcpy(&a.s6_addr[12], &buf[i + j], 4);
                        builder_add(&b, &a);
                }
                builder_end(&b);
                i += list_len;
        }
        if (ret != NULL)
                *ret = s;
        return PCPD_DHCP_OK;
}

/* the length of text, or PCPD_DHCP_MAX_TEXT + 1 if longer (never reads past that) */
static size_t text_len(const char *text) {
        return strnlen(text, PCPD_DHCP_MAX_TEXT + 1);
}

static bool only_blanks(const char *text) {
        for (; *text != '\0'; text++)
                if (!is_blank(*text))
                        return false;
        return true;
}

pcpd_dhcp_error pcpd_dhcp4_parse_decimal(const char *text, pcpd_dhcp_servers *ret) {
        uint8_t buf[PCPD_DHCP4_MAX_OCTETS];
        size_t n = 0;
        const char *p;

        if (text == NULL || only_blanks(text))
                return PCPD_DHCP_ERR_EMPTY;
        if (text_len(text) > PCPD_DHCP_MAX_TEXT)
                return PCPD_DHCP_ERR_TOO_LONG;
        for (p = text; *p != '\0';) {
                unsigned v = 0, digits = 0;

                if (is_blank(*p)) {
                        p++;
                        continue;
                }
                for (; *p >= '0' && *p <= '9'; p++) {
                        if (++digits > 3)
                                return PCPD_DHCP_ERR_SYNTAX;
                        v = v * 10 + (unsigned) (*p - '0');
                }
                if (digits == 0 || v > 255 || (*p != '\0' && !is_blank(*p)))
                        return PCPD_DHCP_ERR_SYNTAX;
                if (n >= sizeof(buf))
                        return PCPD_DHCP_ERR_TOO_LONG;
                buf[n++] = (uint8_t) v;
        }
        return pcpd_dhcp4_parse_octets(buf, n, ret);
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* "4:c0:a8:4d:1": octets of one or two hex digits, single ':' between them, nothing else */
static pcpd_dhcp_error decode_hex(const char *text, uint8_t *buf, size_t cap, size_t *ret_len) {
        size_t n = 0;
        const char *p = text;

        for (;;) {
                int hi = hex_digit(p[0]), lo;

                if (hi < 0)
                        return PCPD_DHCP_ERR_SYNTAX;
                if (n >= cap)
                        return PCPD_DHCP_ERR_TOO_LONG;
                lo = hex_digit(p[1]);
                if (lo >= 0) {
                        buf[n++] = (uint8_t) (hi << 4 | lo);
                        p += 2;
                } else {
                        buf[n++] = (uint8_t) hi;
                        p += 1;
                }
                if (*p == '\0')
                        break;
                if (*p != ':')
                        return PCPD_DHCP_ERR_SYNTAX;
                p++;
        }
        *ret_len = n;
        return PCPD_DHCP_OK;
}

/* dhclient's text form (pretty_escape() with emit_quotes off): printable ASCII as is, one of
 * " ' $ ` \ | & after a backslash, other octets as a backslash and three octal digits */
static pcpd_dhcp_error decode_dhclient_text(const char *text, uint8_t *buf, size_t cap, size_t *ret_len) {
        size_t n = 0;

        for (const char *p = text; *p != '\0'; p++) {
                unsigned char c = (unsigned char) *p;

                if (n >= cap)
                        return PCPD_DHCP_ERR_TOO_LONG;
                if (c < 0x20 || c > 0x7e)
                        return PCPD_DHCP_ERR_SYNTAX;
                if (c != '\\') {
                        buf[n++] = c;
                        continue;
                }
                p++;
                if (*p != '\0' && strchr("\"'$`\\|&", *p) != NULL) {
                        buf[n++] = (uint8_t) *p;
                        continue;
                }
                if (p[0] >= '0' && p[0] <= '3' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7') {
                        buf[n++] = (uint8_t) ((p[0] - '0') << 6 | (p[1] - '0') << 3 | (p[2] - '0'));
                        p += 2;
                        continue;
                }
                return PCPD_DHCP_ERR_SYNTAX;
        }
        *ret_len = n;
        return n > 0 ? PCPD_DHCP_OK : PCPD_DHCP_ERR_EMPTY;
}

pcpd_dhcp_error pcpd_dhcp4_parse_unknown(const char *text, pcpd_dhcp_servers *ret) {
        uint8_t buf[PCPD_DHCP4_MAX_OCTETS + 1];
        size_t n = 0;
        pcpd_dhcp_error r;

        if (text == NULL || *text == '\0')
                return PCPD_DHCP_ERR_EMPTY;
        if (text_len(text) > PCPD_DHCP_MAX_TEXT)
                return PCPD_DHCP_ERR_TOO_LONG;
        /* dhclient prints hex whenever an octet is not printable, which a List-Length below
         * 32 always is; the text form needs a printable List-Length (32..124), and eight or
         * more addresses made only of the octets of '0'-'9', 'A'-'F', 'a'-'f' and ':' to
         * look like hex: taken as hex */
        if (strspn(text, "0123456789abcdefABCDEF:") == strlen(text)) {
                r = decode_hex(text, buf, PCPD_DHCP4_MAX_OCTETS, &n);
                return r != PCPD_DHCP_OK ? r : pcpd_dhcp4_parse_octets(buf, n, ret);
        }
        r = decode_dhclient_text(text, buf, PCPD_DHCP4_MAX_OCTETS, &n);
        if (r != PCPD_DHCP_OK)
                return r;
        r = pcpd_dhcp4_parse_octets(buf, n, ret);
        if (r == PCPD_DHCP_ERR_TRUNCATED) {
                /* dhclient drops a trailing NUL from the text form: an address ending in .0 */
                buf[n] = 0;
                if (pcpd_dhcp4_parse_octets(buf, n + 1, ret) == PCPD_DHCP_OK)
                        return PCPD_DHCP_OK;
        }
        return r;
}

pcpd_dhcp_error pcpd_dhcp6_parse(const char *text, pcpd_dhcp_servers *ret) {
        pcpd_dhcp_servers s = {};
        server_builder b = { .s = &s };
        const char *p;

        if (text == NULL || only_blanks(text))
                return PCPD_DHCP_ERR_EMPTY;
        if (text_len(text) > PCPD_DHCP_MAX_TEXT)
                return PCPD_DHCP_ERR_TOO_LONG;
        /* every word is checked before anything is kept */
        builder_begin(&b);
        for (p = text; *p != '\0';) {
                char word[INET6_ADDRSTRLEN];
                struct in6_addr a;
                size_t n = 0;

                if (is_blank(*p)) {
                        p++;
                        continue;
                }
                while (p[n] != '\0' && !is_blank(p[n]))
                        n++;
                if (n >= sizeof(word))
                        return PCPD_DHCP_ERR_ADDRESS;
                memcpy(word, p, n);
                word[n] = '\0';
                if (inet_pton(AF_INET6, word, &a) != 1)
                        return PCPD_DHCP_ERR_ADDRESS;
                builder_add(&b, &a);
                p += n;
        }
        builder_end(&b);
        if (ret != NULL)
                *ret = s;
        return PCPD_DHCP_OK;
}

pcpd_dhcp_error pcpd_dhcp_parse_options(int family, pcpd_dhcp_lookup_fn lookup, void *userdata,
                                        pcpd_dhcp_servers *ret, const char **ret_key) {
        const char *key = NULL, *v = NULL;
        pcpd_dhcp_error r;

        if (lookup != NULL) {
                if (family == AF_INET) {
                        /* both at once cannot come from one dhclient; the defined one wins */
                        v = lookup(userdata, key = PCPD_DHCP4_KEY);
                        if (v == NULL)
                                v = lookup(userdata, key = PCPD_DHCP4_KEY_UNKNOWN);
                } else if (family == AF_INET6)
                        v = lookup(userdata, key = PCPD_DHCP6_KEY);
        }
        if (v == NULL) {
                if (ret != NULL)
                        *ret = (pcpd_dhcp_servers) {};
                if (ret_key != NULL)
                        *ret_key = NULL;
                return PCPD_DHCP_OK;
        }
        if (family == AF_INET6)
                r = pcpd_dhcp6_parse(v, ret);
        else if (strcmp(key, PCPD_DHCP4_KEY) == 0)
                r = pcpd_dhcp4_parse_decimal(v, ret);
        else
                r = pcpd_dhcp4_parse_unknown(v, ret);
        if (r == PCPD_DHCP_OK && ret_key != NULL)
                *ret_key = key;
        return r;
}

pcpd_dhcp_request_state pcpd_dhcp_request_state_get(int family, pcpd_dhcp_lookup_fn lookup, void *userdata,
                                                    size_t n_options) {
        const char *requested;

        if (lookup == NULL || n_options == 0)
                return PCPD_DHCP_NO_LEASE;
        if (family == AF_INET) {
                if (lookup(userdata, PCPD_DHCP4_KEY) != NULL || lookup(userdata, PCPD_DHCP4_KEY_UNKNOWN) != NULL)
                        return PCPD_DHCP_RECEIVED;
                requested = lookup(userdata, PCPD_DHCP4_KEY_REQUESTED);
        } else {
                if (lookup(userdata, PCPD_DHCP6_KEY) != NULL)
                        return PCPD_DHCP_RECEIVED;
                requested = lookup(userdata, PCPD_DHCP6_KEY_REQUESTED);
        }
        /* dhclient sets requested_<option>=1 for each option of its request list; NetworkManager's
         * internal client does the same for its own fixed list, which has neither option */
        return requested != NULL && strcmp(requested, "1") == 0 ? PCPD_DHCP_NOT_OFFERED : PCPD_DHCP_NOT_REQUESTED;
}

const char *pcpd_dhcp_request_state_to_string(pcpd_dhcp_request_state s) {
        static const char *const names[_PCPD_DHCP_REQUEST_STATE_MAX] = {
                [PCPD_DHCP_NO_LEASE] = "no-lease",
                [PCPD_DHCP_NOT_REQUESTED] = "not-requested",
                [PCPD_DHCP_NOT_OFFERED] = "not-offered",
                [PCPD_DHCP_RECEIVED] = "received",
        };
        return (unsigned) s < _PCPD_DHCP_REQUEST_STATE_MAX ? names[s] : NULL;
}

int pcpd_dhcp4_encode(const pcpd_dhcp_servers *s, uint8_t *buf, size_t cap, size_t *ret_len) {
        size_t n = 0;

        if (s == NULL || (buf == NULL && cap > 0))
                return -EINVAL;
        for (size_t i = 0; i < s->n_servers; i++) {
                const pcpd_dhcp_server *v = &s->servers[i];

                if (v->n_addrs == 0 || v->n_addrs > PCP_SERVER_MAX_ADDRS)
                        return -EINVAL;
                if (cap - n < 1 + 4 * v->n_addrs)
                        return -ENOBUFS;
                buf[n++] = (uint8_t) (4 * v->n_addrs);
                for (size_t j = 0; j < v->n_addrs; j++) {
                        if (!addr_is_v4mapped(&v->addrs[j]))
                                return -EINVAL;
                        memcpy(&buf[n], &v->addrs[j].s6_addr[12], 4);
                        n += 4;
                }
        }
        if (ret_len != NULL)
                *ret_len = n;
        return 0;
}

size_t pcpd_dhcp_server_endpoints(const pcpd_dhcp_server *s, unsigned ifindex,
                                  struct sockaddr_in6 out[static PCP_SERVER_MAX_ADDRS]) {
        size_t n = s->n_addrs <= PCP_SERVER_MAX_ADDRS ? s->n_addrs : PCP_SERVER_MAX_ADDRS;

        for (size_t i = 0; i < n; i++) {
                out[i] = (struct sockaddr_in6) {
                        .sin6_family = AF_INET6,
                        .sin6_port = htons(PCP_SERVER_PORT),
                        .sin6_addr = s->addrs[i],
                };
                if (IN6_IS_ADDR_LINKLOCAL(&s->addrs[i]))
                        out[i].sin6_scope_id = ifindex;
        }
        return n;
}

bool pcpd_dhcp_servers_equal(const pcpd_dhcp_servers *a, const pcpd_dhcp_servers *b) {
        if (a->n_servers != b->n_servers)
                return false;
        for (size_t i = 0; i < a->n_servers; i++) {
                if (a->servers[i].n_addrs != b->servers[i].n_addrs)
                        return false;
                if (memcmp(a->servers[i].addrs, b->servers[i].addrs, a->servers[i].n_addrs * sizeof(struct in6_addr)) != 0)
                        return false;
        }
        return true;
}

const char *pcpd_dhcp_error_to_string(pcpd_dhcp_error e) {
        static const char *const msgs[_PCPD_DHCP_ERR_MAX] = {
                [PCPD_DHCP_OK] = "The option was read.",
                [PCPD_DHCP_ERR_EMPTY] = "The option has no value.",
                [PCPD_DHCP_ERR_TOO_LONG] = "The option is longer than pcpd accepts (4096 characters, 1020 octets).",
                [PCPD_DHCP_ERR_SYNTAX] = "The option is not in the form NetworkManager gives it (octets as decimal "
                                         "numbers, or hex octets separated by ':').",
                [PCPD_DHCP_ERR_ADDRESS] = "The option holds a word that is not an IPv6 address.",
                [PCPD_DHCP_ERR_LIST_LENGTH] = "The option has a list whose length is not a non-zero multiple of 4 "
                                              "(RFC 7291): is the DHCP server sending plain addresses without the "
                                              "List-Length octet?",
                [PCPD_DHCP_ERR_TRUNCATED] = "The option ends in the middle of a list (RFC 7291): is the DHCP server "
                                            "sending plain addresses without the List-Length octet?",
        };
        return (unsigned) e < _PCPD_DHCP_ERR_MAX ? msgs[e] : NULL;
}
