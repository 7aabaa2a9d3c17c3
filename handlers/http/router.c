#include "handlers/http/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/ids.h"
#include "handlers/http/errors.h"

/* True when path matches pattern; wildcard segments go to args (pointers
 * into path, which must stay alive; the segment ends at '/' or NUL). */
static bool path_matches(const char *pattern, const char *path, const char **args, size_t *n_args)
{
    size_t n = 0;
    while (*pattern && *path) {
        if (*pattern == '*') {
            const char *end = strchr(path, '/');
            size_t len = end ? (size_t)(end - path) : strlen(path);
            if (len == 0 || n >= 2)
                return false;
            args[n++] = path;
            path += len;
            pattern++;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    if (*pattern || *path)
        return false;
    *n_args = n;
    return true;
}

/*
 * Percent-decodes the n bytes at in into out (room for n + 1): "%HH" becomes
 * its byte, anything else (a '%' without two hex digits too) stays as it
 * is, which no id allows. Returns the decoded length; out is NUL-terminated
 * but may hold NULs before that, so the length is what counts.
 */
static size_t percent_decode(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = in[i] == '%' && i + 2 < n ? ids_hex_digit(in[i + 1]) : -1;
        int lo = hi >= 0 ? ids_hex_digit(in[i + 2]) : -1;
        if (lo >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return o;
}

const struct route *router_match(const struct route_table *table, const char *method,
                                 const char *path, const char **args, size_t *n_args)
{
    for (size_t i = 0; i < table->n; i++) {
        const struct route *r = &table->routes[i];
        if (strcmp(r->method, method) == 0 && path_matches(r->pattern, path, args, n_args))
            return r;
    }
    return NULL;
}

static const char *scope_name(unsigned scope)
{
    return scope & SCOPE_ADMIN ? "admin" : scope & SCOPE_WRITE ? "write" : "read";
}

static void unauthorized(const struct request *req, struct response *res)
{
    const char *auth = request_header(req, "Authorization");
    reply_errorf(res, BS_UNAUTHORIZED, NULL, "%s",
                 auth ? "the API key is not one this gateway knows (Authorization: Bearer KEY)"
                      : "an API key is needed: send Authorization: Bearer KEY");
    response_header(res, "WWW-Authenticate", "Bearer");
}

void router_dispatch(const struct route_table *table, struct app *app, struct request *req,
                     struct response *res)
{
    if (strlen(req->path) > ROUTER_MAX_URL) {
        reply_errorf(res, BS_URI_TOO_LONG, NULL, "the URL is longer than %d bytes", ROUTER_MAX_URL);
        return;
    }
    const struct route *r = router_match(table, req->method, req->path, req->args, &req->n_args);
    if (r) {
        req->route_index = (long)(r - table->routes);
        req->route_name = r->name;
        req->write_tx = r->write_tx;
        if (r->scope != SCOPE_NONE && req->keys_required && !req->key_known) {
            unauthorized(req, res);
            return;
        }
        if (!request_has_scope(req, r->scope)) {
            reply_errorf(res, BS_FORBIDDEN, NULL,
                         "this API key lacks the '%s' scope that %s %s needs", scope_name(r->scope),
                         req->method, r->pattern);
            return;
        }
        /* The handler sees each argument decoded, with its length; a segment
         * is no longer than the URL, so it always fits. */
        for (size_t i = 0; i < req->n_args; i++) {
            const char *end = strchr(req->args[i], '/');
            size_t len = end ? (size_t)(end - req->args[i]) : strlen(req->args[i]);
            req->arg_len[i] = percent_decode(req->args[i], len, req->arg_store[i]);
            req->args[i] = req->arg_store[i];
        }
        r->handler(app, req, res);
        return;
    }
    if (req->keys_required && !req->key_known && strncmp(req->path, "/v1/", 4) == 0) {
        unauthorized(req, res);
        return;
    }
    char allow[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < table->n; i++) {
        const char *args[2];
        size_t n;
        if (!path_matches(table->routes[i].pattern, req->path, args, &n))
            continue;
        int w = snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "",
                         table->routes[i].method);
        if (w > 0 && (size_t)w < sizeof allow - used)
            used += (size_t)w;
    }
    if (used) {
        reply_errorf(res, BS_METHOD_NOT_ALLOWED, NULL, "%s is not allowed on %s (allowed: %s)",
                     req->method, req->path, allow);
        response_header(res, "Allow", "%s", allow);
        return;
    }
    reply_errorf(res, BS_NOT_FOUND, NULL, "no such resource: %s", req->path);
}
