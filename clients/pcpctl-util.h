/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers every part of pcpctl uses: strings, messages, parsing of what the user
 * typed. Nothing here talks to the bus or the terminal. */

#include <libintl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcp1-contract.h"

#define _(s) gettext(s)
#define N_(s) (s)

#define EXIT_USAGE 2

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _printf_(a, b) __attribute__((format(printf, a, b)))

/* what the daemon accepts: refused here, a longer value would pass and then fail at pcpd
 * with exit 1 instead of a usage error */
#define DESCRIPTION_MAX ((unsigned) PCP1_MAX_DESCRIPTION)
#define APP_ID_MAX 255u
#define MAPPING_ID_MAX 255u

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b) {
        return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static inline const char *strempty(const char *s) {
        return s != NULL ? s : "";
}

static inline bool isempty(const char *s) {
        return s == NULL || s[0] == '\0';
}

void strv_free(char **l);
size_t strv_length(char *const *l);
static inline void strv_freep(char ***l) {
        strv_free(*l);
}

/* "Failed to ..." and friends on stderr, one line each. */
void log_error(const char *format, ...) _printf_(1, 2);
/* A usage error: the message, a hint at --help; returns EXIT_USAGE. */
int usage_error(const char *format, ...) _printf_(1, 2);
/* Logs "Out of memory." and returns -ENOMEM. */
int log_oom(void);

uint64_t now_realtime_usec(void);

/* Whether file, a declaration's file in pcpd's DeclaredMappings, is one of the administrator's
 * (in /etc/pcpd/mappings.d, which pcpd never changes: RemoveDeclaredMapping refuses it) rather
 * than one pcpd wrote for DeclareMapping (mappings.d in its state directory). The bus does not
 * say; pcpd reads the administrator's from the mappings.d beside its configuration file: one
 * in /etc/pcpd/mappings.d, or one with a pcpd.conf beside its directory (pcpd --config
 * DIR/pcpd.conf, as the demo runs it), is taken for one of those. */
bool declared_file_is_etc(const char *file);

/* ---- what the user typed; each logs a usage error naming the bad value ---- */

int parse_uint(const char *s, uint64_t max, uint64_t *ret);
int parse_port(const char *s, const char *what, uint16_t *ret);
/* "tcp", "udp", "sctp", "dccp" (any case) or 1-255 (pcpd refuses 0); returns the form
 * sent to pcpd */
int parse_protocol(const char *s, const char **ret);
int parse_family(const char *s);
/* a valid name of an interface that exists here */
int parse_interface(const char *s);
int parse_address(const char *s);
/* a mapping given as its id ("7") or its object path; returns the path */
int parse_mapping(const char *s, char **ret);

/* The id of a mapping path ("7" for .../mapping/7), or the path itself. */
const char *mapping_id(const char *path);
/* The id as a number, or -1 when it is not a plain decimal number. */
int64_t mapping_id_number(const char *path);
