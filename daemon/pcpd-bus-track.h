/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Holders that leave the bus, for the manager: a mapping lives while one of its holders'
 * connections does (pcpd-manager.h: holders, pcpd_manager_holder_vanished()).
 *
 * At the bus level, above the manager: one NameOwnerChanged match for every holder (not
 * one match rule per holder: the bus allows only a few hundred per connection), and a
 * GetNameOwner question for a holder the manager recorded without anyone vouching that
 * it is still on the bus (the listener's holder_unconfirmed: the name may have left
 * while its call was being authorised, before the manager had a hold to drop). A unique
 * name that left, or that the bus says has no owner, goes down to
 * pcpd_manager_holder_vanished(). The manager holds no bus.
 */

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "pcpd-manager.h"

typedef struct pcpd_bus_track pcpd_bus_track;

/* Watches bus for unique names that leave (the match is in place when this returns, so a
 * name the bus named after it will be seen leaving) and tells m. m must outlive it. */
int pcpd_bus_track_new(sd_bus *bus, pcpd_manager *m, pcpd_bus_track **ret);
/* Questions still out are dropped: their answers reach nobody. NULL is fine. */
pcpd_bus_track *pcpd_bus_track_free(pcpd_bus_track *t);

/* Asks the bus whether unique name `name` still has an owner; if the answer is that it
 * has none, the manager hears it vanished. One question per call. NULL t: nothing. */
int pcpd_bus_track_check(pcpd_bus_track *t, const char *name);

/* How many GetNameOwner questions are out. */
unsigned pcpd_bus_track_n_checks(pcpd_bus_track *t);

/* Without a bus, for the unit tests (tests/unit/test-bus-track.c) -------------------------
 * ask is called where the bus would be asked about name (0 or a negative errno, which
 * pcpd_bus_track_check() returns), with the question's handle; the answer is then given
 * with pcpd_bus_track_answer() (a GetNameOwner reply or error message, as the bus would
 * send it), at most once, unless the track is freed first. A NameOwnerChanged signal is
 * given with pcpd_bus_track_signal(). */
typedef struct pcpd_bus_track_question pcpd_bus_track_question;
typedef int (*pcpd_bus_track_ask)(pcpd_bus_track_question *q, const char *name, void *userdata);
pcpd_bus_track *pcpd_bus_track_new_unbound(pcpd_manager *m, pcpd_bus_track_ask ask, void *userdata);
/* q is freed by it */
void pcpd_bus_track_answer(pcpd_bus_track_question *q, sd_bus_message *reply);
void pcpd_bus_track_signal(pcpd_bus_track *t, sd_bus_message *name_owner_changed);
