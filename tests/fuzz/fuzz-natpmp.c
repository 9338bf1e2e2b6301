/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: NAT-PMP decoder, both directions, + round trip. */

#include <string.h>

#include "fuzz-common.h"

static void one(const uint8_t *data, size_t size, bool want_response) {
        uint8_t out[16], out2[16];
        natpmp_msg a, b;
        size_t len = 0, len2 = 0;
        pcp_wire_error r;

        r = natpmp_decode(data, size, want_response, &a);
        if (r != PCP_WIRE_OK)
                return;
        fuzz_check(a.response == want_response, "direction");
        fuzz_check(size <= 16, "accepted %zu octets", size);
        if (a.response) {
                fuzz_check(natpmp_result_to_string(a.result) != NULL, "result %u without a name", a.result);
                fuzz_check(pcp_result_to_string(natpmp_result_to_pcp(a.result)) != NULL, "result mapping");
        }

        r = natpmp_encode(&a, out, sizeof(out), &len);
        fuzz_check(r == PCP_WIRE_OK, "re-encode failed: %s", pcp_wire_error_to_string(r));
        fuzz_check(len >= 2 && len <= 16, "length %zu", len);
        r = natpmp_decode(out, len, want_response, &b);
        fuzz_check(r == PCP_WIRE_OK, "re-encoded message does not decode: %s", pcp_wire_error_to_string(r));
        fuzz_check(natpmp_msg_equal(&a, &b) && natpmp_msg_equal(&b, &a), "round trip changed the message");
        r = natpmp_encode(&b, out2, sizeof(out2), &len2);
        fuzz_check(r == PCP_WIRE_OK && len2 == len && memcmp(out, out2, len) == 0, "encoding not stable");
        fuzz_check(natpmp_encode(&a, out2, len - 1, &len2) == PCP_WIRE_ERR_BUFFER, "small buffer accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        one(data, size, true);
        one(data, size, false);
        return 0;
}
