/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-options.h"

#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>

#include "pcp1-contract.h"
#include "pcpd-addr.h"

/* The value of a basic-typed option, read from its variant before the row's setter runs. */
typedef union option_value {
        uint32_t u;
        uint16_t q;
        int b;
        const char *s;
} option_value;

typedef struct option_row option_row;
/* Sets what the option means in o, or refuses it: 0 or a negative errno (with error set
 * for a refusal). For a container type ("a(sq)") v is NULL and the message is inside the
 * variant: the setter reads the value itself. */
typedef int (*option_set)(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                          sd_bus_error *error);

struct option_row {
        const char *name;
        const char *type;       /* its D-Bus type */
        size_t max;             /* strings: most bytes (0: no limit of its own) */
        bool privileged;        /* given (true, for a boolean), it needs the privileged action */
        bool socket_only;       /* AddMappingForSocket only */
        bool not_peer;          /* refused by AddPeer: it means nothing for a flow's PEER mapping */
        option_set set;
};

/* ---- the setters ---- */

static bool utf8_ok(const char *s, size_t max) {
        return g_utf8_validate(s, -1, NULL) && strlen(s) <= max;
}

/* o comes zeroed or from an earlier call: what that call left is not leaked */
static void set_string(char **where, const char *s) {
        g_free(*where);
        *where = g_strdup(s);
}

static int set_lifetime(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                        sd_bus_error *error) {
        o->lifetime = v->u;
        return 0;
}

const char *pcpd_description_refused(const char *s, uint32_t *ret_c, size_t *ret_pos) {
        size_t pos = 1;

        for (const char *p = s; *p != '\0'; p = g_utf8_next_char(p), pos++) {
                gunichar c = g_utf8_get_char(p);
                const char *what = NULL;

                if ((c >= 0x0a && c <= 0x0d) || c == 0x85 || c == 0x2028 || c == 0x2029)
                        what = "a line break";
                else if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
                        what = "a control character";
                else if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069))
                        what = "a bidirectional formatting character";
                if (what != NULL) {
                        *ret_c = c;
                        *ret_pos = pos;
                        return what;
                }
        }
        return NULL;
}

static int set_description(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                           sd_bus_error *error) {
        const char *what;
        uint32_t c;
        size_t pos;

        /* (sd-bus refuses a message with a string that is not UTF-8 before this) */
        if (!g_utf8_validate(v->s, -1, NULL))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option 'description' is not valid UTF-8.");
        if (strlen(v->s) > row->max)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option 'description' is longer than %zu bytes.",
                                         row->max);
        what = pcpd_description_refused(v->s, &c, &pos);
        if (what != NULL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'description' has %s, U+%04" PRIX32 ", at character %zu: a description "
                                         "is one line of text, without control characters, line breaks or "
                                         "bidirectional formatting characters.",
                                         what, c, pos);
        set_string(&o->description, v->s);
        return 0;
}

static int set_family(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                      sd_bus_error *error) {
        if (strcmp(v->s, "ipv4") == 0)
                o->family = AF_INET;
        else if (strcmp(v->s, "ipv6") == 0)
                o->family = AF_INET6;
        else
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid family '%s': use ipv4 or ipv6.",
                                         v->s);
        return 0;
}

static int set_interface(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                         sd_bus_error *error) {
        size_t n = strlen(v->s);

        if (n == 0 || n > row->max || strchr(v->s, '/') != NULL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid interface name '%s'.", v->s);
        /* a typo, not a network without a server */
        if (if_nametoindex(v->s) == 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "No such interface '%s'.", v->s);
        set_string(&o->interface, v->s);
        return 0;
}

static int set_external_address(const option_row *row, sd_bus_message *msg, const option_value *v,
                                pcpd_options *o, sd_bus_error *error) {
        if (!pcp_addr_from_string(v->s, &o->external_address))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid external-address '%s'.", v->s);
        o->has_external_address = true;
        return 0;
}

static int set_suggested_port(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                              sd_bus_error *error) {
        o->suggested_port = v->q;
        return 0;
}

static int set_prefer_failure(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                              sd_bus_error *error) {
        o->prefer_failure = v->b;
        return 0;
}

static int set_filters(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                       sd_bus_error *error) {
        int k = sd_bus_message_enter_container(msg, 'a', "(sq)");

        if (k < 0)
                return k;
        for (;;) {
                const char *prefix;
                uint16_t port;
                pcp_filter *f;

                k = sd_bus_message_read(msg, "(sq)", &prefix, &port);
                if (k < 0)
                        return k;
                if (k == 0)
                        break;
                if (o->n_filters >= PCPD_OPTIONS_MAX_FILTERS)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "At most %d filters are allowed.",
                                                 PCPD_OPTIONS_MAX_FILTERS);
                /* the reader takes leading zeros in the prefix length ("/0…024"): not a
                 * string of any length, kept with the call while polkit is asked */
                if (strlen(prefix) > PCPD_OPTIONS_MAX_FILTER_LEN)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Invalid filter: longer than %d bytes (use an address with an "
                                                 "optional prefix length: 192.0.2.0/24, 2001:db8::/32).",
                                                 PCPD_OPTIONS_MAX_FILTER_LEN);
                f = &o->filters[o->n_filters];
                if (pcpd_prefix_from_string(prefix, &f->remote_addr, &f->prefix_len) < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Invalid filter '%s': use an address with an optional prefix "
                                                 "length (192.0.2.0/24, 2001:db8::/32).",
                                                 prefix);
                f->remote_port = port;
                o->n_filters++;
        }
        return sd_bus_message_exit_container(msg);
}

static int set_third_party(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                           sd_bus_error *error) {
        if (!pcp_addr_from_string(v->s, &o->third_party) || pcp_addr_is_unspecified(&o->third_party))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid third-party address '%s'.", v->s);
        o->has_third_party = true;
        return 0;
}

static int set_persistent(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                          sd_bus_error *error) {
        o->persistent = v->b;
        return 0;
}

static int set_app_id(const option_row *row, sd_bus_message *msg, const option_value *v, pcpd_options *o,
                      sd_bus_error *error) {
        if (!utf8_ok(v->s, row->max) || v->s[0] == '\0')
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid app-id: it must be 1-%zu bytes of UTF-8.", row->max);
        set_string(&o->app_id, v->s);
        return 0;
}

/* ---- the table: one row per option, in the order the error for an unknown one lists them ---- */

/* AddPeer takes what applies to a flow (the contract: lifetime, description, family,
 * interface, third-party, app-id); the others were once taken and ignored, so a caller
 * believed it had, say, a persistent PEER mapping */
static const option_row options[] = {
        { "lifetime", "u", 0, false, false, false, set_lifetime },
        { "description", "s", PCP1_MAX_DESCRIPTION, false, false, false, set_description },
        { "family", "s", 0, false, false, false, set_family },
        { "interface", "s", IFNAMSIZ - 1, false, false, false, set_interface },
        { "external-address", "s", 0, true, false, true, set_external_address },
        { "prefer-failure", "b", 0, false, false, true, set_prefer_failure },
        { "filters", "a(sq)", 0, false, false, true, set_filters },
        { "third-party", "s", 0, true, false, false, set_third_party },
        { "persistent", "b", 0, true, false, true, set_persistent },
        { "app-id", "s", PCP1_MAX_APP_ID, false, false, false, set_app_id },
        /* AddMapping has it as an argument, AddPeer has none (RFC 6887 PEER suggests only
         * to keep what it had) */
        { "suggested-external-port", "q", 0, false, true, true, set_suggested_port },
};

const char *pcpd_options_known(void) {
        static char *known = NULL;

        if (known == NULL) {
                GString *s = g_string_new(NULL);
                for (size_t i = 0; i < G_N_ELEMENTS(options); i++)
                        g_string_append_printf(s, "%s%s%s", i == 0 ? "" : ", ", options[i].name,
                                               options[i].socket_only ? " (AddMappingForSocket only)" : "");
                known = g_string_free(s, FALSE);
        }
        return known;
}

static const option_row *option_find(const char *name) {
        for (size_t i = 0; i < G_N_ELEMENTS(options); i++)
                if (strcmp(options[i].name, name) == 0)
                        return &options[i];
        return NULL;
}

/* the rows given so far, one bit each */
typedef uint32_t option_set_bits;
G_STATIC_ASSERT(G_N_ELEMENTS(options) <= sizeof(option_set_bits) * 8);

/* ---- reading ---- */

/* The value of the variant the message is at, when it is of a basic type, for error
 * messages; NULL otherwise. Leaves the message inside the variant: only for the way out. */
static char *describe_variant(sd_bus_message *msg, const char *contents) {
        union {
                uint8_t y;
                int b;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                const char *s;
        } v;
        char type = contents[0];

        if (strlen(contents) != 1 || type == 'h' || !strchr("ybnqiuxtdsog", type) ||
            sd_bus_message_enter_container(msg, 'v', contents) < 0 || sd_bus_message_read_basic(msg, type, &v) < 0)
                return NULL;
        switch (type) {
        case 'y':
                return g_strdup_printf("%u", v.y);
        case 'b':
                return g_strdup(v.b ? "true" : "false");
        case 'n':
                return g_strdup_printf("%d", v.n);
        case 'q':
                return g_strdup_printf("%u", v.q);
        case 'i':
                return g_strdup_printf("%" PRIi32, v.i);
        case 'u':
                return g_strdup_printf("%" PRIu32, v.u);
        case 'x':
                return g_strdup_printf("%" PRIi64, v.x);
        case 't':
                return g_strdup_printf("%" PRIu64, v.t);
        case 'd':
                return g_strdup_printf("%g", v.d);
        default:
                if (!g_utf8_validate(v.s, -1, NULL))
                        return NULL;
                if (g_utf8_strlen(v.s, -1) > 64) {
                        g_autofree char *head = g_utf8_substring(v.s, 0, 64);
                        return g_strdup_printf("'%s...'", head);
                }
                return g_strdup_printf("'%s'", v.s);
        }
}

/* "Option 'lifetime' must be of type 'u', not 's' ('600')." */
static int option_wrong_type(sd_bus_message *msg, const char *name, const char *want, const char *got,
                             sd_bus_error *error) {
        g_autofree char *value = describe_variant(msg, got);

        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' must be of type '%s', not '%s'%s%s%s.",
                                 name, want, got, value != NULL ? " (" : "", value ?: "", value != NULL ? ")" : "");
}

/* one entry's value (the message is at its variant) */
static int option_read(const option_row *row, const char *name, sd_bus_message *msg, pcpd_options *o,
                       sd_bus_error *error) {
        option_value v = { 0 };
        const char *contents;
        char type;
        int k;

        if (row->socket_only && !o->for_socket)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' is for AddMappingForSocket() only; %s",
                                         row->name,
                                         o->peer ? "AddPeer() takes no suggested external port."
                                                 : "AddMapping() takes it as its third argument.");
        if (row->not_peer && o->peer)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option '%s' is not for AddPeer(); it takes lifetime, description, family, "
                                         "interface, third-party and app-id.",
                                         row->name);
        k = sd_bus_message_peek_type(msg, &type, &contents);
        if (k < 0)
                return k;
        if (strcmp(contents, row->type) != 0)
                return option_wrong_type(msg, name, row->type, contents, error);
        k = sd_bus_message_enter_container(msg, 'v', row->type);
        if (k < 0)
                return k;
        if (row->type[1] == '\0') {
                k = sd_bus_message_read_basic(msg, row->type[0], &v);
                if (k < 0)
                        return k;
                k = row->set(row, msg, &v, o, error);
        } else
                k = row->set(row, msg, NULL, o, error);
        if (k < 0)
                return k;
        /* a privileged option asks for the privilege once given (persistent: when true) */
        if (row->privileged && (row->type[0] != 'b' || v.b))
                o->need_privileged = true;
        return sd_bus_message_exit_container(msg);
}

int pcpd_options_parse(sd_bus_message *msg, pcpd_options *o, sd_bus_error *error) {
        option_set_bits given = 0;
        size_t n = 0;
        int k;

        k = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (k < 0)
                return k;
        while ((k = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const option_row *row;
                const char *name;

                /* each option at most once, so no more entries than options: a dictionary
                 * of a million entries stops at the first one too many, before its name is
                 * read (the caller would otherwise have pcpd hold the message, all of it,
                 * while polkit is asked) */
                if (++n > G_N_ELEMENTS(options))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Too many options: there are %zu, each to be given at most once.",
                                                 G_N_ELEMENTS(options));
                k = sd_bus_message_read(msg, "s", &name);
                if (k < 0)
                        return k;
                row = option_find(name);
                if (row == NULL)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown option '%s'. Known: %s.",
                                                 name, pcpd_options_known());
                if (given & ((option_set_bits) 1 << (row - options)))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' is given twice.",
                                                 row->name);
                given |= (option_set_bits) 1 << (row - options);
                k = option_read(row, name, msg, o, error);
                if (k < 0)
                        return k;
                k = sd_bus_message_exit_container(msg);
                if (k < 0)
                        return k;
        }
        if (k < 0)
                return k;
        k = sd_bus_message_exit_container(msg);
        if (k < 0)
                return k;
        if (o->prefer_failure && o->suggested_port == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "Option 'prefer-failure' needs a suggested external port.");
        if (o->lifetime > 0 && o->lifetime < 120)
                o->lifetime = 120; /* servers clamp to at least 2 minutes anyway */
        return 0;
}

void pcpd_options_clear(pcpd_options *o) {
        g_clear_pointer(&o->description, g_free);
        g_clear_pointer(&o->interface, g_free);
        g_clear_pointer(&o->app_id, g_free);
}
