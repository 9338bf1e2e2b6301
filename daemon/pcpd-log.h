/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Structured logging for the events an admin acts on: one readable line (MESSAGE) plus
 * journal fields to filter on, through GLib's structured logging. main.c installs the
 * writer: the journal's native protocol when stderr is the journal, one plain line on
 * stderr otherwise.
 *
 * The MESSAGE_IDs never change once released; man/pcpd.8 lists them with their fields,
 * and tests/bus/test-logging.py checks that every one here is listed there. Query with
 * e.g. `journalctl MESSAGE_ID=<id>` or `journalctl PCPD_MAPPING=/org/freedesktop/PCP1/mapping/7`.
 *
 * Fields:
 *   PCPD_MAPPING        the mapping's object path
 *   PCPD_UID            the uid it belongs to
 *   PCPD_APP_ID         its AppId ("" when none)
 *   PCPD_PROTOCOL       "tcp", "udp", ... or the protocol number
 *   PCPD_INTERNAL_PORT  its internal port
 *   PCPD_EXTERNAL       "address:port" ("[address]:port" for IPv6) once granted
 *   PCPD_SERVER         the PCP server, as in Servers ("" for none)
 *   PCPD_SERVER_STATE   "pcp", "nat-pmp", "disabled", "unreachable", "unsupported", "unknown"
 *   PCPD_REASON         why a mapping was removed (MappingRemoved's reason)
 *   PCP_RESULT          the RFC 6887 result name, or UNREACHABLE, EXPIRED, DISABLED, UNSUPPORTED
 *   PCPD_INTERFACE      a server's interface ("" when unknown: configured servers)
 *   PCPD_ENABLED        "true" or "false" (SetEnabled)
 *   PCPD_CONFIG         the configuration file (configuration errors)
 *   PCPD_STATE_DIRECTORY  the state directory (state errors)
 */

#include <glib.h>
#include <stdarg.h>
#include <stdio.h>

#include "pcpd-mapping.h"

#define PCPD_MSGID_STARTED "c3bddf41639f40bd9a4fc118999031fd"         /* ready on the bus */
#define PCPD_MSGID_CONFIG_ERROR "6d3c4396ddeb4f919a55c99df905a178"    /* bad configuration: not started */
#define PCPD_MSGID_START_FAILED "166d0f16375c40ad9287b5300ed0569a"    /* cannot start (state, bus, name) */
#define PCPD_MSGID_RELOADED "ed92d865a1a14099a4111c928a7c077e"       /* SIGHUP: configuration re-read and applied */
#define PCPD_MSGID_RELOAD_FAILED "b1a80cb83020463db2532cdc31685eb7"  /* SIGHUP: invalid; the old one stays */
#define PCPD_MSGID_ENABLED "95766c859a944f98bae815f8e470bb0b"         /* SetEnabled: switched on or off */
#define PCPD_MSGID_MAPPING_ADDED "b90c2e973a064e4dab2ec99139d2a369"   /* a new mapping was requested */
#define PCPD_MSGID_MAPPING_GRANTED "90bbefd3de5d435d8969b1af5d8a0a42" /* active, or a new external address/port */
#define PCPD_MSGID_MAPPING_FAILED "b36075f039524d00b4eee70c3da1a74a"  /* failed; PCP_RESULT says why */
#define PCPD_MSGID_MAPPING_MOVED "110d82d1563448f8a7b4dc37309932ee"   /* a direct mapping moved or readdressed */
#define PCPD_MSGID_MAPPING_REMOVED "8b339571d4554bfeab81599380185152" /* removed; PCPD_REASON says why */
#define PCPD_MSGID_SERVER_ADDED "0ddce504caf2400390077d15fc3b6942"    /* a server was found */
#define PCPD_MSGID_SERVER_REMOVED "c8e983abc36f4cffb2dda5302f0b2c96"  /* a server is gone */
#define PCPD_MSGID_SERVER_STATE "186ed387164a4287bb23494dcf945636"    /* a server's protocol state changed */
#define PCPD_MSGID_EPOCH_RESET "9c42ef9692914106a233eee5839c47a5"     /* a server lost its mappings */
#define PCPD_MSGID_RECREATE "195e55b7ed484d96ace6b379a10c73d1"        /* a server announced a change: all renewed */
#define PCPD_MSGID_STATE_ERROR "02ecccc5886e494a9290932c1c991493"     /* state cannot be saved */
#define PCPD_MSGID_STATE_SAVED "aac28ab62dd74168a91550d5fa3a4620"     /* state is saved again */

#define PCPD_LOG_MAX_FIELDS 20

static inline const char *pcpd_log_priority(GLogLevelFlags level) {
        /* as GLib's g_log_structured(), except that a critical event here is one that stops
         * pcpd: err, not warning */
        if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
                return "3";
        if (level & G_LOG_LEVEL_WARNING)
                return "4";
        if (level & G_LOG_LEVEL_MESSAGE)
                return "5";
        if (level & G_LOG_LEVEL_INFO)
                return "6";
        return "7";
}

/* v in decimal into buf (size > 10 holds any unsigned; a smaller one what fits, cut) */
static inline void pcpd_log_uint(char *buf, size_t size, unsigned v) {
        char tmp[10];
        size_t n = 0, k = 0;

        do {
                tmp[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v != 0);
        while (n > 0 && k + 1 < size)
                buf[k++] = tmp[--n];
        buf[k] = '\0';
}

/* kv: NULL-terminated KEY, VALUE pairs (a NULL VALUE leaves the field out) */
static inline void pcpd_log_fieldsv(GLogLevelFlags level, const char *message_id, const char *const *kv,
                                    const char *file, const char *line, const char *func, const char *format,
                                    va_list ap) G_GNUC_PRINTF(7, 0);
static inline void pcpd_log_fieldsv(GLogLevelFlags level, const char *message_id, const char *const *kv,
                                    const char *file, const char *line, const char *func, const char *format,
                                    va_list ap) {
        g_autofree char *message = g_strdup_vprintf(format, ap);
        GLogField f[PCPD_LOG_MAX_FIELDS];
        gsize n = 0;

        f[n++] = (GLogField) { "MESSAGE", message, -1 };
        f[n++] = (GLogField) { "PRIORITY", pcpd_log_priority(level), -1 };
        f[n++] = (GLogField) { "MESSAGE_ID", message_id, -1 };
        f[n++] = (GLogField) { "CODE_FILE", file, -1 };
        f[n++] = (GLogField) { "CODE_LINE", line, -1 };
        f[n++] = (GLogField) { "CODE_FUNC", func, -1 };
        for (size_t i = 0; kv != NULL && kv[i] != NULL && n < PCPD_LOG_MAX_FIELDS; i += 2)
                if (kv[i + 1] != NULL)
                        f[n++] = (GLogField) { kv[i], kv[i + 1], -1 };
        g_log_structured_array(level, f, n);
}

static inline void pcpd_log_fields(GLogLevelFlags level, const char *message_id, const char *const *kv,
                                   const char *file, const char *line, const char *func, const char *format, ...)
        G_GNUC_PRINTF(7, 8);
static inline void pcpd_log_fields(GLogLevelFlags level, const char *message_id, const char *const *kv,
                                   const char *file, const char *line, const char *func, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        pcpd_log_fieldsv(level, message_id, kv, file, line, func, format, ap);
        va_end(ap);
}

#define PCPD_LOG_HERE __FILE__, G_STRINGIFY(__LINE__), G_STRFUNC

/* An event with the fields kv: (const char *const[]) { KEY, VALUE, ..., NULL } or NULL. */
#define pcpd_log_event(level, message_id, kv, ...) \
        pcpd_log_fields(level, message_id, kv, PCPD_LOG_HERE, __VA_ARGS__)

/* An event about one mapping: its PCPD_MAPPING, PCPD_UID, PCPD_APP_ID, PCPD_PROTOCOL,
 * PCPD_INTERNAL_PORT, PCPD_SERVER and (once granted) PCPD_EXTERNAL, plus PCP_RESULT and
 * PCPD_REASON when not NULL. */
static inline void pcpd_log_mapping_at(GLogLevelFlags level, const char *message_id, const pcpd_mapping *mp,
                                       const char *result, const char *reason, const char *file, const char *line,
                                       const char *func, const char *format, ...) G_GNUC_PRINTF(9, 10);
static inline void pcpd_log_mapping_at(GLogLevelFlags level, const char *message_id, const pcpd_mapping *mp,
                                       const char *result, const char *reason, const char *file, const char *line,
                                       const char *func, const char *format, ...) {
        char uid[16], port[8], proto[4], external[PCP_ADDR_STRLEN + 10] = "";
        const char *pname = pcp_protocol_to_string(mp->protocol);
        va_list ap;

        /* three lines per mapping: the numbers without printf */
        pcpd_log_uint(uid, sizeof(uid), (unsigned) mp->uid);
        pcpd_log_uint(port, sizeof(port), mp->internal_port);
        if (pname == NULL) {
                pcpd_log_uint(proto, sizeof(proto), mp->protocol);
                pname = proto;
        }
        if (mp->external_address != NULL && mp->external_address[0] != '\0') {
                size_t n = strlen(mp->external_address);
                bool v6 = strchr(mp->external_address, ':') != NULL;

                if (n + 9 <= sizeof(external)) { /* "[" address "]:" port, 5 digits at most */
                        char *e = external;

                        if (v6)
                                *e++ = '[';
                        memcpy(e, mp->external_address, n);
                        e += n;
                        if (v6)
                                *e++ = ']';
                        *e++ = ':';
                        pcpd_log_uint(e, sizeof(external) - (size_t) (e - external), mp->external_port);
                }
        }
        {
                const char *kv[] = {
                        "PCPD_MAPPING", PCPD_MAPPING_PATH(mp),
                        "PCPD_UID", uid,
                        "PCPD_APP_ID", mp->app_id != NULL ? mp->app_id : "",
                        "PCPD_PROTOCOL", pname,
                        "PCPD_INTERNAL_PORT", port,
                        "PCPD_SERVER", mp->server_text != NULL ? mp->server_text : "",
                        "PCPD_EXTERNAL", external[0] != '\0' ? external : NULL,
                        "PCP_RESULT", result,
                        "PCPD_REASON", reason,
                        NULL,
                };
                va_start(ap, format);
                pcpd_log_fieldsv(level, message_id, kv, file, line, func, format, ap);
                va_end(ap);
        }
}

#define pcpd_log_mapping(level, message_id, mp, result, reason, ...) \
        pcpd_log_mapping_at(level, message_id, mp, result, reason, PCPD_LOG_HERE, __VA_ARGS__)
