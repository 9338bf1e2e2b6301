/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The manager's side of its backends' news (pcpd-backend-events.h): the events "pcp" and
 * "direct" were given at construction (manager_backend_events; the UPnP-IGD fallback's
 * are in pcpd-fallback.c), and publishing a mapping's state as a backend has it
 * (manager_mapping_sync(): the mapping's fields, its record when the external side
 * changed, one mapping_changed with what changed, the log line of a grant or failure).
 */

#include "pcpd-manager-private.h"

#include <arpa/inet.h>
#include <string.h>

#include "pcpd-backend.h"
#include "pcpd-log.h"

/* ---- a mapping's state as a backend has it, published ---- */

/* Granted and failed, once per change: a renewal is no news. */
static void mapping_log_change(pcpd_mapping *mp, const char *old_state, const char *old_error,
                               const char *old_external, uint16_t old_port, const char *detail) {
        if (strcmp(mp->state, "active") == 0 &&
            (strcmp(old_state, "active") != 0 || strcmp(old_external, mp->external_address) != 0 ||
             old_port != mp->external_port)) {
                bool changed = old_external[0] != '\0' &&
                               (strcmp(old_external, mp->external_address) != 0 || old_port != mp->external_port);
                pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_GRANTED, mp, NULL, NULL,
                                 "Mapping %s %s by %s: %s port %u is reachable at %s%s%s:%u for %u s", PCPD_MAPPING_PATH(mp),
                                 changed ? "changed" : "granted", mp->server_text,
                                 pcp_protocol_to_string(mp->protocol) ?: "?", mp->internal_port,
                                 strchr(mp->external_address, ':') ? "[" : "", mp->external_address,
                                 strchr(mp->external_address, ':') ? "]" : "", mp->external_port, mp->granted);
        } else if (strcmp(mp->state, "failed") == 0 &&
                   (strcmp(old_state, "failed") != 0 || strcmp(old_error, mp->error) != 0))
                /* a persistent or declared mapping is held by nobody: it is retried for as
                 * long as it stays */
                pcpd_log_mapping(G_LOG_LEVEL_WARNING, PCPD_MSGID_MAPPING_FAILED, mp, mp->error, NULL,
                                 "Mapping %s failed on %s: %s%s%s%s; retrying %s", PCPD_MAPPING_PATH(mp),
                                 mp->server_text, mp->error[0] ? mp->error : "unknown error",
                                 detail != NULL && detail[0] != '\0' ? " (" : "", detail ?: "",
                                 detail != NULL && detail[0] != '\0' ? ")" : "",
                                 pcpd_mapping_declared(mp) != NULL ? "while it is declared"
                                 : mp->persistent                  ? "until it is removed (persistent)"
                                                                   : "while it is held");
}

/* Whether text is what pcp_addr_to_string() makes of a, without formatting a: a renewal
 * changes neither address, and formatting both (inet_ntop() and its sprintf()) twice per
 * renewal was 17 % of its instructions. An IPv4 address has one text form inet_pton()
 * takes (four decimal parts, no leading zero), so comparing the binary decides exactly;
 * IPv6 text has several, so that is compared as formatted. */
static bool addr_text_is(const char *text, const struct in6_addr *a) {
        char buf[PCP_ADDR_STRLEN];
        struct in_addr v4, t4;

        if (text == NULL)
                return false;
        if (pcp_addr_to_ipv4(a, &v4))
                return inet_pton(AF_INET, text, &t4) == 1 && t4.s_addr == v4.s_addr;
        return strcmp(text, pcp_addr_to_string(a, buf)) == 0;
}

void manager_mapping_sync(pcpd_manager *m, pcpd_mapping *mp, const pcpd_backend_info *i) {
        const char *old_state = mp->state ?: "", *old_error = mp->error ?: ""; /* interned */
        g_autofree char *old_external = g_strdup(mp->external_address ?: "");
        uint16_t old_port = mp->external_port;
        pcpd_mapping_changed what = 0;
        char buf[PCP_ADDR_STRLEN];
        uint64_t expires = i->expires_at;
        uint16_t port = i->has_external ? i->external_port : 0;
        bool persist = false;

        if (set_name(&mp->state, i->state))
                what |= PCPD_MAPPING_CHANGED_STATE;
        if (set_name(&mp->error, i->error))
                what |= PCPD_MAPPING_CHANGED_ERROR;
        if (!(i->has_external ? addr_text_is(mp->external_address, &i->external_addr)
                              : g_strcmp0(mp->external_address, "") == 0) &&
            set_shared(&mp->external_address, i->has_external ? pcp_addr_to_string(&i->external_addr, buf) : "")) {
                what |= PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS;
                persist = true;
        }
        if (mp->external_port != port) {
                mp->external_port = port;
                what |= PCPD_MAPPING_CHANGED_EXTERNAL_PORT;
                persist = true;
        }
        /* what renewals, repairs and a restarted pcpd ask for: the port last granted */
        if (port != 0 && mp->suggested_port != port) {
                mp->suggested_port = port;
                what |= PCPD_MAPPING_CHANGED_SUGGESTED_PORT;
                persist = true;
        }
        if (mp->granted != i->lifetime_granted) {
                mp->granted = i->lifetime_granted;
                what |= PCPD_MAPPING_CHANGED_LIFETIME;
        }
        /* ExpiresAt moves by clock noise on every renewal: publish real changes only */
        if ((expires == 0) != (mp->expires_at == 0) ||
            (expires > mp->expires_at ? expires - mp->expires_at : mp->expires_at - expires) > 1000000) {
                mp->expires_at = expires;
                what |= PCPD_MAPPING_CHANGED_EXPIRES_AT;
        }
        if (!addr_text_is(mp->internal_address, &i->internal_addr) &&
            set_shared(&mp->internal_address, pcp_addr_to_string(&i->internal_addr, buf)))
                what |= PCPD_MAPPING_CHANGED_INTERNAL_ADDRESS;
        /* the external address and port are what a restarted pcpd asks for again: on disk
         * before any app hears of them */
        if (persist)
                manager_persist_mapping(m, mp);
        if (what != 0)
                pcpd_manager_emit_mapping_changed(m, mp, what);
        mapping_log_change(mp, old_state, old_error, old_external, old_port, i->error_detail);
}


/* ---- the backends' news (pcpd-backend.h: pcpd_backend_events) ---- */

static void on_pcp_mapping_changed(void *userdata, pcpd_mapping *mp, const pcpd_backend_info *i, bool granted) {
        pcpd_manager *m = userdata;

        if (mp->backend != NULL) {
                pcpd_backend_info bi;
                /* the backend publishes it (once it has something to show) until the
                 * engine holds it */
                if (!granted && m->upnp->ops->info(m->upnp, mp, &bi))
                        return;
                if (granted)
                        manager_backend_takeover(m, mp, i);
        }
        if (i == NULL)
                return; /* being deleted: nothing to publish */
        manager_mapping_sync(m, mp, i);
        if (strcmp(i->state, PCP1_MAPPING_FAILED) == 0)
                manager_backend_check_soon(m);
}

/* the engine dropped mp under us: its server went away */
static void on_pcp_mapping_lost(void *userdata, pcpd_mapping *mp) {
        pcpd_manager_remove_mapping(userdata, mp, PCPD_REMOVED_NETWORK_LOST);
}

/* (not told by "pcp" nor "direct", whose part of the record is the manager's own) */
static void on_pcp_mapping_record_changed(void *userdata, pcpd_mapping *mp) {
        (void) manager_persist_mapping(userdata, mp);
}

static void on_pcp_deleting_done(void *userdata, uint64_t cookie, bool confirmed) {
        pcpd_manager *m = userdata;
        pcpd_deleting *d = g_hash_table_lookup(m->deleting, &cookie);

        if (d != NULL) /* (gone: evicted, or expired meanwhile) */
                manager_deleting_engine_done(m, d, confirmed);
}

static void on_pcp_server_changed(void *userdata, pcpd_server *s, const pcpd_server_status *st) {
        pcpd_manager *m = userdata;

        if (s != NULL && st != NULL)
                manager_server_watch_silence(s, st->state);
        if (s != NULL && st != NULL && s->logged_state != (int) st->state) {
                /* one line per state transition, however often the server is heard */
                s->logged_state = (int) st->state;
                manager_backend_check_soon(m); /* speaks no PCP: UPnP-IGD */
                /* direct mappings move to a server that starts answering; on the next turn
                 * of the loop, not from here: the backend's news is told wherever it was
                 * called (inside AddMapping, or while a server is being removed) and moving
                 * adds and removes mappings */
                if ((st->state == PCPD_SERVER_PCP || st->state == PCPD_SERVER_NATPMP) && m->n_direct > 0)
                        manager_rediscover_idle(m);
                if (st->state == PCPD_SERVER_DISABLED)
                        pcpd_log_event(G_LOG_LEVEL_WARNING, PCPD_MSGID_SERVER_STATE,
                                       ((const char *const[]) { "PCPD_SERVER", s->text, "PCPD_SERVER_STATE",
                                                                st->state_name, "PCP_RESULT", "NOT_AUTHORIZED", NULL }),
                                       "PCP server %s refuses requests (NOT_AUTHORIZED): PCP is switched off "
                                       "there; asking again in %" G_GUINT64_FORMAT " s",
                                       s->text, (st->disabled_until - pcpd_now_ms()) / 1000);
                else if (st->address_mismatch)
                        pcpd_log_event(G_LOG_LEVEL_WARNING, PCPD_MSGID_SERVER_STATE,
                                       ((const char *const[]) { "PCPD_SERVER", s->text, "PCPD_SERVER_STATE",
                                                                st->state_name, "PCP_RESULT", "ADDRESS_MISMATCH", NULL }),
                                       "PCP server %s saw another source address than ours "
                                       "(ADDRESS_MISMATCH): a NAT between us and it?",
                                       s->text);
                else
                        pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_SERVER_STATE,
                                       ((const char *const[]) { "PCPD_SERVER", s->text, "PCPD_SERVER_STATE",
                                                                st->state_name, NULL }),
                                       "PCP server %s: %s", s->text, st->state_name);
        }
        /* also told when a server turns silent or is heard again (pcp_server_info.silent):
         * its state is the same, so nothing above moves (no UPnP-IGD, no direct mappings),
         * but Servers lists it as protocol "none" while it is silent */
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_SERVERS | PCPD_MANAGER_CHANGED_EXTERNAL_ADDRESSES |
                                             PCPD_MANAGER_CHANGED_PREFIX64);
        manager_update_state(m);
}

static void on_pcp_server_epoch_reset(void *userdata, pcpd_server *s, bool repeated, bool from_announce) {
        pcpd_manager *m = userdata;

        /* one line per episode: a server whose epoch keeps jumping is recreated at most
         * every few seconds (the engine), and logged once */
        if (!repeated)
                pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_EPOCH_RESET,
                               ((const char *const[]) { "PCPD_SERVER", s != NULL ? s->text : "", NULL }),
                               "PCP server %s lost its mappings (epoch reset%s): recreating them",
                               s != NULL ? s->text : "?", from_announce ? ", ANNOUNCE" : "");
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_SERVERS);
}

/* Without this line an admin (or a test chasing a stall) sees every mapping of a server
 * asked again for no reason pcpd gave. One line per episode, as for the epoch resets: the
 * engine recreates at most every few seconds however many ANNOUNCEs arrive (they are
 * easily spoofed), and an ANNOUNCE while a reset is dealt with comes repeated. The 5 s
 * is the engine's announce_delay_max, which pcpd leaves at its default. "ANNOUNCE" is in
 * the text for the tests that grep for it (scenario 5's epoch_story()). Servers is not
 * news: the server's epoch moved as it does with any answer (its state, if the ANNOUNCE
 * changed it, comes as server_changed). */
static void on_pcp_server_recreate(void *userdata, pcpd_server *s, bool repeated, bool from_announce,
                                   size_t n_mappings) {
        (void) userdata;
        /* (from_announce: always, nothing else recreates without a reset.) Not "its mappings
         * are kept": a NAT-PMP notice says nothing of that, and miniupnpd sends one just
         * before an ANNOUNCE whose epoch says it lost them (then logged 5 s later, when the
         * engine acts on it) */
        (void) from_announce;
        if (repeated)
                return;
        /* a server holding none of this host's mappings: the change is still worth a line
         * (the router's address may have moved), but "renewing its 0 mapping(s)" is not */
        if (n_mappings == 0)
                pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_RECREATE,
                               ((const char *const[]) { "PCPD_SERVER", s != NULL ? s->text : "", NULL }),
                               "PCP server %s announced a change (an ANNOUNCE or a NAT-PMP address notice, "
                               "and its answers showed no restart): it holds no mapping of this host, nothing to renew",
                               s != NULL ? s->text : "?");
        else
                pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_RECREATE,
                               ((const char *const[]) { "PCPD_SERVER", s != NULL ? s->text : "", NULL }),
                               "PCP server %s announced a change (an ANNOUNCE or a NAT-PMP address notice, "
                               "and the answers showed no restart): renewing its %zu mapping(s) within 5 s",
                               s != NULL ? s->text : "?", n_mappings);
}

const pcpd_backend_events manager_backend_events = {
        .mapping_changed = on_pcp_mapping_changed,
        .mapping_lost = on_pcp_mapping_lost,
        .mapping_record_changed = on_pcp_mapping_record_changed,
        .deleting_done = on_pcp_deleting_done,
        .server_changed = on_pcp_server_changed,
        .server_epoch_reset = on_pcp_server_epoch_reset,
        .server_recreate = on_pcp_server_recreate,
};
