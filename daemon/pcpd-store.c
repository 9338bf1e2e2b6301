/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-store.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcpd-log.h"

/*
 * Persistence is a snapshot plus a journal (pcpd-state.h). mappings.journal gets one record
 * per change the moment it happens (a new mapping and its nonce, a grant's external address
 * and port, a removal): a single O_APPEND write, O(1) per change however many mappings
 * there are. The journal alone would do; mappings.state, the snapshot, only keeps it short.
 * So a snapshot is not written after every change (that made N changes with N mappings held
 * cost N²): it is written at start, at shutdown, soon after a record could not be appended
 * (the snapshot then holds that change), and once the journal has grown as large as the last
 * snapshot (pcpd_state_compact_due(); while both are small, 200 ms after a change as it
 * always was). It is formatted on the main thread a chunk of records per turn of the loop
 * (pcpd_state_formatter: no turn of the loop takes long however many mappings there are)
 * straight into mappings.state.tmp, a piece of 64 KiB at a time (its whole text, ~300
 * octets a mapping, is never in memory: at 131,070 mappings that was 40 MB more RSS while
 * it lasted), then put in place (fsync, rename, fsync of the directory) on a thread of its
 * own (pcpd_state_writer), one at a time: the loop never waits for the disk, except at
 * start and at shutdown. Its write()s on the main thread only fill the page cache, as the
 * journal's appends do. A snapshot empties the journal but for the records appended after its
 * formatting started (journal_switch_exchanged()), and without waiting for the disk
 * either: the writer's thread makes the next journal and exchanges the two names, the main
 * thread copies those records into the new one and appends there from then on, and the
 * thread removes the old one's name and closes it (its blocks are freed there). Neither a
 * truncation nor the close of an unlinked file happens on the main thread after a
 * snapshot: on ext4 each can wait for writeback and for the commits of the file system's
 * journal that the writer's fsyncs force (seen: 300 ms, during which no PCP retransmission
 * left). Nor does the main thread make, remove or rename a name in the directory while it
 * runs (the thread makes each mappings.state.tmp ahead of its snapshot): a lookup in the
 * directory waits while the thread's fsyncs write it out (seen on a loaded machine: 1.2 s
 * in ext4's lookup, and scenario 5's retransmissions late with it). Only at start, at
 * shutdown, on failure paths and where the file system cannot exchange names does it.
 *
 * What is on the router is on disk first (the owner's policy: a new mapping's nonce is put
 * before its request leaves, a removed one stays as a "deleting" record until the server
 * confirms the delete). No fsync of the journal: a killed daemon loses nothing (the page
 * cache has it); a power cut may lose the last changes and leave a torn last record, which
 * loading skips.
 *
 * A failed write starts an episode: one warning, the error set, a snapshot retried every
 * few seconds; the first snapshot that succeeds ends it with one line.
 */

#define STATE_RETRY_SECONDS 5
/* records of a snapshot formatted per turn of the main loop: about 3 µs of CPU each, so
 * under a millisecond per turn (the one-shot format of 30,000 took 90 ms of CPU, and
 * half a second on a loaded machine) */
#define SNAPSHOT_CHUNK 256
/* a change coalesces with the ones of the next 200 ms (a router restart touches every
 * mapping at once) */
#define SAVE_DELAY_MS 200
/* a record put "later" (pcpd_store_forget_later()) is written with the next record that must
 * be on disk at once, or at the latest this long after it was put */
#define LATER_DELAY_MS 200

struct pcpd_store {
        int dirfd;      /* borrowed */
        char *dir_name; /* for messages */
        const pcpd_store_ops *ops;
        void *userdata;

        guint save_source;
        pcpd_state_writer *writer;        /* writes snapshots off the main loop; NULL until first used */
        bool save_pending;                /* a snapshot is due once the one under way is written */
        off_t snapshot_journal_size;      /* the journal's size when the one under way started */
        pcpd_state_formatter *formatter;  /* the one being formatted, a chunk per turn */
        int snapshot_fd;                  /* its mappings.state.tmp, written as it is formatted */
        int spare_tmp;                    /* a fresh mappings.state.tmp the thread made, or -1 */
        bool preparing;                   /* the writer's job in flight only makes spare_tmp */
        guint format_source;
        size_t snapshot_size_in_flight;   /* the bytes of the one being written */
        uint64_t snapshot_size;           /* the bytes of the last one written */
        uint64_t journal_bytes;           /* the journal's bytes the last snapshot lacks */
        int journal_fd;                   /* mappings.journal, O_APPEND; -1 until first used */
        off_t journal_fd_size;            /* its size as this store wrote it; -1: ask fstat() */
        char *error;                      /* NULL while everything is saved */
        guint retry_source;               /* while error is set */
        GString *later;                   /* records put "later", not yet written, in order */
        guint later_source;               /* writes them LATER_DELAY_MS after the first */
};

static void schedule_save(pcpd_store *s);
static void save_async(pcpd_store *s);
static int later_write(pcpd_store *s);

static void tell_error(pcpd_store *s) {
        if (s->ops->error_changed != NULL)
                s->ops->error_changed(s->error, s->userdata);
}

static gboolean on_retry(gpointer data);

/* A write to the state directory failed: one warning and error per episode. */
static void state_failed(pcpd_store *s, int r) {
        if (s->retry_source == 0)
                s->retry_source = g_timeout_add_seconds(STATE_RETRY_SECONDS, on_retry, s);
        if (s->error != NULL)
                return;
        s->error = g_strdup_printf("cannot save state in %s: %s", s->dir_name, g_strerror(-r));
        pcpd_log_event(G_LOG_LEVEL_WARNING, PCPD_MSGID_STATE_ERROR,
                       ((const char *const[]) { "PCPD_STATE_DIRECTORY", s->dir_name, NULL }),
                       "Cannot save the mappings in %s: %s. New mappings are refused while their nonce cannot be "
                       "written, and changes since may be lost if pcpd stops; free space there (retrying every %u s, "
                       "logged again when it works)",
                       s->dir_name, g_strerror(-r), STATE_RETRY_SECONDS);
        tell_error(s);
}

/* A whole snapshot was written: everything the owner has is on disk. */
static void state_saved(pcpd_store *s) {
        if (s->retry_source != 0) {
                g_source_remove(s->retry_source);
                s->retry_source = 0;
        }
        if (s->error == NULL)
                return;
        g_clear_pointer(&s->error, g_free);
        pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_STATE_SAVED,
                       ((const char *const[]) { "PCPD_STATE_DIRECTORY", s->dir_name, NULL }),
                       "The mappings are saved in %s again", s->dir_name);
        tell_error(s);
}

static void save_done(pcpd_store *s, int r) {
        if (r < 0)
                state_failed(s, r);
        else
                state_saved(s);
}

static int journal_open(pcpd_store *s) {
        if (s->journal_fd < 0) {
                struct stat st;
                int fd = pcpd_state_journal_open(s->dirfd);
                if (fd < 0)
                        return fd;
                s->journal_fd = fd;
                s->journal_fd_size = fstat(fd, &st) >= 0 ? st.st_size : -1;
                s->journal_bytes = s->journal_fd_size >= 0 ? (uint64_t) s->journal_fd_size : 0;
        }
        return 0;
}

/* The journal's size now: -1 when it cannot be told (then it is not emptied). Only this
 * store writes the journal, so its size is counted rather than asked for each record (a
 * system call per change); after anything that replaced or cut the file, or a failed
 * append, it is asked for again once. */
static off_t journal_size(pcpd_store *s) {
        struct stat st;

        if (journal_open(s) < 0)
                return -1;
        if (s->journal_fd_size < 0 && fstat(s->journal_fd, &st) >= 0)
                s->journal_fd_size = st.st_size;
        return s->journal_fd_size;
}

/*
 * A snapshot written on the main thread (at start, at shutdown, or with no thread to write
 * it) is in place. It has every change the journal had when its formatting started
 * (size_at_format): those records go. When nothing was appended since, the journal is
 * emptied (a crash between the rename and this truncation only replays records whose last
 * word the snapshot already has). Records appended while the snapshot was being formatted
 * a chunk at a time or written on its thread may be newer than what it has of a record
 * and must stay (pcpd_state_formatter, pcpd-state.h): the journal is replaced by a copy of
 * just those (pcpd_state_journal_keep_tail(); the changes of one snapshot's formatting and
 * write, no fsync, like the appends). Should that fail, the journal is left whole:
 * replaying the older records in front of the newer ones over this snapshot is harmless
 * for the same reason (the loader replays in order, the last record of an id wins), and
 * the next snapshot tries again. Only the main thread appends, so the journal cannot
 * change under this.
 */
static void journal_after_sync_snapshot(pcpd_store *s, off_t size_at_format) {
        off_t now = journal_size(s);
        int r = 0;

        if (size_at_format < 0 || now < size_at_format)
                return; /* unknown: left whole, and counted whole */
        /* what the snapshot lacks, whether or not the journal can be cut down to it (else
         * a journal that cannot be cut would make every snapshot due again at once) */
        s->journal_bytes = (uint64_t) (now - size_at_format);
        if (now == size_at_format) {
                if (now > 0 && ftruncate(s->journal_fd, 0) < 0)
                        r = -errno;
        } else {
                r = pcpd_state_journal_keep_tail(s->dirfd, s->journal_fd, size_at_format);
                if (r >= 0) {
                        close(s->journal_fd);
                        s->journal_fd = r;
                }
        }
        s->journal_fd_size = -1;
        if (r < 0)
                g_debug("Cannot empty the mapping journal: %s", g_strerror(-r));
}

/* A snapshot of every record the owner has, formatted into fd (mappings.state.tmp) as it
 * goes. The ids are copied now (O(n), a few ms for 100,000): the owner's tables change
 * between two chunks. Each id is looked up again when its turn comes. */
static pcpd_state_formatter *formatter_new(pcpd_store *s, int fd) {
        uint64_t next_id = 1;
        size_t n = 0;
        uint64_t *ids = s->ops->snapshot_ids(s->userdata, &n, &next_id);

        return pcpd_state_formatter_new_fd(fd, next_id, ids, n);
}

/* A snapshot's mappings.state.tmp given up (a failed write, or one cancelled): removed, and
 * its fd closed on the writer's thread when there is one (the close frees its blocks). The
 * snapshot in place is untouched. */
static void snapshot_abort(pcpd_store *s, int fd) {
        pcpd_state_replace_abort(s->dirfd, PCPD_STATE_FILE);
        if (s->writer != NULL)
                pcpd_state_writer_close(s->writer, fd);
        else
                (void) close(fd);
}

/* A snapshot formatted from the owner's walk of its records (ops->snapshot_foreach): the
 * formatter is made at the first record (its header has the next id, known by then) or
 * after the walk (none). */
typedef struct walk {
        int fd;
        uint64_t next_id;
        pcpd_state_formatter *f;
} walk;

static bool walk_add(const pcpd_state_mapping *rec, void *data) {
        walk *w = data;

        if (w->f == NULL)
                w->f = pcpd_state_formatter_new_fd(w->fd, w->next_id, NULL, 0);
        return pcpd_state_formatter_add(w->f, rec);
}

/* Everything on disk before this returns, on the main thread (at start and at shutdown):
 * nothing can be appended in between, so the journal is emptied. Written as it is
 * formatted, as on the loop; formatted in one go, so the owner's records are walked
 * directly when it can (ops->snapshot_foreach: no array of ids). */
static int write_snapshot(pcpd_store *s) {
        pcpd_state_formatter *f;
        uint64_t len = 0;
        off_t size;
        int fd, r;

        /* the spare's name is taken by the fresh one made here */
        if (s->spare_tmp >= 0) {
                (void) close(s->spare_tmp);
                s->spare_tmp = -1;
        }
        fd = pcpd_state_replace_begin(s->dirfd, PCPD_STATE_FILE);
        if (fd < 0)
                return fd;
        if (s->ops->snapshot_foreach != NULL) {
                walk w = { .fd = fd, .next_id = 1 };

                s->ops->snapshot_foreach(s->userdata, &w.next_id, walk_add, &w);
                f = w.f != NULL ? w.f : pcpd_state_formatter_new_fd(fd, w.next_id, NULL, 0);
        } else {
                f = formatter_new(s, fd);
                (void) pcpd_state_formatter_step(f, SIZE_MAX, s->ops->lookup, s->userdata);
        }
        r = pcpd_state_formatter_end(f, &len);
        if (r < 0) {
                snapshot_abort(s, fd);
                return r;
        }
        size = journal_size(s);
        r = pcpd_state_replace_commit(s->dirfd, PCPD_STATE_FILE, fd);
        if (r < 0)
                return r;
        s->snapshot_size = len;
        /* a mappings.journal.next (loaded before the journal at start, or the old journal
         * of the last switch, whose tail the journal has) holds nothing this lacks */
        (void) unlinkat(s->dirfd, PCPD_STATE_JOURNAL_NEXT, 0);
        journal_after_sync_snapshot(s, size);
        return 0;
}

/* A snapshot is being formatted or written. */
static bool snapshot_busy(const pcpd_store *s) {
        return s->formatter != NULL || (s->writer != NULL && pcpd_state_writer_busy(s->writer));
}

/* A snapshot ended (written or not): the next one is due if a save was asked for meanwhile
 * (a failed append, a retry), or if the journal has grown enough by now. While writes fail,
 * the retry timer alone tries again. */
static void snapshot_ended(pcpd_store *s) {
        if (s->save_pending) {
                s->save_pending = false;
                schedule_save(s);
        } else if (s->error == NULL && pcpd_state_compact_due(s->snapshot_size, s->journal_bytes))
                schedule_save(s);
}

/*
 * Where the writer's thread could not exchange the names (a file system without
 * RENAME_EXCHANGE, or no journal yet): the same switch on the main thread.
 *
 * A snapshot written on the writer's thread is in place, and the thread made next_fd, an
 * empty mappings.journal.next (or could not: a negative errno). The journal's records up to
 * size_at_format (its size when the formatting started) are in the snapshot and go; those
 * appended since (while it was formatted a chunk at a time or written; usually none) may
 * be newer than what it has of a record and must stay (pcpd_state_formatter, pcpd-state.h).
 * So they are copied into next_fd (a pread and a write of a few records, like an append),
 * which takes the journal's place (pcpd_state_journal_switch(): an exchange of the two
 * names and an unlink of the old one, never a rename over it, which on ext4 may wait for
 * the disk; no fsync, like the appends), and the old journal's fd goes to the writer's
 * thread to be closed: that close frees its blocks, and may wait for the disk. Nothing
 * here truncates or frees a block.
 *
 * A crash before the exchange leaves the journal whole (and a mappings.journal.next, empty or
 * a copy of the journal's tail, replayed first at the next start): replaying the older records in front of the newer ones over this
 * snapshot is harmless (the loader replays in order, the last record of an id wins), as
 * it is when anything here fails: then the journal is left whole and the next snapshot
 * tries again. A crash after the exchange leaves just the tail, which is what the snapshot
 * lacks, and, before the unlink, the old journal as mappings.journal.next, replayed first at
 * the next start. Only the main thread appends, so the journal cannot change under this; appends
 * stay synchronous writes on it (a new mapping's nonce is on disk before its request
 * leaves) and never wait for a truncation.
 */
static void journal_switch(pcpd_store *s, off_t size_at_format, int next_fd) {
        off_t now = journal_size(s);
        int r;

        if (size_at_format < 0 || now < size_at_format) {
                /* unknown: left whole, and counted whole */
                if (next_fd >= 0)
                        (void) unlinkat(s->dirfd, PCPD_STATE_JOURNAL_NEXT, 0);
                pcpd_state_writer_close(s->writer, next_fd);
                return;
        }
        /* what the snapshot lacks, whether or not the journal can be cut down to it (else
         * a journal that cannot be cut would make every snapshot due again at once) */
        s->journal_bytes = (uint64_t) (now - size_at_format);
        r = next_fd < 0 ? next_fd : pcpd_state_journal_switch(s->dirfd, s->journal_fd, size_at_format, next_fd);
        if (r < 0 && next_fd < 0)
                g_debug("Cannot empty the mapping journal: %s", g_strerror(-r));
        else if (r < 0) {
                g_debug("Cannot empty the mapping journal: %s", g_strerror(-r));
                /* empty or nearly: unlinked here, its few blocks freed on the thread */
                (void) unlinkat(s->dirfd, PCPD_STATE_JOURNAL_NEXT, 0);
                pcpd_state_writer_close(s->writer, next_fd);
                return;
        }
        pcpd_state_writer_close(s->writer, s->journal_fd);
        s->journal_fd = next_fd;
        s->journal_fd_size = -1;
}

/*
 * The same where the writer's thread has already exchanged the names (the usual case): the
 * new journal, next_fd, is mappings.journal, and the one this store appended to until now
 * is mappings.journal.next, whole. What the snapshot lacks (the records from size_at_format
 * on, or all of them when that is not known) is copied into next_fd, which takes the
 * appends from here on; the thread then removes the old name and closes the old file. No
 * name in the directory is touched on the main thread: a lookup there waits while the
 * thread's fsync()s write the directory out (seen on a loaded machine: pcpd's loop held
 * 1.2 s in ext4's lookup, and its PCP retransmissions with it).
 *
 * A start at any moment of this replays mappings.journal.next, then the journal
 * (pcpd_state_load()): the old journal whole, then a copy of its tail (or nothing yet),
 * then what came after: every mapping gets its last state. Should the copy fail, the
 * names are exchanged back here (a failure path: the disk is full) and the old journal
 * stays the journal, whole, as after a failed snapshot.
 */
static void journal_switch_exchanged(pcpd_store *s, off_t size_at_format, int next_fd) {
        off_t now, from;
        int r;

        if (s->journal_fd < 0) {
                /* no journal could be opened before (journal_size() would open the new one
                 * by its name now): the snapshot has every record, the new one is it */
                pcpd_state_writer_unlink_next(s->writer);
                s->journal_fd = next_fd;
                s->journal_fd_size = -1;
                s->journal_bytes = 0;
                return;
        }
        now = journal_size(s);
        from = size_at_format >= 0 && now >= size_at_format ? size_at_format : 0;
        r = now >= 0 ? pcpd_state_journal_copy_tail(s->journal_fd, from, next_fd) : -EIO;
        if (r < 0) {
                g_debug("Cannot empty the mapping journal: %s", g_strerror(-r));
                r = pcpd_state_journal_exchange(s->dirfd);
                if (r < 0)
                        g_warning("Cannot give the mapping journal %s/%s its name back: %s; the next start reads "
                                  "%s and then %s, which together hold every change",
                                  s->dir_name, PCPD_STATE_JOURNAL_NEXT, g_strerror(-r), PCPD_STATE_JOURNAL_NEXT,
                                  PCPD_STATE_JOURNAL);
                else
                        pcpd_state_writer_unlink_next(s->writer);
                pcpd_state_writer_close(s->writer, next_fd);
                s->journal_fd_size = -1;
                return;
        }
        s->journal_bytes = (uint64_t) (now - from);
        pcpd_state_writer_unlink_next(s->writer);
        pcpd_state_writer_close(s->writer, s->journal_fd);
        s->journal_fd = next_fd;
        s->journal_fd_size = -1;
}

/* The writer's thread has written (or failed to write) the snapshot in flight, or made a
 * fresh mappings.state.tmp (a job of its own: s->preparing). */
static void on_snapshot_written(int r, void *userdata) {
        pcpd_store *s = userdata;
        bool exchanged = false;
        int next_fd = pcpd_state_writer_take_journal(s->writer, &exchanged);
        int tmp = pcpd_state_writer_take_tmp(s->writer);

        if (s->spare_tmp >= 0)
                pcpd_state_writer_close(s->writer, s->spare_tmp);
        s->spare_tmp = tmp;
        if (s->preparing) {
                s->preparing = false;
                s->save_pending = false;
                if (tmp < 0) {
                        /* the directory takes no new file: an episode, retried on its timer
                         * (not at once: that would ask the thread again and again) */
                        save_done(s, tmp);
                        return;
                }
                save_async(s);
                return;
        }
        if (r >= 0) {
                s->snapshot_size = s->snapshot_size_in_flight;
                if (exchanged)
                        journal_switch_exchanged(s, s->snapshot_journal_size, next_fd);
                else
                        journal_switch(s, s->snapshot_journal_size, next_fd);
        } else
                pcpd_state_writer_close(s->writer, next_fd);
        save_done(s, r);
        snapshot_ended(s);
}

static void format_cancel(pcpd_store *s) {
        if (s->format_source != 0) {
                g_source_remove(s->format_source);
                s->format_source = 0;
        }
        if (s->formatter != NULL) {
                s->formatter = pcpd_state_formatter_free(s->formatter);
                snapshot_abort(s, s->snapshot_fd);
                s->snapshot_fd = -1;
        }
}

/* One chunk of the snapshot being formatted (and written into mappings.state.tmp); after
 * the last one the writer's thread puts it in place. A failed write (a full disk) ends it
 * here: the snapshot in place and the journal are untouched, and the failure starts an
 * episode as a failed put does. */
static gboolean on_format(gpointer data) {
        pcpd_store *s = data;
        uint64_t len = 0;
        int fd, r;

        if (!pcpd_state_formatter_step(s->formatter, SNAPSHOT_CHUNK, s->ops->lookup, s->userdata))
                return G_SOURCE_CONTINUE;
        s->format_source = 0;
        fd = s->snapshot_fd;
        s->snapshot_fd = -1;
        r = pcpd_state_formatter_end(g_steal_pointer(&s->formatter), &len);
        if (r < 0) {
                snapshot_abort(s, fd);
                save_done(s, r);
                snapshot_ended(s);
                return G_SOURCE_REMOVE;
        }
        s->snapshot_size_in_flight = len;
        if (pcpd_state_writer_start(s->writer, fd) < 0) {
                /* no thread: put in place here then; the records appended since the
                 * formatting started stay, as after the thread's */
                r = pcpd_state_replace_commit(s->dirfd, PCPD_STATE_FILE, fd);
                if (r >= 0) {
                        s->snapshot_size = len;
                        journal_after_sync_snapshot(s, s->snapshot_journal_size);
                }
                save_done(s, r);
                snapshot_ended(s);
        }
        return G_SOURCE_REMOVE;
}

/* A snapshot, formatted a chunk per turn of the loop and written off it: formatting
 * 100,000 records takes a fraction of a second, the fsyncs of a busy disk take seconds,
 * and PCP retransmissions must leave on time meanwhile. At most one snapshot is under way;
 * a save asked for meanwhile is one more, started when it is written. */
static void save_async(pcpd_store *s) {
        int fd, r;

        if (s->writer == NULL) {
                r = pcpd_state_writer_new(s->dirfd, PCPD_STATE_FILE, NULL, NULL, on_snapshot_written, s, &s->writer);
                if (r < 0) {
                        save_done(s, write_snapshot(s));
                        return;
                }
                pcpd_state_writer_prepare_journal(s->writer);
                pcpd_state_writer_prepare_tmp(s->writer);
        }
        if (snapshot_busy(s)) {
                s->save_pending = true;
                return;
        }
        if (s->spare_tmp >= 0) {
                fd = s->spare_tmp;
                s->spare_tmp = -1;
        } else if (pcpd_state_writer_start(s->writer, -1) >= 0) {
                /* the thread makes mappings.state.tmp (a name made on this thread can wait
                 * for the disk); the snapshot starts when it is there */
                s->preparing = true;
                s->save_pending = true;
                return;
        } else {
                /* no thread: made here */
                fd = pcpd_state_replace_begin(s->dirfd, PCPD_STATE_FILE);
                if (fd < 0) {
                        save_done(s, fd);
                        return;
                }
        }
        /* the records from here on are what the snapshot may lack: they stay (and so do
         * the records put later and not written yet: they are written after this mark) */
        s->snapshot_journal_size = journal_size(s);
        s->snapshot_fd = fd;
        s->formatter = formatter_new(s, fd);
        /* at the default priority, not below it: a lower one would wait for as long as the
         * bus keeps pcpd busy (a burst of requests), and the journal would grow meanwhile;
         * here a chunk takes its turn with the other sources ready, and none waits long */
        s->format_source = g_idle_add_full(G_PRIORITY_DEFAULT, on_format, s, NULL);
        g_source_set_name_by_id(s->format_source, "pcpd-snapshot-format");
}

/* Ends the snapshot under way (and handles its end) before anything that must not overlap
 * it: a snapshot written on the main thread, shutdown. One being formatted is dropped: the
 * caller writes a whole one. */
static void save_wait(pcpd_store *s) {
        if (s->writer != NULL)
                (void) pcpd_state_writer_wait(s->writer);
        format_cancel(s);
}

int pcpd_store_save(pcpd_store *s) {
        int r;

        save_wait(s);
        /* the records put later first, so that the journal is emptied (the snapshot has
         * what they say); a failure here is the snapshot's to mend */
        (void) later_write(s);
        s->save_pending = false;
        if (s->save_source != 0) {
                g_source_remove(s->save_source);
                s->save_source = 0;
        }
        r = write_snapshot(s);
        save_done(s, r);
        return r;
}

static gboolean on_save(gpointer data) {
        pcpd_store *s = data;

        s->save_source = 0;
        save_async(s);
        return G_SOURCE_REMOVE;
}

static gboolean on_retry(gpointer data) {
        pcpd_store *s = data;

        s->retry_source = 0;
        if (s->save_source == 0)
                save_async(s); /* re-arms on failure */
        else if (s->error != NULL)
                s->retry_source = g_timeout_add_seconds(STATE_RETRY_SECONDS, on_retry, s);
        return G_SOURCE_REMOVE;
}

static void schedule_save(pcpd_store *s) {
        if (s->save_source == 0)
                s->save_source = g_timeout_add(SAVE_DELAY_MS, on_save, s);
}

/* Writes data (whole records) to the journal with one write(). A failure starts (or
 * continues) an episode, and a snapshot is tried soon: it holds the changes too (it is
 * formatted from the owner's records as they are then). Otherwise a snapshot follows only
 * when the journal has grown enough (pcpd_state_compact_due()) or one failed before; while
 * one is under way, its end looks again. */
static int journal_write(pcpd_store *s, const char *data, size_t len) {
        int r = journal_open(s);

        if (r >= 0) {
                off_t size = journal_size(s);

                r = pcpd_state_journal_append_at(s->journal_fd, size, data, len);
                /* a failed append was cut back, or tried to be: asked for again */
                s->journal_fd_size = r >= 0 && size >= 0 ? size + (off_t) len : -1;
        }
        if (r < 0) {
                state_failed(s, r);
                schedule_save(s);
                return r;
        }
        s->journal_bytes += len;
        /* in an episode (the last snapshot failed), every change tries again, as
         * Manager.StateError promises */
        if (s->error != NULL || (!snapshot_busy(s) && pcpd_state_compact_due(s->snapshot_size, s->journal_bytes)))
                schedule_save(s);
        return 0;
}

/* The records put "later" and not yet written go now, with one write(): with a record that
 * must be on disk at once (in the same write, in front of it: append()), before a snapshot
 * on this thread (pcpd_store_save(), at start and at shutdown), or LATER_DELAY_MS after the
 * first of them. A snapshot formatted meanwhile a chunk per turn does not wait for them:
 * they are appended after its mark and kept with the records appended then (their effect,
 * the id gone, is in it or comes after it). */
static int later_write(pcpd_store *s) {
        int r;

        if (s->later_source != 0) {
                g_source_remove(s->later_source);
                s->later_source = 0;
        }
        if (s->later == NULL || s->later->len == 0)
                return 0;
        r = journal_write(s, s->later->str, s->later->len);
        g_string_truncate(s->later, 0);
        return r;
}

static gboolean on_later(gpointer data) {
        pcpd_store *s = data;

        s->later_source = 0;
        (void) later_write(s);
        return G_SOURCE_REMOVE;
}

/* One journal record, on disk (in the page cache) when this returns 0: written at once,
 * with the records put "later" before it in the same write() (the order of the journal is
 * the order of the puts). Should that write fail, the records put later are not in the
 * journal either: the snapshot the failure schedules holds them. */
static int append(pcpd_store *s, const GString *rec) {
        if (s->later == NULL || s->later->len == 0)
                return journal_write(s, rec->str, rec->len);
        g_string_append_len(s->later, rec->str, (gssize) rec->len);
        return later_write(s);
}

/* One journal record, kept to be written with the next one (or LATER_DELAY_MS from now). */
static void append_later(pcpd_store *s, const GString *rec) {
        if (s->later == NULL)
                s->later = g_string_sized_new(1024);
        g_string_append_len(s->later, rec->str, (gssize) rec->len);
        if (s->later_source == 0) {
                s->later_source = g_timeout_add(LATER_DELAY_MS, on_later, s);
                g_source_set_name_by_id(s->later_source, "pcpd-journal-later");
        }
}

int pcpd_store_put(pcpd_store *s, const pcpd_state_mapping *rec) {
        g_autoptr(GString) out = g_string_sized_new(640);

        pcpd_state_format_record(out, rec);
        return append(s, out);
}

int pcpd_store_forget(pcpd_store *s, uint64_t id) {
        g_autoptr(GString) out = g_string_sized_new(64);

        pcpd_state_format_removal(out, id);
        return append(s, out);
}

void pcpd_store_forget_later(pcpd_store *s, uint64_t id) {
        g_autoptr(GString) out = g_string_sized_new(64);

        pcpd_state_format_removal(out, id);
        append_later(s, out);
}

void pcpd_store_flush(pcpd_store *s) {
        /* the snapshot in flight first (its thread uses the directory, its end the
         * journal); then the last one, unless it would have nothing the last one lacks:
         * the next start reads one file, and one being formatted or due is written here */
        bool formatting = s->formatter != NULL;

        save_wait(s);
        (void) later_write(s); /* counted in journal_bytes: a snapshot follows */
        if (s->save_source != 0 || formatting || s->journal_bytes > 0 || s->error != NULL)
                (void) pcpd_store_save(s);
        /* a spare mappings.state.tmp the thread made is not left behind by a clean stop */
        if (s->spare_tmp >= 0) {
                (void) close(s->spare_tmp);
                s->spare_tmp = -1;
                pcpd_state_replace_abort(s->dirfd, PCPD_STATE_FILE);
        }
        if (s->retry_source != 0) {
                g_source_remove(s->retry_source);
                s->retry_source = 0;
        }
}

const char *pcpd_store_error(const pcpd_store *s) {
        return s->error;
}

bool pcpd_store_busy(const pcpd_store *s) {
        return snapshot_busy(s) || s->save_source != 0;
}

int pcpd_store_new(int dirfd, const char *dir_name, const pcpd_store_ops *ops, void *userdata, pcpd_store **ret) {
        pcpd_store *s = g_new0(pcpd_store, 1);

        s->dirfd = dirfd;
        s->dir_name = g_strdup(dir_name);
        s->ops = ops;
        s->userdata = userdata;
        s->journal_fd = -1;
        s->journal_fd_size = -1;
        s->snapshot_fd = -1;
        s->spare_tmp = -1;
        *ret = s;
        return 0;
}

pcpd_store *pcpd_store_free(pcpd_store *s) {
        if (s == NULL)
                return NULL;
        format_cancel(s);
        s->writer = pcpd_state_writer_free(s->writer);
        /* its mappings.state.tmp stays, as a killed daemon's does: the next snapshot replaces it */
        if (s->spare_tmp >= 0)
                (void) close(s->spare_tmp);
        if (s->save_source != 0)
                g_source_remove(s->save_source);
        if (s->retry_source != 0)
                g_source_remove(s->retry_source);
        /* records put later and not written are lost, as in a crash */
        if (s->later_source != 0)
                g_source_remove(s->later_source);
        if (s->later != NULL)
                g_string_free(s->later, TRUE);
        if (s->journal_fd >= 0)
                close(s->journal_fd);
        g_free(s->error);
        g_free(s->dir_name);
        g_free(s);
        return NULL;
}
