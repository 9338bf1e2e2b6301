/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-upnp-parse: everything pcpd-upnp reads from an IGD itself, as pure functions
 * (no GLib, no I/O) so that they have a libFuzzer target (tests/fuzz/fuzz-upnp.c).
 *
 * GUPnP parses the SSDP datagrams, the description document and the SOAP envelopes; what
 * it hands over are strings (an SSDP LOCATION header, the out-arguments of an action, which
 * pcpd-upnp always asks for as strings) and a GError with the UPnP errorCode. Those are
 * checked here, strictly: a value that is not exactly what the IGD specification allows
 * is refused, never guessed at.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on what an IGD may send us (longer is refused). */
#define PCPD_UPNP_MAX_URL 512          /* LOCATION and control URLs */
#define PCPD_UPNP_MAX_DESCRIPTION 128  /* NewPortMappingDescription we send and accept */
#define PCPD_UPNP_MAX_FIELD 256        /* any other out-argument */

/* UPnP error codes pcpd-upnp acts on (UPnP Device Architecture and WANIPConnection:2). */
enum {
        PCPD_UPNP_ERR_INVALID_ACTION = 401,
        PCPD_UPNP_ERR_INVALID_ARGS = 402,
        PCPD_UPNP_ERR_ACTION_FAILED = 501,
        PCPD_UPNP_ERR_NOT_AUTHORIZED = 606,
        PCPD_UPNP_ERR_NO_SUCH_ENTRY = 714,
        PCPD_UPNP_ERR_CONFLICT = 718,
        PCPD_UPNP_ERR_SAME_PORT_REQUIRED = 724,
        PCPD_UPNP_ERR_ONLY_PERMANENT = 725,
        PCPD_UPNP_ERR_REMOTE_HOST_WILDCARD = 726,
        PCPD_UPNP_ERR_EXT_PORT_WILDCARD = 727,
        PCPD_UPNP_ERR_NO_PORT_MAPS = 728,
        PCPD_UPNP_ERR_CONFLICT_OTHER_MECHANISM = 729,
};

/* What to do about an error code from AddPortMapping. */
typedef enum pcpd_upnp_verdict {
        PCPD_UPNP_VERDICT_RETRY_PERMANENT, /* 725: ask again with lease 0 */
        PCPD_UPNP_VERDICT_CONFLICT,        /* 718, 729: the port is taken: another one */
        PCPD_UPNP_VERDICT_SAME_PORT,       /* 724: external port must equal the internal one */
        PCPD_UPNP_VERDICT_NO_RESOURCES,    /* 728: the table is full: later */
        PCPD_UPNP_VERDICT_NOT_AUTHORIZED,  /* 606: refused: much later */
        PCPD_UPNP_VERDICT_FAILED,          /* anything else: later */
} pcpd_upnp_verdict;

pcpd_upnp_verdict pcpd_upnp_add_verdict(int upnp_error);

/* "ConflictInMappingEntry" for 718...; NULL for a code it does not know. */
const char *pcpd_upnp_error_code_name(int upnp_error);

/*
 * An SSDP LOCATION (or a control / event URL): only "http://" + an IP literal of the given
 * family (AF_INET: dotted quad; AF_INET6: "[...]" without a zone) + an optional port +
 * a path. No host names (no DNS lookup ever starts from SSDP), no user info, printable
 * ASCII only, at most PCPD_UPNP_MAX_URL octets. IPv4 is returned IPv4-mapped; the port is
 * 80 when absent.
 * Returns 0, -EINVAL (not such a URL), -E2BIG (too long), -EAFNOSUPPORT (other family).
 */
int pcpd_upnp_parse_url(const char *url, int family, struct in6_addr *ret_addr, uint16_t *ret_port);

/* Is addr (IPv4-mapped or IPv6) one a router can have: not unspecified, loopback,
 * multicast or broadcast. */
bool pcpd_upnp_addr_is_unicast(const struct in6_addr *addr);

/* Is addr (IPv4-mapped) an external address an IGD may give us: unicast as above, and
 * none a peer on the Internet could never send to. The same rules as the PCP / NAT-PMP
 * engine's addr_is_unusable() (daemon/pcp-engine.c), kept here as a copy because this file
 * is pure and is fuzzed on its own: not 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16
 * (link-local), 224.0.0.0/4 (multicast) nor 255.255.255.255; this file also refuses
 * 240.0.0.0/4 (reserved), as pcpd_upnp_addr_is_unicast() does. Private, shared and
 * documentation addresses are usable (a NAT behind a carrier-grade NAT or in a lab). */
bool pcpd_upnp_external_addr_ok(const struct in6_addr *addr);

/* The service types pcpd-upnp looks for, exactly
 * "urn:schemas-upnp-org:service:" NAME ":" VERSION, VERSION 1 to 3 digits without a
 * leading zero; anything else (another name, a suffix, a control character) is NONE. */
typedef enum pcpd_upnp_service_kind {
        PCPD_UPNP_SERVICE_NONE,
        PCPD_UPNP_SERVICE_WANIP,  /* WANIPConnection */
        PCPD_UPNP_SERVICE_WANPPP, /* WANPPPConnection */
        PCPD_UPNP_SERVICE_IPV6FC, /* WANIPv6FirewallControl */
} pcpd_upnp_service_kind;

pcpd_upnp_service_kind pcpd_upnp_service_type_kind(const char *type);

/* A UDN as pcpd-upnp takes it (from an SSDP USN or a description): "uuid:" and 1 to
 * PCPD_UPNP_MAX_FIELD - 5 more printable ASCII characters (no space, no control
 * character), without "::" (the USN's separator). */
bool pcpd_upnp_udn_ok(const char *udn, size_t len);

/* An SSDP USN of one of those services: UDN "::" service type, both as above. Returns the
 * service's kind (NONE: not such a USN) and, when not NONE, the UDN's length in
 * *ret_udn_len (the UDN is usn[0 .. *ret_udn_len)) and the service type's start. */
pcpd_upnp_service_kind pcpd_upnp_parse_usn(const char *usn, size_t *ret_udn_len, const char **ret_type);

/* A token bucket (how pcpd-upnp bounds the new SSDP LOCATIONs it fetches): at most burst
 * tokens, one more every interval_us. Zero-initialised it is full. now_us: a monotonic
 * clock (µs). */
typedef struct pcpd_upnp_bucket {
        bool started;
        unsigned tokens;
        uint64_t refilled_us; /* when the last token was added (or the bucket started) */
} pcpd_upnp_bucket;

/* Takes a token: true, or false when there is none (nothing changed but the refill). */
bool pcpd_upnp_bucket_take(pcpd_upnp_bucket *b, uint64_t now_us, unsigned burst, uint64_t interval_us);

/*
 * The SSDP check: a LOCATION is used only when it parses (above), its host is the sender
 * of the SSDP message and a unicast address. Returns 0 or a negative errno (-EINVAL
 * malformed, -E2BIG, -EAFNOSUPPORT, -EPERM: another host than the sender).
 */
int pcpd_upnp_check_location(const char *location, int family, const struct in6_addr *sender);

/* Decimal strings as UPnP sends them: no sign, no spaces, no leading zeros beyond "0",
 * in range. Return 0 or -EINVAL / -ERANGE. */
int pcpd_upnp_parse_u32(const char *s, uint32_t *ret);
int pcpd_upnp_parse_port(const char *s, uint16_t *ret); /* 1..65535 */

/* An IPv4 address as an IGD writes it ("NewExternalIPAddress", "NewInternalClient"):
 * strictly dotted quad, returned IPv4-mapped. -EINVAL otherwise. */
int pcpd_upnp_parse_ipv4(const char *s, struct in6_addr *ret);

/* A boolean argument: "0"/"1" (and "true"/"false", "yes"/"no" as the UDA allows). */
int pcpd_upnp_parse_bool(const char *s, bool *ret);

/* The out-arguments of GetSpecificPortMappingEntry, as strings (NULL = absent). */
typedef struct pcpd_upnp_entry_strings {
        const char *internal_port;
        const char *internal_client;
        const char *enabled;
        const char *description;
        const char *lease_duration;
} pcpd_upnp_entry_strings;

typedef struct pcpd_upnp_entry {
        uint16_t internal_port;
        struct in6_addr internal_client; /* IPv4-mapped */
        bool enabled;
        uint32_t lease_duration;         /* 0 = permanent */
} pcpd_upnp_entry;

/* -EBADMSG if any field is absent or malformed (the description is only bounded). */
int pcpd_upnp_parse_entry(const pcpd_upnp_entry_strings *in, pcpd_upnp_entry *ret);

/* Is this entry the mapping of internal_addr:internal_port? */
bool pcpd_upnp_entry_is_ours(const pcpd_upnp_entry *e, const struct in6_addr *internal_addr,
                             uint16_t internal_port);

/* A description we may send: at most PCPD_UPNP_MAX_DESCRIPTION octets, valid UTF-8
 * without control characters (GUPnP escapes it for XML). */
bool pcpd_upnp_description_ok(const char *s);

/* The next external port to try after a conflict: from a random number, a port in
 * 1024..65535 that differs from avoid. */
uint16_t pcpd_upnp_candidate_port(uint32_t random, uint16_t avoid);
