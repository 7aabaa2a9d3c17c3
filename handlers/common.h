/*
 * What the handlers share: reading a JSON body, parsing operations (with
 * in-batch refs) into the model, Idempotency-Key and If-Match headers,
 * query parameters, and submitting a transaction to the writer.
 */
#ifndef BISTORE_HANDLERS_COMMON_H
#define BISTORE_HANDLERS_COMMON_H

#include <jansson.h>
#include <stdbool.h>

#include "common/strmap.h"
#include "handlers/app.h"
#include "handlers/http/errors.h"
#include "handlers/http/request.h"
#include "stores/model/model.h"

#define MAX_REFS_LEN 128

/* The JSON object body of req, or NULL after answering 415/400 in res. */
json_t *body_object(const struct request *req, struct response *res);

/*
 * Rejects fields of obj not in allowed (NULL-terminated). prefix names the
 * object in the error's field ("" for the top level, "operations[3]").
 */
bool only_fields(const json_t *obj, const char *const *allowed, const char *prefix,
                 struct bs_error *err);

/* In-batch refs: "ref" names of create_entity operations and their ids
 * (pointing into the ops). Zero-initialised: no refs yet. */
struct refs {
    struct strmap ids;
};
void refs_free(struct refs *refs);

/*
 * Parses one operation object (from a batch, or built by the single-resource
 * handlers) into op. index names it in errors; refs resolves {"ref": ...}
 * and records new ones (may be NULL when refs are not allowed).
 */
bool parse_operation(const json_t *obj, size_t index, const char *prefix, struct bs_op *op,
                     struct refs *refs, struct bs_error *err);

/* A single-resource body (POST /v1/entities...) with only the allowed
 * fields, parsed as an operation of the given kind; false after 400. */
bool parse_single(const json_t *body, const char *const *allowed, const char *kind,
                  struct bs_op *op, struct response *res);

/* Idempotency-Key: validates it and fills txn's idem fields. false after
 * answering 400. scope: "POST /v1/entities". */
bool idempotency_prepare(const struct request *req, const char *scope, const json_t *body,
                         struct bs_txn *txn, struct response *res);

/* Path argument i (req->args[i], whole length) as an id; false after
 * answering 400 invalid_request naming field ("id", "tx_id"). */
bool path_id(const struct request *req, size_t i, const char *field, struct response *res);

/* If-Match: -1 when absent or "*"; the version otherwise; false after 400. */
bool parse_if_match(const struct request *req, int64_t *version, struct response *res);

/* ?limit=: default when absent; false after 400 when not in 1..max. */
bool query_limit(const struct request *req, int def, int max, int *limit, struct response *res);

/* Runs txn through the writer; false after answering the error (in a
 * batch, its field is prefixed with "operations[i]."). out is the
 * caller's to clear. */
bool submit(struct app *app, const struct request *req, struct bs_txn *txn, bool batch,
            struct bistore_outcome *out, struct response *res);

/* Answers 200 {"items": items, "next": next | null}; consumes both. */
void reply_page(struct response *res, json_t *items, char *next);

/* The single record of a one-operation write, with tx_id added (a new
 * reference to the record inside out->result, which it changes). */
json_t *single_record(const struct bistore_outcome *out);

#endif
