/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "pcp-wire.h"

void pcpd_config_init(pcpd_config *c) {
        memset(c, 0, sizeof(*c));
        c->enabled = true;
        c->default_lifetime = PCPD_DEFAULT_LIFETIME;
        c->max_lifetime = 86400;
        c->max_mappings_per_user = PCPD_DEFAULT_QUOTA;
        c->max_mappings = PCPD_DEFAULT_MAX_MAPPINGS;
        c->grace_seconds = PCPD_DEFAULT_GRACE;
        c->upnp_delete_retry_seconds = PCPD_DEFAULT_UPNP_DELETE_RETRY;
        c->use_default_routers = true;
        c->announce_port = PCP_CLIENT_PORT;
}

void pcpd_config_clear(pcpd_config *c) {
        for (size_t i = 0; i < c->n_servers; i++)
                g_free(c->servers[i].text);
        c->n_servers = 0;
}

bool pcpd_parse_endpoint(const char *s, guint16 default_port, struct sockaddr_in6 *ret) {
        g_autofree char *host = NULL;
        const char *port_str = NULL;
        struct in6_addr a;
        unsigned long port = default_port;
        char *pct;
        unsigned scope = 0;

        if (s == NULL || *s == '\0' || strlen(s) > 128)
                return false;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (end == NULL)
                        return false;
                host = g_strndup(s + 1, (gsize) (end - s - 1));
                if (end[1] == ':')
                        port_str = end + 2;
                else if (end[1] != '\0')
                        return false;
        } else if (strchr(s, ':') != NULL && strchr(s, ':') == strrchr(s, ':') && strchr(s, '.') != NULL) {
                /* a.b.c.d:port */
                const char *colon = strchr(s, ':');
                host = g_strndup(s, (gsize) (colon - s));
                port_str = colon + 1;
        } else
                host = g_strdup(s);

        pct = strchr(host, '%');
        if (pct != NULL) {
                *pct = '\0';
                scope = if_nametoindex(pct + 1);
                if (scope == 0) {
                        char *end;
                        errno = 0;
                        unsigned long v = strtoul(pct + 1, &end, 10);
                        if (errno != 0 || *end != '\0' || v == 0 || v > UINT32_MAX)
                                return false;
                        scope = (unsigned) v;
                }
        }
        if (!pcp_addr_from_string(host, &a) || pcp_addr_is_unspecified(&a))
                return false;
        if (port_str != NULL) {
                char *end;
                errno = 0;
                port = strtoul(port_str, &end, 10);
                if (errno != 0 || *end != '\0' || port == 0 || port > 65535)
                        return false;
        }
        memset(ret, 0, sizeof(*ret));
        ret->sin6_family = AF_INET6;
        ret->sin6_addr = a;
        ret->sin6_port = htons((uint16_t) port);
        ret->sin6_scope_id = scope;
        return true;
}

/* Error messages show what the file says as UTF-8 (invalid bytes replaced): they go to the
 * journal, which keeps anything else as an unreadable blob. */
static bool get_u32(GKeyFile *kf, const char *file, const char *group, const char *key, guint32 min, guint32 max,
                    guint32 *ret, GError **error) {
        g_autofree char *v = g_key_file_get_value(kf, group, key, NULL);
        char *end;
        unsigned long long n;

        if (v == NULL)
                return true;
        g_strstrip(v);
        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
                g_autofree char *shown = g_utf8_make_valid(v, -1);
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                            "%s: [%s] %s=%s is not a number between %u and %u", file, group, key, shown, min, max);
                return false;
        }
        *ret = (guint32) n;
        return true;
}

static bool get_bool(GKeyFile *kf, const char *file, const char *group, const char *key, bool *ret, GError **error) {
        g_autofree char *v = g_key_file_get_value(kf, group, key, NULL);

        if (v == NULL)
                return true;
        g_strstrip(v);
        if (g_ascii_strcasecmp(v, "true") == 0 || g_ascii_strcasecmp(v, "yes") == 0 || strcmp(v, "1") == 0)
                *ret = true;
        else if (g_ascii_strcasecmp(v, "false") == 0 || g_ascii_strcasecmp(v, "no") == 0 || strcmp(v, "0") == 0)
                *ret = false;
        else {
                g_autofree char *shown = g_utf8_make_valid(v, -1);
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                            "%s: [%s] %s=%s is not a boolean (true/false)", file, group, key, shown);
                return false;
        }
        return true;
}

static const char *const known_keys[][2] = {
        { "Daemon", "Enabled" },          { "Daemon", "DefaultLifetime" },  { "Daemon", "MaxLifetime" },
        { "Daemon", "MaxMappingsPerUser" }, { "Daemon", "MaxMappings" },  { "Daemon", "GraceSeconds" },
        { "Daemon", "UpnpDeleteRetrySeconds" },
        { "Servers", "Servers" },         { "Servers", "UseDefaultRouters" }, { "Servers", "AnnouncePort" },
};

/* A deep copy of c (the server texts are owned). */
static void config_copy(pcpd_config *dst, const pcpd_config *src) {
        *dst = *src;
        for (size_t i = 0; i < src->n_servers; i++)
                dst->servers[i].text = g_strdup(src->servers[i].text);
}

/* The settings of kf over c; c changes only when every one of them is valid. */
static bool load_key_file(pcpd_config *c, const char *path, GKeyFile *kf, GError **error) {
        g_auto(GStrv) groups = NULL;
        g_autofree char *servers = NULL;
        pcpd_config n;
        guint32 port;

        /* unknown groups and keys are mistakes an admin wants to hear about */
        groups = g_key_file_get_groups(kf, NULL);
        for (size_t i = 0; groups[i] != NULL; i++) {
                g_auto(GStrv) keys = g_key_file_get_keys(kf, groups[i], NULL, NULL);
                for (size_t j = 0; keys != NULL && keys[j] != NULL; j++) {
                        bool ok = false;
                        for (size_t k = 0; k < G_N_ELEMENTS(known_keys); k++)
                                if (strcmp(known_keys[k][0], groups[i]) == 0 && strcmp(known_keys[k][1], keys[j]) == 0)
                                        ok = true;
                        if (!ok) {
                                g_autofree char *g = g_utf8_make_valid(groups[i], -1);
                                g_autofree char *k = g_utf8_make_valid(keys[j], -1);
                                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                                            "%s: unknown setting [%s] %s", path, g, k);
                                return false;
                        }
                }
        }

        /* into a copy: a file with one bad setting changes nothing */
        config_copy(&n, c);
        port = n.announce_port;
        if (!get_bool(kf, path, "Daemon", "Enabled", &n.enabled, error) ||
            !get_u32(kf, path, "Daemon", "DefaultLifetime", 120, 86400 * 7, &n.default_lifetime, error) ||
            !get_u32(kf, path, "Daemon", "MaxLifetime", 120, 86400 * 7, &n.max_lifetime, error) ||
            !get_u32(kf, path, "Daemon", "MaxMappingsPerUser", 0, 65536, &n.max_mappings_per_user, error) ||
            !get_u32(kf, path, "Daemon", "MaxMappings", 1, 131070, &n.max_mappings, error) ||
            !get_u32(kf, path, "Daemon", "GraceSeconds", 0, 3600, &n.grace_seconds, error) ||
            !get_u32(kf, path, "Daemon", "UpnpDeleteRetrySeconds", 1, 3600, &n.upnp_delete_retry_seconds, error) ||
            !get_bool(kf, path, "Servers", "UseDefaultRouters", &n.use_default_routers, error) ||
            !get_u32(kf, path, "Servers", "AnnouncePort", 1, 65535, &port, error)) {
                pcpd_config_clear(&n);
                return false;
        }
        n.announce_port = (guint16) port;

        servers = g_key_file_get_value(kf, "Servers", "Servers", NULL);
        if (servers != NULL) {
                /* any ASCII space separates (a CR of a CR LF file is not part of a server) */
                g_auto(GStrv) parts = g_strsplit_set(servers, " ;,\t\r\n\v\f", -1);
                pcpd_config_clear(&n); /* a later file replaces the list */
                for (size_t i = 0; parts[i] != NULL; i++) {
                        if (parts[i][0] == '\0')
                                continue;
                        if (n.n_servers >= PCPD_MAX_CONFIG_SERVERS) {
                                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                                            "%s: [Servers] Servers= lists more than %d servers", path,
                                            PCPD_MAX_CONFIG_SERVERS);
                                pcpd_config_clear(&n);
                                return false;
                        }
                        if (!pcpd_parse_endpoint(parts[i], PCP_SERVER_PORT, &n.servers[n.n_servers].addr)) {
                                g_autofree char *shown = g_utf8_make_valid(parts[i], -1);
                                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                                            "%s: [Servers] Servers=: '%s' is not an address (a.b.c.d, a:b::c, "
                                            "with an optional :port or [v6]:port)",
                                            path, shown);
                                pcpd_config_clear(&n);
                                return false;
                        }
                        n.servers[n.n_servers++].text = g_strdup(parts[i]);
                }
        }
        pcpd_config_clear(c);
        *c = n;
        return true;
}

/* GKeyFile's own messages quote what the file says as it is: made UTF-8 like ours */
static bool syntax_error(GError **error, const char *path) {
        if (error != NULL && *error != NULL && !g_utf8_validate((*error)->message, -1, NULL)) {
                char *m = g_utf8_make_valid((*error)->message, -1);
                g_free((*error)->message);
                (*error)->message = m;
        }
        g_prefix_error(error, "%s: ", path);
        return false;
}

static bool load_one(pcpd_config *c, const char *path, GError **error) {
        g_autoptr(GKeyFile) kf = g_key_file_new();

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, error))
                return syntax_error(error, path);
        return load_key_file(c, path, kf, error);
}

bool pcpd_config_load_data(pcpd_config *c, const char *name, const char *data, size_t len, GError **error) {
        g_autoptr(GKeyFile) kf = g_key_file_new();

        if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, error))
                return syntax_error(error, name);
        return load_key_file(c, name, kf, error);
}

static gint compare_strings(gconstpointer a, gconstpointer b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* DefaultLifetime= above MaxLifetime= (from one file or two) is shortened to it, as every
 * request is: what pcpd asks for, and what the DefaultLifetime property says, is one
 * number. Said, so that the file's value is not a puzzle. */
static void default_within_max(pcpd_config *c) {
        if (c->default_lifetime <= c->max_lifetime)
                return;
        g_warning("DefaultLifetime=%u is longer than MaxLifetime=%u: pcpd asks for %u s when a caller asks for no "
                  "lifetime",
                  c->default_lifetime, c->max_lifetime, c->max_lifetime);
        c->default_lifetime = c->max_lifetime;
}

bool pcpd_config_load(pcpd_config *c, const char *path, bool allow_missing, GError **error) {
        g_autofree char *dropin = g_strconcat(path, ".d", NULL);
        g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GDir) dir = NULL;
        const char *name;

        if (g_file_test(path, G_FILE_TEST_EXISTS)) {
                if (!load_one(c, path, error))
                        return false;
        } else if (!allow_missing) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT, "%s: no such file", path);
                return false;
        }

        dir = g_dir_open(dropin, 0, NULL);
        if (dir == NULL) {
                default_within_max(c);
                return true;
        }
        while ((name = g_dir_read_name(dir)) != NULL)
                if (g_str_has_suffix(name, ".conf"))
                        g_ptr_array_add(files, g_build_filename(dropin, name, NULL));
        g_ptr_array_sort(files, compare_strings);
        for (guint i = 0; i < files->len; i++)
                if (!load_one(c, files->pdata[i], error))
                        return false;
        default_within_max(c);
        return true;
}
