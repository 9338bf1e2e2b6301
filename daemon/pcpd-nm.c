/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <net/if.h>
#include <string.h>
#include <time.h>

#include <NetworkManager.h>

#include "pcpd-dhcp.h"
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

typedef struct hook {
        GObject *obj;
        gulong id;
} hook;

/* pcpd watches the system bus with sd-bus (no thread, libsystemd's pages are pcpd's own
 * anyway): NetworkManager's name, and logind's PrepareForSleep. GIO's connection (a
 * thread, ~1 MiB of libgio's pages) and libnm's client are made only once NetworkManager
 * is on the bus (bench/README.md, "RSS before the first mapping"); a client once made stays
 * (it follows NetworkManager leaving and coming back itself). */
struct pcpd_nm {
        pcpd_manager *m;
        GCancellable *cancel;
        sd_bus *bus;
        guint bus_source;
        sd_bus_slot *owner_match, *owner_call, *sleep_match;
        bool client_started; /* the GIO connection and libnm's client are on their way */
        GDBusConnection *conn;
        NMClient *client;
        bool running;
        bool failed; /* libnm could not be set up */
        guint settle_source, grace_source, expiry_source, gone_source;
        GArray *hooks;       /* hook */
        GHashTable *leases[2]; /* ifname -> lease*: [0] DHCPv4, [1] DHCPv6 */
        GHashTable *refused;   /* "ifname/family" -> the option text last refused (logged once) */
        size_t n_states;
        pcpd_nm_option_state states[PCPD_NM_MAX_STATES];
};

static void nm_schedule(pcpd_nm *nm);

static void hooks_clear(pcpd_nm *nm) {
        for (guint i = 0; i < nm->hooks->len; i++) {
                hook *h = &g_array_index(nm->hooks, hook, i);
                g_signal_handler_disconnect(h->obj, h->id);
                g_object_unref(h->obj);
        }
        g_array_set_size(nm->hooks, 0);
}

static void on_change(GObject *obj, GParamSpec *pspec, gpointer data) {
        nm_schedule(data);
}

static void hook_notify(pcpd_nm *nm, gpointer obj, const char *signal) {
        hook h = { .obj = g_object_ref(obj) };

        h.id = g_signal_connect(obj, signal, G_CALLBACK(on_change), nm);
        g_array_append_val(nm->hooks, h);
}

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
static void read_config(pcpd_nm *nm, NMDevice *dev, const char *ifname, int family, NMDhcpConfig *cfg) {
        GHashTable *leases = nm->leases[family == AF_INET ? 0 : 1];
        GHashTable *opts = cfg != NULL ? nm_dhcp_config_get_options(cfg) : NULL;
        pcpd_dhcp_servers servers = { 0 };
        pcpd_dhcp_error e;
        const char *key = NULL;
        lease *l;

        if (cfg != NULL)
                hook_notify(nm, cfg, "notify::" NM_DHCP_CONFIG_OPTIONS);
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
        NMActiveConnection *ac = nm_client_get_primary_connection(nm->client);
        const GPtrArray *devs = ac != NULL ? nm_active_connection_get_devices(ac) : NULL;
        const char *ifname;

        if (devs == NULL || devs->len == 0)
                return; /* N4: "/" is "not known yet" */
        ifname = nm_device_get_ip_iface(devs->pdata[0]) ?: nm_device_get_iface(devs->pdata[0]);
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
        const GPtrArray *devices;
        bool running = nm->client != NULL && nm_client_get_nm_running(nm->client);

        hooks_clear(nm);
        if (running != nm->running) {
                nm->running = running;
                pcpd_manager_emit_changed(nm->m, PCPD_MANAGER_CHANGED_NETWORK_MANAGER);
                g_message("NetworkManager %s", running ? "is running: PCP servers from DHCP are used"
                                                       : "is not running: PCP servers from the default routes only");
        }
        if (!running) {
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
        devices = nm_client_get_devices(nm->client);
        for (guint i = 0; devices != NULL && i < devices->len; i++) {
                NMDevice *dev = devices->pdata[i];
                const char *ifname = nm_device_get_ip_iface(dev) ?: nm_device_get_iface(dev);

                hook_notify(nm, dev, "notify");
                if (ifname == NULL || nm_device_get_active_connection(dev) == NULL)
                        continue;
                read_config(nm, dev, ifname, AF_INET, nm_device_get_dhcp4_config(dev));
                read_config(nm, dev, ifname, AF_INET6, nm_device_get_dhcp6_config(dev));
        }
        /* A device without an active connection (link down, disconnected): its leases go.
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
                        for (guint i = 0; devices != NULL && i < devices->len && !present; i++) {
                                NMDevice *dev = devices->pdata[i];
                                present = g_strcmp0(nm_device_get_ip_iface(dev) ?: nm_device_get_iface(dev), k) == 0;
                        }
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
        g_debug("NetworkManager: state applied (%u devices, connectivity %d)", devices != NULL ? devices->len : 0,
                (int) nm_client_get_connectivity(nm->client));
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

static void on_client_change(gpointer obj, gpointer arg, gpointer data) {
        nm_schedule(data);
}

static void on_client(GObject *src, GAsyncResult *res, gpointer data) {
        g_autoptr(GError) error = NULL;
        GObject *client = g_async_initable_new_finish(G_ASYNC_INITABLE(src), res, &error);
        pcpd_nm *nm;

        if (client == NULL) {
                if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
                        g_warning("Cannot follow NetworkManager (libnm): %s; PCP servers from the default routes only",
                                  error->message);
                        ((pcpd_nm *) data)->failed = true;
                }
                return;
        }
        nm = data;
        nm->client = NM_CLIENT(client);
        g_signal_connect(client, "notify::" NM_CLIENT_NM_RUNNING, G_CALLBACK(on_change), nm);
        g_signal_connect(client, "notify::" NM_CLIENT_PRIMARY_CONNECTION, G_CALLBACK(on_change), nm);
        g_signal_connect(client, "notify::" NM_CLIENT_ACTIVE_CONNECTIONS, G_CALLBACK(on_change), nm);
        g_signal_connect(client, "notify::" NM_CLIENT_CONNECTIVITY, G_CALLBACK(on_change), nm);
        g_signal_connect(client, NM_CLIENT_DEVICE_ADDED, G_CALLBACK(on_client_change), nm);
        g_signal_connect(client, NM_CLIENT_DEVICE_REMOVED, G_CALLBACK(on_client_change), nm);
        if (!nm_client_get_nm_running(nm->client))
                g_message("NetworkManager is not running: PCP servers from the default routes only");
        nm_schedule(nm);
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

static void on_connection(GObject *src, GAsyncResult *res, gpointer data) {
        g_autoptr(GError) error = NULL;
        GDBusConnection *conn = g_dbus_connection_new_for_address_finish(res, &error);
        pcpd_nm *nm;

        if (conn == NULL) {
                if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
                        g_warning("Cannot connect to the system bus for NetworkManager: %s; PCP servers from the "
                                  "default routes only",
                                  error->message);
                        ((pcpd_nm *) data)->failed = true;
                }
                return;
        }
        nm = data;
        nm->conn = conn;
        /* GLib's default would raise SIGTERM in pcpd when the bus goes (N1) */
        g_dbus_connection_set_exit_on_close(conn, FALSE);
        g_async_initable_new_async(NM_TYPE_CLIENT, G_PRIORITY_DEFAULT, nm->cancel, on_client, nm,
                                   NM_CLIENT_DBUS_CONNECTION, conn, NULL);
}

/* NetworkManager is on the bus: GIO's connection, then libnm's client (once) */
static void client_start(pcpd_nm *nm) {
        g_autoptr(GError) error = NULL;
        g_autofree char *address = NULL;

        if (nm->client_started)
                return;
        nm->client_started = true;
        /* GIO's rules for the address (the same bus: DBUS_SYSTEM_BUS_ADDRESS or the
         * well-known socket, as sd_bus_open_system()) */
        address = g_dbus_address_get_for_bus_sync(G_BUS_TYPE_SYSTEM, NULL, &error);
        if (address == NULL) {
                g_warning("No system bus address for NetworkManager: %s", error->message);
                nm->failed = true;
                return;
        }
        g_dbus_connection_new_for_address(address,
                                          G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                  G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                          NULL, nm->cancel, on_connection, nm);
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
                g_message("NetworkManager is not running: PCP servers from the default routes only");
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
        nm->cancel = g_cancellable_new();
        nm->hooks = g_array_new(FALSE, TRUE, sizeof(hook));
        for (int f = 0; f < 2; f++)
                nm->leases[f] = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        nm->refused = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        r = bus_start(nm);
        if (r < 0) {
                g_warning("Cannot connect to the system bus for NetworkManager: %s; PCP servers from the "
                          "default routes only",
                          g_strerror(-r));
                nm->failed = true;
        }
        return nm;
}

void pcpd_nm_free(pcpd_nm *nm) {
        if (nm == NULL)
                return;
        g_cancellable_cancel(nm->cancel);
        g_object_unref(nm->cancel);
        hooks_clear(nm);
        g_array_free(nm->hooks, TRUE);
        if (nm->client != NULL) {
                g_signal_handlers_disconnect_by_data(nm->client, nm);
                g_object_unref(nm->client);
        }
        if (nm->conn != NULL)
                g_object_unref(nm->conn);
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
