/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-daemon: pcpd measured through its D-Bus API, the way applications use it.
 *
 *   bench-daemon [OPTIONS] PHASE...
 *   bench-daemon [OPTIONS] exec -- COMMAND...
 *
 * Every phase gets a fresh set of processes, all started here and killed by PID at the
 * end: a private system-type dbus-daemon (tests/data/test-system-bus.conf.in with the
 * project's policy, as the bus tests use it), a PCP server on a unique loopback address,
 * and pcpd itself (optionally under valgrind's callgrind). The client runs as root, so
 * pcpd asks no polkit: what is measured is pcpd and the bus, not an authority.
 *
 * The server is either the reference server (tests/refserver/pcp-refserver, --server
 * refserver) or, by default, a stateless responder forked from this program: the
 * reference server keeps at most REFSRV_MAX_MAPPINGS (4096) mappings and scans its table
 * linearly, so it cannot hold 10,000 or 131,070. The responder grants what is asked
 * (external port = internal port) at once, from a socket with a 16 MiB receive buffer.
 *
 * Phases (see bench/README.md for what each one reports and why):
 *   seq      N pings, then N mappings one after another (AddMapping, State "active",
 *            Release, MappingRemoved); per-ping and per-mapping latency, pcpd and
 *            dbus-daemon CPU, and with --measure callgrind|strace pcpd's instructions or
 *            system calls in each window (an idle window of the same length is measured
 *            too, to subtract)
 *   burst    N (10,000) pipelined pings, then N AddMapping calls at once, over C (20)
 *            connections with at most W (100) calls in flight on each; time until every
 *            mapping is active, refused calls, drops, RSS
 *   all      the same with 131,070 mappings: every TCP and UDP port
 *   stall    H (30,000) mappings held; pings one after another while one mapping is
 *            added and released: the longest ping is the longest stall of pcpd's loop,
 *            the bus's backlog and any wait of the bench's for a core;
 *            then while holders leave the bus (their connections closed): one holding 1
 *            mapping, one holding K (1,000), and D (100) holding 1 each at once, with
 *            pcpd's bus socket sampled: the longest time a call waited there unread is
 *            pcpd's loop alone
 *   idle     pcpd with no mappings for 10 s: CPU, context switches, system calls
 *   renew    M (200) mappings on a server that grants a short lifetime: system calls,
 *            instructions and signals per renewal
 *   pcpctl   `pcpctl map udp P --wait --persistent` and `pcpctl status` as whole
 *            processes, next to /bin/true and `busctl call ... Ping`
 *   exec     runs COMMAND with DBUS_SYSTEM_BUS_ADDRESS, PCPD_PID and BENCH_TMP set,
 *            for measurements done from the shell (hyperfine, strace, LD_DEBUG)
 *
 * With --nm mock, NetworkManager is on the bus before pcpd starts: python3-dbusmock's
 * template as tests/nm/nmmock.py extends it ("serve": one device with DHCPv4 and DHCPv6
 * leases that announce no PCP server), so pcpd loads pcpd-nm.so and libnm reads its
 * objects, as on a host where NetworkManager runs. Every phase then measures pcpd with the
 * module loaded; the PCP server is the same configured one.
 *
 * Results are printed as "RESULT phase.key value" lines (for run-daemon-bench.sh) and
 * in words. Benchmarks are not tests: nothing here asserts a figure; the run fails only
 * when it cannot do what it measures (a mapping that never becomes active, a process
 * that dies).
 */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "pcp-engine.h"
#include "pcp-wire.h"
#include "pcp1-contract.h"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define SEC ((uint64_t) 1000000000)
#define MAX_CONNS 64
#define EXTERNAL "198.51.100.7"
#define SERVER_PORT 15351
#define CALL_TIMEOUT_USEC (900ULL * 1000000ULL) /* 131,070 calls wait behind each other today */
#define BUS_DRIVER "org.freedesktop.DBus"

/* ---- options ---- */

typedef enum measure {
        MEASURE_NONE,
        MEASURE_CALLGRIND,
        MEASURE_STRACE,
        MEASURE_MASSIF, /* pcpd under valgrind's heap profiler; the profile is kept at the end */
} measure;

static struct {
        const char *build, *source, *out_dir;
        bool refserver;
        measure measure;
        bool monitor, keep, verbose, trim_probe, restart, release;
        bool no_net_admin; /* pcpd without CAP_NET_ADMIN, as under the shipped unit */
        bool nm_mock; /* --nm mock: NetworkManager (dbusmock) on the bus before pcpd */
        unsigned nm_devices;
        unsigned settle_seconds; /* burst/all: RSS again this long after all are active */
        const char **pcpd_env; /* --pcpd-env NAME=VALUE..., NULL-terminated pairs */
        size_t n_pcpd_env;
        unsigned pcpd_rcvbuf; /* 0, or the net.core.rmem_max to emulate on pcpd's UDP sockets */
        unsigned n_seq, n_burst, n_all, n_hold, n_renew, n_pcpctl;
        unsigned n_leave_many, n_leavers; /* stall: mappings of the one holder of many; holders leaving at once */
        bool ping_thread; /* stall: the pinger in a thread of its own, on a connection of its own */
        bool rt; /* stall: SCHED_FIFO after the hold, the bench above what it measures */
        const char *leave_trace; /* stall: a timeline of each case of holders leaving, PREFIX.KEY.csv */
        unsigned conns, window;
        unsigned lifetime_cap, renew_seconds, idle_seconds;
        char **exec_argv;
} opt = {
        .build = BENCH_BUILD_ROOT,
        .source = BENCH_SOURCE_ROOT,
        .n_seq = 1000,
        .n_burst = 10000,
        .n_all = 131070,
        .n_hold = 30000,
        .n_leave_many = 1000,
        .n_leavers = 100,
        .n_renew = 200,
        .n_pcpctl = 30,
        .nm_devices = 1,
        .conns = 20,
        .window = 100,
        .lifetime_cap = 8,
        .renew_seconds = 20,
        .idle_seconds = 10,
};

/* ---- small helpers ---- */

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * SEC + (uint64_t) ts.tv_nsec;
}

static double ms(uint64_t ns) {
        return (double) ns / 1e6;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static char *tmp_dir;
static void env_kill_all(void);

static void die(const char *fmt, ...) {
        va_list ap;

        fputs("bench-daemon: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        env_kill_all();
        exit(1);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                die("out of memory");
        va_end(ap);
        return s;
}

static void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n, size);
        if (p == NULL)
                die("out of memory");
        return p;
}

static char *read_file(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t cap = 0, len = 0;

        if (f == NULL)
                return NULL;
        for (;;) {
                if (len + 4096 + 1 > cap) {
                        cap = (cap + 4096) * 2;
                        buf = realloc(buf, cap);
                        if (buf == NULL)
                                die("out of memory");
                }
                size_t k = fread(buf + len, 1, cap - len - 1, f);
                len += k;
                if (k == 0)
                        break;
        }
        fclose(f);
        buf[len] = '\0';
        return buf;
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
                die("cannot write %s: %m", path);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

typedef struct dist {
        double median, p90, p99, max, min;
        size_t n;
} dist;

static dist dist_of(uint64_t *v, size_t n) {
        dist d = {.n = n};

        if (n == 0)
                return d;
        qsort(v, n, sizeof(*v), cmp_u64);
        d.min = ms(v[0]);
        d.median = n % 2 ? ms(v[n / 2]) : (ms(v[n / 2 - 1]) + ms(v[n / 2])) / 2;
        d.p90 = ms(v[(n * 90) / 100 < n ? (n * 90) / 100 : n - 1]);
        d.p99 = ms(v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1]);
        d.max = ms(v[n - 1]);
        return d;
}

static const char *phase_name = "none";

static void result(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void result(const char *key, const char *fmt, ...) {
        va_list ap;

        printf("RESULT %s.%s ", phase_name, key);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
        va_list ap;

        printf("  ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

/* ---- /proc: CPU, memory, context switches, UDP drops of another process ---- */

/* CPU time of every thread of pid, in ns: se.sum_exec_runtime (µs resolution) where the
 * kernel has it, else utime + stime in clock ticks (10 ms). */
static uint64_t proc_cpu_ns(pid_t pid) {
        char *path = xasprintf("/proc/%d/task", (int) pid);
        DIR *d = opendir(path);
        struct dirent *de;
        uint64_t total = 0;
        bool have_sched = true;

        free(path);
        if (d == NULL)
                return 0;
        while ((de = readdir(d)) != NULL) {
                char *p, *text, *s;
                if (de->d_name[0] == '.')
                        continue;
                p = xasprintf("/proc/%d/task/%s/sched", (int) pid, de->d_name);
                text = read_file(p);
                free(p);
                s = text != NULL ? strstr(text, "se.sum_exec_runtime") : NULL;
                if (s != NULL && (s = strchr(s, ':')) != NULL)
                        total += (uint64_t) (strtod(s + 1, NULL) * 1e6);
                else
                        have_sched = false;
                free(text);
        }
        closedir(d);
        if (!have_sched) {
                char *p = xasprintf("/proc/%d/stat", (int) pid), *text = read_file(p), *s;
                unsigned long ut = 0, st = 0;
                free(p);
                s = text != NULL ? strrchr(text, ')') : NULL;
                /* after the command: state ppid pgrp session tty tpgid flags minflt cminflt
                 * majflt cmajflt utime stime */
                if (s != NULL &&
                    sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
                        total = (uint64_t) (ut + st) * (SEC / (uint64_t) sysconf(_SC_CLK_TCK));
                free(text);
        }
        return total;
}

static unsigned long proc_status_field(pid_t pid, const char *field) {
        char *p = xasprintf("/proc/%d/status", (int) pid), *text = read_file(p), *s;
        unsigned long v = 0;

        free(p);
        if (text != NULL && (s = strstr(text, field)) != NULL)
                v = strtoul(s + strlen(field) + 1, NULL, 10);
        free(text);
        return v;
}

/* voluntary + involuntary context switches of every thread: each voluntary one is a
 * wake-up after blocking */
static uint64_t proc_ctxt(pid_t pid, uint64_t *ret_voluntary) {
        char *path = xasprintf("/proc/%d/task", (int) pid);
        DIR *d = opendir(path);
        struct dirent *de;
        uint64_t vol = 0, invol = 0;

        free(path);
        if (d == NULL)
                return 0;
        while ((de = readdir(d)) != NULL) {
                char *p, *text, *s;
                if (de->d_name[0] == '.')
                        continue;
                p = xasprintf("/proc/%d/task/%s/status", (int) pid, de->d_name);
                text = read_file(p);
                free(p);
                if (text != NULL && (s = strstr(text, "\nvoluntary_ctxt_switches:")) != NULL)
                        vol += strtoull(s + 25, NULL, 10);
                if (text != NULL && (s = strstr(text, "nonvoluntary_ctxt_switches:")) != NULL)
                        invol += strtoull(s + 27, NULL, 10);
                free(text);
        }
        closedir(d);
        if (ret_voluntary != NULL)
                *ret_voluntary = vol;
        return vol + invol;
}

/* Datagrams the kernel dropped on pid's UDP sockets (receive buffer full): the "drops"
 * column of /proc/PID/net/udp{,6} for the socket inodes pid has open. */
static uint64_t proc_udp_drops(pid_t pid) {
        char *path = xasprintf("/proc/%d/fd", (int) pid);
        DIR *d = opendir(path);
        struct dirent *de;
        unsigned long inodes[64];
        size_t n = 0;
        uint64_t drops = 0;

        free(path);
        if (d == NULL)
                return 0;
        while ((de = readdir(d)) != NULL && n < ELEMENTSOF(inodes)) {
                char link[64], *p = xasprintf("/proc/%d/fd/%s", (int) pid, de->d_name);
                ssize_t k = readlink(p, link, sizeof(link) - 1);
                free(p);
                if (k > 0) {
                        link[k] = '\0';
                        if (strncmp(link, "socket:[", 8) == 0)
                                inodes[n++] = strtoul(link + 8, NULL, 10);
                }
        }
        closedir(d);
        for (int v6 = 0; v6 < 2; v6++) {
                char *p = xasprintf("/proc/%d/net/udp%s", (int) pid, v6 ? "6" : "");
                char *text = read_file(p), *line, *save = NULL;
                free(p);
                if (text == NULL)
                        continue;
                for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
                        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops */
                        char *tok[16], *s2 = NULL;
                        size_t k = 0;
                        for (char *t = strtok_r(line, " ", &s2); t != NULL && k < ELEMENTSOF(tok);
                             t = strtok_r(NULL, " ", &s2))
                                tok[k++] = t;
                        if (k < 13 || strcmp(tok[0], "sl") == 0)
                                continue;
                        unsigned long inode = strtoul(tok[9], NULL, 10);
                        for (size_t i = 0; i < n; i++)
                                if (inodes[i] == inode)
                                        drops += strtoull(tok[12], NULL, 10);
                }
                free(text);
        }
        return drops;
}

/* What pcpd's UDP sockets got as receive buffer (the kernel's doubled figure) and whether
 * pcpd holds CAP_NET_ADMIN. With --pcpd-rcvbuf B, a buffer larger than 2 × B is set to
 * 2 × B from here (pidfd_getfd(): the same socket), which is what SO_RCVBUF gives pcpd
 * without CAP_NET_ADMIN on a kernel whose net.core.rmem_max is B; the sysctl itself is
 * global (not per network namespace) and the machine is shared, so it is not changed. */
static void pcpd_sockets_check(pid_t pid) {
        char *path = xasprintf("/proc/%d/status", (int) pid), *status = read_file(path), *cap;
        unsigned long long eff = 0;
        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        int largest = -1;
        DIR *d;
        struct dirent *de;

        free(path);
        if (status != NULL && (cap = strstr(status, "CapEff:")) != NULL)
                eff = strtoull(cap + 7, NULL, 16);
        free(status);
        result("pcpd_cap_net_admin", "%d", (int) ((eff >> 12) & 1)); /* CAP_NET_ADMIN = 12 */
        if (pidfd < 0) {
                note("pidfd_open(pcpd): %s; its receive buffers are not read", strerror(errno));
                return;
        }
        path = xasprintf("/proc/%d/fd", (int) pid);
        d = opendir(path);
        free(path);
        while (d != NULL && (de = readdir(d)) != NULL) {
                int fd, type = 0, buf = 0, buf2 = 0;
                struct sockaddr_storage sa;
                socklen_t l = sizeof(type), la = sizeof(sa);
                if (de->d_name[0] == '.')
                        continue;
                fd = (int) syscall(SYS_pidfd_getfd, pidfd, atoi(de->d_name), 0);
                if (fd < 0)
                        continue;
                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 && type == SOCK_DGRAM &&
                    getsockname(fd, (struct sockaddr *) &sa, &la) == 0 &&
                    (sa.ss_family == AF_INET || sa.ss_family == AF_INET6)) {
                        l = sizeof(buf);
                        getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, &l);
                        buf2 = buf;
                        if (opt.pcpd_rcvbuf > 0 && (unsigned) buf > 2u * opt.pcpd_rcvbuf) {
                                int v = (int) opt.pcpd_rcvbuf;
                                if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
                                        die("SO_RCVBUFFORCE on pcpd's socket: %m");
                                l = sizeof(buf2);
                                getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf2, &l);
                        }
                        if (buf2 != buf)
                                note("pcpd UDP socket fd %s: receive buffer %d, set from here to %d", de->d_name,
                                     buf, buf2);
                        else
                                note("pcpd UDP socket fd %s: receive buffer %d", de->d_name, buf);
                        if (buf2 > largest)
                                largest = buf2;
                }
                close(fd);
        }
        if (d != NULL)
                closedir(d);
        close(pidfd);
        result("pcpd_udp_rcvbuf_largest", "%d", largest);
}

/* ---- child processes ---- */

static pid_t spawn(const char *const *argv, const char *out_path, const char *const *env_add) {
        pid_t pid = fork();

        if (pid < 0)
                die("fork: %m");
        if (pid == 0) {
                /* the bench dies (^C, a crash): so does everything it started */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (out_path != NULL) {
                        int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                        if (fd >= 0) {
                                dup2(fd, 1);
                                dup2(fd, 2);
                        }
                }
                for (size_t i = 0; env_add != NULL && env_add[i] != NULL; i += 2)
                        setenv(env_add[i], env_add[i + 1], 1);
                execvp(argv[0], (char *const *) argv);
                fprintf(stderr, "cannot run %s: %m\n", argv[0]);
                _exit(127);
        }
        return pid;
}

static void stop_process(pid_t *pid, int sig, unsigned timeout_ms) {
        if (*pid <= 0)
                return;
        kill(*pid, sig);
        for (unsigned waited = 0;; waited += 10) {
                pid_t r = waitpid(*pid, NULL, WNOHANG);
                if (r == *pid || (r < 0 && errno == ECHILD))
                        break;
                if (waited >= timeout_ms) {
                        kill(*pid, SIGKILL);
                        waitpid(*pid, NULL, 0);
                        break;
                }
                usleep(10000);
        }
        *pid = 0;
}

/* ---- the stateless responder (a forked child) ---- */

typedef struct responder_stats {
        uint64_t requests, announce, map, map_delete, other, undecodable, sent, send_errors;
} responder_stats;

static uint32_t responder_epoch(uint64_t start) {
        return (uint32_t) (1000 + (now_ns() - start) / SEC);
}

static size_t respond(uint64_t start, uint32_t lifetime_cap, const struct in6_addr *external,
                      const uint8_t *req, size_t len, uint8_t *resp, size_t cap, responder_stats *st) {
        pcp_msg q, r;
        size_t n = 0;

        if (pcp_decode(req, len, false, &q) != PCP_WIRE_OK) {
                st->undecodable++;
                return 0;
        }
        pcp_msg_init(&r, true, q.opcode);
        r.result = PCP_RESULT_SUCCESS;
        r.epoch = responder_epoch(start);
        if (q.opcode == PCP_OPCODE_MAP) {
                if (q.lifetime > 0)
                        st->map++;
                else
                        st->map_delete++;
                r.lifetime = lifetime_cap > 0 && q.lifetime > lifetime_cap ? lifetime_cap : q.lifetime;
                memcpy(r.nonce, q.nonce, PCP_NONCE_LEN);
                r.protocol = q.protocol;
                r.internal_port = q.internal_port;
                r.external_addr = *external;
                r.external_port = q.lifetime > 0 ? q.internal_port : 0;
        } else if (q.opcode == PCP_OPCODE_ANNOUNCE)
                st->announce++;
        else
                st->other++;
        return pcp_encode(&r, resp, cap, &n) == PCP_WIRE_OK ? n : 0;
}

static void responder_run(int fd, uint32_t lifetime_cap, volatile responder_stats *shared) {
        uint64_t start = now_ns();
        struct in6_addr external;
        responder_stats st = {0};

        pcp_addr_from_string(EXTERNAL, &external);
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        _exit(1);
                for (;;) {
                        uint8_t buf[PCP_MAX_MSG_LEN + 4], out[PCP_MAX_MSG_LEN];
                        struct sockaddr_storage from;
                        socklen_t fl = sizeof(from);
                        ssize_t k =
                                recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *) &from, &fl);
                        size_t n;
                        if (k < 0)
                                break;
                        st.requests++;
                        n = respond(start, lifetime_cap, &external, buf, (size_t) k, out, sizeof(out), &st);
                        if (n > 0) {
                                if (sendto(fd, out, n, 0, (struct sockaddr *) &from, fl) < 0)
                                        st.send_errors++;
                                else
                                        st.sent++;
                        }
                }
                /* published per wake-up: the parent reads counters between windows */
                shared->requests = st.requests;
                shared->announce = st.announce;
                shared->map = st.map;
                shared->map_delete = st.map_delete;
                shared->other = st.other;
                shared->undecodable = st.undecodable;
                shared->sent = st.sent;
                shared->send_errors = st.send_errors;
        }
}

/* Forks the stateless responder on ip:SERVER_PORT; its counters in *ret_stats. */
static pid_t responder_start(const char *ip, uint32_t lifetime_cap, volatile responder_stats **ret_stats) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(SERVER_PORT)};
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), big = 16 << 20;
        volatile responder_stats *shared;
        pid_t pid;

        inet_pton(AF_INET, ip, &a.sin_addr);
        if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0)
                die("cannot bind the responder to %s:%u: %m", ip, SERVER_PORT);
        /* never the bottleneck: a receive buffer for every request of a burst */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
        shared = mmap(NULL, sizeof(responder_stats), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                      0);
        if (shared == MAP_FAILED)
                die("mmap: %m");
        pid = fork();
        if (pid < 0)
                die("fork: %m");
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                responder_run(fd, lifetime_cap, shared);
                _exit(0);
        }
        close(fd);
        *ret_stats = shared;
        return pid;
}

/* ---- the environment: bus, server, pcpd ---- */

typedef struct env {
        char *tmp, *address, *ip;
        uint16_t announce_port;
        pid_t bus_pid, server_pid, pcpd_pid, nm_pid;
        volatile responder_stats *rstats;
        char *pcpd_unique;
        char *pcpd_log, *bus_log;
        sd_event *event;
        sd_bus *conn[MAX_CONNS];
        sd_bus *watch, *mon;
        sd_event_source *mon_source;
        unsigned n_dumps;
} env;

static env *the_env;

static void env_kill_all(void) {
        if (the_env == NULL)
                return;
        stop_process(&the_env->pcpd_pid, SIGKILL, 2000);
        /* SIGTERM: the mock's own child (dbusmock) is stopped by it */
        stop_process(&the_env->nm_pid, SIGTERM, 5000);
        stop_process(&the_env->server_pid, SIGKILL, 2000);
        stop_process(&the_env->bus_pid, SIGKILL, 2000);
}

static char *unique_address(void) {
        /* 127.a.b.c from our pid, never 127.0.0.x (pcpdtest.py's scheme: distinct per process) */
        pid_t pid = getpid();
        return xasprintf("127.%d.%d.%d", 100 + (pid >> 16) % 100, (pid >> 8) & 0xff, 2 + (pid & 0xff) % 250);
}

static uint16_t free_udp_port(void) {
        for (int i = 0; i < 100; i++) {
                struct sockaddr_in a = {.sin_family = AF_INET};
                struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
                socklen_t l = sizeof(a);
                int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), s6, one = 1;
                bool ok;

                if (s < 0 || bind(s, (struct sockaddr *) &a, sizeof(a)) < 0 ||
                    getsockname(s, (struct sockaddr *) &a, &l) < 0)
                        die("cannot find a free UDP port: %m");
                close(s);
                s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                a6.sin6_port = a.sin_port;
                ok = s6 >= 0 && setsockopt(s6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0 &&
                     bind(s6, (struct sockaddr *) &a6, sizeof(a6)) == 0;
                if (s6 >= 0)
                        close(s6);
                if (ok)
                        return ntohs(a.sin_port);
        }
        die("no free UDP port");
}

static char *replace_all(const char *text, const char *key, const char *value) {
        size_t kl = strlen(key), vl = strlen(value), n = 0;
        const char *p;
        char *out, *o;

        for (p = text; (p = strstr(p, key)) != NULL; p += kl)
                n++;
        out = xcalloc(strlen(text) + n * vl + 1, 1);
        for (o = out, p = text;;) {
                const char *q = strstr(p, key);
                if (q == NULL) {
                        strcpy(o, p);
                        break;
                }
                memcpy(o, p, (size_t) (q - p));
                o += q - p;
                memcpy(o, value, vl);
                o += vl;
                p = q + kl;
        }
        return out;
}

static sd_bus *bus_connect(const char *address, bool monitor) {
        sd_bus *b = NULL;
        int r = sd_bus_new(&b);

        if (r >= 0)
                r = sd_bus_set_address(b, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(b, true);
        if (r >= 0 && monitor)
                r = sd_bus_set_monitor(b, true);
        if (r >= 0)
                r = sd_bus_start(b);
        if (r < 0)
                die("cannot connect to the bus %s: %s", address, strerror(-r));
        return b;
}

static int name_has_owner(sd_bus *b, const char *name) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int has = 0;

        if (sd_bus_call_method(b, BUS_DRIVER, "/org/freedesktop/DBus", BUS_DRIVER, "NameHasOwner", &e,
                               &reply, "s", name) >= 0)
                (void) sd_bus_message_read(reply, "b", &has);
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);
        return has;
}

static char *get_string_property(sd_bus *b, const char *path, const char *iface, const char *prop) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *v = NULL;

        if (sd_bus_get_property_string(b, PCP1_BUS_NAME, path, iface, prop, &e, &v) < 0)
                v = NULL;
        sd_bus_error_free(&e);
        return v;
}

static bool pid_alive(pid_t pid) {
        return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

static void wait_for(bool (*cond)(env *), env *e, double timeout_s, const char *what) {
        uint64_t end = now_ns() + (uint64_t) (timeout_s * 1e9);

        while (!cond(e)) {
                if (!pid_alive(e->pcpd_pid))
                        die("pcpd died while waiting for %s; its log: %s", what, e->pcpd_log);
                if (now_ns() > end)
                        die("timed out after %.0f s waiting for %s (logs in %s)", timeout_s, what, e->tmp);
                usleep(20000);
        }
}

static bool cond_pcpd_on_bus(env *e) {
        return name_has_owner(e->watch, PCP1_BUS_NAME) > 0;
}

static bool cond_pcpd_ready(env *e) {
        char *s = get_string_property(e->watch, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "State");
        bool ok = s != NULL && strcmp(s, PCP1_STATE_READY) == 0;
        free(s);
        return ok;
}

/* --nm mock: pcpd-nm.so loaded and libnm's client made, NetworkManager's state applied */
static bool cond_pcpd_saw_nm(env *e) {
        char *log = read_file(e->pcpd_log);
        bool seen = log != NULL && strstr(log, "NetworkManager is running") != NULL;

        free(log);
        return seen;
}

static bool file_exists_cond(const char *path) {
        return access(path, F_OK) == 0;
}

typedef struct env_config {
        uint32_t lifetime_cap; /* stateless responder: grant at most this (0: what is asked) */
        bool valgrind; /* pcpd under callgrind, or massif with --measure massif */
} env_config;

/* pcpd started on the environment's bus with its config (path) and its state directory
 * (e->tmp/state): at the start of a phase, and again for --restart */
static pid_t pcpd_spawn(env *e, const env_config *cfg, const char *path) {
        pid_t pid;

        {
                char *exe = xasprintf("%s/daemon/pcpd", opt.build), *state = xasprintf("%s/state", e->tmp);
                char *cg_out = xasprintf("--callgrind-out-file=%s/callgrind.out.%%p", e->tmp);
                const char *plain[] = {exe, "--config", path, "--state-dir", state, NULL};
                char *ms_out = xasprintf("--massif-out-file=%s/massif.out", e->tmp);
                const char *cg[] = {"valgrind", "--tool=callgrind", cg_out, "--dump-instr=no", "--quiet",
                                    exe,        "--config",         path,   "--state-dir",     state,
                                    NULL};
                const char *ms[] = {"valgrind", "--tool=massif", ms_out, "--quiet", exe, "--config",
                                    path,       "--state-dir",   state,  NULL};
                /* the build tree's modules (daemon/pcpd-module.h), not the installed ones */
                char *moddir = xasprintf("%s/daemon", opt.build);
                const char *envv[64] = {"DBUS_SYSTEM_BUS_ADDRESS", e->address, "PCPD_MODULE_DIR", moddir, NULL};
                /* --pcpd-env: allocator and library settings tried on pcpd alone */
                for (size_t i = 0; i < opt.n_pcpd_env && 4 + 2 * i + 2 < ELEMENTSOF(envv); i++) {
                        envv[4 + 2 * i] = opt.pcpd_env[2 * i];
                        envv[4 + 2 * i + 1] = opt.pcpd_env[2 * i + 1];
                        envv[4 + 2 * i + 2] = NULL;
                }
                const char *const *cmd = !cfg->valgrind                  ? plain
                                         : opt.measure == MEASURE_MASSIF ? ms
                                                                         : cg;
                /* --no-net-admin: out of the bounding and inheritable sets, so that root's
                 * exec of pcpd does not get it back (SO_RCVBUFFORCE then fails) */
                const char *argv_nocap[32] = {"setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin",
                                              "--"};
                if (opt.no_net_admin) {
                        size_t j = 4;
                        for (size_t i = 0; cmd[i] != NULL && j + 1 < ELEMENTSOF(argv_nocap); i++)
                                argv_nocap[j++] = cmd[i];
                        argv_nocap[j] = NULL;
                        cmd = argv_nocap;
                }
                pid = spawn(cmd, e->pcpd_log, envv);
                free(moddir);
                free(ms_out);
                free(exe);
                free(state);
                free(cg_out);
        }
        return pid;
}

static env *env_start(const env_config *cfg) {
        env *e = xcalloc(1, sizeof(*e));
        char *tmpl, *conf, *limits, *policy, *path, *text;
        int pipefd[2];
        char addr[512];
        ssize_t k;

        the_env = e;
        e->tmp = strdup("/tmp/pcpd-bench-XXXXXX");
        if (e->tmp == NULL || mkdtemp(e->tmp) == NULL)
                die("mkdtemp: %m");
        chmod(e->tmp, 0755);
        tmp_dir = e->tmp;
        e->ip = unique_address();
        e->announce_port = free_udp_port();
        e->pcpd_log = xasprintf("%s/pcpd.log", e->tmp);
        e->bus_log = xasprintf("%s/bus.log", e->tmp);

        /* the bus: the bus tests' configuration. The {limits} slot gets the bus statistics
         * and monitoring interfaces for root (--monitor counts messages); no limit is raised: 20
         * connections with 100 calls in flight each stay within dbus-daemon's system-bus
         * defaults (max_replies_per_connection 128), and the template already allows 4096
         * connections per user. */
        path = xasprintf("%s/tests/data/test-system-bus.conf.in", opt.source);
        tmpl = read_file(path);
        if (tmpl == NULL)
                die("cannot read %s: %m", path);
        free(path);
        policy = xasprintf("%s/dbus/org.freedesktop.PCP1.conf", opt.source);
        limits = xasprintf("<policy user=\"root\">"
                           "<allow send_destination=\"org.freedesktop.DBus\" "
                           "send_interface=\"org.freedesktop.DBus.Debug.Stats\"/>"
                           "<allow send_destination=\"org.freedesktop.DBus\" "
                           "send_interface=\"org.freedesktop.DBus.Monitoring\"/>%s</policy>",
                           /* --nm mock: root's mock may own NetworkManager's name and be called */
                           opt.nm_mock ? "<allow own=\"org.freedesktop.NetworkManager\"/>"
                                         "<allow send_destination=\"org.freedesktop.NetworkManager\"/>"
                                       : "");
        path = xasprintf("%s/bus.sock", e->tmp);
        conf = replace_all(tmpl, "{socket}", path);
        free(path);
        text = replace_all(conf, "{policy}", policy);
        free(conf);
        conf = replace_all(text, "{limits}", limits);
        free(text);
        path = xasprintf("%s/bus.conf", e->tmp);
        write_file(path, conf);
        free(conf);
        free(tmpl);
        free(limits);
        free(policy);
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                die("pipe: %m");
        {
                char *cf = xasprintf("--config-file=%s", path);
                char *pa = xasprintf("--print-address=%d", 3);
                const char *argv[] = {"dbus-daemon", cf, "--nofork", pa, NULL};
                e->bus_pid = fork();
                if (e->bus_pid < 0)
                        die("fork: %m");
                if (e->bus_pid == 0) {
                        int fd = open(e->bus_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
                        prctl(PR_SET_PDEATHSIG, SIGTERM);
                        if (pipefd[1] == 3)
                                fcntl(3, F_SETFD, 0);
                        else
                                dup2(pipefd[1], 3);
                        if (fd >= 0) {
                                dup2(fd, 1);
                                dup2(fd, 2);
                        }
                        execvp(argv[0], (char *const *) argv);
                        _exit(127);
                }
                free(cf);
                free(pa);
        }
        free(path);
        close(pipefd[1]);
        k = read(pipefd[0], addr, sizeof(addr) - 1);
        close(pipefd[0]);
        if (k <= 0)
                die("dbus-daemon did not start (is dbus-daemon installed?); its log: %s", e->bus_log);
        addr[k] = '\0';
        addr[strcspn(addr, "\n")] = '\0';
        e->address = strdup(addr);

        /* the server */
        if (opt.refserver) {
                char *port = xasprintf("%u", SERVER_PORT), *ap = xasprintf("%u", e->announce_port);
                char *ctl = xasprintf("%s/ref.ctl", e->tmp), *out = xasprintf("%s/ref.out", e->tmp);
                char *exe = xasprintf("%s/tests/refserver/pcp-refserver", opt.build);
                char *maxl = xasprintf("%u", cfg->lifetime_cap ? cfg->lifetime_cap : 86400);
                const char *argv[] = {exe,
                                      "--listen",
                                      e->ip,
                                      "--port",
                                      port,
                                      "--announce-port",
                                      ap,
                                      "--external",
                                      EXTERNAL,
                                      "--control",
                                      ctl,
                                      "--max-mappings",
                                      "4096",
                                      "--min-lifetime",
                                      cfg->lifetime_cap ? maxl : "120",
                                      "--max-lifetime",
                                      maxl,
                                      NULL};
                uint64_t end = now_ns() + 10 * SEC;
                e->server_pid = spawn(argv, out, NULL);
                while (!file_exists_cond(ctl)) {
                        if (!pid_alive(e->server_pid) || now_ns() > end)
                                die("pcp-refserver did not start; see %s", out);
                        usleep(10000);
                }
                free(port);
                free(ap);
                free(ctl);
                free(out);
                free(exe);
                free(maxl);
        } else
                e->server_pid = responder_start(e->ip, cfg->lifetime_cap, &e->rstats);

        /* --nm mock: NetworkManager before pcpd, with its devices exported */
        if (opt.nm_mock) {
                char *script = xasprintf("%s/tests/nm/nmmock.py", opt.source);
                char *ready = xasprintf("%s/nm.ready", e->tmp), *out = xasprintf("%s/nm.log", e->tmp);
                char *ndev = xasprintf("%u", opt.nm_devices);
                const char *argv[] = {"/usr/bin/python3", script, "serve",  "--bus-address", e->address, "--ready-file",
                                      ready,      "--devices", ndev, NULL};
                uint64_t end = now_ns() + 60 * SEC;
                e->nm_pid = spawn(argv, out, NULL);
                while (!file_exists_cond(ready)) {
                        if (!pid_alive(e->nm_pid) || now_ns() > end)
                                die("the NetworkManager mock did not start (python3-dbusmock installed?); see %s", out);
                        usleep(20000);
                }
                free(script);
                free(ready);
                free(out);
                free(ndev);
        }

        /* pcpd: limits raised so that one root client may hold every port */
        path = xasprintf("%s/pcpd.conf", e->tmp);
        /* --restart: the restored mappings wait for their apps (the bench's connections,
         * which do not claim them again) for as long as the measurement takes */
        text = xasprintf("[Daemon]\nDefaultLifetime=3600\nMaxMappingsPerUser=0\nMaxMappings=131070\n%s"
                         "[Servers]\nServers=%s:%u\nUseDefaultRouters=false\nAnnouncePort=%u\n",
                         opt.restart ? "GraceSeconds=3600\n" : "", e->ip, SERVER_PORT, e->announce_port);
        write_file(path, text);
        free(text);
        e->pcpd_pid = pcpd_spawn(e, cfg, path);
        free(path);

        e->watch = bus_connect(e->address, false);
        wait_for(cond_pcpd_on_bus, e, cfg->valgrind ? 120 : 20, "pcpd on the bus");
        wait_for(cond_pcpd_ready, e, cfg->valgrind ? 120 : 20, "pcpd's State \"ready\"");
        if (opt.nm_mock)
                wait_for(cond_pcpd_saw_nm, e, cfg->valgrind ? 120 : 30, "pcpd to see NetworkManager (libnm)");
        {
                sd_bus_error err = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                const char *u;
                if (sd_bus_call_method(e->watch, BUS_DRIVER, "/org/freedesktop/DBus", BUS_DRIVER,
                                       "GetNameOwner", &err, &reply, "s", PCP1_BUS_NAME) < 0 ||
                    sd_bus_message_read(reply, "s", &u) < 0)
                        die("GetNameOwner: %s", err.message ?: "?");
                e->pcpd_unique = strdup(u);
                sd_bus_message_unref(reply);
                sd_bus_error_free(&err);
        }
        pcpd_sockets_check(e->pcpd_pid);
        if (sd_event_new(&e->event) < 0)
                die("sd_event_new failed");
        for (unsigned i = 0; i < opt.conns; i++) {
                e->conn[i] = bus_connect(e->address, false);
                if (sd_bus_attach_event(e->conn[i], e->event, 0) < 0)
                        die("sd_bus_attach_event failed");
        }
        if (sd_bus_attach_event(e->watch, e->event, 0) < 0)
                die("sd_bus_attach_event failed");
        note("environment: bus %s (pid %d), %s %s:%u (pid %d), pcpd pid %d%s, logs in %s", e->address,
             (int) e->bus_pid, opt.refserver ? "pcp-refserver" : "stateless responder", e->ip, SERVER_PORT,
             (int) e->server_pid, (int) e->pcpd_pid,
             !cfg->valgrind                  ? ""
             : opt.measure == MEASURE_MASSIF ? " (massif)"
                                             : " (callgrind)",
             e->tmp);
        return e;
}

/* pcpd's own counters, printed when it stops */
static void env_report_pcpd_log(env *e) {
        char *log = read_file(e->pcpd_log), *s;
        unsigned long long sent = 0, retr = 0, ren = 0, recv = 0, dropped = 0, resets = 0;
        unsigned warnings = 0, drop_lines = 0;

        if (log == NULL)
                return;
        if ((s = strstr(log, "Datagrams sent ")) != NULL &&
            sscanf(s,
                   "Datagrams sent %llu (%llu retransmissions, %llu renewals), received %llu, dropped %llu; "
                   "epoch resets %llu",
                   &sent, &retr, &ren, &recv, &dropped, &resets) == 6) {
                result("pcpd_datagrams_sent", "%llu", sent);
                result("pcpd_retransmissions", "%llu", retr);
                result("pcpd_datagrams_received", "%llu", recv);
                result("pcpd_datagrams_dropped", "%llu", dropped);
        }
        for (s = log; (s = strstr(s, " warning: ")) != NULL; s++)
                warnings++;
        for (s = log; (s = strstr(s, "Dropped ")) != NULL; s++)
                drop_lines++;
        result("pcpd_log_warnings", "%u", warnings);
        result("pcpd_log_drop_lines", "%u", drop_lines);
        free(log);
}

static void env_stop(env *e) {
        char *buslog;
        unsigned complaints = 0;

        if (e->mon_source != NULL)
                sd_event_source_unref(e->mon_source);
        /* pcpd first: closing our connections would make it delete every mapping */
        stop_process(&e->pcpd_pid, SIGTERM, 120000);
        stop_process(&e->nm_pid, SIGTERM, 10000);
        env_report_pcpd_log(e);
        if (opt.measure == MEASURE_MASSIF && opt.out_dir != NULL) {
                char *cmd = xasprintf("cp -- '%s/massif.out' '%s/massif-%s.out'", e->tmp, opt.out_dir,
                                      phase_name);
                if (system(cmd) != 0)
                        fprintf(stderr, "bench-daemon: %s failed\n", cmd);
                free(cmd);
        }
        for (unsigned i = 0; i < opt.conns; i++)
                sd_bus_flush_close_unref(e->conn[i]);
        sd_bus_flush_close_unref(e->watch);
        if (e->mon != NULL)
                sd_bus_close_unref(e->mon);
        sd_event_unref(e->event);
        stop_process(&e->server_pid, SIGTERM, 5000);
        stop_process(&e->bus_pid, SIGTERM, 5000);
        buslog = read_file(e->bus_log);
        for (char *s = buslog; s != NULL && (s = strstr(s, "exceeded")) != NULL; s++)
                complaints++;
        result("bus_log_limit_lines", "%u", complaints);
        free(buslog);
        if (opt.keep || opt.verbose)
                note("kept %s", e->tmp);
        else {
                char *cmd = xasprintf("rm -rf -- '%s'", e->tmp);
                if (system(cmd) != 0)
                        fprintf(stderr, "bench-daemon: could not remove %s\n", e->tmp);
                free(cmd);
        }
        if (e->rstats != NULL)
                munmap((void *) e->rstats, sizeof(responder_stats));
        free(e->tmp);
        free(e->ip);
        free(e->address);
        free(e->pcpd_unique);
        free(e->pcpd_log);
        free(e->bus_log);
        free(e);
        the_env = NULL;
}

/* ---- signals from pcpd (the watcher connection) and per-mapping records ---- */

typedef struct mrec {
        uint64_t t_reply, t_active, t_removed;
} mrec;

static struct {
        mrec *rec;
        size_t cap;
        uint64_t active, removed; /* distinct mappings seen active / removed */
        uint64_t signals, props_changed, ifaces_added, ifaces_removed, mapping_removed, other;
        uint64_t last_added;
} W;

static mrec *rec_for(uint64_t id) {
        if (id >= W.cap) {
                size_t n = W.cap ? W.cap : 1024;
                while (n <= id)
                        n *= 2;
                W.rec = realloc(W.rec, n * sizeof(mrec));
                if (W.rec == NULL)
                        die("out of memory");
                memset(W.rec + W.cap, 0, (n - W.cap) * sizeof(mrec));
                W.cap = n;
        }
        return &W.rec[id];
}

static uint64_t path_id(const char *path) {
        const char *s = strrchr(path, '/');
        return s != NULL ? strtoull(s + 1, NULL, 10) : 0;
}

/* --leave-trace: when the watcher read each signal (set while a case of holders leaving runs) */
typedef struct sig_rec {
        uint64_t t;
        char kind; /* R InterfacesRemoved, M MappingRemoved, P PropertiesChanged, O other */
} sig_rec;

static struct {
        bool on;
        sig_rec *rec;
        size_t n, cap;
} ST;

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *member = sd_bus_message_get_member(m), *path = sd_bus_message_get_path(m);
        uint64_t t = now_ns();

        W.signals++;
        if (member == NULL || path == NULL)
                return 0;
        if (ST.on && ST.n < ST.cap)
                ST.rec[ST.n++] = (sig_rec) {
                        .t = t,
                        .kind = strcmp(member, "InterfacesRemoved") == 0 ? 'R'
                                : strcmp(member, "MappingRemoved") == 0  ? 'M'
                                : strcmp(member, "PropertiesChanged") == 0 ? 'P'
                                                                           : 'O',
                };
        if (strcmp(member, "PropertiesChanged") == 0) {
                const char *iface;
                W.props_changed++;
                if (strncmp(path, PCP1_MAPPING_PATH_PREFIX "/", strlen(PCP1_MAPPING_PATH_PREFIX) + 1) != 0 ||
                    sd_bus_message_read(m, "s", &iface) < 0 ||
                    sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                        return 0;
                while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                        const char *key, *v;
                        if (sd_bus_message_read(m, "s", &key) < 0)
                                return 0;
                        if (strcmp(key, "State") == 0) {
                                if (sd_bus_message_read(m, "v", "s", &v) < 0)
                                        return 0;
                                if (strcmp(v, PCP1_MAPPING_ACTIVE) == 0) {
                                        mrec *r = rec_for(path_id(path));
                                        if (r->t_active == 0) {
                                                r->t_active = t;
                                                W.active++;
                                        }
                                }
                        } else if (sd_bus_message_skip(m, "v") < 0)
                                return 0;
                        if (sd_bus_message_exit_container(m) < 0)
                                return 0;
                }
        } else if (strcmp(member, "MappingRemoved") == 0) {
                const char *p;
                W.mapping_removed++;
                if (sd_bus_message_read(m, "o", &p) >= 0) {
                        mrec *r = rec_for(path_id(p));
                        if (r->t_removed == 0) {
                                r->t_removed = t;
                                W.removed++;
                        }
                }
        } else if (strcmp(member, "InterfacesAdded") == 0) {
                const char *p;
                W.ifaces_added++;
                if (sd_bus_message_read(m, "o", &p) >= 0 && path_id(p) > W.last_added)
                        W.last_added = path_id(p);
        } else if (strcmp(member, "InterfacesRemoved") == 0)
                W.ifaces_removed++;
        else
                W.other++;
        return 0;
}

static void watch_signals(env *e) {
        char *rule = xasprintf("type='signal',sender='%s'", PCP1_BUS_NAME);
        int r = sd_bus_add_match(e->watch, NULL, rule, on_signal, e);

        if (r < 0)
                die("AddMatch: %s", strerror(-r));
        free(rule);
}

/* ---- the bus monitor: every message on the bus, classified ---- */

static struct {
        uint64_t total, to_pcpd_calls, from_pcpd_replies, from_pcpd_signals, pcpd_to_driver, driver_to_pcpd,
                driver_signals, other;
        char calls_by_member[8][48];
        uint64_t calls_by_member_n[8];
        char pcpd_driver_member[8][48];
        uint64_t pcpd_driver_member_n[8];
} M;

static void count_member(char names[8][48], uint64_t *n, const char *member) {
        for (int i = 0; i < 8; i++) {
                if (names[i][0] == '\0')
                        snprintf(names[i], sizeof(names[i]), "%s", member);
                if (strcmp(names[i], member) == 0) {
                        n[i]++;
                        return;
                }
        }
}

static int on_monitor_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        env *e = userdata;

        for (;;) {
                sd_bus_message *m = NULL;
                int r = sd_bus_process(e->mon, &m);
                if (r < 0)
                        die("the bus monitor failed: %s", strerror(-r));
                if (m == NULL) {
                        if (r == 0)
                                break;
                        continue;
                }
                {
                        const char *snd = sd_bus_message_get_sender(m),
                                   *dst = sd_bus_message_get_destination(m);
                        const char *member = sd_bus_message_get_member(m);
                        uint8_t type = 0;
                        bool from_pcpd = snd != NULL && strcmp(snd, e->pcpd_unique) == 0;
                        bool to_pcpd = dst != NULL &&
                                       (strcmp(dst, e->pcpd_unique) == 0 || strcmp(dst, PCP1_BUS_NAME) == 0);
                        bool from_driver = snd != NULL && strcmp(snd, BUS_DRIVER) == 0;
                        bool to_driver = dst != NULL && strcmp(dst, BUS_DRIVER) == 0;

                        (void) sd_bus_message_get_type(m, &type);
                        M.total++;
                        if (from_pcpd && to_driver) {
                                M.pcpd_to_driver++;
                                count_member(M.pcpd_driver_member, M.pcpd_driver_member_n, member ?: "?");
                        } else if (from_driver && to_pcpd)
                                M.driver_to_pcpd++;
                        else if (to_pcpd && type == SD_BUS_MESSAGE_METHOD_CALL) {
                                M.to_pcpd_calls++;
                                count_member(M.calls_by_member, M.calls_by_member_n, member ?: "?");
                        } else if (from_pcpd && type == SD_BUS_MESSAGE_SIGNAL)
                                M.from_pcpd_signals++;
                        else if (from_pcpd)
                                M.from_pcpd_replies++;
                        else if (from_driver && type == SD_BUS_MESSAGE_SIGNAL)
                                M.driver_signals++;
                        else
                                M.other++;
                }
                sd_bus_message_unref(m);
        }
        return 0;
}

static void monitor_start(env *e) {
        sd_bus_message *call = NULL;
        sd_bus_error err = SD_BUS_ERROR_NULL;
        int r;

        e->mon = bus_connect(e->address, true);
        r = sd_bus_message_new_method_call(e->mon, &call, BUS_DRIVER, "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus.Monitoring", "BecomeMonitor");
        if (r >= 0)
                r = sd_bus_message_append(call, "asu", 0, 0u);
        if (r >= 0)
                r = sd_bus_call(e->mon, call, 0, &err, NULL);
        if (r < 0)
                die("BecomeMonitor: %s", err.message ?: strerror(-r));
        sd_bus_message_unref(call);
        sd_bus_error_free(&err);
        if (sd_event_add_io(e->event, &e->mon_source, sd_bus_get_fd(e->mon), EPOLLIN, on_monitor_io, e) < 0)
                die("sd_event_add_io failed");
        /* the monitor's own Connected signal and NameAcquired: not part of any window */
        memset(&M, 0, sizeof(M));
}

/* ---- measurement windows around pcpd: CPU, callgrind, strace ---- */

typedef struct window {
        const char *name;
        uint64_t t0, pcpd_cpu0, bus_cpu0, ctxt0, vol0, sig0, drops0;
        responder_stats r0;
        pid_t strace_pid;
        char *strace_file;
        uint64_t mon0;
        typeof(M) m0;
} window;

static responder_stats responder_now(env *e) {
        responder_stats s = {0};
        if (e->rstats != NULL) {
                s.requests = e->rstats->requests;
                s.map = e->rstats->map;
                s.map_delete = e->rstats->map_delete;
                s.announce = e->rstats->announce;
                s.sent = e->rstats->sent;
        }
        return s;
}

static void callgrind_control(env *e, const char *what) {
        char *cmd = xasprintf("callgrind_control %s %d >/dev/null 2>&1", what, (int) e->pcpd_pid);
        if (system(cmd) != 0)
                die("'%s' failed", cmd);
        free(cmd);
}

static void window_begin(env *e, window *w, const char *name) {
        memset(w, 0, sizeof(*w));
        w->name = name;
        if (opt.measure == MEASURE_CALLGRIND)
                callgrind_control(e, "-z");
        if (opt.measure == MEASURE_STRACE) {
                char *pid = xasprintf("%d", (int) e->pcpd_pid),
                     *err = xasprintf("%s/strace-%s.err", e->tmp, name);
                uint64_t end = now_ns() + 20 * SEC;
                w->strace_file = xasprintf("%s/strace-%s.txt", e->tmp, name);
                const char *argv[] = {"strace", "-c", "-f", "-p", pid, "-o", w->strace_file, NULL};
                w->strace_pid = spawn(argv, err, NULL);
                /* counting starts once strace says it is attached to every thread */
                for (;;) {
                        char *t = read_file(err);
                        bool ok = t != NULL && strstr(t, "attached") != NULL;
                        free(t);
                        if (ok)
                                break;
                        if (now_ns() > end || !pid_alive(w->strace_pid))
                                die("strace did not attach to pcpd (see %s)", err);
                        usleep(10000);
                }
                usleep(200000);
                free(pid);
                free(err);
        }
        w->pcpd_cpu0 = proc_cpu_ns(e->pcpd_pid);
        w->bus_cpu0 = proc_cpu_ns(e->bus_pid);
        w->ctxt0 = proc_ctxt(e->pcpd_pid, &w->vol0);
        w->sig0 = W.signals;
        w->drops0 = proc_udp_drops(e->pcpd_pid);
        w->r0 = responder_now(e);
        w->m0 = M;
        w->t0 = now_ns();
}

static uint64_t file_number_after(const char *text, const char *key) {
        const char *s = strstr(text, key);
        return s != NULL ? strtoull(s + strlen(key), NULL, 10) : 0;
}

/* Returns the instructions (callgrind) or system calls (strace) of the window, or 0. */
static uint64_t window_end(env *e, window *w, double per_n, const char *per_what) {
        uint64_t wall = now_ns() - w->t0, vol = 0;
        uint64_t cpu = proc_cpu_ns(e->pcpd_pid) - w->pcpd_cpu0, bus = proc_cpu_ns(e->bus_pid) - w->bus_cpu0;
        uint64_t ctxt = proc_ctxt(e->pcpd_pid, &vol) - w->ctxt0;
        uint64_t signals = W.signals - w->sig0, drops = proc_udp_drops(e->pcpd_pid) - w->drops0;
        responder_stats r = responder_now(e);
        uint64_t counted = 0;
        char key[128];

        vol -= w->vol0;
        if (per_n <= 0)
                per_n = 1;
#define R(k, fmt, ...)                                                                                      \
        do {                                                                                                \
                snprintf(key, sizeof(key), "%s.%s", w->name, k);                                            \
                result(key, fmt, __VA_ARGS__);                                                              \
        } while (0)
        R("wall_ms", "%.1f", ms(wall));
        R("pcpd_cpu_ms", "%.1f", ms(cpu));
        R("pcpd_cpu_us_per", "%.2f", (double) cpu / 1e3 / per_n);
        R("bus_cpu_ms", "%.1f", ms(bus));
        R("bus_cpu_us_per", "%.2f", (double) bus / 1e3 / per_n);
        R("pcpd_ctxt_switches", "%" PRIu64, ctxt);
        R("pcpd_voluntary_ctxt_switches", "%" PRIu64, vol);
        R("signals_per", "%.2f", (double) signals / per_n);
        R("udp_drops", "%" PRIu64, drops);
        if (e->rstats != NULL) {
                R("server_requests", "%" PRIu64, r.requests - w->r0.requests);
                R("server_map_requests", "%" PRIu64, r.map - w->r0.map);
                R("server_delete_requests", "%" PRIu64, r.map_delete - w->r0.map_delete);
        }
        if (e->mon != NULL) {
                double n = per_n;
                R("bus_messages_per", "%.2f", (double) (M.total - w->m0.total) / n);
                R("calls_to_pcpd_per", "%.2f", (double) (M.to_pcpd_calls - w->m0.to_pcpd_calls) / n);
                R("replies_from_pcpd_per", "%.2f",
                  (double) (M.from_pcpd_replies - w->m0.from_pcpd_replies) / n);
                R("signals_from_pcpd_per", "%.2f",
                  (double) (M.from_pcpd_signals - w->m0.from_pcpd_signals) / n);
                R("pcpd_calls_to_bus_driver_per", "%.2f",
                  (double) (M.pcpd_to_driver - w->m0.pcpd_to_driver) / n);
                R("bus_driver_replies_to_pcpd_per", "%.2f",
                  (double) (M.driver_to_pcpd - w->m0.driver_to_pcpd) / n);
                R("bus_driver_signals_per", "%.2f", (double) (M.driver_signals - w->m0.driver_signals) / n);
                for (int i = 0; i < 8 && M.pcpd_driver_member[i][0]; i++) {
                        char k2[96];
                        snprintf(k2, sizeof(k2), "pcpd_to_bus_driver.%s_per", M.pcpd_driver_member[i]);
                        R(k2, "%.2f",
                          (double) (M.pcpd_driver_member_n[i] - w->m0.pcpd_driver_member_n[i]) / n);
                }
        }
        if (opt.measure == MEASURE_CALLGRIND) {
                char *dump, *text;
                callgrind_control(e, "-d");
                e->n_dumps++;
                dump = xasprintf("%s/callgrind.out.%d.%u", e->tmp, (int) e->pcpd_pid, e->n_dumps);
                text = read_file(dump);
                if (text == NULL)
                        die("no callgrind dump %s", dump);
                counted = file_number_after(text, "\nsummary: ");
                if (counted == 0)
                        counted = file_number_after(text, "\ntotals: ");
                free(text);
                R("pcpd_instructions", "%" PRIu64, counted);
                R("pcpd_instructions_per", "%.0f", (double) counted / per_n);
                if (opt.out_dir != NULL) {
                        char *cmd = xasprintf("cp -- '%s' '%s/callgrind-%s-%s.out'", dump, opt.out_dir,
                                              phase_name, w->name);
                        if (system(cmd) != 0)
                                fprintf(stderr, "bench-daemon: %s failed\n", cmd);
                        free(cmd);
                }
                free(dump);
        }
        if (opt.measure == MEASURE_STRACE) {
                char *text;
                kill(w->strace_pid, SIGINT);
                waitpid(w->strace_pid, NULL, 0);
                text = read_file(w->strace_file);
                if (text != NULL) {
                        char *line, *save = NULL;
                        for (line = strtok_r(text, "\n", &save); line != NULL;
                             line = strtok_r(NULL, "\n", &save)) {
                                double pct, secs;
                                unsigned long usecs, calls;
                                char name[64];
                                /* "% time seconds usecs/call calls [errors] syscall" */
                                if (sscanf(line, "%lf %lf %lu %lu", &pct, &secs, &usecs, &calls) != 4)
                                        continue;
                                {
                                        const char *last = strrchr(line, ' ');
                                        snprintf(name, sizeof(name), "%s", last ? last + 1 : line);
                                }
                                if (strcmp(name, "total") == 0)
                                        counted = calls;
                                else {
                                        char k2[96];
                                        snprintf(k2, sizeof(k2), "syscall.%s_per", name);
                                        R(k2, "%.3f", (double) calls / per_n);
                                }
                        }
                }
                free(text);
                R("pcpd_syscalls", "%" PRIu64, counted);
                R("pcpd_syscalls_per", "%.2f", (double) counted / per_n);
                if (opt.out_dir != NULL) {
                        char *cmd = xasprintf("cp -- '%s' '%s/strace-%s-%s.txt'", w->strace_file,
                                              opt.out_dir, phase_name, w->name);
                        if (system(cmd) != 0)
                                fprintf(stderr, "bench-daemon: %s failed\n", cmd);
                        free(cmd);
                }
                free(w->strace_file);
        }
#undef R
        note("window %s: %.0f ms wall, pcpd %.1f ms CPU (%.1f us per %s), dbus-daemon %.1f ms CPU%s",
             w->name, ms(wall), ms(cpu), (double) cpu / 1e3 / per_n, per_what, ms(bus),
             opt.measure == MEASURE_CALLGRIND ? ", instructions counted"
             : opt.measure == MEASURE_STRACE  ? ", system calls counted"
                                              : "");
        return counted;
}

/* ---- the event loop ---- */

static void run_loop_until(env *e, bool (*done)(void *), void *userdata, double timeout_s,
                           const char *what) {
        uint64_t end = now_ns() + (uint64_t) (timeout_s * 1e9);

        while (!done(userdata)) {
                int r = sd_event_run(e->event, 100000);
                if (r < 0)
                        die("event loop: %s", strerror(-r));
                if (now_ns() > end)
                        die("timed out after %.0f s waiting for %s (logs in %s)", timeout_s, what, e->tmp);
                if (!pid_alive(e->pcpd_pid))
                        die("pcpd died while waiting for %s; its log: %s", what, e->pcpd_log);
        }
}

static void run_loop_for(env *e, double seconds) {
        uint64_t end = now_ns() + (uint64_t) (seconds * 1e9);

        while (now_ns() < end) {
                uint64_t left = end - now_ns();
                if (sd_event_run(e->event, left / 1000 + 1) < 0)
                        die("event loop failed");
        }
}

static sd_bus_message *new_call(sd_bus *b, const char *path, const char *iface, const char *member) {
        sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(b, &m, PCP1_BUS_NAME, path, iface, member);
        if (r < 0)
                die("cannot make a %s call: %s", member, strerror(-r));
        return m;
}

static void send_async(sd_bus *b, sd_bus_message *m, sd_bus_message_handler_t cb, void *userdata) {
        int r = sd_bus_call_async(b, NULL, m, cb, userdata, CALL_TIMEOUT_USEC);
        if (r < 0)
                die("cannot send a call: %s", strerror(-r));
        sd_bus_message_unref(m);
}

/* The i-th mapping of a mass request: UDP ports 1..65535, then TCP ports 1..65535. */
static void job_key(size_t i, const char **ret_proto, uint16_t *ret_port) {
        *ret_proto = i < 65535 ? "udp" : "tcp";
        *ret_port = (uint16_t) (i % 65535 + 1);
}

static sd_bus_message *new_add(sd_bus *b, const char *proto, uint16_t port) {
        sd_bus_message *m = new_call(b, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "AddMapping");
        if (sd_bus_message_append(m, "sqqa{sv}", proto, port, 0, 0) < 0)
                die("cannot build AddMapping");
        return m;
}

/* ---- pipelined calls over many connections ---- */

typedef struct pjob {
        uint32_t i;
        uint16_t conn;
        uint16_t attempts;
        uint64_t t_sent;
} pjob;

typedef struct pipeline {
        env *e;
        bool ping; /* Peer.Ping instead of AddMapping */
        size_t n, replies_ok, errors, refused, refused_first;
        size_t first_refused_jobs;
        pjob *jobs;
        struct cq {
                uint32_t *ring;
                size_t cap, head, len, inflight;
        } q[MAX_CONNS];
        uint64_t active0; /* W.active when started */
        uint64_t t_start, t_replies, t_active;
        char first_error[256];
        uint64_t *rtt;
} pipeline;

static void pipeline_fill(pipeline *p, unsigned c);
static pipeline *current_pipeline;

static int on_pipeline_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        pjob *j = userdata;
        pipeline *p = current_pipeline;
        size_t k = (size_t) (j - p->jobs);
        const sd_bus_error *e;

        p->q[j->conn].inflight--;
        e = sd_bus_message_get_error(m);
        if (e != NULL) {
                if (sd_bus_error_has_name(e, SD_BUS_ERROR_LIMITS_EXCEEDED)) {
                        struct cq *q = &p->q[j->conn];
                        p->refused++;
                        if (j->attempts == 1)
                                p->refused_first++;
                        j->attempts++;
                        q->ring[(q->head + q->len) % q->cap] = (uint32_t) k;
                        q->len++;
                } else {
                        p->errors++;
                        if (p->first_error[0] == '\0')
                                snprintf(p->first_error, sizeof(p->first_error), "%s: %s", e->name,
                                         e->message ?: "");
                }
        } else {
                uint64_t t = now_ns();
                p->replies_ok++;
                p->rtt[k] = t - j->t_sent;
                if (!p->ping) {
                        const char *path;
                        if (sd_bus_message_read(m, "o", &path) >= 0)
                                rec_for(path_id(path))->t_reply = t;
                }
                if (p->replies_ok == p->n)
                        p->t_replies = t;
        }
        pipeline_fill(p, j->conn);
        return 0;
}

static void pipeline_fill(pipeline *p, unsigned c) {
        struct cq *q = &p->q[c];
        sd_bus *b = p->e->conn[c];

        while (q->inflight < opt.window && q->len > 0) {
                pjob *j = &p->jobs[q->ring[q->head]];
                sd_bus_message *m;
                q->head = (q->head + 1) % q->cap;
                q->len--;
                if (p->ping)
                        m = new_call(b, PCP1_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping");
                else {
                        const char *proto;
                        uint16_t port;
                        job_key(j->i, &proto, &port);
                        m = new_add(b, proto, port);
                }
                j->attempts++;
                j->t_sent = now_ns();
                q->inflight++;
                send_async(b, m, on_pipeline_reply, j);
        }
}

static bool pipeline_done(void *userdata) {
        pipeline *p = userdata;

        if (p->errors > 0)
                die("%zu calls failed, the first: %s", p->errors, p->first_error);
        if (p->ping)
                return p->replies_ok == p->n;
        if (p->t_active == 0 && W.active - p->active0 >= p->n)
                p->t_active = now_ns();
        return p->replies_ok == p->n && W.active - p->active0 >= p->n;
}

/* Sends n calls (first job first) spread round-robin over the connections, at most
 * opt.window in flight on each; a call refused with LimitsExceeded goes to the back of
 * its connection's queue and is counted. */
static void pipeline_run(env *e, pipeline *p, size_t first, size_t n, bool ping, double timeout_s) {
        memset(p, 0, sizeof(*p));
        p->e = e;
        p->ping = ping;
        p->n = n;
        p->jobs = xcalloc(n, sizeof(pjob));
        p->rtt = xcalloc(n, sizeof(uint64_t));
        for (unsigned c = 0; c < opt.conns; c++) {
                p->q[c].cap = n / opt.conns + 2;
                p->q[c].ring = xcalloc(p->q[c].cap, sizeof(uint32_t));
        }
        for (size_t k = 0; k < n; k++) {
                unsigned c = (unsigned) (k % opt.conns);
                struct cq *q = &p->q[c];
                p->jobs[k] = (pjob){.i = (uint32_t) (first + k), .conn = (uint16_t) c};
                q->ring[(q->head + q->len) % q->cap] = (uint32_t) k;
                q->len++;
        }
        /* job indices in the ring are into p->jobs; job_key() takes jobs[k].i */
        p->active0 = W.active;
        current_pipeline = p;
        p->t_start = now_ns();
        for (unsigned c = 0; c < opt.conns; c++)
                pipeline_fill(p, c);
        run_loop_until(e, pipeline_done, p, timeout_s, ping ? "the pings' replies" : "every mapping active");
        if (!ping && p->t_active == 0)
                p->t_active = now_ns();
        current_pipeline = NULL;
}

static void pipeline_free(pipeline *p) {
        free(p->jobs);
        free(p->rtt);
        for (unsigned c = 0; c < opt.conns; c++)
                free(p->q[c].ring);
}

/* ---- phase: seq ---- */

typedef struct seq {
        env *e;
        enum { S_PING, S_ADD, S_RELEASE } state;
        bool replied;
        uint64_t id, t_sent;
        unsigned done_n;
        char path[128];
} seq;

static int on_seq_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        seq *s = userdata;
        const sd_bus_error *err = sd_bus_message_get_error(m);

        if (err != NULL)
                die("a call failed: %s: %s", err->name, err->message ?: "");
        if (s->state == S_ADD) {
                const char *path;
                if (sd_bus_message_read(m, "o", &path) < 0)
                        die("AddMapping returned no path");
                snprintf(s->path, sizeof(s->path), "%s", path);
                s->id = path_id(path);
                rec_for(s->id)->t_reply = now_ns();
        }
        s->replied = true;
        return 0;
}

static bool seq_step_done(void *userdata) {
        seq *s = userdata;

        if (!s->replied)
                return false;
        if (s->state == S_ADD)
                return rec_for(s->id)->t_active != 0;
        if (s->state == S_RELEASE)
                return rec_for(s->id)->t_removed != 0;
        return true;
}

static void seq_ping(seq *s) {
        s->state = S_PING;
        s->replied = false;
        s->t_sent = now_ns();
        send_async(s->e->conn[0],
                   new_call(s->e->conn[0], PCP1_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping"),
                   on_seq_reply, s);
        run_loop_until(s->e, seq_step_done, s, 60, "a Ping reply");
}

/* one mapping's life; returns add→active, and release→removed in *ret_release */
static uint64_t seq_mapping(seq *s, uint16_t port, uint64_t *ret_release, uint64_t *ret_reply) {
        uint64_t t0, t1;

        s->state = S_ADD;
        s->replied = false;
        t0 = now_ns();
        send_async(s->e->conn[0], new_add(s->e->conn[0], "udp", port), on_seq_reply, s);
        run_loop_until(s->e, seq_step_done, s, 60, "a mapping active");
        *ret_reply = rec_for(s->id)->t_reply - t0;
        t1 = rec_for(s->id)->t_active - t0;
        s->state = S_RELEASE;
        s->replied = false;
        t0 = now_ns();
        send_async(s->e->conn[0], new_call(s->e->conn[0], s->path, PCP1_MAPPING_IFACE, "Release"),
                   on_seq_reply, s);
        run_loop_until(s->e, seq_step_done, s, 60, "MappingRemoved");
        *ret_release = rec_for(s->id)->t_removed - t0;
        return t1;
}

static void print_dist(const char *key, const char *what, uint64_t *v, size_t n) {
        dist d = dist_of(v, n);
        char k[96];

        snprintf(k, sizeof(k), "%s_median_ms", key);
        result(k, "%.3f", d.median);
        snprintf(k, sizeof(k), "%s_p90_ms", key);
        result(k, "%.3f", d.p90);
        snprintf(k, sizeof(k), "%s_max_ms", key);
        result(k, "%.3f", d.max);
        note("%s: median %.3f ms, p90 %.3f ms, p99 %.3f ms, min %.3f, max %.3f (n = %zu)", what, d.median,
             d.p90, d.p99, d.min, d.max, d.n);
}

static void phase_seq(void) {
        env_config cfg = {.valgrind = opt.measure == MEASURE_CALLGRIND || opt.measure == MEASURE_MASSIF};
        env *e = env_start(&cfg);
        seq s = {.e = e};
        unsigned n = opt.n_seq;
        uint64_t *ping = xcalloc(n, sizeof(uint64_t)), *act = xcalloc(n, sizeof(uint64_t));
        uint64_t *rel = xcalloc(n, sizeof(uint64_t)), *rep = xcalloc(n, sizeof(uint64_t));
        uint64_t map_wall, pings_counted, idle_counted = 0, map_counted;
        window w;

        watch_signals(e);
        if (opt.monitor)
                monitor_start(e);
        /* warm-up: the first mapping opens the journal, the first calls fill caches */
        for (unsigned i = 0; i < 20; i++) {
                uint64_t a, b;
                seq_ping(&s);
                (void) seq_mapping(&s, (uint16_t) (30000 + i), &a, &b);
        }
        run_loop_for(e, 0.5); /* the warm-up's snapshot is written */

        window_begin(e, &w, "ping");
        for (unsigned i = 0; i < n; i++) {
                seq_ping(&s);
                ping[i] = now_ns() - s.t_sent;
        }
        pings_counted = window_end(e, &w, n, "ping");

        window_begin(e, &w, "map");
        for (unsigned i = 0; i < n; i++)
                act[i] = seq_mapping(&s, (uint16_t) (40000 + i % 20000), &rel[i], &rep[i]);
        map_wall = now_ns() - w.t0;
        map_counted = window_end(e, &w, n, "mapping");

        if (opt.measure != MEASURE_NONE) {
                /* as long as the mapping window (at most 10 s), nothing asked: what pcpd does on
                 * its own in that time is not the mappings' cost */
                double idle = ms(map_wall) / 1000.0;
                run_loop_for(e, 0.3);
                window_begin(e, &w, "idle");
                run_loop_for(e, idle > 10 ? 10 : idle);
                idle_counted = window_end(e, &w, 1, "window");
                if (idle > 10)
                        idle_counted = (uint64_t) ((double) idle_counted * idle / 10);
                {
                        const char *what = opt.measure == MEASURE_CALLGRIND ? "instructions" : "syscalls";
                        double per_map = ((double) map_counted - (double) idle_counted) / n;
                        double per_ping = (double) pings_counted / n;
                        char k[64];
                        snprintf(k, sizeof(k), "%s_per_mapping_net", what);
                        result(k, "%.1f", per_map);
                        snprintf(k, sizeof(k), "%s_per_ping", what);
                        result(k, "%.1f", per_ping);
                        note("pcpd %s per mapping (add, grant, release), idle subtracted: %.0f; per Ping: "
                             "%.0f; "
                             "ratio %.1f",
                             what, per_map, per_ping, per_ping > 0 ? per_map / per_ping : 0);
                }
        }
        print_dist("ping", "Peer.Ping round trip", ping, n);
        print_dist("add_reply", "AddMapping -> its reply", rep, n);
        print_dist("add_active", "AddMapping -> State \"active\"", act, n);
        print_dist("release_removed", "Release -> MappingRemoved", rel, n);
        {
                dist dp = dist_of(ping, n), da = dist_of(act, n);
                result("active_over_ping", "%.2f", dp.median > 0 ? da.median / dp.median : 0);
                note("AddMapping -> active median is %.1f x the Ping round trip (target <= 2)",
                     dp.median > 0 ? da.median / dp.median : 0);
        }
        free(ping);
        free(act);
        free(rel);
        free(rep);
        env_stop(e);
}

/* ---- phases: burst and all ---- */

/* RSS split as the kernel counts it: anonymous pages (heap, stacks: what pcpd allocated)
 * and file pages (the executable and its libraries, mostly shared with other processes) */
static void report_mem(env *e, const char *key) {
        unsigned long rss = proc_status_field(e->pcpd_pid, "VmRSS:"),
                      hwm = proc_status_field(e->pcpd_pid, "VmHWM:"),
                      anon = proc_status_field(e->pcpd_pid, "RssAnon:"),
                      file = proc_status_field(e->pcpd_pid, "RssFile:");
        char k[64];

        snprintf(k, sizeof(k), "%s_rss_kib", key);
        result(k, "%lu", rss);
        snprintf(k, sizeof(k), "%s_rss_peak_kib", key);
        result(k, "%lu", hwm);
        snprintf(k, sizeof(k), "%s_rss_anon_kib", key);
        result(k, "%lu", anon);
        snprintf(k, sizeof(k), "%s_rss_file_kib", key);
        result(k, "%lu", file);
        note("pcpd RSS %.1f MiB (peak %.1f MiB): anonymous %.1f MiB, file-backed %.1f MiB", rss / 1024.0,
             hwm / 1024.0, anon / 1024.0, file / 1024.0);
        snprintf(k, sizeof(k), "%s_threads", key);
        result(k, "%lu", proc_status_field(e->pcpd_pid, "Threads:"));
        /* --out-dir: pcpd's smaps now, for a sum by mapping (bench/smaps-sum.awk) */
        if (opt.out_dir != NULL) {
                char *cmd = xasprintf("cat /proc/%d/smaps > '%s/smaps-%s-%s%s.txt'", (int) e->pcpd_pid, opt.out_dir,
                                      phase_name, key, opt.nm_mock ? "-nm" : "");
                if (system(cmd) != 0)
                        fprintf(stderr, "bench-daemon: %s failed\n", cmd);
                free(cmd);
                cmd = xasprintf("for t in /proc/%d/task/*; do cat $t/comm; done | sort | uniq -c | "
                                "awk '{ printf \"%%s x%%s \", $2, $1 } END { print \"\" }' "
                                "> '%s/threads-%s-%s%s.txt'",
                                (int) e->pcpd_pid, opt.out_dir, phase_name, key, opt.nm_mock ? "-nm" : "");
                if (system(cmd) != 0)
                        fprintf(stderr, "bench-daemon: %s failed\n", cmd);
                free(cmd);
        }
}

/* --measure massif: a detailed heap snapshot of pcpd now (valgrind's gdbserver, vgdb), kept
 * in --out-dir as massif-PHASE-TAG.out; the profile of the whole run shows the peak, which
 * may be a snapshot being written, this one what is held */
static void massif_snapshot(env *e, const char *tag) {
        char *cmd;

        if (opt.measure != MEASURE_MASSIF || opt.out_dir == NULL)
                return;
        cmd = xasprintf("vgdb --pid=%d detailed_snapshot '%s/massif-%s-%s.out' >/dev/null", (int) e->pcpd_pid,
                        opt.out_dir, phase_name, tag);
        if (system(cmd) != 0)
                fprintf(stderr, "bench-daemon: %s failed\n", cmd);
        else
                note("heap snapshot of pcpd (%s): %s/massif-%s-%s.out", tag, opt.out_dir, phase_name, tag);
        free(cmd);
}

/* --restart: pcpd's MAP requests the responder has counted reach this */
static uint64_t restart_maps_want;

static bool cond_restored(void *userdata) {
        return responder_now(userdata).map >= restart_maps_want;
}

/* --restart: pcpd stopped (its shutdown writes the snapshot of the n held) and started
 * again over the same state directory; what it holds once it has restored them and asked
 * the server for each again (pcpd-restore.c). The bench's connections stay: they are the
 * apps the restored mappings wait for (grace time). */
static void restart_pcpd(env *e, const env_config *cfg, size_t n) {
        char *path = xasprintf("%s/pcpd.conf", e->tmp);
        uint64_t t0;

        stop_process(&e->pcpd_pid, SIGTERM, 120000);
        restart_maps_want = responder_now(e).map + n;
        t0 = now_ns();
        e->pcpd_pid = pcpd_spawn(e, cfg, path);
        free(path);
        wait_for(cond_pcpd_on_bus, e, cfg->valgrind ? 600 : 300, "pcpd on the bus after the restart");
        wait_for(cond_pcpd_ready, e, cfg->valgrind ? 600 : 300, "pcpd's State \"ready\" after the restart");
        result("restart_on_bus_ms", "%.1f", ms(now_ns() - t0));
        run_loop_until(e, cond_restored, e, 3600, "every restored mapping asked for again");
        result("restart_asked_ms", "%.1f", ms(now_ns() - t0));
        /* their grants handled: what stays held */
        run_loop_for(e, opt.settle_seconds > 0 ? opt.settle_seconds : 2);
        report_mem(e, "restarted");
        massif_snapshot(e, "restarted");
        if (opt.trim_probe) {
                char *cmd = xasprintf("gdb -p %d -batch -ex 'call (int) malloc_trim(0)' >/dev/null 2>&1",
                                      (int) e->pcpd_pid);
                if (system(cmd) != 0)
                        note("gdb could not call malloc_trim() in pcpd");
                free(cmd);
                report_mem(e, "restarted_after_malloc_trim");
        }
}

/* --release: the responder's delete count reaches this */
static uint64_t release_deletes_want;

static bool cond_released(void *userdata) {
        return responder_now(userdata).map_delete >= release_deletes_want;
}

/* --release: the bench's connections (the holders of the n mappings) closed; once pcpd has
 * deleted every mapping on the server and S (--settle, else 2) seconds more, what it still
 * holds (released_*): the heap the removed mappings leave. */
static void release_all(env *e, size_t n) {
        uint64_t t0 = now_ns();

        release_deletes_want = responder_now(e).map_delete + n;
        for (unsigned c = 0; c < opt.conns; c++)
                e->conn[c] = sd_bus_flush_close_unref(e->conn[c]);
        run_loop_until(e, cond_released, e, 600, "every mapping deleted on the server");
        result("release_deleted_ms", "%.1f", ms(now_ns() - t0));
        run_loop_for(e, opt.settle_seconds > 0 ? opt.settle_seconds : 2);
        report_mem(e, "released");
}

static void mass(size_t n, const char *label) {
        env_config cfg = {.valgrind = opt.measure == MEASURE_CALLGRIND || opt.measure == MEASURE_MASSIF};
        env *e = env_start(&cfg);
        pipeline pp, pm;
        window w;
        uint64_t tp, tm, ta;

        watch_signals(e);
        if (opt.monitor)
                monitor_start(e);
        report_mem(e, "start");
        massif_snapshot(e, "start");

        window_begin(e, &w, "ping");
        pipeline_run(e, &pp, 0, n, true, 600);
        tp = pp.t_replies - pp.t_start;
        window_end(e, &w, (double) n, "ping");

        window_begin(e, &w, "map");
        pipeline_run(e, &pm, 0, n, false, 3600);
        tm = pm.t_replies - pm.t_start;
        ta = pm.t_active - pm.t_start;
        window_end(e, &w, (double) n, "mapping");

        result("n", "%zu", n);
        result("pings_ms", "%.1f", ms(tp));
        result("replies_ms", "%.1f", ms(tm));
        result("all_active_ms", "%.1f", ms(ta));
        result("active_over_pings", "%.2f", ms(ta) / ms(tp));
        result("refused_calls", "%zu", pm.refused);
        result("refused_first_attempt", "%zu", pm.refused_first);
        note("%zu pipelined Peer.Ping over %u connections (%u in flight each): %.0f ms", n, opt.conns,
             opt.window, ms(tp));
        note("%zu AddMapping at once: every reply after %.0f ms, every mapping active after %.0f ms = %.1f "
             "x the "
             "pings (target <= 5)",
             n, ms(tm), ms(ta), ms(ta) / ms(tp));
        note("refused with LimitsExceeded: %zu calls (%zu of the %zu on their first attempt), re-sent until "
             "accepted",
             pm.refused, pm.refused_first, n);
        {
                dist d = dist_of(pm.rtt, n);
                result("add_reply_median_ms", "%.1f", d.median);
                result("add_reply_max_ms", "%.1f", d.max);
        }
        report_mem(e, label);
        if (opt.settle_seconds > 0) {
                /* the snapshot the burst scheduled is written and its buffers freed: what
                 * stays held, without the transient peak the reading above may catch */
                run_loop_for(e, opt.settle_seconds);
                report_mem(e, "settled");
        }
        if (opt.measure == MEASURE_MASSIF) {
                sleep(10); /* the snapshot file that the burst scheduled is written */
                massif_snapshot(e, "held");
        }
        if (opt.trim_probe) {
                /* how much of the RSS is heap pcpd freed but malloc kept (the transient
                 * snapshot key files): ask pcpd's malloc to give it back, from a debugger */
                char *cmd;

                if (opt.out_dir != NULL) {
                        /* malloc's own account first (malloc_info(): per arena, the free
                         * chunks by size, what is mapped) */
                        cmd = xasprintf("gdb -p %d -batch -ex 'set $f = (void *) fopen(\"%s/malloc-info-%s%s.xml\", \"w\")' "
                                        "-ex 'call (int) malloc_info(0, $f)' -ex 'call (int) fclose($f)' >/dev/null 2>&1",
                                        (int) e->pcpd_pid, opt.out_dir, phase_name, opt.nm_mock ? "-nm" : "");
                        if (system(cmd) != 0)
                                note("gdb could not call malloc_info() in pcpd");
                        free(cmd);
                }
                cmd = xasprintf("gdb -p %d -batch -ex 'call (int) malloc_trim(0)' >/dev/null 2>&1",
                                (int) e->pcpd_pid);
                if (system(cmd) != 0)
                        note("gdb could not call malloc_trim() in pcpd");
                free(cmd);
                report_mem(e, "after_malloc_trim");
        }
        if (opt.restart)
                restart_pcpd(e, &cfg, n);
        else if (opt.release)
                release_all(e, n);
        pipeline_free(&pp);
        pipeline_free(&pm);
        env_stop(e);
}

static void phase_burst(void) {
        mass(opt.n_burst, "held");
}

static void phase_all(void) {
        mass(opt.n_all, "held");
}

/* ---- phase: stall ---- */

typedef struct pinger {
        env *e;
        unsigned conn;
        bool busy;
        uint64_t t_sent;
        uint64_t *rtt, *sent; /* each round trip and when it was sent */
        size_t n, cap;
} pinger;

static int on_pinger_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        pinger *p = userdata;

        if (p->n < p->cap) {
                p->sent[p->n] = p->t_sent;
                p->rtt[p->n++] = now_ns() - p->t_sent;
        }
        p->busy = false;
        return 0;
}

static void pinger_kick(pinger *p) {
        if (p->busy)
                return;
        p->busy = true;
        p->t_sent = now_ns();
        send_async(p->e->conn[p->conn],
                   new_call(p->e->conn[p->conn], PCP1_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping"),
                   on_pinger_reply, p);
}

/* The pinger in a thread of its own (--ping-thread), on a connection of its own, blocking
 * calls one after another: nothing the bench's loop does (the watcher's signals) delays
 * reading its replies. Each round trip is recorded with when it was sent. */
typedef struct ping_rec {
        uint64_t t_sent, t_reply;
} ping_rec;

static struct {
        pthread_t thread;
        bool running;
        sd_bus *bus;
        ping_rec *rec;
        size_t cap;
        atomic_size_t n; /* completed */
        atomic_bool stop, failed;
} PT;

static void *ping_thread(void *arg) {
        (void) arg;
        while (!atomic_load(&PT.stop)) {
                sd_bus_error err = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                uint64_t t0 = now_ns(), t1;
                size_t i;
                int r = sd_bus_call_method(PT.bus, PCP1_BUS_NAME, PCP1_MANAGER_PATH, "org.freedesktop.DBus.Peer",
                                           "Ping", &err, &reply, NULL);

                t1 = now_ns();
                sd_bus_error_free(&err);
                sd_bus_message_unref(reply);
                if (r < 0) {
                        atomic_store(&PT.failed, true);
                        break;
                }
                i = atomic_load(&PT.n);
                if (i == PT.cap) {
                        atomic_store(&PT.failed, true);
                        break;
                }
                PT.rec[i] = (ping_rec) {t0, t1};
                atomic_store(&PT.n, i + 1);
        }
        return NULL;
}

static void ping_thread_start(env *e) {
        PT.bus = bus_connect(e->address, false);
        PT.cap = 4u << 20;
        PT.rec = xcalloc(PT.cap, sizeof(ping_rec));
        atomic_store(&PT.n, 0);
        atomic_store(&PT.stop, false);
        atomic_store(&PT.failed, false);
        if (pthread_create(&PT.thread, NULL, ping_thread, NULL) != 0)
                die("pthread_create failed");
        PT.running = true;
}

static void ping_thread_stop(void) {
        if (!PT.running)
                return;
        atomic_store(&PT.stop, true);
        pthread_join(PT.thread, NULL);
        PT.running = false;
        sd_bus_flush_close_unref(PT.bus);
        free(PT.rec);
        PT.rec = NULL;
}

/* --ping-thread: the bench's loop runs (the watcher, the holders) for `seconds` and until
 * stop(); the pings are those from the one in flight at the start to one sent after the end */
static void ping_thread_for(pinger *p, double seconds, bool (*stop)(void *), void *userdata) {
        uint64_t start = now_ns(), end = start + (uint64_t) (seconds * 1e9), t_end;
        size_t i0 = atomic_load(&PT.n), n;

        for (;;) {
                if (stop != NULL && now_ns() > end + 120 * SEC)
                        die("the change did not complete within 120 s");
                if (sd_event_run(p->e->event, 1000) < 0)
                        die("event loop failed");
                if (!pid_alive(p->e->pcpd_pid))
                        die("pcpd died");
                if (atomic_load(&PT.failed))
                        die("the pinger thread's Ping failed (or it recorded %zu pings)", PT.cap);
                if (now_ns() >= end && (stop == NULL || stop(userdata)))
                        break;
        }
        t_end = now_ns();
        for (;;) {
                n = atomic_load(&PT.n);
                if (n > i0 && PT.rec[n - 1].t_sent >= t_end)
                        break;
                if (atomic_load(&PT.failed))
                        die("the pinger thread's Ping failed");
                if (now_ns() > t_end + 120 * SEC)
                        die("the pinger thread got no reply within 120 s");
                usleep(100);
        }
        p->n = 0;
        for (size_t i = i0; i < n && p->n < p->cap; i++) {
                p->sent[p->n] = PT.rec[i].t_sent;
                p->rtt[p->n++] = PT.rec[i].t_reply - PT.rec[i].t_sent;
        }
}

/* pings one after another for `seconds`; returns the longest round trip */
static void ping_for(pinger *p, double seconds, bool (*stop)(void *), void *userdata) {
        uint64_t end = now_ns() + (uint64_t) (seconds * 1e9);

        if (opt.ping_thread) {
                ping_thread_for(p, seconds, stop, userdata);
                return;
        }
        p->n = 0;
        for (;;) {
                if (stop != NULL && now_ns() > end + 120 * SEC)
                        die("the change did not complete within 120 s");
                pinger_kick(p);
                if (sd_event_run(p->e->event, 1000) < 0)
                        die("event loop failed");
                if (!pid_alive(p->e->pcpd_pid))
                        die("pcpd died");
                if (now_ns() >= end && !p->busy && (stop == NULL || stop(userdata)))
                        break;
        }
}

typedef struct one_change {
        bool replied;
        uint64_t id;
        char path[128];
} one_change;

static int on_change_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        one_change *c = userdata;
        const sd_bus_error *err = sd_bus_message_get_error(m);
        const char *path;

        if (err != NULL)
                die("the change failed: %s: %s", err->name, err->message ?: "");
        if (c->path[0] == '\0' && sd_bus_message_read(m, "o", &path) >= 0) {
                snprintf(c->path, sizeof(c->path), "%s", path);
                c->id = path_id(path);
        }
        c->replied = true;
        return 0;
}

static bool change_active(void *userdata) {
        one_change *c = userdata;
        return c->replied && rec_for(c->id)->t_active != 0;
}

static bool change_removed(void *userdata) {
        one_change *c = userdata;
        return c->replied && rec_for(c->id)->t_removed != 0;
}

/* Holders that leave the bus: n_conns connections of their own, per_conn mappings each
 * (keys first..; at most opt.window calls in flight per connection), all active; then the
 * connections are closed one right after another and the bus tells pcpd their names left. */
typedef struct leavers {
        env *e;
        sd_bus **b;
        size_t n_conns, per_conn, first;
        size_t *sent, *inflight; /* per connection */
        size_t replied, errors;
        uint64_t *ids; /* the mappings' ids as the replies gave them */
        uint64_t active0, removed0;
        char first_error[256];
} leavers;

typedef struct leaver_call {
        leavers *l;
        size_t conn;
} leaver_call;

static int on_leaver_reply(sd_bus_message *m, void *userdata, sd_bus_error *error);

static void leavers_fill(leavers *l, size_t c) {
        while (l->sent[c] < l->per_conn && l->inflight[c] < opt.window) {
                const char *proto;
                uint16_t port;
                leaver_call *lc = xcalloc(1, sizeof(*lc));

                lc->l = l;
                lc->conn = c;
                job_key(l->first + c * l->per_conn + l->sent[c], &proto, &port);
                l->sent[c]++;
                l->inflight[c]++;
                send_async(l->b[c], new_add(l->b[c], proto, port), on_leaver_reply, lc);
        }
}

static int on_leaver_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        leaver_call *lc = userdata;
        leavers *l = lc->l;
        const sd_bus_error *err = sd_bus_message_get_error(m);

        l->inflight[lc->conn]--;
        if (err != NULL) {
                l->errors++;
                if (l->first_error[0] == '\0')
                        snprintf(l->first_error, sizeof(l->first_error), "%s: %s", err->name, err->message ?: "");
        } else {
                const char *path;
                if (sd_bus_message_read(m, "o", &path) >= 0)
                        l->ids[l->replied] = path_id(path);
                l->replied++;
        }
        leavers_fill(l, lc->conn);
        free(lc);
        return 0;
}

static bool leavers_active(void *userdata) {
        leavers *l = userdata;

        if (l->errors > 0)
                die("%zu AddMapping calls of the leaving holders failed, the first: %s", l->errors, l->first_error);
        return l->replied == l->n_conns * l->per_conn && W.active - l->active0 >= l->n_conns * l->per_conn;
}

static bool leavers_removed(void *userdata) {
        leavers *l = userdata;
        return W.removed - l->removed0 >= l->n_conns * l->per_conn;
}

/* Makes the holders and their mappings; returns when all are active. */
static void leavers_hold(leavers *l, env *e, size_t n_conns, size_t per_conn, size_t first) {
        memset(l, 0, sizeof(*l));
        l->e = e;
        l->n_conns = n_conns;
        l->per_conn = per_conn;
        l->first = first;
        l->b = xcalloc(n_conns, sizeof(sd_bus *));
        l->sent = xcalloc(n_conns, sizeof(size_t));
        l->inflight = xcalloc(n_conns, sizeof(size_t));
        l->ids = xcalloc(n_conns * per_conn, sizeof(uint64_t));
        l->active0 = W.active;
        for (size_t c = 0; c < n_conns; c++) {
                l->b[c] = bus_connect(e->address, false);
                if (sd_bus_attach_event(l->b[c], e->event, 0) < 0)
                        die("sd_bus_attach_event failed");
        }
        for (size_t c = 0; c < n_conns; c++)
                leavers_fill(l, c);
        run_loop_until(e, leavers_active, l, 600, "the leaving holders' mappings active");
}

/* Closes every holder's connection, one right after another. */
static void leavers_leave(leavers *l) {
        l->removed0 = W.removed;
        for (size_t c = 0; c < l->n_conns; c++)
                l->b[c] = sd_bus_flush_close_unref(l->b[c]);
}

static void leavers_free(leavers *l) {
        free(l->b);
        free(l->sent);
        free(l->inflight);
        free(l->ids);
}

/* when the last of their mappings was seen removed */
static uint64_t leavers_t_removed(leavers *l) {
        uint64_t t = 0;
        for (size_t i = 0; i < l->replied; i++)
                if (rec_for(l->ids[i])->t_removed > t)
                        t = rec_for(l->ids[i])->t_removed;
        return t;
}

/* --leave-trace: pcpd's end of its bus connection (pidfd_getfd(): the same socket), found
 * as the Unix socket whose peer is the bus's listening path; -1 if none */
static int pcpd_bus_fd(env *e) {
        int pidfd = (int) syscall(SYS_pidfd_open, e->pcpd_pid, 0), found = -1;
        char *path = xasprintf("/proc/%d/fd", (int) e->pcpd_pid), *sock = xasprintf("%s/bus.sock", e->tmp);
        DIR *d = pidfd >= 0 ? opendir(path) : NULL;
        struct dirent *de;

        while (d != NULL && found < 0 && (de = readdir(d)) != NULL) {
                struct sockaddr_un sa;
                socklen_t l = sizeof(sa);
                int fd;

                if (de->d_name[0] == '.')
                        continue;
                fd = (int) syscall(SYS_pidfd_getfd, pidfd, atoi(de->d_name), 0);
                if (fd < 0)
                        continue;
                memset(&sa, 0, sizeof(sa));
                if (getpeername(fd, (struct sockaddr *) &sa, &l) == 0 && sa.sun_family == AF_UNIX &&
                    strncmp(sa.sun_path, sock, sizeof(sa.sun_path)) == 0)
                        found = fd;
                else
                        close(fd);
        }
        if (d != NULL)
                closedir(d);
        if (pidfd >= 0)
                close(pidfd);
        free(path);
        free(sock);
        return found;
}

/* --leave-trace: the octets queued on the sockets of interest, sampled every 50 µs; a row
 * when one of them changes. pcpd_in: sent to pcpd, not yet read by it; pcpd_out: written by
 * pcpd, not yet read by dbus-daemon (SIOCOUTQ: the socket buffers' memory, not only the
 * payload); watch_in, ping_in: delivered to the bench's watcher / pinger, not yet read. */
typedef struct q_rec {
        uint64_t t;
        int pcpd_in, pcpd_out, watch_in, ping_in;
} q_rec;

static struct {
        pthread_t thread;
        atomic_bool stop;
        int fd_pcpd, fd_watch, fd_ping;
        q_rec *rec;
        size_t n, cap;
} QS;

static int sock_queued(int fd, unsigned long req) {
        int v = -1;

        if (fd >= 0 && ioctl(fd, req, &v) < 0)
                v = -1;
        return v;
}

static void *q_thread(void *arg) {
        q_rec last = {0, -2, -2, -2, -2};

        (void) arg;
        while (!atomic_load(&QS.stop)) {
                q_rec r = {now_ns(), sock_queued(QS.fd_pcpd, SIOCINQ), sock_queued(QS.fd_pcpd, SIOCOUTQ),
                           sock_queued(QS.fd_watch, SIOCINQ), sock_queued(QS.fd_ping, SIOCINQ)};
                struct timespec ts = {0, 50000};

                if ((r.pcpd_in != last.pcpd_in || r.pcpd_out != last.pcpd_out || r.watch_in != last.watch_in ||
                     r.ping_in != last.ping_in) &&
                    QS.n < QS.cap)
                        QS.rec[QS.n++] = r;
                last = r;
                nanosleep(&ts, NULL);
        }
        return NULL;
}

static void leave_trace_start(env *e, pinger *pg) {
        QS.fd_pcpd = pcpd_bus_fd(e);
        if (QS.fd_pcpd < 0)
                note("--leave-trace: pcpd's bus socket not found; its queues are not sampled");
        QS.fd_watch = sd_bus_get_fd(e->watch);
        QS.fd_ping = sd_bus_get_fd(opt.ping_thread ? PT.bus : e->conn[pg->conn]);
        QS.cap = 1u << 20;
        QS.n = 0;
        QS.rec = xcalloc(QS.cap, sizeof(q_rec));
        atomic_store(&QS.stop, false);
        if (pthread_create(&QS.thread, NULL, q_thread, NULL) != 0)
                die("pthread_create failed");
        ST.cap = 1u << 20;
        ST.n = 0;
        ST.rec = xcalloc(ST.cap, sizeof(sig_rec));
        ST.on = true;
}

/* The longest time octets sent to pcpd waited unread in its bus socket (from the first
 * sample that saw them to the first that saw none): how long pcpd's loop did not read the
 * bus, whatever the bus then does with its replies. Only as fine as the samples: the longest
 * gap between two is reported next to it. */
static void leave_trace_unread(const char *key) {
        uint64_t start = 0, longest = 0, gap = 0;
        char k[64];

        for (size_t i = 0; i < QS.n; i++) {
                if (i > 0 && QS.rec[i].t - QS.rec[i - 1].t > gap)
                        gap = QS.rec[i].t - QS.rec[i - 1].t;
                if (QS.rec[i].pcpd_in > 0 && start == 0)
                        start = QS.rec[i].t;
                else if (QS.rec[i].pcpd_in == 0 && start != 0) {
                        if (QS.rec[i].t - start > longest)
                                longest = QS.rec[i].t - start;
                        start = 0;
                }
        }
        if (QS.fd_pcpd < 0)
                return;
        snprintf(k, sizeof(k), "%s_pcpd_unread_max_ms", key);
        result(k, "%.1f", ms(longest));
        snprintf(k, sizeof(k), "%s_sample_gap_max_ms", key);
        result(k, "%.1f", ms(gap));
}

/* stops the sampler; with --leave-trace writes PREFIX.KEY.csv: times in µs from t0 (the
 * first close) */
static void leave_trace_stop(pinger *pg, const char *key, uint64_t t0) {
        char *path;
        FILE *f;

        atomic_store(&QS.stop, true);
        pthread_join(QS.thread, NULL);
        ST.on = false;
        leave_trace_unread(key);
        if (QS.fd_pcpd >= 0)
                close(QS.fd_pcpd);
        if (opt.leave_trace == NULL) {
                free(QS.rec);
                free(ST.rec);
                QS.rec = NULL;
                ST.rec = NULL;
                return;
        }
        path = xasprintf("%s.%s.csv", opt.leave_trace, key);
        f = fopen(path, "w");
        if (f == NULL)
                die("cannot write %s: %m", path);
        fprintf(f, "# %s: us from the first close; ping,sent,reply; sig,t,kind; q,t,pcpd_in,pcpd_out,watch_in,"
                   "ping_in\n", key);
#define REL(t) ((double) ((int64_t) (t) - (int64_t) t0) / 1e3)
        for (size_t i = 0; i < pg->n; i++)
                fprintf(f, "ping,%.1f,%.1f\n", REL(pg->sent[i]), REL(pg->sent[i] + pg->rtt[i]));
        for (size_t i = 0; i < ST.n; i++)
                fprintf(f, "sig,%.1f,%c\n", REL(ST.rec[i].t), ST.rec[i].kind);
        for (size_t i = 0; i < QS.n; i++)
                fprintf(f, "q,%.1f,%d,%d,%d,%d\n", REL(QS.rec[i].t), QS.rec[i].pcpd_in, QS.rec[i].pcpd_out,
                        QS.rec[i].watch_in, QS.rec[i].ping_in);
#undef REL
        fclose(f);
        note("--leave-trace: %s (%zu pings, %zu signals, %zu queue samples)", path, pg->n, ST.n, QS.n);
        free(path);
        free(QS.rec);
        free(ST.rec);
        QS.rec = NULL;
        ST.rec = NULL;
}

/* One case of holders leaving while the pinger runs: n_conns holders of per_conn mappings
 * each; the pings from 1 s before they leave until all their mappings are removed and at
 * least 2.5 s have passed. Returns the longest ping round trip while they left. */
static double stall_leave(env *e, pinger *pg, const char *key, size_t n_conns, size_t per_conn, size_t first) {
        leavers l;
        dist before, leave;
        char k[64];
        uint64_t t0, t1;

        leavers_hold(&l, e, n_conns, per_conn, first);
        ping_for(pg, 1, NULL, NULL);
        before = dist_of(pg->rtt, pg->n);
        leave_trace_start(e, pg);
        t0 = now_ns();
        leavers_leave(&l);
        ping_for(pg, 2.5, leavers_removed, &l);
        leave_trace_stop(pg, key, t0);
        leave = dist_of(pg->rtt, pg->n);
        t1 = leavers_t_removed(&l);
        snprintf(k, sizeof(k), "%s_ping_max_ms", key);
        result(k, "%.1f", leave.max);
        snprintf(k, sizeof(k), "%s_before_ping_max_ms", key);
        result(k, "%.1f", before.max);
        snprintf(k, sizeof(k), "%s_removed_ms", key);
        result(k, "%.1f", ms(t1 - t0));
        note("%zu holder(s) of %zu mapping(s) each leave the bus: longest ping %.1f ms (%zu pings; 1 s before: "
             "%.1f ms); all their mappings removed %.1f ms after the first connection closed",
             n_conns, per_conn, leave.max, leave.n, before.max, ms(t1 - t0));
        leavers_free(&l);
        return leave.max;
}

/* every thread of pid (0: this process) at SCHED_FIFO prio */
static void set_fifo(pid_t pid, int prio) {
        char *path = pid > 0 ? xasprintf("/proc/%d/task", (int) pid) : xasprintf("/proc/self/task");
        DIR *d = opendir(path);
        struct dirent *de;
        struct sched_param sp = {.sched_priority = prio};

        if (d == NULL)
                die("--rt: %s: %m", path);
        while ((de = readdir(d)) != NULL)
                if (de->d_name[0] != '.' && sched_setscheduler(atoi(de->d_name), SCHED_FIFO, &sp) < 0)
                        die("--rt: sched_setscheduler(%s, SCHED_FIFO, %d): %m", de->d_name, prio);
        closedir(d);
        free(path);
}

/* --rt: other work on the machine can no longer delay what is measured; the bench (its
 * pinger, the watcher and the sampler) one priority above pcpd, dbus-daemon and the
 * responder, so that it reads a reply as soon as it arrives instead of waiting, at equal
 * SCHED_FIFO priority, for one of them to block (2 cores, 3 busy processes: the bench
 * could wait 17 ms for a core with the reply in its socket) */
static void stall_rt(env *e) {
        set_fifo(e->pcpd_pid, 10);
        set_fifo(e->bus_pid, 10);
        set_fifo(e->server_pid, 10);
        set_fifo(0, 11);
        note("--rt: pcpd, dbus-daemon and the responder at SCHED_FIFO 10, the bench at 11");
}

static void phase_stall(void) {
        env_config cfg = {0};
        env *e = env_start(&cfg);
        pipeline pm;
        pinger pg = {.e = e, .conn = 1};
        one_change ch = {0};
        dist quiet, add, rel;
        size_t n = opt.n_hold;

        watch_signals(e);
        pg.cap = 1000000;
        pg.rtt = xcalloc(pg.cap, sizeof(uint64_t));
        pg.sent = xcalloc(pg.cap, sizeof(uint64_t));
        pipeline_run(e, &pm, 0, n, false, 3600);
        if (opt.ping_thread)
                ping_thread_start(e);
        if (opt.rt)
                stall_rt(e);
        note("%zu mappings held after %.0f ms", n, ms(pm.t_active - pm.t_start));
        result("hold_n", "%zu", n);
        result("hold_active_ms", "%.1f", ms(pm.t_active - pm.t_start));

        /* let the creation's snapshot writes finish: ping until 2 s pass without a slow one */
        for (int k = 0; k < 30; k++) {
                ping_for(&pg, 2, NULL, NULL);
                if (dist_of(pg.rtt, pg.n).max < 50)
                        break;
        }
        ping_for(&pg, 2, NULL, NULL);
        quiet = dist_of(pg.rtt, pg.n);

        /* one mapping added while the pinger runs, then 2 s more */
        {
                /* the next key after the held ones */
                const char *proto;
                uint16_t port;
                job_key(n, &proto, &port);
                send_async(e->conn[0], new_add(e->conn[0], proto, port), on_change_reply, &ch);
        }
        ping_for(&pg, 2.5, change_active, &ch);
        add = dist_of(pg.rtt, pg.n);

        ch.replied = false;
        send_async(e->conn[0], new_call(e->conn[0], ch.path, PCP1_MAPPING_IFACE, "Release"), on_change_reply,
                   &ch);
        ping_for(&pg, 2.5, change_removed, &ch);
        rel = dist_of(pg.rtt, pg.n);

        result("quiet_ping_max_ms", "%.1f", quiet.max);
        result("quiet_ping_median_ms", "%.3f", quiet.median);
        result("add_ping_max_ms", "%.1f", add.max);
        result("release_ping_max_ms", "%.1f", rel.max);
        result("stall_max_ms", "%.1f", add.max > rel.max ? add.max : rel.max);
        note("pings one after another with %zu held: quiet 2 s max %.1f ms (median %.3f); while one is "
             "added "
             "max %.1f ms (%zu pings); while it is released max %.1f ms (%zu pings) (target: no stall over "
             "20 ms)",
             n, quiet.max, quiet.median, add.max, add.n, rel.max, rel.n);

        /* holders leaving the bus, each case with the keys after the previous one's */
        if (n + 1 + 1 + opt.n_leave_many + opt.n_leavers > 131070)
                note("--hold %zu leaves too few keys for the holders that leave: not measured", n);
        else {
                size_t next = n + 1;
                double worst = 0, x;

                x = stall_leave(e, &pg, "leave_one", 1, 1, next);
                worst = x > worst ? x : worst;
                next += 1;
                x = stall_leave(e, &pg, "leave_many", 1, opt.n_leave_many, next);
                worst = x > worst ? x : worst;
                next += opt.n_leave_many;
                x = stall_leave(e, &pg, "leave_several", opt.n_leavers, 1, next);
                worst = x > worst ? x : worst;
                result("leave_n_many", "%u", opt.n_leave_many);
                result("leave_n_holders", "%u", opt.n_leavers);
                result("leave_stall_max_ms", "%.1f", worst);
        }
        report_mem(e, "held");
        ping_thread_stop();
        free(pg.rtt);
        free(pg.sent);
        pipeline_free(&pm);
        env_stop(e);
}

/* ---- phase: idle ---- */

static void phase_idle(void) {
        env_config cfg = {.valgrind = opt.measure == MEASURE_CALLGRIND || opt.measure == MEASURE_MASSIF};
        env *e = env_start(&cfg);
        window w;
        uint64_t counted;

        run_loop_for(e, 1);
        window_begin(e, &w, "idle");
        run_loop_for(e, opt.idle_seconds);
        counted = window_end(e, &w, 1, "window");
        if (opt.measure == MEASURE_STRACE || opt.measure == MEASURE_CALLGRIND)
                note("idle %u s with no mappings: %" PRIu64 " %s", opt.idle_seconds, counted,
                     opt.measure == MEASURE_STRACE ? "system calls" : "instructions");
        else
                note("idle %u s with no mappings: the wake-ups are pcpd_voluntary_ctxt_switches above "
                     "(--measure strace counts system calls)",
                     opt.idle_seconds);
        env_stop(e);
}

/* ---- phase: renew ---- */

static void phase_renew(void) {
        env_config cfg = {.lifetime_cap = opt.lifetime_cap,
                          .valgrind = opt.measure == MEASURE_CALLGRIND || opt.measure == MEASURE_MASSIF};
        env *e;
        pipeline pm;
        window w;
        uint64_t counted, renewals;
        responder_stats r0, r1;

        if (opt.refserver)
                die("the renew phase counts renewals at the stateless responder: leave out --server "
                    "refserver");
        e = env_start(&cfg);
        watch_signals(e);
        pipeline_run(e, &pm, 0, opt.n_renew, false, 600);
        run_loop_for(e, 1);
        r0 = responder_now(e);
        window_begin(e, &w, "renew");
        run_loop_for(e, opt.renew_seconds);
        r1 = responder_now(e);
        renewals = r1.map - r0.map;
        counted = window_end(e, &w, (double) (renewals ? renewals : 1), "renewal");
        result("renewals", "%" PRIu64, renewals);
        result("lifetime_s", "%u", opt.lifetime_cap);
        note("%u mappings granted %u s each, %u s: %" PRIu64 " renewals (%.2f per mapping per lifetime)%s",
             opt.n_renew, opt.lifetime_cap, opt.renew_seconds, renewals,
             (double) renewals / opt.n_renew / ((double) opt.renew_seconds / opt.lifetime_cap),
             opt.measure == MEASURE_NONE ? "" : "");
        if (opt.measure != MEASURE_NONE && renewals > 0)
                note("%.1f %s per renewal", (double) counted / (double) renewals,
                     opt.measure == MEASURE_STRACE ? "system calls" : "instructions");
        pipeline_free(&pm);
        env_stop(e);
}

/* ---- phase: pcpctl ---- */

static uint64_t last_child_cpu; /* user + system CPU of the last run_timed() child, ns */

static uint64_t run_timed(const char *const *argv, const char *address) {
        const char *envv[] = {"DBUS_SYSTEM_BUS_ADDRESS", address, NULL};
        uint64_t t0 = now_ns(), t;
        pid_t pid = spawn(argv, "/dev/null", envv);
        struct rusage ru;
        int status;

        if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("%s exited with status %d", argv[0], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        t = now_ns() - t0;
        last_child_cpu = ((uint64_t) ru.ru_utime.tv_sec + (uint64_t) ru.ru_stime.tv_sec) * SEC +
                         ((uint64_t) ru.ru_utime.tv_usec + (uint64_t) ru.ru_stime.tv_usec) * 1000;
        return t;
}

static bool last_added_is(void *userdata) {
        return W.last_added >= *(uint64_t *) userdata;
}

static bool last_removed(void *userdata) {
        return rec_for(*(uint64_t *) userdata)->t_removed != 0;
}

typedef enum cmd_kind {
        CMD_MAP,
        CMD_STATUS,
        CMD_BUSCTL,
        CMD_DBUS_SEND,
        CMD_TRUE,
        _CMD_MAX,
} cmd_kind;

static const char *const cmd_key[_CMD_MAX] = {"pcpctl_map", "pcpctl_status", "busctl_ping", "dbus_send_ping",
                                              "true"};
static const char *const cmd_what[_CMD_MAX] = {
        "pcpctl map udp P --wait --persistent",
        "pcpctl status",
        "busctl call ... Peer.Ping",
        "dbus-send --print-reply ... Peer.Ping",
        "/bin/true (fork, exec, wait)",
};

/* One run of a command as a whole process; a mapping pcpctl made is released afterwards
 * (untimed) and its removal awaited, so that every run starts from the same state. */
static uint64_t pcpctl_run(env *e, cmd_kind k, unsigned i) {
        char *pcpctl = xasprintf("%s/clients/pcpctl", opt.build), port[16];
        const char *argv[12] = {NULL};
        uint64_t want = W.last_added + 1, t;

        snprintf(port, sizeof(port), "%u", 31000 + i % 30000);
        switch (k) {
        case CMD_MAP:
                memcpy(argv, (const char *[]){pcpctl, "map", "udp", port, "--wait", "--persistent", NULL},
                       7 * sizeof(char *));
                break;
        case CMD_STATUS:
                memcpy(argv, (const char *[]){pcpctl, "status", NULL}, 3 * sizeof(char *));
                break;
        case CMD_BUSCTL:
                memcpy(argv,
                       (const char *[]){"busctl", "--address", e->address, "call", PCP1_BUS_NAME,
                                        PCP1_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", NULL},
                       9 * sizeof(char *));
                break;
        case CMD_DBUS_SEND:
                memcpy(argv,
                       (const char *[]){"dbus-send", "--system", "--print-reply", "--dest=" PCP1_BUS_NAME,
                                        PCP1_MANAGER_PATH, "org.freedesktop.DBus.Peer.Ping", NULL},
                       7 * sizeof(char *));
                break;
        case CMD_TRUE:
        default:
                argv[0] = "/bin/true";
                break;
        }
        t = run_timed(argv, e->address);
        if (k == CMD_MAP) {
                char *path;
                sd_bus_error err = SD_BUS_ERROR_NULL;
                uint64_t id;

                run_loop_until(e, last_added_is, &want, 30, "the mapping pcpctl made (InterfacesAdded)");
                id = W.last_added;
                path = xasprintf(PCP1_MAPPING_PATH_PREFIX "/%" PRIu64, id);
                if (sd_bus_call_method(e->watch, PCP1_BUS_NAME, path, PCP1_MAPPING_IFACE, "Release", &err,
                                       NULL, "") < 0)
                        die("Release %s: %s", path, err.message ?: "?");
                sd_bus_error_free(&err);
                free(path);
                run_loop_until(e, last_removed, &id, 30, "MappingRemoved of pcpctl's mapping");
        }
        free(pcpctl);
        return t;
}

static void phase_pcpctl(void) {
        env_config cfg = {0};
        env *e = env_start(&cfg);
        unsigned n = opt.n_pcpctl, run = 0;
        uint64_t *v = xcalloc(n, sizeof(uint64_t)), *cpu = xcalloc(n, sizeof(uint64_t));

        watch_signals(e);
        for (int k = 0; k < _CMD_MAX; k++) {
                /* warm: back to back, like hyperfine (3 runs first, not counted); cold: each
                 * run after 0.3 s of nothing, as when a person types it (caches, the VM's
                 * idle CPU) */
                for (int cold = 0; cold < 2; cold++) {
                        char key[64], what[128];
                        for (unsigned i = 0; i < n + 3; i++) {
                                uint64_t t;
                                if (cold)
                                        run_loop_for(e, 0.3);
                                t = pcpctl_run(e, (cmd_kind) k, run++);
                                if (i >= 3) {
                                        v[i - 3] = t;
                                        cpu[i - 3] = last_child_cpu;
                                }
                        }
                        snprintf(key, sizeof(key), "%s_%s", cmd_key[k], cold ? "cold" : "warm");
                        snprintf(what, sizeof(what), "%s, %s", cmd_what[k],
                                 cold ? "cold (after 0.3 s idle)" : "warm (back to back)");
                        print_dist(key, what, v, n);
                        snprintf(key, sizeof(key), "%s_%s_cpu", cmd_key[k], cold ? "cold" : "warm");
                        snprintf(what, sizeof(what), "  its CPU (user + system)");
                        print_dist(key, what, cpu, n);
                }
        }
        free(v);
        free(cpu);
        env_stop(e);
}

/* ---- phase: udp (the engine in-process over real UDP, against a bare UDP client) ---- */

typedef struct udp_client {
        int fd;
        struct in6_addr local; /* IPv4-mapped, as the engine and the codec want it */
        struct sockaddr_in6 server;
        uint64_t done, send_errors;
        uint32_t server_state;
        uint8_t pool[256];
        size_t pool_left;
} udp_client;

static uint64_t cpu_self_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * SEC + (uint64_t) ts.tv_nsec;
}

static uint64_t engine_now(void) {
        return now_ns() / 1000000;
}

static void udp_open(udp_client *c, const char *ip) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(SERVER_PORT)}, l;
        socklen_t ll = sizeof(l);
        int buf = 4 << 20;

        memset(c, 0, sizeof(*c));
        inet_pton(AF_INET, ip, &a.sin_addr);
        c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *) &a, sizeof(a)) < 0 ||
            getsockname(c->fd, (struct sockaddr *) &l, &ll) < 0)
                die("cannot open a UDP socket to %s:%u: %m", ip, SERVER_PORT);
        /* the same buffers for both clients (pcpd's socket has the kernel's defaults) */
        if (setsockopt(c->fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
                (void) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
        if (setsockopt(c->fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) < 0)
                (void) setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
        pcp_addr_from_ipv4(&l.sin_addr, &c->local);
        c->server.sin6_family = AF_INET6;
        c->server.sin6_port = a.sin_port;
        pcp_addr_from_ipv4(&a.sin_addr, &c->server.sin6_addr);
}

static uint8_t job_protocol(size_t i) {
        const char *proto;
        uint16_t port;

        job_key(i, &proto, &port);
        return strcmp(proto, "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
}

static uint16_t job_port(size_t i) {
        const char *proto;
        uint16_t port;

        job_key(i, &proto, &port);
        return port;
}

typedef struct udp_result {
        uint64_t wall, cpu, drops, lost;
} udp_result;

/* The floor: n MAP requests encoded beforehand, sent as fast as the socket takes them
 * (reading answers every 64 sends), until every answer is in. No state, no timers. */
static udp_result udp_bare(const char *ip, size_t n) {
        udp_client c;
        uint8_t(*req)[64] = xcalloc(n, 64);
        size_t *len = xcalloc(n, sizeof(size_t)), sent = 0;
        uint8_t *nonces = xcalloc(n, PCP_NONCE_LEN);
        uint64_t t0, cpu0, drops0, last_progress;
        udp_result res = {0};

        udp_open(&c, ip);
        for (size_t off = 0; off < n * PCP_NONCE_LEN;) {
                ssize_t k = getrandom(nonces + off, n * PCP_NONCE_LEN - off, 0);
                if (k <= 0)
                        die("getrandom failed");
                off += (size_t) k;
        }
        for (size_t i = 0; i < n; i++) {
                pcp_msg m;
                pcp_msg_init(&m, false, PCP_OPCODE_MAP);
                m.lifetime = 3600;
                m.client_addr = c.local;
                memcpy(m.nonce, nonces + i * PCP_NONCE_LEN, PCP_NONCE_LEN);
                m.protocol = job_protocol(i);
                m.internal_port = job_port(i);
                if (pcp_encode(&m, req[i], sizeof(req[i]), &len[i]) != PCP_WIRE_OK)
                        die("cannot encode a MAP request");
        }
        drops0 = proc_udp_drops(getpid());
        cpu0 = cpu_self_ns();
        t0 = last_progress = now_ns();
        while (c.done < n) {
                for (size_t k = 0; sent < n && k < 64; k++, sent++)
                        if (send(c.fd, req[sent], len[sent], 0) < 0) {
                                if (errno != EAGAIN && errno != ENOBUFS)
                                        die("send: %m");
                                break;
                        }
                for (;;) {
                        uint8_t buf[PCP_MAX_MSG_LEN];
                        pcp_msg m;
                        ssize_t k = recv(c.fd, buf, sizeof(buf), 0);
                        if (k < 0)
                                break;
                        if (pcp_decode(buf, (size_t) k, true, &m) == PCP_WIRE_OK &&
                            m.opcode == PCP_OPCODE_MAP && m.result == PCP_RESULT_SUCCESS) {
                                c.done++;
                                last_progress = now_ns();
                        }
                }
                if (sent == n && c.done < n) {
                        struct pollfd pf = {.fd = c.fd, .events = POLLIN};
                        (void) poll(&pf, 1, 100);
                        if (now_ns() - last_progress > 2 * SEC)
                                break; /* the rest is lost: no retransmission here */
                }
        }
        res.wall = now_ns() - t0;
        res.cpu = cpu_self_ns() - cpu0;
        res.drops = proc_udp_drops(getpid()) - drops0;
        res.lost = n - c.done;
        close(c.fd);
        free(req);
        free(len);
        free(nonces);
        return res;
}

/* what pcpd does after every engine call: send the datagrams it has, read its events */
static void udp_engine_pull(pcp_engine *e, udp_client *c) {
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        pcp_event ev;
        int n;

        while ((n = pcp_engine_next_datagram(e, NULL, NULL, buf, sizeof(buf))) > 0)
                if (send(c->fd, buf, (size_t) n, 0) < 0)
                        c->send_errors++;
        while (pcp_engine_next_event(e, &ev) > 0) {
                if (ev.type == PCP_EVENT_MAPPING && ev.mapping != NULL && ev.mapping->state == PCP_MAPPING_ACTIVE)
                        c->done++;
                else if (ev.type == PCP_EVENT_SERVER && ev.server != NULL)
                        c->server_state = ev.server->state;
        }
}

/* as pcpd draws randomness: 256 bytes per getrandom() */
static void on_udp_random(void *userdata, void *buf, size_t len) {
        udp_client *c = userdata;
        uint8_t *out = buf;

        while (len > 0) {
                size_t k;
                if (c->pool_left == 0) {
                        if (getrandom(c->pool, sizeof(c->pool), 0) != (ssize_t) sizeof(c->pool))
                                die("getrandom failed");
                        c->pool_left = sizeof(c->pool);
                }
                k = len < c->pool_left ? len : c->pool_left;
                memcpy(out, c->pool + c->pool_left - k, k);
                c->pool_left -= k;
                out += k;
                len -= k;
        }
}

static void udp_engine_drain(pcp_engine *e, udp_client *c, uint32_t sid) {
        for (;;) {
                uint8_t buf[PCP_MAX_MSG_LEN + 4];
                ssize_t k = recv(c->fd, buf, sizeof(buf), 0);
                if (k < 0)
                        break;
                pcp_engine_receive(e, engine_now(), sid, 0, &c->server, buf, (size_t) k);
                udp_engine_pull(e, c);
        }
}

/* The engine as pcpd drives it (its send callback, batched randomness, its timers), in
 * this process over the same kind of socket: n mappings added at once (reading answers
 * every 64 adds, as pcpd's loop would between bus messages), until every one is active. */
static udp_result udp_engine(const char *ip, size_t n) {
        udp_client c;
        pcp_engine_config cfg = {.max_mappings = n};
        pcp_engine_ops ops = {.random = on_udp_random};
        pcp_server_addr a;
        pcp_engine *e = NULL;
        uint32_t sid;
        uint64_t t0, cpu0, drops0, end;
        udp_result res = {0};

        udp_open(&c, ip);
        if (pcp_engine_new(&cfg, &ops, &c, &e) < 0)
                die("pcp_engine_new failed");
        memset(&a, 0, sizeof(a));
        a.remote = c.server;
        a.local = c.local;
        if (pcp_engine_add_server(e, engine_now(), &a, 1, &sid) < 0)
                die("pcp_engine_add_server failed");
        udp_engine_pull(e, &c);
        /* the server probe (ANNOUNCE) and its answer, before the clock starts */
        end = now_ns() + 5 * SEC;
        while (c.server_state != PCP_SERVER_PCP) {
                struct pollfd pf = {.fd = c.fd, .events = POLLIN};
                if (now_ns() > end)
                        die("the responder did not answer the engine's probe");
                (void) poll(&pf, 1, 50);
                udp_engine_drain(e, &c, sid);
                pcp_engine_process_timers(e, engine_now());
                udp_engine_pull(e, &c);
        }
        drops0 = proc_udp_drops(getpid());
        cpu0 = cpu_self_ns();
        t0 = now_ns();
        for (size_t i = 0; i < n; i++) {
                pcp_mapping_params p = {
                        .server_id = sid,
                        .opcode = PCP_OPCODE_MAP,
                        .protocol = job_protocol(i),
                        .internal_port = job_port(i),
                        .lifetime = 3600,
                };
                uint64_t id;
                if (pcp_engine_add_mapping(e, engine_now(), &p, &id) < 0)
                        die("pcp_engine_add_mapping failed");
                udp_engine_pull(e, &c);
                if (i % 64 == 63)
                        udp_engine_drain(e, &c, sid);
        }
        end = now_ns() + 60 * SEC;
        while (c.done < n && now_ns() < end) {
                struct pollfd pf = {.fd = c.fd, .events = POLLIN};
                uint64_t d = pcp_engine_next_deadline(e), nowm = engine_now();
                int timeout = d == PCP_NEVER ? 100 : d <= nowm ? 0 : (int) (d - nowm < 100 ? d - nowm : 100);
                (void) poll(&pf, 1, timeout);
                udp_engine_drain(e, &c, sid);
                pcp_engine_process_timers(e, engine_now());
                udp_engine_pull(e, &c);
        }
        res.wall = now_ns() - t0;
        res.cpu = cpu_self_ns() - cpu0;
        res.drops = proc_udp_drops(getpid()) - drops0;
        res.lost = pcp_engine_get_stats(e)->retransmissions;
        if (c.done < n)
                die("the engine had %" PRIu64 " of %zu mappings active after 60 s", c.done, n);
        pcp_engine_free(e);
        close(c.fd);
        return res;
}

static void phase_udp(void) {
        char *ip = unique_address();
        volatile responder_stats *rs = NULL;
        pid_t responder = responder_start(ip, 0, &rs);
        size_t n = opt.n_burst;
        unsigned runs = 5;
        uint64_t *bw = xcalloc(runs, sizeof(uint64_t)), *ew = xcalloc(runs, sizeof(uint64_t));
        uint64_t *bc = xcalloc(runs, sizeof(uint64_t)), *ec = xcalloc(runs, sizeof(uint64_t));
        uint64_t drops = 0, lost = 0, retr = 0;
        dist db, de;

        for (unsigned r = 0; r < runs; r++) {
                udp_result b = udp_bare(ip, n), en = udp_engine(ip, n);
                bw[r] = b.wall;
                bc[r] = b.cpu;
                ew[r] = en.wall;
                ec[r] = en.cpu;
                drops += b.drops + en.drops;
                lost += b.lost;
                retr += en.lost;
        }
        stop_process(&responder, SIGTERM, 2000);
        munmap((void *) rs, sizeof(responder_stats));
        free(ip);
        de = dist_of(ew, runs);
        db = dist_of(bw, runs);
        result("n", "%zu", n);
        result("bare_ms", "%.2f", db.median);
        result("engine_ms", "%.2f", de.median);
        result("engine_over_bare", "%.2f", db.median > 0 ? de.median / db.median : 0);
        print_dist("bare", "bare UDP client, n requests until n answers (wall)", bw, runs);
        print_dist("bare_cpu", "  its CPU", bc, runs);
        print_dist("engine", "the engine over UDP, n mappings until n active (wall)", ew, runs);
        print_dist("engine_cpu", "  its CPU", ec, runs);
        result("udp_drops", "%" PRIu64, drops);
        result("bare_lost", "%" PRIu64, lost);
        result("engine_retransmissions", "%" PRIu64, retr);
        note("%zu at once, %u runs each, alternating: the engine takes %.2f x the bare client (target <= "
             "2); "
             "drops %" PRIu64 ", bare answers lost %" PRIu64 ", engine retransmissions %" PRIu64,
             n, runs, db.median > 0 ? de.median / db.median : 0, drops, lost, retr);
        free(bw);
        free(ew);
        free(bc);
        free(ec);
}

/* ---- phase: exec ---- */

static void phase_exec(void) {
        env_config cfg = {.valgrind = opt.measure == MEASURE_CALLGRIND || opt.measure == MEASURE_MASSIF};
        env *e = env_start(&cfg);
        char *pid = xasprintf("%d", (int) e->pcpd_pid), *bus = xasprintf("%d", (int) e->bus_pid);
        const char *envv[] = {"DBUS_SYSTEM_BUS_ADDRESS",
                              e->address,
                              "PCPD_PID",
                              pid,
                              "BUS_PID",
                              bus,
                              "BENCH_TMP",
                              e->tmp,
                              NULL};
        pid_t child;
        int status = 0;

        fflush(stdout);
        child = spawn((const char *const *) opt.exec_argv, NULL, envv);
        waitpid(child, &status, 0);
        free(pid);
        free(bus);
        env_stop(e);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("%s failed (status %d)", opt.exec_argv[0], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* ---- main ---- */

static const struct {
        const char *name;
        void (*run)(void);
} phases[] = {
        {"seq", phase_seq},     {"udp", phase_udp},       {"burst", phase_burst},
        {"all", phase_all},     {"stall", phase_stall},   {"idle", phase_idle},
        {"renew", phase_renew}, {"pcpctl", phase_pcpctl}, {"exec", phase_exec},
};

static void usage(FILE *f) {
        fputs("bench-daemon [OPTIONS] PHASE...     (seq udp burst all stall idle renew pcpctl)\n"
              "bench-daemon [OPTIONS] exec -- COMMAND...\n\n"
              "  --build DIR          build directory (pcpd, pcpctl, pcp-refserver)\n"
              "  --source DIR         source tree (bus configuration, policy)\n"
              "  --server refserver|stateless   the PCP server (default stateless)\n"
              "  --measure none|callgrind|strace|massif  what is counted in pcpd per window (massif:\n"
              "                       a heap profile of the whole run, kept in --out-dir)\n"
              "  --monitor            count the bus's messages per window (a bus monitor)\n"
              "  --out-dir DIR        keep callgrind dumps and strace tables there\n"
              "  --seq N --burst N --all N --hold N --renew N --pcpctl N   sizes\n"
              "  --conns N --window N connections and calls in flight on each (20, 100)\n"
              "  --leave-many K --leavers D   stall: the holder of many that leaves holds K (1000);\n"
              "                       D holders of one mapping each leave at once (100)\n"
              "  --pinger loop|thread stall: Peer.Ping from the bench's event loop, next to the watcher\n"
              "                       (default), or from a thread of its own on a connection of its own\n"
              "  --rt                 stall: after the hold, pcpd, dbus-daemon and the responder at\n"
              "                       SCHED_FIFO 10 and the bench at 11\n"
              "  --leave-trace PREFIX stall: for each case of holders leaving, PREFIX.KEY.csv: every Ping,\n"
              "                       every signal the watcher read, and the socket queues (pcpd's bus\n"
              "                       socket through pidfd_getfd, SIOCINQ/SIOCOUTQ) every 50 us\n"
              "  --lifetime S --renew-seconds S --idle-seconds S\n"
              "  --keep               keep the temporary directory\n"
              "  --malloc-trim-probe  burst/all: RSS again after gdb calls malloc_trim(0) in pcpd\n"
              "  --no-net-admin       pcpd without CAP_NET_ADMIN (setpriv), as under pcpd.service\n"
              "  --pcpd-rcvbuf B      pcpd's UDP receive buffers as net.core.rmem_max = B would cap\n"
              "                       them without CAP_NET_ADMIN (set from here, pidfd_getfd)\n"
              "  --nm none|mock       NetworkManager on the bus before pcpd (mock: tests/nm/nmmock.py,\n"
              "                       python3-dbusmock): pcpd loads pcpd-nm.so (default none)\n"
              "  --nm-devices N       devices the mock exports, each with DHCPv4/v6 leases (1)\n"
              "  --settle S           burst/all: RSS again S seconds after all are active (settled_*)\n"
              "  --restart            burst/all: then stop pcpd and start it again over its state\n"
              "                       directory; RSS once every restored mapping was asked for\n"
              "                       again and S (--settle, else 2) seconds more (restarted_*)\n"
              "  --release            burst/all (not with --restart): then close the bench's\n"
              "                       connections; RSS once pcpd deleted every mapping on the\n"
              "                       server and S (--settle, else 2) seconds more (released_*)\n"
              "  --pcpd-env NAME=VALUE  set in pcpd's environment (repeatable), e.g.\n"
              "                       MALLOC_ARENA_MAX=1 or GNUTLS_NO_IMPLICIT_INIT=1\n"
              "  With --out-dir, burst/all also keep pcpd's smaps and thread names at start and held\n",
              f);
}

static unsigned parse_unsigned(const char *s, const char *what) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);

        if (*s == '\0' || *end != '\0' || v > UINT_MAX)
                die("invalid %s '%s': give a whole number", what, s);
        return (unsigned) v;
}

int main(int argc, char **argv) {
        enum {
                O_BUILD = 256,
                O_SOURCE,
                O_SERVER,
                O_MEASURE,
                O_MONITOR,
                O_OUT,
                O_SEQ,
                O_BURST,
                O_ALL,
                O_HOLD,
                O_LEAVE_MANY,
                O_LEAVERS,
                O_PINGER,
                O_LEAVE_TRACE,
                O_RT,
                O_RENEW,
                O_PCPCTL,
                O_CONNS,
                O_WINDOW,
                O_LIFETIME,
                O_RENEW_S,
                O_IDLE_S,
                O_KEEP,
                O_TRIM,
                O_RESTART,
                O_RELEASE,
                O_NO_NET_ADMIN,
                O_PCPD_RCVBUF,
                O_NM,
                O_NM_DEVICES,
                O_SETTLE,
                O_PCPD_ENV,
                O_HELP,
        };
        static const struct option longopts[] = {
                {"build", required_argument, NULL, O_BUILD},
                {"source", required_argument, NULL, O_SOURCE},
                {"server", required_argument, NULL, O_SERVER},
                {"measure", required_argument, NULL, O_MEASURE},
                {"monitor", no_argument, NULL, O_MONITOR},
                {"out-dir", required_argument, NULL, O_OUT},
                {"seq", required_argument, NULL, O_SEQ},
                {"burst", required_argument, NULL, O_BURST},
                {"all", required_argument, NULL, O_ALL},
                {"hold", required_argument, NULL, O_HOLD},
                {"leave-many", required_argument, NULL, O_LEAVE_MANY},
                {"leavers", required_argument, NULL, O_LEAVERS},
                {"pinger", required_argument, NULL, O_PINGER},
                {"leave-trace", required_argument, NULL, O_LEAVE_TRACE},
                {"rt", no_argument, NULL, O_RT},
                {"renew", required_argument, NULL, O_RENEW},
                {"pcpctl", required_argument, NULL, O_PCPCTL},
                {"conns", required_argument, NULL, O_CONNS},
                {"window", required_argument, NULL, O_WINDOW},
                {"lifetime", required_argument, NULL, O_LIFETIME},
                {"renew-seconds", required_argument, NULL, O_RENEW_S},
                {"idle-seconds", required_argument, NULL, O_IDLE_S},
                {"keep", no_argument, NULL, O_KEEP},
                {"malloc-trim-probe", no_argument, NULL, O_TRIM},
                {"restart", no_argument, NULL, O_RESTART},
                {"release", no_argument, NULL, O_RELEASE},
                {"no-net-admin", no_argument, NULL, O_NO_NET_ADMIN},
                {"pcpd-rcvbuf", required_argument, NULL, O_PCPD_RCVBUF},
                {"nm", required_argument, NULL, O_NM},
                {"nm-devices", required_argument, NULL, O_NM_DEVICES},
                {"settle", required_argument, NULL, O_SETTLE},
                {"pcpd-env", required_argument, NULL, O_PCPD_ENV},
                {"help", no_argument, NULL, O_HELP},
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "+", longopts, NULL)) >= 0)
                switch (c) {
                case O_BUILD:
                        opt.build = optarg;
                        break;
                case O_SOURCE:
                        opt.source = optarg;
                        break;
                case O_SERVER:
                        if (strcmp(optarg, "refserver") == 0)
                                opt.refserver = true;
                        else if (strcmp(optarg, "stateless") == 0)
                                opt.refserver = false;
                        else
                                die("invalid --server '%s': use refserver or stateless", optarg);
                        break;
                case O_MEASURE:
                        if (strcmp(optarg, "none") == 0)
                                opt.measure = MEASURE_NONE;
                        else if (strcmp(optarg, "callgrind") == 0)
                                opt.measure = MEASURE_CALLGRIND;
                        else if (strcmp(optarg, "strace") == 0)
                                opt.measure = MEASURE_STRACE;
                        else if (strcmp(optarg, "massif") == 0)
                                opt.measure = MEASURE_MASSIF;
                        else
                                die("invalid --measure '%s': use none, callgrind, strace or massif", optarg);
                        break;
                case O_MONITOR:
                        opt.monitor = true;
                        break;
                case O_OUT:
                        opt.out_dir = optarg;
                        break;
                case O_SEQ:
                        opt.n_seq = parse_unsigned(optarg, "--seq");
                        break;
                case O_BURST:
                        opt.n_burst = parse_unsigned(optarg, "--burst");
                        break;
                case O_ALL:
                        opt.n_all = parse_unsigned(optarg, "--all");
                        break;
                case O_HOLD:
                        opt.n_hold = parse_unsigned(optarg, "--hold");
                        break;
                case O_LEAVE_MANY:
                        opt.n_leave_many = parse_unsigned(optarg, "--leave-many");
                        break;
                case O_LEAVERS:
                        opt.n_leavers = parse_unsigned(optarg, "--leavers");
                        break;
                case O_PINGER:
                        if (strcmp(optarg, "thread") == 0)
                                opt.ping_thread = true;
                        else if (strcmp(optarg, "loop") == 0)
                                opt.ping_thread = false;
                        else
                                die("invalid --pinger '%s': give thread or loop", optarg);
                        break;
                case O_LEAVE_TRACE:
                        opt.leave_trace = optarg;
                        break;
                case O_RT:
                        opt.rt = true;
                        break;
                case O_RENEW:
                        opt.n_renew = parse_unsigned(optarg, "--renew");
                        break;
                case O_PCPCTL:
                        opt.n_pcpctl = parse_unsigned(optarg, "--pcpctl");
                        break;
                case O_CONNS:
                        opt.conns = parse_unsigned(optarg, "--conns");
                        break;
                case O_WINDOW:
                        opt.window = parse_unsigned(optarg, "--window");
                        break;
                case O_LIFETIME:
                        opt.lifetime_cap = parse_unsigned(optarg, "--lifetime");
                        break;
                case O_RENEW_S:
                        opt.renew_seconds = parse_unsigned(optarg, "--renew-seconds");
                        break;
                case O_IDLE_S:
                        opt.idle_seconds = parse_unsigned(optarg, "--idle-seconds");
                        break;
                case O_KEEP:
                        opt.keep = true;
                        break;
                case O_RESTART:
                        opt.restart = true;
                        break;
                case O_RELEASE:
                        opt.release = true;
                        break;
                case O_TRIM:
                        opt.trim_probe = true;
                        break;
                case O_NO_NET_ADMIN:
                        opt.no_net_admin = true;
                        break;
                case O_PCPD_RCVBUF:
                        opt.pcpd_rcvbuf = parse_unsigned(optarg, "--pcpd-rcvbuf");
                        if (opt.pcpd_rcvbuf > INT_MAX / 2)
                                die("--pcpd-rcvbuf %u is too large", opt.pcpd_rcvbuf);
                        break;
                case O_NM:
                        if (strcmp(optarg, "mock") == 0)
                                opt.nm_mock = true;
                        else if (strcmp(optarg, "none") == 0)
                                opt.nm_mock = false;
                        else
                                die("invalid --nm '%s': use none or mock", optarg);
                        break;
                case O_NM_DEVICES:
                        opt.nm_devices = parse_unsigned(optarg, "--nm-devices");
                        if (opt.nm_devices < 1 || opt.nm_devices > 100)
                                die("invalid --nm-devices %u: use 1-100", opt.nm_devices);
                        break;
                case O_SETTLE:
                        opt.settle_seconds = parse_unsigned(optarg, "--settle");
                        break;
                case O_PCPD_ENV: {
                        char *eq = strchr(optarg, '=');
                        const char **n;
                        if (eq == NULL || eq == optarg)
                                die("invalid --pcpd-env '%s': use NAME=VALUE", optarg);
                        if (opt.n_pcpd_env >= 16)
                                die("too many --pcpd-env (at most 16)");
                        n = realloc(opt.pcpd_env, (opt.n_pcpd_env + 1) * 2 * sizeof(*n));
                        if (n == NULL)
                                die("out of memory");
                        opt.pcpd_env = n;
                        *eq = '\0';
                        n[2 * opt.n_pcpd_env] = optarg;
                        n[2 * opt.n_pcpd_env + 1] = eq + 1;
                        opt.n_pcpd_env++;
                        break;
                }
                case O_HELP:
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        if (opt.conns < 1 || opt.conns > MAX_CONNS)
                die("invalid --conns %u: use 1-%d", opt.conns, MAX_CONNS);
        if (opt.window < 1)
                die("invalid --window 0: use at least 1");
        if (opt.n_seq < 1 || opt.n_burst < 1 || opt.n_burst > 131070 || opt.n_all < 1 ||
            opt.n_all > 131070 || opt.n_hold < 1 || opt.n_hold >= 131070 || opt.n_renew < 1 ||
            opt.n_renew > 131070 || opt.n_pcpctl < 1 || opt.n_leave_many < 1 || opt.n_leave_many > 131070 ||
            opt.n_leavers < 1 || opt.n_leavers > 4000)
                die("a size is out of range: mappings are 1-131070 (--hold at most 131069)");
        if (geteuid() != 0)
                die("run me as root: pcpd then asks no polkit and any port may be mapped");
        signal(SIGPIPE, SIG_IGN);
        if (opt.out_dir != NULL)
                mkdir(opt.out_dir, 0755);

        for (int i = optind; i < argc; i++) {
                size_t k;
                if (strcmp(argv[i], "exec") == 0) {
                        if (i + 1 < argc && strcmp(argv[i + 1], "--") == 0)
                                i++;
                        if (i + 1 >= argc)
                                die("exec needs a command");
                        opt.exec_argv = argv + i + 1;
                        phase_name = "exec";
                        phase_exec();
                        break;
                }
                for (k = 0; k < ELEMENTSOF(phases); k++)
                        if (strcmp(phases[k].name, argv[i]) == 0)
                                break;
                if (k == ELEMENTSOF(phases))
                        die("unknown phase '%s'; see --help", argv[i]);
                phase_name = phases[k].name;
                printf("== %s (server: %s, measure: %s%s%s)\n", phase_name,
                       opt.refserver ? "pcp-refserver" : "stateless",
                       opt.measure == MEASURE_NONE        ? "none"
                       : opt.measure == MEASURE_CALLGRIND ? "callgrind"
                       : opt.measure == MEASURE_STRACE    ? "strace"
                                                          : "massif",
                       opt.monitor ? ", bus monitor" : "", opt.nm_mock ? ", NetworkManager mock" : "");
                fflush(stdout);
                /* mapping ids start at 1 again with every pcpd */
                free(W.rec);
                memset(&W, 0, sizeof(W));
                phases[k].run();
        }
        return 0;
}
