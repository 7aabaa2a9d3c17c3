#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "handlers/http/errors.h"
#include "handlers/http/request.h"

json_t *errors_body(const struct bs_error *err)
{
    json_t *e = json_pack("{s:s, s:s}", "code", bs_code_name(err->code), "message",
                          err->message[0] ? err->message : bs_code_hint(err->code));
    if (!e)
        return NULL;
    if (err->field[0])
        json_object_set_new(e, "field", json_string(err->field));
    if (err->op_index >= 0)
        json_object_set_new(e, "operation_index", json_integer(err->op_index));
    return json_pack("{s:o}", "error", e);
}

/* ---- struct response helpers ---- */

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

void reply_error(struct response *res, const struct bs_error *err)
{
    reply_json(res, bs_code_http_status(err->code), errors_body(err));
}

void reply_errorf(struct response *res, enum bs_code code, const char *field, const char *fmt, ...)
{
    struct bs_error err;
    bs_error_clear(&err);
    err.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    if (field)
        snprintf(err.field, sizeof err.field, "%s", field);
    reply_error(res, &err);
}

void response_free(struct response *res)
{
    json_decref(res->body);
    res->body = NULL;
}
