/*
 * The error table: each bs_code with its HTTP status (server/errors.c).
 * The only place a status is chosen for an error.
 */
#ifndef BISTORE_ERRORS_H
#define BISTORE_ERRORS_H

#include "common/result.h"

unsigned errors_http_status(enum bs_code code);
/* {"error": {"code", "message", "field"?, "operation_index"?}} (new reference). */
json_t *errors_body(const struct bs_error *err);

#endif
