/*
 * svcinfra/concurrency.h - optimistic concurrency: strong ETags, HTTP
 * preconditions (RFC 9110 section 13) and a version-column update for
 * PostgreSQL.
 *
 *   GET  → ETag: "v7"                  client keeps the ETag
 *   PUT  If-Match: "v7" → 200, ETag "v8"
 *   PUT  If-Match: "v7" → 412 (someone else wrote v8 meanwhile)
 *   PUT  without If-Match, required  → 428
 *   GET  If-None-Match: "v8" → 304
 *
 * Thread safety: every function touches only its arguments (and the
 * request/response of the calling handler); safe from any thread.
 */
#ifndef SVCINFRA_CONCURRENCY_H
#define SVCINFRA_CONCURRENCY_H

#include "common.h"
#include "status.h"

SVC_BEGIN_DECLS

struct svc_req;
struct svc_res;
struct svc_pg_conn;

/* Room for any ETag these helpers make, with the NUL. */
#define SVC_ETAG_MAX 48

/* Writes the strong ETag "v<version>" (quotes included) into out.
 * SVC_EINVAL for a negative version, SVC_ERANGE when outlen is too small. */
SVC_EXPORT SVC_NODISCARD svc_status svc_etag_from_version(int64_t version, char *out,
                                                          size_t outlen) SVC_NONNULL(2);

/* Writes a strong ETag from the content: the first 128 bits of its SHA-256
 * in base64url, quoted (at most 26 characters). SVC_EINVAL for data NULL with
 * n > 0, SVC_ERANGE when outlen is too small. */
SVC_EXPORT SVC_NODISCARD svc_status svc_etag_from_content(const void *data, size_t n, char *out,
                                                          size_t outlen) SVC_NONNULL(3);

/* 1 when the If-Match / If-None-Match `header` value (a comma-separated
 * list of entity tags, or "*") matches `etag`. "*" matches any current
 * representation (etag non-NULL). `weak` 1: weak comparison (W/ prefixes
 * ignored, for If-None-Match); 0: strong (a W/ tag never matches, for
 * If-Match). A NULL header or etag (no representation) matches nothing but
 * "*"-with-etag. A malformed list member (not W/"..." or "...") never
 * matches and is skipped: the members after its next comma are still
 * compared ("foo, \"v3\"" matches "v3"). */
SVC_EXPORT int svc_etag_match(const char *header, const char *etag, int weak);

/* Evaluates the request's preconditions against the resource's current
 * ETag (`etag` NULL: the resource does not exist), in RFC 9110 order:
 *   write (not GET/HEAD) without If-Match and require_if_match → 428
 *       problem+json (PRECONDITION_REQUIRED)
 *   If-Match present and not matching (strong)                 → 412
 *   If-None-Match matching (weak): GET/HEAD → 304 with ETag, else 412
 * Returns 1 when it answered (the handler returns at once), 0 to proceed;
 * on 0 for GET/HEAD with an etag it sets the ETag header. */
SVC_EXPORT int svc_etag_precondition(struct svc_req *req, struct svc_res *res, const char *etag,
                                     int require_if_match) SVC_NONNULL(1, 2);

/* An UPDATE guarded by a version column:
 *   UPDATE <table> SET <set_sql>, <version> = <version> + 1
 *    WHERE <id_column> = $n+1 AND <version> = $n+2 RETURNING <version>
 * `set_sql` uses $1..$nparams for `params`; table and column names must be
 * identifiers ([A-Za-z_][A-Za-z0-9_]*, one optional schema dot). */
typedef struct svc_rowversion_update {
    const char *table;
    const char *id_column;         /* NULL: "id" */
    const char *version_column;    /* NULL: "version" (an integer column) */
    const char *id;                /* the row's id, as text */
    const char *set_sql;           /* e.g. "name = $1, price = $2" */
    int nparams;
    const char *const *params;
    int64_t expected_version;
    void *reserved[4];
} svc_rowversion_update;

/* Runs the update on `conn` (inside a transaction: svc_pg_tx_conn(tx)).
 * Returns SVC_OK with *new_version; SVC_ECONFLICT when the row's version is
 * not the expected one (*current_version, when non-NULL, receives it);
 * SVC_ENOTFOUND when no row has this id; SVC_EINVAL for a bad identifier or
 * missing member; SVC_EBACKEND (logged at error level, outputs untouched;
 * roll the transaction back) when the version column holds NULL or a
 * non-integer; statuses of svc_pg_conn_exec(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_rowversion_pg_update(struct svc_pg_conn *conn,
                                                             const svc_rowversion_update *u,
                                                             int64_t *new_version,
                                                             int64_t *current_version)
    SVC_NONNULL(1, 2, 3);

/* Answers 409 problem+json (CONFLICT) for a lost update, with the
 * extension member "current_version" and the current ETag. */
SVC_EXPORT SVC_NODISCARD svc_status svc_rowversion_conflict(struct svc_res *res,
                                                            int64_t current_version)
    SVC_NONNULL(1);

SVC_END_DECLS

#endif /* SVCINFRA_CONCURRENCY_H */
