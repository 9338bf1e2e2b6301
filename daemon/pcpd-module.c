/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"
#include "pcpd-module.h"

#include <dlfcn.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

void pcpd_module_preinit(void) {
        /* setenv() is safe here only: no other thread yet reads the environment */
        (void) setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 0);
}

const char *pcpd_module_dir(void) {
        static bool warned;
        const char *dir = secure_getenv("PCPD_MODULE_DIR");

        if (dir == NULL || dir[0] == '\0')
                return PCPD_MODULEDIR;
        /* a relative directory would resolve against whatever the working directory is:
         * not a place to load code from. The compiled-in one is what pcpd loads without
         * the variable, so falling back to it runs no code the admin did not install. */
        if (!g_path_is_absolute(dir)) {
                if (!warned)
                        g_warning("Ignoring PCPD_MODULE_DIR=%s: not an absolute directory; loading modules from %s",
                                  dir, PCPD_MODULEDIR);
                warned = true;
                return PCPD_MODULEDIR;
        }
        return dir;
}

const void *pcpd_module_get(pcpd_module *mod) {
        g_autofree char *path = NULL;
        const pcpd_module_header *h;
        void *handle;

        if (mod->tried)
                return mod->table;
        mod->tried = true;
        path = g_build_filename(pcpd_module_dir(), mod->file, NULL);
        /* RTLD_NODELETE: never unloaded (GObject types registered by its libraries) */
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (handle == NULL) {
                const char *why = dlerror();
                size_t n = strlen(path);

                /* glibc's message starts with the path most of the time: said once */
                if (why == NULL)
                        why = "unknown error";
                else if (strncmp(why, path, n) == 0 && strncmp(why + n, ": ", 2) == 0)
                        why += n + 2;
                g_warning("%s is not available: cannot load the module %s: %s", mod->feature, path, why);
                return NULL;
        }
        h = dlsym(handle, mod->symbol);
        if (h == NULL) {
                g_warning("%s is not available: the module %s has no symbol %s: %s", mod->feature, path, mod->symbol,
                          dlerror());
                dlclose(handle);
                return NULL;
        }
        if (h->abi != mod->abi || h->size != mod->size) {
                g_warning("%s is not available: the module %s is from another build of pcpd (ABI %u, table size %u; "
                          "this pcpd needs ABI %u, size %u)",
                          mod->feature, path, h->abi, h->size, mod->abi, mod->size);
                dlclose(handle);
                return NULL;
        }
        if (mod->n_sizes > 0 &&
            ((size_t) mod->sizes_offset + (size_t) mod->n_sizes * sizeof(uint32_t) > mod->size ||
             memcmp((const char *) h + mod->sizes_offset, mod->sizes, mod->n_sizes * sizeof(uint32_t)) != 0)) {
                g_warning("%s is not available: the module %s is from another build of pcpd (the sizes of the "
                          "structures it is passed differ; ABI %u)",
                          mod->feature, path, h->abi);
                dlclose(handle);
                return NULL;
        }
        g_debug("Loaded the module %s", path);
        mod->table = h;
        return h;
}
