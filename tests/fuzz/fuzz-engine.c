/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the protocol engine fed hostile input. An engine with two servers
 * (one IPv4 with two addresses, one IPv6) and MAP/PEER mappings on both gets a script of
 * events decoded from the input: datagrams from the right or a wrong source, ANNOUNCEs,
 * ICMP errors, time passing, mappings added and removed, and "echoes": the last request
 * the engine sent, turned into a response with fuzzer-chosen result, lifetime, epoch,
 * external address/port and trailing options, so the fuzzer gets past the nonce check.
 *
 * The engine's output is pulled after every call (drain()), as pcpd does.
 *
 * Checks, besides no crash / leak / sanitizer report: every datagram the engine sends is
 * a request our own decoder accepts (PCP or NAT-PMP) and fits 1100 octets, to a server and
 * address that exist; a MAPPING event shows the mapping's live info, a MAPPING_DELETED one
 * the last info of an id the engine no longer knows; the next
 * deadline is never in the past after the timers ran; the stats add up; mapping counts
 * agree with what was added and deleted; a mapping reported active has a usable grant
 * (an external address that is not unspecified, loopback or multicast and of its own
 * family, a port unless it maps all ports, a lifetime of at least 4 s); two recreations
 * of one server's mappings (EPOCH_RESET or RECREATE, whatever the datagrams say) are at
 * least 5 s apart, and a RECREATE comes only from an ANNOUNCE or a NAT-PMP notification.
 */

#include <string.h>

#include "fuzz-common.h"
#include "pcp-engine.h"

#define MAX_MAPPINGS 16

typedef struct fuzz_state {
        uint8_t last[2][PCP_MAX_MSG_LEN]; /* last datagram sent to each server */
        size_t last_len[2];
        size_t last_addr[2];
        uint64_t rnd;
        uint64_t deleted; /* MAPPING_DELETED events */
        uint64_t now;     /* the engine time of the current call */
        uint64_t last_reset[2]; /* EPOCH_RESET or RECREATE per server; 0 = none yet */
        bool exact;             /* the events drained come from the call just made: now is theirs */
} fuzz_state;

static uint32_t server_ids[2];

static void on_send(fuzz_state *st, pcp_engine *e, uint32_t server_id, size_t addr_index, const uint8_t *buf,
                    size_t len) {
        int k = server_id == server_ids[1];
        const pcp_server_info *si = pcp_engine_server_get(e, server_id);
        pcp_msg m;
        natpmp_msg n;

        fuzz_check(si != NULL && addr_index < si->n_addrs, "sent to server %u address %zu", server_id, addr_index);
        fuzz_check(len > 0 && len <= PCP_MAX_MSG_LEN, "sent %zu octets", len);
        if (buf[0] == NATPMP_VERSION)
                fuzz_check(natpmp_decode(buf, len, false, &n) == PCP_WIRE_OK, "sent an undecodable NAT-PMP request");
        else
                fuzz_check(pcp_decode(buf, len, false, &m) == PCP_WIRE_OK, "sent an undecodable PCP request");
        memcpy(st->last[k], buf, len);
        st->last_len[k] = len;
        st->last_addr[k] = addr_index;
}

static void on_event(fuzz_state *st, pcp_engine *e, const pcp_event *ev) {
        if (ev->type == PCP_EVENT_MAPPING_DELETED) {
                st->deleted++;
                fuzz_check(pcp_engine_mapping_get(e, ev->mapping_id) == NULL, "a deleted mapping is still there");
        }
        if (ev->type == PCP_EVENT_MAPPING)
                fuzz_check(pcp_engine_mapping_get(e, ev->mapping_id) == ev->mapping, "a mapping event without its info");
        if (ev->type == PCP_EVENT_MAPPING || ev->type == PCP_EVENT_MAPPING_DELETED)
                fuzz_check(ev->mapping != NULL && ev->mapping->id == ev->mapping_id, "mapping event without its info");
        if (ev->mapping != NULL)
                fuzz_check(pcp_mapping_error_name(ev->mapping) != NULL, "no error name");
        if (ev->type == PCP_EVENT_MAPPING &&
            (ev->mapping->state == PCP_MAPPING_ACTIVE || ev->mapping->state == PCP_MAPPING_RENEWING)) {
                const pcp_mapping_info *m = ev->mapping;
                const uint8_t *a = m->external_addr.s6_addr;
                bool v4 = pcp_addr_is_ipv4(&m->external_addr);

                fuzz_check(m->has_external, "active without an external address");
                fuzz_check(!pcp_addr_is_unspecified(&m->external_addr), "active with an unspecified address");
                fuzz_check(v4 == pcp_addr_is_ipv4(&m->internal_addr), "active with an address of the other family");
                fuzz_check(v4 ? a[12] != 127 && (a[12] & 0xf0) != 0xe0
                              : a[0] != 0xff && memcmp(&m->external_addr, &in6addr_loopback, 16) != 0,
                           "active with a loopback or multicast address");
                fuzz_check(m->internal_port == 0 || m->external_port != 0, "active with external port 0");
                fuzz_check(m->lifetime_granted >= 4, "active for %u s", m->lifetime_granted);
        }
        if (ev->type == PCP_EVENT_RECREATE)
                fuzz_check(ev->from_announce, "a recreation without a reset that no ANNOUNCE asked for");
        if (ev->type == PCP_EVENT_EPOCH_RESET || ev->type == PCP_EVENT_RECREATE) {
                int k = ev->server_id == server_ids[1];
                /* when the drain was put off, when the reset happened is not known here */
                if (st->exact)
                        fuzz_check(st->last_reset[k] == 0 || st->now >= st->last_reset[k] + 5000,
                                   "two recreations %llu ms apart", (unsigned long long) (st->now - st->last_reset[k]));
                st->last_reset[k] = st->exact ? st->now : 0;
        }
}

/* after every call: everything the engine has, pulled */
static void drain(fuzz_state *st, pcp_engine *e) {
        uint8_t buf[PCP_ENGINE_DATAGRAM_MAX];
        uint32_t sid;
        size_t ai;
        pcp_event ev;
        int n;

        while ((n = pcp_engine_next_datagram(e, &sid, &ai, buf, sizeof(buf))) > 0)
                on_send(st, e, sid, ai, buf, (size_t) n);
        fuzz_check(n == 0, "next_datagram: %d", n);
        while ((n = pcp_engine_next_event(e, &ev)) > 0)
                on_event(st, e, &ev);
        fuzz_check(n == 0, "next_event: %d", n);
        st->exact = true;
}

static void on_random(void *ud, void *buf, size_t len) {
        fuzz_state *st = ud;
        uint8_t *p = buf;

        for (size_t i = 0; i < len; i++) {
                st->rnd = st->rnd * 6364136223846793005ULL + 1442695040888963407ULL;
                p[i] = (uint8_t) (st->rnd >> 56);
        }
}

typedef struct reader {
        const uint8_t *p;
        size_t left;
} reader;

static uint8_t rd8(reader *r) {
        if (r->left == 0)
                return 0;
        r->left--;
        return *r->p++;
}

static uint32_t rd32(reader *r) {
        uint32_t v = 0;
        for (int i = 0; i < 4; i++)
                v = v << 8 | rd8(r);
        return v;
}

static size_t rdbuf(reader *r, uint8_t *out, size_t max) {
        size_t n = rd8(r);
        n = n << 8 | rd8(r);
        n %= max + 1;
        if (n > r->left)
                n = r->left;
        memcpy(out, r->p, n);
        r->p += n;
        r->left -= n;
        return n;
}

static void set_v4(struct sockaddr_in6 *sa, uint8_t last, uint16_t port) {
        memset(sa, 0, sizeof(*sa));
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(port);
        sa->sin6_addr.s6_addr[10] = sa->sin6_addr.s6_addr[11] = 0xff;
        sa->sin6_addr.s6_addr[12] = 192;
        sa->sin6_addr.s6_addr[13] = 0;
        sa->sin6_addr.s6_addr[14] = 2;
        sa->sin6_addr.s6_addr[15] = last;
}

static void set_v6(struct sockaddr_in6 *sa, uint8_t last, uint16_t port) {
        memset(sa, 0, sizeof(*sa));
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(port);
        sa->sin6_addr.s6_addr[0] = 0x20;
        sa->sin6_addr.s6_addr[1] = 0x01;
        sa->sin6_addr.s6_addr[2] = 0x0d;
        sa->sin6_addr.s6_addr[3] = 0xb8;
        sa->sin6_addr.s6_addr[15] = last;
}

/* the server's address (index i) a datagram from it comes from */
static void server_from(int k, size_t i, struct sockaddr_in6 *sa) {
        if (k == 0)
                set_v4(sa, (uint8_t) (1 + i), PCP_SERVER_PORT);
        else
                set_v6(sa, 1, PCP_SERVER_PORT);
}

/* the last request to server k as a response, with the fuzzer's values on top */
static size_t echo(fuzz_state *st, int k, reader *r, uint8_t *out) {
        size_t len = st->last_len[k], n;

        if (len == 0)
                return 0;
        memcpy(out, st->last[k], len);
        if (out[0] == NATPMP_VERSION) {
                /* NAT-PMP: opcode + 128, result, epoch, then what the request had */
                uint8_t tmp[16] = { 0 };
                tmp[1] = (uint8_t) (out[1] | 0x80);
                tmp[2] = 0;
                tmp[3] = rd8(r) % 6;
                for (int i = 4; i < 16; i++)
                        tmp[i] = i < 8 ? rd8(r) : (i - 4 < (int) len ? out[i - 4] : rd8(r));
                n = out[1] == 0 ? 12 : 16;
                memcpy(out, tmp, n);
                return n;
        }
        out[1] |= 0x80;
        out[3] = rd8(r) % 16; /* result */
        for (int i = 4; i < 12; i++)
                out[i] = rd8(r); /* lifetime, epoch */
        memset(out + 12, 0, 12);
        if (len >= 60 && (rd8(r) & 1)) {
                /* MAP/PEER: assigned external port and address */
                out[42] = rd8(r);
                out[43] = rd8(r);
                for (int i = 44; i < 60; i++)
                        out[i] = rd8(r);
        }
        if (rd8(r) & 1) {
                /* replace the options with fuzzer bytes */
                size_t base = out[1] == (0x80 | PCP_OPCODE_ANNOUNCE) ? 24 : out[1] == (0x80 | PCP_OPCODE_MAP) ? 60 : 80;
                if (base <= len)
                        len = base + rdbuf(r, out + base, PCP_MAX_MSG_LEN + 8 - base);
        }
        return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t buf[PCP_MAX_MSG_LEN + 8];
        fuzz_state st = { .rnd = 42, .exact = true };
        pcp_engine_ops ops = { .random = on_random };
        pcp_engine_config cfg = { .max_mappings = MAX_MAPPINGS };
        pcp_engine *e = NULL;
        pcp_server_addr a4[2], a6[1];
        uint64_t ids[MAX_MAPPINGS];
        size_t n_ids = 0;
        uint64_t now = 1000;
        reader r = { data, size };

        memset(a4, 0, sizeof(a4));
        memset(a6, 0, sizeof(a6));
        set_v4(&a4[0].remote, 1, 0);
        set_v4(&a4[1].remote, 2, 0);
        a4[0].local = a4[1].local = a4[0].remote.sin6_addr;
        a4[0].local.s6_addr[15] = a4[1].local.s6_addr[15] = 100;
        set_v6(&a6[0].remote, 1, 0);
        a6[0].local = a6[0].remote.sin6_addr;
        a6[0].local.s6_addr[15] = 100;

        st.now = now;
        fuzz_check(pcp_engine_new(&cfg, &ops, &st, &e) == 0, "engine");
        fuzz_check(pcp_engine_add_server(e, now, a4, 2, &server_ids[0]) == 0, "server 0");
        fuzz_check(pcp_engine_add_server(e, now, a6, 1, &server_ids[1]) == 0, "server 1");
        drain(&st, e);

        while (r.left > 0) {
                uint8_t op = rd8(&r);
                int k = op >> 7;
                struct sockaddr_in6 from;
                size_t len, ai;

                switch (op & 0x0f) {
                case 0: { /* add a mapping */
                        pcp_mapping_params p = { 0 };
                        uint8_t f = rd8(&r);
                        uint64_t id;

                        p.server_id = server_ids[k];
                        p.opcode = f & 1 ? PCP_OPCODE_PEER : PCP_OPCODE_MAP;
                        p.protocol = (uint8_t[]) { 6, 17, 0, 132 }[(f >> 1) & 3];
                        p.internal_port = (uint16_t) (rd8(&r) << 8 | rd8(&r));
                        if (p.protocol != 0 && p.internal_port == 0)
                                p.internal_port = 1;
                        if (p.protocol == 0)
                                p.internal_port = 0;
                        p.suggested_external_port = (uint16_t) (rd8(&r) << 8 | rd8(&r));
                        p.lifetime = rd32(&r) % 100000 + 1;
                        if (p.opcode == PCP_OPCODE_PEER) {
                                p.remote_port = (uint16_t) (rd8(&r) | 1);
                                p.remote_addr = a4[0].remote.sin6_addr;
                                p.remote_addr.s6_addr[15] = 77;
                        }
                        p.prefer_failure = f & 0x10;
                        p.description = f & 0x20 ? "fuzz" : NULL;
                        if (n_ids < MAX_MAPPINGS && pcp_engine_add_mapping(e, now, &p, &id) == 0)
                                ids[n_ids++] = id;
                        break;
                }
                case 1: /* remove one */
                        if (n_ids > 0) {
                                size_t i = rd8(&r) % n_ids;
                                (void) pcp_engine_remove_mapping(e, now, ids[i]);
                                ids[i] = ids[--n_ids];
                        }
                        break;
                case 2: /* time passes */
                        now += (uint64_t) rd32(&r) % (3600 * 1000);
                        st.now = now;
                        pcp_engine_process_timers(e, now);
                        break;
                case 3: /* run what is due */
                        if (pcp_engine_next_deadline(e) != PCP_NEVER) {
                                uint64_t d = pcp_engine_next_deadline(e);
                                if (d > now)
                                        now = d;
                                st.now = now;
                                pcp_engine_process_timers(e, now);
                                fuzz_check(pcp_engine_next_deadline(e) > now, "a deadline left in the past");
                        }
                        break;
                case 4: /* raw datagram from the server */
                        ai = rd8(&r) % 2;
                        server_from(k, ai, &from);
                        len = rdbuf(&r, buf, sizeof(buf));
                        pcp_engine_receive(e, now, server_ids[k], k == 0 ? ai : 0, &from, buf, len);
                        break;
                case 5: /* an echo of the last request, as the right server */
                        len = echo(&st, k, &r, buf);
                        ai = st.last_addr[k];
                        server_from(k, ai, &from);
                        pcp_engine_receive(e, now, server_ids[k], ai, &from, buf, len);
                        break;
                case 6: /* an echo from a wrong source port */
                        len = echo(&st, k, &r, buf);
                        server_from(k, st.last_addr[k], &from);
                        from.sin6_port = htons(40000);
                        pcp_engine_receive(e, now, server_ids[k], st.last_addr[k], &from, buf, len);
                        break;
                case 7: /* ANNOUNCE port: raw */
                        server_from(k, 0, &from);
                        from.sin6_port = htons(rd8(&r) & 1 ? PCP_SERVER_PORT : 5350);
                        len = rdbuf(&r, buf, sizeof(buf));
                        pcp_engine_receive_announce(e, now, &from, buf, len);
                        break;
                case 8: /* ANNOUNCE port: an echo (a valid-looking unsolicited response) */
                        len = echo(&st, k, &r, buf);
                        server_from(k, 0, &from);
                        pcp_engine_receive_announce(e, now, &from, buf, len);
                        break;
                case 9: /* ICMP unreachable */
                        pcp_engine_unreachable(e, now, server_ids[k], k == 0 ? rd8(&r) % 2 : 0);
                        break;
                case 11: /* the network changed: the server is removed (its mappings with it) and
                          * found again, a new server to the engine */
                        fuzz_check(pcp_engine_remove_server(e, now, server_ids[k]) == 0, "remove server %d", k);
                        fuzz_check(pcp_engine_add_server(e, now, k == 0 ? a4 : a6, k == 0 ? 2 : 1, &server_ids[k]) == 0,
                                   "add server %d again", k);
                        st.last_len[k] = 0;
                        st.last_reset[k] = 0;
                        break;
                case 10: /* a datagram that waited in the socket */
                        len = echo(&st, k, &r, buf);
                        ai = st.last_addr[k];
                        server_from(k, ai, &from);
                        pcp_engine_receive_at(e, now, now - (now > 5000 ? rd8(&r) * 20u : 0), server_ids[k], ai,
                                              &from, buf, len);
                        break;
                default: /* forget one without telling the server */
                        if (n_ids > 0) {
                                size_t i = rd8(&r) % n_ids;
                                (void) pcp_engine_forget_mapping(e, ids[i]);
                                ids[i] = ids[--n_ids];
                        }
                        break;
                }
                /* usually after every call, as pcpd does; sometimes not: what accumulates is
                 * coalesced and must come out right later */
                if (op & 0x40)
                        st.exact = false;
                else
                        drain(&st, e);
                for (size_t i = 0; i < n_ids; i++) {
                        const pcp_mapping_info *mi = pcp_engine_mapping_get(e, ids[i]);
                        if (mi == NULL) {
                                /* deleted under us (only a removed server does that): forget the id */
                                ids[i--] = ids[--n_ids];
                                continue;
                        }
                        fuzz_check(mi->state < _PCP_MAPPING_STATE_MAX, "mapping state %d", mi->state);
                }
                fuzz_check(pcp_engine_mapping_count(e) <= MAX_MAPPINGS, "more mappings than the limit");
        }
        {
                const pcp_engine_stats *s = pcp_engine_get_stats(e);
                uint64_t dropped = 0;
                for (int i = 0; i < _PCP_DROP_MAX; i++)
                        dropped += s->dropped[i];
                fuzz_check(dropped <= s->received, "dropped %llu > received %llu", (unsigned long long) dropped,
                           (unsigned long long) s->received);
        }
        pcp_engine_free(e);
        return 0;
}
