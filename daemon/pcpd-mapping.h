/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-mapping: one mapping as the manager keeps it (its registry is the manager's
 * m->mappings): who holds it, what its caller asked for, where it is held (a server, the
 * host itself when not behind a NAT, a backend) and what was last published on the bus.
 * A backend (pcpd-pcp.h, pcpd-backend.h) includes this, not the manager's header: it keeps
 * its own part of a mapping behind an opaque pointer of its own here.
 */

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "pcp-wire.h"
#include "pcp1-contract.h"

typedef struct pcpd_manager pcpd_manager;
typedef struct pcpd_server pcpd_server;

/* The sharing key (family, opcode, protocol, internal port, and for PEER the remote end) is
 * not stored: the manager's m->by_key hashes those fields of the mapping itself
 * (manager_mapping_find()).
 * Within each group the fields go by size, largest first, and a few small ones sit where
 * alignment would leave a hole: 216 bytes (there are 10,000s of these; `ptype /o struct
 * pcpd_mapping` in gdb shows the layout). */
typedef struct pcpd_mapping {
        /* the manager's m->mappings hashes a mapping by it (pcpd_manager_mapping()) */
        uint64_t id;
        pcpd_manager *manager;
        /* its D-Bus object path is not kept: it is made from the id where it is needed
         * (pcpd_mapping_path(), PCPD_MAPPING_PATH()) */
        /* its engine mapping's id in the PCP backend (pcpd-pcp.c: the engine hands mp back
         * with that mapping's events); 0 when the engine has none (direct, waiting for a
         * server, being removed): pcpd_pcp_mapping_held() */
        uint64_t pcp;
        pcpd_server *server;
        char *server_text; /* shared with every mapping on that server (set_shared()) */

        /* who */
        char *app_id; /* shared (set_shared()) */
        const char *app_id_source;
        char *owner; /* first holder's unique name; "" when persistent or unclaimed (set_shared()) */
        /* the set of its holders' unique bus names, NULL when none (pcpd-holders.h): its
         * sole holder's shared set, with n_holds holds (one per AddMapping), or from a
         * second holder on a table of its own: name -> number of holds (n_holds 0) */
        GHashTable *holders;
        uid_t uid;
        pid_t pid;
        unsigned n_holds;
        /* its place among the mappings its sole holder holds alone (pcpd-holders.c) */
        uint32_t alone_pos;

        /* what */
        char *description; /* shared (set_shared()) */
        uint64_t created;  /* CLOCK_REALTIME µs */
        /* the fields nearly every mapping has empty (its previous server, the interface its
         * caller named, its declaration, a PEER's remote address, the filters): kept apart,
         * NULL while all are empty; read with pcpd_mapping_prev_server() and the like, set
         * with pcpd_mapping_set_str() and pcpd_mapping_set_filters() */
        struct pcpd_mapping_rare *rare;
        /* the option external-address (has_suggested_address) and the third party
         * (has_third_party): rare, so kept apart, NULL when neither is asked for; read with
         * pcpd_mapping_suggested_address() and pcpd_mapping_third_party() */
        struct pcpd_mapping_addrs *addrs;
        uint32_t lifetime;
        uint16_t internal_port, suggested_port;
        uint16_t remote_port;
        uint8_t family; /* AF_INET or AF_INET6 (an octet: both are < 256) */
        uint8_t opcode, protocol;
        bool has_suggested_address;
        bool prefer_failure;
        bool has_third_party;
        /* fields of the groups below, here in what would be padding before the pointers */
        bool has_nonce;  /* on a server: its nonce (below) */
        bool persistent;
        /* restored after a daemon restart, waiting for its app: one of the manager's
         * n_unclaimed (pcpd-restore.c; cleared only by manager_unclaimed_done()) */
        bool unclaimed;
        uint32_t granted; /* as last published on the bus */

        /* how it is held */
        /* the backend that holds it: the manager's "direct", or "pcp" (on server), NULL
         * while it waits for a server (manager_mapping_set_held(), the one place that
         * changes it; pcpd-backend.h) */
        struct pcpd_backend *held_by;
        /* held through a backend as well (pcpd-backend.h: the UPnP-IGD one) while its
         * server speaks neither PCP nor NAT-PMP; NULL when not */
        struct pcpd_backend_mapping *backend;

        /* as last published on the bus; state and error are interned names, never freed
         * (set_name() in pcpd-manager-private.h; const, so that a g_free() or set_str()
         * of them does not compile) */
        const char *state, *error;
        /* shared (set_shared(): nearly every mapping has the same two), never NULL once
         * the mapping is made */
        char *external_address, *internal_address;
        uint64_t expires_at; /* CLOCK_REALTIME µs, 0 = none */
        /* (granted: above) */
        uint16_t external_port;

        /* on a server: its nonce, on disk before the request left (has_nonce: above) */
        uint8_t nonce[PCP_NONCE_LEN];
} pcpd_mapping;

/* 216 octets: a 224-octet malloc chunk (one more octet and it is 240) */
_Static_assert(sizeof(void *) != 8 || sizeof(pcpd_mapping) <= 216, "pcpd_mapping grew past a 224-octet chunk");

/* The fields nearly every mapping has empty, kept apart (mp->rare) so that the 10,000s of
 * mappings without any of them do not each carry five pointers. mp->rare is NULL while all
 * are empty: the setters below make it and free it again (a mapping back on a server after
 * waiting for one drops its prev_server, and usually its block with it). */
struct pcpd_mapping_rare {
        char *prev_server;    /* the server it was on before it had to wait for one (NULL: none) */
        char *interface;      /* the interface its caller named (NULL: none: it follows the primary) */
        char *declared;       /* the declaration it is for (pcpd-declared.h), NULL when none */
        char *remote_address; /* a PEER mapping's remote address, NULL for MAP */
        /* the rest of what the caller asked for, to ask a server again: when a direct
         * mapping moves to one, and after a daemon restart (mapping_params()) */
        pcp_filter *filters; /* n_filters of them; NULL when none */
        uint8_t n_filters;
};

static inline const char *pcpd_mapping_prev_server(const pcpd_mapping *mp) {
        return mp->rare != NULL ? mp->rare->prev_server : NULL;
}

static inline const char *pcpd_mapping_interface(const pcpd_mapping *mp) {
        return mp->rare != NULL ? mp->rare->interface : NULL;
}

static inline const char *pcpd_mapping_declared(const pcpd_mapping *mp) {
        return mp->rare != NULL ? mp->rare->declared : NULL;
}

static inline const char *pcpd_mapping_remote_address(const pcpd_mapping *mp) {
        return mp->rare != NULL ? mp->rare->remote_address : NULL;
}

/* its filters, NULL when it has none (then pcpd_mapping_n_filters() is 0) */
static inline const pcp_filter *pcpd_mapping_filters(const pcpd_mapping *mp) {
        return mp->rare != NULL ? mp->rare->filters : NULL;
}

static inline uint8_t pcpd_mapping_n_filters(const pcpd_mapping *mp) {
        return mp->rare != NULL ? mp->rare->n_filters : 0;
}

/* frees mp's block of rare fields and all in it (the mapping being freed) */
static inline void pcpd_mapping_rare_free(pcpd_mapping *mp) {
        struct pcpd_mapping_rare *r = mp->rare;

        if (r == NULL)
                return;
        g_free(r->prev_server);
        g_free(r->interface);
        g_free(r->declared);
        g_free(r->remote_address);
        g_free(r->filters);
        g_free(r);
        mp->rare = NULL;
}

/* mp's block of rare fields, made (all empty) when it has none */
static inline struct pcpd_mapping_rare *pcpd_mapping_rare_get(pcpd_mapping *mp) {
        if (mp->rare == NULL)
                mp->rare = g_new0(struct pcpd_mapping_rare, 1);
        return mp->rare;
}

/* frees mp's block once all of it is empty again */
static inline void pcpd_mapping_rare_trim(pcpd_mapping *mp) {
        const struct pcpd_mapping_rare *r = mp->rare;

        if (r != NULL && r->prev_server == NULL && r->interface == NULL && r->declared == NULL &&
            r->remote_address == NULL && r->filters == NULL)
                pcpd_mapping_rare_free(mp);
}

static inline void pcpd_mapping_rare_set_str_(pcpd_mapping *mp, size_t offset, const char *value) {
        char **field, *copy;

        if (mp->rare == NULL && value == NULL)
                return;
        field = (char **) (void *) ((char *) pcpd_mapping_rare_get(mp) + offset);
        copy = g_strdup(value); /* before the g_free(): value may be the field's own text */
        g_free(*field);
        *field = copy;
        if (value == NULL)
                pcpd_mapping_rare_trim(mp);
}

/* Sets mp's rare text field (prev_server, interface, declared, remote_address: a field of
 * another type does not compile) to a copy of value, NULL for none. */
#define pcpd_mapping_set_str(mp, field, value)                                                                       \
        pcpd_mapping_rare_set_str_((mp),                                                                             \
                                   _Generic(((struct pcpd_mapping_rare *) NULL)->field,                              \
                                            char *: offsetof(struct pcpd_mapping_rare, field)),                       \
                                   (value))

/* sets mp's filters to a copy of the n at filters (n 0: none) */
static inline void pcpd_mapping_set_filters(pcpd_mapping *mp, const pcp_filter *filters, uint8_t n) {
        struct pcpd_mapping_rare *r;

        if (mp->rare == NULL && n == 0)
                return;
        r = pcpd_mapping_rare_get(mp);
        g_free(r->filters);
        r->filters = n > 0 ? g_memdup2(filters, n * sizeof(pcp_filter)) : NULL;
        r->n_filters = n;
        if (n == 0)
                pcpd_mapping_rare_trim(mp);
}

struct pcpd_mapping_addrs {
        struct in6_addr suggested_address, third_party;
};

/* the option external-address, the zero address when not asked for */
static inline const struct in6_addr *pcpd_mapping_suggested_address(const pcpd_mapping *mp) {
        static const struct in6_addr none;
        return mp->addrs != NULL ? &mp->addrs->suggested_address : &none;
}

/* the third party, the zero address when none */
static inline const struct in6_addr *pcpd_mapping_third_party(const pcpd_mapping *mp) {
        static const struct in6_addr none;
        return mp->addrs != NULL ? &mp->addrs->third_party : &none;
}

/* A mapping's D-Bus object path, PCP1_MAPPING_PATH_PREFIX "/<id>" in decimal, made from its
 * id when it is needed rather than kept with each mapping (a pointer and a heap chunk each:
 * ~7 MB at 131,070). The longest: the prefix, "/", the 20 digits of UINT64_MAX and a NUL. */
#define PCPD_MAPPING_PATH_PREFIX_LEN (sizeof(PCP1_MAPPING_PATH_PREFIX "/") - 1)
#define PCPD_MAPPING_PATH_MAX (PCPD_MAPPING_PATH_PREFIX_LEN + 20 + 1)

/* id's object path in buf; returns buf */
static inline const char *pcpd_mapping_path_of_id(uint64_t id, char buf[static PCPD_MAPPING_PATH_MAX]) {
        char digits[20];
        size_t n = 0;

        memcpy(buf, PCP1_MAPPING_PATH_PREFIX "/", PCPD_MAPPING_PATH_PREFIX_LEN);
        do {
                digits[n++] = (char) ('0' + id % 10);
                id /= 10;
        } while (id != 0);
        for (size_t i = 0; i < n; i++)
                buf[PCPD_MAPPING_PATH_PREFIX_LEN + i] = digits[n - 1 - i];
        buf[PCPD_MAPPING_PATH_PREFIX_LEN + n] = '\0';
        return buf;
}

/* mp's object path in buf; returns buf */
static inline const char *pcpd_mapping_path(const pcpd_mapping *mp, char buf[static PCPD_MAPPING_PATH_MAX]) {
        return pcpd_mapping_path_of_id(mp->id, buf);
}

/* mp's object path in a buffer of the enclosing block's (a compound literal), for use within
 * that block (a log line, a reply, a signal); a path that must outlive it is copied */
#define PCPD_MAPPING_PATH(mp) pcpd_mapping_path((mp), (char[PCPD_MAPPING_PATH_MAX]){0})
