/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: a declared mapping's file (daemon/pcpd-declared.c,
 * pcpd_declared_parse(), as pcpd reads /etc/pcpd/mappings.d/ *.conf).
 *
 * Checked, besides no crash / leak / sanitizer report:
 *  - a refused file says why in a UTF-8 sentence that names the file;
 *  - what is accepted is within the documented ranges;
 *  - the declaration written out again (pcpd_declared_format(), the file pcpd writes for
 *    DeclareMapping) reads back as an equal declaration, and writing that again gives the
 *    same text;
 *  - reading allocates at most a bound linear in the input's size (fuzz-alloc.h).
 */

#include <string.h>
#include <sys/socket.h>

#include "fuzz-alloc.h"
#include "fuzz-common.h"
#include "pcpd-declared.h"

#define ALLOC_BOUND(len) ((size_t) (len) * 256 + 256 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_alloc_init();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autoptr(GError) error = NULL;
        g_autoptr(pcpd_declared) d = NULL, again = NULL;
        g_autoptr(GString) out = NULL, out2 = NULL;

        size_t peak;

        fuzz_alloc_begin();
        d = pcpd_declared_parse("fuzz", "fuzz.conf", (const char *) data, size, &error);
        peak = fuzz_alloc_peak();
        fuzz_check(peak <= ALLOC_BOUND(size), "reading %zu bytes took %zu bytes", size, peak);
        if (d == NULL) {
                fuzz_check(error != NULL, "refused without a reason");
                fuzz_check(g_utf8_validate(error->message, -1, NULL), "message is not UTF-8");
                fuzz_check(strstr(error->message, "fuzz.conf") != NULL, "message does not name the file: %s",
                           error->message);
                return 0;
        }
        fuzz_check(error == NULL, "accepted with an error");
        fuzz_check(size <= PCPD_DECLARED_MAX_FILE_SIZE, "a file of %zu octets accepted", size);
        fuzz_check(d->protocol != 0 && d->port != 0, "protocol %u port %u", d->protocol, d->port);
        fuzz_check(d->lifetime == 0 || (d->lifetime >= 120 && d->lifetime <= 7 * 86400), "lifetime %u",
                   d->lifetime);
        fuzz_check(d->family == 0 || d->family == AF_INET || d->family == AF_INET6, "family %d", d->family);
        fuzz_check(d->description != NULL && g_utf8_validate(d->description, -1, NULL) &&
                           strlen(d->description) <= 256,
                   "description");

        out = g_string_new(NULL);
        pcpd_declared_format(out, d);
        again = pcpd_declared_parse("fuzz", "fuzz.conf", out->str, out->len, &error);
        fuzz_check(again != NULL, "written out, it does not read back: %s\n%s", error ? error->message : "",
                   out->str);
        fuzz_check(pcpd_declared_equal(d, again), "written out, it reads back different:\n%s", out->str);
        out2 = g_string_new(NULL);
        pcpd_declared_format(out2, again);
        fuzz_check(strcmp(out->str, out2->str) == 0, "format not stable");
        return 0;
}
