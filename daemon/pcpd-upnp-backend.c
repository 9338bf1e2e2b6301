/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The UPnP-IGD backend (pcpd-backend.h) on pcpd-upnp.[ch]: one pcpd_upnp client per
 * interface whose IPv4 router speaks neither PCP nor NAT-PMP, restricted to that router's
 * address (the gateway), created the first time a mapping falls back to it.
 *
 * What pcpd must remember of a UPnP mapping is in its saved record (fill_record): the
 * interface, the IGD, the external port, whether the IGD took only a permanent lease (725).
 * A permanent mapping is deleted by pcpd itself: on release and owner death (remove: a
 * deleting record of its own, deleting_record, which the manager keeps until the IGD
 * confirms; one the IGD does not confirm is tried again while pcpd runs, a bounded number
 * of times: pcpd_upnp_delete_next_try()), at shutdown (its mapping record stays, so that a
 * restarted pcpd takes it back for its app or deletes it after the grace period), and
 * after a crash (the same restore path). A leased one expires by itself.
 *
 * Its news goes up through the backend events it was given (pcpd-backend-events.h), like
 * every backend's: it knows nothing of the manager.
 */

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>

#include "pcp-wire.h"
#include "pcp1-contract.h"
#include "pcpd-backend.h"
#include "pcpd-log.h"
#include "pcpd-upnp.h"

#define SHUTDOWN_WAIT_MS 5000
#define PERMANENT_DELETE_KEEP_S (30u * 24 * 3600) /* a deleting record of a permanent mapping */
/* A delete the manager keeps a record of that the IGD did not confirm is tried again while
 * pcpd runs: at once when an IGD appears on its interface, else on the back-off of
 * pcpd_upnp_delete_next_try_from() (UpnpDeleteRetrySeconds=, 60 s by default, doubling,
 * PCPD_UPNP_DELETE_RETRIES times in all). Then
 * it is given up for this run (the record stays: the next start tries again). */

typedef struct upnp_backend upnp_backend;

/* A delete under way (in ui->deleting, by its upnp id) or waiting to be tried again (in
 * b->waiting). cookie ≠ 0: the manager keeps its record, and is told its end. */
typedef struct upnp_delete {
        upnp_backend *b;
        uint64_t cookie;
        char ifname[IF_NAMESIZE];
        bool has_rec;           /* what to delete again (a permanent mapping's entry) */
        bool internal_from_if;  /* rec.internal_addr is the host's address on ifname, asked anew */
        pcpd_upnp_record rec;   /* igd_addr: the router it was on */
        pcpd_upnp_delete_state st; /* its tries so far, how the last one failed */
        guint timer;            /* waiting: the next try */
} upnp_delete;

typedef struct upnp_iface {
        upnp_backend *b;
        char ifname[IF_NAMESIZE];
        struct in6_addr gateway;
        pcpd_upnp *u;
        GHashTable *held;     /* upnp id (uint64_t *) -> struct pcpd_backend_mapping * */
        GHashTable *deleting; /* upnp id (uint64_t *) -> upnp_delete * (owned) */
        bool igd_present;
} upnp_iface;

struct pcpd_backend_mapping {
        upnp_iface *ui;
        uint64_t id; /* in ui->u */
        pcpd_mapping *mp;
        bool has_record;
        pcpd_upnp_record rec;
        bool logged_permanent;
};

struct upnp_backend {
        pcpd_backend base;
        GHashTable *ifaces; /* ifname -> upnp_iface * (owned) */
        GPtrArray *waiting; /* upnp_delete * (owned): failed deletes to try again */
        uint32_t delete_retry_s; /* UpnpDeleteRetrySeconds=: the first wait before a try again */
        bool shutting_down;
        bool freeing; /* the manager is going: nothing is told any more */
        /* "cannot be used" said for the missing module (-ELIBACC) already: the loader has
         * said which file once, and it stays missing (pcpd-module.c tries once), so each
         * later interface check says it at debug level only */
        bool said_no_module;
};

static uint64_t realtime_us(void) {
        return (uint64_t) g_get_real_time();
}

/* ---- news up ---- */

static void tell_mapping(upnp_backend *b, pcpd_mapping *mp, const pcpd_backend_info *i) {
        b->base.events->mapping_changed(b->base.userdata, mp, i, false);
}

static void tell_deleting_done(upnp_backend *b, uint64_t cookie, bool confirmed) {
        if (cookie != 0 && !b->freeing)
                b->base.events->deleting_done(b->base.userdata, cookie, confirmed);
}

static void delete_free(upnp_delete *d) {
        if (d == NULL)
                return;
        if (d->timer != 0)
                g_source_remove(d->timer);
        g_free(d);
}

static upnp_delete *delete_new(upnp_backend *b, uint64_t cookie, const char *ifname) {
        upnp_delete *d = g_new0(upnp_delete, 1);

        d->b = b;
        d->cookie = cookie;
        g_strlcpy(d->ifname, ifname ?: "", sizeof(d->ifname));
        return d;
}

static void sockaddr_ipv4(const struct sockaddr *sa, struct in6_addr *ret) {
        struct sockaddr_in sin;

        memcpy(&sin, sa, sizeof(sin)); /* not cast: sockaddr is less aligned */
        pcp_addr_from_ipv4(&sin.sin_addr, ret);
}

/* The host's IPv4 address on ifname (IPv4-mapped). */
static bool iface_ipv4(const char *ifname, struct in6_addr *ret) {
        struct ifaddrs *ifa_list, *ifa;
        bool found = false;

        if (getifaddrs(&ifa_list) < 0)
                return false;
        for (ifa = ifa_list; ifa != NULL && !found; ifa = ifa->ifa_next) {
                if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != AF_INET || strcmp(ifa->ifa_name, ifname) != 0)
                        continue;
                sockaddr_ipv4(ifa->ifa_addr, ret);
                found = true;
        }
        freeifaddrs(ifa_list);
        return found;
}

/* Is a (IPv4-mapped) one of this host's addresses? */
static bool host_owns(const struct in6_addr *a) {
        struct ifaddrs *ifa_list, *ifa;
        bool found = false;

        if (getifaddrs(&ifa_list) < 0)
                return false;
        for (ifa = ifa_list; ifa != NULL && !found; ifa = ifa->ifa_next) {
                struct in6_addr x;
                if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != AF_INET)
                        continue;
                sockaddr_ipv4(ifa->ifa_addr, &x);
                found = memcmp(&x, a, sizeof(x)) == 0;
        }
        freeifaddrs(ifa_list);
        return found;
}

static void info_from_upnp(const pcpd_upnp_info *i, pcpd_backend_info *ret) {
        gint64 now = g_get_monotonic_time();

        *ret = (pcpd_backend_info) {
                .error = pcpd_upnp_error_name(i->error),
                .has_external = i->has_external,
                .external_addr = i->external_addr,
                .external_port = i->has_external ? i->external_port : 0,
                .internal_addr = i->internal_addr,
                .lifetime_granted = i->has_external ? i->lease : 0,
        };
        switch (i->state) {
        case PCPD_UPNP_ACTIVE:
                ret->state = "active";
                break;
        case PCPD_UPNP_FAILED:
                ret->state = "failed";
                break;
        default:
                ret->state = i->has_external ? "renewing" : "pending";
                break;
        }
        if (i->has_external && !i->permanent && i->expires_at != 0)
                ret->expires_at = realtime_us() +
                                  ((gint64) i->expires_at > now ? (uint64_t) ((gint64) i->expires_at - now) : 0);
}

/* Nothing to show yet: no IGD found (now), never granted. The engine's state (failed,
 * with why PCP did not work) stays published meanwhile. */
static bool nothing_to_show(pcpd_upnp *u, const pcpd_upnp_info *i) {
        const pcpd_upnp_igd_info *igd = pcpd_upnp_get_igd(u);

        return !i->has_external && (igd == NULL || !igd->present);
}

static bool request_for(const pcpd_mapping *mp, const upnp_iface *ui, const char *ifname, pcpd_upnp_request *req) {
        *req = (pcpd_upnp_request) {
                .protocol = mp->protocol,
                .internal_port = mp->internal_port,
                .suggested_external_port = mp->suggested_port,
                .lifetime = mp->lifetime,
                .description = mp->description != NULL && mp->description[0] != '\0' ? mp->description : NULL,
                .prefer_failure = mp->prefer_failure,
                .peer = mp->opcode == PCP_OPCODE_PEER,
                .n_filters = pcpd_mapping_n_filters(mp),
        };
        (void) ui;
        /* what the IGD cannot take (too long, control characters): its default */
        if (!pcpd_upnp_description_ok(req->description))
                req->description = NULL;
        if (mp->family != AF_INET) {
                /* refused by pcpd_upnp_refuse_reason() for what it is */
                req->internal_addr = in6addr_loopback;
                return true;
        }
        if (mp->has_third_party) {
                req->internal_addr = *pcpd_mapping_third_party(mp);
                req->third_party = !host_owns(pcpd_mapping_third_party(mp));
                return true;
        }
        return iface_ipv4(ifname, &req->internal_addr);
}

static void on_upnp_event(void *userdata, const pcpd_upnp_event *ev);

static void iface_free(upnp_iface *ui) {
        GHashTableIter it;
        gpointer v;

        if (ui == NULL)
                return;
        g_hash_table_iter_init(&it, ui->held);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                struct pcpd_backend_mapping *l = v;
                if (l->mp != NULL)
                        l->mp->backend = NULL;
                g_free(l);
        }
        g_hash_table_destroy(ui->held);
        g_hash_table_destroy(ui->deleting);
        pcpd_upnp_free(ui->u);
        g_free(ui);
}

/* The client for ifname, restricted to gateway (created, or moved to a new gateway); NULL
 * and *ret_error (may be NULL) when there is none: -EINVAL, or pcpd_upnp_new()'s or
 * pcpd_upnp_set_interface()'s error (-ENODEV: no such interface or no address on it).
 * Without ret_error a client that cannot be made is logged here; with it the caller says
 * why in its own line (a delete's try: one line per try, not a second warning). */
static upnp_iface *iface_get_error(upnp_backend *b, const char *ifname, const struct in6_addr *gateway,
                                   int *ret_error) {
        upnp_iface *ui = g_hash_table_lookup(b->ifaces, ifname);
        pcpd_upnp_ops ops = { .event = on_upnp_event };
        char buf[PCP_ADDR_STRLEN];
        int r;

        if (ret_error != NULL)
                *ret_error = -EINVAL;
        if (ifname == NULL || ifname[0] == '\0' || strlen(ifname) >= IF_NAMESIZE)
                return NULL;
        if (ui != NULL) {
                if (memcmp(&ui->gateway, gateway, sizeof(*gateway)) != 0) {
                        r = pcpd_upnp_set_interface(ui->u, ifname, AF_INET, gateway);
                        if (r < 0)
                                g_warning("UPnP-IGD on %s: cannot follow the router to %s: %s", ifname,
                                          pcp_addr_to_string(gateway, buf), g_strerror(-r));
                        else
                                ui->gateway = *gateway;
                }
                return ui;
        }
        ui = g_new0(upnp_iface, 1);
        ui->b = b;
        g_strlcpy(ui->ifname, ifname, sizeof(ui->ifname));
        ui->gateway = *gateway;
        ui->held = g_hash_table_new(g_int64_hash, g_int64_equal);
        ui->deleting = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, (GDestroyNotify) delete_free);
        r = pcpd_upnp_new(NULL, NULL, &ops, ui, &ui->u);
        if (r >= 0)
                r = pcpd_upnp_set_interface(ui->u, ifname, AF_INET, gateway);
        if (r < 0) {
                if (ret_error != NULL)
                        g_debug("UPnP-IGD on %s cannot be used: %s", ifname, g_strerror(-r));
                else if (r != -ELIBACC || !b->said_no_module)
                        g_warning("UPnP-IGD on %s cannot be used: %s", ifname, g_strerror(-r));
                else
                        g_debug("UPnP-IGD on %s cannot be used: %s", ifname, g_strerror(-r));
                b->said_no_module = b->said_no_module || (r == -ELIBACC && ret_error == NULL);
                iface_free(ui);
                if (ret_error != NULL)
                        *ret_error = r;
                return NULL;
        }
        g_message("Searching for a UPnP-IGD at %s on %s: the router speaks neither PCP nor NAT-PMP",
                  pcp_addr_to_string(gateway, buf), ifname);
        g_hash_table_insert(b->ifaces, ui->ifname, ui);
        return ui;
}

static upnp_iface *iface_get(upnp_backend *b, const char *ifname, const struct in6_addr *gateway) {
        return iface_get_error(b, ifname, gateway, NULL);
}

static void link_take_record(struct pcpd_backend_mapping *l, upnp_backend *b) {
        pcpd_upnp_record rec;

        if (pcpd_upnp_get_record(l->ui->u, l->id, &rec) < 0)
                return;
        if (l->has_record && memcmp(&rec, &l->rec, sizeof(rec)) == 0)
                return;
        l->rec = rec;
        l->has_record = true;
        if (rec.permanent && !l->logged_permanent) {
                l->logged_permanent = true;
                pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_GRANTED, l->mp, NULL, NULL,
                                 "Mapping %s: the UPnP-IGD on %s takes only permanent mappings (error 725): pcpd "
                                 "deletes it itself when it is released",
                                 PCPD_MAPPING_PATH(l->mp), l->ui->ifname);
        }
        b->base.events->mapping_record_changed(b->base.userdata, l->mp);
}

/* ---- deletes the manager keeps a record of, tried again while pcpd runs ---- */

static void delete_failed(upnp_delete *d);

static bool internal_known(const pcpd_upnp_record *rec) {
        static const uint8_t any[4] = { 0 };

        /* ::ffff:0.0.0.0 is no client either */
        return IN6_IS_ADDR_V4MAPPED(&rec->internal_addr) && memcmp(&rec->internal_addr.s6_addr[12], any, 4) != 0;
}

/* d (waiting, or new) goes out (again) at the IGD of its interface; or it has failed once more */
static void delete_send(upnp_delete *d) {
        upnp_backend *b = d->b;
        upnp_iface *ui = g_hash_table_lookup(b->ifaces, d->ifname);
        uint64_t id;
        int r = 0;

        /* no internal client in the record (the host had no address on the interface when
         * it was made): the host's address there now; the IGD's entry is deleted only if it
         * maps to that address and port (pcpd_upnp_remove_record) */
        if (!internal_known(&d->rec))
                d->internal_from_if = true;
        if (ui == NULL)
                ui = iface_get_error(b, d->ifname, &d->rec.igd_addr, &r);
        if (ui != NULL && d->internal_from_if && !iface_ipv4(ui->ifname, &d->rec.internal_addr))
                r = -EADDRNOTAVAIL;
        else if (ui != NULL)
                r = pcpd_upnp_remove_record(ui->u, &d->rec, &id);
        if (r == 0) {
                d->st.sent++;
                g_hash_table_insert(ui->deleting, g_memdup2(&id, sizeof(id)), d);
                return;
        }
        d->st.error = -r;
        if (r == -EINVAL) /* a record no IGD entry can match: no use trying again */
                d->st.why = PCPD_UPNP_DELETE_INVALID;
        else if (r == -ENODEV || r == -EADDRNOTAVAIL)
                d->st.why = if_nametoindex(d->ifname) == 0 ? PCPD_UPNP_DELETE_NO_INTERFACE : PCPD_UPNP_DELETE_NO_ADDRESS;
        else
                d->st.why = PCPD_UPNP_DELETE_UNUSABLE;
        delete_failed(d);
}

static gboolean on_delete_retry(gpointer data) {
        upnp_delete *d = data;
        guint k;

        d->timer = 0;
        if (g_ptr_array_find(d->b->waiting, d, &k))
                (void) g_ptr_array_steal_index_fast(d->b->waiting, k);
        d->st.tries++;
        delete_send(d);
        return G_SOURCE_REMOVE;
}

bool pcpd_upnp_delete_next_try_from(unsigned tries, uint32_t first_s, uint32_t *ret_delay_s) {
        if (tries >= PCPD_UPNP_DELETE_RETRIES)
                return false;
        *ret_delay_s = MIN(first_s != 0 ? first_s : PCPD_UPNP_DELETE_RETRY_FIRST_S, 3600u) << tries;
        return true;
}

bool pcpd_upnp_delete_next_try(unsigned tries, uint32_t *ret_delay_s) {
        return pcpd_upnp_delete_next_try_from(tries, PCPD_UPNP_DELETE_RETRY_FIRST_S, ret_delay_s);
}

bool pcpd_upnp_delete_retry(const pcpd_upnp_delete_state *st, uint32_t first_s, uint32_t *ret_delay_s) {
        if (st->why == PCPD_UPNP_DELETE_INVALID)
                return false;
        return pcpd_upnp_delete_next_try_from(st->tries, first_s, ret_delay_s);
}

/* "tcp", or "protocol 132" for one the IGD has no name for */
static const char *proto_words(uint8_t protocol, char buf[static 16]) {
        const char *p = pcp_protocol_to_string(protocol);

        if (p != NULL && (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP))
                return p;
        g_snprintf(buf, 16, "protocol %u", protocol);
        return buf;
}

/* "at 192.168.77.1 " or "" (an address never made up from an empty record) */
static const char *igd_words(const pcpd_upnp_record *rec, char buf[static PCP_ADDR_STRLEN + 8]) {
        char a[PCP_ADDR_STRLEN];

        if (IN6_IS_ADDR_UNSPECIFIED(&rec->igd_addr))
                return "";
        g_snprintf(buf, PCP_ADDR_STRLEN + 8, "at %s ", pcp_addr_to_string(&rec->igd_addr, a));
        return buf;
}

/* where the entry points: what is known of the internal client and port */
static char *internal_words(const char *ifname, const pcpd_upnp_record *rec) {
        char a[PCP_ADDR_STRLEN];

        if (internal_known(rec) && rec->internal_port != 0)
                return g_strdup_printf("to %s port %u", pcp_addr_to_string(&rec->internal_addr, a),
                                       rec->internal_port);
        if (internal_known(rec))
                return g_strdup_printf("to %s, internal port unknown", pcp_addr_to_string(&rec->internal_addr, a));
        if (rec->internal_port != 0)
                return g_strdup_printf("to port %u of this host, its address on %s unknown", rec->internal_port,
                                       ifname);
        return g_strdup("internal client unknown");
}

/* why a try could not be sent (st->why is not PCPD_UPNP_DELETE_UNCONFIRMED) */
static char *unsent_words(const char *ifname, const pcpd_upnp_record *rec, const pcpd_upnp_delete_state *st) {
        switch (st->why) {
        case PCPD_UPNP_DELETE_NO_INTERFACE:
                return g_strdup_printf("there is no interface %s (not yet, or not any more)", ifname);
        case PCPD_UPNP_DELETE_NO_ADDRESS:
                return g_strdup_printf("this host has no IPv4 address on %s", ifname);
        case PCPD_UPNP_DELETE_INVALID:
                return g_strdup_printf(
                        "its record names no entry an IGD can hold (%s)",
                        rec->protocol != IPPROTO_TCP && rec->protocol != IPPROTO_UDP ? "not TCP or UDP"
                        : rec->external_port == 0                                    ? "external port 0"
                        : rec->internal_port == 0                                    ? "internal port 0"
                                                                                     : "no internal client address");
        case PCPD_UPNP_DELETE_UNUSABLE:
        case PCPD_UPNP_DELETE_UNCONFIRMED:
        default:
                return g_strdup_printf("UPnP-IGD cannot be used on %s: %s", ifname,
                                       st->error > 0 ? g_strerror(st->error) : "unknown error");
        }
}

char *pcpd_upnp_delete_waiting_message(const char *ifname, const pcpd_upnp_record *rec,
                                       const pcpd_upnp_delete_state *st, uint32_t delay_s) {
        char pbuf[16];
        const char *proto = proto_words(rec->protocol, pbuf);
        g_autofree char *why = NULL;

        if (st->why == PCPD_UPNP_DELETE_UNCONFIRMED)
                return g_strdup_printf("The UPnP-IGD on %s did not confirm the delete of %s port %u: tried again when "
                                       "an IGD answers there, at the latest in %u s (try %u of %u)",
                                       ifname, proto, rec->external_port, delay_s, st->tries + 1,
                                       PCPD_UPNP_DELETE_RETRIES + 1);
        why = unsent_words(ifname, rec, st);
        return g_strdup_printf("The delete of the permanent UPnP mapping %s port %u on %s could not be sent: %s; "
                               "tried again at the latest in %u s (try %u of %u)",
                               proto, rec->external_port, ifname, why, delay_s, st->tries + 1,
                               PCPD_UPNP_DELETE_RETRIES + 1);
}

char *pcpd_upnp_delete_given_up_message(const char *ifname, const pcpd_upnp_record *rec,
                                        const pcpd_upnp_delete_state *st) {
        static const char what_now[] = "may still be there (a permanent mapping never expires). pcpd tries again at "
                                       "its next start; to remove it now, delete that port mapping on the router";
        char pbuf[16], gbuf[PCP_ADDR_STRLEN + 8];
        const char *proto = proto_words(rec->protocol, pbuf), *igd = igd_words(rec, gbuf);
        g_autofree char *to = internal_words(ifname, rec), *why = NULL, *sent = NULL;
        unsigned n = st->tries + 1;
        const char *tries = n == 1 ? "try" : "tries";

        if (st->why == PCPD_UPNP_DELETE_UNCONFIRMED) {
                if (st->sent < n)
                        sent = g_strdup_printf(" (only %u of them could be sent)", st->sent);
                return g_strdup_printf("The UPnP-IGD %son %s did not confirm the delete of the permanent mapping %s "
                                       "external port %u (%s) after %u %s%s: it %s",
                                       igd, ifname, proto, rec->external_port, to, n, tries, sent ?: "", what_now);
        }
        why = unsent_words(ifname, rec, st);
        if (st->sent == 0)
                sent = g_strdup(n == 1 ? "it could not be sent" : "none of them could be sent");
        else
                sent = g_strdup_printf("%u of them were sent and not confirmed, the last could not be sent", st->sent);
        return g_strdup_printf("pcpd gave up deleting the permanent mapping %s external port %u (%s) at the UPnP-IGD "
                               "%son %s after %u %s%s: %s: %s. The mapping %s",
                               proto, rec->external_port, to, igd, ifname, n, tries,
                               st->why == PCPD_UPNP_DELETE_INVALID ? " (not tried again while pcpd runs)" : "",
                               sent, why, what_now);
}

/* d (owned by no table) was not confirmed: tried again later, or given up for this run */
static void delete_failed(upnp_delete *d) {
        upnp_backend *b = d->b;
        g_autofree char *m = NULL;
        uint32_t delay;

        if (d->cookie == 0 || !d->has_rec || b->shutting_down) {
                tell_deleting_done(b, d->cookie, false);
                delete_free(d);
                return;
        }
        if (!pcpd_upnp_delete_retry(&d->st, b->delete_retry_s, &delay)) {
                m = pcpd_upnp_delete_given_up_message(d->ifname, &d->rec, &d->st);
                g_warning("%s", m);
                tell_deleting_done(b, d->cookie, false);
                delete_free(d);
                return;
        }
        m = pcpd_upnp_delete_waiting_message(d->ifname, &d->rec, &d->st, delay);
        g_message("%s", m);
        d->timer = g_timeout_add_seconds(delay, on_delete_retry, d);
        g_ptr_array_add(b->waiting, d);
}

/* an IGD answers on ifname: what waits there is tried again now */
static void delete_retry_now(upnp_backend *b, const char *ifname) {
        g_autoptr(GPtrArray) now = g_ptr_array_new();

        for (guint k = 0; k < b->waiting->len; k++)
                if (strcmp(((upnp_delete *) b->waiting->pdata[k])->ifname, ifname) == 0)
                        g_ptr_array_add(now, b->waiting->pdata[k]);
        for (guint k = 0; k < now->len; k++) {
                upnp_delete *d = now->pdata[k];
                g_source_remove(d->timer);
                (void) on_delete_retry(d);
        }
}

static void on_upnp_event(void *userdata, const pcpd_upnp_event *ev) {
        upnp_iface *ui = userdata;
        upnp_backend *b = ui->b;
        struct pcpd_backend_mapping *l;
        upnp_delete *d;
        gpointer key;
        pcpd_backend_info bi;

        switch (ev->type) {
        case PCPD_UPNP_EVENT_MAPPING:
                l = g_hash_table_lookup(ui->held, &ev->mapping_id);
                if (l == NULL || l->mp == NULL || b->shutting_down)
                        return;
                if (ev->recreated)
                        pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_EPOCH_RESET, l->mp, NULL, NULL,
                                         "Mapping %s was gone from the UPnP-IGD on %s (a router restart?): created "
                                         "again",
                                         PCPD_MAPPING_PATH(l->mp), ui->ifname);
                link_take_record(l, b);
                if (nothing_to_show(ui->u, ev->mapping))
                        return;
                info_from_upnp(ev->mapping, &bi);
                tell_mapping(b, l->mp, &bi);
                return;

        case PCPD_UPNP_EVENT_MAPPING_DELETED:
                if (!g_hash_table_steal_extended(ui->deleting, &ev->mapping_id, &key, (gpointer *) &d))
                        return;
                g_free(key);
                g_debug("UPnP mapping %" G_GUINT64_FORMAT " on %s deleted: %s", ev->mapping_id, ui->ifname,
                        ev->deleted_upstream ? "confirmed" : "not confirmed");
                /* also while pcpd stops: the manager is there until the backend is freed,
                 * and forgets a confirmed delete's record before its last snapshot */
                if (ev->deleted_upstream) {
                        tell_deleting_done(b, d->cookie, true);
                        delete_free(d);
                } else {
                        d->st.why = PCPD_UPNP_DELETE_UNCONFIRMED;
                        delete_failed(d);
                }
                return;

        case PCPD_UPNP_EVENT_IGD:
                if (ev->igd != NULL && ev->igd->present != ui->igd_present) {
                        char buf[PCP_ADDR_STRLEN];
                        ui->igd_present = ev->igd->present;
                        g_message("UPnP-IGD %s on %s: %s", pcp_addr_to_string(&ev->igd->addr, buf), ui->ifname,
                                  ev->igd->present ? ev->igd->service_type : "gone");
                }
                if (b->shutting_down)
                        return;
                if (ev->igd != NULL && ev->igd->present)
                        delete_retry_now(b, ui->ifname);
                b->base.events->server_changed(b->base.userdata, NULL, NULL);
                return;
        }
}

static const char *upnp_refuse_reason(pcpd_backend *base, const pcpd_mapping *mp, const pcpd_server *s) {
        upnp_backend *b = (upnp_backend *) base;
        upnp_iface *ui;
        pcpd_upnp_request req;

        if (s == NULL || s->ifname == NULL || s->ifname[0] == '\0')
                return "The router speaks neither PCP nor NAT-PMP, and UPnP-IGD is used only for a router found "
                       "on an interface (not for a configured server).";
        if (s->family != AF_INET)
                return "The router speaks neither PCP nor NAT-PMP, and pcpd uses UPnP-IGD for IPv4 only.";
        ui = g_hash_table_lookup(b->ifaces, s->ifname);
        if (!request_for(mp, ui, s->ifname, &req))
                return "The router speaks neither PCP nor NAT-PMP, and this host has no IPv4 address on its "
                       "interface for UPnP-IGD.";
        return pcpd_upnp_refuse_reason(ui != NULL ? ui->u : NULL, &req);
}

/* suggested: the external port to ask for; held: the one the IGD may hold for mp from
 * before a restart (restore), which a removal must delete even if nothing was asked yet */
static struct pcpd_backend_mapping *link_start(upnp_iface *ui, pcpd_mapping *mp, uint16_t suggested,
                                               uint16_t held) {
        struct pcpd_backend_mapping *l;
        pcpd_upnp_request req;
        uint64_t id;
        int r;

        if (!request_for(mp, ui, ui->ifname, &req))
                return NULL;
        if (suggested != 0)
                req.suggested_external_port = suggested;
        req.held_external_port = held;
        r = pcpd_upnp_add(ui->u, &req, &id);
        if (r < 0) {
                g_warning("Mapping %s cannot be made through UPnP-IGD on %s: %s", PCPD_MAPPING_PATH(mp), ui->ifname,
                          r == -EOPNOTSUPP ? pcpd_upnp_refuse_reason(ui->u, &req) : g_strerror(-r));
                return NULL;
        }
        l = g_new0(struct pcpd_backend_mapping, 1);
        l->ui = ui;
        l->id = id;
        l->mp = mp;
        g_hash_table_insert(ui->held, &l->id, l);
        mp->backend = l;
        return l;
}

static void link_publish(upnp_backend *b, struct pcpd_backend_mapping *l) {
        const pcpd_upnp_info *i = pcpd_upnp_get(l->ui->u, l->id);
        pcpd_backend_info bi;

        if (i == NULL || nothing_to_show(l->ui->u, i))
                return;
        info_from_upnp(i, &bi);
        tell_mapping(b, l->mp, &bi);
}

static int upnp_add(pcpd_backend *base, pcpd_mapping *mp, pcpd_server *s, const struct in6_addr *external) {
        upnp_backend *b = (upnp_backend *) base;
        struct pcpd_backend_mapping *l;
        upnp_iface *ui;

        if (mp->backend != NULL)
                return 0;
        if (upnp_refuse_reason(base, mp, s) != NULL || s->n_addrs == 0)
                return -EOPNOTSUPP;
        ui = iface_get(b, s->ifname, &s->addrs[0].sin6_addr);
        if (ui == NULL)
                return -ENODEV;
        l = link_start(ui, mp, 0, 0);
        if (l == NULL)
                return -EINVAL;
        pcpd_log_mapping(G_LOG_LEVEL_MESSAGE, PCPD_MSGID_MAPPING_MOVED, mp, NULL, NULL,
                         "Mapping %s: the router %s speaks neither PCP nor NAT-PMP; asking its UPnP-IGD on %s",
                         PCPD_MAPPING_PATH(mp), s->text, s->ifname);
        link_publish(b, l);
        return 0;
}

/* A permanent mapping does not expire: its delete is kept on disk until the IGD confirms
 * it. Also while pcpd stops: the deletes upnp_shutdown() sends itself keep the mapping's
 * own record (for the next start), but a mapping removed meanwhile (released, its owner
 * gone, taken over by PCP) loses its record, so its delete needs one of its own. */
static bool upnp_deleting_record(pcpd_backend *base, const pcpd_mapping *mp, pcpd_state_mapping *ret) {
        const struct pcpd_backend_mapping *l = mp->backend;

        (void) base;
        if (l == NULL || !l->has_record || !l->rec.permanent)
                return false;
        *ret = (pcpd_state_mapping) {
                .deleting = true,
                .delete_until = realtime_us() + (uint64_t) PERMANENT_DELETE_KEEP_S * G_USEC_PER_SEC,
                .server = mp->server_text != NULL && mp->server_text[0] ? mp->server_text : (char *) "upnp",
                .opcode = mp->opcode,
                .protocol = mp->protocol,
                .family = mp->family,
                .internal_port = mp->internal_port,
                .lifetime = mp->lifetime,
                .external_address = (char *) "",
                .external_port = l->rec.external_port,
                .uid = mp->uid,
                .app_id = mp->app_id,
                .app_id_source = (char *) mp->app_id_source,
                .description = mp->description,
                .created = mp->created,
                .upnp_interface = (char *) l->ui->ifname,
                .upnp_igd = l->rec.igd_addr,
                .upnp_external_port = l->rec.external_port,
                .upnp_permanent = true,
        };
        return true;
}

static void upnp_remove(pcpd_backend *base, pcpd_mapping *mp, uint64_t cookie) {
        upnp_backend *b = (upnp_backend *) base;
        struct pcpd_backend_mapping *l = mp->backend;
        upnp_delete *d;

        if (l == NULL)
                return;
        d = delete_new(b, cookie, l->ui->ifname);
        d->has_rec = l->has_record;
        d->rec = l->rec;
        if (pcpd_upnp_remove(l->ui->u, l->id) == 0) {
                d->st.sent = 1;
                g_hash_table_insert(l->ui->deleting, g_memdup2(&l->id, sizeof(l->id)), d);
        } else {
                d->st.why = PCPD_UPNP_DELETE_UNUSABLE; /* -ENOENT: the client lost it */
                d->st.error = ENOENT;
                delete_failed(d);
        }
        g_hash_table_remove(l->ui->held, &l->id);
        mp->backend = NULL;
        g_free(l);
}

static void upnp_handover(pcpd_backend *base, pcpd_mapping *mp, uint16_t external_port, uint64_t cookie) {
        upnp_backend *b = (upnp_backend *) base;
        struct pcpd_backend_mapping *l = mp->backend;

        if (l == NULL)
                return;
        /* A router with one table for PCP and UPnP (miniupnpd) holds one entry per external
         * port: deleting "ours" through UPnP would delete what PCP just granted (until its
         * next renewal). But such a router may also keep the entry as UPnP's and refuse
         * PCP's delete later: a leased entry then expires, a permanent one would stay for
         * good. So a leased entry on the same port is let go of, anything else deleted. */
        if (!l->has_record || l->rec.external_port != external_port || l->rec.permanent) {
                upnp_remove(base, mp, cookie);
                return;
        }
        g_debug("Mapping %s: PCP holds the IGD's entry (port %u) now; UPnP lets go of it without a delete", PCPD_MAPPING_PATH(mp),
                external_port);
        (void) pcpd_upnp_forget(l->ui->u, l->id);
        g_hash_table_remove(l->ui->held, &l->id);
        mp->backend = NULL;
        g_free(l);
        if (cookie != 0) /* nothing of ours to delete there */
                tell_deleting_done(b, cookie, true);
}

static bool upnp_info(pcpd_backend *base, const pcpd_mapping *mp, pcpd_backend_info *ret) {
        const struct pcpd_backend_mapping *l = mp->backend;
        const pcpd_upnp_info *i = l != NULL ? pcpd_upnp_get(l->ui->u, l->id) : NULL;

        (void) base;
        if (i == NULL || nothing_to_show(l->ui->u, i))
                return false;
        info_from_upnp(i, ret);
        return true;
}

static void upnp_fill_record(pcpd_backend *base, const pcpd_mapping *mp, pcpd_state_mapping *rec) {
        const struct pcpd_backend_mapping *l = mp->backend;

        (void) base;
        if (l == NULL)
                return;
        rec->upnp_interface = (char *) l->ui->ifname;
        rec->upnp_igd = l->has_record ? l->rec.igd_addr : l->ui->gateway;
        rec->upnp_external_port = l->has_record ? l->rec.external_port : 0;
        rec->upnp_permanent = l->has_record && l->rec.permanent;
}

static bool upnp_restore(pcpd_backend *base, pcpd_mapping *mp, const pcpd_state_mapping *rec) {
        upnp_backend *b = (upnp_backend *) base;
        struct pcpd_backend_mapping *l;
        upnp_iface *ui;

        if (rec->upnp_interface == NULL || mp->backend != NULL)
                return false;
        ui = iface_get(b, rec->upnp_interface, &rec->upnp_igd);
        if (ui == NULL)
                return false;
        /* the port it had: the IGD's entry is found ours and refreshed, not duplicated */
        l = link_start(ui, mp, rec->upnp_external_port, rec->upnp_external_port);
        if (l == NULL)
                return false;
        if (rec->upnp_external_port != 0) {
                l->has_record = true;
                l->rec = (pcpd_upnp_record) {
                        .protocol = mp->protocol,
                        .external_port = rec->upnp_external_port,
                        .internal_port = mp->internal_port,
                        .permanent = rec->upnp_permanent,
                        .igd_addr = rec->upnp_igd,
                };
                (void) iface_ipv4(ui->ifname, &l->rec.internal_addr);
                l->logged_permanent = rec->upnp_permanent;
        }
        g_message("Saved mapping %s %s port %u was held through the UPnP-IGD on %s (external port %u): asking it "
                  "again",
                  PCPD_MAPPING_PATH(mp), pcp_protocol_to_string(mp->protocol) ?: "?", mp->internal_port, ui->ifname,
                  rec->upnp_external_port);
        link_publish(b, l);
        return true;
}

static void upnp_restore_deleting(pcpd_backend *base, const pcpd_state_mapping *rec) {
        upnp_backend *b = (upnp_backend *) base;
        pcpd_upnp_record r = {
                .protocol = rec->protocol,
                .external_port = rec->upnp_external_port,
                .internal_port = rec->internal_port,
                .permanent = rec->upnp_permanent,
                .igd_addr = rec->upnp_igd,
        };
        upnp_delete *d;

        if (rec->upnp_interface == NULL || rec->upnp_interface[0] == '\0' ||
            strlen(rec->upnp_interface) >= IF_NAMESIZE) {
                g_message("Removed UPnP mapping %s port %u has no valid interface in its record; kept, not deleted",
                          pcp_protocol_to_string(rec->protocol) ?: "?", rec->upnp_external_port);
                return;
        }
        g_message("Removed UPnP mapping %s port %u (permanent) was not confirmed deleted before the restart: "
                  "deleting it at the UPnP-IGD on %s",
                  pcp_protocol_to_string(rec->protocol) ?: "?", rec->upnp_external_port, rec->upnp_interface);
        /* what fails (no interface yet, no IGD answers) is tried again while pcpd runs */
        d = delete_new(b, rec->id, rec->upnp_interface);
        d->has_rec = true;
        d->internal_from_if = true;
        d->rec = r;
        delete_send(d);
}

static void upnp_watch(pcpd_backend *base, pcpd_server *s) {
        upnp_backend *b = (upnp_backend *) base;

        if (s->family == AF_INET && s->ifname != NULL && s->ifname[0] != '\0' && s->n_addrs > 0)
                (void) iface_get(b, s->ifname, &s->addrs[0].sin6_addr);
}

static size_t upnp_servers(pcpd_backend *base, pcpd_backend_server *ret, size_t max) {
        upnp_backend *b = (upnp_backend *) base;
        GHashTableIter it;
        gpointer v;
        size_t n = 0;

        g_hash_table_iter_init(&it, b->ifaces);
        while (n < max && g_hash_table_iter_next(&it, NULL, &v)) {
                upnp_iface *ui = v;
                const pcpd_upnp_igd_info *igd = pcpd_upnp_get_igd(ui->u);
                char buf[PCP_ADDR_STRLEN];

                if (igd == NULL || !igd->present)
                        continue;
                ret[n] = (pcpd_backend_server) {
                        .source = PCP1_SOURCE_SSDP,
                        .protocol = PCP1_PROTOCOL_UPNP_IGD,
                        .has_external = igd->has_external_addr,
                        .external_addr = igd->external_addr,
                };
                g_strlcpy(ret[n].ifname, ui->ifname, sizeof(ret[n].ifname));
                g_strlcpy(ret[n].address, pcp_addr_to_string(&igd->addr, buf), sizeof(ret[n].address));
                n++;
        }
        return n;
}

static gboolean on_shutdown_timeout(gpointer data) {
        *(bool *) data = true;
        return G_SOURCE_REMOVE;
}

static size_t busy(upnp_backend *b) {
        GHashTableIter it;
        gpointer v;
        size_t n = 0;

        g_hash_table_iter_init(&it, b->ifaces);
        while (g_hash_table_iter_next(&it, NULL, &v))
                n += pcpd_upnp_n_busy(((upnp_iface *) v)->u);
        return n;
}

static void upnp_shutdown(pcpd_backend *base) {
        upnp_backend *b = (upnp_backend *) base;
        GHashTableIter it, it2;
        gpointer v, w;
        bool timed_out = false;
        unsigned n = 0;
        guint timeout;

        b->shutting_down = true;
        /* what waits to be tried again is not tried now: its record stays, for the next start */
        g_ptr_array_set_size(b->waiting, 0);
        g_hash_table_iter_init(&it, b->ifaces);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                upnp_iface *ui = v;
                g_hash_table_iter_init(&it2, ui->held);
                while (g_hash_table_iter_next(&it2, NULL, &w)) {
                        struct pcpd_backend_mapping *l = w;
                        /* a leased one expires, or is taken back after the restart */
                        if (l->has_record && l->rec.permanent && pcpd_upnp_remove(ui->u, l->id) == 0)
                                n++;
                }
        }
        if (n == 0 && busy(b) == 0)
                return;
        if (n > 0)
                g_message("Deleting %u permanent UPnP mapping(s) before stopping", n);
        timeout = g_timeout_add(SHUTDOWN_WAIT_MS, on_shutdown_timeout, &timed_out);
        while (!timed_out && busy(b) > 0)
                g_main_context_iteration(NULL, TRUE);
        if (timed_out)
                g_warning("The UPnP-IGD did not confirm every delete within %u s: the mappings stay saved, a "
                          "restarted pcpd deletes them",
                          SHUTDOWN_WAIT_MS / 1000);
        else
                g_source_remove(timeout);
}

static void upnp_free(pcpd_backend *base) {
        upnp_backend *b = (upnp_backend *) base;

        if (b == NULL)
                return;
        b->shutting_down = true;
        b->freeing = true;
        g_ptr_array_free(b->waiting, TRUE);
        g_hash_table_destroy(b->ifaces);
        g_free(b);
}

static const pcpd_backend_ops upnp_ops = {
        .protocol = PCP1_PROTOCOL_UPNP_IGD,
        .refuse_reason = upnp_refuse_reason,
        .add = upnp_add,
        .remove = upnp_remove,
        .handover = upnp_handover,
        .deleting_record = upnp_deleting_record,
        .info = upnp_info,
        .fill_record = upnp_fill_record,
        .restore = upnp_restore,
        .restore_deleting = upnp_restore_deleting,
        .watch = upnp_watch,
        .servers = upnp_servers,
        .shutdown = upnp_shutdown,
        .free = upnp_free,
};

int pcpd_upnp_backend_new(const pcpd_backend_events *events, void *userdata, size_t max_mappings,
                          pcpd_backend **ret) {
        upnp_backend *b = g_new0(upnp_backend, 1);

        (void) max_mappings;
        b->base.ops = &upnp_ops;
        b->base.events = events;
        b->base.userdata = userdata;
        b->ifaces = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) iface_free);
        b->waiting = g_ptr_array_new_with_free_func((GDestroyNotify) delete_free);
        b->delete_retry_s = PCPD_UPNP_DELETE_RETRY_FIRST_S;
        *ret = &b->base;
        return 0;
}

void pcpd_upnp_backend_set_delete_retry(pcpd_backend *base, uint32_t first_s) {
        if (base == NULL || base->ops != &upnp_ops)
                return;
        ((upnp_backend *) base)->delete_retry_s = first_s;
}
