/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"

#include "pcpctl-bus.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include "pcpctl-output.h"
#include "pcpctl-util.h"

#define SERVERS_MAX 1024u
#define DECLARED_MAX 1024u
#define STRV_MAX 4096u
#define MAPPINGS_MAX (1024u * 1024u)
/* room for a person to answer a polkit password prompt */
#define INTERACTIVE_CALL_TIMEOUT_USEC (UINT64_C(300) * 1000000)

/* ---- the connection ---- */

/* whether polkit may ask the user (no --no-ask-password), as bus_connect() set it up */
static bool bus_interactive = true;

int bus_connect(bool ask_password, sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                log_error(_("Failed to connect to the system bus: %s"), strerror(-r));
                return r;
        }
        /* polkit may ask the user for a password unless told not to */
        r = sd_bus_set_allow_interactive_authorization(bus, ask_password);
        if (r < 0) {
                sd_bus_unref(bus);
                log_error(_("Failed to set up the bus connection: %s"), strerror(-r));
                return r;
        }
        bus_interactive = ask_password;
        *ret = bus;
        return 0;
}

const char *bus_error_message(const sd_bus_error *error, int r) {
        /* the message with a hint: valid until the next call */
        static char buf[1024];

        if (sd_bus_error_is_set(error)) {
                if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        return _("pcpd is not running and could not be started. See \"systemctl status pcpd\" "
                                 "and \"journalctl -u pcpd\" for details.");
                if (sd_bus_error_has_name(error, SD_BUS_ERROR_ACCESS_DENIED))
                        return _("Access denied by the bus policy.");
                if (sd_bus_error_has_name(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                        return _("Authorization is required, but --no-ask-password was given.");
                if (sd_bus_error_has_name(error, SD_BUS_ERROR_NO_REPLY))
                        return _("pcpd did not answer in time.");
                /* Refused by polkit while pcpctl did not let it ask for a password: pcpd's
                 * words ("Authentication is required; call again allowing interactive
                 * authorisation", "polkit said no", ...) and what a user of pcpctl can do
                 * about it. Told by the error's name and pcpctl's own setting, not by
                 * pcpd's English text: said after every refusal of polkit's, also those a
                 * password would not have changed (running it as root would). */
                if (sd_bus_error_has_name(error, PCP1_ERROR_NOT_AUTHORIZED) && !bus_interactive) {
                        _cleanup_free_ char *m = text_sanitize(isempty(error->message) ? error->name
                                                                                       : error->message);

                        snprintf(buf, sizeof(buf),
                                 _("%s (pcpctl was run with --no-ask-password: where polkit would ask for a password, "
                                   "run it without that option, or as root.)"),
                                 m != NULL ? m : error->name);
                        return buf;
                }
                if (!isempty(error->message))
                        return error->message;
                return error->name;
        }
        return strerror(r < 0 ? -r : r);
}

int bus_new_call(sd_bus *bus, const char *path, const char *interface, const char *member,
                 sd_bus_message **ret) {
        return sd_bus_message_new_method_call(bus, ret, PCP1_BUS_NAME, path, interface, member);
}

/* pkttyagent answers polkit's questions on the terminal. Only for interactive runs: started
 * before a call that may need authorization, registered for pcpctl's own process (its
 * parent). In a login session it is started with --fallback, so that the session's own
 * (desktop) agent keeps answering when there is one. polkitd asks a --fallback agent only
 * for a subject in a login session, though: outside any session (a service, a login whose
 * PAM stack has no pam_systemd) pkttyagent is started without it, or it would register and
 * never be asked. sd_pid_get_session() answers as polkitd's own session lookup does. */
static pid_t polkit_agent_pid = 0;

static bool in_login_session(void) {
        char *session = NULL;
        int r;

        r = sd_pid_get_session(0, &session);
        free(session);
        return r >= 0;
}

static void polkit_agent_open(void) {
        int pipefd[2];
        pid_t pid;
        bool fallback;

        if (polkit_agent_pid > 0 || geteuid() == 0 || !isatty(STDIN_FILENO) ||
            access("/usr/bin/pkttyagent", X_OK) < 0)
                return;
        /* decided before fork(): the child only execs */
        fallback = in_login_session();
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return;

        pid = fork();
        if (pid < 0) {
                close(pipefd[0]);
                close(pipefd[1]);
                return;
        }
        if (pid == 0) {
                char fd[16];
                int n;

                /* the agent writes to this fd once it is registered */
                n = dup(pipefd[1]);
                if (n < 0)
                        _exit(EXIT_FAILURE);
                snprintf(fd, sizeof(fd), "%d", n);
                if (fallback)
                        execl("/usr/bin/pkttyagent", "pkttyagent", "--notify-fd", fd, "--fallback",
                              (char *) NULL);
                else
                        execl("/usr/bin/pkttyagent", "pkttyagent", "--notify-fd", fd, (char *) NULL);
                _exit(EXIT_FAILURE);
        }

        close(pipefd[1]);
        /* wait (a bounded time) until it is registered or gone */
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
        (void) poll(&p, 1, 5000);
        close(pipefd[0]);
        polkit_agent_pid = pid;
}

static void polkit_agent_close(void) {
        if (polkit_agent_pid <= 0)
                return;
        (void) kill(polkit_agent_pid, SIGTERM);
        (void) waitpid(polkit_agent_pid, NULL, 0);
        polkit_agent_pid = 0;
}

int bus_call_authorized(sd_bus *bus, bool ask_password, sd_bus_message *m, sd_bus_error *error,
                        sd_bus_message **reply) {
        int r;

        if (ask_password)
                polkit_agent_open();
        r = sd_bus_call(bus, m, ask_password ? INTERACTIVE_CALL_TIMEOUT_USEC : 0, error, reply);
        polkit_agent_close();
        return r;
}

int bus_call_authorized_async(sd_bus *bus, bool ask_password, sd_bus_message *m, sd_bus_slot **slot,
                              sd_bus_message_handler_t callback, void *userdata) {
        int r;

        if (ask_password)
                polkit_agent_open();
        r = sd_bus_call_async(bus, slot, m, callback, userdata, ask_password ? INTERACTIVE_CALL_TIMEOUT_USEC : 0);
        if (r < 0)
                polkit_agent_close();
        return r;
}

void bus_call_authorized_end(void) {
        polkit_agent_close();
}

/* ---- properties into typed structs ---- */

typedef int (*PropReader)(sd_bus_message *m, void *field);

typedef struct PropMap {
        const char *name;
        const char *signature;
        PropReader read;
        size_t offset;
} PropMap;

static int read_string(sd_bus_message *m, void *field) {
        char **s = field;
        const char *v;
        char *copy;
        int r;

        r = sd_bus_message_read_basic(m, 's', &v);
        if (r < 0)
                return r;
        copy = strdup(v);
        if (copy == NULL)
                return -ENOMEM;
        free(*s);
        *s = copy;
        return 0;
}

static int read_bool(sd_bus_message *m, void *field) {
        int v, r;

        r = sd_bus_message_read_basic(m, 'b', &v);
        if (r < 0)
                return r;
        *(bool *) field = v;
        return 0;
}

static int read_u8(sd_bus_message *m, void *field) {
        return sd_bus_message_read_basic(m, 'y', field);
}

static int read_u16(sd_bus_message *m, void *field) {
        return sd_bus_message_read_basic(m, 'q', field);
}

static int read_u32(sd_bus_message *m, void *field) {
        return sd_bus_message_read_basic(m, 'u', field);
}

static int read_u64(sd_bus_message *m, void *field) {
        return sd_bus_message_read_basic(m, 't', field);
}

static int read_strv(sd_bus_message *m, void *field) {
        char ***l = field;
        char **v = NULL;
        int r;

        r = sd_bus_message_read_strv(m, &v);
        if (r < 0)
                return r;
        if (strv_length(v) > STRV_MAX) {
                strv_free(v);
                return -E2BIG;
        }
        strv_free(*l);
        *l = v;
        return 0;
}

static void servers_free(ServerInfo *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(s[i].interface);
                free(s[i].address);
                free(s[i].source);
                free(s[i].protocol);
        }
        free(s);
}

static int read_servers(sd_bus_message *m, void *field) {
        ServerList *list = field;
        ServerInfo *servers = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(ssssu)");
        if (r < 0)
                return r;
        for (;;) {
                const char *interface, *address, *source, *protocol;
                uint32_t epoch;
                ServerInfo *s;

                r = sd_bus_message_read(m, "(ssssu)", &interface, &address, &source, &protocol, &epoch);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                if (n >= SERVERS_MAX) {
                        r = -E2BIG;
                        goto fail;
                }
                s = realloc(servers, (n + 1) * sizeof(ServerInfo));
                if (s == NULL) {
                        r = -ENOMEM;
                        goto fail;
                }
                servers = s;
                servers[n] = (ServerInfo){
                        .interface = strdup(interface),
                        .address = strdup(address),
                        .source = strdup(source),
                        .protocol = strdup(protocol),
                        .epoch = epoch,
                };
                n++;
                if (!servers[n - 1].interface || !servers[n - 1].address || !servers[n - 1].source ||
                    !servers[n - 1].protocol) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                goto fail;

        servers_free(list->items, list->n);
        list->items = servers;
        list->n = n;
        return 0;

fail:
        servers_free(servers, n);
        return r;
}

/* in the order of the MANAGER_* and MAPPING_* numbers */
static void declared_free(DeclaredList *l) {
        strv_free(l->names);
        strv_free(l->files);
        strv_free(l->mappings);
        *l = (DeclaredList){0};
}

/* appends s to *l (NULL-terminated, n items) */
static int strv_push(char ***l, size_t n, const char *s) {
        char **c = realloc(*l, (n + 2) * sizeof(char *));

        if (c == NULL)
                return -ENOMEM;
        *l = c;
        c[n] = strdup(s);
        c[n + 1] = NULL;
        return c[n] != NULL ? 0 : -ENOMEM;
}

static int read_declared(sd_bus_message *m, void *field) {
        DeclaredList *list = field, l = {.present = true};
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(sso)");
        if (r < 0)
                return r;
        for (;;) {
                const char *name, *file, *mapping;

                r = sd_bus_message_read(m, "(sso)", &name, &file, &mapping);
                if (r <= 0)
                        break;
                if (n >= DECLARED_MAX) {
                        r = -E2BIG;
                        break;
                }
                if ((r = strv_push(&l.names, n, name)) < 0 || (r = strv_push(&l.files, n, file)) < 0 ||
                    (r = strv_push(&l.mappings, n, mapping)) < 0)
                        break;
                n++;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                declared_free(&l);
                return r;
        }
        declared_free(list);
        *list = l;
        return 0;
}

static const PropMap manager_map[_MANAGER_PROP_MAX] = {
        [MANAGER_VERSION] = {"Version", "s", read_string, offsetof(ManagerInfo, version)},
        [MANAGER_ENABLED] = {"Enabled", "b", read_bool, offsetof(ManagerInfo, enabled)},
        [MANAGER_STATE] = {"State", "s", read_string, offsetof(ManagerInfo, state)},
        [MANAGER_STATE_ERROR] = {"StateError", "s", read_string, offsetof(ManagerInfo, state_error)},
        [MANAGER_SERVERS] = {"Servers", "a(ssssu)", read_servers, offsetof(ManagerInfo, servers)},
        [MANAGER_EXTERNAL_ADDRESSES] = {"ExternalAddresses", "as", read_strv,
                                        offsetof(ManagerInfo, external_addresses)},
        [MANAGER_PREFIX64] = {"Prefix64", "as", read_strv, offsetof(ManagerInfo, prefix64)},
        [MANAGER_DEFAULT_LIFETIME] = {"DefaultLifetime", "u", read_u32, offsetof(ManagerInfo, default_lifetime)},
        [MANAGER_MAX_MAPPINGS_PER_USER] = {"MaxMappingsPerUser", "u", read_u32,
                                           offsetof(ManagerInfo, max_mappings_per_user)},
        [MANAGER_MAPPING_COUNT] = {"MappingCount", "u", read_u32, offsetof(ManagerInfo, mapping_count)},
        [MANAGER_DECLARED_MAPPINGS] = {"DeclaredMappings", "a(sso)", read_declared,
                                       offsetof(ManagerInfo, declared)},
};

static const PropMap mapping_map[_MAPPING_PROP_MAX] = {
        [MAPPING_OPCODE] = {"Opcode", "s", read_string, offsetof(MappingInfo, opcode)},
        [MAPPING_FAMILY] = {"Family", "s", read_string, offsetof(MappingInfo, family)},
        [MAPPING_PROTOCOL] = {"Protocol", "s", read_string, offsetof(MappingInfo, protocol)},
        [MAPPING_PROTOCOL_NUMBER] = {"ProtocolNumber", "y", read_u8, offsetof(MappingInfo, protocol_number)},
        [MAPPING_INTERNAL_ADDRESS] = {"InternalAddress", "s", read_string, offsetof(MappingInfo, internal_address)},
        [MAPPING_INTERNAL_PORT] = {"InternalPort", "q", read_u16, offsetof(MappingInfo, internal_port)},
        [MAPPING_SUGGESTED_EXTERNAL_PORT] = {"SuggestedExternalPort", "q", read_u16,
                                             offsetof(MappingInfo, suggested_external_port)},
        [MAPPING_EXTERNAL_ADDRESS] = {"ExternalAddress", "s", read_string, offsetof(MappingInfo, external_address)},
        [MAPPING_EXTERNAL_PORT] = {"ExternalPort", "q", read_u16, offsetof(MappingInfo, external_port)},
        [MAPPING_REMOTE_ADDRESS] = {"RemoteAddress", "s", read_string, offsetof(MappingInfo, remote_address)},
        [MAPPING_REMOTE_PORT] = {"RemotePort", "q", read_u16, offsetof(MappingInfo, remote_port)},
        [MAPPING_LIFETIME] = {"Lifetime", "u", read_u32, offsetof(MappingInfo, lifetime)},
        [MAPPING_EXPIRES_AT] = {"ExpiresAt", "t", read_u64, offsetof(MappingInfo, expires_at)},
        [MAPPING_STATE] = {"State", "s", read_string, offsetof(MappingInfo, state)},
        [MAPPING_ERROR] = {"Error", "s", read_string, offsetof(MappingInfo, error)},
        [MAPPING_SERVER] = {"Server", "s", read_string, offsetof(MappingInfo, server)},
        [MAPPING_DESCRIPTION] = {"Description", "s", read_string, offsetof(MappingInfo, description)},
        [MAPPING_PERSISTENT] = {"Persistent", "b", read_bool, offsetof(MappingInfo, persistent)},
        [MAPPING_OWNER] = {"Owner", "s", read_string, offsetof(MappingInfo, owner)},
        [MAPPING_UID] = {"UID", "u", read_u32, offsetof(MappingInfo, uid)},
        [MAPPING_PID] = {"PID", "u", read_u32, offsetof(MappingInfo, pid)},
        [MAPPING_APP_ID] = {"AppId", "s", read_string, offsetof(MappingInfo, app_id)},
        [MAPPING_APP_ID_SOURCE] = {"AppIdSource", "s", read_string, offsetof(MappingInfo, app_id_source)},
        [MAPPING_CREATED] = {"Created", "t", read_u64, offsetof(MappingInfo, created)},
        [MAPPING_DECLARED] = {"Declared", "s", read_string, offsetof(MappingInfo, declared)},
};

const char *manager_property_name(unsigned p) {
        return p < _MANAGER_PROP_MAX ? manager_map[p].name : NULL;
}

const char *mapping_property_name(unsigned p) {
        return p < _MAPPING_PROP_MAX ? mapping_map[p].name : NULL;
}

static int map_properties(sd_bus_message *m, const PropMap *map, size_t n_map, void *userdata,
                          PropMask *ret_seen, PropOther other, void *other_data) {
        PropMask seen = 0;
        size_t next = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        /* pcpd sends the properties in the order of the table: the search starts after the
         * last one found (a full turn at most), and the variant is entered with the type
         * the table expects instead of peeking at it first; a variant of another type is
         * skipped like an unknown property (sd-bus leaves the message where it was). */
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name;
                size_t p = n_map;

                r = sd_bus_message_read_basic(m, 's', &name);
                if (r < 0)
                        return r;

                for (size_t k = 0; k < n_map; k++) {
                        size_t i = (next + k) % n_map;

                        if (streq(map[i].name, name)) {
                                p = i;
                                break;
                        }
                }

                if (p < n_map) {
                        r = sd_bus_message_enter_container(m, 'v', map[p].signature);
                        if (r == -ENXIO || r == 0)
                                p = n_map; /* another type: skipped below */
                        else if (r < 0)
                                return r;
                }
                if (p < n_map) {
                        next = p + 1;
                        r = map[p].read(m, (uint8_t *) userdata + map[p].offset);
                        if (r < 0)
                                return r;
                        seen |= PROP_BIT(p);
                        r = sd_bus_message_exit_container(m);
                } else {
                        r = other != NULL ? other(m, name, other_data) : 0;
                        if (r == 0)
                                r = sd_bus_message_skip(m, "v");
                }
                if (r < 0)
                        return r;

                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        if (ret_seen != NULL)
                *ret_seen = seen;
        return sd_bus_message_exit_container(m);
}

static int manager_read(sd_bus_message *m, ManagerInfo *i, PropMask *ret_seen, PropOther other, void *other_data) {
        PropMask seen = 0;
        int r;

        r = map_properties(m, manager_map, _MANAGER_PROP_MAX, i, &seen, other, other_data);
        if (r < 0)
                return r;
        if (seen & PROP_BIT(MANAGER_STATE_ERROR))
                i->has_state_error = true;
        if (ret_seen != NULL)
                *ret_seen = seen;
        return 0;
}

int manager_info_read(sd_bus_message *m, ManagerInfo *i, PropMask *ret_seen) {
        return manager_read(m, i, ret_seen, NULL, NULL);
}

int mapping_info_read(sd_bus_message *m, MappingInfo *i, PropMask *ret_seen) {
        return map_properties(m, mapping_map, _MAPPING_PROP_MAX, i, ret_seen, NULL, NULL);
}

void manager_info_done(ManagerInfo *i) {
        free(i->version);
        free(i->state);
        free(i->state_error);
        servers_free(i->servers.items, i->servers.n);
        strv_free(i->external_addresses);
        strv_free(i->prefix64);
        declared_free(&i->declared);
        *i = (ManagerInfo){0};
}

static char **strv_copy(char *const *l, bool *oom) {
        size_t n = strv_length(l);
        char **c;

        if (l == NULL)
                return NULL;
        c = calloc(n + 1, sizeof(char *));
        if (c == NULL) {
                *oom = true;
                return NULL;
        }
        for (size_t k = 0; k < n; k++) {
                c[k] = strdup(l[k]);
                if (c[k] == NULL)
                        *oom = true;
        }
        return c;
}

static char *str_copy(const char *s, bool *oom) {
        char *c;

        if (s == NULL)
                return NULL;
        c = strdup(s);
        if (c == NULL)
                *oom = true;
        return c;
}

int manager_info_copy(const ManagerInfo *from, ManagerInfo *to) {
        bool oom = false;

        *to = (ManagerInfo){
                .version = str_copy(from->version, &oom),
                .enabled = from->enabled,
                .state = str_copy(from->state, &oom),
                .state_error = str_copy(from->state_error, &oom),
                .has_state_error = from->has_state_error,
                .external_addresses = strv_copy(from->external_addresses, &oom),
                .prefix64 = strv_copy(from->prefix64, &oom),
                .default_lifetime = from->default_lifetime,
                .max_mappings_per_user = from->max_mappings_per_user,
                .mapping_count = from->mapping_count,
                .declared = {
                        .present = from->declared.present,
                        .names = strv_copy(from->declared.names, &oom),
                        .files = strv_copy(from->declared.files, &oom),
                        .mappings = strv_copy(from->declared.mappings, &oom),
                },
        };
        if (from->servers.n > 0) {
                to->servers.items = calloc(from->servers.n, sizeof(ServerInfo));
                if (to->servers.items == NULL)
                        oom = true;
                else {
                        to->servers.n = from->servers.n;
                        for (size_t k = 0; k < from->servers.n; k++)
                                to->servers.items[k] = (ServerInfo){
                                        .interface = str_copy(from->servers.items[k].interface, &oom),
                                        .address = str_copy(from->servers.items[k].address, &oom),
                                        .source = str_copy(from->servers.items[k].source, &oom),
                                        .protocol = str_copy(from->servers.items[k].protocol, &oom),
                                        .epoch = from->servers.items[k].epoch,
                                };
                }
        }
        if (oom) {
                manager_info_done(to);
                return -ENOMEM;
        }
        return 0;
}

void mapping_info_done(MappingInfo *i) {
        free(i->path);
        free(i->opcode);
        free(i->family);
        free(i->protocol);
        free(i->internal_address);
        free(i->external_address);
        free(i->remote_address);
        free(i->state);
        free(i->error);
        free(i->server);
        free(i->description);
        free(i->owner);
        free(i->app_id);
        free(i->app_id_source);
        free(i->declared);
        *i = (MappingInfo){0};
}

void mappings_free(MappingInfo *m, size_t n) {
        for (size_t i = 0; i < n; i++)
                mapping_info_done(&m[i]);
        free(m);
}

static int get_all(sd_bus *bus, const char *path, const char *interface, sd_bus_error *error,
                   sd_bus_message **reply) {
        return sd_bus_call_method(bus, PCP1_BUS_NAME, path, PROPERTIES_IFACE, "GetAll", error, reply, "s",
                                  interface);
}

int manager_info_get(sd_bus *bus, ManagerInfo *ret, sd_bus_error *error) {
        return manager_info_get_other(bus, ret, error, NULL, NULL);
}

int manager_info_get_other(sd_bus *bus, ManagerInfo *ret, sd_bus_error *error, PropOther other, void *other_data) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        ManagerInfo info = {0};
        int r;

        r = get_all(bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, error, &reply);
        if (r < 0)
                return r;
        r = manager_read(reply, &info, NULL, other, other_data);
        if (r < 0) {
                manager_info_done(&info);
                return r;
        }
        *ret = info;
        return 0;
}

int mapping_info_get(sd_bus *bus, const char *path, MappingInfo *ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        MappingInfo info = {0};
        int r;

        r = get_all(bus, path, PCP1_MAPPING_IFACE, error, &reply);
        if (r < 0)
                return r;
        info.path = strdup(path);
        if (info.path == NULL)
                return -ENOMEM;
        r = mapping_info_read(reply, &info, NULL);
        if (r < 0) {
                mapping_info_done(&info);
                return r;
        }
        *ret = info;
        return 0;
}

static int compare_mappings(const void *a, const void *b) {
        const MappingInfo *x = a, *y = b;
        int64_t ix = mapping_id_number(x->path), iy = mapping_id_number(y->path);

        if (ix >= 0 && iy >= 0 && ix != iy)
                return ix < iy ? -1 : 1;
        return strcmp(strempty(x->path), strempty(y->path));
}

/* The interfaces of one object ("a{sa{sv}}"): the Mapping interface's properties into
 * *info; returns 1 when it was there. */
static int read_interfaces(sd_bus_message *m, MappingInfo *info) {
        bool found = false;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
                const char *interface;

                r = sd_bus_message_read_basic(m, 's', &interface);
                if (r < 0)
                        return r;
                if (streq(interface, PCP1_MAPPING_IFACE) && !found) {
                        r = mapping_info_read(m, info, NULL);
                        found = true;
                } else
                        r = sd_bus_message_skip(m, "a{sv}");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        return found;
}

int mappings_read_managed(sd_bus_message *reply, MappingInfo **ret, size_t *ret_n) {
        MappingInfo *mappings = NULL, info = {0};
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                const char *path;

                r = sd_bus_message_read_basic(reply, 'o', &path);
                if (r < 0)
                        goto fail;
                info = (MappingInfo){.path = strdup(path)};
                if (info.path == NULL) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = read_interfaces(reply, &info);
                if (r < 0)
                        goto fail;
                if (r > 0) {
                        MappingInfo *a;

                        if (n >= MAPPINGS_MAX) {
                                r = -E2BIG;
                                goto fail;
                        }
                        a = realloc(mappings, (n + 1) * sizeof(MappingInfo));
                        if (a == NULL) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        mappings = a;
                        mappings[n++] = info;
                } else
                        mapping_info_done(&info);
                info = (MappingInfo){0};
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        goto fail;
        }
        if (r < 0)
                goto fail;
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                goto fail;

        if (n > 1)
                qsort(mappings, n, sizeof(MappingInfo), compare_mappings);
        *ret = mappings;
        *ret_n = n;
        return 0;

fail:
        mapping_info_done(&info);
        mappings_free(mappings, n);
        return r;
}

int mappings_get(sd_bus *bus, MappingInfo **ret, size_t *ret_n, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, PCP1_BUS_NAME, PCP1_MANAGER_PATH, OBJECT_MANAGER_IFACE, "GetManagedObjects",
                               error, &reply, NULL);
        if (r < 0)
                return r;
        return mappings_read_managed(reply, ret, ret_n);
}

int mapping_info_read_added(sd_bus_message *m, MappingInfo *ret) {
        MappingInfo info = {0};
        const char *path;
        int r;

        r = sd_bus_message_read_basic(m, 'o', &path);
        if (r < 0)
                return r;
        info.path = strdup(path);
        if (info.path == NULL)
                return -ENOMEM;
        r = read_interfaces(m, &info);
        if (r <= 0) {
                mapping_info_done(&info);
                return r;
        }
        *ret = info;
        return 1;
}
