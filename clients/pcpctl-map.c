/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * map and peer: ask pcpd for a mapping, then hold it until interrupted.
 *
 * A mapping belongs to the bus connection that asked for it, so pcpctl stays connected
 * while it holds one. When pcpd restarts (an upgrade, systemctl restart), the router
 * still has the mapping and pcpd has kept it on disk for a grace period: pcpctl asks
 * again with the same arguments as soon as pcpd is back on the bus, which gives back the
 * same mapping (old nonce, same external port), and says what really happened.
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "pcpctl-format.h"
#include "pcpctl-output.h"
#include "pcpctl-util.h"
#include "pcpctl.h"

/* signals kept while the first AddMapping is on its way: its own InterfacesAdded and
 * PropertiesChanged, and those of other programs' mappings at the same moment */
#define EARLY_SIGNALS_MAX 32

typedef struct Holder {
        sd_bus *bus;
        sd_event *event;
        bool is_map;
        const char *verb;

        /* what was asked for: asked again after a restart of pcpd */
        const char *protocol;
        uint16_t port;
        const char *remote_address;
        uint16_t remote_port;

        char *path;
        MappingInfo info; /* as pcpd last told */
        bool have_info;
        bool waiting;     /* --wait: not active yet */
        bool gone;        /* removed by pcpd: nothing left to release */
        bool detached;    /* pcpd is off the bus; the router may still hold the mapping */
        bool reattaching; /* pcpd is back and was asked again */
        char *previous_external;
        bool releasing; /* Release() is on its way */
        bool release_persistent; /* --wait failed on a persistent mapping this call made */

        /* The first AddMapping is on its way: the signals about mappings that arrive before
         * its reply are kept (in order, a bounded number) to be read once the path is
         * known. pcpd announces a new mapping with InterfacesAdded, every property
         * included, before it replies: that saves the GetAll. */
        bool adding;
        sd_bus_message *early[EARLY_SIGNALS_MAX];
        size_t n_early;
        bool early_overflow; /* some were dropped: ask GetAll */
        /* The mappings pcpd announced as new while the first AddMapping was on its way, made
         * for this process (PID): kept apart from early[], and not bounded by it, to tell
         * a mapping this call made from one pcpd shared or reclaimed (no InterfacesAdded:
         * it existed before), which a failed --wait --persistent must not release. */
        char **added;
        size_t n_added;
        bool created;        /* the mapping followed is one this call made */
        bool finish_asked;   /* interrupted before the reply: release once it is in */
        int finish_status;

        sd_bus_slot *release_slot, *add_slot, *properties_slot;
        sd_event_source *expiry;
        char *last_line;
        int status;
        int final_status; /* once released */
} Holder;

static void holder_drop_early(Holder *h) {
        for (size_t i = 0; i < h->n_early; i++)
                sd_bus_message_unref(h->early[i]);
        h->n_early = 0;
}

static void holder_drop_added(Holder *h) {
        for (size_t i = 0; i < h->n_added; i++)
                free(h->added[i]);
        free(h->added);
        h->added = NULL;
        h->n_added = 0;
}

static void holder_done(Holder *h) {
        holder_drop_early(h);
        holder_drop_added(h);
        sd_bus_slot_unref(h->release_slot);
        sd_bus_slot_unref(h->add_slot);
        sd_bus_slot_unref(h->properties_slot);
        sd_event_source_disable_unref(h->expiry);
        free(h->path);
        free(h->previous_external);
        free(h->last_line);
        mapping_info_done(&h->info);
}

static void holder_exit(Holder *h, int status) {
        h->status = status;
        (void) sd_event_exit(h->event, 0);
}

static int append_options(sd_bus_message *m, bool is_map) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (arg_map.lifetime_set) {
                r = sd_bus_message_append(m, "{sv}", "lifetime", "u", arg_map.lifetime);
                if (r < 0)
                        return r;
        }
        if (arg_map.description != NULL) {
                r = sd_bus_message_append(m, "{sv}", "description", "s", arg_map.description);
                if (r < 0)
                        return r;
        }
        if (arg_map.family != NULL) {
                r = sd_bus_message_append(m, "{sv}", "family", "s", arg_map.family);
                if (r < 0)
                        return r;
        }
        if (arg_map.interface != NULL) {
                r = sd_bus_message_append(m, "{sv}", "interface", "s", arg_map.interface);
                if (r < 0)
                        return r;
        }
        if (is_map && arg_map.prefer_failure) {
                r = sd_bus_message_append(m, "{sv}", "prefer-failure", "b", 1);
                if (r < 0)
                        return r;
        }
        if (is_map && arg_map.persistent) {
                r = sd_bus_message_append(m, "{sv}", "persistent", "b", 1);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* AddMapping or AddPeer with what the user asked for: the same call the first time and
 * after a restart of pcpd. */
static int new_add_call(Holder *h, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = bus_new_call(h->bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, h->is_map ? "AddMapping" : "AddPeer", &m);
        if (r < 0)
                return r;
        r = h->is_map ? sd_bus_message_append(m, "sqq", h->protocol, h->port, arg_map.external_port)
                      : sd_bus_message_append(m, "sqsq", h->protocol, h->port, h->remote_address, h->remote_port);
        if (r < 0)
                return r;
        r = append_options(m, h->is_map);
        if (r < 0)
                return r;
        *ret = m;
        m = NULL;
        return 0;
}

/* TCP or UDP, by name or number (as parse_protocol() accepts them): the protocols whose
 * port owners pcpd can look up */
static bool protocol_looked_up(const char *protocol) {
        uint64_t v;

        if (streq(protocol, "tcp") || streq(protocol, "udp"))
                return true;
        return parse_uint(protocol, 255, &v) == 0 && (v == 6 || v == 17);
}

/* The error of AddMapping or AddPeer as a user of pcpctl can act on it. A port that is not
 * the caller's: pcpd's own words, which say why (no socket of the caller's on the port, one
 * that is bound but not listening, one on the wrong address, another user's socket on the
 * internal address, a protocol whose owners pcpd cannot look up), and a hint where pcpctl
 * has one: only for the protocols pcpd cannot look up (pcpd wants the socket itself, which
 * pcpctl does not have). Returns a string to free, or NULL when out of memory. */
static char *add_error_message(Holder *h, const sd_bus_error *error, int r) {
        _cleanup_free_ char *why = NULL;
        char *s = NULL;

        if (!sd_bus_error_has_name(error, PCP1_ERROR_PORT_NOT_OWNED))
                return strdup(bus_error_message(error, r));
        why = text_sanitize(isempty(error->message) ? error->name : error->message);
        if (why == NULL)
                return NULL;
        if (protocol_looked_up(h->protocol)) {
                s = why;
                why = NULL;
                return s;
        }
        if (asprintf(&s, _("%s pcpctl has no such socket: map the port as root, or let the program bound to it ask "
                           "pcpd for the mapping."),
                     why) < 0)
                return NULL;
        return s;
}

/* "198.51.100.7:8080" of an active mapping, or NULL */
static char *active_endpoint(const MappingInfo *i) {
        if (!streq_ptr(i->state, PCP1_MAPPING_ACTIVE) && !streq_ptr(i->state, PCP1_MAPPING_RENEWING))
                return NULL;
        if (i->external_port == 0)
                return NULL;
        return format_endpoint(i->external_address, i->external_port);
}

static void print_mapping(Holder *h) {
        if (arg_json != JSON_OFF) {
                Json j;

                json_init(&j, stdout, arg_json);
                json_mapping(&j, &h->info);
                (void) json_finish(&j);
        } else
                printf("%s\n", h->last_line);
        fflush(stdout);
}

static void on_release_done(Holder *h, const sd_bus_error *e) {
        if (e != NULL && !sd_bus_error_has_names(e, SD_BUS_ERROR_UNKNOWN_OBJECT, PCP1_ERROR_NOT_FOUND)) {
                log_error(_("Failed to release mapping %s: %s"), mapping_id(h->path), bus_error_message(e, -EIO));
                h->final_status = EXIT_FAILURE;
        }
        h->gone = true;
        holder_exit(h, h->final_status);
}

static int on_release_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        on_release_done(userdata, sd_bus_message_get_error(m));
        return 0;
}

/* The router keeps a mapping that pcpd did not delete until its lifetime runs out. */
static void log_router_keeps(Holder *h, const char *prefix) {
        uint64_t now = now_realtime_usec();
        char when[80], rel[80];

        if (h->have_info && h->info.expires_at > now)
                log_error(_("%s; the router keeps the mapping until it expires at %s (%s)."), prefix,
                          format_clock(when, sizeof(when), h->info.expires_at, now),
                          format_relative(rel, sizeof(rel), h->info.expires_at, now));
        else
                log_error("%s.", prefix);
}

/* Ends the hold with status: releases the mapping first unless it is gone, or persistent
 * (but for one this call made whose --wait failed).
 * The release must happen inside the loop: leaving the loop closes the bus. */
static void holder_finish(Holder *h, int status) {
        int r;

        if (h->releasing) { /* asked twice: stop waiting for the answer */
                holder_exit(h, EXIT_FAILURE);
                return;
        }
        if (h->gone || (arg_map.persistent && !h->release_persistent)) {
                holder_exit(h, status);
                return;
        }
        if (h->detached) {
                log_router_keeps(h, _("Failed to release the mapping: pcpd is not running; it deletes the "
                                      "mapping when it is back"));
                holder_exit(h, EXIT_FAILURE);
                return;
        }
        if (h->adding) {
                /* interrupted while the first AddMapping is on its way: release what it
                 * gives once the reply is in; asked again, stop waiting (leaving closes
                 * the connection, and pcpd drops what it gave a connection that is gone) */
                if (h->finish_asked) {
                        holder_exit(h, EXIT_FAILURE);
                        return;
                }
                h->finish_asked = true;
                h->finish_status = status;
                return;
        }
        if (h->path == NULL) { /* asked again after a restart of pcpd: the same */
                holder_exit(h, EXIT_FAILURE);
                return;
        }
        h->final_status = status;
        r = sd_bus_call_method_async(h->bus, &h->release_slot, PCP1_BUS_NAME, h->path, PCP1_MAPPING_IFACE,
                                     "Release", on_release_reply, h, NULL);
        if (r < 0) {
                log_error(_("Failed to release mapping %s: %s"), mapping_id(h->path), strerror(-r));
                holder_exit(h, EXIT_FAILURE);
                return;
        }
        h->releasing = true;
}

/* A persistent mapping of pcpd's that this call did not make, left as it is: how it is
 * removed. pcpctl release, unless it is a declared mapping, which goes only with its
 * declaration (pcpd refuses RemoveMapping). */
static void log_left_as_it_is(Holder *h) {
        _cleanup_free_ char *name = NULL, *file = NULL;
        const char *id = mapping_id(h->path);

        if (isempty(h->info.declared)) {
                log_error(_("Mapping %s existed before this call (pcpd shares it) and is left as it is; remove it "
                            "with: pcpctl release %s"),
                          id, id);
                return;
        }
        name = text_sanitize(h->info.declared);
        file = declared_etc_file(h->bus, h->info.declared);
        if (file != NULL)
                log_error(_("Mapping %s existed before this call (it is the mapping declared in %s) and is left as it "
                            "is; remove that file and reload pcpd (systemctl reload pcpd) to remove it."),
                          id, file);
        else
                log_error(_("Mapping %s existed before this call (it is the declared mapping %s) and is left as it is; "
                            "remove it with: pcpctl undeclare %s"),
                          id, strempty(name), strempty(name));
}

/* Prints what changed; handles --wait and the end of a re-attachment. */
static void holder_update(Holder *h) {
        _cleanup_free_ char *line = NULL;
        const char *state;

        if (!h->have_info)
                return;
        state = strempty(h->info.state);

        if (h->waiting && streq(state, PCP1_MAPPING_FAILED)) {
                _cleanup_free_ char *e = text_sanitize(h->info.error);

                log_error(_("Failed to %s: the mapping failed: %s"), h->verb, isempty(e) ? _("unknown error") : e);
                h->waiting = false;
                /* a persistent mapping outlives pcpctl and pcpd retries it for good: release
                 * the one this call made, as without --persistent; one that existed before
                 * (pcpd shares it) is not this call's to remove */
                if (arg_map.persistent && h->created)
                        h->release_persistent = true;
                else if (arg_map.persistent && h->path != NULL)
                        log_left_as_it_is(h);
                holder_finish(h, EXIT_FAILURE);
                return;
        }

        if (h->reattaching && (streq(state, PCP1_MAPPING_ACTIVE) || streq(state, PCP1_MAPPING_RENEWING))) {
                _cleanup_free_ char *now = active_endpoint(&h->info);

                h->reattaching = false;
                if (now != NULL && (h->previous_external == NULL || streq(now, h->previous_external)))
                        log_error(_("pcpd restarted; mapping re-established at %s."), now);
                else if (now != NULL)
                        log_error(_("pcpd restarted; the mapping is now at %s (it was at %s)."), now,
                                  h->previous_external);
        }

        if (h->waiting && !streq(state, PCP1_MAPPING_ACTIVE))
                return; /* --wait prints only the outcome */

        line = describe_mapping(&h->info);
        if (line == NULL)
                return;
        if (h->last_line == NULL || !streq(h->last_line, line)) {
                free(h->last_line);
                h->last_line = line;
                line = NULL;
                print_mapping(h);
        }

        if (h->waiting && streq(state, PCP1_MAPPING_ACTIVE)) {
                h->waiting = false;
                if (arg_map.persistent) /* nothing to hold: it outlives us */
                        holder_exit(h, EXIT_SUCCESS);
        }
}

/* A signal that came before the first AddMapping's reply: kept for when the path is known. */
static int holder_keep_early(Holder *h, sd_bus_message *m) {
        if (h->n_early == EARLY_SIGNALS_MAX) {
                h->early_overflow = true;
                return 0;
        }
        h->early[h->n_early++] = sd_bus_message_ref(m);
        return 0;
}

static int on_mapping_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const char *interface;
        int r;

        if (h->adding)
                return holder_keep_early(h, m);
        if (h->path == NULL || !h->have_info || !streq(strempty(sd_bus_message_get_path(m)), h->path))
                return 0;
        r = sd_bus_message_read_basic(m, 's', &interface);
        if (r < 0 || !streq(interface, PCP1_MAPPING_IFACE))
                return 0;
        r = mapping_info_read(m, &h->info, NULL);
        if (r < 0) {
                log_error(_("Ignoring a malformed PropertiesChanged signal: %s"), strerror(-r));
                return 0;
        }
        holder_update(h);
        return 0;
}

/* A mapping pcpd announces while the first AddMapping is on its way: noted when it was
 * made for this process. pcpd announces a mapping it makes before it replies, and never
 * one it shares or reclaims; the PID tells it from one another program made at the same
 * moment, or a restored one announced late after a restart of pcpd (0: not told). */
static void holder_note_added(Holder *h, sd_bus_message *m) {
        _cleanup_(mapping_info_done) MappingInfo info = {0};
        char **a;

        if (sd_bus_message_rewind(m, true) < 0 || mapping_info_read_added(m, &info) <= 0 ||
            (info.pid != 0 && info.pid != (uint32_t) getpid()))
                return;
        a = reallocarray(h->added, h->n_added + 1, sizeof(char *));
        if (a == NULL)
                return; /* then it counts as shared: left, and the user told */
        h->added = a;
        h->added[h->n_added] = info.path;
        info.path = NULL;
        h->n_added++;
}

static bool holder_was_added(Holder *h, const char *path) {
        for (size_t i = 0; i < h->n_added; i++)
                if (streq(h->added[i], path))
                        return true;
        return false;
}

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;

        /* after the first reply: a mapping of another program, or ours again after a
         * restart of pcpd, which pcpctl reads with GetAll */
        if (!h->adding)
                return 0;
        holder_note_added(h, m);
        return holder_keep_early(h, m);
}

static int on_mapping_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

/* Every signal of pcpd, through one match rule (one AddMatch instead of three): the
 * changes of the mappings, their removal, and InterfacesAdded, which pcpctl reads only
 * while its first AddMapping is on its way. */
static int on_pcpd_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        if (sd_bus_message_is_signal(m, PROPERTIES_IFACE, "PropertiesChanged"))
                return on_mapping_changed(m, userdata, ret_error);
        if (sd_bus_message_is_signal(m, PCP1_MANAGER_IFACE, "MappingRemoved") &&
            streq(strempty(sd_bus_message_get_path(m)), PCP1_MANAGER_PATH))
                return on_mapping_removed(m, userdata, ret_error);
        if (sd_bus_message_is_signal(m, OBJECT_MANAGER_IFACE, "InterfacesAdded") &&
            streq(strempty(sd_bus_message_get_path(m)), PCP1_MANAGER_PATH))
                return on_interfaces_added(m, userdata, ret_error);
        return 0;
}

static int on_mapping_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const char *path, *reason, *text;

        if (sd_bus_message_read(m, "os", &path, &reason) < 0 || h->path == NULL || !streq(path, h->path))
                return 0;
        h->gone = true;
        /* "released" while our Release() is on its way is its outcome. Any other reason
         * means pcpd removed the mapping first (an administrator's RevokeApp just before
         * the SIGINT), and our Release() can only fail (NotFound or UnknownObject, the
         * answers for a mapping that is gone): said and ended as when it comes while
         * held, without waiting for that answer. */
        if (h->releasing && streq(reason, PCP1_REASON_RELEASED))
                return 0;
        _cleanup_free_ char *r = text_sanitize(reason);
        text = removal_reason_explained(reason);
        if (streq(reason, PCP1_REASON_RELEASED))
                log_error(_("The mapping was released by another program of the same user."));
        else if (text != NULL)
                log_error(_("The mapping was removed: %s (%s)."), r != NULL ? r : "?", text);
        else
                log_error(_("The mapping was removed: %s."), r != NULL ? r : "?");
        holder_exit(h, EXIT_FAILURE);
        return 0;
}

static int on_initial_properties(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        int r;

        h->properties_slot = sd_bus_slot_unref(h->properties_slot);
        if (e != NULL) {
                if (h->detached) /* pcpd went away in between: the name watch says so */
                        return 0;
                log_error(_("Failed to %s: %s"), h->verb, bus_error_message(e, -EIO));
                holder_exit(h, EXIT_FAILURE);
                return 0;
        }
        r = mapping_info_read(m, &h->info, NULL);
        if (r < 0) {
                log_error(_("Failed to %s: cannot parse the mapping's properties: %s"), h->verb, strerror(-r));
                holder_exit(h, EXIT_FAILURE);
                return 0;
        }
        h->have_info = true;
        holder_update(h);
        return 0;
}

/* The mapping pcpctl follows from now on: its signals count from here. */
static int holder_set_path(Holder *h, const char *path) {
        char *p = strdup(path);

        if (p == NULL)
                return -ENOMEM;
        free(h->path);
        h->path = p;
        mapping_info_done(&h->info);
        h->info.path = strdup(path);
        if (h->info.path == NULL)
                return -ENOMEM;
        h->have_info = false;
        h->properties_slot = sd_bus_slot_unref(h->properties_slot);
        return 0;
}

/* Follows the mapping at path: its properties now (asynchronously, so that changes queued
 * before the answer are applied before it), then its signals. */
static int holder_follow(Holder *h, const char *path) {
        int r;

        r = holder_set_path(h, path);
        if (r < 0)
                return r;
        return sd_bus_call_method_async(h->bus, &h->properties_slot, PCP1_BUS_NAME, h->path, PROPERTIES_IFACE,
                                        "GetAll", on_initial_properties, h, "s", PCP1_MAPPING_IFACE);
}

/* The signals that came before the first reply, in the order pcpd sent them: the
 * mapping's InterfacesAdded has every property, a PropertiesChanged after it what changed
 * since. True when they gave the mapping's state; false for a mapping that existed
 * before the call (pcpd shares or reclaims one: no InterfacesAdded), or when some were
 * dropped: then GetAll. */
static bool holder_replay_early(Holder *h) {
        bool known = false;

        for (size_t i = 0; i < h->n_early && !h->early_overflow; i++) {
                sd_bus_message *m = h->early[i];
                const char *s;

                if (sd_bus_message_rewind(m, true) < 0)
                        continue;
                if (sd_bus_message_is_signal(m, OBJECT_MANAGER_IFACE, "InterfacesAdded")) {
                        MappingInfo info = {0};

                        if (sd_bus_message_read_basic(m, 'o', &s) < 0 || !streq(s, h->path) ||
                            sd_bus_message_rewind(m, true) < 0 || mapping_info_read_added(m, &info) <= 0)
                                continue;
                        mapping_info_done(&h->info);
                        h->info = info;
                        known = true;
                } else if (known && streq(strempty(sd_bus_message_get_path(m)), h->path)) {
                        if (sd_bus_message_read_basic(m, 's', &s) < 0 || !streq(s, PCP1_MAPPING_IFACE))
                                continue;
                        if (mapping_info_read(m, &h->info, NULL) < 0)
                                known = false; /* malformed: ask */
                }
        }
        holder_drop_early(h);
        return known && !h->early_overflow;
}

static int on_add_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        const char *path;
        int r;

        h->add_slot = sd_bus_slot_unref(h->add_slot);
        h->adding = false;
        bus_call_authorized_end();
        if (e != NULL) {
                _cleanup_free_ char *why = add_error_message(h, e, -EIO);

                holder_drop_early(h);
                log_error(_("Failed to %s: %s"), h->verb, why != NULL ? why : strerror(ENOMEM));
                holder_exit(h, EXIT_FAILURE);
                return 0;
        }
        r = sd_bus_message_read_basic(m, 'o', &path);
        if (r < 0) {
                holder_drop_early(h);
                log_error(_("Failed to %s: cannot parse the reply: %s"), h->verb, strerror(-r));
                holder_exit(h, EXIT_FAILURE);
                return 0;
        }
        r = holder_set_path(h, path);
        h->created = holder_was_added(h, path);
        holder_drop_added(h);
        if (r >= 0 && h->finish_asked) {
                holder_drop_early(h);
                holder_finish(h, h->finish_status);
                return 0;
        }
        if (r >= 0 && holder_replay_early(h)) {
                h->have_info = true;
                holder_update(h);
                return 0;
        }
        if (r >= 0)
                r = holder_follow(h, path);
        if (r < 0) {
                log_error(_("Failed to %s: %s"), h->verb, strerror(-r));
                holder_exit(h, EXIT_FAILURE);
        }
        return 0;
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;

        if (sd_bus_message_is_method_error(m, NULL)) {
                log_error(_("Failed to %s: cannot subscribe to signals."), h->verb);
                holder_exit(h, EXIT_FAILURE);
        }
        return 0;
}

static int on_readd_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        const char *path;
        int r;

        h->add_slot = sd_bus_slot_unref(h->add_slot);
        if (e != NULL) {
                _cleanup_free_ char *why = NULL;

                if (h->detached) /* gone again already */
                        return 0;
                why = add_error_message(h, e, -EIO);
                log_error(_("pcpd restarted, but refused the mapping: %s"), why != NULL ? why : strerror(ENOMEM));
                h->gone = true;
                holder_exit(h, EXIT_FAILURE);
                return 0;
        }
        r = sd_bus_message_read_basic(m, 'o', &path);
        if (r >= 0)
                r = holder_follow(h, path);
        if (r < 0) {
                log_error(_("Failed to %s: %s"), h->verb, strerror(-r));
                holder_exit(h, EXIT_FAILURE);
        }
        return 0;
}

static int on_expired(sd_event_source *s, uint64_t usec, void *userdata) {
        Holder *h = userdata;
        char when[80];

        if (h->detached)
                log_error(_("The mapping expired at the router at %s; pcpctl asks for it again when pcpd is "
                            "back."),
                          format_clock(when, sizeof(when), h->info.expires_at, now_realtime_usec()));
        return 0;
}

static void holder_detach(Holder *h) {
        if (h->detached)
                return;
        h->detached = true;
        h->reattaching = false;
        h->add_slot = sd_bus_slot_unref(h->add_slot);
        h->properties_slot = sd_bus_slot_unref(h->properties_slot);
        if (h->have_info) {
                char *e = active_endpoint(&h->info);

                if (e != NULL) {
                        free(h->previous_external);
                        h->previous_external = e;
                }
        }
        /* a restarted pcpd numbers its objects anew: the old path may soon be another
         * mapping's, whose signals must not be taken for ours */
        free(h->path);
        h->path = NULL;
        log_router_keeps(h, _("pcpd went away"));
        log_error(_("Waiting for pcpd to come back, to ask for the mapping again."));
        h->expiry = sd_event_source_disable_unref(h->expiry);
        if (h->have_info && h->info.expires_at > now_realtime_usec())
                (void) sd_event_add_time(h->event, &h->expiry, CLOCK_REALTIME, h->info.expires_at, 0, on_expired, h);
}

static void holder_reattach(Holder *h) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        h->detached = false;
        h->reattaching = true;
        h->expiry = sd_event_source_disable_unref(h->expiry);
        r = new_add_call(h, &m);
        if (r >= 0)
                r = sd_bus_call_async(h->bus, &h->add_slot, m, on_readd_reply, h, 0);
        if (r < 0) {
                log_error(_("Failed to %s: %s"), h->verb, strerror(-r));
                holder_exit(h, EXIT_FAILURE);
        }
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, PCP1_BUS_NAME))
                return 0;
        if (h->adding) /* pcpd started for the call, or gone before its reply: the reply says */
                return 0;
        if (!isempty(old_owner)) {
                if (h->releasing) { /* nobody to answer our Release() now */
                        log_router_keeps(h, _("pcpd went away before it released the mapping"));
                        h->gone = true;
                        holder_exit(h, EXIT_FAILURE);
                        return 0;
                }
                holder_detach(h);
        }
        if (!isempty(new_owner) && h->detached)
                holder_reattach(h);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        holder_finish(userdata, EXIT_SUCCESS);
        return 0;
}

static int on_disconnect(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Holder *h = userdata;

        h->gone = true;
        log_router_keeps(h, _("Lost the connection to the system bus"));
        holder_exit(h, EXIT_FAILURE);
        return 0;
}

int check_mapping_args(int argc, char **argv) {
        const char *protocol;
        uint16_t port;

        if (parse_protocol(argv[1], &protocol) < 0 || parse_port(argv[2], _("port"), &port) < 0)
                return EXIT_USAGE;
        if (argc > 3 && (parse_address(argv[3]) < 0 || parse_port(argv[4], _("remote port"), &port) < 0))
                return EXIT_USAGE;
        /* pcpd refuses it (prefer-failure needs a suggested external port): said here,
         * before anything is sent */
        if (arg_map.prefer_failure && arg_map.external_port == 0)
                return usage_error(_("Option --prefer-failure needs --external-port= other than 0."));
        return 0;
}

/* --persistent without --wait: the mapping outlives pcpctl, which says where it is. */
static int print_persistent(Holder *h, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = mapping_info_get(h->bus, path, &h->info, &error);
        if (r < 0) {
                log_error(_("Failed to %s: %s"), h->verb, bus_error_message(&error, r));
                return EXIT_FAILURE;
        }
        h->last_line = describe_mapping(&h->info);
        if (h->last_line == NULL)
                return log_oom(), EXIT_FAILURE;
        print_mapping(h);
        if (arg_json != JSON_OFF || !arg_legend)
                return EXIT_SUCCESS;
        if (isempty(h->info.declared))
                printf(_("Mapping %s outlives pcpctl; remove it with: pcpctl release %s\n"), mapping_id(path),
                       mapping_id(path));
        else {
                /* a declared mapping goes only with its declaration: pcpd refuses release */
                _cleanup_free_ char *name = text_sanitize(h->info.declared),
                                    *file = declared_etc_file(h->bus, h->info.declared);

                if (file != NULL)
                        printf(_("Mapping %s is the mapping declared in %s, which outlives pcpctl; remove that file "
                                 "and reload pcpd (systemctl reload pcpd) to remove it.\n"),
                               mapping_id(path), file);
                else
                        printf(_("Mapping %s is the declared mapping %s, which outlives pcpctl; remove it with: "
                                 "pcpctl undeclare %s\n"),
                               mapping_id(path), strempty(name), strempty(name));
        }
        return EXIT_SUCCESS;
}

/* --persistent without --wait: one call and the mapping's properties, nothing to follow. */
static int add_persistent(Holder *h) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        int r;

        r = new_add_call(h, &m);
        if (r < 0) {
                log_error(_("Failed to %s: %s"), h->verb, strerror(-r));
                return EXIT_FAILURE;
        }
        r = bus_call_authorized(h->bus, arg_ask_password, m, &error, &reply);
        if (r < 0) {
                _cleanup_free_ char *why = add_error_message(h, &error, r);

                log_error(_("Failed to %s: %s"), h->verb, why != NULL ? why : strerror(ENOMEM));
                return EXIT_FAILURE;
        }
        r = sd_bus_message_read_basic(reply, 'o', &path);
        if (r < 0) {
                log_error(_("Failed to %s: cannot parse the reply: %s"), h->verb, strerror(-r));
                return EXIT_FAILURE;
        }
        return print_persistent(h, path);
}

/* Subscribes to what pcpctl follows without waiting for the bus to confirm: AddMatch
 * calls whose replies are not awaited, sent before AddMapping on the same connection.
 * That is enough for no signal about the new mapping to slip by: dbus-daemon handles the
 * messages of one connection in the order they were sent, so the rules are in place
 * before it passes AddMapping on to pcpd, which can emit nothing about the mapping
 * before it has the call. (sd-bus itself dispatches a match only after its AddMatch
 * reply, which for the same reason comes before anything AddMapping causes.) This saves
 * a round trip to the bus per match, and a failed one still ends pcpctl with an error. */
static int holder_subscribe(Holder *h, sd_bus_slot **s1, sd_bus_slot **s2, sd_bus_slot **s3) {
        int r;

        r = sd_bus_add_match_async(h->bus, s1, MATCH_PCPD_SIGNALS, on_pcpd_signal, on_match_installed, h);
        if (r >= 0)
                r = sd_bus_add_match_async(h->bus, s2, MATCH_NAME_OWNER, on_name_owner_changed, on_match_installed,
                                           h);
        if (r >= 0) /* a local match: no message */
                r = sd_bus_add_match(h->bus, s3, MATCH_DISCONNECTED, on_disconnect, h);
        return r;
}

static int hold_mapping(int argc, char **argv, sd_bus *bus, bool is_map) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *s1 = NULL, *s2 = NULL, *s3 = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        Holder h = {
                .bus = bus,
                .is_map = is_map,
                .verb = is_map ? "map" : "peer",
                .status = EXIT_SUCCESS,
        };
        sigset_t mask;
        int r;

        if (parse_protocol(argv[1], &h.protocol) < 0 || parse_port(argv[2], _("port"), &h.port) < 0)
                return EXIT_USAGE;
        if (!is_map) {
                if (parse_address(argv[3]) < 0 || parse_port(argv[4], _("remote port"), &h.remote_port) < 0)
                        return EXIT_USAGE;
                h.remote_address = argv[3];
        }

        if (arg_map.persistent && !arg_map.wait) {
                r = add_persistent(&h);
                holder_done(&h);
                return r;
        }

        /* every answer is awaited in the loop, the first AddMapping's too */
        h.waiting = arg_map.wait;
        r = sd_event_default(&event);
        if (r < 0)
                goto fail;
        h.event = event;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_signal(event, NULL, SIGINT, on_signal, &h);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, &h);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                goto fail;

        /* subscribe before asking, so that no change can slip by */
        if (holder_subscribe(&h, &s1, &s2, &s3) < 0) {
                log_error(_("Failed to %s: cannot subscribe to signals."), h.verb);
                (void) sd_bus_detach_event(bus);
                holder_done(&h);
                return EXIT_FAILURE;
        }
        r = new_add_call(&h, &m);
        if (r >= 0)
                r = bus_call_authorized_async(bus, arg_ask_password, m, &h.add_slot, on_add_reply, &h);
        if (r < 0)
                goto fail;
        h.adding = true;

        r = sd_event_loop(event);
        if (r < 0)
                goto fail;

        bus_call_authorized_end();
        (void) sd_bus_detach_event(bus);
        holder_done(&h);
        return h.status;

fail:
        log_error(_("Failed to %s: %s"), h.verb, strerror(-r));
        bus_call_authorized_end();
        (void) sd_bus_detach_event(bus);
        holder_done(&h);
        return EXIT_FAILURE;
}

int verb_map(int argc, char **argv, sd_bus *bus) {
        return hold_mapping(argc, argv, bus, true);
}

int verb_peer(int argc, char **argv, sd_bus *bus) {
        return hold_mapping(argc, argv, bus, false);
}
