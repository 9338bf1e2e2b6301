/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "pcpd-upnp-parse.h"

pcpd_upnp_verdict pcpd_upnp_add_verdict(int upnp_error) {
        switch (upnp_error) {
        case PCPD_UPNP_ERR_ONLY_PERMANENT:
                return PCPD_UPNP_VERDICT_RETRY_PERMANENT;
        case PCPD_UPNP_ERR_CONFLICT:
        case PCPD_UPNP_ERR_CONFLICT_OTHER_MECHANISM:
                return PCPD_UPNP_VERDICT_CONFLICT;
        case PCPD_UPNP_ERR_SAME_PORT_REQUIRED:
                return PCPD_UPNP_VERDICT_SAME_PORT;
        case PCPD_UPNP_ERR_NO_PORT_MAPS:
                return PCPD_UPNP_VERDICT_NO_RESOURCES;
        case PCPD_UPNP_ERR_NOT_AUTHORIZED:
                return PCPD_UPNP_VERDICT_NOT_AUTHORIZED;
        default:
                return PCPD_UPNP_VERDICT_FAILED;
        }
}

const char *pcpd_upnp_error_code_name(int upnp_error) {
        static const struct {
                int code;
                const char *name;
        } table[] = {
                { 401, "InvalidAction" },
                { 402, "InvalidArgs" },
                { 501, "ActionFailed" },
                { 600, "ArgumentValueInvalid" },
                { 601, "ArgumentValueOutOfRange" },
                { 602, "OptionalActionNotImplemented" },
                { 603, "OutOfMemory" },
                { 604, "HumanInterventionRequired" },
                { 605, "StringArgumentTooLong" },
                { 606, "ActionNotAuthorized" },
                { 713, "SpecifiedArrayIndexInvalid" },
                { 714, "NoSuchEntryInArray" },
                { 715, "WildCardNotPermittedInSrcIP" },
                { 716, "WildCardNotPermittedInExtPort" },
                { 718, "ConflictInMappingEntry" },
                { 724, "SamePortValuesRequired" },
                { 725, "OnlyPermanentLeasesSupported" },
                { 726, "RemoteHostOnlySupportsWildcard" },
                { 727, "ExternalPortOnlySupportsWildcard" },
                { 728, "NoPortMapsAvailable" },
                { 729, "ConflictWithOtherMechanisms" },
                { 732, "WildCardNotPermittedInIntPort" },
        };

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
                if (table[i].code == upnp_error)
                        return table[i].name;
        return NULL;
}

static bool printable_ascii(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x21 || (unsigned char) s[i] > 0x7e)
                        return false;
        return true;
}

bool pcpd_upnp_addr_is_unicast(const struct in6_addr *a) {
        if (IN6_IS_ADDR_V4MAPPED(a)) {
                const uint8_t *v = &a->s6_addr[12];

                if (v[0] == 0 || v[0] == 127 || v[0] >= 224)
                        return false; /* this network, loopback, multicast, reserved + broadcast */
                return true;
        }
        return !IN6_IS_ADDR_UNSPECIFIED(a) && !IN6_IS_ADDR_LOOPBACK(a) && !IN6_IS_ADDR_MULTICAST(a) &&
               !IN6_IS_ADDR_V4COMPAT(a);
}

bool pcpd_upnp_external_addr_ok(const struct in6_addr *a) {
        const uint8_t *v = &a->s6_addr[12];

        if (!IN6_IS_ADDR_V4MAPPED(a) || !pcpd_upnp_addr_is_unicast(a))
                return false;
        /* as pcp-engine.c's addr_is_unusable(): link-local is no address a peer can reach */
        return !(v[0] == 169 && v[1] == 254);
}

pcpd_upnp_service_kind pcpd_upnp_service_type_kind(const char *type) {
        static const char prefix[] = "urn:schemas-upnp-org:service:";
        static const struct {
                const char *name;
                pcpd_upnp_service_kind kind;
        } names[] = {
                { "WANIPConnection:", PCPD_UPNP_SERVICE_WANIP },
                { "WANPPPConnection:", PCPD_UPNP_SERVICE_WANPPP },
                { "WANIPv6FirewallControl:", PCPD_UPNP_SERVICE_IPV6FC },
        };
        const char *p;
        size_t n;

        if (!type || strncmp(type, prefix, sizeof(prefix) - 1) != 0)
                return PCPD_UPNP_SERVICE_NONE;
        p = type + sizeof(prefix) - 1;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                size_t len = strlen(names[i].name);

                if (strncmp(p, names[i].name, len) != 0)
                        continue;
                p += len;
                n = strspn(p, "0123456789");
                if (n == 0 || n > 3 || p[n] != '\0' || p[0] == '0')
                        return PCPD_UPNP_SERVICE_NONE;
                return names[i].kind;
        }
        return PCPD_UPNP_SERVICE_NONE;
}

bool pcpd_upnp_udn_ok(const char *udn, size_t len) {
        if (!udn || len <= 5 || len > PCPD_UPNP_MAX_FIELD || strncmp(udn, "uuid:", 5) != 0)
                return false;
        if (!printable_ascii(udn, len))
                return false;
        for (size_t i = 0; i + 1 < len; i++)
                if (udn[i] == ':' && udn[i + 1] == ':')
                        return false;
        return true;
}

pcpd_upnp_service_kind pcpd_upnp_parse_usn(const char *usn, size_t *ret_udn_len, const char **ret_type) {
        const char *sep;
        pcpd_upnp_service_kind kind;

        if (!usn || strnlen(usn, 2 * PCPD_UPNP_MAX_FIELD + 1) > 2 * PCPD_UPNP_MAX_FIELD)
                return PCPD_UPNP_SERVICE_NONE;
        sep = strstr(usn, "::");
        if (!sep || !pcpd_upnp_udn_ok(usn, (size_t) (sep - usn)))
                return PCPD_UPNP_SERVICE_NONE;
        kind = pcpd_upnp_service_type_kind(sep + 2);
        if (kind == PCPD_UPNP_SERVICE_NONE)
                return kind;
        if (ret_udn_len)
                *ret_udn_len = (size_t) (sep - usn);
        if (ret_type)
                *ret_type = sep + 2;
        return kind;
}

bool pcpd_upnp_bucket_take(pcpd_upnp_bucket *b, uint64_t now_us, unsigned burst, uint64_t interval_us) {
        if (!b->started) {
                b->started = true;
                b->tokens = burst;
                b->refilled_us = now_us;
        }
        if (interval_us > 0 && now_us > b->refilled_us) {
                uint64_t n = (now_us - b->refilled_us) / interval_us;

                if (n > 0) {
                        b->tokens = n >= burst || b->tokens + n >= burst ? burst : b->tokens + (unsigned) n;
                        b->refilled_us += n * interval_us;
                }
        }
        if (b->tokens >= burst)
                b->refilled_us = now_us; /* full: the next token is due a whole interval after it is taken */
        if (b->tokens == 0)
                return false;
        b->tokens--;
        return true;
}

static void map_v4(const struct in_addr *v4, struct in6_addr *ret) {
        memset(ret, 0, sizeof(*ret));
        ret->s6_addr[10] = 0xff;
        ret->s6_addr[11] = 0xff;
        memcpy(&ret->s6_addr[12], v4, 4);
}

static int parse_dec(const char *s, size_t n, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (n == 0 || n > 10)
                return -EINVAL;
        if (n > 1 && s[0] == '0')
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int pcpd_upnp_parse_url(const char *url, int family, struct in6_addr *ret_addr, uint16_t *ret_port) {
        char host[INET6_ADDRSTRLEN + 1];
        struct in6_addr addr;
        const char *p, *host_end, *rest;
        uint16_t port = 80;
        size_t n;
        int host_family;

        if (!url)
                return -EINVAL;
        n = strnlen(url, PCPD_UPNP_MAX_URL + 1);
        if (n > PCPD_UPNP_MAX_URL)
                return -E2BIG;
        if (!printable_ascii(url, n))
                return -EINVAL;
        if (n < 7 || strncasecmp(url, "http://", 7) != 0)
                return -EINVAL;
        p = url + 7;

        if (*p == '[') {
                host_end = strchr(p, ']');
                if (!host_end)
                        return -EINVAL;
                if ((size_t) (host_end - p - 1) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, p + 1, (size_t) (host_end - p - 1));
                host[host_end - p - 1] = '\0';
                rest = host_end + 1;
                host_family = AF_INET6;
                if (inet_pton(AF_INET6, host, &addr) != 1) /* also refuses a "%zone" */
                        return -EINVAL;
        } else {
                host_end = p + strcspn(p, ":/?#");
                if ((size_t) (host_end - p) >= sizeof(host) || host_end == p)
                        return -EINVAL;
                memcpy(host, p, (size_t) (host_end - p));
                host[host_end - p] = '\0';
                rest = host_end;
                host_family = AF_INET;
                struct in_addr v4;
                /* inet_pton(AF_INET) is strict: four decimal parts, no octal, no short forms */
                if (inet_pton(AF_INET, host, &v4) != 1)
                        return -EINVAL; /* a name, user info, garbage */
                map_v4(&v4, &addr);
        }

        if (*rest == ':') {
                size_t digits = strcspn(rest + 1, "/?#");
                uint64_t v;

                if (parse_dec(rest + 1, digits, 65535, &v) < 0 || v == 0)
                        return -EINVAL;
                port = (uint16_t) v;
                rest += 1 + digits;
        }
        if (*rest != '\0' && *rest != '/')
                return -EINVAL;

        if (host_family != family)
                return -EAFNOSUPPORT;
        if (ret_addr)
                *ret_addr = addr;
        if (ret_port)
                *ret_port = port;
        return 0;
}

int pcpd_upnp_check_location(const char *location, int family, const struct in6_addr *sender) {
        struct in6_addr host;
        int r;

        r = pcpd_upnp_parse_url(location, family, &host, NULL);
        if (r < 0)
                return r;
        if (!pcpd_upnp_addr_is_unicast(&host))
                return -EINVAL;
        if (!sender || memcmp(&host, sender, sizeof(host)) != 0)
                return -EPERM;
        return 0;
}

int pcpd_upnp_parse_u32(const char *s, uint32_t *ret) {
        uint64_t v;
        int r;

        if (!s)
                return -EINVAL;
        r = parse_dec(s, strnlen(s, 12), UINT32_MAX, &v);
        if (r < 0)
                return r;
        *ret = (uint32_t) v;
        return 0;
}

int pcpd_upnp_parse_port(const char *s, uint16_t *ret) {
        uint32_t v;
        int r;

        r = pcpd_upnp_parse_u32(s, &v);
        if (r < 0)
                return r;
        if (v == 0 || v > 65535)
                return -ERANGE;
        *ret = (uint16_t) v;
        return 0;
}

int pcpd_upnp_parse_ipv4(const char *s, struct in6_addr *ret) {
        struct in_addr v4;

        if (!s || strnlen(s, INET_ADDRSTRLEN) >= INET_ADDRSTRLEN)
                return -EINVAL;
        if (inet_pton(AF_INET, s, &v4) != 1)
                return -EINVAL;
        map_v4(&v4, ret);
        return 0;
}

int pcpd_upnp_parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "1", "true", "yes" }, *const no[] = { "0", "false", "no" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < 3; i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

int pcpd_upnp_parse_entry(const pcpd_upnp_entry_strings *in, pcpd_upnp_entry *ret) {
        pcpd_upnp_entry e = {};

        if (!in)
                return -EBADMSG;
        if (pcpd_upnp_parse_port(in->internal_port, &e.internal_port) < 0 ||
            pcpd_upnp_parse_ipv4(in->internal_client, &e.internal_client) < 0 ||
            pcpd_upnp_parse_bool(in->enabled, &e.enabled) < 0 ||
            pcpd_upnp_parse_u32(in->lease_duration, &e.lease_duration) < 0)
                return -EBADMSG;
        if (in->description && strnlen(in->description, PCPD_UPNP_MAX_FIELD + 1) > PCPD_UPNP_MAX_FIELD)
                return -EBADMSG;
        *ret = e;
        return 0;
}

bool pcpd_upnp_entry_is_ours(const pcpd_upnp_entry *e, const struct in6_addr *internal_addr,
                             uint16_t internal_port) {
        return e->internal_port == internal_port &&
               memcmp(&e->internal_client, internal_addr, sizeof(*internal_addr)) == 0;
}

/* valid UTF-8, no C0/C1 control characters, no DEL */
bool pcpd_upnp_description_ok(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        size_t n;

        if (!s)
                return true;
        n = strnlen(s, PCPD_UPNP_MAX_DESCRIPTION + 1);
        if (n > PCPD_UPNP_MAX_DESCRIPTION)
                return false;
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len;

                if (p[i] < 0x80) {
                        if (p[i] < 0x20 || p[i] == 0x7f)
                                return false;
                        i++;
                        continue;
                }
                if ((p[i] & 0xe0) == 0xc0) {
                        len = 2;
                        cp = p[i] & 0x1f;
                } else if ((p[i] & 0xf0) == 0xe0) {
                        len = 3;
                        cp = p[i] & 0x0f;
                } else if ((p[i] & 0xf8) == 0xf0) {
                        len = 4;
                        cp = p[i] & 0x07;
                } else
                        return false;
                if (i + len > n)
                        return false;
                for (size_t k = 1; k < len; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                /* overlong forms, surrogates, beyond U+10FFFF, C1 controls */
                if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (cp >= 0x80 && cp < 0xa0))
                        return false;
                i += len;
        }
        return true;
}

uint16_t pcpd_upnp_candidate_port(uint32_t random, uint16_t avoid) {
        uint16_t p = (uint16_t) (1024 + random % (65536 - 1024));

        if (p == avoid)
                p = p == 65535 ? 1024 : (uint16_t) (p + 1);
        return p;
}
