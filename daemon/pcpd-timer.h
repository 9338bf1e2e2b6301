/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-timer: one deadline on a GLib main context (the PCP engine's clock), re-armed as
 * often as the deadline moves without waking the loop for it.
 *
 * Why not g_source_set_ready_time(): GLib writes the context's wake-up eventfd on every
 * change of a ready time, even from the loop's own thread in the middle of a dispatch,
 * where nobody sleeps in poll(); the loop then pays a write, an extra poll() and a read.
 * pcpd moves the engine's deadline after every add, answer and release (~4.6 system calls
 * per mapping, measured in bench/README.md).
 *
 * How: the source keeps the deadline itself; its prepare() turns it into the poll timeout
 * and its check() compares it with the loop's time, so the loop reads the deadline anew
 * before every poll. Setting the deadline therefore needs a wake-up only when a poll may be
 * sleeping on an older, later timeout right now:
 *   - on the thread that owns the context, inside a dispatch (g_main_current_source() is
 *     set): never. The loop runs prepare() again before it next polls. This is pcpd's case:
 *     every re-arm comes from a bus call, a socket's input or the timer itself.
 *   - nobody owns the context (before the loop runs, or between g_main_context_iteration()
 *     calls): never; nobody polls.
 *   - otherwise (another thread, or the owner outside a dispatch: within some source's
 *     prepare() or check(), or holding the context by g_main_context_acquire()): only when
 *     the new deadline is earlier than the one the last prepare() turned into the timeout.
 *     Then one g_main_context_wakeup(), as GLib itself would.
 * A deadline moved later needs nothing: at worst the loop wakes at the earlier time, finds
 * nothing due and sleeps again.
 * Not covered: a prepare() or check() of another source, on the owning thread, inside a
 * nested iteration run from a dispatch (the rule above takes the outer dispatch for the
 * current one and does not wake). pcpd has no such prepare() or check().
 *
 * The callback runs in a dispatch with the deadline already disarmed (it re-arms if it
 * wants to fire again), at the source's priority (G_PRIORITY_DEFAULT unless changed with
 * g_source_set_priority() on pcpd_timer_source()). It fires once the context's monotonic
 * time (g_get_monotonic_time(), µs) is at or past the deadline, never before; with a slack
 * (pcpd_timer_set_slack()) at the first multiple of the slack at or after the deadline, so
 * deadlines that fall into one slot cost one wake-up.
 *
 * Cost: pcpd_timer_set_deadline() takes a mutex (uncontended: no system call) and makes no
 * system call but the wake-up above; prepare() and check() a mutex each and some
 * arithmetic; with no deadline the source asks the poll for no timeout (an idle loop stays
 * asleep).
 */

#include <glib.h>
#include <stdint.h>

#define PCPD_TIMER_NEVER ((gint64) -1)

typedef struct pcpd_timer pcpd_timer;
typedef void (*pcpd_timer_fn)(void *userdata);

/* A disarmed timer attached to context (NULL: the default context); name for debugging
 * (g_source_set_name()), may be NULL. */
pcpd_timer *pcpd_timer_new(GMainContext *context, const char *name, pcpd_timer_fn fn, void *userdata);

/* Detaches and frees; NULL is fine; returns NULL. May be called from the timer's own
 * callback. */
pcpd_timer *pcpd_timer_free(pcpd_timer *t);

/* Arms the timer at deadline_us (the monotonic clock, µs, as g_get_monotonic_time()), or
 * disarms it (PCPD_TIMER_NEVER, or any negative value). A deadline in the past fires at the
 * loop's next turn (or slot, with a slack). From any thread. */
void pcpd_timer_set_deadline(pcpd_timer *t, gint64 deadline_us);

/* The deadline armed, or PCPD_TIMER_NEVER. */
gint64 pcpd_timer_get_deadline(pcpd_timer *t);

/* How many times pcpd_timer_set_deadline() woke the context (g_main_context_wakeup()):
 * for tests and benchmarks. */
uint64_t pcpd_timer_get_wakeups(pcpd_timer *t);

/* Lets the timer fire up to slack_us late: a deadline fires at the first multiple of
 * slack_us (on the monotonic clock) at or after it, so deadlines close together fire in one
 * wake-up (as sd-event's accuracy and the kernel's timer slack do). 0 (the default): at the
 * deadline. Set it before the loop runs or from a dispatch: a smaller slack set from
 * elsewhere takes effect at the loop's next turn. */
void pcpd_timer_set_slack(pcpd_timer *t, gint64 slack_us);

/* The GSource underneath (borrowed), e.g. for g_source_set_priority(). */
GSource *pcpd_timer_source(pcpd_timer *t);
