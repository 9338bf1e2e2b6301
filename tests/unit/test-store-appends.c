/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store's journal appends (pcpd-store.c) count the journal's size instead of asking the
 * kernel for it with each record: a change costs one write(), no fstat(). What must not
 * regress with that: a put asks no fstat() once the journal is open, and an append that
 * fails halfway is still cut back to exactly where the journal ended, after the journal was
 * emptied by a snapshot written on the calling thread and after it was replaced by one the
 * writer's thread made. Then the next record is one of its own, and what loads is what the
 * owner has.
 *
 * fstat() and fstat64() are wrapped (-Wl,--wrap in tests/meson.build) to count the calls of the main
 * thread. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcpd-store.h"
#include "unit-fixture.h"

/* ---- fstat() calls on the main thread ---- */

static pthread_t main_thread;
static int fstats; /* g_atomic */

/* with _FILE_OFFSET_BITS=64 (meson's default) the calls are to fstat64 */
int __real_fstat(int fd, struct stat *st);
int __wrap_fstat(int fd, struct stat *st);
int __real_fstat64(int fd, struct stat *st);
int __wrap_fstat64(int fd, struct stat *st);

static void count_fstat(void) {
        if (pthread_equal(pthread_self(), main_thread))
                g_atomic_int_inc(&fstats);
}

int __wrap_fstat(int fd, struct stat *st) {
        count_fstat();
        return __real_fstat(fd, st);
}

int __wrap_fstat64(int fd, struct stat *st) {
        count_fstat();
        return __real_fstat64(fd, st);
}

/* ---- the owner: a table of records ---- */

typedef struct fixture {
        char *dir;
        int dfd;
        GHashTable *recs; /* id (uint64_t *) -> pcpd_state_mapping *, owned */
        uint64_t next_id;
        pcpd_store *store;
        struct rlimit fsize;
} fixture;

static uint64_t *owner_ids(void *userdata, size_t *ret_n, uint64_t *ret_next_id) {
        fixture *f = userdata;
        uint64_t *ids = unit_record_ids(f->recs, ret_n);
        *ret_next_id = f->next_id;
        return ids;
}

static bool owner_lookup(uint64_t id, pcpd_state_mapping *ret, void *userdata) {
        fixture *f = userdata;
        pcpd_state_mapping *r = g_hash_table_lookup(f->recs, &id);

        if (r == NULL)
                return false;
        *ret = *r;
        return true;
}

static const pcpd_store_ops ops = {
        .snapshot_ids = owner_ids,
        .lookup = owner_lookup,
};

static int setup(void **state) {
        fixture *f = g_new0(fixture, 1);

        main_thread = pthread_self();
        f->dir = unit_make_own_dir("store-appends");
        f->dfd = unit_open_dir(f->dir);
        f->recs = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, (GDestroyNotify) pcpd_state_mapping_free);
        f->next_id = 1;
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &f->fsize), 0);
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(pcpd_store_new(f->dfd, f->dir, &ops, f, &f->store), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;

        assert_int_equal(setrlimit(RLIMIT_FSIZE, &f->fsize), 0);
        f->store = pcpd_store_free(f->store);
        g_hash_table_destroy(f->recs);
        close(f->dfd);
        assert_int_equal(unit_rm_own_dir(f->dir), 0);
        g_free(f->dir);
        g_free(f);
        return 0;
}

static pcpd_state_mapping *record(uint64_t id, uint16_t version) {
        return unit_state_record(id, version, "a record of the appends test");
}

static int put(fixture *f, uint64_t id, uint16_t version) {
        pcpd_state_mapping *rec = record(id, version);

        g_hash_table_replace(f->recs, &rec->id, rec);
        f->next_id = MAX(f->next_id, id + 1);
        return pcpd_store_put(f->store, rec);
}

static off_t journal_size(fixture *f) {
        struct stat st;

        if (fstatat(f->dfd, PCPD_STATE_JOURNAL, &st, 0) < 0)
                return -1;
        return st.st_size;
}

/* What loads from the directory is what the owner has (ids and external ports). */
static void assert_loads_as_owner(fixture *f) {
        g_autoptr(pcpd_state) st = NULL;
        g_autoptr(GError) error = NULL;
        GHashTableIter it;
        gpointer v;

        assert_int_equal(pcpd_state_load(f->dfd, f->dir, &st, &error), 0);
        assert_int_equal(st->journal_damaged, 0);
        assert_int_equal(st->journal_torn, 0);
        assert_int_equal(g_hash_table_size(st->mappings), g_hash_table_size(f->recs));
        g_hash_table_iter_init(&it, f->recs);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                const pcpd_state_mapping *want = v;
                const pcpd_state_mapping *got = g_hash_table_lookup(st->mappings, &want->id);

                if (got == NULL)
                        fail_msg("record %" G_GUINT64_FORMAT " was not loaded", want->id);
                assert_int_equal(got->external_port, want->external_port);
        }
}

/* The next put fails halfway through its write (RLIMIT_FSIZE), and the journal is cut
 * back to the byte where it ended; with the limit lifted the same put is a record of its
 * own. */
static void assert_failed_put_cut_back(fixture *f, uint64_t id, uint16_t version) {
        off_t before = journal_size(f);
        struct rlimit lim = f->fsize;

        assert_true(before >= 0);
        lim.rlim_cur = (rlim_t) before + 100; /* a record is ~400 octets */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        assert_int_equal(put(f, id, version), -EFBIG);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &f->fsize), 0);
        assert_int_equal(journal_size(f), before);
        assert_int_equal(put(f, id, version), 0);
        assert_true(journal_size(f) > before + 100);
}

/* Runs the loop until the store has nothing under way (the snapshot scheduled after a
 * change while the files are small, formatted and written on the writer's thread). */
static void run_until_idle(fixture *f) {
        unsigned turns = 0;

        while (pcpd_store_busy(f->store)) {
                if (++turns > 100000)
                        fail_msg("the store still busy after %u turns of the loop", turns);
                g_main_context_iteration(NULL, TRUE);
        }
}

static void test_put_asks_no_fstat(void **state) {
        fixture *f = *state;

        assert_int_equal(put(f, 1, 1), 0); /* opens the journal: one fstat there */
        g_atomic_int_set(&fstats, 0);
        for (uint64_t id = 2; id <= 50; id++)
                assert_int_equal(put(f, id, 1), 0);
        for (uint64_t id = 2; id <= 50; id += 2) {
                g_hash_table_remove(f->recs, &id);
                assert_int_equal(pcpd_store_forget(f->store, id), 0);
        }
        assert_int_equal(g_atomic_int_get(&fstats), 0);
        assert_loads_as_owner(f);
}

static void test_failed_put_cut_back(void **state) {
        fixture *f = *state;

        assert_int_equal(put(f, 1, 1), 0);
        assert_int_equal(put(f, 2, 1), 0);
        assert_failed_put_cut_back(f, 3, 1);
        assert_int_equal(put(f, 1, 2), 0);
        assert_loads_as_owner(f);
}

/* After a snapshot written on this thread the journal is empty (or a copy of its tail):
 * its size is what the file says, not what was counted before. */
static void test_failed_put_cut_back_after_sync_snapshot(void **state) {
        fixture *f = *state;

        for (uint64_t id = 1; id <= 5; id++)
                assert_int_equal(put(f, id, 1), 0);
        assert_int_equal(pcpd_store_save(f->store), 0);
        assert_int_equal(journal_size(f), 0);
        assert_int_equal(put(f, 6, 1), 0);
        assert_failed_put_cut_back(f, 7, 1);
        assert_int_equal(put(f, 2, 2), 0);
        assert_failed_put_cut_back(f, 3, 2);
        assert_loads_as_owner(f);
}

/* After a snapshot written on the writer's thread the journal is a new file: counted from
 * there. */
static void test_failed_put_cut_back_after_switch(void **state) {
        fixture *f = *state;
        struct stat before, after;

        for (uint64_t id = 1; id <= 5; id++)
                assert_int_equal(put(f, id, 1), 0);
        assert_int_equal(fstatat(f->dfd, PCPD_STATE_JOURNAL, &before, 0), 0);
        run_until_idle(f);
        assert_int_equal(fstatat(f->dfd, PCPD_STATE_JOURNAL, &after, 0), 0);
        assert_true(after.st_ino != before.st_ino); /* replaced, not cut */
        assert_int_equal(after.st_size, 0);
        assert_int_equal(put(f, 6, 1), 0);
        assert_failed_put_cut_back(f, 7, 1);
        assert_int_equal(put(f, 1, 3), 0);
        assert_loads_as_owner(f);
        run_until_idle(f);
        assert_loads_as_owner(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_put_asks_no_fstat, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_put_cut_back, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_put_cut_back_after_sync_snapshot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_put_cut_back_after_switch, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
