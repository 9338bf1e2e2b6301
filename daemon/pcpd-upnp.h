/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-upnp: a UPnP Internet Gateway Device client for one interface and family, on a
 * GLib main context. It maps TCP and UDP ports through the IGD's WANIPConnection (v1 or
 * v2) or WANPPPConnection service, keeps them (renewal, check, recreation), and reports
 * every change through one callback. It is the third way pcpd holds a mapping, after PCP /
 * NAT-PMP and "direct", behind the manager's backend seam (see "Wiring" below).
 *
 * ---- Why GUPnP directly, and not GUPnPSimpleIgd --------------------------------------
 * Debian 12's gupnp-igd 1.2.0 (built on gupnp 1.6, gssdp 1.6, libsoup 3 — the brief said
 * "gupnp 1.2", Debian 12 ships 1.6) was read before this was written. GUPnPSimpleIgd:
 *   - maps every port on every IGD of every interface it finds (a GUPnPContextManager on
 *     all interfaces, signals once per IGD) and identifies a mapping by its *requested*
 *     external port: there is no per-mapping handle, no "which IGD", no per-interface
 *     choice other than a context-available veto;
 *   - renews blindly: AddPortMapping again every lease/2, errors only as a signal, never a
 *     GetSpecificPortMappingEntry; a lease of 0 is never renewed nor checked, so a router
 *     that reboots and forgets a permanent mapping is never noticed;
 *   - error 725 OnlyPermanentLeasesSupported: not handled (reported as an error);
 *   - error 718 ConflictInMappingEntry: handled only when no external port was asked for,
 *     by retrying random ports *without bound*; with a suggested port it is an error; there
 *     is no prefer-failure and no check for another host's mapping on the port;
 *   - external address: one GetExternalIPAddress plus the ExternalIPAddress event, no
 *     periodic check;
 *   - removal: one DeletePortMapping, fire and forget (g_warning on failure), nothing to
 *     tell pcpd whether a permanent mapping is really gone;
 *   - safety: the LOCATION of any SSDP answer is fetched, whoever sent it (gupnp would
 *     even resolve a host name); no size bound on the description or the SOAP answers;
 *     only a 5 s libsoup I/O time-out.
 * So this module uses nothing of GUPnPSimpleIgd and builds on the layer it is itself
 * built on (gupnp-1.6, package libgupnp-1.6-dev, which libgupnp-igd-1.0-dev pulls in):
 * GUPnPContext on the one interface, GUPnPControlPoint per service type, and
 * GUPnPServiceProxy actions (GetExternalIPAddress, GetSpecificPortMappingEntry,
 * AddPortMapping, DeletePortMapping). GUPnP writes and parses all SOAP and XML; this
 * module only checks the strings it hands back (pcpd-upnp-parse.[ch], fuzzed).
 *
 * ---- Discovery and safety -------------------------------------------------------------
 *   - one GUPnPContext on the interface (gssdp only accepts datagrams that arrived on it),
 *     one control point each for WANIPConnection:1 (v2 answers it too), WANPPPConnection:1
 *     and WANIPv6FirewallControl:1 (presence only, see IPv6 below);
 *   - every SSDP message is checked before GSSDP's resource browser sees it (a handler on
 *     the client's "message-received" signal, connected before the control points, so it
 *     runs first). One refused loses its LOCATION, AL and USN headers, so that the
 *     browser drops it: it is neither fetched nor cached (GSSDP keeps no entry for it).
 *     Its NT (ST) must be one of the three service types, exactly
 *     (pcpd_upnp_service_type_kind()); others' are dropped without a word (other devices'
 *     announcements). Its USN must be "uuid:<printable ASCII>::<such a type>"
 *     (pcpd_upnp_parse_usn()). Its sender must be on the interface's own network and be
 *     the gateway when one was given — for ssdp:byebye too. The LOCATION must be
 *     http://<IP literal>[:port]/... whose host *is the sender*. UDP sources are
 *     forgeable on the link, so the cost of what passes is bounded too: a LOCATION not
 *     seen before, or a device (the USN's UDN) not seen at that LOCATION, takes a token
 *     from a bucket of PCPD_UPNP_LOCATION_BURST, one more every
 *     config.location_interval_s (so at most BURST + t / interval new LOCATIONs are ever
 *     fetched, each with GUPnP's retries, and GSSDP keeps at most 3 entries, one per
 *     service type, for each device taken), and while an IGD is in use only its own
 *     UDN's new LOCATIONs are taken (its restart; the last announcement of each service
 *     type refused for another device is kept and taken, checks and token again, as soon
 *     as that IGD is dropped: miniupnpd restarts with a new UUID). At most PCPD_UPNP_MAX_LOCATIONS
 *     LOCATIONs and UDNs are known at a time; one no service uses any more makes room. Refusals are counted (stats ssdp_refused, ssdp_limited) and
 *     logged at most once per REFUSED_LOG_INTERVAL_S (pcpd-upnp.c), with the number.
 *     (That signal is marked private in gssdp; pcpd_upnp_set_interface() fails
 *     with -ENOTSUP if a future gssdp drops it, rather than run without the check.)
 *   - an ssdp:byebye of the IGD in use (its UDN, the same service) is only a hint: it is
 *     held back from GSSDP and GetExternalIPAddress is asked (at most once per second,
 *     as for events). Left unanswered (no HTTP answer, a time-out) the byebye is
 *     confirmed: it is passed on to GSSDP and the IGD dropped; answered, it is not taken
 *     (stats byebyes_unconfirmed). A byebye of another service is passed on.
 *   - a service is used only if its control URL and event URL are on the same address as
 *     its LOCATION; the SCPD is never fetched;
 *   - every HTTP answer (description, SOAP) must carry a Content-Length of at most
 *     PCPD_UPNP_MAX_BODY octets, else every request of this interface's session is
 *     aborted; content decoding (gzip) is switched off so that bound is the real one;
 *   - every action has a time-out (config.action_timeout_ms, a GCancellable), libsoup's
 *     I/O time-out is the same; every failure is retried with a bounded back-off.
 *   - IGDs come and go: the same service (same UDN or same address) at a new LOCATION
 *     replaces the old one at once (a restart: miniupnpd takes a new HTTP port each time;
 *     GUPnP 1.6 loses the byebye when its USN carries another service version than the
 *     one the proxy was found with, e.g. ":2" vs ":1"), and an IGD that leaves
 *     GetExternalIPAddress unanswered 3 times in a row is dropped and searched for again.
 *     Old LOCATIONs no service uses make room for new ones.
 *
 * ---- Mappings --------------------------------------------------------------------------
 * add: GetSpecificPortMappingEntry(candidate) first — free (714) or ours (same internal
 * client and port: after a pcpd restart or a duplicate) → AddPortMapping(candidate);
 * another host's → never overwritten: another candidate (random 1024..65535, at most
 * PCPD_UPNP_MAX_PORT_TRIES), or failure CANNOT_PROVIDE_EXTERNAL with prefer_failure.
 * AddPortMapping: 725 → again with lease 0 ("permanent"); 718/729 → another candidate
 * (or failure with prefer_failure); 724 → the internal port; other codes → failed, retried
 * after a back-off. The first candidate is the suggested port, else the internal port.
 * renewal / check: at lease/2 (permanent: every config.check_interval_s), and at once when
 * the IGD (re)announces itself: GetSpecificPortMappingEntry — still ours → AddPortMapping
 * again (the renewal); gone (the router rebooted and forgot: UPnP has no epoch) → created
 * again, same port if free; another host's now → another port (an event says so).
 * external address: GetExternalIPAddress when the IGD appears and every
 * config.external_check_interval_s, plus the ExternalIPAddress event (GENA subscription).
 * Every NOTIFY received (GUPnP drops some: one before the SUBSCRIBE's answer is read,
 * and the next after it, seen as a SEQ gap) and every event with the address already
 * known is followed by a GetExternalIPAddress 2 s later (an IGD may make the event
 * before a change settles and drop the next one: miniupnpd does). A subscription GUPnP reports lost (SUBSCRIBE or its renewal refused
 * or unanswered) is made again after the retry back-off, and GetExternalIPAddress is
 * asked at once for what may have been missed meanwhile.
 * remove: an AddPortMapping in flight is let finish first (it may create the mapping);
 * then GetSpecificPortMappingEntry, and DeletePortMapping only if it is still ours;
 * PCPD_UPNP_EVENT_MAPPING_DELETED says whether the IGD confirmed (deleted_upstream).
 * Known gap: an AddPortMapping that timed out may still be applied by a slow IGD after
 * the removal's check; a leased one then expires, a permanent one stays (the record is
 * gone by then). The wiring keeps a deleting record only for a mapping known to be
 * permanent (granted with lease 0 at least once): a mapping removed before its first
 * grant on an IGD that turns out to take only permanent leases is still this gap.
 *
 * ---- What IGD cannot do ----------------------------------------------------------------
 * pcpd_upnp_refuse_reason(): PEER, FILTER, THIRD_PARTY for another host, protocols other
 * than TCP/UDP, "all ports", and IPv6: WANIPv6FirewallControl pinholes are not
 * implemented in this step (the sentence says whether the IGD has the service).
 *
 * ---- Wiring (pcpd-upnp-backend.c, behind the seam of pcpd-backend.h) -------------------
 *   - one pcpd_upnp per interface whose IPv4 router does not answer PCP nor NAT-PMP (the
 *     engine's server state unreachable / unsupported / disabled, or silent for 21 s):
 *     selection is PCP, then NAT-PMP, then UPnP-IGD; pcpd_upnp_set_interface() with that
 *     router as gateway, so only the IGD we route through is used;
 *   - a mapping keeps its engine mapping (PCP keeps being asked) and is added here too
 *     (after pcpd_upnp_refuse_reason: its sentence is the D-Bus error's message when
 *     AddMapping meets such a router); MAPPING events are published as the mapping's
 *     state once an IGD was found (ExpiresAt 0 when permanent), IGD events as a Servers
 *     entry (source "ssdp", protocol "upnp-igd") and ExternalAddresses;
 *   - a router that starts answering PCP later: the engine's mapping turns active, the
 *     backend lets go of its own (pcpd_upnp_remove(); pcpd_upnp_forget() when PCP was
 *     granted the very same leased entry of a one-table router);
 *   - persistence: the mapping's saved record has the interface, the IGD's address, the
 *     external port and the permanent flag. After a restart the mapping is added again
 *     with the recorded external port as suggestion (the GetSpecificPortMappingEntry check
 *     finds it ours and refreshes it: no duplicate); one not reclaimed within the grace
 *     period is removed (pcpd_upnp_remove()). A permanent mapping's removal is kept as a
 *     deleting record until deleted_upstream; one left unconfirmed is tried again with
 *     pcpd_upnp_remove_record() while pcpd runs (when an IGD appears, else on a back-off,
 *     a bounded number of times) and at the next start. At shutdown pcpd_upnp_remove() is called for
 *     permanent mappings (they do not expire by themselves; their mapping records stay, so
 *     that a restart takes them back or deletes them) and the loop runs until
 *     pcpd_upnp_n_busy() is 0 or 5 s passed. Leased ones are left to expire or be
 *     reclaimed, as with PCP.
 */

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "pcpd-upnp-parse.h"

#define PCPD_UPNP_MAX_MAPPINGS 4096  /* per instance */
#define PCPD_UPNP_MAX_LOCATIONS 16   /* SSDP LOCATIONs (and UDNs) known at a time */
#define PCPD_UPNP_LOCATION_BURST 4   /* new LOCATIONs / devices taken at once, then one per interval */
#define PCPD_UPNP_MAX_IGDS 4         /* services kept as candidates */
#define PCPD_UPNP_MAX_BODY (64 * 1024)
#define PCPD_UPNP_MAX_PORT_TRIES 8

typedef struct pcpd_upnp pcpd_upnp;

typedef enum pcpd_upnp_state {
        PCPD_UPNP_PENDING, /* no IGD yet, or being (re)created */
        PCPD_UPNP_ACTIVE,  /* the IGD holds it */
        PCPD_UPNP_FAILED,  /* refused or unanswered; retried later (see error) */
        _PCPD_UPNP_STATE_MAX,
} pcpd_upnp_state;

typedef enum pcpd_upnp_error {
        PCPD_UPNP_ERROR_NONE,
        PCPD_UPNP_ERROR_NO_IGD,           /* no usable IGD on the interface (yet) */
        PCPD_UPNP_ERROR_CONFLICT,         /* port taken and prefer_failure, or no free port found */
        PCPD_UPNP_ERROR_NO_RESOURCES,     /* 728: the IGD's table is full */
        PCPD_UPNP_ERROR_NOT_AUTHORIZED,   /* 606 */
        PCPD_UPNP_ERROR_REFUSED,          /* another UPnP error code (see upnp_error) */
        PCPD_UPNP_ERROR_TIMEOUT,          /* no answer within the time-out */
        PCPD_UPNP_ERROR_UNREACHABLE,      /* HTTP connection failed */
        PCPD_UPNP_ERROR_INVALID_RESPONSE, /* malformed or oversized answer */
        PCPD_UPNP_ERROR_EXPIRED,          /* the lease ran out while the IGD was silent */
        _PCPD_UPNP_ERROR_MAX,
} pcpd_upnp_error;

typedef struct pcpd_upnp_config {
        uint32_t action_timeout_ms;        /* per SOAP action: 10 s */
        uint32_t check_interval_s;         /* permanent mappings checked: 300 s */
        uint32_t external_check_interval_s; /* GetExternalIPAddress: 300 s */
        uint32_t retry_min_s;              /* first retry after a failure: 5 s, doubling */
        uint32_t retry_max_s;              /* cap: 600 s */
        uint32_t search_interval_s;        /* M-SEARCH again while no IGD: 30 s */
        uint32_t location_interval_s;      /* a new SSDP LOCATION / device after the burst: 30 s */
} pcpd_upnp_config;

typedef struct pcpd_upnp_request {
        uint8_t protocol;              /* IPPROTO_TCP or IPPROTO_UDP */
        struct in6_addr internal_addr; /* IPv4-mapped: this host's address on the interface */
        uint16_t internal_port;        /* 1..65535 */
        uint16_t suggested_external_port; /* 0 = same as internal */
        /* a mapping restored after a restart: the external port the IGD may still hold for
         * it from before (0 = none). Removed before anything was asked in this run, that
         * entry is still checked and deleted, not taken for one never made. */
        uint16_t held_external_port;
        uint32_t lifetime;             /* seconds, > 0; the IGD may force 0 (725) */
        const char *description;       /* copied; NULL = "pcpd"; pcpd_upnp_description_ok() */
        bool prefer_failure;
        /* what the caller asked that IGD may not do: refused by pcpd_upnp_refuse_reason() */
        bool peer;                     /* a PEER request */
        size_t n_filters;              /* FILTER options */
        bool third_party;              /* internal_addr is not this host's own address */
} pcpd_upnp_request;

typedef struct pcpd_upnp_info {
        uint64_t id;
        pcpd_upnp_state state;
        pcpd_upnp_error error;
        int upnp_error;                /* the last UPnP errorCode (0 = none) */
        uint8_t protocol;
        struct in6_addr internal_addr;
        uint16_t internal_port;
        uint16_t suggested_external_port;
        bool prefer_failure;
        uint32_t lifetime_requested;
        bool has_external;             /* granted at least once */
        struct in6_addr external_addr; /* IPv4-mapped; :: while unknown */
        uint16_t external_port;
        uint32_t lease;                /* granted lease (s); 0 with permanent */
        bool permanent;                /* the IGD only took lease 0: pcpd must delete it */
        uint64_t expires_at;           /* g_get_monotonic_time() µs; 0 = never (permanent) */
        uint32_t recreations;          /* times found gone at a check and created again */
        bool deleting;                 /* pcpd_upnp_remove() in progress */
} pcpd_upnp_info;

/* What must survive a pcpd restart or crash (see "Wiring"). */
typedef struct pcpd_upnp_record {
        uint8_t protocol;
        uint16_t external_port;
        struct in6_addr internal_addr;
        uint16_t internal_port;
        bool permanent;
        struct in6_addr igd_addr;
} pcpd_upnp_record;

typedef struct pcpd_upnp_igd_info {
        bool present;                  /* false: it vanished (byebye, expiry, interface gone) */
        struct in6_addr addr;          /* the IGD's address (IPv4-mapped) */
        uint16_t port;                 /* of its description URL */
        const char *udn;               /* "uuid:..." */
        const char *service_type;      /* "urn:schemas-upnp-org:service:WANIPConnection:2", ... */
        bool has_external_addr;
        struct in6_addr external_addr;
        bool has_ipv6_firewall;        /* WANIPv6FirewallControl seen at the same address */
} pcpd_upnp_igd_info;

typedef enum pcpd_upnp_event_type {
        PCPD_UPNP_EVENT_MAPPING,         /* state, external address/port, lease or error changed */
        PCPD_UPNP_EVENT_MAPPING_DELETED, /* after pcpd_upnp_remove[_record](); id invalid after */
        PCPD_UPNP_EVENT_IGD,             /* the IGD in use appeared, changed or vanished */
} pcpd_upnp_event_type;

typedef struct pcpd_upnp_event {
        pcpd_upnp_event_type type;
        uint64_t mapping_id;
        const pcpd_upnp_info *mapping;  /* MAPPING, MAPPING_DELETED */
        bool deleted_upstream;          /* MAPPING_DELETED: the IGD no longer has it (or never had) */
        bool recreated;                 /* MAPPING: found gone at a check, created again */
        const pcpd_upnp_igd_info *igd;  /* IGD */
} pcpd_upnp_event;

typedef struct pcpd_upnp_ops {
        /* Called from the main context only, never from inside a pcpd_upnp_* call. It may
         * call pcpd_upnp_get(), _add(), _remove() (not _free()). */
        void (*event)(void *userdata, const pcpd_upnp_event *ev);
        /* random numbers for candidate ports; NULL = g_random_int() */
        uint32_t (*random)(void *userdata);
} pcpd_upnp_ops;

typedef struct pcpd_upnp_stats {
        uint64_t ssdp_refused;     /* SSDP messages for our service types refused (any check) */
        uint64_t ssdp_limited;     /* of those, new LOCATIONs / devices refused for the bound */
        uint64_t byebyes_held;     /* byebyes of the IGD in use held back for a check */
        uint64_t byebyes_unconfirmed; /* of those, the IGD answered the check: not taken */
        uint64_t services_refused; /* services with a control/event URL elsewhere */
        uint64_t bodies_refused;   /* HTTP answers without or beyond the Content-Length bound */
        uint64_t actions, action_errors, action_timeouts;
        uint64_t recreations;
        uint64_t notifies;           /* NOTIFY requests that reached our HTTP server */
        uint64_t notifies_ignored;   /* of those, from an address that is no IGD's (no check asked) */
        uint64_t events;             /* ExternalIPAddress events GUPnP passed on */
        uint64_t event_checks;       /* GetExternalIPAddress after an event with the known address */
        uint64_t events_unconfirmed; /* events with another address the IGD's answer did not confirm */
        uint64_t subscriptions_lost; /* GENA subscriptions failed or lapsed (SUBSCRIBE again) */
} pcpd_upnp_stats;

/* ---- The wiring's schedule for a permanent mapping's delete the IGD did not confirm ----
 * (pcpd-upnp-backend.c; pure, for its unit test) It is tried again while pcpd runs: at
 * once when an IGD answers on its interface, else after a back-off. tries: the tries again
 * made so far (0 after the first try failed). true: the next one is due in *ret_delay_s
 * (PCPD_UPNP_DELETE_RETRY_FIRST_S doubling: 60, 120, 240, 480, 960 s); false: given up
 * for this run (PCPD_UPNP_DELETE_RETRIES tries again made; the record stays for the next
 * start), *ret_delay_s untouched. */
#define PCPD_UPNP_DELETE_RETRIES 5u
#define PCPD_UPNP_DELETE_RETRY_FIRST_S 60u
bool pcpd_upnp_delete_next_try(unsigned tries, uint32_t *ret_delay_s);
/* The same from another first wait (UpnpDeleteRetrySeconds=, 1-3600 s; 0 counts as the
 * default): first_s doubling. */
bool pcpd_upnp_delete_next_try_from(unsigned tries, uint32_t first_s, uint32_t *ret_delay_s);

/* How a try of such a delete failed: what its log lines say. */
typedef enum pcpd_upnp_delete_failure {
        PCPD_UPNP_DELETE_UNCONFIRMED,  /* sent; no IGD confirmed it (none answered, an error) */
        PCPD_UPNP_DELETE_NO_INTERFACE, /* not sent: there is no interface of that name */
        PCPD_UPNP_DELETE_NO_ADDRESS,   /* not sent: the host has no IPv4 address on it */
        PCPD_UPNP_DELETE_UNUSABLE,     /* not sent: no UPnP-IGD client there (error: why) */
        PCPD_UPNP_DELETE_INVALID,      /* not sent: the record names no IGD entry; not tried again */
} pcpd_upnp_delete_failure;

typedef struct pcpd_upnp_delete_state {
        unsigned tries;               /* tries again made so far, as above */
        unsigned sent;                /* of all tries made (tries + 1), those sent to an IGD */
        pcpd_upnp_delete_failure why; /* how the last one failed */
        int error;                    /* PCPD_UPNP_DELETE_UNUSABLE: a positive errno */
} pcpd_upnp_delete_state;

/* Is the next try due (in *ret_delay_s), or is it given up for this run? As
 * pcpd_upnp_delete_next_try_from(), and a record no entry can match is given up at once. */
bool pcpd_upnp_delete_retry(const pcpd_upnp_delete_state *st, uint32_t first_s, uint32_t *ret_delay_s);
/* The line logged when a try failed and the next one is due in delay_s (newly allocated). */
char *pcpd_upnp_delete_waiting_message(const char *ifname, const pcpd_upnp_record *rec,
                                       const pcpd_upnp_delete_state *st, uint32_t delay_s);
/* The warning logged when it is given up (newly allocated): it names the IGD, the
 * interface, the protocol, the external port and the internal client and port (what is
 * known of them: never a made-up address), how many tries were made and why they failed,
 * for an admin to delete by hand. */
char *pcpd_upnp_delete_given_up_message(const char *ifname, const pcpd_upnp_record *rec,
                                        const pcpd_upnp_delete_state *st);

/* config NULL = defaults. The context is used for every source and async call. */
int pcpd_upnp_new(GMainContext *context, const pcpd_upnp_config *config, const pcpd_upnp_ops *ops,
                  void *userdata, pcpd_upnp **ret);
/* Cancels everything (no DeletePortMapping: call pcpd_upnp_remove() first where wanted)
 * and waits on the context for the cancelled requests to finish. Accepts NULL. A GENA
 * SUBSCRIBE still in flight is not waited for: GUPnP's objects are then let go on the
 * context once it is done (within the action time-out; see struct keeper in
 * pcpd-upnp.c), by this file's code, which must stay loaded until then. */
pcpd_upnp *pcpd_upnp_free(pcpd_upnp *u);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pcpd_upnp, pcpd_upnp_free)

/*
 * Search for IGDs on ifname's network, family AF_INET (AF_INET6: -EAFNOSUPPORT for now).
 * gateway (IPv4-mapped, may be NULL): use only the IGD at this address (the default router).
 * Calling it again (another interface or the address changed) forgets the IGDs found so
 * far; the mappings are kept and recreated on the new one.
 * Returns 0, -EAFNOSUPPORT, -ENODEV (no such interface / no address on it), -ENOTSUP
 * (the installed gssdp lacks what the SSDP check needs), -EIO.
 */
int pcpd_upnp_set_interface(pcpd_upnp *u, const char *ifname, int family, const struct in6_addr *gateway);

/* NULL when IGD can do what req asks; else a sentence saying why not. u may be NULL (then
 * IPv6 is refused without saying whether the IGD has WANIPv6FirewallControl). */
const char *pcpd_upnp_refuse_reason(pcpd_upnp *u, const pcpd_upnp_request *req);

/*
 * Starts a mapping; events follow. Returns 0 and the id, -EOPNOTSUPP (refuse_reason says
 * why), -EINVAL (port 0, lifetime 0, bad description), -E2BIG (PCPD_UPNP_MAX_MAPPINGS).
 */
int pcpd_upnp_add(pcpd_upnp *u, const pcpd_upnp_request *req, uint64_t *ret_id);
/* Deletes it at the IGD (if still ours), then PCPD_UPNP_EVENT_MAPPING_DELETED. -ENOENT. */
int pcpd_upnp_remove(pcpd_upnp *u, uint64_t id);
/* After a restart: delete what a record says, if the IGD still maps it to the same
 * internal client and port; then PCPD_UPNP_EVENT_MAPPING_DELETED for the returned id. */
int pcpd_upnp_remove_record(pcpd_upnp *u, const pcpd_upnp_record *rec, uint64_t *ret_id);
/* Forgets a mapping without a word to the IGD (no event). -ENOENT. */
int pcpd_upnp_forget(pcpd_upnp *u, uint64_t id);

const pcpd_upnp_info *pcpd_upnp_get(pcpd_upnp *u, uint64_t id);
/* The record to persist; -ENOENT, -EAGAIN (never granted yet). */
int pcpd_upnp_get_record(pcpd_upnp *u, uint64_t id, pcpd_upnp_record *ret);
/* The IGD in use, or NULL. */
const pcpd_upnp_igd_info *pcpd_upnp_get_igd(pcpd_upnp *u);
size_t pcpd_upnp_count(pcpd_upnp *u);
/* Mappings with a removal (or any action) still in progress. */
size_t pcpd_upnp_n_busy(pcpd_upnp *u);
const pcpd_upnp_stats *pcpd_upnp_get_stats(pcpd_upnp *u);

const char *pcpd_upnp_state_to_string(pcpd_upnp_state s); /* "pending", "active", "failed" */
/* "" for NONE; PCP-like names where the meaning is the same (CANNOT_PROVIDE_EXTERNAL for a
 * conflict, NO_RESOURCES, NOT_AUTHORIZED, UNREACHABLE, EXPIRED), else NO_IGD, TIMEOUT,
 * INVALID_RESPONSE, UPNP_REFUSED */
const char *pcpd_upnp_error_name(pcpd_upnp_error e);
