/*
 * The one error vocabulary of bistore. Stores and handlers report failures
 * as a struct bs_error; each code's name, HTTP status and hint come from
 * BS_ERROR_TABLE below (no status is chosen by hand anywhere else).
 */
#ifndef BISTORE_RESULT_H
#define BISTORE_RESULT_H

#include <stddef.h>

/*
 * The error vocabulary, one row per code: the enum constant, its snake_case
 * name (API.md's "code"), the HTTP status it answers with, and a hint (what
 * the client can do; the message when an error carries none). The enum, the
 * names, the statuses and the hints are all generated from this one list.
 * One name has two rows, as API.md wants: neo4j_error is 502 when Neo4j
 * refuses one of the gateway's own statements (the stores may disagree) and
 * 400 when it refuses a client's raw Cypher (the client's mistake).
 */
#define BS_ERROR_TABLE(X)                                                                          \
    X(BS_OK, "ok", 200, "no error")                                                                \
    X(BS_INVALID_JSON, "invalid_json", 400, "the body is not valid JSON: fix it and retry")        \
    X(BS_INVALID_REQUEST, "invalid_request", 400,                                                  \
      "the request breaks a rule of the API (see field): fix it and retry")                        \
    X(BS_PAYLOAD_TOO_LARGE, "payload_too_large", 413,                                              \
      "the body or the batch is too large: split it")                                              \
    X(BS_NOT_FOUND, "not_found", 404, "no such resource")                                          \
    X(BS_ENTITY_EXISTS, "entity_exists", 409, "an entity with this id exists already")             \
    X(BS_RELATIONSHIP_EXISTS, "relationship_exists", 409,                                          \
      "a relationship with this id exists already")                                                \
    X(BS_VERSION_MISMATCH, "version_mismatch", 412,                                                \
      "the record changed since that version: read it again")                                      \
    X(BS_UNAUTHORIZED, "unauthorized", 401, "an API key is needed")                                \
    X(BS_FORBIDDEN, "forbidden", 403, "not allowed on this gateway")                               \
    X(BS_NEO4J_UNAVAILABLE, "neo4j_unavailable", 503,                                              \
      "Neo4j did not answer and nothing was written: retry once /readyz answers 200")              \
    X(BS_NEO4J_ERROR, "neo4j_error", 502, "Neo4j refused a statement: the stores may disagree")    \
    X(BS_NEO4J_STATEMENT_ERROR, "neo4j_error", 400,                                                \
      "Neo4j refused the transaction's cypher statement and nothing was written: fix it")          \
    X(BS_STORAGE_ERROR, "storage_error", 500, "SQLite failed and nothing was written")             \
    X(BS_METHOD_NOT_ALLOWED, "method_not_allowed", 405, "see the Allow header")                    \
    X(BS_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", 415,                                    \
      "send JSON with Content-Type: application/json")                                             \
    X(BS_IDEMPOTENCY_CONFLICT, "idempotency_conflict", 409,                                        \
      "this Idempotency-Key was used with another body")                                           \
    X(BS_URI_TOO_LONG, "uri_too_long", 414, "the URL is too long")                                 \
    X(BS_NOT_READY, "not_ready", 503, "the gateway is not ready: /readyz says why")                \
    X(BS_RECONCILIATION_RUNNING, "reconciliation_running", 409,                                    \
      "one reconciliation runs at a time: wait for it to finish")                                  \
    X(BS_STORAGE_FULL, "storage_full", 507,                                                        \
      "SQLite's disk is full and nothing was written: retry once there is room")                   \
    X(BS_OUTCOME_UNKNOWN, "outcome_unknown", 500,                                                  \
      "SQLite's commit failed and may still be durable: retry with the same Idempotency-Key")      \
    X(BS_REPLICATION_UNAVAILABLE, "replication_unavailable", 503,                                  \
      "the replica did not confirm the write, which may still take effect: retry with the same "   \
      "Idempotency-Key once /readyz answers 200")                                                  \
    X(BS_COMMIT_IN_DOUBT, "commit_in_doubt", 503,                                                  \
      "the write is in SQLite and the replica but Neo4j did not confirm its commit, so it was "    \
      "not "                                                                                       \
      "acknowledged: retry with the same Idempotency-Key (at this gateway or its successor)")      \
    X(BS_STANDBY, "standby", 503,                                                                  \
      "this gateway is a standby and takes no requests until it is promoted: send them to the "    \
      "primary (a client with both addresses tries the next)")                                     \
    X(BS_OVERLOADED, "overloaded", 503,                                                            \
      "too many writes are waiting for the writer and nothing was written: retry after "           \
      "Retry-After seconds")

enum bs_code {
#define BS_ERROR_ENUM(code, name, status, hint) code,
    BS_ERROR_TABLE(BS_ERROR_ENUM)
#undef BS_ERROR_ENUM
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

/*
 * The outcome of looking one thing up (a row, a record): found (0), not
 * there (1), or a failure (-1, with a bs_error filled). The values are the
 * 0 / 1 / -1 a caller may also compare with.
 */
enum lookup { LOOKUP_FOUND = 0, LOOKUP_MISSING = 1, LOOKUP_FAILED = -1 };

/* The snake_case name of a code ("entity_exists"); "storage_error" for a
 * code out of range; never NULL. */
const char *bs_code_name(enum bs_code code);
/* The HTTP status of a code; 500 for a code out of range. */
unsigned bs_code_http_status(enum bs_code code);
/* What a client can do about a code; never NULL or empty. */
const char *bs_code_hint(enum bs_code code);
void bs_error_clear(struct bs_error *err);
/* Sets code and message (printf-style); keeps field and op_index. Returns code. */
enum bs_code bs_error_set(struct bs_error *err, enum bs_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets the field path (printf-style), e.g. "operations[3].type". */
void bs_error_field(struct bs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For the functions that report to a person in a buffer (the command line's
 * parsing, the processes the server starts): msg gets the text
 * (printf-style); returns -1. */
int msg_fail(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* path made absolute against the working directory, links kept (as
 * Litestream names a database, and so the writer's waits and the
 * gateway's own Litestream): 0, or -1 when it does not fit cap. */
int path_absolute(const char *path, char *out, size_t cap);

#endif
