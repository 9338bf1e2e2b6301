/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpctl-json.h"

#include <errno.h>
#include <inttypes.h>

#include "pcpctl-util.h"

void json_init(Json *j, FILE *f, JsonFormat format) {
        *j = (Json){
                .f = f,
                .format = format,
        };
}

static void json_newline(Json *j) {
        if (j->format != JSON_PRETTY)
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
        bool had_members;

        if (j->depth == 0)
                return;
        had_members = j->depth <= PCPCTL_JSON_MAX_DEPTH && j->need_comma[j->depth - 1];
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
        for (const unsigned char *p = (const unsigned char *) strempty(s); *p != '\0'; p++) {
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
        fputs(j->format == JSON_PRETTY ? ": " : ":", j->f);
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

void json_bool(Json *j, bool b) {
        json_prefix(j);
        fputs(b ? "true" : "false", j->f);
}

void json_null(Json *j) {
        json_prefix(j);
        fputs("null", j->f);
}

void json_strv(Json *j, char *const *l) {
        json_begin_array(j);
        for (char *const *s = l; s != NULL && *s != NULL; s++)
                json_string(j, *s);
        json_end_array(j);
}

int json_finish(Json *j) {
        fputc('\n', j->f);
        if (j->overflow)
                return -E2BIG;
        return ferror(j->f) ? -EIO : 0;
}

void json_manager(Json *j, const ManagerInfo *i) {
        json_begin_object(j);
        json_key(j, "Version");
        json_string(j, i->version);
        json_key(j, "Enabled");
        json_bool(j, i->enabled);
        json_key(j, "State");
        json_string(j, i->state);
        if (i->has_state_error) {
                json_key(j, "StateError");
                json_string(j, i->state_error);
        }
        json_key(j, "Servers");
        json_begin_array(j);
        for (size_t k = 0; k < i->servers.n; k++) {
                const ServerInfo *s = &i->servers.items[k];

                json_begin_object(j);
                json_key(j, "Interface");
                json_string(j, s->interface);
                json_key(j, "Address");
                json_string(j, s->address);
                json_key(j, "Source");
                json_string(j, s->source);
                json_key(j, "Protocol");
                json_string(j, s->protocol);
                json_key(j, "Epoch");
                json_uint(j, s->epoch);
                json_end_object(j);
        }
        json_end_array(j);
        json_key(j, "ExternalAddresses");
        json_strv(j, i->external_addresses);
        json_key(j, "Prefix64");
        json_strv(j, i->prefix64);
        json_key(j, "DefaultLifetime");
        json_uint(j, i->default_lifetime);
        json_key(j, "MaxMappingsPerUser");
        json_uint(j, i->max_mappings_per_user);
        json_key(j, "MappingCount");
        json_uint(j, i->mapping_count);
        if (i->declared.present) { /* absent from an older pcpd */
                json_key(j, "DeclaredMappings");
                json_begin_array(j);
                for (size_t k = 0; k < strv_length(i->declared.names); k++) {
                        json_begin_object(j);
                        json_key(j, "Name");
                        json_string(j, i->declared.names[k]);
                        json_key(j, "File");
                        json_string(j, i->declared.files[k]);
                        json_key(j, "Mapping");
                        json_string(j, i->declared.mappings[k]);
                        json_end_object(j);
                }
                json_end_array(j);
        }
        json_end_object(j);
}

void json_mapping(Json *j, const MappingInfo *i) {
        int64_t id = mapping_id_number(i->path);

        json_begin_object(j);
        json_key(j, "Id");
        if (id >= 0)
                json_int(j, id);
        else /* pcpd's ids are numbers; anything else is shown as it is */
                json_string(j, mapping_id(i->path));
        json_key(j, "Path");
        json_string(j, i->path);
        json_key(j, "Opcode");
        json_string(j, i->opcode);
        json_key(j, "Family");
        json_string(j, i->family);
        json_key(j, "Protocol");
        json_string(j, i->protocol);
        json_key(j, "ProtocolNumber");
        json_uint(j, i->protocol_number);
        json_key(j, "InternalAddress");
        json_string(j, i->internal_address);
        json_key(j, "InternalPort");
        json_uint(j, i->internal_port);
        json_key(j, "SuggestedExternalPort");
        json_uint(j, i->suggested_external_port);
        json_key(j, "ExternalAddress");
        json_string(j, i->external_address);
        json_key(j, "ExternalPort");
        json_uint(j, i->external_port);
        json_key(j, "RemoteAddress");
        json_string(j, i->remote_address);
        json_key(j, "RemotePort");
        json_uint(j, i->remote_port);
        json_key(j, "Lifetime");
        json_uint(j, i->lifetime);
        json_key(j, "ExpiresAt");
        json_uint(j, i->expires_at);
        json_key(j, "State");
        json_string(j, i->state);
        json_key(j, "Error");
        json_string(j, i->error);
        json_key(j, "Server");
        json_string(j, i->server);
        json_key(j, "Description");
        json_string(j, i->description);
        json_key(j, "Persistent");
        json_bool(j, i->persistent);
        json_key(j, "Owner");
        json_string(j, i->owner);
        json_key(j, "UID");
        json_uint(j, i->uid);
        json_key(j, "PID");
        json_uint(j, i->pid);
        json_key(j, "AppId");
        json_string(j, i->app_id);
        json_key(j, "AppIdSource");
        json_string(j, i->app_id_source);
        json_key(j, "Created");
        json_uint(j, i->created);
        if (i->declared != NULL) { /* absent from an older pcpd */
                json_key(j, "Declared");
                json_string(j, i->declared);
        }
        json_end_object(j);
}

void json_changed(Json *j, PropMask mask, const char *(*name)(unsigned)) {
        json_begin_array(j);
        for (unsigned p = 0; p < 64; p++)
                if (mask & PROP_BIT(p) && name(p) != NULL)
                        json_string(j, name(p));
        json_end_array(j);
}
