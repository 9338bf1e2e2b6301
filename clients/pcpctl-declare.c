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
#include <systemd/sd-event.h>

#include "pcp1-contract.h"
#include "pcpctl-bus.h"
#include "pcpctl-format.h"
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

/* The declaration as --json prints it: its name and mapping; with --wait also the
 * mapping's final State and Error, and where it is (null when there is no mapping). */
static int print_declared_json(const char *name, const char *path, const MappingInfo *i) {
        Json j;

        json_init(&j, stdout, arg_json);
        json_begin_object(&j);
        json_key(&j, "Name");
        json_string(&j, name);
        json_key(&j, "Mapping");
        json_string(&j, path);
        if (arg_map.wait && i != NULL) {
                json_key(&j, "State");
                json_string(&j, strempty(i->state));
                json_key(&j, "Error");
                json_string(&j, strempty(i->error));
                json_key(&j, "ExternalAddress");
                json_string(&j, strempty(i->external_address));
                json_key(&j, "ExternalPort");
                json_uint(&j, i->external_port);
        } else if (arg_map.wait) {
                /* no mapping ("/"): nothing to say of it */
                static const char *const keys[] = { "State", "Error", "ExternalAddress", "ExternalPort" };

                for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
                        json_key(&j, keys[k]);
                        json_null(&j);
                }
        }
        json_end_object(&j);
        return json_finish(&j) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* What is left once the mapping failed: the declaration, which pcpd keeps trying. */
static void log_declaration_stays(const char *name) {
        log_error(_("The declaration stays in place and pcpd keeps trying; remove it with: pcpctl undeclare %s"),
                  name);
}

/* What became of the declaration name once its mapping at path was removed (told by
 * MappingRemoved, so pcpd has done with it: DeclaredMappings says it): undeclared, declared
 * again onto another mapping, or still in place (pcpd makes its mapping again). */
static void log_declaration_after_removal(sd_bus *bus, const char *name, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(manager_info_done) ManagerInfo info = {0};
        const char *now = NULL;
        bool declared = false;
        int r;

        r = manager_info_get(bus, &info, &error);
        if (r < 0 || !info.declared.present) {
                log_error(_("Cannot tell whether %s is still declared: %s"), name,
                          r < 0 ? bus_error_message(&error, r) : _("pcpd has no DeclaredMappings property"));
                return;
        }
        for (size_t k = 0; info.declared.names != NULL && info.declared.names[k] != NULL; k++)
                if (streq(info.declared.names[k], name)) {
                        declared = true;
                        now = info.declared.mappings[k];
                        break;
                }
        if (!declared)
                log_error(_("%s is no longer declared."), name);
        else if (!isempty(now) && !streq(now, "/") && !streq(now, path))
                log_error(_("%s was declared again meanwhile; its mapping is %s now."), name, mapping_id(now));
        else
                log_declaration_stays(name);
}

/* declare --wait: the declared mapping followed until it is active or failed, as map --wait
 * does; the declaration is pcpd's, so nothing is released on the way out. */
typedef struct DeclareWait {
        sd_event *event;
        const char *name;
        const char *path;
        MappingInfo info;
        bool have_info;
        sd_bus_slot *properties_slot;
        int status;
} DeclareWait;

static void declare_wait_exit(DeclareWait *w, int status) {
        w->status = status;
        (void) sd_event_exit(w->event, 0);
}

/* Ends the wait once the mapping is active (printed as map --wait prints it) or failed. */
static void declare_wait_update(DeclareWait *w) {
        const char *state = strempty(w->info.state);

        if (streq(state, PCP1_MAPPING_ACTIVE) || streq(state, PCP1_MAPPING_RENEWING)) {
                _cleanup_free_ char *line = NULL;

                if (arg_json != JSON_OFF) {
                        declare_wait_exit(w, print_declared_json(w->name, w->path, &w->info));
                        return;
                }
                line = describe_mapping(&w->info);
                if (line == NULL) {
                        (void) log_oom();
                        declare_wait_exit(w, EXIT_FAILURE);
                        return;
                }
                printf("%s\n", line);
                declare_wait_exit(w, EXIT_SUCCESS);
        } else if (streq(state, PCP1_MAPPING_FAILED)) {
                _cleanup_free_ char *e = text_sanitize(w->info.error);

                if (arg_json != JSON_OFF)
                        (void) print_declared_json(w->name, w->path, &w->info);
                log_error(_("Declared %s, but its mapping %s failed: %s"), w->name, mapping_id(w->path),
                          isempty(e) ? _("unknown error") : e);
                log_declaration_stays(w->name);
                declare_wait_exit(w, EXIT_FAILURE);
        }
        /* pending: wait for the server's answer */
}

static int on_declared_properties(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        DeclareWait *w = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        int r;

        w->properties_slot = sd_bus_slot_unref(w->properties_slot);
        if (e != NULL) {
                log_error(_("Declared %s, but cannot read its mapping %s: %s"), w->name, mapping_id(w->path),
                          bus_error_message(e, -EIO));
                declare_wait_exit(w, EXIT_FAILURE);
                return 0;
        }
        r = mapping_info_read(m, &w->info, NULL);
        if (r < 0) {
                log_error(_("Declared %s, but cannot parse the properties of its mapping %s: %s"), w->name,
                          mapping_id(w->path), strerror(-r));
                declare_wait_exit(w, EXIT_FAILURE);
                return 0;
        }
        w->have_info = true;
        declare_wait_update(w);
        return 0;
}

/* pcpd's signals: the mapping's changes, and its removal */
static int on_declared_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        DeclareWait *w = userdata;
        const char *s, *reason, *why;
        int r;

        if (sd_bus_message_is_signal(m, PROPERTIES_IFACE, "PropertiesChanged")) {
                /* before the GetAll answer: that answer has it */
                if (!w->have_info || !streq(strempty(sd_bus_message_get_path(m)), w->path))
                        return 0;
                if (sd_bus_message_read_basic(m, 's', &s) < 0 || !streq(s, PCP1_MAPPING_IFACE))
                        return 0;
                r = mapping_info_read(m, &w->info, NULL);
                if (r < 0) {
                        log_error(_("Ignoring a malformed PropertiesChanged signal: %s"), strerror(-r));
                        return 0;
                }
                declare_wait_update(w);
        } else if (sd_bus_message_is_signal(m, PCP1_MANAGER_IFACE, "MappingRemoved") &&
                   streq(strempty(sd_bus_message_get_path(m)), PCP1_MANAGER_PATH)) {
                _cleanup_free_ char *text = NULL;

                if (sd_bus_message_read(m, "os", &s, &reason) < 0 || !streq(s, w->path))
                        return 0;
                text = text_sanitize(reason);
                why = removal_reason_explained(reason);
                if (why != NULL)
                        log_error(_("Declared %s, but its mapping %s was removed before it was active: %s (%s)."),
                                  w->name, mapping_id(w->path), text != NULL ? text : "?", why);
                else
                        log_error(_("Declared %s, but its mapping %s was removed before it was active: %s."),
                                  w->name, mapping_id(w->path), text != NULL ? text : "?");
                log_declaration_after_removal(sd_bus_message_get_bus(m), w->name, w->path);
                declare_wait_exit(w, EXIT_FAILURE);
        }
        return 0;
}

static int on_declared_name_owner(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        DeclareWait *w = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, PCP1_BUS_NAME) ||
            isempty(old_owner))
                return 0;
        log_error(_("Declared %s, but pcpd went away before its mapping %s was active; the declaration is saved, "
                    "and pcpd makes the mapping again when it starts."),
                  w->name, mapping_id(w->path));
        declare_wait_exit(w, EXIT_FAILURE);
        return 0;
}

static int on_declared_disconnect(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        DeclareWait *w = userdata;

        log_error(_("Declared %s, but lost the connection to the system bus before its mapping %s was active."),
                  w->name, mapping_id(w->path));
        log_declaration_stays(w->name);
        declare_wait_exit(w, EXIT_FAILURE);
        return 0;
}

/* Follows the mapping at path until it is active or failed. No time limit, as map --wait:
 * pcpd itself makes a mapping "failed" when the server does not answer. */
static int declare_wait(sd_bus *bus, const char *name, const char *path) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *s1 = NULL, *s2 = NULL, *s3 = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        DeclareWait w = {
                .name = name,
                .path = path,
                .status = EXIT_FAILURE,
        };
        int r;

        r = sd_event_default(&event);
        if (r >= 0) {
                w.event = event;
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        }
        /* subscribed before the properties are asked for: no change after them slips by */
        if (r >= 0)
                r = sd_bus_add_match(bus, &s1, MATCH_PCPD_SIGNALS, on_declared_signal, &w);
        if (r >= 0)
                r = sd_bus_add_match(bus, &s2, MATCH_NAME_OWNER, on_declared_name_owner, &w);
        if (r >= 0)
                r = sd_bus_add_match(bus, &s3, MATCH_DISCONNECTED, on_declared_disconnect, &w);
        if (r >= 0)
                r = sd_bus_call_method_async(bus, &w.properties_slot, PCP1_BUS_NAME, path, PROPERTIES_IFACE,
                                             "GetAll", on_declared_properties, &w, "s", PCP1_MAPPING_IFACE);
        if (r >= 0)
                r = sd_event_loop(event);
        if (r < 0) {
                log_error(_("Declared %s, but cannot wait for its mapping %s: %s"), name, mapping_id(path),
                          strerror(-r));
                w.status = EXIT_FAILURE;
        }
        sd_bus_slot_unref(w.properties_slot);
        mapping_info_done(&w.info);
        (void) sd_bus_detach_event(bus);
        return w.status;
}

/* Whether pcpd has port mapping switched off (its Enabled property false): a declaration
 * then has no mapping until it is switched on. False when it cannot be read. */
static bool mapping_switched_off(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int enabled = 1;

        if (sd_bus_get_property_trivial(bus, PCP1_BUS_NAME, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "Enabled", &error,
                                        'b', &enabled) < 0)
                return false;
        return !enabled;
}

int verb_declare(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(mapping_info_done) MappingInfo info = {0};
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

        if (streq(path, "/")) {
                /* no mapping to wait for: pcpd makes it when it can (no server yet, switched
                 * off, a conflict), and --wait says so rather than wait without end */
                bool off = false;

                if (arg_json != JSON_OFF)
                        r = print_declared_json(argv[1], path, NULL);
                /* switched off (pcpctl disable): that is why, and the journal says nothing more */
                if (arg_json == JSON_OFF || arg_map.wait)
                        off = mapping_switched_off(bus);
                if (!arg_map.wait && arg_json == JSON_OFF) {
                        if (off)
                                printf(_("Declared %s; it cannot be mapped while port mapping is switched off "
                                         "(pcpctl enable turns it on).\n"),
                                       argv[1]);
                        else
                                printf(_("Declared %s; it cannot be mapped yet (pcpd tries again every 10 s: "
                                         "journalctl -u pcpd says why).\n"),
                                       argv[1]);
                }
                if (!arg_map.wait)
                        return arg_json != JSON_OFF ? r : EXIT_SUCCESS;
                if (off)
                        log_error(_("Declared %s, but port mapping is switched off (pcpctl enable turns it on): "
                                    "there is no mapping to wait for."),
                                  argv[1]);
                else
                        log_error(_("Declared %s, but pcpd cannot map it now (journalctl -u pcpd says why): there "
                                    "is no mapping to wait for."),
                                  argv[1]);
                log_declaration_stays(argv[1]);
                return EXIT_FAILURE;
        }
        if (arg_map.wait)
                return declare_wait(bus, argv[1], path);

        if (arg_json != JSON_OFF)
                return print_declared_json(argv[1], path, NULL);
        /* the line says the mapping's state unless it is active: a new one is only requested
         * (the router answers later), and one that existed (declared again as it was) may
         * have failed already, not to be taken for one that works */
        sd_bus_error_free(&error);
        r = mapping_info_get(bus, path, &info, &error);
        if (r < 0) {
                printf(_("Declared %s: mapping %s.\n"), argv[1], mapping_id(path));
                log_error(_("Cannot read the state of mapping %s: %s"), mapping_id(path),
                          bus_error_message(&error, r));
        } else if (streq_ptr(info.state, PCP1_MAPPING_ACTIVE) || streq_ptr(info.state, PCP1_MAPPING_RENEWING))
                printf(_("Declared %s: mapping %s.\n"), argv[1], mapping_id(path));
        else if (streq_ptr(info.state, PCP1_MAPPING_FAILED)) {
                _cleanup_free_ char *e = text_sanitize(info.error);

                printf(_("Declared %s: mapping %s (failed).\n"), argv[1], mapping_id(path));
                log_error(_("Mapping %s has failed: %s"), mapping_id(path), isempty(e) ? _("unknown error") : e);
                log_declaration_stays(argv[1]);
        } else if (streq_ptr(info.state, PCP1_MAPPING_PENDING))
                printf(_("Declared %s: mapping %s (requested; pcpctl declare --wait follows it).\n"), argv[1],
                       mapping_id(path));
        else {
                _cleanup_free_ char *st = text_sanitize(strempty(info.state));

                printf(_("Declared %s: mapping %s (%s).\n"), argv[1], mapping_id(path), st != NULL ? st : "?");
        }
        return EXIT_SUCCESS;
}

char *declared_etc_file(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(manager_info_done) ManagerInfo info = {0};

        if (manager_info_get(bus, &info, &error) < 0)
                return NULL;
        for (size_t k = 0; info.declared.names != NULL && info.declared.names[k] != NULL; k++)
                if (streq(info.declared.names[k], name))
                        return declared_file_is_etc(info.declared.files[k]) ? text_sanitize(info.declared.files[k])
                                                                             : NULL;
        return NULL;
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
