/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The a{sv} options of AddMapping, AddPeer, AddMappingForSocket and DeclareMapping, read
 * from a D-Bus message by one table (pcpd-options.c): a row per option with its name, its
 * D-Bus type, its limits and what it sets. Nothing but the message is read, except that
 * "interface" must name an interface of this host (if_nametoindex()).
 *
 * Each option at most once: a dictionary that names one twice, or has more entries than
 * there are options, is refused (InvalidArgs) at the first entry too many, before it is
 * read further.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "pcp-wire.h"

/* the API's limit (the wire would take more) */
#define PCPD_OPTIONS_MAX_FILTERS 8
/* the longest filter string taken: an IPv6 address of 45 characters, '/', its prefix
 * length, and room to spare */
#define PCPD_OPTIONS_MAX_FILTER_LEN 64

typedef struct pcpd_options {
        /* in: what the call is */
        bool for_socket; /* AddMappingForSocket: suggested-external-port allowed */
        bool peer;       /* AddPeer (for the message refusing suggested-external-port) */
        /* in and out: the call's own argument (AddMapping), or the option */
        uint16_t suggested_port;
        /* out */
        uint32_t lifetime; /* 0 = the default; else at least 120 */
        char *description;
        int family; /* 0, AF_INET or AF_INET6 */
        char *interface;
        bool has_external_address;
        struct in6_addr external_address;
        bool prefer_failure;
        uint8_t n_filters;
        pcp_filter filters[PCPD_OPTIONS_MAX_FILTERS];
        bool has_third_party;
        struct in6_addr third_party;
        bool persistent;
        char *app_id;
        /* an option came that only the privileged action allows (external-address,
         * third-party, persistent=true) */
        bool need_privileged;
} pcpd_options;

/* Reads the a{sv} the message is at into o (whose inputs are set; the rest zero or from
 * an earlier call). 0, or a negative errno with error set (InvalidArgs and a sentence)
 * for bad options, or a negative errno alone for a message sd-bus cannot read. o's
 * strings are to be freed with pcpd_options_clear() either way. */
int pcpd_options_parse(sd_bus_message *msg, pcpd_options *o, sd_bus_error *error);

void pcpd_options_clear(pcpd_options *o);

/* "lifetime, description, ..., suggested-external-port (AddMappingForSocket only)": the
 * known options, as the error for an unknown one lists them. */
const char *pcpd_options_known(void);

/* A mapping's description is shown to other users as one line of text (pcpctl list, the
 * GNOME app), so it may not hold what a terminal or a text view acts on rather than
 * shows: a control character of C0 or C1 (U+0000-U+001F, U+007F-U+009F: tab, escape,
 * ...), a line break (LF, VT, FF, CR, U+0085 NEL, U+2028, U+2029) or a bidirectional
 * embedding, override or isolate (U+202A-U+202E, U+2066-U+2069), which reorder the text
 * shown after it. s must be valid UTF-8. NULL when s holds none of them; else what the
 * first one is ("a line break", "a control character", "a bidirectional formatting
 * character"), its code point in *ret_c and its position, counted in characters from 1,
 * in *ret_pos. */
const char *pcpd_description_refused(const char *s, uint32_t *ret_c, size_t *ret_pos);
