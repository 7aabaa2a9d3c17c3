/*
 * What the resource handlers share: operations parsed into the model by
 * field specs (with in-batch refs), the Idempotency-Key, submitting a
 * transaction, and the one way each answers a read by id and a list.
 */
#ifndef BISTORE_HANDLERS_COMMON_H
#define BISTORE_HANDLERS_COMMON_H

#include <jansson.h>
#include <stdbool.h>

#include "common/strmap.h"
#include "handlers/app.h"
#include "handlers/http/errors.h"
#include "handlers/http/fields.h"
#include "handlers/http/request.h"
#include "stores/bistore.h"

#define MAX_REFS_LEN 128
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000

/* In-batch refs: "ref" names of create_entity operations and their ids
 * (pointing into the ops). Zero-initialised: no refs yet. */
struct refs {
    struct strmap ids;
};
void refs_free(struct refs *refs);

/*
 * Parses one operation object of a batch into op, by the field specs of
 * its kind. index names it in errors (operation_index), prefix in field
 * paths; refs resolves {"ref": ...} and records new ones (NULL: refs are
 * not allowed).
 */
bool parse_operation(const json_t *obj, size_t index, const char *prefix, struct bs_op *op,
                     struct refs *refs, struct bs_error *err);

/* A single-resource body (POST /v1/entities, PATCH /v1/entities/{id}...)
 * as an operation of kind: the fields of the kind a body may carry (not
 * "op", "ref", nor for an update "id" and "if_version", which come from
 * the path and If-Match; op->id and op->if_version are kept). false after
 * answering 400. */
bool parse_single(const json_t *body, enum op_kind kind, struct bs_op *op, struct response *res);

/* Idempotency-Key: validates it and fills txn's idem fields. false after
 * answering 400. scope: "POST /v1/entities". */
bool idempotency_prepare(const struct request *req, const char *scope, const json_t *body,
                         struct bs_txn *txn, struct response *res);

/* Runs txn through the writer; false after answering the error (in a
 * batch, its field is prefixed with "operations[i]."). out is the
 * caller's to clear. */
bool submit(struct app *app, const struct request *req, struct bs_txn *txn, bool batch,
            struct bistore_outcome *out, struct response *res);

/* The single record of a one-operation write, with tx_id added (a new
 * reference to the record inside out->result, which it changes). */
json_t *single_record(const struct bistore_outcome *out);

/* The answer to a read of one record by id: 200 with it (record stolen),
 * 404 "<what> '<id>' does not exist", or err. */
void reply_lookup(struct response *res, enum lookup found, json_t *record, const char *what,
                  const char *id, const struct bs_error *err);
/* The answer to a list: 200 with the page (items and next stolen) when rc
 * is 0, else err. */
void reply_list(struct response *res, int rc, json_t *items, char *next,
                const struct bs_error *err);

#endif
