/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the state snapshot and journal reader (daemon/pcpd-state.c).
 *
 * The input is a snapshot (mappings.state), optionally followed by the line "%journal"
 * and a journal (mappings.journal). The snapshot is parsed, the journal replayed over it.
 *
 * Checked, besides no crash / leak / sanitizer report:
 *  - every record kept is a valid mapping (ids below next_id, a nonce and a server unless
 *    direct, MAP or PEER with a remote address exactly for PEER, filters the wire
 *    accepts, strings that are UTF-8), and the counters add up;
 *  - what was read, written again as a snapshot, reads back the same (all fields, next
 *    id, nothing damaged), and writing that again gives the same text; each record,
 *    written as a journal record over nothing, reads back the same, and its removal
 *    record removes it;
 *  - the journal as the daemon continues it: the journal is put in a file, opened with
 *    pcpd_state_journal_open() (which cuts a torn tail) and a record appended with
 *    pcpd_state_journal_append(); replaying that file gives what the journal gave plus
 *    the new record, whatever the journal held (a record the daemon writes is never lost
 *    to what was there before);
 *  - parsing allocates at most a bound linear in the input's size (fuzz-alloc.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz-alloc.h"
#include "fuzz-common.h"
#include "pcpd-state.h"

#define JOURNAL_LINE "\n%journal\n"
/* GKeyFile keeps a few allocations per line (a 2-byte line "a\n" is the worst case) and
 * every group a mapping record with its strings: 256 bytes per input byte is far above
 * what they need, and far below what a size or count taken from the input would take */
#define ALLOC_BOUND(len) ((size_t) (len) * 256 + 256 * 1024)

static int dirfd_ = -1;
static char *dir_;

static void cleanup(void) {
        if (dirfd_ >= 0) {
                (void) unlinkat(dirfd_, PCPD_STATE_JOURNAL, 0);
                close(dirfd_);
        }
        if (dir_ != NULL)
                (void) rmdir(dir_);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* the journal check writes a file per input: where TMPDIR says (scripts/fuzz.sh gives
         * each run its own, removed after it even when the run crashed), else in memory */
        const char *base = g_getenv("TMPDIR") != NULL         ? g_get_tmp_dir()
                           : access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                            : g_get_tmp_dir();

        fuzz_alloc_init();
        dir_ = g_build_filename(base, "pcpd-fuzz-state-XXXXXX", NULL);
        fuzz_check(g_mkdtemp_full(dir_, 0700) != NULL, "cannot make a directory in %s", base);
        dirfd_ = open(dir_, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        fuzz_check(dirfd_ >= 0, "cannot open %s", dir_);
        atexit(cleanup);
        return 0;
}

static bool str_eq(const char *a, const char *b) {
        return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

/* The first field in which a and b differ, NULL when none does. */
static const char *mapping_diff(const pcpd_state_mapping *a, const pcpd_state_mapping *b) {
#define SAME(field, cond)             \
        do {                          \
                if (!(cond))          \
                        return field; \
        } while (0)
        SAME("id", a->id == b->id);
        SAME("direct", a->direct == b->direct);
        SAME("nonce", a->has_nonce == b->has_nonce &&
                              (!a->has_nonce || memcmp(a->nonce, b->nonce, PCP_NONCE_LEN) == 0));
        SAME("deleting", a->deleting == b->deleting);
        SAME("delete_until", a->delete_until == b->delete_until);
        SAME("server", str_eq(a->server, b->server));
        SAME("opcode", a->opcode == b->opcode);
        SAME("protocol", a->protocol == b->protocol);
        SAME("family", a->family == b->family);
        SAME("internal_port", a->internal_port == b->internal_port);
        SAME("suggested_port", a->suggested_port == b->suggested_port);
        SAME("lifetime", a->lifetime == b->lifetime);
        SAME("external_address", str_eq(a->external_address, b->external_address));
        SAME("external_port", a->external_port == b->external_port);
        SAME("remote_address", str_eq(a->remote_address, b->remote_address));
        SAME("remote_port", a->remote_port == b->remote_port);
        SAME("suggested_address",
             a->has_suggested_address == b->has_suggested_address &&
                     (!a->has_suggested_address || pcp_addr_eq(&a->suggested_address, &b->suggested_address)));
        SAME("prefer_failure", a->prefer_failure == b->prefer_failure);
        SAME("third_party", a->has_third_party == b->has_third_party &&
                                    (!a->has_third_party || pcp_addr_eq(&a->third_party, &b->third_party)));
        SAME("n_filters", a->n_filters == b->n_filters);
        for (uint8_t k = 0; k < a->n_filters; k++)
                SAME("filters", a->filters[k].prefix_len == b->filters[k].prefix_len &&
                                        a->filters[k].remote_port == b->filters[k].remote_port &&
                                        pcp_addr_eq(&a->filters[k].remote_addr, &b->filters[k].remote_addr));
        SAME("persistent", a->persistent == b->persistent);
        SAME("uid", a->uid == b->uid);
        SAME("app_id", str_eq(a->app_id, b->app_id));
        SAME("app_id_source", str_eq(a->app_id_source, b->app_id_source));
        SAME("description", str_eq(a->description, b->description));
        SAME("created", a->created == b->created);
#undef SAME
        return NULL;
}

static bool mapping_eq(const pcpd_state_mapping *a, const pcpd_state_mapping *b) {
        return mapping_diff(a, b) == NULL;
}

/* the same records (and, with ids, the same next id); what differs is told on stderr */
static bool state_eq(pcpd_state *a, pcpd_state *b, bool ids) {
        GHashTableIter it;
        gpointer k, v;

        if (g_hash_table_size(a->mappings) != g_hash_table_size(b->mappings)) {
                fprintf(stderr, "%u records, then %u\n", g_hash_table_size(a->mappings), g_hash_table_size(b->mappings));
                return false;
        }
        if (ids && a->next_id != b->next_id) {
                fprintf(stderr, "next id %" G_GUINT64_FORMAT ", then %" G_GUINT64_FORMAT "\n", a->next_id, b->next_id);
                return false;
        }
        g_hash_table_iter_init(&it, a->mappings);
        while (g_hash_table_iter_next(&it, &k, &v)) {
                const pcpd_state_mapping *o = g_hash_table_lookup(b->mappings, k);
                const char *d = o == NULL ? "(missing)" : mapping_diff(v, o);

                if (d != NULL) {
                        fprintf(stderr, "mapping %" G_GUINT64_FORMAT ": %s differs\n", *(uint64_t *) k, d);
                        return false;
                }
        }
        return true;
}

static void check_mapping(const pcpd_state *st, const uint64_t *key, const pcpd_state_mapping *m) {
        struct in6_addr a;

        fuzz_check(*key == m->id && m->id >= 1 && m->id < st->next_id, "id %" G_GUINT64_FORMAT " (key %" G_GUINT64_FORMAT
                   ", next %" G_GUINT64_FORMAT ")", m->id, *key, st->next_id);
        fuzz_check(m->server != NULL && m->external_address != NULL && m->app_id != NULL && m->app_id_source != NULL &&
                           m->description != NULL,
                   "a string left NULL");
        fuzz_check(g_utf8_validate(m->server, -1, NULL) && g_utf8_validate(m->external_address, -1, NULL) &&
                           g_utf8_validate(m->app_id, -1, NULL) && g_utf8_validate(m->app_id_source, -1, NULL) &&
                           g_utf8_validate(m->description, -1, NULL) &&
                           (m->remote_address == NULL || g_utf8_validate(m->remote_address, -1, NULL)),
                   "a string that is not UTF-8");
        if (m->direct)
                fuzz_check(!m->has_nonce && !m->deleting, "a direct mapping with a nonce or being deleted");
        else
                fuzz_check(m->has_nonce && m->server[0] != '\0', "a mapping on a server without nonce or server");
        fuzz_check(m->opcode == PCP_OPCODE_MAP || m->opcode == PCP_OPCODE_PEER, "opcode %u", m->opcode);
        if (m->opcode == PCP_OPCODE_PEER)
                fuzz_check(m->remote_address != NULL && pcp_addr_from_string(m->remote_address, &a),
                           "PEER without a remote address");
        else
                fuzz_check(m->remote_address == NULL, "MAP with a remote address");
        fuzz_check(m->family == AF_INET || m->family == AF_INET6, "family %d", m->family);
        fuzz_check(m->uid != (uid_t) -1, "uid -1");
        fuzz_check(m->n_filters <= PCP_MAX_FILTERS, "%u filters", m->n_filters);
        if (m->n_filters > 0) {
                /* a MAP request with them encodes: the filters are what the wire allows */
                static uint8_t buf[PCP_MAX_MSG_LEN * 2];
                static pcp_msg msg;
                size_t len;
                pcp_wire_error r;

                pcp_msg_init(&msg, false, PCP_OPCODE_MAP);
                msg.protocol = 6;
                msg.internal_port = 1;
                msg.n_filters = m->n_filters;
                memcpy(msg.filters, m->filters, m->n_filters * sizeof(pcp_filter));
                r = pcp_encode(&msg, buf, sizeof(buf), &len);
                fuzz_check(r == PCP_WIRE_OK || r == PCP_WIRE_ERR_BUFFER, "filters the wire refuses: %s",
                           pcp_wire_error_to_string(r));
        }
}

static void check_state(pcpd_state *st) {
        GHashTableIter it;
        gpointer k, v;

        fuzz_check(st->next_id >= 1, "next id 0");
        g_hash_table_iter_init(&it, st->mappings);
        while (g_hash_table_iter_next(&it, &k, &v))
                check_mapping(st, k, v);
        fuzz_check(st->damaged_names == NULL || g_strv_length(st->damaged_names) <= MIN(st->damaged, 16u),
                   "%u damaged names for %u damaged groups", g_strv_length(st->damaged_names), st->damaged);
}

static GString *format_snapshot(pcpd_state *st) {
        g_autoptr(GPtrArray) sorted = pcpd_state_sorted(st);
        GString *s = g_string_new(NULL);

        fuzz_check(sorted->len == g_hash_table_size(st->mappings), "sorted");
        pcpd_state_format_header(s, st->next_id);
        for (guint i = 0; i < sorted->len; i++) {
                if (i > 0)
                        fuzz_check(((pcpd_state_mapping *) sorted->pdata[i - 1])->id <
                                           ((pcpd_state_mapping *) sorted->pdata[i])->id,
                                   "not sorted by id");
                pcpd_state_format_mapping(s, sorted->pdata[i]);
        }
        return s;
}

/* written again, it reads back the same, and the writing is stable */
static void check_roundtrip(pcpd_state *st) {
        g_autoptr(GString) text = format_snapshot(st), text2 = NULL;
        g_autoptr(pcpd_state) back = pcpd_state_new();
        int r;

        r = pcpd_state_parse_snapshot(back, text->str, text->len);
        fuzz_check(r == 0, "a written snapshot does not parse: %d\n%s", r, text->str);
        fuzz_check(back->damaged == 0, "a written snapshot has %u damaged groups, first [%s]\n%s", back->damaged,
                   back->damaged_names[0], text->str);
        fuzz_check(state_eq(st, back, true), "a written snapshot reads back differently\n%s", text->str);
        text2 = format_snapshot(back);
        fuzz_check(g_string_equal(text, text2), "writing is not stable:\n%s\n----\n%s", text->str, text2->str);
}

/* each record as a journal record over nothing, then its removal */
static void check_records(pcpd_state *st) {
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, st->mappings);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                const pcpd_state_mapping *m = v, *got;
                g_autoptr(GString) j = g_string_new(NULL);
                g_autoptr(pcpd_state) one = pcpd_state_new();

                pcpd_state_format_record(j, m);
                pcpd_state_replay_journal(one, j->str, j->len);
                got = g_hash_table_lookup(one->mappings, &m->id);
                fuzz_check(one->journal_records == 1 && one->journal_damaged == 0 && one->journal_torn == 0 &&
                                   got != NULL && mapping_eq(m, got) && one->next_id == m->id + 1,
                           "a record does not read back as itself:\n%s", j->str);
                pcpd_state_format_removal(j, m->id);
                g_clear_pointer(&one, pcpd_state_free);
                one = pcpd_state_new();
                pcpd_state_replay_journal(one, j->str, j->len);
                fuzz_check(one->journal_records == 2 && g_hash_table_size(one->mappings) == 0,
                           "a removal record does not remove:\n%s", j->str);
        }
}

static void write_file(const char *name, const char *data, size_t len) {
        int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);

        fuzz_check(fd >= 0, "cannot write %s/%s: %s", dir_, name, g_strerror(errno));
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                fuzz_check(n > 0, "write: %s", g_strerror(errno));
                data += n;
                len -= (size_t) n;
        }
        close(fd);
}

/* A mapping the daemon could write next: a PEER on a server, every optional field set. */
static void make_next(pcpd_state_mapping *x, uint64_t id) {
        static char server[] = "192.0.2.1:5351", ext[] = "198.51.100.7", remote[] = "2001:db8::5",
                    app[] = "org.example.App", source[] = "flatpak", desc[] = " new; \\ \n[x]";
        /* FILTERs are out of line since the record went on a diet: point at our own */
        static pcp_filter filters[1];

        memset(x, 0, sizeof(*x));
        x->id = id;
        x->has_nonce = true;
        memset(x->nonce, 0xa5, sizeof(x->nonce));
        x->server = server;
        x->opcode = PCP_OPCODE_PEER;
        x->protocol = 17;
        x->family = AF_INET6;
        x->internal_port = 5000;
        x->lifetime = 600;
        x->external_address = ext;
        x->external_port = 6000;
        x->remote_address = remote;
        x->remote_port = 7000;
        memset(filters, 0, sizeof(filters));
        x->n_filters = 1;
        x->filters = filters;
        x->filters[0].prefix_len = 120;
        pcp_addr_from_string("203.0.113.0", &x->filters[0].remote_addr);
        x->uid = 1000;
        x->app_id = app;
        x->app_id_source = source;
        x->description = desc;
        x->created = 1;
}

/* the daemon opens whatever journal is there and appends a record: it is never lost */
static void check_append(const char *snap, size_t slen, bool have_snap, const char *journal, size_t jlen,
                         pcpd_state *after_journal) {
        g_autoptr(GString) rec = g_string_new(NULL);
        g_autoptr(pcpd_state) st = pcpd_state_new();
        g_autofree char *text = NULL;
        pcpd_state_mapping x;
        const pcpd_state_mapping *got;
        size_t len;
        int fd, r;

        make_next(&x, after_journal->next_id < G_MAXUINT64 - 1 ? after_journal->next_id : G_MAXUINT64 - 1);
        write_file(PCPD_STATE_JOURNAL, journal, jlen);
        fd = pcpd_state_journal_open(dirfd_);
        fuzz_check(fd >= 0, "cannot open the journal: %s", g_strerror(-fd));
        pcpd_state_format_record(rec, &x);
        r = pcpd_state_journal_append(fd, rec->str, rec->len);
        fuzz_check(r == 0, "cannot append: %s", g_strerror(-r));
        close(fd);
        r = pcpd_state_read_file(dirfd_, PCPD_STATE_JOURNAL, &text, &len);
        fuzz_check(r == 0, "cannot read the journal back: %s", g_strerror(-r));
        fuzz_check(len >= rec->len && memcmp(text + len - rec->len, rec->str, rec->len) == 0,
                   "the record is not at the end");

        if (have_snap)
                (void) pcpd_state_parse_snapshot(st, snap, slen);
        pcpd_state_replay_journal(st, text, len);
        got = g_hash_table_lookup(st->mappings, &x.id);
        fuzz_check(got != NULL && mapping_eq(&x, got), "a record appended to the journal is lost");
        /* and the rest is what the journal gave */
        g_hash_table_remove(st->mappings, &x.id);
        if (x.id != after_journal->next_id) /* only when the ids ran out */
                g_hash_table_remove(after_journal->mappings, &x.id);
        fuzz_check(state_eq(after_journal, st, false), "appending changed what the journal held before");
        fuzz_check(st->journal_records == after_journal->journal_records + 1 &&
                           st->journal_damaged == after_journal->journal_damaged,
                   "records %u/%u damaged %u/%u", st->journal_records, after_journal->journal_records,
                   st->journal_damaged, after_journal->journal_damaged);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data, *sep = memmem(data, size, JOURNAL_LINE, strlen(JOURNAL_LINE));
        const char *journal = NULL;
        size_t slen = sep != NULL ? (size_t) (sep - text) : size, jlen = 0, peak;
        g_autoptr(pcpd_state) st = pcpd_state_new();
        int r;

        if (sep != NULL) {
                journal = sep + strlen(JOURNAL_LINE);
                jlen = size - slen - strlen(JOURNAL_LINE);
        }

        fuzz_alloc_begin();
        r = pcpd_state_parse_snapshot(st, text, slen);
        peak = fuzz_alloc_peak();
        fuzz_check(peak <= ALLOC_BOUND(slen), "parsing %zu bytes took %zu bytes", slen, peak);
        fuzz_check(r == 0 || r == -EBADMSG, "parse: %d", r);
        if (r < 0)
                fuzz_check(g_hash_table_size(st->mappings) == 0 && st->next_id == 1 && st->damaged == 0,
                           "a refused snapshot left something");
        check_state(st);
        fuzz_check(g_hash_table_size(st->mappings) + st->damaged <= (slen + 1) / 4, "more groups than the text can hold");
        check_roundtrip(st);

        if (journal == NULL) {
                check_records(st);
                return 0;
        }
        fuzz_alloc_begin();
        pcpd_state_replay_journal(st, journal, jlen);
        peak = fuzz_alloc_peak();
        fuzz_check(peak <= ALLOC_BOUND(jlen), "replaying %zu bytes took %zu bytes", jlen, peak);
        check_state(st);
        fuzz_check(st->journal_torn <= jlen, "torn %zu of %zu", st->journal_torn, jlen);
        fuzz_check((size_t) st->journal_records + st->journal_damaged <= jlen / strlen("\n" PCPD_STATE_JOURNAL_END),
                   "more records than end lines");
        check_roundtrip(st);
        check_records(st);
        check_append(text, slen, r == 0, journal, jlen, st);
        return 0;
}
