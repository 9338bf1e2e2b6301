/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A fake "pcp" backend for the manager's unit test (pcpd-backend.h): no socket, no engine,
 * no clock. It records every call the manager makes (adds with their nonce and server,
 * removes with their cookie, detaches), holds what was added, and tells the manager the
 * news a test makes up: a grant, a failure, a mapping lost, a server's state, the end of a
 * delete. Built with pcpd_manager_new_with_backend(fake_backend_new, ...). */

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "pcpd-backend.h"
#include "pcpd-manager.h" /* PCPD_MAX_SERVERS */

enum { FAKE_ADD, FAKE_REMOVE, FAKE_DETACH, FAKE_DELETE_SAVED, FAKE_DELETE_FORGET, FAKE_ADD_EEXIST };

typedef struct fake_call {
        int op;
        uint64_t id;         /* the mapping's (FAKE_DELETE_SAVED: the record's) */
        const pcpd_server *server;
        uint8_t nonce[PCP_NONCE_LEN];
        uint64_t cookie;     /* FAKE_REMOVE, FAKE_DELETE_SAVED, FAKE_DELETE_FORGET */
        bool had_grant;      /* FAKE_REMOVE: it had a grant (a delete goes upstream) */
        bool has_external;   /* FAKE_ADD: an external address was asked for */
        struct in6_addr external;
} fake_call;

typedef struct fake_backend {
        pcpd_backend base;
        GHashTable *maps;    /* pcpd_mapping * -> fake_map * (owned) */
        GHashTable *servers; /* pcpd_server * -> fake_srv * (owned) */
        GArray *calls;       /* fake_call, in order */
        int add_error;       /* when not 0: what add() returns (nothing held) */
        unsigned eexist_adds; /* so many next adds return -EEXIST (a delete under that nonce
                               * is still on its way), as the PCP backend does */
        uint8_t next_random;
} fake_backend;

/* pcpd_backend_new_fn */
int fake_backend_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings, pcpd_backend **ret);

static inline fake_backend *fake_of(pcpd_backend *b) {
        return (fake_backend *) b;
}

unsigned fake_calls(const fake_backend *fb, int op, uint64_t id);
/* the last call op for mapping id; fails the test when there is none */
const fake_call *fake_last_call(const fake_backend *fb, int op, uint64_t id);
/* whether the fake holds mp, and on which server */
bool fake_holds(const fake_backend *fb, const pcpd_mapping *mp, const pcpd_server **ret_server);

/* ---- news a test makes up (told to the manager at once) ---- */
/* the server granted mp: external_port, lifetime */
void fake_grant(fake_backend *fb, pcpd_mapping *mp, uint16_t external_port, uint32_t lifetime);
/* mp failed with error (a Mapping.Error name) */
void fake_fail(fake_backend *fb, pcpd_mapping *mp, const char *error);
/* mp is dropped under the manager */
void fake_lose(fake_backend *fb, pcpd_mapping *mp);
/* s is in state st now */
void fake_server_state(fake_backend *fb, pcpd_server *s, pcpd_server_state st);
/* the delete under cookie is over */
void fake_delete_done(fake_backend *fb, uint64_t cookie, bool confirmed);

/* ---- a fake UPnP-IGD fallback (the place of pcpd_upnp_backend_new()), for
 * manager_new_with_backends(..., fake_fallback_new, ...): it records the manager's calls,
 * holds what it is given, wants its deletes confirmed when `permanent`, and tells the news
 * a test makes up through the events it was built with. Its shutdown (pcpd_manager_free(),
 * where the real one runs the loop) calls on_shutdown when a test set it. ---- */

typedef struct fake_fallback fake_fallback;
struct fake_fallback {
        pcpd_backend base;
        GPtrArray *held; /* pcpd_mapping * */
        unsigned adds, removes, handovers, fills;
        uint64_t last_cookie; /* of the last remove or handover */
        bool permanent;       /* deleting_record() gives one */
        void (*on_shutdown)(fake_fallback *ff, void *userdata);
        void *on_shutdown_data;
        pcpd_backend_server routers[PCPD_MAX_SERVERS]; /* what its servers() lists: the first n_routers */
        size_t n_routers;
        const char *refuse; /* what refuse_reason() says of every request, or NULL */
};

/* pcpd_backend_new_fn */
int fake_fallback_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings, pcpd_backend **ret);

static inline fake_fallback *fake_fallback_of(pcpd_backend *b) {
        return (fake_fallback *) b;
}
