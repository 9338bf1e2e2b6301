/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcpctl: the command-line client of pcpd (org.freedesktop.PCP1 on the system bus).
 *
 * Exit status: 0 success, 1 failure (the error is on stderr), 2 usage error.
 */

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libintl.h>
#include <locale.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "pcp1-contract.h"
#include "pcpctl-output.h"

#define _(s) gettext(s)
#define N_(s) (s)

#define PCP_MAPPING_PREFIX PCP1_MAPPING_PATH_PREFIX "/"

#define EXIT_USAGE 2

#define DESCRIPTION_MAX 1024u
#define APP_ID_MAX 255u
#define MAPPING_ID_MAX 255u
#define SERVERS_MAX 1024u
#define STRV_MAX 4096u
/* room for a person to answer a polkit password prompt */
#define INTERACTIVE_CALL_TIMEOUT_USEC (UINT64_C(300) * 1000000)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)

static inline void freep(void *p) {
        free(*(void **) p);
}

static void strv_free(char **l) {
        for (char **i = l; i != NULL && *i != NULL; i++)
                free(*i);
        free(l);
}


static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static inline const char *strempty(const char *s) {
        return s ? s : "";
}

static inline bool isempty(const char *s) {
        return s == NULL || s[0] == '\0';
}

/* ---- arguments ---- */

static bool arg_json = false;
static JsonMode arg_json_mode = JSON_SHORT;
static bool arg_legend = true;
static bool arg_ask_password = true;
static uint16_t arg_external_port = 0;
static bool arg_lifetime_set = false;
static uint32_t arg_lifetime = 0;
static const char *arg_description = NULL;
static const char *arg_family = NULL;
static const char *arg_interface = NULL;
static bool arg_prefer_failure = false;
static bool arg_persistent = false;
static bool arg_wait = false;

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
};
static unsigned arg_seen = 0;

static const char *const seen_names[] = {
        "--external-port", "--lifetime",       "--description", "--family",
        "--interface",     "--prefer-failure", "--persistent",  "--wait",
};

/* ---- messages ---- */

static void log_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void log_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static int usage_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        fprintf(stderr, _("Try '%s --help' for more information.\n"), program_invocation_short_name);
        return EXIT_USAGE;
}

static int log_oom(void) {
        log_error(_("Out of memory."));
        return -ENOMEM;
}

/* A sentence for an error from the bus or a negative errno. The daemon's own messages
 * are meant for users; the bus's are replaced where a better one is known. */
static const char *bus_error_message(const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error)) {
                if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN,
                                           SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        return _("pcpd is not running and could not be started.");
                if (sd_bus_error_has_name(error, SD_BUS_ERROR_ACCESS_DENIED))
                        return _("Access denied by the bus policy.");
                if (sd_bus_error_has_name(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                        return _("Authorization is required, but --no-ask-password was given.");
                if (sd_bus_error_has_name(error, SD_BUS_ERROR_NO_REPLY))
                        return _("pcpd did not answer in time.");
                if (!isempty(error->message))
                        return error->message;
                return error->name;
        }
        return strerror(r < 0 ? -r : r);
}

static void print_sanitized(FILE *f, const char *s) {
        _cleanup_free_ char *t = text_sanitize(s);

        fputs(t ? t : "?", f);
}

/* ---- parsing of user input ---- */

static int parse_uint(const char *s, uint64_t max, uint64_t *ret) {
        char *end = NULL;
        unsigned long long v;

        if (isempty(s) || s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || end == NULL || *end != '\0')
                return -EINVAL;
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int parse_port(const char *s, const char *what, uint16_t *ret) {
        uint64_t v;

        if (parse_uint(s, 65535, &v) < 0 || v == 0) {
                usage_error(_("Invalid %s '%s': must be 1-65535."), what, s);
                return -EINVAL;
        }
        *ret = (uint16_t) v;
        return 0;
}

/* "tcp", "udp", "sctp", "dccp" (any case) or a protocol number 0-255; returns the form
 * sent to the daemon. */
static int parse_protocol(const char *s, const char **ret) {
        static const char *const names[] = {"tcp", "udp", "sctp", "dccp"};
        uint64_t v;

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(s, names[i]) == 0) {
                        *ret = names[i];
                        return 0;
                }
        if (parse_uint(s, 255, &v) == 0) {
                *ret = s;
                return 0;
        }
        usage_error(_("Invalid protocol '%s': must be tcp, udp, sctp, dccp or a protocol number 0-255."), s);
        return -EINVAL;
}

static int parse_family(const char *s) {
        if (streq(s, "ipv4") || streq(s, "ipv6"))
                return 0;
        usage_error(_("Invalid address family '%s': must be ipv4 or ipv6."), s);
        return -EINVAL;
}

static int parse_interface(const char *s) {
        if (isempty(s) || strlen(s) >= IFNAMSIZ || streq(s, ".") || streq(s, "..") ||
            strpbrk(s, "/: \t\n") != NULL) {
                usage_error(_("Invalid interface name '%s'."), s);
                return -EINVAL;
        }
        return 0;
}

static int parse_address(const char *s) {
        unsigned char buf[sizeof(struct in6_addr)];

        if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
                return 0;
        usage_error(_("Invalid remote address '%s': must be an IPv4 or IPv6 address."), s);
        return -EINVAL;
}

/* A mapping given as its id ("7") or its object path. */
static int parse_mapping(const char *s, char **ret) {
        char *path;

        if (s[0] == '/') {
                if (sd_bus_object_path_is_valid(s) <= 0 ||
                    strncmp(s, PCP_MAPPING_PREFIX, strlen(PCP_MAPPING_PREFIX)) != 0 ||
                    s[strlen(PCP_MAPPING_PREFIX)] == '\0' ||
                    strchr(s + strlen(PCP_MAPPING_PREFIX), '/') != NULL) {
                        usage_error(_("Invalid mapping '%s': expected an id or a path below %s."), s,
                                    PCP_MAPPING_PREFIX);
                        return -EINVAL;
                }
                path = strdup(s);
        } else {
                size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");

                if (n == 0 || s[n] != '\0' || n > MAPPING_ID_MAX) {
                        usage_error(_("Invalid mapping '%s': expected an id or a path below %s."), s,
                                    PCP_MAPPING_PREFIX);
                        return -EINVAL;
                }
                if (asprintf(&path, "%s%s", PCP_MAPPING_PREFIX, s) < 0)
                        path = NULL;
        }
        if (path == NULL)
                return log_oom();
        *ret = path;
        return 0;
}

static const char *mapping_id(const char *path) {
        if (path != NULL && strncmp(path, PCP_MAPPING_PREFIX, strlen(PCP_MAPPING_PREFIX)) == 0)
                return path + strlen(PCP_MAPPING_PREFIX);
        return strempty(path);
}

/* ---- the bus ---- */

static int connect_bus(sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                log_error(_("Failed to connect to the system bus: %s"), strerror(-r));
                return r;
        }
        /* polkit may ask the user for a password unless told not to */
        r = sd_bus_set_allow_interactive_authorization(bus, arg_ask_password);
        if (r < 0) {
                sd_bus_unref(bus);
                log_error(_("Failed to set up the bus connection: %s"), strerror(-r));
                return r;
        }
        *ret = bus;
        return 0;
}

/* pkttyagent answers polkit's questions on the terminal when no desktop agent does. Only
 * for interactive runs: started before a call that may need authorization. */
static pid_t polkit_agent_pid = 0;

static void polkit_agent_open(void) {
        int pipefd[2];
        pid_t pid;

        if (!arg_ask_password || polkit_agent_pid > 0 || geteuid() == 0 || !isatty(STDIN_FILENO) ||
            access("/usr/bin/pkttyagent", X_OK) < 0)
                return;
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
                execl("/usr/bin/pkttyagent", "pkttyagent", "--notify-fd", fd, "--fallback", (char *) NULL);
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

/* A method call on pcpd that may need polkit's authorization: with a terminal agent and
 * a long timeout when polkit may ask the user. */
static int call_authorized(sd_bus *bus, sd_bus_message *m, sd_bus_error *error, sd_bus_message **reply) {
        int r;

        if (arg_ask_password)
                polkit_agent_open();
        r = sd_bus_call(bus, m, arg_ask_password ? INTERACTIVE_CALL_TIMEOUT_USEC : 0, error, reply);
        polkit_agent_close();
        return r;
}

static int new_call(sd_bus *bus, const char *path, const char *interface, const char *member,
                    sd_bus_message **ret) {
        return sd_bus_message_new_method_call(bus, ret, PCP1_BUS_NAME, path, interface, member);
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
        size_t n = 0;
        int r;

        r = sd_bus_message_read_strv(m, &v);
        if (r < 0)
                return r;
        while (v != NULL && v[n] != NULL)
                n++;
        if (n > STRV_MAX) {
                strv_free(v);
                return -E2BIG;
        }
        strv_free(*l);
        *l = v;
        return 0;
}

/* Reads an a{sv} of properties; known names of the expected type go through the map,
 * everything else (additions to the API) is skipped. Changed-set semantics: fields not
 * in the message are left alone. */
static int map_properties(sd_bus_message *m, const PropMap *map, void *userdata) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const PropMap *p = NULL;
                const char *name, *contents;

                r = sd_bus_message_read_basic(m, 's', &name);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(m, NULL, &contents);
                if (r < 0)
                        return r;

                for (const PropMap *i = map; i->name != NULL; i++)
                        if (streq(i->name, name) && streq(i->signature, contents)) {
                                p = i;
                                break;
                        }

                if (p != NULL) {
                        r = sd_bus_message_enter_container(m, 'v', contents);
                        if (r < 0)
                                return r;
                        r = p->read(m, (uint8_t *) userdata + p->offset);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(m);
                } else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;

                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        return sd_bus_message_exit_container(m);
}

typedef struct ServerInfo {
        char *interface;
        char *address;
        char *source;
        char *protocol;
        uint32_t epoch;
} ServerInfo;

typedef struct ServerList {
        ServerInfo *items;
        size_t n;
} ServerList;

typedef struct ManagerInfo {
        char *version;
        bool enabled;
        char *state;
        ServerList servers;
        char **external_addresses;
        char **prefix64;
        uint32_t default_lifetime;
        uint32_t max_mappings_per_user;
        uint32_t mapping_count;
} ManagerInfo;

static void servers_free(ServerInfo *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(s[i].interface);
                free(s[i].address);
                free(s[i].source);
                free(s[i].protocol);
        }
        free(s);
}

static void manager_info_done(ManagerInfo *i) {
        free(i->version);
        free(i->state);
        servers_free(i->servers.items, i->servers.n);
        strv_free(i->external_addresses);
        strv_free(i->prefix64);
        *i = (ManagerInfo){0};
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

static const PropMap manager_map[] = {
        {"Version", "s", read_string, offsetof(ManagerInfo, version)},
        {"Enabled", "b", read_bool, offsetof(ManagerInfo, enabled)},
        {"State", "s", read_string, offsetof(ManagerInfo, state)},
        {"Servers", "a(ssssu)", read_servers, offsetof(ManagerInfo, servers)},
        {"ExternalAddresses", "as", read_strv, offsetof(ManagerInfo, external_addresses)},
        {"Prefix64", "as", read_strv, offsetof(ManagerInfo, prefix64)},
        {"DefaultLifetime", "u", read_u32, offsetof(ManagerInfo, default_lifetime)},
        {"MaxMappingsPerUser", "u", read_u32, offsetof(ManagerInfo, max_mappings_per_user)},
        {"MappingCount", "u", read_u32, offsetof(ManagerInfo, mapping_count)},
        {NULL, NULL, NULL, 0},
};

typedef struct MappingInfo {
        char *path;
        char *opcode;
        char *family;
        char *protocol;
        uint8_t protocol_number;
        char *internal_address;
        uint16_t internal_port;
        uint16_t suggested_external_port;
        char *external_address;
        uint16_t external_port;
        char *remote_address;
        uint16_t remote_port;
        uint32_t lifetime;
        uint64_t expires_at;
        char *state;
        char *error;
        char *server;
        char *description;
        bool persistent;
        char *owner;
        uint32_t uid;
        uint32_t pid;
        char *app_id;
        char *app_id_source;
        uint64_t created;
} MappingInfo;

static const PropMap mapping_map[] = {
        {"Opcode", "s", read_string, offsetof(MappingInfo, opcode)},
        {"Family", "s", read_string, offsetof(MappingInfo, family)},
        {"Protocol", "s", read_string, offsetof(MappingInfo, protocol)},
        {"ProtocolNumber", "y", read_u8, offsetof(MappingInfo, protocol_number)},
        {"InternalAddress", "s", read_string, offsetof(MappingInfo, internal_address)},
        {"InternalPort", "q", read_u16, offsetof(MappingInfo, internal_port)},
        {"SuggestedExternalPort", "q", read_u16, offsetof(MappingInfo, suggested_external_port)},
        {"ExternalAddress", "s", read_string, offsetof(MappingInfo, external_address)},
        {"ExternalPort", "q", read_u16, offsetof(MappingInfo, external_port)},
        {"RemoteAddress", "s", read_string, offsetof(MappingInfo, remote_address)},
        {"RemotePort", "q", read_u16, offsetof(MappingInfo, remote_port)},
        {"Lifetime", "u", read_u32, offsetof(MappingInfo, lifetime)},
        {"ExpiresAt", "t", read_u64, offsetof(MappingInfo, expires_at)},
        {"State", "s", read_string, offsetof(MappingInfo, state)},
        {"Error", "s", read_string, offsetof(MappingInfo, error)},
        {"Server", "s", read_string, offsetof(MappingInfo, server)},
        {"Description", "s", read_string, offsetof(MappingInfo, description)},
        {"Persistent", "b", read_bool, offsetof(MappingInfo, persistent)},
        {"Owner", "s", read_string, offsetof(MappingInfo, owner)},
        {"UID", "u", read_u32, offsetof(MappingInfo, uid)},
        {"PID", "u", read_u32, offsetof(MappingInfo, pid)},
        {"AppId", "s", read_string, offsetof(MappingInfo, app_id)},
        {"AppIdSource", "s", read_string, offsetof(MappingInfo, app_id_source)},
        {"Created", "t", read_u64, offsetof(MappingInfo, created)},
        {NULL, NULL, NULL, 0},
};

static void mapping_info_done(MappingInfo *i) {
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
        *i = (MappingInfo){0};
}

static int get_all_properties(sd_bus *bus, const char *path, const char *interface, sd_bus_error *error,
                              sd_bus_message **reply) {
        return sd_bus_call_method(bus, PCP1_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll",
                                  error, reply, "s", interface);
}

/* ---- generic D-Bus value to JSON or text (monitor, --json) ---- */

static int json_from_message(Json *j, sd_bus_message *m, unsigned depth);

static int json_from_container(Json *j, sd_bus_message *m, char type, const char *contents, unsigned depth) {
        bool dict = type == 'a' && contents[0] == '{';
        bool string_keys = dict && strchr("sog", contents[1]) != NULL;
        int r;

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;

        if (string_keys)
                json_begin_object(j);
        else
                json_begin_array(j);

        for (;;) {
                r = sd_bus_message_at_end(m, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;

                if (dict) {
                        const char *entry;

                        r = sd_bus_message_peek_type(m, NULL, &entry);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_enter_container(m, 'e', entry);
                        if (r < 0)
                                return r;
                        if (string_keys) {
                                const char *key;

                                r = sd_bus_message_read_basic(m, contents[1], &key);
                                if (r < 0)
                                        return r;
                                json_key(j, key);
                                r = json_from_message(j, m, depth + 1);
                        } else {
                                json_begin_array(j);
                                r = json_from_message(j, m, depth + 1);
                                if (r >= 0)
                                        r = json_from_message(j, m, depth + 1);
                                json_end_array(j);
                        }
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(m);
                } else
                        r = json_from_message(j, m, depth + 1);
                if (r < 0)
                        return r;
        }

        if (string_keys)
                json_end_object(j);
        else
                json_end_array(j);
        return sd_bus_message_exit_container(m);
}

/* Converts the one complete value at the read position of m. */
static int json_from_message(Json *j, sd_bus_message *m, unsigned depth) {
        const char *contents;
        char type;
        int r;

        if (depth > PCPCTL_JSON_MAX_DEPTH)
                return -E2BIG;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;

        switch (type) {
        case 'a':
        case 'r':
                return json_from_container(j, m, type, contents, depth);
        case 'v':
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                r = json_from_message(j, m, depth + 1);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        case 'e':
                return -EBADMSG;
        default: {
                union {
                        uint8_t y;
                        int16_t n;
                        uint16_t q;
                        int32_t i;
                        uint32_t u;
                        int64_t x;
                        uint64_t t;
                        double d;
                        int b;
                        const char *s;
                } v;

                r = sd_bus_message_read_basic(m, type, &v);
                if (r < 0)
                        return r;
                switch (type) {
                case 'y':
                        json_uint(j, v.y);
                        break;
                case 'n':
                        json_int(j, v.n);
                        break;
                case 'q':
                        json_uint(j, v.q);
                        break;
                case 'i':
                        json_int(j, v.i);
                        break;
                case 'u':
                        json_uint(j, v.u);
                        break;
                case 'x':
                        json_int(j, v.x);
                        break;
                case 't':
                        json_uint(j, v.t);
                        break;
                case 'd':
                        json_double(j, v.d);
                        break;
                case 'b':
                        json_bool(j, v.b);
                        break;
                case 's':
                case 'o':
                case 'g':
                        json_string(j, v.s);
                        break;
                default: /* 'h': a file descriptor means nothing outside the process */
                        json_null(j);
                }
                return 0;
        }
        }
}

/* A value as one short line of text for monitor: strings bare, containers in JSON. */
static char *value_to_text(sd_bus_message *m) {
        char *buf = NULL, *out;
        size_t size = 0;
        FILE *f;
        Json j;
        char type;
        const char *contents;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return NULL;
        if (type == 'v' && streq(contents, "s")) {
                const char *s;

                if (sd_bus_message_read(m, "v", "s", &s) < 0)
                        return NULL;
                return text_sanitize(s);
        }

        f = open_memstream(&buf, &size);
        if (f == NULL)
                return NULL;
        json_init(&j, f, JSON_SHORT);
        r = json_from_message(&j, m, 0);
        if (fclose(f) != 0 || r < 0) {
                free(buf);
                return NULL;
        }
        out = text_sanitize(buf);
        free(buf);
        return out;
}

/* ---- formatting ---- */

static char *format_endpoint(const char *address, uint16_t port) {
        char *s;
        int r;

        if (isempty(address))
                r = port > 0 ? asprintf(&s, "*:%u", port) : asprintf(&s, "-");
        else if (strchr(address, ':') != NULL)
                r = asprintf(&s, "[%s]:%u", address, port);
        else
                r = asprintf(&s, "%s:%u", address, port);
        return r < 0 ? NULL : s;
}

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* One line for a person: "tcp 8080 -> 198.51.100.1:8080 (lifetime 3600 s)", "tcp 8080:
 * pending", "tcp 8080: failed (NO_RESOURCES), retrying". */
static char *describe_mapping(const MappingInfo *i) {
        _cleanup_free_ char *external = NULL, *remote = NULL, *proto = NULL, *error = NULL;
        const char *state = strempty(i->state);
        char *s;
        int r;

        proto = text_sanitize(isempty(i->protocol) ? "?" : i->protocol);
        error = text_sanitize(i->error);
        if (proto == NULL || error == NULL)
                return NULL;

        if (streq(state, "active") || streq(state, "renewing")) {
                external = format_endpoint(i->external_address, i->external_port);
                if (external == NULL)
                        return NULL;
                if (!isempty(i->remote_address)) {
                        remote = format_endpoint(i->remote_address, i->remote_port);
                        if (remote == NULL)
                                return NULL;
                        r = asprintf(&s, _("%s %u -> %s (peer %s, lifetime %" PRIu32 " s)%s"), proto,
                                     i->internal_port, external, remote, i->lifetime,
                                     streq(state, "renewing") ? _(", renewing") : "");
                } else
                        r = asprintf(&s, _("%s %u -> %s (lifetime %" PRIu32 " s)%s"), proto,
                                     i->internal_port, external, i->lifetime,
                                     streq(state, "renewing") ? _(", renewing") : "");
        } else if (streq(state, "failed"))
                r = asprintf(&s, _("%s %u: failed (%s), retrying"), proto, i->internal_port,
                             isempty(error) ? _("unknown error") : error);
        else if (streq(state, "pending"))
                r = asprintf(&s, _("%s %u: pending"), proto, i->internal_port);
        else {
                _cleanup_free_ char *st = text_sanitize(state);

                if (st == NULL)
                        return NULL;
                r = asprintf(&s, "%s %u: %s", proto, i->internal_port, st);
        }
        return r < 0 ? NULL : s;
}

/* ---- verbs ---- */

static int verb_status(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *servers = NULL;
        ManagerInfo info = {0};
        char span[64];
        int r;

        r = get_all_properties(bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, &error, &reply);
        if (r < 0) {
                log_error(_("Failed to query status: %s"), bus_error_message(&error, r));
                return EXIT_FAILURE;
        }

        if (arg_json) {
                Json j;

                json_init(&j, stdout, arg_json_mode);
                r = json_from_message(&j, reply, 0);
                if (r >= 0)
                        r = json_finish(&j);
                if (r < 0) {
                        log_error(_("Failed to query status: %s"), strerror(-r));
                        return EXIT_FAILURE;
                }
                return EXIT_SUCCESS;
        }

        r = map_properties(reply, manager_map, &info);
        if (r < 0) {
                manager_info_done(&info);
                log_error(_("Failed to query status: cannot parse the reply: %s"), strerror(-r));
                return EXIT_FAILURE;
        }

        /* labels right-aligned on the colon, as timedatectl does */
        struct {
                const char *label;
                char *value;
        } lines[] = {
                {_("Version"), text_sanitize(info.version)},
                {_("Enabled"), strdup(info.enabled ? _("yes") : _("no"))},
                {_("State"), text_sanitize(info.state)},
                {_("External addresses"), NULL},
                {_("NAT64 prefixes"), NULL},
                {_("Default lifetime"), NULL},
                {_("Max mappings per user"), NULL},
                {_("Mappings"), NULL},
        };
        size_t width = 0;
        char *joined = NULL;
        size_t joined_size = 0;
        FILE *f;

        for (unsigned k = 0; k < 2; k++) {
                char **l = k == 0 ? info.external_addresses : info.prefix64;

                joined = NULL;
                joined_size = 0;
                f = open_memstream(&joined, &joined_size);
                if (f == NULL)
                        break;
                for (char **s = l; s != NULL && *s != NULL; s++) {
                        if (s != l)
                                fputs(", ", f);
                        print_sanitized(f, *s);
                }
                if (l == NULL || l[0] == NULL)
                        fputs("-", f);
                if (fclose(f) != 0) {
                        free(joined);
                        joined = NULL;
                }
                lines[3 + k].value = joined;
        }
        if (asprintf(&lines[5].value, "%" PRIu32 " s (%s)", info.default_lifetime,
                     format_timespan(span, sizeof(span), (uint64_t) info.default_lifetime * 1000000)) < 0)
                lines[5].value = NULL;
        if (asprintf(&lines[6].value, "%" PRIu32, info.max_mappings_per_user) < 0)
                lines[6].value = NULL;
        if (asprintf(&lines[7].value, "%" PRIu32, info.mapping_count) < 0)
                lines[7].value = NULL;

        r = 0;
        for (size_t k = 0; k < ELEMENTSOF(lines); k++) {
                if (lines[k].value == NULL)
                        r = -ENOMEM;
                if (text_width(lines[k].label) > width)
                        width = text_width(lines[k].label);
        }
        if (r == 0)
                for (size_t k = 0; k < ELEMENTSOF(lines); k++)
                        printf("%*s%s: %s\n", (int) (width - text_width(lines[k].label)), "", lines[k].label,
                               lines[k].value);
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
        for (size_t k = 0; k < info.servers.n; k++) {
                char epoch[32];

                snprintf(epoch, sizeof(epoch), "%" PRIu32, info.servers.items[k].epoch);
                r = table_add_row(servers, (const char *const[]){info.servers.items[k].interface,
                                                                 info.servers.items[k].address,
                                                                 info.servers.items[k].source,
                                                                 info.servers.items[k].protocol, epoch});
                if (r < 0) {
                        manager_info_done(&info);
                        return log_oom(), EXIT_FAILURE;
                }
        }
        if (info.servers.n == 0)
                printf(_("No PCP or NAT-PMP server known.\n"));
        else
                (void) table_print(servers, stdout, arg_legend);

        manager_info_done(&info);
        return EXIT_SUCCESS;
}

static int compare_mappings(const void *a, const void *b) {
        const MappingInfo *x = a, *y = b;
        const char *ix = mapping_id(x->path), *iy = mapping_id(y->path);
        size_t lx = strlen(ix), ly = strlen(iy);

        /* numeric ids in numeric order: shorter first, then by digits */
        if (strspn(ix, "0123456789") == lx && strspn(iy, "0123456789") == ly && lx != ly)
                return lx < ly ? -1 : 1;
        return strcmp(ix, iy);
}

static int list_json(sd_bus_message *reply) {
        Json j;
        int r;

        json_init(&j, stdout, arg_json_mode);
        json_begin_array(&j);

        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                const char *path;

                r = sd_bus_message_read_basic(reply, 'o', &path);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(reply, 'a', "{sa{sv}}");
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_enter_container(reply, 'e', "sa{sv}")) > 0) {
                        const char *interface;

                        r = sd_bus_message_read_basic(reply, 's', &interface);
                        if (r < 0)
                                return r;
                        if (!streq(interface, PCP1_MAPPING_IFACE)) {
                                r = sd_bus_message_skip(reply, "a{sv}");
                                if (r < 0)
                                        return r;
                        } else {
                                json_begin_object(&j);
                                json_key(&j, "Id");
                                json_string(&j, mapping_id(path));
                                json_key(&j, "Path");
                                json_string(&j, path);
                                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
                                if (r < 0)
                                        return r;
                                while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                                        const char *name;

                                        r = sd_bus_message_read_basic(reply, 's', &name);
                                        if (r < 0)
                                                return r;
                                        json_key(&j, name);
                                        r = json_from_message(&j, reply, 0);
                                        if (r < 0)
                                                return r;
                                        r = sd_bus_message_exit_container(reply);
                                        if (r < 0)
                                                return r;
                                }
                                if (r < 0)
                                        return r;
                                r = sd_bus_message_exit_container(reply);
                                if (r < 0)
                                        return r;
                                json_end_object(&j);
                        }
                        r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                return r;
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        json_end_array(&j);
        return json_finish(&j);
}

static void mappings_free(MappingInfo *m, size_t n) {
        for (size_t i = 0; i < n; i++)
                mapping_info_done(&m[i]);
        free(m);
}

static int list_read(sd_bus_message *reply, MappingInfo **ret, size_t *ret_n) {
        MappingInfo *mappings = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                const char *path;
                bool found = false;

                r = sd_bus_message_read_basic(reply, 'o', &path);
                if (r < 0)
                        goto fail;
                r = sd_bus_message_enter_container(reply, 'a', "{sa{sv}}");
                if (r < 0)
                        goto fail;
                while ((r = sd_bus_message_enter_container(reply, 'e', "sa{sv}")) > 0) {
                        const char *interface;

                        r = sd_bus_message_read_basic(reply, 's', &interface);
                        if (r < 0)
                                goto fail;
                        if (streq(interface, PCP1_MAPPING_IFACE) && !found) {
                                MappingInfo *a = realloc(mappings, (n + 1) * sizeof(MappingInfo));

                                if (a == NULL) {
                                        r = -ENOMEM;
                                        goto fail;
                                }
                                mappings = a;
                                mappings[n] = (MappingInfo){.path = strdup(path)};
                                n++;
                                if (mappings[n - 1].path == NULL) {
                                        r = -ENOMEM;
                                        goto fail;
                                }
                                r = map_properties(reply, mapping_map, &mappings[n - 1]);
                                found = true;
                        } else
                                r = sd_bus_message_skip(reply, "a{sv}");
                        if (r < 0)
                                goto fail;
                        r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                goto fail;
                }
                if (r < 0)
                        goto fail;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        goto fail;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        goto fail;
        }
        if (r < 0)
                goto fail;

        if (n > 1)
                qsort(mappings, n, sizeof(MappingInfo), compare_mappings);
        *ret = mappings;
        *ret_n = n;
        return 0;

fail:
        mappings_free(mappings, n);
        return r;
}

static int verb_list(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        MappingInfo *mappings = NULL;
        uint64_t now = now_realtime_usec();
        size_t n = 0;
        int r;

        r = sd_bus_call_method(bus, PCP1_BUS_NAME, PCP1_MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", &error, &reply, NULL);
        if (r < 0) {
                log_error(_("Failed to list mappings: %s"), bus_error_message(&error, r));
                return EXIT_FAILURE;
        }

        if (arg_json) {
                r = list_json(reply);
                if (r < 0) {
                        log_error(_("Failed to list mappings: %s"), strerror(-r));
                        return EXIT_FAILURE;
                }
                return EXIT_SUCCESS;
        }

        r = list_read(reply, &mappings, &n);
        if (r < 0) {
                log_error(_("Failed to list mappings: cannot parse the reply: %s"), strerror(-r));
                return EXIT_FAILURE;
        }

        t = table_new(9, (const char *const[]){_("ID"), _("PROTO"), _("INTERNAL"), _("EXTERNAL"), _("STATE"),
                                               _("EXPIRES"), _("UID"), _("APP"), _("DESCRIPTION")});
        if (t == NULL) {
                mappings_free(mappings, n);
                return log_oom(), EXIT_FAILURE;
        }

        for (size_t k = 0; k < n; k++) {
                const MappingInfo *m = &mappings[k];
                _cleanup_free_ char *internal = NULL, *external = NULL, *proto = NULL, *state = NULL;
                char expires[80], span[64], uid[16];

                internal = format_endpoint(m->internal_address, m->internal_port);
                external = m->external_port > 0 ? format_endpoint(m->external_address, m->external_port)
                                                : strdup("-");
                if (asprintf(&proto, "%s%s", strempty(m->protocol),
                             m->opcode != NULL && streq(m->opcode, "peer") ? "/peer" : "") < 0)
                        proto = NULL;
                if (asprintf(&state, isempty(m->error) ? "%s" : "%s (%s)", strempty(m->state),
                             strempty(m->error)) < 0)
                        state = NULL;

                if (m->expires_at == 0)
                        snprintf(expires, sizeof(expires), "-");
                else if (m->expires_at <= now)
                        snprintf(expires, sizeof(expires), "%s", _("expired"));
                else
                        snprintf(expires, sizeof(expires), _("in %s"),
                                 format_timespan(span, sizeof(span), m->expires_at - now));
                snprintf(uid, sizeof(uid), "%" PRIu32, m->uid);

                if (internal == NULL || external == NULL || proto == NULL || state == NULL ||
                    table_add_row(t, (const char *const[]){mapping_id(m->path), proto, internal, external,
                                                           state, expires, uid, m->app_id, m->description}) <
                            0) {
                        mappings_free(mappings, n);
                        return log_oom(), EXIT_FAILURE;
                }
        }
        mappings_free(mappings, n);

        if (table_n_rows(t) == 0) {
                if (arg_legend)
                        printf(_("No mappings.\n"));
                return EXIT_SUCCESS;
        }
        (void) table_print(t, stdout, arg_legend);
        if (arg_legend)
                printf(ngettext("\n%zu mapping listed.\n", "\n%zu mappings listed.\n", table_n_rows(t)),
                       table_n_rows(t));
        return EXIT_SUCCESS;
}

/* ---- map and peer: create, then hold until interrupted ---- */

typedef struct Holder {
        sd_bus *bus;
        sd_event *event;
        const char *verb;
        char *path;
        MappingInfo info;
        bool have_info;
        bool waiting; /* --wait: not active yet */
        bool gone; /* removed by pcpd, or pcpd went away */
        bool releasing; /* Release() is on its way */
        sd_bus_slot *release_slot;
        char *last_line;
        int status;
        int final_status; /* once released */
} Holder;

static void holder_exit(Holder *h, int status) {
        h->status = status;
        (void) sd_event_exit(h->event, 0);
}

static int on_release_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e != NULL &&
            !sd_bus_error_has_names(e, SD_BUS_ERROR_UNKNOWN_OBJECT, PCP1_ERROR_NOT_FOUND)) {
                log_error(_("Failed to release %s: %s"), h->path, bus_error_message(e, -EIO));
                h->final_status = EXIT_FAILURE;
        }
        h->gone = true;
        holder_exit(h, h->final_status);
        return 0;
}

/* Ends the hold with status: releases the mapping first unless it is persistent or
 * gone. The release must happen inside the loop: leaving the loop closes the bus. */
static void holder_finish(Holder *h, int status) {
        int r;

        if (h->releasing) { /* asked twice: stop waiting for the answer */
                holder_exit(h, EXIT_FAILURE);
                return;
        }
        if (h->gone || arg_persistent) {
                holder_exit(h, status);
                return;
        }
        h->final_status = status;
        r = sd_bus_call_method_async(h->bus, &h->release_slot, PCP1_BUS_NAME, h->path, PCP1_MAPPING_IFACE,
                                     "Release", on_release_reply, h, NULL);
        if (r < 0) {
                log_error(_("Failed to release %s: %s"), h->path, strerror(-r));
                holder_exit(h, EXIT_FAILURE);
                return;
        }
        h->releasing = true;
}

/* Prints what changed; handles --wait. */
static void holder_update(Holder *h) {
        _cleanup_free_ char *line = NULL;
        const char *state;

        if (!h->have_info)
                return;
        state = strempty(h->info.state);

        if (h->waiting && streq(state, "failed")) {
                _cleanup_free_ char *e = text_sanitize(h->info.error);

                log_error(_("Failed to %s: the mapping failed: %s"), h->verb,
                          isempty(e) ? _("unknown error") : e);
                h->waiting = false;
                holder_finish(h, EXIT_FAILURE);
                return;
        }
        if (h->waiting && !streq(state, "active"))
                return; /* --wait prints only the outcome */

        line = describe_mapping(&h->info);
        if (line == NULL)
                return;
        if (h->last_line == NULL || !streq(h->last_line, line)) {
                printf("%s\n", line);
                fflush(stdout);
                free(h->last_line);
                h->last_line = line;
                line = NULL;
        }

        if (h->waiting && streq(state, "active")) {
                h->waiting = false;
                if (arg_persistent) /* nothing to hold: it outlives us */
                        holder_exit(h, EXIT_SUCCESS);
        }
}

static int on_mapping_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const char *interface;
        int r;

        if (h->path == NULL || !streq(strempty(sd_bus_message_get_path(m)), h->path))
                return 0;
        r = sd_bus_message_read_basic(m, 's', &interface);
        if (r < 0 || !streq(interface, PCP1_MAPPING_IFACE))
                return 0;
        r = map_properties(m, mapping_map, &h->info);
        if (r < 0) {
                log_error(_("Ignoring a malformed PropertiesChanged signal: %s"), strerror(-r));
                return 0;
        }
        holder_update(h);
        return 0;
}

static int on_mapping_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const char *path, *reason;

        if (sd_bus_message_read(m, "os", &path, &reason) < 0 || h->path == NULL || !streq(path, h->path))
                return 0;
        h->gone = true;
        if (h->releasing) /* our own Release() */
                return 0;
        _cleanup_free_ char *r = text_sanitize(reason);
        log_error(_("The mapping was removed: %s"), r ? r : "?");
        holder_exit(h, EXIT_FAILURE);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, PCP1_BUS_NAME) ||
            !isempty(new_owner))
                return 0;
        h->gone = true;
        log_error(_("pcpd exited; the mapping is gone."));
        holder_exit(h, EXIT_FAILURE);
        return 0;
}

static int on_initial_properties(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        int r;

        if (e != NULL) {
                log_error(_("Failed to %s: %s"), h->verb, bus_error_message(e, -EIO));
                holder_exit(h, EXIT_FAILURE);
                return 0;
        }
        r = map_properties(m, mapping_map, &h->info);
        if (r < 0) {
                log_error(_("Failed to %s: cannot parse the mapping's properties: %s"), h->verb,
                          strerror(-r));
                holder_exit(h, EXIT_FAILURE);
                return 0;
        }
        h->have_info = true;
        holder_update(h);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        holder_finish(userdata, EXIT_SUCCESS);
        return 0;
}

static int on_disconnect(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;

        h->gone = true;
        log_error(_("Lost the connection to the system bus; the mapping is gone."));
        holder_exit(h, EXIT_FAILURE);
        return 0;
}

static const char match_properties[] =
        "type='signal',sender='" PCP1_BUS_NAME "',interface='org.freedesktop.DBus.Properties',"
        "member='PropertiesChanged',path_namespace='" PCP1_MANAGER_PATH "'";
static const char match_removed[] = "type='signal',sender='" PCP1_BUS_NAME "',path='" PCP1_MANAGER_PATH
                                    "',interface='" PCP1_MANAGER_IFACE "',"
                                    "member='MappingRemoved'";
static const char match_owner[] =
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
        "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" PCP1_BUS_NAME "'";
static const char match_disconnected[] = "type='signal',sender='org.freedesktop.DBus.Local',"
                                         "path='/org/freedesktop/DBus/Local',"
                                         "interface='org.freedesktop.DBus.Local',member='Disconnected'";

static int append_options(sd_bus_message *m, bool is_map) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (arg_lifetime_set) {
                r = sd_bus_message_append(m, "{sv}", "lifetime", "u", arg_lifetime);
                if (r < 0)
                        return r;
        }
        if (arg_description != NULL) {
                r = sd_bus_message_append(m, "{sv}", "description", "s", arg_description);
                if (r < 0)
                        return r;
        }
        if (arg_family != NULL) {
                r = sd_bus_message_append(m, "{sv}", "family", "s", arg_family);
                if (r < 0)
                        return r;
        }
        if (arg_interface != NULL) {
                r = sd_bus_message_append(m, "{sv}", "interface", "s", arg_interface);
                if (r < 0)
                        return r;
        }
        if (is_map && arg_prefer_failure) {
                r = sd_bus_message_append(m, "{sv}", "prefer-failure", "b", 1);
                if (r < 0)
                        return r;
        }
        if (is_map && arg_persistent) {
                r = sd_bus_message_append(m, "{sv}", "persistent", "b", 1);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

static int check_mapping_args(int argc, char **argv) {
        const char *protocol;
        uint16_t port;

        if (parse_protocol(argv[1], &protocol) < 0 || parse_port(argv[2], _("port"), &port) < 0)
                return EXIT_USAGE;
        if (argc > 3 && (parse_address(argv[3]) < 0 || parse_port(argv[4], _("remote port"), &port) < 0))
                return EXIT_USAGE;
        return 0;
}

static int hold_mapping(int argc, char **argv, sd_bus *bus, bool is_map) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *s1 = NULL, *s2 = NULL, *s3 = NULL, *s4 = NULL, *s5 = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        const char *verb = is_map ? "map" : "peer";
        const char *protocol, *path;
        uint16_t port, remote_port = 0;
        Holder h = {.bus = bus, .verb = verb, .status = EXIT_SUCCESS};
        sigset_t mask;
        int r;

        if (parse_protocol(argv[1], &protocol) < 0 || parse_port(argv[2], _("port"), &port) < 0)
                return EXIT_USAGE;
        if (!is_map &&
            (parse_address(argv[3]) < 0 || parse_port(argv[4], _("remote port"), &remote_port) < 0))
                return EXIT_USAGE;

        bool hold = !arg_persistent || arg_wait;

        /* subscribe before asking, so that no change can slip by */
        if (hold) {
                if (sd_bus_add_match(bus, &s1, match_properties, on_mapping_changed, &h) < 0 ||
                    sd_bus_add_match(bus, &s2, match_removed, on_mapping_removed, &h) < 0 ||
                    sd_bus_add_match(bus, &s3, match_owner, on_name_owner_changed, &h) < 0 ||
                    sd_bus_add_match(bus, &s4, match_disconnected, on_disconnect, &h) < 0) {
                        log_error(_("Failed to %s: cannot subscribe to signals."), verb);
                        return EXIT_FAILURE;
                }
        }

        r = new_call(bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, is_map ? "AddMapping" : "AddPeer", &m);
        if (r >= 0)
                r = is_map ? sd_bus_message_append(m, "sqq", protocol, port, arg_external_port)
                           : sd_bus_message_append(m, "sqsq", protocol, port, argv[3], remote_port);
        if (r >= 0)
                r = append_options(m, is_map);
        if (r < 0) {
                log_error(_("Failed to %s: %s"), verb, strerror(-r));
                return EXIT_FAILURE;
        }

        r = call_authorized(bus, m, &error, &reply);
        if (r < 0) {
                log_error(_("Failed to %s: %s"), verb, bus_error_message(&error, r));
                return EXIT_FAILURE;
        }
        r = sd_bus_message_read_basic(reply, 'o', &path);
        if (r < 0) {
                log_error(_("Failed to %s: cannot parse the reply: %s"), verb, strerror(-r));
                return EXIT_FAILURE;
        }
        printf("%s\n", path);
        fflush(stdout);

        if (!hold)
                return EXIT_SUCCESS;

        h.path = strdup(path);
        if (h.path == NULL)
                return log_oom(), EXIT_FAILURE;
        h.waiting = arg_wait;

        r = sd_event_default(&event);
        if (r < 0)
                goto fail;
        h.event = event;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_signal(event, NULL, SIGINT, on_signal, &h);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, &h);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        /* asynchronously, so that changes queued before the answer are applied before it */
        if (r >= 0)
                r = sd_bus_call_method_async(bus, &s5, PCP1_BUS_NAME, h.path,
                                             "org.freedesktop.DBus.Properties", "GetAll",
                                             on_initial_properties, &h, "s", PCP1_MAPPING_IFACE);
        if (r < 0)
                goto fail;

        r = sd_event_loop(event);
        if (r < 0)
                goto fail;

        (void) sd_bus_detach_event(bus);
        sd_bus_slot_unref(h.release_slot);
        free(h.path);
        free(h.last_line);
        mapping_info_done(&h.info);
        return h.status;

fail:
        log_error(_("Failed to %s: %s"), verb, strerror(-r));
        (void) sd_bus_detach_event(bus);
        sd_bus_slot_unref(h.release_slot);
        free(h.path);
        free(h.last_line);
        mapping_info_done(&h.info);
        return EXIT_FAILURE;
}

static int verb_map(int argc, char **argv, sd_bus *bus) {
        return hold_mapping(argc, argv, bus, true);
}

static int verb_peer(int argc, char **argv, sd_bus *bus) {
        return hold_mapping(argc, argv, bus, false);
}

static int simple_call(sd_bus *bus, const char *action, const char *path, const char *interface,
                       const char *member, const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = new_call(bus, path, interface, member, &m);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r < 0) {
                log_error(_("Failed to %s: %s"), action, strerror(-r));
                return EXIT_FAILURE;
        }
        r = call_authorized(bus, m, &error, NULL);
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
        _cleanup_free_ char *path = NULL;

        if (parse_mapping(argv[1], &path) < 0)
                return EXIT_USAGE;
        return simple_call(bus, "release", PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "RemoveMapping", "o", path);
}

static int verb_enable(int argc, char **argv, sd_bus *bus) {
        bool enable = streq(argv[0], "enable");

        return simple_call(bus, enable ? "enable" : "disable", PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE,
                           "SetEnabled", "b", (int) enable);
}

static int check_revoke(int argc, char **argv) {
        if (isempty(argv[1]) || strlen(argv[1]) > APP_ID_MAX || !text_is_valid_utf8(argv[1])) {
                _cleanup_free_ char *s = text_sanitize(argv[1]);

                return usage_error(_("Invalid app id '%s': must be 1-%u bytes of UTF-8."), s ? s : "?",
                                   APP_ID_MAX);
        }
        return 0;
}

static int verb_revoke(int argc, char **argv, sd_bus *bus) {
        return simple_call(bus, "revoke", PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "RevokeApp", "s", argv[1]);
}

static int get_external_address(sd_bus *bus, const char *family, char **ret_address, char **ret_server,
                                sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *address, *server;
        int r;

        r = new_call(bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "GetExternalAddress", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", family);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, error, &reply);
        if (r >= 0)
                r = sd_bus_message_read(reply, "ss", &address, &server);
        if (r < 0)
                return r;
        *ret_address = text_sanitize(address);
        *ret_server = text_sanitize(server);
        if (*ret_address == NULL || *ret_server == NULL) {
                free(*ret_address);
                free(*ret_server);
                return -ENOMEM;
        }
        return 0;
}

static int check_external_address(int argc, char **argv) {
        return argc > 1 && parse_family(argv[1]) < 0 ? EXIT_USAGE : 0;
}

static int verb_external_address(int argc, char **argv, sd_bus *bus) {
        static const char *const families[] = {"ipv4", "ipv6"};
        bool one = argc > 1, any = false;
        const char *first_error = NULL;
        char *first_error_copy = NULL;
        Json j;

        json_init(&j, stdout, arg_json_mode);
        if (one && parse_family(argv[1]) < 0)
                return EXIT_USAGE;

        if (arg_json && !one)
                json_begin_array(&j);

        for (size_t k = 0; k < ELEMENTSOF(families); k++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *address = NULL, *server = NULL;
                int r;

                if (one && !streq(argv[1], families[k]))
                        continue;
                r = get_external_address(bus, families[k], &address, &server, &error);
                if (r < 0) {
                        if (first_error == NULL) {
                                first_error = bus_error_message(&error, r);
                                first_error_copy = strdup(first_error);
                        }
                        if (!arg_json && !one)
                                printf("%s: %s\n", families[k], _("none"));
                        continue;
                }
                any = true;
                if (arg_json) {
                        json_begin_object(&j);
                        json_key(&j, "Family");
                        json_string(&j, families[k]);
                        json_key(&j, "Address");
                        json_string(&j, address);
                        json_key(&j, "Server");
                        json_string(&j, server);
                        json_end_object(&j);
                } else if (one)
                        printf("%s\n", address);
                else if (!isempty(server))
                        printf(_("%s: %s (server %s)\n"), families[k], address, server);
                else
                        printf("%s: %s\n", families[k], address);
        }

        if (arg_json && (any || !one)) {
                if (!one)
                        json_end_array(&j);
                (void) json_finish(&j);
        }
        if (!any) {
                log_error(_("Failed to query the external address: %s"),
                          first_error_copy ? first_error_copy : _("no answer"));
                free(first_error_copy);
                return EXIT_FAILURE;
        }
        free(first_error_copy);
        return EXIT_SUCCESS;
}

/* ---- monitor ---- */

static void monitor_prefix(const char *path) {
        char stamp[32] = "";
        time_t t = time(NULL);
        struct tm tm;

        if (localtime_r(&t, &tm) != NULL)
                strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
        if (path == NULL || streq(path, PCP1_MANAGER_PATH))
                printf("%s %s:", stamp, _("manager"));
        else {
                _cleanup_free_ char *id = text_sanitize(mapping_id(path));

                printf("%s %s %s:", stamp, _("mapping"), id ? id : "?");
        }
}

static void monitor_json_event(sd_bus_message *m, const char *event, const char *path) {
        Json j;
        int r = 0;

        json_init(&j, stdout, arg_json_mode);
        json_begin_object(&j);
        json_key(&j, "Event");
        json_string(&j, event);
        json_key(&j, "Time");
        json_uint(&j, now_realtime_usec());
        json_key(&j, "Path");
        json_string(&j, path);
        json_key(&j, "Arguments");
        json_begin_array(&j);
        /* the rest of the signal's arguments */
        while (r >= 0 && sd_bus_message_at_end(m, false) == 0)
                r = json_from_message(&j, m, 0);
        json_end_array(&j);
        json_end_object(&j);
        (void) json_finish(&j);
        fflush(stdout);
}

static int on_monitor_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        MappingInfo info = {0};
        const char *path, *interface;
        int r;

        r = sd_bus_message_read_basic(m, 'o', &path);
        if (r < 0)
                return 0;
        if (arg_json) {
                monitor_json_event(m, "added", path);
                return 0;
        }

        r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
                r = sd_bus_message_read_basic(m, 's', &interface);
                if (r < 0)
                        break;
                if (streq(interface, PCP1_MAPPING_IFACE))
                        r = map_properties(m, mapping_map, &info);
                else
                        r = sd_bus_message_skip(m, "a{sv}");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }

        monitor_prefix(path);
        if (r < 0)
                printf(" %s\n", _("added"));
        else {
                _cleanup_free_ char *line = describe_mapping(&info), *app = text_sanitize(info.app_id),
                                    *desc = text_sanitize(info.description);

                printf(_(" added: %s, uid %" PRIu32), line ? line : "?", info.uid);
                if (!isempty(app))
                        printf(_(", app %s"), app);
                if (!isempty(desc))
                        printf(", \"%s\"", desc);
                printf("\n");
        }
        fflush(stdout);
        mapping_info_done(&info);
        return 0;
}

static int on_monitor_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *path;

        if (sd_bus_message_read_basic(m, 'o', &path) < 0)
                return 0;
        if (arg_json) {
                monitor_json_event(m, "object-removed", path);
                return 0;
        }
        monitor_prefix(path);
        printf(" %s\n", _("object removed"));
        fflush(stdout);
        return 0;
}

static int on_monitor_mapping_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *path, *reason;

        if (arg_json) {
                monitor_json_event(m, "mapping-removed", sd_bus_message_get_path(m));
                return 0;
        }
        if (sd_bus_message_read(m, "os", &path, &reason) < 0)
                return 0;
        _cleanup_free_ char *r = text_sanitize(reason);
        monitor_prefix(path);
        printf(_(" removed (%s)\n"), r ? r : "?");
        fflush(stdout);
        return 0;
}

static int on_monitor_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *path = sd_bus_message_get_path(m), *interface;
        int r;

        if (arg_json) {
                monitor_json_event(m, "changed", path);
                return 0;
        }
        if (sd_bus_message_read_basic(m, 's', &interface) < 0)
                return 0;
        if (!streq(interface, PCP1_MANAGER_IFACE) && !streq(interface, PCP1_MAPPING_IFACE))
                return 0;

        monitor_prefix(path);
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name;
                _cleanup_free_ char *value = NULL;

                if (sd_bus_message_read_basic(m, 's', &name) < 0)
                        break;
                value = value_to_text(m);
                if (value == NULL)
                        break;
                printf(" %s=%s", name, value);
                if (sd_bus_message_exit_container(m) < 0)
                        break;
        }
        printf("\n");
        fflush(stdout);
        return 0;
}

static int on_monitor_owner(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, PCP1_BUS_NAME))
                return 0;
        if (arg_json) {
                Json j;

                json_init(&j, stdout, arg_json_mode);
                json_begin_object(&j);
                json_key(&j, "Event");
                json_string(&j, isempty(new_owner) ? "stopped" : "started");
                json_key(&j, "Time");
                json_uint(&j, now_realtime_usec());
                json_end_object(&j);
                (void) json_finish(&j);
        } else {
                monitor_prefix(NULL);
                printf(" %s\n", isempty(new_owner) ? _("pcpd stopped") : _("pcpd started"));
        }
        fflush(stdout);
        return 0;
}

static int on_monitor_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int verb_monitor(int argc, char **argv, sd_bus *bus) {
        static const char match_added[] = "type='signal',sender='" PCP1_BUS_NAME "',path='" PCP1_MANAGER_PATH
                                          "',interface='org.freedesktop.DBus.ObjectManager',"
                                          "member='InterfacesAdded'";
        static const char match_iremoved[] =
                "type='signal',sender='" PCP1_BUS_NAME "',path='" PCP1_MANAGER_PATH
                "',interface='org.freedesktop.DBus.ObjectManager',"
                "member='InterfacesRemoved'";
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *s1 = NULL, *s2 = NULL, *s3 = NULL, *s4 = NULL, *s5 = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        sigset_t mask;
        int r;

        r = sd_bus_add_match(bus, &s1, match_added, on_monitor_added, NULL);
        if (r >= 0)
                r = sd_bus_add_match(bus, &s2, match_iremoved, on_monitor_removed, NULL);
        if (r >= 0)
                r = sd_bus_add_match(bus, &s3, match_properties, on_monitor_changed, NULL);
        if (r >= 0)
                r = sd_bus_add_match(bus, &s4, match_removed, on_monitor_mapping_removed, NULL);
        if (r >= 0)
                r = sd_bus_add_match(bus, &s5, match_owner, on_monitor_owner, NULL);
        if (r < 0) {
                log_error(_("Failed to monitor: cannot subscribe to signals: %s"), strerror(-r));
                return EXIT_FAILURE;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        r = sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ? -errno : 0;
        if (r >= 0)
                r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_monitor_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_monitor_signal, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r < 0) {
                log_error(_("Failed to monitor: %s"), strerror(-r));
                return EXIT_FAILURE;
        }
        if (!arg_json && arg_legend) {
                printf(_("Monitoring pcpd; press Ctrl+C to stop.\n"));
                fflush(stdout);
        }

        r = sd_event_loop(event);
        (void) sd_bus_detach_event(bus);
        if (r < 0) {
                log_error(_("Failed to monitor: %s"), strerror(-r));
                return EXIT_FAILURE;
        }
        return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- command line ---- */

static void help(void) {
        printf(_("%s [OPTIONS...] COMMAND ...\n"
                 "\n"
                 "Ask the router for port mappings through pcpd (Port Control Protocol).\n"
                 "\n"
                 "Commands:\n"
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
                 "\n"
                 "Options:\n"
                 "  -h --help               Show this help\n"
                 "     --version            Show the version\n"
                 "     --json[=short|pretty]\n"
                 "                          Print JSON (status, list, monitor, external-address)\n"
                 "     --no-legend          Print no column headers and no summary\n"
                 "     --no-ask-password    Never ask for a password to authorize\n"
                 "\n"
                 "Options of map and peer:\n"
                 "     --lifetime=SECONDS   Requested lifetime of the mapping\n"
                 "     --description=TEXT   Description shown to users and the router\n"
                 "     --family=ipv4|ipv6   Address family of the mapping\n"
                 "     --interface=IFNAME   Use the server of this network interface\n"
                 "     --wait               Wait until the mapping is active or has failed\n"
                 "Options of map only:\n"
                 "     --external-port=PORT Suggested external port\n"
                 "     --prefer-failure     Fail unless exactly the suggested port is mapped\n"
                 "     --persistent         Keep the mapping after pcpctl exits\n"
                 "\n"
                 "See the pcpctl(1) manual page for details.\n"),
               program_invocation_short_name);
}

enum {
        ARG_VERSION = 0x100,
        ARG_JSON,
        ARG_NO_LEGEND,
        ARG_NO_ASK_PASSWORD,
        ARG_EXTERNAL_PORT,
        ARG_LIFETIME,
        ARG_DESCRIPTION,
        ARG_FAMILY,
        ARG_INTERFACE,
        ARG_PREFER_FAILURE,
        ARG_PERSISTENT,
        ARG_WAIT,
};

/* 0 to go on, EXIT_SUCCESS+1 when done (help, version), EXIT_USAGE on errors. */
static int parse_argv(int argc, char **argv, bool *ret_done) {
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {"json", optional_argument, NULL, ARG_JSON},
                {"no-legend", no_argument, NULL, ARG_NO_LEGEND},
                {"no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD},
                {"external-port", required_argument, NULL, ARG_EXTERNAL_PORT},
                {"lifetime", required_argument, NULL, ARG_LIFETIME},
                {"description", required_argument, NULL, ARG_DESCRIPTION},
                {"family", required_argument, NULL, ARG_FAMILY},
                {"interface", required_argument, NULL, ARG_INTERFACE},
                {"prefer-failure", no_argument, NULL, ARG_PREFER_FAILURE},
                {"persistent", no_argument, NULL, ARG_PERSISTENT},
                {"wait", no_argument, NULL, ARG_WAIT},
                {NULL, 0, NULL, 0},
        };
        int c;

        *ret_done = false;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        *ret_done = true;
                        return 0;
                case ARG_VERSION:
                        printf("pcpctl %s\n", PACKAGE_VERSION);
                        *ret_done = true;
                        return 0;
                case ARG_JSON:
                        if (optarg == NULL || streq(optarg, "short"))
                                arg_json_mode = JSON_SHORT;
                        else if (streq(optarg, "pretty"))
                                arg_json_mode = JSON_PRETTY;
                        else if (streq(optarg, "off")) {
                                arg_json = false;
                                break;
                        } else
                                return usage_error(
                                        _("Invalid --json mode '%s': must be short, pretty or off."),
                                        optarg);
                        arg_json = true;
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        arg_ask_password = false;
                        break;
                case ARG_EXTERNAL_PORT: {
                        uint64_t v;

                        if (parse_uint(optarg, 65535, &v) < 0)
                                return usage_error(
                                        _("Invalid external port '%s': must be 0-65535 (0 for any)."),
                                        optarg);
                        arg_external_port = (uint16_t) v;
                        arg_seen |= OPT_SEEN_EXTERNAL_PORT;
                        break;
                }
                case ARG_LIFETIME: {
                        uint64_t v;

                        if (parse_uint(optarg, UINT32_MAX, &v) < 0 || v == 0)
                                return usage_error(
                                        _("Invalid lifetime '%s': must be 1-%" PRIu32 " seconds."), optarg,
                                        UINT32_MAX);
                        arg_lifetime = (uint32_t) v;
                        arg_lifetime_set = true;
                        arg_seen |= OPT_SEEN_LIFETIME;
                        break;
                }
                case ARG_DESCRIPTION:
                        if (strlen(optarg) > DESCRIPTION_MAX || !text_is_valid_utf8(optarg))
                                return usage_error(
                                        _("Invalid description: must be at most %u bytes of UTF-8."),
                                        DESCRIPTION_MAX);
                        arg_description = optarg;
                        arg_seen |= OPT_SEEN_DESCRIPTION;
                        break;
                case ARG_FAMILY:
                        if (parse_family(optarg) < 0)
                                return EXIT_USAGE;
                        arg_family = optarg;
                        arg_seen |= OPT_SEEN_FAMILY;
                        break;
                case ARG_INTERFACE:
                        if (parse_interface(optarg) < 0)
                                return EXIT_USAGE;
                        arg_interface = optarg;
                        arg_seen |= OPT_SEEN_INTERFACE;
                        break;
                case ARG_PREFER_FAILURE:
                        arg_prefer_failure = true;
                        arg_seen |= OPT_SEEN_PREFER_FAILURE;
                        break;
                case ARG_PERSISTENT:
                        arg_persistent = true;
                        arg_seen |= OPT_SEEN_PERSISTENT;
                        break;
                case ARG_WAIT:
                        arg_wait = true;
                        arg_seen |= OPT_SEEN_WAIT;
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
        return 0;
}

typedef struct Verb {
        const char *name;
        int min_args; /* including the verb */
        int max_args;
        bool json; /* --json applies */
        unsigned mapping_options; /* which map options apply */
        int (*check)(int argc, char **argv); /* arguments, before the bus: 0 or EXIT_USAGE */
        int (*run)(int argc, char **argv, sd_bus *bus);
} Verb;

#define MAP_OPTIONS                                                                                         \
        (OPT_SEEN_EXTERNAL_PORT | OPT_SEEN_LIFETIME | OPT_SEEN_DESCRIPTION | OPT_SEEN_FAMILY |              \
         OPT_SEEN_INTERFACE | OPT_SEEN_PREFER_FAILURE | OPT_SEEN_PERSISTENT | OPT_SEEN_WAIT)
#define PEER_OPTIONS                                                                                        \
        (OPT_SEEN_LIFETIME | OPT_SEEN_DESCRIPTION | OPT_SEEN_FAMILY | OPT_SEEN_INTERFACE | OPT_SEEN_WAIT)

static const Verb verbs[] = {
        {"status", 1, 1, true, 0, NULL, verb_status},
        {"list", 1, 1, true, 0, NULL, verb_list},
        {"map", 3, 3, false, MAP_OPTIONS, check_mapping_args, verb_map},
        {"peer", 5, 5, false, PEER_OPTIONS, check_mapping_args, verb_peer},
        {"release", 2, 2, false, 0, check_release, verb_release},
        {"monitor", 1, 1, true, 0, NULL, verb_monitor},
        {"enable", 1, 1, false, 0, NULL, verb_enable},
        {"disable", 1, 1, false, 0, NULL, verb_enable},
        {"external-address", 1, 2, true, 0, check_external_address, verb_external_address},
        {"revoke", 2, 2, false, 0, check_revoke, verb_revoke},
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
        if (arg_json && !verb->json)
                return usage_error(_("Option --json is not supported by '%s'."), verb->name);
        extra = arg_seen & ~verb->mapping_options;
        for (size_t i = 0; extra != 0 && i < ELEMENTSOF(seen_names); i++)
                if (extra & (1u << i))
                        return usage_error(_("Option %s is not supported by '%s'."), seen_names[i],
                                           verb->name);

        if (verb->check != NULL && verb->check(argc, argv) != 0)
                return EXIT_USAGE;

        if (connect_bus(&bus) < 0)
                return EXIT_FAILURE;
        return verb->run(argc, argv, bus);
}

int main(int argc, char *argv[]) {
        bool done;
        int r;

        setlocale(LC_ALL, "");
        bindtextdomain(GETTEXT_PACKAGE, LOCALEDIR);
        bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
        textdomain(GETTEXT_PACKAGE);

        r = parse_argv(argc, argv, &done);
        if (r != 0)
                return r;
        if (done)
                return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;

        r = dispatch_verb(argc - optind, argv + optind);
        if (fflush(stdout) != 0 && r == EXIT_SUCCESS) {
                log_error(_("Failed to write the output: %s"), strerror(errno));
                r = EXIT_FAILURE;
        }
        return r;
}
