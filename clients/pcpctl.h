/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the command line decided, and the verbs. Each verb returns an exit status: 0
 * success, 1 failure (the error is on stderr), 2 usage error. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "pcpctl-json.h"

extern JsonFormat arg_json;
extern bool arg_legend;
extern bool arg_ask_password;
extern bool arg_pager_disabled;
extern bool arg_full;

/* options of map and peer */
typedef struct MapOptions {
        uint16_t external_port;
        bool lifetime_set;
        uint32_t lifetime;
        const char *description;
        const char *family;
        const char *interface;
        bool prefer_failure;
        bool persistent;
        bool wait;
        const char *third_party; /* declare */
} MapOptions;

extern MapOptions arg_map;

/* pcpctl-status.c */
int verb_status(int argc, char **argv, sd_bus *bus);
int verb_list(int argc, char **argv, sd_bus *bus);

/* pcpctl-map.c */
int check_mapping_args(int argc, char **argv);
int verb_map(int argc, char **argv, sd_bus *bus);
int verb_peer(int argc, char **argv, sd_bus *bus);

/* pcpctl-declare.c */
int check_declare(int argc, char **argv);
int verb_declare(int argc, char **argv, sd_bus *bus);
int check_undeclare(int argc, char **argv);
int verb_undeclare(int argc, char **argv, sd_bus *bus);
/* The file of the declaration name when it is one of /etc/pcpd/mappings.d's, which
 * undeclare cannot remove (declared_file_is_etc()), sanitised, to free; NULL otherwise (also
 * when pcpd's DeclaredMappings cannot be read: undeclare then says why if it fails). */
char *declared_etc_file(sd_bus *bus, const char *name);

/* pcpctl-monitor.c */
int verb_monitor(int argc, char **argv, sd_bus *bus);
