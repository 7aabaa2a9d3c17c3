#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/errors.h"
#include "server/request.h"

static const unsigned http_status[BS_CODE_COUNT] = {
    [BS_OK] = 200,
    [BS_INVALID_JSON] = 400,
    [BS_INVALID_REQUEST] = 400,
    [BS_PAYLOAD_TOO_LARGE] = 413,
    [BS_NOT_FOUND] = 404,
    [BS_ENTITY_EXISTS] = 409,
    [BS_RELATIONSHIP_EXISTS] = 409,
    [BS_VERSION_MISMATCH] = 412,
    [BS_UNAUTHORIZED] = 401,
    [BS_FORBIDDEN] = 403,
    [BS_NEO4J_UNAVAILABLE] = 503,
    [BS_NEO4J_ERROR] = 502,
    [BS_STORAGE_ERROR] = 500,
    [BS_METHOD_NOT_ALLOWED] = 405,
    [BS_UNSUPPORTED_MEDIA_TYPE] = 415,
    [BS_IDEMPOTENCY_CONFLICT] = 409,
    [BS_URI_TOO_LONG] = 414,
    [BS_NOT_READY] = 503,
    [BS_RECONCILIATION_RUNNING] = 409,
    [BS_STORAGE_FULL] = 507,
    [BS_OUTCOME_UNKNOWN] = 500,
};

unsigned errors_http_status(enum bs_code code)
{
    if ((int)code < 0 || code >= BS_CODE_COUNT || http_status[code] == 0)
        return 500;
    return http_status[code];
}

json_t *errors_body(const struct bs_error *err)
{
    json_t *e = json_pack("{s:s, s:s}", "code", bs_code_name(err->code), "message",
                          err->message[0] ? err->message : bs_code_name(err->code));
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
    reply_json(res, errors_http_status(err->code), errors_body(err));
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
