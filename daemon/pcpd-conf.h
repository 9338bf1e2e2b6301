/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>

#define PCPD_MAX_CONFIG_SERVERS 16
#define PCPD_DEFAULT_LIFETIME 3600
#define PCPD_DEFAULT_QUOTA 64
#define PCPD_DEFAULT_MAX_MAPPINGS 4096
#define PCPD_DEFAULT_GRACE 30
#define PCPD_DEFAULT_UPNP_DELETE_RETRY 60

typedef struct pcpd_config_server {
        char *text; /* as written, for logs and the Servers property */
        struct sockaddr_in6 addr; /* IPv4 as IPv4-mapped; port 5351 unless given */
} pcpd_config_server;

typedef struct pcpd_config {
        bool enabled;
        guint32 default_lifetime;     /* seconds */
        guint32 max_lifetime;         /* seconds: requests are clamped to this */
        guint32 max_mappings_per_user;
        guint32 max_mappings;         /* all users together */
        guint32 grace_seconds;        /* unclaimed app mappings after a restart */
        guint32 upnp_delete_retry_seconds; /* first wait before an unconfirmed UPnP delete is tried again */
        bool use_default_routers;
        guint16 announce_port;
        size_t n_servers;
        pcpd_config_server servers[PCPD_MAX_CONFIG_SERVERS];
} pcpd_config;

void pcpd_config_init(pcpd_config *c);
void pcpd_config_clear(pcpd_config *c);
/* Loads path, then path.d/ *.conf in lexical order (later files override). A missing main
 * file is not an error when allow_missing. Errors name the file, key and value; a file
 * with an error changes nothing in c (the files before it have). Once all are read, a
 * DefaultLifetime= above MaxLifetime= is shortened to it, with a warning: default_lifetime
 * is what pcpd asks for. */
bool pcpd_config_load(pcpd_config *c, const char *path, bool allow_missing, GError **error);
/* The settings of one file's text over c, as pcpd_config_load() reads each file; name is
 * for messages. On error c is unchanged. */
bool pcpd_config_load_data(pcpd_config *c, const char *name, const char *data, size_t len, GError **error);
/* "192.0.2.1", "192.0.2.1:15351", "fd00::1", "[fd00::1]:15351", "fe80::1%eth0" */
bool pcpd_parse_endpoint(const char *s, guint16 default_port, struct sockaddr_in6 *ret);
