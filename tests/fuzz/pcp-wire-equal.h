/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Semantic comparison of decoded messages, shared by the unit tests and the fuzz targets.
 * Only the fields the wire carries for the message's version, direction and opcode are
 * compared (pcp_msg_init leaves the option arrays uninitialised past their counts).
 */

#include <stdbool.h>
#include <string.h>

#include "pcp-wire.h"

static inline bool pcp_addr_eq(const struct in6_addr *a, const struct in6_addr *b) {
        return memcmp(a->s6_addr, b->s6_addr, 16) == 0;
}

static inline bool pcp_bytes_eq(const void *a, const void *b, size_t n) {
        return n == 0 || memcmp(a, b, n) == 0;
}

static inline bool pcp_prefix64_eq(const pcp_prefix64 *a, const pcp_prefix64 *b) {
        return a->prefix_len == b->prefix_len && pcp_addr_eq(&a->prefix, &b->prefix) &&
               a->suffix_len == b->suffix_len && pcp_bytes_eq(a->suffix, b->suffix, a->suffix_len) &&
               a->has_ipv4_list == b->has_ipv4_list && a->ipv4_prefix_count == b->ipv4_prefix_count &&
               pcp_bytes_eq(a->ipv4_prefixes, b->ipv4_prefixes, (size_t) a->ipv4_prefix_count * 6);
}

static inline bool pcp_msg_equal(const pcp_msg *a, const pcp_msg *b) {
        if (a->version != b->version || a->response != b->response || a->opcode != b->opcode ||
            a->lifetime != b->lifetime)
                return false;
        if (a->response) {
                if (a->result != b->result || a->epoch != b->epoch)
                        return false;
        } else if (!pcp_addr_eq(&a->client_addr, &b->client_addr))
                return false;
        if (a->version != PCP_VERSION)
                return true; /* a bare header */

        if (a->opcode == PCP_OPCODE_MAP || a->opcode == PCP_OPCODE_PEER) {
                if (memcmp(a->nonce, b->nonce, PCP_NONCE_LEN) != 0 || a->protocol != b->protocol ||
                    a->internal_port != b->internal_port || a->external_port != b->external_port ||
                    !pcp_addr_eq(&a->external_addr, &b->external_addr))
                        return false;
                if (a->opcode == PCP_OPCODE_PEER &&
                    (a->remote_port != b->remote_port || !pcp_addr_eq(&a->remote_addr, &b->remote_addr)))
                        return false;
        }

        if (a->options != b->options)
                return false;
        if ((a->options & PCP_HAS_THIRD_PARTY) && !pcp_addr_eq(&a->third_party, &b->third_party))
                return false;
        if ((a->options & PCP_HAS_DESCRIPTION) &&
            (a->description_len != b->description_len ||
             !pcp_bytes_eq(a->description, b->description, a->description_len)))
                return false;
        if ((a->options & PCP_HAS_PORT_SET) &&
            (a->port_set.size != b->port_set.size ||
             a->port_set.first_internal_port != b->port_set.first_internal_port ||
             a->port_set.parity != b->port_set.parity))
                return false;

        if (a->n_filters != b->n_filters || a->n_prefix64 != b->n_prefix64 || a->n_unknown != b->n_unknown)
                return false;
        for (size_t i = 0; i < a->n_filters; i++)
                if (a->filters[i].prefix_len != b->filters[i].prefix_len ||
                    a->filters[i].remote_port != b->filters[i].remote_port ||
                    !pcp_addr_eq(&a->filters[i].remote_addr, &b->filters[i].remote_addr))
                        return false;
        for (size_t i = 0; i < a->n_prefix64; i++)
                if (!pcp_prefix64_eq(&a->prefix64[i], &b->prefix64[i]))
                        return false;
        for (size_t i = 0; i < a->n_unknown; i++)
                if (a->unknown[i].code != b->unknown[i].code || a->unknown[i].len != b->unknown[i].len ||
                    !pcp_bytes_eq(a->unknown[i].data, b->unknown[i].data, a->unknown[i].len))
                        return false;
        return true;
}

static inline bool natpmp_msg_equal(const natpmp_msg *a, const natpmp_msg *b) {
        if (a->response != b->response || a->opcode != b->opcode)
                return false;
        if (a->response && (a->result != b->result || a->epoch != b->epoch))
                return false;
        if (a->opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS)
                return !a->response || a->external_addr.s_addr == b->external_addr.s_addr;
        return a->internal_port == b->internal_port && a->external_port == b->external_port &&
               a->lifetime == b->lifetime;
}
