/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpctl-output.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define TABLE_MAX_CELLS (1024u * 1024u)

/* Length of the valid UTF-8 sequence at s (1-4), 0 if s does not start one. Stores the
 * code point. */
static size_t utf8_decode(const unsigned char *s, uint32_t *ret) {
        uint32_t c;
        size_t len;

        if (s[0] < 0x80) {
                *ret = s[0];
                return 1;
        }
        if ((s[0] & 0xe0) == 0xc0) {
                len = 2;
                c = s[0] & 0x1f;
        } else if ((s[0] & 0xf0) == 0xe0) {
                len = 3;
                c = s[0] & 0x0f;
        } else if ((s[0] & 0xf8) == 0xf0) {
                len = 4;
                c = s[0] & 0x07;
        } else
                return 0;

        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }

        /* overlong forms, surrogates, beyond Unicode */
        if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
            (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
                return 0;

        *ret = c;
        return len;
}

bool text_is_valid_utf8(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        while (*p != '\0') {
                uint32_t c;
                size_t n = utf8_decode(p, &c);

                if (n == 0)
                        return false;
                p += n;
        }
        return true;
}

char *text_sanitize(const char *s) {
        const unsigned char *p;
        char *buf, *q;

        if (s == NULL)
                s = "";

        /* worst case: every byte becomes \xNN */
        if (strlen(s) > (SIZE_MAX - 1) / 4)
                return NULL;
        buf = malloc(strlen(s) * 4 + 1);
        if (buf == NULL)
                return NULL;

        q = buf;
        p = (const unsigned char *) s;
        while (*p != '\0') {
                uint32_t c;
                size_t n = utf8_decode(p, &c);

                /* C0 and C1 controls and DEL would move the cursor or worse */
                if (n == 0 || c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)) {
                        q += sprintf(q, "\\x%02x", *p);
                        p++;
                        continue;
                }
                memcpy(q, p, n);
                q += n;
                p += n;
        }
        *q = '\0';
        return buf;
}

size_t text_width(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        size_t width = 0;

        while (*p != '\0') {
                uint32_t c;
                size_t n = utf8_decode(p, &c);
                int w;

                if (n == 0) {
                        width++;
                        p++;
                        continue;
                }
                w = wcwidth((wchar_t) c);
                width += w < 0 ? 1 : (size_t) w;
                p += n;
        }
        return width;
}

const char *format_timespan(char *buf, size_t size, uint64_t usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                {"d", UINT64_C(86400000000)},
                {"h", UINT64_C(3600000000)},
                {"min", UINT64_C(60000000)},
                {"s", UINT64_C(1000000)},
        };
        size_t used = 0;
        unsigned shown = 0;

        if (size == 0)
                return buf;
        buf[0] = '\0';

        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && shown < 2; i++) {
                uint64_t n = usec / units[i].usec;
                int k;

                if (n == 0 && shown == 0)
                        continue;
                usec -= n * units[i].usec;
                if (n == 0) /* "1h" rather than "1h 0min" */
                        break;
                k = snprintf(buf + used, size - used, "%s%" PRIu64 "%s", shown > 0 ? " " : "", n,
                             units[i].suffix);
                if (k < 0 || (size_t) k >= size - used)
                        break;
                used += (size_t) k;
                shown++;
        }
        if (shown == 0)
                snprintf(buf, size, "0s");
        return buf;
}

struct Table {
        size_t n_columns;
        size_t n_cells; /* headers included */
        size_t allocated;
        char **cells;
};

Table *table_new(size_t n_columns, const char *const *headers) {
        Table *t;

        if (n_columns == 0)
                return NULL;

        t = calloc(1, sizeof(Table));
        if (t == NULL)
                return NULL;
        t->n_columns = n_columns;
        if (table_add_row(t, headers) < 0)
                return table_free(t);
        return t;
}

Table *table_free(Table *t) {
        if (t == NULL)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_add_row(Table *t, const char *const *cells) {
        if (t->n_cells + t->n_columns > TABLE_MAX_CELLS)
                return -E2BIG;

        if (t->n_cells + t->n_columns > t->allocated) {
                size_t n = (t->n_cells + t->n_columns) * 2;
                char **c = realloc(t->cells, n * sizeof(char *));

                if (c == NULL)
                        return -ENOMEM;
                t->cells = c;
                t->allocated = n;
        }

        for (size_t i = 0; i < t->n_columns; i++) {
                char *s = text_sanitize(cells[i] != NULL && cells[i][0] != '\0' ? cells[i] : "-");

                if (s == NULL) {
                        while (i > 0)
                                free(t->cells[t->n_cells + --i]);
                        return -ENOMEM;
                }
                t->cells[t->n_cells + i] = s;
        }
        t->n_cells += t->n_columns;
        return 0;
}

size_t table_n_rows(const Table *t) {
        return t->n_cells / t->n_columns - 1;
}

int table_print(const Table *t, FILE *f, bool legend) {
        size_t *widths;

        widths = calloc(t->n_columns, sizeof(size_t));
        if (widths == NULL)
                return -ENOMEM;

        for (size_t i = legend ? 0 : t->n_columns; i < t->n_cells; i++) {
                size_t w = text_width(t->cells[i]);

                if (w > widths[i % t->n_columns])
                        widths[i % t->n_columns] = w;
        }

        for (size_t i = legend ? 0 : t->n_columns; i < t->n_cells; i++) {
                size_t column = i % t->n_columns;

                fputs(t->cells[i], f);
                if (column + 1 == t->n_columns)
                        fputc('\n', f);
                else
                        fprintf(f, "%*s", (int) (widths[column] - text_width(t->cells[i]) + 1), "");
        }

        free(widths);
        return ferror(f) ? -EIO : 0;
}

void json_init(Json *j, FILE *f, JsonMode mode) {
        *j = (Json){
                .f = f,
                .mode = mode,
        };
}

static void json_newline(Json *j) {
        if (j->mode != JSON_PRETTY)
                return;
        fputc('\n', j->f);
        for (unsigned i = 0; i < j->depth; i++)
                fputs("  ", j->f);
}

/* Before a value or a key: the comma and the indentation. */
static void json_prefix(Json *j) {
        if (j->after_key) {
                j->after_key = false;
                return;
        }
        if (j->depth == 0)
                return;
        if (j->depth <= PCPCTL_JSON_MAX_DEPTH && j->need_comma[j->depth - 1])
                fputc(',', j->f);
        if (j->depth <= PCPCTL_JSON_MAX_DEPTH)
                j->need_comma[j->depth - 1] = true;
        json_newline(j);
}

static void json_open(Json *j, char c) {
        json_prefix(j);
        fputc(c, j->f);
        if (j->depth >= PCPCTL_JSON_MAX_DEPTH)
                j->overflow = true;
        else
                j->need_comma[j->depth] = false;
        j->depth++;
}

static void json_close(Json *j, char c) {
        bool had_members = j->depth <= PCPCTL_JSON_MAX_DEPTH && j->need_comma[j->depth - 1];

        if (j->depth == 0)
                return;
        j->depth--;
        if (had_members)
                json_newline(j);
        fputc(c, j->f);
}

void json_begin_object(Json *j) {
        json_open(j, '{');
}

void json_end_object(Json *j) {
        json_close(j, '}');
}

void json_begin_array(Json *j) {
        json_open(j, '[');
}

void json_end_array(Json *j) {
        json_close(j, ']');
}

static void json_write_string(Json *j, const char *s) {
        fputc('"', j->f);
        for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p != '\0'; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", j->f);
                        break;
                case '\\':
                        fputs("\\\\", j->f);
                        break;
                case '\n':
                        fputs("\\n", j->f);
                        break;
                case '\t':
                        fputs("\\t", j->f);
                        break;
                case '\r':
                        fputs("\\r", j->f);
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(j->f, "\\u%04x", *p);
                        else
                                fputc(*p, j->f);
                }
        }
        fputc('"', j->f);
}

void json_key(Json *j, const char *key) {
        json_prefix(j);
        json_write_string(j, key);
        fputs(j->mode == JSON_PRETTY ? ": " : ":", j->f);
        j->after_key = true;
}

void json_string(Json *j, const char *s) {
        json_prefix(j);
        json_write_string(j, s);
}

void json_uint(Json *j, uint64_t v) {
        json_prefix(j);
        fprintf(j->f, "%" PRIu64, v);
}

void json_int(Json *j, int64_t v) {
        json_prefix(j);
        fprintf(j->f, "%" PRIi64, v);
}

void json_double(Json *j, double v) {
        json_prefix(j);
        if (isfinite(v))
                fprintf(j->f, "%.17g", v);
        else
                fputs("null", j->f);
}

void json_bool(Json *j, bool b) {
        json_prefix(j);
        fputs(b ? "true" : "false", j->f);
}

void json_null(Json *j) {
        json_prefix(j);
        fputs("null", j->f);
}

int json_finish(Json *j) {
        fputc('\n', j->f);
        if (j->overflow)
                return -E2BIG;
        return ferror(j->f) ? -EIO : 0;
}
