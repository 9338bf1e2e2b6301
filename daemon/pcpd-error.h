/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Why the core refused a request: a small enum and a sentence for the person asking. The
 * core (pcpd-manager.c, pcpd-declared-manager.c, pcpd-reload.c) knows no D-Bus;
 * pcpd-bus.c turns each value into one of the contract's error names
 * (pcpd_bus_error_name(), one table).
 */

#include <glib.h>

typedef enum pcpd_error {
        PCPD_ERROR_NONE,
        PCPD_ERROR_INVALID_ARGS,     /* the request itself cannot be made */
        PCPD_ERROR_DISABLED,         /* port mapping is switched off */
        PCPD_ERROR_CONFLICT,         /* held by another user, or not pcpd's to change */
        PCPD_ERROR_QUOTA_EXCEEDED,   /* a per-user or per-host limit */
        PCPD_ERROR_NO_SERVER,        /* no server would take it */
        PCPD_ERROR_UNSUPPORTED,      /* no server or host could ever do it */
        PCPD_ERROR_NOT_FOUND,        /* what it names does not exist */
        PCPD_ERROR_CANNOT_SAVE_STATE, /* the state directory refused the change */
        PCPD_ERROR_STOPPING,         /* pcpd is stopping (pcpd_manager_is_stopping()) */
        PCPD_ERROR_INVALID_CONFIGURATION, /* a reload found a file invalid (pcpd-reload.h) */
        _PCPD_ERROR_MAX,
} pcpd_error;

/* A refusal: which, and why (owned). Zero-initialised (PCPD_FAILURE_NULL) means none. */
typedef struct pcpd_failure {
        pcpd_error error;
        char *message;
} pcpd_failure;

#define PCPD_FAILURE_NULL ((pcpd_failure) { .error = PCPD_ERROR_NONE, .message = NULL })

/* Fills f (NULL: only the return value) with error and the formatted sentence, replacing
 * what it held. Returns the negative errno that goes with error (error must not be NONE). */
int pcpd_fail(pcpd_failure *f, pcpd_error error, const char *format, ...) G_GNUC_PRINTF(3, 4);
/* Frees the sentence; f is none again. */
void pcpd_failure_clear(pcpd_failure *f);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(pcpd_failure, pcpd_failure_clear)
/* The negative errno that goes with error (-EIO for an unknown one). */
int pcpd_error_to_errno(pcpd_error error);
