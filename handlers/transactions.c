/* /v1/transactions: batches of operations, and the audit trail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/common.h"
#include "handlers/handlers.h"

/* What the operations field fills. */
struct batch {
    const struct app *app;
    const struct request *req;
    struct bs_txn *txn;
};

/* operations: a non-empty array of operations, each parsed into txn. */
static bool parse_operations(const json_t *ops, const struct field_spec *spec, const char *path,
                             struct bs_error *err)
{
    struct batch *batch = spec->arg;
    struct bs_txn *txn = batch->txn;
    if (!json_is_array(ops) || json_array_size(ops) == 0)
        return fields_invalid(err, "", path, spec->message);
    size_t n = json_array_size(ops);
    if (n > batch->app->max_operations) {
        bs_error_field(err, "%s", path);
        bs_error_set(err, BS_PAYLOAD_TOO_LARGE,
                     "%zu operations: at most %zu are allowed in one transaction", n,
                     batch->app->max_operations);
        return false;
    }
    txn->ops = calloc(n, sizeof *txn->ops);
    if (!txn->ops) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return false;
    }
    struct refs refs = {0};
    struct bs_error denied;
    bs_error_clear(&denied);
    bool raw_ok = raw_statements_permitted(batch->app, batch->req, &denied);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "%s[%zu]", path, i);
        ok = parse_operation(json_array_get(ops, i), i, prefix, &txn->ops[i], &refs,
                             raw_ok ? NULL : &denied, err);
        txn->n_ops = i + 1; /* so txn_free_ops frees what this one holds */
    }
    refs_free(&refs);
    return ok;
}

void handle_transaction_create(struct app *app, const struct request *req, struct response *res)
{
    json_t *body = body_object(req, res);
    if (!body)
        return;
    struct bs_txn txn = {0};
    struct batch batch = {app, req, &txn};
    const json_t *provenance = NULL;
    const struct field_spec fields[] = {
        {"provenance", FIELD_OBJECT, .dest = &provenance, .nullable = true,
         .message = "'provenance' must be an object"},
        {"operations", FIELD_CUSTOM, .required = true, .parse = parse_operations, .arg = &batch,
         .message = "'operations' must be a non-empty array"},
        {0},
    };
    struct bs_error err;
    bs_error_clear(&err);
    if (!fields_parse(body, fields, "", &err)) {
        reply_error(res, &err);
    } else if (idempotency_prepare(req, "POST /v1/transactions", body, &txn, res)) {
        txn.provenance = provenance ? json_incref((json_t *)provenance) : NULL;
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
    reply_get_by_id(app, req, res, "tx_id", bistore_get_transaction, "transaction");
}

void handle_transaction_list(struct app *app, const struct request *req, struct response *res)
{
    static const char *const states[] = {"pending", "applied", "committed", "aborted", NULL};
    const char *state;
    struct page page;
    if (query_choice(req, "state", states, "state must be pending, applied, committed or aborted",
                     &state, res) &&
        page_begin(req, &page, res))
        page_answer(res,
                    bistore_list_transactions(app->store, state, page.after, page.limit,
                                              &page.items, &page.next, &page.err),
                    &page);
}
