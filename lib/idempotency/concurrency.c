/*
 * concurrency.c - ETags, HTTP preconditions and the version-column update
 * (svcinfra/concurrency.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra_config.h"
#include "svcinfra/concurrency.h"
#include "svcinfra/crypto.h"
#include "svcinfra/log.h"
#include "svcinfra/pg.h"

#include "../internal.h"

svc_status svc_etag_from_version(int64_t version, char *out, size_t outlen)
{
    if (version < 0)
        return SVC_EINVAL;
    int n = snprintf(out, outlen, "\"v%lld\"", (long long)version);
    return (n < 0 || (size_t)n >= outlen) ? SVC_ERANGE : SVC_OK;
}

svc_status svc_etag_from_content(const void *data, size_t n, char *out, size_t outlen)
{
    if (!data && n)
        return SVC_EINVAL;
    if (outlen < 27)
        return SVC_ERANGE;
    uint8_t d[32];
    svc_status st = svc_sha256(data ? data : "", n, d);
    if (st != SVC_OK)
        return st;
    out[0] = '"';
    size_t k = svc_base64url_encode(d, 16, out + 1, outlen - 1);
    if (k == 0 || k + 3 > outlen)
        return SVC_ERANGE;
    out[1 + k] = '"';
    out[2 + k] = '\0';
    return SVC_OK;
}

int svc_etag_match(const char *header, const char *etag, int weak)
{
    if (!header)
        return 0;
    const char *p = header;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '*') {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        return *q == '\0' && etag != NULL;
    }
    if (!etag)
        return 0;
    bool etag_weak = strncmp(etag, "W/", 2) == 0;
    if (etag_weak && !weak)
        return 0;
    const char *e = etag_weak ? etag + 2 : etag;
    size_t elen = strlen(e);
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        bool w = false;
        if (p[0] == 'W' && p[1] == '/') {
            w = true;
            p += 2;
        }
        /* A member is W/? "..." then optional whitespace, then ',' or the
         * end. Anything else is malformed: it matches nothing, and the
         * members after its next comma are still compared. */
        const char *close = *p == '"' ? strchr(p + 1, '"') : NULL;
        const char *after = close ? close + 1 : p;
        while (close && (*after == ' ' || *after == '\t'))
            after++;
        if (!close || (*after != ',' && *after != '\0')) {
            after = strchr(after, ',');
            if (!after)
                break;
            p = after;
            continue;
        }
        size_t len = (size_t)(close - p) + 1;
        if ((weak || !w) && len == elen && memcmp(p, e, len) == 0)
            return 1;
        p = after;
    }
    return 0;
}

#if SVC_HAVE_HTTP

#include <jansson.h>

#include "svcinfra/http.h"

static inline void discard(svc_status st) { (void)st; }

static int answer(svc_res *res, int status, svc_problem_code code, const char *detail)
{
    if (svc_res_problem(res, status, code, detail) != SVC_OK)
        svc_res_status(res, status);
    return 1;
}

int svc_etag_precondition(struct svc_req *req, struct svc_res *res, const char *etag,
                          int require_if_match)
{
    const char *m = svc_req_method(req);
    bool read = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    const char *im = svc_req_header(req, "If-Match");
    const char *inm = svc_req_header(req, "If-None-Match");
    if (!read && require_if_match && !im)
        return answer(res, 428, SVC_PROBLEM_PRECONDITION_REQUIRED,
                      "this write needs an If-Match header with the resource's ETag");
    if (im && !svc_etag_match(im, etag, 0))
        return answer(res, 412, SVC_PROBLEM_PRECONDITION,
                      "If-Match does not match the current ETag");
    if (inm && svc_etag_match(inm, etag, 1)) {
        if (read) {
            svc_res_status(res, 304);
            discard(svc_res_header_set(res, "ETag", etag));
            return 1;
        }
        return answer(res, 412, SVC_PROBLEM_PRECONDITION,
                      "If-None-Match matches the current representation");
    }
    if (read && etag)
        discard(svc_res_header_set(res, "ETag", etag));
    return 0;
}

svc_status svc_rowversion_conflict(struct svc_res *res, int64_t current_version)
{
    json_t *ext = json_pack("{s:I}", "current_version", (json_int_t)current_version);
    svc_status st = svc_res_problem_ext(res, 409, SVC_PROBLEM_CONFLICT,
                                        "the resource was changed by another request; "
                                        "read it again and retry",
                                        ext);
    json_decref(ext);
    char etag[SVC_ETAG_MAX];
    if (st == SVC_OK && current_version >= 0 &&
        svc_etag_from_version(current_version, etag, sizeof etag) == SVC_OK)
        st = svc_res_header_set(res, "ETag", etag);
    return st;
}

#else

int svc_etag_precondition(struct svc_req *req, struct svc_res *res, const char *etag,
                          int require_if_match)
{
    SVC__UNUSED(req), SVC__UNUSED(res), SVC__UNUSED(etag), SVC__UNUSED(require_if_match);
    return 0;
}

svc_status svc_rowversion_conflict(struct svc_res *res, int64_t current_version)
{
    SVC__UNUSED(res), SVC__UNUSED(current_version);
    return SVC_ENOTSUP;
}

#endif

/* [A-Za-z_][A-Za-z0-9_]* with at most one dot between two such names. */
static bool ident_ok(const char *s)
{
    int dots = 0;
    bool start = true;
    for (; *s; s++) {
        if (*s == '.') {
            if (start || ++dots > 1)
                return false;
            start = true;
        } else if (isalpha((unsigned char)*s) || *s == '_' ||
                   (!start && isdigit((unsigned char)*s))) {
            start = false;
        } else {
            return false;
        }
    }
    return !start;
}

#define MAX_ROW_PARAMS 64

/* The version in the first column of the first row: SVC_EBACKEND (logged)
 * when it is NULL or not an integer, as a nullable or non-integer version
 * column gives. */
static svc_status version_of(const svc_pg_result *res, const char *table, const char *column,
                             int64_t *out)
{
    const char *v = svc_pg_result_value(res, 0, 0);
    char *end = NULL;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end != '\0') {
        svc_logf(SVC_LOG_ERROR, "rowversion: %.64s.%.64s holds %s where an integer version "
                 "belongs", table, column, v ? "a non-integer value" : "NULL");
        return SVC_EBACKEND;
    }
    *out = (int64_t)n;
    return SVC_OK;
}

svc_status svc_rowversion_pg_update(struct svc_pg_conn *conn, const svc_rowversion_update *u,
                                    int64_t *new_version, int64_t *current_version)
{
    const char *idc = u->id_column ? u->id_column : "id";
    const char *vc = u->version_column ? u->version_column : "version";
    if (!u->table || !u->id || !u->set_sql || !u->set_sql[0] || !ident_ok(u->table) ||
        !ident_ok(idc) || !ident_ok(vc) || u->nparams < 0 || u->nparams > MAX_ROW_PARAMS ||
        (u->nparams && !u->params))
        return SVC_EINVAL;
    char *sql = svc__asprintf("UPDATE %s SET %s, %s = %s + 1 WHERE %s = $%d AND %s = $%d "
                              "RETURNING %s",
                              u->table, u->set_sql, vc, vc, idc, u->nparams + 1, vc,
                              u->nparams + 2, vc);
    if (!sql)
        return SVC_ENOMEM;
    const char *p[MAX_ROW_PARAMS + 2];
    for (int i = 0; i < u->nparams; i++)
        p[i] = u->params[i];
    char ev[24];
    snprintf(ev, sizeof ev, "%lld", (long long)u->expected_version);
    p[u->nparams] = u->id;
    p[u->nparams + 1] = ev;
    svc_pg_result *res = NULL;
    svc_status st = svc_pg_conn_exec(conn, sql, u->nparams + 2, p, &res);
    svc_free(sql);
    if (st != SVC_OK)
        return st;
    if (svc_pg_result_rows(res) == 1) {
        st = version_of(res, u->table, vc, new_version);
        svc_pg_result_free(res);
        return st;
    }
    svc_pg_result_free(res);
    sql = svc__asprintf("SELECT %s FROM %s WHERE %s = $1", vc, u->table, idc);
    if (!sql)
        return SVC_ENOMEM;
    st = svc_pg_conn_exec(conn, sql, 1, &u->id, &res);
    svc_free(sql);
    if (st != SVC_OK)
        return st;
    st = SVC_ENOTFOUND;
    if (svc_pg_result_rows(res) == 1) {
        int64_t cur = 0;
        st = version_of(res, u->table, vc, &cur);
        if (st == SVC_OK) {
            st = SVC_ECONFLICT;
            if (current_version)
                *current_version = cur;
        }
    }
    svc_pg_result_free(res);
    return st;
}
