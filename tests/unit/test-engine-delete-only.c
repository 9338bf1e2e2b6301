/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcp_mapping_params.delete_only: a mapping removed before the caller restarted is only
 * deleted (lifetime 0, its saved nonce), never asked for again, with the usual attempts;
 * nothing is made for a server known to hear nothing. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "engine-harness.h"

#define SRV "192.168.1.1"
#define LOCAL "192.168.1.10"

static const uint8_t NONCE[PCP_NONCE_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static void delete_params(pcp_mapping_params *p, uint32_t sid, uint16_t port) {
        h_params(p, sid, IPPROTO_UDP, port, 600);
        p->has_nonce = true;
        memcpy(p->nonce, NONCE, PCP_NONCE_LEN);
        p->delete_only = true;
}

static void test_only_the_delete(void **state) {
        static const struct {
                uint8_t result;
                uint32_t lifetime;
                bool upstream;
        } answers[] = {
                { PCP_RESULT_SUCCESS, 0, true },
                { PCP_RESULT_NOT_AUTHORIZED, 120, false }, /* another nonce holds the port now */
        };

        for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
                harness *h = h_new(i + 11, NULL);
                uint32_t sid = h_server(h, SRV, LOCAL); /* just added: nothing heard yet, as at a start */
                pcp_mapping_params p;
                pcp_msg msg;
                uint64_t id;
                const h_event *ev;

                h_clear(h);
                delete_params(&p, sid, 4500);
                assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
                h_drain(h);
                assert_int_equal(h_mapping(h, id)->state, PCP_MAPPING_DELETING);
                assert_int_equal(h->n_ev, 0); /* nothing reported from inside the call */
                assert_int_equal(h_count(h, PCP_OPCODE_MAP), 1);
                h_decode(h_last_for(h, id), &msg);
                assert_int_equal(msg.lifetime, 0);
                assert_memory_equal(msg.nonce, NONCE, PCP_NONCE_LEN);
                assert_int_equal(msg.protocol, IPPROTO_UDP);
                assert_int_equal(msg.internal_port, 4500);
                /* retransmitted as a delete, never as a request for a lifetime */
                h_advance(h, 3300);
                assert_int_equal(h_count_for(h, id), 2);
                h_decode(h_last_for(h, id), &msg);
                assert_int_equal(msg.lifetime, 0);
                h_reply(h, h_last_for(h, id), answers[i].result, answers[i].lifetime, (uint32_t) (h->now / SEC),
                        "0.0.0.0", 0);
                ev = h_last_event(h, PCP_EVENT_MAPPING_DELETED, id);
                assert_non_null(ev);
                assert_int_equal(ev->deleted_upstream, answers[i].upstream);
                assert_null(pcp_engine_mapping_get(h->e, id));
                h_clear_sent(h);
                h_advance(h, HOUR);
                assert_int_equal(h_count(h, PCP_OPCODE_MAP), 0);
                h_free(h);
        }
}

static void test_unanswered(void **state) {
        harness *h = h_new(21, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        pcp_mapping_params p;
        uint64_t id;
        const h_event *ev;

        h_clear(h);
        delete_params(&p, sid, 4501);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), 0);
        h_drain(h);
        h_advance(h, HOUR);
        assert_int_equal(h_count(h, PCP_OPCODE_MAP), 3); /* the default delete_attempts */
        ev = h_last_event(h, PCP_EVENT_MAPPING_DELETED, id);
        assert_non_null(ev);
        assert_false(ev->deleted_upstream);
        assert_int_equal(pcp_engine_mapping_count(h->e), 0);
        h_free(h);
}

static void test_refused(void **state) {
        harness *h = h_new(31, NULL);
        uint32_t sid = h_server(h, SRV, LOCAL);
        pcp_mapping_params p;
        uint64_t id = 0;
        const h_sent *probe = h_find(h, PCP_OPCODE_ANNOUNCE, 0);

        /* without a nonce there is nothing to delete */
        delete_params(&p, sid, 4502);
        p.has_nonce = false;
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), -EINVAL);
        h_drain(h);
        /* a server with PCP switched off hears nothing: nothing is made, no event */
        assert_non_null(probe);
        h_reply_announce(h, probe, PCP_RESULT_NOT_AUTHORIZED, 600, 0);
        assert_int_equal(h_srv(h, sid)->state, PCP_SERVER_DISABLED);
        h_clear(h);
        delete_params(&p, sid, 4502);
        assert_int_equal(pcp_engine_add_mapping(h->e, h->now, &p, &id), -ENOTCONN);
        h_drain(h);
        assert_int_equal(pcp_engine_mapping_count(h->e), 0);
        assert_int_equal(h->n_sent, 0);
        assert_int_equal(h->n_ev, 0);
        h_free(h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_only_the_delete),
                cmocka_unit_test(test_unanswered),
                cmocka_unit_test(test_refused),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
