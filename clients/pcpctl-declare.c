/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcpctl declare / undeclare: the administrator's mappings that pcpd keeps for good
 * (Manager.DeclareMapping, RemoveDeclaredMapping; polkit org.freedesktop.PCP1.configure).
 */

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pcp1-contract.h"
#include "pcpctl-bus.h"
#include "pcpctl-output.h"
#include "pcpctl-util.h"
#include "pcpctl.h"

#define NAME_MAX_LEN 64

static int check_name(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > NAME_MAX_LEN || name[0] == '.' ||
            strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != n) {
                _cleanup_free_ char *s = text_sanitize(name);
                return usage_error(_("Invalid name '%s': 1-%d of A-Z a-z 0-9 _ . - (not starting with a dot)."),
                                   s ? s : "?", NAME_MAX_LEN);
        }
        return 0;
}

int check_declare(int argc, char **argv) {
        const char *protocol;
        unsigned char buf[sizeof(struct in6_addr)];
        uint16_t port;

        if (check_name(argv[1]) != 0 || parse_protocol(argv[2], &protocol) < 0 ||
            parse_port(argv[3], _("port"), &port) < 0)
                return EXIT_USAGE;
        if (arg_map.third_party != NULL && inet_pton(AF_INET, arg_map.third_party, buf) != 1 &&
            inet_pton(AF_INET6, arg_map.third_party, buf) != 1)
                return usage_error(_("Invalid third-party address '%s': must be an IPv4 or IPv6 address."),
                                   arg_map.third_party);
        if (arg_map.lifetime_set && (arg_map.lifetime < 120 || arg_map.lifetime > 604800))
                return usage_error(_("Invalid lifetime %" PRIu32 " for a declared mapping: must be 120-604800 "
                                     "seconds."),
                                   arg_map.lifetime);
        return 0;
}

int verb_declare(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *protocol, *path = NULL;
        uint16_t port;
        int r;

        if (parse_protocol(argv[2], &protocol) < 0 || parse_port(argv[3], _("port"), &port) < 0)
                return EXIT_USAGE;
        r = bus_new_call(bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "DeclareMapping", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "ssqq", argv[1], protocol, port, arg_map.external_port);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && arg_map.lifetime_set)
                r = sd_bus_message_append(m, "{sv}", "lifetime", "u", arg_map.lifetime);
        if (r >= 0 && arg_map.description != NULL)
                r = sd_bus_message_append(m, "{sv}", "description", "s", arg_map.description);
        if (r >= 0 && arg_map.family != NULL)
                r = sd_bus_message_append(m, "{sv}", "family", "s", arg_map.family);
        if (r >= 0 && arg_map.third_party != NULL)
                r = sd_bus_message_append(m, "{sv}", "third-party", "s", arg_map.third_party);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0) {
                log_error(_("Failed to declare: %s"), strerror(-r));
                return EXIT_FAILURE;
        }
        r = bus_call_authorized(bus, arg_ask_password, m, &error, &reply);
        if (r < 0) {
                log_error(_("Failed to declare: %s"), bus_error_message(&error, r));
                return EXIT_FAILURE;
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0) {
                log_error(_("Failed to declare: cannot parse the reply: %s"), strerror(-r));
                return EXIT_FAILURE;
        }
        if (arg_json != JSON_OFF) {
                Json j;

                json_init(&j, stdout, arg_json);
                json_begin_object(&j);
                json_key(&j, "Name");
                json_string(&j, argv[1]);
                json_key(&j, "Mapping");
                json_string(&j, path);
                json_end_object(&j);
                return json_finish(&j) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        if (streq(path, "/"))
                printf(_("Declared %s; it cannot be mapped yet (pcpd tries again every 10 s: journalctl -u pcpd "
                         "says why).\n"),
                       argv[1]);
        else
                printf(_("Declared %s: mapping %s.\n"), argv[1], mapping_id(path));
        return EXIT_SUCCESS;
}

int check_undeclare(int argc, char **argv) {
        return check_name(argv[1]) != 0 ? EXIT_USAGE : 0;
}

int verb_undeclare(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = bus_new_call(bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "RemoveDeclaredMapping", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", argv[1]);
        if (r < 0) {
                log_error(_("Failed to undeclare: %s"), strerror(-r));
                return EXIT_FAILURE;
        }
        r = bus_call_authorized(bus, arg_ask_password, m, &error, NULL);
        if (r < 0) {
                log_error(_("Failed to undeclare: %s"), bus_error_message(&error, r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
