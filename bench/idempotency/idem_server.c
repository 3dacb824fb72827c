/*
 * idem_server.c - the app bench/idempotency/run.sh measures.
 *
 *   idem_server PORT THREADS plain|idem
 *
 * POST /pay runs a handler doing a realistic small amount of work for a
 * payment endpoint: it parses the JSON body, checks two members, computes
 * an HMAC-SHA-256 "signature" over the body and answers 201 with a JSON
 * document. `idem` adds svc_add_idempotency() with the defaults (memory
 * store); `plain` does not. Default middleware stays on in both (request
 * id, security headers), access log off. Prints "listening on PORT".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <svcinfra/svcinfra.h>

static void pay(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    json_t *in = NULL;
    json_int_t amount = 0;
    const char *currency = NULL;
    if (svc_req_json(req, &in) != SVC_OK ||
        json_unpack(in, "{s:I, s:s}", "amount", &amount, "currency", &currency) != 0) {
        json_decref(in);
        if (svc_res_problem(res, 400, SVC_PROBLEM_VALIDATION, "bad payment") != SVC_OK)
            svc_res_status(res, 400);
        return;
    }
    size_t blen = 0;
    const char *body = svc_req_body(req, &blen);
    uint8_t mac[32];
    char hex[65];
    if (svc_hmac_sha256("bench-secret", 12, body, blen, mac) != SVC_OK)
        memset(mac, 0, sizeof mac);
    svc_hex_encode(mac, sizeof mac, hex, sizeof hex);
    json_t *out = json_pack("{s:s, s:I, s:s, s:s, s:s}", "id", svc_req_id(req), "amount", amount,
                            "currency", currency, "status", "succeeded", "signature", hex);
    json_decref(in);
    if (!out || svc_res_json(res, 201, out) != SVC_OK)
        svc_res_status(res, 500);
    json_decref(out);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s PORT THREADS plain|idem\n", argv[0]);
        return 2;
    }
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.port = (uint16_t)atoi(argv[1]);
    o.threads = (unsigned)atoi(argv[2]);
    o.access_log = 0;
    o.handler_timeout_ms = 1000; /* below the lease of the short-TTL rounds */
    svc_app *app = NULL;
    svc_status st = svc_app_new(&app, &o);
    if (st == SVC_OK)
        st = svc_app_route(app, "POST", "/pay", pay, NULL);
    if (st == SVC_OK && strcmp(argv[3], "idem") == 0)
        st = svc_add_idempotency(app, NULL);
    if (st == SVC_OK)
        st = svc_app_start(app);
    if (st != SVC_OK) {
        fprintf(stderr, "idem_server: %s\n", svc_strerror(st));
        svc_app_free(app);
        return 1;
    }
    printf("listening on %u\n", (unsigned)svc_app_port(app));
    fflush(stdout);
    st = svc_app_run(app);
    svc_app_free(app);
    return st == SVC_OK ? 0 : 1;
}
