#include "common/result.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const code_names[BS_CODE_COUNT] = {
    [BS_OK] = "ok",
    [BS_INVALID_JSON] = "invalid_json",
    [BS_INVALID_REQUEST] = "invalid_request",
    [BS_PAYLOAD_TOO_LARGE] = "payload_too_large",
    [BS_NOT_FOUND] = "not_found",
    [BS_ENTITY_EXISTS] = "entity_exists",
    [BS_RELATIONSHIP_EXISTS] = "relationship_exists",
    [BS_VERSION_MISMATCH] = "version_mismatch",
    [BS_UNAUTHORIZED] = "unauthorized",
    [BS_FORBIDDEN] = "forbidden",
    [BS_NEO4J_UNAVAILABLE] = "neo4j_unavailable",
    [BS_NEO4J_ERROR] = "neo4j_error",
    [BS_STORAGE_ERROR] = "storage_error",
    [BS_METHOD_NOT_ALLOWED] = "method_not_allowed",
    [BS_UNSUPPORTED_MEDIA_TYPE] = "unsupported_media_type",
    [BS_IDEMPOTENCY_CONFLICT] = "idempotency_conflict",
    [BS_URI_TOO_LONG] = "uri_too_long",
    [BS_NOT_READY] = "not_ready",
    [BS_RECONCILIATION_RUNNING] = "reconciliation_running",
    [BS_STORAGE_FULL] = "storage_full",
    [BS_OUTCOME_UNKNOWN] = "outcome_unknown",
};

const char *bs_code_name(enum bs_code code)
{
    if ((int)code < 0 || code >= BS_CODE_COUNT || !code_names[code])
        return "storage_error";
    return code_names[code];
}

void bs_error_clear(struct bs_error *err)
{
    err->code = BS_OK;
    err->message[0] = '\0';
    err->field[0] = '\0';
    err->op_index = -1;
}

enum bs_code bs_error_set(struct bs_error *err, enum bs_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

void bs_error_field(struct bs_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->field, sizeof err->field, fmt, ap);
    va_end(ap);
}
