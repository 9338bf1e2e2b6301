/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The state codec and files (pcpd-state.c): records round-trip, the journal replays over
 * the snapshot whatever was torn, a snapshot is replaced whole (a shrinking one leaves no
 * tail), a failed append leaves no torn record, nothing is followed through a symbolic
 * link, and a state directory others can write is refused. */

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
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcpd-state.h"
#include "unit-fixture.h"

/* ---- helpers ---- */

static const char NASTY[] = "  two leading blanks; a \\backslash, a\ttab,\na line break\r, [brackets] #hash "
                            "=equals, unicode \xc3\xa9\xe2\x82\xac, trailing blank ";

static void fill(pcpd_state_mapping *m, uint64_t id) {
        memset(m, 0, sizeof(*m));
        m->id = id;
        m->has_nonce = true;
        for (size_t i = 0; i < PCP_NONCE_LEN; i++)
                m->nonce[i] = (uint8_t) (0xa0 + i + id);
        m->server = (char *) "192.0.2.1:15351";
        m->opcode = PCP_OPCODE_MAP;
        m->protocol = 6;
        m->family = AF_INET;
        m->internal_port = (uint16_t) (8000 + id);
        m->suggested_port = 9000;
        m->lifetime = 3600;
        m->external_address = (char *) "198.51.100.7";
        m->external_port = 40000;
        m->uid = 1000;
        m->app_id = (char *) "org.example.App";
        m->app_id_source = (char *) "flatpak";
        m->description = (char *) "web";
        m->created = 1700000000000000ull;
}

static void assert_same(const pcpd_state_mapping *a, const pcpd_state_mapping *b) {
        assert_int_equal(a->id, b->id);
        assert_int_equal(a->direct, b->direct);
        assert_int_equal(a->has_nonce, b->has_nonce);
        if (a->has_nonce)
                assert_memory_equal(a->nonce, b->nonce, PCP_NONCE_LEN);
        assert_int_equal(a->deleting, b->deleting);
        assert_int_equal(a->delete_until, b->delete_until);
        assert_string_equal(a->server, b->server);
        assert_int_equal(a->opcode, b->opcode);
        assert_int_equal(a->protocol, b->protocol);
        assert_int_equal(a->family, b->family);
        assert_int_equal(a->internal_port, b->internal_port);
        assert_int_equal(a->suggested_port, b->suggested_port);
        assert_int_equal(a->lifetime, b->lifetime);
        assert_string_equal(a->external_address, b->external_address);
        assert_int_equal(a->external_port, b->external_port);
        if (a->remote_address == NULL)
                assert_null(b->remote_address);
        else
                assert_string_equal(a->remote_address, b->remote_address);
        assert_int_equal(a->remote_port, b->remote_port);
        assert_int_equal(a->has_suggested_address, b->has_suggested_address);
        if (a->has_suggested_address)
                assert_memory_equal(&a->suggested_address, &b->suggested_address, sizeof(struct in6_addr));
        assert_int_equal(a->prefer_failure, b->prefer_failure);
        assert_int_equal(a->has_third_party, b->has_third_party);
        if (a->has_third_party)
                assert_memory_equal(&a->third_party, &b->third_party, sizeof(struct in6_addr));
        assert_int_equal(a->n_filters, b->n_filters);
        for (uint8_t k = 0; k < a->n_filters; k++) {
                assert_int_equal(a->filters[k].prefix_len, b->filters[k].prefix_len);
                assert_int_equal(a->filters[k].remote_port, b->filters[k].remote_port);
                assert_memory_equal(&a->filters[k].remote_addr, &b->filters[k].remote_addr, sizeof(struct in6_addr));
        }
        assert_int_equal(a->persistent, b->persistent);
        assert_int_equal(a->uid, b->uid);
        assert_string_equal(a->app_id, b->app_id);
        assert_string_equal(a->app_id_source, b->app_id_source);
        assert_string_equal(a->description, b->description);
        assert_int_equal(a->created, b->created);
        /* absent and "" are the same: no declaration */
        assert_string_equal(a->declared != NULL ? a->declared : "", b->declared != NULL ? b->declared : "");
        if (a->upnp_interface == NULL)
                assert_null(b->upnp_interface);
        else {
                assert_string_equal(a->upnp_interface, b->upnp_interface);
                assert_memory_equal(&a->upnp_igd, &b->upnp_igd, sizeof(struct in6_addr));
                assert_int_equal(a->upnp_external_port, b->upnp_external_port);
                assert_int_equal(a->upnp_permanent, b->upnp_permanent);
        }
}

static pcpd_state_mapping *get(pcpd_state *st, uint64_t id) {
        return g_hash_table_lookup(st->mappings, &id);
}

/* p lies in a mapping of this process (/proc/self/maps) */
static bool mapped(const void *p) {
        g_autofree char *maps = NULL;
        g_auto(GStrv) lines = NULL;
        uintptr_t a = (uintptr_t) p;

        assert_true(g_file_get_contents("/proc/self/maps", &maps, NULL, NULL));
        lines = g_strsplit(maps, "\n", -1);
        for (size_t i = 0; lines[i] != NULL; i++) {
                unsigned long start, end;

                if (sscanf(lines[i], "%lx-%lx", &start, &end) == 2 && a >= start && a < end)
                        return true;
        }
        return false;
}

/* ---- the codec ---- */

static void test_record_roundtrip(void **state) {
        pcpd_state_mapping a, peer, direct;
        pcp_filter two_filters[2] = {0};
        g_autoptr(GString) snap = g_string_new(NULL), journal = g_string_new(NULL);
        g_autoptr(pcpd_state) st = pcpd_state_new(), st2 = pcpd_state_new();

        fill(&a, 7);
        a.description = (char *) NASTY;
        a.app_id = (char *) " lead;semi\\";
        a.has_suggested_address = pcp_addr_from_string("198.51.100.9", &a.suggested_address);
        a.prefer_failure = true;
        a.has_third_party = pcp_addr_from_string("192.168.1.20", &a.third_party);
        a.n_filters = 2;
        a.filters = two_filters;
        assert_true(pcp_addr_from_string("203.0.113.0", &a.filters[0].remote_addr));
        a.filters[0].prefix_len = 96 + 24;
        a.filters[0].remote_port = 443;
        assert_true(pcp_addr_from_string("2001:db8::", &a.filters[1].remote_addr));
        a.filters[1].prefix_len = 32;
        a.persistent = true;
        a.declared = (char *) "camera-1.front_door";
        a.deleting = true;
        a.delete_until = 1800000000000000ull;

        fill(&peer, 8);
        peer.opcode = PCP_OPCODE_PEER;
        peer.family = AF_INET6;
        peer.server = (char *) "[fd00::1]:15351";
        peer.remote_address = (char *) "2001:db8::5";
        peer.remote_port = 3478;
        peer.description = (char *) "";

        fill(&direct, 9);
        direct.direct = true;
        direct.has_nonce = false;
        direct.server = (char *) "";

        /* a snapshot */
        pcpd_state_format_header(snap, 42);
        pcpd_state_format_mapping(snap, &a);
        pcpd_state_format_mapping(snap, &peer);
        pcpd_state_format_mapping(snap, &direct);
        assert_int_equal(pcpd_state_parse_snapshot(st, snap->str, snap->len), 0);
        assert_int_equal(st->damaged, 0);
        assert_int_equal(st->next_id, 42);
        assert_int_equal(g_hash_table_size(st->mappings), 3);
        assert_same(&a, get(st, 7));
        assert_same(&peer, get(st, 8));
        assert_same(&direct, get(st, 9));

        /* the same as journal records over nothing */
        pcpd_state_format_record(journal, &a);
        pcpd_state_format_record(journal, &peer);
        pcpd_state_format_record(journal, &direct);
        pcpd_state_replay_journal(st2, journal->str, journal->len);
        assert_int_equal(st2->journal_records, 3);
        assert_int_equal(st2->journal_damaged, 0);
        assert_int_equal(st2->journal_torn, 0);
        assert_int_equal(st2->next_id, 10);
        assert_same(&a, get(st2, 7));
        assert_same(&peer, get(st2, 8));
        assert_same(&direct, get(st2, 9));

        /* a copy owns what it holds */
        g_autoptr(pcpd_state_mapping) c = pcpd_state_mapping_copy(&a);
        assert_same(&a, c);
        assert_ptr_not_equal(c->description, a.description);
        assert_ptr_not_equal(c->declared, a.declared);
        /* a record that is no declaration has no Declared= line, and reads back without one */
        assert_null(strstr(snap->str, "Declared=\n"));
        assert_non_null(strstr(snap->str, "Declared=camera-1.front_door\n"));
        assert_null(get(st, 8)->declared);
}

/* what pcpd before the [State] group wrote (GKeyFile, no NextMappingId) still loads */
static void test_old_snapshot(void **state) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(pcpd_state) st = pcpd_state_new();
        g_autofree char *data = NULL;
        const char *filters[] = { "203.0.113.0/24 443", NULL };
        gsize len;

        g_key_file_set_string(kf, "Mapping 3", "Nonce", "0102030405060708090a0b0c");
        g_key_file_set_string(kf, "Mapping 3", "Server", "192.0.2.1:15351");
        g_key_file_set_integer(kf, "Mapping 3", "Opcode", 1);
        g_key_file_set_integer(kf, "Mapping 3", "Protocol", 17);
        g_key_file_set_integer(kf, "Mapping 3", "InternalPort", 5000);
        g_key_file_set_integer(kf, "Mapping 3", "SuggestedExternalPort", 0);
        g_key_file_set_string(kf, "Mapping 3", "Family", "ipv4");
        g_key_file_set_uint64(kf, "Mapping 3", "Lifetime", 600);
        g_key_file_set_string(kf, "Mapping 3", "ExternalAddress", "198.51.100.7");
        g_key_file_set_integer(kf, "Mapping 3", "ExternalPort", 41000);
        g_key_file_set_string_list(kf, "Mapping 3", "Filters", filters, 1);
        g_key_file_set_boolean(kf, "Mapping 3", "Persistent", true);
        g_key_file_set_uint64(kf, "Mapping 3", "UID", 0);
        g_key_file_set_string(kf, "Mapping 3", "AppId", "");
        g_key_file_set_string(kf, "Mapping 3", "AppIdSource", "none");
        g_key_file_set_string(kf, "Mapping 3", "Description", " spaced ");
        g_key_file_set_uint64(kf, "Mapping 3", "Created", 1);
        g_key_file_set_boolean(kf, "Mapping 5", "Direct", true);
        g_key_file_set_string(kf, "Mapping 5", "Server", "");
        g_key_file_set_integer(kf, "Mapping 5", "Opcode", 1);
        g_key_file_set_integer(kf, "Mapping 5", "Protocol", 6);
        g_key_file_set_integer(kf, "Mapping 5", "InternalPort", 5001);
        data = g_key_file_to_data(kf, &len, NULL);

        assert_int_equal(pcpd_state_parse_snapshot(st, data, len), 0);
        assert_int_equal(st->damaged, 0);
        assert_int_equal(st->next_id, 6);
        assert_int_equal(g_hash_table_size(st->mappings), 2);
        assert_int_equal(get(st, 3)->external_port, 41000);
        assert_int_equal(get(st, 3)->n_filters, 1);
        assert_int_equal(get(st, 3)->filters[0].prefix_len, 96 + 24);
        assert_string_equal(get(st, 3)->description, " spaced ");
        assert_true(get(st, 3)->persistent);
        assert_true(get(st, 5)->direct);
        assert_false(get(st, 5)->has_nonce);
        assert_null(get(st, 3)->upnp_interface);
        /* a record without AppId, AppIdSource and Description: "", "none" and "", never NULL
         * (the restored mapping's AppId and Description: tests/bus/test-restore-empty-strings.py) */
        assert_non_null(get(st, 5)->app_id);
        assert_string_equal(get(st, 5)->app_id, "");
        assert_non_null(get(st, 5)->app_id_source);
        assert_string_equal(get(st, 5)->app_id_source, "none");
        assert_non_null(get(st, 5)->description);
        assert_string_equal(get(st, 5)->description, "");
}

/* The UPnP-IGD backend's part of a record: round-trips, a UPnP deletion needs no nonce,
 * and what makes no sense is refused (the old files have no such part: test_old_snapshot). */
static void test_upnp_part(void **state) {
        pcpd_state_mapping held, del, direct;
        g_autoptr(GString) snap = g_string_new(NULL), journal = g_string_new(NULL);
        g_autoptr(pcpd_state) st = pcpd_state_new(), st2 = pcpd_state_new();

        fill(&held, 11);
        held.upnp_interface = (char *) "eth0";
        assert_true(pcp_addr_from_string("192.168.1.1", &held.upnp_igd));
        held.upnp_external_port = 40011;

        fill(&del, 12);
        del.has_nonce = false;
        del.deleting = true;
        del.delete_until = 1800000000000000ull;
        del.upnp_interface = (char *) "wlan0";
        assert_true(pcp_addr_from_string("10.0.0.1", &del.upnp_igd));
        del.upnp_external_port = 50012;
        del.upnp_permanent = true;

        pcpd_state_format_header(snap, 13);
        pcpd_state_format_mapping(snap, &held);
        pcpd_state_format_mapping(snap, &del);
        assert_int_equal(pcpd_state_parse_snapshot(st, snap->str, snap->len), 0);
        assert_int_equal(st->damaged, 0);
        assert_same(&held, get(st, 11));
        assert_same(&del, get(st, 12));
        g_autoptr(pcpd_state_mapping) c = pcpd_state_mapping_copy(&del);
        assert_same(&del, c);
        assert_ptr_not_equal(c->upnp_interface, del.upnp_interface);

        /* refused: a UPnP mapping not being deleted without a nonce; a direct one with a
         * UPnP part; an interface without its IGD; a name longer than an interface's */
        pcpd_state_mapping x = del;
        x.id = 20;
        x.deleting = false;
        pcpd_state_format_record(journal, &x);
        fill(&direct, 21);
        direct.direct = true;
        direct.has_nonce = false;
        direct.server = (char *) "";
        direct.upnp_interface = (char *) "eth0";
        pcpd_state_format_record(journal, &direct);
        x = held;
        x.id = 22;
        x.upnp_interface = (char *) "a-name-too-long-for-an-interface";
        pcpd_state_format_record(journal, &x);
        g_string_append(journal, "[Mapping 23]\nNonce=0102030405060708090a0b0c\nServer=192.0.2.1\nOpcode=1\n"
                                 "Protocol=6\nInternalPort=80\nUpnpInterface=eth0\n#end\n");
        pcpd_state_format_record(journal, &held);
        pcpd_state_replay_journal(st2, journal->str, journal->len);
        assert_int_equal(st2->journal_damaged, 4);
        assert_int_equal(g_hash_table_size(st2->mappings), 1);
        assert_same(&held, get(st2, 11));
}

static void test_damaged_snapshot(void **state) {
        g_autoptr(pcpd_state) st = pcpd_state_new();
        g_autoptr(GString) s = g_string_new(NULL);
        pcpd_state_mapping a;
        static const char junk[] = "this is no key file\n[Mapping 1\n";
        static const char bad_groups[] = "[Mapping 4]\nNonce=xyz\nServer=192.0.2.1\nOpcode=1\n"
                                         "[Mapping 5]\nServer=192.0.2.1\nOpcode=1\n"   /* no nonce */
                                         "[Mapping 6]\nNonce=0102030405060708090a0b0c\nServer=192.0.2.1\nOpcode=9\n"
                                         "[Mapping 7]\nDirect=true\nNonce=0102030405060708090a0b0c\nOpcode=1\n"
                                         "[Mapping 8]\nNonce=0102030405060708090a0b0c\nServer=192.0.2.1\nOpcode=1\n"
                                         "InternalPort=70000\n"
                                         "[Something]\nX=1\n";

        assert_int_equal(pcpd_state_parse_snapshot(st, junk, strlen(junk)), -EBADMSG);

        fill(&a, 2);
        g_string_append(s, bad_groups);
        pcpd_state_format_mapping(s, &a);
        assert_int_equal(pcpd_state_parse_snapshot(st, s->str, s->len), 0);
        assert_int_equal(st->damaged, 6);
        assert_int_equal(g_hash_table_size(st->mappings), 1);
        assert_same(&a, get(st, 2));
        /* the ids of damaged groups stay used */
        assert_int_equal(st->next_id, 9);
        assert_string_equal(st->damaged_names[0], "Mapping 4");
}

/* A snapshot is read a group at a time (one GKeyFile of the whole file took ~4 KB a
 * mapping): what it gives is what GKeyFile reads of the whole file. Comments and blank
 * lines, a group line after blanks, '[' inside a value or after a key. Damage (a line that
 * is no key, a group line cut short, text before the first group), which makes the whole
 * text no key file to GKeyFile, costs only the part it is in (test_snapshot_bad_line). */
static void test_snapshot_read_by_group(void **state) {
        g_autoptr(pcpd_state) st = pcpd_state_new();
        g_autoptr(GString) s = g_string_new(NULL), one = g_string_new(NULL);
        pcpd_state_mapping a, b;
        const char *bad[] = {
                "this is no key file\n",
                "[Mapping 3\nServer=x\n",
                "no key here\n",
                "[State\n",
        };

        (void) state;
        fill(&a, 2);
        fill(&b, 3);
        b.description = (char *) "[not a group]";
        g_string_append(s, "# a comment first\n\n");
        pcpd_state_format_header(s, 10);
        g_string_append(s, "\n# between\n");
        pcpd_state_format_mapping(one, &a);
        /* a group line after blanks is a group line to GKeyFile */
        g_string_append(s, "  \t");
        g_string_append(s, one->str);
        pcpd_state_format_mapping(s, &b);
        g_string_append(s, "Unknown=[x]\n");
        assert_int_equal(pcpd_state_parse_snapshot(st, s->str, s->len), 0);
        assert_int_equal(st->damaged, 0);
        assert_int_equal(st->next_id, 10);
        assert_int_equal(g_hash_table_size(st->mappings), 2);
        assert_same(&a, get(st, 2));
        assert_same(&b, get(st, 3));
        {
                /* the same as one GKeyFile of the whole text */
                g_autoptr(GKeyFile) kf = g_key_file_new();
                g_autofree char *d = NULL;

                assert_true(g_key_file_load_from_data(kf, s->str, s->len, G_KEY_FILE_NONE, NULL));
                d = g_key_file_get_string(kf, "Mapping 3", "Description", NULL);
                assert_string_equal(d, b.description);
                assert_int_equal(g_key_file_get_integer(kf, "Mapping 2", "InternalPort", NULL), a.internal_port);
        }

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autoptr(GString) t = g_string_new(NULL);
                g_autoptr(GKeyFile) kf = g_key_file_new();

                pcpd_state_format_header(t, 10);
                pcpd_state_format_mapping(t, &a);
                if (i == 0)
                        g_string_prepend(t, bad[i]);
                else
                        g_string_append(t, bad[i]);
                pcpd_state_format_mapping(t, &b);
                /* GKeyFile refuses the whole text; the part with the damage is skipped */
                assert_false(g_key_file_load_from_data(kf, t->str, t->len, G_KEY_FILE_NONE, NULL));
                assert_int_equal(pcpd_state_parse_snapshot(st, t->str, t->len), 0);
                assert_same(&b, get(st, 3));
                assert_int_equal(st->next_id, 10);
                if (i == 0) {
                        /* before the first group: in no group */
                        assert_int_equal(g_hash_table_size(st->mappings), 2);
                        assert_same(&a, get(st, 2));
                        assert_int_equal(st->damaged, 0);
                        assert_int_equal(st->damaged_text, 1);
                } else {
                        /* a line of group 2, or a group line cut short after it (in no
                         * group, with what follows it up to the next group line; group 2
                         * may be cut short by it): group 2 is skipped */
                        assert_int_equal(g_hash_table_size(st->mappings), 1);
                        assert_int_equal(st->damaged, 1);
                        assert_string_equal(st->damaged_names[0], "Mapping 2");
                        assert_int_equal(st->damaged_text, i == 2 ? 0 : 1);
                }
                st->damaged = st->damaged_text = 0;
                g_clear_pointer(&st->damaged_names, g_strfreev);
        }
        /* and the empty file is an empty snapshot */
        assert_int_equal(pcpd_state_parse_snapshot(st, "", 0), 0);
        assert_int_equal(g_hash_table_size(st->mappings), 0);
}

/* n valid records (ids 1..n) after the header, with extra appended after record after
 * (0: before the header; after == n: at the end) */
static GString *snapshot_with(unsigned n, unsigned after, const char *extra, size_t extra_len) {
        GString *t = g_string_new(NULL);
        pcpd_state_mapping m;

        if (after == 0)
                g_string_append_len(t, extra, (gssize) extra_len);
        pcpd_state_format_header(t, n + 100);
        for (unsigned i = 1; i <= n; i++) {
                fill(&m, i);
                pcpd_state_format_mapping(t, &m);
                if (i == after)
                        g_string_append_len(t, extra, (gssize) extra_len);
        }
        return t;
}

/* every record but the ids in skip (a NULL-free array of n_skip) is there, as written */
static void assert_kept(pcpd_state *st, unsigned n, const unsigned *skip, size_t n_skip) {
        pcpd_state_mapping m;

        assert_int_equal(g_hash_table_size(st->mappings), n - n_skip);
        for (unsigned i = 1; i <= n; i++) {
                bool skipped = false;
                for (size_t k = 0; k < n_skip; k++)
                        skipped |= skip[k] == i;
                if (skipped) {
                        if (get(st, i) != NULL)
                                fail_msg("record %u, which holds the damage, was kept", i);
                        continue;
                }
                if (get(st, i) == NULL)
                        fail_msg("record %u lost to damage elsewhere", i);
                fill(&m, i);
                assert_same(&m, get(st, i));
        }
}

/* One line that is no key file text costs only the group holding it: not every mapping
 * of the file (their upstream mappings would be orphaned, the persistent ones lost). */
static void test_snapshot_bad_line(void **state) {
        static const char *const lines[] = {
                "Descri\n",                   /* a line cut short: no '=' */
                "Description\n",              /* a key alone */
                "=x\n",                       /* no key */
                "Internal Port[=1\n",         /* no key name */
        };
        static const unsigned skip500[] = { 500 };
        (void) state;

        for (size_t i = 0; i < G_N_ELEMENTS(lines); i++) {
                g_autoptr(pcpd_state) st = pcpd_state_new();
                g_autoptr(GString) t = snapshot_with(1000, 500, lines[i], strlen(lines[i]));
                g_autoptr(GKeyFile) kf = g_key_file_new();

                /* after record 500's lines: the last line of group 500 */
                assert_false(g_key_file_load_from_data(kf, t->str, t->len, G_KEY_FILE_NONE, NULL));
                assert_int_equal(pcpd_state_parse_snapshot(st, t->str, t->len), 0);
                assert_kept(st, 1000, skip500, 1);
                assert_int_equal(st->damaged, 1);
                assert_int_equal(st->damaged_text, 0);
                assert_string_equal(st->damaged_names[0], "Mapping 500");
                assert_int_equal(st->next_id, 1100);
        }
        /* in the middle of group 500: that one is skipped */
        {
                g_autoptr(pcpd_state) st = pcpd_state_new();
                g_autoptr(GString) t = g_string_new(NULL);
                pcpd_state_mapping m;

                pcpd_state_format_header(t, 1100);
                for (unsigned i = 1; i <= 1000; i++) {
                        fill(&m, i);
                        if (i != 500) {
                                pcpd_state_format_mapping(t, &m);
                                continue;
                        }
                        g_autoptr(GString) g = g_string_new(NULL);
                        const char *mid;
                        pcpd_state_format_mapping(g, &m);
                        mid = strstr(g->str, "\nServer=");
                        assert_non_null(mid);
                        g_string_insert(g, mid + 1 - g->str, "Descri\n");
                        g_string_append(t, g->str);
                }
                assert_int_equal(pcpd_state_parse_snapshot(st, t->str, t->len), 0);
                assert_kept(st, 1000, skip500, 1);
                assert_int_equal(st->damaged, 1);
                assert_string_equal(st->damaged_names[0], "Mapping 500");
                /* its id stays used */
                assert_int_equal(st->next_id, 1100);
        }
        /* a NUL in a line: GKeyFile would take what comes before it */
        {
                static const char nul[] = "Description=web\0 and more\n";
                g_autoptr(pcpd_state) st = pcpd_state_new();
                g_autoptr(GString) t = snapshot_with(1000, 500, nul, sizeof(nul) - 1);

                assert_int_equal(pcpd_state_parse_snapshot(st, t->str, t->len), 0);
                assert_kept(st, 1000, skip500, 1);
                assert_int_equal(st->damaged, 1);
        }
        /* a group line cut short: its part is in no group; the group before it may be cut
         * short by it (a line starting with '[' in its middle): skipped too, not read
         * without its last keys (UID would be 0) */
        {
                static const char cut[] = "[Mapping 1001\nServer=192.0.2.1:15351\n";
                for (int in_500 = 0; in_500 <= 1; in_500++) {
                        g_autoptr(pcpd_state) st = pcpd_state_new();
                        g_autoptr(GString) t = NULL;

                        if (!in_500)
                                t = snapshot_with(1000, 500, cut, strlen(cut));
                        else {
                                /* in the middle of group 500, before its UID */
                                const char *g, *uid;
                                t = snapshot_with(1000, 0, "", 0);
                                g = strstr(t->str, "[Mapping 500]\n");
                                assert_non_null(g);
                                uid = strstr(g, "\nUID=");
                                assert_non_null(uid);
                                g_string_insert(t, uid + 1 - t->str, "[garbage\n");
                        }
                        assert_int_equal(pcpd_state_parse_snapshot(st, t->str, t->len), 0);
                        assert_kept(st, 1000, skip500, 1);
                        assert_int_equal(st->damaged, 1);
                        assert_string_equal(st->damaged_names[0], "Mapping 500");
                        assert_int_equal(st->damaged_text, 1);
                }
        }
        /* damage in several groups: each counted, its name kept (up to 16) */
        {
                g_autoptr(pcpd_state) st = pcpd_state_new();
                g_autoptr(GString) t = g_string_new(NULL);
                unsigned skip[20];
                pcpd_state_mapping m;

                pcpd_state_format_header(t, 1100);
                for (unsigned i = 1; i <= 1000; i++) {
                        fill(&m, i);
                        pcpd_state_format_mapping(t, &m);
                        if (i % 50 == 0)
                                g_string_append(t, "Descri\n");
                }
                for (unsigned k = 0; k < 20; k++)
                        skip[k] = 50 * (k + 1);
                assert_int_equal(pcpd_state_parse_snapshot(st, t->str, t->len), 0);
                assert_kept(st, 1000, skip, 20);
                assert_int_equal(st->damaged, 20);
                assert_int_equal(g_strv_length(st->damaged_names), 16);
                assert_string_equal(st->damaged_names[15], "Mapping 800");
        }
}

/* Damage in the [State] group or before it: the mappings are kept. [State] counts as a
 * damaged group, its NextMappingId still read from a line that reads as one (ids are never
 * given out twice); without one the next id is past every id seen, as when the key is
 * missing. Lines before the first group count in damaged_text. Only a text of which no
 * part is key file text is refused whole (-EBADMSG: pcpd_state_load() moves it aside). */
static void test_snapshot_bad_header(void **state) {
        (void) state;

        /* in [State], after NextMappingId: it is still read */
        {
                g_autoptr(pcpd_state) st = pcpd_state_new();
                g_autoptr(GString) t = snapshot_with(1000, 0, "", 0);
                const char *after_next = strstr(t->str, "NextMappingId=1100\n");

                assert_non_null(after_next);
                g_string_insert(t, after_next + strlen("NextMappingId=1100\n") - t->str, "garbage\n");
                assert_int_equal(pcpd_state_parse_snapshot(st, t->str, t->len), 0);
                assert_kept(st, 1000, NULL, 0);
                assert_int_equal(st->damaged, 1);
                assert_string_equal(st->damaged_names[0], "State");
                assert_int_equal(st->next_id, 1100);
        }
        /* NextMappingId itself garbled: the ids seen */
        {
                g_autoptr(pcpd_state) st = pcpd_state_new();
                g_autoptr(GString) t = snapshot_with(1000, 0, "", 0);
                char *next = strstr(t->str, "NextMappingId=1100\n");

                assert_non_null(next);
                memcpy(next, "NextMapp", strlen("NextMapp"));
                next[strlen("NextMapp")] = '\n';
                assert_int_equal(pcpd_state_parse_snapshot(st, t->str, t->len), 0);
                assert_kept(st, 1000, NULL, 0);
                assert_int_equal(st->damaged, 1);
                assert_int_equal(st->next_id, 1001);
        }
        /* before the first group */
        {
                g_autoptr(pcpd_state) st = pcpd_state_new();
                g_autoptr(GString) t = snapshot_with(1000, 0, "# a comment\nthis is no key file\n", 32);

                assert_int_equal(pcpd_state_parse_snapshot(st, t->str, t->len), 0);
                assert_kept(st, 1000, NULL, 0);
                assert_int_equal(st->damaged, 0);
                assert_int_equal(st->damaged_text, 1);
                assert_int_equal(st->next_id, 1100);
        }
        /* nothing of it is key file text: refused whole, nothing taken */
        {
                static const char *const junk[] = {
                        "this is no key file\n[Mapping 1\n",
                        "[Mapping 1]\nDescri\n[Mapping 2]\n=x\n",
                        "\0\0\0\0\0\0\0\0",
                };
                static const size_t junk_len[] = { 31, 34, 8 };
                for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
                        g_autoptr(pcpd_state) st = pcpd_state_new();
                        assert_int_equal(pcpd_state_parse_snapshot(st, junk[i], junk_len[i]), -EBADMSG);
                        assert_int_equal(g_hash_table_size(st->mappings), 0);
                        assert_int_equal(st->next_id, 1);
                        assert_int_equal(st->damaged + st->damaged_text, 0);
                        assert_null(st->damaged_names);
                }
        }
}

/* pcpd_state_load() of a snapshot with a bad line: every other mapping is loaded, and the
 * file stays where it is (it is moved aside only when no part of it is key file text) */
static void test_load_bad_line(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        g_autofree char *damaged = g_build_filename(dir, PCPD_STATE_DAMAGED, NULL);
        g_autoptr(GString) t = snapshot_with(1000, 500, "Descri\n", strlen("Descri\n"));
        g_autoptr(GError) error = NULL;
        g_autoptr(pcpd_state) st = NULL;
        static const unsigned skip500[] = { 500 };
        int dfd = unit_open_dir(dir);
        (void) state;

        assert_int_equal(pcpd_state_write_atomic(dfd, PCPD_STATE_FILE, t->str, t->len), 0);
        assert_int_equal(pcpd_state_load(dfd, dir, &st, &error), 0);
        assert_null(error);
        assert_kept(st, 1000, skip500, 1);
        assert_int_equal(st->damaged, 1);
        assert_false(g_file_test(damaged, G_FILE_TEST_EXISTS));
        assert_int_equal(unlinkat(dfd, PCPD_STATE_FILE, 0), 0);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

static void test_journal_over_snapshot(void **state) {
        g_autoptr(pcpd_state) st = pcpd_state_new();
        g_autoptr(GString) snap = g_string_new(NULL), j = g_string_new(NULL);
        pcpd_state_mapping m1, m2, m3, m2_deleting;

        fill(&m1, 1);
        fill(&m2, 2);
        fill(&m3, 3);
        pcpd_state_format_header(snap, 3);
        pcpd_state_format_mapping(snap, &m1);
        pcpd_state_format_mapping(snap, &m2);
        assert_int_equal(pcpd_state_parse_snapshot(st, snap->str, snap->len), 0);

        /* a grant, a new mapping, a removal being deleted, a removal for good, an id that
         * came and went since the snapshot */
        m1.external_port = 40404;
        pcpd_state_format_record(j, &m1);
        pcpd_state_format_record(j, &m3);
        m2_deleting = m2;
        m2_deleting.deleting = true;
        m2_deleting.delete_until = 99;
        pcpd_state_format_record(j, &m2_deleting);
        pcpd_state_format_removal(j, 1);
        pcpd_state_format_removal(j, 11);
        pcpd_state_replay_journal(st, j->str, j->len);

        assert_int_equal(st->journal_records, 5);
        assert_int_equal(st->journal_damaged, 0);
        assert_int_equal(st->journal_torn, 0);
        assert_null(get(st, 1));
        assert_same(&m2_deleting, get(st, 2));
        assert_same(&m3, get(st, 3));
        assert_int_equal(st->next_id, 12);

        /* the records ordered by id */
        g_autoptr(GPtrArray) sorted = pcpd_state_sorted(st);
        assert_int_equal(sorted->len, 2);
        assert_int_equal(((pcpd_state_mapping *) sorted->pdata[0])->id, 2);
        assert_int_equal(((pcpd_state_mapping *) sorted->pdata[1])->id, 3);
}

static void test_torn_records(void **state) {
        g_autoptr(GString) j = g_string_new(NULL), rec = g_string_new(NULL);
        pcpd_state_mapping m1, m2, m3;

        fill(&m1, 1);
        fill(&m2, 2);
        fill(&m3, 3);

        /* a torn last record */
        {
                g_autoptr(pcpd_state) st = pcpd_state_new();
                pcpd_state_format_record(j, &m1);
                pcpd_state_format_record(rec, &m2);
                g_string_append_len(j, rec->str, (gssize) rec->len / 2);
                pcpd_state_replay_journal(st, j->str, j->len);
                assert_int_equal(st->journal_records, 1);
                assert_int_equal(st->journal_damaged, 0);
                assert_int_equal(st->journal_torn, rec->len / 2);
                assert_non_null(get(st, 1));
                assert_null(get(st, 2));
        }
        /* a record cut short by a failed write at a line end, then a complete one: the
         * later record counts, the fragment is skipped (journal_open() and a failed
         * append cut such fragments, so one cut inside a line never gets a successor) */
        for (size_t cut = 0; cut + 1 < rec->len - strlen(PCPD_STATE_JOURNAL_END); cut++) {
                g_autoptr(pcpd_state) st = pcpd_state_new();

                if (rec->str[cut] != '\n')
                        continue;
                g_string_truncate(j, 0);
                pcpd_state_format_record(j, &m1);
                g_string_append_len(j, rec->str, (gssize) cut + 1);
                pcpd_state_format_record(j, &m3);
                pcpd_state_replay_journal(st, j->str, j->len);
                assert_same(&m1, get(st, 1));
                assert_null(get(st, 2));
                assert_same(&m3, get(st, 3));
                assert_int_equal(st->journal_records, 2);
                assert_int_equal(st->journal_damaged, 0);
                assert_int_equal(st->journal_torn, cut + 1);
        }
        /* a damaged complete record among good ones */
        {
                g_autoptr(pcpd_state) st = pcpd_state_new();
                g_string_truncate(j, 0);
                pcpd_state_format_record(j, &m1);
                g_string_append(j, "[Mapping 99]\nthis is not a key file line\n" PCPD_STATE_JOURNAL_END);
                g_string_append(j, "[Mapping 98]\nNonce=00\nServer=x\nOpcode=1\n" PCPD_STATE_JOURNAL_END);
                g_string_append(j, "[Mapping 97]\nRemoved=maybe\n" PCPD_STATE_JOURNAL_END);
                pcpd_state_format_record(j, &m3);
                pcpd_state_replay_journal(st, j->str, j->len);
                assert_int_equal(st->journal_records, 2);
                assert_int_equal(st->journal_damaged, 3);
                assert_int_equal(st->journal_torn, 0);
                assert_non_null(get(st, 1));
                assert_non_null(get(st, 3));
        }
}

/* ---- files ---- */

/* the bug this replaced: a snapshot written over the old one in place kept the old tail */
static void test_shrinking_snapshot(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir);
        g_autoptr(GString) big = g_string_new(NULL), small = g_string_new(NULL);
        g_autoptr(pcpd_state) st = pcpd_state_new();
        g_autofree char *text = NULL, *tmp = NULL;
        size_t len;
        pcpd_state_mapping m;

        pcpd_state_format_header(big, 100);
        for (uint64_t id = 1; id <= 50; id++) {
                fill(&m, id);
                pcpd_state_format_mapping(big, &m);
        }
        pcpd_state_format_header(small, 101);
        fill(&m, 77);
        pcpd_state_format_mapping(small, &m);

        assert_int_equal(pcpd_state_write_atomic(dfd, PCPD_STATE_FILE, big->str, big->len), 0);
        assert_int_equal(pcpd_state_write_atomic(dfd, PCPD_STATE_FILE, small->str, small->len), 0);
        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_FILE, &text, &len), 0);
        assert_int_equal(len, small->len);
        assert_string_equal(text, small->str);
        assert_int_equal(pcpd_state_parse_snapshot(st, text, len), 0);
        assert_int_equal(g_hash_table_size(st->mappings), 1);
        assert_int_equal(st->damaged, 0);
        /* nothing left over */
        tmp = unit_slurp(dir, PCPD_STATE_FILE ".tmp");
        assert_null(tmp);
        {
                struct stat s;
                assert_int_equal(fstatat(dfd, PCPD_STATE_FILE, &s, 0), 0);
                assert_int_equal(s.st_mode & 07777, 0600);
        }
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* A full disk, simulated with RLIMIT_FSIZE: a write beyond it fails (EFBIG) after writing
 * what fits. A failed append leaves the journal as it was; a failed snapshot leaves the old
 * one whole and no temporary file. */
static void test_failed_writes(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir), jfd;
        g_autoptr(GString) r1 = g_string_new(NULL), r2 = g_string_new(NULL), snap = g_string_new(NULL);
        g_autoptr(GString) big = g_string_new(NULL);
        g_autofree char *j = NULL, *s = NULL, *tmp = NULL;
        struct rlimit old, lim;
        pcpd_state_mapping m;
        struct stat st;
        size_t len;

        fill(&m, 1);
        pcpd_state_format_record(r1, &m);
        fill(&m, 2);
        pcpd_state_format_record(r2, &m);
        pcpd_state_format_header(snap, 3);
        pcpd_state_format_mapping(snap, &m);
        pcpd_state_format_header(big, 3);
        for (int k = 0; k < 10; k++)
                pcpd_state_format_mapping(big, &m);

        jfd = pcpd_state_journal_open(dfd);
        assert_true(jfd >= 0);
        assert_int_equal(pcpd_state_journal_append(jfd, r1->str, r1->len), 0);
        assert_int_equal(pcpd_state_write_atomic(dfd, PCPD_STATE_FILE, snap->str, snap->len), 0);

        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = r1->len + r2->len / 2;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        assert_int_equal(pcpd_state_journal_append(jfd, r2->str, r2->len), -EFBIG);
        assert_int_equal(pcpd_state_write_atomic(dfd, PCPD_STATE_FILE, big->str, big->len), -EFBIG);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);

        assert_int_equal(fstat(jfd, &st), 0);
        assert_int_equal(st.st_size, r1->len);
        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_FILE, &s, &len), 0);
        assert_string_equal(s, snap->str);
        tmp = unit_slurp(dir, PCPD_STATE_FILE ".tmp");
        assert_null(tmp);
        /* and the next append is a record of its own */
        assert_int_equal(pcpd_state_journal_append(jfd, r2->str, r2->len), 0);
        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_JOURNAL, &j, &len), 0);
        {
                g_autoptr(pcpd_state) ps = pcpd_state_new();
                pcpd_state_replay_journal(ps, j, len);
                assert_int_equal(ps->journal_records, 2);
                assert_int_equal(ps->journal_torn, 0);
        }
        close(jfd);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* a journal torn by a power cut is cut back when opened, so the next record is whole */
static void test_journal_open_cuts_torn_tail(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir), jfd;
        g_autoptr(GString) r1 = g_string_new(NULL), r2 = g_string_new(NULL), r3 = g_string_new(NULL);
        g_autofree char *j = NULL;
        g_autoptr(pcpd_state) st = pcpd_state_new();
        pcpd_state_mapping m;
        size_t len;

        fill(&m, 1);
        pcpd_state_format_record(r1, &m);
        fill(&m, 2);
        pcpd_state_format_record(r2, &m);
        fill(&m, 3);
        pcpd_state_format_record(r3, &m);

        jfd = pcpd_state_journal_open(dfd);
        assert_true(jfd >= 0);
        assert_int_equal(pcpd_state_journal_append(jfd, r1->str, r1->len), 0);
        assert_int_equal(write(jfd, r2->str, 31), 31); /* torn in the middle of a line */
        close(jfd);

        jfd = pcpd_state_journal_open(dfd);
        assert_true(jfd >= 0);
        assert_int_equal(pcpd_state_journal_append(jfd, r3->str, r3->len), 0);
        close(jfd);
        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_JOURNAL, &j, &len), 0);
        assert_int_equal(len, r1->len + r3->len);
        pcpd_state_replay_journal(st, j, len);
        assert_int_equal(st->journal_records, 2);
        assert_int_equal(st->journal_torn, 0);
        assert_non_null(get(st, 1));
        assert_non_null(get(st, 3));

        /* a journal of only a torn record is emptied */
        jfd = pcpd_state_journal_open(dfd);
        assert_int_equal(ftruncate(jfd, 0), 0);
        assert_int_equal(write(jfd, r2->str, 40), 40);
        close(jfd);
        jfd = pcpd_state_journal_open(dfd);
        assert_true(jfd >= 0);
        {
                struct stat s;
                assert_int_equal(fstat(jfd, &s), 0);
                assert_int_equal(s.st_size, 0);
        }
        close(jfd);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* A torn tail longer than the window journal_open() looked at for the last record's end
 * (16 KiB: a crash that left a long run of zeros, or a damaged file) was left in place, and
 * the next record glued to it was lost when read back. */
static void test_journal_open_long_torn_tail(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir), jfd;
        g_autoptr(GString) r1 = g_string_new(NULL), r3 = g_string_new(NULL);
        g_autofree char *j = NULL, *zeros = g_malloc0(40000);
        g_autoptr(pcpd_state) st = pcpd_state_new();
        pcpd_state_mapping m;
        size_t len;

        fill(&m, 1);
        pcpd_state_format_record(r1, &m);
        fill(&m, 3);
        pcpd_state_format_record(r3, &m);

        jfd = pcpd_state_journal_open(dfd);
        assert_true(jfd >= 0);
        assert_int_equal(pcpd_state_journal_append(jfd, r1->str, r1->len), 0);
        assert_int_equal(write(jfd, zeros, 40000), 40000);
        close(jfd);

        jfd = pcpd_state_journal_open(dfd);
        assert_true(jfd >= 0);
        assert_int_equal(pcpd_state_journal_append(jfd, r3->str, r3->len), 0);
        close(jfd);
        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_JOURNAL, &j, &len), 0);
        assert_int_equal(len, r1->len + r3->len);
        pcpd_state_replay_journal(st, j, len);
        assert_int_equal(st->journal_records, 2);
        assert_non_null(get(st, 1));
        assert_non_null(get(st, 3));

        /* a journal of nothing but a long torn record is emptied */
        jfd = pcpd_state_journal_open(dfd);
        assert_int_equal(ftruncate(jfd, 0), 0);
        assert_int_equal(write(jfd, zeros, 40000), 40000);
        close(jfd);
        jfd = pcpd_state_journal_open(dfd);
        assert_true(jfd >= 0);
        {
                struct stat s;
                assert_int_equal(fstat(jfd, &s), 0);
                assert_int_equal(s.st_size, 0);
        }
        close(jfd);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* Found by tests/fuzz/fuzz-state: a NUL in the journal (a block of zeros a crash left on
 * some file systems) hid every record after it, since the reader searched the end lines
 * with a string function. The records around it count; the one holding the NUL is damaged. */
static void test_journal_nul(void **state) {
        g_autoptr(GString) j = g_string_new(NULL);
        g_autoptr(pcpd_state) st = pcpd_state_new();
        pcpd_state_mapping m1, m2, m3;

        fill(&m1, 1);
        fill(&m2, 2);
        fill(&m3, 3);
        pcpd_state_format_record(j, &m1);
        g_string_append(j, "[Mapping 2]\nRemoved=tr");
        g_string_append_len(j, "\0\0\0\0", 4);
        g_string_append(j, "ue\n" PCPD_STATE_JOURNAL_END);
        pcpd_state_format_record(j, &m3);
        pcpd_state_replay_journal(st, j->str, j->len);
        assert_int_equal(st->journal_records, 2);
        assert_int_equal(st->journal_damaged, 1);
        assert_int_equal(st->journal_torn, 0);
        assert_same(&m1, get(st, 1));
        assert_same(&m3, get(st, 3));
}

/* Found by tests/fuzz/fuzz-state: a record read back from a file had fields the writer
 * leaves out (DeleteUntil of a mapping not being deleted, RemotePort of a MAP), so that
 * written again it read back differently. They mean nothing there and read as 0. */
static void test_meaningless_fields(void **state) {
        static const char text[] = "[Mapping 4]\nNonce=a0a1a2a3a4a5a6a7a8a9aaab\nServer=192.0.2.1\nOpcode=1\n"
                                   "Protocol=6\nInternalPort=80\nDeleteUntil=77\nRemotePort=99\n";
        g_autoptr(pcpd_state) st = pcpd_state_new(), back = pcpd_state_new();
        g_autoptr(GString) again = g_string_new(NULL);
        pcpd_state_mapping *m;

        assert_int_equal(pcpd_state_parse_snapshot(st, text, strlen(text)), 0);
        m = get(st, 4);
        assert_non_null(m);
        assert_false(m->deleting);
        assert_int_equal(m->delete_until, 0);
        assert_int_equal(m->remote_port, 0);
        pcpd_state_format_mapping(again, m);
        assert_int_equal(pcpd_state_parse_snapshot(back, again->str, again->len), 0);
        assert_same(m, get(back, 4));
}

static void test_no_symlinks(void **state) {
        g_autofree char *dir = unit_make_own_dir("state"), *outside = unit_make_own_dir("state");
        g_autofree char *target = g_build_filename(outside, "precious", NULL);
        g_autofree char *jlink = g_build_filename(dir, PCPD_STATE_JOURNAL, NULL);
        g_autofree char *slink = g_build_filename(dir, PCPD_STATE_FILE, NULL);
        g_autofree char *data = NULL, *after = NULL;
        g_autoptr(GError) error = NULL;
        g_autoptr(pcpd_state) st = NULL;
        int dfd = unit_open_dir(dir);
        size_t len;

        assert_true(g_file_set_contents(target, "do not touch\n", -1, NULL));
        assert_int_equal(symlink(target, jlink), 0);

        assert_int_equal(pcpd_state_journal_open(dfd), -ELOOP);
        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_JOURNAL, &data, &len), -ELOOP);
        assert_int_equal(pcpd_state_load(dfd, dir, &st, &error), -ELOOP);
        assert_null(st);
        assert_non_null(strstr(error->message, "symbolic link"));
        assert_non_null(strstr(error->message, jlink));
        g_clear_error(&error);

        /* the snapshot too, also when written: the link is replaced, never followed */
        assert_int_equal(g_unlink(jlink), 0);
        assert_int_equal(symlink(target, slink), 0);
        assert_int_equal(pcpd_state_load(dfd, dir, &st, &error), -ELOOP);
        assert_int_equal(pcpd_state_write_atomic(dfd, PCPD_STATE_FILE, "[State]\n", 8), 0);
        {
                struct stat s;
                assert_int_equal(lstat(slink, &s), 0);
                assert_true(S_ISREG(s.st_mode));
        }
        after = unit_slurp(outside, "precious");
        assert_string_equal(after, "do not touch\n");

        /* a FIFO or a directory is no state file */
        assert_int_equal(g_unlink(slink), 0);
        assert_int_equal(mkfifo(slink, 0600), 0);
        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_FILE, &data, &len), -EBADFD);
        assert_int_equal(g_unlink(slink), 0);

        /* a hard link to a file elsewhere is not written through */
        if (link(target, jlink) == 0) {
                assert_int_equal(pcpd_state_journal_open(dfd), -EMLINK);
                g_autofree char *again = unit_slurp(outside, "precious");
                assert_string_equal(again, "do not touch\n");
        }
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
        assert_int_equal(unit_rm_own_dir(outside), 0);
}

static void test_dir_checks(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        g_autofree char *why = NULL;
        int fd = -1;

        assert_int_equal(pcpd_state_dir_open(dir, &fd, &why), 0);
        assert_true(fd >= 0);
        close(fd);

        assert_int_equal(chmod(dir, 0777), 0);
        assert_int_equal(pcpd_state_dir_open(dir, &fd, &why), -EPERM);
        assert_non_null(strstr(why, dir));
        assert_non_null(strstr(why, "everyone"));
        assert_non_null(strstr(why, "chmod go-w"));
        g_clear_pointer(&why, g_free);

        assert_int_equal(chmod(dir, 0770), 0);
        assert_int_equal(pcpd_state_dir_open(dir, &fd, &why), -EPERM);
        assert_non_null(strstr(why, "its group"));
        g_clear_pointer(&why, g_free);

        assert_int_equal(chmod(dir, 0755), 0);
        if (geteuid() == 0) {
                assert_int_equal(chown(dir, 65534, 65534), 0);
                assert_int_equal(pcpd_state_dir_open(dir, &fd, &why), -EPERM);
                assert_non_null(strstr(why, "belongs to uid 65534"));
                g_clear_pointer(&why, g_free);
                assert_int_equal(chown(dir, 0, 0), 0);
        }
        assert_int_equal(pcpd_state_dir_open("/nonexistent/pcpd-state", &fd, &why), -ENOENT);
        assert_non_null(strstr(why, "/nonexistent/pcpd-state"));
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* the journal after a snapshot written while records were appended: just those stay */
static void test_journal_keep_tail(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir), jfd, nfd;
        g_autoptr(GString) r1 = g_string_new(NULL), r2 = g_string_new(NULL), r3 = g_string_new(NULL);
        g_autoptr(GString) both = g_string_new(NULL);
        g_autofree char *j = NULL, *tmp = NULL;
        pcpd_state_mapping m;
        struct stat st;
        off_t at_format;

        (void) state;
        fill(&m, 1);
        pcpd_state_format_record(r1, &m);
        fill(&m, 2);
        pcpd_state_format_record(r2, &m);
        pcpd_state_format_removal(r3, 1);

        jfd = pcpd_state_journal_open(dfd);
        assert_true(jfd >= 0);
        assert_int_equal(pcpd_state_journal_append(jfd, r1->str, r1->len), 0);
        assert_int_equal(fstat(jfd, &st), 0);
        at_format = st.st_size; /* a snapshot with record 1 is formatted here */
        assert_int_equal(pcpd_state_journal_append(jfd, r2->str, r2->len), 0);

        /* out of range: refused, the journal as it was */
        assert_int_equal(pcpd_state_journal_keep_tail(dfd, jfd, st.st_size + (off_t) r2->len + 1), -EINVAL);
        j = unit_slurp(dir, PCPD_STATE_JOURNAL);
        g_string_append_len(both, r1->str, (gssize) r1->len);
        g_string_append_len(both, r2->str, (gssize) r2->len);
        assert_string_equal(j, both->str);
        g_clear_pointer(&j, g_free);

        nfd = pcpd_state_journal_keep_tail(dfd, jfd, at_format);
        assert_true(nfd >= 0);
        close(jfd);
        j = unit_slurp(dir, PCPD_STATE_JOURNAL);
        assert_string_equal(j, r2->str);
        g_clear_pointer(&j, g_free);
        tmp = unit_slurp(dir, PCPD_STATE_JOURNAL ".tmp");
        assert_null(tmp);
        /* the new fd appends to the new journal, which replays as the tail and what follows */
        assert_int_equal(pcpd_state_journal_append(nfd, r3->str, r3->len), 0);
        j = unit_slurp(dir, PCPD_STATE_JOURNAL);
        {
                g_autoptr(pcpd_state) ps = pcpd_state_new();
                pcpd_state_replay_journal(ps, j, strlen(j));
                assert_int_equal(ps->journal_records, 2);
                assert_int_equal(ps->journal_torn, 0);
                assert_int_equal(ps->journal_damaged, 0);
                assert_int_equal(g_hash_table_size(ps->mappings), 1);
        }
        /* it is the journal the loader opens (one link, a regular file) */
        assert_int_equal(fstat(nfd, &st), 0);
        assert_int_equal(st.st_nlink, 1);
        assert_int_equal(st.st_mode & 07777, 0600);
        close(nfd);
        jfd = pcpd_state_journal_open(dfd);
        assert_true(jfd >= 0);
        close(jfd);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* ---- the snapshot writer ---- */

/* A write function that waits at a gate the test opens, then writes for real: the test
 * sees the write in progress for as long as it likes, without a clock. */
typedef struct gate {
        /* pthread's, not GMutex: helgrind understands them (GLib's are futexes) */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool entered, open;
        int fail;               /* returned instead of writing when not 0 */
        GThread *thread;        /* the one the write ran on */
        /* what the done callback saw */
        unsigned done_calls;
        int done_r;
        bool busy_in_done;
        GMainLoop *loop;
        pcpd_state_writer *w;
        /* the main loop's own work while the write waits */
        bool ticked_while_writing;
} gate;

static void gate_init(gate *g) {
        memset(g, 0, sizeof(*g));
        pthread_mutex_init(&g->lock, NULL);
        pthread_cond_init(&g->cond, NULL);
}

static void gate_clear(gate *g) {
        pthread_mutex_destroy(&g->lock);
        pthread_cond_destroy(&g->cond);
}

static int gated_write(int dirfd, const char *name, int fd, void *userdata) {
        gate *g = userdata;

        pthread_mutex_lock(&g->lock);
        g->entered = true;
        g->thread = g_thread_self();
        pthread_cond_broadcast(&g->cond);
        while (!g->open)
                pthread_cond_wait(&g->cond, &g->lock);
        pthread_mutex_unlock(&g->lock);
        if (g->fail != 0) {
                close(fd);
                pcpd_state_replace_abort(dirfd, name);
                return g->fail;
        }
        return pcpd_state_replace_commit(dirfd, name, fd);
}

static void gate_open(gate *g) {
        pthread_mutex_lock(&g->lock);
        g->open = true;
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->lock);
}

static void gate_wait_entered(gate *g) {
        pthread_mutex_lock(&g->lock);
        while (!g->entered)
                pthread_cond_wait(&g->cond, &g->lock);
        pthread_mutex_unlock(&g->lock);
}

static void on_done(int r, void *userdata) {
        gate *g = userdata;

        g->done_calls++;
        g->done_r = r;
        g->busy_in_done = pcpd_state_writer_busy(g->w);
        if (g->loop != NULL)
                g_main_loop_quit(g->loop);
}

/* the main loop's work while the write is held at the gate: it runs (the write is not on
 * this thread), and then lets the write finish */
static gboolean on_tick(gpointer data) {
        gate *g = data;

        gate_wait_entered(g);
        g->ticked_while_writing = pcpd_state_writer_busy(g->w) && g->done_calls == 0;
        gate_open(g);
        return G_SOURCE_REMOVE;
}

static GString *snapshot_text(uint64_t next_id) {
        GString *out = g_string_new(NULL);
        pcpd_state_mapping m;

        fill(&m, 1);
        pcpd_state_format_header(out, next_id);
        pcpd_state_format_mapping(out, &m);
        return out;
}

/* snapshot_text(next_id) written into a fresh mappings.state.tmp: its fd, for the writer */
static int snapshot_file(int dfd, uint64_t next_id) {
        g_autoptr(GString) text = snapshot_text(next_id);
        int fd = pcpd_state_replace_begin(dfd, PCPD_STATE_FILE);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text->str, text->len), (ssize_t) text->len);
        return fd;
}

/* the loop runs on while a snapshot is written; the file is in place when done is told */
static void test_writer_does_not_block_the_loop(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir);
        g_autoptr(GMainContext) ctx = g_main_context_new();
        g_autoptr(GString) expect = snapshot_text(7);
        g_autofree char *s = NULL;
        GSource *tick;
        int other;
        gate g;

        (void) state;
        gate_init(&g);
        g_main_context_push_thread_default(ctx);
        g.loop = g_main_loop_new(ctx, FALSE);
        assert_int_equal(pcpd_state_writer_new(dfd, PCPD_STATE_FILE, gated_write, &g, on_done, &g, &g.w), 0);
        assert_false(pcpd_state_writer_busy(g.w));
        assert_int_equal(pcpd_state_writer_start(g.w, snapshot_file(dfd, 7)), 0);
        assert_true(pcpd_state_writer_busy(g.w));
        /* a second one while the first is in flight is refused (its fd stays the caller's) */
        other = open("/dev/null", O_WRONLY | O_CLOEXEC);
        assert_true(other >= 0);
        assert_int_equal(pcpd_state_writer_start(g.w, other), -EBUSY);
        assert_int_equal(close(other), 0);

        tick = g_idle_source_new();
        g_source_set_callback(tick, on_tick, &g, NULL);
        g_source_attach(tick, ctx);
        g_source_unref(tick);
        g_main_loop_run(g.loop); /* until done */

        assert_true(g.ticked_while_writing);
        assert_true(g.thread != NULL && g.thread != g_thread_self());
        assert_int_equal(g.done_calls, 1);
        assert_int_equal(g.done_r, 0);
        assert_false(g.busy_in_done);
        s = unit_slurp(dir, PCPD_STATE_FILE);
        assert_non_null(s);
        assert_string_equal(s, expect->str);
        g_clear_pointer(&s, g_free);
        s = unit_slurp(dir, PCPD_STATE_FILE ".tmp");
        assert_null(s);
        /* nothing more to tell: the loop has no stale wakeup to deliver twice */
        while (g_main_context_iteration(ctx, FALSE))
                ;
        assert_int_equal(g.done_calls, 1);

        pcpd_state_writer_free(g.w);
        g_main_loop_unref(g.loop);
        g_main_context_pop_thread_default(ctx);
        gate_clear(&g);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

static gpointer open_gate_later(gpointer data) {
        gate *g = data;

        gate_wait_entered(g);
        gate_open(g);
        return NULL;
}

/* wait() blocks until the write ends and tells its result (a failure too) at once */
static void test_writer_wait(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir);
        g_autoptr(GMainContext) ctx = g_main_context_new();
        g_autofree char *s = NULL;
        GThread *opener;
        gate g;

        (void) state;
        gate_init(&g);
        g.fail = -ENOSPC;
        g_main_context_push_thread_default(ctx);
        assert_int_equal(pcpd_state_writer_new(dfd, PCPD_STATE_FILE, gated_write, &g, on_done, &g, &g.w), 0);
        assert_false(pcpd_state_writer_wait(g.w));
        assert_int_equal(g.done_calls, 0);

        assert_int_equal(pcpd_state_writer_start(g.w, snapshot_file(dfd, 3)), 0);
        opener = g_thread_new("opener", open_gate_later, &g);
        assert_true(pcpd_state_writer_wait(g.w));
        g_thread_join(opener);
        assert_int_equal(g.done_calls, 1);
        assert_int_equal(g.done_r, -ENOSPC);
        assert_false(pcpd_state_writer_busy(g.w));
        s = unit_slurp(dir, PCPD_STATE_FILE);
        assert_null(s);
        while (g_main_context_iteration(ctx, FALSE))
                ;
        assert_int_equal(g.done_calls, 1);

        /* the default write function writes for real */
        pcpd_state_writer_free(g.w);
        assert_int_equal(pcpd_state_writer_new(dfd, PCPD_STATE_FILE, NULL, NULL, on_done, &g, &g.w), 0);
        assert_int_equal(pcpd_state_writer_start(g.w, snapshot_file(dfd, 4)), 0);
        assert_true(pcpd_state_writer_wait(g.w));
        assert_int_equal(g.done_calls, 2);
        assert_int_equal(g.done_r, 0);
        s = unit_slurp(dir, PCPD_STATE_FILE);
        assert_non_null(s);
        assert_non_null(strstr(s, "=4\n"));

        pcpd_state_writer_free(g.w);
        g_main_context_pop_thread_default(ctx);
        gate_clear(&g);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* freed with a write in flight: waits for it, tells nothing, leaks nothing */
static void test_writer_free_in_flight(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir);
        g_autoptr(GMainContext) ctx = g_main_context_new();
        g_autofree char *s = NULL;
        GThread *opener;
        gate g;

        (void) state;
        gate_init(&g);
        g_main_context_push_thread_default(ctx);
        assert_int_equal(pcpd_state_writer_new(dfd, PCPD_STATE_FILE, gated_write, &g, on_done, &g, &g.w), 0);
        assert_int_equal(pcpd_state_writer_start(g.w, snapshot_file(dfd, 5)), 0);
        opener = g_thread_new("opener", open_gate_later, &g);
        g.w = pcpd_state_writer_free(g.w);
        g_thread_join(opener);
        assert_null(g.w);
        assert_int_equal(g.done_calls, 0);
        s = unit_slurp(dir, PCPD_STATE_FILE);
        assert_non_null(s);
        while (g_main_context_iteration(ctx, FALSE))
                ;
        assert_int_equal(g.done_calls, 0);
        g_main_context_pop_thread_default(ctx);
        gate_clear(&g);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* What the writer's thread does after a write (here: its exit, held at a gate) must not
 * hold back the main loop's "done". A thread per write was joined on the loop when its
 * write was told, and a join waits for the thread's exit: on a busy machine the loop
 * stood still for hundreds of ms (scenario 5: PCP retransmissions left late). The exit
 * is held by a thread-exit destructor the write sets; the gate opens only once done has
 * been told, or after EXIT_CAP_S (then the loop had waited for the exit: the failure). */
#define EXIT_CAP_S 20

typedef struct exit_gate {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool open, timed_out;
} exit_gate;

static void hold_exit(gpointer data) {
        exit_gate *x = data;
        struct timespec until;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += EXIT_CAP_S;
        pthread_mutex_lock(&x->lock);
        while (!x->open && !x->timed_out)
                if (pthread_cond_timedwait(&x->cond, &x->lock, &until) == ETIMEDOUT)
                        x->timed_out = true;
        pthread_mutex_unlock(&x->lock);
}

static GPrivate exit_hook = G_PRIVATE_INIT(hold_exit);

static int write_then_hold_exit(int dirfd, const char *name, int fd, void *userdata) {
        g_private_set(&exit_hook, userdata); /* runs when the thread exits, if it does */
        return pcpd_state_replace_commit(dirfd, name, fd);
}

static void on_done_quit(int r, void *userdata) {
        gate *g = userdata;

        g->done_calls++;
        g->done_r = r;
        g_main_loop_quit(g->loop);
}

static void test_writer_done_without_waiting_for_its_thread(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir);
        g_autoptr(GMainContext) ctx = g_main_context_new();
        exit_gate x = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        bool timed_out;
        gate g;

        (void) state;
        gate_init(&g);
        g_main_context_push_thread_default(ctx);
        g.loop = g_main_loop_new(ctx, FALSE);
        assert_int_equal(pcpd_state_writer_new(dfd, PCPD_STATE_FILE, write_then_hold_exit, &x, on_done_quit, &g, &g.w),
                         0);
        for (uint64_t k = 1; k <= 2; k++) {
                /* the second write too: the writer is ready for it at once */
                assert_int_equal(pcpd_state_writer_start(g.w, snapshot_file(dfd, k)), 0);
                g_main_loop_run(g.loop); /* until done */
                pthread_mutex_lock(&x.lock);
                timed_out = x.timed_out;
                pthread_mutex_unlock(&x.lock);
                if (timed_out)
                        fail_msg("write %u: expected done to be told while the writer's thread may still run on, "
                                 "saw it told only after the thread's exit, held for the cap of %d s",
                                 (unsigned) k, EXIT_CAP_S);
                assert_int_equal(g.done_calls, k);
                assert_int_equal(g.done_r, 0);
        }
        pthread_mutex_lock(&x.lock);
        x.open = true;
        pthread_cond_broadcast(&x.cond);
        pthread_mutex_unlock(&x.lock);
        pcpd_state_writer_free(g.w);
        g_main_loop_unref(g.loop);
        g_main_context_pop_thread_default(ctx);
        gate_clear(&g);
        pthread_mutex_destroy(&x.lock);
        pthread_cond_destroy(&x.cond);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* ---- compaction ---- */

static void test_compact_due(void **state) {
        const uint64_t big = 30000 * 300; /* 30,000 mappings held */
        uint64_t snapshot = 0, journal = 0, held = 0, written = 0, appended = 0;
        unsigned snapshots = 0;

        /* nothing appended: nothing to fold */
        assert_false(pcpd_state_compact_due(0, 0));
        assert_false(pcpd_state_compact_due(big, 0));
        /* small: after any change, as always */
        assert_true(pcpd_state_compact_due(30, 1));
        assert_true(pcpd_state_compact_due(PCPD_STATE_COMPACT_SMALL - 640, 640));
        /* one change with many held: no snapshot of them all */
        assert_false(pcpd_state_compact_due(big, 640));
        assert_false(pcpd_state_compact_due(big, big - 1));
        assert_true(pcpd_state_compact_due(big, big));
        /* past small together, the journal not yet at the floor */
        assert_false(pcpd_state_compact_due(PCPD_STATE_COMPACT_SMALL / 2, PCPD_STATE_COMPACT_SMALL / 2 + 1));
        assert_true(pcpd_state_compact_due(PCPD_STATE_COMPACT_SMALL / 2, PCPD_STATE_COMPACT_SMALL));
        assert_true(pcpd_state_compact_due(0, PCPD_STATE_COMPACT_SMALL + 1));
        /* the journal stays well below what loading reads, however large the snapshot */
        assert_false(pcpd_state_compact_due(PCPD_STATE_MAX_FILE_SIZE, PCPD_STATE_COMPACT_MAX_JOURNAL - 1));
        assert_true(pcpd_state_compact_due(PCPD_STATE_MAX_FILE_SIZE, PCPD_STATE_COMPACT_MAX_JOURNAL));
        assert_true(PCPD_STATE_COMPACT_MAX_JOURNAL <= PCPD_STATE_MAX_FILE_SIZE / 2);

        /* 131,070 mappings of 480 bytes (60 MiB, just below what loading reads) added one
         * by one, the policy asked after each (the daemon asks less often: 200 ms
         * coalesce): every snapshot written holds all of them so far. Amortised linear:
         * the snapshots together are a small multiple of what the journal took, and few;
         * one after every change would have written 131,070 of them, 4 TB in all. */
        for (unsigned i = 0; i < 131070; i++) {
                held += 480;
                journal += 480;
                appended += 480;
                if (pcpd_state_compact_due(snapshot, journal)) {
                        snapshots++;
                        written += held;
                        snapshot = held;
                        journal = 0;
                }
        }
        assert_true(written <= 4 * appended);
        assert_true(journal < PCPD_STATE_COMPACT_MAX_JOURNAL);
        assert_true(snapshots < PCPD_STATE_COMPACT_SMALL / 480 + 16);
}

/* a pcpd_state_lookup_func over a pcpd_state */
static bool lookup_in(uint64_t id, pcpd_state_mapping *ret, void *userdata) {
        pcpd_state *st = userdata;
        pcpd_state_mapping *m = g_hash_table_lookup(st->mappings, &id);

        if (m == NULL)
                return false;
        *ret = *m;
        return true;
}

/* st as one snapshot, formatted at once: the header and the records ordered by id */
static GString *format_whole(pcpd_state *st) {
        g_autoptr(GPtrArray) sorted = pcpd_state_sorted(st);
        GString *out = g_string_new(NULL);

        pcpd_state_format_header(out, st->next_id);
        for (guint i = 0; i < sorted->len; i++)
                pcpd_state_format_mapping(out, sorted->pdata[i]);
        return out;
}

/* the ids of st ordered, for a formatter */
static uint64_t *sorted_ids(pcpd_state *st, size_t *ret_n) {
        g_autoptr(GPtrArray) sorted = pcpd_state_sorted(st);
        uint64_t *ids = g_new(uint64_t, sorted->len + 1);

        for (guint i = 0; i < sorted->len; i++)
                ids[i] = ((pcpd_state_mapping *) sorted->pdata[i])->id;
        *ret_n = sorted->len;
        return ids;
}

static void put(pcpd_state *st, const pcpd_state_mapping *m) {
        pcpd_state_mapping *c = pcpd_state_mapping_copy(m);
        g_hash_table_replace(st->mappings, &c->id, c);
}

static pcpd_state *sample_state(unsigned n) {
        pcpd_state *st = pcpd_state_new();

        for (unsigned i = 1; i <= n; i++) {
                pcpd_state_mapping m;

                fill(&m, i);
                if (i % 7 == 0)
                        m.description = (char *) NASTY;
                if (i % 5 == 0) {
                        m.deleting = true;
                        m.delete_until = 1700000000000000ull + i;
                }
                if (i % 11 == 0) {
                        m.direct = true;
                        m.has_nonce = false;
                        m.server = (char *) "";
                }
                put(st, &m);
        }
        st->next_id = n + 1;
        return st;
}

static void test_formatter_same_bytes(void **state) {
        g_autoptr(pcpd_state) st = sample_state(1000);
        g_autoptr(GString) whole = format_whole(st);
        const size_t steps[] = { 1, 7, 512, SIZE_MAX };

        for (size_t k = 0; k < G_N_ELEMENTS(steps); k++) {
                pcpd_state_formatter *f;
                g_autoptr(GString) out = NULL;
                unsigned calls = 1;
                size_t n;
                uint64_t *ids = sorted_ids(st, &n);

                f = pcpd_state_formatter_new(st->next_id, ids, n, k * 100000);
                while (!pcpd_state_formatter_step(f, steps[k], lookup_in, st))
                        calls++;
                out = pcpd_state_formatter_finish(f);
                assert_int_equal(calls, steps[k] == SIZE_MAX ? 1 : (1000 + steps[k] - 1) / steps[k]);
                assert_int_equal(out->len, whole->len);
                assert_memory_equal(out->str, whole->str, whole->len);
        }

        /* no ids: the header alone; an id gone by its turn is left out */
        {
                pcpd_state_formatter *f = pcpd_state_formatter_new(5, g_new(uint64_t, 1), 0, 0);
                g_autoptr(GString) out = NULL, header = g_string_new(NULL);
                uint64_t *gone = g_new(uint64_t, 1);

                assert_true(pcpd_state_formatter_step(f, 1, lookup_in, st));
                out = pcpd_state_formatter_finish(f);
                pcpd_state_format_header(header, 5);
                assert_string_equal(out->str, header->str);

                gone[0] = 424242;
                f = pcpd_state_formatter_new(5, gone, 1, 0);
                assert_true(pcpd_state_formatter_step(f, 10, lookup_in, st));
                g_string_free(out, TRUE);
                out = pcpd_state_formatter_finish(f);
                assert_string_equal(out->str, header->str);
        }
}

/* lookup_in, counting its calls */
typedef struct counted_lookup {
        pcpd_state *st;
        unsigned calls;
} counted_lookup;

static bool lookup_counted(uint64_t id, pcpd_state_mapping *ret, void *userdata) {
        counted_lookup *c = userdata;

        c->calls++;
        return lookup_in(id, ret, c->st);
}

/* A snapshot written to its file as it is formatted (a piece of 64 KiB at a time, never
 * the whole text in memory) has the same bytes as the one formatted whole, whatever the
 * chunks; put in place, it is the file, and it loads as the records it was made of. */
static void test_formatter_streams_same_bytes(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir);
        g_autoptr(pcpd_state) st = sample_state(1000);
        g_autoptr(GString) whole = format_whole(st);
        const size_t steps[] = { 1, 7, 256, SIZE_MAX };
        g_autoptr(GPtrArray) sorted = pcpd_state_sorted(st);
        size_t n_sorted = sorted->len;
        unsigned invalid = 0;

        (void) state;
        for (size_t i = 0; i < n_sorted; i++) {
                const pcpd_state_mapping *m = sorted->pdata[i];
                invalid += m->direct && m->deleting;
        }
        assert_true(invalid > 0 && invalid < n_sorted / 10);
        /* several pieces, and records across their borders */
        assert_true(whole->len > 4 * 64 * 1024);
        for (size_t k = 0; k < G_N_ELEMENTS(steps); k++) {
                g_autofree char *text = NULL, *tmp = NULL;
                g_autoptr(pcpd_state) back = pcpd_state_new();
                pcpd_state_formatter *f;
                uint64_t written = 0;
                size_t n, len = 0;
                uint64_t *ids = sorted_ids(st, &n);
                int fd = pcpd_state_replace_begin(dfd, PCPD_STATE_FILE);

                assert_true(fd >= 0);
                f = pcpd_state_formatter_new_fd(fd, st->next_id, ids, n);
                while (!pcpd_state_formatter_step(f, steps[k], lookup_in, st))
                        ;
                assert_int_equal(pcpd_state_formatter_end(f, &written), 0);
                assert_int_equal(written, whole->len);
                /* nothing in place before the commit */
                if (k == 0)
                        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_FILE, &text, &len), -ENOENT);
                assert_int_equal(pcpd_state_replace_commit(dfd, PCPD_STATE_FILE, fd), 0);
                tmp = unit_slurp(dir, PCPD_STATE_FILE ".tmp");
                assert_null(tmp);
                assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_FILE, &text, &len), 0);
                assert_int_equal(len, whole->len);
                assert_memory_equal(text, whole->str, whole->len);
                /* read back: every record the reader takes (sample_state() has direct
                 * ones marked deleting, which it refuses) is as it was */
                assert_int_equal(pcpd_state_parse_snapshot(back, text, len), 0);
                assert_int_equal(back->next_id, st->next_id);
                assert_int_equal(back->damaged, invalid);
                assert_int_equal(g_hash_table_size(back->mappings) + invalid, g_hash_table_size(st->mappings));
                for (size_t i = 0; i < n_sorted; i++) {
                        const pcpd_state_mapping *want = sorted->pdata[i];
                        const pcpd_state_mapping *got = g_hash_table_lookup(back->mappings, &want->id);

                        if (want->direct && want->deleting) {
                                assert_null(got);
                                continue;
                        }
                        assert_non_null(got);
                        assert_same(got, want);
                }
        }
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* Records handed to a formatter made with no ids (pcpd_state_formatter_add(): the caller
 * walks its records itself, in one go) give the same bytes as the steps over their ids,
 * kept in memory or written to a file a piece at a time; on a full file system the first
 * piece fails, add says so, and end tells the error. */
static void test_formatter_add_same_bytes(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir), fd;
        g_autoptr(pcpd_state) st = sample_state(1000);
        g_autoptr(GString) whole = format_whole(st), out = NULL;
        g_autoptr(GPtrArray) sorted = pcpd_state_sorted(st);
        g_autofree char *text = NULL;
        pcpd_state_formatter *f;
        uint64_t written = 0;
        size_t len = 0;
        guint accepted = 0;

        (void) state;
        assert_true(whole->len > 4 * 64 * 1024);
        f = pcpd_state_formatter_new(st->next_id, NULL, 0, 0);
        for (guint i = 0; i < sorted->len; i++)
                assert_true(pcpd_state_formatter_add(f, sorted->pdata[i]));
        /* no ids: the steps have nothing to do */
        assert_true(pcpd_state_formatter_step(f, SIZE_MAX, lookup_in, st));
        out = pcpd_state_formatter_finish(f);
        assert_int_equal(out->len, whole->len);
        assert_memory_equal(out->str, whole->str, whole->len);

        fd = pcpd_state_replace_begin(dfd, PCPD_STATE_FILE);
        assert_true(fd >= 0);
        f = pcpd_state_formatter_new_fd(fd, st->next_id, NULL, 0);
        for (guint i = 0; i < sorted->len; i++)
                assert_true(pcpd_state_formatter_add(f, sorted->pdata[i]));
        assert_int_equal(pcpd_state_formatter_end(f, &written), 0);
        assert_int_equal(written, whole->len);
        assert_int_equal(pcpd_state_replace_commit(dfd, PCPD_STATE_FILE, fd), 0);
        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_FILE, &text, &len), 0);
        assert_int_equal(len, whole->len);
        assert_memory_equal(text, whole->str, whole->len);

        fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        f = pcpd_state_formatter_new_fd(fd, st->next_id, NULL, 0);
        for (guint i = 0; i < sorted->len && pcpd_state_formatter_add(f, sorted->pdata[i]); i++)
                accepted++;
        assert_true(accepted > 0 && accepted < sorted->len / 2);
        assert_false(pcpd_state_formatter_add(f, sorted->pdata[0]));
        assert_int_equal(pcpd_state_formatter_end(f, &written), -ENOSPC);
        assert_int_equal(written, 0);
        close(fd);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* A write that fails (a full file system: /dev/full) ends the formatting at once, and
 * the failure is what pcpd_state_formatter_end() returns; given up, the temporary file
 * goes and the snapshot in place stays as it was. Also when the failure comes part of the
 * way (RLIMIT_FSIZE: the first pieces fit, a later one does not). */
static void test_formatter_write_fails(void **state) {
        g_autofree char *dir = unit_make_own_dir("state");
        int dfd = unit_open_dir(dir), fd;
        g_autoptr(pcpd_state) st = sample_state(1000);
        g_autoptr(GString) old = g_string_new(NULL);
        g_autofree char *text = NULL, *tmp = NULL;
        counted_lookup c = { .st = st };
        struct rlimit was, lim;
        pcpd_state_formatter *f;
        uint64_t written = 1;
        size_t n, len = 0;
        uint64_t *ids;

        (void) state;
        pcpd_state_format_header(old, 2);
        assert_int_equal(pcpd_state_write_atomic(dfd, PCPD_STATE_FILE, old->str, old->len), 0);

        /* the first piece fails: no more records looked up than fill it */
        fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        ids = sorted_ids(st, &n);
        f = pcpd_state_formatter_new_fd(fd, st->next_id, ids, n);
        assert_true(pcpd_state_formatter_step(f, SIZE_MAX, lookup_counted, &c));
        assert_true(c.calls > 0 && c.calls < n / 2);
        assert_int_equal(pcpd_state_formatter_end(f, &written), -ENOSPC);
        assert_int_equal(written, 0);
        close(fd);
        /* nothing to write at all but what is left at the end: told by end */
        fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        f = pcpd_state_formatter_new_fd(fd, 5, g_new(uint64_t, 1), 0);
        assert_true(pcpd_state_formatter_step(f, 1, lookup_in, st));
        assert_int_equal(pcpd_state_formatter_end(f, NULL), -ENOSPC);
        close(fd);

        /* part of the way: the file takes 100 KiB, the snapshot is larger */
        fd = pcpd_state_replace_begin(dfd, PCPD_STATE_FILE);
        assert_true(fd >= 0);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &was), 0);
        lim = was;
        lim.rlim_cur = 100 * 1024;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        ids = sorted_ids(st, &n);
        f = pcpd_state_formatter_new_fd(fd, st->next_id, ids, n);
        c.calls = 0;
        while (!pcpd_state_formatter_step(f, 100, lookup_counted, &c))
                ;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &was), 0);
        assert_true(c.calls < n);
        assert_int_equal(pcpd_state_formatter_end(f, &written), -EFBIG);
        assert_true(written >= 64 * 1024 && written < 100 * 1024);
        pcpd_state_replace_abort(dfd, PCPD_STATE_FILE);
        close(fd);
        tmp = unit_slurp(dir, PCPD_STATE_FILE ".tmp");
        assert_null(tmp);
        assert_int_equal(pcpd_state_read_file(dfd, PCPD_STATE_FILE, &text, &len), 0);
        assert_int_equal(len, old->len);
        assert_memory_equal(text, old->str, old->len);
        close(dfd);
        assert_int_equal(unit_rm_own_dir(dir), 0);
}

/* A snapshot formatted a chunk at a time while mappings change: every change goes to the
 * journal at once, as pcpd does. The snapshot and the journal from where it was when the
 * formatting started give the state as it is at the end; the journal from where it was
 * when the formatting ended would not (a change to a mapping already formatted is in
 * neither). */
static void test_formatter_mid_change(void **state) {
        g_autoptr(pcpd_state) live = sample_state(50), loaded = pcpd_state_new(), wrong = pcpd_state_new();
        g_autoptr(GString) journal = g_string_new(NULL), snapshot = NULL, want = NULL, got = NULL, bad = NULL;
        pcpd_state_formatter *f;
        pcpd_state_mapping m;
        size_t n, start, end;
        unsigned turn = 0;
        uint64_t *ids = sorted_ids(live, &n);

        /* what came before this snapshot's formatting (the last one has it) */
        fill(&m, 1);
        pcpd_state_format_record(journal, &m);
        start = journal->len;

        f = pcpd_state_formatter_new(live->next_id, ids, n, 0);
        while (!pcpd_state_formatter_step(f, 10, lookup_in, live)) {
                /* the formatter has had ids 1 .. 10 * turn */
                switch (turn++) {
                case 0:
                        fill(&m, 5); /* formatted already: granted anew */
                        m.external_port = 41005;
                        put(live, &m);
                        pcpd_state_format_record(journal, &m);
                        fill(&m, 45); /* not yet */
                        m.external_port = 41045;
                        put(live, &m);
                        pcpd_state_format_record(journal, &m);
                        break;
                case 1:
                        g_hash_table_remove(live->mappings, &(uint64_t) { 3 });
                        pcpd_state_format_removal(journal, 3);
                        g_hash_table_remove(live->mappings, &(uint64_t) { 40 });
                        pcpd_state_format_removal(journal, 40);
                        break;
                case 2:
                        /* new ones; one of them gone again before the end */
                        fill(&m, 51);
                        put(live, &m);
                        pcpd_state_format_record(journal, &m);
                        fill(&m, 52);
                        put(live, &m);
                        pcpd_state_format_record(journal, &m);
                        live->next_id = 53;
                        g_hash_table_remove(live->mappings, &(uint64_t) { 51 });
                        pcpd_state_format_removal(journal, 51);
                        break;
                case 3:
                        /* removed, its delete unconfirmed: a deleting record, formatted or not */
                        fill(&m, 12);
                        m.deleting = true;
                        m.delete_until = 77;
                        put(live, &m);
                        pcpd_state_format_record(journal, &m);
                        fill(&m, 48);
                        m.deleting = true;
                        m.delete_until = 78;
                        put(live, &m);
                        pcpd_state_format_record(journal, &m);
                        break;
                default:
                        break;
                }
        }
        snapshot = pcpd_state_formatter_finish(f);
        end = journal->len;
        assert_int_equal(turn, 4);

        /* the snapshot is a mix: id 5 as it was, id 45 as it is now, id 40 gone, 52 not yet */
        assert_null(strstr(snapshot->str, "ExternalPort=41005"));
        assert_non_null(strstr(snapshot->str, "ExternalPort=41045"));
        assert_null(strstr(snapshot->str, "[Mapping 40]"));
        assert_null(strstr(snapshot->str, "[Mapping 52]"));

        assert_int_equal(pcpd_state_parse_snapshot(loaded, snapshot->str, snapshot->len), 0);
        assert_int_equal(loaded->damaged, 0);
        pcpd_state_replay_journal(loaded, journal->str + start, end - start);
        assert_int_equal(loaded->journal_damaged, 0);
        want = format_whole(live);
        got = format_whole(loaded);
        assert_string_equal(got->str, want->str);
        /* replayed twice (a crash before the journal was cut): the same */
        pcpd_state_replay_journal(loaded, journal->str + start, end - start);
        g_string_free(got, TRUE);
        got = format_whole(loaded);
        assert_string_equal(got->str, want->str);

        /* from where the formatting ended: id 3 and id 5's grant lost */
        assert_int_equal(pcpd_state_parse_snapshot(wrong, snapshot->str, snapshot->len), 0);
        pcpd_state_replay_journal(wrong, journal->str + end, journal->len - end);
        bad = format_whole(wrong);
        assert_string_not_equal(bad->str, want->str);
        assert_non_null(g_hash_table_lookup(wrong->mappings, &(uint64_t) { 3 }));
}

/* Parsed records lie packed in blocks of the loaded state's (pcpd-state.h), read back the
 * same as records allocated one by one, and their blocks live as long as any record in
 * them: past the state that loaded them, and no longer. */
static void test_records_packed(void **state) {
        g_autoptr(pcpd_state) want = sample_state(5000), st = pcpd_state_new(), big = pcpd_state_new();
        g_autoptr(GString) snap = format_whole(want), journal = g_string_new(NULL), text = g_string_new(NULL);
        g_autoptr(GPtrArray) recs = g_ptr_array_new();
        g_autoptr(GHashTable) blocks = g_hash_table_new(g_direct_hash, g_direct_equal);
        g_autofree char *long_description = g_strnfill(200 * 1024, 'x');
        GHashTableIter it;
        gpointer key, value;
        pcpd_state_mapping m, *got, *own;

        /* a journal record over a packed one replaces it (its room is left in the block) */
        fill(&m, 3);
        m.description = (char *) "replaced";
        pcpd_state_format_record(journal, &m);
        put(want, &m);

        assert_int_equal(pcpd_state_parse_snapshot(st, snap->str, snap->len), 0);
        pcpd_state_replay_journal(st, journal->str, journal->len);
        assert_int_equal(st->journal_records, 1);
        /* sample_state() has some that are no valid mapping (direct and deleting) */
        assert_true(st->damaged > 0);
        assert_int_equal(g_hash_table_size(st->mappings) + st->damaged, 5000);
        g_hash_table_iter_init(&it, st->mappings);
        while (g_hash_table_iter_next(&it, &key, &value)) {
                got = value;
                assert_non_null(got->block);
                assert_same(g_hash_table_lookup(want->mappings, key), got);
                g_hash_table_add(blocks, got->block);
        }
        /* 5,000 records of ~300 octets: more than one block */
        assert_true(g_hash_table_size(blocks) > 1);

        /* records taken out of the state outlive it, and so do their blocks */
        g_hash_table_iter_init(&it, st->mappings);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                g_ptr_array_add(recs, value);
                g_hash_table_iter_steal(&it);
        }
        g_hash_table_iter_init(&it, blocks);
        while (g_hash_table_iter_next(&it, &key, NULL))
                assert_true(mapped(key));
        g_clear_pointer(&st, pcpd_state_free);
        g_hash_table_iter_init(&it, blocks);
        while (g_hash_table_iter_next(&it, &key, NULL))
                assert_true(mapped(key));
        for (guint i = 0; i < recs->len; i++) {
                got = recs->pdata[i];
                assert_same(g_hash_table_lookup(want->mappings, &got->id), got);
        }
        /* one kept: a copy of its own, the packed one freed */
        own = pcpd_state_mapping_unpack(recs->pdata[0]);
        recs->pdata[0] = NULL;
        assert_null(own->block);
        assert_same(g_hash_table_lookup(want->mappings, &own->id), own);
        /* the rest freed (not in the order they were packed): every block goes back */
        for (guint i = recs->len; i-- > 1;)
                pcpd_state_mapping_free(recs->pdata[i]);
        g_hash_table_iter_init(&it, blocks);
        while (g_hash_table_iter_next(&it, &key, NULL))
                assert_false(mapped(key));
        /* the copy owns what it holds */
        assert_same(g_hash_table_lookup(want->mappings, &own->id), own);
        assert_null(pcpd_state_mapping_unpack(NULL));
        assert_ptr_equal(pcpd_state_mapping_unpack(own), own);
        pcpd_state_mapping_free(own);

        /* a record too large for a block is allocated by itself, and reads back the same */
        fill(&m, 9);
        m.description = long_description;
        pcpd_state_format_header(text, 10);
        pcpd_state_format_mapping(text, &m);
        assert_int_equal(pcpd_state_parse_snapshot(big, text->str, text->len), 0);
        got = get(big, 9);
        assert_non_null(got);
        assert_null(got->block);
        assert_same(&m, got);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_record_roundtrip),
                cmocka_unit_test(test_records_packed),
                cmocka_unit_test(test_old_snapshot),
                cmocka_unit_test(test_upnp_part),
                cmocka_unit_test(test_damaged_snapshot),
                cmocka_unit_test(test_snapshot_bad_line),
                cmocka_unit_test(test_snapshot_bad_header),
                cmocka_unit_test(test_load_bad_line),
                cmocka_unit_test(test_snapshot_read_by_group),
                cmocka_unit_test(test_journal_over_snapshot),
                cmocka_unit_test(test_torn_records),
                cmocka_unit_test(test_shrinking_snapshot),
                cmocka_unit_test(test_failed_writes),
                cmocka_unit_test(test_journal_open_cuts_torn_tail),
                cmocka_unit_test(test_journal_open_long_torn_tail),
                cmocka_unit_test(test_journal_nul),
                cmocka_unit_test(test_meaningless_fields),
                cmocka_unit_test(test_no_symlinks),
                cmocka_unit_test(test_dir_checks),
                cmocka_unit_test(test_journal_keep_tail),
                cmocka_unit_test(test_writer_does_not_block_the_loop),
                cmocka_unit_test(test_writer_wait),
                cmocka_unit_test(test_writer_free_in_flight),
                cmocka_unit_test(test_writer_done_without_waiting_for_its_thread),
                cmocka_unit_test(test_compact_due),
                cmocka_unit_test(test_formatter_same_bytes),
                cmocka_unit_test(test_formatter_streams_same_bytes),
                cmocka_unit_test(test_formatter_write_fails),
                cmocka_unit_test(test_formatter_add_same_bytes),
                cmocka_unit_test(test_formatter_mid_change),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
