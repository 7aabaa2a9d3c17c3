/*
 * The writer's Neo4j transactions (struct neo4j_tx, internal.h): opened
 * empty and recorded in the orphan log before anything runs in them,
 * committed or abandoned; how Neo4j's failures become the members'
 * errors; and the schema statements a group needs first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stores/engine/internal.h"

/* The codes of a failed write of the orphan record (our disk, not Neo4j). */
#define RECORD_FULL "Bistore.Local.StorageFull"
#define RECORD_ERROR "Bistore.Local.StorageError"

enum neo4j_status neo4j_tx_open(struct engine *e, struct neo4j_tx *tx, bool allow_spare,
                                struct neo4j_result *r)
{
    BS_ASSERT(!tx->path[0]); /* one transaction at a time */
    tx->was_spare = allow_spare && spare_take(&e->spare, tx->path);
    enum neo4j_status status = tx->was_spare ? NEO4J_OK : neo4j_begin(writer_neo4j(e), tx->path, r);
    if (status != NEO4J_OK) {
        tx->path[0] = '\0';
        return status;
    }
    e->open_neo4j_txs++;
    if (orphans_add(&e->orphans, tx->path) != 0) {
        bool full = errno == ENOSPC || errno == EDQUOT;
        neo4j_tx_abandon(e, tx); /* unrecorded, it must not run anything */
        /* our own disk failed, not Neo4j: neo4j_failure() answers 507/500 */
        r->status = NEO4J_DATABASE_ERROR;
        snprintf(r->code, sizeof r->code, "%s", full ? RECORD_FULL : RECORD_ERROR);
        snprintf(r->message, sizeof r->message, "cannot write the Neo4j transaction record%s",
                 full ? ": no space left on the SQLite file's disk" : "");
        r->statement_index = -1;
        return NEO4J_DATABASE_ERROR;
    }
    return NEO4J_OK;
}

enum neo4j_status neo4j_tx_run(struct engine *e, struct neo4j_tx *tx, json_t *statements,
                               struct neo4j_result *r)
{
    enum neo4j_status status = neo4j_run(writer_neo4j(e), tx->path, statements, r);
    if (status != NEO4J_TX_GONE || !tx->was_spare)
        return status;
    /* the spare expired: once more, fresh */
    orphans_remove(&e->orphans, tx->path);
    tx->path[0] = '\0';
    e->open_neo4j_txs--;
    status = neo4j_tx_open(e, tx, false, r);
    return status == NEO4J_OK ? neo4j_run(writer_neo4j(e), tx->path, statements, r) : status;
}

bool neo4j_tx_commit(struct engine *e, struct neo4j_tx *tx, struct neo4j_result *r)
{
    bool committed = neo4j_commit(writer_neo4j(e), tx->path, NULL, r) == NEO4J_OK;
    if (committed) /* else it stays recorded: its intents are pending */
        orphans_remove(&e->orphans, tx->path);
    tx->path[0] = '\0';
    e->open_neo4j_txs--;
    return committed;
}

void neo4j_tx_abandon(struct engine *e, struct neo4j_tx *tx)
{
    if (!tx->path[0])
        return;
    struct neo4j_result r = {0};
    enum neo4j_status status = neo4j_rollback(writer_neo4j(e), tx->path, &r);
    if (status == NEO4J_OK || status == NEO4J_TX_GONE || status == NEO4J_CLIENT_ERROR)
        orphans_remove(&e->orphans, tx->path);
    neo4j_result_clear(&r);
    tx->path[0] = '\0';
    e->open_neo4j_txs--;
}

enum bs_code neo4j_failure(struct bs_error *err, const struct neo4j_result *r, const char *what)
{
    if (strcmp(r->code, RECORD_FULL) == 0)
        return bs_error_set(err, BS_STORAGE_FULL, "%s (%s); nothing was written", r->message, what);
    if (strcmp(r->code, RECORD_ERROR) == 0)
        return bs_error_set(err, BS_STORAGE_ERROR, "%s (%s); nothing was written", r->message,
                            what);
    switch (r->status) {
    case NEO4J_UNAVAILABLE:
    case NEO4J_TX_GONE:
        return bs_error_set(err, BS_NEO4J_UNAVAILABLE, "Neo4j did not answer (%s): %s", what,
                            r->message);
    case NEO4J_TRANSIENT:
        return bs_error_set(err, BS_NEO4J_UNAVAILABLE,
                            "Neo4j reported a transient error (%s), retry: %s %s", what, r->code,
                            r->message);
    default:
        return bs_error_set(err, BS_NEO4J_ERROR, "Neo4j rejected the %s: %s %s", what, r->code,
                            r->message);
    }
}

/* Only the guard divides (1/0), so the code says it wherever Neo4j puts the
 * failing index (it counts the failing statement's partial result). */
bool guard_refused(const struct neo4j_result *r)
{
    return strstr(r->code, "ArithmeticError") != NULL;
}

void statement_failure(const struct neo4j_result *r, long op_index, struct bs_error *err)
{
    err->op_index = op_index;
    if (strstr(r->code, "ConstraintValidationFailed")) {
        bool rel = strstr(r->message, "relationship") || strstr(r->message, "Relationship");
        bs_error_set(err, rel ? BS_RELATIONSHIP_EXISTS : BS_ENTITY_EXISTS,
                     "Neo4j already holds this id (the stores disagree; run a "
                     "reconciliation): %s",
                     r->message);
        return;
    }
    if (guard_refused(r)) { /* the guard is no operation's statement */
        err->op_index = -1;
        bs_error_set(err, BS_NEO4J_UNAVAILABLE,
                     "Neo4j's watermark moved under this gateway: is a second gateway "
                     "writing to the same stores? Recovering");
        return;
    }
    neo4j_failure(err, r, "transaction");
}

void client_statement_failure(const struct neo4j_result *r, long op_index, struct bs_error *err)
{
    err->op_index = op_index;
    if (r->status != NEO4J_CLIENT_ERROR) {
        neo4j_failure(err, r, "transaction");
        return;
    }
    bs_error_field(err, "statement");
    bs_error_set(err, BS_NEO4J_STATEMENT_ERROR, "Neo4j refused the cypher statement: %s %s",
                 r->code, r->message);
}

bool count_differs(json_t *v, size_t want, struct bs_error *err)
{
    if (want == CYPHER_ANY_COUNT || (json_is_integer(v) && (size_t)json_integer_value(v) == want))
        return false;
    bs_error_set(err, BS_NEO4J_ERROR,
                 "Neo4j lacks a node or relationship that SQLite has (touched %lld of %zu "
                 "rows): the stores disagree; run a reconciliation",
                 (long long)json_integer_value(v), want);
    return true;
}

int create_rel_constraints(struct engine *e, struct apply_state *state, struct bs_error *err)
{
    if (state->n_new_rel_types == 0)
        return 0;
    /* One schema transaction for all of them: a round trip, not one each. */
    json_t *stmts = json_array();
    bool built = stmts != NULL;
    for (size_t i = 0; built && i < state->n_new_rel_types; i++) {
        char text[256];
        built = cypher_relationship_constraint(state->new_rel_types[i], text, sizeof text) == 0 &&
                neo4j_add_statement(stmts, text, NULL) == 0;
    }
    struct neo4j_result r = {0};
    int rc = -1;
    if (!built)
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    else if (neo4j_autocommit(writer_neo4j(e), stmts, &r) == NEO4J_OK)
        rc = 0;
    else
        neo4j_failure(err, &r, "relationship constraint");
    if (built)
        spare_schema_changed(&e->spare);
    neo4j_result_clear(&r);
    json_decref(stmts);
    for (size_t i = 0; rc == 0 && i < state->n_new_rel_types && e->n_rel_types < REL_TYPES_MAX;
         i++) {
        char *copy = strdup(state->new_rel_types[i]);
        if (copy)
            e->rel_types[e->n_rel_types++] = copy;
    }
    return rc;
}
