/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The table pcpd-nm.so exports (pcpd-module.h): libnm's client on its own GIO connection
 * to the system bus (pcpd-nm-client.c), read by the daemon's pcpd-nm.c, which keeps
 * everything else (the bus name watch with sd-bus, the leases, their grace and expiry,
 * what goes to the manager). The daemon loads it when NetworkManager is first seen on the
 * bus. Bump the ABI number when anything here changes.
 */

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

#include "pcpd-module.h"

#define PCPD_NM_MODULE_FILE "pcpd-nm.so"
#define PCPD_NM_MODULE_SYMBOL "pcpd_nm_module_table"
#define PCPD_NM_MODULE_ABI 3

typedef struct pcpd_nm_client pcpd_nm_client;

typedef struct pcpd_nm_client_ops {
        /* something NetworkManager shows changed (or the client is ready): read it again.
         * Called often: the daemon coalesces. */
        void (*changed)(void *userdata);
        /* the client cannot be made (logged already): nothing more will come */
        void (*failed)(void *userdata);
} pcpd_nm_client_ops;

typedef struct pcpd_nm_device {
        const char *ifname; /* its IP interface, else its interface; may be NULL */
        bool active;        /* it has an active connection */
        /* it has none now, but NetworkManager is bringing one up: a new activation that
         * replaces the old one (deactivating or disconnected for NEW_ACTIVATION), or an
         * activation state whose active connection is not shown yet (as right after
         * NetworkManager came back). What it announces is not known yet. */
        bool activating;
        /* of an active device: its DHCP4Config / DHCP6Config options (key -> value);
         * NULL: no config object; empty: "/" or not filled yet */
        GHashTable *dhcp[2];
} pcpd_nm_device;

typedef struct pcpd_nm_module {
        pcpd_module_header header;
        /* Starts the GIO connection and libnm's client, asynchronously. */
        pcpd_nm_client *(*client_new)(const pcpd_nm_client_ops *ops, void *userdata);
        void (*client_free)(pcpd_nm_client *c);
        /* the client is made and NetworkManager is running */
        bool (*running)(pcpd_nm_client *c);
        /* The devices now, valid until the next call or client_free() (no main loop
         * iteration in between). Changes to them and their DHCP options are watched from
         * this call on: ops->changed. */
        const pcpd_nm_device *(*devices)(pcpd_nm_client *c, size_t *ret_n);
        /* NetworkManager is not running: the devices of the last devices() call are let go
         * (and no longer watched) */
        void (*unwatch)(pcpd_nm_client *c);
        /* the primary connection's first device's IP interface; NULL: not known */
        const char *(*primary_ifname)(pcpd_nm_client *c);
        int (*connectivity)(pcpd_nm_client *c);
        /* the sizes of the structures passed through the table (PCPD_NM_MODULE_SIZES),
         * checked on load (pcpd_module.sizes) */
        uint32_t sizes[2];
} pcpd_nm_module;

/* what pcpd_nm_module.sizes holds, in the module and in the daemon */
#define PCPD_NM_MODULE_SIZES { (uint32_t) sizeof(pcpd_nm_client_ops), (uint32_t) sizeof(pcpd_nm_device) }

/* in pcpd-nm.so only */
extern const pcpd_nm_module pcpd_nm_module_table;
