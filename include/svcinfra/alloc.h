/*
 * svcinfra/alloc.h - allocator hooks.
 *
 * Every allocation the library makes itself goes through these hooks, so a
 * service can count, cap or arena its memory. The libraries it builds on
 * keep their own allocators: jansson (the json_t values of svc_req_json(),
 * svc_res_json(), the logger's raw JSON fields; jansson's process-wide
 * json_set_alloc_funcs() points it at the same hooks if wanted, set before
 * any JSON value exists), libpq, hiredis, libmicrohttpd, OpenSSL,
 * libsodium, libyaml and libcurl. The library releases jansson's memory
 * only through jansson, so any allocator the application gives jansson
 * works. Install them once, before any other
 * svc_ call, from one thread; swapping them while the library holds memory
 * from the previous hooks is undefined (memory must be freed by the
 * allocator that gave it).
 */
#ifndef SVCINFRA_ALLOC_H
#define SVCINFRA_ALLOC_H

#include "common.h"
#include "status.h"

SVC_BEGIN_DECLS

typedef struct svc_allocator {
    void *(*malloc_fn)(size_t size, void *ctx);              /* required */
    void *(*realloc_fn)(void *ptr, size_t size, void *ctx);  /* required */
    void (*free_fn)(void *ptr, void *ctx);                   /* required */
    void *ctx;                                               /* passed back */
} svc_allocator;

/* Installs `a` (copied); NULL restores the C library's malloc/realloc/free.
 * Returns SVC_EINVAL (and changes nothing) when a function pointer is NULL.
 * Not thread-safe: call before any other svc_ function. */
SVC_EXPORT SVC_NODISCARD svc_status svc_set_allocator(const svc_allocator *a);

/* Allocation through the installed hooks, for memory the library hands to
 * the caller ("new" strings) or takes from it. svc_free(NULL) is a no-op. */
SVC_EXPORT void *svc_malloc(size_t size);
SVC_EXPORT void *svc_realloc(void *ptr, size_t size);
SVC_EXPORT void svc_free(void *ptr);

SVC_END_DECLS

#endif /* SVCINFRA_ALLOC_H */
