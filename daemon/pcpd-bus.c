/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The D-Bus face of the manager and its mappings: argument checks, caller identity,
 * authorisation (polkit, asynchronous: nothing changes before its answer), replies and
 * signals. Behaviour lives in pcpd-manager.c.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "pcpd-addr.h"
#include "pcpd-bus-track.h"
#include "pcpd-bus.h"
#include "pcpd-caller-cache.h"
#include "pcpd-caller.h"
#include "pcpd-declared-manager.h"
#include "pcpd-manager.h"
#include "pcpd-mapping-bus.h"
#include "pcpd-backend.h"
#include "pcpd-netlink.h"
#include "pcpd-nm.h"
#include "pcpd-options.h"
#include "pcpd-polkit.h"
#include "pcpd-reload.h"

/* Calls waiting for the bus's answer about their caller are not limited here: the bus
 * answers those itself at once, and bounds how many a caller can have outstanding
 * (max_replies_per_connection, max_connections_per_user). Only calls waiting for polkit
 * are, per user and in all (pcpd-polkit.h). The bus is asked once per connection
 * (pcpd-caller-cache.h): later calls of the same one go on at once. */

typedef enum call_kind {
        CALL_ADD,
        CALL_REMOVE,
        CALL_REVOKE,
        CALL_SET_ENABLED,
        CALL_DECLARE,   /* DeclareMapping: p->declared */
        CALL_UNDECLARE, /* RemoveDeclaredMapping: p->target_path is the name */
        CALL_RELOAD,
} call_kind;

/* The bus face's own state: the userdata of pcpd_bus_listener (face_of()). */
struct pcpd_bus_face {
        pcpd_polkit *polkit; /* NULL when not registered */
        pcpd_caller_cache *callers; /* who each connection is; NULL when not registered */
        GHashTable *calls;   /* pending_call*: every call being identified or authorised */
        sd_bus *bus;            /* the signals go there; NULL when not registered */
        pcpd_bus_track *track;  /* holders that leave the bus; NULL when not registered */
        /* MappingCount changed and not told yet (on_manager_changed()) */
        bool count_changed;
        GSource *turn_end; /* NULL when not registered */
};

static void face_flush(pcpd_manager *m, pcpd_bus_face *face);

static pcpd_bus_face *face_of(pcpd_manager *m) {
        /* the manager was given this file's listener (main.c), whose userdata is the face */
        g_assert(m->listener == &pcpd_bus_listener && m->listener_data != NULL);
        return m->listener_data;
}

/* One method call waiting for the caller's credentials and then polkit. */
typedef struct pending_call {
        pcpd_manager *manager;
        sd_bus_message *msg;
        call_kind kind;
        pcpd_mapping_request req;
        char *description, *interface, *app_id;
        bool need_privileged;
        bool options_privileged; /* an option needs map-privileged whoever owns the port */
        char *target_path; /* RemoveMapping */
        bool enabled;      /* SetEnabled */
        pcpd_declared *declared; /* DeclareMapping */
        uint64_t received; /* CLOCK_BOOTTIME in clock ticks when the call came */
        pcpd_caller_wait *wait; /* while the bus is asked who the caller is */
        pcpd_caller *caller;    /* then who it is (a reference); NULL for a holder's Release */
        uid_t uid;
        pid_t pid;
        const char *app_id_detected; /* CALL_ADD: the caller's (pcpd_caller_app()), or NULL */
        const char *app_id_source;
        /* AddMappingForSocket: the caller's socket (owned by msg) and what it is */
        bool have_socket;
        int sock_fd;
        pcpd_socket_info sock;
        /* ownership: proven by a socket of the caller (then `map` is enough); why not */
        bool port_owned;
        char *not_owned;
        bool relied_on_proof; /* authorised as `map` thanks to it: checked again before acting */
} pending_call;

static pending_call *pending_free(pending_call *p) {
        if (p == NULL)
                return NULL;
        g_hash_table_remove(face_of(p->manager)->calls, p);
        pcpd_caller_wait_cancel(p->wait);
        pcpd_caller_unref(p->caller);
        sd_bus_message_unref(p->msg);
        g_free(p->description);
        g_free(p->interface);
        g_free(p->app_id);
        g_free(p->target_path);
        g_free(p->not_owned);
        pcpd_declared_free(p->declared);
        g_free(p);
        return NULL;
}

/* What the call changed is told before its answer: a MappingCount change waiting for the
 * end of the turn goes out now (face_flush()), so a client that reads its cached
 * properties on the reply, or uses a call as a barrier, has seen every signal of it. */
static void reply_flush(pending_call *p) {
        face_flush(p->manager, face_of(p->manager));
}

static void reply_error(pending_call *p, const sd_bus_error *e) {
        reply_flush(p);
        sd_bus_reply_method_error(p->msg, e);
}

/* ---- the core's refusals (pcpd-error.h) as the contract's error names ---- */

static const char *const error_names[_PCPD_ERROR_MAX] = {
        [PCPD_ERROR_INVALID_ARGS] = SD_BUS_ERROR_INVALID_ARGS,
        [PCPD_ERROR_DISABLED] = PCP1_ERROR_DISABLED,
        [PCPD_ERROR_CONFLICT] = PCP1_ERROR_CONFLICT,
        [PCPD_ERROR_QUOTA_EXCEEDED] = PCP1_ERROR_QUOTA_EXCEEDED,
        [PCPD_ERROR_NO_SERVER] = PCP1_ERROR_NO_SERVER,
        [PCPD_ERROR_UNSUPPORTED] = PCP1_ERROR_UNSUPPORTED,
        [PCPD_ERROR_NOT_FOUND] = PCP1_ERROR_NOT_FOUND,
        [PCPD_ERROR_CANNOT_SAVE_STATE] = PCP1_ERROR_CANNOT_SAVE_STATE,
        [PCPD_ERROR_STOPPING] = PCP1_ERROR_STOPPING,
        [PCPD_ERROR_INVALID_CONFIGURATION] = PCP1_ERROR_INVALID_CONFIGURATION,
};

const char *pcpd_bus_error_name(pcpd_error error) {
        return error > PCPD_ERROR_NONE && error < _PCPD_ERROR_MAX ? error_names[error] : NULL;
}

/* f (a failure of the core) into ret; r, its return value, says what went wrong when f
 * was not filled in */
static void failure_to_bus_error(const pcpd_failure *f, int r, sd_bus_error *ret) {
        const char *name = pcpd_bus_error_name(f->error);

        if (name == NULL || f->message == NULL)
                sd_bus_error_set_errno(ret, r);
        else
                sd_bus_error_set(ret, name, f->message);
}

/* ---- argument parsing ---- */

static int parse_protocol(const char *s, uint8_t *ret, sd_bus_error *error) {
        int v = pcp_protocol_from_string(s);

        if (strlen(s) > PCP_PROTOCOL_STRING_MAX)
                /* not echoed: the answer would be as large as the call */
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid protocol (%zu octets; a protocol is at most %d): use tcp, udp, "
                                         "sctp, dccp or an IANA protocol number 1-255.",
                                         strlen(s), PCP_PROTOCOL_STRING_MAX);
        if (v < 0 || v == 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid protocol '%s': use tcp, udp, sctp, dccp or an IANA protocol "
                                         "number 1-255.",
                                         s);
        *ret = (uint8_t) v;
        return 0;
}

static bool utf8_ok(const char *s, size_t max) {
        return g_utf8_validate(s, -1, NULL) && strlen(s) <= max;
}

/* The options (pcpd-options.c) into p's request. */
static int parse_options(sd_bus_message *msg, pending_call *p, sd_bus_error *error) {
        pcpd_mapping_request *r = &p->req;
        pcpd_options o = {
                .for_socket = p->have_socket,
                .peer = r->opcode == PCP_OPCODE_PEER,
                .suggested_port = r->suggested_port,
        };
        int k = pcpd_options_parse(msg, &o, error);

        if (k < 0) {
                pcpd_options_clear(&o);
                return k;
        }
        r->lifetime = o.lifetime;
        r->family = o.family;
        r->suggested_port = o.suggested_port;
        r->has_external_address = o.has_external_address;
        r->external_address = o.external_address;
        r->prefer_failure = o.prefer_failure;
        G_STATIC_ASSERT(G_N_ELEMENTS(o.filters) <= G_N_ELEMENTS(r->filters));
        r->n_filters = o.n_filters;
        memcpy(r->filters, o.filters, sizeof(o.filters[0]) * o.n_filters);
        r->has_third_party = o.has_third_party;
        r->third_party = o.third_party;
        r->persistent = o.persistent;
        if (o.need_privileged)
                p->need_privileged = p->options_privileged = true;
        g_free(p->description);
        p->description = g_steal_pointer(&o.description);
        g_free(p->interface);
        p->interface = g_steal_pointer(&o.interface);
        g_free(p->app_id);
        p->app_id = g_steal_pointer(&o.app_id);
        return 0;
}

/* ---- ownership of the port ---- */

static const char *addr_text(const struct in6_addr *a, char buf[static PCP_ADDR_STRLEN]) {
        return pcp_addr_to_string(a, buf);
}

/* "10.0.0.2" or "10.0.0.2 or 10.0.0.3" */
static char *addresses_text(const struct in6_addr *a, size_t n) {
        GString *s = g_string_new(NULL);
        char buf[PCP_ADDR_STRLEN];

        for (size_t i = 0; i < n; i++)
                g_string_append_printf(s, "%s%s", i == 0 ? "" : " or ", addr_text(&a[i], buf));
        return g_string_free(s, FALSE);
}

/* Does the caller own the port the mapping of p->req would forward to? A socket of the
 * caller (the passed one, or one sock_diag finds with the caller's uid) bound to the
 * mapping's internal address or to the wildcard address, in pcpd's network namespace
 * (sock_diag sees no other; a passed socket was checked when the call came); TCP
 * listening for MAP. On false, *ret_why says why, for the caller. *ret_family: the
 * family the proof holds for. */
static bool ownership_proven(pending_call *p, int *ret_family, char **ret_why) {
        struct in6_addr internal[PCPD_SERVER_MAX_ADDRS];
        g_autofree char *where = NULL;
        const char *proto = pcp_protocol_to_string(p->req.protocol) ?: "this protocol";
        bool must_listen = p->req.opcode == PCP_OPCODE_MAP;
        pcpd_port_owners owners = { 0 };
        size_t n;
        int family, r;

        *ret_why = NULL;
        n = pcpd_manager_internal_addresses(p->manager, &p->req, &family, internal, G_N_ELEMENTS(internal));
        *ret_family = family;
        where = n > 0 ? addresses_text(internal, n) : g_strdup("this host's address toward the router");

        if (p->have_socket) {
                const pcpd_socket_info *si = &p->sock;
                char buf[PCP_ADDR_STRLEN];
                pcpd_bind_match match;

                if (must_listen && si->type != SOCK_DGRAM && !si->listening) {
                        *ret_why = g_strdup_printf("The socket is not listening: call listen() on it before asking "
                                                   "for a mapping of %s port %u.",
                                                   proto, p->req.internal_port);
                        return false;
                }
                match = pcpd_bind_matches(si->family, &si->bound, si->v6only, family, internal, n);
                if (match == PCPD_BIND_NONE) {
                        *ret_why = g_strdup_printf(
                                "The socket is bound to %s%s, but the mapping would forward %s port %u to %s: bind it "
                                "to that address or to the wildcard address (0.0.0.0 or ::).",
                                addr_text(&si->bound, buf),
                                si->family == AF_INET6 && si->v6only && family == AF_INET ? " (IPv6 only)" : "",
                                proto, p->req.internal_port, where);
                        return false;
                }
                if (match == PCPD_BIND_EXACT || (p->req.protocol != IPPROTO_TCP && p->req.protocol != IPPROTO_UDP))
                        return true;
                /* the wildcard address: unless another user's socket is bound to the
                 * internal address itself, which would get the traffic */
        }
        if (p->req.protocol != IPPROTO_TCP && p->req.protocol != IPPROTO_UDP) {
                *ret_why = g_strdup_printf("pcpd cannot see who owns %s ports: only the socket itself, handed to "
                                           "pcpd by the program bound to the port, proves it.",
                                           proto);
                return false;
        }
        r = pcpd_sock_diag_port_owners(&(pcpd_port_query) { .protocol = p->req.protocol,
                                                            .port = p->req.internal_port,
                                                            .uid = p->uid,
                                                            .listening = must_listen,
                                                            .family = family,
                                                            .internal = internal,
                                                            .n_internal = n },
                                       &owners);
        if (r < 0) {
                g_warning("Cannot check socket ownership (sock_diag): %s", g_strerror(-r));
                *ret_why = g_strdup_printf("pcpd could not check who owns %s port %u (%s).", proto,
                                           p->req.internal_port, g_strerror(-r));
                return false;
        }
        if (p->have_socket)
                owners.caller_wildcard = true; /* the passed socket, whoever created it */
        if (pcpd_port_owners_prove(&owners))
                return true;
        if (owners.caller_wildcard && owners.other_exact)
                *ret_why = g_strdup_printf("Another user's socket is bound to %s %s port %u and gets what the mapping "
                                           "would forward; your socket on the wildcard address does not.",
                                           where, proto, p->req.internal_port);
        else
                *ret_why = g_strdup_printf("None of your sockets is %s %s port %u on %s or the wildcard address: "
                                           "only the program that listens on a port may map it without an administrator.",
                                           must_listen && p->req.protocol == IPPROTO_TCP ? "listening on"
                                                                                          : "bound to",
                                           proto, p->req.internal_port, where);
        return false;
}

/* ---- authorisation ---- */

static void pending_act(pending_call *p);

/* pcpd_manager_free() has begun: what would add mappings or change the configuration is
 * refused, when the call arrives and again where it resumes (the caller's identity or
 * polkit's answer came while the manager stops). Release, RemoveMapping and RevokeApp are
 * not: they only remove mappings (RevokeApp is RemoveMapping of each of one app's), and the
 * stop runs the loop before its last snapshot, which keeps a removed mapping's unconfirmed
 * UPnP delete for the next start (tests/upnp: upnp-pcpd-shutdown-release,
 * upnp-pcpd-revoke-while-stopping). One still waiting for polkit when the stop ends gets
 * PCPD_POLKIT_SHUTDOWN from face_end_calls(), before the manager goes, and is freed
 * unanswered as any other (on_polkit_done()). */
static bool refused_stopping(const pending_call *p, sd_bus_error *error) {
        if (p->kind == CALL_REMOVE || p->kind == CALL_REVOKE || !pcpd_manager_is_stopping(p->manager))
                return false;
        sd_bus_error_set(error, PCP1_ERROR_STOPPING, "pcpd is stopping; nothing was changed. Try again once it runs.");
        return true;
}

/* refused_stopping() for a call that is waiting: replied to and freed */
static bool pending_refused_stopping(pending_call *p) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;

        if (!refused_stopping(p, &err))
                return false;
        reply_error(p, &err);
        pending_free(p);
        return true;
}

static void on_polkit_done(pcpd_polkit_result result, const char *detail, void *userdata) {
        pending_call *p = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;

        switch (result) {
        case PCPD_POLKIT_ALLOWED:
                pending_act(p);
                return;
        case PCPD_POLKIT_VANISHED:
        case PCPD_POLKIT_SHUTDOWN:
                /* nobody to answer (the bus tells callers of a pcpd that stops) */
                pending_free(p);
                return;
        case PCPD_POLKIT_FAILED:
                sd_bus_error_setf(&err, PCP1_ERROR_NOT_AUTHORIZED, "Could not check authorisation with polkit: %s",
                                  detail ?: "unknown error");
                break;
        case PCPD_POLKIT_TIMED_OUT:
                sd_bus_error_setf(&err, PCP1_ERROR_NOT_AUTHORIZED,
                                  "polkit gave no answer within %u seconds; the request was cancelled.",
                                  sd_bus_message_get_allow_interactive_authorization(p->msg) > 0
                                          ? PCPD_POLKIT_INTERACTIVE_TIMEOUT_S
                                          : PCPD_POLKIT_TIMEOUT_S);
                break;
        case PCPD_POLKIT_DENIED:
        case PCPD_POLKIT_CHALLENGE:
        default:
                /* "bind the port first" only where that would have been enough: not with
                 * an option that needs an administrator anyway */
                if (p->kind == CALL_ADD && !p->port_owned && !p->options_privileged &&
                    p->req.internal_port >= 1024 && p->not_owned != NULL)
                        sd_bus_error_set(&err, PCP1_ERROR_PORT_NOT_OWNED, p->not_owned);
                else if (result != PCPD_POLKIT_CHALLENGE && p->options_privileged)
                        sd_bus_error_set(&err, PCP1_ERROR_NOT_AUTHORIZED,
                                         "The options persistent, external-address and third-party need an "
                                         "administrator (org.freedesktop.PCP1.map-privileged); polkit said no.");
                else if (result != PCPD_POLKIT_CHALLENGE)
                        sd_bus_error_set(&err, PCP1_ERROR_NOT_AUTHORIZED,
                                         "You are not allowed to do this (polkit said no).");
                /* a call that allowed interactive authorisation was already let ask: polkit
                 * had no authentication agent for the caller's session */
                else if (sd_bus_message_get_allow_interactive_authorization(p->msg) > 0)
                        sd_bus_error_set(
                                &err, PCP1_ERROR_NOT_AUTHORIZED,
                                "Authentication is required, and no authentication agent could ask for "
                                "it: run this as root, or from a session with a polkit authentication "
                                "agent.");
                else
                        sd_bus_error_set(&err, PCP1_ERROR_NOT_AUTHORIZED,
                                         "Authentication is required; call again allowing interactive "
                                         "authorisation.");
                break;
        }
        reply_error(p, &err);
        pending_free(p);
}

static void pending_authorise(pending_call *p) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        const char *action;
        int r;

        if (pending_refused_stopping(p))
                return;
        switch (p->kind) {
        case CALL_ADD:
                /* proof of ownership: one of the caller's own sockets is bound to the port;
                 * root needs none */
                if (p->uid != 0 && p->req.protocol != 0) {
                        int family;
                        p->port_owned = ownership_proven(p, &family, &p->not_owned);
                }
                if (p->req.internal_port < 1024 || p->req.protocol == 0 || !p->port_owned)
                        p->need_privileged = true;
                p->relied_on_proof = !p->need_privileged && p->uid != 0;
                action = p->need_privileged ? PCP1_ACTION_MAP_PRIVILEGED : PCP1_ACTION_MAP;
                break;
        case CALL_REMOVE: {
                pcpd_mapping *mp = pcpd_manager_find_path(p->manager, p->target_path);
                if (mp != NULL && mp->uid == p->uid) {
                        pending_act(p);
                        return;
                }
                action = PCP1_ACTION_REVOKE;
                break;
        }
        case CALL_REVOKE:
                action = PCP1_ACTION_REVOKE;
                break;
        case CALL_SET_ENABLED:
        default:
                action = PCP1_ACTION_CONFIGURE;
                break;
        }
        if (p->uid == 0) {
                pending_act(p);
                return;
        }
        r = pcpd_polkit_check(face_of(p->manager)->polkit, sd_bus_message_get_sender(p->msg), p->uid, action,
                              sd_bus_message_get_allow_interactive_authorization(p->msg) > 0, on_polkit_done, p,
                              &err);
        if (r < 0) {
                reply_error(p, &err);
                pending_free(p);
        }
}

/* Who the caller is is known: on to authorisation. */
static void pending_identified(pending_call *p, pcpd_caller *c) {
        p->caller = pcpd_caller_ref(c);
        p->uid = c->uid;
        p->pid = c->pid;
        /* only a new mapping keeps the app it is for */
        if (p->kind == CALL_ADD)
                pcpd_caller_app(c, p->received, &p->app_id_detected, &p->app_id_source);
        pending_authorise(p);
}

static void on_caller(pcpd_caller *c, const sd_bus_error *error, void *userdata) {
        pending_call *p = userdata;

        p->wait = NULL; /* over with this call */
        if (c == NULL) {
                reply_error(p, error);
                pending_free(p);
                return;
        }
        pending_identified(p, c);
}

/* Takes over msg: finds out who the caller is (the bus is asked once per connection),
 * then asks polkit when needed, then acts and replies. */
static int pending_start(pending_call *p, sd_bus_error *error) {
        pcpd_bus_face *face = face_of(p->manager);
        const char *sender = sd_bus_message_get_sender(p->msg);
        pcpd_caller *c;
        int r;

        if (refused_stopping(p, error)) {
                pending_free(p);
                return -EBUSY;
        }
        if (p->kind == CALL_REMOVE) {
                /* A holder releasing its own hold needs no name: a connection holds only
                 * mappings of its own user (pcpd_manager_add_mapping() lets only the uid a
                 * mapping belongs to share it), which is all Release would ask its
                 * credentials for (pending_authorise(), pending_act()). */
                pcpd_mapping *mp = pcpd_manager_find_path(p->manager, p->target_path);
                if (mp != NULL && sender != NULL && mp->holders != NULL &&
                    g_hash_table_contains(mp->holders, sender)) {
                        p->uid = mp->uid;
                        pending_act(p);
                        return 1;
                }
        }
        c = sender != NULL ? pcpd_caller_cache_get(face->callers, sender) : NULL;
        if (c != NULL) {
                pending_identified(p, c);
                return 1;
        }
        r = sender != NULL ? pcpd_caller_cache_query(face->callers, sender, on_caller, p, &p->wait) : -ENXIO;
        if (r < 0) {
                pending_free(p);
                return r;
        }
        return 1;
}

static pending_call *pending_new(pcpd_manager *m, sd_bus_message *msg, call_kind kind) {
        pending_call *p = g_new0(pending_call, 1);
        p->manager = m;
        p->msg = sd_bus_message_ref(msg);
        p->kind = kind;
        p->received = pcpd_boottime_ticks();
        p->sock_fd = -1;
        g_hash_table_add(face_of(m)->calls, p);
        return p;
}

/* ---- acting (after authorisation) ---- */

static void pending_act(pending_call *p) {
        pcpd_manager *m = p->manager;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        g_auto(pcpd_failure) failure = PCPD_FAILURE_NULL;
        pcpd_mapping *mp;
        int r;

        if (pending_refused_stopping(p))
                return;
        switch (p->kind) {
        case CALL_ADD:
                /* polkit may have taken a while: what proved the port then must still prove
                 * it, for the address the mapping gets now */
                if (p->relied_on_proof) {
                        g_autofree char *why = NULL;
                        int family;
                        if (p->have_socket && pcpd_socket_describe(p->sock_fd, &p->sock) < 0) {
                                sd_bus_error_set(&err, PCP1_ERROR_PORT_NOT_OWNED,
                                                 "The socket can no longer be inspected.");
                                break;
                        }
                        if (!ownership_proven(p, &family, &why)) {
                                sd_bus_error_set(&err, PCP1_ERROR_PORT_NOT_OWNED, why);
                                break;
                        }
                        p->req.family = family;
                }
                /* the per-user quota is checked by the manager: sharing a held mapping is no new one */
                p->req.uid = p->uid;
                p->req.pid = p->pid;
                p->req.description = p->description;
                p->req.interface = p->interface;
                p->req.owner = sd_bus_message_get_sender(p->msg);
                /* still in the caller cache: the bus answered who it is (after the manager
                 * began to watch for names that leave) and has not said it left since; the
                 * manager then needs no GetNameOwner to learn it is still there */
                p->req.owner_known_alive = p->req.owner != NULL && face_of(m)->callers != NULL &&
                                           pcpd_caller_cache_get(face_of(m)->callers, p->req.owner) != NULL;
                if (p->app_id_detected != NULL) {
                        p->req.app_id = p->app_id_detected;
                        p->req.app_id_source = p->app_id_source;
                } else if (p->app_id != NULL) {
                        p->req.app_id = p->app_id;
                        p->req.app_id_source = "declared";
                } else {
                        p->req.app_id = "";
                        p->req.app_id_source = "none";
                }
                r = pcpd_manager_add_mapping(m, &p->req, &mp, &failure);
                if (r < 0) {
                        failure_to_bus_error(&failure, r, &err);
                        break;
                }
                reply_flush(p);
                sd_bus_reply_method_return(p->msg, "o", PCPD_MAPPING_PATH(mp));
                pending_free(p);
                return;

        case CALL_REMOVE:
                mp = pcpd_manager_find_path(m, p->target_path);
                if (mp == NULL) {
                        sd_bus_error_setf(&err, PCP1_ERROR_NOT_FOUND, "Mapping %s does not exist (any more).",
                                          p->target_path);
                        break;
                }
                r = pcpd_manager_release_refused(m, mp, mp->uid == p->uid ? sd_bus_message_get_sender(p->msg) : NULL,
                                                 &failure);
                if (r < 0) {
                        failure_to_bus_error(&failure, r, &err);
                        break;
                }
                pcpd_manager_release(m, mp, mp->uid == p->uid ? sd_bus_message_get_sender(p->msg) : NULL,
                                     mp->uid == p->uid ? PCPD_REMOVED_RELEASED : PCPD_REMOVED_REVOKED);
                reply_flush(p);
                sd_bus_reply_method_return(p->msg, NULL);
                pending_free(p);
                return;

        case CALL_REVOKE: {
                g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);
                unsigned n = 0;
                for (guint i = 0; i < all->len; i++) {
                        mp = all->pdata[i];
                        if (g_strcmp0(mp->app_id, p->app_id) == 0) {
                                pcpd_manager_remove_mapping(m, mp, PCPD_REMOVED_REVOKED);
                                n++;
                        }
                }
                if (n == 0) {
                        sd_bus_error_setf(&err, PCP1_ERROR_NOT_FOUND, "No mapping belongs to app '%s'.",
                                          p->app_id);
                        break;
                }
                reply_flush(p);
                sd_bus_reply_method_return(p->msg, NULL);
                pending_free(p);
                return;
        }

        case CALL_SET_ENABLED:
                /* who switched it (the manager's line that follows says what it did) */
                if (m->enabled != p->enabled)
                        g_message("Port mapping switched %s by %s (uid %u)", p->enabled ? "on" : "off",
                                  sd_bus_message_get_sender(p->msg) ?: "?", (unsigned) p->uid);
                pcpd_manager_set_enabled(m, p->enabled);
                reply_flush(p);
                sd_bus_reply_method_return(p->msg, NULL);
                pending_free(p);
                return;

        case CALL_DECLARE: {
                g_autofree char *path = NULL;
                r = pcpd_manager_declare(m, p->declared, &path, &failure);
                if (r < 0) {
                        failure_to_bus_error(&failure, r, &err);
                        break;
                }
                reply_flush(p);
                sd_bus_reply_method_return(p->msg, "o", path);
                pending_free(p);
                return;
        }

        case CALL_UNDECLARE:
                r = pcpd_manager_undeclare(m, p->target_path, &failure);
                if (r < 0) {
                        failure_to_bus_error(&failure, r, &err);
                        break;
                }
                reply_flush(p);
                sd_bus_reply_method_return(p->msg, NULL);
                pending_free(p);
                return;

        case CALL_RELOAD:
                /* an invalid file (InvalidConfiguration), or pcpd stopping (Stopping: not
                 * reached from here today, pending_refused_stopping() came first, but the
                 * refusal is pcpd_reload()'s own and named as such) */
                r = pcpd_reload(m, &failure);
                if (r < 0) {
                        failure_to_bus_error(&failure, r, &err);
                        break;
                }
                reply_flush(p);
                sd_bus_reply_method_return(p->msg, NULL);
                pending_free(p);
                return;
        }
        reply_error(p, &err);
        pending_free(p);
}

/* ---- Manager methods ---- */

/* The checks AddMapping and AddPeer share. */
static int check_port(uint16_t port, const char *what, sd_bus_error *error) {
        if (port == 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid %s port 0: use 1-65535.", what);
        return 0;
}

static int check_protocol_and_port(pending_call *p, const char *protocol, sd_bus_error *error) {
        int r = parse_protocol(protocol, &p->req.protocol, error);

        if (r < 0)
                return r;
        return check_port(p->req.internal_port, "internal", error);
}

static int addr_family(const struct in6_addr *a) {
        return pcp_addr_is_ipv4(a) ? AF_INET : AF_INET6;
}

static const char *family_text(int family) {
        return family == AF_INET6 ? "IPv6" : "IPv4";
}

/* A mapping is of one family: the addresses a request names (a PEER's remote address, the
 * third party, the filters' prefixes) are of the family option's, or, without it, of the
 * remote address's (AddPeer), else the third party's. A request that contradicts itself
 * could never succeed (the server answers MALFORMED_REQUEST, retried for as long as it is
 * held): InvalidArgs, naming the address and where the family came from. Filters alone
 * set no family (a list of both families without a family option is taken, as before). */
static int check_families(const pcpd_mapping_request *q, sd_bus_error *error) {
        char buf[PCP_ADDR_STRLEN], pbuf[PCPD_PREFIX_STRLEN];
        int family = q->family;
        const char *from = "the family option says";

        if (q->opcode == PCP_OPCODE_PEER) {
                int f = addr_family(&q->remote_address);
                if (family != 0 && f != family)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "The remote address %s is an %s address, but the family option "
                                                 "says %s: a mapping is of one family (leave the family out, or "
                                                 "give an %s remote address).",
                                                 pcp_addr_to_string(&q->remote_address, buf), family_text(f),
                                                 family == AF_INET6 ? "ipv6" : "ipv4", family_text(family));
                if (family == 0)
                        from = "the remote address is";
                family = f;
        }
        if (q->has_third_party) {
                int f = addr_family(&q->third_party);
                if (family != 0 && f != family)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "The third-party address %s is an %s address, but %s %s: a "
                                                 "mapping is of one family.",
                                                 pcp_addr_to_string(&q->third_party, buf), family_text(f), from,
                                                 family_text(family));
                if (family == 0)
                        from = "the third-party address is";
                family = f;
        }
        for (size_t i = 0; i < q->n_filters; i++) {
                const pcp_filter *flt = &q->filters[i];
                int f = addr_family(&flt->remote_addr);

                if (family != 0 && f != family)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "The filter %s is of %s peers, but %s %s: a mapping is of one "
                                                 "family, and so are the peers it lets in.",
                                                 pcpd_prefix_to_string(&flt->remote_addr, flt->prefix_len, pbuf),
                                                 family_text(f), from, family_text(family));
        }
        return 0;
}

/* The end of every Add method: the options, then identity and authorisation. r is the
 * result of the method's own argument checks; p is freed on every error. */
static int add_start(sd_bus_message *msg, pending_call *p, int r, sd_bus_error *error) {
        if (r >= 0)
                r = parse_options(msg, p, error);
        if (r >= 0)
                r = check_families(&p->req, error);
        if (r >= 0 && p->req.opcode == PCP_OPCODE_PEER && p->req.family == 0)
                p->req.family = pcp_addr_is_ipv4(&p->req.remote_address) ? AF_INET : AF_INET6;
        if (r < 0) {
                pending_free(p);
                return r;
        }
        return pending_start(p, error);
}

static int method_add_mapping(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pending_call *p = pending_new(userdata, msg, CALL_ADD);
        const char *proto;
        int r;

        p->req.opcode = PCP_OPCODE_MAP;
        r = sd_bus_message_read(msg, "sqq", &proto, &p->req.internal_port, &p->req.suggested_port);
        if (r >= 0)
                r = check_protocol_and_port(p, proto, error);
        return add_start(msg, p, r, error);
}

static int method_add_peer(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pending_call *p = pending_new(userdata, msg, CALL_ADD);
        const char *proto, *remote;
        int r;

        p->req.opcode = PCP_OPCODE_PEER;
        r = sd_bus_message_read(msg, "sqsq", &proto, &p->req.internal_port, &remote, &p->req.remote_port);
        if (r >= 0)
                r = check_protocol_and_port(p, proto, error);
        if (r >= 0 && (!pcp_addr_from_string(remote, &p->req.remote_address) ||
                       pcp_addr_is_unspecified(&p->req.remote_address)))
                r = sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid remote address '%s'.", remote);
        if (r >= 0)
                r = check_port(p->req.remote_port, "remote", error);
        return add_start(msg, p, r, error);
}

static int method_add_mapping_for_socket(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        pending_call *p = pending_new(m, msg, CALL_ADD);
        pcpd_socket_info *si = &p->sock;
        int fd, r;

        p->req.opcode = PCP_OPCODE_MAP;
        r = sd_bus_message_read(msg, "h", &fd);
        if (r >= 0) {
                int k = pcpd_socket_describe(fd, si);
                if (k == -EAFNOSUPPORT)
                        r = sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                             "The socket is not an IPv4 or IPv6 socket.");
                else if (k < 0)
                        r = sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "The file descriptor is not a socket.");
        }
        if (r >= 0) {
                if (si->port == 0)
                        r = sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "The socket is not bound to a port.");
                else if (si->protocol != IPPROTO_TCP && si->protocol != IPPROTO_UDP && si->protocol != IPPROTO_SCTP &&
                         si->protocol != IPPROTO_DCCP)
                        r = sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                             "The socket is not TCP, UDP, SCTP or DCCP.");
        }
        if (r >= 0) {
                /* a socket of another network namespace (one an unprivileged user can make
                 * with a user namespace) proves nothing about this host's ports, whoever
                 * asks: refused before anything else */
                int k = pcpd_socket_in_own_netns(fd);
                if (k < 0)
                        r = sd_bus_error_setf(error, PCP1_ERROR_PORT_NOT_OWNED,
                                              "Cannot tell which network namespace the socket is in (%s); it is not "
                                              "taken as proof.",
                                              g_strerror(-k));
                else if (k == 0)
                        r = sd_bus_error_set(error, PCP1_ERROR_PORT_NOT_OWNED,
                                             "The socket is in another network namespace than pcpd: it proves nothing "
                                             "about this host's ports. Create it in the host's network namespace, or "
                                             "use AddMapping().");
        }
        if (r >= 0) {
                p->req.internal_port = si->port;
                p->req.protocol = (uint8_t) si->protocol;
                p->have_socket = true;
                p->sock_fd = fd; /* owned by msg, which p holds */
        }
        if (r >= 0)
                r = parse_options(msg, p, error);
        /* the family the socket receives, unless the caller chose one: IPv4 for an IPv4
         * socket or one bound to an IPv4-mapped address, IPv6 for a v6-only or specific one */
        if (r >= 0 && p->req.family == 0) {
                if (si->family == AF_INET || pcp_addr_is_ipv4(&si->bound))
                        p->req.family = AF_INET;
                else if (si->v6only || !pcp_addr_is_unspecified(&si->bound))
                        p->req.family = AF_INET6;
        }
        if (r < 0) {
                pending_free(p);
                return r;
        }
        return pending_start(p, error);
}

static int method_remove_mapping(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        const char *path;
        pending_call *p;
        int r;

        r = sd_bus_message_read(msg, "o", &path);
        if (r < 0)
                return r;
        if (pcpd_manager_find_path(m, path) == NULL)
                return sd_bus_error_setf(error, PCP1_ERROR_NOT_FOUND, "Mapping %s does not exist (any more).",
                                         path);
        p = pending_new(m, msg, CALL_REMOVE);
        p->target_path = g_strdup(path);
        return pending_start(p, error);
}

static int method_revoke_app(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        const char *app;
        pending_call *p;
        int r;

        r = sd_bus_message_read(msg, "s", &app);
        if (r < 0)
                return r;
        if (*app == '\0' || !utf8_ok(app, PCP1_MAX_APP_ID))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid app id: it must not be empty.");
        p = pending_new(m, msg, CALL_REVOKE);
        p->app_id = g_strdup(app);
        return pending_start(p, error);
}

static int method_set_enabled(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        pending_call *p;
        int b, r;

        r = sd_bus_message_read(msg, "b", &b);
        if (r < 0)
                return r;
        p = pending_new(m, msg, CALL_SET_ENABLED);
        p->enabled = b;
        return pending_start(p, error);
}

/* DeclareMapping: AddMapping's arguments and the options a declaration file has. */
static int method_declare_mapping(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pending_call *p = pending_new(userdata, msg, CALL_DECLARE);
        pcpd_mapping_request *q = &p->req;
        const char *name, *proto;
        int r;

        p->req.opcode = PCP_OPCODE_MAP;
        r = sd_bus_message_read(msg, "ssqq", &name, &proto, &q->internal_port, &q->suggested_port);
        if (r >= 0 && !pcpd_declared_name_valid(name))
                r = sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                      "Invalid name '%s': 1-%d of A-Z a-z 0-9 _ . -, not starting with a dot.", name,
                                      PCPD_DECLARED_NAME_MAX);
        if (r >= 0)
                r = check_protocol_and_port(p, proto, error);
        if (r >= 0)
                r = parse_options(msg, p, error);
        if (r >= 0 && (p->interface != NULL || p->app_id != NULL || q->has_external_address || q->prefer_failure ||
                       q->n_filters > 0 || q->persistent))
                r = sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                     "A declared mapping takes only the options lifetime, description, third-party "
                                     "and family (it is persistent by nature).");
        if (r >= 0 && q->lifetime != 0 && (q->lifetime < 120 || q->lifetime > 86400 * 7))
                r = sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                      "Invalid lifetime %u for a declared mapping: 120-604800 seconds.", q->lifetime);
        if (r >= 0)
                r = check_families(q, error);
        if (r < 0) {
                pending_free(p);
                return r;
        }
        p->declared = g_new0(pcpd_declared, 1);
        p->declared->name = g_strdup(name);
        p->declared->path = g_strdup("");
        p->declared->protocol = q->protocol;
        p->declared->port = q->internal_port;
        p->declared->external_port = q->suggested_port;
        p->declared->lifetime = q->lifetime;
        p->declared->description = g_strdup(p->description ?: "");
        p->declared->has_third_party = q->has_third_party;
        p->declared->third_party = q->third_party;
        p->declared->family = q->has_third_party ? (pcp_addr_is_ipv4(&q->third_party) ? AF_INET : AF_INET6)
                                                 : q->family;
        return pending_start(p, error);
}

static int method_remove_declared_mapping(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pending_call *p;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        if (!pcpd_declared_name_valid(name))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid name '%s'.", name);
        p = pending_new(userdata, msg, CALL_UNDECLARE);
        p->target_path = g_strdup(name);
        return pending_start(p, error);
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return pending_start(pending_new(userdata, msg, CALL_RELOAD), error);
}

static int method_get_external_address(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        g_autofree char *addr = NULL, *server = NULL;
        const char *family;
        int f, r;

        r = sd_bus_message_read(msg, "s", &family);
        if (r < 0)
                return r;
        if (strcmp(family, "ipv4") == 0 || *family == '\0')
                f = AF_INET;
        else if (strcmp(family, "ipv6") == 0)
                f = AF_INET6;
        else
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid family '%s': use ipv4 or ipv6.",
                                         family);
        if (!pcpd_manager_external_address(m, f, &addr, &server))
                return sd_bus_error_setf(error, PCP1_ERROR_NO_SERVER,
                                         "No %s server has told its external address yet.",
                                         f == AF_INET ? "IPv4" : "IPv6");
        return sd_bus_reply_method_return(msg, "ss", addr, server);
}

/* ---- Manager properties: one getter each, or read by sd-bus from the field ---- */

#define MANAGER_FIELD_IS(field, type)                                                             \
        G_STATIC_ASSERT(__builtin_types_compatible_p(__typeof__(((pcpd_manager *) NULL)->field), type))
MANAGER_FIELD_IS(enabled, bool);
MANAGER_FIELD_IS(config.default_lifetime, uint32_t);
MANAGER_FIELD_IS(config.max_mappings_per_user, uint32_t);
MANAGER_FIELD_IS(state_error, char *);

/* The getters with a field get its address (the vtable entry's offset), the others the
 * manager. */

static int get_version(sd_bus *bus, const char *path, const char *iface, const char *property, sd_bus_message *reply,
                       void *userdata, sd_bus_error *error) {
        return sd_bus_message_append_basic(reply, 's', PACKAGE_VERSION);
}

static int get_bool(sd_bus *bus, const char *path, const char *iface, const char *property, sd_bus_message *reply,
                    void *userdata, sd_bus_error *error) {
        int b = *(const bool *) userdata;

        return sd_bus_message_append_basic(reply, 'b', &b);
}

static int get_state(sd_bus *bus, const char *path, const char *iface, const char *property, sd_bus_message *reply,
                     void *userdata, sd_bus_error *error) {
        return sd_bus_message_append_basic(reply, 's', pcpd_manager_state(userdata));
}

static int get_mapping_count(sd_bus *bus, const char *path, const char *iface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        uint32_t n = pcpd_manager_n_mappings(m);

        return sd_bus_message_append_basic(reply, 'u', &n);
}

static int get_declared_mappings(sd_bus *bus, const char *path, const char *iface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        GPtrArray *set = pcpd_manager_get_declared(m);
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sso)");
        for (guint i = 0; r >= 0 && set != NULL && i < set->len; i++) {
                pcpd_declared *d = set->pdata[i];
                pcpd_mapping *mp = pcpd_manager_declared_mapping(m, d->name);
                r = sd_bus_message_append(reply, "(sso)", d->name, d->path, mp != NULL ? PCPD_MAPPING_PATH(mp) : "/");
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int get_servers(sd_bus *bus, const char *path, const char *iface, const char *property, sd_bus_message *reply,
                       void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ssssu)");
        for (guint i = 0; r >= 0 && i < m->servers->len; i++) {
                pcpd_server *s = m->servers->pdata[i];
                pcpd_server_view v;
                (void) pcpd_manager_server_view(m, s, &v); /* unknown: "none", 0 */
                r = sd_bus_message_append(reply, "(ssssu)", s->ifname, s->text, s->source,
                                          pcpd_server_view_protocol(&v), v.epoch);
        }
        if (m->upnp != NULL) {
                /* routers that speak UPnP-IGD (pcpd-backend.h), in use */
                pcpd_backend_server routers[PCPD_MAX_SERVERS];
                size_t n = m->upnp->ops->servers(m->upnp, routers, G_N_ELEMENTS(routers));
                for (size_t k = 0; r >= 0 && k < n; k++)
                        r = sd_bus_message_append(reply, "(ssssu)", routers[k].ifname, routers[k].address,
                                                  routers[k].source, routers[k].protocol, 0);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int get_dhcp_options(sd_bus *bus, const char *path, const char *iface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        pcpd_nm_option_state st[32];
        size_t n = pcpd_nm_option_states(m->nm, st, G_N_ELEMENTS(st));
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sss)");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, "(sss)", st[i].ifname, st[i].family == AF_INET ? "ipv4" : "ipv6",
                                          st[i].state);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int get_network_manager(sd_bus *bus, const char *path, const char *iface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;

        return sd_bus_message_append(reply, "s", pcpd_nm_status(m->nm));
}

static int get_external_addresses(sd_bus *bus, const char *path, const char *iface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        g_autoptr(GPtrArray) all = pcpd_manager_external_addresses(userdata);
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        for (guint i = 0; r >= 0 && i < all->len; i++)
                r = sd_bus_message_append_basic(reply, 's', all->pdata[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int get_prefix64(sd_bus *bus, const char *path, const char *iface, const char *property, sd_bus_message *reply,
                        void *userdata, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        for (guint i = 0; r >= 0 && i < m->servers->len; i++) {
                pcpd_server *s = m->servers->pdata[i];
                pcpd_server_view v;
                (void) pcpd_manager_server_view(m, s, &v); /* unknown: none */
                for (size_t j = 0; r >= 0 && j < v.n_prefix64 && j < G_N_ELEMENTS(v.prefix64); j++) {
                        char buf[PCP_ADDR_STRLEN];
                        g_autofree char *t = NULL;
                        inet_ntop(AF_INET6, &v.prefix64[j].prefix, buf, sizeof(buf));
                        t = g_strdup_printf("%s/%u", buf, v.prefix64[j].prefix_len);
                        r = sd_bus_message_append_basic(reply, 's', t);
                }
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

/* a getter given the manager; read by sd-bus from the field; a getter given the field */
#define MPROP(name, sig, getter, flags) SD_BUS_PROPERTY(name, sig, getter, 0, flags)
#define MFIELD(name, sig, field, flags) SD_BUS_PROPERTY(name, sig, NULL, offsetof(pcpd_manager, field), flags)
#define MGETTER(name, sig, getter, field, flags) SD_BUS_PROPERTY(name, sig, getter, offsetof(pcpd_manager, field), flags)
#define CHANGE SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("AddMapping",
                                SD_BUS_ARGS("s", protocol, "q", internal_port, "q", suggested_external_port,
                                            "a{sv}", options),
                                SD_BUS_RESULT("o", mapping), method_add_mapping, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddMappingForSocket", SD_BUS_ARGS("h", fd, "a{sv}", options),
                                SD_BUS_RESULT("o", mapping), method_add_mapping_for_socket,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddPeer",
                                SD_BUS_ARGS("s", protocol, "q", internal_port, "s", remote_address, "q",
                                            remote_port, "a{sv}", options),
                                SD_BUS_RESULT("o", mapping), method_add_peer, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveMapping", SD_BUS_ARGS("o", mapping), SD_BUS_NO_RESULT,
                                method_remove_mapping, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RevokeApp", SD_BUS_ARGS("s", app_id), SD_BUS_NO_RESULT, method_revoke_app,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetEnabled", SD_BUS_ARGS("b", enabled), SD_BUS_NO_RESULT, method_set_enabled,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeclareMapping",
                                SD_BUS_ARGS("s", name, "s", protocol, "q", internal_port, "q",
                                            suggested_external_port, "a{sv}", options),
                                SD_BUS_RESULT("o", mapping), method_declare_mapping, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveDeclaredMapping", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT,
                                method_remove_declared_mapping, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetExternalAddress", SD_BUS_ARGS("s", family),
                                SD_BUS_RESULT("s", address, "s", server), method_get_external_address,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("MappingRemoved", SD_BUS_ARGS("o", mapping, "s", reason), 0),
        MPROP("Version", "s", get_version, SD_BUS_VTABLE_PROPERTY_CONST),
        MGETTER("Enabled", "b", get_bool, enabled, CHANGE),
        MPROP("State", "s", get_state, CHANGE),
        MPROP("Servers", "a(ssssu)", get_servers, CHANGE),
        MPROP("ExternalAddresses", "as", get_external_addresses, CHANGE),
        MPROP("Prefix64", "as", get_prefix64, CHANGE),
        MFIELD("DefaultLifetime", "u", config.default_lifetime, CHANGE),
        MFIELD("MaxMappingsPerUser", "u", config.max_mappings_per_user, CHANGE),
        MPROP("MappingCount", "u", get_mapping_count, CHANGE),
        MFIELD("StateError", "s", state_error, CHANGE),
        MPROP("DhcpOptions", "a(sss)", get_dhcp_options, CHANGE), /* pcpd-nm.c */
        MPROP("NetworkManager", "s", get_network_manager, CHANGE), /* pcpd-nm.c */
        MPROP("DeclaredMappings", "a(sso)", get_declared_mappings, CHANGE),
        SD_BUS_VTABLE_END,
};

/* ---- Mapping.Release (pcpd-mapping-bus.c) ---- */

int pcpd_bus_release(sd_bus_message *msg, pcpd_mapping *mp, sd_bus_error *error) {
        pending_call *p = pending_new(mp->manager, msg, CALL_REMOVE);

        p->target_path = g_strdup(PCPD_MAPPING_PATH(mp));
        return pending_start(p, error);
}

/* ---- signals ---- */

/* what changed -> the properties PropertiesChanged lists, in this order */
static const struct {
        pcpd_manager_changed bit;
        const char *name;
} manager_properties[] = {
        { PCPD_MANAGER_CHANGED_SERVERS, "Servers" },
        { PCPD_MANAGER_CHANGED_EXTERNAL_ADDRESSES, "ExternalAddresses" },
        { PCPD_MANAGER_CHANGED_PREFIX64, "Prefix64" },
        { PCPD_MANAGER_CHANGED_STATE, "State" },
        { PCPD_MANAGER_CHANGED_STATE_ERROR, "StateError" },
        { PCPD_MANAGER_CHANGED_MAPPING_COUNT, "MappingCount" },
        { PCPD_MANAGER_CHANGED_ENABLED, "Enabled" },
        { PCPD_MANAGER_CHANGED_DECLARED_MAPPINGS, "DeclaredMappings" },
        { PCPD_MANAGER_CHANGED_DHCP_OPTIONS, "DhcpOptions" },
        { PCPD_MANAGER_CHANGED_NETWORK_MANAGER, "NetworkManager" },
        { PCPD_MANAGER_CHANGED_DEFAULT_LIFETIME, "DefaultLifetime" },
        { PCPD_MANAGER_CHANGED_MAX_MAPPINGS_PER_USER, "MaxMappingsPerUser" },
};

size_t pcpd_bus_manager_property_names(pcpd_manager_changed what, const char **ret, size_t max) {
        size_t n = 0;

        if (max == 0)
                return 0;
        for (size_t i = 0; i < G_N_ELEMENTS(manager_properties) && n + 1 < max; i++)
                if (what & manager_properties[i].bit)
                        ret[n++] = manager_properties[i].name;
        ret[n] = NULL;
        return n;
}

/* a mapping's news: pcpd-mapping-bus.c */
static void on_mapping_added(pcpd_manager *m, pcpd_mapping *mp, void *userdata) {
        pcpd_mapping_bus_added(face_of(m)->bus, mp);
}

static void on_mapping_changed(pcpd_manager *m, pcpd_mapping *mp, pcpd_mapping_changed what, void *userdata) {
        pcpd_mapping_bus_changed(face_of(m)->bus, mp, what);
}

static void on_mapping_removed(pcpd_manager *m, pcpd_mapping *mp, pcpd_remove_reason reason, void *userdata) {
        pcpd_mapping_bus_removed(face_of(m)->bus, mp, reason);
}

static void emit_manager_changed(pcpd_manager *m, sd_bus *bus, pcpd_manager_changed what) {
        const char *names[G_N_ELEMENTS(manager_properties) + 1];

        if (pcpd_bus_manager_property_names(what, names, G_N_ELEMENTS(names)) > 0)
                (void) pcpd_bus_emit_properties_changed(bus, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, manager_vtable, m,
                                                        names);
}

/* MappingCount changes with every add and removal: the changes one piece of work makes
 * (a holder that leaves with its mappings, RevokeApp, SetEnabled(false), a batch of the
 * server's answers) are one PropertiesChanged with the count at its end. It is sent before
 * pcpd answers any call (reply_flush()), handles the next message (on_incoming()) or
 * sleeps (turn_end_prepare()): the order of signals and replies a client sees is the one
 * it saw when every change was told at once, and a Get after the signal reads the same
 * count. The other properties are told at once. */
static void on_manager_changed(pcpd_manager *m, pcpd_manager_changed what, void *userdata) {
        pcpd_bus_face *face = face_of(m);

        if (face->bus == NULL)
                return;
        if ((what & PCPD_MANAGER_CHANGED_MAPPING_COUNT) && face->turn_end != NULL) {
                face->count_changed = true;
                what &= ~PCPD_MANAGER_CHANGED_MAPPING_COUNT;
        }
        if (what != 0)
                emit_manager_changed(m, face->bus, what);
}

static void face_flush(pcpd_manager *m, pcpd_bus_face *face) {
        if (!face->count_changed)
                return;
        face->count_changed = false;
        if (face->bus != NULL)
                emit_manager_changed(m, face->bus, PCPD_MANAGER_CHANGED_MAPPING_COUNT);
}

/* The end of a turn of the loop: a source whose prepare() runs before every poll, first of
 * all (the highest priority: GLib prepares sources in the order of their priority), and is
 * never ready itself. */
typedef struct turn_end_source {
        GSource source;
        pcpd_manager *manager;
} turn_end_source;

static gboolean turn_end_prepare(GSource *source, gint *timeout) {
        turn_end_source *t = (turn_end_source *) source;

        *timeout = -1;
        face_flush(t->manager, face_of(t->manager));
        return FALSE;
}

static gboolean turn_end_check(GSource *source) {
        return FALSE;
}

static gboolean turn_end_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
        return G_SOURCE_CONTINUE;
}

static GSourceFuncs turn_end_funcs = {
        .prepare = turn_end_prepare,
        .check = turn_end_check,
        .dispatch = turn_end_dispatch,
};

/* every incoming message, before it is handled: what earlier messages changed goes out
 * before any answer to this one */
static int on_incoming(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        face_flush(userdata, face_of(userdata));
        return 0;
}

static void face_stop_turn_end(pcpd_manager *m, pcpd_bus_face *face) {
        face_flush(m, face);
        if (face->turn_end != NULL) {
                g_source_destroy(face->turn_end);
                g_source_unref(face->turn_end);
                face->turn_end = NULL;
        }
}

/* the calls still being authorised go before the manager does */
static void on_manager_freeing(pcpd_manager *m, void *userdata) {
        pcpd_bus_unregister(m);
}

/* a holder nobody vouched for: the bus is asked whether it is still there */
static void on_holder_unconfirmed(pcpd_manager *m, const char *holder, void *userdata) {
        (void) pcpd_bus_track_check(face_of(m)->track, holder);
}

static void on_status_changed(pcpd_manager *m, const char *status, void *userdata) {
        (void) sd_notifyf(false, "STATUS=%s", status);
}

/* What pcpd has sent on the bus and dbus-daemon has not read yet: sd-bus's own queue holds
 * only what the socket did not take (then: more than can be told), the rest is in the
 * socket's send queue (SIOCOUTQ). Two system calls, asked between batches of removals and
 * when a name leaves the bus (pcpd_manager_holder_vanished()), never on a call's path. */
static size_t on_output_backlog(pcpd_manager *m, void *userdata) {
        pcpd_bus_face *face = userdata;
        uint64_t queued = 0;
        int fd, outq = 0;

        if (face->bus == NULL)
                return 0;
        if (sd_bus_get_n_queued_write(face->bus, &queued) >= 0 && queued > 0)
                return SIZE_MAX;
        fd = sd_bus_get_fd(face->bus);
        if (fd < 0 || ioctl(fd, SIOCOUTQ, &outq) < 0 || outq < 0)
                return 0;
        return (size_t) outq;
}

const pcpd_manager_listener pcpd_bus_listener = {
        .mapping_added = on_mapping_added,
        .mapping_changed = on_mapping_changed,
        .mapping_removed = on_mapping_removed,
        .manager_changed = on_manager_changed,
        .manager_freeing = on_manager_freeing,
        .holder_unconfirmed = on_holder_unconfirmed,
        .status_changed = on_status_changed,
        .output_backlog = on_output_backlog,
};

pcpd_bus_face *pcpd_bus_face_new(void) {
        pcpd_bus_face *face = g_new0(pcpd_bus_face, 1);

        face->calls = g_hash_table_new(g_direct_hash, g_direct_equal);
        return face;
}

/* calls waiting for polkit are freed through their callbacks, then those still waiting
 * for their credentials */
static void face_end_calls(pcpd_bus_face *face) {
        face->polkit = pcpd_polkit_free(face->polkit);
        face->track = pcpd_bus_track_free(face->track); /* its questions' answers reach nobody */
        while (g_hash_table_size(face->calls) > 0) {
                GHashTableIter it;
                gpointer k;
                g_hash_table_iter_init(&it, face->calls);
                if (!g_hash_table_iter_next(&it, &k, NULL))
                        break;
                pending_free(k);
        }
        /* nobody waits for it any more */
        face->callers = pcpd_caller_cache_free(face->callers);
}

pcpd_bus_face *pcpd_bus_face_free(pcpd_bus_face *face) {
        if (face == NULL)
                return NULL;
        /* its calls ended with the manager (on_manager_freeing()) */
        g_warn_if_fail(g_hash_table_size(face->calls) == 0);
        if (face->turn_end != NULL) { /* the manager is gone: nothing to tell */
                g_source_destroy(face->turn_end);
                g_source_unref(face->turn_end);
        }
        pcpd_polkit_free(face->polkit);
        pcpd_caller_cache_free(face->callers);
        pcpd_bus_track_free(face->track);
        g_hash_table_destroy(face->calls);
        sd_bus_flush_close_unref(face->bus); /* the last signals go out */
        g_free(face);
        return NULL;
}

int pcpd_bus_register(pcpd_manager *m, sd_bus *bus) {
        pcpd_bus_face *face = face_of(m);
        int r;

        r = pcpd_polkit_new(bus, &face->polkit);
        if (r < 0)
                return r;
        r = pcpd_caller_cache_new(bus, &face->callers);
        if (r < 0)
                return r;
        /* before any call is taken: a caller the cache knows is then known to the watch */
        r = pcpd_bus_track_new(bus, m, &face->track);
        if (r < 0)
                return r;
        face->bus = sd_bus_ref(bus);
        /* before any message is handled (sd-bus's own answers too: Get, Ping) */
        r = sd_bus_add_filter(bus, NULL, on_incoming, m);
        if (r < 0)
                return r;
        if (face->turn_end == NULL) {
                face->turn_end = g_source_new(&turn_end_funcs, sizeof(turn_end_source));
                ((turn_end_source *) face->turn_end)->manager = m;
                g_source_set_name(face->turn_end, "pcpd-bus turn end");
                g_source_set_priority(face->turn_end, G_MININT);
                g_source_attach(face->turn_end, NULL);
        }
        r = sd_bus_add_object_vtable(bus, NULL, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, manager_vtable, m);
        if (r < 0)
                return r;
        r = pcpd_mapping_bus_register(m, bus);
        if (r < 0)
                return r;
        return sd_bus_add_object_manager(bus, NULL, PCP1_MANAGER_PATH);
}

void pcpd_bus_unregister(pcpd_manager *m) {
        face_stop_turn_end(m, face_of(m));
        face_end_calls(face_of(m));
}
