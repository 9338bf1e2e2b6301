/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"

#include "pf-format.h"

#include <glib/gi18n.h>
#include <string.h>

#include "pcp1-contract.h"

PfSituation pf_situation(gboolean running, const char *state, GVariant *servers) {
        if (!running || state == NULL || *state == '\0')
                return PF_SITUATION_NOT_RUNNING;
        if (g_str_equal(state, PCP1_STATE_DISABLED))
                return PF_SITUATION_DISABLED;
        if (g_str_equal(state, PCP1_STATE_DISCOVERING))
                return PF_SITUATION_DISCOVERING;
        if (g_str_equal(state, PCP1_STATE_NO_NETWORK))
                return PF_SITUATION_NO_ROUTER;
        if (g_str_equal(state, PCP1_STATE_UNSUPPORTED))
                return PF_SITUATION_UNSUPPORTED;
        if (g_str_equal(state, PCP1_STATE_READY)) {
                /* "ready" covers both a router that maps and a host with a public address:
                 * the servers tell which (one that answers PCP or NAT-PMP means a router) */
                if (servers != NULL && g_variant_is_of_type(servers, G_VARIANT_TYPE("a(ssssu)"))) {
                        GVariantIter iter;
                        const char *protocol;

                        g_variant_iter_init(&iter, servers);
                        while (g_variant_iter_next(&iter, "(&s&s&s&su)", NULL, NULL, NULL, &protocol, NULL))
                                if (g_str_equal(protocol, PCP1_PROTOCOL_PCP) ||
                                    g_str_equal(protocol, PCP1_PROTOCOL_NATPMP) ||
                                    g_str_equal(protocol, PCP1_PROTOCOL_UPNP_IGD))
                                        return PF_SITUATION_ROUTER;
                }
                return PF_SITUATION_DIRECT;
        }
        /* a state this version does not know yet: say what is certain */
        return PF_SITUATION_DISCOVERING;
}

const char *pf_situation_sentence(PfSituation s) {
        switch (s) {
        case PF_SITUATION_NOT_RUNNING:
                return _("Service not running");
        case PF_SITUATION_DISABLED:
                return _("Switched off: applications cannot open ports to the Internet");
        case PF_SITUATION_DISCOVERING:
                return _("Looking for a router that accepts port-forwarding requests…");
        case PF_SITUATION_ROUTER:
                return _("Your router accepts port-forwarding requests");
        case PF_SITUATION_DIRECT:
                return _("This computer is directly reachable from the Internet");
        case PF_SITUATION_NO_ROUTER:
                return _("No router found that could forward ports");
        case PF_SITUATION_UNSUPPORTED:
                return _("No router on this network supports automatic port forwarding");
        case PF_SITUATION_CONNECTING:
                return _("Connecting to the port forwarding service…");
        }
        return "";
}

const char *pf_situation_banner(PfSituation s) {
        switch (s) {
        case PF_SITUATION_NOT_RUNNING:
                return _("The port forwarding service is not running.");
        case PF_SITUATION_DISABLED:
                return _("Port forwarding is switched off. Applications cannot open ports to the Internet.");
        case PF_SITUATION_NO_ROUTER:
                return _("No router found on this network. Applications cannot open ports to the Internet.");
        case PF_SITUATION_UNSUPPORTED:
                return _("No router on this network supports automatic port forwarding.");
        case PF_SITUATION_CONNECTING:
        case PF_SITUATION_DISCOVERING:
        case PF_SITUATION_ROUTER:
        case PF_SITUATION_DIRECT:
                break;
        }
        return NULL;
}

char *pf_format_start_failure(const char *message) {
        g_autofree char *reason = g_strstrip(g_strdup(message != NULL ? message : ""));
        size_t len = strlen(reason);

        /* the sentence ends with its own full stop */
        while (len > 0 && reason[len - 1] == '.')
                reason[--len] = '\0';
        if (len == 0)
                return g_strdup(_("The port forwarding service could not be started. "
                                  "“systemctl status pcpd” tells why."));
        /* TRANSLATORS: %s is the system's reason, e.g. "Process org.freedesktop.PCP1 exited with
         * status 1"; "systemctl status pcpd" is a command, not to be translated */
        return g_strdup_printf(_("The port forwarding service could not be started: %s. "
                                 "“systemctl status pcpd” tells why."),
                               reason);
}

char *pf_format_protocol(const char *protocol) {
        static const char *const known[] = { "tcp", "udp", "sctp", "dccp" };

        if (protocol == NULL || *protocol == '\0')
                return g_strdup("?");
        for (size_t i = 0; i < G_N_ELEMENTS(known); i++)
                if (g_str_equal(protocol, known[i]))
                        return g_ascii_strup(protocol, -1);
        /* TRANSLATORS: an IP protocol without a name, %s is its number */
        return g_strdup_printf(_("Protocol %s"), protocol);
}

/* Characters that would change what a line shows beyond themselves: C0 and C1 controls
 * (new lines, the bell, escapes), the line and paragraph separators, and the bidi embeddings,
 * overrides and isolates (a "\u202e" turns the rest of the line around). */
static gboolean hidden_effect(gunichar c) {
        return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029 || (c >= 0x202a && c <= 0x202e) ||
               (c >= 0x2066 && c <= 0x2069);
}

char *pf_format_text(const char *text) {
        g_autofree char *valid = g_utf8_make_valid(text != NULL ? text : "", -1);
        GString *out = g_string_sized_new(strlen(valid));

        for (const char *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);
                g_string_append_unichar(out, hidden_effect(c) ? 0xfffd : c);
        }
        return g_string_free(out, FALSE);
}

char *pf_format_endpoint(const char *address, guint port) {
        if (address == NULL || *address == '\0')
                return g_strdup_printf("%u", port);
        if (strchr(address, ':') != NULL)
                return g_strdup_printf("[%s]:%u", address, port);
        return g_strdup_printf("%s:%u", address, port);
}

char *pf_format_duration(gint64 seconds) {
        if (seconds < 60)
                /* TRANSLATORS: a short duration in seconds */
                return g_strdup_printf(ngettext("%u second", "%u seconds", (gulong) MAX(seconds, 0)),
                                       (guint) MAX(seconds, 0));
        if (seconds < 3600) {
                guint min = (guint) ((seconds + 30) / 60);
                if (min == 60)
                        return g_strdup_printf(_("%u h"), 1u);
                /* TRANSLATORS: a duration in minutes */
                return g_strdup_printf(_("%u min"), min);
        }
        if (seconds < 2 * 86400) {
                guint h = (guint) (seconds / 3600), min = (guint) ((seconds % 3600) / 60);
                if (min == 0)
                        /* TRANSLATORS: a duration in hours */
                        return g_strdup_printf(_("%u h"), h);
                /* TRANSLATORS: a duration in hours and minutes */
                return g_strdup_printf(_("%u h %u min"), h, min);
        }
        return g_strdup_printf(ngettext("%u day", "%u days", (gulong) (seconds / 86400)),
                               (guint) (seconds / 86400));
}

char *pf_format_failure(const char *error) {
        static const struct {
                const char *name;
                const char *words;
        } table[] = {
                { "NO_RESOURCES", N_("the router has no room for more forwarded ports") },
                { "NOT_AUTHORIZED", N_("the router does not allow this computer to forward ports") },
                { "CANNOT_PROVIDE_EXTERNAL", N_("the router cannot give out this port") },
                { "ADDRESS_MISMATCH", N_("the router sees this computer under another address") },
                { "USER_EX_QUOTA", N_("this computer has reached the router's limit of forwarded ports") },
                { "UNSUPP_PROTOCOL", N_("the router cannot forward this protocol") },
                { "EXCESSIVE_REMOTE_PEERS", N_("the router keeps too many connections for this port") },
                { "NETWORK_FAILURE", N_("the router has a network problem") },
                { "UNSUPP_VERSION", N_("the router does not understand the request") },
                { "UNSUPP_OPCODE", N_("the router does not understand the request") },
                { "UNSUPP_OPTION", N_("the router does not understand the request") },
                { "MALFORMED_REQUEST", N_("the router does not understand the request") },
                { "MALFORMED_OPTION", N_("the router does not understand the request") },
                /* NAT-PMP's name of NO_RESOURCES */
                { "OUT_OF_RESOURCES", N_("the router has no room for more forwarded ports") },
                { PCP1_MAPPING_ERROR_UNREACHABLE, N_("the router does not answer") },
                { PCP1_MAPPING_ERROR_EXPIRED, N_("the port ran out before it could be renewed") },
                { PCP1_MAPPING_ERROR_DISABLED, N_("port forwarding is switched off") },
                { PCP1_MAPPING_ERROR_NO_SERVER, N_("no router that can forward ports is known at the moment") },
                { "UNSUPPORTED", N_("the router does not support this kind of request") },
                /* UPnP-IGD */
                { "NO_IGD", N_("the router's UPnP service went away") },
                { "TIMEOUT", N_("the router did not answer in time") },
                { "INVALID_RESPONSE", N_("the router's answer could not be used") },
                { "UPNP_REFUSED", N_("the router refused the UPnP request") },
                /* a grant no application could use */
                { "NO_EXTERNAL_ADDRESS", N_("the router gave no external address") },
                { "WRONG_ADDRESS_FAMILY", N_("the router gave an external address of the wrong kind (IPv4 or IPv6)") },
                { "UNUSABLE_EXTERNAL_ADDRESS", N_("the router gave an external address the Internet cannot reach") },
                { "NO_EXTERNAL_PORT", N_("the router gave no external port") },
                { "SHORT_LIFETIME", N_("the router granted the port for too short a time") },
                { "UNKNOWN", N_("the router refused for a reason it did not name") },
        };

        if (error == NULL || *error == '\0')
                return g_strdup(_("the reason is unknown"));
        for (size_t i = 0; i < G_N_ELEMENTS(table); i++)
                if (g_str_equal(error, table[i].name))
                        return g_strdup(_(table[i].words));
        /* TRANSLATORS: %s is a failure code this version does not know, such as "NEW_CODE"
         * (from the router or the service) */
        return g_strdup_printf(_("a problem this version does not know (%s)"), error);
}

const char *pf_format_bus_error(const char *name) {
        static const struct {
                const char *name;
                const char *words;
        } table[] = {
                { PCP1_ERROR_DISABLED, N_("port forwarding is switched off") },
                { PCP1_ERROR_NOT_AUTHORIZED, N_("you are not allowed to do this") },
                { PCP1_ERROR_PORT_NOT_OWNED, N_("no program of yours uses this port") },
                { PCP1_ERROR_CONFLICT, N_("another program holds this port") },
                { PCP1_ERROR_QUOTA_EXCEEDED, N_("you have reached the limit of forwarded ports") },
                { PCP1_ERROR_NO_SERVER, N_("no router that can forward ports is known") },
                { PCP1_ERROR_UNSUPPORTED, N_("the router or the service does not support this") },
                { PCP1_ERROR_SERVER_REFUSED, N_("the router refused") },
                { PCP1_ERROR_NOT_FOUND, N_("it is gone already") },
                { PCP1_ERROR_CANNOT_SAVE_STATE, N_("the service cannot save its state") },
                { PCP1_ERROR_INVALID_CONFIGURATION, N_("the configuration is not valid") },
                { PCP1_ERROR_TOO_MANY_PENDING, N_("too many requests are waiting for a password") },
                { PCP1_ERROR_STOPPING, N_("the service is stopping") },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(table); i++)
                if (g_strcmp0(name, table[i].name) == 0)
                        return _(table[i].words);
        return NULL;
}

char *pf_format_call_error(const char *what, const char *name, const char *message) {
        const char *words = pf_format_bus_error(name);

        if (words == NULL || message == NULL || *message == '\0')
                /* TRANSLATORS: "Could not stop forwarding the port: <why>" */
                return g_strdup_printf(_("%s: %s"), what, words != NULL ? words : message != NULL ? message : "");
        /* TRANSLATORS: "<what failed>: <why> — <the service's own sentence, in English>" */
        return g_strdup_printf(_("%s: %s — %s"), what, words, message);
}

const char *pf_format_server_protocol(const char *protocol) {
        if (g_strcmp0(protocol, PCP1_PROTOCOL_PCP) == 0)
                return _("Port Control Protocol");
        if (g_strcmp0(protocol, PCP1_PROTOCOL_NATPMP) == 0)
                return _("NAT-PMP");
        if (g_strcmp0(protocol, PCP1_PROTOCOL_UPNP_IGD) == 0)
                return _("UPnP-IGD");
        return _("Not answering");
}

char *pf_format_server_source(const char *source, const char *interface) {
        gboolean have_if = interface != NULL && *interface != '\0';

        if (g_strcmp0(source, PCP1_SOURCE_DHCPV4) == 0)
                return have_if ? g_strdup_printf(_("announced by DHCP on %s"), interface)
                               : g_strdup(_("announced by DHCP"));
        if (g_strcmp0(source, PCP1_SOURCE_DHCPV6) == 0)
                return have_if ? g_strdup_printf(_("announced by DHCPv6 on %s"), interface)
                               : g_strdup(_("announced by DHCPv6"));
        if (g_strcmp0(source, PCP1_SOURCE_GATEWAY) == 0)
                return have_if ? g_strdup_printf(_("default router on %s"), interface)
                               : g_strdup(_("default router"));
        if (g_strcmp0(source, PCP1_SOURCE_CONFIG) == 0)
                return g_strdup(_("configured by the administrator"));
        if (g_strcmp0(source, PCP1_SOURCE_SSDP) == 0)
                return have_if ? g_strdup_printf(_("found by UPnP on %s"), interface) : g_strdup(_("found by UPnP"));
        return g_strdup(source != NULL ? source : "");
}

char *pf_format_mapping_title(const PfMappingText *m) {
        g_autofree char *proto = pf_format_protocol(m->protocol);

        if (m->external_address != NULL && *m->external_address != '\0' && m->external_port != 0) {
                g_autofree char *ext = pf_format_endpoint(m->external_address, m->external_port);
                /* TRANSLATORS: "TCP 22000 → 198.51.100.7:22000": a local port, where the Internet reaches it */
                return g_strdup_printf(_("%s %u → %s"), proto, m->internal_port, ext);
        }
        /* TRANSLATORS: "TCP 22000": a local port not forwarded (yet) */
        return g_strdup_printf(_("%s %u"), proto, m->internal_port);
}

char *pf_format_mapping_subtitle(const PfMappingText *m, gint64 now_us) {
        g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
        gboolean direct = m->server == NULL || *m->server == '\0';

        /* the application's own words first: it knows what the port is for (shown as they
         * are, but with no control character and no reordering of the rest of the line) */
        if (m->description != NULL && *m->description != '\0')
                g_ptr_array_add(parts, pf_format_text(m->description));

        if (g_strcmp0(m->opcode, PCP1_OPCODE_PEER) == 0) {
                g_autofree char *peer = pf_format_endpoint(m->remote_address, m->remote_port);
                /* TRANSLATORS: a PEER mapping: the remote end of an outgoing connection */
                g_ptr_array_add(parts, g_strdup_printf(_("Connection with %s"), peer));
        }

        if (g_strcmp0(m->state, PCP1_MAPPING_FAILED) == 0 && g_strcmp0(m->error, PCP1_MAPPING_ERROR_NO_SERVER) == 0)
                /* nothing refused: the mapping waits for a server, and is made when one comes */
                g_ptr_array_add(parts, g_strdup(_("Waiting for a router that can forward ports")));
        else if (g_strcmp0(m->state, PCP1_MAPPING_FAILED) == 0) {
                g_autofree char *why = pf_format_failure(m->error);
                /* TRANSLATORS: %s says why, e.g. "the router does not answer" */
                g_ptr_array_add(parts, g_strdup_printf(_("Failed: %s; trying again"), why));
        } else if (g_strcmp0(m->state, PCP1_MAPPING_PENDING) == 0)
                g_ptr_array_add(parts, g_strdup(direct ? _("Waiting") : _("Waiting for the router")));
        else {
                gboolean renewing = g_strcmp0(m->state, PCP1_MAPPING_RENEWING) == 0;
                g_ptr_array_add(parts, g_strdup(renewing ? _("Renewing") : _("Active")));
                if (m->expires_at_us > 0) {
                        gint64 left = ((gint64) m->expires_at_us - now_us) / G_USEC_PER_SEC;
                        if (left > 0) {
                                g_autofree char *d = pf_format_duration(left);
                                g_ptr_array_add(parts, renewing
                                                ? g_strdup_printf(_("expires in %s"), d)
                                                : g_strdup_printf(_("expires in %s, renewed automatically"), d));
                        }
                } else if (direct)
                        g_ptr_array_add(parts, g_strdup(_("reachable directly, no router needed")));
        }

        if (m->persistent)
                g_ptr_array_add(parts, g_strdup(_("kept when the application exits")));
        if (m->other_user != NULL)
                /* TRANSLATORS: the user a mapping belongs to */
                g_ptr_array_add(parts, g_strdup_printf(_("user %s"), m->other_user));

        g_ptr_array_add(parts, NULL);
        return g_strjoinv(" · ", (char **) parts->pdata);
}
