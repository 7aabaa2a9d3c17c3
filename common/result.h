/*
 * The one error vocabulary of bistore. Stores and handlers report failures
 * as a struct bs_error; only server/errors.c knows which HTTP status each
 * code has (one table, no status chosen by hand elsewhere).
 */
#ifndef BISTORE_RESULT_H
#define BISTORE_RESULT_H

#include <stddef.h>

enum bs_code {
    BS_OK = 0,
    BS_INVALID_JSON,
    BS_INVALID_REQUEST,
    BS_PAYLOAD_TOO_LARGE,
    BS_NOT_FOUND,
    BS_ENTITY_EXISTS,
    BS_RELATIONSHIP_EXISTS,
    BS_VERSION_MISMATCH,
    BS_UNAUTHORIZED,
    BS_FORBIDDEN,
    BS_NEO4J_UNAVAILABLE,
    BS_NEO4J_ERROR,
    BS_STORAGE_ERROR,
    BS_METHOD_NOT_ALLOWED,
    BS_UNSUPPORTED_MEDIA_TYPE,
    BS_IDEMPOTENCY_CONFLICT,
    BS_URI_TOO_LONG,
    BS_NOT_READY,
    BS_RECONCILIATION_RUNNING,
    BS_STORAGE_FULL,    /* SQLite's disk is full: nothing was written */
    BS_OUTCOME_UNKNOWN, /* SQLite's COMMIT failed in a way that may still be durable */
    BS_CODE_COUNT
};

#define BS_ERROR_MESSAGE_MAX 1024
#define BS_ERROR_FIELD_MAX 160

struct bs_error {
    enum bs_code code;
    char message[BS_ERROR_MESSAGE_MAX];
    char field[BS_ERROR_FIELD_MAX]; /* "" when the error names no field */
    long op_index;                  /* -1 when it names no operation */
};

/* The snake_case name of a code ("entity_exists"); never NULL. */
const char *bs_code_name(enum bs_code code);
void bs_error_clear(struct bs_error *err);
/* Sets code and message (printf-style); keeps field and op_index. Returns code. */
enum bs_code bs_error_set(struct bs_error *err, enum bs_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets the field path (printf-style), e.g. "operations[3].type". */
void bs_error_field(struct bs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
