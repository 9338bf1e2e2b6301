/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Words for what pcpd reports: the page shows sentences a user understands, never the
 * contract's tokens ("no-network", "NO_RESOURCES"). Pure functions, unit-tested.
 */

#include <glib.h>

typedef enum {
        PF_SITUATION_NOT_RUNNING,
        PF_SITUATION_DISABLED,
        PF_SITUATION_DISCOVERING,
        PF_SITUATION_ROUTER,   /* ready, a router answers PCP or NAT-PMP */
        PF_SITUATION_DIRECT,   /* ready, no router can map: the host is not behind a NAT */
        PF_SITUATION_NO_ROUTER, /* no-network */
        PF_SITUATION_UNSUPPORTED,
        PF_SITUATION_CONNECTING, /* the first look at the service (and its start) not finished yet */
} PfSituation;

/* What the page says about the service as a whole. @state is Manager.State, @servers the
 * Servers value (a(ssssu)) or NULL. */
PfSituation pf_situation(gboolean running, const char *state, GVariant *servers);
const char *pf_situation_sentence(PfSituation s);
/* The banner for situations that need one (not running, switched off, no router), else NULL. */
const char *pf_situation_banner(PfSituation s);
/* The banner when the service could not be started: @message is the bus' (or systemd's)
 * reason, e.g. "Process org.freedesktop.PCP1 exited with status 1". */
char *pf_format_start_failure(const char *message);

/* "TCP", "UDP", ... or "Protocol 47" */
char *pf_format_protocol(const char *protocol);
/* A string from the bus (an application's description, an app id) fit for one line of the
 * page: controls, line separators and bidi overrides and isolates replaced by U+FFFD. */
char *pf_format_text(const char *text);
/* "198.51.100.7:22000", "[2001:db8::1]:22000" */
char *pf_format_endpoint(const char *address, guint port);
/* "9 min", "2 h 5 min", "45 s", "3 days" (for a positive number of seconds) */
char *pf_format_duration(gint64 seconds);
/* Why a mapping failed (Mapping.Error) in words. */
char *pf_format_failure(const char *error);
/* A D-Bus error of pcpd (org.freedesktop.PCP1.Error.*) in words, NULL for another name. */
const char *pf_format_bus_error(const char *name);
/* A failed call for a toast: "<what>: <words for the error's name> — <the daemon's message>",
 * or "<what>: <message>" for an error without words. */
char *pf_format_call_error(const char *what, const char *name, const char *message);
/* A router's protocol ("pcp", "nat-pmp", "none") and where it was learned. */
const char *pf_format_server_protocol(const char *protocol);
char *pf_format_server_source(const char *source, const char *interface);

typedef struct {
        const char *opcode, *protocol, *state, *error, *server, *description;
        const char *external_address, *remote_address;
        guint internal_port, external_port, remote_port;
        guint64 expires_at_us; /* CLOCK_REALTIME */
        gboolean persistent;
        const char *other_user; /* NULL when the mapping is the viewer's own */
} PfMappingText;

/* A mapping's row: "TCP 22000 → 198.51.100.7:22000" */
char *pf_format_mapping_title(const PfMappingText *m);
/* "Game lobby · Active · expires in 9 min, renewed automatically · user bob"; @now_us is
 * CLOCK_REALTIME. */
char *pf_format_mapping_subtitle(const PfMappingText *m, gint64 now_us);
