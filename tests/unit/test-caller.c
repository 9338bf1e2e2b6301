/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The caller's app id: the pure parsers (/.flatpak-info, /proc/PID/cgroup, AppArmor
 * labels, /proc/PID/stat) and, as root, pcpd_caller_detect_app() on a child process whose
 * root directory the test makes. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include "pcpd-caller.h"

static void test_flatpak_id(void **state) {
        g_autofree char *long_id = NULL;

        assert_true(pcpd_flatpak_id_valid("org.example.App"));
        assert_true(pcpd_flatpak_id_valid("org.example.App-1"));
        assert_true(pcpd_flatpak_id_valid("org.example.my_app2"));
        assert_true(pcpd_flatpak_id_valid("io._underscore.App"));
        assert_false(pcpd_flatpak_id_valid(NULL));
        assert_false(pcpd_flatpak_id_valid(""));
        assert_false(pcpd_flatpak_id_valid("org.example"));      /* two elements */
        assert_false(pcpd_flatpak_id_valid("org.exa-mple.App")); /* '-' before the last */
        assert_false(pcpd_flatpak_id_valid("org.1example.App")); /* a digit first */
        assert_false(pcpd_flatpak_id_valid("org..App"));
        assert_false(pcpd_flatpak_id_valid(".org.example.App"));
        assert_false(pcpd_flatpak_id_valid("org.example.App."));
        assert_false(pcpd_flatpak_id_valid("org.example.App/x"));
        assert_false(pcpd_flatpak_id_valid("org.example.Äpp"));
        assert_false(pcpd_flatpak_id_valid("org.example.App 1"));
        long_id = g_strnfill(256, 'a');
        long_id[3] = '.';
        long_id[7] = '.';
        assert_false(pcpd_flatpak_id_valid(long_id));
        long_id[255] = '\0';
        assert_true(pcpd_flatpak_id_valid(long_id));
}

static void expect_flatpak(const char *text, const char *want) {
        g_autofree char *id = NULL;
        int r = pcpd_flatpak_info_parse(text, strlen(text), &id);

        if (want == NULL) {
                assert_int_equal(r, -EBADMSG);
                return;
        }
        assert_int_equal(r, 0);
        assert_string_equal(id, want);
}

static void test_flatpak_info(void **state) {
        static const char real[] = "[Application]\n"
                                   "name=org.gnome.Maps\n"
                                   "runtime=runtime/org.gnome.Platform/x86_64/46\n"
                                   "\n"
                                   "[Instance]\n"
                                   "instance-id=1234567890\n"
                                   "app-path=/var/lib/flatpak/app/org.gnome.Maps/x86_64/stable/abc/files\n"
                                   "\n"
                                   "[Context]\n"
                                   "shared=network;ipc;\n";
        g_autofree char *id = NULL;

        expect_flatpak(real, "org.gnome.Maps");
        /* flatpak run --runtime: the runtime's name */
        expect_flatpak("[Application]\nname=org.example.App\n[Runtime]\nname=org.freedesktop.Sdk\n",
                       "org.freedesktop.Sdk");
        expect_flatpak("", NULL);
        expect_flatpak("not a key file", NULL);
        expect_flatpak("[Application]\nruntime=x\n", NULL);                  /* no name */
        expect_flatpak("[Application]\nname=../../etc/passwd\n", NULL);      /* not an id */
        expect_flatpak("[Application]\nname=org.example\n", NULL);           /* not an id */
        expect_flatpak("[Instance]\nname=org.example.App\n", NULL);          /* wrong group */
        expect_flatpak("[Application]\nname=org.example.\xff\xfe\n", NULL);  /* not UTF-8 */
        /* embedded NUL: refused, not cut short */
        assert_int_equal(pcpd_flatpak_info_parse("[Application]\nname=org.a.b\0x\n", 28, &id), -EBADMSG);
        /* the length counts, not a NUL: a buffer cut after the id */
        assert_int_equal(pcpd_flatpak_info_parse("[Application]\nname=org.a.bXYZ", 26, &id), 0);
        assert_string_equal(id, "org.a.b");
        g_clear_pointer(&id, g_free);
        assert_int_equal(pcpd_flatpak_info_parse("x", PCPD_FLATPAK_INFO_MAX + 1, &id), -EBADMSG);
}

static void expect_cgroup(const char *text, const char *want) {
        g_autofree char *path = NULL;
        int r = pcpd_cgroup_parse(text, strlen(text), &path);

        if (want == NULL) {
                assert_int_equal(r, -EBADMSG);
                return;
        }
        assert_int_equal(r, 0);
        assert_string_equal(path, want);
}

static void test_cgroup_file(void **state) {
        expect_cgroup("0::/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service\n",
                      "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service");
        expect_cgroup("0::/system.slice/bar.service", "/system.slice/bar.service"); /* no newline */
        /* hybrid and legacy: systemd's own hierarchy */
        expect_cgroup("12:pids:/user.slice\n1:name=systemd:/system.slice/legacy.service\n0::/\n",
                      "/system.slice/legacy.service");
        expect_cgroup("3:cpu,name=systemd:/a.service\n", "/a.service");
        /* a path may hold ':' */
        expect_cgroup("0::/x.slice/we:ird.scope\n", "/x.slice/we:ird.scope");
        expect_cgroup("", NULL);
        expect_cgroup("garbage\n", NULL);
        expect_cgroup("0::\n", NULL);
        expect_cgroup("0::relative\n", NULL);
        expect_cgroup("5:memory:/x\n", NULL); /* neither the unified nor systemd's hierarchy */
        expect_cgroup("0::/a\n0::/b\n", "/a");
}

static void expect_units(const char *path, const char *unit, const char *user_unit) {
        g_autofree char *u = NULL, *uu = NULL;

        pcpd_cgroup_path_units(path, &u, &uu);
        if (unit == NULL)
                assert_null(u);
        else
                assert_string_equal(u, unit);
        if (user_unit == NULL)
                assert_null(uu);
        else
                assert_string_equal(uu, user_unit);
}

static void test_cgroup_units(void **state) {
        /* anyone can name a scope like this (systemd-run --user --scope --unit=...): it is a
         * systemd unit, nothing more */
        expect_units("/user.slice/user-1000.slice/user@1000.service/app.slice/app-flatpak-org.example.App-1.scope",
                     "user@1000.service", "app-flatpak-org.example.App-1.scope");
        expect_units("/user.slice/user-1000.slice/user@1000.service/init.scope", "user@1000.service", "init.scope");
        expect_units("/user.slice/user-1000.slice/user@1000.service", "user@1000.service", NULL);
        expect_units("/user.slice/user-1000.slice/session-2.scope", "session-2.scope", NULL);
        expect_units("/system.slice/foo.service", "foo.service", NULL);
        expect_units("/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service", NULL);
        expect_units("/system.slice/_cgroup.procs.service", "cgroup.procs.service", NULL); /* escaped */
        expect_units("/init.scope", "init.scope", NULL);
        expect_units("/", NULL, NULL);
        expect_units("", NULL, NULL);
        expect_units("relative/foo.service", NULL, NULL);
        expect_units("/system.slice/foo bar.service", NULL, NULL);
        expect_units("/system.slice/foo.target", NULL, NULL);
        expect_units("/system.slice/.service", NULL, NULL);
        expect_units("/pcpd-test.slice/x.service/sub", "x.service", NULL);
        expect_units("/pcpd-test/x.service", NULL, NULL); /* the first after the slices is no unit */
}

static void expect_snap(const char *label, size_t len, int want_r, const char *want) {
        g_autofree char *name = NULL;
        int r = pcpd_apparmor_label_snap(label, len, &name);

        assert_int_equal(r, want_r);
        if (want != NULL)
                assert_string_equal(name, want);
}

static void test_apparmor_label(void **state) {
        expect_snap("snap.firefox.firefox (enforce)\n", 31, 0, "firefox");
        expect_snap("snap.firefox.firefox (complain)", 31, 0, "firefox");
        /* SO_PEERSEC: NUL-terminated, the NUL counted in the length */
        expect_snap("snap.lxd.daemon", 16, 0, "lxd");
        expect_snap("snap.my-snap_instance2.app-x", 28, 0, "my-snap_instance2");
        expect_snap("snap.foo.hook.configure (enforce)", 33, 0, "foo");
        expect_snap("unconfined", 10, -ENOENT, NULL);
        expect_snap("/usr/bin/foo (enforce)", 22, -ENOENT, NULL);
        expect_snap("snap-update-ns.foo (enforce)", 28, -ENOENT, NULL);
        expect_snap("", 0, -ENOENT, NULL);
        expect_snap("snap.Foo.bar", 12, -EBADMSG, NULL);      /* upper case */
        expect_snap("snap.foo", 8, -EBADMSG, NULL);           /* no app */
        expect_snap("snap.foo.", 9, -EBADMSG, NULL);          /* empty app */
        expect_snap("snap.-foo.bar", 13, -EBADMSG, NULL);     /* leading '-' */
        expect_snap("snap.fo--o.bar", 14, -EBADMSG, NULL);    /* two '-' */
        expect_snap("snap.123.bar", 12, -EBADMSG, NULL);      /* no letter */
        expect_snap("snap.foo_.bar", 13, -EBADMSG, NULL);     /* empty instance key */
        expect_snap("snap.foo.bar (enforce", 21, -EBADMSG, NULL);
        expect_snap("snap.foo.b/ar (enforce)", 23, -EBADMSG, NULL);
        expect_snap("snap.foo.bar(enforce)", 21, -EBADMSG, NULL);
        expect_snap(NULL, 0, -ENOENT, NULL);
}

static void test_snap_unit(void **state) {
        assert_true(pcpd_snap_unit_matches("snap.firefox.firefox-0f1e2d3c.scope", "firefox"));
        assert_true(pcpd_snap_unit_matches("snap.lxd.daemon.service", "lxd"));
        assert_false(pcpd_snap_unit_matches("snap.lxdx.daemon.service", "lxd"));
        assert_false(pcpd_snap_unit_matches("snap.lxd.daemon.slice", "lxd"));
        assert_false(pcpd_snap_unit_matches("snap.lxd.", "lxd"));
        assert_false(pcpd_snap_unit_matches("app-snap.lxd.daemon.scope", "lxd"));
        assert_false(pcpd_snap_unit_matches(NULL, "lxd"));
        assert_false(pcpd_snap_unit_matches("snap.lxd.daemon.service", ""));
}

static void test_proc_stat(void **state) {
        static const char stat_line[] = "4242 (we ird) S) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 "
                                        "987654 12345678 300 18446744073709551615\n";
        g_autofree char *self = NULL;
        uint64_t t = 0;
        gsize len;

        assert_int_equal(pcpd_proc_stat_starttime(stat_line, strlen(stat_line), &t), 0);
        assert_int_equal(t, 987654);
        assert_int_equal(pcpd_proc_stat_starttime("1 (x) S 1", 9, &t), -EBADMSG);
        /* found by tests/fuzz/fuzz-caller: the overflow check refused the last six values
         * of the range; the largest value is read, one more is refused */
        {
                static const char max[] = "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 18446744073709551615 20\n";
                static const char over[] = "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 18446744073709551616 20\n";

                assert_int_equal(pcpd_proc_stat_starttime(max, strlen(max), &t), 0);
                assert_true(t == UINT64_MAX);
                assert_int_equal(pcpd_proc_stat_starttime(over, strlen(over), &t), -EBADMSG);
        }
        assert_int_equal(pcpd_proc_stat_starttime("no parenthesis", 14, &t), -EBADMSG);
        assert_int_equal(pcpd_proc_stat_starttime("", 0, &t), -EBADMSG);
        /* this process: started after boot, not after now */
        assert_true(g_file_get_contents("/proc/self/stat", &self, &len, NULL));
        assert_int_equal(pcpd_proc_stat_starttime(self, len, &t), 0);
        assert_true(t <= pcpd_boottime_ticks());
}

static void test_proc_status(void **state) {
        static const char status[] = "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1001\t1002\t1003\n"
                                     "Gid:\t1000\t1000\t1000\t1000\n";
        g_autofree char *self = NULL;
        uid_t u = 0;
        gsize len;

        assert_int_equal(pcpd_proc_status_euid(status, strlen(status), &u), 0);
        assert_int_equal(u, 1001);
        assert_int_equal(pcpd_proc_status_euid("Uid:\t1\n", 7, &u), -EBADMSG);
        assert_int_equal(pcpd_proc_status_euid("Uid:\tx\ty\n", 10, &u), -EBADMSG);
        assert_int_equal(pcpd_proc_status_euid("Uid:\t1\t99999999999\n", 20, &u), -EBADMSG);
        assert_int_equal(pcpd_proc_status_euid("Gid:\t1\t2\n", 10, &u), -EBADMSG);
        assert_true(g_file_get_contents("/proc/self/status", &self, &len, NULL));
        assert_int_equal(pcpd_proc_status_euid(self, len, &u), 0);
        assert_int_equal(u, geteuid());
}

/* The units of this process and of PID 1 as systemd's own library tells them. */
static void test_units_agree_with_libsystemd(void **state) {
        const pid_t pids[] = { getpid(), 1 };

        for (size_t i = 0; i < G_N_ELEMENTS(pids); i++) {
                g_autofree char *file = g_strdup_printf("/proc/%d/cgroup", (int) pids[i]);
                g_autofree char *data = NULL, *path = NULL, *unit = NULL, *user_unit = NULL;
                char *sd_unit = NULL, *sd_user_unit = NULL;
                gsize len;
                int r;

                if (!g_file_get_contents(file, &data, &len, NULL) || pcpd_cgroup_parse(data, len, &path) < 0)
                        continue;
                pcpd_cgroup_path_units(path, &unit, &user_unit);
                r = sd_pid_get_unit(pids[i], &sd_unit);
                if (r >= 0) {
                        assert_non_null(unit);
                        assert_string_equal(unit, sd_unit);
                }
                r = sd_pid_get_user_unit(pids[i], &sd_user_unit);
                if (r >= 0) {
                        assert_non_null(user_unit);
                        assert_string_equal(user_unit, sd_user_unit);
                }
                free(sd_unit);
                free(sd_user_unit);
        }
}

/* ---- a real process with a root of its own (needs root: chroot) ---- */

typedef struct fake_root {
        char *dir;
        pid_t child;
} fake_root;

/* A child that lives in dir (chroot) until killed. */
static pid_t spawn_in_root(const char *dir, uid_t uid) {
        int pipefd[2];
        pid_t pid;
        char c;

        assert_int_equal(pipe(pipefd), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* never outlive the test, nor hold its output open (a failed assertion
                 * does not get to kill it) */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                (void) dup2(open("/dev/null", O_RDWR | O_CLOEXEC), STDOUT_FILENO);
                (void) dup2(STDOUT_FILENO, STDERR_FILENO);
                close(pipefd[0]);
                if (chroot(dir) < 0 || chdir("/") < 0 || setgid(uid) < 0 || setuid(uid) < 0)
                        _exit(1);
                (void) !write(pipefd[1], "x", 1);
                close(pipefd[1]);
                for (;;)
                        pause();
        }
        close(pipefd[1]);
        assert_int_equal(read(pipefd[0], &c, 1), 1);
        close(pipefd[0]);
        return pid;
}

static void reap(pid_t pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

static void detect(pid_t pid, uid_t uid, uint64_t ticks, const char *want_id, const char *want_source) {
        g_autofree char *id = NULL;
        const char *source = NULL;

        pcpd_caller_detect_app(pid, uid, NULL, ticks, &id, &source);
        assert_string_equal(source, want_source);
        if (want_id == NULL)
                assert_null(id);
        else
                assert_string_equal(id, want_id);
}

static void test_detect_flatpak_root(void **state) {
        g_autofree char *dir = NULL, *info = NULL, *outside = NULL;
        pid_t child;

        if (geteuid() != 0) {
                skip(); /* chroot() needs root; CI runs this as root */
                return;
        }
        dir = g_dir_make_tmp("pcpd-test-caller-XXXXXX", NULL);
        assert_non_null(dir);
        assert_int_equal(chmod(dir, 0755), 0);
        info = g_build_filename(dir, ".flatpak-info", NULL);
        assert_true(g_file_set_contents(info, "[Application]\nname=org.example.Sandboxed\n", -1, NULL));

        /* as the user the bus says the caller is (nobody) */
        child = spawn_in_root(dir, 65534);
        detect(child, 65534, pcpd_boottime_ticks(), "org.example.Sandboxed", "flatpak");
        /* another user than the bus says: not the caller's process */
        detect(child, 12345, pcpd_boottime_ticks(), NULL, "none");
        /* a process that started after the call came (its pid was reused): not the caller */
        detect(child, 65534, 1, NULL, "none");
        reap(child);
        /* gone: nothing */
        detect(child, 65534, pcpd_boottime_ticks(), NULL, "none");

        /* a symbolic link would be followed in pcpd's root, not the caller's: ignored */
        outside = g_build_filename(dir, "real-info", NULL);
        assert_true(g_file_set_contents(outside, "[Application]\nname=org.example.Linked\n", -1, NULL));
        assert_int_equal(unlink(info), 0);
        assert_int_equal(symlink("real-info", info), 0);
        child = spawn_in_root(dir, 65534);
        detect(child, 65534, pcpd_boottime_ticks(), NULL, "none");
        reap(child);

        /* not an id: ignored */
        assert_int_equal(unlink(info), 0);
        assert_true(g_file_set_contents(info, "[Application]\nname=../../etc\n", -1, NULL));
        child = spawn_in_root(dir, 65534);
        detect(child, 65534, pcpd_boottime_ticks(), NULL, "none");
        reap(child);

        /* a directory, not a file: ignored */
        assert_int_equal(unlink(info), 0);
        assert_int_equal(mkdir(info, 0755), 0);
        child = spawn_in_root(dir, 65534);
        detect(child, 65534, pcpd_boottime_ticks(), NULL, "none");
        reap(child);

        assert_int_equal(rmdir(info), 0);
        assert_int_equal(unlink(outside), 0);
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_flatpak_id),     cmocka_unit_test(test_flatpak_info),
                cmocka_unit_test(test_cgroup_file),    cmocka_unit_test(test_cgroup_units),
                cmocka_unit_test(test_apparmor_label), cmocka_unit_test(test_snap_unit),
                cmocka_unit_test(test_proc_stat),      cmocka_unit_test(test_proc_status),
                cmocka_unit_test(test_units_agree_with_libsystemd),
                cmocka_unit_test(test_detect_flatpak_root),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
