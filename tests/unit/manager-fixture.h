/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the manager's tests (test-manager.c, test-manager-net.c, test-restore.c) share: a
 * fake PCP server on 127.0.0.1 (an ephemeral port) that answers ANNOUNCE and MAP with
 * pcp-wire and records the MAP requests, a listener that records what the manager tells,
 * and the part of a fixture made and undone the same way in each. cmocka's assertions fail
 * the calling test. */

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "pcp-wire.h"
#include "pcpd-manager.h"
#include "pcpd-servers.h"

#define EXT_ADDR "192.0.2.7" /* what the fake server grants (TEST-NET-1) */
#define PORT_OFFSET 10000    /* external port = internal port + this, unless one is suggested */

/* ---- the fake server: answers every PCP request and records the MAP requests ---- */

typedef struct seen_request {
        uint8_t opcode;
        uint32_t lifetime;
        uint8_t nonce[PCP_NONCE_LEN];
        uint8_t protocol;
        uint16_t internal_port, external_port;
        struct in6_addr external_addr;
} seen_request;

typedef struct fake_server {
        int fd;
        guint watch;
        uint16_t port;
        uint8_t map_result;  /* the answer to a MAP with a lifetime (deletes always succeed) */
        gint64 started;      /* for the epoch: seconds since, plus a base */
        GArray *requests;    /* seen_request, MAP requests only (deletes too), in order */
        unsigned announces;
} fake_server;

/* bound to 127.0.0.1, watched on the thread-default main context; answers SUCCESS */
fake_server *fake_server_new(void);
void fake_server_free(fake_server *s);

/* the server as a server source gives it (::ffff:127.0.0.1 and its port), and its text */
pcpd_server_spec fake_server_spec(const fake_server *s);
char *fake_server_text(const fake_server *s);
/* config (initialised here; pcpd_config_clear() it) with s as its one server: no default
 * routers, no ANNOUNCE socket, room for max mappings, per user too */
void fake_server_config(pcpd_config *config, const fake_server *s, unsigned max);

/* the i-th recorded request; fails the test when there is none */
const seen_request *fake_request(const fake_server *s, guint i);

/* requests for internal port `port` with (lifetime_zero) or without a lifetime of 0 */
unsigned fake_count(const fake_server *s, uint16_t port, bool lifetime_zero);

/* the last one of fake_count()'s; fails the test when there is none */
const seen_request *fake_last(const fake_server *s, uint16_t port, bool lifetime_zero);

/* ---- the recording listener ---- */

enum { EV_ADDED, EV_CHANGED, EV_REMOVED };

typedef struct event {
        int kind;
        uint64_t id;
        unsigned what;  /* EV_CHANGED: the mask */
        int reason;     /* EV_REMOVED; -1 otherwise */
        /* the mapping's, when told */
        char *state, *error, *server, *external_address, *internal_address;
        uint16_t external_port;
        guint n_mappings; /* the manager's mappings when it was told */
} event;

typedef struct recorder {
        GArray *events;        /* event */
        pcpd_manager *expect_m; /* when set, the manager every call has to come from */
        size_t backlog;         /* what output_backlog answers (0 unless a test sets it) */
        unsigned backlog_asked; /* how many times it was asked */
} recorder;

/* Asserts what the listener contract promises: a change's mask is not empty and within
 * _PCPD_MAPPING_CHANGED_ALL, a removed mapping is still findable while it is told. The
 * userdata is a recorder. */
extern const pcpd_manager_listener recording;

void recorder_init(recorder *r);
void recorder_clear(recorder *r);

unsigned count_events(const recorder *r, int kind, uint64_t id);

/* the last event of a kind for mapping id; fails the test when there is none */
const event *last_event(const recorder *r, int kind, uint64_t id);

/* ---- waiting: the main context is iterated until cond holds ---- */

typedef bool (*wait_cond_fn)(void *ctx, const void *arg);

/* Iterates the default main context until cond(ctx, arg) holds; fails the test, naming
 * `what` and the iterations made, when it does not within a counted cap of iterations or a
 * cap of seconds (a cap against hangs, never a pass condition). */
void wait_for(void *ctx, wait_cond_fn cond, const void *arg, const char *what);

/* ---- requests ---- */

#define MANAGER_TEST_UID 4242 /* not root: root has no per-user quota */

/* A MAP request over IPv4 of uid MANAGER_TEST_UID for internal port `port` (protocol: 6 or
 * 17), held by the bus name owner (NULL: a persistent one), lifetime 600 s. */
pcpd_mapping_request manager_request(uint8_t protocol, uint16_t port, const char *owner);
/* pcpd_manager_add_mapping() that must succeed: the mapping (fails the test otherwise,
 * with the port and the error). */
pcpd_mapping *manager_add(pcpd_manager *m, const pcpd_mapping_request *req);

/* ---- a fixture's common part ---- */

/* A main loop on the default main context (*loop), the recorder made ready (rec) and one
 * fake server (*a): fields of the caller's fixture, which keeps them under its own names. */
void manager_fixture_setup(GMainLoop **loop, recorder *rec, fake_server **a);

/* Undoes manager_fixture_setup() after the test: the manager m (NULL: none) freed, what it
 * left on the default main context (finished sources) run before the server goes, then the
 * server, the recorder and the loop; *loop and *a are cleared. */
void manager_fixture_teardown(pcpd_manager *m, GMainLoop **loop, recorder *rec, fake_server **a);
