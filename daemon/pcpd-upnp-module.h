/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The table pcpd-upnp.so exports (pcpd-module.h): pcpd-upnp.c's functions, which the
 * daemon's pcpd-upnp-loader.c calls through it under their own names, so that callers
 * (pcpd-upnp-backend.c) do not know the client is in a module. Bump the ABI number when
 * pcpd-upnp.h's types or functions change.
 */

#include "pcpd-module.h"
#include "pcpd-upnp.h"

#define PCPD_UPNP_MODULE_FILE "pcpd-upnp.so"
#define PCPD_UPNP_MODULE_SYMBOL "pcpd_upnp_module_table"
#define PCPD_UPNP_MODULE_ABI 1

typedef struct pcpd_upnp_module {
        pcpd_module_header header;
        __typeof__(pcpd_upnp_new) *new_;
        __typeof__(pcpd_upnp_free) *free_;
        __typeof__(pcpd_upnp_set_interface) *set_interface;
        __typeof__(pcpd_upnp_refuse_reason) *refuse_reason;
        __typeof__(pcpd_upnp_add) *add;
        __typeof__(pcpd_upnp_remove) *remove;
        __typeof__(pcpd_upnp_remove_record) *remove_record;
        __typeof__(pcpd_upnp_forget) *forget;
        __typeof__(pcpd_upnp_get) *get;
        __typeof__(pcpd_upnp_get_record) *get_record;
        __typeof__(pcpd_upnp_get_igd) *get_igd;
        __typeof__(pcpd_upnp_count) *count;
        __typeof__(pcpd_upnp_n_busy) *n_busy;
        __typeof__(pcpd_upnp_get_stats) *get_stats;
        __typeof__(pcpd_upnp_state_to_string) *state_to_string;
        __typeof__(pcpd_upnp_error_name) *error_name;
        /* sizes the daemon and the module must agree on */
        uint32_t sizeof_info, sizeof_request, sizeof_record, sizeof_igd_info, sizeof_event, sizeof_stats;
} pcpd_upnp_module;

/* in pcpd-upnp.so only */
extern const pcpd_upnp_module pcpd_upnp_module_table;
