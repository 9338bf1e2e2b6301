/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * monitor: one line per event, as resolvectl monitor and busctl monitor print theirs.
 *
 * pcpd's signals carry only what changed; to say "mapping 3: tcp 8080 -> A:P" when only
 * its State changed, monitor keeps the last known properties of the manager and of every
 * mapping (read once at the start and again whenever pcpd starts).
 */

#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-event.h>

#include "pcpctl-format.h"
#include "pcpctl-output.h"
#include "pcpctl-util.h"
#include "pcpctl.h"

#define MONITOR_MAPPINGS_MAX (1024u * 1024u)

typedef struct Monitor {
        sd_bus *bus;
        ManagerInfo manager;
        MappingInfo *mappings;
        size_t n_mappings;
        /* pcpd started: what it holds is being read; the signals before the answers
         * are in them, and are not printed one by one */
        sd_bus_slot *seed_manager, *seed_mappings;
} Monitor;

static bool monitor_seeding(const Monitor *mon) {
        return mon->seed_manager != NULL || mon->seed_mappings != NULL;
}

static void monitor_done(Monitor *mon) {
        mon->seed_manager = sd_bus_slot_unref(mon->seed_manager);
        mon->seed_mappings = sd_bus_slot_unref(mon->seed_mappings);
        manager_info_done(&mon->manager);
        mappings_free(mon->mappings, mon->n_mappings);
        mon->mappings = NULL;
        mon->n_mappings = 0;
}

static MappingInfo *monitor_find(Monitor *mon, const char *path) {
        for (size_t i = 0; i < mon->n_mappings; i++)
                if (streq_ptr(mon->mappings[i].path, path))
                        return &mon->mappings[i];
        return NULL;
}

/* The cached mapping at path, made (empty) when unknown. */
static MappingInfo *monitor_get(Monitor *mon, const char *path) {
        MappingInfo *m = monitor_find(mon, path), *a;

        if (m != NULL)
                return m;
        if (mon->n_mappings >= MONITOR_MAPPINGS_MAX)
                return NULL;
        a = realloc(mon->mappings, (mon->n_mappings + 1) * sizeof(MappingInfo));
        if (a == NULL)
                return NULL;
        mon->mappings = a;
        m = &mon->mappings[mon->n_mappings];
        *m = (MappingInfo){.path = strdup(path)};
        if (m->path == NULL)
                return NULL;
        mon->n_mappings++;
        return m;
}

static void monitor_forget(Monitor *mon, const char *path) {
        MappingInfo *m = monitor_find(mon, path);

        if (m == NULL)
                return;
        mapping_info_done(m);
        *m = mon->mappings[--mon->n_mappings];
}

/* The answer of a call to pcpd when it is not on the bus (and could not be started). */
static bool error_is_not_running(const sd_bus_error *e) {
        static const char spawn[] = "org.freedesktop.DBus.Error.Spawn.";

        return sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER) ||
               (e->name != NULL && strncmp(e->name, spawn, strlen(spawn)) == 0);
}

/* What pcpd holds now: nothing when it is not running. Any other failure is logged and
 * returned: monitor would show pcpd as not running, or with no mappings, when it only
 * could not read them. */
static int monitor_seed(Monitor *mon) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        MappingInfo *mappings = NULL;
        size_t n = 0;
        int r;

        monitor_done(mon);
        r = manager_info_get(mon->bus, &mon->manager, &error);
        if (r < 0 && error_is_not_running(&error))
                return 0;
        if (r >= 0) {
                sd_bus_error_free(&error);
                r = mappings_get(mon->bus, &mappings, &n, &error);
                if (r < 0 && error_is_not_running(&error)) { /* it stopped just now */
                        monitor_done(mon);
                        return 0;
                }
        }
        if (r < 0) {
                log_error(_("Failed to monitor: %s"), bus_error_message(&error, r));
                monitor_done(mon);
                return r;
        }
        mon->mappings = mappings;
        mon->n_mappings = n;
        return 0;
}

/* ---- text ---- */

static void print_prefix(const char *what) {
        uint64_t now = now_realtime_usec();
        char stamp[80];

        printf("%s%s%s %s", ansi_grey(), format_clock(stamp, sizeof(stamp), now, now), ansi_normal(), what);
}

static void print_mapping_prefix(const char *path) {
        _cleanup_free_ char *id = text_sanitize(mapping_id(path));
        char *what = NULL;

        if (asprintf(&what, _("mapping %s"), id != NULL ? id : "?") < 0)
                what = NULL;
        print_prefix(what != NULL ? what : "?");
        free(what);
}

/* ", expires in 59min 59s" for a mapping with a lifetime */
static void print_expiry(const MappingInfo *m) {
        uint64_t now = now_realtime_usec();
        char rel[80];

        if (m->expires_at == 0)
                return;
        if (m->expires_at <= now)
                printf(_(", expired"));
        else
                printf(_(", expires %s"), format_relative(rel, sizeof(rel), m->expires_at, now));
}

static void print_mapping_line(const MappingInfo *m) {
        _cleanup_free_ char *line = describe_mapping(m);
        const char *color = mapping_state_color(m->state);

        printf(": %s%s%s", color, line != NULL ? line : "?", color[0] != '\0' ? ansi_normal() : "");
        if (streq_ptr(m->state, PCP1_MAPPING_ACTIVE))
                print_expiry(m);
}

static void print_added(const MappingInfo *m) {
        _cleanup_free_ char *app = text_sanitize(m->app_id), *desc = text_sanitize(m->description);

        print_mapping_prefix(m->path);
        printf(" %s%s%s", ansi_highlight_green(), _("added"), ansi_normal());
        print_mapping_line(m);
        printf(_(", uid %" PRIu32), m->uid);
        if (!isempty(app))
                printf(_(", app %s"), app);
        if (!isempty(desc))
                printf(", \"%s\"", desc);
        printf("\n");
}

static void print_changed(const MappingInfo *m, PropMask changed) {
        const PropMask shown = PROP_BIT(MAPPING_STATE) | PROP_BIT(MAPPING_ERROR) |
                               PROP_BIT(MAPPING_EXTERNAL_ADDRESS) | PROP_BIT(MAPPING_EXTERNAL_PORT) |
                               PROP_BIT(MAPPING_LIFETIME);

        if (changed & shown) {
                print_mapping_prefix(m->path);
                print_mapping_line(m);
        } else if (changed & PROP_BIT(MAPPING_EXPIRES_AT)) {
                print_mapping_prefix(m->path);
                printf(" %s", _("renewed"));
                print_expiry(m);
        } else if (changed & (PROP_BIT(MAPPING_OWNER) | PROP_BIT(MAPPING_PID))) {
                _cleanup_free_ char *owner = text_sanitize(m->owner);

                print_mapping_prefix(m->path);
                printf(_(" is held by %s (PID %" PRIu32 ") now"), owner != NULL ? owner : "?", m->pid);
        } else if (changed & PROP_BIT(MAPPING_PERSISTENT)) {
                print_mapping_prefix(m->path);
                printf(" %s", m->persistent ? _("is persistent now") : _("is not persistent any more"));
        } else if (changed & PROP_BIT(MAPPING_SERVER)) {
                _cleanup_free_ char *server = text_sanitize(m->server);

                print_mapping_prefix(m->path);
                printf(_(" moved to server %s"), server != NULL ? server : "?");
        } else if (changed & PROP_BIT(MAPPING_INTERNAL_ADDRESS)) {
                _cleanup_free_ char *a = text_sanitize(m->internal_address);

                print_mapping_prefix(m->path);
                printf(_(" has the internal address %s now"), a != NULL ? a : "?");
        } else
                return; /* nothing a person would notice (the suggested port follows the granted one) */
        printf("\n");
}

static void print_removed(const char *path, const char *reason) {
        _cleanup_free_ char *r = text_sanitize(reason);
        const char *why = removal_reason_explained(reason);

        print_mapping_prefix(path);
        printf(" %s%s%s: %s", ansi_highlight_red(), _("removed"), ansi_normal(), r != NULL ? r : "?");
        if (why != NULL)
                printf(" (%s)", why);
        printf("\n");
}

static bool strv_equal(char *const *a, char *const *b) {
        size_t n = strv_length(a);

        if (n != strv_length(b))
                return false;
        for (size_t k = 0; k < n; k++)
                if (!streq(a[k], b[k]))
                        return false;
        return true;
}

static bool servers_equal(const ServerList *a, const ServerList *b) {
        if (a->n != b->n)
                return false;
        for (size_t k = 0; k < a->n; k++)
                if (!streq_ptr(a->items[k].address, b->items[k].address) ||
                    !streq_ptr(a->items[k].protocol, b->items[k].protocol))
                        return false;
        return true;
}

static bool state_is_disabled(const ManagerInfo *i) {
        return streq_ptr(i->state, PCP1_STATE_DISABLED);
}

/* What a signal carried without changing anything shown (a value published again, or
 * one that monitor read at pcpd's start already): no line for it. Enabled false and State
 * "disabled" are one change, which pcpd may tell in one signal or two (State first while
 * it removes the mappings, then Enabled): one line "pcpd: disabled", at the first. */
static PropMask manager_really_changed(const ManagerInfo *before, const ManagerInfo *after, PropMask carried) {
        if (before->enabled == after->enabled)
                carried &= ~PROP_BIT(MANAGER_ENABLED);
        if (streq_ptr(before->state, after->state))
                carried &= ~PROP_BIT(MANAGER_STATE);
        if (!after->enabled && state_is_disabled(after)) {
                if (carried & PROP_BIT(MANAGER_ENABLED)) /* says it, now or said so already */
                        carried &= ~PROP_BIT(MANAGER_STATE);
                if (state_is_disabled(before))
                        carried &= ~PROP_BIT(MANAGER_ENABLED);
                if (!before->enabled)
                        carried &= ~PROP_BIT(MANAGER_STATE);
        }
        if (streq_ptr(before->state_error, after->state_error))
                carried &= ~PROP_BIT(MANAGER_STATE_ERROR);
        if (strv_equal(before->external_addresses, after->external_addresses))
                carried &= ~PROP_BIT(MANAGER_EXTERNAL_ADDRESSES);
        if (strv_equal(before->prefix64, after->prefix64))
                carried &= ~PROP_BIT(MANAGER_PREFIX64);
        if (servers_equal(&before->servers, &after->servers))
                carried &= ~PROP_BIT(MANAGER_SERVERS);
        return carried;
}

static void print_manager_changed(const ManagerInfo *i, PropMask changed) {
        const char *sep = "";
        bool any = false;

        if (changed & PROP_BIT(MANAGER_ENABLED)) {
                print_prefix("pcpd:");
                printf(" %s", i->enabled ? _("enabled") : _("disabled"));
                sep = ";";
                any = true;
        }
        if (changed & PROP_BIT(MANAGER_STATE)) {
                _cleanup_free_ char *s = text_sanitize(i->state);
                const char *color = manager_state_color(i->state);

                if (!any)
                        print_prefix("pcpd:");
                if (state_is_disabled(i)) /* as Enabled false says it: one change, one word */
                        printf("%s %s", sep, _("disabled"));
                else
                        printf(_("%s state %s%s%s"), sep, color, s != NULL ? s : "?",
                               color[0] != '\0' ? ansi_normal() : "");
                sep = ";";
                any = true;
        }
        if ((changed & PROP_BIT(MANAGER_STATE_ERROR)) && !isempty(i->state_error)) {
                _cleanup_free_ char *s = text_sanitize(i->state_error);

                if (!any)
                        print_prefix("pcpd:");
                printf("%s %s", sep, s != NULL ? s : "?");
                sep = ";";
                any = true;
        }
        if (changed & PROP_BIT(MANAGER_EXTERNAL_ADDRESSES)) {
                if (!any)
                        print_prefix("pcpd:");
                printf(_("%s external addresses"), sep);
                for (char **a = i->external_addresses; a != NULL && *a != NULL; a++) {
                        _cleanup_free_ char *s = text_sanitize(*a);

                        printf("%s %s", a == i->external_addresses ? "" : ",", s != NULL ? s : "?");
                }
                if (strv_length(i->external_addresses) == 0)
                        printf(" %s-%s", ansi_grey(), ansi_normal());
                sep = ";";
                any = true;
        }
        if (changed & PROP_BIT(MANAGER_SERVERS)) {
                if (!any)
                        print_prefix("pcpd:");
                printf(_("%s servers"), sep);
                for (size_t k = 0; k < i->servers.n; k++) {
                        _cleanup_free_ char *a = text_sanitize(i->servers.items[k].address),
                                            *p = text_sanitize(i->servers.items[k].protocol);

                        printf("%s %s (%s)", k == 0 ? "" : ",", a != NULL ? a : "?", p != NULL ? p : "?");
                }
                if (i->servers.n == 0)
                        printf(" %s-%s", ansi_grey(), ansi_normal());
                sep = ";";
                any = true;
        }
        if (changed & PROP_BIT(MANAGER_PREFIX64)) {
                if (!any)
                        print_prefix("pcpd:");
                printf(_("%s NAT64 prefixes"), sep);
                for (char **a = i->prefix64; a != NULL && *a != NULL; a++) {
                        _cleanup_free_ char *s = text_sanitize(*a);

                        printf("%s %s", a == i->prefix64 ? "" : ",", s != NULL ? s : "?");
                }
                if (strv_length(i->prefix64) == 0)
                        printf(" %s-%s", ansi_grey(), ansi_normal());
                any = true;
        }
        /* MappingCount follows the added and removed lines */
        if (any)
                printf("\n");
}

/* ---- JSON lines ---- */

static void json_event(Json *j, const char *event) {
        json_init(j, stdout, arg_json);
        json_begin_object(j);
        json_key(j, "Time");
        json_uint(j, now_realtime_usec());
        json_key(j, "Event");
        json_string(j, event);
}

static void json_event_mapping(Json *j, const char *path) {
        int64_t id = mapping_id_number(path);

        json_key(j, "Id");
        if (id >= 0)
                json_int(j, id);
        else
                json_string(j, mapping_id(path));
        json_key(j, "Path");
        json_string(j, path);
}

static void json_event_end(Json *j) {
        json_end_object(j);
        (void) json_finish(j);
}

/* ---- signals ---- */

static int on_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;
        MappingInfo info = {0}, *cached;
        int r;

        if (monitor_seeding(mon))
                return 0;
        r = mapping_info_read_added(m, &info);
        if (r <= 0)
                return 0;
        monitor_forget(mon, info.path);
        cached = monitor_get(mon, info.path);
        if (cached != NULL) {
                mapping_info_done(cached);
                *cached = info;
        }
        if (arg_json != JSON_OFF) {
                Json j;

                json_event(&j, "mapping-added");
                json_event_mapping(&j, info.path);
                json_key(&j, "Mapping");
                json_mapping(&j, &info);
                json_event_end(&j);
        } else
                print_added(&info);
        if (cached == NULL)
                mapping_info_done(&info);
        fflush(stdout);
        return 0;
}

static int on_mapping_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;
        const char *path, *reason;

        if (monitor_seeding(mon) || sd_bus_message_read(m, "os", &path, &reason) < 0)
                return 0;
        if (arg_json != JSON_OFF) {
                const MappingInfo *last = monitor_find(mon, path);
                Json j;

                json_event(&j, "mapping-removed");
                json_event_mapping(&j, path);
                json_key(&j, "Reason");
                json_string(&j, reason);
                json_key(&j, "Mapping");
                if (last != NULL)
                        json_mapping(&j, last);
                else
                        json_null(&j);
                json_event_end(&j);
        } else
                print_removed(path, reason);
        monitor_forget(mon, path);
        fflush(stdout);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;
        const char *path = sd_bus_message_get_path(m), *interface;
        PropMask changed = 0;
        Json j;

        if (monitor_seeding(mon) || path == NULL || sd_bus_message_read_basic(m, 's', &interface) < 0)
                return 0;

        if (streq(interface, PCP1_MANAGER_IFACE) && streq(path, PCP1_MANAGER_PATH)) {
                ManagerInfo before = {0};
                bool have_before = false;

                /* what it was, to tell what really changed (the message is read into the cache) */
                if (arg_json == JSON_OFF)
                        have_before = manager_info_copy(&mon->manager, &before) >= 0;
                if (manager_info_read(m, &mon->manager, &changed) < 0) {
                        manager_info_done(&before);
                        return 0;
                }
                if (have_before)
                        changed = manager_really_changed(&before, &mon->manager, changed);
                manager_info_done(&before);
                if (arg_json != JSON_OFF) {
                        json_event(&j, "manager-changed");
                        json_key(&j, "Changed");
                        json_changed(&j, changed, manager_property_name);
                        json_key(&j, "Manager");
                        json_manager(&j, &mon->manager);
                        json_event_end(&j);
                } else
                        print_manager_changed(&mon->manager, changed);
        } else if (streq(interface, PCP1_MAPPING_IFACE)) {
                MappingInfo *cached = monitor_get(mon, path);

                if (cached == NULL || mapping_info_read(m, cached, &changed) < 0)
                        return 0;
                if (arg_json != JSON_OFF) {
                        json_event(&j, "mapping-changed");
                        json_event_mapping(&j, path);
                        json_key(&j, "Changed");
                        json_changed(&j, changed, mapping_property_name);
                        json_key(&j, "Mapping");
                        json_mapping(&j, cached);
                        json_event_end(&j);
                } else
                        print_changed(cached, changed);
        }
        fflush(stdout);
        return 0;
}

static void print_started(Monitor *mon) {
        Json j;

        if (arg_json != JSON_OFF) {
                json_event(&j, "pcpd-started");
                json_key(&j, "Manager");
                json_manager(&j, &mon->manager);
                json_event_end(&j);
        } else {
                _cleanup_free_ char *v = text_sanitize(mon->manager.version), *s = text_sanitize(mon->manager.state);

                print_prefix(_("pcpd started"));
                printf(ngettext(" (version %s, %s, %zu mapping)\n", " (version %s, %s, %zu mappings)\n",
                                mon->n_mappings),
                       v != NULL ? v : "?", s != NULL ? s : "?", mon->n_mappings);
        }
        fflush(stdout);
}

static int on_seed_manager(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;

        mon->seed_manager = sd_bus_slot_unref(mon->seed_manager);
        if (!sd_bus_message_is_method_error(m, NULL))
                (void) manager_info_read(m, &mon->manager, NULL);
        if (!monitor_seeding(mon))
                print_started(mon);
        return 0;
}

static int on_seed_mappings(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;
        MappingInfo *mappings = NULL;
        size_t n = 0;

        mon->seed_mappings = sd_bus_slot_unref(mon->seed_mappings);
        if (!sd_bus_message_is_method_error(m, NULL) && mappings_read_managed(m, &mappings, &n) >= 0) {
                mappings_free(mon->mappings, mon->n_mappings);
                mon->mappings = mappings;
                mon->n_mappings = n;
        }
        if (!monitor_seeding(mon))
                print_started(mon);
        return 0;
}

static int on_owner(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;
        const char *name, *old_owner, *new_owner;
        Json j;
        int r;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, PCP1_BUS_NAME))
                return 0;
        if (!isempty(old_owner)) {
                monitor_done(mon);
                if (arg_json != JSON_OFF) {
                        json_event(&j, "pcpd-stopped");
                        json_event_end(&j);
                } else {
                        print_prefix(_("pcpd stopped"));
                        printf("\n");
                }
                fflush(stdout);
        }
        if (!isempty(new_owner)) {
                /* asynchronously: the answers come after every signal pcpd sent before
                 * them, which are in the answers and not printed one by one */
                monitor_done(mon);
                r = sd_bus_call_method_async(mon->bus, &mon->seed_manager, PCP1_BUS_NAME, PCP1_MANAGER_PATH,
                                             PROPERTIES_IFACE, "GetAll", on_seed_manager, mon, "s",
                                             PCP1_MANAGER_IFACE);
                if (r >= 0)
                        r = sd_bus_call_method_async(mon->bus, &mon->seed_mappings, PCP1_BUS_NAME, PCP1_MANAGER_PATH,
                                                     OBJECT_MANAGER_IFACE, "GetManagedObjects", on_seed_mappings,
                                                     mon, NULL);
                if (r < 0) {
                        monitor_done(mon);
                        print_started(mon);
                }
        }
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int verb_monitor(int argc, char **argv, sd_bus *bus) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *s1 = NULL, *s2 = NULL, *s3 = NULL, *s4 = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        Monitor mon = {.bus = bus};
        sigset_t mask;
        int r;

        /* subscribed before reading the state, so that nothing falls in between */
        r = sd_bus_add_match(bus, &s1, MATCH_INTERFACES_ADDED, on_added, &mon);
        if (r >= 0)
                r = sd_bus_add_match(bus, &s2, MATCH_PROPERTIES, on_properties_changed, &mon);
        if (r >= 0)
                r = sd_bus_add_match(bus, &s3, MATCH_MAPPING_REMOVED, on_mapping_removed, &mon);
        if (r >= 0)
                r = sd_bus_add_match(bus, &s4, MATCH_NAME_OWNER, on_owner, &mon);
        if (r < 0) {
                log_error(_("Failed to monitor: cannot subscribe to signals: %s"), strerror(-r));
                return EXIT_FAILURE;
        }
        if (monitor_seed(&mon) < 0)
                return EXIT_FAILURE;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        r = sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ? -errno : 0;
        if (r >= 0)
                r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r < 0) {
                log_error(_("Failed to monitor: %s"), strerror(-r));
                monitor_done(&mon);
                return EXIT_FAILURE;
        }
        if (arg_json == JSON_OFF && arg_legend) {
                _cleanup_free_ char *state = text_sanitize(mon.manager.state);

                if (isempty(mon.manager.state))
                        printf(_("Monitoring pcpd (not running now); press Ctrl+C to stop.\n"));
                else
                        printf(ngettext("Monitoring pcpd (%s, %zu mapping); press Ctrl+C to stop.\n",
                                        "Monitoring pcpd (%s, %zu mappings); press Ctrl+C to stop.\n",
                                        mon.n_mappings),
                               state != NULL ? state : "?", mon.n_mappings);
                fflush(stdout);
        }

        r = sd_event_loop(event);
        (void) sd_bus_detach_event(bus);
        monitor_done(&mon);
        if (r < 0) {
                log_error(_("Failed to monitor: %s"), strerror(-r));
                return EXIT_FAILURE;
        }
        return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
