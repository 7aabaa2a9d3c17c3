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

/* In-batch refs: "ref" names of the creates (create_entity and
 * create_relationship) of a batch, each to its operation (in the ops, whose
 * id and kind it reads). Zero-initialised: no refs yet. */
struct refs {
    struct strmap ops;
};
void refs_free(struct refs *refs);

/*
 * The one decision whether req may run raw statements ("cypher" and "sql"
 * operations): the gateway runs with --allow-raw-statements and (with API
 * keys) the key has the admin scope. false with err filled (403 forbidden)
 * when it may not.
 */
bool raw_statements_permitted(const struct app *app, const struct request *req,
                              struct bs_error *err);
/* The one decision whether req may start a reconciliation that repairs
 * (repairs: its repair is not "none"; dry runs included): with API keys,
 * the key needs the admin scope. false with err filled (403) when not. */
bool repair_permitted(const struct request *req, bool repairs, struct bs_error *err);

/*
 * Parses one operation object of a batch into op, by the field specs of
 * its kind. index names it in errors (operation_index), prefix in field
 * paths; refs resolves {"ref": ...} and records new ones (NULL: refs are
 * not allowed). raw_denied: NULL when raw statements may run, else the
 * error a raw operation answers (raw_statements_permitted's).
 */
bool parse_operation(const json_t *obj, size_t index, const char *prefix, struct bs_op *op,
                     struct refs *refs, const struct bs_error *raw_denied, struct bs_error *err);

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

/* ---- the answers every resource gives alike ---- */

/* Runs a one-operation transaction and answers its record with status (a
 * 201 with Location: location + its id; with etag, its version as ETag). */
void reply_single_write(struct app *app, const struct request *req, struct bs_txn *txn,
                        unsigned status, const char *location, bool etag, struct response *res);
/* POST of one record: the body as an operation of kind, the Idempotency-Key
 * in scope, then reply_single_write with 201. */
void create_single(struct app *app, const struct request *req, struct response *res,
                   enum op_kind kind, const char *scope, const char *location, bool etag);

/* Idempotency-Key of a PATCH or DELETE of one record (req->args[0]): scoped
 * to the method and the record's path, written into scope (cap bytes, kept
 * while txn is submitted); what the key remembers is the body (NULL: none)
 * with the If-Match version (-1: none), so the same key with another body or
 * If-Match is 409 idempotency_conflict. true with no key. false after
 * answering. */
#define IDEMPOTENCY_SCOPE_MAX 192
bool idempotency_prepare_resource(const struct request *req, const char *method,
                                  const char *collection, const json_t *body, int64_t if_version,
                                  char *scope, size_t cap, struct bs_txn *txn,
                                  struct response *res);

/* DELETE of one record of collection ("entities"): op (its id and If-Match
 * version set) through the writer, 204 or the error; honours
 * Idempotency-Key. */
void reply_single_delete(struct app *app, const struct request *req, const char *collection,
                         struct bs_op *op, struct response *res);

/* The version of a record as its ETag. */
void reply_etag(struct response *res, const json_t *record);
/* The answer to a read of one record by id: 200 with it (record stolen),
 * 404 "<what> '<id>' does not exist", or err. */
void reply_lookup(struct response *res, enum lookup found, json_t *record, const char *what,
                  const char *id, const struct bs_error *err);
/* GET of one record by the id in the path (field names it in a 400), read
 * by read. */
typedef enum lookup (*record_read)(struct bistore *bs, const char *id, json_t **out,
                                   struct bs_error *err);
void reply_get_by_id(struct app *app, const struct request *req, struct response *res,
                     const char *field, record_read read, const char *what);

/* A page of a list: ?limit= and ?after= as asked, then what the store gives. */
struct page {
    int limit;
    const char *after; /* the cursor, or NULL */
    json_t *items;
    char *next;
    struct bs_error err;
};
/* Reads the page's query parameters; false after answering 400. */
bool page_begin(const struct request *req, struct page *page, struct response *res);
/* Answers the page the store filled (rc 0), or its error; frees the page. */
void page_answer(struct response *res, int rc, struct page *page);
/* Frees what the store put in the page (it is not answered). */
void page_free(struct page *page);

#endif
