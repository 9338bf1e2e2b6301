/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <glib-unix.h>
#include <glib.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "config.h"
#include "pcpd-bus.h"
#include "pcpd-log.h"
#include "pcpd-declared-manager.h"
#include "pcpd-manager.h"
#include "pcpd-module.h"
#include "pcpd-reload.h"
#include "pcpd-sdbus-glib.h"
#include "pcpd-state.h"
#include "pcpd-trim.h"

/* One plain line per message: "12:34:56.789 warning: text", in local time. The time zone
 * is read once, at start (tzset() in main()): localtime_r() does not look at
 * /etc/localtime again, where GLib's g_date_time_new_now_local() checked it (three system
 * calls) on every line. A changed zone shows after a restart. */
static GLogWriterOutput write_line(GLogLevelFlags level, const char *message) {
        static const char *const names[] = { "error", "critical", "warning", "message", "info", "debug" };
        /* the "HH:MM:SS" of the last second a line was written in: localtime_r() and
         * strftime() once a second, not once a line */
        static time_t hms_second = -1;
        static char hms[16] = "??:??:??";
        struct timespec ts;
        const char *name = "debug";
        char line[512];
        size_t hl, nl, ml;
        long ms;

        if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
                if (ts.tv_sec != hms_second) {
                        struct tm tm;

                        if (localtime_r(&ts.tv_sec, &tm) != NULL && strftime(hms, sizeof(hms), "%H:%M:%S", &tm) > 0)
                                hms_second = ts.tv_sec;
                        else {
                                strcpy(hms, "??:??:??");
                                hms_second = -1;
                        }
                }
        } else {
                ts.tv_nsec = 0;
                strcpy(hms, "??:??:??");
                hms_second = -1;
        }
        for (unsigned i = 0; i < G_N_ELEMENTS(names); i++)
                if (level & (G_LOG_LEVEL_ERROR << i)) {
                        name = names[i];
                        break;
                }
        if (message == NULL)
                message = "(no message)";
        /* one write(), as the fprintf() it replaces made on the unbuffered stderr, without
         * parsing a format: "HH:MM:SS.mmm name: message\n" */
        hl = strlen(hms);
        nl = strlen(name);
        ml = strlen(message);
        if (hl + 5 + nl + 2 + ml + 1 > sizeof(line)) {
                if (fprintf(stderr, "%s.%03ld %s: %s\n", hms, ts.tv_nsec / 1000000, name, message) < 0)
                        return G_LOG_WRITER_UNHANDLED;
                return G_LOG_WRITER_HANDLED;
        }
        ms = ts.tv_nsec / 1000000;
        memcpy(line, hms, hl);
        line[hl] = '.';
        line[hl + 1] = (char) ('0' + ms / 100);
        line[hl + 2] = (char) ('0' + ms / 10 % 10);
        line[hl + 3] = (char) ('0' + ms % 10);
        line[hl + 4] = ' ';
        memcpy(line + hl + 5, name, nl);
        memcpy(line + hl + 5 + nl, ": ", 2);
        memcpy(line + hl + 5 + nl + 2, message, ml);
        line[hl + 5 + nl + 2 + ml] = '\n';
        if (fwrite(line, 1, hl + 5 + nl + 2 + ml + 1, stderr) != hl + 5 + nl + 2 + ml + 1)
                return G_LOG_WRITER_UNHANDLED;
        return G_LOG_WRITER_HANDLED;
}

/* The journal's native protocol, with every field, when stderr is the journal (a systemd
 * service); else one readable line on stderr (a terminal, a file, a test). */
static GLogWriterOutput log_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer user_data) {
        static int to_journal = -1;
        const char *message = NULL, *domain = NULL;

        for (gsize i = 0; i < n; i++) {
                if (fields[i].length >= 0)
                        continue; /* not a string */
                if (strcmp(fields[i].key, "MESSAGE") == 0)
                        message = fields[i].value;
                else if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0)
                        domain = fields[i].value;
        }
        if (g_log_writer_default_would_drop(level, domain))
                return G_LOG_WRITER_HANDLED;
        if (to_journal < 0)
                to_journal = g_log_writer_is_journald(fileno(stderr));
        if (to_journal && g_log_writer_journald(level, fields, n, user_data) == G_LOG_WRITER_HANDLED)
                return G_LOG_WRITER_HANDLED;
        return write_line(level, message);
}

/* What the handlers of SIGTERM, SIGINT and SIGHUP act on. Their sources stay for the whole
 * life of the process, never removed: GLib puts a signal's default action back when its
 * last source goes (gmain.c), and a second SIGTERM (a second `kill`, a second Ctrl-C,
 * `systemctl kill`) would then end pcpd in the middle of its clean stop, which runs the loop
 * for up to a few seconds (the UPnP-IGD deletes) before the last snapshot of the state. */
static struct {
        GMainLoop *loop;
        pcpd_manager *m; /* what SIGHUP reloads; NULL once pcpd stops */
        /* a stop was asked for, or the loop ended: the manager stops, nothing reloads it, a
         * further stop signal is only logged (set before the loop runs, it keeps the loop
         * from running: a g_main_loop_quit() before g_main_loop_run() would be lost) */
        bool stopping;
        bool told_stopping, told_reload; /* one line each, however many signals come */
} sig;

static const char *signal_name(int signo) {
        return signo == SIGINT ? "SIGINT" : "SIGTERM";
}

/* from here on pcpd stops: what the loop still dispatches (the manager's stop turns it)
 * reloads nothing and stops nothing twice */
static void signals_stopping(void) {
        sig.stopping = true;
        sig.m = NULL;
        sig.loop = NULL;
}

/* run()'s last word, however it ends (declared after the manager, so before it is freed) */
static void signals_stopping_at_exit(bool *unused) {
        signals_stopping();
}

static gboolean on_signal(gpointer data) {
        int signo = GPOINTER_TO_INT(data);

        if (sig.stopping) {
                if (!sig.told_stopping)
                        g_message("Already shutting down, ignoring %s: the clean stop goes on", signal_name(signo));
                sig.told_stopping = true;
                return G_SOURCE_CONTINUE;
        }
        g_message("Shutting down");
        g_main_loop_quit(sig.loop);
        signals_stopping();
        return G_SOURCE_CONTINUE;
}

/* SIGTERM, SIGINT and SIGHUP are blocked from the first line of main() until run() has
 * GLib's handlers for them: one that comes while the state loads or pcpd starts stays
 * pending (its default action would kill pcpd with no clean stop) and is handled by the
 * main loop once it runs. */
static void stop_signals_mask(int how) {
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        if (sigprocmask(how, &set, NULL) < 0)
                g_warning("Cannot %s SIGTERM, SIGINT and SIGHUP: %s", how == SIG_BLOCK ? "block" : "unblock",
                          g_strerror(errno));
}

/* SIGHUP (whose default action would kill pcpd): re-read the configuration and apply what
 * can change at run time (pcpd-reload.h), as Manager.Reload (the unit's ExecReload=) does;
 * not once pcpd stops: its manager is being taken apart. */
static gboolean on_reload(gpointer data) {
        if (sig.m == NULL) {
                if (!sig.told_reload)
                        g_message("Not reloading on SIGHUP: shutting down");
                sig.told_reload = true;
                return G_SOURCE_CONTINUE;
        }
        (void) pcpd_reload(sig.m, NULL);
        return G_SOURCE_CONTINUE;
}

/* WatchdogSec= in pcpd.service: a keep-alive from the main loop itself at half the
 * interval, so a loop that hangs gets pcpd killed and restarted (Restart=on-failure). */
static gboolean on_watchdog(gpointer data) {
        (void) sd_notify(false, "WATCHDOG=1");
        return G_SOURCE_CONTINUE;
}

static void watchdog_start(void) {
        uint64_t usec = 0;
        guint ms;
        int r;

        r = sd_watchdog_enabled(false, &usec);
        if (r < 0)
                g_warning("Ignoring the service watchdog settings: %s", g_strerror(-r));
        if (r <= 0)
                return;
        ms = (guint) CLAMP(usec / 2 / 1000, 1, G_MAXUINT);
        g_timeout_add(ms, on_watchdog, NULL);
        g_debug("Watchdog keep-alive every %u ms", ms);
}

/* Without the bus nobody can reach pcpd, and it cannot tell who holds what: it stops as on
 * SIGTERM (persistent mappings and the holders' state kept for the next start), but with a
 * failure status, so that the unit's Restart=on-failure starts it again once the bus is back
 * (with 0 it stayed down until a client's call activated it, and nothing renewed its
 * persistent mappings meanwhile). sd-bus's own exit-on-disconnect exits with a failure too. */
static bool bus_lost;

static gboolean on_bus_lost(gpointer data) {
        g_warning("Lost the connection to the system bus: stopping (exit status 1, so that the service "
                  "manager starts pcpd again)");
        bus_lost = true;
        g_main_loop_quit(data);
        return G_SOURCE_REMOVE;
}

/* How a start that fails exits (pcpd(8), EXIT STATUS):
 *
 * EX_CONFIG (78, sysexits.h; systemd's own tools and many services use it too): what a
 * restart cannot fix, only the administrator: the command line, pcpd.conf and its drop-ins,
 * a declared mapping of mappings.d, a state directory that cannot be made or is refused
 * (owner, mode, a state file that is a symbolic link or cannot be read). The unit's
 * RestartPreventExitStatus=78 leaves pcpd failed then, with the reason in the journal,
 * instead of Restart=on-failure starting it every RestartSec= for ever (five starts in
 * any 10 s at most, so the start limit never stopped it).
 *
 * EXIT_FAILURE (1): what may be gone at the next start: no system bus, the name not
 * (yet) ours, the sockets or the manager not set up, and the bus lost while running. */
#define PCPD_EXIT_CONFIG EX_CONFIG

static int run(int argc, char **argv) {
        g_autofree char *config_path = NULL, *state_dir = NULL, *why = NULL;
        g_autoptr(pcpd_state) loaded = NULL;
        g_autoptr(GPtrArray) declared = NULL;
        g_autofree char *declared_dir = NULL;
        int state_fd = -1;
        gboolean version = FALSE, verbose = FALSE;
        GOptionEntry entries[] = {
                { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
                  "Configuration file (default " SYSCONFDIR "/pcpd/pcpd.conf)", "FILE" },
                { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
                  "Where mappings and their nonces are kept (default $STATE_DIRECTORY or " LOCALSTATEDIR "/lib/pcpd)",
                  "DIR" },
                { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Log debug messages", NULL },
                { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Show the version and exit", NULL },
                { NULL },
        };
        g_autoptr(GOptionContext) ctx = g_option_context_new("- Port Control Protocol client daemon");
        g_autoptr(GError) error = NULL;
        g_autoptr(GMainLoop) loop = NULL;
        g_autoptr(pcpd_bus_face) face = NULL; /* before m: freed after it */
        g_autoptr(pcpd_manager) m = NULL;
        g_autoptr(pcpd_trim) trim = NULL; /* after m: gone before the manager is freed */
        /* after m, so it runs first: the handlers let go of the manager before its free runs
         * the loop, and never reload or stop it from there */
        G_GNUC_UNUSED _cleanup_(signals_stopping_at_exit) bool signals_guard = true;
        sd_bus *bus = NULL;
        pcpd_config config;
        int r;

        tzset(); /* the time zone of the log lines, once (write_line()) */
        g_log_set_writer_func(log_writer, NULL, NULL);
        setlocale(LC_ALL, "");
        g_option_context_add_main_entries(ctx, entries, NULL);
        if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
                fprintf(stderr, "pcpd: %s (try --help)\n", error->message);
                return PCPD_EXIT_CONFIG;
        }
        if (argc > 1) {
                fprintf(stderr, "pcpd: unexpected argument '%s' (try --help)\n", argv[1]);
                return PCPD_EXIT_CONFIG;
        }
        if (version) {
                printf("pcpd %s\n", PACKAGE_VERSION);
                return 0;
        }
        if (verbose)
                g_setenv("G_MESSAGES_DEBUG", "all", TRUE);

        pcpd_config_init(&config);
        if (!pcpd_config_load(&config, config_path ?: SYSCONFDIR "/pcpd/pcpd.conf", config_path == NULL, &error)) {
                pcpd_log_event(G_LOG_LEVEL_CRITICAL, PCPD_MSGID_CONFIG_ERROR,
                               ((const char *const[]) { "PCPD_CONFIG", config_path ?: SYSCONFDIR "/pcpd/pcpd.conf", NULL }),
                               "Bad configuration, not starting: %s", error->message);
                pcpd_config_clear(&config);
                return PCPD_EXIT_CONFIG;
        }
        if (state_dir == NULL) {
                const char *e = g_getenv("STATE_DIRECTORY"); /* systemd's StateDirectory= */
                state_dir = g_strdup(e != NULL && *e ? e : LOCALSTATEDIR "/lib/pcpd");
                /* several directories may be listed: ours is the first */
                char *colon = strchr(state_dir, ':');
                if (colon != NULL)
                        *colon = '\0';
        }
        if (g_mkdir_with_parents(state_dir, 0700) < 0) {
                pcpd_log_event(G_LOG_LEVEL_CRITICAL, PCPD_MSGID_START_FAILED, NULL,
                               "Cannot create the state directory %s: %s", state_dir, g_strerror(errno));
                pcpd_config_clear(&config);
                return PCPD_EXIT_CONFIG;
        }
        /* what pcpd restores decides what it asks routers for: a directory another account
         * can change is refused, and no state file is followed through a symbolic link */
        r = pcpd_state_dir_open(state_dir, &state_fd, &why);
        if (r >= 0 && pcpd_state_load(state_fd, state_dir, &loaded, &error) < 0) {
                why = g_strdup(error->message);
                close(state_fd);
                r = -1;
        }
        if (r < 0) {
                pcpd_log_event(G_LOG_LEVEL_CRITICAL, PCPD_MSGID_START_FAILED, NULL, "Not starting: %s", why);
                pcpd_config_clear(&config);
                return PCPD_EXIT_CONFIG;
        }
        /* the administrator's declared mappings are configuration: a bad one stops pcpd too */
        declared_dir = pcpd_declared_etc_dir(config_path ?: SYSCONFDIR "/pcpd/pcpd.conf");
        if (!pcpd_declared_load(declared_dir, state_fd, state_dir, &declared, &error)) {
                pcpd_log_event(G_LOG_LEVEL_CRITICAL, PCPD_MSGID_CONFIG_ERROR,
                               ((const char *const[]) { "PCPD_CONFIG", declared_dir, NULL }),
                               "Bad declared mapping, not starting: %s", error->message);
                pcpd_config_clear(&config);
                close(state_fd);
                return PCPD_EXIT_CONFIG;
        }

        loop = g_main_loop_new(NULL, FALSE);
        face = pcpd_bus_face_new();
        r = pcpd_manager_new(&config, state_dir, state_fd, g_steal_pointer(&loaded), loop, &pcpd_bus_listener, face,
                             &m);
        pcpd_config_clear(&config);
        if (r < 0) {
                pcpd_log_event(G_LOG_LEVEL_CRITICAL, PCPD_MSGID_START_FAILED, NULL, "Cannot set up: %s", g_strerror(-r));
                return EXIT_FAILURE; /* sockets, memory: may work at the next start */
        }
        /* the handlers, now that the loop and the manager exist; then what came while they
         * were blocked is delivered (to GLib's handler, dispatched when the loop runs) */
        sig.loop = loop;
        sig.m = m;
        g_unix_signal_add(SIGTERM, on_signal, GINT_TO_POINTER(SIGTERM));
        g_unix_signal_add(SIGINT, on_signal, GINT_TO_POINTER(SIGINT));
        pcpd_reload_set_source(config_path ?: SYSCONFDIR "/pcpd/pcpd.conf", config_path == NULL);
        g_unix_signal_add(SIGHUP, on_reload, NULL);
        stop_signals_mask(SIG_UNBLOCK);

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                pcpd_log_event(G_LOG_LEVEL_CRITICAL, PCPD_MSGID_START_FAILED, NULL,
                               "Cannot connect to the system bus: %s", g_strerror(-r));
                return EXIT_FAILURE; /* the bus may be back at the next start */
        }
        /* the objects and the watch for holders that leave first: restored mappings are
         * published as they come back */
        r = pcpd_bus_register(m, bus);
        if (r >= 0)
                r = pcpd_manager_start(m);
        if (r >= 0)
                r = sd_bus_request_name(bus, PCP1_BUS_NAME, 0);
        if (r < 0) {
                pcpd_log_event(G_LOG_LEVEL_CRITICAL, PCPD_MSGID_START_FAILED, NULL,
                               "Cannot publish %s on the system bus: %s (is another pcpd running? does the bus "
                               "policy allow this user to own the name?)",
                               PCP1_BUS_NAME, g_strerror(-r));
                sd_bus_unref(bus);
                return EXIT_FAILURE; /* another pcpd that owns the name may be gone by then */
        }
        pcpd_manager_set_declared(m, g_steal_pointer(&declared));
        /* the free heap given back once mappings stop coming, changing and going
         * (pcpd-trim.h; a restore gives it back itself, in pcpd_manager_start(): its news
         * so far is where this one starts, and the grants of the restored mappings asked
         * for again, which follow, count) */
        trim = pcpd_trim_new(pcpd_manager_mapping_news, m, PCPD_TRIM_QUIET_MS, PCPD_TRIM_MIN_CHURN);
        pcpd_sd_bus_attach_glib(bus, NULL, on_bus_lost, loop);
        sd_bus_unref(bus); /* the bus face and the source hold it */

        watchdog_start();
        sd_notify(false, "READY=1");
        pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_STARTED, NULL, "pcpd %s ready (state in %s)", PACKAGE_VERSION,
                       state_dir);
        if (!sig.stopping)
                g_main_loop_run(loop);
        signals_stopping(); /* also when the loop ended for another reason (the bus lost) */
        sd_notify(false, "STOPPING=1");
        return bus_lost ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char **argv) {
        stop_signals_mask(SIG_BLOCK); /* before any thread starts: they inherit the mask */
        pcpd_module_preinit(); /* before any thread starts */
        return run(argc, argv);
}
