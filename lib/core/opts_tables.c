/* opts_tables.c - every option table built into the library, in the order
 * docs/configuration.md lists them (its test reads this list). */
#include "opts.h"

#include "../internal.h"

extern const svc__opt_table svc__http_opts_table;
extern const svc__opt_table svc__cors_opts_table;
extern const svc__opt_table svc__security_opts_table;
extern const svc__opt_table svc__probes_opts_table;
extern const svc__opt_table svc__metrics_http_opts_table;
extern const svc__opt_table svc__tenancy_opts_table;
extern const svc__opt_table svc__pg_opts_table;
extern const svc__opt_table svc__redis_opts_table;
extern const svc__opt_table svc__ratelimit_opts_table;
extern const svc__opt_table svc__ratelimit_http_opts_table;
extern const svc__opt_table svc__idem_opts_table;
extern const svc__opt_table svc__idem_http_opts_table;
extern const svc__opt_table svc__jobs_opts_table;
extern const svc__opt_table svc__jobs_worker_opts_table;
extern const svc__opt_table svc__jobs_scheduler_opts_table;
extern const svc__opt_table svc__jobs_http_opts_table;
extern const svc__opt_table svc__outbox_opts_table;
extern const svc__opt_table svc__outbox_http_opts_table;
extern const svc__opt_table svc__inbox_opts_table;

static const svc__opt_table *const tables[] = {
    &svc__http_opts_table,
    &svc__cors_opts_table,
    &svc__security_opts_table,
    &svc__probes_opts_table,
    &svc__metrics_http_opts_table,
    &svc__tenancy_opts_table,
    &svc__pg_opts_table,
    &svc__redis_opts_table,
    &svc__ratelimit_opts_table,
    &svc__ratelimit_http_opts_table,
    &svc__idem_opts_table,
    &svc__idem_http_opts_table,
    &svc__jobs_opts_table,
    &svc__jobs_worker_opts_table,
    &svc__jobs_scheduler_opts_table,
    &svc__jobs_http_opts_table,
    &svc__outbox_opts_table,
    &svc__outbox_http_opts_table,
    &svc__inbox_opts_table,
};

const svc__opt_table *const *svc__opts_tables(size_t *n)
{
    *n = SVC__ARRAY_LEN(tables);
    return tables;
}
