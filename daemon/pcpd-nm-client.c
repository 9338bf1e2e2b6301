/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcpd-nm.so: libnm's client for pcpd-nm.c (pcpd-nm-module.h). N1: one NMClient on a
 * GDBusConnection of its own (exit-on-close off), made asynchronously; it follows
 * NetworkManager leaving and coming back itself.
 */

#include <NetworkManager.h>

#include "pcpd-nm-module.h"

typedef struct hook {
        GObject *obj;
        gulong id;
} hook;

struct pcpd_nm_client {
        pcpd_nm_client_ops ops;
        void *userdata;
        GCancellable *cancel;
        GDBusConnection *conn;
        NMClient *client;
        GArray *hooks;   /* hook */
        GArray *devices; /* pcpd_nm_device */
};

static void changed(pcpd_nm_client *c) {
        c->ops.changed(c->userdata);
}

static void hooks_clear(pcpd_nm_client *c) {
        for (guint i = 0; i < c->hooks->len; i++) {
                hook *h = &g_array_index(c->hooks, hook, i);
                g_signal_handler_disconnect(h->obj, h->id);
                g_object_unref(h->obj);
        }
        g_array_set_size(c->hooks, 0);
}

static void on_change(GObject *obj, GParamSpec *pspec, gpointer data) {
        changed(data);
}

static void hook_notify(pcpd_nm_client *c, gpointer obj, const char *signal) {
        hook h = { .obj = g_object_ref(obj) };

        h.id = g_signal_connect(obj, signal, G_CALLBACK(on_change), c);
        g_array_append_val(c->hooks, h);
}

static void on_client_change(gpointer obj, gpointer arg, gpointer data) {
        changed(data);
}

static void on_client(GObject *src, GAsyncResult *res, gpointer data) {
        g_autoptr(GError) error = NULL;
        GObject *client = g_async_initable_new_finish(G_ASYNC_INITABLE(src), res, &error);
        pcpd_nm_client *c;

        if (client == NULL) {
                if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
                        /* ops.failed() says what pcpd does without it */
                        g_warning("Cannot follow NetworkManager (libnm): %s", error->message);
                        ((pcpd_nm_client *) data)->ops.failed(((pcpd_nm_client *) data)->userdata);
                }
                return;
        }
        c = data;
        c->client = NM_CLIENT(client);
        g_signal_connect(client, "notify::" NM_CLIENT_NM_RUNNING, G_CALLBACK(on_change), c);
        g_signal_connect(client, "notify::" NM_CLIENT_PRIMARY_CONNECTION, G_CALLBACK(on_change), c);
        g_signal_connect(client, "notify::" NM_CLIENT_ACTIVE_CONNECTIONS, G_CALLBACK(on_change), c);
        g_signal_connect(client, "notify::" NM_CLIENT_CONNECTIVITY, G_CALLBACK(on_change), c);
        g_signal_connect(client, NM_CLIENT_DEVICE_ADDED, G_CALLBACK(on_client_change), c);
        g_signal_connect(client, NM_CLIENT_DEVICE_REMOVED, G_CALLBACK(on_client_change), c);
        /* not running: said by ops.changed()'s caller (pcpd-nm.c), which knows where
         * servers come from then */
        changed(c);
}

static void on_connection(GObject *src, GAsyncResult *res, gpointer data) {
        g_autoptr(GError) error = NULL;
        GDBusConnection *conn = g_dbus_connection_new_for_address_finish(res, &error);
        pcpd_nm_client *c;

        if (conn == NULL) {
                if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
                        /* ops.failed() says what pcpd does without it */
                        g_warning("Cannot connect to the system bus for NetworkManager: %s", error->message);
                        ((pcpd_nm_client *) data)->ops.failed(((pcpd_nm_client *) data)->userdata);
                }
                return;
        }
        c = data;
        c->conn = conn;
        /* GLib's default would raise SIGTERM in pcpd when the bus goes (N1) */
        g_dbus_connection_set_exit_on_close(conn, FALSE);
        /* No permissions: pcpd asks NetworkManager to do nothing, and fetching them costs a
         * GetPermissions call (NetworkManager asks polkit about ~20 actions) at start and on
         * every CheckPermissions signal, plus their table in pcpd (bench/README.md, "RSS with
         * NetworkManager present"). */
        g_async_initable_new_async(NM_TYPE_CLIENT, G_PRIORITY_DEFAULT, c->cancel, on_client, c,
                                   NM_CLIENT_DBUS_CONNECTION, conn,
#if NM_CHECK_VERSION(1, 24, 0)
                                   NM_CLIENT_INSTANCE_FLAGS, (guint) NM_CLIENT_INSTANCE_FLAGS_NO_AUTO_FETCH_PERMISSIONS,
#endif
                                   NULL);
}

static gboolean report_failed(gpointer data) {
        pcpd_nm_client *c = data;

        c->ops.failed(c->userdata);
        return G_SOURCE_REMOVE;
}

static void client_free(pcpd_nm_client *c);

static pcpd_nm_client *client_new(const pcpd_nm_client_ops *ops, void *userdata) {
        g_autoptr(GError) error = NULL;
        g_autofree char *address = NULL;
        pcpd_nm_client *c = g_new0(pcpd_nm_client, 1);

        c->ops = *ops;
        c->userdata = userdata;
        c->cancel = g_cancellable_new();
        c->hooks = g_array_new(FALSE, TRUE, sizeof(hook));
        c->devices = g_array_new(FALSE, TRUE, sizeof(pcpd_nm_device));
        /* GIO's rules for the address (the same bus: DBUS_SYSTEM_BUS_ADDRESS or the
         * well-known socket, as sd_bus_open_system()) */
        address = g_dbus_address_get_for_bus_sync(G_BUS_TYPE_SYSTEM, NULL, &error);
        if (address == NULL) {
                g_warning("No system bus address for NetworkManager: %s", error->message);
                /* not from inside the caller's call */
                g_idle_add_full(G_PRIORITY_DEFAULT, report_failed, c, NULL);
                return c;
        }
        g_dbus_connection_new_for_address(address,
                                          G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                  G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                          NULL, c->cancel, on_connection, c);
        return c;
}

static void client_free(pcpd_nm_client *c) {
        if (c == NULL)
                return;
        g_cancellable_cancel(c->cancel);
        g_object_unref(c->cancel);
        g_idle_remove_by_data(c);
        hooks_clear(c);
        g_array_free(c->hooks, TRUE);
        g_array_free(c->devices, TRUE);
        if (c->client != NULL) {
                g_signal_handlers_disconnect_by_data(c->client, c);
                g_object_unref(c->client);
        }
        if (c->conn != NULL)
                g_object_unref(c->conn);
        g_free(c);
}

static bool client_running(pcpd_nm_client *c) {
        return c->client != NULL && nm_client_get_nm_running(c->client);
}

/* A device without an active connection on its way to one (pcpd_nm_device.activating).
 * What NetworkManager 1.42 shows, one signal after the other (measured with nmlab):
 *   `nmcli connection up` on the active connection: DEACTIVATING, reason NEW_ACTIVATION;
 *   Dhcp4Config "/"; ActiveConnection "/"; DISCONNECTED, reason NEW_ACTIVATION; the new
 *   ActiveConnection; PREPARE ... ACTIVATED;
 *   coming back on the bus: the device in IP_CONFIG with ActiveConnection "/", its active
 *   connection 5 ms later;
 *   the link going away: ActiveConnection "/" while still ACTIVATED, then UNAVAILABLE,
 *   reason CARRIER (that state is final: its leases go on the pass it causes). */
static bool activating(NMDevice *dev) {
        NMDeviceState st = nm_device_get_state(dev);

        if (st >= NM_DEVICE_STATE_PREPARE && st <= NM_DEVICE_STATE_ACTIVATED)
                return true;
        return (st == NM_DEVICE_STATE_DEACTIVATING || st == NM_DEVICE_STATE_DISCONNECTED) &&
               nm_device_get_state_reason(dev) == NM_DEVICE_STATE_REASON_NEW_ACTIVATION;
}

static const pcpd_nm_device *client_devices(pcpd_nm_client *c, size_t *ret_n) {
        const GPtrArray *devices = c->client != NULL ? nm_client_get_devices(c->client) : NULL;

        hooks_clear(c);
        g_array_set_size(c->devices, 0);
        for (guint i = 0; devices != NULL && i < devices->len; i++) {
                NMDevice *dev = devices->pdata[i];
                pcpd_nm_device d = {
                        .ifname = nm_device_get_ip_iface(dev) ?: nm_device_get_iface(dev),
                        .active = nm_device_get_active_connection(dev) != NULL,
                };

                if (!d.active)
                        d.activating = activating(dev);

                hook_notify(c, dev, "notify");
                if (d.ifname != NULL && d.active) {
                        NMDhcpConfig *cfg[2] = { nm_device_get_dhcp4_config(dev), nm_device_get_dhcp6_config(dev) };

                        for (int f = 0; f < 2; f++) {
                                if (cfg[f] == NULL)
                                        continue;
                                hook_notify(c, cfg[f], "notify::" NM_DHCP_CONFIG_OPTIONS);
                                d.dhcp[f] = nm_dhcp_config_get_options(cfg[f]);
                        }
                }
                g_array_append_val(c->devices, d);
        }
        *ret_n = c->devices->len;
        return (const pcpd_nm_device *) (void *) c->devices->data;
}

static void client_unwatch(pcpd_nm_client *c) {
        hooks_clear(c);
        g_array_set_size(c->devices, 0);
}

static const char *client_primary_ifname(pcpd_nm_client *c) {
        NMActiveConnection *ac = c->client != NULL ? nm_client_get_primary_connection(c->client) : NULL;
        const GPtrArray *devs = ac != NULL ? nm_active_connection_get_devices(ac) : NULL;

        if (devs == NULL || devs->len == 0)
                return NULL;
        return nm_device_get_ip_iface(devs->pdata[0]) ?: nm_device_get_iface(devs->pdata[0]);
}

static int client_connectivity(pcpd_nm_client *c) {
        return c->client != NULL ? (int) nm_client_get_connectivity(c->client) : 0;
}

const pcpd_nm_module pcpd_nm_module_table = {
        .header = { .abi = PCPD_NM_MODULE_ABI, .size = sizeof(pcpd_nm_module) },
        .client_new = client_new,
        .client_free = client_free,
        .running = client_running,
        .devices = client_devices,
        .unwatch = client_unwatch,
        .primary_ifname = client_primary_ifname,
        .connectivity = client_connectivity,
        .sizes = PCPD_NM_MODULE_SIZES,
};
