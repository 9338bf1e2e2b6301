/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Asynchronous polkit checks (CheckAuthorization on the system bus) with limits.
 *
 * Every check pcpd has sent and polkit has not answered yet takes one of the bus's
 * pending-reply slots of pcpd's connection (dbus-daemon's max_replies_per_connection: 128
 * on a default system bus, and it never times them out). Were they all taken, every other
 * caller would be refused by the bus itself. So:
 *   - one user has at most PCPD_POLKIT_MAX_PER_UID checks unanswered, everybody together
 *     at most PCPD_POLKIT_MAX; a check beyond either is refused at once with
 *     org.freedesktop.PCP1.Error.TooManyPending and never sent;
 *   - a check is given up after PCPD_POLKIT_TIMEOUT_S (PCPD_POLKIT_INTERACTIVE_TIMEOUT_S when
 *     interactive: a human answers a dialog), and as soon as its caller leaves the bus; pcpd
 *     then sends CancelCheckAuthorization, and polkit answers the check with an error;
 *   - a check given up still counts (for its user too) until polkit has answered it: until
 *     then the bus still holds its slot.
 * Calls that need no polkit answer (root's, a user's own mapping) never come here and are
 * never refused for being many.
 */

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#define PCPD_POLKIT_MAX_PER_UID 16
#define PCPD_POLKIT_MAX 64
#define PCPD_POLKIT_TIMEOUT_S 25
#define PCPD_POLKIT_INTERACTIVE_TIMEOUT_S 300

typedef struct pcpd_polkit pcpd_polkit;

typedef enum pcpd_polkit_result {
        PCPD_POLKIT_ALLOWED,
        PCPD_POLKIT_DENIED,     /* polkit said no */
        PCPD_POLKIT_CHALLENGE,  /* no, but yes after authentication (call again interactively) */
        PCPD_POLKIT_FAILED,     /* polkit answered with an error; the detail says which */
        PCPD_POLKIT_TIMED_OUT,  /* no answer in time: given up */
        PCPD_POLKIT_VANISHED,   /* the caller left the bus: given up, nobody to answer */
        PCPD_POLKIT_SHUTDOWN,   /* pcpd is stopping */
} pcpd_polkit_result;

/* Called exactly once per check that pcpd_polkit_check() accepted, never from inside it.
 * detail: polkit's error message for PCPD_POLKIT_FAILED, else NULL. */
typedef void (*pcpd_polkit_callback)(pcpd_polkit_result result, const char *detail, void *userdata);

int pcpd_polkit_new(sd_bus *bus, pcpd_polkit **ret);
/* Every check still waiting gets PCPD_POLKIT_SHUTDOWN, and polkit a cancellation. */
pcpd_polkit *pcpd_polkit_free(pcpd_polkit *pk);

/* Asks polkit whether sender (a unique bus name, of user uid) may do action. 0: cb will be
 * called; negative errno with error set when the check was not sent: -EBUSY (a limit,
 * org.freedesktop.PCP1.Error.TooManyPending) or another failure. */
int pcpd_polkit_check(pcpd_polkit *pk, const char *sender, uid_t uid, const char *action, bool interactive,
                      pcpd_polkit_callback cb, void *userdata, sd_bus_error *error);

/* Checks sent and not yet answered by polkit (given up ones included): for uid, and for
 * everybody. */
unsigned pcpd_polkit_pending_for_uid(pcpd_polkit *pk, uid_t uid);
unsigned pcpd_polkit_pending(pcpd_polkit *pk);
