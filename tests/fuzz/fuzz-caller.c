/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: what pcpd reads about a caller's process (daemon/pcpd-caller.c): the
 * process's /.flatpak-info, /proc/PID/cgroup and the units in its path, the AppArmor label
 * (SO_PEERSEC or /proc/PID/attr/current), /proc/PID/stat and /proc/PID/status. Every one
 * of them can be written by the caller (its own root, its own cgroup names, its comm).
 *
 * The first octet picks the parser (modulo 6), the rest is its input. Checked, besides no
 * crash / leak / sanitizer report:
 *  - each result against a second, independent reading of the rules the header states
 *    (Flatpak ids, snap names, unit names, the fields of stat and status): the two must
 *    agree on every input;
 *  - each result, written back in the file's own syntax, reads back as itself;
 *  - a Flatpak id or a cgroup path is text the input holds, never more; units are
 *    components of the path they come from; a snap's units match its name.
 */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "fuzz-common.h"
#include "pcpd-caller.h"

#include <glib.h>

/* ---- a second reading of the rules ---- */

/* flatpak_is_valid_name(): elements of [A-Za-z0-9_-] separated by '.', at least 3, none
 * empty nor starting with a digit, '-' only in the last, at most 255 bytes */
static bool ref_flatpak_id(const char *s) {
        g_auto(GStrv) el = NULL;
        guint n;

        if (s == NULL || strlen(s) == 0 || strlen(s) > 255)
                return false;
        el = g_strsplit(s, ".", -1);
        n = g_strv_length(el);
        if (n < 3)
                return false;
        for (guint i = 0; i < n; i++) {
                const char *e = el[i];

                if (e[0] == '\0' || g_ascii_isdigit(e[0]))
                        return false;
                for (const char *p = e; *p != '\0'; p++) {
                        if (*p == '-' && i == n - 1)
                                continue;
                        if (!(g_ascii_isalnum(*p) || *p == '_'))
                                return false;
                }
        }
        return true;
}

/* snapd: [a-z0-9-] with a letter, no '-' at the ends or twice in a row, 1-40; "_KEY" of
 * 1-10 [a-z0-9] for a parallel install */
static bool ref_snap_name(const char *s) {
        const char *us = strchr(s, '_');
        g_autofree char *base = us != NULL ? g_strndup(s, (gsize) (us - s)) : g_strdup(s);
        size_t n = strlen(base);

        if (n == 0 || n > 40 || base[0] == '-' || base[n - 1] == '-' || strstr(base, "--") != NULL ||
            strspn(base, "abcdefghijklmnopqrstuvwxyz0123456789-") != n || strpbrk(base, "abcdefghijklmnopqrstuvwxyz") == NULL)
                return false;
        if (us != NULL) {
                size_t k = strlen(us + 1);
                if (k == 0 || k > 10 || strspn(us + 1, "abcdefghijklmnopqrstuvwxyz0123456789") != k)
                        return false;
        }
        return true;
}

static bool ref_unit(const char *u) {
        size_t n = strlen(u);

        return n > 0 && n <= 255 && u[0] != '.' &&
               strspn(u, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:-_.\\@") == n &&
               ((g_str_has_suffix(u, ".service") && n > strlen(".service")) ||
                (g_str_has_suffix(u, ".scope") && n > strlen(".scope")));
}

/* field 22 of stat: after the last ')', fields separated by one space each */
static int ref_starttime(const char *data, size_t len, uint64_t *ret) {
        g_autofree char *rest = NULL;
        g_auto(GStrv) fields = NULL;
        const char *close = NULL;
        guint64 v;

        for (size_t i = 0; i < len; i++)
                if (data[i] == ')')
                        close = data + i;
        if (close == NULL)
                return -EBADMSG;
        rest = g_strndup(close + 1, (gsize) (data + len - close - 1));
        if (strlen(rest) != (size_t) (data + len - close - 1))
                return -EBADMSG; /* a NUL after the comm: the reference does not read past it */
        /* fields 3.. end at a space, a newline or the end; the newline ends it all */
        if (strchr(rest, '\n') != NULL)
                *strchr(rest, '\n') = '\0';
        if (rest[0] != ' ')
                return -EBADMSG;
        fields = g_strsplit(rest + 1, " ", -1);
        if (g_strv_length(fields) < 20)
                return -EBADMSG;
        if (fields[19][0] == '\0' || strspn(fields[19], "0123456789") != strlen(fields[19]) ||
            !g_ascii_string_to_unsigned(fields[19], 10, 0, G_MAXUINT64, &v, NULL))
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* the effective uid: the second number on the first "Uid:" line */
static int ref_euid(const char *data, size_t len, uid_t *ret) {
        g_autofree char *text = g_strndup(data, len);
        g_auto(GStrv) lines = NULL;

        if (strlen(text) != len)
                return -2; /* a NUL: not compared */
        lines = g_strsplit(text, "\n", -1);
        for (guint i = 0; lines[i] != NULL; i++) {
                const char *p;
                guint64 v[2];

                if (!g_str_has_prefix(lines[i], "Uid:") || strlen(lines[i]) <= 4)
                        continue;
                p = lines[i] + 4;
                for (int k = 0; k < 2; k++) {
                        const char *start;
                        g_autofree char *num = NULL;

                        p += strspn(p, " \t");
                        start = p;
                        p += strspn(p, "0123456789");
                        if (p == start)
                                return -EBADMSG;
                        num = g_strndup(start, (gsize) (p - start));
                        if (!g_ascii_string_to_unsigned(num, 10, 0, UINT32_MAX, &v[k], NULL))
                                return -EBADMSG;
                }
                *ret = (uid_t) v[1];
                return 0;
        }
        return -EBADMSG;
}

/* ---- the targets ---- */

static void fuzz_flatpak(const char *data, size_t len) {
        g_autofree char *id = NULL, *text = g_strndup(data, len), *again = NULL, *file = NULL;
        int r = pcpd_flatpak_info_parse(data, len, &id);

        fuzz_check(r == 0 || r == -EBADMSG, "r %d", r);
        /* the id rules themselves, on the raw text */
        if (strlen(text) == len)
                fuzz_check(pcpd_flatpak_id_valid(text) == ref_flatpak_id(text), "id rules disagree on '%s'", text);
        if (r < 0)
                return;
        fuzz_check(ref_flatpak_id(id), "invalid id '%s' taken", id);
        /* a valid id has no character an escape could have made: it is in the text as is */
        fuzz_check(memmem(data, len, id, strlen(id)) != NULL, "id '%s' is not in the text", id);
        file = g_strdup_printf("[Instance]\nname=x\n[Application]\nname=%s\n", id);
        fuzz_check(pcpd_flatpak_info_parse(file, strlen(file), &again) == 0 && strcmp(again, id) == 0,
                   "id '%s' written back reads differently", id);
}

static void check_units(const char *path) {
        g_autofree char *unit = NULL, *user_unit = NULL, *unit2 = NULL, *user_unit2 = NULL, *rebuilt = NULL;
        g_autofree char *inner = NULL;

        pcpd_cgroup_path_units(path, &unit, &user_unit);
        if (unit == NULL) {
                fuzz_check(user_unit == NULL, "a user unit without a unit");
                return;
        }
        fuzz_check(path[0] == '/', "units of a relative path");
        fuzz_check(ref_unit(unit), "unit '%s' is no unit name", unit);
        inner = g_strdup_printf("/%s", unit);
        fuzz_check(strstr(path, inner) != NULL || strstr(path, (rebuilt = g_strdup_printf("/_%s", unit))) != NULL,
                   "unit '%s' is not in '%s'", unit, path);
        g_clear_pointer(&rebuilt, g_free);
        if (user_unit != NULL) {
                fuzz_check(ref_unit(user_unit), "user unit '%s' is no unit name", user_unit);
                fuzz_check(g_str_has_prefix(unit, "user@") && g_str_has_suffix(unit, ".service"),
                           "user unit '%s' below '%s'", user_unit, unit);
        }
        /* the units written as a path (escaped as cgroupfs does: a leading '_' always
         * works) give the same units */
        rebuilt = user_unit != NULL ? g_strdup_printf("/u.slice/_%s/a.slice/_%s/x", unit, user_unit)
                                    : g_strdup_printf("/_%s", unit);
        pcpd_cgroup_path_units(rebuilt, &unit2, &user_unit2);
        fuzz_check(g_strcmp0(unit, unit2) == 0 && g_strcmp0(user_unit, user_unit2) == 0,
                   "units of '%s' written as '%s' read differently", path, rebuilt);
}

static void fuzz_cgroup(const char *data, size_t len) {
        g_autofree char *path = NULL, *file = NULL, *again = NULL, *text = g_strndup(data, len);
        int r = pcpd_cgroup_parse(data, len, &path);

        fuzz_check(r == 0 || r == -EBADMSG, "r %d", r);
        /* the unit reader on any text that looks like a path */
        if (strlen(text) == len)
                check_units(text);
        if (r < 0)
                return;
        fuzz_check(path[0] == '/' && strchr(path, '\n') == NULL, "path '%s'", path);
        fuzz_check(memmem(data, len, path, strlen(path)) != NULL, "path '%s' is not in the text", path);
        file = g_strdup_printf("0::%s\n", path);
        fuzz_check(pcpd_cgroup_parse(file, strlen(file), &again) == 0 && strcmp(again, path) == 0,
                   "path '%s' written back reads differently", path);
        check_units(path);
}

static void fuzz_apparmor(const char *data, size_t len) {
        g_autofree char *name = NULL, *label = NULL, *again = NULL, *unit = NULL;
        int r = pcpd_apparmor_label_snap(data, len, &name);

        fuzz_check(r == 0 || r == -ENOENT || r == -EBADMSG, "r %d", r);
        if (r < 0)
                return;
        fuzz_check(ref_snap_name(name), "invalid snap name '%s' taken", name);
        fuzz_check(memmem(data, len, name, strlen(name)) != NULL, "name '%s' is not in the label", name);
        /* as attr/current shows it and as SO_PEERSEC gives it */
        label = g_strdup_printf("snap.%s.app (enforce)\n", name);
        fuzz_check(pcpd_apparmor_label_snap(label, strlen(label), &again) == 0 && strcmp(again, name) == 0,
                   "name '%s' written back reads differently", name);
        g_clear_pointer(&again, g_free);
        g_clear_pointer(&label, g_free);
        label = g_strdup_printf("snap.%s.hook.configure", name);
        fuzz_check(pcpd_apparmor_label_snap(label, strlen(label) + 1, &again) == 0 && strcmp(again, name) == 0,
                   "name '%s' as a hook reads differently", name);
        unit = g_strdup_printf("snap.%s.app-0f1e2d3c.scope", name);
        fuzz_check(pcpd_snap_unit_matches(unit, name), "the unit %s does not match %s", unit, name);
}

static void fuzz_stat(const char *data, size_t len) {
        uint64_t t = 0, want = 0;
        int r = pcpd_proc_stat_starttime(data, len, &t), rr;

        fuzz_check(r == 0 || r == -EBADMSG, "r %d", r);
        rr = ref_starttime(data, len, &want);
        /* the reference stops at a NUL after the comm; where it reads everything, both agree */
        if (memchr(data, '\0', len) == NULL) {
                fuzz_check(r == rr, "start time: %d, the reference %d", r, rr);
                fuzz_check(r < 0 || t == want, "start time %" PRIu64 ", the reference %" PRIu64, t, want);
        }
        if (r == 0) {
                g_autofree char *line = g_strdup_printf("7 (a) b) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 "
                                                        "%" PRIu64 " 20 21\n",
                                                        t);
                uint64_t again = 0;

                fuzz_check(pcpd_proc_stat_starttime(line, strlen(line), &again) == 0 && again == t,
                           "start time %" PRIu64 " written back reads differently", t);
        }
}

static void fuzz_status(const char *data, size_t len) {
        uid_t u = 0, want = 0;
        int r = pcpd_proc_status_euid(data, len, &u), rr;

        fuzz_check(r == 0 || r == -EBADMSG, "r %d", r);
        rr = ref_euid(data, len, &want);
        if (rr != -2) {
                fuzz_check(r == rr, "euid: %d, the reference %d", r, rr);
                fuzz_check(r < 0 || u == want, "euid %u, the reference %u", (unsigned) u, (unsigned) want);
        }
        if (r == 0) {
                g_autofree char *text = g_strdup_printf("Name:\tx\nUid:\t0\t%u\t0\t0\nGid:\t0\t0\t0\t0\n", (unsigned) u);
                uid_t again = 0;

                fuzz_check(pcpd_proc_status_euid(text, strlen(text), &again) == 0 && again == u,
                           "euid %u written back reads differently", (unsigned) u);
        }
}

static void fuzz_snap_unit(const char *data, size_t len) {
        /* "UNIT\nNAME": a unit matches a valid snap name only when that name is the unit's
         * second dotted element (so no other snap, and no prefix of a name, matches it) */
        g_autofree char *text = g_strndup(data, len);
        char *nl = strchr(text, '\n');
        const char *unit, *name;

        if (nl == NULL)
                return;
        *nl = '\0';
        unit = text;
        name = nl + 1;
        if (pcpd_snap_unit_matches(unit, name)) {
                g_auto(GStrv) el = g_strsplit(unit, ".", 4);

                fuzz_check(g_strv_length(el) >= 3 && strcmp(el[0], "snap") == 0, "'%s' matched '%s'", unit, name);
                fuzz_check(!ref_snap_name(name) || strcmp(el[1], name) == 0, "'%s' matched snap '%s'", unit, name);
                fuzz_check(g_str_has_suffix(unit, ".scope") || g_str_has_suffix(unit, ".service"),
                           "'%s' is no scope or service", unit);
        } else if (ref_snap_name(name) && ref_unit(unit)) {
                /* and the other way round: the rule written out matches */
                g_autofree char *u = g_strdup_printf("snap.%s.%s", name, unit);
                fuzz_check(pcpd_snap_unit_matches(u, name), "'%s' does not match '%s'", u, name);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data + 1;
        size_t len = size - 1;

        if (size < 1)
                return 0;
        switch (data[0] % 6) {
        case 0:
                fuzz_flatpak(text, len);
                break;
        case 1:
                fuzz_cgroup(text, len);
                break;
        case 2:
                fuzz_apparmor(text, len);
                break;
        case 3:
                fuzz_stat(text, len);
                break;
        case 4:
                fuzz_status(text, len);
                break;
        default:
                fuzz_snap_unit(text, len);
                break;
        }
        return 0;
}
