/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "test-module-table.h"

static int answer(void) {
        return 42;
}

__attribute__((visibility("default"))) extern const test_module_table test_module_table_export;
const test_module_table test_module_table_export = {
        .header = { .abi = TEST_MODULE_ABI, .size = sizeof(test_module_table) },
        .answer = answer,
        .sizes = TEST_MODULE_SIZES,
};
