/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"

#include "pcpctl-util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "pcp1-contract.h"

#define MAPPING_PREFIX PCP1_MAPPING_PATH_PREFIX "/"

void strv_free(char **l) {
        for (char **i = l; i != NULL && *i != NULL; i++)
                free(*i);
        free(l);
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        while (l != NULL && l[n] != NULL)
                n++;
        return n;
}

void log_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
}

int usage_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        fprintf(stderr, _("Try '%s --help' for more information.\n"), program_invocation_short_name);
        return EXIT_USAGE;
}

int log_oom(void) {
        log_error(_("Out of memory."));
        return -ENOMEM;
}

uint64_t now_realtime_usec(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

bool declared_file_is_etc(const char *file) {
        static const char conf[] = "/pcpd.conf";
        const char *dir_end, *parent_end;
        char *path;
        bool found;

        if (isempty(file))
                return false;
        if (strstr(file, "/etc/pcpd/mappings.d/") != NULL)
                return true;
        /* DIR/mappings.d/NAME.conf: is there a DIR/pcpd.conf? */
        dir_end = strrchr(file, '/');
        if (dir_end == NULL || dir_end == file)
                return false;
        parent_end = memrchr(file, '/', (size_t) (dir_end - file));
        if (parent_end == NULL)
                return false;
        path = malloc((size_t) (parent_end - file) + sizeof(conf));
        if (path == NULL)
                return false;
        memcpy(path, file, (size_t) (parent_end - file));
        memcpy(path + (parent_end - file), conf, sizeof(conf));
        found = access(path, F_OK) == 0;
        free(path);
        return found;
}

int parse_uint(const char *s, uint64_t max, uint64_t *ret) {
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

int parse_port(const char *s, const char *what, uint16_t *ret) {
        uint64_t v;

        if (parse_uint(s, 65535, &v) < 0 || v == 0) {
                usage_error(_("Invalid %s '%s': must be 1-65535."), what, s);
                return -EINVAL;
        }
        *ret = (uint16_t) v;
        return 0;
}

int parse_protocol(const char *s, const char **ret) {
        static const char *const names[] = {"tcp", "udp", "sctp", "dccp"};
        uint64_t v;

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(s, names[i]) == 0) {
                        *ret = names[i];
                        return 0;
                }
        /* pcpd refuses 0 ("all protocols" in PCP): a usage error here, not a bus error there */
        if (parse_uint(s, 255, &v) == 0 && v != 0) {
                *ret = s;
                return 0;
        }
        usage_error(_("Invalid protocol '%s': must be tcp, udp, sctp, dccp or a protocol number 1-255."), s);
        return -EINVAL;
}

int parse_family(const char *s) {
        if (streq(s, PCP1_FAMILY_IPV4) || streq(s, PCP1_FAMILY_IPV6))
                return 0;
        usage_error(_("Invalid address family '%s': must be ipv4 or ipv6."), s);
        return -EINVAL;
}

int parse_interface(const char *s) {
        if (isempty(s) || strlen(s) >= IFNAMSIZ || streq(s, ".") || streq(s, "..") ||
            strpbrk(s, "/: \t\n") != NULL) {
                usage_error(_("Invalid interface name '%s'."), s);
                return -EINVAL;
        }
        /* pcpd runs in the host's network namespace, as pcpctl does: a name unknown here
         * is a typo, better told now than as "no server" later */
        if (if_nametoindex(s) == 0) {
                usage_error(_("No such interface '%s'."), s);
                return -ENODEV;
        }
        return 0;
}

int parse_address(const char *s) {
        unsigned char buf[sizeof(struct in6_addr)];

        if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
                return 0;
        usage_error(_("Invalid remote address '%s': must be an IPv4 or IPv6 address."), s);
        return -EINVAL;
}

static bool is_id(const char *s) {
        size_t n = strspn(s, "0123456789");

        return n > 0 && s[n] == '\0' && n <= MAPPING_ID_MAX;
}

int parse_mapping(const char *s, char **ret) {
        char *path;

        if (s[0] == '/') {
                if (sd_bus_object_path_is_valid(s) <= 0 || strncmp(s, MAPPING_PREFIX, strlen(MAPPING_PREFIX)) != 0 ||
                    !is_id(s + strlen(MAPPING_PREFIX))) {
                        usage_error(_("Invalid mapping '%s': expected a mapping id (a number, as 'pcpctl list' "
                                      "shows it) or a path below %s."),
                                    s, MAPPING_PREFIX);
                        return -EINVAL;
                }
                path = strdup(s);
        } else {
                if (!is_id(s)) {
                        usage_error(_("Invalid mapping '%s': expected a mapping id (a number, as 'pcpctl list' "
                                      "shows it) or a path below %s."),
                                    s, MAPPING_PREFIX);
                        return -EINVAL;
                }
                if (asprintf(&path, "%s%s", MAPPING_PREFIX, s) < 0)
                        path = NULL;
        }
        if (path == NULL)
                return log_oom();
        *ret = path;
        return 0;
}

const char *mapping_id(const char *path) {
        if (path != NULL && strncmp(path, MAPPING_PREFIX, strlen(MAPPING_PREFIX)) == 0)
                return path + strlen(MAPPING_PREFIX);
        return strempty(path);
}

int64_t mapping_id_number(const char *path) {
        const char *id = mapping_id(path);
        uint64_t v;

        if (parse_uint(id, INT64_MAX, &v) < 0)
                return -1;
        return (int64_t) v;
}
