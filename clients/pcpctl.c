/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcpctl: the command-line client of pcpd (org.freedesktop.PCP1 on the system bus).
 *
 * This file: the command line, the verbs table and the verbs that are one call each.
 * pcpctl-status.c (status, list), pcpctl-map.c (map, peer), pcpctl-monitor.c (monitor),
 * pcpctl-bus.c (the bus and typed properties), pcpctl-json.c, pcpctl-output.c (the
 * terminal: colours, widths, tables, the pager).
 *
 * Exit status: 0 success, 1 failure (the error is on stderr), 2 usage error.
 */

#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>

#include "pcpctl-output.h"
#include "pcpctl-util.h"
#include "pcpctl.h"

JsonFormat arg_json = JSON_OFF;
bool arg_legend = true;
bool arg_ask_password = true;
bool arg_pager_disabled = false;
bool arg_full = false;
MapOptions arg_map = {0};

/* which mapping options were given, to refuse them where they mean nothing */
enum {
        OPT_SEEN_EXTERNAL_PORT = 1 << 0,
        OPT_SEEN_LIFETIME = 1 << 1,
        OPT_SEEN_DESCRIPTION = 1 << 2,
        OPT_SEEN_FAMILY = 1 << 3,
        OPT_SEEN_INTERFACE = 1 << 4,
        OPT_SEEN_PREFER_FAILURE = 1 << 5,
        OPT_SEEN_PERSISTENT = 1 << 6,
        OPT_SEEN_WAIT = 1 << 7,
        OPT_SEEN_THIRD_PARTY = 1 << 8,
};
static unsigned arg_seen = 0;

static const char *const seen_names[] = {
        "--external-port", "--lifetime",       "--description", "--family",
        "--interface",     "--prefer-failure", "--persistent",  "--wait",
        "--third-party",
};

/* ---- verbs that are one call ---- */

static int simple_call(sd_bus *bus, const char *action, const char *path, const char *interface,
                       const char *member, const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = bus_new_call(bus, path, interface, member, &m);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r < 0) {
                log_error(_("Failed to %s: %s"), action, strerror(-r));
                return EXIT_FAILURE;
        }
        r = bus_call_authorized(bus, arg_ask_password, m, &error, NULL);
        if (r < 0) {
                log_error(_("Failed to %s: %s"), action, bus_error_message(&error, r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static int check_release(int argc, char **argv) {
        _cleanup_free_ char *path = NULL;

        return parse_mapping(argv[1], &path) < 0 ? EXIT_USAGE : 0;
}

static int verb_release(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        MappingInfo info = {0};
        bool have_info;
        int r;

        if (parse_mapping(argv[1], &path) < 0)
                return EXIT_USAGE;
        /* for --json: the mapping as it was just before; when it does not exist, pcpd's
         * answer to RemoveMapping says so. Any other failure to read it ends here, before
         * anything is changed: released with no output and status 0, a script would not
         * learn what went */
        have_info = false;
        if (arg_json != JSON_OFF) {
                r = mapping_info_get(bus, path, &info, &error);
                if (r >= 0)
                        have_info = true;
                else if (!sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                                 SD_BUS_ERROR_UNKNOWN_METHOD, PCP1_ERROR_NOT_FOUND)) {
                        log_error(_("Failed to release: %s"), bus_error_message(&error, r));
                        return EXIT_FAILURE;
                }
        }
        r = simple_call(bus, "release", PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "RemoveMapping", "o", path);
        if (r == EXIT_SUCCESS && have_info) {
                Json j;

                json_init(&j, stdout, arg_json);
                json_mapping(&j, &info);
                if (json_finish(&j) < 0)
                        r = EXIT_FAILURE;
        }
        mapping_info_done(&info);
        return r;
}

static int verb_enable(int argc, char **argv, sd_bus *bus) {
        bool enable = streq(argv[0], "enable");

        return simple_call(bus, enable ? "enable" : "disable", PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "SetEnabled",
                           "b", (int) enable);
}

static int check_revoke(int argc, char **argv) {
        if (isempty(argv[1]) || strlen(argv[1]) > APP_ID_MAX || !text_is_valid_utf8(argv[1])) {
                _cleanup_free_ char *s = text_sanitize(argv[1]);

                return usage_error(_("Invalid app id '%s': must be 1-%u bytes of UTF-8."), s ? s : "?", APP_ID_MAX);
        }
        return 0;
}

/* list shows a declared mapping as "declared:NAME" in its APP column, but a declared mapping
 * has no app id (AppId ""): RevokeApp cannot remove it. When NAME is declared, say how it
 * is removed. (An app may give "declared:NAME" as its app id itself: RevokeApp is asked
 * first, and this is only said when no mapping has that app id.) */
static void log_revoke_declared_hint(sd_bus *bus, const char *app_id) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        static const char prefix[] = "declared:";
        ManagerInfo info = {0};
        const char *name;

        if (strncmp(app_id, prefix, strlen(prefix)) != 0)
                return;
        name = app_id + strlen(prefix);
        if (manager_info_get(bus, &info, &error) < 0)
                return;
        for (size_t k = 0; info.declared.names != NULL && info.declared.names[k] != NULL; k++) {
                _cleanup_free_ char *s = NULL, *f = NULL;
                const char *file = info.declared.files != NULL ? info.declared.files[k] : NULL;

                if (!streq(info.declared.names[k], name))
                        continue;
                s = text_sanitize(name);
                f = text_sanitize(strempty(file));
                if (s == NULL || f == NULL)
                        break;
                /* as the completions tell them: pcpd refuses to undeclare these (Conflict) */
                if (declared_file_is_etc(file))
                        log_error(_("declared:%s is the mapping declared in %s, which has no app id: remove that "
                                    "file and reload pcpd (systemctl reload pcpd)."),
                                  s, f);
                else
                        log_error(_("declared:%s is a declared mapping, which has no app id: 'pcpctl undeclare %s' "
                                    "removes it."),
                                  s, s);
                break;
        }
        manager_info_done(&info);
}

static int verb_revoke(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = bus_new_call(bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "RevokeApp", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", argv[1]);
        if (r < 0) {
                log_error(_("Failed to revoke: %s"), strerror(-r));
                return EXIT_FAILURE;
        }
        r = bus_call_authorized(bus, arg_ask_password, m, &error, NULL);
        if (r < 0) {
                log_error(_("Failed to revoke: %s"), bus_error_message(&error, r));
                if (sd_bus_error_has_name(&error, PCP1_ERROR_NOT_FOUND))
                        log_revoke_declared_hint(bus, argv[1]);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

/* GetExternalAddress for one family: 1 and the answer, 0 when pcpd has none for the family
 * (the contract's NoServer: no server of the family has told one, and the host is not
 * outside a NAT for it), < 0 on any other failure (error set when it came from the bus). */
static int get_external_address(sd_bus *bus, const char *family, char **ret_address, char **ret_server,
                                sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *address, *server;
        int r;

        r = bus_new_call(bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "GetExternalAddress", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", family);
        if (r >= 0) {
                r = sd_bus_call(bus, m, 0, error, &reply);
                if (r < 0 && sd_bus_error_has_name(error, PCP1_ERROR_NO_SERVER))
                        return 0;
        }
        if (r >= 0)
                r = sd_bus_message_read(reply, "ss", &address, &server);
        if (r < 0)
                return r;
        *ret_address = strdup(address);
        *ret_server = strdup(server);
        if (*ret_address == NULL || *ret_server == NULL) {
                free(*ret_address);
                free(*ret_server);
                return -ENOMEM;
        }
        return 1;
}

static int check_external_address(int argc, char **argv) {
        return argc > 1 && parse_family(argv[1]) < 0 ? EXIT_USAGE : 0;
}

typedef struct ExternalAddress {
        const char *family;
        int result;    /* of get_external_address() */
        char *address; /* result 1 */
        char *server;
        char *message; /* result 0: pcpd's answer; < 0: why it failed */
} ExternalAddress;

static void external_addresses_done(ExternalAddress *a, size_t n) {
        for (size_t k = 0; k < n; k++) {
                free(a[k].address);
                free(a[k].server);
                free(a[k].message);
        }
}

/* The address of each family asked for; "none" only for pcpd's answer that there is none
 * (NoServer), never for a call that failed: such a family prints nothing on standard
 * output, its error goes to standard error and the exit status is 1. */
static int verb_external_address(int argc, char **argv, sd_bus *bus) {
        static const char *const families[] = {PCP1_FAMILY_IPV4, PCP1_FAMILY_IPV6};
        ExternalAddress a[ELEMENTSOF(families)] = {0};
        bool one = argc > 1;
        size_t n = 0, n_found = 0, n_none = 0, n_failed = 0;
        int ret = EXIT_SUCCESS;

        for (size_t k = 0; k < ELEMENTSOF(families); k++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                ExternalAddress *e = &a[n];

                if (one && !streq(argv[1], families[k]))
                        continue;
                n++;
                e->family = families[k];
                e->result = get_external_address(bus, families[k], &e->address, &e->server, &error);
                if (e->result > 0) {
                        n_found++;
                        continue;
                }
                if (e->result == 0)
                        n_none++;
                else
                        n_failed++;
                e->message = strdup(bus_error_message(&error, e->result));
                if (e->message == NULL) {
                        external_addresses_done(a, n);
                        return log_oom(), EXIT_FAILURE;
                }
        }

        /* output: the families that have an address, and without a family asked for, "none"
         * for those pcpd has none for (JSON: the array of the ones with an address) */
        if (arg_json != JSON_OFF && (n_found > 0 || (!one && n_none > 0))) {
                Json j;

                json_init(&j, stdout, arg_json);
                if (!one)
                        json_begin_array(&j);
                for (size_t k = 0; k < n; k++) {
                        if (a[k].result <= 0)
                                continue;
                        json_begin_object(&j);
                        json_key(&j, "Family");
                        json_string(&j, a[k].family);
                        json_key(&j, "Address");
                        json_string(&j, a[k].address);
                        json_key(&j, "Server");
                        json_string(&j, a[k].server);
                        json_end_object(&j);
                }
                if (!one)
                        json_end_array(&j);
                if (json_finish(&j) < 0)
                        ret = EXIT_FAILURE;
        } else if (arg_json == JSON_OFF)
                for (size_t k = 0; k < n; k++) {
                        _cleanup_free_ char *addr = NULL, *s = NULL;

                        if (a[k].result == 0 && !one)
                                printf("%s: %s%s%s\n", a[k].family, ansi_grey(), _("none"), ansi_normal());
                        if (a[k].result <= 0)
                                continue;
                        addr = text_sanitize(a[k].address);
                        s = text_sanitize(a[k].server);
                        if (addr == NULL || s == NULL) {
                                external_addresses_done(a, n);
                                return log_oom(), EXIT_FAILURE;
                        }
                        if (one)
                                printf("%s\n", addr);
                        else if (!isempty(s))
                                printf(_("%s: %s (server %s)\n"), a[k].family, addr, s);
                        else
                                printf("%s: %s\n", a[k].family, addr);
                }

        /* errors: every failed call (once when all families failed alike, as when pcpd is
         * not running), else that no family has an address */
        if (n_failed > 0) {
                bool alike = n_failed == n;

                for (size_t k = 1; alike && k < n; k++)
                        alike = streq(a[k].message, a[0].message);
                for (size_t k = 0; k < n; k++) {
                        if (a[k].result >= 0)
                                continue;
                        if (alike) {
                                log_error(_("Failed to query the external address: %s"), a[k].message);
                                break;
                        }
                        log_error(_("Failed to query the %s external address: %s"), a[k].family, a[k].message);
                }
                ret = EXIT_FAILURE;
        } else if (n_found == 0) {
                log_error(_("Failed to query the external address: %s"), a[0].message);
                ret = EXIT_FAILURE;
        }
        external_addresses_done(a, n);
        return ret;
}

/* ---- command line ---- */

static void help(void) {
        pager_open(arg_pager_disabled);
        printf(_("%s [OPTIONS...] COMMAND ...\n"
                 "\n"
                 "%sAsk the router for port mappings through pcpd (Port Control Protocol).%s\n"
                 "\n"
                 "%sCommands:%s\n"
                 "  status                  Show the service's state and servers (default)\n"
                 "  list                    List all mappings\n"
                 "  map PROTO PORT          Map a local port on the router and hold the mapping\n"
                 "                          until interrupted\n"
                 "  peer PROTO PORT REMOTE_ADDR REMOTE_PORT\n"
                 "                          Keep the router's state for an outbound flow until\n"
                 "                          interrupted\n"
                 "  release ID|PATH         Remove a mapping\n"
                 "  monitor                 Print mapping and service changes as they happen\n"
                 "  enable                  Allow mappings\n"
                 "  disable                 Remove all mappings and refuse new ones\n"
                 "  external-address [ipv4|ipv6]\n"
                 "                          Show the router's external address\n"
                 "  revoke APP_ID           Remove every mapping of an application\n"
                 "  declare NAME PROTO PORT Declare a mapping pcpd keeps for good (saved, made\n"
                 "                          again after restarts)\n"
                 "  undeclare NAME          Remove a declared mapping\n"
                 "\n"
                 "%sOptions:%s\n"
                 "  -h --help               Show this help\n"
                 "     --version            Show the version\n"
                 "  -j                      Same as --json=pretty on a terminal, else --json=short\n"
                 "     --json=MODE          Print JSON: short, pretty or off\n"
                 "     --no-pager           Do not pipe the output into a pager\n"
                 "  -l --full               Do not ellipsize table cells to fit the terminal\n"
                 "     --no-legend          Print no column headers, hints or summaries\n"
                 "     --no-ask-password    Never ask for a password to authorize\n"
                 "\n"
                 "%sOptions of map and peer:%s\n"
                 "     --lifetime=SECONDS   Requested lifetime of the mapping\n"
                 "     --description=TEXT   Description shown to users and the router\n"
                 "     --family=ipv4|ipv6   Address family of the mapping\n"
                 "     --interface=IFNAME   Use the server of this network interface\n"
                 "     --wait               Print nothing until the mapping is active (or failed)\n"
                 "%sOptions of map only:%s\n"
                 "     --external-port=PORT Suggested external port\n"
                 "     --prefer-failure     Fail unless exactly the suggested port is mapped\n"
                 "     --persistent         Keep the mapping after pcpctl exits\n"
                 "%sOptions of declare:%s\n"
                 "     --external-port, --lifetime, --description, --family as for map, and\n"
                 "     --third-party=ADDR   Map a port of another host of this network\n"
                 "     --wait               Wait until the mapping is active; exit status 1 if it\n"
                 "                          failed (the declaration stays: pcpd keeps trying)\n"
                 "\n"
                 "See the pcpctl(1) manual page for details.\n"),
               program_invocation_short_name, ansi_highlight(), ansi_normal(), ansi_underline(), ansi_normal(),
               ansi_underline(), ansi_normal(), ansi_underline(), ansi_normal(), ansi_underline(),
               ansi_normal(), ansi_underline(), ansi_normal());
}

enum {
        ARG_VERSION = 0x100,
        ARG_JSON,
        ARG_NO_LEGEND,
        ARG_NO_PAGER,
        ARG_NO_ASK_PASSWORD,
        ARG_EXTERNAL_PORT,
        ARG_LIFETIME,
        ARG_DESCRIPTION,
        ARG_FAMILY,
        ARG_INTERFACE,
        ARG_PREFER_FAILURE,
        ARG_PERSISTENT,
        ARG_WAIT,
        ARG_THIRD_PARTY,
};

/* 0 to go on (*ret_done: help or version printed), EXIT_USAGE on errors. */
static int parse_argv(int argc, char **argv, bool *ret_done) {
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {"json", optional_argument, NULL, ARG_JSON},
                {"full", no_argument, NULL, 'l'},
                {"no-legend", no_argument, NULL, ARG_NO_LEGEND},
                {"no-pager", no_argument, NULL, ARG_NO_PAGER},
                {"no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD},
                {"external-port", required_argument, NULL, ARG_EXTERNAL_PORT},
                {"lifetime", required_argument, NULL, ARG_LIFETIME},
                {"description", required_argument, NULL, ARG_DESCRIPTION},
                {"family", required_argument, NULL, ARG_FAMILY},
                {"third-party", required_argument, NULL, ARG_THIRD_PARTY},
                {"interface", required_argument, NULL, ARG_INTERFACE},
                {"prefer-failure", no_argument, NULL, ARG_PREFER_FAILURE},
                {"persistent", no_argument, NULL, ARG_PERSISTENT},
                {"wait", no_argument, NULL, ARG_WAIT},
                {NULL, 0, NULL, 0},
        };
        bool help_wanted = false;
        int c;

        *ret_done = false;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hjl", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help_wanted = true;
                        break;
                case ARG_VERSION:
                        printf("pcpctl %s\n", PACKAGE_VERSION);
                        *ret_done = true;
                        return 0;
                case 'j':
                        /* as systemd's tools: for a person on a terminal, for a script else */
                        arg_json = on_tty() ? JSON_PRETTY : JSON_SHORT;
                        break;
                case ARG_JSON:
                        if (optarg == NULL || streq(optarg, "short"))
                                arg_json = JSON_SHORT;
                        else if (streq(optarg, "pretty"))
                                arg_json = JSON_PRETTY;
                        else if (streq(optarg, "off"))
                                arg_json = JSON_OFF;
                        else if (streq(optarg, "help")) {
                                printf("short\npretty\noff\n");
                                *ret_done = true;
                                return 0;
                        } else
                                return usage_error(_("Invalid --json mode '%s': must be short, pretty or off."),
                                                   optarg);
                        break;
                case 'l':
                        arg_full = true;
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_NO_PAGER:
                        arg_pager_disabled = true;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        arg_ask_password = false;
                        break;
                case ARG_EXTERNAL_PORT: {
                        uint64_t v;

                        if (parse_uint(optarg, 65535, &v) < 0)
                                return usage_error(_("Invalid external port '%s': must be 0-65535 (0 for any)."),
                                                   optarg);
                        arg_map.external_port = (uint16_t) v;
                        arg_seen |= OPT_SEEN_EXTERNAL_PORT;
                        break;
                }
                case ARG_LIFETIME: {
                        uint64_t v;

                        if (parse_uint(optarg, UINT32_MAX, &v) < 0 || v == 0)
                                return usage_error(_("Invalid lifetime '%s': must be 1-%" PRIu32 " seconds."), optarg,
                                                   UINT32_MAX);
                        arg_map.lifetime = (uint32_t) v;
                        arg_map.lifetime_set = true;
                        arg_seen |= OPT_SEEN_LIFETIME;
                        break;
                }
                case ARG_DESCRIPTION:
                        if (strlen(optarg) > DESCRIPTION_MAX || !text_is_valid_utf8(optarg))
                                return usage_error(_("Invalid description: must be at most %u bytes of UTF-8."),
                                                   DESCRIPTION_MAX);
                        arg_map.description = optarg;
                        arg_seen |= OPT_SEEN_DESCRIPTION;
                        break;
                case ARG_FAMILY:
                        if (parse_family(optarg) < 0)
                                return EXIT_USAGE;
                        arg_map.family = optarg;
                        arg_seen |= OPT_SEEN_FAMILY;
                        break;
                case ARG_INTERFACE:
                        if (parse_interface(optarg) < 0)
                                return EXIT_USAGE;
                        arg_map.interface = optarg;
                        arg_seen |= OPT_SEEN_INTERFACE;
                        break;
                case ARG_PREFER_FAILURE:
                        arg_map.prefer_failure = true;
                        arg_seen |= OPT_SEEN_PREFER_FAILURE;
                        break;
                case ARG_PERSISTENT:
                        arg_map.persistent = true;
                        arg_seen |= OPT_SEEN_PERSISTENT;
                        break;
                case ARG_WAIT:
                        arg_map.wait = true;
                        arg_seen |= OPT_SEEN_WAIT;
                        break;
                case ARG_THIRD_PARTY: /* checked by the verb (check_declare()) */
                        arg_map.third_party = optarg;
                        arg_seen |= OPT_SEEN_THIRD_PARTY;
                        break;
                case ':':
                        return usage_error(_("Option '%s' needs an argument."), argv[optind - 1]);
                case '?':
                default:
                        if (optopt != 0 && optopt < 0x100)
                                return usage_error(_("Unknown option '-%c'."), optopt);
                        return usage_error(_("Unknown option '%s'."), argv[optind - 1]);
                }
        }
        if (help_wanted) { /* after the other options: --no-pager --help */
                help();
                *ret_done = true;
        }
        return 0;
}

typedef struct Verb {
        const char *name;
        int min_args; /* including the verb */
        int max_args;
        unsigned mapping_options; /* which map options apply */
        int (*check)(int argc, char **argv); /* arguments, before the bus: 0 or EXIT_USAGE */
        int (*run)(int argc, char **argv, sd_bus *bus);
} Verb;

#define MAP_OPTIONS                                                                                         \
        (OPT_SEEN_EXTERNAL_PORT | OPT_SEEN_LIFETIME | OPT_SEEN_DESCRIPTION | OPT_SEEN_FAMILY |              \
         OPT_SEEN_INTERFACE | OPT_SEEN_PREFER_FAILURE | OPT_SEEN_PERSISTENT | OPT_SEEN_WAIT)
#define PEER_OPTIONS                                                                                        \
        (OPT_SEEN_LIFETIME | OPT_SEEN_DESCRIPTION | OPT_SEEN_FAMILY | OPT_SEEN_INTERFACE | OPT_SEEN_WAIT)

#define DECLARE_OPTIONS                                                                                     \
        (OPT_SEEN_EXTERNAL_PORT | OPT_SEEN_LIFETIME | OPT_SEEN_DESCRIPTION | OPT_SEEN_FAMILY |              \
         OPT_SEEN_THIRD_PARTY | OPT_SEEN_WAIT)

static const Verb verbs[] = {
        {"status", 1, 1, 0, NULL, verb_status},
        {"list", 1, 1, 0, NULL, verb_list},
        {"map", 3, 3, MAP_OPTIONS, check_mapping_args, verb_map},
        {"peer", 5, 5, PEER_OPTIONS, check_mapping_args, verb_peer},
        {"release", 2, 2, 0, check_release, verb_release},
        {"monitor", 1, 1, 0, NULL, verb_monitor},
        {"enable", 1, 1, 0, NULL, verb_enable},
        {"disable", 1, 1, 0, NULL, verb_enable},
        {"external-address", 1, 2, 0, check_external_address, verb_external_address},
        {"revoke", 2, 2, 0, check_revoke, verb_revoke},
        {"declare", 4, 4, DECLARE_OPTIONS, check_declare, verb_declare},
        {"undeclare", 2, 2, 0, check_undeclare, verb_undeclare},
};

static int dispatch_verb(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const Verb *verb = NULL;
        char *default_argv[] = {(char *) "status", NULL};
        unsigned extra;

        if (argc <= 0) {
                argc = 1;
                argv = default_argv;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, argv[0])) {
                        verb = &verbs[i];
                        break;
                }
        if (verb == NULL)
                return usage_error(_("Unknown command '%s'."), argv[0]);
        if (argc < verb->min_args)
                return usage_error(_("Too few arguments for '%s'."), verb->name);
        if (argc > verb->max_args)
                return usage_error(_("Too many arguments for '%s'."), verb->name);
        extra = arg_seen & ~verb->mapping_options;
        for (size_t i = 0; extra != 0 && i < ELEMENTSOF(seen_names); i++)
                if (extra & (1u << i))
                        return usage_error(_("Option %s is not supported by '%s'."), seen_names[i], verb->name);

        if (verb->check != NULL && verb->check(argc, argv) != 0)
                return EXIT_USAGE;

        if (bus_connect(arg_ask_password, &bus) < 0)
                return EXIT_FAILURE;
        return verb->run(argc, argv, bus);
}

int main(int argc, char *argv[]) {
        bool done;
        int r;

        /* only the categories pcpctl uses: loading all of them from the environment was
         * 12 % of a `pcpctl status`, about twice these three. LC_MESSAGES: the
         * translations and strerror(); LC_CTYPE: the character set, and the widths of
         * characters in tables (wcwidth()); LC_TIME: the weekday in dates (strftime()),
         * loaded by format_clock() the first time it prints one (most runs print none:
         * ~13,000 instructions with C.UTF-8, more where a locale has its own files). */
        setlocale(LC_CTYPE, "");
        setlocale(LC_MESSAGES, "");
        time_locale_from_environment = true;
        bindtextdomain(GETTEXT_PACKAGE, LOCALEDIR);
        bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
        textdomain(GETTEXT_PACKAGE);

        r = parse_argv(argc, argv, &done);
        if (r == 0 && !done)
                r = dispatch_verb(argc - optind, argv + optind);
        if (fflush(stdout) != 0 && r == EXIT_SUCCESS) {
                log_error(_("Failed to write the output: %s"), strerror(errno));
                r = EXIT_FAILURE;
        }
        pager_close();
        return r;
}
