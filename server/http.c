#include "server/http.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/ids.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/timeutil.h"
#include "handlers/handlers.h"
#include "handlers/http/errors.h"
#include "server/hosts.h"

struct http_server {
    struct MHD_Daemon *daemon;
    struct app *app;
    size_t max_body_bytes;
    /* Request bodies held at once, all connections together (--max-body-memory). */
    size_t max_body_memory;
    atomic_size_t body_bytes_held;
    char allowed_hosts[1024]; /* --allowed-hosts */
    size_t max_json_values, max_json_containers, max_json_depth;
    struct apikeys *keys;     /* NULL: no API keys configured */
    char *tls_cert, *tls_key; /* PEM text, kept while the daemon runs; NULL: plain HTTP */
    /* The connection watchdog (see struct watched). */
    int64_t header_timeout_ms, idle_timeout_ms, body_timeout_ms;
    pthread_mutex_t watch_lock;
    pthread_cond_t watch_wake;
    struct watched *watch_head; /* the open connections */
    bool watch_stop, watch_running;
    pthread_t watchdog;
};

/*
 * One open connection, from MHD_CONNECTION_NOTIFY_STARTED to _CLOSED (its
 * socket context). libmicrohttpd 0.9 has no deadline for a request head:
 * its connection timeout restarts with every byte, so one byte a second
 * holds a connection (and its thread) for ever. The watchdog thread shuts
 * down the socket of a connection past its deadline; MHD then sees the
 * connection end and closes it. The deadline: --header-timeout from the
 * connection's start for the first head, --idle-timeout from an answer for
 * the next head on a keep-alive connection, --body-timeout from a complete
 * head for its body (MHD's own timeout, --idle-timeout, restarts with every
 * byte of it too), none while a request is handled. MHD notifies _CLOSED
 * before it closes the socket, so fd is never a reused number.
 */
struct watched {
    int fd;
    int64_t deadline_ms; /* monotonic; 0: none */
    bool body;           /* the deadline is a body's (else a request head's) */
    struct watched *prev, *next;
};

/* How often the watchdog looks at the deadlines. */
#define WATCH_PERIOD_MS 250

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct watched *w = info ? calloc(1, sizeof *w) : NULL;
        *socket_context = w;
        if (!w) { /* unwatched: MHD's idle timeout still ends it */
            log_warn("http: a connection goes without a header deadline (out of memory)");
            return;
        }
        w->fd = info->connect_fd;
        w->deadline_ms = time_monotonic_ms() + srv->header_timeout_ms;
        pthread_mutex_lock(&srv->watch_lock);
        w->next = srv->watch_head;
        if (w->next)
            w->next->prev = w;
        srv->watch_head = w;
        pthread_mutex_unlock(&srv->watch_lock);
        return;
    }
    struct watched *w = *socket_context;
    if (!w)
        return;
    pthread_mutex_lock(&srv->watch_lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        srv->watch_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&srv->watch_lock);
    free(w);
    *socket_context = NULL;
}

/* Sets the deadline of conn's connection (0: none); body: it is a body's. */
static void watch_set(struct http_server *srv, struct MHD_Connection *conn, int64_t deadline_ms,
                      bool body)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct watched *w = info ? info->socket_context : NULL;
    if (!w)
        return;
    pthread_mutex_lock(&srv->watch_lock);
    w->deadline_ms = deadline_ms;
    w->body = body;
    pthread_mutex_unlock(&srv->watch_lock);
}

static void *watchdog_main(void *arg)
{
    struct http_server *srv = arg;
    pthread_mutex_lock(&srv->watch_lock);
    while (!srv->watch_stop) {
        int64_t now = time_monotonic_ms();
        size_t cut = 0, cut_body = 0;
        for (struct watched *w = srv->watch_head; w; w = w->next) {
            if (w->deadline_ms && now >= w->deadline_ms) {
                w->deadline_ms = 0; /* once: MHD closes it next */
                if (shutdown(w->fd, SHUT_RDWR) == 0)
                    (*(w->body ? &cut_body : &cut))++;
            }
        }
        if (cut)
            log_warn("http: closed %zu connection(s) without a complete request head in time "
                     "(--header-timeout %llds, --idle-timeout %llds on keep-alive)",
                     cut, (long long)(srv->header_timeout_ms / 1000),
                     (long long)(srv->idle_timeout_ms / 1000));
        if (cut_body)
            log_warn("http: closed %zu connection(s) whose request body did not arrive in time "
                     "(--body-timeout %llds); nothing of those requests was written",
                     cut_body, (long long)(srv->body_timeout_ms / 1000));
        struct timespec until = time_realtime_after_ms(WATCH_PERIOD_MS);
        pthread_cond_timedwait(&srv->watch_wake, &srv->watch_lock, &until);
    }
    pthread_mutex_unlock(&srv->watch_lock);
    return NULL;
}

/* A body at least this large gives its memory back to the system once its
 * request is done (glibc keeps freed memory in its arenas otherwise). */
#define HTTP_TRIM_BYTES ((size_t)1 << 20)

/* Per-request state while the body arrives (made by on_target). */
struct req_ctx {
    struct http_server *srv;
    struct buf body;
    bool too_big;
    bool over_memory; /* the body did not fit in --max-body-memory */
    size_t reserved;  /* bytes of --max-body-memory this body holds */
    bool seen;        /* on_request has had its first call */
    /* The API key, checked on the first call (before any body is read). */
    bool key_known;
    unsigned key_scopes;
    char key_name[APIKEY_NAME_MAX + 1];
    int64_t started_ms;
    int64_t started_us;
    /* The path as the client sent it, still percent-encoded (the query cut
     * off): the router splits it and decodes each segment with its length. */
    char *path;
};

static const char *lookup(void *ctx, enum lookup_kind kind, const char *name)
{
    return MHD_lookup_connection_value(
        ctx, kind == LOOKUP_HEADER ? MHD_HEADER_KIND : MHD_GET_ARGUMENT_KIND, name);
}

static bool valid_request_id(const char *s)
{
    return s && ids_valid(s);
}

static enum MHD_Result send_response(struct MHD_Connection *conn, struct response *res,
                                     const char *rid)
{
    char *text = NULL;
    size_t len = 0;
    struct MHD_Response *r;
    if (res->body) {
        struct buf b;
        buf_init(&b, (size_t)1 << 30);
        if (json_text_append(&b, res->body) != BUF_OK) {
            buf_free(&b);
            return MHD_NO;
        }
        len = b.len;
        text = buf_steal(&b);
        r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    } else if (res->text) {
        text = res->text;
        res->text = NULL;
        r = MHD_create_response_from_buffer(res->raw_len, text, MHD_RESPMEM_MUST_FREE);
    } else {
        r = MHD_create_response_from_buffer(res->raw_len, (void *)res->raw, MHD_RESPMEM_PERSISTENT);
    }
    if (!r) {
        free(text);
        return MHD_NO;
    }
    if (res->body)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    else if (res->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res->content_type);
    MHD_add_response_header(r, "X-Request-Id", rid);
    for (size_t i = 0; i < res->n_headers; i++)
        MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, res->status, r);
    MHD_destroy_response(r);
    return ret;
}

/*
 * MHD_OPTION_URI_LOG_CALLBACK: MHD calls it with the request-target as it
 * arrived, before it decodes the path in place, and makes what it returns
 * the request's context (*con_cls). The decoded path MHD hands on_request
 * is a C string, so a "%00" in it would cut it short ("/v1/entities/abc%00x"
 * would name "abc"): the router works on this copy instead. NULL (out of
 * memory) makes on_request close the connection.
 */
static void *on_target(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    struct http_server *srv = cls;
    struct req_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    size_t n = strcspn(uri, "?");
    ctx->path = malloc(n + 1);
    if (!ctx->path) {
        free(ctx);
        return NULL;
    }
    memcpy(ctx->path, uri, n);
    ctx->path[n] = '\0';
    ctx->srv = srv;
    buf_init(&ctx->body, srv->max_body_bytes);
    ctx->started_ms = time_monotonic_ms();
    ctx->started_us = metrics_now_us();
    return ctx;
}

/* MHD_get_connection_values_n callback: stops at the first query parameter
 * whose name or value holds a decoded NUL (its length says more than
 * strlen), and keeps its name (up to that NUL) in *cls. */
static enum MHD_Result find_nul(void *cls, enum MHD_ValueKind kind, const char *key,
                                size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    if ((key && strlen(key) != key_size) || (value && strlen(value) != value_size)) {
        *(const char **)cls = key ? key : "";
        return MHD_NO;
    }
    return MHD_YES;
}

/* The name of a query parameter that holds a NUL, or NULL when none does. */
static const char *query_with_nul(struct MHD_Connection *conn)
{
    const char *bad = NULL;
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, find_nul, &bad);
    return bad;
}

/* The metrics of one answered request (common/metrics.h). */
static void count_request(const struct request *req, const struct response *res, int64_t took_us)
{
    metrics_http(req->route_index >= 0 ? (size_t)req->route_index : METRICS_ROUTE_UNMATCHED,
                 res->status);
    if (!req->write_tx)
        return;
    metrics_transaction(res->status, took_us > 0 ? (uint64_t)took_us : 0);
    if (res->status == 409) {
        const char *code =
            json_string_value(json_object_get(json_object_get(res->body, "error"), "code"));
        if (code &&
            (strcmp(code, "entity_exists") == 0 || strcmp(code, "relationship_exists") == 0))
            metrics_id_conflict();
    }
}

/* Takes n more bytes of --max-body-memory for ctx's body; false when they
 * do not fit (nothing taken). */
static bool body_reserve(struct http_server *srv, struct req_ctx *ctx, size_t n)
{
    size_t held = atomic_load(&srv->body_bytes_held);
    do {
        if (n > srv->max_body_memory - held)
            return false;
    } while (!atomic_compare_exchange_weak(&srv->body_bytes_held, &held, held + n));
    ctx->reserved += n;
    return true;
}

static void body_release(struct http_server *srv, struct req_ctx *ctx)
{
    atomic_fetch_sub(&srv->body_bytes_held, ctx->reserved);
    ctx->reserved = 0;
}

/* request.reserve: a body's parsed tree takes its share too. */
static bool reserve_tree(void *cls, size_t bytes)
{
    struct req_ctx *ctx = cls;
    return body_reserve(ctx->srv, ctx, bytes);
}

/* What a body that does not fit in --max-body-memory is told. */
#define BODY_MEMORY_FULL                                                                           \
    "the gateway holds as many request bodies as it may at once (--max-body-memory); retry "       \
    "shortly"

/* Answers an error before the body is read (413 or 503 from Content-Length),
 * counted in the metrics under its route. */
static enum MHD_Result reply_early(struct MHD_Connection *conn, const struct req_ctx *ctx,
                                   const char *method, enum bs_code code, const char *message)
{
    struct response res = {0};
    struct bs_error err;
    bs_error_clear(&err);
    bs_error_set(&err, code, "%s", message);
    reply_error(&res, &err);
    struct request req = {.method = method, .path = ctx->path, .route_index = -1};
    const struct route *r =
        router_match(&handlers_routes, method, ctx->path, req.args, &req.n_args);
    if (r) {
        req.route_index = (long)(r - handlers_routes.routes);
        req.write_tx = r->write_tx;
    }
    count_request(&req, &res, metrics_now_us() - ctx->started_us);
    char rid[UUID_STR_LEN];
    ids_uuid7(rid);
    enum MHD_Result ret = send_response(conn, &res, rid);
    response_free(&res);
    return ret;
}

/*
 * A /v1 request with a body and without a known API key, answered on
 * on_request's first call, before its body is read (a client without a key cannot make the
 * gateway hold a body): the router answers 401 without running a handler,
 * since every /v1 route needs a key and an unknown /v1 path is 401 too.
 */
static enum MHD_Result reply_unauthorized(struct http_server *srv, struct MHD_Connection *conn,
                                          struct req_ctx *ctx, const char *method)
{
    char rid[UUID_STR_LEN];
    ids_uuid7(rid);
    struct request req = {.method = method,
                          .path = ctx->path,
                          .rid = rid,
                          .lookup = lookup,
                          .lookup_ctx = conn,
                          .route_index = -1,
                          .keys_required = true};
    struct response res = {0};
    const char *args[2];
    size_t n_args;
    const struct route *r = router_match(&handlers_routes, method, ctx->path, args, &n_args);
    if (r && r->scope == SCOPE_NONE) /* none today; its handler would want the body */
        return MHD_YES;
    handlers_dispatch(srv->app, &req, &res);
    int64_t took_us = metrics_now_us() - ctx->started_us;
    count_request(&req, &res, took_us);
    log_request(LOG_WARN, rid, method, req.route_name ? req.route_name : "unmatched", ctx->path,
                res.status, (double)took_us / 1000.0, NULL, NULL);
    enum MHD_Result ret = send_response(conn, &res, rid);
    response_free(&res);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)url; /* decoded and possibly cut at a NUL: ctx->path is used instead */
    struct http_server *srv = cls;
    size_t limit = srv->max_body_bytes;
    struct req_ctx *ctx = *con_cls;
    if (!ctx)
        return MHD_NO; /* on_target ran out of memory */
    const char *path = ctx->path;
    if (!ctx->seen) {
        ctx->seen = true;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        size_t cl_bytes = cl ? (size_t)strtoull(cl, NULL, 10) : 0;
        if (cl_bytes > limit) {
            /* Taler's way: answer 413 at once; MHD closes the connection. */
            char msg[128];
            snprintf(msg, sizeof msg, "the body is larger than %zu bytes", limit);
            log_warn("%s %s: 413, Content-Length %s over %zu", method, path, cl, limit);
            return reply_early(conn, ctx, method, BS_PAYLOAD_TOO_LARGE, msg);
        }
        if (srv->keys) {
            ctx->key_known = apikeys_check(
                srv->keys, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
                &ctx->key_scopes, ctx->key_name);
            /* A body on its way is refused unread (MHD then closes the
             * connection); a request without one is answered as usual. */
            if (!ctx->key_known && (cl_bytes > 0 || te) && strncmp(path, "/v1/", 4) == 0)
                return reply_unauthorized(srv, conn, ctx, method);
        }
        /* A body of a known length takes its share of --max-body-memory
         * before a byte of it is read; one that does not fit is 503 at once
         * (MHD then closes the connection), as a full writer queue is. */
        if (cl_bytes > 0 && !body_reserve(srv, ctx, cl_bytes)) {
            log_warn("%s %s: 503, a body of %zu bytes does not fit in --max-body-memory (%zu)",
                     method, path, cl_bytes, srv->max_body_memory);
            return reply_early(conn, ctx, method, BS_OVERLOADED, BODY_MEMORY_FULL);
        }
        /* The head is complete: its body (if any) is due within --body-timeout. */
        watch_set(srv, conn, cl_bytes > 0 || te ? time_monotonic_ms() + srv->body_timeout_ms : 0,
                  true);
        return MHD_YES;
    }
    if (*upload_size) {
        /* Past a limit the rest is read and dropped, and 413 (or 503)
         * answered at the end: never a silently cut body. A body of unknown
         * length (chunked) takes its memory as it arrives. */
        size_t n = *upload_size;
        if (!ctx->too_big && !ctx->over_memory && ctx->body.len + n > ctx->reserved &&
            !body_reserve(srv, ctx, ctx->body.len + n - ctx->reserved))
            ctx->over_memory = true;
        if (!ctx->too_big && !ctx->over_memory && buf_append(&ctx->body, upload_data, n) != BUF_OK)
            ctx->too_big = true;
        *upload_size = 0;
        return MHD_YES;
    }
    watch_set(srv, conn, 0, false); /* the body is in: no deadline while it is handled */

    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    char rid[ID_MAX_LEN + 1];
    if (valid_request_id(given))
        snprintf(rid, sizeof rid, "%s", given);
    else
        ids_uuid7(rid);

    struct response res = {0};
    struct request req = {
        .method = method,
        .path = path,
        .body = ctx->body.len ? buf_str(&ctx->body) : NULL,
        .body_len = ctx->body.len,
        .max_json_values = srv->max_json_values,
        .max_json_containers = srv->max_json_containers,
        .max_json_depth = srv->max_json_depth,
        .rid = rid,
        .lookup = lookup,
        .lookup_ctx = conn,
        .reserve = reserve_tree,
        .reserve_ctx = ctx,
        .max_request_memory = srv->max_body_memory,
        .route_index = -1,
        .keys_required = srv->keys != NULL,
    };
    req.key_known = ctx->key_known;
    req.key_scopes = ctx->key_scopes;
    const char *nul_in = query_with_nul(conn);
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    /* the probes answer any Host: a standby, a load balancer or a
     * container's health check may name the gateway as it likes, and they
     * tell a page nothing worth a DNS rebinding */
    bool probe = strcmp(ctx->path, "/healthz") == 0 || strcmp(ctx->path, "/readyz") == 0;
    if (!probe && !hosts_allowed(srv->allowed_hosts, host)) {
        reply_errorf(&res, BS_FORBIDDEN, NULL,
                     "Host '%.100s' is not a name this gateway serves (IP addresses, localhost "
                     "and the names of --allowed-hosts are)",
                     host);
    } else if (ctx->too_big) {
        reply_errorf(&res, BS_PAYLOAD_TOO_LARGE, NULL, "the body is larger than %zu bytes", limit);
    } else if (ctx->over_memory) {
        reply_errorf(&res, BS_OVERLOADED, NULL, "%s", BODY_MEMORY_FULL);
    } else if (nul_in) {
        reply_errorf(&res, BS_INVALID_REQUEST, nul_in,
                     "query parameter '%s' holds a NUL byte (%%00), which no parameter may",
                     nul_in);
    } else {
        handlers_dispatch(srv->app, &req, &res);
    }
    if (res.status == 0) { /* a handler that answered nothing is our bug */
        log_msg(LOG_ERROR, rid, "%s %s: handler queued no response", method, path);
        reply_errorf(&res, BS_STORAGE_ERROR, NULL, "internal error");
    }
    int64_t took_us = metrics_now_us() - ctx->started_us;
    count_request(&req, &res, took_us);
    const char *tx_id = json_string_value(json_object_get(res.body, "tx_id"));
    log_request(res.status >= 500   ? LOG_ERROR
                : res.status >= 400 ? LOG_WARN
                                    : LOG_INFO,
                rid, method, req.route_name ? req.route_name : "unmatched", path, res.status,
                (double)took_us / 1000.0, tx_id, req.key_known ? ctx->key_name : NULL);
    enum MHD_Result ret = send_response(conn, &res, rid);
    response_free(&res);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    (void)toe;
    /* A keep-alive connection's next head is due within the idle timeout. */
    watch_set(srv, conn, time_monotonic_ms() + srv->idle_timeout_ms, false);
    struct req_ctx *ctx = *con_cls;
    if (ctx) {
        body_release(srv, ctx);
        bool large = ctx->body.len >= HTTP_TRIM_BYTES || ctx->too_big;
        buf_free(&ctx->body);
        free(ctx->path);
        free(ctx);
        *con_cls = NULL;
        if (large)
            malloc_trim(0);
    }
}

/* Ends the watchdog thread (after the daemon: no connection is left). */
static void watchdog_stop(struct http_server *srv)
{
    if (!srv->watch_running)
        return;
    pthread_mutex_lock(&srv->watch_lock);
    srv->watch_stop = true;
    pthread_cond_signal(&srv->watch_wake);
    pthread_mutex_unlock(&srv->watch_lock);
    pthread_join(srv->watchdog, NULL);
    pthread_cond_destroy(&srv->watch_wake);
    pthread_mutex_destroy(&srv->watch_lock);
    srv->watch_running = false;
}

/* libmicrohttpd's printf-style message (the format attribute tells clang's
 * -Wformat-nonliteral that fmt is one). */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    log_warn("http: %s", line);
}

/* The whole file at path as a NUL-terminated string (malloc'd), or NULL
 * with the reason in msg. */
static char *read_pem(const char *path, const char *flag, char *msg, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, cap, "%s: cannot open %s", flag, path);
        return NULL;
    }
    struct buf b;
    buf_init(&b, (size_t)1 << 20);
    char chunk[4096];
    size_t n;
    bool ok = true;
    while (ok && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ok = buf_append(&b, chunk, n) == BUF_OK;
    ok = ok && !ferror(f) && b.len > 0;
    fclose(f);
    if (!ok) {
        snprintf(msg, cap, "%s: cannot read %s (empty, unreadable or over 1 MiB)", flag, path);
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

static void free_pem(char *pem)
{
    if (pem) {
        memset(pem, 0, strlen(pem));
        free(pem);
    }
}

struct http_server *http_start(struct app *app, const struct config *cfg, struct apikeys *keys,
                               unsigned *bound_port, char *msg, size_t cap)
{
    const char *host = cfg->listen_host;
    unsigned port = cfg->listen_port;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    const char *h = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    int gai = getaddrinfo(h, portstr, &hints, &ai);
    if (gai != 0) {
        snprintf(msg, cap, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return NULL;
    }
    struct http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        freeaddrinfo(ai);
        snprintf(msg, cap, "out of memory");
        return NULL;
    }
    srv->app = app;
    srv->keys = keys;
    if (cfg->tls_cert[0]) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(msg, cap, "--tls-cert: this libmicrohttpd is built without TLS");
            freeaddrinfo(ai);
            free(srv);
            return NULL;
        }
        srv->tls_cert = read_pem(cfg->tls_cert, "--tls-cert", msg, cap);
        srv->tls_key = srv->tls_cert ? read_pem(cfg->tls_key, "--tls-key", msg, cap) : NULL;
        if (!srv->tls_key) {
            free_pem(srv->tls_cert);
            freeaddrinfo(ai);
            free(srv);
            return NULL;
        }
    }
    srv->max_body_bytes = cfg->max_body_bytes;
    srv->max_body_memory = cfg->max_body_memory;
    atomic_init(&srv->body_bytes_held, 0);
    snprintf(srv->allowed_hosts, sizeof srv->allowed_hosts, "%s", cfg->allowed_hosts);
    /* A valid transaction has a few objects and a few dozen values per
     * operation; these leave room for rich metadata and bound the tree a
     * body becomes to tens of megabytes (without them, 16 MiB of "{}," is
     * 1.2 GB of jansson objects). */
    srv->max_json_containers = 16 * cfg->max_operations + 1024;
    srv->max_json_values = 256 * cfg->max_operations + 65536;
    srv->max_json_depth = cfg->max_json_depth;
    srv->header_timeout_ms = (int64_t)cfg->header_timeout_s * 1000;
    srv->idle_timeout_ms = (int64_t)cfg->idle_timeout_s * 1000;
    srv->body_timeout_ms = (int64_t)cfg->body_timeout_s * 1000;
    if (pthread_mutex_init(&srv->watch_lock, NULL) != 0) {
        snprintf(msg, cap, "cannot make the connection watchdog's lock");
        goto fail_watch;
    }
    if (pthread_cond_init(&srv->watch_wake, NULL) != 0) {
        pthread_mutex_destroy(&srv->watch_lock);
        snprintf(msg, cap, "cannot make the connection watchdog's condition");
        goto fail_watch;
    }
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
        pthread_cond_destroy(&srv->watch_wake);
        pthread_mutex_destroy(&srv->watch_lock);
        snprintf(msg, cap, "cannot start the connection watchdog thread");
        goto fail_watch;
    }
    srv->watch_running = true;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (srv->tls_cert)
        flags |= MHD_USE_TLS;
    /* Without TLS the two options are MHD_OPTION_END's neighbours and unused:
     * the array ends at the first MHD_OPTION_END. */
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_URI_LOG_CALLBACK, on_target, srv, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)cfg->max_header_bytes, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        srv->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, srv->tls_cert,
        MHD_OPTION_HTTPS_MEM_KEY, srv->tls_key, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->daemon) {
        if (srv->tls_cert)
            snprintf(msg, cap,
                     "cannot listen on %s:%u (in use, not an address of this host, or "
                     "--tls-cert/--tls-key are not a PEM certificate and its key)",
                     host, port);
        else
            snprintf(msg, cap, "cannot listen on %s:%u (in use, or not an address of this host)",
                     host, port);
        watchdog_stop(srv);
        free_pem(srv->tls_cert);
        free_pem(srv->tls_key);
        free(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : port;
    return srv;
fail_watch:
    freeaddrinfo(ai);
    free_pem(srv->tls_cert);
    free_pem(srv->tls_key);
    free(srv);
    return NULL;
}

void http_stop(struct http_server *srv)
{
    if (!srv)
        return;
    MHD_stop_daemon(srv->daemon);
    watchdog_stop(srv);
    free_pem(srv->tls_cert);
    free_pem(srv->tls_key);
    free(srv);
}
