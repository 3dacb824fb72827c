/* alloc.c - allocator hooks and the small allocation helpers built on them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"

static void *libc_malloc(size_t n, void *ctx) { SVC__UNUSED(ctx); return malloc(n); }
static void *libc_realloc(void *p, size_t n, void *ctx) { SVC__UNUSED(ctx); return realloc(p, n); }
static void libc_free(void *p, void *ctx) { SVC__UNUSED(ctx); free(p); }

static svc_allocator hooks = {libc_malloc, libc_realloc, libc_free, NULL};

svc_status svc_set_allocator(const svc_allocator *a)
{
    if (!a) {
        hooks = (svc_allocator){libc_malloc, libc_realloc, libc_free, NULL};
        return SVC_OK;
    }
    if (!a->malloc_fn || !a->realloc_fn || !a->free_fn)
        return SVC_EINVAL;
    hooks = *a;
    return SVC_OK;
}

void *svc_malloc(size_t n) { return hooks.malloc_fn(n ? n : 1, hooks.ctx); }
void *svc_realloc(void *p, size_t n) { return hooks.realloc_fn(p, n ? n : 1, hooks.ctx); }
void svc_free(void *p)
{
    if (p)
        hooks.free_fn(p, hooks.ctx);
}

void *svc__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = svc_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *svc__strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = svc_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *svc__strdup(const char *s)
{
    return s ? svc__strndup(s, strlen(s)) : NULL;
}

char *svc__vasprintf(const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return NULL;
    char *s = svc_malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *svc__asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = svc__vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

const char *svc__getenv(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}
