/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcpd-upnp: the UPnP-IGD client (see pcpd-upnp.h for the design and why GUPnP is used
 * the way it is).
 *
 * Structure: one GUPnPContext for the interface and a control point per service type;
 * `struct igd` per usable service found; `struct mapping` per mapping, driven by one
 * asynchronous action at a time (`struct op`) and one timer. Every action goes through
 * op_start(): a GCancellable, a time-out, and a completion that is ignored once the owner
 * is gone. Events are emitted from callbacks and timers only, and emitting is the last
 * thing a function does with a mapping (the callee may remove it).
 */

#define G_LOG_DOMAIN "pcpd-upnp"

#include <arpa/inet.h>
#include <errno.h>
#include <libgupnp/gupnp.h>
#include <libsoup/soup.h>
#include <string.h>

#include "pcpd-upnp.h"

#define USEC_PER_SEC G_USEC_PER_SEC
#define DELETE_ATTEMPTS 3
#define DELETE_WAIT_NO_IGD_S 30 /* a removal waits this long for an IGD to appear */
#define IGD_UNANSWERED_MAX 3     /* GetExternalIPAddress unanswered: the IGD is gone */
#define EVENT_CHECK_MS 2000      /* GetExternalIPAddress after an event with the known address */
#define EVENT_GAP_MS 1000        /* an event asks GetExternalIPAddress no sooner after the last one */
#define REFUSED_LOG_INTERVAL_S 300 /* SSDP refusals: one log line (with the count) at most this often */
#define SSDP_PORT 1900

/* gssdp's message types (gssdp-client-private.h) */
enum { SSDP_DISCOVERY_REQUEST = 0, SSDP_DISCOVERY_RESPONSE = 1, SSDP_ANNOUNCEMENT = 2 };

static const char *const service_targets[] = {
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "urn:schemas-upnp-org:service:WANPPPConnection:1",
        "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1",
};
#define N_TARGETS G_N_ELEMENTS(service_targets)
#define SERVICE_6FC_PREFIX "urn:schemas-upnp-org:service:WANIPv6FirewallControl:"
#define SERVICE_IP_PREFIX "urn:schemas-upnp-org:service:WANIPConnection:"

struct op;
struct keeper;

struct igd {
        pcpd_upnp *u;
        GUPnPServiceProxy *proxy;
        pcpd_upnp_igd_info info;
        char *udn, *service_type, *location;
        unsigned unanswered; /* GetExternalIPAddress without an answer in a row */
        bool usable;     /* answered GetExternalIPAddress with an address */
        bool notify;     /* ExternalIPAddress notify added */
        bool recheck;    /* GetExternalIPAddress again once the one in flight is done */
        bool byebye;     /* its byebye is held (u->held_*): the next answer confirms it or not */
        struct op *op;   /* GetExternalIPAddress in flight */
        GSource *timer;  /* next GetExternalIPAddress */
        int64_t timer_due;       /* when it fires (monotonic µs) */
        int64_t not_before;      /* after a failure: no GetExternalIPAddress before (monotonic µs) */
        int64_t last_ask;        /* the last GetExternalIPAddress sent (monotonic µs; 0: none) */
        bool event_pending;      /* an event said event_addr: the next answer confirms it or not */
        struct in6_addr event_addr;
        gulong lost_handler;     /* "subscription-lost" on proxy */
        unsigned sub_failures;   /* subscriptions lost in a row (back-off) */
        GSource *resubscribe;    /* SUBSCRIBE again after a lost subscription */
};

typedef enum step {
        STEP_IDLE,
        STEP_CHECK,      /* GetSpecificPortMappingEntry before add / at renewal */
        STEP_ADD,        /* AddPortMapping */
        STEP_DEL_CHECK,  /* GetSpecificPortMappingEntry before delete */
        STEP_DELETE,     /* DeletePortMapping */
} step;

struct mapping {
        pcpd_upnp *u;
        pcpd_upnp_info info;
        char *description;
        step step;
        struct op *op;
        GSource *timer;
        uint16_t candidate;
        unsigned tries;          /* candidates tried for this creation */
        uint32_t lease_try;      /* lifetime asked in the current AddPortMapping */
        unsigned failures;       /* consecutive, for the back-off */
        bool check_is_renewal;   /* the current check is of an active mapping */
        bool recreating;         /* found gone (or taken) at a check: created again */
        uint16_t upstream_port;  /* an AddPortMapping for it may have succeeded */
        bool removing;
        unsigned delete_attempts;
        int64_t remove_started;  /* monotonic µs */
};

struct op {
        pcpd_upnp *u;
        struct mapping *m;      /* owner (NULL: detached, or an IGD op) */
        struct igd *igd;        /* owner of an IGD op */
        struct keeper *keeper;  /* of the proxy's context (a reference) */
        GUPnPServiceProxy *proxy;
        GUPnPServiceProxyAction *action;
        GCancellable *cancel;
        GSource *timeout;
        GList link;             /* in u->in_flight */
        bool timed_out;
        void (*done)(struct op *op, const GError *error);
};

struct pcpd_upnp {
        GMainContext *context;
        pcpd_upnp_config config;
        pcpd_upnp_ops ops;
        void *userdata;

        char *ifname;
        int family;
        bool has_gateway;
        struct in6_addr gateway;

        GUPnPContext *gctx;
        struct keeper *keeper;   /* gctx's (a reference) */
        GUPnPControlPoint *cps[N_TARGETS];
        GHashTable *locations;   /* LOCATION strings accepted (bounded) */
        GQueue location_order;   /* the same, oldest first (not owned) */
        GHashTable *udns;        /* UDNs of the USNs accepted → the LOCATION they were taken
                                  * with (bounded) */
        GQueue udn_order;        /* the same keys, oldest first (not owned) */
        pcpd_upnp_bucket new_locations; /* what a new LOCATION / USN takes a token from */
        uint64_t refused_unlogged;      /* SSDP refusals since the last line that said so */
        int64_t refused_logged_at;      /* that line (monotonic µs; 0: none yet) */
        char *held_nt, *held_usn;       /* the active IGD's byebye, held until confirmed */
        bool replaying;                 /* passing a held byebye on to GSSDP */
        /* per service kind, the last announcement refused only because an IGD was in use
         * (another device: an IGD that restarted with a new UUID, say), taken again when
         * that IGD is dropped */
        struct deferred {
                SoupMessageHeaders *headers;
                char *from;
                guint port;
                int type;
        } deferred[3];
        GSource *deferred_src;
        GHashTable *hosts_6fc;   /* "addr" strings with WANIPv6FirewallControl */
        GPtrArray *igds;         /* struct igd* */
        struct igd *active;
        GSource *search_timer;

        GHashTable *mappings;    /* id → struct mapping* */
        uint64_t next_id;
        size_t n_ops;
        GQueue in_flight;        /* every op (detached ones too) */
        bool body_abort;         /* an HTTP answer broke the size bound (cleared per op) */
        pcpd_upnp_stats stats;
};

/* ------------------------------------------------------------------ small helpers */

static void push_ctx(pcpd_upnp *u) {
        g_main_context_push_thread_default(u->context);
}

static void pop_ctx(pcpd_upnp *u) {
        g_main_context_pop_thread_default(u->context);
}

static void source_clear(GSource **s) {
        if (*s) {
                g_source_destroy(*s);
                g_source_unref(*s);
                *s = NULL;
        }
}

static GSource *timer_new(pcpd_upnp *u, uint64_t msec, GSourceFunc fn, void *ud) {
        GSource *s = msec == 0 ? g_idle_source_new() : g_timeout_source_new((guint) MIN(msec, G_MAXUINT));

        g_source_set_callback(s, fn, ud, NULL);
        g_source_attach(s, u->context);
        return s;
}

static void addr_to_string(const struct in6_addr *a, char *buf, size_t len) {
        if (IN6_IS_ADDR_V4MAPPED(a))
                inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t) len);
        else
                inet_ntop(AF_INET6, a, buf, (socklen_t) len);
}

static bool addr_from_string(const char *s, struct in6_addr *ret) {
        struct in_addr v4;

        if (inet_pton(AF_INET, s, &v4) == 1) {
                memset(ret, 0, sizeof(*ret));
                ret->s6_addr[10] = ret->s6_addr[11] = 0xff;
                memcpy(&ret->s6_addr[12], &v4, 4);
                return true;
        }
        return inet_pton(AF_INET6, s, ret) == 1;
}

static uint32_t random_u32(pcpd_upnp *u) {
        return u->ops.random ? u->ops.random(u->userdata) : g_random_int();
}

static const char *proto_name(uint8_t p) {
        return p == IPPROTO_TCP ? "TCP" : "UDP";
}

/* ------------------------------------------------------------------ names */

const char *pcpd_upnp_state_to_string(pcpd_upnp_state s) {
        static const char *const names[] = { "pending", "active", "failed" };

        return (unsigned) s < G_N_ELEMENTS(names) ? names[s] : "unknown";
}

const char *pcpd_upnp_error_name(pcpd_upnp_error e) {
        static const char *const names[] = {
                [PCPD_UPNP_ERROR_NONE] = "",
                [PCPD_UPNP_ERROR_NO_IGD] = "NO_IGD",
                [PCPD_UPNP_ERROR_CONFLICT] = "CANNOT_PROVIDE_EXTERNAL",
                [PCPD_UPNP_ERROR_NO_RESOURCES] = "NO_RESOURCES",
                [PCPD_UPNP_ERROR_NOT_AUTHORIZED] = "NOT_AUTHORIZED",
                [PCPD_UPNP_ERROR_REFUSED] = "UPNP_REFUSED",
                [PCPD_UPNP_ERROR_TIMEOUT] = "TIMEOUT",
                [PCPD_UPNP_ERROR_UNREACHABLE] = "UNREACHABLE",
                [PCPD_UPNP_ERROR_INVALID_RESPONSE] = "INVALID_RESPONSE",
                [PCPD_UPNP_ERROR_EXPIRED] = "EXPIRED",
        };

        return (unsigned) e < G_N_ELEMENTS(names) ? names[e] : "UNKNOWN";
}

/* ------------------------------------------------------------------ events */

static void emit(pcpd_upnp *u, const pcpd_upnp_event *ev) {
        if (u->ops.event)
                u->ops.event(u->userdata, ev);
}

static void emit_mapping(struct mapping *m, bool recreated) {
        pcpd_upnp_event ev = {
                .type = PCPD_UPNP_EVENT_MAPPING,
                .mapping_id = m->info.id,
                .mapping = &m->info,
                .recreated = recreated,
        };

        emit(m->u, &ev);
}

static void emit_igd(pcpd_upnp *u, const pcpd_upnp_igd_info *info) {
        pcpd_upnp_event ev = { .type = PCPD_UPNP_EVENT_IGD, .igd = info };

        emit(u, &ev);
}

/* ------------------------------------------------------------------ keeper */

/*
 * GUPnP 1.6.3 (and its upstream still) loses a GError when a service proxy is disposed
 * while its SUBSCRIBE (or a renewal) is in flight: the disposal cancels the request, and
 * subscribe_got_response() (libgupnp/gupnp-service-proxy.c) returns on
 * G_IO_ERROR_CANCELLED by "goto out" without g_error_free(). So nothing of ours lets a
 * proxy be disposed then: the last references that pcpd-upnp drops to a context's
 * proxies, control points and the context itself go to its keeper, which counts the
 * SUBSCRIBEs queued on the context's session and holds what it was given until none is
 * (libsoup's time-out ends one), then drops it from a low-priority idle, after the
 * SUBSCRIBE's completion has run. With no SUBSCRIBE in flight a reference is dropped at
 * once, as before. Ops hold a reference to the keeper, as they do to their proxy.
 */
struct keeper {
        unsigned refs;           /* the client's (until its interface goes) and the ops' */
        GMainContext *context;
        GUPnPContext *gctx;      /* owned */
        SoupSession *session;    /* gctx's */
        gulong queued_handler, unqueued_handler;
        unsigned subscribing;    /* SUBSCRIBE messages queued on the session */
        GPtrArray *held;         /* references dropped while one was */
        GSource *release;
};

#define KEEPER_KEY "pcpd-upnp-keeper"

static void keeper_release(struct keeper *k) {
        /* in the order given: the proxies before their control points and the context;
         * disposing them queues UNSUBSCRIBEs, never a SUBSCRIBE */
        while (k->held->len > 0) {
                g_autoptr(GPtrArray) held = k->held;

                k->held = g_ptr_array_new();
                for (unsigned i = 0; i < held->len; i++)
                        g_object_unref(g_ptr_array_index(held, i));
        }
}

static void keeper_free(struct keeper *k) {
        source_clear(&k->release);
        keeper_release(k);
        g_signal_handler_disconnect(k->session, k->queued_handler);
        g_signal_handler_disconnect(k->session, k->unqueued_handler);
        g_ptr_array_unref(k->held);
        g_object_unref(k->gctx);
        g_main_context_unref(k->context);
        g_free(k);
}

static gboolean keeper_release_cb(void *ud) {
        struct keeper *k = ud;

        g_source_unref(k->release);
        k->release = NULL;
        if (k->subscribing > 0)
                return G_SOURCE_REMOVE; /* another one came: released when it is done */
        if (k->refs == 0)
                keeper_free(k);
        else
                keeper_release(k);
        return G_SOURCE_REMOVE;
}

static void keeper_on_queued(SoupSession *session, SoupMessage *msg, void *ud) {
        struct keeper *k = ud;

        if (g_strcmp0(soup_message_get_method(msg), "SUBSCRIBE") != 0)
                return;
        k->subscribing++;
        g_object_set_data(G_OBJECT(msg), KEEPER_KEY, k);
}

static void keeper_on_unqueued(SoupSession *session, SoupMessage *msg, void *ud) {
        struct keeper *k = ud;

        if (g_object_get_data(G_OBJECT(msg), KEEPER_KEY) != k)
                return;
        g_object_set_data(G_OBJECT(msg), KEEPER_KEY, NULL);
        if (--k->subscribing > 0 || (k->held->len == 0 && k->refs > 0) || k->release)
                return;
        /* the SUBSCRIBE's completion may still be due (an idle of default priority) */
        k->release = g_idle_source_new();
        g_source_set_priority(k->release, G_PRIORITY_LOW);
        g_source_set_callback(k->release, keeper_release_cb, k, NULL);
        g_source_attach(k->release, k->context);
}

static struct keeper *keeper_new(pcpd_upnp *u, GUPnPContext *gctx) {
        struct keeper *k = g_new0(struct keeper, 1);

        k->refs = 1;
        k->context = g_main_context_ref(u->context);
        k->gctx = g_object_ref(gctx);
        k->session = gupnp_context_get_session(gctx);
        k->held = g_ptr_array_new();
        k->queued_handler = g_signal_connect(k->session, "request-queued", G_CALLBACK(keeper_on_queued), k);
        k->unqueued_handler = g_signal_connect(k->session, "request-unqueued", G_CALLBACK(keeper_on_unqueued), k);
        return k;
}

static struct keeper *keeper_ref(struct keeper *k) {
        k->refs++;
        return k;
}

/* the last user is gone: freed now, or once no SUBSCRIBE is in flight */
static void keeper_unref(struct keeper *k) {
        if (--k->refs > 0)
                return;
        if (k->subscribing == 0 && !k->release)
                keeper_free(k);
}

/* drops a reference to obj (a proxy, a control point, the context) */
static void keeper_drop(struct keeper *k, void *obj) {
        if (!obj)
                return;
        if (k->subscribing == 0 && k->held->len == 0)
                g_object_unref(obj);
        else
                g_ptr_array_add(k->held, obj);
}

/* ------------------------------------------------------------------ operations */

static void op_free(struct op *op) {
        source_clear(&op->timeout);
        g_clear_object(&op->cancel);
        g_clear_pointer(&op->action, gupnp_service_proxy_action_unref);
        keeper_drop(op->keeper, g_steal_pointer(&op->proxy));
        keeper_unref(op->keeper);
        g_queue_unlink(&op->u->in_flight, &op->link);
        op->u->n_ops--;
        g_free(op);
}

/* the owner is going away: the completion will only free the op */
static void op_detach(struct op **opp) {
        struct op *op = *opp;

        if (!op)
                return;
        op->m = NULL;
        op->igd = NULL;
        g_cancellable_cancel(op->cancel);
        *opp = NULL;
}

static gboolean op_timeout_cb(void *ud) {
        struct op *op = ud;

        op->timed_out = true;
        g_source_unref(op->timeout);
        op->timeout = NULL;
        g_cancellable_cancel(op->cancel);
        return G_SOURCE_REMOVE;
}

static void op_finished(GObject *source, GAsyncResult *res, void *ud) {
        struct op *op = ud;
        g_autoptr(GError) error = NULL;
        pcpd_upnp *u = op->u;

        (void) gupnp_service_proxy_call_action_finish(GUPNP_SERVICE_PROXY(source), res, &error);
        if (op->m || op->igd) {
                if (error) {
                        u->stats.action_errors++;
                        if (op->timed_out) {
                                u->stats.action_timeouts++;
                                g_clear_error(&error);
                                g_set_error_literal(&error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                                    "The IGD did not answer in time.");
                        } else if (u->body_abort && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
                                g_clear_error(&error);
                                g_set_error_literal(&error, GUPNP_SERVER_ERROR, GUPNP_SERVER_ERROR_INVALID_RESPONSE,
                                                    "The IGD's answer was too long or had no Content-Length.");
                        }
                }
                if (op->m)
                        op->m->op = NULL;
                else
                        op->igd->op = NULL;
                op->done(op, error);
        }
        op_free(op);
}

/* Starts action on proxy for the owner (m or igd); the action is consumed. */
static struct op *op_start(pcpd_upnp *u, GUPnPServiceProxy *proxy, GUPnPServiceProxyAction *action,
                           struct mapping *m, struct igd *igd, void (*done)(struct op *, const GError *)) {
        struct op *op = g_new0(struct op, 1);

        op->u = u;
        op->m = m;
        op->igd = igd;
        op->keeper = keeper_ref(u->keeper);
        op->proxy = g_object_ref(proxy);
        op->action = action;
        op->cancel = g_cancellable_new();
        op->done = done;
        op->timeout = timer_new(u, u->config.action_timeout_ms, op_timeout_cb, op);
        op->link.data = op;
        g_queue_push_tail_link(&u->in_flight, &op->link);
        u->n_ops++;
        u->stats.actions++;
        u->body_abort = false;

        push_ctx(u);
        gupnp_service_proxy_call_action_async(proxy, action, op->cancel, op_finished, op);
        pop_ctx(u);
        return op;
}

/* The UPnP errorCode of an action's error, or 0 for a transport error. */
static int upnp_code(const GError *error) {
        return error && error->domain == GUPNP_CONTROL_ERROR ? error->code : 0;
}

static pcpd_upnp_error transport_error(const GError *error) {
        if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
                return PCPD_UPNP_ERROR_TIMEOUT;
        if (error->domain == GUPNP_SERVER_ERROR)
                return PCPD_UPNP_ERROR_INVALID_RESPONSE;
        return PCPD_UPNP_ERROR_UNREACHABLE;
}

/* get_result with string out-arguments; the values must be g_free()d */
static bool result_strings(struct op *op, GError **error, const char *n1, char **v1, const char *n2, char **v2,
                           const char *n3, char **v3, const char *n4, char **v4, const char *n5, char **v5) {
        return gupnp_service_proxy_action_get_result(op->action, error, n1, G_TYPE_STRING, v1, n2, G_TYPE_STRING,
                                                     v2, n3, G_TYPE_STRING, v3, n4, G_TYPE_STRING, v4, n5,
                                                     G_TYPE_STRING, v5, NULL);
}

/* ------------------------------------------------------------------ mappings */

static void mapping_run(struct mapping *m);
static void mapping_check(struct mapping *m, uint16_t port, bool renewal);
static void mapping_delete_check(struct mapping *m);
static void mapping_add(struct mapping *m);

static void mapping_free(struct mapping *m) {
        if (!m)
                return;
        op_detach(&m->op);
        source_clear(&m->timer);
        g_free(m->description);
        g_free(m);
}

static gboolean mapping_timer_cb(void *ud) {
        struct mapping *m = ud;

        g_source_unref(m->timer);
        m->timer = NULL;
        mapping_run(m);
        return G_SOURCE_REMOVE;
}

static void mapping_schedule(struct mapping *m, uint64_t msec) {
        source_clear(&m->timer);
        m->timer = timer_new(m->u, msec, mapping_timer_cb, m);
}

/* retry_min_s doubled for every failure after the first, capped at retry_max_s */
static uint64_t backoff_after_ms(const pcpd_upnp_config *c, unsigned failures) {
        uint64_t s = c->retry_min_s;

        for (unsigned i = 1; i < failures && s < c->retry_max_s; i++)
                s *= 2;
        return MIN(s, (uint64_t) c->retry_max_s) * 1000;
}

static uint64_t backoff_ms(struct mapping *m) {
        return backoff_after_ms(&m->u->config, m->failures);
}

static void mapping_deleted(struct mapping *m, bool upstream) {
        pcpd_upnp *u = m->u;
        pcpd_upnp_event ev = {
                .type = PCPD_UPNP_EVENT_MAPPING_DELETED,
                .mapping_id = m->info.id,
                .mapping = &m->info,
                .deleted_upstream = upstream,
        };

        g_hash_table_steal(u->mappings, &m->info.id);
        op_detach(&m->op);
        source_clear(&m->timer);
        emit(u, &ev);
        mapping_free(m);
}

/* a failure: state and retry. Transient ones leave an unexpired active mapping active. */
static void mapping_fail(struct mapping *m, pcpd_upnp_error err, int code) {
        int64_t now = g_get_monotonic_time();
        bool transient = err == PCPD_UPNP_ERROR_TIMEOUT || err == PCPD_UPNP_ERROR_UNREACHABLE ||
                         err == PCPD_UPNP_ERROR_INVALID_RESPONSE;
        uint64_t wait;

        m->failures++;
        m->step = STEP_IDLE;
        wait = backoff_ms(m);
        if (m->info.state == PCPD_UPNP_ACTIVE && transient &&
            (m->info.expires_at == 0 || (int64_t) m->info.expires_at > now)) {
                /* keep it; try again before it runs out */
                if (m->info.expires_at)
                        wait = MIN(wait, ((uint64_t) ((int64_t) m->info.expires_at - now)) / 1000 + 1);
                m->info.upnp_error = code;
                mapping_schedule(m, wait);
                return;
        }
        mapping_schedule(m, wait);
        if (m->info.state == PCPD_UPNP_FAILED && m->info.error == err && m->info.upnp_error == code)
                return;
        m->info.state = PCPD_UPNP_FAILED;
        m->info.error = err;
        m->info.upnp_error = code;
        emit_mapping(m, false);
}

static void mapping_granted(struct mapping *m, uint16_t port) {
        pcpd_upnp *u = m->u;
        bool recreated = m->recreating;
        uint64_t next;

        if (recreated) {
                m->info.recreations++;
                u->stats.recreations++;
        }
        m->recreating = false;
        m->step = STEP_IDLE;
        m->failures = 0;
        m->tries = 0;
        m->info.state = PCPD_UPNP_ACTIVE;
        m->info.error = PCPD_UPNP_ERROR_NONE;
        m->info.upnp_error = 0;
        m->info.has_external = true;
        m->info.external_port = port;
        m->info.lease = m->lease_try;
        m->info.permanent = m->lease_try == 0;
        m->info.expires_at = m->lease_try ? (uint64_t) g_get_monotonic_time() + (uint64_t) m->lease_try * USEC_PER_SEC : 0;
        if (u->active && u->active->info.has_external_addr)
                m->info.external_addr = u->active->info.external_addr;
        next = m->lease_try ? (uint64_t) m->lease_try * 1000 / 2 : (uint64_t) u->config.check_interval_s * 1000;
        if (m->lease_try && u->config.check_interval_s)
                next = MIN(next, (uint64_t) u->config.check_interval_s * 1000);
        mapping_schedule(m, MAX(next, 1000));
        emit_mapping(m, recreated);
}

static void add_done(struct op *op, const GError *error) {
        struct mapping *m = op->m;
        uint16_t port = m->candidate;
        int code = upnp_code(error);

        if (m->removing) {
                /* removed while this was in flight: now the IGD has it or not; check, delete */
                mapping_delete_check(m);
                return;
        }
        if (!error) {
                mapping_granted(m, port);
                return;
        }
        if (code == 0) {
                /* the IGD may or may not have it: upstream_port stays for a removal */
                mapping_fail(m, transport_error(error), 0);
                return;
        }
        g_debug("upnp: AddPortMapping %s %u: %d %s", proto_name(m->info.protocol), port, code, error->message);
        switch (pcpd_upnp_add_verdict(code)) {
        case PCPD_UPNP_VERDICT_RETRY_PERMANENT:
                if (m->lease_try != 0) {
                        m->lease_try = 0;
                        mapping_add(m);
                        return;
                }
                mapping_fail(m, PCPD_UPNP_ERROR_REFUSED, code);
                return;
        case PCPD_UPNP_VERDICT_CONFLICT:
                break;
        case PCPD_UPNP_VERDICT_SAME_PORT:
                if (port != m->info.internal_port &&
                    !(m->info.prefer_failure && m->info.suggested_external_port &&
                      m->info.suggested_external_port != m->info.internal_port)) {
                        mapping_check(m, m->info.internal_port, m->check_is_renewal);
                        return;
                }
                mapping_fail(m, PCPD_UPNP_ERROR_CONFLICT, code);
                return;
        case PCPD_UPNP_VERDICT_NO_RESOURCES:
                mapping_fail(m, PCPD_UPNP_ERROR_NO_RESOURCES, code);
                return;
        case PCPD_UPNP_VERDICT_NOT_AUTHORIZED:
                mapping_fail(m, PCPD_UPNP_ERROR_NOT_AUTHORIZED, code);
                return;
        case PCPD_UPNP_VERDICT_FAILED:
        default:
                mapping_fail(m, PCPD_UPNP_ERROR_REFUSED, code);
                return;
        }

        /* conflict: another port, unless the caller wants this one or nothing */
        m->info.upnp_error = code;
        if (m->info.prefer_failure || ++m->tries >= PCPD_UPNP_MAX_PORT_TRIES) {
                mapping_fail(m, PCPD_UPNP_ERROR_CONFLICT, code);
                return;
        }
        mapping_check(m, pcpd_upnp_candidate_port(random_u32(m->u), port), m->check_is_renewal);
}

static void mapping_add(struct mapping *m) {
        pcpd_upnp *u = m->u;
        char client[INET6_ADDRSTRLEN];
        GUPnPServiceProxyAction *action;

        addr_to_string(&m->info.internal_addr, client, sizeof(client));
        m->step = STEP_ADD;
        /* from now on the IGD may hold it (even if this request is cancelled): a removal
         * checks this port, and deletes it only if it is ours */
        m->upstream_port = m->candidate;
        action = gupnp_service_proxy_action_new("AddPortMapping",
                                                "NewRemoteHost", G_TYPE_STRING, "",
                                                "NewExternalPort", G_TYPE_UINT, (guint) m->candidate,
                                                "NewProtocol", G_TYPE_STRING, proto_name(m->info.protocol),
                                                "NewInternalPort", G_TYPE_UINT, (guint) m->info.internal_port,
                                                "NewInternalClient", G_TYPE_STRING, client,
                                                "NewEnabled", G_TYPE_BOOLEAN, TRUE,
                                                "NewPortMappingDescription", G_TYPE_STRING, m->description,
                                                "NewLeaseDuration", G_TYPE_UINT, (guint) m->lease_try,
                                                NULL);
        m->op = op_start(u, u->active->proxy, action, m, NULL, add_done);
}

typedef enum entry_kind {
        ENTRY_OURS,      /* mapped to our internal client and port */
        ENTRY_FREE,      /* 714 NoSuchEntryInArray */
        ENTRY_OTHER,     /* another host's (or another port of ours) */
        ENTRY_UNKNOWN,   /* another UPnP error: the IGD would not say */
        ENTRY_MALFORMED, /* an answer that does not parse */
        ENTRY_TRANSPORT, /* no answer */
} entry_kind;

/* what GetSpecificPortMappingEntry said; no side effects */
static entry_kind entry_classify(struct mapping *m, struct op *op, const GError *error) {
        g_autofree char *iport = NULL, *client = NULL, *enabled = NULL, *desc = NULL, *lease = NULL;
        g_autoptr(GError) e = NULL;
        pcpd_upnp_entry entry;
        int code = upnp_code(error);

        if (error) {
                if (code == PCPD_UPNP_ERR_NO_SUCH_ENTRY)
                        return ENTRY_FREE;
                return code == 0 ? ENTRY_TRANSPORT : ENTRY_UNKNOWN;
        }
        if (!result_strings(op, &e, "NewInternalPort", &iport, "NewInternalClient", &client, "NewEnabled", &enabled,
                            "NewPortMappingDescription", &desc, "NewLeaseDuration", &lease))
                return ENTRY_MALFORMED;
        if (pcpd_upnp_parse_entry(&(pcpd_upnp_entry_strings) {
                                          .internal_port = iport,
                                          .internal_client = client,
                                          .enabled = enabled,
                                          .description = desc,
                                          .lease_duration = lease,
                                  },
                                  &entry) < 0)
                return ENTRY_MALFORMED;
        return pcpd_upnp_entry_is_ours(&entry, &m->info.internal_addr, m->info.internal_port) ? ENTRY_OURS
                                                                                              : ENTRY_OTHER;
}

static void check_done(struct op *op, const GError *error) {
        struct mapping *m = op->m;
        bool holding = m->check_is_renewal && m->info.state == PCPD_UPNP_ACTIVE &&
                       m->candidate == m->info.external_port;

        switch (entry_classify(m, op, error)) {
        case ENTRY_TRANSPORT:
                mapping_fail(m, transport_error(error), 0);
                return;
        case ENTRY_MALFORMED:
                g_debug("upnp: malformed GetSpecificPortMappingEntry answer");
                mapping_fail(m, PCPD_UPNP_ERROR_INVALID_RESPONSE, 0);
                return;
        case ENTRY_OURS:
                if (holding && m->info.permanent) {
                        /* a permanent mapping still there: nothing to renew */
                        m->step = STEP_IDLE;
                        m->failures = 0;
                        mapping_schedule(m, (uint64_t) m->u->config.check_interval_s * 1000);
                        return;
                }
                mapping_add(m); /* a renewal, or ours from before a restart */
                return;
        case ENTRY_FREE:
                if (holding) {
                        /* gone although we hold it: the IGD restarted and forgot (no epoch in UPnP) */
                        m->recreating = true;
                        g_debug("upnp: %s %u vanished from the IGD, creating it again",
                                proto_name(m->info.protocol), m->candidate);
                }
                mapping_add(m);
                return;
        case ENTRY_UNKNOWN:
                /* 402 for an unknown port on some IGDs, 606...: AddPortMapping will say 718
                 * if it is someone else's */
                mapping_add(m);
                return;
        case ENTRY_OTHER:
                break;
        }

        /* another host holds this external port: never overwrite it */
        if (holding)
                m->recreating = true; /* it will come back on another port (an event says so) */
        m->info.upnp_error = 0;
        if (m->info.prefer_failure || ++m->tries >= PCPD_UPNP_MAX_PORT_TRIES) {
                mapping_fail(m, PCPD_UPNP_ERROR_CONFLICT, 0);
                return;
        }
        mapping_check(m, pcpd_upnp_candidate_port(random_u32(m->u), m->candidate), m->check_is_renewal);
}

static GUPnPServiceProxyAction *get_entry_action(uint8_t protocol, uint16_t port) {
        return gupnp_service_proxy_action_new("GetSpecificPortMappingEntry",
                                              "NewRemoteHost", G_TYPE_STRING, "",
                                              "NewExternalPort", G_TYPE_UINT, (guint) port,
                                              "NewProtocol", G_TYPE_STRING, proto_name(protocol),
                                              NULL);
}

static void mapping_check(struct mapping *m, uint16_t port, bool renewal) {
        pcpd_upnp *u = m->u;

        m->step = STEP_CHECK;
        m->candidate = port;
        m->check_is_renewal = renewal;
        m->op = op_start(u, u->active->proxy, get_entry_action(m->info.protocol, port), m, NULL, check_done);
}

static void delete_done(struct op *op, const GError *error) {
        struct mapping *m = op->m;
        int code = upnp_code(error);

        if (error && code == 0) {
                m->delete_attempts++;
                if (m->delete_attempts < DELETE_ATTEMPTS) {
                        mapping_schedule(m, 1000ull << m->delete_attempts);
                        return;
                }
                mapping_deleted(m, false);
                return;
        }
        /* done, or 714: gone already */
        mapping_deleted(m, true);
}

static void delete_check_done(struct op *op, const GError *error) {
        struct mapping *m = op->m;
        pcpd_upnp *u = m->u;

        switch (entry_classify(m, op, error)) {
        case ENTRY_TRANSPORT:
                m->delete_attempts++;
                if (m->delete_attempts < DELETE_ATTEMPTS) {
                        mapping_schedule(m, 1000ull << m->delete_attempts);
                        return;
                }
                mapping_deleted(m, false);
                return;
        case ENTRY_FREE:
        case ENTRY_OTHER:
                /* not there, or another host's now: nothing of ours to delete */
                mapping_deleted(m, true);
                return;
        case ENTRY_OURS:
        case ENTRY_UNKNOWN:
        case ENTRY_MALFORMED:
                /* ours, or the IGD would not say: delete (714 then means gone already) */
                break;
        }
        m->step = STEP_DELETE;
        m->op = op_start(u, u->active->proxy,
                         gupnp_service_proxy_action_new("DeletePortMapping",
                                                        "NewRemoteHost", G_TYPE_STRING, "",
                                                        "NewExternalPort", G_TYPE_UINT, (guint) m->upstream_port,
                                                        "NewProtocol", G_TYPE_STRING, proto_name(m->info.protocol),
                                                        NULL),
                         m, NULL, delete_done);
}

static void mapping_delete_check(struct mapping *m) {
        pcpd_upnp *u = m->u;

        if (m->upstream_port == 0) {
                mapping_deleted(m, true);
                return;
        }
        if (!u->active) {
                if (g_get_monotonic_time() - m->remove_started >= (int64_t) DELETE_WAIT_NO_IGD_S * USEC_PER_SEC) {
                        mapping_deleted(m, false);
                        return;
                }
                mapping_schedule(m, 1000);
                return;
        }
        m->step = STEP_DEL_CHECK;
        m->op = op_start(u, u->active->proxy, get_entry_action(m->info.protocol, m->upstream_port), m, NULL,
                         delete_check_done);
}

/* what a mapping does next, from its timer or when the IGD changes */
static void mapping_run(struct mapping *m) {
        pcpd_upnp *u = m->u;
        int64_t now = g_get_monotonic_time();

        if (m->op)
                return; /* the completion will decide */
        if (m->removing) {
                mapping_delete_check(m);
                return;
        }
        if (m->info.state == PCPD_UPNP_ACTIVE && m->info.expires_at && (int64_t) m->info.expires_at <= now) {
                m->info.state = PCPD_UPNP_PENDING;
                m->info.error = u->active ? PCPD_UPNP_ERROR_EXPIRED : PCPD_UPNP_ERROR_NO_IGD;
                m->info.expires_at = 0;
                if (u->active)
                        mapping_schedule(m, 0);
                emit_mapping(m, false);
                return;
        }
        if (!u->active) {
                if (m->info.state == PCPD_UPNP_ACTIVE) {
                        if (m->info.expires_at)
                                mapping_schedule(m, ((uint64_t) ((int64_t) m->info.expires_at - now)) / 1000 + 1);
                        return;
                }
                if (m->info.state == PCPD_UPNP_PENDING && m->info.error == PCPD_UPNP_ERROR_NO_IGD)
                        return;
                m->info.state = PCPD_UPNP_PENDING;
                m->info.error = PCPD_UPNP_ERROR_NO_IGD;
                emit_mapping(m, false);
                return;
        }
        if (m->info.state == PCPD_UPNP_ACTIVE || (m->info.has_external && m->upstream_port)) {
                /* renewal / check of what we hold; lease as granted last time */
                m->lease_try = m->info.has_external && m->info.permanent ? 0 : m->info.lifetime_requested;
                m->tries = 0;
                mapping_check(m, m->info.external_port, m->info.state == PCPD_UPNP_ACTIVE);
                return;
        }
        m->lease_try = m->lease_try == 0 && m->info.permanent ? 0 : m->info.lifetime_requested;
        m->tries = 0;
        mapping_check(m, m->info.suggested_external_port ? m->info.suggested_external_port : m->info.internal_port,
                      false);
}

static void kick_all(pcpd_upnp *u) {
        GHashTableIter it;
        void *v;

        g_hash_table_iter_init(&it, u->mappings);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                struct mapping *m = v;

                if (!m->op)
                        mapping_schedule(m, 0);
        }
}

/* ------------------------------------------------------------------ IGDs */

static void igd_free(struct igd *g);
static void igd_remove(pcpd_upnp *u, struct igd *g);
static void select_igd(pcpd_upnp *u);

static void igd_set_external(struct igd *g, const struct in6_addr *addr) {
        pcpd_upnp *u = g->u;
        bool changed = !g->info.has_external_addr || memcmp(&g->info.external_addr, addr, sizeof(*addr)) != 0;
        bool first = !g->usable;

        g->info.has_external_addr = true;
        g->info.external_addr = *addr;
        g->usable = true;
        if (first) {
                select_igd(u);
                return;
        }
        if (!changed || u->active != g)
                return;

        /* the external address changed: every active mapping has the new one */
        GHashTableIter it;
        void *v;
        g_autoptr(GArray) ids = g_array_new(false, false, sizeof(uint64_t));

        g_hash_table_iter_init(&it, u->mappings);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                struct mapping *m = v;

                if (m->info.state == PCPD_UPNP_ACTIVE)
                        g_array_append_val(ids, m->info.id);
        }
        emit_igd(u, &g->info);
        for (unsigned i = 0; i < ids->len; i++) {
                struct mapping *m = g_hash_table_lookup(u->mappings, &g_array_index(ids, uint64_t, i));

                if (!m || m->info.state != PCPD_UPNP_ACTIVE)
                        continue;
                m->info.external_addr = *addr;
                emit_mapping(m, false);
        }
}

static void igd_schedule_external(struct igd *g, uint64_t msec);
static void ext_done(struct op *op, const GError *error);
static void igd_byebye_confirmed(struct igd *g);
static void byebye_unconfirmed(struct igd *g);

static void igd_ask_external(struct igd *g) {
        g->last_ask = g_get_monotonic_time();
        g->op = op_start(g->u, g->proxy, gupnp_service_proxy_action_new("GetExternalIPAddress", NULL), NULL, g,
                         ext_done);
}

/* how long an event's GetExternalIPAddress waits: EVENT_GAP_MS after the last one sent, so
 * that events (anyone can send them, see on_external_ip_notify) ask at most once a gap */
static uint64_t igd_event_delay_ms(const struct igd *g) {
        int64_t due = g->last_ask + (int64_t) EVENT_GAP_MS * 1000, now = g_get_monotonic_time();

        return g->last_ask == 0 || due <= now ? 0 : (uint64_t) ((due - now + 999) / 1000);
}

/* the next GetExternalIPAddress after a failed one: retry_min_s, and nothing asks sooner */
static void igd_back_off(struct igd *g) {
        uint64_t msec = (uint64_t) g->u->config.retry_min_s * 1000;

        g->not_before = g_get_monotonic_time() + (int64_t) msec * 1000;
        igd_schedule_external(g, msec);
}

static void ext_done(struct op *op, const GError *error) {
        struct igd *g = op->igd;
        g_autofree char *ip = NULL;
        g_autoptr(GError) e = NULL;
        struct in6_addr addr;
        /* asked for while this one was in flight: its answer may predate what made us ask */
        bool again = g->recheck;

        g->recheck = false;
        /* nothing is armed while a request is in flight (igd_check_external sets recheck) */
        source_clear(&g->timer);
        if (error) {
                g_debug("upnp: GetExternalIPAddress at %s: %s", g->udn, error->message);
                if (g->byebye && upnp_code(error) == 0) {
                        /* it said byebye and does not answer: gone */
                        igd_byebye_confirmed(g);
                        return;
                }
                if (g->byebye && !again)
                        byebye_unconfirmed(g); /* a fault is an answer: it is there */
                if (upnp_code(error) == 0 && ++g->unanswered >= IGD_UNANSWERED_MAX) {
                        /* gone without a byebye (or GUPnP lost it, see on_service_available) */
                        g_debug("upnp: %s stopped answering, dropping it", g->udn);
                        igd_remove(g->u, g);
                        return;
                }
                /* asked again or not, after an error the back-off holds: a NOTIFY flood
                 * must not turn an IGD's faults into back-to-back requests */
                igd_back_off(g);
                return;
        }
        g->unanswered = 0;
        if (g->byebye && !again)
                byebye_unconfirmed(g);
        if (!gupnp_service_proxy_action_get_result(op->action, &e, "NewExternalIPAddress", G_TYPE_STRING, &ip,
                                                   NULL) ||
            pcpd_upnp_parse_ipv4(ip, &addr) < 0 || !pcpd_upnp_external_addr_ok(&addr)) {
                /* an IGD without a WAN address (not connected yet) is not usable */
                g_debug("upnp: %s has no usable external address (%s)", g->udn, ip ? ip : "none");
                if (!g->usable)
                        igd_back_off(g);
                else
                        igd_schedule_external(g, again ? igd_event_delay_ms(g)
                                                       : (uint64_t) g->u->config.external_check_interval_s * 1000);
                return;
        }
        g->not_before = 0;
        if (!again && g->event_pending) {
                /* (an answer asked before the event came is not the one that confirms it:
                 * then again is set, and the next answer is) */
                g->event_pending = false;
                if (memcmp(&g->event_addr, &addr, sizeof(addr)) != 0) {
                        char said[INET6_ADDRSTRLEN], is[INET6_ADDRSTRLEN];

                        g->u->stats.events_unconfirmed++;
                        addr_to_string(&g->event_addr, said, sizeof(said));
                        addr_to_string(&addr, is, sizeof(is));
                        g_debug("upnp: an event said %s's external address is %s, but it answers %s: event not "
                                "taken; asking again in %d s",
                                g->udn, said, is, EVENT_CHECK_MS / 1000);
                        /* the IGD may not have settled yet (see on_external_ip_notify) */
                        igd_schedule_external(g, EVENT_CHECK_MS);
                }
        }
        igd_schedule_external(g, again ? igd_event_delay_ms(g)
                                       : (uint64_t) g->u->config.external_check_interval_s * 1000);
        igd_set_external(g, &addr);
}

static gboolean igd_timer_cb(void *ud) {
        struct igd *g = ud;

        g_source_unref(g->timer);
        g->timer = NULL;
        if (!g->op)
                igd_ask_external(g);
        else
                g->recheck = true;
        return G_SOURCE_REMOVE;
}

/* GetExternalIPAddress in msec, unless one is armed to come sooner: a check is never
 * moved later (the one armed may be the periodic check, which hints must not push back) */
static void igd_schedule_external(struct igd *g, uint64_t msec) {
        int64_t due = g_get_monotonic_time() + (int64_t) MIN(msec, (uint64_t) G_MAXUINT) * 1000;

        if (g->timer && g->timer_due <= due)
                return;
        source_clear(&g->timer);
        g->timer = timer_new(g->u, msec, igd_timer_cb, g);
        g->timer_due = due;
}

/* GetExternalIPAddress in msec (not before the back-off after a failure), or again once
 * the one in flight is done */
static void igd_check_external(struct igd *g, uint64_t msec) {
        int64_t now = g_get_monotonic_time();

        if (g->op) {
                g->recheck = true;
                return;
        }
        if (g->not_before > now)
                msec = MAX(msec, (uint64_t) ((g->not_before - now + 999) / 1000));
        igd_schedule_external(g, msec);
}

static void on_external_ip_notify(GUPnPServiceProxy *proxy, const char *variable, GValue *value, void *ud) {
        struct igd *g = ud;
        struct in6_addr addr;

        g->u->stats.events++;
        g->sub_failures = 0; /* the subscription works */
        if (!G_VALUE_HOLDS_STRING(value))
                return;
        if (pcpd_upnp_parse_ipv4(g_value_get_string(value), &addr) < 0 || !pcpd_upnp_external_addr_ok(&addr))
                return;
        if (g->info.has_external_addr && memcmp(&g->info.external_addr, &addr, sizeof(addr)) == 0) {
                g->event_pending = false;
                /* An event that says what we know: something else changed, or the address
                 * is changing and this event was made before it settled. miniupnpd makes
                 * one per address added or deleted on its WAN interface (a new address is
                 * added before the old one goes), but it drops a change that comes while
                 * its NOTIFY to us is still unanswered: then the event we get carries the
                 * old address and none follows with the new one. Ask a little later. */
                g->u->stats.event_checks++;
                igd_check_external(g, EVENT_CHECK_MS);
                return;
        }
        /* Another address: asked of the IGD before it is taken. GUPnP 1.6 passes on a
         * NOTIFY from any sender that has the subscription's SID and the next SEQ, both
         * sent in clear on the link, so what an event says is only a hint; the IGD's own
         * answer (over the connection to its control URL) is what pcpd takes, one round
         * trip later. An
         * answer that does not confirm it is counted (events_unconfirmed) and asked once
         * more a little later (miniupnpd makes an event per address added to its WAN
         * interface, and may answer with the old one until the old one goes). Events ask
         * at most once per EVENT_GAP_MS, however many come. */
        g->event_pending = true;
        g->event_addr = addr;
        igd_check_external(g, igd_event_delay_ms(g));
}

static gboolean resubscribe_cb(void *ud) {
        struct igd *g = ud;

        g_source_unref(g->resubscribe);
        g->resubscribe = NULL;
        g_debug("upnp: subscribing to %s's events again", g->udn);
        push_ctx(g->u);
        gupnp_service_proxy_set_subscribed(g->proxy, TRUE);
        pop_ctx(g->u);
        return G_SOURCE_REMOVE;
}

/* GUPnP gave up on the event subscription (SUBSCRIBE or its renewal refused or
 * unanswered) and is unsubscribed: no event comes until we SUBSCRIBE again. */
static void on_subscription_lost(GUPnPServiceProxy *proxy, GError *error, void *ud) {
        struct igd *g = ud;
        pcpd_upnp *u = g->u;
        uint64_t wait;

        u->stats.subscriptions_lost++;
        if (g_error_matches(error, GUPNP_SERVER_ERROR, GUPNP_SERVER_ERROR_INVALID_URL)) {
                /* nothing to subscribe to: the periodic GetExternalIPAddress is all there is */
                g_message("upnp: no events from %s: %s", g->udn, error->message);
                return;
        }
        wait = backoff_after_ms(&u->config, ++g->sub_failures);
        g_message("upnp: event subscription to %s lost (%s): subscribing again in %" G_GUINT64_FORMAT
                  " s, asking GetExternalIPAddress now",
                  g->udn, error ? error->message : "no reason given", wait / 1000);
        source_clear(&g->resubscribe);
        g->resubscribe = timer_new(u, wait, resubscribe_cb, g);
        /* a change may have been missed while the subscription was down */
        igd_check_external(g, 0);
}

static void igd_free(struct igd *g) {
        if (!g)
                return;
        if (g->byebye) {
                /* its held byebye is no one's now */
                g_clear_pointer(&g->u->held_nt, g_free);
                g_clear_pointer(&g->u->held_usn, g_free);
        }
        op_detach(&g->op);
        source_clear(&g->timer);
        source_clear(&g->resubscribe);
        if (g->lost_handler)
                g_signal_handler_disconnect(g->proxy, g->lost_handler);
        if (g->notify)
                gupnp_service_proxy_remove_notify(g->proxy, "ExternalIPAddress", on_external_ip_notify, g);
        keeper_drop(g->u->keeper, g_steal_pointer(&g->proxy));
        g_free(g->udn);
        g_free(g->service_type);
        g_free(g->location);
        g_free(g);
}

static bool igd_has_6fc(pcpd_upnp *u, const struct in6_addr *addr) {
        char s[INET6_ADDRSTRLEN];

        addr_to_string(addr, s, sizeof(s));
        return g_hash_table_contains(u->hosts_6fc, s);
}

static void select_igd(pcpd_upnp *u) {
        struct igd *best = NULL;

        if (u->active && u->active->usable)
                return;
        for (unsigned i = 0; i < u->igds->len; i++) {
                struct igd *g = g_ptr_array_index(u->igds, i);

                if (!g->usable)
                        continue;
                /* WANIPConnection before WANPPPConnection */
                if (!best || (g_str_has_prefix(g->service_type, SERVICE_IP_PREFIX) &&
                              !g_str_has_prefix(best->service_type, SERVICE_IP_PREFIX)))
                        best = g;
        }
        if (!best)
                return;
        u->active = best;
        best->info.has_ipv6_firewall = igd_has_6fc(u, &best->info.addr);
        source_clear(&u->search_timer);
        g_debug("upnp: using %s (%s) on %s", best->udn, best->service_type, u->ifname);
        kick_all(u);
        emit_igd(u, &best->info);
}

/* "urn:...:WANIPConnection:1" and ":2" are the same service */
static bool same_service(const char *a, const char *b) {
        const char *ca = strrchr(a, ':'), *cb = strrchr(b, ':');

        return ca && cb && ca - a == cb - b && strncmp(a, b, (size_t) (ca - a)) == 0;
}

/* the host of a URL from the description, which must be the LOCATION's host */
static bool url_on_host(pcpd_upnp *u, const char *url, const struct in6_addr *host) {
        struct in6_addr a;

        return pcpd_upnp_parse_url(url, u->family, &a, NULL) == 0 && memcmp(&a, host, sizeof(a)) == 0;
}

static void on_service_available(GUPnPControlPoint *cp, GUPnPServiceProxy *proxy, void *ud) {
        pcpd_upnp *u = ud;
        GUPnPServiceInfo *info = GUPNP_SERVICE_INFO(proxy);
        const char *location = gupnp_service_info_get_location(info);
        const char *type = gupnp_service_info_get_service_type(info);
        const char *udn = gupnp_service_info_get_udn(info);
        g_autofree char *control = gupnp_service_info_get_control_url(info);
        g_autofree char *events = gupnp_service_info_get_event_subscription_url(info);
        struct in6_addr host;
        uint16_t port;
        struct igd *g;

        /* (the SSDP check took only such a USN: this is the same check, where GUPnP hands
         * them over, as they are logged and put in events) */
        if (!location || !type || !udn || pcpd_upnp_parse_url(location, u->family, &host, &port) < 0 ||
            !g_hash_table_contains(u->locations, location) || !pcpd_upnp_udn_ok(udn, strlen(udn)) ||
            pcpd_upnp_service_type_kind(type) == PCPD_UPNP_SERVICE_NONE) {
                u->stats.services_refused++;
                return;
        }
        if (pcpd_upnp_service_type_kind(type) == PCPD_UPNP_SERVICE_IPV6FC) {
                char s[INET6_ADDRSTRLEN];

                addr_to_string(&host, s, sizeof(s));
                if (g_hash_table_size(u->hosts_6fc) < PCPD_UPNP_MAX_LOCATIONS)
                        g_hash_table_add(u->hosts_6fc, g_strdup(s));
                if (u->active && memcmp(&u->active->info.addr, &host, sizeof(host)) == 0 &&
                    !u->active->info.has_ipv6_firewall) {
                        u->active->info.has_ipv6_firewall = true;
                        emit_igd(u, &u->active->info);
                }
                return;
        }
        /* control and event URLs on the LOCATION's host, nowhere else */
        if (!control || !url_on_host(u, control, &host) || (events && !url_on_host(u, events, &host))) {
                g_debug("upnp: ignoring %s at %s: its control or event URL is on another host", type, location);
                u->stats.services_refused++;
                return;
        }
        for (unsigned i = 0; i < u->igds->len; i++) {
                struct igd *old = g_ptr_array_index(u->igds, i);

                if (old->proxy == proxy)
                        return;
                /* The same service (same UDN, or the same address) at a new LOCATION: the
                 * IGD restarted (new HTTP port, maybe a new UUID). GUPnP does not always
                 * say that the old one went away (it looks the old proxy up by the
                 * byebye's service version, which may differ from the one it was found
                 * with), so the new one replaces it here; the mappings are checked once
                 * it answers. */
                if ((g_str_equal(old->udn, udn) || memcmp(&old->info.addr, &host, sizeof(host)) == 0) &&
                    same_service(old->service_type, type)) {
                        g_debug("upnp: %s (%s) re-announced at %s", udn, type, location);
                        igd_remove(u, old);
                        break;
                }
        }
        if (u->igds->len >= PCPD_UPNP_MAX_IGDS)
                return;

        g = g_new0(struct igd, 1);
        g->u = u;
        g->proxy = g_object_ref(proxy);
        g->udn = g_strndup(udn, PCPD_UPNP_MAX_FIELD);
        g->service_type = g_strndup(type, PCPD_UPNP_MAX_FIELD);
        g->location = g_strdup(location);
        g->info.present = true;
        g->info.addr = host;
        g->info.port = port;
        g->info.udn = g->udn;
        g->info.service_type = g->service_type;
        g_ptr_array_add(u->igds, g);

        push_ctx(u);
        if (events) {
                gupnp_service_proxy_add_notify(proxy, "ExternalIPAddress", G_TYPE_STRING, on_external_ip_notify, g);
                g->notify = true;
                g->lost_handler = g_signal_connect(proxy, "subscription-lost", G_CALLBACK(on_subscription_lost), g);
                gupnp_service_proxy_set_subscribed(proxy, TRUE);
        }
        pop_ctx(u);
        igd_ask_external(g);
}

/*
 * Every NOTIFY that reaches our HTTP server, whether or not GUPnP passes it on: GUPnP
 * 1.6 answers 200 to and drops a NOTIFY that comes before it has read the SUBSCRIBE's
 * answer (no SID yet; miniupnpd sends the initial event right after that answer), and
 * on the next one, whose SEQ then looks like a gap, it subscribes again without
 * emitting it; the new subscription's initial event can race the same way. So a NOTIFY
 * is taken as a hint: GetExternalIPAddress a little later.
 *
 * Only from an IGD's own address (its LOCATION's host, where its control and event URLs
 * are too): anyone on the link can send NOTIFYs, on any path and with any SID, and
 * GUPnP's request-finished comes for all of them (its 412 answers included). The check
 * asked never comes later than one already armed (igd_schedule_external), nor before the
 * back-off after a failure (igd_check_external), so no sender can delay or hasten it much.
 */
static void on_server_request(SoupServer *server, SoupServerMessage *msg, void *ud) {
        pcpd_upnp *u = ud;
        const char *from = soup_server_message_get_remote_host(msg);
        struct in6_addr sender;
        bool taken = false;

        if (g_strcmp0(soup_server_message_get_method(msg), "NOTIFY") != 0)
                return;
        u->stats.notifies++;
        if (from && addr_from_string(from, &sender)) {
                for (unsigned i = 0; i < u->igds->len; i++) {
                        struct igd *g = g_ptr_array_index(u->igds, i);

                        if (memcmp(&g->info.addr, &sender, sizeof(sender)) != 0)
                                continue;
                        taken = true;
                        if (g->notify && g->usable)
                                igd_check_external(g, EVENT_CHECK_MS);
                }
        }
        if (!taken) {
                u->stats.notifies_ignored++;
                g_debug("upnp: NOTIFY from %s, which is no IGD's address: ignored", from ? from : "(unknown)");
        }
}

static gboolean search_timer_cb(void *ud);
static void deferred_schedule(pcpd_upnp *u);
static void deferred_clear(pcpd_upnp *u);
static bool cache_control_plain(const char *cc);

/* no IGD left: search (M-SEARCH) now and every search_interval_s until one answers */
static void search_again(pcpd_upnp *u) {
        if (u->search_timer)
                return;
        search_timer_cb(u);
        u->search_timer = timer_new(u, (uint64_t) u->config.search_interval_s * 1000, search_timer_cb, u);
}

static void igd_remove(pcpd_upnp *u, struct igd *g) {
        bool was_active = u->active == g;
        pcpd_upnp_igd_info gone;

        g_ptr_array_remove_fast(u->igds, g);
        if (was_active) {
                GHashTableIter it;
                void *v;

                u->active = NULL;
                /* requests in flight on it are lost: the mappings try again on the next IGD */
                g_hash_table_iter_init(&it, u->mappings);
                while (g_hash_table_iter_next(&it, NULL, &v)) {
                        struct mapping *m = v;

                        if (m->op) {
                                op_detach(&m->op);
                                mapping_schedule(m, 0);
                        }
                }
        }
        gone = g->info;
        gone.present = false;
        gone.udn = NULL;
        gone.service_type = NULL;
        if (was_active) {
                g_autofree char *udn = g_strdup(g->udn), *type = g_strdup(g->service_type);

                gone.udn = udn;
                gone.service_type = type;
                igd_free(g);
                select_igd(u);
                if (!u->active) {
                        search_again(u);
                        deferred_schedule(u);
                        emit_igd(u, &gone);
                        kick_all(u);
                }
                return;
        }
        igd_free(g);
}

static void on_service_unavailable(GUPnPControlPoint *cp, GUPnPServiceProxy *proxy, void *ud) {
        pcpd_upnp *u = ud;

        for (unsigned i = 0; i < u->igds->len; i++) {
                struct igd *g = g_ptr_array_index(u->igds, i);

                if (g->proxy == proxy) {
                        g_debug("upnp: %s (%s) went away", g->udn, g->service_type);
                        igd_remove(u, g);
                        return;
                }
        }
}

/* ------------------------------------------------------------------ SSDP and HTTP checks */

static bool location_in_use(pcpd_upnp *u, const char *location) {
        for (unsigned i = 0; i < u->igds->len; i++)
                if (g_str_equal(((struct igd *) g_ptr_array_index(u->igds, i))->location, location))
                        return true;
        return false;
}

/* is udn (udn_len octets, not terminated) the UDN of g? */
static bool udn_is(const struct igd *g, const char *udn, size_t udn_len) {
        return strlen(g->udn) == udn_len && strncmp(g->udn, udn, udn_len) == 0;
}

static bool udn_in_use(pcpd_upnp *u, const char *udn) {
        for (unsigned i = 0; i < u->igds->len; i++)
                if (g_str_equal(((struct igd *) g_ptr_array_index(u->igds, i))->udn, udn))
                        return true;
        return false;
}

/* Room in a table of known strings (LOCATIONs or UDNs) for one more: at most
 * PCPD_UPNP_MAX_LOCATIONS; when full, the oldest one no service uses any more makes room
 * (an IGD restarted on a new port). false: all are in use. */
static bool known_make_room(pcpd_upnp *u, GHashTable *table, GQueue *order,
                            bool (*in_use)(pcpd_upnp *u, const char *s)) {
        GList *l;

        if (g_hash_table_size(table) < PCPD_UPNP_MAX_LOCATIONS)
                return true;
        for (l = order->head; l; l = l->next)
                if (!in_use(u, l->data))
                        break;
        if (!l)
                return false;
        g_hash_table_remove(table, l->data); /* frees the string */
        g_queue_delete_link(order, l);
        return true;
}

static void known_add(GHashTable *table, GQueue *order, const char *str, const char *value) {
        char *s;

        if (g_hash_table_contains(table, str)) {
                /* (the key kept is the one in order; the one passed is freed) */
                if (value)
                        g_hash_table_insert(table, g_strdup(str), g_strdup(value));
                return;
        }
        s = g_strdup(str);
        g_hash_table_insert(table, s, value ? g_strdup(value) : NULL);
        g_queue_push_tail(order, s);
}

/* An SSDP message for our service types refused: it loses what GSSDP's browser needs
 * (LOCATION and USN), so that it is neither fetched nor cached nor taken for a byebye.
 * Counted; logged with the count at most once per REFUSED_LOG_INTERVAL_S, never per
 * datagram (anyone on the link can send them). why is a constant; from_ip was printed
 * by gssdp from the socket address. */
static void ssdp_refuse(pcpd_upnp *u, SoupMessageHeaders *headers, const char *from_ip, const char *why) {
        int64_t now = g_get_monotonic_time();

        soup_message_headers_remove(headers, "Location");
        soup_message_headers_remove(headers, "USN");
        u->stats.ssdp_refused++;
        u->refused_unlogged++;
        if (u->refused_logged_at != 0 && now - u->refused_logged_at < REFUSED_LOG_INTERVAL_S * USEC_PER_SEC)
                return;
        g_message("upnp: %" G_GUINT64_FORMAT " SSDP message%s on %s refused since %s, the last from %s: %s (next "
                  "count in %d s at the earliest)",
                  u->refused_unlogged, u->refused_unlogged == 1 ? "" : "s", u->ifname ? u->ifname : "?",
                  u->refused_logged_at ? "the last count" : "start", from_ip ? from_ip : "?", why,
                  REFUSED_LOG_INTERVAL_S);
        u->refused_unlogged = 0;
        u->refused_logged_at = now;
}

/* the sender may speak for an IGD here: on the interface's network, the gateway if one
 * was given */
static bool ssdp_sender_ok(pcpd_upnp *u, GSSDPClient *client, const char *from_ip, guint from_port,
                           struct in6_addr *ret) {
        g_autoptr(GInetAddress) ia = NULL;
        g_autoptr(GSocketAddress) sa = NULL;

        if (!from_ip || !addr_from_string(from_ip, ret) || !pcpd_upnp_addr_is_unicast(ret))
                return false;
        ia = g_inet_address_new_from_string(from_ip);
        sa = ia ? g_inet_socket_address_new(ia, (guint16) from_port) : NULL;
        if (!sa || !gssdp_client_can_reach(client, G_INET_SOCKET_ADDRESS(sa)))
                return false;
        return !u->has_gateway || memcmp(ret, &u->gateway, sizeof(*ret)) == 0;
}

/* A byebye that passed the checks. One of the IGD in use (its UDN, the same service) is
 * a hint only (a byebye is one datagram, its source forgeable on the link): it is held
 * back from GSSDP, and GetExternalIPAddress is asked, no sooner than an event would
 * (EVENT_GAP_MS after the last one, after the back-off of a failure). Unanswered, the
 * byebye is passed on (igd_byebye_confirmed); answered, dropped (byebye_unconfirmed). */
static void ssdp_byebye(pcpd_upnp *u, SoupMessageHeaders *headers, const char *nt, const char *usn,
                        size_t udn_len, const char *usn_type) {
        struct igd *g = u->active;

        if (!g || !udn_is(g, usn, udn_len) || !same_service(g->service_type, usn_type))
                return; /* GSSDP and GUPnP drop that service (on_service_unavailable) */
        u->stats.byebyes_held++;
        g_free(u->held_nt);
        g_free(u->held_usn);
        u->held_nt = g_strdup(nt);
        u->held_usn = g_strdup(usn);
        soup_message_headers_remove(headers, "USN"); /* (frees usn) */
        if (!g->byebye)
                g_debug("upnp: %s said byebye: asking GetExternalIPAddress before it is dropped", g->udn);
        g->byebye = true;
        igd_check_external(g, igd_event_delay_ms(g));
}

/* The IGD in use said byebye and left GetExternalIPAddress unanswered: the held byebye
 * is passed on to GSSDP (so that its cache forgets the service and finds it again when
 * it comes back at the same LOCATION), and the IGD is dropped. */
static void igd_byebye_confirmed(struct igd *g) {
        pcpd_upnp *u = g->u;
        g_autofree char *nt = g_steal_pointer(&u->held_nt), *usn = g_steal_pointer(&u->held_usn);

        g_debug("upnp: %s said byebye and does not answer: dropping it", g->udn);
        g->byebye = false;
        if (nt && usn && u->gctx) {
                SoupMessageHeaders *h = soup_message_headers_new(SOUP_MESSAGE_HEADERS_REQUEST);
                char from[INET6_ADDRSTRLEN];

                addr_to_string(&g->info.addr, from, sizeof(from));
                soup_message_headers_append(h, "NT", nt);
                soup_message_headers_append(h, "NTS", "ssdp:byebye");
                soup_message_headers_append(h, "USN", usn);
                u->replaying = true;
                push_ctx(u);
                /* GUPnP's service-proxy-unavailable may free g (on_service_unavailable) */
                g_signal_emit_by_name(u->gctx, "message-received", from, (guint) SSDP_PORT, (int) SSDP_ANNOUNCEMENT, h);
                pop_ctx(u);
                u->replaying = false;
                soup_message_headers_unref(h);
        }
        /* still there when GUPnP did not find the proxy by that USN (see on_service_available) */
        for (unsigned i = 0; i < u->igds->len; i++)
                if (g_ptr_array_index(u->igds, i) == g) {
                        igd_remove(u, g);
                        break;
                }
}

static void byebye_unconfirmed(struct igd *g) {
        pcpd_upnp *u = g->u;

        g->byebye = false;
        u->stats.byebyes_unconfirmed++;
        g_clear_pointer(&u->held_nt, g_free);
        g_clear_pointer(&u->held_usn, g_free);
        g_debug("upnp: %s said byebye but answers: byebye not taken", g->udn);
}

static void deferred_free(struct deferred *d) {
        g_clear_pointer(&d->headers, soup_message_headers_unref);
        g_clear_pointer(&d->from, g_free);
}

static void deferred_clear(pcpd_upnp *u) {
        source_clear(&u->deferred_src);
        for (size_t i = 0; i < G_N_ELEMENTS(u->deferred); i++)
                deferred_free(&u->deferred[i]);
}

/* An announcement (or search answer) that passed every check but the IGD in use: kept,
 * the last one of each service kind only, so that when that IGD is dropped the other device (an IGD restarted
 * with a new UUID, as miniupnpd does) is found at once and not at the next search or
 * announcement. It goes through every check again then (a token, too). */
static void deferred_keep(pcpd_upnp *u, int type, const char *from_ip, guint from_port, const char *target,
                          const char *usn, const char *location, SoupMessageHeaders *headers) {
        const char *cc = soup_message_headers_get_one(headers, "Cache-Control");
        SoupMessageHeaders *h = soup_message_headers_new(SOUP_MESSAGE_HEADERS_REQUEST);
        struct deferred *d = &u->deferred[pcpd_upnp_service_type_kind(target) - 1]; /* (not NONE here) */

        soup_message_headers_append(h, type == SSDP_ANNOUNCEMENT ? "NT" : "ST", target);
        if (type == SSDP_ANNOUNCEMENT)
                soup_message_headers_append(h, "NTS", "ssdp:alive");
        soup_message_headers_append(h, "USN", usn);
        soup_message_headers_append(h, "Location", location);
        soup_message_headers_append(h, "Cache-Control", cache_control_plain(cc) ? cc : "max-age=1800");
        deferred_free(d);
        d->headers = h;
        d->from = g_strdup(from_ip);
        d->port = from_port;
        d->type = type;
}

static gboolean deferred_cb(void *ud) {
        pcpd_upnp *u = ud;

        g_source_unref(g_steal_pointer(&u->deferred_src));
        for (size_t i = 0; i < G_N_ELEMENTS(u->deferred); i++) {
                struct deferred d = u->deferred[i];

                u->deferred[i] = (struct deferred) {};
                if (d.headers && !u->active && u->gctx) {
                        g_debug("upnp: taking an announcement from %s refused while the last IGD was in use", d.from);
                        push_ctx(u);
                        g_signal_emit_by_name(u->gctx, "message-received", d.from, d.port, d.type, d.headers);
                        pop_ctx(u);
                }
                deferred_free(&d);
        }
        return G_SOURCE_REMOVE;
}

/* from the loop: igd_remove() may run inside GSSDP's own emission of that signal */
static void deferred_schedule(pcpd_upnp *u) {
        if (!u->deferred_src)
                u->deferred_src = timer_new(u, 0, deferred_cb, u);
}

/* "max-age=N" (spaces around '=' allowed), N of 1 to 6 digits: what GSSDP's sscanf("max-age
 * = %d") takes without a word. Anything else GSSDP logs with its text (as an Expires
 * header it cannot use, or a missing one), once per datagram. */
static bool cache_control_plain(const char *cc) {
        size_t n;

        if (!cc || strncmp(cc, "max-age", 7) != 0)
                return false;
        cc += 7 + strspn(cc + 7, " ");
        if (*cc++ != '=')
                return false;
        cc += strspn(cc, " ");
        n = strspn(cc, "0123456789");
        return n >= 1 && n <= 6 && cc[n] == '\0';
}

/* Runs before GSSDP's resource browsers (connected first); see "Discovery and safety" in
 * pcpd-upnp.h. */
static void on_ssdp_message(GSSDPClient *client, const char *from_ip, guint from_port, int type,
                            SoupMessageHeaders *headers, void *ud) {
        pcpd_upnp *u = ud;
        const char *target, *nts, *usn, *usn_type = NULL, *location;
        g_autofree char *udn = NULL;
        size_t udn_len = 0;
        struct in6_addr sender;
        bool known;

        if (u->replaying || type == SSDP_DISCOVERY_REQUEST || !headers)
                return;
        soup_message_headers_remove(headers, "AL"); /* alternative locations: never used */
        /* (first: the pointers below are into headers, which this changes) */
        if (!cache_control_plain(soup_message_headers_get_one(headers, "Cache-Control"))) {
                /* GSSDP's default, without its warning carrying the sender's text */
                soup_message_headers_replace(headers, "Cache-Control", "max-age=1800");
                soup_message_headers_remove(headers, "Expires");
        }
        target = soup_message_headers_get_one(headers, type == SSDP_ANNOUNCEMENT ? "NT" : "ST");
        if (pcpd_upnp_service_type_kind(target) == PCPD_UPNP_SERVICE_NONE) {
                /* not one of ours (other devices' announcements): no browser of ours takes it,
                 * whatever GSSDP's own match says; not counted */
                soup_message_headers_remove(headers, "Location");
                soup_message_headers_remove(headers, "USN");
                return;
        }
        usn = soup_message_headers_get_one(headers, "USN");
        if (pcpd_upnp_parse_usn(usn, &udn_len, &usn_type) == PCPD_UPNP_SERVICE_NONE) {
                ssdp_refuse(u, headers, from_ip, "its USN is not uuid:<printable ASCII>::<a WAN service type>");
                return;
        }
        if (!ssdp_sender_ok(u, client, from_ip, from_port, &sender)) {
                ssdp_refuse(u, headers, from_ip,
                            u->has_gateway ? "not from the gateway" : "not from a unicast address of this network");
                return;
        }
        nts = type == SSDP_ANNOUNCEMENT ? soup_message_headers_get_one(headers, "NTS") : NULL;
        if (nts && g_str_has_prefix(nts, "ssdp:byebye")) {
                ssdp_byebye(u, headers, target, usn, udn_len, usn_type);
                return;
        }
        if (nts && !g_str_has_prefix(nts, "ssdp:alive"))
                return; /* ssdp:update: GSSDP only reports it (nothing fetched, nothing cached) */
        location = soup_message_headers_get_one(headers, "Location");
        if (!location)
                return; /* GSSDP drops it */
        if (pcpd_upnp_check_location(location, u->family, &sender) < 0) {
                ssdp_refuse(u, headers, from_ip, "its LOCATION is not http://<the sender's address>[:port]/...");
                return;
        }
        /* a device we know (its UDN: GSSDP keeps at most one entry per service type of it,
         * 3 here) at the LOCATION it was taken with: nothing new is fetched */
        udn = g_strndup(usn, udn_len);
        known = g_hash_table_contains(u->locations, location) &&
                g_strcmp0(g_hash_table_lookup(u->udns, udn), location) == 0;
        if (known)
                return;
        if (u->active && u->active->usable && !udn_is(u->active, usn, udn_len)) {
                deferred_keep(u, type, from_ip, from_port, target, usn, location, headers);
                ssdp_refuse(u, headers, from_ip, "another device than the IGD in use");
                return;
        }
        if (!pcpd_upnp_bucket_take(&u->new_locations, (uint64_t) g_get_monotonic_time(), PCPD_UPNP_LOCATION_BURST,
                                   (uint64_t) u->config.location_interval_s * USEC_PER_SEC)) {
                u->stats.ssdp_limited++;
                ssdp_refuse(u, headers, from_ip, "too many new LOCATIONs or devices (rate bound)");
                return;
        }
        if (!known_make_room(u, u->locations, &u->location_order, location_in_use) ||
            !known_make_room(u, u->udns, &u->udn_order, udn_in_use)) {
                ssdp_refuse(u, headers, from_ip, "every LOCATION kept is in use");
                return;
        }
        known_add(u->locations, &u->location_order, location, NULL);
        known_add(u->udns, &u->udn_order, udn, location);
}

static bool host_allowed(pcpd_upnp *u, GUri *uri) {
        GHashTableIter it;
        void *k;
        struct in6_addr a;
        const char *host = uri ? g_uri_get_host(uri) : NULL;

        if (!host || !addr_from_string(host, &a))
                return false;
        g_hash_table_iter_init(&it, u->locations);
        while (g_hash_table_iter_next(&it, &k, NULL)) {
                struct in6_addr l;

                if (pcpd_upnp_parse_url(k, u->family, &l, NULL) == 0 && memcmp(&l, &a, sizeof(a)) == 0)
                        return true;
        }
        return false;
}

static void abort_session(pcpd_upnp *u, SoupSession *session) {
        if (u) {
                u->stats.bodies_refused++;
                u->body_abort = true;
        }
        soup_session_abort(session);
}

/* An action's answer broke the bound: every action in flight is cancelled, as
 * soup_session_abort() would, but not a SUBSCRIBE that may be in flight with them
 * (cancelled, GUPnP 1.6.3 loses its GError: see struct keeper) */
static void abort_actions(pcpd_upnp *u) {
        u->stats.bodies_refused++;
        u->body_abort = true;
        for (GList *l = u->in_flight.head, *next; l; l = next) {
                next = l->next;
                g_cancellable_cancel(((struct op *) l->data)->cancel);
        }
}

static void on_got_headers(SoupMessage *msg, void *ud) {
        GUPnPContext *gctx = ud;
        pcpd_upnp *u = g_object_get_data(G_OBJECT(gctx), "pcpd-upnp");
        const char *method = soup_message_get_method(msg);
        SoupMessageHeaders *h = soup_message_get_response_headers(msg);
        SoupEncoding enc;

        if (!g_str_equal(method, "GET") && !g_str_equal(method, "POST") && !g_str_equal(method, "M-POST"))
                return; /* GENA SUBSCRIBE/UNSUBSCRIBE: no body expected */
        enc = soup_message_headers_get_encoding(h);
        if (enc == SOUP_ENCODING_NONE ||
            (enc == SOUP_ENCODING_CONTENT_LENGTH && soup_message_headers_get_content_length(h) <= PCPD_UPNP_MAX_BODY))
                return;
        g_debug("upnp: refusing an answer from %s: %s", g_uri_get_host(soup_message_get_uri(msg)),
                enc == SOUP_ENCODING_CONTENT_LENGTH ? "longer than the bound" : "no Content-Length");
        if (u && !g_str_equal(method, "GET"))
                abort_actions(u);
        else
                abort_session(u, gupnp_context_get_session(gctx));
}

static void on_request_queued(SoupSession *session, SoupMessage *msg, void *ud) {
        GUPnPContext *gctx = ud;
        pcpd_upnp *u = g_object_get_data(G_OBJECT(gctx), "pcpd-upnp");

        g_signal_connect_object(msg, "got-headers", G_CALLBACK(on_got_headers), gctx, 0);
        /* belt and braces: every URL was checked before it got here */
        if (u && !host_allowed(u, soup_message_get_uri(msg))) {
                g_warning("upnp: refusing a request to %s, not an IGD address", g_uri_get_host(soup_message_get_uri(msg)));
                abort_session(u, session);
        }
}

/* ------------------------------------------------------------------ interface */

static gboolean search_timer_cb(void *ud) {
        pcpd_upnp *u = ud;

        for (size_t i = 0; i < N_TARGETS; i++)
                if (u->cps[i])
                        gssdp_resource_browser_rescan(GSSDP_RESOURCE_BROWSER(u->cps[i]));
        return G_SOURCE_CONTINUE;
}

static void interface_clear(pcpd_upnp *u) {
        bool had_active = u->active != NULL;
        pcpd_upnp_igd_info gone = {};

        if (had_active) {
                gone = u->active->info;
                gone.present = false;
                gone.udn = NULL;
                gone.service_type = NULL;
        }
        u->active = NULL;
        while (u->igds->len > 0) {
                struct igd *g = g_ptr_array_steal_index_fast(u->igds, u->igds->len - 1);
                igd_free(g);
        }
        source_clear(&u->search_timer);
        for (size_t i = 0; i < N_TARGETS; i++) {
                if (!u->cps[i])
                        continue;
                g_signal_handlers_disconnect_by_data(u->cps[i], u);
                gssdp_resource_browser_set_active(GSSDP_RESOURCE_BROWSER(u->cps[i]), FALSE);
                keeper_drop(u->keeper, g_steal_pointer(&u->cps[i]));
        }
        if (u->gctx) {
                g_signal_handlers_disconnect_by_data(gupnp_context_get_server(u->gctx), u);
                g_signal_handlers_disconnect_by_data(u->gctx, u);
                g_object_set_data(G_OBJECT(u->gctx), "pcpd-upnp", NULL);
                keeper_drop(u->keeper, g_steal_pointer(&u->gctx));
                keeper_unref(g_steal_pointer(&u->keeper));
        }
        g_queue_clear(&u->location_order);
        g_hash_table_remove_all(u->locations);
        g_queue_clear(&u->udn_order);
        g_hash_table_remove_all(u->udns);
        g_clear_pointer(&u->held_nt, g_free);
        g_clear_pointer(&u->held_usn, g_free);
        deferred_clear(u);
        g_hash_table_remove_all(u->hosts_6fc);
        g_clear_pointer(&u->ifname, g_free);
        if (had_active)
                emit_igd(u, &gone);
}

int pcpd_upnp_set_interface(pcpd_upnp *u, const char *ifname, int family, const struct in6_addr *gateway) {
        g_autoptr(GError) error = NULL;
        GHashTableIter it;
        void *v;
        SoupSession *session;

        g_return_val_if_fail(u, -EINVAL);
        if (!ifname || !*ifname || strlen(ifname) >= 16)
                return -EINVAL;
        if (family != AF_INET)
                return -EAFNOSUPPORT;
        {
                /* the SSDP check needs gssdp's (private) "message-received" signal */
                void *klass = g_type_class_ref(GSSDP_TYPE_CLIENT);
                guint sig = g_signal_lookup("message-received", GSSDP_TYPE_CLIENT);
                GSignalQuery q = {};

                if (sig)
                        g_signal_query(sig, &q);
                g_type_class_unref(klass);
                if (sig == 0 || q.n_params != 4 || q.return_type != G_TYPE_NONE)
                        return -ENOTSUP;
        }

        interface_clear(u);
        /* requests in flight went to the old IGD */
        g_hash_table_iter_init(&it, u->mappings);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                struct mapping *m = v;
                op_detach(&m->op);
        }

        u->family = family;
        u->has_gateway = gateway != NULL;
        if (gateway)
                u->gateway = *gateway;

        push_ctx(u);
        u->gctx = gupnp_context_new_full(ifname, NULL, 0, GSSDP_UDA_VERSION_1_0, &error);
        if (!u->gctx) {
                pop_ctx(u);
                g_debug("upnp: no UPnP context on %s: %s", ifname, error->message);
                return -ENODEV;
        }
        u->ifname = g_strdup(ifname);
        u->keeper = keeper_new(u, u->gctx);
        g_object_set_data(G_OBJECT(u->gctx), "pcpd-upnp", u);
        session = gupnp_context_get_session(u->gctx);
        g_object_set(session, "timeout", (guint) MAX(1u, (u->config.action_timeout_ms + 999) / 1000), NULL);
        /* no gzip: the Content-Length bound is then the real size */
        soup_session_remove_feature_by_type(session, SOUP_TYPE_CONTENT_DECODER);
        g_signal_connect_object(session, "request-queued", G_CALLBACK(on_request_queued), u->gctx, 0);
        /* before the control points: this handler must run before their browsers' */
        g_signal_connect(u->gctx, "message-received", G_CALLBACK(on_ssdp_message), u);
        g_signal_connect(gupnp_context_get_server(u->gctx), "request-finished", G_CALLBACK(on_server_request), u);

        for (size_t i = 0; i < N_TARGETS; i++) {
                u->cps[i] = gupnp_control_point_new(u->gctx, service_targets[i]);
                g_signal_connect(u->cps[i], "service-proxy-available", G_CALLBACK(on_service_available), u);
                g_signal_connect(u->cps[i], "service-proxy-unavailable", G_CALLBACK(on_service_unavailable), u);
                gssdp_resource_browser_set_active(GSSDP_RESOURCE_BROWSER(u->cps[i]), TRUE);
        }
        pop_ctx(u);

        if (u->config.search_interval_s)
                u->search_timer = timer_new(u, (uint64_t) u->config.search_interval_s * 1000, search_timer_cb, u);
        kick_all(u);
        return 0;
}

/* ------------------------------------------------------------------ API */

int pcpd_upnp_new(GMainContext *context, const pcpd_upnp_config *config, const pcpd_upnp_ops *ops, void *userdata,
                  pcpd_upnp **ret) {
        pcpd_upnp *u;

        g_return_val_if_fail(ret, -EINVAL);
        u = g_new0(pcpd_upnp, 1);
        u->context = g_main_context_ref(context ? context : g_main_context_default());
        if (config)
                u->config = *config;
        if (!u->config.action_timeout_ms)
                u->config.action_timeout_ms = 10000;
        if (!u->config.check_interval_s)
                u->config.check_interval_s = 300;
        if (!u->config.external_check_interval_s)
                u->config.external_check_interval_s = 300;
        if (!u->config.retry_min_s)
                u->config.retry_min_s = 5;
        if (!u->config.retry_max_s)
                u->config.retry_max_s = 600;
        if (!u->config.search_interval_s)
                u->config.search_interval_s = 30;
        if (!u->config.location_interval_s)
                u->config.location_interval_s = 30;
        u->config.retry_max_s = MAX(u->config.retry_max_s, u->config.retry_min_s);
        if (ops)
                u->ops = *ops;
        u->userdata = userdata;
        u->family = AF_INET;
        u->next_id = 1;
        u->mappings = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, (GDestroyNotify) mapping_free);
        u->locations = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        u->udns = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        u->hosts_6fc = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        u->igds = g_ptr_array_new();
        *ret = u;
        return 0;
}

pcpd_upnp *pcpd_upnp_free(pcpd_upnp *u) {
        int64_t deadline;

        if (!u)
                return NULL;
        u->ops.event = NULL;
        g_hash_table_remove_all(u->mappings);
        interface_clear(u);
        /* the cancelled requests complete on the context: wait for them (they point at u) */
        deadline = g_get_monotonic_time() + 5 * USEC_PER_SEC;
        while (u->n_ops > 0 && g_get_monotonic_time() < deadline)
                if (!g_main_context_iteration(u->context, FALSE))
                        g_usleep(1000);
        g_warn_if_fail(u->n_ops == 0);
        /* and what GUPnP's disposal left on it (closing the event server's connections) */
        for (unsigned i = 0; i < 1000 && g_main_context_iteration(u->context, FALSE); i++)
                ;
        g_hash_table_unref(u->mappings);
        g_hash_table_unref(u->locations);
        g_hash_table_unref(u->udns);
        g_hash_table_unref(u->hosts_6fc);
        g_ptr_array_unref(u->igds);
        g_main_context_unref(u->context);
        g_free(u);
        return NULL;
}

const char *pcpd_upnp_refuse_reason(pcpd_upnp *u, const pcpd_upnp_request *req) {
        if (!req)
                return "No request.";
        if (req->peer)
                return "The router speaks only UPnP-IGD, which cannot create PEER mappings.";
        if (req->n_filters > 0)
                return "The router speaks only UPnP-IGD, which cannot restrict a mapping to remote peers (FILTER).";
        if (req->third_party)
                return "The router speaks only UPnP-IGD, which pcpd uses only for this host's own addresses "
                       "(no THIRD_PARTY mappings).";
        if (req->protocol != IPPROTO_TCP && req->protocol != IPPROTO_UDP)
                return "The router speaks only UPnP-IGD, which maps only TCP and UDP ports.";
        if (req->internal_port == 0)
                return "The router speaks only UPnP-IGD, which cannot map all ports of a protocol at once.";
        if (!IN6_IS_ADDR_V4MAPPED(&req->internal_addr)) {
                if (u && u->active && u->active->info.has_ipv6_firewall)
                        return "The router offers IPv6 pinholes through UPnP-IGD (WANIPv6FirewallControl), "
                               "which pcpd does not support yet.";
                if (u && u->active)
                        return "The router speaks only UPnP-IGD and offers no IPv6 firewall control "
                               "(WANIPv6FirewallControl): IPv6 mappings are not possible through it.";
                return "IPv6 mappings through UPnP-IGD are not supported.";
        }
        return NULL;
}

int pcpd_upnp_add(pcpd_upnp *u, const pcpd_upnp_request *req, uint64_t *ret_id) {
        struct mapping *m;

        g_return_val_if_fail(u && req, -EINVAL);
        if (pcpd_upnp_refuse_reason(u, req))
                return -EOPNOTSUPP;
        if (req->lifetime == 0 || !pcpd_upnp_description_ok(req->description) ||
            !pcpd_upnp_addr_is_unicast(&req->internal_addr))
                return -EINVAL;
        if (g_hash_table_size(u->mappings) >= PCPD_UPNP_MAX_MAPPINGS)
                return -E2BIG;

        m = g_new0(struct mapping, 1);
        m->u = u;
        m->info.id = u->next_id++;
        m->info.state = PCPD_UPNP_PENDING;
        m->info.protocol = req->protocol;
        m->info.internal_addr = req->internal_addr;
        m->info.internal_port = req->internal_port;
        m->info.suggested_external_port = req->suggested_external_port;
        m->upstream_port = req->held_external_port; /* may be held from before a restart */
        m->info.prefer_failure = req->prefer_failure;
        m->info.lifetime_requested = req->lifetime;
        m->lease_try = req->lifetime;
        m->description = g_strdup(req->description ? req->description : "pcpd");
        g_hash_table_insert(u->mappings, &m->info.id, m);
        mapping_schedule(m, 0); /* events only from the loop */
        if (ret_id)
                *ret_id = m->info.id;
        return 0;
}

int pcpd_upnp_remove(pcpd_upnp *u, uint64_t id) {
        struct mapping *m = g_hash_table_lookup(u->mappings, &id);

        if (!m)
                return -ENOENT;
        if (m->removing)
                return 0;
        m->removing = true;
        m->info.deleting = true;
        m->remove_started = g_get_monotonic_time();
        source_clear(&m->timer);
        /* an AddPortMapping in flight may still create the mapping: let it finish (it is
         * bounded by the time-out), then check and delete; anything else is cancelled */
        if (m->op && m->step == STEP_ADD)
                return 0;
        op_detach(&m->op);
        mapping_schedule(m, 0);
        return 0;
}

int pcpd_upnp_remove_record(pcpd_upnp *u, const pcpd_upnp_record *rec, uint64_t *ret_id) {
        struct mapping *m;

        g_return_val_if_fail(u && rec, -EINVAL);
        if ((rec->protocol != IPPROTO_TCP && rec->protocol != IPPROTO_UDP) || rec->external_port == 0 ||
            rec->internal_port == 0 || !IN6_IS_ADDR_V4MAPPED(&rec->internal_addr))
                return -EINVAL;
        if (g_hash_table_size(u->mappings) >= PCPD_UPNP_MAX_MAPPINGS)
                return -E2BIG;
        m = g_new0(struct mapping, 1);
        m->u = u;
        m->info.id = u->next_id++;
        m->info.state = PCPD_UPNP_PENDING;
        m->info.protocol = rec->protocol;
        m->info.internal_addr = rec->internal_addr;
        m->info.internal_port = rec->internal_port;
        m->info.external_port = rec->external_port;
        m->info.permanent = rec->permanent;
        m->info.deleting = true;
        m->upstream_port = rec->external_port;
        m->removing = true;
        m->remove_started = g_get_monotonic_time();
        m->description = g_strdup("");
        g_hash_table_insert(u->mappings, &m->info.id, m);
        mapping_schedule(m, 0);
        if (ret_id)
                *ret_id = m->info.id;
        return 0;
}

int pcpd_upnp_forget(pcpd_upnp *u, uint64_t id) {
        return g_hash_table_remove(u->mappings, &id) ? 0 : -ENOENT;
}

const pcpd_upnp_info *pcpd_upnp_get(pcpd_upnp *u, uint64_t id) {
        struct mapping *m = g_hash_table_lookup(u->mappings, &id);

        return m ? &m->info : NULL;
}

int pcpd_upnp_get_record(pcpd_upnp *u, uint64_t id, pcpd_upnp_record *ret) {
        struct mapping *m = g_hash_table_lookup(u->mappings, &id);

        if (!m)
                return -ENOENT;
        if (!m->info.has_external)
                return -EAGAIN;
        *ret = (pcpd_upnp_record) {
                .protocol = m->info.protocol,
                .external_port = m->info.external_port,
                .internal_addr = m->info.internal_addr,
                .internal_port = m->info.internal_port,
                .permanent = m->info.permanent,
        };
        if (u->active)
                ret->igd_addr = u->active->info.addr;
        return 0;
}

const pcpd_upnp_igd_info *pcpd_upnp_get_igd(pcpd_upnp *u) {
        return u->active ? &u->active->info : NULL;
}

size_t pcpd_upnp_count(pcpd_upnp *u) {
        return g_hash_table_size(u->mappings);
}

size_t pcpd_upnp_n_busy(pcpd_upnp *u) {
        GHashTableIter it;
        void *v;
        size_t n = 0;

        g_hash_table_iter_init(&it, u->mappings);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                struct mapping *m = v;

                if (m->op || m->removing)
                        n++;
        }
        return n;
}

const pcpd_upnp_stats *pcpd_upnp_get_stats(pcpd_upnp *u) {
        return &u->stats;
}
