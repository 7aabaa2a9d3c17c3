/*
 * Error replies: API.md's error body, with the status of the code from the
 * error table (BS_ERROR_TABLE in common/result.h), never chosen here.
 */
#ifndef BISTORE_ERRORS_H
#define BISTORE_ERRORS_H

#include <jansson.h>

#include "common/result.h"
#include "handlers/http/request.h"

/* {"error": {"code", "message", "field"?, "operation_index"?}} (new
 * reference); the code's hint when err has no message. */
json_t *errors_body(const struct bs_error *err);
/* The error reply of err: status from the error table, API.md's body. */
void reply_error(struct response *res, const struct bs_error *err);
/* Shorthand: reply_error with a code and message (printf-style). */
void reply_errorf(struct response *res, enum bs_code code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
