/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What pcpctl prints for a person: text that is safe on a terminal, colours and
 * attributes decided the way systemd's tools decide them, the terminal's width, tables
 * that fit it, and times. Nothing here talks to the bus. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Strings from the bus are untrusted (a description is chosen by any app): anything
 * printed for a human goes through this. Returns a new string in which control
 * characters and invalid UTF-8 are shown as \xNN; NULL on OOM. NULL input gives "". */
char *text_sanitize(const char *s);

/* Display width of a UTF-8 string in terminal cells; ANSI escape sequences count 0. */
size_t text_width(const char *s);

/* true when s is valid UTF-8 (overlong forms and surrogates are not). */
bool text_is_valid_utf8(const char *s);

/* s cut to at most width cells with an ellipsis ("…" in a UTF-8 locale, else "...") at
 * the end; a copy of s when it fits. NULL on OOM. */
char *text_ellipsize(const char *s, size_t width);

/* ---- the terminal (decided once, before a pager takes stdout over) ---- */

/* stdout and stderr are terminals */
bool on_tty(void);
/* $COLUMNS, else the terminal's width, else 80 */
size_t columns(void);
/* The width a table must fit: the terminal's when stdout is one, unlimited when it is
 * not (a script reads) or with full. */
size_t output_width(bool full);

/* Colours like systemd's tools: $SYSTEMD_COLORS (a boolean, "16", "256" or "24bit")
 * first, then $NO_COLOR (set at all: off), then off unless stdout is a terminal whose
 * $TERM is not "dumb". */
bool colors_enabled(void);
/* underlining, except on the Linux console, which cannot */
bool underline_enabled(void);

/* Escape sequences, or "" when colours are off. */
const char *ansi_normal(void);
const char *ansi_highlight(void);
const char *ansi_underline(void);
const char *ansi_grey(void);
const char *ansi_green(void);
const char *ansi_red(void);
const char *ansi_yellow(void);
const char *ansi_highlight_green(void);
const char *ansi_highlight_red(void);
const char *ansi_highlight_yellow(void);

/* ---- times ---- */

/* "1d 2h", "59min 3s", "42s", "0s"; buf must hold at least 64 bytes. */
const char *format_timespan(char *buf, size_t size, uint64_t usec);
/* usec (µs since the epoch) relative to now: "in 59min 3s", "3s ago", "now". */
const char *format_relative(char *buf, size_t size, uint64_t usec, uint64_t now);
/* LC_TIME as the environment says, loaded at the first format_clock() (main() sets it;
 * false: LC_TIME stays what the program set, as in the unit test) */
extern bool time_locale_from_environment;
/* usec as local time: "10:04:31" today, "Tue 2026-11-24 10:04:31" otherwise. */
const char *format_clock(char *buf, size_t size, uint64_t usec, uint64_t now);

/* ---- tables ---- */

typedef struct Table Table;

/* A table of n_columns columns; headers are copied. */
Table *table_new(size_t n_columns, const char *const *headers);
Table *table_free(Table *t);
static inline void table_freep(Table **t) {
        table_free(*t);
}

/* How much a column gives up when the table is too wide for the terminal: 0 (the
 * default) never, else in proportion to its weight, never below min_width (its header
 * is ellipsized like its cells). */
void table_set_shrink(Table *t, size_t column, unsigned weight, size_t min_width);
/* Total width to fit the table in; SIZE_MAX (the default) for no limit. */
void table_set_width(Table *t, size_t width);
/* Print the header line (default true). */
void table_set_header(Table *t, bool header);
/* Leave a column out of the output. */
void table_hide_column(Table *t, size_t column);

/* Adds a row of exactly n_columns cells (NULL or "" cells print as a grey "-"); cells
 * are sanitized and copied. colors is NULL or one escape sequence (or NULL) per cell.
 * Returns 0 or -ENOMEM/-E2BIG. */
int table_add_row(Table *t, const char *const *cells, const char *const *colors);
size_t table_n_rows(const Table *t);
/* Columns are padded to their width, the last one is not; a cell wider than its column
 * is ellipsized. The header is underlined when colours are on. */
int table_print(Table *t, FILE *f);

/* ---- a pager, as systemd's tools start one ---- */

/* Starts $SYSTEMD_PAGER, else $PAGER, else pager, less or more, with stdout (and stderr
 * when it is a terminal) going to it; nothing when disabled, when stdout is not a
 * terminal, or when the pager is "" or "cat". less gets $SYSTEMD_LESS (default
 * "FRSXMK"). Colours, underlining and the width are decided before, for the terminal. */
void pager_open(bool disabled);
/* Waits for the pager to finish (after the output is complete). */
void pager_close(void);
