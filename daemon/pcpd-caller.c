/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-caller.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- pure parsers ---- */

static bool ascii_alpha(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool ascii_digit(char c) {
        return c >= '0' && c <= '9';
}

bool pcpd_flatpak_id_valid(const char *s) {
        size_t len, elements = 1;
        const char *last_dot;

        if (s == NULL)
                return false;
        len = strlen(s);
        if (len == 0 || len > 255)
                return false;
        last_dot = strrchr(s, '.');
        for (const char *p = s; *p != '\0'; p++) {
                bool first = p == s || p[-1] == '.';
                bool in_last = last_dot != NULL && p > last_dot;

                if (*p == '.') {
                        if (first || p[1] == '\0') /* empty element */
                                return false;
                        elements++;
                        continue;
                }
                if (*p == '-') {
                        if (!in_last) /* '-' only in the last element */
                                return false;
                        continue;
                }
                if (ascii_alpha(*p) || *p == '_')
                        continue;
                if (ascii_digit(*p) && !first)
                        continue;
                return false;
        }
        return elements >= 3;
}

int pcpd_flatpak_info_parse(const char *data, size_t len, char **ret_id) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autofree char *id = NULL;
        const char *group = "Application";

        if (data == NULL || len > PCPD_FLATPAK_INFO_MAX || memchr(data, '\0', len) != NULL)
                return -EBADMSG;
        if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, NULL))
                return -EBADMSG;
        if (g_key_file_has_group(kf, "Runtime"))
                group = "Runtime";
        id = g_key_file_get_string(kf, group, "name", NULL);
        if (id == NULL || !pcpd_flatpak_id_valid(id))
                return -EBADMSG;
        *ret_id = g_steal_pointer(&id);
        return 0;
}

int pcpd_cgroup_parse(const char *data, size_t len, char **ret_path) {
        g_autofree char *unified = NULL, *named = NULL;
        size_t i = 0;

        if (data == NULL || len > PCPD_CGROUP_FILE_MAX)
                return -EBADMSG;
        /* "ID:CONTROLLERS:PATH" per line; the path may itself hold ':' */
        while (i < len) {
                const char *line = data + i, *nl = memchr(line, '\n', len - i);
                size_t n = nl != NULL ? (size_t) (nl - line) : len - i;
                const char *c1 = memchr(line, ':', n), *c2;

                i += n + 1;
                if (c1 == NULL)
                        continue;
                c2 = memchr(c1 + 1, ':', n - (size_t) (c1 + 1 - line));
                if (c2 == NULL || c2 + 1 >= line + n || c2[1] != '/')
                        continue;
                if (memchr(line, '\0', n) != NULL)
                        return -EBADMSG;
                if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
                        if (unified == NULL)
                                unified = g_strndup(c2 + 1, (gsize) (line + n - (c2 + 1)));
                } else {
                        /* one of the controllers of a v1 hierarchy is "name=systemd" */
                        g_autofree char *controllers = g_strndup(c1 + 1, (gsize) (c2 - (c1 + 1)));
                        g_auto(GStrv) list = g_strsplit(controllers, ",", -1);
                        if (named == NULL && g_strv_contains((const char *const *) list, "name=systemd"))
                                named = g_strndup(c2 + 1, (gsize) (line + n - (c2 + 1)));
                }
        }
        /* systemd keeps its own hierarchy where there is one (legacy and hybrid setups),
         * the unified one otherwise, as sd_pid_get_unit() does */
        if (named != NULL) {
                *ret_path = g_steal_pointer(&named);
                return 0;
        }
        if (unified != NULL) {
                *ret_path = g_steal_pointer(&unified);
                return 0;
        }
        return -EBADMSG;
}

static bool unit_char(char c) {
        return ascii_alpha(c) || ascii_digit(c) || strchr(":-_.\\@", c) != NULL;
}

/* A unit name of one of the types that hold processes; the cgroup's escaping (a leading
 * '_' before names that would clash with cgroupfs' own) undone. NULL otherwise. */
static char *unit_from_component(const char *c) {
        static const char *const suffixes[] = { ".service", ".scope" };
        const char *dot;

        if (c[0] == '_')
                c++;
        if (c[0] == '\0' || c[0] == '.' || strlen(c) > 255)
                return NULL;
        for (const char *p = c; *p != '\0'; p++)
                if (!unit_char(*p))
                        return NULL;
        dot = strrchr(c, '.');
        if (dot == NULL || dot == c)
                return NULL;
        for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++)
                if (strcmp(dot, suffixes[i]) == 0)
                        return g_strdup(c);
        return NULL;
}

/* the index of the first component at or after i that is not a slice */
static size_t skip_slices(char **parts, size_t i) {
        while (parts[i] != NULL && (parts[i][0] == '\0' || g_str_has_suffix(parts[i], ".slice")))
                i++;
        return i;
}

void pcpd_cgroup_path_units(const char *path, char **ret_unit, char **ret_user_unit) {
        g_auto(GStrv) parts = NULL;
        g_autofree char *unit = NULL, *user_unit = NULL;
        size_t i;

        *ret_unit = NULL;
        *ret_user_unit = NULL;
        if (path == NULL || path[0] != '/')
                return;
        parts = g_strsplit(path, "/", -1);
        i = skip_slices(parts, 0);
        if (parts[i] == NULL)
                return;
        unit = unit_from_component(parts[i]);
        if (unit == NULL)
                return;
        /* a user's own units live below their manager, user@UID.service */
        if (g_str_has_prefix(unit, "user@") && g_str_has_suffix(unit, ".service")) {
                i = skip_slices(parts, i + 1);
                if (parts[i] != NULL)
                        user_unit = unit_from_component(parts[i]);
        }
        *ret_unit = g_steal_pointer(&unit);
        *ret_user_unit = g_steal_pointer(&user_unit);
}

/* snapd's rules: lower-case letters, digits and '-', at least one letter, no '-' at
 * either end nor two in a row, at most 40 characters; a parallel install adds "_KEY"
 * (1-10 lower-case letters and digits) */
static bool snap_name_valid(const char *s, size_t len) {
        const char *us = memchr(s, '_', len);
        size_t n = us != NULL ? (size_t) (us - s) : len;
        bool letter = false;

        if (n == 0 || n > 40 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c >= 'a' && c <= 'z')
                        letter = true;
                else if (c == '-') {
                        if (s[i + 1] == '-')
                                return false;
                } else if (!ascii_digit(c))
                        return false;
        }
        if (!letter)
                return false;
        if (us != NULL) {
                size_t k = len - n - 1;
                if (k == 0 || k > 10)
                        return false;
                for (size_t i = n + 1; i < len; i++)
                        if (!((s[i] >= 'a' && s[i] <= 'z') || ascii_digit(s[i])))
                                return false;
        }
        return true;
}

static bool snap_app_valid(const char *s, size_t len) {
        if (len == 0 || len > 256 || s[0] == '-' || s[len - 1] == '-')
                return false;
        for (size_t i = 0; i < len; i++)
                if (!ascii_alpha(s[i]) && !ascii_digit(s[i]) && s[i] != '-')
                        return false;
        return true;
}

int pcpd_apparmor_label_snap(const char *label, size_t len, char **ret_name) {
        const char *name, *dot, *end;
        size_t n;

        if (label == NULL)
                return -ENOENT;
        /* SO_PEERSEC gives it NUL-terminated, attr/current with a newline */
        n = strnlen(label, len);
        while (n > 0 && (label[n - 1] == '\n' || label[n - 1] == ' '))
                n--;
        /* "LABEL (MODE)": the mode is not part of the label */
        if (n > 0 && label[n - 1] == ')') {
                const char *open = NULL;
                for (size_t i = n; i > 0; i--)
                        if (label[i - 1] == '(') {
                                open = label + i - 1;
                                break;
                        }
                if (open == NULL || open == label || open[-1] != ' ')
                        return -EBADMSG;
                n = (size_t) (open - 1 - label);
        }
        if (n < 5 || strncmp(label, "snap.", 5) != 0)
                return -ENOENT;
        end = label + n;
        name = label + 5;
        dot = memchr(name, '.', (size_t) (end - name));
        if (dot == NULL || !snap_name_valid(name, (size_t) (dot - name)))
                return -EBADMSG;
        /* APP, or "hook.HOOK" */
        {
                const char *app = dot + 1;
                size_t an = (size_t) (end - app);
                if (an > 5 && strncmp(app, "hook.", 5) == 0) {
                        app += 5;
                        an -= 5;
                }
                if (!snap_app_valid(app, an))
                        return -EBADMSG;
        }
        *ret_name = g_strndup(name, (gsize) (dot - name));
        return 0;
}

bool pcpd_snap_unit_matches(const char *unit, const char *name) {
        size_t n;

        if (unit == NULL || name == NULL || name[0] == '\0')
                return false;
        n = strlen(name);
        return g_str_has_prefix(unit, "snap.") && strncmp(unit + 5, name, n) == 0 && unit[5 + n] == '.' &&
               unit[6 + n] != '\0' && (g_str_has_suffix(unit, ".scope") || g_str_has_suffix(unit, ".service"));
}

int pcpd_proc_stat_starttime(const char *data, size_t len, uint64_t *ret) {
        const char *p = NULL;
        unsigned field = 3;

        if (data == NULL)
                return -EBADMSG;
        /* "PID (COMM) STATE ...": COMM may hold anything, so fields start after the last ')' */
        for (size_t i = len; i > 0; i--)
                if (data[i - 1] == ')') {
                        p = data + i;
                        break;
                }
        if (p == NULL)
                return -EBADMSG;
        while (p < data + len) {
                if (*p != ' ')
                        return -EBADMSG;
                p++;
                if (field == 22) {
                        uint64_t v = 0;
                        const char *start = p;
                        while (p < data + len && ascii_digit(*p)) {
                                uint64_t d = (uint64_t) (*p - '0');
                                if (v > (UINT64_MAX - d) / 10) /* exactly: 2^64-1 fits */
                                        return -EBADMSG;
                                v = v * 10 + d;
                                p++;
                        }
                        if (p == start || (p < data + len && *p != ' ' && *p != '\n'))
                                return -EBADMSG;
                        *ret = v;
                        return 0;
                }
                while (p < data + len && *p != ' ' && *p != '\n')
                        p++;
                field++;
        }
        return -EBADMSG;
}

int pcpd_proc_status_euid(const char *data, size_t len, uid_t *ret) {
        size_t i = 0;

        if (data == NULL)
                return -EBADMSG;
        while (i < len) {
                const char *line = data + i, *nl = memchr(line, '\n', len - i);
                size_t n = nl != NULL ? (size_t) (nl - line) : len - i;

                i += n + 1;
                if (n > 4 && memcmp(line, "Uid:", 4) == 0) {
                        const char *p = line + 4, *end = line + n;
                        uint64_t v[2] = { 0, 0 };
                        /* the first two numbers: real, effective */
                        for (int k = 0; k < 2; k++) {
                                const char *start;
                                while (p < end && (*p == '\t' || *p == ' '))
                                        p++;
                                start = p;
                                while (p < end && ascii_digit(*p)) {
                                        v[k] = v[k] * 10 + (uint64_t) (*p - '0');
                                        if (v[k] > UINT32_MAX)
                                                return -EBADMSG;
                                        p++;
                                }
                                if (p == start)
                                        return -EBADMSG;
                        }
                        *ret = (uid_t) v[1];
                        return 0;
                }
        }
        return -EBADMSG;
}

/* ---- reading a process ---- */

uint64_t pcpd_boottime_ticks(void) {
        struct timespec ts;
        long hz = sysconf(_SC_CLK_TCK);

        if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * (uint64_t) hz + (uint64_t) ts.tv_nsec / (1000000000u / (uint64_t) hz);
}

/* A file of at most max bytes, opened relative to dfd (never through a symbolic link);
 * regular files only when regular is set. */
static int read_at(int dfd, const char *name, size_t max, bool regular, char **ret, size_t *ret_len) {
        g_autofree char *buf = NULL;
        struct stat st;
        size_t n = 0;
        int fd, r = 0;

        fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (regular && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
                close(fd);
                return -EBADF;
        }
        buf = g_malloc(max + 1);
        for (;;) {
                ssize_t k = read(fd, buf + n, max + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        break;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max) {
                        r = -EFBIG;
                        break;
                }
        }
        close(fd);
        if (r < 0)
                return r;
        buf[n] = '\0';
        *ret = g_steal_pointer(&buf);
        *ret_len = n;
        return 0;
}

static int read_start_time(int dfd, uint64_t *ret) {
        g_autofree char *data = NULL;
        size_t len;
        int r = read_at(dfd, "stat", 4096, false, &data, &len);

        return r < 0 ? r : pcpd_proc_stat_starttime(data, len, ret);
}

/* The id in the process's own /.flatpak-info: through its root, not ours, and never
 * through a symbolic link (its target would be looked up in pcpd's root). */
static char *flatpak_id(int dfd) {
        static bool warned = false;
        g_autofree char *data = NULL;
        char *id = NULL;
        size_t len;
        int root, r;

        root = openat(dfd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root < 0) {
                /* looking into another user's process needs CAP_SYS_PTRACE: without it no
                 * caller is taken for a Flatpak app, which is the safe way to fail */
                if ((errno == EACCES || errno == EPERM) && !warned) {
                        warned = true;
                        g_message("Cannot look into the root directories of other users' processes (%s): Flatpak "
                                  "apps are shown by their systemd unit instead of their Flatpak id",
                                  g_strerror(errno));
                }
                return NULL;
        }
        r = read_at(root, ".flatpak-info", PCPD_FLATPAK_INFO_MAX, true, &data, &len);
        close(root);
        if (r < 0) {
                if (r != -ENOENT)
                        g_debug("Ignoring the caller's /.flatpak-info: %s", g_strerror(-r));
                return NULL;
        }
        if (pcpd_flatpak_info_parse(data, len, &id) < 0) {
                g_debug("Ignoring the caller's /.flatpak-info: it names no valid application id");
                return NULL;
        }
        return id;
}

static char *snap_name(int dfd, const char *security_label) {
        g_autofree char *data = NULL;
        char *name = NULL;
        size_t len;

        if (security_label != NULL) {
                if (pcpd_apparmor_label_snap(security_label, strlen(security_label), &name) < 0)
                        return NULL;
                return name;
        }
        /* the AppArmor-only file first: with stacked LSMs attr/current is another's */
        if (read_at(dfd, "attr/apparmor/current", 4096, false, &data, &len) < 0 &&
            read_at(dfd, "attr/current", 4096, false, &data, &len) < 0)
                return NULL;
        if (pcpd_apparmor_label_snap(data, len, &name) < 0)
                return NULL;
        return name;
}

/* Units that are no app: a login session, the user manager itself, PID 1 */
static bool unit_is_app(const char *unit) {
        return unit != NULL && !g_str_has_prefix(unit, "session-") && strcmp(unit, "init.scope") != 0 &&
               !(g_str_has_prefix(unit, "user@") && g_str_has_suffix(unit, ".service"));
}

void pcpd_caller_detect_app(pid_t pid, uid_t uid, const char *security_label, uint64_t boottime_ticks,
                            char **ret_id, const char **ret_source) {
        g_autofree char *path = NULL, *cgroup = NULL, *cg_path = NULL, *unit = NULL, *user_unit = NULL;
        g_autofree char *flatpak = NULL, *snap = NULL, *status = NULL;
        uint64_t start, start_again;
        uid_t euid;
        size_t len;
        int dfd;

        *ret_id = NULL;
        *ret_source = "none";
        if (pid <= 0)
                return;
        /* every file below is read through this one directory: it stays the process it was
         * opened for, and fails once that process is gone, whatever gets its pid next */
        path = g_strdup_printf("/proc/%d", (int) pid);
        dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return;
        /* the user the bus says the caller is */
        if (read_at(dfd, "status", 16384, false, &status, &len) < 0 || pcpd_proc_status_euid(status, len, &euid) < 0 ||
            euid != uid || read_start_time(dfd, &start) < 0)
                goto out;
        /* the pid was another process's when the call came: this one is not the caller */
        if (boottime_ticks > 0 && start > boottime_ticks)
                goto out;

        if (read_at(dfd, "cgroup", PCPD_CGROUP_FILE_MAX, false, &cgroup, &len) >= 0 &&
            pcpd_cgroup_parse(cgroup, len, &cg_path) >= 0)
                pcpd_cgroup_path_units(cg_path, &unit, &user_unit);
        flatpak = flatpak_id(dfd);
        if (flatpak == NULL)
                snap = snap_name(dfd, security_label);

        /* still the same process after reading everything */
        if (read_start_time(dfd, &start_again) < 0 || start_again != start)
                goto out;

        if (flatpak != NULL) {
                *ret_id = g_steal_pointer(&flatpak);
                *ret_source = "flatpak";
        } else if (snap != NULL && (pcpd_snap_unit_matches(user_unit, snap) || pcpd_snap_unit_matches(unit, snap))) {
                *ret_id = g_steal_pointer(&snap);
                *ret_source = "snap";
        } else if (unit_is_app(user_unit)) {
                *ret_id = g_steal_pointer(&user_unit);
                *ret_source = "systemd-unit";
        } else if (unit_is_app(unit)) {
                *ret_id = g_steal_pointer(&unit);
                *ret_source = "systemd-unit";
        }
out:
        close(dfd);
}
