/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-alloc.h's two allocator hooks for the corpus replay built without ASan: malloc(),
 * calloc(), realloc(), free() and the aligned allocations defined here replace glibc's for
 * the whole process (GLib's too: glibc lets a program replace its allocator) and call
 * glibc's own (__libc_malloc() and the rest), telling the hooks about each block as ASan's
 * allocator does: a realloc() as a new block, then the old one freed. Sizes are what
 * malloc_usable_size() says, at allocation and at release alike.
 *
 * With ASan the sanitizer's allocator has the hooks (fuzz-alloc.h) and this file is empty.
 * It is linked from a static library, and every replay built without ASan pulls it in (each
 * calls malloc() or free() before the library is scanned), whether it uses fuzz-alloc.h or
 * not; the hooks are called only when a target installs them. Valgrind still sees every
 * block: glibc's __libc_malloc() and the rest are aliases of the malloc() it redirects.
 */

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define REPLAY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_ASAN 1
#endif
#endif

#ifndef REPLAY_ASAN

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

void fuzz_alloc_install_hooks(void (*malloc_hook)(const volatile void *, size_t),
                              void (*free_hook)(const volatile void *));
size_t fuzz_alloc_size(const volatile void *p);

/* glibc's allocator itself (exported for programs that replace malloc()) */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *p);

static void (*on_malloc)(const volatile void *, size_t);
static void (*on_free)(const volatile void *);
/* realloc(): the old block's size, asked for by the free hook after it is gone */
static const volatile void *gone;
static size_t gone_size;

void fuzz_alloc_install_hooks(void (*malloc_hook)(const volatile void *, size_t),
                              void (*free_hook)(const volatile void *)) {
        on_malloc = malloc_hook;
        on_free = free_hook;
}

size_t fuzz_alloc_size(const volatile void *p) {
        if (p != NULL && p == gone)
                return gone_size;
        return malloc_usable_size((void *) p);
}

static void *allocated(void *p) {
        if (p != NULL && on_malloc != NULL)
                on_malloc(p, malloc_usable_size(p));
        return p;
}

void *malloc(size_t size) {
        return allocated(__libc_malloc(size));
}

void *calloc(size_t n, size_t size) {
        return allocated(__libc_calloc(n, size));
}

void *realloc(void *p, size_t size) {
        size_t old = p != NULL ? malloc_usable_size(p) : 0;
        void *q = __libc_realloc(p, size);

        if (q == NULL && size > 0)
                return NULL; /* p is untouched */
        allocated(q);
        if (p != NULL && on_free != NULL) {
                gone = p;
                gone_size = old;
                on_free(p);
                gone = NULL;
        }
        return q;
}

void free(void *p) {
        if (p != NULL && on_free != NULL)
                on_free(p);
        __libc_free(p);
}

void *memalign(size_t alignment, size_t size) {
        return allocated(__libc_memalign(alignment, size));
}

void *aligned_alloc(size_t alignment, size_t size) {
        return allocated(__libc_memalign(alignment, size));
}

int posix_memalign(void **out, size_t alignment, size_t size) {
        void *p;

        if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0)
                return EINVAL;
        p = __libc_memalign(alignment, size);
        if (p == NULL)
                return ENOMEM;
        *out = allocated(p);
        return 0;
}

#endif
