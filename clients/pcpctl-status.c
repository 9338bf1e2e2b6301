/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* status and list: what pcpd knows, as resolvectl and networkctl show theirs. */

#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "pcpctl-format.h"
#include "pcpctl-output.h"
#include "pcpctl-util.h"
#include "pcpctl.h"

static int print_json_document(void (*write)(Json *j, const void *data), const void *data) {
        Json j;

        json_init(&j, stdout, arg_json);
        write(&j, data);
        return json_finish(&j);
}

static void write_manager(Json *j, const void *data) {
        json_manager(j, data);
}

/* "camera (mapping 7), web (not mapped yet)"; NULL when none is declared */
static char *declared_text(const DeclaredList *d) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        if (d->names == NULL || d->names[0] == NULL)
                return NULL;
        f = open_memstream(&buf, &size);
        if (f == NULL)
                return NULL;
        for (size_t k = 0; d->names[k] != NULL; k++) {
                _cleanup_free_ char *t = text_sanitize(d->names[k]);

                fprintf(f, "%s%s ", k > 0 ? ", " : "", t != NULL ? t : "?");
                if (d->mappings == NULL || d->mappings[k] == NULL || streq(d->mappings[k], "/"))
                        fputs(_("(not mapped yet)"), f);
                else
                        fprintf(f, _("(mapping %s)"), mapping_id(d->mappings[k]));
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* "a, b, c"; NULL when the list is empty */
static char *join_sanitized(char *const *l) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        if (l == NULL || l[0] == NULL)
                return NULL;
        f = open_memstream(&buf, &size);
        if (f == NULL)
                return NULL;
        for (char *const *s = l; *s != NULL; s++) {
                _cleanup_free_ char *t = text_sanitize(*s);

                if (s != l)
                        fputs(", ", f);
                fputs(t != NULL ? t : "?", f);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

typedef struct StatusLine {
        const char *label;
        char *value;       /* NULL: "-" in grey */
        const char *color; /* of the value */
} StatusLine;

static void print_status_lines(StatusLine *lines, size_t n) {
        size_t width = 0;

        /* labels right-aligned on the colon, as timedatectl and resolvectl do */
        for (size_t k = 0; k < n; k++)
                if (lines[k].label != NULL && text_width(lines[k].label) > width)
                        width = text_width(lines[k].label);
        for (size_t k = 0; k < n; k++) {
                const char *color = lines[k].value != NULL ? strempty(lines[k].color) : ansi_grey();

                if (lines[k].label == NULL)
                        continue;
                printf("%*s%s: %s%s%s\n", (int) (width - text_width(lines[k].label)), "", lines[k].label, color,
                       lines[k].value != NULL ? lines[k].value : "-", color[0] != '\0' ? ansi_normal() : "");
        }
}

/* NetworkManager and DhcpOptions, two manager properties of a pcpd with NetworkManager
 * discovery, read from the GetAll reply the status is made of: no Get of their own (one
 * round trip to the bus and pcpd less, two when NetworkManager is followed). */
typedef struct NmInfo {
        char *state;  /* NULL: no such property (an older pcpd) */
        bool has_dhcp;
        char **dhcp;  /* interface, family, state; interface, family, state; ... */
        size_t n_dhcp; /* strings, three per option */
} NmInfo;

static void nm_info_done(NmInfo *nm) {
        free(nm->state);
        for (size_t k = 0; k < nm->n_dhcp; k++)
                free(nm->dhcp[k]);
        free(nm->dhcp);
        *nm = (NmInfo){0};
}

static int nm_push(NmInfo *nm, const char *s) {
        char **l = realloc(nm->dhcp, (nm->n_dhcp + 1) * sizeof(char *));

        if (l == NULL)
                return -ENOMEM;
        nm->dhcp = l;
        l[nm->n_dhcp] = strdup(s);
        if (l[nm->n_dhcp] == NULL)
                return -ENOMEM;
        nm->n_dhcp++;
        return 0;
}

/* PropOther for manager_info_get_other(): a property of another type is skipped, as
 * when Get failed */
static int read_nm(sd_bus_message *m, const char *name, void *userdata) {
        NmInfo *nm = userdata;
        const char *s, *ifname, *family, *state;
        int r;

        if (streq(name, "NetworkManager")) {
                r = sd_bus_message_enter_container(m, 'v', "s");
                if (r <= 0)
                        return r == -ENXIO ? 0 : r;
                r = sd_bus_message_read_basic(m, 's', &s);
                if (r < 0)
                        return r;
                free(nm->state);
                nm->state = strdup(s);
                if (nm->state == NULL)
                        return -ENOMEM;
        } else if (streq(name, "DhcpOptions")) {
                r = sd_bus_message_enter_container(m, 'v', "a(sss)");
                if (r <= 0)
                        return r == -ENXIO ? 0 : r;
                r = sd_bus_message_enter_container(m, 'a', "(sss)");
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_read(m, "(sss)", &ifname, &family, &state)) > 0)
                        if ((r = nm_push(nm, ifname)) < 0 || (r = nm_push(nm, family)) < 0 ||
                            (r = nm_push(nm, state)) < 0)
                                return r;
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                nm->has_dhcp = true;
        } else
                return 0;
        r = sd_bus_message_exit_container(m);
        return r < 0 ? r : 1;
}

/* Where DHCP-announced servers stand (pcpd with NetworkManager discovery; nothing from an
 * older pcpd): whether NetworkManager is followed, and per interface and family whether
 * the DHCP option is asked for and given. */
static void print_dhcp_options(const NmInfo *nm, const ServerList *servers) {
        if (nm->state == NULL)
                return;
        printf("\n");
        /* short lines: a pager (less -FRX) only quits by itself on what fits the screen */
        if (!streq(nm->state, "running")) {
                bool routers = false;

                /* the bus does not tell UseDefaultRouters=: a server of source "gateway" says
                 * it is on; without one it may be off, or on with no default route, and the
                 * line is worded so that it holds either way */
                for (size_t k = 0; k < servers->n; k++)
                        routers = routers || streq_ptr(servers->items[k].source, PCP1_SOURCE_GATEWAY);
                printf(_("NetworkManager: %s.\n"
                         "pcpd learns no PCP server from DHCP now: it uses pcpd.conf's Servers=\n"
                         "%s\n"),
                       streq(nm->state, "unavailable") ? _("not followed (see the journal)") : _("not running"),
                       routers ? _("and the default routers.")
                               : _("and the default routers if UseDefaultRouters= is on."));
                return;
        }
        if (!nm->has_dhcp)
                return;
        printf(_("NetworkManager: running. PCP server DHCP options (RFC 7291):\n"));
        for (size_t k = 0; k + 2 < nm->n_dhcp; k += 3) {
                const char *ifname = nm->dhcp[k], *family = nm->dhcp[k + 1], *state = nm->dhcp[k + 2];
                _cleanup_free_ char *i = text_sanitize(ifname);
                const char *opt = streq_ptr(family, "ipv4") ? _("DHCPv4 option 158") : _("DHCPv6 option 86");
                const char *what;

                if (streq_ptr(state, "received"))
                        what = _("received");
                else if (streq_ptr(state, "not-offered"))
                        what = _("asked for, not sent by the network");
                else if (streq_ptr(state, "not-requested"))
                        what = _("not asked for (see pcpd(8))");
                else
                        what = state;
                printf("  %s: %s: %s\n", strempty(i), opt, what);
        }
}

int verb_status(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(nm_info_done) NmInfo nm = {0};
        _cleanup_(table_freep) Table *servers = NULL;
        ManagerInfo info = {0};
        char span[64];
        int r;

        r = manager_info_get_other(bus, &info, &error, read_nm, &nm);
        if (r < 0) {
                log_error(_("Failed to query status: %s"), bus_error_message(&error, r));
                return EXIT_FAILURE;
        }

        pager_open(arg_pager_disabled);
        if (arg_json != JSON_OFF) {
                r = print_json_document(write_manager, &info);
                manager_info_done(&info);
                if (r < 0) {
                        log_error(_("Failed to query status: %s"), strerror(-r));
                        return EXIT_FAILURE;
                }
                return EXIT_SUCCESS;
        }

        StatusLine lines[] = {
                {_("Version"), text_sanitize(info.version), NULL},
                {_("Enabled"), strdup(info.enabled ? _("yes") : _("no")), NULL},
                {_("State"), text_sanitize(info.state), manager_state_color(info.state)},
                /* newer pcpd: the last error saving the state directory, "" once a whole snapshot
                 * was written again; not about State (absent or "": no line) */
                {isempty(info.state_error) ? NULL : _("State error"), text_sanitize(info.state_error),
                 ansi_highlight_red()},
                {_("External addresses"), join_sanitized(info.external_addresses), NULL},
                {_("NAT64 prefixes"), join_sanitized(info.prefix64), NULL},
                {_("Default lifetime"), NULL, NULL},
                {_("Max mappings per user"), NULL, NULL},
                {_("Mappings"), NULL, NULL},
                /* newer pcpd, and only when something is declared */
                {NULL, NULL, NULL},
        };
        lines[9].value = declared_text(&info.declared);
        if (lines[9].value != NULL)
                lines[9].label = _("Declared");
        if (lines[4].value == NULL && streq_ptr(info.state, PCP1_STATE_READY)) {
                /* PCP has no question for the external address alone: a server tells it in
                 * its answer to the first mapping */
                lines[4].value = strdup(_("not known yet (a server tells it with the first mapping)"));
                lines[4].color = ansi_grey();
        }
        if (asprintf(&lines[6].value, "%" PRIu32 " s (%s)", info.default_lifetime,
                     format_timespan(span, sizeof(span), (uint64_t) info.default_lifetime * 1000000)) < 0)
                lines[6].value = NULL;
        if (asprintf(&lines[7].value, "%" PRIu32, info.max_mappings_per_user) < 0)
                lines[7].value = NULL;
        if (asprintf(&lines[8].value, "%" PRIu32, info.mapping_count) < 0)
                lines[8].value = NULL;

        r = 0;
        if (lines[0].value == NULL || lines[1].value == NULL || lines[2].value == NULL || lines[3].value == NULL ||
            lines[6].value == NULL || lines[7].value == NULL || lines[8].value == NULL)
                r = -ENOMEM;
        if (r == 0)
                print_status_lines(lines, ELEMENTSOF(lines));
        for (size_t k = 0; k < ELEMENTSOF(lines); k++)
                free(lines[k].value);
        if (r < 0) {
                manager_info_done(&info);
                return log_oom(), EXIT_FAILURE;
        }

        printf("\n");
        servers = table_new(5, (const char *const[]){_("INTERFACE"), _("SERVER"), _("SOURCE"), _("PROTOCOL"),
                                                     _("EPOCH")});
        if (servers == NULL) {
                manager_info_done(&info);
                return log_oom(), EXIT_FAILURE;
        }
        table_set_header(servers, arg_legend);
        table_set_width(servers, output_width(arg_full));
        table_set_shrink(servers, 1, 100, 10);
        for (size_t k = 0; k < info.servers.n; k++) {
                const ServerInfo *s = &info.servers.items[k];
                char epoch[32];

                snprintf(epoch, sizeof(epoch), "%" PRIu32, s->epoch);
                r = table_add_row(servers,
                                  (const char *const[]){s->interface, s->address, s->source, s->protocol, epoch},
                                  (const char *const[]){NULL, NULL, NULL,
                                                        streq_ptr(s->protocol, PCP1_PROTOCOL_NONE) ? ansi_grey()
                                                                                                   : NULL,
                                                        NULL});
                if (r < 0) {
                        manager_info_done(&info);
                        return log_oom(), EXIT_FAILURE;
                }
        }
        if (info.servers.n == 0)
                printf(_("No PCP or NAT-PMP server known.\n"));
        else
                (void) table_print(servers, stdout);
        print_dhcp_options(&nm, &info.servers);

        manager_info_done(&info);
        return EXIT_SUCCESS;
}

int verb_list(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(table_freep) Table *t = NULL;
        MappingInfo *mappings = NULL;
        uint64_t now = now_realtime_usec();
        size_t n = 0;
        int r;

        r = mappings_get(bus, &mappings, &n, &error);
        if (r < 0) {
                log_error(_("Failed to list mappings: %s"), bus_error_message(&error, r));
                return EXIT_FAILURE;
        }

        pager_open(arg_pager_disabled);
        if (arg_json != JSON_OFF) {
                Json j;

                json_init(&j, stdout, arg_json);
                json_begin_array(&j);
                for (size_t k = 0; k < n; k++)
                        json_mapping(&j, &mappings[k]);
                json_end_array(&j);
                mappings_free(mappings, n);
                r = json_finish(&j);
                if (r < 0) {
                        log_error(_("Failed to list mappings: %s"), strerror(-r));
                        return EXIT_FAILURE;
                }
                return EXIT_SUCCESS;
        }

        enum { C_ID, C_PROTO, C_INTERNAL, C_EXTERNAL, C_REMOTE, C_STATE, C_EXPIRES, C_UID, C_APP, C_DESCRIPTION };
        t = table_new(10, (const char *const[]){_("ID"), _("PROTO"), _("INTERNAL"), _("EXTERNAL"), _("REMOTE"),
                                                _("STATE"), _("EXPIRES"), _("UID"), _("APP"), _("DESCRIPTION")});
        if (t == NULL) {
                mappings_free(mappings, n);
                return log_oom(), EXIT_FAILURE;
        }
        table_set_header(t, arg_legend);
        table_set_width(t, output_width(arg_full));
        /* on a narrow terminal every column but the short ones gives way (ten columns do
         * not fit 70 cells otherwise): the free text first, the external address last */
        table_set_shrink(t, C_EXTERNAL, 60, 9);
        table_set_shrink(t, C_INTERNAL, 50, 9);
        table_set_shrink(t, C_REMOTE, 40, 4);
        table_set_shrink(t, C_EXPIRES, 30, 4);
        table_set_shrink(t, C_APP, 20, 3);
        table_set_shrink(t, C_DESCRIPTION, 10, 3);

        bool any_peer = false, any_app = false;
        for (size_t k = 0; k < n; k++) {
                const MappingInfo *m = &mappings[k];
                _cleanup_free_ char *internal = NULL, *external = NULL, *remote = NULL, *proto = NULL,
                                    *state = NULL;
                char expires[80], uid[16];

                internal = format_endpoint(m->internal_address, m->internal_port);
                external = m->external_port > 0 ? format_endpoint(m->external_address, m->external_port)
                                                : strdup("");
                remote = isempty(m->remote_address) ? strdup("") : format_endpoint(m->remote_address, m->remote_port);
                /* "tcp", the REMOTE column tells a PEER mapping */
                proto = strdup(isempty(m->protocol) ? "?" : m->protocol);
                if (asprintf(&state, isempty(m->error) ? "%s" : "%s (%s)", strempty(m->state), strempty(m->error)) <
                    0)
                        state = NULL;

                if (m->expires_at == 0)
                        expires[0] = '\0';
                else if (m->expires_at <= now)
                        snprintf(expires, sizeof(expires), "%s", _("expired"));
                else
                        format_relative(expires, sizeof(expires), m->expires_at, now);
                snprintf(uid, sizeof(uid), "%" PRIu32, m->uid);
                any_peer = any_peer || !isempty(m->remote_address);
                any_app = any_app || !isempty(m->app_id) || !isempty(m->declared);
                /* a declared mapping is the administrator's: its declaration's name stands for the app */
                _cleanup_free_ char *app = NULL;
                if (!isempty(m->declared)) {
                        if (asprintf(&app, "declared:%s", m->declared) < 0)
                                app = NULL;
                } else
                        app = strdup(strempty(m->app_id));

                if (internal == NULL || external == NULL || remote == NULL || proto == NULL || state == NULL ||
                    app == NULL ||
                    table_add_row(t,
                                  (const char *const[]){mapping_id(m->path), proto, internal, external, remote,
                                                        state, expires, uid, app, m->description},
                                  (const char *const[]){NULL, NULL, NULL, NULL, NULL,
                                                        mapping_state_color(m->state), NULL, NULL, NULL, NULL}) <
                            0) {
                        mappings_free(mappings, n);
                        return log_oom(), EXIT_FAILURE;
                }
        }
        mappings_free(mappings, n);
        /* no column of dashes: the remote end is a PEER mapping's only, and an app id is
         * known for Flatpak, snap and systemd units only */
        if (!any_peer)
                table_hide_column(t, C_REMOTE);
        if (!any_app)
                table_hide_column(t, C_APP);

        if (table_n_rows(t) == 0) {
                if (arg_legend)
                        printf(_("No mappings.\n"));
                return EXIT_SUCCESS;
        }
        (void) table_print(t, stdout);
        if (arg_legend)
                printf(ngettext("\n%zu mapping listed.\n", "\n%zu mappings listed.\n", table_n_rows(t)),
                       table_n_rows(t));
        return EXIT_SUCCESS;
}
