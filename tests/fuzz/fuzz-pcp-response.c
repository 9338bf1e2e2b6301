/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: PCP response decoder (pcp_decode with want_response = true) + round trip. */

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_pcp_one(data, size, true);
        return 0;
}
