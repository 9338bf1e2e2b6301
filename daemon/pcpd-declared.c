/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-declared.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcp-wire.h"
#include "pcp1-contract.h"
#include "pcpd-state.h"

#define GROUP "Mapping"

void pcpd_declared_free(pcpd_declared *d) {
        if (d == NULL)
                return;
        g_free(d->name);
        g_free(d->path);
        g_free(d->description);
        g_free(d->last_error);
        g_free(d);
}

pcpd_declared *pcpd_declared_copy(const pcpd_declared *d) {
        pcpd_declared *c = g_memdup2(d, sizeof(*d));

        c->name = g_strdup(d->name);
        c->path = g_strdup(d->path);
        c->description = g_strdup(d->description);
        c->last_error = g_strdup(d->last_error);
        return c;
}

bool pcpd_declared_name_valid(const char *name) {
        size_t n = name != NULL ? strlen(name) : 0;

        if (n == 0 || n > PCPD_DECLARED_NAME_MAX || name[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!g_ascii_isalnum(name[i]) && name[i] != '_' && name[i] != '.' && name[i] != '-')
                        return false;
        return true;
}

static const char *const known_keys[] = { "Protocol",    "Port",       "ExternalPort", "Lifetime",
                                          "Description", "ThirdParty", "Family" };

static bool bad(GError **error, const char *path, const char *key, const char *value, const char *what) {
        g_autofree char *shown = g_utf8_make_valid(value != NULL ? value : "", -1);

        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "%s: [" GROUP "] %s=%s %s", path, key,
                    shown, what);
        return false;
}

/* An unsigned number in [min, max]; absent: *ret unchanged (or an error when required). */
static bool get_number(GKeyFile *kf, const char *path, const char *key, bool required, guint64 min, guint64 max,
                       guint64 *ret, GError **error) {
        g_autofree char *v = g_key_file_get_value(kf, GROUP, key, NULL);
        g_autofree char *what = NULL;
        guint64 x;

        if (v == NULL) {
                if (!required)
                        return true;
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND, "%s: [" GROUP "] %s= is missing",
                            path, key);
                return false;
        }
        g_strstrip(v);
        if (!g_ascii_string_to_unsigned(v, 10, min, max, &x, NULL)) {
                what = g_strdup_printf("is not a number between %" G_GUINT64_FORMAT " and %" G_GUINT64_FORMAT, min,
                                       max);
                return bad(error, path, key, v, what);
        }
        *ret = x;
        return true;
}

/* A string key, with GKeyFile's escapes; absent: NULL. */
static bool get_string(GKeyFile *kf, const char *path, const char *key, char **ret, GError **error) {
        g_autoptr(GError) e = NULL;
        g_autofree char *raw = NULL;

        *ret = g_key_file_get_string(kf, GROUP, key, &e);
        if (e == NULL || g_error_matches(e, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND))
                return true;
        raw = g_key_file_get_value(kf, GROUP, key, NULL);
        return bad(error, path, key, raw, "is not valid text (UTF-8, with \\s \\n \\t \\\\ escapes only)");
}

pcpd_declared *pcpd_declared_parse(const char *name, const char *path, const char *data, size_t len,
                                   GError **error) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(pcpd_declared) d = g_new0(pcpd_declared, 1);
        g_auto(GStrv) groups = NULL;
        g_autofree char *proto = NULL, *third = NULL, *family = NULL;
        guint64 port = 0, ext = 0, lifetime = 0;
        int p;

        if (!pcpd_declared_name_valid(name)) {
                g_autofree char *shown = g_utf8_make_valid(name != NULL ? name : "", -1);
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                            "%s: '%s' is no valid name for a declared mapping (1-%d of A-Z a-z 0-9 _ . -, not "
                            "starting with a dot, then .conf)",
                            path, shown, PCPD_DECLARED_NAME_MAX);
                return NULL;
        }
        if (len > PCPD_DECLARED_MAX_FILE_SIZE) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: larger than %u octets", path,
                            PCPD_DECLARED_MAX_FILE_SIZE);
                return NULL;
        }
        if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, error)) {
                if (error != NULL && *error != NULL && !g_utf8_validate((*error)->message, -1, NULL)) {
                        char *m = g_utf8_make_valid((*error)->message, -1);
                        g_free((*error)->message);
                        (*error)->message = m;
                }
                g_prefix_error(error, "%s: ", path);
                return NULL;
        }
        groups = g_key_file_get_groups(kf, NULL);
        for (size_t i = 0; groups[i] != NULL; i++) {
                g_auto(GStrv) keys = NULL;

                if (strcmp(groups[i], GROUP) != 0) {
                        g_autofree char *g = g_utf8_make_valid(groups[i], -1);
                        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
                                    "%s: unknown section [%s] (only [" GROUP "])", path, g);
                        return NULL;
                }
                keys = g_key_file_get_keys(kf, groups[i], NULL, NULL);
                for (size_t j = 0; keys != NULL && keys[j] != NULL; j++) {
                        bool ok = false;
                        for (size_t k = 0; k < G_N_ELEMENTS(known_keys); k++)
                                ok = ok || strcmp(keys[j], known_keys[k]) == 0;
                        if (!ok) {
                                g_autofree char *k = g_utf8_make_valid(keys[j], -1);
                                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                                            "%s: unknown setting [" GROUP "] %s", path, k);
                                return NULL;
                        }
                }
        }
        if (!g_key_file_has_group(kf, GROUP)) {
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
                            "%s: no [" GROUP "] section", path);
                return NULL;
        }

        if (!get_string(kf, path, "Protocol", &proto, error))
                return NULL;
        if (proto == NULL) {
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                            "%s: [" GROUP "] Protocol= is missing", path);
                return NULL;
        }
        g_strstrip(proto);
        p = pcp_protocol_from_string(proto);
        if (p <= 0) {
                bad(error, path, "Protocol", proto, "is no protocol (tcp, udp, sctp, dccp or a number 1-255)");
                return NULL;
        }
        d->protocol = (uint8_t) p;
        if (!get_number(kf, path, "Port", true, 1, 65535, &port, error) ||
            !get_number(kf, path, "ExternalPort", false, 0, 65535, &ext, error) ||
            !get_number(kf, path, "Lifetime", false, 120, 86400 * 7, &lifetime, error))
                return NULL;
        d->port = (uint16_t) port;
        d->external_port = (uint16_t) ext;
        d->lifetime = (uint32_t) lifetime;

        if (!get_string(kf, path, "Description", &d->description, error))
                return NULL;
        if (d->description == NULL)
                d->description = g_strdup("");
        if (strlen(d->description) > PCP1_MAX_DESCRIPTION) {
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                            "%s: [" GROUP "] Description= is longer than %d octets", path, PCP1_MAX_DESCRIPTION);
                return NULL;
        }
        if (!get_string(kf, path, "ThirdParty", &third, error) || !get_string(kf, path, "Family", &family, error))
                return NULL;
        if (third != NULL) {
                g_strstrip(third);
                if (!pcp_addr_from_string(third, &d->third_party) || pcp_addr_is_unspecified(&d->third_party)) {
                        bad(error, path, "ThirdParty", third, "is not an IPv4 or IPv6 address");
                        return NULL;
                }
                d->has_third_party = true;
        }
        if (family != NULL) {
                g_strstrip(family);
                if (strcmp(family, "ipv4") == 0)
                        d->family = AF_INET;
                else if (strcmp(family, "ipv6") == 0)
                        d->family = AF_INET6;
                else {
                        bad(error, path, "Family", family, "is neither ipv4 nor ipv6");
                        return NULL;
                }
        }
        if (d->has_third_party) {
                int f = pcp_addr_is_ipv4(&d->third_party) ? AF_INET : AF_INET6;
                if (d->family != 0 && d->family != f) {
                        bad(error, path, "Family", family, "is not the family of ThirdParty=");
                        return NULL;
                }
                d->family = f;
        }
        d->name = g_strdup(name);
        d->path = g_strdup(path);
        return g_steal_pointer(&d);
}

void pcpd_declared_format(GString *out, const pcpd_declared *d) {
        char buf[PCP_ADDR_STRLEN];
        const char *proto = pcp_protocol_to_string(d->protocol);

        g_string_append(out, "# Declared with pcpctl declare (DeclareMapping): see pcpd(8), DECLARED MAPPINGS.\n");
        g_string_append(out, "[" GROUP "]\n");
        if (proto != NULL)
                pcpd_state_format_string(out, "Protocol", proto);
        else
                g_string_append_printf(out, "Protocol=%u\n", d->protocol);
        g_string_append_printf(out, "Port=%u\n", d->port);
        if (d->external_port != 0)
                g_string_append_printf(out, "ExternalPort=%u\n", d->external_port);
        if (d->lifetime != 0)
                g_string_append_printf(out, "Lifetime=%u\n", d->lifetime);
        if (d->description != NULL && d->description[0] != '\0')
                pcpd_state_format_string(out, "Description", d->description);
        if (d->has_third_party)
                pcpd_state_format_string(out, "ThirdParty", pcp_addr_to_string(&d->third_party, buf));
        if (d->family != 0)
                pcpd_state_format_string(out, "Family", d->family == AF_INET6 ? "ipv6" : "ipv4");
}

bool pcpd_declared_equal(const pcpd_declared *a, const pcpd_declared *b) {
        return g_strcmp0(a->name, b->name) == 0 && a->protocol == b->protocol && a->family == b->family &&
               a->port == b->port && a->external_port == b->external_port && a->lifetime == b->lifetime &&
               g_strcmp0(a->description, b->description) == 0 && a->has_third_party == b->has_third_party &&
               (!a->has_third_party || memcmp(&a->third_party, &b->third_party, sizeof(a->third_party)) == 0);
}

pcpd_declared *pcpd_declared_find(GPtrArray *set, const char *name) {
        for (guint i = 0; set != NULL && i < set->len; i++) {
                pcpd_declared *d = set->pdata[i];
                if (strcmp(d->name, name) == 0)
                        return d;
        }
        return NULL;
}

char *pcpd_declared_etc_dir(const char *config_path) {
        g_autofree char *dir = g_path_get_dirname(config_path);
        return g_build_filename(dir, PCPD_DECLARED_DIR, NULL);
}

static gint compare_names(gconstpointer a, gconstpointer b) {
        return strcmp((*(pcpd_declared *const *) a)->name, (*(pcpd_declared *const *) b)->name);
}

static gint compare_strings(gconstpointer a, gconstpointer b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The *.conf names in dirfd, sorted. */
static GPtrArray *conf_names(int dirfd) {
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
        int fd = dup(dirfd);
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (dir == NULL) {
                if (fd >= 0)
                        close(fd);
                return names;
        }
        while ((de = readdir(dir)) != NULL)
                if (g_str_has_suffix(de->d_name, ".conf") && de->d_name[0] != '.')
                        g_ptr_array_add(names, g_strdup(de->d_name));
        closedir(dir);
        g_ptr_array_sort(names, compare_strings);
        return names;
}

/* dirfd's declarations into set (skipping names it has); path names dirfd in messages. */
static bool load_dir(GPtrArray *set, int dirfd, const char *path, bool runtime, GError **error) {
        g_autoptr(GPtrArray) names = conf_names(dirfd);

        for (guint i = 0; i < names->len; i++) {
                const char *file = names->pdata[i];
                g_autofree char *name = g_strndup(file, strlen(file) - strlen(".conf"));
                g_autofree char *full = g_build_filename(path, file, NULL);
                g_autofree char *data = NULL;
                pcpd_declared *d;
                size_t len = 0;
                struct stat st;
                int r;

                if (pcpd_declared_find(set, name) != NULL) {
                        g_warning("%s: ignored, %s is declared in the administrator's directory", full, name);
                        continue;
                }
                if (set->len >= PCPD_DECLARED_MAX) {
                        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC,
                                    "%s: more than %d declared mappings in all", full, PCPD_DECLARED_MAX);
                        return false;
                }
                if (runtime) {
                        /* pcpd's own directory: never through a symbolic link (pcpd-state.h) */
                        r = pcpd_state_read_file(dirfd, file, &data, &len);
                } else {
                        /* the administrator's: a link to a file elsewhere is fine */
                        int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                        r = fd < 0 ? -errno : 0;
                        if (r == 0 && fstat(fd, &st) < 0)
                                r = -errno;
                        else if (r == 0 && !S_ISREG(st.st_mode))
                                r = -EBADFD;
                        else if (r == 0 && st.st_size > PCPD_DECLARED_MAX_FILE_SIZE)
                                r = -EFBIG;
                        if (r == 0) {
                                data = g_malloc(PCPD_DECLARED_MAX_FILE_SIZE + 1);
                                ssize_t n = read(fd, data, PCPD_DECLARED_MAX_FILE_SIZE + 1);
                                if (n < 0)
                                        r = -errno;
                                else
                                        len = (size_t) n;
                        }
                        if (fd >= 0)
                                close(fd);
                }
                if (r == -EFBIG || (r == 0 && len > PCPD_DECLARED_MAX_FILE_SIZE)) {
                        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: larger than %u octets", full,
                                    PCPD_DECLARED_MAX_FILE_SIZE);
                        return false;
                }
                if (r < 0) {
                        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r), "%s: cannot read it: %s", full,
                                    r == -EBADFD ? "not a regular file" : g_strerror(-r));
                        return false;
                }
                d = pcpd_declared_parse(name, full, data, len, error);
                if (d == NULL)
                        return false;
                d->runtime = runtime;
                g_ptr_array_add(set, d);
        }
        return true;
}

bool pcpd_declared_load(const char *etc_dir, int state_fd, const char *state_dir, GPtrArray **ret, GError **error) {
        g_autoptr(GPtrArray) set = g_ptr_array_new_with_free_func((GDestroyNotify) pcpd_declared_free);
        int fd;

        fd = open(etc_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT) {
                g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: cannot open it: %s", etc_dir,
                            g_strerror(errno));
                return false;
        }
        if (fd >= 0) {
                bool ok = load_dir(set, fd, etc_dir, false, error);
                close(fd);
                if (!ok)
                        return false;
        }
        if (state_fd >= 0) {
                fd = openat(state_fd, PCPD_DECLARED_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 && errno != ENOENT) {
                        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                                    "%s/" PCPD_DECLARED_DIR ": cannot open it: %s", state_dir, g_strerror(errno));
                        return false;
                }
                if (fd >= 0) {
                        g_autofree char *path = g_build_filename(state_dir, PCPD_DECLARED_DIR, NULL);
                        bool ok = load_dir(set, fd, path, true, error);
                        close(fd);
                        if (!ok)
                                return false;
                }
        }
        g_ptr_array_sort(set, compare_names);
        *ret = g_steal_pointer(&set);
        return true;
}
