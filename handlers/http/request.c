#include "handlers/http/request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *request_header(const struct request *req, const char *name)
{
    return req->lookup ? req->lookup(req->lookup_ctx, LOOKUP_HEADER, name) : NULL;
}

const char *request_query(const struct request *req, const char *name)
{
    return req->lookup ? req->lookup(req->lookup_ctx, LOOKUP_QUERY, name) : NULL;
}

void response_header(struct response *res, const char *name, const char *fmt, ...)
{
    if (res->n_headers >= RESPONSE_MAX_HEADERS)
        return;
    size_t i = res->n_headers++;
    snprintf(res->headers[i].name, sizeof res->headers[i].name, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->headers[i].value, sizeof res->headers[i].value, fmt, ap);
    va_end(ap);
}

void reply_json(struct response *res, unsigned status, json_t *body)
{
    json_decref(res->body);
    res->status = status;
    res->body = body;
}

void response_free(struct response *res)
{
    json_decref(res->body);
    res->body = NULL;
    free(res->text);
    res->text = NULL;
}

bool request_has_scope(const struct request *req, unsigned scope)
{
    return scope == SCOPE_NONE || !req->keys_required ||
           (req->key_known && (req->key_scopes & scope) == scope);
}
