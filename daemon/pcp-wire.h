/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcp-wire: pure encode/decode of PCP (RFC 6887, with the options of RFC 7220, 7225 and
 * 7753) and NAT-PMP (RFC 6886) messages.
 *
 * No I/O, no allocation, no global state. Decoded messages point into the caller's
 * buffer for variable-length data (DESCRIPTION text, PREFIX64 lists, unknown options):
 * the buffer must outlive the decoded message.
 *
 * All addresses are struct in6_addr; IPv4 is carried as IPv4-mapped IPv6
 * (::ffff:a.b.c.d), exactly as on the wire.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCP_VERSION 2
#define PCP_SERVER_PORT 5351
#define PCP_CLIENT_PORT 5350
#define PCP_MAX_MSG_LEN 1100
#define PCP_HEADER_LEN 24
#define PCP_MAP_BODY_LEN 36
#define PCP_PEER_BODY_LEN 56
#define PCP_NONCE_LEN 12
#define PCP_OPTION_HEADER_LEN 4
#define PCP_MAX_DESCRIPTION_LEN 1016 /* RFC 7220 §3 */

/* Enough for any message that fits in 1100 octets: (1100 - 24 - 36) / 24 = 43. */
#define PCP_MAX_FILTERS 43
/* A PREFIX64 option needs at least 20 octets on the wire; more than this many in one
 * message is refused (PCP_WIRE_ERR_LIMIT) rather than silently truncated. */
#define PCP_MAX_PREFIX64 8
/* Unknown options are kept so they can be echoed or logged: codes 128-255 in any message,
 * and in responses also codes 0-127 (RFC 6887 §7.3: a client ignores options it does not
 * understand in responses, even mandatory ones). */
#define PCP_MAX_UNKNOWN_OPTIONS 16

typedef enum pcp_opcode {
        PCP_OPCODE_ANNOUNCE = 0,
        PCP_OPCODE_MAP = 1,
        PCP_OPCODE_PEER = 2,
} pcp_opcode;

typedef enum pcp_result {
        PCP_RESULT_SUCCESS = 0,
        PCP_RESULT_UNSUPP_VERSION = 1,
        PCP_RESULT_NOT_AUTHORIZED = 2,
        PCP_RESULT_MALFORMED_REQUEST = 3,
        PCP_RESULT_UNSUPP_OPCODE = 4,
        PCP_RESULT_UNSUPP_OPTION = 5,
        PCP_RESULT_MALFORMED_OPTION = 6,
        PCP_RESULT_NETWORK_FAILURE = 7,
        PCP_RESULT_NO_RESOURCES = 8,
        PCP_RESULT_UNSUPP_PROTOCOL = 9,
        PCP_RESULT_USER_EX_QUOTA = 10,
        PCP_RESULT_CANNOT_PROVIDE_EXTERNAL = 11,
        PCP_RESULT_ADDRESS_MISMATCH = 12,
        PCP_RESULT_EXCESSIVE_REMOTE_PEERS = 13,
        _PCP_RESULT_MAX,
} pcp_result;

typedef enum pcp_result_class {
        PCP_RESULT_CLASS_SUCCESS,
        PCP_RESULT_CLASS_SHORT_ERROR, /* transient: retry after the lifetime given */
        PCP_RESULT_CLASS_LONG_ERROR,  /* configuration or policy: wait long */
} pcp_result_class;

typedef enum pcp_option_code {
        PCP_OPTION_THIRD_PARTY = 1,
        PCP_OPTION_PREFER_FAILURE = 2,
        PCP_OPTION_FILTER = 3,
        PCP_OPTION_DESCRIPTION = 128, /* RFC 7220 */
        PCP_OPTION_PREFIX64 = 129,    /* RFC 7225 */
        PCP_OPTION_PORT_SET = 130,    /* RFC 7753 */
} pcp_option_code;

/* Bits of pcp_msg.options for the non-repeatable options. */
#define PCP_HAS_THIRD_PARTY (1u << 0)
#define PCP_HAS_PREFER_FAILURE (1u << 1)
#define PCP_HAS_DESCRIPTION (1u << 2)
#define PCP_HAS_PORT_SET (1u << 3)

typedef enum pcp_wire_error {
        PCP_WIRE_OK = 0,
        PCP_WIRE_ERR_SHORT,                 /* shorter than its header or opcode body */
        PCP_WIRE_ERR_LONG,                  /* longer than 1100 octets */
        PCP_WIRE_ERR_ALIGN,                 /* length not a multiple of 4 */
        PCP_WIRE_ERR_VERSION,               /* not version 2 (msg->version tells which) */
        PCP_WIRE_ERR_DIRECTION,             /* R bit says request where a response is wanted, or the reverse */
        PCP_WIRE_ERR_OPCODE,                /* opcode not ANNOUNCE, MAP or PEER */
        PCP_WIRE_ERR_RESULT,                /* result code above 13 */
        PCP_WIRE_ERR_ADDRESS,               /* an address field that cannot be valid */
        PCP_WIRE_ERR_OPTION_TRUNCATED,      /* option header or data runs past the end */
        PCP_WIRE_ERR_OPTION_LENGTH,         /* wrong length for a known option */
        PCP_WIRE_ERR_OPTION_OPCODE,         /* option not allowed with this opcode */
        PCP_WIRE_ERR_OPTION_DUPLICATE,      /* non-repeatable option repeated */
        PCP_WIRE_ERR_OPTION_VALUE,          /* a field of a known option is invalid */
        PCP_WIRE_ERR_OPTION_UNKNOWN_MANDATORY, /* request: code 0-127 that we do not implement */
        PCP_WIRE_ERR_LIMIT,                 /* more options of a kind than we keep */
        PCP_WIRE_ERR_NOT_NATPMP,            /* NAT-PMP decoder: version is not 0 */
        PCP_WIRE_ERR_BUFFER,                /* encoder: output buffer too small */
        PCP_WIRE_ERR_INVALID,               /* encoder: a field of the message is invalid */
        _PCP_WIRE_ERR_MAX,
} pcp_wire_error;

/* FILTER (RFC 6887 §13.3): remote peers allowed to use the mapping. prefix_len counts
 * bits of the 128-bit address; an IPv4 prefix /n is 96 + n on an IPv4-mapped address. */
typedef struct pcp_filter {
        uint8_t prefix_len;
        uint16_t remote_port; /* 0 = any port */
        struct in6_addr remote_addr;
} pcp_filter;

/* PREFIX64 (RFC 7225 §4.1). On the wire: Prefix64 Length (2 octets, in octets: 4, 5, 6,
 * 7, 8 or 12), the Prefix64, a Suffix of 12 - length octets, then optionally an IPv4
 * Prefix Count (2 octets) and that many entries of IPv4 Prefix Length (2 octets, bits)
 * + IPv4 Address (4 octets). ipv4_prefixes points at those wire-format entries (see
 * pcp_prefix64_get_ipv4_prefix()). A request carries ::/96 and no entries. */
typedef struct pcp_prefix64 {
        uint8_t prefix_len; /* bits: 32, 40, 48, 56, 64 or 96 */
        struct in6_addr prefix;
        uint8_t suffix_len; /* octets: 12 - prefix_len / 8 */
        uint8_t suffix[8];
        bool has_ipv4_list; /* the optional IPv4 Prefix Count field is present */
        uint16_t ipv4_prefix_count;
        const uint8_t *ipv4_prefixes;
} pcp_prefix64;

/* PORT_SET (RFC 7753): option length 5; size must not be 0; parity is the low bit of
 * the fifth octet. */
typedef struct pcp_port_set {
        uint16_t size;
        uint16_t first_internal_port;
        bool parity;
} pcp_port_set;

typedef struct pcp_raw_option {
        uint8_t code;
        uint16_t len;
        const uint8_t *data;
} pcp_raw_option;

typedef struct pcp_msg {
        uint8_t version;
        bool response;
        uint8_t opcode;   /* pcp_opcode */
        uint8_t result;   /* response only */
        uint32_t lifetime;
        uint32_t epoch;   /* response only */
        struct in6_addr client_addr; /* request only */

        /* MAP and PEER */
        uint8_t nonce[PCP_NONCE_LEN];
        uint8_t protocol;
        uint16_t internal_port;
        uint16_t external_port;         /* suggested (request) or assigned (response) */
        struct in6_addr external_addr;  /* suggested (request) or assigned (response) */
        /* PEER only */
        uint16_t remote_port;
        struct in6_addr remote_addr;

        /* options */
        uint32_t options; /* PCP_HAS_* */
        struct in6_addr third_party;
        const char *description; /* not NUL-terminated; UTF-8 */
        uint16_t description_len;
        pcp_port_set port_set;
        uint8_t n_filters;
        pcp_filter filters[PCP_MAX_FILTERS];
        uint8_t n_prefix64;
        pcp_prefix64 prefix64[PCP_MAX_PREFIX64];
        uint8_t n_unknown;
        pcp_raw_option unknown[PCP_MAX_UNKNOWN_OPTIONS];
} pcp_msg;

/* Resets the fixed part and the option counts of msg (not the arrays: cheap). */
void pcp_msg_init(pcp_msg *msg, bool response, uint8_t opcode);

/* Decodes a PCP message. want_response selects which direction is acceptable (a client
 * decodes responses, a server requests). On failure the header fields that could be read
 * (version, opcode, result) are left in msg, so a server can answer UNSUPP_VERSION and a
 * client can see which version a server offers. A response of another version is
 * accepted only as an UNSUPP_VERSION answer (its header alone is decoded). */
pcp_wire_error pcp_decode(const uint8_t *buf, size_t len, bool want_response, pcp_msg *msg);

/* Encodes msg into buf. Options go out in a canonical order (THIRD_PARTY,
 * PREFER_FAILURE, FILTER..., DESCRIPTION, PREFIX64..., PORT_SET, unknown...). Validates
 * the same rules the decoder does, so everything encoded decodes. */
pcp_wire_error pcp_encode(const pcp_msg *msg, uint8_t *buf, size_t cap, size_t *ret_len);

/* The encoded size of msg, or 0 if it is invalid. */
size_t pcp_encoded_len(const pcp_msg *msg);

/* Reads entry i of a PREFIX64 IPv4 prefix list. Returns false if i is out of range. */
bool pcp_prefix64_get_ipv4_prefix(const pcp_prefix64 *p, size_t i, struct in_addr *ret_addr,
                                  uint8_t *ret_len);

/* ---- NAT-PMP (RFC 6886) ---- */

#define NATPMP_VERSION 0
#define NATPMP_PORT 5351
#define NATPMP_OPCODE_EXTERNAL_ADDRESS 0
#define NATPMP_OPCODE_MAP_UDP 1
#define NATPMP_OPCODE_MAP_TCP 2
#define NATPMP_RESPONSE_BIT 0x80

typedef enum natpmp_result {
        NATPMP_RESULT_SUCCESS = 0,
        NATPMP_RESULT_UNSUPP_VERSION = 1,
        NATPMP_RESULT_NOT_AUTHORIZED = 2,
        NATPMP_RESULT_NETWORK_FAILURE = 3,
        NATPMP_RESULT_OUT_OF_RESOURCES = 4,
        NATPMP_RESULT_UNSUPP_OPCODE = 5,
        _NATPMP_RESULT_MAX,
} natpmp_result;

typedef struct natpmp_msg {
        bool response;
        uint8_t opcode;   /* without the response bit */
        uint16_t result;  /* response only */
        uint32_t epoch;   /* response only: seconds since start of epoch */
        struct in_addr external_addr; /* opcode 0 response */
        uint16_t internal_port;       /* opcodes 1, 2 */
        uint16_t external_port;       /* suggested (request) or assigned (response) */
        uint32_t lifetime;
} natpmp_msg;

/* Decodes a NAT-PMP message. Error responses (result != 0) may be the 8-octet short form
 * (version, opcode, result, epoch), which is also what a NAT-PMP-only server sends back
 * to a PCP request: 00 80 00 01 + epoch (RFC 6886 erratum 3618). Servers that send it
 * with opcode 0 and no response bit (the mistake the erratum names) are accepted as an
 * UNSUPP_VERSION response too. With a non-zero result the external address of an opcode 0
 * response is not read (RFC 6886 §3.2: undefined, zero on transmission), and neither is the
 * body of an UNSUPP_VERSION or UNSUPP_OPCODE answer to a mapping request. */
pcp_wire_error natpmp_decode(const uint8_t *buf, size_t len, bool want_response, natpmp_msg *msg);
pcp_wire_error natpmp_encode(const natpmp_msg *msg, uint8_t *buf, size_t cap, size_t *ret_len);

/* ---- helpers ---- */

const char *pcp_result_to_string(uint8_t result);      /* "SUCCESS", ...; NULL if > 13 */
int pcp_result_from_string(const char *s);             /* -1 if unknown */
pcp_result_class pcp_result_classify(uint8_t result);
const char *natpmp_result_to_string(uint16_t result);  /* NULL if unknown */
/* The PCP result that best describes a NAT-PMP result, for reporting. */
uint8_t natpmp_result_to_pcp(uint16_t result);
const char *pcp_opcode_to_string(uint8_t opcode);      /* "announce", "map", "peer"; NULL */
const char *pcp_option_to_string(uint8_t code);        /* "THIRD_PARTY", ...; NULL */
const char *pcp_wire_error_to_string(pcp_wire_error e);

/* "tcp" <-> 6 etc. Accepts names and decimal numbers 0-255; returns -1 on error. */
/* at most this many octets: a longer string is no protocol */
#define PCP_PROTOCOL_STRING_MAX 16
int pcp_protocol_from_string(const char *s);
/* "tcp", "udp", "sctp", "dccp", "icmp", "icmpv6", "all"; NULL for other numbers. */
const char *pcp_protocol_to_string(uint8_t protocol);

#define PCP_ADDR_STRLEN 46 /* INET6_ADDRSTRLEN */
/* Formats an address; IPv4-mapped addresses as dotted quads. Returns buf. */
char *pcp_addr_to_string(const struct in6_addr *a, char buf[static PCP_ADDR_STRLEN]);
/* Parses IPv4 (to IPv4-mapped) or IPv6 text. Returns false on error. */
bool pcp_addr_from_string(const char *s, struct in6_addr *ret);
void pcp_addr_from_ipv4(const struct in_addr *v4, struct in6_addr *ret);
bool pcp_addr_is_ipv4(const struct in6_addr *a);
/* The IPv4 address of an IPv4-mapped address; false if a is not IPv4-mapped. */
bool pcp_addr_to_ipv4(const struct in6_addr *a, struct in_addr *ret);
bool pcp_addr_is_unspecified(const struct in6_addr *a); /* :: or ::ffff:0.0.0.0 */
