/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* pcpctl's JSON: a small streaming writer, and the one shape of each object pcpctl
 * prints (the manager, a mapping, a monitor event), with named fields: the D-Bus
 * property names, plus "Id" (a number) and "Path" for a mapping. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pcpctl-bus.h"

#define PCPCTL_JSON_MAX_DEPTH 32

typedef enum JsonFormat {
        JSON_OFF,
        JSON_SHORT,  /* one line per document */
        JSON_PRETTY, /* indented */
} JsonFormat;

typedef struct Json {
        FILE *f;
        JsonFormat format;
        unsigned depth;
        bool need_comma[PCPCTL_JSON_MAX_DEPTH];
        bool after_key;
        bool overflow;
} Json;

void json_init(Json *j, FILE *f, JsonFormat format);
void json_begin_object(Json *j);
void json_end_object(Json *j);
void json_begin_array(Json *j);
void json_end_array(Json *j);
void json_key(Json *j, const char *key);
void json_string(Json *j, const char *s);
void json_uint(Json *j, uint64_t v);
void json_int(Json *j, int64_t v);
void json_bool(Json *j, bool b);
void json_null(Json *j);
void json_strv(Json *j, char *const *l);
/* Ends the document with a newline; returns -EIO if writing failed, -E2BIG if nesting
 * was too deep. */
int json_finish(Json *j);

/* {"Version": ..., "Servers": [{"Interface": ..., ...}], ...}; "StateError" only when
 * pcpd has it. */
void json_manager(Json *j, const ManagerInfo *i);
/* {"Id": 7, "Path": ..., "Opcode": ..., ...} */
void json_mapping(Json *j, const MappingInfo *i);
/* ["State", "ExternalPort"]: the names of the properties in mask */
void json_changed(Json *j, PropMask mask, const char *(*name)(unsigned));
