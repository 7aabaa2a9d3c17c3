#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "handlers/http/errors.h"

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

/* Seconds an overloaded gateway asks a client to wait (Retry-After). */
#define OVERLOADED_RETRY_AFTER_S 1

void reply_error(struct response *res, const struct bs_error *err)
{
    reply_json(res, bs_code_http_status(err->code), errors_body(err));
    if (err->code == BS_OVERLOADED)
        response_header(res, "Retry-After", "%d", OVERLOADED_RETRY_AFTER_S);
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
