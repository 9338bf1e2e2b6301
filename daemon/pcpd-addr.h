/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The text forms of the address prefixes callers give (the "filters" option of the D-Bus
 * API: "192.0.2.0/24", "2001:db8::/32", or an address alone). Pure functions: no I/O,
 * no logging; a fuzz target and a unit test call them.
 */

#include <netinet/in.h>
#include <stdint.h>

#include "pcp-wire.h"

/* "a:b::c/128" at its longest */
#define PCPD_PREFIX_STRLEN (PCP_ADDR_STRLEN + 4)

/* An address, optionally followed by '/' and a prefix length in decimal digits (1-32 for
 * an IPv4 address, 1-128 for an IPv6 one; without it, all the address's bits). The length
 * is returned as the wire counts it, in bits of the 128-bit address: an IPv4 /n is 96 + n
 * on the IPv4-mapped address. 0 or -EINVAL (a length of 0 would let everyone in, which is
 * no filter: it is refused). */
int pcpd_prefix_from_string(const char *s, struct in6_addr *ret_addr, uint8_t *ret_len);

/* The inverse, for a prefix the wire allows (an IPv4 one 96 + n): "192.0.2.0/24",
 * "2001:db8::/32". */
char *pcpd_prefix_to_string(const struct in6_addr *a, uint8_t len, char buf[static PCPD_PREFIX_STRLEN]);
