/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-reload: what a reload (SIGHUP, `systemctl reload pcpd`) changes in a running pcpd.
 *
 * The configuration is read whole (pcpd.conf, pcpd.conf.d/, mappings.d/) into new
 * structures first; only when all of it is valid is it applied, so a mistake in any file
 * keeps the old configuration, every mapping and every declared mapping as they were.
 *
 * Applied at once: Enabled=, DefaultLifetime=, MaxLifetime=, MaxMappingsPerUser=,
 * GraceSeconds=, a lower MaxMappings=, the configured Servers= (a server that stays keeps
 * its mappings), the declared mappings (pcpd-declared.h). Needs a restart:
 * UseDefaultRouters=, AnnouncePort=, a higher MaxMappings= (the protocol engine's table is
 * sized at start); a reload that changes one of them says so and keeps the old value.
 */

#include <stdbool.h>

#include "pcpd-conf.h"
#include "pcpd-error.h"
#include "pcpd-manager.h"

/* Applies c over m's configuration as described above; every change it makes and every
 * one it cannot make is logged. Returns the number of settings changed. */
unsigned pcpd_reload_apply_config(pcpd_manager *m, const pcpd_config *c);

/* Where a reload reads the configuration: config_path (allow_missing as at start), and
 * the declared mappings next to it. main.c sets it once, before the first reload. */
void pcpd_reload_set_source(const char *config_path, bool allow_missing);

/* The whole reload (SIGHUP, or Manager.Reload): RELOADING=1, read, apply, READY=1 with a
 * STATUS= that says how it went. Returns 0, or a negative errno when it changed nothing;
 * ret_failure (when not NULL) then says which refusal it was and why:
 *   PCPD_ERROR_INVALID_CONFIGURATION  a file is invalid (the message names it, the setting
 *                                     and the value); logged, and READY=1 told with why
 *   PCPD_ERROR_STOPPING               pcpd stops (pcpd_manager_is_stopping()): nothing
 *                                     read, nothing told to the service manager */
int pcpd_reload(pcpd_manager *m, pcpd_failure *ret_failure);
