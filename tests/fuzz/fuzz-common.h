/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "pcp-wire-equal.h"
#include "pcp-wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_check(cond, ...)                                                                               \
        do {                                                                                                \
                if (!(cond)) {                                                                              \
                        fprintf(stderr, "fuzz check failed: %s: ", #cond);                                  \
                        fprintf(stderr, __VA_ARGS__);                                                       \
                        fputc('\n', stderr);                                                                \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

/* Decodes a PCP message; if it decodes, re-encodes it and checks the result decodes to
 * the same message, that the encoding is stable, and that the helpers agree. */
static inline void fuzz_pcp_one(const uint8_t *data, size_t size, bool want_response) {
        static uint8_t out[PCP_MAX_MSG_LEN], out2[PCP_MAX_MSG_LEN];
        pcp_msg a, b;
        size_t len = 0, len2 = 0;
        pcp_wire_error r;

        r = pcp_decode(data, size, want_response, &a);
        fuzz_check(pcp_wire_error_to_string(r) != NULL, "no error string");
        if (r != PCP_WIRE_OK)
                return;

        fuzz_check(a.response == want_response, "direction");
        r = pcp_encode(&a, out, sizeof(out), &len);
        fuzz_check(r == PCP_WIRE_OK, "re-encode failed: %s", pcp_wire_error_to_string(r));
        fuzz_check(pcp_encoded_len(&a) == len, "pcp_encoded_len %zu != %zu", pcp_encoded_len(&a), len);
        /* version 2 keeps every octet's worth of content; another version is a bare header */
        if (a.version == PCP_VERSION)
                fuzz_check(len == size, "length %zu -> %zu", size, len);
        else
                fuzz_check(len == PCP_HEADER_LEN && len <= size, "bare header length %zu", len);

        r = pcp_decode(out, len, want_response, &b);
        fuzz_check(r == PCP_WIRE_OK, "re-encoded message does not decode: %s", pcp_wire_error_to_string(r));
        fuzz_check(pcp_msg_equal(&a, &b) && pcp_msg_equal(&b, &a), "round trip changed the message");

        r = pcp_encode(&b, out2, sizeof(out2), &len2);
        fuzz_check(r == PCP_WIRE_OK && len2 == len && memcmp(out, out2, len) == 0, "encoding not stable");

        /* too small a buffer is refused, not overrun */
        fuzz_check(pcp_encode(&a, out2, len - 1, &len2) == PCP_WIRE_ERR_BUFFER, "small buffer accepted");

        if (a.response)
                fuzz_check(pcp_result_to_string(a.result) != NULL, "decoded result without a name");
        if (a.version == PCP_VERSION)
                fuzz_check(pcp_opcode_to_string(a.opcode) != NULL, "decoded opcode without a name");
        for (size_t i = 0; i < a.n_prefix64; i++)
                for (size_t j = 0; j < a.prefix64[i].ipv4_prefix_count; j++) {
                        struct in_addr v4;
                        uint8_t plen;

                        fuzz_check(pcp_prefix64_get_ipv4_prefix(&a.prefix64[i], j, &v4, &plen) && plen <= 32,
                                   "IPv4 prefix %zu/%zu", i, j);
                }
        for (size_t i = 0; i < a.n_unknown; i++)
                fuzz_check(pcp_option_to_string(a.unknown[i].code) == NULL, "known option kept as unknown");
        if (a.options & PCP_HAS_DESCRIPTION)
                fuzz_check(a.description_len <= PCP_MAX_DESCRIPTION_LEN, "description length");
}
