/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store (pcpd-store.c) without a manager: the test is its owner, a table of records, and
 * runs GLib's default main loop. What it put is what a restarted pcpd loads (from the journal
 * alone, and after snapshots); a torn last journal record is cut off before the next one; a
 * snapshot formatted a chunk at a time while records keep changing loses none of the
 * changes; a directory that takes no more bytes starts one episode of failure (one
 * error_changed), and the retried snapshot ends it with every record on disk. After a
 * snapshot written on the writer's thread, the main thread neither truncates a file nor
 * closes an unlinked one (either can wait for the disk): the journal is switched to one the
 * thread made, keeping the records appended meanwhile, and the thread closes the old one;
 * a mappings.journal.next a killed daemon left is removed at start. A removal put "later"
 * (pcpd_store_forget_later()) is written with the next record put at once, in the same
 * write() and in front of it, or on its own 200 ms later; a crash before that (the store
 * freed without a flush) loses only such removals, never a record put at once.
 *
 * close() and ftruncate() are wrapped (-Wl,--wrap in meson.build) to count who calls them,
 * write() to count the journal's writes. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcpd-store.h"
#include "unit-fixture.h"

/* ---- who closes and truncates ---- */

static pthread_t main_thread;
static int armed;                 /* counting (g_atomic) */
static int main_unlinked_closes;  /* an unlinked regular file closed on the main thread */
static int other_unlinked_closes; /* ... on another thread */
static int main_truncates;        /* ftruncate() on the main thread */
static int main_renames_over;     /* renameat() onto an existing name on the main thread */

int __real_close(int fd);
int __wrap_close(int fd);
int __real_ftruncate(int fd, off_t len);
int __wrap_ftruncate(int fd, off_t len);
int __real_ftruncate64(int fd, off_t len);
int __wrap_ftruncate64(int fd, off_t len);

int __real_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int __real_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags);
int __wrap_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags);
int __real_unlinkat(int dirfd, const char *path, int flags);
int __wrap_unlinkat(int dirfd, const char *path, int flags);
int __real_openat(int dirfd, const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...);
int __real_openat64(int dirfd, const char *path, int flags, ...);
int __wrap_openat64(int dirfd, const char *path, int flags, ...);

/* A name made, removed or renamed in the directory on the main thread: a lookup there
 * waits while another thread's fsync() writes the directory out (seen: 1.2 s in ext4's
 * lookup, with every retransmission held back). Counted while armed. */
static int main_name_ops;

static void count_name_op(void) {
        if (g_atomic_int_get(&armed) && pthread_equal(pthread_self(), main_thread))
                g_atomic_int_inc(&main_name_ops);
}

int __wrap_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags) {
        count_name_op();
        return __real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

int __wrap_unlinkat(int dirfd, const char *path, int flags) {
        int r;

        count_name_op();
        r = __real_unlinkat(dirfd, path, flags);
        if (!pthread_equal(pthread_self(), main_thread))
                g_main_context_wakeup(NULL); /* run_until looks again (the old journal's name gone) */
        return r;
}

/* openat() of mappings.state.tmp: counted, the monotonic time of the first two noted, and
 * the next fail_tmp of them made to fail with EACCES (any thread) */
static int fail_tmp, tmp_opens;
static gint64 tmp_open_at[2];

/* Counts (and may fail) one openat(): true when the caller is to fail with EACCES. */
static bool openat_seen(const char *path, int flags) {
        if (flags & (O_CREAT | O_TMPFILE))
                count_name_op();
        if (g_str_has_suffix(path, PCPD_STATE_FILE ".tmp")) {
                int n = g_atomic_int_get(&tmp_opens), left;

                if (n < 2)
                        tmp_open_at[n] = g_get_monotonic_time(); /* seen once the count is */
                g_atomic_int_inc(&tmp_opens);
                while ((left = g_atomic_int_get(&fail_tmp)) > 0)
                        if (g_atomic_int_compare_and_exchange(&fail_tmp, left, left - 1))
                                return true;
        }
        return false;
}

/* Both wrappers below: counted, failed when asked, else real(dirfd, path, flags, mode). */
static int openat_wrapped(int (*real)(int, const char *, int, ...), int dirfd, const char *path, int flags,
                          mode_t mode) {
        if (openat_seen(path, flags)) {
                errno = EACCES;
                return -1;
        }
        return real(dirfd, path, flags, mode);
}

/* the mode argument, there only with O_CREAT or O_TMPFILE */
#define OPENAT_MODE(flags, mode)                                                    \
        do {                                                                        \
                va_list ap_;                                                        \
                va_start(ap_, flags);                                               \
                (mode) = ((flags) & (O_CREAT | O_TMPFILE)) ? va_arg(ap_, mode_t) : 0; \
                va_end(ap_);                                                        \
        } while (0)

int __wrap_openat(int dirfd, const char *path, int flags, ...) {
        mode_t mode;

        OPENAT_MODE(flags, mode);
        return openat_wrapped(__real_openat, dirfd, path, flags, mode);
}

/* what openat() is with _FILE_OFFSET_BITS=64 (meson's default) */
int __wrap_openat64(int dirfd, const char *path, int flags, ...) {
        mode_t mode;

        OPENAT_MODE(flags, mode);
        return openat_wrapped(__real_openat64, dirfd, path, flags, mode);
}

/* ext4 writes out a file's delayed data inside a rename over another file (auto_da_alloc),
 * and the write-back throttling then holds the caller: the main loop must never do one */
int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
        struct stat st;

        count_name_op();
        if (g_atomic_int_get(&armed) && pthread_equal(pthread_self(), main_thread) &&
            fstatat(newdirfd, newpath, &st, AT_SYMLINK_NOFOLLOW) == 0)
                g_atomic_int_inc(&main_renames_over);
        return __real_renameat(olddirfd, oldpath, newdirfd, newpath);
}

int __wrap_close(int fd) {
        struct stat st;

        if (g_atomic_int_get(&armed) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 0) {
                if (pthread_equal(pthread_self(), main_thread))
                        g_atomic_int_inc(&main_unlinked_closes);
                else {
                        g_atomic_int_inc(&other_unlinked_closes);
                        g_main_context_wakeup(NULL); /* run_until looks again */
                }
        }
        return __real_close(fd);
}

static void count_truncate(void) {
        if (g_atomic_int_get(&armed) && pthread_equal(pthread_self(), main_thread))
                g_atomic_int_inc(&main_truncates);
}

int __wrap_ftruncate(int fd, off_t len) {
        count_truncate();
        return __real_ftruncate(fd, len);
}

int __wrap_ftruncate64(int fd, off_t len) {
        count_truncate();
        return __real_ftruncate64(fd, len);
}

/* write(2)s to the file that is mappings.journal of journal_dfd now (-1: not counted) */
static int journal_dfd = -1;
static int journal_writes;

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

/* write(2)s to the file that is mappings.state.tmp of tmp_dfd now (-1: not counted): how
 * many, the largest, and how many failed */
static int tmp_dfd = -1;
static int tmp_writes, tmp_largest, tmp_failed;

/* fd is the file name in dfd is now */
static bool is_file(int fd, int dfd, const char *name) {
        struct stat st, nst;

        return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fstatat(dfd, name, &nst, AT_SYMLINK_NOFOLLOW) == 0 &&
               st.st_dev == nst.st_dev && st.st_ino == nst.st_ino;
}

ssize_t __wrap_write(int fd, const void *buf, size_t n) {
        int dfd = g_atomic_int_get(&journal_dfd), tdfd = g_atomic_int_get(&tmp_dfd);
        bool tmp = tdfd >= 0 && is_file(fd, tdfd, PCPD_STATE_FILE ".tmp");
        ssize_t k;

        if (dfd >= 0 && is_file(fd, dfd, PCPD_STATE_JOURNAL))
                g_atomic_int_inc(&journal_writes);
        k = __real_write(fd, buf, n);
        if (tmp) {
                g_atomic_int_inc(&tmp_writes);
                if ((int) n > g_atomic_int_get(&tmp_largest))
                        g_atomic_int_set(&tmp_largest, (int) n);
                if (k < 0)
                        g_atomic_int_inc(&tmp_failed);
        }
        return k;
}

static void arm(void) {
        g_atomic_int_set(&main_unlinked_closes, 0);
        g_atomic_int_set(&other_unlinked_closes, 0);
        g_atomic_int_set(&main_truncates, 0);
        g_atomic_int_set(&main_name_ops, 0);
        g_atomic_int_set(&armed, 1);
}

/* ---- the owner: what the store asks for ---- */

typedef struct owner {
        GHashTable *recs; /* id (uint64_t *) -> pcpd_state_mapping *, owned */
        uint64_t next_id;
        GArray *looked_up; /* the ids lookup was asked for, in order */
        unsigned snapshots; /* snapshot_ids calls (and snapshot_foreach ones) */
        unsigned walks;     /* snapshot_foreach calls */
        unsigned error_calls;
        char *error; /* as last told */
        pcpd_store *store;
} owner;

static uint64_t *owner_ids(void *userdata, size_t *ret_n, uint64_t *ret_next_id) {
        owner *o = userdata;
        uint64_t *ids = unit_record_ids(o->recs, ret_n);
        o->snapshots++;
        *ret_next_id = o->next_id;
        return ids;
}

static bool owner_lookup(uint64_t id, pcpd_state_mapping *ret, void *userdata) {
        owner *o = userdata;
        pcpd_state_mapping *r = g_hash_table_lookup(o->recs, &id);

        g_array_append_val(o->looked_up, id);
        if (r == NULL)
                return false;
        *ret = *r;
        return true;
}

static void owner_error_changed(const char *error, void *userdata) {
        owner *o = userdata;

        o->error_calls++;
        g_free(o->error);
        o->error = g_strdup(error);
}

/* The records in the order owner_ids() gives their ids (the table's), as owner_lookup()
 * gives them. */
static void owner_foreach(void *userdata, uint64_t *ret_next_id,
                          bool (*add)(const pcpd_state_mapping *rec, void *data), void *data) {
        owner *o = userdata;
        GHashTableIter it;
        gpointer v;

        o->snapshots++;
        o->walks++;
        *ret_next_id = o->next_id;
        g_hash_table_iter_init(&it, o->recs);
        while (g_hash_table_iter_next(&it, NULL, &v))
                if (!add(v, data))
                        return;
}

static const pcpd_store_ops ops = {
        .snapshot_ids = owner_ids,
        .lookup = owner_lookup,
        .error_changed = owner_error_changed,
};

/* An owner that walks its records for a snapshot written whole (pcpd_store_save()). */
static const pcpd_store_ops ops_walk = {
        .snapshot_ids = owner_ids,
        .lookup = owner_lookup,
        .snapshot_foreach = owner_foreach,
        .error_changed = owner_error_changed,
};

typedef struct fixture {
        char *dir;
        int dfd;
        owner o;
        struct rlimit fsize; /* RLIMIT_FSIZE before the test, put back however it ended */
} fixture;

static int setup_with(void **state, const pcpd_store_ops *o) {
        fixture *f = g_new0(fixture, 1);

        f->dir = unit_make_own_dir("store");
        f->dfd = unit_open_dir(f->dir);
        f->o.recs = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, (GDestroyNotify) pcpd_state_mapping_free);
        f->o.next_id = 1;
        f->o.looked_up = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &f->fsize), 0);
        assert_int_equal(pcpd_store_new(f->dfd, f->dir, o, &f->o, &f->o.store), 0);
        *state = f;
        return 0;
}

static int setup(void **state) {
        return setup_with(state, &ops);
}

static int setup_walk(void **state) {
        return setup_with(state, &ops_walk);
}

static int teardown(void **state) {
        fixture *f = *state;

        g_atomic_int_set(&armed, 0);
        g_atomic_int_set(&fail_tmp, 0);
        g_atomic_int_set(&journal_dfd, -1);
        g_atomic_int_set(&tmp_dfd, -1);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &f->fsize), 0);
        f->o.store = pcpd_store_free(f->o.store);
        g_hash_table_destroy(f->o.recs);
        g_array_free(f->o.looked_up, TRUE);
        g_free(f->o.error);
        close(f->dfd);
        assert_int_equal(unit_rm_own_dir(f->dir), 0);
        g_free(f->dir);
        g_free(f);
        return 0;
}

static pcpd_state_mapping *record(uint64_t id, uint16_t version) {
        return unit_state_record(id, version, "a record of the store's test");
}

/* The owner has rec (taken over) from now on and puts it. */
static int put(owner *o, pcpd_state_mapping *rec) {
        g_hash_table_replace(o->recs, &rec->id, rec);
        o->next_id = MAX(o->next_id, rec->id + 1);
        return pcpd_store_put(o->store, rec);
}

static int forget(owner *o, uint64_t id) {
        g_hash_table_remove(o->recs, &id);
        return pcpd_store_forget(o->store, id);
}

static GString *text_of(const pcpd_state_mapping *m) {
        GString *s = g_string_new(NULL);
        pcpd_state_format_mapping(s, m);
        return s;
}

/* What a restarted pcpd loads from the directory is exactly what the owner has. */
static void assert_loads_as_owner(fixture *f) {
        g_autoptr(pcpd_state) st = NULL;
        g_autoptr(GError) error = NULL;
        GHashTableIter it;
        gpointer v;

        assert_int_equal(pcpd_state_load(f->dfd, f->dir, &st, &error), 0);
        assert_int_equal(st->damaged, 0);
        assert_int_equal(st->journal_damaged, 0);
        assert_int_equal(g_hash_table_size(st->mappings), g_hash_table_size(f->o.recs));
        g_hash_table_iter_init(&it, f->o.recs);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                const pcpd_state_mapping *want = v;
                const pcpd_state_mapping *got = g_hash_table_lookup(st->mappings, &want->id);
                g_autoptr(GString) a = NULL, b = NULL;

                if (got == NULL)
                        fail_msg("record %" G_GUINT64_FORMAT " was not loaded", want->id);
                a = text_of(want);
                b = text_of(got);
                assert_string_equal(b->str, a->str);
        }
        assert_true(st->next_id >= f->o.next_id);
}

static off_t file_size(fixture *f, const char *name) {
        struct stat st;

        if (fstatat(f->dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -1;
        return st.st_size;
}

/* No snapshot being written: mappings.state.tmp is absent, or the empty one the writer's
 * thread made for the next snapshot (pcpd_state_writer_prepare_tmp()). */
static void assert_tmp_empty(fixture *f) {
        off_t size = file_size(f, PCPD_STATE_FILE ".tmp");

        if (size > 0)
                fail_msg("expected no mappings.state.tmp, or an empty one, saw %lld octets", (long long) size);
}

static gboolean on_give_up(gpointer data) {
        *(bool *) data = true;
        return G_SOURCE_REMOVE;
}

/* Runs the main loop until done(f) holds; fails, saying what, after 60 s of not getting
 * there (a cap, not a timing assertion: it holds within a second or ten). */
static void run_until(fixture *f, bool (*done)(fixture *f), const char *what) {
        bool gave_up = false;
        guint cap = g_timeout_add_seconds(60, on_give_up, &gave_up);
        unsigned turns = 0;

        while (!done(f) && !gave_up) {
                g_main_context_iteration(NULL, TRUE);
                turns++;
        }
        if (gave_up)
                fail_msg("no %s after 60 s (%u turns of the loop)", what, turns);
        g_source_remove(cap);
}

static bool store_idle(fixture *f) {
        return !pcpd_store_busy(f->o.store);
}

/* ---- tests ---- */

/* N records put, some changed, some forgotten: the journal alone has them (a daemon killed
 * now); a snapshot written at shutdown has them, and the journal is empty then. */
static void test_put_and_forget(void **state) {
        fixture *f = *state;
        const unsigned n = 300;

        for (uint64_t id = 1; id <= n; id++)
                assert_int_equal(put(&f->o, record(id, 1)), 0);
        for (uint64_t id = 1; id <= n; id += 3)
                assert_int_equal(put(&f->o, record(id, 2)), 0);
        for (uint64_t id = 2; id <= n; id += 7)
                assert_int_equal(forget(&f->o, id), 0);
        assert_null(pcpd_store_error(f->o.store));
        assert_true(file_size(f, PCPD_STATE_JOURNAL) > 0);
        /* killed now: no snapshot was written yet (none is due before the loop turns) */
        assert_int_equal(file_size(f, PCPD_STATE_FILE), -1);
        assert_int_equal(f->o.snapshots, 0);
        assert_loads_as_owner(f);

        /* shutdown: one snapshot of it all, and an empty journal */
        pcpd_store_flush(f->o.store);
        assert_int_equal(f->o.snapshots, 1);
        assert_false(pcpd_store_busy(f->o.store));
        assert_true(file_size(f, PCPD_STATE_FILE) > 0);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
        assert_loads_as_owner(f);

        /* a flush with nothing new writes nothing */
        pcpd_store_flush(f->o.store);
        assert_int_equal(f->o.snapshots, 1);
        assert_null(f->o.error);
        assert_int_equal(f->o.error_calls, 0);
}

/* Small files: a change is followed by a snapshot of its own, on the loop, soon; it empties
 * the journal. */
static void test_snapshot_follows_change(void **state) {
        fixture *f = *state;

        assert_int_equal(put(&f->o, record(1, 1)), 0);
        assert_true(pcpd_store_busy(f->o.store));
        run_until(f, store_idle, "snapshot after a change");
        assert_int_equal(f->o.snapshots, 1);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
        assert_true(file_size(f, PCPD_STATE_FILE) > 0);
        assert_loads_as_owner(f);
}

/* A power cut left half a record at the journal's end: the store's next record starts on a
 * line of its own, and what loads is every whole record, the torn one not at all. */
static void test_torn_last_record(void **state) {
        fixture *f = *state;
        g_autoptr(GString) torn = g_string_new(NULL);
        g_autoptr(pcpd_state_mapping) lost = record(3, 7);
        int jfd;

        assert_int_equal(put(&f->o, record(1, 1)), 0);
        assert_int_equal(put(&f->o, record(2, 1)), 0);
        f->o.store = pcpd_store_free(f->o.store); /* killed: no snapshot */

        pcpd_state_format_record(torn, lost);
        jfd = openat(f->dfd, PCPD_STATE_JOURNAL, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_true(jfd >= 0);
        assert_int_equal(write(jfd, torn->str, torn->len / 2), (ssize_t) (torn->len / 2));
        close(jfd);
        {
                /* as loaded now: the torn one is skipped */
                g_autoptr(pcpd_state) st = NULL;
                g_autoptr(GError) error = NULL;
                assert_int_equal(pcpd_state_load(f->dfd, f->dir, &st, &error), 0);
                assert_true(st->journal_torn > 0);
                assert_int_equal(g_hash_table_size(st->mappings), 2);
        }

        /* restarted: the next record lands after the whole ones */
        assert_int_equal(pcpd_store_new(f->dfd, f->dir, &ops, &f->o, &f->o.store), 0);
        assert_int_equal(put(&f->o, record(4, 1)), 0);
        assert_int_equal(put(&f->o, record(1, 2)), 0);
        {
                g_autoptr(pcpd_state) st = NULL;
                g_autoptr(GError) error = NULL;
                assert_int_equal(pcpd_state_load(f->dfd, f->dir, &st, &error), 0);
                assert_int_equal(st->journal_torn, 0);
                assert_int_equal(st->journal_records, 4);
        }
        assert_loads_as_owner(f);
}

/* Between two chunks of a snapshot: one record already formatted changes, one is
 * forgotten, one not yet formatted changes, a new one comes. */
static void change_mid_snapshot(owner *o) {
        uint64_t first = g_array_index(o->looked_up, uint64_t, 0);
        uint64_t second = g_array_index(o->looked_up, uint64_t, 1);
        GHashTableIter it;
        gpointer key;
        uint64_t later = 0;

        g_hash_table_iter_init(&it, o->recs);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                uint64_t id = *(const uint64_t *) key;
                bool seen = false;
                for (guint k = 0; k < o->looked_up->len && !seen; k++)
                        seen = g_array_index(o->looked_up, uint64_t, k) == id;
                if (!seen) {
                        later = id;
                        break;
                }
        }
        assert_true(later != 0);
        assert_int_equal(put(o, record(first, 9)), 0);
        assert_int_equal(forget(o, second), 0);
        assert_int_equal(put(o, record(later, 9)), 0);
        assert_int_equal(put(o, record(o->next_id, 9)), 0);
}

static bool first_chunk_formatted(fixture *f) {
        return f->o.looked_up->len > 0;
}

/* A snapshot of many records is formatted a chunk per turn of the loop while records keep
 * changing: after it is written, what loads has every change, also those to records its
 * first chunks had already formatted (their journal records stay behind the snapshot). */
static void test_snapshot_while_appending(void **state) {
        fixture *f = *state;
        const unsigned n = 2000; /* several chunks */

        for (uint64_t id = 1; id <= n; id++)
                assert_int_equal(put(&f->o, record(id, 1)), 0);
        assert_int_equal(pcpd_store_save(f->o.store), 0);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
        /* grow the journal to the snapshot's size: a snapshot is due then */
        g_array_set_size(f->o.looked_up, 0);
        for (uint64_t id = 1; id <= n; id++)
                assert_int_equal(put(&f->o, record(id, 2)), 0);
        assert_true(pcpd_store_busy(f->o.store));
        run_until(f, first_chunk_formatted, "snapshot being formatted");
        /* one chunk per turn of the loop: the others are still to come */
        assert_true(f->o.looked_up->len >= 2);
        assert_true(f->o.looked_up->len < n / 2);
        change_mid_snapshot(&f->o);
        run_until(f, store_idle, "snapshot written");
        assert_null(pcpd_store_error(f->o.store));
        assert_int_equal(f->o.snapshots, 2);
        /* the snapshot lacks the changes made while it was formatted: they are still in the
         * journal */
        assert_true(file_size(f, PCPD_STATE_JOURNAL) > 0);
        assert_loads_as_owner(f);
        /* and after one more snapshot, with nothing changing, the journal is empty */
        assert_int_equal(pcpd_store_save(f->o.store), 0);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
        assert_loads_as_owner(f);
}

static bool error_cleared(fixture *f) {
        return f->o.error == NULL && f->o.error_calls == 2;
}

/* A directory that takes no more bytes (RLIMIT_FSIZE: a full disk, for root too): a put
 * fails, one episode starts (one error_changed, however many writes fail), the snapshot
 * tried soon fails too; with room again the retry ends it (one more error_changed), and
 * what loads has every record, the one whose journal record was lost too. */
static void test_state_error_and_recovery(void **state) {
        fixture *f = *state;
        struct rlimit lim = f->fsize;
        g_autofree char *why = NULL;
        int r;

        assert_int_equal(put(&f->o, record(1, 1)), 0);
        assert_int_equal(pcpd_store_save(f->o.store), 0);

        lim.rlim_cur = 16;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(put(&f->o, record(2, 1)), 0);
        /* the journal has more bytes than the limit: no write to it (nor to a snapshot) fits */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        r = put(&f->o, record(3, 1));
        assert_int_equal(r, -EFBIG);
        assert_int_equal(f->o.error_calls, 1);
        assert_non_null(f->o.error);
        assert_string_equal(pcpd_store_error(f->o.store), f->o.error);
        why = g_strdup_printf("cannot save state in %s: %s", f->dir, g_strerror(EFBIG));
        assert_string_equal(f->o.error, why);
        /* the same episode: told once */
        assert_int_equal(put(&f->o, record(4, 1)), -EFBIG);
        assert_int_equal(forget(&f->o, 1), -EFBIG);
        assert_int_equal(f->o.error_calls, 1);
        /* the snapshot tried soon fails as well */
        run_until(f, store_idle, "snapshot after a failed put");
        assert_int_equal(f->o.error_calls, 1);
        assert_non_null(pcpd_store_error(f->o.store));

        /* room again: the retry every few seconds ends the episode */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &f->fsize), 0);
        run_until(f, error_cleared, "end of the episode");
        assert_null(pcpd_store_error(f->o.store));
        assert_loads_as_owner(f);
        assert_false(g_hash_table_contains(f->o.recs, &(uint64_t) { 1 }));
        assert_true(g_hash_table_contains(f->o.recs, &(uint64_t) { 3 }));
}

static bool store_failed(fixture *f) {
        return f->o.error_calls == 1 && !pcpd_store_busy(f->o.store);
}

static bool tmp_tried_twice(fixture *f) {
        return g_atomic_int_get(&tmp_opens) >= 2;
}

/* The writer's thread cannot make mappings.state.tmp (a directory that takes no new file):
 * one episode is told, and the snapshot is retried on the episode's timer (5 s), not asked
 * of the thread again at once (that went round between the two threads without end, the
 * second try microseconds after the first); the retry, with the directory fixed, ends the
 * episode with every record on disk. Nothing here waits for a time: a slow machine only
 * makes the gap between the two tries longer. */
static void test_tmp_not_made(void **state) {
        fixture *f = *state;
        gint64 gap;

        g_atomic_int_set(&tmp_opens, 0);
        g_atomic_int_set(&fail_tmp, 1); /* the first try fails, the next ones work */
        assert_int_equal(put(&f->o, record(1, 1)), 0);
        run_until(f, store_failed, "a failed snapshot");
        assert_string_equal(pcpd_store_error(f->o.store), f->o.error);
        assert_non_null(strstr(f->o.error, g_strerror(EACCES)));

        run_until(f, tmp_tried_twice, "second try to make the temporary file");
        gap = tmp_open_at[1] - tmp_open_at[0];
        if (gap < 3 * G_USEC_PER_SEC)
                fail_msg("the second try came %" G_GINT64_FORMAT " us after the first: not on the episode's "
                         "5 s timer",
                         gap);
        run_until(f, error_cleared, "end of the episode"); /* told twice: failing, then fine */
        assert_null(pcpd_store_error(f->o.store));
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
        assert_loads_as_owner(f);
}

static char *slurp_at(fixture *f, const char *name, size_t *ret_len) {
        char *data = NULL;

        if (pcpd_state_read_file(f->dfd, name, &data, ret_len) < 0)
                return NULL;
        return data;
}

/* A snapshot is written into mappings.state.tmp as it is formatted, in pieces of about
 * 64 KiB (its whole text is never in memory). A file system that fills up part of the way
 * (RLIMIT_FSIZE: the first pieces fit, a later one does not) fails it on the loop and on
 * the calling thread alike: the snapshot in place keeps its bytes, the journal too, no
 * temporary file with data is left, one episode is told with why, and what loads is still all the
 * owner has; with room again the retry writes the next snapshot, also in pieces. */
static void test_snapshot_fails_part_of_the_way(void **state) {
        fixture *f = *state;
        struct rlimit lim = f->fsize;
        g_autofree char *old = NULL, *why = NULL, *now = NULL, *tmp = NULL;
        size_t old_len = 0, len = 0;
        off_t journal;

        assert_int_equal(put(&f->o, record(1, 1)), 0);
        assert_int_equal(pcpd_store_save(f->o.store), 0);
        old = slurp_at(f, PCPD_STATE_FILE, &old_len);
        assert_non_null(old);
        /* ~1,500 records in the journal (some 500 KB), a snapshot due (the loop has not
         * run yet) */
        for (uint64_t id = 2; id <= 1500; id++)
                assert_int_equal(put(&f->o, record(id, 1)), 0);
        journal = file_size(f, PCPD_STATE_JOURNAL);
        assert_true(journal > 400 * 1024);
        assert_true(pcpd_store_busy(f->o.store));

        lim.rlim_cur = 200 * 1024;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        g_atomic_int_set(&tmp_dfd, f->dfd);
        run_until(f, store_failed, "failed snapshot");
        /* written part of the way, a piece at a time, before the write that failed */
        assert_true(g_atomic_int_get(&tmp_writes) >= 3);
        assert_int_equal(g_atomic_int_get(&tmp_failed), 1);
        assert_true(g_atomic_int_get(&tmp_largest) <= 68 * 1024);
        why = g_strdup_printf("cannot save state in %s: %s", f->dir, g_strerror(EFBIG));
        assert_string_equal(f->o.error, why);
        assert_string_equal(pcpd_store_error(f->o.store), why);
        now = slurp_at(f, PCPD_STATE_FILE, &len);
        assert_non_null(now);
        assert_int_equal(len, old_len);
        assert_memory_equal(now, old, old_len);
        assert_tmp_empty(f);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), journal);
        assert_loads_as_owner(f);

        /* on the calling thread (at shutdown) the same, in the same episode */
        g_atomic_int_set(&tmp_writes, 0);
        g_atomic_int_set(&tmp_failed, 0);
        assert_int_equal(pcpd_store_save(f->o.store), -EFBIG);
        assert_true(g_atomic_int_get(&tmp_writes) >= 3);
        assert_int_equal(g_atomic_int_get(&tmp_failed), 1);
        assert_int_equal(f->o.error_calls, 1);
        g_clear_pointer(&now, g_free);
        now = slurp_at(f, PCPD_STATE_FILE, &len);
        assert_int_equal(len, old_len);
        assert_memory_equal(now, old, old_len);
        assert_tmp_empty(f);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), journal);
        assert_loads_as_owner(f);

        /* room again: the retry writes it whole, in pieces, and the journal is emptied */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &f->fsize), 0);
        g_atomic_int_set(&tmp_writes, 0);
        g_atomic_int_set(&tmp_failed, 0);
        g_atomic_int_set(&tmp_largest, 0);
        run_until(f, error_cleared, "end of the episode");
        assert_true(g_atomic_int_get(&tmp_writes) >= 7);
        assert_int_equal(g_atomic_int_get(&tmp_failed), 0);
        assert_true(g_atomic_int_get(&tmp_largest) <= 68 * 1024);
        assert_true(file_size(f, PCPD_STATE_FILE) > 400 * 1024);
        assert_tmp_empty(f);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
        assert_loads_as_owner(f);
        g_atomic_int_set(&tmp_dfd, -1);
        tmp = slurp_at(f, PCPD_STATE_FILE ".tmp", &len);
        assert_true(tmp == NULL || len == 0);
}

/* With an owner that can walk its records (ops->snapshot_foreach), a snapshot written whole
 * on the calling thread (pcpd_store_save(): at start, at shutdown) walks them, with no array
 * of ids, and the file has the same bytes as the one formatted a chunk per turn of the loop
 * from the ids (which the loop still uses: its records may change between two chunks). Also
 * with no records: the header alone. */
static void test_walk_same_bytes_as_chunks(void **state) {
        fixture *f = *state;
        const unsigned n = 2000;

        /* round 0: no records (one put and forgotten: a snapshot due); round 1: some 700
         * KB, many chunks of 256 and pieces of 64 KiB, records across their borders */
        assert_int_equal(put(&f->o, record(1, 1)), 0);
        assert_int_equal(forget(&f->o, 1), 0);
        for (unsigned round = 0; round < 2; round++) {
                g_autofree char *chunked = NULL, *walked = NULL;
                size_t chunked_len = 0, walked_len = 0;
                unsigned looked_up = f->o.looked_up->len;

                if (round == 1) {
                        for (uint64_t id = 1; id <= n; id++)
                                assert_int_equal(put(&f->o, record(id, 1)), 0);
                        for (uint64_t id = 2; id <= n; id += 7)
                                assert_int_equal(forget(&f->o, id), 0);
                        f->o.next_id = 5000;
                }
                /* a snapshot is due: formatted on the loop, from the ids */
                assert_true(pcpd_store_busy(f->o.store));
                run_until(f, store_idle, "snapshot on the loop");
                assert_int_equal(f->o.walks, round);
                assert_int_equal(f->o.snapshots, 1 + round * 2);
                assert_int_equal(f->o.looked_up->len - looked_up, g_hash_table_size(f->o.recs));
                assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
                chunked = slurp_at(f, PCPD_STATE_FILE, &chunked_len);
                assert_non_null(chunked);
                assert_true(round == 0 || chunked_len > 500 * 1024);

                /* written whole: walked, nothing looked up, the same bytes */
                looked_up = f->o.looked_up->len;
                assert_int_equal(pcpd_store_save(f->o.store), 0);
                assert_int_equal(f->o.walks, round + 1);
                assert_int_equal(f->o.snapshots, 2 + round * 2);
                assert_int_equal(f->o.looked_up->len, looked_up);
                walked = slurp_at(f, PCPD_STATE_FILE, &walked_len);
                assert_non_null(walked);
                assert_int_equal(walked_len, chunked_len);
                assert_memory_equal(walked, chunked, chunked_len);
                assert_tmp_empty(f);
                assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
                assert_loads_as_owner(f);
        }
}

static ino_t journal_ino;

static ino_t ino_of(fixture *f, const char *name) {
        struct stat st;

        if (fstatat(f->dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return 0;
        return st.st_ino;
}

static bool first_snapshot_started(fixture *f) {
        return f->o.snapshots >= 1;
}

/* the journal's name is the new file's, and the old one's name is gone: the main thread
 * has copied the tail (the thread removes the old name only after that) */
static bool journal_switched(fixture *f) {
        return ino_of(f, PCPD_STATE_JOURNAL) != journal_ino && file_size(f, PCPD_STATE_JOURNAL_NEXT) == -1;
}

static bool next_gone_and_idle(fixture *f) {
        return !pcpd_store_busy(f->o.store) && file_size(f, PCPD_STATE_JOURNAL_NEXT) == -1;
}

static bool old_journals_closed(fixture *f) {
        (void) f;
        return g_atomic_int_get(&other_unlinked_closes) >= 2;
}

/* Small files, a snapshot after every change, as in scenario 5: a record put while the
 * first snapshot is under way is what the new journal keeps; the second snapshot leaves an
 * empty one. Neither truncates the journal, nor closes an unlinked one, nor makes, removes
 * or renames a name in the directory on the main thread (a lookup there can wait for the
 * disk): the writer's thread makes mappings.state.tmp and the next journal, exchanges the
 * journals' names, removes the old one's and closes both old journals. */
static void test_journal_switched_off_main_thread(void **state) {
        fixture *f = *state;
        g_autoptr(GString) tail = g_string_new(NULL);

        assert_int_equal(put(&f->o, record(1, 1)), 0); /* the journal is made here, once */
        journal_ino = ino_of(f, PCPD_STATE_JOURNAL);
        assert_true(journal_ino != 0);
        arm();
        run_until(f, first_snapshot_started, "snapshot started");
        assert_int_equal(put(&f->o, record(2, 1)), 0); /* after its formatting started */
        pcpd_state_format_record(tail, g_hash_table_lookup(f->o.recs, &(uint64_t) { 2 }));
        run_until(f, journal_switched, "journal replaced after the first snapshot");
        /* just the record the snapshot lacks */
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), (off_t) tail->len);
        assert_loads_as_owner(f);

        run_until(f, next_gone_and_idle, "second snapshot");
        assert_int_equal(f->o.snapshots, 2);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
        assert_loads_as_owner(f);
        assert_int_equal(g_atomic_int_get(&main_truncates), 0);
        assert_int_equal(g_atomic_int_get(&main_unlinked_closes), 0);
        assert_int_equal(g_atomic_int_get(&main_renames_over), 0);
        assert_int_equal(g_atomic_int_get(&main_name_ops), 0);
        run_until(f, old_journals_closed, "old journals closed on the writer's thread");
        assert_int_equal(g_atomic_int_get(&main_unlinked_closes), 0);

        /* appends go to the new journal, which a restart reads */
        assert_int_equal(put(&f->o, record(3, 1)), 0);
        assert_loads_as_owner(f);
        assert_int_equal(g_atomic_int_get(&main_name_ops), 0);
        g_atomic_int_set(&armed, 0);
}

/* A daemon killed while switching journals left mappings.journal.next: an empty one made
 * for the switch, or the old journal, whose records come before the journal's (the thread
 * exchanged the names; the main thread had not copied the tail yet, or had and the old
 * name was not removed yet). A start replays it before the journal, so every mapping has
 * its last state; it goes once a snapshot holds it. A mappings.journal.tmp of an older
 * version is removed unread. */
static void test_next_journal_left_over(void **state) {
        fixture *f = *state;
        static const char junk[] = "[Mapping 99]\nRemoved=true\n#end\n";
        g_autofree char *next = g_build_filename(f->dir, PCPD_STATE_JOURNAL_NEXT, NULL);
        g_autofree char *journal = g_build_filename(f->dir, PCPD_STATE_JOURNAL, NULL);
        g_autofree char *tmp = g_build_filename(f->dir, PCPD_STATE_JOURNAL ".tmp", NULL);
        g_autoptr(GString) newer = g_string_new(NULL);

        /* an empty one */
        assert_int_equal(put(&f->o, record(1, 1)), 0);
        f->o.store = pcpd_store_free(f->o.store); /* killed */
        assert_true(g_file_set_contents(next, "", 0, NULL));
        assert_true(g_file_set_contents(tmp, junk, -1, NULL));
        assert_loads_as_owner(f);

        /* the old journal (records 1 and 2, version 1) as mappings.journal.next, and the new
         * journal with what came after: record 1 at version 2 (no tail copied yet) */
        assert_int_equal(pcpd_store_new(f->dfd, f->dir, &ops, &f->o, &f->o.store), 0);
        assert_int_equal(put(&f->o, record(2, 1)), 0);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL ".tmp"), -1);
        f->o.store = pcpd_store_free(f->o.store); /* killed */
        assert_int_equal(rename(journal, next), 0);
        g_hash_table_remove(f->o.recs, &(uint64_t) { 1 });
        {
                pcpd_state_mapping *r1 = record(1, 2);

                g_hash_table_replace(f->o.recs, &r1->id, r1);
                pcpd_state_format_record(newer, r1);
        }
        assert_true(g_file_set_contents(journal, newer->str, (gssize) newer->len, NULL));
        assert_loads_as_owner(f);

        /* the same with the tail copied (the new journal starts with a record the old one
         * has too) */
        {
                g_autoptr(GString) both = g_string_new(NULL);
                pcpd_state_format_record(both, g_hash_table_lookup(f->o.recs, &(uint64_t) { 2 }));
                g_string_append_len(both, newer->str, (gssize) newer->len);
                assert_true(g_file_set_contents(journal, both->str, (gssize) both->len, NULL));
        }
        assert_loads_as_owner(f);

        /* a new store appends after it, and the first snapshot holds it all: then it goes */
        assert_int_equal(pcpd_store_new(f->dfd, f->dir, &ops, &f->o, &f->o.store), 0);
        assert_int_equal(put(&f->o, record(3, 1)), 0);
        assert_true(file_size(f, PCPD_STATE_JOURNAL_NEXT) > 0);
        assert_loads_as_owner(f);
        run_until(f, next_gone_and_idle, "snapshot after a change");
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL_NEXT), -1);
        assert_loads_as_owner(f);
}

/* A record that is gone by its turn is left out; the owner's next id is the header's. */
static void test_gone_left_out(void **state) {
        fixture *f = *state;

        for (uint64_t id = 1; id <= 5; id++)
                assert_int_equal(put(&f->o, record(id, 1)), 0);
        f->o.next_id = 40;
        g_hash_table_remove(f->o.recs, &(uint64_t) { 2 }); /* not forgotten in the journal */
        assert_int_equal(pcpd_store_save(f->o.store), 0);
        {
                g_autoptr(pcpd_state) st = NULL;
                g_autoptr(GError) error = NULL;
                assert_int_equal(pcpd_state_load(f->dfd, f->dir, &st, &error), 0);
                assert_int_equal(st->next_id, 40);
                assert_null(g_hash_table_lookup(st->mappings, &(uint64_t) { 2 }));
        }
        assert_loads_as_owner(f);
}


/* ---- removals put later ---- */

/* write(2)s to the journal so far (counted from the first call on) */
static unsigned long long write_calls(fixture *f) {
        g_atomic_int_set(&journal_dfd, f->dfd);
        return (unsigned long long) g_atomic_int_get(&journal_writes);
}

static void forget_later(owner *o, uint64_t id) {
        g_hash_table_remove(o->recs, &id);
        pcpd_store_forget_later(o->store, id);
}

/* What a restart after a crash now loads: every record put at once is there as last put,
 * but for those whose removal was written; a removal put later may be lost (the record is
 * then loaded as last put). ever: every record put at once, as last put (owned). */
static void assert_crash_loses_only_later(fixture *f, GHashTable *ever) {
        g_autoptr(pcpd_state) st = NULL;
        g_autoptr(GError) error = NULL;
        GHashTableIter it;
        gpointer v;

        assert_int_equal(pcpd_state_load(f->dfd, f->dir, &st, &error), 0);
        assert_int_equal(st->journal_damaged, 0);
        g_hash_table_iter_init(&it, ever);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                const pcpd_state_mapping *want = v;
                const pcpd_state_mapping *got = g_hash_table_lookup(st->mappings, &want->id);
                g_autoptr(GString) a = NULL, b = NULL;

                if (got == NULL) {
                        if (g_hash_table_contains(f->o.recs, &want->id))
                                fail_msg("record %" G_GUINT64_FORMAT " was put at once and is lost", want->id);
                        continue; /* its removal was written */
                }
                a = text_of(want);
                b = text_of(got);
                assert_string_equal(b->str, a->str);
        }
        /* nothing loaded that was never put */
        g_hash_table_iter_init(&it, st->mappings);
        while (g_hash_table_iter_next(&it, NULL, &v))
                assert_true(g_hash_table_contains(ever, &((pcpd_state_mapping *) v)->id));
}

/* Removals put later are not written on their own: the next record put at once takes them
 * along, in the same write() and in front of it; what loads then is the owner's. */
static void test_forget_later_rides_with_next_put(void **state) {
        fixture *f = *state;
        unsigned long long w;
        off_t size;

        for (uint64_t id = 1; id <= 4; id++)
                assert_int_equal(put(&f->o, record(id, 1)), 0);
        size = file_size(f, PCPD_STATE_JOURNAL);
        w = write_calls(f);
        forget_later(&f->o, 1);
        forget_later(&f->o, 3);
        assert_int_equal(write_calls(f), w);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), size);
        assert_int_equal(put(&f->o, record(5, 1)), 0);
        assert_int_equal(write_calls(f) - w, 1); /* two removals and a record: one write() */
        assert_true(file_size(f, PCPD_STATE_JOURNAL) > size);
        assert_loads_as_owner(f);
        /* the journal's order is the calls': removed later, then put again at once */
        forget_later(&f->o, 2);
        assert_int_equal(put(&f->o, record(2, 2)), 0);
        assert_loads_as_owner(f);
        /* nothing is left to write */
        w = write_calls(f);
        assert_int_equal(put(&f->o, record(6, 1)), 0);
        assert_int_equal(write_calls(f) - w, 1);
        assert_loads_as_owner(f);
}

/* A removal put later and no record after it: written on its own soon (all of them in one
 * write()); the loop turns for it. */
static bool journal_has_later(fixture *f) {
        g_autoptr(pcpd_state) st = NULL;
        g_autoptr(GError) error = NULL;

        assert_int_equal(pcpd_state_load(f->dfd, f->dir, &st, &error), 0);
        return g_hash_table_size(st->mappings) == g_hash_table_size(f->o.recs);
}

static void test_forget_later_written_soon(void **state) {
        fixture *f = *state;

        for (uint64_t id = 1; id <= 3; id++)
                assert_int_equal(put(&f->o, record(id, 1)), 0);
        pcpd_store_save(f->o.store); /* nothing due: only the removals' timer runs */
        forget_later(&f->o, 2);
        forget_later(&f->o, 3);
        assert_false(journal_has_later(f));
        run_until(f, journal_has_later, "removals put later written");
        assert_loads_as_owner(f);
        assert_true(file_size(f, PCPD_STATE_JOURNAL) > 0);
}

/* pcpd_store_save() writes the removals put later first: the snapshot has them and the
 * journal is empty after it; at shutdown (pcpd_store_flush()) they are written even when
 * nothing else is new since the last snapshot. */
static void test_forget_later_flushed(void **state) {
        fixture *f = *state;

        for (uint64_t id = 1; id <= 3; id++)
                assert_int_equal(put(&f->o, record(id, 1)), 0);
        forget_later(&f->o, 2);
        assert_int_equal(pcpd_store_save(f->o.store), 0);
        assert_int_equal(file_size(f, PCPD_STATE_JOURNAL), 0);
        assert_loads_as_owner(f);
        assert_int_equal(put(&f->o, record(4, 1)), 0);
        {
                g_autoptr(pcpd_state) st = NULL;
                g_autoptr(GError) error = NULL;
                assert_int_equal(pcpd_state_load(f->dfd, f->dir, &st, &error), 0);
                assert_int_equal(st->journal_records, 1); /* the removal is not written again */
        }
        assert_int_equal(pcpd_store_save(f->o.store), 0);
        forget_later(&f->o, 1);
        pcpd_store_flush(f->o.store);
        f->o.store = pcpd_store_free(f->o.store); /* nothing pending is dropped */
        assert_loads_as_owner(f);
}

/* A crash (the store freed: what was put later and not written is dropped) at any point of
 * puts mixed with removals put later: every record put at once loads as last put unless
 * its removal was written, and the journal's order is the calls' (a removal put later,
 * then the same id put again at once, loads as put). */
static void test_crash_loses_only_later(void **state) {
        fixture *f = *state;
        g_autoptr(GHashTable) ever =
                g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, (GDestroyNotify) pcpd_state_mapping_free);

        for (unsigned step = 0; step < 40; step++) {
                uint64_t id = 1 + step % 7;
                pcpd_state_mapping *rec, *copy;

                if (step % 3 == 2 && g_hash_table_contains(f->o.recs, &id)) {
                        forget_later(&f->o, id);
                } else {
                        rec = record(id, (uint16_t) (1 + step));
                        copy = pcpd_state_mapping_copy(rec);
                        g_hash_table_replace(ever, &copy->id, copy);
                        assert_int_equal(put(&f->o, rec), 0);
                }
                /* killed now */
                assert_crash_loses_only_later(f, ever);
        }
        /* a removal only in memory is dropped as a crash drops it */
        {
                pcpd_state_mapping *rec = record(1, 99), *copy = pcpd_state_mapping_copy(rec);
                g_hash_table_replace(ever, &copy->id, copy);
                assert_int_equal(put(&f->o, rec), 0);
        }
        forget_later(&f->o, 1);
        f->o.store = pcpd_store_free(f->o.store);
        assert_crash_loses_only_later(f, ever);
        {
                g_autoptr(pcpd_state) st = NULL;
                g_autoptr(GError) error = NULL;
                assert_int_equal(pcpd_state_load(f->dfd, f->dir, &st, &error), 0);
                assert_non_null(g_hash_table_lookup(st->mappings, &(uint64_t) { 1 })); /* its removal was lost */
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_put_and_forget, setup, teardown),
                cmocka_unit_test_setup_teardown(test_snapshot_follows_change, setup, teardown),
                cmocka_unit_test_setup_teardown(test_torn_last_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_snapshot_while_appending, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state_error_and_recovery, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tmp_not_made, setup, teardown),
                cmocka_unit_test_setup_teardown(test_snapshot_fails_part_of_the_way, setup, teardown),
                cmocka_unit_test_setup_teardown(test_gone_left_out, setup, teardown),
                /* the same with an owner that walks its records for a snapshot written whole */
                cmocka_unit_test_setup_teardown(test_put_and_forget, setup_walk, teardown),
                cmocka_unit_test_setup_teardown(test_snapshot_fails_part_of_the_way, setup_walk, teardown),
                cmocka_unit_test_setup_teardown(test_walk_same_bytes_as_chunks, setup_walk, teardown),
                cmocka_unit_test_setup_teardown(test_journal_switched_off_main_thread, setup, teardown),
                cmocka_unit_test_setup_teardown(test_next_journal_left_over, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forget_later_rides_with_next_put, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forget_later_written_soon, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forget_later_flushed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_loses_only_later, setup, teardown),
        };

        main_thread = pthread_self();
        return cmocka_run_group_tests(tests, NULL, NULL);
}
