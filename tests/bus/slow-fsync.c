/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LD_PRELOAD shim for test-slow-save.py: holds the fsync() of pcpd's snapshot
 * (mappings.state.tmp) for as long as the test likes, as a disk under heavy load does.
 *
 * PCPD_TEST_FSYNC_GATE names a directory the test made. When the file "armed" is there,
 * the next fsync of a file named mappings.state.tmp removes it (one hold per arming),
 * creates "entered", and blocks opening the FIFO "gate" for reading until the test opens
 * it for writing and closes it again; then the real fsync runs. Any other fsync, or one
 * while not armed, goes straight through.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char SNAPSHOT_TMP[] = "/mappings.state.tmp";

static int is_snapshot_tmp(int fd) {
        char link[64], target[PATH_MAX];
        ssize_t n;
        size_t k = sizeof(SNAPSHOT_TMP) - 1;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n < 0 || (size_t) n < k)
                return 0;
        target[n] = '\0';
        return strcmp(target + n - k, SNAPSHOT_TMP) == 0;
}

static void hold(const char *gate) {
        char path[PATH_MAX];
        char buf[64];
        int f;

        snprintf(path, sizeof(path), "%s/armed", gate);
        if (unlink(path) < 0)
                return; /* not armed */
        snprintf(path, sizeof(path), "%s/entered", gate);
        f = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (f >= 0)
                close(f);
        snprintf(path, sizeof(path), "%s/gate", gate);
        f = open(path, O_RDONLY | O_CLOEXEC); /* until the test opens it for writing */
        if (f < 0)
                return;
        while (read(f, buf, sizeof(buf)) > 0) /* until it closes it */
                ;
        close(f);
}

int fsync(int fd) {
        int (*real)(int) = (int (*)(int)) dlsym(RTLD_NEXT, "fsync");
        const char *gate = getenv("PCPD_TEST_FSYNC_GATE");

        if (gate != NULL && is_snapshot_tmp(fd))
                hold(gate);
        return real(fd);
}
