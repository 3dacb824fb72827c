/*
 * lib/http/problem.c - RFC 9457 problem details.
 *
 *   {"type":"about:blank","title":"Not found",
 *    "status":404,"detail":"...","instance":"/cars/7","code":"NOT_FOUND",
 *    "request_id":"..."}  + extension members
 *
 * The body is written with the library's JSON escaper rather than through
 * jansson objects: problems are on hot error paths (404, 429) and this
 * allocates nothing but the body itself.
 */
#include <ctype.h>
#include <string.h>

#include <jansson.h>

#include "http/http_internal.h"

/* The problem table (svc_problem_code_name/status/title) is in defaults.c. */

void svc__problem_type(const svc_app *app, svc_problem_code code, char *buf, size_t len)
{
    const char *base = app ? app->problem_type_base : "";
    const char *name = svc_problem_code_name(code);
    size_t o = 0;
    if (len == 0)
        return;
    if (strcmp(base, SVC__PROBLEM_ABOUT_BLANK) == 0)
        name = ""; /* the `code` member names the problem */
    for (const char *p = base; *p && o + 1 < len; p++)
        buf[o++] = *p;
    for (const char *p = name; *p && o + 1 < len; p++)
        buf[o++] = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
    buf[o] = '\0';
}

static void put_str_member(svc__buf *b, const char *key, const char *val)
{
    svc__buf_printf(b, ",\"%s\":\"", key);
    svc__buf_json_escape(b, val, strlen(val));
    svc__buf_putc(b, '"');
}

static int ext_cb(const char *buf, size_t size, void *data)
{
    svc__buf_append(data, buf, size);
    return 0;
}

svc_status svc_res_problem_ext(svc_res *res, int status, svc_problem_code code,
                               const char *detail, const json_t *extensions)
{
    if (extensions != NULL && !json_is_object(extensions))
        return SVC_EINVAL;
    if (status == 0)
        status = svc_problem_code_status(code);
    if (status < 100 || status > 999)
        return SVC_EINVAL;
    svc_req *req = &res->ex->req;
    char type[512];
    svc__problem_type(req->app, code, type, sizeof type);

    svc__buf *b = &res->body;
    svc__buf_reset(b);
    svc__buf_puts(b, "{\"type\":\"");
    svc__buf_json_escape(b, type, strlen(type));
    svc__buf_putc(b, '"');
    put_str_member(b, "title", svc_problem_code_title(code));
    svc__buf_printf(b, ",\"status\":%d", status);
    if (detail)
        put_str_member(b, "detail", detail);
    put_str_member(b, "instance", svc_req_path(req));
    put_str_member(b, "code", svc_problem_code_name(code));
    put_str_member(b, "request_id", svc_req_id(req));
    if (extensions) {
        static const char *const reserved[] = {"type", "title", "status", "detail",
                                               "instance", "code", "request_id"};
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)extensions, key, val) {
            bool clash = false;
            for (size_t i = 0; i < SVC__ARRAY_LEN(reserved); i++)
                clash = clash || strcmp(key, reserved[i]) == 0;
            if (clash)
                continue; /* extensions never shadow the standard members */
            svc__buf_puts(b, ",\"");
            svc__buf_json_escape(b, key, strlen(key));
            svc__buf_puts(b, "\":");
            json_dump_callback(val, ext_cb, b, JSON_COMPACT | JSON_ENCODE_ANY);
        }
    }
    svc__buf_putc(b, '}');
    if (!svc__buf_ok(b)) {
        b->oom = false;
        svc__buf_reset(b);
        return SVC_ENOMEM;
    }
    res->status = status;
    return svc__res_header_put(res, SVC__LIT("Content-Type"), "application/problem+json",
                               SVC__HDR_REPLACE | SVC__HDR_NAME_KEPT | SVC__HDR_VALUE_KEPT);
}

svc_status svc_res_problem(svc_res *res, int status, svc_problem_code code, const char *detail)
{
    return svc_res_problem_ext(res, status, code, detail, NULL);
}
