/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Output helpers of pcpctl: aligned tables, a small JSON writer, and text that is safe
 * to print on a terminal. Nothing here talks to the bus. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PCPCTL_JSON_MAX_DEPTH 32

/* Strings from the bus are untrusted (a description is chosen by any app): anything
 * printed for a human goes through this. Returns a new string in which control
 * characters and invalid UTF-8 are shown as \xNN; NULL on OOM. NULL input gives "". */
char *text_sanitize(const char *s);

/* Display width of a UTF-8 string in terminal cells (for alignment). */
size_t text_width(const char *s);

/* true when s is valid UTF-8 (overlong forms and surrogates are not). */
bool text_is_valid_utf8(const char *s);

/* "1d 2h", "59min 3s", "42s", "0s"; buf must hold at least 64 bytes. */
const char *format_timespan(char *buf, size_t size, uint64_t usec);

typedef struct Table Table;

/* A table of n_columns columns; headers are copied. */
Table *table_new(size_t n_columns, const char *const *headers);
Table *table_free(Table *t);
/* Adds a row of exactly n_columns cells (NULL cells print as "-"); cells are sanitized
 * and copied. Returns 0 or -ENOMEM/-E2BIG. */
int table_add_row(Table *t, const char *const *cells);
size_t table_n_rows(const Table *t);
/* Columns are padded to their widest cell, the last one is not. */
int table_print(const Table *t, FILE *f, bool legend);

static inline void table_freep(Table **t) {
        table_free(*t);
}

typedef enum JsonMode {
        JSON_SHORT,
        JSON_PRETTY,
} JsonMode;

typedef struct Json {
        FILE *f;
        JsonMode mode;
        unsigned depth;
        bool need_comma[PCPCTL_JSON_MAX_DEPTH];
        bool after_key;
        bool overflow;
} Json;

void json_init(Json *j, FILE *f, JsonMode mode);
void json_begin_object(Json *j);
void json_end_object(Json *j);
void json_begin_array(Json *j);
void json_end_array(Json *j);
void json_key(Json *j, const char *key);
void json_string(Json *j, const char *s);
void json_uint(Json *j, uint64_t v);
void json_int(Json *j, int64_t v);
void json_double(Json *j, double v);
void json_bool(Json *j, bool b);
void json_null(Json *j);
/* Ends the document with a newline; returns -EIO if writing failed, -E2BIG if nesting
 * was too deep. */
int json_finish(Json *j);
