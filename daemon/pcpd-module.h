/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * pcpd-module: the optional parts of pcpd that need large libraries live in shared modules
 * loaded with dlopen() the first time they are needed (issue 9: merely linking libnm and
 * GUPnP cost 6.3 MiB of RSS at idle, by their constructors and relocations):
 *   pcpd-nm.so    libnm (and GIO): loaded when NetworkManager appears on the system bus
 *                 (pcpd-nm.c watches its name with sd-bus);
 *   pcpd-upnp.so  GUPnP, gssdp, libsoup 3 (and libxml2): loaded when a mapping first
 *                 falls back to UPnP-IGD (pcpd-upnp-loader.c).
 *
 * Each module exports one symbol, a table of functions whose first two fields are an ABI
 * number and the table's size; both must be what this pcpd was built with, else the module
 * is refused (a module from another build). A table may also hold the sizes of the
 * structures passed through it (pcpd_module.sizes): those must match too. A module is loaded at most once, never
 * unloaded (GObject types cannot be), and a failure is logged once, with the path and
 * dlerror(): pcpd goes on without that feature.
 *
 * Where: PCPD_MODULEDIR (LIBDIR/pcpd), compiled in. The environment variable
 * PCPD_MODULE_DIR overrides it (read with secure_getenv(), so not in a set-user-ID
 * context): for running pcpd from the build tree (the tests set it to build/daemon) and
 * for an admin (a unit drop-in's Environment=). Whoever sets it chooses the code pcpd
 * runs, as with its ExecStart=. It must be absolute: a relative one (which would resolve
 * against the working directory) is ignored with a warning naming it, and the compiled-in
 * directory used.
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct pcpd_module {
        const char *file;    /* "pcpd-upnp.so" */
        const char *symbol;  /* the exported table */
        const char *feature; /* for the log: what is missing without it */
        uint32_t abi;
        uint32_t size;
        /* optional: the sizes of the structures passed through the table, as this pcpd has
         * them; the table holds n_sizes uint32_t at sizes_offset that must be equal */
        const uint32_t *sizes;
        uint32_t n_sizes;
        uint32_t sizes_offset;
        /* filled by pcpd_module_get() */
        bool tried;
        const void *table;
} pcpd_module;

/* The first two fields of every module's table. */
typedef struct pcpd_module_header {
        uint32_t abi;
        uint32_t size;
} pcpd_module_header;

/* The directory modules are loaded from (see above). */
/* Called first in main(), while pcpd has one thread: the environment the modules'
 * libraries read in their constructors when dlopen() loads them. GNUTLS_NO_IMPLICIT_INIT=1
 * (unless set): gnutls, which only libnm pulls in, skips its global initialisation;
 * libnm initialises it itself before any crypto (pcpd uses none). −0.8 MiB of RSS with
 * pcpd-nm.so loaded (bench/README.md, "RSS with NetworkManager present"). */
void pcpd_module_preinit(void);

const char *pcpd_module_dir(void);

/* The module's table, loading it on the first call; NULL when it cannot be loaded (logged
 * on the first call only). */
const void *pcpd_module_get(pcpd_module *mod);
