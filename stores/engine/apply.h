/*
 * Applying one transaction (stores/engine/apply.c): its rows in SQLite,
 * inside the writer's open transaction, and the Cypher that mirrors them.
 * Each operation sees the effects of the ones before it, so refs, deletes
 * after creates and the like need no special cases.
 *
 * A transaction of the gateway's own (a repair, engine_commit_internal)
 * fills the same state through its apply hook.
 */
#ifndef BISTORE_APPLY_H
#define BISTORE_APPLY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "stores/engine/engine.h"
#include "stores/neo4j/cypher.h"

struct apply_state {
    struct cypher_batch cypher;
    json_t *results;       /* [{"op","id","version"?}] */
    json_t *records;       /* full records, null for deletes; empty when skipped */
    bool skip_records;     /* set by apply_txn: no one will read records */
    size_t *stmt_first_op; /* first operation of each Cypher statement */
    size_t n_stmt_first_op;
    const char *new_rel_types[32]; /* types new to the stores in this transaction */
    size_t n_new_rel_types;
    char now[TIMESTAMP_LEN];
    /* Called after each operation, or NULL: a pipelined commit ships the
     * statements built so far (pipeline.c). -1 stops with err set. */
    int (*after_op)(void *arg, struct apply_state *state, struct bs_error *err);
    void *after_op_arg;
    struct buf properties; /* canonical JSON of the properties of one create */
    struct buf record;     /* the canonical record being hashed */
};

/* 0, or -1 when out of memory (nothing to free then). */
int apply_init(struct apply_state *state);
void apply_free(struct apply_state *state);
/* Applies every operation of txn to SQLite (inside the caller's
 * transaction) and builds the Cypher. On a client error err names the
 * operation (op_index, field). */
int apply_txn(struct engine *e, const struct bs_txn *txn, struct apply_state *state,
              struct bs_error *err);
/* Notes type as new to Neo4j unless its uniqueness constraint is known to
 * exist (created before the data's transaction: schema statements cannot
 * share it). */
int apply_note_rel_type(struct engine *e, struct apply_state *state, const char *type,
                        struct bs_error *err);

#endif
