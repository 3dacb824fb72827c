/* status.c - svc_strerror() and svc_status_name() from SVC_STATUS_MAP. */
#include <stdarg.h>
#include <stdio.h>

#include "svcinfra/status.h"

#include "../internal.h"

typedef struct {
    const char *name;
    const char *text;
} status_entry;

static const status_entry status_table[] = {
#define SVC__STATUS_ENTRY(name, value, text) [value] = {#name, text},
    SVC_STATUS_MAP(SVC__STATUS_ENTRY)
#undef SVC__STATUS_ENTRY
};

static const status_entry *lookup(svc_status st)
{
    if ((int)st < 0 || (size_t)st >= SVC__ARRAY_LEN(status_table))
        return NULL;
    return status_table[st].name ? &status_table[st] : NULL;
}

const char *svc_strerror(svc_status st)
{
    const status_entry *e = lookup(st);
    return e ? e->text : "unknown status";
}

const char *svc_status_name(svc_status st)
{
    const status_entry *e = lookup(st);
    return e ? e->name : "UNKNOWN";
}

/* ---- constructor failure detail --------------------------------------------- */

static _Thread_local char last_errmsg[512];

const char *svc_last_errmsg(void) { return last_errmsg; }

svc_status svc__fail_new(svc_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_errmsg, sizeof last_errmsg, fmt, ap);
    va_end(ap);
    return st;
}

void svc__fail_new_clear(void) { last_errmsg[0] = '\0'; }
