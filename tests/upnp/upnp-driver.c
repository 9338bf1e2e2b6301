/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * upnp-driver: pcpd-upnp on a GLib main loop, driven by line commands on stdin, reporting
 * every event as one JSON line on stdout. The UPnP tests (tests/upnp/test-*.py) run it in
 * the lab's client namespace against miniupnpd or the scripted IGD.
 *
 *   upnp-driver --interface IF [--gateway A.B.C.D] [--action-timeout-ms N]
 *               [--check-interval S] [--external-interval S] [--retry-min S]
 *               [--retry-max S] [--search-interval S] [--location-interval S]
 *
 * Commands (one per line):
 *   add KEY tcp|udp INTADDR INTPORT SUGGESTED LIFETIME [prefer-failure] [desc=TEXT]
 *   refuse KEY tcp|udp|NUM INTADDR INTPORT [peer] [filter] [third-party]
 *   remove KEY | forget KEY | get KEY | record KEY
 *   remove-record KEY tcp|udp EXTPORT INTADDR INTPORT [permanent]
 *   igd | stats | quit
 * Output: {"ev":"ready"}, {"ev":"mapping",...}, {"ev":"deleted",...}, {"ev":"igd",...},
 * {"ev":"info",...}, {"ev":"error","cmd":...,"msg":...}, ...
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcpd-upnp.h"

typedef struct driver {
        GMainLoop *loop;
        pcpd_upnp *u;
        GHashTable *keys; /* id (uint64_t*) → key */
        GString *line;
        guint watch;
        int exit_code;
} driver;

static void json_str(GString *out, const char *s) {
        g_string_append_c(out, '"');
        for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p; p++) {
                if (*p == '"' || *p == '\\')
                        g_string_append_printf(out, "\\%c", *p);
                else if (*p < 0x20 || *p >= 0x7f)
                        g_string_append_printf(out, "\\u%04x", *p);
                else
                        g_string_append_c(out, (char) *p);
        }
        g_string_append_c(out, '"');
}

static void addr_str(const struct in6_addr *a, char *buf, size_t n) {
        if (IN6_IS_ADDR_V4MAPPED(a))
                inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t) n);
        else
                inet_ntop(AF_INET6, a, buf, (socklen_t) n);
}

static void emit_line(GString *s) {
        g_string_append(s, "}\n");
        fputs(s->str, stdout);
        fflush(stdout);
        g_string_free(s, true);
}

static GString *begin(const char *ev) {
        GString *s = g_string_new("{\"ev\":");
        json_str(s, ev);
        return s;
}

static void put_info(GString *s, const pcpd_upnp_info *m) {
        char ext[INET6_ADDRSTRLEN], in[INET6_ADDRSTRLEN];

        addr_str(&m->external_addr, ext, sizeof(ext));
        addr_str(&m->internal_addr, in, sizeof(in));
        g_string_append_printf(s, ",\"id\":%" G_GUINT64_FORMAT ",\"state\":\"%s\",\"error\":\"%s\",\"upnp_error\":%d",
                               m->id, pcpd_upnp_state_to_string(m->state), pcpd_upnp_error_name(m->error),
                               m->upnp_error);
        g_string_append_printf(s, ",\"ext_addr\":\"%s\",\"ext_port\":%u,\"int_addr\":\"%s\",\"int_port\":%u", ext,
                               m->external_port, in, m->internal_port);
        g_string_append_printf(s, ",\"lease\":%u,\"permanent\":%s,\"recreations\":%u,\"deleting\":%s", m->lease,
                               m->permanent ? "true" : "false", m->recreations, m->deleting ? "true" : "false");
}

static void put_igd(GString *s, const pcpd_upnp_igd_info *g) {
        char a[INET6_ADDRSTRLEN], e[INET6_ADDRSTRLEN] = "";

        addr_str(&g->addr, a, sizeof(a));
        if (g->has_external_addr)
                addr_str(&g->external_addr, e, sizeof(e));
        g_string_append_printf(s, ",\"present\":%s,\"addr\":\"%s\",\"port\":%u,\"external\":\"%s\",\"ipv6fc\":%s",
                               g->present ? "true" : "false", a, g->port, e,
                               g->has_ipv6_firewall ? "true" : "false");
        g_string_append(s, ",\"udn\":");
        json_str(s, g->udn);
        g_string_append(s, ",\"service\":");
        json_str(s, g->service_type);
}

static const char *key_of(driver *d, uint64_t id) {
        const char *k = g_hash_table_lookup(d->keys, &id);
        return k ? k : "?";
}

static void on_event(void *ud, const pcpd_upnp_event *ev) {
        driver *d = ud;
        GString *s;

        switch (ev->type) {
        case PCPD_UPNP_EVENT_MAPPING:
                s = begin("mapping");
                g_string_append(s, ",\"key\":");
                json_str(s, key_of(d, ev->mapping_id));
                put_info(s, ev->mapping);
                g_string_append_printf(s, ",\"recreated\":%s", ev->recreated ? "true" : "false");
                emit_line(s);
                break;
        case PCPD_UPNP_EVENT_MAPPING_DELETED:
                s = begin("deleted");
                g_string_append(s, ",\"key\":");
                json_str(s, key_of(d, ev->mapping_id));
                g_string_append_printf(s, ",\"upstream\":%s", ev->deleted_upstream ? "true" : "false");
                put_info(s, ev->mapping);
                emit_line(s);
                g_hash_table_remove(d->keys, &ev->mapping_id);
                break;
        case PCPD_UPNP_EVENT_IGD:
                s = begin("igd");
                put_igd(s, ev->igd);
                emit_line(s);
                break;
        }
}

static void error_line(const char *cmd, const char *msg) {
        GString *s = begin("error");
        g_string_append(s, ",\"cmd\":");
        json_str(s, cmd);
        g_string_append(s, ",\"msg\":");
        json_str(s, msg);
        emit_line(s);
}

static bool parse_addr(const char *s, struct in6_addr *ret) {
        struct in_addr v4;

        if (s && inet_pton(AF_INET, s, &v4) == 1) {
                memset(ret, 0, sizeof(*ret));
                ret->s6_addr[10] = ret->s6_addr[11] = 0xff;
                memcpy(&ret->s6_addr[12], &v4, 4);
                return true;
        }
        return s && inet_pton(AF_INET6, s, ret) == 1;
}

static int parse_proto(const char *s) {
        if (!s)
                return -1;
        if (g_str_equal(s, "tcp"))
                return IPPROTO_TCP;
        if (g_str_equal(s, "udp"))
                return IPPROTO_UDP;
        return atoi(s);
}

static bool lookup_key(driver *d, const char *key, uint64_t *ret) {
        GHashTableIter it;
        void *k, *v;

        g_hash_table_iter_init(&it, d->keys);
        while (g_hash_table_iter_next(&it, &k, &v))
                if (g_str_equal(v, key)) {
                        *ret = *(uint64_t *) k;
                        return true;
                }
        return false;
}

static void add_key(driver *d, uint64_t id, const char *key) {
        uint64_t *k = g_new(uint64_t, 1);
        *k = id;
        g_hash_table_insert(d->keys, k, g_strdup(key));
}

static void command(driver *d, char *line) {
        g_auto(GStrv) a = g_strsplit_set(g_strstrip(line), " ", 0);
        guint n = g_strv_length(a);
        uint64_t id;
        int r;

        if (n == 0 || !*a[0])
                return;
        if (g_str_equal(a[0], "quit")) {
                g_main_loop_quit(d->loop);
                return;
        }
        if (g_str_equal(a[0], "add") || g_str_equal(a[0], "refuse")) {
                pcpd_upnp_request req = {};
                bool add = g_str_equal(a[0], "add");
                g_autofree char *desc = NULL;

                if (n < (add ? 7u : 5u) || !parse_addr(a[3], &req.internal_addr)) {
                        error_line(a[0], "usage");
                        return;
                }
                req.protocol = (uint8_t) parse_proto(a[2]);
                req.internal_port = (uint16_t) atoi(a[4]);
                if (add) {
                        req.suggested_external_port = (uint16_t) atoi(a[5]);
                        req.lifetime = (uint32_t) strtoul(a[6], NULL, 10);
                }
                for (guint i = add ? 7 : 5; i < n; i++) {
                        if (g_str_equal(a[i], "prefer-failure"))
                                req.prefer_failure = true;
                        else if (g_str_equal(a[i], "peer"))
                                req.peer = true;
                        else if (g_str_equal(a[i], "filter"))
                                req.n_filters = 1;
                        else if (g_str_equal(a[i], "third-party"))
                                req.third_party = true;
                        else if (g_str_has_prefix(a[i], "desc="))
                                desc = g_strdup(a[i] + 5);
                }
                req.description = desc;
                if (!add) {
                        const char *why = pcpd_upnp_refuse_reason(d->u, &req);
                        GString *s = begin("refuse");
                        g_string_append(s, ",\"key\":");
                        json_str(s, a[1]);
                        g_string_append(s, ",\"reason\":");
                        if (why)
                                json_str(s, why);
                        else
                                g_string_append(s, "null");
                        emit_line(s);
                        return;
                }
                r = pcpd_upnp_add(d->u, &req, &id);
                if (r < 0) {
                        const char *why = pcpd_upnp_refuse_reason(d->u, &req);
                        error_line("add", why ? why : g_strerror(-r));
                        return;
                }
                add_key(d, id, a[1]);
                GString *s = begin("added");
                g_string_append(s, ",\"key\":");
                json_str(s, a[1]);
                g_string_append_printf(s, ",\"id\":%" G_GUINT64_FORMAT, id);
                emit_line(s);
                return;
        }
        if (g_str_equal(a[0], "remove-record")) {
                pcpd_upnp_record rec = {};

                if (n < 6 || !parse_addr(a[4], &rec.internal_addr)) {
                        error_line(a[0], "usage");
                        return;
                }
                rec.protocol = (uint8_t) parse_proto(a[2]);
                rec.external_port = (uint16_t) atoi(a[3]);
                rec.internal_port = (uint16_t) atoi(a[5]);
                rec.permanent = n > 6 && g_str_equal(a[6], "permanent");
                r = pcpd_upnp_remove_record(d->u, &rec, &id);
                if (r < 0) {
                        error_line(a[0], g_strerror(-r));
                        return;
                }
                add_key(d, id, a[1]);
                return;
        }
        if (g_str_equal(a[0], "igd")) {
                const pcpd_upnp_igd_info *g = pcpd_upnp_get_igd(d->u);
                GString *s = begin("igd-info");
                if (g)
                        put_igd(s, g);
                else
                        g_string_append(s, ",\"present\":false");
                emit_line(s);
                return;
        }
        if (g_str_equal(a[0], "stats")) {
                const pcpd_upnp_stats *st = pcpd_upnp_get_stats(d->u);
                GString *s = begin("stats");
                g_string_append_printf(s,
                                       ",\"ssdp_refused\":%" G_GUINT64_FORMAT ",\"services_refused\":%" G_GUINT64_FORMAT
                                       ",\"bodies_refused\":%" G_GUINT64_FORMAT ",\"actions\":%" G_GUINT64_FORMAT
                                       ",\"action_errors\":%" G_GUINT64_FORMAT ",\"action_timeouts\":%" G_GUINT64_FORMAT
                                       ",\"recreations\":%" G_GUINT64_FORMAT ",\"notifies\":%" G_GUINT64_FORMAT
                                       ",\"notifies_ignored\":%" G_GUINT64_FORMAT ",\"events\":%" G_GUINT64_FORMAT
                                       ",\"event_checks\":%" G_GUINT64_FORMAT
                                       ",\"events_unconfirmed\":%" G_GUINT64_FORMAT
                                       ",\"subscriptions_lost\":%" G_GUINT64_FORMAT
                                       ",\"ssdp_limited\":%" G_GUINT64_FORMAT ",\"byebyes_held\":%" G_GUINT64_FORMAT
                                       ",\"byebyes_unconfirmed\":%" G_GUINT64_FORMAT
                                       ",\"mappings\":%zu,\"busy\":%zu",
                                       st->ssdp_refused, st->services_refused, st->bodies_refused, st->actions,
                                       st->action_errors, st->action_timeouts, st->recreations, st->notifies,
                                       st->notifies_ignored, st->events,
                                       st->event_checks, st->events_unconfirmed, st->subscriptions_lost,
                                       st->ssdp_limited, st->byebyes_held, st->byebyes_unconfirmed,
                                       pcpd_upnp_count(d->u), pcpd_upnp_n_busy(d->u));
                emit_line(s);
                return;
        }
        if (n < 2) {
                error_line(a[0], "usage");
                return;
        }
        if (!lookup_key(d, a[1], &id)) {
                error_line(a[0], "no such key");
                return;
        }
        if (g_str_equal(a[0], "remove")) {
                r = pcpd_upnp_remove(d->u, id);
                if (r < 0)
                        error_line(a[0], g_strerror(-r));
        } else if (g_str_equal(a[0], "forget")) {
                r = pcpd_upnp_forget(d->u, id);
                if (r < 0)
                        error_line(a[0], g_strerror(-r));
                g_hash_table_remove(d->keys, &id);
        } else if (g_str_equal(a[0], "get")) {
                const pcpd_upnp_info *m = pcpd_upnp_get(d->u, id);
                GString *s = begin("info");
                g_string_append(s, ",\"key\":");
                json_str(s, a[1]);
                put_info(s, m);
                emit_line(s);
        } else if (g_str_equal(a[0], "record")) {
                pcpd_upnp_record rec;
                char in[INET6_ADDRSTRLEN], igd[INET6_ADDRSTRLEN];

                r = pcpd_upnp_get_record(d->u, id, &rec);
                if (r < 0) {
                        error_line(a[0], g_strerror(-r));
                        return;
                }
                addr_str(&rec.internal_addr, in, sizeof(in));
                addr_str(&rec.igd_addr, igd, sizeof(igd));
                GString *s = begin("record");
                g_string_append(s, ",\"key\":");
                json_str(s, a[1]);
                g_string_append_printf(s,
                                       ",\"protocol\":%u,\"ext_port\":%u,\"int_addr\":\"%s\",\"int_port\":%u,"
                                       "\"permanent\":%s,\"igd\":\"%s\"",
                                       rec.protocol, rec.external_port, in, rec.internal_port,
                                       rec.permanent ? "true" : "false", igd);
                emit_line(s);
        } else
                error_line(a[0], "unknown command");
}

static gboolean on_stdin(GIOChannel *ch, GIOCondition cond, void *ud) {
        driver *d = ud;
        char buf[4096];
        gsize got = 0;
        GIOStatus st;

        st = g_io_channel_read_chars(ch, buf, sizeof(buf), &got, NULL);
        if (got > 0) {
                g_string_append_len(d->line, buf, (gssize) got);
                char *nl;
                while ((nl = memchr(d->line->str, '\n', d->line->len))) {
                        g_autofree char *cmd = g_strndup(d->line->str, (gsize) (nl - d->line->str));
                        g_string_erase(d->line, 0, nl - d->line->str + 1);
                        command(d, cmd);
                }
        }
        if (st == G_IO_STATUS_EOF || st == G_IO_STATUS_ERROR || (cond & (G_IO_HUP | G_IO_ERR))) {
                g_main_loop_quit(d->loop);
                d->watch = 0;
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static gboolean on_signal(void *ud) {
        driver *d = ud;
        g_main_loop_quit(d->loop);
        return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "interface", required_argument, NULL, 'i' },
                { "gateway", required_argument, NULL, 'g' },
                { "action-timeout-ms", required_argument, NULL, 't' },
                { "check-interval", required_argument, NULL, 'c' },
                { "external-interval", required_argument, NULL, 'e' },
                { "retry-min", required_argument, NULL, 'r' },
                { "retry-max", required_argument, NULL, 'R' },
                { "search-interval", required_argument, NULL, 's' },
                { "location-interval", required_argument, NULL, 'l' },
                {},
        };
        pcpd_upnp_config config = {};
        pcpd_upnp_ops ops = { .event = on_event };
        const char *ifname = NULL;
        struct in6_addr gw;
        bool has_gw = false;
        driver d = { .exit_code = 0 };
        GIOChannel *ch;
        guint sigs[2];
        int c, r;

        /* stdout carries the JSON events: every log line goes to stderr */
        g_log_writer_default_set_use_stderr(TRUE);
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'i': ifname = optarg; break;
                case 'g':
                        if (!parse_addr(optarg, &gw)) {
                                fprintf(stderr, "upnp-driver: bad gateway %s\n", optarg);
                                return 2;
                        }
                        has_gw = true;
                        break;
                case 't': config.action_timeout_ms = (uint32_t) atoi(optarg); break;
                case 'c': config.check_interval_s = (uint32_t) atoi(optarg); break;
                case 'e': config.external_check_interval_s = (uint32_t) atoi(optarg); break;
                case 'r': config.retry_min_s = (uint32_t) atoi(optarg); break;
                case 'R': config.retry_max_s = (uint32_t) atoi(optarg); break;
                case 's': config.search_interval_s = (uint32_t) atoi(optarg); break;
                case 'l': config.location_interval_s = (uint32_t) atoi(optarg); break;
                default: return 2;
                }
        }
        if (!ifname) {
                fprintf(stderr, "upnp-driver: --interface is required\n");
                return 2;
        }

        d.loop = g_main_loop_new(NULL, false);
        d.keys = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
        d.line = g_string_new(NULL);
        r = pcpd_upnp_new(NULL, &config, &ops, &d, &d.u);
        if (r < 0) {
                fprintf(stderr, "upnp-driver: pcpd_upnp_new: %s\n", g_strerror(-r));
                return 1;
        }
        r = pcpd_upnp_set_interface(d.u, ifname, AF_INET, has_gw ? &gw : NULL);
        if (r < 0) {
                fprintf(stderr, "upnp-driver: pcpd_upnp_set_interface(%s): %s\n", ifname, g_strerror(-r));
                pcpd_upnp_free(d.u);
                return 1;
        }
        ch = g_io_channel_unix_new(0);
        g_io_channel_set_encoding(ch, NULL, NULL);
        g_io_channel_set_flags(ch, G_IO_FLAG_NONBLOCK, NULL);
        d.watch = g_io_add_watch(ch, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, &d);
        sigs[0] = g_unix_signal_add(SIGTERM, on_signal, &d);
        sigs[1] = g_unix_signal_add(SIGINT, on_signal, &d);
        puts("{\"ev\":\"ready\"}");
        fflush(stdout);

        g_main_loop_run(d.loop);

        g_source_remove(sigs[0]);
        g_source_remove(sigs[1]);
        if (d.watch)
                g_source_remove(d.watch);
        g_io_channel_unref(ch);
        d.u = pcpd_upnp_free(d.u);
        g_hash_table_unref(d.keys);
        g_string_free(d.line, true);
        g_main_loop_unref(d.loop);
        puts("{\"ev\":\"exit\"}");
        return d.exit_code;
}
