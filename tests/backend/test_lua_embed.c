/* The Redis scripts the build embeds from lib/<module>/redis_*.lua
 * (tools/embed-lua.py): each constant holds its files' bytes exactly, and
 * Redis names it by the SHA1 the pool computed (SCRIPT LOAD against a live
 * server, SVC_TEST_REDIS_URL; that test skips without one). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "svcinfra/redis.h"
#include "svcinfra_config.h"

#include "idempotency/store.h"
#include "jobs/jobs_internal.h"
#include "ratelimit/store.h"

#include "embed_sample.h"

typedef struct script {
    const char *name;
    const char *text;
    const char *files[2]; /* under SVC_TEST_SOURCE_ROOT, joined in order */
} script;

#define JOB(n) {"jobs " #n, NULL, {"lib/jobs/redis_prelude.lua", "lib/jobs/redis_" #n ".lua"}}

static script scripts[] = {
    {"ratelimit check", NULL, {"lib/ratelimit/redis_check.lua", NULL}},
    {"idempotency claim", NULL, {"lib/idempotency/redis_claim.lua", NULL}},
    {"idempotency complete", NULL,
     {"lib/idempotency/redis_own.lua", "lib/idempotency/redis_complete.lua"}},
    {"idempotency release", NULL,
     {"lib/idempotency/redis_own.lua", "lib/idempotency/redis_release.lua"}},
    {"jobs alloc", NULL, {"lib/jobs/redis_alloc.lua", NULL}},
    JOB(enq), JOB(claim), JOB(finish), JOB(renew), JOB(rescue), JOB(cancel),
    JOB(dlq_retry), JOB(dlq_purge), JOB(prune), JOB(stats), JOB(list),
};
#define NSCRIPTS (sizeof scripts / sizeof scripts[0])

static void fill_texts(void)
{
    for (size_t i = 0; i < NSCRIPTS; i++) {
        const char *n = scripts[i].name;
        const char *sub = strchr(n, ' ') + 1;
        if (strncmp(n, "ratelimit", 9) == 0)
            scripts[i].text = svc__rl_redis_lua();
        else if (strncmp(n, "idempotency", 11) == 0)
            scripts[i].text = svc__idem_redis_lua(sub);
        else
            scripts[i].text = svc__jobs_redis_lua(sub);
        if (!scripts[i].text)
            fail_msg("no embedded script %s", n);
    }
}

/* Appends file `path` to buf[*len, cap); fails the test if it does not fit. */
static void read_into(const char *path, char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    size_t n = fread(buf + *len, 1, cap - *len, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (more)
        fail_msg("%s is larger than the test's buffer", path);
    *len += n;
}

static void embedded_scripts_are_their_lua_files_byte_for_byte(void **state)
{
    (void)state;
    static char want[65536];
    for (size_t i = 0; i < NSCRIPTS; i++) {
        size_t len = 0;
        for (int k = 0; k < 2 && scripts[i].files[k]; k++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", SVC_TEST_SOURCE_ROOT, scripts[i].files[k]);
            read_into(path, want, sizeof want, &len);
        }
        if (strlen(scripts[i].text) != len || memcmp(scripts[i].text, want, len) != 0)
            fail_msg("%s: the embedded text differs from its .lua files", scripts[i].name);
    }
}

/* tests/backend/embed_sample.lua holds what a C string literal reads
 * otherwise: quotes, backslashes, trigraphs, tabs, CR, control bytes
 * followed by digits, UTF-8, no final newline. */
static void embedding_keeps_every_byte_of_a_file(void **state)
{
    (void)state;
    static char want[4096];
    size_t len = 0;
    read_into(SVC_TEST_SOURCE_ROOT "/tests/backend/embed_sample.lua", want, sizeof want, &len);
    assert_int_equal(sizeof EMBED_SAMPLE - 1, len);
    assert_memory_equal(EMBED_SAMPLE, want, len);
    /* joined files follow one another with nothing between */
    assert_int_equal(sizeof EMBED_SAMPLE_TWICE - 1, 2 * len);
    assert_memory_equal(EMBED_SAMPLE_TWICE, want, len);
    assert_memory_equal(EMBED_SAMPLE_TWICE + len, want, len);
}

static void redis_loads_each_script_under_the_sha1_the_pool_computed(void **state)
{
    (void)state;
    const char *url = getenv("SVC_TEST_REDIS_URL");
    if (!SVC_HAVE_REDIS || !url || !*url)
        skip();
    svc_redis_opts o;
    svc_redis_opts_default(&o);
    o.url = url;
    o.no_metrics = 1;
    svc_redis *r = NULL;
    assert_int_equal(svc_redis_new(&r, &o), SVC_OK);
    for (size_t i = 0; i < NSCRIPTS; i++) {
        svc_redis_script *sc = NULL;
        assert_int_equal(svc_redis_script_new(&sc, r, scripts[i].text), SVC_OK);
        const char *argv[] = {"SCRIPT", "LOAD", scripts[i].text};
        svc_redis_reply *rep = NULL;
        assert_int_equal(svc_redis_command_argv(r, 3, argv, NULL, &rep), SVC_OK);
        assert_int_equal(svc_redis_reply_type(rep), SVC_REDIS_STRING);
        size_t n = 0;
        const char *sha = svc_redis_reply_string(rep, &n);
        if (n != 40 || memcmp(sha, svc_redis_script_sha(sc), 40) != 0)
            fail_msg("%s: Redis says %.*s, the pool %s", scripts[i].name, (int)n, sha,
                     svc_redis_script_sha(sc));
        svc_redis_reply_free(rep);
        svc_redis_script_free(sc);
    }
    svc_redis_free(r);
}

int main(void)
{
    fill_texts();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(embedded_scripts_are_their_lua_files_byte_for_byte),
        cmocka_unit_test(embedding_keeps_every_byte_of_a_file),
        cmocka_unit_test(redis_loads_each_script_under_the_sha1_the_pool_computed),
    };
    return cmocka_run_group_tests_name("embedded Lua scripts", tests, NULL, NULL);
}
