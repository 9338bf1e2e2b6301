/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The table of the test's own module (test-module-table.c), loaded by test-module.c with
 * pcpd_module_get() as the daemon loads pcpd-nm.so. */

#include <stdint.h>

#include "pcpd-module.h"

#define TEST_MODULE_FILE "test-module-table.so"
#define TEST_MODULE_SYMBOL "test_module_table_export"
#define TEST_MODULE_ABI 7

typedef struct test_module_table {
        pcpd_module_header header;
        int (*answer)(void);
        uint32_t sizes[2];
} test_module_table;

#define TEST_MODULE_SIZES { 24, 40 }
