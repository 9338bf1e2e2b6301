/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * How much a parser allocates at its peak, measured with the sanitizer allocator's hooks
 * (the fuzz build always has ASan): a target brackets a call with fuzz_alloc_begin() and
 * fuzz_alloc_peak() and checks the peak against a bound linear in the input's size, so
 * that a length or count read from the input can never make the parser allocate more
 * than the input justifies. GLib's slice allocator is switched to plain malloc() (in
 * fuzz_alloc_init(), before GLib allocates anything) so that every allocation is seen.
 *
 * The corpus replay (replay-main.c) is also built without ASan (gcc, clang, valgrind):
 * there replay-alloc.c puts the same two hooks over glibc's allocator, so that the bound
 * is checked in every build.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ALLOC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ALLOC_ASAN 1
#endif
#endif

#ifdef FUZZ_ALLOC_ASAN
/* gcc's libasan has them, without clang's header */
#if __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#else
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);
#endif
#define fuzz_alloc_install_hooks __sanitizer_install_malloc_and_free_hooks
#define fuzz_alloc_size __sanitizer_get_allocated_size
#else
/* replay-alloc.c */
void fuzz_alloc_install_hooks(void (*malloc_hook)(const volatile void *, size_t),
                              void (*free_hook)(const volatile void *));
size_t fuzz_alloc_size(const volatile void *p);
#endif

static size_t fuzz_alloc_now, fuzz_alloc_max;
static bool fuzz_alloc_on;

static void fuzz_alloc_malloc_hook(const volatile void *p, size_t size) {
        if (!fuzz_alloc_on)
                return;
        fuzz_alloc_now += size;
        if (fuzz_alloc_now > fuzz_alloc_max)
                fuzz_alloc_max = fuzz_alloc_now;
}

static void fuzz_alloc_free_hook(const volatile void *p) {
        size_t size;

        if (!fuzz_alloc_on || p == NULL)
                return;
        size = fuzz_alloc_size(p);
        /* what was allocated before fuzz_alloc_begin() and freed now is not counted */
        fuzz_alloc_now = size < fuzz_alloc_now ? fuzz_alloc_now - size : 0;
}

static inline void fuzz_alloc_init(void) {
        setenv("G_SLICE", "always-malloc", 1);
        fuzz_alloc_install_hooks(fuzz_alloc_malloc_hook, fuzz_alloc_free_hook);
}

static inline void fuzz_alloc_begin(void) {
        fuzz_alloc_now = fuzz_alloc_max = 0;
        fuzz_alloc_on = true;
}

/* The peak since fuzz_alloc_begin(), in bytes; stops measuring. */
static inline size_t fuzz_alloc_peak(void) {
        fuzz_alloc_on = false;
        return fuzz_alloc_max;
}
