/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the a{sv} options of AddMapping, AddPeer and AddMappingForSocket as
 * pcpd reads them (pcpd_options_parse(), daemon/pcpd-options.c, compiled into the target
 * so that it is instrumented), driven through real sd-bus messages.
 *
 * Input: octet 0: bit 0 AddMappingForSocket (suggested-external-port allowed), bit 1 a
 * PEER request; then entries, each: a name (octet < 0xe0: one of the known names, else a
 * string of the input), a type (0: the one the name wants, else one of many), and a value
 * of that type from the input (strings: a length, then either octets made UTF-8 or, for
 * a length of 0xff, one of a list of strings the options take: addresses, prefixes,
 * families...). A message is built with sd_bus_message_append*, sealed and read back as
 * the daemon reads a call.
 *
 * Checked, besides no crash / leak / sanitizer report:
 *  - a refusal is an sd-bus error (InvalidArgs) with a sentence in UTF-8, never a bare
 *    errno (which the caller would see as a cryptic error);
 *  - an acceptance holds only what the API allows: a lifetime of 0 or at least 120, at most
 *    8 filters, each a FILTER the wire encodes, prefer-failure only with a suggested port,
 *    a suggested-external-port only for AddMappingForSocket, description and app id UTF-8
 *    within their limits, an interface name of 1-15 octets without '/';
 *  - need_privileged is set exactly when an option that needs the privileged action came
 *    (external-address, third-party, persistent=true): none can slip through unprivileged;
 *  - the request, written back as options in their canonical form, reads back the same,
 *    and then needs the privilege exactly when it is external-address, third-party or
 *    persistent.
 */

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "pcp1-contract.h"
#include "pcpd-addr.h"
#include "pcpd-options.h"

#include "fuzz-common.h"

/* ---- reading the input ---- */

typedef struct fz_reader {
        const uint8_t *p;
        size_t left;
} fz_reader;

static uint8_t fz_u8(fz_reader *r) {
        if (r->left == 0)
                return 0;
        r->left--;
        return *r->p++;
}

static uint16_t fz_u16(fz_reader *r) {
        uint16_t v = fz_u8(r);
        return (uint16_t) (v << 8 | fz_u8(r));
}

static uint32_t fz_u32(fz_reader *r) {
        uint32_t v = fz_u16(r);
        return v << 16 | fz_u16(r);
}

static const char *const known_names[] = {
        "lifetime",    "description", "family",     "interface", "external-address", "suggested-external-port",
        "prefer-failure", "filters",  "third-party", "persistent", "app-id",
};
static const char *const wanted_types[] = { "u", "s", "s", "s", "s", "q", "b", "a(sq)", "s", "b", "s" };
static const char *const other_types[] = { "u", "s", "q", "b", "a(sq)", "i", "y", "t", "x", "n", "d", "o",
                                           "g", "as", "a{sv}", "v", "(sq)", "ay", "h", "ab" };
/* strings the options take, and near misses */
static const char *const samples[] = {
        "192.0.2.1", "198.51.100.7", "2001:db8::1", "::", "0.0.0.0", "::ffff:192.0.2.9", "fe80::1",
        "192.0.2.0/24", "198.18.0.0/15", "2001:db8::/32", "2a00::/16", "10.0.0.0/0", "10.0.0.0/33", "::/129",
        "ipv4", "ipv6", "IPv4", "", "lo", "eth0", "wlp3s0", "a/b", "0123456789abcdef", "org.example.App", "web",
        "caf\xc3\xa9", "192.0.2.1/+8", "192.0.2.1/ 8",
};

static int pipe_fd = -1;
static sd_bus *fz_bus;

/* a string of the input (UTF-8, as D-Bus requires), or one of the samples */
static char *fz_string(fz_reader *r) {
        size_t n = fz_u8(r);
        g_autofree char *raw = NULL;

        if (n == 0xff)
                return g_strdup(samples[fz_u8(r) % G_N_ELEMENTS(samples)]);
        if (n == 0xfe)
                n = fz_u16(r) % 2048; /* long ones: the limits */
        n = MIN(n, r->left);
        raw = g_strndup((const char *) r->p, n);
        r->p += n;
        r->left -= n;
        return g_utf8_make_valid(raw, -1);
}

/* appends a value of the complete type `type` (one of the lists above) */
static int fz_append(sd_bus_message *m, const char *type, fz_reader *r, int depth) {
        int k;

        switch (type[0]) {
        case 'u': {
                uint32_t v = fz_u32(r);
                return sd_bus_message_append_basic(m, 'u', &v);
        }
        case 'i': {
                int32_t v = (int32_t) fz_u32(r);
                return sd_bus_message_append_basic(m, 'i', &v);
        }
        case 'q': {
                uint16_t v = fz_u16(r);
                return sd_bus_message_append_basic(m, 'q', &v);
        }
        case 'n': {
                int16_t v = (int16_t) fz_u16(r);
                return sd_bus_message_append_basic(m, 'n', &v);
        }
        case 'y': {
                uint8_t v = fz_u8(r);
                return sd_bus_message_append_basic(m, 'y', &v);
        }
        case 'b': {
                int v = fz_u8(r) & 1;
                return sd_bus_message_append_basic(m, 'b', &v);
        }
        case 't': case 'x': {
                uint64_t v = (uint64_t) fz_u32(r) << 32 | fz_u32(r);
                return sd_bus_message_append_basic(m, type[0], &v);
        }
        case 'd': {
                uint64_t bits = (uint64_t) fz_u32(r) << 32 | fz_u32(r);
                double v;
                memcpy(&v, &bits, sizeof(v));
                return sd_bus_message_append_basic(m, 'd', &v);
        }
        case 's': {
                g_autofree char *s = fz_string(r);
                return sd_bus_message_append_basic(m, 's', s);
        }
        case 'o': {
                g_autofree char *s = fz_string(r);
                g_autofree char *path = g_strdup_printf("/x%u", (unsigned) strlen(s));
                return sd_bus_message_append_basic(m, 'o', path);
        }
        case 'g':
                return sd_bus_message_append_basic(m, 'g', fz_u8(r) & 1 ? "a{sv}" : "s");
        case 'h':
                return sd_bus_message_append_basic(m, 'h', &pipe_fd);
        case 'v': {
                const char *inner = depth < 3 ? other_types[fz_u8(r) % G_N_ELEMENTS(other_types)] : "u";
                k = sd_bus_message_open_container(m, 'v', inner);
                if (k >= 0)
                        k = fz_append(m, inner, r, depth + 1);
                return k < 0 ? k : sd_bus_message_close_container(m);
        }
        case '(': /* (sq) */
                k = sd_bus_message_open_container(m, 'r', "sq");
                if (k >= 0)
                        k = fz_append(m, "s", r, depth);
                if (k >= 0)
                        k = fz_append(m, "q", r, depth);
                return k < 0 ? k : sd_bus_message_close_container(m);
        case 'a': {
                const char *elem = type + 1;
                size_t n = fz_u8(r) % (depth < 2 ? 12 : 2);

                if (strcmp(elem, "{sv}") == 0) {
                        k = sd_bus_message_open_container(m, 'a', "{sv}");
                        for (size_t i = 0; k >= 0 && i < n; i++) {
                                k = sd_bus_message_open_container(m, 'e', "sv");
                                if (k >= 0)
                                        k = fz_append(m, "s", r, depth);
                                if (k >= 0)
                                        k = fz_append(m, "v", r, depth + 1);
                                if (k >= 0)
                                        k = sd_bus_message_close_container(m);
                        }
                        return k < 0 ? k : sd_bus_message_close_container(m);
                }
                k = sd_bus_message_open_container(m, 'a', elem);
                for (size_t i = 0; k >= 0 && i < n; i++)
                        k = fz_append(m, elem, r, depth + 1);
                return k < 0 ? k : sd_bus_message_close_container(m);
        }
        default:
                return -EINVAL;
        }
}

/* what the input asked for, as far as the privilege goes */
typedef struct fz_asked {
        bool privileged; /* external-address, third-party or persistent=true, of the right type */
} fz_asked;

static sd_bus_message *fz_new_message(void) {
        sd_bus_message *m = NULL;

        fuzz_check(sd_bus_message_new_method_call(fz_bus, &m, PCP1_BUS_NAME, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE,
                                                  "AddMapping") >= 0,
                   "new message");
        return m;
}

static sd_bus_message *fz_seal(sd_bus_message *m) {
        static uint64_t cookie = 1;

        fuzz_check(sd_bus_message_seal(m, cookie++, 0) >= 0, "seal");
        fuzz_check(sd_bus_message_rewind(m, true) >= 0, "rewind");
        return m;
}

/* the options of the input; NULL when they cannot be put in a message (too deep, ...) */
static sd_bus_message *fz_build(fz_reader *r, fz_asked *asked) {
        sd_bus_message *m = fz_new_message();
        int k = sd_bus_message_open_container(m, 'a', "{sv}");

        for (size_t n = 0; k >= 0 && r->left > 0 && n < 32; n++) {
                uint8_t sel = fz_u8(r), t = fz_u8(r);
                g_autofree char *name = sel < 0xe0 ? g_strdup(known_names[sel % G_N_ELEMENTS(known_names)]) : fz_string(r);
                const char *type = other_types[t % G_N_ELEMENTS(other_types)];
                size_t before = r->left;

                for (size_t i = 0; t == 0 && i < G_N_ELEMENTS(known_names); i++)
                        if (strcmp(name, known_names[i]) == 0)
                                type = wanted_types[i];
                k = sd_bus_message_open_container(m, 'e', "sv");
                if (k >= 0)
                        k = sd_bus_message_append_basic(m, 's', name);
                if (k >= 0)
                        k = sd_bus_message_open_container(m, 'v', type);
                if (k >= 0) {
                        /* a boolean is the low bit of the octet it is read from (none left: false) */
                        bool bit = before > 0 && (r->p[0] & 1);

                        k = fz_append(m, type, r, 1);
                        if (strcmp(type, "b") == 0 && strcmp(name, "persistent") == 0 && bit)
                                asked->privileged = true;
                        if (strcmp(type, "s") == 0 &&
                            (strcmp(name, "external-address") == 0 || strcmp(name, "third-party") == 0))
                                asked->privileged = true;
                }
                if (k >= 0)
                        k = sd_bus_message_close_container(m);
                if (k >= 0)
                        k = sd_bus_message_close_container(m);
        }
        if (k >= 0)
                k = sd_bus_message_close_container(m);
        if (k < 0) {
                sd_bus_message_unref(m);
                return NULL;
        }
        return fz_seal(m);
}

static void check_request(const pcpd_options *p) {
        const pcpd_options *r = p;

        fuzz_check(r->lifetime == 0 || r->lifetime >= 120, "lifetime %u", r->lifetime);
        fuzz_check(r->n_filters <= 8, "%u filters", r->n_filters);
        if (r->n_filters > 0) {
                static pcp_msg msg;
                static uint8_t out[PCP_MAX_MSG_LEN];
                size_t len;

                pcp_msg_init(&msg, false, PCP_OPCODE_MAP);
                msg.protocol = 6;
                msg.internal_port = 1;
                msg.n_filters = r->n_filters;
                memcpy(msg.filters, r->filters, sizeof(pcp_filter) * r->n_filters);
                fuzz_check(pcp_encode(&msg, out, sizeof(out), &len) == PCP_WIRE_OK, "filters the wire refuses");
        }
        fuzz_check(!r->prefer_failure || r->suggested_port != 0, "prefer-failure without a port");
        fuzz_check(p->for_socket || r->suggested_port == 0, "a suggested port option without a socket");
        fuzz_check(r->family == 0 || r->family == AF_INET || r->family == AF_INET6, "family %d", r->family);
        if (p->description != NULL)
                fuzz_check(g_utf8_validate(p->description, -1, NULL) && strlen(p->description) <= PCP1_MAX_DESCRIPTION,
                           "description");
        if (p->app_id != NULL)
                fuzz_check(g_utf8_validate(p->app_id, -1, NULL) && p->app_id[0] != '\0' &&
                                   strlen(p->app_id) <= PCP1_MAX_APP_ID,
                           "app id");
        if (p->interface != NULL)
                fuzz_check(strlen(p->interface) >= 1 && strlen(p->interface) <= 15 && strchr(p->interface, '/') == NULL,
                           "interface '%s'", p->interface);
        if (r->has_third_party)
                fuzz_check(!pcp_addr_is_unspecified(&r->third_party), "unspecified third party");
}

/* the request as canonical options */
static sd_bus_message *fz_write_back(const pcpd_options *p) {
        const pcpd_options *r = p;
        sd_bus_message *m = fz_new_message();
        char buf[PCPD_PREFIX_STRLEN];

        fuzz_check(sd_bus_message_open_container(m, 'a', "{sv}") >= 0, "open");
        if (r->lifetime != 0)
                fuzz_check(sd_bus_message_append(m, "{sv}", "lifetime", "u", r->lifetime) >= 0, "lifetime");
        if (p->description != NULL)
                fuzz_check(sd_bus_message_append(m, "{sv}", "description", "s", p->description) >= 0, "description");
        if (r->family != 0)
                fuzz_check(sd_bus_message_append(m, "{sv}", "family", "s", r->family == AF_INET ? "ipv4" : "ipv6") >= 0,
                           "family");
        if (p->interface != NULL)
                fuzz_check(sd_bus_message_append(m, "{sv}", "interface", "s", p->interface) >= 0, "interface");
        if (r->has_external_address)
                fuzz_check(sd_bus_message_append(m, "{sv}", "external-address", "s",
                                                 pcp_addr_to_string(&r->external_address, buf)) >= 0,
                           "external-address");
        if (r->suggested_port != 0)
                fuzz_check(sd_bus_message_append(m, "{sv}", "suggested-external-port", "q", r->suggested_port) >= 0,
                           "port");
        if (r->prefer_failure)
                fuzz_check(sd_bus_message_append(m, "{sv}", "prefer-failure", "b", 1) >= 0, "prefer-failure");
        if (r->n_filters > 0) {
                fuzz_check(sd_bus_message_open_container(m, 'e', "sv") >= 0 &&
                                   sd_bus_message_append(m, "s", "filters") >= 0 &&
                                   sd_bus_message_open_container(m, 'v', "a(sq)") >= 0 &&
                                   sd_bus_message_open_container(m, 'a', "(sq)") >= 0,
                           "filters");
                for (uint8_t i = 0; i < r->n_filters; i++)
                        fuzz_check(sd_bus_message_append(m, "(sq)",
                                                         pcpd_prefix_to_string(&r->filters[i].remote_addr,
                                                                               r->filters[i].prefix_len, buf),
                                                         r->filters[i].remote_port) >= 0,
                                   "filter");
                fuzz_check(sd_bus_message_close_container(m) >= 0 && sd_bus_message_close_container(m) >= 0 &&
                                   sd_bus_message_close_container(m) >= 0,
                           "filters");
        }
        if (r->has_third_party)
                fuzz_check(sd_bus_message_append(m, "{sv}", "third-party", "s", pcp_addr_to_string(&r->third_party, buf)) >=
                                   0,
                           "third-party");
        if (r->persistent)
                fuzz_check(sd_bus_message_append(m, "{sv}", "persistent", "b", 1) >= 0, "persistent");
        if (p->app_id != NULL)
                fuzz_check(sd_bus_message_append(m, "{sv}", "app-id", "s", p->app_id) >= 0, "app-id");
        fuzz_check(sd_bus_message_close_container(m) >= 0, "close");
        return fz_seal(m);
}

/* the first field in which a and b differ, NULL when none does */
static const char *fz_diff(const pcpd_options *a, const pcpd_options *b) {
        const pcpd_options *x = a, *y = b;

        if (x->n_filters != y->n_filters)
                return "n_filters";
        for (uint8_t i = 0; i < x->n_filters; i++)
                if (x->filters[i].prefix_len != y->filters[i].prefix_len ||
                    x->filters[i].remote_port != y->filters[i].remote_port ||
                    !pcp_addr_eq(&x->filters[i].remote_addr, &y->filters[i].remote_addr))
                        return "filters";
        if (x->lifetime != y->lifetime)
                return "lifetime";
        if (g_strcmp0(a->description, b->description) != 0)
                return "description";
        if (x->family != y->family)
                return "family";
        if (g_strcmp0(a->interface, b->interface) != 0)
                return "interface";
        if (x->has_external_address != y->has_external_address ||
            (x->has_external_address && !pcp_addr_eq(&x->external_address, &y->external_address)))
                return "external-address";
        if (x->suggested_port != y->suggested_port)
                return "suggested-external-port";
        if (x->prefer_failure != y->prefer_failure)
                return "prefer-failure";
        if (x->has_third_party != y->has_third_party ||
            (x->has_third_party && !pcp_addr_eq(&x->third_party, &y->third_party)))
                return "third-party";
        if (x->persistent != y->persistent)
                return "persistent";
        if (g_strcmp0(a->app_id, b->app_id) != 0)
                return "app-id";
        return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        int fds[2], p[2];

        /* a bus that is started (messages need one) and never used: one end of a socket pair */
        fuzz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0, "socketpair");
        fuzz_check(sd_bus_new(&fz_bus) >= 0 && sd_bus_set_fd(fz_bus, fds[0], fds[0]) >= 0 && sd_bus_start(fz_bus) >= 0,
                   "sd-bus");
        fuzz_check(pipe2(p, O_CLOEXEC) == 0, "pipe");
        pipe_fd = p[0];
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fz_reader in = { data, size };
        uint8_t flags = fz_u8(&in);
        fz_asked asked = { 0 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        pcpd_options p = { .for_socket = flags & 1, .peer = flags & 2 }, again = { .for_socket = flags & 1, .peer = flags & 2 };
        sd_bus_message *m, *back;
        int r;

        m = fz_build(&in, &asked);
        if (m == NULL)
                return 0;
        r = pcpd_options_parse(m, &p, &error);
        sd_bus_message_unref(m);
        if (r < 0) {
                fuzz_check(sd_bus_error_is_set(&error), "refused with a bare errno: %s", strerror(-r));
                fuzz_check(strcmp(error.name, SD_BUS_ERROR_INVALID_ARGS) == 0, "refused with %s", error.name);
                fuzz_check(error.message != NULL && g_utf8_validate(error.message, -1, NULL), "the error is no UTF-8 sentence");
                pcpd_options_clear(&p);
                sd_bus_error_free(&error);
                return 0;
        }
        check_request(&p);
        fuzz_check(p.need_privileged == asked.privileged, "need_privileged %d for options that %s", p.need_privileged,
                   asked.privileged ? "need it" : "do not");

        back = fz_write_back(&p);
        r = pcpd_options_parse(back, &again, &error);
        sd_bus_message_unref(back);
        fuzz_check(r >= 0, "the request written back is refused: %s", error.message);
        fuzz_check(fz_diff(&p, &again) == NULL, "the request written back reads differently: %s", fz_diff(&p, &again));
        /* written once each, the privileged options are exactly what needs the privilege
         * (given twice, persistent=true then false still asks for it: fails closed) */
        {
                bool privileged = p.has_external_address || p.has_third_party || p.persistent;

                fuzz_check(again.need_privileged == privileged, "need_privileged %d for a request that %s",
                           again.need_privileged, privileged ? "needs it" : "does not");
                fuzz_check(!privileged || p.need_privileged, "a privileged request without need_privileged");
        }
        pcpd_options_clear(&p);
        pcpd_options_clear(&again);
        sd_bus_error_free(&error);
        return 0;
}
