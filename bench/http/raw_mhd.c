/*
 * bench/http/raw_mhd.c - the baseline: "hello" on bare libmicrohttpd.
 *
 *   raw_mhd PORT THREADS        (PORT 0: a free port, printed)
 *
 * Same daemon model as svc_app: an internal epoll polling thread pool of
 * THREADS threads on 127.0.0.1, each request answered from the thread that
 * read it, one response object built per request (svc_app builds one per
 * request too). It answers every request with the same JSON body and
 * content type as svc_hello, so the two differ only by what svc_app adds.
 * Prints "listening on PORT" once ready; exits on SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

static const char body[] = "{\"message\":\"hello, world\"}";

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = conn;
        return MHD_YES;
    }
    if (*upload_size) { /* discard a body */
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *res =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!res)
        return MHD_NO;
    MHD_add_response_header(res, "Content-Type", "application/json");
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, res);
    MHD_destroy_response(res);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT THREADS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    int threads = atoi(argv[2]);
    if (port < 0 || port > 65535 || threads <= 0 || threads > 256) {
        fprintf(stderr, "raw_mhd: bad port or thread count\n");
        return 2;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by the daemon's threads */

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    /* One thread: the polling thread itself answers (libmicrohttpd ignores
     * a pool of one); more: a pool of that many polling threads. */
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_CONNECTION_LIMIT, 1024, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                                            MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "raw_mhd: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("listening on %u\n", info ? (unsigned)info->port : (unsigned)port);
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
