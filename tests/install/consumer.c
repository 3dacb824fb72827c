/* A program outside the tree: built against an installed libsvcinfra with
 * `pkg-config --cflags --libs svcinfra` (or as a meson subproject), it
 * serves /healthz on the port given as argv[1] until SIGTERM. */
#include <stdio.h>
#include <stdlib.h>

#include <svcinfra/svcinfra.h>

int main(int argc, char **argv)
{
    svc_app_opts opts;
    svc_app_opts_default(&opts);
    opts.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 8080);
    opts.threads = 1;
    svc_app *app = NULL;
    svc_status st = svc_app_new(&app, &opts);
    if (st != SVC_OK) {
        fprintf(stderr, "svc_app_new: %s\n", svc_strerror(st));
        return 1;
    }
    if (svc_add_probes(app, NULL) != SVC_OK || svc_app_run(app) != SVC_OK) {
        fprintf(stderr, "serve: %s\n", svc_app_errmsg(app));
        svc_app_free(app);
        return 1;
    }
    printf("svcinfra %s: stopped\n", svc_version_string());
    svc_app_free(app);
    return 0;
}
