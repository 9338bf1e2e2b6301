/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcp-wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline uint16_t rd16(const uint8_t *p) {
        return (uint16_t) ((uint16_t) p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static inline void wr16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

static inline void wr32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static inline size_t pad4(size_t n) {
        return (n + 3u) & ~(size_t) 3u;
}

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool pcp_addr_is_ipv4(const struct in6_addr *a) {
        return memcmp(a->s6_addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0;
}

bool pcp_addr_to_ipv4(const struct in6_addr *a, struct in_addr *ret) {
        if (!pcp_addr_is_ipv4(a))
                return false;
        memcpy(&ret->s_addr, a->s6_addr + 12, 4);
        return true;
}

void pcp_addr_from_ipv4(const struct in_addr *v4, struct in6_addr *ret) {
        memcpy(ret->s6_addr, v4mapped_prefix, sizeof(v4mapped_prefix));
        memcpy(ret->s6_addr + 12, &v4->s_addr, 4);
}

bool pcp_addr_is_unspecified(const struct in6_addr *a) {
        static const uint8_t zero[16];
        if (memcmp(a->s6_addr, zero, 16) == 0)
                return true;
        return pcp_addr_is_ipv4(a) && memcmp(a->s6_addr + 12, zero, 4) == 0;
}

char *pcp_addr_to_string(const struct in6_addr *a, char buf[static PCP_ADDR_STRLEN]) {
        struct in_addr v4;

        if (pcp_addr_to_ipv4(a, &v4))
                inet_ntop(AF_INET, &v4, buf, PCP_ADDR_STRLEN);
        else
                inet_ntop(AF_INET6, a, buf, PCP_ADDR_STRLEN);
        return buf;
}

bool pcp_addr_from_string(const char *s, struct in6_addr *ret) {
        struct in_addr v4;
        struct in6_addr v6;

        if (s == NULL)
                return false;
        if (inet_pton(AF_INET, s, &v4) == 1) {
                pcp_addr_from_ipv4(&v4, ret);
                return true;
        }
        if (inet_pton(AF_INET6, s, &v6) == 1) {
                *ret = v6;
                return true;
        }
        return false;
}

/* ---- names ---- */

static const char *const result_names[_PCP_RESULT_MAX] = {
        [PCP_RESULT_SUCCESS] = "SUCCESS",
        [PCP_RESULT_UNSUPP_VERSION] = "UNSUPP_VERSION",
        [PCP_RESULT_NOT_AUTHORIZED] = "NOT_AUTHORIZED",
        [PCP_RESULT_MALFORMED_REQUEST] = "MALFORMED_REQUEST",
        [PCP_RESULT_UNSUPP_OPCODE] = "UNSUPP_OPCODE",
        [PCP_RESULT_UNSUPP_OPTION] = "UNSUPP_OPTION",
        [PCP_RESULT_MALFORMED_OPTION] = "MALFORMED_OPTION",
        [PCP_RESULT_NETWORK_FAILURE] = "NETWORK_FAILURE",
        [PCP_RESULT_NO_RESOURCES] = "NO_RESOURCES",
        [PCP_RESULT_UNSUPP_PROTOCOL] = "UNSUPP_PROTOCOL",
        [PCP_RESULT_USER_EX_QUOTA] = "USER_EX_QUOTA",
        [PCP_RESULT_CANNOT_PROVIDE_EXTERNAL] = "CANNOT_PROVIDE_EXTERNAL",
        [PCP_RESULT_ADDRESS_MISMATCH] = "ADDRESS_MISMATCH",
        [PCP_RESULT_EXCESSIVE_REMOTE_PEERS] = "EXCESSIVE_REMOTE_PEERS",
};

const char *pcp_result_to_string(uint8_t result) {
        return result < _PCP_RESULT_MAX ? result_names[result] : NULL;
}

int pcp_result_from_string(const char *s) {
        if (s == NULL)
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(result_names); i++)
                if (strcmp(result_names[i], s) == 0)
                        return (int) i;
        return -1;
}

pcp_result_class pcp_result_classify(uint8_t result) {
        switch (result) {
        case PCP_RESULT_SUCCESS:
                return PCP_RESULT_CLASS_SUCCESS;
        /* RFC 6887 §7.4 names exactly three short lifetime errors. CANNOT_PROVIDE_EXTERNAL
         * is neither ("the error lifetime depends on the reason for the failure"): it is
         * usually a port that is taken right now, so it counts as short and the server's
         * lifetime says when to retry. EXCESSIVE_REMOTE_PEERS is a long lifetime error. */
        case PCP_RESULT_NETWORK_FAILURE:
        case PCP_RESULT_NO_RESOURCES:
        case PCP_RESULT_USER_EX_QUOTA:
        case PCP_RESULT_CANNOT_PROVIDE_EXTERNAL:
                return PCP_RESULT_CLASS_SHORT_ERROR;
        default:
                return PCP_RESULT_CLASS_LONG_ERROR;
        }
}

static const char *const natpmp_result_names[_NATPMP_RESULT_MAX] = {
        [NATPMP_RESULT_SUCCESS] = "SUCCESS",
        [NATPMP_RESULT_UNSUPP_VERSION] = "UNSUPP_VERSION",
        [NATPMP_RESULT_NOT_AUTHORIZED] = "NOT_AUTHORIZED",
        [NATPMP_RESULT_NETWORK_FAILURE] = "NETWORK_FAILURE",
        [NATPMP_RESULT_OUT_OF_RESOURCES] = "OUT_OF_RESOURCES",
        [NATPMP_RESULT_UNSUPP_OPCODE] = "UNSUPP_OPCODE",
};

const char *natpmp_result_to_string(uint16_t result) {
        return result < _NATPMP_RESULT_MAX ? natpmp_result_names[result] : NULL;
}

uint8_t natpmp_result_to_pcp(uint16_t result) {
        switch (result) {
        case NATPMP_RESULT_SUCCESS:
                return PCP_RESULT_SUCCESS;
        case NATPMP_RESULT_UNSUPP_VERSION:
                return PCP_RESULT_UNSUPP_VERSION;
        case NATPMP_RESULT_NOT_AUTHORIZED:
                return PCP_RESULT_NOT_AUTHORIZED;
        case NATPMP_RESULT_NETWORK_FAILURE:
                return PCP_RESULT_NETWORK_FAILURE;
        case NATPMP_RESULT_OUT_OF_RESOURCES:
                return PCP_RESULT_NO_RESOURCES;
        case NATPMP_RESULT_UNSUPP_OPCODE:
                return PCP_RESULT_UNSUPP_OPCODE;
        default:
                return PCP_RESULT_MALFORMED_REQUEST;
        }
}

const char *pcp_opcode_to_string(uint8_t opcode) {
        switch (opcode) {
        case PCP_OPCODE_ANNOUNCE:
                return "announce";
        case PCP_OPCODE_MAP:
                return "map";
        case PCP_OPCODE_PEER:
                return "peer";
        default:
                return NULL;
        }
}

const char *pcp_option_to_string(uint8_t code) {
        switch (code) {
        case PCP_OPTION_THIRD_PARTY:
                return "THIRD_PARTY";
        case PCP_OPTION_PREFER_FAILURE:
                return "PREFER_FAILURE";
        case PCP_OPTION_FILTER:
                return "FILTER";
        case PCP_OPTION_DESCRIPTION:
                return "DESCRIPTION";
        case PCP_OPTION_PREFIX64:
                return "PREFIX64";
        case PCP_OPTION_PORT_SET:
                return "PORT_SET";
        default:
                return NULL;
        }
}

static const char *const wire_error_names[_PCP_WIRE_ERR_MAX] = {
        [PCP_WIRE_OK] = "ok",
        [PCP_WIRE_ERR_SHORT] = "message too short",
        [PCP_WIRE_ERR_LONG] = "message longer than 1100 octets",
        [PCP_WIRE_ERR_ALIGN] = "message length not a multiple of 4",
        [PCP_WIRE_ERR_VERSION] = "unsupported version",
        [PCP_WIRE_ERR_DIRECTION] = "R bit does not match the expected direction",
        [PCP_WIRE_ERR_OPCODE] = "unknown opcode",
        [PCP_WIRE_ERR_RESULT] = "unknown result code",
        [PCP_WIRE_ERR_ADDRESS] = "invalid address field",
        [PCP_WIRE_ERR_OPTION_TRUNCATED] = "option runs past the end of the message",
        [PCP_WIRE_ERR_OPTION_LENGTH] = "option has the wrong length",
        [PCP_WIRE_ERR_OPTION_OPCODE] = "option not allowed with this opcode",
        [PCP_WIRE_ERR_OPTION_DUPLICATE] = "non-repeatable option repeated",
        [PCP_WIRE_ERR_OPTION_VALUE] = "option has an invalid value",
        [PCP_WIRE_ERR_OPTION_UNKNOWN_MANDATORY] = "unknown mandatory option",
        [PCP_WIRE_ERR_LIMIT] = "too many options",
        [PCP_WIRE_ERR_NOT_NATPMP] = "not a NAT-PMP message",
        [PCP_WIRE_ERR_BUFFER] = "output buffer too small",
        [PCP_WIRE_ERR_INVALID] = "invalid message field",
};

const char *pcp_wire_error_to_string(pcp_wire_error e) {
        if ((unsigned) e < _PCP_WIRE_ERR_MAX)
                return wire_error_names[e];
        return "unknown error";
}

static const struct {
        const char *name;
        uint8_t number;
} protocol_names[] = {
        { "all", 0 },   { "icmp", 1 },  { "tcp", 6 },     { "udp", 17 },
        { "dccp", 33 }, { "icmpv6", 58 }, { "sctp", 132 }, { "udplite", 136 },
};

int pcp_protocol_from_string(const char *s) {
        char *end;
        unsigned long v;

        /* a bound, whatever the caller read it from: leading zeros are taken ("017"), but a
         * name or number is never longer than this */
        if (s == NULL || *s == '\0' || strnlen(s, PCP_PROTOCOL_STRING_MAX + 1) > PCP_PROTOCOL_STRING_MAX)
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(protocol_names); i++)
                if (strcasecmp(protocol_names[i].name, s) == 0)
                        return protocol_names[i].number;
        if (s[0] < '0' || s[0] > '9')
                return -1;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0' || v > 255)
                return -1;
        return (int) v;
}

const char *pcp_protocol_to_string(uint8_t protocol) {
        for (size_t i = 0; i < ELEMENTSOF(protocol_names); i++)
                if (protocol_names[i].number == protocol)
                        return protocol_names[i].name;
        return NULL;
}

/* ---- PCP ---- */

void pcp_msg_init(pcp_msg *msg, bool response, uint8_t opcode) {
        /* everything before the option arrays; the arrays are only read up to their counts */
        memset(msg, 0, offsetof(pcp_msg, filters));
        msg->version = PCP_VERSION;
        msg->response = response;
        msg->opcode = opcode;
        msg->n_prefix64 = 0;
        msg->n_unknown = 0;
}

static size_t body_len(uint8_t opcode) {
        switch (opcode) {
        case PCP_OPCODE_MAP:
                return PCP_MAP_BODY_LEN;
        case PCP_OPCODE_PEER:
                return PCP_PEER_BODY_LEN;
        default:
                return 0;
        }
}

/* True if all 8 octets at p are in 0x01-0x7f: a zero octet borrows and sets its top bit,
 * an octet >= 0x80 has it set already. */
static inline bool ascii8(const uint8_t *p) {
        uint64_t w;

        memcpy(&w, p, 8);
        return (((w - UINT64_C(0x0101010101010101)) | w) & UINT64_C(0x8080808080808080)) == 0;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF) without NUL. */
static bool utf8_valid(const uint8_t *s, size_t n) {
        size_t i = 0;

        while (i < n) {
                uint8_t c;
                size_t k;
                uint32_t cp;

                if (n - i >= 8 && ascii8(s + i)) {
                        i += 8;
                        continue;
                }
                c = s[i];
                if (c == 0)
                        return false;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0) {
                        k = 1;
                        cp = c & 0x1f;
                } else if ((c & 0xf0) == 0xe0) {
                        k = 2;
                        cp = c & 0x0f;
                } else if ((c & 0xf8) == 0xf0) {
                        k = 3;
                        cp = c & 0x07;
                } else
                        return false;
                if (n - i <= k)
                        return false;
                for (size_t j = 1; j <= k; j++) {
                        if ((s[i + j] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + j] & 0x3f);
                }
                if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
                    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += k + 1;
        }
        return true;
}

static bool filter_valid(const pcp_filter *f) {
        if (f->prefix_len > 128)
                return false;
        /* an IPv4 filter counts its prefix on top of the 96 bits of the mapped prefix */
        if (pcp_addr_is_ipv4(&f->remote_addr) && f->prefix_len != 0 && f->prefix_len < 96)
                return false;
        return true;
}

/* RFC 7225 §4: the prefix length is in octets on the wire, one of these. */
static bool prefix64_len_valid(uint8_t octets) {
        return octets == 4 || octets == 5 || octets == 6 || octets == 7 || octets == 8 || octets == 12;
}

#define PREFIX64_V4_ENTRY_LEN 6 /* IPv4 prefix length (2) + IPv4 address (4) */

static size_t prefix64_wire_len(const pcp_prefix64 *p) {
        size_t n = 2 + (size_t) (p->prefix_len / 8) + p->suffix_len;
        if (p->has_ipv4_list)
                n += 2 + (size_t) p->ipv4_prefix_count * PREFIX64_V4_ENTRY_LEN;
        return n;
}

bool pcp_prefix64_get_ipv4_prefix(const pcp_prefix64 *p, size_t i, struct in_addr *ret_addr,
                                  uint8_t *ret_len) {
        const uint8_t *e;

        if (p == NULL || i >= p->ipv4_prefix_count || p->ipv4_prefixes == NULL)
                return false;
        e = p->ipv4_prefixes + i * PREFIX64_V4_ENTRY_LEN;
        if (ret_len != NULL)
                *ret_len = (uint8_t) rd16(e);
        if (ret_addr != NULL)
                memcpy(&ret_addr->s_addr, e + 2, 4);
        return true;
}

static bool ipv4_prefixes_valid(const uint8_t *list, size_t count) {
        for (size_t i = 0; i < count; i++)
                if (rd16(list + i * PREFIX64_V4_ENTRY_LEN) > 32)
                        return false;
        return true;
}

static pcp_wire_error decode_prefix64(const uint8_t *d, uint16_t len, pcp_prefix64 *p) {
        size_t octets, suffix, fixed;

        if (len < 2)
                return PCP_WIRE_ERR_OPTION_LENGTH;
        if (rd16(d) > 12 || !prefix64_len_valid((uint8_t) rd16(d)))
                return PCP_WIRE_ERR_OPTION_VALUE;
        octets = rd16(d);
        /* the suffix fills the 96 bits that are not the embedded IPv4 address */
        suffix = 12 - octets;
        fixed = 2 + octets + suffix;
        if (len < fixed || (len > fixed && len < fixed + 2))
                return PCP_WIRE_ERR_OPTION_LENGTH;
        memset(&p->prefix, 0, sizeof(p->prefix));
        memcpy(p->prefix.s6_addr, d + 2, octets);
        p->prefix_len = (uint8_t) (octets * 8);
        p->suffix_len = (uint8_t) suffix;
        memset(p->suffix, 0, sizeof(p->suffix));
        memcpy(p->suffix, d + 2 + octets, suffix);
        p->has_ipv4_list = len > fixed;
        p->ipv4_prefix_count = 0;
        p->ipv4_prefixes = NULL;
        if (!p->has_ipv4_list)
                return PCP_WIRE_OK;
        p->ipv4_prefix_count = rd16(d + fixed);
        if (len != fixed + 2 + (size_t) p->ipv4_prefix_count * PREFIX64_V4_ENTRY_LEN)
                return PCP_WIRE_ERR_OPTION_LENGTH;
        if (p->ipv4_prefix_count > 0)
                p->ipv4_prefixes = d + fixed + 2;
        if (!ipv4_prefixes_valid(p->ipv4_prefixes, p->ipv4_prefix_count))
                return PCP_WIRE_ERR_OPTION_VALUE;
        return PCP_WIRE_OK;
}

static bool prefix64_valid(const pcp_prefix64 *p) {
        if (p->prefix_len % 8 != 0 || !prefix64_len_valid(p->prefix_len / 8))
                return false;
        if (p->suffix_len != 12 - p->prefix_len / 8)
                return false;
        if (!p->has_ipv4_list && p->ipv4_prefix_count > 0)
                return false;
        if (p->ipv4_prefix_count > 0 && p->ipv4_prefixes == NULL)
                return false;
        return ipv4_prefixes_valid(p->ipv4_prefixes, p->ipv4_prefix_count);
}

/* Which opcodes each known option may appear in. */
static bool option_allowed(uint8_t code, uint8_t opcode) {
        switch (code) {
        case PCP_OPTION_THIRD_PARTY:
        case PCP_OPTION_DESCRIPTION:
                return opcode == PCP_OPCODE_MAP || opcode == PCP_OPCODE_PEER;
        case PCP_OPTION_PREFER_FAILURE:
        case PCP_OPTION_FILTER:
        case PCP_OPTION_PORT_SET:
                return opcode == PCP_OPCODE_MAP;
        case PCP_OPTION_PREFIX64:
                return opcode == PCP_OPCODE_MAP || opcode == PCP_OPCODE_ANNOUNCE;
        default:
                return true;
        }
}

static pcp_wire_error decode_option(uint8_t code, const uint8_t *d, uint16_t len, pcp_msg *msg) {
        if (!option_allowed(code, msg->opcode))
                return PCP_WIRE_ERR_OPTION_OPCODE;

        switch (code) {
        case PCP_OPTION_THIRD_PARTY:
                if (len != 16)
                        return PCP_WIRE_ERR_OPTION_LENGTH;
                if (msg->options & PCP_HAS_THIRD_PARTY)
                        return PCP_WIRE_ERR_OPTION_DUPLICATE;
                memcpy(&msg->third_party, d, 16);
                msg->options |= PCP_HAS_THIRD_PARTY;
                return PCP_WIRE_OK;

        case PCP_OPTION_PREFER_FAILURE:
                if (len != 0)
                        return PCP_WIRE_ERR_OPTION_LENGTH;
                if (msg->options & PCP_HAS_PREFER_FAILURE)
                        return PCP_WIRE_ERR_OPTION_DUPLICATE;
                msg->options |= PCP_HAS_PREFER_FAILURE;
                return PCP_WIRE_OK;

        case PCP_OPTION_FILTER: {
                pcp_filter *f;

                if (len != 20)
                        return PCP_WIRE_ERR_OPTION_LENGTH;
                if (msg->n_filters >= PCP_MAX_FILTERS)
                        return PCP_WIRE_ERR_LIMIT;
                f = &msg->filters[msg->n_filters];
                f->prefix_len = d[1];
                f->remote_port = rd16(d + 2);
                memcpy(&f->remote_addr, d + 4, 16);
                if (!filter_valid(f))
                        return PCP_WIRE_ERR_OPTION_VALUE;
                msg->n_filters++;
                return PCP_WIRE_OK;
        }

        case PCP_OPTION_DESCRIPTION:
                if (len > PCP_MAX_DESCRIPTION_LEN)
                        return PCP_WIRE_ERR_OPTION_LENGTH;
                if (msg->options & PCP_HAS_DESCRIPTION)
                        return PCP_WIRE_ERR_OPTION_DUPLICATE;
                if (!utf8_valid(d, len))
                        return PCP_WIRE_ERR_OPTION_VALUE;
                msg->description = (const char *) d;
                msg->description_len = len;
                msg->options |= PCP_HAS_DESCRIPTION;
                return PCP_WIRE_OK;

        case PCP_OPTION_PREFIX64: {
                pcp_wire_error r;

                if (msg->n_prefix64 >= PCP_MAX_PREFIX64)
                        return PCP_WIRE_ERR_LIMIT;
                r = decode_prefix64(d, len, &msg->prefix64[msg->n_prefix64]);
                if (r != PCP_WIRE_OK)
                        return r;
                msg->n_prefix64++;
                return PCP_WIRE_OK;
        }

        case PCP_OPTION_PORT_SET:
                if (len != 5)
                        return PCP_WIRE_ERR_OPTION_LENGTH;
                if (msg->options & PCP_HAS_PORT_SET)
                        return PCP_WIRE_ERR_OPTION_DUPLICATE;
                msg->port_set.size = rd16(d);
                msg->port_set.first_internal_port = rd16(d + 2);
                msg->port_set.parity = (d[4] & 0x01) != 0;
                if (msg->port_set.size == 0)
                        return PCP_WIRE_ERR_OPTION_VALUE;
                msg->options |= PCP_HAS_PORT_SET;
                return PCP_WIRE_OK;

        default:
                /* a server must refuse what it cannot process; a client ignores it */
                if (code < 128 && !msg->response)
                        return PCP_WIRE_ERR_OPTION_UNKNOWN_MANDATORY;
                if (msg->n_unknown >= PCP_MAX_UNKNOWN_OPTIONS)
                        return PCP_WIRE_ERR_LIMIT;
                msg->unknown[msg->n_unknown++] = (pcp_raw_option) { .code = code, .len = len, .data = d };
                return PCP_WIRE_OK;
        }
}

pcp_wire_error pcp_decode(const uint8_t *buf, size_t len, bool want_response, pcp_msg *msg) {
        size_t pos, blen;
        const uint8_t *b;

        pcp_msg_init(msg, want_response, 0);
        msg->version = 0;

        if (len >= 1)
                msg->version = buf[0];
        if (len >= 2) {
                msg->response = (buf[1] & 0x80) != 0;
                msg->opcode = buf[1] & 0x7f;
        }
        if (len >= 4 && msg->response)
                msg->result = buf[3];
        if (len < 4)
                return PCP_WIRE_ERR_SHORT;
        if (len > PCP_MAX_MSG_LEN)
                return PCP_WIRE_ERR_LONG;
        if (len % 4 != 0)
                return PCP_WIRE_ERR_ALIGN;
        if (msg->response != want_response)
                return PCP_WIRE_ERR_DIRECTION;
        if (len < PCP_HEADER_LEN)
                return PCP_WIRE_ERR_SHORT;

        msg->lifetime = rd32(buf + 4);
        if (want_response) {
                msg->epoch = rd32(buf + 8);
                if (msg->result >= _PCP_RESULT_MAX)
                        return PCP_WIRE_ERR_RESULT;
        } else
                memcpy(&msg->client_addr, buf + 8, 16);

        if (msg->version != PCP_VERSION) {
                /* a server that speaks another version says so in a bare header */
                if (want_response && msg->version != 0 && msg->result == PCP_RESULT_UNSUPP_VERSION)
                        return PCP_WIRE_OK;
                return PCP_WIRE_ERR_VERSION;
        }

        if (msg->opcode > PCP_OPCODE_PEER)
                return PCP_WIRE_ERR_OPCODE;

        blen = body_len(msg->opcode);
        if (len < PCP_HEADER_LEN + blen)
                return PCP_WIRE_ERR_SHORT;

        b = buf + PCP_HEADER_LEN;
        if (msg->opcode == PCP_OPCODE_MAP || msg->opcode == PCP_OPCODE_PEER) {
                memcpy(msg->nonce, b, PCP_NONCE_LEN);
                msg->protocol = b[12];
                msg->internal_port = rd16(b + 16);
                msg->external_port = rd16(b + 18);
                memcpy(&msg->external_addr, b + 20, 16);
                if (msg->opcode == PCP_OPCODE_PEER) {
                        msg->remote_port = rd16(b + 36);
                        memcpy(&msg->remote_addr, b + 40, 16);
                }
        }

        pos = PCP_HEADER_LEN + blen;
        while (pos < len) {
                uint8_t code;
                uint16_t olen;
                pcp_wire_error r;

                /* len and pos are multiples of 4, so a whole option header is there */
                code = buf[pos];
                olen = rd16(buf + pos + 2);
                if (pad4(olen) > len - pos - PCP_OPTION_HEADER_LEN)
                        return PCP_WIRE_ERR_OPTION_TRUNCATED;
                r = decode_option(code, buf + pos + PCP_OPTION_HEADER_LEN, olen, msg);
                if (r != PCP_WIRE_OK)
                        return r;
                pos += PCP_OPTION_HEADER_LEN + pad4(olen);
        }

        return PCP_WIRE_OK;
}

/* ---- PCP encoder ---- */

static size_t options_len(const pcp_msg *msg) {
        size_t n = 0;

        if (msg->options & PCP_HAS_THIRD_PARTY)
                n += 4 + 16;
        if (msg->options & PCP_HAS_PREFER_FAILURE)
                n += 4;
        n += (size_t) msg->n_filters * (4 + 20);
        if (msg->options & PCP_HAS_DESCRIPTION)
                n += 4 + pad4(msg->description_len);
        for (size_t i = 0; i < msg->n_prefix64; i++)
                n += 4 + pad4(prefix64_wire_len(&msg->prefix64[i]));
        if (msg->options & PCP_HAS_PORT_SET)
                n += 4 + 8;
        for (size_t i = 0; i < msg->n_unknown; i++)
                n += 4 + pad4(msg->unknown[i].len);
        return n;
}

static pcp_wire_error validate(const pcp_msg *msg) {
        const uint32_t known = PCP_HAS_THIRD_PARTY | PCP_HAS_PREFER_FAILURE | PCP_HAS_DESCRIPTION |
                               PCP_HAS_PORT_SET;

        if (msg->version != PCP_VERSION) {
                /* the one message of another version we write: a server's UNSUPP_VERSION */
                if (msg->response && msg->version != 0 && msg->result == PCP_RESULT_UNSUPP_VERSION)
                        return PCP_WIRE_OK;
                return PCP_WIRE_ERR_INVALID;
        }
        if (msg->opcode > PCP_OPCODE_PEER)
                return PCP_WIRE_ERR_INVALID;
        if (msg->response && msg->result >= _PCP_RESULT_MAX)
                return PCP_WIRE_ERR_INVALID;
        if (msg->options & ~known)
                return PCP_WIRE_ERR_INVALID;
        if (msg->n_filters > PCP_MAX_FILTERS || msg->n_prefix64 > PCP_MAX_PREFIX64 ||
            msg->n_unknown > PCP_MAX_UNKNOWN_OPTIONS)
                return PCP_WIRE_ERR_INVALID;

        if ((msg->options & PCP_HAS_THIRD_PARTY) && !option_allowed(PCP_OPTION_THIRD_PARTY, msg->opcode))
                return PCP_WIRE_ERR_OPTION_OPCODE;
        if ((msg->options & PCP_HAS_PREFER_FAILURE) && !option_allowed(PCP_OPTION_PREFER_FAILURE, msg->opcode))
                return PCP_WIRE_ERR_OPTION_OPCODE;
        if ((msg->options & PCP_HAS_DESCRIPTION) && !option_allowed(PCP_OPTION_DESCRIPTION, msg->opcode))
                return PCP_WIRE_ERR_OPTION_OPCODE;
        if ((msg->options & PCP_HAS_PORT_SET) && !option_allowed(PCP_OPTION_PORT_SET, msg->opcode))
                return PCP_WIRE_ERR_OPTION_OPCODE;
        if (msg->n_filters > 0 && !option_allowed(PCP_OPTION_FILTER, msg->opcode))
                return PCP_WIRE_ERR_OPTION_OPCODE;

        for (size_t i = 0; i < msg->n_filters; i++)
                if (!filter_valid(&msg->filters[i]))
                        return PCP_WIRE_ERR_OPTION_VALUE;
        if ((msg->options & PCP_HAS_PORT_SET) && msg->port_set.size == 0)
                return PCP_WIRE_ERR_OPTION_VALUE;
        for (size_t i = 0; i < msg->n_prefix64; i++)
                if (!option_allowed(PCP_OPTION_PREFIX64, msg->opcode))
                        return PCP_WIRE_ERR_OPTION_OPCODE;
        if (msg->options & PCP_HAS_DESCRIPTION) {
                if (msg->description_len > PCP_MAX_DESCRIPTION_LEN)
                        return PCP_WIRE_ERR_OPTION_LENGTH;
                if (msg->description_len > 0 && msg->description == NULL)
                        return PCP_WIRE_ERR_INVALID;
                if (!utf8_valid((const uint8_t *) msg->description, msg->description_len))
                        return PCP_WIRE_ERR_OPTION_VALUE;
        }
        for (size_t i = 0; i < msg->n_prefix64; i++)
                if (!prefix64_valid(&msg->prefix64[i]))
                        return PCP_WIRE_ERR_OPTION_VALUE;
        for (size_t i = 0; i < msg->n_unknown; i++) {
                const pcp_raw_option *o = &msg->unknown[i];
                /* known codes go in their typed fields; unknown mandatory ones only in
                 * responses (a test server may echo them) or, deliberately, in requests
                 * that test a server's UNSUPP_OPTION answer */
                if (pcp_option_to_string(o->code) != NULL)
                        return PCP_WIRE_ERR_INVALID;
                if (o->len > 0 && o->data == NULL)
                        return PCP_WIRE_ERR_INVALID;
        }
        return PCP_WIRE_OK;
}

size_t pcp_encoded_len(const pcp_msg *msg) {
        size_t n;

        if (validate(msg) != PCP_WIRE_OK)
                return 0;
        if (msg->version != PCP_VERSION)
                return PCP_HEADER_LEN;
        n = PCP_HEADER_LEN + body_len(msg->opcode) + options_len(msg);
        return n <= PCP_MAX_MSG_LEN ? n : 0;
}

static uint8_t *put_option_header(uint8_t *p, uint8_t code, uint16_t len) {
        p[0] = code;
        p[1] = 0;
        wr16(p + 2, len);
        return p + PCP_OPTION_HEADER_LEN;
}

static uint8_t *put_padded(uint8_t *p, const void *data, size_t len) {
        if (len > 0)
                memcpy(p, data, len);
        memset(p + len, 0, pad4(len) - len);
        return p + pad4(len);
}

pcp_wire_error pcp_encode(const pcp_msg *msg, uint8_t *buf, size_t cap, size_t *ret_len) {
        pcp_wire_error r;
        size_t total;
        uint8_t *p;

        r = validate(msg);
        if (r != PCP_WIRE_OK)
                return r;
        total = msg->version != PCP_VERSION ? PCP_HEADER_LEN
                                            : PCP_HEADER_LEN + body_len(msg->opcode) + options_len(msg);
        if (total > PCP_MAX_MSG_LEN)
                return PCP_WIRE_ERR_LONG;
        if (total > cap)
                return PCP_WIRE_ERR_BUFFER;

        memset(buf, 0, PCP_HEADER_LEN);
        buf[0] = msg->version;
        buf[1] = (uint8_t) ((msg->response ? 0x80 : 0) | (msg->opcode & 0x7f));
        wr32(buf + 4, msg->lifetime);
        if (msg->response) {
                buf[3] = msg->result;
                wr32(buf + 8, msg->epoch);
        } else
                memcpy(buf + 8, &msg->client_addr, 16);
        p = buf + PCP_HEADER_LEN;
        if (msg->version != PCP_VERSION) {
                *ret_len = total;
                return PCP_WIRE_OK;
        }

        if (msg->opcode == PCP_OPCODE_MAP || msg->opcode == PCP_OPCODE_PEER) {
                memcpy(p, msg->nonce, PCP_NONCE_LEN);
                p[12] = msg->protocol;
                p[13] = p[14] = p[15] = 0;
                wr16(p + 16, msg->internal_port);
                wr16(p + 18, msg->external_port);
                memcpy(p + 20, &msg->external_addr, 16);
                if (msg->opcode == PCP_OPCODE_PEER) {
                        wr16(p + 36, msg->remote_port);
                        p[38] = p[39] = 0;
                        memcpy(p + 40, &msg->remote_addr, 16);
                }
                p += body_len(msg->opcode);
        }

        if (msg->options & PCP_HAS_THIRD_PARTY) {
                p = put_option_header(p, PCP_OPTION_THIRD_PARTY, 16);
                p = put_padded(p, &msg->third_party, 16);
        }
        if (msg->options & PCP_HAS_PREFER_FAILURE)
                p = put_option_header(p, PCP_OPTION_PREFER_FAILURE, 0);
        for (size_t i = 0; i < msg->n_filters; i++) {
                const pcp_filter *f = &msg->filters[i];
                p = put_option_header(p, PCP_OPTION_FILTER, 20);
                p[0] = 0;
                p[1] = f->prefix_len;
                wr16(p + 2, f->remote_port);
                memcpy(p + 4, &f->remote_addr, 16);
                p += 20;
        }
        if (msg->options & PCP_HAS_DESCRIPTION) {
                p = put_option_header(p, PCP_OPTION_DESCRIPTION, msg->description_len);
                p = put_padded(p, msg->description, msg->description_len);
        }
        for (size_t i = 0; i < msg->n_prefix64; i++) {
                const pcp_prefix64 *x = &msg->prefix64[i];
                size_t olen = prefix64_wire_len(x), octets = x->prefix_len / 8;
                uint8_t *q = put_option_header(p, PCP_OPTION_PREFIX64, (uint16_t) olen);
                uint8_t *list = q + 2 + octets + x->suffix_len;

                wr16(q, (uint16_t) octets);
                memcpy(q + 2, x->prefix.s6_addr, octets);
                memcpy(q + 2 + octets, x->suffix, x->suffix_len);
                if (x->has_ipv4_list) {
                        wr16(list, x->ipv4_prefix_count);
                        if (x->ipv4_prefix_count > 0)
                                memcpy(list + 2, x->ipv4_prefixes,
                                       (size_t) x->ipv4_prefix_count * PREFIX64_V4_ENTRY_LEN);
                }
                memset(q + olen, 0, pad4(olen) - olen);
                p = q + pad4(olen);
        }
        if (msg->options & PCP_HAS_PORT_SET) {
                p = put_option_header(p, PCP_OPTION_PORT_SET, 5);
                wr16(p, msg->port_set.size);
                wr16(p + 2, msg->port_set.first_internal_port);
                p[4] = msg->port_set.parity ? 1 : 0;
                p[5] = p[6] = p[7] = 0;
                p += 8;
        }
        for (size_t i = 0; i < msg->n_unknown; i++) {
                const pcp_raw_option *o = &msg->unknown[i];
                p = put_option_header(p, o->code, o->len);
                p = put_padded(p, o->data, o->len);
        }

        *ret_len = (size_t) (p - buf);
        return PCP_WIRE_OK;
}

/* ---- NAT-PMP ---- */

pcp_wire_error natpmp_decode(const uint8_t *buf, size_t len, bool want_response, natpmp_msg *msg) {
        uint8_t op;

        memset(msg, 0, sizeof(*msg));
        if (len < 2)
                return PCP_WIRE_ERR_SHORT;
        if (buf[0] != NATPMP_VERSION)
                return PCP_WIRE_ERR_NOT_NATPMP;
        msg->response = (buf[1] & NATPMP_RESPONSE_BIT) != 0;
        op = buf[1] & 0x7f;
        msg->opcode = op;
        if (want_response && len == 8 && buf[1] == 0 && rd16(buf + 2) == NATPMP_RESULT_UNSUPP_VERSION) {
                /* the opcode-0 spelling of "unsupported version" (RFC 6886 erratum 3618) */
                msg->response = true;
                msg->result = NATPMP_RESULT_UNSUPP_VERSION;
                msg->epoch = rd32(buf + 4);
                return PCP_WIRE_OK;
        }
        if (msg->response != want_response)
                return PCP_WIRE_ERR_DIRECTION;

        if (!want_response) {
                if (op == NATPMP_OPCODE_EXTERNAL_ADDRESS)
                        return len == 2 ? PCP_WIRE_OK : (len < 2 ? PCP_WIRE_ERR_SHORT : PCP_WIRE_ERR_LONG);
                if (op != NATPMP_OPCODE_MAP_UDP && op != NATPMP_OPCODE_MAP_TCP)
                        return PCP_WIRE_ERR_OPCODE;
                if (len < 12)
                        return PCP_WIRE_ERR_SHORT;
                if (len > 12)
                        return PCP_WIRE_ERR_LONG;
                msg->internal_port = rd16(buf + 4);
                msg->external_port = rd16(buf + 6);
                msg->lifetime = rd32(buf + 8);
                return PCP_WIRE_OK;
        }

        /* responses: version, op, result (2), epoch (4) at least */
        if (len < 8)
                return PCP_WIRE_ERR_SHORT;
        msg->result = rd16(buf + 2);
        msg->epoch = rd32(buf + 4);
        if (msg->result >= _NATPMP_RESULT_MAX)
                return PCP_WIRE_ERR_RESULT;
        if (len == 8 && msg->result != NATPMP_RESULT_SUCCESS)
                return PCP_WIRE_OK; /* the short error form */
        switch (op) {
        case NATPMP_OPCODE_EXTERNAL_ADDRESS:
                if (len < 12)
                        return PCP_WIRE_ERR_SHORT;
                if (len > 12)
                        return PCP_WIRE_ERR_LONG;
                /* RFC 6886 §3.2: with a non-zero result the address is undefined and
                 * MUST be ignored on reception */
                if (msg->result == NATPMP_RESULT_SUCCESS)
                        memcpy(&msg->external_addr.s_addr, buf + 8, 4);
                return PCP_WIRE_OK;
        case NATPMP_OPCODE_MAP_UDP:
        case NATPMP_OPCODE_MAP_TCP:
                if (len < 16)
                        return PCP_WIRE_ERR_SHORT;
                if (len > 16)
                        return PCP_WIRE_ERR_LONG;
                /* the server did not understand the request: nothing after the header
                 * means anything (and natpmp_encode() writes these in the short form) */
                if (msg->result == NATPMP_RESULT_UNSUPP_VERSION || msg->result == NATPMP_RESULT_UNSUPP_OPCODE)
                        return PCP_WIRE_OK;
                msg->internal_port = rd16(buf + 8);
                msg->external_port = rd16(buf + 10);
                msg->lifetime = rd32(buf + 12);
                return PCP_WIRE_OK;
        default:
                /* answers to opcodes we do not know can only be errors (UNSUPP_OPCODE), in
                 * the short form accepted above; a success for one has no defined format */
                return PCP_WIRE_ERR_OPCODE;
        }
}

pcp_wire_error natpmp_encode(const natpmp_msg *msg, uint8_t *buf, size_t cap, size_t *ret_len) {
        size_t n;
        bool short_error;

        if (msg->opcode > 0x7f)
                return PCP_WIRE_ERR_INVALID;
        if (!msg->response) {
                if (msg->opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS)
                        n = 2;
                else if (msg->opcode == NATPMP_OPCODE_MAP_UDP || msg->opcode == NATPMP_OPCODE_MAP_TCP)
                        n = 12;
                else
                        return PCP_WIRE_ERR_INVALID;
                if (cap < n)
                        return PCP_WIRE_ERR_BUFFER;
                buf[0] = NATPMP_VERSION;
                buf[1] = msg->opcode;
                if (n == 12) {
                        buf[2] = buf[3] = 0;
                        wr16(buf + 4, msg->internal_port);
                        wr16(buf + 6, msg->external_port);
                        wr32(buf + 8, msg->lifetime);
                }
                *ret_len = n;
                return PCP_WIRE_OK;
        }

        if (msg->result >= _NATPMP_RESULT_MAX)
                return PCP_WIRE_ERR_INVALID;
        short_error = msg->result != NATPMP_RESULT_SUCCESS &&
                      (msg->result == NATPMP_RESULT_UNSUPP_VERSION || msg->result == NATPMP_RESULT_UNSUPP_OPCODE ||
                       (msg->opcode != NATPMP_OPCODE_EXTERNAL_ADDRESS && msg->opcode != NATPMP_OPCODE_MAP_UDP &&
                        msg->opcode != NATPMP_OPCODE_MAP_TCP));
        if (short_error)
                n = 8;
        else if (msg->opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS)
                n = 12;
        else if (msg->opcode == NATPMP_OPCODE_MAP_UDP || msg->opcode == NATPMP_OPCODE_MAP_TCP)
                n = 16;
        else
                return PCP_WIRE_ERR_INVALID;
        if (cap < n)
                return PCP_WIRE_ERR_BUFFER;
        buf[0] = NATPMP_VERSION;
        buf[1] = (uint8_t) (NATPMP_RESPONSE_BIT | msg->opcode);
        wr16(buf + 2, msg->result);
        wr32(buf + 4, msg->epoch);
        if (n == 12) {
                /* RFC 6886 §3.2: zero on transmission unless the result is SUCCESS */
                if (msg->result == NATPMP_RESULT_SUCCESS)
                        memcpy(buf + 8, &msg->external_addr.s_addr, 4);
                else
                        memset(buf + 8, 0, 4);
        }
        else if (n == 16) {
                wr16(buf + 8, msg->internal_port);
                wr16(buf + 10, msg->external_port);
                wr32(buf + 12, msg->lifetime);
        }
        *ret_len = n;
        return PCP_WIRE_OK;
}
