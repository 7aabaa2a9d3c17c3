/* /v1/transactions: batches of operations, and the audit trail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "stores/bistore.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000

/* Parses the operations array into txn; false after answering the error. */
static bool parse_operations(const struct app *app, const json_t *ops, struct bs_txn *txn,
                             struct response *res)
{
    if (!json_is_array(ops) || json_array_size(ops) == 0) {
        reply_errorf(res, BS_INVALID_REQUEST, "operations",
                     "'operations' must be a non-empty array");
        return false;
    }
    size_t n = json_array_size(ops);
    if (n > app->max_operations) {
        reply_errorf(res, BS_PAYLOAD_TOO_LARGE, "operations",
                     "%zu operations: at most %zu are allowed in one transaction", n,
                     app->max_operations);
        return false;
    }
    txn->ops = calloc(n, sizeof *txn->ops);
    if (!txn->ops) {
        reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
        return false;
    }
    struct refs refs = {0};
    struct bs_error err;
    bs_error_clear(&err);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "operations[%zu]", i);
        ok = parse_operation(json_array_get(ops, i), i, prefix, &txn->ops[i], &refs, &err);
        txn->n_ops = i + 1; /* so txn_free_ops frees what this one holds */
    }
    refs_free(&refs);
    if (!ok)
        reply_error(res, &err);
    return ok;
}

void handle_transaction_create(struct app *app, const struct request *req, struct response *res)
{
    static const char *const allowed[] = {"operations", "provenance", NULL};
    json_t *body = body_object(req, res);
    if (!body)
        return;
    struct bs_txn txn = {0};
    struct bs_error err;
    bs_error_clear(&err);
    json_t *prov = json_object_get(body, "provenance");
    if (!only_fields(body, allowed, "", &err)) {
        reply_error(res, &err);
    } else if (prov && !json_is_object(prov) && !json_is_null(prov)) {
        reply_errorf(res, BS_INVALID_REQUEST, "provenance", "'provenance' must be an object");
    } else if (parse_operations(app, json_object_get(body, "operations"), &txn, res) &&
               idempotency_prepare(req, "POST /v1/transactions", body, &txn, res)) {
        txn.provenance = json_is_object(prov) ? json_incref(prov) : NULL;
        txn.results_only = true; /* the answer below reads no records */
        struct bistore_outcome out;
        if (submit(app, req, &txn, true, &out, res)) {
            json_t *answer =
                json_pack("{s:O, s:s, s:s, s:O}", "tx_id", json_object_get(out.result, "tx_id"),
                          "state", "committed", "neo4j", out.neo4j_applied ? "applied" : "pending",
                          "results", json_object_get(out.result, "results"));
            if (answer)
                reply_json(res, 200, answer);
            else
                reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
        }
        bistore_outcome_clear(&out);
    }
    txn_free_ops(&txn);
    json_decref(body);
}

void handle_transaction_get(struct app *app, const struct request *req, struct response *res)
{
    if (!path_id(req, 0, "tx_id", res))
        return;
    json_t *tx;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = bistore_get_transaction(app->store, req->args[0], &tx, &err);
    if (rc == 0)
        reply_json(res, 200, tx);
    else if (rc == 1)
        reply_errorf(res, BS_NOT_FOUND, NULL, "transaction '%s' does not exist", req->args[0]);
    else
        reply_error(res, &err);
}

void handle_transaction_list(struct app *app, const struct request *req, struct response *res)
{
    const char *state = request_query(req, "state");
    if (state && strcmp(state, "pending") != 0 && strcmp(state, "applied") != 0 &&
        strcmp(state, "committed") != 0 && strcmp(state, "aborted") != 0) {
        reply_errorf(res, BS_INVALID_REQUEST, "state",
                     "state must be pending, applied, committed or aborted");
        return;
    }
    int limit;
    if (!query_limit(req, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit, res))
        return;
    json_t *items = NULL;
    char *next = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    if (bistore_list_transactions(app->store, state, request_query(req, "after"), limit, &items,
                                  &next, &err) != 0) {
        json_decref(items);
        free(next);
        reply_error(res, &err);
        return;
    }
    reply_page(res, items, next);
}
