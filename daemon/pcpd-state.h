/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-state: what pcpd keeps in its state directory, and how it is read and written.
 *
 * Two files. mappings.state is a snapshot: a [State] group (the next mapping id) and one
 * [Mapping <id>] group per mapping, in key file syntax; it is only ever replaced whole
 * (a temporary file in the same directory, fsync, rename, fsync of the directory), so a
 * reader sees the old snapshot or the new one, never a mix. mappings.journal holds every
 * change since that snapshot, one record each, appended the moment it happens: a
 * mapping's whole group followed by the line "#end", or, when the mapping is gone for
 * good, its group with only Removed=true. Loading replays the journal's complete records
 * over the snapshot; a torn record (a power cut in the middle of a write) is skipped.
 *
 * Keys added later (the UPnP-IGD backend's Upnp*) are optional: files written before them
 * load unchanged.
 *
 * A mapping that was removed but whose delete the server has not confirmed yet stays in
 * the state as a "deleting" record (Deleting=true, with its nonce and what the delete
 * needs), until the server answers or the lifetime it may still have upstream has run
 * out (DeleteUntil): a restarted pcpd deletes it again.
 *
 * Every file is opened relative to the state directory's file descriptor and never
 * through a symbolic link (O_NOFOLLOW); the directory itself must belong to the user pcpd
 * runs as and must not be writable by group or others (pcpd_state_dir_open()).
 *
 * The codec (format, parse, replay) is pure: no I/O, no logging. Loading logs what it
 * skipped.
 */

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pcp-wire.h"

#define PCPD_STATE_FILE "mappings.state"
#define PCPD_STATE_JOURNAL "mappings.journal"
/* the journal that replaces it after a snapshot (pcpd_state_journal_switch()) */
#define PCPD_STATE_JOURNAL_NEXT "mappings.journal.next"
#define PCPD_STATE_DAMAGED "mappings.state.damaged"
#define PCPD_STATE_JOURNAL_END "#end\n"
/* a state file larger than this is not read: 4096 mappings take about 3 MiB */
#define PCPD_STATE_MAX_FILE_SIZE (64u * 1024 * 1024)

/* A block of records packed one after the other (pcpd-state.c), out of malloc's heap. */
typedef struct pcpd_state_block pcpd_state_block;

/* One mapping as saved. Strings are owned when the record comes from parsing (free with
 * pcpd_state_mapping_free()); the daemon fills one with borrowed strings to format it. */
typedef struct pcpd_state_mapping {
        uint64_t id;
        bool direct;         /* not behind a NAT: no server, no nonce */
        bool has_nonce;
        uint8_t nonce[PCP_NONCE_LEN];
        bool deleting;         /* removed; the server has not confirmed the delete yet */
        uint64_t delete_until; /* CLOCK_REALTIME µs: upstream it has expired by then */
        char *server;          /* the server's endpoint as in Servers; "" when direct */
        uint8_t opcode, protocol;
        int family; /* AF_INET or AF_INET6 */
        uint16_t internal_port, suggested_port;
        uint32_t lifetime;
        char *external_address; /* "" when none yet */
        uint16_t external_port;
        char *remote_address; /* PEER; NULL for MAP */
        uint16_t remote_port;
        bool has_suggested_address;
        struct in6_addr suggested_address;
        bool prefer_failure;
        bool has_third_party;
        struct in6_addr third_party;
        uint8_t n_filters;
        /* n_filters of them (up to PCP_MAX_FILTERS; NULL when none): owned when parsed or
         * copied, borrowed when filled to be formatted. Not inline: 43 of them took 860 of
         * this struct's 1,064 octets, and a restart holds every record at once. */
        pcp_filter *filters;
        bool persistent;
        uid_t uid;
        char *app_id, *app_id_source, *description;
        uint64_t created; /* CLOCK_REALTIME µs */
        char *declared; /* the declaration it is for (pcpd-declared.h); NULL or "" when none */
        /* held through the UPnP-IGD backend (pcpd-backend.h) while its server speaks neither
         * PCP nor NAT-PMP: the interface (NULL when not), the IGD's address, the external
         * port it granted, and whether it took only a permanent lease (pcpd deletes it).
         * A record with these and no nonce is a UPnP mapping being deleted (Deleting). */
        char *upnp_interface;
        struct in6_addr upnp_igd;
        uint16_t upnp_external_port;
        bool upnp_permanent;
        /* A parsed record lies with its strings and filters in a block of the loaded
         * state's (NULL: allocated by itself, as a copy is, or borrowed): the block goes
         * back to the system whole once its last record is freed, leaving no hole in
         * malloc's heap between what was made from the records meanwhile (bench/README.md,
         * branch restorerss). Not to be kept for long: pcpd_state_mapping_unpack(). */
        pcpd_state_block *block;
} pcpd_state_mapping;

/* What was loaded: the records by id, and the first id never used. */
typedef struct pcpd_state {
        uint64_t next_id;
        GHashTable *mappings; /* id (uint64_t *) -> pcpd_state_mapping *, owned */
        /* what loading skipped */
        unsigned damaged;          /* snapshot groups that are no valid mapping, or hold a
                                    * line that is no key file text ([State] too) */
        char **damaged_names;      /* their names, NULL-terminated (up to 16) */
        unsigned damaged_text;     /* snapshot parts in no group it can name that are no key
                                    * file text (lines before the first group, a group line
                                    * cut short) */
        unsigned journal_records;  /* complete records replayed */
        unsigned journal_damaged;  /* complete records that were no valid mapping */
        size_t journal_torn;       /* bytes of torn records skipped */
        pcpd_state_block *block;   /* the block parsed records are packed into now */
} pcpd_state;

void pcpd_state_mapping_free(pcpd_state_mapping *m);
/* A copy that owns its strings (of a record that may borrow them), allocated by itself. */
pcpd_state_mapping *pcpd_state_mapping_copy(const pcpd_state_mapping *m);
/* m (taken over) as a record allocated by itself: m, or its copy when m lies in a block of
 * a loaded state (then m is freed), so that a record kept after the restore does not keep
 * its whole block. */
pcpd_state_mapping *pcpd_state_mapping_unpack(pcpd_state_mapping *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_state_mapping, pcpd_state_mapping_free)

pcpd_state *pcpd_state_new(void);
pcpd_state *pcpd_state_free(pcpd_state *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_state, pcpd_state_free)

/* ---- the codec ---- */

/* Appends "key=value" and a line end, value escaped as GKeyFile reads it back (also for
 * the files of pcpd-declared.h). */
void pcpd_state_format_string(GString *out, const char *key, const char *value);
/* Appends the [State] group of a snapshot. */
void pcpd_state_format_header(GString *out, uint64_t next_id);
/* Appends m's group (a snapshot's part, or a journal record without its end line). */
void pcpd_state_format_mapping(GString *out, const pcpd_state_mapping *m);
/* Appends a whole journal record: m's group and the end line. */
void pcpd_state_format_record(GString *out, const pcpd_state_mapping *m);
/* Appends the journal record that forgets mapping id. */
void pcpd_state_format_removal(GString *out, uint64_t id);

/* Reads a snapshot into st (which it replaces): -EBADMSG when data is no key file at all
 * (no part of it is: the caller keeps the file aside); a group that is no valid mapping,
 * or holds a line GKeyFile does not take (one that is no key, group or comment line, a
 * NUL), or is followed by a group line cut short (it may be cut short itself), is counted
 * in st->damaged and skipped, and only it: the others are kept. Damaged
 * [State] is counted too, its NextMappingId still taken from a line that reads as one (else
 * the next id is past every id seen, as when it is missing). Damaged text in no group
 * (before the first group, under a group line cut short) is counted in st->damaged_text. */
int pcpd_state_parse_snapshot(pcpd_state *st, const char *data, size_t len);
/* Replays the journal's complete records over st, in order. A record that is no valid
 * mapping is counted and skipped, as are torn ones (a record cut short by a failed or
 * interrupted write, at the end or followed by later records). */
void pcpd_state_replay_journal(pcpd_state *st, const char *data, size_t len);
/* The records ordered by id (deleting ones too); the array does not own them. */
GPtrArray *pcpd_state_sorted(pcpd_state *st);

/* ---- compaction ---- */

/*
 * When the journal is folded into a new snapshot. Writing a snapshot costs its whole size
 * (formatting, write, fsync), so it is not done after every change but once the journal has
 * grown as large as the last snapshot: then each byte of snapshot written is paid for by at
 * least one byte of journal appended since the one before, and keeping N mappings costs
 * O(N) in total however they came (a snapshot of the state now is at most the last snapshot
 * plus what the journal added). While snapshot and journal together are small (up to
 * PCPD_STATE_COMPACT_SMALL) a snapshot is cheap and is due after any change, as it always
 * was: the files stay short and tidy for the few mappings most hosts have. Nor does the
 * journal grow past PCPD_STATE_COMPACT_MAX_JOURNAL, however large the snapshot: a file past
 * PCPD_STATE_MAX_FILE_SIZE is not read, and pcpd would not start. That costs at most 4
 * snapshot bytes per journal byte, as a snapshot past the limit cannot be read either.
 */
#define PCPD_STATE_COMPACT_SMALL (64u * 1024)
#define PCPD_STATE_COMPACT_MAX_JOURNAL (PCPD_STATE_MAX_FILE_SIZE / 4)
/* A new snapshot is due: the last one has snapshot_size bytes, and journal_size bytes of
 * records were appended after it. */
bool pcpd_state_compact_due(uint64_t snapshot_size, uint64_t journal_size);

/*
 * A snapshot formatted a few records at a time, so that a large one never holds up the
 * caller's main loop: the ids are taken when it starts, and each one is looked up only when
 * its turn comes (lookup fills in its record, strings borrowed until the next call, or says
 * it is gone: then it is left out). Ids that come later are not in it.
 *
 * Such a snapshot is a mix: records formatted early have a mapping as it was when the
 * formatting started, later ones as it was later. That is consistent with the journal from
 * the offset it had when the formatting started on: every change after that point is a
 * whole record there (a mapping's full state, or its removal), and replaying them over the
 * snapshot in order gives each changed mapping its last state whatever the snapshot had of
 * it, a mapping removed meanwhile is removed again (or was left out), one added meanwhile
 * comes from the journal alone; a mapping that did not change has the same record either
 * way. The next id in the header is the one when it started; the loader raises it past
 * every id the journal names.
 */
typedef struct pcpd_state_formatter pcpd_state_formatter;
typedef bool (*pcpd_state_lookup_func)(uint64_t id, pcpd_state_mapping *ret, void *userdata);

/* A snapshot of the records ids (taken over, g_free()d) will name, with next_id in its
 * header, its text kept in memory; size_hint: the bytes it is expected to take (0:
 * unknown). */
pcpd_state_formatter *pcpd_state_formatter_new(uint64_t next_id, uint64_t *ids, size_t n_ids, size_t size_hint);
/* The same, written to fd (borrowed; pcpd_state_replace_begin()) as it is formatted: a
 * piece of about 64 KiB at a time, so that the whole text (~300 octets a record) is never
 * in memory. A failed write ends it (step returns true); pcpd_state_formatter_end() tells. */
pcpd_state_formatter *pcpd_state_formatter_new_fd(int fd, uint64_t next_id, uint64_t *ids, size_t n_ids);
/* Formats up to max more ids: true when every id has had its turn (or, with an fd, a write
 * failed). */
bool pcpd_state_formatter_step(pcpd_state_formatter *f, size_t max, pcpd_state_lookup_func lookup, void *userdata);
/* Formats rec now, after what the steps formatted (with an fd: written out a piece of about
 * 64 KiB at a time): for a caller that walks its records itself in one go, where nothing
 * can change between two records (a snapshot written whole on the main thread, at start
 * and at shutdown), so that no array of ids is needed (8 octets a record: 1 MiB at
 * 131,070). Such a formatter is made with no ids (NULL, 0). false once a write failed
 * (nothing more is formatted; pcpd_state_formatter_end() tells). */
bool pcpd_state_formatter_add(pcpd_state_formatter *f, const pcpd_state_mapping *rec);
/* Of one kept in memory: the snapshot text (all of it once step returned true), and f
 * freed. */
GString *pcpd_state_formatter_finish(pcpd_state_formatter *f);
/* Of one written to an fd: writes what is left, frees f, and returns 0 or the first failed
 * write's negative errno; *ret_size (may be NULL): the bytes written. fd stays open. */
int pcpd_state_formatter_end(pcpd_state_formatter *f, uint64_t *ret_size);
pcpd_state_formatter *pcpd_state_formatter_free(pcpd_state_formatter *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_state_formatter, pcpd_state_formatter_free)

/* ---- files ---- */

/* Opens the state directory and checks that it belongs to the effective uid and is not
 * writable by group or others. On failure returns a negative errno and sets ret_error to
 * a sentence that names the directory and says what to do. */
int pcpd_state_dir_open(const char *path, int *ret_fd, char **ret_error);
/* Reads the regular file name in dirfd (not through a symbolic link) whole: -ENOENT,
 * -ELOOP (a symbolic link), -EBADFD (not a regular file), -EFBIG (too large). */
int pcpd_state_read_file(int dirfd, const char *name, char **ret_data, size_t *ret_len);
/* Replaces name in dirfd with data: name.tmp, write, fsync, rename, fsync dirfd
 * (pcpd_state_replace_begin(), a write, pcpd_state_replace_commit()). On failure name is
 * as it was and name.tmp is gone. */
int pcpd_state_write_atomic(int dirfd, const char *name, const char *data, size_t len);
/* The same in steps, for a file written as it is made: a fresh name.tmp in dirfd (one
 * left over is removed first), 0600, not through a symbolic link: its fd or a negative
 * errno. */
int pcpd_state_replace_begin(int dirfd, const char *name);
/* name.tmp (fd, written whole) takes name's place: fsync, close, rename, fsync dirfd. fd
 * is closed either way; 0, or a negative errno and then name is as it was and name.tmp is
 * gone. */
int pcpd_state_replace_commit(int dirfd, const char *name, int fd);
/* name.tmp is given up: removed (name is as it was). Its fd is the caller's to close
 * (closing the last fd of an unlinked file frees its blocks: that may wait for the disk). */
void pcpd_state_replace_abort(int dirfd, const char *name);
/* Opens the journal for appending (created 0600; a regular file with one link, not a
 * symbolic link). A torn last record (a power cut mid-write) is cut off first, so that
 * the next record starts on a line of its own. A mappings.journal.next is left alone: it
 * may hold records (see pcpd_state_load()); the caller removes it once a snapshot holding
 * them is in place. Returns the fd or a negative errno. */
int pcpd_state_journal_open(int dirfd);
/* Makes an empty mappings.journal.next (0600, O_APPEND; one left over is replaced): the
 * journal after the next snapshot. Returns its fd or a negative errno. */
int pcpd_state_journal_next_open(int dirfd);
/* After a snapshot: the journal open as fd is replaced by next_fd (the file
 * mappings.journal.next, from pcpd_state_journal_next_open()) holding fd's records from
 * offset from on (those appended after the snapshot was formatted, which it does not
 * have; usually none): appended to next_fd, which is exchanged with the journal
 * (renameat2 RENAME_EXCHANGE; the old one, now under the .next name, is then unlinked:
 * never a rename over an existing file, inside which ext4 writes out delayed data and can
 * wait for the disk), without fsync, like every append. Nothing is truncated and no block
 * is freed here: fd now refers to
 * the old, unlinked file, whose blocks are freed when its last fd is closed (by the
 * caller, on a thread where that may wait for the disk). 0, or a negative errno and then
 * the journal is as it was (the caller removes mappings.journal.next). */
int pcpd_state_journal_switch(int dirfd, int fd, off_t from, int next_fd);
/* Appends fd's records from offset from on to next_fd (a pread and a write): the part of
 * pcpd_state_journal_switch() that touches no name. 0 or a negative errno. */
int pcpd_state_journal_copy_tail(int fd, off_t from, int next_fd);
/* Exchanges the names mappings.journal.next and mappings.journal (renameat2
 * RENAME_EXCHANGE): 0, or a negative errno and the names are as they were (-EINVAL where
 * the file system cannot exchange, -ENOENT where one of them is missing). */
int pcpd_state_journal_exchange(int dirfd);
/* pcpd_state_journal_next_open() and pcpd_state_journal_switch() in one: returns the new
 * journal's fd (fd stays open and now refers to the old file) or a negative errno, and
 * then the journal is as it was. */
int pcpd_state_journal_keep_tail(int dirfd, int fd, off_t from);
/* Appends one record at once; on a failed or short write the journal is cut back to
 * where it was, so no torn record stays in front of the next one. */
int pcpd_state_journal_append(int fd, const char *data, size_t len);
/* The same when the caller knows the journal's size before the record (size >= 0; -1:
 * look it up with fstat() as pcpd_state_journal_append() does): the one that appends every
 * record keeps count and saves a system call per record. The size given is where a failed
 * or short write is cut back to. */
int pcpd_state_journal_append_at(int fd, off_t size, const char *data, size_t len);

/* Loads snapshot and journal from dirfd (path is for messages). A mappings.journal.next is
 * replayed before the journal: a daemon stopped while switching journals left there either
 * an empty file, a copy of records the journal has too, or the old journal, whose records
 * come before the journal's; in each case replaying it first gives every mapping its last
 * state (the last record of an id wins). A snapshot that is no key
 * file (no part of it is: pcpd_state_parse_snapshot()) is moved aside to
 * mappings.state.damaged with a warning; a damaged group in one is skipped alone and
 * logged, and the file is left in place (the next snapshot replaces it); what the journal had that
 * was damaged or torn is logged. Fails (with a sentence in error) when a state file is a
 * symbolic link or not a regular file, or cannot be read: pcpd must not start then. */
int pcpd_state_load(int dirfd, const char *path, pcpd_state **ret, GError **error);

/* ---- the snapshot writer ---- */

/*
 * Puts snapshots in place on a thread of its own, so that the fsync()s of
 * pcpd_state_replace_commit() (seconds on a busy disk) never stall the caller's main loop.
 * One at a time: the caller writes the snapshot into name.tmp (pcpd_state_replace_begin(),
 * pcpd_state_formatter_new_fd()), hands its fd over, and is told on its main context when
 * the file is in place (or why not). The thread touches only that fd, the directory fd and
 * the file name (and, when asked, the next journal it makes and the fds it is given to
 * close), and hands the result back under a lock. It lives as long as the writer: the main
 * loop never waits for a thread to exit.
 */
typedef struct pcpd_state_writer pcpd_state_writer;
/* How a written name.tmp is put in place (pcpd_state_replace_commit() unless a test says
 * otherwise): fd taken over (closed either way); 0 or a negative errno, and then name is as
 * it was and name.tmp gone. Runs on the writer's thread. */
typedef int (*pcpd_state_write_func)(int dirfd, const char *name, int fd, void *userdata);
/* A write ended: r as the write function returned it. Runs on the main context the writer
 * was made on (or inside pcpd_state_writer_wait()); it may start the next write. */
typedef void (*pcpd_state_written_func)(int r, void *userdata);

/* A writer of name in dirfd (both must outlive it), watched from the thread-default main
 * context. write NULL: pcpd_state_replace_commit(). */
int pcpd_state_writer_new(int dirfd, const char *name, pcpd_state_write_func write, void *write_data,
                          pcpd_state_written_func done, void *userdata, pcpd_state_writer **ret);
/* A write is in flight. */
bool pcpd_state_writer_busy(const pcpd_state_writer *w);
/* Starts putting name.tmp, written whole and open as fd, in place: 0 and fd is taken over,
 * or -EBUSY while a write is in flight, -EAGAIN when no thread could be started (fd stays
 * the caller's). done is called later, on the main context. fd -1: a job with no write, for
 * what the thread prepares (pcpd_state_writer_prepare_tmp()); done gets 0. */
int pcpd_state_writer_start(pcpd_state_writer *w, int fd);
/* Blocks until the write in flight (if any) ends, and calls done for it before returning.
 * False when there was none. */
bool pcpd_state_writer_wait(pcpd_state_writer *w);
/* From now on, after each write that succeeded, the thread also makes the next journal
 * (pcpd_state_journal_next_open()) and exchanges it with the journal
 * (pcpd_state_journal_exchange()): done takes it with pcpd_state_writer_take_journal(). The
 * caller goes on appending to its journal's fd meanwhile (that file is now named
 * mappings.journal.next), copies what the new one lacks into it (pcpd_state_journal_copy_tail())
 * and has the old name removed on the thread (pcpd_state_writer_unlink_next()). */
void pcpd_state_writer_prepare_journal(pcpd_state_writer *w);
/* Inside done: the fd of the next journal the thread made after the write (taken over), or
 * a negative errno (none was made: the write failed, it could not be made, or it was not
 * asked for). *ret_exchanged (may be NULL): the thread exchanged it with the journal; when
 * false (the file system has no exchange, or there was no journal) it is still
 * mappings.journal.next and the caller switches with pcpd_state_journal_switch(). One not
 * taken is closed by the thread (exchanged, the names stay so: loading reads
 * mappings.journal.next before the journal, and that is the journal's whole history). */
int pcpd_state_writer_take_journal(pcpd_state_writer *w, bool *ret_exchanged);
/* From now on, after each job (a write, whether it succeeded or not, or a job with no fd),
 * the thread also makes a fresh name.tmp (pcpd_state_replace_begin()) for the next
 * snapshot: done takes it with pcpd_state_writer_take_tmp(), so that the main thread never
 * creates or removes a name in the directory (a lookup there can wait for the disk while
 * the thread's fsync()s write it out: seen 1.2 s on a loaded machine). */
void pcpd_state_writer_prepare_tmp(pcpd_state_writer *w);
/* Inside done: the fd of the fresh name.tmp the thread made (taken over), or a negative
 * errno. One not taken is closed by the thread. */
int pcpd_state_writer_take_tmp(pcpd_state_writer *w);
/* Removes mappings.journal.next on the thread, in order with its jobs and before the fds
 * given to close after it. */
void pcpd_state_writer_unlink_next(pcpd_state_writer *w);
/* Closes fd on the writer's thread, in order with its writes (at once when it has no
 * thread): closing the last fd of an unlinked file frees its blocks, and on a busy disk
 * that waits for the file system's journal. Taken over. */
void pcpd_state_writer_close(pcpd_state_writer *w, int fd);
/* Waits for a write in flight, without calling done, closes what it was given to close,
 * and frees w. */
pcpd_state_writer *pcpd_state_writer_free(pcpd_state_writer *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_state_writer, pcpd_state_writer_free)
