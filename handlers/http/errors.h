/*
 * The error body of API.md (server/errors.c). Each code's status comes from
 * the error table (BS_ERROR_TABLE in common/result.h), never chosen here.
 */
#ifndef BISTORE_ERRORS_H
#define BISTORE_ERRORS_H

#include "common/result.h"

/* {"error": {"code", "message", "field"?, "operation_index"?}} (new
 * reference); the code's hint when err has no message. */
json_t *errors_body(const struct bs_error *err);

#endif
