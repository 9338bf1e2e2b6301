/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcp-engine.h"
#include "pcp-heap.h"
#include "pcp-htable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define SEC 1000ULL
#define MIN_RENEW_GAP (4 * SEC)  /* RFC 6887 §11.2.1: renewals never less than 4 s apart */
/* Retry delays taken from a server's error lifetime are kept within [MIN_ERROR_RETRY,
 * cfg.error_retry_max] (default ERROR_RETRY_MAX). The floor: never a tight loop, whatever
 * the server says (miniupnpd answers every long error with lifetime 0, which gets the
 * class's floor, 30 s or 30 min; a lifetime of 1 s gets 4 s). The cap: a lifetime is 32
 * bits of seconds, and a server (or a forged answer that passed the nonce check) asking for
 * days must not park a mapping, or disable a server, for longer than 30 min; the request
 * is cheap, and the situation (policy, resources) may well have changed by then. */
#define MIN_ERROR_RETRY (4 * SEC)
#define ERROR_RETRY_MAX (30 * 60 * SEC)
#define NATPMP_IRT 250ULL        /* RFC 6886 §3.1 */
/* Granted lifetimes (see grant_problem()). The floor: a grant shorter than the 4 s the
 * engine keeps between two requests of a mapping (MIN_RENEW_GAP, MIN_ERROR_RETRY) runs out
 * before it could be renewed, and 0 means the server holds nothing (RFC 6887 §15: lifetime
 * 0 is a delete); RFC 6887 §15 wants servers to grant at least 120 s. The cap: a server
 * may grant more than asked, but a mapping renewed once in days (or, at 2^32 s, never)
 * is one whose loss (a router restart without ANNOUNCE) nobody notices; renewals are
 * cheap, so the engine renews as if the grant were at most max(asked, 24 h), the longest
 * lifetime RFC 6887 §15 suggests servers grant. */
#define MIN_GRANT_LIFETIME 4U
#define MAX_GRANT_LIFETIME (24U * 3600U)
/* Recreations of all of a server's mappings (its epoch says it lost them, or an
 * ANNOUNCE): at once (RFC 6887 §8.5: promptly), then none for cfg.recreate_interval
 * (5 s). A reset seen within that interval is not lost: it is acted on once, when the
 * interval ends, and as the server keeps claiming losses the interval doubles with each
 * such deferred recreation, up to cfg.recreate_interval_max (320 s). One after the
 * interval ran out (a router really restarted twice, 8 s apart) is acted on at once again,
 * with the 5 s interval. An episode (one log line, pcp_event.repeated) ends when nothing
 * has looked like a reset for EPISODE_QUIET after the interval. A server answering every
 * request with a random epoch made 200 mappings cost 1,928 requests/s without this; with
 * it, 200 at t, t + 5 s, + 15 s, + 35 s ... then every 320 s. */
#define RECREATE_INTERVAL (5 * SEC)
#define RECREATE_INTERVAL_MAX (320 * SEC)
#define EPISODE_QUIET (60 * SEC)
/* a NAT-PMP address notice starts at most one external address request per this */
#define NATPMP_NOTICE_INTERVAL (1 * SEC)
/* a "version not supported" answer to a server that speaks PCP is a doubt, settled by a
 * probe: at most one doubt per VERSION_DOUBT_INTERVAL, and it stands (the server is
 * switched) only if no PCP answer came within 2 × IRT of it (version_answer()) */
#define VERSION_DOUBT_INTERVAL (1 * SEC)
/* an ANNOUNCE to a server not known to speak PCP (unknown, unreachable), or a NAT-PMP
 * notice or answer to an unreachable one, starts at most one ANNOUNCE probe per this
 * (server_hint()) */
#define ANNOUNCE_HINT_INTERVAL (1 * SEC)
/* a first request unanswered this long (and retransmitted this often), with nothing heard
 * from its server meanwhile, fails UNREACHABLE (mapping_timeout()); a server asked
 * anything (server_asking()) and heard nothing from for this long is silent
 * (pcp_server_info.silent) */
#define SILENT_FAIL (20 * SEC)
#define SILENT_FAIL_RETRANSMISSIONS 3
/* An ICMP error counts only if a request went to its server this recently and one is still
 * outstanding (icmp_plausible()): a real one comes one round trip after the datagram it
 * answers (milliseconds on a LAN; 2 s leaves room for a busy event loop), and the
 * retransmission that follows (IRT, 3 s) gets its own. */
#define ICMP_WINDOW (2 * SEC)
#define DEFAULT_MAX_MAPPINGS (131070 * 2)
/* Requests in flight per server (pcp_engine_config.max_in_flight; see the header for what
 * counts). The answers to what is in flight wait in the caller's receive buffer while it
 * works: each costs the buffer its skb truesize, ~768 octets for a 60-80 octet answer on
 * loopback and many NICs (more with some drivers' page fragments), so the default buffer
 * (net.core.rmem_default = rmem_max = 212,992 on a stock kernel; pcpd asks for more, but
 * has no CAP_NET_ADMIN under its unit) holds ~270 of them. 128 is half of that: room for
 * the renewals, deletes and probes that do not wait, and for drivers with a larger
 * truesize; and still ~128 answers per round trip (a LAN round trip of 1 ms: 10,000
 * mappings in ~80 ms). */
#define DEFAULT_MAX_IN_FLIGHT 128
/* the longest retransmission timeout (config.irt, config.mrt): 2^30 ms, 12.4 days */
#define RT_MAX (UINT64_C(1) << 30)

/* The object of type `type` whose member `member` ptr points to. ptr must really point
 * into such an object (the member's type is checked at compile time), so the result is
 * aligned for `type`: __builtin_assume_aligned() says so and yields a void *, and no cast
 * from a less aligned pointer type is left (clang -Wcast-align). */
#define container_of(ptr, type, member)                                                            \
        __extension__({                                                                            \
                _Static_assert(__builtin_types_compatible_p(__typeof__(*(ptr)),                    \
                                                            __typeof__(((type *) NULL)->member)),  \
                               "container_of: ptr does not point to " #type "." #member);          \
                (type *) __builtin_assume_aligned((char *) (ptr) - offsetof(type, member),         \
                                                  _Alignof(type));                                 \
        })

/* ---- timers: two min-heaps (pcp-heap.c), the mappings' and the servers' ----
 *
 * Which heap says what kind of object a timer is in (run_due()): a kind next to each
 * heap item would cost every mapping 4 octets, with its padding 8 (pcp_mapping). */

/* ---- output: what waits to be pulled ----
 *
 * Nothing leaves the engine from inside a call. What a call wants to send or report is a
 * mark on the object concerned: its node in one of two FIFO queues (datagrams, events).
 * pcp_engine_next_datagram() and pcp_engine_next_event() take the oldest mark and build
 * the datagram or the event from the object as it is then. So the queues hold at most one
 * entry per mapping and a few per server, whatever happens (a recreation of 131,070
 * mappings is 131,070 marks in memory the mappings already have, not a queue of buffers
 * that grows with it), two requests for one mapping in one call are one datagram (the
 * later content), and a datagram built while draining goes to the address the server
 * uses by then. */

typedef enum out_kind {
        OUT_MAPPING_REQUEST,     /* its request, or its delete while it is DELETING */
        OUT_SERVER_PROBE,        /* an ANNOUNCE probe */
        OUT_SERVER_NATPMP_ADDR,  /* a NAT-PMP external address request */
        OUT_MAPPING_EVENT,       /* PCP_EVENT_MAPPING */
        OUT_MAPPING_DELETED,     /* PCP_EVENT_MAPPING_DELETED: the mapping is a zombie */
        OUT_SERVER_EVENT,        /* PCP_EVENT_SERVER */
        OUT_SERVER_RECREATED,    /* PCP_EVENT_EPOCH_RESET or PCP_EVENT_RECREATE (one node:
                                  * the kinds fill the three bits; emit_recreated()) */
        OUT_MAPPING_WAITING,     /* out_send in its server's `waiting` queue: a first
                                  * request held back by max_in_flight */
} out_kind;

/* 16 octets, two in every mapping: the node's kind rides in the three low bits of its
 * link to the previous node (nodes are 8-aligned; out_prev(), out_kind_of()). A separate
 * field would make each node 24 octets with its padding. */
typedef struct out_node {
        uintptr_t prev_kind;
        struct out_node *next; /* NULL: not queued */
} out_node;

#define OUT_KIND_MASK ((uintptr_t) 7)
_Static_assert(_Alignof(out_node) > OUT_KIND_MASK, "out_node: no room for the kind in its links");
_Static_assert(OUT_MAPPING_WAITING <= OUT_KIND_MASK, "out_kind: more kinds than bits");

/* circular, with the queue head as sentinel */
typedef struct out_queue {
        out_node head;
} out_queue;

typedef struct pcp_server pcp_server;

/* What few mappings ask for, allocated only when one does (mapping_opt_new()): a
 * suggested external address, a PORT_SET, FILTERs, a DESCRIPTION, and a PEER's remote
 * address. One block: the filters and the description's text follow the struct. */
typedef struct mapping_opt {
        struct in6_addr suggested_external_addr; /* valid if has_suggested */
        struct in6_addr remote_addr;             /* PEER's (mapping_remote_addr()) */
        bool has_suggested;
        uint8_t n_filters;
        pcp_port_set port_set;                   /* valid if the mapping's has_port_set */
        const char *description;                 /* NULL = none; points past filters[] */
        pcp_filter filters[];
} mapping_opt;

/* 232 octets (sizeof is checked below): malloc makes 240 of it (the request and its 8-octet
 * size word, rounded up to 16), where 240 octets made 256. Every mapping has one, 131,070
 * of them are ~30 MiB. What can be derived is not kept (a third party is
 * info.internal_addr; no suggested external address is the zero address of
 * internal_addr's family; the renewal phase is read from the nonce: renew_phase()), what
 * is rare is in `opt` (a PEER's remote address too), the flags are bits, and the timer is
 * a bare heap item (which heap it is in says it is a mapping's: run_due()). */
typedef struct pcp_mapping {
        /* the index nodes keep no key: it is read from info (mapping_id_of() ...), next to
         * them in memory */
        pcp_hnode by_id;
        pcp_mapping_info info;
        pcp_hnode by_nonce;
        pcp_hnode by_port; /* in its server's by_port: (protocol, internal port) */
        pcp_server *server;        /* NULL once deleted (a zombie: see mapping_deleted()) */
        struct pcp_mapping *srv_prev, *srv_next;
        out_node out_send, out_event;
        mapping_opt *opt;          /* NULL = none of the rare options (freed with a zombie) */
        /* the caller's (pcp_mapping_params.userdata, pcp_engine_mapping_set_userdata()),
         * handed back with its events: the caller needs no table of its own from ids to
         * its mappings */
        void *userdata;

        /* protocol state */
        uint64_t last_sent;
        uint64_t granted_at;   /* when granted; while a grant is held (held_port), when it runs out */
        uint32_t rt;           /* current retransmission timeout (ms; < 2^32: cfg.irt and cfg.mrt
                                * are at most RT_MAX); 0 = next send is a first one */
        pcp_heap_item timer;   /* in the engine's `timers`; 4 octets, next to rt */
        uint16_t renew_step;   /* 1, 2, 3...: which renewal window is next (stops at UINT16_MAX;
                                * past 61 only "> 1" matters) */
        uint16_t delete_sent;  /* cfg.delete_attempts is at most UINT16_MAX */
        /* NAT-PMP: the port of a grant held while the server's external address is not
         * known, or not usable (natpmp_hold()); 0 = none (a grant has a port). Active once
         * the address is known (natpmp_set_external()). */
        uint16_t held_port;

        /* the request as asked (the internal address is the third party's if it has one) */
        bool has_third_party : 1;
        bool prefer_failure : 1;
        bool has_port_set : 1; /* opt->port_set */
        bool deleted_upstream : 1; /* a zombie's PCP_EVENT_MAPPING_DELETED says so */
        bool in_flight : 1;    /* holds one of its server's max_in_flight slots (slot_take()) */
        bool ever_sent : 1;    /* a request of it may have reached the server (restored ones:
                                * from before the restart) */
        bool awaiting : 1;     /* a request is outstanding */
        bool recreating : 1;   /* asking again after a (possible) server state loss */
} pcp_mapping;

/* glibc's chunk of a request of n octets is n + 8 rounded up to 16: 232 is the most a
 * 240-octet chunk holds */
_Static_assert(sizeof(void *) != 8 || sizeof(pcp_mapping) <= 232, "pcp_mapping grew past a 240-octet chunk");

struct pcp_server {
        pcp_server_info info;
        pcp_heap_item timer;   /* in the engine's `server_timers` */
        pcp_mapping *mappings; /* list head */
        pcp_htable by_port;    /* its mappings by port_key(): NAT-PMP answers carry no nonce */
        uint64_t epoch_client_ms;
        bool addr_unreachable[PCP_SERVER_MAX_ADDRS];
        bool sticky;           /* an address answered: keep using it */
        uint64_t heard_at;     /* its last answer (0: none yet) */
        /* when the first request sent to it since it was last heard, or since nothing was
         * asked of it any more (server_maybe_done_asking()), went (server_asking());
         * PCP_NEVER: none since. Silent (info.silent) SILENT_FAIL after it. */
        uint64_t asking_since;
        uint32_t n_awaiting;   /* its mappings whose request is outstanding (m->awaiting) */
        uint64_t sent_at;      /* when the last request to it was marked to go (PCP_NEVER: none):
                                * an ICMP error long after it is no answer to it */
        /* server-level actions, each PCP_NEVER when not wanted */
        uint64_t probe_at, probe_rt;
        uint64_t natpmp_addr_at, natpmp_addr_rt;
        /* an external address request went and is not answered yet; natpmp_addr_at alone
         * does not tell: it is also set for one not sent yet (a notice's, held to
         * NATPMP_NOTICE_INTERVAL) and for the next after an answer without an address */
        bool natpmp_addr_out;
        uint64_t natpmp_notice_next; /* the earliest a notice may start an address request */
        uint64_t announce_hint_next; /* the earliest a hint may start a probe (server_hint()) */
        uint64_t reprobe_at;
        bool probing;
        /* a doubt about its version (version_answer()): what it would switch the server to
         * (PCP_SERVER_UNSUPPORTED or PCP_SERVER_NATPMP) at version_doubt_at unless a PCP
         * answer settles it first; version_doubt_next: the earliest a new one may start */
        uint8_t version_doubt;
        uint64_t version_doubt_at, version_doubt_next;
        bool natpmp_addr_unusable; /* its last external address answer named none (0.0.0.0) */

        /* recreations of all its mappings, rate-limited (RECREATE_INTERVAL) */
        bool in_episode;           /* a reset or ANNOUNCE seen, the episode not over */
        bool episode_reported;     /* an EPOCH_RESET event went out in this episode */
        bool episode_told;         /* an EPOCH_RESET or RECREATE event went out in it */
        uint64_t hold_until;       /* no recreation before this time */
        uint64_t recreate_rt;      /* the interval the next recreation holds for */
        uint64_t recreate_at;      /* a recreation deferred to hold_until; PCP_NEVER = none */
        bool pending_reset, pending_announce; /* what the deferred one is for */
        /* An ANNOUNCE or NAT-PMP notice (no nonce: anyone on the link can send one) never
         * moves the epoch; it has the mappings asked again, and their answers tell
         * (announce_looks_reset()). recheck_clean: a recreation for one of them is under way
         * and no answer since it began had a consistent epoch, so a reset the next answer
         * reveals is dealt with by that recreation (check_epoch()): told, not repeated.
         * recheck_untold: that recreation was started at once by one whose epoch looked
         * like a reset, and its event waits for the first answer (EPOCH_RESET if the answer
         * confirms the reset, else RECREATE), so a forged one is never told as a loss. */
        bool recheck_clean, recheck_untold;

        /* output marks; what a queued EPOCH_RESET or RECREATE says (emit_recreated()) */
        out_node out_probe, out_natpmp_addr, out_event, out_recreated;
        bool recreated_reset, recreated_from_announce, recreated_repeated;
        size_t recreated_n;

        /* first requests held back by max_in_flight, FIFO (their out_send nodes); counts in
         * info.n_in_flight, info.n_waiting */
        out_queue waiting;
        bool has_room;             /* on the engine's `room` list */
        struct pcp_server *room_next;
        struct pcp_server *next;
};

struct pcp_engine {
        pcp_engine_config cfg;
        pcp_engine_ops ops;
        void *userdata;
        pcp_heap timers;        /* the mappings' */
        pcp_heap server_timers; /* the servers' (a few) */
        pcp_htable by_id, by_nonce;
        pcp_server *servers;
        uint32_t next_server_id;
        uint64_t next_mapping_id;
        size_t n_mappings;
        out_queue datagrams, events;
        size_t n_zombies;     /* deleted mappings whose event is queued or was just returned */
        pcp_mapping *reaped;  /* zombies whose event was returned: freed at the next call */
        pcp_server *room;     /* servers with a slot freed and requests waiting: promote() */
        pcp_engine_stats stats;
        /* the getrandom() fallback draws in batches (ops.random == NULL) */
        size_t random_left;
        uint8_t random_pool[256];
};

static void run_due(pcp_engine *e, uint64_t now);
static void server_timer_update(pcp_engine *e, pcp_server *s);

/* ---- small helpers ---- */

/* The kernel's randomness, drawn 256 octets at a time: a renewal draws twice, and one
 * getrandom() per draw made it ~10 times dearer on a VM (bench/README.md). What is served
 * is wiped from the pool. Out of line: with ops.random set, random_bytes() is a call. */
static __attribute__((noinline)) void random_from_kernel(pcp_engine *e, uint8_t *p, size_t len) {
        while (len > 0) {
                size_t n;

                if (e->random_left == 0) {
                        ssize_t r = getrandom(e->random_pool, sizeof(e->random_pool), 0);
                        if (r < 0) {
                                if (errno == EINTR)
                                        continue;
                                abort(); /* no entropy at all: nothing sane is left to do */
                        }
                        e->random_left = (size_t) r;
                }
                n = len < e->random_left ? len : e->random_left;
                e->random_left -= n;
                memcpy(p, e->random_pool + e->random_left, n);
                memset(e->random_pool + e->random_left, 0, n);
                p += n;
                len -= n;
        }
}

/* the caller's generator (ops.random), else the kernel's */
static void random_bytes(pcp_engine *e, void *buf, size_t len) {
        if (e->ops.random != NULL)
                e->ops.random(e->userdata, buf, len);
        else
                random_from_kernel(e, buf, len);
}

/* uniform in [0, 1) */
static double random_unit(pcp_engine *e) {
        uint32_t v;
        random_bytes(e, &v, sizeof(v));
        return (double) v / 4294967296.0;
}

/* uniform in [lo, hi] milliseconds */
static uint64_t random_between(pcp_engine *e, uint64_t lo, uint64_t hi) {
        if (hi <= lo)
                return lo;
        return lo + (uint64_t) (random_unit(e) * (double) (hi - lo + 1));
}

/* RFC 6887 §8.1.1: (1 + RAND) * x with RAND uniform in [-0.1, +0.1] */
static uint64_t jitter(pcp_engine *e, uint64_t x) {
        double r = (random_unit(e) * 0.2) - 0.1;
        return (uint64_t) ((double) x * (1.0 + r));
}

static uint64_t min_u64(uint64_t a, uint64_t b) {
        return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b) {
        return a > b ? a : b;
}

static bool same_endpoint(const struct sockaddr_in6 *a, const struct sockaddr_in6 *b) {
        return a->sin6_port == b->sin6_port && memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0;
}

/* ---- output queues ---- */

static out_node *out_prev(const out_node *x) {
        return (out_node *) (x->prev_kind & ~OUT_KIND_MASK);
}

static out_kind out_kind_of(const out_node *x) {
        return (out_kind) (x->prev_kind & OUT_KIND_MASK);
}

static void out_init(out_queue *q) {
        q->head.prev_kind = (uintptr_t) &q->head; /* the head's kind bits stay 0 */
        q->head.next = &q->head;
}

static bool out_queued(const out_node *x) {
        return x->next != NULL;
}

/* at the tail, unless it is queued already (it keeps its place); its kind either way */
static void out_push(out_queue *q, out_node *x, out_kind kind) {
        out_node *last;

        if (out_queued(x)) {
                x->prev_kind = (x->prev_kind & ~OUT_KIND_MASK) | (uintptr_t) kind;
                return;
        }
        last = (out_node *) q->head.prev_kind;
        x->prev_kind = (uintptr_t) last | (uintptr_t) kind;
        x->next = &q->head;
        last->next = x;
        q->head.prev_kind = (uintptr_t) x;
}

/* out of its queue; it keeps its kind */
static void out_remove(out_node *x) {
        out_node *prev, *next;

        if (!out_queued(x))
                return;
        prev = out_prev(x);
        next = x->next;
        prev->next = next;
        next->prev_kind = (uintptr_t) prev | (next->prev_kind & OUT_KIND_MASK);
        x->prev_kind &= OUT_KIND_MASK;
        x->next = NULL;
}

static out_node *out_first(out_queue *q) {
        return q->head.next != &q->head ? q->head.next : NULL;
}

static out_node *out_pop(out_queue *q) {
        out_node *x = out_first(q);

        if (x != NULL)
                out_remove(x);
        return x;
}

/* ---- lookups ---- */

static uint64_t nonce_key(const uint8_t nonce[PCP_NONCE_LEN]) {
        uint64_t a;
        uint32_t b;
        memcpy(&a, nonce, 8);
        memcpy(&b, nonce + 8, 4);
        return a ^ ((uint64_t) b << 17);
}

/* NAT-PMP names a mapping by protocol and internal port only */
static uint64_t port_key(uint8_t protocol, uint16_t internal_port) {
        return (uint64_t) protocol << 16 | internal_port;
}

/* the indexes' key functions (pcp_htable_init()): a node's key is its mapping's */
static uint64_t mapping_id_of(const pcp_hnode *x) {
        return container_of(x, pcp_mapping, by_id)->info.id;
}

static uint64_t mapping_nonce_key_of(const pcp_hnode *x) {
        return nonce_key(container_of(x, pcp_mapping, by_nonce)->info.nonce);
}

static uint64_t mapping_port_key_of(const pcp_hnode *x) {
        const pcp_mapping *m = container_of(x, pcp_mapping, by_port);
        return port_key(m->info.protocol, m->info.internal_port);
}

static pcp_mapping *find_by_id(pcp_engine *e, uint64_t id) {
        for (pcp_hnode *x = pcp_htable_chain(&e->by_id, id); x != NULL; x = x->next) {
                pcp_mapping *m = container_of(x, pcp_mapping, by_id);
                if (m->info.id == id)
                        return m;
        }
        return NULL;
}

static pcp_mapping *find_by_nonce(pcp_engine *e, const uint8_t nonce[PCP_NONCE_LEN]) {
        for (pcp_hnode *x = pcp_htable_chain(&e->by_nonce, nonce_key(nonce)); x != NULL; x = x->next) {
                pcp_mapping *m = container_of(x, pcp_mapping, by_nonce);
                if (memcmp(m->info.nonce, nonce, PCP_NONCE_LEN) == 0)
                        return m;
        }
        return NULL;
}

static pcp_server *find_server(pcp_engine *e, uint32_t id) {
        for (pcp_server *s = e->servers; s != NULL; s = s->next)
                if (s->info.id == id)
                        return s;
        return NULL;
}

/* ---- names ---- */

const char *pcp_server_state_to_string(pcp_server_state s) {
        static const char *const names[_PCP_SERVER_STATE_MAX] = {
                [PCP_SERVER_UNKNOWN] = "unknown",         [PCP_SERVER_PCP] = "pcp",
                [PCP_SERVER_NATPMP] = "nat-pmp",          [PCP_SERVER_DISABLED] = "disabled",
                [PCP_SERVER_UNREACHABLE] = "unreachable", [PCP_SERVER_UNSUPPORTED] = "unsupported",
        };
        return (unsigned) s < _PCP_SERVER_STATE_MAX ? names[s] : "invalid";
}

const char *pcp_drop_reason_to_string(pcp_drop_reason r) {
        static const char *const names[_PCP_DROP_MAX] = {
                [PCP_DROP_MALFORMED] = "malformed",
                [PCP_DROP_WRONG_SOURCE] = "wrong-source",
                [PCP_DROP_WRONG_VERSION] = "wrong-version",
                [PCP_DROP_WRONG_OPCODE] = "wrong-opcode",
                [PCP_DROP_UNKNOWN_NONCE] = "unknown-nonce",
                [PCP_DROP_MISMATCH] = "mismatch",
                [PCP_DROP_UNSOLICITED] = "unsolicited",
                [PCP_DROP_UNKNOWN_SERVER] = "unknown-server",
                [PCP_DROP_AMBIGUOUS] = "ambiguous",
                [PCP_DROP_UNUSABLE] = "unusable",
                [PCP_DROP_STRAY_ICMP] = "stray-icmp",
        };
        return (unsigned) r < _PCP_DROP_MAX ? names[r] : "invalid";
}

const char *pcp_mapping_error_name(const pcp_mapping_info *m) {
        switch (m->error) {
        case PCP_MAPPING_ERROR_NONE:
                return "";
        case PCP_MAPPING_ERROR_RESULT: {
                const char *s = pcp_result_to_string(m->result);
                return s != NULL ? s : "UNKNOWN";
        }
        case PCP_MAPPING_ERROR_UNREACHABLE:
                return "UNREACHABLE";
        case PCP_MAPPING_ERROR_EXPIRED:
                return "EXPIRED";
        case PCP_MAPPING_ERROR_DISABLED:
                return "DISABLED";
        case PCP_MAPPING_ERROR_UNSUPPORTED:
                return "UNSUPPORTED";
        case PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS:
                return "NO_EXTERNAL_ADDRESS";
        case PCP_MAPPING_ERROR_WRONG_FAMILY:
                return "WRONG_ADDRESS_FAMILY";
        case PCP_MAPPING_ERROR_UNUSABLE_ADDRESS:
                return "UNUSABLE_EXTERNAL_ADDRESS";
        case PCP_MAPPING_ERROR_NO_EXTERNAL_PORT:
                return "NO_EXTERNAL_PORT";
        case PCP_MAPPING_ERROR_SHORT_LIFETIME:
                return "SHORT_LIFETIME";
        default:
                return "UNKNOWN";
        }
}

/* ---- epoch (RFC 6887 §8.5, RFC 6886 §3.6) ---- */

bool pcp_epoch_valid(uint32_t prev_epoch, uint64_t prev_ms, uint32_t cur_epoch, uint64_t cur_ms) {
        int64_t client_delta, server_delta;

        /* went back by more than one second */
        if ((uint64_t) cur_epoch + 1 < prev_epoch)
                return false;
        client_delta = (int64_t) (cur_ms - prev_ms);
        server_delta = ((int64_t) cur_epoch - (int64_t) prev_epoch) * 1000;
        if (client_delta + 2000 < server_delta - server_delta / 16)
                return false;
        if (server_delta + 2000 < client_delta - client_delta / 16)
                return false;
        return true;
}

bool natpmp_epoch_valid(uint32_t prev_epoch, uint64_t prev_ms, uint32_t cur_epoch, uint64_t cur_ms) {
        int64_t elapsed = (int64_t) (cur_ms - prev_ms);
        int64_t expected = (int64_t) prev_epoch * 1000 + elapsed * 7 / 8;

        return (int64_t) cur_epoch * 1000 >= expected - 2000;
}

/* ---- events: marks, built when pulled (pcp_engine_next_event()) ---- */

static void emit_mapping(pcp_engine *e, pcp_mapping *m) {
        out_push(&e->events, &m->out_event, OUT_MAPPING_EVENT);
}

static void emit_server(pcp_engine *e, pcp_server *s) {
        out_push(&e->events, &s->out_event, OUT_SERVER_EVENT);
}

/* A recreation of s's mappings (the caller sets recreated_n): EPOCH_RESET when s lost its
 * state (reset), else RECREATE. An EPOCH_RESET is flagged repeated when one went out
 * before in the episode, a RECREATE when either did: a change announced while a reset is
 * being dealt with adds nothing to tell, but a reset after announced changes is news.
 * One mark per server: two recreations before a pull (never seen in pcpd, which pulls
 * after every call: they are at least recreate_interval apart) are one event, with the
 * later count, flagged as the first was; an EPOCH_RESET is the news then: it stays, or
 * replaces a RECREATE not pulled yet. */
static void emit_recreated(pcp_engine *e, pcp_server *s, bool reset, bool from_announce) {
        bool queued = out_queued(&s->out_recreated);

        if (queued) {
                if (s->recreated_reset || !reset) {
                        s->recreated_from_announce |= from_announce;
                        return;
                }
        } else
                out_push(&e->events, &s->out_recreated, OUT_SERVER_RECREATED);
        s->recreated_reset = reset;
        /* a reset replacing a queued RECREATE keeps that an ANNOUNCE was part of it */
        s->recreated_from_announce = from_announce || (queued && s->recreated_from_announce);
        s->recreated_repeated = reset ? s->episode_reported : s->episode_told;
        s->episode_reported |= reset;
        s->episode_told = true;
}

/* ---- sending: marks, encoded when pulled (pcp_engine_next_datagram()) ---- */

static size_t server_addr_index(const pcp_server *s) {
        return s->info.current_addr;
}

static const struct in6_addr *server_local(const pcp_server *s) {
        return &s->info.addrs[server_addr_index(s)].local;
}

static bool mapping_uses_natpmp(const pcp_mapping *m) {
        return m->server->info.state == PCP_SERVER_NATPMP;
}

static bool natpmp_can(const pcp_mapping *m) {
        return m->info.opcode == PCP_OPCODE_MAP &&
               (m->info.protocol == IPPROTO_TCP || m->info.protocol == IPPROTO_UDP) &&
               pcp_addr_is_ipv4(&m->info.internal_addr) && !m->has_third_party;
}

static void zero_addr_for(const struct in6_addr *like, struct in6_addr *ret) {
        memset(ret, 0, sizeof(*ret));
        if (pcp_addr_is_ipv4(like)) {
                ret->s6_addr[10] = 0xff;
                ret->s6_addr[11] = 0xff;
        }
}

/* The external address it suggests before a grant: the caller's, or the zero address of
 * its internal address's family (RFC 6887 §11.1: no preference). */
static const struct in6_addr *suggested_addr(const pcp_mapping *m) {
        static const struct in6_addr zero6 = { { { 0 } } };
        static const struct in6_addr zero4 = { { { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0 } } };

        if (m->opt != NULL && m->opt->has_suggested)
                return &m->opt->suggested_external_addr;
        return pcp_addr_is_ipv4(&m->info.internal_addr) ? &zero4 : &zero6;
}

/* a PEER's remote address (kept in its opt, which every PEER mapping has) */
static const struct in6_addr *mapping_remote_addr(const pcp_mapping *m) {
        static const struct in6_addr none;

        return m->opt != NULL ? &m->opt->remote_addr : &none;
}

static void wait_remove(pcp_mapping *m);

/* Its request goes out: PCP or NAT-PMP as its server speaks now; a delete (lifetime 0)
 * while it is DELETING (the engine never asks a DELETING mapping for a lifetime, nor
 * deletes one that is not). */
static void server_asking(pcp_engine *e, pcp_server *s, uint64_t now);

/* Nothing is asked of s any more (no mapping's request outstanding, no probe, no NAT-PMP
 * address request out) although nothing was heard: the requests it was not answering were
 * dropped, not lost, so its silence is no longer timed; the next request times it anew. */
static void server_maybe_done_asking(pcp_engine *e, pcp_server *s) {
        if (s->asking_since == PCP_NEVER || s->n_awaiting > 0 || s->probing || s->natpmp_addr_out)
                return;
        s->asking_since = PCP_NEVER;
        server_timer_update(e, s);
}

/* m's request is outstanding (true) or not any more (false), counted in its server's
 * n_awaiting */
static void mapping_set_awaiting(pcp_engine *e, pcp_mapping *m, bool awaiting) {
        if (m->awaiting == awaiting)
                return;
        m->awaiting = awaiting;
        if (awaiting)
                m->server->n_awaiting++;
        else {
                m->server->n_awaiting--;
                server_maybe_done_asking(e, m->server);
        }
}

static void send_mapping_request(pcp_engine *e, pcp_mapping *m, uint64_t now) {
        server_asking(e, m->server, now);
        m->server->sent_at = now;
        m->info.natpmp = mapping_uses_natpmp(m);
        m->last_sent = now;
        mapping_set_awaiting(e, m, true);
        m->ever_sent = true;
        if (__builtin_expect(out_kind_of(&m->out_send) == OUT_MAPPING_WAITING, 0))
                wait_remove(m); /* out of the waiting queue (if it is in it) */
        out_push(&e->datagrams, &m->out_send, OUT_MAPPING_REQUEST);
}

static void send_announce_probe(pcp_engine *e, pcp_server *s, uint64_t now) {
        server_asking(e, s, now);
        s->sent_at = now;
        out_push(&e->datagrams, &s->out_probe, OUT_SERVER_PROBE);
}

static void send_natpmp_addr_request(pcp_engine *e, pcp_server *s, uint64_t now) {
        server_asking(e, s, now);
        s->sent_at = now;
        s->natpmp_addr_out = true;
        out_push(&e->datagrams, &s->out_natpmp_addr, OUT_SERVER_NATPMP_ADDR);
}

/* The encoders return the length, -ENOBUFS when size is too small, -EINVAL for what
 * cannot be encoded (never, with parameters that passed params_valid()). */
static int encoded(pcp_wire_error r, size_t len) {
        return r == PCP_WIRE_OK ? (int) len : r == PCP_WIRE_ERR_BUFFER ? -ENOBUFS : -EINVAL;
}

/* The PCP request of m as it is now (a delete when m is being deleted): what
 * encode_mapping_request() sends, and pcp_engine_mapping_request_options() tells. */
static inline void mapping_request_msg(const pcp_mapping *m, bool delete, pcp_msg *msg) {
        pcp_msg_init(msg, false, m->info.opcode);
        msg->lifetime = delete ? 0 : m->info.lifetime_requested;
        msg->client_addr = *server_local(m->server);
        memcpy(msg->nonce, m->info.nonce, PCP_NONCE_LEN);
        msg->protocol = m->info.protocol;
        msg->internal_port = m->info.internal_port;
        if (delete) {
                /* RFC 6887 §15: zero suggestion on delete */
                zero_addr_for(&m->info.internal_addr, &msg->external_addr);
                msg->external_port = 0;
        } else if (m->info.has_external) {
                /* renewals and recreations ask for what we had */
                msg->external_addr = m->info.external_addr;
                msg->external_port = m->info.external_port;
        } else {
                msg->external_addr = *suggested_addr(m);
                msg->external_port = m->info.suggested_external_port;
        }
        if (m->info.opcode == PCP_OPCODE_PEER) {
                msg->remote_port = m->info.remote_port;
                msg->remote_addr = *mapping_remote_addr(m);
        }
        if (m->has_third_party) {
                msg->options |= PCP_HAS_THIRD_PARTY;
                msg->third_party = m->info.internal_addr; /* the third party's, see add_mapping */
        }
        if (m->has_port_set && m->info.opcode == PCP_OPCODE_MAP) {
                msg->options |= PCP_HAS_PORT_SET;
                msg->port_set = m->opt->port_set;
        }
        if (!delete) {
                /* PREFER_FAILURE needs a suggested port, FILTER a lifetime (§13) */
                if (m->prefer_failure && msg->external_port != 0 && m->info.opcode == PCP_OPCODE_MAP)
                        msg->options |= PCP_HAS_PREFER_FAILURE;
                if (m->info.opcode == PCP_OPCODE_MAP && m->opt != NULL && m->opt->n_filters > 0) {
                        msg->n_filters = m->opt->n_filters;
                        memcpy(msg->filters, m->opt->filters, m->opt->n_filters * sizeof(pcp_filter));
                }
                if (m->opt != NULL && m->opt->description != NULL) {
                        msg->options |= PCP_HAS_DESCRIPTION;
                        msg->description = m->opt->description;
                        msg->description_len = (uint16_t) strlen(m->opt->description);
                }
        }
}

/* the request of m as it is now */
static int encode_mapping_request(const pcp_mapping *m, uint8_t *buf, size_t size) {
        bool delete = m->info.state == PCP_MAPPING_DELETING;
        pcp_wire_error r;
        size_t len = 0;

        if (m->info.natpmp) {
                natpmp_msg n = {
                        .opcode = m->info.protocol == IPPROTO_UDP ? NATPMP_OPCODE_MAP_UDP : NATPMP_OPCODE_MAP_TCP,
                        .internal_port = m->info.internal_port,
                        .external_port = delete ? 0
                                         : m->info.has_external ? m->info.external_port
                                                                : m->info.suggested_external_port,
                        .lifetime = delete ? 0 : m->info.lifetime_requested,
                };
                r = natpmp_encode(&n, buf, size, &len);
                return encoded(r, len);
        }

        pcp_msg msg;

        mapping_request_msg(m, delete, &msg);
        r = pcp_encode(&msg, buf, size, &len);
        return encoded(r, len);
}

/* rare: out of line, so that their buffers do not weigh on next_datagram() */
static __attribute__((noinline)) int encode_announce_probe(const pcp_server *s, uint8_t *buf, size_t size) {
        pcp_wire_error r;
        size_t len = 0;
        pcp_msg msg;

        pcp_msg_init(&msg, false, PCP_OPCODE_ANNOUNCE);
        msg.client_addr = *server_local(s);
        r = pcp_encode(&msg, buf, size, &len);
        return encoded(r, len);
}

static __attribute__((noinline)) int encode_natpmp_addr_request(uint8_t *buf, size_t size) {
        size_t len = 0;
        natpmp_msg n = { .opcode = NATPMP_OPCODE_EXTERNAL_ADDRESS };

        pcp_wire_error r = natpmp_encode(&n, buf, size, &len);

        return encoded(r, len);
}

/* ---- scheduling ---- */

static uint64_t mapping_irt(pcp_engine *e, pcp_mapping *m) {
        return mapping_uses_natpmp(m) ? NATPMP_IRT : e->cfg.irt;
}

/* the next retransmission timeout: first (1+RAND)*IRT, then (1+RAND)*min(2*RTprev, MRT) */
static uint64_t next_rt(pcp_engine *e, pcp_mapping *m) {
        if (mapping_uses_natpmp(m)) {
                /* RFC 6886 §3.1: 250 ms, doubling; no jitter (kept going at the PCP cap
                 * rather than given up after nine tries: someone still wants it) */
                m->rt = (uint32_t) (m->rt == 0 ? NATPMP_IRT : min_u64(2 * (uint64_t) m->rt, e->cfg.mrt));
                return m->rt;
        }
        if (m->rt == 0)
                m->rt = (uint32_t) jitter(e, mapping_irt(e, m));
        else
                m->rt = (uint32_t) jitter(e, min_u64(2 * (uint64_t) m->rt, e->cfg.mrt));
        return m->rt;
}

static void timer_set(pcp_heap *h, pcp_heap_item *t, uint64_t when) {
        if (when == PCP_NEVER)
                pcp_heap_remove(h, t);
        else
                /* out of memory growing the heap: the timer stays where it was, or unarmed
                 * (the next change of the object arms it again) */
                (void) pcp_heap_set(h, t, when);
}

static void mapping_timer(pcp_engine *e, pcp_mapping *m, uint64_t when) {
        m->info.next_send = when;
        timer_set(&e->timers, &m->timer, when);
}

/* ---- requests in flight per server (max_in_flight; the rules are in pcp-engine.h) ----
 *
 * A slot is a bool in the mapping and a count in its server: taken when a first request
 * (or a delete) is sent, given back when it is answered, when its timer fires (the first
 * retransmission timeout: the request counts as lost, and its retransmissions go on
 * without a slot), when it is restarted or failed, or when it goes. A first request with
 * no slot free waits in its server's FIFO (its out_send node, no allocation, no timer);
 * a slot given back puts the server on the engine's `room` list, and promote() sends the
 * oldest waiting requests before the call returns (run_due()). All O(1) per request. */

static bool mapping_waiting(const pcp_mapping *m) {
        return out_kind_of(&m->out_send) == OUT_MAPPING_WAITING && out_queued(&m->out_send);
}

static void wait_remove(pcp_mapping *m) {
        if (!mapping_waiting(m))
                return;
        out_remove(&m->out_send);
        m->server->info.n_waiting--;
}

static void slot_release(pcp_engine *e, pcp_mapping *m) {
        pcp_server *s = m->server;

        if (!m->in_flight)
                return;
        m->in_flight = false;
        s->info.n_in_flight--;
        if (!s->has_room && out_first(&s->waiting) != NULL) {
                s->has_room = true;
                s->room_next = e->room;
                e->room = s;
        }
}

/* a first request may go now: a slot is free and nobody waits before it (FIFO) */
static bool slot_take(pcp_engine *e, pcp_mapping *m) {
        pcp_server *s = m->server;

        if (m->in_flight)
                return true;
        if (s->info.n_in_flight >= e->cfg.max_in_flight || out_first(&s->waiting) != NULL)
                return false;
        m->in_flight = true;
        s->info.n_in_flight++;
        return true;
}

/* deletes never wait, but count (they are answered too) */
static void slot_take_always(pcp_mapping *m) {
        if (m->in_flight)
                return;
        m->in_flight = true;
        m->server->info.n_in_flight++;
}

static void wait_push(pcp_engine *e, pcp_mapping *m, uint64_t now) {
        out_remove(&m->out_send); /* a request not pulled yet is superseded */
        out_push(&m->server->waiting, &m->out_send, OUT_MAPPING_WAITING);
        m->server->info.n_waiting++;
        mapping_set_awaiting(e, m, false);
        /* no timer while it waits: promote() sends it */
        pcp_heap_remove(&e->timers, &m->timer);
        m->info.next_send = now;
}

static void mapping_transmit(pcp_engine *e, pcp_mapping *m, uint64_t now);

/* the oldest waiting first requests of the servers with room, as far as it goes */
static __attribute__((noinline)) void promote(pcp_engine *e, uint64_t now) {
        while (e->room != NULL) {
                pcp_server *s = e->room;
                out_node *x;

                e->room = s->room_next;
                s->has_room = false;
                while (s->info.n_in_flight < e->cfg.max_in_flight && (x = out_first(&s->waiting)) != NULL) {
                        pcp_mapping *m = container_of(x, pcp_mapping, out_send);

                        out_remove(x);
                        s->info.n_waiting--;
                        m->in_flight = true;
                        s->info.n_in_flight++;
                        mapping_transmit(e, m, now);
                }
        }
}

/* send the current request now and arm its retransmission; a first one waits for a slot */
static void mapping_transmit(pcp_engine *e, pcp_mapping *m, uint64_t now) {
        bool retransmission = m->rt != 0;

        if (!retransmission && !slot_take(e, m)) {
                wait_push(e, m, now);
                return;
        }
        if (retransmission) {
                e->stats.retransmissions++;
                m->info.retransmissions++;
        }
        send_mapping_request(e, m, now);
        mapping_timer(e, m, now + next_rt(e, m));
}

/* start a fresh request (create or recreate) at time `at` */
static void mapping_restart(pcp_engine *e, pcp_mapping *m, uint64_t at) {
        wait_remove(m);
        slot_release(e, m);
        m->rt = 0;
        m->info.retransmissions = 0;
        mapping_set_awaiting(e, m, false);
        mapping_timer(e, m, at);
}

/* Where in its renewal windows mapping m renews, / 2^32: the last four octets of its
 * nonce, which is random and drawn once for the mapping's life: by the engine, or for one
 * restored after a restart (pcp_mapping_params.has_nonce) by the engine before it (pcpd
 * saves it), so the mapping keeps its point across the restart as well. A caller's nonce
 * that is not random makes the point as random as it is. No field of its own: 4 octets a
 * mapping, with the padding 8 (pcp_mapping). */
static uint32_t renew_phase(const pcp_mapping *m) {
        uint32_t p;

        memcpy(&p, m->info.nonce + PCP_NONCE_LEN - sizeof(p), sizeof(p));
        return p;
}

/* Where in a renewal window of `width` ms mapping m renews. RFC 6887 §11.2.1 asks for a
 * uniformly random point of the window so that renewals do not synchronise. A fresh draw
 * for every renewal does that for mappings created at different times, but mappings
 * created together (a daemon starting, a router restart recreating everything) stay
 * bunched for ~20 renewal periods: the spread of a sum of k uniform jitters grows as √k.
 * So each mapping has its point for its life (renew_phase(), uniform), plus a small fresh
 * jitter (±1/16 of the window, wrapped): every renewal is still at a uniformly
 * distributed point of its window, and mappings created together drift apart linearly
 * (k windows' worth after k renewals), flat within ~6 periods (bench/README.md). */
static uint64_t renew_offset(pcp_engine *e, const pcp_mapping *m, uint64_t width) {
        double u = (double) renew_phase(m) / 4294967296.0 + (random_unit(e) - 0.5) / 8.0;

        if (u < 0.0)
                u += 1.0;
        else if (u >= 1.0)
                u -= 1.0;
        return (uint64_t) (u * (double) width);
}

/* RFC 6887 §11.2.1: renew in [1/2, 5/8] of the lifetime, then [3/4, 3/4 + 1/16], ...
 * never less than 4 s apart; NAT-PMP renews at half the lifetime and retransmits on
 * its own schedule. At the expiry, the mapping is lost. */
static void schedule_renewal(pcp_engine *e, pcp_mapping *m) {
        uint64_t L = (uint64_t) m->info.lifetime_granted * SEC, t;
        uint32_t k = m->renew_step;

        /* the window's width is L >> (k + 2): past 61 steps nothing is left to spread over
         * (and a shift by 64 or more is undefined) */
        if (k >= 62) {
                mapping_timer(e, m, m->info.expires_at);
                return;
        }
        if (mapping_uses_natpmp(m) && k == 1)
                t = m->granted_at + L / 2;
        else {
                uint64_t start = m->granted_at + L - (L >> k);
                uint64_t width = L >> (k + 2);
                t = start + renew_offset(e, m, width);
        }
        if (m->last_sent != 0 && t < m->last_sent + MIN_RENEW_GAP)
                t = m->last_sent + MIN_RENEW_GAP;
        if (t >= m->info.expires_at)
                t = m->info.expires_at;
        mapping_timer(e, m, t);
}

/* ---- state changes ---- */

static void server_set_state(pcp_engine *e, pcp_server *s, pcp_server_state st) {
        if (s->info.state == st)
                return;
        s->info.state = st;
        emit_server(e, s);
}

static void mapping_fail(pcp_engine *e, pcp_mapping *m, pcp_mapping_error err, uint8_t result, uint64_t retry_at) {
        wait_remove(m);
        slot_release(e, m);
        m->info.state = PCP_MAPPING_FAILED;
        m->info.error = err;
        m->info.result = result;
        mapping_set_awaiting(e, m, false);
        m->recreating = false;
        m->held_port = 0; /* refused: whatever was granted before is not */
        m->rt = 0;
        m->info.retransmissions = 0;
        mapping_timer(e, m, retry_at);
        emit_mapping(e, m);
}

/* Out of every index, its timer and its server, its datagram unsent; counted out. */
static void mapping_unlink(pcp_engine *e, pcp_mapping *m) {
        pcp_server *s = m->server;

        pcp_heap_remove(&e->timers, &m->timer);
        pcp_htable_remove(&e->by_id, &m->by_id);
        pcp_htable_remove(&e->by_nonce, &m->by_nonce);
        if (s != NULL) {
                wait_remove(m);
                slot_release(e, m);
                mapping_set_awaiting(e, m, false);
        }
        out_remove(&m->out_send);
        if (s != NULL) {
                if (m->srv_prev != NULL)
                        m->srv_prev->srv_next = m->srv_next;
                else
                        s->mappings = m->srv_next;
                if (m->srv_next != NULL)
                        m->srv_next->srv_prev = m->srv_prev;
                pcp_htable_remove(&s->by_port, &m->by_port);
                s->info.n_mappings--;
                m->server = NULL;
        }
        e->n_mappings--;
}

/* Gone without a word (its events too). */
static void mapping_free(pcp_engine *e, pcp_mapping *m) {
        mapping_unlink(e, m);
        out_remove(&m->out_event);
        free(m->opt);
        free(m);
}

/* Gone, and reported: it stays in memory, out of everything (a zombie, id unknown to
 * pcp_engine_mapping_get()), until its PCP_EVENT_MAPPING_DELETED was pulled and the caller
 * called the engine again, so that the event can carry its last info. A MAPPING event
 * still queued for it becomes this one. */
static void mapping_deleted(pcp_engine *e, pcp_mapping *m, bool upstream) {
        mapping_unlink(e, m);
        free(m->opt);
        m->opt = NULL;
        m->deleted_upstream = upstream;
        e->n_zombies++;
        out_push(&e->events, &m->out_event, OUT_MAPPING_DELETED);
}

static void zombie_free(pcp_engine *e, pcp_mapping *m) {
        e->n_zombies--;
        free(m);
}

/* The zombies whose event was returned: their info was valid until this call. Out of
 * line: most calls find none. */
static __attribute__((noinline, cold)) void reap_now(pcp_engine *e) {
        while (e->reaped != NULL) {
                pcp_mapping *m = e->reaped;

                e->reaped = m->srv_next;
                zombie_free(e, m);
        }
}

/* At the start of every call but the read-only accessors. */
static inline void reap(pcp_engine *e) {
        if (e->reaped != NULL)
                reap_now(e);
}

/* A server lost its state (or may have): ask for every mapping again, suggesting what it
 * had, after `spread` ms of random delay each (0 = now). Returns how many are asked.
 *
 * A mapping whose request is still in flight is asking already, with the same content (a
 * renewal or a create suggesting what it had): sending it again now would only be a
 * duplicate a few ms after the last one (scenario 5 saw exactly that under loss). Its
 * request continues as a recreation on the RFC schedule instead: the next transmission
 * comes one first retransmission timeout, (1 + RAND) * IRT, after the last one, or at
 * its own retransmission if that is sooner; never before the spread delay. Mappings with
 * nothing in flight (granted, failed, waiting for their first send) are asked again
 * after the spread delay, as before. */
static size_t server_recreate_all(pcp_engine *e, pcp_server *s, uint64_t now, uint64_t spread,
                                  pcp_mapping *except) {
        size_t n = 0;

        for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next) {
                uint64_t at;

                if (m == except || m->info.state == PCP_MAPPING_DELETING)
                        continue;
                n++;
                at = now + (spread > 0 ? random_between(e, 0, spread) : 0);
                if (m->info.state == PCP_MAPPING_ACTIVE || m->info.state == PCP_MAPPING_RENEWING)
                        m->info.state = PCP_MAPPING_RENEWING;
                m->recreating = true;
                if (m->awaiting) {
                        uint64_t rt_prev = m->rt, rt1, when;

                        m->rt = 0;
                        rt1 = next_rt(e, m);
                        when = max_u64(at, m->last_sent + rt1);
                        if (pcp_heap_item_queued(&m->timer) && pcp_heap_item_key(&e->timers, &m->timer) <= when)
                                m->rt = rt_prev; /* its own retransmission comes first: keep it */
                        else {
                                /* a recent request: this is its retransmission, and the
                                 * doubling goes on from the interval it really waited; an
                                 * old one (a renewal long unanswered, a long back-off):
                                 * the schedule starts again from this send */
                                uint64_t waited = when - m->last_sent;
                                m->rt = (uint32_t) (waited < 2 * rt1 ? waited : 0);
                                if (m->rt == 0)
                                        m->info.retransmissions = 0;
                                mapping_timer(e, m, when);
                        }
                } else
                        mapping_restart(e, m, at);
                emit_mapping(e, m);
        }
        return n;
}

/* Recreate all of s's mappings now (see RECREATE_INTERVAL); reset: because its epoch
 * says it lost them (an EPOCH_RESET event), else because of an ANNOUNCE or a NAT-PMP
 * notification with no sign of a loss (a RECREATE event: without it, every mapping asked
 * again would be news nobody could explain); flagged repeated as emit_recreated() says.
 * deferred: held back by the interval. The events are as rate-limited as the
 * recreations: at most one per interval, whatever is received. */
static void server_recreate(pcp_engine *e, pcp_server *s, uint64_t now, bool reset, bool from_announce,
                            bool deferred, bool untold, pcp_mapping *answered) {
        /* the server's event before its mappings' (untold: when its answers tell which,
         * see recheck_untold) */
        if (!untold)
                emit_recreated(e, s, reset, from_announce);
        s->recheck_clean = !reset;
        s->recheck_untold = untold;
        /* after an ANNOUNCE everybody hears it at once: spread the recreations */
        s->recreated_n = server_recreate_all(e, s, now, from_announce ? e->cfg.announce_delay_max : 0, answered);
        s->recreate_rt = deferred ? min_u64(2 * s->recreate_rt, e->cfg.recreate_interval_max)
                                  : e->cfg.recreate_interval;
        s->hold_until = now + s->recreate_rt;
}

/* Something says s may have lost our mappings: recreate them at once, or, within the
 * interval after the last recreation, once when it ends (RECREATE_INTERVAL). untold: an
 * ANNOUNCE or notice whose epoch looks like a reset; a recreation at once is told when the
 * answers tell (recheck_untold), a deferred one as any deferred one. */
static void server_lost_state(pcp_engine *e, pcp_server *s, uint64_t now, bool reset, bool from_announce,
                              bool untold, pcp_mapping *answered) {
        if (!s->in_episode || (s->recreate_at == PCP_NEVER && now >= s->hold_until + EPISODE_QUIET)) {
                s->in_episode = true;
                s->episode_reported = s->episode_told = false;
                s->recreate_rt = e->cfg.recreate_interval;
                s->hold_until = now;
        }
        if (s->recreate_at == PCP_NEVER && now >= s->hold_until) {
                server_recreate(e, s, now, reset, from_announce, false, untold, answered);
                return;
        }
        s->pending_reset |= reset;
        s->pending_announce |= from_announce;
        if (s->recreate_at == PCP_NEVER) {
                s->recreate_at = s->hold_until;
                server_timer_update(e, s);
        }
}

/* A recreation begun untold (or clean) is told late, at its first answer (check_epoch()):
 * the interval runs from the event, so that a recreation held back to the end of the
 * interval is not told in the same instant (found by fuzz-engine: two events 0 ms apart).
 * At most one event per interval, as for recreations told at once. */
static void recreated_told_late(pcp_engine *e, pcp_server *s, uint64_t now) {
        uint64_t until = now + s->recreate_rt;

        if (s->hold_until >= until)
                return;
        s->hold_until = until;
        if (s->recreate_at != PCP_NEVER) {
                s->recreate_at = until;
                server_timer_update(e, s);
        }
}

/* rx: when the datagram carrying the epoch arrived (<= now). RFC 6887 §8.5 compares the
 * client's and the server's clocks between two responses; a response read late (a busy
 * event loop) would make a healthy server look as if it lost its state, and with a 2 s
 * slack and 1 s epoch resolution a delay of ~1.1 s is enough. Returns whether the epoch
 * was consistent; if not, the server's mappings are (or will be) recreated. */
static bool check_epoch(pcp_engine *e, pcp_server *s, uint64_t now, uint64_t rx, uint32_t epoch, bool natpmp,
                        pcp_mapping *answered) {
        bool valid = true;

        if (s->info.epoch_known)
                valid = natpmp ? natpmp_epoch_valid(s->info.epoch, s->epoch_client_ms, epoch, rx)
                               : pcp_epoch_valid(s->info.epoch, s->epoch_client_ms, epoch, rx);
        s->info.epoch = epoch;
        s->info.epoch_known = true;
        s->epoch_client_ms = rx;
        if (valid) {
                if (s->recheck_untold) {
                        /* the ANNOUNCE that looked like a reset was not one (forged, or a
                         * server's slip): what its recreation was is told now */
                        s->recheck_untold = false;
                        emit_recreated(e, s, false, true);
                        recreated_told_late(e, s, now);
                }
                s->recheck_clean = false;
                return true;
        }
        e->stats.epoch_resets++;
        if (s->recheck_clean && !s->recheck_untold && !out_queued(&s->out_recreated)) {
                /* The recreation was told already, as a RECREATE that has been pulled: a
                 * second event now would be a second one within the interval. The reset is
                 * dealt with as any other: told, and the mappings asked again, when the
                 * interval allows (found by fuzz-engine: two events 49 ms apart). */
                s->recheck_clean = false;
                server_lost_state(e, s, now, true, false, false, answered);
                return false;
        }
        if (s->recheck_clean) {
                /* The first answer since an ANNOUNCE (or notice) had every mapping asked again
                 * reveals the reset: what was granted before that answer was granted before
                 * the restart, and is being asked again already (answers since the ANNOUNCE
                 * would have cleared recheck_clean). Told now (the recreation's event was
                 * held for the answers, or is not pulled yet and becomes the reset); no
                 * second recreation. */
                size_t n = 0;

                for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next)
                        n += m != answered && m->recreating && m->info.state != PCP_MAPPING_DELETING;
                s->recheck_clean = s->recheck_untold = false;
                emit_recreated(e, s, true, true);
                recreated_told_late(e, s, now);
                s->recreated_n = n;
                return false;
        }
        server_lost_state(e, s, now, true, false, false, answered);
        return false;
}

/* An ANNOUNCE (RFC 6887 §14.1.3) or a NAT-PMP address notice (RFC 6886 §3.2.1) from s, on
 * the port any host of the link can send to, with nothing a forger would not know but the
 * server's address. It names no nonce, so it is a hint, not a fact: it has every mapping
 * asked again (spread over announce_delay_max, rate-limited: server_lost_state()), and
 * the answers, which name a nonce (or, in NAT-PMP, answer a request of ours), set the
 * epoch and tell whether the server lost its state. Taken as written, one forged datagram
 * with a far epoch was the baseline the real server's next answer looked reset against:
 * two EPOCH_RESETs and two recreations for one datagram. Its own epoch only says whether
 * it looks like a reset (natpmp: by NAT-PMP's rule): then the event waits for the answers
 * (recheck_untold), so that a forged one is not told as a loss either. */
static bool announce_looks_reset(const pcp_server *s, uint64_t rx, uint32_t epoch, bool natpmp) {
        if (!s->info.epoch_known)
                return false;
        return natpmp ? !natpmp_epoch_valid(s->info.epoch, s->epoch_client_ms, epoch, rx)
                      : !pcp_epoch_valid(s->info.epoch, s->epoch_client_ms, epoch, rx);
}

/* when s turns silent if nothing is heard from it before; PCP_NEVER: not asking, or silent */
static uint64_t silent_at(const pcp_server *s) {
        return s->info.silent || s->asking_since == PCP_NEVER ? PCP_NEVER : s->asking_since + SILENT_FAIL;
}

static void server_timer_update(pcp_engine *e, pcp_server *s) {
        uint64_t when = min_u64(min_u64(s->probe_at, s->recreate_at), min_u64(s->natpmp_addr_at, s->reprobe_at));
        when = min_u64(when, s->version_doubt_at);
        when = min_u64(when, silent_at(s));
        if (s->info.state == PCP_SERVER_DISABLED)
                when = min_u64(when, s->info.disabled_until);
        timer_set(&e->server_timers, &s->timer, when);
}

static void server_start_probe(pcp_engine *e, pcp_server *s, uint64_t now) {
        s->probing = true;
        s->probe_rt = 0;
        s->probe_at = now;
        server_timer_update(e, s);
}

/* Something that names no nonce says a server not known to speak PCP may be there (an
 * ANNOUNCE: receive_announce()), or back (an unreachable server's NAT-PMP answer or
 * "version not supported": server_back_hint()): it is asked, the ANNOUNCE probe (on its own
 * socket, whose answer must come from the address and port it went to) at once, its
 * schedule restarted, at most once per ANNOUNCE_HINT_INTERVAL and not while a probe waits
 * to be pulled. The state and the epoch are the probe's answer's to set. */
static void server_hint(pcp_engine *e, pcp_server *s, uint64_t now) {
        if (out_queued(&s->out_probe) || now < s->announce_hint_next)
                return;
        s->announce_hint_next = now + ANNOUNCE_HINT_INTERVAL;
        server_start_probe(e, s, now);
}

/* A request (any: a mapping's, a renewal, a delete, a probe, a NAT-PMP address request) is
 * marked to go to s: if none was unanswered, s's silence is timed from now. O(1), and the
 * server's timer is touched once per unanswered stretch, not per request. */
static void server_asking(pcp_engine *e, pcp_server *s, uint64_t now) {
        if (s->asking_since != PCP_NEVER)
                return;
        s->asking_since = now;
        if (!s->info.silent)
                server_timer_update(e, s);
}

static void server_answered(pcp_engine *e, pcp_server *s, size_t addr_index, uint64_t now) {
        s->heard_at = now;
        /* heard: nothing is unanswered any more, as far as silence goes. The timer moves
         * only at the first answer after something was asked (not per answer), and in the
         * servers' heap, which holds a few. */
        if (s->asking_since != PCP_NEVER) {
                s->asking_since = PCP_NEVER;
                server_timer_update(e, s);
        }
        if (s->info.silent) {
                s->info.silent = false;
                emit_server(e, s);
        }
        if (!s->sticky || s->info.current_addr != addr_index) {
                s->info.current_addr = addr_index;
                s->sticky = true;
        }
        memset(s->addr_unreachable, 0, sizeof(s->addr_unreachable));
}

/* A PCP request was answered SUCCESS: the server found the client address in it equal to
 * the packet's source (RFC 6887 §8.3), so an earlier ADDRESS_MISMATCH (a NAT in between,
 * or a source address that changed) no longer holds. Other error results do not tell:
 * a server may refuse for other reasons before it compares the addresses. */
static void server_address_matched(pcp_engine *e, pcp_server *s) {
        if (!s->info.address_mismatch)
                return;
        s->info.address_mismatch = false;
        emit_server(e, s);
}

/* its version is settled as one other than PCP's: no probe, no doubt, PCP probed again
 * after cfg.pcp_reprobe (it may be switched on later). The probe is over, answered by the
 * "version not supported" that settled it (a doubt that stood: refusals not counted as
 * heard, version_answer()): if nothing else is asked of the server, its silence is no
 * longer timed (server_maybe_done_asking()); what the caller asks next times it anew. */
static void server_settled_not_pcp(pcp_engine *e, pcp_server *s, uint64_t now) {
        s->probing = false;
        s->probe_at = PCP_NEVER;
        s->version_doubt_at = PCP_NEVER;
        s->reprobe_at = now + e->cfg.pcp_reprobe;
        server_maybe_done_asking(e, s);
}

/* The server is not driven with NAT-PMP any more (PCP answered, or it is off): its external
 * address request is over, answered or not (a NAT-PMP answer would be dropped now:
 * handle_natpmp_response()). Kept, it was asked for ever, and each retransmission timed a
 * silence of a server that answers what it is asked. The caller updates the timer. */
static void natpmp_addr_give_up(pcp_engine *e, pcp_server *s) {
        s->natpmp_addr_at = PCP_NEVER;
        s->natpmp_addr_rt = 0;
        s->natpmp_addr_out = false;
        server_maybe_done_asking(e, s);
}

/* the server speaks NAT-PMP only: drive its mappings with NAT-PMP and ask for the address */
static void server_switch_natpmp(pcp_engine *e, pcp_server *s, uint64_t now) {
        bool was = s->info.state == PCP_SERVER_NATPMP;

        server_set_state(e, s, PCP_SERVER_NATPMP);
        server_settled_not_pcp(e, s, now);
        if (!was) {
                s->natpmp_addr_rt = 0;
                s->natpmp_addr_at = now;
                s->info.epoch_known = false;
        }
        server_timer_update(e, s);
        if (was)
                return;
        for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next) {
                if (m->info.state == PCP_MAPPING_DELETING)
                        continue;
                if (!natpmp_can(m)) {
                        mapping_fail(e, m, PCP_MAPPING_ERROR_UNSUPPORTED, PCP_RESULT_UNSUPP_VERSION, s->reprobe_at);
                        continue;
                }
                mapping_restart(e, m, now);
        }
}

/* the retry delay for an error result with this lifetime (see MIN_ERROR_RETRY) */
static uint64_t error_retry_delay(pcp_engine *e, uint8_t result, uint32_t lifetime) {
        uint64_t d;

        if (lifetime > 0)
                d = (uint64_t) lifetime * SEC;
        else if (pcp_result_classify(result) == PCP_RESULT_CLASS_SHORT_ERROR)
                d = e->cfg.short_error_floor;
        else
                d = e->cfg.long_error_floor;
        return min_u64(max_u64(d, MIN_ERROR_RETRY), e->cfg.error_retry_max);
}

static void server_disable(pcp_engine *e, pcp_server *s, uint64_t now, uint32_t lifetime) {
        /* the server's lifetime, at least the disabled floor, at most the cap (unless the
         * floor was configured above it) */
        uint64_t until = now + min_u64(max_u64((uint64_t) lifetime * SEC, e->cfg.disabled_floor),
                                       max_u64(e->cfg.error_retry_max, e->cfg.disabled_floor));

        s->info.disabled_until = until;
        s->info.last_result = PCP_RESULT_NOT_AUTHORIZED;
        server_set_state(e, s, PCP_SERVER_DISABLED);
        natpmp_addr_give_up(e, s); /* a NAT-PMP one's: asked again if it is found NAT-PMP again */
        server_timer_update(e, s);
        for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next) {
                if (m->info.state == PCP_MAPPING_DELETING)
                        continue;
                mapping_fail(e, m, PCP_MAPPING_ERROR_DISABLED, PCP_RESULT_NOT_AUTHORIZED,
                             until + random_between(e, 0, e->cfg.announce_delay_max));
        }
}

/* ---- what a grant must say to be one ----
 *
 * A mapping is "active" only when an application can hand its external address and port
 * to a peer. A SUCCESS that does not give one (a real server answered a MAP for tcp/18500
 * with external [::]:0) is checked here, rule by rule; each failed rule has its own error
 * name (pcp_mapping_error_name()). What then happens depends on where it came from:
 *
 *  - the answer to a request of ours (the nonce, protocol and port match): the mapping is
 *    "failed" with that error, and the request stays outstanding and is retransmitted on
 *    the RFC 6887 §8.1.1 schedule (mapping_unusable());
 *  - an unsolicited update (RFC 6887 §14.2) of a mapping we hold: dropped and counted
 *    (PCP_DROP_UNUSABLE); the grant the mapping has stays until its renewal asks again;
 *  - a NAT-PMP external address (opcode 0) of 0.0.0.0 or another unusable one: dropped and
 *    counted, and asked again on its retransmission schedule; mappings granted meanwhile
 *    wait for a usable address, "failed" with NO_EXTERNAL_ADDRESS (natpmp_hold()). */

/* pcp_addr_is_ipv4() and pcp_addr_is_unspecified() inline: checked on every answer */
static bool addr_v4(const struct in6_addr *a) {
        return a->s6_addr32[0] == 0 && a->s6_addr32[1] == 0 && a->s6_addr32[2] == htonl(0xffff);
}

static bool addr_unspecified(const struct in6_addr *a) {
        return a->s6_addr32[3] == 0 && a->s6_addr32[0] == 0 && a->s6_addr32[1] == 0 &&
               (a->s6_addr32[2] == 0 || a->s6_addr32[2] == htonl(0xffff));
}

/* Whether a peer on the Internet could never send to this external address: loopback,
 * link-local, multicast, the IPv4 limited broadcast, "this network" (0.0.0.0/8) and, for
 * IPv6, the deprecated IPv4-compatible ::/96 (with :: and ::1). Private (RFC 1918), shared
 * (100.64.0.0/10), unique local and documentation addresses are usable: a NAT behind a
 * carrier-grade NAT or in a lab has exactly those outside, and its peers are there. */
static bool addr_is_unusable(const struct in6_addr *a) {
        const uint8_t *b = a->s6_addr;

        if (addr_v4(a)) {
                const uint8_t *v = b + 12;
                return v[0] == 0 || v[0] == 127 || (v[0] == 169 && v[1] == 254) || (v[0] >= 224 && v[0] <= 239) ||
                       a->s6_addr32[3] == 0xffffffff;
        }
        return b[0] == 0xff ||                         /* ff00::/8 multicast */
               (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || /* fe80::/10 link-local */
               (a->s6_addr32[0] == 0 && a->s6_addr32[1] == 0 && a->s6_addr32[2] == 0); /* ::/96 */
}

/* The address rules. The family a mapping's external address must have is the one it
 * asked for: that of its suggested external address (RFC 6887 §11.1 and §5: the
 * family-specific all-zeros address when it has no preference), which is its internal
 * address's family unless the caller suggested an address of the other (NAT64). */
static pcp_mapping_error address_problem(const pcp_mapping *m, const struct in6_addr *ext) {
        if (addr_unspecified(ext))
                return PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS;
        if (addr_v4(ext) != addr_v4(suggested_addr(m)))
                return PCP_MAPPING_ERROR_WRONG_FAMILY;
        if (addr_is_unusable(ext))
                return PCP_MAPPING_ERROR_UNUSABLE_ADDRESS;
        return PCP_MAPPING_ERROR_NONE;
}

/* The port and lifetime rules. Internal port 0 is "all ports" (protocol 0: all protocols,
 * RFC 6887 §11.1): such a mapping has no one external port, and port 0 is its answer. */
static pcp_mapping_error port_lifetime_problem(const pcp_mapping *m, uint16_t port, uint32_t lifetime) {
        if (m->info.internal_port != 0 && port == 0)
                return PCP_MAPPING_ERROR_NO_EXTERNAL_PORT;
        if (lifetime < MIN_GRANT_LIFETIME)
                return PCP_MAPPING_ERROR_SHORT_LIFETIME;
        return PCP_MAPPING_ERROR_NONE;
}

static pcp_mapping_error grant_problem(const pcp_mapping *m, const struct in6_addr *ext, uint16_t port,
                                       uint32_t lifetime) {
        pcp_mapping_error r = address_problem(m, ext);
        return r != PCP_MAPPING_ERROR_NONE ? r : port_lifetime_problem(m, port, lifetime);
}

/* the lifetime the engine renews by (MAX_GRANT_LIFETIME) */
static uint32_t effective_lifetime(const pcp_mapping *m, uint32_t lifetime) {
        uint32_t cap = m->info.lifetime_requested > MAX_GRANT_LIFETIME ? m->info.lifetime_requested
                                                                       : MAX_GRANT_LIFETIME;
        return lifetime < cap ? lifetime : cap;
}

/* The server answered a request of ours SUCCESS, but with a grant no application can use
 * (err says why). Not published as active: the mapping is "failed" with that error, so its
 * application and the admin learn why, and the request stays outstanding, retransmitted
 * on the RFC 6887 §8.1.1 schedule with the same nonce, as if the answer had been lost.
 * Failed, not dropped: the answer is the server's own (its nonce matched) and will be the
 * same next time, and "pending" for ever without a reason helps nobody. Retransmitted, not
 * retried after an error lifetime: a server costs no more than a silent one, and one that
 * was briefly without an address (its uplink still coming up) is asked again within
 * seconds. A renewal answered so ends the grant it renews: the server says it has nothing
 * usable any more. */
static void mapping_unusable(pcp_engine *e, pcp_mapping *m, uint64_t now, pcp_mapping_error err) {
        bool granted = m->info.state == PCP_MAPPING_ACTIVE || m->info.state == PCP_MAPPING_RENEWING;
        bool changed = m->info.state != PCP_MAPPING_FAILED || m->info.error != err;

        if (granted && !m->recreating) {
                /* a renewal: its timer is the renewal schedule; now it is a request being
                 * retransmitted (a recreation's timer is one already) */
                m->rt = 0;
                m->info.retransmissions = 0;
                mapping_timer(e, m, now + next_rt(e, m));
        }
        m->info.state = PCP_MAPPING_FAILED;
        m->info.error = err;
        m->info.result = PCP_RESULT_SUCCESS;
        m->recreating = false;
        m->held_port = 0;
        mapping_set_awaiting(e, m, true);
        if (changed)
                emit_mapping(e, m);
}

/* ---- mapping results ---- */

static void mapping_granted(pcp_engine *e, pcp_mapping *m, uint64_t now, const struct in6_addr *ext_addr,
                            uint16_t ext_port, uint32_t lifetime) {
        pcp_server *s = m->server;

        lifetime = effective_lifetime(m, lifetime);
        m->held_port = 0;
        m->info.state = PCP_MAPPING_ACTIVE;
        m->info.error = PCP_MAPPING_ERROR_NONE;
        m->info.result = PCP_RESULT_SUCCESS;
        m->info.has_external = true;
        m->info.external_addr = *ext_addr;
        m->info.external_port = ext_port;
        m->info.lifetime_granted = lifetime;
        m->granted_at = now;
        m->info.expires_at = now + (uint64_t) lifetime * SEC;
        mapping_set_awaiting(e, m, false);
        m->recreating = false;
        m->rt = 0;
        m->info.retransmissions = 0;
        m->renew_step = 1;
        m->last_sent = 0;
        /* lifetime >= MIN_GRANT_LIFETIME: grant_problem() refused shorter ones */
        schedule_renewal(e, m);
        if (!s->info.has_external_addr || memcmp(&s->info.external_addr, ext_addr, 16) != 0) {
                if (!pcp_addr_is_unspecified(ext_addr) && pcp_addr_is_ipv4(ext_addr) ==
                                                                  pcp_addr_is_ipv4(&m->info.internal_addr)) {
                        s->info.has_external_addr = true;
                        s->info.external_addr = *ext_addr;
                        emit_server(e, s);
                }
        }
        emit_mapping(e, m);
}

static void mapping_error(pcp_engine *e, pcp_mapping *m, uint64_t now, uint8_t result, uint32_t lifetime) {
        pcp_server *s = m->server;

        s->info.last_result = result;
        /* NOT_AUTHORIZED to a MAP or PEER is a long error for that request (RFC 6887 §7.4):
         * the port may be refused by policy or held by someone else (a NAT-PMP lease, another
         * nonce), and the server's other mappings carry on. Whether PCP is switched off as a
         * whole (the field case: then every request is refused) the ANNOUNCE probe tells:
         * NOT_AUTHORIZED to it disables the server. */
        if (result == PCP_RESULT_NOT_AUTHORIZED && !m->info.natpmp && !s->probing)
                server_start_probe(e, s, now);
        if (result == PCP_RESULT_ADDRESS_MISMATCH && !s->info.address_mismatch) {
                s->info.address_mismatch = true;
                emit_server(e, s);
        }
        mapping_fail(e, m, PCP_MAPPING_ERROR_RESULT, result, now + error_retry_delay(e, result, lifetime));
}

/* ---- public: lifecycle ---- */

int pcp_engine_new(const pcp_engine_config *config, const pcp_engine_ops *ops, void *userdata,
                   pcp_engine **ret) {
        pcp_engine *e;

        if (ret == NULL)
                return -EINVAL;
        e = calloc(1, sizeof(*e));
        if (e == NULL)
                return -ENOMEM;
        if (config != NULL)
                e->cfg = *config;
        if (e->cfg.irt == 0)
                e->cfg.irt = 3 * SEC;
        if (e->cfg.mrt == 0)
                e->cfg.mrt = 1024 * SEC;
        /* a mapping keeps its retransmission timeout in 32 bits: jittered (+10 %) and
         * doubled, RT_MAX still fits */
        e->cfg.irt = min_u64(e->cfg.irt, RT_MAX);
        e->cfg.mrt = min_u64(e->cfg.mrt, RT_MAX);
        if (e->cfg.short_error_floor == 0)
                e->cfg.short_error_floor = 30 * SEC;
        if (e->cfg.long_error_floor == 0)
                e->cfg.long_error_floor = 30 * 60 * SEC;
        if (e->cfg.disabled_floor == 0)
                e->cfg.disabled_floor = 30 * 60 * SEC;
        if (e->cfg.error_retry_max == 0)
                e->cfg.error_retry_max = ERROR_RETRY_MAX;
        /* a floor above the cap would make no sense: the cap wins for mapping errors */
        e->cfg.error_retry_max = max_u64(e->cfg.error_retry_max, MIN_ERROR_RETRY);
        if (e->cfg.announce_delay_max == 0)
                e->cfg.announce_delay_max = 5 * SEC;
        if (e->cfg.recreate_interval == 0)
                e->cfg.recreate_interval = RECREATE_INTERVAL;
        if (e->cfg.recreate_interval_max == 0)
                e->cfg.recreate_interval_max = RECREATE_INTERVAL_MAX;
        e->cfg.recreate_interval_max = max_u64(e->cfg.recreate_interval_max, e->cfg.recreate_interval);
        if (e->cfg.pcp_reprobe == 0)
                e->cfg.pcp_reprobe = 30 * 60 * SEC;
        if (e->cfg.delete_attempts == 0)
                e->cfg.delete_attempts = 3;
        if (e->cfg.delete_attempts > UINT16_MAX)
                e->cfg.delete_attempts = UINT16_MAX; /* a mapping counts them in 16 bits */
        if (e->cfg.max_mappings == 0)
                e->cfg.max_mappings = DEFAULT_MAX_MAPPINGS;
        if (e->cfg.max_in_flight == 0)
                e->cfg.max_in_flight = DEFAULT_MAX_IN_FLIGHT;
        if (ops != NULL)
                e->ops = *ops;
        e->userdata = userdata;
        e->next_server_id = 1;
        e->next_mapping_id = 1;
        pcp_heap_init(&e->timers);
        pcp_heap_init(&e->server_timers);
        out_init(&e->datagrams);
        out_init(&e->events);
        if (pcp_htable_init(&e->by_id, 64, mapping_id_of) < 0 ||
            pcp_htable_init(&e->by_nonce, 64, mapping_nonce_key_of) < 0) {
                pcp_engine_free(e);
                return -ENOMEM;
        }
        *ret = e;
        return 0;
}

pcp_engine *pcp_engine_free(pcp_engine *e) {
        out_node *x;

        if (e == NULL)
                return NULL;
        reap(e);
        /* what nobody pulled; first, so that no node of a freed object stays linked */
        while (out_pop(&e->datagrams) != NULL)
                ;
        while ((x = out_pop(&e->events)) != NULL)
                if (out_kind_of(x) == OUT_MAPPING_DELETED)
                        zombie_free(e, container_of(x, pcp_mapping, out_event));
        while (e->servers != NULL) {
                pcp_server *s = e->servers;

                while (s->mappings != NULL)
                        mapping_free(e, s->mappings);
                /* out of the heap before it goes: later removals move the entries still in it */
                pcp_heap_remove(&e->server_timers, &s->timer);
                e->servers = s->next;
                pcp_htable_done(&s->by_port);
                free(s);
        }
        pcp_heap_done(&e->timers);
        pcp_heap_done(&e->server_timers);
        pcp_htable_done(&e->by_id);
        pcp_htable_done(&e->by_nonce);
        free(e);
        return NULL;
}

int pcp_engine_add_server(pcp_engine *e, uint64_t now, const pcp_server_addr *addrs, size_t n_addrs,
                          uint32_t *ret_id) {
        pcp_server *s;

        if (e == NULL || addrs == NULL || n_addrs == 0 || n_addrs > PCP_SERVER_MAX_ADDRS)
                return -EINVAL;
        reap(e);
        s = calloc(1, sizeof(*s));
        if (s == NULL)
                return -ENOMEM;
        if (pcp_htable_init(&s->by_port, 16, mapping_port_key_of) < 0) {
                free(s);
                return -ENOMEM;
        }
        s->info.id = e->next_server_id++;
        s->info.state = PCP_SERVER_UNKNOWN;
        s->info.n_addrs = n_addrs;
        for (size_t i = 0; i < n_addrs; i++) {
                s->info.addrs[i] = addrs[i];
                s->info.addrs[i].remote.sin6_family = AF_INET6;
                if (s->info.addrs[i].remote.sin6_port == 0)
                        s->info.addrs[i].remote.sin6_port = htons(PCP_SERVER_PORT);
        }
        s->timer = PCP_HEAP_ITEM_INIT;
        s->probe_at = s->natpmp_addr_at = s->reprobe_at = s->recreate_at = s->version_doubt_at = PCP_NEVER;
        s->asking_since = PCP_NEVER;
        s->sent_at = PCP_NEVER;
        out_init(&s->waiting);
        s->next = e->servers;
        e->servers = s;
        server_start_probe(e, s, now);
        if (ret_id != NULL)
                *ret_id = s->info.id;
        /* its ANNOUNCE probe is due now: queued before we return, not at the caller's
         * next timer */
        run_due(e, now);
        return 0;
}

int pcp_engine_remove_server(pcp_engine *e, uint64_t now, uint32_t server_id) {
        pcp_server **pp, *s = NULL;

        reap(e);
        for (pp = &e->servers; *pp != NULL; pp = &(*pp)->next)
                if ((*pp)->info.id == server_id) {
                        s = *pp;
                        *pp = s->next;
                        break;
                }
        if (s == NULL)
                return -ENOENT;
        while (s->mappings != NULL)
                mapping_deleted(e, s->mappings, false);
        /* after its mappings: the last one's going may have moved its timer
         * (server_maybe_done_asking()) */
        pcp_heap_remove(&e->server_timers, &s->timer);
        for (pcp_server **r = &e->room; *r != NULL; r = &(*r)->room_next)
                if (*r == s) {
                        *r = s->room_next;
                        break;
                }
        /* what it had to say or send goes with it (its mappings' events stay) */
        out_remove(&s->out_probe);
        out_remove(&s->out_natpmp_addr);
        out_remove(&s->out_event);
        out_remove(&s->out_recreated);
        pcp_htable_done(&s->by_port);
        free(s);
        return 0;
}

const pcp_server_info *pcp_engine_server_get(pcp_engine *e, uint32_t server_id) {
        pcp_server *s = find_server(e, server_id);
        return s != NULL ? &s->info : NULL;
}

static bool params_valid(const pcp_mapping_params *p) {
        if (p->opcode != PCP_OPCODE_MAP && p->opcode != PCP_OPCODE_PEER)
                return false;
        if (p->lifetime == 0)
                return false;
        if (p->protocol != 0 && p->internal_port == 0)
                return false;
        if (p->protocol == 0 && (p->internal_port != 0 || p->opcode == PCP_OPCODE_PEER))
                return false;
        if (p->n_filters > PCP_MAX_FILTERS)
                return false;
        if (p->opcode == PCP_OPCODE_PEER && (p->remote_port == 0 || pcp_addr_is_unspecified(&p->remote_addr)))
                return false;
        if (p->description != NULL && strnlen(p->description, PCP_MAX_DESCRIPTION_LEN + 1) > PCP_MAX_DESCRIPTION_LEN)
                return false;
        if (p->has_port_set && p->port_set.size == 0)
                return false;
        return true;
}

static void mapping_send_delete(pcp_engine *e, pcp_mapping *m, uint64_t now);

/* The rare parts of a request, in one block; *ret stays NULL when it has none of them. */
static int mapping_opt_new(const pcp_mapping_params *p, mapping_opt **ret) {
        bool suggested = !pcp_addr_is_unspecified(&p->suggested_external_addr);
        size_t desc_len = p->description != NULL ? strlen(p->description) + 1 : 0;
        size_t size = offsetof(mapping_opt, filters) + p->n_filters * sizeof(pcp_filter);
        mapping_opt *o;

        *ret = NULL;
        if (!suggested && !p->has_port_set && p->n_filters == 0 && p->description == NULL &&
            p->opcode != PCP_OPCODE_PEER)
                return 0;
        o = calloc(1, size + desc_len);
        if (o == NULL)
                return -ENOMEM;
        if (suggested) {
                o->has_suggested = true;
                o->suggested_external_addr = p->suggested_external_addr;
        }
        if (p->has_port_set)
                o->port_set = p->port_set;
        if (p->opcode == PCP_OPCODE_PEER)
                o->remote_addr = p->remote_addr;
        o->n_filters = p->n_filters;
        memcpy(o->filters, p->filters, p->n_filters * sizeof(pcp_filter));
        if (p->description != NULL) {
                char *d = (char *) o + size;

                memcpy(d, p->description, desc_len);
                o->description = d;
        }
        *ret = o;
        return 0;
}

int pcp_engine_add_mapping(pcp_engine *e, uint64_t now, const pcp_mapping_params *p, uint64_t *ret_id) {
        pcp_server *s;
        pcp_mapping *m;

        if (e == NULL || p == NULL)
                return -EINVAL;
        reap(e);
        s = find_server(e, p->server_id);
        if (s == NULL)
                return -ENOENT;
        if (!params_valid(p))
                return -EINVAL;
        /* deleted mappings whose event was not pulled yet still hold their memory */
        if (e->n_mappings + e->n_zombies >= e->cfg.max_mappings)
                return -ENOSPC;
        if (p->has_nonce && find_by_nonce(e, p->nonce) != NULL)
                return -EEXIST;
        if (p->delete_only && !p->has_nonce)
                return -EINVAL;

        m = calloc(1, sizeof(*m));
        if (m == NULL)
                return -ENOMEM;
        if (mapping_opt_new(p, &m->opt) < 0) {
                free(m);
                return -ENOMEM;
        }

        m->info.id = e->next_mapping_id++;
        m->info.server_id = s->info.id;
        m->info.state = PCP_MAPPING_PENDING;
        m->info.opcode = p->opcode;
        m->info.protocol = p->protocol;
        m->info.internal_addr = p->has_third_party ? p->third_party : *server_local(s);
        m->info.internal_port = p->internal_port;
        m->info.suggested_external_port = p->suggested_external_port;
        m->info.remote_port = p->remote_port;
        m->userdata = p->userdata;
        m->info.lifetime_requested = p->lifetime;
        m->info.next_send = PCP_NEVER;
        m->has_third_party = p->has_third_party;
        m->prefer_failure = p->prefer_failure;
        m->has_port_set = p->has_port_set;
        if (p->has_nonce) {
                memcpy(m->info.nonce, p->nonce, PCP_NONCE_LEN);
                m->ever_sent = true; /* by the caller before it restarted: the server may hold it */
        } else
                do
                        random_bytes(e, m->info.nonce, PCP_NONCE_LEN);
                while (find_by_nonce(e, m->info.nonce) != NULL);

        m->timer = PCP_HEAP_ITEM_INIT;
        m->server = s;
        m->srv_next = s->mappings;
        if (s->mappings != NULL)
                s->mappings->srv_prev = m;
        s->mappings = m;
        s->info.n_mappings++;
        pcp_htable_add(&e->by_id, &m->by_id);
        pcp_htable_add(&e->by_nonce, &m->by_nonce);
        pcp_htable_add(&s->by_port, &m->by_port);
        e->n_mappings++;

        if (p->delete_only) {
                pcp_server_state st = s->info.state;

                /* nobody to tell (as in pcp_engine_remove_mapping()): not made at all */
                if (st == PCP_SERVER_DISABLED || st == PCP_SERVER_UNSUPPORTED ||
                    (st == PCP_SERVER_NATPMP && !natpmp_can(m))) {
                        mapping_free(e, m);
                        return -ENOTCONN;
                }
                m->info.state = PCP_MAPPING_DELETING;
                mapping_send_delete(e, m, now);
                if (ret_id != NULL)
                        *ret_id = m->info.id;
                return 0;
        }

        switch (s->info.state) {
        case PCP_SERVER_DISABLED:
                mapping_fail(e, m, PCP_MAPPING_ERROR_DISABLED, PCP_RESULT_NOT_AUTHORIZED, s->info.disabled_until);
                break;
        case PCP_SERVER_UNSUPPORTED:
                mapping_fail(e, m, PCP_MAPPING_ERROR_UNSUPPORTED, PCP_RESULT_UNSUPP_VERSION, s->reprobe_at);
                break;
        case PCP_SERVER_NATPMP:
                if (!natpmp_can(m)) {
                        mapping_fail(e, m, PCP_MAPPING_ERROR_UNSUPPORTED, PCP_RESULT_UNSUPP_VERSION, s->reprobe_at);
                        break;
                }
                mapping_transmit(e, m, now);
                break;
        default:
                mapping_transmit(e, m, now);
        }
        if (ret_id != NULL)
                *ret_id = m->info.id;
        return 0;
}

static void mapping_send_delete(pcp_engine *e, pcp_mapping *m, uint64_t now) {
        if (m->delete_sent == 0)
                slot_take_always(m);
        if (m->delete_sent < UINT16_MAX)
                m->delete_sent++;
        send_mapping_request(e, m, now);
        mapping_timer(e, m, now + next_rt(e, m));
}

static int remove_mapping(pcp_engine *e, uint64_t now, uint64_t id);

int pcp_engine_remove_mapping(pcp_engine *e, uint64_t now, uint64_t id) {
        int r;

        reap(e);
        r = remove_mapping(e, now, id);
        /* a slot it gave back goes to the next waiting request now */
        if (e->room != NULL)
                promote(e, now);
        return r;
}

static int remove_mapping(pcp_engine *e, uint64_t now, uint64_t id) {
        pcp_mapping *m;
        pcp_server_state st;

        m = find_by_id(e, id);
        if (m == NULL)
                return -ENOENT;
        if (m->info.state == PCP_MAPPING_DELETING)
                return 0;
        if (mapping_waiting(m) && !m->ever_sent) {
                /* its first request never went out: nothing to delete upstream */
                mapping_deleted(e, m, false);
                return 0;
        }
        wait_remove(m);
        st = m->server->info.state;
        /* nobody to tell: the server never spoke, or refuses, or speaks another version */
        if (st == PCP_SERVER_DISABLED || st == PCP_SERVER_UNSUPPORTED ||
            (st == PCP_SERVER_NATPMP && !natpmp_can(m))) {
                mapping_deleted(e, m, false);
                return 0;
        }
        m->info.state = PCP_MAPPING_DELETING;
        m->rt = 0;
        m->delete_sent = 0;
        mapping_send_delete(e, m, now);
        emit_mapping(e, m);
        return 0;
}

int pcp_engine_forget_mapping(pcp_engine *e, uint64_t id) {
        pcp_mapping *m;

        reap(e);
        m = find_by_id(e, id);
        if (m == NULL)
                return -ENOENT;
        mapping_free(e, m);
        return 0;
}

const pcp_mapping_info *pcp_engine_mapping_get(pcp_engine *e, uint64_t id) {
        pcp_mapping *m = find_by_id(e, id);
        return m != NULL ? &m->info : NULL;
}

int pcp_engine_mapping_request_options(pcp_engine *e, uint64_t id, uint32_t *ret_options, uint8_t *ret_n_filters) {
        pcp_mapping *m = e != NULL ? find_by_id(e, id) : NULL;
        pcp_msg msg;

        if (m == NULL)
                return -ENOENT;
        *ret_options = 0;
        *ret_n_filters = 0;
        if (m->info.natpmp)
                return 0;
        mapping_request_msg(m, m->info.state == PCP_MAPPING_DELETING, &msg);
        *ret_options = msg.options;
        *ret_n_filters = msg.n_filters;
        return 0;
}

int pcp_engine_mapping_set_userdata(pcp_engine *e, uint64_t id, void *userdata) {
        pcp_mapping *m = e != NULL ? find_by_id(e, id) : NULL;

        if (m == NULL)
                return -ENOENT;
        m->userdata = userdata;
        return 0;
}

size_t pcp_engine_mapping_count(pcp_engine *e) {
        return e->n_mappings;
}

/* ---- public: output ---- */

/* The pulls are split so that the call that finds nothing (one per drain, per queue) is a
 * few instructions: the rest, out of line, is reached by a tail call. */
static __attribute__((noinline)) int next_datagram(pcp_engine *e, uint32_t *ret_server_id, size_t *ret_addr_index,
                                                   uint8_t *buf, size_t size) {
        out_node *x;

        reap(e);
        while ((x = out_first(&e->datagrams)) != NULL) {
                pcp_server *s;
                int n;

                switch (out_kind_of(x)) {
                case OUT_MAPPING_REQUEST: {
                        pcp_mapping *m = container_of(x, pcp_mapping, out_send);
                        s = m->server;
                        n = encode_mapping_request(m, buf, size);
                        break;
                }
                case OUT_SERVER_PROBE:
                        s = container_of(x, pcp_server, out_probe);
                        n = encode_announce_probe(s, buf, size);
                        break;
                case OUT_SERVER_NATPMP_ADDR:
                        s = container_of(x, pcp_server, out_natpmp_addr);
                        n = encode_natpmp_addr_request(buf, size);
                        break;
                default:
                        abort(); /* only those are ever queued here */
                }
                if (n == -ENOBUFS)
                        return n; /* it stays first */
                out_remove(x);
                if (n < 0)
                        continue;
                e->stats.sent++;
                if (ret_server_id != NULL)
                        *ret_server_id = s->info.id;
                if (ret_addr_index != NULL)
                        *ret_addr_index = server_addr_index(s);
                return n;
        }
        return 0;
}

int pcp_engine_next_datagram(pcp_engine *e, uint32_t *ret_server_id, size_t *ret_addr_index, uint8_t *buf,
                             size_t size) {
        if (e == NULL || buf == NULL)
                return -EINVAL;
        if (e->reaped == NULL && out_first(&e->datagrams) == NULL)
                return 0;
        return next_datagram(e, ret_server_id, ret_addr_index, buf, size);
}

static __attribute__((noinline)) int next_event(pcp_engine *e, pcp_event *ret) {
        out_node *x;

        reap(e);
        x = out_pop(&e->events);
        if (x == NULL)
                return 0;
        switch (out_kind_of(x)) {
        case OUT_MAPPING_EVENT: {
                pcp_mapping *m = container_of(x, pcp_mapping, out_event);

                *ret = (pcp_event) {
                        .type = PCP_EVENT_MAPPING,
                        .mapping_id = m->info.id,
                        .mapping = &m->info,
                        .mapping_userdata = m->userdata,
                        .server_id = m->info.server_id,
                        .server = &m->server->info,
                };
                return 1;
        }
        case OUT_MAPPING_DELETED: {
                pcp_mapping *m = container_of(x, pcp_mapping, out_event);
                /* NULL if the server went with it (pcp_engine_remove_server()) */
                pcp_server *s = find_server(e, m->info.server_id);

                *ret = (pcp_event) {
                        .type = PCP_EVENT_MAPPING_DELETED,
                        .mapping_id = m->info.id,
                        .mapping = &m->info,
                        .mapping_userdata = m->userdata,
                        .deleted_upstream = m->deleted_upstream,
                        .server_id = m->info.server_id,
                        .server = s != NULL ? &s->info : NULL,
                };
                /* valid until the next call: freed then (reap()) */
                m->srv_next = e->reaped;
                e->reaped = m;
                return 1;
        }
        case OUT_SERVER_EVENT: {
                pcp_server *s = container_of(x, pcp_server, out_event);

                *ret = (pcp_event) { .type = PCP_EVENT_SERVER, .server_id = s->info.id, .server = &s->info };
                return 1;
        }
        case OUT_SERVER_RECREATED: {
                pcp_server *s = container_of(x, pcp_server, out_recreated);

                *ret = (pcp_event) {
                        .type = s->recreated_reset ? PCP_EVENT_EPOCH_RESET : PCP_EVENT_RECREATE,
                        .server_id = s->info.id,
                        .server = &s->info,
                        .from_announce = s->recreated_from_announce,
                        .repeated = s->recreated_repeated,
                        .n_recreated = s->recreated_n,
                };
                return 1;
        }
        default:
                abort(); /* only those are ever queued here */
        }
}

int pcp_engine_next_event(pcp_engine *e, pcp_event *ret) {
        if (e == NULL || ret == NULL)
                return -EINVAL;
        if (e->reaped == NULL && out_first(&e->events) == NULL)
                return 0;
        return next_event(e, ret);
}

const pcp_engine_stats *pcp_engine_get_stats(pcp_engine *e) {
        return &e->stats;
}

/* ---- input ---- */

static void drop(pcp_engine *e, pcp_drop_reason r) {
        e->stats.dropped[r]++;
}

static void learn_prefix64(pcp_engine *e, pcp_server *s, const pcp_msg *msg) {
        size_t n = msg->n_prefix64 < 2 ? msg->n_prefix64 : 2;
        bool changed = n != s->info.n_prefix64;

        if (n == 0)
                return;
        for (size_t i = 0; i < n; i++) {
                pcp_prefix64 p;

                /* field by field: no padding bytes in the comparison; the IPv4 list
                 * points into the datagram and is not kept */
                memset(&p, 0, sizeof(p));
                p.prefix_len = msg->prefix64[i].prefix_len;
                p.prefix = msg->prefix64[i].prefix;
                p.suffix_len = msg->prefix64[i].suffix_len;
                memcpy(p.suffix, msg->prefix64[i].suffix, sizeof(p.suffix));
                if (!changed && memcmp(&p, &s->info.prefix64[i], sizeof(p)) != 0)
                        changed = true;
                s->info.prefix64[i] = p;
        }
        s->info.n_prefix64 = (uint8_t) n;
        if (changed)
                emit_server(e, s);
}

/* the server speaks a PCP version we do not (it offered another in UNSUPP_VERSION): its
 * mappings fail until it is probed again */
static void server_unsupported(pcp_engine *e, pcp_server *s, uint64_t now) {
        server_settled_not_pcp(e, s, now);
        server_set_state(e, s, PCP_SERVER_UNSUPPORTED);
        server_timer_update(e, s);
        for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next)
                if (m->info.state != PCP_MAPPING_DELETING)
                        mapping_fail(e, m, PCP_MAPPING_ERROR_UNSUPPORTED, PCP_RESULT_UNSUPP_VERSION, s->reprobe_at);
}

/* A PCP answer of ours (an ANNOUNCE answer to a probe, or one that names a nonce): the
 * server speaks PCP, whatever a "version not supported" said since. */
static void server_speaks_pcp(pcp_engine *e, pcp_server *s) {
        if (s->version_doubt_at == PCP_NEVER)
                return;
        s->version_doubt_at = PCP_NEVER;
        server_timer_update(e, s);
}

/* An unreachable server answered from its address and port, in NAT-PMP or with a "version
 * not supported", which name no nonce. A NAT-PMP-only router that was unreachable (ICMP:
 * rebooting) answers so when it is back: in NAT-PMP what was asked in NAT-PMP (an address
 * request, a mapping's request sent before the ICMP), and with NAT-PMP's UNSUPP_VERSION the
 * PCP requests it is sent while unreachable (its mappings are not driven with NAT-PMP then:
 * mapping_uses_natpmp()). Dropped, they left its mappings failed until the re-probe
 * (cfg.pcp_reprobe, 30 min), where a PCP server is back with the first answer naming a
 * nonce. So they are a hint, as an ANNOUNCE is to such a server: the probe goes at once, and
 * its answer (the same UNSUPP_VERSION) switches the server to NAT-PMP and asks every mapping
 * again (server_switch_natpmp()). Taken as written, one of them would let a forger pick the
 * server's state; as a hint it only has the server asked, and the probe's answer is taken
 * as any probe's is (version_answer()): no more than a forged ANNOUNCE could do before. A
 * server in use (PCP, NAT-PMP) gets no hint from them: its state stands. */
static void server_back_hint(pcp_engine *e, pcp_server *s, uint64_t now) {
        if (s->info.state == PCP_SERVER_UNREACHABLE)
                server_hint(e, s, now);
}

/* A "version not supported" answer: a PCP header of another version, or NAT-PMP's 8-octet
 * UNSUPP_VERSION (switch_to: PCP_SERVER_UNSUPPORTED or PCP_SERVER_NATPMP). It carries no
 * nonce: anyone who can send from the server's address and port could send one at any
 * time, and taken as written it fails or moves every mapping the server holds.
 *   - A server that speaks PCP (it answered with nonces): a doubt, not a fact. A probe asks
 *     it (unless one is out); a PCP answer within 2 × IRT settles the doubt, and so does any
 *     answer naming a nonce; otherwise the switch is made then (server_timeout()): a router
 *     replaced by one that speaks only NAT-PMP answers the probe with the same refusal. At
 *     most one doubt per VERSION_DOUBT_INTERVAL; the answers meanwhile are dropped.
 *   - Any other server: taken only while a probe is out (a first contact, a re-probe), as
 *     the answer to it; otherwise dropped (nothing asked it), an unreachable one probed
 *     (server_back_hint()). */
static void version_answer(pcp_engine *e, pcp_server *s, size_t addr_index, uint64_t now, pcp_server_state switch_to) {
        if (s->info.state == PCP_SERVER_PCP) {
                drop(e, PCP_DROP_UNSOLICITED);
                if (s->version_doubt_at != PCP_NEVER) {
                        s->version_doubt = switch_to; /* the latest word */
                        return;
                }
                if (now < s->version_doubt_next)
                        return;
                s->version_doubt = switch_to;
                s->version_doubt_at = now + 2 * e->cfg.irt;
                s->version_doubt_next = now + VERSION_DOUBT_INTERVAL;
                if (!s->probing)
                        server_start_probe(e, s, now); /* updates the timer */
                else
                        server_timer_update(e, s);
                return;
        }
        if (!s->probing) {
                drop(e, PCP_DROP_UNSOLICITED);
                server_back_hint(e, s, now);
                return;
        }
        server_answered(e, s, addr_index, now);
        if (switch_to == PCP_SERVER_NATPMP)
                server_switch_natpmp(e, s, now);
        else
                server_unsupported(e, s, now);
}

static void handle_pcp_response(pcp_engine *e, pcp_server *s, size_t addr_index, uint64_t now, uint64_t rx,
                                const pcp_msg *msg) {
        pcp_mapping_error bad = PCP_MAPPING_ERROR_NONE;
        pcp_mapping *m;

        if (msg->version != PCP_VERSION) {
                /* UNSUPP_VERSION offering a version we don't speak (we only do 2 and NAT-PMP) */
                version_answer(e, s, addr_index, now, PCP_SERVER_UNSUPPORTED);
                return;
        }

        if (msg->opcode == PCP_OPCODE_ANNOUNCE) {
                /* it answers our probe, or nothing: carrying no nonce, one that comes while no
                 * probe is out would let a forger move any server to PCP (or off, with
                 * NOT_AUTHORIZED) */
                if (!s->probing) {
                        drop(e, PCP_DROP_UNSOLICITED);
                        return;
                }
                server_answered(e, s, addr_index, now);
                server_speaks_pcp(e, s);
                s->probing = false;
                s->probe_at = PCP_NEVER;
                s->reprobe_at = PCP_NEVER;
                check_epoch(e, s, now, rx, msg->epoch, false, NULL);
                learn_prefix64(e, s, msg);
                if (msg->result == PCP_RESULT_SUCCESS)
                        server_address_matched(e, s);
                if (msg->result == PCP_RESULT_NOT_AUTHORIZED) {
                        server_disable(e, s, now, msg->lifetime);
                        return;
                }
                if (s->info.state == PCP_SERVER_NATPMP || s->info.state == PCP_SERVER_UNSUPPORTED) {
                        /* PCP came back (or came up): move every mapping to it */
                        server_set_state(e, s, PCP_SERVER_PCP);
                        natpmp_addr_give_up(e, s);
                        for (m = s->mappings; m != NULL; m = m->srv_next)
                                if (m->info.state != PCP_MAPPING_DELETING)
                                        mapping_restart(e, m, now);
                } else
                        server_set_state(e, s, PCP_SERVER_PCP);
                server_timer_update(e, s);
                return;
        }

        m = find_by_nonce(e, msg->nonce);
        if (m == NULL) {
                drop(e, PCP_DROP_UNKNOWN_NONCE);
                return;
        }
        if (m->server != s) {
                drop(e, PCP_DROP_WRONG_SOURCE);
                return;
        }
        if (m->info.opcode != msg->opcode) {
                drop(e, PCP_DROP_WRONG_OPCODE);
                return;
        }
        if (m->info.protocol != msg->protocol || m->info.internal_port != msg->internal_port) {
                drop(e, PCP_DROP_MISMATCH);
                return;
        }
        /* RFC 6887 §12.4: a PEER answer is matched on the remote peer too */
        if (m->info.opcode == PCP_OPCODE_PEER &&
            (m->info.remote_port != msg->remote_port || memcmp(mapping_remote_addr(m), &msg->remote_addr, 16) != 0)) {
                drop(e, PCP_DROP_MISMATCH);
                return;
        }

        server_answered(e, s, addr_index, now);
        server_speaks_pcp(e, s);
        slot_release(e, m);
        /* an answer to a request of ours (not an unsolicited update, RFC 6887 §14.2) */
        if (msg->result == PCP_RESULT_SUCCESS && (m->awaiting || m->info.state == PCP_MAPPING_DELETING))
                server_address_matched(e, s);
        if (s->info.state != PCP_SERVER_PCP && s->info.state != PCP_SERVER_DISABLED) {
                s->probing = false;
                s->probe_at = PCP_NEVER;
                natpmp_addr_give_up(e, s);
                server_set_state(e, s, PCP_SERVER_PCP);
                server_timer_update(e, s);
        }
        learn_prefix64(e, s, msg);

        if (m->info.state == PCP_MAPPING_DELETING) {
                /* SUCCESS with lifetime 0: gone. NO_RESOURCES: miniupnpd's "no such mapping".
                 * SUCCESS with a lifetime: the server keeps it (another owner); either way
                 * we are done asking. */
                bool upstream = msg->result == PCP_RESULT_SUCCESS ? msg->lifetime == 0
                                                                 : msg->result == PCP_RESULT_NO_RESOURCES;
                check_epoch(e, s, now, rx, msg->epoch, false, m);
                mapping_deleted(e, m, upstream);
                return;
        }

        if (msg->result == PCP_RESULT_SUCCESS)
                bad = grant_problem(m, &msg->external_addr, msg->external_port, msg->lifetime);
        if (!m->awaiting) {
                /* RFC 6887 §14.2: an unsolicited update of a mapping we hold */
                if (msg->result != PCP_RESULT_SUCCESS || m->info.state == PCP_MAPPING_FAILED) {
                        drop(e, PCP_DROP_UNSOLICITED);
                        return;
                }
                /* one that would leave the application without an address: the grant it
                 * has stays, until its renewal asks the server again */
                if (bad != PCP_MAPPING_ERROR_NONE) {
                        drop(e, PCP_DROP_UNUSABLE);
                        return;
                }
        }

        check_epoch(e, s, now, rx, msg->epoch, false, m);
        if (msg->result == PCP_RESULT_SUCCESS) {
                if (bad != PCP_MAPPING_ERROR_NONE) {
                        mapping_unusable(e, m, now, bad);
                        return;
                }
                if (m->info.state == PCP_MAPPING_RENEWING && m->awaiting)
                        e->stats.renewals++;
                mapping_granted(e, m, now, &msg->external_addr, msg->external_port, msg->lifetime);
        } else
                mapping_error(e, m, now, msg->result, msg->lifetime);
}

/* O(1): the server's (protocol, internal port) index, not a walk over its mappings */
static pcp_mapping *find_natpmp_mapping(pcp_server *s, uint8_t protocol, uint16_t internal_port) {
        for (pcp_hnode *x = pcp_htable_chain(&s->by_port, port_key(protocol, internal_port)); x != NULL;
             x = x->next) {
                pcp_mapping *m = container_of(x, pcp_mapping, by_port);
                if (m->info.natpmp && m->info.protocol == protocol && m->info.internal_port == internal_port)
                        return m;
        }
        return NULL;
}

/* a NAT-PMP external address (opcode 0 answer or notice) that names one */
static bool natpmp_addr_usable(const struct in_addr *a) {
        struct in6_addr ext;

        pcp_addr_from_ipv4(a, &ext);
        return !addr_unspecified(&ext) && !addr_is_unusable(&ext);
}

/* a usable external address (natpmp_addr_usable()) */
static void natpmp_set_external(pcp_engine *e, pcp_server *s, uint64_t now, const struct in_addr *a) {
        struct in6_addr ext;

        pcp_addr_from_ipv4(a, &ext);
        s->natpmp_addr_unusable = false;
        if (!s->info.has_external_addr || memcmp(&s->info.external_addr, &ext, 16) != 0) {
                s->info.has_external_addr = true;
                s->info.external_addr = ext;
                emit_server(e, s);
                for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next)
                        if (m->info.natpmp && m->info.has_external) {
                                m->info.external_addr = ext;
                                emit_mapping(e, m);
                        }
        }
        /* the grants that waited for it (natpmp_hold()); one with a request in flight gets
         * the address with its answer */
        for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next) {
                uint64_t end = m->granted_at;

                if (m->held_port == 0 || m->awaiting || !m->info.natpmp ||
                    address_problem(m, &ext) != PCP_MAPPING_ERROR_NONE)
                        continue;
                if (end < now + MIN_GRANT_LIFETIME * SEC)
                        continue; /* about to run out: its renewal comes first */
                mapping_granted(e, m, now, &ext, m->held_port, (uint32_t) ((end - now) / SEC));
        }
}

/* The gateway said it has no usable external address (0.0.0.0, an unusable one, or an
 * error such as NETWORK_FAILURE, RFC 6886 §3.2: "no DHCP lease yet"): the grants that wait
 * for one say so. */
static void natpmp_no_address(pcp_engine *e, pcp_server *s) {
        s->natpmp_addr_unusable = true;
        for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next) {
                if (m->held_port == 0 || (m->info.state == PCP_MAPPING_FAILED &&
                                 m->info.error == PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS))
                        continue;
                m->info.state = PCP_MAPPING_FAILED;
                m->info.error = PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS;
                m->info.result = PCP_RESULT_SUCCESS;
                emit_mapping(e, m);
        }
}

/* RFC 6886 §3.3: a NAT-PMP mapping answer names the external port only; the address is
 * the gateway's, from its external address answer (opcode 0). Without a usable one yet,
 * the grant waits here and the mapping is not active: "pending" while the address is
 * being asked for, "failed" with NO_EXTERNAL_ADDRESS once the gateway said it has none.
 * natpmp_set_external() makes it active; until then it is asked for again (renewed) at
 * half its lifetime, like any NAT-PMP mapping. */
static void natpmp_hold(pcp_engine *e, pcp_server *s, pcp_mapping *m, uint64_t now, uint16_t port,
                        uint32_t lifetime) {
        pcp_mapping_state st = s->natpmp_addr_unusable ? PCP_MAPPING_FAILED : PCP_MAPPING_PENDING;
        pcp_mapping_error err = s->natpmp_addr_unusable ? PCP_MAPPING_ERROR_NO_EXTERNAL_ADDRESS : PCP_MAPPING_ERROR_NONE;
        bool changed = m->info.state != st || m->info.error != err;

        lifetime = effective_lifetime(m, lifetime);
        m->held_port = port;
        m->granted_at = now + (uint64_t) lifetime * SEC; /* when the held grant runs out */
        mapping_set_awaiting(e, m, false);
        m->recreating = false;
        m->rt = 0;
        m->info.retransmissions = 0;
        m->info.state = st;
        m->info.error = err;
        m->info.result = PCP_RESULT_SUCCESS;
        mapping_timer(e, m, now + (uint64_t) lifetime * SEC / 2);
        if (s->natpmp_addr_at == PCP_NEVER) {
                /* and make sure the address is being asked for */
                s->natpmp_addr_rt = 0;
                s->natpmp_addr_at = now;
                server_timer_update(e, s);
        }
        if (changed)
                emit_mapping(e, m);
}

static void handle_natpmp_response(pcp_engine *e, pcp_server *s, size_t addr_index, uint64_t now, uint64_t rx,
                                   const natpmp_msg *n, size_t len) {
        pcp_mapping *m;
        uint8_t protocol;

        /* the 8-octet "unsupported version": a NAT-PMP server answering our PCP request */
        if (len == 8 && n->result == NATPMP_RESULT_UNSUPP_VERSION) {
                version_answer(e, s, addr_index, now, PCP_SERVER_NATPMP);
                return;
        }
        if (s->info.state != PCP_SERVER_NATPMP) {
                if (s->info.state == PCP_SERVER_UNREACHABLE) {
                        /* a server driven with NAT-PMP until ICMP came, back: not taken
                         * (its mappings are asked in PCP while it is unreachable), but no
                         * wrong version either; it is probed (server_back_hint()) */
                        drop(e, PCP_DROP_UNSOLICITED);
                        server_back_hint(e, s, now);
                        return;
                }
                drop(e, PCP_DROP_WRONG_VERSION);
                return;
        }
        server_answered(e, s, addr_index, now);

        if (n->opcode == NATPMP_OPCODE_EXTERNAL_ADDRESS) {
                if (s->natpmp_addr_at == PCP_NEVER && s->natpmp_addr_rt == 0) {
                        drop(e, PCP_DROP_UNSOLICITED);
                        return;
                }
                /* answered (heard: server_answered()); one asked again later is not out */
                s->natpmp_addr_out = false;
                if (n->result == NATPMP_RESULT_SUCCESS && !natpmp_addr_usable(&n->external_addr)) {
                        /* SUCCESS, but no address (0.0.0.0) or none a peer could reach:
                         * nothing to learn; asked again on the schedule */
                        drop(e, PCP_DROP_UNUSABLE);
                        natpmp_no_address(e, s);
                        return;
                }
                check_epoch(e, s, now, rx, n->epoch, true, NULL);
                if (n->result != NATPMP_RESULT_SUCCESS) {
                        /* no address (RFC 6886 §3.2: NETWORK_FAILURE until the gateway has
                         * one): asked again on the schedule too */
                        s->info.last_result = natpmp_result_to_pcp(n->result);
                        natpmp_no_address(e, s);
                        return;
                }
                s->natpmp_addr_at = PCP_NEVER;
                s->natpmp_addr_rt = 0;
                server_timer_update(e, s);
                natpmp_set_external(e, s, now, &n->external_addr);
                return;
        }

        protocol = n->opcode == NATPMP_OPCODE_MAP_UDP ? IPPROTO_UDP : IPPROTO_TCP;
        if (len == 8) {
                /* RFC 6886 §3.5: an error may come as the 8-octet header alone, without the
                 * ports. It answers one of our requests of that opcode: if exactly one is
                 * outstanding it is that one's; otherwise there is no telling (drop, count). */
                pcp_mapping *only = NULL;
                size_t n_out = 0;

                for (pcp_mapping *x = s->mappings; x != NULL && n_out < 2; x = x->srv_next)
                        if (x->info.natpmp && x->awaiting && x->info.protocol == protocol) {
                                only = x;
                                n_out++;
                        }
                if (n_out != 1) {
                        drop(e, n_out == 0 ? PCP_DROP_UNSOLICITED : PCP_DROP_AMBIGUOUS);
                        return;
                }
                m = only;
        } else
                m = find_natpmp_mapping(s, protocol, n->internal_port);
        if (m == NULL) {
                drop(e, PCP_DROP_UNKNOWN_NONCE);
                return;
        }
        slot_release(e, m);
        if (m->info.state == PCP_MAPPING_DELETING) {
                check_epoch(e, s, now, rx, n->epoch, true, m);
                mapping_deleted(e, m, n->result == NATPMP_RESULT_SUCCESS);
                return;
        }
        if (!m->awaiting) {
                drop(e, PCP_DROP_UNSOLICITED);
                return;
        }
        check_epoch(e, s, now, rx, n->epoch, true, m);
        if (n->result == NATPMP_RESULT_SUCCESS) {
                pcp_mapping_error bad = port_lifetime_problem(m, n->external_port, n->lifetime);

                if (bad != PCP_MAPPING_ERROR_NONE) {
                        mapping_unusable(e, m, now, bad);
                        return;
                }
                if (!s->info.has_external_addr ||
                    address_problem(m, &s->info.external_addr) != PCP_MAPPING_ERROR_NONE) {
                        natpmp_hold(e, s, m, now, n->external_port, n->lifetime);
                        return;
                }
                if (m->info.state == PCP_MAPPING_RENEWING)
                        e->stats.renewals++;
                mapping_granted(e, m, now, &s->info.external_addr, n->external_port, n->lifetime);
        } else {
                uint8_t r = natpmp_result_to_pcp(n->result);
                /* RFC 6886 has no error lifetimes: short errors wait the short floor */
                mapping_error(e, m, now, r, 0);
        }
}

void pcp_engine_receive_at(pcp_engine *e, uint64_t now, uint64_t rx, uint32_t server_id, size_t addr_index,
                           const struct sockaddr_in6 *from, const uint8_t *buf, size_t len) {
        pcp_server *s;

        reap(e);
        s = find_server(e, server_id);
        rx = min_u64(rx, now);

        e->stats.received++;
        if (s == NULL || addr_index >= s->info.n_addrs || from == NULL ||
            !same_endpoint(from, &s->info.addrs[addr_index].remote)) {
                drop(e, PCP_DROP_WRONG_SOURCE);
                return;
        }
        if (len >= 1 && buf[0] == NATPMP_VERSION) {
                natpmp_msg n;
                if (natpmp_decode(buf, len, true, &n) != PCP_WIRE_OK) {
                        drop(e, PCP_DROP_MALFORMED);
                        return;
                }
                handle_natpmp_response(e, s, addr_index, now, rx, &n, len);
                /* what the answer started (recreations, a switch to NAT-PMP, another
                 * address) goes out now, before we return */
                run_due(e, now);
                return;
        }

        pcp_msg msg;
        if (pcp_decode(buf, len, true, &msg) != PCP_WIRE_OK) {
                drop(e, msg.version != PCP_VERSION && len >= 1 ? PCP_DROP_WRONG_VERSION : PCP_DROP_MALFORMED);
                return;
        }
        handle_pcp_response(e, s, addr_index, now, rx, &msg);
        run_due(e, now);
}

void pcp_engine_receive(pcp_engine *e, uint64_t now, uint32_t server_id, size_t addr_index,
                        const struct sockaddr_in6 *from, const uint8_t *buf, size_t len) {
        pcp_engine_receive_at(e, now, now, server_id, addr_index, from, buf, len);
}

static pcp_server *find_server_by_remote(pcp_engine *e, const struct sockaddr_in6 *from) {
        for (pcp_server *s = e->servers; s != NULL; s = s->next)
                for (size_t i = 0; i < s->info.n_addrs; i++)
                        if (memcmp(&s->info.addrs[i].remote.sin6_addr, &from->sin6_addr, 16) == 0)
                                return s;
        return NULL;
}

static void receive_announce(pcp_engine *e, uint64_t now, uint64_t rx, const struct sockaddr_in6 *from,
                             const uint8_t *buf, size_t len) {
        pcp_server *s;

        e->stats.received++;
        s = from != NULL ? find_server_by_remote(e, from) : NULL;
        if (s == NULL) {
                drop(e, PCP_DROP_UNKNOWN_SERVER);
                return;
        }

        if (len >= 1 && buf[0] == NATPMP_VERSION) {
                natpmp_msg n;
                if (natpmp_decode(buf, len, true, &n) != PCP_WIRE_OK ||
                    n.opcode != NATPMP_OPCODE_EXTERNAL_ADDRESS || n.result != NATPMP_RESULT_SUCCESS || len != 12) {
                        drop(e, PCP_DROP_MALFORMED);
                        return;
                }
                if (s->info.state == PCP_SERVER_NATPMP) {
                        struct in6_addr ext;

                        if (!natpmp_addr_usable(&n.external_addr)) {
                                drop(e, PCP_DROP_UNUSABLE);
                                return;
                        }
                        /* RFC 6886 §3.6: an epoch that looks like a restart has the mappings
                         * asked again, whose answers tell (announce_looks_reset()) */
                        if (announce_looks_reset(s, rx, n.epoch, true))
                                server_lost_state(e, s, now, false, true, true, NULL);
                        /* RFC 6886 §3.2.1's notice names the new address, but it comes to a
                         * port any host of the link can reach, with nothing a forger would
                         * not know: taken as written, one datagram would rewrite (and have
                         * the owner store, signal and log) every mapping's address, and stay
                         * until the next notice. So it is a hint: the address is asked of
                         * the gateway on the server's own socket (its answer must come from
                         * the address and port the request went to), at most once per
                         * NATPMP_NOTICE_INTERVAL, and only when the notice names another
                         * address than the one known (or the last answer named none). */
                        pcp_addr_from_ipv4(&n.external_addr, &ext);
                        if (s->info.has_external_addr && !s->natpmp_addr_unusable &&
                            memcmp(&s->info.external_addr, &ext, 16) == 0)
                                return;
                        if (s->natpmp_addr_at == PCP_NEVER) {
                                s->natpmp_addr_rt = 0;
                                s->natpmp_addr_at = max_u64(now, s->natpmp_notice_next);
                                s->natpmp_notice_next = s->natpmp_addr_at + NATPMP_NOTICE_INTERVAL;
                                server_timer_update(e, s);
                        }
                } else if (s->info.state == PCP_SERVER_PCP)
                        /* a PCP server's NAT-PMP side says the address changed: re-check all */
                        server_lost_state(e, s, now, false, true, false, NULL);
                else if (s->info.state == PCP_SERVER_UNREACHABLE)
                        /* a NAT-PMP gateway sends it as it boots (RFC 6886 §3.2.1): maybe
                         * back, as after a PCP ANNOUNCE below; the probe's answer tells */
                        server_hint(e, s, now);
                else
                        /* a server that is not driving mappings (not probed yet, speaking
                         * no protocol we use, off): nothing to renew, nothing to learn */
                        drop(e, PCP_DROP_UNSOLICITED);
                return;
        }

        pcp_msg msg;
        if (pcp_decode(buf, len, true, &msg) != PCP_WIRE_OK || msg.version != PCP_VERSION) {
                drop(e, PCP_DROP_MALFORMED);
                return;
        }
        if (msg.opcode != PCP_OPCODE_ANNOUNCE || msg.result != PCP_RESULT_SUCCESS) {
                drop(e, PCP_DROP_WRONG_OPCODE);
                return;
        }
        if (s->info.state == PCP_SERVER_DISABLED) {
                /* it said NOT_AUTHORIZED: asked again when that runs out, not before */
                drop(e, PCP_DROP_UNSOLICITED);
                return;
        }
        if (s->info.state != PCP_SERVER_PCP) {
                /* It comes to a port any host of the link can reach, with nothing a forger
                 * would not know but the server's address: taken as written, one datagram
                 * made a NAT-PMP-only router not probed yet (or one that is gone) "pcp",
                 * stopped the probe that would have told, and set its epoch; to a NAT-PMP
                 * or unsupported one it recreated every mapping. So to a server not known
                 * to speak PCP it is a hint (PCP may have been switched on): the server is
                 * asked at once (server_hint()); the state and the epoch are the probe's
                 * answer's to set. */
                server_hint(e, s, now);
                return;
        }
        /* An ANNOUNCE means "something changed" even when the epoch looks consistent
         * (miniupnpd with system_uptime=yes restarts without an epoch jump): renew
         * everything after a random delay (RFC 6887 §14.1.3), as often as the recreation
         * limit allows (server_lost_state()). Its epoch is not taken: the answers' is
         * (announce_looks_reset()). */
        server_lost_state(e, s, now, false, true, announce_looks_reset(s, rx, msg.epoch, false), NULL);
}

void pcp_engine_receive_announce_at(pcp_engine *e, uint64_t now, uint64_t rx, const struct sockaddr_in6 *from,
                                    const uint8_t *buf, size_t len) {
        reap(e);
        receive_announce(e, now, min_u64(rx, now), from, buf, len);
        run_due(e, now);
}

void pcp_engine_receive_announce(pcp_engine *e, uint64_t now, const struct sockaddr_in6 *from,
                                 const uint8_t *buf, size_t len) {
        pcp_engine_receive_announce_at(e, now, now, from, buf, len);
}

/* a mapping waiting for its grant learns that its server does not answer (ICMP, or
 * silence: mapping_timeout()); its request is still retried on its schedule */
static void mapping_unreachable(pcp_engine *e, pcp_mapping *m) {
        m->info.state = PCP_MAPPING_FAILED;
        m->info.error = PCP_MAPPING_ERROR_UNREACHABLE;
        emit_mapping(e, m);
}

/* The server does not answer at any address: deletes are given up, waiting requests fail
 * UNREACHABLE (once each; they keep being retried on their schedule). */
static void mappings_unreachable(pcp_engine *e, pcp_server *s) {
        for (pcp_mapping *m = s->mappings, *next; m != NULL; m = next) {
                next = m->srv_next; /* m may be freed */
                if (m->info.state == PCP_MAPPING_DELETING) {
                        mapping_deleted(e, m, false);
                        continue;
                }
                if (m->info.state == PCP_MAPPING_ACTIVE || m->info.state == PCP_MAPPING_RENEWING)
                        continue; /* still granted until it expires */
                if (m->info.state == PCP_MAPPING_FAILED && m->info.error == PCP_MAPPING_ERROR_UNREACHABLE)
                        continue; /* told already */
                mapping_unreachable(e, m);
        }
}

/* Would a real ICMP error from s come now? It answers a datagram sent moments ago (within
 * ICMP_WINDOW), and it only matters while something is asked of s. One that comes
 * otherwise (a forger on the link who knows the socket's ports, or a late one for a request
 * answered since) demoted a server that answered a second ago: UNREACHABLE, its pending
 * mappings failed, new ones sent elsewhere. O(1): the time of the last request, and the
 * counts the silence timing keeps anyway. */
static bool icmp_plausible(const pcp_server *s, uint64_t now) {
        if (now < s->sent_at || now - s->sent_at > ICMP_WINDOW) /* PCP_NEVER: none went */
                return false;
        return s->n_awaiting > 0 || s->probing || s->natpmp_addr_out;
}

static void unreachable(pcp_engine *e, uint64_t now, uint32_t server_id, size_t addr_index) {
        pcp_server *s = find_server(e, server_id);
        size_t next_addr = SIZE_MAX;

        if (s == NULL || addr_index >= s->info.n_addrs)
                return;
        if (!icmp_plausible(s, now)) {
                drop(e, PCP_DROP_STRAY_ICMP);
                return;
        }
        s->addr_unreachable[addr_index] = true;
        /* an ICMP error for something sent to an address we already left changes nothing:
         * reacting to each of them would resend everything once per error (a storm) */
        if (addr_index != s->info.current_addr)
                return;
        if (s->info.state == PCP_SERVER_UNREACHABLE) {
                /* every address failed already: the next scheduled retry tries the next one;
                 * mappings added since then learn it now */
                s->info.current_addr = (addr_index + 1) % s->info.n_addrs;
                mappings_unreachable(e, s);
                return;
        }
        for (size_t i = 0; i < s->info.n_addrs; i++)
                if (!s->addr_unreachable[i]) {
                        next_addr = i;
                        break;
                }
        if (next_addr != SIZE_MAX) {
                /* RFC 7488: try the next address, at once; the same requests, the
                 * retransmission schedule unchanged */
                s->info.current_addr = next_addr;
                s->sticky = false;
                for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next)
                        if (m->awaiting)
                                send_mapping_request(e, m, now);
                if (s->probing)
                        send_announce_probe(e, s, now);
                if (s->natpmp_addr_at != PCP_NEVER)
                        send_natpmp_addr_request(e, s, now);
                return;
        }

        /* nobody there: back to the first address for the retries */
        s->info.current_addr = 0;
        if (s->info.state == PCP_SERVER_DISABLED)
                return;
        server_set_state(e, s, PCP_SERVER_UNREACHABLE);
        mappings_unreachable(e, s);
}

void pcp_engine_unreachable(pcp_engine *e, uint64_t now, uint32_t server_id, size_t addr_index) {
        reap(e);
        e->stats.received++; /* an ICMP error is input too (a stray one is dropped) */
        unreachable(e, now, server_id, addr_index);
        /* RFC 7488: the next address is tried at once */
        run_due(e, now);
}

/* ---- timers ---- */

static void mapping_timeout(pcp_engine *e, pcp_mapping *m, uint64_t now) {
        /* its request went unanswered for a retransmission timeout: lost, as far as the
         * bound is concerned (its retransmissions go without a slot) */
        slot_release(e, m);
        switch (m->info.state) {
        case PCP_MAPPING_DELETING:
                if (m->delete_sent >= e->cfg.delete_attempts) {
                        mapping_deleted(e, m, false);
                        return;
                }
                mapping_send_delete(e, m, now);
                return;

        case PCP_MAPPING_ACTIVE:
        case PCP_MAPPING_RENEWING:
                if (m->info.expires_at != 0 && now >= m->info.expires_at) {
                        /* lost: the server stopped answering; keep asking on the RFC schedule */
                        m->info.state = PCP_MAPPING_PENDING;
                        m->info.error = PCP_MAPPING_ERROR_EXPIRED;
                        m->info.expires_at = 0;
                        m->rt = 0;
                        m->info.retransmissions = 0;
                        mapping_transmit(e, m, now);
                        emit_mapping(e, m);
                        return;
                }
                if (m->recreating) {
                        /* asking again after an epoch reset or ANNOUNCE: RFC schedule */
                        mapping_transmit(e, m, now);
                        return;
                }
                if (m->info.state == PCP_MAPPING_ACTIVE) {
                        m->info.state = PCP_MAPPING_RENEWING;
                        emit_mapping(e, m);
                }
                if (m->renew_step > 1)
                        e->stats.retransmissions++;
                send_mapping_request(e, m, now);
                if (m->renew_step < UINT16_MAX)
                        m->renew_step++;
                if (mapping_uses_natpmp(m))
                        /* RFC 6886: from half the lifetime, its own retransmission schedule */
                        mapping_timer(e, m, min_u64(now + next_rt(e, m), m->info.expires_at));
                else
                        schedule_renewal(e, m);
                return;

        case PCP_MAPPING_PENDING:
        case PCP_MAPPING_FAILED:
        default:
                if (m->server->info.state == PCP_SERVER_DISABLED || m->server->info.state == PCP_SERVER_UNSUPPORTED) {
                        /* waits for the server to come back; its timer restarts us */
                        mapping_timer(e, m, PCP_NEVER);
                        return;
                }
                if (m->server->info.state == PCP_SERVER_NATPMP && !natpmp_can(m)) {
                        mapping_timer(e, m, PCP_NEVER);
                        return;
                }
                mapping_transmit(e, m, now);
                /* RFC 6887 §8.1.1 retransmits for ever, and so does the engine; but whoever
                 * waits for the first grant must learn that the server stopped answering
                 * (or never did): after SILENT_FAIL_RETRANSMISSIONS tries and SILENT_FAIL
                 * with nothing at all heard from the server, the mapping fails UNREACHABLE,
                 * once, as for ICMP (mappings_unreachable()), and is still asked on its
                 * schedule: a grant makes it active. A server that answers others is alive:
                 * this one just waits. */
                if (m->info.state == PCP_MAPPING_PENDING && m->info.error == PCP_MAPPING_ERROR_NONE &&
                    m->info.retransmissions >= SILENT_FAIL_RETRANSMISSIONS &&
                    now - m->server->heard_at >= SILENT_FAIL)
                        mapping_unreachable(e, m);
                return;
        }
}

static void server_timeout(pcp_engine *e, pcp_server *s, uint64_t now) {
        if (s->version_doubt_at <= now) {
                /* nothing but "version not supported" since the doubt began: so it is */
                s->version_doubt_at = PCP_NEVER;
                if (s->info.state == PCP_SERVER_PCP) {
                        if (s->version_doubt == PCP_SERVER_NATPMP)
                                server_switch_natpmp(e, s, now);
                        else
                                server_unsupported(e, s, now);
                }
        }
        if (s->info.state == PCP_SERVER_DISABLED && now >= s->info.disabled_until) {
                /* try again: probe, and let the waiting mappings ask (spread out) */
                s->info.disabled_until = 0;
                server_set_state(e, s, PCP_SERVER_UNKNOWN);
                for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next)
                        if (m->info.state != PCP_MAPPING_DELETING && !pcp_heap_item_queued(&m->timer))
                                mapping_restart(e, m, now + random_between(e, 0, e->cfg.announce_delay_max));
                server_start_probe(e, s, now);
        }
        if (s->reprobe_at <= now) {
                s->reprobe_at = PCP_NEVER;
                if (s->info.state == PCP_SERVER_UNSUPPORTED) {
                        server_set_state(e, s, PCP_SERVER_UNKNOWN);
                        for (pcp_mapping *m = s->mappings; m != NULL; m = m->srv_next)
                                if (m->info.state != PCP_MAPPING_DELETING)
                                        mapping_restart(e, m, now + random_between(e, 0, e->cfg.announce_delay_max));
                }
                server_start_probe(e, s, now);
        }
        if (s->recreate_at <= now) {
                bool reset = s->pending_reset, from_announce = s->pending_announce;

                s->recreate_at = PCP_NEVER;
                s->pending_reset = s->pending_announce = false;
                server_recreate(e, s, now, reset, from_announce, true, false, NULL);
        }
        if (s->probe_at <= now) {
                send_announce_probe(e, s, now);
                s->probe_rt = s->probe_rt == 0 ? jitter(e, e->cfg.irt) : jitter(e, min_u64(2 * s->probe_rt, e->cfg.mrt));
                s->probe_at = now + s->probe_rt;
        }
        if (s->natpmp_addr_at <= now) {
                send_natpmp_addr_request(e, s, now);
                s->natpmp_addr_rt = s->natpmp_addr_rt == 0 ? NATPMP_IRT : min_u64(2 * s->natpmp_addr_rt, e->cfg.mrt);
                s->natpmp_addr_at = now + s->natpmp_addr_rt;
        }
        if (silent_at(s) <= now) {
                /* asked SILENT_FAIL ago, nothing heard since: told, its state kept */
                s->info.silent = true;
                s->info.silent_since = s->asking_since;
                emit_server(e, s);
        }
        server_timer_update(e, s);
}

/* The earlier of the two heaps' tops, in *h its heap; NULL if both are empty. On a tie the
 * server's goes first (in one heap, ties went in the heap's order: arbitrary too). */
static pcp_heap_item *timer_top(pcp_engine *e, pcp_heap **h, uint64_t *when) {
        uint64_t wm = PCP_NEVER, ws = PCP_NEVER;
        pcp_heap_item *m = pcp_heap_top(&e->timers, &wm), *s = pcp_heap_top(&e->server_timers, &ws);

        if (s != NULL && (m == NULL || ws <= wm)) {
                *h = &e->server_timers;
                *when = ws;
                return s;
        }
        *h = &e->timers;
        *when = wm;
        return m;
}

uint64_t pcp_engine_next_deadline(pcp_engine *e) {
        pcp_heap *h;
        uint64_t when;

        if (e->room != NULL)
                return 0; /* a slot freed by a call without a time (forget): due now */
        return timer_top(e, &h, &when) != NULL ? when : PCP_NEVER;
}

/* Every handler re-arms its timer strictly in the future or clears it. The timer stays in
 * the heap while its handler runs: re-arming it moves it from the top, which costs one
 * sift instead of a removal (the last entry sifted down from the top) and an insertion. A
 * mapping deleted by its handler is a zombie, still in memory (mapping_deleted()). */
static void run_due(pcp_engine *e, uint64_t now) {
        pcp_heap_item *it;
        pcp_heap *h;
        uint64_t when;

        if (e->room != NULL)
                promote(e, now);
        while ((it = timer_top(e, &h, &when)) != NULL && when <= now) {
                if (h == &e->timers)
                        mapping_timeout(e, container_of(it, pcp_mapping, timer), now);
                else
                        server_timeout(e, container_of(it, pcp_server, timer), now);
                /* a handler that did neither would spin here: its timer is taken out */
                if (pcp_heap_item_queued(it) && pcp_heap_item_key(h, it) <= now)
                        pcp_heap_remove(h, it);
                /* what its handler freed goes before the next timer (a promoted request
                 * arms its timer in the future) */
                if (e->room != NULL)
                        promote(e, now);
        }
}

void pcp_engine_process_timers(pcp_engine *e, uint64_t now) {
        reap(e);
        run_due(e, now);
}
