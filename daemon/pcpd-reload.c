/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-reload.h"

#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "config.h"
#include "pcpd-backend.h"
#include "pcpd-declared-manager.h"
#include "pcpd-log.h"

/* The daemon has one configuration: where it is, as main.c found it. */
static char *source_path;
static bool source_allow_missing;

void pcpd_reload_set_source(const char *config_path, bool allow_missing) {
        g_free(source_path);
        source_path = g_strdup(config_path);
        source_allow_missing = allow_missing;
}

static bool same_servers(const pcpd_config *a, const pcpd_config *b) {
        if (a->n_servers != b->n_servers)
                return false;
        for (size_t i = 0; i < a->n_servers; i++)
                if (memcmp(&a->servers[i].addr.sin6_addr, &b->servers[i].addr.sin6_addr, 16) != 0 ||
                    a->servers[i].addr.sin6_port != b->servers[i].addr.sin6_port ||
                    a->servers[i].addr.sin6_scope_id != b->servers[i].addr.sin6_scope_id)
                        return false;
        return true;
}

static void set_u32(guint32 *cur, guint32 v, const char *name, unsigned *n) {
        if (*cur == v)
                return;
        g_message("Reload: %s %u -> %u", name, *cur, v);
        *cur = v;
        (*n)++;
}

unsigned pcpd_reload_apply_config(pcpd_manager *m, const pcpd_config *c) {
        pcpd_config *cur = &m->config;
        guint32 old_default = cur->default_lifetime, old_quota = cur->max_mappings_per_user;
        unsigned n = 0;

        /* what needs a restart: said, and the old value kept */
        if (c->use_default_routers != cur->use_default_routers)
                g_warning("Reload: UseDefaultRouters=%s needs a restart (systemctl restart pcpd); still %s",
                          c->use_default_routers ? "true" : "false", cur->use_default_routers ? "true" : "false");
        if (c->announce_port != cur->announce_port)
                g_warning("Reload: AnnouncePort=%u needs a restart (systemctl restart pcpd); still %u",
                          c->announce_port, cur->announce_port);
        if (c->max_mappings > cur->max_mappings)
                g_warning("Reload: raising MaxMappings= to %u needs a restart (systemctl restart pcpd); still %u",
                          c->max_mappings, cur->max_mappings);
        else
                set_u32(&cur->max_mappings, c->max_mappings, "MaxMappings", &n);

        set_u32(&cur->default_lifetime, c->default_lifetime, "DefaultLifetime", &n);
        set_u32(&cur->max_lifetime, c->max_lifetime, "MaxLifetime", &n);
        set_u32(&cur->max_mappings_per_user, c->max_mappings_per_user, "MaxMappingsPerUser", &n);
        set_u32(&cur->grace_seconds, c->grace_seconds, "GraceSeconds", &n);
        set_u32(&cur->upnp_delete_retry_seconds, c->upnp_delete_retry_seconds, "UpnpDeleteRetrySeconds", &n);
        pcpd_upnp_backend_set_delete_retry(m->upnp, cur->upnp_delete_retry_seconds);
        if (cur->default_lifetime != old_default)
                pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_DEFAULT_LIFETIME);
        if (cur->max_mappings_per_user != old_quota)
                pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_MAX_MAPPINGS_PER_USER);

        if (!same_servers(cur, c)) {
                g_autoptr(GString) list = g_string_new(NULL);

                for (size_t i = 0; i < cur->n_servers; i++)
                        g_free(cur->servers[i].text);
                for (size_t i = 0; i < c->n_servers; i++) {
                        cur->servers[i].text = g_strdup(c->servers[i].text);
                        cur->servers[i].addr = c->servers[i].addr;
                        g_string_append_printf(list, "%s%s", i > 0 ? " " : "", c->servers[i].text);
                }
                cur->n_servers = c->n_servers;
                g_message("Reload: Servers=%s", list->len > 0 ? list->str : "(none)");
                pcpd_manager_set_config_servers(m, cur->servers, cur->n_servers);
                n++;
        }

        /* Enabled= is the setting at start; SetEnabled changes it at run time. A reload
         * applies the file's value only when the file changed it. */
        if (c->enabled != cur->enabled) {
                cur->enabled = c->enabled;
                g_message("Reload: Enabled=%s", c->enabled ? "true" : "false");
                pcpd_manager_set_enabled(m, c->enabled);
                n++;
        }
        return n;
}

static void notify_reloading(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        /* MONOTONIC_USEC: what systemd 253's Type=notify-reload wants with it; harmless before */
        (void) sd_notifyf(false, "RELOADING=1\nSTATUS=Reloading the configuration\nMONOTONIC_USEC=%llu",
                          (unsigned long long) ts.tv_sec * 1000000ULL + (unsigned long long) ts.tv_nsec / 1000);
}

int pcpd_reload(pcpd_manager *m, pcpd_failure *ret_failure) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GPtrArray) declared = NULL;
        const char *config_path = source_path != NULL ? source_path : SYSCONFDIR "/pcpd/pcpd.conf";
        bool allow_missing = source_path != NULL ? source_allow_missing : true;
        g_autofree char *etc_dir = pcpd_declared_etc_dir(config_path);
        g_autofree char *settings = NULL, *mappings = NULL;
        pcpd_config c;
        unsigned n, kept;

        /* pcpd_manager_free() has begun: it takes apart what a reload would change (the
         * declared mappings, the servers' sources) while it runs the loop. The bus refuses
         * Manager.Reload then and main.c SIGHUP; this covers every caller. Before
         * RELOADING=1: the service manager is told of no reload that does not happen. */
        if (pcpd_manager_is_stopping(m)) {
                g_message("Not reloading the configuration: pcpd is stopping (it is read again at the next start)");
                return pcpd_fail(ret_failure, PCPD_ERROR_STOPPING,
                                 "pcpd is stopping; nothing was changed. The configuration is read again at the "
                                 "next start.");
        }
        notify_reloading();
        pcpd_config_init(&c);
        /* all of it read before anything is applied */
        if (!pcpd_config_load(&c, config_path, allow_missing, &error) ||
            !pcpd_declared_load(etc_dir, m->state_fd, m->state_dir, &declared, &error)) {
                pcpd_log_event(G_LOG_LEVEL_WARNING, PCPD_MSGID_RELOAD_FAILED,
                               ((const char *const[]) { "PCPD_CONFIG", config_path, NULL }),
                               "Reload failed, the old configuration stays in force: %s", error->message);
                pcpd_config_clear(&c);
                (void) sd_notifyf(false, "READY=1\nSTATUS=Reload failed, old configuration kept: %s", error->message);
                g_clear_pointer(&m->status_text, g_free); /* the next change of state says it again */
                return pcpd_fail(ret_failure, PCPD_ERROR_INVALID_CONFIGURATION,
                                 "The configuration is invalid, nothing was changed: %s", error->message);
        }
        n = pcpd_reload_apply_config(m, &c);
        pcpd_config_clear(&c);
        pcpd_manager_set_declared(m, g_steal_pointer(&declared));
        kept = pcpd_manager_n_mappings(m);
        /* singular and plural said right, the mappings left out when there are none */
        settings = n == 0   ? g_strdup("no setting changed")
                   : n == 1 ? g_strdup("1 setting changed")
                            : g_strdup_printf("%u settings changed", n);
        mappings = kept == 0   ? g_strdup("")
                   : kept == 1 ? g_strdup(", 1 mapping kept")
                               : g_strdup_printf(", %u mappings kept", kept);
        pcpd_log_event(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_RELOADED,
                       ((const char *const[]) { "PCPD_CONFIG", config_path, NULL }),
                       "Configuration reloaded from %s: %s%s", config_path, settings, mappings);
        /* the status line of manager_update_state(), again: RELOADING=1 replaced it */
        g_free(m->status_text);
        m->status_text = g_strdup_printf("%s, %u server(s), %u mapping(s)", pcpd_manager_state(m), m->servers->len,
                                         pcpd_manager_n_mappings(m));
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", m->status_text);
        return 0;
}
