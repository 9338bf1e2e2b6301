/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-spawn: one run of a command as a whole process, timed.
 *
 *   bench-spawn [-o FILE] -- COMMAND [ARG...]
 *
 * Forks, execs COMMAND (found in PATH), waits for it with wait4() and prints one line:
 *
 *   WALL_NS USER_NS SYSTEM_NS STATUS
 *
 * WALL_NS is CLOCK_MONOTONIC from just before fork() to just after wait4() (what a shell
 * or a program that runs the command would see), USER_NS and SYSTEM_NS its CPU from
 * wait4()'s rusage, STATUS its exit status (128 + signal when killed). The command's
 * standard output goes to FILE (default /dev/null), its standard error to /dev/null: a
 * terminal would be measured too. bench/run-pcpctl-bench.sh calls it once per run and
 * alternates the commands it compares; this program's own start-up is outside the window.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static uint64_t tv_ns(const struct timeval *tv) {
        return (uint64_t) tv->tv_sec * 1000000000u + (uint64_t) tv->tv_usec * 1000u;
}

int main(int argc, char **argv) {
        const char *out = "/dev/null";
        struct rusage ru;
        uint64_t t0, t1;
        int opt, status, fd_out, fd_err;
        pid_t pid;

        while ((opt = getopt(argc, argv, "+o:")) != -1) {
                switch (opt) {
                case 'o':
                        out = optarg;
                        break;
                default:
                        fprintf(stderr, "usage: bench-spawn [-o FILE] -- COMMAND [ARG...]\n");
                        return 2;
                }
        }
        if (optind >= argc) {
                fprintf(stderr, "usage: bench-spawn [-o FILE] -- COMMAND [ARG...]\n");
                return 2;
        }
        fd_out = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        fd_err = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd_out < 0 || fd_err < 0) {
                fprintf(stderr, "bench-spawn: %s: %s\n", out, strerror(errno));
                return 2;
        }

        t0 = now_ns();
        pid = fork();
        if (pid < 0) {
                fprintf(stderr, "bench-spawn: fork: %s\n", strerror(errno));
                return 2;
        }
        if (pid == 0) {
                if (dup2(fd_out, STDOUT_FILENO) < 0 || dup2(fd_err, STDERR_FILENO) < 0)
                        _exit(127);
                execvp(argv[optind], argv + optind);
                _exit(127);
        }
        if (wait4(pid, &status, 0, &ru) < 0) {
                fprintf(stderr, "bench-spawn: wait4: %s\n", strerror(errno));
                return 2;
        }
        t1 = now_ns();
        printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %d\n", t1 - t0, tv_ns(&ru.ru_utime), tv_ns(&ru.ru_stime),
               WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        return 0;
}
