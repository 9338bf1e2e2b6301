/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The corpus replay: a main() for a fuzz target in the ordinary builds (gcc, clang, ASan,
 * valgrind), without libFuzzer. It calls the target as libFuzzer does: once
 * LLVMFuzzerInitialize() if the target has one, then LLVMFuzzerTestOneInput() on the empty
 * input and on each input in a buffer of its exact size. Every check of the target runs
 * as in the fuzz build; a failed one aborts.
 *
 *   fuzz-X-replay               every file of the target's seed corpus, tests/fuzz/corpus/fuzz-X
 *                               (the program's name without "-replay")
 *   fuzz-X-replay PATH...       these files; a directory: every file in it (and below)
 *
 * A directory without a file is an error (a test over an empty corpus proves nothing).
 * The target runs in a child process with TMPDIR set to a directory of its own (fuzz-state
 * writes journals there), which is removed afterwards even when the target crashed; the
 * parent says which input failed and how, and exits 1.
 *
 * SIGTERM or SIGINT (meson's time-out sends SIGTERM to the process group, Ctrl-C SIGINT)
 * ends the replay as cleanly: the parent passes the signal on to the child, waits for it,
 * removes the scratch directory, says which input the target was at, and dies of the same
 * signal (test-replay-signal.py).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef FUZZ_CORPUS_ROOT
#error "FUZZ_CORPUS_ROOT (tests/fuzz/corpus) is set by tests/fuzz/meson.build"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* only some targets have one: weak, NULL when the target does not */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* what the child is at, in memory the parent reads after it ended */
enum { AT_INIT = -3, AT_EMPTY = -2, AT_EXIT = -1 };

typedef struct inputs {
        char **paths;
        size_t n, cap;
} inputs;

static void add_path(inputs *in, const char *path) {
        if (in->n == in->cap) {
                in->cap = in->cap ? in->cap * 2 : 64;
                in->paths = realloc(in->paths, in->cap * sizeof(*in->paths));
                if (in->paths == NULL) {
                        perror("replay: realloc");
                        exit(1);
                }
        }
        in->paths[in->n] = strdup(path);
        if (in->paths[in->n] == NULL) {
                perror("replay: strdup");
                exit(1);
        }
        in->n++;
}

static int name_cmp(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_dot(const struct dirent *d) {
        return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

/* path's files, in name order (a directory's files and those below it); false on error */
static bool collect(inputs *in, const char *path) {
        struct dirent **names;
        struct stat st;
        bool ok = true;
        int n;

        if (stat(path, &st) < 0) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return false;
        }
        if (!S_ISDIR(st.st_mode)) {
                add_path(in, path);
                return true;
        }
        n = scandir(path, &names, not_dot, name_cmp);
        if (n < 0) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return false;
        }
        for (int i = 0; i < n; i++) {
                size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
                char *sub = malloc(len);

                if (sub == NULL) {
                        perror("replay: malloc");
                        exit(1);
                }
                snprintf(sub, len, "%s/%s", path, names[i]->d_name);
                ok = collect(in, sub) && ok;
                free(sub);
                free(names[i]);
        }
        free(names);
        return ok;
}

/* the whole file, in a buffer of exactly its size (so that a read past it is caught) */
static uint8_t *read_input(const char *path, size_t *size) {
        struct stat st;
        uint8_t *buf;
        size_t got = 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                fprintf(stderr, "replay: cannot read %s: %s\n", path,
                        fd < 0 ? strerror(errno) : "not a regular file");
                exit(1);
        }
        buf = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
        if (buf == NULL) {
                perror("replay: malloc");
                exit(1);
        }
        while (got < (size_t) st.st_size) {
                ssize_t r = read(fd, buf + got, (size_t) st.st_size - got);

                if (r <= 0) {
                        fprintf(stderr, "replay: cannot read %s: %s\n", path,
                                r < 0 ? strerror(errno) : "short read");
                        exit(1);
                }
                got += (size_t) r;
        }
        close(fd);
        *size = got;
        return buf;
}

static void run_one(const uint8_t *data, size_t size, const char *what) {
        int r = LLVMFuzzerTestOneInput(data, size);

        /* 0, or -1 (libFuzzer: keep it out of the corpus); anything else is reserved */
        if (r != 0 && r != -1) {
                fprintf(stderr, "replay: %s returned %d\n", what, r);
                exit(1);
        }
}

/* the child: the target, as libFuzzer calls it; returns through exit() (leak check) */
static void child(int argc, char **argv, const inputs *in, volatile long *at) {
        uint8_t empty = 0;

        *at = AT_INIT;
        if (LLVMFuzzerInitialize != NULL)
                LLVMFuzzerInitialize(&argc, &argv);
        *at = AT_EMPTY;
        run_one(&empty, 0, "the empty input");
        for (size_t i = 0; i < in->n; i++) {
                size_t size;
                uint8_t *data;

                *at = (long) i;
                data = read_input(in->paths[i], &size);
                run_one(data, size, in->paths[i]);
                free(data);
        }
        *at = AT_EXIT;
        exit(0);
}

/* The parent, from the fork on: the child a SIGTERM or SIGINT is passed on to (0: none, or
 * reaped already) and the signal that came. */
static volatile sig_atomic_t child_pid, got_signal;

static void on_stop_signal(int sig) {
        int saved = errno;

        got_signal = sig;
        if (child_pid > 0)
                (void) kill((pid_t) child_pid, sig);
        errno = saved;
}

/* SIGTERM and SIGINT: blocked (SIG_BLOCK) while there is a scratch directory and no child
 * to pass them on to, or while the directory is removed, so that one that comes then waits
 * instead of killing the replay with the directory left behind */
static void stop_signals_mask(int how) {
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (sigprocmask(how, &set, NULL) < 0) {
                perror("replay: sigprocmask");
                exit(1);
        }
}

/* what SIGTERM and SIGINT did when the replay started: a signal ignored then (SIGINT in a
 * shell's background job) stays ignored */
static struct sigaction stop_signals_saved[2];

static void stop_signals_handle(void) {
        const int sigs[2] = { SIGTERM, SIGINT };
        struct sigaction sa = { .sa_handler = on_stop_signal };

        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < 2; i++)
                if (sigaction(sigs[i], NULL, &stop_signals_saved[i]) < 0 ||
                    (stop_signals_saved[i].sa_handler != SIG_IGN && sigaction(sigs[i], &sa, NULL) < 0)) {
                        perror("replay: sigaction");
                        exit(1);
                }
}

/* their actions again, as the replay found them */
static void stop_signals_restore(void) {
        if (sigaction(SIGTERM, &stop_signals_saved[0], NULL) < 0 ||
            sigaction(SIGINT, &stop_signals_saved[1], NULL) < 0) {
                perror("replay: sigaction");
                exit(1);
        }
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (remove(path) < 0)
                fprintf(stderr, "replay: cannot remove %s: %s\n", path, strerror(errno));
        return 0;
}

/* the input the child was at, as *at says */
static const char *at_what(long at, const inputs *in) {
        return at == AT_INIT    ? "LLVMFuzzerInitialize()"
               : at == AT_EMPTY ? "the empty input"
               : at == AT_EXIT  ? "its exit (a leak, or an error valgrind reports at exit)"
                                : in->paths[at];
}

/* The target's name is the program's without "-replay" (this file is compiled once for all
 * targets): its length in base. */
static int target_name_len(const char *base) {
        size_t n = strlen(base), suffix = strlen("-replay");

        return (int) (n > suffix && strcmp(base + n - suffix, "-replay") == 0 ? n - suffix : n);
}

int main(int argc, char **argv) {
        inputs in = { 0 };
        bool ok = true;
        const char *tmp = getenv("TMPDIR"),
                   *base = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 : argv[0];
        int name_len = target_name_len(base);
        char scratch[4096], corpus[4096];
        volatile long *at;
        siginfo_t info;
        sigset_t pending;
        int status, stop = 0;
        pid_t pid;

        snprintf(corpus, sizeof(corpus), "%s/%.*s", FUZZ_CORPUS_ROOT, name_len, base);
        if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                printf("Usage: %s [FILE|DIR...]\nRuns the fuzz target %.*s once on each input "
                       "(default: its seed corpus %s).\n",
                       argv[0], name_len, base, corpus);
                return 0;
        }
        for (int i = 1; i < argc; i++) {
                size_t before = in.n;

                ok = collect(&in, argv[i]) && ok;
                if (ok && in.n == before) {
                        fprintf(stderr, "replay: no input in %s\n", argv[i]);
                        ok = false;
                }
        }
        if (argc == 1) {
                ok = collect(&in, corpus);
                if (ok && in.n == 0) {
                        fprintf(stderr, "replay: no input in %s\n", corpus);
                        ok = false;
                }
        }
        if (!ok)
                return 1;

        at = mmap(NULL, sizeof(*at), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (at == MAP_FAILED) {
                perror("replay: mmap");
                return 1;
        }
        *at = AT_INIT;

        /* from the scratch directory's making to its removal, a SIGTERM or SIGINT goes to
         * the child (on_stop_signal()), or waits while there is none */
        stop_signals_mask(SIG_BLOCK);
        stop_signals_handle();
        snprintf(scratch, sizeof(scratch), "%s/%.*s-replay-XXXXXX",
                 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", name_len, base);
        if (mkdtemp(scratch) == NULL) {
                fprintf(stderr, "replay: cannot make %s: %s\n", scratch, strerror(errno));
                status = -1;
                goto out;
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                perror("replay: fork");
                rmdir(scratch);
                status = -1;
                goto out;
        }
        if (pid == 0) {
                /* the target as libFuzzer runs it: the signals' actions as the replay got them */
                stop_signals_restore();
                stop_signals_mask(SIG_UNBLOCK);
                if (setenv("TMPDIR", scratch, 1) < 0) {
                        perror("replay: setenv");
                        _exit(1);
                }
                child(argc, argv, &in, at);
        }
        child_pid = pid;
        stop_signals_mask(SIG_UNBLOCK);
        /* until the child ended, left unreaped (WNOWAIT): a signal passed on to it until
         * then cannot reach another process that got its pid */
        while (waitid(P_PID, (id_t) pid, &info, WEXITED | WNOWAIT) < 0)
                if (errno != EINTR) {
                        perror("replay: waitid");
                        break;
                }
        stop_signals_mask(SIG_BLOCK);
        child_pid = 0;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        perror("replay: waitpid");
                        status = -1;
                        break;
                }
        nftw(scratch, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        /* one that came since the child ended is pending: the replay dies of it too */
        stop = got_signal;
        if (stop == 0 && sigpending(&pending) == 0)
                stop = sigismember(&pending, SIGTERM) == 1  ? SIGTERM
                       : sigismember(&pending, SIGINT) == 1 ? SIGINT
                                                            : 0;

        if (stop != 0)
                fprintf(stderr, "replay: %.*s interrupted by signal %d (%s) on %s; %s removed\n", name_len, base,
                        stop, strsignal(stop), at_what(*at, &in), scratch);
        else if (status == 0)
                printf("replay: %.*s: %zu inputs and the empty one passed\n", name_len, base, in.n);
        else {
                char how[64];

                if (status == -1)
                        snprintf(how, sizeof(how), "lost");
                else if (WIFSIGNALED(status))
                        snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status),
                                 strsignal(WTERMSIG(status)));
                else
                        snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
                fprintf(stderr, "replay: %.*s FAILED on %s: %s\n", name_len, base, at_what(*at, &in), how);
        }
out:
        for (size_t i = 0; i < in.n; i++)
                free(in.paths[i]);
        free(in.paths);
        munmap((void *) at, sizeof(*at));
        /* a signal that came (handled, or still pending): the replay dies of it, as it would
         * have without the handler, now that nothing is left behind */
        fflush(NULL);
        stop_signals_restore();
        if (stop != 0)
                raise(stop);
        stop_signals_mask(SIG_UNBLOCK);
        return status == 0 ? 0 : 1;
}
