/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who is calling, asked of the bus once per connection.
 *
 * The bus tells a connection's uid, pid and security label (GetConnectionCredentials) as
 * they were when the connection was made: they never change while it lives, and a unique
 * name is never given to another connection in the bus's lifetime. So the answer is kept
 * per unique name until the bus says that name is gone (NameOwnerChanged with no new
 * owner), and calls from a name whose question is still out wait for that answer instead
 * of asking again. The application behind the connection (pcpd_caller_detect_app(), the
 * /proc reads) is worked out on first need and kept as well. Only who the caller is is
 * kept here, never what it may do: authorisation (polkit) is asked per call.
 *
 * Bounded: at most PCPD_CALLER_CACHE_MAX answered entries (the least recently used one
 * goes first); entries still waiting for the bus are bounded by the bus itself (it
 * answers at once, and limits the replies pcpd may await).
 */

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#define PCPD_CALLER_CACHE_MAX 4096

typedef struct pcpd_caller_cache pcpd_caller_cache;
typedef struct pcpd_caller pcpd_caller;
typedef struct pcpd_caller_wait pcpd_caller_wait;

/* What the bus said about a connection; read-only for holders of a reference. */
struct pcpd_caller {
        unsigned n_ref;
        char *name; /* its unique bus name */
        uid_t uid;
        pid_t pid;            /* 0 when the bus did not say */
        char *security_label; /* LinuxSecurityLabel, NULL when none */
        /* the application behind it (pcpd_caller_app()) */
        bool app_known;
        char *app_id; /* NULL when none */
        const char *app_id_source;
        /* private to the cache */
        pcpd_caller_cache *cache;
        sd_bus_slot *slot;        /* the GetConnectionCredentials call, while out */
        GPtrArray *waiters;       /* pcpd_caller_wait*, while the call is out */
        GList *lru;               /* its link in the cache's use order, once answered */
};

pcpd_caller *pcpd_caller_ref(pcpd_caller *c);
pcpd_caller *pcpd_caller_unref(pcpd_caller *c);

/* The application behind the caller: worked out on the first call (received: when the
 * call that needs it came, CLOCK_BOOTTIME in clock ticks, see pcpd_caller_detect_app()),
 * the same answer afterwards. *ret_id is NULL and *ret_source "none" when none. */
void pcpd_caller_app(pcpd_caller *c, uint64_t received, const char **ret_id, const char **ret_source);

/* Called once per pcpd_caller_cache_query() that returned 0, never from inside it:
 * caller (borrowed: take a reference to keep it) or, when the bus did not say who it is,
 * NULL and error (an sd_bus_error to reply with). Not called once the wait is cancelled. */
typedef void (*pcpd_caller_callback)(pcpd_caller *caller, const sd_bus_error *error, void *userdata);

int pcpd_caller_cache_new(sd_bus *bus, pcpd_caller_cache **ret);
/* Waits still open are dropped without their callbacks. */
pcpd_caller_cache *pcpd_caller_cache_free(pcpd_caller_cache *cache);

/* The kept answer for unique name `name` (borrowed), or NULL. */
pcpd_caller *pcpd_caller_cache_get(pcpd_caller_cache *cache, const char *name);

/* Asks the bus who `name` is, or joins the question already out for it. 0 and *ret_wait
 * (to cancel with pcpd_caller_wait_cancel() until the callback came) or a negative errno. */
int pcpd_caller_cache_query(pcpd_caller_cache *cache, const char *name, pcpd_caller_callback cb, void *userdata,
                            pcpd_caller_wait **ret_wait);
void pcpd_caller_wait_cancel(pcpd_caller_wait *w);

/* How many connections it knows (answered or asked about). */
unsigned pcpd_caller_cache_size(pcpd_caller_cache *cache);

/* Without a bus, for the unit tests (tests/unit/test-caller-cache.c) ----------------------
 * ask is called where the bus would be asked who c->name is (c borrowed; 0 or a negative
 * errno, which pcpd_caller_cache_query() returns); the answer is then given with
 * pcpd_caller_cache_answer() (a GetConnectionCredentials reply or error, as the bus would
 * send it), exactly once, unless the cache is freed first. A unique name leaving the bus
 * (NameOwnerChanged with no new owner) is pcpd_caller_cache_name_left(). */
typedef int (*pcpd_caller_ask)(pcpd_caller *c, void *userdata);
pcpd_caller_cache *pcpd_caller_cache_new_unbound(pcpd_caller_ask ask, void *userdata);
/* c may be freed by it: do not use c afterwards without a reference of one's own */
void pcpd_caller_cache_answer(pcpd_caller *c, sd_bus_message *reply);
void pcpd_caller_cache_name_left(pcpd_caller_cache *cache, const char *name);
