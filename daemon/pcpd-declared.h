/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-declared: mappings the administrator declares, for hosts and services that do not
 * ask for themselves (an IP camera, a home server). One file each, NAME.conf, in key file
 * syntax (the state file's codec: same escaping, same reader):
 *
 *   [Mapping]
 *   Protocol=tcp          tcp, udp, sctp, dccp or an IANA number 1-255 (required)
 *   Port=8080             the internal port, 1-65535 (required)
 *   ExternalPort=8080     the external port to suggest (0 or absent: the router's choice)
 *   Lifetime=3600         seconds, 120-604800 (absent: DefaultLifetime=); renewed for ever
 *   Description=Camera    up to 256 octets of UTF-8
 *   ThirdParty=192.0.2.9  another host's address: a mapping for it (PCP THIRD_PARTY)
 *   Family=ipv4           ipv4 or ipv6 (absent: of ThirdParty=, else as a new mapping)
 *
 * Two places: /etc/pcpd/mappings.d (the administrator's files, which pcpd only reads) and
 * mappings.d in the state directory (written by pcpd for `pcpctl declare`, the D-Bus
 * method DeclareMapping). A name in /etc wins. Every file of both is read before anything
 * is applied: one bad file (syntax, an unknown key, a value out of range, too large, too
 * many files) fails the whole load with a message naming the file, and nothing changes.
 *
 * This part is pure (parse, format, compare) but for pcpd_declared_load().
 */

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define PCPD_DECLARED_DIR "mappings.d"
#define PCPD_DECLARED_MAX 64             /* declarations in all */
#define PCPD_DECLARED_MAX_FILE_SIZE 4096 /* octets */
#define PCPD_DECLARED_NAME_MAX 64        /* octets, without .conf */

typedef struct pcpd_declared {
        char *name;   /* the file's name without .conf */
        char *path;   /* the file, for messages */
        bool runtime; /* in the state directory (pcpctl declare), not /etc */
        uint8_t protocol;
        int family; /* 0 (choose), AF_INET or AF_INET6 */
        uint16_t port;
        uint16_t external_port; /* suggested; 0 = any */
        uint32_t lifetime;      /* 0 = DefaultLifetime= */
        char *description;      /* never NULL */
        bool has_third_party;
        struct in6_addr third_party;
        /* the manager's bookkeeping, not part of the declaration */
        char *last_error; /* why it could not be mapped, as last logged */
        bool had_mapping; /* it had one at the last check (DeclaredMappings as published) */
        bool told_lost;   /* its mapping was just given up to the first by name, said so: its
                           * reason to wait is not said as well */
} pcpd_declared;

void pcpd_declared_free(pcpd_declared *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_declared, pcpd_declared_free)
pcpd_declared *pcpd_declared_copy(const pcpd_declared *d);

/* [A-Za-z0-9_.-], 1-64 octets, not starting with a dot */
bool pcpd_declared_name_valid(const char *name);

/* One file's text; path is for messages. NULL and error (naming path, the key and the
 * value) when it is no valid declaration. */
pcpd_declared *pcpd_declared_parse(const char *name, const char *path, const char *data, size_t len,
                                   GError **error);
/* The file pcpd writes for d; parses back to an equal declaration. */
void pcpd_declared_format(GString *out, const pcpd_declared *d);
/* The same declaration (name and every setting; not where it was read). */
bool pcpd_declared_equal(const pcpd_declared *a, const pcpd_declared *b);

/* Every declaration: etc_dir's *.conf (may be missing) and the state directory's
 * mappings.d (state_fd, named state_dir in messages; -1: none), sorted by name, the ones
 * in etc_dir winning. All or nothing: on error *ret is untouched. */
bool pcpd_declared_load(const char *etc_dir, int state_fd, const char *state_dir, GPtrArray **ret, GError **error);
/* The directory next to the configuration file: dirname(config_path)/mappings.d. */
char *pcpd_declared_etc_dir(const char *config_path);
/* The declaration called name in set, or NULL. */
pcpd_declared *pcpd_declared_find(GPtrArray *set, const char *name);
