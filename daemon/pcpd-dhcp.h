/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-dhcp: the PCP server DHCP options (RFC 7291) as NetworkManager shows them.
 *
 * Pure: no allocation, no GLib, no I/O, no libnm. Every input is bounded (PCPD_DHCP_MAX_TEXT
 * characters, PCPD_DHCP4_MAX_OCTETS octets) and every result fits in a fixed struct
 * (PCPD_DHCP_MAX_SERVERS servers of PCP_SERVER_MAX_ADDRS addresses). Results are written
 * only on success: bad input leaves *ret as it was and returns an error whose
 * pcpd_dhcp_error_to_string() is a sentence for the log.
 *
 * What NetworkManager (1.42, dhclient backend) puts in nm_dhcp_config_get_options(), and
 * where it comes from (dhclient's pretty_print_option(), then NM's maybe_add_option()):
 *
 *   DHCPv4 option 158, OPTION_V4_PCP_SERVER. On the wire: one or more lists, each a
 *   List-Length octet and that many octets of IPv4 addresses; each list is one PCP server
 *   with one or more addresses (RFC 7291 §4). dhclient concatenates repeated instances
 *   first (RFC 3396), so several instances reach us whole.
 *     "pcp_server"   = "4 192 168 77 1 4 198 20 77 1"   decimal octets, space-separated;
 *                      with the definition "option pcp-server code 158 = array of
 *                      unsigned integer 8;" in NetworkManager's dhclient.conf
 *     "unknown_158"  = "4:c0:a8:4d:1"                    hex octets without leading zeros,
 *                      ':'-separated; a server that sends the option without being asked
 *                      to (dnsmasq's dhcp-option-force) when there is no definition. When
 *                      every octet happens to be printable ASCII (a List-Length of 32..124
 *                      and printable address octets) dhclient prints the octets as text
 *                      instead, with \ooo and \" style escapes and a trailing NUL
 *                      dropped: that spelling is read too.
 *
 *   DHCPv6 option 86, OPTION_V6_PCP_SERVER. On the wire: one or more IPv6 addresses (IPv4
 *   ones IPv4-mapped) of ONE server; several servers are several instances of the option
 *   (RFC 7291 §3, §5.1).
 *     "dhcp6_pcp_server" = "fd77:77:77::1 ::ffff:192.168.77.1"   inet_ntop() text,
 *                      space-separated: the addresses of the first instance only. dhclient
 *                      keeps repeated DHCPv6 options as a chain (dhcpv6_universe has
 *                      concat_duplicates = 0) but hands only the head of the chain to its
 *                      script (client_option_envadd() evaluates one option cache), so
 *                      NetworkManager never sees a second instance. What can be recovered:
 *                      one server and its addresses, in order. What cannot: any further
 *                      server. Reading the words as one server each would be wrong: the
 *                      usual case is one server reachable by IPv6 and IPv4 ("fd77::1
 *                      ::ffff:192.168.77.1"), and two mappings with two nonces on one
 *                      server make it replace or refuse one of them.
 *
 * NetworkManager's own (internal) DHCP client neither requests nor exposes either option;
 * see data/networkmanager/ for the opt-in configuration, and pcpd_dhcp_request_state_get()
 * to tell an interface that does not ask for the options from one whose server does not
 * send them.
 *
 * Rules applied to the addresses (RFC 7291 §5.1, §5.2):
 *   - multicast and loopback addresses are discarded silently (a MUST of the RFC), and so
 *     are the addresses nothing can be sent to: unspecified (0.0.0.0/8, ::, ::ffff:0.0.0.0)
 *     and the IPv4 limited broadcast;
 *   - an address given twice (in one server or in an earlier one) is kept once, in its
 *     first place: two servers sharing an address would get two sets of mappings on one
 *     device;
 *   - the order is kept: it is the DHCP server's order of preference (RFC 7488 §3);
 *   - a server left with no address is dropped; past PCP_SERVER_MAX_ADDRS addresses or
 *     PCPD_DHCP_MAX_SERVERS servers the rest is left out and counted (not an error: what
 *     was kept is valid).
 *
 * One malformed list discards the whole DHCPv4 option (PCPD_DHCP_ERR_LIST_LENGTH,
 * PCPD_DHCP_ERR_TRUNCATED), not only that list. RFC 7291 defines the option as a whole
 * ("Length: length of all included data", each List-Length "MUST be a multiple of 4", each
 * list "one or more" addresses) and says nothing of keeping part of a broken one; the
 * lists are only framed by the List-Length octets, so once one is wrong every later
 * boundary is a guess, and the earlier lists were read with the same encoder that got it
 * wrong. The usual cause is a server configured with plain addresses and no List-Length
 * octet (dnsmasq's dotted form "dhcp-option=158,192.168.77.1" sends c0 a8 4d 01): read
 * leniently, its first octet is a List-Length and what follows a plausible-looking address
 * of a host that is not a PCP server. A wrong server is worse than none: pcpd would send
 * the host's ports to it and wait on it instead of falling back to the default router.
 * Likewise one word that is not an address discards the whole DHCPv6 option.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp-engine.h"

/* servers kept from one option (one family of one interface) */
#define PCPD_DHCP_MAX_SERVERS 8
/* longest option text accepted, in characters; NetworkManager's own values are far shorter
 * ("4 192 168 77 1" per server; an option of 255 octets is at most 1020 characters) */
#define PCPD_DHCP_MAX_TEXT 4096
/* longest DHCPv4 option payload accepted, in octets (four full instances, RFC 3396) */
#define PCPD_DHCP4_MAX_OCTETS 1020

/* NetworkManager's option names (nm_dhcp_config_get_options() keys) */
#define PCPD_DHCP4_KEY "pcp_server"
#define PCPD_DHCP4_KEY_UNKNOWN "unknown_158"
#define PCPD_DHCP6_KEY "dhcp6_pcp_server"
/* set to "1" by dhclient for every option it asked for */
#define PCPD_DHCP4_KEY_REQUESTED "requested_pcp_server"
#define PCPD_DHCP6_KEY_REQUESTED "requested_dhcp6_pcp_server"

typedef enum pcpd_dhcp_error {
        PCPD_DHCP_OK = 0,
        PCPD_DHCP_ERR_EMPTY,       /* no value (NULL, "", or only blanks) */
        PCPD_DHCP_ERR_TOO_LONG,    /* over PCPD_DHCP_MAX_TEXT characters or PCPD_DHCP4_MAX_OCTETS octets */
        PCPD_DHCP_ERR_SYNTAX,      /* not the spelling the key stands for (a character, an octet > 255, ...) */
        PCPD_DHCP_ERR_ADDRESS,     /* DHCPv6: a word that is not an IPv6 address (dhclient's "<error>") */
        PCPD_DHCP_ERR_LIST_LENGTH, /* DHCPv4: a List-Length of 0 or not a multiple of 4 */
        PCPD_DHCP_ERR_TRUNCATED,   /* DHCPv4: a list runs past the end of the option */
        _PCPD_DHCP_ERR_MAX,
} pcpd_dhcp_error;

typedef struct pcpd_dhcp_server {
        size_t n_addrs; /* 1..PCP_SERVER_MAX_ADDRS */
        struct in6_addr addrs[PCP_SERVER_MAX_ADDRS]; /* IPv4 as IPv4-mapped; in the option's order */
} pcpd_dhcp_server;

typedef struct pcpd_dhcp_servers {
        size_t n_servers; /* 0..PCPD_DHCP_MAX_SERVERS */
        pcpd_dhcp_server servers[PCPD_DHCP_MAX_SERVERS];
        /* what was left out of a valid option, for the log */
        uint32_t n_discarded;          /* multicast, loopback, unspecified, broadcast addresses */
        uint32_t n_duplicates;         /* addresses given before */
        uint32_t n_addrs_over_limit;   /* past PCP_SERVER_MAX_ADDRS in one server */
        uint32_t n_servers_over_limit; /* servers past PCPD_DHCP_MAX_SERVERS */
        uint32_t n_servers_empty;      /* lists left without an address */
} pcpd_dhcp_servers;

/* RFC 7291 §4 on the wire: the option's payload (code and length octets stripped). */
pcpd_dhcp_error pcpd_dhcp4_parse_octets(const uint8_t *buf, size_t len, pcpd_dhcp_servers *ret);
/* "pcp_server": decimal octets separated by blanks */
pcpd_dhcp_error pcpd_dhcp4_parse_decimal(const char *text, pcpd_dhcp_servers *ret);
/* "unknown_158": hex octets separated by ':', or dhclient's escaped text form */
pcpd_dhcp_error pcpd_dhcp4_parse_unknown(const char *text, pcpd_dhcp_servers *ret);
/* "dhcp6_pcp_server": IPv6 addresses separated by blanks (one server, see above) */
pcpd_dhcp_error pcpd_dhcp6_parse(const char *text, pcpd_dhcp_servers *ret);

/* Reads a value of NetworkManager's option dictionary; NULL if absent. With libnm:
 * g_hash_table_lookup(nm_dhcp_config_get_options(config), key). */
typedef const char *(*pcpd_dhcp_lookup_fn)(void *userdata, const char *key);

/* The servers of one family (AF_INET: "pcp_server", else "unknown_158"; AF_INET6:
 * "dhcp6_pcp_server") from a DHCP config object's options. No option: PCPD_DHCP_OK with no
 * server and *ret_key NULL. ret_key (may be NULL): the key that was read. */
pcpd_dhcp_error pcpd_dhcp_parse_options(int family, pcpd_dhcp_lookup_fn lookup, void *userdata,
                                        pcpd_dhcp_servers *ret, const char **ret_key);

/* Whether the option is asked for and given on an interface, from its DHCP config object of
 * that family (lookup NULL or n_options 0: none, or a new one not filled in yet).
 *
 * What `pcpctl status` is to say with it (the wiring step; pcpd exports it as an addition
 * to the Manager interface, e.g. a property DhcpOptions a(sss): interface, "ipv4" or
 * "ipv6", the state string), one line per interface NetworkManager has a lease on and
 * family:
 *   received       eth0: DHCPv4 option 158: 2 servers (192.168.77.5; 192.168.77.6)
 *                  eth0: DHCPv4 option 158: refused: <pcpd_dhcp_error_to_string()>
 *   not-offered    eth0: DHCPv6 option 86: asked for; the network's DHCP server does not send it
 *   not-requested  wlan0: DHCPv4 option 158: not asked for (NetworkManager's DHCP client does
 *                  not ask for it: see data/networkmanager/ and pcpd(8))
 *   no-lease       (no line: static addresses, or no DHCP of that family)
 * Without NetworkManager on the bus: "NetworkManager: not running; servers from the default
 * routes only". Where each server came from is in the Servers lines (interface, source). */
typedef enum pcpd_dhcp_request_state {
        PCPD_DHCP_NO_LEASE,      /* no DHCP lease of this family (static, off, or not yet) */
        PCPD_DHCP_NOT_REQUESTED, /* a lease, but the DHCP client did not ask for the option */
        PCPD_DHCP_NOT_OFFERED,   /* asked for; the DHCP server did not send it */
        PCPD_DHCP_RECEIVED,      /* in the lease (asked for, or sent unasked: "unknown_158") */
        _PCPD_DHCP_REQUEST_STATE_MAX,
} pcpd_dhcp_request_state;

pcpd_dhcp_request_state pcpd_dhcp_request_state_get(int family, pcpd_dhcp_lookup_fn lookup, void *userdata,
                                                    size_t n_options);
/* "no-lease", "not-requested", "not-offered", "received" (for pcpctl's JSON) */
const char *pcpd_dhcp_request_state_to_string(pcpd_dhcp_request_state s);

/* RFC 7291 §4 payload of the servers (the inverse of pcpd_dhcp4_parse_octets() for IPv4
 * servers). -ENOBUFS if cap is too small, -EINVAL if an address is not IPv4-mapped. */
int pcpd_dhcp4_encode(const pcpd_dhcp_servers *s, uint8_t *buf, size_t cap, size_t *ret_len);
/* The endpoints to hand to the manager for one server: port 5351, IPv4 as IPv4-mapped, and
 * ifindex as the scope of link-local IPv6 addresses (a DHCPv6 server may announce one: it
 * is on the link the option came from). Returns the number written (= s->n_addrs). */
size_t pcpd_dhcp_server_endpoints(const pcpd_dhcp_server *s, unsigned ifindex,
                                  struct sockaddr_in6 out[static PCP_SERVER_MAX_ADDRS]);

bool pcpd_dhcp_servers_equal(const pcpd_dhcp_servers *a, const pcpd_dhcp_servers *b);
/* a sentence for the log */
const char *pcpd_dhcp_error_to_string(pcpd_dhcp_error e);
