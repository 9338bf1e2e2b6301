/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-state.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>

#define STATE_GROUP "State"
#define MAPPING_GROUP_PREFIX "Mapping "
#define MAX_DAMAGED_NAMES 16

/*
 * Parsed records are packed into blocks of their own, mapped from the system rather than
 * taken from malloc's heap. Each record is parsed into the heap first (GKeyFile and its
 * many temporaries, the record and its strings), copied into the block whole, and its
 * heap freed at once: the next record's parse takes the same room again, so the load
 * leaves no long-lived chunk of the heap between short-lived ones. The restore then makes
 * its mappings one after the other in a heap that has no records in it and frees each
 * record after its mapping, and a block is unmapped once its last record is freed: no hole
 * is left where a record was (bench/README.md, branch restorerss: ~125,000 holes of 32–240
 * octets, 21 MB, after a restart over 131,070, when records and their strings were
 * allocated one by one in the heap between the GKeyFile's temporaries and the mappings).
 */
#define BLOCK_SIZE (1024u * 1024)
/* a record larger than this (a long description) stays in the heap */
#define BLOCK_MAX_RECORD (BLOCK_SIZE / 16)
#define BLOCK_ALIGN 16u

struct pcpd_state_block {
        size_t used; /* octets from the block's start, this header included */
        size_t live; /* records in it not freed yet, and 1 while the state packs into it */
};

static size_t align_up(size_t n) {
        return (n + BLOCK_ALIGN - 1) & ~(size_t) (BLOCK_ALIGN - 1);
}

static void block_unref(pcpd_state_block *b) {
        if (b != NULL && --b->live == 0)
                (void) munmap(b, BLOCK_SIZE);
}

static void mapping_free_strings(pcpd_state_mapping *m) {
        g_free(m->server);
        g_free(m->external_address);
        g_free(m->remote_address);
        g_free(m->app_id);
        g_free(m->app_id_source);
        g_free(m->description);
        g_free(m->declared);
        g_free(m->upnp_interface);
        g_free(m->filters);
}

void pcpd_state_mapping_free(pcpd_state_mapping *m) {
        if (m == NULL)
                return;
        if (m->block != NULL) {
                /* its strings and filters are in the block with it */
                block_unref(m->block);
                return;
        }
        mapping_free_strings(m);
        g_free(m);
}

pcpd_state_mapping *pcpd_state_mapping_copy(const pcpd_state_mapping *m) {
        pcpd_state_mapping *c = g_memdup2(m, sizeof(*m));

        c->server = g_strdup(m->server ?: "");
        c->external_address = g_strdup(m->external_address ?: "");
        c->remote_address = g_strdup(m->remote_address);
        c->app_id = g_strdup(m->app_id ?: "");
        c->app_id_source = g_strdup(m->app_id_source ?: "none");
        c->description = g_strdup(m->description ?: "");
        c->declared = g_strdup(m->declared);
        c->upnp_interface = g_strdup(m->upnp_interface);
        c->filters = m->n_filters > 0 ? g_memdup2(m->filters, m->n_filters * sizeof(pcp_filter)) : NULL;
        c->block = NULL;
        return c;
}

pcpd_state_mapping *pcpd_state_mapping_unpack(pcpd_state_mapping *m) {
        pcpd_state_mapping *c;

        if (m == NULL || m->block == NULL)
                return m;
        c = pcpd_state_mapping_copy(m);
        pcpd_state_mapping_free(m);
        return c;
}

/* the room a string takes in a block */
static size_t packed_len(const char *s) {
        return s != NULL ? strlen(s) + 1 : 0;
}

static char *pack_string(char **p, const char *s) {
        char *r;
        size_t n = packed_len(s);

        if (s == NULL)
                return NULL;
        r = memcpy(*p, s, n);
        *p += n;
        return r;
}

/* m (parsed, allocated by itself; taken over) copied into st's block, or m itself when it
 * is too large for one or no block can be mapped. */
static pcpd_state_mapping *pack(pcpd_state *st, pcpd_state_mapping *m) {
        size_t head = align_up(sizeof(pcpd_state_mapping)), filters = (size_t) m->n_filters * sizeof(pcp_filter);
        size_t size = align_up(head + filters + packed_len(m->server) + packed_len(m->external_address) +
                               packed_len(m->remote_address) + packed_len(m->app_id) + packed_len(m->app_id_source) +
                               packed_len(m->description) + packed_len(m->declared) +
                               packed_len(m->upnp_interface));
        pcpd_state_mapping *c;
        char *p;

        if (size > BLOCK_MAX_RECORD)
                return m;
        if (st->block == NULL || BLOCK_SIZE - st->block->used < size) {
                void *b = mmap(NULL, BLOCK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

                if (b == MAP_FAILED)
                        return m;
                block_unref(st->block);
                st->block = b;
                st->block->used = align_up(sizeof(pcpd_state_block));
                st->block->live = 1;
        }
        c = (void *) ((char *) st->block + st->block->used); /* aligned: align_up() */
        *c = *m;
        p = (char *) c + head;
        if (filters > 0) {
                c->filters = memcpy(p, m->filters, filters);
                p += filters;
        }
        c->server = pack_string(&p, m->server);
        c->external_address = pack_string(&p, m->external_address);
        c->remote_address = pack_string(&p, m->remote_address);
        c->app_id = pack_string(&p, m->app_id);
        c->app_id_source = pack_string(&p, m->app_id_source);
        c->description = pack_string(&p, m->description);
        c->declared = pack_string(&p, m->declared);
        c->upnp_interface = pack_string(&p, m->upnp_interface);
        c->block = st->block;
        st->block->used += size;
        st->block->live++;
        pcpd_state_mapping_free(m);
        return c;
}

pcpd_state *pcpd_state_new(void) {
        pcpd_state *st = g_new0(pcpd_state, 1);

        st->next_id = 1;
        st->mappings = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
                                             (GDestroyNotify) pcpd_state_mapping_free);
        return st;
}

pcpd_state *pcpd_state_free(pcpd_state *st) {
        if (st == NULL)
                return NULL;
        g_hash_table_destroy(st->mappings);
        block_unref(st->block);
        g_strfreev(st->damaged_names);
        g_free(st);
        return NULL;
}

/* ---- writing ---- */

/* Records are formatted with every change (a journal record at each add, grant and
 * removal), so without printf: g_string_append_printf() cost ~90,000 instructions per
 * mapping here, most of pcpd's own work for one. The text is the same. */

static void append_u64(GString *out, uint64_t v) {
        char buf[20];
        size_t i = sizeof(buf);

        do {
                buf[--i] = (char) ('0' + v % 10);
                v /= 10;
        } while (v != 0);
        g_string_append_len(out, buf + i, (gssize) (sizeof(buf) - i));
}

/* A value as GKeyFile reads it back: leading blanks, line breaks and backslashes escaped;
 * in a list item also the separator. */
static void append_value(GString *out, const char *s, bool list_item) {
        bool leading = true;

        if (s == NULL)
                return;
        /* the usual value has nothing to escape: appended whole */
        if (s[0] != ' ' && s[0] != '\t' && s[strcspn(s, list_item ? "\t\n\r\\;" : "\t\n\r\\")] == '\0') {
                g_string_append(out, s);
                return;
        }
        for (const char *p = s; *p != '\0'; p++) {
                switch (*p) {
                case ' ':
                        g_string_append(out, leading ? "\\s" : " ");
                        continue;
                case '\t':
                        g_string_append(out, "\\t");
                        continue;
                case '\n':
                        g_string_append(out, "\\n");
                        break;
                case '\r':
                        g_string_append(out, "\\r");
                        break;
                case '\\':
                        g_string_append(out, "\\\\");
                        break;
                case ';':
                        g_string_append(out, list_item ? "\\;" : ";");
                        break;
                default:
                        g_string_append_c(out, *p);
                }
                leading = false;
        }
}

static void append_string(GString *out, const char *key, const char *value) {
        g_string_append(out, key);
        g_string_append_c(out, '=');
        append_value(out, value, false);
        g_string_append_c(out, '\n');
}

static void append_uint(GString *out, const char *key, uint64_t v) {
        g_string_append(out, key);
        g_string_append_c(out, '=');
        append_u64(out, v);
        g_string_append_c(out, '\n');
}

static void append_bool(GString *out, const char *key, bool v) {
        g_string_append(out, key);
        g_string_append(out, v ? "=true\n" : "=false\n");
}

/* "[Mapping <id>]\n" */
static void append_group(GString *out, uint64_t id) {
        g_string_append(out, "[" MAPPING_GROUP_PREFIX);
        append_u64(out, id);
        g_string_append(out, "]\n");
}

static void append_addr(GString *out, const char *key, const struct in6_addr *a) {
        char buf[PCP_ADDR_STRLEN];
        append_string(out, key, pcp_addr_to_string(a, buf));
}

/* A FILTER as "address/length port", an IPv4 length as IPv4's. */
static void append_filter(GString *out, const pcp_filter *f) {
        char buf[PCP_ADDR_STRLEN];
        bool v4 = pcp_addr_is_ipv4(&f->remote_addr);
        g_autoptr(GString) item = g_string_new(pcp_addr_to_string(&f->remote_addr, buf));

        g_string_append_c(item, '/');
        append_u64(item, v4 ? f->prefix_len - 96u : f->prefix_len);
        g_string_append_c(item, ' ');
        append_u64(item, f->remote_port);
        append_value(out, item->str, true);
        g_string_append_c(out, ';');
}

void pcpd_state_format_string(GString *out, const char *key, const char *value) {
        append_string(out, key, value);
}

void pcpd_state_format_header(GString *out, uint64_t next_id) {
        g_string_append(out, "[" STATE_GROUP "]\n");
        append_uint(out, "NextMappingId", next_id);
}

void pcpd_state_format_mapping(GString *out, const pcpd_state_mapping *m) {
        static const char hex[] = "0123456789abcdef";

        append_group(out, m->id);
        if (m->direct)
                append_bool(out, "Direct", true);
        if (m->has_nonce) {
                char text[2 * PCP_NONCE_LEN];

                for (size_t i = 0; i < PCP_NONCE_LEN; i++) {
                        text[2 * i] = hex[m->nonce[i] >> 4];
                        text[2 * i + 1] = hex[m->nonce[i] & 0xf];
                }
                g_string_append(out, "Nonce=");
                g_string_append_len(out, text, sizeof(text));
                g_string_append_c(out, '\n');
        }
        if (m->deleting) {
                append_bool(out, "Deleting", true);
                append_uint(out, "DeleteUntil", m->delete_until);
        }
        append_string(out, "Server", m->server);
        append_uint(out, "Opcode", m->opcode);
        append_uint(out, "Protocol", m->protocol);
        append_uint(out, "InternalPort", m->internal_port);
        append_uint(out, "SuggestedExternalPort", m->suggested_port);
        append_string(out, "Family", m->family == AF_INET6 ? "ipv6" : "ipv4");
        append_uint(out, "Lifetime", m->lifetime);
        append_string(out, "ExternalAddress", m->external_address);
        append_uint(out, "ExternalPort", m->external_port);
        if (m->remote_address != NULL) {
                append_string(out, "RemoteAddress", m->remote_address);
                append_uint(out, "RemotePort", m->remote_port);
        }
        if (m->has_suggested_address)
                append_addr(out, "SuggestedExternalAddress", &m->suggested_address);
        if (m->prefer_failure)
                append_bool(out, "PreferFailure", true);
        if (m->has_third_party)
                append_addr(out, "ThirdParty", &m->third_party);
        if (m->n_filters > 0) {
                g_string_append(out, "Filters=");
                for (uint8_t k = 0; k < m->n_filters; k++)
                        append_filter(out, &m->filters[k]);
                g_string_append_c(out, '\n');
        }
        append_bool(out, "Persistent", m->persistent);
        append_uint(out, "UID", m->uid);
        append_string(out, "AppId", m->app_id);
        append_string(out, "AppIdSource", m->app_id_source);
        append_string(out, "Description", m->description);
        append_uint(out, "Created", m->created);
        if (m->declared != NULL && m->declared[0] != '\0')
                append_string(out, "Declared", m->declared);
        if (m->upnp_interface != NULL) {
                append_string(out, "UpnpInterface", m->upnp_interface);
                append_addr(out, "UpnpIgd", &m->upnp_igd);
                append_uint(out, "UpnpExternalPort", m->upnp_external_port);
                if (m->upnp_permanent)
                        append_bool(out, "UpnpPermanent", true);
        }
}

void pcpd_state_format_record(GString *out, const pcpd_state_mapping *m) {
        pcpd_state_format_mapping(out, m);
        g_string_append(out, PCPD_STATE_JOURNAL_END);
}

void pcpd_state_format_removal(GString *out, uint64_t id) {
        append_group(out, id);
        g_string_append(out, "Removed=true\n" PCPD_STATE_JOURNAL_END);
}

/* ---- reading ---- */

static bool unhex(const char *s, uint8_t *out, size_t n) {
        if (s == NULL || strlen(s) != n * 2)
                return false;
        for (size_t i = 0; i < n; i++) {
                int hi = g_ascii_xdigit_value(s[2 * i]), lo = g_ascii_xdigit_value(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return false;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return true;
}

static bool filter_from_string(const char *s, pcp_filter *ret) {
        g_auto(GStrv) parts = g_strsplit_set(s, "/ ", 0);
        guint64 len, port;

        if (g_strv_length(parts) != 3 || !pcp_addr_from_string(parts[0], &ret->remote_addr) ||
            !g_ascii_string_to_unsigned(parts[1], 10, 0, pcp_addr_is_ipv4(&ret->remote_addr) ? 32 : 128, &len, NULL) ||
            !g_ascii_string_to_unsigned(parts[2], 10, 0, 65535, &port, NULL))
                return false;
        ret->prefix_len = (uint8_t) (pcp_addr_is_ipv4(&ret->remote_addr) ? 96 + len : len);
        ret->remote_port = (uint16_t) port;
        return true;
}

/* "Mapping <id>" -> id (> 0) */
static bool group_id(const char *group, uint64_t *ret) {
        guint64 id;

        if (!g_str_has_prefix(group, MAPPING_GROUP_PREFIX) ||
            !g_ascii_string_to_unsigned(group + strlen(MAPPING_GROUP_PREFIX), 10, 1, G_MAXUINT64 - 1, &id, NULL))
                return false;
        *ret = id;
        return true;
}

/* An unsigned key: absent is 0 (as the old files left some out), present must be a number
 * no larger than max. */
static bool get_uint(GKeyFile *kf, const char *g, const char *key, uint64_t max, uint64_t *ret) {
        g_autofree char *v = g_key_file_get_value(kf, g, key, NULL);
        guint64 x;

        if (v == NULL) {
                *ret = 0;
                return true;
        }
        if (!g_ascii_string_to_unsigned(g_strstrip(v), 10, 0, max, &x, NULL))
                return false;
        *ret = x;
        return true;
}

static bool get_bool(GKeyFile *kf, const char *g, const char *key, bool *ret) {
        g_autoptr(GError) error = NULL;
        gboolean b = g_key_file_get_boolean(kf, g, key, &error);

        if (error != NULL && !g_error_matches(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND))
                return false;
        *ret = error == NULL && b;
        return true;
}

/* A string key: absent is NULL; present must be valid (escapes, UTF-8). */
static bool get_string(GKeyFile *kf, const char *g, const char *key, char **ret) {
        g_autoptr(GError) error = NULL;

        *ret = g_key_file_get_string(kf, g, key, &error);
        return error == NULL || g_error_matches(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND);
}

static bool get_addr(GKeyFile *kf, const char *g, const char *key, bool *ret_has, struct in6_addr *ret) {
        g_autofree char *s = NULL;

        if (!get_string(kf, g, key, &s))
                return false;
        *ret_has = s != NULL;
        return s == NULL || pcp_addr_from_string(s, ret);
}

/* Group g of kf as a mapping; NULL when it is none. */
static pcpd_state_mapping *mapping_from_group(GKeyFile *kf, const char *g) {
        g_autoptr(pcpd_state_mapping) m = g_new0(pcpd_state_mapping, 1);
        g_autofree char *nonce = NULL, *family = NULL;
        g_auto(GStrv) filters = NULL;
        gsize n_filters = 0;
        uint64_t opcode, protocol, port, suggested, lifetime, ext_port, remote_port, uid, until, created, upnp_port;
        bool has_igd = false;

        if (!group_id(g, &m->id))
                return NULL;
        if (!get_bool(kf, g, "Direct", &m->direct) || !get_bool(kf, g, "Deleting", &m->deleting) ||
            !get_bool(kf, g, "PreferFailure", &m->prefer_failure) ||
            !get_bool(kf, g, "Persistent", &m->persistent) || !get_string(kf, g, "Nonce", &nonce) ||
            !get_string(kf, g, "Family", &family) || !get_string(kf, g, "Server", &m->server) ||
            !get_string(kf, g, "ExternalAddress", &m->external_address) ||
            !get_string(kf, g, "RemoteAddress", &m->remote_address) || !get_string(kf, g, "AppId", &m->app_id) ||
            !get_string(kf, g, "AppIdSource", &m->app_id_source) ||
            !get_string(kf, g, "Description", &m->description) || !get_string(kf, g, "Declared", &m->declared) ||
            !get_uint(kf, g, "Opcode", 255, &opcode) || !get_uint(kf, g, "Protocol", 255, &protocol) ||
            !get_uint(kf, g, "InternalPort", 65535, &port) ||
            !get_uint(kf, g, "SuggestedExternalPort", 65535, &suggested) ||
            !get_uint(kf, g, "Lifetime", UINT32_MAX, &lifetime) ||
            !get_uint(kf, g, "ExternalPort", 65535, &ext_port) ||
            !get_uint(kf, g, "RemotePort", 65535, &remote_port) || !get_uint(kf, g, "UID", UINT32_MAX - 1, &uid) ||
            !get_uint(kf, g, "DeleteUntil", G_MAXUINT64, &until) ||
            !get_uint(kf, g, "Created", G_MAXUINT64, &created) ||
            !get_addr(kf, g, "SuggestedExternalAddress", &m->has_suggested_address, &m->suggested_address) ||
            !get_addr(kf, g, "ThirdParty", &m->has_third_party, &m->third_party) ||
            !get_string(kf, g, "UpnpInterface", &m->upnp_interface) ||
            !get_addr(kf, g, "UpnpIgd", &has_igd, &m->upnp_igd) ||
            !get_uint(kf, g, "UpnpExternalPort", 65535, &upnp_port) ||
            !get_bool(kf, g, "UpnpPermanent", &m->upnp_permanent))
                return NULL;
        /* a UPnP part names its interface and its IGD, both or neither */
        if ((m->upnp_interface != NULL) != has_igd ||
            (m->upnp_interface != NULL && (m->upnp_interface[0] == '\0' || strlen(m->upnp_interface) >= 16)))
                return NULL;
        m->upnp_external_port = (uint16_t) upnp_port;

        m->has_nonce = nonce != NULL;
        if (m->has_nonce && !unhex(nonce, m->nonce, PCP_NONCE_LEN))
                return NULL;
        /* a mapping on a server has its nonce and its server (to renew or delete it); a
         * direct one has neither and is never being deleted upstream; a UPnP mapping being
         * deleted has its UPnP part and no nonce */
        if (m->direct ? m->has_nonce || m->deleting || m->upnp_interface != NULL
                      : (!m->has_nonce && !(m->deleting && m->upnp_interface != NULL)) || m->server == NULL ||
                                m->server[0] == '\0')
                return NULL;
        if (opcode != PCP_OPCODE_MAP && opcode != PCP_OPCODE_PEER)
                return NULL;
        if (family != NULL && strcmp(family, "ipv4") != 0 && strcmp(family, "ipv6") != 0)
                return NULL;
        if (opcode == PCP_OPCODE_PEER) {
                struct in6_addr remote;
                if (m->remote_address == NULL || !pcp_addr_from_string(m->remote_address, &remote))
                        return NULL;
        } else if (m->remote_address != NULL)
                return NULL;
        if (g_key_file_has_key(kf, g, "Filters", NULL)) {
                filters = g_key_file_get_string_list(kf, g, "Filters", &n_filters, NULL);
                if (filters == NULL || n_filters > PCP_MAX_FILTERS)
                        return NULL;
                if (n_filters > 0)
                        m->filters = g_new0(pcp_filter, n_filters);
                for (gsize k = 0; k < n_filters; k++)
                        if (!filter_from_string(filters[k], &m->filters[k]))
                                return NULL;
        }
        m->n_filters = (uint8_t) n_filters;
        m->opcode = (uint8_t) opcode;
        m->protocol = (uint8_t) protocol;
        m->family = g_strcmp0(family, "ipv6") == 0 ? AF_INET6 : AF_INET;
        m->internal_port = (uint16_t) port;
        m->suggested_port = (uint16_t) suggested;
        m->lifetime = (uint32_t) lifetime;
        m->external_port = (uint16_t) ext_port;
        /* what the writer leaves out where it means nothing is nothing here too, so that a
         * record written again reads back the same */
        m->remote_port = m->remote_address != NULL ? (uint16_t) remote_port : 0;
        m->uid = (uid_t) uid;
        m->delete_until = m->deleting ? until : 0;
        m->created = created;
        if (m->server == NULL)
                m->server = g_strdup("");
        if (m->external_address == NULL)
                m->external_address = g_strdup("");
        if (m->app_id == NULL)
                m->app_id = g_strdup("");
        if (m->app_id_source == NULL)
                m->app_id_source = g_strdup("none");
        if (m->description == NULL)
                m->description = g_strdup("");
        if (m->declared != NULL && m->declared[0] == '\0')
                g_clear_pointer(&m->declared, g_free);
        return g_steal_pointer(&m);
}

static void note_id(pcpd_state *st, uint64_t id) {
        if (id >= st->next_id)
                st->next_id = id + 1;
}

static void note_damaged(pcpd_state *st, const char *group) {
        guint n = st->damaged_names != NULL ? g_strv_length(st->damaged_names) : 0;

        st->damaged++;
        if (n >= MAX_DAMAGED_NAMES)
                return;
        st->damaged_names = g_renew(char *, st->damaged_names, n + 2);
        st->damaged_names[n] = g_strdup(group);
        st->damaged_names[n + 1] = NULL;
}

/* One part of a snapshot: the text from one group line to the next (or what comes before
 * the first). False when it is no key file text (then nothing of it was taken). */
static bool parse_snapshot_part(pcpd_state *st, const char *text, size_t len) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_auto(GStrv) groups = NULL;

        /* GKeyFile would read a line only up to a NUL, and take what comes before it */
        if (memchr(text, '\0', len) != NULL || !g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, NULL))
                return false;
        groups = g_key_file_get_groups(kf, NULL);
        for (size_t i = 0; groups[i] != NULL; i++) {
                pcpd_state_mapping *m;
                uint64_t id;

                if (strcmp(groups[i], STATE_GROUP) == 0) {
                        uint64_t next;
                        if (get_uint(kf, groups[i], "NextMappingId", G_MAXUINT64 - 1, &next) && next > st->next_id)
                                st->next_id = next;
                        continue;
                }
                /* an id that was used stays used, even when its group is damaged */
                if (group_id(groups[i], &id))
                        note_id(st, id);
                m = mapping_from_group(kf, groups[i]);
                if (m == NULL) {
                        note_damaged(st, groups[i]);
                        continue;
                }
                m = pack(st, m);
                g_hash_table_replace(st->mappings, &m->id, m);
        }
        return true;
}

/* The most of a damaged group's name kept for the log */
#define DAMAGED_NAME_MAX 64

/* Whether the line at text is a whole group line as GKeyFile reads one ('[' after any
 * blanks, the name, ']', nothing after it but blanks), the name not empty; *ret_name and
 * *ret_len: the name, in the text. */
static bool whole_group_line(const char *text, const char *end, const char **ret_name, size_t *ret_len) {
        const char *nl = memchr(text, '\n', (size_t) (end - text)), *eol = nl != NULL ? nl : end, *name, *close;

        while (text < eol && g_ascii_isspace(*text))
                text++;
        if (text == eol || *text != '[')
                return false;
        name = text + 1;
        close = memchr(name, ']', (size_t) (eol - name));
        if (close == NULL || close == name)
                return false;
        for (const char *p = close + 1; p < eol; p++)
                if (*p != ' ' && *p != '\t' && *p != '\r')
                        return false;
        *ret_name = name;
        *ret_len = (size_t) (close - name);
        return true;
}

/* The name of the group a part opens with a whole group line: a copy (at most
 * DAMAGED_NAME_MAX bytes, made UTF-8), or NULL. */
static char *group_line_name(const char *text, const char *end) {
        g_autofree char *copy = NULL;
        const char *name;
        size_t len;

        if (!whole_group_line(text, end, &name, &len))
                return NULL;
        copy = g_strndup(name, MIN(len, (size_t) DAMAGED_NAME_MAX));
        return g_utf8_make_valid(copy, -1);
}

#define NEXT_ID_LINE_MAX 128

/* [State] with a damaged line: its NextMappingId is still taken from a line that reads as
 * one (it only ever raises the next id, which the ids seen raise anyway). */
static void salvage_next_id(pcpd_state *st, const char *text, size_t len) {
        static const char key[] = "NextMappingId";
        const char *end = text + len;

        for (const char *line = text; line < end;) {
                const char *nl = memchr(line, '\n', (size_t) (end - line)), *eol = nl != NULL ? nl : end;

                /* (a longer line is no number of 64 bits) */
                if ((size_t) (eol - line) > strlen(key) && (size_t) (eol - line) <= NEXT_ID_LINE_MAX &&
                    memcmp(line, key, strlen(key)) == 0 && memchr(line, '\0', (size_t) (eol - line)) == NULL) {
                        g_autoptr(GKeyFile) kf = g_key_file_new();
                        g_autofree char *one = g_strdup_printf("[%s]\n%.*s\n", STATE_GROUP, (int) (eol - line), line);
                        uint64_t next;

                        if (g_key_file_load_from_data(kf, one, strlen(one), G_KEY_FILE_NONE, NULL) &&
                            get_uint(kf, STATE_GROUP, key, G_MAXUINT64 - 1, &next) && next > st->next_id)
                                st->next_id = next;
                }
                line = nl != NULL ? nl + 1 : end;
        }
}

/* A part GKeyFile does not take (a line that is no key, group or comment line; an invalid
 * key or group name; a NUL), or a group the next of which starts with a group line cut
 * short, is skipped, and only it. One that opens with a whole group line is that
 * group's: counted with the damaged groups (its id stays used; of [State], the next id
 * is still read: salvage_next_id()); anything else (lines before the first group, a group
 * line cut short) in st->damaged_text. */
static void skip_damaged_part(pcpd_state *st, const char *text, size_t len) {
        g_autofree char *name = group_line_name(text, text + len);
        uint64_t id;

        if (name == NULL) {
                st->damaged_text++;
                return;
        }
        if (strcmp(name, STATE_GROUP) == 0)
                salvage_next_id(st, text, len);
        else if (group_id(name, &id))
                note_id(st, id);
        note_damaged(st, name);
}

/* A line GKeyFile reads as a group's: '[' after any blanks. */
static bool is_group_line(const char *line, const char *end) {
        while (line < end && *line != '\n' && g_ascii_isspace(*line))
                line++;
        return line < end && *line == '[';
}

/*
 * A snapshot is read a group at a time, each with a GKeyFile of its own (as the journal's
 * records are): one GKeyFile of the whole file keeps every line, key and value of it in
 * lists and tables, ~4 KB a mapping; at 131,070 mappings pcpd's peak at start was 615 MB,
 * and 569 MB stayed resident after it was freed (the heap it left behind is not given
 * back). A group ends where the next group line starts (no value starts a line with '[':
 * line breaks in values are escaped). The result is the same as the whole file's but for a
 * group named twice, which the writer never does: the later one is taken whole, not merged
 * key by key; and for damage: where GKeyFile refuses the whole file for one bad line,
 * only the part holding it is skipped (skip_damaged_part()), unless no part at all is key
 * file text.
 */
int pcpd_state_parse_snapshot(pcpd_state *st, const char *data, size_t len) {
        const char *end = data + len, *part = data;
        bool any = false, skipped = false;

        g_hash_table_remove_all(st->mappings);
        st->next_id = 1;
        for (const char *line = data; line <= end;) {
                const char *nl = line < end ? memchr(line, '\n', (size_t) (end - line)) : NULL;

                /* a part ends where the next group line starts, or the text ends */
                if (line == end || (line > part && is_group_line(line, end))) {
                        const char *name;
                        size_t name_len;

                        /* a group followed by a group line cut short (damage that starts
                         * with '[') may be cut short itself: a record missing its last keys
                         * would read with their defaults (UID 0) */
                        if (line > part && whole_group_line(part, line, &name, &name_len) && line < end &&
                            !whole_group_line(line, end, &name, &name_len)) {
                                skip_damaged_part(st, part, (size_t) (line - part));
                                skipped = true;
                        } else if (line > part) {
                                if (parse_snapshot_part(st, part, (size_t) (line - part)))
                                        any = true;
                                else {
                                        skip_damaged_part(st, part, (size_t) (line - part));
                                        skipped = true;
                                }
                        }
                        part = line;
                }
                if (line == end)
                        break;
                line = nl != NULL ? nl + 1 : end;
        }
        if (skipped && !any) {
                /* no key file at all: nothing of it is taken */
                g_hash_table_remove_all(st->mappings);
                st->next_id = 1;
                st->damaged = 0;
                st->damaged_text = 0;
                g_clear_pointer(&st->damaged_names, g_strfreev);
                return -EBADMSG;
        }
        return 0;
}

/* One complete journal record (its text without the end line): true when valid. */
static bool replay_record(pcpd_state *st, const char *text, size_t len) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_auto(GStrv) groups = NULL;
        pcpd_state_mapping *m;
        bool removed;
        uint64_t id;

        /* GKeyFile would read a line only up to a NUL: such a record is damaged */
        if (memchr(text, '\0', len) != NULL || !g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, NULL))
                return false;
        groups = g_key_file_get_groups(kf, NULL);
        if (groups[0] == NULL || groups[1] != NULL || !group_id(groups[0], &id))
                return false;
        note_id(st, id);
        if (!get_bool(kf, groups[0], "Removed", &removed))
                return false;
        if (removed) {
                g_hash_table_remove(st->mappings, &id);
                return true;
        }
        m = mapping_from_group(kf, groups[0]);
        if (m == NULL)
                return false;
        m = pack(st, m);
        g_hash_table_replace(st->mappings, &m->id, m);
        return true;
}

void pcpd_state_replay_journal(pcpd_state *st, const char *data, size_t len) {
        const char *p = data, *end = data + len;
        static const char marker[] = "\n" PCPD_STATE_JOURNAL_END;

        while (p < end) {
                /* memmem(), not a string search: a NUL (a block of zeros a crash left)
                 * must not hide the records after it */
                const char *rec_end = memmem(p, (size_t) (end - p), marker, strlen(marker)), *start = p;

                if (rec_end == NULL) {
                        st->journal_torn += (size_t) (end - p); /* the last record, cut short */
                        break;
                }
                /* A write that failed half-way may have left a record without its end line
                 * in front of this one: this record starts at the chunk's last group line
                 * (no value starts a line with '[': line breaks in values are escaped). */
                for (const char *line = p; line <= rec_end;) {
                        const char *nl = memchr(line, '\n', (size_t) (rec_end - line) + 1);

                        if (*line == '[')
                                start = line;
                        if (nl == NULL)
                                break;
                        line = nl + 1;
                }
                st->journal_torn += (size_t) (start - p);
                if (replay_record(st, start, (size_t) (rec_end - start) + 1))
                        st->journal_records++;
                else
                        st->journal_damaged++;
                p = rec_end + strlen(marker);
        }
}

static gint compare_id(gconstpointer a, gconstpointer b) {
        const pcpd_state_mapping *x = *(pcpd_state_mapping *const *) a, *y = *(pcpd_state_mapping *const *) b;
        return x->id < y->id ? -1 : x->id > y->id;
}

GPtrArray *pcpd_state_sorted(pcpd_state *st) {
        GPtrArray *a = g_ptr_array_sized_new(g_hash_table_size(st->mappings));
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, st->mappings);
        while (g_hash_table_iter_next(&it, NULL, &v))
                g_ptr_array_add(a, v);
        g_ptr_array_sort(a, compare_id);
        return a;
}

/* ---- compaction ---- */

bool pcpd_state_compact_due(uint64_t snapshot_size, uint64_t journal_size) {
        if (journal_size == 0)
                return false;
        /* nothing here can overflow: both are file sizes */
        if (snapshot_size + journal_size <= PCPD_STATE_COMPACT_SMALL)
                return true;
        return journal_size >= MIN(MAX(snapshot_size, (uint64_t) PCPD_STATE_COMPACT_SMALL),
                                   (uint64_t) PCPD_STATE_COMPACT_MAX_JOURNAL);
}

/* a snapshot formatted into a file is written out in pieces of about this size: its
 * whole text (~300 octets a mapping, 40 MB for 131,070 of them) is never in memory */
#define FORMAT_BUFFER (64u * 1024)

static int write_all(int fd, const char *data, size_t len);

struct pcpd_state_formatter {
        GString *out;      /* all of it, or (with fd) what is not written yet */
        int fd;            /* -1: kept in out; else borrowed, written as it is formatted */
        int error;         /* with fd: the first failed write's -errno (nothing more is written) */
        uint64_t written;  /* with fd: the bytes written */
        uint64_t *ids;
        size_t n_ids, next;
};

static pcpd_state_formatter *formatter_new(int fd, uint64_t next_id, uint64_t *ids, size_t n_ids, size_t size) {
        pcpd_state_formatter *f = g_new0(pcpd_state_formatter, 1);

        f->out = g_string_sized_new(MAX(size, (size_t) 64));
        f->fd = fd;
        f->ids = ids;
        f->n_ids = n_ids;
        pcpd_state_format_header(f->out, next_id);
        return f;
}

pcpd_state_formatter *pcpd_state_formatter_new(uint64_t next_id, uint64_t *ids, size_t n_ids, size_t size_hint) {
        /* the whole size at once: a string doubling its way up to many MiB leaves the
         * halves it outgrew behind in the heap */
        return formatter_new(-1, next_id, ids, n_ids, size_hint);
}

pcpd_state_formatter *pcpd_state_formatter_new_fd(int fd, uint64_t next_id, uint64_t *ids, size_t n_ids) {
        g_return_val_if_fail(fd >= 0, NULL);
        /* one piece and the record that crosses its end */
        return formatter_new(fd, next_id, ids, n_ids, FORMAT_BUFFER + 4096);
}

/* With an fd: what is formatted goes out (the buffer is kept for the next piece). */
static void formatter_write(pcpd_state_formatter *f) {
        if (f->error == 0 && f->out->len > 0) {
                int r = write_all(f->fd, f->out->str, f->out->len);

                if (r < 0)
                        f->error = r;
                else
                        f->written += f->out->len;
        }
        g_string_truncate(f->out, 0);
}

bool pcpd_state_formatter_step(pcpd_state_formatter *f, size_t max, pcpd_state_lookup_func lookup, void *userdata) {
        for (size_t k = 0; k < max && f->next < f->n_ids && f->error == 0; k++) {
                pcpd_state_mapping rec;

                if (lookup(f->ids[f->next++], &rec, userdata))
                        pcpd_state_format_mapping(f->out, &rec);
                if (f->fd >= 0 && f->out->len >= FORMAT_BUFFER)
                        formatter_write(f);
        }
        /* a failed write ends it: the rest would be formatted for nothing */
        return f->next >= f->n_ids || f->error != 0;
}

bool pcpd_state_formatter_add(pcpd_state_formatter *f, const pcpd_state_mapping *rec) {
        if (f->error != 0)
                return false;
        pcpd_state_format_mapping(f->out, rec);
        if (f->fd >= 0 && f->out->len >= FORMAT_BUFFER)
                formatter_write(f);
        return f->error == 0;
}

GString *pcpd_state_formatter_finish(pcpd_state_formatter *f) {
        GString *out;

        g_return_val_if_fail(f->fd < 0, NULL);
        out = g_steal_pointer(&f->out);
        pcpd_state_formatter_free(f);
        return out;
}

int pcpd_state_formatter_end(pcpd_state_formatter *f, uint64_t *ret_size) {
        int r;

        g_return_val_if_fail(f->fd >= 0, -EINVAL);
        formatter_write(f);
        r = f->error;
        if (ret_size != NULL)
                *ret_size = f->written;
        pcpd_state_formatter_free(f);
        return r;
}

pcpd_state_formatter *pcpd_state_formatter_free(pcpd_state_formatter *f) {
        if (f == NULL)
                return NULL;
        if (f->out != NULL)
                g_string_free(f->out, TRUE);
        g_free(f->ids);
        g_free(f);
        return NULL;
}

/* ---- files ---- */

int pcpd_state_dir_open(const char *path, int *ret_fd, char **ret_error) {
        struct stat st;
        int fd, r;

        /* the directory named may be a symbolic link (StateDirectory= with DynamicUser=
         * makes one); what is checked and used is what it leads to, through this fd */
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                *ret_error = g_strdup_printf("Cannot open the state directory %s: %s.", path, g_strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                *ret_error = g_strdup_printf("Cannot inspect the state directory %s: %s.", path, g_strerror(-r));
                return r;
        }
        if (st.st_uid != geteuid()) {
                close(fd);
                *ret_error = g_strdup_printf("The state directory %s belongs to uid %u, not to uid %u that pcpd runs "
                                             "as: another account could change the mappings pcpd restores. Make "
                                             "it pcpd's (chown %u %s) or choose another one (--state-dir).",
                                             path, (unsigned) st.st_uid, (unsigned) geteuid(), (unsigned) geteuid(),
                                             path);
                return -EPERM;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                close(fd);
                *ret_error = g_strdup_printf("The state directory %s can be written by %s (mode %04o): another "
                                             "account could change the mappings pcpd restores. Take that away "
                                             "(chmod go-w %s).",
                                             path, (st.st_mode & S_IWOTH) ? "everyone" : "its group",
                                             (unsigned) (st.st_mode & 07777), path);
                return -EPERM;
        }
        *ret_fd = fd;
        return 0;
}

int pcpd_state_read_file(int dirfd, const char *name, char **ret_data, size_t *ret_len) {
        g_autofree char *data = NULL;
        struct stat st;
        size_t len = 0;
        int fd, r = 0;

        /* O_NONBLOCK: a FIFO put here must not hang the start */
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EBADFD;
        else if ((uint64_t) st.st_size > PCPD_STATE_MAX_FILE_SIZE)
                r = -EFBIG;
        if (r < 0) {
                close(fd);
                return r;
        }
        data = g_malloc((size_t) st.st_size + 1);
        while (len < (size_t) st.st_size) {
                ssize_t n = read(fd, data + len, (size_t) st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        close(fd);
                        return r;
                }
                if (n == 0)
                        break; /* it shrank meanwhile: what is there */
                len += (size_t) n;
        }
        close(fd);
        data[len] = '\0';
        *ret_data = g_steal_pointer(&data);
        *ret_len = len;
        return 0;
}

static int write_all(int fd, const char *data, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                data += n;
                len -= (size_t) n;
        }
        return 0;
}

/* name.tmp, the file that replaces name */
static char *tmp_name(const char *name) {
        return g_strconcat(name, ".tmp", NULL);
}

int pcpd_state_replace_begin(int dirfd, const char *name) {
        g_autofree char *tmp = tmp_name(name);
        int fd;

        /* a left-over from a daemon killed while writing (the directory is ours alone) */
        (void) unlinkat(dirfd, tmp, 0);
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        return fd < 0 ? -errno : fd;
}

void pcpd_state_replace_abort(int dirfd, const char *name) {
        g_autofree char *tmp = tmp_name(name);

        (void) unlinkat(dirfd, tmp, 0);
}

int pcpd_state_replace_commit(int dirfd, const char *name, int fd) {
        g_autofree char *tmp = tmp_name(name);
        int r = 0;

        /* on disk before the name points at it: else a power cut could leave an empty file
         * under the name, and the journal already emptied */
        if (fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return r;
        }
        /* the rename itself, before the caller empties the journal */
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;
}

int pcpd_state_write_atomic(int dirfd, const char *name, const char *data, size_t len) {
        int fd = pcpd_state_replace_begin(dirfd, name), r;

        if (fd < 0)
                return fd;
        r = write_all(fd, data, len);
        if (r < 0) {
                (void) close(fd);
                pcpd_state_replace_abort(dirfd, name);
                return r;
        }
        return pcpd_state_replace_commit(dirfd, name, fd);
}

/* A journal that does not end with a complete record (a power cut in the middle of a
 * write, or a run of zeros a crash left) is cut back to its last complete one: a record
 * appended after a torn one would start in the middle of its line. The end line is looked
 * for from the end backwards, however far back it is. */
static int journal_cut_torn(int fd, off_t size) {
        static const char marker[] = "\n" PCPD_STATE_JOURNAL_END;
        const size_t ml = strlen(marker);
        char buf[16384];
        off_t end = size;

        while (end > 0) {
                size_t n = (size_t) MIN((off_t) sizeof(buf), end);
                off_t start = end - (off_t) n;
                ssize_t k = pread(fd, buf, n, start);

                if (k < 0)
                        return errno == EBADF ? 0 : -errno; /* opened write-only on an odd file system */
                if ((size_t) k != n)
                        return 0; /* it changed under us: leave it to the reader */
                for (size_t i = n; i >= ml; i--)
                        if (memcmp(buf + i - ml, marker, ml) == 0) {
                                if (start + (off_t) i == size)
                                        return 0; /* ends with a complete record */
                                return ftruncate(fd, start + (off_t) i) < 0 ? -errno : 0;
                        }
                if (start == 0)
                        break;
                end = start + (off_t) ml - 1; /* an end line across the windows' border */
        }
        /* not one complete record */
        if (size > 0 && ftruncate(fd, 0) < 0)
                return -errno;
        return 0;
}

int pcpd_state_journal_open(int dirfd) {
        struct stat st;
        int fd, r = 0;

        /* what older versions used while switching journals (the journal was whole then);
         * a mappings.journal.next may hold records: loaded, and removed by the caller */
        (void) unlinkat(dirfd, PCPD_STATE_JOURNAL ".tmp", 0);
        fd = openat(dirfd, PCPD_STATE_JOURNAL, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                    0600);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EBADFD;
        else if (st.st_nlink != 1)
                r = -EMLINK; /* a hard link to a file elsewhere: never write through it */
        else
                r = journal_cut_torn(fd, st.st_size);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

int pcpd_state_journal_next_open(int dirfd) {
        int fd;

        /* a left-over of a daemon killed between making it and renaming it */
        (void) unlinkat(dirfd, PCPD_STATE_JOURNAL_NEXT, 0);
        fd = openat(dirfd, PCPD_STATE_JOURNAL_NEXT,
                    O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        return fd < 0 ? -errno : fd;
}

int pcpd_state_journal_copy_tail(int fd, off_t from, int next_fd) {
        g_autofree char *tail = NULL;
        struct stat st;
        size_t len, done = 0;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (from < 0 || from > st.st_size)
                return -EINVAL;
        len = (size_t) (st.st_size - from);
        tail = g_malloc(len + 1);
        while (done < len) {
                ssize_t k = pread(fd, tail + done, len - done, from + (off_t) done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EIO; /* shorter than fstat said: nobody else writes it */
                done += (size_t) k;
        }
        return write_all(next_fd, tail, len);
}

int pcpd_state_journal_exchange(int dirfd) {
        if (renameat2(dirfd, PCPD_STATE_JOURNAL_NEXT, dirfd, PCPD_STATE_JOURNAL, RENAME_EXCHANGE) < 0)
                return errno == ENOSYS || errno == EOPNOTSUPP ? -EINVAL : -errno;
        return 0;
}

int pcpd_state_journal_switch(int dirfd, int fd, off_t from, int next_fd) {
        int r = pcpd_state_journal_copy_tail(fd, from, next_fd);

        if (r < 0)
                return r;
        /* Exchanged with the journal, then the old one (now under the .next name) unlinked,
         * rather than renamed over it: ext4 (auto_da_alloc, its default) writes out the
         * delayed data of a file renamed over another inside the rename, and under the
         * kernel's write-back throttling that held pcpd's main loop for 45-100+ ms in the
         * lab while other processes wrote (renameat -> ext4_rename ->
         * __filemap_fdatawrite_range -> wbt_wait); an exchange does no such write-out. A
         * crash between the two leaves the old journal as mappings.journal.next, removed at
         * the next start like any left-over (its records are in the snapshot). Where the
         * exchange is not supported (EINVAL), or the journal's name is gone (ENOENT), a
         * plain rename. */
        r = pcpd_state_journal_exchange(dirfd);
        if (r >= 0) {
                (void) unlinkat(dirfd, PCPD_STATE_JOURNAL_NEXT, 0);
                return 0;
        }
        if (r != -EINVAL && r != -ENOENT)
                return r;
        if (renameat(dirfd, PCPD_STATE_JOURNAL_NEXT, dirfd, PCPD_STATE_JOURNAL) < 0)
                return -errno;
        return 0;
}

int pcpd_state_journal_keep_tail(int dirfd, int fd, off_t from) {
        int nfd = pcpd_state_journal_next_open(dirfd), r;

        if (nfd < 0)
                return nfd;
        r = pcpd_state_journal_switch(dirfd, fd, from, nfd);
        if (r < 0) {
                (void) unlinkat(dirfd, PCPD_STATE_JOURNAL_NEXT, 0);
                close(nfd);
                return r;
        }
        return nfd;
}

int pcpd_state_journal_append_at(int fd, off_t size, const char *data, size_t len) {
        struct stat st;
        int r;

        if (size < 0) {
                if (fstat(fd, &st) < 0)
                        return -errno;
                size = st.st_size;
        }
        r = write_all(fd, data, len);
        if (r < 0)
                /* a record cut short must not glue itself to the next one */
                (void) ftruncate(fd, size);
        return r;
}

int pcpd_state_journal_append(int fd, const char *data, size_t len) {
        return pcpd_state_journal_append_at(fd, -1, data, len);
}

static int load_error(GError **error, int r, const char *path, const char *name) {
        if (r == -ELOOP)
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_LOOP,
                            "The state file %s/%s is a symbolic link; pcpd never follows one in its state directory. "
                            "Remove it (the mappings it should hold are lost) and start pcpd again.",
                            path, name);
        else if (r == -EBADFD || r == -EMLINK)
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                            "The state file %s/%s is not a regular file of its own; pcpd does not use it. Remove it "
                            "and start pcpd again.",
                            path, name);
        else
                g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r),
                            "Cannot read the state file %s/%s: %s. pcpd does not start without the mappings it holds "
                            "upstream; fix or remove the file.",
                            path, name, g_strerror(-r));
        return r;
}

int pcpd_state_load(int dirfd, const char *path, pcpd_state **ret, GError **error) {
        g_autoptr(pcpd_state) st = pcpd_state_new();
        g_autofree char *snapshot = NULL, *journal = NULL, *next = NULL;
        size_t len = 0, jlen = 0, nlen = 0;
        int r;

        r = pcpd_state_read_file(dirfd, PCPD_STATE_FILE, &snapshot, &len);
        if (r < 0 && r != -ENOENT)
                return load_error(error, r, path, PCPD_STATE_FILE);
        /* the journal first too: a symbolic link there refuses the start before anything moves */
        r = pcpd_state_read_file(dirfd, PCPD_STATE_JOURNAL, &journal, &jlen);
        if (r < 0 && r != -ENOENT)
                return load_error(error, r, path, PCPD_STATE_JOURNAL);
        r = pcpd_state_read_file(dirfd, PCPD_STATE_JOURNAL_NEXT, &next, &nlen);
        if (r < 0 && r != -ENOENT)
                return load_error(error, r, path, PCPD_STATE_JOURNAL_NEXT);

        if (snapshot != NULL && pcpd_state_parse_snapshot(st, snapshot, len) < 0) {
                /* keep it for the admin; the journal alone is what is left */
                g_warning("Cannot read saved mappings from %s/%s: it is no key file; moved aside to %s/%s",
                          path, PCPD_STATE_FILE, path, PCPD_STATE_DAMAGED);
                if (renameat(dirfd, PCPD_STATE_FILE, dirfd, PCPD_STATE_DAMAGED) < 0)
                        g_warning("Cannot rename %s/%s: %m", path, PCPD_STATE_FILE);
        }
        for (unsigned i = 0; st->damaged_names != NULL && st->damaged_names[i] != NULL; i++)
                g_warning("%s/%s: [%s] is damaged; skipped", path, PCPD_STATE_FILE, st->damaged_names[i]);
        if (st->damaged > MAX_DAMAGED_NAMES)
                g_warning("%s/%s: %u more damaged groups skipped", path, PCPD_STATE_FILE,
                          st->damaged - MAX_DAMAGED_NAMES);
        if (st->damaged_text > 0)
                g_warning("%s/%s: %u damaged part(s) outside any group (text before the first group, a group "
                          "line cut short) skipped",
                          path, PCPD_STATE_FILE, st->damaged_text);
        /* mappings.journal.next first: empty, a copy of records the journal has too, or the
         * old journal, whose records come before the journal's (pcpd_state_load() in
         * pcpd-state.h) */
        if (next != NULL)
                pcpd_state_replay_journal(st, next, nlen);
        if (journal != NULL || next != NULL) {
                if (journal != NULL)
                        pcpd_state_replay_journal(st, journal, jlen);
                if (st->journal_damaged > 0 || st->journal_torn > 0)
                        g_warning("Mapping journal %s/%s: %u damaged record(s) and %zu byte(s) of a torn last record "
                                  "ignored",
                                  path, PCPD_STATE_JOURNAL, st->journal_damaged, st->journal_torn);
                if (st->journal_records > 0)
                        g_message("Replayed %u change(s) from the mapping journal", st->journal_records);
        }
        *ret = g_steal_pointer(&st);
        return 0;
}

/* ---- the snapshot writer ---- */

/* One thread for the writer's life, waiting for the next snapshot between writes. A
 * thread per write had to be joined on the main loop when its write was told done, and a
 * join waits for the thread to have exited: on a busy machine that took hundreds of ms
 * (seen: 300 ms) during which no PCP retransmission left. Jobs and results pass under
 * lock (pthread's: helgrind understands them); the eventfd only wakes the main context. */
struct pcpd_state_writer {
        int dirfd;
        char *name;
        pcpd_state_write_func write;
        void *write_data;
        pcpd_state_written_func done;
        void *userdata;
        int event_fd;  /* the thread's "done": readable on the main context */
        GSource *watch; /* on the thread-default main context of pcpd_state_writer_new() */
        GThread *thread; /* started with the first write, joined by pcpd_state_writer_free() */
        bool in_flight;  /* main thread's: a write was started and not told yet */
        int fd;          /* the write in flight's file (the thread's until finished) */
        bool prepare_journal; /* main thread's, read by the thread under lock with a job */
        bool prepare_tmp;     /* the same, for name.tmp */
        int taken_journal;    /* main thread's: the next journal, while done runs */
        bool taken_exchanged; /* ... exchanged with the journal by the thread */
        int taken_tmp;        /* main thread's: the next name.tmp, while done runs */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* under lock */
        bool job, finished, quit;
        bool job_journal;  /* the job in flight makes the next journal too */
        bool job_tmp;      /* ... and the next name.tmp */
        bool unlink_next;  /* mappings.journal.next goes, before the fds in closing */
        int result;
        int next_journal; /* its fd, or a negative errno */
        bool next_exchanged;
        int next_tmp;     /* the next name.tmp's fd, or a negative errno */
        GArray *closing;  /* fds (int) the thread closes */
};

static int replace_commit(int dirfd, const char *name, int fd, void *userdata) {
        (void) userdata;
        return pcpd_state_replace_commit(dirfd, name, fd);
}

static gpointer writer_thread(gpointer data) {
        pcpd_state_writer *w = data;
        uint64_t one = 1;
        ssize_t k;

        for (;;) {
                GArray *closing = NULL;
                bool job, journal, tmp, unlink_next, exchanged = false;
                int fd, r = 0, next = -ENOENT, next_tmp = -ENOENT;

                pthread_mutex_lock(&w->lock);
                while (!w->job && !w->quit && w->closing->len == 0 && !w->unlink_next)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->closing->len > 0) {
                        closing = w->closing;
                        w->closing = g_array_new(FALSE, FALSE, sizeof(int));
                }
                job = w->job;
                journal = w->job_journal;
                tmp = w->job_tmp;
                unlink_next = w->unlink_next;
                w->unlink_next = false;
                w->job = false;
                fd = w->fd;
                pthread_mutex_unlock(&w->lock);

                /* asked for before the job: the old journal's name, once the main thread has
                 * copied what the new one lacks */
                if (unlink_next)
                        (void) unlinkat(w->dirfd, PCPD_STATE_JOURNAL_NEXT, 0);
                /* given before the job: an old journal, whose blocks are freed here */
                if (closing != NULL) {
                        for (guint i = 0; i < closing->len; i++)
                                (void) close(g_array_index(closing, int, i));
                        g_array_free(closing, TRUE);
                }
                if (!job) {
                        if (closing != NULL || unlink_next)
                                continue;
                        return NULL; /* quit, and nothing left to close */
                }

                if (fd >= 0)
                        r = w->write(w->dirfd, w->name, fd, w->write_data);
                if (fd >= 0 && r >= 0 && journal) {
                        /* the new journal takes the name at once; the main thread appends to
                         * the old one (now mappings.journal.next) until it has copied its
                         * tail: a start meanwhile replays the old one, then the new */
                        next = pcpd_state_journal_next_open(w->dirfd);
                        exchanged = next >= 0 && pcpd_state_journal_exchange(w->dirfd) >= 0;
                }
                if (tmp)
                        next_tmp = pcpd_state_replace_begin(w->dirfd, w->name);

                pthread_mutex_lock(&w->lock);
                w->result = r;
                w->next_journal = next;
                w->next_exchanged = exchanged;
                w->next_tmp = next_tmp;
                w->finished = true;
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
                /* an eventfd counter cannot overflow from one write per job; the main loop
                 * wakes (w outlives the thread: pcpd_state_writer_free() joins it) */
                k = write(w->event_fd, &one, sizeof(one));
                (void) k;
        }
}

/* A file the thread made and done did not take (*fd, then -ENOENT): closed on the thread
 * while it runs, here when it is being freed (!tell). */
static void writer_drop(pcpd_state_writer *w, int *fd, bool tell) {
        if (*fd >= 0) {
                if (tell)
                        pcpd_state_writer_close(w, *fd);
                else
                        close(*fd);
        }
        *fd = -ENOENT;
}

/* The write in flight has finished (lock held by the caller, finished seen): it is over,
 * and the caller is told unless !tell. */
static void writer_finish(pcpd_state_writer *w, bool tell) {
        int r = w->result;

        w->finished = false;
        w->taken_journal = w->next_journal;
        w->taken_exchanged = w->next_exchanged;
        w->taken_tmp = w->next_tmp;
        w->next_journal = -ENOENT;
        w->next_tmp = -ENOENT;
        pthread_mutex_unlock(&w->lock);
        w->in_flight = false;
        w->fd = -1;
        if (tell)
                w->done(r, w->userdata);
        /* not taken: an empty file, left for the next one to replace (a journal exchanged
         * and not taken leaves the old one as mappings.journal.next, which a start replays
         * first) */
        writer_drop(w, &w->taken_journal, tell);
        writer_drop(w, &w->taken_tmp, tell);
}

/* Blocks until the write in flight has finished, and ends it. */
static void writer_wait_finished(pcpd_state_writer *w, bool tell) {
        pthread_mutex_lock(&w->lock);
        while (!w->finished)
                pthread_cond_wait(&w->cond, &w->lock);
        writer_finish(w, tell);
}

static gboolean on_writer_event(int fd, GIOCondition cond, gpointer data) {
        pcpd_state_writer *w = data;
        uint64_t n;
        ssize_t k;

        (void) cond;
        k = read(fd, &n, sizeof(n)); /* nonblocking; a wakeup for a write already told is spent */
        (void) k;
        if (!w->in_flight)
                return G_SOURCE_CONTINUE;
        pthread_mutex_lock(&w->lock);
        if (w->finished)
                writer_finish(w, true);
        else
                pthread_mutex_unlock(&w->lock);
        return G_SOURCE_CONTINUE;
}

int pcpd_state_writer_new(int dirfd, const char *name, pcpd_state_write_func write, void *write_data,
                          pcpd_state_written_func done, void *userdata, pcpd_state_writer **ret) {
        pcpd_state_writer *w;
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

        if (efd < 0)
                return -errno;
        w = g_new0(pcpd_state_writer, 1);
        w->dirfd = dirfd;
        w->name = g_strdup(name);
        w->write = write != NULL ? write : replace_commit;
        w->fd = -1;
        w->write_data = write_data;
        w->done = done;
        w->userdata = userdata;
        w->event_fd = efd;
        w->taken_journal = -ENOENT;
        w->next_journal = -ENOENT;
        w->taken_tmp = -ENOENT;
        w->next_tmp = -ENOENT;
        w->closing = g_array_new(FALSE, FALSE, sizeof(int));
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        w->watch = g_unix_fd_source_new(efd, G_IO_IN);
        g_source_set_callback(w->watch, G_SOURCE_FUNC(on_writer_event), w, NULL);
        g_source_set_name(w->watch, "pcpd-save");
        g_source_attach(w->watch, g_main_context_get_thread_default());
        *ret = w;
        return 0;
}

bool pcpd_state_writer_busy(const pcpd_state_writer *w) {
        return w->in_flight;
}

int pcpd_state_writer_start(pcpd_state_writer *w, int fd) {
        if (w->in_flight)
                return -EBUSY;
        if (w->thread == NULL) {
                w->thread = g_thread_try_new("pcpd-save", writer_thread, w, NULL);
                if (w->thread == NULL)
                        return -EAGAIN;
        }
        w->in_flight = true;
        pthread_mutex_lock(&w->lock);
        w->fd = fd;
        w->job = true;
        w->job_journal = w->prepare_journal;
        w->job_tmp = w->prepare_tmp;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

void pcpd_state_writer_prepare_journal(pcpd_state_writer *w) {
        w->prepare_journal = true;
}

void pcpd_state_writer_prepare_tmp(pcpd_state_writer *w) {
        w->prepare_tmp = true;
}

int pcpd_state_writer_take_journal(pcpd_state_writer *w, bool *ret_exchanged) {
        int fd = w->taken_journal;

        if (ret_exchanged != NULL)
                *ret_exchanged = fd >= 0 && w->taken_exchanged;
        w->taken_journal = -ENOENT;
        return fd;
}

int pcpd_state_writer_take_tmp(pcpd_state_writer *w) {
        int fd = w->taken_tmp;

        w->taken_tmp = -ENOENT;
        return fd;
}

void pcpd_state_writer_unlink_next(pcpd_state_writer *w) {
        if (w->thread == NULL) {
                (void) unlinkat(w->dirfd, PCPD_STATE_JOURNAL_NEXT, 0);
                return;
        }
        pthread_mutex_lock(&w->lock);
        w->unlink_next = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

void pcpd_state_writer_close(pcpd_state_writer *w, int fd) {
        if (fd < 0)
                return;
        if (w->thread == NULL) {
                close(fd);
                return;
        }
        pthread_mutex_lock(&w->lock);
        g_array_append_val(w->closing, fd);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

bool pcpd_state_writer_wait(pcpd_state_writer *w) {
        if (!w->in_flight)
                return false;
        writer_wait_finished(w, true);
        return true;
}

pcpd_state_writer *pcpd_state_writer_free(pcpd_state_writer *w) {
        if (w == NULL)
                return NULL;
        if (w->in_flight)
                writer_wait_finished(w, false);
        if (w->thread != NULL) {
                pthread_mutex_lock(&w->lock);
                w->quit = true;
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
                g_thread_join(w->thread);
        }
        /* the thread closed what it was given before it ended */
        for (guint i = 0; i < w->closing->len; i++)
                close(g_array_index(w->closing, int, i));
        g_array_free(w->closing, TRUE);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        g_source_destroy(w->watch);
        g_source_unref(w->watch);
        close(w->event_fd);
        g_free(w->name);
        g_free(w);
        return NULL;
}
