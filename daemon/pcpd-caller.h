/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who a caller is, beyond its uid: the application behind its process (Mapping.AppId and
 * AppIdSource). The parsers are pure (text in, result out, no I/O) so that a fuzz target
 * and a unit test can call them; pcpd_caller_detect_app() does the reading.
 *
 * What each source is trusted for (man/org.freedesktop.PCP1.5 says the same):
 *   "flatpak"       the "name" of [Application] (or [Runtime]) in the process's own
 *                   /.flatpak-info, read through /proc/PID/root. A sandboxed app cannot
 *                   change it; a process of the same user outside any sandbox can build
 *                   a root of its own with any such file, so it tells apps of one user
 *                   apart, and never grants anything.
 *   "snap"          the AppArmor label snapd confines the process with (snap.NAME.APP),
 *                   and the process's cgroup a snapd unit of the same snap.
 *   "systemd-unit"  the (user) unit the process runs in, from its cgroup: any user names
 *                   their own units freely (systemd-run --user --unit=...). Display only.
 *   "declared"      the caller's app-id option. Display only.
 * None of them changes what a caller may do: authorisation is by uid and polkit.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* /.flatpak-info is a few hundred bytes; anything longer is not one */
#define PCPD_FLATPAK_INFO_MAX 65536
/* /proc/PID/cgroup: one line per hierarchy */
#define PCPD_CGROUP_FILE_MAX 16384

/* Is s a valid Flatpak application id (the rules of flatpak_is_valid_name: 3 or more
 * elements of [A-Za-z0-9_-], none starting with a digit, '-' only in the last one,
 * at most 255 bytes)? */
bool pcpd_flatpak_id_valid(const char *s);

/* The application id in the text of a /.flatpak-info keyfile: "name" of [Application],
 * or of [Runtime] when that group is there (flatpak run --runtime). 0 and *ret_id (to be
 * g_free()d) when it is a valid Flatpak id; -EBADMSG when the text is not a keyfile or
 * has no valid id. data need not be NUL-terminated. */
int pcpd_flatpak_info_parse(const char *data, size_t len, char **ret_id);

/* The cgroup path systemd uses for a process, from the text of /proc/PID/cgroup: the
 * unified hierarchy's line ("0::/path"), else the "name=systemd" one. 0 and *ret_path (to
 * be g_free()d); -EBADMSG when there is neither. */
int pcpd_cgroup_parse(const char *data, size_t len, char **ret_path);

/* The units in a cgroup path, the way systemd tells them (slices skipped): the system
 * unit (e.g. "user@1000.service", "foo.service", "session-2.scope") and, below a
 * "user@UID.service", the user unit (e.g. "app-gnome-foo-123.scope"). Either may be NULL
 * when there is none; both g_free()d by the caller. */
void pcpd_cgroup_path_units(const char *path, char **ret_unit, char **ret_user_unit);

/* The snap a process's AppArmor label confines it to: "snap.NAME.APP" or
 * "snap.NAME.hook.HOOK", optionally followed by " (enforce)" / " (complain)" as
 * /proc/PID/attr/current shows it, optionally NUL-terminated as SO_PEERSEC gives it.
 * 0 and *ret_name (NAME, to be g_free()d; NAME may carry a parallel-install "_key");
 * -ENOENT when the label is not a snap's (unconfined, another profile); -EBADMSG when it
 * is malformed. */
int pcpd_apparmor_label_snap(const char *label, size_t len, char **ret_name);

/* Does the unit belong to snap NAME: "snap.NAME.<app>-<uuid>.scope",
 * "snap.NAME.<app>.service" and the like? */
bool pcpd_snap_unit_matches(const char *unit, const char *name);

/* The start time of a process (clock ticks since boot, field 22), from the text of
 * /proc/PID/stat. 0 or -EBADMSG. */
int pcpd_proc_stat_starttime(const char *data, size_t len, uint64_t *ret);

/* The effective uid of a process, from the text of /proc/PID/status ("Uid:" line:
 * real, effective, saved, filesystem). 0 or -EBADMSG. */
int pcpd_proc_status_euid(const char *data, size_t len, uid_t *ret);

/* The application behind process pid of user uid, whose call arrived at boottime_ticks
 * (CLOCK_BOOTTIME in clock ticks, 0 = unknown). security_label is the bus's
 * LinuxSecurityLabel of the connection (NULL when none). Reads /proc/PID once through a
 * directory fd, so every file comes from the same process or from none; a process that
 * started after the call arrived, or that is not the caller's user, is not the caller
 * (its pid was reused) and gives nothing. *ret_id is NULL and *ret_source "none" when
 * nothing is known. */
void pcpd_caller_detect_app(pid_t pid, uid_t uid, const char *security_label, uint64_t boottime_ticks,
                            char **ret_id, const char **ret_source);

/* CLOCK_BOOTTIME now, in clock ticks (the unit of /proc/PID/stat's start time). */
uint64_t pcpd_boottime_ticks(void);
