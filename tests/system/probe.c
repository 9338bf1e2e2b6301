/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * pcpd-test-probe: tries, from inside a process, what a sandbox should forbid, and
 * prints one "key=value" line per try. The system tests (tests/system/run.sh) run it
 * in pcpd.service's own sandbox (as an ExecStartPost= of the unit: same user, same
 * namespaces, same seccomp filter) and, as the control, as an unprivileged user in a
 * plain unit; a setting is proven when the two answers differ the right way.
 *
 *   pcpd-test-probe [--leave-shm] [--udp ADDR ...]
 *
 * Values are "ok" or the errno name (EROFS, EPERM, EAFNOSUPPORT, ...), or a number,
 * or a signal name (SIGSYS) for a child that was killed. --udp sends one datagram
 * to ADDR port 9 (the peer of the tests counts what arrives).
 *
 * The directories it writes to (/etc/pcpd-test-rw, ...) are made by the test, owned by
 * the probe's user: a write can then only fail because of the sandbox.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static const char *err_name(int e) {
        switch (e) {
        case 0:
                return "ok";
        case EPERM:
                return "EPERM";
        case EACCES:
                return "EACCES";
        case EROFS:
                return "EROFS";
        case ENOENT:
                return "ENOENT";
        case EAFNOSUPPORT:
                return "EAFNOSUPPORT";
        case EINVAL:
                return "EINVAL";
        case ENOSYS:
                return "ENOSYS";
        case ENOTDIR:
                return "ENOTDIR";
        case EEXIST:
                return "EEXIST";
        case EPROTONOSUPPORT:
                return "EPROTONOSUPPORT";
        case ESOCKTNOSUPPORT:
                return "ESOCKTNOSUPPORT";
        case EOPNOTSUPP:
                return "EOPNOTSUPP";
        default: {
                static char buf[32];
                snprintf(buf, sizeof(buf), "errno%d", e);
                return buf;
        }
        }
}

static void put(const char *key, const char *value) {
        printf("%s=%s\n", key, value);
}

static void put_errno(const char *key, int r) {
        put(key, err_name(r < 0 ? errno : 0));
}

/* create, then remove, a file in dir */
static void try_write(const char *key, const char *dir) {
        char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/probe-%d", dir, (int) getpid());
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
                put_errno(key, -1);
                return;
        }
        close(fd);
        unlink(path);
        put(key, "ok");
}

static void status_fields(void) {
        static const char *const keys[] = { "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
                                            "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters" };
        char line[512];
        FILE *f = fopen("/proc/self/status", "re");

        if (f == NULL) {
                put_errno("status", -1);
                return;
        }
        while (fgets(line, sizeof(line), f)) {
                char *colon = strchr(line, ':'), *v;
                if (colon == NULL)
                        continue;
                *colon = '\0';
                for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
                        if (strcmp(line, keys[i]) == 0) {
                                v = colon + 1;
                                v += strspn(v, " \t");
                                v[strcspn(v, "\n")] = '\0';
                                v[strcspn(v, "\n")] = '\0';
                                for (size_t n = strlen(v); n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'); n--)
                                        v[n - 1] = '\0';
                                for (char *t = v; *t; t++) /* "1000\t1000\t..." -> "1000,1000,..." */
                                        if (*t == '\t' || *t == ' ')
                                                *t = ',';
                                printf("%s=%s\n", keys[i], *v ? v : "-");
                        }
        }
        fclose(f);
}

/* "ro" or "rw": the options of the mount that holds path (the last one in mountinfo
 * whose mount point is a prefix of path) */
static void mount_mode(const char *key, const char *path) {
        char line[4096], best[4096] = "";
        size_t best_len = 0;
        FILE *f = fopen("/proc/self/mountinfo", "re");

        if (f == NULL) {
                put_errno(key, -1);
                return;
        }
        while (fgets(line, sizeof(line), f)) {
                char mnt[2048], opts[512];
                size_t n;
                /* id parent major:minor root mount-point options ... */
                if (sscanf(line, "%*s %*s %*s %*s %2047s %511s", mnt, opts) != 2)
                        continue;
                n = strlen(mnt);
                if (strncmp(path, mnt, n) == 0 && (path[n] == '\0' || path[n] == '/' || n == 1) && n >= best_len) {
                        best_len = n;
                        snprintf(best, sizeof(best), "%s", opts);
                }
        }
        fclose(f);
        put(key, strncmp(best, "ro", 2) == 0 && (best[2] == ',' || best[2] == '\0') ? "ro" : "rw");
}

static void try_socket(const char *key, int family, int type) {
        int fd = socket(family, type | SOCK_CLOEXEC, 0);

        put_errno(key, fd);
        if (fd >= 0)
                close(fd);
}

/* an i386 system call (getpid through int 0x80) in a child: SystemCallArchitectures=native
 * kills it or makes it fail */
static void try_foreign_arch(void) {
#if defined(__x86_64__)
        pid_t pid = fork();
        int st;

        if (pid == 0) {
                long ret;
                __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
                _exit(ret > 0 ? 0 : 1);
        }
        if (pid < 0 || waitpid(pid, &st, 0) < 0) {
                put_errno("i386_syscall", -1);
                return;
        }
        if (WIFSIGNALED(st))
                put("i386_syscall", WTERMSIG(st) == SIGSYS ? "SIGSYS" : "signal");
        else
                put("i386_syscall", WEXITSTATUS(st) == 0 ? "ok" : "failed");
#else
        put("i386_syscall", "n/a");
#endif
}

static void try_udp(const char *addr) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(9) };
        char key[64];
        int fd, r;

        snprintf(key, sizeof(key), "udp_%s", addr);
        if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
                put(key, "bad-address");
                return;
        }
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                put_errno(key, fd);
                return;
        }
        r = (int) sendto(fd, "pcpd-test-probe", 15, 0, (struct sockaddr *) &sa, sizeof(sa));
        put_errno(key, r);
        close(fd);
}

int main(int argc, char **argv) {
        const char *state = getenv("STATE_DIRECTORY");
        char path[512];
        struct stat st;
        void *p;
        int fd, r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        status_fields();

        /* the file system */
        try_write("write_etc", "/etc/pcpd-test-rw");
        try_write("write_usr", "/usr/local/pcpd-test-rw");
        try_write("write_var", "/var/lib/pcpd-test-rw");
        try_write("write_home", "/home/pcpd-test-rw");
        try_write("write_tmp", "/tmp");
        try_write("write_var_tmp", "/var/tmp");
        if (state != NULL) {
                try_write("write_state", state);
                snprintf(path, sizeof(path), "%s/probe-umask", state);
                fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
                if (fd >= 0 && fstat(fd, &st) == 0)
                        printf("umask_file_mode=%04o\n", st.st_mode & 07777);
                if (fd >= 0) {
                        /* RestrictSUIDSGID=: a set-user-id bit on one's own file */
                        r = fchmod(fd, 04700);
                        put_errno("chmod_suid", r);
                        close(fd);
                }
                unlink(path);
        }
        r = access("/tmp/pcpd-test-marker", F_OK);
        put_errno("tmp_marker", r);
        r = access("/home/pcpd-test-rw", F_OK);
        put_errno("home_visible", r);
        r = access("/usr/lib/modules/pcpd-test", F_OK);
        put_errno("modules_visible", r);
        r = access("/dev/kmsg", F_OK);
        put_errno("dev_kmsg", r);
        r = access("/dev/net/tun", F_OK);
        put_errno("dev_net_tun", r);
        r = access("/dev/null", F_OK);
        put_errno("dev_null", r);
        r = access("/proc/meminfo", F_OK);
        put_errno("proc_meminfo", r);
        r = access("/proc/1/cgroup", R_OK);
        put_errno("proc_pid1_cgroup", r);
        mount_mode("mount_root", "/");
        mount_mode("mount_usr", "/usr");
        mount_mode("mount_etc", "/etc");
        mount_mode("mount_sys", "/sys");
        mount_mode("mount_cgroup", "/sys/fs/cgroup");
        if (state != NULL)
                mount_mode("mount_state", state);

        /* system calls */
        r = (int) syscall(SYS_modify_ldt, 0, path, 16); /* @cpu-emulation: not @system-service */
        put_errno("modify_ldt", r);
        {
                /* @debug, not in @system-service (and allowed in the container): being
                 * traced, in a child */
                int wst;
                pid_t pid = fork();
                if (pid == 0)
                        _exit(syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0) < 0 ? errno : 0);
                if (pid > 0 && waitpid(pid, &wst, 0) == pid && WIFEXITED(wst))
                        put("ptrace_traceme", err_name(WEXITSTATUS(wst)));
                else
                        put("ptrace_traceme", "?");
        }
        r = setpriority(PRIO_PROCESS, 0, 19); /* @resources, removed by ~@resources */
        put_errno("setpriority", r);
        r = personality(PER_LINUX | ADDR_NO_RANDOMIZE); /* LockPersonality= */
        put_errno("personality", r);
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        put_errno("mmap_wx", p == MAP_FAILED ? -1 : 0);
        if (p != MAP_FAILED)
                munmap(p, 4096);
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
                r = mprotect(p, 4096, PROT_READ | PROT_EXEC);
                put_errno("mprotect_x", r);
                munmap(p, 4096);
        }
        {
                /* RestrictNamespaces=, in a child: the probe itself stays where it is */
                int wst;
                pid_t pid = fork();
                if (pid == 0)
                        _exit(unshare(CLONE_NEWUSER) < 0 ? errno : 0);
                if (pid > 0 && waitpid(pid, &wst, 0) == pid && WIFEXITED(wst))
                        put("unshare_user", err_name(WEXITSTATUS(wst)));
                else
                        put("unshare_user", "?");
        }
        if (geteuid() == 0) {
                /* root could really do these two: not here */
                put("sched_fifo", "skipped-root");
                put("clock_settime", "skipped-root");
        } else {
                struct sched_param sp = { .sched_priority = 1 };
                r = sched_setscheduler(0, SCHED_FIFO, &sp);
                put_errno("sched_fifo", r);

                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                r = clock_settime(CLOCK_REALTIME, &ts);
                put_errno("clock_settime", r);
        }
        r = (int) syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
        put_errno("syslog", r);
        r = (int) syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
        if (r >= 0) {
                char desc[256] = "";
                long n = syscall(SYS_keyctl, 6 /* KEYCTL_DESCRIBE */, r, desc, sizeof(desc) - 1);
                /* "type;uid;gid;perm;name" */
                put("session_keyring", n > 0 ? (strrchr(desc, ';') ? strrchr(desc, ';') + 1 : desc) : "?");
        } else
                put_errno("session_keyring", r);
        try_foreign_arch();

        /* RemoveIPC=: with --leave-shm, a SysV segment left behind on purpose; the test
         * looks for it after the unit stops */
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--leave-shm") == 0) {
                        r = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
                        put_errno("shmget", r);
                }

        /* address families */
        try_socket("af_inet", AF_INET, SOCK_DGRAM);
        try_socket("af_inet6", AF_INET6, SOCK_DGRAM);
        try_socket("af_unix", AF_UNIX, SOCK_DGRAM);
        try_socket("af_netlink", AF_NETLINK, SOCK_DGRAM);
        try_socket("af_packet", AF_PACKET, SOCK_DGRAM);
        try_socket("af_vsock", AF_VSOCK, SOCK_STREAM); /* open to any user without the sandbox */

        for (int i = 1; i + 1 < argc; i++)
                if (strcmp(argv[i], "--udp") == 0)
                        try_udp(argv[++i]);
        put("done", "1");
        return 0;
}
