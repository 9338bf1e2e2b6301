/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The manager's and a mapping's state as text for a person: one line per mapping, the
 * colours of states, endpoints. */

#include <stdint.h>

#include "pcpctl-bus.h"

/* "198.51.100.7:8080", "[2001:db8::1]:8080", "*:8080" (no address), "-" (neither) */
char *format_endpoint(const char *address, uint16_t port);

/* One line: "tcp 8080 -> 198.51.100.7:8080 (lifetime 3600 s)", "tcp 8080: pending",
 * "tcp 8080: failed (NO_RESOURCES), retrying"; sanitized. */
char *describe_mapping(const MappingInfo *i);

/* Why a mapping was removed, in words, for a MappingRemoved reason other than
 * "released"; NULL when there is nothing to add. */
const char *removal_reason_explained(const char *reason);

/* The colour of a state (an escape sequence, "" when colours are off or it has none) */
const char *mapping_state_color(const char *state);
const char *manager_state_color(const char *state);
