/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <net/if.h>
#include <string.h>
#include <time.h>

#include "pcpd-dhcp.h"
#include "pcpd-nm-module.h"
#include "pcpd-nm.h"
#include "pcpd-sdbus-glib.h"
#include "pcpd-servers.h"

#define NM_BUS_NAME "org.freedesktop.NetworkManager"

#define PCPD_NM_SETTLE_MS 500
#define PCPD_NM_MAX_STATES 32

/* the last filled lease of one family on one interface (N4: kept while NetworkManager
 * shows "/" or empty options) */
typedef struct lease {
        pcpd_dhcp_servers servers;
        unsigned ifindex;
        int64_t ends; /* CLOCK_REALTIME seconds, 0 = unknown (no end) */
        bool active;  /* seen on an active device in the last pass */
        gint64 gone_at; /* g_get_monotonic_time() when its device vanished; 0: it is there */
} lease;

/* pcpd watches the system bus with sd-bus (no thread, libsystemd's pages are pcpd's own
 * anyway): NetworkManager's name, and logind's PrepareForSleep. libnm and GIO are in the
 * module pcpd-nm.so (pcpd-nm-module.h), loaded, and its GIO connection (a thread, ~1 MiB
 * of libgio's pages) and libnm's client made, only once NetworkManager is on the bus
 * (bench/README.md, "RSS before the first mapping" and "2026-12-03 (modules)"); a client
 * once made stays (it follows NetworkManager leaving and coming back itself). */
struct pcpd_nm {
        pcpd_manager *m;
        sd_bus *bus;
        guint bus_source;
        sd_bus_slot *owner_match, *owner_call, *sleep_match;
        bool client_started; /* the module is loaded and libnm's client on its way */
        const pcpd_nm_module *mod;
        pcpd_nm_client *client;
        bool running;
        /* "NetworkManager is not running" (or why it cannot be followed) was said: once at
         * start, then when it comes and goes */
        bool said_running;
        bool failed; /* libnm could not be set up (or its module loaded) */
        guint settle_source, grace_source, expiry_source, gone_source;
        GHashTable *leases[2]; /* ifname -> lease*: [0] DHCPv4, [1] DHCPv6 */
        GHashTable *refused;   /* "ifname/family" -> the option text last refused (logged once) */
        size_t n_states;
        pcpd_nm_option_state states[PCPD_NM_MAX_STATES];
};

/* Where PCP servers come from without NetworkManager, as configured (pcpd.conf: Servers=,
 * UseDefaultRouters=), for the lines that say NetworkManager is not followed */
static const char *servers_without_nm(const pcpd_nm *nm) {
        bool configured = nm->m->config.n_servers > 0, routers = nm->m->config.use_default_routers;

        if (configured && routers)
                return "PCP servers from pcpd.conf's Servers= and the default routes only";
        if (configured)
                return "PCP servers from pcpd.conf's Servers= only (UseDefaultRouters=false)";
        if (routers)
                return "PCP servers from the default routes only";
        return "no PCP servers at all (no Servers= in pcpd.conf, UseDefaultRouters=false)";
}

static void nm_schedule(pcpd_nm *nm);

static const char *lookup_option(void *userdata, const char *key) {
        return g_hash_table_lookup(userdata, key);
}

static int64_t option_int(GHashTable *opts, const char *key) {
        const char *v = g_hash_table_lookup(opts, key);
        char *end = NULL;
        gint64 x;

        if (v == NULL || *v == '\0')
                return 0;
        x = g_ascii_strtoll(v, &end, 10);
        return end != NULL && *end == '\0' && x > 0 ? x : 0;
}

/* When the lease ends (N5), CLOCK_REALTIME seconds; 0: not said. */
static int64_t lease_end(GHashTable *opts, int family) {
        int64_t start, life;

        if (family == AF_INET)
                return option_int(opts, "expiry");
        start = option_int(opts, "life_starts");
        life = option_int(opts, "max_life");
        return start > 0 && life > 0 ? start + life : 0;
}

static void state_add(pcpd_nm *nm, const char *ifname, int family, pcpd_dhcp_request_state st) {
        pcpd_nm_option_state *o;

        if (st == PCPD_DHCP_NO_LEASE || nm->n_states >= PCPD_NM_MAX_STATES)
                return;
        o = &nm->states[nm->n_states++];
        memset(o, 0, sizeof(*o));
        g_strlcpy(o->ifname, ifname, sizeof(o->ifname));
        o->family = family;
        o->state = pcpd_dhcp_request_state_to_string(st);
}

/* One DHCP config object of a device: its lease replaces the one kept, when it is filled. */
static void read_config(pcpd_nm *nm, const char *ifname, int family, GHashTable *opts) {
        GHashTable *leases = nm->leases[family == AF_INET ? 0 : 1];
        pcpd_dhcp_servers servers = { 0 };
        pcpd_dhcp_error e;
        const char *key = NULL;
        lease *l;

        l = g_hash_table_lookup(leases, ifname);
        if (opts == NULL || g_hash_table_size(opts) == 0) {
                /* "/" or a new object not filled yet: what was known stays */
                if (l != NULL) {
                        l->active = true;
                        l->gone_at = 0;
                }
                return;
        }
        state_add(nm, ifname, family,
                  pcpd_dhcp_request_state_get(family, lookup_option, opts, g_hash_table_size(opts)));
        e = pcpd_dhcp_parse_options(family, lookup_option, opts, &servers, &key);
        if (e != PCPD_DHCP_OK) {
                g_autofree char *id = g_strdup_printf("%s/%d", ifname, family);
                const char *text = key != NULL ? g_hash_table_lookup(opts, key) : NULL;

                if (g_strcmp0(g_hash_table_lookup(nm->refused, id), text ?: "") != 0) {
                        g_warning("%s: DHCP%s option %s refused (%s): %s", ifname, family == AF_INET ? "v4" : "v6",
                                  family == AF_INET ? "158" : "86", key ?: "?", pcpd_dhcp_error_to_string(e));
                        g_hash_table_replace(nm->refused, g_steal_pointer(&id), g_strdup(text ?: ""));
                }
                servers = (pcpd_dhcp_servers) { 0 }; /* no server from a broken option */
        }
        if (l == NULL) {
                l = g_new0(lease, 1);
                g_hash_table_insert(leases, g_strdup(ifname), l);
        }
        l->servers = servers;
        l->ifindex = if_nametoindex(ifname); /* the scope of link-local servers */
        l->ends = lease_end(opts, family);
        l->active = true;
        l->gone_at = 0;
}

/* Hands the kept leases of one family to the manager (N2, N5). Returns the earliest end
 * of a lease still counted (0: none). */
static int64_t push_family(pcpd_nm *nm, int family) {
        GHashTable *leases = nm->leases[family == AF_INET ? 0 : 1];
        g_autoptr(GArray) specs = g_array_new(FALSE, TRUE, sizeof(pcpd_server_spec));
        int64_t now = (int64_t) time(NULL), next = 0;
        GHashTableIter it;
        gpointer k, v;

        g_hash_table_iter_init(&it, leases);
        while (g_hash_table_iter_next(&it, &k, &v)) {
                lease *l = v;

                if (l->ends > 0 && l->ends <= now)
                        continue; /* N5: it ran out without a newer one */
                if (l->ends > 0 && (next == 0 || l->ends < next))
                        next = l->ends;
                for (size_t i = 0; i < l->servers.n_servers; i++) {
                        pcpd_server_spec sp = { 0 };

                        g_strlcpy(sp.ifname, k, sizeof(sp.ifname));
                        sp.n_addrs = pcpd_dhcp_server_endpoints(&l->servers.servers[i], l->ifindex, sp.addrs);
                        g_array_append_val(specs, sp);
                }
        }
        (void) pcpd_manager_set_servers(nm->m, family == AF_INET ? PCPD_SOURCE_DHCPV4 : PCPD_SOURCE_DHCPV6, NULL,
                                        (const pcpd_server_spec *) (void *) specs->data, specs->len);
        return next;
}

static gboolean on_expiry(gpointer data);

static void push(pcpd_nm *nm) {
        int64_t a = push_family(nm, AF_INET), b = push_family(nm, AF_INET6);
        int64_t next = a == 0 ? b : b == 0 ? a : MIN(a, b);

        if (nm->expiry_source != 0)
                g_source_remove(nm->expiry_source);
        nm->expiry_source = 0;
        if (next > 0)
                nm->expiry_source = g_timeout_add_seconds((guint) MAX(next - (int64_t) time(NULL), 1), on_expiry, nm);
}

static gboolean on_expiry(gpointer data) {
        pcpd_nm *nm = data;

        nm->expiry_source = 0;
        push(nm);
        return G_SOURCE_REMOVE;
}

static void forget_all(pcpd_nm *nm) {
        for (int f = 0; f < 2; f++)
                g_hash_table_remove_all(nm->leases[f]);
        push(nm);
        pcpd_manager_set_primary(nm->m, NULL);
}

static gboolean on_grace(gpointer data) {
        pcpd_nm *nm = data;

        nm->grace_source = 0;
        g_message("NetworkManager has not come back: the PCP servers it announced are no longer used");
        forget_all(nm);
        return G_SOURCE_REMOVE;
}

static void primary_update(pcpd_nm *nm) {
        const char *ifname = nm->mod->primary_ifname(nm->client);

        if (ifname == NULL)
                return; /* N4: "/" is "not known yet" */
        pcpd_manager_set_primary(nm->m, ifname);
}

static void states_publish(pcpd_nm *nm, size_t old_n, const pcpd_nm_option_state *old) {
        size_t new_n = nm->running ? nm->n_states : 0;

        if (old_n == new_n && memcmp(old, nm->states, new_n * sizeof(*old)) == 0)
                return;
        pcpd_manager_emit_changed(nm->m, PCPD_MANAGER_CHANGED_DHCP_OPTIONS);
}

static void apply_states(pcpd_nm *nm);

static void apply(pcpd_nm *nm) {
        pcpd_nm_option_state old[PCPD_NM_MAX_STATES];
        size_t old_n = nm->running ? nm->n_states : 0;

        memcpy(old, nm->states, sizeof(old));
        apply_states(nm);
        states_publish(nm, old_n, old);
}

static gboolean on_gone(gpointer data) {
        pcpd_nm *nm = data;

        nm->gone_source = 0;
        nm_schedule(nm);
        return G_SOURCE_REMOVE;
}

static void apply_states(pcpd_nm *nm) {
        gint64 now = g_get_monotonic_time();
        const pcpd_nm_device *devices;
        size_t n_devices = 0;
        bool running = nm->client != NULL && nm->mod->running(nm->client);

        if (running != nm->running || (!running && !nm->said_running)) {
                /* (libnm's client that finds NetworkManager gone at once: said here too) */
                nm->running = running;
                pcpd_manager_emit_changed(nm->m, PCPD_MANAGER_CHANGED_NETWORK_MANAGER);
                if (running)
                        g_message("NetworkManager is running: PCP servers from DHCP are used");
                else
                        g_message("NetworkManager is not running: %s", servers_without_nm(nm));
                nm->said_running = true;
        }
        if (!running) {
                if (nm->client != NULL)
                        nm->mod->unwatch(nm->client);
                /* nothing from NetworkManager to wait for: restored mappings go where they can */
                pcpd_servers_replan(nm->m);
                if (nm->grace_source == 0 &&
                    (g_hash_table_size(nm->leases[0]) > 0 || g_hash_table_size(nm->leases[1]) > 0))
                        nm->grace_source = g_timeout_add_seconds(PCPD_NM_GRACE_S, on_grace, nm);
                return;
        }
        if (nm->grace_source != 0) {
                g_source_remove(nm->grace_source);
                nm->grace_source = 0;
        }
        for (int f = 0; f < 2; f++) {
                GHashTableIter it;
                gpointer v;

                g_hash_table_iter_init(&it, nm->leases[f]);
                while (g_hash_table_iter_next(&it, NULL, &v))
                        ((lease *) v)->active = false;
        }
        nm->n_states = 0;
        devices = nm->mod->devices(nm->client, &n_devices);
        for (size_t i = 0; i < n_devices; i++) {
                const pcpd_nm_device *dev = &devices[i];

                if (dev->ifname == NULL)
                        continue;
                if (!dev->active) {
                        /* between two active connections: what was known stays (N4), as
                         * for a config object that is "/" */
                        if (dev->activating) {
                                read_config(nm, dev->ifname, AF_INET, NULL);
                                read_config(nm, dev->ifname, AF_INET6, NULL);
                        }
                        continue;
                }
                read_config(nm, dev->ifname, AF_INET, dev->dhcp[0]);
                read_config(nm, dev->ifname, AF_INET6, dev->dhcp[1]);
        }
        /* A device without an active connection (link down, disconnected), and not on its
         * way to a new one: its leases go.
         * A device that vanished from NetworkManager's objects: its leases stay for
         * PCPD_NM_GRACE_S. NetworkManager unexports every device while it shuts down, a
         * second before it leaves the bus, and leaves the interfaces configured: that is
         * not the network going away (measured with nmlab). */
        for (int f = 0; f < 2; f++) {
                GHashTableIter it;
                gpointer k, v;

                g_hash_table_iter_init(&it, nm->leases[f]);
                while (g_hash_table_iter_next(&it, &k, &v)) {
                        lease *l = v;
                        bool present = false;

                        if (l->active)
                                continue;
                        for (size_t i = 0; i < n_devices && !present; i++)
                                present = g_strcmp0(devices[i].ifname, k) == 0;
                        if (present || (l->gone_at != 0 && now - l->gone_at >= PCPD_NM_GRACE_S * G_USEC_PER_SEC)) {
                                g_hash_table_iter_remove(&it);
                                continue;
                        }
                        if (l->gone_at == 0) {
                                l->gone_at = now;
                                g_message("%s: gone from NetworkManager; its DHCP-announced PCP servers stay for %d s",
                                          (const char *) k, PCPD_NM_GRACE_S);
                        }
                        if (nm->gone_source == 0)
                                nm->gone_source = g_timeout_add_seconds(PCPD_NM_GRACE_S + 1, on_gone, nm);
                }
        }
        push(nm);
        primary_update(nm);
        /* the connectivity is what a test's mock toggles to know a pass saw its changes */
        g_debug("NetworkManager: state applied (%zu devices, connectivity %d)", n_devices,
                nm->mod->connectivity(nm->client));
}

static gboolean on_settle(gpointer data) {
        pcpd_nm *nm = data;

        nm->settle_source = 0;
        apply(nm);
        return G_SOURCE_REMOVE;
}

static void nm_schedule(pcpd_nm *nm) {
        if (nm->settle_source == 0)
                nm->settle_source = g_timeout_add(PCPD_NM_SETTLE_MS, on_settle, nm);
}

/* N8: logind's PrepareForSleep(false): the host resumed. Its network may be another one
 * (NetworkManager reconnects, which pcpd follows), and while it slept CLOCK_MONOTONIC
 * stopped while the servers' epochs and the mappings' lifetimes went on: every server is
 * set up again and every mapping asked again, with its nonce. */
static int on_prepare_for_sleep(sd_bus_message *msg, void *data, sd_bus_error *ret_error) {
        pcpd_nm *nm = data;
        int start;

        if (sd_bus_message_read(msg, "b", &start) < 0)
                return 0;
        if (start) {
                g_message("The host is going to sleep");
                return 0;
        }
        g_message("The host resumed from sleep: asking every PCP server again for every mapping");
        pcpd_servers_renew_all(nm->m);
        nm_schedule(nm);
        return 0;
}

static void on_client_changed(void *data) {
        nm_schedule(data);
}

static void on_client_failed(void *data) {
        pcpd_nm *nm = data;

        /* (the module said why) */
        g_warning("NetworkManager cannot be followed: %s", servers_without_nm(nm));
        nm->said_running = true;
        nm->failed = true;
        pcpd_manager_emit_changed(nm->m, PCPD_MANAGER_CHANGED_NETWORK_MANAGER);
        nm_schedule(nm); /* nothing from NetworkManager to wait for (apply_states) */
}

static const uint32_t nm_module_sizes[] = PCPD_NM_MODULE_SIZES;
G_STATIC_ASSERT(G_N_ELEMENTS(nm_module_sizes) == G_N_ELEMENTS(((pcpd_nm_module *) NULL)->sizes));
static pcpd_module nm_module = {
        .file = PCPD_NM_MODULE_FILE,
        .symbol = PCPD_NM_MODULE_SYMBOL,
        .feature = "Following NetworkManager (PCP servers from DHCP)",
        .abi = PCPD_NM_MODULE_ABI,
        .size = sizeof(pcpd_nm_module),
        .sizes = nm_module_sizes,
        .n_sizes = G_N_ELEMENTS(nm_module_sizes),
        .sizes_offset = offsetof(pcpd_nm_module, sizes),
};

/* NetworkManager is on the bus: the module, its GIO connection, then libnm's client (once) */
static void client_start(pcpd_nm *nm) {
        static const pcpd_nm_client_ops ops = { .changed = on_client_changed, .failed = on_client_failed };

        if (nm->client_started)
                return;
        nm->client_started = true;
        nm->mod = pcpd_module_get(&nm_module);
        if (nm->mod == NULL) {
                /* the loader said why: as without NetworkManager */
                g_warning("NetworkManager is on the bus but cannot be followed: %s", servers_without_nm(nm));
                nm->said_running = true;
                nm->failed = true;
                pcpd_manager_emit_changed(nm->m, PCPD_MANAGER_CHANGED_NETWORK_MANAGER);
                nm_schedule(nm);
                return;
        }
        nm->client = nm->mod->client_new(&ops, nm);
}

static int on_owner_changed(sd_bus_message *msg, void *data, sd_bus_error *ret_error) {
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) >= 0 && strcmp(name, NM_BUS_NAME) == 0 &&
            new_owner[0] != '\0')
                client_start(data);
        return 0;
}

/* the answer to GetNameOwner at start */
static int on_owner(sd_bus_message *reply, void *data, sd_bus_error *ret_error) {
        pcpd_nm *nm = data;

        nm->owner_call = sd_bus_slot_unref(nm->owner_call);
        if (!sd_bus_message_is_method_error(reply, NULL)) {
                client_start(nm);
                return 0;
        }
        if (!sd_bus_message_is_method_error(reply, "org.freedesktop.DBus.Error.NameHasNoOwner"))
                g_warning("Cannot ask the system bus for NetworkManager: %s", sd_bus_message_get_error(reply)->message);
        if (!nm->client_started) {
                /* as libnm's client would say: nothing to follow until it comes */
                if (!nm->said_running)
                        g_message("NetworkManager is not running: %s", servers_without_nm(nm));
                nm->said_running = true;
                nm_schedule(nm);
        }
        return 0;
}

static gboolean on_bus_error(gpointer data) {
        g_warning("The system bus connection for NetworkManager and logind failed");
        ((pcpd_nm *) data)->bus_source = 0;
        return G_SOURCE_REMOVE;
}

static int bus_start(pcpd_nm *nm) {
        int r;

        r = sd_bus_open_system(&nm->bus);
        /* the match first: the bus applies it before it answers GetNameOwner, so no owner
         * change falls between the two */
        if (r >= 0)
                r = sd_bus_add_match_async(nm->bus, &nm->owner_match,
                                           "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                           "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                           "arg0='" NM_BUS_NAME "'",
                                           on_owner_changed, NULL, nm);
        /* N8: a resume from suspend */
        if (r >= 0)
                r = sd_bus_match_signal_async(nm->bus, &nm->sleep_match, "org.freedesktop.login1",
                                              "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                                              "PrepareForSleep", on_prepare_for_sleep, NULL, nm);
        if (r >= 0)
                r = sd_bus_call_method_async(nm->bus, &nm->owner_call, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                             "org.freedesktop.DBus", "GetNameOwner", on_owner, nm, "s", NM_BUS_NAME);
        if (r >= 0)
                nm->bus_source = pcpd_sd_bus_attach_glib(nm->bus, NULL, on_bus_error, nm);
        return r;
}

pcpd_nm *pcpd_nm_new(pcpd_manager *m) {
        pcpd_nm *nm;
        int r;

        nm = g_new0(pcpd_nm, 1);
        nm->m = m;
        for (int f = 0; f < 2; f++)
                nm->leases[f] = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        nm->refused = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        r = bus_start(nm);
        if (r < 0) {
                g_warning("Cannot connect to the system bus for NetworkManager: %s; %s", g_strerror(-r),
                          servers_without_nm(nm));
                nm->said_running = true;
                nm->failed = true;
        }
        return nm;
}

void pcpd_nm_free(pcpd_nm *nm) {
        if (nm == NULL)
                return;
        if (nm->client != NULL)
                nm->mod->client_free(nm->client);
        nm->owner_match = sd_bus_slot_unref(nm->owner_match);
        nm->owner_call = sd_bus_slot_unref(nm->owner_call);
        nm->sleep_match = sd_bus_slot_unref(nm->sleep_match);
        if (nm->bus_source != 0)
                g_source_remove(nm->bus_source);
        nm->bus = sd_bus_flush_close_unref(nm->bus);

        if (nm->settle_source != 0)
                g_source_remove(nm->settle_source);
        if (nm->grace_source != 0)
                g_source_remove(nm->grace_source);
        if (nm->expiry_source != 0)
                g_source_remove(nm->expiry_source);
        if (nm->gone_source != 0)
                g_source_remove(nm->gone_source);
        for (int f = 0; f < 2; f++)
                g_hash_table_destroy(nm->leases[f]);
        g_hash_table_destroy(nm->refused);
        g_free(nm);
}

size_t pcpd_nm_option_states(pcpd_nm *nm, pcpd_nm_option_state *out, size_t cap) {
        size_t n = 0;

        for (size_t i = 0; nm != NULL && nm->running && i < nm->n_states && n < cap; i++)
                out[n++] = nm->states[i];
        return n;
}

bool pcpd_nm_running(pcpd_nm *nm) {
        return nm != NULL && nm->running;
}

const char *pcpd_nm_status(pcpd_nm *nm) {
        if (nm == NULL || nm->failed)
                return "unavailable";
        return nm->running ? "running" : "not-running";
}
